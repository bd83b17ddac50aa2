"""Helpers shared by the ``benchmarks/gpu_*.py`` studies of the GPU model."""

from __future__ import annotations

import numpy as np


def mape_pct(pred: np.ndarray, meas: np.ndarray) -> float:
    """Mean |pred / meas - 1| in percent (NaN over no rows); ``hwmodel.gpu.validate`` scores the
    same error as a fraction."""
    return float(100 * np.mean(np.abs(pred / meas - 1.0))) if pred.size else float("nan")
