"""GPU design points and the analytic GPU timing model: hand-computed tile/wave and L2 cases,
monotonicity, the 2:4 format, heating, the vectorized API."""

import math

import numpy as np
import pytest

from hwmodel.errors import NmlabError
from hwmodel.gpu.kernels import CLUSTER_MULTICAST, OPERAND_BYTES, SPLITS, TILES, candidates
from hwmodel.gpu.model import (PUBLISHED_LOOP_CALLS, TILE_INTENSITY_FULL, Geometry, GpuParams, predict, predict_pair_us,
                               predict_s, smooth_max, tile_intensity_full, weight_bytes)
from hwmodel.gpu.params import architecture, bundled_params, params_for
from hwmodel.gpu.spec import bundled_gpus, gpu_for, load_gpu

# Full efficiency, tensor power far below any board limit (no throttling), an L2 fast enough
# not to bind: the compute term alone.
ETA1 = GpuParams(eta={"bfloat16": {"dense": 1.0, "sparse": 1.0}}, tensor_pj_per_flop=0.05, l2_bytes_per_clk_sm=200.0)


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
    with pytest.raises(NmlabError, match="is not a bundled GPU spec, a spec file nor a device name of one"):
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


def _candidate(tm, tn, split, sparse=False):
    """Column of (tm, tn, split) in Geometry's candidate arrays (tiles outer, splits inner)."""
    return TILES[sparse].index((tm, tn)) * len(SPLITS[sparse]) + SPLITS[sparse].index(split)


