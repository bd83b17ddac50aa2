"""Helpers shared by the ``benchmarks/gpu_*.py`` studies of the GPU model."""

from __future__ import annotations

import numpy as np


def mape(pred: np.ndarray, meas: np.ndarray) -> float:
    """Mean |pred / meas - 1| as a fraction, as ``hwmodel.gpu.validate`` scores it (NaN over no rows)."""
    return float(np.mean(np.abs(pred / meas - 1.0))) if pred.size else float("nan")


def mape_pct(pred: np.ndarray, meas: np.ndarray) -> float:
    """``mape`` in percent."""
    return 100 * mape(pred, meas)
