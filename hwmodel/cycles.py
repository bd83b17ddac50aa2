"""Stall-free compute schedule of GEMMs (M = batch rows, K = reduction, N = outputs), as numpy columns.

Equations (docs/hwmodel.md has the derivation):

* systolic ``ws``, array R x C: weights of a K' x N matrix are cut into R x C tiles (folds);
  each fold loads its weights (R cycles), streams the M input rows through with skew and
  drains: ``2R + C + M - 2`` cycles. Total ``ceil(K'/R) * ceil(N/C) * (2R + C + M - 2)``,
  exactly SCALE-Sim v3's count (it reports one less).
* systolic ``os``: outputs are cut into R x C tiles over (M, N); each streams the reduction:
  ``ceil(M/R) * ceil(N/C) * (2R + C + K' - 2)``.
* ``tensor_core``, U units of width W: a fold covers tn = min(U, N) outputs of tm = U // tn
  batch rows; it takes ``ceil(K'/W)`` cycles per pass, pipelined; plus one pipeline fill.

K' is the reduction the array actually walks: K dense, ``n * floor(K/m) + min(K mod m, n)``
for n:m (= n * ceil(K/m) when m divides K), for a flexible design that with the largest
per-row N inside each fold of output rows, and for an unstructured design the kept count of
the busiest row inside each fold (load imbalance: the other rows idle on padding).
A datatype rate r (MACs per PE per cycle) > 1 packs r products along K into a PE (R*r rows,
or W*r width); r < 1 stretches the streaming part by 1/r.

Every function takes numpy arrays (any broadcastable shapes: one design, many GEMMs and
points at once). The per-fold part is split in two: :func:`fold_sums` reduces a GEMM's
folds to the few sums the schedule needs (closed forms when every fold walks the same K',
a :class:`FoldTable` of per-fold K' otherwise), :func:`schedule_columns` turns them into
cycles. :func:`schedule` and :func:`compute_cycles` are the same code on one GEMM.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np

from hwmodel.design import Design
from hwmodel.sparsity import Pattern, parse_pattern


@dataclass(frozen=True)
class Schedule:
    """The stall-free schedule of one GEMM.

    compute_cycles: cycles with every operand on time (what SCALE-Sim calls compute cycles).
    weight_folds: weight tiles loaded into the array (each needs its weights and metadata).
    k_passes: passes over the reduction per output element (partial sums spilled between).
    weight_slots: weight positions the array walks = sum over outputs of K' (padding included).
    weight_reloads: how many times the whole weight matrix is fetched from SRAM.
    input_reloads: how many times the whole input matrix is fetched from SRAM.
    fill_window_cycles: per weight fold, cycles in which weights (and metadata) are loaded
        without stalling (WS: R); 0 when weights stream with the computation.
    """

    compute_cycles: int
    weight_folds: int
    k_passes: float
    weight_slots: int
    weight_reloads: int
    input_reloads: int
    fill_window_cycles: int


@dataclass(frozen=True)
class Rate:
    """How a datatype's MACs per PE per cycle ``r`` acts: ``pack`` products along K per PE (r >= 1),
    or the streaming part ``slow``-ed down by 1/r (r < 1)."""

    pack: float
    slow: float

    @staticmethod
    def of(rate) -> "Rate":
        """From a rate or an array of rates (one per point)."""
        r = np.asarray(rate, dtype=np.float64)
        return Rate(np.where(r >= 1, r, 1.0), np.where(r < 1, 1.0 / r, 1.0))


def datatype_rate(design: Design, bits: Optional[int]) -> float:
    """MACs per PE per cycle of the datatype a run at ``bits`` uses (None: the first datatype)."""
    dts = design.compute.datatypes
    return dts[design.datatype_for(bits)] if bits is not None else next(iter(dts.values()))


def k_compressed(k, n, m):
    """Reduction length of K under n:m: n per full group of m, min(K mod m, n) in a partial last group.

    A partial group of r < m real weights keeps at most min(r, n) of them (padding is never
    kept), so it needs only that many slots; SCALE-Sim v3 counts the same way. Works on ints
    and on integer arrays.
    """
    if isinstance(k, (int, np.integer)) and isinstance(n, (int, np.integer)) and isinstance(m, (int, np.integer)):
        return n * (k // m) + min(k % m, n)
    return n * (k // m) + np.minimum(k % m, n)


def fold_width(design: Design, n):
    """Output rows (of N) one fold covers: the array's columns (systolic) or min(units, N) (tensor core)."""
    c = design.compute
    if c.kind == "systolic":
        return c.cols
    return min(c.rows, n) if isinstance(n, (int, np.integer)) else np.minimum(c.rows, n)


