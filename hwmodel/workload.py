"""Workload files: the layer shapes and masks of one or more networks (format in docs/workload.md).

A workload file is a zip archive (``.nmw``) holding ``manifest.json`` and, per layer, numpy
``.npy`` arrays. Loading never executes code from the file and never trusts its sizes: every
member's declared size is checked against what the manifest's layer shapes need before it is
inflated, each ``.npy`` header against the layer before any allocation, and the shapes
against the limits of :mod:`hwmodel.limits` (docs/limits.md).
"""

from __future__ import annotations

import io
import json
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np

from hwmodel.errors import NmlabError
from hwmodel.io import atomic_write, data_path
from hwmodel.limits import (
    MAX_BITS, MIN_BITS, NPY_MAX_HEADER_BYTES, check_finite_array, check_limit, check_version, is_file, is_int, limit, loads_json, not_a_file, over_limit,
    parse_npy, read_member, short,
)
from hwmodel.sparsity import Pattern, parse_pattern, verify

FORMAT_NAME = "nmlab-workload"
FORMAT_VERSION = 1
SUPPORTED_VERSIONS = (1,)

#: Network names TD3 produces; any other name is allowed too.
TD3_NETWORKS = ("actor", "critic1", "critic2", "actor_target", "critic1_target", "critic2_target")


@dataclass
class Layer:
    """One fully connected layer (a GEMM with K = in_features, N = out_features).

    Attributes:
        name: unique within the workload, e.g. "actor.fc1".
        network: which network it belongs to ("actor", "critic1", ... or any name).
        in_features: reduction size K.
        out_features: output size N.
        pattern: "N:M", "unstructured" or "dense".
        mask: bool [out_features, in_features] of kept weights, None when dense. The hardware
            model analyses a mask once and then marks the array read-only; to change a
            layer's mask, assign a new array.
        weight_bits: bitwidth the weights are stored at.
        weight: optional float32 [out_features, in_features] (already masked).
        bias: optional float32 [out_features].
    """

    name: str
    network: str
    in_features: int
    out_features: int
    pattern: str = "dense"
    mask: Optional[np.ndarray] = None
    weight_bits: int = 32
    weight: Optional[np.ndarray] = None
    bias: Optional[np.ndarray] = None

    @property
    def nnz(self) -> int:
        """Kept weights (all of them when dense)."""
        return self.in_features * self.out_features if self.mask is None else int(self.mask.sum())

    @property
    def density(self) -> float:
        return self.nnz / (self.in_features * self.out_features)


@dataclass
class Workload:
    """An ordered list of layers plus free-form provenance (``meta``: env, method, steps...)."""

    layers: list[Layer]
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def networks(self) -> list[str]:
        """Network names in first-appearance order."""
        return list(dict.fromkeys(layer.network for layer in self.layers))

    def network(self, name: str) -> list[Layer]:
        return [layer for layer in self.layers if layer.network == name]

    def validate(self) -> None:
        """Raise :class:`NmlabError` naming the layer and field of the first inconsistency."""
        seen: set[str] = set()
        if not self.layers:  # save wrote an empty workload that load then refused
            raise NmlabError("workload: layers: must be a non-empty list")
        check_limit("layers", len(self.layers), "workload: layers")
        total = 0
        for i, layer in enumerate(self.layers):
            _validate_layer(layer, i)
            total += int(layer.in_features) * int(layer.out_features)
            if total > limit("workload_weights"):
                raise over_limit("workload_weights", total, f"layer {short(layer.name)}: the workload's weights so far")
            if layer.name in seen:
                raise NmlabError(f"layer {layer.name!r}: name: duplicate layer name")
            seen.add(layer.name)


#: Longest layer or network name a workload may hold (torch module paths are tens of characters).
NAME_MAX_CHARS = 200


