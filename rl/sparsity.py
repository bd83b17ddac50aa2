"""Torch twin of :mod:`hwmodel.sparsity`: the same row-wise N:M masks, on tensors.

Same conventions (groups of M along the input dimension, padding never kept, ties to the
lower index); tests check that both versions agree bit for bit.
"""

from __future__ import annotations

import torch

from hwmodel.sparsity import Pattern, parse_pattern


def nm_mask(weight: torch.Tensor, pattern: Pattern | str) -> torch.Tensor:
    """Bool mask keeping the N largest |w| of each group of M along dim 1 of ``weight`` [out, in]."""
    p = parse_pattern(pattern, allow_unstructured=False)
    if not p.is_nm:
        return torch.ones_like(weight, dtype=torch.bool)
    out, cols = weight.shape
    pad = (-cols) % p.m
    score = weight.detach().abs().to(torch.float64)
    real = torch.ones_like(score, dtype=torch.bool)
    if pad:
        score = torch.nn.functional.pad(score, (0, pad), value=float("-inf"))
        real = torch.nn.functional.pad(real, (0, pad), value=False)
    score = score.view(out, -1, p.m)
    # Stable descending sort: larger |w| first, lower index first among equals.
    order = torch.sort(score, dim=-1, descending=True, stable=True).indices[..., : p.n]
    keep = torch.zeros_like(score, dtype=torch.bool).scatter_(-1, order, True)
    keep &= real.view(out, -1, p.m)
    return keep.view(out, -1)[:, :cols]


def group_counts(mask: torch.Tensor, m: int) -> torch.Tensor:
    """Kept entries per (row, group of m): int tensor [out, groups]."""
    out, cols = mask.shape
    pad = (-cols) % m
    padded = torch.nn.functional.pad(mask.to(torch.int32), (0, pad))
    return padded.view(out, -1, m).sum(-1)


def verify(mask: torch.Tensor, pattern: Pattern | str) -> tuple[int, int] | None:
    """First (row, group) keeping more than N, or None when ``mask`` is N:M."""
    p = parse_pattern(pattern)
    if not p.is_nm:
        return None
    bad = torch.nonzero(group_counts(mask, p.m) > p.n)
    return (int(bad[0, 0]), int(bad[0, 1])) if len(bad) else None


def is_transposable(mask: torch.Tensor, pattern: Pattern | str) -> bool:
    """True when ``mask`` is N:M along rows and along columns."""
    return verify(mask, pattern) is None and verify(mask.t(), pattern) is None
