"""The model gives the answers it gave before it became columnar: every column of every point.

Reference files in tests/data were written by tests/data/make_model_fixtures.py at commit
6fee389 (the per-GEMM scalar model): the default sweep's ``points.parquet`` (with the quality
table it joined) and per-layer rows of ``simulate()`` over bundled workloads x designs x
scenarios x residencies x batches. GPU design points have their own reference, written by
tests/data/make_gpu_fixtures.py at 3ee5ba4 (one ``simulate()`` per GPU point): a GPU sweep
``gpu_sweep_points.parquet`` and per-layer ``gpu_simulate_layers.parquet``. Numbers must agree
to 1e-9 relative, text and flags exactly.

The references were written over the bundled workloads of their day; a workload re-bundled
since (a retrained agent) is kept as it was in tests/data/reference_workloads/, and these
tests read it from there (point ids hash a workload's name and sha, not its path).
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

DATA = Path(__file__).parent / "data"
REFERENCE_WORKLOADS = DATA / "reference_workloads"
RTOL = 1e-9


def workload_path(name: str) -> Path:
    """A workload as the references saw it: the kept copy if it was re-bundled since."""
    from hwmodel.io import data_path

    kept = REFERENCE_WORKLOADS / name
    return kept if kept.is_file() else data_path("workloads", name)


def reference_workloads() -> list[str]:
    """The bundled workload list (sorted by name, as "bundled" resolves) with kept copies swapped in."""
    from hwmodel.workload import bundled_workloads

    return [str(workload_path(p.name)) for p in bundled_workloads()]


def _same_column(name: str, want: list, got: list, where: list[str]) -> list[str]:
    # zip() stops at the shorter list: a sweep missing its last points compared equal.
    assert len(want) == len(got) == len(where), f"{name}: reference has {len(want)} values, now {len(got)}"
    bad = []
    for w, g, label in zip(want, got, where):
        if isinstance(w, float) or isinstance(g, float):
            if w is None or g is None:
                ok = w is None and g is None
            elif math.isnan(w) or math.isnan(g):
                ok = math.isnan(w) and math.isnan(g)
            else:
                ok = abs(w - g) <= RTOL * max(abs(w), abs(g))
        else:
            ok = w == g
        if not ok:
            bad.append(f"{label} {name}: reference {w!r}, now {g!r}")
    return bad


#: Columns the sweep gained after the references were written (not in them, so not compared here), and where
#: they are checked instead.
ADDED_SINCE = {"runs_as": "tests/test_report_answer.py::test_glance_names_a_pattern_the_design_runs_as_another"}


def _same_sweep(cfg, reference: str, out: Path) -> None:
    """Run the sweep ``cfg`` into ``out``; every column of every point equals ``reference``'s."""
    from sweeps import api
    from sweeps.grid import canonical_of, plan, point_id

    ref = pq.read_table(DATA / reference)
    api.run(cfg, out, workers=1, progress=False)
    got = pq.read_table(out / "points.parquet")
    assert [c for c in got.column_names if c not in ADDED_SINCE] == ref.column_names
    assert got.num_rows == ref.num_rows, f"{got.num_rows} points, the reference has {ref.num_rows}"
    # Ids hash the model since (sweeps.grid.model_sha), so the reference's are not today's: the
    # same points in the same order, each id today's hash of its row's configuration columns.
    keys = list(canonical_of(next(iter(plan(cfg).points()))))
    assert got.column("point_id").to_pylist() == [point_id(row) for row in got.select(keys).to_pylist()]
    ids = ref.column("point_id").to_pylist()
    bad = []
    for name in ref.column_names:
        if name != "point_id":
            bad += _same_column(name, ref.column(name).to_pylist(), got.column(name).to_pylist(), ids)
    assert not bad, f"{len(bad)} values differ, e.g.\n" + "\n".join(bad[:20])


def test_default_sweep_equals_the_reference_points(tmp_path):
    from sweeps.config import SweepConfig

    # The reference predates GPUs as design points: the default grid without them.
    _same_sweep(SweepConfig(workloads=reference_workloads(), quality=str(DATA / "default_sweep_quality.csv"), gpus=[]),
                "default_sweep_points.parquet", tmp_path / "out")


