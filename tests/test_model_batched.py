"""The batched paths give exactly the one-at-a-time answers: one evaluate_many() call over many
programs vs evaluate() on each, and the word-wise mask analysis vs per-group counts."""

from dataclasses import replace

import numpy as np
import pytest

from hwmodel.design import load_design
from hwmodel.errors import NmlabError
from hwmodel.io import data_path
from hwmodel.model import FIELDS, Evaluation, evaluate, evaluate_many, map_program
from hwmodel.program import build_program
from hwmodel.workload import load_workload, synthetic_td3_workload
from tests.test_model import _design as _edited  # a bundled design with dotted-path edits


def _designs():
    """Every array kind and sparsity support: WS, OS and tensor core; fixed, flexible, layer-wise, unstructured."""
    return [load_design(n) for n in ("edge_ws", "flex_nm", "stc_hbm", "scalesim_default_ws", "unstructured_ws")] + [
        _edited("edge_ws", **{"compute.dataflow": "os"})]


def _workloads():
    wls = [load_workload(data_path("workloads", f"{n}.nmw"))
           for n in ("hopper_2of4_s0", "halfcheetah_1of8_s0", "hopper_gmp_s0", "hopper_dense_s0")]
    return wls + [synthetic_td3_workload(17, 6, "4:8", seed=3)]


def _points(design, rng, n):
    bits = []
    for b in (4, 8, 16):
        try:
            design.datatype_for(b)
        except NmlabError:
            continue
        bits.append(b)
    return rng.choice(bits, n), rng.choice([1, 3, 32, 256, 1000], n)


def _assert_same(got: Evaluation, want: Evaluation) -> None:
    assert set(got.gemm) == set(want.gemm) == set(FIELDS)
    assert set(got.elementwise) == set(want.elementwise) == set(FIELDS)
    for part in ("gemm", "elementwise"):
        for f in FIELDS:
            a, b = getattr(got, part)[f], getattr(want, part)[f]
            assert a.shape == b.shape and a.dtype == b.dtype, (part, f)
            assert np.array_equal(a, b), (part, f)
    for name in ("m", "kk", "nn", "stored_bytes", "resident"):
        a, b = getattr(got, name), getattr(want, name)
        assert a.shape == b.shape and a.dtype == b.dtype and np.array_equal(a, b), name


@pytest.mark.parametrize("residency", ["auto", "stream"])
def test_batched_call_equals_each_program_alone(residency):
    rng = np.random.default_rng(7)
    runs = []
    for d in _designs():
        for wl in _workloads():
            for scenario in ("inference", "train_step"):
                prog = build_program(wl, scenario)
                for dense in (False, True):
                    bits, batch = _points(d, rng, int(rng.integers(1, 6)))
                    runs.append((map_program(prog, d, dense=dense), bits, batch))
    # Designs interleaved in one call: each design's programs are evaluated together.
    order = rng.permutation(len(runs))
    runs = [runs[i] for i in order]
    # Each program alone first, on a copy with its own (empty) memo of ragged fold sums, so the
    # batched call's memo cannot feed the reference.
    want = [evaluate(replace(mp, _ragged_cache={}), bits, batch, residency) for mp, bits, batch in runs]
    many = evaluate_many(runs, residency)
    assert len(many) == len(runs)
    ragged = sum(bool(mp.ragged.any()) for mp, _, _ in runs)
    assert 0 < ragged < len(runs)  # flexible and unstructured folds mixed with closed-form ones
    for (mp, bits, batch), got, ref in zip(runs, many, want):
        _assert_same(got, ref)
        assert got.gemm["cycles"].shape == (len(bits), len(mp.times))
    # Again, with every other program's fold sums memoised (each evaluated alone once): memoised
    # and joined fold tables mixed in one call.
    for mp, bits, batch in runs[::2]:
        evaluate(mp, bits, batch, residency)
    assert any(mp._ragged_cache for mp, _, _ in runs) and any(mp.ragged.any() and not mp._ragged_cache
                                                             for mp, _, _ in runs)
    for (mp, bits, batch), got in zip(runs, evaluate_many(runs, residency)):
        _assert_same(got, evaluate(replace(mp, _ragged_cache={}), bits, batch, residency))


def test_batched_call_on_one_program_and_on_a_repeat():
    d = load_design("flex_nm")
    mp = map_program(build_program(synthetic_td3_workload(11, 3, "2:4", seed=1), "train_step"), d)
    bits, batch = np.array([4, 8, 16, 8]), np.array([1, 256, 32, 32])
    alone = evaluate(mp, bits, batch)
    twice = evaluate_many([(mp, bits, batch), (mp, bits[::-1], batch[::-1])])
    _assert_same(twice[0], alone)
    _assert_same(twice[1], evaluate(mp, bits[::-1], batch[::-1]))
    assert evaluate_many([]) == []


def test_bits_and_batch_of_different_lengths_are_refused():
    mp = map_program(build_program(synthetic_td3_workload(11, 3, "dense"), "inference"), load_design("edge_ws"))
    with pytest.raises(ValueError, match="bits and batch"):
        evaluate_many([(mp, [8, 8], [1])])


