"""benchmarks/gpu_missed_cells.py: the missed target cells and the verdict rule beside them."""

import sys
from types import SimpleNamespace

import numpy as np
import pytest

from tests.conftest import load_benchmark


@pytest.fixture(scope="module")
def mod():
    return load_benchmark("gpu_missed_cells")


@pytest.fixture(scope="module")
def rows(mod):
    """Every missed cell of validate's split, with its evidence and verdict."""
    logs, blocks = mod.load_inputs()
    out = []
    for block in blocks:
        cells, met, total = mod.gpu_cells(block, logs)
        assert len(cells) == total - met, block.spec.name  # exactly the cells cells_met counts as missed
        out += cells
    return out


def test_rows_are_the_missed_cells_with_an_allowed_verdict(mod, rows):
    assert rows, "validate's split meets every target: the script has nothing to list"
    assert len({(r["gpu"], r["dtype"], r["target"]) for r in rows}) == len(rows)
    for r in rows:
        assert r["verdict"] in mod.VERDICTS, r
        if r["target"] == "crossover":
            assert r["steps"] > mod.TARGETS["crossover_steps"], r
        else:
            assert r["model"] >= 100 * mod.TARGETS["mape"], r  # the cell really is missed
            line = mod.format_row(r)
            assert f"{r['model']:.1f}" in line and line.endswith(r["verdict"])


def test_error_rule(mod):
    v = mod.error_verdict
    assert v(9.0, None, [], None, 8.0) == "no evidence"
    assert v(9.0, (8.5, 8.1), [], None, 8.0) == "data floor"  # the better learner misses too
    assert v(9.0, (8.5, 7.9), [], None, 8.0) == "model"
    assert v(9.0, (8.5, 7.9), [7.5], None, 8.0) == "data floor"  # a repeat within 1.5 points
    assert v(9.0, (8.5, 7.9), [7.4], None, 8.0) == "model"
    assert v(9.0, None, [], (9.1, 7.9), 8.0) == "data floor"  # only the published run misses
    assert v(9.0, None, [], (9.1, 8.2), 8.0) == "model"


def test_crossover_rule_and_margin(mod):
    v = mod.crossover_verdict
    assert v(None, 3.0, None) == "no evidence"
    assert v(3, 50.0, 1.0) == "data floor"  # the twin's own crossover is 3 steps away
    assert v(0, 3.0, 6.0) == "data floor"  # a typical repeat can move the crossover onto the target
    assert v(0, 6.0, 3.0) == "model"

    sizes = np.array([64.0, 128.0, 256.0, 512.0, 1024.0])  # square GEMMs: 2:4 wins from 64 on, barely at 256
    meas = SimpleNamespace(m=sizes, k=sizes, n=sizes, dtype=np.array(["int8"] * 5),
                           speedup=np.array([1.2, 1.3, 1.02, 1.5, 1.6]))

    # predicted 1024: a crossover at 512 (one step) needs 256 to lose: a 2% change
    assert mod.crossover_margin_pct(meas, "int8", 1024.0) == pytest.approx(2.0)
    # predicted never: a crossover past 1024 or at it needs 1024 or 512 to lose
    assert mod.crossover_margin_pct(meas, "int8", None) == pytest.approx(50.0)


def test_runs_as_a_command(mod, capsys, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["gpu_missed_cells.py"])
    assert mod.main() == 0
    out = capsys.readouterr().out.splitlines()
    assert out[-1].startswith("cells missed: ")
    assert len(out) == 3 + int(out[-1].split()[2])  # two header lines, one per missed cell, the summary
