"""Import a Timeloop v0.4 architecture as an nmlab design YAML (the reverse of hwmodel.timeloop).

Reads the ``architecture`` v0.4 ``subtree``/``local`` form (what ``nmlab export-timeloop``
writes and timeloopfe dumps as processed input; also Timeloop's v0.2/v0.3 archs, the same form
with older attribute names) or the ``nodes:`` form (``!Container`` / ``!Component`` /
``!Parallel`` tags, constraints on the nodes), optionally the mapping constraints (which
level keeps which operand, the spatial dataflow) and the Sparseloop sparse optimizations
(which N:M or unstructured format the weight SRAM stores); a one-file spec's own constraints and
sparse optimizations are read when no file is given for them. Whatever Timeloop's files cannot
carry gets a stated default, listed in the written file's comment header (docs/timeloop.md,
"Import from Timeloop", has the field-by-field mapping). What timeloopfe resolves (Jinja2
templates, ``!Include``, expressions) is refused with a one-line error: nothing is executed.

The written design is validated by :func:`hwmodel.design.parse_design` before anything is
written, and written atomically.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import yaml

from hwmodel.design import DATATYPE_BITS, DRAM_TYPES, NAME_MAX_CHARS, name_problem, parse_design
from hwmodel.errors import NmlabError
from hwmodel.limits import check_output_file, is_int, load_yaml, one_line, read_text, short
from hwmodel.timeloop import SPATIAL

#: Largest depth, width, bank or port count read (the design loader bounds capacity itself).
_MAX_INT = 1 << 40
_DATASPACES = {"weights": "weights", "inputs": "inputs", "outputs": "outputs"}
_NAME_RANGE = re.compile(r"^(.*?)\[(\d+)\.\.(\d+)\]$")
#: (kind, dataflow) for the first two ranks (X, Y) of the spatial permutation export-timeloop writes.
_DATAFLOWS = {perm[:2]: flow for flow, (perm, _) in SPATIAL.items()}


#: One component of the flattened arch: (field path, component mapping, attributes inherited from the
#: nodes above it, instances above it).
_Component = tuple[str, dict, dict, int]


class _Where:
    """Builds one-line errors naming the file and the field."""

    def __init__(self, what: str, path: str | os.PathLike):
        self.prefix = f"{what}: {path}"

    def fail(self, field: str, msg: str) -> NmlabError:
        return NmlabError(f"{self.prefix}: {field}: {msg}")


def _mapping(w: _Where, field: str, value: Any) -> dict:
    if not isinstance(value, dict):
        raise w.fail(field, f"must be a mapping, got {short(value)}")
    # Timeloop's keys are names; YAML reads an unquoted true, 1 or null key as a bool, int or None
    # (an attribute `true: 128` ended in AttributeError on k.replace).
    for key in value:
        if not isinstance(key, str):
            raise w.fail(field, f"key {short(key)} is not a name (YAML reads an unquoted true, 1 or null key as "
                                "a boolean, number or null: quote it)")
    return value


def _list(w: _Where, field: str, value: Any) -> list:
    if not isinstance(value, list):
        raise w.fail(field, f"must be a list, got {short(value)}")
    return value


#: Told when a number is written as a timeloopfe expression or variable name ("GLB_DEPTH // 2").
_EXPRESSION = ("(an expression or variable: nmlab evaluates none; run the spec through timeloopfe and import "
               "the parsed-processed-input.yaml it writes)")


def _not_a_number(w: _Where, field: str, value: Any, what: str) -> NmlabError:
    extra = f" {_EXPRESSION}" if isinstance(value, str) and re.search(r"[A-Za-z_*/+()]", value) else ""
    return w.fail(field, f"must be {what}, got {short(value)}{extra}")


def _int(w: _Where, field: str, value: Any, low: int = 1) -> int:
    if not is_int(value):
        raise _not_a_number(w, field, value, "an integer")
    if not low <= value <= _MAX_INT:
        raise w.fail(field, f"must be between {low} and {_MAX_INT:,}, got {short(value)}")
    return int(value)


def _number(w: _Where, field: str, value: Any) -> float:
    """A YAML number, also as YAML 1.1 reads ``1e-9`` (no dot): a string, which Timeloop's parser takes
    as a number."""
    if isinstance(value, str) and len(value) < 40:
        try:
            value = float(value)
        except ValueError:
            pass
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _not_a_number(w, field, value, "a number")
    return float(value)


def _positive(w: _Where, field: str, value: Any) -> float:
    """A positive finite YAML number (a cycle time, a bandwidth, a buffering depth)."""
    v = _number(w, field, value)
    if not math.isfinite(v) or v <= 0:
        raise w.fail(field, f"must be a positive finite number, got {short(value)}")
    return v


def _sig(x: float) -> float | int:
    """``x`` to 9 significant digits (undoes float noise of 1/x and rounded words per cycle)."""
    v = float(f"{x:.9g}")
    return int(v) if v.is_integer() and abs(v) < 1 << 53 else v


def _own_attributes(w: _Where, field: str, node: dict) -> dict:
    """The ``attributes`` mapping of the node at ``field`` (empty when it gives none)."""
    return _mapping(w, f"{field}.attributes", node.get("attributes", {}) or {})


def _base_name(name: str) -> str:
    """``"Buf[1..4]"`` -> "Buf": a name with its instance range dropped, not checked."""
    return _NAME_RANGE.sub(r"\1", name)


def _split_name(w: _Where, field: str, name: Any, level: bool = False) -> tuple[str, int]:
    """``"Buf[1..4]"`` -> ("Buf", 4); ``"Buf"`` -> ("Buf", 1).

    Names are refused, not rewritten, where nmlab could not write them: a control character
    anywhere (names go into the header's one-line notes), and ``level`` (a component that
    becomes a storage level): over NAME_MAX_CHARS characters. A rewritten name would no longer
    match the constraints and ERT tables that name it."""
    if not isinstance(name, str) or not name:
        raise w.fail(field, f"must be a non-empty string, got {short(name)}")
    if not name.isprintable():
        raise w.fail(field, f"must be printable (no newline or other control character), got {short(name)}")
    m = _NAME_RANGE.match(name)
    base = m.group(1) if m else name
    if level and name_problem(base):
        if base != base.strip():
            raise w.fail(field, f"{base!r}: a storage level name nmlab can take neither starts nor ends with a space")
        raise w.fail(field, f"{short(base)}: a storage level name nmlab can take is 1 to {NAME_MAX_CHARS} "
                            f"printable characters ({len(base):,} given)")
    if not m:
        return name, 1
    digits = [m.group(i).lstrip("0") or "0" for i in (2, 3)]
    if max(map(len, digits)) > 13:  # past _MAX_INT, and int() refuses 4,300 digits
        raise w.fail(field, f"bad instance range in {short(name)}")
    lo, hi = map(int, digits)
    if hi < lo or hi - lo + 1 > _MAX_INT:
        raise w.fail(field, f"bad instance range in {short(name)}")
    return m.group(1), hi - lo + 1


def _components(w: _Where, arch: dict) -> list[_Component]:
    """[(field path, component, attributes inherited from its subtree nodes, instances above it)],
    outermost first: a node's own ``local`` levels sit above its ``subtree`` children."""
    if "subtree" not in arch and "local" in arch:
        raise w.fail("architecture.local", "a flat local list with no subtree (Accelergy's "
                                           "flattened_architecture.yaml, an output) is not read: import the arch "
                                           "(nodes, or subtree/local) or timeloopfe's parsed-processed-input.yaml")
    subtree = _list(w, "architecture.subtree", arch.get("subtree"))
    if len(subtree) != 1:
        raise w.fail("architecture.subtree", f"must hold one top node (the system), got {len(subtree)}")
    out: list[_Component] = []
    stack: list[tuple[str, Any, dict, int, int]] = [("architecture.subtree[0]", subtree[0], {}, 1, 0)]
    while stack:
        field, node, inherited, above, depth = stack.pop()
        if depth > 16:
            raise w.fail(field, "subtrees nested deeper than 16 levels")
        node = _mapping(w, field, node)
        _, count = _split_name(w, f"{field}.name", node.get("name"))
        above *= count  # a subtree named PE[0..167] repeats everything under it 168 times
        attrs = _merge(inherited, _own_attributes(w, field, node))
        for i, comp in enumerate(_list(w, f"{field}.local", node.get("local", []) or [])):
            out.append((f"{field}.local[{i}]", _mapping(w, f"{field}.local[{i}]", comp), attrs, above))
        children = _list(w, f"{field}.subtree", node.get("subtree", []) or [])
        for i in reversed(range(len(children))):
            stack.append((f"{field}.subtree[{i}]", children[i], attrs, above, depth + 1))
    return out


#: The timeloopfe v4 tags of the ``nodes:`` form, read as plain mappings (key "!" = tag); ``!Element``
#: is timeloopfe's earlier name for ``!Component``.
NODE_TAGS = ("!Component", "!Container", "!Hierarchical", "!Parallel", "!Nothing", "!Element")

