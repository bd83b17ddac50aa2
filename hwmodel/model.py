"""One GEMM on one design: cycles with stalls, traffic in bits, and energy by component.

Operands, whatever the phase: ``A`` [M x K] streams through the array, ``B`` [K x N] is the
stationary (weight-like) operand the sparsity applies to, ``O`` [M x N] is produced. In the
forward pass B is W^T (N:M along K), in backward-data B is W (N:M along N of the forward
layer, i.e. the transposed mask), in the weight-gradient GEMM B is the activations (dense).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import numpy as np

from hwmodel.cycles import schedule
from hwmodel.design import Design
from hwmodel.energy import energy_table
from hwmodel.mapping import unstructured_metadata_bits
from hwmodel.result import Figures
from hwmodel.sparsity import Pattern


@dataclass(frozen=True)
class Operands:
    """Where each operand lives and how wide it is.

    a_level, b_level, o_level: SRAM level names holding A, B and O.
    bits_a, bits_b, bits_o: element widths.
    b_from_dram: B is streamed from DRAM in this run (not resident in SRAM).
    a_from_dram: A arrives from DRAM (network input, or spilled activations).
    o_to_dram: O leaves to DRAM (network output, spilled activations, gradients).
    """

    a_level: str
    b_level: str
    o_level: str
    bits_a: int
    bits_b: int
    bits_o: int
    b_from_dram: bool = False
    a_from_dram: bool = False
    o_to_dram: bool = False


def evaluate_gemm(design: Design, m: int, k: int, n: int, hw: Pattern, ops: Operands, nnz: int,
                  row_n: Optional[np.ndarray] = None, bits: Optional[int] = None,
                  meta_level: Optional[str] = None, row_k: Optional[np.ndarray] = None) -> Figures:
    """Figures of GEMM (m, k, n) run at ``hw`` (per-row ``row_n`` on flexible designs).

    Args:
        nnz: nonzeros of B the real mask keeps (k * n when dense): effectual MACs = m * nnz.
        row_n: flexible designs: the N each output row runs at.
        bits: the run's bitwidth, picking the MAC datatype and its rate.
        meta_level: SRAM level holding metadata (default: B's level).
        row_k: unstructured designs (``hw`` "unstructured"): kept weights per output row.
    """
    sched = schedule(design, m, k, n, hw, bits, row_n, row_k)
    et = energy_table(design)
    dt = design.datatype_for(bits if bits is not None else ops.bits_b)
    unstructured = hw.kind == "unstructured"
    sparse = hw.is_nm or unstructured
    meta_per_slot = math.ceil(math.log2(hw.m)) if hw.is_nm else 0
    slots = sched.weight_slots
    acc = design.compute.accumulator_bits
    dram = design.dram
    bw_bits = dram.bandwidth_bytes_per_cycle * 8.0
    if unstructured:
        # Only kept values are stored and read; the array pads short rows of a fold itself.
        stored_values = float(nnz)
        meta_stored = float(unstructured_metadata_bits(design.sparsity.index_format, k, n, nnz))
    else:
        stored_values = float(slots)
        meta_stored = float(slots * meta_per_slot)

    # --- metadata: indices travel with every weight tile into the array
    bits_meta = meta_stored * sched.weight_reloads
    stall_meta = 0.0
    if bits_meta:
        need = bits_meta / design.sparsity.metadata_bits_per_cycle
        window = sched.weight_folds * sched.fill_window_cycles if sched.fill_window_cycles else sched.compute_cycles
        stall_meta = max(0.0, need - window)

    # --- DRAM transfers with double buffering
    b_store = stored_values * ops.bits_b + meta_stored if sparse else float(k * n * ops.bits_b)
    b_dram = b_store if ops.b_from_dram else 0.0
    a_dram = float(m * k * ops.bits_a) if ops.a_from_dram else 0.0
    o_dram = float(m * n * ops.bits_o) if ops.o_to_dram else 0.0
    busy = sched.compute_cycles + stall_meta
    t_b = b_dram / bw_bits
    if t_b:
        b_level = next(s for s in design.srams if s.name == ops.b_level)
        core = max(busy, t_b) + t_b / sched.weight_folds if b_level.double_buffered else busy + t_b
    else:
        core = busy
    exposed = (a_dram + o_dram) / bw_bits
    latency = dram.latency_cycles if (b_dram or a_dram or o_dram) else 0.0
    cycles = core + exposed + latency
    stall_dram = cycles - busy

    # --- SRAM traffic (bits); metadata counted apart in bits_metadata
    mn = float(m * n)
    b_read = stored_values * ops.bits_b * sched.weight_reloads
    a_read = float(m * k * ops.bits_a * sched.input_reloads)
    psum = max(sched.k_passes - 1.0, 0.0) * mn * acc
    reads: dict[str, float] = {}
    writes: dict[str, float] = {}
    for level, rd, wr in ((ops.b_level, b_read, b_dram), (ops.a_level, a_read, a_dram),
                          (ops.o_level, psum + o_dram, psum + mn * ops.bits_o)):
        reads[level] = reads.get(level, 0.0) + rd
        writes[level] = writes.get(level, 0.0) + wr

    macs_issued = float(m * slots)
    latency_s = cycles / design.clock_hz
    mlevel = meta_level or ops.b_level
    fig = Figures(
        cycles=cycles,
        latency_s=latency_s,
        macs_dense=float(m * k * n),
        macs_effectual=float(m * nnz),
        macs_issued=macs_issued,
        bits_sram_read=sum(reads.values()),
        bits_sram_write=sum(writes.values()),
        bits_dram_read=b_dram + a_dram,
        bits_dram_write=o_dram,
        bits_metadata=bits_meta,
        bytes_weights=b_store / 8.0,
        energy_mac_pj=macs_issued * et.mac_pj[dt],
        energy_sram_pj=sum(v * et.sram[lv].read_pj_per_bit for lv, v in reads.items())
        + sum(v * et.sram[lv].write_pj_per_bit for lv, v in writes.items()),
        energy_reg_pj=macs_issued * (ops.bits_a + ops.bits_b + 2 * acc) * et.reg_pj_per_bit,
        energy_metadata_pj=bits_meta * et.sram[mlevel].read_pj_per_bit,
        energy_mux_pj=(macs_issued * et.mux_pj(hw.m, ops.bits_a) if hw.is_nm
                       else macs_issued * et.distribution_pj(k, ops.bits_a) if unstructured else 0.0),
        energy_dram_pj=(b_dram + a_dram + o_dram) * et.dram_pj_per_bit,
        energy_leakage_pj=et.leakage_mw * latency_s * 1e9,
        stall_cycles_dram=stall_dram,
        stall_cycles_metadata=stall_meta,
    )
    return fig


def elementwise(design: Design, elements: int, bits_per_element_read: int, bits_per_element_write: int,
                level: str, from_dram: bool) -> Figures:
    """Element-wise update traffic (Polyak averaging, optimizer step): bandwidth-bound, no MAC array.

    Each element reads ``bits_per_element_read`` and writes ``bits_per_element_write`` bits, at
    SRAM ``level`` (bandwidth banks x word_bits per cycle) or DRAM when ``from_dram``.
    The arithmetic (a few adds/multiplies per element) is charged as one MAC of the level's
    first datatype per element.
    """
    et = energy_table(design)
    s = next(x for x in design.srams if x.name == level)
    rd, wr = float(elements * bits_per_element_read), float(elements * bits_per_element_write)
    sram_bw = s.word_bits * s.banks * max(s.read_ports, 1)
    cycles = (rd + wr) / sram_bw
    stall = 0.0
    dram_r = dram_w = 0.0
    if from_dram:
        dram_r, dram_w = rd, wr
        t = (rd + wr) / (design.dram.bandwidth_bytes_per_cycle * 8.0) + design.dram.latency_cycles
        stall = max(0.0, t - cycles)
        cycles = max(cycles, t)
    latency_s = cycles / design.clock_hz
    dt = next(iter(design.compute.datatypes))
    return Figures(
        cycles=cycles, latency_s=latency_s,
        bits_sram_read=rd, bits_sram_write=wr, bits_dram_read=dram_r, bits_dram_write=dram_w,
        energy_mac_pj=elements * et.mac_pj[dt],
        energy_sram_pj=rd * et.sram[level].read_pj_per_bit + wr * et.sram[level].write_pj_per_bit,
        energy_dram_pj=(dram_r + dram_w) * et.dram_pj_per_bit,
        energy_leakage_pj=et.leakage_mw * latency_s * 1e9,
        stall_cycles_dram=stall,
    )
