"""nmlab check --requirements FILE: a YAML file of the same values as the options, overridden by
them, with designs checked one after another; bad files are one-line errors naming file and key."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys

import pytest

from hwmodel.cli import main
from reports.check import run_check
from tests.conftest import hopper_dense_workload


@pytest.fixture(scope="module")
def hopper(tmp_path_factory):
    """A dense Hopper-sized agent in its own folder (a requirements file beside it names it relatively)."""
    return hopper_dense_workload(tmp_path_factory.mktemp("reqfile"))[0].resolve()


def _write(folder, text, name="req.yaml"):
    p = folder / name
    p.write_text(text)
    return p


def _run(capsys, *argv):
    code = main(["check", *argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_a_file_equal_to_the_flags_gives_the_same_output(hopper, capsys):
    flags = ["edge_ws", "--workload", str(hopper), "--latency-budget", "1ms", "--energy-budget", "5uJ",
             "--sram-budget", "40KB", "--patterns", "dense,1:8", "--bits", "8,4", "--batch", "2",
             "--scenario", "train_step"]
    by_flags = _run(capsys, *flags)
    assert by_flags[0] == 1 and "FAIL sram <= 40KB" in by_flags[1]  # something to compare: dense 8-bit is 69 KB
    # Lists as YAML lists, and as the options' comma text; the workload relative to the file's folder;
    # the option spellings (latency-budget) as well as latency_budget.
    for text in ("version: 1\ndesigns: [edge_ws]\nworkload: hopper_dense_s0.nmw\nlatency_budget: 1ms\n"
                 "energy_budget: 5uJ\nsram_budget: 40KB\npatterns: [dense, \"1:8\"]\nbits: [8, 4]\nbatch: 2\n"
                 "scenario: train_step\n",
                 "version: 1\ndesigns: edge_ws\nworkload: hopper_dense_s0.nmw\nlatency-budget: 1ms\n"
                 "energy-budget: 5uJ\nsram-budget: 40KB\npatterns: dense,1:8\nbits: 8,4\nbatch: 2\n"
                 "scenario: train_step\n"):
        req = _write(hopper.parent, text)
        assert _run(capsys, "--requirements", str(req)) == by_flags
        # and the same JSON
        assert json.loads(_run(capsys, "--requirements", str(req), "--json")[1]) == \
            json.loads(_run(capsys, *flags, "--json")[1])


def test_a_flag_overrides_the_files_value(hopper, capsys, tmp_path):
    req = _write(tmp_path, f"version: 1\ndesigns: [h100_sxm]\nworkload: {hopper}\nsram_budget: 1GB\n"
                           "patterns: [dense, \"1:8\"]\nbits: [8, 16]\nscenario: train_step\nbatch: 4\n")
    code, out, _ = _run(capsys, "--requirements", str(req), "--json")
    res = json.loads(out)
    assert code == 0 and res["design"] == "h100_sxm" and res["scenario"] == "train_step" and res["batch"] == 4
    assert [(c["pattern"], c["bits"]) for c in res["combinations"]] == [("dense", 8), ("dense", 16), ("1:8", 8), ("1:8", 16)]
    # Each option replaces the file's value; the file still gives the ones not on the command line.
    code, out, _ = _run(capsys, "edge_ws", "--requirements", str(req), "--sram-budget", "40KB", "--bits", "8",
                        "--scenario", "inference", "--json")
    res = json.loads(out)
    assert res["design"] == "edge_ws" and res["scenario"] == "inference" and res["workload"] == str(hopper)
    assert res["batch"] == 4  # from the file
    assert [(c["pattern"], c["bits"]) for c in res["combinations"]] == [("dense", 8), ("1:8", 8)]
    (sram,) = res["requirements"]
    assert sram["budget_text"] == "40KB" and not sram["passed"] and code == 1
    # --design overrides the file's designs too.
    code, out, _ = _run(capsys, "--design", "edge_ws", "--requirements", str(req), "--bits", "8", "--json")
    assert json.loads(out)["design"] == "edge_ws"


def test_several_designs_are_checked_one_after_another(hopper, capsys, tmp_path):
    # A design file beside the requirements file, named relatively.
    from hwmodel.design import bundled_designs

    shutil.copy(bundled_designs()["edge_ws"], tmp_path / "mine.yaml")
    single = {d: run_check(d, str(hopper), None, None, "1GB", "2:4", "8", None, "inference")
              for d in ("edge_ws", "h100_sxm")}
    lat = {d: r["combinations"][0]["latency_s"] for d, r in single.items()}
    assert lat["edge_ws"] != lat["h100_sxm"]
    budget_us = math.sqrt(lat["edge_ws"] * lat["h100_sxm"]) * 1e6  # between the two
    slow = max(lat, key=lat.get)
    fast = min(lat, key=lat.get)
    for order in ((slow, fast, "mine.yaml"), (fast, "mine.yaml", slow)):
        req = _write(tmp_path, f"version: 1\ndesigns: [{', '.join(order)}]\nworkload: {hopper}\n"
                               f"latency_budget: {budget_us:.6g}us\npatterns: \"2:4\"\nbits: 8\n")
        code, out, err = _run(capsys, "--requirements", str(req))
        assert code == 1 and err == ""
        blocks = out.split("\n\n")
        assert len(blocks) == 4
        names = ["edge_ws" if d == "mine.yaml" else d for d in order]  # mine.yaml is a copy of edge_ws
        for block, name in zip(blocks, names):
            assert block.startswith(f"design {name}, workload {hopper}")
            assert ("PASS latency" in block) == (name != slow)
        assert blocks[3].strip() == f"1 of 3 designs fail: {slow}"
        code, out, _ = _run(capsys, "--requirements", str(req), "--json")
        res = json.loads(out)
        assert code == 1 and res["passed"] is False
        assert [c["design"] for c in res["checks"]] == names
        assert [c["passed"] for c in res["checks"]] == [n != slow for n in names]
    # All pass: exit 0.
    req = _write(tmp_path, f"version: 1\ndesigns: [{slow}, {fast}]\nworkload: {hopper}\nlatency_budget: 1s\n"
                           "patterns: \"2:4\"\nbits: 8\n")
    code, out, _ = _run(capsys, "--requirements", str(req))
    assert code == 0 and out.rstrip().endswith("all 2 designs pass")


BAD = [
    ("version: 1\nlatency_budgets: 1ms\n", "latency_budgets: unknown key (known: version, designs,"),
    ("version: 1\nlatency-budget: 1ms\nlatency_budget: 2ms\n", "latency_budget: given twice (as latency-budget and latency_budget)"),
    ("latency_budget: 1ms\n", "version: missing"),
    ("version: 2\nlatency_budget: 1ms\n", "version: unknown version 2 (this nmlab reads [1])"),
    ("version: \"1\"\n", "version: unknown version '1'"),
    ("version: 1\nlatency_budget: 1\n", "latency_budget: must be a number with a unit such as '1ms', got 1"),
    ("version: 1\nlatency_budget: \"1\"\n", "latency_budget: '1' needs a unit (s, ms, us, ns)"),
    ("version: 1\nlatency_budget: 1 min\n", "latency_budget: unknown unit 'min'"),
    ("version: 1\nlatency_budget: 0ms\n", "latency_budget: must be > 0"),
    ("version: 1\nenergy_budget: 5uj\n", "energy_budget: unknown unit 'uj'"),
    ("version: 1\nenergy_budget: [5uJ]\n", "energy_budget: must be a number with a unit such as '5uJ'"),
    ("version: 1\nsram_budget: 5Kb\n", "sram_budget: unknown unit 'Kb'"),
    ("version: 1\nsram_budget: 1e999KB\n", "sram_budget: '1e999KB' is too large"),
    ("version: 1\npatterns: 2:4\n", "patterns: expected a string like '2:4' or 'dense', got 124 (YAML reads"),
    ("version: 1\npatterns: [dense, 2:4]\n", "patterns[1]: expected a string like '2:4' or 'dense', got 124"),
    ("version: 1\npatterns: \"5:4\"\n", "patterns: '5:4' has N=5"),
    ("version: 1\npatterns: []\n", "patterns: must be a non-empty list"),
    ("version: 1\npatterns: \"\"\n", "patterns: '' is not a sparsity pattern"),
    ("version: 1\npatterns: unstructured\n", "patterns: 'unstructured' means the workload's own unstructured masks"),
    ("version: 1\nbits: eight\n", "bits: 'eight' is not a bitwidth from 1 to 32"),
    ("version: 1\nbits: [8, \"4\"]\n", "bits[1]: must be an integer from 1 to 32, got '4'"),
    ("version: 1\nbits: 64\n", "bits: must be an integer from 1 to 32, got 64"),
    ("version: 1\nbits: []\n", "bits: must be a bitwidth or a non-empty list of them, got []"),
    ("version: 1\nbatch: 0\n", "batch: must be a positive integer, got 0"),
    ("version: 1\nbatch: 1.5\n", "batch: must be a positive integer, got 1.5"),
    ("version: 1\nbatch: \"8\"\n", "batch: must be a positive integer, got '8'"),
    ("version: 1\nbatch: 1000000000000\n", "batch: 1,000,000,000,000 is over the limit"),
    ("version: 1\nscenario: training\n", "scenario: must be one of inference, train_step, got 'training'"),
    ("version: 1\nworkload: absent.nmw\n", "workload: no such file: absent.nmw"),
    ("version: 1\nworkload: 3\n", "workload: must be a file path or name, got 3"),
    ("version: 1\ndesigns: []\n", "designs: must be a design name, path or GPU spec, or a non-empty list"),
    ("version: 1\ndesigns: [edge_ws, 3]\n", "designs[1]: must be a file path or name, got 3"),
    # The first design is fine: nothing of it is printed before the second is refused.
    ("version: 1\ndesigns: [edge_ws, no_such_design]\n", "designs[1]: design: no such file or bundled design: no_such_design"),
    ("", "empty (no keys)"),
    ("- 1ms\n- 5uJ\n", "must be a YAML mapping of keys to values, got a list"),
    ("version: 1\nversion: 1\n", "line 2: key 'version' is given twice"),
    ("version: 1\nlatency_budget: [1ms\n", "not valid YAML"),
]


@pytest.mark.parametrize("text, message", BAD)
def test_a_bad_file_is_one_line_naming_file_and_key(hopper, capsys, tmp_path, text, message):
    req = _write(tmp_path, text)
    argv = ["--requirements", str(req), "--workload", str(hopper)]
    if "designs" not in text:
        argv.insert(0, "edge_ws")
    code, out, err = _run(capsys, *argv)
    assert code == 2 and out == ""
    assert err.startswith(f"nmlab check: error: requirements: {req}: {message}"), err
    assert len(err.strip().splitlines()) == 1


def test_no_design_anywhere_says_where_to_give_one(hopper, capsys, tmp_path):
    req = _write(tmp_path, "version: 1\nsram_budget: 1MB\n")
    code, out, err = _run(capsys, "--requirements", str(req), "--workload", str(hopper))
    assert code == 2 and out == ""
    assert err.strip() == ("nmlab check: error: check: no design: give DESIGN or --design (an accelerator design or "
                           f"a GPU such as h100_sxm), or designs: in {req}")


def test_a_missing_or_oversized_file_is_refused(hopper, capsys, tmp_path, monkeypatch):
    code, out, err = _run(capsys, "edge_ws", "--requirements", str(tmp_path / "absent.yaml"))
    assert code == 2 and out == "" and err.strip() == f"nmlab check: error: requirements: no such file: {tmp_path / 'absent.yaml'}"
    code, out, err = _run(capsys, "edge_ws", "--requirements", str(tmp_path))
    assert code == 2 and err.strip() == f"nmlab check: error: requirements: {tmp_path}: is a directory"
    code, out, err = _run(capsys, "edge_ws", "--requirements", "")  # not "." read as a folder, nor ignored
    assert code == 2 and out == "" and err.strip() == "nmlab check: error: requirements: no file name given (--requirements FILE)"
    req = _write(tmp_path, "version: 1\n" + "# padding\n" * 20)
    monkeypatch.setenv("NMLAB_MAX_YAML_BYTES", "100")
    code, out, err = _run(capsys, "edge_ws", "--requirements", str(req), "--workload", str(hopper))
    assert code == 2 and out == ""
    assert err.startswith(f"nmlab check: error: requirements: {req}: {req.stat().st_size} is over the limit of 100 bytes")
    assert "NMLAB_MAX_YAML_BYTES" in err and len(err.strip().splitlines()) == 1


def test_a_yaml_alias_bomb_is_refused_before_it_expands(hopper, tmp_path):
    # 10^9 list items once expanded, from 700 bytes.
    lines = ['a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for prev, name in zip("abcdefgh", "bcdefghi"):
        lines.append(f"{name}: &{name} [" + ", ".join([f"*{prev}"] * 10) + "]")
    req = _write(tmp_path, "version: 1\n" + "\n".join(lines) + "\n")
    out = subprocess.run([sys.executable, "-m", "hwmodel", "check", "edge_ws", "--requirements", str(req),
                          "--workload", str(hopper)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and out.stdout == "" and "Traceback" not in out.stderr
    assert out.stderr.startswith(f"nmlab check: error: requirements: {req}: line ")
    assert "with its aliases expanded this value exceeds the limit" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1


def test_help_says_an_option_overrides_the_file(capsys):
    assert main(["check", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "--requirements FILE" in text
    assert "An option given on the command line overrides the file's value" in text