def _validate_layer(layer: Layer, index: int, arrays: bool = True) -> None:
    """Check fields, then (``arrays``) the mask, weight and bias against them."""
    where = f"layer {short(layer.name)}" if isinstance(layer.name, str) and layer.name else f"layer #{index}"
    for key in ("name", "network"):
        value = getattr(layer, key)
        if not isinstance(value, str) or not value:
            raise NmlabError(f"{where}: {key}: must be a non-empty string")
        # Names are printed in tables and reports: no terminal control sequences, no page-long names.
        if len(value) > NAME_MAX_CHARS or not value.isprintable():
            raise NmlabError(f"{where}: {key}: must be printable text of at most {NAME_MAX_CHARS} characters "
                             f"(no control characters), got {short(value)}")
    for key in ("in_features", "out_features"):
        value = getattr(layer, key)
        if not is_int(value) or value < 1:
            raise NmlabError(f"{where}: {key}: must be a positive integer, got {short(value)}")
    check_limit("layer_weights", int(layer.in_features) * int(layer.out_features),
                f"{where}: in_features x out_features")
    wb = layer.weight_bits
    if not is_int(wb) or not MIN_BITS <= wb <= MAX_BITS:
        raise NmlabError(f"{where}: weight_bits: must be an integer from {MIN_BITS} to {MAX_BITS}, got {short(wb)}")
    if not isinstance(layer.pattern, (str, Pattern)):
        raise NmlabError(f"{where}: pattern: expected a string like '2:4' or 'dense', got {short(layer.pattern)}")
    pattern = parse_pattern(layer.pattern, field=f"{where}: pattern")
    if not arrays:
        return
    check_array_types(layer, where)
    shape = (layer.out_features, layer.in_features)
    if layer.mask is None:
        if pattern.kind != "dense":
            raise NmlabError(f"{where}: mask: missing, but pattern is {pattern}")
    else:
        if layer.mask.shape != shape:
            raise NmlabError(
                f"{where}: mask: shape {tuple(layer.mask.shape)} does not match "
                f"[out_features, in_features] = {list(shape)}{_transposed(layer.mask, shape, 'mask')}"
            )
        bad = verify(layer.mask, pattern)
        if bad is not None:
            raise NmlabError(f"{where}: mask: row {bad[0]} group {bad[1]} keeps more than {pattern.n} of {pattern.m}, violating "
                             f"{pattern}{_other_convention(layer.mask, pattern)}")
    if layer.weight is not None:
        if layer.weight.shape != shape:
            raise NmlabError(f"{where}: weight: shape {tuple(layer.weight.shape)} does not match "
                             f"[out_features, in_features] = {list(shape)}{_transposed(layer.weight, shape, 'weight')}")
        check_finite_array(layer.weight, f"{where}: weight")
        _check_weight_fits_float32(layer.weight, where)
        if layer.mask is not None:
            # The format stores weights already masked: a weight where the mask is 0 is a wrong file.
            stray = np.argwhere((np.asarray(layer.weight) != 0) & ~np.asarray(layer.mask, dtype=bool))
            if len(stray):
                r, c = (int(x) for x in stray[0])
                raise NmlabError(f"{where}: weight: row {r} column {c} is {layer.weight[r, c].item()!r} where the mask "
                                 f"is 0 ({len(stray)} such weights); weights are stored already masked: pass "
                                 f"weight * mask")
    if layer.bias is not None:
        if layer.bias.shape != (layer.out_features,):
            raise NmlabError(f"{where}: bias: shape {tuple(layer.bias.shape)} does not match [{layer.out_features}]")
        check_finite_array(layer.bias, f"{where}: bias")
        _check_weight_fits_float32(layer.bias, where, "bias")


#: Largest finite float32: a wider array is stored as float32, and a value beyond it became inf on
#: save, writing a file that loading then refused.
_F32_MAX = float(np.finfo(np.float32).max)


def _check_weight_fits_float32(arr: np.ndarray, where: str, key: str = "weight") -> None:
    arr = np.asarray(arr)
    if arr.dtype.kind == "f" and arr.dtype.itemsize > 4 and arr.size:
        big = np.argwhere(np.abs(arr) > _F32_MAX)
        if len(big):
            idx = [int(x) for x in big[0]]
            raise NmlabError(f"{where}: {key}: value {arr[tuple(idx)].item()!r} at index {idx} does not fit float32, "
                             f"the format's type (largest {_F32_MAX:.4g})")


def _other_convention(mask: np.ndarray, pattern: Pattern) -> str:
    """What to do when ``mask`` is not N:M as nmlab counts it (row-wise groups of M consecutive
    inputs from column 0), naming the convention it does follow when it is column-wise or
    right-aligned N:M."""
    rule = (f"nmlab's {pattern} groups {pattern.m} consecutive weights of each row (along in_features) from column 0, "
            f"docs/workload.md 'N:M semantics'")
    if verify(mask.T, pattern) is None:
        seen = f"it is {pattern} column-wise (groups along out_features), but "
    elif verify(mask[:, ::-1], pattern) is None:
        seen = f"it is {pattern} with groups counted from the last column, but "
    else:
        seen = ""
    return f" ({seen}{rule}; declare the layer 'unstructured' to run this mask as it is)"


