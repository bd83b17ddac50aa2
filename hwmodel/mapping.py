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

# Per mask (by id): {(m, transposed): per-row max group count, (m, transposed, "max"): its max,
# ("map", ...): Mapping}. A mask's entries die with it (weakref.finalize), so ids never go stale.
_mask_cache: dict[int, dict] = {}


def _entries(mask: np.ndarray) -> dict:
    key = id(mask)
    entries = _mask_cache.get(key)
    if entries is None:
        entries = _mask_cache[key] = {}
        weakref.finalize(mask, _mask_cache.pop, key, None)
    return entries


def row_max_counts(mask: np.ndarray, m: int, transposed: bool = False) -> np.ndarray:
    """Largest kept count of any group of ``m`` in each output row of ``mask`` (or of ``mask.T``)."""
    entries = _entries(mask)
    hit = entries.get((m, transposed))
    if hit is None:
        hit = group_counts(mask.T if transposed else mask, m).max(axis=1).astype(np.int32)
        entries[(m, transposed)] = hit
        entries[(m, transposed, "max")] = int(hit.max()) if hit.size else 0
    return hit


def mask_nnz(mask: np.ndarray) -> int:
    """Kept weights of ``mask`` (memoised per mask)."""
    entries = _entries(mask)
    if "nnz" not in entries:
        entries["nnz"] = int(np.count_nonzero(mask))
    return entries["nnz"]


def _max_count(mask: np.ndarray, m: int, transposed: bool) -> int:
    entries = _entries(mask)
    key = (m, transposed, "max")
    if key not in entries:
        row_max_counts(mask, m, transposed)
    return entries[key]


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
    return _max_count(mask, p.m, transposed) <= p.n


def map_weights(design: Design, mask: Optional[np.ndarray], pattern: Pattern | str,
                transposed: bool = False) -> Mapping:
    """Choose what the hardware runs for a weight ``mask`` [out, in] of workload ``pattern``.

    ``transposed`` maps W^T (the backward-data GEMM): the mask's columns become the rows.
    Fixed designs take the sparsest supported pattern every group of the real mask fits,
    else dense. Flexible designs pick N per row. Layer-wise designs (SCALE-Sim style) run the
    layer's own N:M, tightened to the largest group count the mask really has.
    """
    if mask is None:
        return _DENSE_LAYER
    key = ("map", design.sparsity, str(pattern), transposed)
    entries = _entries(mask)
    hit = entries.get(key)
    if hit is None:
        hit = entries[key] = _map(design, mask, parse_pattern(pattern), transposed)
    return hit


_DENSE_LAYER = Mapping(DENSE, None, "dense layer")


def _map(design: Design, mask: np.ndarray, p: Pattern, transposed: bool) -> Mapping:
    sp = design.sparsity
    what = "W^T" if transposed else "mask"
    if p.kind == "dense":
        return _DENSE_LAYER
    if sp.support == "none":
        return Mapping(DENSE, None, "hardware has no sparsity support: run dense")
    if sp.support == "layerwise":
        if not p.is_nm:
            return Mapping(DENSE, None, f"{p} layer: layer-wise N:M hardware runs it dense")
        if p.m > sp.max_m:
            return Mapping(DENSE, None, f"{p}: M above the hardware's max_m={sp.max_m}: run dense")
        n = _max_count(mask, p.m, transposed)
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
