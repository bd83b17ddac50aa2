"""Which GEMMs and element-wise updates a scenario runs on a workload, in result order.

* ``inference``: one forward pass of the policy (the ``actor`` network when the workload has
  one, else the only network; several networks without an ``actor`` are refused) -- the control loop.
* ``train_step``: one TD3 update, amortized per environment step (policy_delay = 2):
  critic update every step (target actor + both target critics forward for the TD target,
  both critics forward, backward-data except into the first layer, weight gradients, Adam),
  and every ``policy_delay`` steps an actor update (actor forward, critic1 forward and
  backward-data down to the action input, actor backward-data and weight gradients, Adam) plus
  Polyak averaging of the three target networks (element-wise traffic). Actor-update entries
  carry ``times_per_step = 1/policy_delay``.

A :class:`Program` depends on the workload's layers only, not on the design, bitwidth or
batch: it is built once and evaluated for any number of design points. It is the one
definition of a scenario's work: the accelerator model (``hwmodel.mapped_program``) and the
GPU design point (``hwmodel.gpu.design_point``) both run its entries, with each GEMM's
orientation from :meth:`GemmEntry.dims`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hwmodel.errors import NmlabError
from hwmodel.workload import Layer, Workload

SCENARIOS = ("inference", "train_step")
FORWARD, BACKWARD_DATA, BACKWARD_WEIGHT = "forward", "backward_data", "backward_weight"
#: A GEMM dimension of :meth:`GemmEntry.dims` that is the batch.
BATCH = 0


@dataclass(frozen=True)
class GemmEntry:
    """One GEMM of a layer: ``layer`` indexes :attr:`Program.layers`; ``first``/``last``: the network's
    first/last layer in a forward pass (its input comes from / output goes to DRAM); ``update``:
    the update it belongs to (``critic_update``, ``actor_update``, "" for inference) run
    ``times`` per step."""

    layer: int
    phase: str
    first: bool
    last: bool
    update: str
    times: float

    @property
    def transposed(self) -> bool:
        """The GEMM multiplies by W^T (backward-data): sparsity is looked for along W's rows."""
        return self.phase == BACKWARD_DATA

    @property
    def sparse_weights(self) -> bool:
        """The GEMM's stationary operand is the layer's (masked) weights; a weight gradient's is dense."""
        return self.phase != BACKWARD_WEIGHT

    def dims(self, layer: Layer) -> tuple[int, int, int]:
        """(M, K, N) of this GEMM of ``layer`` (M x K . K x N), :data:`BATCH` where it is the batch:
        forward (B, in, out), backward-data (B, out, in), weight gradient (out, B, in)."""
        i, o = layer.in_features, layer.out_features
        if self.phase == FORWARD:
            return BATCH, i, o
        if self.phase == BACKWARD_DATA:
            return BATCH, o, i
        return o, BATCH, i


@dataclass(frozen=True)
class ElementwiseEntry:
    """An element-wise update (Adam, Polyak) of ``elements`` weights: per element it reads
    ``read_bits_per_bit * bits + read_bits_extra`` bits and writes likewise; ``always_dram``:
    its operands live in DRAM whatever the weights' residency (Adam's fp32 moments)."""

    name: str
    network: str
    phase: str
    elements: int
    read_bits_per_bit: int
    read_bits_extra: int
    write_bits_per_bit: int
    write_bits_extra: int
    always_dram: bool
    update: str
    times: float


@dataclass
class Program:
    """The scenario's work on a workload.

    layers: every layer any entry uses (target networks added when the file omits them).
    touched: indices of the layers whose weights the scenario needs (residency is decided on them).
    entries: GEMMs and element-wise updates in result order.
    """

    scenario: str
    policy_delay: int
    layers: list[Layer]
    touched: list[int]
    entries: list = field(default_factory=list)

    @property
    def gemms(self) -> list[GemmEntry]:
        return [e for e in self.entries if isinstance(e, GemmEntry)]

    @property
    def elementwise(self) -> list[ElementwiseEntry]:
        return [e for e in self.entries if isinstance(e, ElementwiseEntry)]

    def network_names(self) -> list[str]:
        """Networks in the order results list them."""
        names = [self.layers[e.layer].network if isinstance(e, GemmEntry) else e.network for e in self.entries]
        return list(dict.fromkeys(names))


