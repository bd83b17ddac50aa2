"""nmlab import-timeloop: a design exported to Timeloop and imported back equals the original on
every field Timeloop carries, and simulate() differs only through the fields it cannot carry;
hand-written architectures import with stated defaults; bad input is a one-line error, exit 2."""

from __future__ import annotations

import dataclasses
import re

import pytest
import yaml

import hwmodel
from hwmodel.design import bundled_designs, load_design
from hwmodel.errors import NmlabError
from hwmodel.io import data_path
from hwmodel.timeloop import export_timeloop
from hwmodel.timeloop_import import import_timeloop
from hwmodel.workload import load_workload
from tests.conftest import cli_refuses_out_over_input

#: A 2:4 workload: every bundled sparse design runs it at 2:4, so the sparsity default
#: (layer-wise N:M up to the exported group size) runs it the same way.
WORKLOAD = "hopper_2of4_s0.nmw"


def _bits(name: str) -> int:
    # A datatype at one MAC per PE per cycle (the rate a Timeloop arch implies): stc_hbm runs int8 at 2.
    return 16 if name == "stc_hbm" else 8


def _export(tmp_path, name="edge_ws"):
    """The Timeloop files of bundled design ``name`` running WORKLOAD's actor.fc2, in ``tmp_path/tl``."""
    return export_timeloop(name, data_path("workloads", WORKLOAD), "actor.fc2", tmp_path / "tl")


def _round_trip(tmp_path, name, design=None):
    """Export ``design`` (default: the bundled design ``name``) to Timeloop and import it back as ``name``.yaml:
    (the design, the imported design, the import's stated defaults, the imported file)."""
    d = design or load_design(name)
    wl = data_path("workloads", WORKLOAD)
    tl = export_timeloop(d, wl, "actor.fc2", tmp_path / "tl", bits=_bits(name))
    out, defaults = import_timeloop(tl / "arch.yaml", tmp_path / f"{name}.yaml", constraints=tl / "constraints.yaml",
                                    sparse_opt=tl / "sparse_opt.yaml")
    return d, load_design(out), defaults, out


@pytest.mark.parametrize("name", sorted(bundled_designs()))
def test_round_trip_carries_every_timeloop_field(tmp_path, name):
    d, imp, defaults, out = _round_trip(tmp_path, name)
    assert imp.name == name and imp.technology_nm == d.technology_nm
    assert imp.clock_hz == pytest.approx(d.clock_hz, rel=1e-12)
    c, ci = d.compute, imp.compute
    assert (ci.kind, ci.dataflow, ci.rows, ci.cols, ci.accumulator_bits) == (c.kind, c.dataflow, c.rows, c.cols,
                                                                           c.accumulator_bits)
    dt = d.datatype_for(_bits(name))
    assert ci.datatypes == {dt: 1.0} and c.datatypes[dt] == 1.0
    assert [s.name for s in imp.storage] == [s.name for s in d.storage]
    for s, si in zip(d.storage, imp.storage):
        assert (si.cls, set(si.holds), si.capacity_bytes, si.dram_type) == (s.cls, set(s.holds), s.capacity_bytes,
                                                                           s.dram_type), s.name
        if s.cls == "dram":
            assert si.bandwidth_bytes_per_cycle == pytest.approx(s.bandwidth_bytes_per_cycle, rel=1e-9)
        else:
            assert si.word_bits == s.word_bits
        if s.cls == "sram":
            assert (si.banks, si.read_ports, si.write_ports, si.double_buffered) == (
                s.banks, s.read_ports, s.write_ports, s.double_buffered), s.name
    sp = imp.sparsity
    if d.sparsity.support == "unstructured":
        assert (sp.support, sp.index_format) == ("unstructured", d.sparsity.index_format)
    else:  # the CP rank carries ceil(log2 m) bits of the exported 2:4 pattern
        assert (sp.support, sp.max_m) == ("layerwise", 4)

    # Everything else is a stated default: put the original's values back and the designs are equal.
    storage = tuple(dataclasses.replace(si, holds=s.holds, latency_cycles=s.latency_cycles, cell_type=s.cell_type,
                                        bandwidth_bytes_per_cycle=s.bandwidth_bytes_per_cycle)
                    for s, si in zip(d.storage, imp.storage))
    patched = dataclasses.replace(imp, storage=storage, sparsity=d.sparsity, compute=dataclasses.replace(
        ci, datatypes=c.datatypes, tile_m=c.tile_m, pipeline_depth=c.pipeline_depth,
        activation_bits=c.activation_bits), clock_hz=d.clock_hz)
    assert patched == dataclasses.replace(d, name=imp.name, description=imp.description, source=imp.source)
    # ... and the header says so.
    head = out.read_text().split("\nversion:")[0]
    for word in ("DRAM latency", "cell_type", "datatypes", "energies", "metadata_bits_per_cycle"):
        assert word in head


@pytest.mark.parametrize("name", sorted(bundled_designs()))
def test_round_trip_simulates_the_same(tmp_path, name):
    """simulate() of a bundled workload: the imported design gives the original's cycles and energy
    once DRAM latency and the SRAM cell type (the two defaults that change this run) are set back;
    on scalesim_default_ws (latency 0, itrs-hp cells) it does as imported."""
    d, imp, _, _ = _round_trip(tmp_path, name)
    wl = load_workload(data_path("workloads", WORKLOAD))
    bits = _bits(name)
    ref = hwmodel.simulate(wl, d, batch=1, bits=bits).total
    got = hwmodel.simulate(wl, imp, batch=1, bits=bits).total
    defaults_match = all(s.latency_cycles == 0 and s.cell_type == "itrs-hp" for s in d.storage)
    if defaults_match:
        assert (got.cycles, got.energy_pj) == (ref.cycles, ref.energy_pj)
    else:
        assert got.cycles < ref.cycles or got.energy_pj != ref.energy_pj
    storage = tuple(dataclasses.replace(si, latency_cycles=s.latency_cycles, cell_type=s.cell_type)
                    for s, si in zip(d.storage, imp.storage))
    fixed = hwmodel.simulate(wl, dataclasses.replace(imp, storage=storage), batch=1, bits=bits).total
    assert fixed.cycles == ref.cycles
    assert fixed.energy_pj == pytest.approx(ref.energy_pj, rel=1e-12)


HAND_ARCH = """
architecture:
  version: 0.4
  subtree:
  - name: system
    attributes: {technology: 45nm, global_cycle_seconds: 2e-9}
    local:
    - name: DRAM
      class: DRAM
      attributes: {type: DDR3, width: 64, datawidth: 8}
    subtree:
    - name: chip
      local:
      - name: buffer
        class: smartbuffer_SRAM
        attributes: {depth: 4096, width: 64, n_banks: 2, datawidth: 8}
      subtree:
      - name: PE[0..63]
        local:
        - name: reg
          class: regfile
          attributes: {depth: 4, width: 8, datawidth: 8}
        - name: mac
          class: intmac
          attributes: {multiplier_width: 8, adder_width: 24, meshX: 8}
"""


