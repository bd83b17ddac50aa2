"""The GPU bench's shape grid and the padding rules of each GEMM path (standard library only).

One :class:`Case` is one thing the harness times: a GEMM, one TD3 layer at one batch size, an
actor forward, or a TD3 update step, in one dtype. GEMM convention everywhere in nmlab's GPU
code: activations X are ``m x k`` (m = batch), weights W are ``n x k`` (``out x in``, as in
``torch.nn.Linear``), output Y = X W^T is ``m x n``; FLOPs = ``2 m n k``.

The harness and the model both call :func:`padded_shape`, so the model sees exactly the
problem the library ran (cuSPARSELt and the 8-bit dense kernels need multiples of 8..32).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Iterable

#: dtype name -> bytes per element of the GEMM operands.
DTYPE_BYTES = {"bfloat16": 2, "float16": 2, "int8": 1, "float8_e4m3fn": 1}
#: dtype name -> (output dtype name, bytes per output element) of the dense and 2:4 paths.
OUT_DTYPE = {"bfloat16": ("bfloat16", 2), "float16": ("float16", 2), "int8": ("int32", 4),
             "float8_e4m3fn": ("bfloat16", 2)}
DTYPES = tuple(DTYPE_BYTES)

#: Implementations timed per case.
#:   dense       cuBLAS through torch (F.linear, torch._int_mm for int8, torch._scaled_mm for fp8)
#:   sparse_cslt torch._cslt_sparse_mm on pre-padded operands with the fastest numerically
#:               correct alg_id (the library kernel alone)
#:   sparse_api  F.linear(x, to_sparse_semi_structured(W)): what a torch user gets, including
#:               the per-call padding of x and the copy of the sliced output (16-bit only)
IMPLS = ("dense", "sparse_cslt", "sparse_api")
SPARSE_IMPLS = ("sparse_cslt", "sparse_api")

#: cuSPARSELt shape constraints in torch (SparseSemiStructuredTensorCUSPARSELT):
#: (sparse_min_rows, sparse_min_cols, dense_min_rows, dense_min_cols); shared/reference/gpu.md.
CSLT_MIN = {"float8_e4m3fn": (32, 32, 16, 16), "int8": (32, 32, 16, 16),
            "float16": (16, 16, 8, 8), "bfloat16": (16, 16, 8, 8)}
#: The same for torch's CUTLASS 2:4 kernels (SparseSemiStructuredTensorCUTLASS), which the
#: ``sparse_api`` path uses on compute capability 8.x: W needs 32 x 64 in 16 bits, not 16 x 16.
CUTLASS_MIN = {"int8": (16, 128, 16, 16), "float16": (32, 64, 8, 8), "bfloat16": (32, 64, 8, 8)}

#: Gymnasium v5 observation / action sizes (shared/reference/rl.md).
TD3_ENVS = {"hopper": (11, 3), "halfcheetah": (17, 6), "walker2d": (17, 6), "ant": (105, 8)}
WIDTHS = (256, 512, 1024, 2048, 4096)
BATCHES = (1, 32, 256, 1024, 4096)
SQUARE_SIZES = (256, 512, 1024, 2048, 4096, 8192, 16384)
#: Rectangular GEMMs (m, n, k): tall/skinny/deep shapes around the square ones.
RECT_SHAPES = ((4096, 4096, 16384), (4096, 16384, 4096), (16384, 4096, 4096), (1024, 8192, 8192),
               (8192, 8192, 1024), (256, 16384, 16384), (2048, 1024, 8192), (512, 4096, 16384))
ACTOR_FWD_BATCH = 1
TD3_STEP_BATCH = 256


def round_up(x: int, multiple: int) -> int:
    """Smallest multiple of ``multiple`` that is >= ``x`` (and >= ``multiple``)."""
    return max(multiple, int(math.ceil(x / multiple)) * multiple)


def padded_shape(m: int, n: int, k: int, dtype: str, impl: str,
                 backend: str = "cusparselt") -> tuple[int, int, int]:
    """(m, n, k) the kernel of ``impl`` actually runs for a logical ``m x n x k`` GEMM.

    2:4: W (n x k) is the sparse operand, so n and k go up to multiples of the sparse minimum
    of ``backend`` ("cusparselt", or "cutlass" for ``sparse_api`` on compute capability 8.x);
    x (m x k) is the dense operand, m goes up to the dense minimum. Dense int8
    (``torch._int_mm``) needs m > 16 and k, n multiples of 8; dense fp8 (``torch._scaled_mm``)
    multiples of 16. 16-bit dense cuBLAS takes any shape.
    """
    if dtype not in DTYPE_BYTES:
        raise ValueError(f"dtype {dtype!r} not one of {', '.join(DTYPES)}")
    if impl in SPARSE_IMPLS:
        if backend not in ("cusparselt", "cutlass") or (backend == "cutlass" and impl == "sparse_cslt"):
            raise ValueError(f"backend {backend!r} not one of cusparselt, cutlass (sparse_api only)")
        table = CUTLASS_MIN if backend == "cutlass" else CSLT_MIN
        if dtype not in table:
            raise ValueError(f"dtype {dtype!r} has no 2:4 kernel in {backend}")
        smin_r, smin_c, dmin_r, _ = table[dtype]
        return round_up(m, dmin_r), round_up(n, smin_r), round_up(k, smin_c)
    if impl != "dense":
        raise ValueError(f"impl {impl!r} not one of {', '.join(IMPLS)}")
    if dtype == "int8":
        return (m if m > 16 else 32), round_up(n, 8), round_up(k, 8)
    if dtype == "float8_e4m3fn":
        return round_up(m, 16), round_up(n, 16), round_up(k, 16)
    return m, n, k


def impls_for(dtype: str) -> tuple[str, ...]:
    """Implementations timed for ``dtype``: the torch API path exists for 16-bit types only
    (int8 would saturate its int8 output; fp8 ``mm`` raises and needs ``_scaled_mm``)."""
    return IMPLS if DTYPE_BYTES[dtype] == 2 else ("dense", "sparse_cslt")


def impls_for_case(kind: str, dtype: str) -> tuple[str, ...]:
    """Implementations timed for a case: composites run dense and their own 2:4 layers on
    cuSPARSELt (reported as ``sparse_cslt``); GEMMs and layers as :func:`impls_for`."""
    if kind in ("actor_fwd", "td3_step"):
        return ("dense", "sparse_cslt")
    return impls_for(dtype)


@dataclass(frozen=True)
class Case:
    """One timed item.

    Attributes:
        kind: "gemm", "layer", "actor_fwd" or "td3_step".
        name: "square", "rect", the TD3 layers that share the shape ("hopper.actor.fc2+..."),
            or the env of a composite.
        dtype: operand dtype name (a key of DTYPE_BYTES).
        m, n, k: GEMM sizes (for composites: m = batch, n = k = hidden width).
        env: environment of a TD3 shape ("" for plain GEMMs).
        width: hidden width of the TD3 network (0 for plain GEMMs).
        phase: run order; lower first, so a time budget cuts the least important work.
    """

    kind: str
    name: str
    dtype: str
    m: int
    n: int
    k: int
    env: str = ""
    width: int = 0
    phase: int = 0

    @property
    def key(self) -> str:
        """Shape identity used to split calibration and held-out rows (dtype-free)."""
        return f"{self.kind}:{self.m}x{self.n}x{self.k}"

    def as_dict(self) -> dict:
        return asdict(self)


def td3_layer_shapes(env: str, width: int) -> list[tuple[str, int, int]]:
    """(name, in_features k, out_features n) of TD3's actor and critic for ``env`` at ``width``."""
    obs, act = TD3_ENVS[env]
    actor = [obs, width, width, act]
    critic = [obs + act, width, width, 1]
    out = []
    for net, dims in (("actor", actor), ("critic", critic)):
        for i, (k, n) in enumerate(zip(dims[:-1], dims[1:])):
            out.append((f"{env}.{net}.fc{i + 1}", k, n))
    return out


