"""Energy: action counts x per-action energies, CACTI 7 answers and their cache, technology scaling."""

import json
import math

import pytest

import hwmodel
from hwmodel import cacti
from hwmodel.design import load_design, parse_design
from hwmodel.energy import constants, energy_factor, energy_table
from hwmodel.io import data_path
from hwmodel.result import ENERGY_COMPONENTS
from hwmodel.workload import synthetic_td3_workload
from tests.test_design import design_data


def test_technology_factors_hit_the_published_points_and_are_monotonic():
    assert energy_factor(45) == pytest.approx(1.0)
    assert energy_factor(16) == pytest.approx(0.17)
    assert energy_factor(7) == pytest.approx(0.094)
    nodes = [90, 65, 45, 32, 22, 16, 10, 7, 5]
    facts = [energy_factor(n) for n in nodes]
    assert all(a > b for a, b in zip(facts, facts[1:]))


def test_energy_constants_cite_their_sources():
    text = data_path("energy.yaml").read_text()
    assert "Horowitz" in text and "Stillmaker" in text and "Accelergy" in text
    c = constants()
    assert c["dram_pj_per_bit"]["HBM2"] == 3.9 and c["dram_pj_per_bit"]["LPDDR4"] == 8.0


def test_components_are_action_counts_times_energies_and_add_up():
    d = load_design("edge_ws")
    res = hwmodel.simulate(synthetic_td3_workload(11, 3, "2:4"), d, batch=8, scenario="train_step")
    et = energy_table(d)
    f22 = energy_factor(22)
    for r in res.layers:
        f = r.figures
        assert f.energy_dram_pj == pytest.approx((f.bits_dram_read + f.bits_dram_write) * 8.0)
        if r.phase not in ("optimizer", "polyak"):
            assert f.energy_mac_pj == pytest.approx(f.macs_issued * 0.30 * f22)
        assert f.energy_leakage_pj == pytest.approx(et.leakage_mw * 1e-3 * f.latency_s * 1e12)
        assert (f.energy_mux_pj > 0) == (r.hw_pattern not in ("dense",))
    doc = res.to_dict()
    s = doc["summary"]
    # The seven components spelled out: a sum over ENERGY_COMPONENTS is energy_pj's own
    # definition, so it passed with a component dropped from that tuple.
    assert ENERGY_COMPONENTS == ("mac", "sram", "reg", "metadata", "mux", "dram", "leakage")
    assert s["energy_pj"] == pytest.approx(s["energy_mac_pj"] + s["energy_sram_pj"] + s["energy_reg_pj"]
                                           + s["energy_metadata_pj"] + s["energy_mux_pj"] + s["energy_dram_pj"]
                                           + s["energy_leakage_pj"])
    assert s["energy_pj"] == pytest.approx(sum(x["energy_pj"] for x in doc["layers"]))
    assert s["energy_pj"] == pytest.approx(sum(x["energy_pj"] for x in doc["networks"].values()))
    assert all(s[f"energy_{c}_pj"] > 0 for c in ENERGY_COMPONENTS)


