"""Per-action energies of a design (Accelergy style), scaled to its technology node.

Constants come from ``hwmodel/data/energy.yaml`` (sources cited there); SRAM read/write
energy, leakage and area from CACTI 7 (:mod:`hwmodel.cacti`). Logic energies are given at
45 nm and scaled with Stillmaker & Baas factors; CACTI figures are scaled from the CACTI node
to the design's node with the same factors when CACTI does not cover the node (e.g. 7 nm).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from functools import cached_property, lru_cache
from typing import Optional

import numpy as np

from hwmodel.cacti import CACTI_MAX_BYTES, sram_cost
from hwmodel.design import SRAM_ENERGY_KEYS, Design, EnergyOverrides
from hwmodel.errors import NmlabError
from hwmodel.io import data_path
from hwmodel.limits import load_yaml
from hwmodel.memo import BoundedMemo


#: The model's energy constants (pJ per operation and per bit, by technology node).
ENERGY_CONSTANTS_PATH = data_path("energy.yaml")


@lru_cache(maxsize=1)
def constants() -> dict:
    """The parsed energy.yaml (through the bounded loader: a key given twice is refused, not
    silently replaced by the last)."""
    data = load_yaml(ENERGY_CONSTANTS_PATH, "energy constants")
    if not isinstance(data, dict) or data.get("version") != 1:
        raise NmlabError("energy.yaml: version: expected 1")
    return data


def energy_factor(tech_nm: float) -> float:
    """Energy at ``tech_nm`` relative to 45 nm: log-log interpolation of energy.yaml's points."""
    pts = sorted((float(k), float(v)) for k, v in constants()["energy_factor_from_45nm"].items())
    xs = [math.log(p[0]) for p in pts]
    ys = [math.log(p[1]) for p in pts]
    x = math.log(tech_nm)
    if x <= xs[0]:
        i = 0
    elif x >= xs[-1]:
        i = len(xs) - 2
    else:
        i = max(j for j in range(len(xs) - 1) if xs[j] <= x)
    t = (x - xs[i]) / (xs[i + 1] - xs[i])
    return math.exp(ys[i] + t * (ys[i + 1] - ys[i]))


def mux2_pj_per_bit(tech_nm: float) -> float:
    """nmlab's own energy of one 2:1 selection stage per bit at ``tech_nm`` (energy.yaml, node-scaled)."""
    return float(constants()["mux2_pj_per_bit_45nm"]) * energy_factor(tech_nm)


@dataclass(frozen=True)
class SramEnergy:
    """Per-bit costs of one SRAM level at the design's node; area only where CACTI ran at that node."""

    name: str
    read_pj_per_bit: float
    write_pj_per_bit: float
    leakage_mw: float
    area_mm2: Optional[float]


@dataclass(frozen=True)
class EnergyTable:
    """Everything the model multiplies action counts with, for one design."""

    mac_pj: dict[str, float]          # per MAC by datatype
    reg_pj_per_bit: float
    mux2_pj_per_bit: float            # one 2:1 selection stage per bit
    dram_pj_per_bit: float
    sram: dict[str, SramEnergy]       # by storage level name
    logic_factor: float               # energy factor of the node vs 45 nm

    @cached_property
    def leakage_mw(self) -> float:
        return sum(s.leakage_mw for s in self.sram.values())

    @property
    def area_mm2(self) -> Optional[float]:
        """SRAM area (mm^2) when known for every level, else None (compute area is not modelled)."""
        areas = [s.area_mm2 for s in self.sram.values()]
        return None if any(a is None for a in areas) else sum(areas)

    def mux_pj(self, m: int, bits: int) -> float:
        """One M:1 activation selection of ``bits`` bits: M-1 two-input stages per bit."""
        return (m - 1) * bits * self.mux2_pj_per_bit

    def distribution_pj(self, reach: int, bits: int) -> float:
        """One activation of ``bits`` bits delivered to a PE from any of ``reach`` inputs (unstructured).

        A Benes network of ``reach`` ports (SIGMA's distribution network) has
        2 * ceil(log2 reach) - 1 switch stages; each costs one 2:1 stage per bit (assumption).
        """
        stages = max(1, 2 * max(1, (reach - 1).bit_length()) - 1)
        return stages * bits * self.mux2_pj_per_bit


_tables: BoundedMemo = BoundedMemo(256)  # id(design) -> (design, EnergyTable)


