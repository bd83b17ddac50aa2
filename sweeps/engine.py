"""Run a planned sweep: chunks of points on a local process pool or Ray, column chunks streamed to part files.

The parent holds the grid's point ids only (16 bytes each, a numpy array); a chunk travels to
a worker as columns (one list per point field) and comes back as an Arrow table of its rows,
written straight to a part file. Resuming is the normal path: ids already in part files are
skipped, so re-running the same command after a kill (SIGKILL included) evaluates only what is
missing, and consolidation (dedup by id, grid order, row group by row group: see
:func:`sweeps.store.consolidate`) gives exactly the rows of an uninterrupted run. At most
``2 x workers`` chunks are in flight: memory stays flat however many points the grid has.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np

from hwmodel import stop
from hwmodel.errors import NmlabError
from hwmodel.io import atomic_write
from sweeps import store
from sweeps.evaluate import evaluate_chunk, evaluate_point

MANIFEST = "sweep.json"
#: Held by the sweep that runs in the folder (:class:`hwmodel.io.FolderLock`): one sweep per folder.
LOCK = "sweep.lock"
MANIFEST_FORMAT = "nmlab-sweep"
MANIFEST_VERSION = 1


class _Ids:
    """Grid index -> point id (str) over the parent's compact id array."""

    def __init__(self, ids: np.ndarray):
        self.ids = ids

    def __getitem__(self, i: int) -> str:
        return self.ids[i].decode()

    def many(self, indices: list[int]) -> list[str]:
        """The ids at ``indices`` (one array operation rather than one decode per point)."""
        return self.ids[np.asarray(indices, dtype=np.int64)].astype("U16").tolist()


def auto_chunk_size(remaining: int, workers: int) -> int:
    """About 4 chunks per worker for small grids (balance), at most 4,000 points per part file
    (a chunk is one columnar evaluation: bigger chunks amortize it; the cap bounds worker memory)."""
    return max(1, min(4000, math.ceil(remaining / max(1, workers * 4))))


#: prctl(2) option: the signal the kernel sends this process when its parent dies (Linux).
_PR_SET_PDEATHSIG = 1
#: Off Linux, how often a local worker looks whether its parent is still there (seconds).
PARENT_POLL_S = 1.0


def _pool_context():
    """The start method of local workers: fork on Linux (as Python before 3.14 chose there; the
    workers start in milliseconds and their parent is this process), the default elsewhere."""
    import multiprocessing

    return multiprocessing.get_context("fork" if sys.platform.startswith("linux") else None)


def _end_with_parent(parent: int) -> None:
    """Make this local worker end (SIGTERM) when the sweep process ``parent`` dies, however it
    dies: a worker blocked on the task queue never sees EOF there once the parent is SIGKILLed
    (its siblings hold the queue's write end) and would otherwise live on.

    Linux: ``prctl(PR_SET_PDEATHSIG, SIGTERM)``, then a look at ``getppid()`` for a parent that
    died before that call (the worker was reparented already). The kernel signals when the
    *thread* that forked the worker ends: the pool is made and closed by the one call of
    :func:`run_sweep`, whose thread outlives it. Elsewhere, or where prctl fails: a daemon
    thread that looks at ``getppid()`` every :data:`PARENT_POLL_S`. ``parent`` 0: nothing
    (a forkserver start, whose workers' parent is not the sweep)."""
    if not parent:
        return
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a handler inherited from the parent must not catch it
    armed = False
    if sys.platform.startswith("linux"):
        import ctypes

        try:
            armed = ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0) == 0
        except (OSError, AttributeError):
            armed = False
    if os.getppid() != parent:  # the parent died before the call above
        os.kill(os.getpid(), signal.SIGTERM)
    if not armed:
        def watch() -> None:
            while os.getppid() == parent:
                time.sleep(PARENT_POLL_S)
            os.kill(os.getpid(), signal.SIGTERM)

        threading.Thread(target=watch, name="nmlab-parent-watch", daemon=True).start()


