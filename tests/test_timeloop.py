"""nmlab export-timeloop: the files parse as YAML, carry the layer's shape, N:M density and
format, and an ERT whose energies times our action counts give back our model's energies."""

from __future__ import annotations

import math

import pytest
import yaml

import hwmodel
from hwmodel.design import load_design
from hwmodel.energy import energy_table
from hwmodel.errors import NmlabError
from hwmodel.timeloop import DRAM_WIDTH_BITS, FILES, export_timeloop
from hwmodel.workload import Workload, save_workload, synthetic_td3_workload


def load_all(folder):
    return {name: yaml.safe_load((folder / name).read_text()) for name in FILES}


def ert_energy(ert, component, action):
    for table in ert["ERT"]["tables"]:
        if table["name"].split(".", 1)[1].split("[")[0] == component:
            return next(a["energy"] for a in table["actions"] if a["name"] == action)
    raise KeyError(component)


@pytest.fixture(scope="module")
def wl_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("wl") / "hopper_1of8.nmw"
    save_workload(synthetic_td3_workload(11, 3, "1:8", seed=3), path)
    return path


@pytest.mark.parametrize("design, pattern, hw, batch", [
    ("edge_ws", "2:4", "2:4", 1),
    ("edge_ws", "1:8", "1:4", 4),        # 1:8 runs on the 1:4 the edge design supports
    ("stc_hbm", "2:4", "2:4", 256),
    ("flex_nm", "1:4", None, 1),
    ("scalesim_default_ws", "2:8", "2:8", 16),
])
def test_export_carries_the_point(tmp_path, design, pattern, hw, batch):
    wl = synthetic_td3_workload(17, 6, pattern, seed=1)
    path = tmp_path / "w.nmw"
    save_workload(wl, path)
    out = export_timeloop(design, path, "actor.fc2", tmp_path / "tl", batch=batch, bits=8)
    assert sorted(p.name for p in out.iterdir()) == sorted(FILES)
    docs = load_all(out)
    d = load_design(design)
    layer = next(x for x in wl.layers if x.name == "actor.fc2")
    ref = hwmodel.simulate(Workload([layer]), d, batch=batch, bits=8, with_dense=False).layers[0]
    point = docs["nmlab_point.yaml"]["nmlab_point"]
    assert point["hw_pattern"] == ref.hw_pattern
    if hw is not None:
        assert ref.hw_pattern == hw
    n, m = map(int, ref.hw_pattern.split(":"))

    # problem: the GEMM shape and the weight density the hardware runs
    prob = docs["problem.yaml"]["problem"]
    assert prob["version"] == "0.4"
    assert {k: prob["instance"][k] for k in "MKN"} == {"M": batch, "K": layer.in_features, "N": layer.out_features}
    dens = prob["instance"]["densities"]["Weights"]
    assert dens["distribution"] == "fixed_structured"
    k = layer.in_features
    if design != "flex_nm":    # uniform N: n per full group of m, min(n, K mod m) in the last one
        assert dens["density"] == pytest.approx((n * (k // m) + min(n, k % m)) / k)
    assert dens["density"] == pytest.approx(ref.figures.macs_issued / ref.figures.macs_dense, abs=1e-6)
    assert point["weight_density_real_mask"] == pytest.approx(layer.density, abs=1e-6)

    # sparse optimizations: CP rank with ceil(log2 m) metadata bits at the weight SRAM
    targets = docs["sparse_opt.yaml"]["sparse_optimizations"]["targets"]
    wsram = d.sram_for("metadata").name
    fmt = next(t for t in targets if t["target"] == wsram)["representation_format"]["data_spaces"][0]
    assert fmt["name"] == "Weights"
    assert fmt["ranks"][-1]["format"] == "CP" and fmt["ranks"][-1]["metadata_word_bits"] == math.ceil(math.log2(m))

    # architecture: the array and the storage levels of the design
    local = docs["arch.yaml"]["architecture"]["subtree"][0]["local"]
    mac = local[-1]
    assert mac["name"] == f"mac[1..{d.compute.rows * d.compute.cols}]"
    assert (mac["attributes"]["meshX"], mac["attributes"]["meshY"]) == (d.compute.cols, d.compute.rows)
    assert [c["name"].split("[")[0] for c in local[:-1]] == [s.name for s in d.storage]
    for c, s in zip(local, d.storage):
        if s.cls == "sram":
            assert c["attributes"]["depth"] * c["attributes"]["width"] == s.capacity_bytes * 8

    # constraints: each on-chip level keeps the operands the design says it holds
    cons = docs["constraints.yaml"]["architecture_constraints"]["targets"]
    names = {"weights": "Weights", "inputs": "Inputs", "outputs": "Outputs"}
    for s in d.storage[1:]:
        entry = next(c for c in cons if c["target"] == s.name and c["type"] == "dataspace")
        assert set(entry["keep"]) == {names[h] for h in s.holds if h in names}
        assert set(entry["keep"]) | set(entry["bypass"]) == set(names.values())
    assert sum(c["type"] == "spatial" for c in cons) == 1

    # ERT x our action counts == our energies
    ert = docs["ERT.yaml"]
    f = ref.figures
    et = energy_table(d)
    compute = ert_energy(ert, "mac", "compute")
    assert compute == pytest.approx(et.mac_pj["int8"] + et.mux_pj(m, 8))
    assert f.macs_issued * compute == pytest.approx(f.energy_mac_pj + f.energy_mux_pj)
    dram = ert_energy(ert, d.dram.name, "read")
    assert dram == pytest.approx(et.dram_pj_per_bit * DRAM_WIDTH_BITS)
    assert (f.bits_dram_read + f.bits_dram_write) / DRAM_WIDTH_BITS * dram == pytest.approx(f.energy_dram_pj)
    meta = d.sram_for("metadata")
    assert ert_energy(ert, meta.name, "metadata_read") / meta.word_bits * f.bits_metadata == pytest.approx(
        f.energy_metadata_pj)
    for s in d.srams:
        assert ert_energy(ert, s.name, "read") == pytest.approx(et.sram[s.name].read_pj_per_bit * s.word_bits)
        assert ert_energy(ert, s.name, "write") == pytest.approx(et.sram[s.name].write_pj_per_bit * s.word_bits)
    leak_per_cycle = sum(ert_energy(ert, s.name, "leak") for s in d.srams)
    assert leak_per_cycle * f.cycles == pytest.approx(f.energy_leakage_pj)
    # and the point file repeats our figures
    assert point["figures"]["cycles"] == pytest.approx(f.cycles)
    assert point["figures"]["energy_pj"] == pytest.approx(f.energy_pj)


def test_flexible_layer_with_one_full_row_exports_its_sparsity(tmp_path):
    """flex_nm runs each row at its own N: one row with a full group runs at 4 of 4 (hw_pattern
    4:4) while the other 63 run at 1:4; nmlab charges metadata and muxes for the 1.05 average,
    so the export must carry that density, the 2-bit indices and the mux, not a dense layer."""
    import numpy as np

    from hwmodel.workload import Layer

    mask = np.zeros((64, 64), dtype=bool)
    mask[:, ::4] = True
    mask[0, :4] = True
    wl = Workload([Layer("actor.fc1", "actor", 64, 64, "unstructured", mask)])
    ref = hwmodel.simulate(wl, "flex_nm", with_dense=False).layers[0]
    f = ref.figures
    assert ref.hw_pattern == "4:4" and f.macs_issued < f.macs_dense and f.bits_metadata > 0  # run sparse
    docs = load_all(export_timeloop("flex_nm", wl, "actor.fc1", tmp_path / "tl"))
    dens = docs["problem.yaml"]["problem"]["instance"]["densities"]["Weights"]
    assert dens["density"] == pytest.approx(f.macs_issued / f.macs_dense, abs=1e-6)
    d = load_design("flex_nm")
    targets = docs["sparse_opt.yaml"]["sparse_optimizations"]["targets"]
    fmt = next(t for t in targets if t["target"] == d.sram_for("metadata").name)["representation_format"]
    assert fmt["data_spaces"][0]["ranks"][-1]["metadata_word_bits"] == 2
    assert docs["nmlab_point.yaml"]["nmlab_point"]["metadata_word_bits"] == 2
    compute = ert_energy(docs["ERT.yaml"], "mac", "compute")
    assert f.macs_issued * compute == pytest.approx(f.energy_mac_pj + f.energy_mux_pj)


def test_dense_layer_has_no_sparse_format(tmp_path):
    wl = synthetic_td3_workload(11, 3, "dense")
    save_workload(wl, tmp_path / "w.nmw")
    docs = load_all(export_timeloop("edge_ws", tmp_path / "w.nmw", "actor.fc1", tmp_path / "tl"))
    assert "densities" not in docs["problem.yaml"]["problem"]["instance"]
    assert docs["sparse_opt.yaml"]["sparse_optimizations"]["targets"] == []
    for c in docs["arch.yaml"]["architecture"]["subtree"][0]["local"]:
        assert not any(k.startswith("metadata") for k in c["attributes"])
    assert docs["nmlab_point.yaml"]["nmlab_point"]["hw_pattern"] == "dense"


def test_write_is_atomic_and_never_clobbers_other_files(tmp_path, wl_path, monkeypatch):
    import hwmodel.timeloop as tl

    out = tmp_path / "tl"
    calls = {"n": 0}
    real_fsync = tl.os.fsync

    def failing_fsync(fd):
        calls["n"] += 1
        if calls["n"] == 3:
            raise OSError("disk full")
        real_fsync(fd)

    monkeypatch.setattr(tl.os, "fsync", failing_fsync)
    with pytest.raises(OSError, match="disk full"):
        export_timeloop("edge_ws", wl_path, "actor.fc1", out)
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []          # no temporary folder left behind
    monkeypatch.setattr(tl.os, "fsync", real_fsync)

    export_timeloop("edge_ws", wl_path, "actor.fc1", out)
    first = (out / "problem.yaml").read_text()
    export_timeloop("edge_ws", wl_path, "actor.fc1", out, batch=7)   # replaces a previous export
    assert (out / "problem.yaml").read_text() != first
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tl"]

    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    with pytest.raises(NmlabError, match="holds other files"):
        export_timeloop("edge_ws", wl_path, "actor.fc1", mine)
    assert [p.name for p in mine.iterdir()] == ["notes.txt"]

    # A Timeloop folder of one's own (its files named as the export's) was replaced by the export.
    own = tmp_path / "own"
    own.mkdir()
    (own / "arch.yaml").write_text("architecture:\n  version: 0.4\n")
    (own / "problem.yaml").write_text("# Written by hand\nproblem: {}\n")
    with pytest.raises(NmlabError, match=r"^--out .*own: arch.yaml is not a file nmlab export-timeloop wrote "
                                         r"\(it would be replaced\); choose a new folder$"):
        export_timeloop("edge_ws", wl_path, "actor.fc1", own)
    assert sorted(p.name for p in own.iterdir()) == ["arch.yaml", "problem.yaml"]
    assert (own / "arch.yaml").read_text() == "architecture:\n  version: 0.4\n"
    (own / "arch.yaml").unlink()
    with pytest.raises(NmlabError, match="problem.yaml is not a file nmlab export-timeloop wrote"):
        export_timeloop("edge_ws", wl_path, "actor.fc1", own)
    assert (own / "problem.yaml").read_text() == "# Written by hand\nproblem: {}\n"


def test_cli(tmp_path, wl_path, capsys):
    from hwmodel.cli import main

    out = tmp_path / "tl"
    assert main(["export-timeloop", "--design", "edge_ws", "--workload", str(wl_path), "--layer", "critic1.fc1",
                 "--out", str(out), "--batch", "3"]) == 0
    assert str(out) in capsys.readouterr().out
    prob = yaml.safe_load((out / "problem.yaml").read_text())["problem"]["instance"]
    assert (prob["M"], prob["K"], prob["N"]) == (3, 14, 256)
    for argv, what in ((["--layer", "nope"], "--layer 'nope'"), (["--layer", "actor.fc1", "--bits", "3"], "bits"),
                       (["--layer", "actor.fc1", "--batch", "0"], "batch")):
        assert main(["export-timeloop", "--design", "edge_ws", "--workload", str(wl_path),
                     "--out", str(tmp_path / "x"), *argv]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and what in err[0], err
    assert not (tmp_path / "x").exists()


def test_architecture_attributes_by_hand():
    """stc_hbm: HBM2 at 256 GB/s and 1410 MHz is 256e9 / 1410e6 bytes = 90.78 16-bit words per cycle
    (Timeloop counts words); the 4 MB global buffer of 512-bit words is 65536 deep and double
    buffered; its 16 bits (fp16) and flex_nm's (bf16) run on an fpmac, int8 on an intmac."""
    from hwmodel.design import load_design
    from hwmodel.timeloop import architecture

    d = load_design("stc_hbm")
    local = architecture(d, 16, 2)["architecture"]["subtree"][0]["local"]
    by_name = {c["name"].split("[")[0]: c for c in local}
    hbm = by_name["HBM"]["attributes"]
    assert hbm["datawidth"] == 16
    assert hbm["shared_bandwidth"] == pytest.approx(256e9 / 1410e6 * 8 / 16, abs=1e-6)
    gb = by_name["GlobalBuffer"]["attributes"]
    assert (gb["depth"], gb["width"], gb["multiple_buffering"], gb["n_banks"]) == (65536, 512, 2, 16)
    assert gb["metadata_datawidth"] == 2  # the metadata level carries the N:M index width
    assert "metadata_datawidth" not in by_name["SharedMem"]["attributes"]
    assert by_name["mac"]["class"] == "fpmac" and d.datatype_for(16) == "fp16"
    flex = load_design("flex_nm")
    assert flex.datatype_for(16) == "bf16" and architecture(flex, 16, 2)["architecture"]["subtree"][0]["local"][-1]["class"] == "fpmac"
    assert architecture(d, 8, 2)["architecture"]["subtree"][0]["local"][-1]["class"] == "intmac"
    assert architecture(d, 8, 2)["architecture"]["subtree"][0]["local"][0]["attributes"]["shared_bandwidth"] == \
        pytest.approx(256e9 / 1410e6, abs=1e-6)


def test_a_level_named_with_a_dot_is_refused_before_anything_is_written(tmp_path, wl_path, capsys):
    """A storage level named ``W.x`` (a legal design name) was exported as ERT table ``system.W.x[1..1]``,
    which Accelergy and nmlab import-timeloop read at the dots (``no component 'x' in the arch``): the
    export refuses it in one line naming the level."""
    from hwmodel.cli import main
    from hwmodel.io import data_path

    design = tmp_path / "dotted.yaml"
    design.write_text(data_path("designs", "edge_ws.yaml").read_text().replace("WeightBuffer", "W.x"))
    assert main(["export-timeloop", "--design", str(design), "--workload", str(wl_path), "--layer", "actor.fc1",
                 "--out", str(tmp_path / "tl")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "storage[1].name: 'W.x'" in err[0] and "'.'" in err[0], err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dotted.yaml"]
    # A name Timeloop can take, spaces and all, is exported and read back.
    design.write_text(data_path("designs", "edge_ws.yaml").read_text().replace("WeightBuffer", "Weight Buffer µ"))
    assert main(["export-timeloop", "--design", str(design), "--workload", str(wl_path), "--layer", "actor.fc1",
                 "--out", str(tmp_path / "tl")]) == 0
    tl = tmp_path / "tl"
    assert main(["import-timeloop", str(tl / "arch.yaml"), "--ert", str(tl / "ERT.yaml"), "--problem",
                 str(tl / "problem.yaml"), "--out", str(tmp_path / "back.yaml")]) == 0
    assert any(lv["name"] == "Weight Buffer µ" for lv in yaml.safe_load((tmp_path / "back.yaml").read_text())["storage"])