#: What timeloopfe resolves before Timeloop sees a spec, and nmlab does not: Jinja2 templates,
#: file includes and references, hierarchical merge keys. Matched outside comments.
_UNPROCESSED = (
    (re.compile(r"\{\{.*?\}\}|\{%.*?%\}"), "a Jinja2 template"),
    (re.compile(r"(?:^|[\s\[{,:-])(!(?:include\w*|ref\w*|nomerge)\b)", re.IGNORECASE), "a timeloopfe tag"),
    (re.compile(r"(?:^|[\s{,])(<<<)\s*:"), "timeloopfe's hierarchical merge key"),
)


def _check_processed(path: str | os.PathLike, what: str) -> None:
    """A one-line error when ``path`` still holds what timeloopfe resolves (templates, includes,
    merge keys): nmlab reads plain YAML and runs nothing, so such a spec must be processed first."""
    text = read_text(path, what, "yaml_bytes")
    for n, line in enumerate(text.splitlines(), 1):
        code = re.sub(r"(^|\s)#.*$", "", line)
        for pattern, kind in _UNPROCESSED:
            m = pattern.search(code)
            if m:
                found = (m.group(1) if m.groups() else m.group(0)).strip()
                raise NmlabError(f"{what}: {path}: line {n}: {short(found, 60)} is {kind}, which nmlab does not "
                                 "resolve (it runs no templates and reads no other files): run the spec through "
                                 "timeloopfe and import the parsed-processed-input.yaml it writes")


class _Nodes:
    """Flattens the v0.4 ``nodes:`` form: each node sits below the ones listed before it;
    a Container's ``attributes`` are inherited and its ``spatial`` meshX/meshY multiply the
    instances of everything below it; ``constraints`` sit on the nodes."""

    def __init__(self, w: _Where):
        self.w = w
        self.comps: list[_Component] = []
        self.keeps: dict[str, list[str]] = {}
        self.keep_fields: dict[str, str] = {}
        self.sparse: list[tuple[str, dict]] = []
        self.flow: Optional[tuple[str, str]] = None
        self.unrecognised_flow = False

    def _mesh(self, field: str, node: dict, mx: int, my: int) -> tuple[int, int]:
        sp = node.get("spatial")
        if sp is None:
            return mx, my
        sp = _mapping(self.w, f"{field}.spatial", sp)
        return (mx * _int(self.w, f"{field}.spatial.meshX", sp.get("meshX", 1)),
                my * _int(self.w, f"{field}.spatial.meshY", sp.get("meshY", 1)))

    def _constraints(self, field: str, node: dict, name: str) -> None:
        cons = node.get("constraints")
        if cons is None:
            return
        cons = _mapping(self.w, f"{field}.constraints", cons)
        ds = cons.get("dataspace")
        if isinstance(ds, dict):
            kept = _kept(self.w, f"{field}.constraints.dataspace", ds)
            if kept is not None:
                self.keeps[name], self.keep_fields[name] = kept
        sp = cons.get("spatial")
        if isinstance(sp, dict) and "permutation" in sp:
            perm = _permutation(sp["permutation"])
            if perm in _DATAFLOWS:
                self.flow = self.flow or _DATAFLOWS[perm]
            else:  # e.g. a convolution's ranks: nothing nmlab's GEMM dataflows name
                self.unrecognised_flow = True

    def walk(self, items: Any, field: str, attrs: dict, mx: int, my: int, depth: int = 0) -> tuple[dict, int, int]:
        """Read the list ``items`` (at ``field``): each node sits below the ones before it, so the
        attributes ``attrs`` and the mesh ``mx`` x ``my`` it returns are what the next one inherits."""
        for i, node in enumerate(_list(self.w, field, items)):
            attrs, mx, my = self._node(node, f"{field}[{i}]", attrs, mx, my, depth)
        return attrs, mx, my

    def _node(self, node: Any, f: str, attrs: dict, mx: int, my: int, depth: int) -> tuple[dict, int, int]:
        """One node at ``f`` below ``attrs`` and the mesh ``mx`` x ``my``; returns what the nodes after it inherit."""
        if depth > 16:
            raise self.w.fail(f, "nodes nested deeper than 16 levels")
        node = _mapping(self.w, f, node)
        tag = node.get("!", "Component" if "class" in node or "subclass" in node else "Container")
        if tag == "Element":
            tag = "Component"
        if tag == "Nothing":
            return attrs, mx, my
        if tag == "Hierarchical":
            return self.walk(node.get("nodes", []), f"{f}.nodes", attrs, mx, my, depth + 1)
        if tag == "Parallel":
            # Siblings at one level (e.g. per-PE scratchpads): each becomes its own nmlab level.
            for j, child in enumerate(_list(self.w, f"{f}.nodes", node.get("nodes", []))):
                self._node(child, f"{f}.nodes[{j}]", attrs, mx, my, depth + 1)
            return attrs, mx, my
        if tag not in ("Container", "Component"):
            raise self.w.fail(f, f"unknown node tag !{short(str(tag))[1:-1]} (Component, Container, Hierarchical, "
                                 "Parallel, Nothing)")
        name, _ = _split_name(self.w, f"{f}.name", node.get("name"))
        own = _own_attributes(self.w, f, node)
        mx, my = self._mesh(f, node, mx, my)
        self._constraints(f, node, name)
        if node.get("sparse_optimizations") is not None:  # timeloopfe v4: on the component
            so = _mapping(self.w, f"{f}.sparse_optimizations", node["sparse_optimizations"])
            self.sparse.append((f"{f}.sparse_optimizations", {**so, "target": name}))
        if tag == "Container":
            return _merge(attrs, own), mx, my
        inherited = dict(attrs)
        if mx * my > 1:
            inherited.update(meshX=mx, meshY=my)
        self.comps.append((f, {**node, "name": name}, inherited, mx * my))
        return attrs, mx, my


def _kept(w: _Where, field: str, ds: dict) -> Optional[tuple[list[str], str]]:
    """(operands a dataspace constraint keeps, the field read) or None when it says nothing: ``keep``
    (or timeloopfe's ``keep_only``) lists them; ``bypass`` alone keeps the other operands."""
    key = next((k for k in ("keep", "keep_only", "bypass") if k in ds), None)
    if key is None:
        return None
    ops = []
    for j, d in enumerate(_list(w, f"{field}.{key}", ds[key])):
        op = _DATASPACES.get(str(d).lower())
        if op is None:
            raise w.fail(f"{field}.{key}[{j}]", f"{_OPERAND_HINT}, got {short(d)}")
        ops.append(op)
    if key == "bypass":
        ops = [op for op in _DATASPACES.values() if op not in ops]
    return ops, f"{field}.{key}"


def _permutation(perm: Any) -> tuple[str, ...]:
    """First two ranks (spatial X, Y) of a permutation given as a list or a string ("NKM", "N K M")."""
    if isinstance(perm, str):  # "NKM", "N K M", "N, K, M"; Timeloop's "NPQR SCK" (a space marks the split)
        perm = [x.strip() for x in perm.split(",")] if "," in perm else list(perm.replace(" ", ""))
    if not isinstance(perm, list):
        return ()
    return tuple(str(x) for x in perm)[:2]


def _system_attr(comps: list[_Component], key: str) -> tuple[Any, str]:
    """A system-wide attribute (technology, global_cycle_seconds) and the field it was read from:
    a component's own value wins over what it inherits from the nodes above (as for every other
    attribute), and the MAC's value wins over the storage levels', the on-chip levels' over the
    DRAM's (timeloopfe dumps a top node's ``technology: "SET ME"`` placeholder above components that
    give their own). A dummy_storage's placeholder ``technology: -1`` is not read."""
    order = {"mac": 0, "sram": 1, "regfile": 1}
    ranked = sorted((order.get(_classify(c).kind, 2), i) for i, (_, c, _, _) in enumerate(comps)
                    if _classify(c).kind != "dummy")
    for _, i in ranked:
        field, comp, inherited, _ = comps[i]
        attrs = comp.get("attributes") if isinstance(comp.get("attributes"), dict) else {}
        if key in attrs:
            return attrs[key], f"{field}.attributes.{key}"
        if key in inherited:
            return inherited[key], f"{field}: inherited {key}"
    return None, key


#: Timeloop's placeholder level for a spatial fanout: it holds nothing, so it is skipped.
_DUMMY = "dummy_storage"
#: Timeloop's network classes (v0.2/v0.3 archs list them in ``local``): they hold nothing and nmlab
#: models its own operand distribution, so they are skipped with a stated default.
_NETWORKS = ("xy_noc", "legacy", "reductiontree", "simplemulticast")


