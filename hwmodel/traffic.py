"""Data movement of GEMMs, as numpy columns: stored weights, metadata, DRAM transfers and stalls, SRAM traffic.

Operands, whatever the phase: ``A`` [M x K] streams through the array, ``B`` [K x N] is the
stationary (weight-like) operand the sparsity applies to, ``O`` [M x N] is produced. All sizes
are in bits; every argument is an array (or scalar) broadcasting against the others.

* Stored B: the slots the array walks (dense and N:M: padding included) times the weight
  bits plus, for N:M, ``ceil(log2 M)`` index bits per slot; unstructured: the kept values
  plus the index format's bits (:func:`hwmodel.mapping.unstructured_metadata_bits`).
* Metadata travels with every weight tile; it stalls the array when the metadata path cannot
  deliver a fold's indices within the cycles that fold's weights take to load (WS: R cycles)
  or, when weights stream, within the compute cycles.
* DRAM: B streamed with double buffering overlaps the compute except one tile
  (``max(busy, t_B) + t_B / folds``), single buffered it adds; A in and O out are exposed;
  one first-access latency when anything moves.
* SRAM: B read once per weight reload, A once per input reload, partial sums written and
  read back between passes over K.
"""

from __future__ import annotations

import numpy as np

DENSE, NM, UNSTRUCTURED = 0, 1, 2   # how B is stored and walked (``kind`` below)


def index_bits_per_slot(m) -> np.ndarray:
    """Index bits of one N:M slot: ceil(log2 M) = bit length of M - 1 (0 for dense rows, M = 0)."""
    m = np.asarray(m, dtype=np.int64)
    return np.where(m > 1, np.ceil(np.log2(np.maximum(m, 1))), 0).astype(np.int64)


def stored_weights(kind, slots, index_bits, nnz, unstructured_meta_bits) -> tuple[np.ndarray, np.ndarray]:
    """(values stored, metadata bits stored) of B: slots walked (dense, N:M) or kept values (unstructured)."""
    unstructured = kind == UNSTRUCTURED
    values = np.where(unstructured, nnz, slots).astype(np.float64)
    meta = np.where(unstructured, unstructured_meta_bits, slots * index_bits).astype(np.float64)
    return values, meta


def metadata(meta_stored, weight_reloads, weight_folds, fill_window_cycles, compute_cycles,
             metadata_bits_per_cycle: float) -> tuple[np.ndarray, np.ndarray]:
    """(bits of metadata moved, metadata stall cycles): indices re-sent with every weight reload."""
    bits_meta = meta_stored * weight_reloads
    if metadata_bits_per_cycle <= 0:
        need = np.where(bits_meta > 0, np.inf, 0.0)
    else:
        need = bits_meta / metadata_bits_per_cycle
    window = np.where(fill_window_cycles != 0, weight_folds * fill_window_cycles, compute_cycles)
    stall = np.where(bits_meta != 0, np.maximum(0.0, need - window), 0.0)
    return bits_meta, stall


def dram_bits(kind, m, kk, nn, values_stored, meta_stored, bits_a, bits_b, bits_o, b_from_dram, a_from_dram,
              o_to_dram) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(B as stored, B from DRAM, A from DRAM, O to DRAM), all in bits."""
    b_store = np.where(kind != DENSE, values_stored * bits_b + meta_stored, (kk * nn * bits_b).astype(np.float64))
    b_dram = np.where(b_from_dram, b_store, 0.0)
    a_dram = np.where(a_from_dram, (m * kk * bits_a).astype(np.float64), 0.0)
    o_dram = np.where(o_to_dram, (m * nn * bits_o).astype(np.float64), 0.0)
    return b_store, b_dram, a_dram, o_dram


def dram_timing(busy, b_dram, a_dram, o_dram, weight_folds, b_double_buffered, bandwidth_bits_per_cycle: float,
                latency_cycles: float) -> tuple[np.ndarray, np.ndarray]:
    """(cycles, DRAM stall cycles) of GEMMs busy ``busy`` cycles on the array with these DRAM transfers."""
    t_b = b_dram / bandwidth_bits_per_cycle
    # Only used where B moves (t_b != 0); a GEMM without weight folds moves no B.
    overlapped = np.maximum(busy, t_b) + t_b / np.where(weight_folds != 0, weight_folds, 1)
    core = np.where(t_b != 0, np.where(b_double_buffered, overlapped, busy + t_b), busy)
    exposed = (a_dram + o_dram) / bandwidth_bits_per_cycle
    latency = np.where((b_dram != 0) | (a_dram != 0) | (o_dram != 0), latency_cycles, 0.0)
    cycles = core + exposed + latency
    return cycles, cycles - busy


def sram_bits(m, kk, nn, values_stored, bits_a, bits_b, bits_o, weight_reloads, input_reloads, k_passes,
              accumulator_bits: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(B read, A read, partial sums written = read back, O written) in bits at the operands' SRAM levels."""
    mn = (m * nn).astype(np.float64)
    b_read = values_stored * bits_b * weight_reloads
    a_read = (m * kk * bits_a * input_reloads).astype(np.float64)
    psum = np.maximum(k_passes - 1.0, 0.0) * mn * accumulator_bits
    return b_read, a_read, psum, mn * bits_o
