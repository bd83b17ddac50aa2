"""`nmlab gpu bench` without a GPU: the exit path, the driver (budget, errors, CSV) with a stub
device, and the TD3-step logic on the CPU with dense stand-ins for the CUDA-only cuSPARSELt
ops. The real timings need CUDA: the `gpu`-marked test runs the quick grid there."""

import argparse
import os
import re
import subprocess
import sys
import time
import types

import pytest

import torch  # a declared dependency: missing, the file must fail, not skip

from hwmodel.gpu import grid, schema  # noqa: E402
from rl import gpubench  # noqa: E402

HAS_CUDA = torch.cuda.is_available()
ROOT = __import__("pathlib").Path(__file__).resolve().parents[1]


def _run(*args, **kw):
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, **kw)


@pytest.mark.skipif(HAS_CUDA, reason="checks the no-GPU exit path; this machine has a CUDA GPU")
def test_no_gpu_exits_2_with_one_line(tmp_path):
    out = _run("-m", "hwmodel", "gpu", "bench", "--out", str(tmp_path / "b.csv"))
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == [out.stderr.strip()]
    assert "no CUDA GPU" in out.stderr and "Traceback" not in out.stderr
    assert not list(tmp_path.iterdir())  # nothing half-written


@pytest.mark.skipif(HAS_CUDA, reason="checks the no-GPU exit path; this machine has a CUDA GPU")
def test_harness_runs_without_numpy(tmp_path):
    # The GPU machine has torch but maybe not numpy: `python -m rl.gpubench` must not need it.
    # Both forms the docs give: the script (no package import at all) and the module.
    for run in ("runpy.run_path('rl/gpubench.py', run_name='__main__')",
                "runpy.run_module('rl.gpubench', run_name='__main__')"):
        code = ("import sys; sys.modules['numpy'] = None; import runpy; "
                f"sys.argv = ['gpubench', '--out', {str(tmp_path / 'b.csv')!r}]; " + run)
        out = _run("-W", "ignore", "-c", code, cwd=ROOT)
        assert out.returncode == 2, out.stderr
        assert out.stderr.strip().splitlines()[-1].startswith("nmlab gpu bench: error: no CUDA GPU")


@pytest.mark.parametrize("flag,value", [("--max-seconds", "0"), ("--max-seconds", "nan"), ("--target-ms", "-5"),
                                        ("--target-ms", "0"), ("--target-ms", "inf")])
def test_bad_budget_is_a_one_line_error(tmp_path, flag, value):
    """Checked before the GPU is looked for (on a GPU, nan --max-seconds ran with no deadline and
    --target-ms <= 0 timed with the minimum repetitions), in both entry points."""
    for entry in (("-m", "hwmodel", "gpu", "bench"), ("rl/gpubench.py",)):
        out = _run(*entry, "--out", str(tmp_path / "b.csv"), flag, value)
        assert out.returncode == 2 and f"{flag}: must be > 0" in out.stderr, (entry, out.stderr)
        assert len(out.stderr.strip().splitlines()) == 1, out.stderr


def _bench_refused_before_gpu_work(monkeypatch, out, match):
    """`nmlab gpu bench --quick --out OUT` as if this machine had a GPU: refused (NmlabError matching
    ``match``) before any GPU work starts."""
    from hwmodel.errors import NmlabError
    from rl import gpubench_cmd

    monkeypatch.setattr(gpubench, "require_gpu", lambda: torch)  # as if this machine had one
    monkeypatch.setattr(gpubench, "Environment", lambda _t: pytest.fail("GPU work started"))
    args = argparse.Namespace(out=str(out), quick=True, max_seconds=10.0, target_ms=1.0,
                              no_profile=True, resume_at=0, run_id=None, deadline_epoch=None, restarts=0)
    with pytest.raises(NmlabError, match=match):
        gpubench_cmd._bench(args)


def test_unwritable_out_is_one_line_before_any_gpu_work(monkeypatch):
    """With a GPU present, --out under /proc was an OSError traceback from run()'s mkdir."""
    _bench_refused_before_gpu_work(monkeypatch, "/proc/nmlab_no/b.csv", "--out")


@pytest.mark.parametrize("case", ["out is the log", "log is a folder"])
def test_an_out_whose_log_cannot_be_written_is_one_line_before_any_gpu_work(tmp_path, monkeypatch, case):
    """The log goes to OUT with .log: `--out bench.log` wrote CSV and log into one file, and a folder
    of the log's name was an IsADirectoryError traceback once the GPU was found."""
    out = tmp_path / ("bench.log" if case == "out is the log" else "bench.csv")
    if case == "log is a folder":
        (tmp_path / "bench.log").mkdir()
    why = ("the log is written beside the CSV as OUT with .log, here the same file; give the CSV a .csv name"
           if case == "out is the log" else "is a directory (give a file name)")
    _bench_refused_before_gpu_work(monkeypatch, out, re.escape(why))
    assert sorted(p.name for p in tmp_path.iterdir()) == ([] if case == "out is the log" else ["bench.log"])


