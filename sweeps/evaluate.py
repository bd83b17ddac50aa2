"""Evaluate one sweep point: point dict -> one flat row dict (runs in worker processes).

Workloads and designs are cached per process, keyed by path and pattern, so a chunk of
points on the same workload loads and prunes it once.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, Callable

from hwmodel.errors import NmlabError


@lru_cache(maxsize=8)
def _load_workload(path: str):
    from hwmodel.workload import load_workload

    return load_workload(path)


@lru_cache(maxsize=16)  # points come pattern by pattern, so a few entries give nearly all hits
def workload_at(path: str, pattern: str, mask_source: str):
    """The workload of a point: the file as is ("trained") or pruned one-shot to ``pattern``."""
    wl = _load_workload(path)
    return wl if mask_source == "trained" else prune_one_shot(wl, pattern)


def prune_one_shot(wl, pattern: str):
    """A copy of ``wl`` with every layer pruned to ``pattern`` by weight magnitude, without weights.

    ``N:M``: the N largest |w| of each group of M per row. ``unstructured:S``: the largest |w|
    of each layer, keeping round((1 - S) * in * out) (every layer at the same sparsity).
    Layers without weights get, for N:M, the structural mask of an all-ones matrix (the first
    N of each group: the hardware cost of an N:M mask depends on its counts, not its
    positions) and, for unstructured, uniformly random positions seeded by the layer name
    (positions decide the load imbalance; no weights, no better choice).
    """
    import zlib

    import numpy as np

    from hwmodel.errors import NmlabError
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
            kind = str(p)
        # The model needs shapes and masks only: dropping the weights keeps worker caches small.
        layers.append(Layer(name=layer.name, network=layer.network, in_features=layer.in_features,
                            out_features=layer.out_features, pattern=kind, mask=mask, weight_bits=layer.weight_bits))
    return Workload(layers=layers, meta={**wl.meta, "sparsity": str(pattern), "mask_source": "one-shot"})


@lru_cache(maxsize=32)
def _design(path: str):
    from hwmodel.gpu.design_point import load_design_point  # an accelerator design or a GPU spec

    return load_design_point(path)


def _simulate() -> Callable:
    try:
        from hwmodel import simulate  # type: ignore[attr-defined]
    except ImportError:
        from hwmodel.simulate import simulate  # type: ignore[no-redef]
    return simulate


def config_columns(point: dict[str, Any]) -> dict[str, Any]:
    """The point's configuration as table columns (no machine-specific paths)."""
    return {k: v for k, v in point.items() if not k.startswith("_")}


def evaluate_point(point: dict[str, Any]) -> dict[str, Any]:
    """Run the hardware model on one point and return its row.

    Row = configuration columns + ``SimResult.summary()`` (latency, energy by component,
    traffic, speedup and energy ratio vs dense at the same bits, fits-in-SRAM...) +
    ``model_bytes`` (stored weights and metadata of the networks the scenario runs, each
    layer counted once), ``energy_per_sample_pj`` and the model's scalar extras.
    """
    wl = workload_at(point["_workload_path"], point["pattern"], point["mask_source"])
    design = _design(point["_design_path"])
    try:
        res = _simulate()(wl, design, batch=point["batch"], bits=point["bits"], scenario=point["scenario"])
    except NmlabError as exc:
        raise NmlabError(f"point {point['point_id']} ({point['env']} {point['pattern']} {point['bits']} bits on "
                         f"{point['design']}, {point['scenario']}): {exc}") from None
    row = {**res.summary(), **config_columns(point)}
    # The model's scalar extras (datatype, residency, stored and dense weight bytes...) become columns too.
    for key, value in (res.extra or {}).items():
        if key not in row and isinstance(value, (str, int, float, bool)) and key != "area_note":
            row[key] = value
    row["model_bytes"] = model_bytes(res)
    row["energy_per_sample_pj"] = row["energy_pj"] / point["batch"]
    row["networks"] = ",".join(res.network_names())
    return row


def model_bytes(res) -> float:
    """Stored weights incl. metadata of the networks the scenario touches, each once.

    The model reports it (``extra["bytes_weights_stored"]``); ``Figures.bytes_weights`` sums
    over GEMMs, counting a layer in every phase and scaled by how often the phase runs.
    """
    stored = (res.extra or {}).get("bytes_weights_stored")
    if stored is not None:
        return float(stored)
    seen: dict[str, float] = {}
    for layer in res.layers:
        if layer.phase == "forward":
            seen.setdefault(layer.name, layer.figures.bytes_weights)
    return float(sum(seen.values()))


def evaluate_chunk(points: list[dict[str, Any]], evaluate: Callable[[dict], dict] = evaluate_point) -> list[dict[str, Any]]:
    """Evaluate a chunk of points in order (the unit of work a pool or Ray task runs)."""
    return [evaluate(p) for p in points]
