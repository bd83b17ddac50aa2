"""``nmlab gpu fit``: the bundled per-architecture parameter sets, refitted from the bundled data,
or (``--data``) one set fitted on timings of one's own.

Each architecture with measurements gets a set fitted on all rows of its GPU; ``generic``
is fitted on every bundled GPU together (for architectures without measurements). The file
records what each set was fitted on and the command that wrote it.

With ``--data CSV``: one set, fitted by the same code on every row of that file for one GPU,
named after the GPU's architecture (a spec naming the file uses its architecture's set:
:func:`hwmodel.gpu.params.load_own_params`); its ``data`` metadata name the timing file, its
sha256 and format.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any, Optional

import yaml

from hwmodel.errors import NmlabError
from hwmodel.gpu.fit import GpuData, fit, parameter_names
from hwmodel.gpu.measurements import bundled_files
from hwmodel.gpu.params import FORMAT_NAME, FORMAT_VERSION, GENERIC, architecture, params_to_doc


def bundled_param_sets() -> dict[str, dict[str, Any]]:
    """name -> {"fitted_on", "rows", "params"} for every architecture and "generic"."""
    from hwmodel.gpu.validate import load_blocks

    blocks = load_blocks(bundled_files())
    datas = [GpuData.build(b.spec, b.meas) for b in blocks]
    sets: dict[str, dict[str, Any]] = {}
    for block, data in zip(blocks, datas):
        params, _ = fit([data])
        sets[architecture(block.spec)] = {"fitted_on": [block.spec.name], "rows": len(block.meas),
                                          "params": params_to_doc(params)}
    params, _ = fit(datas)
    sets[GENERIC] = {"fitted_on": [b.spec.name for b in blocks], "rows": sum(len(b.meas) for b in blocks),
                     "params": params_to_doc(params)}
    return dict(sorted(sets.items()))


def _write_params_file(path: str | os.PathLike, header: str, written_by: str, sets: dict[str, Any]) -> Path:
    """A ``nmlab-gpu-params`` v1 file of ``sets`` at ``path``, atomically, under the comment ``header``
    (the one writer of the format, for the bundled file and one's own alike); returns its path."""
    from hwmodel.io import atomic_write

    doc = {"format": FORMAT_NAME, "version": FORMAT_VERSION, "written_by": written_by, "sets": sets}
    path = Path(path)
    with atomic_write(path, "w") as fh:
        fh.write(header + yaml.safe_dump(doc, sort_keys=False, default_flow_style=None, width=100))
    return path


def write_bundled_params(path: str | os.PathLike) -> Path:
    """Fit and write the parameter file atomically; returns its path."""
    return _write_params_file(
        path, "# GPU model parameters per architecture (hwmodel/gpu/model.py GpuParams; docs/gpu.md).\n"
        "# Generated: do not edit by hand; rerun `nmlab gpu fit`.\n",
        "nmlab gpu fit (from hwmodel/data/gpu_measurements, see its README)", bundled_param_sets())


def own_param_set(data: str | os.PathLike, gpu: Optional[str] = None) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """One parameter set fitted on every row of the timing file ``data`` (published or bench format, as
    ``nmlab gpu validate`` reads it) for the GPU ``gpu`` (a bundled name or a spec file, read without
    the parameter file it may name; default: matched from the file's GPU names), by the same
    :func:`~hwmodel.gpu.fit.fit` as each bundled architecture's set.

    Returns (set name: the GPU's architecture, as the bundled file names its sets; the set's entry
    {"fitted_on", "rows", "data", "params"}; the fit's facts). NmlabError (one line) for a file
    of several GPUs or with too few rows for the fit.
    """
    from hwmodel.gpu.validate import load_blocks
    from hwmodel.limits import limit, read_bytes

    blocks = load_blocks([data], gpu, own_params=False)
    if len(blocks) != 1:
        raise NmlabError(f"gpu fit: {data}: timings of {len(blocks)} GPUs ({', '.join(b.spec.name for b in blocks)}); "
                         "a parameter set is fitted for one GPU: pass --gpu, or one file per GPU")
    block = blocks[0]
    try:
        params, info = fit([GpuData.build(block.spec, block.meas)])
    except NmlabError as exc:  # the fit's own check (as gpu validate's), in rows of this file
        need = len(parameter_names(block.meas.dtype.tolist()))
        raise NmlabError(f"{block.meas.path}: {exc}: the file has {len(block.meas)} rows (a dense and a 2:4 time each) "
                         f"and a fit of its dtypes needs at least {need} rows") from None
    raw = read_bytes(data, limit("csv_bytes"), "gpu timings csv", "csv_bytes")
    entry = {"fitted_on": [block.spec.name], "rows": len(block.meas),
             "data": {"file": Path(data).name, "sha256": hashlib.sha256(raw).hexdigest(), "format": block.meas.fmt},
             "params": params_to_doc(params)}
    return architecture(block.spec), entry, info


def write_own_params(data: str | os.PathLike, gpu: Optional[str], path: str | os.PathLike) -> tuple[Path, str, dict, dict]:
    """Fit :func:`own_param_set` and write it as a ``nmlab-gpu-params`` v1 file at ``path``, atomically
    (nothing is written when the fit fails); returns (path, set name, entry, fit facts)."""
    name, entry, info = own_param_set(data, gpu)
    gpu_arg = f" --gpu {Path(gpu).name}" if gpu else ""
    path = _write_params_file(
        path, "# GPU model parameters fitted on timings of your own (hwmodel/gpu/model.py GpuParams; docs/gpu.md,\n"
        "# 'A GPU of your own'). Generated: rerun `nmlab gpu fit --data` rather than editing. A GPU spec uses\n"
        "# it when it names it: params: <this file, relative to the spec's folder>.\n",
        f"nmlab gpu fit --data {Path(data).name}{gpu_arg}", {name: entry})
    return path, name, entry, info