class _FakeEnv:
    def __init__(self, torch):
        self.l2_bytes, self.cc = 50 * 2**20, (9, 0)
        self.static = {"device_name": "stub", "compute_capability": "9.0", "sm_count": 132, "l2_bytes": self.l2_bytes,
                       "mem_bytes": 1, "torch": "x", "cuda": "y", "cusparselt": "", "driver": ""}

    def clocks(self):
        return {"sm_clock_mhz": 1980.0}

    def supports(self, dtype):
        return "no fp8 here" if dtype == "float8_e4m3fn" else None


def test_driver_budget_errors_and_csv(tmp_path, monkeypatch):
    fake_torch = types.SimpleNamespace(cuda=types.SimpleNamespace(synchronize=lambda: None, empty_cache=lambda: None))
    calls = []

    def fake_run_one(torch, case, impl, env, args, row):
        calls.append((case, impl))
        time.sleep(0.01)
        if impl == "sparse_api":
            raise RuntimeError("boom\nsecond line")
        row.update(eager_median_us=10.0, graph_median_us=5.0, check_ok=True, max_rel_err=0.0)

    monkeypatch.setattr(gpubench, "require_gpu", lambda: fake_torch)
    monkeypatch.setattr(gpubench, "Environment", _FakeEnv)
    monkeypatch.setattr(gpubench, "_warm_up", lambda torch: None)
    monkeypatch.setattr(gpubench, "run_one", fake_run_one)
    monkeypatch.setattr(gpubench, "context_lost", lambda torch: False)  # an ordinary exception
    out = tmp_path / "o" / "bench.csv"
    args = argparse.Namespace(out=str(out), quick=True, max_seconds=0.6, target_ms=1.0, no_profile=True)
    assert gpubench.run(args) == 0
    rows = schema.read_rows(out)
    work = [(c, i) for c in grid.build_grid(quick=True) for i in grid.impls_for_case(c.kind, c.dtype)]
    assert len(rows) == len(work)
    statuses = [r["status"] for r in rows]
    assert "ok" in statuses and "error" in statuses and "skipped" in statuses
    first_skip = statuses.index("skipped")
    assert set(statuses[first_skip:]) == {"skipped"}  # the budget cuts the tail, in run order
    assert len(calls) == first_skip
    api_errors = [r for r in rows if r["impl"] == "sparse_api" and r["status"] == "error"]
    assert api_errors and api_errors[0]["error"] == "RuntimeError: boom second line"
    assert all(r["device_name"] == "stub" and r["run_id"] for r in rows)
    assert (out.parent / "bench.log").read_text().count("RuntimeError") >= 1


def _fake_cslt(monkeypatch):
    """Dense stand-ins with cuSPARSELt's calling convention (compressed A is just A here)."""
    def sparse_mm(a, b, bias=None, alpha=None, out_dtype=None, transpose_result=False, alg_id=0, *rest):
        y = a @ b
        if bias is not None:
            y = y + bias[:, None]
        return y.t() if transpose_result else y

    monkeypatch.setattr(torch, "_cslt_compress", lambda w: w.detach().clone(), raising=False)
    monkeypatch.setattr(torch, "_cslt_sparse_mm", sparse_mm, raising=False)
    monkeypatch.setattr(gpubench, "DEVICE", "cpu")
    monkeypatch.setattr(gpubench, "_CSLT_LINEAR_MODE", {})


def test_sparse_linear_matches_dense_forward_and_backward(monkeypatch):
    _fake_cslt(monkeypatch)
    torch.manual_seed(0)
    fn = gpubench._sparse_linear_fn(torch)
    mask = gpubench.mask_2of4(torch, 32, 64)
    w = (torch.randn(32, 64) * mask).requires_grad_()
    b = torch.randn(32, requires_grad=True)
    for batch in (1, 5, 16):  # 1 and 5 are padded to 8 rows inside
        x = torch.randn(batch, 64, requires_grad=True)
        y = fn.apply(x, w, torch._cslt_compress(w), b)
        ref = torch.nn.functional.linear(x, w, b)
        assert y.shape == (batch, 32) and torch.allclose(y, ref, atol=1e-5)
        g = torch.randn_like(y)
        gx, gw, gb = torch.autograd.grad(y, (x, w, b), g)
        rx, rw, rb = torch.autograd.grad(ref, (x, w, b), g)
        assert torch.allclose(gx, rx, atol=1e-5) and torch.allclose(gw, rw, atol=1e-5) and torch.allclose(gb, rb)


def test_mask_is_2of4_along_k(monkeypatch):
    from rl.sparsity import verify

    monkeypatch.setattr(gpubench, "DEVICE", "cpu")
    m = gpubench.mask_2of4(torch, 16, 64)
    assert m.reshape(16, 16, 4).sum(-1).eq(2).all()
    # verify takes a bool mask and returns None when it is N:M (a (row, group) tuple is a violation).
    assert m.dtype == torch.bool and verify(m, "2:4") is None
    assert verify((torch.randn(16, 64) * m) != 0, "2:4") is None


