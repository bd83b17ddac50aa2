"""Fitting the GPU model's parameters to measured times (scipy least_squares, numpy only).

One fit covers one or more GPUs (the per-architecture defaults and leave-one-GPU-out pool
several): the scalar parameters of :class:`~hwmodel.gpu.model.GpuParams` are shared, the
kernel efficiencies are per dtype (dense and 2:4). The block-scaled kernel's extra fixed time
is fitted only where some rows are block-scaled (:func:`fit_scalars`); otherwise it keeps the
start value (:data:`~hwmodel.gpu.kernels.BLOCK_SCALED_DEFAULT_US` for a fresh set). The
residual is log(predicted / measured) of every dense and 2:4 time, with a soft-L1 loss
(``F_SCALE``) so a few rows where the library picked an odd kernel cannot drag the rest;
parameters move in log space inside :data:`~hwmodel.gpu.model.BOUNDS`.

The power scalars (``PRIOR``: ``tensor_pj_per_flop``, ``sparse_energy``, ``heat_ms``) carry a
weak prior: one residual row each, log(value / prior) / ``PRIOR_LOG_WIDTH``, not in the fit's
``rms_log_residual``. The data pin them only where a GPU throttles in its rows, and the A100
rarely does: at split seed 13 its calibration rows left ``sparse_energy``'s Jacobian column zero
(no 2:4 row power-limited; smallest singular value 2e-16), and for a long ``heat_ms`` only the
clock's fall per unit of ``heat_ms`` shows. The trust-region step along those directions came
from rounding, and the fit landed in different minima by the BLAS kernels' last bits: cost 1.0813,
heat_ms 18.5 with OpenBLAS's Haswell kernels, 1.0650, heat_ms 4819 with its Sandybridge ones;
held-out A100 bf16 dense MAPE 4.2% against 5.0%. The prior rows keep those singular values at
1 / ``PRIOR_LOG_WIDTH`` or more: under the Haswell, Sandybridge and Prescott kernels, every fit
``nmlab gpu validate`` and ``nmlab gpu fit`` run (split seeds 2, 3, 4, 5, 13) prints the same
figures, and ``nmlab gpu fit`` writes the same file; a start value 1e-12 apart moved the A100's
seed-13 predictions by up to 7%, now by under 1e-5. At a width of 100 a factor e (2.7x) off the
prior costs 5e-5 of the fit's cost (about 1 for the timings; the soft-L1 loss covers the prior
rows too, and at a residual this far below ``F_SCALE`` it is half the square), so where the data pin a scalar it
goes where they say. The centres: ``sparse_energy`` 0.5 (a 2:4 FLOP, counting the skipped
zeros, does half the multiply-adds), 2 pJ per 16-bit FLOP (the fitted sets: 1.1-2.3) and 100 ms
(GpuParams's start; the fitted sets: 24-194 ms). A centre of 0.7 for ``sparse_energy`` (its
start value) was as reproducible but met one target cell fewer over the split seeds (225 of 300
against 226). The measured table is in docs/gpu.md (The model).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional, Sequence

import numpy as np

from hwmodel.errors import NmlabError
from hwmodel.gpu.kernels import BLOCK_SCALED
from hwmodel.gpu.measurements import Measurements
from hwmodel.gpu.model import BOUNDS, Geometry, GpuParams
from hwmodel.gpu.spec import GpuSpec

#: The scalars a fit may move (torch's eager costs are not in library timings: they stay priors);
#: :func:`fit_scalars` says which of them a given fit moves.
FIT_SCALARS = GpuParams.SCALARS
F_SCALE = 0.1
#: Relative tolerance on the cost and the step, and the iteration cap, of the fit.
FIT_TOL = 1e-5
MAX_ITER = 60
START_ETA = {"dense": 0.7, "sparse": 0.6}
#: A parameter the timings leave unset: a factor e (2.7x) in it moves the fitted log times by less than this,
#: root mean square over the timings (0.1%). :func:`fit` names such parameters (``unpinned``): they stay at
#: their start value, the prior's centre or a bound, whatever the card does.
UNPINNED_RMS = 1e-3
#: The log-space step of the sensitivity check (forward differences, backward at an upper bound).
SENSITIVITY_STEP = 1e-3
#: The weakly identified power scalars and the centres of their weak prior (module docstring).
PRIOR = {"tensor_pj_per_flop": 2.0, "sparse_energy": 0.5, "heat_ms": 100.0}
#: The prior's width in natural-log units: a residual row of log(value / centre) / this.
PRIOR_LOG_WIDTH = 100.0


@dataclass
class GpuData:
    """One GPU's measured rows with the model's parameter-free geometry built once."""

    spec: GpuSpec
    meas: Measurements
    groups: list[tuple[np.ndarray, bool, Geometry]]

    @classmethod
    def build(cls, spec: GpuSpec, meas: Measurements) -> "GpuData":
        """Group rows by (dtype, output bytes) and build a dense (of ``dense_k``) and a 2:4 geometry per group."""
        groups = []
        keys = sorted(set(zip(meas.dtype.tolist(), meas.out_bytes.tolist())))
        for dtype, ob in keys:
            idx = np.flatnonzero((meas.dtype == dtype) & (meas.out_bytes == ob))
            for sparse in (False, True):
                # The dense call may have run a smaller k than the row names (measurements.dense_k).
                k = meas.k[idx] if sparse else meas.dense_k[idx]
                groups.append((idx, sparse, Geometry(spec, meas.m[idx], k, meas.n[idx], dtype, sparse, ob)))
        return cls(spec, meas, groups)

    def predict_us(self, params: GpuParams) -> tuple[np.ndarray, np.ndarray]:
        """(dense, 2:4) predicted microseconds of every row under ``params``."""
        out = np.empty((2, len(self.meas)))
        for idx, sparse, geo in self.groups:
            out[int(sparse), idx] = geo.seconds(params, self.meas.loop_calls, self.meas.l2) * 1e6
        return out[0], out[1]

    @property
    def dtypes(self) -> list[str]:
        return sorted(set(self.meas.dtype.tolist()))


def fit_scalars(dtypes: Sequence[str]) -> tuple[str, ...]:
    """The scalars a fit on rows of ``dtypes`` moves: the block-scaled kernel's extra fixed time only
    where some rows are block-scaled (``BLOCK_SCALED``); elsewhere it keeps its start value."""
    return tuple(s for s in FIT_SCALARS
                 if s != "kernel_block_scaled_us" or any(d in BLOCK_SCALED for d in dtypes))


def _layout(scalars: Sequence[str], dtypes: Sequence[str]) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Names and log bounds of the fitted vector: ``scalars`` (:func:`fit_scalars`), then the dense
    and 2:4 efficiency of each dtype."""
    names = list(scalars) + [f"eta.{d}.{kind}" for d in dtypes for kind in ("dense", "sparse")]
    lo = np.log([BOUNDS[s][0] for s in scalars] + [BOUNDS["eta"][0]] * 2 * len(dtypes))
    hi = np.log([BOUNDS[s][1] for s in scalars] + [BOUNDS["eta"][1]] * 2 * len(dtypes))
    return names, lo, hi