def _kind(cls: str) -> Optional[str]:
    """nmlab's kind for the class name :func:`_classify` picked: dram, sram, regfile, mac, network,
    dummy (timeloopfe's fanout placeholder), or None. Compound-component names are read by what
    they are named after (``smartbuffer_RF``, ``SRAM_MD``, ``reg_storage``, ``Imac``)."""
    c = cls.lower()
    if c == _DUMMY:
        return "dummy"
    if "dram" in c:
        return "dram"
    if "sram" in c or c == "smartbuffer_metadata":  # smartbuffer_metadata: an SRAM plus a metadata SRAM
        return "sram"
    if c.startswith("reg") or c.endswith("_rf") or "regfile" in c or "register" in c:
        return "regfile"
    if c.endswith("mac") or c.startswith("mac") or c == "compute":
        return "mac"
    if c in _NETWORKS or "noc" in c.split("_"):
        return "network"
    return None


@dataclass(frozen=True)
class _Class:
    """What one component is, as :func:`_classify` decides it: ``name`` is the class name that
    decides (not checked: any YAML value), ``key`` the key it was read from ("class" or
    "subclass"), ``kind`` nmlab's kind (see :func:`_kind`) or None."""
    name: Any
    key: str
    kind: Optional[str]


def _classify(comp: dict) -> _Class:
    """The one place that decides what a component is; every stage asks it, so none can disagree.

    Timeloop decides a level's role from ``class`` alone (storage, compute, network); Accelergy
    reads ``subclass``, when given, as the energy model's name. So ``class`` decides, except where
    it says nothing more than the role: a generic ``class: storage`` or ``class: compute`` (v0.3,
    Sparseloop) names its kind in ``subclass``, and a component with no ``class`` (absent or null,
    a timeloopfe Component may give only ``subclass``) is named by its ``subclass``. A specific
    class with a subclass (``class: SRAM, subclass: dummy_storage``) is that class: Timeloop
    keeps data there; the subclass only prices it. Never raises: a name that is not a string has
    kind None and the storage stage refuses it, naming ``key``."""
    cls = comp.get("class")
    if "subclass" in comp and (cls is None or (isinstance(cls, str) and cls.lower() in ("storage", "compute"))):
        sub = comp["subclass"]
        if not isinstance(sub, str):
            return _Class(sub, "subclass", None)
        if cls is None:
            return _Class(sub, "subclass", _kind(sub))
        if cls.lower() == "compute":
            return _Class(sub, "subclass", "mac")
        kind = _kind(sub)
        return _Class(sub, "subclass", None if kind in ("mac", "network") else kind)
    return _Class(cls, "class", _kind(cls) if isinstance(cls, str) else None)


#: The attributes that give a storage level's size (one of them 0: a zero-capacity level).
_SIZE_KEYS = ("depth", "memory_depth", "data_storage_depth", "entries", "sizeKB")

#: Older names of the attributes read (Timeloop v0.2/v0.3, Sparseloop's SRAM_MD): first found wins.
_ALIASES = {"depth": ("depth", "memory_depth", "data_storage_depth"),
            "width": ("width", "memory_width", "data_storage_width"),
            "datawidth": ("datawidth", "word-bits", "word_bits", "word_width"),
            "block_size": ("block_size", "block-size", "n_words"),
            "n_banks": ("n_banks", "num_banks", "num-banks"),
            "multiple_buffering": ("multiple_buffering", "multiple-buffering")}


def _merge(inherited: dict, own: dict) -> dict:
    """A node's attributes over the ones it inherits: an attribute it gives under any of its names
    (``word-bits`` for ``datawidth``) replaces the inherited one under every name."""
    merged = dict(inherited)
    for names in _ALIASES.values():
        if any(k in own for k in names):
            for k in names:
                merged.pop(k, None)
    merged.update(own)
    return merged


def _attr(attrs: dict, key: str) -> tuple[str, Any]:
    """(the attribute name found, its value) for ``key`` or one of its older names; (key, None) if none."""
    for k in _ALIASES.get(key, (key,)):
        if k in attrs:
            return k, attrs[k]
    return key, None


#: nmlab's operand names for Timeloop's data spaces (what export-timeloop writes).
_OPERAND_NOTE = ("(nmlab's GEMM operands; a problem whose data spaces are named otherwise, e.g. gemm_ABZ's A, B, "
                 "Z, needs them renamed)")
_OPERAND_HINT = f"must be Weights, Inputs or Outputs {_OPERAND_NOTE}"
#: Attributes of a storage level that change Timeloop's result but have no nmlab field: listed
#: in the header as not read (nmlab derives bandwidth from banks, ports and word width).
_NOT_READ = ("read_bandwidth", "write_bandwidth", "shared_bandwidth", "n_rdwr_ports", "nports", "num_ports",
             "cluster_size", "update_fifo_depth", "metadata_storage_depth", "metadata_storage_width",
             "metadata_datawidth", "metadata_block_size")


#: Top-level keys a constraints file (or a one-file spec) keeps its constraints under: v0.4, timeloopfe, v0.3.
_CONSTRAINT_KEYS = ("architecture_constraints", "constraints", "mapspace_constraints")


def _constraints(w: _Where, doc: Any, strict: bool = True,
                 fields: Optional[dict[str, tuple[_Where, str]]] = None) -> tuple[dict[str, list[str]],
                                                                                  Optional[tuple[str, str]]]:
    """(level name -> kept operands, (kind, dataflow) from the spatial constraint or None).
    ``strict``: a spatial permutation that names no nmlab dataflow is an error (a --constraints
    file), else it is passed over (constraints written in the arch file itself). ``fields`` gets
    each kept level's (file, field)."""
    doc = _mapping(w, "<top>", doc)
    key = next((k for k in _CONSTRAINT_KEYS if k in doc), None)
    if key is None:
        raise w.fail("<top>", "no architecture_constraints mapping")
    body = doc[key]
    # Timeloop v0.3's mapspace_constraints is the list of targets itself.
    targets, tfield = (body, key) if isinstance(body, list) else (
        _mapping(w, key, body).get("targets", []) or [], f"{key}.targets")
    keeps: dict[str, list[str]] = {}
    flow = None
    for i, t in enumerate(_list(w, tfield, targets)):
        f = f"{tfield}[{i}]"
        t = _mapping(w, f, t)
        target, _ = _split_name(w, f"{f}.target", t.get("target"))
        # v0.3 names a dataspace constraint `datatype` or `bypass`
        kept = _kept(w, f, t) if t.get("type") in ("dataspace", "datatype", "bypass") else None
        if kept is not None:
            keeps[target] = kept[0]
            if fields is not None:
                fields[target] = (w, kept[1])
        elif t.get("type") == "spatial" and "permutation" in t:
            perm = _permutation(t["permutation"])
            if perm not in _DATAFLOWS:
                if not strict:
                    continue
                raise w.fail(f"{f}.permutation", f"first two ranks {list(perm)} are not a dataflow nmlab models "
                                                 "(N,K: WS systolic; N,M: OS systolic; K,N: tensor core over the "
                                                 "GEMM's M, K, N; a convolution's C, M, P, ... name none): rewrite "
                                                 "this spatial target over M, K, N or remove it")
            flow = _DATAFLOWS[perm]
    return keeps, flow