@pytest.mark.parametrize("scenario", ["inference", "train_step"])
def test_sram_reg_mux_metadata_energy_are_action_counts_times_energies(scenario):
    """Each GEMM's SRAM, register, mux and metadata energy from its own action counts, with the
    design file's energy section making every SRAM level cost the same (so per-level traffic
    need not be known): SRAM = bits read x read pJ + bits written x write pJ, register = issued
    MACs x (A + B + 2 x accumulator bits) x pJ/bit, 2:4 mux = issued MACs x 3 stages x A bits x
    pJ, metadata = index bits read x read pJ. Distinct read and write costs catch a dropped term."""
    data = design_data("edge_ws")
    level = {"read_pj_per_bit": 0.25, "write_pj_per_bit": 0.5}
    data["energy"] = {"register_pj_per_bit": 0.01, "mux2_pj_per_bit": 0.002,
                      "sram": {"WeightBuffer": level, "ActBuffer": level}}
    d = parse_design(data)
    res = hwmodel.simulate(synthetic_td3_workload(11, 3, "2:4", weight_bits=8), d, batch=8, scenario=scenario)
    gemms = [r for r in res.layers if r.phase in ("forward", "backward_data", "backward_weight")]
    assert len(gemms) >= 3 and any(r.hw_pattern == "2:4" for r in gemms)
    acc = d.compute.accumulator_bits
    for r in gemms:
        f = r.figures
        assert f.macs_issued > 0 and f.bits_sram_write > 0
        assert f.energy_sram_pj == pytest.approx(f.bits_sram_read * 0.25 + f.bits_sram_write * 0.5), r.name
        assert f.energy_reg_pj == pytest.approx(f.macs_issued * (8 + 8 + 2 * acc) * 0.01), r.name
        assert f.energy_metadata_pj == pytest.approx(f.bits_metadata * 0.25), r.name
        mux = f.macs_issued * (4 - 1) * 8 * 0.002 if r.hw_pattern == "2:4" else 0.0
        assert f.energy_mux_pj == pytest.approx(mux), r.name


def test_activation_bits_widen_activations_not_weights():
    """compute.activation_bits: 8 with 4-bit weights: weights are stored at 4 bits, each MAC's
    register traffic moves an 8-bit activation and a 4-bit weight (8 + 4 + 2 x 24 accumulator
    bits), and the first layer reads its 8-bit inputs from DRAM (the weights are resident)."""
    data = design_data("edge_ws")
    data["compute"]["activation_bits"] = 8
    d = parse_design(data)
    et = energy_table(d)
    res = hwmodel.simulate(synthetic_td3_workload(11, 3, "dense", weight_bits=4), d, batch=8, bits=4)
    assert [r.name for r in res.layers] == ["actor.fc1", "actor.fc2", "actor.fc3"]
    for r in res.layers:
        f = r.figures
        assert f.bytes_weights == r.k * r.n * 4 / 8, r.name
        assert f.energy_reg_pj == pytest.approx(f.macs_issued * (8 + 4 + 2 * 24) * et.reg_pj_per_bit), r.name
    fc1 = res.layers[0]
    assert fc1.figures.bits_dram_read == 8 * 11 * 8


def test_sparsity_halves_mac_energy_and_pays_for_muxes_and_metadata():
    res = hwmodel.simulate(synthetic_td3_workload(11, 3, "2:4"), "edge_ws", batch=16)
    fc2 = next(r for r in res.layers if r.name == "actor.fc2")
    assert fc2.figures.energy_mac_pj * 2 == pytest.approx(fc2.dense.energy_mac_pj)
    assert fc2.dense.energy_mux_pj == 0 and fc2.dense.energy_metadata_pj == 0
    assert fc2.figures.energy_mux_pj > 0 and fc2.figures.energy_metadata_pj > 0


def test_dram_type_sets_pj_per_bit():
    data = design_data()
    wl = synthetic_td3_workload(11, 3, "2:4")
    lp = hwmodel.simulate(wl, parse_design(data), residency="stream")
    data["storage"][0]["type"] = "LPDDR"
    old = hwmodel.simulate(wl, parse_design(data), residency="stream")
    assert old.total.bits_dram_read == lp.total.bits_dram_read
    assert old.total.energy_dram_pj == pytest.approx(lp.total.energy_dram_pj * 40 / 8)


def test_node_outside_cacti_is_scaled_and_has_no_area():
    d = load_design("stc_hbm")  # 7 nm: CACTI runs at 22 nm
    et = energy_table(d)
    assert et.area_mm2 is None
    s = d.srams[0]
    raw = cacti.sram_cost(s.capacity_bytes, s.word_bits, s.banks, s.read_ports, s.write_ports, 7, s.cell_type)
    assert raw.cacti_nm == 22
    k = energy_factor(7) / energy_factor(22)
    assert et.sram[s.name].read_pj_per_bit == pytest.approx(raw.read_pj * k / s.word_bits)
    assert energy_table(load_design("edge_ws")).area_mm2 > 0