def test_hand_written_nested_subtree_with_defaults(tmp_path, capsys):
    from hwmodel.cli import main

    arch = tmp_path / "arch.yaml"
    arch.write_text(HAND_ARCH)
    out = tmp_path / "mine.yaml"
    assert main(["import-timeloop", str(arch), "--out", str(out), "--name", "tiny"]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "systolic, weight stationary" in err[0] and "sparsity: none" in err[0]
    d = load_design(out)
    assert (d.name, d.technology_nm, d.clock_hz) == ("tiny", 45, 500e6)
    assert (d.compute.kind, d.compute.dataflow, d.compute.rows, d.compute.cols) == ("systolic", "ws", 8, 8)
    assert d.compute.datatypes == {"int8": 1.0} and d.compute.accumulator_bits == 24
    dram, buf, reg = d.storage
    assert dram.dram_type == "DDR3" and dram.bandwidth_bytes_per_cycle == 8.0   # one 64-bit access per cycle
    assert (buf.cls, buf.capacity_bytes, buf.banks, buf.double_buffered) == ("sram", 32768, 2, False)
    assert set(buf.holds) == {"weights", "inputs", "outputs"} and reg.capacity_bytes == 4
    assert d.sparsity.support == "none"
    head = out.read_text().split("\nversion:")[0]
    assert "no --constraints" in head and "multiple_buffering" in head
    r = hwmodel.simulate(load_workload(data_path("workloads", WORKLOAD)), d, batch=1, bits=8)
    assert r.total.cycles > 0


def _bad(tmp_path, text: str | bytes, which: str = "arch"):
    p = tmp_path / f"{which}.yaml"
    (p.write_bytes if isinstance(text, bytes) else p.write_text)(text)
    return p


@pytest.mark.parametrize("mutate, field", [
    (lambda a: a["architecture"]["subtree"][0]["local"].pop(), "no mac component"),
    (lambda a: a["architecture"]["subtree"][0]["local"][1]["attributes"].update(depth=-1), "depth"),
    (lambda a: a["architecture"]["subtree"][0]["local"][1]["attributes"].update(depth="many"), "depth"),
    # nmlab's SRAM has no read-write port: a level without a read (write) port is refused, not priced
    (lambda a: a["architecture"]["subtree"][0]["local"][1]["attributes"].update(n_rd_ports=0), "n_rd_ports: must be >= 1"),
    (lambda a: a["architecture"]["subtree"][0]["local"][1]["attributes"].update(n_wr_ports=0, n_rdwr_ports=2),
     "n_wr_ports: must be >= 1"),
    (lambda a: a["architecture"]["subtree"][0]["local"][1]["attributes"].update(depth=1 << 39), "capacity_bytes"),
    (lambda a: a["architecture"]["subtree"][0]["local"][0]["attributes"].update(type="SDRAM9"), "type"),
    (lambda a: a["architecture"]["subtree"][0]["local"][-1].update({"class": "adder"}), "class"),
    (lambda a: a["architecture"].update(version="0.5"), "version"),
    # int() of over 4,300 digits is a ValueError: it was a traceback
    (lambda a: a["architecture"]["subtree"][0]["local"][3].update(name="PEReg[0.." + "9" * 5000 + "]"), "range"),
    (lambda a: a["architecture"]["subtree"][0]["local"][3].update(name="PEReg[" + "7" * 5000 + "..1]"), "range"),
    # YAML reads an unquoted `true:` or `1:` key as a bool or int: AttributeError ('bool' has no replace)
    (lambda a: a["architecture"]["subtree"][0]["local"][1]["attributes"].update({True: 128}), "key True"),
    (lambda a: a["architecture"]["subtree"][0]["local"][1]["attributes"].update({1: 128}), "key 1 "),
    (lambda a: a["architecture"]["subtree"][0]["local"][1].update({None: 1}), "key None"),
])
def test_bad_arch_is_one_line_exit_2(tmp_path, capsys, mutate, field):
    from hwmodel.cli import main

    tl = _export(tmp_path)
    arch = yaml.safe_load((tl / "arch.yaml").read_text())
    mutate(arch)
    p = _bad(tmp_path, yaml.safe_dump(arch))
    out = tmp_path / "d.yaml"
    assert main(["import-timeloop", str(p), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and field in err[0], err
    assert not out.exists()


BOMB = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{c}: &{c} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]\n" for p, c in zip("abcdefgh", "bcdefghi"))


@pytest.mark.parametrize("text, which, needle", [
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe", "arch", "arch"),
    (BOMB, "arch", "alias"),
    ("- just\n- a list\n", "arch", "must be a mapping"),
    ("architecture:\n  version: 0.4\n  nodes: []\n", "arch", "no DRAM"),
    ("architecture:\n  version: 0.4\n  nodes:\n  - !Widget {name: x}\n", "arch", "!Widget"),
    ("architecture:\n  version: 0.4\n  nodes:\n  - {'!': Widget, name: x}\n", "arch", "unknown node tag"),
    (BOMB, "constraints", "alias"),
    ("sparse_optimizations: {version: 0.4, targets: [{target: WeightBuffer, representation_format: "
     "{data_spaces: [{name: Weights, ranks: [{format: RLE}]}]}}]}\n", "sparse_opt", "format"),
])
def test_bad_files_are_one_line_exit_2(tmp_path, capsys, text, which, needle):
    from hwmodel.cli import main

    tl = _export(tmp_path)
    files = {"arch": tl / "arch.yaml", "constraints": tl / "constraints.yaml", "sparse_opt": tl / "sparse_opt.yaml"}
    files[which] = _bad(tmp_path, text, which)
    out = tmp_path / "d.yaml"
    assert main(["import-timeloop", str(files["arch"]), "--constraints", str(files["constraints"]),
                 "--sparse-opt", str(files["sparse_opt"]), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and needle in err[0] and which in err[0], err
    assert not out.exists()


@pytest.mark.parametrize("which", ["constraints", "sparse-opt", "ert", "problem"])
def test_an_empty_side_file_is_one_line_exit_2(tmp_path, capsys, which):
    """An empty file loads as None, which read as the option not given: the import went on
    with the defaults of no file (nmlab's energies for an empty --ert) and said nothing."""
    from hwmodel.cli import main

    tl = _export(tmp_path, "unstructured_ws")
    files = {"constraints": tl / "constraints.yaml", "sparse-opt": tl / "sparse_opt.yaml", "ert": tl / "ERT.yaml",
             "problem": tl / "problem.yaml"}
    files[which] = _bad(tmp_path, "# nothing here\n", which)
    out = tmp_path / "d.yaml"
    assert main(["import-timeloop", str(tl / "arch.yaml"), *[a for k, p in files.items() for a in (f"--{k}", str(p))],
                 "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"{which.replace('-', '_')}: {files[which]}: <top>: must be a mapping" in err[0], err
    assert not out.exists()


def test_existing_out_is_replaced_only_by_a_valid_design(tmp_path):
    tl = _export(tmp_path)
    out = tmp_path / "d.yaml"
    out.write_text("keep me\n")
    arch = yaml.safe_load((tl / "arch.yaml").read_text())
    arch["architecture"]["subtree"][0]["local"][1]["attributes"]["n_banks"] = 3   # not a power of two
    bad = _bad(tmp_path, yaml.safe_dump(arch))
    with pytest.raises(NmlabError, match="banks"):
        import_timeloop(bad, out)
    assert out.read_text() == "keep me\n"
    import_timeloop(tl / "arch.yaml", out)
    assert load_design(out).name == "d"
    spaced, _ = import_timeloop(tl / "arch.yaml", tmp_path / "my design.yaml")
    assert load_design(spaced).name == "my_design"
    with pytest.raises(NmlabError, match="--name"):
        import_timeloop(tl / "arch.yaml", out, name="a b")
    with pytest.raises(NmlabError, match="--out"):
        import_timeloop(tl / "arch.yaml", tmp_path)      # a folder


@pytest.mark.parametrize("which", ["arch", "constraints"])
def test_out_that_is_an_input_is_refused_and_the_input_kept(tmp_path, capsys, which):
    """`--out arch.yaml`: the rename replaced the Timeloop arch the design was read from."""
    tl = _export(tmp_path)
    target = tl / f"{which}.yaml"
    cli_refuses_out_over_input(capsys, ["import-timeloop", str(tl / "arch.yaml"), "--constraints",
                                        str(tl / "constraints.yaml"), "--out", str(target)],
                               target, "arch" if which == "arch" else "--constraints")


NODES_ARCH = """
architecture:
  version: 0.4
  nodes:
  - !Container
    name: system
    attributes: {technology: "22nm", global_cycle_seconds: 1e-9}
  - !Component
    name: DRAM
    class: DRAM
    attributes: {type: "LPDDR4", width: 64, datawidth: 8, shared_bandwidth: 16}
  - !Container
    name: chip
  - !Component
    name: WeightBuffer
    class: smartbuffer_SRAM
    attributes: {depth: 8192, width: 128, n_banks: 4, datawidth: 8, multiple_buffering: 2}
    constraints:
      dataspace: {keep: [Weights], bypass: [Inputs, Outputs]}
  - !Component
    name: ActBuffer
    class: SRAM
    attributes: {depth: 2048, width: 128, datawidth: 8}
    constraints:
      dataspace: {keep: [Inputs, Outputs], bypass: [Weights]}
  - !Container
    name: PE
    spatial: {meshX: 16, meshY: 8}
    constraints:
      spatial: {permutation: [N, M, K], factors: [K=1]}
  - !Parallel
    nodes:
    - !Component
      name: wreg
      class: regfile
      attributes: {depth: 1, width: 8, datawidth: 8}
      constraints: {dataspace: {keep: [Weights]}}
    - !Component
      name: oreg
      class: regfile
      attributes: {depth: 1, width: 24, datawidth: 24}
      constraints: {dataspace: {keep: [Outputs]}}
  - !Component
    name: mac
    class: intmac
    attributes: {multiplier_width: 8, adder_width: 24}
"""


def test_hand_written_nodes_form(tmp_path, capsys):
    """The timeloopfe v4 `nodes:` form: containers' spatial meshes multiply into the MAC array,
    constraints written on the nodes give holds and the dataflow, Parallel siblings become levels."""
    from hwmodel.cli import main

    arch = _bad(tmp_path, NODES_ARCH)
    out = tmp_path / "n.yaml"
    assert main(["import-timeloop", str(arch), "--out", str(out)]) == 0
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
    d = load_design(out)
    c = d.compute
    assert (c.kind, c.dataflow, c.rows, c.cols, c.accumulator_bits) == ("systolic", "os", 8, 16, 24)
    assert (d.technology_nm, d.clock_hz) == (22, 1e9)
    assert [(s.name, s.cls, s.holds, s.capacity_bytes) for s in d.storage] == [
        ("DRAM", "dram", ("weights", "inputs", "outputs", "metadata"), 0),
        ("WeightBuffer", "sram", ("weights",), 131072), ("ActBuffer", "sram", ("inputs", "outputs"), 32768),
        ("wreg", "regfile", ("weights",), 1), ("oreg", "regfile", ("outputs",), 3)]
    assert d.dram.bandwidth_bytes_per_cycle == 16.0 and d.srams[0].double_buffered and not d.srams[1].double_buffered
    assert "ActBuffer.double_buffered: false" in out.read_text()
    # A constraints file overrides what the nodes say.
    cons = _bad(tmp_path, "architecture_constraints: {version: 0.4, targets: [{target: PE, type: spatial, "
                          "permutation: [K, N, M]}, {target: ActBuffer, type: dataspace, keep: [Inputs, Outputs, "
                          "Weights]}]}\n", "constraints")
    sparse = _bad(tmp_path, "sparse_optimizations: {version: 0.4, targets: [{target: WeightBuffer, "
                            "representation_format: {data_spaces: [{name: Weights, ranks: [{format: UOP}, "
                            "{format: CP, metadata_word_bits: 3}]}]}}]}\n", "sparse_opt")
    import_timeloop(arch, out, constraints=cons, sparse_opt=sparse)
    d = load_design(out)
    assert d.compute.kind == "tensor_core" and set(d.storage[2].holds) == {"weights", "inputs", "outputs"}
    assert (d.sparsity.support, d.sparsity.max_m, d.sparsity.metadata_bits_per_cycle) == ("layerwise", 8, 8 * 16 * 3)
    assert d.sram_for("metadata").name == "WeightBuffer"


def test_nodes_form_hierarchical_and_nothing(tmp_path):
    """A !Hierarchical list is read in place (its nodes sit below what came before and above
    what follows) and a !Nothing node is skipped: the same design as the flat list."""
    head, pe = NODES_ARCH.split("  - !Container\n    name: PE\n")
    nested = head + "  - !Nothing {}\n  - !Hierarchical\n" + "\n".join(
        "  " + line for line in ("  - !Container\n    name: PE\n" + pe).splitlines()) + "\n"
    flat, _ = import_timeloop(_bad(tmp_path, NODES_ARCH), tmp_path / "n.yaml")
    got, _ = import_timeloop(_bad(tmp_path, nested, "nested"), tmp_path / "n2.yaml", name="n")
    assert load_design(got) == dataclasses.replace(load_design(flat), source=str(got),
                                                   description=load_design(got).description)


@pytest.mark.parametrize("edit, field", [
    # the child of a !Parallel was named nodes[j:][0]
    (lambda t: t.replace("depth: 1, width: 24", "depth: 0, width: 24"),
     "architecture.nodes[6].nodes[1].attributes.depth: 0: a zero-capacity level, but its dataspace constraint keeps"),
    (lambda t: t.replace("depth: 1, width: 24", "depth: -1, width: 24"),
     "architecture.nodes[6].nodes[1].attributes.depth: must be between 1"),
    (lambda t: t + "  - " + "!Hierarchical [" * 18 + "{name: r, class: regfile}" + "]" * 18 + "\n",
     "nodes nested deeper than 16 levels"),
    # short(5)[1:-1] cut a non-string tag to nothing: "unknown node tag !"
    (lambda t: t.replace("!Container\n    name: chip", "{'!': 5, name: chip}"), "unknown node tag !5 ("),
    (lambda t: t.replace("!Container\n    name: chip", "{'!': Widget, name: chip}"), "unknown node tag !Widget ("),
])
def test_nodes_form_errors_name_the_node(tmp_path, capsys, edit, field):
    from hwmodel.cli import main

    out = tmp_path / "n.yaml"
    assert main(["import-timeloop", str(_bad(tmp_path, edit(NODES_ARCH))), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and field in err[0], err
    assert not out.exists()


def test_a_keep_constraint_naming_no_level_is_listed(tmp_path):
    """A keep target that names no level (a typo) was dropped without a word: the level it meant kept everything."""
    tl = _export(tmp_path)
    _, plain = import_timeloop(tl / "arch.yaml", tmp_path / "a.yaml", constraints=tl / "constraints.yaml",
                               sparse_opt=tl / "sparse_opt.yaml")
    assert not [x for x in plain if "not used" in x], plain
    cons = _bad(tmp_path, (tl / "constraints.yaml").read_text().replace("target: ActBuffer\n    type: dataspace",
                                                                         "target: ActBufer\n    type: dataspace"), "c")
    out, defaults = import_timeloop(tl / "arch.yaml", tmp_path / "b.yaml", constraints=cons,
                                    sparse_opt=tl / "sparse_opt.yaml")
    assert "holds: the keep constraint on ActBufer is not used (ActBufer is no storage level)" in defaults
    assert set(load_design(out).storage[2].holds) == {"weights", "inputs", "outputs"}


def _as_nodes(tl) -> str:
    """The exported subtree arch rewritten in the nodes form by hand (constraints on the nodes)."""
    arch = yaml.safe_load((tl / "arch.yaml").read_text())["architecture"]["subtree"][0]
    cons = yaml.safe_load((tl / "constraints.yaml").read_text())["architecture_constraints"]["targets"]
    keep = {t["target"]: t["keep"] for t in cons if t["type"] == "dataspace"}
    perm = next(t["permutation"] for t in cons if t["type"] == "spatial")
    flow = lambda d: yaml.safe_dump(d, default_flow_style=True, width=10**6).strip()  # noqa: E731
    lines = ["architecture:", "  version: 0.4", "  nodes:",
             f"  - !Container {flow({'name': 'system', 'attributes': arch['attributes']})}"]
    in_pe = False
    for comp in arch["local"]:
        name = comp["name"].split("[")[0]
        attrs = {k: v for k, v in comp["attributes"].items() if k not in ("meshX", "meshY")}
        if "meshX" in comp["attributes"] and not in_pe:   # the PE array starts here
            in_pe = True
            mesh = {"meshX": comp["attributes"]["meshX"], "meshY": comp["attributes"]["meshY"]}
            lines.append(f"  - !Container {flow({'name': 'PE', 'spatial': mesh, 'constraints': {'spatial': {'permutation': perm}}})}")
        node = {"name": name, "class": comp["class"], "attributes": attrs}
        if name in keep:
            node["constraints"] = {"dataspace": {"keep": keep[name]}}
        lines.append(f"  - !Component {flow(node)}")
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("name", sorted(bundled_designs()))
def test_nodes_form_imports_as_the_subtree_form(tmp_path, name):
    d, imp, _, _ = _round_trip(tmp_path, name)
    arch = _bad(tmp_path, _as_nodes(tmp_path / "tl"))
    out, _ = import_timeloop(arch, tmp_path / f"{name}.yaml", sparse_opt=tmp_path / "tl" / "sparse_opt.yaml")
    assert load_design(out) == imp


#: simulate()'s energy by component (Figures fields).
ENERGY_FIELDS = ("energy_mac_pj", "energy_sram_pj", "energy_reg_pj", "energy_metadata_pj", "energy_mux_pj",
                 "energy_dram_pj", "energy_leakage_pj")


def _import_with_ert(tmp_path, tl, out_name="e.yaml", ert=None):
    return import_timeloop(tl / "arch.yaml", tmp_path / out_name, constraints=tl / "constraints.yaml",
                           sparse_opt=tl / "sparse_opt.yaml", ert=ert or tl / "ERT.yaml", problem=tl / "problem.yaml")


def _energies(design, bits) -> dict[str, float]:
    tot = hwmodel.simulate(load_workload(data_path("workloads", WORKLOAD)), design, batch=1, bits=bits).total
    return {k: getattr(tot, k) for k in ENERGY_FIELDS}


@pytest.mark.parametrize("name", sorted(bundled_designs()))
def test_round_trip_with_ert_gives_the_original_energies(tmp_path, name):
    """Export, import with the ERT (plus constraints, sparse_opt, problem), set back the non-energy
    defaults as above: simulate()'s energy of every component is the original's; the itrs-lstp
    cells' leakage (edge_ws) now comes through the ERT, not the cell type."""
    d, plain, _, _ = _round_trip(tmp_path, name)
    out, defaults = _import_with_ert(tmp_path, tmp_path / "tl")
    imp = load_design(out)
    assert imp.energy is not None
    assert dataclasses.replace(imp, energy=None, name=plain.name, source=plain.source) == plain
    assert not [x for x in defaults if x.startswith("ERT ")], defaults     # every ERT entry mapped
    storage = tuple(dataclasses.replace(si, holds=s.holds, latency_cycles=s.latency_cycles,
                                        bandwidth_bytes_per_cycle=s.bandwidth_bytes_per_cycle)
                    for s, si in zip(d.storage, imp.storage))
    patched = dataclasses.replace(imp, storage=storage, sparsity=d.sparsity, clock_hz=d.clock_hz,
                                  compute=dataclasses.replace(imp.compute, datatypes=d.compute.datatypes,
                                                              tile_m=d.compute.tile_m,
                                                              pipeline_depth=d.compute.pipeline_depth))
    ref, got = _energies(d, _bits(name)), _energies(patched, _bits(name))
    for k in ENERGY_FIELDS:
        assert got[k] == pytest.approx(ref[k], rel=1e-9, abs=0), k
    assert "energies not in the ERT" in out.read_text().split("\nversion:")[0]


#: ERT edits on the edge_ws export (component, action, new energy from old) -> the components that change.
ERT_EDITS = [
    ("DRAM", "read", lambda e: 2 * e, {"energy_dram_pj"}),
    ("PEReg", "read", lambda e: 3 * e, {"energy_reg_pj"}),
    ("mac", "compute", lambda e: e + 0.5, {"energy_mac_pj"}),
    ("ActBuffer", "read", lambda e: 2 * e, {"energy_sram_pj"}),
    ("WeightBuffer", "read", lambda e: 2 * e, {"energy_sram_pj", "energy_metadata_pj"}),
    ("WeightBuffer", "leak", lambda e: 5 * e, {"energy_leakage_pj"}),
    ("WeightBuffer", "metadata_read", lambda e: 2 * e, set()),    # nmlab reads metadata at the SRAM's read energy
]


@pytest.mark.parametrize("comp, action, edit, changed", ERT_EDITS, ids=[f"{c}.{a}" for c, a, _, _ in ERT_EDITS])
def test_changed_ert_changes_exactly_the_matching_components(tmp_path, comp, action, edit, changed):
    tl = _export(tmp_path)
    base = load_design(_import_with_ert(tmp_path, tl, "base.yaml")[0])
    ert = yaml.safe_load((tl / "ERT.yaml").read_text())
    table = next(t for t in ert["ERT"]["tables"] if t["name"].split(".")[1].startswith(comp + "["))
    entry = next(a for a in table["actions"] if a["name"] == action)
    entry["energy"] = edit(entry["energy"])
    out, defaults = _import_with_ert(tmp_path, tl, "edited.yaml", _bad(tmp_path, yaml.safe_dump(ert), "ert"))
    ref, got = _energies(base, 8), _energies(load_design(out), 8)
    assert {k for k in ENERGY_FIELDS if got[k] != ref[k]} == changed
    if action == "metadata_read":  # not mapped: said so
        assert any(x.startswith("ERT WeightBuffer.metadata_read") for x in defaults), defaults
    elif comp in ("DRAM", "PEReg"):  # the whole component is that action's energy x its count: it scales
        k, = changed
        assert got[k] == pytest.approx(ref[k] * {"DRAM": 2, "PEReg": 3}[comp], rel=1e-12)


def test_ert_entries_not_mapped_are_listed(tmp_path, capsys):
    """An action nmlab has no figure for, an unstructured arch's MAC without --problem, and an
    arch level with no ERT table are listed on stderr and in the header, not silently dropped."""
    from hwmodel.cli import main

    tl = _export(tmp_path, "unstructured_ws")
    ert = yaml.safe_load((tl / "ERT.yaml").read_text())
    ert["ERT"]["tables"] = [t for t in ert["ERT"]["tables"] if "PEReg" not in t["name"]]
    ert["ERT"]["tables"][0]["actions"].append({"name": "refresh", "arguments": None, "energy": 3.0})
    p = _bad(tmp_path, yaml.safe_dump(ert), "ert")
    out = tmp_path / "u.yaml"
    assert main(["import-timeloop", str(tl / "arch.yaml"), "--sparse-opt", str(tl / "sparse_opt.yaml"),
                 "--ert", str(p), "--out", str(out)]) == 0
    err = capsys.readouterr().err
    head = out.read_text().split("\nversion:")[0]
    for needle in ("DRAM.refresh: not mapped", "PEReg: no ERT table", "give --problem"):
        assert needle in err and needle in head, needle
    from hwmodel.energy import energy_table

    d = load_design(out)
    assert d.energy.mac_pj == () and d.energy.register_pj_per_bit is None     # nmlab's own kept
    assert d.energy.dram_pj_per_bit == energy_table(load_design("unstructured_ws")).dram_pj_per_bit


def _only(table: dict, **energies) -> None:
    table["actions"] = [{"name": k, "arguments": None, "energy": v} for k, v in energies.items()]


@pytest.mark.parametrize("edit, listed", [
    (lambda t: _only(t[0], write=999.0), ["DRAM.write 999 pJ: not mapped (nmlab charges write as read, which the table "
                                          "does not give)"]),
    (lambda t: _only(t[1], metadata_read=9.0, update=5.0), ["WeightBuffer.metadata_read 9 pJ: not mapped",
                                                             "WeightBuffer.update 5 pJ: not mapped"]),
    (lambda t: _only(t[3], write=0.5), ["PEReg.write 0.5 pJ: not mapped"]),
    (lambda t: t[-1]["actions"].append({"name": "mac_random", "energy": 7.0}),
     ["mac.mac_random 7 pJ: not mapped (nmlab charges mac_random as compute, "]),
])
def test_an_ert_action_nmlab_does_not_use_is_listed(tmp_path, edit, listed):
    """An action nmlab charges at another's energy (DRAM write at read, SRAM update at write ...)
    was compared only when the table gave that other one: alone it was dropped without a word."""
    tl = _export(tmp_path)
    ert = yaml.safe_load((tl / "ERT.yaml").read_text())
    edit(ert["ERT"]["tables"])
    _, defaults = _import_with_ert(tmp_path, tl, ert=_bad(tmp_path, yaml.safe_dump(ert), "ert"))
    lines = [x for x in defaults if x.startswith("ERT ")]
    assert len(lines) == len(listed) and all(x.startswith(f"ERT {want}") for x, want in zip(lines, listed)), lines


def test_a_negative_zero_ert_energy_is_written_as_zero(tmp_path):
    tl = _export(tmp_path)
    ert = yaml.safe_load((tl / "ERT.yaml").read_text())
    _only(ert["ERT"]["tables"][0], read=-0.0)
    out, _ = _import_with_ert(tmp_path, tl, ert=_bad(tmp_path, yaml.safe_dump(ert), "ert"))
    assert "dram_pj_per_bit: 0.0\n" in out.read_text() and "-0.0" not in out.read_text()


@pytest.mark.parametrize("edit, needle", [
    (lambda e: e["ERT"]["tables"][0]["actions"][0].update(energy=-1.0), "energy: must be a finite number from 0"),
    (lambda e: e["ERT"]["tables"][1]["actions"][0].update(energy=float("nan")), "must be a finite number"),
    (lambda e: e["ERT"]["tables"][1]["actions"][0].update(energy="lots"), "must be a number"),
    (lambda e: e["ERT"]["tables"].append({"name": "system.adder[1..4]", "actions": []}), "no component 'adder'"),
    (lambda e: e["ERT"]["tables"].append(dict(e["ERT"]["tables"][0])), "a second table"),
    (lambda e: e["ERT"].update(version="9"), "ERT.version"),
    (lambda e: e["ERT"]["tables"][-1]["actions"][0].update(energy=1e-6), "less than nmlab's selection term"),
    (lambda e: e.pop("ERT"), "ERT: must be a mapping"),
    (lambda e: e["ERT"]["tables"][0].update(actions={"read": 1}), "actions: must be a list"),
])
def test_bad_ert_is_one_line_exit_2(tmp_path, capsys, edit, needle):
    from hwmodel.cli import main

    tl = _export(tmp_path)
    ert = yaml.safe_load((tl / "ERT.yaml").read_text())
    edit(ert)
    p = _bad(tmp_path, yaml.safe_dump(ert), "ert")
    out = tmp_path / "d.yaml"
    assert main(["import-timeloop", str(tl / "arch.yaml"), "--sparse-opt", str(tl / "sparse_opt.yaml"),
                 "--ert", str(p), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and needle in err[0] and "ert" in err[0], err
    assert not out.exists()


def test_problem_is_read_and_said_unused_where_the_arch_is_not_unstructured(tmp_path, capsys):
    """--problem with --ert on an N:M arch: K was not read at all (a bad file passed) nor said unused."""
    from hwmodel.cli import main

    tl = _export(tmp_path)
    _, defaults = _import_with_ert(tmp_path, tl)
    assert "--problem: K = 256 not used (only an unstructured arch's MAC energy includes a network over K)" in defaults
    bad = _bad(tmp_path, "problem: {instance: {K: 0}}\n", "problem")
    out = tmp_path / "d.yaml"
    assert main(["import-timeloop", str(tl / "arch.yaml"), "--sparse-opt", str(tl / "sparse_opt.yaml"), "--ert",
                 str(tl / "ERT.yaml"), "--problem", str(bad), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "problem.instance.K: must be between 1" in err[0] and not out.exists(), err


def test_ert_alias_bomb_and_binary_are_one_line_exit_2(tmp_path, capsys):
    from hwmodel.cli import main

    tl = _export(tmp_path)
    out = tmp_path / "d.yaml"
    for text, needle in ((BOMB, "alias"), (b"\x89PNG\r\n\x1a\n\x00\x00\xff\xfe", "ert")):
        p = _bad(tmp_path, text, "ert")
        assert main(["import-timeloop", str(tl / "arch.yaml"), "--ert", str(p), "--out", str(out)]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and needle in err[0] and "ert" in err[0], err
        assert not out.exists()
    assert main(["import-timeloop", str(tl / "arch.yaml"), "--problem", str(tl / "problem.yaml"), "--out",
                 str(out)]) == 2
    assert "--problem: only read with --ert" in capsys.readouterr().err and not out.exists()


def test_sweep_of_an_imported_design_uses_its_ert_energies(tmp_path):
    """The sweep engine takes the energy: section through energy_table like simulate() does:
    every row of an imported design with an edited ERT equals simulate(), component by component."""
    import pandas as pd

    from sweeps.api import run
    from sweeps.evaluate import workload_at

    tl = _export(tmp_path, "flex_nm")
    ert = yaml.safe_load((tl / "ERT.yaml").read_text())
    for t in ert["ERT"]["tables"]:        # every energy x 1.5: not nmlab's own figures
        for a in t["actions"]:
            a["energy"] *= 1.5
    out, _ = _import_with_ert(tmp_path, tl, "imp.yaml", _bad(tmp_path, yaml.safe_dump(ert), "ert"))
    plain, _ = import_timeloop(tl / "arch.yaml", tmp_path / "plain.yaml", constraints=tl / "constraints.yaml",
                               sparse_opt=tl / "sparse_opt.yaml")
    wl_path = str(data_path("workloads", WORKLOAD))
    cfg = tmp_path / "sweep.yaml"
    cfg.write_text(yaml.safe_dump({"workloads": [wl_path], "patterns": ["dense", "2:4"], "bits": [8],
                                   "designs": [str(out)], "quality": None,
                                   "scenarios": [{"scenario": "inference", "batch": 1},
                                                 {"scenario": "train_step", "batch": 16}]}))
    run(str(cfg), tmp_path / "sweep", workers=1, progress=False)
    df = pd.read_parquet(tmp_path / "sweep" / "points.parquet")
    assert len(df) == 4       # 2 patterns x 2 scenarios
    for _, row in df.iterrows():
        wl = workload_at(wl_path, row.pattern, row.mask_source)
        kw = dict(batch=int(row.batch), bits=int(row.bits), scenario=row.scenario)
        res = hwmodel.simulate(wl, load_design(out), **kw).total
        for k in ("energy_pj", *ENERGY_FIELDS):
            assert getattr(row, k) == pytest.approx(getattr(res, k), rel=1e-12, abs=0), k
        own = hwmodel.simulate(wl, load_design(plain), **kw).total
        assert row.energy_mac_pj != own.energy_mac_pj and row.energy_dram_pj != own.energy_dram_pj


#: The shape timeloopfe writes as processed input (timeloop-accelergy-exercises' simple designs):
#: `class: storage` with a `subclass`, a dummy_storage fanout level, aladdin_register registers.
PROCESSED_ARCH = """
architecture:
  version: '0.4'
  subtree:
  - name: system_top_level
    attributes: {technology: 45nm, global_cycle_seconds: 1e-9}
    local:
    - name: DRAM[1..1]
      class: DRAM
      attributes: {type: LPDDR4, width: 64, datawidth: 8}
    - name: glb[1..1]
      class: smartbuffer_SRAM
      attributes: {depth: 2048, width: 64, n_banks: 4, datawidth: 8}
    - name: inter_PE_spatial[1..1]
      class: dummy_storage
      attributes: {width: 1, depth: 1, datawidth: 1, technology: -1}
    - name: weight_reg[1..64]
      class: storage
      subclass: aladdin_register
      attributes: {depth: 1, width: 8, datawidth: 8, meshX: 8, meshY: 8}
    - name: mac[1..64]
      class: compute
      subclass: intmac
      attributes: {multiplier_width: 8, adder_width: 24, meshX: 8, meshY: 8}
"""


def test_processed_input_shape_storage_subclass_and_dummy_level(tmp_path):
    """`class: storage`/`compute` name their kind in `subclass`; dummy_storage holds nothing and is skipped."""
    out, _ = import_timeloop(_bad(tmp_path, PROCESSED_ARCH), tmp_path / "p.yaml")
    d = load_design(out)
    assert [(s.name, s.cls, s.capacity_bytes) for s in d.storage] == [
        ("DRAM", "dram", 0), ("glb", "sram", 16384), ("weight_reg", "regfile", 1)]
    assert (d.compute.rows, d.compute.cols, d.compute.datatypes, d.clock_hz) == (8, 8, {"int8": 1.0}, 1e9)


# ---------------------------------------------------------------------------------------------
# The shapes of published Timeloop / Sparseloop / timeloopfe architectures (docs/timeloop.md,
# "Published architectures checked"), written by hand with this file's own values.

#: Timeloop v0.3 (timeloop-accelergy-exercises' 2020 ISPASS eyeriss_like): memory_depth /
#: memory_width / word_bits, a per-column regfile above the PE subtree, the mac's meshX only.
V03_EYERISS = """
architecture:
  version: 0.3
  subtree:
  - name: system
    local:
    - {name: DRAM, class: DRAM, attributes: {type: LPDDR4, width: 64, word_bits: 16}}
    subtree:
    - name: accel
      attributes: {technology: 45nm}
      local:
      - name: glb
        class: smartbuffer_SRAM
        attributes: {memory_depth: 8192, memory_width: 64, n_banks: 16, word_bits: 16, read_bandwidth: 16}
      - name: col_buf[0..9]
        class: regfile
        attributes: {depth: 16, width: 16, word_bits: 16, meshX: 10}
      subtree:
      - name: PE[0..119]
        local:
        - name: in_spad
          class: smartbuffer_RF
          attributes: {memory_depth: 12, memory_width: 16, word_bits: 16, meshX: 10}
        - name: mac
          class: intmac
          attributes: {datawidth: 16, meshX: 10}
"""

#: Timeloop v0.2 (the exercises' eyeriss-192): word-bits / block-size, a level whose width is
#: block-size words, XY_NoC networks in `local`, and compound registers (reg_storage) listed after the mac.
V02_NOC = """
architecture:
  version: 0.2
  subtree:
  - name: system
    local:
    - {name: DRAM, class: DRAM, attributes: {type: DDR3, width: 64, block-size: 4, word-bits: 16}}
    subtree:
    - name: chip
      attributes: {technology: 40nm}
      local:
      - name: glb
        class: smartbuffer_SRAM
        attributes: {memory_depth: 4096, block-size: 4, word-bits: 16, n_banks: 8}
      - {name: act_NoC, class: XY_NoC, attributes: {datawidth: 16}}
      subtree:
      - name: PE[0..63]
        local:
        - {name: mac, class: intmac, attributes: {datawidth: 16, meshX: 8}}
        - {name: weight_reg, class: reg_storage, attributes: {depth: 1, width: 16, meshX: 8}}
"""

#: Sparseloop's MICRO 2022 artifact (v0.3): `class: storage` / `subclass: SRAM_MD` with
#: data_storage_depth / data_storage_width, `class: compute` / `subclass: Imac`, a DRAM with
#: read_bandwidth and cluster-size.
V03_SPARSELOOP = """
architecture:
  version: 0.3
  subtree:
  - name: system
    attributes: {technology: 45nm}
    local:
    - name: DRAM
      class: DRAM
      attributes: {type: HBM2, width: 64, datawidth: 16, cluster-size: 1, read_bandwidth: 16, write_bandwidth: 16}
    subtree:
    - name: SM
      local:
      - name: GLB
        class: storage
        subclass: SRAM_MD
        attributes: {data_storage_depth: 4096, data_storage_width: 256, metadata_storage_depth: 1024,
                     metadata_storage_width: 64, n_banks: 2, datawidth: 16, cluster-size: 1}
      - name: LineBuffer
        class: storage
        subclass: SRAM_MD
        attributes: {data_storage_depth: 32, data_storage_width: 16, datawidth: 16}
      - name: MAC[0..63]
        class: compute
        subclass: Imac
        attributes: {datawidth: 16, meshX: 16, meshY: 4}
"""

#: Sparseloop v0.3 sparse optimizations: hyphenated keys, `name` for the target, weights
#: compressed at DRAM and at the SRAM (bitmask innermost rank).
V03_SPARSE_OPT = """
sparse_optimizations:
  targets:
  - name: DRAM
    representation-format:
      data-spaces:
      - name: Weights
        ranks: [{format: UOP}, {format: B, metadata-word-bits: 1}]
  - name: GLB
    representation-format:
      data-spaces:
      - name: Weights
        rank-application-order: inner-to-outer
        ranks: [{format: UOP}, {format: B, metadata-word-bits: 1}]
  - name: LineBuffer
    action-optimization: [{type: skipping, target: Outputs, condition-on: [Weights, Inputs]}]
"""

#: timeloopfe's earlier spec (arch_spec_examples/*/arch_split.yaml): `!Element`, memory_depth,
#: the constraints in the arch file itself (keep_only, bypass alone), a Component naming only its subclass.
ELEMENT_SPLIT = """
architecture:
  version: 0.4
  nodes:
  - !Container {name: system, attributes: {technology: "32nm", global_cycle_seconds: 2e-9}}
  - !Element {name: DRAM, class: DRAM, attributes: {type: LPDDR4, width: 64, block_size: 8, datawidth: 8}}
  - !Element
    name: glb
    subclass: smartbuffer_SRAM
    attributes: {memory_depth: 2048, memory_width: 64, n_banks: 4, datawidth: 8}
  - !Element {name: wbuf, class: SRAM, attributes: {depth: 1024, width: 64, datawidth: 8}}
  - !Container {name: PE, spatial: {meshX: 8, meshY: 4}}
  - !Element {name: fanout, class: regfile, attributes: {depth: 1, width: 8, datawidth: 8}}
  - !Element {name: reg, class: regfile, attributes: {depth: 4, width: 8, datawidth: 8}}
  - !Element {name: mac, class: intmac, attributes: {multiplier_width: 8, adder_width: 24}}
constraints:
  targets:
  - {target: glb, type: dataspace, bypass: [Weights]}
  - {target: wbuf, type: dataspace, keep_only: [Weights]}
  - {target: fanout, type: dataspace, keep: [], bypass: [Weights, Inputs, Outputs]}
  - {target: PE, type: spatial, permutation: [N, P, Q, R, S, C, M]}
"""

#: timeloopfe's processed input (parsed-processed-input.yaml) as one file: a dummy_storage first
#: (its placeholder technology -1), the constraints and sparse optimizations beside the arch.
PROCESSED_ONE_FILE = """
dumped_by_timeloop_front_end: true
architecture:
  version: '0.4'
  subtree:
  - name: system_top_level
    local:
    - name: fanout[1..1]
      class: dummy_storage
      attributes: {width: 1, depth: 1, datawidth: 1, technology: -1}
    - name: DRAM[1..1]
      class: DRAM
      attributes: {type: LPDDR4, width: 64, datawidth: 8, technology: "22nm", global_cycle_seconds: 1e-9}
    - name: SMEM[1..1]
      class: storage
      subclass: smartbuffer_metadata
      attributes: {depth: 4096, width: 128, n_banks: 2, datawidth: 8, metadata_storage_depth: 512,
                   metadata_storage_width: 32, technology: "22nm"}
    - name: ABuf[1..1]
      class: storage
      subclass: smartbuffer_SRAM
      attributes: {depth: 1024, width: 128, datawidth: 8, technology: "22nm"}
    - name: mac[1..256]
      class: compute
      subclass: intmac
      attributes: {multiplier_width: 8, adder_width: 24, meshX: 16, meshY: 16, technology: "22nm"}
architecture_constraints:
  targets:
  - {target: SMEM, type: dataspace, keep: [Weights], bypass: [Inputs, Outputs]}
  - {target: ABuf, type: dataspace, keep: [Inputs, Outputs], bypass: [Weights]}
  - {target: fanout, type: spatial, permutation: NKM, factors: K=1}
sparse_optimizations:
  targets:
  - target: SMEM
    representation_format:
      data_spaces:
      - name: Weights
        ranks: [{format: UOP}, {format: CP, metadata_word_bits: 2}]
"""


def _import_text(tmp_path, text, sparse=None, name="a"):
    arch = _bad(tmp_path, text, name)
    sp = _bad(tmp_path, sparse, "sparse_opt") if sparse else None
    out, defaults = import_timeloop(arch, tmp_path / f"{name}_design.yaml", sparse_opt=sp)
    return load_design(out), defaults, out.read_text().split("\nversion:")[0]


def test_timeloop_v03_subtree_with_older_attribute_names(tmp_path):
    d, defaults, _ = _import_text(tmp_path, V03_EYERISS)
    assert [(s.name, s.cls, s.capacity_bytes, s.word_bits) for s in d.storage[1:]] == [
        ("glb", "sram", 8192 * 64 // 8, 64), ("col_buf", "regfile", 32, 16), ("in_spad", "regfile", 24, 16)]
    assert d.storage[1].banks == 16
    assert (d.compute.rows, d.compute.cols, d.compute.datatypes, d.technology_nm) == (12, 10, {"int16": 1.0}, 45)
    assert any("glb.read_bandwidth" in x and x.startswith("not read") for x in defaults), defaults


def test_timeloop_v02_networks_skipped_and_registers_after_the_mac(tmp_path):
    d, defaults, head = _import_text(tmp_path, V02_NOC)
    assert [(s.name, s.cls, s.capacity_bytes, s.word_bits) for s in d.storage] == [
        ("DRAM", "dram", 0, 64), ("glb", "sram", 4096 * 4 * 16 // 8, 64), ("weight_reg", "regfile", 2, 16)]
    assert (d.compute.rows, d.compute.cols, d.technology_nm) == (8, 8, 40)
    assert "act_NoC: not modelled (a network" in head


#: The exercises' eyeriss-256 (v0.2, `06-mapper-convlayer-eyeriss/arch/eyeriss-256.arch.yaml`), cut
#: down: its 40 nm node and the shape of its levels; the GlobalBuffer 2048 deep (16 KiB, not 16384)
#: so that CACTI runs in under a second.
V02_EYERISS_256 = """
architecture:
  version: 0.2
  subtree:
  - name: System
    local:
    - {name: DRAM, class: DRAM, attributes: {width: 64, word-bits: 16, block-size: 4}}
    subtree:
    - name: Eyeriss
      attributes: {technology: 40nm}
      local:
      - name: GlobalBuffer
        class: SRAM
        attributes: {depth: 2048, width: 64, block-size: 4, word-bits: 16, meshX: 1}
      subtree:
      - name: PE[0..255]
        local:
        - {name: WeightRegFile, class: regfile, attributes: {depth: 192, width: 16, block-size: 1, word-bits: 16, meshX: 16}}
        - {name: MACs, class: intmac, attributes: {datawidth: 16, meshX: 16}}
"""


def test_a_40nm_arch_gets_cacti_area_at_40nm(tmp_path, monkeypatch):
    """CACTI 7 runs at any whole nm from 22 to 90 (it interpolates between its 45 and 32 nm files
    at 40 nm): the eyeriss-256 arch's 40 nm was run at 45 nm and its area said to be unknown."""
    from hwmodel import cacti

    monkeypatch.setenv("NMLAB_CACHE_DIR", str(tmp_path / "cache"))
    d, _, _ = _import_text(tmp_path, V02_EYERISS_256)
    assert d.technology_nm == 40 and [(s.name, s.capacity_bytes, s.word_bits) for s in d.srams] == [
        ("GlobalBuffer", 2048 * 64 // 8, 64)]
    res = hwmodel.simulate(data_path("workloads", WORKLOAD), d, bits=16)
    glb = d.srams[0]
    at_40 = cacti.run_cacti(glb.capacity_bytes, glb.word_bits, glb.banks, glb.read_ports, glb.write_ports, 40)
    assert res.area_mm2 == pytest.approx(at_40.area_mm2, rel=1e-9)
    assert res.extra["area_note"].startswith("SRAM area from CACTI 7")


def test_sparseloop_v03_storage_subclasses_and_hyphenated_sparse_opt(tmp_path):
    d, defaults, head = _import_text(tmp_path, V03_SPARSELOOP)
    glb, line = d.srams
    assert (glb.name, glb.capacity_bytes, glb.word_bits, glb.banks, line.capacity_bytes) == (
        "GLB", 4096 * 256 // 8, 256, 2, 32 * 16 // 8)
    assert (d.compute.rows, d.compute.cols, d.compute.datatypes) == (4, 16, {"int16": 1.0})
    # read_bandwidth 16 words of 16 bits per 1 GHz cycle: 32 GB/s, stated.
    assert d.dram.bandwidth_bytes_per_cycle == pytest.approx(32.0) and "from read_bandwidth" in head
    assert d.sparsity.support == "none"
    # Weights compressed at DRAM and at the SRAM: the SRAM holds the metadata, bitmask format.
    d, _, _ = _import_text(tmp_path, V03_SPARSELOOP, V03_SPARSE_OPT, name="b")
    assert (d.sparsity.support, d.sparsity.index_format) == ("unstructured", "bitmask")
    assert d.sram_for("metadata").name == "GLB"


def test_timeloopfe_element_tag_and_constraints_in_the_arch_file(tmp_path):
    d, defaults, head = _import_text(tmp_path, ELEMENT_SPLIT)
    assert [(s.name, set(s.holds), s.capacity_bytes) for s in d.storage[1:]] == [
        ("glb", {"inputs", "outputs"}, 2048 * 64 // 8), ("wbuf", {"weights"}, 8192),
        ("reg", {"weights", "inputs", "outputs"}, 4)]
    assert (d.compute.rows, d.compute.cols, d.clock_hz, d.technology_nm) == (4, 8, 500e6, 32)
    assert "from the arch file's own constraints" in head and "fanout: not modelled" in head
    # A conv permutation written in the arch file is passed over (a --constraints file's is an error).
    assert d.compute.kind == "systolic" and d.compute.dataflow == "ws"


def test_processed_input_as_one_file(tmp_path):
    d, defaults, head = _import_text(tmp_path, PROCESSED_ONE_FILE)
    assert (d.technology_nm, d.compute.kind, d.compute.dataflow) == (22, "systolic", "ws")
    assert [(s.name, set(s.holds)) for s in d.srams] == [("SMEM", {"weights", "metadata"}),
                                                         ("ABuf", {"inputs", "outputs"})]
    assert (d.sparsity.support, d.sparsity.max_m) == ("layerwise", 4)
    assert "sparse_optimizations (no --sparse-opt)" in head and "architecture_constraints" in head


def _swap(text: str, old: str, new: str) -> str:
    assert old in text, old
    return text.replace(old, new)


#: Published shapes nmlab cannot model or must not guess: (arch text, sparse_opt text or None, needles).
REFUSED = {
    "jinja include_text": ("{{include_text('defines.yaml')}}\n" + NODES_ARCH, None,
                           ("line 1", "Jinja2 template", "parsed-processed-input.yaml")),
    "jinja in a value": (_swap(NODES_ARCH, 'technology: "22nm"', 'technology: "{{tech}}"'), None,
                         ("line 7", "Jinja2 template")),
    "jinja statement": ("{% if big %}\n" + NODES_ARCH + "{% endif %}\n", None, ("line 1", "Jinja2 template")),
    "include lines": ("!include ./macros.yaml\n!include ./variables.yaml\n" + NODES_ARCH, None,
                      ("line 1", "'!include' is a timeloopfe tag")),
    "Include tag": (_swap(NODES_ARCH, "attributes: {depth: 1, width: 8, datawidth: 8}",
                          "attributes: !Include reg_attrs.yaml"), None, ("line 36", "'!Include' is a timeloopfe tag")),
    "hierarchical merge": (_swap(NODES_ARCH, "    name: chip\n", "    name: chip\n    <<<: *defaults\n"), None,
                           ("hierarchical merge key",)),
    "expression": (_swap(NODES_ARCH, "depth: 8192", "depth: GLB_DEPTH // 2"), None,
                   ("nodes[3].attributes.depth", "an expression or variable", "timeloopfe")),
    "variable technology": (_swap(NODES_ARCH, 'technology: "22nm"', "technology: TECH_NODE"), None,
                            ("technology: must be like '22nm', got 'TECH_NODE' (an expression or variable",)),
    "variable mesh": (_swap(NODES_ARCH, "meshX: 16", "meshX: N_COLS"), None,
                      ("nodes[5].spatial.meshX", "'N_COLS'", "an expression or variable")),
    "weights bypass the SRAMs (eyeriss/simba)": (
        _swap(NODES_ARCH, "dataspace: {keep: [Weights], bypass: [Inputs, Outputs]}",
              "dataspace: {keep: [Inputs], bypass: [Weights, Outputs]}"), None,
        ("nodes[3].constraints.dataspace.keep", "no SRAM level keeps weights", "WeightBuffer keeps inputs")),
    "per-PE SRAM (simple_weight_stationary)": (
        _swap(NODES_ARCH, "      name: wreg\n      class: regfile", "      name: wreg\n      class: smartbuffer_SRAM"),
        None, ("nodes[6].nodes[0].name", "128 instances of SRAM 'wreg'", "register files")),
    "gemm_ABZ data spaces (sparse_tensor_core_like)": (
        _swap(NODES_ARCH, "dataspace: {keep: [Weights], bypass: [Inputs, Outputs]}",
              "dataspace: {keep: [A], bypass: [B, Z]}"), None,
        ("nodes[3].constraints.dataspace.keep[0]", "gemm_ABZ", "renamed")),
    "two compute units": (NODES_ARCH + "  - !Component {name: mac2, class: fpmac, attributes: "
                                       "{multiplier_width: 16}}\n", None,
                          ("nodes[8]", "a second compute component 'mac2'", "one MAC array")),
    "nodes form is v0.4": (_swap(NODES_ARCH, "version: 0.4", "version: 0.3"), None,
                           ("architecture.version", "0.2/0.3 in the subtree form")),
    "component class": (_swap(NODES_ARCH, "class: intmac", "class: aladdin_adder"), None,
                        ("nodes[7].class", "'aladdin_adder' is not a class nmlab models")),
    "sparse A/B data spaces": (V03_SPARSELOOP, _swap(V03_SPARSE_OPT, "name: Weights", "name: A"),
                               ("targets[0].representation_format.data_spaces", "'A', none of them Weights")),
    "weights compressed only at DRAM": (
        V03_SPARSELOOP, V03_SPARSE_OPT.split("  - name: GLB")[0],
        ("targets[0].representation_format.data_spaces[0].ranks[1]", "compressed only at DRAM")),
    "run-length weights": (
        V03_SPARSELOOP, _swap(V03_SPARSE_OPT, "{format: B, metadata-word-bits: 1}]\n  - name: LineBuffer",
                              "{format: RLE, metadata-word-bits: 4}]\n  - name: LineBuffer"),
        ("targets[1].representation_format.data_spaces[0].ranks[1].format", "'RLE'", "not modelled")),
    # NVlabs/timeloop configs/timeloop/sample.yaml: was "architecture: must be a mapping, got None"
    "pre-v0.2 arch: arithmetic/storage": ("arch:\n  arithmetic: {instances: 1024, word-bits: 8}\n  storage:\n"
                                          "  - {name: DRAM, technology: DRAM, instances: 1, word-bits: 8}\n", None,
                                          ("arch: Timeloop's pre-v0.2 format", "arithmetic", "v0.4")),
    # Accelergy's timeloop-mapper.flattened_architecture.yaml: was "architecture.subtree: must be a list, got None"
    "accelergy flattened architecture": ("architecture:\n  version: '0.4'\n  local:\n"
                                         "  - {name: 'system_top_level.DRAM[1..1]', class: DRAM, attributes: {width: 64}}\n",
                                         None, ("architecture.local", "flattened_architecture.yaml", "parsed-processed")),
    # Timeloop v0.2's `instances` attribute counts as a name range does: 4 instances of one SRAM (was one shared array)
    "SRAM with instances: 4 (v0.2)": (_swap(V03_EYERISS, "n_banks: 16,", "n_banks: 16, instances: 4,"), None,
                                      ("local[0].name", "4 instances of SRAM 'glb'",)),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_published_shapes_nmlab_cannot_model_are_one_line_exit_2(tmp_path, capsys, case):
    from hwmodel.cli import main

    text, sparse, needles = REFUSED[case]
    args = ["import-timeloop", str(_bad(tmp_path, text))]
    if sparse is not None:
        args += ["--sparse-opt", str(_bad(tmp_path, sparse, "sparse_opt"))]
    out = tmp_path / "d.yaml"
    assert main(args + ["--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Traceback" not in err[0], err
    for needle in needles:
        assert needle in err[0], (needle, err[0])
    assert not out.exists()


@pytest.mark.parametrize("cls, kind", [
    ("smartbuffer_SRAM", "sram"), ("SRAM_MD", "sram"), ("smartbuffer_metadata", "sram"), ("DRAM", "dram"),
    ("smartbuffer_RF", "regfile"), ("regfile_metadata", "regfile"), ("reg_storage", "regfile"),
    ("aladdin_register", "regfile"), ("intmac", "mac"), ("fpmac", "mac"), ("Imac", "mac"), ("lmac", "mac"),
    ("mac_compute", "mac"), ("compute", "mac"), ("XY_NoC", "network"), ("aladdin_adder", None), ("storage", None), ("XY_router", None),
])
def test_compound_component_class_names(cls, kind):
    """Compound components are read by what they are named after; anything else is refused by name."""
    from hwmodel.timeloop_import import _kind

    assert _kind(cls) == kind


#: timeloopfe v4 writes sparse_optimizations on the components (sparseloop examples): the
#: weight SRAM's CP rank, another operand's RLE at DRAM, skipping conditioned on the inputs.
NODES_SPARSE = _swap(_swap(NODES_ARCH, '''    attributes: {depth: 8192, width: 128, n_banks: 4, datawidth: 8, multiple_buffering: 2}
''', '''    attributes: {depth: 8192, width: 128, n_banks: 4, datawidth: 8, multiple_buffering: 2}
    sparse_optimizations:
      representation_format:
        data_spaces:
        - {name: Weights, ranks: [{format: UOP}, {format: CP, metadata_word_bits: 2}]}
      action_optimization:
      - type: skipping
        options: [{target: Inputs, condition_on: [Weights]}]
'''), '''    attributes: {type: "LPDDR4", width: 64, datawidth: 8, shared_bandwidth: 16}
''', '''    attributes: {type: "LPDDR4", width: 64, datawidth: 8, shared_bandwidth: 16}
    sparse_optimizations:
      representation_format:
        data_spaces:
        - {name: Inputs, ranks: [{format: UOP}, {format: RLE}]}
      action_optimization:
      - type: gating
        options: [{target: Outputs, condition_on: [Inputs]}]
''')


def test_sparse_optimizations_written_on_the_nodes(tmp_path):
    d, defaults, head = _import_text(tmp_path, NODES_SPARSE)
    assert (d.sparsity.support, d.sparsity.max_m) == ("layerwise", 4)
    assert d.sram_for("metadata").name == "WeightBuffer"
    assert "written on the nodes" in head
    # What nmlab does not model is said, not dropped; skipping conditioned on the weights is nmlab's own.
    assert "DRAM: Inputs compressed: not modelled" in head
    assert "DRAM: 'gating' of 'Outputs' on ['Inputs']: not modelled" in head
    assert "WeightBuffer: 'skipping'" not in head
    # A --sparse-opt file wins over what the nodes say.
    sp = _bad(tmp_path, "sparse_optimizations: {targets: []}\n", "sparse_opt")
    out, _ = import_timeloop(_bad(tmp_path, NODES_SPARSE, "b"), tmp_path / "b_design.yaml", sparse_opt=sp)
    assert load_design(out).sparsity.support == "none"


def test_gemm_abz_sparse_optimizations_on_the_nodes_are_one_line_exit_2(tmp_path, capsys):
    """Sparseloop's spMspM example: operands A and B compressed on the nodes."""
    from hwmodel.cli import main

    text = _swap(NODES_SPARSE, "- {name: Weights, ranks:", "- {name: A, ranks:")
    text = _swap(text, "- {name: Inputs, ranks:", "- {name: B, ranks:")
    out = tmp_path / "d.yaml"
    assert main(["import-timeloop", str(_bad(tmp_path, text)), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "nodes[1].sparse_optimizations.representation_format.data_spaces: names 'B'" in err[0]
    assert not out.exists()


def test_ert_tables_of_skipped_components_are_listed_not_refused(tmp_path):
    """An Accelergy ERT of a v0.2 arch has tables for its networks (and a processed spec's for
    dummy_storage levels): the import skipped those components, so their tables are listed as not
    mapped; a table naming no component at all is still an error."""
    arch = _bad(tmp_path, V02_NOC)
    tables = [{"name": "system.chip.act_NoC", "actions": [{"name": "transfer", "energy": 1.5}]},
              {"name": "system.chip.glb[1..1]", "actions": [{"name": "read", "energy": 6.4},
                                                            {"name": "write", "energy": 6.4}]},
              {"name": "system.chip.PE[0..63].mac", "actions": [{"name": "compute", "energy": 0.5}]}]
    ert = _bad(tmp_path, yaml.safe_dump({"ERT": {"version": "0.4", "tables": tables}}), "ert")
    out, defaults = import_timeloop(arch, tmp_path / "e.yaml", ert=ert)
    d = load_design(out)
    assert dict(d.energy.sram)["glb"].read_pj_per_bit == pytest.approx(6.4 / 64)
    assert dict(d.energy.mac_pj) == {"int16": 0.5}
    assert "ERT act_NoC: not mapped (the import skipped that component)" in defaults
    tables.append({"name": "system.chip.adder", "actions": []})
    ert = _bad(tmp_path, yaml.safe_dump({"ERT": {"version": "0.4", "tables": tables}}), "ert")
    with pytest.raises(NmlabError, match="no component 'adder'"):
        import_timeloop(arch, tmp_path / "f.yaml", ert=ert)
    assert not (tmp_path / "f.yaml").exists()


#: The exercises' baseline simba_like (v0.3): word-bits inherited from the system, PE buffers
#: with no width (block-size words of word-bits; block-size 1 when not given), `class: compute`
#: with `subclass: lmac`, hyphenated attributes.
V03_SIMBA = """
architecture:
  version: 0.3
  subtree:
  - name: System
    attributes: {datawidth: 8, word-bits: 8, technology: 45nm}
    local:
    - {name: DRAM, class: DRAM, attributes: {type: LPDDR4, width: 64, block-size: 8, word-bits: 8}}
    subtree:
    - name: ws
      local:
      - name: GlobalBuffer
        class: storage
        subclass: smartbuffer_SRAM
        attributes: {memory_depth: 1024, memory_width: 128, word-bits: 8, block-size: 16, n_banks: 2, nports: 2}
      subtree:
      - name: PE[0..7]
        local:
        - name: PEWeightBuffer[0..1]
          class: storage
          subclass: smartbuffer_RF
          attributes: {memory_depth: 256, word-bits: 8, block-size: 4, meshX: 8}
        - name: PEAccuBuffer[0..1]
          class: storage
          subclass: smartbuffer_RF
          attributes: {memory_depth: 16, word-bits: 24, datawidth: 24, meshX: 8}
        - name: LMAC[0..3]
          class: compute
          subclass: lmac
          attributes: {datawidth: 8, meshX: 8}
"""


def test_timeloop_v03_simba_widths_from_word_bits_and_lmac(tmp_path):
    d, defaults, head = _import_text(tmp_path, V03_SIMBA)
    assert [(s.name, s.cls, s.capacity_bytes, s.word_bits) for s in d.storage[1:]] == [
        ("GlobalBuffer", "sram", 1024 * 128 // 8, 128), ("PEWeightBuffer", "regfile", 256 * 4 * 8 // 8, 32),
        ("PEAccuBuffer", "regfile", 16 * 24 // 8, 24)]
    assert (d.compute.rows, d.compute.cols, d.compute.datatypes) == (4, 8, {"int8": 1.0})
    # nmlab's register files are operand registers: said, since Simba's are 64 KiB PE buffers.
    assert "register files PEWeightBuffer, PEAccuBuffer: nmlab charges operand registers per MAC" in head
    assert "GlobalBuffer.nports" in head


#: Timeloop v0.3 constraints (the exercises' cnn-layer-eyeriss-192-rs.constraints.yaml shape):
#: mapspace_constraints is the list itself, dataspace constraints are `type: datatype` / `bypass`,
#: permutations are strings with a space at the split.
V03_CONSTRAINTS = """
mapspace_constraints:
  - {type: datatype, target: in_spad, keep: [Inputs], bypass: [Weights, Outputs]}
  - {type: bypass, target: col_buf, bypass: [Inputs, Outputs, Weights]}
  - {type: spatial, target: glb, permutation: NK M, split: 2, factors: M=1}
  - {type: temporal, target: glb, permutation: QRSC PNK, factors: Q=1 R=1}
"""


def test_timeloop_v03_mapspace_constraints(tmp_path):
    arch = _bad(tmp_path, V03_EYERISS)
    out, defaults = import_timeloop(arch, tmp_path / "c.yaml", constraints=_bad(tmp_path, V03_CONSTRAINTS, "cons"))
    d = load_design(out)
    assert [(s.name, set(s.holds)) for s in d.storage[1:]] == [("glb", {"weights", "inputs", "outputs"}),
                                                               ("in_spad", {"inputs"})]
    assert (d.compute.kind, d.compute.dataflow) == ("systolic", "ws")
    assert any(x.startswith("col_buf: not modelled (a network, or a level that keeps no operand") for x in defaults)
    # A convolution's spatial string (Eyeriss's row stationary) names no dataflow nmlab models.
    conv = _bad(tmp_path, _swap(V03_CONSTRAINTS, "permutation: NK M", "permutation: NPQR SCK"), "conv")
    with pytest.raises(NmlabError, match=r"mapspace_constraints\[2\].permutation: first two ranks \['N', 'P'\]"):
        import_timeloop(arch, tmp_path / "c2.yaml", constraints=conv)


@pytest.mark.parametrize("name, needle", [
    ("Weight\nBuffer", "must be printable"),
    ("W" * 100_000, "a storage level name nmlab can take is 1 to 64"),
    ("W" * 65 + "[0..3]", "a storage level name nmlab can take is 1 to 64"),
    (" WeightBuffer", "neither starts nor ends with a space"),
    ("WeightBuffer [0..3]", "neither starts nor ends with a space"),
])
def test_an_arch_level_name_nmlab_cannot_take_is_refused(tmp_path, capsys, name, needle):
    """A level name is written into the design (and the header's notes): a newline or a
    100,000-character name imported; it is refused naming the arch field, not rewritten (a
    rewritten name would no longer match the constraints and ERT tables that name it)."""
    from hwmodel.cli import main

    tl = _export(tmp_path)
    arch = yaml.safe_load((tl / "arch.yaml").read_text())
    arch["architecture"]["subtree"][0]["local"][1]["name"] = name
    p = _bad(tmp_path, yaml.safe_dump(arch))
    out = tmp_path / "d.yaml"
    assert main(["import-timeloop", str(p), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "architecture.subtree[0].local[1].name" in err[0] and needle in err[0], err
    assert len(err[0]) < 500 and not out.exists()


def test_the_design_name_taken_from_the_file_name_never_starts_or_ends_with_a_space(tmp_path, capsys):
    """Without --name the design is named after --out's file name: spaces there become '_' (a design name
    that starts or ends with a space is refused: it reads as another name in every table); --name with one
    is refused in one line."""
    from hwmodel.cli import main

    arch = _export(tmp_path) / "arch.yaml"
    out, _ = import_timeloop(arch, tmp_path / " my arch .yaml")
    assert load_design(out).name == "_my_arch_"
    assert main(["import-timeloop", str(arch), "--out", str(tmp_path / "n.yaml"), "--name", " edge_ws"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--name: must be 1 to 64 letters, digits, '_', '-' or '.', got ' edge_ws'" in err[0], err
    assert not (tmp_path / "n.yaml").exists()


def test_component_with_only_subclass_compute_is_the_mac(tmp_path):
    """A timeloopfe Component may give only ``subclass``; ``subclass: compute`` with no class is the
    MAC array (it used to raise KeyError: 'class', a traceback)."""
    arch = tmp_path / "arch.yaml"
    arch.write_text(HAND_ARCH.replace("class: intmac", "subclass: compute"))
    out, _ = import_timeloop(arch, tmp_path / "d.yaml")
    d = load_design(out)
    assert (d.compute.rows, d.compute.cols, d.compute.datatypes) == (8, 8, {"int8": 1.0})


def _flex_nm_with(tmp_path, edit):
    """flex_nm exported (its WeightBuffer keeps the weights' CP format), ``edit`` applied to the arch's
    WeightBuffer component and the system node's attributes, imported with its constraints and
    sparse optimizations."""
    tl = _export(tmp_path, "flex_nm")
    a = yaml.safe_load((tl / "arch.yaml").read_text())
    system = a["architecture"]["subtree"][0]
    wb = next(c for c in system["local"] if c["name"].startswith("WeightBuffer"))
    edit(wb, system["attributes"])
    (tl / "arch.yaml").write_text(yaml.safe_dump(a))
    out, defaults = import_timeloop(tl / "arch.yaml", tmp_path / "d.yaml", constraints=tl / "constraints.yaml",
                                    sparse_opt=tl / "sparse_opt.yaml")
    return load_design(out), defaults


def test_class_null_with_subclass_sram_keeps_the_weight_format(tmp_path):
    """``class: null`` is no class, so ``subclass: SRAM`` names the level: an SRAM level, and so the
    weight SRAM the sparse format is kept at (the weight-format stage read the null class and refused
    the arch: "weights are compressed only at WeightBuffer, no SRAM level")."""
    d, _ = _flex_nm_with(tmp_path, lambda wb, _: wb.update({"class": None, "subclass": "SRAM"}))
    wb = next(s for s in d.storage if s.name == "WeightBuffer")
    assert wb.cls == "sram" and "metadata" in wb.holds
    assert (d.sparsity.support, d.sparsity.max_m) == ("layerwise", 4)


def test_a_specific_class_with_subclass_dummy_storage_is_that_class(tmp_path):
    """``class: SRAM, subclass: dummy_storage``: Timeloop keeps data at an SRAM (its role is the class),
    Accelergy prices it as dummy_storage (the subclass). It is an SRAM level, so its ``technology`` is
    read like any level's (it was passed over as a dummy's placeholder: 45 nm, stated as not given)."""
    def edit(wb, system_attrs):
        wb["subclass"] = "dummy_storage"
        wb["attributes"]["technology"] = "7nm"
        del system_attrs["technology"]

    d, defaults = _flex_nm_with(tmp_path, edit)
    assert d.technology_nm == 7 and not any(x.startswith("technology_nm") for x in defaults)
    assert [s.name for s in d.storage if s.cls == "sram"] == ["WeightBuffer", "ActBuffer"]


@pytest.mark.parametrize("comp, key, kind", [
    ({"class": "SRAM"}, "class", "sram"),
    ({"class": "SRAM", "subclass": "dummy_storage"}, "class", "sram"),      # the class decides; subclass prices
    ({"class": "regfile", "subclass": "SRAM"}, "class", "regfile"),
    ({"class": None, "subclass": "SRAM"}, "subclass", "sram"),              # null class: named by subclass
    ({"subclass": "smartbuffer_SRAM"}, "subclass", "sram"),
    ({"subclass": "dummy_storage"}, "subclass", "dummy"),
    ({"class": "dummy_storage"}, "class", "dummy"),
    ({"class": "dummy_storage", "subclass": "SRAM"}, "class", "dummy"),
    ({"class": "storage", "subclass": "dummy_storage"}, "subclass", "dummy"),
    ({"class": "storage", "subclass": "smartbuffer_RF"}, "subclass", "regfile"),
    ({"class": "storage", "subclass": "intmac"}, "subclass", None),         # storage names no MAC
    ({"class": "Storage"}, "class", None),                                  # a role with no kind
    ({"class": "compute", "subclass": "lmac"}, "subclass", "mac"),
    ({"class": "compute", "subclass": "dummy_storage"}, "subclass", "mac"),  # compute is the MAC, any subclass
    ({"class": 5, "subclass": "SRAM"}, "class", None),
    ({"class": "storage", "subclass": None}, "subclass", None),
    ({}, "class", None),
])
def test_one_function_decides_a_components_class(comp, key, kind):
    """Every stage (the levels, the weight SRAM, the system attributes) asks _classify: a table of the
    class/subclass combinations it decides."""
    from hwmodel.timeloop_import import _classify

    c = _classify(comp)
    assert (c.key, c.kind) == (key, kind)


def test_round_trip_carries_unequal_ports_and_single_buffering(tmp_path):
    """Every bundled SRAM has one read and one write port and double buffering, so a swap of the
    two port counts or a lost multiple_buffering could pass the bundled round trips: an SRAM with
    2 read ports, 1 write port and no double buffering comes back as it went."""
    d = load_design("edge_ws")
    i = next(j for j, s in enumerate(d.storage) if s.cls == "sram")
    sram = dataclasses.replace(d.storage[i], read_ports=2, write_ports=1, double_buffered=False)
    d = dataclasses.replace(d, storage=d.storage[:i] + (sram,) + d.storage[i + 1:])
    _, imp, _, _ = _round_trip(tmp_path, "edge_ws", d)
    back = next(s for s in imp.storage if s.name == sram.name)
    assert (back.read_ports, back.write_ports, back.double_buffered) == (2, 1, False)


def test_a_components_own_technology_wins_over_the_one_it_inherits(tmp_path):
    """Like every attribute, a component's own ``technology`` overrides the one of the nodes above it,
    and the MAC's and on-chip levels' win over the DRAM's: timeloopfe's parsed-processed-input.yaml
    of simple_weight_stationary has ``technology: "SET ME"`` on the top node and "45nm" on each
    component but the DRAM (it was a one-line error); a 22nm chip under a 45nm system was read as 45."""
    arch = tmp_path / "arch.yaml"
    arch.write_text(HAND_ARCH.replace("attributes: {depth: 4096,", "attributes: {technology: 22nm, depth: 4096,")
                    .replace("attributes: {multiplier_width: 8,", "attributes: {technology: 22nm, multiplier_width: 8,"))
    out, _ = import_timeloop(arch, tmp_path / "a.yaml")
    assert load_design(out).technology_nm == 22
    arch.write_text(HAND_ARCH.replace("technology: 45nm", 'technology: "SET ME"')
                    .replace("    - name: chip\n", "    - name: chip\n      attributes: {technology: 45nm}\n"))
    out, _ = import_timeloop(arch, tmp_path / "b.yaml")
    assert load_design(out).technology_nm == 45
    # Where the MAC itself carries the placeholder, the error names that component.
    arch.write_text(HAND_ARCH.replace("attributes: {multiplier_width: 8,", "attributes: {technology: SET ME, multiplier_width: 8,"))
    with pytest.raises(NmlabError, match=r"local\[1\]\.attributes\.technology: must be like '22nm', got 'SET ME'"):
        import_timeloop(arch, tmp_path / "c.yaml")


def test_timeloop_size_block_and_instance_attributes(tmp_path):
    """Timeloop's buffer sizes other than depth (``sizeKB``, ``entries``), its ``n_words`` block size,
    ``word_width`` and the v0.2 ``instances`` attribute (NVlabs/timeloop orojenesis archs give a
    ``sizeKB``; timeloop-accelergy-exercises' 3levelspatial ``n_words``): a level with ``sizeKB`` or
    ``entries`` was "depth: must be an integer, got None", a MAC with ``instances: 64, meshX: 8`` was
    one row of 8 MACs."""
    arch = tmp_path / "arch.yaml"
    arch.write_text("""
architecture:
  version: 0.2
  subtree:
  - name: System
    attributes: {technology: 40nm}
    local:
    - name: DRAM
      class: DRAM
      attributes: {type: LPDDR4, width: 64, word-bits: 8}
    - name: GLB
      class: SRAM
      attributes: {sizeKB: 32, word-bits: 8, block-size: 8, instances: 1}
    - name: Line
      class: SRAM
      attributes: {entries: 256, word_width: 16, n_words: 4}
    subtree:
    - name: PE
      local:
      - name: Buffer
        class: regfile
        attributes: {entries: 16, word-bits: 16, instances: 64, meshX: 8}
      - name: MACC
        class: intmac
        attributes: {datawidth: 8, instances: 64, meshX: 8}
""")
    out, _ = import_timeloop(arch, tmp_path / "d.yaml")
    d = load_design(out)
    glb, line, buf = d.storage[1:]
    assert (glb.capacity_bytes, glb.word_bits) == (32768, 64)     # 32 KiB in 8 x 8-bit lines
    assert (line.capacity_bytes, line.word_bits) == (512, 64)     # 256 16-bit words in 4-word lines
    assert (buf.capacity_bytes, buf.word_bits) == (32, 16)
    assert (d.compute.rows, d.compute.cols) == (8, 8)
    arch.write_text(arch.read_text().replace("entries: 256,", "entries: 2,"))
    with pytest.raises(NmlabError, match=r"local\[2\]\.attributes\.entries: 2 entries is 32 bits, not a whole number of 64-bit lines"):
        import_timeloop(arch, tmp_path / "e.yaml")


def test_an_ert_action_listed_by_arguments_takes_its_largest_energy(tmp_path):
    """Accelergy v0.3 ERTs list an action once per argument value (simba_like's timeloop-mapper.ERT.yaml:
    `read` at address_delta/data_delta 0/1, 0.055 to 0.237 pJ); Timeloop's ParseAccelergyERT prices the
    action at the largest. The first entry (the cheapest there) was taken."""
    tl = _export(tmp_path)
    ert = yaml.safe_load((tl / "ERT.yaml").read_text())
    dram = ert["ERT"]["tables"][0]
    read = next(a for a in dram["actions"] if a["name"] == "read")
    e = read["energy"]
    dram["actions"] = [{"name": "read", "arguments": {"data_delta": 0}, "energy": e / 4},
                       {"name": "read", "arguments": {"data_delta": 1}, "energy": e},
                       {"name": "read", "arguments": {"data_delta": 2}, "energy": e / 2}] + \
        [a for a in dram["actions"] if a["name"] != "read"]
    out, _ = _import_with_ert(tmp_path, tl, ert=_bad(tmp_path, yaml.safe_dump(ert), "ert"))
    assert load_design(out).energy.dram_pj_per_bit == pytest.approx(e / 64, rel=1e-12)


def test_a_zero_capacity_level_is_skipped_as_a_fanout_placeholder(tmp_path):
    """Timeloop v0.2/v0.3 archs write a spatial fanout as a storage level of depth 0 (Sparseloop's
    eyeriss_like_onchip_compression: `DummyBuffer[0..13]`, class storage, subclass SRAM, depth 0,
    entries 0): it holds nothing, as timeloopfe's dummy_storage. It was "depth: must be between 1 and ..."."""
    arch = tmp_path / "arch.yaml"
    arch.write_text(_swap(V03_EYERISS, "      - name: col_buf[0..9]\n",
                          "      - name: DummyBuffer[0..9]\n        class: storage\n        subclass: SRAM\n"
                          "        attributes: {width: 16, depth: 0, entries: 0, datawidth: 16, meshX: 10}\n"
                          "      - name: col_buf[0..9]\n"))
    out, defaults = import_timeloop(arch, tmp_path / "d.yaml")
    assert "DummyBuffer" not in [s.name for s in load_design(out).storage]
    assert any(x.startswith("DummyBuffer: not modelled (size 0") for x in defaults), defaults


def test_a_convolution_spatial_target_in_a_constraints_file_says_what_to_do(tmp_path):
    """timeloop-accelergy-exercises' simple_weight_stationary_arch_constraints.yaml maps C and M over
    the PE array (`type: spatial, permutation: CM`): the error named the ranks, not what to change."""
    cons = _bad(tmp_path, _swap(V03_CONSTRAINTS, "permutation: NK M", "permutation: CM"), "cons")
    with pytest.raises(NmlabError, match=r"mapspace_constraints\[2\]\.permutation: first two ranks \['C', 'M'\] .*"
                                         r"convolution.*rewrite this spatial target over M, K, N or remove it"):
        import_timeloop(_bad(tmp_path, V03_EYERISS), tmp_path / "c.yaml", constraints=cons)


def test_timeloop_hyphenated_banks_and_multiple_buffering(tmp_path):
    """Timeloop's own buffer model reads `multiple-buffering` and `num-banks` (v0.2/v0.3 archs;
    Sparseloop's eyeriss_like_onchip_compression writes `num_banks`): they were dropped without a
    word (the header said "no multiple_buffering", banks 1)."""
    arch = _bad(tmp_path, _swap(V03_EYERISS, "n_banks: 16,", "num-banks: 8, multiple-buffering: 2,"))
    out, defaults = import_timeloop(arch, tmp_path / "d.yaml")
    glb = load_design(out).storage[1]
    assert (glb.banks, glb.double_buffered) == (8, True)
    assert not any(x.startswith("glb.double_buffered") for x in defaults)
    arch = _bad(tmp_path, _swap(V03_EYERISS, "n_banks: 16,", "num_banks: 4,"))
    out, _ = import_timeloop(arch, tmp_path / "e.yaml")
    assert load_design(out).storage[1].banks == 4


def test_a_components_own_older_attribute_name_wins_over_an_inherited_newer_one(tmp_path):
    """simba_like v0.3 gives `datawidth: 8, word-bits: 8` on its System node; a component below that
    gives its own `word-bits: 16` (the older name) is 16 bits wide, as Timeloop reads it. The
    inherited `datawidth` won (the MAC came back int8, a width-less level 8-bit words)."""
    text = _swap(V03_EYERISS, "      attributes: {technology: 45nm}\n",
                 "      attributes: {technology: 45nm, datawidth: 8}\n")
    text = _swap(text, "attributes: {datawidth: 16, meshX: 10}", "attributes: {word-bits: 16, meshX: 10}")
    text = _swap(text, "attributes: {memory_depth: 12, memory_width: 16, word_bits: 16, meshX: 10}",
                 "attributes: {memory_depth: 12, block-size: 2, word-bits: 16, meshX: 10}")
    out, _ = import_timeloop(_bad(tmp_path, text), tmp_path / "d.yaml")
    d = load_design(out)
    assert d.compute.datatypes == {"int16": 1.0}
    spad = next(s for s in d.storage if s.name == "in_spad")
    assert (spad.word_bits, spad.capacity_bytes) == (32, 48)


@pytest.mark.parametrize("key, needle", [("ERT_summary", "ERT_summary (per-action ranges)"),
                                         ("ART", "area table (ART)")])
def test_an_ert_summary_or_art_given_as_the_ert_is_named(tmp_path, key, needle):
    """Every Timeloop output folder holds timeloop-mapper.ERT.yaml beside ERT_summary.yaml and
    ART.yaml: either given as --ert was "ERT: must be a mapping, got None"."""
    tl = _export(tmp_path)
    p = _bad(tmp_path, yaml.safe_dump({key: {"version": 0.3, "tables": []}}), "ert")
    with pytest.raises(NmlabError, match=rf"ert: .*: {key}: .*{re.escape(needle)}.*give the ERT.yaml"):
        _import_with_ert(tmp_path, tl, ert=p)