def energy_table(design: Design) -> EnergyTable:
    """The design's per-action energies (cached per design object)."""
    hit = _tables.get(id(design))
    if hit is not None and hit[0] is design:
        return hit[1]
    c = constants()
    f = energy_factor(design.technology_nm)
    mac = {dt: float(c["mac_pj_45nm"][dt]) * f for dt in design.compute.datatypes}
    dram_type = design.dram.dram_type
    if dram_type not in c["dram_pj_per_bit"]:
        raise NmlabError(f"design {design.name!r}: storage[0].type: no pJ/bit for {dram_type} in energy.yaml")
    srams = {}
    for s in design.srams:
        where = f"design {design.name!r}: storage[{design.storage.index(s)}]"
        if s.capacity_bytes > CACTI_MAX_BYTES:
            raise NmlabError(f"{where}.capacity_bytes: "
                             f"{s.capacity_bytes:,} is more than CACTI 7 models ({CACTI_MAX_BYTES:,} bytes: it "
                             "reads the size as a 32-bit integer), so the level's energy is unknown")
        try:
            cost = sram_cost(s.capacity_bytes, s.word_bits, s.banks, s.read_ports, s.write_ports,
                             design.technology_nm, s.cell_type)
        except NmlabError as exc:  # CACTI refused the geometry: say which level of the file it is
            raise NmlabError(f"{where} ({s.name}): {exc}") from None
        same_node = abs(cost.cacti_nm - design.technology_nm) < 1e-9
        k = 1.0 if same_node else f / energy_factor(cost.cacti_nm)
        srams[s.name] = SramEnergy(s.name, cost.read_pj * k / s.word_bits, cost.write_pj * k / s.word_bits,
                                   cost.leakage_mw * k, cost.area_mm2 if same_node else None)
    table = EnergyTable(mac, float(c["register_pj_per_bit_45nm"]) * f, mux2_pj_per_bit(design.technology_nm),
                        float(c["dram_pj_per_bit"][dram_type]), srams, f)
    if design.energy is not None:
        table = _overridden(table, design.energy)
    _tables.put(id(design), (design, table))
    return table


def _overridden(table: EnergyTable, o: EnergyOverrides) -> EnergyTable:
    """``table`` with the entries the design file's ``energy:`` section gives (pJ at the design's
    node, used as given); the rest keep nmlab's figures. SRAM area stays CACTI's (geometry)."""
    srams = dict(table.sram)
    for name, so in o.sram:
        se = srams[name]
        srams[name] = replace(se, **{k: v for k in SRAM_ENERGY_KEYS if (v := getattr(so, k)) is not None})
    pick = lambda given, own: own if given is None else given  # noqa: E731
    return EnergyTable({**table.mac_pj, **dict(o.mac_pj)}, pick(o.register_pj_per_bit, table.reg_pj_per_bit),
                       pick(o.mux2_pj_per_bit, table.mux2_pj_per_bit), pick(o.dram_pj_per_bit, table.dram_pj_per_bit),
                       srams, table.logic_factor)


def bit_length(x) -> np.ndarray:
    """``int.bit_length`` of non-negative integer arrays (exact: frexp's exponent)."""
    x = np.asarray(x)
    return np.where(x > 0, np.frexp(np.maximum(x, 1).astype(np.float64))[1], 0).astype(np.int64)


def distribution_stages(reach) -> np.ndarray:
    """Switch stages of a Benes network of ``reach`` ports: 2 * ceil(log2 reach) - 1, at least 1 (arrays)."""
    return np.maximum(1, 2 * np.maximum(1, bit_length(np.asarray(reach) - 1)) - 1)


@dataclass(frozen=True)
class GemmEnergy:
    """Energy by component of GEMMs (pJ arrays), as :class:`hwmodel.result.Figures` names them."""

    mac: np.ndarray
    sram: np.ndarray
    reg: np.ndarray
    metadata: np.ndarray
    mux: np.ndarray
    dram: np.ndarray
    leakage: np.ndarray


def gemm_energy(et: EnergyTable, mac_pj, macs_issued, sram_read_bits_pj, sram_write_bits_pj, bits_a, bits_b,
                accumulator_bits: int, bits_metadata, metadata_read_pj_per_bit: float, kind, group_m, reach,
                bits_dram, latency_s) -> GemmEnergy:
    """Energy of GEMMs from their action counts (arrays broadcasting together).

    Args:
        mac_pj: energy of one MAC of the run's datatype.
        sram_read_bits_pj, sram_write_bits_pj: SRAM energy already weighted by each level's pJ/bit
            (sum over levels of bits read x read pJ/bit, same for writes).
        kind: 0 dense, 1 N:M (an (M-1)-stage selection mux per issued MAC and activation bit,
            M = ``group_m``), 2 unstructured (a distribution network reaching ``reach`` inputs).
        bits_dram: bits moved to and from DRAM. latency_s: the GEMMs' run time (leakage).
    """
    macs = np.asarray(macs_issued, dtype=np.float64)
    mux_nm = macs * ((np.asarray(group_m) - 1) * bits_a * et.mux2_pj_per_bit)
    mux_un = macs * (distribution_stages(reach) * bits_a * et.mux2_pj_per_bit)
    return GemmEnergy(
        mac=macs * mac_pj,
        sram=sram_read_bits_pj + sram_write_bits_pj,
        reg=macs * (bits_a + bits_b + 2 * accumulator_bits) * et.reg_pj_per_bit,
        metadata=bits_metadata * metadata_read_pj_per_bit,
        mux=np.where(kind == 1, mux_nm, np.where(kind == 2, mux_un, 0.0)),
        dram=bits_dram * et.dram_pj_per_bit,
        leakage=et.leakage_mw * latency_s * 1e9,
    )
