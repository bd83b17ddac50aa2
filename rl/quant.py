"""Fake quantization (quantize then dequantize, in float32) for evaluating low-bit actors.

Symmetric integer grid with ``2**(bits-1) - 1`` positive levels (so 0 is exact and pruned
weights stay exactly zero: N:M masks survive quantization), round to nearest.
Weights: one scale per output channel (row of ``[out, in]``). Activations: one scale per
tensor, computed dynamically from each layer's input. ``bits >= 32`` means no quantization
(float32 itself is the 32-bit format).

The same per-channel quantizer drives quantization-aware training (``NMLinear.qat_bits``,
set by ``--method gmp --qat-bits B``), so trained and evaluated grids are identical; it is
idempotent (quantizing a quantized weight again at the same bits returns it unchanged).
``torch.round`` rounds halves to even.
"""

from __future__ import annotations

import torch

from hwmodel.errors import NmlabError
from hwmodel.limits import is_int

MIN_BITS = 2
MAX_BITS = 32


def check_bits(bits: int) -> int:
    """Validate a bitwidth for ``nmlab evaluate`` (2..32)."""
    if not is_int(bits) or not MIN_BITS <= bits <= MAX_BITS:
        raise NmlabError(f"bits: must be an integer from {MIN_BITS} to {MAX_BITS}, got {bits!r}")
    return bits


def _levels(bits: int) -> int:
    return 2 ** (bits - 1) - 1


def fake_quant_per_channel(weight: torch.Tensor, bits: int) -> torch.Tensor:
    """Per-output-channel symmetric fake quantization of ``weight`` [out, in] to ``bits``."""
    if bits >= MAX_BITS:
        return weight
    q = _levels(bits)
    scale = weight.abs().amax(dim=1, keepdim=True) / q
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))  # all-zero rows stay zero
    return torch.clamp(torch.round(weight / scale), -q, q) * scale


def fake_quant_per_tensor(x: torch.Tensor, bits: int) -> torch.Tensor:
    """Per-tensor symmetric fake quantization of an activation tensor to ``bits``."""
    if bits >= MAX_BITS:
        return x
    q = _levels(bits)
    amax = x.abs().amax()
    if amax == 0:
        return x
    scale = amax / q
    return torch.clamp(torch.round(x / scale), -q, q) * scale