@pytest.mark.parametrize("m", [2, 4, 8, 16])
@pytest.mark.parametrize("transposed", [False, True])
@pytest.mark.parametrize("per_row", [False, True])
def test_mask_analysis_equals_per_group_counts(m, transposed, per_row, monkeypatch):
    from hwmodel import mapping
    from hwmodel.mapping import _max_count, row_max_counts
    from hwmodel.sparsity import group_counts

    # The global max alone, or with the per-row vector (once a flexible design of this M is in use).
    monkeypatch.setattr(mapping, "_per_row_ms", {m} if per_row else set())

    rng = np.random.default_rng(m)
    for shape in [(7, 13), (16, 32), (3, 256), (256, 17), (1, 1), (40, 9)]:
        for density in (0.1, 0.5, 0.9):
            mask = rng.random(shape) < density
            a = mask.T if transposed else mask
            want = group_counts(a, m).max(axis=1)
            # The global max first (what fixed designs ask), then the per-row vector, then a fresh mask
            # asked in the other order: both orders give the same answers.
            assert _max_count(mask, m, transposed) == want.max()
            assert np.array_equal(row_max_counts(mask, m, transposed), want)
            other = mask.copy()
            assert np.array_equal(row_max_counts(other, m, transposed), want)
            assert _max_count(other, m, transposed) == want.max()


@pytest.mark.parametrize("design", ["flex_nm", "unstructured_ws", "stc_hbm"])
def test_fold_table_equals_ragged_folds_gemm_by_gemm(design):
    from hwmodel.cycles import fold_width, ragged_folds
    from hwmodel.mapping import map_weights
    from hwmodel.program import BACKWARD_DATA, FORWARD

    d = load_design(design)
    if design == "stc_hbm":  # a tensor core (fold width min(units, N)) running unstructured masks
        d = _edited("stc_hbm", **{"sparsity": {"support": "unstructured", "index_format": "bitmask",
                                               "metadata_bits_per_cycle": 2048}})
    checked = 0
    for wl in _workloads():
        prog = build_program(wl, "train_step")
        mp = map_program(prog, d)
        gemm, k, outputs = [], [], []
        for gi, e in enumerate(prog.gemms):
            layer = prog.layers[e.layer]
            if e.phase not in (FORWARD, BACKWARD_DATA):
                continue
            t = e.phase == BACKWARD_DATA
            m = map_weights(d, layer.mask, layer.pattern, transposed=t)
            if m.row_n is None and m.row_k is None:
                continue
            kk, nn = (layer.out_features, layer.in_features) if t else (layer.in_features, layer.out_features)
            fk, outs = ragged_folds(kk, nn, fold_width(d, nn), m.hw_pattern, m.row_n, m.row_k)
            gemm += [gi] * len(fk)
            k += fk.tolist()
            outputs += outs.tolist()
        assert mp.folds.gemm.tolist() == gemm and mp.folds.k.tolist() == k and mp.folds.outputs.tolist() == outputs
        assert mp.folds.n_gemms == len(prog.gemms)
        assert mp.folds.k.dtype == mp.folds.outputs.dtype == mp.folds.gemm.dtype == np.int64
        checked += len(set(gemm))
    assert checked >= 20  # ragged GEMMs, forward and W^T, were compared


def test_lists_of_points_give_the_same_answers_as_arrays():
    d = load_design("stc_hbm")
    progs = [map_program(build_program(synthetic_td3_workload(11, 3, p, seed=2), "inference"), d)
             for p in ("2:4", "dense", "1:4")]
    lists = [(mp, [4, 8, 16][: i + 1], [1, 32, 256][: i + 1]) for i, mp in enumerate(progs)]
    arrays = [(mp, np.array(b), np.array(m)) for mp, b, m in lists]
    for got, want in zip(evaluate_many(lists), evaluate_many(arrays)):
        _assert_same(got, want)
    with pytest.raises(ValueError, match="bits and batch"):
        evaluate_many(lists + [(progs[0], [8, 8], [1])])


def test_simulate_reuses_its_mapping_but_sees_a_workload_edited_between_calls():
    import copy

    import hwmodel

    wl = synthetic_td3_workload(11, 3, "2:4", seed=4)
    first = hwmodel.simulate(wl, "flex_nm", batch=8, scenario="train_step")
    again = hwmodel.simulate(wl, "flex_nm", batch=8, scenario="train_step")
    assert again.total == first.total and [r.figures for r in again.layers] == [r.figures for r in first.layers]
    # A layer's mask and pattern replaced on the same workload object: the next call maps it anew.
    layer = wl.layers[1]
    layer.mask, layer.pattern = None, "dense"
    edited = hwmodel.simulate(wl, "flex_nm", batch=8, scenario="train_step")
    fresh = hwmodel.simulate(copy.deepcopy(wl), "flex_nm", batch=8, scenario="train_step")
    assert edited.total != first.total
    assert edited.total == fresh.total and [r.figures for r in edited.layers] == [r.figures for r in fresh.layers]


