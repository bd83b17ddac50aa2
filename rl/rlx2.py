"""RLx2 (Tan et al., ICLR 2023) for TD3: sparse training from scratch with RigL topology
evolution, multi-step TD targets and a dynamic-capacity replay buffer.

Implemented from the paper's description as summarised in shared/reference/rl.md
(RLx2 section); defaults follow the paper and the authors' TD3 settings:

- Layer densities: Erdos-Renyi-Kernel (:func:`erk_densities`), per network (the actor's
  three layers share the actor's sparsity, the two critics' six layers the critics'). A
  layer's density is ``eps * (n_in + n_out) / (n_in * n_out)`` with ``eps`` chosen so the
  network keeps ``(1 - sparsity)`` of its weights; a layer that would exceed density 1 is
  kept dense and the others are rescaled. Layers made dense by ``--layer-sparsity``
  count as dense in the budget.
- Initial masks: the top-k ``|w|`` of the random initialisation per layer (ties to the lower
  flat index); pruned weights are set to 0. Targets start with the online masks.
- Masked training: the gradient of every pruned weight is zeroed before the optimizer step
  and weights are re-masked after it (Adam's momentum cannot revive them). Targets are
  Polyak-averaged, then masked with the online masks.
- RigL topology update (:func:`rigl_update`) every ``delta`` = ``--rlx2-delta`` (10,000)
  optimizer steps *of that network* while ``t < T_end``: drop the ``floor(zeta_t *
  n_active)`` active weights of smallest ``|w|``, grow as many entries of largest dense
  ``|grad|`` among those inactive after the drop (RigL: a just-dropped entry may win back),
  newly grown weights start at 0; the network's optimizer step of that update is skipped
  (as in RigL and the authors' code). ``zeta_t = zeta0 / 2 * (1 + cos(pi t / T_end))``,
  ``zeta0 = 0.5``. The actor is updated every ``policy_frequency`` (2) critic updates, so its
  counter ``t`` counts actor updates and its ``T_end`` is the critic's divided by 2.
  ``T_end`` = ``--rlx2-t-end`` (1.0) x the gradient updates of the run (``steps -
  learning_starts``), the authors' code's choice (RigL itself stops at 75%).
  Adam moments are not reset on a topology change, as in the authors' code (whose reset only
  touches SGD momentum; RigL's own code zeroes every optimizer slot of a grown weight): a pruned
  weight's gradient is masked, so its moments decay by 0.9 / 0.999 per step, to ~0 / 4.5e-5
  of their old values after 10,000 steps, close to RigL's reset at the default delta.
- Multi-step TD target, n = ``--rlx2-nstep`` (3), from gradient update
  ``round(--rlx2-nstep-start x steps)`` on (0.3: the paper's 300k of 1M); 1-step before.
  Truncated at episode ends and at the write head (:mod:`rl.replay`).
- Dynamic buffer capacity: every ``--rlx2-buffer-check-every`` (10,000) env steps, the
  policy mismatch D on the ``--rlx2-mismatch-samples`` (2048) oldest transitions
  (:func:`rl.replay.policy_mismatch`); if ``D > --rlx2-buffer-threshold`` (0.2) and size >
  ``--rlx2-buffer-min-size`` (1e5), the oldest ``--rlx2-buffer-drop-fraction`` (0.1) of the
  live transitions are dropped. All as in the paper.

Schedule lengths (``T_end``, the n-step start) are fixed when a run starts and kept in the
checkpoint, so resuming with a larger ``--steps`` continues the original schedule.
"""

from __future__ import annotations

import math
from typing import Any, Iterable, Mapping, NamedTuple

import torch
from torch import nn

from hwmodel.errors import NmlabError
from hwmodel.sparsity import DENSE, UNSTRUCTURED, Pattern
from rl.methods import LAYER_KEYS, Method, keyed_layers, parse_overrides, parse_target
from rl.nm_layers import NMLinear, apply_masks, nm_layers
from rl.replay import policy_mismatch, should_shrink


