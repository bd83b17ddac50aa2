"""Which pattern the hardware runs a real mask at (``hw_pattern``), and why (``mapping_note``).

A mask is analysed once per (mask, group size M, orientation): the largest number of kept
weights in any group of M, per output row (for M = 4 and 8 each group's bytes read as one
integer, so the analysis is a multiply and a max per row). Everything else is arithmetic on that vector:
the mask fits N:M iff every row's maximum is <= N; a flexible (per-row N) design runs each
row at the smallest allowed N covering that row. An unstructured design needs the kept
count of each output row instead (also cached per mask and orientation): each fold of
outputs walks as many packed slots as its busiest row keeps (load imbalance).
"""

from __future__ import annotations

import re
import weakref
from collections import Counter
from dataclasses import dataclass
from typing import Optional

import numpy as np

from hwmodel.cycles import fold_width, k_compressed
from hwmodel.design import Design
from hwmodel.memo import BoundedMemo
from hwmodel.sparsity import DENSE, GROUP_WORDS, UNSTRUCTURED, Pattern, group_counts, group_words, parse_pattern

# Per mask (by id): (weak reference to the mask, {(m, transposed): per-row max group count,
# (m, transposed, "max"): its max, ("map", ...): Mapping}). An entry whose reference no longer
# gives back the mask is stale (the id was reused) and is replaced; dead entries are dropped
# whenever the cache has doubled since the last sweep. (A weakref.finalize per mask cost more
# than analysing a small mask.)
_mask_cache: dict[int, tuple[weakref.ref, dict]] = {}
_sweep_at = [1024]


def _entries(mask: np.ndarray) -> dict:
    key = id(mask)
    hit = _mask_cache.get(key)
    if hit is not None and hit[0]() is mask:
        return hit[1]
    if len(_mask_cache) >= _sweep_at[0]:
        for k in [k for k, (ref, _) in _mask_cache.items() if ref() is None]:
            del _mask_cache[k]
        _sweep_at[0] = max(1024, 2 * len(_mask_cache))
    entries: dict = {}
    _mask_cache[key] = (weakref.ref(mask), entries)
    # The analysis is kept per mask object: an in-place edit would leave it stale, so the mask
    # becomes read-only (an edit raises); replace the array to change a layer's mask.
    mask.flags.writeable = False
    return entries


_row_starts: BoundedMemo = BoundedMemo(256)  # (rows, groups) -> first word of each row (layer shapes repeat)


def row_max_counts(mask: np.ndarray, m: int, transposed: bool = False) -> np.ndarray:
    """Largest kept count of any group of ``m`` in each output row of ``mask`` (or of ``mask.T``)."""
    return _row_max(mask, m, transposed, _entries(mask))


def _row_max(mask: np.ndarray, m: int, transposed: bool, entries: dict) -> np.ndarray:
    hit = entries.get((m, transposed))
    if hit is None:
        words = group_words(mask.T if transposed else mask, m)
        if words is None:
            hit = group_counts(mask.T if transposed else mask, m).max(axis=1).astype(np.int32, copy=False)
        else:
            # A max per row as one reduceat over the flat words: 1.4-1.8x faster than max(axis=1)
            # on TD3 layer masks (benchmarks/bench_model_ops.py, item 4).
            starts = _row_starts.get(words.shape)
            if starts is None:
                rows, groups = words.shape
                starts = _row_starts.put(words.shape, np.arange(0, rows * groups, groups))
            hit = (np.maximum.reduceat(words.ravel(), starts) >> GROUP_WORDS[m][2]).astype(np.int32)
        entries[(m, transposed)] = hit
        entries[(m, transposed, "max")] = int(hit.max()) if hit.size else 0
    return hit


def mask_nnz(mask: np.ndarray) -> int:
    """Kept weights of ``mask`` (memoised per mask)."""
    entries = _entries(mask)
    if "nnz" not in entries:
        entries["nnz"] = int(np.count_nonzero(mask))
    return entries["nnz"]


