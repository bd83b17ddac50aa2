"""Parameters fitted on a GPU's own timings: `nmlab gpu fit --data CSV --gpu SPEC --out FILE` writes one set,
and a GPU spec naming that file (`params: FILE`) runs every command with it (docs/gpu.md, 'A GPU of your own').

One fit (a few seconds) is shared by the module: the bundled H100 PCIe timings with a copy of the bundled
h100_pcie spec, the rows and code the bundled `hopper` set is fitted from.
"""

import hashlib
import json
import math
import os
import shutil
from pathlib import Path

import pytest
import yaml

from hwmodel.cli import main
from hwmodel.io import data_path
from hwmodel.limits import load_yaml
from tests.conftest import cli_refuses_out_over_input

H100_CSV = data_path("gpu_measurements", "slidesparse_h100.csv")
GEMM = "256,4096,4096"


def spec_file(folder, params=None, name="h100_pcie", file="gpu.yaml"):
    """The bundled h100_pcie spec, copied to ``folder/file`` (renamed to ``name``), naming ``params`` if given."""
    text = data_path("gpus", "h100_pcie.yaml").read_text().replace("name: h100_pcie", f"name: {name}", 1)
    if params is not None:
        text += f"params: {params}\n"
    path = folder / file
    path.write_text(text)
    return path


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    """(folder, the written parameter file, what `gpu fit --data` printed)."""
    folder = tmp_path_factory.mktemp("own")
    spec = spec_file(folder)
    out = folder / "h100_params.yaml"
    import io
    from contextlib import redirect_stdout

    buf = io.StringIO()
    with redirect_stdout(buf):
        rc = main(["gpu", "fit", "--data", str(H100_CSV), "--gpu", str(spec), "--out", str(out)])
    assert rc == 0
    return folder, out, buf.getvalue()


def _changed_params(fitted, name="slow_params.yaml"):
    """A copy of the fitted file with other fixed costs and efficiencies (a card unlike the H100)."""
    folder, out, _ = fitted
    doc = load_yaml(out, "test")
    p = doc["sets"]["hopper"]["params"]
    p["kernel_dense_us"], p["kernel_sparse_us"] = 9.5, 3.5
    p["eta"]["bfloat16"] = {"dense": 0.5, "sparse": 0.9}
    path = folder / name
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def _predict(capsys, gpu, dtype="bf16"):
    assert main(["gpu", "predict", "--gpu", str(gpu), "--gemm", GEMM, "--dtype", dtype]) == 0
    return capsys.readouterr().out.splitlines()


# ----------------------------------------------------------------------------- the fit
def test_fit_on_the_bundled_h100_rows_gives_the_bundled_hopper_set(fitted):
    """The bundled hopper set is fitted on these rows by the same code (nmlab gpu fit): the same parameters."""
    _, out, printed = fitted
    doc = load_yaml(out, "test")
    bundled = load_yaml(data_path("gpu_params.yaml"), "test")["sets"]["hopper"]
    assert doc["format"] == "nmlab-gpu-params" and doc["version"] == 1
    assert list(doc["sets"]) == ["hopper"]  # one set, named after the GPU's architecture
    entry = doc["sets"]["hopper"]
    assert entry["params"] == bundled["params"]
    assert entry["fitted_on"] == bundled["fitted_on"] == ["h100_pcie"] and entry["rows"] == bundled["rows"] == 528
    assert entry["data"] == {"file": "slidesparse_h100.csv", "sha256": hashlib.sha256(H100_CSV.read_bytes()).hexdigest(),
                             "format": "published"}
    assert printed.startswith(f"wrote {out}: the 'hopper' set for h100_pcie, fitted on all 528 rows of slidesparse_h100.csv")
    assert "params: h100_params.yaml" in printed


