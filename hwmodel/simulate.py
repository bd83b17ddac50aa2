"""``hwmodel.simulate``: a workload on a design, per layer, per network and in total.

Scenarios:

* ``inference``: one forward pass of the policy (the ``actor`` network when the workload has
  one, else every network) at batch ``batch`` -- the control loop.
* ``train_step``: one TD3 update, amortized per environment step (policy_delay = 2):
  critic update every step (target actor + both target critics forward for the TD target,
  both critics forward, backward-data except into the first layer, weight gradients, Adam),
  and every ``policy_delay`` steps an actor update (actor forward, critic1 forward and
  backward-data down to the action input, actor backward-data and weight gradients, Adam) plus
  Polyak averaging of the three target networks (element-wise traffic). Actor-update entries
  carry ``times_per_step = 1/policy_delay`` and their figures are scaled by it.

Weights are resident in SRAM across calls when every touched network's weights (as the
hardware stores them, metadata included) fit the weight SRAM: steady state reads no weights
from DRAM. ``residency="cold"`` models the first call after power-up (all weights loaded
once from DRAM), ``"stream"`` forces streaming.
"""

from __future__ import annotations

import os
from dataclasses import fields
from typing import Optional

import numpy as np

from hwmodel.cycles import k_compressed
from hwmodel.design import Design, load_design
from hwmodel.energy import energy_table
from hwmodel.errors import NmlabError
from hwmodel.gpu.design_point import gpu_design, simulate_gpu
from hwmodel.mapping import Mapping, map_weights, mask_nnz, unstructured_metadata_bits
from hwmodel.model import Operands, elementwise, evaluate_gemm
from hwmodel.result import Figures, LayerResult, SimResult
from hwmodel.sparsity import DENSE, parse_pattern
from hwmodel.workload import Layer, Workload, load_workload

SCENARIOS = ("inference", "train_step")
RESIDENCY = ("auto", "cold", "stream")
_DENSE_MAP = Mapping(DENSE, None, "dense reference")


_FIGURE_FIELDS = tuple(x.name for x in fields(Figures))
_pattern_names: dict[str, str] = {}


def _scaled(fig: Figures, f: float) -> Figures:
    return Figures(**{name: getattr(fig, name) * f for name in _FIGURE_FIELDS})


def _pattern_name(text: str) -> str:
    """Normalised pattern text ("2:4", "dense"), memoised: layers repeat the same few strings."""
    name = _pattern_names.get(text)
    if name is None:
        name = _pattern_names[text] = str(parse_pattern(text))
    return name