def row_nnz(mask: np.ndarray, transposed: bool = False) -> np.ndarray:
    """Kept weights in each output row of ``mask`` [out, in] (of ``mask.T`` when transposed), memoised."""
    entries = _entries(mask)
    key = ("row_nnz", transposed)
    hit = entries.get(key)
    if hit is None:
        hit = entries[key] = np.count_nonzero(mask, axis=0 if transposed else 1).astype(np.int64)
    return hit


def index_bits(k: int) -> int:
    """Bits of one coordinate index into a reduction of ``k`` positions: ceil(log2 k), at least 1."""
    return max(1, (k - 1).bit_length())


def count_bits(k: int) -> int:
    """Bits of one per-row count of kept weights (0..k): ceil(log2(k + 1))."""
    return max(1, k.bit_length())


def unstructured_metadata_bits(index_format: str, k: int, n: int, nnz: int) -> int:
    """Index metadata of a [k x n] stationary operand (n output rows of k) keeping ``nnz`` weights.

    ``bitmask``: one bit per dense position, k * n (whatever the density).
    ``coordinate`` (CSR-like): each kept weight's position in its row, ``index_bits(k)`` bits,
    plus a kept count per output row, ``count_bits(k)`` bits (the row pointers' increments).
    """
    if index_format == "bitmask":
        return k * n
    if index_format == "coordinate":
        return nnz * index_bits(k) + n * count_bits(k)
    raise ValueError(f"unknown index format {index_format!r}")


# Group sizes of the flexible designs mapped in this process: only they ask for the per-row
# vector, so for these M it is computed with the global max (one pass instead of two), for
# other M the global max alone (half the work).
_per_row_ms: set = set()


def _max_count(mask: np.ndarray, m: int, transposed: bool, entries: Optional[dict] = None) -> int:
    """Largest kept count of any group of ``m`` (memoised)."""
    if entries is None:
        entries = _entries(mask)
    key = (m, transposed, "max")
    hit = entries.get(key)
    if hit is None:
        words = None if m in _per_row_ms else group_words(mask.T if transposed else mask, m)
        if words is None:
            _row_max(mask, m, transposed, entries)
            return entries[key]
        hit = entries[key] = int(words.max() >> GROUP_WORDS[m][2])
    return hit


@dataclass(frozen=True)
class Mapping:
    """How one weight matrix runs on the hardware.

    hw_pattern: the layer-wide pattern (dense, the N:M the array is configured for -- for a
        flexible design, the largest per-row N -- or "unstructured" on an unstructured design).
    row_n: flexible designs only: the N each output row runs at (None otherwise).
    note: why, in words.
    row_k: unstructured designs only: kept weights of each output row, the packed reduction
        length that row needs (None otherwise).
    """

    hw_pattern: Pattern
    row_n: Optional[np.ndarray]
    note: str
    row_k: Optional[np.ndarray] = None

    @property
    def sparse(self) -> bool:
        return self.hw_pattern.is_nm or self.hw_pattern.kind == "unstructured"


def _fits(mask: np.ndarray, p: Pattern, transposed: bool) -> bool:
    return _max_count(mask, p.m, transposed) <= p.n


def _shortens(k: int, n: int, m: int) -> bool:
    """True when n:m walks fewer than the K dense slots. It does not when K <= n < m (one partial
    group: e.g. K = 1, W^T of a 1-output layer, "fits" every N:M): the hardware would then pay
    indices and selection for nothing, so such a layer runs dense."""
    return k_compressed(k, n, m) < k


_design_keys: BoundedMemo = BoundedMemo(256)  # id(design) -> (design, key)
_key_ids: dict[tuple, int] = {}


