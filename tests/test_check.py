"""nmlab check: unit parsing, pass/fail per requirement with reasons, exit status 0 / 1 / 2."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

from hwmodel.errors import NmlabError
from hwmodel.workload import save_workload, synthetic_td3_workload
from reports.check import ENERGY_UNITS_PJ, SIZE_UNITS, TIME_UNITS, parse_quantity, run_check
from reports.data import fmt_bytes
from hwmodel.cli import main
from tests.conftest import hopper_dense_workload


@pytest.fixture(scope="module")
def hopper(tmp_path_factory):
    return hopper_dense_workload(tmp_path_factory.mktemp("check"))


@pytest.mark.parametrize("text, units, expected", [
    ("1ms", TIME_UNITS, 1e-3), ("250 us", TIME_UNITS, 250e-6), ("2s", TIME_UNITS, 2.0), ("40ns", TIME_UNITS, 40e-9),
    ("5uJ", ENERGY_UNITS_PJ, 5e6), ("1.5mJ", ENERGY_UNITS_PJ, 1.5e9), ("3pJ", ENERGY_UNITS_PJ, 3.0), ("2J", ENERGY_UNITS_PJ, 2e12),
    ("512KB", SIZE_UNITS, 512e3), ("512KiB", SIZE_UNITS, 512 * 1024), ("1.5MB", SIZE_UNITS, 1.5e6), ("64B", SIZE_UNITS, 64),
    ("1MiB", SIZE_UNITS, 1024 ** 2), ("1e3B", SIZE_UNITS, 1000),
])
def test_units(text, units, expected):
    assert parse_quantity(text, units, "--x") == pytest.approx(expected)


@pytest.mark.parametrize("text, units, message", [
    ("1", TIME_UNITS, "--x: '1' needs a unit (s, ms, us, ns)"),
    ("1 min", TIME_UNITS, "--x: unknown unit 'min'"),
    ("5Kb", SIZE_UNITS, "--x: unknown unit 'Kb'"),
    ("fast", TIME_UNITS, "--x: 'fast' is not a number with a unit"),
    ("0ms", TIME_UNITS, "--x: must be > 0"),
    ("-1ms", TIME_UNITS, "--x: '-1ms' is not a number with a unit"),
    ("5uj", ENERGY_UNITS_PJ, "--x: unknown unit 'uj'"),
    # Positive as written, zero in seconds: it reached the ratio's division (ZeroDivisionError traceback).
    ("1e-320ns", TIME_UNITS, "--x: '1e-320ns' is too small to be a positive number"),
])
def test_bad_units_are_one_line_errors(text, units, message):
    with pytest.raises(NmlabError) as err:
        parse_quantity(text, units, "--x")
    assert str(err.value).startswith(message)


def _json(capsys, *argv):
    code = main(["check", *argv, "--json"])
    return code, json.loads(capsys.readouterr().out)


def test_sram_reasons_name_each_combination_and_its_size(hopper, capsys):
    path, wl = hopper
    code, res = _json(capsys, "edge_ws", "--workload", str(path), "--patterns", "dense,1:8", "--bits", "8,4",
                      "--sram-budget", "40KB")
    sizes = {(c["pattern"], c["bits"]): c["model_bytes"] for c in res["combinations"]}
    # Dense 8-bit weights of the actor (what inference runs) are one byte per weight.
    actor_weights = sum(layer.in_features * layer.out_features for layer in wl.network("actor"))
    assert sizes[("dense", 8)] == actor_weights
    assert sizes[("dense", 4)] == actor_weights / 2
    # edge_ws runs 1:8 as 1:4 (its fixed patterns): a quarter of the slots plus index bits.
    assert sizes[("1:8", 4)] < sizes[("1:8", 8)] < sizes[("dense", 8)] / 2
    (req,) = res["requirements"]
    assert code == 1 and not req["passed"]  # dense at 8 bits (69 KB) does not fit in 40 KB
    assert req["reason"].startswith(f"weights take {fmt_bytes(actor_weights)} at dense and 8 bits and do not fit in 40KB of SRAM")
    assert f"at 1:8 and 4 bits they take {fmt_bytes(sizes[('1:8', 4)])} and fit" in req["reason"]
    assert set(req["passing"]) == {f"{p} and {b} bits" for (p, b), s in sizes.items() if s <= 40e3}


def test_budget_boundaries_and_exit_status(hopper, capsys):
    path, _ = hopper
    base = ["edge_ws", "--workload", str(path), "--patterns", "2:4", "--bits", "8"]
    _, res = _json(capsys, *base, "--sram-budget", "1GB")
    (c,) = res["combinations"]
    lat_us = c["latency_s"] * 1e6
    energy_nj = c["energy_pj"] / 1e3
    # Just above the model's figures: pass (exit 0); just below: fail (exit 1).
    assert main(["check", *base, "--latency-budget", f"{lat_us * 1.001}us", "--energy-budget", f"{energy_nj * 1.001}nJ"]) == 0
    out = capsys.readouterr().out
    assert "PASS latency" in out and "PASS energy" in out and "all requirements pass" in out
    assert main(["check", *base, "--latency-budget", f"{lat_us * 0.999}us", "--energy-budget", f"{energy_nj * 1.001}nJ"]) == 1
    out = capsys.readouterr().out
    assert "FAIL latency" in out and "PASS energy" in out and "1 of 2 requirements fail" in out


def test_train_step_scenario_costs_more_than_inference(hopper):
    path, _ = hopper
    inf = run_check("edge_ws", str(path), None, "1J", None, "2:4", "8", None, "inference")
    train = run_check("edge_ws", str(path), None, "1J", None, "2:4", "8", None, "train_step")
    assert train["batch"] == 256 and inf["batch"] == 1
    assert train["combinations"][0]["energy_pj"] > 10 * inf["combinations"][0]["energy_pj"]
    assert "per training step" in train["requirements"][0]["reason"]


def test_without_budgets_checks_the_designs_own_sram(hopper, capsys, tmp_path):
    path, _ = hopper
    code, res = _json(capsys, "edge_ws", "--workload", str(path))
    (req,) = res["requirements"]
    from hwmodel.design import load_design

    own = load_design("edge_ws").weight_sram_bytes()
    assert req["name"] == "sram" and req["budget_text"] == f"the design's {fmt_bytes(own)}"
    assert code == 0 and req["passed"]  # the small actor fits
    # A 512-wide actor (about 270 KB at 8 bits, half at 4) fits edge_ws's weight SRAM at 4 bits
    # only: each combination passes exactly when its stored weights fit, and the check fails.
    wide = tmp_path / "wide.nmw"
    wl = synthetic_td3_workload(11, 3, pattern="dense", hidden=(512, 512), seed=0, with_weights=True)
    wl.meta.update(env="Hopper-v5", sparsity="dense")
    save_workload(wl, wide)
    code, res = _json(capsys, "edge_ws", "--workload", str(wide), "--bits", "8,4")
    (req,) = res["requirements"]
    fits = {c["bits"]: c["model_bytes"] <= own for c in res["combinations"]}
    assert fits == {8: False, 4: True}
    assert req["passing"] == ["dense and 4 bits"] and not req["passed"] and code == 1


@pytest.mark.parametrize("argv, message", [
    (["--latency-budget", "1"], "nmlab check: error: --latency-budget: '1' needs a unit"),
    (["--sram-budget", "5Kb"], "nmlab check: error: --sram-budget: unknown unit 'Kb'"),
    (["--bits", "16"], "nmlab check: error: design 'edge_ws': compute.datatypes: no datatype of 16 bits"),
    (["--bits", "eight"], "nmlab check: error: --bits: 'eight' is not a bitwidth"),
    (["--patterns", "5:4"], "nmlab check: error: --patterns: '5:4' has N=5"),
    (["--patterns", "1:100000"], "nmlab check: error: --patterns: '1:100000' has M=100,000; M is at most 1,024"),
    # Empty lists are refused, not read as "use the defaults" (the check would pass on a combination not asked for).
    (["--bits", ""], "nmlab check: error: --bits: '' is not a bitwidth"),
    (["--patterns", ""], "nmlab check: error: --patterns: '' is not a sparsity pattern"),
    (["--patterns", " "], "nmlab check: error: --patterns: '' is not a sparsity pattern"),
    (["--patterns", "unstructured"], "nmlab check: error: --patterns: 'unstructured' means the workload's own "
                                     "unstructured masks, and this workload's layers are dense; to prune one-shot"),
])
def test_bad_input_exits_2_with_one_line(hopper, argv, message):
    path, _ = hopper
    out = subprocess.run([sys.executable, "-m", "hwmodel", "check", "edge_ws", "--workload", str(path), *argv],
                         capture_output=True, text=True)
    assert out.returncode == 2
    assert out.stderr.strip().startswith(message) and len(out.stderr.strip().splitlines()) == 1
    assert "Traceback" not in out.stderr


def test_missing_design_and_workload_exit_2(hopper, tmp_path):
    path, _ = hopper
    assert main(["check", "no_such_design", "--workload", str(path)]) == 2
    assert main(["check", "edge_ws", "--workload", str(tmp_path / "absent.nmw")]) == 2


def test_a_gpu_without_budgets_is_checked_against_its_l2_said_so(hopper):
    """A GPU's default budget is its L2, which the GPU model never keeps weights in; the reason said
    'SRAM' as for an accelerator."""
    path, _ = hopper
    (req,) = run_check("h100_sxm", str(path), None, None, None, None, "16", None, "inference")["requirements"]
    assert req["name"] == "sram" and req["budget_text"].startswith("the GPU's")
    assert "of L2 (the GPU model reads the weights from DRAM on every call" in req["reason"] and "SRAM" not in req["reason"]


def test_a_figure_just_over_its_budget_does_not_read_over_1x():
    # A GPU at 19.976 us against a 19.97us budget printed "latency is 20 us ..., over (1x) the budget".
    from reports.check import Combination, _budget_req
    from reports.data import fmt_time

    combo = Combination("2:4", 8, "trained", 19.976e-6, 1.0, 1.0, True)
    req = _budget_req("latency", [combo], lambda c: c.latency_s, 19.97e-6, "19.97us", fmt_time, "latency is {v}")
    assert not req.passed and "over (1.0003x) the 19.97us budget" in req.reason, req.reason


def test_a_figure_far_over_its_budget_reads_in_full_not_in_exponent_notation():
    # A GPU's 3.65 mJ per inference against a 100nJ budget printed "over (3.65e+04x) the 100nJ budget".
    from reports.check import Combination, _budget_req
    from reports.data import fmt_energy

    # Written out as the report writes a ratio (reports.data.fmt_ratio): a whole number from 1,000 up.
    for energy_pj, ratio in ((3.6457e9, "36,457"), (1.2341e8, "1,234"), (1.5e8, "1,500"), (99.4e6, "994")):
        combo = Combination("2:4", 8, "trained", 1e-6, energy_pj, 1.0, True)
        req = _budget_req("energy", [combo], lambda c: c.energy_pj, 1e5, "100nJ", fmt_energy, "energy is {v}")
        assert f"over ({ratio}x) the 100nJ budget" in req.reason, req.reason


@pytest.mark.parametrize("ratio", [1.5, 2.0, 12.0, 701.2, 3.6457e4])
def test_check_writes_a_ratio_as_the_report_does(ratio):
    # check wrote its own format: "over (1.5x)", "over (2x)", "over (36,500x)" where the report's tables
    # write 1.50, 2.00 and 36,457 (three significant digits, trailing zeros kept: reports.data.fmt_ratio).
    from reports.check import Combination, _budget_req
    from reports.data import fmt_ratio, fmt_time

    combo = Combination("2:4", 8, "trained", ratio * 10e-6, 1.0, 1.0, True)
    req = _budget_req("latency", [combo], lambda c: c.latency_s, 10e-6, "10us", fmt_time, "latency is {v}")
    assert f"over ({fmt_ratio(ratio)}x) the 10us budget" in req.reason, req.reason


@pytest.mark.parametrize("latency_s, passed, shown", [
    (19.987e-6, True, "latency is 19.987 us"),    # read "latency is 20 us ..., within the 19.99us budget"
    (19.993e-6, False, "latency is 20 us"),       # 20 > 19.99 already reads "over"
    (19.99e-6, True, "latency is 19.99 us"),      # the budget itself: as many digits as it has
    (12.3456e-6, True, "latency is 12.3 us"),     # far from it: three digits
])
def test_a_figure_near_its_budget_prints_on_its_own_side(latency_s, passed, shown):
    from reports.check import Combination, _budget_req
    from reports.data import fmt_time

    combo = Combination("2:4", 8, "trained", latency_s, 1.0, 1.0, True)
    req = _budget_req("latency", [combo], lambda c: c.latency_s, 19.99e-6, "19.99us", fmt_time, "latency is {v}")
    assert req.passed == passed and req.reason.startswith(f"{shown} at "), req.reason


def test_a_figure_exactly_at_its_budget_is_within_it():
    """A budget is "<=": a figure equal to it passes, and the reason says "within", not "over (1x)"."""
    from reports.check import Combination, _budget_req, _sram_req
    from reports.data import fmt_energy

    at = Combination("2:4", 8, "trained", 1.0, 5e6, 40e3, True)
    req = _budget_req("energy", [at], lambda c: c.energy_pj, 5e6, "5uJ", fmt_energy, "energy is {v} per inference")
    assert req.passed and req.passing == ["2:4 and 8 bits"]
    assert req.reason == "energy is 5 uJ per inference at 2:4 and 8 bits, within the 5uJ budget", req.reason
    sram = _sram_req([at], 40e3, "40KB")
    assert sram.passed and sram.passing == ["2:4 and 8 bits"]
    assert sram.reason == "weights take 40 KB at 2:4 and 8 bits and fit in 40KB of SRAM", sram.reason
    # One byte over: does not fit.
    over = Combination("2:4", 8, "trained", 1.0, 5e6, 40e3 + 1, True)
    sram = _sram_req([over], 40e3, "40KB")
    assert not sram.passed and sram.passing == [] and "and do not fit in 40KB of SRAM" in sram.reason


def test_a_budget_passes_only_when_every_combination_meets_it():
    from reports.check import Combination, _budget_req
    from reports.data import fmt_time

    fast = Combination("2:4", 8, "trained", 10e-6, 1.0, 1.0, True)
    slow = Combination("dense", 8, "trained", 30e-6, 1.0, 1.0, True)
    req = _budget_req("latency", [slow, fast], lambda c: c.latency_s, 20e-6, "20us", fmt_time, "latency is {v}")
    assert not req.passed and req.passing == ["2:4 and 8 bits"]
    assert req.reason == ("latency is 30 us at dense and 8 bits, over (1.50x) the 20us budget; "
                          "at 2:4 and 8 bits it is 10 us, within the budget"), req.reason


def test_meeting_all_lists_the_combinations_that_pass_every_requirement(hopper, capsys):
    """A combination that meets the SRAM budget but misses the latency one meets not all of them."""
    path, _ = hopper
    base = ["edge_ws", "--workload", str(path), "--patterns", "dense,2:4", "--bits", "8"]
    _, res = _json(capsys, *base, "--sram-budget", "1GB")
    lat = {c["pattern"]: c["latency_s"] for c in res["combinations"]}
    assert lat["2:4"] < lat["dense"]
    code, res = _json(capsys, *base, "--sram-budget", "1GB", "--latency-budget", "1ns")
    assert code == 1 and res["meeting_all"] == [] and not res["passed"]
    between = (lat["2:4"] + lat["dense"]) / 2 * 1e6
    code, res = _json(capsys, *base, "--sram-budget", "1GB", "--latency-budget", f"{between}us")
    assert code == 1 and res["meeting_all"] == ["2:4 and 8 bits"]


def test_run_check_refuses_batch_zero_rather_than_using_the_default(hopper):
    """The CLI's argparse refuses --batch 0; run_check called directly must too: ``batch or 256``
    would otherwise check a training step at batch 256 and report it as asked."""
    path, _ = hopper
    with pytest.raises(NmlabError, match=r"^--batch: must be a positive integer, got 0$"):
        run_check("edge_ws", str(path), None, None, None, "2:4", "8", 0, "train_step")


def test_a_pattern_the_design_runs_as_another_is_said(hopper, capsys):
    """edge_ws runs 2:4 and 1:4 only: a 1:8 agent runs the 1:4 schedule, so its latency, energy and stored size are
    1:4's. The check printed them as 1:8's with no word of it; it now says what the design runs in its place."""
    path, _ = hopper
    base = ["edge_ws", "--workload", str(path), "--sram-budget", "1GB", "--bits", "8"]
    assert main(["check", *base, "--patterns", "dense,1:4,1:8"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1] == "note: edge_ws runs 1:8 as 1:4 (every group of 4 of the mask holds <= 1)", lines
    assert not any(line.startswith("note:") for line in lines[2:]), lines  # one note; none for dense or 1:4
    code, res = _json(capsys, *base, "--patterns", "1:4,1:8")
    runs = {c["pattern"]: c["runs_as"] for c in res["combinations"]}
    assert code == 0 and runs == {"1:4": "", "1:8": "1:4 (every group of 4 of the mask holds <= 1)"}
    sizes = {c["pattern"]: c["model_bytes"] for c in res["combinations"]}
    assert sizes["1:8"] == sizes["1:4"]  # what the note explains


@pytest.mark.parametrize("name", ["halfcheetah_rlx2_s0.nmw", "hopper_gmp_s0.nmw"])
def test_a_trained_unstructured_agent_is_checked_as_trained(name, capsys):
    """RLx2 and GMP agents keep their small output layers dense (ERK), as the sweep knows (a workload
    with any unstructured layer is an unstructured agent). `check` refused them both ways: by default
    ("the workload mixes patterns dense, unstructured; name the ones to check") and with
    `--patterns unstructured` ("... and this workload's layers are dense, unstructured"), so no
    bundled RLx2 or GMP agent could be checked as trained."""
    from hwmodel.simulate import simulate
    from hwmodel.workload import bundled_workloads, load_workload

    path = next(p for p in bundled_workloads() if p.name == name)
    expected = simulate(load_workload(path), "edge_ws", batch=1, bits=8, scenario="inference").total.latency_s
    for extra in ([], ["--patterns", "unstructured"]):
        code, res = _json(capsys, "edge_ws", "--workload", str(path), "--latency-budget", "1s", *extra)
        assert code == 0
        (c,) = res["combinations"]
        assert (c["pattern"], c["bits"], c["mask_source"]) == ("unstructured", 8, "as trained")
        assert c["latency_s"] == expected


@pytest.mark.parametrize("text, units, exact", [
    ("3426.794us", TIME_UNITS, "0.003426794"), ("0.3ms", TIME_UNITS, "0.0003"), ("14.48909375us", TIME_UNITS, "0.00001448909375"),
    ("4.1nJ", ENERGY_UNITS_PJ, "4100"), ("0.7uJ", ENERGY_UNITS_PJ, "700000"), ("43.36kB", SIZE_UNITS, "43360"),
])
def test_a_budget_is_the_number_it_spells_in_the_base_unit(text, units, exact):
    """'3426.794us' is 0.003426794 s, not 0.0034267939999999997 (3426.794 x 1e-6 rounded twice): a
    latency of exactly 3.426794 ms failed a 3426.794us budget, 'over (1.00000000000x)'."""
    assert parse_quantity(text, units, "--x") == float(exact)


def test_a_figure_equal_to_its_budget_in_another_unit_passes():
    from reports.check import Combination, _budget_req
    from reports.data import fmt_time

    at = Combination("2:4", 8, "trained", 3426794 / 1e9, 1.0, 1.0, True)  # 3,426,794 cycles at 1 GHz
    budget = parse_quantity("3426.794us", TIME_UNITS, "--latency-budget")
    req = _budget_req("latency", [at], lambda c: c.latency_s, budget, "3426.794us", fmt_time, "latency is {v}")
    assert req.passed and "within the 3426.794us budget" in req.reason, req.reason


def _per_layer_workload(folder):
    """A 2:4 agent whose fc1 layers stay dense (what `nmlab train --layer-sparsity fc1=dense` exports)."""
    wl = synthetic_td3_workload(11, 3, pattern="2:4", seed=0, with_weights=True)
    dense = synthetic_td3_workload(11, 3, pattern="dense", seed=0, with_weights=True)
    wl.layers = [d if layer.name.endswith("fc1") else layer for layer, d in zip(wl.layers, dense.layers)]
    wl.meta.update(env="Hopper-v5", sparsity="2:4", layer_sparsity="fc1=dense")
    path = folder / "hopper_2of4_fc1dense_s0.nmw"
    save_workload(wl, path)
    return path, wl


def test_a_per_layer_agent_is_checked_as_trained_with_patterns_mixed(tmp_path, capsys):
    """The sweep names a per-layer agent's pattern `mixed`; `check --patterns mixed` said "pattern: 'mixed' is
    not a sparsity pattern", naming no option, and the agent could not be checked as trained."""
    from hwmodel.simulate import simulate

    path, wl = _per_layer_workload(tmp_path)
    code, res = _json(capsys, "edge_ws", "--workload", str(path), "--patterns", "mixed", "--latency-budget", "1s")
    assert code == 0
    (c,) = res["combinations"]
    assert (c["pattern"], c["mask_source"]) == ("mixed", "as trained")
    assert c["latency_s"] == simulate(wl, "edge_ws", batch=1, bits=8, scenario="inference").total.latency_s


