"""GPU model parameter files (format ``nmlab-gpu-params`` v1): the bundled one and a user's own.

The bundled file, ``hwmodel/data/gpu_params.yaml``, is written by ``nmlab gpu fit`` from the
bundled measurements, never by hand: one parameter set per architecture that has measurements
(fitted on all rows of that GPU), and a ``generic`` set fitted on all bundled GPUs together,
used for an architecture without measurements. A GPU's parameters are its architecture's set
(:func:`params_for`).

A file of one's own is written by ``nmlab gpu fit --data CSV --gpu SPEC --out FILE`` (one set,
fitted on every row of the timing file, named after the GPU's architecture; its ``data``
metadata name the timing file, its sha256 and format) and named by a GPU spec's ``params:``
key. Such a spec uses that file's set of its architecture, else its ``generic`` set; a file
with neither is refused when the spec is read (:func:`load_own_params`). The spec then holds
the set (:class:`OwnParams`), so every caller of :func:`params_for` gets it.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Optional, Sequence

from hwmodel.errors import NmlabError
from hwmodel.gpu.model import BOUNDS, GpuParams
# ARCH_BY_CC (compute capability -> architecture) lives with the spec loader, which checks the two agree.
from hwmodel.gpu.spec import ARCH_BY_CC, GpuSpec  # noqa: F401

FORMAT_NAME = "nmlab-gpu-params"
FORMAT_VERSION = 1
GENERIC = "generic"


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


def fitted_on_note(gpu: str, fitted: Sequence[str], data_file: Optional[str] = None,
                   rows: Optional[int] = None) -> str:
    """The note saying whose timings a parameter set rests on, as every command and the report word it:
    "fitted on GPUS", with ", not on this GPU" where ``gpu`` is not among them (it is predicted with another
    card's fitted efficiencies and fixed costs; docs/gpu.md, 'A GPU of your own'). A set of one's own that
    names its timing file (``data_file``, with its ``rows``) is "fitted on 412 rows of mytimings.csv", with
    ", measured on GPUS, not on this GPU" where ``gpu`` is not among ``fitted``. Empty when neither names
    anything."""
    if data_file:
        head = f"fitted on {f'{rows} rows of ' if rows else ''}{data_file}"
        elsewhere = f", measured on {', '.join(fitted)}, not on this GPU"
    elif fitted:
        head, elsewhere = f"fitted on {', '.join(fitted)}", ", not on this GPU"
    else:
        return ""
    return head + ("" if not fitted or gpu in fitted else elsewhere)


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
    known = GpuParams.SCALARS + ("eager_us", "eager_sparse_us", "eta")
    unknown = sorted(str(k) for k in doc if k not in known)
    if unknown:  # a misspelt name would leave the model's default in its place, silently
        raise NmlabError(f"{where}: {unknown[0][:60]}: unknown parameter (allowed: {', '.join(known)})")
    kw: dict[str, Any] = {}
    for name in GpuParams.SCALARS + ("eager_us", "eager_sparse_us"):
        if name in doc:
            v = doc[name]
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not v > 0 or v != v or v == float("inf"):
                raise NmlabError(f"{where}: {name}: {v!r} is not a finite number > 0")
            # The fit's own bounds: a fitted value lies within them (a hand-edited one need not).
            lo, hi = BOUNDS.get(name, (0.0, float("inf")))
            if not lo <= v <= hi:
                raise NmlabError(f"{where}: {name}: {v!r} not in [{lo}, {hi}]")
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


def _read_sets(path: Path, what: str, given: Optional[str] = None, data: Optional[bytes] = None) -> dict[str, dict]:
    """The checked ``sets`` mapping of a ``nmlab-gpu-params`` file (each entry a mapping);
    errors are one line, ``<what>: <path>: <field>: ...``. ``data``: the file's bytes, already read."""
    from hwmodel.limits import is_file, load_yaml, not_a_file

    if data is None and not is_file(path):
        raise not_a_file(what, path, given)  # a folder says so, not "no such file"
    # Bounded like every YAML input (size, UTF-8, nesting, aliases, duplicate keys), parsed by
    # libyaml there too.
    doc = load_yaml(path, what, data=data)
    where = f"{what}: {path}"
    if not isinstance(doc, dict) or doc.get("format") != FORMAT_NAME or doc.get("version") != FORMAT_VERSION:
        got = f"{doc.get('format')} {doc.get('version')}" if isinstance(doc, dict) else f"a {type(doc).__name__}"
        raise NmlabError(f"{where}: format/version: expected {FORMAT_NAME} version {FORMAT_VERSION}, got "
                         f"{got[:80]}")
    sets = doc.get("sets")
    if not isinstance(sets, dict) or not sets:
        raise NmlabError(f"{where}: sets: missing or empty")
    for name, entry in sets.items():
        if not isinstance(name, str) or not name or len(name) > 64 or not name.isprintable():
            raise NmlabError(f"{where}: sets: {str(name)[:64]!r} is not a set name (1 to 64 printable characters)")
        if not isinstance(entry, dict):
            raise NmlabError(f"{where}: sets.{name}: expected a mapping")
    return sets


def load_params_file(path: str | os.PathLike) -> dict[str, GpuParams]:
    """Architecture (or "generic") -> parameters, from the bundled-style ``nmlab-gpu-params`` file
    (every set checked; a ``generic`` set required: it serves every architecture without one)."""
    path = Path(path)
    sets = _read_sets(path, "gpu params")
    if GENERIC not in sets:
        raise NmlabError(f"gpu params: {path}: sets: no '{GENERIC}' set")
    return {name: params_from_doc(entry.get("params"), f"gpu params: {path}: sets.{name}.params")
            for name, entry in sets.items()}


@dataclass(frozen=True)
class OwnParams:
    """The parameter set a GPU spec's ``params:`` file gives it (:func:`load_own_params`).

    Attributes:
        path: the file, resolved.
        sha256: hex SHA-256 of the file's bytes (a sweep point's design sha covers it).
        stamp: (device, inode, size, mtime) of the file when read: caches of the spec hold while it does.
        set_name: the set this GPU uses (its architecture's, else "generic").
        params: that set.
        fitted_on: the set's ``fitted_on`` GPUs ([] where it names none).
        rows: the set's ``rows`` (None where it names none).
        data_file: the timing file it was fitted on (``data.file``; None where it names none).
        data_sha256: that file's SHA-256 (``data.sha256``; None where it names none).
    """

    path: str
    sha256: str
    stamp: tuple
    set_name: str
    params: GpuParams
    fitted_on: tuple[str, ...] = ()
    rows: Optional[int] = None
    data_file: Optional[str] = None
    data_sha256: Optional[str] = None

    @property
    def file_name(self) -> str:
        return Path(self.path).name


def file_stamp(path: str | os.PathLike) -> Optional[tuple]:
    """(device, inode, size, mtime) of ``path``, None where it cannot be read: what file caches key on."""
    try:
        st = os.stat(path)
    except (OSError, ValueError):
        return None
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def is_current(own: Optional[OwnParams]) -> bool:
    """Whether ``own``'s file is still the one read (no own file: True); a cache of a spec holding
    ``own`` holds only while this does."""
    return own is None or file_stamp(own.path) == own.stamp


def _metadata(entry: dict, where: str) -> dict[str, Any]:
    """The set's provenance fields, checked (they go into one-line notes and sweep.json)."""
    def text(v: Any, field: str, max_len: int = 255) -> str:
        if not isinstance(v, str) or not v or len(v) > max_len or not v.isprintable():
            raise NmlabError(f"{where}.{field}: expected 1 to {max_len} printable characters, got {str(v)[:60]!r}")
        return v

    out: dict[str, Any] = {}
    fitted = entry.get("fitted_on")
    if fitted is not None:
        if not isinstance(fitted, list) or len(fitted) > 64:
            raise NmlabError(f"{where}.fitted_on: expected a list of GPU names")
        out["fitted_on"] = tuple(text(g, "fitted_on", 64) for g in fitted)
    rows = entry.get("rows")
    if rows is not None:
        if isinstance(rows, bool) or not isinstance(rows, int) or rows < 1:
            raise NmlabError(f"{where}.rows: expected a whole number >= 1, got {str(rows)[:40]!r}")
        out["rows"] = rows
    data = entry.get("data")
    if data is not None:
        if not isinstance(data, dict):
            raise NmlabError(f"{where}.data: expected a mapping (file, sha256)")
        if "file" in data:
            out["data_file"] = text(data["file"], "data.file")
        sha = data.get("sha256")
        if sha is not None:
            if not isinstance(sha, str) or not re.fullmatch(r"[0-9a-f]{64}", sha):
                raise NmlabError(f"{where}.data.sha256: expected 64 hex digits, got {str(sha)[:70]!r}")
            out["data_sha256"] = sha
    return out


def load_own_params(path: str | os.PathLike, spec: GpuSpec, what: str, given: Optional[str] = None) -> OwnParams:
    """The set of the parameter file ``path`` that ``spec`` uses: its architecture's, else
    ``generic``; NmlabError (``<what>: <path>: <field>: ...``) for a file that cannot be read, is
    not ``nmlab-gpu-params`` v1, has a bad value or no set for this GPU. ``given``: the path as the
    spec wrote it, for messages about a missing file."""
    from hwmodel.limits import is_file, limit, not_a_file, read_bytes

    path = Path(path)
    stamp = file_stamp(path)
    if not is_file(path):
        raise not_a_file(what, path, given)  # a folder says so, not "no such file"
    # Read once: the sha (a sweep point's design hash follows it) is that of the bytes parsed.
    data = read_bytes(path, limit("yaml_bytes"), what, "yaml_bytes")
    sets = _read_sets(path, what, given, data)
    arch = architecture(spec)
    name = arch if arch in sets else GENERIC
    if name not in sets:
        raise NmlabError(f"{what}: {path}: sets: no '{arch}' set (this GPU's architecture) nor a '{GENERIC}' one "
                         f"(the file has {', '.join(sorted(sets))[:200]})")
    where = f"{what}: {path}: sets.{name}"
    entry = sets[name]
    params = params_from_doc(entry.get("params"), f"{where}.params")
    return OwnParams(str(path), hashlib.sha256(data).hexdigest(), stamp, name, params, **_metadata(entry, where))


@lru_cache(maxsize=4)
def _bundled(path: str) -> dict[str, GpuParams]:
    return load_params_file(path)


def bundled_params() -> dict[str, GpuParams]:
    """The bundled parameter sets (architecture or "generic" -> parameters)."""
    return _bundled(str(default_path()))


def own_params(spec: GpuSpec) -> Optional[OwnParams]:
    """The set of the parameter file ``spec`` names (``params:``), None for the bundled file."""
    return getattr(spec, "own_params", None)


def set_name_for(spec: GpuSpec, sets: Optional[dict[str, GpuParams]] = None) -> str:
    """Name of the parameter set :func:`params_for` uses: the architecture's, else "generic"
    (of the spec's own parameter file where it names one and ``sets`` is not given)."""
    own = own_params(spec)
    if sets is None and own is not None:
        return own.set_name
    sets = bundled_params() if sets is None else sets
    arch = architecture(spec)
    return arch if arch in sets else GENERIC


def params_for(spec: GpuSpec, sets: Optional[dict[str, GpuParams]] = None) -> GpuParams:
    """Parameters for ``spec``: the set of its own parameter file where the spec names one
    (``params:``), else (or with ``sets`` given) its architecture's set, else the generic one."""
    own = own_params(spec)
    if sets is None and own is not None:
        return own.params
    sets = bundled_params() if sets is None else sets
    return sets[set_name_for(spec, sets)]


def params_file_label(spec: GpuSpec) -> str:
    """The parameter file ``spec`` runs with, as notes name it: the own file's name, else the bundled path."""
    own = own_params(spec)
    return own.file_name if own is not None else "hwmodel/data/gpu_params.yaml"
