"""Design YAML loader: bundled designs load, and every bad key is a one-line error naming it."""

import copy

import pytest
import yaml

from hwmodel.design import bundled_designs, load_design, parse_design
from hwmodel.errors import NmlabError
from hwmodel.io import data_path


def design_data(name: str = "edge_ws") -> dict:
    """A bundled design's YAML as a dict, to edit and parse."""
    return yaml.safe_load(data_path("designs", f"{name}.yaml").read_text())


def test_bundled_designs_load_and_cover_the_required_kinds():
    names = set(bundled_designs())
    assert {"edge_ws", "stc_hbm", "flex_nm", "scalesim_default_ws"} <= names
    designs = {n: load_design(n) for n in names}
    assert designs["stc_hbm"].compute.kind == "tensor_core"
    assert [str(p) for p in designs["stc_hbm"].sparsity.candidates()] == ["2:4"]
    assert designs["stc_hbm"].dram.dram_type == "HBM2"
    assert designs["flex_nm"].sparsity.support == "flexible"
    assert designs["edge_ws"].dram.dram_type == "LPDDR4"
    assert 100_000 <= designs["edge_ws"].weight_sram_bytes() <= 512 * 1024


def test_scalesim_default_matches_its_cfg():
    d = load_design("scalesim_default_ws")
    assert (d.compute.kind, d.compute.dataflow, d.compute.rows, d.compute.cols) == ("systolic", "ws", 32, 32)
    assert {s.name: s.capacity_bytes for s in d.srams} == {"FilterSRAM": 65536, "IfmapSRAM": 65536, "OfmapSRAM": 65536}
    assert d.dram.bandwidth_bytes_per_cycle == 10


def test_load_by_path_and_unknown_name(tmp_path):
    p = tmp_path / "mine.yaml"
    p.write_text(yaml.safe_dump(design_data()))
    assert load_design(p).name == "edge_ws"
    with pytest.raises(NmlabError, match="no such file or bundled design"):
        load_design("no_such_design")


def _set(d: dict, path: list, value):
    for k in path[:-1]:
        d = d[k]
    if value is _DEL:
        del d[path[-1]]
    else:
        d[path[-1]] = value


_DEL = object()