def test_without_patterns_a_mixed_workload_is_told_why_it_is_mixed(tmp_path, capsys):
    """Without --patterns, check asks which patterns to check for a mixed workload and says why it is mixed: a
    run trained per layer (its layers 2:4 and dense) was told it "mixes patterns 2:4, dense"."""
    per_layer, _ = _per_layer_workload(tmp_path)
    two_nm, _ = _dense_output_workload(tmp_path, "1:4")
    for path, why in ((per_layer, "was trained with per-layer patterns (layer_sparsity 'fc1=dense')"),
                      (two_nm, "mixes patterns 1:4, 2:4")):
        assert main(["check", "edge_ws", "--workload", str(path), "--latency-budget", "1s"]) == 2
        assert capsys.readouterr().err.strip() == (f"nmlab check: error: --patterns: the workload {why}; name the "
                                                   f"ones to check (mixed: its own per-layer patterns, as trained)")


def test_patterns_mixed_on_a_workload_of_one_pattern_names_the_option(hopper):
    path, _ = hopper
    out = subprocess.run([sys.executable, "-m", "hwmodel", "check", "edge_ws", "--workload", str(path),
                          "--patterns", "mixed"], capture_output=True, text=True)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert out.stderr.strip().startswith("nmlab check: error: --patterns: 'mixed' means the workload's own "
                                         "per-layer patterns, and this workload's own pattern is dense"), out.stderr


