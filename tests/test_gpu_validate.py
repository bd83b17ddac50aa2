"""`nmlab gpu validate | predict | fit`: both CSV formats, the split, the crossover, the scores on the
bundled published measurements (a regression guard and the issue's targets), and bad input."""

import json

import numpy as np
import pytest

from hwmodel.cli import main
from hwmodel.gpu import schema
from hwmodel.gpu.measurements import bundled_files, read_measurements
from hwmodel.gpu.validate import (TARGETS, crossover, crossover_steps, load_blocks, run_validate, split_shapes,
                                  validate_block)

H100_FILE = next(p for p in bundled_files() if p.name == "slidesparse_h100.csv")
HEADER = "source,gpu,dtype,m,k,n,dense_us,sparse_us,speedup,notes\n"


def _published_csv(path, rows):
    path.write_text(HEADER + "".join(f"x,NVIDIA H100 PCIe,{r}\n" for r in rows))
    return path


@pytest.fixture(scope="module")
def bundled_reports():
    # Held-out scores per GPU and leave-one-GPU-out, as `nmlab gpu validate` computes them.
    return {r["gpu"]: r for r in run_validate(None, None)}


def test_published_format_loads():
    meas = read_measurements(H100_FILE)
    assert meas.fmt == "published" and meas.l2 == "warm" and len(meas) == 528
    assert set(meas.dtype) == {"bfloat16", "float8_e4m3fn", "int8"}
    assert np.allclose(meas.speedup, meas.dense_us / meas.sparse_us)
    assert meas.out_bytes[meas.dtype == "int8"].tolist() == [1.0] * 188  # int8 -> int8 output


def test_published_dense_fp4_of_the_source_is_the_gemm_it_ran(tmp_path):
    # SlideSparse's cuBLASLt harness passes the packed fp4 bytes (K // 2) as cuBLASLt's element
    # count, so its dense fp4 time is a GEMM of half the row's k (B200 16384^3: 683 us, 12.9
    # PFLOP/s over 2mnk, above any B200); its 2:4 call runs the row's k.
    from hwmodel.gpu.fit import GpuData
    from hwmodel.gpu.params import GpuParams
    from hwmodel.gpu.spec import gpu_for

    src = "bcacdwk/vllmbench@d629629:latency_SQUARE.csv"
    path = tmp_path / "b200.csv"
    path.write_text(HEADER + f"{src},NVIDIA B200,float4_e2m1,4096,4096,4096,18.6,23.0,0.81,square\n"
                    f"{src},NVIDIA B200,float8_e4m3fn,4096,4096,4096,45.5,30.2,1.51,square\n"
                    "mine,NVIDIA B200,float4_e2m1,4096,2048,4096,18.6,23.0,0.81,square\n")
    meas = read_measurements(path)
    assert meas.k.tolist() == [4096, 4096, 2048]  # the rows keep the logical k
    assert meas.dense_k.tolist() == [2048, 4096, 2048]  # only the source's dense fp4 is halved
    assert meas.subset(np.array([0])).dense_k.tolist() == [2048]
    other = tmp_path / "other.csv"
    other.write_text(HEADER + "mine,NVIDIA B200,float4_e2m1,4096,4096,4096,18.6,23.0,0.81,square\n")
    mine = read_measurements(other)
    assert mine.dense_k.tolist() == [4096]  # another source's fp4 row ran its k
    spec, params = gpu_for("b200"), GpuParams()
    dense, sparse = GpuData.build(spec, meas).predict_us(params)
    dense_mine, sparse_mine = GpuData.build(spec, mine).predict_us(params)
    # The source's row: dense time of the k/2 GEMM (row 2), 2:4 time of its own k (as another source's).
    assert dense[0] == pytest.approx(dense[2], rel=1e-12) and dense[0] < 0.8 * dense_mine[0]
    assert sparse[0] == pytest.approx(sparse_mine[0], rel=1e-12)


def test_published_packed_fp4_row_of_odd_k_is_refused_on_its_line(tmp_path):
    # The source's dense call ran k // 2 packed bytes: an odd k (k = 1 gave a 0.5 or 0-element dense
    # GEMM) is a broken row, named by its line, not a model error about GEMM sizes later.
    from hwmodel.errors import NmlabError

    path = tmp_path / "odd.csv"
    path.write_text(HEADER + "bcacdwk/vllmbench@x:y.csv,NVIDIA B200,float4_e2m1,64,1,64,5.0,6.0,0.83,\n")
    with pytest.raises(NmlabError, match=r"line 2: float4_e2m1 k = 1 is not a multiple of 2"):
        read_measurements(path)
    path.write_text(HEADER + "mine,NVIDIA B200,float4_e2m1,64,1,64,5.0,6.0,0.83,\n")
    assert read_measurements(path).dense_k.tolist() == [1.0]  # another source ran k itself


