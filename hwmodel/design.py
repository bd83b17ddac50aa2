"""Design points: an accelerator described in YAML (schema in docs/hwmodel.md), loaded into dataclasses.

The vocabulary follows Timeloop's architecture spec: a compute array with attributes plus a
list of storage levels, outermost (DRAM) first. Every problem in a file is reported as one
line naming the key, e.g. ``design 'edge': storage[1].capacity_bytes: must be >= 1, got 0``.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, fields
from functools import cached_property
from pathlib import Path
from typing import Any, Optional

from hwmodel.errors import NmlabError
from hwmodel.io import data_path
from hwmodel.limits import (check_version, exists, finite, is_file, is_int, limit, load_yaml, not_a_file,
                            other_kind, over_limit, short)
from hwmodel.sparsity import Pattern, parse_pattern

DESIGN_VERSION = 1
SUPPORTED_VERSIONS = (1,)

#: Datatypes a MAC can run and their bitwidths.
DATATYPE_BITS = {"int4": 4, "int8": 8, "int16": 16, "fp16": 16, "bf16": 16, "fp32": 32}
#: Which datatype a ``bits`` request picks when the design supports several of that width.
_BITS_PREFERENCE = {4: ("int4",), 8: ("int8",), 16: ("fp16", "bf16", "int16"), 32: ("fp32",)}

COMPUTE_KINDS = ("systolic", "tensor_core")
DATAFLOWS = ("ws", "os")
SPARSITY_SUPPORT = ("none", "fixed", "flexible", "layerwise", "unstructured")
#: How an unstructured design stores which weights it kept (docs/hwmodel.md has the bit counts).
INDEX_FORMATS = ("bitmask", "coordinate")
STORAGE_CLASSES = ("dram", "sram", "regfile")
OPERANDS = ("weights", "inputs", "outputs", "metadata")
#: DRAM types with a pJ/bit figure in hwmodel/data/energy.yaml.
SRAM_CELL_TYPES = ("itrs-hp", "itrs-lstp", "itrs-lop")
DRAM_TYPES = ("LPDDR4", "LPDDR", "DDR3", "GDDR5", "HBM2", "HMC")


@dataclass(frozen=True)
class Compute:
    """The MAC array.

    Attributes:
        kind: "systolic" (R x C grid of PEs) or "tensor_core" (``rows`` dot-product units,
            each ``cols`` products wide, fed through selection muxes when sparse).
        dataflow: "ws" or "os" (systolic only; "" for tensor_core).
        rows: systolic PE rows (mapped along the reduction K) or tensor-core unit count.
        cols: systolic PE columns (mapped along outputs N) or dot-product width.
        datatypes: MACs per PE per cycle for each supported datatype (int8: 1, int4: 2 ...).
        accumulator_bits: width of partial sums kept between K folds.
        activation_bits: activation width; None = same as the weight bits of the run.
        tile_m: tensor_core only: batch rows of one operand tile held in registers.
        pipeline_depth: tensor_core only: cycles from first operand to first result.
    """

    kind: str
    dataflow: str
    rows: int
    cols: int
    datatypes: dict[str, float]
    accumulator_bits: int = 32
    activation_bits: Optional[int] = None
    tile_m: int = 16
    pipeline_depth: int = 0

    @property
    def pes(self) -> int:
        return self.rows * self.cols


@dataclass(frozen=True)
class Sparsity:
    """What N:M sparsity the hardware exploits.

    Attributes:
        support: "none"; "fixed" (only ``patterns``, as the 2:4 sparse tensor core);
            "flexible" (per-row N from ``n_values`` in groups of ``m``, VEGETA-like);
            "layerwise" (any N:M chosen per layer with M <= ``max_m``, as SCALE-Sim v3);
            "unstructured" (any mask: each output row's kept weights packed along K, SIGMA-like
            distribution of activations; a fold of outputs walks its busiest row).
        patterns: the supported patterns of a "fixed" design.
        m: group size of a "flexible" design.
        n_values: the per-row N a "flexible" design can run.
        max_m: largest M of a "layerwise" design.
        metadata_bits_per_cycle: bandwidth of the metadata path into the array.
        index_format: "unstructured" only: "bitmask" (one bit per dense weight position) or
            "coordinate" (CSR-like: an input index per kept weight plus a count per output row).
    """

    support: str = "none"
    patterns: tuple[Pattern, ...] = ()
    m: int = 0
    n_values: tuple[int, ...] = ()
    max_m: int = 0
    metadata_bits_per_cycle: float = 0.0
    index_format: str = ""

    def candidates(self) -> tuple[Pattern, ...]:
        """The layer-wide patterns the hardware can run, sparsest first (dense excluded)."""
        # Memoised on the instance (the mapping asks once per mask): the fields are frozen.
        hit = self.__dict__.get("_candidates")
        if hit is None:
            hit = self._sorted_candidates()
            object.__setattr__(self, "_candidates", hit)
        return hit

    def _sorted_candidates(self) -> tuple[Pattern, ...]:
        if self.support == "fixed":
            pats = self.patterns
        elif self.support == "flexible":
            pats = tuple(Pattern("nm", n, self.m) for n in self.n_values if n < self.m)
        else:
            return ()
        return tuple(sorted(pats, key=lambda p: (p.n / p.m, p.m)))


@dataclass(frozen=True)
class Storage:
    """One storage level.

    Attributes:
        name: unique name ("DRAM", "GlobalBuffer", ...).
        cls: "dram", "sram" or "regfile" (the YAML key is ``class``).
        holds: operands kept at this level (weights, inputs, outputs, metadata).
        capacity_bytes: size (SRAM and register file; 0 for DRAM = unbounded).
        word_bits: access width in bits.
        banks, read_ports, write_ports: SRAM organisation (CACTI inputs, on-chip bandwidth).
        double_buffered: SRAM only: fills the next tile while the array works on this one.
        cell_type: SRAM only: CACTI cell/peripheral device type (itrs-hp, itrs-lstp, itrs-lop);
            low-standby-power cells leak orders of magnitude less (edge designs).
        dram_type: DRAM only: technology naming its pJ/bit in energy.yaml.
        bandwidth_bytes_per_cycle: DRAM only: bytes per compute-clock cycle.
        latency_cycles: DRAM only: first-access latency in compute-clock cycles.
    """

    name: str
    cls: str
    holds: tuple[str, ...] = ()
    capacity_bytes: int = 0
    word_bits: int = 64
    banks: int = 1
    read_ports: int = 1
    write_ports: int = 1
    double_buffered: bool = True
    cell_type: str = "itrs-hp"
    dram_type: str = ""
    bandwidth_bytes_per_cycle: float = 0.0
    latency_cycles: float = 0.0


@dataclass(frozen=True)
class SramEnergyOverride:
    """Per-bit costs of one SRAM level given in the design file (None: nmlab's CACTI figure)."""

    read_pj_per_bit: Optional[float] = None
    write_pj_per_bit: Optional[float] = None
    leakage_mw: Optional[float] = None


#: The per-level keys of a design file's ``energy.sram`` section: SramEnergyOverride's fields.
SRAM_ENERGY_KEYS = tuple(f.name for f in fields(SramEnergyOverride))


@dataclass(frozen=True)
class EnergyOverrides:
    """The design file's ``energy:`` section: per-action energies (pJ at the design's node, not
    scaled) that replace nmlab's own in :func:`hwmodel.energy.energy_table`; None or absent
    entries keep nmlab's. Tuples, not dicts, so a Design stays hashable."""

    mac_pj: tuple[tuple[str, float], ...] = ()                 # (datatype, pJ per MAC)
    register_pj_per_bit: Optional[float] = None
    mux2_pj_per_bit: Optional[float] = None
    dram_pj_per_bit: Optional[float] = None
    sram: tuple[tuple[str, SramEnergyOverride], ...] = ()      # (level name, its overrides)


@dataclass(frozen=True)
class Design:
    """A whole design point.

    Attributes:
        name: the design's name (its file's ``name:``).
        version: the design file format version.
        technology_nm: process node in nm (energies scale from 45 nm with it).
        clock_hz: compute clock in Hz (the file gives ``clock_mhz``).
        compute, sparsity, storage: the MAC array, the sparsity it exploits, the storage levels
            (outermost, DRAM, first).
        description: free text from the file.
        source: the file it came from (None if built in code).
        energy: per-action energies the file gives in place of nmlab's (None: all nmlab's).
    """

    name: str
    version: int
    technology_nm: float
    clock_hz: float
    compute: Compute
    sparsity: Sparsity
    storage: tuple[Storage, ...]
    description: str = ""
    source: Optional[str] = None
    energy: Optional[EnergyOverrides] = None

    @cached_property
    def dram(self) -> Storage:
        return next(s for s in self.storage if s.cls == "dram")

    @cached_property
    def srams(self) -> tuple[Storage, ...]:
        return tuple(s for s in self.storage if s.cls == "sram")

    def sram_for(self, operand: str) -> Storage:
        """The innermost SRAM level that holds ``operand`` (weights, inputs, outputs, metadata)."""
        for s in reversed(self.storage):
            if s.cls == "sram" and operand in s.holds:
                return s
        if operand == "metadata":
            return self.sram_for("weights")
        raise KeyError(operand)

    def datatype_for(self, bits: int) -> str:
        """The MAC datatype a run at ``bits`` uses; NmlabError if the array has none."""
        for dt in _BITS_PREFERENCE.get(bits, ()):
            if dt in self.compute.datatypes:
                return dt
        have = ", ".join(f"{d} ({DATATYPE_BITS[d]} bits)" for d in self.compute.datatypes)
        raise NmlabError(f"design {self.name!r}: compute.datatypes: no datatype of {bits} bits (has {have})")

    def weight_sram_bytes(self) -> int:
        """On-chip capacity available for weights and their metadata (bytes)."""
        return sum(s.capacity_bytes for s in self.srams if "weights" in s.holds or "metadata" in s.holds)


# ---------------------------------------------------------------------------------------
# Validation helpers: each raises NmlabError naming ``where`` (design name and key path).

#: Bounds of fields no real design comes near (rows x cols and capacity_bytes have stated,
#: overridable limits: hwmodel.limits, docs/limits.md).
_MAX_INT = 1 << 20          # widths, depths, banks, ports, N:M group sizes
_MAX_NUM = 1e6              # MHz, GB/s, ns, MACs per PE per cycle, metadata bits per cycle
#: Smallest positive rate (MHz, GB/s, bytes or metadata bits per cycle, MACs per PE per cycle):
#: a MAC rate r stretches streaming by 1/r in int64 cycle counts, and a tiny clock or
#: bandwidth makes latency and leakage energy infinite.
_MIN_NUM = 1e-3
#: The smallest SRAM bank CACTI 7 finds an organisation for: at least 64 bytes and more than
#: 30 words of ``word_bits`` (exact on every probed node, cell type, port and bank count).
CACTI_MIN_BANK_BYTES = 64
CACTI_MIN_BANK_WORDS_OVER = 30
#: Largest per-action energy an ``energy:`` section may give (pJ per MAC, per bit; mW of leakage).
_MAX_ENERGY = 1e6
#: Most patterns a fixed design lists: every mask is checked against each pattern's group size.
_MAX_PATTERNS = 64
#: Longest design or storage level name: names are printed in one-line messages, report tables
#: and sweep rows (the bundled designs' are under 25 characters).
NAME_MAX_CHARS = 64


def name_problem(value: str) -> Optional[str]:
    """Why ``value`` cannot be a design or storage level name (None: it can): 1 to
    NAME_MAX_CHARS printable characters (no newline, tab or other control character), neither
    starting nor ending with a space (``" edge_ws"`` reads as ``edge_ws`` in every table, yet a
    sweep would take it for another design)."""
    if not value or len(value) > NAME_MAX_CHARS or not value.isprintable():
        return (f"must be 1 to {NAME_MAX_CHARS} printable characters (no newline or other control character), "
                f"got {short(value)} ({len(value):,} characters)")
    if value != value.strip():
        return f"must not start or end with a space (it would read as {value.strip()!r} in every table), got {value!r}"
    return None


class _Reader:
    """Reads keys out of one YAML mapping, remembering which were used to catch unknown ones."""

    def __init__(self, design: str, path: str, data: Any):
        self.design = design
        self.path = path
        if not isinstance(data, dict):
            self.fail("", f"must be a mapping, got {type(data).__name__}")
        self.data = data

    def key(self, name: str) -> str:
        return f"{self.path}.{name}" if self.path else name

    def fail(self, name: str, msg: str):
        where = self.key(name) if name else (self.path or "<top>")
        raise NmlabError(f"design {short(self.design)}: {where}: {msg}")

    def check_unknown(self, allowed: set[str]) -> None:
        unknown = sorted(short(k)[1:-1] if isinstance(k, str) else short(k) for k in self.data if k not in allowed)
        if unknown:
            kind = "" if self.path else other_kind(self.data, "an accelerator design")
            self.fail(unknown[0], f"unknown key (allowed: {', '.join(sorted(allowed))}){kind}")

    def get(self, name: str, default: Any = ...) -> Any:
        if name not in self.data:
            if default is ...:
                self.fail(name, "missing")
            return default
        return self.data[name]

    def int_(self, name: str, default: Any = ..., *, min_value: int = 1, max_value: int = _MAX_INT,
             why_min: str = "") -> int:
        """The integer ``name`` within [min_value, max_value]; ``why_min``: said after a value under the minimum."""
        v = self.get(name, default)
        if v is default and default is not ...:
            return v
        if not is_int(v):
            self.fail(name, f"must be an integer, got {short(v)}")
        if v < min_value:
            self.fail(name, f"must be >= {min_value}, got {v}{why_min}")
        if v > max_value:
            self.fail(name, f"must be <= {max_value:,}, got {short(v)}")
        return v

    def num(self, name: str, default: Any = ..., *, positive: bool = True, max_value: float = _MAX_NUM) -> float:
        v = self.get(name, default)
        if v is default and default is not ...:
            return v
        return finite(v, f"design {short(self.design)}: {self.key(name)}", low=_MIN_NUM if positive else 0,
                      high=max_value)

    def str_(self, name: str, default: Any = ..., *, choices: tuple[str, ...] = ()) -> str:
        v = self.get(name, default)
        if v is default and default is not ...:
            return v
        if not isinstance(v, str):
            self.fail(name, f"must be a string, got {short(v)}")
        if choices and v not in choices:
            self.fail(name, f"must be one of {', '.join(choices)}, got {short(v)}")
        return v

    def bool_(self, name: str, default: Any = ...) -> bool:
        v = self.get(name, default)
        if not isinstance(v, bool):
            self.fail(name, f"must be true or false, got {short(v)}")
        return v

    def sub(self, name: str, default: Any = ...) -> "_Reader":
        return _Reader(self.design, self.key(name), self.get(name, default))


def _parse_compute(r: _Reader) -> Compute:
    r.check_unknown({"kind", "dataflow", "rows", "cols", "datatypes", "accumulator_bits", "activation_bits",
                     "tile_m", "pipeline_depth"})
    kind = r.str_("kind", choices=COMPUTE_KINDS)
    if kind == "systolic":
        dataflow = r.str_("dataflow", choices=DATAFLOWS)
        for key in ("tile_m", "pipeline_depth"):
            if key in r.data:
                r.fail(key, "only for kind tensor_core")
    else:
        if "dataflow" in r.data:
            r.fail("dataflow", "only for kind systolic (a tensor core has no dataflow choice)")
        dataflow = ""
    rows, cols = r.int_("rows", max_value=1 << 62), r.int_("cols", max_value=1 << 62)
    if rows * cols > limit("pes"):
        raise over_limit("pes", rows * cols, f"design {short(r.design)}: {r.key('rows')} x {r.key('cols')}")
    dts = r.sub("datatypes")
    if not dts.data:
        r.fail("datatypes", "must list at least one datatype")
    datatypes: dict[str, float] = {}
    for name in dts.data:
        if name not in DATATYPE_BITS:
            dts.fail(str(name), f"unknown datatype (known: {', '.join(DATATYPE_BITS)})")
        datatypes[name] = dts.num(name)
    acc = r.int_("accumulator_bits", 32, max_value=256)
    act = r.get("activation_bits", None)
    if act is not None:
        act = r.int_("activation_bits")
        if act not in _BITS_PREFERENCE:
            r.fail("activation_bits", f"must be one of {sorted(_BITS_PREFERENCE)} or null, got {act}")
    tile_m = r.int_("tile_m", 16)
    depth = r.int_("pipeline_depth", None, min_value=0)
    if depth is None:  # absent: a systolic array has none; a tensor core's adder tree plus multiply and accumulate
        depth = math.ceil(math.log2(cols)) + 2 if kind == "tensor_core" else 0
    return Compute(kind, dataflow, rows, cols, datatypes, acc, act, tile_m, depth)


def _parse_sparsity(r: _Reader) -> Sparsity:
    r.check_unknown({"support", "patterns", "m", "n_values", "max_m", "metadata_bits_per_cycle", "index_format"})
    support = r.str_("support", choices=SPARSITY_SUPPORT)
    allowed = {"none": set(), "fixed": {"patterns"}, "flexible": {"m", "n_values"}, "layerwise": {"max_m"},
               "unstructured": {"index_format"}}[support]
    for key in ("patterns", "m", "n_values", "max_m", "metadata_bits_per_cycle", "index_format"):
        if key in r.data and key not in allowed and not (key == "metadata_bits_per_cycle" and support != "none"):
            r.fail(key, f"not used with support {support!r}")
    meta_bw = 0.0 if support == "none" else r.num("metadata_bits_per_cycle")
    if support == "fixed":
        pats = r.get("patterns")
        if not isinstance(pats, list) or not pats:
            r.fail("patterns", "must be a non-empty list like ['2:4']")
        if len(pats) > _MAX_PATTERNS:
            r.fail("patterns", f"at most {_MAX_PATTERNS} patterns, got {len(pats)}")
        parsed = []
        for i, p in enumerate(pats):
            q = parse_pattern(str(p) if isinstance(p, str) else p, field=f"design {short(r.design)}: {r.key('patterns')}[{i}]",
                              allow_unstructured=False)
            if not q.is_nm or q.n == q.m:
                r.fail(f"patterns[{i}]", f"must be a sparse N:M pattern with N < M, got {short(p)}")
            parsed.append(q)
        return Sparsity(support, tuple(parsed), metadata_bits_per_cycle=meta_bw)
    if support == "flexible":
        m = r.int_("m", min_value=2)
        ns = r.get("n_values")
        if not isinstance(ns, list) or not ns:
            r.fail("n_values", "must be a non-empty list of integers")
        for i, n in enumerate(ns):
            if not is_int(n) or not 1 <= n <= m:
                r.fail(f"n_values[{i}]", f"must be an integer from 1 to m={m}, got {short(n)}")
        return Sparsity(support, m=m, n_values=tuple(sorted(set(ns))), metadata_bits_per_cycle=meta_bw)
    if support == "layerwise":
        return Sparsity(support, max_m=r.int_("max_m", min_value=2), metadata_bits_per_cycle=meta_bw)
    if support == "unstructured":
        return Sparsity(support, metadata_bits_per_cycle=meta_bw,
                        index_format=r.str_("index_format", choices=INDEX_FORMATS))
    return Sparsity("none")


_STORAGE_KEYS = {
    "dram": {"name", "class", "type", "bandwidth_gb_s", "bandwidth_bytes_per_cycle", "latency_ns", "latency_cycles"},
    "sram": {"name", "class", "holds", "capacity_bytes", "word_bits", "banks", "read_ports", "write_ports",
             "double_buffered", "cell_type"},
    "regfile": {"name", "class", "holds", "capacity_bytes", "word_bits"},
}


def _parse_storage(r: _Reader, clock_hz: float) -> Storage:
    cls = r.str_("class", choices=STORAGE_CLASSES)
    r.check_unknown(_STORAGE_KEYS[cls])
    name = r.str_("name")
    if problem := name_problem(name):
        r.fail("name", problem)
    if cls == "dram":
        dtype = r.str_("type", choices=DRAM_TYPES)
        has_gbs, has_bpc = "bandwidth_gb_s" in r.data, "bandwidth_bytes_per_cycle" in r.data
        if has_gbs == has_bpc:
            r.fail("bandwidth_gb_s", "give exactly one of bandwidth_gb_s or bandwidth_bytes_per_cycle")
        bpc = r.num("bandwidth_gb_s") * 1e9 / clock_hz if has_gbs else r.num("bandwidth_bytes_per_cycle")
        if "latency_ns" in r.data and "latency_cycles" in r.data:
            r.fail("latency_ns", "give latency_ns or latency_cycles, not both")
        lat = (r.num("latency_ns", 0.0, positive=False) * 1e-9 * clock_hz if "latency_ns" in r.data
               else r.num("latency_cycles", 0.0, positive=False))
        return Storage(name, cls, holds=("weights", "inputs", "outputs", "metadata"), dram_type=dtype,
                       bandwidth_bytes_per_cycle=bpc, latency_cycles=lat)
    holds = r.get("holds")
    if not isinstance(holds, list) or not holds:
        r.fail("holds", f"must be a non-empty list of {', '.join(OPERANDS)}")
    for i, h in enumerate(holds):
        if h not in OPERANDS:
            r.fail(f"holds[{i}]", f"must be one of {', '.join(OPERANDS)}, got {short(h)}")
    cap = r.int_("capacity_bytes", max_value=limit("sram_bytes"))
    word = r.int_("word_bits", 64 if cls == "sram" else 8)
    if word % 8:
        r.fail("word_bits", f"must be a multiple of 8, got {word}")
    if cap * 8 < word:
        r.fail("capacity_bytes", f"must hold at least one {word}-bit word, got {cap}")
    if cls == "regfile":
        return Storage(name, cls, tuple(holds), cap, word)
    banks = r.int_("banks", 1)
    # CACTI is run with exclusive read and write ports and no read-write port: without a read port
    # it prices reads as a smaller array's (64 KiB, 64-bit words, 28 nm: 2.36 pJ a read against 11.6 with one port).
    rp, wp = (r.int_(key, 1, why_min=": an SRAM level is read by the level below it and written by the one above, "
                                      "and nmlab's SRAM (CACTI) has no read-write port to do either")
              for key in ("read_ports", "write_ports"))
    if banks & (banks - 1):
        r.fail("banks", f"must be a power of two (CACTI's bank model), got {banks}")
    if cap % banks:
        r.fail("banks", f"capacity_bytes {cap} is not divisible by {banks} banks")
    # CACTI 7 finds no array organisation for a smaller bank (probed over its nodes, cell types,
    # ports and bank counts; docs/hwmodel.md): refused here, not at the first simulate.
    need = max(CACTI_MIN_BANK_BYTES, CACTI_MIN_BANK_WORDS_OVER * word // 8 + 1)
    if cap // banks < need:
        r.fail("capacity_bytes", f"{cap} bytes in {banks} bank(s) of {word}-bit words is under the smallest bank "
                                 f"CACTI 7 models (at least {CACTI_MIN_BANK_BYTES} bytes and more than "
                                 f"{CACTI_MIN_BANK_WORDS_OVER} words: {need} bytes per bank here)")
    return Storage(name, cls, tuple(holds), cap, word, banks, rp, wp, r.bool_("double_buffered", True),
                   r.str_("cell_type", "itrs-hp", choices=SRAM_CELL_TYPES))


_ENERGY_KEYS = {"mac_pj", "register_pj_per_bit", "mux2_pj_per_bit", "dram_pj_per_bit", "sram"}


def _parse_energy(r: _Reader, compute: Compute, storage: tuple[Storage, ...]) -> EnergyOverrides:
    """The ``energy:`` section: finite, non-negative, at most _MAX_ENERGY; only the datatypes
    the array runs and the design's SRAM level names."""

    def given(rd: _Reader, key: str) -> Optional[float]:
        """The entry's figure; None where the key is absent (an explicit null is refused like any non-number)."""
        return rd.num(key, positive=False, max_value=_MAX_ENERGY) if key in rd.data else None

    r.check_unknown(_ENERGY_KEYS)
    mac: list[tuple[str, float]] = []
    if "mac_pj" in r.data:
        m = r.sub("mac_pj")
        for dt in m.data:
            if dt not in compute.datatypes:
                m.fail(str(dt), f"not a datatype of compute.datatypes (has {', '.join(compute.datatypes)})")
            mac.append((dt, given(m, dt)))
    scalars = {k: given(r, k) for k in ("register_pj_per_bit", "mux2_pj_per_bit", "dram_pj_per_bit")}
    srams: list[tuple[str, SramEnergyOverride]] = []
    if "sram" in r.data:
        levels = r.sub("sram")
        names = [s.name for s in storage if s.cls == "sram"]
        for name in levels.data:
            if name not in names:
                levels.fail(str(name), f"not an sram level of storage (has {', '.join(names)})")
            lv = levels.sub(name)
            lv.check_unknown(set(SRAM_ENERGY_KEYS))
            srams.append((name, SramEnergyOverride(*(given(lv, k) for k in SRAM_ENERGY_KEYS))))
    return EnergyOverrides(tuple(mac), sram=tuple(srams), **scalars)


def parse_design(data: Any, name: str = "<design>", source: Optional[str] = None) -> Design:
    """Validate a design mapping (as read from YAML) and build a :class:`Design`."""
    r = _Reader(name, "", data)
    given = data.get("name")
    if isinstance(given, str) and given and not name_problem(given):
        name = r.design = given
    r.check_unknown({"version", "name", "description", "technology_nm", "clock_mhz", "compute", "sparsity", "storage",
                     "energy"})
    version = check_version(r.get("version"), SUPPORTED_VERSIONS, f"design {short(name)}: version")
    if problem := name_problem(r.str_("name")):  # errors name the design by its file until its own name reads
        r.fail("name", problem)
    desc = r.str_("description", "")
    tech = r.num("technology_nm")
    if not 3 <= tech <= 180:
        r.fail("technology_nm", f"must be between 3 and 180, got {tech:g}")
    clock_hz = r.num("clock_mhz") * 1e6
    compute = _parse_compute(r.sub("compute"))
    sparsity = _parse_sparsity(r.sub("sparsity", {"support": "none"}))
    levels = r.get("storage")
    if not isinstance(levels, list) or not levels:
        r.fail("storage", "must be a non-empty list of levels, outermost (DRAM) first")
    storage = tuple(_parse_storage(_Reader(name, f"storage[{i}]", lv), clock_hz) for i, lv in enumerate(levels))
    names = [s.name for s in storage]
    for i, s in enumerate(storage):
        if names.index(s.name) != i:
            r.fail(f"storage[{i}].name", f"duplicate level name {short(s.name)}")
    drams = [i for i, s in enumerate(storage) if s.cls == "dram"]
    if len(drams) != 1 or drams[0] != 0:
        r.fail("storage", "needs exactly one level of class dram, listed first")
    for operand in ("weights", "inputs", "outputs"):
        if not any(s.cls == "sram" and operand in s.holds for s in storage):
            r.fail("storage", f"no sram level holds {operand}")
    energy = _parse_energy(r.sub("energy"), compute, storage) if "energy" in r.data else None
    return Design(name, version, tech, clock_hz, compute, sparsity, storage, desc, source, energy)


def bundled_designs() -> dict[str, Path]:
    """Name -> path of the designs shipped in hwmodel/data/designs."""
    return {p.stem: p for p in sorted(data_path("designs").glob("*.yaml"))}


_GPU_SPEC = ("a GPU spec, not an accelerator design: simulate, sweep and check take it as a design point "
             "(hwmodel/gpu/design_point.py); this command needs an accelerator design")
#: Said of a GPU parameter file (``nmlab gpu fit --out``) given as a design point: its keys are
#: not a design's, and "format: unknown key" did not say which file was wanted.
_GPU_PARAMS = ("a GPU parameter file (what nmlab gpu fit --out writes), not a design: a GPU spec names it "
                   "(params: FILE) and is the design point (docs/gpu.md)")


def load_design(path: str | os.PathLike | Design) -> Design:
    """Load and validate a design YAML file, or a bundled design by name (e.g. "edge_ws")."""
    if isinstance(path, Design):
        return path
    p = Path(path)
    if not is_file(p):
        bundled = bundled_designs()
        if str(path) in bundled:
            p = bundled[str(path)]
        elif is_file(data_path("gpus", f"{path}.yaml")):
            raise NmlabError(f"design: {path} is {_GPU_SPEC}")
        elif exists(p):
            raise not_a_file("design", path)  # a folder or a device: says which
        else:
            raise NmlabError(f"design: no such file or bundled design: {str(path)[:300]} (bundled: {', '.join(bundled)})")
    data = load_yaml(p, "design")
    if not isinstance(data, dict):
        raise NmlabError(f"design: {p}: must be a YAML mapping")
    if data.get("format") == "nmlab-gpu":
        raise NmlabError(f"design: {p} is {_GPU_SPEC}")
    if data.get("format") == "nmlab-gpu-params":
        raise NmlabError(f"design: {p} is {_GPU_PARAMS}")
    return parse_design(data, name=p.stem, source=str(p))