#: Run order (lower first), so that a ``--max-seconds`` budget cuts the least important work:
#: the TD3 hidden layers in the 16-bit types, the composites, the square GEMMs in 16 bits, the
#: real (width 256) TD3 input/output layers in bf16, int8 then fp8, the rectangular GEMMs,
#: the remaining 16-bit input/output layers, and last the 8-bit input/output layers.
PHASES = {"hidden16": 0, "composite": 1, "square16": 2, "io256_bf16": 3, "int8": 4, "fp8": 5,
          "rect": 6, "io16": 7, "io8": 8}


def case_phase(kind: str, dtype: str, hidden: bool = False, width: int = 0) -> int:
    """Run phase of a case (see :data:`PHASES`).

    Args:
        kind: "gemm" (square), "rect", "layer", "actor_fwd" or "td3_step".
        dtype: operand dtype name.
        hidden: for layers, True for a hidden x hidden layer (where 2:4 can win).
        width: for layers, the TD3 hidden width.
    """
    if kind in ("actor_fwd", "td3_step"):
        return PHASES["composite"]
    sixteen = DTYPE_BYTES[dtype] == 2
    if kind == "rect":
        return PHASES["rect"]
    if kind == "layer" and not hidden:
        if dtype == "bfloat16" and width == 256:
            return PHASES["io256_bf16"]
        return PHASES["io16"] if sixteen else PHASES["io8"]
    if sixteen:
        return PHASES["hidden16"] if kind == "layer" else PHASES["square16"]
    return PHASES["int8"] if dtype == "int8" else PHASES["fp8"]


