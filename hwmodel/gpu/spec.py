"""GPU design points: ``hwmodel/data/gpus/*.yaml`` (format ``nmlab-gpu`` version 1, docs/gpu.md)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from hwmodel.errors import NmlabError
from hwmodel.io import data_path

FORMAT_NAME = "nmlab-gpu"
FORMAT_VERSION = 1


@dataclass(frozen=True)
class GpuSpec:
    """One GPU's published figures (units in the names; rates in FLOP/s or ops/s).

    Attributes:
        name: file stem, e.g. "h200_sxm".
        display_name: human name.
        device_name_patterns: substrings of torch's device name that select this spec.
        compute_capability: "major.minor".
        sm_count: streaming multiprocessors.
        tensor_clock_mhz: clock at which the peak tensor rates hold.
        hbm_bytes_per_s: peak HBM bandwidth.
        l2_bytes: L2 cache size.
        launch_overhead_us: prior for the eager per-kernel launch cost.
        tensor_flops: dtype -> {"dense": FLOP/s, "sparse": FLOP/s with 2:4}.
    """

    name: str
    display_name: str
    device_name_patterns: tuple[str, ...]
    compute_capability: str
    sm_count: int
    tensor_clock_mhz: float
    boost_clock_mhz: float
    hbm_bytes: float
    hbm_bytes_per_s: float
    l2_bytes: int
    smem_per_sm_bytes: int
    launch_overhead_us: float
    sparse_pattern: str
    tensor_flops: dict[str, dict[str, float]]

    def peak_flops(self, dtype: str, sparse: bool) -> float:
        """Peak tensor-core rate for ``dtype`` (FLOP/s), the 2:4 rate when ``sparse``."""
        if dtype not in self.tensor_flops:
            raise NmlabError(f"gpu '{self.name}': no tensor-core rate for dtype {dtype}")
        return self.tensor_flops[dtype]["sparse" if sparse else "dense"]

    def matches(self, device_name: str) -> bool:
        return any(p.lower() in device_name.lower() for p in self.device_name_patterns)


def _need(doc: dict, key: str, where: str, kind: type, positive: bool = True) -> Any:
    if key not in doc:
        raise NmlabError(f"{where}: {key}: missing")
    value = doc[key]
    try:
        value = kind(value)
    except (TypeError, ValueError):
        raise NmlabError(f"{where}: {key}: {value!r} is not a {kind.__name__}") from None
    if positive and kind in (int, float) and not value > 0:
        raise NmlabError(f"{where}: {key}: must be > 0, got {value}")
    return value


def load_gpu(path: str | os.PathLike) -> GpuSpec:
    """Read and check one GPU yaml file (``yaml.safe_load``); NmlabError names the bad field."""
    path = Path(path)
    where = f"gpu '{path.stem}'"
    if not path.is_file():
        raise NmlabError(f"{where}: no such file: {path}")
    doc = yaml.safe_load(path.read_text())
    if not isinstance(doc, dict):
        raise NmlabError(f"{where}: not a mapping")
    if doc.get("format") != FORMAT_NAME or doc.get("version") != FORMAT_VERSION:
        raise NmlabError(f"{where}: format/version: expected {FORMAT_NAME} version {FORMAT_VERSION}, "
                         f"got {doc.get('format')} {doc.get('version')}")
    rates = doc.get("tensor_tflops")
    if not isinstance(rates, dict) or not rates:
        raise NmlabError(f"{where}: tensor_tflops: missing or empty")
    flops = {}
    for dtype, pair in rates.items():
        if not isinstance(pair, dict):
            raise NmlabError(f"{where}: tensor_tflops.{dtype}: expected {{dense, sparse}}")
        dense = _need(pair, "dense", f"{where}: tensor_tflops.{dtype}", float)
        sparse = _need(pair, "sparse", f"{where}: tensor_tflops.{dtype}", float)
        flops[str(dtype)] = {"dense": dense * 1e12, "sparse": sparse * 1e12}
    patterns = doc.get("device_name_patterns") or []
    if not isinstance(patterns, list) or not all(isinstance(p, str) and p for p in patterns):
        raise NmlabError(f"{where}: device_name_patterns: expected a list of strings")
    return GpuSpec(
        name=str(doc.get("name") or path.stem),
        display_name=str(doc.get("display_name") or path.stem),
        device_name_patterns=tuple(patterns),
        compute_capability=str(_need(doc, "compute_capability", where, str, positive=False)),
        sm_count=_need(doc, "sm_count", where, int),
        tensor_clock_mhz=_need(doc, "tensor_clock_mhz", where, float),
        boost_clock_mhz=_need(doc, "boost_clock_mhz", where, float),
        hbm_bytes=_need(doc, "hbm_bytes", where, float),
        hbm_bytes_per_s=_need(doc, "hbm_bytes_per_s", where, float),
        l2_bytes=_need(doc, "l2_bytes", where, int),
        smem_per_sm_bytes=_need(doc, "smem_per_sm_bytes", where, int),
        launch_overhead_us=_need(doc, "launch_overhead_us", where, float),
        sparse_pattern=str(doc.get("sparse_pattern", "2:4")),
        tensor_flops=flops,
    )


def bundled_gpus() -> dict[str, GpuSpec]:
    """The design points under hwmodel/data/gpus, by name."""
    specs = [load_gpu(p) for p in sorted(data_path("gpus").glob("*.yaml"))]
    return {s.name: s for s in specs}


def gpu_for(name_or_device: str) -> GpuSpec:
    """A bundled spec by file name ("h200_sxm") or by a torch device name ("NVIDIA H200")."""
    specs = bundled_gpus()
    if name_or_device in specs:
        return specs[name_or_device]
    hits = [s for s in specs.values() if s.matches(name_or_device)]
    if len(hits) != 1:
        raise NmlabError(f"gpu: {name_or_device!r} matches {len(hits)} design points "
                         f"(have {', '.join(specs)}); pass --gpu NAME")
    return hits[0]
