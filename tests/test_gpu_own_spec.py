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
from tests.conftest import GPU_PARAMS_TEXT, cli_refuses_file

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
    # It said "format/version: expected nmlab-gpu version 1 or 2, got None 1".
    assert len(err) == 1 and err[0].endswith("edge_ws.yaml is an accelerator design, not a GPU spec (simulate, "
                                             "sweep and check take it as a design)"), err


@pytest.mark.parametrize("argv", [["gpu", "predict", "--gemm", "64,64,64", "--gpu"],
                                  ["gpu", "fit", "--data", str(A100_FILE), "--out", "{tmp}/fitted.yaml", "--gpu"],
                                  ["simulate", "--design"], ["check", "--latency-budget", "1ms", "--design"],
                                  ["export-timeloop", "--layer", "actor.fc1", "--out", "{tmp}/tl", "--design"]])
def test_a_parameter_file_given_as_spec_or_design_says_what_it_is(tmp_path, capsys, argv):
    # The output of `gpu fit --data ... --out p.yaml` passed where its spec goes: "gpu 'p': format/version:
    # expected nmlab-gpu version 1 or 2, got nmlab-gpu-params 1", or as a design "design 'p': format:
    # unknown key (allowed: clock_mhz, ...)", which did not say that a spec names the file.
    path, err = cli_refuses_file(tmp_path, capsys, argv, "p.yaml", GPU_PARAMS_TEXT)
    assert len(err) == 1 and f"{path} is a GPU parameter file (what nmlab gpu fit --out writes), not a " in err[0], err
    assert "params: FILE" in err[0]


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
    assert "ampere parameters (fitted on a100_pcie, not on this GPU)" in head


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


def _plotted(monkeypatch, tmp_path, data, gpu=None):
    """Run `gpu validate --plots` and keep each figure's title, axis labels, legend and points."""
    import warnings

    from hwmodel.gpu import validate

    seen = {}
    real_save = validate._save

    def save(fig, path, atomic_write):
        ax = fig.axes[0]
        points = sum(len(line.get_xdata()) for line in ax.get_lines()) + sum(
            len(c.get_offsets()) for c in ax.collections)
        seen[path.name] = dict(title=ax.get_title(), xlabel=ax.get_xlabel(), ylabel=ax.get_ylabel(), points=points,
                               legend=[t.get_text() for t in ax.get_legend().get_texts()] if ax.get_legend() else [])
        return real_save(fig, path, atomic_write)

    monkeypatch.setattr(validate, "_save", save)
    argv = ["gpu", "validate", "--data", str(data), "--no-fit", "--plots", str(tmp_path / "plots")]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # matplotlib's "No artists with labels" went to stderr
        assert main(argv + (["--gpu", gpu] if gpu else [])) == 0
    return seen


def test_plots_say_which_spec_and_device_and_show_the_error(monkeypatch, tmp_path, capsys):
    # One title named the device, the other the spec; the log-log scatter over six decades hid a
    # 30% miss on its diagonal, and the MAPE the text report gives was nowhere on it.
    seen = _plotted(monkeypatch, tmp_path, A100_FILE, gpu="a100_pcie")
    report = capsys.readouterr().out
    mape = report.split("  all")[1].split()[1]  # the text report's dense MAPE over all rows
    first = seen["a100_pcie_predicted_vs_measured.png"]
    assert "a100_pcie spec, NVIDIA A100 80GB PCIe" in first["title"] and f"MAPE dense {mape}" in first["title"]
    assert first["ylabel"] == "predicted / measured time" and "within 10%" in first["legend"]
    second = seen["a100_pcie_speedup_vs_size.png"]
    assert "a100_pcie spec, NVIDIA A100 80GB PCIe" in second["title"]
    assert any(t.startswith("break-even") for t in second["legend"]) and "dense time / 2:4 time" in second["ylabel"]


def test_speedup_plot_without_square_gemms_plots_every_row(monkeypatch, tmp_path):
    # TD3 layers only: the speedup plot was empty axes, and matplotlib warned on stderr.
    lines = A100_FILE.read_text().splitlines()
    rect = [line for line in lines[1:] if not line.endswith(",square") and ",bfloat16," in line][:30]
    data = tmp_path / "layers.csv"
    data.write_text("\n".join([lines[0]] + rect) + "\n")
    seen = _plotted(monkeypatch, tmp_path, data)
    plot = seen["a100_pcie_speedup_vs_size.png"]
    assert plot["points"] >= 2 * 30 and "2 m k n" in plot["xlabel"] and "no square GEMMs" in plot["title"]