def _hyphens(value: Any, depth: int = 0) -> Any:
    """``value`` with mapping keys' hyphens read as underscores (Sparseloop v0.3 writes
    ``representation-format``, ``data-spaces``, ``metadata-word-bits``)."""
    if depth > 32:
        return value
    if isinstance(value, dict):
        return {(k.replace("-", "_") if isinstance(k, str) else k): _hyphens(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list):
        return [_hyphens(v, depth + 1) for v in value]
    return value


def _sparse_targets(w: _Where, doc: Any) -> list[tuple[str, dict]]:
    """[(field, target mapping)] of a sparse_optimizations file."""
    doc = _mapping(w, "<top>", doc)
    body = _mapping(w, "sparse_optimizations", doc.get("sparse_optimizations"))
    return [(f"sparse_optimizations.targets[{i}]", t)
            for i, t in enumerate(_list(w, "sparse_optimizations.targets", body.get("targets", []) or []))]


def _sparse(w: _Where, targets: list[tuple[str, Any]],
            notes: Optional[list[str]] = None) -> list[tuple[str, int, str, str]]:
    """Every weight representation format: [(format "CP" or "B", metadata bits per kept weight,
    level storing it, field)], in the file's order; empty when dense. ``notes`` gets one line per
    optimization nmlab does not model (another operand's format; skipping or gating not conditioned
    on the weights, which nmlab's selection is)."""
    found: list[tuple[str, int, str, str]] = []
    for f, t in targets:
        t = _hyphens(_mapping(w, f, t))
        target, _ = _split_name(w, f"{f}.target", t.get("target", t.get("name")))  # v0.3 names it `name`
        acts = t.get("action_optimization") or []
        for k, act in enumerate(acts if isinstance(acts, list) else []):
            act = act if isinstance(act, dict) else {}
            opts = act.get("options") if isinstance(act.get("options"), list) else [act]
            for o in opts:
                o = o if isinstance(o, dict) else {}
                cond = o.get("condition_on")
                if notes is not None and not (isinstance(cond, list) and [str(c).lower() for c in cond] == ["weights"]):
                    notes.append(f"{target}: {short(act.get('type'))} of {short(o.get('target'))} on {short(cond)}: "
                                 "not modelled (nmlab skips by the weights' pattern only)")
        if "representation_format" not in t:
            continue
        rf = _mapping(w, f"{f}.representation_format", t["representation_format"])
        spaces = _list(w, f"{f}.representation_format.data_spaces", rf.get("data_spaces", []))
        names = [str(_mapping(w, f"{f}.representation_format.data_spaces[{j}]", ds).get("name", ""))
                 for j, ds in enumerate(spaces)]
        if names and not any(n.lower() in _DATASPACES for n in names):
            raise w.fail(f"{f}.representation_format.data_spaces", f"names {', '.join(map(short, names))}, "
                                                                     f"none of them Weights, Inputs or Outputs "
                                                                     f"{_OPERAND_NOTE}")
        for j, ds in enumerate(spaces):
            g = f"{f}.representation_format.data_spaces[{j}]"
            if names[j].lower() != "weights":
                if notes is not None:
                    notes.append(f"{target}: {names[j]} compressed: not modelled (nmlab models weight sparsity)")
                continue
            ranks = _list(w, f"{g}.ranks", ds.get("ranks"))
            if not ranks:
                raise w.fail(f"{g}.ranks", "must not be empty")
            last = _mapping(w, f"{g}.ranks[{len(ranks) - 1}]", ranks[-1])
            fmt = str(last.get("format", "")).upper()
            r = f"{g}.ranks[{len(ranks) - 1}]"
            if fmt == "B":
                found.append(("B", 1, target, r))
            elif fmt == "CP":
                bits = _int(w, f"{r}.metadata_word_bits", last.get("metadata_word_bits"))
                if bits > 16:
                    raise w.fail(f"{r}.metadata_word_bits", f"must be <= 16, got {bits}")
                found.append(("CP", bits, target, r))
            else:
                raise w.fail(f"{r}.format", f"{short(fmt)}: nmlab models a weight format whose innermost rank is "
                                            "CP (an N:M index) or B (a bitmask); RLE and UOP are not modelled")
    return found


#: Largest energy per action read from an ERT (pJ); the design loader bounds the per-bit figures.
_MAX_ERT_PJ = 1e9
#: Actions of each component kind nmlab has a figure for; others are listed as not mapped.
_ERT_ACTIONS = {"dram": ("read", "write", "update", "leak"),
                "sram": ("read", "write", "update", "leak", "metadata_read", "metadata_write", "metadata_update"),
                "regfile": ("read", "write", "update", "leak"), "mac": ("compute", "mac_random")}
_RANGES = re.compile(r"\[\d+\.\.\d+\]")


def _pj(w: _Where, field: str, value: Any) -> float:
    """An ERT energy: a finite number from 0 to _MAX_ERT_PJ pJ."""
    v = _number(w, field, value)
    if not math.isfinite(v) or not 0 <= v <= _MAX_ERT_PJ:
        raise w.fail(field, f"must be a finite number from 0 to {_MAX_ERT_PJ:g} pJ, got {short(value)}")
    return v + 0.0  # -0.0 is 0: the design would read `dram_pj_per_bit: -0.0`


def _ert_tables(w: _Where, doc: Any, components: dict[str, str], ignored: Optional[set[str]] = None,
                notes: Optional[list[str]] = None) -> dict[str, dict[str, float]]:
    """Component name -> {action: pJ} of an Accelergy ERT (``ERT: {version, tables: [{name:
    system.X[1..n], actions: [{name, arguments, energy}]}]}``). A table is matched to an arch
    component by its last name segment with instance ranges dropped (``system.PE[0..7].mac`` ->
    ``mac``); an action listed several times (by arguments) is priced at its largest energy, as
    Timeloop's ParseAccelergyERT does."""
    top = _mapping(w, "<top>", doc)
    other = {"ERT_summary": "Accelergy's ERT_summary (per-action ranges)", "ART": "an Accelergy area table (ART)",
             "ART_summary": "an Accelergy area summary"}
    for key, what in other.items():
        if "ERT" not in top and key in top:
            raise w.fail(key, f"{what}, not an energy reference table: give the ERT.yaml written beside it "
                              "(top-level key ERT)")
    body = _mapping(w, "ERT", top.get("ERT"))
    if str(body.get("version", "")) not in ("0.3", "0.4", "0.40", "0.30"):
        raise w.fail("ERT.version", f"must be 0.3 or 0.4, got {short(body.get('version'))}")
    out: dict[str, dict[str, float]] = {}
    for i, t in enumerate(_list(w, "ERT.tables", body.get("tables"))):
        f = f"ERT.tables[{i}]"
        t = _mapping(w, f, t)
        full = t.get("name")
        if not isinstance(full, str) or not full:
            raise w.fail(f"{f}.name", f"must be a non-empty string, got {short(full)}")
        name = _RANGES.sub("", full).split(".")[-1]
        if ignored and name in ignored:  # a network, fanout or keep-nothing level the import skipped
            if notes is not None:
                notes.append(f"ERT {name}: not mapped (the import skipped that component)")
            continue
        if name not in components:
            raise w.fail(f"{f}.name", f"{short(full)}: no component {short(name)} in the arch "
                                      f"(has {', '.join(components)})")
        if name in out:
            raise w.fail(f"{f}.name", f"a second table for component {short(name)}")
        actions: dict[str, float] = {}
        for j, a in enumerate(_list(w, f"{f}.actions", t.get("actions"))):
            a = _mapping(w, f"{f}.actions[{j}]", a)
            an = a.get("name")
            if not isinstance(an, str) or not an:
                raise w.fail(f"{f}.actions[{j}].name", f"must be a non-empty string, got {short(an)}")
            e = _pj(w, f"{f}.actions[{j}].energy", a.get("energy"))
            actions[an] = max(e, actions.get(an, e))
        out[name] = actions
    return out


def _ert_energy(w: _Where, tables: dict[str, dict[str, float]], levels: list[dict], dram_width: int,
                mac: tuple[str, str, int], selection: Optional[tuple[str, Optional[int]]], tech_nm: float,
                cycle_s: float) -> tuple[dict, list[str]]:
    """The design's ``energy:`` section from ERT tables (the inverse of what export-timeloop writes:
    per-word energies / word bits, leak per cycle / cycle time), and one line per ERT entry or
    component not mapped.

    Args:
        w: names the ERT file in errors. tables: :func:`_ert_tables`' component -> {action: pJ}.
        levels: the design's storage mappings (name, class, word_bits). dram_width: bits per DRAM access.
        mac: (component name, datatype, activation bits).
        selection: ("mux", m) or ("network", K) when the arch runs N:M or unstructured weights:
            the ERT's compute then includes nmlab's selection term, which nmlab counts apart
            (the mux component), so it is taken off; K None (no --problem): the MAC energy is
            listed as not mapped; None when dense.
        tech_nm: the design's node: nmlab's 2:1 mux energy there prices the selection term.
        cycle_s: seconds per cycle (the arch's global_cycle_seconds): leak pJ per cycle -> mW.
    """
    from hwmodel.energy import EnergyTable, mux2_pj_per_bit

    energy: dict[str, Any] = {}
    unmapped: list[str] = []

    def differs(comp: str, action: str, used: str, acts: dict[str, float]) -> None:
        """List ``action``, which nmlab charges at ``used``'s energy, where the table gives it
        another energy, or gives no ``used`` (then nmlab's own figure stands for both)."""
        if action not in acts:
            return
        if used not in acts:
            unmapped.append(f"ERT {comp}.{action} {acts[action]:.6g} pJ: not mapped (nmlab charges {action} "
                            f"as {used}, which the table does not give)")
        elif not math.isclose(acts[action], acts[used], rel_tol=1e-9, abs_tol=0.0):
            unmapped.append(f"ERT {comp}.{action} {acts[action]:.6g} pJ: not mapped (nmlab charges {action} "
                            f"as {used}, {acts[used]:.6g} pJ)")

    def rest(comp: str, kind: str, acts: dict[str, float]) -> None:
        for action, e in acts.items():
            if action not in _ERT_ACTIONS[kind] and e != 0:
                unmapped.append(f"ERT {comp}.{action}: not mapped (no such action in nmlab's model)")

    for lv in levels:
        comp, kind = lv["name"], lv["class"]
        acts = tables.get(comp)
        if acts is None:
            unmapped.append(f"{comp}: no ERT table, nmlab's own energies")
            continue
        rest(comp, kind, acts)
        bits = dram_width if kind == "dram" else lv["word_bits"]
        if kind == "sram":
            own = {}
            if "read" in acts:
                own["read_pj_per_bit"] = acts["read"] / bits
            if "write" in acts:
                own["write_pj_per_bit"] = acts["write"] / bits
            differs(comp, "metadata_read", "read", acts)
            for action in ("update", "metadata_write", "metadata_update"):
                differs(comp, action, "write", acts)
            if "leak" in acts:
                own["leakage_mw"] = acts["leak"] / cycle_s * 1e-9   # pJ per cycle -> mW
            if own:
                energy.setdefault("sram", {})[comp] = own
            continue
        key = "dram_pj_per_bit" if kind == "dram" else "register_pj_per_bit"
        if "read" in acts:
            if key in energy:  # nmlab has one register figure: the first register level's
                if not math.isclose(acts["read"] / bits, energy[key], rel_tol=1e-9, abs_tol=0.0):
                    unmapped.append(f"ERT {comp}.read: not mapped (nmlab has one register pJ/bit, the first "
                                    "register level's)")
            else:
                energy[key] = acts["read"] / bits
        for action in ("write", "update"):
            differs(comp, action, "read", acts)
        if acts.get("leak", 0) != 0:
            unmapped.append(f"ERT {comp}.leak: not mapped (nmlab models no {kind} leakage)")

    if "register_pj_per_bit" not in energy and not any(lv["class"] == "regfile" for lv in levels):
        unmapped.append("register pJ/bit: no register file in the arch, nmlab's own (the model charges "
                        "operand registers per MAC)")
    comp, dtype, bits_a = mac
    acts = tables.get(comp)
    if acts is None:
        unmapped.append(f"{comp}: no ERT table, nmlab's own MAC energy")
    else:
        rest(comp, "mac", acts)
        action = "compute" if "compute" in acts else "mac_random" if "mac_random" in acts else None
        differs(comp, "mac_random", "compute", acts)
        if action is None:
            unmapped.append(f"{comp}: no compute action in the ERT, nmlab's own MAC energy")
        elif selection is not None and selection[0] == "network" and selection[1] is None:
            unmapped.append(f"ERT {comp}.{action}: not mapped (an unstructured arch's compute includes the "
                            "distribution network over K inputs: give --problem for K)")
        else:
            sel = 0.0
            if selection is not None:  # a table holding only nmlab's mux stage: its selection formulas
                et = EnergyTable({}, 0.0, mux2_pj_per_bit(tech_nm), 0.0, {}, 1.0)
                sel = (et.mux_pj(selection[1], bits_a) if selection[0] == "mux"
                       else et.distribution_pj(selection[1], bits_a))
            if acts[action] < sel * (1 - 1e-12):
                raise w.fail(f"{comp}.{action}", f"{acts[action]:.6g} pJ is less than nmlab's selection term "
                                                 f"{sel:.6g} pJ that it includes (N:M mux or unstructured network)")
            energy["mac_pj"] = {dtype: max(0.0, acts[action] - sel)}
    return energy, unmapped


def _problem_k(w: _Where, doc: Any) -> int:
    """K of a Timeloop v0.4 GEMM problem (``problem.instance.K``)."""
    body = _mapping(w, "problem", _mapping(w, "<top>", doc).get("problem"))
    inst = _mapping(w, "problem.instance", body.get("instance"))
    return _int(w, "problem.instance.K", inst.get("K"))


# --- The import pipeline -------------------------------------------------------------------------
# build_design (at the end) runs these stages in order; each does one thing and hands the next a
# small typed record. Every stage appends the defaults it had to state to ``notes``, in the order
# they appear in the written file's header.


@dataclass
class _Arch:
    """The arch file, read: its top mapping (which may also carry constraints and sparse
    optimizations) and its ``architecture`` mapping, in the ``nodes:`` or the subtree form."""
    w: _Where
    top: dict
    body: dict

    @property
    def nodes_form(self) -> bool:
        return "nodes" in self.body


@dataclass
class _Placement:
    """Where the operands live and how the MAC array is fed: level name -> kept operands, the
    (file, field) each keep was read from, and (kind, dataflow) from a spatial permutation or None."""
    keeps: dict[str, list[str]]
    keep_fields: dict[str, tuple[_Where, str]]
    flow: Optional[tuple[str, str]]


@dataclass
class _Levels:
    """The arch's components, outermost first; the placement the ``nodes:`` form writes on its nodes; the sparse
    optimizations written on its nodes as (field, target mapping)."""
    comps: list[_Component]
    placement: _Placement
    node_sparse: list[tuple[str, dict]]


@dataclass
class _System:
    """System-wide attributes: the technology node and the clock (``global_cycle_seconds``)."""
    tech_nm: float | int
    clock_mhz: float | int
    clock_hz: float
    cycle_s: float        # an ERT's leak is per Timeloop cycle


@dataclass
class _SparseOpt:
    """Every weight representation format of the sparse optimizations, as :func:`_sparse` returns
    them, and the file they were read from (for errors)."""
    formats: list[tuple[str, int, str, str]]
    where: _Where


@dataclass
class _WeightFormat:
    """The weight format the hardware's datapath reads: the first one kept at an SRAM level.
    ``fmt`` "CP" (N:M) or "B" (bitmask), or None when dense; ``error`` is raised once the levels
    are checked, when the weights are compressed only away from every SRAM level."""
    fmt: Optional[str] = None
    meta_bits: Optional[int] = None
    level: Optional[str] = None
    error: Optional[NmlabError] = None


@dataclass
class _Mac:
    """The arch's one compute component: field path, the component, its attributes (inherited
    ones included), instance count, Timeloop class and name."""
    field: str
    comp: dict
    attrs: dict
    count: int
    cls: str
    name: str


@dataclass
class _Storage:
    """The design's ``storage:`` levels, outermost first, and what was passed over building them."""
    levels: list[dict]
    mac: Optional[_Mac]
    dram_width: int               # bits per DRAM access
    kept_default: list[str]       # levels holding every operand for want of a dataspace constraint
    skipped: list[str]            # networks and levels that keep no operand
    dummies: list[str]            # Timeloop's dummy_storage placeholders


@dataclass
class _MacArray:
    """The design's ``compute:`` section, and what the ERT stage reads of the mac."""
    compute: dict
    name: str
    dtype: str
    rows: int
    cols: int
    bits_field: str               # the mac's datawidth, read as the activation bits only with --ert
    bits_value: Any


def _read_arch(arch_doc: Any, arch_path: str) -> _Arch:
    """The ``architecture`` mapping of a v0.4 arch (or v0.2/v0.3 in the subtree form)."""
    w = _Where("arch", arch_path)
    top = _mapping(w, "<top>", arch_doc)
    if "architecture" not in top and isinstance(top.get("arch"), dict):
        raise w.fail("arch", "Timeloop's pre-v0.2 format (`arch:` with `arithmetic` and `storage` lists) is not "
                             "read: write it as a v0.4 `architecture:` (nodes, or subtree/local)")
    arch = _mapping(w, "architecture", top.get("architecture"))
    version = str(arch.get("version", ""))
    # v0.2 and v0.3 archs (Timeloop's own parser, Sparseloop's artifacts) are the subtree/local form too.
    if version not in ("0.4", "0.40") and not (version in ("0.2", "0.3", "0.20", "0.30") and "nodes" not in arch):
        raise w.fail("architecture.version", f"must be 0.4 (or 0.2/0.3 in the subtree form), got "
                                             f"{short(arch.get('version'))}")
    return _Arch(w, top, arch)


def _find_levels(spec: _Arch, notes: list[str]) -> _Levels:
    """Flatten the arch into its components, outermost first (the ``nodes:`` form also gives the
    constraints and sparse optimizations written on its nodes)."""
    w, arch = spec.w, spec.body
    if not spec.nodes_form:
        return _Levels(_components(w, arch), _Placement({}, {}, None), [])
    if "subtree" in arch:
        raise w.fail("architecture", "give nodes or subtree, not both")
    walker = _Nodes(w)
    walker.walk(arch["nodes"], "architecture.nodes", {}, 1, 1)
    placement = _Placement(dict(walker.keeps), {k: (w, v) for k, v in walker.keep_fields.items()}, walker.flow)
    if walker.unrecognised_flow and walker.flow is None:
        notes.append("compute: the arch's spatial constraints name no GEMM dataflow nmlab models")
    return _Levels(walker.comps, placement, walker.sparse)


def _system(w: _Where, comps: list[_Component], notes: list[str]) -> _System:
    """The technology node and the clock, from the first node giving them."""
    tech, tech_field = _system_attr(comps, "technology")
    if tech is None:
        tech_nm: float | int = 45
        notes.append("technology_nm: 45 (the arch gives no technology)")
    else:
        m = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*(nm)?\s*", str(tech))
        if not m or isinstance(tech, bool):
            extra = f" {_EXPRESSION}" if isinstance(tech, str) and re.search(r"[A-Za-mo-z_*/+()]", tech) else ""
            raise w.fail(tech_field, f"must be like '22nm', got {short(tech)}{extra}")
        tech_nm = _sig(float(m.group(1)))
    gcs, gcs_field = _system_attr(comps, "global_cycle_seconds")
    if gcs is None:
        clock_hz = 1e9
        notes.append("clock_mhz: 1000 (the arch gives no global_cycle_seconds)")
    else:
        gcs = _positive(w, gcs_field, gcs)
        clock_hz = 1.0 / gcs
    clock_mhz = _sig(clock_hz / 1e6)
    clock_hz = clock_mhz * 1e6
    return _System(tech_nm, clock_mhz, clock_hz, gcs if gcs is not None else 1.0 / clock_hz)


def _read_constraints(spec: _Arch, found: _Placement, constraints_doc: Any, constraints_path: str,
                      notes: list[str]) -> _Placement:
    """The placement after the mapping constraints: a --constraints file's win over the ones written
    on the nodes; without one, a spec timeloopfe dumped (parsed-processed-input.yaml) or a one-file
    spec carries its constraints beside the arch."""
    inline_cons = next((k for k in _CONSTRAINT_KEYS if k in spec.top), None)
    if constraints_doc is not None:
        source, doc, strict = _Where("constraints", constraints_path), constraints_doc, True
    elif inline_cons is not None:
        source, doc, strict = spec.w, {inline_cons: spec.top[inline_cons]}, False
    else:
        return found
    keep_fields = dict(found.keep_fields)
    file_keeps, file_flow = _constraints(source, doc, strict=strict, fields=keep_fields)
    if constraints_doc is None:
        notes.append(f"holds and dataflow: from the arch file's own {inline_cons} (no --constraints)")
    return _Placement({**found.keeps, **file_keeps}, keep_fields, file_flow or found.flow)


def _read_sparse_opt(spec: _Arch, node_sparse: list[tuple[str, dict]], sparse_doc: Any, sparse_path: str,
                     notes: list[str]) -> _SparseOpt:
    """The weight formats of the Sparseloop sparse optimizations: a --sparse-opt file's, else the arch
    file's own (beside the arch, or written on the nodes); none when dense."""
    sparse_notes: list[str] = []
    if sparse_doc is not None:
        ws = _Where("sparse_opt", sparse_path)
        found = _SparseOpt(_sparse(ws, _sparse_targets(ws, sparse_doc), sparse_notes), ws)
    elif isinstance(spec.top.get("sparse_optimizations"), dict):
        found = _SparseOpt(_sparse(spec.w, _sparse_targets(spec.w, spec.top), sparse_notes), spec.w)
        notes.append("sparsity: from the arch file's own sparse_optimizations (no --sparse-opt)")
    elif node_sparse:
        found = _SparseOpt(_sparse(spec.w, node_sparse, sparse_notes), spec.w)
        notes.append("sparsity: from the sparse_optimizations written on the nodes (no --sparse-opt)")
    else:
        found = _SparseOpt([], spec.w)
    notes += sparse_notes
    return found


def _pick_weight_sram(comps: list[_Component], sparse: _SparseOpt) -> _WeightFormat:
    """nmlab keeps metadata in an SRAM: the first weight format at an SRAM level of the arch is the
    one the hardware's datapath reads (a format at DRAM or in PE registers alone is not)."""
    sram_names = set()
    for _, comp, _, _ in comps:
        if _classify(comp).kind == "sram" and isinstance(comp.get("name"), str):
            sram_names.add(_base_name(comp["name"]))
    formats = sparse.formats
    at_sram = [x for x in formats if x[2] in sram_names]
    if at_sram:
        fmt, meta_bits, level, _ = at_sram[0]
        return _WeightFormat(fmt, meta_bits, level)
    if not formats:
        return _WeightFormat()
    return _WeightFormat(error=sparse.where.fail(
        formats[0][3], f"weights are compressed only at {', '.join(sorted({x[2] for x in formats}))}, no SRAM "
                       "level of the arch: nmlab keeps the weights' metadata in an on-chip SRAM"))


def _dram_level(w: _Where, field: str, lname: str, attrs: dict, clock_hz: float,
                notes: list[str]) -> tuple[dict, int]:
    """(the DRAM level, bits per DRAM access) of the DRAM component ``lname`` at ``field``."""
    a = f"{field}.attributes"
    dw_key, dw = _attr(attrs, "datawidth")
    dtype = attrs.get("type")
    if dtype is None:
        dtype = "LPDDR4"
        notes.append(f"{lname}.type: LPDDR4 (the arch gives no DRAM type)")
    match = {t.lower(): t for t in DRAM_TYPES}.get(str(dtype).lower())
    if match is None:
        raise w.fail(f"{a}.type", f"must be one of {', '.join(DRAM_TYPES)}, got {short(dtype)}")
    width = _int(w, f"{a}.width", attrs.get("width", 64))
    dw = _int(w, f"{a}.{dw_key}", 8 if dw is None else dw)
    if "shared_bandwidth" in attrs:
        words = _positive(w, f"{a}.shared_bandwidth", attrs["shared_bandwidth"])
    elif "read_bandwidth" in attrs:
        words = _positive(w, f"{a}.read_bandwidth", attrs["read_bandwidth"])
        notes.append(f"{lname}.bandwidth_gb_s: from read_bandwidth (nmlab has one DRAM bandwidth; "
                     "no shared_bandwidth)")
    else:
        words = width / dw
        notes.append(f"{lname}.bandwidth_gb_s: one {width}-bit access per cycle (no shared_bandwidth)")
    return ({"name": lname, "class": "dram", "type": match,
             "bandwidth_gb_s": _sig(words * dw / 8 * clock_hz / 1e9)}, width)


def _onchip_level(w: _Where, field: str, kind: str, lname: str, attrs: dict, holds: list[str]) -> dict:
    """One SRAM or register-file level (``holds`` its operands) of the component at ``field``."""
    a = f"{field}.attributes"
    dw_key, dw = _attr(attrs, "datawidth")
    depth_key, depth = _attr(attrs, "depth")
    width_key, width = _attr(attrs, "width")
    bs_key, bs = _attr(attrs, "block_size")
    if width is None and dw is not None:  # Timeloop: a line of block_size words (block_size 1 if not given)
        width = (1 if bs is None else _int(w, f"{a}.{bs_key}", bs)) * _int(w, f"{a}.{dw_key}", dw)
    width = _int(w, f"{a}.{width_key}", width)
    if width % 8:
        raise w.fail(f"{a}.{width_key}", f"must be a multiple of 8 bits, got {width}")
    if depth is None and ("entries" in attrs or "sizeKB" in attrs):
        # Timeloop's other ways to give the size: `entries` words, or `sizeKB` kilobytes (of
        # datawidth-bit words); nmlab's capacity is the bits they hold, in lines of `width` bits.
        word = _int(w, f"{a}.{dw_key}", dw) if dw is not None else width
        key = "entries" if "entries" in attrs else "sizeKB"
        bits = _int(w, f"{a}.{key}", attrs[key]) * (word if key == "entries" else 8192)
        if bits % width:
            raise w.fail(f"{a}.{key}", f"{attrs[key]} {key} is {bits} bits, not a whole number of "
                                       f"{width}-bit lines ({width_key})")
        depth = bits // width
    else:
        depth = _int(w, f"{a}.{depth_key}", depth)
    return {"name": lname, "class": kind, "holds": holds, "capacity_bytes": depth * width // 8, "word_bits": width}


def _sram_banks_ports(w: _Where, field: str, lname: str, count: int, attrs: dict, level: dict,
                      notes: list[str]) -> None:
    """An SRAM level's banks, ports and double buffering, into ``level``."""
    a = f"{field}.attributes"
    if count != 1:
        raise w.fail(f"{field}.name", f"{count} instances of SRAM {short(lname)} (one per PE or PE "
                                      "group): nmlab models an SRAM level as one shared array and "
                                      "per-PE storage only as register files")
    banks_key, banks = _attr(attrs, "n_banks")
    level["banks"] = _int(w, f"{a}.{banks_key}", 1 if banks is None else banks)
    for key, attr in (("read_ports", "n_rd_ports"), ("write_ports", "n_wr_ports")):
        level[key] = _int(w, f"{a}.{attr}", attrs.get(attr, 1), low=0)
        if level[key] == 0:
            raise w.fail(f"{a}.{attr}", "must be >= 1, got 0: nmlab's SRAM has separate read and write ports "
                                        "(n_rdwr_ports is not read); give the level's ports as n_rd_ports and n_wr_ports")
    mb_key, mb = _attr(attrs, "multiple_buffering")
    if mb is None:
        mb = 1
        notes.append(f"{lname}.double_buffered: false (no multiple_buffering: Timeloop's 1)")
    level["double_buffered"] = _positive(w, f"{a}.{mb_key}", mb) >= 2


def _storage_levels(spec: _Arch, comps: list[_Component], placement: _Placement,
                    weights: _WeightFormat, clock_hz: float, notes: list[str]) -> _Storage:
    """The design's storage levels, outermost first (DRAM, then SRAMs and register files), and the
    arch's MAC component; networks, dummy_storage and levels that keep no operand are passed over."""
    w, keeps = spec.w, placement.keeps
    storage: list[dict] = []
    dram_width = 64
    mac: Optional[_Mac] = None
    kept_default: list[str] = []
    skipped: list[str] = []
    dummies: list[str] = []
    empty: list[str] = []
    not_read: list[str] = []
    for field, comp, inherited, above in comps:
        c = _classify(comp)
        cls, cls_field, kind = c.name, f"{field}.{c.key}", c.kind
        if not isinstance(cls, str):
            raise w.fail(cls_field, f"must be a string, got {short(cls)}")
        if kind == "dummy":
            if isinstance(comp.get("name"), str):
                dummies.append(_base_name(comp["name"]))
            continue
        if kind is None:
            raise w.fail(cls_field, f"{short(cls)} is not a class nmlab models (DRAM, SRAM, regfile, register, "
                                    "intmac, fpmac; compound components named after one of these)")
        lname, count = _split_name(w, f"{field}.name", comp.get("name"), level=kind not in ("network", "mac"))
        if kind == "network":
            skipped.append(lname)
            continue
        count *= above
        attrs = _merge(inherited, _own_attributes(w, field, comp))
        if "instances" in attrs:  # Timeloop v0.2: the instance count as an attribute wins over name ranges
            count = _int(w, f"{field}.attributes.instances", attrs["instances"])
        if kind == "mac":
            if mac is not None:
                raise w.fail(f"{field}", f"a second compute component {short(lname)} (the first is "
                                         f"{short(mac.comp.get('name'))}): nmlab models one MAC array")
            mac = _Mac(field, comp, attrs, count, cls, lname)
            continue
        if mac is not None and spec.nodes_form:
            raise w.fail(field, f"storage level {short(lname)} below the mac component")
        if kind == "dram":
            if storage:
                raise w.fail(field, "the DRAM must be the outermost level")
            level, dram_width = _dram_level(w, field, lname, attrs, clock_hz, notes)
            storage.append(level)
            continue
        if not storage:
            raise w.fail(field, "the outermost level must be class DRAM")
        holds = list(keeps.get(lname, ()))
        if lname not in keeps:
            holds = ["weights", "inputs", "outputs"]
            kept_default.append(lname)
        if weights.level == lname:
            holds.append("metadata")
        zero = next((k for k in _SIZE_KEYS if attrs.get(k) == 0 and not isinstance(attrs.get(k), bool)), None)
        if zero is not None:
            # Timeloop's zero-capacity level (v0.2/v0.3 `DummyBuffer`, depth 0): a fanout placeholder
            # that holds nothing, as timeloopfe's dummy_storage; skipped unless a constraint keeps data there.
            if keeps.get(lname):
                raise w.fail(f"{field}.attributes.{zero}", f"0: a zero-capacity level, but its dataspace constraint "
                                                           f"keeps {', '.join(keeps[lname])}")
            empty.append(lname)
            dummies.append(lname)
            continue
        level = _onchip_level(w, field, kind, lname, attrs, holds)   # checked even when it keeps nothing
        if not holds:  # bypasses every operand (a fanout or network level written as storage): holds nothing
            skipped.append(lname)
            continue
        own = comp.get("attributes") or {}
        not_read += [f"{lname}.{k}" for k in own if k.replace("-", "_") in _NOT_READ]
        if kind == "sram":
            _sram_banks_ports(w, field, lname, count, attrs, level, notes)
        storage.append(level)
    regs = [lv["name"] for lv in storage if lv["class"] == "regfile"]
    if regs:
        notes.append(f"register files {', '.join(regs)}: nmlab charges operand registers per MAC "
                     "(docs/hwmodel.md), so their capacity and traffic do not enter its schedule")
    if not_read:
        notes.append(f"not read (no nmlab field: on-chip bandwidth comes from banks, ports and word width, "
                     f"metadata shares its level's capacity): {', '.join(not_read)}")
    if empty:
        notes.append(f"{', '.join(empty)}: not modelled (size 0: Timeloop's zero-capacity fanout level, which "
                     "holds nothing)")
    if skipped:
        notes.append(f"{', '.join(skipped)}: not modelled (a network, or a level that keeps no operand; "
                     "nmlab's own operand distribution)")
    return _Storage(storage, mac, dram_width, kept_default, skipped, dummies)


def _check_levels(spec: _Arch, found: _Storage, placement: _Placement, weights: _WeightFormat,
                  constraints_given: bool, notes: list[str]) -> _Mac:
    """What nmlab needs of the levels (a DRAM, one MAC array, an SRAM level keeping each operand, the
    weight format at an SRAM); returns the MAC component."""
    w, storage, keeps = spec.w, found.levels, placement.keeps
    if not storage:
        raise w.fail("architecture", "no DRAM level (class DRAM)")
    if found.mac is None:
        raise w.fail("architecture", "no mac component (class intmac or fpmac): nmlab needs the MAC array")
    if weights.error is not None:
        raise weights.error
    srams = [lv for lv in storage if lv["class"] == "sram"]
    for op in ("weights", "inputs", "outputs"):
        if srams and not any(op in lv["holds"] for lv in srams):
            kept = "; ".join(f"{lv['name']} keeps {', '.join(lv['holds'])}" for lv in srams)
            where, field = placement.keep_fields.get(srams[0]["name"], (w, f"{srams[0]['name']}: dataspace keep"))
            raise where.fail(field, f"no SRAM level keeps {op} ({kept}): nmlab moves every operand through an "
                                    "on-chip SRAM level, not from DRAM straight to the PEs")
    if not srams:
        raise w.fail("architecture", "no SRAM level (class SRAM, smartbuffer_SRAM, ...): nmlab needs an on-chip "
                                     "SRAM between DRAM and the PEs")
    if found.kept_default:
        if not constraints_given and not keeps:
            notes.append("holds: every on-chip level keeps weights, inputs and outputs (no --constraints)")
        else:
            notes.append(f"holds: {', '.join(found.kept_default)} keep weights, inputs and outputs "
                         "(no dataspace constraint)")
    # A target naming no level (a typo, a container, the mac) would otherwise pass unmentioned.
    levels = {lv["name"] for lv in storage} | set(found.skipped) | set(found.dummies)
    for target in keeps:
        if target not in levels:
            notes.append(f"holds: the keep constraint on {target} is not used ({target} is no storage level)")
    return found.mac


def _mac_array(spec: _Arch, mac: _Mac, flow: Optional[tuple[str, str]], constraints_given: bool,
               notes: list[str]) -> _MacArray:
    """The ``compute:`` section: the MAC array's shape (meshX x meshY), datatype (multiplier_width),
    accumulator (adder_width) and dataflow (the spatial constraint's)."""
    w, field, attrs, count = spec.w, mac.field, mac.attrs, mac.count
    a = f"{field}.attributes"
    if "meshX" in attrs or "meshY" in attrs:
        cols = _int(w, f"{a}.meshX", attrs.get("meshX", 1))
        # meshY absent: the rest of the instances (Timeloop's meshY = instances / meshX).
        rows = _int(w, f"{a}.meshY", attrs.get("meshY", max(1, count // cols)))
        if count not in (1, rows * cols):
            raise w.fail(f"{field}.name", f"{count} MACs but meshX x meshY = {cols} x {rows}")
    else:
        cols, rows = count, 1
        notes.append(f"compute: {count} MACs as one row (the mac gives no meshX/meshY)")
    dw_key, dw = _attr(attrs, "datawidth")
    mw_key = "multiplier_width" if "multiplier_width" in attrs else dw_key
    mw = _int(w, f"{a}.{mw_key}", attrs.get("multiplier_width", 8 if dw is None else dw))
    is_fp = mac.cls.lower().startswith("fp")
    dtype = {16: "fp16", 32: "fp32"}.get(mw) if is_fp else f"int{mw}"
    if dtype not in DATATYPE_BITS:
        raise w.fail(f"{a}.multiplier_width", f"{mw}-bit {'fpmac' if is_fp else 'intmac'} is not a datatype "
                                               f"nmlab models ({', '.join(DATATYPE_BITS)})")
    notes.append(f"compute.datatypes: {{{dtype}: 1}} (one MAC per PE per cycle; other datatypes and rates "
                 "are not in a Timeloop arch)")
    acc = attrs.get("adder_width")
    if acc is None:
        notes.append("compute.accumulator_bits: 32 (no adder_width)")
    if flow is None:
        flow = ("systolic", "ws")
        notes.append("compute: systolic, weight stationary (no spatial constraint naming a dataflow nmlab models"
                     f"{', and no --constraints' if not constraints_given and not spec.nodes_form else ''})")
    compute: dict[str, Any] = {"kind": flow[0]}
    if flow[0] == "systolic":
        compute["dataflow"] = flow[1]
    compute.update({"rows": rows, "cols": cols, "datatypes": {dtype: 1},
                    "accumulator_bits": _int(w, f"{a}.adder_width", acc) if acc is not None else 32})
    if flow[0] == "tensor_core":
        notes.append("compute.tile_m: 16, pipeline_depth: ceil(log2 cols) + 2 (nmlab's tensor-core defaults)")
    return _MacArray(compute, mac.name, dtype, rows, cols, f"{a}.{dw_key}", mw if dw is None else dw)


def _sparsity(weights: _WeightFormat, macs: int, notes: list[str]) -> dict[str, Any]:
    """The ``sparsity:`` section from the weight format (``macs``: MACs in the array, one index each
    per cycle)."""
    if weights.fmt is None:
        notes.append("sparsity: none (no --sparse-opt, or it lists no weight representation format)")
        return {"support": "none"}
    meta_bits = weights.meta_bits
    meta_bw = macs * meta_bits
    if weights.fmt == "B":
        sparsity: dict[str, Any] = {"support": "unstructured", "index_format": "bitmask"}
    else:
        sparsity = {"support": "layerwise", "max_m": 2 ** meta_bits}
        notes.append(f"sparsity: layerwise N:M with M <= {2 ** meta_bits} (a CP rank of {meta_bits} bits; "
                     "Sparseloop's format does not say which N the hardware runs)")
    sparsity["metadata_bits_per_cycle"] = meta_bw
    notes.append(f"sparsity.metadata_bits_per_cycle: {meta_bw} (one index per MAC per cycle; "
                 "Sparseloop has no metadata bandwidth)")
    return sparsity


def _energy(spec: _Arch, storage: _Storage, mac: _MacArray, weights: _WeightFormat, system: _System,
            ert_doc: Any, ert_path: str, problem_doc: Any, problem_path: str, notes: list[str]) -> dict:
    """The ``energy:`` section from an Accelergy ERT (empty when it maps nothing); entries not mapped
    are listed in ``notes``."""
    names = {lv["name"]: lv["class"] for lv in storage.levels}
    names[mac.name] = "mac"
    k = _problem_k(_Where("problem", problem_path), problem_doc) if problem_doc is not None else None
    selection: Optional[tuple[str, Optional[int]]] = None
    if weights.fmt == "CP":
        selection = ("mux", 2 ** weights.meta_bits)
    elif weights.fmt == "B":
        selection = ("network", k)
    if k is not None and weights.fmt != "B":
        notes.append(f"--problem: K = {k} not used (only an unstructured arch's MAC energy includes a network "
                     "over K)")
    bits_a = _int(spec.w, mac.bits_field, mac.bits_value)
    we = _Where("ert", ert_path)
    ert_notes: list[str] = []
    tables = _ert_tables(we, ert_doc, names, set(storage.skipped) | set(storage.dummies), ert_notes)
    energy, unmapped = _ert_energy(we, tables, storage.levels, storage.dram_width,
                                   (mac.name, mac.dtype, bits_a), selection, system.tech_nm, system.cycle_s)
    notes.append("energies not in the ERT (the mux, and any listed below): nmlab's own (CACTI 7 and "
                 "energy.yaml at the technology node)")
    notes += ert_notes + unmapped
    return energy


def build_design(arch_doc: Any, name: str, constraints_doc: Any = None, sparse_doc: Any = None,
                 arch_path: str = "<arch>", constraints_path: str = "<constraints>",
                 sparse_path: str = "<sparse_opt>", ert_doc: Any = None, ert_path: str = "<ert>",
                 problem_doc: Any = None, problem_path: str = "<problem>") -> tuple[dict, list[str]]:
    """The nmlab design mapping for a Timeloop architecture, and the defaults it had to state.

    Args:
        arch_doc: the parsed arch YAML (top key ``architecture``).
        name: design name. constraints_doc, sparse_doc: parsed constraints / sparse
            optimizations YAML, or None when not given.
        ert_doc: parsed Accelergy ERT or None: its energies become the design's ``energy:``
            section (entries not mapped are listed with the defaults).
        problem_doc: parsed Timeloop problem or None: its K, read only to take an unstructured
            arch's distribution network off the ERT's MAC energy.
        *_path: file names for error messages.
    Returns:
        (design mapping as :func:`hwmodel.design.parse_design` reads it, one line per default).
    Raises:
        NmlabError: one line naming the file and field.
    """
    notes: list[str] = []
    spec = _read_arch(arch_doc, arch_path)
    found = _find_levels(spec, notes)
    system = _system(spec.w, found.comps, notes)
    placement = _read_constraints(spec, found.placement, constraints_doc, constraints_path, notes)
    weights = _pick_weight_sram(found.comps, _read_sparse_opt(spec, found.node_sparse, sparse_doc, sparse_path,
                                                              notes))
    storage = _storage_levels(spec, found.comps, placement, weights, system.clock_hz, notes)
    mac = _check_levels(spec, storage, placement, weights, constraints_doc is not None, notes)
    array = _mac_array(spec, mac, placement.flow, constraints_doc is not None, notes)
    sparsity = _sparsity(weights, array.rows * array.cols, notes)
    notes.append("DRAM latency 0; SRAM cell_type itrs-hp (not in a Timeloop arch)")
    design = {"version": 1, "name": name, "description": f"imported from Timeloop architecture {Path(arch_path).name}",
              "technology_nm": system.tech_nm, "clock_mhz": system.clock_mhz, "compute": array.compute,
              "sparsity": sparsity, "storage": storage.levels}
    if ert_doc is None:
        notes.append("energies: nmlab's own (CACTI 7 and energy.yaml at the technology node); no --ert")
        return design, notes
    energy = _energy(spec, storage, array, weights, system, ert_doc, ert_path, problem_doc, problem_path, notes)
    if energy:
        design["energy"] = energy
    return design, notes


def render(design: dict, defaults: list[str], sources: list[str]) -> str:
    """The design YAML text with a comment header naming the inputs and every stated default."""
    # A comment stays one line whatever a file name or data space name holds.
    head = ["# Written by `nmlab import-timeloop` (docs/timeloop.md) from " + one_line(", ".join(sources)) + ".",
            "# Not carried by the Timeloop files, so set to a stated default:"]
    head += [f"#   - {one_line(d)}" for d in defaults]
    return "\n".join(head) + "\n" + yaml.safe_dump(design, sort_keys=False, default_flow_style=None)


def import_timeloop(arch: str | os.PathLike, out: str | os.PathLike, constraints: Optional[str | os.PathLike] = None,
                    sparse_opt: Optional[str | os.PathLike] = None, name: Optional[str] = None,
                    ert: Optional[str | os.PathLike] = None,
                    problem: Optional[str | os.PathLike] = None) -> tuple[Path, list[str]]:
    """Read a Timeloop v0.4 arch (plus optional constraints, sparse optimizations, an Accelergy
    ERT whose energies replace nmlab's, and the problem for an unstructured arch's K) and write
    an nmlab design YAML to ``out``.

    Returns:
        (the path written, the defaults stated in its header).
    Raises:
        NmlabError: one line naming the file and field; nothing is written.
    """
    from hwmodel.io import atomic_write

    out = check_output_file(out, "--out", inputs=[("arch", arch), ("--constraints", constraints),
                                                  ("--sparse-opt", sparse_opt), ("--ert", ert), ("--problem", problem)])
    if problem is not None and ert is None:
        raise NmlabError("--problem: only read with --ert (its K takes an unstructured arch's network off the MAC energy)")
    if name is None:  # the file name, made a plain identifier
        name = re.sub(r"[^A-Za-z0-9_.\-]", "_", out.stem)[:64] or "imported"
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9_.\-]{1,64}", name):
        raise NmlabError(f"--name: must be 1 to 64 letters, digits, '_', '-' or '.', got {short(name)}")
    _check_processed(arch, "arch")
    docs = {"arch": load_yaml(arch, "arch", tags=NODE_TAGS)}
    for which, path in (("constraints", constraints), ("sparse_opt", sparse_opt), ("ert", ert), ("problem", problem)):
        if path is None:
            continue
        if which in ("constraints", "sparse_opt"):
            _check_processed(path, which)
        # an empty file loads as None, which would read as the option not given
        docs[which] = _mapping(_Where(which, path), "<top>", load_yaml(path, which))
    design, defaults = build_design(docs["arch"], name, docs.get("constraints"), docs.get("sparse_opt"),
                                    str(arch), str(constraints), str(sparse_opt), docs.get("ert"), str(ert),
                                    docs.get("problem"), str(problem))
    text = render(design, defaults, [str(p) for p in (arch, constraints, sparse_opt, ert, problem) if p is not None])
    # The loader's validation (capacity limits, banks, ports ...) on exactly what is written.
    try:
        parse_design(yaml.safe_load(text), name=name, source=str(out))
    except NmlabError as exc:
        raise NmlabError(f"arch: {arch}: the imported design is not valid: {exc}") from None
    with atomic_write(out, "w") as fh:
        fh.write(text)
    return out, defaults
