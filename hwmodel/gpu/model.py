"""Analytic GPU timing model for dense and 2:4 GEMMs, TD3 layers and TD3 steps (numpy, no torch).

Per kernel (shapes padded exactly as the bench's libraries pad them, ``grid.padded_shape``):

* **Tile and wave quantization.** The output is cut into ``tm x tn`` tiles (optionally with
  split-K); tiles run in waves of ``sm_count``; each wave costs a full tile's FLOPs at the
  per-SM peak times ``eta`` times a tile efficiency (operand bytes per FLOP of the tile,
  relative to a 128x256 tile). The model takes the best candidate, as a library heuristic
  would.
* **Roofline.** Kernel time = max(compute, HBM bytes / (eta_mem x bandwidth)). Operands are
  read once, the output written once; split-K adds fp32 partials.
* **2:4 format.** The sparse weight moves ``density x (value bits + 2-bit metadata)``
  (``hwmodel.sparsity``'s 2:4 pattern), and its compute runs at the 2:4 peak x ``eta_sparse``.
* **Per-call overheads.** Graph mode: ``node_us`` per kernel, plus ``sparse_fixed_us`` per
  cuSPARSELt kernel. Eager mode (CUDA events around each call, so the CPU launch is inside
  the bracket): ``max(kernels x launch_us, launch_us + graph time)``: CPU-bound issue of
  many small kernels, or one launch then the GPU work; each cuSPARSELt call adds
  ``cslt_host_us`` of host set-up, and the torch semi-structured path ``api_us`` of Python
  dispatch per call. That path also pads x's rows to the cuSPARSELt
  minimum and copies the sliced output: two extra kernels when m is not a multiple of the
  dense minimum.
* **Composites.** An actor forward or a TD3 step is the sum of its GEMMs
  (``grid.actor_forward_gemms`` / ``grid.td3_step_gemms``) plus an estimated number of
  small elementwise kernels, optimizer and Polyak traffic, and the 2:4 re-compressions.

The eight parameters of :class:`GpuModelParams` are fitted by ``nmlab gpu validate``; the
defaults are priors, not measurements.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any, Iterable, Sequence

import numpy as np

from hwmodel.gpu import grid
from hwmodel.gpu.spec import GpuSpec
from hwmodel.sparsity import parse_pattern

#: Output tile candidates (rows x cols) and split-K factors a GEMM library may pick.
TILES = ((64, 64), (64, 128), (128, 64), (128, 128), (128, 256), (256, 128))
SPLITS = (1, 2, 4, 8, 16)
MIN_K_PER_SPLIT = 128
_REF_INTENSITY = 128 * 256 / (128 + 256)
PATTERN_24 = parse_pattern("2:4")


@dataclass(frozen=True)
class GpuModelParams:
    """The fitted efficiency parameters (defaults are priors).

    Attributes:
        eta_dense: fraction of the dense tensor-core peak a wave of 128x256 tiles reaches.
        eta_sparse: fraction of the 2:4 peak reached by cuSPARSELt's kernels.
        eta_mem: fraction of the HBM bandwidth reached by streaming operands.
        launch_us: eager mode, CPU time to issue one kernel (torch dispatch + launch), microseconds.
        node_us: graph mode, fixed cost per kernel (start/tail), microseconds.
        api_us: eager mode, extra cost per call of torch's semi-structured tensor path.
        cslt_host_us: eager mode, host time of every cuSPARSELt call (descriptor and plan
            set-up happen per call in some versions, shared/reference/gpu.md).
        sparse_fixed_us: extra fixed GPU time of every cuSPARSELt kernel (prologue, metadata
            set-up), both modes: published small-shape 2:4 slowdowns (gpu.md) suggest one.
    """

    eta_dense: float = 0.80
    eta_sparse: float = 0.60
    eta_mem: float = 0.85
    launch_us: float = 4.5
    node_us: float = 1.5
    api_us: float = 10.0
    cslt_host_us: float = 5.0
    sparse_fixed_us: float = 1.0

    @classmethod
    def names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))

    def vector(self) -> np.ndarray:
        return np.array([getattr(self, n) for n in self.names()], dtype=float)

    @classmethod
    def from_vector(cls, v: Sequence[float]) -> "GpuModelParams":
        return cls(**{n: float(x) for n, x in zip(cls.names(), v)})

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


#: Bounds used by the fitter (efficiencies in (0, 1], overheads in microseconds).
PARAM_BOUNDS = {"eta_dense": (0.05, 1.0), "eta_sparse": (0.05, 1.0), "eta_mem": (0.05, 1.0),
                "launch_us": (0.1, 200.0), "node_us": (0.01, 50.0), "api_us": (0.01, 500.0),
                "cslt_host_us": (0.01, 500.0), "sparse_fixed_us": (0.01, 200.0)}


def tile_efficiency(tm: int, tn: int) -> float:
    """Tile's FLOPs per operand byte relative to a 128x256 tile, capped at 1."""
    return min(1.0, (tm * tn / (tm + tn)) / _REF_INTENSITY)


