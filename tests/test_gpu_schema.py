"""Bench CSV schema (round trip, version checks, docs) and the timing statistics."""

import random
import re
from pathlib import Path

import numpy as np
import pytest

from hwmodel.errors import NmlabError
from hwmodel.gpu import schema, stats

DOCS = Path(__file__).resolve().parents[1] / "docs" / "gpu.md"


def _row(**kw):
    row = schema.empty_row()
    row.update(run_id="r1", status="ok", error="", kind="gemm", name="square", env="", width=0,
               dtype="bfloat16", out_dtype="bfloat16", impl="dense", backend="cublas", m=256, n=256, k=256,
               m_pad=256, n_pad=256, k_pad=256, alg_id=-1, eager_median_us=12.5, eager_reps=100,
               graph_median_us=4.25, check_ok=True, max_rel_err=1.5e-3, flops=2 * 256**3,
               device_name="NVIDIA H200", mem_bytes=150_000_000_000)
    row.update(kw)
    return row


def test_round_trip_types_and_empty_cells(tmp_path):
    rows = [_row(), _row(impl="sparse_cslt", check_ok=False, graph_median_us=None,
                         error="line one\nline two", graph_error="capture failed")]
    path = tmp_path / "b.csv"
    assert schema.write_rows(path, rows) == 2
    back = schema.read_rows(path)
    assert back[0]["m"] == 256 and isinstance(back[0]["m"], int)
    assert back[0]["eager_median_us"] == 12.5 and back[0]["check_ok"] is True
    assert back[0]["mem_bytes"] == 150_000_000_000
    assert back[1]["graph_median_us"] is None and back[1]["check_ok"] is False
    assert back[1]["error"] == "line one line two"  # one line per cell, whatever the exception said
    assert back[0]["sm_clock_mhz"] is None
    assert set(back[0]) == set(schema.FIELDNAMES)
    assert not (tmp_path / "b.csv.partial").exists()


def test_writer_leaves_partial_file_until_closed(tmp_path):
    w = schema.RowWriter(tmp_path / "x.csv")
    w.write(_row())
    assert (tmp_path / "x.csv.partial").exists() and not (tmp_path / "x.csv").exists()
    assert len((tmp_path / "x.csv.partial").read_text().splitlines()) == 2  # flushed as it goes
    w.close()
    assert len(schema.read_rows(tmp_path / "x.csv")) == 1
    with pytest.raises(KeyError):
        schema.RowWriter(tmp_path / "y.csv").write({"not_a_column": 1})


def test_reader_rejects_other_versions_and_foreign_files(tmp_path):
    p = tmp_path / "v9.csv"
    schema.write_rows(p, [_row(schema_version=9)])
    with pytest.raises(NmlabError, match="schema_version: 9 is not supported"):
        schema.read_rows(p)
    q = tmp_path / "other.csv"
    q.write_text("a,b\n1,2\n")
    with pytest.raises(NmlabError, match="missing columns"):
        schema.read_rows(q)
    r = tmp_path / "bad.csv"
    # An integer column takes whole numbers only: "1024.5" was cut to 1024, "inf" was an OverflowError.
    for bad in ("many", "1024.5", "inf", "nan"):
        schema.write_rows(r, [_row(m=bad)])
        with pytest.raises(NmlabError, match=f"column m: '{bad}' is not a whole number"):
            schema.read_rows(r)
    schema.write_rows(r, [_row(m="1e3")])
    assert schema.read_rows(r)[0]["m"] == 1000
    with pytest.raises(NmlabError, match="no such file"):
        schema.read_rows(tmp_path / "absent.csv")


def test_measured_time_only_for_ok_rows():
    assert schema.measured_time_us(_row(), "graph") == 4.25
    assert schema.measured_time_us(_row(status="error"), "graph") is None
    assert schema.measured_time_us(_row(graph_median_us=None), "graph") is None


