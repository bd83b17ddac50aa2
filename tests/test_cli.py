"""The nmlab command: help lists every package's subcommands; user errors are one line, exit 2."""

import os
import subprocess
import sys

import pytest

from hwmodel.cli import main


def run(*args):
    return subprocess.run([sys.executable, "-m", "hwmodel", *args], capture_output=True, text=True)


def test_help_lists_subcommands():
    """Each package registers its own subcommands (entry points): rl's and hwmodel's all show."""
    import re

    out = run("--help")
    assert out.returncode == 0
    listed = set(re.findall(r"^    (\S+)", out.stdout, flags=re.M))
    rl_commands = {"train", "export", "evaluate", "campaign", "gpu"}
    hwmodel_commands = {"simulate", "crosscheck", "export-timeloop", "import-timeloop", "workload", "sweep", "report", "check"}
    assert rl_commands | hwmodel_commands <= listed, listed


def test_unknown_command_is_one_line_exit_2():
    out = run("no-such-command")
    assert out.returncode == 2
    assert len(out.stderr.strip().splitlines()) == 1


def test_unknown_option_names_the_subcommand():
    # A typo'd flag (`--pngg`) is one line under the subcommand's name, exit 2, as every
    # other bad argument of that subcommand is.
    out = run("report", "results", "--pngg")
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == ["nmlab report: error: unrecognized arguments: --pngg"]
    out = run("gpu", "predict", "--gpu", "h100_sxm", "--gemm", "4096", "4096", "4096")
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == ["nmlab gpu predict: error: unrecognized arguments: 4096 4096"]


def test_missing_workload_file(tmp_path):
    out = run("workload", str(tmp_path / "absent.nmw"))
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == [f"nmlab workload: error: workload: no such file: {tmp_path / 'absent.nmw'}"]
    assert "Traceback" not in out.stderr


def test_a_bundled_workload_name_is_answered_with_its_path():
    # Designs and GPUs take bundled names, workloads paths: "no such file: hopper_2of4_s0" alone
    # left the user to find hwmodel/data/workloads.
    from hwmodel.io import data_path

    out = run("workload", "hopper_2of4_s0")
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == [
        f"nmlab workload: error: workload: no such file: hopper_2of4_s0 (the bundled workload of that name is "
        f"{data_path('workloads', 'hopper_2of4_s0.nmw')})"]
    # with its extension too (a newcomer writes the file's name): it said only "no such file"
    out = run("workload", "hopper_2of4_s0.nmw")
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == [
        f"nmlab workload: error: workload: no such file: hopper_2of4_s0.nmw (the bundled workload of that name is "
        f"{data_path('workloads', 'hopper_2of4_s0.nmw')})"]


def test_a_directory_given_as_a_file_says_so(tmp_path):
    # "no such file" for a folder that exists would send the user looking for a typo.
    for args, what in [(("workload", str(tmp_path)), "nmlab workload: error: workload"),
                       (("simulate", "--design", str(tmp_path)), "nmlab simulate: error: design"),
                       (("sweep", str(tmp_path), "--out", str(tmp_path / "out")), "nmlab sweep: error: sweep config")]:
        out = run(*args)
        assert out.returncode == 2
        assert out.stderr.strip().splitlines() == [f"{what}: {tmp_path}: is a directory"]
    assert not (tmp_path / "out").exists()


def test_a_fifo_given_as_a_file_says_so(tmp_path):
    # A FIFO or device exists, so "no such file" (what these said) also sends the user after a typo.
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    for args, what in [(("workload", str(fifo)), "nmlab workload: error: workload"),
                       (("simulate", "--design", str(fifo)), "nmlab simulate: error: design"),
                       (("check", str(fifo)), "nmlab check: error: design"),
                       (("gpu", "validate", "--data", str(fifo)), "nmlab gpu validate: error: gpu timings csv")]:
        out = run(*args)
        assert out.returncode == 2
        assert out.stderr.strip().splitlines() == [f"{what}: {fifo}: not a regular file"]


def test_workload_info(tmp_path, capsys):
    from tests.test_workload import make_workload
    from hwmodel import save_workload

    save_workload(make_workload(), tmp_path / "w.nmw")
    assert main(["workload", str(tmp_path / "w.nmw")]) == 0
    text = capsys.readouterr().out
    assert "critic1.fc0" in text and "1:8" in text