def design_key(design: Design) -> int:
    """A small integer naming what a mapping depends on in ``design`` (its sparsity support and,
    for unstructured designs, the fold width), the same for equal designs; memoised per design
    object so a mask's cache lookups do not hash the design's dataclasses every time."""
    hit = _design_keys.get(id(design))
    if hit is not None and hit[0] is design:
        return hit[1]
    value: tuple = (design.sparsity,)
    if design.sparsity.support == "unstructured":
        # The fold width decides which rows share a fold (and the dense fallback).
        c = design.compute
        value += (c.kind, c.rows, c.cols)
    key = _key_ids.setdefault(value, len(_key_ids))
    _design_keys.put(id(design), (design, key))
    return key


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
    key = ("map", design_key(design), pattern if isinstance(pattern, str) else str(pattern), transposed)
    entries = _entries(mask)
    hit = entries.get(key)
    return _map_into(entries, key, design, mask, pattern, transposed) if hit is None else hit


def _map_into(entries: dict, key: tuple, design: Design, mask: np.ndarray, pattern: Pattern | str,
              transposed: bool) -> "Mapping":
    """Map ``mask`` and store the Mapping in its cache ``entries`` under ``key``
    (``("map", design_key(design), pattern text, transposed)``)."""
    plan = _plans.get(key[1:3])
    if plan is None:
        plan = _plan(design, pattern, key[1:3])
    p, ms, max_keys = plan
    if ms is None:
        hit = _map_flexible(design, mask, p, transposed, entries, key[1]) \
            if design.sparsity.support == "flexible" else _map(design, mask, p, transposed)
    else:
        # Fixed and layer-wise mappings depend on the mask only through a few max counts
        # (and K): masks with equal counts share one Mapping, built once.
        if transposed:
            stats = tuple(_max_count(mask, m, True, entries) for m in ms)
        elif len(ms) == 1:
            c = entries.get(max_keys[0])
            stats = (_max_count(mask, ms[0], False, entries) if c is None else c,)
        else:
            stats = tuple(_max_count(mask, m, False, entries) for m in ms)
        skey = key[1:] + (mask.shape[0] if transposed else mask.shape[1], stats)
        hit = _by_counts.get(skey)
        if hit is None:
            hit = _by_counts.put(skey, _map(design, mask, p, transposed))
    entries[key] = hit
    return hit


# (design key, pattern text) -> (parsed pattern, the group sizes whose largest counts decide a
# fixed or layer-wise mapping (None: the mapping needs per-row figures), their cache keys).
_plans: BoundedMemo = BoundedMemo(1024)


def _plan(design: Design, pattern: Pattern | str, key: tuple) -> tuple:
    p = parse_pattern(pattern) if isinstance(pattern, str) else pattern
    sp = design.sparsity
    if p.kind == "dense" or sp.support == "none":
        ms: Optional[tuple] = ()
    elif sp.support == "fixed":
        ms = _candidate_ms(sp)
    elif sp.support == "layerwise":
        if not p.is_nm:
            ms = _pow2_up_to(sp.max_m)
        else:
            ms = () if p.m > sp.max_m else (p.m,)
    else:
        ms = None
    return _plans.put(key, (p, ms, tuple((m, False, "max") for m in ms or ())))


_by_counts: BoundedMemo = BoundedMemo(4096)


def _candidate_ms(sp) -> tuple[int, ...]:
    """Group sizes of a fixed design's patterns, ascending; memoised on the frozen Sparsity."""
    hit = sp.__dict__.get("_candidate_ms")
    if hit is None:
        hit = tuple(sorted({q.m for q in sp.candidates()}))
        object.__setattr__(sp, "_candidate_ms", hit)
    return hit


_DENSE_LAYER = Mapping(DENSE, None, "dense layer")
#: Every weight-gradient GEMM's mapping, accelerator or GPU: its stationary operand is the activations, never
#: the masked weights (``hwmodel.program.GemmEntry.sparse_weights``).
DENSE_WEIGHT_GRAD = Mapping(DENSE, None, "weight gradient: dense")