def _worker_start(parent: int = 0) -> None:
    """Start-up of a local worker process, run while the parent computes point ids: ends with
    the sweep process ``parent`` (:func:`_end_with_parent`); the imports every chunk needs, and
    no pandas (pyarrow would import it on the first chunk). Ctrl-C is the parent's alone: a
    worker that took the terminal's SIGINT itself could die holding the result queue's lock (its
    sibling and the parent's pool shutdown then waited forever) and printed its own traceback;
    it finishes its chunk instead and ends when the parent shuts the pool down."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _end_with_parent(parent)
    store.skip_pyarrow_pandas_import()
    import hwmodel.energy  # noqa: F401
    import hwmodel.gpu.design_point  # noqa: F401
    import hwmodel.model  # noqa: F401
    import hwmodel.simulate  # noqa: F401


def _evaluate_to_part(chunk: dict[str, list], evaluate: Callable, out: str) -> tuple[int, str]:
    """Evaluate a chunk and write its part file here, in the worker (the rows never travel to
    the parent, which would write them one after another); returns the rows and the part's path."""
    table = evaluate_chunk(chunk, evaluate)
    return len(table), str(store.write_part(Path(out), table))


def chunk_starts(n: int, size: int, workers: int, taper: bool) -> list[int]:
    """Where chunks of ``n`` points start: ``size`` each; with ``taper``, chunks shrink over the
    last ``2 x workers`` of them (to an eighth of ``size``), so workers finish nearly together
    rather than one idling while another evaluates a whole chunk."""
    starts, at = [], 0
    floor = max(1, size // 8)
    while at < n:
        starts.append(at)
        step = size
        if taper and workers > 1:
            step = max(floor, min(size, math.ceil((n - at) / (2 * workers))))
        at += step
    return starts


class _Pool:
    """Submit/collect interface over a local process pool (or in-process when workers == 1).

    Pool workers write their chunks' part files themselves; ``collect`` returns (tag, (rows,
    path)) for those and (tag, table) for chunks evaluated in this process (the caller writes them).
    """

    def __init__(self, workers: int, evaluate: Callable, out: Path):
        self.evaluate = evaluate
        self.out = str(out)
        self.pool = None
        if workers > 1:
            ctx = _pool_context()
            # The parent's pid, taken before the fork: a worker whose parent differs at start-up was orphaned already.
            parent = os.getpid() if ctx.get_start_method() != "forkserver" else 0
            self.pool = ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_worker_start,
                                            initargs=(parent,))
        self.pending: dict[Any, int] = {}
        self.ready: list = []
        self.interrupted = False
        self._sigint = None
        self._sigterm = None
        if self.pool is not None and threading.current_thread() is threading.main_thread():
            # Ctrl-C is taken where collect() waits, not wherever the main thread happens to be: the
            # default handler's KeyboardInterrupt can land inside concurrent.futures while it holds a
            # lock, which the pool's shutdown then waits for forever. A second Ctrl-C interrupts at
            # once. Set before the workers fork, so a Ctrl-C during their start-up only sets a flag in
            # them. Only the main thread may set handlers: a sweep run from another thread keeps the
            # default (the KeyboardInterrupt is the main thread's, not the sweep's).
            previous = signal.getsignal(signal.SIGINT)
            if previous is not signal.SIG_IGN:
                self._sigint = previous if previous is not None else signal.SIG_DFL
                signal.signal(signal.SIGINT, self._on_sigint)
            if stop.sigterm_is_interrupt():
                # `nmlab sweep` takes SIGTERM as Ctrl-C (hwmodel.stop): here, the same flag.
                self._sigterm = signal.getsignal(signal.SIGTERM)
                signal.signal(signal.SIGTERM, self._on_sigterm)
        if self.pool is not None:
            self.pool.submit(int)  # starts the workers now: their start-up overlaps the parent's id work

    def _on_sigint(self, signum, frame) -> None:
        self.interrupted = True
        self._restore_handlers()

    def _on_sigterm(self, signum, frame) -> None:
        stop.note_sigterm()  # exit status 143
        self.interrupted = True
        self._restore_handlers()

    def _restore_handlers(self) -> None:
        """Both handlers back as they were: a second Ctrl-C or SIGTERM interrupts at once."""
        if self._sigint is not None:
            signal.signal(signal.SIGINT, self._sigint)
            self._sigint = None
        if self._sigterm is not None:
            signal.signal(signal.SIGTERM, self._sigterm)
            self._sigterm = None

    def submit(self, chunk: dict[str, list], tag: int) -> None:
        if self.pool is None:
            self.ready.append((tag, evaluate_chunk(chunk, self.evaluate)))
        else:
            self.pending[self.pool.submit(_evaluate_to_part, chunk, self.evaluate, self.out)] = tag

    def in_flight(self) -> int:
        return len(self.pending)

    def collect(self) -> list:
        """Block until at least one chunk is done; return the finished chunks' (tag, result)."""
        if self.ready:
            out, self.ready = self.ready, []
            return out
        pending = list(self.pending)
        done: set = set()
        while not done:
            if self.interrupted:
                raise KeyboardInterrupt
            done, _ = wait(pending, timeout=0.1, return_when=FIRST_COMPLETED)
        if self.interrupted:
            # Before the results: a SIGTERM sent to the whole process group also ended the workers
            # (theirs is the default action), whose futures then fail with BrokenProcessPool.
            raise KeyboardInterrupt
        out = []
        for fut in done:
            out.append((self.pending.pop(fut), fut.result()))
        return out

    def close(self) -> None:
        self._restore_handlers()
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)