# ----------------------------------------------------------------------------- pure pieces
def erk_densities(shapes: Mapping[str, tuple[int, int]], sparsity: float, dense: Iterable[str] = ()) -> dict[str, float]:
    """Erdos-Renyi-Kernel densities (Evci et al., RigL) of linear layers for an overall sparsity.

    Solves ``sum_l d_l * n_l = (1 - sparsity) * sum_l n_l`` with ``d_l = eps * (in_l + out_l)
    / (in_l * out_l)``; layers whose density would exceed 1 are kept dense (density 1) and
    ``eps`` is solved again over the others.

    Args:
        shapes: layer name -> (out_features, in_features).
        sparsity: fraction of the weights of all these layers to remove, in [0, 1).
        dense: names of layers that must stay dense (they use up part of the budget).
    Raises:
        NmlabError: when the dense layers alone hold more than the weights to keep.
    """
    if not 0.0 <= sparsity < 1.0:
        raise NmlabError(f"sparsity: must be a fraction of weights removed in [0, 1), got {sparsity}")
    sizes = {k: out * inp for k, (out, inp) in shapes.items()}
    keep_total = (1.0 - sparsity) * sum(sizes.values())
    fixed = set(dense)
    raw = {k: (out + inp) / (out * inp) for k, (out, inp) in shapes.items()}
    while True:
        free = [k for k in shapes if k not in fixed]
        budget = keep_total - sum(sizes[k] for k in fixed)
        if not free:
            if budget < -0.5:
                raise NmlabError(f"sparsity: {sparsity} keeps fewer weights than the dense layers hold")
            break
        if budget <= 0:
            raise NmlabError(f"sparsity: {sparsity} keeps fewer weights than the dense layers {sorted(fixed)} hold")
        eps = budget / sum(raw[k] * sizes[k] for k in free)
        over = [k for k in free if eps * raw[k] > 1.0]
        if not over:
            break
        fixed.update(over)  # capping only raises eps, so every layer over 1 now stays over 1
    return {k: 1.0 if k in fixed else eps * raw[k] for k in shapes}


def topk_mask(scores: torch.Tensor, k: int) -> torch.Tensor:
    """Bool mask (shape of ``scores``) of the ``k`` largest scores; ties go to the lower flat index."""
    flat = scores.detach().reshape(-1)
    order = torch.sort(flat, descending=True, stable=True).indices
    mask = torch.zeros(flat.numel(), dtype=torch.bool, device=flat.device)
    mask[order[:k]] = True
    return mask.view(scores.shape)


def drop_fraction(t: int, t_end: int, zeta0: float = 0.5) -> float:
    """RLx2 / RigL cosine-annealed drop fraction ``zeta0 / 2 * (1 + cos(pi t / t_end))``;
    0 from ``t_end`` on (the topology is then fixed).

    Args:
        t: optimizer steps of the network so far.
        t_end: steps after which no topology updates happen.
        zeta0: drop fraction at t = 0.
    """
    if t >= t_end:
        return 0.0
    return zeta0 / 2.0 * (1.0 + math.cos(math.pi * t / t_end))


class RigLStep(NamedTuple):
    """What one :func:`rigl_update` did to a layer (bool masks are [out, in])."""

    n_drop: int  # weights dropped (= weights grown): floor(fraction * n_active)
    dropped: torch.Tensor  # active before, chosen to drop (smallest |w|)
    grown: torch.Tensor  # inactive after the drop, chosen to grow (largest |grad|)
    changed: int  # mask entries that differ from before (regrown entries do not count)


@torch.no_grad()
def rigl_update(weight: torch.Tensor, mask: torch.Tensor, grad: torch.Tensor, fraction: float) -> tuple[torch.Tensor, RigLStep]:
    """One RigL drop/grow step of a layer; the active count stays the same.

    Drops ``floor(fraction * n_active)`` active entries of smallest ``|weight|``, grows as
    many of largest ``|grad|`` among the entries inactive after the drop (ties: lower flat
    index first, both ways), and sets ``weight`` of newly active entries to 0 in place
    (an entry dropped and regrown at once keeps its value: it never left the network).

    Args:
        weight: latent weight [out, in] (modified in place: newly grown entries -> 0).
        mask: current bool mask [out, in].
        grad: dense gradient of the loss w.r.t. the effective weight [out, in].
        fraction: drop fraction zeta_t in [0, 1].
    Returns:
        (new mask, :class:`RigLStep`).
    """
    n_active = int(mask.sum())
    n_drop = int(fraction * n_active)
    inf = torch.tensor(float("inf"), dtype=weight.dtype, device=weight.device)
    # Drop: the n_drop smallest |w| among active entries = complement of the largest ones kept.
    keep = topk_mask(torch.where(mask, weight.abs(), -inf), n_active - n_drop)
    dropped = mask & ~keep
    grown = topk_mask(torch.where(keep, -inf, grad.abs().to(weight.dtype)), n_drop)
    new_mask = keep | grown
    fresh = new_mask & ~mask
    weight.masked_fill_(fresh, 0.0)
    return new_mask, RigLStep(n_drop, dropped, grown, int((new_mask != mask).sum()))


