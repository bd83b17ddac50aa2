"""A GPU of one's own (not bundled): its spec file works wherever a bundled GPU name does, in
`nmlab gpu predict`, `nmlab gpu validate --gpu` (and simulate, check, sweep: tests/test_gpu_design_point.py)."""

import json

import pytest

from hwmodel.cli import main
from hwmodel.gpu import schema
from hwmodel.gpu.measurements import bundled_files
from hwmodel.gpu.model import predict
from hwmodel.gpu.spec import gpu_for
from hwmodel.io import data_path

A100_FILE = next(p for p in bundled_files() if p.name == "slidesparse_a100.csv")


def own_spec(tmp_path, name="mygpu", device="My Lab Card"):
    """The bundled A100 PCIe spec under another name and device name: a GPU nmlab does not bundle."""
    text = data_path("gpus", "a100_pcie.yaml").read_text()
    text = text.replace("name: a100_pcie", f"name: {name}", 1).replace("display_name: NVIDIA A100 80GB PCIe",
                                                                       f"display_name: {device}", 1)
    text = text.replace('device_name_patterns: ["A100 80GB PCIe", "A100-PCIE"]', f'device_name_patterns: ["{device}"]')
    path = tmp_path / f"{name}.yaml"
    path.write_text(text)
    return path


def test_predict_takes_a_spec_file(tmp_path, capsys):
    # `--gpu FILE` was "not a bundled GPU spec nor a device name of one": a GPU without a bundled
    # spec could be simulated (--design FILE) but not predicted.
    path = own_spec(tmp_path)
    assert main(["gpu", "predict", "--gpu", str(path), "--gemm", "4096,4096,4096"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("mygpu (My Lab Card), ampere parameters")
    dense = float(out.split("dense")[1].split("us")[0])
    spec = gpu_for(str(path))
    assert spec.name == "mygpu"
    assert dense == pytest.approx(predict(spec, 4096, 4096, 4096, "bfloat16", False) * 1e6, abs=0.006)


def test_a_missing_spec_file_says_no_such_file(tmp_path, capsys):
    assert main(["gpu", "predict", "--gpu", str(tmp_path / "rtx3090.yaml"), "--gemm", "64,64,64"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no such file" in err[0] and "rtx3090.yaml" in err[0]


def test_an_accelerator_design_is_not_a_gpu_spec(capsys):
    assert main(["gpu", "predict", "--gpu", str(data_path("designs", "edge_ws.yaml")), "--gemm", "64,64,64"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "format/version: expected nmlab-gpu" in err[0]


def test_validate_takes_a_spec_file_for_gpu(tmp_path, capsys):
    # The rows of a card without a bundled spec: `--gpu FILE` was refused, so they could not be checked.
    rows = A100_FILE.read_text().replace("NVIDIA A100 80GB PCIe", "My Lab Card")
    data = tmp_path / "mine.csv"
    data.write_text(rows)
    spec = own_spec(tmp_path)
    assert main(["gpu", "validate", "--data", str(data), "--gpu", str(spec), "--no-fit", "--json"]) == 0
    (obj,) = json.loads(capsys.readouterr().out)
    assert obj["gpu"] == "mygpu" and obj["fit"] == "none" and obj["rows"] == 666
    # Same figures as the bundled A100 PCIe spec it copies (same parameters, same rows).
    assert main(["gpu", "validate", "--data", str(A100_FILE), "--gpu", "a100_pcie", "--no-fit", "--json"]) == 0
    (ref,) = json.loads(capsys.readouterr().out)
    assert obj["mape_dense"] == ref["mape_dense"] and obj["speedup_mape"] == ref["speedup_mape"]


def test_an_unknown_bench_gpu_names_the_device_name_column(tmp_path, capsys):
    # A bench CSV has no column `gpu`; the error named it anyway.
    rows = []
    for impl, t in (("dense", 30.0), ("sparse_cslt", 20.0)):
        row = schema.empty_row()
        row.update(run_id="r", status="ok", error="", kind="gemm", name="square", env="", width=0, dtype="bfloat16",
                   out_dtype="bfloat16", impl=impl, backend="x", m=256, n=256, k=256, graph_median_us=t,
                   device_name="NVIDIA GeForce RTX 3090", check_ok=True)
        rows.append(row)
    path = tmp_path / "bench.csv"
    schema.write_rows(path, rows)
    assert main(["gpu", "validate", "--data", str(path), "--no-fit"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "column device_name: unknown GPU 'NVIDIA GeForce RTX 3090'" in err[0]
    assert "--gpu FILE" in err[0]


def test_predict_names_the_gpus_its_parameters_were_fitted_on(tmp_path, capsys):
    # It printed "ampere parameters" alone: nothing said that a GPU without timings runs on
    # another card's fitted efficiencies and fixed costs.
    assert main(["gpu", "predict", "--gpu", "a100_pcie", "--gemm", "64,64,64"]) == 0
    assert "ampere parameters (fitted on a100_pcie);" in capsys.readouterr().out
    assert main(["gpu", "predict", "--gpu", str(own_spec(tmp_path)), "--gemm", "64,64,64"]) == 0
    head = capsys.readouterr().out.splitlines()[0]
    assert "ampere parameters (fitted on a100_pcie; not on this GPU: docs/gpu.md, 'A GPU of your own')" in head


def test_predict_rates_of_small_gemms_are_not_zero_and_int8_is_in_tops(capsys):
    # A batch-1 GEMM printed "0.0 TFLOP/s"; int8 printed TFLOP/s where the spec sheets say TOPS.
    assert main(["gpu", "predict", "--gpu", "a100_pcie", "--gemm", "1,256,256"]) == 0
    dense_line = capsys.readouterr().out.splitlines()[1]
    dense_us = float(dense_line.split()[1])
    shown = float(dense_line.split("(")[1].split()[0])
    assert shown == pytest.approx(2 * 256 * 256 / dense_us / 1e6, rel=5e-3) and shown > 0
    assert main(["gpu", "predict", "--gpu", "a100_pcie", "--gemm", "4096,4096,4096", "--dtype", "int8"]) == 0
    out = capsys.readouterr().out
    assert " TOPS)" in out and " TOPS effective)" in out and "TFLOP/s" not in out


def test_a_file_too_small_to_fit_says_to_pass_no_fit(tmp_path, capsys):
    # A researcher's few rows ended in "gpu model fit: 12 timings for 13 parameters; need at least
    # 26", with no word of what to do.
    lines = A100_FILE.read_text().splitlines()
    squares = [line for line in lines[1:] if line.endswith(",square") and ",bfloat16," in line][:8]
    data = tmp_path / "few.csv"
    data.write_text("\n".join([lines[0]] + squares) + "\n")
    assert main(["gpu", "validate", "--data", str(data)]) == 2
    out, err = capsys.readouterr()
    assert out == "" and len(err.strip().splitlines()) == 1
    assert "calibration rows" in err and "pass --no-fit" in err and "few.csv" in err
    assert main(["gpu", "validate", "--data", str(data), "--no-fit"]) == 0
    assert "scored on all 8 rows" in capsys.readouterr().out