@pytest.mark.parametrize("sparse", [False, True])
def test_td3_step_trains_and_keeps_2of4(monkeypatch, sparse):
    _fake_cslt(monkeypatch)
    torch.manual_seed(0)
    td3 = gpubench.make_td3_step(torch, "hopper", 64, 32, sparse)
    before = [p.detach().clone() for p in td3["online"][0].params()]
    assert td3["check"]() < 1e-2
    for _ in range(3):
        loss = td3["step"]()
    assert torch.isfinite(loss)
    assert any(not torch.equal(a, p) for a, p in zip(before, td3["online"][0].params()))
    for net in td3["online"] + td3["targets"]:
        for L in net.layers:
            if L["mask"] is not None:
                assert sparse and L["w"].shape == (64, 64)
                assert not L["w"][~L["mask"]].any()              # pruned weights stay zero
                assert torch.equal(L["wc"], L["w"].detach())     # compressed copy refreshed
    assert any(L["mask"] is not None for L in td3["online"][0].layers) == sparse


@pytest.mark.gpu
@pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA GPU (timings use CUDA events and cuSPARSELt)")
def test_quick_bench_on_the_gpu(tmp_path):
    out = _run("rl/gpubench.py", "--out", str(tmp_path / "b.csv"), "--quick", "--max-seconds", "120",
               timeout=600, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-2000:]
    rows = schema.read_rows(tmp_path / "b.csv")
    ok = [r for r in rows if r["status"] == "ok"]
    assert ok and all(r["check_ok"] and r["eager_median_us"] > 0 for r in ok)
    assert {r["impl"] for r in ok} >= {"dense", "sparse_cslt"}


# --- the GEMM and composite paths end to end on the CPU, with an emulated torch.cuda --------

class _Event:
    def __init__(self, enable_timing=False):
        self.t = None

    def record(self):
        self.t = time.perf_counter()

    def elapsed_time(self, end):
        return (end.t - self.t) * 1000.0  # milliseconds, as CUDA events


class _Graph:
    """Capture records the calls made inside ``graph(g)``; replay runs them again."""

    active = None

    def __init__(self):
        self.calls = []

    def replay(self):
        for fn, args in self.calls:
            fn(*args)


class _FakeCuda:
    Event = _Event
    CUDAGraph = _Graph

    class Stream:
        def wait_stream(self, other):
            pass

    @staticmethod
    def synchronize():
        pass

    @staticmethod
    def empty_cache():
        pass

    @staticmethod
    def current_stream():
        return _FakeCuda.Stream()

    @staticmethod
    def stream(s):
        import contextlib

        return contextlib.nullcontext()

    @staticmethod
    def graph(g):
        import contextlib

        @contextlib.contextmanager
        def capture():
            _Graph.active = g
            try:
                yield
            finally:
                _Graph.active = None

        return capture()


def _emulated_torch(wrong_alg=2, max_alg=4):
    """Real CPU torch with torch.cuda emulated and dense stand-ins for the cuSPARSELt ops:
    alg_ids >= ``max_alg`` are refused and ``wrong_alg`` returns a wrong result."""
    def sparse_mm(a, b, bias=None, alpha=None, out_dtype=None, transpose_result=False, alg_id=0, *rest):
        if alg_id >= max_alg:
            raise RuntimeError("CUSPARSE_STATUS_INVALID_VALUE")
        y = a.float() @ b.float()
        if bias is not None:
            y = y + bias.float()[:, None]
        if alg_id == wrong_alg:
            y = y * 1.5
        y = y.to(out_dtype or (torch.bfloat16 if a.dtype == torch.float8_e4m3fn else a.dtype))
        return y.t() if transpose_result else y

    class Proxy:
        cuda = _FakeCuda
        _cslt_compress = staticmethod(lambda w: w.detach().clone())
        _cslt_sparse_mm = staticmethod(sparse_mm)

        def __getattr__(self, name):
            return getattr(torch, name)

    return Proxy()


