"""Export one (design, layer) point as Timeloop v0.4 / Sparseloop / Accelergy input files.

A Timeloop user can then evaluate the same point we model: the forward GEMM of one layer
(M = batch rows, K = in_features, N = out_features) on our design, with the weight tensor's
N:M density and format, and Accelergy energies equal to our per-action energies.

Files written into the output folder (formats in docs/timeloop.md):

* ``arch.yaml``: ``architecture`` v0.4 in the ``subtree``/``local`` form Timeloop itself
  reads (what timeloopfe dumps as parsed-processed input): DRAM, each SRAM level, the PE
  register file and the MAC array as ``mac[1..R*C]`` with ``meshX``/``meshY``.
* ``problem.yaml``: ``problem`` v0.4, a GEMM with dimensions M, K, N and data spaces
  Weights [N, K], Inputs [M, K], Outputs [M, N]; the weight density (the fraction of weight
  slots the hardware holds) as ``distribution: fixed_structured`` (how Sparseloop models 2:4).
* ``sparse_opt.yaml``: ``sparse_optimizations`` v0.4: Weights in UOP (N) + CP (K) with
  ``metadata_word_bits = ceil(log2 m)`` at the weight SRAM, input reads skipped on zero
  weights at the activation SRAM (the selection muxes). Empty ``targets`` when dense. On an
  unstructured design the K rank is ``B`` (bitmask, 1 bit) or ``CP`` (ceil(log2 K)-bit
  coordinates) and the density is the real mask's, ``distribution: hypergeometric``.
* ``constraints.yaml``: ``architecture_constraints`` v0.4: which level keeps which operand
  (our ``holds``) and the spatial mapping of the dataflow.
* ``ERT.yaml``: Accelergy energy reference table (``ERT`` v0.4), pJ per action, from
  :func:`hwmodel.energy.energy_table` (CACTI 7 SRAM energies, energy.yaml constants).
* ``nmlab_point.yaml``: what nmlab says about this point (cycles, energy by component,
  traffic, mapping) and how the ERT was derived, to compare with Timeloop's output.

The folder is written atomically: everything is rendered in memory, written into a hidden
temporary folder beside it, then renamed into place.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Optional

import yaml

from hwmodel.design import DATATYPE_BITS, Design
from hwmodel.errors import NmlabError
from hwmodel.limits import short

FILES = ("arch.yaml", "problem.yaml", "sparse_opt.yaml", "constraints.yaml", "ERT.yaml", "nmlab_point.yaml")
TOP = "system"
DRAM_WIDTH_BITS = 64      # one DRAM access in the exported architecture (energy = pJ/bit x width)
_DATASPACE = {"weights": "Weights", "inputs": "Inputs", "outputs": "Outputs"}
#: The spatial mapping written for each array, (compute kind, dataflow) -> (permutation, X rank first;
#: the rank held at 1). Weight stationary: N across the columns (X), K down the rows (Y), batch rows
#: stream in time. Output stationary: N across the columns, M down the rows, K streams in time.
#: Tensor core: K across each unit's width (X), N over the units (Y). import-timeloop reads the
#: dataflow back from the first two ranks.
SPATIAL = {("systolic", "ws"): (("N", "K", "M"), "M=1"),
           ("systolic", "os"): (("N", "M", "K"), "K=1"),
           ("tensor_core", ""): (("K", "N", "M"), "M=1")}
_HEADER = "# Written by `nmlab export-timeloop` (docs/timeloop.md). {what}\n"


def _instances(design: Design) -> tuple[int, int]:
    """(meshX, meshY) of the PE array: systolic C x R; tensor core: width x units."""
    c = design.compute
    return c.cols, c.rows


def _levels(design: Design) -> list[tuple[str, Any, int]]:
    """(Timeloop component name, storage level, instance count), outermost first."""
    mx, my = _instances(design)
    out = []
    for s in design.storage:
        count = mx * my if s.cls == "regfile" else 1
        out.append((f"{s.name}[1..{count}]", s, count))
    return out


def architecture(design: Design, bits: int, meta_bits: Optional[int]) -> dict:
    """Timeloop v0.4 architecture (subtree/local form); metadata attributes when ``meta_bits``."""
    mx, my = _instances(design)
    dt = design.datatype_for(bits)
    local = []
    for name, s, count in _levels(design):
        if s.cls == "dram":
            attrs = {"type": s.dram_type, "width": DRAM_WIDTH_BITS, "datawidth": bits,
                     # Timeloop bandwidths are words per cycle.
                     "shared_bandwidth": round(s.bandwidth_bytes_per_cycle * 8.0 / bits, 6)}
            local.append({"name": name, "class": "DRAM", "attributes": attrs,
                          "required_actions": ["read", "write", "update", "leak"]})
            continue
        depth = s.capacity_bytes * 8 // s.word_bits
        attrs = {"depth": depth, "width": s.word_bits, "datawidth": bits}
        if s.cls == "sram":
            attrs.update({"n_banks": s.banks, "n_rd_ports": s.read_ports, "n_wr_ports": s.write_ports,
                          "multiple_buffering": 2 if s.double_buffered else 1})
            if meta_bits and design.sram_for("metadata") is s:
                attrs.update({"metadata_datawidth": meta_bits, "metadata_storage_width": s.word_bits,
                              "metadata_storage_depth": depth})
            cls = "SRAM"
        else:
            attrs.update({"meshX": mx, "meshY": my})
            cls = "regfile"
        local.append({"name": name, "class": cls, "attributes": attrs,
                      "required_actions": ["read", "write", "update", "leak"]})
    mac_class = "fpmac" if dt.startswith(("fp", "bf")) else "intmac"
    local.append({"name": f"mac[1..{mx * my}]", "class": mac_class,
                  "attributes": {"datawidth": bits, "multiplier_width": DATATYPE_BITS[dt],
                                 "adder_width": design.compute.accumulator_bits, "meshX": mx, "meshY": my},
                  "required_actions": ["compute"]})
    return {"architecture": {"version": "0.4", "subtree": [{
        "name": TOP,
        "attributes": {"technology": f"{design.technology_nm:g}nm", "global_cycle_seconds": 1.0 / design.clock_hz,
                       "datawidth": bits},
        "local": local,
    }]}}


def problem(m: int, k: int, n: int, density: Optional[float], distribution: str = "fixed_structured") -> dict:
    """Timeloop v0.4 GEMM problem: Outputs[M, N] += Inputs[M, K] * Weights[K, N].

    ``distribution``: Sparseloop's density model of the weights, ``fixed_structured`` for N:M,
    ``hypergeometric`` (randomly placed nonzeros) for an unstructured mask.
    """
    instance: dict[str, Any] = {"M": m, "K": k, "N": n}
    if density is not None:
        instance["densities"] = {"Weights": {"distribution": distribution, "density": density}}
    return {"problem": {"version": "0.4", "shape": {
        "name": "nmlab_fc_layer",
        "dimensions": ["M", "K", "N"],
        "data_spaces": [
            # [out, in] as PyTorch stores it: K, the N:M-compressed rank, is the inner one.
            {"name": "Weights", "projection": [[["N"]], [["K"]]]},
            {"name": "Inputs", "projection": [[["M"]], [["K"]]]},
            {"name": "Outputs", "projection": [[["M"]], [["N"]]], "read_write": True},
        ],
    }, "instance": instance}}


def sparse_optimizations(design: Design, meta_bits: Optional[int], k_format: str = "CP") -> dict:
    """Sparseloop v0.4 sparse optimizations; no targets when the hardware runs the layer dense.

    ``k_format``: representation of the K rank, ``CP`` (coordinates: N:M indices, or the
    unstructured coordinate format) or ``B`` (bitmask).
    """
    targets = []
    if meta_bits is not None:
        w = design.sram_for("metadata").name
        a = design.sram_for("inputs").name
        targets.append({"target": w, "representation_format": {"data_spaces": [{
            "name": "Weights",
            "ranks": [{"format": "UOP", "flattened_rankIDs": [["N"]]},
                      {"format": k_format, "metadata_word_bits": meta_bits, "flattened_rankIDs": [["K"]]}],
        }]}})
        targets.append({"target": a, "action_optimization": [{
            "type": "skipping", "options": [{"target": "Inputs", "condition_on": ["Weights"]}],
        }]})
    return {"sparse_optimizations": {"version": "0.4", "targets": targets}}


def constraints(design: Design) -> dict:
    """Timeloop v0.4 mapping constraints: operand residency per level and the spatial dataflow."""
    targets = []
    for _, s, _ in _levels(design):
        if s.cls == "dram":
            continue
        keep = [_DATASPACE[h] for h in ("weights", "inputs", "outputs") if h in s.holds]
        bypass = [d for d in ("Weights", "Inputs", "Outputs") if d not in keep]
        targets.append({"target": s.name, "type": "dataspace", "keep": keep, "bypass": bypass})
    perm, factor = SPATIAL[(design.compute.kind, design.compute.dataflow)]
    targets.append({"target": design.srams[-1].name, "type": "spatial", "factors": [factor], "permutation": list(perm),
                    "split": 1})
    return {"architecture_constraints": {"version": "0.4", "targets": targets}}


def energy_reference_table(design: Design, bits: int, hw_m: Optional[int],
                           reach: Optional[int] = None) -> tuple[dict, dict]:
    """Accelergy ERT (pJ per action) from our energy model, and how each entry was derived.

    ``hw_m``: group size of the N:M selection mux (None: no mux). ``reach``: unstructured
    designs, inputs the activation distribution network selects from (K); None otherwise.
    """
    from hwmodel.energy import energy_table

    et = energy_table(design)
    dt = design.datatype_for(bits)
    bits_a = design.compute.activation_bits or bits
    cycle_s = 1.0 / design.clock_hz
    tables, derivation = [], {}

    def add(name: str, actions: dict[str, float], how: str) -> None:
        tables.append({"name": f"{TOP}.{name}",
                       "actions": [{"name": a, "arguments": {}, "energy": float(e)} for a, e in actions.items()]})
        derivation[name] = how

    for name, s, _ in _levels(design):
        if s.cls == "dram":
            e = et.dram_pj_per_bit * DRAM_WIDTH_BITS
            add(name, {"read": e, "write": e, "update": e, "leak": 0.0},
                f"{et.dram_pj_per_bit:g} pJ/bit ({s.dram_type}, energy.yaml) x {DRAM_WIDTH_BITS} bits per access")
        elif s.cls == "sram":
            se = et.sram[s.name]
            rd, wr = se.read_pj_per_bit * s.word_bits, se.write_pj_per_bit * s.word_bits
            actions = {"read": rd, "write": wr, "update": wr, "leak": se.leakage_mw * 1e-3 * cycle_s * 1e12}
            if design.sram_for("metadata") is s and (hw_m is not None or reach is not None):
                actions.update({"metadata_read": rd, "metadata_write": wr, "metadata_update": wr})
            add(name, actions, f"CACTI 7 per {s.word_bits}-bit word at {design.technology_nm:g} nm; "
                               f"leak = {se.leakage_mw:.6g} mW x one cycle")
        else:
            e = et.reg_pj_per_bit * s.word_bits
            add(name, {"read": e, "write": e, "update": e, "leak": 0.0},
                f"{et.reg_pj_per_bit:.6g} pJ/bit (energy.yaml, node-scaled) x {s.word_bits} bits")
    mac = et.mac_pj[dt]
    mux = et.mux_pj(hw_m, bits_a) if hw_m is not None else et.distribution_pj(reach, bits_a) if reach else 0.0
    mx, my = _instances(design)
    how = (f" + {hw_m}:1 selection mux on {bits_a}-bit activations {mux:.6g} pJ" if hw_m is not None
           else f" + distribution network over {reach} inputs on {bits_a}-bit activations {mux:.6g} pJ" if reach
           else "")
    add(f"mac[1..{mx * my}]", {"compute": mac + mux}, f"{dt} MAC {mac:.6g} pJ" + how)
    return {"ERT": {"version": "0.4", "tables": tables}}, derivation


def render(design: Design, layer, batch: int, bits: int, sim_layer, extra: Optional[dict] = None) -> dict[str, str]:
    """All export files as text, keyed by file name (nothing touches the disk here).

    Args:
        design: the design point.
        layer: the workload :class:`~hwmodel.workload.Layer` exported (its forward GEMM).
        batch: M, batch rows. bits: weight bitwidth of the run.
        sim_layer: our model's :class:`~hwmodel.result.LayerResult` for that GEMM.
        extra: ``SimResult.extra`` of that run (residency), recorded in nmlab_point.yaml.
    """
    from hwmodel.sparsity import meta_bits_per_value, parse_pattern

    from hwmodel.mapping import index_bits

    hw = parse_pattern(sim_layer.hw_pattern)
    unstructured = hw.kind == "unstructured"
    # Any N:M the model runs is sparse: a flexible design's hw_pattern is its largest per-row N,
    # m:m when one row has a full group while the others still run compressed.
    sparse = hw.is_nm
    meta_bits = meta_bits_per_value(hw.m) if sparse else None
    f = sim_layer.figures
    # Fraction of weight slots the hardware holds and multiplies: n/m, plus the partial last
    # group (K=11 at 2:4 keeps 6 of 11); on flexible designs the per-row N averaged.
    density = round(f.macs_issued / f.macs_dense, 6) if sparse and f.macs_dense else None
    k_format = "CP"
    if unstructured:
        # The real mask's density (what is stored); Sparseloop models imbalance its own way.
        density = round(float(layer.density), 6)
        bitmask = design.sparsity.index_format == "bitmask"
        k_format, meta_bits = ("B", 1) if bitmask else ("CP", index_bits(layer.in_features))
    ert, derivation = energy_reference_table(design, bits, hw.m if sparse else None,
                                             layer.in_features if unstructured else None)
    point = {"nmlab_point": {
        "version": 1,
        "design": design.name, "design_source": design.source,
        "layer": layer.name, "network": layer.network,
        "gemm": {"M": batch, "K": layer.in_features, "N": layer.out_features},
        "bits": bits, "datatype": design.datatype_for(bits),
        "pattern": str(parse_pattern(layer.pattern)), "hw_pattern": str(hw), "mapping_note": sim_layer.mapping_note,
        "weight_density_real_mask": round(float(layer.density), 6),
        "weight_density_exported": density if density is not None else 1.0,
        "metadata_word_bits": meta_bits,
        "residency": (extra or {}).get("residency"),
        "weights_resident_in_sram": (extra or {}).get("weights_resident"),
        "figures": {key: float(v) for key, v in f.to_dict().items()},
        "ert_derivation": derivation,
        "not_exported": "DRAM latency and the metadata-path bandwidth (Timeloop has no such attribute); "
                        "Timeloop picks its own mapping, ours is the fixed schedule in docs/hwmodel.md",
    }}
    docs = {
        "arch.yaml": (architecture(design, bits, meta_bits), "Timeloop v0.4 architecture."),
        "problem.yaml": (problem(batch, layer.in_features, layer.out_features, density,
                                 "hypergeometric" if unstructured else "fixed_structured"), "Timeloop v0.4 problem."),
        "sparse_opt.yaml": (sparse_optimizations(design, meta_bits, k_format), "Sparseloop v0.4 sparse optimizations."),
        "constraints.yaml": (constraints(design), "Timeloop v0.4 mapping constraints."),
        "ERT.yaml": (ert, "Accelergy ERT v0.4, energies in pJ per action from nmlab's energy model."),
        "nmlab_point.yaml": (point, "What nmlab's model says about this point."),
    }
    return {name: _HEADER.format(what=what) + yaml.safe_dump(doc, sort_keys=False, default_flow_style=False)
            for name, (doc, what) in docs.items()}


def check_out(out: str | os.PathLike) -> Path:
    """``out`` when the export may go there: a new folder in a writable place, or a folder holding
    only a previous export (checked before any work starts)."""
    from hwmodel.limits import check_output_dir

    out = check_output_dir(out, "--out")
    if out.is_dir():
        foreign = sorted(p.name for p in out.iterdir() if p.name not in FILES)
        if foreign:
            raise NmlabError(f"--out {out}: folder holds other files ({', '.join(foreign[:3])}); choose a new folder")
        # Files of the same names that this exporter did not write (a Timeloop folder of one's own:
        # arch.yaml, problem.yaml) were replaced with the export, and the user's architecture lost.
        head = _HEADER.split("{", 1)[0].encode()
        for name in FILES:
            p = out / name
            if os.path.lexists(p) and not (p.is_file() and not p.is_symlink() and _starts_with(p, head)):
                raise NmlabError(f"--out {out}: {name} is not a file nmlab export-timeloop wrote (it would be "
                                 f"replaced); choose a new folder")
    return out


def _starts_with(path: Path, head: bytes) -> bool:
    """Whether the file at ``path`` begins with ``head`` (its first bytes only are read)."""
    try:
        with open(path, "rb") as fh:
            return fh.read(len(head)) == head
    except OSError:
        return False


def write_folder(files: dict[str, str], out: str | os.PathLike) -> Path:
    """Write ``files`` into folder ``out`` atomically (temporary folder, then rename).

    An existing ``out`` is replaced only when it holds nothing but files this exporter writes.
    Temporary folders a killed export left beside ``out`` are removed first.
    """
    from hwmodel.io import remove_stale_temps, temp_prefix

    out = check_out(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(out.parent, out.name, (".tmp", ".old"))
    tmp = Path(tempfile.mkdtemp(prefix=temp_prefix(out.name), suffix=".tmp", dir=out.parent))
    try:
        for name, text in files.items():
            with open(tmp / name, "w") as fh:
                fh.write(text)
                fh.flush()
                os.fsync(fh.fileno())
        if out.exists():
            old = Path(tempfile.mkdtemp(prefix=temp_prefix(out.name), suffix=".old", dir=out.parent))
            os.replace(out, old / out.name)
            os.replace(tmp, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def export_timeloop(design, workload, layer_name: str, out: str | os.PathLike, batch: int = 1,
                    bits: int = 8) -> Path:
    """Export the forward GEMM of ``layer_name`` of ``workload`` on ``design`` into folder ``out``.

    Args:
        design: Design, design YAML path or bundled design name.
        workload: Workload or workload file path.
        layer_name: a layer of the workload (e.g. "actor.fc1").
        out: output folder (created; replaced only if it holds just a previous export).
        batch: M, batch rows of the GEMM. bits: weight bitwidth of the run.
    """
    import hwmodel
    from hwmodel.design import load_design
    from hwmodel.workload import Workload, load_workload

    from hwmodel.limits import check_limit

    check_out(out)  # before the work: an unwritable --out fails at once
    check_limit("batch", batch, "--batch")
    d = load_design(design)
    for i, s in enumerate(d.storage):
        # Accelergy's ERT names a level system.<name> and splits it at dots: the ERT of a level named
        # "W.buf" read back as a component "buf" (nmlab import-timeloop: no component 'buf' in the arch).
        if "." in s.name:
            raise NmlabError(f"design {short(d.name)}: storage[{i}].name: {short(s.name)}: a Timeloop component "
                             f"name holds no '.' (the ERT names it system.<name>, read at the dots); rename the level")
    wl = workload if isinstance(workload, Workload) else load_workload(workload)
    matches = [x for x in wl.layers if x.name == layer_name]
    if not matches:
        names = ", ".join(x.name for x in wl.layers[:8])
        raise NmlabError(f"--layer {layer_name!r}: no such layer in the workload (has {names}"
                         f"{', ...' if len(wl.layers) > 8 else ''})")
    layer = matches[0]
    res = hwmodel.simulate(Workload([layer], dict(wl.meta)), d, batch=batch, bits=bits, with_dense=False)
    fwd = next(r for r in res.layers if r.phase == "forward")
    return write_folder(render(d, layer, batch, bits, fwd, res.extra), out)
