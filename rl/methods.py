"""Sparse-training methods behind one interface: the TD3 loop (rl/td3.py) calls their hooks.

``nmlab train --method {td3,rnm,rlx2,gmp}``. Without ``--method`` the method is inferred as
before this module existed: ``td3`` when every layer is dense, else ``rnm`` (RNM-TD3), so
old commands and checkpoints (whose args have no ``method``) keep working.

Contract (what the loop calls, in this order, and what a method may do there):

``layer_patterns()``
    The pattern of every layer key ``actor.fc1`` .. ``critic.fc3`` (``critic`` = both
    critics): an N:M :class:`Pattern`, dense, or unstructured (mask owned by the method).
``layer_options()``
    ``decay`` and ``straight_through`` for every :class:`rl.nm_layers.NMLinear`.
``init_masks(nets)``
    Fresh runs only: after the six networks are built (targets are copies of the online
    networks), before training. Must leave every target mask equal to its online mask.
``prepare(nets, global_step)``
    Every run (fresh, resumed, and ``nmlab export``/``evaluate`` loading a checkpoint):
    after the networks are built and loaded. Sets derived per-layer state that is not in
    the state dicts (QAT bits) for the given number of env steps done, and may keep
    ``nets`` for the env-step hook.
``on_env_step(global_step, buffer, actor) -> dict``
    After each env step's transition is stored, before that step's gradient update (if
    any). ``global_step`` = env steps done (1-based). GMP prunes and switches QAT on here
    (so both happen on schedule also during the random-action phase); RLx2 checks its
    dynamic-capacity buffer.
``after_backward(kind, modules, update_step)``
    Gradients exist, the optimizer has not stepped; ``kind`` is "critic" (modules = both
    critics) or "actor" (modules = the actor). ``update_step`` = this update's 1-based
    number. Mask gradients of pruned weights here; RigL records dense gradients.
``after_optimizer_step(kind, modules, update_step)``
    After the optimizer step: re-mask weights (``W *= mask``) so Adam momentum cannot
    revive pruned weights.
``after_polyak(pairs)``
    After the Polyak update of every (online, target) pair: e.g. targets take the online
    masks and are masked.
``on_update(update_step, global_step, nets) -> dict``
    After every gradient update (critic, then the delayed actor and Polyak). Schedules
    that count gradient updates (RNM mask re-projection, RigL drop/grow) run here.
``td_steps(update_step) -> int``
    Before each gradient update's minibatch is drawn: n of its n-step TD target (1 = TD3;
    RLx2 switches to 3 after a delay). ``stores_behavior_actions`` (class attribute): the
    replay buffer keeps each transition's noise-free policy action.
``state_dict()`` / ``load_state_dict(state)``
    Saved in the checkpoint as ``method_state`` (plain types and tensors only); a
    checkpoint without it loads ``{}``. Resume must be bit-exact.

Returned dicts are scalars to log: keys ``mask_changed`` and ``mask_total`` become a row of
``sad.csv`` (SAD = changed / total); every other key becomes a row ``step,update,name,value``
of ``method.csv`` and a TensorBoard scalar ``method/<name>``.
"""

from __future__ import annotations

import math
from typing import Any

from torch import nn

from hwmodel.agents import parse_layer_overrides
from hwmodel.errors import NmlabError
from hwmodel.sparsity import Pattern, parse_pattern
from rl.nm_layers import NMLinear, nm_layers, update_masks

#: Layer keys, in network order; ``critic.*`` applies to both critics.
LAYER_KEYS = tuple(f"{kind}.{fc}" for kind in ("actor", "critic") for fc in ("fc1", "fc2", "fc3"))
#: ``--method`` values (aliases map to the canonical name); "" = infer from the patterns.
METHOD_ALIASES = {"td3": "td3", "rnm": "rnm", "rnm-td3": "rnm", "rlx2": "rlx2", "gmp": "gmp"}
#: Name recorded in workload meta and quality rows (rnm keeps its earlier name).
DISPLAY_NAMES = {"td3": "td3", "rnm": "rnm-td3", "rlx2": "rlx2", "gmp": "gmp"}


