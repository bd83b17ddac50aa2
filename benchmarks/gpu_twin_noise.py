"""How reproducible are the published GPU times? bf16 against fp16 on the same shapes.

On the A100, the B200 and the RTX 4090, bf16 and fp16 have the same tensor-core rate (the
spec files give one figure for both), the same operand and output bytes, and the published
data time both on the same shapes. Their two times of one shape are then as close as two runs
of one GEMM can be, kernel choice included: the spread of their ratio bounds how well any model
that treats the two alike can do, and whether what the GPU model misses is noise or something
systematic. Per GPU, for dense, 2:4 and the speedup, over every shape timed in both dtypes:

* ``|bf16/fp16 - 1|``: the mean difference of the twins;
* ``floor``: the mean error of the best shared prediction (the geometric mean of the twins),
  what a model that predicts bf16 = fp16 cannot beat on these rows;
* ``after scale``: the same once each GPU's mean bf16/fp16 ratio is taken out (what a model
  with its own efficiency per dtype, as nmlab's, cannot beat);
* ``model``: ``nmlab gpu validate``'s held-out MAPE on the same shapes (both dtypes, split 13).

Then each dtype's measured square crossover, since a model that treats the twins alike predicts
one crossover for both.

    PYTHONPATH=$PWD python benchmarks/gpu_twin_noise.py
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gpu_common import mape_pct  # noqa: E402  (benchmarks/gpu_common.py)

from hwmodel.gpu.measurements import bundled_files  # noqa: E402
from hwmodel.gpu.validate import load_blocks, validate_block  # noqa: E402

TWINS = ("bfloat16", "float16")


def twin_rows(meas) -> tuple[np.ndarray, np.ndarray]:
    """Row indices (bf16, fp16) of the shapes timed in both dtypes, paired."""
    keys = meas.shape_keys()
    index = {dt: {s: i for i, s in enumerate(keys) if meas.dtype[i] == dt} for dt in TWINS}
    shapes = sorted(set(index[TWINS[0]]) & set(index[TWINS[1]]))
    return (np.array([index[TWINS[0]][s] for s in shapes], dtype=int),
            np.array([index[TWINS[1]][s] for s in shapes], dtype=int))


def spread(log_ratio: np.ndarray) -> tuple[float, float, float]:
    """(mean |ratio - 1|, shared-prediction floor, floor once the mean log ratio is removed)."""
    centred = log_ratio - log_ratio.mean()
    return (float(np.mean(np.abs(np.expm1(log_ratio)))), float(np.mean(np.expm1(np.abs(log_ratio) / 2))),
            float(np.mean(np.expm1(np.abs(centred) / 2))))


def main() -> None:
    print(__doc__.splitlines()[0])
    print(f"{'GPU':<10} {'kind':<8} {'shapes':>6}  {'|bf16/fp16-1|':>13} {'floor':>6} {'after scale':>11} {'model':>6}")
    for block in load_blocks(bundled_files()):
        meas = block.meas
        b, f = twin_rows(meas)
        if not b.size:
            continue
        report = validate_block(block)
        dense, sparse = report["_pred"]
        held = report["_scored"]
        kinds = {"dense": (meas.dense_us, dense), "2:4": (meas.sparse_us, sparse),
                 "speedup": (meas.speedup, dense / sparse)}
        for kind, (measured, predicted) in kinds.items():
            diff, floor, after = spread(np.log(measured[b] / measured[f]))
            rows = np.concatenate([b[held[b]], f[held[f]]])
            model = mape_pct(predicted[rows], measured[rows])
            print(f"{block.spec.name:<10} {kind:<8} {b.size:>6}  {100 * diff:>12.1f}% {100 * floor:>5.1f}% "
                  f"{100 * after:>10.1f}% {model:>5.1f}%")
        cross = report["crossover_measured"]  # over each dtype's square GEMMs
        print(f"{'':<10} square crossover measured: {TWINS[0]} {cross[TWINS[0]]}, {TWINS[1]} {cross[TWINS[1]]}")


if __name__ == "__main__":
    main()