def _layer_cases(envs: Iterable[str], widths: Iterable[int], batches: Iterable[int], dtype: str) -> list[Case]:
    seen: dict[tuple[int, int, int], list[str]] = {}
    meta: dict[tuple[int, int, int], tuple[str, int]] = {}
    for width in widths:
        for env in envs:
            for name, k, n in td3_layer_shapes(env, width):
                for b in batches:
                    seen.setdefault((b, n, k), []).append(name)
                    meta.setdefault((b, n, k), (env, width))
    cases = []
    for (b, n, k), names in seen.items():
        env, width = meta[(b, n, k)]
        # Hidden x hidden layers first: they carry the FLOPs and are where 2:4 can win.
        hidden = n == k == width
        cases.append(Case("layer", "+".join(dict.fromkeys(names)), dtype, b, n, k, env, width,
                          case_phase("layer", dtype, hidden, width)))
    return cases


def build_grid(quick: bool = False) -> list[Case]:
    """All cases of the full (or ``quick``) grid, in run order (by :func:`case_phase`, stable
    otherwise: bf16 before fp16, smaller before larger within a phase).

    The full grid (about 2200 rows) takes longer than a short --max-seconds; the order decides
    what a cut budget keeps (docs/gpu.md, "Measuring your own GPU"). The input/output layers
    use Hopper and Ant only (the smallest and largest observation), the hidden ones are the
    same for every env.
    """
    if quick:
        envs, widths, batches = ("hopper",), (256, 1024, 4096), (1, 256, 4096)
        squares, rects, dtypes = (256, 1024, 4096, 16384), RECT_SHAPES[:2], ("bfloat16", "int8")
        comp_widths = (256, 1024, 4096)
    else:
        envs, widths, batches = ("hopper", "ant"), WIDTHS, BATCHES
        squares, rects, dtypes = SQUARE_SIZES, RECT_SHAPES, DTYPES
        comp_widths = WIDTHS
    cases: list[Case] = []
    for w in comp_widths:
        cases.append(Case("actor_fwd", "hopper", "bfloat16", ACTOR_FWD_BATCH, w, w, "hopper", w,
                          case_phase("actor_fwd", "bfloat16")))
        cases.append(Case("td3_step", "hopper", "bfloat16", TD3_STEP_BATCH, w, w, "hopper", w,
                          case_phase("td3_step", "bfloat16")))
    for dtype in dtypes:
        cases += [Case("gemm", "square", dtype, s, s, s, phase=case_phase("gemm", dtype)) for s in squares]
        cases += [Case("gemm", "rect", dtype, m, n, k, phase=case_phase("rect", dtype)) for m, n, k in rects]
        cases += _layer_cases(envs, widths, batches, dtype)
    return sorted(cases, key=lambda c: c.phase)


# --- a rough run-time estimate of the bench, to order the grid and plan a run ------------------

#: H200 figures the estimate uses (shared/reference/gpu.md): bf16 dense
#: GEMM measured at ~790 TFLOP/s on random data; 8-bit at twice that; 2:4 taken as 1.3x
#: dense (published H100 speedups are 0.6-1.8x); HBM ~4.3 TB/s copy; an fp32 reference GEMM
#: (TF32 off) at ~50 TFLOP/s; ~6 us per eager launch.
_EST = {"tflops16": 790.0, "tflops8": 1580.0, "sparse_gain": 1.3, "bytes_per_s": 4.3e12,
        "ref_tflops": 50.0, "launch_s": 6e-6}