@pytest.mark.parametrize("kind,dtype,impl,shape", [
    ("gemm", "bfloat16", "dense", (64, 64, 64)),
    ("gemm", "bfloat16", "sparse_cslt", (64, 64, 64)),
    ("layer", "bfloat16", "sparse_cslt", (1, 3, 11)),      # padded to 8 x 16 x 16
    ("layer", "int8", "dense", (1, 256, 11)),              # _int_mm needs m > 16: padded to 32
    ("layer", "int8", "sparse_cslt", (32, 64, 64)),
    ("gemm", "float8_e4m3fn", "dense", (32, 48, 64)),
    ("gemm", "float8_e4m3fn", "sparse_cslt", (32, 64, 64)),
])
def test_gemm_paths_fill_their_rows(monkeypatch, tmp_path, kind, dtype, impl, shape):
    monkeypatch.setattr(gpubench, "DEVICE", "cpu")
    fake = _emulated_torch()
    case = grid.Case(kind, "t", dtype, *shape)
    args = argparse.Namespace(target_ms=0.2, no_profile=True)
    row = gpubench.base_row(case, impl, _FakeEnv(fake), "r")
    gpubench.run_one(fake, case, impl, _FakeEnv(fake), args, row)
    assert row["check_ok"] is True and row["max_rel_err"] < 2e-2
    assert (row["m_pad"], row["n_pad"], row["k_pad"]) == grid.padded_shape(*shape, dtype, impl)
    assert row["eager_median_us"] > 0 and row["eager_reps"] >= 10
    assert row["graph_median_us"] is not None and not row.get("graph_error"), row.get("graph_error")
    assert row["rotate_sets"] >= 2 and row["set_bytes"] > 0
    if impl == "sparse_cslt":
        # alg 2 is wrong and alg 4 is refused: 4 tried, 1 wrong, never pick the wrong one
        assert (row["algs_tried"], row["algs_wrong"]) == (4, 1) and row["alg_id"] in (0, 1, 3)
        assert row["out_dtype"] == {"int8": "int32", "float8_e4m3fn": "bfloat16"}.get(dtype, dtype)
    schema.write_rows(tmp_path / "rows.csv", [row])  # every key is a schema column


@pytest.mark.parametrize("kind", ["actor_fwd", "td3_step"])
@pytest.mark.parametrize("impl", ["dense", "sparse_cslt"])
def test_composite_paths_fill_their_rows(monkeypatch, kind, impl):
    monkeypatch.setattr(gpubench, "DEVICE", "cpu")
    monkeypatch.setattr(gpubench, "_CSLT_LINEAR_MODE", {})
    fake = _emulated_torch(wrong_alg=-1)
    case = grid.Case(kind, "hopper", "bfloat16", 1 if kind == "actor_fwd" else 32, 64, 64, "hopper", 64)
    args = argparse.Namespace(target_ms=0.2, no_profile=True)
    row = gpubench.base_row(case, impl, _FakeEnv(fake), "r")
    gpubench.run_one(fake, case, impl, _FakeEnv(fake), args, row)
    assert row["check_ok"] is True and row["eager_median_us"] > 0 and row["graph_median_us"] is not None
    # cuSPARSELt rows say which configuration ran (-1 only where cuSPARSELt did not run)
    assert (row["alg_id"], row["split_k"]) == ((0, 1) if impl == "sparse_cslt" else (-1, -1))
    assert row["flops"] == sum(2 * g.m * g.n * g.k for g in (
        grid.actor_forward_gemms("hopper", 64, 1, True) if kind == "actor_fwd"
        else grid.td3_step_gemms("hopper", 64, 32, True)))


# --- torch-version differences the first GPU run must survive ------------------------------

def _with_search(fake, mm_search=None, old_search=None, split_raises=False, split_wrong=False):
    """``fake`` (an _emulated_torch) plus cuSPARSELt search entry points and split-K handling."""
    base = fake._cslt_sparse_mm

    def sparse_mm(a, b, bias=None, alpha=None, out_dtype=None, transpose_result=False, alg_id=0, *split):
        if split and split_raises:
            raise TypeError("_cslt_sparse_mm(): argument 'split_k_one_kernel' must be bool, not int")
        y = base(a, b, bias, alpha, out_dtype, transpose_result, alg_id)
        return y * 3 if split and split[0] != 1 and split_wrong else y

    fake._cslt_sparse_mm = sparse_mm
    fake._C = types.SimpleNamespace(_cusparselt=types.SimpleNamespace(mm_search=mm_search) if mm_search else None)
    fake._cslt_sparse_mm_search = old_search
    return fake


def test_library_search_reads_every_torch_form():
    fake = _emulated_torch()
    _with_search(fake, mm_search=lambda *a: (3, 4, 1, 9))
    assert gpubench.library_search(fake, None, None, None, True) == (
        {"alg_id": 3, "split_k": 4, "split_k_mode": 1, "max_alg_id": 9}, "mm_search")
    _with_search(fake, mm_search=lambda *a: (2, 1, True, 5))  # older builds: a bool "one kernel"
    assert gpubench.library_search(fake, None, None, None, True)[0]["split_k_mode"] == 1
    _with_search(fake, old_search=lambda *a: 7)                 # only the deprecated int form
    assert gpubench.library_search(fake, None, None, None, True) == ({"alg_id": 7}, "_cslt_sparse_mm_search")

    def broken(*a):
        raise RuntimeError("CUSPARSE_STATUS_NOT_SUPPORTED")

    _with_search(fake, mm_search=broken, old_search=broken)
    found, path = gpubench.library_search(fake, None, None, None, True)
    assert found is None and path.startswith("none(") and "mm_search RuntimeError" in path
    _with_search(fake)
    assert gpubench.library_search(fake, None, None, None, True) == (None, "none")