def test_predict_says_when_the_dtype_has_no_fitted_efficiency(capsys):
    # The hopper set is fitted on H100 PCIe timings, which have no fp16 rows. fp16 ran at the
    # model's default efficiency, so h100_sxm fp16 at 4096^3 said "dense wins" (0.751) where bf16
    # (the same tensor path and width) says 2:4 wins 1.44x; it now takes bf16's fitted efficiency,
    # and says so. tf32, which no set has, still runs at the default, with its note.
    from hwmodel.gpu.model import DEFAULT_ETA
    from hwmodel.gpu.params import bundled_params

    hopper = bundled_params()["hopper"]
    assert "float16" not in hopper.eta and "bfloat16" in hopper.eta
    assert hopper.efficiency_source("float16") == "bfloat16" and hopper.efficiency_source("tfloat32") == ""
    assert hopper.efficiency("float16", True) == hopper.eta["bfloat16"]["sparse"]
    assert main(["gpu", "predict", "--gpu", "h100_sxm", "--gemm", "4096,4096,4096", "--dtype", "fp16"]) == 0
    out = capsys.readouterr().out
    assert ("note: the hopper set has no fitted efficiency for float16 (none of its GPUs' timings have it): "
            "bfloat16's stands in") in out
    speedup_fp16 = [line for line in out.splitlines() if "speedup" in line][0]
    assert main(["gpu", "predict", "--gpu", "h100_sxm", "--gemm", "4096,4096,4096", "--dtype", "bf16"]) == 0
    out = capsys.readouterr().out
    assert "note:" not in out and [line for line in out.splitlines() if "speedup" in line][0] == speedup_fp16
    assert main(["gpu", "predict", "--gpu", "h100_sxm", "--gemm", "4096,4096,4096", "--dtype", "tf32"]) == 0
    assert (f"it): the default {DEFAULT_ETA['dense']:g} dense / {DEFAULT_ETA['sparse']:g} 2:4 stands in"
            in capsys.readouterr().out)


def test_fitted_fp16_and_bf16_efficiencies_are_twins():
    """The twin rule's evidence: every bundled set fitted on both has them within 3% of each other."""
    from hwmodel.gpu.params import bundled_params

    both = {name: p.eta for name, p in bundled_params().items() if {"float16", "bfloat16"} <= set(p.eta)}
    assert len(both) >= 3
    for name, eta in both.items():
        for kind in ("dense", "sparse"):
            assert eta["float16"][kind] == pytest.approx(eta["bfloat16"][kind], rel=0.03), (name, kind)


def test_validate_no_fit_says_which_dtypes_ran_at_a_borrowed_efficiency(tmp_path, capsys):
    # fp16 timings of an H100 scored --no-fit ran at the model's default efficiency (the hopper set
    # has none for fp16), and the report read like any other; they run at bf16's now, with a note.
    lines = A100_FILE.read_text().splitlines()
    rows = [line.replace("NVIDIA A100 80GB PCIe", "NVIDIA H100 PCIe") for line in lines[1:] if ",float16," in line][:20]
    data = tmp_path / "h100_fp16.csv"
    data.write_text("\n".join([lines[0]] + rows) + "\n")
    assert main(["gpu", "validate", "--data", str(data), "--no-fit"]) == 0
    assert ("note: the hopper set has no fitted efficiency for float16 (none of its GPUs' timings have it): "
            "bfloat16's stands in") in capsys.readouterr().out
    assert main(["gpu", "validate", "--data", str(data), "--no-fit", "--json"]) == 0
    r = json.loads(capsys.readouterr().out)[0]
    assert r["default_eta_dtypes"] == [] and r["twin_eta_dtypes"] == {"float16": "bfloat16"}
    assert main(["gpu", "validate", "--data", str(A100_FILE), "--no-fit", "--json"]) == 0
    r = json.loads(capsys.readouterr().out)[0]
    assert r["default_eta_dtypes"] == [] and r["twin_eta_dtypes"] == {}