_LOCATORS = ("_workload_path", "_design_path")
#: (the sweep's folder for input copies, the driver's path) -> this worker process's copy of that file.
_local_copies: dict[tuple[str, str], str] = {}


def _materialize(root: str, path: str, ref) -> str:
    """A local copy of an input file shipped through Ray's object store, once per worker process and
    sweep, under ``root``: the folder the sweep's driver made for them and removes when it ends (each
    worker writes into its own subfolder). A worker on another machine, where ``root`` does not exist,
    creates it; the driver removes it there too when the sweep ends (:func:`remove_inputs`, a task on
    every node), and the worker when its process exits normally. Keyed by ``root`` too: a worker that
    serves two sweeps of one driver (a cluster the caller started) never runs the second on the first's
    copy of a file edited in between.

    Keeps the file name: a design's name is its file stem.
    """
    import atexit

    import ray

    local = _local_copies.get((root, path))
    if local is None:
        data = ray.get(ref)
        base = Path(root)
        if not base.exists():
            base.mkdir(parents=True, exist_ok=True)
            atexit.register(shutil.rmtree, str(base), True)
        target = base / f"worker-{os.getpid()}" / str(len(_local_copies)) / Path(path).name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        local = _local_copies[(root, path)] = str(target)
    return local


def ray_evaluate_chunk(points: dict[str, list], evaluate: Callable, blobs: dict[str, Any], root: str):
    """A Ray task: point locators are rewritten to local copies of the shipped inputs (under ``root``),
    then evaluated.

    Workers on other machines need not see the driver's files (only nmlab installed).
    """
    local = dict(points)
    for k in _LOCATORS:
        local[k] = [_materialize(root, path, blobs[path]) for path in points[k]]
    return evaluate_chunk(local, evaluate)


def remove_inputs(root: str) -> None:
    """A Ray task pinned to one node (:meth:`_RayPool.close`): removes the sweep's input copies there."""
    shutil.rmtree(root, ignore_errors=True)


#: Seconds the driver waits, at the end of a sweep on a cluster, for every node to remove its input copies.
CLEANUP_TIMEOUT_S = 30.0


def start_ray(address: Optional[str], workers: int) -> Any:
    """``ray`` after joining the cluster at ``address`` or starting a local instance of ``workers``
    CPUs (:func:`hwmodel.raycluster.init_ray`); None where Ray is already initialized here (its
    owner shuts it down)."""
    from hwmodel.raycluster import import_ray, init_ray

    return None if import_ray().is_initialized() else init_ray(address, workers)


