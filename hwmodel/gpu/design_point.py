"""GPUs as design points of ``nmlab simulate``, ``nmlab sweep`` and ``nmlab check``.

A bundled GPU spec (``hwmodel/data/gpus/<name>.yaml``, e.g. ``h100_sxm``) or a GPU spec file
stands where an accelerator design does. :func:`simulate_gpu` returns the same
:class:`~hwmodel.result.SimResult` as an accelerator run, GEMM by GEMM, so sweeps, reports
and checks treat both alike. Both it and :func:`simulate_gpu_columns` (a sweep's points of
one workload, GPU and scenario at many batches and bitwidths at once) build the scenario's
:class:`GpuPlan` and time every GEMM through :func:`gemm_columns`: one code path. What a GPU run means, figure by figure:

* **Datatype.** 16 bits run bf16 (``bfloat16``), 8 bits run **int8** (every bundled GPU has
  int8 tensor cores, the A100 has no fp8, and the accelerators' 8-bit datatype is int8 too).
  Other bitwidths are not GPU design points.
* **Sparsity.** A GPU's sparse tensor cores run 2:4 only. A layer runs 2:4 when its real mask
  fits 2:4 in the GEMM's orientation (every group of 4 along the reduction holds at most 2:
  2:4, 1:4 and 1:8 masks do, at the 2:4 rate; W^T of the backward-data GEMM is checked as
  W^T); any other mask runs dense (zeros stored and multiplied), and the mapping note says so.
  Weight gradients run dense, as on the accelerators. A 2:4 GEMM issues 2 MACs per group of 4
  along K, the last group zero-padded: M x N x ceil(K / 4) x 2 ``macs_issued``.
* **Latency.** Per GEMM, the GPU timing model (``hwmodel.gpu.model``, kernel time as in a
  CUDA-graph replay, no eager launch overhead) at that dtype, dense or 2:4, on the GEMM's
  logical (unpadded) M, K, N; optimizer and Polyak element-wise passes are memory-bound kernels.
  :func:`gemm_latency_s` and :func:`elementwise_latency_s` are the only calls into the model.
  ``cycles`` = latency x the spec's tensor clock.
* **Energy** = time x board power, with board power = ``power_limit_w`` x (``IDLE_FRACTION``
  + (1 - ``IDLE_FRACTION``) x utilization), utilization = the larger of the GEMM's share of
  the tensor peak and of the memory bandwidth it uses. The floor is an **assumption**, not
  a datasheet figure (see ``IDLE_FRACTION``). The floor's energy is reported as
  ``energy_leakage_pj`` (static, time-proportional), the rest as ``energy_mac_pj`` (tensor
  cores, caches and memory together: the GPU model does not split them).
* **Traffic.** ``bits_dram_*`` count each GEMM's operands read once and its output written
  once (the 2:4 weight compressed, metadata included: the N x ceil(K / 4) x 2 slots its MACs
  are issued on, each with 2 bits of metadata, :func:`hwmodel.gpu.model.sparse_kept`);
  ``sram_bytes`` is the L2 and ``fits_in_sram`` says whether the stored weights fit it.
"""

from __future__ import annotations

import os
from bisect import bisect_left
from dataclasses import dataclass, field
from dataclasses import fields as dataclass_fields
from functools import lru_cache
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Optional

import numpy as np
import yaml

from hwmodel.design import Sparsity
from hwmodel.errors import NmlabError
from hwmodel.gpu import grid
from hwmodel.gpu.model import GpuParams, predict_s, sparse_kept, weight_bytes
from hwmodel.gpu.params import (file_stamp, fitted_on_note, is_current, own_params, params_file_label, params_for,
                                 set_name_for)