@pytest.mark.parametrize("split_raises,split_wrong", [(False, False), (True, False), (False, True)])
def test_cslt_row_uses_the_library_bound_and_pick(monkeypatch, tmp_path, split_raises, split_wrong):
    # mm_search says this shape has alg_ids 0..2 (the emulation would accept 0..3) and picks
    # alg 1 with split-K 4: our search stops at 2, the library's split pick is checked too,
    # and the row says which entry points it used. A split-K call this torch refuses, or one
    # that computes garbage, never becomes the timed configuration.
    monkeypatch.setattr(gpubench, "DEVICE", "cpu")
    fake = _with_search(_emulated_torch(wrong_alg=-1), mm_search=lambda *a: (1, 4, 1, 2),
                        split_raises=split_raises, split_wrong=split_wrong)
    case = grid.Case("gemm", "square", "bfloat16", 64, 64, 64)
    args = argparse.Namespace(target_ms=0.2, no_profile=True)
    row = gpubench.base_row(case, "sparse_cslt", _FakeEnv(fake), "r")
    gpubench.run_one(fake, case, "sparse_cslt", _FakeEnv(fake), args, row)
    assert row["check_ok"] is True and row["lib_alg_id"] == 1
    assert "search=mm_search" in row["api_path"] and "algs=mm_search:3" in row["api_path"]
    assert "lib_split=1/sk4/mode1" in row["api_path"]
    if split_raises:
        assert row["algs_tried"] == 3 and row["split_k"] == 1 and "TypeError" in row["api_path"]
    elif split_wrong:
        assert (row["algs_tried"], row["algs_wrong"]) == (4, 1) and row["split_k"] == 1
        assert ":wrong" in row["api_path"]
    else:
        assert row["algs_tried"] == 4 and row["split_k"] in (1, 4)
        if row["split_k"] == 4:
            assert row["alg_id"] == 1
    schema.write_rows(tmp_path / "rows.csv", [row])


def test_every_row_records_its_path(monkeypatch):
    # dense rows name their torch entry point; composites name the 2:4 linear they used.
    monkeypatch.setattr(gpubench, "DEVICE", "cpu")
    monkeypatch.setattr(gpubench, "_CSLT_LINEAR_MODE", {})
    fake = _emulated_torch(wrong_alg=-1)
    args = argparse.Namespace(target_ms=0.2, no_profile=True)
    for case, impl, expect in (
            (grid.Case("gemm", "square", "int8", 32, 32, 32), "dense", "torch._int_mm"),
            (grid.Case("gemm", "square", "float8_e4m3fn", 32, 32, 32), "dense", "torch._scaled_mm"),
            (grid.Case("gemm", "square", "float16", 32, 32, 32), "dense", "F.linear"),
            (grid.Case("actor_fwd", "hopper", "bfloat16", 1, 64, 64, "hopper", 64), "sparse_cslt", "fused_bias=")):
        row = gpubench.base_row(case, impl, _FakeEnv(fake), "r")
        gpubench.run_one(fake, case, impl, _FakeEnv(fake), args, row)
        assert expect in row["api_path"], row["api_path"]
        # -1 where cuSPARSELt did not run; the 2:4 composite's layers run split-K 1
        assert row["split_k"] == (1 if impl == "sparse_cslt" else -1)


def test_script_mode_drops_its_own_folder_from_sys_path(tmp_path):
    # `python3 rl/gpubench.py` puts rl/ first on sys.path, where rl/export.py, rl/evaluate.py...
    # could shadow what torch imports; the script removes it before importing anything else.
    probe = tmp_path / "probe.py"
    code = (ROOT / "rl" / "gpubench.py").read_text().replace(
        "grid, schema, stats = _torchfree_modules()",
        "print('RL_ON_PATH', any(p.rstrip('/').endswith('/rl') for p in sys.path)); raise SystemExit(0)")
    (tmp_path / "rl").mkdir()
    (tmp_path / "rl" / "gpubench.py").write_text(code)
    out = _run(str(tmp_path / "rl" / "gpubench.py"), cwd=tmp_path)
    assert out.returncode == 0 and "RL_ON_PATH False" in out.stdout, out.stderr


