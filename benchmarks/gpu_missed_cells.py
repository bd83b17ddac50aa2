"""The target cells ``nmlab gpu validate`` misses, each with the published data's own evidence beside it.

One row per target cell NOT met on the split (seed 13, validate's, by default; the cells
``gpu_split_seeds.cells_met`` counts): GPU, dtype, target (dense / 2:4 / speedup / crossover)
and the model's held-out figure (%), then what the data themselves let any model reach for
that GPU, dtype and quantity, where the evidence exists ("-" where it does not):

* ``learned`` / ``m+learned``: held-out figures of the learned interpolator and of the model
  times a learned correction on the same split (``gpu_learned_floor.floor_rows``; their knobs
  are chosen on the held-out rows, so they are optimistic);
* ``repeat``: the second timing (the source's search logs, ``gpu_log_repeat``): mean
  |published / logged - 1| of the quantity over the dtype's shapes in both logs;
* ``model pub/log``: the model on the held-out shapes in both logs, against the published and
  against the logged times;
* ``twin``: mean |bf16 / fp16 - 1| of the quantity over the shapes timed in both twins
  (``gpu_twin_noise``: one tensor rate, same bytes).

Crossover rows give the square-GEMM crossover measured / predicted and the size steps apart;
``twin`` gives the other twin's measured crossover and its steps from this dtype's; ``margin``
the smallest change (%) of the measured square speedups, each by at most that much, that puts
the measured crossover within one step of the predicted one (the speedups that must cross 1:
how firmly the data fix the miss); ``repeat`` the dtype's speedup repeat figure (second
timing, else twin).

Verdict (the rule): a dense / 2:4 / speedup cell is ``no evidence`` when it has no learner,
repeat or model pub/log figure; else ``data floor`` when (a) the better learner also misses the
target (its figure is not under it), or (b) a repeat figure (second timing or twin) is at least
the model's figure less ``NEAR_PTS`` (1.5) points, or (c) the model meets the target against the
logged times on the logged held-out shapes while missing it against the published times on the
same shapes; else ``model``. A crossover cell is ``no evidence`` when it has neither a twin nor a
speedup repeat figure (the margin alone decides nothing); else ``data floor`` when the twin's
measured crossover is more than the target's steps (one) from this dtype's, or the margin is at
most the speedup repeat figure (a typical second timing could move the measured crossover onto
the target); else ``model``. The last line counts the cells per verdict.

    PYTHONPATH=$PWD python benchmarks/gpu_missed_cells.py [--seed N]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Optional

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gpu_common import mape_pct  # noqa: E402  (benchmarks/gpu_common.py)
from gpu_learned_floor import floor_rows  # noqa: E402
from gpu_log_repeat import has_logs, load_inputs, paired  # noqa: E402
from gpu_split_seeds import KINDS, cells_met, target_cells  # noqa: E402
from gpu_twin_noise import TWINS, spread, twin_rows  # noqa: E402

from hwmodel.gpu.validate import SPLIT_SEED, TARGETS, crossover_steps, validate_block  # noqa: E402

TARGET_NAMES = {"mape_dense": "dense", "mape_sparse": "2:4", "speedup_mape": "speedup", "crossover": "crossover"}
#: A repeat figure this many points (%) or less below the model's counts as "near the floor".
NEAR_PTS = 1.5
VERDICTS = ("data floor", "model", "no evidence")


def missed(report: dict) -> list[tuple[str, str]]:
    """(dtype, kind) of the cells of one GPU's report that ``cells_met`` does not count as met;
    kind is one of ``KINDS`` or "crossover"."""
    return [(dtype, kind) for dtype, kind, met in target_cells(report) if not met]


def error_verdict(model_pct: float, learners: Optional[tuple[float, float]], repeats: list[float],
                  on_logged: Optional[tuple[float, float]], target_pct: float) -> str:
    """The rule for a dense / 2:4 / speedup cell (module docstring); ``on_logged`` is the model
    against (published, logged) times on the logged held-out shapes."""
    if learners is None and not repeats and on_logged is None:
        return "no evidence"
    if learners is not None and min(learners) >= target_pct:
        return "data floor"
    if any(model_pct - r <= NEAR_PTS for r in repeats):
        return "data floor"
    if on_logged is not None and on_logged[1] < target_pct <= on_logged[0]:
        return "data floor"
    return "model"


def crossover_verdict(twin_steps: Optional[int], margin_pct: Optional[float], repeat_pct: Optional[float]) -> str:
    """The rule for a crossover cell (module docstring)."""
    if twin_steps is None and repeat_pct is None:
        return "no evidence"
    if twin_steps is not None and twin_steps > TARGETS["crossover_steps"]:
        return "data floor"
    if margin_pct is not None and repeat_pct is not None and margin_pct <= repeat_pct:
        return "data floor"
    return "model"


def crossover_margin_pct(meas, dtype: str, predicted) -> Optional[float]:
    """Smallest change (%) that, applied to each measured square speedup as needed (at most that
    much each), puts the measured crossover within the target's steps of the predicted one."""
    sq = (meas.dtype == dtype) & (meas.m == meas.k) & (meas.k == meas.n)
    order = np.argsort(meas.m[sq], kind="stable")
    sizes, speedup = meas.m[sq][order].tolist(), meas.speedup[sq][order]
    if not sizes:
        return None
    win = np.where(speedup > 1.0, 0.0, np.abs(speedup - 1.0))  # to win, a size needs speedup > 1
    lose = np.where(speedup <= 1.0, 0.0, np.abs(speedup - 1.0))
    p = len(sizes) if predicted is None else sizes.index(predicted)
    steps = TARGETS["crossover_steps"]
    # crossover at index c (len = never): every size from c on wins, the one before c loses
    costs = [max(win[c:].max(initial=0.0), lose[c - 1] if c else 0.0)
             for c in range(max(0, p - steps), min(len(sizes), p + steps) + 1)]
    return float(100 * min(costs))