def _dense_output_workload(folder, head="dense", name="hopper_2of4_densehead_s0"):
    """A hand-made workload whose meta says 2:4 (no layer_sparsity) while its critics' output layers are
    ``head`` (dense, or another N:M pattern): the case where check read the layers and the sweep
    meta.sparsity, and named it differently."""
    wl = synthetic_td3_workload(11, 3, pattern="2:4", seed=0, with_weights=True)
    other = synthetic_td3_workload(11, 3, pattern=head, seed=0, with_weights=True)
    wl.layers = [o if layer.name.startswith("critic") and layer.name.endswith("fc3") else layer
                 for layer, o in zip(wl.layers, other.layers)]
    wl.meta.update(env="Hopper-v5", sparsity="2:4", method="rnm-td3", seed=0)
    path = folder / f"{name}.nmw"
    save_workload(wl, path)
    return path, wl


@pytest.mark.parametrize("head,expected", [("dense", "2:4"), ("1:4", "mixed")])
def test_check_and_sweep_name_a_2of4_workload_with_another_layer_alike_and_simulate_the_same(
        tmp_path, capsys, head, expected):
    """meta.sparsity "2:4", no meta.layer_sparsity, the critics' output layers dense (or 1:4): the sweep named it
    by its meta ("2:4") and check by its layers ("mixed" for both). Both now name it by its layers through one
    function (hwmodel.agents.workload_pattern): layers left dense beside one N:M pattern keep it that pattern's
    agent (as RLx2/GMP agents with dense small layers are unstructured), two N:M patterns are mixed; either
    way it is checked and swept as trained, with the same figures."""
    import pandas as pd
    import yaml

    from reports.check import workload_pattern
    from sweeps.grid import _workload_info

    path, wl = _dense_output_workload(tmp_path, head)
    dense_path, _ = hopper_dense_workload(tmp_path)
    assert workload_pattern(wl) == _workload_info(str(path)).pattern == expected
    cfg = tmp_path / "sweep.yaml"
    cfg.write_text(yaml.safe_dump({"workloads": [str(path), str(dense_path)], "patterns": ["2:4", "mixed"],
                                   "bits": [8], "designs": ["edge_ws"], "gpus": "none", "quality": None,
                                   "scenarios": [{"scenario": "inference", "batch": 1},
                                                 {"scenario": "train_step", "batch": 256}]}))
    assert main(["sweep", str(cfg), "--out", str(tmp_path / "out"), "--workers", "1", "--quiet"]) == 0
    capsys.readouterr()
    df = pd.read_parquet(tmp_path / "out" / "points.parquet").set_index(["pattern", "scenario"])
    if expected == "mixed":  # the sweep's 2:4 points are the dense agent's, pruned one-shot
        assert df.loc[("2:4", "inference"), "workload"] == "hopper_dense_s0"
        assert df.loc[("2:4", "inference"), "mask_source"] == "one-shot"
    else:
        assert ("mixed", "inference") not in df.index
    for scenario, batch in (("inference", 1), ("train_step", 256)):
        row = df.loc[(expected, scenario)]
        assert (row.workload, row.mask_source) == ("hopper_2of4_densehead_s0", "trained")
        code, res = _json(capsys, "edge_ws", "--workload", str(path), "--patterns", expected, "--scenario", scenario,
                          "--batch", str(batch), "--latency-budget", "1s")
        (c,) = res["combinations"]
        assert code == 0 and (c["pattern"], c["mask_source"]) == (expected, "as trained")
        # The sweep's columnar engine and check's simulate() sum the layers in another order: the last bit may differ.
        assert (c["latency_s"], c["energy_pj"]) == pytest.approx((row.latency_s, row.energy_pj), rel=1e-12, abs=0)


