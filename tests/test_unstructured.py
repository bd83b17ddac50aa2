"""Unstructured masks and quantized weights in the hardware model, the sweep and the report.

Three ways an unstructured mask runs (docs/hwmodel.md): dense on hardware that cannot use it,
packed by row with load imbalance on an unstructured design, or at the nearest N:M pattern
the real mask fits on N:M hardware. Each is checked against an independent recomputation.
"""


import numpy as np
import pandas as pd
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

import hwmodel
from hwmodel.cycles import compute_cycles
from hwmodel.design import load_design, parse_design
from hwmodel.errors import NmlabError
from hwmodel.io import data_path
from hwmodel.mapping import count_bits, index_bits, map_weights, unstructured_metadata_bits
from hwmodel.sparsity import UNSTRUCTURED, magnitude_mask
from hwmodel.workload import (Layer, Workload, save_workload, synthetic_td3_workload,
                              synthetic_unstructured_td3_workload)


def _yaml(name: str) -> dict:
    return yaml.safe_load(data_path("designs", f"{name}.yaml").read_text())


def _design(name: str, sparsity=None, **compute) -> hwmodel.design.Design:
    """A bundled design with its sparsity block replaced and compute keys edited."""
    data = _yaml(name)
    if sparsity is not None:
        data["sparsity"] = sparsity
    data["compute"].update(compute)
    return parse_design(data)


def _one_layer(mask, pattern="unstructured", bits=8) -> Workload:
    n, k = mask.shape
    return Workload([Layer("net.fc", "net", k, n, pattern, None if pattern == "dense" else mask, bits)])


def _random_mask(rng, n, k, density):
    return rng.random((n, k)) < density


# ------------------------------------------------------------------ design schema


def test_bundled_unstructured_design_matches_flex_nm_budget():
    u, f = load_design("unstructured_ws"), load_design("flex_nm")
    assert u.sparsity.support == "unstructured" and u.sparsity.index_format == "bitmask"
    # Same array, clock, node and memories: the two compare at equal budget.
    assert (u.compute, u.clock_hz, u.technology_nm, u.storage) == (f.compute, f.clock_hz, f.technology_nm, f.storage)


@pytest.mark.parametrize("sparsity, message", [
    ({"support": "unstructured", "metadata_bits_per_cycle": 64}, "sparsity.index_format: missing"),
    ({"support": "unstructured", "metadata_bits_per_cycle": 64, "index_format": "csr"}, "sparsity.index_format: must be one of"),
    ({"support": "unstructured", "index_format": "bitmask"}, "sparsity.metadata_bits_per_cycle: missing"),
    ({"support": "fixed", "patterns": ["2:4"], "metadata_bits_per_cycle": 8, "index_format": "bitmask"},
     "sparsity.index_format: not used with support 'fixed'"),
])
def test_unstructured_schema_errors_name_the_key(sparsity, message):
    with pytest.raises(NmlabError, match=message.replace("(", r"\(")):
        _design("flex_nm", sparsity)


# ------------------------------------------------------------------ a. dense hardware: no gain


@pytest.mark.parametrize("design", [
    _design("edge_ws", {"support": "none"}),   # no sparsity support at all
    "edge_ws",                                  # 2:4 / 1:4, which a 50% random mask fits nowhere
    "stc_hbm",
])
@pytest.mark.parametrize("scenario, batch", [("inference", 1), ("train_step", 32)])
def test_unstructured_mask_on_dense_hardware_costs_exactly_the_dense_layer(design, scenario, batch):
    wl = synthetic_unstructured_td3_workload(11, 3, sparsity=0.5, seed=3)
    dense = synthetic_td3_workload(11, 3, "dense", seed=3)
    sparse_run = hwmodel.simulate(wl, design, batch=batch, bits=8, scenario=scenario)
    dense_run = hwmodel.simulate(dense, design, batch=batch, bits=8, scenario=scenario)
    for u, d in zip(sparse_run.layers, dense_run.layers):
        assert u.phase == d.phase
        # Also W^T of a critic's last layer (K = 1): every N:M fits it but none shortens it.
        assert u.hw_pattern == "dense", (u.name, u.phase)
        if u.phase == "forward":
            assert "run dense" in u.mapping_note and "zeros stored and multiplied" in u.mapping_note
        fu, fd = u.figures.to_dict(), d.figures.to_dict()
        fu.pop("macs_effectual"), fd.pop("macs_effectual")   # the only difference: zeros do no useful work
        assert fu == pytest.approx(fd)
    assert sparse_run.extra["bytes_weights_stored"] == dense_run.extra["bytes_weights_stored"]


