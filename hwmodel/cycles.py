"""Stall-free compute schedule of one GEMM (M = batch rows, K = reduction, N = outputs) on a design.

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
"""

from __future__ import annotations

import math
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


def _rate(design: Design, bits: Optional[int]) -> float:
    dts = design.compute.datatypes
    return dts[design.datatype_for(bits)] if bits is not None else next(iter(dts.values()))


def k_compressed(k: int, n: int, m: int) -> int:
    """Reduction length of K under n:m: n per full group of m, min(K mod m, n) in a partial last group.

    A partial group of r < m real weights keeps at most min(r, n) of them (padding is never
    kept), so it needs only that many slots; SCALE-Sim v3 counts the same way.
    """
    return n * (k // m) + min(k % m, n)


def fold_width(design: Design, n: int) -> int:
    """Output rows (of N) one fold covers: the array's columns (systolic) or min(units, N) (tensor core)."""
    c = design.compute
    return c.cols if c.kind == "systolic" else min(c.rows, n)


def _fold_k(k: int, n: int, width: int, p: Pattern, row_n: Optional[np.ndarray],
            row_k: Optional[np.ndarray] = None) -> tuple[list[int], list[int]]:
    """K' and output count of each fold of ``width`` output rows (flexible and unstructured designs)."""
    folds = math.ceil(n / width)
    widths = [width] * (folds - 1) + [n - width * (folds - 1)]
    if row_k is not None:
        # Unstructured: each row is packed to its kept count; the busiest row of a fold sets its K'.
        return [int(x) for x in np.maximum.reduceat(row_k, np.arange(0, n, width))], widths
    per_fold = np.maximum.reduceat(row_n, np.arange(0, n, width))
    return [k_compressed(k, int(x), p.m) for x in per_fold], widths


def schedule(design: Design, m: int, k: int, n: int, pattern: Pattern | str = "dense",
             bits: Optional[int] = None, row_n: Optional[np.ndarray] = None,
             row_k: Optional[np.ndarray] = None) -> Schedule:
    """Schedule a GEMM the hardware runs at layer-wise ``pattern`` (per-row ``row_n`` on flexible designs).

    Args:
        m: batch rows streamed (M). k: reduction (in_features). n: outputs (out_features).
        pattern: what the array is configured for ("dense" or "n:m"); no support check here.
        bits: weight bitwidth picking the MAC datatype and its rate (None: the first datatype).
        row_n: per-output-row N (length n), for flexible designs; overrides pattern.n per fold.
        row_k: per-output-row packed reduction length (length n; the row's kept weights), for
            unstructured designs; each fold walks its largest entry. Overrides pattern and row_n.
    """
    p = pattern if isinstance(pattern, Pattern) else parse_pattern(pattern)
    c = design.compute
    rate = _rate(design, bits)
    pack = rate if rate >= 1 else 1.0
    slow = 1.0 / rate if rate < 1 else 1.0
    R, C = c.rows, c.cols
    width = fold_width(design, n)
    if row_k is not None:
        row_n = row_k  # the per-fold paths below only test it against None
    # Uniform folds (the common case) stay scalar: K' is the same for every fold of outputs.
    if row_n is None:
        kk = k_compressed(k, p.n, p.m) if p.is_nm else k
        n_folds = -(-n // width)
        slots = kk * n
    else:
        fold_k, widths = _fold_k(k, n, width, p, row_n, row_k)
        n_folds = len(fold_k)
        slots = sum(x * w for x, w in zip(fold_k, widths))
    if c.kind == "systolic":
        if c.dataflow == "ws":
            r_eff = int(R * pack)
            per_fold = 2 * R + C + math.ceil(m * slow) - 2
            if row_n is None:
                kf = -(-kk // r_eff)
                total_kf, k_passes = kf * n_folds, float(kf)
            else:
                kfs = [-(-x // r_eff) for x in fold_k]
                total_kf = sum(kfs)
                k_passes = sum(kf * w for kf, w in zip(kfs, widths)) / n
            return Schedule(total_kf * per_fold, total_kf, k_passes, slots, 1, n_folds, R)
        m_folds = -(-m // R)
        base = 2 * R + C - 2
        if row_n is None:
            per_m = n_folds * (base + math.ceil(kk / pack * slow))
        else:
            per_m = sum(base + math.ceil(x / pack * slow) for x in fold_k)
        return Schedule(m_folds * per_m, m_folds * n_folds, 1.0, slots, m_folds, n_folds, 0)
    # tensor_core
    tm = max(1, R // width)
    w_eff = int(C * pack)
    passes = -(-m // tm)
    steps = n_folds * -(-kk // w_eff) if row_n is None else sum(-(-x // w_eff) for x in fold_k)
    total = math.ceil(passes * steps * slow) + c.pipeline_depth
    return Schedule(total, passes * n_folds, 1.0, slots, -(-m // min(m, c.tile_m)), n_folds, 0)


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
