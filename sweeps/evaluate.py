"""Evaluate sweep points: a chunk of points as columns -> an Arrow table of their rows (runs in
worker processes, or in the sweep's own for a small grid).

Workloads, designs, programs and their mappings are cached per process, keyed by path and
pattern, so the points of a workload read, prune and map it once; planning a sweep drops them
(:func:`forget_files`), so each sweep reads its files as they are.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, Callable

import numpy as np

from hwmodel.errors import NmlabError
from hwmodel.memo import BoundedMemo, sorted_hits, sorted_insert, sorted_size
from hwmodel.result import ENERGY_COMPONENTS


@lru_cache(maxsize=16)
def loaded_workload(path: str):
    """The workload file at ``path``, read once per process while it is among the last 16 read
    (the bundled 12 all fit): planning (:func:`sweeps.grid.plan`) reads every file of the grid,
    and a sweep evaluated in this process, or in workers forked after planning, reads them again."""
    from hwmodel.workload import load_workload

    return load_workload(path)


@lru_cache(maxsize=16)  # points come pattern by pattern, so a few entries give nearly all hits
def workload_at(path: str, pattern: str, mask_source: str):
    """The workload of a point: the file as is ("trained") or pruned one-shot to ``pattern``."""
    wl = loaded_workload(path)
    return wl if mask_source == "trained" else prune_one_shot(wl, pattern)


def prune_one_shot(wl, pattern: str):
    """A copy of ``wl`` with every layer pruned to ``pattern`` by weight magnitude, without weights.

    ``N:M``: the N largest |w| of each group of M per row, never a zero weight (a group of a sparse
    donor with fewer than N weights keeps those it has). ``unstructured:S``: the largest |w|
    of each layer, keeping round((1 - S) * in * out) (every layer at the same sparsity).
    Layers without weights get, for N:M, the structural mask of an all-ones matrix (the first
    N of each group: the hardware cost of an N:M mask depends on its counts, not its
    positions) and, for unstructured, uniformly random positions seeded by the layer name
    (positions decide the load imbalance; no weights, no better choice).
    """
    import zlib

    from hwmodel.sparsity import magnitude_mask, nm_mask, parse_pattern, random_mask
    from hwmodel.workload import Layer, Workload
    from sweeps.config import unstructured_level

    level = unstructured_level(pattern)
    if level is None:
        if str(pattern).strip().lower() == "unstructured":
            raise NmlabError("pattern: 'unstructured' keeps trained masks; to prune one-shot give a sparsity "
                             "such as 'unstructured:0.9'")
        p = parse_pattern(pattern, allow_unstructured=False)
    layers = []
    for layer in wl.layers:
        shape = (layer.out_features, layer.in_features)
        if level is not None:
            if layer.weight is not None:
                mask = magnitude_mask(layer.weight, level)
            else:
                mask = random_mask(shape, level, np.random.default_rng(zlib.crc32(layer.name.encode())))
            kind = "unstructured"
        else:
            source = layer.weight if layer.weight is not None else np.ones(shape, dtype=np.float32)
            mask = None if p.kind == "dense" else nm_mask(source, p)
            if mask is not None and layer.weight is not None:
                # A sparse donor (an env without dense TD3) has groups with fewer than N weights: the
                # tie-break would keep zeros at the lowest indices, so whether the mask fits a design's
                # pattern (2:4) would hang on which zeros it picked. A zero is never kept.
                mask &= layer.weight != 0
            kind = str(p)
        # The model needs shapes and masks only: dropping the weights keeps worker caches small.
        layers.append(Layer(name=layer.name, network=layer.network, in_features=layer.in_features,
                            out_features=layer.out_features, pattern=kind, mask=mask, weight_bits=layer.weight_bits))
    return Workload(layers=layers, meta={**wl.meta, "sparsity": str(pattern), "mask_source": "one-shot"})


@lru_cache(maxsize=32)
def _design(path: str):
    from hwmodel.gpu.design_point import load_design_point  # an accelerator design or a GPU spec

    return load_design_point(path)


def config_columns(point: dict[str, Any]) -> dict[str, Any]:
    """The point's configuration as table columns (no machine-specific paths)."""
    return {k: v for k, v in point.items() if not k.startswith("_")}


@lru_cache(maxsize=64)
def _program(path: str, pattern: str, mask_source: str, scenario: str):
    from hwmodel.program import build_program

    return build_program(workload_at(path, pattern, mask_source), scenario)


@lru_cache(maxsize=256)
def _mapped(path: str, pattern: str, mask_source: str, design_path: str, scenario: str):
    from hwmodel.model import map_program

    return map_program(_program(path, pattern, mask_source, scenario), _design(design_path))


def _shape(prog) -> tuple:
    """What the dense reference of a program depends on: its layers' networks and shapes, in order."""
    return tuple((x.network, x.in_features, x.out_features) for x in prog.layers)


