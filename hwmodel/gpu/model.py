"""Analytic GPU timing model of dense (cuBLASLt) and 2:4 (cuSPARSELt) GEMMs (numpy, no torch).

Y[m, n] = X[m, k] W[n, k]^T; W is the (2:4-compressible) weight. One call's time is built
from the hardware, not fitted per shape:

* **Tiles, waves, split-K.** The output is cut into ``tm x tn`` tiles (only those the search
  logs, or the published waves, name where they do, ``KERNEL_TILES``), optionally split along k
  in 2, 4 or 8 (cuBLASLt and cuSPARSELt both offer split-K, except the Hopper and Ada kernels in
  ``NO_SPLIT_K`` and every Blackwell kernel, ``NO_SPLIT_K_ARCH``); tiles run in waves of
  ``sm_count``, and every wave costs a full tile. A tile's rate is the per-SM tensor peak of the
  spec (2:4 peak for 2:4) times the per-dtype kernel efficiency ``eta`` times a tile-shape factor
  (small tiles re-read more operand bytes per FLOP from shared memory). The library picks the
  fastest candidate; so does the model.
* **Small tiles of kernels that walk all of k.** Where a kernel does not split K, the published
  times pin a lone tile's rate, and two rules, of different kinds, say what they show:
  ``FEED_SCALE`` (Ada's int8 and int8/fp8 2:4 kernels, which need half an Ampere SM's operand
  bytes per clock) only lowers the intensity from which the tile-shape factor stops costing, at
  any number of waves; the tile still runs at the fitted ``eta``. ``LONE_TILES`` (A100 int8)
  holds only where the tiles fit one wave (no more tiles than SMs): there each tile's compute
  time per k step is set by the SM alone, the smooth maximum of its work at the SM's tensor peak
  and its operand bytes at the SM's share of the architecture's L2 read bandwidth
  (``L2_READ_BYTES_PER_CLK``, a whitepaper figure), with no ``eta`` and no tile-shape factor
  (the fitted L2 and DRAM terms still overlap it), and the split and multi-wave candidates are
  not offered; from two waves on the kernel's tiles are costed like any other's.
* **Memory: L2 or DRAM.** DRAM moves the unique bytes (X, W or its 2:4 form with 2-bit
  metadata per kept value, Y in the output dtype) that miss in L2. In a loop on the same
  operands (how published timings are taken) a working set that fits the usable L2 stays
  there; a cold call (``l2="cold"``) reads everything from DRAM. L2 itself moves the tiled
  traffic (X once per tile column, W once per tile row, Y, split-K partials) at a bandwidth
  proportional to SMs x clock. cuSPARSELt's 16-bit kernels on Ampere/Ada and cuBLASLt's int8
  on Hopper (``W_REREAD``) deal tiles along n first and read a weight that misses in L2 from
  DRAM again per wave of X rows (tiles of 128 and 256 rows of X, ``KERNEL_TILES``).
* **Legacy kernels.** Where the library runs an Ampere-generation kernel on a newer GPU that
  executes it no faster than an Ampere SM (``LEGACY_SM80``: cuBLASLt int8 on Blackwell,
  cuSPARSELt 16-bit and fp8 2:4 on Hopper), the peak is the Ampere SM's per-clock rate x SMs,
  not the spec's; a tile then starves only below the intensity that rate needs
  (``tile_intensity_full``). Where only some of a kernel table's tiles are such a kernel
  (``SM80_TILES``: Hopper cuBLASLt int8's 64x128 tile), those tiles alone run at that rate.
* **Clock and power.** The tensor cores draw ``tensor_pj_per_flop`` per 16-bit FLOP at
  the boost clock (an 8-bit FLOP half: at full rate fp8 draws what bf16 does), a 2:4 FLOP
  ``sparse_energy`` of a dense one; a GEMM reaching a
  fraction of the peak draws that fraction of the peak power. Above the spec's board power
  limit the clock settles where f V^2 (V ~ f) meets the limit, f = (limit / power)^(1/3):
  a compute-bound GEMM on a PCIe card runs far below boost, a memory-bound one or a card
  with headroom (RTX 4090) at boost. A run of back-to-back calls falls from boost to that
  clock with the time constant ``heat_ms``.
* **Overlap.** Compute, DRAM and L2 overlap: the kernel takes their smooth maximum
  (a p-norm, ``SMOOTH_P``), plus a fixed per-kernel time (start, prologue, epilogue; its
  own value for cuSPARSELt, and an extra one for cuBLASLt's block-scaled fp4 call,
  ``BLOCK_SCALED``). Back-to-back calls cannot issue faster than ``issue_us``: the
  call time is the smooth maximum of that floor and the kernel.
* **Torch eager.** ``mode="eager"`` adds torch's per-call dispatch on the CPU
  (``eager_us``, and ``eager_sparse_us`` more for the semi-structured path); library timings
  (and CUDA-graph replays) are ``mode="kernel"``.

The kernel tables these rules name (``KERNEL_TILES``, ``NO_SPLIT_K``, ``NO_SPLIT_K_ARCH``,
``FEED_SCALE``, ``LONE_TILES``, ``L2_READ_BYTES_PER_CLK``, ``W_REREAD``, ``LEGACY_SM80``,
``SM80_TILES``, ``BLOCK_SCALED``: what cuBLASLt and cuSPARSELt run per GPU and dtype, each with
its evidence) live in :mod:`hwmodel.gpu.kernels`, with
:func:`~hwmodel.gpu.kernels.candidates`, which reads them into a
:class:`~hwmodel.gpu.kernels.Kernel`; this module holds the mechanics that cost those
candidates (``SMOOTH_P`` and ``TILE_INTENSITY_FULL`` among them).

Parameters (:class:`GpuParams`): per GPU, 10 scalars (a fit moves ``kernel_block_scaled_us``
only where it has block-scaled rows) plus a dense and a 2:4 efficiency per dtype; fitted by
:mod:`hwmodel.gpu.fit`; bundled per architecture in ``hwmodel/data/gpu_params.yaml``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any, Mapping, Optional, Union

import numpy as np

from hwmodel.errors import NmlabError
from hwmodel.gpu.kernels import (BLOCK_SCALED, BLOCK_SCALED_DEFAULT_US, MIN_K_PER_SPLIT, OPERAND_BYTES, OUTPUT_BYTES,
                                 SPARSE_DENSITY, SPARSE_GROUP, SPARSE_META_BITS, Kernel, boost_peak, candidates)
from hwmodel.gpu.spec import GpuSpec

#: Tile FLOPs per operand element (tm*tn/(tm+tn)) at which the tensor cores stop starving, for a
#: kernel at the SM's native dense rate (:func:`tile_intensity_full` scales it for the others).
TILE_INTENSITY_FULL = 128 * 128 / 256
#: Sharpness of the smooth maxima (a p-norm): 4 lets a 2x larger term dominate within 6%.
SMOOTH_P = 4.0
#: Sharpness of the L2 hit/miss transition around the usable L2 size.
L2_TRANSITION_P = 6.0
#: Calls in the published timing loop (25 warm-up + 100 timed) that heat the card.
PUBLISHED_LOOP_CALLS = 125


@dataclass(frozen=True)
class GpuParams:
    """The model's efficiency parameters for one GPU (or one architecture's defaults).

    Attributes:
        issue_us: floor of one call in a back-to-back loop (CPU issue + launch), microseconds.
        kernel_dense_us: fixed GPU time of a cuBLASLt kernel (start, prologue, epilogue), us.
        kernel_sparse_us: the same for a cuSPARSELt kernel (metadata set-up included), us.
        kernel_block_scaled_us: extra fixed time of a block-scaled cuBLASLt kernel
            (``BLOCK_SCALED``: fp4 with a UE4M3 scale per 16 values), on top of
            ``kernel_dense_us``, us. A fit with no such rows keeps the default
            (``BLOCK_SCALED_DEFAULT_US``).
        eta_mem: fraction of the DRAM bandwidth a streaming GEMM reaches.
        l2_bytes_per_clk_sm: aggregate L2 bandwidth in bytes per clock, per SM of the GPU.
        l2_usable: fraction of the L2 that keeps operands between calls.
        tensor_pj_per_flop: tensor-core energy per dense 16-bit FLOP at the boost clock, pJ
            (8-bit FLOPs cost half; sets the power-limited clock with the spec's power limit).
        sparse_energy: energy of a 2:4 FLOP (one that counts the skipped zeros) relative to a
            dense one.
        heat_ms: time constant of the fall from boost to the sustained clock, milliseconds.
        eager_us: torch eager dispatch per call on the CPU (prior: not in published timings).
        eager_sparse_us: extra per call of torch's semi-structured 2:4 path (prior).
        eta: dtype -> {"dense": fraction, "sparse": fraction} of the spec's peak a large tile
            reaches (the kernel's efficiency, output dtype included).
    """

    issue_us: float = 4.5
    kernel_dense_us: float = 2.0
    kernel_sparse_us: float = 3.0
    kernel_block_scaled_us: float = BLOCK_SCALED_DEFAULT_US
    eta_mem: float = 0.8
    l2_bytes_per_clk_sm: float = 32.0
    l2_usable: float = 0.6
    tensor_pj_per_flop: float = 2.0
    sparse_energy: float = 0.7
    heat_ms: float = 100.0
    eager_us: float = 10.0
    eager_sparse_us: float = 15.0
    eta: Mapping[str, Mapping[str, float]] = field(default_factory=dict)

    SCALARS = ("issue_us", "kernel_dense_us", "kernel_sparse_us", "kernel_block_scaled_us", "eta_mem",
               "l2_bytes_per_clk_sm", "l2_usable", "tensor_pj_per_flop", "sparse_energy", "heat_ms")

    def efficiency_source(self, dtype: str) -> str:
        """The dtype whose fitted efficiency stands for ``dtype``: itself, its :data:`EFFICIENCY_TWIN`
        where this set has only the twin, or "" (``DEFAULT_ETA``) where it has neither."""
        if dtype in self.eta:
            return dtype
        twin = EFFICIENCY_TWIN.get(dtype, "")
        return twin if twin in self.eta else ""

    def efficiency(self, dtype: str, sparse: bool) -> float:
        """Kernel efficiency for ``dtype`` (:meth:`efficiency_source` says whose)."""
        pair = self.eta.get(self.efficiency_source(dtype)) or DEFAULT_ETA
        return float(pair["sparse" if sparse else "dense"])

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["eta"] = {k: dict(v) for k, v in self.eta.items()}
        return d

    def with_values(self, **kw: Any) -> "GpuParams":
        return replace(self, **kw)


#: Efficiency used for a dtype a set covers neither itself nor through its twin.
DEFAULT_ETA = {"dense": 0.7, "sparse": 0.5}

#: fp16 and bf16 run the same tensor-core path at the same operand width: a set fitted on one
#: (hopper: the H100 PCIe timings have no fp16) uses that efficiency for the other. Where both are
#: fitted (gpu_params.yaml's ampere, ada, blackwell and generic sets) they are within 3% of each
#: other, dense and 2:4 (their eta entries there: 0.1-2.7% apart); the 0.7 / 0.5 default put
#: h100_sxm fp16's 2:4 at 0.75x dense at 4096^3 (the command below, without this table), where
#: bf16's fitted efficiency gives 1.44x (`nmlab gpu predict --gpu h100_sxm --gemm 4096,4096,4096
#: --dtype fp16`, its speedup line).
EFFICIENCY_TWIN = {"float16": "bfloat16", "bfloat16": "float16"}

#: (lower, upper) bounds the fitter keeps each scalar in. Efficiencies may pass 1 only a
#: little: the peak is already scaled to the spec boost clock, and a card boosts at most some
#: 10% above that (RTX 4090: ~2.75 GHz against 2.52).
BOUNDS = {"issue_us": (0.5, 50.0), "kernel_dense_us": (0.05, 30.0), "kernel_sparse_us": (0.05, 30.0),
          "kernel_block_scaled_us": (0.05, 30.0),
          "eta_mem": (0.2, 1.0),  "l2_bytes_per_clk_sm": (2.0, 256.0), "l2_usable": (0.1, 1.0),
          "tensor_pj_per_flop": (0.05, 50.0), "sparse_energy": (0.2, 2.0), "heat_ms": (1.0, 1e5), "eta": (0.02, 1.15)}


def weight_bytes(n: np.ndarray, k: np.ndarray, dtype: str, sparse: bool) -> np.ndarray:
    """Bytes of the ``n x k`` weight: dense, or 2:4: its kept values plus their metadata, on k
    zero-padded to a multiple of ``SPARSE_GROUP`` (:func:`sparse_kept`)."""
    if not sparse:
        return n * k * OPERAND_BYTES[dtype]
    return sparse_kept(n, k) * (OPERAND_BYTES[dtype] + SPARSE_META_BITS / 8.0)


def sparse_kept(n: np.ndarray, k: np.ndarray) -> np.ndarray:
    """Value slots of an ``n x k`` weight in the 2:4 format: 2 per group of 4 along k, the last
    group of a row zero-padded (k = 11: 6 per row), as its MACs are issued.

    cuSPARSELt stores no less: it compresses only a weight whose rows and k are multiples of 16
    (16-bit) or 32 (8-bit), so the caller zero-pads k that far (pytorch's
    ``torch/sparse/semi_structured.py``, ``SparseSemiStructuredTensorCUSPARSELT``'s
    ``_DTYPE_SHAPE_CONSTRAINTS``; docs/gpu.md, "Torch API facts"), and its compressed buffer
    holds half that padded weight's values plus 2 bits of metadata per kept value
    (``_cslt_compress`` in pytorch's ``aten/src/ATen/native/sparse/cuda/cuSPARSELtOps.cpp``,
    in the builds that size the buffer themselves, allocates 9/16 of the padded weight's bytes
    for 16-bit and 10/16 for int8; later builds ask ``cusparseLtSpMMACompressedSize2``). The
    design point and the timing model do not pad k that far."""
    return n * (-(-k // SPARSE_GROUP) * SPARSE_GROUP * SPARSE_DENSITY)


def weight_bytes_per_element(dtype: str, sparse: bool) -> float:
    """Bytes the weight takes per logical element (2:4: half a value plus its metadata), k unpadded."""
    b = OPERAND_BYTES[dtype]
    return b if not sparse else SPARSE_DENSITY * (b + SPARSE_META_BITS / 8.0)


def smooth_max(*terms: np.ndarray, p: float = SMOOTH_P) -> np.ndarray:
    """p-norm of non-negative terms: the largest when one dominates, up to 2**(1/p) x when equal."""
    return sum(np.asarray(t, float) ** p for t in terms) ** (1.0 / p)


def tile_intensity_full(spec: GpuSpec, dtype: str, kernel: Kernel, sm80_peak: Optional[float] = None) -> float:
    """Tile intensity (FLOPs per operand element) from which a tile of ``kernel`` runs at full rate.

    A tile's operand feed (shared memory, L2) per clock grows with the rate the kernel runs at;
    ``TILE_INTENSITY_FULL`` holds at the SM's native dense rate. A kernel capped at the Ampere SM's
    rate (``LEGACY_SM80``) below that needs the fraction of the feed its cap is of the native
    dense peak: Blackwell's cuBLASLt int8, a quarter of the B200's int8 rate, runs its one
    64x128 tile at 5.9-6.0 TOPS per SM from m = 64 (one tile per SM) to m = 16384, about 0.73 of
    an Ampere SM's int8 rate at boost; with the 64x128 tile's 0.67 factor its fitted efficiency
    (0.78) would be 1.17, above its bound (docs/gpu_record.md, "What the data showed", has what this
    does to it predicted from the other GPUs). Hopper's 16-bit 2:4 cap (the Ampere 2:4 rate)
    equals its native dense rate.
    A kernel in ``FEED_SCALE`` (the Ampere int8 kernel on Ada's half-rate int8 SM) needs that
    fraction of the feed. ``sm80_peak``, where given, is one tile's own Ampere-rate cap
    (``SM80_TILES``), scaled the same way.
    """
    cap = kernel.sm80_peak if sm80_peak is None else sm80_peak
    if cap is None:
        return TILE_INTENSITY_FULL * kernel.feed
    return TILE_INTENSITY_FULL * min(1.0, cap / boost_peak(spec, dtype, False))


def _arrays(m: Any, k: Any, n: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    m, k, n = (np.asarray(x, dtype=float) for x in (m, k, n))
    m, k, n = (np.ravel(x).astype(float) for x in np.broadcast_arrays(m, k, n))
    if np.any(~np.isfinite(m) | ~np.isfinite(k) | ~np.isfinite(n)) or np.any((m < 1) | (k < 1) | (n < 1)):
        raise NmlabError("gpu model: GEMM sizes m, k, n must be finite and >= 1")
    return m, k, n


class Geometry:
    """The parameter-free part of the model for a set of GEMMs on one GPU (tiles, waves, bytes).

    Built once per (spec, shapes, dtype, sparse); :meth:`seconds` then evaluates any
    parameter set with a few array operations (what the fitter needs).
    """

    def __init__(self, spec: GpuSpec, m: Any, k: Any, n: Any, dtype: str, sparse: bool,
                 out_bytes: Optional[float] = None):
        m, k, n = _arrays(m, k, n)
        if dtype not in OPERAND_BYTES:
            raise NmlabError(f"gpu model: unknown dtype {dtype!r}")
        self.spec, self.dtype, self.sparse = spec, dtype, sparse
        self.block_scaled = not sparse and dtype in BLOCK_SCALED
        kernel = candidates(spec, dtype, sparse)
        self.peak = kernel.peak
        b = OPERAND_BYTES[dtype]
        # Bytes per weight element: the timing model takes the logical k (no 2:4 group padding).
        wb = weight_bytes_per_element(dtype, sparse)
        ob = OUTPUT_BYTES[dtype] if out_bytes is None else float(out_bytes)
        self.flops = 2.0 * m * n * k
        # Bytes of X, W (as stored) and Y: the working set, and what each tile candidate re-reads.
        x_bytes, self.w_bytes, y_bytes = m * k * b, n * k * wb, m * n * ob
        self.ws_bytes = x_bytes + self.w_bytes + y_bytes
        waves, tile_flops, traffic, rereads = [], [], [], []
        full_intensity = tile_intensity_full(spec, dtype, kernel)
        for (tm, tn), min_waves, tile_cap in zip(kernel.tiles, kernel.min_waves, kernel.tile_sm80_peak):
            # An ``SM80_TILES`` tile runs at its own cap: its operations cost peak / cap more time.
            slow = 1.0 if tile_cap is None else kernel.peak / tile_cap
            full = full_intensity if tile_cap is None else tile_intensity_full(spec, dtype, kernel, tile_cap)
            tile_eff = min(1.0, (tm * tn / (tm + tn)) / full) / slow
            rows_t, cols_t = np.ceil(m / tm), np.ceil(n / tn)
            for split in kernel.splits:
                kc = np.ceil(k / split)
                n_tiles = rows_t * cols_t * split
                w = np.ceil(n_tiles / spec.sm_count)
                # Split-K writes and re-reads fp32 partials; below MIN_K_PER_SPLIT it is not offered.
                partial = 2.0 * tm * tn * 4.0 if split > 1 else 0.0
                if split > 1:
                    w = np.where(k / split >= MIN_K_PER_SPLIT, w, np.inf)
                if min_waves:  # a tile the library's heuristic takes only from some number of waves
                    w = np.where(n_tiles >= min_waves * spec.sm_count, w, np.inf)
                waves.append(w)
                tile_flops.append(2.0 * tm * tn * kc / tile_eff)
                traffic.append(x_bytes * cols_t + self.w_bytes * rows_t + y_bytes + n_tiles * partial)
                if kernel.w_reread:
                    # Tiles dealt along n first: a wave holds `group` row-blocks of X; W is read once
                    # per group (from DRAM where it misses in L2), the first time included in ws_bytes.
                    group = np.maximum(1.0, np.floor(spec.sm_count / (cols_t * split)))
                    rereads.append(np.maximum(0.0, np.ceil(rows_t / group) - 1.0))
        self.waves = np.stack(waves, axis=1)
        #: Compute seconds per call at the boost clock of each (GEMM, candidate) that is a lone tile
        #: (``LONE_TILES``) fitting in one wave, inf elsewhere, and where that is (``lone``); None
        #: for kernels without lone tiles.
        self.lone_s = self.lone = None
        if kernel.lone_tiles:
            # A lone tile is the kernel's own (tile, split-K 1) candidate: one wave, seconds per call
            # fixed by the SM's rates, overriding that candidate's time in place (``_at_clock``).
            ops_per_clk = kernel.peak / (spec.sm_count * spec.boost_clock_mhz * 1e6)
            self.lone_s = np.full_like(self.waves, np.inf)
            for tm, tn in kernel.lone_tiles:
                col = kernel.column((tm, tn))
                lone = np.ceil(m / tm) * np.ceil(n / tn) <= spec.sm_count
                clk_per_k = smooth_max(np.float64(2.0 * tm * tn / ops_per_clk),
                                       np.float64((tm * b + tn * wb) / kernel.lone_l2_bytes_per_clk_sm))
                self.lone_s[lone, col] = k[lone] * clk_per_k / (spec.boost_clock_mhz * 1e6)
            self.lone = np.isfinite(self.lone_s)
            # Where a lone tile fits, the library runs it, not the multi-wave or split candidates.
            self.waves[self.lone.any(axis=1)[:, None] & ~self.lone] = np.inf
        self.w_reread = kernel.w_reread
        self.w_rereads = np.stack(rereads, axis=1) if rereads else np.zeros_like(self.waves)
        self.tile_flops = np.stack(tile_flops, axis=1)
        # Hopper and later multicast an operand tile to both SMs of a 2-SM cluster (TMA
        # multicast): L2 serves it once per cluster.
        self.traffic = np.stack(traffic, axis=1) / kernel.multicast

    def _at_clock(self, params: GpuParams, eta: float, clock: np.ndarray,
                  dram_s: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(compute, L2, kernel) seconds per (GEMM, candidate) at a clock fraction per GEMM.

        ``dram_s`` is per GEMM or per (GEMM, candidate)."""
        spec = self.spec
        sm_flops = (self.peak * eta / spec.sm_count) * clock
        hz = spec.boost_clock_mhz * 1e6 * clock
        compute_s = self.waves * self.tile_flops / sm_flops[:, None]
        if self.lone_s is not None:  # lone tiles: the SM's own rates, not eta (``LONE_TILES``)
            compute_s = np.where(self.lone, self.lone_s / clock[:, None], compute_s)
        l2_s = self.traffic / (params.l2_bytes_per_clk_sm * spec.sm_count * hz)[:, None]
        dram = dram_s if dram_s.ndim == 2 else dram_s[:, None]
        return compute_s, l2_s, smooth_max(compute_s, l2_s, dram)

    def clock(self, params: GpuParams, eta: float, boost_s: np.ndarray, loop_calls: int) -> np.ndarray:
        """Clock fraction of the boost clock per GEMM, from the board power limit.

        At the boost clock a GEMM that reaches a fraction ``util`` of the tensor peak draws
        ``tensor_pj_per_flop`` x (operand bytes / 2) x peak x util watts (2:4 FLOPs at
        ``sparse_energy`` of that). Dynamic power goes as f V^2 with V ~ f, so above the
        limit the clock settles at f = (limit / power)^(1/3); it falls from boost towards f
        over the loop with the time constant ``heat_ms``.
        """
        limit_w = self.spec.power_limit_w
        if not limit_w:
            return np.ones_like(boost_s)
        util = np.minimum(1.0, self.flops / (self.peak * boost_s))
        weight = OPERAND_BYTES[self.dtype] / 2.0 * (params.sparse_energy if self.sparse else 1.0)
        watts = params.tensor_pj_per_flop * 1e-12 * weight * self.peak * util
        sustained = np.minimum(1.0, (limit_w / watts) ** (1.0 / 3.0))
        tau_s = params.heat_ms * 1e-3
        run_s = loop_calls * boost_s
        return sustained + (1.0 - sustained) * tau_s / (tau_s + run_s)

    def terms(self, params: GpuParams, loop_calls: int = PUBLISHED_LOOP_CALLS,
              l2: str = "warm") -> dict[str, np.ndarray]:
        """Per (GEMM, candidate) seconds of compute (``compute_s``), per-SM operand traffic
        (``l2_s``), DRAM traffic (``dram_s``, per GEMM), the weight's re-reads from DRAM
        (``reread_s``, zero unless a ``W_REREAD`` kernel) and the call (``kernel_s``), with the
        fastest candidate (``best``), the clock as a fraction of boost (``clock``) and the L2
        miss fraction of the working set (``miss``)."""
        if l2 not in ("warm", "cold"):
            raise NmlabError(f"gpu model: l2 must be 'warm' or 'cold', got {l2!r}")
        spec = self.spec
        eta = params.efficiency(self.dtype, self.sparse)
        usable = params.l2_usable * spec.l2_bytes
        if l2 == "cold":
            miss = np.ones_like(self.ws_bytes)
        else:
            ratio = (self.ws_bytes / usable) ** L2_TRANSITION_P
            miss = ratio / (1.0 + ratio)
        bandwidth = params.eta_mem * spec.hbm_bytes_per_s
        dram_s = self.ws_bytes * miss / bandwidth
        reread_s, dram_all = np.zeros_like(self.w_rereads), dram_s
        if self.w_reread:
            # W read again per group of row-blocks (W_REREAD kernels), from DRAM where W misses in L2.
            ratio_w = (self.w_bytes / usable) ** L2_TRANSITION_P
            reread_s = (self.w_bytes * ratio_w / (1.0 + ratio_w) / bandwidth)[:, None] * self.w_rereads
            dram_all = dram_s[:, None] + reread_s
        boost = self._at_clock(params, eta, np.ones_like(dram_s), dram_all)
        clock = self.clock(params, eta, boost[2].min(axis=1), loop_calls)
        compute_s, l2_s, kernel_s = self._at_clock(params, eta, clock, dram_all)
        return {"compute_s": compute_s, "l2_s": l2_s, "dram_s": dram_s, "reread_s": reread_s, "kernel_s": kernel_s,
                "best": np.argmin(kernel_s, axis=1), "clock": clock, "miss": miss}

    def seconds(self, params: GpuParams, loop_calls: int = PUBLISHED_LOOP_CALLS, l2: str = "warm",
                mode: str = "kernel") -> np.ndarray:
        """Seconds per call (see :func:`predict_s`)."""
        if mode not in ("kernel", "eager"):
            raise NmlabError(f"gpu model: mode must be 'kernel' or 'eager', got {mode!r}")
        t = self.terms(params, loop_calls, l2)
        fixed_us = params.kernel_sparse_us if self.sparse else params.kernel_dense_us
        if self.block_scaled:
            fixed_us += params.kernel_block_scaled_us
        kernel = np.min(t["kernel_s"], axis=1) + fixed_us * 1e-6
        issue_us = params.issue_us
        if mode == "eager":
            issue_us += params.eager_us + (params.eager_sparse_us if self.sparse else 0.0)
        return smooth_max(np.full_like(kernel, issue_us * 1e-6), kernel)


def predict_s(spec: GpuSpec, m: Any, k: Any, n: Any, dtype: str, sparse: bool,
              params: Optional[GpuParams] = None, *, loop_calls: int = PUBLISHED_LOOP_CALLS,
              l2: str = "warm", mode: str = "kernel", out_bytes: Optional[float] = None) -> np.ndarray:
    """Seconds per call of ``Y[m,n] = X[m,k] W[n,k]^T`` on ``spec`` (arrays broadcast).

    Args:
        spec: the GPU design point.
        m, k, n: GEMM sizes (scalars or numpy arrays; m = rows of X, k = reduction, n = outputs).
        dtype: operand dtype name ("bfloat16", "float16", "float8_e4m3fn", "int8", ...).
        sparse: True for the 2:4 weight (cuSPARSELt), False for dense (cuBLASLt).
        params: efficiency parameters; default: the spec's (:func:`hwmodel.gpu.params.params_for`: the
            set of the parameter file it names, else the bundled set of its architecture).
        loop_calls: calls run back to back (heats the card; 125 in the published loop, 1 for
            an isolated call).
        l2: "warm" (operands that fit the usable L2 stay there between calls, as in a timing
            loop on the same operands) or "cold" (every call reads its operands from DRAM, as a
            layer in a training step whose other layers evicted them).
        mode: "kernel" (library time, or a CUDA-graph replay) or "eager" (plus torch's
            per-call CPU dispatch; calls are then issue-bound at small sizes).
        out_bytes: output bytes per element if not the published kernels' (``OUTPUT_BYTES``).
    """
    if params is None:
        from hwmodel.gpu.params import params_for

        params = params_for(spec)
    geo = Geometry(spec, m, k, n, dtype, sparse, out_bytes)
    return geo.seconds(params, loop_calls, l2, mode)


def predict_pair_us(spec: GpuSpec, m: Any, k: Any, n: Any, dtype: str,
                    params: Optional[GpuParams] = None, **kw: Any) -> tuple[np.ndarray, np.ndarray]:
    """(dense microseconds, 2:4 microseconds) per GEMM; keywords as :func:`predict_s`."""
    dense = predict_s(spec, m, k, n, dtype, False, params, **kw) * 1e6
    sparse = predict_s(spec, m, k, n, dtype, True, params, **kw) * 1e6
    return dense, sparse


def predict(spec: GpuSpec, m: Any, k: Any, n: Any, dtype: str, sparse: bool,
            params: Optional[GpuParams] = None, **kw: Any) -> Union[float, np.ndarray]:
    """:func:`predict_s` returning a float for scalar sizes (the public entry point)."""
    out = predict_s(spec, m, k, n, dtype, sparse, params, **kw)
    shape = np.broadcast_shapes(np.shape(m), np.shape(k), np.shape(n))
    return float(out[0]) if shape == () else out.reshape(shape)