def cell_rows(block, report: dict, floor: dict, logs: dict) -> list[dict]:
    """One dict per missed cell of one GPU: the model's figure, the evidence and the verdict."""
    gpu, meas = block.spec.name, block.meas
    dense, sparse = report["_pred"]
    quantities = {"mape_dense": (meas.dense_us, dense), "mape_sparse": (meas.sparse_us, sparse),
                  "speedup_mape": (meas.speedup, dense / sparse)}
    tb, tf = twin_rows(meas)

    def logged_pairs(dtype: str, where) -> tuple[np.ndarray, dict]:
        """The rows of ``dtype`` in ``where`` that both logs hold, and their logged quantities."""
        both, ld, ls = paired(logs, gpu, dtype, meas, np.flatnonzero(where & (meas.dtype == dtype)))
        return both, {"mape_dense": ld, "mape_sparse": ls, "speedup_mape": ld / ls}

    def log_repeat_pct(dtype: str, kind: str) -> float:
        """The second timing's figure: mean |published / logged - 1| of the quantity."""
        both, logged_q = logged_pairs(dtype, True)
        return mape_pct(quantities[kind][0][both], logged_q[kind])

    def twin_pct(kind: str) -> float:
        """The twins' figure: mean |bf16 / fp16 - 1| of the quantity."""
        measured = quantities[kind][0]
        return 100 * spread(np.log(measured[tb] / measured[tf]))[0]

    rows = []
    for dtype, kind in missed(report):
        s = report["dtypes"][dtype]
        logged_here = has_logs(logs, gpu, dtype)
        twin = next((t for t in TWINS if t != dtype), None) if dtype in TWINS and tb.size else None
        row = {"gpu": gpu, "dtype": dtype, "target": TARGET_NAMES[kind]}
        if kind == "crossover":
            xo = s["crossover"]
            row["measured"], row["predicted"], row["steps"] = xo["measured"], xo["predicted"], xo["steps"]
            row["twin_xo"] = report["crossover_measured"][twin] if twin else None
            row["twin_steps"] = crossover_steps(xo["sizes"], row["twin_xo"], xo["measured"]) if twin else None
            row["margin"] = crossover_margin_pct(meas, dtype, xo["predicted"])
            row["repeat"] = (log_repeat_pct(dtype, "speedup_mape") if logged_here
                             else twin_pct("speedup_mape") if twin else None)
            row["verdict"] = crossover_verdict(row["twin_steps"], row["margin"], row["repeat"])
            rows.append(row)
            continue
        i = KINDS.index(kind)
        measured, predicted = quantities[kind]
        row["model"] = 100 * s[kind]
        row["learners"] = (tuple(100 * floor[dtype][n][i] for n in ("learned", "model+learned"))
                           if "learned" in floor[dtype] else None)
        row["repeat"] = row["on_logged"] = None
        if logged_here:
            row["repeat"] = log_repeat_pct(dtype, kind)
            h, logged_q = logged_pairs(dtype, report["_scored"])
            row["on_logged"] = (mape_pct(predicted[h], measured[h]), mape_pct(predicted[h], logged_q[kind]))
        row["twin"] = twin_pct(kind) if twin else None
        repeats = [r for r in (row["repeat"], row["twin"]) if r is not None]
        target = 100 * TARGETS[kind if kind == "speedup_mape" else "mape"]
        row["verdict"] = error_verdict(row["model"], row["learners"], repeats, row["on_logged"], target)
        rows.append(row)
    return rows


