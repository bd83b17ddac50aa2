"""Our model and SCALE-Sim v3 side by side on the same GEMM shapes and weight-stationary array.

The equivalent design is a bundled systolic WS design (default: ``scalesim_default_ws``, SCALE-Sim
v3's own default configuration) resized to the requested R x C array. Each shape becomes a
one-layer workload whose mask keeps the first n of every m weights along K, the fixed
synthetic mask SCALE-Sim's layer-wise sparsity uses, so both tools see the same nonzeros.

What must agree: stall-free compute cycles. SCALE-Sim's WS schedule takes
``ceil(K'/R) * ceil(N/C) * (2R + C + M - 2)`` cycles and its COMPUTE_REPORT prints one less
(its cycle counter starts at 0), so ``equal`` means ours == SCALE-Sim's report + 1. Total
cycles differ on purpose (docs/crosscheck.md): SCALE-Sim's CALC bandwidth mode never stalls,
ours adds DRAM and metadata stalls.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Iterable, Optional, Sequence

import numpy as np

from hwmodel.errors import NmlabError
from hwmodel.peers.scalesim import Gemm, ScaleSimLayer, parse_gemm, run_scalesim

DEFAULT_DESIGN = "scalesim_default_ws"
BITS = 8   # SCALE-Sim counts 1-byte words


@dataclass(frozen=True)
class OurLayer:
    """Our model's figures for one crosscheck shape."""

    compute_cycles: float   # cycles without DRAM and metadata stalls
    total_cycles: float     # with stalls
    stall_cycles_dram: float
    stall_cycles_metadata: float
    hw_pattern: str
    figures: dict = dataclasses.field(default_factory=dict)   # all of Figures: traffic in bits, energy


@dataclass(frozen=True)
class CrosscheckRow:
    """One shape: SCALE-Sim's and our cycle counts."""

    gemm: Gemm
    scalesim: ScaleSimLayer
    ours: OurLayer

    @property
    def scalesim_schedule_cycles(self) -> int:
        """SCALE-Sim's stall-free cycles as its schedule implies them (its report + 1)."""
        return self.scalesim.compute_cycles + 1

    @property
    def equal(self) -> bool:
        return self.ours.compute_cycles == self.scalesim_schedule_cycles

    @property
    def same_hardware(self) -> bool:
        """Whether our design ran the shape's own pattern, as SCALE-Sim does (layer-wise n:m, or
        dense); a design without that pattern runs another (fixed 2:4 for a 2:8 mask, dense), and
        its compute cycles then differ from SCALE-Sim's by design."""
        return self.ours.hw_pattern == str(self.gemm.pattern)

    def to_dict(self) -> dict[str, Any]:
        return {
            "gemm": {"m": self.gemm.m, "k": self.gemm.k, "n": self.gemm.n, "pattern": str(self.gemm.pattern)},
            "scalesim_compute_cycles_reported": self.scalesim.compute_cycles,
            "scalesim_compute_cycles": self.scalesim_schedule_cycles,
            "scalesim_total_cycles": self.scalesim.total_cycles,
            "scalesim_stall_cycles": self.scalesim.stall_cycles,
            "ours_compute_cycles": self.ours.compute_cycles,
            "ours_total_cycles": self.ours.total_cycles,
            "ours_stall_cycles_dram": self.ours.stall_cycles_dram,
            "ours_stall_cycles_metadata": self.ours.stall_cycles_metadata,
            "ours_hw_pattern": self.ours.hw_pattern,
            "equal": self.equal,
            "same_hardware": self.same_hardware,
            "scalesim_report": {k: v for k, v in self.scalesim.to_dict().items() if k != "gemm"},
            "ours_figures": self.ours.figures,
        }


def ws_design(design: Any = DEFAULT_DESIGN):
    """The WS systolic ``design`` (a path, bundled name or Design), as it is; NmlabError otherwise."""
    from hwmodel.design import load_design

    d = load_design(design)
    if d.compute.kind != "systolic" or d.compute.dataflow != "ws":
        raise NmlabError(f"--design {d.name!r}: the crosscheck needs a systolic ws design, "
                         f"got {d.compute.kind} {d.compute.dataflow or ''}".strip())
    return d


def equivalent_design(rows: int, cols: int, design: Any = DEFAULT_DESIGN):
    """The WS systolic ``design`` (a path, bundled name or Design) resized to ``rows`` x ``cols``."""
    d = ws_design(design)
    return dataclasses.replace(d, compute=dataclasses.replace(d.compute, rows=rows, cols=cols))


