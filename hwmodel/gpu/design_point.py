"""GPUs as design points of ``nmlab simulate``, ``nmlab sweep`` and ``nmlab check``.

A bundled GPU spec (``hwmodel/data/gpus/<name>.yaml``, e.g. ``h100_sxm``) or a GPU spec file
stands where an accelerator design does. :func:`simulate_gpu` returns the same
:class:`~hwmodel.result.SimResult` as an accelerator run, GEMM by GEMM, so sweeps, reports
and checks treat both alike. What a GPU run means, figure by figure:

* **Datatype.** 16 bits run bf16 (``bfloat16``), 8 bits run **int8** (every bundled GPU has
  int8 tensor cores, the A100 has no fp8, and the accelerators' 8-bit datatype is int8 too).
  Other bitwidths are not GPU design points.
* **Sparsity.** A GPU's sparse tensor cores run 2:4 only. A layer runs 2:4 when its real mask
  fits 2:4 in the GEMM's orientation (every group of 4 along the reduction holds at most 2:
  2:4, 1:4 and 1:8 masks do, at the 2:4 rate; W^T of the backward-data GEMM is checked as
  W^T); any other mask runs dense (zeros stored and multiplied), and the mapping note says so.
  Weight gradients run dense, as on the accelerators.
* **Latency.** Per GEMM, the GPU timing model (``hwmodel.gpu.model``, kernel time as in a
  CUDA-graph replay, no eager launch overhead) at that dtype, dense or 2:4 (cuSPARSELt's
  padding included); optimizer and Polyak element-wise passes are memory-bound kernels.
  :func:`gemm_latency_s` and :func:`elementwise_latency_s` are the only calls into the model.
  ``cycles`` = latency x the spec's tensor clock.
* **Energy** = time x board power, with board power = ``power_limit_w`` x (``IDLE_FRACTION``
  + (1 - ``IDLE_FRACTION``) x utilization), utilization = the larger of the GEMM's share of
  the tensor peak and of the memory bandwidth it uses. The floor is an **assumption**, not
  a datasheet figure (see ``IDLE_FRACTION``). The floor's energy is reported as
  ``energy_leakage_pj`` (static, time-proportional), the rest as ``energy_mac_pj`` (tensor
  cores, caches and memory together: the GPU model does not split them).
* **Traffic.** ``bits_dram_*`` count each GEMM's operands read once and its output written
  once (the 2:4 weight compressed, metadata included); ``sram_bytes`` is the L2 and
  ``fits_in_sram`` says whether the stored weights fit it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Optional

import numpy as np
import yaml

from hwmodel.design import Sparsity
from hwmodel.errors import NmlabError
from hwmodel.gpu import grid
from hwmodel.gpu.model import GpuParams, predict_s, weight_bytes
from hwmodel.gpu.params import params_for
from hwmodel.gpu.spec import FORMAT_NAME, GpuSpec, bundled_gpus, load_gpu
from hwmodel.io import data_path
from hwmodel.mapping import Mapping, map_weights, mask_nnz
from hwmodel.result import Figures, LayerResult, SimResult
from hwmodel.sparsity import DENSE, parse_pattern

#: Run bitwidth -> the GPU operand dtype it runs (8 bits: int8, see the module docstring).
BITS_DTYPE = {16: "bfloat16", 8: "int8"}
#: Board power while the GPU runs our kernels but its tensor cores and memory idle, as a
#: fraction of the power limit. An ASSUMPTION, not a datasheet figure: NVIDIA publishes no
#: idle or floor power. A GPU with a CUDA context sits tens of watts above bare idle
#: (arXiv 2605.23918: +26-66 W on H100, A100 and L40S), and back-to-back small kernels keep
#: it at full clocks, above that; a quarter of the limit is our round figure for the floor.
IDLE_FRACTION = 0.25
#: The sparse pattern a GPU's tensor cores run.
GPU_PATTERN = parse_pattern("2:4")
# What hwmodel.mapping needs to know of a design to map a mask: a fixed 2:4 sparse unit.
_GPU_SPARSITY = SimpleNamespace(sparsity=Sparsity(support="fixed", patterns=(GPU_PATTERN,)))


# ---- the GPU timing model, behind two functions (the one place to switch models) ----------

def model_params(spec: GpuSpec) -> GpuParams:
    """Parameters of the GPU timing model for ``spec``: the bundled set of its architecture."""
    return params_for(spec)


def gemm_latency_s(spec: GpuSpec, m: np.ndarray, n: np.ndarray, k: np.ndarray, dtype: str,
                   sparse: np.ndarray) -> np.ndarray:
    """Seconds per GEMM ``Y[m, n] = X[m, k] W[n, k]^T`` on ``spec`` at ``dtype``, 2:4 where ``sparse``.

    Args:
        spec: the GPU.
        m, n, k: GEMM sizes (equal-length integer arrays).
        dtype: operand dtype ("bfloat16", "int8", ...).
        sparse: bool array, True for a 2:4 weight (cuSPARSELt), False for dense (cuBLAS).
    """
    keys = [(id(spec), int(a), int(b), int(c), dtype, bool(s)) for a, b, c, s in zip(m, n, k, sparse)]
    todo = list(dict.fromkeys(key for key in keys if key not in _LATENCY_CACHE))
    if todo:
        # A layer in a training step finds its operands evicted by the other layers: cold L2.
        for flag in (False, True):
            part = [key for key in todo if key[5] == flag]
            if part:
                mm, nn, kk = (np.array([key[i] for key in part], dtype=float) for i in (1, 2, 3))
                secs = predict_s(spec, mm, kk, nn, dtype, flag, model_params(spec), l2="cold")
                _LATENCY_CACHE.update(zip(part, secs.tolist()))
        _CACHED_SPECS[id(spec)] = spec  # keeps the id from being reused while its entries live
    return np.array([_LATENCY_CACHE[key] for key in keys])


# Layer shapes repeat across sweep points (patterns, bits, scenarios): time each GEMM once.
_LATENCY_CACHE: dict[tuple, float] = {}
_CACHED_SPECS: dict[int, GpuSpec] = {}


def elementwise_latency_s(spec: GpuSpec, nbytes: float) -> float:
    """Seconds of one memory-bound element-wise kernel moving ``nbytes`` on ``spec``."""
    p = model_params(spec)
    return p.kernel_dense_us * 1e-6 + nbytes / (p.eta_mem * spec.memory_bytes_per_s)


# ---- GPU design points ---------------------------------------------------------------------

@dataclass(frozen=True)
class GpuDesign:
    """A GPU spec in the role of a design point (the surface sweeps and checks use).

    Attributes:
        spec: the GPU's published figures.
        source: the spec file it came from.
    """

    spec: GpuSpec
    source: str

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def clock_hz(self) -> float:
        return self.spec.tensor_clock_mhz * 1e6

    def datatype_for(self, bits: int) -> str:
        """The GPU dtype a ``bits`` run uses; NmlabError for bitwidths a GPU point does not run."""
        dtype = BITS_DTYPE.get(int(bits))
        if dtype is None or dtype not in self.spec.tensor_flops:
            have = ", ".join(f"{b} ({d})" for b, d in BITS_DTYPE.items() if d in self.spec.tensor_flops)
            raise NmlabError(f"design '{self.name}': a GPU design point runs {have} bits, not {bits}")
        return dtype

    def weight_sram_bytes(self) -> int:
        """On-chip capacity the weights may stay in between calls: the L2."""
        return self.spec.l2_bytes

    def power_limit_w(self) -> float:
        if self.spec.power_limit_w is None:
            raise NmlabError(f"design '{self.name}': the GPU spec has no power_limit_w (a version-1 file); "
                             "a design point needs it for energy")
        return self.spec.power_limit_w


def _is_gpu_file(path: Path) -> bool:
    """Whether a YAML file is a GPU spec (``format: nmlab-gpu``) rather than an accelerator design."""
    try:
        doc = yaml.safe_load(path.read_text())
    except (yaml.YAMLError, UnicodeDecodeError, OSError):
        return False
    return isinstance(doc, dict) and doc.get("format") == FORMAT_NAME


@lru_cache(maxsize=32)
def _load(path: str) -> GpuDesign:
    return GpuDesign(load_gpu(path), path)


def gpu_design(ref: Any) -> Optional[GpuDesign]:
    """``ref`` as a GPU design point, or None when it is an accelerator design.

    ``ref``: a GpuDesign, a GpuSpec, a GPU spec file, or the name of a bundled GPU
    ("h100_sxm"); anything else (a Design, an accelerator YAML or name) gives None.
    """
    if isinstance(ref, GpuDesign):
        return ref
    if isinstance(ref, GpuSpec):
        return GpuDesign(ref, str(data_path("gpus", f"{ref.name}.yaml")))
    if not isinstance(ref, (str, os.PathLike)):
        return None
    p = Path(ref)
    if p.is_file():
        return _load(str(p.resolve())) if _is_gpu_file(p) else None
    if str(ref) in bundled_gpu_names():
        return _load(str(data_path("gpus", f"{ref}.yaml").resolve()))
    return None


@lru_cache(maxsize=1)
def bundled_gpu_names() -> tuple[str, ...]:
    """Names of the bundled GPU specs."""
    return tuple(bundled_gpus())


def load_design_point(ref: Any):
    """A design point of either kind: a :class:`GpuDesign` for a GPU, else ``hwmodel.design.load_design``."""
    gpu = gpu_design(ref)
    if gpu is not None:
        return gpu
    from hwmodel.design import load_design

    return load_design(ref)


# ---- simulate ------------------------------------------------------------------------------

@dataclass
class _Gemm:
    """One GEMM of a scenario before it is timed: ``layer``'s GEMM in ``phase``, sizes as in
    LayerResult (M x K . K x N), what the GPU runs (``mapping``), kept weights (``nnz``), and
    the update it belongs to with how often it runs per step."""

    layer: Any
    phase: str
    m: int
    k: int
    n: int
    mapping: Mapping
    nnz: int
    update: str
    times: float


def _map(mask: Optional[np.ndarray], pattern: str, transposed: bool) -> Mapping:
    """2:4 where the real mask fits it in this orientation, else dense; the note says why."""
    mp = map_weights(_GPU_SPARSITY, mask, pattern, transposed=transposed)  # type: ignore[arg-type]
    if mp.sparse:
        return Mapping(GPU_PATTERN, None, f"GPU 2:4 (cuSPARSELt): {mp.note}")
    if mask is None or parse_pattern(pattern).kind == "dense":
        return Mapping(DENSE, None, mp.note)
    return Mapping(DENSE, None, f"GPU runs 2:4 only: {mp.note}")


def _scenario_gemms(wl, batch: int, scenario: str, policy_delay: int) -> tuple[list[_Gemm], list[tuple], list]:
    """The GEMMs (and element-wise passes) of a scenario, in the order and orientation the
    accelerator model uses (``hwmodel.simulate``'s docstring describes the TD3 step)."""
    from hwmodel.workload import Layer

    nets: dict[str, list] = {}
    for layer in wl.layers:
        nets.setdefault(layer.network, []).append(layer)
    gemms: list[_Gemm] = []
    elementwise: list[tuple] = []

    def gemm(layer, phase: str, update: str, times: float) -> None:
        k, n, B = layer.in_features, layer.out_features, batch
        if phase == "forward":
            m, kk, nn, mp = B, k, n, _map(layer.mask, layer.pattern, False)
        elif phase == "backward_data":
            m, kk, nn, mp = B, n, k, _map(layer.mask, layer.pattern, True)
        else:
            m, kk, nn, mp = n, B, k, Mapping(DENSE, None, "weight gradient: dense")
        nnz = kk * nn if phase == "backward_weight" or layer.mask is None else mask_nnz(layer.mask)
        gemms.append(_Gemm(layer, phase, m, kk, nn, mp, nnz, update, times))

    def forward(net: str, update: str = "", times: float = 1.0) -> None:
        for layer in nets[net]:
            gemm(layer, "forward", update, times)

    def backward(net: str, into_first: bool, weight_grads: bool, update: str, times: float) -> None:
        layers = nets[net]
        for i in reversed(range(len(layers))):
            if i > 0 or into_first:
                gemm(layers[i], "backward_data", update, times)
            if weight_grads:
                gemm(layers[i], "backward_weight", update, times)

    if scenario == "inference":
        run = ["actor"] if "actor" in nets else list(nets)
        for net in run:
            forward(net)
        return gemms, elementwise, [x for net in run for x in nets[net]]
    missing = [x for x in ("actor", "critic1", "critic2") if x not in nets]
    if missing:
        raise NmlabError(f"workload: train_step needs networks actor, critic1 and critic2; missing {', '.join(missing)}")
    for online in ("actor", "critic1", "critic2"):
        nets.setdefault(f"{online}_target", [Layer(f"{x.name}@target", f"{online}_target", x.in_features,
                                                   x.out_features, x.pattern, x.mask, x.weight_bits)
                                             for x in nets[online]])
    cu, au, t = "critic_update", "actor_update", 1.0 / policy_delay
    for net in ("actor_target", "critic1_target", "critic2_target", "critic1", "critic2"):
        forward(net, cu)
    for net in ("critic1", "critic2"):
        backward(net, into_first=False, weight_grads=True, update=cu, times=1.0)
    params = {net: sum(x.in_features * x.out_features for x in nets[net]) for net in nets}
    # (name, network, phase, elements, read bits, write bits per element, update, times)
    for net in ("critic1", "critic2"):
        elementwise.append((f"{net}.adam", net, "optimizer", params[net], "adam", cu, 1.0))
    forward("actor", au, t)
    forward("critic1", au, t)
    backward("critic1", into_first=True, weight_grads=False, update=au, times=t)
    backward("actor", into_first=False, weight_grads=True, update=au, times=t)
    elementwise.append(("actor.adam", "actor", "optimizer", params["actor"], "adam", au, t))
    for net in ("actor_target", "critic1_target", "critic2_target"):
        elementwise.append((f"{net}.polyak", net, "polyak", params[net], "polyak", au, t))
    touched = [x for net in ("actor", "critic1", "critic2", "actor_target", "critic1_target", "critic2_target")
               for x in nets[net]]
    return gemms, elementwise, touched


def _power_w(gpu: GpuDesign, utilization: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(static, dynamic) board power in watts at ``utilization`` (see the module docstring)."""
    limit = gpu.power_limit_w()
    u = np.clip(utilization, 0.0, 1.0)
    return np.full_like(u, IDLE_FRACTION * limit), (1.0 - IDLE_FRACTION) * limit * u


def _gemm_figures(gpu: GpuDesign, gemms: list[_Gemm], dtype: str, sparse: np.ndarray) -> list[Figures]:
    """Figures of every GEMM run dense or 2:4 (``sparse``), times already applied."""
    spec = gpu.spec
    m = np.array([g.m for g in gemms], dtype=np.int64)
    k = np.array([g.k for g in gemms], dtype=np.int64)
    n = np.array([g.n for g in gemms], dtype=np.int64)
    latency = gemm_latency_s(spec, m, n, k, dtype, sparse)
    in_b, out_b = grid.DTYPE_BYTES[dtype], grid.OUT_DTYPE[dtype][1]
    w_bytes = np.array([weight_bytes(int(b), int(c), dtype, bool(s)) for b, c, s in zip(n, k, sparse)])
    read_bytes = m * k * in_b + w_bytes
    write_bytes = (m * n * out_b).astype(float)
    macs = (m * k * n).astype(float)
    issued = np.where(sparse, macs * GPU_PATTERN.density, macs)
    peak = np.array([spec.peak_flops(dtype, bool(s)) for s in sparse])
    util = np.maximum(2.0 * issued / (latency * peak),
                      (read_bytes + write_bytes) / (latency * spec.memory_bytes_per_s))
    static_w, dynamic_w = _power_w(gpu, util)
    figs = []
    for i, g in enumerate(gemms):
        effectual = float(g.m * g.nnz) if g.phase != "backward_weight" else macs[i]
        meta_bits = float(n[i] * k[i] * GPU_PATTERN.density * GPU_PATTERN.meta_bits) if sparse[i] else 0.0
        fig = Figures(
            cycles=latency[i] * gpu.clock_hz, latency_s=latency[i], macs_dense=macs[i],
            macs_effectual=min(effectual, macs[i]), macs_issued=issued[i],
            bits_dram_read=read_bytes[i] * 8.0, bits_dram_write=write_bytes[i] * 8.0, bits_metadata=meta_bits,
            bytes_weights=w_bytes[i] if g.phase != "backward_weight" else 0.0,
            energy_mac_pj=dynamic_w[i] * latency[i] * 1e12, energy_leakage_pj=static_w[i] * latency[i] * 1e12,
        )
        figs.append(_scaled(fig, g.times) if g.times != 1.0 else fig)
    return figs


def _scaled(fig: Figures, f: float) -> Figures:
    return Figures(**{name: value * f for name, value in vars(fig).items()})


def _elementwise_figures(gpu: GpuDesign, elements: int, kind: str, bits: int, times: float) -> Figures:
    """An optimizer or Polyak pass: Adam reads weight, gradient and two fp32 moments and writes
    weight and moments; Polyak reads target and online and writes target (as the accelerators)."""
    rd, wr = (2 * bits + 64, bits + 64) if kind == "adam" else (2 * bits, bits)
    nbytes = elements * (rd + wr) / 8.0
    latency = elementwise_latency_s(gpu.spec, nbytes)
    static_w, dynamic_w = _power_w(gpu, np.array([nbytes / (latency * gpu.spec.memory_bytes_per_s)]))
    fig = Figures(cycles=latency * gpu.clock_hz, latency_s=latency, bits_dram_read=elements * rd,
                  bits_dram_write=elements * wr, energy_mac_pj=float(dynamic_w[0]) * latency * 1e12,
                  energy_leakage_pj=float(static_w[0]) * latency * 1e12)
    return _scaled(fig, times)


def simulate_gpu(workload, design: Any, batch: int = 1, bits: Optional[int] = 16, scenario: str = "inference",
                 residency: str = "auto", policy_delay: int = 2, with_dense: bool = True) -> SimResult:
    """``hwmodel.simulate`` for a GPU design point (arguments as there; the caller validated them).

    ``residency`` does not apply (the GPU model treats L2 reuse itself) and is recorded only.
    """
    from hwmodel.workload import Workload, load_workload

    gpu = gpu_design(design)
    if gpu is None:
        raise NmlabError(f"design: {design!r} is not a GPU spec")
    wl = workload if isinstance(workload, Workload) else load_workload(workload)
    if bits is None:
        wbits = sorted({int(x.weight_bits) for x in wl.layers})
        if len(wbits) != 1:
            raise NmlabError(f"bits: the workload's layers have weight_bits {', '.join(map(str, wbits))}; give one bitwidth")
        bits = wbits[0]
    dtype = gpu.datatype_for(int(bits))
    gemms, elementwise, touched = _scenario_gemms(wl, int(batch), scenario, policy_delay)
    sparse = np.array([g.mapping.sparse for g in gemms], dtype=bool)
    figs = _gemm_figures(gpu, gemms, dtype, sparse)
    dense_figs: list[Optional[Figures]] = [None] * len(gemms)
    if with_dense:
        dense_run = _gemm_figures(gpu, gemms, dtype, np.zeros(len(gemms), dtype=bool)) if sparse.any() else figs
        dense_figs = [d if s else f for f, d, s in zip(figs, dense_run, sparse)]
    layers = [LayerResult(g.layer.name, g.layer.network, g.phase, g.m, g.k, g.n, str(parse_pattern(g.layer.pattern)),
                          str(g.mapping.hw_pattern), g.mapping.note, f, d, g.update, g.times)
              for g, f, d in zip(gemms, figs, dense_figs)]
    for name, net, phase, elements, kind, update, times in elementwise:
        fig = _elementwise_figures(gpu, elements, kind, int(bits), times)
        layers.append(LayerResult(name, net, phase, 1, elements, 1, "dense", "dense",
                                  "element-wise, memory-bound GPU kernel", fig, fig if with_dense else None,
                                  update, times))
    # Stored weights of the touched layers (each once), as the GPU holds them at this dtype.
    mapped = {g.layer.name: g.mapping.sparse for g in gemms if g.phase == "forward"}
    stored = sum(weight_bytes(x.out_features, x.in_features, dtype, mapped.get(x.name, False)) for x in touched)
    dense_bytes = sum(weight_bytes(x.out_features, x.in_features, dtype, False) for x in touched)
    l2 = gpu.weight_sram_bytes()
    spec = gpu.spec
    return SimResult(
        design=gpu.name, scenario=scenario, batch=int(batch), bits=int(bits), clock_hz=gpu.clock_hz,
        peak_macs_per_cycle=spec.peak_flops(dtype, False) / 2.0 / gpu.clock_hz, layers=layers,
        sram_bytes=float(l2), area_mm2=None, fits_in_sram=stored <= l2,
        extra={
            "datatype": dtype, "activation_bits": int(bits), "residency": residency,
            "weights_resident": stored <= l2, "dense_weights_resident": dense_bytes <= l2,
            "workload_bits": max(int(x.weight_bits) for x in wl.layers),
            "bytes_weights_stored": float(stored), "bytes_weights_dense": float(dense_bytes),
            "dense_fits_in_sram": dense_bytes <= l2, "policy_delay": policy_delay,
            "area_note": "a GPU: no area model",
            # Accelerator-only figures, present (NaN) so GPU rows carry the same columns.
            "technology_nm": float("nan"), "energy_factor_vs_45nm": float("nan"),
            "gpu": {
                "spec": spec.display_name, "latency_model": "hwmodel.gpu.model, kernel time (graph mode), "
                "parameters: fitted, bundled per architecture (hwmodel/data/gpu_params.yaml), L2 cold",
                "power_model": f"board power = {spec.power_limit_w:g} W power limit x ({IDLE_FRACTION:g} assumed "
                               f"floor + {1 - IDLE_FRACTION:g} x utilization); source of the limit: "
                               f"{spec.sources.get('power_limit_w', 'the spec file')}",
                "datatype_note": "16 bits run bf16, 8 bits int8",
            },
        },
    )