def keyed_layers(name: str, net: nn.Module) -> list[tuple[str, NMLinear]]:
    """(layer key, layer) of every layer of ``net``, in order; ``name`` is its key among the six
    networks of ``rl.td3.build_networks``: the actor and its target have keys ``actor.fc1`` ..
    ``actor.fc3``, both critics and their targets ``critic.fc1`` .. ``critic.fc3``."""
    kind = "actor" if name.startswith("actor") else "critic"
    return [(f"{kind}.fc{i + 1}", layer) for i, layer in enumerate(nm_layers(net))]


def parse_overrides(spec: str) -> dict[str, Pattern]:
    """``--layer-sparsity`` -> {``fcK`` / ``actor.fcK`` / ``critic.fcK``: Pattern}."""
    return parse_layer_overrides(spec)


def nm_layer_patterns(sparsity: str, layer_sparsity: str) -> dict[str, Pattern]:
    """TD3 / RNM-TD3 patterns: ``sparsity`` ("N:M" or "dense") with per-layer overrides."""
    try:
        base = parse_pattern(sparsity, field="sparsity", allow_unstructured=False)
    except NmlabError as exc:
        try:
            float(str(sparsity))
        except ValueError:
            raise exc from None
        # `--sparsity 0.9` without --method (as docs/rl.md's gmp and rlx2 examples pass it) only
        # said "not a sparsity pattern": say which methods take a fraction.
        raise NmlabError(f"{exc}; a fraction removed ({str(sparsity)[:20]}) is for --method rlx2 or gmp") from None
    overrides = parse_overrides(layer_sparsity)
    return {key: overrides.get(key, overrides.get(key.split(".")[1], base)) for key in LAYER_KEYS}


def parse_target(text: str, field: str) -> float | Pattern:
    """A pruning/sparse-training target: a fraction of weights removed in [0, 1) or "N:M"."""
    s = str(text).strip()
    if ":" in s:
        return parse_pattern(s, field=field, allow_unstructured=False)
    try:
        value = float(s)
    except ValueError:
        raise NmlabError(f"{field}: {text!r} is neither a fraction of weights removed (0.9) nor an N:M pattern") from None
    if not 0.0 <= value < 1.0 or math.isnan(value):
        raise NmlabError(f"{field}: must be a fraction of weights removed in [0, 1), got {text!r}")
    return value


def resolve_method(args: Any) -> str:
    """Canonical method name of ``args`` (``--method`` or, when empty, inferred as before)."""
    given = (getattr(args, "method", "") or "").strip().lower()
    if given:
        if given not in METHOD_ALIASES:
            raise NmlabError(f"method: {args.method!r} is not one of td3, rnm, rlx2, gmp")
        return METHOD_ALIASES[given]
    pats = nm_layer_patterns(args.sparsity, args.layer_sparsity)
    return "td3" if all(not p.is_nm for p in pats.values()) else "rnm"


# ----------------------------------------------------------------------------- base and TD3 / RNM-TD3
class Method:
    """Base: no hooks do anything; the subclasses override what they need (see the module doc).

    Args:
        args: the run's :class:`rl.td3.Args`.
    """

    name = "base"
    #: True when the method's schedules depend on ``--steps`` (then a resume may not change it).
    schedule_uses_steps = False
    #: The replay buffer keeps each transition's noise-free policy action (RLx2's policy mismatch).
    stores_behavior_actions = False

    def __init__(self, args: Any) -> None:
        self.args = args

    def layer_patterns(self) -> dict[str, Pattern]:
        raise NotImplementedError

    def layer_options(self) -> dict[str, Any]:
        return {"decay": self.args.srste_decay, "straight_through": self.args.straight_through}

    def validate(self) -> None:
        """One-line NmlabError naming a knob this method cannot use."""
        if self.args.qat_bits:
            raise NmlabError(f"qat_bits: quantization-aware training needs --method gmp, not {self.name}")

    def init_masks(self, nets: dict[str, nn.Module]) -> None:
        pass

    def td_steps(self, update_step: int) -> int:
        """n of the TD target of gradient update ``update_step`` (1-based); 1 = TD3's 1-step target."""
        return 1

    def prepare(self, nets: dict[str, nn.Module], global_step: int) -> None:
        pass

    def on_env_step(self, global_step: int, buffer: Any, actor: nn.Module) -> dict[str, float]:
        return {}

    def after_backward(self, kind: str, modules: tuple[nn.Module, ...], update_step: int) -> None:
        pass

    def after_optimizer_step(self, kind: str, modules: tuple[nn.Module, ...], update_step: int) -> None:
        pass

    def after_polyak(self, pairs: list[tuple[nn.Module, nn.Module]]) -> None:
        pass

    def on_update(self, update_step: int, global_step: int, nets: dict[str, nn.Module]) -> dict[str, float]:
        return {}

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass

    def sparsity_label(self) -> str:
        """The run's sparsity as recorded in workload meta and quality rows."""
        return str(parse_pattern(self.args.sparsity, allow_unstructured=False))


