"""``hwmodel.simulate``: a workload on a design, per layer, per network and in total.

Scenarios:

* ``inference``: one forward pass of the policy (the ``actor`` network when the workload has
  one, else the only network; several without an ``actor`` are refused) at batch ``batch``.
* ``train_step``: one TD3 update, amortized per environment step (policy_delay = 2):
  critic update every step (target actor + both target critics forward for the TD target,
  both critics forward, backward-data except into the first layer, weight gradients, Adam),
  and every ``policy_delay`` steps an actor update (actor forward, critic1 forward and
  backward-data down to the action input, actor backward-data and weight gradients, Adam) plus
  Polyak averaging of the three target networks (element-wise traffic). Actor-update entries
  carry ``times_per_step = 1/policy_delay`` and their figures are scaled by it.

Weights are resident in SRAM across calls when every touched network's weights (as the
hardware stores them, metadata included) fit the weight SRAM: steady state reads no weights
from DRAM. ``residency="cold"`` models the first call after power-up (no weight resident:
every GEMM reads its weights from DRAM, the same figures as ``"stream"``, which forces streaming).
"""

from __future__ import annotations

import os
from stat import S_ISREG
from typing import Optional

import numpy as np

from hwmodel.cacti import area_unknown_note
from hwmodel.design import Design, load_design
from hwmodel.energy import energy_table
from hwmodel.errors import NmlabError
from hwmodel.gpu.design_point import gpu_design, gpu_plan, simulate_gpu
from hwmodel.io import data_path
from hwmodel.limits import is_int
from hwmodel.memo import BoundedMemo
from hwmodel.model import FIELDS, Evaluation, MappedProgram, evaluate_many, map_program
from hwmodel.program import SCENARIOS, GemmEntry, build_program
from hwmodel.result import Figures, LayerResult, SimResult
from hwmodel.sparsity import parse_pattern
from hwmodel.workload import Workload, check_array_types, load_workload

RESIDENCY = ("auto", "cold", "stream")
_pattern_names: dict[str, str] = {}


def _pattern_name(text: str) -> str:
    """Normalised pattern text ("2:4", "dense"), memoised: layers repeat the same few strings."""
    name = _pattern_names.get(text)
    if name is None:
        name = _pattern_names[text] = str(parse_pattern(text))
    return name


def check_arguments(wl: Workload, batch, bits, scenario: str, residency: str, policy_delay) -> int:
    """Validate simulate()'s arguments (NmlabError naming the argument); returns the bitwidth to run."""
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
    if not is_int(policy_delay) or policy_delay < 1:
        raise NmlabError(f"policy_delay: must be a positive integer, got {policy_delay!r}")
    for layer in wl.layers:  # an in-memory workload is not validated here; its arrays must be numpy's
        check_array_types(layer)
    return int(bits)


def point_extras(d: Design, wl: Workload, bits: int, residency: str, policy_delay: int, resident: bool,
                 stored_bytes: float, dense_bytes: float) -> dict:
    """The scalar extras of a result (``SimResult.extra``), in the order sweep tables list them."""
    et = energy_table(d)
    cap = d.weight_sram_bytes()
    return {
        "datatype": d.datatype_for(bits), "activation_bits": d.compute.activation_bits or bits, "residency": residency,
        "weights_resident": resident, "dense_weights_resident": residency == "auto" and dense_bytes <= cap,
        "workload_bits": max(int(x.weight_bits) for x in wl.layers),
        "bytes_weights_stored": stored_bytes, "bytes_weights_dense": dense_bytes,
        "dense_fits_in_sram": dense_bytes <= cap, "policy_delay": policy_delay,
        "technology_nm": d.technology_nm, "energy_factor_vs_45nm": et.logic_factor,
        "area_note": "SRAM area from CACTI 7 only (compute array not modelled)" if et.area_mm2 is not None
        else area_unknown_note(d.technology_nm),
    }


def dense_weight_bytes(prog, bits: int) -> float:
    """Bytes of the touched layers' weights stored dense at ``bits``."""
    return float(bits * sum(prog.layers[i].in_features * prog.layers[i].out_features for i in prog.touched) / 8.0)


def _figures(cols: dict[str, np.ndarray]) -> list[Figures]:
    """One Figures per column of the first point of ``cols`` (one conversion to Python floats)."""
    return [Figures(*row) for row in zip(*[cols[f][0].tolist() for f in FIELDS])]


def _layer_results(mp: MappedProgram, ev: Evaluation, dense: Optional[Evaluation]) -> list[LayerResult]:
    """One LayerResult per program entry, in program order (the single point of ``ev``)."""
    out = []
    prog = mp.program
    g = w = 0
    figs, ew_figs = _figures(ev.gemm), _figures(ev.elementwise)
    dense_figs = _figures(dense.gemm) if dense else None
    dense_ew = _figures(dense.elementwise) if dense else None
    m, kk, nn = ev.m[0].tolist(), ev.kk[0].tolist(), ev.nn[0].tolist()
    for e in prog.entries:
        if isinstance(e, GemmEntry):
            layer = prog.layers[e.layer]
            out.append(LayerResult(layer.name, layer.network, e.phase, m[g], kk[g], nn[g], _pattern_name(layer.pattern),
                                   mp.hw_patterns[g], mp.notes[g], figs[g], dense_figs[g] if dense else None,
                                   e.update, e.times))
            g += 1
        else:
            out.append(LayerResult(e.name, e.network, e.phase, 1, e.elements, 1, "dense", "dense",
                                   "element-wise, not on the MAC array", ew_figs[w], dense_ew[w] if dense else None,
                                   e.update, e.times))
            w += 1
    return out