@pytest.mark.parametrize("tech_nm, node", [(40, 40), (28, 28), (22, 22), (90, 90), (40.4, 40), (7, 22), (120, 90)])
def test_cacti_runs_at_the_designs_own_node_within_22_to_90(tech_nm, node):
    """CACTI 7 interpolates between its technology files: every whole nm from 22 to 90 is its own
    node (40 nm was run at 45 nm, and its area then reported unknown)."""
    assert cacti.cacti_node(tech_nm) == node


def test_area_unknown_note_says_which_node_and_what_cacti_covers():
    assert cacti.area_unknown_note(7) == "unknown: CACTI 7 covers 22-90 nm, not 7 nm (SRAM energies scaled from CACTI at 22 nm)"
    assert cacti.area_unknown_note(120) == ("unknown: CACTI 7 covers 22-90 nm, not 120 nm "
                                            "(SRAM energies scaled from CACTI at 90 nm)")
    assert cacti.area_unknown_note(40.4) == ("unknown: CACTI 7 takes whole nm: 40.4 nm ran at 40 nm "
                                             "(SRAM energies scaled from CACTI at 40 nm)")
    res = hwmodel.simulate(synthetic_td3_workload(11, 3, "2:4"), "stc_hbm")
    assert res.area_mm2 is None and res.extra["area_note"] == cacti.area_unknown_note(7)


def test_cacti_cache_equals_a_fresh_cacti_run():
    d = load_design("edge_ws")
    s = next(x for x in d.srams if x.name == "ActBuffer")
    node = cacti.cacti_node(d.technology_nm)
    key = cacti.cache_key(s.capacity_bytes, s.word_bits, s.banks, s.read_ports, s.write_ports, node, s.cell_type)
    shipped = json.loads(cacti.BUNDLED_CACHE.read_text())["entries"][key]
    fresh = cacti.run_cacti(s.capacity_bytes, s.word_bits, s.banks, s.read_ports, s.write_ports, node, s.cell_type)
    assert fresh.read_pj == pytest.approx(shipped["read_pj"], rel=1e-9)
    assert fresh.write_pj == pytest.approx(shipped["write_pj"], rel=1e-9)
    assert fresh.leakage_mw == pytest.approx(shipped["leakage_mw"], rel=1e-9)
    assert fresh.area_mm2 == pytest.approx(shipped["area_mm2"], rel=1e-9)


def test_bundled_cache_covers_every_bundled_design():
    from hwmodel.design import bundled_designs

    entries = json.loads(cacti.BUNDLED_CACHE.read_text())["entries"]
    for name in bundled_designs():
        d = load_design(name)
        for s in d.srams:
            key = cacti.cache_key(s.capacity_bytes, s.word_bits, s.banks, s.read_ports, s.write_ports,
                                  cacti.cacti_node(d.technology_nm), s.cell_type)
            assert key in entries, key


def test_new_sram_runs_cacti_into_the_user_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("NMLAB_CACHE_DIR", str(tmp_path))
    cost = cacti.sram_cost(8192, 64, 1, 1, 1, 45, "itrs-hp")
    entries = json.loads((tmp_path / "cacti_cache.json").read_text())["entries"]
    assert len(entries) == 1 and math.isclose(next(iter(entries.values()))["read_pj"], cost.read_pj)
    # CACTI's 8 KB / 64-bit / 45 nm read is within a factor 3 of Horowitz's 10 pJ figure.
    assert 3.0 < cost.read_pj < 30.0


def test_a_user_cache_entry_is_read_back_without_running_cacti(tmp_path, monkeypatch):
    """A new SRAM's answer saved to the user cache is what later processes read (no CACTI run)."""
    monkeypatch.setenv("NMLAB_CACHE_DIR", str(tmp_path))
    key = cacti.cache_key(4096, 32, 2, 1, 1, 45, "itrs-hp")
    cost = cacti.SramCost(read_pj=1.25, write_pj=2.5, leakage_mw=0.125, area_mm2=0.0625, cacti_nm=45, word_bits=32)
    cacti.save_entry(key, cost)
    monkeypatch.setattr(cacti, "_memory", {})  # a fresh process

    def no_cacti(*a, **k):
        raise AssertionError("CACTI ran for an SRAM the user cache holds")

    monkeypatch.setattr(cacti, "run_cacti", no_cacti)
    assert cacti.sram_cost(4096, 32, 2, 1, 1, 45, "itrs-hp") == cost