def test_closed_pipe_is_quiet():
    """`nmlab workload | head -1`: no BrokenPipeError traceback when the reader stops early.

    The read end is closed before the child has imported anything, so its output always
    meets a closed pipe.
    """
    proc = subprocess.Popen([sys.executable, "-m", "hwmodel", "workload"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    proc.stdout.close()
    with proc.stderr:
        err = proc.stderr.read()
    assert proc.wait() == 141
    assert "Traceback" not in err and "BrokenPipe" not in err


def test_nested_command_errors_name_the_whole_command(tmp_path):
    # A user error and an argparse error of `nmlab gpu validate` carry the same prefix.
    out = run("gpu", "validate", "--data", str(tmp_path / "absent.csv"))
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == [f"nmlab gpu validate: error: gpu timings csv: no such file: {tmp_path / 'absent.csv'}"]
    out = run("gpu", "validate", "--gpu")  # argparse: --gpu needs a value
    assert out.returncode == 2 and out.stderr.startswith("nmlab gpu validate: error:")


@pytest.mark.parametrize("text, needle", [
    ("", "empty (no keys); for the default grid give no CONFIG"),
    ("# every key commented out\n# bits: [8]\n", "empty (no keys); for the default grid give no CONFIG"),
    ("a,b\n1,2\n", "must be a YAML mapping of keys to values, got a str"),
])
def test_an_empty_or_non_mapping_sweep_config_is_one_line_naming_the_file(tmp_path, text, needle):
    # An empty config file swept the whole default grid into --out (exit 0); a CSV given as the
    # config was refused without naming the file.
    config = tmp_path / "grid.yaml"
    config.write_text(text)
    out = run("sweep", str(config), "--out", str(tmp_path / "out"), "--quiet")
    assert out.returncode == 2, out.stderr
    assert out.stderr.strip().splitlines() == [f"nmlab sweep: error: sweep config: {config}: {needle}"]
    assert not (tmp_path / "out").exists()


def test_an_unknown_gpu_name_lists_the_bundled_specs():
    # It said "'h100' matches 0 design points", a sweep's words, under `nmlab gpu predict --gpu`.
    out = run("gpu", "predict", "--gpu", "h100", "--gemm", "64,64,64")
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == [
        "nmlab gpu predict: error: gpu: 'h100' is not a bundled GPU spec, a spec file nor a device name of one "
        "(bundled GPU specs: a100_pcie, a100_sxm, b200, gb10, h100_pcie, h100_sxm, h200_sxm, l40s, rtx4090, rtx5080; "
        "a GPU of your own: a spec file, docs/gpu.md)"]


def test_simulate_unknown_design_lists_gpus_too(capsys):
    """`simulate --design` takes a bundled design or a GPU spec, so a typo lists both kinds (it
    listed only the accelerator designs, and a user looking for the GPUs had to read the docs)."""
    assert main(["simulate", "--design", "h100"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert "edge_ws" in err[0] and "h100_sxm" in err[0] and "rtx4090" in err[0], err[0]


@pytest.mark.parametrize("args, unit", [((), "us"), (("--scenario", "train_step", "--batch", "256"), "ms"),
                                        (("--scenario", "train_step", "--batch", "4096", "--residency", "stream"), "ms")])
def test_simulate_total_latency_is_written_in_a_unit_not_an_exponent(capsys, args, unit):
    """edge_ws's TD3 train step at batch 256 printed "total: 995k cycles, 1.99e+03 us": `{latency * 1e6:.3g} us`
    turns to exponent notation from 1 ms up. The total now picks its unit (us under 1 ms, then ms, s) and keeps
    three significant digits: 1.99 ms."""
    import re

    import hwmodel

    assert main(["simulate", "--design", "edge_ws", *args]) == 0
    total = next(ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("total:"))
    got = re.search(r"cycles, ([0-9.]+) (us|ms|s), utilization", total)
    assert got and got.group(2) == unit and "e+" not in total and "e-" not in total, total
    kw = dict(zip(args[::2], args[1::2]))
    res = hwmodel.simulate(hwmodel.workload.default_workload(), "edge_ws", batch=int(kw.get("--batch", 1)),
                           scenario=kw.get("--scenario", "inference"), residency=kw.get("--residency", "auto"))
    want = res.summary()["latency_s"] / {"us": 1e-6, "ms": 1e-3, "s": 1.0}[unit]
    assert got.group(1) == f"{want:.3g}"


def test_report_help_names_every_file_the_report_writes(capsys):
    """`nmlab --help` and `nmlab report --help` name the four files docs/reports.md lists (the
    RL quality vs hardware table's JSON was missing from both)."""
    from reports import quality

    for args in (["--help"], ["report", "--help"]):
        assert main(args) == 0
        out = " ".join(capsys.readouterr().out.split())
        for name in ("index.html", "summary.md", "fronts.json", quality.FILENAME):
            assert name in out, (args, name)
