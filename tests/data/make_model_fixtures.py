"""Write the reference answers the columnar model is checked against (tests/test_same_answers.py).

Run once at the commit whose answers are the reference (6fee389, the per-GEMM scalar model):

    git worktree add /tmp/ref 6fee389 && cd /tmp/ref
    PYTHONPATH=$PWD python -m hwmodel sweep --out /tmp/ref_sweep
    PYTHONPATH=$PWD python /path/to/tests/data/make_model_fixtures.py /tmp/ref_sweep /path/to/tests/data

It copies the default sweep's ``points.parquet`` and the quality table it joined, and writes
``simulate_layers.parquet``: every layer row of ``simulate(...).to_dict()`` over bundled
workloads x bundled designs x scenarios x residencies x batches.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

CASES_BATCH = (1, 64)
CASES_RESIDENCY = ("auto", "cold", "stream")


def simulate_cases():
    """(workload path, design name, bits, batch, scenario, residency) of the per-layer fixture."""
    from hwmodel.design import bundled_designs, load_design
    from hwmodel.workload import bundled_workloads

    for wl in sorted(bundled_workloads()):
        for name in sorted(bundled_designs()):
            d = load_design(name)
            bits = next(b for b in (8, 4, 16, 32) if _supports(d, b))
            for scenario in ("inference", "train_step"):
                for residency in CASES_RESIDENCY:
                    for batch in CASES_BATCH:
                        yield str(wl), name, bits, batch, scenario, residency


def _supports(d, bits: int) -> bool:
    from hwmodel.errors import NmlabError

    try:
        d.datatype_for(bits)
        return True
    except NmlabError:
        return False


def main(sweep_dir: str, dest: str) -> None:
    from hwmodel import simulate
    from hwmodel.io import data_path

    dest_dir = Path(dest)
    shutil.copy(Path(sweep_dir) / "points.parquet", dest_dir / "default_sweep_points.parquet")
    shutil.copy(data_path("workloads", "quality.csv"), dest_dir / "default_sweep_quality.csv")
    rows = []
    for case_id, (wl, name, bits, batch, scenario, residency) in enumerate(simulate_cases()):
        res = simulate(wl, name, batch=batch, bits=bits, scenario=scenario, residency=residency)
        d = res.to_dict()
        for i, layer in enumerate(d["layers"]):
            rows.append({"case": case_id, "workload": Path(wl).name, "design": name, "bits": bits, "batch": batch,
                         "scenario": scenario, "residency": residency, "index": i, **layer})
        rows.append({"case": case_id, "workload": Path(wl).name, "design": name, "bits": bits, "batch": batch,
                     "scenario": scenario, "residency": residency, "index": -1, "name": "<summary>",
                     **{k: v for k, v in d["summary"].items() if isinstance(v, (int, float)) and k not in ("batch", "bits")}})
    pq.write_table(pa.Table.from_pylist(rows), dest_dir / "simulate_layers.parquet", compression="zstd")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
