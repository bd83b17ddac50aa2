"""How often the published small GEMM times sit on a multiple of one period (docs/gpu_record.md,
"B200 times are quantized").

Per bundled published file: the dense and 2:4 times below ``--below`` us (pooled), the share
within a tenth of a period of a whole multiple of it (``--tolerance``; times spread evenly give
twice the tolerance, 20%), at the best period between 1 and 4 us (steps of 0.01 us) and at
``--period``.

    PYTHONPATH=$PWD python benchmarks/gpu_time_quantum.py [--period 2.06] [--below 25] [--tolerance 0.1]
"""

from __future__ import annotations

import argparse

import numpy as np

from hwmodel.gpu.measurements import bundled_files, read_measurements


def on_grid(times_us: np.ndarray, period_us: np.ndarray, tolerance: float) -> np.ndarray:
    """Share of ``times_us`` within ``tolerance`` periods of a multiple, per period (vectorized)."""
    phase = times_us[None, :] / period_us[:, None]
    return (np.abs(phase - np.round(phase)) < tolerance).mean(axis=1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--period", type=float, default=2.06, help="period to report besides the best one (us)")
    ap.add_argument("--below", type=float, default=25.0, help="only times below this (us)")
    ap.add_argument("--tolerance", type=float, default=0.1, help="distance to a multiple, in periods")
    args = ap.parse_args()
    periods = np.round(np.arange(1.0, 4.0 + 1e-9, 0.01), 2)
    for path in bundled_files():
        meas = read_measurements(path)
        t = np.concatenate([meas.dense_us, meas.sparse_us])
        t = t[t < args.below]
        shares = on_grid(t, periods, args.tolerance)
        best = int(np.argmax(shares))
        at = on_grid(t, np.array([args.period]), args.tolerance)[0]
        print(f"{sorted(set(meas.gpu.tolist()))[0]:<24} {t.size:4d} times < {args.below:g} us: best period "
              f"{periods[best]:.2f} us {100 * shares[best]:.0f}% on its multiples, at {args.period:g} us "
              f"{100 * at:.0f}% (evenly spread: {200 * args.tolerance:.0f}%)")


if __name__ == "__main__":
    main()