def test_docs_list_every_column():
    text = DOCS.read_text()
    assert f"version {schema.SCHEMA_VERSION}" in text
    for name in schema.FIELDNAMES:
        assert f"`{name}`" in text, name
    # The whole table agrees (types and meanings too), and every row has its three cells: a bare
    # "|" inside a meaning ("ok | error | skipped") made extra cells that renderers cut off.
    table = schema.schema_markdown()
    assert table in text
    for line in table.splitlines():
        assert len(re.split(r"(?<!\\)\|", line)) == 5, line


def test_percentiles_match_numpy():
    rng = random.Random(1)
    for n in (1, 2, 5, 100, 101):
        xs = [rng.lognormvariate(2, 0.5) for _ in range(n)]
        for q in (0, 10, 50, 90, 100):
            assert stats.percentile(xs, q) == pytest.approx(float(np.percentile(xs, q)))
    s = stats.summarize([5.0, 1.0, 3.0, 100.0])
    assert s == {"median_us": 4.0, "p10_us": pytest.approx(1.6), "p90_us": pytest.approx(71.5), "reps": 4}
    with pytest.raises(ValueError):
        stats.median([])


def test_reps_and_rotation():
    assert stats.choose_reps(5.0) == 200          # short calls: capped
    assert stats.choose_reps(10_000.0) == 10      # long calls: floor
    assert stats.choose_reps(300.0, target_us=30_000.0) == 100
    l2 = 50 * 2**20
    for set_bytes in (10**6, 3 * 10**7, 10**9):
        n = stats.rotation_sets(set_bytes, l2)
        assert n >= 2
        assert n * set_bytes >= 2 * l2 or n == 256  # the data exceed L2 unless capped
    assert stats.rotation_sets(100, l2) == 256


# ---- GPU spec files (hwmodel/data/gpus, format nmlab-gpu version 2) -------------------------

import csv as _csv

from hwmodel.gpu import spec as gpuspec
from hwmodel.io import data_path

ROOT = Path(__file__).resolve().parents[1]
# Where the published timings may lie: bundled with the package, or the reference copy beside the checkout.
MEASUREMENT_DIRS = [ROOT / "hwmodel" / "data" / "gpu_measurements"] + [
    p / "shared" / "reference" / "gpu_measurements" for p in (ROOT, ROOT.parent, ROOT.parent.parent)]
# The GPU names of the published dense vs 2:4 timings (shared/reference/gpu_measurements) and the spec each is.
PUBLISHED_GPUS = {"NVIDIA H100 PCIe": "h100_pcie", "NVIDIA A100 80GB PCIe": "a100_pcie",
                  "NVIDIA B200": "b200", "NVIDIA GeForce RTX 4090": "rtx4090"}
# Device names as torch reports them for the other bundled parts, and names that must select nothing.
OTHER_TORCH_NAMES = {"NVIDIA H100 80GB HBM3": "h100_sxm", "NVIDIA A100-SXM4-80GB": "a100_sxm",
                     "NVIDIA A100-SXM4-40GB": "a100_sxm", "NVIDIA A100-PCIE-40GB": "a100_pcie",
                     "NVIDIA H200": "h200_sxm", "NVIDIA L40S": "l40s", "NVIDIA GeForce RTX 5080": "rtx5080",
                     "NVIDIA GB10": "gb10"}
NO_SPEC = ["NVIDIA GH200 480GB", "NVIDIA GB200", "NVIDIA L40", "NVIDIA H100 NVL", "NVIDIA GeForce RTX 4080"]
BUNDLED = {"a100_sxm", "a100_pcie", "h100_sxm", "h100_pcie", "h200_sxm", "b200", "l40s", "rtx4090", "rtx5080", "gb10"}
# Dense bf16 FLOP per clock per SM at the tensor clock: Ampere 2048, Hopper 4096, data-center
# Blackwell 8192; Ada and GeForce Blackwell 1024 with fp16 accumulate, half that with fp32
# accumulate on GeForce (the rate recorded there), full on the professional L40S.
BF16_FLOP_PER_CLK_SM = {"ampere": 2048, "hopper": 4096, "blackwell": 8192, "l40s": 1024,
                        "rtx4090": 512, "rtx5080": 512, "gb10": 512}


