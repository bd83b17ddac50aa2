"""Row-wise N:M sparse linear layers with dense latent weights (SR-STE), and their helpers.

An :class:`NMLinear` keeps a dense *latent* weight ``W`` and a bool ``mask`` buffer that
satisfies the layer's N:M pattern (groups of M along the input dimension). Every forward
pass computes with ``W * mask``, so the network is N:M at every step. The backward pass,
with ``straight_through=False`` (the trainer's default, the paper's rule), gives gradients
to the kept weights only (the topology then changes only when a kept weight shrinks below a
pruned one's stale magnitude). With ``straight_through=True`` (``--straight-through``) it
is SR-STE (Zhou et al., ICLR 2021; NVIDIA's reference op, see shared/reference/rl.md):
the gradient of the masked weight flows straight through to all of ``W`` and pruned
weights get an extra ``decay * W`` pull towards zero, so a pruned weight can grow back and
win its group at the next mask update.

The mask is recomputed by magnitude projection (:func:`project_nm`) only when the trainer
calls :meth:`NMLinear.update_mask` (at the mask-update interval). Target networks keep
their own masks: Polyak averaging (:func:`polyak_update`) of the online latent weights moves their latent weights and the
trainer re-projects their masks at the same interval; between re-projections every target
forward pass still computes with an N:M ``W * mask``.

Pattern "unstructured": the mask is owned by a training method (GMP, RLx2), which sets it
with :meth:`NMLinear.set_mask`; the forward pass is the same ``W * mask`` and
:meth:`NMLinear.update_mask` leaves it alone. An N:M layer owned by gradual-N:M pruning
starts with an all-ones mask set by its method (see rl/methods.py).

QAT: with ``qat_bits`` set (2..16), the effective weight is additionally fake-quantized per
output channel (:func:`rl.quant.fake_quant_per_channel`, symmetric, zero exact so masks
survive) with a straight-through gradient. ``qat_bits`` is not saved in the state dict: the
training method sets it from its schedule after building or loading the networks.
"""

from __future__ import annotations

from typing import Iterable

import torch
from torch import nn

from hwmodel.sparsity import Pattern, parse_pattern
from rl.quant import fake_quant_per_channel


def project_nm(weight: torch.Tensor, pattern: Pattern) -> torch.Tensor:
    """Bool mask keeping the N largest |w| of each group of M along dim 1 of ``weight`` [out, in].

    Same result as :func:`rl.sparsity.nm_mask` (ties go to the lower index, padding columns
    of an odd fan-in are never kept), computed by N rounds of ``argmax`` per group (argmax
    returns the first maximal index). On a 256x256 layer that took 0.38x to 0.95x the time of
    a stable sort per group at 1:4, 2:4 and 2:8, and 1.19x to 1.4x at 4:8
    (``benchmarks/bench_rl_ops.py``, item 2, five runs, torch 2.13 on one CPU thread); it runs
    only at mask updates.

    Args:
        weight: [out_features, in_features] float tensor.
        pattern: an N:M :class:`Pattern` (``is_nm`` must be true).
    """
    out, cols = weight.shape
    pad = (-cols) % pattern.m
    score = weight.detach().abs()
    # Padding scores -1 (below any |w|) so they are never picked while a real entry is left;
    # groups with fewer than N real entries are cut back to their real columns below.
    score = nn.functional.pad(score, (0, pad), value=-1.0) if pad else score.clone()
    g = score.view(out, -1, pattern.m)
    keep = torch.zeros(g.shape, dtype=torch.bool, device=weight.device)
    for _ in range(pattern.n):
        idx = g.argmax(-1, keepdim=True)
        keep.scatter_(-1, idx, True)
        g.scatter_(-1, idx, -2.0)
    return keep.view(out, -1)[:, :cols]


