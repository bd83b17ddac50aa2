"""Held-out residuals of the GPU model, grouped to show where it is systematically wrong.

Runs ``nmlab gpu validate``'s held-out fit per bundled GPU (same split, same fit) and prints
the log error log(predicted / measured) of the held-out rows, mean (signed, the bias) and
mean |relative error|, grouped by dtype, dense / 2:4 / speedup and m bucket, then the
largest contributors to the per-dtype MAPE. A pattern that holds across a group (one sign,
many rows) is a candidate for physics the model lacks; scattered large errors are not.

    PYTHONPATH=$PWD python benchmarks/gpu_residuals.py [GPU ...] [--top N]
"""

from __future__ import annotations

import argparse

import numpy as np

from hwmodel.gpu.measurements import bundled_files
from hwmodel.gpu.validate import load_blocks, validate_block

BUCKETS = ("m<=256", "m512-1k", "m2k-4k", "m8k+")


def m_bucket(m: np.ndarray) -> np.ndarray:
    """Label of each row's m (rows of X) range."""
    return np.where(m <= 256, BUCKETS[0], np.where(m <= 1024, BUCKETS[1], np.where(m <= 4096, BUCKETS[2], BUCKETS[3])))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("gpus", nargs="*", help="bundled GPU names (default: all)")
    ap.add_argument("--top", type=int, default=20, help="largest (GPU, dtype, kind, m bucket) contributors to list")
    args = ap.parse_args()
    contributions = []
    for block in load_blocks(bundled_files()):
        if args.gpus and block.spec.name not in args.gpus:
            continue
        report = validate_block(block)
        dense, sparse = report["_pred"]
        held, meas = report["_scored"], block.meas
        bucket = m_bucket(meas.m)
        print(f"== {block.spec.name}: held-out rows, mean log error / mean |error| in % (rows)")
        for kind, pred, got in (("dense", dense, meas.dense_us), ("2:4", sparse, meas.sparse_us),
                                ("speedup", dense / sparse, meas.speedup)):
            log_err, rel_err = np.log(pred / got), np.abs(pred / got - 1.0)
            for dtype in sorted(set(meas.dtype.tolist())):
                of_dtype = held & (meas.dtype == dtype)
                cells = []
                for b in BUCKETS:
                    sel = of_dtype & (bucket == b)
                    if sel.any():
                        cells.append(f"{b} {100 * log_err[sel].mean():+.0f}/{100 * rel_err[sel].mean():.0f} ({sel.sum()})")
                        contributions.append((100 * rel_err[sel].sum() / of_dtype.sum(), block.spec.name, dtype, kind, b,
                                              int(sel.sum()), 100 * log_err[sel].mean()))
                print(f"  {kind:<7} {dtype:<14} " + "  ".join(cells))
    print("\nlargest contributors (points of the dtype's MAPE, GPU, dtype, kind, m bucket, rows, bias %):")
    for row in sorted(contributions, reverse=True)[:args.top]:
        print("  %5.1f  %-10s %-14s %-7s %-8s %3d  %+5.1f" % row)


if __name__ == "__main__":
    main()