def _published_names():
    """GPU names in the published timing files where this checkout has them, else the known four."""
    names = set()
    for folder in MEASUREMENT_DIRS:
        for f in sorted(folder.glob("*.csv")) if folder.is_dir() else []:
            with open(f, newline="") as fh:
                reader = _csv.DictReader(fh)
                if "gpu" in (reader.fieldnames or []):
                    names |= {row["gpu"] for row in reader}
    return names or set(PUBLISHED_GPUS)


def _specs():
    return gpuspec.bundled_gpus()


def test_every_bundled_spec_loads_with_every_figure_and_its_source():
    specs = _specs()
    assert BUNDLED <= set(specs), sorted(BUNDLED - set(specs))
    for g in specs.values():
        assert g.format_version == gpuspec.FORMAT_VERSION, g.name
        for figure in gpuspec.FIGURES:
            source = g.sources[figure]
            value = getattr(g, figure)
            # A figure is absent only where its source says the vendor publishes none.
            assert (value is None) == source.startswith("unpublished:"), (g.name, figure)
            ref = source.split(":", 1)[0]
            assert ref in g.references or ref in gpuspec.SOURCE_KINDS, (g.name, figure, ref)
        for dtype in g.tensor_flops:
            assert f"tensor_tflops.{dtype}" in g.sources, (g.name, dtype)
        assert {"bfloat16", "float16", "int8", "tfloat32"} <= set(g.tensor_flops), g.name
        assert g.memory_type and g.power_limit_w > 0 and g.architecture
        # Every reference is cited by some figure's source (no dangling citations).
        for ref in g.references:
            assert any(ref in text for text in g.sources.values()), (g.name, ref)


def test_dtype_support_follows_the_architecture():
    specs = _specs()
    for g in specs.values():
        has_fp8 = "float8_e4m3fn" in g.tensor_flops
        has_fp4 = "float4_e2m1" in g.tensor_flops
        assert has_fp8 == (g.architecture != "ampere"), g.name      # fp8 from Ada/Hopper on
        assert has_fp4 == (g.architecture == "blackwell"), g.name   # fp4 on Blackwell only


def test_two_to_four_doubles_every_dense_rate():
    # NVIDIA quotes 2:4 at twice the dense rate for every dtype of every bundled part.
    for g in _specs().values():
        for table in (g.tensor_flops, g.tensor_flops_fp16_acc):
            for dtype, rate in table.items():
                assert rate["sparse"] == pytest.approx(2 * rate["dense"], rel=1e-3), (g.name, dtype)


def test_peak_rates_agree_with_sms_and_clock():
    # Three independent figures (rate, SM count, clock) must agree with the per-SM tensor width.
    for g in _specs().values():
        per_clk = g.peak_flops("bfloat16", False) / (g.sm_count * g.tensor_clock_mhz * 1e6)
        expected = BF16_FLOP_PER_CLK_SM.get(g.name, BF16_FLOP_PER_CLK_SM.get(g.architecture))
        assert per_clk == pytest.approx(expected, rel=0.01), (g.name, per_clk)
        assert g.tensor_clock_mhz <= g.boost_clock_mhz
        if g.base_clock_mhz is not None:
            assert g.base_clock_mhz < g.boost_clock_mhz, g.name


def test_geforce_records_the_fp32_accumulate_rate():
    # cuBLAS bf16/fp16 GEMMs accumulate in fp32; GeForce runs that at half the fp16-accumulate rate.
    specs = _specs()
    for name in ("rtx4090", "rtx5080"):
        g = specs[name]
        for dtype in ("float16", "float8_e4m3fn"):
            acc16 = g.tensor_flops_fp16_acc[dtype]["dense"]
            assert acc16 == pytest.approx(2 * g.tensor_flops[dtype]["dense"], rel=1e-3), (name, dtype)
        assert "fp32" in g.tensor_accumulate
    assert not specs["l40s"].tensor_flops_fp16_acc  # professional Ada: fp32 accumulate at full rate


