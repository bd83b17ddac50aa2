"""A program mapped onto a design: the static per-GEMM columns the columnar model runs on.

:func:`map_program` maps every weight mask of a :class:`~hwmodel.program.Program` onto a
design (:mod:`hwmodel.mapping`: the pattern the array runs, its folds, its stored weights)
and lays the result out as arrays over the program's G GEMMs (:class:`MappedProgram`), the
input of :func:`hwmodel.model.evaluate`. A grid maps many programs of the same shapes onto the
same designs, so what repeats is memoised: the design-independent skeleton of a program,
per-GEMM columns per (design, shapes, mappings), fold tables per shape, stored bits per
mapping. Only the kept-weight counts are new per workload.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass
from typing import Optional

import numpy as np

from hwmodel import traffic
from hwmodel.cycles import FoldTable, fold_width, k_compressed
from hwmodel.design import Design
from hwmodel.mapping import (_DENSE_LAYER, DENSE_WEIGHT_GRAD, Mapping, _entries, _map_into, design_key, map_weights,
                             mask_nnz, unstructured_metadata_bits)
from hwmodel.memo import BoundedMemo
from hwmodel.program import BACKWARD_DATA, BACKWARD_WEIGHT, FORWARD, Program
from hwmodel.sparsity import DENSE

_DENSE_REF = Mapping(DENSE, None, "dense reference")


@dataclass
class MappedProgram:
    """A program's GEMMs mapped onto a design: static arrays over its G GEMMs and W element-wise entries.

    Per GEMM: ``k_fixed``/``n_out`` the reduction and outputs when they do not depend on the
    batch (forward: in, out; backward-data: out, in; weight gradient: K = batch, N = in, M = out),
    ``kind`` 0 dense / 1 N:M / 2 unstructured, ``group_n``/``group_m`` the N:M run, ``nnz`` kept
    weights of B (-1: all of a dense B), ``meta_unstructured`` index bits of an unstructured B,
    ``ragged`` folds walk different K' (their K' in ``folds``).
    Residency: the weights stored for the touched layers are ``(stored_per_bit * bits +
    stored_extra_bits) / 8`` bytes. ``gemm_class`` (programs without unstructured GEMMs):
    GEMMs with equal ids have equal columns and folds except ``nnz``, hence equal figures at
    equal points except ``macs_effectual``; :func:`evaluate_many` evaluates such rows once. ``int_columns``/``flag_columns`` hold the per-GEMM columns
    as two 2-D arrays (the named fields are their rows), so programs concatenate in two calls.
    """

    program: Program
    design: Design
    dense: bool
    m_fixed: np.ndarray
    k_fixed: np.ndarray
    n_out: np.ndarray
    is_wg: np.ndarray
    first_fwd: np.ndarray
    last_fwd: np.ndarray
    kind: np.ndarray
    group_n: np.ndarray
    group_m: np.ndarray
    nnz: np.ndarray
    meta_unstructured: np.ndarray
    ragged: np.ndarray
    folds: FoldTable
    times: np.ndarray
    hw_patterns: list[str]
    notes: list[str]
    stored_per_bit: int
    stored_extra_bits: int
    ew_elements: np.ndarray
    ew_read: tuple[np.ndarray, np.ndarray]
    ew_write: tuple[np.ndarray, np.ndarray]
    ew_always_dram: np.ndarray
    ew_times: np.ndarray
    _ragged_cache: dict
    int_columns: np.ndarray     # [8, G]: m_fixed, k_fixed, n_out, kind, group_n, group_m, nnz, meta_unstructured
    flag_columns: np.ndarray    # [4, G]: is_wg, first_fwd, last_fwd, ragged
    gemm_class: Optional[np.ndarray] = None  # [G]: equal ids => equal columns and folds but nnz; None: not classed


def _kind(m: Mapping) -> int:
    if m.hw_pattern.kind == "unstructured":
        return traffic.UNSTRUCTURED
    return traffic.NM if m.hw_pattern.is_nm else traffic.DENSE


def _columns(mp: Mapping) -> tuple[int, int, int, str, bool]:
    """(kind, group N, group M, hardware pattern text, ragged) of a mapping, memoised on it
    (mappings are cached per mask and design, and the dense ones are shared)."""
    hit = mp.__dict__.get("_columns")
    if hit is None:
        p = mp.hw_pattern
        nm = p.kind == "nm"
        text = p.__dict__.get("_text")  # memoised on the (shared) pattern object
        if text is None:
            text = str(p)
            object.__setattr__(p, "_text", text)
        hit = (_kind(mp), p.n if nm else 0, p.m if nm else 0, text, mp.row_n is not None or mp.row_k is not None)
        object.__setattr__(mp, "_columns", hit)
    return hit


def stored_bits(design: Design, layer, mp: Mapping) -> tuple[int, int]:
    """(bits per weight bit, extra bits) a layer's weights take as the hardware stores them at ``mp``.

    Dense: k * n values; unstructured: kept values plus the index format's bits; N:M: the
    slots walked, each a value and ceil(log2 M) index bits.
    """
    k, n = layer.in_features, layer.out_features
    if not mp.sparse:
        return k * n, 0
    if mp.row_k is not None:
        nnz = mask_nnz(layer.mask)
        return nnz, unstructured_metadata_bits(design.sparsity.index_format, k, n, nnz)
    hm = mp.hw_pattern.m
    meta = (hm - 1).bit_length()
    if mp.row_n is not None:
        # Each row walks k_compressed(k, row N, M); the partial last group only when M does not divide K.
        total = mp.__dict__.get("_row_n_sum")
        slots = (int(mp.row_n.sum()) if total is None else total) * (k // hm)
        if k % hm:
            r = k % hm
            hist = mp.__dict__.get("_row_n_hist")  # (row N, rows) pairs of a flexible mapping
            slots += int(np.minimum(mp.row_n, r).sum()) if hist is None else sum(min(n, r) * c for n, c in hist)
    else:
        slots = k_compressed(k, mp.hw_pattern.n, hm) * n
    return slots, slots * meta


def _stored_bits(design: Design, layer, mp: Mapping) -> tuple[int, int]:
    """:func:`stored_bits`, memoised per (K, N) on mappings without per-row figures (those are
    shared between layers: dense, fixed and layer-wise ones)."""
    if mp.row_n is not None or mp.row_k is not None:
        return stored_bits(design, layer, mp)
    memo = mp.__dict__.setdefault("_stored_bits", {})
    shape = (layer.in_features, layer.out_features)
    hit = memo.get(shape)
    if hit is None:
        hit = memo[shape] = stored_bits(design, layer, mp)
    return hit


def _fold_table(design: Design, ragged: list, n_gemms: int) -> FoldTable:
    """Per-fold K' of the ragged GEMMs (gemm index, K, N, group M, per-row N or kept count,
    unstructured?), all GEMMs at once: the rows of every GEMM joined, one max per fold
    (np.maximum.reduceat), folds of ``fold_width`` rows inside each GEMM. Equal to
    :func:`hwmodel.cycles.ragged_folds` GEMM by GEMM."""
    if not ragged:
        empty = np.zeros(0, dtype=np.int64)
        return FoldTable(empty, empty, empty, n_gemms)
    gi, kk, nn, gm, vecs, unstructured = zip(*ragged)
    # Everything but the per-row figures depends on the GEMMs' shapes and the design only
    # (programs of one workload family repeat them): built once per such key.
    key = (id(design), n_gemms, gi, kk, nn, gm, unstructured)
    hit = _fold_index.get(key)
    if hit is None or hit[0] is not design:
        nn_a = np.asarray(nn, dtype=np.int64)
        width = np.asarray([fold_width(design, int(n)) for n in nn_a], dtype=np.int64)
        folds = -(-nn_a // width)
        first_fold = np.cumsum(folds) - folds
        first_row = np.cumsum(nn_a) - nn_a
        F = int(folds.sum())
        at = np.arange(F) - np.repeat(first_fold, folds)            # fold index inside its GEMM
        w = np.repeat(width, folds)
        start = at * w                                               # first row of the fold inside its GEMM
        outputs = np.minimum(w, np.repeat(nn_a, folds) - start)
        un = np.repeat(np.asarray(unstructured, dtype=bool), folds)
        m = np.repeat(np.where(unstructured, 1, gm), folds)
        kk_f = np.repeat(np.asarray(kk, dtype=np.int64), folds)
        gemm = np.repeat(np.asarray(gi, dtype=np.int64), folds)
        for a in (outputs, gemm):
            a.flags.writeable = False  # shared by the FoldTables of this key
        hit = _fold_index.put(key, (design, np.repeat(first_row, folds) + start, un, un.any(), un.all(), kk_f, m,
                                      gemm, outputs))
    _, row_at, un, any_un, all_un, kk_f, m, gemm, outputs = hit
    per_fold = np.maximum.reduceat(np.concatenate(vecs).astype(np.int64, copy=False), row_at)
    if all_un:
        k = per_fold
    else:
        k = k_compressed(kk_f, per_fold, m)
        if any_un:
            k = np.where(un, per_fold, k)
    return FoldTable(gemm, k.astype(np.int64, copy=False), outputs, n_gemms)


_fold_index: BoundedMemo = BoundedMemo(256)


@dataclass(frozen=True)
class _Skeleton:
    """What a program's GEMMs and element-wise entries are, whatever the design: per GEMM its
    layer, phase and sizes (M fixed, K, N; ``k_list``/``n_list`` as Python ints too), the
    weight-gradient / first / last flags, times per step; the element-wise columns."""

    layer_of: list
    phase_of: list
    forward_only: bool       # GEMM i is the forward pass of layer i, for every layer
    k_list: list
    n_list: list
    sizes: np.ndarray        # [3, G]: m_fixed, k, n
    flags: np.ndarray        # [3, G]: is_wg, first_fwd, last_fwd
    times: np.ndarray
    ew_cols: np.ndarray      # [5, W]: elements, read per bit, read extra, write per bit, write extra
    ew_always_dram: np.ndarray
    ew_times: np.ndarray
    shape_key: int           # id of (layer shapes, GEMM layers and phases, touched layers): what columns depend on
    plain_flags: np.ndarray  # [4, G]: flags, then ragged = False everywhere


_shape_keys: BoundedMemo = BoundedMemo(1024)
_next_shape = [0]


def _intern(key: tuple) -> int:
    """A small integer per distinct shape key (cheaper to hash than the key); never reused,
    also after the table is cleared, so a stale id only misses."""
    hit = _shape_keys.get(key)
    if hit is None:
        hit = _shape_keys.put(key, _next_shape[0])
        _next_shape[0] += 1
    return hit


def _skeleton(program: Program) -> _Skeleton:
    """The design-independent part of mapping ``program``, memoised on it (a program is built once
    and mapped onto many designs; the memo is redone if entries were added since)."""
    hit = program.__dict__.get("_skeleton")
    if hit is not None and hit[0] == len(program.entries):
        return hit[1]
    layers = program.layers
    # Programs of equal entries, layer shapes and touched layers (a grid's workloads of one
    # environment) share one skeleton.
    key = (tuple(program.entries), tuple([(x.in_features, x.out_features) for x in layers]), tuple(program.touched))
    sk = _skeletons.get(key)
    if sk is None:
        sk = _skeletons.put(key, _build_skeleton(program))
    program.__dict__["_skeleton"] = (len(program.entries), sk)
    return sk


_skeletons: BoundedMemo = BoundedMemo(256)


def _build_skeleton(program: Program) -> _Skeleton:
    layers = program.layers
    layer_of, phase_of, k_list, n_list, rows = [], [], [], [], []
    for e in program.gemms:
        m_fixed, kk, nn = e.dims(layers[e.layer])
        fwd = e.phase == FORWARD
        layer_of.append(e.layer)
        phase_of.append(e.phase)
        k_list.append(kk)
        n_list.append(nn)
        rows.append((m_fixed, kk, nn, e.phase == BACKWARD_WEIGHT, bool(e.first and fwd), bool(e.last and fwd), e.times))
    G = len(rows)
    ew = program.elementwise
    W = len(ew)
    forward_only = phase_of == [FORWARD] * len(layers) and layer_of == list(range(len(layers)))
    sk = _Skeleton(
        layer_of, phase_of, forward_only, k_list, n_list,
        np.array([r[:3] for r in rows], dtype=np.int64).reshape(G, 3).T.copy(),
        np.array([r[3:6] for r in rows], dtype=bool).reshape(G, 3).T.copy(),
        np.array([r[6] for r in rows], dtype=np.float64),
        np.array([(e.elements, e.read_bits_per_bit, e.read_bits_extra, e.write_bits_per_bit, e.write_bits_extra)
                  for e in ew], dtype=np.int64).reshape(W, 5).T.copy(),
        np.array([e.always_dram for e in ew], dtype=bool), np.array([e.times for e in ew], dtype=np.float64),
        _intern((tuple((x.in_features, x.out_features) for x in layers), tuple(layer_of), tuple(phase_of),
                 tuple(program.touched))),
        np.array([r[3:6] + (False,) for r in rows], dtype=bool).reshape(G, 4).T.copy())
    for a in (sk.sizes, sk.flags, sk.times, sk.ew_cols, sk.ew_always_dram, sk.ew_times, sk.plain_flags):
        a.flags.writeable = False  # shared by every MappedProgram of the program
    return sk


def _layer_refs(program: Program, sk: _Skeleton) -> tuple:
    """Per layer, whatever the design: (each mask's analysis cache or None for a dense layer,
    pattern texts, kept weights per GEMM [G] (-1: the weight gradient's dense B), the
    same for the dense reference), memoised on the program and redone when a layer's mask
    or pattern object was replaced. Mapping the program onto each design then only looks up
    its mappings in the masks' caches."""
    layers = program.layers
    masks = [x.mask for x in layers]
    inputs = masks + [x.pattern for x in layers]  # what the memo was built from, by identity
    hit = program.__dict__.get("_layer_refs")
    if hit is not None and hit[0] is sk and len(hit[1]) == len(inputs) and all(map(operator.is_, hit[1], inputs)):
        return hit[2:]
    entries, pats, kept, dense_kept = [], [], [], []
    for x, mask in zip(layers, masks):
        full = x.in_features * x.out_features
        dense_kept.append(full)
        pat = x.pattern
        pats.append(pat if isinstance(pat, str) else str(pat))
        if mask is None:
            entries.append(None)
            kept.append(full)
        else:
            entries.append(_entries(mask))
            kept.append(mask_nnz(mask))
    layer_of = np.asarray(sk.layer_of, dtype=np.intp)
    is_wg = sk.flags[0]
    rows = []
    for per_layer in (kept, dense_kept):
        r = np.asarray(per_layer, dtype=np.int64)[layer_of]
        r[is_wg] = -1
        r.flags.writeable = False
        rows.append(r)
    out = (sk, inputs, entries, pats, rows[0], rows[1])
    program.__dict__["_layer_refs"] = out
    return out[2:]


# What a program's mapping onto a design decides apart from the kept weights (per-GEMM
# columns, notes, stored bits, folds), by (design, program shapes, mapping objects): a fixed or
# layer-wise design gives masks with equal max counts the same Mapping object, a flexible one
# masks whose rows all run at one N, so programs of one shape mostly repeat these. The value
# holds the design and the mappings, so the ids in a live key cannot be reused by other objects.
_static_columns: BoundedMemo = BoundedMemo(1024)


def map_program(program: Program, design: Design, dense: bool = False) -> MappedProgram:
    """Map every GEMM of ``program`` onto ``design`` (``dense``: the dense reference, every mapping dense)."""
    layers = program.layers
    sk = _skeleton(program)
    entries, pats, nnz_row, dense_nnz_row = _layer_refs(program, sk)
    # Per layer once: its forward mapping (one cache lookup per mask).
    if dense:
        fwd_maps = [_DENSE_REF] * len(layers)
        nnz_row = dense_nnz_row
    else:
        dkey = design_key(design)
        keys: dict = {}
        fwd_maps = []
        for x, e, pat in zip(layers, entries, pats):
            if e is None:
                fwd_maps.append(_DENSE_LAYER)
                continue
            key = keys.get(pat)
            if key is None:
                key = keys[pat] = ("map", dkey, pat, False)
            mp = e.get(key)
            fwd_maps.append(_map_into(e, key, design, x.mask, x.pattern, False) if mp is None else mp)
    # Per GEMM, its mapping (an inference program: the layers in order).
    if sk.forward_only:
        maps = fwd_maps
    else:
        maps = []
        for li, phase in zip(sk.layer_of, sk.phase_of):
            if phase == FORWARD:
                maps.append(fwd_maps[li])
            elif phase == BACKWARD_DATA:
                layer = layers[li]
                maps.append(_DENSE_REF if dense else map_weights(design, layer.mask, layer.pattern, transposed=True))
            else:
                maps.append(DENSE_WEIGHT_GRAD)
    G = len(maps)
    ckey = (id(design), sk.shape_key,
            tuple(map(id, maps)) if sk.forward_only else (tuple(map(id, fwd_maps)), tuple(map(id, maps))))
    hit = _static_columns.get(ckey)
    if hit is None:
        # What each mapping decides: (kind, group N, group M, hardware pattern text, ragged).
        cs = [mp.__dict__.get("_columns") or _columns(mp) for mp in maps]
        # Unstructured GEMMs' index bits depend on each mask's kept count: not memoised.
        if not any(c[0] == traffic.UNSTRUCTURED for c in cs):
            hit = _static_columns.put(ckey, _static(program, design, sk, maps, fwd_maps, cs))
    if hit is not None:
        _, _, _, head, hw, notes, per_bit, extra, folds, flag_cols, gemm_class = hit
        cols = np.concatenate([head, nnz_row[None, :], _zeros_row(G)])
    else:
        nnzs = nnz_row.tolist()
        d3 = np.array([c[:3] for c in cs], dtype=np.int64).reshape(G, 3).T
        hw = [c[3] for c in cs]
        notes = [mp.note for mp in maps]
        meta = np.zeros(G, dtype=np.int64)
        fmt = design.sparsity.index_format
        for gi, c in enumerate(cs):
            if c[0] == traffic.UNSTRUCTURED:
                meta[gi] = unstructured_metadata_bits(fmt, sk.k_list[gi], sk.n_list[gi], nnzs[gi])
        is_ragged, folds = _ragged_folds(design, sk, maps, cs)
        per_bit, extra = _stored_total(program, design, fwd_maps)
        cols = np.concatenate([sk.sizes, d3, nnz_row[None, :], meta[None, :]])
        flag_cols = np.concatenate([sk.flags, is_ragged[None, :]])
        gemm_class = None
    ew = sk.ew_cols
    return MappedProgram(
        program, design, dense, cols[0], cols[1], cols[2], flag_cols[0], flag_cols[1], flag_cols[2], cols[3],
        cols[4], cols[5], cols[6], cols[7], flag_cols[3], folds, sk.times, hw, notes,
        per_bit, extra, ew[0], (ew[1], ew[2]), (ew[3], ew[4]), sk.ew_always_dram, sk.ew_times, {}, cols, flag_cols,
        gemm_class,
    )


def _ragged_folds(design: Design, sk: _Skeleton, maps: list, cs: list) -> tuple[np.ndarray, FoldTable]:
    """(which GEMMs have ragged folds, their fold table)."""
    G = len(maps)
    ragged, is_ragged = [], np.zeros(G, dtype=bool)
    for gi, (mp, c) in enumerate(zip(maps, cs)):
        if c[4]:
            is_ragged[gi] = True
            ragged.append((gi, sk.k_list[gi], sk.n_list[gi], c[2],
                           mp.row_k if mp.row_k is not None else mp.row_n, mp.row_k is not None))
    return is_ragged, _fold_table(design, ragged, G)


def _stored_total(program: Program, design: Design, fwd_maps: list) -> tuple[int, int]:
    """(bits per weight bit, extra bits) of the touched layers' weights as stored."""
    per_bit = extra = 0
    layers = program.layers
    for i in program.touched:
        a, b = _stored_bits(design, layers[i], fwd_maps[i])
        per_bit += a
        extra += b
    return per_bit, extra


def _static(program: Program, design: Design, sk: _Skeleton, maps: list, fwd_maps: list, cs: list) -> tuple:
    """The memoised part of a mapped program without unstructured GEMMs (see ``_static_columns``):
    (design, mappings, forward mappings, sizes and decided columns [6, G], hardware patterns,
    notes, stored bits per weight bit and extra, fold table, flags [4, G], class ids or None)."""
    G = len(maps)
    d3 = np.array([c[:3] for c in cs], dtype=np.int64).reshape(G, 3).T
    head = np.concatenate([sk.sizes, d3])
    head.flags.writeable = False
    per_bit, extra = _stored_total(program, design, fwd_maps)
    if any(c[4] for c in cs):
        is_ragged, folds = _ragged_folds(design, sk, maps, cs)
        flags = np.concatenate([sk.flags, is_ragged[None, :]])
        flags.flags.writeable = False
        for a in (folds.gemm, folds.k, folds.outputs):
            a.flags.writeable = False  # shared by the programs of this key
        # Ids of their own: only the programs sharing this entry (hence its folds) share them.
        gemm_class = np.arange(_next_class[0], _next_class[0] + G, dtype=np.int64)
        gemm_class.flags.writeable = False
        _next_class[0] += G
    else:
        flags, folds, gemm_class = sk.plain_flags, _fold_table(design, [], G), _class_ids(head, sk.flags)
    return (design, list(maps), list(fwd_maps), head, [c[3] for c in cs], [mp.note for mp in maps], per_bit, extra,
            folds, flags, gemm_class)


# GEMM columns (all but nnz; ragged GEMMs never get here) -> class id. Ids are never reused,
# also after the table is cleared: a cleared table only hands out new ids for old contents.
_class_table: BoundedMemo = BoundedMemo(1 << 16)
_next_class = [0]


def _class_ids(head: np.ndarray, flags: np.ndarray) -> np.ndarray:
    """Class id of each GEMM of ``head`` (m_fixed, K, N, kind, group N, group M) and ``flags``
    (weight gradient, first, last): one id per distinct content, read-only."""
    ids = []
    for key in zip(*head.tolist(), *flags.tolist()):
        hit = _class_table.get(key)
        if hit is None:
            hit = _class_table.put(key, _next_class[0])
            _next_class[0] += 1
        ids.append(hit)
    out = np.asarray(ids, dtype=np.int64)
    out.flags.writeable = False
    return out


_zero_rows: BoundedMemo = BoundedMemo(256)


def _zeros_row(n: int) -> np.ndarray:
    """A read-only [1, n] int64 row of zeros, one per n."""
    hit = _zero_rows.get(n)
    if hit is None:
        hit = np.zeros((1, n), dtype=np.int64)
        hit.flags.writeable = False
        _zero_rows.put(n, hit)
    return hit
