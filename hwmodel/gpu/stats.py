"""Timing statistics for the GPU bench (standard library only, tested in CI).

Samples are per-call times in microseconds. We report the median (robust to the odd
preempted call) and the 10th/90th percentiles as the spread.
"""

from __future__ import annotations

import math
from typing import Sequence


def percentile(samples: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0..100) with linear interpolation between order statistics.

    Same definition as numpy's default (``method="linear"``), so CI can cross-check it.
    """
    if not samples:
        raise ValueError("percentile of no samples")
    if not 0.0 <= q <= 100.0:
        raise ValueError(f"percentile q={q} not in [0, 100]")
    xs = sorted(float(x) for x in samples)
    pos = (len(xs) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def median(samples: Sequence[float]) -> float:
    """Median of the samples (mean of the two middle ones for an even count)."""
    return percentile(samples, 50.0)


def summarize(samples_us: Sequence[float]) -> dict[str, float]:
    """``{"median_us", "p10_us", "p90_us", "reps"}`` of per-call times in microseconds."""
    return {
        "median_us": median(samples_us),
        "p10_us": percentile(samples_us, 10.0),
        "p90_us": percentile(samples_us, 90.0),
        "reps": len(samples_us),
    }


def choose_reps(estimate_us: float, target_us: float = 30_000.0, lo: int = 10, hi: int = 200) -> int:
    """Repetitions so one measurement takes about ``target_us`` of GPU time, within [lo, hi].

    Args:
        estimate_us: time of one call from a short probe (microseconds, > 0).
        target_us: wanted total measuring time per statistic.
        lo, hi: bounds on the count (enough samples for a median; a cap for slow calls).
    """
    if estimate_us <= 0 or not math.isfinite(estimate_us):
        return hi
    return int(min(hi, max(lo, round(target_us / estimate_us))))


def rotation_sets(set_bytes: int, l2_bytes: int, factor: float = 2.0, cap: int = 256) -> int:
    """How many distinct input sets to cycle through so consecutive calls miss in L2.

    ``ceil(factor * l2_bytes / set_bytes)``, at least 2 and at most ``cap``. With tiny
    layers the cap wins and the working set stays inside L2; the CSV records both the count
    and the set size so the model and the reader can tell.
    """
    if set_bytes <= 0:
        raise ValueError("set_bytes must be > 0")
    need = math.ceil(factor * l2_bytes / set_bytes)
    return int(min(cap, max(2, need)))
