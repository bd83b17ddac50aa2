"""Which pattern the hardware runs a real mask at (``hw_pattern``), and why (``mapping_note``).

A mask is analysed once per (mask, group size M, orientation): the largest number of kept
weights in any group of M, per output row. Everything else is arithmetic on that vector:
the mask fits N:M iff every row's maximum is <= N; a flexible (per-row N) design runs each
row at the smallest allowed N covering that row.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import Optional

import numpy as np

from hwmodel.design import Design
from hwmodel.sparsity import DENSE, Pattern, group_counts, parse_pattern

# (id(mask), m, transposed) -> per-row max group count. Entries die with their mask.
_row_max_cache: dict[tuple[int, int, bool], np.ndarray] = {}


def _evict(mask_id: int) -> None:
    for key in [k for k in _row_max_cache if k[0] == mask_id]:
        del _row_max_cache[key]


def row_max_counts(mask: np.ndarray, m: int, transposed: bool = False) -> np.ndarray:
    """Largest kept count of any group of ``m`` in each output row of ``mask`` (or of ``mask.T``)."""
    key = (id(mask), m, transposed)
    hit = _row_max_cache.get(key)
    if hit is None:
        if not any(k[0] == id(mask) for k in _row_max_cache):
            weakref.finalize(mask, _evict, id(mask))
        hit = group_counts(mask.T if transposed else mask, m).max(axis=1).astype(np.int32)
        _row_max_cache[key] = hit
    return hit


@dataclass(frozen=True)
class Mapping:
    """How one weight matrix runs on the hardware.

    hw_pattern: the layer-wide pattern (dense, or the N:M the array is configured for; for a
        flexible design, the largest per-row N).
    row_n: flexible designs only: the N each output row runs at (None otherwise).
    kept_slots: weight slots the array holds = sum over rows of N_row * ceil(K / M) (K * rows if dense).
    note: why, in words.
    """

    hw_pattern: Pattern
    row_n: Optional[np.ndarray]
    note: str

    @property
    def sparse(self) -> bool:
        return self.hw_pattern.is_nm


def _fits(mask: np.ndarray, p: Pattern, transposed: bool) -> bool:
    return int(row_max_counts(mask, p.m, transposed).max()) <= p.n


def map_weights(design: Design, mask: Optional[np.ndarray], pattern: Pattern | str,
                transposed: bool = False) -> Mapping:
    """Choose what the hardware runs for a weight ``mask`` [out, in] of workload ``pattern``.

    ``transposed`` maps W^T (the backward-data GEMM): the mask's columns become the rows.
    Fixed designs take the sparsest supported pattern every group of the real mask fits,
    else dense. Flexible designs pick N per row. Layer-wise designs (SCALE-Sim style) run the
    layer's own N:M, tightened to the largest group count the mask really has.
    """
    p = parse_pattern(pattern)
    sp = design.sparsity
    what = "W^T" if transposed else "mask"
    if mask is None or p.kind == "dense":
        return Mapping(DENSE, None, "dense layer")
    if sp.support == "none":
        return Mapping(DENSE, None, "hardware has no sparsity support: run dense")
    if sp.support == "layerwise":
        if not p.is_nm:
            return Mapping(DENSE, None, f"{p} layer: layer-wise N:M hardware runs it dense")
        if p.m > sp.max_m:
            return Mapping(DENSE, None, f"{p}: M above the hardware's max_m={sp.max_m}: run dense")
        n = int(row_max_counts(mask, p.m, transposed).max())
        if n >= p.m:
            return Mapping(DENSE, None, f"{what} has a full group of {p.m}: run dense")
        q = Pattern("nm", max(n, 1), p.m)
        return Mapping(q, None, f"layer-wise {q}" + ("" if q == p or transposed else f" (mask is tighter than {p})")
                       + (" along W^T" if transposed else ""))
    if sp.support == "fixed":
        for q in sp.candidates():
            if _fits(mask, q, transposed):
                how = "native" if q == p and not transposed else f"every group of {q.m} of the {what} holds <= {q.n}"
                return Mapping(q, None, f"{p} -> {q} ({how})")
        names = ", ".join(str(q) for q in sp.candidates())
        return Mapping(DENSE, None, f"{what} does not fit any of {names}: run dense")
    # flexible: per-row N
    row_max = row_max_counts(mask, sp.m, transposed)
    allowed = np.asarray(sp.n_values + ((sp.m,) if sp.m not in sp.n_values else ()), dtype=np.int32)
    row_n = allowed[np.searchsorted(allowed, row_max, side="left")]
    top = int(row_n.max())
    if top >= sp.m:
        dense_rows = int((row_n >= sp.m).sum())
        if dense_rows == len(row_n):
            return Mapping(DENSE, None, f"every row of the {what} has a full group of {sp.m}: run dense")
    hw = Pattern("nm", top, sp.m) if top < sp.m else DENSE
    mean = float(row_n.mean())
    return Mapping(hw if hw.is_nm else Pattern("nm", sp.m, sp.m), row_n,
                   f"per-row N of {sp.m} on the {what}: max {top}, mean {mean:.2f}")