class _Runner:
    """Evaluates the GEMMs of one simulate() call; knows levels, bits and residency."""

    def __init__(self, design: Design, batch: int, bits: int, residency: str, with_dense: bool):
        self.d = design
        self.batch = batch
        self.bits = bits
        self.bits_a = design.compute.activation_bits or bits
        self.w_level = design.sram_for("weights").name
        self.meta_level = design.sram_for("metadata").name
        self.in_level = design.sram_for("inputs")
        self.out_level = design.sram_for("outputs")
        self.residency = residency
        self.with_dense = with_dense
        self.resident = self.resident_dense = False

    def stored_bytes(self, layer: Layer, mp: Mapping) -> float:
        """Bytes the hardware stores for a layer's weights at mapping ``mp`` (metadata included)."""
        k, n = layer.in_features, layer.out_features
        if not mp.sparse:
            return k * n * self.bits / 8.0
        if mp.row_k is not None:
            # Unstructured: kept values plus the index format's bits (forward orientation).
            nnz = mask_nnz(layer.mask)
            meta = unstructured_metadata_bits(self.d.sparsity.index_format, k, n, nnz)
            return (nnz * self.bits + meta) / 8.0
        hm = mp.hw_pattern.m
        meta = (hm - 1).bit_length()
        if mp.row_n is not None:
            # n * (k // m) + min(k % m, n) summed over rows, vectorised
            slots = float(mp.row_n.sum() * (k // hm) + np.minimum(mp.row_n, k % hm).sum())
        else:
            slots = float(k_compressed(k, mp.hw_pattern.n, hm) * n)
        return slots * (self.bits + meta) / 8.0

    def decide_residency(self, layers: list[Layer], maps: dict[str, Mapping]) -> tuple[float, float]:
        cap = self.d.weight_sram_bytes()
        sparse_bytes = sum(self.stored_bytes(layer, maps[layer.name]) for layer in layers)
        dense_bytes = sum(layer.in_features * layer.out_features * self.bits / 8.0 for layer in layers)
        steady = self.residency == "auto"
        self.resident = steady and sparse_bytes <= cap
        self.resident_dense = steady and dense_bytes <= cap
        return sparse_bytes, dense_bytes

    def _acts_spill(self, m: int, k: int, n: int) -> tuple[bool, bool]:
        """Activations spill to DRAM when a layer's input or output does not fit its SRAM."""
        a = m * k * self.bits_a / 8.0 > self.in_level.capacity_bytes
        o = m * n * self.bits_a / 8.0 > self.out_level.capacity_bytes
        return a, o

    def gemm(self, layer: Layer, phase: str, first: bool, last: bool, mp: Mapping, update: str,
             times: float) -> LayerResult:
        B, k, n = self.batch, layer.in_features, layer.out_features
        if phase == "forward":
            m, kk, nn = B, k, n
        elif phase == "backward_data":
            m, kk, nn = B, n, k
        else:  # backward_weight: dW[out, in] = dY^T[out, B] . X[B, in]
            m, kk, nn = n, B, k
        a_spill, o_spill = self._acts_spill(m, kk, nn)
        a_from = a_spill or (first and phase == "forward")
        o_to = o_spill or (last and phase == "forward")

        def run(mapping: Mapping, resident: bool, nnz: int) -> Figures:
            if phase == "backward_weight":
                ops = Operands(self.in_level.name, self.in_level.name, self.w_level, self.bits_a, self.bits_a,
                               self.bits, False, a_spill, not resident)
            else:
                ops = Operands(self.in_level.name, self.w_level, self.out_level.name, self.bits_a, self.bits,
                               self.bits_a, not resident, a_from, o_to)
            fig = evaluate_gemm(self.d, m, kk, nn, mapping.hw_pattern, ops, nnz, mapping.row_n, self.bits,
                                self.meta_level, mapping.row_k)
            return _scaled(fig, times) if times != 1.0 else fig

        nnz = kk * nn if phase == "backward_weight" or layer.mask is None else mask_nnz(layer.mask)
        fig = run(mp, self.resident, nnz)
        dense = None
        if self.with_dense:
            same = not mp.sparse and self.resident == self.resident_dense and nnz == kk * nn
            dense = fig if same else run(_DENSE_MAP, self.resident_dense, kk * nn)
        return LayerResult(layer.name, layer.network, phase, m, kk, nn, _pattern_name(layer.pattern),
                           str(mp.hw_pattern), mp.note, fig, dense, update, times)

    def elementwise(self, name: str, network: str, phase: str, elements: int, rd: int, wr: int,
                    always_dram: bool, update: str, times: float) -> LayerResult:
        def run(resident: bool) -> Figures:
            fig = elementwise(self.d, elements, rd, wr, self.w_level, always_dram or not resident)
            return _scaled(fig, times)

        fig = run(self.resident)
        dense = run(self.resident_dense) if self.with_dense else None
        return LayerResult(name, network, phase, 1, elements, 1, "dense", "dense",
                           "element-wise, not on the MAC array", fig, dense, update, times)


def _forward(r: _Runner, layers: list[Layer], maps: dict, update: str = "", times: float = 1.0) -> list[LayerResult]:
    return [r.gemm(layer, "forward", i == 0, i == len(layers) - 1, maps[layer.name], update, times)
            for i, layer in enumerate(layers)]


def _backward(r: _Runner, layers: list[Layer], tmaps: dict, into_first: bool, weight_grads: bool,
              update: str, times: float) -> list[LayerResult]:
    out = []
    for i in reversed(range(len(layers))):
        layer = layers[i]
        if i > 0 or into_first:
            out.append(r.gemm(layer, "backward_data", False, False, tmaps[layer.name], update, times))
        if weight_grads:
            out.append(r.gemm(layer, "backward_weight", False, False, _DENSE_MAP_WG, update, times))
    return out


_DENSE_MAP_WG = Mapping(DENSE, None, "weight gradient: dense")


def simulate(workload: Workload | str | os.PathLike, design: Design | str | os.PathLike, batch: int = 1,
             bits: Optional[int] = 8, scenario: str = "inference", residency: str = "auto", policy_delay: int = 2,
             with_dense: bool = True) -> SimResult:
    """Run the model of ``workload`` on ``design``.

    Args:
        workload: a Workload or a workload file path.
        design: a Design, a design YAML path or a bundled design name.
        batch: rows per GEMM (M): 1 for the control loop, the replay batch for train_step.
        bits: weight bitwidth (overrides the workload's weight_bits); activations use the same
            unless the design sets compute.activation_bits. None: the workload's own
            weight_bits (e.g. 8 for a QAT export), which every layer must share.
        scenario: "inference" or "train_step" (one TD3 update amortized per step).
        residency: "auto" (steady state: resident when the weights fit), "cold" (first call:
            weights loaded from DRAM) or "stream" (always streamed).
        policy_delay: TD3's actor-update period (train_step).
        with_dense: also run every GEMM dense for speedup and energy ratios.
    """
    gpu = gpu_design(design)  # a GPU spec as the design point: hwmodel/gpu/design_point.py
    d = load_design(design) if gpu is None else None
    wl = workload if isinstance(workload, Workload) else load_workload(workload)
    if scenario not in SCENARIOS:
        raise NmlabError(f"scenario: must be one of {', '.join(SCENARIOS)}, got {scenario!r}")
    if residency not in RESIDENCY:
        raise NmlabError(f"residency: must be one of {', '.join(RESIDENCY)}, got {residency!r}")
    if isinstance(batch, bool) or not isinstance(batch, (int, np.integer)) or batch < 1:
        raise NmlabError(f"batch: must be a positive integer, got {batch!r}")
    if bits is None:
        wbits = sorted({int(x.weight_bits) for x in wl.layers})
        if len(wbits) != 1:
            first = next(x for x in wl.layers if x.weight_bits != wl.layers[0].weight_bits)
            raise NmlabError(f"bits: the workload's layers have weight_bits {', '.join(map(str, wbits))} "
                             f"(layer {first.name!r}: {first.weight_bits}); give one bitwidth")
        bits = wbits[0]
    if isinstance(bits, bool) or not isinstance(bits, (int, np.integer)):
        raise NmlabError(f"bits: must be an integer, got {bits!r}")
    if isinstance(policy_delay, bool) or not isinstance(policy_delay, int) or policy_delay < 1:
        raise NmlabError(f"policy_delay: must be a positive integer, got {policy_delay!r}")
    if gpu is not None:
        return simulate_gpu(wl, gpu, batch=int(batch), bits=int(bits), scenario=scenario, residency=residency,
                            policy_delay=policy_delay, with_dense=with_dense)
    dt = d.datatype_for(int(bits))
    r = _Runner(d, int(batch), int(bits), residency, with_dense)
    nets: dict[str, list[Layer]] = {}
    for layer in wl.layers:
        nets.setdefault(layer.network, []).append(layer)
    results: list[LayerResult] = []
    if scenario == "inference":
        run_nets = ["actor"] if "actor" in nets else list(nets)
        touched = [layer for net in run_nets for layer in nets[net]]
        maps = {layer.name: map_weights(d, layer.mask, layer.pattern) for layer in touched}
        sparse_b, dense_b = r.decide_residency(touched, maps)
        for net in run_nets:
            results += _forward(r, nets[net], maps)
    else:
        maps = {layer.name: map_weights(d, layer.mask, layer.pattern) for layer in wl.layers}
        missing = [x for x in ("actor", "critic1", "critic2") if x not in nets]
        if missing:
            raise NmlabError(f"workload: train_step needs networks actor, critic1 and critic2; missing {', '.join(missing)}")
        # Target networks share the online networks' shapes and masks when the file omits them.
        for online in ("actor", "critic1", "critic2"):
            nets.setdefault(f"{online}_target", [
                Layer(f"{x.name}@target", f"{online}_target", x.in_features, x.out_features, x.pattern, x.mask,
                      x.weight_bits) for x in nets[online]])
            for x in nets[f"{online}_target"]:
                maps.setdefault(x.name, map_weights(d, x.mask, x.pattern))
        touched = [x for net in ("actor", "critic1", "critic2", "actor_target", "critic1_target", "critic2_target")
                   for x in nets[net]]
        sparse_b, dense_b = r.decide_residency(touched, maps)
        tmaps = {x.name: map_weights(d, x.mask, x.pattern, transposed=True) for x in touched}
        cu, au, t = "critic_update", "actor_update", 1.0 / policy_delay
        for net in ("actor_target", "critic1_target", "critic2_target", "critic1", "critic2"):
            results += _forward(r, nets[net], maps, cu)
        for net in ("critic1", "critic2"):
            results += _backward(r, nets[net], tmaps, into_first=False, weight_grads=True, update=cu, times=1.0)
        # Adam: reads weight, gradient, m, v; writes weight, m, v. m and v (fp32) live in DRAM.
        for net in ("critic1", "critic2"):
            params = sum(x.in_features * x.out_features for x in nets[net])
            results.append(r.elementwise(f"{net}.adam", net, "optimizer", params, 2 * r.bits + 64, r.bits + 64,
                                         True, cu, 1.0))
        results += _forward(r, nets["actor"], maps, au, t)
        results += _forward(r, nets["critic1"], maps, au, t)
        results += _backward(r, nets["critic1"], tmaps, into_first=True, weight_grads=False, update=au, times=t)
        results += _backward(r, nets["actor"], tmaps, into_first=False, weight_grads=True, update=au, times=t)
        params = sum(x.in_features * x.out_features for x in nets["actor"])
        results.append(r.elementwise("actor.adam", "actor", "optimizer", params, 2 * r.bits + 64, r.bits + 64,
                                     True, au, t))
        for net in ("actor_target", "critic1_target", "critic2_target"):
            params = sum(x.in_features * x.out_features for x in nets[net])
            results.append(r.elementwise(f"{net}.polyak", net, "polyak", params, 2 * r.bits, r.bits, False, au, t))

    et = energy_table(d)
    rate = d.compute.datatypes[dt]
    return SimResult(
        design=d.name, scenario=scenario, batch=int(batch), bits=int(bits), clock_hz=d.clock_hz,
        peak_macs_per_cycle=d.compute.pes * rate, layers=results, sram_bytes=float(d.weight_sram_bytes()),
        area_mm2=et.area_mm2, fits_in_sram=sparse_b <= d.weight_sram_bytes(),
        extra={
            "datatype": dt, "activation_bits": r.bits_a, "residency": residency,
            "weights_resident": r.resident, "dense_weights_resident": r.resident_dense,
            "workload_bits": max(int(x.weight_bits) for x in wl.layers),
            "bytes_weights_stored": sparse_b, "bytes_weights_dense": dense_b,
            "dense_fits_in_sram": dense_b <= d.weight_sram_bytes(), "policy_delay": policy_delay,
            "technology_nm": d.technology_nm, "energy_factor_vs_45nm": et.logic_factor,
            "area_note": "SRAM area from CACTI 7 only (compute array not modelled)" if et.area_mm2 is not None
            else "unknown: CACTI 7 does not cover this node",
        },
    )