def _ceil_div(a, b):
    return -(-a // b)


def _lanes(pes: int, pack) -> np.ndarray:
    """PEs along K once ``pack`` products share a PE: int(pes * pack), as an int64 array."""
    return np.floor(pes * np.asarray(pack)).astype(np.int64)


@dataclass(frozen=True)
class FoldTable:
    """Per-fold K' of GEMMs whose folds walk different K' (flexible and unstructured mappings).

    gemm: index of the GEMM (in the caller's list) each fold belongs to.
    k: K' the fold walks. outputs: output rows the fold covers. n_gemms: length of that list.
    """

    gemm: np.ndarray
    k: np.ndarray
    outputs: np.ndarray
    n_gemms: int


def ragged_folds(k: int, n: int, width: int, p: Pattern, row_n: Optional[np.ndarray],
                 row_k: Optional[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """K' and output count of each fold of ``width`` output rows (flexible ``row_n``, unstructured ``row_k``)."""
    starts = np.arange(0, n, width)
    outputs = np.minimum(width, n - starts).astype(np.int64)
    if row_k is not None:
        # Unstructured: each row is packed to its kept count; the busiest row of a fold sets its K'.
        return np.maximum.reduceat(np.asarray(row_k, dtype=np.int64), starts), outputs
    per_fold = np.maximum.reduceat(np.asarray(row_n, dtype=np.int64), starts)
    return k_compressed(k, per_fold, p.m).astype(np.int64), outputs


@dataclass(frozen=True)
class FoldSums:
    """What the schedule needs from a GEMM's folds, one entry per GEMM (arrays).

    n_folds: folds of outputs. slots: sum over outputs of K' (weight positions walked).
    kf: WS: sum over folds of ceil(K'/(R*pack)) (weight tiles). kf_outputs: the same weighted
    by the fold's outputs. steps_os: OS: sum over folds of ceil(K'/pack*slow). steps_tc: tensor
    core: sum over folds of ceil(K'/(W*pack)).
    """

    n_folds: np.ndarray
    slots: np.ndarray
    kf: np.ndarray
    kf_outputs: np.ndarray
    steps_os: np.ndarray
    steps_tc: np.ndarray


def fold_sums(design: Design, kk, nn, rate: Rate) -> FoldSums:
    """Fold sums of GEMMs whose every fold walks the same ``kk`` (= K') over ``nn`` outputs (closed forms)."""
    c = design.compute
    kk = np.asarray(kk, dtype=np.int64)
    nn = np.asarray(nn, dtype=np.int64)
    n_folds = _ceil_div(nn, fold_width(design, nn))
    kf = _ceil_div(kk, _lanes(c.rows, rate.pack))
    steps_os = np.ceil(kk / rate.pack * rate.slow).astype(np.int64)
    steps_tc = _ceil_div(kk, _lanes(c.cols, rate.pack))
    return FoldSums(n_folds, kk * nn, kf * n_folds, kf * nn, steps_os * n_folds, steps_tc * n_folds)


def ragged_fold_sums(design: Design, table: FoldTable, rate: Rate) -> FoldSums:
    """Fold sums of the GEMMs of ``table``, fold by fold (GEMMs without folds get zeros)."""
    c = design.compute
    k, w, g, size = table.k, table.outputs, table.gemm, table.n_gemms
    kf = _ceil_div(k, _lanes(c.rows, rate.pack))
    steps_os = np.ceil(k / rate.pack * rate.slow).astype(np.int64)
    steps_tc = _ceil_div(k, _lanes(c.cols, rate.pack))

    def total(x):
        # Integer sums: bincount's float64 sums are exact below 2**53.
        return np.bincount(g, weights=x, minlength=size).astype(np.int64)

    return FoldSums(np.bincount(g, minlength=size).astype(np.int64), total(k * w), total(kf), total(kf * w),
                    total(steps_os), total(steps_tc))


@dataclass(frozen=True)
class ScheduleColumns:
    """:class:`Schedule` of many GEMMs: each field an array (int64, ``k_passes`` float64)."""

    compute_cycles: np.ndarray
    weight_folds: np.ndarray
    k_passes: np.ndarray
    weight_slots: np.ndarray
    weight_reloads: np.ndarray
    input_reloads: np.ndarray
    fill_window_cycles: np.ndarray


def schedule_columns(design: Design, m, nn, sums: FoldSums, rate: Rate) -> ScheduleColumns:
    """Schedules of GEMMs with ``m`` streamed rows and ``nn`` outputs whose folds reduce to ``sums``."""
    c = design.compute
    R, C = c.rows, c.cols
    m = np.asarray(m, dtype=np.int64)
    nn = np.asarray(nn, dtype=np.int64)
    one = np.ones(np.broadcast(m, nn, sums.slots).shape, dtype=np.int64)
    if c.kind == "systolic":
        if c.dataflow == "ws":
            per_fold = 2 * R + C + np.ceil(m * rate.slow).astype(np.int64) - 2
            return ScheduleColumns(sums.kf * per_fold, sums.kf * one, sums.kf_outputs / nn, sums.slots * one,
                                   one, sums.n_folds * one, R * one)
        m_folds = _ceil_div(m, R)
        per_m = sums.n_folds * (2 * R + C - 2) + sums.steps_os
        return ScheduleColumns(m_folds * per_m, m_folds * sums.n_folds, 1.0 * one, sums.slots * one, m_folds * one,
                               sums.n_folds * one, 0 * one)
    # tensor_core
    tm = np.maximum(1, R // fold_width(design, nn))
    passes = _ceil_div(m, tm)
    total = np.ceil(passes * sums.steps_tc * rate.slow).astype(np.int64) + c.pipeline_depth
    return ScheduleColumns(total, passes * sums.n_folds, 1.0 * one, sums.slots * one,
                           _ceil_div(m, np.minimum(m, c.tile_m)) * one, sums.n_folds * one, 0 * one)


def schedule(design: Design, m: int, k: int, n: int, pattern: Pattern | str = "dense",
             bits: Optional[int] = None, row_n: Optional[np.ndarray] = None,
             row_k: Optional[np.ndarray] = None) -> Schedule:
    """Schedule one GEMM the hardware runs at layer-wise ``pattern`` (per-row ``row_n`` on flexible designs).

    Args:
        m: batch rows streamed (M). k: reduction (in_features). n: outputs (out_features).
        pattern: what the array is configured for ("dense" or "n:m"); no support check here.
        bits: weight bitwidth picking the MAC datatype and its rate (None: the first datatype).
        row_n: per-output-row N (length n), for flexible designs; overrides pattern.n per fold.
        row_k: per-output-row packed reduction length (length n; the row's kept weights), for
            unstructured designs; each fold walks its largest entry. Overrides pattern and row_n.
    """
    p = pattern if isinstance(pattern, Pattern) else parse_pattern(pattern)
    rate = Rate.of(datatype_rate(design, bits))
    if row_n is None and row_k is None:
        sums = fold_sums(design, k_compressed(k, p.n, p.m) if p.is_nm else k, n, rate)
    else:
        fk, outs = ragged_folds(k, n, fold_width(design, n), p, row_n, row_k)
        sums = ragged_fold_sums(design, FoldTable(np.zeros(len(fk), dtype=np.int64), fk, outs, 1), rate)
    s = schedule_columns(design, m, n, sums, rate)
    return Schedule(int(s.compute_cycles.flat[0]), int(s.weight_folds.flat[0]), float(s.k_passes.flat[0]),
                    int(s.weight_slots.flat[0]), int(s.weight_reloads.flat[0]), int(s.input_reloads.flat[0]),
                    int(s.fill_window_cycles.flat[0]))


def compute_cycles(design: Design, m: int, k: int, n: int, pattern: Pattern | str = "dense",
                   bits: Optional[int] = None, row_n: Optional[Sequence[int]] = None,
                   row_k: Optional[Sequence[int]] = None) -> int:
    """Stall-free compute cycles of GEMM (m, k, n) run at ``pattern`` (see :func:`schedule`).

    For a systolic WS design this equals SCALE-Sim v3's compute cycles plus one:
    ``ceil(K'/R) * ceil(N/C) * (2R + C + M - 2)``, K' = K dense or k_compressed(K, n, m) for n:m.
    """
    rn = None if row_n is None else np.asarray(row_n, dtype=np.int32)
    rk = None if row_k is None else np.asarray(row_k, dtype=np.int64)
    return schedule(design, m, k, n, pattern, bits, rn, rk).compute_cycles


__all__ = ["Schedule", "ScheduleColumns", "FoldSums", "FoldTable", "Rate", "schedule", "schedule_columns",
           "compute_cycles", "fold_sums", "ragged_fold_sums", "ragged_folds", "k_compressed", "fold_width",
           "datatype_rate"]