def test_simulate_text_says_whose_timings_a_gpus_latency_rests_on(tmp_path, capsys):
    # The text output named no parameter set at all (only --json's extra.gpu.latency_model did),
    # so a card of one's own looked as measured as the A100 PCIe.
    assert main(["simulate", "--design", str(own_spec(tmp_path))]) == 0
    (line,) = [x for x in capsys.readouterr().out.splitlines() if x.startswith("latency model:")]
    assert "'ampere' set" in line and line.endswith("(fitted on a100_pcie, not on this GPU)")
    assert main(["simulate", "--design", "a100_pcie"]) == 0
    (line,) = [x for x in capsys.readouterr().out.splitlines() if x.startswith("latency model:")]
    assert line.endswith("(fitted on a100_pcie)")


def test_check_on_a_gpu_says_whose_timings_its_verdict_rests_on(tmp_path, capsys):
    # A pass or fail for a card of one's own read like one for a measured card.
    assert main(["check", str(own_spec(tmp_path)), "--latency-budget", "1ms"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1] == ("note: GPU times from the model with the 'ampere' set of hwmodel/data/gpu_params.yaml "
                        "(fitted on a100_pcie, not on this GPU)")
    assert main(["check", "a100_pcie", "--latency-budget", "1ms", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["gpu_parameters"].endswith("(fitted on a100_pcie)")
    assert main(["check", "edge_ws", "--latency-budget", "1ms", "--json"]) == 0
    assert "gpu_parameters" not in json.loads(capsys.readouterr().out)  # an accelerator: unchanged


def test_the_documented_example_spec_loads_with_every_figure_sourced():
    # docs/gpu.md points a user at it as the pattern of a spec of one's own.
    from pathlib import Path

    from hwmodel.gpu.spec import load_gpu

    spec = load_gpu(Path(__file__).resolve().parents[1] / "docs" / "examples" / "gpu_rtx3090.yaml")
    assert spec.name == "rtx3090" and spec.compute_capability == "8.6" and spec.architecture == "ampere"
    assert spec.peak_flops("bfloat16", True) == 2 * spec.peak_flops("bfloat16", False) == 142e12
    assert "float8_e4m3fn" not in spec.tensor_flops  # Ampere has no fp8
    assert all(spec.sources[k] for k in ("sm_count", "boost_clock_mhz", "tensor_tflops.int8"))


def test_every_command_words_a_gpus_parameter_notes_alike(tmp_path, capsys):
    # check, predict and simulate said "fitted on a100_pcie; not on this GPU: docs/gpu.md, 'A GPU of your own'"
    # where the report said "fitted on a100_pcie, not on this GPU"; predict said "the hopper set has no fitted
    # efficiency for float16 (none of its GPUs' timings have it): ..." where validate said "no fitted efficiency
    # for float16 in these parameters: ...". One function builds each note (hwmodel.gpu.params).
    from reports.why import gpu_fixed_times

    spec = str(own_spec(tmp_path))
    note = "(fitted on a100_pcie, not on this GPU)"
    assert main(["gpu", "predict", "--gpu", spec, "--gemm", "64,64,64"]) == 0
    assert f"ampere parameters {note};" in capsys.readouterr().out.splitlines()[0]
    assert main(["simulate", "--design", spec]) == 0
    assert [x for x in capsys.readouterr().out.splitlines() if x.startswith("latency model:")][0].endswith(note)
    assert main(["check", spec, "--latency-budget", "1ms", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["gpu_parameters"].endswith(note)
    rec = {"params_set": "ampere", "params_fitted_on": ["a100_pcie"], "kernel_dense_us": 4.0, "kernel_sparse_us": 6.0}
    (_, _, what), = gpu_fixed_times({"designs": [{"name": "my_gpu", "gpu_model": rec}]}).values()
    assert what.startswith(f"the sweep's ampere parameters, {note[1:-1]}")  # the report's why line

    lines = A100_FILE.read_text().splitlines()
    rows = [line.replace("NVIDIA A100 80GB PCIe", "NVIDIA H100 PCIe") for line in lines[1:] if ",float16," in line][:20]
    data = tmp_path / "h100_fp16.csv"
    data.write_text("\n".join([lines[0]] + rows) + "\n")
    assert main(["gpu", "validate", "--data", str(data), "--no-fit"]) == 0
    (validated,) = [x.strip() for x in capsys.readouterr().out.splitlines() if "note:" in x]
    assert main(["gpu", "predict", "--gpu", "h100_pcie", "--gemm", "64,64,64", "--dtype", "fp16"]) == 0
    (predicted,) = [x.strip() for x in capsys.readouterr().out.splitlines() if "note:" in x]
    assert validated == predicted


@pytest.mark.parametrize("arch,cc,needle", [
    # A Volta or Turing part has no 2:4 sparse tensor cores: the model predicted a 1.8x 2:4 speedup for it.
    ("volta", '"7.0"', 'compute_capability: 7.0 has no 2:4 sparse tensor cores'),
    ("turing", '"7.5"', 'compute_capability: 7.5 has no 2:4 sparse tensor cores'),
    # A made-up name ran the generic set with Ampere's kernel tables; an AMD "9.4" Hopper's tables.
    ("zorblax", '"8.6"', "architecture: 'zorblax', but compute capability 8.6 is ampere"),
    ("cdna3", '"9.4"', "architecture: 'cdna3', but compute capability 9.4 is hopper"),
    ("ampere", '"9.0"', "architecture: 'ampere', but compute capability 9.0 is hopper"),
    # A major newer than every table ran Hopper's set on a part of 13.0 that named hopper.
    ("hopper", '"13.0"', "architecture: 'hopper' parts have compute capability 9.x, not 13.0"),
    ("Blackwell", '"14.2"', "architecture: 'Blackwell' parts have compute capability 10.x or 11.x or 12.x, not 14.2"),
    # No kernel table is keyed by these: they ran the generic major-less tables without a word.
    ("ampere", '"sm_86"', "compute_capability: expected a CUDA compute capability major.minor"),
    ("ada", '"8.90"', "compute_capability: expected a CUDA compute capability major.minor"),
])
def test_a_spec_of_an_architecture_the_model_cannot_time_is_one_line(tmp_path, capsys, arch, cc, needle):
    text = own_spec(tmp_path).read_text().replace("architecture: ampere", f"architecture: {arch}")
    path = tmp_path / "odd.yaml"
    path.write_text(text.replace('compute_capability: "8.0"', f"compute_capability: {cc}"))
    for argv in (["gpu", "predict", "--gpu", str(path), "--gemm", "64,64,64"], ["simulate", "--design", str(path)]):
        assert main(argv) == 2
        captured = capsys.readouterr()
        (line,) = captured.err.strip().splitlines()
        assert captured.out == "" and needle in line and "gpu 'odd'" in line, line


def test_an_architecture_in_capitals_gets_its_set(tmp_path, capsys):
    # "architecture: Ampere" ran the generic set (fitted on four GPUs) in place of the ampere one, silently.
    path = own_spec(tmp_path)
    path.write_text(path.read_text().replace("architecture: ampere", "architecture: Ampere ")
                    .replace('compute_capability: "8.0"', "compute_capability: 8.0"))
    assert main(["gpu", "predict", "--gpu", str(path), "--gemm", "4096,4096,4096"]) == 0
    assert capsys.readouterr().out.startswith("mygpu (My Lab Card), ampere parameters (fitted on a100_pcie")
    assert gpu_for(str(path)).architecture == "ampere" and gpu_for(str(path)).compute_capability == "8.0"


@pytest.mark.parametrize("key,needle", [("bf16", "tensor_tflops.bf16: not a dtype of the model (one of bfloat16, "),
                                        ("bfloat_16", "tensor_tflops.bfloat_16: not a dtype of the model")])
def test_a_tensor_rate_under_a_name_the_model_does_not_read_is_refused(tmp_path, capsys, key, needle):
    # 'bf16:' loaded; every bf16 GEMM then said "no tensor-core rate for dtype bfloat16" and simulate at 16 bits
    # "runs 8 (int8) bits, not 16", though the file gives the rate.
    path = own_spec(tmp_path)
    path.write_text(path.read_text().replace("  bfloat16: {", f"  {key}: {{").replace(
        "tensor_tflops.bfloat16:", f"tensor_tflops.{key}:"))
    for argv in (["gpu", "predict", "--gpu", str(path), "--gemm", "64,64,64"], ["simulate", "--design", str(path)]):
        assert main(argv) == 2
        captured = capsys.readouterr()
        (line,) = captured.err.strip().splitlines()
        assert captured.out == "" and needle in line and "gpu 'mygpu'" in line, line
    assert ("write bf16 as bfloat16" in line) == (key == "bf16")