def resolve_sparsities(args: Any) -> tuple[float, float]:
    """(actor, critic) fractions of weights removed: ``--actor-sparsity`` / ``--critic-sparsity``
    or else ``--sparsity``; each must be a fraction in [0, 1)."""
    out = []
    for kind in ("actor", "critic"):
        own = (getattr(args, f"{kind}_sparsity", "") or "").strip()
        text, field = (own, f"{kind}_sparsity") if own else (args.sparsity, "sparsity")
        if str(text).strip().lower() == "dense":
            raise NmlabError(f"{field}: --method rlx2 needs a fraction of weights removed (e.g. --sparsity 0.9), not 'dense'")
        value = parse_target(text, field)
        if isinstance(value, Pattern):
            raise NmlabError(f"{field}: --method rlx2 trains unstructured sparsity; give a fraction removed (0.9), not {text!r}")
        out.append(float(value))
    return out[0], out[1]


# ----------------------------------------------------------------------------- the method
class RLx2Method(Method):
    """RLx2 behind the :mod:`rl.methods` hooks (see the module doc for the algorithm).

    Args:
        args: the run's :class:`rl.td3.Args` (``sparsity`` / ``actor_sparsity`` /
            ``critic_sparsity`` fractions, ``layer_sparsity`` dense overrides, ``rlx2_*`` knobs).
    """

    name = "rlx2"
    stores_behavior_actions = True

    def __init__(self, args: Any) -> None:
        super().__init__(args)
        self.actor_sparsity, self.critic_sparsity = resolve_sparsities(args)
        overrides = parse_overrides(args.layer_sparsity)
        self._patterns: dict[str, Pattern] = {}
        for key in LAYER_KEYS:
            pat = overrides.get(key, overrides.get(key.split(".")[1]))
            if pat is not None and pat.kind != "dense":
                raise NmlabError(f"layer_sparsity: {key}: --method rlx2 accepts only 'dense' overrides, not {str(pat)!r}")
            self._patterns[key] = DENSE if pat is not None else UNSTRUCTURED
        learning_updates = max(args.steps - args.learning_starts, 0)
        # Frozen at the start of a run (checkpointed): --steps may grow on resume.
        self.t_end = {"critic": int(args.rlx2_t_end * learning_updates)}
        self.t_end["actor"] = self.t_end["critic"] // args.policy_frequency
        self.nstep_start = int(round(args.rlx2_nstep_start * args.steps))
        self.densities: dict[str, float] = {}
        self.topology_updates = {"critic": 0, "actor": 0}
        self._pending_sync = {"critic": False, "actor": False}  # targets still hold older masks
        self._report: dict[str, float] = {}

    # -- configuration
    def layer_patterns(self) -> dict[str, Pattern]:
        return dict(self._patterns)

    def layer_options(self) -> dict[str, Any]:
        # Straight-through with no decay: W.grad is the dense gradient of the effective weight
        # (RigL grows by it); after_backward masks it before the optimizer sees it.
        return {"decay": 0.0, "straight_through": True}

    def validate(self) -> None:
        super().validate()
        a = self.args
        if not isinstance(a.rlx2_delta, int) or a.rlx2_delta < 1:
            raise NmlabError(f"rlx2_delta: must be a positive integer, got {a.rlx2_delta!r}")
        if not 0.0 <= a.rlx2_zeta <= 1.0:
            raise NmlabError(f"rlx2_zeta: must be in [0, 1], got {a.rlx2_zeta}")
        if not 0.0 <= a.rlx2_t_end <= 1.0:
            raise NmlabError(f"rlx2_t_end: must be in [0, 1], got {a.rlx2_t_end}")
        if not isinstance(a.rlx2_nstep, int) or a.rlx2_nstep < 1:
            raise NmlabError(f"rlx2_nstep: must be a positive integer, got {a.rlx2_nstep!r}")
        if not 0.0 <= a.rlx2_nstep_start <= 1.0:
            raise NmlabError(f"rlx2_nstep_start: must be in [0, 1], got {a.rlx2_nstep_start}")
        if not isinstance(a.rlx2_buffer_check_every, int) or a.rlx2_buffer_check_every < 1:
            raise NmlabError(f"rlx2_buffer_check_every: must be a positive integer, got {a.rlx2_buffer_check_every!r}")
        if a.rlx2_buffer_threshold < 0:
            raise NmlabError(f"rlx2_buffer_threshold: must be >= 0, got {a.rlx2_buffer_threshold}")
        if not isinstance(a.rlx2_buffer_min_size, int) or a.rlx2_buffer_min_size < 0:
            raise NmlabError(f"rlx2_buffer_min_size: must be an integer >= 0, got {a.rlx2_buffer_min_size!r}")

    def sparsity_label(self) -> str:
        a, c = self.actor_sparsity, self.critic_sparsity
        return f"{a:g}" if a == c else f"{a:g}/{c:g}"

    def target_text(self, kind: str) -> str:
        """The target sparsity of ``kind`` ('actor'/'critic') as text ('0.98'), for export meta."""
        return repr(self.actor_sparsity if kind == "actor" else self.critic_sparsity)

    def td_steps(self, update_step: int) -> int:
        """n of the TD target of gradient update ``update_step`` (1-based)."""
        return self.args.rlx2_nstep if update_step >= self.nstep_start else 1

    # -- masks
    @staticmethod
    def _kind_layers(nets: Mapping[str, nn.Module], kind: str) -> list[tuple[str, NMLinear]]:
        names = ("actor",) if kind == "actor" else ("qf1", "qf2")
        return [pair for n in names for pair in keyed_layers(n, nets[n])]

    def _erk(self, nets: Mapping[str, nn.Module]) -> dict[str, float]:
        """ERK density of every layer key (from the layer shapes; layers forced dense count as dense)."""
        densities: dict[str, float] = {}
        for kind, sparsity in (("actor", self.actor_sparsity), ("critic", self.critic_sparsity)):
            pairs = self._kind_layers(nets, kind)
            shapes = {key: tuple(layer.weight.shape) for key, layer in pairs}
            dense = [key for key in shapes if self._patterns[key].kind == "dense"]
            densities.update(erk_densities(shapes, sparsity, dense))
        return densities

    @torch.no_grad()
    def init_masks(self, nets: dict[str, nn.Module]) -> None:
        self.densities = self._erk(nets)
        for kind in ("actor", "critic"):
            for key, layer in self._kind_layers(nets, kind):
                if layer.sparse and self.densities[key] < 1.0:
                    k = int(round(self.densities[key] * layer.weight.numel()))
                    layer.set_mask(topk_mask(layer.weight.abs(), k))
                    layer.weight.mul_(layer.mask_f)
        for name in ("actor", "qf1", "qf2"):
            self._sync_target(nets[name], nets[f"{name}_target"], copy_weights=True)

    def prepare(self, nets: dict[str, nn.Module], global_step: int) -> None:
        # A layer ERK keeps at density 1 is dense: no mask work in training, exported as dense.
        # Its mask is all ones, so W * mask == W and results do not change.
        self.densities = self._erk(nets)
        for name, net in nets.items():
            for key, layer in keyed_layers(name, net):
                if self.densities[key] >= 1.0:
                    layer.pattern = DENSE

    @staticmethod
    @torch.no_grad()
    def _sync_target(online: nn.Module, target: nn.Module, copy_weights: bool = False) -> None:
        for src, dst in zip(nm_layers(online), nm_layers(target)):
            if not src.sparse:
                continue
            dst.set_mask(src.mask)
            if copy_weights:
                dst.weight.copy_(src.weight)
            else:
                dst.weight.mul_(dst.mask_f)

    def _steps_of(self, kind: str, update_step: int) -> int:
        return update_step if kind == "critic" else update_step // self.args.policy_frequency

    def _is_topology_step(self, kind: str, update_step: int) -> bool:
        t = self._steps_of(kind, update_step)
        return t % self.args.rlx2_delta == 0 and t < self.t_end[kind]

    # -- hooks
    @torch.no_grad()
    def after_backward(self, kind: str, modules: tuple[nn.Module, ...], update_step: int) -> None:
        layers = [layer for m in modules for layer in nm_layers(m) if layer.sparse]
        if self._is_topology_step(kind, update_step):
            zeta = drop_fraction(self._steps_of(kind, update_step), self.t_end[kind], self.args.rlx2_zeta)
            changed = total = dropped = 0
            for layer in layers:
                new_mask, step = rigl_update(layer.weight, layer.mask, layer.weight.grad, zeta)
                layer.set_mask(new_mask)
                layer.weight.mul_(layer.mask_f)
                changed, total, dropped = changed + step.changed, total + layer.mask.numel(), dropped + step.n_drop
            # RigL skips the network's optimizer step at a topology update (a None grad is skipped by Adam).
            for m in modules:
                for p in m.parameters():
                    p.grad = None
            self.topology_updates[kind] += 1
            self._pending_sync[kind] = True
            r = self._report
            r["mask_changed"] = r.get("mask_changed", 0) + changed
            r["mask_total"] = r.get("mask_total", 0) + total
            r[f"{kind}_drop_fraction"] = zeta
            r[f"{kind}_dropped"] = dropped
            return
        for layer in layers:
            layer.weight.grad.mul_(layer.mask_f)

    def after_optimizer_step(self, kind: str, modules: tuple[nn.Module, ...], update_step: int) -> None:
        apply_masks(modules)

    @torch.no_grad()
    def after_polyak(self, pairs: list[tuple[nn.Module, nn.Module]]) -> None:
        # Masks only change at topology updates; in between target and online masks are equal
        # and the Polyak average of two zeros stays zero, so there is nothing to do.
        if any(self._pending_sync.values()):
            for online, target in pairs:
                self._sync_target(online, target)
            self._pending_sync = {"critic": False, "actor": False}

    def on_update(self, update_step: int, global_step: int, nets: dict[str, nn.Module]) -> dict[str, float]:
        out = self._report
        self._report = {}
        if update_step == max(self.nstep_start, 1) and self.args.rlx2_nstep > 1:
            out["td_steps"] = self.args.rlx2_nstep
        return out

    def on_env_step(self, global_step: int, buffer: Any, actor: nn.Module) -> dict[str, float]:
        if global_step % self.args.rlx2_buffer_check_every or buffer.size == 0:
            return {}
        mismatch = policy_mismatch(buffer, actor, actor.action_scale, self.args.rlx2_mismatch_samples,
                                   device=str(actor.action_scale.device))
        dropped = 0
        if should_shrink(mismatch, buffer.size, self.args.rlx2_buffer_threshold, self.args.rlx2_buffer_min_size):
            dropped = buffer.drop_oldest(self.args.rlx2_buffer_drop_fraction)
        return {"buffer_mismatch": mismatch, "buffer_size": buffer.size, "buffer_dropped": dropped}

    # -- checkpoint
    def state_dict(self) -> dict[str, Any]:
        return {"t_end_critic": self.t_end["critic"], "t_end_actor": self.t_end["actor"], "nstep_start": self.nstep_start,
                "topology_updates_critic": self.topology_updates["critic"],
                "topology_updates_actor": self.topology_updates["actor"],
                "pending_sync_critic": self._pending_sync["critic"], "pending_sync_actor": self._pending_sync["actor"],
                "densities": dict(self.densities)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if not state:
            raise NmlabError("checkpoint: method_state: an rlx2 run's checkpoint must hold its schedule")
        self.t_end = {"critic": int(state["t_end_critic"]), "actor": int(state["t_end_actor"])}
        self.nstep_start = int(state["nstep_start"])
        self.topology_updates = {"critic": int(state["topology_updates_critic"]), "actor": int(state["topology_updates_actor"])}
        self._pending_sync = {"critic": bool(state["pending_sync_critic"]), "actor": bool(state["pending_sync_actor"])}
        # densities are recomputed from the layer shapes in prepare()
