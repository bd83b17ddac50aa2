"""Cycle model, mask mapping, residency, stalls and the TD3 training step of hwmodel.simulate."""

import copy
import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest
import yaml

import hwmodel
from hwmodel.cycles import compute_cycles, schedule
from hwmodel.design import load_design, parse_design
from hwmodel.errors import NmlabError
from hwmodel.io import data_path
from hwmodel.mapping import map_weights
from hwmodel.sparsity import is_transposable, nm_mask, verify
from hwmodel.workload import Layer, Workload, save_workload, synthetic_td3_workload


def _design(name: str, **edits):
    """A bundled design's YAML with dotted-path edits, e.g. ``{"compute.rows": 4}``."""
    data = yaml.safe_load(data_path("designs", f"{name}.yaml").read_text())
    for path, value in edits.items():
        node = data
        keys = [int(k) if k.isdigit() else k for k in path.split(".")]
        for k in keys[:-1]:
            node = node[k]
        node[keys[-1]] = value
    return parse_design(data)


# ---------------------------------------------------------------- compute cycles


def test_scalesim_contract_on_its_documented_example():
    d = load_design("scalesim_default_ws")
    # peers.md: SCALE-Sim reports 22,399 dense and 11,199 for 2:4 on 32x32, M=N=K=256 (ours is one more).
    assert compute_cycles(d, 256, 256, 256) == 22_400
    assert compute_cycles(d, 256, 256, 256, "2:4") == 11_200


@pytest.mark.parametrize("m,k,n,pat", [(1, 11, 256, "dense"), (7, 100, 33, "dense"), (64, 300, 70, "2:4"),
                                       (3, 17, 5, "1:8"), (256, 1000, 1, "3:7"), (2, 65, 4, "2:4"),
                                       (4, 82, 40, "3:8")])