def test_sram_too_large_for_cacti_names_the_level(tmp_path, monkeypatch):
    """CACTI 7 reads an SRAM's size as a 32-bit int: at 2 GiB (within NMLAB_MAX_SRAM_BYTES) it
    answered 'Cache size must >=64'. The error must name the level and the real reason."""
    from hwmodel.errors import NmlabError

    monkeypatch.setenv("NMLAB_CACHE_DIR", str(tmp_path))
    data = design_data()
    i = next(i for i, s in enumerate(data["storage"]) if s["class"] == "sram")
    data["storage"][i].update(capacity_bytes=1 << 31, banks=1)
    d = parse_design(data)
    with pytest.raises(NmlabError) as info:
        energy_table(d)
    msg = str(info.value)
    assert f"storage[{i}].capacity_bytes" in msg and "2,147,483,648" in msg and "CACTI" in msg, msg
    assert "must >=64" not in msg and "\n" not in msg


def test_cacti_that_runs_too_long_is_one_error_line():
    """A CACTI run past its timeout is an NmlabError, not subprocess.TimeoutExpired."""
    from hwmodel.errors import NmlabError

    with pytest.raises(NmlabError, match="cacti: no result .* within 0.001 s"):
        cacti.run_cacti(1 << 20, 64, 1, 1, 1, 45, "itrs-hp", timeout_s=0.001)


def test_sram_cacti_cannot_model_names_the_level(tmp_path, monkeypatch):
    """A geometry CACTI 7 refuses (a 32-byte level: it needs 64 bytes a bank) was reported as
    'cacti: no result for 32 B, ...' without the key: the error now names storage[i]. A design
    file is refused such a level at load (test_design.py); a Design built past that check
    still gets the level named."""
    import dataclasses

    from hwmodel.errors import NmlabError

    monkeypatch.setenv("NMLAB_CACHE_DIR", str(tmp_path))
    data = design_data()
    data["storage"][1].update(capacity_bytes=32, banks=1, word_bits=64)
    with pytest.raises(NmlabError, match=r"storage\[1\]\.capacity_bytes: .*CACTI 7"):
        parse_design(data)
    d = parse_design(design_data())
    small = dataclasses.replace(d.storage[1], capacity_bytes=32, banks=1, word_bits=64)
    d = dataclasses.replace(d, storage=(d.storage[0], small, *d.storage[2:]))
    with pytest.raises(NmlabError) as info:
        energy_table(d)
    msg = str(info.value)
    assert msg.startswith("design 'edge_ws': storage[1] (WeightBuffer): cacti: no result for 32 B"), msg


def test_weight_gradient_multiplies_two_activation_operands():
    """In the weight-gradient GEMM dW = dY^T X both operands are activations: with
    compute.activation_bits 8 and 4-bit weights each MAC's register traffic is 8 + 8 + 2 x 24 bits,
    where the forward and backward-data GEMMs (activation x weight) move 8 + 4 + 2 x 24."""
    data = design_data("edge_ws")
    data["compute"]["activation_bits"] = 8
    d = parse_design(data)
    et = energy_table(d)
    res = hwmodel.simulate(synthetic_td3_workload(11, 3, "dense", weight_bits=4), d, batch=8, bits=4,
                           scenario="train_step")
    phases = set()
    for r in res.layers:
        if r.phase not in ("forward", "backward_data", "backward_weight"):
            continue
        phases.add(r.phase)
        per_mac = 8 + 8 + 2 * 24 if r.phase == "backward_weight" else 8 + 4 + 2 * 24
        assert r.figures.energy_reg_pj == pytest.approx(r.figures.macs_issued * per_mac * et.reg_pj_per_bit), r.name
    assert phases == {"forward", "backward_data", "backward_weight"}
