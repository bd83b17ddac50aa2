"""The bundled GPU model parameters: ``hwmodel/data/gpu_params.yaml`` (format ``nmlab-gpu-params`` v1).

Written by ``nmlab gpu fit`` from the bundled measurements, never by hand: one parameter set
per architecture that has measurements (fitted on all rows of that GPU), and a ``generic``
set fitted on all bundled GPUs together, used for an architecture without measurements.
A GPU's parameters are its architecture's set (:func:`params_for`).
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Any, Optional

from hwmodel.errors import NmlabError
from hwmodel.gpu.model import BOUNDS, GpuParams
from hwmodel.gpu.spec import GpuSpec

FORMAT_NAME = "nmlab-gpu-params"
FORMAT_VERSION = 1
GENERIC = "generic"
#: compute capability major.minor -> architecture (for spec files that do not name one).
ARCH_BY_CC = {"8.0": "ampere", "8.6": "ampere", "8.7": "ampere", "8.9": "ada", "9.0": "hopper",
              "10.0": "blackwell", "10.3": "blackwell", "12.0": "blackwell", "12.1": "blackwell"}


def architecture(spec: GpuSpec) -> str:
    """The spec's architecture name ("hopper", ...), from the file or its compute capability."""
    arch = getattr(spec, "architecture", None) or ARCH_BY_CC.get(spec.compute_capability)
    return str(arch or GENERIC)


def default_path() -> Path:
    from hwmodel.io import data_path

    return data_path("gpu_params.yaml")


def provenance() -> dict[str, tuple[list[str], Optional[int]]]:
    """Set name -> (the GPUs it was fitted on, its timing rows) from the bundled parameter file's
    metadata (``fitted_on``, ``rows``; [] and None where it names none). Read afresh, bounded
    like every YAML input (``gpu fit --out`` rewrites this file); NmlabError when it cannot be read."""
    from hwmodel.limits import load_yaml

    doc = load_yaml(default_path(), "gpu params")
    sets = doc.get("sets") if isinstance(doc, dict) else None
    out = {}
    for name, entry in (sets.items() if isinstance(sets, dict) else ()):
        if isinstance(entry, dict):
            fitted = entry.get("fitted_on")
            out[str(name)] = ([str(g) for g in fitted] if isinstance(fitted, list) else [], entry.get("rows"))
    return out


def fitted_on_note(gpu: str, fitted: list[str]) -> str:
    """The note saying whose timings a parameter set rests on, as every command and the report word it:
    "fitted on GPUS", with ", not on this GPU" where ``gpu`` is not among them (it is predicted with another
    card's fitted efficiencies and fixed costs; docs/gpu.md, 'A GPU of your own'). Empty when ``fitted``
    names none."""
    if not fitted:
        return ""
    return f"fitted on {', '.join(fitted)}" + ("" if gpu in fitted else ", not on this GPU")


def efficiency_note(set_name: str, dtype: str, source: str) -> str:
    """The note for a dtype the set ``set_name`` has no fitted efficiency for, as ``gpu predict`` and ``gpu
    validate`` word it: ``source`` (``GpuParams.efficiency_source``) names the twin whose efficiency stands in,
    "" the model's default. Empty when ``source`` is ``dtype`` itself (a fitted one)."""
    if source == dtype:
        return ""
    head = f"the {set_name} set has no fitted efficiency for {dtype} (none of its GPUs' timings have it): "
    if source:
        return head + (f"{source}'s stands in (the same tensor path and operand width; sets fitted on both put "
                       f"them within 3%)")
    from hwmodel.gpu.model import DEFAULT_ETA

    return head + (f"the default {DEFAULT_ETA['dense']:g} dense / {DEFAULT_ETA['sparse']:g} 2:4 stands in, an "
                   f"assumption, so these times and the speedup are not fitted ones")