def test_ws_compute_cycles_follow_the_scalesim_formula(m, k, n, pat):
    d = load_design("scalesim_default_ws")
    # K' = N per full group of M, min(K mod M, N) in a partial last group (padding is never
    # kept): 82 under 3:8 keeps 3 x 10 + 2 = 32, one fold of 32 rows, not 3 x ceil(82 / 8) = 33.
    kk = k if pat == "dense" else int(pat[0]) * (k // int(pat[2])) + min(k % int(pat[2]), int(pat[0]))
    assert compute_cycles(d, m, k, n, pat) == math.ceil(kk / 32) * math.ceil(n / 32) * (2 * 32 + 32 + m - 2)


def test_partial_last_group_keeps_at_most_its_real_weights():
    # K = 9 under 2:4: two full groups (4 slots) + a last group of 1 real weight (1 slot) = 5,
    # one fold on a 5-row array (SCALE-Sim v3 agrees: 13 cycles reported, 14 = 2*5 + 4 + 2 - 2).
    d = _design("scalesim_default_ws", **{"compute.rows": 5, "compute.cols": 4})
    assert compute_cycles(d, 2, 9, 4, "2:4") == 14
    assert compute_cycles(d, 2, 9, 4, "4:8") == 14
    assert compute_cycles(d, 2, 10, 4, "2:4") == 28  # last group of 2 keeps 2 -> K' = 6 -> 2 folds


def test_fold_counts_on_small_hand_cases():
    ws = _design("edge_ws", **{"compute.rows": 4, "compute.cols": 4})
    s = schedule(ws, 3, 10, 6, "dense", bits=8)
    # K 10 over 4 rows -> 3 folds, N 6 over 4 cols -> 2 folds; each 2*4 + 4 + 3 - 2 = 13 cycles.
    assert (s.weight_folds, s.compute_cycles, s.fill_window_cycles) == (6, 78, 4)
    assert s.weight_slots == 60 and s.k_passes == 3
    # int4 packs two products per PE: K 10 over 8 -> 2 folds.
    assert schedule(ws, 3, 10, 6, "dense", bits=4).compute_cycles == 2 * 2 * 13

    os_ = _design("edge_ws", **{"compute.rows": 4, "compute.cols": 4, "compute.dataflow": "os"})
    s = schedule(os_, 6, 10, 6, "dense", bits=8)
    # outputs 6x6 over 4x4 -> 4 folds, each streams K: 2*4 + 4 + 10 - 2 = 20; weights re-read per M fold.
    assert (s.compute_cycles, s.weight_folds, s.weight_reloads, s.input_reloads) == (80, 4, 2, 2)

    tc = _design("stc_hbm", **{"compute.rows": 8, "compute.cols": 4})
    s = schedule(tc, 3, 10, 5, "dense", bits=16)
    # 5 outputs on 8 units (one batch row per pass), 3 passes of ceil(10/4) = 3 steps, + depth 4.
    assert s.compute_cycles == 3 * 3 + tc.compute.pipeline_depth == 13
    # N = 1: the units spread over 8 batch rows instead.
    assert schedule(tc, 16, 8, 1, "dense", bits=16).compute_cycles == 2 * 2 + tc.compute.pipeline_depth


@pytest.mark.parametrize("design", ["scalesim_default_ws", "edge_ws", "flex_nm", "stc_hbm"])
def test_nm_cuts_compute_by_n_over_m(design):
    d = load_design(design)
    pe = d.compute.rows * d.compute.cols
    fill = d.compute.pipeline_depth if d.compute.kind == "tensor_core" else 0
    dense = compute_cycles(d, 64, 1024, 512, "dense", bits=8) - fill
    assert (compute_cycles(d, 64, 1024, 512, "2:4", bits=8) - fill) * 2 == dense
    assert (compute_cycles(d, 64, 1024, 512, "1:4", bits=8) - fill) * 4 == dense
    assert pe > 0


def test_flexible_fold_runs_at_its_largest_row_n():
    d = load_design("flex_nm")
    row_n = np.full(64, 1)
    row_n[:32][5] = 2  # first fold of 32 output rows has one row at 2:4
    per_fold = 2 * 32 + 32 + 1 - 2
    assert compute_cycles(d, 1, 256, 64, "2:4", row_n=row_n) == (math.ceil(128 / 32) + math.ceil(64 / 32)) * per_fold


# ---------------------------------------------------------------- mapping real masks


def _mask_4_of_8(out: int, inp: int, fits_2_4: bool, seed: int = 0) -> np.ndarray:
    """A 4:8 mask; when ``fits_2_4`` every half-group keeps exactly 2, else one half keeps 3."""
    rng = np.random.default_rng(seed)
    mask = np.zeros((out, inp), dtype=bool)
    for r in range(out):
        for g in range(0, inp, 4):
            mask[r, g + rng.choice(4, 2, replace=False)] = True
    if not fits_2_4:
        mask[0, :8] = [True, True, True, False, True, False, False, False]
    assert verify(mask, "4:8") is None
    return mask


def test_4_of_8_mask_maps_to_2_4_only_where_every_half_group_fits():
    stc = load_design("stc_hbm")
    good, bad = _mask_4_of_8(16, 32, True), _mask_4_of_8(16, 32, False)
    m = map_weights(stc, good, "4:8")
    assert str(m.hw_pattern) == "2:4" and "<= 2" in m.note
    m = map_weights(stc, bad, "4:8")
    assert str(m.hw_pattern) == "dense" and "mask is not 2:4 (its fullest group of 4 keeps 3)" in m.note


def test_a_fixed_design_says_why_a_layer_runs_dense():
    # One note said both reasons at once ("does not fit any of 2:4 (a group of 4 holds 1) with
    # fewer than K=1 slots"); a fitting pattern on a too-short K and a pattern that does not fit
    # are different reasons.
    stc = load_design("stc_hbm")
    one_out = np.zeros((1, 64), bool)
    one_out[0, ::2] = True  # a 2:4 row of a one-output layer: W^T has K = 1
    m = map_weights(stc, one_out, "2:4", transposed=True)
    assert str(m.hw_pattern) == "dense" and m.note.startswith("W^T: K=1 is too short for 2:4 to skip a slot")
    row_wise = nm_mask(np.random.default_rng(0).normal(size=(64, 64)), "2:4")
    m = map_weights(stc, row_wise, "2:4", transposed=True)
    assert str(m.hw_pattern) == "dense" and m.note.startswith("W^T is not 2:4 (its fullest group of 4 keeps ")


def test_1_8_maps_to_the_sparsest_supported_pattern():
    w = np.random.default_rng(1).normal(size=(32, 64))
    mask = nm_mask(w, "1:8")
    assert str(map_weights(load_design("edge_ws"), mask, "1:8").hw_pattern) == "1:4"
    assert str(map_weights(load_design("stc_hbm"), mask, "1:8").hw_pattern) == "2:4"
    assert str(map_weights(load_design("scalesim_default_ws"), mask, "1:8").hw_pattern) == "1:8"


def test_flexible_design_picks_n_per_row():
    mask = np.zeros((4, 8), dtype=bool)
    mask[0, [0, 4]] = True          # 1 per group -> N 1
    mask[1, [0, 1, 4]] = True       # 2 in a group -> N 2
    mask[2, [0, 1, 2, 5]] = True    # 3 in a group -> N 4 (3 is not offered)
    mask[3, :] = True               # dense row -> N 4
    m = map_weights(load_design("flex_nm"), mask, "unstructured")
    assert m.row_n.tolist() == [1, 2, 4, 4]


def test_flexible_note_says_why_rows_without_a_full_group_run_dense():
    # Every row's fullest group holds 3 of 4 and flex_nm offers N of 1, 2, 4: every row runs at
    # N = 4, dense. The note said "has a full group of 4", which no row has.
    mask = np.zeros((4, 8), dtype=bool)
    mask[:, [0, 1, 2, 4]] = True
    m = map_weights(load_design("flex_nm"), mask, "unstructured")
    assert str(m.hw_pattern) == "dense"
    assert m.note == ("every row of the mask has a group holding 3 or more of 4, more than any N below 4 "
                      "the design offers (1, 2): run dense")
    mask = mask.copy()  # an analysed mask is read-only
    mask[0, :4] = True  # one row with a full group: the least full row still holds 3
    assert "holding 3 or more" in map_weights(load_design("flex_nm"), mask, "unstructured").note
    mask = mask.copy()
    mask[:, :4] = True  # every row has a full group
    assert map_weights(load_design("flex_nm"), mask, "unstructured").note == \
        "every row of the mask has a full group of 4: run dense"


def test_unstructured_and_dense_layers_run_dense_on_fixed_hardware():
    rng = np.random.default_rng(2)
    mask = rng.random((16, 16)) < 0.5
    m = map_weights(load_design("stc_hbm"), mask, "unstructured")
    assert str(m.hw_pattern) == "dense"
    assert str(map_weights(load_design("stc_hbm"), None, "dense").hw_pattern) == "dense"


def _workload(pattern_masks: dict, obs: int = 12, act: int = 4, hidden: int = 32) -> Workload:
    """actor/critic1/critic2 with given masks per network (None = dense)."""
    dims = {"actor": [obs, hidden, hidden, act], "critic1": [obs + act, hidden, hidden, 4],
            "critic2": [obs + act, hidden, hidden, 4]}
    layers = []
    for net, d in dims.items():
        for i, (k, n) in enumerate(zip(d[:-1], d[1:])):
            mk = pattern_masks.get(net)
            mask = mk(n, k) if mk else None
            layers.append(Layer(f"{net}.fc{i + 1}", net, k, n, "2:4" if mask is not None else "dense", mask, 8))
    return Workload(layers)


def _transposable(out: int, inp: int) -> np.ndarray:
    i, j = np.indices((out, inp))
    return ((i + j) % 4) < 2


def _not_transposable(out: int, inp: int) -> np.ndarray:
    mask = np.zeros((out, inp), dtype=bool)
    mask[:, 0::4] = mask[:, 1::4] = True  # every row keeps the same two columns per group
    return mask


def test_training_step_runs_backward_data_sparse_only_for_transposable_masks():
    assert is_transposable(_transposable(32, 32), "2:4") and not is_transposable(_not_transposable(32, 32), "2:4")
    for make, expect in ((_transposable, "2:4"), (_not_transposable, "dense")):
        wl = _workload({"actor": make, "critic1": make, "critic2": make})
        res = hwmodel.simulate(wl, "stc_hbm", batch=64, bits=8, scenario="train_step")
        phases = {}
        for r in res.layers:
            if r.name.endswith("fc2"):
                phases.setdefault(r.phase, set()).add(r.hw_pattern)
        assert phases["forward"] == {"2:4"}
        assert phases["backward_data"] == {expect}
        assert phases["backward_weight"] == {"dense"}
    updates = {r.update for r in res.layers}
    assert updates == {"critic_update", "actor_update"}
    actor_rows = [r for r in res.layers if r.update == "actor_update"]
    assert all(r.times_per_step == 0.5 for r in actor_rows)
    # the critic update never back-propagates into the critics' first layer; the actor update does (dQ/da)
    bd1 = [r.update for r in res.layers if r.name == "critic1.fc1" and r.phase == "backward_data"]
    assert bd1 == ["actor_update"]
    assert {r.phase for r in res.layers} >= {"forward", "backward_data", "backward_weight", "optimizer", "polyak"}


def test_train_step_needs_actor_and_critics():
    wl = Workload([Layer("actor.fc1", "actor", 8, 8)])
    with pytest.raises(NmlabError, match="train_step needs networks"):
        hwmodel.simulate(wl, "edge_ws", scenario="train_step")


def test_train_step_without_critics_names_the_files_networks_and_the_fix():
    # A CleanRL TD3 agent's critics are qf1/qf2: the message says what the file has and what to rename.
    wl = Workload([Layer("actor.fc1", "actor", 8, 8), Layer("qf1.fc1", "qf1", 10, 1), Layer("qf2.fc1", "qf2", 10, 1)])
    with pytest.raises(NmlabError, match=r"missing critic1, critic2 \(this file's networks: actor, qf1, qf2\).*critic1 and critic2"):
        hwmodel.simulate(wl, "edge_ws", scenario="train_step")


def test_inference_without_an_actor_network_is_refused_not_summed():
    # A SAC agent named 'policy' beside its critic 'qf1': inference ran both and called it the policy's forward pass.
    wl = Workload([Layer("policy.fc1", "policy", 8, 16), Layer("policy.fc_mean", "policy", 16, 2),
                   Layer("qf1.fc1", "qf1", 10, 16), Layer("qf1.fc2", "qf1", 16, 1)])
    with pytest.raises(NmlabError, match=r"networks are policy, qf1: set layers\[\]\.network to 'actor'"):
        hwmodel.simulate(wl, "edge_ws")
    with pytest.raises(NmlabError, match="network named 'actor'"):
        hwmodel.simulate(wl, "h100_sxm")
    # one network, whatever its name, is the policy; with an 'actor' only the actor runs
    one = hwmodel.simulate(Workload(wl.layers[:2]), "edge_ws")
    assert [r.name for r in one.layers] == ["policy.fc1", "policy.fc_mean"]
    wl.layers[0].network = wl.layers[1].network = "actor"
    assert [r.name for r in hwmodel.simulate(wl, "edge_ws").layers] == ["policy.fc1", "policy.fc_mean"]


# ---------------------------------------------------------------- residency and stalls


def test_residency_flips_when_sram_is_too_small():
    wl = synthetic_td3_workload(11, 3, "2:4")
    big = hwmodel.simulate(wl, "edge_ws")
    assert big.fits_in_sram and big.extra["weights_resident"]
    weight_dram = big.total.bits_dram_read
    small = _design("edge_ws", **{"storage.1.capacity_bytes": 16384})
    res = hwmodel.simulate(wl, small)
    assert not res.fits_in_sram and not res.extra["weights_resident"]
    stored_bits = res.extra["bytes_weights_stored"] * 8
    assert res.total.bits_dram_read == pytest.approx(weight_dram + stored_bits)
    assert res.total.cycles > big.total.cycles
    cold = hwmodel.simulate(wl, "edge_ws", residency="cold")
    assert cold.total.bits_dram_read == pytest.approx(weight_dram + stored_bits)


def test_cold_is_weights_not_resident_for_every_gemm_as_documented():
    """docs/hwmodel.md: cold = no weight is resident, so every GEMM reads its weights from DRAM:
    once per weight in inference, but a training step's forward and backward-data GEMMs each
    read them again (cold and stream give the same figures; the docs once said 'once')."""
    wl = synthetic_td3_workload(11, 3, "2:4")
    for scenario in ("inference", "train_step"):
        cold = hwmodel.simulate(wl, "edge_ws", scenario=scenario, residency="cold", batch=4)
        stream = hwmodel.simulate(wl, "edge_ws", scenario=scenario, residency="stream", batch=4)
        assert cold.summary() == stream.summary()
    auto = hwmodel.simulate(wl, "edge_ws", scenario="train_step", batch=4)
    stored = cold.extra["bytes_weights_stored"] * 8
    assert auto.extra["weights_resident"]
    assert cold.total.bits_dram_read - auto.total.bits_dram_read > 2 * stored  # not read once
    text = (data_path("..", "..", "docs", "hwmodel.md")).read_text()
    assert "every weight read once from DRAM" not in text


def test_sparsity_can_make_weights_fit():
    # six TD3 networks at 8 bits (~420 KB) overflow edge's 256 KB; 2:4 (~260 KB incl. metadata) does not... 1:4 does.
    dense = hwmodel.simulate(synthetic_td3_workload(11, 3, "dense"), "edge_ws", scenario="train_step", batch=32)
    sparse = hwmodel.simulate(synthetic_td3_workload(11, 3, "1:4"), "edge_ws", scenario="train_step", batch=32)
    assert not dense.fits_in_sram and sparse.fits_in_sram
    assert sparse.extra["dense_fits_in_sram"] is False


def test_dram_stall_appears_when_bandwidth_is_cut():
    wl = synthetic_td3_workload(11, 3, "2:4")
    fast = hwmodel.simulate(wl, "edge_ws", residency="stream", batch=16)
    slow = hwmodel.simulate(wl, _design("edge_ws", **{"storage.0.bandwidth_gb_s": 0.1}), residency="stream", batch=16)
    assert slow.total.stall_cycles_dram > 10 * fast.total.stall_cycles_dram
    assert slow.total.cycles - fast.total.cycles == pytest.approx(
        slow.total.stall_cycles_dram - fast.total.stall_cycles_dram)
    # without double buffering the same transfers cannot hide behind compute
    single = _design("edge_ws", **{"storage.1.double_buffered": False})
    assert hwmodel.simulate(wl, single, residency="stream", batch=16).total.cycles > fast.total.cycles


def test_metadata_stall_when_metadata_bandwidth_is_short():
    wl = synthetic_td3_workload(11, 3, "2:4")
    ok = hwmodel.simulate(wl, "edge_ws")
    assert ok.total.stall_cycles_metadata == 0
    starved = hwmodel.simulate(wl, _design("edge_ws", **{"sparsity.metadata_bits_per_cycle": 1}))
    assert starved.total.stall_cycles_metadata > 0
    assert starved.total.cycles == pytest.approx(ok.total.cycles + starved.total.stall_cycles_metadata)
    # ceil(log2 4) = 2 bits per kept weight
    fc2 = next(r for r in ok.layers if r.name == "actor.fc2")
    assert fc2.figures.bits_metadata == 256 * 128 * 2


# ---------------------------------------------------------------- results and API


def test_speedup_and_effectual_macs():
    res = hwmodel.simulate(synthetic_td3_workload(11, 3, "2:4"), "scalesim_default_ws", batch=256)
    fc2 = next(r for r in res.layers if r.name == "actor.fc2")
    assert fc2.figures.macs_dense == 256 * 256 * 256
    assert fc2.figures.macs_effectual == 256 * fc2.figures.macs_dense / 256 / 2
    assert fc2.dense.macs_issued == fc2.figures.macs_dense
    assert fc2.speedup_vs_dense == pytest.approx(2.0, rel=0.02)
    assert 0 < fc2.energy_ratio_vs_dense < 1
    s = res.summary()
    assert 0 < s["utilization"] <= 1
    assert s["macs_effectual"] == sum(r.figures.macs_effectual for r in res.layers)


def test_bits_override_and_bad_arguments():
    wl = synthetic_td3_workload(11, 3, "2:4", weight_bits=32)
    r8 = hwmodel.simulate(wl, "edge_ws", bits=8)
    r4 = hwmodel.simulate(wl, "edge_ws", bits=4)
    assert r4.extra["bytes_weights_stored"] < r8.extra["bytes_weights_stored"]
    assert r4.total.cycles < r8.total.cycles
    with pytest.raises(NmlabError, match="no datatype of 32 bits"):
        hwmodel.simulate(wl, "edge_ws", bits=32)
    with pytest.raises(NmlabError, match="batch"):
        hwmodel.simulate(wl, "edge_ws", batch=0)
    with pytest.raises(NmlabError, match="scenario"):
        hwmodel.simulate(wl, "edge_ws", scenario="serve")


def test_cli_table_and_json(tmp_path):
    path = tmp_path / "wl.nmw"
    save_workload(synthetic_td3_workload(11, 3, "2:4"), path)
    base = [sys.executable, "-m", "hwmodel.cli", "simulate", "--workload", str(path), "--design", "edge_ws"]
    out = subprocess.run(base, capture_output=True, text=True, check=True).stdout
    assert "actor.fc2" in out and "speedup vs dense" in out and "energy by component" in out
    doc = json.loads(subprocess.run(base + ["--json", "--batch", "4"], capture_output=True, text=True, check=True).stdout)
    assert doc["summary"]["batch"] == 4 and len(doc["layers"]) == 3
    assert doc["layers"][1]["hw_pattern"] == "2:4"
    bad = subprocess.run(base[:-1] + ["no_such"], capture_output=True, text=True)
    assert bad.returncode == 2 and bad.stderr.startswith("nmlab simulate: error: design:")
    assert "Traceback" not in bad.stderr


@pytest.mark.parametrize("design,edits", [("edge_ws", {"compute.dataflow": "os"}), ("stc_hbm", {})])
def test_streamed_weights_stall_on_every_array_kind(design, edits):
    wl = synthetic_td3_workload(11, 3, "2:4")
    base = _design(design, **edits)
    cut = _design(design, **edits, **{"storage.0.bandwidth_gb_s": 0.05})
    fast = hwmodel.simulate(wl, base, batch=32, residency="stream")
    slow = hwmodel.simulate(wl, cut, batch=32, residency="stream")
    assert slow.total.stall_cycles_dram > fast.total.stall_cycles_dram > 0
    assert slow.total.bits_dram_read == fast.total.bits_dram_read


def test_os_rereads_weights_per_batch_fold():
    os_ = _design("edge_ws", **{"compute.dataflow": "os"})
    wl = synthetic_td3_workload(11, 3, "dense")
    one = next(r for r in hwmodel.simulate(wl, os_, batch=16).layers if r.name == "actor.fc2")
    two = next(r for r in hwmodel.simulate(wl, os_, batch=32).layers if r.name == "actor.fc2")
    # 16 rows fit one fold of the 16-row array; 32 rows need two, so weights are read twice.
    assert two.figures.bits_sram_read - one.figures.bits_sram_read >= 256 * 256 * 8


def test_flexible_design_beats_fixed_on_mixed_rows():
    rng = np.random.default_rng(3)
    mask = nm_mask(rng.normal(size=(64, 256)), "1:4")
    mask[:32] = nm_mask(rng.normal(size=(32, 256)), "2:4")  # first fold of 32 rows at 2:4, second at 1:4
    wl = Workload([Layer("actor.fc1", "actor", 256, 64, "2:4", mask, 8)])
    flex = hwmodel.simulate(wl, "flex_nm", batch=8).layers[0]
    assert flex.hw_pattern == "2:4" and "mean 1.50" in flex.mapping_note
    layerwise = hwmodel.simulate(wl, "scalesim_default_ws", batch=8).layers[0]  # whole layer at 2:4
    per_fold = 2 * 32 + 32 + 8 - 2
    compute = lambda r: r.figures.cycles - r.figures.stall_cycles_dram - r.figures.stall_cycles_metadata  # noqa: E731
    # K' = 128 (4 K folds) for the 2:4 rows, 64 (2 K folds) for the 1:4 rows
    assert compute(flex) == (4 + 2) * per_fold
    assert compute(layerwise) == (4 + 4) * per_fold


def test_activations_spill_to_dram_when_their_sram_is_small():
    wl = synthetic_td3_workload(11, 3, "dense")
    roomy = hwmodel.simulate(wl, "edge_ws", batch=64)
    tight = hwmodel.simulate(wl, _design("edge_ws", **{"storage.2.capacity_bytes": 1024}), batch=64)
    assert tight.total.bits_dram_read > roomy.total.bits_dram_read
    fc2 = next(r for r in tight.layers if r.name == "actor.fc2")
    assert fc2.figures.bits_dram_read >= 64 * 256 * 8


def test_dram_timing_and_sram_bits_by_hand():
    """docs/hwmodel.md, Stalls and Traffic: with a double-buffered weight SRAM cycles =
    max(busy, weight transfer) + one tile's transfer, without it the two add; network inputs and
    outputs are exposed; the DRAM latency is paid once per GEMM that touches DRAM. Partial sums
    are written and read between K passes (none with one pass)."""
    from hwmodel.traffic import dram_timing, sram_bits

    a = np.array
    # 100 busy cycles, 800 weight bits over 4 folds at 10 bits/cycle (80 cycles, 20 per tile),
    # 50 + 30 input/output bits (8 cycles exposed), 7 cycles of latency.
    cycles, stall = dram_timing(a([100.0]), a([800.0]), a([50.0]), a([30.0]), a([4]), a([True]), 10.0, 7.0)
    assert (cycles[0], stall[0]) == (100 + 20 + 8 + 7, 20 + 8 + 7)
    cycles, _ = dram_timing(a([100.0]), a([800.0]), a([50.0]), a([30.0]), a([4]), a([False]), 10.0, 7.0)
    assert cycles[0] == 100 + 80 + 8 + 7
    # Transfer-bound: the weights take longer than compute.
    cycles, _ = dram_timing(a([30.0]), a([800.0]), a([0.0]), a([0.0]), a([4]), a([True]), 10.0, 7.0)
    assert cycles[0] == 80 + 20 + 7
    # Nothing from DRAM: no latency, no stall.
    cycles, stall = dram_timing(a([100.0]), a([0.0]), a([0.0]), a([0.0]), a([4]), a([True]), 10.0, 7.0)
    assert (cycles[0], stall[0]) == (100, 0)

    # M=3, K'=10, N=5; 40 stored weight values at 8 bits read twice; A at 8 bits read 3 times;
    # 4 K passes at 32-bit accumulators; O at 16 bits.
    b_read, a_read, psum, o_write = sram_bits(a([3]), a([10]), a([5]), a([40.0]), 8, 8, 16, a([2]), a([3]), a([4]), 32)
    assert (b_read[0], a_read[0], psum[0], o_write[0]) == (40 * 8 * 2, 3 * 10 * 8 * 3, 3 * 3 * 5 * 32, 3 * 5 * 16)
    assert sram_bits(a([3]), a([10]), a([5]), a([40.0]), 8, 8, 16, a([1]), a([1]), a([1]), 32)[2][0] == 0


def test_metadata_traffic_and_stall_by_hand():
    """docs/hwmodel.md, Stalls: index bits travel with every weight reload; on WS they must arrive
    within the weight fill of each fold, elsewhere within the compute time."""
    from hwmodel.traffic import metadata

    a = np.array
    # 60 index bits stored, reloaded 3 times = 180 bits at 10 bits/cycle = 18 cycles; WS window 2 folds x 4.
    bits, stall = metadata(a([60.0]), a([3]), a([2]), a([4]), a([50.0]), 10.0)
    assert (bits[0], stall[0]) == (180, 18 - 8)
    # No fill window (OS, tensor core): the 50 compute cycles hide the 18.
    assert metadata(a([60.0]), a([3]), a([2]), a([0]), a([50.0]), 10.0)[1][0] == 0
    bits, stall = metadata(a([0.0]), a([3]), a([2]), a([4]), a([50.0]), 10.0)  # dense: nothing moves
    assert (bits[0], stall[0]) == (0, 0)


@pytest.mark.parametrize("design", ["edge_ws", "h100_sxm"])  # the GPU design point builds its own GEMM list
def test_train_step_gemms_and_macs_by_hand(design):
    """TD3's training step, GEMM by GEMM (the actor 11-256-256-3, each critic 14-256-256-1):
    critic update (every step): the three target networks and both critics forward, both critics
    backward-data except into their first layer, both critics' weight gradients; actor update
    (every policy_delay = 2 steps, so x0.5): actor and critic1 forward, critic1 backward-data down
    to its input (dQ/da), actor backward-data except into fc1, actor weight gradients."""
    wl = synthetic_td3_workload(11, 3, "dense")
    res = hwmodel.simulate(wl, design, batch=256, bits=8, scenario="train_step")
    rows = {}
    for r in res.layers:
        if r.phase in ("forward", "backward_data", "backward_weight"):
            key = (r.name.split(".")[0], r.phase, r.update, r.times_per_step)
            rows[key] = rows.get(key, 0) + 1
    cu, au = "critic_update", "actor_update"
    assert rows == {
        ("actor_target", "forward", cu, 1.0): 3, ("critic1_target", "forward", cu, 1.0): 3,
        ("critic2_target", "forward", cu, 1.0): 3,
        ("critic1", "forward", cu, 1.0): 3, ("critic2", "forward", cu, 1.0): 3,
        ("critic1", "backward_data", cu, 1.0): 2, ("critic2", "backward_data", cu, 1.0): 2,
        ("critic1", "backward_weight", cu, 1.0): 3, ("critic2", "backward_weight", cu, 1.0): 3,
        ("actor", "forward", au, 0.5): 3, ("critic1", "forward", au, 0.5): 3,
        ("critic1", "backward_data", au, 0.5): 3, ("actor", "backward_data", au, 0.5): 2,
        ("actor", "backward_weight", au, 0.5): 3,
    }
    # MACs per sample: actor A = 11*256 + 256*256 + 256*3 = 69120 (66304 without fc1), critic
    # C = 14*256 + 256*256 + 256 = 69376 (65792 without fc1). Critic update: A + 4C forward,
    # 2 * 65792 backward-data, 2C weight gradients = 616960; actor update: A + C forward,
    # C + 66304 backward-data, A weight gradients = 343296, half of it per step.
    per_sample = 616960 + 343296 / 2
    assert res.total.macs_dense == 256 * per_sample
    assert hwmodel.simulate(wl, design, batch=1, bits=8, scenario="train_step").total.macs_dense == per_sample


def test_weights_exactly_the_sram_capacity_stay_resident():
    """Residency is stored bytes <= the weight SRAM: the dense 8-bit actor is 11*256 + 256*256 + 256*3
    = 69120 bytes, resident in a 69120-byte weight buffer and streamed from DRAM in 4 bytes less (edge_ws has 4 banks)."""
    wl = synthetic_td3_workload(11, 3, "dense")
    at = hwmodel.simulate(wl, _design("edge_ws", **{"storage.1.capacity_bytes": 69120}), bits=8)
    assert at.extra["bytes_weights_stored"] == 69120
    assert at.fits_in_sram and at.extra["weights_resident"]
    under = hwmodel.simulate(wl, _design("edge_ws", **{"storage.1.capacity_bytes": 69116}), bits=8)
    assert not under.fits_in_sram and not under.extra["weights_resident"]
    assert under.total.bits_dram_read == pytest.approx(at.total.bits_dram_read + 69120 * 8)


def test_weight_gradients_go_to_dram_only_when_the_weights_are_not_resident():
    """dW [out x in] at the weight bits is written to DRAM where the weights live there: nothing
    when they are resident (a 32-32 TD3 fits edge_ws), out x in x 8 bits per GEMM when streamed
    (critic1.fc2: 32 x 32 x 8 = 8192 bits, times_per_step 1)."""
    wl = synthetic_td3_workload(11, 3, "dense", hidden=(32, 32))
    for residency, resident in (("auto", True), ("stream", False)):
        res = hwmodel.simulate(wl, "edge_ws", batch=8, bits=8, scenario="train_step", residency=residency)
        assert res.extra["weights_resident"] == resident
        wg = {r.name: r for r in res.layers if r.phase == "backward_weight"}
        assert len(wg) == 9  # both critics and the actor, three layers each
        for r in wg.values():
            layer = next(x for x in wl.layers if x.name == r.name)
            expect = 0.0 if resident else layer.out_features * layer.in_features * 8 * r.times_per_step
            assert r.figures.bits_dram_write == expect, (residency, r.name)
        if not resident:
            assert wg["critic1.fc2"].figures.bits_dram_write == 8192


def test_a_sweep_point_whose_weights_exactly_fill_the_sram_fits(tmp_path):
    """The sweep's fits_in_sram column is stored bytes <= the weight SRAM, as simulate's: the dense
    8-bit actor (69120 bytes) fits a 69120-byte weight buffer, not a 69116-byte one."""
    from sweeps.config import parse_config
    from sweeps.evaluate import evaluate_point
    from sweeps.grid import plan

    wl = synthetic_td3_workload(11, 3, "dense")
    wl.meta.update(env="Hopper-v5", sparsity="dense")
    save_workload(wl, tmp_path / "w.nmw")
    designs = []
    for cap in (69120, 69116):
        data = yaml.safe_load(data_path("designs", "edge_ws.yaml").read_text())
        data["name"] = f"edge_{cap}"
        data["storage"][1]["capacity_bytes"] = cap
        (tmp_path / f"edge_{cap}.yaml").write_text(yaml.safe_dump(data))
        designs.append(str(tmp_path / f"edge_{cap}.yaml"))
    cfg = parse_config({"workloads": [str(tmp_path / "w.nmw")], "patterns": ["dense"], "bits": [8],
                        "designs": designs, "scenarios": [{"scenario": "inference", "batch": 1}]}, base=tmp_path)
    rows = {r["design"]: r for r in map(evaluate_point, plan(cfg).points())}
    assert rows["edge_69120"]["model_bytes"] == 69120 and rows["edge_69120"]["fits_in_sram"]
    assert not rows["edge_69116"]["fits_in_sram"]


def test_a_sweep_rows_energy_per_sample_is_its_energy_over_the_batch(tmp_path):
    """energy_per_sample_pj = energy_pj / batch, on an accelerator row and on a GPU row."""
    from sweeps.config import parse_config
    from sweeps.evaluate import evaluate_point
    from sweeps.grid import plan

    wl = synthetic_td3_workload(11, 3, "dense")
    wl.meta.update(env="Hopper-v5", sparsity="dense")
    save_workload(wl, tmp_path / "w.nmw")
    cfg = parse_config({"workloads": [str(tmp_path / "w.nmw")], "patterns": ["dense"], "bits": [8],
                        "designs": ["edge_ws"], "gpus": ["h100_sxm"],
                        "scenarios": [{"scenario": "inference", "batch": 4}]}, base=tmp_path)
    rows = {r["design"]: r for r in map(evaluate_point, plan(cfg).points())}
    assert set(rows) == {"edge_ws", "h100_sxm"}
    for r in rows.values():
        assert r["batch"] == 4 and r["energy_pj"] > 0
        assert r["energy_per_sample_pj"] == pytest.approx(r["energy_pj"] / 4, rel=1e-12), r["design"]


def test_simulate_reloads_a_design_file_replaced_by_one_of_the_same_size_and_mtime(tmp_path, monkeypatch):
    """simulate() parses a file once per file: a design file swapped for another of the same
    size and mtime (a rename over it) is another file, and so is a relative path met from
    another folder."""
    wl = synthetic_td3_workload(8, 3, "2:4", seed=0)
    text = data_path("designs", "edge_ws.yaml").read_text()
    clock = yaml.safe_load(text)["clock_mhz"]
    fast = text.replace(f"clock_mhz: {clock}", f"clock_mhz: {clock * 2}")
    assert fast != text
    slow = text.replace(f"clock_mhz: {clock}", f"clock_mhz: {clock}".ljust(len(f"clock_mhz: {clock * 2}")))
    assert len(slow) == len(fast)
    path, other = tmp_path / "d.yaml", tmp_path / "e.yaml"
    path.write_text(fast)
    assert hwmodel.simulate(wl, str(path)).clock_hz == clock * 2e6
    other.write_text(slow)
    st = path.stat()
    os.utime(other, ns=(st.st_atime_ns, st.st_mtime_ns))
    other.replace(path)
    assert (path.stat().st_size, path.stat().st_mtime_ns) == (st.st_size, st.st_mtime_ns)
    assert hwmodel.simulate(wl, str(path)).clock_hz == clock * 1e6
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "a" / "d.yaml").write_text(fast)
    (tmp_path / "b" / "d.yaml").write_text(slow)
    monkeypatch.chdir(tmp_path / "a")
    assert hwmodel.simulate(wl, "d.yaml").clock_hz == clock * 2e6
    monkeypatch.chdir(tmp_path / "b")
    assert hwmodel.simulate(wl, "d.yaml").clock_hz == clock * 1e6