def test_lost_cuda_context_restarts_in_a_fresh_process(tmp_path, monkeypatch):
    # A sticky CUDA error (say an illegal address from a bad alg_id) makes every later CUDA
    # call of the process fail: the run re-executes itself and carries on at the next row,
    # appending to the same partial CSV under the same run_id and deadline; after
    # MAX_RESTARTS the rest is written as skipped. Every grid row appears exactly once.
    fake_torch = types.SimpleNamespace(cuda=types.SimpleNamespace(synchronize=lambda: None, empty_cache=lambda: None))
    state = {"broken": False, "execs": []}
    poison = {5, 9, 12, 14, 16}  # rows (0-based) whose case breaks the context

    def fake_run_one(torch, case, impl, env, args, row):
        i = work.index((case, impl))
        if i in poison:
            state["broken"] = True
            raise RuntimeError("CUDA error: an illegal memory access was encountered")
        row.update(eager_median_us=10.0, check_ok=True, max_rel_err=0.0)

    class Exec(Exception):
        pass

    def fake_exec(argv):
        state["execs"].append(argv)
        raise Exec(argv)

    work = [(c, i) for c in grid.build_grid(quick=True) for i in grid.impls_for_case(c.kind, c.dtype)]
    monkeypatch.setattr(gpubench, "require_gpu", lambda: fake_torch)
    monkeypatch.setattr(gpubench, "Environment", _FakeEnv)
    monkeypatch.setattr(gpubench, "_warm_up", lambda torch: None)
    monkeypatch.setattr(gpubench, "run_one", fake_run_one)
    monkeypatch.setattr(gpubench, "context_lost", lambda torch: state["broken"])
    monkeypatch.setattr(gpubench, "_exec", fake_exec)
    out = tmp_path / "bench.csv"
    argv = ["--out", str(out), "--quick", "--max-seconds", "600", "--no-profile"]
    while True:
        try:
            code = gpubench.main(argv)
            break
        except Exec as exc:  # "the fresh process": same code, the argv it was given
            state["broken"] = False
            argv = exc.args[0][2:]
            assert exc.args[0][1].endswith("gpubench.py")
    assert code == 0 and len(state["execs"]) == gpubench.MAX_RESTARTS
    rows = schema.read_rows(out)
    assert len(rows) == len(work) and not (tmp_path / "bench.csv.partial").exists()
    assert [(r["kind"], r["dtype"], r["m"], r["n"], r["k"], r["impl"]) for r in rows] == [
        (c.kind, c.dtype, c.m, c.n, c.k, i) for c, i in work]
    assert len({r["run_id"] for r in rows}) == 1
    statuses = [r["status"] for r in rows]
    assert [i for i, s in enumerate(statuses) if s == "error"] == [5, 9, 12, 14]
    # after the last allowed restart the context broke again at row 14: the rest is skipped
    assert set(statuses[15:]) == {"skipped"} and "CUDA context lost after row 15" in rows[15]["error"]
    assert all(s == "ok" for s in statuses[:14] if s != "error")
    log = (tmp_path / "bench.log").read_text()
    assert log.count("restarting in a fresh process") == gpubench.MAX_RESTARTS
    deadlines = {a[a.index("--deadline-epoch") + 1] for a in state["execs"]}
    assert len(deadlines) == 1  # the budget is the first process's, not renewed


def test_clocks_fall_back_to_nvml(monkeypatch):
    # No nvidia-smi on the PATH: the same readings come from NVML (nvidia-ml-py), in MHz, W, C.
    def no_smi(*a, **kw):
        raise FileNotFoundError("nvidia-smi")

    fake = types.SimpleNamespace(
        NVML_CLOCK_SM=0, NVML_CLOCK_MEM=1, NVML_TEMPERATURE_GPU=0, nvmlInit=lambda: None,
        nvmlDeviceGetHandleByIndex=lambda i: "h", nvmlDeviceGetCount=lambda: 1,
        nvmlSystemGetDriverVersion=lambda: b"580.159.03",
        nvmlDeviceGetClockInfo=lambda h, c: 1980 if c == 0 else 3201,
        nvmlDeviceGetMaxClockInfo=lambda h, c: 1980, nvmlDeviceGetEnforcedPowerLimit=lambda h: 700000,
        nvmlDeviceGetTemperature=lambda h, s: 41)
    monkeypatch.setattr(gpubench.subprocess, "run", no_smi)
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    env = object.__new__(gpubench.Environment)
    env._clocks, env._clocks_at = {}, -1e9
    assert env._smi() == {"driver": "580.159.03", "sm_clock_mhz": 1980.0, "mem_clock_mhz": 3201.0,
                          "max_sm_clock_mhz": 1980.0, "power_limit_w": 700.0, "temperature_c": 41.0}
    monkeypatch.setitem(sys.modules, "pynvml", None)  # neither: unknown, not an error
    assert env._smi() == {} and env.clocks()["sm_clock_mhz"] == -1.0


def test_library_search_skipped_where_one_call_is_long(monkeypatch):
    # cuSPARSELt's own search runs every configuration several times: on the largest GEMMs it
    # could eat the budget, so it is skipped there and the row says so.
    monkeypatch.setattr(gpubench, "DEVICE", "cpu")
    monkeypatch.setattr(gpubench, "LIB_SEARCH_MAX_CALL_S", -1.0)  # every call counts as long
    asked = []
    fake = _with_search(_emulated_torch(wrong_alg=-1), mm_search=lambda *a: asked.append(a) or (0, 1, -1, 3))
    case = grid.Case("gemm", "square", "bfloat16", 64, 64, 64)
    row = gpubench.base_row(case, "sparse_cslt", _FakeEnv(fake), "r")
    gpubench.run_one(fake, case, "sparse_cslt", _FakeEnv(fake), argparse.Namespace(target_ms=0.2, no_profile=True), row)
    assert not asked and row["lib_alg_id"] == -1 and "search=skipped(one call" in row["api_path"]
    assert row["check_ok"] is True and row["algs_tried"] == 4  # probed until alg 4 was refused


