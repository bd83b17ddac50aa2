"""The model gives the answers it gave before it became columnar: every column of every point.

Reference files in tests/data were written by tests/data/make_model_fixtures.py at commit
6fee389 (the per-GEMM scalar model): the default sweep's ``points.parquet`` (with the quality
table it joined) and per-layer rows of ``simulate()`` over bundled workloads x designs x
scenarios x residencies x batches. Numbers must agree to 1e-9 relative, text and flags exactly.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

DATA = Path(__file__).parent / "data"
RTOL = 1e-9


def _same_column(name: str, want: list, got: list, where: list[str]) -> list[str]:
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


def test_default_sweep_equals_the_reference_points(tmp_path):
    from sweeps import api
    from sweeps.config import SweepConfig

    ref = pq.read_table(DATA / "default_sweep_points.parquet")
    # The reference predates GPUs as design points: the default grid without them.
    cfg = SweepConfig(quality=str(DATA / "default_sweep_quality.csv"), gpus=[])
    api.run(cfg, tmp_path / "out", workers=1, progress=False)
    got = pq.read_table(tmp_path / "out" / "points.parquet")
    assert got.column_names == ref.column_names
    assert got.column("point_id").to_pylist() == ref.column("point_id").to_pylist()
    ids = ref.column("point_id").to_pylist()
    bad = []
    for name in ref.column_names:
        bad += _same_column(name, ref.column(name).to_pylist(), got.column(name).to_pylist(), ids)
    assert not bad, f"{len(bad)} values differ, e.g.\n" + "\n".join(bad[:20])


def test_simulate_layers_equal_the_reference():
    from hwmodel import simulate
    from hwmodel.io import data_path

    ref = pq.read_table(DATA / "simulate_layers.parquet").to_pandas()
    numeric = [c for c in ref.columns if ref[c].dtype.kind in "fi" and c not in ("case", "index", "bits", "batch")]
    text = [c for c in ("name", "network", "phase", "pattern", "hw_pattern", "mapping_note", "update")
            if c in ref.columns]
    bad = []
    for case, rows in ref.groupby("case", sort=True):
        first = rows.iloc[0]
        res = simulate(str(data_path("workloads", first.workload)), first.design, batch=int(first.batch),
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
                if want[c] != got[c]:
                    bad.append(f"{where} {want['name']} {c}: reference {want[c]!r}, now {got[c]!r}")
        summary = rows[rows["index"] < 0].iloc[0]
        for c in numeric:
            if c in d["summary"] and not (isinstance(summary[c], float) and np.isnan(summary[c])):
                bad += _same_column(c, [float(summary[c])], [float(d["summary"][c])], [f"{where} summary"])
    assert not bad, f"{len(bad)} values differ, e.g.\n" + "\n".join(bad[:20])