def test_simulate_reads_a_gpu_spec_file_again_once_it_is_edited(tmp_path):
    """A GPU spec file given as the design is reused only while it is the same file, as a design
    file is: its memo keyed on the path alone, an edited memory bandwidth kept the old figures."""
    wl = synthetic_td3_workload(8, 3, "2:4", seed=0)
    text = data_path("gpus", "h100_sxm.yaml").read_text()
    path = tmp_path / "my_gpu.yaml"
    path.write_text(text)
    kw = dict(bits=16, batch=256, scenario="train_step")
    fast = hwmodel.simulate(wl, str(path), **kw).total.latency_s
    line = next(x for x in text.splitlines() if x.startswith("memory_bytes_per_s:"))
    bw = float(line.split(":", 1)[1])
    slow_text = text.replace(line, f"memory_bytes_per_s: {bw / 10!r}", 1)
    assert slow_text != text
    path.write_text(slow_text)
    slow = hwmodel.simulate(wl, str(path), **kw).total.latency_s
    assert slow > fast
    path.write_text(text)
    assert hwmodel.simulate(wl, str(path), **kw).total.latency_s == fast


@pytest.mark.parametrize("pattern", ["2:4", "1:3", "3:6", "5:12", "7:33"])
def test_stored_weights_carry_enough_index_bits_to_name_a_slot_of_any_m(pattern):
    """An N:M slot's index must name one of M positions: the smallest b with 2**b >= M bits
    (3 for M = 6, not floor(log2 6) = 2). Stored bits = slots x (weight bits + b), slots =
    outputs x k_compressed(K, N, M), summed over the layers the inference runs; read cold, the
    GEMMs fetch exactly those bits from DRAM (the size report and the traffic agree)."""
    from hwmodel.cycles import k_compressed

    n, m = (int(x) for x in pattern.split(":"))
    b = next(b for b in range(8) if 2 ** b >= m)
    wl = synthetic_td3_workload(11, 3, pattern)
    res = hwmodel.simulate(wl, "scalesim_default_ws", bits=8)  # layer-wise N:M up to M = 64
    ran = {r.name for r in res.layers}
    slots = sum(layer.out_features * k_compressed(layer.in_features, n, m) for layer in wl.layers if layer.name in ran)
    assert ran and res.extra["bytes_weights_stored"] * 8 == slots * (8 + b)
    # Read cold, the same weights, index bits included, come from DRAM on top of the resident run's traffic.
    cold = hwmodel.simulate(wl, "scalesim_default_ws", bits=8, residency="cold")
    assert res.extra["weights_resident"]
    assert cold.total.bits_dram_read - res.total.bits_dram_read == pytest.approx(slots * (8 + b), rel=1e-12)