# Mapped programs (and GPU plans) of recent calls, keyed by what they are built from: the
# design object, the scenario and policy delay, and each layer's name, network, shape,
# pattern and mask object. The value holds the design and the program (hence the masks), so
# the ids in a live key cannot be reused by other objects. A workload edited between calls
# (a layer's pattern, network or mask replaced) gets a new key; a mask cannot be edited in
# place (hwmodel.mapping makes an analysed mask read-only).
_MAPPED: BoundedMemo = BoundedMemo(16)  # each entry keeps its workload's masks alive


def _layers_key(wl: Workload) -> tuple:
    return tuple((x.name, x.network, x.in_features, x.out_features, x.pattern, id(x.mask)) for x in wl.layers)


def _cached(kind: str, design, wl: Workload, scenario: str, policy_delay: int, build):
    key = (kind, id(design), scenario, policy_delay, _layers_key(wl))
    hit = _MAPPED.get(key)
    if hit is None or hit[0] is not design:
        hit = _MAPPED.put(key, (design, build()))
    return hit[1]


def _mapped_pair(wl: Workload, d: Design, scenario: str, policy_delay: int) -> tuple[MappedProgram, MappedProgram]:
    """(the program mapped onto ``d``, its dense reference), reused across calls on the same inputs."""
    def build():
        prog = build_program(wl, scenario, policy_delay)
        return map_program(prog, d), map_program(prog, d, dense=True)

    return _cached("accelerator", d, wl, scenario, policy_delay, build)


_FILES: BoundedMemo = BoundedMemo(32)


def _load_once(loader, ref, bundled: Optional[str] = None):
    """``loader(ref)``, reused while the file behind ``ref`` is the same file (device and inode)
    with the same size and mtime: repeated ``simulate()`` calls on the same files parse them
    once (most of a call's time).

    ``ref``: a file path, or a bundled name (``hwmodel/data/<bundled>/<name>.yaml``); anything
    else (an object) goes straight to ``loader``. What is loaded is only read, never changed.
    The key holds ``ref`` as given (the loaders record it) and the file's identity from one
    ``stat``: a relative path met from another folder is another file, another key.
    """
    if not isinstance(ref, (str, os.PathLike)):
        return loader(ref)
    try:
        try:
            st = os.stat(ref)
            if not S_ISREG(st.st_mode):
                raise FileNotFoundError(ref)
        except FileNotFoundError:
            if bundled is None:
                raise
            st = os.stat(data_path(bundled, f"{ref}.yaml"))
        key = (loader, os.fspath(ref), st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size)
    except (OSError, ValueError, TypeError):
        return loader(ref)  # not a readable file: the loader says what is wrong
    hit = _FILES.get(key)
    if hit is None:
        hit = _FILES.put(key, loader(ref))
    return hit


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
            every GEMM reads its weights from DRAM) or "stream" (always streamed; the same figures).
        policy_delay: TD3's actor-update period (train_step).
        with_dense: also run every GEMM dense for speedup and energy ratios.
    """
    gpu = gpu_design(design)  # a GPU spec as the design point: hwmodel/gpu/design_point.py
    d = _load_once(load_design, design, "designs") if gpu is None else None
    wl = workload if isinstance(workload, Workload) else _load_once(load_workload, workload)
    bits = check_arguments(wl, batch, bits, scenario, residency, policy_delay)
    if gpu is not None:
        # The plan depends on the workload and scenario only, not on the GPU.
        plan = _cached("gpu", None, wl, scenario, policy_delay, lambda: gpu_plan(wl, scenario, policy_delay))
        return simulate_gpu(wl, gpu, batch=int(batch), bits=bits, scenario=scenario, residency=residency,
                            policy_delay=policy_delay, with_dense=with_dense, plan=plan)
    dt = d.datatype_for(bits)
    mp, dense_mp = _mapped_pair(wl, d, scenario, policy_delay)
    prog = mp.program
    # The run and its dense reference in one pass of the closed forms.
    runs = [(mp, [bits], [int(batch)])] + ([(dense_mp, [bits], [int(batch)])] if with_dense else [])
    evs = evaluate_many(runs, residency)
    ev, dense_ev = evs[0], (evs[1] if with_dense else None)
    sparse_b = float(ev.stored_bytes[0])
    dense_b = dense_weight_bytes(prog, bits)
    cap = d.weight_sram_bytes()
    et = energy_table(d)
    return SimResult(
        design=d.name, scenario=scenario, batch=int(batch), bits=bits, clock_hz=d.clock_hz,
        peak_macs_per_cycle=d.compute.pes * d.compute.datatypes[dt], layers=_layer_results(mp, ev, dense_ev),
        sram_bytes=float(cap), area_mm2=et.area_mm2, fits_in_sram=sparse_b <= cap,
        extra=point_extras(d, wl, bits, residency, policy_delay, bool(ev.resident[0]), sparse_b, dense_b),
    )