BAD = [
    (["bogus"], 1, "bogus: unknown key"),
    (["version"], 7, "version: unknown version"),
    (["version"], _DEL, "version"),
    (["clock_mhz"], -5, "clock_mhz: must be >= 0.001"),
    (["clock_mhz"], "fast", "clock_mhz: must be a number"),
    (["technology_nm"], 1000, "technology_nm: must be between"),
    (["compute", "kind"], "gpu", "compute.kind: must be one of"),
    (["compute", "dataflow"], "is", "compute.dataflow: must be one of"),
    (["compute", "rows"], 0, "compute.rows: must be >= 1"),
    (["compute", "cols"], 2.5, "compute.cols: must be an integer"),
    (["compute", "datatypes"], {"int9": 1}, "compute.datatypes.int9: unknown datatype"),
    (["compute", "datatypes"], {"int8": 0}, "compute.datatypes.int8: must be >= 0.001"),
    (["compute", "colour"], "red", "compute.colour: unknown key"),
    (["compute", "tile_m"], 4, "compute.tile_m: only for kind tensor_core"),
    (["sparsity", "support"], "magic", "sparsity.support: must be one of"),
    (["sparsity", "patterns"], ["2:4", "5:4"], "sparsity.patterns[1]"),
    (["sparsity", "patterns"], ["4:4"], "sparsity.patterns[0]: must be a sparse"),
    (["sparsity", "patterns"], [], "sparsity.patterns: must be a non-empty list"),
    (["sparsity", "m"], 4, "sparsity.m: not used with support 'fixed'"),
    (["sparsity", "metadata_bits_per_cycle"], 0, "sparsity.metadata_bits_per_cycle: must be >= 0.001"),
    (["storage"], [], "storage: must be a non-empty list"),
    (["storage", 0, "type"], "SDRAM9", "storage[0].type: must be one of"),
    (["storage", 0, "bandwidth_gb_s"], _DEL, "storage[0].bandwidth_gb_s: give exactly one"),
    (["storage", 0, "latency_ns"], -1, "storage[0].latency_ns: must be >= 0"),
    # Both ways of giving one figure: which one holds would be a guess.
    (["storage", 0, "bandwidth_bytes_per_cycle"], 10, "storage[0].bandwidth_gb_s: give exactly one"),
    (["storage", 0, "latency_cycles"], 5, "storage[0].latency_ns: give latency_ns or latency_cycles, not both"),
    (["storage", 1, "word_bits"], (1 << 20) + 1, "storage[1].word_bits: must be <= 1,048,576"),  # the bound + 1
    (["storage", 1, "capacity_bytes"], 0, "storage[1].capacity_bytes: must be >= 1"),
    (["storage", 1, "capacity_bytes"], "big", "storage[1].capacity_bytes: must be an integer"),
    (["storage", 1, "word_bits"], 12, "storage[1].word_bits: must be a multiple of 8"),
    (["storage", 1, "banks"], 3, "storage[1].banks: must be a power of two"),
    # CACTI prices a level without a read (or write) port as a smaller array: refused, not priced.
    (["storage", 1, "read_ports"], 0, "storage[1].read_ports: must be >= 1, got 0"),
    (["storage", 1, "write_ports"], 0, "storage[1].write_ports: must be >= 1, got 0"),
    (["storage", 1, "read_ports"], -1, "storage[1].read_ports: must be >= 1, got -1"),
    (["storage", 1, "write_ports"], 1.5, "storage[1].write_ports: must be an integer"),
    (["storage", 1, "capacity_bytes"], 262146, "storage[1].banks: capacity_bytes 262146 is not divisible"),
    (["storage", 1, "holds"], ["weights", "biases"], "storage[1].holds[1]: must be one of"),
    (["storage", 1, "double_buffered"], "yes", "storage[1].double_buffered: must be true or false"),
    (["storage", 1, "cell_type"], "magic", "storage[1].cell_type: must be one of"),
    (["storage", 1, "class"], "flash", "storage[1].class: must be one of"),
    (["storage", 1, "type"], "LPDDR4", "storage[1].type: unknown key"),
    (["storage", 2, "name"], "WeightBuffer", "storage[2].name: duplicate level name"),
    (["storage", 2, "holds"], ["outputs"], "storage: no sram level holds inputs"),
]


@pytest.mark.parametrize("path,value,message", BAD, ids=[".".join(map(str, b[0])) + f"={b[1]!r}"[:20] for b in BAD])
def test_bad_design_key_is_one_line_error_naming_it(path, value, message):
    data = copy.deepcopy(design_data())
    _set(data, path, value)
    with pytest.raises(NmlabError) as info:
        parse_design(data)
    text = str(info.value)
    assert "\n" not in text
    assert text.startswith("design 'edge_ws': ")
    assert message in text


def test_tensor_core_rejects_dataflow_and_gets_a_pipeline_depth():
    data = design_data("stc_hbm")
    assert parse_design(data).compute.pipeline_depth == 6  # ceil(log2 16) + 2
    data["compute"]["dataflow"] = "ws"
    with pytest.raises(NmlabError, match="compute.dataflow: only for kind systolic"):
        parse_design(data)


def test_explicit_pipeline_depth_is_kept_even_zero():
    """pipeline_depth: 0 is allowed (min 0) but was silently replaced by the default
    ceil(log2 cols) + 2; a value the file gives is the value the model uses."""
    data = design_data("stc_hbm")
    for depth in (0, 1, 9):
        data["compute"]["pipeline_depth"] = depth
        assert parse_design(data).compute.pipeline_depth == depth


def test_datatype_for_bits():
    d = load_design("stc_hbm")
    assert d.datatype_for(16) == "fp16" and d.datatype_for(8) == "int8"
    with pytest.raises(NmlabError, match="compute.datatypes: no datatype of 32 bits"):
        d.datatype_for(32)


def test_an_over_long_design_or_gpu_name_is_a_one_line_error():
    # Path.is_file raises OSError on a name longer than the OS allows; a user's name must end in
    # the same one-line "no such file or bundled ..." error as any other unknown name.
    from sweeps.grid import _gpu_info

    name = "a" * 300
    with pytest.raises(NmlabError, match="no such file or bundled design"):
        load_design(name)
    with pytest.raises(NmlabError, match=r"gpus\[0\]"):
        _gpu_info(name, 0)