class _RayPool:
    """The same interface over Ray tasks (one task per chunk); input files travel through the object store."""

    def __init__(self, address: Optional[str], workers: int, evaluate: Callable):
        from hwmodel.raycluster import import_ray, is_local

        ray = import_ray()
        self.ray = ray
        self.started = start_ray(address, workers) is not None
        # A local instance's workers share this machine's temp folder; a cluster's may not.
        self.one_machine = self.started and is_local(address)
        self.lost = False  # Ray lost a worker, node or the cluster for good: no node is asked for anything more
        self.task = ray.remote(num_cpus=1)(ray_evaluate_chunk)
        self.evaluate = evaluate
        self.refs: dict[str, Any] = {}   # input file path -> ObjectRef of its bytes (put once)
        self.pending: list = []
        self.tags: dict[Any, int] = {}
        self.capacity = max(1, int(ray.cluster_resources().get("CPU", workers)))
        # The workers' copies of the input files go here and are removed at close(): Ray ends its
        # workers without running their exit handlers, so a worker cannot remove its own.
        self.inputs_root = tempfile.mkdtemp(prefix="nmlab-ray-inputs-")

    def submit(self, chunk: dict[str, list], tag: int) -> None:
        blobs = {}
        for key in _LOCATORS:
            for path in set(chunk[key]):
                if path not in self.refs:
                    self.refs[path] = self.ray.put(Path(path).read_bytes())
                blobs[path] = self.refs[path]
        ref = self.task.remote(chunk, self.evaluate, blobs, self.inputs_root)
        self.pending.append(ref)
        self.tags[ref] = tag

    def in_flight(self) -> int:
        return len(self.pending)

    def collect(self) -> list:
        errors = self.ray.exceptions
        try:
            done, self.pending = self.ray.wait(self.pending, num_returns=1)
            return list(zip([self.tags.pop(ref) for ref in done], self.ray.get(done)))
        except errors.RayTaskError as exc:
            # A user error in a task (e.g. a bad design) stays the one-line NmlabError it was;
            # any other error raised by the model is a bug and keeps its traceback.
            if isinstance(getattr(exc, "cause", None), NmlabError):
                raise exc.cause from None
            raise
        except errors.RayError as exc:
            # Workers or nodes gone for good (Ray has retried the task), or the cluster itself
            # (`ray stop` mid-sweep): nothing the model did; the finished chunks are on disk.
            first = (str(exc).strip().splitlines() or [""])[0][:200]
            self.lost = True
            raise NmlabError(f"--ray: Ray lost a task's worker, node or cluster ({type(exc).__name__}: {first}); "
                             f"the chunks finished so far are kept: the same command continues from them") from None

    def close(self) -> None:
        try:
            for ref in self.pending:
                self.ray.cancel(ref, force=True)
        except Exception:  # a lost cluster cannot cancel; its tasks are gone anyway
            pass
        try:
            if not self.one_machine and not self.lost:
                self._remove_inputs_on_every_node()
        finally:  # a second Ctrl-C while the nodes remove theirs still ends a Ray instance started here
            if self.started:
                self.ray.shutdown()
            shutil.rmtree(self.inputs_root, ignore_errors=True)

    def _remove_inputs_on_every_node(self) -> None:
        """Remove the workers' input copies on each node of the cluster that runs tasks (its
        ``/tmp`` is not the driver's on another machine; :func:`hwmodel.raycluster.on_every_node`),
        waited for at most :data:`CLEANUP_TIMEOUT_S`. A node lost during the sweep keeps its copies.
        Where Ray cannot be asked (the cluster lost since the last chunk, a Ray whose API differs) the
        sweep's outcome stands and one line on stderr says where the copies may stay."""
        from hwmodel.raycluster import on_every_node

        try:
            on_every_node(self.ray, remove_inputs, self.inputs_root, timeout_s=CLEANUP_TIMEOUT_S)
        except Exception as exc:
            first = (str(exc).strip().splitlines() or [""])[0][:200]
            print(f"nmlab sweep: note: the workers' input copies may stay in {self.inputs_root} on the cluster's "
                  f"nodes (removing them: {type(exc).__name__}: {first})", file=sys.stderr)


def write_manifest(out: Path, manifest: dict[str, Any]) -> None:
    with atomic_write(out / MANIFEST, "w") as fh:
        json.dump(manifest, fh, indent=1, default=str)
    (out / MANIFEST).chmod(0o644)


def read_manifest(out: Path) -> dict[str, Any]:
    p = out / MANIFEST
    if not p.is_file():
        raise NmlabError(f"sweep: {out} holds no finished sweep ({MANIFEST} missing); run nmlab sweep --out {out}")
    from hwmodel.limits import load_json

    data = load_json(p, "sweep")  # bounded (json_bytes, nesting, NaN), like every JSON input
    if not isinstance(data, dict):
        raise NmlabError(f"sweep: {p}: expected a JSON object (a sweep manifest), got {type(data).__name__}")
    if data.get("format") != MANIFEST_FORMAT or data.get("version") != MANIFEST_VERSION:
        raise NmlabError(f"sweep: {p}: format/version: expected {MANIFEST_FORMAT} {MANIFEST_VERSION}")
    return data