from hwmodel.gpu.spec import FORMAT_NAME, GpuSpec, bundled_gpus, load_gpu
from hwmodel.io import data_path, yaml_safe_load
from hwmodel.limits import is_file
from hwmodel.mapping import DENSE_WEIGHT_GRAD, Mapping, map_weights, mask_nnz
from hwmodel.memo import sorted_hits, sorted_insert, sorted_size
from hwmodel.program import ElementwiseEntry, build_program
from hwmodel.result import ENERGY_COMPONENTS, Figures, LayerResult, SimResult
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
    """Parameters of the GPU timing model for ``spec``: the set of its own parameter file where it
    names one, else the bundled set of its architecture (looked up once per spec object and process:
    the lookup resolves a data path; a spec or parameter file read again is a new spec object)."""
    params = _PARAMS.get(id(spec))
    if params is None:
        params = _PARAMS[id(spec)] = params_for(spec)
        _CACHED_SPECS[id(spec)] = spec
    return params


def gemm_latency_s(spec: GpuSpec, m: np.ndarray, n: np.ndarray, k: np.ndarray, dtype: str,
                   sparse: np.ndarray) -> np.ndarray:
    """Seconds per GEMM ``Y[m, n] = X[m, k] W[n, k]^T`` on ``spec`` at ``dtype``, 2:4 where ``sparse``.

    Args:
        spec: the GPU.
        m, n, k: GEMM sizes (equal-length integer arrays).
        dtype: operand dtype ("bfloat16", "int8", ...).
        sparse: bool array, True for a 2:4 weight (cuSPARSELt), False for dense (cuBLAS).
    """
    m, n, k = (np.asarray(x, dtype=float) for x in (m, n, k))
    sparse = np.asarray(sparse, dtype=bool)
    out = np.empty(len(m))
    # A layer in a training step finds its operands evicted by the other layers: cold L2.
    for flag in (False, True):
        at = np.flatnonzero(sparse == flag)
        if len(at):
            out[at] = predict_s(spec, m[at], k[at], n[at], dtype, flag, model_params(spec), l2="cold")
    return out


def _cached_latency_s(spec: GpuSpec, batch: np.ndarray, classes: np.ndarray, dtype: str) -> np.ndarray:
    """:func:`gemm_latency_s` of every (batch, GEMM class) pair: a (len(batch), len(classes)) array.

    ``batch``: distinct sorted batches; ``classes``: rows (weight gradient, M, K, N, sparse) with
    the batch standing in for M (K for a weight gradient). Layer shapes repeat across sweep
    points (patterns, scenarios, bits), so each pair is timed once per process.
    """
    out = np.empty((len(batch), len(classes)))
    todo = []
    # One batch (a simulate() call): a binary search in Python, not four numpy calls per class.
    one = int(batch[0]) if len(batch) == 1 else None
    for j, cls in enumerate(map(tuple, classes.tolist())):
        known, secs = _LATENCY_CACHE.get((id(spec), dtype, cls), _NONE)
        if one is not None:
            i = bisect_left(known, one)
            if i < len(known) and known[i] == one:
                out[0, j] = secs[i]
            else:
                todo.append((j, cls, np.zeros(1, dtype=np.intp)))
            continue
        hit, at = sorted_hits(known, batch)
        out[hit, j] = secs[at[hit]]
        if not hit.all():
            todo.append((j, cls, np.flatnonzero(~hit)))
    if todo:
        b = np.concatenate([batch[rows] for _, _, rows in todo])
        cl = np.concatenate([np.broadcast_to(np.asarray(cls), (len(rows), 5)) for _, cls, rows in todo])
        wg = cl[:, 0].astype(bool)
        secs = gemm_latency_s(spec, np.where(wg, cl[:, 1], b), cl[:, 3], np.where(wg, b, cl[:, 2]), dtype,
                              cl[:, 4].astype(bool))
        if sorted_size(_LATENCY_CACHE) > 1_000_000:
            _LATENCY_CACHE.clear()  # bounds a long-lived process; entries are cheap to recompute
        start = 0
        for j, cls, rows in todo:
            got = secs[start:start + len(rows)]
            start += len(rows)
            out[rows, j] = got
            sorted_insert(_LATENCY_CACHE, (id(spec), dtype, cls), batch[rows], got)
        _CACHED_SPECS[id(spec)] = spec  # keeps the id from being reused while its entries live
    return out