def test_whole_driver_on_every_path_with_emulated_cuda(tmp_path, monkeypatch):
    # The real run_one paths (dense, cuSPARSELt, the torch API, both composites) in every
    # dtype through the driver, the CSV and the log: the CPU stand-in of the first device run.
    # The torch API path needs CUDA here, so its rows are errors and the run goes on.
    monkeypatch.setattr(gpubench, "DEVICE", "cpu")
    monkeypatch.setattr(gpubench, "_CSLT_LINEAR_MODE", {})
    fake = _with_search(_emulated_torch(), mm_search=lambda *a: (1, 1, -1, 5))
    tiny = [grid.Case("layer", "t", "bfloat16", 1, 64, 64, "hopper", 64, 0),
            grid.Case("layer", "t", "float16", 32, 64, 64, "hopper", 64, 0),
            grid.Case("actor_fwd", "hopper", "bfloat16", 1, 64, 64, "hopper", 64, 1),
            grid.Case("td3_step", "hopper", "bfloat16", 32, 64, 64, "hopper", 64, 1),
            grid.Case("gemm", "square", "int8", 64, 64, 64, phase=4),
            grid.Case("gemm", "square", "float8_e4m3fn", 64, 64, 64, phase=5),
            grid.Case("layer", "t", "int8", 1, 3, 11, "hopper", 64, 8)]
    monkeypatch.setattr(gpubench.grid, "build_grid", lambda quick=False: tiny)
    monkeypatch.setattr(gpubench, "require_gpu", lambda: fake)
    monkeypatch.setattr(gpubench, "Environment", _FakeEnv)
    monkeypatch.setattr(gpubench, "_warm_up", lambda torch: None)
    env_supports_all = lambda self, dtype: None  # noqa: E731 - fp8 runs in this emulation
    monkeypatch.setattr(_FakeEnv, "supports", env_supports_all)
    out = tmp_path / "b.csv"
    assert gpubench.main(["--out", str(out), "--target-ms", "0.2", "--no-profile"]) == 0
    rows = schema.read_rows(out)
    work = [(c, i) for c in tiny for i in grid.impls_for_case(c.kind, c.dtype)]
    assert [(r["kind"], r["dtype"], r["impl"]) for r in rows] == [(c.kind, c.dtype, i) for c, i in work]
    for r in rows:
        if r["impl"] == "sparse_api":
            assert r["status"] == "error" and r["error"]
        else:
            assert r["status"] == "ok", (r["kind"], r["dtype"], r["impl"], r["error"])
            assert r["eager_median_us"] > 0 and r["check_ok"] and r["api_path"]
        if r["impl"] == "sparse_cslt" and r["kind"] in ("gemm", "layer"):
            assert r["lib_alg_id"] == 1 and r["split_k"] == 1 and "algs=mm_search:6" in r["api_path"]
    assert "phase 0: 6 rows" in (tmp_path / "b.log").read_text()


@pytest.mark.parametrize("cc,cls_name", [((8, 0), "SparseSemiStructuredTensorCUTLASS"),
                                         ((9, 0), "SparseSemiStructuredTensorCUSPARSELT")])
def test_sparse_api_pads_w_to_the_minimum_of_the_backend_it_forces(monkeypatch, cc, cls_name):
    """On compute capability 8.x the API path forces CUTLASS, whose minimum W shape is 32 x 64
    for 16-bit types (cuSPARSELt's is 16 x 16): padding to cuSPARSELt's made every TD3
    input/output layer (k = 11, n = 3, ...) an error row on A100/L40S/RTX 4090."""
    import torch.sparse as ts

    monkeypatch.setattr(gpubench, "DEVICE", "cpu")
    cls = getattr(ts, cls_name)
    seen = []

    def fake_to_sparse(w):
        seen.append(tuple(w.shape))
        c = cls._DTYPE_SHAPE_CONSTRAINTS[w.dtype]
        r, k = w.shape
        if r % c.sparse_min_rows or k % c.sparse_min_cols:
            raise RuntimeError(f"shape {tuple(w.shape)} not a multiple of ({c.sparse_min_rows}, {c.sparse_min_cols})")
        raise _Reached()

    class _Reached(Exception):
        pass

    monkeypatch.setattr(ts, "to_sparse_semi_structured", fake_to_sparse)
    monkeypatch.setattr(ts.SparseSemiStructuredTensor, "_FORCE_CUTLASS", False)
    env = _FakeEnv(torch)
    env.cc = cc
    case = grid.Case("layer", "hopper.actor.fc1", "bfloat16", 1, 256, 11, "hopper", 256)
    row = gpubench.base_row(case, "sparse_api", env, "r")
    with pytest.raises(_Reached):
        gpubench.run_one(torch, case, "sparse_api", env, argparse.Namespace(target_ms=0.2, no_profile=True), row)
    assert row["backend"] == ("cutlass" if cc[0] == 8 else "cusparselt")
    assert (row["n_pad"], row["k_pad"]) == seen[0]


