"""``nmlab campaign CONFIG.yaml --out DIR``: train every run of a campaign as Ray tasks.

Each run (env x agent x seed, :mod:`rl.campaign_config`) is one Ray task (1 CPU; a GPU share
with ``train: {device: cuda}``) that trains in ``DIR/<run>``. The task itself decides how to
start: with ``--resume`` when the run's checkpoint exists, fresh otherwise (clearing what a run
killed before its first checkpoint left: its own files, not others in its folder). Training resumes
bit-exactly (:mod:`rl.checkpoint`), so a killed campaign, a lost worker or node (Ray retries the task,
``max_retries``) or a second invocation continues where the run stopped, and a finished run is never
trained again.

When a run reaches its steps, the task also makes its workload export ``workload.nmw`` and
its quality rows ``quality.csv`` (return at each of ``quality_bits``), then writes
``done.json``: a run is finished exactly when that file exists. ``python -m rl.publish --root
DIR`` builds the results tables from DIR; ``--bundle DIR/<run> --prebuilt`` copies a finished
run's export and quality rows into the bundled workloads.

Files of a run folder besides those of ``nmlab train``: ``attempts.csv`` (one row per start
and per end of training: time, host, pid, resumed or not, steps trained), ``run.lock`` (held
while a task works on the run, so two tasks never write one run: a worker of a killed driver
that is still alive makes the new task wait until it is gone). ``DIR/campaign.lock`` is held by
the driver (one driver per DIR), recorded in it as ``nmlab campaign (pid, host, since)``: a
second driver on DIR is refused naming it.

Without ``--ray`` a local Ray instance with ``--workers`` CPUs runs the tasks; ``--ray``
(address ``auto``) or ``--ray ADDRESS`` joins a running cluster, whose nodes must all see DIR
(shared storage; checked before anything is written, :func:`_check_out_is_shared`) and have nmlab
installed.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import socket
import sys
import time
from pathlib import Path
from typing import Any, Callable, Optional

from hwmodel.errors import NmlabError
from hwmodel.io import FolderLock, atomic_write, exclusive_lock, is_locked
from rl.campaign_config import CampaignConfig, RunSpec, load_config

DONE_FILE = "done.json"
WORKLOAD_FILE = "workload.nmw"
QUALITY_FILE = "quality.csv"
ATTEMPTS_FILE = "attempts.csv"
RUN_LOCK = "run.lock"
CAMPAIGN_LOCK = "campaign.lock"
ATTEMPT_COLUMNS = ["time", "host", "pid", "event", "resumed", "steps_trained", "steps"]


# ----------------------------------------------------------------------------- run folder state
def _last_parsed(path: Path, parse: Callable[[dict[str, str]], Any]) -> Any:
    """``parse`` of the last row of a CSV log that parses (None without one). Rows that do
    not parse are passed over: status is a report, and a damaged row must stop neither
    ``--status`` nor the driver, which polls it while runs train."""
    from hwmodel.limits import read_text

    try:
        # Bounded like every CSV input (docs/limits.md); a missing, binary or oversized log is passed
        # over as a log with no row that parses (it was a UnicodeDecodeError traceback, or read whole).
        rows = list(csv.DictReader(read_text(path, "log", "csv_bytes").splitlines()))
    except (NmlabError, csv.Error):
        return None
    for row in reversed(rows):
        try:
            return parse(row)
        except (TypeError, ValueError):
            continue
    return None


def read_done(run_dir: Path) -> Optional[dict[str, Any]]:
    """The run's ``done.json`` (None while the run is not finished).

    Written atomically, so one that is there but no JSON object is damaged or not the campaign's:
    one NmlabError line saying so (a list was an AttributeError traceback, a deeply nested or binary
    file a RecursionError / UnicodeDecodeError one, an unreadable one silently trained again)."""
    from hwmodel.limits import is_file, load_json

    path = run_dir / DONE_FILE
    if not is_file(path):
        return None
    done = load_json(path, "campaign")
    if not isinstance(done, dict):
        raise NmlabError(f"campaign: {path}: expected a JSON object (what a finished run writes), got "
                         f"{type(done).__name__}; remove it to train the run again")
    return done


def run_state(run_dir: Path, steps: int) -> dict[str, Any]:
    """Where a run stands: ``steps_reached`` (last training episode logged), ``last_eval``
    (step, mean return) and ``state``: done, running, resumable (has a checkpoint), new."""
    reached = _last_parsed(run_dir / "progress.csv", lambda r: int(r["step"])) or 0
    last_eval = _last_parsed(run_dir / "eval.csv", lambda r: (int(r["step"]), float(r["return_mean"])))
    done = read_done(run_dir)
    if done is not None:
        # A run finished at other steps than the config's now (steps raised or lowered later).
        state = "done" if done.get("steps") == steps else f"done at {done.get('steps')}"
    elif is_locked(run_dir / RUN_LOCK):
        state = "running"
    elif (run_dir / "checkpoint.pt").is_file():
        state = "resumable"
    else:
        state = "new"
    if last_eval and last_eval[0] > reached:
        reached = last_eval[0]
    return {"steps_reached": min(reached, steps), "steps": steps, "last_eval": last_eval, "state": state}


def other_steps(done: list[tuple[RunSpec, Optional[dict[str, Any]]]], steps: int) -> list[tuple[str, Any]]:
    """(run name, its steps) of the finished runs whose ``done.json`` steps are not ``steps``, from
    (run, its :func:`read_done`) pairs: a finished run is never trained again, so raising the
    config's steps later leaves them as they are, and the campaign says so rather than report them
    done at the new steps."""
    return [(run.name, d.get("steps")) for run, d in done if d is not None and d.get("steps") != steps]


def status_table(cfg: CampaignConfig, out: Path) -> str:
    """One line per run: name, steps reached / target, last evaluation, state."""
    lines = [f"{'run':30s} {'steps':>17s}  {'last eval (step: return)':>26s}  state"]
    for run in cfg.runs():
        s = run_state(out / run.name, cfg.steps)
        ev = f"{s['last_eval'][0]}: {s['last_eval'][1]:.1f}" if s["last_eval"] else "-"
        lines.append(f"{run.name:30s} {s['steps_reached']:>8d}/{cfg.steps:<8d}  {ev:>26s}  {s['state']}")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- one run (a Ray task)
def _log_attempt(run_dir: Path, event: str, resumed: bool, steps_trained: str = "", steps: str = "") -> None:
    path = run_dir / ATTEMPTS_FILE
    new = not path.is_file()
    with open(path, "a", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        if new:
            w.writerow(ATTEMPT_COLUMNS)
        w.writerow([time.strftime("%Y-%m-%dT%H:%M:%S"), socket.gethostname(), os.getpid(), event, resumed, steps_trained, steps])


#: What a run writes in its folder before its first checkpoint (besides RUN_LOCK and ATTEMPTS_FILE,
#: which are kept), and the temporary files of its atomic writes: all :func:`_clear` removes.
_RUN_WRITES = ("progress.csv", "tb", "checkpoint.pt", WORKLOAD_FILE, QUALITY_FILE, DONE_FILE)


def _clear(run_dir: Path) -> None:
    """Remove what a run killed before its first checkpoint left (it restarts from step 0).

    Only the run's own files (and their temporaries) go: other files in a folder of the run's name
    (``--out`` given a folder of one's own) are kept."""
    from rl.td3 import RUN_LOG_FILES

    names = (*_RUN_WRITES, *RUN_LOG_FILES)
    for p in run_dir.iterdir():
        if p.name in names or (p.name.endswith(".tmp") and any(p.name.startswith(f".{n}.") for n in names)):
            shutil.rmtree(p) if p.is_dir() and not p.is_symlink() else p.unlink()


def finish_run(run_dir: Path, bits: list[int], episodes: int) -> dict[str, Any]:
    """Workload export and quality rows of a trained run, then ``done.json`` (written last)."""
    from rl.evaluate import append_quality_row, evaluate_run
    from rl.export import export_run

    wl = export_run(run_dir, run_dir / WORKLOAD_FILE)
    quality = run_dir / QUALITY_FILE
    quality.unlink(missing_ok=True)  # a task killed while writing them left some rows
    for b in bits:
        append_quality_row(quality, evaluate_run(run_dir, b, episodes))
    done = {"steps": int(wl.meta["steps"]), "eval_return_mean": float(wl.meta["eval_return_mean"]),
            "eval_return_std": float(wl.meta["eval_return_std"]), "workload": WORKLOAD_FILE, "quality": QUALITY_FILE}
    with atomic_write(run_dir / DONE_FILE, "w") as fh:
        json.dump(done, fh, indent=1)
    return done


def train_run(run: RunSpec, out: str, bits: list[int], episodes: int) -> dict[str, Any]:
    """Train one run to its steps (resuming from its checkpoint when there is one), then finish it.

    Args:
        run: the run (its ``train`` options are those of ``nmlab train``).
        out: the campaign directory; the run trains in ``out/run.name``.
        bits: bitwidths of the quality rows.
        episodes: episodes per quality row.
    Returns ``done.json``'s content.
    """
    from rl import td3
    from rl.checkpoint import checkpoint_path

    run_dir = Path(out) / run.name
    with exclusive_lock(run_dir / RUN_LOCK, blocking=True):
        done = read_done(run_dir)
        if done is not None:
            return done
        resume = checkpoint_path(run_dir).is_file()
        if not resume:
            _clear(run_dir)
        _log_attempt(run_dir, "start", resume)
        opts = {**run.train, "out": str(run_dir), "resume": resume, "progress": False}
        summary = td3.train(td3.Args(**opts), explicit=set(opts) - {"progress"})
        _log_attempt(run_dir, "trained", resume, str(summary["steps_this_session"]), str(summary["steps"]))
        return finish_run(run_dir, bits, episodes)


# ----------------------------------------------------------------------------- the driver
def _start_ray(address: Optional[str], workers: int) -> Any:
    from hwmodel.raycluster import init_ray, is_local

    if is_local(address):
        # Ray lowers its workers' priority by default (niceness 15 on top of ours); a local
        # instance's runs get the driver's own (`nice nmlab campaign ...` sets it).
        os.environ.setdefault("RAY_worker_niceness", "0")
    return init_ray(address, workers)


def _note_untrained(todo: list[RunSpec]) -> None:
    """Name the runs whose steps are all random actions (``steps <= learning_starts``): ``nmlab
    train`` notes it on its stderr, which a Ray task's never reaches the driver's."""
    from rl.args import Args

    starts = {r.name: int(r.train.get("learning_starts", Args.learning_starts)) for r in todo}
    idle = [r.name for r in todo if int(r.train["steps"]) <= starts[r.name]]
    if idle:
        print(f"note: {len(idle)} run(s) ({', '.join(idle)}) have steps <= learning_starts ({starts[idle[0]]}): every step is a "
              f"random action and no gradient update runs; give train: {{learning_starts: N}} below steps to train",
              flush=True)


def _check_gpus(ray: Any, cfg: CampaignConfig, address: Optional[str]) -> None:
    """Refuse GPU runs on a Ray instance without a GPU: Ray would hold their tasks forever, the
    driver waiting with no word (one NmlabError line, before anything is written)."""
    from hwmodel.raycluster import is_local

    if not cfg.on_gpu:
        return
    gpus = float(ray.cluster_resources().get("GPU", 0))
    if gpus < cfg.gpus_per_run:
        raise NmlabError(f"train.device: runs on {cfg.train.get('device')} need {cfg.gpus_per_run:g} GPU each "
                         f"(gpus_per_run), but the {'local Ray instance' if is_local(address) else 'Ray cluster'} has "
                         f"{gpus:g}; Ray would wait for one forever (train on the CPU: leave device out)")


#: Seconds the driver waits for the nodes of a cluster to say whether they see DIR (each starts a worker).
SHARED_CHECK_TIMEOUT_S = 60.0


def _exists(path: str) -> bool:
    """Run on a node of the cluster: whether the driver's file ``path`` is there too."""
    return os.path.exists(path)


def _check_out_is_shared(ray: Any, out: Path) -> None:
    """Refuse a DIR that a node of the cluster does not see (one NmlabError line, before anything is
    written): the runs on that node would write their folders on its own disk, each reported done
    while the driver's DIR, its table and a second invocation never see them.

    A probe file is made where DIR is (DIR itself, else the nearest folder above it that exists),
    each node with CPUs looks for it at the same path (:func:`hwmodel.raycluster.on_every_node`),
    and it is removed. Where the probe cannot be made, the check is left to the writes that follow."""
    import tempfile

    from hwmodel.raycluster import on_every_node

    anchor = out.resolve()
    while not anchor.is_dir() and anchor != anchor.parent:
        anchor = anchor.parent
    try:
        fd, probe = tempfile.mkstemp(prefix=".nmlab-campaign-probe-", dir=anchor)
    except OSError:
        return
    try:
        os.close(fd)
        answers = on_every_node(ray, _exists, probe, timeout_s=SHARED_CHECK_TIMEOUT_S)
    finally:
        os.unlink(probe)
    blind = sorted({node for node, seen in answers if not seen})
    if blind:
        raise NmlabError(f"--out: {out} is not on storage every node of the Ray cluster sees ({len(blind)} node(s) "
                         f"do not: {', '.join(blind)}); the runs write their folders in DIR on the node that trains "
                         f"them: give a DIR on shared storage mounted at the same path on every node")


def _checked_ray(cfg: CampaignConfig, out: Path, address: Optional[str], workers: int) -> Any:
    """Ray joined (or started) and checked to run ``cfg``'s runs in ``out``: GPUs where the runs want
    one, and on a cluster a CPU and a DIR every node sees. A refusal (NmlabError) shuts Ray down."""
    from hwmodel.raycluster import is_local, require_cpus

    ray = _start_ray(address, workers)
    try:
        _check_gpus(ray, cfg, address)
        if not is_local(address):  # a local instance is this machine, with --workers CPUs
            require_cpus(ray, address)
            _check_out_is_shared(ray, out)
    except BaseException:
        ray.shutdown()
        raise
    return ray


def _failure(ray: Any, exc: Exception) -> str:
    """One line for a run that failed: the NmlabError of a bad setting, else the error's last line."""
    cause = getattr(exc, "cause", None)
    if isinstance(cause, NmlabError):
        return str(cause)
    if isinstance(exc, ray.exceptions.RayTaskError) and cause is not None:
        return f"{type(cause).__name__}: {str(cause).strip().splitlines()[-1][:200] if str(cause).strip() else ''}"
    return f"{type(exc).__name__}: {str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ''}"


def run_campaign(cfg: CampaignConfig, out: Path, address: Optional[str] = None, workers: int = 1,
                 progress: bool = True) -> int:
    """Train every unfinished run of ``cfg`` in ``out``; returns 0 when all are done, 1 if some failed."""
    runs = cfg.runs()
    # A DIR another driver holds is refused first, in one line and without touching Ray (joining
    # or starting it takes seconds, and a local instance a whole machine's CPUs). The lock itself
    # is taken below; a driver that takes it in between is refused there, after Ray.
    lock = FolderLock(out, CAMPAIGN_LOCK, "nmlab campaign")
    lock.refuse_if_held()
    # Ray is joined (or started) before anything is written, as by `nmlab sweep --ray`: any failure
    # to join (nothing answers, a refused token, a malformed address) is bad input and leaves
    # neither DIR nor its campaign.lock. Only where a run is left to train: a finished campaign
    # starts no Ray. Runs only become finished, so the runs left under the lock are among these.
    ray = _checked_ray(cfg, out, address, workers) if any(read_done(out / r.name) is None for r in runs) else None
    try:
        out.mkdir(parents=True, exist_ok=True)
        with lock.hold():
            done = [(r, read_done(out / r.name)) for r in runs]  # each done.json read once under the lock
            todo = [r for r, d in done if d is None]
            print(f"campaign {out}: {len(runs)} runs, {len(runs) - len(todo)} done, {len(todo)} to train", flush=True)
            other = other_steps(done, cfg.steps)
            if other:
                print(f"note: {len(other)} finished run(s) trained to other steps than the config's {cfg.steps} "
                      f"({', '.join(f'{name}: {steps}' for name, steps in other)}) are not trained again; to go on, "
                      f"nmlab train --out {out}/RUN --resume --steps N (the run's schedules stay those it started "
                      f"with), or a new --out", flush=True)
            if not todo:
                return 0
            _note_untrained(todo)
            if ray is None:  # a done.json removed since the first look
                ray = _checked_ray(cfg, out, address, workers)
            failed = _drive(ray, cfg, out, todo, progress)
    finally:
        if ray is not None:
            ray.shutdown()
    print(status_table(cfg, out), flush=True)
    return 1 if failed else 0


def _drive(ray: Any, cfg: CampaignConfig, out: Path, todo: list[RunSpec], progress: bool) -> int:
    from tqdm import tqdm

    options: dict[str, Any] = {"num_cpus": 1, "max_retries": cfg.max_retries, "retry_exceptions": False}
    if cfg.on_gpu:
        options["num_gpus"] = cfg.gpus_per_run
    task = ray.remote(train_run).options(**options)
    pending = {task.remote(run, str(out.resolve()), cfg.quality_bits, cfg.quality_episodes): run for run in todo}
    total = cfg.steps * len(todo)
    # A resumed run's earlier steps are the bar's start, not steps trained now (rate, time left).
    before = sum(run_state(out / r.name, cfg.steps)["steps_reached"] for r in todo)
    bar = tqdm(total=total, initial=before, unit="step", disable=not progress, mininterval=5.0, file=sys.stderr)
    failed = 0
    try:
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1, timeout=5.0)
            for ref in ready:
                run = pending.pop(ref)
                try:
                    done = ray.get(ref)
                    tqdm.write(f"done {run.name}: {done['steps']} steps, eval return {done['eval_return_mean']:.1f}", file=sys.stdout)
                except Exception as exc:  # one run failing never stops the others
                    failed += 1
                    tqdm.write(f"failed {run.name}: {_failure(ray, exc)}", file=sys.stdout)
            reached = sum(run_state(out / r.name, cfg.steps)["steps_reached"] for r in todo)
            bar.update(max(0, reached - bar.n))
    finally:
        bar.close()
    sys.stdout.flush()
    return failed