def estimate_seconds(case: Case, impl: str, profile: bool = True) -> float:
    """Rough wall-clock seconds the harness spends on one row on an H200.

    Host overheads (operand sets, the reference, graph capture, the profiler, cuSPARSELt's
    searches) are guesses from how the harness works, not measurements: the estimate is for
    ordering and planning only. The bench logs it per phase at the start of a run.
    """
    if case.kind == "td3_step":
        return 2.0 + (0.5 if impl != "dense" else 0.0) + (0.3 if profile else 0.0)
    if case.kind == "actor_fwd":
        return 0.4 + (0.3 if profile else 0.0)
    m, n, k = padded_shape(case.m, case.n, case.k, case.dtype, impl)
    eight = DTYPE_BYTES[case.dtype] == 1
    rate = (_EST["tflops8"] if eight else _EST["tflops16"]) * 1e12
    if impl != "dense":
        rate *= _EST["sparse_gain"]
    nbytes = DTYPE_BYTES[case.dtype] * (m * k + n * k) + OUT_DTYPE[case.dtype][1] * m * n
    call_s = max(2.0 * m * n * k / rate, nbytes / _EST["bytes_per_s"]) + _EST["launch_s"]
    # measure(): 6 warm-up/probe calls, eager reps (>= 10, ~20 ms), graph (>= 5 replays, ~20 ms)
    timing = 6 * call_s + max(0.02, 10 * call_s) + max(0.02, 5 * 2 * call_s) + 0.02
    sets = min(256, max(2, math.ceil(2 * 60e6 / nbytes)))
    setup = sets * (60e-6 if impl == "dense" else 150e-6) + 2.0 * m * n * k / (_EST["ref_tflops"] * 1e12)
    search = 0.0
    if impl == "sparse_cslt":
        # our alg_id search (~20 alg_ids x 6 calls, capped at 1.5 s) + the library's own
        search = min(1.5, 20 * (6 * call_s + 1e-3)) + 20 * 5 * call_s
    profiled = profile and (case.kind == "gemm" or (m != case.m and impl != "sparse_cslt"))
    return 0.05 + timing + setup + search + (0.3 if profiled else 0.0)


# --- the TD3 composites as GEMM lists, shared by the harness's docs and the model -------------

def mlp_dims(net: str, env: str, width: int) -> list[int]:
    """Layer sizes of TD3's ``net`` ("actor" or "critic") for ``env`` at hidden ``width``."""
    obs, act = TD3_ENVS[env]
    return [obs, width, width, act] if net == "actor" else [obs + act, width, width, 1]


@dataclass(frozen=True)
class Gemm:
    """One GEMM of a composite: sizes (m, n, k) and whether it runs 2:4 in the sparse variant."""

    m: int
    n: int
    k: int
    sparse: bool = False


def _forward(net: str, env: str, width: int, batch: int, sparse: bool) -> list[Gemm]:
    dims = mlp_dims(net, env, width)
    # Only hidden x hidden layers are 2:4 (I/O layers have k or n < 16: padding would waste).
    return [Gemm(batch, n, k, sparse and n == k == width) for k, n in zip(dims[:-1], dims[1:])]


def _backward(net: str, env: str, width: int, batch: int, input_grad: bool) -> list[Gemm]:
    """Dense backward GEMMs of one MLP: dW = dY^T X (n x k x batch) and dX = dY W (batch x k x n)."""
    dims = mlp_dims(net, env, width)
    out = []
    for i, (k, n) in enumerate(zip(dims[:-1], dims[1:])):
        out.append(Gemm(n, k, batch))
        if i > 0 or input_grad:
            out.append(Gemm(batch, k, n))
    return out


def actor_forward_gemms(env: str, width: int, batch: int, sparse: bool) -> list[Gemm]:
    """GEMMs of one actor forward (3 layers; hidden one 2:4 when ``sparse``)."""
    return _forward("actor", env, width, batch, sparse)


def td3_step_gemms(env: str, width: int, batch: int, sparse: bool) -> list[Gemm]:
    """GEMMs of one full (delayed) TD3 update as the harness runs it.

    Target actor + two target critics (no grad), two critics forward, critic backward; actor
    forward, critic1 forward on its actions, backward through both (critic1 needs dX of its
    first layer for the action gradient). Backward GEMMs are dense in both variants: the
    transposed weight is not 2:4 along its rows.
    """
    g: list[Gemm] = []
    g += _forward("actor", env, width, batch, sparse)          # target actor
    g += 2 * _forward("critic", env, width, batch, sparse)     # target critics
    g += 2 * _forward("critic", env, width, batch, sparse)     # critics
    g += 2 * _backward("critic", env, width, batch, input_grad=False)
    g += _forward("actor", env, width, batch, sparse)          # actor
    g += _forward("critic", env, width, batch, sparse)         # critic1(s, actor(s))
    g += _backward("critic", env, width, batch, input_grad=True)
    g += _backward("actor", env, width, batch, input_grad=False)
    return g
