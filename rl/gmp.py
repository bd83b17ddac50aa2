"""Gradual magnitude pruning (GMP) of TD3, unstructured or to N:M, then quantization-aware training.

``nmlab train --method gmp --sparsity 0.95 --qat-bits 8`` (Ivanov et al., arXiv 2405.07748,
with the Zhu & Gupta schedule as in Graesser et al.; shared/reference/rl.md):

* ``--steps`` is the whole run. With ``--qat-bits B`` the last ``--qat-fraction`` of it
  (default 0.2) is the QAT phase; pruning is scheduled over the first
  ``P = steps - round(qat_fraction * steps)`` env steps (all of ``steps`` without QAT).
* Cubic schedule over env steps t (steps done, random-action phase included):
  ``s_t = s_F (1 - (1 - (t - t_s) / (t_e - t_s))^3)`` for ``t_s <= t <= t_e``, 0 before and
  ``s_F`` after, with ``t_s`` = ``--prune-start-fraction`` (0.2) and ``t_e`` =
  ``--prune-end-fraction`` (0.8) of ``P`` (the paper's 20% and 80%), each rounded to the nearest
  multiple of ``--prune-every`` (default 1000, the paper's) so that pruning happens exactly
  at the multiples of ``prune_every`` inside ``[t_s, t_e]`` and the last one reaches ``s_F``.
* Targets per network (``--actor-sparsity`` / ``--critic-sparsity`` override
  ``--sparsity``), spread over the network's layers by ``--prune-distribution``: ``erk``
  (default; :meth:`GMPMethod.layer_final_sparsity`) or ``uniform`` (every layer at the
  network's target). Layer l with final sparsity ``s_l`` is pruned to ``s_l * s_t / s_F``
  by magnitude *within the layer* (the paper prunes per layer): ``round(s_l s_t / s_F * n)``
  of its ``n`` weights, within half a weight of the schedule. Pruning is monotone: a pruned weight is never regrown (its latent
  weight is zero; ties go to the lower flat index).
* Gradual N:M (``--sparsity 2:4``): the same cubic curve drives the *fraction of the
  final prunable count* ``C = sum over groups of max(0, r_g - N)`` (``r_g`` real entries of
  group g: M, fewer in the padded last group of an odd fan-in). Each prune removes the
  smallest-magnitude weights subject to never pruning more than ``r_g - N`` of any group,
  so the final mask keeps exactly ``min(N, r_g)`` per group: N:M, comparable with
  from-scratch RNM-TD3.
* Gradients of pruned weights are masked (the layers run with ``straight_through=False``);
  after every optimizer step and Polyak update the pruned weights of the online and
  target networks are re-zeroed, so Adam momentum cannot revive them. Targets share the
  online masks (set at every prune).
* QAT: from env step ``P`` on, every layer of all six networks computes with its masked
  weight fake-quantized per output channel to ``B`` bits (symmetric, zero exact,
  straight-through gradient; :func:`rl.quant.fake_quant_per_channel`); masks stay fixed.

The schedule is a pure function of the step, masks live in the network state dicts and
QAT is switched from the step in :meth:`GMPMethod.prepare`, so the method has no state of
its own and a resumed run is bit-exact.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Optional

import torch
from torch import nn

from hwmodel.errors import NmlabError
from hwmodel.sparsity import DENSE, UNSTRUCTURED, Pattern
from rl.args import Args
from rl.methods import LAYER_KEYS, Method, keyed_layers, parse_target
from rl.nm_layers import apply_masks, nm_layers
from rl.rlx2 import erk_densities

#: ``--prune-distribution`` values: how a network's target sparsity is spread over its layers.
DISTRIBUTIONS = ("erk", "uniform")

#: Default start and end of pruning as fractions of the pruning phase (Zhu & Gupta, Graesser et
#: al.: 20% and 80%); a run's are ``--prune-start-fraction`` / ``--prune-end-fraction``.
START_FRACTION = Args.prune_start_fraction
END_FRACTION = Args.prune_end_fraction


@dataclass(frozen=True)
class CubicSchedule:
    """Zhu & Gupta cubic schedule on env steps, pruning at multiples of ``prune_every``.

    Args:
        pruning_steps: length ``P`` of the pruning phase in env steps.
        prune_every: env steps between pruning events.
        start_fraction: ``t_s`` before rounding, as a fraction of ``pruning_steps``.
        end_fraction: ``t_e`` before rounding, as a fraction of ``pruning_steps`` (> ``start_fraction``).
    """

    pruning_steps: int
    prune_every: int
    start_fraction: float = START_FRACTION
    end_fraction: float = END_FRACTION

    @property
    def t_start(self) -> int:
        """First pruning step: ``start_fraction`` of P, rounded to a multiple of ``prune_every``, <= t_end."""
        return min(self._round(self.start_fraction * self.pruning_steps), self.t_end)

    @property
    def t_end(self) -> int:
        """Last pruning step (s_F reached): ``end_fraction`` of P, rounded to a multiple of ``prune_every``, <= P."""
        last = (self.pruning_steps // self.prune_every) * self.prune_every
        return min(self._round(self.end_fraction * self.pruning_steps), last)

    def _round(self, t: float) -> int:
        return int(math.floor(t / self.prune_every + 0.5)) * self.prune_every

    def fraction(self, t: int) -> float:
        """Fraction of the final sparsity at env step ``t``: 1 - (1 - (t - t_s)/(t_e - t_s))^3, clamped."""
        ts, te = self.t_start, self.t_end
        if t >= te:
            return 1.0
        if t < ts:
            return 0.0
        return 1.0 - (1.0 - (t - ts) / (te - ts)) ** 3

    def sparsity(self, t: int, final: float) -> float:
        """``s_t`` for final sparsity ``final``."""
        return final * self.fraction(t)

    def is_prune_step(self, t: int) -> bool:
        """Pruning happens at multiples of ``prune_every`` inside [t_s, t_e] (step 0: at init)."""
        return t % self.prune_every == 0 and self.t_start <= t <= self.t_end


def prune_count(n: int, sparsity: float) -> int:
    """Weights pruned from a layer of ``n`` at ``sparsity``: round half up (within half a weight), at most n - 1."""
    return min(n - 1, int(math.floor(sparsity * n + 0.5)))  # keep at least one weight, like hwmodel.sparsity.kept_count


@torch.no_grad()
def magnitude_mask(weight: torch.Tensor, mask: torch.Tensor, n_pruned: int) -> torch.Tensor:
    """Unstructured: prune the ``n_pruned`` smallest |w| of the layer, keeping pruned ones pruned.

    Args:
        weight: [out, in] latent weight.
        mask: current bool mask (False = pruned; never regrown).
        n_pruned: total pruned entries wanted; fewer than already pruned keeps ``mask``.
    """
    n = weight.numel()
    already = n - int(mask.sum())
    if n_pruned <= already:
        return mask.clone()
    score = torch.where(mask, weight.abs(), torch.full_like(weight, -1.0)).flatten()
    order = torch.argsort(score, stable=True)  # ascending; pruned (-1) first; ties: lower index first
    new = torch.ones(n, dtype=torch.bool, device=weight.device)
    new[order[:n_pruned]] = False
    return new.view_as(mask)


def group_capacity(in_features: int, pattern: Pattern) -> torch.Tensor:
    """Per group (along the input dim, last one padded) how many weights N:M may prune: max(0, r - N)."""
    m, n = pattern.m, pattern.n
    groups = -(-in_features // m)
    real = torch.full((groups,), m, dtype=torch.long)
    real[-1] = in_features - m * (groups - 1)
    return torch.clamp(real - n, min=0)


@torch.no_grad()
def nm_gradual_mask(weight: torch.Tensor, mask: torch.Tensor, pattern: Pattern, fraction: float) -> torch.Tensor:
    """Gradual N:M: prune ``round(fraction * C)`` weights (C = the final prunable count), the
    smallest |w| first, never more than ``r_g - N`` in any group; pruned ones stay pruned.
    ``fraction`` 1 gives exactly ``min(N, r_g)`` kept per group.

    Args:
        weight: [out, in] latent weight.
        mask: current bool mask (False = pruned).
        pattern: the final N:M pattern.
        fraction: fraction of the final prunable count to have pruned, in [0, 1].
    """
    out, cols = weight.shape
    m = pattern.m
    pad = (-cols) % m
    cap = group_capacity(cols, pattern).to(weight.device)  # [groups]
    total_cap = int(cap.sum()) * out
    target = min(total_cap, int(math.floor(fraction * total_cap + 0.5)))
    already = int((~mask).sum())
    if target <= already:
        return mask.clone()
    score = torch.where(mask, weight.abs(), torch.full_like(weight, -1.0))
    if pad:  # padding is never a candidate
        score = nn.functional.pad(score, (0, pad), value=float("inf"))
    g = score.view(out, -1, m)
    order = torch.argsort(g, dim=-1, stable=True)  # ascending within each group
    rank = torch.empty_like(order)
    rank.scatter_(-1, order, torch.arange(m, device=weight.device).expand_as(order))
    eligible = (rank < cap.view(1, -1, 1)).view(out, -1)[:, :cols]  # the group's cap smallest
    flat_score = torch.where(eligible, score.view(out, -1)[:, :cols], torch.full_like(weight, float("inf"))).flatten()
    chosen = torch.argsort(flat_score, stable=True)[:target]  # already pruned (-1) come first
    new = torch.ones(out * cols, dtype=torch.bool, device=weight.device)
    new[chosen] = False
    return new.view(out, cols)


class GMPMethod(Method):
    """Gradual magnitude pruning (unstructured or N:M) with an optional final QAT phase."""

    name = "gmp"
    schedule_uses_steps = True

    def __init__(self, args: Any) -> None:
        super().__init__(args)
        self.targets: dict[str, float | Pattern] = {}
        for kind in ("actor", "critic"):
            field = f"{kind}_sparsity"
            text = getattr(args, field) or args.sparsity
            where = field if getattr(args, field) else "sparsity"
            self.targets[kind] = 0.0 if str(text).strip().lower() == "dense" else parse_target(text, where)
        qat = args.qat_bits > 0
        pruning_steps = args.steps - (int(math.floor(args.qat_fraction * args.steps + 0.5)) if qat else 0)
        self.qat_start: Optional[int] = pruning_steps if qat else None
        self.schedule = CubicSchedule(pruning_steps=max(pruning_steps, 0), prune_every=max(int(args.prune_every), 1),
                                      start_fraction=float(args.prune_start_fraction),
                                      end_fraction=float(args.prune_end_fraction))
        self.distribution = str(getattr(args, "prune_distribution", "erk")).strip().lower()
        self.nets: Optional[dict[str, nn.Module]] = None
        self._qat_on = False
        self._layer_final: Optional[dict[str, float]] = None

    def validate(self) -> None:
        if self.distribution not in DISTRIBUTIONS:
            raise NmlabError(f"prune_distribution: must be one of {', '.join(DISTRIBUTIONS)}, got {self.args.prune_distribution!r}")
        if self.args.layer_sparsity:
            raise NmlabError("layer_sparsity: not used by --method gmp (use --actor-sparsity / --critic-sparsity)")
        if all(t == 0.0 for t in self.targets.values()):
            raise NmlabError("sparsity: --method gmp needs a target: a fraction removed (0.95) or N:M (2:4)")

    def layer_patterns(self) -> dict[str, Pattern]:
        out = {}
        for key in LAYER_KEYS:
            t = self.targets[key.split(".")[0]]
            out[key] = t if isinstance(t, Pattern) else (DENSE if t == 0.0 else UNSTRUCTURED)
        return out

    def layer_options(self) -> dict[str, Any]:
        # Masked gradients: pruned weights are gone for good (no SR-STE regrowth in GMP).
        return {"decay": 0.0, "straight_through": False}

    def sparsity_label(self) -> str:
        """'N:M' for gradual N:M, else 'unstructured' (what the quality table's sparsity column parses)."""
        kinds = {str(t) if isinstance(t, Pattern) else "unstructured" for t in self.targets.values() if t != 0.0}
        return kinds.pop() if len(kinds) == 1 else "unstructured"

    def target_text(self, kind: str) -> str:
        """The final target of ``kind`` ('actor'/'critic') as text: '0.95' or '2:4'."""
        t = self.targets[kind]
        return str(t) if isinstance(t, Pattern) else repr(float(t))

    # --- masks
    def layer_final_sparsity(self, nets: dict[str, nn.Module]) -> dict[str, float]:
        """Final sparsity of every unstructured layer key (``actor.fc1`` .. ``critic.fc3``).

        ``uniform``: every layer at its network's target. ``erk``: Erdos-Renyi-Kernel over the
        network's layers (:func:`rl.rlx2.erk_densities`): the network keeps the same number of
        weights, but small layers (the input layer, the critic's one-output layer) keep more,
        up to dense."""
        if self._layer_final is None:
            final: dict[str, float] = {}
            for kind, name in (("actor", "actor"), ("critic", "qf1")):
                target = self.targets[kind]
                if isinstance(target, Pattern):
                    continue
                shapes = {key: tuple(layer.weight.shape) for key, layer in keyed_layers(name, nets[name])}
                if self.distribution == "erk" and target > 0.0:
                    final.update({key: 1.0 - d for key, d in erk_densities(shapes, target).items()})
                else:
                    final.update({key: float(target) for key in shapes})
            self._layer_final = final
        return self._layer_final

    @torch.no_grad()
    def prune(self, nets: dict[str, nn.Module], t: int) -> dict[str, float]:
        """Prune every online layer to the schedule at env step ``t``; targets take the online
        masks; pruned weights are zeroed in both. Returns the achieved sparsity per network kind."""
        fraction = self.schedule.fraction(t)
        finals = self.layer_final_sparsity(nets)
        stats: dict[str, float] = {}
        for kind, names in (("actor", ("actor",)), ("critic", ("qf1", "qf2"))):
            target = self.targets[kind]
            pruned = total = 0
            any_sparse = False
            for name in names:
                for (key, layer), tlayer in zip(keyed_layers(name, nets[name]), nm_layers(nets[f"{name}_target"])):
                    if not layer.sparse:
                        total += layer.weight.numel()  # dense layers count in the network's sparsity
                        continue
                    any_sparse = True
                    if isinstance(target, Pattern):
                        new = nm_gradual_mask(layer.weight, layer.mask, target, fraction)
                    else:
                        final = finals[key]
                        new = magnitude_mask(layer.weight, layer.mask, prune_count(layer.weight.numel(), final * fraction))
                    for lay in (layer, tlayer):
                        lay.set_mask(new)
                        lay.weight.mul_(lay.mask_f)
                    pruned += int((~new).sum())
                    total += new.numel()
            if any_sparse:
                stats[f"{kind}_sparsity"] = pruned / total
        return stats

    def init_masks(self, nets: dict[str, nn.Module]) -> None:
        # All ones (an N:M layer's constructor projected its mask), then the schedule at step 0
        # (0 unless the pruning phase is shorter than one prune interval).
        for net in nets.values():
            for layer in nm_layers(net):
                layer.set_mask(torch.ones_like(layer.mask))
        self.prune(nets, 0)

    def prepare(self, nets: dict[str, nn.Module], global_step: int) -> None:
        self.nets = nets
        # A layer ERK keeps dense is dense (no mask work, exported as dense); the mask check
        # keeps a checkpoint pruned under another distribution as it was trained.
        finals = self.layer_final_sparsity(nets)
        for name, net in nets.items():
            for key, layer in keyed_layers(name, net):
                if finals.get(key, 1.0) <= 0.0 and not layer.pattern.is_nm and bool(layer.mask.all()):
                    layer.pattern = DENSE
        self._set_qat(self.qat_start is not None and global_step >= self.qat_start)

    def _set_qat(self, on: bool) -> None:
        self._qat_on = on
        for net in (self.nets or {}).values():
            for layer in nm_layers(net):
                layer.qat_bits = self.args.qat_bits if on else 0

    def on_env_step(self, global_step: int, buffer: Any, actor: nn.Module) -> dict[str, float]:
        scalars: dict[str, float] = {}
        if self.nets is None:
            raise RuntimeError("GMPMethod.prepare must run before training")
        if self.schedule.is_prune_step(global_step):
            scalars.update(self.prune(self.nets, global_step))
        if self.qat_start is not None and not self._qat_on and global_step >= self.qat_start:
            self._set_qat(True)
            scalars["qat_bits"] = float(self.args.qat_bits)
        return scalars

    def after_optimizer_step(self, kind: str, modules: tuple[nn.Module, ...], update_step: int) -> None:
        apply_masks(modules)

    def after_polyak(self, pairs: list[tuple[nn.Module, nn.Module]]) -> None:
        apply_masks(target for _online, target in pairs)
