"""Write the reference answers of GPU design points (tests/test_same_answers.py).

Run once with the per-point engine of 3ee5ba4 (GPU points evaluated one ``simulate()``
each). When the GPU model itself changes, the reference is regenerated with that engine and
the new model files, so the test keeps comparing the columnar engine with the per-point one.
``gpu_reference_engine.patch`` carries into that engine the fixes made since to what a GPU
GEMM counts (a 2:4 GEMM's ``macs_issued`` and ``bits_metadata`` on K padded to a multiple of 4;
its stored bytes come padded from the model files' ``weight_bytes``):

    git worktree add /tmp/ref 3ee5ba4 && cd /tmp/ref
    git checkout main -- hwmodel/gpu/model.py hwmodel/gpu/kernels.py hwmodel/gpu/fit.py hwmodel/data/gpu_params.yaml
    git apply <main>/tests/data/gpu_reference_engine.patch   # later fixes of the GPU figures, per point
    cp <main>/tests/data/{make_gpu_fixtures.py,default_sweep_quality.csv} OUT/   # script needs both
    PYTHONPATH=$PWD python OUT/make_gpu_fixtures.py OUT     # then copy OUT/gpu_*.parquet to tests/data

Writes ``gpu_sweep_points.parquet``: a sweep of the bundled workloads on the bundled GPUs
and one accelerator (mixed chunks) over patterns that do and do not fit 2:4, bits 16/8/4
and several batches of both scenarios (:func:`gpu_sweep_config`); and
``gpu_simulate_layers.parquet``: every layer row of ``simulate(...).to_dict()`` on the GPUs.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

GPUS = ("h100_sxm", "a100_sxm")


def gpu_sweep_config(data_dir: Path):
    """The grid of ``gpu_sweep_points.parquet`` (a SweepConfig)."""
    from sweeps.config import Scenario, SweepConfig

    return SweepConfig(
        patterns=["dense", "2:4", "1:4", "1:8", "3:8", "4:8", "unstructured", "unstructured:0.9"],
        bits=[16, 8, 4], designs=["flex_nm"], gpus=list(GPUS),
        scenarios=[Scenario("inference", b) for b in (1, 5, 64)] + [Scenario("train_step", b) for b in (32, 256)],
        quality=str(data_dir / "default_sweep_quality.csv"))


def simulate_cases():
    """(workload path, GPU name, bits, batch, scenario) of the per-layer fixture."""
    from hwmodel.workload import bundled_workloads

    for wl in sorted(bundled_workloads()):
        for name in GPUS:
            for bits in (16, 8):
                for scenario, batch in (("inference", 1), ("inference", 64), ("train_step", 256)):
                    yield str(wl), name, bits, batch, scenario


def main(dest: str) -> None:
    from hwmodel import simulate
    from sweeps import api

    dest_dir = Path(dest)
    with tempfile.TemporaryDirectory() as tmp:
        api.run(gpu_sweep_config(dest_dir), Path(tmp) / "out", workers=1, progress=False)
        pq.write_table(pq.read_table(Path(tmp) / "out" / "points.parquet"), dest_dir / "gpu_sweep_points.parquet",
                       compression="zstd")
    rows = []
    for case_id, (wl, name, bits, batch, scenario) in enumerate(simulate_cases()):
        d = simulate(wl, name, batch=batch, bits=bits, scenario=scenario).to_dict()
        for i, layer in enumerate(d["layers"]):
            rows.append({"case": case_id, "workload": Path(wl).name, "design": name, "bits": bits, "batch": batch,
                         "scenario": scenario, "residency": "auto", "index": i, **layer})
        rows.append({"case": case_id, "workload": Path(wl).name, "design": name, "bits": bits, "batch": batch,
                     "scenario": scenario, "residency": "auto", "index": -1, "name": "<summary>",
                     **{k: v for k, v in d["summary"].items() if isinstance(v, (int, float)) and k not in ("batch", "bits")}})
    pq.write_table(pa.Table.from_pylist(rows), dest_dir / "gpu_simulate_layers.parquet", compression="zstd")


if __name__ == "__main__":
    main(sys.argv[1])