ENERGY_BAD = [
    ({"mac_pj": {"int8": -0.1}}, "energy.mac_pj.int8: must be >= 0"),
    ({"mac_pj": {"fp16": 1.0}}, "energy.mac_pj.fp16: not a datatype of compute.datatypes"),
    ({"mac_pj": {"int8": True}}, "energy.mac_pj.int8: must be a number"),
    ({"dram_pj_per_bit": float("nan")}, "energy.dram_pj_per_bit: must be a finite number"),
    ({"register_pj_per_bit": float("inf")}, "energy.register_pj_per_bit: must be a finite number"),
    ({"mux2_pj_per_bit": 1e7}, "energy.mux2_pj_per_bit: must be <= 1e+06"),
    ({"sram": {"PEReg": {"read_pj_per_bit": 1}}}, "energy.sram.PEReg: not an sram level"),
    ({"sram": {"Nowhere": {}}}, "energy.sram.Nowhere: not an sram level"),
    ({"sram": {"WeightBuffer": {"read": 1}}}, "energy.sram.WeightBuffer.read: unknown key"),
    ({"sram": {"WeightBuffer": {"leakage_mw": "lots"}}}, "energy.sram.WeightBuffer.leakage_mw: must be a number"),
    ({"sram": ["WeightBuffer"]}, "energy.sram: must be a mapping"),
    ({"adder_pj": 1}, "energy.adder_pj: unknown key"),
    ([1, 2], "energy: must be a mapping"),
    # an explicit null read as absent (nmlab's own) for these, while docs/hwmodel.md and mac_pj refuse it
    ({"dram_pj_per_bit": None}, "energy.dram_pj_per_bit: must be a number, got None"),
    ({"sram": {"WeightBuffer": {"read_pj_per_bit": None}}}, "energy.sram.WeightBuffer.read_pj_per_bit: must be a number"),
]


@pytest.mark.parametrize("value,message", ENERGY_BAD, ids=[m.split(":")[0] + str(i) for i, (_, m) in enumerate(ENERGY_BAD)])
def test_bad_energy_section_is_one_line_error_naming_it(value, message):
    data = copy.deepcopy(design_data())
    data["energy"] = value
    with pytest.raises(NmlabError) as info:
        parse_design(data)
    text = str(info.value)
    assert "\n" not in text and text.startswith("design 'edge_ws': ") and message in text, text


def test_energy_section_replaces_only_the_entries_it_gives():
    """energy_table takes the section's figures as given (not node-scaled); every other entry,
    and a level's SRAM area, stay nmlab's; no section is nmlab's table unchanged."""
    from hwmodel.energy import energy_table

    data = copy.deepcopy(design_data())
    own = energy_table(parse_design(copy.deepcopy(data)))
    data["energy"] = {"mac_pj": {"int4": 0.5}, "dram_pj_per_bit": 0.0,
                      "sram": {"ActBuffer": {"write_pj_per_bit": 0.25, "leakage_mw": 2.0}}}
    got = energy_table(parse_design(data))
    assert got.mac_pj == {"int8": own.mac_pj["int8"], "int4": 0.5}
    assert (got.dram_pj_per_bit, got.reg_pj_per_bit, got.mux2_pj_per_bit) == (0.0, own.reg_pj_per_bit,
                                                                               own.mux2_pj_per_bit)
    assert got.sram["WeightBuffer"] == own.sram["WeightBuffer"]
    a, b = got.sram["ActBuffer"], own.sram["ActBuffer"]
    assert (a.read_pj_per_bit, a.write_pj_per_bit, a.leakage_mw, a.area_mm2) == (b.read_pj_per_bit, 0.25, 2.0,
                                                                               b.area_mm2)
    assert got.leakage_mw == own.sram["WeightBuffer"].leakage_mw + 2.0
    assert parse_design(design_data()).energy is None


@pytest.mark.parametrize("path", [["name"], ["storage", 1, "name"]])
@pytest.mark.parametrize("value", ["x" * 100_000, "Weight\nBuffer", "Buf\x1b[2Jfer", "", "a" * 65])
def test_a_long_or_unprintable_name_is_one_line_error_naming_the_field(path, value):
    """Names go into one-line messages, report tables and sweep rows: a 100,000-character name or
    one holding a newline or an escape sequence loaded and ran."""
    from hwmodel.design import NAME_MAX_CHARS

    data = copy.deepcopy(design_data())
    _set(data, path, value)
    with pytest.raises(NmlabError) as info:
        parse_design(data, name="edge_ws")  # a bad name: errors name the design by its file's stem
    text = str(info.value)
    where = "name" if path == ["name"] else "storage[1].name"
    assert "\n" not in text and len(text) < 400, text
    assert text.startswith(f"design 'edge_ws': {where}: must be 1 to {NAME_MAX_CHARS} printable"), text
    _set(data, path, "z" * NAME_MAX_CHARS)  # the bound itself loads
    parse_design(data)


