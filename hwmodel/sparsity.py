"""N:M sparsity core (numpy, no torch).

Conventions, shared with the torch twin in :mod:`rl.sparsity`:

* A weight matrix is ``[out_features, in_features]`` (PyTorch ``nn.Linear`` layout).
* Row-wise N:M: every output row is cut into groups of ``M`` consecutive weights along the
  input (reduction) dimension; at most ``N`` weights of each group are kept.
* When ``in_features`` is not a multiple of ``M`` the last group is padded with zeros. The
  padding is never kept (a group of 3 real weights under 4:8 keeps 3) and
  :func:`group_padding` reports its size.
* Ties in ``|w|`` are broken towards the lower input index, so masks are deterministic and
  the numpy and torch versions agree bit for bit.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Optional

import numpy as np

from hwmodel.errors import NmlabError
from hwmodel.limits import is_int

_NM_RE = re.compile(r"^\s*(\d+)\s*:\s*(\d+)\s*$")


@dataclass(frozen=True)
class Pattern:
    """A sparsity pattern: ``kind`` is "nm", "dense" or "unstructured".

    ``n`` and ``m`` are set for "nm" only.
    """

    kind: str
    n: Optional[int] = None
    m: Optional[int] = None

    @property
    def is_nm(self) -> bool:
        return self.kind == "nm"

    @property
    def density(self) -> Optional[float]:
        """Fraction of weights kept (None for unstructured: it depends on the mask)."""
        if self.kind == "dense":
            return 1.0
        if self.kind == "nm":
            return self.n / self.m
        return None

    @property
    def meta_bits(self) -> int:
        """Metadata bits per kept value: ceil(log2 M) (0 for dense)."""
        return meta_bits_per_value(self.m) if self.is_nm else 0

    def __str__(self) -> str:
        return f"{self.n}:{self.m}" if self.is_nm else self.kind


DENSE = Pattern("dense")
UNSTRUCTURED = Pattern("unstructured")


def parse_pattern(text: str | Pattern, *, field: str = "pattern", allow_unstructured: bool = True) -> Pattern:
    """Parse "N:M" (1 <= N <= M, M >= 2), "dense" or "unstructured".

    Raises :class:`NmlabError` naming ``field`` and the bad value otherwise.
    """
    if isinstance(text, Pattern):
        return text
    # Mapping parses a layer's pattern string per layer and design: memoise valid strings
    # (Patterns are frozen, so one instance can be shared; errors are not cached).
    hit = _PARSED.get((text, allow_unstructured)) if isinstance(text, str) else None
    if hit is not None:
        return hit
    if not isinstance(text, str):
        hint = ""
        n, m = divmod(text, 60) if is_int(text) else (0, 0)
        if 1 <= n <= m:
            # YAML 1.1 (PyYAML) reads an unquoted 2:4 as the base-60 integer 124. Only an N:M with
            # N <= M is hinted: 10^30 was "an unquoted 16666666666666666666666666666:40".
            hint = f" (YAML reads an unquoted {n}:{m} as the base-60 number {text}: quote it, \"{n}:{m}\")"
        raise NmlabError(f"{field}: expected a string like '2:4' or 'dense', got {text!r}{hint}")
    s = text.strip().lower()
    if s == "dense":
        return DENSE
    if s == "unstructured" and allow_unstructured:
        return UNSTRUCTURED
    match = _NM_RE.match(s)
    if not match:
        raise NmlabError(f"{field}: {text!r} is not a sparsity pattern (expected 'N:M' such as '2:4', or 'dense')")
    n, m = int(match.group(1)), int(match.group(2))
    if m < 2:
        raise NmlabError(f"{field}: {text!r} has M={m}; M must be at least 2")
    if not 1 <= n <= m:
        raise NmlabError(f"{field}: {text!r} has N={n}; N must satisfy 1 <= N <= M={m}")
    p = Pattern("nm", n, m)
    if len(_PARSED) < 4096:
        _PARSED[(text, allow_unstructured)] = p
    return p


_PARSED: dict[tuple[str, bool], Pattern] = {}


def meta_bits_per_value(m: int) -> int:
    """Bits of index metadata per kept value in a group of ``m``: ceil(log2 m)."""
    return max(1, math.ceil(math.log2(m))) if m > 1 else 0


def group_padding(in_features: int, pattern: Pattern | str) -> int:
    """Zero columns appended so ``in_features`` becomes a multiple of M (0 if not N:M)."""
    p = parse_pattern(pattern)
    return (-in_features) % p.m if p.is_nm else 0


def _grouped(a: np.ndarray, m: int, fill) -> np.ndarray:
    """Pad the last axis to a multiple of ``m`` with ``fill`` and reshape to [out, g, m]."""
    out, cols = a.shape
    pad = (-cols) % m
    if pad:
        a = np.concatenate([a, np.full((out, pad), fill, dtype=a.dtype)], axis=1)
    return a.reshape(out, -1, m)


def nm_mask(weights: np.ndarray, pattern: Pattern | str) -> np.ndarray:
    """Row-wise N:M mask of ``weights`` [out, in]: keep the N largest |w| per group of M.

    Returns a bool array of the same shape. Dense returns all True. Ties go to the lower
    input index; padding columns are never kept.
    """
    p = parse_pattern(pattern, allow_unstructured=False)
    w = np.asarray(weights)
    if w.ndim != 2:
        raise NmlabError(f"weights: expected a 2-D [out, in] matrix, got shape {w.shape}")
    if not p.is_nm:
        return np.ones(w.shape, dtype=bool)
    out, cols = w.shape
    score = _grouped(np.abs(w.astype(np.float64)), p.m, -np.inf)
    real = _grouped(np.ones((out, cols), dtype=bool), p.m, False)
    # Stable argsort of -score puts the larger |w| first and, among equals, the lower index.
    order = np.argsort(-score, axis=-1, kind="stable")
    keep = np.zeros_like(real)
    np.put_along_axis(keep, order[..., : p.n], True, axis=-1)
    keep &= real
    return keep.reshape(out, -1)[:, :cols]


def kept_count(size: int, sparsity: float) -> int:
    """Weights an unstructured mask of ``size`` keeps at ``sparsity`` (fraction of zeros): round((1 - s) * size), >= 1."""
    if not 0.0 <= sparsity < 1.0:
        raise NmlabError(f"sparsity: must be in [0, 1), got {sparsity!r}")
    return max(1, int(round((1.0 - sparsity) * size)))


def magnitude_mask(weights: np.ndarray, sparsity: float) -> np.ndarray:
    """Unstructured mask of ``weights`` keeping the ``kept_count`` largest |w| of the whole matrix.

    Ties go to the lower row-major index (deterministic, like :func:`nm_mask`).
    """
    w = np.asarray(weights)
    if w.ndim != 2:
        raise NmlabError(f"weights: expected a 2-D [out, in] matrix, got shape {w.shape}")
    keep = kept_count(w.size, sparsity)
    order = np.argsort(-np.abs(w.astype(np.float64)).ravel(), kind="stable")
    mask = np.zeros(w.size, dtype=bool)
    mask[order[:keep]] = True
    return mask.reshape(w.shape)


def random_mask(shape: tuple[int, int], sparsity: float, rng: np.random.Generator) -> np.ndarray:
    """Unstructured mask of ``shape`` keeping ``kept_count`` uniformly placed weights."""
    size = shape[0] * shape[1]
    mask = np.zeros(size, dtype=bool)
    mask[rng.choice(size, kept_count(size, sparsity), replace=False)] = True
    return mask.reshape(shape)


# Groups of 4 or 8 bools (bytes 0/1) read as one unsigned integer: multiplied by 0x0101..01,
# the top byte of the product is the group's kept count (no carries: counts <= m). Comparing
# products compares counts first, so a max over products is a max over counts.
GROUP_WORDS = {4: (np.uint32, np.uint32(0x01010101), np.uint32(24)),
               8: (np.uint64, np.uint64(0x0101010101010101), np.uint64(56))}


def group_words(mask: np.ndarray, m: int) -> Optional[np.ndarray]:
    """[out, groups] products whose top byte (``>> GROUP_WORDS[m][2]``) is each group's kept count
    (m in 4, 8; trailing padding counts as not kept); None for other m or an empty mask."""
    if m not in GROUP_WORDS:
        return None
    a = np.asarray(mask, dtype=bool)
    if a.ndim != 2 or a.size == 0:
        return None
    out, k = a.shape
    if k % m:
        padded = np.zeros((out, k + m - k % m), dtype=bool)
        padded[:, :k] = a
        a = padded
    elif not a.flags.c_contiguous:
        a = np.ascontiguousarray(a)
    dtype, magic, _ = GROUP_WORDS[m]
    return a.view(dtype) * magic


def _popcount_table() -> np.ndarray:
    """Kept count of each byte, [256]."""
    global _POPCOUNT
    if _POPCOUNT is None:
        _POPCOUNT = np.unpackbits(np.arange(256, dtype=np.uint8)[:, None], axis=1).sum(axis=1).astype(np.int32)
    return _POPCOUNT


_POPCOUNT: Optional[np.ndarray] = None


def _packed_group_counts(a: np.ndarray, m: int) -> np.ndarray:
    """group_counts via packbits and a popcount table (m = 16, 32, ...): a few numpy calls
    whatever m, where adding m slices costs m; trailing padding bits are zero, as in _grouped."""
    out, cols = a.shape
    groups = -(-cols // m)
    packed = np.packbits(a, axis=1)
    per = m // 8
    if packed.shape[1] < groups * per:
        packed = np.concatenate([packed, np.zeros((out, groups * per - packed.shape[1]), dtype=np.uint8)], axis=1)
    return _popcount_table()[packed].reshape(out, groups, per).sum(axis=2, dtype=np.int32)


#: Above this group size group_counts reduces with np.add.reduceat: bounded in memory and time
#: for any M, and faster than the slices or packed popcounts at M = 128 on TD3 layer shapes
#: (timeit of the three on the same masks; the ratio moves with shape and machine load).
_SLICE_MAX_M = 64


def group_counts(mask: np.ndarray, m: int) -> np.ndarray:
    """Kept entries per (row, group of m) as an int array [out, groups]."""
    words = group_words(mask, m)
    if words is not None:
        words >>= GROUP_WORDS[m][2]  # a fresh product: shift it in place
        return words.astype(np.int32)
    a = np.asarray(mask, dtype=bool)
    if a.ndim == 2 and a.shape[1] and (m > _SLICE_MAX_M or m > a.shape[1]):
        # Large M (a file may declare 1:1000000000), or rows shorter than M (a 2^24 x 1 layer
        # searched for 1:64): one reduceat over the real columns. Padding to a multiple of M
        # would allocate rows x M, and adding M slices costs M numpy calls. An M of at least
        # the row length is one group per row (and may exceed int64).
        starts = np.arange(0, a.shape[1], min(m, a.shape[1]))
        return np.add.reduceat(a.view(np.uint8), starts, axis=1, dtype=np.int32)
    # Packed popcounts win for M = 16, 32, ... on small masks (measured on TD3 layer shapes);
    # the table gather loses on large masks.
    if a.ndim == 2 and a.shape[0] and m % 8 == 0 and a.size <= 8192:
        return _packed_group_counts(a, m)
    grouped = _grouped(a, m, False).view(np.uint8)
    # Adding the m slices beats .sum(axis=-1) over a short last axis: on TD3 layer shapes 5-21x
    # at m = 2, 1.3-6x at m = 6, 1.0-1.9x at m = 16 on 256 x 256; at m = 32 on 256 x 256 it
    # takes 1.6-2.4x as long (benchmarks/bench_model_ops.py, item 5, five runs).
    counts = grouped[..., 0].astype(np.int32)
    for j in range(1, m):
        counts += grouped[..., j]
    return counts


def verify(mask: np.ndarray, pattern: Pattern | str) -> Optional[tuple[int, int]]:
    """First (row, group) of ``mask`` holding more than N kept entries, or None if it is N:M.

    Dense and unstructured patterns accept any mask.
    """
    p = parse_pattern(pattern)
    if not p.is_nm:
        return None
    bad = np.argwhere(group_counts(mask, p.m) > p.n)
    return (int(bad[0, 0]), int(bad[0, 1])) if len(bad) else None


def is_transposable(mask: np.ndarray, pattern: Pattern | str) -> bool:
    """True when ``mask`` is N:M along its rows and along its columns.

    The backward-data GEMM of training uses W transposed; it can run on an N:M sparse unit
    only if the transpose is N:M too.
    """
    mask = np.asarray(mask, dtype=bool)
    return verify(mask, pattern) is None and verify(mask.T, pattern) is None


@dataclass(frozen=True)
class Compressed:
    """N:M-compressed matrix: N values and N indices per group, as a sparse tensor core stores it.

    ``values`` [out, groups*N] and ``indices`` [out, groups*N] (position 0..M-1 inside the
    group; uint8 up to M = 256, the narrowest unsigned type holding M-1 beyond). Groups with
    fewer than N kept entries are filled with zero values at unused positions, so every group
    has exactly N slots.
    """

    pattern: Pattern
    in_features: int
    values: np.ndarray
    indices: np.ndarray

    @property
    def metadata_bits(self) -> int:
        """Total index metadata: ceil(log2 M) bits per stored value."""
        return int(self.indices.size) * self.pattern.meta_bits

    def value_bits(self, bits_per_value: int) -> int:
        return int(self.values.size) * bits_per_value


def compress(weights: np.ndarray, mask: np.ndarray, pattern: Pattern | str) -> Compressed:
    """Compress ``weights * mask`` to values + metadata indices. ``mask`` must be N:M."""
    p = parse_pattern(pattern, allow_unstructured=False)
    if not p.is_nm:
        raise NmlabError(f"pattern: compression needs an N:M pattern, got {p}")
    w = np.asarray(weights)
    mask = np.asarray(mask, dtype=bool)
    if w.shape != mask.shape:
        raise NmlabError(f"mask: shape {mask.shape} does not match weights {w.shape}")
    bad = verify(mask, p)
    if bad is not None:
        raise NmlabError(f"mask: row {bad[0]} group {bad[1]} keeps more than {p.n} of {p.m}")
    out, cols = w.shape
    gmask = _grouped(mask, p.m, False)
    gw = _grouped(w, p.m, 0)
    # Kept positions first (in index order), then unused positions to fill the N slots.
    key = np.where(gmask, 0, 1) * p.m + np.arange(p.m)
    order = np.argsort(key, axis=-1, kind="stable")[..., : p.n]
    values = np.take_along_axis(gw, order, axis=-1)
    values = np.where(np.take_along_axis(gmask, order, axis=-1), values, np.zeros((), dtype=w.dtype))
    # The narrowest unsigned type holding 0..M-1: uint8 up to M = 256, wider beyond (no wrap).
    index_type = np.min_scalar_type(p.m - 1)
    return Compressed(p, cols, values.reshape(out, -1), order.astype(index_type).reshape(out, -1))


def decompress(c: Compressed) -> tuple[np.ndarray, np.ndarray]:
    """Inverse of :func:`compress`: (dense weights [out, in], slot mask [out, in]).

    The weights equal ``weights * mask`` bit for bit. The slot mask marks every stored slot
    that lands inside the real columns; it equals the original mask whenever each group kept
    exactly N (as masks from :func:`nm_mask` do wherever the group has N real columns).
    """
    p = c.pattern
    out = c.values.shape[0]
    groups = c.values.shape[1] // p.n
    dense = np.zeros((out, groups, p.m), dtype=c.values.dtype)
    slots = np.zeros((out, groups, p.m), dtype=bool)
    idx = c.indices.reshape(out, groups, p.n).astype(np.intp)
    np.put_along_axis(dense, idx, c.values.reshape(out, groups, p.n), axis=-1)
    np.put_along_axis(slots, idx, True, axis=-1)
    return dense.reshape(out, -1)[:, : c.in_features], slots.reshape(out, -1)[:, : c.in_features]