def test_per_network_dense_figures_and_ratios_are_sums_over_its_layers():
    """``to_dict()['networks']``: a network's dense cycles and energy are the sums of its layers'
    dense runs (a layer without one counts as itself), and its speedup / energy ratio are dense over
    sparse of those sums, recomputed here layer by layer; a 2:4 workload on a 2:4 design is faster."""
    res = hwmodel.simulate(synthetic_td3_workload(11, 3, "2:4"), "edge_ws", batch=8, scenario="train_step")
    nets = res.to_dict()["networks"]
    assert set(nets) == {r.network for r in res.layers} and len(nets) > 1
    for name, row in nets.items():
        mine = [r for r in res.layers if r.network == name]
        cyc = sum(r.figures.cycles for r in mine)
        en = sum(r.figures.energy_pj for r in mine)
        dcyc = sum((r.dense or r.figures).cycles for r in mine)
        den = sum((r.dense or r.figures).energy_pj for r in mine)
        assert row["cycles"] == pytest.approx(cyc, rel=1e-12)
        assert row["dense_cycles"] == pytest.approx(dcyc, rel=1e-12)
        assert row["dense_energy_pj"] == pytest.approx(den, rel=1e-12)
        assert row["speedup_vs_dense"] == pytest.approx(dcyc / cyc, rel=1e-12)
        assert row["energy_ratio_vs_dense"] == pytest.approx(en / den, rel=1e-12)
    assert nets["actor"]["speedup_vs_dense"] > 1