@pytest.mark.parametrize("path", [["name"], ["storage", 1, "name"]])
@pytest.mark.parametrize("value", [" edge_ws", "edge_ws ", " ", "edge_ws  "])
def test_a_name_starting_or_ending_with_a_space_is_one_line_error_naming_the_field(path, value):
    """``name: " edge_ws"`` loaded: it reads as edge_ws in every table, yet a sweep took it for another design."""
    data = copy.deepcopy(design_data())
    _set(data, path, value)
    with pytest.raises(NmlabError) as info:
        parse_design(data, name="edge_ws")
    text = str(info.value)
    where = "name" if path == ["name"] else "storage[1].name"
    assert "\n" not in text and len(text) < 400, text
    assert text.startswith(f"design 'edge_ws': {where}: must not start or end with a space"), text
    assert f"got {' '.join(repr(value).split())}" in text, text  # quoted: the spaces show (runs of them as one)
    _set(data, path, "edge ws")  # a space inside is a name as any other
    parse_design(data)


def test_a_name_with_a_leading_space_is_exit_2_in_a_sweep(tmp_path, capsys):
    from hwmodel.cli import main

    data = design_data()
    data["name"] = " edge_ws"
    p = tmp_path / "edge_ws_copy.yaml"
    p.write_text(yaml.safe_dump(data))
    cfg = tmp_path / "sweep.yaml"
    cfg.write_text(yaml.safe_dump({"designs": ["edge_ws", str(p)], "gpus": "none"}))
    assert main(["sweep", str(cfg), "--out", str(tmp_path / "out"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "name: must not start or end with a space" in err[0], err
    assert not (tmp_path / "out" / "points.parquet").exists()


def test_a_bad_level_name_is_one_line_exit_2(tmp_path, capsys):
    from hwmodel.cli import main

    data = design_data()
    data["storage"][1]["name"] = "Weight\nBuffer"
    p = tmp_path / "bad.yaml"
    p.write_text(yaml.safe_dump(data))
    assert main(["simulate", "--design", str(p)]) == 2
    captured = capsys.readouterr()
    err = captured.err.strip().splitlines()
    assert len(err) == 1 and "storage[1].name: must be 1 to" in err[0] and not captured.out, err


@pytest.mark.parametrize("capacity, word_bits, banks, fits", [
    (256, 128, 1, False), (480, 128, 1, False), (496, 128, 1, True), (512, 128, 1, True),  # > 30 words
    (992, 128, 2, True), (960, 128, 2, False),                                            # per bank
    (63, 8, 1, False), (64, 8, 1, True), (62, 16, 1, False), (64, 16, 1, True),            # >= 64 bytes
])
def test_an_sram_under_cactis_smallest_bank_is_refused_up_front(tmp_path, monkeypatch, capacity, word_bits, banks,
                                                                 fits):
    """CACTI 7 finds no array organisation for a bank under 64 bytes or of 30 words or fewer
    (probed over its nodes, cell types, ports and bank counts: docs/hwmodel.md); such a level
    was accepted and failed at the first simulate. It is refused at load, naming the field; the
    smallest accepted ones run."""
    from hwmodel.simulate import simulate
    from hwmodel.workload import bundled_workloads

    monkeypatch.setenv("NMLAB_CACHE_DIR", str(tmp_path))
    data = copy.deepcopy(design_data())
    data["storage"][2].update(capacity_bytes=capacity, word_bits=word_bits, banks=banks)
    if not fits:
        with pytest.raises(NmlabError, match=r"^design 'edge_ws': storage\[2\]\.capacity_bytes: .*CACTI 7"):
            parse_design(data)
        return
    wl = next(iter(sorted(bundled_workloads())))
    assert simulate(str(wl), parse_design(data), batch=1, bits=8).total.energy_sram_pj > 0