def weight_bytes(n: int, k: int, dtype: str, sparse: bool) -> float:
    """Bytes of an ``n x k`` weight: dense, or 2:4 values plus 2-bit metadata per kept value."""
    b = grid.DTYPE_BYTES[dtype]
    if not sparse:
        return float(n * k * b)
    kept = n * k * PATTERN_24.density
    return kept * b + kept * PATTERN_24.meta_bits / 8.0


def gemm_candidates(gpu: GpuSpec, m: int, n: int, k: int, dtype: str, sparse: bool) -> tuple[np.ndarray, np.ndarray]:
    """Per (tile, split) candidate: compute seconds at eta = 1 (inf if not allowed) and HBM bytes."""
    peak_per_sm = gpu.peak_flops(dtype, sparse) / gpu.sm_count
    out_b = grid.OUT_DTYPE[dtype][1]
    base_bytes = m * k * grid.DTYPE_BYTES[dtype] + weight_bytes(n, k, dtype, sparse) + m * n * out_b
    comp, byts = [], []
    for tm, tn in TILES:
        for split in SPLITS:
            kc = math.ceil(k / split)
            if split > 1 and kc < MIN_K_PER_SPLIT:
                comp.append(math.inf)
                byts.append(math.inf)
                continue
            tiles = math.ceil(m / tm) * math.ceil(n / tn) * split
            waves = math.ceil(tiles / gpu.sm_count)
            comp.append(waves * 2.0 * tm * tn * kc / (peak_per_sm * tile_efficiency(tm, tn)))
            byts.append(base_bytes + (2.0 * m * n * 4 * split if split > 1 else 0.0))
    return np.array(comp), np.array(byts)


@dataclass
class _Kernel:
    row: int
    sparse: bool
    comp: np.ndarray   # seconds at eta = 1 per candidate (zeros for elementwise kernels)
    byts: np.ndarray   # HBM bytes per candidate


def _elementwise(row: int, nbytes: float) -> _Kernel:
    n = len(TILES) * len(SPLITS)
    return _Kernel(row, False, np.zeros(n), np.full(n, float(nbytes)))


def _gemm(gpu: GpuSpec, row: int, m: int, n: int, k: int, dtype: str, sparse: bool) -> _Kernel:
    comp, byts = gemm_candidates(gpu, m, n, k, dtype, sparse)
    return _Kernel(row, sparse, comp, byts)


def _composite_kernels(gpu: GpuSpec, i: int, kind: str, env: str, width: int, batch: int,
                       sparse: bool) -> list[_Kernel]:
    """Kernels of an actor forward or TD3 step (bf16), see grid's GEMM lists and aux counts."""
    dtype = "bfloat16"
    out: list[_Kernel] = []
    if kind == "actor_fwd":
        gemms = grid.actor_forward_gemms(env, width, batch, sparse)
        aux = grid.actor_forward_aux_kernels(sparse)
    else:
        gemms = grid.td3_step_gemms(env, width, batch, sparse)
        aux = grid.td3_step_aux_kernels(sparse)
        actor = grid.mlp_dims("actor", env, width)
        critic = grid.mlp_dims("critic", env, width)
        n_params = sum(k * n + n for dims in (actor, critic, critic) for k, n in zip(dims[:-1], dims[1:]))
        # Adam reads param, grad, both moments and writes param and moments (bf16); Polyak
        # reads target and online and writes target. Two optimizers, one lerp over all nets.
        out.append(_elementwise(i, 7 * 2 * n_params))
        out.append(_elementwise(i, 2 * 3 * n_params))
        aux -= 2
        if sparse:
            for _ in range(6):  # re-compress 3 online + 3 target hidden weights, copy into place
                out.append(_elementwise(i, width * width * 2 + 2 * weight_bytes(width, width, dtype, True)))
            aux -= 6
    for g in gemms:
        if g.sparse:
            mp, np_, kp = grid.padded_shape(g.m, g.n, g.k, dtype, "sparse_cslt")
            out.append(_gemm(gpu, i, mp, np_, kp, dtype, True))
        else:
            out.append(_gemm(gpu, i, g.m, g.n, g.k, dtype, False))
    out += [_elementwise(i, 2 * 2 * batch * width) for _ in range(max(aux, 0))]
    return out