def test_published_gpu_names_resolve_to_exactly_one_spec():
    specs = _specs()
    names = _published_names()
    assert names == set(PUBLISHED_GPUS), names
    for device, expected in {**PUBLISHED_GPUS, **OTHER_TORCH_NAMES}.items():
        hits = [s.name for s in specs.values() if s.matches(device)]
        assert hits == [expected], (device, hits)
        assert gpuspec.gpu_for(device).name == expected
    for device in NO_SPEC:
        assert not [s.name for s in specs.values() if s.matches(device)], device
        with pytest.raises(NmlabError, match="is not a bundled GPU spec, a spec file nor a device name of one"):
            gpuspec.gpu_for(device)


def _write_spec(tmp_path, text, name="bad"):
    path = tmp_path / f"{name}.yaml"
    path.write_text(text)
    return path


def test_spec_loader_names_the_bad_field(tmp_path):
    text = data_path("gpus", "h100_pcie.yaml").read_text()
    cases = {
        '  power_limit_w: "h100-pb: maximum TDP 350 W (h100-ds: 300-350 W configurable)"\n': "sources.power_limit_w: missing",
        '  sm_count: "hopper-wp: Table': "sources.sm_count: 'nowhere' is not in references",
        "power_limit_w: 350\n": "power_limit_w: missing",
        "base_clock_mhz: 1095\n": "base_clock_mhz: a figure is null exactly when",
    }
    replacements = {
        '  power_limit_w: "h100-pb: maximum TDP 350 W (h100-ds: 300-350 W configurable)"\n': "",
        '  sm_count: "hopper-wp: Table': '  sm_count: "nowhere: Table',
        "power_limit_w: 350\n": "",
        "base_clock_mhz: 1095\n": "base_clock_mhz: null\n",
    }
    for old, message in cases.items():
        assert old in text, old
        with pytest.raises(NmlabError, match=message):
            gpuspec.load_gpu(_write_spec(tmp_path, text.replace(old, replacements[old], 1)))
    with pytest.raises(NmlabError, match="tensor_tflops.bfloat16: missing"):
        gpuspec.load_gpu(_write_spec(tmp_path, text.replace(
            '  tensor_tflops.bfloat16: "derived: h100-ds gives 1,513 TFLOPS with sparsity; dense = 1513 / 2"\n', "")))
    with pytest.raises(NmlabError, match="sm_count: 'many' is not an integer"):
        gpuspec.load_gpu(_write_spec(tmp_path, text.replace("sm_count: 114", "sm_count: many")))
    with pytest.raises(NmlabError, match="not valid YAML"):
        gpuspec.load_gpu(_write_spec(tmp_path, "a: [1, 2\n"))
    with pytest.raises(NmlabError, match="line 11: key 'sm_count' is given twice"):  # YAML would keep the last
        gpuspec.load_gpu(_write_spec(tmp_path, text.replace("sm_count: 114", "sm_count: 114\nsm_count: 132")))
    binary = tmp_path / "bin.yaml"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\x00\xff\xfe")
    with pytest.raises(NmlabError, match="gpu 'bin'"):
        gpuspec.load_gpu(binary)


def test_version_1_files_still_load(tmp_path):
    v1 = """format: nmlab-gpu
version: 1
name: old
device_name_patterns: ["Old GPU"]
compute_capability: "9.0"
sm_count: 132
tensor_clock_mhz: 1830
boost_clock_mhz: 1980
hbm_bytes: 80.0e9
hbm_bytes_per_s: 3.35e12
l2_bytes: 52428800
smem_per_sm_bytes: 233472
launch_overhead_us: 4.5
tensor_tflops:
  bfloat16: {dense: 989.4, sparse: 1978.9}
"""
    g = gpuspec.load_gpu(_write_spec(tmp_path, v1, "old"))
    assert g.format_version == 1 and g.hbm_bytes_per_s == 3.35e12 and g.memory_bytes == 80e9
    assert g.power_limit_w is None and g.sources == {}
    assert g.peak_flops("bfloat16", True) == pytest.approx(1978.9e12)


