"""Pareto fronts of a sweep table, and their definitions (which objectives, which sense).

A row is on a front when no other row of its group is at least as good in every objective
and strictly better in one. Rows equal in every objective are all on the front (ties are
kept, so the front is a set of point ids that anyone can recompute from the table). Rows
with a missing (NaN) objective are left out of that front and counted as excluded.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import numpy as np
import pandas as pd

FRONTS_FORMAT = "nmlab-fronts"
FRONTS_VERSION = 1

#: Columns that group rows: a front compares points of one env, one scenario and batch, and
#: one design (or all designs: "design": null in fronts.json).
GROUP_COLUMNS = ("env", "scenario", "batch")


@dataclass(frozen=True)
class FrontSpec:
    """A kind of front: ``objectives`` are (column, "min"|"max") pairs, x axis first."""

    name: str
    title: str
    objectives: tuple[tuple[str, str], ...]


FRONT_SPECS = (
    FrontSpec("return_vs_energy", "Return vs energy per pass", (("energy_pj", "min"), ("return_mean", "max"))),
    FrontSpec("return_vs_latency", "Return vs latency", (("latency_s", "min"), ("return_mean", "max"))),
    FrontSpec("energy_vs_latency", "Energy vs latency", (("latency_s", "min"), ("energy_pj", "min"))),
    FrontSpec("size_vs_return", "Model size vs return", (("model_bytes", "min"), ("return_mean", "max"))),
)


def pareto_mask(values: np.ndarray, senses: list[str]) -> np.ndarray:
    """Bool mask of non-dominated rows of ``values`` [n, k] (no NaN) under ``senses``.

    Two objectives use an O(n log n) sweep; more use a blocked O(n^2) comparison.
    """
    v = np.asarray(values, dtype=np.float64).copy()
    n = len(v)
    if n == 0:
        return np.zeros(0, dtype=bool)
    for j, s in enumerate(senses):
        if s == "max":
            v[:, j] = -v[:, j]
        elif s != "min":
            raise ValueError(f"sense must be 'min' or 'max', got {s!r}")
    if v.shape[1] == 2:
        return _pareto_2d(v[:, 0], v[:, 1])
    keep = np.ones(n, dtype=bool)
    for start in range(0, n, 1024):
        block = v[start:start + 1024]
        le = (v[None, :, :] <= block[:, None, :]).all(-1)
        lt = (v[None, :, :] < block[:, None, :]).any(-1)
        keep[start:start + 1024] = ~(le & lt).any(1)
    return keep


def _pareto_2d(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Minimise both. Row i is dominated iff some row has a < a_i and b <= b_i, or a == a_i and b < b_i."""
    order = np.lexsort((b, a))          # by a, then b
    a_s, b_s = a[order], b[order]
    # Start of each run of equal a: the smallest b of the run sits there (sorted by b within).
    starts = np.r_[True, a_s[1:] != a_s[:-1]]
    run_id = np.cumsum(starts) - 1
    run_min_b = b_s[starts][run_id]
    # Smallest b over all rows with strictly smaller a: prefix minimum over previous runs.
    run_mins = b_s[starts]
    prev = np.r_[np.inf, np.minimum.accumulate(run_mins)[:-1]]
    best_before = prev[run_id]
    dominated = (best_before <= b_s) | (run_min_b < b_s)
    keep = np.empty_like(dominated)
    keep[order] = ~dominated
    return keep


def _groups(df: pd.DataFrame) -> list[tuple[dict[str, Any], np.ndarray]]:
    """(group key, row positions) per env/scenario/batch, per design and across all designs."""
    out = []
    by_design = df.groupby([*GROUP_COLUMNS, "design"], sort=True, dropna=False).indices
    by_section: dict[tuple, list[tuple[Any, np.ndarray]]] = {}
    for key, idx in by_design.items():
        by_section.setdefault(tuple(key[:-1]), []).append((key[-1], idx))
    for key in sorted(by_section, key=lambda k: tuple(str(x) for x in k)):
        base = {c: _plain(k) for c, k in zip(GROUP_COLUMNS, key)}
        parts = by_section[key]
        out.append(({**base, "design": None}, np.sort(np.concatenate([idx for _, idx in parts]))))
        for design, idx in sorted(parts, key=lambda p: str(p[0])):
            out.append(({**base, "design": _plain(design)}, idx))
    return out


def _plain(x: Any) -> Any:
    return x.item() if hasattr(x, "item") else x


def compute_fronts(df: pd.DataFrame) -> list[dict[str, Any]]:
    """Every front of the table: one dict per (spec, group) with the point ids on it.

    Each dict: name, title, group (env, scenario, batch, design or None), objectives
    ([{column, sense}]), point_ids (on the front, sorted by the objectives then id),
    candidates (rows with all objectives present), excluded_missing (rows left out).
    """
    ids = df["point_id"].to_numpy(dtype=object)
    specs = [s for s in FRONT_SPECS if all(c in df.columns for c, _ in s.objectives)]
    cols = {c: df[c].to_numpy(dtype=np.float64) for s in specs for c, _ in s.objectives}
    fronts = []
    for group, idx in _groups(df):
        for spec in specs:
            names = [c for c, _ in spec.objectives]
            vals = np.column_stack([cols[c][idx] for c in names])
            ok = ~np.isnan(vals).any(axis=1)
            mask = pareto_mask(vals[ok], [s for _, s in spec.objectives])
            on_vals, on_ids = vals[ok][mask], ids[idx][ok][mask]
            order = np.lexsort((on_ids.astype(str), *[on_vals[:, j] for j in reversed(range(len(names)))]))
            fronts.append({
                "name": spec.name, "title": spec.title, "group": group,
                "objectives": [{"column": c, "sense": s} for c, s in spec.objectives],
                "point_ids": [str(i) for i in on_ids[order]],
                "candidates": int(ok.sum()), "excluded_missing": int((~ok).sum()),
            })
    return fronts


def group_rows(df: pd.DataFrame, group: dict[str, Any]) -> pd.DataFrame:
    """The rows a front's ``group`` selects (``design`` None means all designs)."""
    sel = np.ones(len(df), dtype=bool)
    for c, v in group.items():
        if v is not None:
            sel &= (df[c] == v).to_numpy()
    return df[sel]


def fronts_document(fronts: list[dict[str, Any]], table: str = "../points.parquet",
                    notes: Optional[list[str]] = None) -> dict[str, Any]:
    """The JSON written to ``DIR/report/fronts.json`` (format in docs/reports.md)."""
    return {
        "format": FRONTS_FORMAT, "version": FRONTS_VERSION, "table": table,
        "definition": "a row is on a front when no row of its group is <= in every objective (after turning "
                      "'max' objectives into 'min') and < in one; rows with a missing objective are excluded",
        "group_columns": [*GROUP_COLUMNS, "design"],
        "notes": notes or [],
        "fronts": fronts,
    }