def test_clocks_are_read_from_torchs_gpu_not_smi_index_0(monkeypatch):
    """nvidia-smi/NVML index GPUs by PCI order and ignore CUDA_VISIBLE_DEVICES: with
    CUDA_VISIBLE_DEVICES=1, ``-i 0`` recorded the clocks, power limit and temperature of an
    idle card beside the one that ran. The harness matches torch's ``props.uuid`` instead."""
    smi = ("GPU-aaaaaaaa-0000-0000-0000-000000000000, 580.159.03, 345, 1593, 1980, 700.00, 31\n"
           "GPU-bbbbbbbb-0000-0000-0000-000000000000, 580.159.03, 1980, 3201, 1980, 500.00, 67\n")
    monkeypatch.setattr(gpubench.subprocess, "run", lambda *a, **kw: types.SimpleNamespace(stdout=smi))
    props = types.SimpleNamespace(major=9, minor=0, L2_cache_size=50 * 2**20, name="NVIDIA H100 80GB HBM3",
                                  multi_processor_count=132, total_memory=80 * 2**30,
                                  uuid="bbbbbbbb-0000-0000-0000-000000000000")
    fake = types.SimpleNamespace(
        cuda=types.SimpleNamespace(get_device_properties=lambda i: props), __version__="2.13",
        version=types.SimpleNamespace(cuda="13.0"), backends=types.SimpleNamespace())
    env = gpubench.Environment(fake)
    clocks = env.clocks()
    assert env.static["driver"] == "580.159.03"
    assert (clocks["sm_clock_mhz"], clocks["power_limit_w"], clocks["temperature_c"]) == (1980.0, 500.0, 67.0)
    props.uuid = "cccccccc-0000-0000-0000-000000000000"  # no match (a MIG instance): unknown, not wrong
    env = gpubench.Environment(fake)
    assert env.static["driver"] == "580.159.03" and env.clocks()["sm_clock_mhz"] == -1.0


def test_interrupted_run_leaves_the_partial_file_not_a_short_csv(tmp_path, monkeypatch):
    """Ctrl-C (or any exception out of the driver) used to rename FILE.partial to FILE, so a
    run cut after a few rows looked finished (the docs promise FILE has every row of the grid)."""
    fake_torch = types.SimpleNamespace(cuda=types.SimpleNamespace(synchronize=lambda: None, empty_cache=lambda: None))
    done = []

    def fake_run_one(torch, case, impl, env, args, row):
        if len(done) == 2:
            raise KeyboardInterrupt
        done.append(1)
        row.update(eager_median_us=10.0, check_ok=True, max_rel_err=0.0)

    monkeypatch.setattr(gpubench, "require_gpu", lambda: fake_torch)
    monkeypatch.setattr(gpubench, "Environment", _FakeEnv)
    monkeypatch.setattr(gpubench, "_warm_up", lambda torch: None)
    monkeypatch.setattr(gpubench, "run_one", fake_run_one)
    out = tmp_path / "bench.csv"
    args = argparse.Namespace(out=str(out), quick=True, max_seconds=60.0, target_ms=1.0, no_profile=True)
    with pytest.raises(KeyboardInterrupt):
        gpubench.run(args)
    assert not out.exists()
    partial = tmp_path / "bench.csv.partial"
    assert len(schema.read_rows(partial)) == 2
    log_text = (tmp_path / "bench.log").read_text()
    assert "interrupted" in log_text
    assert "wrote" not in log_text  # no claim of a FILE that was not written


def test_the_row_writer_refuses_a_device_or_a_folder(tmp_path):
    # close() renames its partial file over the path: a test writing to os.devnull replaced
    # /dev/null with a regular file on every run of the suite.
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    for bad in (fifo, tmp_path):
        with pytest.raises(schema.NmlabError, match="is a directory|not a regular file"):
            schema.RowWriter(bad)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fifo"] and fifo.is_fifo()


def test_help_says_what_a_run_writes_and_what_to_do_with_it(capsys):
    # `--help` listed the options only: not the .partial file, the log's phase estimates, the
    # skipped rows past the budget, nor the validate command to run on the CSV.
    from hwmodel.cli import main

    for argv, run in ((["gpu", "bench", "--help"], main), (["--help"], gpubench.main)):
        try:
            code = run(argv)  # nmlab's main returns the status argparse exits with
        except SystemExit as done:
            code = done.code
        assert code == 0
        text = " ".join(capsys.readouterr().out.split())
        for words in ("OUT.partial", "estimate each phase", "written as skipped", "nmlab gpu validate --data OUT",
                      "--gpu SPEC.yaml"):
            assert words in text, words
