"""Typed results of :func:`hwmodel.simulate`: one :class:`Figures` per layer, network and total.

The same field names flow into sweep tables, reports and JSON output, so they are the
project's vocabulary: units in the names, sums add up from layers to networks to the total.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any, Iterable, Optional

# Fields that add up over layers (everything in Figures except the derived ratios).
ENERGY_COMPONENTS = ("mac", "sram", "reg", "metadata", "mux", "dram", "leakage")


@dataclass
class Figures:
    """What the model says about one layer, one network or a whole workload."""

    cycles: float = 0.0
    latency_s: float = 0.0
    macs_dense: float = 0.0          # M*K*N of the layer as if dense
    macs_effectual: float = 0.0      # MACs on kept weights
    macs_issued: float = 0.0         # MAC slots the hardware spends (>= effectual: padding, unsupported patterns)
    bits_sram_read: float = 0.0
    bits_sram_write: float = 0.0
    bits_dram_read: float = 0.0
    bits_dram_write: float = 0.0
    bits_metadata: float = 0.0       # metadata moved (reads of index bits)
    bytes_weights: float = 0.0       # stored size of the weights at the given bitwidth, metadata included
    energy_mac_pj: float = 0.0
    energy_sram_pj: float = 0.0
    energy_reg_pj: float = 0.0
    energy_metadata_pj: float = 0.0
    energy_mux_pj: float = 0.0
    energy_dram_pj: float = 0.0
    energy_leakage_pj: float = 0.0
    stall_cycles_dram: float = 0.0
    stall_cycles_metadata: float = 0.0

    @property
    def energy_pj(self) -> float:
        return sum(getattr(self, f"energy_{c}_pj") for c in ENERGY_COMPONENTS)

    def utilization(self, peak_macs_per_cycle: float) -> float:
        """Effectual MACs over what the array could do in these cycles."""
        return self.macs_effectual / (self.cycles * peak_macs_per_cycle) if self.cycles else 0.0

    def __add__(self, other: "Figures") -> "Figures":
        return Figures(**{f.name: getattr(self, f.name) + getattr(other, f.name) for f in fields(Figures)})

    @staticmethod
    def sum(items: Iterable["Figures"]) -> "Figures":
        total = Figures()
        for item in items:
            total = total + item
        return total

    def to_dict(self) -> dict[str, float]:
        d = asdict(self)
        d["energy_pj"] = self.energy_pj
        return d


@dataclass
class LayerResult:
    """One layer's GEMM (M = batch, K = in_features, N = out_features) in one pass.

    ``phase`` is "forward", "backward_data" or "backward_weight" (training step only).
    ``pattern`` is the workload's pattern; ``hw_pattern`` what the hardware ran ("dense"
    when it could not exploit the mask) and ``mapping_note`` why.
    """

    name: str
    network: str
    phase: str
    m: int
    k: int
    n: int
    pattern: str
    hw_pattern: str
    mapping_note: str
    figures: Figures
    dense: Optional[Figures] = None   # the same GEMM run dense on the same design
    update: str = ""                  # train_step: "critic_update", "actor_update" or "" (inference)
    times_per_step: float = 1.0       # figures are already multiplied by this (actor update: 1/policy_delay)

    @property
    def speedup_vs_dense(self) -> float:
        return self.dense.cycles / self.figures.cycles if self.dense and self.figures.cycles else 1.0

    @property
    def energy_ratio_vs_dense(self) -> float:
        """Energy of this run over the dense run (< 1 means sparsity saves energy)."""
        return self.figures.energy_pj / self.dense.energy_pj if self.dense and self.dense.energy_pj else 1.0


@dataclass
class SimResult:
    """Per-layer, per-network and total figures of a workload on a design."""

    design: str
    scenario: str            # "inference" or "train_step"
    batch: int
    bits: int
    clock_hz: float
    peak_macs_per_cycle: float
    layers: list[LayerResult]
    sram_bytes: float = 0.0  # on-chip capacity available for weights
    area_mm2: Optional[float] = None
    fits_in_sram: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    def network_names(self) -> list[str]:
        return list(dict.fromkeys(layer.network for layer in self.layers))

    def network(self, name: str) -> Figures:
        return Figures.sum(layer.figures for layer in self.layers if layer.network == name)

    def network_dense(self, name: str) -> Figures:
        return Figures.sum(layer.dense or layer.figures for layer in self.layers if layer.network == name)

    @property
    def total(self) -> Figures:
        return Figures.sum(layer.figures for layer in self.layers)

    @property
    def total_dense(self) -> Figures:
        return Figures.sum(layer.dense or layer.figures for layer in self.layers)

    @property
    def speedup_vs_dense(self) -> float:
        t = self.total.cycles
        return self.total_dense.cycles / t if t else 1.0

    @property
    def energy_ratio_vs_dense(self) -> float:
        d = self.total_dense.energy_pj
        return self.total.energy_pj / d if d else 1.0

    def summary(self) -> dict[str, Any]:
        """Flat dict of the totals: what a sweep stores as one row."""
        t = self.total
        row: dict[str, Any] = {
            "design": self.design,
            "scenario": self.scenario,
            "batch": self.batch,
            "bits": self.bits,
            **t.to_dict(),
            "utilization": t.utilization(self.peak_macs_per_cycle),
            "speedup_vs_dense": self.speedup_vs_dense,
            "energy_ratio_vs_dense": self.energy_ratio_vs_dense,
            "fits_in_sram": self.fits_in_sram,
            "sram_bytes": self.sram_bytes,
            "area_mm2": self.area_mm2,
        }
        return row

    def _network_row(self, name: str) -> dict[str, Any]:
        f, d = self.network(name), self.network_dense(name)
        return {**f.to_dict(), "dense_cycles": d.cycles, "dense_energy_pj": d.energy_pj,
                "utilization": f.utilization(self.peak_macs_per_cycle),
                "speedup_vs_dense": d.cycles / f.cycles if f.cycles else 1.0,
                "energy_ratio_vs_dense": f.energy_pj / d.energy_pj if d.energy_pj else 1.0}

    def to_dict(self) -> dict[str, Any]:
        """Everything, for ``--json``: totals, per network, per layer."""
        return {
            "summary": self.summary(),
            "networks": {name: self._network_row(name) for name in self.network_names()},
            "layers": [
                {
                    "name": r.name, "network": r.network, "phase": r.phase, "m": r.m, "k": r.k, "n": r.n,
                    "pattern": r.pattern, "hw_pattern": r.hw_pattern, "mapping_note": r.mapping_note,
                    "update": r.update, "times_per_step": r.times_per_step,
                    **r.figures.to_dict(),
                    "utilization": r.figures.utilization(self.peak_macs_per_cycle),
                    "speedup_vs_dense": r.speedup_vs_dense,
                    "energy_ratio_vs_dense": r.energy_ratio_vs_dense,
                }
                for r in self.layers
            ],
        }