def test_a_plan_without_mixed_says_why_it_leaves_a_workload_of_two_nm_patterns_out(tmp_path):
    """The note said such a workload was "trained with per-layer patterns", which a workload of 2:4 and 1:4
    layers with no meta.layer_sparsity was not: it names both reasons a workload is mixed now."""
    from sweeps.config import parse_config
    from sweeps.grid import plan

    path, _ = _dense_output_workload(tmp_path, "1:4")
    dense_path, _ = hopper_dense_workload(tmp_path)
    p = plan(parse_config({"workloads": [str(path), str(dense_path)], "patterns": ["2:4"], "bits": [8],
                           "designs": ["edge_ws"], "gpus": "none", "quality": None}, base=tmp_path))
    assert ("hopper_2of4_densehead_s0: per-layer patterns (mixed: trained with --layer-sparsity, or N:M layers of "
            "more than one pattern), swept only where patterns lists mixed") in p.skipped, p.skipped


def _two_pattern_workload(folder, name, quarter_layers, seed=0):
    """A 2:4 TD3 workload (method ``mine``, no meta.layer_sparsity) whose ``quarter_layers`` are 1:4."""
    wl = synthetic_td3_workload(11, 3, pattern="2:4", seed=seed, with_weights=True)
    other = synthetic_td3_workload(11, 3, pattern="1:4", seed=seed, with_weights=True)
    wl.layers = [o if layer.name in quarter_layers else layer for layer, o in zip(wl.layers, other.layers)]
    wl.meta.update(env="Hopper-v5", sparsity="2:4", method="mine", seed=seed)
    path = folder / f"{name}.nmw"
    save_workload(wl, path)
    return path