@pytest.mark.parametrize("old,new,message", [
    ("memory_bytes_per_s: 2.0e12", "memory_bytes_per_s: .inf", "memory_bytes_per_s: must be a finite number"),
    ("power_limit_w: 350", "power_limit_w: .inf", "power_limit_w: must be a finite number"),
    ("bfloat16: {dense: 756.5", "bfloat16: {dense: .inf", "tensor_tflops.bfloat16: dense: must be a finite number"),
    ("l2_bytes: 52428800", "l2_bytes: 5.5", "l2_bytes: 5.5 is not a whole number"),
    ("sm_count: 114", "sm_count: 114.5", "sm_count: 114.5 is not a whole number"),
    ("sparse_pattern:", "tensor_tflops_fp16_accumulat: {}\nsparse_pattern:", "tensor_tflops_fp16_accumulat: unknown key"),
    ('sparse_pattern: "2:4"', 'sparse_pattern: "1:4"', 'sparse_pattern: the GPU model runs "2:4" only'),  # was ignored
    # Past the figure's range (docs/limits.md): a 1e-300 MHz clock was a ZeroDivisionError traceback,
    # 1e300 SMs or a 1e-300 B/s memory gave overflow warnings and inf/NaN figures.
    ("tensor_clock_mhz: 1620", "tensor_clock_mhz: 1e-300", r"tensor_clock_mhz: must be from 0.001 to 1,000,000, got 1e-300"),
    ("sm_count: 114", "sm_count: 1e300", r"sm_count: must be from 1 to 1,048,576, got 1e\+300"),
    ("memory_bytes_per_s: 2.0e12", "memory_bytes_per_s: 1e-300", r"memory_bytes_per_s: must be from 1,000,000 to 1e\+15"),
    ("bfloat16: {dense: 756.5", "bfloat16: {dense: 1e-300", r"tensor_tflops.bfloat16: dense: must be from 0.001 to"),
])
def test_spec_loader_refuses_infinite_fractional_and_unknown_fields(tmp_path, old, new, message):
    # A user's spec file stands where a design does: inf passed "> 0", a fraction was cut off
    # silently, and a misspelt optional key was dropped without a word.
    text = data_path("gpus", "h100_pcie.yaml").read_text()
    assert old in text, old
    with pytest.raises(NmlabError, match=message):
        gpuspec.load_gpu(_write_spec(tmp_path, text.replace(old, new, 1)))


def _source_unpublished(text, key):
    """The spec text with the source of figure ``key`` (under ``sources:``) saying 'unpublished:'."""
    return re.sub(rf'^  {key}: ".*"$', f'  {key}: "unpublished: not in any datasheet"', text, count=1, flags=re.M)


def test_unpublished_figures_are_null_not_the_string_none(tmp_path):
    # docs/gpu.md: a figure is null with an 'unpublished:' source. memory_type read as the string
    # 'None', a null power limit as "None is not a float", a null count as "None is not a int".
    text = data_path("gpus", "h100_pcie.yaml").read_text()

    def unpublished(key):
        return _source_unpublished(re.sub(rf"^{key}: .*$", f"{key}: null", text, count=1, flags=re.M), key)

    spec = gpuspec.load_gpu(_write_spec(tmp_path, unpublished("memory_type")))
    assert spec.memory_type is None
    spec = gpuspec.load_gpu(_write_spec(tmp_path, unpublished("power_limit_w"), "nopower"))
    assert spec.power_limit_w is None
    from hwmodel.gpu import design_point

    with pytest.raises(NmlabError, match="has no power_limit_w"):
        design_point.GpuDesign(spec, "nopower.yaml").power_limit_w()
    with pytest.raises(NmlabError, match="sm_count: null, but the GPU model needs a value"):
        gpuspec.load_gpu(_write_spec(tmp_path, unpublished("sm_count")))