def networks_for(wl: Workload, scenario: str) -> dict[str, list[Layer]]:
    """``wl``'s layers by network, once the file has the networks ``scenario`` runs (NmlabError, one
    line, when not): inference the ``actor`` (or the file's one network), train_step ``actor``,
    ``critic1`` and ``critic2``. A sweep checks it when it plans, before any point."""
    nets: dict[str, list[Layer]] = {}
    for layer in wl.layers:
        nets.setdefault(layer.network, []).append(layer)
    if scenario == "inference":
        if "actor" not in nets and len(nets) > 1:
            # The critics are no part of the policy's forward pass: without an actor the file cannot say which is.
            raise NmlabError(f"workload: inference runs the policy, the network named 'actor'; this file's networks are "
                             f"{', '.join(nets)}: set layers[].network to 'actor' for the policy's layers "
                             f"(docs/workload.md)")
        return nets
    missing = [x for x in ("actor", "critic1", "critic2") if x not in nets]
    if missing:
        raise NmlabError(f"workload: train_step needs networks actor, critic1 and critic2 (a TD3 update); missing "
                         f"{', '.join(missing)} (this file's networks: {', '.join(nets)}); name the twin critics' layers' "
                         f"network critic1 and critic2 (docs/workload.md), or model the inference scenario only")
    return nets


def build_program(wl: Workload, scenario: str, policy_delay: int = 2) -> Program:
    """The entries of ``scenario`` on ``wl`` (NmlabError when train_step lacks a network)."""
    if scenario not in SCENARIOS:
        raise NmlabError(f"scenario: must be one of {', '.join(SCENARIOS)}, got {scenario!r}")
    nets = networks_for(wl, scenario)
    if scenario == "inference":
        run_nets = ["actor"] if "actor" in nets else list(nets)
        layers = [layer for net in run_nets for layer in nets[net]]
        prog = Program(scenario, policy_delay, layers, list(range(len(layers))))
        index = {id(x): i for i, x in enumerate(layers)}
        for net in run_nets:
            _forward(prog, index, nets[net], "", 1.0)
        return prog
    # Target networks share the online networks' shapes and masks when the file omits them.
    for online in ("actor", "critic1", "critic2"):
        nets.setdefault(f"{online}_target", [
            Layer(f"{x.name}@target", f"{online}_target", x.in_features, x.out_features, x.pattern, x.mask,
                  x.weight_bits) for x in nets[online]])
    order = ("actor", "critic1", "critic2", "actor_target", "critic1_target", "critic2_target")
    layers = [x for net in order for x in nets[net]]
    prog = Program(scenario, policy_delay, layers, list(range(len(layers))))
    index = {id(x): i for i, x in enumerate(layers)}
    cu, au, t = "critic_update", "actor_update", 1.0 / policy_delay
    for net in ("actor_target", "critic1_target", "critic2_target", "critic1", "critic2"):
        _forward(prog, index, nets[net], cu, 1.0)
    for net in ("critic1", "critic2"):
        _backward(prog, index, nets[net], into_first=False, weight_grads=True, update=cu, times=1.0)
    # Adam: reads weight, gradient, m, v; writes weight, m, v. m and v (fp32) live in DRAM.
    for net in ("critic1", "critic2"):
        prog.entries.append(_adam(net, nets[net], cu, 1.0))
    _forward(prog, index, nets["actor"], au, t)
    _forward(prog, index, nets["critic1"], au, t)
    _backward(prog, index, nets["critic1"], into_first=True, weight_grads=False, update=au, times=t)
    _backward(prog, index, nets["actor"], into_first=False, weight_grads=True, update=au, times=t)
    prog.entries.append(_adam("actor", nets["actor"], au, t))
    for net in ("actor_target", "critic1_target", "critic2_target"):
        prog.entries.append(ElementwiseEntry(f"{net}.polyak", net, "polyak", _params(nets[net]), 2, 0, 1, 0, False,
                                             au, t))
    return prog


def _params(layers: list[Layer]) -> int:
    return sum(x.in_features * x.out_features for x in layers)


def _adam(net: str, layers: list[Layer], update: str, times: float) -> ElementwiseEntry:
    return ElementwiseEntry(f"{net}.adam", net, "optimizer", _params(layers), 2, 64, 1, 64, True, update, times)


def _forward(prog: Program, index: dict, layers: list[Layer], update: str, times: float) -> None:
    for i, layer in enumerate(layers):
        prog.entries.append(GemmEntry(index[id(layer)], FORWARD, i == 0, i == len(layers) - 1, update, times))


def _backward(prog: Program, index: dict, layers: list[Layer], into_first: bool, weight_grads: bool,
              update: str, times: float) -> None:
    for i in reversed(range(len(layers))):
        li = index[id(layers[i])]
        if i > 0 or into_first:
            prog.entries.append(GemmEntry(li, BACKWARD_DATA, False, False, update, times))
        if weight_grads:
            prog.entries.append(GemmEntry(li, BACKWARD_WEIGHT, False, False, update, times))