def parameter_names(dtypes: Sequence[str]) -> list[str]:
    """The parameters a fit on rows of ``dtypes`` fits (:func:`fit`; it needs a row, two timings, per parameter)."""
    dtypes = sorted(set(dtypes))
    return _layout(fit_scalars(dtypes), dtypes)[0]


def _unpack(x: np.ndarray, scalars: Sequence[str], dtypes: Sequence[str], base: GpuParams) -> GpuParams:
    """``base`` with the fitted vector ``x`` (laid out as :func:`_layout`) in place."""
    v = np.exp(x)
    values = dict(zip(scalars, v[:len(scalars)].tolist()))
    e = v[len(scalars):].reshape(len(dtypes), 2)
    eta = {d: {"dense": float(e[i, 0]), "sparse": float(e[i, 1])} for i, d in enumerate(dtypes)}
    return base.with_values(**values, eta=eta)


def fit(datas: Sequence[GpuData], rows: Optional[Sequence[np.ndarray]] = None,
        start: Optional[GpuParams] = None) -> tuple[GpuParams, dict[str, Any]]:
    """Fit one parameter set to the rows ``rows[i]`` of ``datas[i]`` (all rows when None).

    Returns the parameters and fit facts (timings used, parameters fitted, rms log residual).
    """
    from scipy.optimize import least_squares

    rows = [np.arange(len(d.meas)) if rows is None else np.asarray(rows[i]) for i, d in enumerate(datas)]
    dtypes = sorted({dt for d, r in zip(datas, rows) for dt in d.meas.dtype[r].tolist()})
    scalars = fit_scalars(dtypes)
    names, lo, hi = _layout(scalars, dtypes)
    timings = 2 * sum(len(r) for r in rows)
    if timings < 2 * len(names):
        raise NmlabError(f"gpu model fit: {timings} timings for {len(names)} parameters; need at least {2 * len(names)}")
    base = start or GpuParams()
    x0 = np.log([getattr(base, s) for s in scalars]
                + [(base.eta.get(d) or START_ETA)[kind] for d in dtypes for kind in ("dense", "sparse")])
    x0 = np.clip(x0, lo + 1e-6, hi - 1e-6)
    meas = np.concatenate([np.log(np.concatenate([d.meas.dense_us[r], d.meas.sparse_us[r]]))
                           for d, r in zip(datas, rows)])
    # The weak prior's rows (module docstring), after the timings'.
    prior_at = np.array([names.index(s) for s in PRIOR])
    prior_log = np.log(list(PRIOR.values()))

    def residuals(x: np.ndarray) -> np.ndarray:
        p = _unpack(x, scalars, dtypes, base)
        parts = []
        for d, r in zip(datas, rows):
            dense, sparse = d.predict_us(p)
            parts.append(np.log(np.concatenate([dense[r], sparse[r]])))
        return np.concatenate([np.concatenate(parts) - meas, (x[prior_at] - prior_log) / PRIOR_LOG_WIDTH])

    res = least_squares(residuals, x0, bounds=(lo, hi), loss="soft_l1", f_scale=F_SCALE, ftol=FIT_TOL, xtol=FIT_TOL,
                        max_nfev=MAX_ITER * (len(names) + 1))
    timing_res = res.fun[:timings]
    params = _unpack(res.x, scalars, dtypes, base)
    # Which parameters the timings set at all: the rms change of the log times per unit of log parameter, by
    # finite differences of the timing rows alone (unweighted by the loss, without the prior's rows).
    sens = []
    for i in range(len(names)):
        step = SENSITIVITY_STEP if res.x[i] + SENSITIVITY_STEP <= hi[i] else -SENSITIVITY_STEP
        x = res.x.copy()
        x[i] += step
        sens.append(float(np.sqrt(np.mean(((residuals(x)[:timings] - timing_res) / step) ** 2))))
    return params, {"timings": int(timings), "parameters": len(names),
                    "rms_log_residual": float(np.sqrt(np.mean(timing_res ** 2))), "status": int(res.status),
                    "unpinned": [n for n, s in zip(names, sens) if s < UNPINNED_RMS]}
