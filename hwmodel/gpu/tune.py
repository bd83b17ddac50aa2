"""``nmlab gpu fit``: the bundled per-architecture parameter sets, refitted from the bundled data.

Each architecture with measurements gets a set fitted on all rows of its GPU; ``generic``
is fitted on every bundled GPU together (for architectures without measurements). The file
records what each set was fitted on and the command that wrote it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from hwmodel.gpu.fit import GpuData, fit
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


def write_bundled_params(path: str | os.PathLike) -> Path:
    """Fit and write the parameter file atomically; returns its path."""
    from hwmodel.io import atomic_write

    doc = {"format": FORMAT_NAME, "version": FORMAT_VERSION,
           "written_by": "nmlab gpu fit (from hwmodel/data/gpu_measurements, see its README)",
           "sets": bundled_param_sets()}
    path = Path(path)
    text = ("# GPU model parameters per architecture (hwmodel/gpu/model.py GpuParams; docs/gpu.md).\n"
            "# Generated: do not edit by hand; rerun `nmlab gpu fit`.\n"
            + yaml.safe_dump(doc, sort_keys=False, default_flow_style=None, width=100))
    with atomic_write(path, "w") as fh:
        fh.write(text)
    return path