# ----------------------------------------------------------------------------- CLI
def register(sub: Any) -> None:
    """Add ``nmlab campaign``."""
    p = sub.add_parser("campaign", help="train a campaign of runs (envs x agents x seeds) as Ray tasks, resumable",
                       description="Train every run of CONFIG (envs x agents x seeds, YAML version 1; see docs/rl.md) "
                                   "as one Ray task each, resuming runs that have a checkpoint and skipping finished ones.")
    p.add_argument("config", metavar="CONFIG.yaml", help="campaign file (version 1)")
    p.add_argument("--out", required=True, metavar="DIR", help="campaign directory: one folder per run (shared storage on a cluster)")
    p.add_argument("--ray", nargs="?", const="auto", default=None, metavar="ADDRESS",
                   help="join a running Ray cluster (default address: auto); without it a local Ray instance")
    p.add_argument("--workers", type=int, default=None, metavar="K", help="CPUs of the local Ray instance (default: all)")
    p.add_argument("--status", action="store_true", help="print every run's steps, last return and state, then exit")
    p.set_defaults(func=_campaign)


def _campaign(args: Any) -> int:
    cfg = load_config(args.config)
    out = Path(args.out)
    if args.status:
        print(status_table(cfg, out))
        return 0
    workers = args.workers if args.workers is not None else (os.cpu_count() or 1)
    if workers < 1:
        raise NmlabError(f"--workers: must be a positive integer, got {workers}")
    from hwmodel.limits import check_output_dir
    from hwmodel.raycluster import is_local

    if not is_local(args.ray) and args.workers is not None:
        raise NmlabError("--workers: sets the local Ray instance's CPUs; a cluster (--ray ADDRESS) has its own")
    from hwmodel.stop import interrupt_status, sigterm_as_interrupt

    try:
        with sigterm_as_interrupt():  # a scheduler's SIGTERM stops the driver as Ctrl-C does
            return run_campaign(cfg, check_output_dir(out, "--out"), args.ray, workers)
    except KeyboardInterrupt:
        _say_what_survives(args, cfg, out)
        return interrupt_status()


def _say_what_survives(args: Any, cfg: CampaignConfig, out: Path) -> None:
    """After Ctrl-C or SIGTERM: what the runs keep and the command that continues them (it used to print only
    "nmlab campaign: interrupted")."""
    import shlex

    argv = ["nmlab", "campaign", args.config, "--out", args.out]
    if args.ray is not None:
        argv += ["--ray", args.ray]
    if args.workers is not None:
        argv += ["--workers", str(args.workers)]
    runs = cfg.runs()
    # is_file, not read_done: a damaged done.json must not turn this note into a traceback.
    left = [r for r in runs if not (out / r.name / DONE_FILE).is_file()]
    done = len(runs) - len(left)
    kept = sum((out / r.name / "checkpoint.pt").is_file() for r in left)
    fresh = len(left) - kept
    print(f"nmlab campaign: interrupted; {done} of {len(runs)} runs done, {kept} continue from their last checkpoint"
          f"{f' and {fresh} from the start' if fresh else ''} with the same command: {shlex.join(argv)}", file=sys.stderr)