def test_repeated_rows_evaluated_once_give_the_same_answers(monkeypatch):
    """A grid of many workloads on fixed, layer-wise and flexible designs: evaluate_many() runs
    each distinct (GEMM class, point) row once (masks differ, so only macs_effectual differs
    between a class's rows) and must equal evaluate() on each program; it does take that path."""
    import hwmodel.model as model

    used = []
    distinct = model._distinct_rows
    monkeypatch.setattr(model, "_distinct_rows", lambda *a: used.append(distinct(*a)) or used[-1])
    for name in ("edge_ws", "stc_hbm", "scalesim_default_ws", "flex_nm"):
        d = load_design(name)
        runs = []
        for seed in range(6):
            for p in ("2:4", "1:8", "dense"):
                wl = synthetic_td3_workload(17, 6, p, seed=seed)
                # (W^T of these masks has rows at several N: flexible train steps repeat no rows.)
                train = seed >= 3 and name != "flex_nm"
                mp = map_program(build_program(wl, "train_step" if train else "inference"), d)
                runs.append((mp, [8] * 6, [1, 256, 32, 4, 64, 128]))
        used.clear()
        for (mp, bits, batch), got in zip(runs, evaluate_many(runs)):
            _assert_same(got, evaluate(mp, np.array(bits), np.array(batch)))
        # Fixed and layer-wise designs share mappings by max counts, the flexible one by a
        # single row N (forward 2:4 and 1:8 masks): every design repeats rows here.
        assert used and used[-1] is not None and 2 * len(used[-1][0]) <= len(used[-1][1]), name


def test_flexible_rows_at_one_n_share_a_mapping_but_not_across_array_sizes():
    """Masks whose rows all run at one N share one flexible Mapping (its row N constant and
    read-only); a design with the same sparsity but another array width still gets its own
    folds: its answers equal those of a process that never mapped the first design."""
    import hwmodel.mapping as mapping
    import hwmodel.mapped_program as mapped_program
    from hwmodel.mapping import _allowed_n, map_weights, row_max_counts

    d = load_design("flex_nm")
    a, b = (synthetic_td3_workload(17, 6, "2:4", seed=s).layers[1] for s in (7, 8))
    ma, mb = map_weights(d, a.mask, a.pattern), map_weights(d, b.mask, b.pattern)
    assert ma is mb and not ma.row_n.flags.writeable
    assert np.array_equal(ma.row_n, _allowed_n(d.sparsity)[row_max_counts(a.mask, 4)])
    wide = _edited("flex_nm", **{"compute.cols": 8, "compute.rows": 8})
    progs = [build_program(synthetic_td3_workload(17, 6, "2:4", seed=s), "train_step") for s in (7, 8)]
    both = [evaluate(map_program(p, dd), np.array([8, 8]), np.array([1, 256])) for p in progs for dd in (d, wide)]
    for cache in (mapping._mask_cache, mapping._by_counts, mapped_program._static_columns, mapped_program._fold_index):
        cache.clear()
    for p in progs:
        p.__dict__.pop("_layer_refs", None)
    alone = [evaluate(map_program(p, wide), np.array([8, 8]), np.array([1, 256])) for p in progs]
    _assert_same(both[1], alone[0])
    _assert_same(both[3], alone[1])
    assert not np.array_equal(both[0].gemm["cycles"], both[1].gemm["cycles"])


def test_map_program_sees_a_layer_mask_or_pattern_replaced_on_the_same_program():
    """A program's per-layer mapping inputs are memoised; replacing a layer's mask or pattern
    object on the same program maps it anew (equal to a freshly built program's mapping)."""
    d = load_design("edge_ws")
    wl = synthetic_td3_workload(17, 6, "2:4", seed=9)
    prog = build_program(wl, "inference")
    first = map_program(prog, d)
    layer = prog.layers[1]
    layer.pattern = "dense"  # the same mask, run as a dense layer
    again = map_program(prog, d)
    fresh = map_program(build_program(wl, "inference"), d)
    assert first.hw_patterns[1] == "2:4" and again.hw_patterns[1] == fresh.hw_patterns[1] == "dense"
    assert np.array_equal(again.int_columns, fresh.int_columns)
    layer.mask = None  # no mask: every weight kept
    again = map_program(prog, d)
    assert again.nnz[1] == layer.in_features * layer.out_features > first.nnz[1]


def test_an_analysed_mask_cannot_be_edited_in_place():
    """The analysis is cached per mask object: an in-place edit after a simulate() call would
    leave it stale, so it raises; a new array is analysed anew."""
    import hwmodel

    wl = synthetic_td3_workload(11, 3, "2:4", seed=5)
    first = hwmodel.simulate(wl, "flex_nm", batch=8)
    layer = wl.layers[1]
    with pytest.raises(ValueError, match="read-only"):
        layer.mask[:, :] = False
    mask = layer.mask.copy()
    mask[:, 0::4] = False   # a sparser 2:4-compatible mask (1:4 kept at most in each group)
    layer.mask = mask
    assert hwmodel.simulate(wl, "flex_nm", batch=8).total != first.total