def test_gpu_sweep_equals_the_reference_points(tmp_path):
    """GPU design points (columnar since) as they were when evaluated one ``simulate()`` each
    (tests/data/make_gpu_fixtures.py at 3ee5ba4): patterns that fit 2:4 and not, bits 16/8,
    several batches of both scenarios, chunks mixing GPU and accelerator points."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_gpu_fixtures", DATA / "make_gpu_fixtures.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    cfg = mod.gpu_sweep_config(DATA)
    cfg.workloads = reference_workloads()
    _same_sweep(cfg, "gpu_sweep_points.parquet", tmp_path / "out")


#: Notes whose wording changed after the reference was written, the decision unchanged: a
#: flexible design whose rows all need N = M said "has a full group of M" also where the
#: fullest group held fewer than M (more than every N below M the design offers).
REWORDED = [(re.compile(r"every row of the (\S+) has a full group of (\d+): run dense"),
             re.compile(r"every row of the (\S+) has a group holding \d+ or more of (\d+), more than any N below "
                        r"\d+ the design offers \([\d, ]+\): run dense"))]


#: A fixed design's dense fallback said two reasons in one sentence ("W^T does not fit any of
#: 1:4, 2:4 (a group of 4 holds 1) with fewer than K=1 slots"); it now says the one that holds:
#: a pattern that fits but cannot shorten K, or no pattern that fits (``_fixed_fallback_now``).
FIXED_FALLBACK_WAS = re.compile(r"(?P<lead>.*?)(?P<what>mask|W\^T) does not fit any of (?P<names>[\d:, ]+) "
                                r"\((?P<worst>[^)]*)\) with fewer than K=(?P<k>\d+) slots: run dense "
                                r"\(zeros stored and multiplied\)")


def _fixed_fallback_now(old: str) -> str | None:
    """The new wording of an old fixed-design fallback note, decided from the note's own figures."""
    a = FIXED_FALLBACK_WAS.fullmatch(str(old))
    if not a:
        return None
    holds = {int(m): int(h) for m, h in re.findall(r"a group of (\d+) holds (\d+)", a["worst"])}
    names = a["names"].split(", ")
    fitting = [q for q in names if holds[int(q.split(":")[1])] <= int(q.split(":")[0])]
    tail = "run dense (zeros stored and multiplied)"
    if fitting:
        return f"{a['lead']}{a['what']}: K={a['k']} is too short for {fitting[0]} to skip a slot: {tail}"
    fullest = ", ".join(sorted(f"its fullest group of {m} keeps {h}" for m, h in holds.items()))
    return f"{a['lead']}{a['what']} is not {' or '.join(names)} ({fullest}): {tail}"


def _reworded(old: str, new: str) -> bool:
    """True when ``new`` is ``old`` in a wording listed in ``REWORDED`` (same layer view and M)
    or the fixed-design fallback's new wording."""
    for was, now in REWORDED:
        a, b = was.fullmatch(str(old)), now.fullmatch(str(new))
        if a and b and a.groups() == b.groups():
            return True
    return _fixed_fallback_now(old) == str(new)


@pytest.mark.parametrize("reference", ["simulate_layers.parquet", "gpu_simulate_layers.parquet"])
def test_simulate_layers_equal_the_reference(reference):
    from hwmodel import simulate

    ref = pq.read_table(DATA / reference).to_pandas()
    numeric = [c for c in ref.columns if ref[c].dtype.kind in "fi" and c not in ("case", "index", "bits", "batch")]
    text = [c for c in ("name", "network", "phase", "pattern", "hw_pattern", "mapping_note", "update")
            if c in ref.columns]
    bad = []
    for case, rows in ref.groupby("case", sort=True):
        first = rows.iloc[0]
        res = simulate(str(workload_path(first.workload)), first.design, batch=int(first.batch),
                       bits=int(first.bits), scenario=first.scenario, residency=first.residency)
        d = res.to_dict()
        layers = rows[rows["index"] >= 0].sort_values("index")
        assert len(layers) == len(d["layers"]), f"case {case}: layer count"
        where = f"case {case} ({first.workload} {first.design} {first.scenario} {first.residency} b{first.batch})"
        for (_, want), got in zip(layers.iterrows(), d["layers"]):
            for c in numeric:
                if not np.isnan(want[c]) or c in got:
                    bad += _same_column(c, [float(want[c])], [float(got[c])], [f"{where} {want['name']}"])
            for c in text:
                if want[c] != got[c] and not (c == "mapping_note" and _reworded(want[c], got[c])):
                    bad.append(f"{where} {want['name']} {c}: reference {want[c]!r}, now {got[c]!r}")
        summary = rows[rows["index"] < 0].iloc[0]
        for c in numeric:
            if c in d["summary"] and not (isinstance(summary[c], float) and np.isnan(summary[c])):
                bad += _same_column(c, [float(summary[c])], [float(d["summary"][c])], [f"{where} summary"])
    assert not bad, f"{len(bad)} values differ, e.g.\n" + "\n".join(bad[:20])