def run_sweep(
    grid: Any,
    out: str | os.PathLike,
    workers: int = 1,
    ray_address: Optional[str] = None,
    use_ray: bool = False,
    chunk_size: Optional[int] = None,
    evaluate: Callable[[dict], dict] = evaluate_point,
    derive: Optional[Any] = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Evaluate every point not yet stored in ``out``, then rebuild ``out/points.parquet``.

    Args:
        grid: the grid, a :class:`sweeps.grid.Plan` (``point_ids()``, ``columns()``, ``patterns_at()``).
        out: output directory (created).
        workers: local processes (pool size, or CPUs of a Ray instance started here).
        use_ray, ray_address: run chunks as Ray tasks; address None/"local" starts a local instance.
        chunk_size: points per task and part file; None picks one.
        evaluate: point -> row (module-level function so workers can import it); with a
            ``columns`` attribute (columns -> Arrow table) whole chunks are evaluated at once.
        derive: adds derived columns as the table is written: a :class:`sweeps.derived.Derivation`
            (streamed row group by row group), or None.
        progress: show a tqdm bar on stderr.

    Returns stats: points, evaluated now, already done, seconds, rows.
    """
    out = Path(out)
    store.parts_dir(out).mkdir(parents=True, exist_ok=True)
    store.clean_temporaries(out)
    t0 = time.perf_counter()
    # A fresh sweep starts its local workers first: their start-up overlaps the work below.
    pool = _Pool(workers, evaluate, out) if not use_ray and not store.list_parts(out) else None
    try:
        return _run(grid, out, pool, workers, ray_address, use_ray, chunk_size, evaluate, derive, progress, t0)
    finally:
        if pool is not None:
            pool.close()


def _run(grid, out: Path, pool, workers: int, ray_address: Optional[str], use_ray: bool, chunk_size: Optional[int],
         evaluate: Callable, derive: Any, progress: bool, t0: float) -> dict[str, Any]:
    from tqdm import tqdm

    ids = np.asarray(grid.point_ids(), dtype="S16")
    n_points = len(ids)
    keys = store.id_keys(ids)                  # hex ids as uint64: sorting 16-byte strings is slower
    _, first = np.unique(ids if keys is None else keys, return_index=True)
    keep = np.sort(first)                      # grid positions of each distinct id's first occurrence
    stored = store.done_ids(out)
    stored_keys = store.id_keys(stored) if keys is not None else None
    done = (np.isin(ids[keep], stored) if stored_keys is None else np.isin(keys[keep], stored_keys))
    remaining = keep[~done]
    size = chunk_size or auto_chunk_size(len(remaining), workers)

    if pool is None:
        pool = _RayPool(ray_address, workers, evaluate) if use_ray else _Pool(workers, evaluate, out)
    limit = 2 * (pool.capacity if use_ray else workers)
    bar = tqdm(total=len(keep), initial=int(done.sum()), unit="pt", desc="sweep", file=sys.stderr,
               disable=not progress, mininterval=0.5, smoothing=0.1)
    evaluated = 0
    lookup = _Ids(ids)
    bounds = chunk_starts(len(remaining), size, workers if not use_ray else pool.capacity, chunk_size is None)
    spans = list(zip(bounds, bounds[1:] + [len(remaining)]))
    stream = None
    if len(stored) == 0 and len(remaining) and derive is not None:
        # A fresh sweep writes points.parquet as chunks finish (store.TableStream), not all at the end.
        dense = np.flatnonzero(grid.patterns_at(remaining) == "dense")
        stream = store.TableStream(out, spans, ids[remaining], int(dense[-1]) + 1 if len(dense) else 0, derive)
    try:
        starts = iter(enumerate(spans))
        exhausted = False
        while True:
            while not exhausted and pool.in_flight() < limit and not getattr(pool, "ready", None):
                job = next(starts, None)
                if job is None:
                    exhausted = True
                    break
                k, (a, b) = job
                pool.submit(grid.columns(remaining[a:b].tolist(), lookup), k)
            if pool.in_flight() == 0 and not getattr(pool, "ready", None):
                break
            for k, result in pool.collect():
                if isinstance(result, tuple):  # a pool worker wrote the part
                    n_rows, path = result
                else:
                    path, n_rows = store.write_part(out, result), len(result)
                evaluated += n_rows
                bar.update(n_rows)
                if stream is not None:
                    stream.add(k, path)
        if getattr(pool, "interrupted", False):
            raise KeyboardInterrupt  # a Ctrl-C after the last collect(), which would take it otherwise
    except BaseException:
        if stream is not None:
            stream.abort()
        raise
    finally:
        bar.close()
        pool.close()
    rows = stream.finish() if stream is not None else None
    if rows is None:
        rows = store.consolidate(out, ids[keep], derive)
    if rows != len(keep):
        raise NmlabError(f"sweep: {out}: table has {rows} rows for {len(keep)} points (parts missing?)")
    return {"points": len(keep), "evaluated": evaluated, "already_done": int(done.sum()),
            "seconds": time.perf_counter() - t0, "rows": rows, "chunk_size": size,
            "duplicates_in_grid": n_points - len(keep)}