def test_fit_names_the_parameters_its_timings_do_not_set(fitted, tmp_path, capsys):
    """A fit on timings that never throttle wrote the power scalars (the prior's centres) and an issue floor at its
    bound as fitted on the card, without a word; the H100's full file sets every parameter and says nothing."""
    assert "not set by these timings" not in fitted[2]
    lines = H100_CSV.read_text().splitlines(keepends=True)
    small = [ln for ln in lines[1:] if ",bfloat16," in ln and math.prod(map(int, ln.split(",")[3:6])) <= 2**30]
    data = tmp_path / "small_shapes.csv"
    data.write_text(lines[0] + "".join(small))
    out = tmp_path / "p.yaml"
    assert main(["gpu", "fit", "--data", str(data), "--gpu", "h100_pcie", "--out", str(out)]) == 0
    note = next(ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("not set by these timings: "))
    named = note.split(": ", 1)[1].split(" (")[0].split(", ")
    assert {"tensor_pj_per_flop", "sparse_energy", "heat_ms"} <= set(named), note
    assert "not a measurement of this card" in note


def test_too_few_rows_say_how_many_a_fit_needs_and_write_nothing(tmp_path, capsys):
    small = tmp_path / "small.csv"
    small.write_text("".join(H100_CSV.read_text().splitlines(keepends=True)[:6]))  # header and 5 bf16 rows
    out = tmp_path / "p.yaml"
    assert main(["gpu", "fit", "--data", str(small), "--gpu", "h100_pcie", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "the file has 5 rows" in err[0] and "needs at least 11 rows" in err[0], err
    assert not out.exists() and list(tmp_path.iterdir()) == [small]


def test_fit_data_needs_out_and_never_writes_the_bundled_file(tmp_path, capsys):
    bundled = data_path("gpu_params.yaml")
    before = bundled.read_bytes()
    assert main(["gpu", "fit", "--data", str(H100_CSV)]) == 2
    assert "--out: required with --data" in capsys.readouterr().err
    assert main(["gpu", "fit", "--data", str(H100_CSV), "--out", str(bundled)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "is the bundled parameter file" in err[0]
    assert main(["gpu", "fit", "--gpu", "h100_pcie"]) == 2  # without --data the bundled files name their GPUs
    assert "--gpu applies to --data" in capsys.readouterr().err
    assert bundled.read_bytes() == before


@pytest.mark.parametrize("which", ["--data", "--gpu"])
def test_fit_data_never_writes_over_its_inputs(tmp_path, capsys, which):
    """`--out` naming the timing CSV or the spec: the rename replaced the user's measurements (or spec) with the
    parameter file."""
    data = tmp_path / "t.csv"
    shutil.copy(H100_CSV, data)
    spec = spec_file(tmp_path)
    target = data if which == "--data" else spec
    cli_refuses_out_over_input(capsys, ["gpu", "fit", "--data", str(data), "--gpu", str(spec), "--out", str(target)],
                               target, which, command="gpu fit")


def test_a_file_of_several_gpus_asks_for_gpu(tmp_path, capsys):
    two = tmp_path / "two.csv"
    a100 = data_path("gpu_measurements", "slidesparse_a100.csv").read_text().splitlines(keepends=True)[1:]
    two.write_text(H100_CSV.read_text() + "".join(a100))
    assert main(["gpu", "fit", "--data", str(two), "--out", str(tmp_path / "p.yaml")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "timings of 2 GPUs (a100_pcie, h100_pcie)" in err[0] and "pass --gpu" in err[0]
    assert not (tmp_path / "p.yaml").exists()


# ----------------------------------------------------------------------------- a spec naming the file
def test_a_spec_naming_the_fitted_file_predicts_what_the_bundled_set_predicts(fitted, capsys):
    folder, out, _ = fitted
    spec = spec_file(folder, params=out.name, file="named.yaml")  # relative to the spec's folder
    for dtype in ("bf16", "int8", "fp8"):
        own, bundled = _predict(capsys, spec, dtype), _predict(capsys, "h100_pcie", dtype)
        assert own[1:] == bundled[1:]
    assert own[0].startswith("h100_pcie (NVIDIA H100 PCIe 80GB), hopper parameters of h100_params.yaml (fitted on "
                             "528 rows of slidesparse_h100.csv); GEMM"), own[0]
    from hwmodel.simulate import simulate
    from hwmodel.workload import default_workload

    for scenario, batch in (("inference", 1), ("train_step", 256)):
        a = simulate(default_workload(), str(spec), batch=batch, scenario=scenario).summary()
        b = simulate(default_workload(), "h100_pcie", batch=batch, scenario=scenario).summary()
        assert a["latency_s"] == b["latency_s"] and a["energy_pj"] == b["energy_pj"]


def test_a_different_params_file_changes_predict_simulate_validate_and_check(fitted, capsys):
    folder, out, _ = fitted
    slow = _changed_params(fitted)
    spec = spec_file(folder, params=slow.name, name="mycard", file="mycard.yaml")
    own, bundled = _predict(capsys, spec), _predict(capsys, "h100_pcie")
    assert own[1] != bundled[1] and own[2] != bundled[2]
    # The note says whose timings, and that they were not this GPU's (the file names h100_pcie).
    assert "hopper parameters of slow_params.yaml (fitted on 528 rows of slidesparse_h100.csv, measured on h100_pcie, " \
           "not on this GPU)" in own[0]
    dense, sparse = (float(line.split()[1]) for line in own[1:3])
    from hwmodel.gpu.model import GpuParams, predict
    from hwmodel.gpu.params import params_from_doc
    from hwmodel.gpu.spec import gpu_for

    params = params_from_doc(load_yaml(slow, "test")["sets"]["hopper"]["params"], "test")
    assert isinstance(params, GpuParams)
    assert dense == pytest.approx(predict(gpu_for(str(spec)), 256, 4096, 4096, "bfloat16", False, params) * 1e6, abs=0.006)
    assert sparse == pytest.approx(predict(gpu_for(str(spec)), 256, 4096, 4096, "bfloat16", True, params) * 1e6, abs=0.006)

    assert main(["simulate", "--design", str(spec)]) == 0
    sim = capsys.readouterr().out
    assert main(["simulate", "--design", "h100_pcie"]) == 0
    ref = capsys.readouterr().out
    total = lambda text: next(ln for ln in text.splitlines() if ln.startswith("total:"))  # noqa: E731
    assert total(sim) != total(ref)
    assert ("parameters: the fitted 'hopper' set of slow_params.yaml, L2 cold (fitted on 528 rows of "
            "slidesparse_h100.csv, measured on h100_pcie, not on this GPU)") in sim

    assert main(["gpu", "validate", "--data", str(H100_CSV), "--gpu", str(spec), "--no-fit", "--json"]) == 0
    (got,) = json.loads(capsys.readouterr().out)
    assert main(["gpu", "validate", "--data", str(H100_CSV), "--gpu", "h100_pcie", "--no-fit", "--json"]) == 0
    (ref_v,) = json.loads(capsys.readouterr().out)
    assert got["params"]["kernel_dense_us"] == 9.5 and got["mape_dense"] != ref_v["mape_dense"]
    assert got["params_source"].startswith("the 'hopper' set of slow_params.yaml (fitted on 528 rows")

    assert main(["check", str(spec), "--latency-budget", "1s", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["gpu_parameters"].startswith("the 'hopper' set of slow_params.yaml (fitted on 528 rows of "
                                            "slidesparse_h100.csv")


def test_caches_key_on_the_params_file(fitted, tmp_path):
    """A parameter file rewritten under the same spec is read again (spec caches hold its stamp)."""
    from hwmodel.gpu.design_point import gpu_design, model_params
    from hwmodel.simulate import simulate
    from hwmodel.workload import default_workload

    _, out, _ = fitted
    params = tmp_path / "p.yaml"
    shutil.copy(out, params)
    spec = spec_file(tmp_path, params="p.yaml")
    before = model_params(gpu_design(str(spec)).spec).kernel_dense_us
    lat_before = simulate(default_workload(), str(spec)).summary()["latency_s"]
    assert gpu_design(str(spec)) is gpu_design(str(spec))  # reused while neither file changed
    shutil.copy(_changed_params(fitted, "other.yaml"), params)
    os.utime(params, ns=(1, 1))  # another mtime whatever the clock's resolution
    assert model_params(gpu_design(str(spec)).spec).kernel_dense_us == 9.5 != before
    assert simulate(default_workload(), str(spec)).summary()["latency_s"] != lat_before


def test_the_recorded_sha_is_that_of_the_bytes_parsed(fitted, tmp_path, monkeypatch):
    """A parameter file replaced while it is read: the sha256 (a sweep's design hash follows it) is that of
    the set the model runs with. It was hashed on a second read, which could be the other file's."""
    import hwmodel.gpu.params as params_mod
    from hwmodel.gpu.spec import load_gpu

    _, out, _ = fitted
    path = tmp_path / "p.yaml"
    shutil.copy(out, path)
    first = path.read_bytes()
    other = _changed_params(fitted, "other.yaml").read_bytes()
    read_sets = params_mod._read_sets

    def read_then_replaced(*args, **kwargs):
        sets = read_sets(*args, **kwargs)
        path.write_bytes(other)  # the file changes right after it was parsed
        return sets

    monkeypatch.setattr(params_mod, "_read_sets", read_then_replaced)
    own = params_mod.own_params(load_gpu(str(spec_file(tmp_path, params="p.yaml"))))
    assert own.params.kernel_dense_us != 9.5  # the first file's set
    assert own.sha256 == hashlib.sha256(first).hexdigest() != hashlib.sha256(other).hexdigest()


def test_a_sweeps_design_sha_and_record_follow_the_params_file(fitted, tmp_path):
    """A sweep point's id holds its design's sha: it must change with the parameter file, or a resumed sweep
    would keep rows of the old parameters. sweep.json names the file and what it was fitted on."""
    from hwmodel.gpu.design_point import gpu_design
    from sweeps.api import gpu_model_record
    from sweeps.grid import design_sha

    _, out, _ = fitted
    params = tmp_path / "p.yaml"
    shutil.copy(out, params)
    spec = spec_file(tmp_path, params="p.yaml")
    sha = design_sha(gpu_design(str(spec)))
    rec = gpu_model_record(str(spec))
    assert rec["params_file"] == "p.yaml" and rec["params_own"] is True and rec["params_set"] == "hopper"
    assert rec["params_note"] == "fitted on 528 rows of slidesparse_h100.csv" and rec["params_fitted_on"] == ["h100_pcie"]
    assert rec["params_sha"] == hashlib.sha256(params.read_bytes()).hexdigest()[:16]
    shutil.copy(_changed_params(fitted, "other2.yaml"), params)
    os.utime(params, ns=(2, 2))
    assert design_sha(gpu_design(str(spec))) != sha
    assert gpu_model_record(str(spec))["kernel_dense_us"] == 9.5


def test_a_gpu_sweep_and_its_report_use_the_own_set(fitted, tmp_path):
    import pandas as pd

    from hwmodel.simulate import simulate
    from reports.build import build_report
    from sweeps import api

    folder, _, _ = fitted
    slow = _changed_params(fitted, "sweep_params.yaml")
    shutil.copy(slow, tmp_path / "sweep_params.yaml")
    spec_file(tmp_path, params="sweep_params.yaml", name="mycard", file="mycard.yaml")
    cfg = tmp_path / "gpu.yaml"
    cfg.write_text(yaml.safe_dump({"designs": "none", "gpus": ["mycard.yaml"], "bits": [16],
                                   "patterns": ["2:4"], "scenarios": [{"scenario": "inference", "batch": 1}]}))
    out = tmp_path / "out"
    api.run(str(cfg), out, workers=1, progress=False)
    df = pd.read_parquet(out / "points.parquet")
    manifest = json.loads((out / "sweep.json").read_text())
    (rec,) = [d["gpu_model"] for d in manifest["designs"]]
    assert rec["params_own"] is True and rec["params_file"] == "sweep_params.yaml" and rec["kernel_dense_us"] == 9.5
    paths = {w["name"]: w["path"] for w in manifest["workloads"]}
    for row in df.head(3).itertuples():
        own = simulate(paths[row.workload], str(tmp_path / "mycard.yaml"), batch=1, bits=16).summary()["latency_s"]
        bundled = simulate(paths[row.workload], "h100_pcie", batch=1, bits=16).summary()["latency_s"]
        assert row.latency_s == pytest.approx(own, rel=1e-9) and abs(row.latency_s / bundled - 1) > 0.01
    build_report(out)
    page = (out / "report" / "index.html").read_text()
    assert ("mycard uses the hopper set of its own parameter file sweep_params.yaml (fitted on 528 rows of "
            "slidesparse_h100.csv, measured on h100_pcie, not on this GPU)") in page


def test_fit_data_reads_the_spec_without_its_own_params(fitted, tmp_path, capsys):
    """The spec may already name the file the fit is about to write (or a broken one): the fit does not read it."""
    spec = spec_file(tmp_path, params="not_yet.yaml")
    small = tmp_path / "t.csv"
    small.write_text(H100_CSV.read_text())
    assert main(["gpu", "fit", "--data", str(small), "--gpu", str(spec), "--out", str(tmp_path / "not_yet.yaml")]) == 0
    capsys.readouterr()
    assert _predict(capsys, spec)[0].startswith("h100_pcie (NVIDIA H100 PCIe 80GB), hopper parameters of not_yet.yaml "
                                                "(fitted on 528 rows of t.csv)")


# ----------------------------------------------------------------------------- bad parameter files
BOMB = "".join(f"{c}: &{c} [{', '.join([f'*{p}'] * 10) if p else ', '.join(['1'] * 10)}]\n"
               for p, c in zip(["", "a", "b", "c", "d", "e"], "abcdef"))


@pytest.mark.parametrize("make, needle", [
    (None, "params: no such file"),
    ("format: nmlab-gpu\nversion: 2\nsets: {}\n", "format/version: expected nmlab-gpu-params version 1"),
    ("format: nmlab-gpu-params\nversion: 2\nsets: {}\n", "format/version: expected nmlab-gpu-params version 1"),
    (BOMB, "alias"),
    ("x: !!python/object/apply:os.system [\"echo hi\"]\n", "not valid YAML"),
    ("x: 1\nx: 2\n", "key 'x' is given twice"),
    (lambda t: t.replace("  hopper:", "  ampere:"), "sets: no 'hopper' set (this GPU's architecture) nor a 'generic' one"),
    (lambda t: t.replace("eta_mem: 0.873", "eta_mem: .nan"), "sets.hopper.params: eta_mem: nan is not a finite number"),
    (lambda t: t.replace("issue_us: 1.533", "issue_us: -1.5"), "sets.hopper.params: issue_us: -1.5 is not a finite"),
    (lambda t: t.replace("bfloat16: {dense: 0.671", "bfloat16: {dense: -0.671"), "sets.hopper.params: eta.bfloat16.dense"),
    (lambda t: t.replace("l2_usable: 0.6894", "l2_usable: 7.0"), "sets.hopper.params: l2_usable: 7.0 not in"),
    (lambda t: t.replace("issue_us: 1.533", "isue_us: 1.533"), "sets.hopper.params: isue_us: unknown parameter"),
    (lambda t: t.replace("rows: 528", "rows: -3"), "sets.hopper.rows: expected a whole number"),
])
def test_a_bad_params_file_is_one_line_naming_the_field(fitted, tmp_path, capsys, make, needle):
    _, out, _ = fitted
    if make is not None:
        text = out.read_text()
        (tmp_path / "p.yaml").write_text(make(text) if callable(make) else make)
    spec = spec_file(tmp_path, params="p.yaml")
    for argv in (["gpu", "predict", "--gpu", str(spec), "--gemm", "64,64,64"], ["simulate", "--design", str(spec)],
                 ["check", str(spec), "--latency-budget", "1s"]):
        assert main(argv) == 2
        cap = capsys.readouterr()
        err = cap.err.strip().splitlines()
        assert len(err) == 1 and "params" in err[0] and needle in err[0] and "Traceback" not in cap.err, err
        assert cap.out == ""


@pytest.mark.parametrize("value", ["[1, 2]", "''", "7"])
def test_a_params_key_that_is_no_path_is_refused(tmp_path, capsys, value):
    spec = spec_file(tmp_path, params=value)
    assert main(["gpu", "predict", "--gpu", str(spec), "--gemm", "64,64,64"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "params: expected the path of a parameter file" in err[0]


def test_the_why_line_names_the_own_file_and_its_timings():
    """A slow 2:4 point's why line quotes the fixed times the sweep ran with: for a spec's own parameter file it
    says which file and what it was fitted on, and does not call the bundled file's sha a change."""
    from reports.why import gpu_fixed_times

    rec = {"params_file": "p.yaml", "params_sha": "0" * 16, "params_set": "ampere", "params_fitted_on": ["rtx3090"],
           "params_own": True, "params_note": "fitted on 412 rows of gpu.csv", "kernel_dense_us": 4.0,
           "kernel_sparse_us": 6.0}
    got = gpu_fixed_times({"designs": [{"name": "rtx3090", "gpu_model": rec}]})
    assert got == {"rtx3090": (4.0, 6.0, "the sweep's ampere parameters of p.yaml, fitted on 412 rows of gpu.csv")}


@pytest.mark.parametrize("field, value, message", [
    ("params_own", "yes", "expected true or false"),
    ("params_note", "two\nlines", "expected up to 300 printable characters"),
])
def test_a_damaged_own_params_record_is_one_line(tmp_path, field, value, message):
    from hwmodel.errors import NmlabError
    from reports.data import _check_manifest

    rec = {"params_file": "p.yaml", "params_sha": "0" * 16, "params_set": "ampere", "params_fitted_on": ["rtx3090"],
           "params_own": True, "params_note": "fitted on 412 rows of gpu.csv", "kernel_dense_us": 4.0,
           "kernel_sparse_us": 6.0}
    _check_manifest({"designs": [{"name": "rtx3090", "gpu_model": rec}]}, tmp_path / "sweep.json")
    with pytest.raises(NmlabError, match=rf"designs\[0\]\.gpu_model\.{field}: {message}"):
        _check_manifest({"designs": [{"name": "rtx3090", "gpu_model": {**rec, field: value}}]}, tmp_path / "sweep.json")


def test_fit_data_reads_a_bench_csv(tmp_path, capsys):
    """The other format gpu validate reads: an `nmlab gpu bench` CSV (here the H100's bf16 and int8 rows written as
    bench rows of an RTX 3090, with the example spec); the file records its format and the notes its name."""
    import csv

    from hwmodel.gpu import schema

    rows = []
    for r in csv.DictReader(H100_CSV.open()):
        if r["dtype"] not in ("bf16", "bfloat16", "int8"):
            continue
        dtype = "bfloat16" if r["dtype"] in ("bf16", "bfloat16") else "int8"
        for impl, t in (("dense", r["dense_us"]), ("sparse_cslt", r["sparse_us"])):
            row = schema.empty_row()
            row.update(run_id="r", status="ok", error="", kind="gemm", name="square", env="", width=0, dtype=dtype,
                       out_dtype="int32" if dtype == "int8" else dtype, impl=impl, backend="x", m=int(r["m"]),
                       n=int(r["n"]), k=int(r["k"]), graph_median_us=float(t), device_name="NVIDIA GeForce RTX 3090",
                       check_ok=True)
            rows.append(row)
    bench = tmp_path / "gpu.csv"
    schema.write_rows(bench, rows)
    spec = tmp_path / "rtx3090.yaml"
    spec.write_text((Path(__file__).resolve().parents[1] / "docs" / "examples" / "gpu_rtx3090.yaml").read_text()
                    + "params: rtx3090_params.yaml\n")
    out = tmp_path / "rtx3090_params.yaml"
    assert main(["gpu", "fit", "--data", str(bench), "--gpu", str(spec), "--out", str(out)]) == 0
    n = len(rows) // 2
    assert f"the 'ampere' set for rtx3090, fitted on all {n} rows of gpu.csv" in capsys.readouterr().out
    entry = load_yaml(out, "test")["sets"]["ampere"]
    assert entry["data"]["format"] == "bench" and entry["rows"] == n and set(entry["params"]["eta"]) == {"bfloat16", "int8"}
    head = _predict(capsys, spec)[0]
    assert head.startswith(f"rtx3090 (NVIDIA GeForce RTX 3090), ampere parameters of rtx3090_params.yaml (fitted on {n} "
                           "rows of gpu.csv); GEMM"), head