def test_two_agents_of_two_nm_patterns_each_are_two_agents_named_by_their_layers(tmp_path, capsys):
    """Workloads of 2:4 and 1:4 layers with no meta.layer_sparsity were all labelled ``mixed``: two agents of one
    method whose layers differ were taken for one, and the sweep ran only the first. Their labels now say which
    layers carry the other pattern; two seeds of one agent share their label (one agent, lowest seed swept)."""
    import pandas as pd
    import yaml

    from hwmodel.agents import mixed_layers_label
    from sweeps.grid import _workload_info

    a = _two_pattern_workload(tmp_path, "hopper_a_s0", {"actor.fc2"})
    a1 = _two_pattern_workload(tmp_path, "hopper_a_s1", {"actor.fc2"}, seed=1)
    b = _two_pattern_workload(tmp_path, "hopper_b_s0", {"actor.fc1", "critic1.fc1", "critic2.fc1"})
    many = _two_pattern_workload(tmp_path, "hopper_c_s0", {"actor.fc1", "actor.fc2", "critic1.fc1", "critic2.fc1"})
    labels = {p.stem: _workload_info(str(p)).agent for p in (a, a1, b, many)}
    assert labels["hopper_a_s0"] == labels["hopper_a_s1"] == "2:4 + 1:4 at actor.fc2"
    assert labels["hopper_b_s0"] == "2:4 + 1:4 at actor.fc1 critic1.fc1 critic2.fc1"
    assert re.fullmatch(r"2:4 \+ 1:4 at 4 layers #[0-9a-f]{8}", labels["hopper_c_s0"]), labels
    # The pattern most layers carry comes first; never read as a --layer-sparsity label (no "=").
    flipped = synthetic_td3_workload(11, 3, pattern="1:4")
    flipped.layers[1] = synthetic_td3_workload(11, 3, pattern="2:4").layers[1]
    assert mixed_layers_label(flipped.layers) == f"1:4 + 2:4 at {flipped.layers[1].name}"
    cfg = tmp_path / "sweep.yaml"
    cfg.write_text(yaml.safe_dump({"workloads": [str(p) for p in (a, a1, b, many)], "patterns": ["mixed"],
                                   "bits": [8], "designs": ["edge_ws"], "gpus": "none", "quality": None,
                                   "scenarios": [{"scenario": "inference", "batch": 1}]}))
    assert main(["sweep", str(cfg), "--out", str(tmp_path / "out"), "--workers", "1", "--quiet"]) == 0
    err = capsys.readouterr().err
    df = pd.read_parquet(tmp_path / "out" / "points.parquet")
    assert sorted(df.workload) == ["hopper_a_s0", "hopper_b_s0", "hopper_c_s0"]
    assert df.agent.nunique() == 3
    assert "hopper_a_s1: hopper_a_s0 stands for" in err


