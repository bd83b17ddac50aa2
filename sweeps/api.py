"""``nmlab sweep`` end to end: config -> plan -> run -> ``DIR/points.parquet`` + ``DIR/sweep.json``."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any, Callable, Optional

from hwmodel.errors import NmlabError
from hwmodel.io import FolderLock
from sweeps import engine, grid, store
from sweeps.config import SweepConfig, check_grid_size, load_config
from sweeps.derived import Derivation, bundled_quality, load_quality
from sweeps.evaluate import evaluate_point
from sweeps.grid import plan as make_plan


def default_workers() -> int:
    """Local worker processes: the CPUs this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


#: Points per local worker when ``workers`` is not given: a worker process costs about a
#: second of CPU to start and fill its caches, more than a small grid takes to evaluate (the
#: default grid's 504 points run in this process).
POINTS_PER_WORKER = 5_000


def quality_path(cfg: SweepConfig) -> Optional[str]:
    if cfg.quality == "bundled":
        p = bundled_quality()
        return str(p) if p else None
    return cfg.quality


def gpu_model_record(path: str) -> Optional[dict[str, Any]]:
    """What the GPU timing model runs a GPU design point with, as sweep.json records it (None for an
    accelerator): the parameter file's sha, the set used and its fixed per-kernel times (us), which
    the report quotes when it explains a 2:4 point slower than dense: the figures of this sweep,
    not those of whatever parameter file is bundled when the report is built."""
    from hwmodel.gpu.design_point import fitted_on, gpu_design, model_params, spec_fitted_note
    from hwmodel.gpu.params import default_path, own_params, set_name_for

    gpu = gpu_design(path)
    if gpu is None:
        return None
    p = model_params(gpu.spec)
    set_name = set_name_for(gpu.spec)
    kernels = {"kernel_dense_us": float(p.kernel_dense_us), "kernel_sparse_us": float(p.kernel_sparse_us)}
    own = own_params(gpu.spec)
    if own is not None:
        # A parameter file of one's own (the spec's params:): its name, sha and what it was fitted on,
        # as notes say it ("fitted on 412 rows of mytimings.csv"); nothing to compare with the bundled file.
        return {"params_file": own.file_name, "params_sha": own.sha256[:16], "params_set": set_name,
                "params_fitted_on": list(own.fitted_on), "params_own": True, "params_note": spec_fitted_note(gpu.spec),
                **kernels}
    # Whose timings the set was fitted on: a GPU not among them (h100_sxm, a card of one's own)
    # runs on another card's efficiencies and fixed costs, which the report says.
    return {"params_file": default_path().name, "params_sha": grid.file_sha(default_path()),
            "params_set": set_name, "params_fitted_on": fitted_on(set_name), **kernels}


def _design_entry(d: Any) -> dict[str, Any]:
    entry = {"name": d.name, "path": d.path, "sha": d.sha, "bits_supported": sorted(d.bits_supported)}
    gpu = gpu_model_record(d.path)
    return {**entry, "gpu_model": gpu} if gpu else entry


def _refuse_inputs_in_the_way(out: Path, inputs: list[tuple[str, Optional[str]]]) -> None:
    """Refuse an ``out`` where a file the sweep writes (sweep.json, points.parquet, sweep.lock) is one
    of its inputs: a JSON config named sweep.json swept with ``--out`` its own folder was replaced by
    the manifest (exit 0), and the same command then failed on the manifest's keys."""
    from hwmodel.limits import same_file

    for name in (engine.MANIFEST, store.TABLE, engine.LOCK):
        for what, given in inputs:
            if given and same_file(out / name, given):
                raise NmlabError(f"--out: {out}: the sweep writes its {name} there, which is your {what} {given}; "
                                 f"give another --out (or rename the {what})")


def run(
    cfg: SweepConfig | str | os.PathLike | None,
    out: str | os.PathLike,
    workers: Optional[int] = None,
    use_ray: bool = False,
    ray_address: Optional[str] = None,
    evaluate: Callable[[dict], dict] = evaluate_point,
    progress: bool = True,
) -> dict[str, Any]:
    """Run (or resume) a sweep into ``out``; returns the stats of :func:`sweeps.engine.run_sweep`.

    ``cfg`` is a config, a YAML path or None (the default grid). The sweep holds ``out/sweep.lock``
    (:data:`sweeps.engine.LOCK`) from before its first write to its last: a folder another sweep
    holds is refused (NmlabError) before anything is planned, started or written.
    """
    from hwmodel.limits import check_output_dir
    from hwmodel.raycluster import is_local, require_cpus

    if not isinstance(cfg, SweepConfig):
        cfg = load_config(cfg)
    # Everything the sweep reads or writes is checked before the first point is evaluated
    # and before anything is written: a bad input leaves no sweep.json and no part files.
    out = check_output_dir(out, "--out")
    # Refused here, in one line, before the plan's notes and before Ray is joined (seconds, or a
    # whole local instance); the lock itself is taken below, after Ray, so a failure to join writes
    # nothing. A sweep that takes it in between is refused there.
    lock = FolderLock(out, engine.LOCK, "nmlab sweep")
    lock.refuse_if_held()
    qpath = quality_path(cfg)
    _refuse_inputs_in_the_way(out, [("sweep config", cfg.source), ("quality table", qpath)])
    if qpath:
        load_quality(qpath)
    plan = make_plan(cfg)
    n = check_grid_size(len(plan))
    if not workers:
        workers = default_workers() if use_ray else min(default_workers(), max(1, -(-n // POINTS_PER_WORKER)))
    if plan.skipped:
        print(f"nmlab sweep: note: points left out where a design has no datatype of that width or an env "
              f"has no trained workload of the pattern ({'; '.join(plan.skipped)})", file=sys.stderr)
    for note in plan.not_swept:
        print(f"nmlab sweep: note: workload not swept: {note}", file=sys.stderr)
    manifest = {
        "format": engine.MANIFEST_FORMAT,
        "version": engine.MANIFEST_VERSION,
        "config": cfg.to_dict(),
        "config_file": cfg.source,
        "quality_table": qpath,
        "workloads": [w.__dict__ for w in plan.workloads],
        "designs": [_design_entry(d) for d in plan.designs],
        "skipped": plan.skipped,
        "workloads_not_swept": plan.not_swept,
        "model_sha": grid.model_sha(),  # in every point id: rows of another model are not reused
        "points": n,
        "complete": False,
    }
    # Ray is joined (or started) before anything is written: an address it cannot join is a bad input too.
    ray = engine.start_ray(ray_address, workers) if use_ray else None
    try:
        if ray is not None and not is_local(ray_address):
            require_cpus(ray, ray_address)
        out.mkdir(parents=True, exist_ok=True)
        # sweep.json, the parts and points.parquet are written under the lock: two sweeps on one
        # folder would overwrite each other's manifest and table (one with fewer points, or another grid's).
        with lock.hold():
            engine.write_manifest(out, manifest)
            stats = engine.run_sweep(
                plan, out, workers=workers, use_ray=use_ray, ray_address=ray_address,
                chunk_size=cfg.chunk_size, evaluate=evaluate, derive=Derivation(qpath), progress=progress,
            )
            engine.write_manifest(out, {**manifest, "points": stats["points"], "complete": True})
    finally:
        if ray is not None:
            ray.shutdown()
    return stats