def params_to_doc(params: GpuParams) -> dict[str, Any]:
    """A plain-YAML mapping of a parameter set (floats rounded to 4 significant digits)."""
    d = params.as_dict()
    out = {k: float(f"{v:.4g}") for k, v in d.items() if k != "eta"}
    out["eta"] = {dt: {k: float(f"{v:.4g}") for k, v in pair.items()} for dt, pair in sorted(d["eta"].items())}
    return out


def params_from_doc(doc: Any, where: str) -> GpuParams:
    """Check and build a parameter set; NmlabError names the bad field."""
    if not isinstance(doc, dict):
        raise NmlabError(f"{where}: expected a mapping")
    kw: dict[str, Any] = {}
    for name in GpuParams.SCALARS + ("eager_us", "eager_sparse_us"):
        if name in doc:
            v = doc[name]
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not v > 0 or v != v or v == float("inf"):
                raise NmlabError(f"{where}: {name}: {v!r} is not a finite number > 0")
            kw[name] = float(v)
    eta = doc.get("eta") or {}
    if not isinstance(eta, dict):
        raise NmlabError(f"{where}: eta: expected a mapping dtype -> {{dense, sparse}}")
    kw["eta"] = {}
    for dtype, pair in eta.items():
        if not isinstance(pair, dict) or set(pair) != {"dense", "sparse"}:
            raise NmlabError(f"{where}: eta.{dtype}: expected {{dense, sparse}}")
        for kind, v in pair.items():
            lo, hi = BOUNDS["eta"]
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not lo <= v <= hi:
                raise NmlabError(f"{where}: eta.{dtype}.{kind}: {v!r} not in [{lo}, {hi}]")
        kw["eta"][str(dtype)] = {k: float(v) for k, v in pair.items()}
    return GpuParams(**kw)


def load_params_file(path: str | os.PathLike) -> dict[str, GpuParams]:
    """Architecture (or "generic") -> parameters, from a ``nmlab-gpu-params`` file."""
    from hwmodel.limits import is_file, load_yaml, not_a_file

    path = Path(path)
    if not is_file(path):
        raise not_a_file("gpu params", path)  # a folder says so, not "no such file"
    # Bounded like every YAML input (size, UTF-8, nesting, aliases, duplicate keys), parsed by
    # libyaml there too; read once per process (_bundled).
    doc = load_yaml(path, "gpu params")
    if not isinstance(doc, dict) or doc.get("format") != FORMAT_NAME or doc.get("version") != FORMAT_VERSION:
        raise NmlabError(f"{path}: format/version: expected {FORMAT_NAME} version {FORMAT_VERSION}")
    sets = doc.get("sets")
    if not isinstance(sets, dict) or GENERIC not in sets:
        raise NmlabError(f"{path}: sets: missing, or without a '{GENERIC}' set")
    out = {}
    for name, entry in sets.items():
        if not isinstance(entry, dict):
            raise NmlabError(f"{path}: sets.{name}: expected a mapping")
        out[str(name)] = params_from_doc(entry.get("params"), f"{path}: sets.{name}.params")
    return out


@lru_cache(maxsize=4)
def _bundled(path: str) -> dict[str, GpuParams]:
    return load_params_file(path)


def bundled_params() -> dict[str, GpuParams]:
    """The bundled parameter sets (architecture or "generic" -> parameters)."""
    return _bundled(str(default_path()))


def set_name_for(spec: GpuSpec, sets: Optional[dict[str, GpuParams]] = None) -> str:
    """Name of the parameter set :func:`params_for` uses: the architecture's, else "generic"."""
    sets = bundled_params() if sets is None else sets
    arch = architecture(spec)
    return arch if arch in sets else GENERIC


def params_for(spec: GpuSpec, sets: Optional[dict[str, GpuParams]] = None) -> GpuParams:
    """Parameters for ``spec``: its architecture's set, else the generic one."""
    sets = bundled_params() if sets is None else sets
    return sets[set_name_for(spec, sets)]