def test_bundled_dense_k_halves_only_the_b200_fp4_rows():
    # The halving keys on the rows' source column: a bundled file whose source text changed would
    # silently drop it (B200 fp4 dense back at 12.9 PFLOP/s over 2mnk); every other row ran its k.
    for path in bundled_files():
        meas = read_measurements(path)
        fp4 = meas.dtype == "float4_e2m1"
        assert np.array_equal(meas.dense_k[~fp4], meas.k[~fp4]), path.name
        assert np.array_equal(meas.dense_k[fp4], meas.k[fp4] / 2), path.name
        assert fp4.any() == (path.name == "slidesparse_b200.csv")


def test_bench_rows_run_their_own_k(tmp_path):
    # nmlab's own bench times the logical k for every dtype, fp4 included: dense_k stays k.
    rows = []
    for impl, t in (("dense", 30.0), ("sparse_cslt", 20.0)):
        row = schema.empty_row()
        row.update(run_id="r", status="ok", error="", kind="gemm", name="square", env="", width=0,
                   dtype="float4_e2m1", out_dtype="bfloat16", impl=impl, backend="x", m=1024, n=1024, k=2048,
                   graph_median_us=t, eager_median_us=t + 10, device_name="NVIDIA B200")
        rows.append(row)
    path = tmp_path / "bench.csv"
    schema.write_rows(path, rows)
    meas = read_measurements(path)
    assert meas.dtype.tolist() == ["float4_e2m1"] and meas.dense_k.tolist() == meas.k.tolist() == [2048.0]


def test_bench_format_loads(tmp_path):
    rows = []
    for impl, t in (("dense", 30.0), ("sparse_cslt", 20.0), ("sparse_api", 40.0)):
        row = schema.empty_row()
        row.update(run_id="r", status="ok", error="", kind="gemm", name="square", env="", width=0, dtype="bfloat16",
                   out_dtype="bfloat16", impl=impl, backend="x", m=1024, n=1024, k=1024, graph_median_us=t,
                   eager_median_us=t + 10, device_name="NVIDIA H100 PCIe")
        rows.append(row)
    path = tmp_path / "bench.csv"
    schema.write_rows(path, rows)
    meas = read_measurements(path)
    assert meas.fmt == "bench" and meas.l2 == "cold" and len(meas) == 1
    assert (meas.dense_us[0], meas.sparse_us[0]) == (30.0, 20.0)  # graph medians, cuSPARSELt path
    (block,) = load_blocks([path])
    assert block.spec.name == "h100_pcie"


def test_split_is_disjoint_seeded_and_spans_sizes():
    meas = read_measurements(H100_FILE)
    calib = split_shapes(meas)
    assert np.array_equal(calib, split_shapes(meas))
    keys = meas.shape_keys()
    cal_shapes = {k for k, c in zip(keys, calib) if c}
    held_shapes = {k for k, c in zip(keys, calib) if not c}
    assert cal_shapes and held_shapes and cal_shapes.isdisjoint(held_shapes)
    # A shape's rows (every dtype, dense and 2:4 live in one row) are on one side.
    for dtype in set(meas.dtype):
        assert {k for k, c, d in zip(keys, calib, meas.dtype) if c and d == dtype} <= cal_shapes
    assert 0.3 < len(cal_shapes) / len(set(keys)) < 0.37
    flops = sorted(m * k * n for m, k, n in cal_shapes)
    assert flops[0] <= 256**3 and flops[-1] >= 8192**3
    for dtype in set(meas.dtype):
        assert calib[meas.dtype == dtype].any() and (~calib[meas.dtype == dtype]).any()
    assert not np.array_equal(calib, split_shapes(meas, seed=1))


def test_validate_scores_the_split_of_its_seed():
    # validate_block fits on split_shapes(meas, seed) and scores the rest (what
    # benchmarks/gpu_split_seeds.py reruns docs/gpu_record.md's per-seed figures with).
    (block,) = load_blocks([H100_FILE])
    for seed in (13, 2):
        report = validate_block(block, seed=seed)
        assert np.array_equal(report["_scored"], ~split_shapes(block.meas, seed)), seed


