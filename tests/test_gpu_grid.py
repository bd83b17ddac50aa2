"""The GPU bench's shape grid and padding rules (torch-free; the bench itself needs a GPU)."""

import pytest

from hwmodel.gpu import grid
from hwmodel.workload import bundled_workloads, load_workload, synthetic_td3_workload


def test_padding_constants_match_torch():
    # Our copy of cuSPARSELt's shape minimums must equal torch's own table.
    import torch
    from torch.sparse import SparseSemiStructuredTensorCUSPARSELT as Cslt

    for name, mins in grid.CSLT_MIN.items():
        c = Cslt._DTYPE_SHAPE_CONSTRAINTS[getattr(torch, name)]
        assert mins == (c.sparse_min_rows, c.sparse_min_cols, c.dense_min_rows, c.dense_min_cols)
    from torch.sparse import SparseSemiStructuredTensorCUTLASS as Cutlass

    for name, mins in grid.CUTLASS_MIN.items():
        c = Cutlass._DTYPE_SHAPE_CONSTRAINTS[getattr(torch, name)]
        assert mins == (c.sparse_min_rows, c.sparse_min_cols, c.dense_min_rows, c.dense_min_cols)


def test_cutlass_padding_meets_cutlass_minimums():
    # hopper.actor.fc1 (k = 11) and fc3 (n = 3): 32 x 64 for CUTLASS, 16 x 16 for cuSPARSELt.
    assert grid.padded_shape(1, 3, 11, "bfloat16", "sparse_api", "cutlass") == (8, 32, 64)
    assert grid.padded_shape(1, 3, 11, "bfloat16", "sparse_api") == (8, 16, 16)
    with pytest.raises(ValueError, match="backend"):
        grid.padded_shape(1, 3, 11, "bfloat16", "sparse_cslt", "cutlass")
    with pytest.raises(ValueError, match="no 2:4 kernel"):
        grid.padded_shape(1, 3, 11, "float8_e4m3fn", "sparse_api", "cutlass")


@pytest.mark.parametrize("dtype", grid.DTYPES)
@pytest.mark.parametrize("impl", grid.IMPLS)
@pytest.mark.parametrize("shape", [(1, 3, 11), (32, 1, 113), (256, 256, 256), (7, 4096, 17), (17, 6, 4096)])
def test_padded_shape_meets_library_minimums(dtype, impl, shape):
    m, n, k = shape
    mp, np_, kp = grid.padded_shape(m, n, k, dtype, impl)
    assert mp >= m and np_ >= n and kp >= k
    assert grid.padded_shape(mp, np_, kp, dtype, impl) == (mp, np_, kp)  # idempotent
    if impl != "dense":
        smin_r, smin_c, dmin_r, _ = grid.CSLT_MIN[dtype]
        assert np_ % smin_r == 0 and kp % smin_c == 0 and mp % dmin_r == 0
        assert np_ - n < smin_r and kp - k < smin_c  # no more than needed
    elif dtype == "int8":
        assert mp > 16 and np_ % 8 == 0 and kp % 8 == 0
    elif dtype == "float8_e4m3fn":
        assert mp % 16 == 0 and np_ % 16 == 0 and kp % 16 == 0
    else:
        assert (mp, np_, kp) == (m, n, k)


def test_padded_shape_rejects_unknown():
    with pytest.raises(ValueError, match="dtype"):
        grid.padded_shape(8, 8, 8, "float64", "dense")
    with pytest.raises(ValueError, match="impl"):
        grid.padded_shape(8, 8, 8, "bfloat16", "magic")


def _layer_shapes(cases):
    return {(c.m, c.n, c.k, c.dtype) for c in cases if c.kind == "layer"}


def test_full_grid_covers_issue_requirements():
    cases = grid.build_grid()
    layers = _layer_shapes(cases)
    # Hidden layers of every width at every batch in every dtype.
    for w in (256, 512, 1024, 2048, 4096):
        for b in (1, 32, 256, 1024, 4096):
            for d in grid.DTYPES:
                assert (b, w, w, d) in layers
    # Square GEMMs 256..16384 and rectangular ones, every dtype.
    squares = {(c.m, c.dtype) for c in cases if c.kind == "gemm" and c.name == "square"}
    assert squares == {(s, d) for s in (256, 512, 1024, 2048, 4096, 8192, 16384) for d in grid.DTYPES}
    assert any(c.name == "rect" and len({c.m, c.n, c.k}) > 1 for c in cases)
    # Actor forward at batch 1 and TD3 steps at widths 256..4096, dense vs 2:4.
    for kind, batch in (("actor_fwd", 1), ("td3_step", 256)):
        widths = sorted(c.width for c in cases if c.kind == kind)
        assert widths == [256, 512, 1024, 2048, 4096]
        assert all(c.m == batch for c in cases if c.kind == kind)
        assert grid.impls_for_case(kind, "bfloat16") == ("dense", "sparse_cslt")


def test_grid_covers_td3_workload_shapes():
    # The real TD3 layer shapes (bundled workloads, else synthetic ones for the same envs).
    files = bundled_workloads()
    workloads = [load_workload(f) for f in files] or [
        synthetic_td3_workload(obs, act, hidden=(w, w)) for env, (obs, act) in grid.TD3_ENVS.items()
        if env in ("hopper", "ant") for w in grid.WIDTHS]
    layers = _layer_shapes(grid.build_grid())
    for wl in workloads:
        for layer in wl.layers:
            if layer.in_features == layer.out_features or layer.in_features in (11, 14, 105, 113):
                for b in grid.BATCHES:
                    assert (b, layer.out_features, layer.in_features, "bfloat16") in layers, layer.name