def row_kernels(gpu: GpuSpec, i: int, row: dict[str, Any]) -> tuple[list[_Kernel], bool]:
    """Kernels one bench row launches per call, and whether it goes through the torch API."""
    kind, impl, dtype = row["kind"], row["impl"], row["dtype"]
    m, n, k = int(row["m"]), int(row["n"]), int(row["k"])
    sparse = impl in grid.SPARSE_IMPLS
    if kind in ("actor_fwd", "td3_step"):
        return _composite_kernels(gpu, i, kind, row.get("env") or "hopper", int(row.get("width") or n), m, sparse), False
    mp, np_, kp = grid.padded_shape(m, n, k, dtype, impl)
    kernels = [_gemm(gpu, i, mp, np_, kp, dtype, sparse)]
    if impl == "sparse_api" and mp != m:
        b, ob = grid.DTYPE_BYTES[dtype], grid.OUT_DTYPE[dtype][1]
        kernels.append(_elementwise(i, (m + mp) * kp * b))      # F.pad of x
        kernels.append(_elementwise(i, 2 * m * np_ * ob))       # narrow(...).contiguous()
    return kernels, impl == "sparse_api"


class GpuModel:
    """Predicts eager and graph microseconds of bench rows on one GPU.

    The shape-dependent work (tile candidates, bytes) is done once per row set, so evaluating
    new parameters (what the fitter does) costs a few array operations.
    """

    def __init__(self, gpu: GpuSpec, rows: Iterable[dict[str, Any]]):
        self.gpu = gpu
        rows = list(rows)
        self.n_rows = len(rows)
        kernels: list[_Kernel] = []
        api = np.zeros(self.n_rows)
        for i, row in enumerate(rows):
            ks, is_api = row_kernels(gpu, i, row)
            kernels += ks
            api[i] = 1.0 if is_api else 0.0
        self._api = api
        self._row = np.array([k.row for k in kernels], dtype=int)
        self._sparse = np.array([k.sparse for k in kernels], dtype=bool)
        self._comp = np.stack([k.comp for k in kernels]) if kernels else np.zeros((0, 1))
        self._byts = np.stack([k.byts for k in kernels]) if kernels else np.zeros((0, 1))
        self.kernels_per_row = np.bincount(self._row, minlength=self.n_rows)
        self.sparse_per_row = np.bincount(self._row, weights=self._sparse.astype(float), minlength=self.n_rows)

    def kernel_us(self, p: GpuModelParams) -> np.ndarray:
        """GPU time of every kernel (microseconds): best candidate of max(compute, memory)."""
        eta = np.where(self._sparse, p.eta_sparse, p.eta_dense)[:, None]
        t = np.maximum(self._comp / eta, self._byts / (p.eta_mem * self.gpu.hbm_bytes_per_s))
        return np.min(t, axis=1) * 1e6 + p.sparse_fixed_us * self._sparse

    def predict(self, p: GpuModelParams) -> tuple[np.ndarray, np.ndarray]:
        """(eager_us, graph_us) per row."""
        t = self.kernel_us(p) + p.node_us
        graph = np.bincount(self._row, weights=t, minlength=self.n_rows)
        # Eager: the CPU issues one kernel per launch_us while the GPU runs them as they come.
        # The call ends after the CPU-bound issue of all kernels or after the first launch
        # plus all GPU work, whichever is later (events bracket the CPU-side launch too).
        # cuSPARSELt calls also pay their host-side set-up before they launch.
        host = self.sparse_per_row * p.cslt_host_us
        eager = np.maximum(self.kernels_per_row * p.launch_us + host, p.launch_us + host + graph)
        return eager + p.api_us * self._api, graph


def gemm_row(m: int, n: int, k: int, dtype: str = "bfloat16", impl: str = "dense", kind: str = "gemm") -> dict:
    """A minimal bench row for predicting one GEMM (what tests and plots feed the model)."""
    return {"kind": kind, "impl": impl, "dtype": dtype, "m": m, "n": n, "k": k, "env": "", "width": 0}


def predict_gemm_us(gpu: GpuSpec, p: GpuModelParams, m: int, n: int, k: int, dtype: str = "bfloat16",
                    impl: str = "dense", mode: str = "graph") -> float:
    """Predicted time of one GEMM call in microseconds (``mode`` "eager" or "graph")."""
    eager, graph = GpuModel(gpu, [gemm_row(m, n, k, dtype, impl)]).predict(p)
    return float((eager if mode == "eager" else graph)[0])