def test_crossover():
    assert crossover([256, 1024, 4096, 16384], [0.6, 0.9, 1.2, 1.4]) == 4096
    assert crossover([16384, 256, 4096, 1024], [1.4, 0.6, 1.2, 0.9]) == 4096
    assert crossover([256, 1024, 4096], [1.1, 0.9, 1.2]) == 4096
    assert crossover([256, 1024], [0.5, 0.9]) is None
    assert crossover_steps([256, 1024, 4096], 1024, 4096) == 1
    assert crossover_steps([256, 1024, 4096], None, 256) == 3
    assert crossover_steps([256, 1024], None, None) == 0


def test_bundled_scores_do_not_regress(bundled_reports):
    # A regression guard at the figures the model reaches today (docs/gpu.md, README), plus
    # about a point: held-out time MAPE (worse of dense and 2:4) and speedup error per GPU over
    # all its dtypes, and leave-one-GPU-out MAPE (worse of dense and 2:4).
    # Today: a100 7.1 / 7.1 / 9.6%, b200 6.2 / 7.8 / 8.2%, h100 7.9 / 10.3 / 12.0%,
    # rtx4090 7.3 / 8.6 / 12.5%.
    guard = {"a100_pcie": 0.085, "b200": 0.075, "h100_pcie": 0.095, "rtx4090": 0.085}
    speedup_guard = {"a100_pcie": 0.085, "b200": 0.09, "h100_pcie": 0.115, "rtx4090": 0.095}
    logo_guard = {"a100_pcie": 0.11, "b200": 0.095, "h100_pcie": 0.135, "rtx4090": 0.145}
    assert set(bundled_reports) == set(guard)
    for name, r in bundled_reports.items():
        assert r["fit"] == "calibration" and r["rows_calibration"] > 0 and r["rows_scored"] > 0
        assert max(r["mape_dense"], r["mape_sparse"]) < guard[name], name
        assert r["speedup_mape"] < speedup_guard[name], name
        assert r["winner_agreement"] > 0.85, name
        lo = r["leave_one_gpu_out"]
        assert lo["fitted_on"] and name not in lo["fitted_on"]
        assert max(lo["mape_dense"], lo["mape_sparse"]) < logo_guard[name], name


@pytest.mark.xfail(strict=True, reason="the issue's targets are not met yet (docs/gpu_record.md, 'What the model misses')")
def test_bundled_scores_meet_the_issue_targets(bundled_reports):
    for name, r in bundled_reports.items():
        for dtype, s in r["dtypes"].items():
            assert s["mape_dense"] < TARGETS["mape"] and s["mape_sparse"] < TARGETS["mape"], (name, dtype)
            assert s["speedup_mape"] < TARGETS["speedup_mape"], (name, dtype)
            assert s["crossover"]["steps"] <= TARGETS["crossover_steps"], (name, dtype)
        lo = r["leave_one_gpu_out"]
        assert max(lo["mape_dense"], lo["mape_sparse"]) < TARGETS["logo_mape"], name


def test_no_fit_uses_bundled_parameters_and_json(capsys, tmp_path):
    assert main(["gpu", "validate", "--data", str(H100_FILE), "--gpu", "h100_pcie", "--no-fit", "--json",
                 "--plots", str(tmp_path / "plots")]) == 0
    (obj,) = json.loads(capsys.readouterr().out)
    for key in ("gpu", "rows", "fit", "mape_dense", "mape_sparse", "speedup_mape", "winner_agreement",
                "crossover_measured", "crossover_predicted"):
        assert key in obj, key
    assert obj["gpu"] == "h100_pcie" and obj["fit"] == "none" and obj["rows"] == 528 and obj["rows_scored"] == 528
    assert 0 < obj["mape_dense"] < 1 and obj["crossover_measured"]["bfloat16"] == 4096
    for key in ("crossover_measured", "crossover_predicted"):  # square sizes are whole numbers (were 4096.0)
        assert all(v is None or type(v) is int for v in obj[key].values()), obj[key]
    assert sorted(p.name for p in (tmp_path / "plots").iterdir()) == [
        "h100_pcie_predicted_vs_measured.png", "h100_pcie_speedup_vs_size.png"]