@pytest.mark.parametrize("stem", ["dense", "2of4", "1of4", "1of8", "rlx2", "gmp"])
def test_bundled_workloads_keep_the_pattern_check_and_sweep_give_them(stem):
    """Every bundled workload keeps its name (RLx2 and GMP agents keep small layers dense and are unstructured)."""
    from hwmodel.workload import bundled_workloads, load_workload
    from reports.check import workload_pattern
    from sweeps.grid import _workload_info

    expected = {"dense": "dense", "2of4": "2:4", "1of4": "1:4", "1of8": "1:8", "rlx2": "unstructured",
                "gmp": "unstructured"}[stem]
    paths = [p for p in bundled_workloads() if p.stem.split("_")[1] == stem]
    assert len(paths) == 2
    for p in paths:
        assert workload_pattern(load_workload(p)) == _workload_info(str(p)).pattern == expected


@pytest.mark.parametrize("meta", [{"layer_sparsity": "see the notes"}, {"layer_sparsity": "fc1=dense"}],
                         ids=["free-form", "no-meta-sparsity"])
def test_a_two_pattern_workload_whose_layer_sparsity_is_unreadable_is_named_by_its_layers(tmp_path, meta):
    """A meta.layer_sparsity that is no --layer-sparsity run's (free-form text, or no meta.sparsity to read
    it against) says nothing of the layers: such a workload of 2:4 and 1:4 layers is named by them, as one
    without the key is, not the bare 'mixed' every such agent of its method would share."""
    from hwmodel.workload import load_workload
    from sweeps.grid import _workload_info

    a = _two_pattern_workload(tmp_path, "hopper_a_s0", {"actor.fc2"})
    wl = load_workload(a)
    wl.meta.update(meta)
    if "sparsity" not in meta:
        wl.meta.pop("sparsity", None)
    save_workload(wl, a)
    assert _workload_info(str(a)).agent == "2:4 + 1:4 at actor.fc2"