def _map(design: Design, mask: np.ndarray, p: Pattern, transposed: bool) -> Mapping:
    sp = design.sparsity
    what = "W^T" if transposed else "mask"
    k = mask.shape[0] if transposed else mask.shape[1]  # the reduction the pattern would shorten
    if p.kind == "dense":
        return _DENSE_LAYER
    if sp.support == "none":
        return Mapping(DENSE, None, "hardware has no sparsity support: run dense (zeros stored and multiplied)")
    if sp.support == "unstructured":
        return _map_unstructured(design, mask, p, transposed)
    if sp.support == "layerwise":
        if not p.is_nm:
            q = nearest_nm(mask, _pow2_up_to(sp.max_m), transposed)
            if q is None:
                return Mapping(DENSE, None, f"{p} {what}: no N:M with M <= max_m={sp.max_m} fits and shortens "
                                            f"K={k}: run dense (zeros stored and multiplied)")
            return Mapping(q, None, f"{p} -> {q} (nearest N:M with M <= {sp.max_m}: every group of {q.m} "
                                    f"of the {what} holds <= {q.n})")
        if p.m > sp.max_m:
            return Mapping(DENSE, None, f"{p}: M above the hardware's max_m={sp.max_m}: run dense")
        n = _max_count(mask, p.m, transposed)
        if n >= p.m:
            return Mapping(DENSE, None, f"{what} has a full group of {p.m}: run dense")
        q = Pattern("nm", max(n, 1), p.m)
        if not _shortens(k, q.n, q.m):
            return Mapping(DENSE, None, f"{what}: {q} walks all K={k} slots: run dense")
        return Mapping(q, None, f"layer-wise {q}" + ("" if q == p or transposed else f" (mask is tighter than {p})")
                       + (" along W^T" if transposed else ""))
    if sp.support == "fixed":
        for q in sp.candidates():
            if _fits(mask, q, transposed) and _shortens(k, q.n, q.m):
                how = "native" if q == p and not transposed else f"every group of {q.m} of the {what} holds <= {q.n}"
                return Mapping(q, None, f"{p} -> {q} ({how})")
        # Two different reasons, said apart: the pattern fits but K is too short to skip a slot,
        # or no supported pattern fits (W^T of a row-wise N:M mask is rarely N:M along its rows).
        fitting = [q for q in sp.candidates() if _fits(mask, q, transposed)]
        if fitting:
            return Mapping(DENSE, None, f"{what}: K={k} is too short for {fitting[0]} to skip a slot: "
                                        "run dense (zeros stored and multiplied)")
        names = " or ".join(str(q) for q in sp.candidates())
        fullest = ", ".join(sorted({f"its fullest group of {m} keeps {_max_count(mask, m, transposed)}"
                                    for m in _candidate_ms(sp)}))
        return Mapping(DENSE, None, f"{what} is not {names} ({fullest}): run dense (zeros stored and multiplied)")
    return _map_flexible(design, mask, p, transposed, _entries(mask), design_key(design))