def scalesim_mask(gemm: Gemm) -> Optional[np.ndarray]:
    """SCALE-Sim's layer-wise mask as ours ([N, K]): the first n of every m along K; None if dense."""
    if not gemm.pattern.is_nm:
        return None
    keep = (np.arange(gemm.k) % gemm.pattern.m) < gemm.pattern.n
    return np.broadcast_to(keep, (gemm.n, gemm.k)).copy()


def run_ours(gemm: Gemm, design) -> OurLayer:
    """Simulate one GEMM as a one-layer workload at batch M on ``design`` with our model."""
    import hwmodel
    from hwmodel.workload import Layer, Workload

    layer = Layer(name="gemm", network="crosscheck", in_features=gemm.k, out_features=gemm.n,
                  pattern=str(gemm.pattern), mask=scalesim_mask(gemm), weight_bits=BITS)
    result = hwmodel.simulate(Workload([layer]), design, batch=gemm.m, bits=BITS)
    forward = [r for r in result.layers if r.phase == "forward"]
    if len(forward) != 1:
        raise NmlabError(f"crosscheck: expected one forward layer from simulate, got {len(forward)}")
    f = forward[0].figures
    stalls = f.stall_cycles_dram + f.stall_cycles_metadata
    return OurLayer(compute_cycles=f.cycles - stalls, total_cycles=f.cycles, stall_cycles_dram=f.stall_cycles_dram,
                    stall_cycles_metadata=f.stall_cycles_metadata, hw_pattern=forward[0].hw_pattern,
                    figures=f.to_dict())


def crosscheck(gemms: Iterable[Gemm | str], rows: int, cols: int, design: Any = DEFAULT_DESIGN) -> list[CrosscheckRow]:
    """Run SCALE-Sim (one run for all dense shapes, one for all N:M shapes) and our model.

    Parameters:
        gemms: shapes as :class:`Gemm` or "M,K,N[,n:m]" strings.
        rows, cols: the systolic array (R along K, C along N).
        design: WS systolic design whose SRAM sizes SCALE-Sim also gets (ifmap, filter, ofmap).
    """
    from hwmodel.energy import energy_table

    items = [parse_gemm(g) if isinstance(g, str) else g for g in gemms]
    d = equivalent_design(rows, cols, design)
    # What our side needs of the design (its 8-bit datatype, SRAM energies), checked before
    # SCALE-Sim's run, which may take minutes.
    d.datatype_for(BITS)
    energy_table(d)
    sram_kb = tuple(max(1, d.sram_for(op).capacity_bytes // 1024) for op in ("inputs", "weights", "outputs"))
    peer = run_scalesim(items, rows, cols, dataflow="ws", sram_kb=sram_kb)
    return [CrosscheckRow(g, p, run_ours(g, d)) for g, p in zip(items, peer)]


def format_table(rows: Sequence[CrosscheckRow], design_name: str = "our design") -> str:
    """Human-readable table: one line per shape, then what was equal and which shapes ran other
    hardware on our side (``design_name`` names it)."""
    head = (f"{'gemm M,K,N[,n:m]':<22}{'scalesim':>11}{'+1':>11}{'ours':>11}{'ours total':>12}"
            f"{'ours stalls':>12}  {'hw':<6}{'compute cycles'}")
    lines = [head]
    for r in rows:
        stalls = r.ours.stall_cycles_dram + r.ours.stall_cycles_metadata
        lines.append(f"{r.gemm.label():<22}{r.scalesim.compute_cycles:>11}{r.scalesim_schedule_cycles:>11}"
                     f"{r.ours.compute_cycles:>11.0f}{r.ours.total_cycles:>12.0f}{stalls:>12.0f}  "
                     f"{r.ours.hw_pattern:<6}{'equal' if r.equal else 'DIFFERENT'}"
                     f"{'' if r.same_hardware else ', other hardware'}")
    n_equal = sum(r.equal for r in rows)
    lines.append(f"{n_equal}/{len(rows)} shapes equal (SCALE-Sim reports its schedule minus 1; column +1)")
    for r in rows:
        if not r.same_hardware:
            peer = f"{r.gemm.pattern} layer-wise" if r.gemm.pattern.is_nm else "dense"
            lines.append(f"{r.gemm.label()}: other hardware: SCALE-Sim ran {peer}, {design_name} ran {r.ours.hw_pattern} "
                         f"(its sparsity support), so the compute cycles differ by design")
    return "\n".join(lines)