@pytest.mark.parametrize("reader, what", [
    ("hwmodel.gpu.spec:load_gpu", "gpu 'x'"),
    ("hwmodel.gpu.params:load_params_file", "gpu params"),
    ("hwmodel.gpu.schema:read_rows", "gpu bench csv"),
])
def test_gpu_file_readers_say_a_folder_is_one_and_refuse_binary_files(tmp_path, reader, what):
    # The three GPU file readers said "no such file" for a folder that exists (sending the user
    # after a typo), and the parameter and bench CSV readers were a UnicodeDecodeError traceback
    # on a binary file: they use the shared limits helpers now, as the other readers do.
    import importlib

    module, name = reader.split(":")
    read = getattr(importlib.import_module(module), name)
    folder = tmp_path / "x"
    folder.mkdir()
    with pytest.raises(NmlabError, match=f"^{re.escape(what)}: {re.escape(str(folder))}: is a directory$"):
        read(folder)
    with pytest.raises(NmlabError, match=f"^{re.escape(what)}: no such file: "):
        read(tmp_path / "x.missing")
    binary = tmp_path / "x.bin"
    binary.write_bytes(bytes(range(128, 256)) * 16)
    with pytest.raises(NmlabError, match="not UTF-8 text"):
        read(binary)


@pytest.mark.parametrize("key", ["name", "display_name"])
@pytest.mark.parametrize("value", ['"' + "g" * 100_000 + '"', '"H100\\nSXM"', '"H100\\x1b[2J"', "[1, 2]"])
def test_a_long_or_unprintable_gpu_name_is_one_line_naming_the_field(tmp_path, key, value):
    """A GPU spec is a design point: its names go into one-line messages, report tables and sweep rows as a
    design's do (1 to 64 printable characters); a 100,000-character or multi-line name loaded."""
    text = data_path("gpus", "h100_pcie.yaml").read_text()
    line = next(ln for ln in text.splitlines() if ln.startswith(f"{key}:"))
    with pytest.raises(NmlabError) as info:
        gpuspec.load_gpu(_write_spec(tmp_path, text.replace(line, f"{key}: {value}", 1)))
    msg = str(info.value)
    assert msg.startswith(f"gpu 'bad': {key}: must be") and "\n" not in msg and len(msg) < 400, msg


@pytest.mark.parametrize("key", ["name", "display_name"])
@pytest.mark.parametrize("value", ['" h100_pcie"', '"H100 PCIe "'])
def test_a_gpu_name_starting_or_ending_with_a_space_is_one_line_naming_the_field(tmp_path, key, value):
    """``name: " h100_pcie"`` loaded: it reads as h100_pcie in every table, yet a sweep took it for another GPU."""
    text = data_path("gpus", "h100_pcie.yaml").read_text()
    line = next(ln for ln in text.splitlines() if ln.startswith(f"{key}:"))
    with pytest.raises(NmlabError) as info:
        gpuspec.load_gpu(_write_spec(tmp_path, text.replace(line, f"{key}: {value}", 1)))
    msg = str(info.value)
    assert msg.startswith(f"gpu 'bad': {key}: must not start or end with a space") and "\n" not in msg, msg


def test_a_figure_given_a_value_with_an_unpublished_source_is_refused(tmp_path):
    # docs/gpu.md: a figure is null exactly when its source says 'unpublished:' (both ways round).
    text = data_path("gpus", "h100_pcie.yaml").read_text()
    t = _source_unpublished(text, "power_limit_w")
    assert t != text and re.search(r"^power_limit_w: [0-9]", t, flags=re.M)
    with pytest.raises(NmlabError, match="power_limit_w: a figure is null exactly when its source says 'unpublished:'"):
        gpuspec.load_gpu(_write_spec(tmp_path, t))