class _SRSTE(torch.autograd.Function):
    """``W * mask`` forward; backward passes the gradient to all of W plus ``decay * (1 - mask) * W``."""

    @staticmethod
    def forward(ctx, weight: torch.Tensor, mask_f: torch.Tensor, decay_mask: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(weight, decay_mask)
        return weight * mask_f

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        weight, decay_mask = ctx.saved_tensors
        return torch.addcmul(grad, weight, decay_mask), None, None


class _FakeQuantSTE(torch.autograd.Function):
    """Forward: per-output-channel symmetric fake quantization; backward: identity (STE).

    A Function rather than ``w + (q(w) - w).detach()`` so the forward value is exactly the
    quantized grid value (the detach trick can be one ulp off, and exports must match)."""

    @staticmethod
    def forward(ctx, weight: torch.Tensor, bits: int) -> torch.Tensor:
        return fake_quant_per_channel(weight, bits)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return grad, None


class NMLinear(nn.Linear):
    """``nn.Linear`` whose effective weight is ``weight * mask`` with ``mask`` N:M (or dense).

    Args:
        in_features: fan-in (K).
        out_features: fan-out (N).
        pattern: "N:M", "dense" or "unstructured" (or a :class:`Pattern`); dense layers behave
            as nn.Linear; unstructured ones start all-ones and their method sets the mask.
        decay: SR-STE decay on pruned weights (added to their gradient, times W).
        straight_through: gradients reach pruned latent weights (SR-STE); False masks them.
    """

    def __init__(self, in_features: int, out_features: int, pattern: Pattern | str = "dense",
                 decay: float = 2e-4, straight_through: bool = True) -> None:
        super().__init__(in_features, out_features)
        self.pattern = parse_pattern(pattern, allow_unstructured=True)
        self.decay = float(decay)
        self.straight_through = bool(straight_through)
        #: Fake-quantization bitwidth of the effective weight (0 = off); set by the method.
        self.qat_bits = 0
        # The mask is a buffer: saved in state_dict, moved by .to(), never trained. Float
        # copies (not saved, derived from it) make the masked multiply and the SR-STE
        # backward one cheap op each: multiplying a 256x256 weight by a bool tensor took 3.6x to
        # 5.4x as long as by a float one (benchmarks/bench_rl_ops.py, item 1, five runs, CPU).
        self.register_buffer("mask", torch.ones(out_features, in_features, dtype=torch.bool))
        self.register_buffer("mask_f", torch.ones(out_features, in_features), persistent=False)
        self.register_buffer("decay_mask", torch.zeros(out_features, in_features), persistent=False)
        self.register_load_state_dict_post_hook(lambda module, _keys: module._sync_masks())
        if self.pattern.is_nm:
            self.set_mask(project_nm(self.weight, self.pattern))

    @torch.no_grad()
    def _sync_masks(self) -> None:
        self.mask_f.copy_(self.mask)
        self.decay_mask.copy_(~self.mask).mul_(self.decay)

    @torch.no_grad()
    def set_mask(self, mask: torch.Tensor) -> None:
        """Replace the mask (bool [out, in]); always use this so the float copies follow."""
        self.mask.copy_(mask)
        self._sync_masks()

    @property
    def sparse(self) -> bool:
        """True when the layer has a mask (N:M or unstructured)."""
        return self.pattern.kind != "dense"

    def effective_weight(self) -> torch.Tensor:
        """The weight the layer computes with (masked when sparse, fake-quantized with
        ``qat_bits``). Differentiable."""
        if not self.sparse:
            w = self.weight
        elif self.straight_through and torch.is_grad_enabled():
            w = _SRSTE.apply(self.weight, self.mask_f, self.decay_mask)
        else:
            # No gradient (targets, acting, evaluation) or masked gradients: a plain product.
            w = self.weight * self.mask_f
        if self.qat_bits:
            w = _FakeQuantSTE.apply(w, self.qat_bits) if torch.is_grad_enabled() else fake_quant_per_channel(w, self.qat_bits)
        return w

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.linear(x, self.effective_weight(), self.bias)

    @torch.no_grad()
    def update_mask(self) -> tuple[int, int]:
        """Re-project the mask onto N:M from |latent W|. Returns (entries changed, entries).
        A no-op (0, 0) for dense and unstructured layers (their masks belong to the method)."""
        if not self.pattern.is_nm:
            return 0, 0
        new = project_nm(self.weight, self.pattern)
        changed = int((new != self.mask).sum())
        self.set_mask(new)
        return changed, new.numel()

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, pattern={self.pattern}" + (f", qat_bits={self.qat_bits}" if self.qat_bits else "")


def nm_layers(module: nn.Module) -> list[NMLinear]:
    """The NMLinear layers of ``module`` in registration order."""
    return [m for m in module.modules() if isinstance(m, NMLinear)]


@torch.no_grad()
def apply_masks(modules: Iterable[nn.Module]) -> None:
    """``W *= mask`` in every sparse layer of ``modules``: pruned weights back to exactly zero
    (after an optimizer step, whose momentum would move them, or a Polyak update)."""
    for module in modules:
        for layer in nm_layers(module):
            if layer.sparse:
                layer.weight.mul_(layer.mask_f)


@torch.no_grad()
def update_masks(modules: Iterable[nn.Module]) -> tuple[int, int]:
    """Re-project every sparse layer of ``modules``; returns (changed, total) mask entries for SAD."""
    changed = total = 0
    for module in modules:
        for layer in nm_layers(module):
            c, t = layer.update_mask()
            changed += c
            total += t
    return changed, total


@torch.no_grad()
def polyak_update(online: nn.Module, target: nn.Module, tau: float, reproject: bool = True) -> None:
    """``target <- (1 - tau) * target + tau * online``, then (``reproject``) re-project the
    target masks onto N:M from the target's latent weights.

    The target's latent weight is the Polyak average of the online *latent* weight (a pruned
    latent weight keeps its last value, or keeps training under SR-STE), and the target's mask
    is the projection of its own latent weight. Averaging the online *effective* weights
    instead would zero the target's copy of every weight the online mask just dropped while
    the target mask still keeps it, leaving the target a few percent of its weights short
    for most of each mask interval. Every target forward pass is N:M whether or not it is
    re-projected (it computes with ``W * mask``). The trainer re-projects at the
    mask-update interval because a projection of all nine target layers costs about half a
    gradient update (0.45x to 0.64x at 2:4, hidden 256, batch 256: ``benchmarks/bench_rl_ops.py``,
    item 3).
    """
    for src, dst in zip(online.modules(), target.modules()):
        if isinstance(src, nn.Linear):  # an NMLinear too
            dst.weight.lerp_(src.weight, tau)
            dst.bias.lerp_(src.bias, tau)
            if reproject and isinstance(dst, NMLinear) and dst.pattern.is_nm:
                dst.set_mask(project_nm(dst.weight, dst.pattern))