# (id(spec), dtype, GEMM class) -> (sorted batches, seconds).
_LATENCY_CACHE: dict[tuple, tuple[np.ndarray, np.ndarray]] = {}
_NONE = (np.zeros(0, dtype=np.int64), np.zeros(0))
_PARAMS: dict[int, GpuParams] = {}
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
            raise NmlabError(f"design '{self.name}': the GPU spec has no power_limit_w (null, or a version-1 file); "
                             "a design point needs it for energy")
        return self.spec.power_limit_w


def fitted_on(set_name: str) -> list[str]:
    """The GPUs a bundled parameter set was fitted on (``fitted_on`` of the bundled file; [] if none)."""
    from hwmodel.gpu.params import provenance

    return provenance().get(set_name, ([], None))[0]


def spec_fitted_note(spec: GpuSpec) -> str:
    """What the parameter set ``spec`` runs with was fitted on (:func:`hwmodel.gpu.params.fitted_on_note`,
    the one wording): for a spec naming a parameter file of its own (``params:``), that file's timings
    ("fitted on 412 rows of mytimings.csv"), else the GPUs of the bundled set (:func:`fitted_on`), with
    "not on this GPU" where the spec's GPU is not among them. Empty when the file names none."""
    own = own_params(spec)
    if own is None:
        return fitted_on_note(spec.name, fitted_on(set_name_for(spec)))
    return fitted_on_note(spec.name, own.fitted_on, own.data_file, own.rows)


def params_description(spec: GpuSpec, short: bool = False) -> str:
    """The parameter set ``spec`` runs with, in words, with :func:`spec_fitted_note`: "the 'hopper' set of
    hwmodel/data/gpu_params.yaml (fitted on h100_pcie)", or that of its own parameter file; ``short`` (``gpu
    predict``'s header): "hopper parameters (fitted on h100_pcie)", naming the file only where it is the
    spec's own ("hopper parameters of p.yaml (fitted on 528 rows of slidesparse_h100.csv)")."""
    own = own_params(spec)
    if short:
        head = f"{set_name_for(spec)} parameters" + (f" of {own.file_name}" if own is not None else "")
    else:
        head = f"the '{set_name_for(spec)}' set of {params_file_label(spec)}"
    note = spec_fitted_note(spec)
    return head + (f" ({note})" if note else "")


def _is_gpu_file(path: Path) -> bool:
    """Whether a YAML file is a GPU spec (``format: nmlab-gpu``) rather than an accelerator design."""
    from hwmodel.limits import limit

    try:
        if path.stat().st_size > limit("yaml_bytes"):
            return False  # read whole, past the bound; the design loader refuses it by size, in one line
        text = path.read_text()
        if FORMAT_NAME not in text:
            return False  # cannot say format: nmlab-gpu (skips parsing every accelerator design twice)
        doc = yaml_safe_load(text)
    except (yaml.YAMLError, UnicodeDecodeError, OSError):
        return False
    return isinstance(doc, dict) and doc.get("format") == FORMAT_NAME


@lru_cache(maxsize=32)
def _load_file(path: str, stamp: tuple) -> Optional[GpuDesign]:
    """The GPU spec file at ``path`` (resolved) as a design point, None when it is an accelerator
    design; reused while ``stamp`` (its device, inode, size and mtime) holds: a spec edited or
    replaced is read again (and one naming a parameter file since edited: :func:`_current`)."""
    return GpuDesign(load_gpu(path), path) if _is_gpu_file(Path(path)) else None


def _current(load: Any, *key: Any) -> Optional[GpuDesign]:
    """``load(*key)`` from its cache, read again (the cache cleared) where the spec names a parameter
    file of its own since edited or replaced: with the spec object, which the timing caches key on."""
    design = load(*key)
    if design is not None and not is_current(design.spec.own_params):
        load.cache_clear()
        design = load(*key)
    return design


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
    if is_file(p):
        return _current(_load_file, str(p.resolve()), file_stamp(p))
    if str(ref) in bundled_gpu_names():
        return _current(_bundled, str(ref))
    return None


