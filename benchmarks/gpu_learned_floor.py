"""What a learned interpolator reaches on the GPU model's held-out split: a floor for the targets.

``nmlab gpu validate`` fits the analytic model on one third of each GPU's shapes and scores it
on the other two thirds. This script asks the same question of learners that know nothing
about GPUs, on the same calibration rows: per (GPU, dtype), scipy's ``RBFInterpolator`` over
(log2 m, log2 k, log2 n), predicting

* ``learned``: log time directly (dense, 2:4), and log speedup directly;
* ``model+learned``: the analytic model times a learned correction (an interpolation of its
  log residuals on the calibration rows), a grey-box model with one free value per
  calibration shape.

Each learner's kernel (thin-plate spline, cubic, linear) and smoothing (0.01-10) are chosen
per (GPU, dtype, quantity) by their error on the held-out rows themselves, so the learned
figures are optimistic: no held-out choice was available to the analytic model. Its speedup
is the better of the ratio of its two time predictions and its direct speedup prediction.

Dtypes with fewer than 8 calibration shapes (B200 fp4: 3) are left to the model. If the
learners' held-out errors stay above a target where the model's do, the misses are scatter
between neighbouring shapes that one third of the shapes cannot pin down, not a smooth trend
the model leaves out.

    PYTHONPATH=$PWD python benchmarks/gpu_learned_floor.py
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from pathlib import Path
from typing import Optional

import numpy as np
from scipy.interpolate import RBFInterpolator

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gpu_common import mape  # noqa: E402  (benchmarks/gpu_common.py)

from hwmodel.gpu.measurements import bundled_files  # noqa: E402
from hwmodel.gpu.validate import SPLIT_SEED, TARGETS, load_blocks, validate_block  # noqa: E402

KERNELS = ("thin_plate_spline", "cubic", "linear")
SMOOTHING = (0.01, 0.1, 1.0, 10.0)
MIN_CALIBRATION = 8


def best_interpolation(x_fit: np.ndarray, y_fit: np.ndarray, x_test: np.ndarray,
                       score) -> tuple[float, np.ndarray]:
    """Lowest ``score(prediction)`` over the kernels and smoothings, with its prediction."""
    best = (np.inf, None)
    for kernel, smoothing in itertools.product(KERNELS, SMOOTHING):
        f = RBFInterpolator(x_fit, y_fit, kernel=kernel, smoothing=smoothing, degree=1)
        pred = f(x_test)
        s = score(pred)
        if s < best[0]:
            best = (s, pred)
    return best


def floor_rows(block, seed: int = SPLIT_SEED, report: Optional[dict] = None) -> list[dict]:
    """Per dtype: the model's held-out errors and the learners' best (split ``seed``);
    ``report`` is ``validate_block(block, seed=seed)`` where the caller already has it."""
    meas = block.meas
    if report is None:
        report = validate_block(block, seed=seed)
    model_dense, model_sparse = report["_pred"]
    calib = ~report["_scored"]  # validate_block's own split (its held-out rows are the scored ones)
    x = np.log2(np.stack([meas.m, meas.k, meas.n], axis=1).astype(float))
    rows = []
    for dtype in sorted(set(meas.dtype.tolist())):
        fit_rows = calib & (meas.dtype == dtype)
        test = ~calib & (meas.dtype == dtype)
        s = report["dtypes"][dtype]
        row = {"gpu": block.spec.name, "dtype": dtype, "rows": int(test.sum()),
               "model": (s["mape_dense"], s["mape_sparse"], s["speedup_mape"])}
        if fit_rows.sum() < MIN_CALIBRATION:
            rows.append(row)
            continue
        md, ms = meas.dense_us[test], meas.sparse_us[test]
        msp = md / ms
        for name, grey in (("learned", False), ("model+learned", True)):
            base_d = np.log(model_dense) if grey else np.zeros(len(meas))
            base_s = np.log(model_sparse) if grey else np.zeros(len(meas))
            out = []
            preds = []
            for times, base in ((meas.dense_us, base_d), (meas.sparse_us, base_s)):
                y = np.log(times[fit_rows]) - base[fit_rows]
                err, p = best_interpolation(x[fit_rows], y, x[test],
                                            lambda p, b=base, t=times: mape(np.exp(p + b[test]), t[test]))
                out.append(err)
                preds.append(np.exp(p + base[test]))
            ratio_err = mape(preds[0] / preds[1], msp)
            base_sp = base_d - base_s
            y = np.log(meas.dense_us[fit_rows] / meas.sparse_us[fit_rows]) - base_sp[fit_rows]
            direct_err, _ = best_interpolation(x[fit_rows], y, x[test],
                                               lambda p: mape(np.exp(p + base_sp[test]), msp))
            out.append(min(ratio_err, direct_err))
            row[name] = tuple(out)
        rows.append(row)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("gpus", nargs="*", help="bundled GPU names (default: all)")
    args = ap.parse_args()
    t0 = time.perf_counter()
    target = TARGETS["mape"]
    print("held-out MAPE dense / 2:4 / speedup error, %; * = not under the target "
          f"({100 * target:.0f}%); learners' knobs chosen on the held-out rows (optimistic)")
    print(f"{'GPU':10s} {'dtype':14s} {'rows':>4s}  {'analytic model':>20s}  {'learned':>20s}  {'model+learned':>20s}")

    def fmt(v) -> str:
        if v is None:
            return f"{'-':>20s}"
        return " ".join(f"{100 * e:5.1f}{'*' if e >= target else ' '}" for e in v).rjust(20)

    for block in load_blocks(bundled_files()):
        if args.gpus and block.spec.name not in args.gpus:
            continue
        for r in floor_rows(block):
            print(f"{r['gpu']:10s} {r['dtype']:14s} {r['rows']:4d}  {fmt(r['model'])}  "
                  f"{fmt(r.get('learned'))}  {fmt(r.get('model+learned'))}")
    print(f"({time.perf_counter() - t0:.1f} s)")


if __name__ == "__main__":
    main()