def _map_flexible(design: Design, mask: np.ndarray, p: Pattern, transposed: bool, entries: dict,
                  dkey: int) -> Mapping:
    """A flexible design: per-row N, the smallest allowed N covering the row's fullest group.
    The row figures come from a histogram of the rows' largest counts (0..M): the smallest,
    largest and summed row N are read off it instead of reducing the row vector three times.
    When every row runs at the same N (most real N:M masks) the Mapping depends on the shape
    and that N only, and masks of equal ones share it (``dkey``: ``design_key(design)``)."""
    sp = design.sparsity
    if p.kind == "dense":
        return _DENSE_LAYER
    what = "W^T" if transposed else "mask"
    k = mask.shape[0] if transposed else mask.shape[1]
    _per_row_ms.add(sp.m)
    row_max = _row_max(mask, sp.m, transposed, entries)
    lut = _allowed_n(sp)  # row N by the row's largest count
    lut_l = sp.__dict__["_allowed_n_list"]
    # Counts run 0..min(M, K): no minlength M + 1, which made every mask cost O(M) (M may be 2^20).
    counts = [(c, rows) for c, rows in enumerate(np.bincount(row_max).tolist()) if rows]  # (largest count, rows)
    if not counts:  # no rows
        return Mapping(DENSE, None, f"every row of the {what} has a full group of {sp.m}: run dense")
    row_hist = tuple((lut_l[c], rows) for c, rows in counts)  # (row N, rows), ascending
    low, top = row_hist[0][0], row_hist[-1][0]
    if low >= sp.m:
        fullest = counts[0][0]  # the least full row's fullest group
        if fullest >= sp.m:
            return Mapping(DENSE, None, f"every row of the {what} has a full group of {sp.m}: run dense")
        below = ", ".join(str(n) for n in sp.n_values if n < sp.m)
        return Mapping(DENSE, None, f"every row of the {what} has a group holding {fullest} or more of {sp.m}, more "
                                    f"than any N below {sp.m} the design offers ({below}): run dense")
    if low >= min(k, sp.m):  # K <= every row's N: no row walks fewer than K slots
        return Mapping(DENSE, None, f"per-row N of {sp.m} on the {what}: no row walks fewer than K={k} slots: run dense")
    skey = None
    if low == top:
        skey = ("flexible", dkey, transposed, k, len(row_max), top)
        hit = _by_counts.get(skey)
        if hit is not None:
            return hit
        row_n = np.full(len(row_max), top, dtype=lut.dtype)
        row_n.flags.writeable = False  # shared by the masks of this shape and N
    else:
        row_n = lut[row_max]
    total = sum(n * rows for n, rows in row_hist)
    out = Mapping(_nm(top if top < sp.m else sp.m, sp.m), row_n,
                  f"per-row N of {sp.m} on the {what}: max {top}, mean {total / len(row_max):.2f}")
    object.__setattr__(out, "_row_n_sum", total)  # the stored slots need it again
    object.__setattr__(out, "_row_n_hist", row_hist)  # and the partial last group's slots
    if skey is not None:
        _by_counts.put(skey, out)
    return out


_nm_patterns: dict[tuple[int, int], Pattern] = {}


def _nm(n: int, m: int) -> Pattern:
    """The Pattern n:m, one object per (n, m) (flexible mappings make one per mask otherwise)."""
    hit = _nm_patterns.get((n, m))
    if hit is None:
        hit = _nm_patterns[(n, m)] = Pattern("nm", n, m)
    return hit


def _allowed_n(sp) -> np.ndarray:
    """For each largest group count c in 0..M of a row, the N a flexible design runs the row at:
    the smallest offered N >= c, M (dense) when none is. Memoised on the frozen Sparsity."""
    hit = sp.__dict__.get("_allowed_n")
    if hit is None:
        allowed = np.asarray(sp.n_values + ((sp.m,) if sp.m not in sp.n_values else ()), dtype=np.int32)
        hit = allowed[np.searchsorted(allowed, np.arange(sp.m + 1), side="left")]
        object.__setattr__(sp, "_allowed_n", hit)
        object.__setattr__(sp, "_allowed_n_list", hit.tolist())
    return hit


def _pow2_up_to(max_m: int) -> tuple[int, ...]:
    """Group sizes 2, 4, 8, ... <= max_m: the M a layer-wise design is searched over for an unstructured mask."""
    return tuple(1 << i for i in range(1, max_m.bit_length()) if 1 << i <= max_m)