_dense_mapped: BoundedMemo = BoundedMemo(256)


def _mapped_dense(shape: tuple, design_path: str, scenario: str, path: str, pattern: str, mask_source: str):
    """The dense reference program, shared by every workload of the same shape: keyed by
    (shape, design, scenario) only; the other arguments say where to find one the first time."""
    from hwmodel.model import map_program

    key = (shape, design_path, scenario)
    got = _dense_mapped.get(key)
    if got is None:
        got = _dense_mapped.put(key, map_program(_program(path, pattern, mask_source, scenario), _design(design_path),
                                                 dense=True))
    return got


# (shape, design path, scenario) -> (sorted codes of (bits, batch), dense cycles, dense energy pJ):
# the dense reference of a point is computed once per process and shared by all its patterns.
_dense_totals: dict[tuple, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
#: Pairs the dense-reference cache holds before it starts over (bounds a worker's memory).
DENSE_TOTALS_MAX = 500_000


def forget_files() -> None:
    """Drop everything this process holds of workload and design files, which is keyed by path:
    a sweep planned again in the same process (:func:`sweeps.grid.plan`) reads its files as they
    are now, not as an earlier sweep found them."""
    for cached in (loaded_workload, workload_at, _design, _program, _mapped, _is_gpu, _gpu_plan):
        cached.cache_clear()
    _dense_mapped.clear()
    if _dense_totals:  # an empty table has nothing to drop
        _dense_totals.clear()

SUMMARY_FIGURES = ("energy_pj", "utilization", "speedup_vs_dense", "energy_ratio_vs_dense", "fits_in_sram",
                   "sram_bytes", "area_mm2")


def _energy_pj(totals: dict[str, np.ndarray]) -> np.ndarray:
    out = 0
    for c in ENERGY_COMPONENTS:
        out = out + totals[f"energy_{c}_pj"]
    return out


def _describe(point: dict[str, Any]) -> str:
    return (f"point {point['point_id']} ({point['env']} {point['pattern']} {point['bits']} bits on "
            f"{point['design']}, {point['scenario']})")


def _dense_code(bits: np.ndarray, batch: np.ndarray) -> np.ndarray:
    """One int64 per (bits, batch): the dense-reference cache's key within a (shape, design, scenario)."""
    if len(batch) and int(batch.max()) >= 1 << 32:
        raise NmlabError(f"batch: {int(batch.max())} is above 2**32, more than a sweep point can have")
    return (bits.astype(np.int64) << 32) | batch.astype(np.int64)


def _dense_missing(key: tuple, code: np.ndarray) -> np.ndarray:
    """The codes of ``code`` the dense-reference cache does not hold for ``key``."""
    hit, _ = sorted_hits(_dense_totals.get(key, (np.zeros(0, np.int64),))[0], code)
    return code[~hit]


def _dense_add(key: tuple, todo: np.ndarray, ev) -> None:
    """Store the dense totals of the sorted distinct codes ``todo`` (evaluated as ``ev``) under ``key``."""
    tot = ev.totals()
    sorted_insert(_dense_totals, key, todo, tot["cycles"], _energy_pj(tot))


def _dense_lookup(key: tuple, code: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(dense cycles, dense energy pJ) of each code of ``code``, every one held for ``key``."""
    known, cycles, energy = _dense_totals[key]
    at = np.searchsorted(known, code)
    return cycles[at], energy[at]


def _runs_as(gemms) -> str:
    """The ``runs_as`` column of a group: :func:`hwmodel.mapping.runs_as` of its GEMMs, (phase, layer,
    hardware pattern, mapping note) each, as ``simulate()``'s layers give them (``nmlab check`` reads
    the same from those)."""
    from hwmodel.mapping import runs_as
    from hwmodel.sparsity import parse_pattern

    return runs_as((phase, str(parse_pattern(layer.pattern)), str(hw), note) for phase, layer, hw, note in gemms)


def _mapped_runs_as(mp) -> str:
    """:func:`_runs_as` of an accelerator group's mapped program."""
    layers = mp.program.layers
    return _runs_as((e.phase, layers[e.layer], hw, note)
                    for e, hw, note in zip(mp.program.gemms, mp.hw_patterns, mp.notes))


def evaluate_points(points: dict[str, list]):
    """Rows of many points (columns: each key of a point dict -> one list) as one Arrow table.

    Points are grouped by (workload, pattern, mask source, design, scenario); all groups of the
    chunk (and the dense references not cached yet) are evaluated in one ``evaluate_many`` call,
    one pass of the closed forms per design over every group's (bits, batch) pairs. Row = configuration columns + the
    totals of ``simulate()`` (latency, energy by component, traffic, speedup and energy ratio vs
    dense at the same bits, fits-in-SRAM...) + ``model_bytes`` (stored weights and metadata of
    the networks the scenario runs, each layer counted once), ``energy_per_sample_pj`` and the
    model's scalar extras.
    """
    import pyarrow as pa

    from hwmodel.energy import energy_table
    from hwmodel.model import FIELDS, evaluate_many
    from hwmodel.simulate import dense_weight_bytes, point_extras

    n = len(points["point_id"])
    groups: dict[tuple, list[int]] = {}
    for i, key in enumerate(zip(points["_workload_path"], points["pattern"], points["mask_source"],
                                points["_design_path"], points["scenario"])):
        groups.setdefault(key, []).append(i)
    all_bits = np.asarray(points["bits"], dtype=np.int64)
    all_batch = np.asarray(points["batch"], dtype=np.int64)
    num: dict[str, np.ndarray] = {}
    obj: dict[str, np.ndarray] = {}

    def put(rows: np.ndarray, cols: dict[str, Any], bits: np.ndarray, extras: dict[int, dict],
            scalars: dict[str, Any]) -> None:
        for name, values in cols.items():
            if name not in num:
                num[name] = np.zeros(n, dtype=np.asarray(values).dtype)
            num[name][rows] = values
        for name, value in scalars.items():
            _column(name)[rows] = value
        for b, e in extras.items():
            at = rows[bits == b]
            for name, value in e.items():
                if name not in ("weights_resident", "bytes_weights_stored", "area_note"):
                    _column(name)[at] = value

    def _column(name: str) -> np.ndarray:
        """The object column ``name`` (all None until set), made on first use only."""
        col = obj.get(name)
        if col is None:
            col = obj[name] = np.full(n, None, dtype=object)
        return col

    # Accelerator groups in three passes: map each group and find the dense-reference pairs not
    # cached yet; one evaluate_many() call over every group and missing dense reference (one
    # pass of the closed forms per design); then each group's columns.
    if sorted_size(_dense_totals) > DENSE_TOTALS_MAX:
        _dense_totals.clear()  # bounds a long-lived process; checked once per chunk, between lookups
    todo: list[tuple] = []
    # Every group in chunk order (a column's dtype is its first group's): an index into todo
    # for an accelerator group, put()'s arguments for a GPU group.
    order: list = []
    dense_todo: dict[tuple, tuple[Any, list[np.ndarray]]] = {}
    for key, idx in groups.items():
        bits, batch = all_bits[idx], all_batch[idx]
        rows = np.asarray(idx)
        first = {k: v[idx[0]] for k, v in points.items()}
        if _is_gpu(key[3]):
            order.append((rows, *_gpu_group(key, bits, batch, first)))
            continue
        try:
            wl = workload_at(*key[:3])
            d = _design(key[3])
            mp = _mapped(*key)
            shape = _shape(mp.program)
            dkey = (shape, key[3], key[4])
            dmp = _mapped_dense(shape, key[3], key[4], *key[:3])
            code = _dense_code(bits, batch)
            # Every bitwidth's datatype is checked here, so a bad one names its point.
            extras = {b: point_extras(d, wl, b, "auto", mp.program.policy_delay, False, 0.0,
                                      dense_weight_bytes(mp.program, b)) for b in set(bits.tolist())}
        except NmlabError as exc:
            raise NmlabError(f"{_describe(first)}: {exc}") from None
        missing = _dense_missing(dkey, code)
        if len(missing):
            dense_todo.setdefault(dkey, (dmp, []))[1].append(missing)
        order.append(len(todo))
        todo.append((rows, bits, batch, d, mp, dkey, code, extras))
    dense_keys = list(dense_todo)
    dense_codes = [np.unique(np.concatenate(dense_todo[k][1])) for k in dense_keys]
    evs = evaluate_many([(t[4], t[1], t[2]) for t in todo]
                        + [(dense_todo[k][0], c >> 32, c & 0xFFFFFFFF) for k, c in zip(dense_keys, dense_codes)])
    for k, c, ev in zip(dense_keys, dense_codes, evs[len(todo):]):
        _dense_add(k, c, ev)
    for item in order:
        if not isinstance(item, int):
            put(*item)  # a GPU group
            continue
        (rows, bits, batch, d, mp, dkey, code, extras), ev = todo[item], evs[item]
        d_cycles, d_energy = _dense_lookup(dkey, code)
        tot = ev.totals()
        energy = _energy_pj(tot)
        et = energy_table(d)
        peak = np.asarray([d.compute.pes * d.compute.datatypes[extras[b]["datatype"]] for b in bits.tolist()])
        cycles = tot["cycles"]
        safe = np.where(cycles != 0, cycles, 1.0)
        cap = d.weight_sram_bytes()
        cols = {**tot, "energy_pj": energy,
                "utilization": np.where(cycles != 0, tot["macs_effectual"] / (safe * peak), 0.0),
                "speedup_vs_dense": np.where(cycles != 0, d_cycles / safe, 1.0),
                "energy_ratio_vs_dense": np.where(d_energy != 0, energy / np.where(d_energy != 0, d_energy, 1.0), 1.0),
                "fits_in_sram": ev.stored_bytes <= cap,
                "sram_bytes": np.full(len(rows), float(cap)),
                "weights_resident": ev.resident,
                "bytes_weights_stored": ev.stored_bytes,
                "model_bytes": ev.stored_bytes,
                "energy_per_sample_pj": energy / batch}
        put(rows, cols, bits, extras, {"area_mm2": et.area_mm2, "networks": ",".join(mp.program.network_names()),
                                       "runs_as": _mapped_runs_as(mp)})
    columns: dict[str, Any] = {}
    for name in ("design", "scenario", "batch", "bits", *FIELDS, *SUMMARY_FIGURES):
        columns[name] = None
    for name in points:
        if not name.startswith("_"):
            columns[name] = None
    for name in ("datatype", "activation_bits", "residency", "weights_resident", "dense_weights_resident",
                 "workload_bits", "bytes_weights_stored", "bytes_weights_dense", "dense_fits_in_sram", "policy_delay",
                 "technology_nm", "energy_factor_vs_45nm", "model_bytes", "energy_per_sample_pj", "networks", "runs_as"):
        columns.setdefault(name, None)
    arrays = []
    for name in columns:
        if name in num:
            arrays.append(pa.array(num[name]))
        elif name in obj:
            values = obj[name]
            if name in ("technology_nm", "area_mm2", "bytes_weights_dense", "energy_factor_vs_45nm"):
                arrays.append(pa.array(values.tolist(), type=pa.float64()))
            else:
                arrays.append(pa.array(values.tolist()))
        elif name == "bits":
            arrays.append(pa.array(all_bits))
        elif name == "batch":
            arrays.append(pa.array(all_batch))
        else:
            arrays.append(pa.array(points[name]))
    return pa.table(arrays, names=list(columns))


@lru_cache(maxsize=64)
def _is_gpu(design_path: str) -> bool:
    from hwmodel.gpu.design_point import GpuDesign

    return isinstance(_design(design_path), GpuDesign)


@lru_cache(maxsize=64)
def _gpu_plan(path: str, pattern: str, mask_source: str, scenario: str):
    from hwmodel.gpu.design_point import gpu_plan

    return gpu_plan(workload_at(path, pattern, mask_source), scenario)


def _gpu_group(key: tuple, bits: np.ndarray, batch: np.ndarray, first: dict[str, Any]):
    """The columns of a group of GPU design points (one workload, pattern, GPU and scenario):
    ``simulate()``'s summary and scalar extras, like an accelerator group's, evaluated at once
    over the group's (bits, batch) pairs by the GPU model (hwmodel/gpu/design_point.py)."""
    from hwmodel.gpu.design_point import simulate_gpu_columns

    try:
        plan = _gpu_plan(key[0], key[1], key[2], key[4])
        cols, extras = simulate_gpu_columns(plan, _design(key[3]), batch, bits)
    except NmlabError as exc:
        raise NmlabError(f"{_describe(first)}: {exc}") from None
    energy = _energy_pj(cols)
    stored = np.asarray([extras[b]["bytes_weights_stored"] for b in bits.tolist()], dtype=float)
    cols.update({"energy_pj": energy, "weights_resident": cols["fits_in_sram"], "bytes_weights_stored": stored,
                 "model_bytes": stored, "energy_per_sample_pj": energy / batch})
    return cols, bits, extras, {"area_mm2": None, "networks": ",".join(plan.networks), "runs_as": _runs_as(
        (g.phase, g.layer, g.mapping.hw_pattern, g.mapping.note) for g in plan.gemms)}


def evaluate_point(point: dict[str, Any]) -> dict[str, Any]:
    """Run the hardware model on one point and return its row (see :func:`evaluate_points`)."""
    return evaluate_points({k: [v] for k, v in point.items()}).to_pylist()[0]


#: The engine evaluates whole chunks of points through this (one columnar call per chunk).
evaluate_point.columns = evaluate_points  # type: ignore[attr-defined]


def evaluate_chunk(points: dict[str, list], evaluate: Callable[[dict], dict] = evaluate_point):
    """Evaluate a chunk of points (columns) in order, the unit of work a pool or Ray task runs: an Arrow table.

    ``evaluate`` with a ``columns`` attribute evaluates the chunk at once; any other point ->
    row function is applied point by point.
    """
    columns = getattr(evaluate, "columns", None)
    if columns is not None:
        return columns(points)
    from sweeps.store import rows_to_table

    keys = list(points)
    return rows_to_table([evaluate(dict(zip(keys, values))) for values in zip(*points.values())])