def _transposed(arr: np.ndarray, shape: tuple[int, int], key: str) -> str:
    """A hint when ``arr`` is the layer's array stored [in_features, out_features] (a JAX/Flax or
    Keras kernel), else ""."""
    if shape[0] != shape[1] and tuple(arr.shape) == shape[::-1]:
        return f" (it is [in_features, out_features], as JAX and Keras store a kernel: pass {key}.T)"
    return ""


def check_array_types(layer: Layer, where: str = "") -> None:
    """NmlabError unless the layer's mask, weight and bias are numpy arrays (or None): a torch
    tensor or a list failed with AttributeError ('Tensor' object has no attribute 'astype')."""
    for key in ("mask", "weight", "bias"):
        value = getattr(layer, key)
        if value is not None and not isinstance(value, np.ndarray):
            kind = type(value)
            fix = ("tensor.detach().cpu().numpy()" if kind.__module__.split(".")[0] == "torch"
                   else "np.asarray(...)")
            raise NmlabError(f"{where or 'layer ' + short(layer.name)}: {key}: must be a numpy array, got "
                             f"{kind.__module__}.{kind.__qualname__}; pass {fix}")


def _npy_bytes(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array(buf, np.ascontiguousarray(a), allow_pickle=False)
    return buf.getvalue()


def save_workload(workload: Workload, path: str | os.PathLike) -> None:
    """Validate and write ``workload`` to ``path`` atomically (never half-written)."""
    workload.validate()
    layers_json = []
    arrays: dict[str, bytes] = {}
    for i, layer in enumerate(workload.layers):
        entry: dict[str, Any] = {
            "name": layer.name,
            "network": layer.network,
            "in_features": int(layer.in_features),
            "out_features": int(layer.out_features),
            "pattern": str(parse_pattern(layer.pattern)),
            "weight_bits": int(layer.weight_bits),
        }
        if layer.mask is not None:
            entry["mask"] = f"layers/{i}/mask.npy"
            arrays[entry["mask"]] = _npy_bytes(np.packbits(layer.mask.astype(bool), axis=None))
        if layer.weight is not None:
            entry["weight"] = f"layers/{i}/weight.npy"
            arrays[entry["weight"]] = _npy_bytes(layer.weight.astype(np.float32))
        if layer.bias is not None:
            entry["bias"] = f"layers/{i}/bias.npy"
            arrays[entry["bias"]] = _npy_bytes(layer.bias.astype(np.float32))
        layers_json.append(entry)
    manifest = {"format": FORMAT_NAME, "version": FORMAT_VERSION, "meta": workload.meta, "layers": layers_json}
    members = {"manifest.json": json.dumps(manifest, indent=1, sort_keys=False).encode(), **arrays}
    with atomic_write(path) as fh:
        with zipfile.ZipFile(fh, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            for name, data in members.items():
                zf.writestr(_member(name), data)


#: Every member's zip timestamp (zip's earliest): the same workload writes the same bytes, so its
#: sha, and the sweep point ids made from it, stay the same when an agent is exported again.
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)


def _member(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=_ZIP_TIME)
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = 0o644 << 16  # rw-r--r-- (writestr gives a bare name rw-------; the mode unzip gives the member)
    return info


#: Largest item of a float array (numpy's longdouble): the most bytes a weight may take on disk.
_MAX_ITEM_BYTES = 16


def _read_array(zf: zipfile.ZipFile, member: Any, where: str, key: str, count: int, kinds: str) -> np.ndarray:
    """Array ``member`` of ``count`` elements of a dtype kind in ``kinds``, bounded before inflating.

    A member may declare at most a .npy header plus ``count`` of the widest items; the
    header must then promise exactly ``count`` elements and the data hold exactly their bytes.
    """
    if not isinstance(member, str):
        raise NmlabError(f"{where}: {key}: must name an array in the file, got {short(member)}")
    itemsize = 1 if kinds == "u" else _MAX_ITEM_BYTES
    data = read_member(zf, member, NPY_MAX_HEADER_BYTES + 16 + itemsize * count, f"{where}: {key}: array")
    return parse_npy(data, f"{where}: {key}: array {short(member)}", count, kinds)


_LAYER_KEYS = {"name", "network", "in_features", "out_features", "pattern", "weight_bits", "mask", "weight", "bias"}


def _read_manifest(zf: zipfile.ZipFile, path: Path) -> dict:
    """The parsed manifest.json, within the ``manifest_bytes`` limit; NaN and Infinity refused."""
    if "manifest.json" not in zf.NameToInfo:
        if any(name.endswith("/data.pkl") for name in zf.NameToInfo):  # what torch.save writes
            run = path.parent if path.name == "checkpoint.pt" else "RUN"
            raise NmlabError(f"workload: {path} is a torch checkpoint, not a workload file; nmlab export {run} --out "
                             f"FILE.nmw writes a trained run's workload")
        raise NmlabError(f"workload: {path} has no manifest.json")
    data = read_member(zf, "manifest.json", limit("manifest_bytes"), "workload", "manifest_bytes")
    manifest = loads_json(bytes(data), "workload: manifest.json")
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT_NAME:
        raise NmlabError(f"workload: format: expected {FORMAT_NAME!r}")
    check_version(manifest.get("version"), SUPPORTED_VERSIONS, "workload: version")
    return manifest


def run_folder_hint(path: str | os.PathLike) -> str:
    """What to give instead of a training run's folder where a workload file is read ("" when ``path``
    is no run folder): a finished campaign run's workload.nmw, else ``nmlab export`` of the run (a
    run folder said only "is a directory")."""
    path = Path(path)
    if is_file(path / "workload.nmw"):
        return f"is a run folder; its workload is {path / 'workload.nmw'}"
    if is_file(path / "checkpoint.pt"):
        return f"is a training run, not a workload file; nmlab export {path} --out FILE.nmw writes its workload"
    return ""


def bundled_hint(path: str | os.PathLike) -> str:
    """" (the bundled workload of that name is PATH)" when ``path`` is a bare name (``hopper_dense_s0``
    or ``hopper_dense_s0.nmw``) of a bundled workload, else "". Designs and GPUs take bundled names;
    workloads take paths: a bare ``hopper_dense_s0.nmw`` said only "no such file"."""
    path = Path(path)
    if path.parent != Path("."):
        return ""
    name = path.name if path.name.endswith(".nmw") else f"{path.name}.nmw"
    bundled = data_path("workloads", name)
    return f" (the bundled workload of that name is {bundled})" if is_file(bundled) else ""


def load_workload(path: str | os.PathLike) -> Workload:
    """Read and validate a workload file. Errors are :class:`NmlabError` naming layer and field.

    Sizes are checked before anything is inflated or allocated (docs/limits.md).
    """
    path = Path(path)
    if not is_file(path):
        bundled = bundled_hint(path)
        if bundled:
            raise NmlabError(f"workload: no such file: {path}{bundled}")
        hint = run_folder_hint(path)
        if hint:
            raise NmlabError(f"workload: {path}: {hint}")
        raise not_a_file("workload", path)
    try:
        return _read_workload(path)
    except NmlabError as exc:
        # Name the file: a sweep over several workloads said only "layer 'actor.fc1': ..." of the bad one.
        msg = str(exc)
        if str(path) in msg:
            raise
        rest = msg[len("workload: "):] if msg.startswith("workload: ") else msg
        raise NmlabError(f"workload: {path}: {rest}") from None


def _read_workload(path: Path) -> Workload:
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError) as exc:
        raise NmlabError(f"workload: {path} is not a workload file (truncated or not a zip archive: {short(str(exc), 120)})") from None
    with zf:
        manifest = _read_manifest(zf, path)
        entries = manifest.get("layers")
        if not isinstance(entries, list) or not entries:
            raise NmlabError("workload: layers: must be a non-empty list")
        check_limit("layers", len(entries), "workload: layers")
        meta = manifest.get("meta") or {}
        if not isinstance(meta, dict):
            raise NmlabError("workload: meta: must be a mapping")
        layers = []
        total = 0
        for i, entry in enumerate(entries):
            if not isinstance(entry, dict):
                raise NmlabError(f"layer #{i}: must be a mapping")
            name = entry.get("name")
            where = f"layer {short(name)}" if name else f"layer #{i}"
            unknown = set(entry) - _LAYER_KEYS
            if unknown:
                raise NmlabError(f"{where}: {short(sorted(unknown)[0])[1:-1]}: unknown field")
            for key in ("name", "network", "in_features", "out_features", "pattern"):
                if key not in entry:
                    raise NmlabError(f"{where}: {key}: missing")
            layer = Layer(
                name=entry["name"],
                network=entry["network"],
                in_features=entry["in_features"],
                out_features=entry["out_features"],
                pattern=entry["pattern"],
                weight_bits=entry.get("weight_bits", 32),
            )
            _validate_layer(layer, i, arrays=False)  # fields first: the arrays are checked against them
            size = layer.in_features * layer.out_features
            total += size
            if total > limit("workload_weights"):
                raise over_limit("workload_weights", total, f"{where}: the workload's weights so far")
            if "mask" in entry:
                packed = _read_array(zf, entry["mask"], where, "mask", (size + 7) // 8, "u")
                if packed.dtype != np.uint8 or packed.ndim != 1:
                    raise NmlabError(
                        f"{where}: mask: expected {(size + 7) // 8} packed bytes for "
                        f"[{layer.out_features}, {layer.in_features}], got shape {packed.shape} ({packed.dtype})"
                    )
                layer.mask = np.unpackbits(packed, count=size).astype(bool).reshape(layer.out_features, layer.in_features)
            for key in ("weight", "bias"):
                if key in entry:
                    count = size if key == "weight" else layer.out_features
                    arr = _read_array(zf, entry[key], where, key, count, "f")
                    setattr(layer, key, arr.astype(np.float32))  # a copy: writable, not a view of the file
            layers.append(layer)
    workload = Workload(layers=layers, meta=meta)
    workload.validate()
    return workload


def bundled_workloads() -> list[Path]:
    """The workload files shipped with nmlab (the main job's default input), sorted."""
    return sorted(data_path("workloads").glob("*.nmw"))


def default_workload() -> Path:
    """The bundled workload used when a command is given no ``--workload``."""
    files = bundled_workloads()
    if not files:
        raise NmlabError("workload: no bundled workloads found; pass --workload FILE")
    preferred = [f for f in files if f.name.startswith("hopper") and "2of4" in f.name]
    return (preferred or files)[0]


def synthetic_td3_workload(
    obs_dim: int,
    act_dim: int,
    pattern: str = "dense",
    hidden: tuple[int, ...] = (256, 256),
    weight_bits: int = 32,
    seed: int = 0,
    with_weights: bool = False,
) -> Workload:
    """TD3's six networks with random (PyTorch-default-like uniform) weights masked to ``pattern``.

    For tests, benchmarks and GPU shape grids; real masks come from ``nmlab export``.
    ``meta["source"]`` is "synthetic" so nobody mistakes it for a trained agent.
    """
    from hwmodel.sparsity import nm_mask

    rng = np.random.default_rng(seed)
    p = parse_pattern(pattern, allow_unstructured=False)
    shapes = {
        "actor": [obs_dim, *hidden, act_dim],
        "critic": [obs_dim + act_dim, *hidden, 1],
    }
    layers = []
    for net in TD3_NETWORKS:
        dims = shapes["actor" if net.startswith("actor") else "critic"]
        for i, (fan_in, fan_out) in enumerate(zip(dims[:-1], dims[1:])):
            bound = 1.0 / np.sqrt(fan_in)
            w = rng.uniform(-bound, bound, size=(fan_out, fan_in)).astype(np.float32)
            mask = None if p.kind == "dense" else nm_mask(w, p)
            layers.append(
                Layer(
                    name=f"{net}.fc{i + 1}", network=net, in_features=fan_in, out_features=fan_out,
                    pattern=str(p), mask=mask, weight_bits=weight_bits,
                    weight=(w if mask is None else np.where(mask, w, 0).astype(np.float32)) if with_weights else None,
                )
            )
    return Workload(layers=layers, meta={"source": "synthetic", "obs_dim": obs_dim, "act_dim": act_dim,
                                          "sparsity": str(p), "seed": seed})


def synthetic_unstructured_td3_workload(
    obs_dim: int,
    act_dim: int,
    sparsity: float = 0.9,
    hidden: tuple[int, ...] = (256, 256),
    weight_bits: int = 32,
    seed: int = 0,
    with_weights: bool = False,
) -> Workload:
    """TD3's six networks with random unstructured masks (pattern "unstructured").

    Each layer keeps round((1 - ``sparsity``) * in * out) weights (at least one) at uniformly
    random positions, so rows differ in their kept counts as trained unstructured masks do.
    For tests and benchmarks; ``meta["source"]`` is "synthetic".
    """
    from hwmodel.sparsity import random_mask

    rng = np.random.default_rng(seed)
    base = synthetic_td3_workload(obs_dim, act_dim, "dense", hidden, weight_bits, seed, with_weights)
    for layer in base.layers:
        layer.pattern = "unstructured"
        layer.mask = random_mask((layer.out_features, layer.in_features), sparsity, rng)
        if layer.weight is not None:
            layer.weight = np.where(layer.mask, layer.weight, 0).astype(np.float32)
    base.meta.update({"sparsity": "unstructured", "unstructured_sparsity": sparsity})
    return base
