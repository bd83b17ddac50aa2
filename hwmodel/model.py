"""The columnar model: a scenario's GEMMs on one design, for many (bits, batch) points at once.

A :class:`MappedProgram` is a :class:`~hwmodel.program.Program` whose weight masks have been
mapped onto a design (:mod:`hwmodel.mapping`): per GEMM, the pattern the array runs, its
folds and its stored weights, as arrays over the G GEMMs. :func:`evaluate` then runs the
closed forms of :mod:`hwmodel.cycles` (schedule), :mod:`hwmodel.traffic` (metadata, DRAM,
SRAM) and :mod:`hwmodel.energy` on arrays shaped [points, GEMMs]: one numpy expression per
quantity, whatever the number of points. :func:`evaluate_many` runs many mapped programs of
one design (each at its own points) through the same expressions at once, over flat
(point, GEMM) rows; :func:`evaluate` is its one-program case.

Operands, whatever the phase: ``A`` [M x K] streams through the array, ``B`` [K x N] is the
stationary (weight-like) operand the sparsity applies to, ``O`` [M x N] is produced. In the
forward pass B is W^T (N:M along K), in backward-data B is W (N:M along N of the forward
layer, i.e. the transposed mask), in the weight-gradient GEMM B is the activations (dense).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Optional

import numpy as np

from hwmodel import traffic
from hwmodel.cycles import FoldTable, Rate, fold_sums, k_compressed, ragged_fold_sums, schedule_columns
from hwmodel.design import Design
from hwmodel.energy import energy_table, gemm_energy
from hwmodel.mapped_program import MappedProgram, map_program  # noqa: F401  (map_program: part of the model's API)
from hwmodel.memo import BoundedMemo
from hwmodel.result import Figures

FIELDS = tuple(f.name for f in fields(Figures))


@dataclass
class Evaluation:
    """Figures of a mapped program at P points.

    Attributes:
        gemm: per :class:`~hwmodel.result.Figures` field, a [P, G] array over the program's GEMMs
            (already multiplied by each GEMM's times per step).
        elementwise: the same over its W element-wise entries, [P, W].
        m, kk, nn: each GEMM's streamed rows M, reduction K and outputs N at each point, [P, G]
            (the batch stands in for M, or for K in a weight-gradient GEMM).
        stored_bytes: per point, the bytes the touched layers' weights and metadata take as the
            design stores them at the point's bitwidth, [P].
        resident: per point, whether those weights stay in SRAM (``residency`` "auto" and they
            fit in the design's weight SRAM), [P].
    """

    gemm: dict[str, np.ndarray]
    elementwise: dict[str, np.ndarray]
    m: np.ndarray
    kk: np.ndarray
    nn: np.ndarray
    stored_bytes: np.ndarray
    resident: np.ndarray

    def totals(self) -> dict[str, np.ndarray]:
        """Per point, every Figures field summed over the GEMMs and element-wise entries."""
        return {f: self.gemm[f].sum(axis=1) + self.elementwise[f].sum(axis=1) for f in FIELDS}


_GEMM_COLUMNS = ("m_fixed", "k_fixed", "n_out", "kind", "group_n", "group_m", "nnz", "meta_unstructured")
_GEMM_FLAGS = ("is_wg", "first_fwd", "last_fwd", "ragged")
_RAGGED = ("n_folds", "slots", "kf", "kf_outputs", "steps_os", "steps_tc")


def evaluate(mp: MappedProgram, bits, batch, residency: str = "auto") -> Evaluation:
    """Run ``mp`` at P points (``bits`` and ``batch``: length-P integer arrays); see :class:`Evaluation`.

    ``residency``: "auto" (weights stay in SRAM when they fit), "cold" or "stream" (B from DRAM).
    The one-program case of :func:`evaluate_many`.
    """
    return evaluate_many([(mp, bits, batch)], residency)[0]


def evaluate_many(runs, residency: str = "auto") -> list[Evaluation]:
    """Run many mapped programs, each at its own points, in one pass per design.

    ``runs``: (MappedProgram, bits, batch) triples (``bits``, ``batch``: equal-length integer
    arrays). Returns one :class:`Evaluation` per triple, in order, equal in every array to
    ``evaluate(mp, bits, batch, residency)``. Programs on the same design object are evaluated
    together: the closed forms run once over flat (point, GEMM) rows, GEMM columns gathered by
    row, point columns (bitwidth, batch, residency) gathered by row, then the rows are cut back
    into each program's [P, G] arrays. This is what makes a grid of many small groups
    (a few points per workload) cheap: the fixed cost of ~200 numpy operations is paid once
    per design, not once per program.
    """
    runs = list(runs)
    out: list = [None] * len(runs)
    by_design: dict[int, list[int]] = {}
    for i, run in enumerate(runs):
        by_design.setdefault(id(run[0].design), []).append(i)
    for idx in by_design.values():
        for i, ev in zip(idx, _evaluate_design([runs[i] for i in idx], residency)):
            out[i] = ev
    return out


def _points(runs) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """Every run's bits and batch, concatenated (int64), and each run's number of points."""
    if len(runs) > 1 and all(type(b) is list and type(m) is list for _, b, m in runs):
        # Plain lists (a grid's points): one conversion for all programs.
        n_points = [len(b) for _, b, _ in runs]
        for n, (_, _, m) in zip(n_points, runs):
            if n != len(m):
                raise ValueError(f"bits and batch: {n} and {len(m)} points, expected the same number")
        return (np.array([x for _, b, _ in runs for x in b], dtype=np.int64),
                np.array([x for _, _, m in runs for x in m], dtype=np.int64), n_points)
    bits, batch = [], []
    for mp, b, m in runs:
        b = np.asarray(b, dtype=np.int64).reshape(-1)
        m = np.asarray(m, dtype=np.int64).reshape(-1)
        if len(b) != len(m):
            raise ValueError(f"bits and batch: {len(b)} and {len(m)} points, expected the same number")
        bits.append(b)
        batch.append(m)
    n_points = [len(b) for b in bits]
    if len(runs) == 1:
        return bits[0], batch[0], n_points
    return np.concatenate(bits), np.concatenate(batch), n_points


def _evaluate_design(runs, residency: str) -> list[Evaluation]:
    """:func:`evaluate_many` on programs sharing one design.

    One program: point columns [P, 1] against GEMM columns [G] (numpy broadcasting gives
    [P, G]). Several: both gathered onto R = sum(P_i * G_i) rows, program-major, then point,
    then GEMM, so program i's rows are one contiguous block that reshapes to [P_i, G_i].
    The closed forms (:func:`_gemm_figures`, :func:`_elementwise`) are the same code on both.
    """
    mps = [r[0] for r in runs]
    d = mps[0].design
    et = energy_table(d)
    bits, batch, n_points = _points(runs)
    P = len(bits)
    # Per point: datatype (by index into the distinct bitwidths), residency.
    # np.unique costs more than the few points of a small call: sort the distinct bitwidths in Python.
    bits_list = bits.tolist()
    uniq_bits = sorted(set(bits_list))
    pos = {b: i for i, b in enumerate(uniq_bits)}
    bit_index = np.fromiter((pos[b] for b in bits_list), dtype=np.intp, count=P)
    dts = [d.datatype_for(int(b)) for b in uniq_bits]
    rates_u = np.asarray([d.compute.datatypes[dt] for dt in dts], dtype=np.float64)
    mac_u = np.asarray([et.mac_pj[dt] for dt in dts])
    # A few programs at one point each (simulate(): the run and its dense reference): what
    # depends on the programs only is built once per tuple of programs (_joint_rows).
    # Many programs at one point each: the same rows, built here and not kept.
    one_each = len(runs) > 1 and all(p == 1 for p in n_points)
    joint = (_joint_rows(mps) if len(runs) <= _JOINT_MAX else _build_joint(mps)) if one_each else None
    if len(runs) == 1:
        per_bit, extra = mps[0].stored_per_bit, mps[0].stored_extra_bits
    elif joint is not None:
        per_bit, extra = joint.per_bit, joint.extra
    else:
        per_bit = np.repeat(np.asarray([mp.stored_per_bit for mp in mps], dtype=np.int64), n_points)
        extra = np.repeat(np.asarray([mp.stored_extra_bits for mp in mps], dtype=np.int64), n_points)
    stored_bytes = (per_bit * bits + extra) / 8.0
    resident = (residency == "auto") & (stored_bytes <= d.weight_sram_bytes())

    if len(runs) == 1:
        mp = mps[0]
        G = len(mp.times)
        cols = dict(zip(_GEMM_COLUMNS, mp.int_columns))
        cols.update(zip(_GEMM_FLAGS, mp.flag_columns))
        gemm_index, times = np.arange(G), mp.times
        pt = (bits[:, None], batch[:, None], bit_index[:, None], resident[:, None])
        ragged = [(mp, 0)] if mp.ragged.any() else []
        all_once = bool(np.all(times == 1.0))
    elif joint is not None:
        # The rows are the programs' GEMMs in order, no gather.
        n_gemms, R, gemm_index, times, ragged, all_once = (joint.n_gemms, joint.R, joint.gemm_index, joint.times,
                                                           joint.ragged, joint.all_once)
        cols = dict(joint.cols)
        row_point = joint.row_point
        pt = (bits[row_point], batch[row_point], bit_index[row_point], resident[row_point])
    else:
        n_gemms = [len(mp.times) for mp in mps]
        g_start = np.cumsum([0] + n_gemms[:-1])
        R = sum(p * g for p, g in zip(n_points, n_gemms))
        per_point = np.repeat(n_gemms, n_points)               # GEMMs of each point's program
        row_start = np.cumsum(per_point) - per_point           # first row of each point
        row_point = np.repeat(np.arange(P), per_point)
        gemm_index = np.arange(R) + np.repeat(np.repeat(g_start, n_points) - row_start, per_point)
        ints = np.concatenate([mp.int_columns for mp in mps], axis=1)[:, gemm_index]
        flags = np.concatenate([mp.flag_columns for mp in mps], axis=1)[:, gemm_index]
        times = np.concatenate([mp.times for mp in mps])[gemm_index]
        cols = dict(zip(_GEMM_COLUMNS, ints))
        cols.update(zip(_GEMM_FLAGS, flags))
        pt = (bits[row_point], batch[row_point], bit_index[row_point], resident[row_point])
        ragged = [(mp, int(s)) for mp, s in zip(mps, g_start) if mp.ragged.any()]
        all_once = bool(np.all(times == 1.0))
    if not ragged:
        rag = None
    elif joint is not None:
        # Fold sums of the programs' fixed folds at these rates: fixed too (read, never written).
        key = tuple(rates_u.tolist())
        rag = joint.rag.get(key)
        if rag is None:
            rag = joint.rag[key] = _ragged_table(d, ragged, rates_u, R)
    else:
        rag = _ragged_table(d, ragged, rates_u, sum(len(mp.times) for mp in mps))
    rows = None if len(runs) == 1 else _distinct_rows(mps, n_points, gemm_index, pt)
    if rows is None:
        figs, m, kk, nn = _gemm_figures(d, et, cols, *pt, rates_u, mac_u, rag, gemm_index)
    else:
        # Each distinct (GEMM class, point) row once, then spread back; macs_effectual, the one
        # figure that depends on nnz, on every row (the same expression as _gemm_figures).
        first, inverse = rows
        U = len(first)
        figs, m, kk, nn = _gemm_figures(d, et, {k: v[first] for k, v in cols.items()}, *(x[first] for x in pt),
                                        rates_u, mac_u, rag, gemm_index[first])
        figs = {f: _rows(v, U)[inverse] for f, v in figs.items()}
        m, kk, nn = m[inverse], kk[inverse], _rows(nn, U)[inverse]
        nnz = np.where(cols["nnz"] < 0, kk * nn, cols["nnz"])
        figs["macs_effectual"] = (m * nnz).astype(np.float64)
    if not all_once:
        figs = {f: v * times for f, v in figs.items()}

    ew_bits = bits[:, None] if len(runs) == 1 else None
    ews = _elementwise_runs(d, et, mps, bits, resident, n_points, ew_bits)
    evs = []
    if len(runs) == 1:
        shape = (P, G)
        gemm = {f: v if v.shape == shape else np.broadcast_to(v, shape).copy() for f, v in figs.items()}
        evs.append(Evaluation(gemm, ews[0], m, kk, np.broadcast_to(nn, shape), stored_bytes, resident))
        return evs
    # Cut back per program: every field stacked once, then one reshape per program whose rows
    # are the fields' [P_i, G_i] views (not one slice per field and program).
    names = list(figs)
    n_g = {len(mp.times) for mp in mps}
    if len(n_g) == 1:
        # Programs of one GEMM count (a grid's workloads): each field is one [points, G] view,
        # each program's arrays its rows, no copy.
        G = n_g.pop()
        views = [_rows(figs[f], R).reshape(P, G) for f in names]
        m2, kk2, nn2 = m.reshape(P, G), kk.reshape(P, G), _rows(nn, R).reshape(P, G)
        p0 = 0
        for i, mp in enumerate(mps):
            p1 = p0 + n_points[i]
            evs.append(Evaluation({f: v[p0:p1] for f, v in zip(names, views)}, ews[i], m2[p0:p1], kk2[p0:p1],
                                  nn2[p0:p1], stored_bytes[p0:p1], resident[p0:p1]))
            p0 = p1
        return evs
    stacked = np.stack([_rows(figs[f], R) for f in names])
    sizes = np.stack([m, kk, _rows(nn, R)])
    r0 = p0 = 0
    for i, mp in enumerate(mps):
        P_i, G_i = n_points[i], len(mp.times)
        r1, p1 = r0 + P_i * G_i, p0 + P_i
        mkn = sizes[:, r0:r1].reshape(3, P_i, G_i)
        evs.append(Evaluation(dict(zip(names, stacked[:, r0:r1].reshape(len(names), P_i, G_i))), ews[i],
                              mkn[0], mkn[1], mkn[2], stored_bytes[p0:p1], resident[p0:p1]))
        r0, p0 = r1, p1
    return evs


@dataclass
class _Joint:
    """What :func:`_evaluate_design` needs of a tuple of programs evaluated at one point each,
    that depends on the programs only (their rows, in order, no gather)."""

    mps: tuple           # the programs themselves: keeps their ids from being reused while cached
    n_gemms: list
    R: int
    row_point: np.ndarray
    gemm_index: np.ndarray
    cols: dict
    times: np.ndarray
    all_once: bool
    ragged: list
    per_bit: np.ndarray
    extra: np.ndarray
    rag: dict            # distinct rates (tuple) -> _ragged_table's result


# Tuples of programs (ids) -> _Joint. MappedPrograms are built once and never changed (the
# simulate() and sweep memos reuse them the same way); the entry holds them, so a live key's
# ids are theirs. Only short tuples: a grid's one-point groups are many fresh programs.
_JOINT: BoundedMemo = BoundedMemo(16)
_JOINT_MAX = 4


def _joint_rows(mps: list) -> _Joint:
    """:func:`_build_joint` of ``mps``, kept in :data:`_JOINT`."""
    key = tuple(map(id, mps))
    hit = _JOINT.get(key)
    if hit is not None and all(a is b for a, b in zip(hit.mps, mps)):
        return hit
    return _JOINT.put(key, _build_joint(mps))


def _build_joint(mps: list) -> _Joint:
    """The :class:`_Joint` of the programs ``mps``, one point each."""
    n_gemms = [len(mp.times) for mp in mps]
    g_start = np.cumsum([0] + n_gemms[:-1])
    R = sum(n_gemms)
    ints = np.concatenate([mp.int_columns for mp in mps], axis=1)
    flags = np.concatenate([mp.flag_columns for mp in mps], axis=1)
    cols = dict(zip(_GEMM_COLUMNS, ints))
    cols.update(zip(_GEMM_FLAGS, flags))
    times = np.concatenate([mp.times for mp in mps])
    return _Joint(
        tuple(mps), n_gemms, R, np.repeat(np.arange(len(mps)), n_gemms), np.arange(R), cols, times,
        bool(np.all(times == 1.0)), [(mp, int(s)) for mp, s in zip(mps, g_start) if mp.ragged.any()],
        np.asarray([mp.stored_per_bit for mp in mps], dtype=np.int64),
        np.asarray([mp.stored_extra_bits for mp in mps], dtype=np.int64), {})


def _distinct_rows(mps: list, n_points: list, gemm_index: np.ndarray, pt: tuple) -> Optional[tuple]:
    """(first row of each distinct (GEMM class, bitwidth, batch, residency) row, each row's
    distinct row) over the flat rows of ``mps``, or None when not worth it: programs with
    ragged GEMMs (not classed) make up more than a quarter of the rows, or fewer than half
    the rows repeat."""
    classed = sum(p * len(mp.times) for mp, p in zip(mps, n_points) if mp.gemm_class is not None)
    R = len(gemm_index)
    if R < 256 or 4 * classed < 3 * R:
        return None
    gc = np.concatenate([mp.gemm_class if mp.gemm_class is not None else np.full(len(mp.times), -1, dtype=np.int64)
                         for mp in mps])[gemm_index]
    bits, batch, bit_index, resident = pt
    point_key = (batch * (int(bit_index.max()) + 1) + bit_index) * 2 + resident
    span = int(point_key.max()) + 1
    if int(gc.max()) >= (1 << 62) // span:
        return None
    key = np.where(gc >= 0, gc * span + point_key, -1 - np.arange(R))
    _, first, inverse = np.unique(key, return_index=True, return_inverse=True)
    if 2 * len(first) > R:
        return None
    return first, inverse.reshape(-1)


def _rows(v: np.ndarray, n: int) -> np.ndarray:
    """``v`` as n rows: itself when it already is (np.broadcast_to costs microseconds per call)."""
    return v if v.shape == (n,) else np.broadcast_to(v, (n,))


def _ragged_table(d: Design, ragged: list, rates_u: np.ndarray, n_gemms: int) -> dict[str, np.ndarray]:
    """Fold sums of the ragged GEMMs at each distinct rate: name -> [rates, GEMMs] (zeros where not ragged).

    ``ragged``: (MappedProgram, its first GEMM) of the programs with ragged folds. A program
    evaluated alone (``simulate``, a sweep group) memoises its sums per rate, so repeated calls
    skip the folds; programs evaluated together are done at once, their fold tables joined.
    """
    out = {name: np.zeros((len(rates_u), n_gemms), dtype=np.int64) for name in _RAGGED}
    for ri, r in enumerate(rates_u.tolist()):
        hits = [(mp, s) for mp, s in ragged if r in mp._ragged_cache]
        missing = [(mp, s) for mp, s in ragged if r not in mp._ragged_cache]
        if len(missing) == 1:
            mp = missing[0][0]
            mp._ragged_cache[r] = ragged_fold_sums(d, mp.folds, Rate.of(r))
            hits, missing = ragged, []
        if missing:
            table = FoldTable(np.concatenate([mp.folds.gemm + s for mp, s in missing]),
                              np.concatenate([mp.folds.k for mp, _ in missing]),
                              np.concatenate([mp.folds.outputs for mp, _ in missing]), n_gemms)
            joint = ragged_fold_sums(d, table, Rate.of(r))
            for name in _RAGGED:
                out[name][ri] = getattr(joint, name)  # zeros outside the missing programs' GEMMs
        for mp, s in hits:
            sums = mp._ragged_cache[r]
            for name in _RAGGED:
                out[name][ri, s:s + len(mp.times)] = getattr(sums, name)
    return out


def _gemm_figures(d: Design, et, g: dict, bits, batch, bit_index, resident, rates_u, mac_u, rag, gemm_index):
    """Every Figures field of GEMM rows: (figures, m, kk, nn).

    Point columns (``bits``, ``batch``, ``bit_index`` into ``rates_u``/``mac_u``, ``resident``)
    and GEMM columns ``g`` (see :class:`MappedProgram`) broadcast against each other: [P, 1]
    against [G], or both gathered onto the same rows. ``rag``: fold sums of the ragged GEMMs
    by (rate, GEMM), read at (``bit_index``, ``gemm_index``).
    """
    c = d.compute
    rate = Rate.of(rates_u[bit_index])
    mac_pj = mac_u[bit_index]
    bits_a = np.full_like(bits, c.activation_bits) if c.activation_bits else bits
    wg = g["is_wg"]
    m = np.where(wg, g["m_fixed"], batch)
    kk = np.where(wg, batch, g["k_fixed"])
    nn = g["n_out"]
    # Operands: forward/backward-data run activations through weights; the weight gradient
    # runs dY^T (out x B) through the activations X (B x in) and writes dW.
    w_level, meta_level = d.sram_for("weights"), d.sram_for("metadata")
    in_level, out_level = d.sram_for("inputs"), d.sram_for("outputs")
    # Without weight-gradient rows (inference) the per-row picks below are their second operand.
    any_wg = bool(wg.any())
    bits_b = np.where(wg, bits_a, bits) if any_wg else bits
    bits_o = np.where(wg, bits, bits_a) if any_wg else bits_a
    a_spill = m * kk * bits_a / 8.0 > in_level.capacity_bytes
    o_spill = m * nn * bits_a / 8.0 > out_level.capacity_bytes
    b_from_dram = ~wg & ~resident
    a_from_dram = a_spill | g["first_fwd"]
    o_to_dram = np.where(wg, ~resident, o_spill | g["last_fwd"]) if any_wg else o_spill | g["last_fwd"]

    # Schedule: K' walked, folds, cycles.
    kind = g["kind"]
    group_m = np.maximum(g["group_m"], 1)
    k_walk = np.where(kind == traffic.NM, k_compressed(kk, g["group_n"], group_m), kk)
    sums = fold_sums(d, k_walk, nn, rate)
    if rag is not None:
        sums = type(sums)(**{name: np.where(g["ragged"], rag[name][bit_index, gemm_index], getattr(sums, name))
                             for name in _RAGGED})
    s = schedule_columns(d, m, nn, sums, rate)

    # Traffic: stored B, metadata, DRAM, SRAM.
    nnz = np.where(g["nnz"] < 0, kk * nn, g["nnz"])
    values, meta_stored = traffic.stored_weights(kind, s.weight_slots, traffic.index_bits_per_slot(g["group_m"]),
                                                 nnz, g["meta_unstructured"])
    bits_meta, stall_meta = traffic.metadata(meta_stored, s.weight_reloads, s.weight_folds, s.fill_window_cycles,
                                             s.compute_cycles, d.sparsity.metadata_bits_per_cycle)
    b_store, b_dram, a_dram, o_dram = traffic.dram_bits(kind, m, kk, nn, values, meta_stored, bits_a, bits_b,
                                                        bits_o, b_from_dram, a_from_dram, o_to_dram)
    busy = s.compute_cycles + stall_meta
    b_double = np.where(wg, in_level.double_buffered, w_level.double_buffered) if any_wg else w_level.double_buffered
    cycles, stall_dram = traffic.dram_timing(busy, b_dram, a_dram, o_dram, s.weight_folds, b_double,
                                             d.dram.bandwidth_bytes_per_cycle * 8.0, d.dram.latency_cycles)
    b_read, a_read, psum, o_write = traffic.sram_bits(m, kk, nn, values, bits_a, bits_b, bits_o, s.weight_reloads,
                                                      s.input_reloads, s.k_passes, c.accumulator_bits)
    # Where each operand's SRAM traffic lands: B at the weights (activations for dW), A at the
    # inputs, O at the outputs (weights for dW).
    sram = et.sram
    b_lv = (sram[in_level.name], sram[w_level.name])
    o_lv = (sram[w_level.name], sram[out_level.name])
    a_e = sram[in_level.name]
    if any_wg:
        rd_b = np.where(wg, b_lv[0].read_pj_per_bit, b_lv[1].read_pj_per_bit)
        wr_b = np.where(wg, b_lv[0].write_pj_per_bit, b_lv[1].write_pj_per_bit)
        rd_o = np.where(wg, o_lv[0].read_pj_per_bit, o_lv[1].read_pj_per_bit)
        wr_o = np.where(wg, o_lv[0].write_pj_per_bit, o_lv[1].write_pj_per_bit)
    else:
        rd_b, wr_b = b_lv[1].read_pj_per_bit, b_lv[1].write_pj_per_bit
        rd_o, wr_o = o_lv[1].read_pj_per_bit, o_lv[1].write_pj_per_bit
    o_read = psum + o_dram
    o_written = psum + o_write
    sram_read = b_read + a_read + o_read
    sram_write = b_dram + a_dram + o_written
    macs_issued = (m * s.weight_slots).astype(np.float64)
    latency_s = cycles / d.clock_hz
    energy = gemm_energy(et, mac_pj, macs_issued, b_read * rd_b + a_read * a_e.read_pj_per_bit + o_read * rd_o,
                         b_dram * wr_b + a_dram * a_e.write_pj_per_bit + o_written * wr_o, bits_a, bits_b,
                         c.accumulator_bits, bits_meta, sram[meta_level.name].read_pj_per_bit, kind,
                         g["group_m"], kk, b_dram + a_dram + o_dram, latency_s)
    figs = {
        "cycles": cycles, "latency_s": latency_s, "macs_dense": (m * kk * nn).astype(np.float64),
        "macs_effectual": (m * nnz).astype(np.float64), "macs_issued": macs_issued,
        "bits_sram_read": sram_read, "bits_sram_write": sram_write, "bits_dram_read": b_dram + a_dram,
        "bits_dram_write": o_dram, "bits_metadata": bits_meta, "bytes_weights": b_store / 8.0,
        "energy_mac_pj": energy.mac, "energy_sram_pj": energy.sram, "energy_reg_pj": energy.reg,
        "energy_metadata_pj": energy.metadata, "energy_mux_pj": energy.mux, "energy_dram_pj": energy.dram,
        "energy_leakage_pj": energy.leakage, "stall_cycles_dram": stall_dram, "stall_cycles_metadata": stall_meta,
    }
    return figs, m, kk, nn


def _elementwise_runs(d: Design, et, mps: list, bits: np.ndarray, resident: np.ndarray, n_points: list,
                      bits_col: Optional[np.ndarray]) -> list[dict[str, np.ndarray]]:
    """Each program's element-wise figures ([P_i, W_i] per field): one pass over (point, entry) rows."""
    W = [len(mp.ew_elements) for mp in mps]
    if bits_col is not None:  # one program: [P, 1] points against [W] entries
        mp = mps[0]
        if W[0] == 0:
            return [dict.fromkeys(FIELDS, np.zeros((len(bits), 0)))]
        ew = (mp.ew_elements, mp.ew_read[0], mp.ew_read[1], mp.ew_write[0], mp.ew_write[1], mp.ew_always_dram,
              mp.ew_times)
        figs = _elementwise(d, et, bits_col, resident[:, None], *ew[:-1])
        shape = (len(bits), W[0])
        return [{f: np.broadcast_to(figs[f], shape) * mp.ew_times for f in FIELDS}]
    out = [dict.fromkeys(FIELDS, np.zeros((p, 0))) for p in n_points]
    if not any(W):
        return out
    per_point = np.repeat(W, n_points)
    P = len(bits)
    row_point = np.repeat(np.arange(P), per_point)
    w_start = np.cumsum([0] + W[:-1])
    row_start = np.cumsum(per_point) - per_point
    index = np.arange(int(per_point.sum())) + np.repeat(np.repeat(w_start, n_points) - row_start, per_point)
    cat = [np.concatenate(x)[index] for x in zip(*[(mp.ew_elements, mp.ew_read[0], mp.ew_read[1], mp.ew_write[0],
                                                     mp.ew_write[1], mp.ew_always_dram, mp.ew_times) for mp in mps])]
    figs = _elementwise(d, et, bits[row_point], resident[row_point], *cat[:-1])
    n = len(index)
    flat = {f: _rows(figs[f], n) * cat[-1] for f in FIELDS}
    r0 = 0
    for i, p in enumerate(n_points):
        r1 = r0 + p * W[i]
        if W[i]:
            out[i] = {f: v[r0:r1].reshape(p, W[i]) for f, v in flat.items()}
        r0 = r1
    return out


def _elementwise(d: Design, et, bits, resident, elements, read_per_bit, read_extra, write_per_bit, write_extra,
                 always_dram) -> dict[str, np.ndarray]:
    """Element-wise updates (Adam, Polyak): bandwidth-bound at the weights' SRAM level, or DRAM.

    Each element reads and writes its bits at the weight SRAM (banks x word_bits x read ports
    per cycle) or, from DRAM, at DRAM bandwidth plus one latency. The arithmetic (a few adds
    and multiplies per element) is charged as one MAC of the design's first datatype.
    Point columns (``bits``, ``resident``) broadcast against entry columns; each entry's
    times per step is applied by the caller.
    """
    s = d.sram_for("weights")
    lv = et.sram[s.name]
    rd = (elements * (read_per_bit * bits + read_extra)).astype(np.float64)
    wr = (elements * (write_per_bit * bits + write_extra)).astype(np.float64)
    sram_cycles = (rd + wr) / (s.word_bits * s.banks * max(s.read_ports, 1))
    from_dram = always_dram | ~resident
    t = (rd + wr) / (d.dram.bandwidth_bytes_per_cycle * 8.0) + d.dram.latency_cycles
    cycles = np.where(from_dram, np.maximum(sram_cycles, t), sram_cycles)
    stall = np.where(from_dram, np.maximum(0.0, t - sram_cycles), 0.0)
    dram_r = np.where(from_dram, rd, 0.0)
    dram_w = np.where(from_dram, wr, 0.0)
    latency_s = cycles / d.clock_hz
    mac_pj = et.mac_pj[next(iter(d.compute.datatypes))]
    figs = dict.fromkeys(FIELDS, np.zeros(cycles.shape))
    figs.update(cycles=cycles, latency_s=latency_s, bits_sram_read=rd, bits_sram_write=wr, bits_dram_read=dram_r,
                bits_dram_write=dram_w, energy_mac_pj=elements * mac_pj,
                energy_sram_pj=rd * lv.read_pj_per_bit + wr * lv.write_pj_per_bit,
                energy_dram_pj=(dram_r + dram_w) * et.dram_pj_per_bit,
                energy_leakage_pj=et.leakage_mw * latency_s * 1e9, stall_cycles_dram=stall)
    return figs