# ------------------------------------------------------------------ b. unstructured design: load imbalance


def _brute_cycles(design, m, mask):
    """Stall-free cycles of W [n, k] packed by row, recomputed with plain loops (rate 1 datatype)."""
    n, k = len(mask), len(mask[0])
    c = design.compute
    width = c.cols if c.kind == "systolic" else min(c.rows, n)
    folds = [list(range(s, min(s + width, n))) for s in range(0, n, width)]
    walks = []
    for rows in folds:
        walks.append(max(sum(1 for j in range(k) if mask[r][j]) for r in rows))
    if all(w == k for w in walks):  # nothing to skip anywhere: the design runs the layer dense
        walks = [k] * len(folds)
    R, C = c.rows, c.cols
    if c.kind == "systolic" and c.dataflow == "ws":
        return sum(-(-w // R) for w in walks) * (2 * R + C + m - 2), walks, width
    if c.kind == "systolic":
        return -(-m // R) * sum(2 * R + C - 2 + w for w in walks), walks, width
    tm = max(1, R // width)
    return -(-m // tm) * sum(-(-w // C) for w in walks) + c.pipeline_depth, walks, width


_KINDS = {
    "ws": {"kind": "systolic", "dataflow": "ws"},
    "os": {"kind": "systolic", "dataflow": "os"},
    "tc": {"kind": "tensor_core", "pipeline_depth": 3},
}


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.integers(1, 40), k=st.integers(1, 40), m=st.integers(1, 9),
       rows=st.integers(1, 8), cols=st.integers(1, 8), kind=st.sampled_from(sorted(_KINDS)),
       density=st.sampled_from([0.05, 0.3, 0.7, 1.0]))
def test_unstructured_cycles_follow_the_busiest_row_of_each_fold(seed, n, k, m, rows, cols, kind, density):
    data = _yaml("unstructured_ws")
    compute = {"rows": rows, "cols": cols, "datatypes": {"int8": 1}, "accumulator_bits": 32, **_KINDS[kind]}
    if kind == "tc":
        compute.pop("dataflow", None)
    data["compute"] = compute
    d = parse_design(data)
    mask = _random_mask(np.random.default_rng(seed), n, k, density)
    expect, walks, width = _brute_cycles(d, m, mask.tolist())
    mp = map_weights(d, mask, "unstructured")
    if all(w == k for w in walks):
        assert str(mp.hw_pattern) == "dense"
    else:
        assert mp.hw_pattern == UNSTRUCTURED and list(mp.row_k) == mask.sum(axis=1).tolist()
    res = hwmodel.simulate(_one_layer(mask), d, batch=m, bits=8, with_dense=False).layers[0]
    f = res.figures
    assert f.cycles - f.stall_cycles_dram - f.stall_cycles_metadata == pytest.approx(expect)
    # Issued MAC slots include the padding of every row shorter than its fold's busiest row.
    widths = [min(width, n - s) for s in range(0, n, width)]
    assert f.macs_issued == m * sum(w * x for w, x in zip(walks, widths))
    assert f.macs_effectual == m * int(mask.sum())


def test_load_imbalance_costs_cycles_against_an_even_mask_of_equal_density():
    d = load_design("unstructured_ws")   # 32 x 32 WS: a fold is 32 output rows
    per_tile = 2 * 32 + 32 + 1 - 2       # one weight tile at batch 1
    even = np.zeros((64, 256), dtype=bool)
    even[:, ::8] = True                  # every row keeps 32: 2048 kept
    skewed = np.zeros((64, 256), dtype=bool)
    skewed[:, :30] = True                # 30 per row ...
    skewed[::32, 30:158] = True          # ... but one row per fold keeps 158: 2176 kept
    assert compute_cycles(d, 1, 256, 64, "dense") == 8 * 2 * per_tile
    fe = hwmodel.simulate(_one_layer(even), d, batch=1).layers[0]
    fs = hwmodel.simulate(_one_layer(skewed), d, batch=1).layers[0]
    compute = lambda r: r.figures.cycles - r.figures.stall_cycles_dram - r.figures.stall_cycles_metadata  # noqa: E731
    assert compute(fe) == 2 * 1 * per_tile                 # 2 folds x ceil(32 / 32) tiles
    assert compute(fs) == 2 * 5 * per_tile                 # 2 folds x ceil(158 / 32) tiles
    assert "load imbalance 1.00x" in fe.mapping_note
    assert f"load imbalance {64 * 158 / 2176:.2f}x" in fs.mapping_note
    # nearly the same density, five times the cycles: the average density would not show it
    dense_compute = fe.dense.cycles - fe.dense.stall_cycles_dram
    assert dense_compute == 8 * 2 * per_tile and fs.dense.cycles == fe.dense.cycles
    assert dense_compute / compute(fe) == 8 and dense_compute / compute(fs) == 1.6
    full = skewed.copy()
    full[::32, :] = True                 # a full row in every fold: nothing to skip
    ff = hwmodel.simulate(_one_layer(full), d, batch=1).layers[0]
    assert ff.hw_pattern == "dense" and "has a full row" in ff.mapping_note


def test_transposed_mask_packs_columns_for_backward_data():
    d = load_design("unstructured_ws")
    mask = _random_mask(np.random.default_rng(0), 48, 20, 0.3)
    mp = map_weights(d, mask, "unstructured", transposed=True)
    assert list(mp.row_k) == mask.sum(axis=0).tolist()
    assert "W^T" in mp.note


# ------------------------------------------------------------------ metadata by hand


def test_index_and_count_bits_by_hand():
    assert [index_bits(k) for k in (1, 2, 3, 4, 11, 16, 17, 256, 257)] == [1, 1, 2, 2, 4, 4, 5, 8, 9]
    assert [count_bits(k) for k in (1, 2, 3, 11, 15, 16, 256)] == [1, 2, 2, 4, 4, 5, 9]
    # bitmask: one bit per dense position, whatever the density
    assert unstructured_metadata_bits("bitmask", 256, 64, 10) == 16384
    # coordinate: 8-bit indices into K=256 per kept weight, plus a 9-bit count (0..256) per row
    assert unstructured_metadata_bits("coordinate", 256, 64, 1000) == 1000 * 8 + 64 * 9
    # Hopper's actor input (K=11): 4-bit indices and 4-bit counts
    assert unstructured_metadata_bits("coordinate", 11, 256, 300) == 300 * 4 + 256 * 4


@pytest.mark.parametrize("fmt", ["bitmask", "coordinate"])
@pytest.mark.parametrize("bits", [8, 4])
def test_metadata_storage_and_traffic_by_hand(fmt, bits):
    d = _design("unstructured_ws", {"support": "unstructured", "index_format": fmt, "metadata_bits_per_cycle": 128})
    mask = np.zeros((64, 256), dtype=bool)
    mask[:, :10] = True            # 640 kept
    mask[5, 100:140] = True        # +40: 680 kept, row 5 keeps 50
    nnz = 680
    meta = 256 * 64 if fmt == "bitmask" else nnz * 8 + 64 * 9
    res = hwmodel.simulate(_one_layer(mask), d, batch=1, bits=bits, with_dense=False)
    f = res.layers[0].figures
    assert f.bits_metadata == meta                             # WS: the weights (and indices) are read once
    assert f.bytes_weights == (nnz * bits + meta) / 8
    assert res.extra["bytes_weights_stored"] == (nnz * bits + meta) / 8
    et = hwmodel.energy.energy_table(d)
    assert f.energy_metadata_pj == pytest.approx(meta * et.sram["WeightBuffer"].read_pj_per_bit)
    # Streamed from DRAM: the stored values plus the index bits travel once.
    cold = hwmodel.simulate(_one_layer(mask), d, batch=1, bits=bits, residency="stream", with_dense=False)
    m_, k_ = 1, 256
    assert cold.layers[0].figures.bits_dram_read == nnz * bits + meta + m_ * k_ * bits  # + the network input
    # Folds of 32 rows: fold 0 holds row 5 (50 kept), fold 1 only rows of 10.
    assert f.macs_issued == 32 * 50 + 32 * 10
    # Benes distribution over K=256 inputs: 2 * 8 - 1 = 15 switch stages per activation bit
    assert f.energy_mux_pj == pytest.approx(f.macs_issued * 15 * bits * et.mux2_pj_per_bit)


# ------------------------------------------------------------------ c. nearest N:M on N:M hardware


def _brute_fits(mask, n, m):
    for row in mask:
        for g in range(0, len(row), m):
            if sum(row[g:g + m]) > n:
                return False
    return True


def _brute_walk(k, n, m):
    """Slots an n:m row of K walks: n per full group, at most n of a partial last group."""
    full, rest = divmod(k, m)
    return n * full + min(rest, n)


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.integers(1, 12), k=st.integers(1, 40),
       density=st.sampled_from([0.05, 0.2, 0.4, 0.8]))
def test_nearest_nm_equals_brute_force(seed, n, k, density):
    mask = _random_mask(np.random.default_rng(seed), n, k, density)
    rows = mask.tolist()
    # fixed: the sparsest supported pattern every group fits and that walks fewer than K slots, else dense
    fixed = _design("edge_ws", {"support": "fixed", "patterns": ["2:4", "1:4", "1:8", "3:8"],
                                "metadata_bits_per_cycle": 32})
    cands = sorted([(2, 4), (1, 4), (1, 8), (3, 8)], key=lambda p: (p[0] / p[1], p[1]))
    want = next((f"{a}:{b}" for a, b in cands if _brute_fits(rows, a, b) and _brute_walk(k, a, b) < k), "dense")
    got = map_weights(fixed, mask, "unstructured")
    assert str(got.hw_pattern) == want
    # layer-wise (M a power of two up to max_m): smallest N per M, then the fewest slots walked
    # (ties: the smaller M)
    lw = _design("scalesim_default_ws", {"support": "layerwise", "max_m": 16, "metadata_bits_per_cycle": 10})
    best = None
    for mm in (2, 4, 8, 16):
        nn = next(x for x in range(1, mm + 1) if _brute_fits(rows, x, mm))
        walk = _brute_walk(k, nn, mm)
        if nn < mm and walk < k and (best is None or walk < _brute_walk(k, *best)):
            best = (nn, mm)
    got = map_weights(lw, mask, "unstructured")
    assert str(got.hw_pattern) == (f"{best[0]}:{best[1]}" if best else "dense")
    if best:
        assert "nearest N:M" in got.note
    # flexible: each row at the smallest offered N covering its fullest group of 4
    flex = load_design("flex_nm")
    got = map_weights(flex, mask, "unstructured")
    got_rows = [next(x for x in (1, 2, 4) if x >= max(sum(row[g:g + 4]) for g in range(0, len(row), 4))) for row in rows]
    for r, row in enumerate(rows):
        fullest = max(sum(row[g:g + 4]) for g in range(0, len(row), 4))
        want_n = next(x for x in (1, 2, 4) if x >= fullest)
        if got.row_n is not None:
            assert got.row_n[r] == want_n
        else:   # run dense only when every row has a full group or no row walks fewer than K
            assert want_n == 4 or all(_brute_walk(k, x, 4) == k for x in got_rows)


def test_unstructured_mask_inside_1_of_4_runs_at_1_of_4_on_edge_ws():
    rng = np.random.default_rng(1)
    mask = np.zeros((64, 64), dtype=bool)
    for r in range(64):   # at most one kept weight per group of 4, at random positions
        for g in range(16):
            if rng.random() < 0.6:
                mask[r, 4 * g + rng.integers(4)] = True
    res = hwmodel.simulate(_one_layer(mask), "edge_ws", batch=1).layers[0]
    assert res.pattern == "unstructured" and res.hw_pattern == "1:4"
    assert res.figures.cycles < res.dense.cycles


# ------------------------------------------------------------------ quantized weights


@pytest.mark.parametrize("pattern", ["dense", "2:4"])
def test_weight_bits_scale_storage_traffic_and_mac_energy(pattern):
    d = load_design("scalesim_default_ws")           # int8, fp16, fp32 at one MAC per PE per cycle
    wl = synthetic_td3_workload(11, 3, pattern, seed=0)
    runs = {b: hwmodel.simulate(wl, d, batch=4, bits=b, residency="stream") for b in (32, 16, 8)}
    meta = 0 if pattern == "dense" else 2              # ceil(log2 4) bits per 2:4 slot
    for b in (16, 8):
        lo, hi = runs[b], runs[32]
        for x, y in zip(lo.layers, hi.layers):
            slots = x.figures.macs_issued / x.m
            # stored values scale with the bits; N:M indices do not
            assert x.figures.bytes_weights == pytest.approx(slots * (b + meta) / 8)
            assert y.figures.bytes_weights == pytest.approx(slots * (32 + meta) / 8)
            # DRAM: streamed weights + the network input (activations at the same bits)
            w_dram = slots * (b + meta) + (x.m * x.k * b if x.name.endswith("fc1") else 0)
            assert x.figures.bits_dram_read == pytest.approx(w_dram)
            assert x.figures.cycles - x.figures.stall_cycles_dram == y.figures.cycles - y.figures.stall_cycles_dram
        et = hwmodel.energy.energy_table(d)
        dt = d.datatype_for(b)
        assert lo.total.energy_mac_pj / hi.total.energy_mac_pj == pytest.approx(et.mac_pj[dt] / et.mac_pj["fp32"])
    if pattern == "dense":   # dense weights: 8 bits are exactly a quarter, 16 half
        assert runs[8].extra["bytes_weights_stored"] * 4 == runs[32].extra["bytes_weights_stored"]
        assert runs[16].extra["bytes_weights_stored"] * 2 == runs[32].extra["bytes_weights_stored"]
        assert runs[8].total.bits_dram_read * 4 == pytest.approx(runs[32].total.bits_dram_read)


def test_datatype_rate_int4_packs_two_macs_per_pe():
    d = load_design("edge_ws")   # int8: 1, int4: 2 MACs per PE per cycle, 16 x 16 WS
    wl = Workload([Layer("a.fc", "a", 256, 64)])
    f8 = hwmodel.simulate(wl, d, batch=1, bits=8, with_dense=False).layers[0].figures
    f4 = hwmodel.simulate(wl, d, batch=1, bits=4, with_dense=False).layers[0].figures
    per_fold = 2 * 16 + 16 + 1 - 2
    assert f8.cycles - f8.stall_cycles_dram == 16 * 4 * per_fold       # ceil(256/16) x ceil(64/16) folds
    assert f4.cycles - f4.stall_cycles_dram == 8 * 4 * per_fold        # two weights per PE: K folds halve
    assert f4.bytes_weights * 2 == f8.bytes_weights


def test_bits_none_uses_the_workloads_weight_bits():
    wl = synthetic_unstructured_td3_workload(11, 3, 0.8, weight_bits=8)
    a = hwmodel.simulate(wl, "unstructured_ws", bits=None)
    b = hwmodel.simulate(wl, "unstructured_ws", bits=8)
    assert a.bits == 8 and a.summary() == b.summary() and a.extra["workload_bits"] == 8
    wl.layers[1].weight_bits = 4
    with pytest.raises(NmlabError, match=r"bits: the workload's layers have weight_bits 4, 8 \(layer 'actor.fc2': 4\)"):
        hwmodel.simulate(wl, "unstructured_ws", bits=None)


def test_unstructured_storage_scales_with_bits_but_indices_do_not():
    wl = synthetic_unstructured_td3_workload(11, 3, 0.9, seed=2)
    r8 = hwmodel.simulate(wl, "unstructured_ws", bits=8)
    r4 = hwmodel.simulate(wl, "unstructured_ws", bits=4)
    actor = [x for x in wl.layers if x.network == "actor"]
    nnz = sum(int(x.mask.sum()) for x in actor)
    meta = sum(x.in_features * x.out_features for x in actor)   # bitmask
    assert r8.extra["bytes_weights_stored"] == (nnz * 8 + meta) / 8
    assert r4.extra["bytes_weights_stored"] == (nnz * 4 + meta) / 8


# ------------------------------------------------------------------ workload helper, one-shot pruning


def test_synthetic_unstructured_workload_keeps_the_asked_fraction():
    wl = synthetic_unstructured_td3_workload(17, 6, sparsity=0.9, seed=5, with_weights=True)
    wl.validate()
    assert len(wl.layers) == 18
    for x in wl.layers:
        assert x.pattern == "unstructured"
        assert x.mask.sum() == max(1, round(0.1 * x.in_features * x.out_features))
        assert np.all(x.weight[~x.mask] == 0)
    # rows differ: that is what makes load imbalance
    assert len(set(wl.layers[1].mask.sum(axis=1).tolist())) > 1


def test_magnitude_mask_keeps_the_largest_weights():
    w = np.array([[0.1, -0.9, 0.3], [0.5, 0.0, -0.3]], dtype=np.float32)
    assert magnitude_mask(w, 2 / 3).tolist() == [[False, True, False], [True, False, False]]   # keeps 2
    # keeps 3: ties go to the lower row-major index, |0.3| at (0, 2) before |-0.3| at (1, 2)
    assert magnitude_mask(w, 0.5).tolist() == [[False, True, True], [True, False, False]]
    assert magnitude_mask(w, 1 / 3).tolist() == [[False, True, True], [True, False, True]]     # keeps 4
    with pytest.raises(NmlabError, match="sparsity: must be in"):
        magnitude_mask(w, 1.0)


def test_grid_pattern_parsing():
    from sweeps.config import parse_config, parse_grid_pattern, unstructured_level

    assert parse_grid_pattern("Unstructured:0.90", "p") == "unstructured:0.9"
    assert parse_grid_pattern("unstructured", "p") == "unstructured"
    assert parse_grid_pattern("2:4", "p") == "2:4"
    assert unstructured_level("unstructured:0.95") == 0.95 and unstructured_level("unstructured") is None
    for bad in ("unstructured:1", "unstructured:0", "unstructured:x", "unstructured:nan"):
        with pytest.raises(NmlabError, match=r"patterns\[1\]: .*fraction of zeros between 0 and 1"):
            parse_config({"patterns": ["dense", bad]})
    with pytest.raises(NmlabError, match=r"patterns\[1\]: duplicate pattern unstructured:0.9"):
        parse_config({"patterns": ["unstructured:0.9", "unstructured:.90"]})


def test_prune_one_shot_to_unstructured_level():
    from sweeps.evaluate import prune_one_shot

    wl = synthetic_td3_workload(11, 3, "dense", with_weights=True)
    pruned = prune_one_shot(wl, "unstructured:0.75")
    for src, x in zip(wl.layers, pruned.layers):
        assert x.pattern == "unstructured" and x.weight is None
        keep = round(0.25 * src.in_features * src.out_features)
        assert x.mask.sum() == keep
        # exactly the largest magnitudes
        assert np.abs(src.weight[x.mask]).min() >= np.abs(src.weight[~x.mask]).max()
    with pytest.raises(NmlabError, match="'unstructured' keeps trained masks"):
        prune_one_shot(wl, "unstructured")


# ------------------------------------------------------------------ Timeloop export


def test_timeloop_export_of_an_unstructured_layer(tmp_path):
    from hwmodel.timeloop import export_timeloop

    wl = synthetic_unstructured_td3_workload(11, 3, 0.9, seed=1)
    save_workload(wl, tmp_path / "u.nmw")
    out = export_timeloop("unstructured_ws", tmp_path / "u.nmw", "actor.fc2", tmp_path / "tl")
    docs = {p.name: yaml.safe_load(p.read_text()) for p in out.iterdir()}
    dens = docs["problem.yaml"]["problem"]["instance"]["densities"]["Weights"]
    assert dens == {"distribution": "hypergeometric", "density": pytest.approx(wl.layers[1].density, abs=1e-6)}
    ranks = docs["sparse_opt.yaml"]["sparse_optimizations"]["targets"][0]["representation_format"]["data_spaces"][0]["ranks"]
    assert ranks[1]["format"] == "B" and ranks[1]["metadata_word_bits"] == 1
    assert docs["nmlab_point.yaml"]["nmlab_point"]["hw_pattern"] == "unstructured"


# ------------------------------------------------------------------ sweep and report end to end


def test_sweep_and_report_compare_unstructured_nm_and_quantized(tmp_path):
    from reports.build import build_report
    from sweeps.api import run

    dense = synthetic_td3_workload(11, 3, "dense", with_weights=True, seed=0)
    dense.meta.update({"env": "Synth-v0", "method": "td3", "sparsity": "dense", "seed": 0})
    save_workload(dense, tmp_path / "synth_dense_s0.nmw")
    rlx2 = synthetic_unstructured_td3_workload(11, 3, 0.9, seed=0)
    rlx2.meta.update({"env": "Synth-v0", "method": "rlx2", "sparsity": 0.9, "seed": 0})
    save_workload(rlx2, tmp_path / "synth_rlx2_s0.nmw")
    qat = synthetic_unstructured_td3_workload(11, 3, 0.8, seed=1, weight_bits=8)
    qat.meta.update({"env": "Synth-v0", "method": "gmp", "sparsity": "unstructured", "seed": 0})
    save_workload(qat, tmp_path / "synth_gmp_s0.nmw")
    (tmp_path / "quality.csv").write_text(
        "env,method,sparsity,bits,seed,steps,episodes,return_mean,return_std\n"
        "Synth-v0,td3,dense,8,0,1000,5,100,1\n"
        "Synth-v0,rlx2,unstructured,8,0,1000,5,90,1\n"
        "Synth-v0,gmp,unstructured,8,0,1000,5,95,1\n"
        "Synth-v0,gmp,unstructured,4,0,1000,5,80,1\n")
    cfg = {"workloads": [str(p) for p in sorted(tmp_path.glob("*.nmw"))],
           "patterns": ["dense", "2:4", "unstructured", "unstructured:0.9"], "bits": [8, 4],
           "designs": ["edge_ws", "flex_nm", "unstructured_ws"],
           "scenarios": [{"scenario": "inference", "batch": 1}, {"scenario": "train_step", "batch": 16}],
           "quality": str(tmp_path / "quality.csv")}
    (tmp_path / "sweep.yaml").write_text(yaml.safe_dump(cfg))
    run(tmp_path / "sweep.yaml", tmp_path / "out", workers=1, progress=False)
    df = pd.read_parquet(tmp_path / "out" / "points.parquet")
    # 4 patterns (unstructured: two trained methods) x 2 bits x 3 designs x 2 scenarios
    assert len(df) == 5 * 2 * 3 * 2
    u = df[df.pattern == "unstructured"]
    assert set(u.method) == {"rlx2", "gmp"} and set(u.mask_source) == {"trained"}
    assert set(df[df.pattern == "unstructured:0.9"].mask_source) == {"one-shot"}
    inf = df[df.scenario == "inference"]
    on_u = inf[(inf.design == "unstructured_ws") & inf.pattern.str.startswith("unstructured")]
    assert (on_u.speedup_vs_dense > 1.5).all() and (on_u.energy_ratio_vs_dense < 1).all()
    on_edge = inf[(inf.design == "edge_ws") & (inf.pattern == "unstructured")]
    assert (on_edge.speedup_vs_dense == 1.0).all()
    assert set(df[df.method == "gmp"].workload_bits) == {8} and set(df[df.method == "rlx2"].workload_bits) == {32}
    got = df[(df.method == "gmp")].set_index(["bits"]).return_mean.groupby(level=0).first().to_dict()
    assert got == {8: 95.0, 4: 80.0}
    build_report(tmp_path / "out", pngs=False)
    summary = (tmp_path / "out" / "report" / "summary.md").read_text()
    assert "unstructured:0.9" in summary and "unstructured_ws" in summary
    assert "| gmp |" in summary   # the QAT agent at 8 bits (return 95) is on the return fronts
    page = (tmp_path / "out" / "report" / "index.html").read_text()
    assert "unstructured_ws" in page and "unstructured:0.9" in page


def test_check_accepts_unstructured_patterns(tmp_path):
    from reports.check import parse_patterns_list, run_check

    assert parse_patterns_list("2:4, unstructured:0.90,2:4") == ["2:4", "unstructured:0.9"]
    with pytest.raises(NmlabError, match="--patterns: 'unstructured:2'"):
        parse_patterns_list("unstructured:2")
    wl = synthetic_td3_workload(11, 3, "dense", with_weights=True)
    save_workload(wl, tmp_path / "d.nmw")
    out = run_check("unstructured_ws", str(tmp_path / "d.nmw"), "1s", None, None, "dense,unstructured:0.9", "8", 1,
                    "inference")
    lat = {c["pattern"]: c["latency_s"] for c in out["combinations"]}
    assert lat["unstructured:0.9"] < lat["dense"]


# ------------------------------------------------------------------ a fully dense mask is the dense layer


def _all_kept(wl: Workload, pattern: str) -> Workload:
    """``wl`` with every layer carrying an all-ones mask under ``pattern``."""
    import copy

    out = copy.deepcopy(wl)
    for x in out.layers:
        x.pattern, x.mask = pattern, np.ones((x.out_features, x.in_features), dtype=bool)
    return out


@pytest.mark.parametrize("design", ["edge_ws", "flex_nm", "stc_hbm", "scalesim_default_ws", "unstructured_ws"])
@pytest.mark.parametrize("scenario, batch", [("inference", 1), ("train_step", 32)])
def test_all_ones_unstructured_mask_costs_exactly_the_dense_layer_on_every_design(design, scenario, batch):
    # Every phase included: W^T of a critic's last layer has a reduction of K = 1, which every
    # N:M "fits" (a lone weight in a padded group) but no N:M shortens; the hardware gains
    # nothing there and must not pay indices and selection for it.
    dense = synthetic_td3_workload(11, 3, "dense", seed=3)
    full = _all_kept(dense, "unstructured")
    a = hwmodel.simulate(full, design, batch=batch, bits=8, scenario=scenario)
    d = hwmodel.simulate(dense, design, batch=batch, bits=8, scenario=scenario)
    for u, x in zip(a.layers, d.layers):
        assert (u.name, u.phase, u.hw_pattern) == (x.name, x.phase, "dense")
        assert u.figures.to_dict() == x.figures.to_dict()
    assert a.summary() == d.summary()


def test_n_m_gives_no_gain_when_the_reduction_is_not_longer_than_n():
    # K = 1 (W^T of a 1-output layer): 1:4 would walk 1 slot of 1 -> dense; K = 3 rows keeping
    # at most one weight: 1:4 walks 1 slot of 3 -> sparse. Same on fixed, layer-wise and flexible.
    k1 = np.ones((1, 64), dtype=bool)                       # forward [1 x 64]; W^T has K = 1
    k3 = np.zeros((3, 64), dtype=bool)
    k3[0, ::2] = True                                       # W^T: 64 rows of K = 3, one kept each at most
    lw = _design("scalesim_default_ws", {"support": "layerwise", "max_m": 8, "metadata_bits_per_cycle": 10})
    for design in (load_design("edge_ws"), load_design("flex_nm"), lw):
        for pattern in ("1:4", "unstructured"):
            assert str(map_weights(design, k1, pattern, transposed=True).hw_pattern) == "dense", (design.name, pattern)
            got = map_weights(design, k3, pattern, transposed=True)
            assert got.sparse and got.hw_pattern.n == 1, (design.name, pattern, got)


def test_nearest_nm_ranks_by_slots_walked_when_k_is_shorter_than_m():
    # K = 11 (Hopper's actor input), every row keeps columns 0..2. 3:16, 3:32 and 3:64 all walk
    # 3 slots of the one partial group (3:8 walks 3 + 3, 3:4 walks 9): the smallest M of the tie
    # wins (4-bit indices and a 16:1 selection, not 6 bits and 64:1). N/M alone would say 3:64.
    lw = _design("scalesim_default_ws", {"support": "layerwise", "max_m": 64, "metadata_bits_per_cycle": 10})
    mask = np.zeros((8, 11), dtype=bool)
    mask[:, :3] = True
    assert str(map_weights(lw, mask, "unstructured").hw_pattern) == "3:16"
    # K a multiple of every M: slots walked = N/M x K, so the order is N/M's (ties: smaller M).
    wide = np.zeros((8, 256), dtype=bool)
    wide[:, ::16] = True                                    # one per 16: 1:16, 2:32, 4:64 walk 16
    assert str(map_weights(lw, wide, "unstructured").hw_pattern) == "1:16"


def test_load_imbalance_of_a_partial_last_fold_counts_only_its_rows():
    """40 rows on a 32-column array: folds of 32 and 8 rows, each with one row keeping 158 of 256
    and the rest 30. Walked: 158 x 32 + 158 x 8 = 6320 slots for 40 x 30 + 2 x 128 = 1456 kept,
    4.34x (the last fold counted as 32 rows would read 158 x 64 / 1456 = 6.95x)."""
    d = load_design("unstructured_ws")
    mask = np.zeros((40, 256), dtype=bool)
    mask[:, :30] = True
    mask[::32, 30:158] = True
    assert int(mask.sum()) == 1456
    note = hwmodel.simulate(_one_layer(mask), d, batch=1).layers[0].mapping_note
    assert f"{6320 / 40:.1f} of K=256 per row vs {1456 / 40:.1f} kept (load imbalance {6320 / 1456:.2f}x)" in note, note


@pytest.mark.parametrize("index_format, k_format, meta_bits", [("bitmask", "B", 1), ("coordinate", "CP", 8)])
def test_timeloop_export_of_an_unstructured_layer_by_hand(tmp_path, index_format, k_format, meta_bits):
    """64 x 256 mask keeping 2176 (30 per row, one row per fold 158): the export carries the real
    mask's density 2176 / 16384 (not the 158 x 64 / 16384 slots the folds walk), Sparseloop's
    hypergeometric distribution, and the index format: a bitmask (1 bit) or coordinates of
    ceil(log2 256) = 8 bits."""
    from hwmodel.timeloop import FILES, export_timeloop

    data = _yaml("unstructured_ws")
    data["sparsity"]["index_format"] = index_format
    d = parse_design(data)
    mask = np.zeros((64, 256), dtype=bool)
    mask[:, :30] = True
    mask[::32, 30:158] = True
    path = tmp_path / "w.nmw"
    save_workload(_one_layer(mask), path)
    out = export_timeloop(d, path, "net.fc", tmp_path / "tl", bits=8)
    docs = {name: yaml.safe_load((out / name).read_text()) for name in FILES}
    dens = docs["problem.yaml"]["problem"]["instance"]["densities"]["Weights"]
    assert dens == {"distribution": "hypergeometric", "density": pytest.approx(2176 / 16384, abs=1e-6)}
    target = docs["sparse_opt.yaml"]["sparse_optimizations"]["targets"][0]
    k_rank = target["representation_format"]["data_spaces"][0]["ranks"][-1]
    assert (k_rank["format"], k_rank["metadata_word_bits"]) == (k_format, meta_bits)