def test_grid_order_and_uniqueness():
    cases = grid.build_grid()
    phases = [c.phase for c in cases]
    assert phases == sorted(phases)
    # A cut budget keeps, in this order: the 16-bit hidden TD3 layers (dense vs 2:4 at every
    # batch), the TD3 step and actor forward, the 16-bit square GEMMs, then int8, then fp8.
    first = {}
    for i, c in enumerate(cases):
        what = ("hidden16" if c.kind == "layer" and c.n == c.k == c.width and c.dtype in ("bfloat16", "float16")
                else "composite" if c.kind in ("actor_fwd", "td3_step")
                else "square16" if c.name == "square" and c.dtype in ("bfloat16", "float16")
                else "int8" if c.dtype == "int8" else "fp8" if c.dtype == "float8_e4m3fn" else "other")
        first.setdefault(what, i)
    assert first["hidden16"] == 0
    assert first["hidden16"] < first["composite"] < first["square16"] < first["int8"] < first["fp8"]
    hidden16 = [c for c in cases if c.phase == 0]
    assert len(hidden16) == 2 * 25 and all(c.n == c.k == c.width for c in hidden16)
    assert all(c.phase < grid.PHASES["io16"] for c in cases if c.kind in ("actor_fwd", "td3_step") or c.name == "square")
    keys = [(c.kind, c.dtype, c.m, c.n, c.k) for c in cases]
    assert len(keys) == len(set(keys))
    for c in cases:
        assert c.dtype in grid.DTYPE_BYTES and min(c.m, c.n, c.k) >= 1


def test_quick_grid_is_a_smaller_subset():
    full = {(c.kind, c.dtype, c.m, c.n, c.k) for c in grid.build_grid()}
    quick = [(c.kind, c.dtype, c.m, c.n, c.k) for c in grid.build_grid(quick=True)]
    assert set(quick) <= full
    assert 50 < len(quick) < len(full) / 4


def test_td3_step_gemms_match_the_step():
    env, w, b = "hopper", 512, 256
    dense = grid.td3_step_gemms(env, w, b, sparse=False)
    sparse = grid.td3_step_gemms(env, w, b, sparse=True)
    assert [(g.m, g.n, g.k) for g in dense] == [(g.m, g.n, g.k) for g in sparse]
    # 7 network passes forward; the 2:4 ones are exactly their hidden x hidden layers.
    assert [(g.m, g.n, g.k) for g in sparse if g.sparse] == [(b, w, w)] * 7
    assert not any(g.sparse for g in dense)
    forward = [g for g in dense if g.m == b and g.k != b]
    assert len(forward) >= 21
    # Backward of a trained layer costs two GEMMs of the forward's FLOPs (dW and dX).
    fwd_flops = sum(2 * g.m * g.n * g.k for g in grid._forward("critic", env, w, b, False))
    bwd_flops = sum(2 * g.m * g.n * g.k for g in grid._backward("critic", env, w, b, input_grad=True))
    assert bwd_flops == 2 * fwd_flops
    assert sum(g.sparse for g in grid.actor_forward_gemms(env, w, 1, True)) == 1


def test_estimate_keeps_the_important_phases_well_inside_the_budget():
    # The rough per-row estimate (grid.estimate_seconds) of the phases the first device run
    # must deliver (16-bit hidden layers, composites, 16-bit squares, real I/O layers, int8,
    # fp8) stays under half of the 480 s budget, so a 2x misestimate still keeps them.
    import math

    work = [(c, i) for c in grid.build_grid() for i in grid.impls_for_case(c.kind, c.dtype)]
    est = [grid.estimate_seconds(c, i) for c, i in work]
    assert all(e > 0 and math.isfinite(e) for e in est)
    important = sum(e for (c, _), e in zip(work, est) if c.phase <= grid.PHASES["fp8"])
    assert important < 240
    # 2:4 with its alg_id searches costs more than dense; the largest GEMM costs the most.
    sq = {c.m: (grid.estimate_seconds(c, "dense"), grid.estimate_seconds(c, "sparse_cslt"))
          for c, _ in work if c.name == "square" and c.dtype == "bfloat16"}
    assert all(s > d for d, s in sq.values())
    assert max(sq.values()) == sq[16384]


def test_dense_int8_pads_m_of_16_or_less_to_32():
    # torch._int_mm needs m > 16: 16 itself is padded, 17 is not.
    assert grid.padded_shape(16, 64, 64, "int8", "dense")[0] == 32
    assert grid.padded_shape(1, 64, 64, "int8", "dense")[0] == 32
    assert grid.padded_shape(17, 64, 64, "int8", "dense")[0] == 17


def test_td3_step_has_every_pass_of_the_update():
    """Forward: target actor, two target critics, two critics, actor, critic1 = 7 passes of 3 layers.
    Backward: two critics (dW of 3 layers, dX of the 2 inner ones: 5 each), critic1 through its
    first layer too (6), the actor (5). 21 + 10 + 6 + 5 = 42 GEMMs."""
    g = grid.td3_step_gemms("hopper", 256, 64, sparse=False)
    assert len(g) == 7 * 3 + 2 * 5 + 6 + 5
    dw = [x for x in g if x.k == 64 and x.m != 64]  # dW = dY^T X: m = out features, k = batch
    assert len(dw) == 4 * 3
