"""GPU design points and the analytic GPU model: monotonicity, quantization, 2:4 format, overheads."""

import math

import pytest

from hwmodel.errors import NmlabError
from hwmodel.gpu import grid
from hwmodel.gpu.model import GpuModel, GpuModelParams, gemm_row, predict_gemm_us, weight_bytes
from hwmodel.gpu.spec import bundled_gpus, gpu_for, load_gpu

P = GpuModelParams()


@pytest.fixture(scope="module")
def h100():
    return gpu_for("h100_sxm")


def test_design_points_load_and_are_consistent():
    gpus = bundled_gpus()
    assert {"a100_sxm", "h100_sxm", "h200_sxm"} <= set(gpus)  # tests/test_gpu_schema.py checks every spec
    for g in (gpus["a100_sxm"], gpus["h100_sxm"], gpus["h200_sxm"]):
        for dtype, rate in g.tensor_flops.items():
            assert rate["sparse"] == pytest.approx(2 * rate["dense"], rel=1e-3), (g.name, dtype)
        # Peak bf16 = FLOP/clock/SM x SMs x tensor clock (4096 on Hopper, 2048 on Ampere).
        per_clk = g.peak_flops("bfloat16", False) / (g.sm_count * g.tensor_clock_mhz * 1e6)
        assert per_clk == pytest.approx(4096 if g.compute_capability.startswith("9") else 2048, rel=1e-3)
    assert "float8_e4m3fn" not in gpus["a100_sxm"].tensor_flops  # no fp8 on Ampere
    h100, h200 = gpus["h100_sxm"], gpus["h200_sxm"]
    assert h200.tensor_flops == h100.tensor_flops and h200.hbm_bytes_per_s > h100.hbm_bytes_per_s
    assert gpu_for("NVIDIA H200").name == "h200_sxm"
    with pytest.raises(NmlabError, match="matches 0 design points"):
        gpu_for("Radeon")


def test_load_gpu_names_the_bad_field(tmp_path):
    text = bundled_path("h100_sxm").read_text()
    bad = tmp_path / "bad.yaml"
    bad.write_text(text.replace("sm_count: 132", "sm_count: 0"))
    with pytest.raises(NmlabError, match="gpu 'bad': sm_count: must be > 0"):
        load_gpu(bad)
    bad.write_text(text.replace("version: 2", "version: 9"))
    with pytest.raises(NmlabError, match="format/version"):
        load_gpu(bad)
    bad.write_text(text.replace("bfloat16: {dense: 989.4, sparse: 1978.9}", "bfloat16: {dense: 989.4}"))
    with pytest.raises(NmlabError, match="tensor_tflops.bfloat16: sparse: missing"):
        load_gpu(bad)


def bundled_path(name):
    from hwmodel.io import data_path

    return data_path("gpus", f"{name}.yaml")


@pytest.mark.parametrize("impl", grid.IMPLS)
@pytest.mark.parametrize("mode", ["eager", "graph"])
def test_time_never_decreases_with_size(h100, impl, mode):
    sizes = [1, 8, 32, 100, 256, 1000, 1024, 4096, 16384]
    for dim in range(3):
        times = []
        for s in sizes:
            if impl == "sparse_api" and dim == 0 and s % 8:
                continue  # the API pads such m per call: m = 1 costs more than m = 8 (tested below)
            shape = [1024, 1024, 1024]
            shape[dim] = s
            times.append(predict_gemm_us(h100, P, *shape, impl=impl, mode=mode))
        assert all(b >= a * (1 - 1e-9) for a, b in zip(times, times[1:])), (dim, times)


def test_large_gemm_approaches_the_efficient_peak(h100):
    s = 16384
    t = predict_gemm_us(h100, P, s, s, s)
    achieved = 2 * s**3 / (t * 1e-6)
    assert achieved == pytest.approx(P.eta_dense * h100.peak_flops("bfloat16", False), rel=0.02)
    ts = predict_gemm_us(h100, P, s, s, s, impl="sparse_cslt")
    assert t / ts == pytest.approx(2 * P.eta_sparse / P.eta_dense, rel=0.02)


def test_wave_quantization_step(h100):
    # One more 128-row tile than fills the SMs costs a whole extra wave for a compute-bound GEMM.
    full = 128 * h100.sm_count
    t_full = predict_gemm_us(h100, P, full, 256, 8192)
    t_plus = predict_gemm_us(h100, P, full + 1, 256, 8192)
    t_less = predict_gemm_us(h100, P, full - 128, 256, 8192)
    assert t_plus > 1.2 * t_full
    assert t_full - t_less < 0.05 * t_full


def test_tile_quantization_pads_small_dims(h100):
    # m = 1 and m = 64 use the same tiles: same compute, only x's bytes differ.
    t1 = predict_gemm_us(h100, P, 1, 8192, 8192)
    t64 = predict_gemm_us(h100, P, 64, 8192, 8192)
    assert t64 == pytest.approx(t1, rel=0.05)