def nearest_nm(mask: np.ndarray, group_sizes: tuple[int, ...], transposed: bool = False) -> Optional[Pattern]:
    """The sparsest N:M (N < M, M in ``group_sizes``) that every group of the real mask fits.

    For each M the smallest such N is the fullest group's count; among the M the fewest slots
    walked (``k_compressed(K, N, M)``; the lowest N/M when M divides K) wins, ties going to the
    smaller M (fewer metadata bits, a narrower selection). Slots, not N/M, because for K < M
    N/M says nothing: 3:64 and 3:16 both walk 3 slots of K = 11. An M whose N:M would not walk
    fewer than the K dense slots (K <= N: one partial group) is skipped. None when no M is left.
    """
    best: Optional[tuple[int, Pattern]] = None
    k = mask.shape[0] if transposed else mask.shape[1]
    for m in sorted(group_sizes):
        n = max(_max_count(mask, m, transposed), 1)
        if n >= m or not _shortens(k, n, m):
            continue
        walked = k_compressed(k, n, m)
        if best is None or walked < best[0]:
            best = (walked, Pattern("nm", n, m))
    return None if best is None else best[1]


def _map_unstructured(design: Design, mask: np.ndarray, p: Pattern, transposed: bool) -> Mapping:
    """Any mask on an unstructured design: rows packed along K; a fold walks its busiest row."""
    what = "W^T" if transposed else "mask"
    rk = row_nnz(mask, transposed)
    k = mask.shape[0] if transposed else mask.shape[1]
    rows = len(rk)
    width = fold_width(design, rows)
    fold_max = np.maximum.reduceat(rk, np.arange(0, rows, width))
    if (fold_max >= k).all():
        return Mapping(DENSE, None, f"every fold of {width} rows of the {what} has a full row: run dense")
    nnz = int(rk.sum())
    widths = np.full(len(fold_max), width)
    widths[-1] = rows - width * (len(fold_max) - 1)
    walk = int((fold_max * widths).sum())
    imbalance = f"{walk / nnz:.2f}x" if nnz else "n/a"
    return Mapping(UNSTRUCTURED, None,
                   f"{p} {what} packed by row ({design.sparsity.index_format}): density {nnz / (k * rows):.1%}, "
                   f"folds of {width} rows walk their busiest row, {walk / rows:.1f} of K={k} per row vs "
                   f"{nnz / rows:.1f} kept (load imbalance {imbalance})", row_k=rk)


def runs_as(gemms) -> str:
    """What a design runs in place of a workload's sparse patterns, from its forward GEMMs' mappings, with the
    mapping's reason: "2:4 (every group of 4 of the mask holds <= 2)" (a 1:4 agent on a 2:4-only design, whose
    figures are then 2:4's), "1:4" where the note gives no reason in brackets, several patterns with the share
    of forward GEMMs each runs where they differ; "" where the design runs each layer's own pattern.

    ``gemms``: (phase, the workload's pattern, ``hw_pattern``, mapping note) per GEMM, patterns as text
    (``hwmodel.result.LayerResult``'s fields; element-wise entries and dense layers say nothing). The one
    definition of what ``nmlab check``'s note line and the sweep's ``runs_as`` column say."""
    fwd = [(pattern, hw, note) for phase, pattern, hw, note in gemms if phase == "forward" and pattern != "dense"]
    if all(hw == pattern for pattern, hw, _ in fwd):
        return ""
    ran = Counter(hw for _, hw, _ in fwd)
    why: dict[str, str] = {}
    for _, hw, note in fwd:
        m = re.search(r"\(([^()]*)\)\s*$", note or "")
        why.setdefault(hw, m.group(1) if m else "")
    parts = [f"{hw}{f' ({why[hw]})' if why[hw] and why[hw] != 'native' else ''}"
             + (f" on {n} of {len(fwd)} forward GEMMs" if len(ran) > 1 else "") for hw, n in ran.most_common()]
    return ", ".join(parts)


def runs_as_pattern(text: str) -> str:
    """The pattern a :func:`runs_as` text names when every forward GEMM runs that one ("2:4"); "" when the text
    is empty or names several."""
    if not text or " forward GEMMs" in text:
        return ""
    return text.split(" (", 1)[0]