def test_two_agents_of_two_nm_patterns_each_join_their_own_quality_row(tmp_path):
    """Each two-pattern agent has a label of its own; a quality row naming that label as its sparsity gives
    that agent its return and no other (a row naming the label was refused as no pattern)."""
    import pandas as pd
    import yaml

    a = _two_pattern_workload(tmp_path, "hopper_a_s0", {"actor.fc2"})
    b = _two_pattern_workload(tmp_path, "hopper_b_s0", {"actor.fc1", "critic1.fc1", "critic2.fc1"})
    quality = tmp_path / "q.csv"
    quality.write_text("env,method,sparsity,bits,seed,return_mean\n"
                       "Hopper-v5,mine,2:4 + 1:4 at actor.fc2,8,0,1000\n"
                       "Hopper-v5,mine, 2:4  +  1:4 at actor.fc1 critic1.fc1 critic2.fc1 ,8,0,2000\n")
    cfg = tmp_path / "sweep.yaml"
    cfg.write_text(yaml.safe_dump({"workloads": [str(a), str(b)], "patterns": ["mixed"], "bits": [8],
                                   "designs": ["edge_ws"], "gpus": "none", "quality": str(quality),
                                   "scenarios": [{"scenario": "inference", "batch": 1}]}))
    assert main(["sweep", str(cfg), "--out", str(tmp_path / "out"), "--workers", "1", "--quiet"]) == 0
    df = pd.read_parquet(tmp_path / "out" / "points.parquet").set_index("workload")
    assert df.return_mean.to_dict() == {"hopper_a_s0": 1000.0, "hopper_b_s0": 2000.0}