def test_compressed_2of4_format_bytes():
    # values (half of them) + 2-bit metadata per kept value
    assert weight_bytes(1024, 1024, "bfloat16", True) == pytest.approx(1024 * 1024 * 2 * 9 / 16)
    assert weight_bytes(1024, 1024, "int8", True) == pytest.approx(1024 * 1024 * 10 / 16)
    assert weight_bytes(1024, 1024, "bfloat16", False) == 1024 * 1024 * 2


def test_memory_bound_speedup_follows_the_format():
    g = gpu_for("h200_sxm")
    p = GpuModelParams(node_us=0.0, sparse_fixed_us=0.0)
    d = predict_gemm_us(g, p, 8, 16384, 16384)
    s = predict_gemm_us(g, p, 8, 16384, 16384, impl="sparse_cslt")
    # Weight-streaming GEMV-like call: time ratio ~ bytes ratio 16/9 (x and y are tiny).
    assert d / s == pytest.approx(16 / 9, rel=0.03)
    # Same call on the H100: only bandwidth differs.
    h100 = gpu_for("h100_sxm")
    assert predict_gemm_us(h100, p, 8, 16384, 16384) / d == pytest.approx(4.8 / 3.35, rel=0.03)


def test_sparse_api_padding_adds_kernels_and_overhead(h100):
    m = GpuModel(h100, [gemm_row(1, 4096, 4096, impl="sparse_api"), gemm_row(8, 4096, 4096, impl="sparse_api"),
                        gemm_row(1, 4096, 4096, impl="sparse_cslt"), gemm_row(1, 4096, 4096, impl="dense")])
    assert list(m.kernels_per_row) == [3, 1, 1, 1]  # pad x, GEMM, copy the sliced output
    eager, graph = m.predict(P)
    assert graph[0] > graph[1]
    assert eager[0] >= P.api_us + P.cslt_host_us + 3 * P.launch_us
    assert eager[0] - graph[0] >= P.api_us + P.cslt_host_us
    assert eager[2] == pytest.approx(graph[2] + P.launch_us + P.cslt_host_us)  # raw cuSPARSELt call
    assert eager[3] == pytest.approx(graph[3] + P.launch_us)                   # cuBLAS
    for e, g in zip(eager, graph):
        assert e >= g and e >= P.launch_us


def test_eager_adds_the_launch_or_is_cpu_bound(h100):
    p = GpuModelParams(launch_us=7.0)
    for shape in ((16, 16, 16), (4096, 4096, 4096)):  # one kernel: launch, then the GPU work
        graph = predict_gemm_us(h100, p, *shape, mode="graph")
        assert predict_gemm_us(h100, p, *shape, mode="eager") == pytest.approx(graph + 7.0)
    # Many tiny kernels (an actor forward): the CPU issue rate bounds the call.
    row = {"kind": "actor_fwd", "impl": "dense", "dtype": "bfloat16", "m": 1, "n": 256, "k": 256,
           "env": "hopper", "width": 256}
    m = GpuModel(h100, [row])
    eager, graph = m.predict(GpuModelParams(launch_us=20.0, node_us=1.0))
    assert eager[0] == pytest.approx(20.0 * m.kernels_per_row[0]) and graph[0] < eager[0] / 2


def test_composites_are_sums_of_their_gemms(h100):
    rows = [{"kind": "td3_step", "impl": i, "dtype": "bfloat16", "m": 256, "n": w, "k": w, "env": "hopper",
             "width": w} for w in (256, 4096) for i in ("dense", "sparse_cslt")]
    m = GpuModel(h100, rows)
    eager, graph = m.predict(P)
    gemms = grid.td3_step_gemms("hopper", 4096, 256, False)
    gemm_sum = sum(predict_gemm_us(h100, P, g.m, g.n, g.k) for g in gemms)
    assert graph[2] > gemm_sum  # plus the elementwise kernels
    assert graph[2] > graph[0] and eager[2] > eager[0]
    assert m.kernels_per_row[1] > m.kernels_per_row[0]  # re-compression kernels
    a = GpuModel(h100, [{"kind": "actor_fwd", "impl": "dense", "dtype": "bfloat16", "m": 1, "n": 256, "k": 256,
                         "env": "hopper", "width": 256}])
    assert a.kernels_per_row[0] == 3 + grid.actor_forward_aux_kernels(False)
    assert math.isfinite(a.predict(P)[1][0])


def test_fp8_has_no_rate_on_a100():
    with pytest.raises(NmlabError, match="no tensor-core rate"):
        predict_gemm_us(gpu_for("a100_sxm"), P, 256, 256, 256, dtype="float8_e4m3fn")