class TD3Method(Method):
    """Dense TD3, or RNM-TD3 when some layer is N:M: masks re-projected from the latent
    weights every ``mask_update_interval`` gradient updates (online and targets)."""

    name = "td3"

    def __init__(self, args: Any) -> None:
        super().__init__(args)
        self._patterns = nm_layer_patterns(args.sparsity, args.layer_sparsity)

    def layer_patterns(self) -> dict[str, Pattern]:
        return dict(self._patterns)

    def validate(self) -> None:
        super().validate()
        for kind in ("actor", "critic"):
            if (getattr(self.args, f"{kind}_sparsity", "") or "").strip():
                # Silently training every layer at --sparsity instead would be worse.
                raise NmlabError(f"{kind}_sparsity: per-network targets are for --method rlx2 or gmp; td3/rnm set "
                                 f"layers with --sparsity and --layer-sparsity ('{kind}.fc2=1:8')")

    def on_update(self, update_step: int, global_step: int, nets: dict[str, nn.Module]) -> dict[str, float]:
        if update_step % self.args.mask_update_interval:
            return {}
        changed, total = update_masks((nets["actor"], nets["qf1"], nets["qf2"]))
        update_masks((nets["actor_target"], nets["qf1_target"], nets["qf2_target"]))  # their own latent weights
        return {"mask_changed": changed, "mask_total": total} if total else {}


class RNMMethod(TD3Method):
    """RNM-TD3 (same mechanics as :class:`TD3Method`; needs at least one N:M layer)."""

    name = "rnm"

    def validate(self) -> None:
        super().validate()
        if all(not p.is_nm for p in self._patterns.values()):
            raise NmlabError("sparsity: --method rnm needs an N:M pattern ('2:4'), not dense")


class DenseTD3Method(TD3Method):
    """``--method td3`` given explicitly: every layer must be dense."""

    def validate(self) -> None:
        super().validate()
        if any(p.is_nm for p in self._patterns.values()):
            raise NmlabError("sparsity: --method td3 is dense TD3; use --method rnm (or no --method) for N:M")


# ----------------------------------------------------------------------------- factory
def make_method(args: Any) -> Method:
    """The method object of ``args`` (validated: bad knobs are one-line NmlabErrors)."""
    name = resolve_method(args)
    if name == "td3":
        method: Method = DenseTD3Method(args)
    elif name == "rnm":
        method = RNMMethod(args)
    elif name == "gmp":
        from rl.gmp import GMPMethod  # imported here: rl.gmp imports this module

        method = GMPMethod(args)
    elif name == "rlx2":
        method = _make_rlx2(args)
    else:  # pragma: no cover - resolve_method only returns the names above
        raise NmlabError(f"method: unknown {name!r}")
    method.validate()
    return method


def _make_rlx2(args: Any) -> Method:
    try:
        from rl.rlx2 import RLx2Method
    except ImportError:
        raise NmlabError("method: rlx2 is not available in this version") from None
    return RLx2Method(args)