def gpu_cells(block, logs: dict, seed: int = SPLIT_SEED) -> tuple[list[dict], int, int]:
    """One GPU on split ``seed``: its missed cells (``cell_rows``) and its (met, all) target cells."""
    report = validate_block(block, seed=seed)
    floor = {r["dtype"]: r for r in floor_rows(block, seed=seed, report=report)}
    met, total = cells_met(report)
    return cell_rows(block, report, floor, logs), met, total


def format_row(r: dict) -> str:
    """One printed line (see the header in ``main``)."""
    pct = lambda v: "-" if v is None else f"{v:.1f}"  # noqa: E731
    head = f"{r['gpu']:<10} {r['dtype']:<14} {r['target']:<9}"
    if r["target"] == "crossover":
        model = f"{r['measured']}/{r['predicted']} {r['steps']} st"
        twin = "-" if r["twin_xo"] is None else f"{r['twin_xo']} {r['twin_steps']} st"
        return (f"{head} {model:>16}  margin {pct(r['margin']):>5}  speedup repeat {pct(r['repeat']):>5}  "
                f"twin xo {twin:>10}   {r['verdict']}")
    learners = "-" if r["learners"] is None else " / ".join(f"{v:.1f}" for v in r["learners"])
    on_logged = "-" if r["on_logged"] is None else " / ".join(f"{v:.1f}" for v in r["on_logged"])
    return (f"{head} {r['model']:>16.1f}  {learners:>13}  {pct(r['repeat']):>6}  {on_logged:>13}  "
            f"{pct(r['twin']):>5}   {r['verdict']}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=SPLIT_SEED, help=f"split seed (default {SPLIT_SEED}, validate's)")
    args = ap.parse_args()
    t0 = time.perf_counter()
    inputs = load_inputs()
    if inputs is None:
        return 2
    logs, blocks = inputs
    print(f"target cells not met on split {args.seed} (targets: held-out MAPE and speedup error < "
          f"{100 * TARGETS['mape']:.0f}%, crossover within {TARGETS['crossover_steps']} size step); figures in %")
    print(f"{'GPU':<10} {'dtype':<14} {'target':<9} {'model':>16}  {'learned/m+l':>13}  {'repeat':>6}  "
          f"{'model pub/log':>13}  {'twin':>5}   verdict")
    rows, met, total = [], 0, 0
    for block in blocks:
        cells, m, t = gpu_cells(block, logs, args.seed)
        met, total = met + m, total + t
        for r in cells:
            rows.append(r)
            print(format_row(r))
    counts = ", ".join(f"{sum(r['verdict'] == v for r in rows)} {v}" for v in VERDICTS)
    print(f"cells missed: {len(rows)} of {total} ({met} met); verdict: {counts}  ({time.perf_counter() - t0:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
