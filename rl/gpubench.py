"""``nmlab gpu bench``: time dense vs 2:4 GEMMs, TD3 layers, an actor forward and a TD3 step.

Runs on one CUDA GPU in one call and writes the CSV of ``hwmodel/gpu/schema.py`` (format in
docs/gpu.md) plus a log beside it. Also runnable without installing nmlab, on a machine with
only torch: ``python rl/gpubench.py --out FILE.csv`` (or ``python -m rl.gpubench``) from the
repository root. This module imports only the standard library at import time (torch when
it runs); the grid, schema and statistics modules are standard-library only and load by
file path when the ``hwmodel`` package cannot be imported (its ``__init__`` needs numpy).

Method (shared/reference/gpu.md): random data (never zeros: zeros draw less power and run
faster); a warm-up; CUDA events around every call, median of many calls; input sets rotated
so the data exceed L2; eager and CUDA-graph timings; for cuSPARSELt every alg_id is run,
checked against an fp32 reference and timed, and the fastest correct one is kept (the
library's own search is recorded beside it). Every case runs in try/except: a failure is
one row with ``status=error`` and the run goes on. ``--max-seconds`` bounds the whole run;
cases left when it runs out are written as ``status=skipped``.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import importlib.util
import math
import os
import subprocess
import sys
import time
import traceback
from pathlib import Path
from typing import Any, Callable, Optional

#: Relative error bound (max |Y - ref| / max |ref|) per output dtype of the check.
#: Loose enough for fp16 accumulation over k = 16384, tight enough to catch a wrong alg_id
#: (pytorch#155333: those are off by O(1)).
TOLERANCE = {"bfloat16": 2e-2, "float16": 1e-2, "int32": 1e-6, "float32": 1e-3}
_DEFAULT_L2_BYTES = 50 * 2**20
#: Where tensors are made. Always "cuda" in a bench; the CPU tests of the TD3 step logic set
#: "cpu" (with stand-ins for the cuSPARSELt ops, which exist only on CUDA).
DEVICE = "cuda"
#: Wall-clock cap on one case's cuSPARSELt alg_id search (the run has a fixed budget).
SEARCH_SECONDS = 1.5
#: cuSPARSELt's own search (every configuration, several times) only where one call, timed
#: on the host with its first-call overheads, takes at most this long.
LIB_SEARCH_MAX_CALL_S = 0.02


if __name__ == "__main__" and not __package__ and sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    # Run as ``python rl/gpubench.py``: Python put rl/ first on sys.path, where our module
    # names (export, evaluate, replay, ...) could shadow packages that torch imports.
    sys.path.pop(0)


def _torchfree_modules():
    """(grid, schema, stats): imported normally, or by file path when ``hwmodel`` cannot be
    imported (its ``__init__`` needs numpy and pyyaml, which a bare torch machine may lack,
    or fails in another way under that machine's package versions)."""
    try:
        from hwmodel.gpu import grid, schema, stats

        return grid, schema, stats
    except Exception:  # noqa: BLE001 - any failure of the package import: load the three files
        folder = Path(__file__).resolve().parents[1] / "hwmodel" / "gpu"
        mods = []
        for name in ("grid", "schema", "stats"):
            spec = importlib.util.spec_from_file_location(f"_nmlab_gpu_{name}", folder / f"{name}.py")
            mod = importlib.util.module_from_spec(spec)
            sys.modules[spec.name] = mod  # dataclasses look their module up here
            spec.loader.exec_module(mod)
            mods.append(mod)
        return tuple(mods)


grid, schema, stats = _torchfree_modules()


#: ``--help``'s description, for ``nmlab gpu bench`` and ``python rl/gpubench.py`` alike: what a
#: run writes and what to do with it (the help listed the options only).
DESCRIPTION = (
    "Time dense vs 2:4 GEMMs, TD3 layers, an actor forward and a TD3 step on this machine's CUDA GPU "
    "(needs torch with CUDA). Writes OUT (CSV, schema in docs/gpu.md) at the end, OUT.partial row by row "
    "while it runs, and a log beside OUT (.log) whose first lines estimate each phase's time. Cases the "
    "--max-seconds budget leaves out are written as skipped. Then check the GPU model on it: "
    "nmlab gpu validate --data OUT (--gpu SPEC.yaml for a GPU without a bundled spec).")


class NoGpu(Exception):
    """No CUDA device: the command prints one line and exits 2."""


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The bench's options, shared by ``nmlab gpu bench`` and ``python rl/gpubench.py``."""
    p.add_argument("--out", required=True, help="CSV to write (a .log is written beside it)")
    p.add_argument("--quick", action="store_true", help="small grid (about an eighth of the full one)")
    p.add_argument("--max-seconds", type=float, default=480.0,
                   help="time budget for the whole run; later cases are written as skipped (default 480)")
    p.add_argument("--target-ms", type=float, default=20.0, help="GPU time per timing statistic (default 20 ms)")
    p.add_argument("--no-profile", action="store_true", help="do not count kernels with the torch profiler")
    # Internal: a run whose CUDA context broke (a sticky error such as an illegal address
    # makes every later CUDA call fail) re-executes itself and carries on from the next row.
    p.add_argument("--resume-at", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--run-id", default=None, help=argparse.SUPPRESS)
    p.add_argument("--deadline-epoch", type=float, default=None, help=argparse.SUPPRESS)
    p.add_argument("--restarts", type=int, default=0, help=argparse.SUPPRESS)


def bad_argument(args: argparse.Namespace) -> Optional[str]:
    """Why the budget options cannot be used (one line), or None. ``nan`` would disable the
    --max-seconds deadline (every comparison with it is false); a target of 0 or less ms
    silently times with the minimum repetitions."""
    for flag, value in (("--max-seconds", args.max_seconds), ("--target-ms", args.target_ms)):
        if not (math.isfinite(value) and value > 0):
            return f"{flag}: must be > 0 and finite, got {value}"
    return None


#: Fresh processes a run may start after losing its CUDA context.
MAX_RESTARTS = 3


def context_lost(torch) -> bool:
    """True when this process's CUDA context no longer works (a sticky error)."""
    try:
        torch.cuda.synchronize()
        probe = torch.ones(4, device=DEVICE)
        return float((probe + 1).sum().item()) != 8.0
    except Exception:  # noqa: BLE001 - any failure here means the context is gone
        return True


def restart_argv(args: argparse.Namespace, resume_at: int, run_id: str, deadline_epoch: float) -> list[str]:
    """Command line of the fresh process that carries on at row ``resume_at`` of the same run."""
    argv = [sys.executable, str(Path(__file__).resolve()), "--out", str(args.out),
            "--max-seconds", str(args.max_seconds), "--target-ms", str(args.target_ms),
            "--resume-at", str(resume_at), "--run-id", run_id, "--deadline-epoch", repr(deadline_epoch),
            "--restarts", str(int(getattr(args, "restarts", 0) or 0) + 1)]
    return argv + (["--quick"] if args.quick else []) + (["--no-profile"] if args.no_profile else [])


def _exec(argv: list[str]) -> None:
    """Replace this process (tests replace this function)."""
    os.execv(argv[0], argv)


def require_gpu():
    """Import torch and return it, or raise NoGpu with a one-line reason."""
    try:
        import torch
    except ImportError:
        raise NoGpu("torch is not installed") from None
    if not torch.cuda.is_available():
        build = torch.version.cuda or "none (CPU build)"
        raise NoGpu(f"no CUDA GPU: torch {torch.__version__} (CUDA {build}) sees no CUDA device")
    return torch


# --------------------------------------------------------------------------- environment

def _bare_uuid(value: Any) -> str:
    """A GPU UUID without its "GPU-"/"MIG-" prefix, lower case ("" if unknown): torch prints
    ``props.uuid`` bare, nvidia-smi and NVML with the prefix."""
    text = str(value or "").strip().lower()
    for prefix in ("gpu-", "mig-"):
        if text.startswith(prefix):
            return text[len(prefix):]
    return text


class Environment:
    """Device, library versions and (cached) clock readings recorded on every row."""

    def __init__(self, torch):
        props = torch.cuda.get_device_properties(0)
        self.cc = (props.major, props.minor)
        l2 = int(getattr(props, "L2_cache_size", 0) or 0)
        self.l2_bytes = l2 if l2 > 0 else _DEFAULT_L2_BYTES
        cslt = None
        try:
            cslt = torch.backends.cusparselt.version()
        except Exception:  # noqa: BLE001 - old torch without the module
            pass
        self.static = {
            "device_name": props.name,
            "compute_capability": f"{props.major}.{props.minor}",
            "sm_count": props.multi_processor_count,
            "l2_bytes": l2 if l2 > 0 else -1,
            "mem_bytes": props.total_memory,
            "torch": torch.__version__,
            "cuda": torch.version.cuda or "",
            "cusparselt": "" if cslt is None else str(cslt),
        }
        self._clocks: dict[str, Any] = {}
        self._clocks_at = -1e9
        # nvidia-smi and NVML number GPUs by PCI order and ignore CUDA_VISIBLE_DEVICES, so
        # "index 0" may be another card than torch's device 0: match the UUID instead.
        self._uuid = _bare_uuid(getattr(props, "uuid", ""))
        self.static["driver"] = self._smi().get("driver", "")

    def _smi(self) -> dict[str, Any]:
        """Driver and clock readings of torch's device (the GPU with its UUID); {} if unknown.
        Where no line matches (a MIG instance, an old torch without ``uuid``) only a machine
        with one GPU is read: the readings of another card would be wrong, not unknown."""
        fields = "uuid,driver_version,clocks.sm,clocks.mem,clocks.max.sm,power.limit,temperature.gpu"
        try:
            lines = subprocess.run(["nvidia-smi", f"--query-gpu={fields}", "--format=csv,noheader,nounits"],
                                   capture_output=True, text=True, timeout=10).stdout.strip().splitlines()
            rows = [[p.strip() for p in line.split(",")] for line in lines if line.strip()]
            if not rows or any(len(r) < 7 for r in rows):
                raise ValueError(lines)
        except Exception:  # noqa: BLE001 - no nvidia-smi: NVML (nvidia-ml-py), else unknown
            return self._nvml()
        mine = [r for r in rows if getattr(self, "_uuid", "") and _bare_uuid(r[0]) == self._uuid]
        if not mine and len(rows) > 1:
            return {"driver": rows[0][1]}  # the same driver serves every GPU
        parts = (mine or rows)[0][1:]

        def num(text: str) -> float:
            try:
                return float(text)
            except ValueError:
                return -1.0

        return {"driver": parts[0], "sm_clock_mhz": num(parts[1]), "mem_clock_mhz": num(parts[2]),
                "max_sm_clock_mhz": num(parts[3]), "power_limit_w": num(parts[4]), "temperature_c": num(parts[5])}

    def _nvml(self) -> dict[str, Any]:
        """The same readings through NVML (``pynvml`` from nvidia-ml-py); {} if unavailable."""
        try:
            import pynvml

            pynvml.nvmlInit()
            drv = pynvml.nvmlSystemGetDriverVersion()
            driver = drv.decode() if isinstance(drv, bytes) else str(drv)
            uuid = getattr(self, "_uuid", "")
            try:
                h = pynvml.nvmlDeviceGetHandleByUUID(f"GPU-{uuid}") if uuid else None
            except Exception:  # noqa: BLE001 - a MIG instance's UUID: only a single GPU is read
                h = None
            if h is None:
                if pynvml.nvmlDeviceGetCount() != 1:
                    return {"driver": driver}
                h = pynvml.nvmlDeviceGetHandleByIndex(0)
            return {"driver": driver,
                    "sm_clock_mhz": float(pynvml.nvmlDeviceGetClockInfo(h, pynvml.NVML_CLOCK_SM)),
                    "mem_clock_mhz": float(pynvml.nvmlDeviceGetClockInfo(h, pynvml.NVML_CLOCK_MEM)),
                    "max_sm_clock_mhz": float(pynvml.nvmlDeviceGetMaxClockInfo(h, pynvml.NVML_CLOCK_SM)),
                    "power_limit_w": pynvml.nvmlDeviceGetEnforcedPowerLimit(h) / 1000.0,
                    "temperature_c": float(pynvml.nvmlDeviceGetTemperature(h, pynvml.NVML_TEMPERATURE_GPU))}
        except Exception:  # noqa: BLE001 - no NVML either: clocks unknown
            return {}

    def clocks(self) -> dict[str, Any]:
        """Clock readings, refreshed at most every 5 s (nvidia-smi costs ~50 ms)."""
        if time.monotonic() - self._clocks_at > 5.0:
            smi = self._smi()
            self._clocks = {k: smi.get(k, -1.0) for k in
                            ("sm_clock_mhz", "mem_clock_mhz", "max_sm_clock_mhz", "power_limit_w", "temperature_c")}
            self._clocks_at = time.monotonic()
        return dict(self._clocks)

    def supports(self, dtype: str) -> Optional[str]:
        """None if ``dtype`` runs on this GPU, else why not."""
        if dtype == "float8_e4m3fn" and self.cc < (8, 9):
            return f"fp8 needs compute capability >= 8.9, this GPU is {self.cc[0]}.{self.cc[1]}"
        return None


# --------------------------------------------------------------------------- timing

def time_eager(torch, fn: Callable[[int], Any], n_sets: int, reps: int) -> list[float]:
    """Per-call microseconds: CUDA events recorded around each call, call ``r`` on set ``r % n_sets``.

    When calls are shorter than their launch, the start event fires before the kernel is
    launched, so the time includes the CPU launch cost: that is what eager code pays.
    """
    starts = [torch.cuda.Event(enable_timing=True) for _ in range(reps)]
    ends = [torch.cuda.Event(enable_timing=True) for _ in range(reps)]
    torch.cuda.synchronize()
    for r in range(reps):
        starts[r].record()
        fn(r % n_sets)
        ends[r].record()
    torch.cuda.synchronize()
    return [s.elapsed_time(e) * 1000.0 for s, e in zip(starts, ends)]


def time_graph(torch, fn: Callable[[int], Any], n_sets: int, est_us: float, target_us: float) -> list[float]:
    """Per-call microseconds inside a CUDA graph that runs ``calls`` calls over all sets.

    Warm-up on a side stream, capture, then events around each replay; per-call time is the
    replay time divided by the calls captured.
    """
    calls = int(min(256, max(n_sets, math.ceil(2000.0 / max(est_us, 1.0)))))
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for i in range(3):
            fn(i % n_sets)
    torch.cuda.current_stream().wait_stream(side)
    torch.cuda.synchronize()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        for i in range(calls):
            fn(i % n_sets)
    graph.replay()
    torch.cuda.synchronize()
    replays = stats.choose_reps(calls * est_us, target_us, lo=5, hi=50)
    starts = [torch.cuda.Event(enable_timing=True) for _ in range(replays)]
    ends = [torch.cuda.Event(enable_timing=True) for _ in range(replays)]
    for r in range(replays):
        starts[r].record()
        graph.replay()
        ends[r].record()
    torch.cuda.synchronize()
    del graph
    return [s.elapsed_time(e) * 1000.0 / calls for s, e in zip(starts, ends)]


def measure(torch, fn: Callable[[int], Any], n_sets: int, target_us: float, row: dict[str, Any]) -> None:
    """Warm up, time eager and graph, and fill the row's timing columns."""
    for i in range(3):
        fn(i % n_sets)
    probe = stats.median(time_eager(torch, fn, n_sets, 3))
    eager = stats.summarize(time_eager(torch, fn, n_sets, stats.choose_reps(probe, target_us)))
    row.update(eager_median_us=eager["median_us"], eager_p10_us=eager["p10_us"],
               eager_p90_us=eager["p90_us"], eager_reps=eager["reps"])
    try:
        graph = stats.summarize(time_graph(torch, fn, n_sets, eager["median_us"], target_us))
        row.update(graph_median_us=graph["median_us"], graph_p10_us=graph["p10_us"],
                   graph_p90_us=graph["p90_us"], graph_reps=graph["reps"])
    except Exception as exc:  # noqa: BLE001 - some paths cannot be captured; keep the eager time
        row["graph_error"] = f"{type(exc).__name__}: {exc}"[:300]
        torch.cuda.synchronize()


def count_kernels(torch, fn: Callable[[], Any]) -> int:
    """CUDA kernels (and memsets/copies) one call launches, from the torch profiler; -1 if unknown."""
    try:
        from torch.profiler import ProfilerActivity, profile

        torch.cuda.synchronize()
        with profile(activities=[ProfilerActivity.CUDA]) as prof:
            fn()
            torch.cuda.synchronize()
        names = [e for e in prof.events() if getattr(e, "device_type", None) == torch.autograd.DeviceType.CUDA]
        return len(names) if names else -1
    except Exception:  # noqa: BLE001 - CUPTI unavailable: unknown, not fatal
        return -1


# --------------------------------------------------------------------------- data

def torch_dtype(torch, name: str):
    return getattr(torch, name)


def random_operand(torch, rows: int, cols: int, dtype: str, mask=None):
    """Random ``rows x cols`` tensor of ``dtype`` without zeros (before masking).

    16-bit: normal; fp8: normal magnitudes in [0.5, 2] with random sign; int8: integers
    +-1..3 (so int32 sums stay exact in an fp32 reference). ``mask`` (bool) zeroes entries.
    """
    dev = DEVICE
    if dtype == "int8":
        mag = torch.randint(1, 4, (rows, cols), device=dev).float()
        val = mag * (torch.randint(0, 2, (rows, cols), device=dev).float() * 2 - 1)
    elif dtype == "float8_e4m3fn":
        val = (torch.rand(rows, cols, device=dev) * 1.5 + 0.5) * (torch.randint(0, 2, (rows, cols), device=dev).float() * 2 - 1)
    else:
        val = torch.randn(rows, cols, device=dev)
    if mask is not None:
        val = val * mask
    return val.to(torch_dtype(torch, dtype))


def mask_2of4(torch, rows: int, cols: int):
    """Random 2:4 mask over groups of 4 along the columns (the reduction dimension)."""
    scores = torch.rand(rows, cols // 4, 4, device=DEVICE)
    keep = scores.topk(2, dim=-1).indices
    mask = torch.zeros(rows, cols // 4, 4, dtype=torch.bool, device=DEVICE).scatter_(-1, keep, True)
    return mask.reshape(rows, cols)


def rel_error(torch, y, ref) -> float:
    """max |y - ref| / max |ref| in float64."""
    y = y.double()
    ref = ref.double()
    scale = ref.abs().max().item()
    return float((y - ref).abs().max().item() / (scale if scale > 0 else 1.0))


def reference(torch, x, w):
    """fp32 reference X W^T from the exact operand values (TF32 off)."""
    try:
        prev = torch.backends.cuda.matmul.allow_tf32
        torch.backends.cuda.matmul.allow_tf32 = False
    except Exception:  # noqa: BLE001 - flag gone in this torch: TF32 is off by default anyway
        return x.float() @ w.float().t()
    try:
        return x.float() @ w.float().t()
    finally:
        torch.backends.cuda.matmul.allow_tf32 = prev


def nbytes(*tensors) -> int:
    return int(sum(t.numel() * t.element_size() for t in tensors if t is not None))


# --------------------------------------------------------------------------- GEMM paths

DENSE_PATH = {"int8": "torch._int_mm(x, W.t())", "float8_e4m3fn": "torch._scaled_mm(x, W.t(), unit scales, bf16 out)"}


def dense_op(torch, dtype: str) -> Callable:
    """y = x W^T on cuBLAS for ``dtype`` (x: m x k row-major, W: n x k row-major)."""
    F = torch.nn.functional
    if dtype == "int8":
        return lambda x, w: torch._int_mm(x, w.t())
    if dtype == "float8_e4m3fn":
        one = torch.ones((), device=DEVICE, dtype=torch.float32)

        def fp8(x, w):
            out = torch._scaled_mm(x, w.t(), scale_a=one, scale_b=one, out_dtype=torch.bfloat16)
            return out[0] if isinstance(out, tuple) else out  # torch < 2.4 returned (out, amax)

        return fp8
    return lambda x, w: F.linear(x, w)


def run_dense(torch, case, env: Environment, args, row: dict[str, Any]) -> None:
    mp, np_, kp = grid.padded_shape(case.m, case.n, case.k, case.dtype, "dense")
    row.update(m_pad=mp, n_pad=np_, k_pad=kp, backend="cublas", out_dtype=grid.OUT_DTYPE[case.dtype][0],
               api_path=DENSE_PATH.get(case.dtype, "F.linear(x, W)"))
    op = dense_op(torch, case.dtype)
    x0, w0 = random_operand(torch, mp, kp, case.dtype), random_operand(torch, np_, kp, case.dtype)
    y0 = op(x0, w0)
    set_bytes = nbytes(x0, w0, y0)
    n_sets = stats.rotation_sets(set_bytes, env.l2_bytes)
    sets = [(x0, w0)] + [(random_operand(torch, mp, kp, case.dtype), random_operand(torch, np_, kp, case.dtype))
                         for _ in range(n_sets - 1)]
    err = rel_error(torch, y0.float(), reference(torch, x0, w0))
    row.update(rotate_sets=n_sets, set_bytes=set_bytes, max_rel_err=err, check_ok=err <= TOLERANCE[row["out_dtype"]])
    fn = lambda i: op(*sets[i])  # noqa: E731
    measure(torch, fn, n_sets, args.target_ms * 1000.0, row)
    if not args.no_profile and (case.kind == "gemm" or case.m != mp):
        row["kernels_per_call"] = count_kernels(torch, lambda: fn(0))


def _cslt_variants(dtype: str, torch) -> list[tuple[bool, Any]]:
    """(transpose_result, out_dtype) to try, preferred first: a row-major m x n output like
    F.linear's; int8 into int32 (exact), else bf16; fp8 into bf16."""
    if dtype == "int8":
        return [(True, torch.int32), (False, torch.int32), (True, torch.bfloat16), (False, torch.bfloat16)]
    if dtype == "float8_e4m3fn":
        return [(True, torch.bfloat16), (False, torch.bfloat16)]
    return [(True, None), (False, None)]


def _max_alg_id(torch) -> tuple[int, str]:
    """(alg_ids to probe, where that bound came from). ``get_max_alg_id`` knows only a few
    cuSPARSELt versions (None for 0.8.x): then probe until an alg_id is refused."""
    try:
        top = torch.backends.cusparselt.get_max_alg_id()
    except Exception:  # noqa: BLE001 - old torch without it
        top = None
    return (int(top) + 1, "get_max_alg_id") if top is not None else (64, "probe")


def library_search(torch, c, b, od, tr) -> tuple[Optional[dict[str, int]], str]:
    """cuSPARSELt's own pick for ``c @ b``: ({"alg_id", "split_k", "split_k_mode", "max_alg_id"}
    or None, which entry point answered).

    torch >= 2.6 has ``torch._C._cusparselt.mm_search`` -> (alg_id, split_k, split_k_mode
    (a bool "one kernel" in some builds), max_alg_id); ``torch._cslt_sparse_mm_search`` (int
    alg_id only) is deprecated and may be gone.
    """
    errors = []
    mod = getattr(getattr(torch, "_C", None), "_cusparselt", None)
    if callable(getattr(mod, "mm_search", None)):
        try:
            out = mod.mm_search(c, b, None, None, od, tr)
            vals = list(out) if isinstance(out, (tuple, list)) else [out]
            keys = ("alg_id", "split_k", "split_k_mode", "max_alg_id")
            found = {key: int(v) for key, v in zip(keys, vals)}
            return found, "mm_search"
        except Exception as exc:  # noqa: BLE001 - try the deprecated one
            errors.append(f"mm_search {type(exc).__name__}")
    if callable(getattr(torch, "_cslt_sparse_mm_search", None)):
        try:
            out = torch._cslt_sparse_mm_search(c, b, None, None, od, tr)
            return {"alg_id": int(out[0] if isinstance(out, (tuple, list)) else out)}, "_cslt_sparse_mm_search"
        except Exception as exc:  # noqa: BLE001 - not recorded
            errors.append(f"_cslt_sparse_mm_search {type(exc).__name__}")
    return None, "none" + (f"({'; '.join(errors)})" if errors else "")


def run_sparse_cslt(torch, case, env: Environment, args, row: dict[str, Any]) -> None:
    """torch._cslt_sparse_mm on pre-padded operands with the fastest correct configuration:
    every alg_id at split-K 1, plus cuSPARSELt's own pick (which may split K)."""
    mp, np_, kp = grid.padded_shape(case.m, case.n, case.k, case.dtype, "sparse_cslt")
    row.update(m_pad=mp, n_pad=np_, k_pad=kp, backend="cusparselt")
    mask = mask_2of4(torch, np_, kp)
    x0 = random_operand(torch, mp, kp, case.dtype)
    w0 = random_operand(torch, np_, kp, case.dtype, mask=mask)
    c0 = torch._cslt_compress(w0)
    ref = reference(torch, x0, w0)

    def call(x, c, alg: int, tr: bool, od, split: Optional[tuple[int, int]] = None):
        if split is None:  # leave split_k at its default: the signature differs between versions
            return torch._cslt_sparse_mm(c, x.t(), None, None, od, tr, alg)
        return torch._cslt_sparse_mm(c, x.t(), None, None, od, tr, alg, split[0], split[1])

    def check(y, tr: bool) -> float:
        return rel_error(torch, (y if tr else y.t()).float(), ref)

    # The first (layout, output dtype) that runs and is right at alg 0; else the first that
    # runs (the search below may still find a correct alg_id).
    variant, fallback, last_exc = None, None, None
    for tr, od in _cslt_variants(case.dtype, torch):
        try:
            y = call(x0, c0, 0, tr, od)
            torch.cuda.synchronize()
        except Exception as exc:  # noqa: BLE001 - try the next layout / output dtype
            last_exc = exc
            continue
        name = str(od).replace("torch.", "") if od is not None else case.dtype
        if check(y, tr) <= TOLERANCE.get(name, 2e-2):
            variant = (tr, od)
            break
        fallback = fallback or (tr, od)
    variant = variant or fallback
    if variant is None:
        raise RuntimeError(f"no cuSPARSELt variant ran: {type(last_exc).__name__}: {last_exc}")
    tr, od = variant
    out_name = str(od).replace("torch.", "") if od is not None else case.dtype
    row["out_dtype"] = out_name
    tol = TOLERANCE.get(out_name, 2e-2)
    started = time.monotonic()  # a second call: the first paid one-time set-up
    call(x0, c0, 0, tr, od)
    torch.cuda.synchronize()
    call_s = time.monotonic() - started

    # The library's own pick first: it also tells how many alg_ids this shape has. Its
    # search runs every configuration several times: skipped where one call is long (the
    # largest GEMMs, which have tiles enough not to need split-K), to keep the budget.
    if call_s <= LIB_SEARCH_MAX_CALL_S:
        lib, lib_path = library_search(torch, c0, x0.t(), od, tr)
    else:
        lib, lib_path = None, f"skipped(one call {call_s * 1e3:.0f} ms)"
    row["lib_alg_id"] = lib["alg_id"] if lib else -1
    if lib and lib.get("max_alg_id", 0) > 0:
        n_algs, bound = lib["max_alg_id"] + 1, "mm_search"
    else:
        n_algs, bound = _max_alg_id(torch)

    # Algorithm search: run, check and time every alg_id; keep the fastest correct one.
    tried, wrong, best = 0, 0, None
    search_end = time.monotonic() + SEARCH_SECONDS
    for alg in range(n_algs):
        if time.monotonic() > search_end:
            break
        try:
            y = call(x0, c0, alg, tr, od)
            torch.cuda.synchronize()
        except Exception:  # noqa: BLE001 - past the last valid alg_id
            break
        tried += 1
        err = check(y, tr)
        if not err <= tol:
            wrong += 1
            continue
        t = stats.median(time_eager(torch, lambda i: call(x0, c0, alg, tr, od), 1, 5))
        if best is None or t < best[1]:
            best = (alg, t, err, None)
    # The library's pick when it splits K (our search keeps split-K at 1): checked and timed too.
    lib_note = "-"
    if lib and lib.get("split_k", 1) not in (0, 1):
        split = (lib["split_k"], lib.get("split_k_mode", -1))
        lib_note = f"{lib['alg_id']}/sk{split[0]}/mode{split[1]}"
        try:
            y = call(x0, c0, lib["alg_id"], tr, od, split)
            torch.cuda.synchronize()
            tried += 1
            err = check(y, tr)
            if not err <= tol:
                wrong += 1
                lib_note += ":wrong"
            else:
                t = stats.median(time_eager(torch, lambda i: call(x0, c0, lib["alg_id"], tr, od, split), 1, 5))
                if best is None or t < best[1]:
                    best = (lib["alg_id"], t, err, split)
        except Exception as exc:  # noqa: BLE001 - this torch's split_k arguments differ: alg_ids only
            lib_note += f":{type(exc).__name__}"
    row.update(algs_tried=tried, algs_wrong=wrong)
    if best is None:
        raise RuntimeError(f"all {tried} cuSPARSELt configurations failed the numerical check (tol {tol})")
    alg, _, err, split = best
    row.update(alg_id=alg, max_rel_err=err, check_ok=True, split_k=split[0] if split else 1,
               api_path=f"torch._cslt_sparse_mm(Wc, x.t()) transpose_result={int(tr)} out={out_name} "
                        f"search={lib_path} algs={bound}:{n_algs} lib_split={lib_note}")

    y0 = call(x0, c0, alg, tr, od, split)
    set_bytes = nbytes(x0, c0, y0)
    n_sets = stats.rotation_sets(set_bytes, env.l2_bytes)
    sets = [(x0, c0)]
    for _ in range(n_sets - 1):
        sets.append((random_operand(torch, mp, kp, case.dtype),
                     torch._cslt_compress(random_operand(torch, np_, kp, case.dtype, mask=mask))))
    row.update(rotate_sets=n_sets, set_bytes=set_bytes)
    fn = lambda i: call(sets[i][0], sets[i][1], alg, tr, od, split)  # noqa: E731
    measure(torch, fn, n_sets, args.target_ms * 1000.0, row)
    if not args.no_profile and case.kind == "gemm":
        row["kernels_per_call"] = count_kernels(torch, lambda: fn(0))


def run_sparse_api(torch, case, env: Environment, args, row: dict[str, Any]) -> None:
    """F.linear(x, to_sparse_semi_structured(W)): the user-level path with its own padding."""
    from torch.sparse import SparseSemiStructuredTensor, to_sparse_semi_structured

    # Hopper must use cuSPARSELt (the default changed between torch versions); CUTLASS
    # kernels exist only for compute capability 8.x.
    SparseSemiStructuredTensor._FORCE_CUTLASS = env.cc[0] == 8
    backend = "cutlass" if SparseSemiStructuredTensor._FORCE_CUTLASS else "cusparselt"
    # W must meet the sparse minimum of the backend that runs (CUTLASS's is larger), so a user
    # pads it (and x's k) once; the API pads x's rows to the dense minimum on every call,
    # which is part of what we time.
    mp, np_, kp = grid.padded_shape(case.m, case.n, case.k, case.dtype, "sparse_api", backend)
    row.update(m_pad=mp, n_pad=np_, k_pad=kp, backend=backend, out_dtype=case.dtype)
    F = torch.nn.functional
    mask = mask_2of4(torch, np_, kp)
    x0 = random_operand(torch, case.m, kp, case.dtype)
    w0 = random_operand(torch, np_, kp, case.dtype, mask=mask)
    s0 = to_sparse_semi_structured(w0)
    row["api_path"] = (f"F.linear(x, to_sparse_semi_structured(W)) {type(s0).__name__} "
                       f"_FORCE_CUTLASS={SparseSemiStructuredTensor._FORCE_CUTLASS}")
    y0 = F.linear(x0, s0)
    if tuple(y0.shape) != (case.m, np_):
        raise RuntimeError(f"sparse F.linear returned shape {tuple(y0.shape)}, expected {(case.m, np_)}")
    err = rel_error(torch, y0.float(), reference(torch, x0, w0))
    tol = TOLERANCE[case.dtype]
    row.update(max_rel_err=err, check_ok=err <= tol)
    set_bytes = nbytes(x0, s0.packed, s0.meta, y0)
    n_sets = stats.rotation_sets(set_bytes, env.l2_bytes)
    sets = [(x0, s0)]
    for _ in range(n_sets - 1):
        sets.append((random_operand(torch, case.m, kp, case.dtype),
                     to_sparse_semi_structured(random_operand(torch, np_, kp, case.dtype, mask=mask))))
    row.update(rotate_sets=n_sets, set_bytes=set_bytes)
    fn = lambda i: F.linear(sets[i][0], sets[i][1])  # noqa: E731
    measure(torch, fn, n_sets, args.target_ms * 1000.0, row)
    if not args.no_profile and (case.kind == "gemm" or case.m != mp):  # the padded calls matter
        row["kernels_per_call"] = count_kernels(torch, lambda: fn(0))


# --------------------------------------------------------------------------- TD3 composites

_CSLT_LINEAR_MODE: dict[str, Any] = {}


def _cslt_linear_mode(torch) -> tuple[bool, bool]:
    """(transpose_result, fuse_bias) that give x W^T + b correctly on this torch, probed once.

    Preferred: row-major m x n output with the bias fused into cuSPARSELt; older builds may
    refuse one or the other, then the layer falls back to a separate transpose or bias add.
    """
    if "mode" not in _CSLT_LINEAR_MODE:
        x = torch.randn(32, 64, device=DEVICE).to(torch.bfloat16)
        w = random_operand(torch, 64, 64, "bfloat16", mask=mask_2of4(torch, 64, 64))
        b = torch.randn(64, device=DEVICE).to(torch.bfloat16)
        ref = reference(torch, x, w) + b.float()
        wc = torch._cslt_compress(w)
        for tr, fuse in ((True, True), (True, False), (False, True), (False, False)):
            try:
                y = torch._cslt_sparse_mm(wc, x.t(), b if fuse else None, None, None, tr)
                y = (y if tr else y.t()).float() + (0 if fuse else b.float())
                if rel_error(torch, y, ref) <= TOLERANCE["bfloat16"]:
                    _CSLT_LINEAR_MODE["mode"] = (tr, fuse)
                    break
            except Exception:  # noqa: BLE001 - try the next combination
                continue
        else:
            raise RuntimeError("no cuSPARSELt layout computed x W^T + b correctly")
    return _CSLT_LINEAR_MODE["mode"]


def _sparse_linear_fn(torch):
    """Autograd function: 2:4 forward on cuSPARSELt, dense backward (W^T is not 2:4 by rows)."""
    F = torch.nn.functional
    tr, fuse = _cslt_linear_mode(torch)

    class SparseLinear24(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x, w, wc, b):
            m = x.shape[0]
            mp = grid.round_up(m, 8)
            xp = F.pad(x, (0, 0, 0, mp - m)) if mp != m else x
            y = torch._cslt_sparse_mm(wc, xp.t(), b if fuse else None, None, None, tr)
            y = y if tr else y.t()
            y = y[:m] if mp != m else y
            ctx.save_for_backward(x, w)
            return y if fuse else y + b

        @staticmethod
        def backward(ctx, gy):
            x, w = ctx.saved_tensors
            return gy @ w, gy.t() @ x, None, gy.sum(0)

    return SparseLinear24


class _Mlp:
    """A TD3 MLP of bf16 parameters; hidden x hidden layers 2:4 on cuSPARSELt when ``sparse``."""

    def __init__(self, torch, dims: list[int], width: int, sparse: bool, final: str):
        self.torch, self.final = torch, final
        self.sparse_fn = _sparse_linear_fn(torch) if sparse else None
        self.layers = []
        for k, n in zip(dims[:-1], dims[1:]):
            bound = 1.0 / math.sqrt(k)
            w = ((torch.rand(n, k, device=DEVICE) * 2 - 1) * bound).to(torch.bfloat16)
            b = ((torch.rand(n, device=DEVICE) * 2 - 1) * bound).to(torch.bfloat16)
            layer = {"w": w.requires_grad_(), "b": b.requires_grad_(), "mask": None, "wc": None}
            if sparse and n == k == width:
                layer["mask"] = mask_2of4(torch, n, k)
                with torch.no_grad():
                    w.mul_(layer["mask"])
                layer["wc"] = torch._cslt_compress(w.detach())
            self.layers.append(layer)

    def params(self) -> list:
        return [t for L in self.layers for t in (L["w"], L["b"])]

    def __call__(self, x, dense_equivalent: bool = False):
        F = self.torch.nn.functional
        last = len(self.layers) - 1
        for i, L in enumerate(self.layers):
            if L["wc"] is not None and not dense_equivalent:
                x = self.sparse_fn.apply(x, L["w"], L["wc"], L["b"])
            else:
                x = F.linear(x, L["w"], L["b"])
            if i < last:
                x = self.torch.relu(x)
            elif self.final == "tanh":
                x = self.torch.tanh(x)
        return x

    def recompress(self, remask: bool) -> None:
        """After an update: re-apply the masks (online nets) and refresh the compressed weights."""
        with self.torch.no_grad():
            for L in self.layers:
                if L["wc"] is not None:
                    if remask:
                        L["w"].mul_(L["mask"])
                    L["wc"].copy_(self.torch._cslt_compress(L["w"]))

    def clone(self) -> "_Mlp":
        other = object.__new__(_Mlp)
        other.torch, other.final, other.sparse_fn = self.torch, self.final, self.sparse_fn
        other.layers = [{"w": L["w"].detach().clone(), "b": L["b"].detach().clone(), "mask": L["mask"],
                         "wc": None if L["wc"] is None else L["wc"].clone()} for L in self.layers]
        return other


def run_actor_fwd(torch, case, env: Environment, args, row: dict[str, Any], sparse: bool) -> None:
    obs, _ = grid.TD3_ENVS[case.env]
    actor = _Mlp(torch, grid.mlp_dims("actor", case.env, case.width), case.width, sparse, "tanh")
    n_sets = 64
    states = [torch.randn(case.m, obs, device=DEVICE).to(torch.bfloat16) for _ in range(n_sets)]
    with torch.no_grad():
        # Checked on all 64 states at once: relative to the largest of a few outputs of one
        # state, bf16 rounding differences could exceed the tolerance by chance.
        probe = torch.cat(states)
        err = rel_error(torch, actor(probe).float(), actor(probe, dense_equivalent=True).float())
        row.update(max_rel_err=err, check_ok=err <= TOLERANCE["bfloat16"], rotate_sets=n_sets,
                   set_bytes=nbytes(states[0]) + nbytes(*actor.params()))

        def fn(i):
            return actor(states[i])

        measure(torch, fn, n_sets, args.target_ms * 1000.0, row)
        if not args.no_profile:
            row["kernels_per_call"] = count_kernels(torch, lambda: fn(0))


def make_td3_step(torch, env_name: str, width: int, batch: int, sparse: bool) -> dict[str, Any]:
    """One delayed TD3 update (critics, actor, Polyak) on a static random batch, bf16 everywhere.

    Returns ``{"step": callable returning the critic loss, "online": [actor, critic1, critic2],
    "targets": [...], "check": callable -> max relative error of critic1's 2:4 forward
    against the same weights run dense, "batch_bytes": int}``. The GEMMs are those listed by
    ``hwmodel.gpu.grid.td3_step_gemms``; 2:4 layers re-apply their mask and re-compress after
    every update (online nets) or Polyak average (targets, whose masks equal the online ones).
    """
    F = torch.nn.functional
    obs, act = grid.TD3_ENVS[env_name]
    B, W = batch, width
    actor = _Mlp(torch, grid.mlp_dims("actor", env_name, W), W, sparse, "tanh")
    critics = [_Mlp(torch, grid.mlp_dims("critic", env_name, W), W, sparse, "none") for _ in range(2)]
    actor_t, critics_t = actor.clone(), [c.clone() for c in critics]
    # capturable: the optimizer step can be recorded in a CUDA graph (CUDA only).
    opt_kw = {"lr": 3e-4, "foreach": True, "capturable": DEVICE == "cuda"}
    aopt = torch.optim.Adam(actor.params(), **opt_kw)
    copt = torch.optim.Adam(critics[0].params() + critics[1].params(), **opt_kw)
    s = torch.randn(B, obs, device=DEVICE).to(torch.bfloat16)
    a = (torch.rand(B, act, device=DEVICE) * 2 - 1).to(torch.bfloat16)
    r = torch.randn(B, 1, device=DEVICE).to(torch.bfloat16)
    s2 = torch.randn(B, obs, device=DEVICE).to(torch.bfloat16)
    done = (torch.rand(B, 1, device=DEVICE) < 0.01).to(torch.bfloat16)
    pairs = [(actor, actor_t), (critics[0], critics_t[0]), (critics[1], critics_t[1])]

    def step(_i: int = 0):
        with torch.no_grad():
            noise = (torch.randn_like(a) * 0.2).clamp(-0.5, 0.5)
            a2 = (actor_t(s2) + noise).clamp(-1.0, 1.0)
            sa2 = torch.cat([s2, a2], 1)
            y = r + 0.99 * (1 - done) * torch.min(critics_t[0](sa2), critics_t[1](sa2))
        sa = torch.cat([s, a], 1)
        closs = F.mse_loss(critics[0](sa), y) + F.mse_loss(critics[1](sa), y)
        copt.zero_grad(set_to_none=True)
        closs.backward()
        copt.step()
        aloss = -critics[0](torch.cat([s, actor(s)], 1)).mean()
        aopt.zero_grad(set_to_none=True)
        aloss.backward()
        aopt.step()
        with torch.no_grad():
            # Mask the online nets before Polyak, or their pruned weights leak into the targets.
            for net, _ in pairs:
                net.recompress(remask=True)
            for net, tgt in pairs:
                torch._foreach_lerp_(tgt.params(), net.params(), 0.005)
                tgt.recompress(remask=False)
        return closs

    def check() -> float:
        with torch.no_grad():
            sa = torch.cat([s, a], 1)
            return rel_error(torch, critics[0](sa).float(), critics[0](sa, dense_equivalent=True).float())

    return {"step": step, "online": [actor, *critics], "targets": [actor_t, *critics_t], "check": check,
            "batch_bytes": nbytes(s, a, r, s2, done)}


def run_td3_step(torch, case, env: Environment, args, row: dict[str, Any], sparse: bool) -> None:
    """Time :func:`make_td3_step` (static batch: ``rotate_sets`` = 1)."""
    td3 = make_td3_step(torch, case.env, case.width, case.m, sparse)
    err = td3["check"]()
    loss = td3["step"]()
    torch.cuda.synchronize()
    finite = bool(torch.isfinite(loss).item())
    row.update(max_rel_err=err, check_ok=finite and err <= TOLERANCE["bfloat16"], rotate_sets=1,
               set_bytes=td3["batch_bytes"] + sum(nbytes(*n.params()) for n in td3["online"]))
    measure(torch, td3["step"], 1, args.target_ms * 1000.0, row)
    if not args.no_profile:
        row["kernels_per_call"] = count_kernels(torch, td3["step"])


# --------------------------------------------------------------------------- driver

def _composite_flops(case, sparse: bool) -> int:
    gemms = (grid.actor_forward_gemms(case.env, case.width, case.m, sparse) if case.kind == "actor_fwd"
             else grid.td3_step_gemms(case.env, case.width, case.m, sparse))
    return sum(2 * g.m * g.n * g.k for g in gemms)


def base_row(case, impl: str, env: Environment, run_id: str) -> dict[str, Any]:
    row = schema.empty_row()
    row.update(run_id=run_id, kind=case.kind, name=case.name, env=case.env, width=case.width,
               dtype=case.dtype, impl=impl, m=case.m, n=case.n, k=case.k, alg_id=-1, algs_tried=0,
               algs_wrong=0, lib_alg_id=-1, split_k=-1, api_path="", kernels_per_call=-1, graph_error="", error="",
               out_dtype=grid.OUT_DTYPE[case.dtype][0])
    row["flops"] = (_composite_flops(case, impl != "dense") if case.kind in ("actor_fwd", "td3_step")
                    else 2 * case.m * case.n * case.k)
    row.update(env.static)
    return row


def run_one(torch, case, impl: str, env: Environment, args, row: dict[str, Any]) -> None:
    if case.kind in ("actor_fwd", "td3_step"):
        sparse = impl != "dense"
        row["backend"] = "cusparselt" if sparse else "cublas"
        row["api_path"] = "F.linear(x, W, b)"
        if sparse:
            tr, fuse = _cslt_linear_mode(torch)
            row.update(alg_id=0, split_k=1)  # the 2:4 layers run alg 0 at the default split-K
            row["api_path"] = (f"hidden: torch._cslt_sparse_mm(Wc, x.t(), b) transpose_result={int(tr)} "
                               f"fused_bias={int(fuse)} alg 0; others F.linear")
        run = run_actor_fwd if case.kind == "actor_fwd" else run_td3_step
        return run(torch, case, env, args, row, sparse)
    return {"dense": run_dense, "sparse_cslt": run_sparse_cslt, "sparse_api": run_sparse_api}[impl](
        torch, case, env, args, row)


def _warm_up(torch, seconds: float = 2.0) -> None:
    """Bring clocks up before the first timing: big bf16 GEMMs for ``seconds``."""
    a = torch.randn(8192, 8192, device=DEVICE, dtype=torch.bfloat16)
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        for _ in range(10):
            a @ a
        torch.cuda.synchronize()


def run(args: argparse.Namespace) -> int:
    """Run the grid; returns 0 if any row succeeded, 1 if none did. Raises NoGpu without CUDA."""
    torch = require_gpu()
    t0 = time.monotonic()
    resume_at = int(getattr(args, "resume_at", 0) or 0)
    restarts = int(getattr(args, "restarts", 0) or 0)
    deadline_epoch = getattr(args, "deadline_epoch", None)
    if deadline_epoch is None:
        deadline_epoch = time.time() + float(args.max_seconds)
    deadline = t0 + (deadline_epoch - time.time())
    out = Path(args.out)
    log_path = out.with_suffix(".log")
    out.parent.mkdir(parents=True, exist_ok=True)
    log = open(log_path, "a" if resume_at else "w")

    def say(msg: str) -> None:
        line = f"[{time.monotonic() - t0:7.1f}s] {msg}"
        print(line, file=sys.stderr, flush=True)
        log.write(line + "\n")
        log.flush()

    env = Environment(torch)
    run_id = getattr(args, "run_id", None) or _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    say(f"nmlab gpu bench {run_id}: {env.static}" + (f" (fresh process {restarts}, from row {resume_at + 1})"
                                                     if resume_at else ""))
    cases = grid.build_grid(quick=args.quick)
    work = [(c, impl) for c in cases for impl in grid.impls_for_case(c.kind, c.dtype)]
    if not resume_at:
        say(f"{len(cases)} cases, {len(work)} rows, budget {args.max_seconds:.0f} s, quick={args.quick}")
        est: dict[int, list] = {}
        for c, impl in work:
            e = est.setdefault(c.phase, [0, 0.0])
            e[0] += 1
            e[1] += grid.estimate_seconds(c, impl, not args.no_profile)
        total = 0.0
        for phase in sorted(est):
            total += est[phase][1]
            say(f"phase {phase}: {est[phase][0]} rows, rough estimate {est[phase][1]:.0f} s (cumulative {total:.0f} s)")
    try:
        _warm_up(torch)
    except Exception as exc:  # noqa: BLE001 - the cases still run; their clocks are recorded
        say(f"warm-up failed: {type(exc).__name__}: {exc}")
    writer = schema.RowWriter(out, append=resume_at > 0)
    counts = {"ok": 0, "error": 0, "skipped": 0}
    lost = None  # the row after which the CUDA context broke
    renamed = False
    try:
        for i in range(resume_at, len(work)):
            case, impl = work[i]
            row = base_row(case, impl, env, run_id)
            why_not = env.supports(case.dtype)
            if time.monotonic() > deadline:
                row.update(status="skipped", error="time budget (--max-seconds) ran out")
            elif lost is not None:
                row.update(status="skipped", error=f"CUDA context lost after row {lost + 1} ({MAX_RESTARTS} restarts used)")
            elif why_not:
                row.update(status="error", error=why_not)
            else:
                try:
                    run_one(torch, case, impl, env, args, row)
                    row["status"] = "ok" if row.get("check_ok") else "error"
                    if not row.get("check_ok"):
                        row["error"] = f"numerical check failed: max_rel_err {row.get('max_rel_err')}"
                except Exception as exc:  # noqa: BLE001 - one failed case must not end the run
                    row.update(status="error", error=f"{type(exc).__name__}: {exc}"[:300])
                    log.write(traceback.format_exc())
                    if "out of memory" in str(exc).lower():
                        torch.cuda.empty_cache()
                    if context_lost(torch):
                        lost = i
                row.update(env.clocks())
            counts[row["status"]] += 1
            writer.write(row)
            if row["status"] != "skipped":
                say(f"{i + 1}/{len(work)} {case.kind} {case.name[:40]} {case.dtype} {case.m}x{case.n}x{case.k} "
                    f"{impl}: {row['status']} eager {row.get('eager_median_us')} graph {row.get('graph_median_us')} "
                    f"{row['error'] or row['graph_error'] or ''}")
            if lost == i and restarts < MAX_RESTARTS and i + 1 < len(work) and time.monotonic() < deadline:
                # Every later CUDA call in this process would fail: carry on in a fresh one.
                say(f"CUDA context lost at row {i + 1}: restarting in a fresh process")
                writer.detach()
                log.close()
                _exec(restart_argv(args, i + 1, run_id, deadline_epoch))
                return 0  # only reached when _exec returns (tests)
            if case.m * case.n * case.k >= 2**36:
                torch.cuda.empty_cache()
        writer.close()
        renamed = True
    finally:
        if not renamed and not writer.detached:
            # Interrupted (Ctrl-C, a kill, a bug in the driver): keep FILE.partial. Renaming it
            # gave FILE without the rest of the grid, which readers take for a finished run.
            writer.detach()
            if not log.closed:
                say(f"interrupted after {time.monotonic() - t0:.0f} s: {counts}; rows so far in {writer.partial}")
        if not log.closed:
            if renamed:  # an interrupted run wrote no FILE (above)
                say(f"done in {time.monotonic() - t0:.0f} s (this process): {counts}; wrote {out} and {log_path}")
            log.close()
    return 0 if counts["ok"] or (resume_at and schema.count_status(out, "ok")) else 1


def main(argv: Optional[list[str]] = None) -> int:
    """``python rl/gpubench.py``: the same as ``nmlab gpu bench`` without installing nmlab."""
    p = argparse.ArgumentParser(prog="gpubench", description=DESCRIPTION)
    add_arguments(p)
    args = p.parse_args(argv)
    try:
        why = bad_argument(args)
        if why:
            raise NoGpu(why)  # the same one line and exit status as a missing GPU
        return run(args)
    except NoGpu as exc:
        print(f"nmlab gpu bench: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