def test_4096_cubed_bf16_on_h100_sxm_by_hand(h100):
    # 4096^3 bf16 dense, 128x256 tiles, no split-K: 32 x 16 = 512 tiles on 132 SMs = 4 waves
    # (3.88 rounded up), each a full tile of 2*128*256*4096 FLOPs at the per-SM peak.
    geo = Geometry(h100, 4096, 4096, 4096, "bfloat16", False)
    c = _candidate(128, 256, 1)
    assert geo.waves[0, c] == 4 == math.ceil((4096 // 128) * (4096 // 256) / 132)
    assert geo.tile_flops[0, c] == 2 * 128 * 256 * 4096
    terms = geo.terms(ETA1, loop_calls=1, l2="cold")
    peak_boost = 989.4e12 * h100.boost_clock_mhz / h100.tensor_clock_mhz
    clock = terms["clock"][0]  # 0.05 pJ/FLOP x 1070 TFLOP/s = 54 W, far below 700 W: boost
    assert clock == 1.0
    want_s = 4 * 2 * 128 * 256 * 4096 / (peak_boost * clock / 132)
    assert terms["compute_s"][0, c] == pytest.approx(want_s, rel=1e-12)
    # The wave tail costs 4 / 3.88 = 3% over a perfectly balanced schedule.
    assert want_s / (2 * 4096**3 / (peak_boost * clock)) == pytest.approx(4 / (512 / 132), rel=1e-12)
    # DRAM: X, W and Y once each (cold call), 3 x 32 MiB at eta_mem of the bandwidth.
    assert terms["dram_s"][0] == pytest.approx(3 * 4096 * 4096 * 2 / (ETA1.eta_mem * 3.35e12), rel=1e-12)
    # L2 moves X once per tile column and W once per tile row: (16 + 32) x 32 MiB (+ Y), each
    # operand tile once per 2-SM cluster on Hopper (TMA multicast).
    assert CLUSTER_MULTICAST["9"] == 2.0
    traffic = (16 * 4096 * 4096 * 2 + 32 * 4096 * 4096 * 2 + 4096 * 4096 * 2) / 2
    assert terms["l2_s"][0, c] == pytest.approx(traffic / (200.0 * 132 * h100.boost_clock_mhz * 1e6 * clock))
    # The kernel is compute-bound: the chosen candidate's time is within the smooth max of it.
    best = terms["kernel_s"][0].min()
    assert terms["compute_s"][0].min() <= best < 1.2 * terms["compute_s"][0].min()
    # The candidate's kernel time: compute, L2 and DRAM overlap as a 4-norm (not a plain max).
    parts = (terms["compute_s"][0, c], terms["l2_s"][0, c], terms["dram_s"][0])
    assert terms["kernel_s"][0, c] == pytest.approx(sum(t ** 4 for t in parts) ** 0.25, rel=1e-12)
    assert terms["kernel_s"][0, c] > max(parts) * (1 + 1e-6)


@pytest.mark.parametrize("m, n, tiles, waves", [
    (4096, 4097, 32 * 17, 5),     # one column over 16 x 256: a 17th tile column, 544 tiles, 5 waves
    (4225, 4096, 34 * 16, 5),     # 33 x 128 + 1 rows: a 34th tile row, 544 tiles, 5 waves
    (1, 1, 1, 1),                 # a 1 x 1 output is still a whole tile
])
def test_partial_tiles_cost_whole_tiles_by_hand(h100, m, n, tiles, waves):
    """Tiles quantize m and n up, and waves quantize tiles up: 4096 x 4097 (m x n) on 128 x 256
    tiles is 32 x 17 tiles (not 32 x 16.004), 5 waves on 132 SMs (not 4), each a full tile's
    FLOPs; L2 reads X once per tile column and W once per tile row."""
    k = 4096
    geo = Geometry(h100, m, k, n, "bfloat16", False)
    c = _candidate(128, 256, 1)
    assert tiles == math.ceil(m / 128) * math.ceil(n / 256)
    assert geo.waves[0, c] == waves == math.ceil(tiles / 132)
    assert geo.tile_flops[0, c] == 2 * 128 * 256 * k
    terms = geo.terms(ETA1, loop_calls=1, l2="cold")
    peak_boost = 989.4e12 * h100.boost_clock_mhz / h100.tensor_clock_mhz
    assert terms["clock"][0] == 1.0
    assert terms["compute_s"][0, c] == pytest.approx(waves * 2 * 128 * 256 * k / (peak_boost / 132), rel=1e-12)
    traffic = (m * k * 2 * math.ceil(n / 256) + n * k * 2 * math.ceil(m / 128) + m * n * 2) / CLUSTER_MULTICAST["9"]
    assert terms["l2_s"][0, c] == pytest.approx(traffic / (200.0 * 132 * h100.boost_clock_mhz * 1e6), rel=1e-12)


@pytest.mark.parametrize("split", [2, 4, 8])
def test_split_k_by_hand(h100, split):
    """128 x 4097 x 256 (m x k x n) bf16 on one 128 x 256 tile split `split` ways along k: each
    split tile walks ceil(4097 / split) of k (a partial slice costs a whole one), `split` tiles
    fit one wave, and L2 also moves each split tile's fp32 partials out and back
    (2 x 128 x 256 x 4 bytes)."""
    m, k, n = 128, 4097, 256
    geo = Geometry(h100, m, k, n, "bfloat16", False)
    c = _candidate(128, 256, split)
    assert geo.waves[0, c] == 1
    assert geo.tile_flops[0, c] == 2 * 128 * 256 * math.ceil(k / split)
    terms = geo.terms(ETA1, loop_calls=1, l2="cold")
    assert terms["clock"][0] == 1.0
    traffic = (m * k * 2 + n * k * 2 + m * n * 2 + split * 2 * 128 * 256 * 4) / CLUSTER_MULTICAST["9"]
    assert terms["l2_s"][0, c] == pytest.approx(traffic / (200.0 * 132 * h100.boost_clock_mhz * 1e6), rel=1e-12)


def test_split_k_needs_256_of_k_per_split(h100):
    """Split-K is offered only from k / split >= 256: 2048 / 8 is, 2047 / 8 is not."""
    geo = Geometry(h100, [128, 128], [2048, 2047], [256, 256], "bfloat16", False)
    c = _candidate(128, 256, 8)
    assert geo.waves[0, c] == 1 and geo.waves[1, c] == np.inf
    assert geo.waves[1, _candidate(128, 256, 4)] == 1


def test_ada_int8_wide_tile_only_from_one_and_a_half_waves():
    """TILE_MIN_WAVES: Ada cuBLASLt int8 takes its 128 x 256 tile only from 1.5 waves of tiles on.
    On an RTX 4090 (128 SMs): 3 x 64 = 192 tiles (exactly 1.5 waves) is offered, as 2 waves;
    10 x 19 = 190 tiles is not."""
    from hwmodel.gpu.kernels import TILE_MIN_WAVES

    g = gpu_for("rtx4090")
    assert g.sm_count == 128 and TILE_MIN_WAVES[("8.9", False, "int8")] == {(128, 256): 1.5}
    geo = Geometry(g, [384, 1280], [4096, 4096], [64 * 256, 19 * 256], "int8", False)
    c = candidates(g, "int8", False).column((128, 256))
    assert geo.waves[0, c] == 2
    assert geo.waves[1, c] == np.inf


def test_power_limited_clock_by_hand(h100):
    # 16384^3 bf16 dense on H100 SXM (700 W), 2 pJ per FLOP, 1000 calls (2 ms time constant):
    # at boost the GEMM reaches a fraction u of the 1070 TFLOP/s boost peak and would draw
    # 2e-12 x 1070e12 x u W; the clock settles at (700 / that)^(1/3) and a long loop sits
    # there (tau / (tau + T) ~ 0).
    p = GpuParams(eta={"bfloat16": {"dense": 0.9, "sparse": 0.9}}, tensor_pj_per_flop=2.0, heat_ms=2.0,
                  l2_bytes_per_clk_sm=200.0)
    geo = Geometry(h100, 16384, 16384, 16384, "bfloat16", False)
    peak_boost = 989.4e12 * h100.boost_clock_mhz / h100.tensor_clock_mhz
    boost = geo.terms(p, loop_calls=1000, l2="cold")
    ones = np.ones(1)
    at_boost_s = geo._at_clock(p, 0.9, ones, boost["dram_s"])[2].min(axis=1)[0]
    u = 2 * 16384**3 / (peak_boost * at_boost_s)
    assert 0.8 < u < 0.9  # eta 0.9, a little lost to waves and the overlap with memory
    f = (700.0 / (2e-12 * peak_boost * u)) ** (1 / 3)
    run_s = 1000 * at_boost_s
    want = f + (1 - f) * 2e-3 / (2e-3 + run_s)
    assert boost["clock"][0] == pytest.approx(want, rel=1e-12) and 0.7 < want < 0.8
    # fp8 at full rate draws what bf16 does (an 8-bit FLOP costs half): same clock fraction.
    p8 = p.with_values(eta={"float8_e4m3fn": {"dense": 0.9, "sparse": 0.9}})
    geo8 = Geometry(h100, 16384, 16384, 16384, "float8_e4m3fn", False)
    assert geo8.terms(p8, loop_calls=1000, l2="cold")["clock"][0] == pytest.approx(want, rel=0.02)
    # A card with no power limit recorded runs at boost.
    from dataclasses import replace
    free = Geometry(replace(h100, power_limit_w=None), 16384, 16384, 16384, "bfloat16", False)
    assert free.terms(p, loop_calls=1000, l2="cold")["clock"][0] == 1.0


def test_small_gemm_lives_in_l2(h100):
    # 1024^3 bf16: X, W, Y are 2 MiB each = 6 MiB, far below the usable L2 (l2_usable x 50 MB):
    # in a loop on the same operands almost nothing comes from DRAM; a cold call reads all 6 MiB.
    p = GpuParams(l2_usable=0.6)
    geo = Geometry(h100, 1024, 1024, 1024, "bfloat16", False)
    warm, cold = geo.terms(p, l2="warm"), geo.terms(p, l2="cold")
    ws = 3 * 1024 * 1024 * 2
    ratio = (ws / (0.6 * h100.l2_bytes)) ** 6
    assert warm["miss"][0] == pytest.approx(ratio / (1 + ratio), rel=1e-12) and warm["miss"][0] < 1e-4
    assert cold["dram_s"][0] == pytest.approx(ws / (p.eta_mem * h100.memory_bytes_per_s), rel=1e-12)
    assert warm["dram_s"][0] < 1e-4 * cold["dram_s"][0]
    # A working set 4x the L2 misses almost always, warm or not.
    big = Geometry(h100, 16384, 8192, 8192, "bfloat16", False).terms(p, l2="warm")
    assert big["miss"][0] > 0.99


def test_memory_bound_gemv_time_follows_the_2of4_bytes(h100):
    # m = 1, weight 16384 x 16384 cold: time ~ weight bytes / bandwidth; 2:4 moves 9/16.
    p = params_for(h100)
    dense, sparse = predict_pair_us(h100, 1, 16384, 16384, "bfloat16", p, l2="cold")
    assert weight_bytes(np.float64(16384), np.float64(16384), "bfloat16", True) / (16384 * 16384 * 2) == 9 / 16
    assert sparse[0] < dense[0] and dense[0] / sparse[0] == pytest.approx(16 / 9, rel=0.1)


def test_hopper_kernels_that_do_not_split_k():
    # Hopper's cuSPARSELt 16-bit 2:4 and cuBLASLt int8 kernels walk all of k per tile; the
    # other kernels, and these on Ampere, may split.
    h100p, a100 = gpu_for("h100_pcie"), gpu_for("a100_pcie")
    assert candidates(h100p, "bfloat16", True)[1] == candidates(h100p, "float16", True)[1] == (1,)
    assert candidates(h100p, "int8", False)[1] == (1,)
    assert candidates(h100p, "float8_e4m3fn", True)[1] == SPLITS[True] == candidates(a100, "bfloat16", True)[1]
    assert candidates(h100p, "bfloat16", False)[1] == SPLITS[False] == candidates(a100, "int8", False)[1]
    geo = Geometry(h100p, 64, 8192, 2048, "bfloat16", True)
    assert geo.waves.shape == (1, len(TILES[True])) and np.all(geo.waves == 1)  # <= 32 tiles on 114 SMs
    # The published H100 PCIe bf16 2:4 times at m = 64, n = 2048 grow with k alone: 14.1 us at
    # k = 2048, 36.6 us at 8192 (2.6x); the fp8 2:4 ones 7.2 -> 12.7 us. The bundled model too.
    bf16 = [predict(h100p, 64, k, 2048, "bfloat16", True) * 1e6 for k in (2048, 8192)]
    fp8 = [predict(h100p, 64, k, 2048, "float8_e4m3fn", True) * 1e6 for k in (2048, 8192)]
    assert bf16[0] == pytest.approx(14.1, rel=0.15) and bf16[1] == pytest.approx(36.6, rel=0.15)
    assert bf16[1] / bf16[0] > 2.2 and fp8[1] / fp8[0] < 2.0


def test_hopper_int8_kernels_have_the_tiles_of_the_search_logs():
    # cuBLASLt int8 on Hopper runs algorithm 21 (tile 64 rows of X x 128 of W) at small m and 39
    # (256 x 128) from m = 256-512, never split; other dtypes and GPUs keep the full tile set.
    h100p, a100 = gpu_for("h100_pcie"), gpu_for("a100_pcie")
    assert candidates(h100p, "int8", False)[0] == ((64, 128), (256, 128))
    assert candidates(h100p, "bfloat16", False)[0] == TILES[False] == candidates(a100, "int8", False)[0]
    assert candidates(h100p, "int8", True)[0] == TILES[True]
    # Published H100 PCIe int8 dense: 64x2048x8192 takes 29.0 us, 2.9x the 10.0 us of
    # 64x2048x2048 (one 64 x 128 tile per 16 of 114 SMs walking all of k); the bundled model too.
    short, long_k = (predict(h100p, 64, k, 2048, "int8", False) * 1e6 for k in (2048, 8192))
    assert short == pytest.approx(10.0, rel=0.15) and long_k == pytest.approx(29.0, rel=0.15)


def test_weight_reread_in_ampere_16bit_2of4_kernels():
    # cuSPARSELt's 16-bit kernels on Ampere/Ada deal tiles along n first: 16384 x 5120 x 27648
    # has 216 tile columns of 128 for 108 SMs, so a wave holds one row-block of X and the 159 MB
    # weight (far above the L2) is read again for each of the other 127 row-blocks.
    a100 = gpu_for("a100_pcie")
    c = _candidate(128, 128, 1, sparse=True)
    geo = Geometry(a100, 16384, 5120, 27648, "bfloat16", True)
    assert geo.w_rereads[0, c] == 16384 // 128 - 1
    assert geo.w_bytes[0] == weight_bytes(np.float64(27648), np.float64(5120), "bfloat16", True)
    # Not at small m, not for 8-bit or dense kernels, not on Hopper.
    assert not Geometry(a100, 64, 5120, 27648, "bfloat16", True).w_rereads.any()
    for other in (Geometry(a100, 16384, 5120, 27648, "int8", True), Geometry(a100, 16384, 5120, 27648, "bfloat16", False),
                  Geometry(gpu_for("h100_pcie"), 16384, 5120, 27648, "bfloat16", True)):
        assert not other.w_rereads.any()
    # Published A100: per output column, n = 27648 takes 1.32x the time of n = 7168 (2:4 bf16,
    # m = 16384, k = 5120); dense 1.0x. The bundled model: 2:4 above 1.15x, dense below 1.1x.
    for sparse, lo, hi in ((True, 1.15, 1.5), (False, 0.9, 1.1)):
        wide, narrow = (predict(a100, 16384, 5120, n, "bfloat16", sparse) / n for n in (27648, 7168))
        assert lo < wide / narrow < hi, sparse


def test_ampere_kernels_on_blackwell_run_at_the_ampere_sm_rate():
    # cuBLASLt's int8 GEMM on Blackwell is an sm80-class kernel: its peak is an A100 SM's int8
    # rate (4096 ops per clock) x 148 SMs x boost, a quarter of the spec's 4.5 POPS (scaled to
    # boost); cuSPARSELt's int8, the other B200 dtypes and Hopper's int8 keep the spec's.
    b200, h100p = gpu_for("b200"), gpu_for("h100_pcie")
    boost = b200.boost_clock_mhz / b200.tensor_clock_mhz
    assert Geometry(b200, 64, 64, 64, "int8", False).peak == pytest.approx(4096 * 148 * b200.boost_clock_mhz * 1e6)
    assert Geometry(b200, 64, 64, 64, "int8", True).peak == pytest.approx(b200.peak_flops("int8", True) * boost)
    assert Geometry(b200, 64, 64, 64, "float8_e4m3fn", False).peak == pytest.approx(b200.peak_flops("float8_e4m3fn", False) * boost)
    h_boost = h100p.boost_clock_mhz / h100p.tensor_clock_mhz
    assert Geometry(h100p, 64, 64, 64, "int8", False).peak == pytest.approx(h100p.peak_flops("int8", False) * h_boost)
    # With it the B200 fits an int8 efficiency like the other GPUs' (0.18 of the spec peak
    # without it), and the set fitted on all GPUs predicts B200 dense int8 8192^3 (published:
    # 1181 us; 4.5 POPS at that efficiency would give about 300 us).
    sets = bundled_params()
    assert 0.5 < sets["blackwell"].efficiency("int8", False) < 1.0
    assert predict(b200, 8192, 8192, 8192, "int8", False, sets["generic"]) * 1e6 == pytest.approx(1181, rel=0.2)
    # Like Hopper's sm80-class int8 kernels it does not split K: the published B200 int8 times at
    # m = 64 are set by k (10.4 us at k = n = 2048, 14.5 at 3584, 18.6 at 5120); the bundled model too.
    assert candidates(b200, "int8", False)[1] == (1,)
    for k, us in ((2048, 10.4), (3584, 14.5), (5120, 18.6)):
        assert predict(b200, 64, k, k, "int8", False) * 1e6 == pytest.approx(us, rel=0.12), k


def test_hopper_fp8_2to4_runs_at_the_ampere_class_8bit_sparse_rate():
    # cuSPARSELt's fp8 2:4 kernel on Hopper is capped like its 16-bit one: an Ampere-class SM's
    # 8-bit 2:4 rate (2 x 4096 ops per clock) x 114 SMs x boost, half the spec's at boost. Its
    # published large GEMMs reach 0.87 of that (1,433 TFLOP/s at most), 0.44 of the spec; Hopper's
    # dense fp8 and int8 2:4 keep the spec's rate, and the tile threshold is unchanged (the cap
    # equals the native dense fp8 rate).
    h100p = gpu_for("h100_pcie")
    cap = 2 * 4096 * 114 * h100p.boost_clock_mhz * 1e6
    boost = h100p.boost_clock_mhz / h100p.tensor_clock_mhz
    fp8 = candidates(h100p, "float8_e4m3fn", True)
    assert fp8.sm80_peak == pytest.approx(cap) and fp8.peak == pytest.approx(cap)
    assert fp8.peak == pytest.approx(0.5 * h100p.peak_flops("float8_e4m3fn", True) * boost, rel=0.01)
    assert tile_intensity_full(h100p, "float8_e4m3fn", fp8) == pytest.approx(TILE_INTENSITY_FULL, rel=1e-3)
    assert candidates(h100p, "float8_e4m3fn", False).peak == pytest.approx(h100p.peak_flops("float8_e4m3fn", False) * boost)
    assert candidates(h100p, "int8", True).peak == pytest.approx(h100p.peak_flops("int8", True) * boost)
    # Not on the data-center Blackwell or Ada parts that run their own fp8 2:4 kernels.
    for name in ("b200", "rtx4090"):
        g = gpu_for(name)
        assert candidates(g, "float8_e4m3fn", True).sm80_peak is None, name
    # The published H100 PCIe fp8 2:4 times: the best large GEMM within 0.8-1.0 of the cap.
    from hwmodel.gpu.measurements import bundled_files, read_measurements
    meas = read_measurements([f for f in bundled_files() if "h100" in f.name][0])
    sel = (meas.dtype == "float8_e4m3fn") & (meas.m >= 2048)
    best = np.max(2.0 * meas.m[sel] * meas.n[sel] * meas.k[sel] / (meas.sparse_us[sel] * 1e-6))
    assert 0.8 < best / cap < 1.0


def test_blackwell_kernels_do_not_split_k():
    # The source's B200 search logs pick split-K 1 (or the default, no split) as the fastest
    # configuration of every shape for cuSPARSELt fp8 2:4 and cuBLASLt fp8, and the published
    # B200 times at m = 64 grow with k as one CTA per tile walking all of k does, dense and 2:4
    # alike: bf16 64 x 8192 x 2048 takes 14.4 us both ways (8.3 us for 2:4 at k = 2048), fp8 2:4
    # 10.3. Split-K candidates put the bundled model at 9.2 / 8.8 us for the bf16 pair.
    b200, h100p, a100 = gpu_for("b200"), gpu_for("h100_pcie"), gpu_for("a100_pcie")
    for dtype in ("bfloat16", "float16", "float8_e4m3fn", "int8", "float4_e2m1"):
        for sparse in (False, True):
            assert candidates(b200, dtype, sparse).splits == (1,), (dtype, sparse)
    # Hopper and Ampere keep the splits their own logs show.
    assert candidates(h100p, "float8_e4m3fn", False).splits == SPLITS[False]
    assert candidates(a100, "bfloat16", True).splits == SPLITS[True]
    dense, sparse = predict_pair_us(b200, 64, 8192, 2048, "bfloat16")
    assert dense == pytest.approx(14.4, rel=0.1) and sparse == pytest.approx(14.4, rel=0.1)
    assert predict_pair_us(b200, 64, 8192, 2048, "float8_e4m3fn")[1] == pytest.approx(10.3, rel=0.1)
    # The k-walk, not a fixed cost: the 2:4 time grows with k at this m as the published one does.
    grow = predict_pair_us(b200, 64, 8192, 2048, "bfloat16")[1] / predict_pair_us(b200, 64, 2048, 2048, "bfloat16")[1]
    assert grow == pytest.approx(14.41 / 8.27, rel=0.15)


def test_blackwell_int8_runs_64x128_tiles_in_waves():
    # The published B200 int8 dense times step in waves of 64 x 128 tiles (rows of X x columns of
    # W) on 148 SMs, each tile walking all of k: at k = 2048, 10.4 us for every m from 64 to 512
    # at n = 2048 (16-128 tiles), and with n = 16384 10.4, 16.5, 27.5, 45.1 us at m = 64, 128, 256,
    # 512 (1, 2, 4, 7 waves). Its peak is capped at the Ampere SM rate, a quarter of the B200's
    # dense int8 rate, so the tile needs a quarter of the operand feed and runs at full rate.
    b200, h100p, a100 = gpu_for("b200"), gpu_for("h100_pcie"), gpu_for("a100_pcie")
    kernel = candidates(b200, "int8", False)
    assert kernel.tiles == ((64, 128),) and candidates(b200, "int8", True).tiles == TILES[True]
    assert tile_intensity_full(b200, "int8", kernel) == pytest.approx(TILE_INTENSITY_FULL / 4, rel=0.01)
    geo = Geometry(b200, 64, 2048, 2048, "int8", False)
    assert geo.tile_flops[0, 0] == 2 * 64 * 128 * 2048 and geo.waves[0, 0] == 1  # no 0.67 factor
    # Not for native kernels, nor where the cap equals the native dense rate (Hopper 16-bit 2:4).
    assert tile_intensity_full(a100, "int8", candidates(a100, "int8", False)) == TILE_INTENSITY_FULL
    assert tile_intensity_full(h100p, "int8", candidates(h100p, "int8", False)) == TILE_INTENSITY_FULL
    assert tile_intensity_full(h100p, "bfloat16", candidates(h100p, "bfloat16", True)) == pytest.approx(TILE_INTENSITY_FULL, rel=1e-3)
    # Hopper's int8 64x128 tile is the sm80-class kernel (``SM80_TILES``): full tile factor at the
    # Ampere rate, half the H100's int8 rate (test_hopper_int8_64x128_tile_runs_at_the_ampere_sm_rate).
    h_int8 = Geometry(h100p, 64, 2048, 2048, "int8", False)
    assert h_int8.tile_flops[0, 0] == pytest.approx(2 * 64 * 128 * 2048 * h_int8.peak / (4096 * 114 * 1755e6))
    # The bundled model: flat from m = 64 to 512 at n = 2048 (the full tile set stepped +26% at
    # m = 512), and the waves at n = 16384.
    flat = [predict(b200, m, 2048, 2048, "int8", False) for m in (64, 512)]
    assert flat[1] / flat[0] < 1.02
    for m, us in ((64, 10.4), (128, 16.5), (256, 27.5), (512, 45.1)):
        assert predict(b200, m, 2048, 16384, "int8", False) * 1e6 == pytest.approx(us, rel=0.12), m


def test_hopper_int8_64x128_tile_runs_at_the_ampere_sm_rate():
    # Hopper cuBLASLt int8: the logs' algorithm 21 (64x128, m <= 128-256) is the sm80-class kernel.
    # Its lone tiles at m = 64 run the extra k at 5.2-5.3 TOPS per SM (published H100 PCIe, n = 2048: 10.0 us
    # at k = 2048, 29.0 us at 8192), 0.73 of an Ampere SM's 4096 int8 ops per clock at boost, 0.37
    # of Hopper's 8192. So that tile runs at the Ampere SM rate with the full tile factor (its
    # feed is that of a capped kernel), while algorithm 39's 256x128 tile (1,097 TOPS at large m,
    # 1.34x the Ampere rate) keeps the native rate; no other kernel has a per-tile cap.
    h100p, b200 = gpu_for("h100_pcie"), gpu_for("b200")
    sm80 = 4096 * 114 * 1755e6
    kernel = candidates(h100p, "int8", False)
    assert kernel.tiles == ((64, 128), (256, 128)) and kernel.tile_sm80_peak == (pytest.approx(sm80), None)
    assert kernel.sm80_peak is None and kernel.peak == pytest.approx(h100p.peak_flops("int8", False) * 1755 / 1620)
    assert candidates(h100p, "int8", True).tile_sm80_peak == (None,) * len(TILES[True])
    assert candidates(b200, "int8", False).tile_sm80_peak == (None,)  # capped as a whole (LEGACY_SM80)
    # By hand, at the boost clock and eta 0.7: one 64x128 tile per SM (16 tiles) walking k = 8192.
    eta, k = 0.7, 8192
    geo = Geometry(h100p, 64, k, 2048, "int8", False)
    compute_s, _, _ = geo._at_clock(ETA1, eta, np.ones(1), np.zeros(1))
    assert geo.waves[0, 0] == 1
    assert compute_s[0, 0] == pytest.approx(2 * 64 * 128 * k / (eta * 4096 * 1755e6), rel=1e-9)  # 26.1 us
    # 256x128 at the native rate (its intensity 85 is above the full-rate 64): 4x the work per tile
    # at twice the rate.
    assert compute_s[0, 1] == pytest.approx(2 * 256 * 128 * k / (eta * kernel.peak / 114), rel=1e-9)
    assert compute_s[0, 1] / compute_s[0, 0] == pytest.approx(4 * sm80 / kernel.peak, rel=1e-9)


def test_hopper_16bit_2of4_runs_at_the_ampere_sm_rate():
    # cuSPARSELt's 16-bit 2:4 kernels on Hopper peak at an A100 SM's 2:4 rate (2 x 2048 FLOP per
    # clock) x SMs x boost: 819 TFLOP/s on the H100 PCIe (published best: 753), half the spec's;
    # its int8 2:4 kernel and its dense bf16 keep the spec's peak (its fp8 2:4: the test below).
    h100p = gpu_for("h100_pcie")
    boost = h100p.boost_clock_mhz / h100p.tensor_clock_mhz
    for dtype in ("bfloat16", "float16"):
        assert Geometry(h100p, 64, 64, 64, dtype, True).peak == pytest.approx(2 * 2048 * 114 * h100p.boost_clock_mhz * 1e6)
    for dtype, sparse in (("int8", True), ("bfloat16", False)):
        assert Geometry(h100p, 64, 64, 64, dtype, sparse).peak == pytest.approx(h100p.peak_flops(dtype, sparse) * boost)
    # So the H100's bf16 2:4 efficiency is an A100-like one (0.47 of the spec's peak without it),
    # and the H100 PCIe's bundled bf16 2:4 time at 16384^3 stays near the published 15.3 ms.
    sets = bundled_params()
    assert sets["hopper"].efficiency("bfloat16", True) > 0.7
    assert predict(h100p, 16384, 16384, 16384, "bfloat16", True) * 1e3 == pytest.approx(15.3, rel=0.15)


def test_time_grows_with_size_and_heat(h100):
    p = params_for(h100)
    sizes = np.array([256, 512, 1024, 2048, 4096, 8192, 16384])
    for sparse in (False, True):
        t = predict_s(h100, sizes, sizes, sizes, "bfloat16", sparse, p)
        assert np.all(np.diff(t) > 0)
    # A long loop heats the card: per-call time of a big GEMM rises with the number of calls.
    one = predict(h100, 16384, 16384, 16384, "bfloat16", False, p, loop_calls=1)
    many = predict(h100, 16384, 16384, 16384, "bfloat16", False, p, loop_calls=PUBLISHED_LOOP_CALLS)
    assert many > one
    # Tiny GEMMs sit on the per-call floor.
    assert predict(h100, 64, 64, 64, "bfloat16", False, p) >= p.issue_us * 1e-6


def test_vectorized_equals_scalar_and_shapes(h100):
    m = np.array([[64, 4096], [512, 16384]])
    got = predict(h100, m, 4096, 2048, "int8", True)
    assert got.shape == (2, 2)
    for i in range(2):
        for j in range(2):
            assert got[i, j] == predict(h100, int(m[i, j]), 4096, 2048, "int8", True)
    assert isinstance(predict(h100, 128, 128, 128, "bfloat16", False), float)
    assert predict(h100, 128, 128, 128, "bfloat16", False, mode="eager") > predict(h100, 128, 128, 128,
                                                                                    "bfloat16", False)


def test_bad_arguments_are_user_errors(h100):
    with pytest.raises(NmlabError, match="no tensor-core rate"):
        predict(gpu_for("a100_sxm"), 256, 256, 256, "float8_e4m3fn", False)
    with pytest.raises(NmlabError, match="m, k, n"):
        predict(h100, 0, 256, 256, "bfloat16", False)
    with pytest.raises(NmlabError, match="l2 must be"):
        predict(h100, 256, 256, 256, "bfloat16", False, l2="hot")
    with pytest.raises(NmlabError, match="unknown dtype"):
        predict(h100, 256, 256, 256, "complex64", False)


def test_smooth_max_bounds():
    a, b = np.array([1.0, 3.0]), np.array([1.0, 1.0])
    got = smooth_max(a, b)
    assert np.all(got >= np.maximum(a, b)) and np.all(got <= 2 ** 0.25 * np.maximum(a, b) + 1e-12)
    # The 4-norm by hand: equal terms overlap imperfectly (2^(1/4) x one of them), a dominant
    # one is nearly the max; a plain max (perfect overlap) or a sum (none) is not this model.
    assert got.tolist() == pytest.approx([2 ** 0.25, 82 ** 0.25], rel=1e-12)
    assert smooth_max(np.array([2.0]), np.array([2.0]), np.array([2.0]))[0] == pytest.approx(2 * 3 ** 0.25, rel=1e-12)


def test_every_spec_has_parameters():
    sets = bundled_params()
    assert "generic" in sets
    for spec in bundled_gpus().values():
        p = params_for(spec, sets)
        assert p is sets.get(architecture(spec), sets["generic"])
        for dtype in spec.tensor_flops:
            if dtype in OPERAND_BYTES:
                assert math.isfinite(predict(spec, 1024, 1024, 1024, dtype, True, p))


def _lone_tile_at_full_rate(spec, m, k, n, dtype, sparse, eta=1.0):
    """(geometry, terms, best candidate, params) at efficiency ``eta``, no throttling and an L2 that never binds."""
    p = GpuParams(eta={dtype: {"dense": eta, "sparse": eta}}, tensor_pj_per_flop=0.05, l2_bytes_per_clk_sm=200.0)
    geo = Geometry(spec, m, k, n, dtype, sparse)
    t = geo.terms(p)
    return geo, t, t["best"][0], p


def test_ada_int8_runs_the_logged_ampere_kernel():
    # The RTX 4090's cuBLASLt int8 search logs (vllmbench RTX4090_cc89_*/INT8) name algorithm 21
    # at every shape: tile 64x128 (rows of X x columns of W) up to m = 1024, 128x256 from m = 2048,
    # workspace 0 and split-K 1; its cuSPARSELt int8 logs split K 1 as well. The A100 (same
    # compute-capability major) keeps the generic candidates, and so do Ada's other dtypes.
    rtx, a100 = gpu_for("rtx4090"), gpu_for("a100_pcie")
    kernel = candidates(rtx, "int8", False)
    assert kernel.tiles == ((64, 128), (128, 256)) and kernel.splits == (1,)
    assert candidates(rtx, "int8", True).splits == (1,) and candidates(rtx, "int8", True).tiles == TILES[True]
    assert candidates(rtx, "float8_e4m3fn", True).splits == (1,)
    assert candidates(rtx, "bfloat16", True).splits == SPLITS[True] and candidates(rtx, "float8_e4m3fn", False).splits == SPLITS[False]
    assert set(candidates(rtx, "float8_e4m3fn", False).tiles) < set(TILES[False]) | {(256, 64)}  # its logged tiles
    assert candidates(a100, "int8", False).tiles == TILES[False] and candidates(a100, "int8", False).splits == SPLITS[False]
    # Ada's int8 SM rate is half an Ampere SM's with the same shared memory per clock: the tile needs
    # half the feed, and a 64x128 tile runs at the full rate (no 0.67 factor; the A100's keeps it).
    assert tile_intensity_full(rtx, "int8", kernel) == TILE_INTENSITY_FULL / 2
    assert tile_intensity_full(a100, "int8", candidates(a100, "int8", False)) == TILE_INTENSITY_FULL
    # Hand-computed: 64 x 18944 x 3584 is 28 tiles of 64x128, one per SM, each walking all of k at
    # the per-SM int8 peak (660.6 TOPS / 128 SMs at the 2520 MHz boost = tensor clock): 60.1 us
    # (published: 63.9 us with the fixed cost; the split-K candidates made it 47 us).
    geo, t, best, p = _lone_tile_at_full_rate(rtx, 64, 18944, 3584, "int8", False)
    assert geo.waves[0, best] == 1 and geo.tile_flops[0, best] == 2 * 64 * 128 * 18944
    assert t["compute_s"][0, best] * 1e6 == pytest.approx(2 * 64 * 128 * 18944 / (660.6e12 / 128) * 1e6, rel=1e-3)
    assert t["compute_s"][0, best] * 1e6 == pytest.approx(60.1, abs=0.1)
    # The 128x256 tile only from 1.5 waves of it (the logs keep 64x128 at 112-148 such tiles, take
    # 128x256 at 224-296): not at m = 1024 (8 x 14 = 112 tiles on 128 SMs), at m = 2048 (224).
    small = Geometry(rtx, 1024, 3584, 3584, "int8", False)
    large = Geometry(rtx, 2048, 3584, 3584, "int8", False)
    assert np.isinf(small.waves[0, 1]) and np.isfinite(small.waves[0, 0])
    assert large.waves[0, 1] == 2
    # Where every SM is busy the 64x128 tile is bound by L2 instead (24 bytes per clock per SM at
    # the full int8 rate); at an L2 of 12.6 bytes per clock per SM (Ada's bundled fit) the
    # 128x256 tile, which needs half that, is the faster one at m = 2048.
    l2 = p.with_values(l2_bytes_per_clk_sm=12.6)
    assert large.terms(l2)["best"][0] == 1 and large.terms(p)["best"][0] == 0


def test_ada_fp8_2of4_lone_tiles_run_at_the_full_rate():
    # cuSPARSELt's fp8 2:4 on Ada does not split K (RTX4090_cc89_*/FP8 logs: split-K 1 for the
    # three fastest at every shape) and runs 2048 dense-equivalent FLOP per clock per SM on 1-byte
    # operands, half an Ampere SM's operand feed: its 128x64 tile runs at the full 2:4 rate.
    # 64 x 18944 x 3584 is 56 such tiles, one per SM, 60.1 us at 660.6 TFLOP/s / 128 SMs
    # (published 61.9 us with the fixed cost; with the 0.67 tile factor it would be 90 us).
    rtx = gpu_for("rtx4090")
    kernel = candidates(rtx, "float8_e4m3fn", True)
    assert tile_intensity_full(rtx, "float8_e4m3fn", kernel) == TILE_INTENSITY_FULL / 2
    assert tile_intensity_full(rtx, "bfloat16", candidates(rtx, "bfloat16", True)) == TILE_INTENSITY_FULL
    geo, t, best, _ = _lone_tile_at_full_rate(rtx, 64, 18944, 3584, "float8_e4m3fn", True)
    assert kernel.tiles[best] == (128, 64) and geo.waves[0, best] == 1
    assert t["compute_s"][0, best] * 1e6 == pytest.approx(2 * 128 * 64 * 18944 / (660.6e12 / 128) * 1e6, rel=1e-3)


def test_ada_int8_2of4_lone_tiles_run_at_the_full_rate():
    # cuSPARSELt's int8 2:4 on Ada (split-K 1 in the RTX4090_cc89_*/INT8 logs) runs 4096
    # dense-equivalent ops per clock per SM, half the A100's 2:4 rate, and a lone 128x64 tile at
    # that rate needs the 42 bytes per clock the A100 feeds its own lone 2:4 tile: full rate, as
    # the published m = 64 slopes show (0.93-1.04 of the per-SM 2:4 peak). 64 x 18944 x 3584 is
    # 56 such tiles, one per SM (published 37.4 us with the fixed cost; the 0.67 factor gave 53.7).
    rtx, a100 = gpu_for("rtx4090"), gpu_for("a100_pcie")
    kernel = candidates(rtx, "int8", True)
    assert tile_intensity_full(rtx, "int8", kernel) == TILE_INTENSITY_FULL / 2
    assert tile_intensity_full(a100, "int8", candidates(a100, "int8", True)) == TILE_INTENSITY_FULL
    geo, t, best, _ = _lone_tile_at_full_rate(rtx, 64, 18944, 3584, "int8", True)
    assert kernel.tiles[best] == (128, 64) and geo.waves[0, best] == 1
    per_sm = kernel.peak / rtx.sm_count
    assert t["compute_s"][0, best] == pytest.approx(2 * 128 * 64 * 18944 / per_sm, rel=1e-9)


def test_hopper_int8_dense_rereads_w_per_row_block():
    # cuBLASLt's int8 on Hopper (256x128 tiles at large m) deals tiles along n first: at 4096 x
    # 5120 x 27648 its 216 tile columns outnumber the 114 SMs, so each of the 16 row-blocks of X
    # reads the 142 MB weight (far above the 50 MB L2) from DRAM again; where a wave holds four
    # row-blocks (n = 3584: 28 columns), a quarter as often. Not for its fp8 or bf16 kernels.
    h100p = gpu_for("h100_pcie")
    kernel = candidates(h100p, "int8", False)
    assert kernel.w_reread and not candidates(h100p, "float8_e4m3fn", False).w_reread
    big = kernel.column((256, 128))
    assert Geometry(h100p, 4096, 5120, 27648, "int8", False).w_rereads[0, big] == 4096 // 256 - 1
    assert Geometry(h100p, 4096, 18944, 3584, "int8", False).w_rereads[0, big] == 4096 // 256 // 4 - 1
    assert not Geometry(h100p, 4096, 5120, 27648, "float8_e4m3fn", False).w_rereads.any()
    # Search log (H100_cc90_*/INT8, Qwen2.5-14B): 4096 x 5120 x 27648 in 1,493 us (777 TOPS) where
    # 4096 x 5120 x 5120 runs 976 TOPS: 16 W passes at 1.52 TB/s. The bundled model: the wide shape
    # at most 0.9x the narrow one's rate per output column (it was ~1.0x with one W read).
    wide, narrow = (predict(h100p, 4096, 5120, n, "int8", False) / n for n in (27648, 5120))
    assert wide / narrow > 1.1
    assert predict(h100p, 4096, 5120, 27648, "int8", False) * 1e6 == pytest.approx(1492.7, rel=0.15)


def test_ampere_ada_16bit_2of4_kernels_tile_128_rows_of_x():
    # cuSPARSELt's 16-bit 2:4 kernels on Ampere/Ada have 128-row tiles only: a weight far above
    # the L2 is streamed once per 128 rows of X (the RTX 4090 and A100 search logs run n x k =
    # 37888 x 7168 at a flat 185-191 / 268 TOPS from m = 1024 up, 128 W passes at m = 16384).
    rtx, a100, h100p = gpu_for("rtx4090"), gpu_for("a100_pcie"), gpu_for("h100_pcie")
    rows128 = tuple(t for t in TILES[True] if t[0] == 128)
    for gpu in (rtx, a100):
        for dtype in ("bfloat16", "float16"):
            assert candidates(gpu, dtype, True)[0] == rows128
        assert candidates(gpu, "int8", True)[0] == TILES[True]
        assert candidates(gpu, "bfloat16", False)[0] == TILES[False]
    assert (192, 128) in candidates(h100p, "bfloat16", True)[0]  # Hopper's own set (test below)
    geo = Geometry(rtx, 16384, 3584, 37888, "bfloat16", True)
    assert geo.w_rereads.min() == 16384 // 128 - 1
    # Published RTX 4090 bf16 2:4, n x k = 37888 x 3584: 2915 us at m = 2048, 23104 us at 16384
    # (8x the rows, 7.9x the time); A100 PCIe 16847 us at m = 16384. Bundled model within 15%
    # (256-row tiles gave 2125 / 17572 / 15071 us: 24-27% and 11% fast).
    for gpu, m, published_us in ((rtx, 2048, 2915.2), (rtx, 16384, 23103.9), (a100, 16384, 16847.1)):
        assert predict(gpu, m, 3584, 37888, "bfloat16", True) * 1e6 == pytest.approx(published_us, rel=0.15)


def test_blackwell_16bit_and_fp8_dense_tiles_fill_the_sms():
    """B200 cuBLASLt bf16/fp16/fp8 offers the tcgen05 M=128 tiles (N = 64..256 by 16, either way
    round): at 512 x 13824 x 5120 (m x k x n) 128 x 144 tiles give 4 x 36 = 144 tiles, one wave on
    148 SMs, where the generic 128 x 256 gives 80 (published: 53.5 us, 1,356 TFLOP/s)."""
    b200 = gpu_for("b200")
    for dtype in ("bfloat16", "float16", "float8_e4m3fn"):
        tiles = candidates(b200, dtype, False).tiles
        assert (128, 144) in tiles and (144, 128) in tiles and (128, 256) in tiles, dtype
        assert all(min(t) >= 64 for t in tiles), dtype
    assert candidates(b200, "int8", False).tiles == ((64, 128),)  # the sm80-class kernel keeps its tile
    assert candidates(b200, "float4_e2m1", False).tiles == TILES[False]
    assert candidates(gpu_for("h100_sxm"), "bfloat16", False).tiles == TILES[False]
    geo = Geometry(b200, 512, 13824, 5120, "bfloat16", False)
    t = geo.terms(params_for(b200))
    tm, tn = candidates(b200, "bfloat16", False).tiles[t["best"][0]]
    assert math.ceil(512 / tm) * math.ceil(5120 / tn) <= b200.sm_count  # one wave
    assert geo.waves[0, t["best"][0]] == 1
    assert tm * tn < 128 * 256  # not the generic 80-tile wave


def test_hopper_fp8_dense_has_no_256_wide_tile():
    # The H100 fp8 cuBLASLt descriptors (H100_cc90_*/FP8, 108 picks of algorithm 66) never name a
    # tile 256 wide (widest 160x128), where its bf16 ones do (256x128 and 128x256, 28 of 108).
    h100p = gpu_for("h100_pcie")
    fp8 = candidates(h100p, "float8_e4m3fn", False).tiles
    assert fp8 and all(max(t) < 256 for t in fp8)
    assert set(fp8) == {t for t in TILES[False] if max(t) < 256}
    assert (128, 256) in candidates(h100p, "bfloat16", False).tiles
    assert candidates(gpu_for("a100_pcie"), "bfloat16", False).tiles == TILES[False]


def test_hopper_16bit_2of4_has_192_wide_tiles():
    # Published H100 PCIe bf16 2:4, 512 x 3072 x 5120 (m x k x n): 28.1 us, one wave of 4 x 27 =
    # 108 tiles of 128 x 192 at the Ampere 2:4 rate; 128-multiple tiles need two waves of 128x128
    # or one of 128x256, a third more work per SM.
    h100p, a100 = gpu_for("h100_pcie"), gpu_for("a100_pcie")
    for dtype in ("bfloat16", "float16"):
        assert candidates(h100p, dtype, True).tiles == ((128, 64), (128, 128), (128, 192), (192, 128))
    assert candidates(h100p, "int8", True).tiles == candidates(h100p, "float8_e4m3fn", True).tiles == TILES[True]
    assert (192, 128) not in candidates(a100, "bfloat16", True).tiles
    geo = Geometry(h100p, 512, 3072, 5120, "bfloat16", True)
    work = geo.waves * geo.tile_flops  # per SM, in FLOPs at the tile's rate
    best = int(np.argmin(work[0]))
    assert candidates(h100p, "bfloat16", True).tiles[best] == (128, 192) and geo.waves[0, best] == 1
    assert work[0, best] == pytest.approx(2 * 128 * 192 * 3072)
    # The bundled model: within 15% of the published time (the 256-wide tiles gave 36 us).
    assert predict(h100p, 512, 3072, 5120, "bfloat16", True) * 1e6 == pytest.approx(28.1, rel=0.15)


def test_ada_fp8_dense_has_the_logged_tiles():
    # The RTX 4090 fp8 cuBLASLt descriptors (RTX4090_cc89_*/FP8, 176 picks of algorithm 35) name
    # 128x64, 64x64, 64x128, 128x128 and 256x64 (and 32x64 at m = 64-128), never 128x256 or 256x128.
    rtx = gpu_for("rtx4090")
    fp8 = candidates(rtx, "float8_e4m3fn", False)
    assert set(fp8.tiles) == {(64, 64), (64, 128), (128, 64), (128, 128), (256, 64)}
    assert 8 in fp8.splits  # the logs split K at small m (13 of 176 picks, 2-6 ways)
    assert (128, 256) in candidates(rtx, "bfloat16", False).tiles  # other Ada dtypes keep theirs
    # 16384 x 3584 x 37888 (m x k x n), logged 128x128 at 308 TOPS: the model took 128x256 before
    geo = Geometry(rtx, 16384, 3584, 37888, "float8_e4m3fn", False)
    best = int(geo.terms(params_for(rtx))["best"][0])
    assert max(fp8.tiles[best // len(fp8.splits)]) < 256  # candidates run tile-major, splits inside


def test_block_scaled_fp4_dense_call_has_its_own_fixed_cost():
    # cuBLASLt's fp4 call is block-scaled (a UE4M3 scale per 16 values, VEC16_UE4M3): published
    # B200 dense fp4 sits at 8.4-8.7 us from 64^3 to 2048^3, where dense fp8 and fp4 2:4 take
    # 5.6-6.2 us. The extra fixed time is added to the dense fp4 call alone, before the issue
    # floor's smooth maximum, so at 64^3 (kernel far above a 0.5 us floor) it shows in full.
    from hwmodel.gpu.kernels import BLOCK_SCALED_DEFAULT_US

    b200 = gpu_for("b200")
    assert Geometry(b200, 64, 32, 64, "float4_e2m1", False).block_scaled
    assert not Geometry(b200, 64, 64, 64, "float4_e2m1", True).block_scaled
    assert not Geometry(b200, 64, 64, 64, "float8_e4m3fn", False).block_scaled
    base = GpuParams(issue_us=0.5, kernel_dense_us=5.0, kernel_sparse_us=6.0)
    extra = base.with_values(kernel_block_scaled_us=3.0)
    small = base.with_values(kernel_block_scaled_us=1.0)
    t_extra, t_small = (predict(b200, 64, 32, 64, "float4_e2m1", False, p) * 1e6 for p in (extra, small))
    assert t_extra - t_small == pytest.approx(2.0, rel=0.01)
    for dtype, sparse in (("float4_e2m1", True), ("float8_e4m3fn", False), ("bfloat16", False)):
        assert predict(b200, 64, 64, 64, dtype, sparse, extra) == predict(b200, 64, 64, 64, dtype, sparse, small)
    assert GpuParams().kernel_block_scaled_us == BLOCK_SCALED_DEFAULT_US


def test_fit_moves_the_block_scaled_cost_only_with_fp4_rows():
    # Fitted on the B200's published rows the extra fixed time of the fp4 call comes out at a few
    # microseconds, and its small squares land on their 8.4-8.5 us floor (what the shared cost
    # alone gave: docs/gpu_record.md). A fit with no fp4 rows neither moves nor counts it: it
    # keeps the default.
    from hwmodel.gpu.fit import GpuData, fit
    from hwmodel.gpu.validate import load_blocks
    from hwmodel.gpu.measurements import bundled_files

    blocks = {b.spec.name: b for b in load_blocks(bundled_files())}
    b200 = GpuData.build(blocks["b200"].spec, blocks["b200"].meas)
    params, info = fit([b200])
    assert 1.5 < params.kernel_block_scaled_us < 5.0
    m = b200.meas
    squares = np.flatnonzero((m.dtype == "float4_e2m1") & (m.m == m.n) & (m.k == m.n) & (m.m <= 512))
    dense, _ = b200.predict_us(params)
    assert len(squares) >= 4
    assert np.all(np.abs(dense[squares] / m.dense_us[squares] - 1.0) < 0.06)
    a100 = GpuData.build(blocks["a100_pcie"].spec, blocks["a100_pcie"].meas)
    rows = [np.flatnonzero(a100.meas.m <= 512)]
    p_a, info_a = fit([a100], rows)
    assert p_a.kernel_block_scaled_us == GpuParams().kernel_block_scaled_us
    assert info_a["parameters"] == len(GpuParams.SCALARS) - 1 + 2 * len(a100.dtypes)


def test_fit_lands_on_the_same_parameters_from_a_start_a_rounding_apart():
    # The A100's seed-13 calibration rows barely pin the power scalars (sparse_energy's Jacobian
    # column was zero): without the fit's weak prior (fit.PRIOR) a start 1e-12 apart, as the BLAS
    # kernels' last bits make the steps, landed in another minimum, predictions up to 7% apart
    # (heat_ms 18.5 against 107 and 6,595 ms). With it: within 1e-5.
    from hwmodel.gpu.fit import GpuData, fit
    from hwmodel.gpu.measurements import bundled_files
    from hwmodel.gpu.validate import load_blocks, split_shapes

    block = {b.spec.name: b for b in load_blocks(bundled_files())}["a100_pcie"]
    a100 = GpuData.build(block.spec, block.meas)
    rows = [np.flatnonzero(split_shapes(block.meas, 13))]
    ref = np.concatenate(a100.predict_us(fit([a100], rows)[0]))
    for name in ("heat_ms", "sparse_energy"):
        start = GpuParams(**{name: getattr(GpuParams(), name) * (1 + 1e-12)})
        got = np.concatenate(a100.predict_us(fit([a100], rows, start=start)[0]))
        assert np.max(np.abs(got / ref - 1.0)) < 1e-5, name


def test_a100_int8_lone_tiles_walk_k_at_the_sm_rate():
    # A100 int8, both libraries, split-K 1 in the logs: where no more tiles than SMs are needed,
    # a tile walks k at the larger of the SM's tensor peak and its operand bytes at the SM's share
    # of the GA100 whitepaper's 5,120 bytes per clock of L2 read bandwidth, whatever the large
    # GEMMs' efficiency; the split and multi-wave candidates are not offered there.
    a100, rtx = gpu_for("a100_pcie"), gpu_for("rtx4090")
    dense, sparse = candidates(a100, "int8", False), candidates(a100, "int8", True)
    assert dense.lone_tiles == ((64, 128),) and sparse.lone_tiles == TILES[True] and sparse.splits == (1,)
    assert candidates(a100, "bfloat16", False).lone_tiles == () == candidates(rtx, "int8", False).lone_tiles
    per_sm_bytes = 5120.0 / 108
    hz = 1410e6

    def lone(m, k, n, sparse_):
        # The lone tile's time does not depend on the kernel efficiency.
        geo, t, best, _ = _lone_tile_at_full_rate(a100, m, k, n, "int8", sparse_)
        _, t_half, best_half, _ = _lone_tile_at_full_rate(a100, m, k, n, "int8", sparse_, eta=0.5)
        assert best == best_half and t["compute_s"][0, best] == pytest.approx(t_half["compute_s"][0, best], rel=1e-12)
        # The lone tile overrides its own (tile, split-K 1) candidate in place: nothing is appended
        # (candidates run tile-major, splits inside), and every other candidate is masked.
        kernel = candidates(a100, "int8", sparse_)
        assert geo.waves.shape[1] == len(kernel.tiles) * len(kernel.splits)
        tile, split = divmod(int(best), len(kernel.splits))
        assert kernel.tiles[tile] in kernel.lone_tiles and kernel.splits[split] == 1
        lone_cols = [kernel.column(t) for t in kernel.lone_tiles]
        assert np.all(np.isinf(np.delete(geo.waves[0], lone_cols)))
        return t["compute_s"][0, best]

    # Dense 64 x 8192 x 2048: 16 tiles of 64x128; per k step 16,384 ops at 4,096 per clock and 192
    # bytes at 47.4 per clock: 4.79 clocks, 3.4 ns (published: 3.2-3.5 ns per k step; 31.3 us with
    # the fixed cost).
    ops_clk = 624e12 / (108 * hz)
    per_k = smooth_max(np.float64(2 * 64 * 128 / ops_clk), np.float64(192 / per_sm_bytes))
    assert lone(64, 8192, 2048, False) == pytest.approx(8192 * per_k / hz, rel=1e-9)
    assert lone(64, 8192, 2048, False) * 1e6 == pytest.approx(27.8, abs=0.1)
    # 2:4 128 x 8192 x 2048: the 128x64 tile (32 of them) is the fastest, 168 bytes per k step
    # (128 of X, 32 of kept W, 8 of metadata) at 47.4 per clock against 2 clocks of 2:4 ops: 2.6
    # ns per k step (published: 2.6-3.3; 27.0 us with the fixed cost).
    per_k = smooth_max(np.float64(2 * 128 * 64 / (2 * ops_clk)), np.float64(168 / per_sm_bytes))
    assert lone(128, 8192, 2048, True) == pytest.approx(8192 * per_k / hz, rel=1e-9)
    # Past one wave the lone override is gone and the normal candidates are back: the fitted terms
    # hold as before.
    geo = Geometry(a100, 4096, 8192, 2048, "int8", False)
    assert not geo.lone.any() and np.isfinite(geo.waves[0]).all()


def test_a100_int8_lone_tile_holds_up_to_exactly_one_tile_per_sm():
    """LONE_TILES applies where the tiles fit one wave, no more tiles than SMs: at exactly
    sm_count tiles of the lone 64x128 tile the override holds, one tile row more it is gone."""
    a100 = gpu_for("a100_pcie")
    tm, tn = candidates(a100, "int8", False).lone_tiles[0]
    sms = a100.sm_count
    for m, n in ((tm, tn * sms), (tm * sms, tn), (tm * 2, tn * (sms // 2))):
        assert math.ceil(m / tm) * math.ceil(n / tn) == sms
        assert Geometry(a100, m, 4096, n, "int8", False).lone.any(), (m, n)
    for m, n in ((tm, tn * sms + 1), (tm * sms + 1, tn)):
        assert math.ceil(m / tm) * math.ceil(n / tn) > sms
        assert not Geometry(a100, m, 4096, n, "int8", False).lone.any(), (m, n)