@lru_cache(maxsize=None)  # at most one entry per bundled GPU
def _bundled(name: str) -> GpuDesign:
    """The bundled GPU ``name``, read and its path resolved once (resolving costs an lstat per folder)."""
    path = str(data_path("gpus", f"{name}.yaml").resolve())
    return GpuDesign(load_gpu(path), path)


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
    """One GEMM of a scenario, for any batch: ``layer``'s GEMM in ``phase``, what the GPU runs
    (``mapping``), kept weights (``nnz``; a weight gradient's depend on the batch: None) and
    the update it belongs to with how often it runs per step."""

    layer: Any
    phase: str
    mapping: Mapping
    nnz: Optional[int]
    update: str
    times: float


@dataclass(frozen=True)
class GpuPlan:
    """What a workload's scenario runs on a GPU, independent of batch and bits: its GEMMs (as
    arrays over GEMMs for the columnar figures), element-wise passes and touched layers.

    ``m_static``, ``k_static``, ``n_static``: each GEMM's :meth:`hwmodel.program.GemmEntry.dims`
    (0 where the dimension is the batch: M but for weight gradients, K for them).
    """

    gemms: tuple
    elementwise: tuple
    touched: tuple
    weight_grad: np.ndarray
    m_static: np.ndarray
    k_static: np.ndarray
    n_static: np.ndarray
    nnz: np.ndarray
    sparse: np.ndarray
    times: np.ndarray
    networks: tuple
    workload_bits: int
    #: Memo of what depends on the plan alone (or with a dtype or spec): sparse flags (bytes)
    #: -> the GEMMs' distinct timing classes and each GEMM's class; ("weights", dtype) -> the
    #: touched layers' stored and dense bytes; ("elementwise", id(spec), bits) -> (spec, the
    #: element-wise passes' figures).
    classes: dict = field(default_factory=dict, compare=False, repr=False)

    def sizes(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(M, K, N) of every GEMM at every batch, as in LayerResult (M x K . K x N): three
        (len(batch), GEMMs) arrays (N broadcasts)."""
        B = np.asarray(batch, dtype=np.int64)[:, None]
        return (np.where(self.weight_grad, self.m_static, B), np.where(self.weight_grad, B, self.k_static),
                np.broadcast_to(self.n_static, (len(B), len(self.n_static))))


def _map(mask: Optional[np.ndarray], pattern: str, transposed: bool) -> Mapping:
    """2:4 where the real mask fits it in this orientation, else dense; the note says why."""
    mp = map_weights(_GPU_SPARSITY, mask, pattern, transposed=transposed)  # type: ignore[arg-type]
    if mp.sparse:
        return Mapping(GPU_PATTERN, None, f"GPU 2:4 (cuSPARSELt): {mp.note}")
    if mask is None or parse_pattern(pattern).kind == "dense":
        return Mapping(DENSE, None, mp.note)
    return Mapping(DENSE, None, f"GPU runs 2:4 only: {mp.note}")


def gpu_plan(wl, scenario: str, policy_delay: int = 2) -> GpuPlan:
    """The :class:`GpuPlan` of workload ``wl`` in ``scenario`` (built once, run at any batch and bits):
    the entries of :func:`hwmodel.program.build_program`, the accelerator model's GEMMs in the same
    order and orientation, each with what the GPU runs."""
    prog = build_program(wl, scenario, policy_delay)
    gemms = []
    for e in prog.gemms:
        layer = prog.layers[e.layer]
        mp, nnz = DENSE_WEIGHT_GRAD, None
        if e.sparse_weights:
            mp = _map(layer.mask, layer.pattern, e.transposed)
            nnz = layer.in_features * layer.out_features if layer.mask is None else mask_nnz(layer.mask)
        gemms.append(_Gemm(layer, e.phase, mp, nnz, e.update, e.times))
    dims = np.array([e.dims(prog.layers[e.layer]) for e in prog.gemms], dtype=np.int64).reshape(-1, 3)
    return GpuPlan(
        gemms=tuple(gemms), elementwise=tuple(prog.elementwise), touched=tuple(prog.layers[i] for i in prog.touched),
        weight_grad=np.array([not e.sparse_weights for e in prog.gemms], dtype=bool),
        m_static=dims[:, 0].copy(), k_static=dims[:, 1].copy(), n_static=dims[:, 2].copy(),
        nnz=np.array([g.nnz or 0 for g in gemms], dtype=np.int64),
        sparse=np.array([g.mapping.sparse for g in gemms], dtype=bool),
        times=np.array([g.times for g in gemms], dtype=float),
        networks=tuple(prog.network_names()), workload_bits=max(int(x.weight_bits) for x in wl.layers))


def _power_w(gpu: GpuDesign, utilization: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(static, dynamic) board power in watts at ``utilization`` (see the module docstring)."""
    limit = gpu.power_limit_w()
    u = np.clip(utilization, 0.0, 1.0)
    return np.full_like(u, IDLE_FRACTION * limit), (1.0 - IDLE_FRACTION) * limit * u


def gemm_columns(gpu: GpuDesign, plan: GpuPlan, batch: np.ndarray, dtype: str,
                 sparse: np.ndarray) -> dict[str, np.ndarray]:
    """Figures of every GEMM of ``plan`` at every batch, run dense or 2:4 (``sparse``, per GEMM).

    Returns Figures field -> (len(batch), GEMMs) array, ``times`` already applied (fields a
    GPU run does not have are left out: they are 0).
    """
    spec = gpu.spec
    batch = np.asarray(batch, dtype=np.int64)
    # Time each distinct (batch, GEMM shape, sparse) once: layers repeat shapes across networks.
    if len(batch) == 1:
        ub, b_at = batch, np.zeros(1, dtype=np.int64)
    else:
        ub, b_at = np.unique(batch, return_inverse=True)
    got = plan.classes.get(sparse.tobytes())
    if got is None:
        index: dict[tuple, int] = {}
        rows = zip(plan.weight_grad.astype(np.int64).tolist(), plan.m_static.tolist(), plan.k_static.tolist(),
                   plan.n_static.tolist(), sparse.astype(np.int64).tolist())
        c_at = np.asarray([index.setdefault(row, len(index)) for row in rows], dtype=np.int64)
        uc = np.asarray(list(index), dtype=np.int64).reshape(-1, 5)
        got = plan.classes[sparse.tobytes()] = (uc, c_at)
    uc, c_at = got
    latency = _cached_latency_s(spec, ub, uc, dtype)[b_at.reshape(-1)][:, c_at]
    B = batch[:, None]
    m, k, n = plan.sizes(batch)
    in_b, out_b = grid.DTYPE_BYTES[dtype], grid.OUT_DTYPE[dtype][1]
    w_bytes = np.where(sparse, weight_bytes(n, k, dtype, True), weight_bytes(n, k, dtype, False))
    read_bytes = m * k * in_b + w_bytes
    write_bytes = (m * n * out_b).astype(float)
    macs = (m * k * n).astype(float)
    # A 2:4 row holds 2 slots per group of 4 along K, the last group zero-padded: the sparse
    # tensor cores issue m x ceil(K / 4) x 2 per output column (K = 11 keeps up to 6 per row,
    # not 5.5), and the compressed weight stores those slots, each with its metadata
    # (``sparse_kept``, which weight_bytes above counts too).
    kept = sparse_kept(n, k)
    issued = np.where(sparse, m * kept, macs)
    peak = np.where(sparse, spec.peak_flops(dtype, True), spec.peak_flops(dtype, False))
    util = np.maximum(2.0 * issued / (latency * peak),
                      (read_bytes + write_bytes) / (latency * spec.memory_bytes_per_s))
    static_w, dynamic_w = _power_w(gpu, util)
    effectual = np.where(plan.weight_grad, macs, (B * plan.nnz).astype(float))
    times = plan.times
    return {
        "cycles": latency * gpu.clock_hz * times, "latency_s": latency * times, "macs_dense": macs * times,
        "macs_effectual": np.minimum(effectual, macs) * times, "macs_issued": issued * times,
        "bits_dram_read": read_bytes * 8.0 * times, "bits_dram_write": write_bytes * 8.0 * times,
        "bits_metadata": np.where(sparse, kept * GPU_PATTERN.meta_bits, 0.0) * times,
        "bytes_weights": np.where(plan.weight_grad, 0.0, w_bytes) * times,
        "energy_mac_pj": dynamic_w * latency * 1e12 * times, "energy_leakage_pj": static_w * latency * 1e12 * times,
    }


def _scaled(fig: Figures, f: float) -> Figures:
    return Figures(**{name: value * f for name, value in vars(fig).items()})


def _elementwise_figures(gpu: GpuDesign, e: ElementwiseEntry, bits: int) -> Figures:
    """An optimizer or Polyak pass ``e`` moving the bits the program gives it (Adam reads weight,
    gradient and two fp32 moments and writes weight and moments; Polyak reads target and online
    and writes target), all from DRAM."""
    elements = e.elements
    rd = e.read_bits_per_bit * bits + e.read_bits_extra
    wr = e.write_bits_per_bit * bits + e.write_bits_extra
    nbytes = elements * (rd + wr) / 8.0
    latency = elementwise_latency_s(gpu.spec, nbytes)
    static_w, dynamic_w = _power_w(gpu, np.array([nbytes / (latency * gpu.spec.memory_bytes_per_s)]))
    fig = Figures(cycles=latency * gpu.clock_hz, latency_s=latency, bits_dram_read=elements * rd,
                  bits_dram_write=elements * wr, energy_mac_pj=float(dynamic_w[0]) * latency * 1e12,
                  energy_leakage_pj=float(static_w[0]) * latency * 1e12)
    return _scaled(fig, e.times)


def _elementwise_values(gpu: GpuDesign, plan: GpuPlan, bits: int) -> list[tuple]:
    """:func:`_elementwise_figures` of each of the plan's element-wise passes, as the Figures'
    field values in order: they depend on the GPU's spec and the bitwidth, not on the batch,
    so they are memoised on the plan per spec (held with them: its id stays its own) and bits.
    Values, not Figures: a caller may change the Figures it is given."""
    key = ("elementwise", id(gpu.spec), bits)
    hit = plan.classes.get(key)
    if hit is None or hit[0] is not gpu.spec:
        values = [tuple(vars(_elementwise_figures(gpu, e, bits)).values()) for e in plan.elementwise]
        hit = plan.classes[key] = (gpu.spec, values)
    return hit[1]


def _extras(gpu: GpuDesign, plan: GpuPlan, dtype: str, bits: int, residency: str, policy_delay: int) -> dict[str, Any]:
    """The scalar extras of a run (``SimResult.extra`` less the descriptive ``gpu`` entry)."""
    # Stored weights of the touched layers (each once), as the GPU holds them at this dtype:
    # the plan's alone, memoised on it per dtype.
    got = plan.classes.get(("weights", dtype))
    if got is None:
        mapped = {g.layer.name: g.mapping.sparse for g in plan.gemms if g.phase == "forward"}
        got = plan.classes["weights", dtype] = (
            float(sum(weight_bytes(x.out_features, x.in_features, dtype, mapped.get(x.name, False))
                      for x in plan.touched)),
            float(sum(weight_bytes(x.out_features, x.in_features, dtype, False) for x in plan.touched)))
    stored, dense_bytes = got
    l2 = gpu.weight_sram_bytes()
    return {
        "datatype": dtype, "activation_bits": int(bits), "residency": residency,
        "weights_resident": stored <= l2, "dense_weights_resident": dense_bytes <= l2,
        "workload_bits": plan.workload_bits,
        "bytes_weights_stored": float(stored), "bytes_weights_dense": float(dense_bytes),
        "dense_fits_in_sram": dense_bytes <= l2, "policy_delay": policy_delay,
        "area_note": "a GPU: no area model",
        # Accelerator-only figures, present (NaN) so GPU rows carry the same columns.
        "technology_nm": float("nan"), "energy_factor_vs_45nm": float("nan"),
    }


def _peak_macs_per_cycle(gpu: GpuDesign, dtype: str) -> float:
    return gpu.spec.peak_flops(dtype, False) / 2.0 / gpu.clock_hz


def simulate_gpu(workload, design: Any, batch: int = 1, bits: Optional[int] = 16, scenario: str = "inference",
                 residency: str = "auto", policy_delay: int = 2, with_dense: bool = True,
                 plan: Optional[GpuPlan] = None) -> SimResult:
    """``hwmodel.simulate`` for a GPU design point (arguments as there; the caller validated them).

    ``residency`` does not apply (the GPU model treats L2 reuse itself) and is recorded only.
    ``plan``: the workload's :func:`gpu_plan` for this scenario, when the caller has it.
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
    plan = plan or gpu_plan(wl, scenario, policy_delay)
    batch = int(batch)
    one = np.array([batch])

    def figures(cols: dict[str, np.ndarray]) -> list[Figures]:
        names = list(cols)
        rows = np.stack([cols[x][0] for x in names], axis=1).tolist()
        return [Figures(**dict(zip(names, row))) for row in rows]

    figs = figures(gemm_columns(gpu, plan, one, dtype, plan.sparse))
    dense_figs: list[Optional[Figures]] = [None] * len(figs)
    if with_dense:
        dense_run = figures(gemm_columns(gpu, plan, one, dtype, np.zeros_like(plan.sparse))) if plan.sparse.any() else figs
        dense_figs = [d if s else f for f, d, s in zip(figs, dense_run, plan.sparse)]
    sizes = np.stack([x[0] for x in plan.sizes(one)], axis=1).tolist()
    layers = [LayerResult(g.layer.name, g.layer.network, g.phase, *mkn, str(parse_pattern(g.layer.pattern)),
                          str(g.mapping.hw_pattern), g.mapping.note, f, d, g.update, g.times)
              for g, mkn, f, d in zip(plan.gemms, sizes, figs, dense_figs)]
    for e, values in zip(plan.elementwise, _elementwise_values(gpu, plan, int(bits))):
        fig = Figures(*values)
        layers.append(LayerResult(e.name, e.network, e.phase, 1, e.elements, 1, "dense", "dense",
                                  "element-wise, memory-bound GPU kernel", fig, fig if with_dense else None,
                                  e.update, e.times))
    extra = _extras(gpu, plan, dtype, int(bits), residency, policy_delay)
    spec = gpu.spec
    l2 = gpu.weight_sram_bytes()
    return SimResult(
        design=gpu.name, scenario=scenario, batch=batch, bits=int(bits), clock_hz=gpu.clock_hz,
        peak_macs_per_cycle=_peak_macs_per_cycle(gpu, dtype), layers=layers,
        sram_bytes=float(l2), area_mm2=None, fits_in_sram=extra["weights_resident"],
        extra={
            **extra,
            "gpu": {
                "spec": spec.display_name, "latency_model": "hwmodel.gpu.model, kernel time (graph mode), "
                f"parameters: the fitted '{set_name_for(spec)}' set of {params_file_label(spec)}, L2 cold",
                "power_model": f"board power = {spec.power_limit_w:g} W power limit x ({IDLE_FRACTION:g} assumed "
                               f"floor + {1 - IDLE_FRACTION:g} x utilization); source of the limit: "
                               f"{_cited(spec, 'power_limit_w')}",
                "datatype_note": "16 bits run bf16, 8 bits int8",
            },
        },
    )


def _cited(spec: GpuSpec, figure: str) -> str:
    """The spec's source of ``figure`` with its reference id spelt out ("h100-ds: ..." names the datasheet)."""
    source = spec.sources.get(figure)
    if not source:
        return f"the spec file {spec.name}"
    ref, _, where = source.partition(":")
    cited = spec.references.get(ref.strip())
    return f"{cited}: {where.strip()}" if cited else source


#: Figures fields a GPU run has (gemm_columns' keys and the element-wise passes'); the rest are 0.
_GPU_FIELDS = ("cycles", "latency_s", "macs_dense", "macs_effectual", "macs_issued", "bits_dram_read",
               "bits_dram_write", "bits_metadata", "bytes_weights", "energy_mac_pj", "energy_leakage_pj")


def _row_sums(x: np.ndarray) -> np.ndarray:
    """Per-run totals over GEMMs, the same bits whatever the number of runs: numpy sums the rows
    of a strided (transposed) view in an order that depends on how many there are, so a sweep's
    rows differed in the last bit with its chunking; rows of a contiguous array sum alike."""
    return np.ascontiguousarray(x).sum(axis=1)


def simulate_gpu_columns(plan: GpuPlan, design: Any, batch: np.ndarray, bits: np.ndarray,
                         residency: str = "auto", policy_delay: int = 2) -> tuple[dict[str, np.ndarray], dict[int, dict]]:
    """:func:`simulate_gpu`'s summary of many runs of one plan at once (a sweep's GPU points).

    Args:
        plan: the workload's :func:`gpu_plan` in the scenario (built with ``policy_delay``).
        design: the GPU design point.
        batch, bits: one entry per run (equal-length integer arrays).
    Returns:
        (columns, extras): every Figures field's total per run plus ``utilization``,
        ``speedup_vs_dense``, ``energy_ratio_vs_dense``, ``fits_in_sram`` and ``sram_bytes``
        (arrays, one entry per run); and bits -> that bitwidth's scalar extras.
    """
    gpu = gpu_design(design)
    if gpu is None:
        raise NmlabError(f"design: {design!r} is not a GPU spec")
    batch = np.asarray(batch, dtype=np.int64)
    bits = np.asarray(bits, dtype=np.int64)
    n = len(batch)
    cols = {f.name: np.zeros(n) for f in dataclass_fields(Figures)}
    dense_cycles, dense_energy = np.zeros(n), np.zeros(n)
    peak, fits = np.zeros(n), np.zeros(n, dtype=bool)
    extras: dict[int, dict] = {}
    for b in np.unique(bits).tolist():
        at = np.flatnonzero(bits == b)
        dtype = gpu.datatype_for(b)
        run = gemm_columns(gpu, plan, batch[at], dtype, plan.sparse)
        dense = gemm_columns(gpu, plan, batch[at], dtype, np.zeros_like(plan.sparse)) if plan.sparse.any() else run
        ew = Figures.sum(_elementwise_figures(gpu, e, b) for e in plan.elementwise)
        for name in _GPU_FIELDS:
            cols[name][at] = _row_sums(run[name]) + getattr(ew, name)
        dense_cycles[at] = _row_sums(dense["cycles"]) + ew.cycles
        dense_energy[at] = _row_sums(dense["energy_mac_pj"]) + _row_sums(dense["energy_leakage_pj"]) + ew.energy_pj
        peak[at] = _peak_macs_per_cycle(gpu, dtype)
        extras[b] = _extras(gpu, plan, dtype, b, residency, policy_delay)
        fits[at] = extras[b]["weights_resident"]
    cycles = cols["cycles"]
    safe = np.where(cycles != 0, cycles, 1.0)
    energy = sum(cols[f"energy_{c}_pj"] for c in ENERGY_COMPONENTS)
    cols.update({
        "utilization": np.where(cycles != 0, cols["macs_effectual"] / (safe * peak), 0.0),
        "speedup_vs_dense": np.where(cycles != 0, dense_cycles / safe, 1.0),
        "energy_ratio_vs_dense": np.where(dense_energy != 0, energy / np.where(dense_energy != 0, dense_energy, 1.0), 1.0),
        "fits_in_sram": fits, "sram_bytes": np.full(n, float(gpu.weight_sram_bytes())),
    })
    return cols, extras