def test_text_report_names_the_gpu_and_dtypes(capsys):
    assert main(["gpu", "validate", "--data", str(H100_FILE)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("h100_pcie (NVIDIA H100 PCIe; hopper)") and "held-out shapes" in out
    for dtype in ("bfloat16", "float8_e4m3fn", "int8"):
        assert f"  {dtype}" in out


def test_predict_prints_both_times_and_the_speedup(capsys):
    assert main(["gpu", "predict", "--gpu", "h100_sxm", "--gemm", "4096,4096,4096", "--dtype", "bf16"]) == 0
    out = capsys.readouterr().out
    assert "dense" in out and "2:4" in out and "speedup dense/2:4" in out
    dense = float(out.split("dense")[1].split("us")[0])
    sparse = float(out.split("2:4 ")[1].split("us")[0])
    # The times are printed to 0.01 us, so their ratio matches the printed speedup to ~1e-3.
    speedup = float(out.split("speedup dense/2:4")[1].split()[0])
    assert speedup == pytest.approx(dense / sparse, abs=2e-3)
    # The printed times are the public model's (to the 0.01 us printed).
    from hwmodel.gpu.model import predict
    from hwmodel.gpu.spec import gpu_for

    spec = gpu_for("h100_sxm")
    for shown, sparse_flag in ((dense, False), (sparse, True)):
        assert shown == pytest.approx(predict(spec, 4096, 4096, 4096, "bfloat16", sparse_flag) * 1e6, abs=0.006)


@pytest.mark.parametrize("content,message", [
    (b"\x00\x01\x02binary\xff", "binary"),
    (b"", "empty file"),
    (b"   \n", "empty file"),
    ("source,gpu,dtype,m,k,n,dense_us,speedup\nx,NVIDIA H100 PCIe,bfloat16,64,64,64,4.6,0.8\n".encode(),
     "missing column(s) sparse_us"),
    (HEADER.encode(), "no data rows"),
])
def test_bad_files_are_one_line_errors(tmp_path, capsys, content, message):
    path = tmp_path / "bad.csv"
    path.write_bytes(content)
    plots = tmp_path / "plots"
    assert main(["gpu", "validate", "--data", str(path), "--plots", str(plots)]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and not plots.exists()
    err = captured.err.strip().splitlines()
    assert len(err) == 1 and message in err[0] and str(path) in err[0], err


@pytest.mark.parametrize("value,what", [("0", "dense_us"), ("-3.5", "dense_us"), ("nan", "dense_us"),
                                        ("inf", "dense_us"), ("fast", "dense_us")])
def test_bad_times_are_refused_before_any_output(tmp_path, capsys, value, what):
    # The bad row is the last one: nothing may be printed for the good rows before it.
    good = [f"bfloat16,{s},{s},{s},{s / 100:.3f},{s / 150:.3f},1.5,sq" for s in (64, 128, 256, 512, 1024, 2048)]
    path = _published_csv(tmp_path / "bad.csv", good + [f"bfloat16,4096,4096,4096,{value},200,1.5,sq"])
    assert main(["gpu", "validate", "--data", str(path)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    (line,) = captured.err.strip().splitlines()
    assert f"{path}: line 8: column {what}" in line


def test_unknown_gpu_and_dtype_are_named(tmp_path, capsys):
    path = tmp_path / "other.csv"
    path.write_text(HEADER + "x,Radeon 9000,bfloat16,64,64,64,5,6,0.8,sq\n")
    assert main(["gpu", "validate", "--data", str(path)]) == 2
    assert "unknown GPU 'Radeon 9000'" in capsys.readouterr().err
    path = _published_csv(tmp_path / "dt.csv", ["complex64,64,64,64,5,6,0.8,sq"])
    assert main(["gpu", "validate", "--data", str(path)]) == 2
    assert "line 2: column dtype 'complex64'" in capsys.readouterr().err
    assert main(["gpu", "predict", "--gpu", "h100_sxm", "--gemm", "4096,4096", "--dtype", "bf16"]) == 2
    assert "--gemm" in capsys.readouterr().err


def test_bundled_parameters_are_what_fit_writes(tmp_path):
    # The parameter file is generated, never edited: refitting reproduces it.
    from hwmodel.gpu.params import default_path, load_params_file

    out = tmp_path / "params.yaml"
    assert main(["gpu", "fit", "--out", str(out)]) == 0
    fresh, bundled = load_params_file(out), load_params_file(default_path())
    assert set(fresh) == set(bundled)
    for name in fresh:
        a, b = fresh[name].as_dict(), bundled[name].as_dict()
        for key, value in a.items():
            if key == "eta":
                for dtype, pair in value.items():
                    for kind, v in pair.items():
                        assert v == pytest.approx(b["eta"][dtype][kind], rel=0.02), (name, dtype, kind)
            else:
                assert value == pytest.approx(b[key], rel=0.02), (name, key)


def test_gpu_without_data_is_refused(capsys):
    # One spec forced on every bundled file scored the A100's rows as a B200, and leave-one-GPU-out
    # pinned the last GPU's scores on the first (fitted on "b200, b200, b200").
    assert main(["gpu", "validate", "--gpu", "b200", "--no-fit"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    (line,) = captured.err.strip().splitlines()
    assert "--gpu applies to --data FILE" in line


def _h100_halves(tmp_path):
    """The bundled H100 PCIe file split into two files of 264 rows each, loaded as two blocks of one GPU."""
    lines = H100_FILE.read_text().splitlines(keepends=True)
    halves = []
    for i, rows in enumerate((lines[1:265], lines[265:])):
        path = tmp_path / f"half{i}.csv"
        path.write_text(lines[0] + "".join(rows))
        halves.append(path)
    return load_blocks(halves)


def test_leave_one_out_is_per_block_even_for_one_spec(tmp_path):
    # Two files of one GPU: each block gets its own scores (they were keyed by spec name, so the
    # second overwrote the first and the caller's zip gave them to the wrong report).
    from hwmodel.gpu.validate import leave_one_out

    blocks = _h100_halves(tmp_path)
    out = leave_one_out(blocks)
    assert len(out) == 2 and [s["fitted_on"] for s in out] == [["h100_pcie"], ["h100_pcie"]]
    assert [s["rows"] for s in out] == [len(b.meas) for b in blocks] == [264, 264]


def _bench_rows(kind="gemm", name="square", times=(30.0, 20.0), **extra):
    rows = []
    for impl, t in zip(("dense", "sparse_cslt"), times):
        row = schema.empty_row()
        row.update(run_id="r", status="ok", error="", kind=kind, name=name, env="", width=0, dtype="bfloat16",
                   out_dtype="bfloat16", impl=impl, backend="x", m=256, n=256, k=256, graph_median_us=t,
                   device_name="NVIDIA H100 PCIe", check_ok=True)
        row.update(extra)
        rows.append(row)
    return rows


def test_bench_cases_of_one_shape_are_kept_and_repeats_refused(tmp_path, capsys):
    # The full bench grid times 12 shapes both as a square GEMM and as a TD3 layer: keyed by shape
    # alone, the layer's rows silently replaced the square's.
    path = tmp_path / "bench.csv"
    schema.write_rows(path, _bench_rows() + _bench_rows("layer", "hopper.actor.fc2", (31.0, 22.0), env="hopper",
                                                         width=256))
    meas = read_measurements(path)
    assert sorted(zip(meas.dense_us.tolist(), meas.sparse_us.tolist())) == [(30.0, 20.0), (31.0, 22.0)]
    # The same case twice is one line naming both rows.
    schema.write_rows(path, _bench_rows() + _bench_rows(times=(33.0, 21.0)))
    assert main(["gpu", "validate", "--data", str(path), "--no-fit"]) == 2
    captured = capsys.readouterr()
    (line,) = captured.err.strip().splitlines()
    assert captured.out == "" and "line 4:" in line and "dense is already on line 2" in line


def test_bench_rows_that_failed_the_numerical_check_are_left_out(tmp_path):
    path = tmp_path / "bench.csv"
    bad = _bench_rows(times=(30.0, 5.0))
    bad[1]["check_ok"] = False  # a wrong alg_id: fast and wrong
    schema.write_rows(path, bad + _bench_rows(times=(31.0, 22.0), m=1024))
    meas = read_measurements(path)
    assert (meas.dense_us.tolist(), meas.sparse_us.tolist()) == ([31.0], [22.0])


def test_published_repeats_and_oversized_files_are_refused(tmp_path, capsys, monkeypatch):
    path = _published_csv(tmp_path / "dup.csv", ["bfloat16,64,64,64,5,6,0.8,sq", "bfloat16,128,128,128,6,6,1,sq",
                                                 "bf16,64,64,64.0,5.5,6,0.9,sq"])
    assert main(["gpu", "validate", "--data", str(path), "--no-fit"]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert f"{path}: line 4:" in line and "64x64x64 (m x k x n) is already on line 2" in line
    # Bounded like every CSV input (docs/limits.md).
    monkeypatch.setenv("NMLAB_MAX_CSV_BYTES", "1000")
    assert main(["gpu", "validate", "--data", str(H100_FILE), "--no-fit"]) == 2
    assert "NMLAB_MAX_CSV_BYTES" in capsys.readouterr().err
    monkeypatch.delenv("NMLAB_MAX_CSV_BYTES")
    monkeypatch.setenv("NMLAB_MAX_CSV_ROWS", "100")
    assert main(["gpu", "validate", "--data", str(H100_FILE), "--no-fit"]) == 2
    assert "NMLAB_MAX_CSV_ROWS" in capsys.readouterr().err


@pytest.mark.parametrize("cells", ["5,1e308", "1e13,6"])
def test_published_times_past_any_gemm_are_refused(tmp_path, capsys, cells):
    # dense_us 1e308 was read: `--plots` overflowed its log axes (RuntimeWarning lines on stderr, exit 0).
    path = _published_csv(tmp_path / "slow.csv", [f"bfloat16,64,64,64,{cells},0.8,sq", "bfloat16,128,128,128,6,6,1,sq"])
    assert main(["gpu", "validate", "--data", str(path), "--no-fit", "--plots", str(tmp_path / "plots")]) == 2
    captured = capsys.readouterr()
    (line,) = captured.err.strip().splitlines()
    assert f"{path}: line 2: column" in line and "is over the longest GEMM time, 10^12 us" in line
    assert captured.out == "" and not (tmp_path / "plots").exists()


@pytest.mark.parametrize("gemm,message", [("1,1,99999999999", "over the largest GEMM dimension 16,777,216"),
                                          ("1,1," + "9" * 5000, "is not M,K,N")])
def test_predict_refuses_gemms_past_the_dimension_bound(capsys, gemm, message):
    # A timing file's sizes stop at MAX_GEMM_DIM; predict printed times for a 1e11-wide GEMM.
    assert main(["gpu", "predict", "--gpu", "h100_sxm", "--gemm", gemm]) == 2
    captured = capsys.readouterr()
    (line,) = captured.err.strip().splitlines()
    assert captured.out == "" and message in line and len(line) < 200


def test_dtype_names_are_case_blind():
    # "BF16" was accepted but "INT8" (and "BFloat16") were not: aliases alone were lower-cased.
    from hwmodel.gpu.measurements import canonical_dtype

    assert [canonical_dtype(x) for x in ("BF16", "INT8", "BFloat16", "fp8", "Float8_E4M3FN")] == [
        "bfloat16", "int8", "bfloat16", "float8_e4m3fn", "float8_e4m3fn"]


def test_a_torch_dtype_as_str_writes_it_is_read(tmp_path, capsys):
    # str(torch.bfloat16) is "torch.bfloat16", what a timing script of one's own writes: it was refused
    # ("column dtype 'torch.bfloat16': not one of ..."). A name that is no dtype still is.
    path = _published_csv(tmp_path / "own.csv", ["torch.bfloat16,256,256,256,30,20,1.5,sq",
                                                 "torch.int8,256,256,256,25,18,1.4,sq"])
    meas = read_measurements(path)
    assert meas.dtype.tolist() == ["bfloat16", "int8"]
    assert main(["gpu", "validate", "--data", str(path), "--no-fit"]) == 0
    capsys.readouterr()
    bad = _published_csv(tmp_path / "bad.csv", ["torch.bfloat17,256,256,256,30,20,1.5,sq"])
    assert main(["gpu", "validate", "--data", str(bad), "--no-fit"]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert "line 2: column dtype 'torch.bfloat17': not one of" in line


def test_scores_by_hand():
    """MAPE = mean |predicted / measured - 1| over the scored rows only; the speedup MAPE compares
    predicted dense/sparse with the measured speedup; winner agreement counts the rows where both
    say the same side of 1."""
    from types import SimpleNamespace

    from hwmodel.gpu.validate import scores

    dense_us, sparse_us = np.array([10.0, 20.0, 40.0]), np.array([5.0, 25.0, 20.0])
    meas = SimpleNamespace(dense_us=dense_us, sparse_us=sparse_us, speedup=dense_us / sparse_us)  # 2, 0.8, 2
    pred_dense, pred_sparse = np.array([11.0, 18.0, 40.0]), np.array([5.5, 16.0, 40.0])  # row 2 is off 2x: not scored
    s = scores(meas, pred_dense, pred_sparse, np.array([True, True, False]))
    assert s["rows"] == 2
    assert s["mape_dense"] == pytest.approx((0.1 + 0.1) / 2, rel=1e-12)
    assert s["mape_sparse"] == pytest.approx((0.1 + 0.36) / 2, rel=1e-12)
    # predicted speedups 2 and 1.125 against measured 2 and 0.8: errors 0 and 0.40625; row 1
    # is a 2:4 win predicted for a measured loss.
    assert s["speedup_mape"] == pytest.approx(0.40625 / 2, rel=1e-12)
    assert s["winner_agreement"] == 0.5


def test_scores_are_means_over_rows_and_a_tie_is_no_win_brute_force():
    """Seven rows with uneven errors (a median or a max would differ from the mean) and one
    predicted speedup of exactly 1: a tie is no 2:4 win (crossover's rule, speedup > 1), so it
    agrees with a measured loss. Every score is recomputed row by row."""
    from types import SimpleNamespace

    from hwmodel.gpu.validate import scores

    rng = np.random.default_rng(3)
    dense_us = rng.uniform(5.0, 50.0, 7)
    sparse_us = dense_us / np.array([2.0, 0.8, 1.5, 0.9, 1.2, 0.7, 0.95])
    meas = SimpleNamespace(dense_us=dense_us, sparse_us=sparse_us, speedup=dense_us / sparse_us)
    pred_dense = dense_us * np.array([1.0, 1.3, 0.9, 1.02, 1.5, 1.1, 1.0])
    pred_sparse = sparse_us * np.array([1.1, 1.0, 0.8, 1.2, 1.05, 1.4, 1.0])
    pred_sparse[6] = pred_dense[6]  # predicted speedup exactly 1 (a tie) against a measured 0.95
    rows = np.array([True, True, True, False, True, True, True])
    s = scores(meas, pred_dense, pred_sparse, rows)
    idx = np.flatnonzero(rows)
    want_dense = sum(abs(pred_dense[i] / dense_us[i] - 1) for i in idx) / len(idx)
    want_sparse = sum(abs(pred_sparse[i] / sparse_us[i] - 1) for i in idx) / len(idx)
    ps = {i: pred_dense[i] / pred_sparse[i] for i in idx}
    want_speedup = sum(abs(ps[i] / meas.speedup[i] - 1) for i in idx) / len(idx)
    agree = sum((ps[i] > 1) == (meas.speedup[i] > 1) for i in idx) / len(idx)
    assert s["rows"] == 6
    assert s["mape_dense"] == pytest.approx(want_dense, rel=1e-12)
    assert s["mape_sparse"] == pytest.approx(want_sparse, rel=1e-12)
    assert s["speedup_mape"] == pytest.approx(want_speedup, rel=1e-12)
    assert ps[6] == 1.0 and s["winner_agreement"] == pytest.approx(agree, rel=1e-12)


def test_a_tie_at_one_breaks_the_run_of_2to4_wins():
    # Speedup exactly 1 is no win: 2:4 keeps winning only from the size after it.
    assert crossover([256, 1024, 4096], [1.2, 1.0, 1.3]) == 4096
    assert crossover([256, 1024, 4096], [1.2, 1.0, 1.0]) is None


def test_meets_targets_takes_the_worse_of_dense_and_2to4():
    from hwmodel.gpu.validate import meets_targets

    def report(dense, sparse):
        return {"dtypes": {"bfloat16": {"rows": 4, "mape_dense": dense, "mape_sparse": sparse, "speedup_mape": 0.0,
                                        "crossover": {"steps": 0}}}}

    low, high = TARGETS["mape"] / 2, TARGETS["mape"] * 2
    assert meets_targets(report(low, low))
    assert not meets_targets(report(low, high)) and not meets_targets(report(high, low))


def test_leave_one_out_fits_on_the_other_blocks_only(tmp_path, monkeypatch):
    """A block's leave-one-GPU-out scores are those of a set fitted without its rows (recomputed
    here with fit() on the other block), and its target verdict takes the worse of dense and 2:4."""
    from hwmodel.gpu import validate
    from hwmodel.gpu.fit import GpuData, fit

    blocks = _h100_halves(tmp_path)
    out = validate.leave_one_out(blocks)
    for i, block in enumerate(blocks):
        params, _ = fit([GpuData.build(blocks[1 - i].spec, blocks[1 - i].meas)])
        dense, sparse = GpuData.build(block.spec, block.meas).predict_us(params)
        want = validate.scores(block.meas, dense, sparse, np.ones(len(block.meas), dtype=bool))
        for key in ("mape_dense", "mape_sparse", "speedup_mape", "winner_agreement"):
            assert out[i][key] == pytest.approx(want[key], rel=1e-9), (i, key)
    # A target between the two MAPEs: met only if both are under it.
    s = out[0]
    lo, hi = sorted((s["mape_dense"], s["mape_sparse"]))
    assert lo < hi
    monkeypatch.setitem(TARGETS, "logo_mape", (lo + hi) / 2)
    assert validate.leave_one_out(blocks)[0]["meets_target"] is False


def _validate_and_fit_refuse(path, out, capsys, expected: str) -> None:
    """`gpu validate` and `gpu fit` on the timings at ``path`` each end in one line holding ``expected``,
    exit 2, print nothing on stdout, and fit writes nothing to ``out``."""
    for argv in (["gpu", "validate", "--data", str(path), "--no-fit"],
                 ["gpu", "fit", "--data", str(path), "--gpu", "h100_pcie", "--out", str(out)]):
        assert main(argv) == 2
        captured = capsys.readouterr()
        (line,) = captured.err.strip().splitlines()
        assert captured.out == "" and expected in line, line
    assert not out.exists()


@pytest.mark.parametrize("fmt", ["published", "bench"])
def test_a_column_named_twice_is_refused_naming_it(tmp_path, capsys, fmt):
    # csv.DictReader keeps the last cell of a repeated name: a published file ending in an extra dense_us
    # column (99999) was scored with those times as the dense ones (98.9% dense MAPE, exit 0).
    path = tmp_path / "twice.csv"
    if fmt == "published":
        path.write_text("gpu,dtype,m,k,n,dense_us,sparse_us,dense_us\nNVIDIA H100 PCIe,bf16,256,256,256,30,20,99999\n")
        column = "dense_us"
    else:
        schema.write_rows(path, _bench_rows())
        head, *rows = path.read_text().splitlines()
        path.write_text("\n".join([head + ",graph_median_us"] + [r + ",99999" for r in rows]) + "\n")
        column = "graph_median_us"
    _validate_and_fit_refuse(path, tmp_path / "p.yaml", capsys, f"{path}: line 1: column {column}: given twice in the header")


def test_bench_rows_pair_by_the_dtype_they_name_not_its_spelling(tmp_path, capsys):
    # A dense 'bfloat16' row and a sparse_cslt 'bf16' row of one case were never paired (the case was left
    # out without a word), and one case under both spellings was scored twice.
    path = tmp_path / "bench.csv"
    mixed = _bench_rows()
    mixed[1]["dtype"] = "bf16"
    schema.write_rows(path, mixed + _bench_rows(times=(31.0, 22.0), m=1024))
    meas = read_measurements(path)
    assert sorted(meas.dense_us.tolist()) == [30.0, 31.0] and set(meas.dtype.tolist()) == {"bfloat16"}
    twice = [dict(r, dtype="BF16") for r in _bench_rows(times=(33.0, 21.0))]
    schema.write_rows(path, _bench_rows() + twice)
    assert main(["gpu", "validate", "--data", str(path), "--no-fit"]) == 2
    captured = capsys.readouterr()
    (line,) = captured.err.strip().splitlines()
    assert captured.out == "" and "line 4:" in line and "bfloat16 256x256x256 dense is already on line 2" in line
    unknown = [dict(r, dtype="bfloat17") for r in _bench_rows()]
    schema.write_rows(path, unknown)
    assert main(["gpu", "validate", "--data", str(path), "--no-fit"]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert "line 2: column dtype 'bfloat17': not one of" in line


def test_a_spaced_header_of_ones_own_is_read(tmp_path, capsys):
    # "gpu, dtype, m, ..." (a file written with ", ") was "missing column(s) dtype, m, k, n, dense_us, sparse_us",
    # though every cell is read without its spaces; a name spaced twice over is still one column given twice.
    path = tmp_path / "spaced.csv"
    path.write_text("gpu, dtype, m, k, n, dense_us, sparse_us\nNVIDIA H100 PCIe, bf16, 256, 256, 256, 30, 20\n")
    meas = read_measurements(path)
    assert (meas.gpu.tolist(), meas.dtype.tolist(), meas.m.tolist(), meas.dense_us.tolist()) == (
        ["NVIDIA H100 PCIe"], ["bfloat16"], [256.0], [30.0])
    path.write_text("gpu,dtype,m,k,n,dense_us,sparse_us, dense_us\nNVIDIA H100 PCIe,bf16,256,256,256,30,20,9\n")
    assert main(["gpu", "validate", "--data", str(path), "--no-fit"]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert "line 1: column dense_us: given twice in the header" in line


@pytest.mark.parametrize("column,value,spec_has", [("sm_count", 82, 114), ("compute_capability", "8.6", "9.0")])
def test_bench_rows_of_another_card_than_the_spec_are_refused(tmp_path, capsys, column, value, spec_has):
    # An RTX 3090's bench timings under --gpu h100_pcie were scored, and `gpu fit` wrote them into a set "for
    # h100_pcie", without a word, though the file records the card's SMs and compute capability.
    path = tmp_path / "bench.csv"
    rows = _bench_rows(**{column: value}) + _bench_rows(times=(31.0, 22.0), m=1024, **{column: value})
    schema.write_rows(path, rows)
    out = tmp_path / "p.yaml"
    _validate_and_fit_refuse(path, out, capsys, f"line 2: column {column}: the bench ran on 'NVIDIA H100 PCIe' with "
                                                f"{column} {value}, the GPU spec h100_pcie has {spec_has}")
    # The figures of the card the spec describes pass.
    schema.write_rows(path, [dict(r, sm_count=114, compute_capability="9.0") for r in rows])
    assert main(["gpu", "validate", "--data", str(path), "--no-fit"]) == 0
