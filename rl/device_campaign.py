"""The reduced-scale campaign on a lent GPU machine (the device tool), and its results back here.

The device machine (one H200, 16 cores) is lent for at most 30 minutes per session, one
command at a time (10 minutes each), with the repository copied over and at most 8 files
(16 MiB each, 64 MiB together) coming back. So runs are started detached, survive between
commands while the machine stays warm, and come back packed (docs/rl.md, "Campaign on a
GPU machine", has the exact sequence of calls)::

    python -m rl.device_campaign launch --root R --steps 200000 --jobs 16 --device cuda [--only NAME...] [--wait S]
    python -m rl.device_campaign wait --root R --seconds S     # print progress until done or S seconds
    python -m rl.device_campaign stop --root R                 # end the driver and every run (SIGINT, then SIGKILL)
    python -m rl.device_campaign pack --root R --out OUTDIR    # logs, workloads, quality rows -> <= 8 files
    python -m rl.device_campaign unpack FILES... --root runs/device
    python -m rl.device_campaign todo --root runs/reduced      # names for --only: runs not finished here
    python -m rl.device_campaign status --root R

The run list, run names and ``nmlab train`` command lines are :mod:`rl.campaign`'s; a run is
started with ``--resume`` when it has a checkpoint, so ``launch`` also continues runs here.
``launch`` spawns a detached driver (its own session) that keeps ``--jobs`` runs going, each
in its own session too, logging to ``R/<run>.log``; the driver's state (runs started, pids,
device, exit status) is ``R/device_campaign.json``.

``pack`` writes a gzip-compressed tar split into parts ``device_runs.tar.gz.NNN`` plus the
manifest ``device_manifest.json`` (format ``nmlab-device-campaign`` version 1: device
metadata, git commit, per run the steps reached, whether it is complete, which files were
packed and their SHA-256). Per run: the CSV logs and ``args.json``, the tail of its training
log, and for a complete run (checkpoint at the target steps) its exported workload
(``workload.nmw``) and quality rows (``quality.csv``, :mod:`rl.evaluate`); checkpoints are
too big to bring back in general, so only incomplete runs' checkpoints go in, furthest run
first, while they fit. ``unpack`` reads only regular files of those names (no links, no
absolute paths, no ``..``), checks every hash and moves whole run folders into place;
nothing in the archive is executed or unpickled (checkpoints load later with
``weights_only=True``).
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import hashlib
import io
import json
import os
import platform
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
import zlib
from pathlib import Path, PurePosixPath
from typing import Any, Callable, Iterable, Optional

from hwmodel.errors import NmlabError
from hwmodel.io import atomic_write
from rl import campaign

FORMAT_NAME = "nmlab-device-campaign"
FORMAT_VERSION = 1
STATE_FILE = "device_campaign.json"  #: the driver's state, in the campaign root
DRIVER_LOG = "driver.log"
DRIVER_PID_FILE = "driver.pid"
MANIFEST_FILE = "device_manifest.json"
PART_PREFIX = "device_runs.tar.gz."  #: parts are PART_PREFIX + 3 digits
RUN_INFO_FILE = "device_run.json"  #: a run's manifest entry, packed into its folder
WORKLOAD_FILE = "workload.nmw"
QUALITY_FILE = "quality.csv"
TRAIN_LOG_FILE = "train.log"  #: tail of R/<run>.log
LOG_FILES = ("args.json", "eval.csv", "progress.csv", "sad.csv", "losses.csv", "method.csv")
CHECKPOINT_FILE = "checkpoint.pt"
#: Every file name a packed run folder may hold (unpack refuses anything else).
PACKED_FILES = frozenset(LOG_FILES + (RUN_INFO_FILE, TRAIN_LOG_FILE, WORKLOAD_FILE, QUALITY_FILE, CHECKPOINT_FILE))
QUALITY_BITS = (32, 16, 8, 4)
#: CUDA runs at a time when ``--mps`` was asked for but the MPS server did not start.
NO_MPS_CUDA_JOBS = 4
#: A CUDA run failing within this many seconds of its start turns CUDA off for the rest.
CUDA_GRACE_S = 300.0
MIB = 2**20
#: The device tool's limits on files coming back (docs: 8 files, 16 MiB each, 64 MiB together),
#: with margins: parts of 15 MiB, 62 MiB in all.
DEFAULT_MAX_FILES = 8
DEFAULT_PART_BYTES = 15 * MIB
DEFAULT_TOTAL_BYTES = 62 * MIB
TRAIN_LOG_TAIL_BYTES = 32 * 1024
#: Bytes gzip and zlib may hold back before they reach the file (a few hundred kB at most).
COMPRESSOR_SLACK = MIB
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
#: Unpacked data larger than this is refused (a damaged or hostile archive).
MAX_UNPACKED_BYTES = 4 * 2**30


# ----------------------------------------------------------------------------- runs
@dataclasses.dataclass(frozen=True)
class RunSpec:
    """One campaign run: env id, label (N:M pattern, 'dense', 'rlx2' or 'gmp'), seed, folder."""

    env: str
    label: str
    seed: int
    run_dir: Path

    @property
    def name(self) -> str:
        return self.run_dir.name


def campaign_specs(root: Path, seeds: int = 2, only: Optional[Iterable[str]] = None) -> list[RunSpec]:
    """The runs of :func:`rl.campaign.campaign_runs` under ``root`` in priority order, restricted
    to the names in ``only`` (an unknown name is a one-line error)."""
    specs = [RunSpec(env, label, seed, root / campaign.run_name(env, label, seed))
             for env, label, seed in campaign.campaign_runs(seeds)]
    if only:
        names = {s.name for s in specs}
        unknown = [n for n in only if n not in names]
        if unknown:
            raise NmlabError(f"only: {unknown[0]!r} is not a campaign run (e.g. {specs[0].name!r}, seeds < {seeds})")
        wanted = set(only)
        specs = [s for s in specs if s.name in wanted]
    return specs


def logged_step(run_dir: Path) -> int:
    """Largest step in the run's progress.csv / eval.csv (0 without them); a torn last line is skipped."""
    best = 0
    for name in ("progress.csv", "eval.csv"):
        path = run_dir / name
        if not path.is_file():
            continue
        with open(path, newline="") as fh:
            for row in csv.DictReader(fh):
                try:
                    best = max(best, int(row["step"]))
                except (TypeError, ValueError, KeyError):
                    continue
    return best


def packed_info(run_dir: Path) -> Optional[dict]:
    """The ``device_run.json`` of an unpacked run folder, or None."""
    path = run_dir / RUN_INFO_FILE
    if not path.is_file():
        return None
    try:
        info = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return info if isinstance(info, dict) else None


def is_complete(run_dir: Path, steps: int, checkpoint_step: Optional[int] = None) -> bool:
    """A run is complete when its checkpoint reached ``steps``, or when it came back from a
    device machine complete (``device_run.json``) at ``steps`` or more (no checkpoint then)."""
    step = campaign.run_step(run_dir) if checkpoint_step is None else checkpoint_step
    if step is not None and step >= steps:
        return True
    info = packed_info(run_dir)
    return bool(info and info.get("complete") and int(info.get("target_steps", 0)) >= steps)


def learning_steps_per_s(run_dir: Path) -> Optional[float]:
    """Environment steps per second of the last session's learning phase (from progress.csv:
    steps and wall time of its episodes after ``learning_starts``; evaluations included)."""
    try:
        args = json.loads((run_dir / "args.json").read_text())
        with open(run_dir / "progress.csv", newline="") as fh:
            rows = [(int(r["step"]), float(r["time_s"])) for r in csv.DictReader(fh) if r.get("time_s")]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    # time_s restarts at 0 in a resumed session: keep the rows of the last session only.
    start = 0
    for i in range(1, len(rows)):
        if rows[i][1] < rows[i - 1][1]:
            start = i
    rows = [r for r in rows[start:] if r[0] > int(args.get("learning_starts", 0))]
    if len(rows) < 2 or rows[-1][1] <= rows[0][1]:
        return None
    return round((rows[-1][0] - rows[0][0]) / (rows[-1][1] - rows[0][1]), 2)


# ----------------------------------------------------------------------------- commands
def default_trainer() -> list[str]:
    """``python -m hwmodel`` is ``nmlab`` without an installed entry point (the device machine
    has the source tree only); the uninstalled dispatcher registers every package's commands."""
    return [sys.executable, "-m", "hwmodel"]


def train_command(spec: RunSpec, steps: int, resume: bool, device: str, trainer: Optional[list[str]] = None) -> list[str]:
    """:func:`rl.campaign.command` with its ``nmlab`` replaced by ``trainer`` and ``--device`` added."""
    cmd = campaign.command(spec.env, spec.label, spec.seed, spec.run_dir, steps, resume)
    i = cmd.index("train")
    return cmd[: i - 1] + list(trainer or default_trainer()) + cmd[i:] + ["--device", device]


def repo_root() -> Path:
    """The source tree this module runs from (trainers get it first on PYTHONPATH)."""
    return Path(__file__).resolve().parents[1]


def child_env(extra: Optional[dict[str, str]] = None) -> dict[str, str]:
    """Environment of the driver and trainers: one thread per process, this source tree first."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    env["PYTHONPATH"] = os.pathsep.join([str(repo_root())] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    env.update(extra or {})
    return env


# ----------------------------------------------------------------------------- state
def read_state(root: Path) -> dict:
    """The driver's state file (empty skeleton when there is none)."""
    path = root / STATE_FILE
    if path.is_file():
        try:
            state = json.loads(path.read_text())
            if isinstance(state, dict):
                state.setdefault("runs", {})
                return state
        except ValueError:
            pass
    return {"format": f"{FORMAT_NAME}-state", "version": FORMAT_VERSION, "runs": {}}


def write_state(root: Path, state: dict) -> None:
    with atomic_write(root / STATE_FILE, "w") as fh:
        json.dump(state, fh, indent=1)


def driver_pid(root: Path) -> Optional[int]:
    """Pid of the root's driver: ``driver.pid`` (written by launch), else the state's."""
    try:
        return int((root / DRIVER_PID_FILE).read_text().strip())
    except (OSError, ValueError):
        return read_state(root).get("driver_pid")


def _utc() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def pid_alive(pid: Optional[int]) -> bool:
    """True when ``pid`` runs and is not a zombie."""
    if not pid:
        return False
    try:
        os.kill(int(pid), 0)
    except (ProcessLookupError, PermissionError, ValueError):
        return False
    try:
        stat = Path(f"/proc/{int(pid)}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def _cmdline(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return []


def _option_path(pid: int, argv: list[str], option: str) -> Optional[str]:
    """The resolved path given to ``option`` on a process's command line (relative to its cwd)."""
    if option not in argv or argv.index(option) + 1 >= len(argv):
        return None
    try:
        cwd = os.readlink(f"/proc/{pid}/cwd")
    except OSError:
        return None
    return str((Path(cwd) / argv[argv.index(option) + 1]).resolve())


def _is_our_trainer(pid: Optional[int], run_dir: str | Path) -> bool:
    """The process is alive and is the trainer of ``run_dir`` (guards against a reused pid)."""
    if not pid_alive(pid):
        return False
    return _option_path(int(pid), _cmdline(int(pid)), "--out") == str(Path(run_dir).resolve())


def _is_our_driver(pid: Optional[int], root: Path) -> bool:
    """The process is alive and is this module's driver of ``root``."""
    if not pid_alive(pid):
        return False
    argv = _cmdline(int(pid))
    return "drive" in argv and "rl.device_campaign" in argv and _option_path(int(pid), argv, "--root") == str(root.resolve())


# ----------------------------------------------------------------------------- driver
def drive(root: Path, specs: list[RunSpec], steps: int, jobs: int, cuda_jobs: int = 0,
          trainer: Optional[list[str]] = None, poll_s: float = 5.0, extra_env: Optional[dict[str, str]] = None,
          log: Callable[[str], None] = print) -> dict:
    """Train every run of ``specs`` that is not complete, at most ``jobs`` at a time and at most
    ``cuda_jobs`` of them on CUDA (the rest on the CPU), in order; returns the final state.

    A CUDA run that fails within ``CUDA_GRACE_S`` of its start (CUDA broken on the machine, not
    tested before) moves every later run to the CPU and is started again there, once.

    Args:
        root: campaign root (run folders, logs, state file).
        specs: runs in priority order.
        steps: target environment steps per run.
        jobs: runs at a time.
        cuda_jobs: how many of the running runs may use ``--device cuda``.
        trainer: command prefix replacing ``nmlab`` (default :func:`default_trainer`).
        poll_s: seconds between checks of the running processes.
        extra_env: variables added to the trainers' environment (MPS pipe directory...).
        log: where progress lines go.
    """
    root.mkdir(parents=True, exist_ok=True)
    state = read_state(root)
    state.update({"driver_pid": os.getpid(), "driver_started_utc": _utc(), "steps": steps, "jobs": jobs,
                  "cuda_jobs": cuda_jobs, "queue": [s.name for s in specs]})
    write_state(root, state)
    env = child_env(extra_env)
    pending = list(specs)
    running: dict[str, tuple[subprocess.Popen, Any]] = {}
    retried: set[str] = set()  # runs that failed on cuda and run again on the cpu
    while pending or running:
        while pending and len(running) < jobs:
            spec = pending.pop(0)
            step = campaign.run_step(spec.run_dir)
            if is_complete(spec.run_dir, steps, step):
                log(f"{time.strftime('%H:%M:%S')} skip {spec.name}: complete")
                continue
            resume = step is not None and step >= 0
            if not resume and spec.run_dir.exists():
                # No checkpoint to continue from: keep what is there aside (never delete logs).
                aside = root / "_replaced" / f"{spec.name}.{time.strftime('%Y%m%dT%H%M%S')}"
                aside.parent.mkdir(exist_ok=True)
                spec.run_dir.rename(aside)
            spec.run_dir.mkdir(parents=True, exist_ok=True)
            on_cuda = sum(1 for _, r in running.values() if r["device"] == "cuda")
            device = "cuda" if on_cuda < cuda_jobs and spec.name not in retried else "cpu"
            cmd = train_command(spec, steps, resume, device, trainer)
            fh = open(root / f"{spec.name}.log", "a")
            proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env, start_new_session=True)
            fh.close()  # the child holds its own copy
            record = {"device": device, "pid": proc.pid, "resumed": resume, "cmd": cmd, "started_utc": _utc(),
                      "ended_utc": None, "rc": None, "t0": time.time()}
            state["runs"][spec.name] = record
            running[spec.name] = (proc, record)
            write_state(root, state)
            log(f"{time.strftime('%H:%M:%S')} start {spec.name} on {device}{' (resume)' if resume else ''}")
        time.sleep(poll_s)
        for name, (proc, record) in list(running.items()):
            if proc.poll() is not None:
                record.update(rc=proc.returncode, ended_utc=_utc())
                del running[name]
                if (proc.returncode != 0 and record["device"] == "cuda" and name not in retried
                        and time.time() - record["t0"] < CUDA_GRACE_S):
                    cuda_jobs = state["cuda_jobs"] = 0
                    retried.add(name)
                    pending.insert(0, next(s for s in specs if s.name == name))
                    state.setdefault("notes", []).append(f"{_utc()} {name} failed on cuda (rc {proc.returncode}): "
                                                         "every later run on the cpu")
                    log(f"{time.strftime('%H:%M:%S')} {name} failed on cuda (rc {proc.returncode}): cuda off, again on cpu")
                write_state(root, state)
                log(f"{time.strftime('%H:%M:%S')} done {name} rc {proc.returncode}")
    state["driver_ended_utc"] = _utc()
    write_state(root, state)
    return state


# ----------------------------------------------------------------------------- MPS
def _mps_control() -> Optional[str]:
    return shutil.which("nvidia-cuda-mps-control") or next(
        (p for p in ("/usr/local/nvidia/bin/nvidia-cuda-mps-control", "/usr/bin/nvidia-cuda-mps-control") if os.path.exists(p)), None)


def mps_env(root: Path) -> dict[str, str]:
    """Pipe and log directories of this campaign's MPS server (clients need the same pipe)."""
    base = root.resolve() / "mps"
    return {"CUDA_MPS_PIPE_DIRECTORY": str(base / "pipe"), "CUDA_MPS_LOG_DIRECTORY": str(base / "log")}


def start_mps(root: Path) -> tuple[bool, str]:
    """Start an MPS server so the runs' many tiny kernels share the GPU instead of time-slicing
    it; checked with a CUDA allocation, and shut down again when that fails. (ok, note)."""
    ctl = _mps_control()
    if ctl is None:
        return False, "nvidia-cuda-mps-control not found"
    env = {**os.environ, **mps_env(root)}
    for d in mps_env(root).values():
        Path(d).mkdir(parents=True, exist_ok=True)
    try:
        subprocess.run([ctl, "-d"], env=env, timeout=30, check=True, start_new_session=True)
        probe = subprocess.run([sys.executable, "-c", "import torch; print(float(torch.ones(8, device='cuda').sum()))"],
                               env=env, timeout=120, capture_output=True, text=True)
        if probe.returncode == 0 and probe.stdout.strip() == "8.0":
            return True, "MPS server started"
        note = (probe.stderr.strip().splitlines() or ["no output"])[-1][:200]
    except (subprocess.SubprocessError, OSError) as exc:
        note = str(exc)[:200]
    stop_mps(root)
    return False, f"MPS failed, running without it: {note}"


def stop_mps(root: Path) -> None:
    ctl = _mps_control()
    if ctl is not None:
        try:
            subprocess.run([ctl], input="quit\n", text=True, env={**os.environ, **mps_env(root)}, timeout=30,
                           capture_output=True)
        except (subprocess.SubprocessError, OSError):
            pass


# ----------------------------------------------------------------------------- launch / wait / stop
def launch(root: Path, steps: int, jobs: int, device: str, cuda_jobs: Optional[int], only: Optional[list[str]],
           seeds: int = 2, trainer: Optional[list[str]] = None, mps: bool = False, poll_s: float = 5.0) -> int:
    """Start the detached driver for the incomplete runs; returns its pid (0 when nothing is to do)."""
    if jobs < 1:
        raise NmlabError(f"jobs: must be a positive integer, got {jobs}")
    if device not in ("cpu", "cuda"):
        raise NmlabError(f"device: must be 'cpu' or 'cuda', got {device!r}")
    cuda_jobs = (jobs if device == "cuda" else 0) if cuda_jobs is None else cuda_jobs
    if cuda_jobs < 0 or (device == "cpu" and cuda_jobs):
        raise NmlabError(f"cuda_jobs: must be >= 0 and needs --device cuda, got {cuda_jobs}")
    if cuda_jobs and trainer is None:
        import torch

        if not torch.cuda.is_available():
            raise NmlabError(f"device: 'cuda' asked for but torch {torch.__version__} sees no CUDA GPU")
    root.mkdir(parents=True, exist_ok=True)
    state = read_state(root)
    if _is_our_driver(driver_pid(root), root):
        raise NmlabError(f"root: a driver (pid {driver_pid(root)}) is already running on {root}; stop it first")
    specs = [s for s in campaign_specs(root, seeds, only) if not is_complete(s.run_dir, steps)]
    if not specs:
        print("launch: every run is complete; nothing to start")
        return 0
    extra = {}
    if mps and cuda_jobs:
        ok, note = start_mps(root)
        if ok:
            extra = mps_env(root)
        elif cuda_jobs > NO_MPS_CUDA_JOBS:
            # Without MPS the processes' contexts time-slice the GPU: many of them would stall each other.
            cuda_jobs = NO_MPS_CUDA_JOBS
            note += f"; at most {cuda_jobs} runs on cuda"
        print(f"launch: {note}", flush=True)
        state["mps"], state["mps_note"] = ok, note
        write_state(root, state)
    cmd = [sys.executable, "-m", "rl.device_campaign", "drive", "--root", str(root), "--steps", str(steps),
           "--jobs", str(jobs), "--cuda-jobs", str(cuda_jobs), "--seeds", str(seeds), "--poll", str(poll_s),
           "--only", *[s.name for s in specs]]
    if trainer is not None:
        cmd += ["--trainer", shlex.join(trainer)]
    if extra:
        cmd += ["--mps-env"]
    with open(root / DRIVER_LOG, "a") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=child_env(), start_new_session=True,
                                cwd=os.getcwd())
    # Its own file (the driver owns the state file): known at once, before the driver is up.
    with atomic_write(root / DRIVER_PID_FILE, "w") as fh:
        fh.write(f"{proc.pid}\n")
    print(f"launch: driver pid {proc.pid}: {len(specs)} runs, {jobs} at a time ({cuda_jobs} on cuda): "
          + " ".join(s.name for s in specs), flush=True)
    return proc.pid


def status_rows(root: Path) -> list[dict]:
    """Per run the driver started: device, whether it is running, exit status, logged step, steps/s."""
    state = read_state(root)
    rows = []
    for name, rec in state["runs"].items():
        run_dir = root / name
        alive = rec.get("rc") is None and _is_our_trainer(rec.get("pid"), str(run_dir))
        rows.append({"name": name, "device": rec.get("device"), "running": alive, "rc": rec.get("rc"),
                     "logged_step": logged_step(run_dir), "steps_per_s": learning_steps_per_s(run_dir)})
    return rows


def print_status(root: Path) -> None:
    state = read_state(root)
    driver = "running" if _is_our_driver(driver_pid(root), root) else "not running"
    print(f"{time.strftime('%H:%M:%S')} driver {driver}; target {state.get('steps')} steps", flush=True)
    for r in status_rows(root):
        what = "running" if r["running"] else f"ended rc {r['rc']}"
        print(f"  {r['name']:24s} {r['device'] or '-':5s} {what:14s} {r['logged_step']:>8} steps  "
              f"{r['steps_per_s'] if r['steps_per_s'] is not None else '-'} steps/s", flush=True)


def active(root: Path) -> bool:
    """True while the driver or any trainer it started is alive."""
    state = read_state(root)
    if _is_our_driver(driver_pid(root), root):
        return True
    return any(r.get("rc") is None and _is_our_trainer(r.get("pid"), str(root / n)) for n, r in state["runs"].items())


def wait(root: Path, seconds: float, interval: float = 60.0) -> bool:
    """Print the status every ``interval`` s until nothing runs or ``seconds`` pass; True when all ended."""
    deadline = time.time() + seconds
    next_print = time.time()
    while True:
        if not active(root):
            print_status(root)
            return True
        if time.time() >= deadline:
            print_status(root)
            return False
        if time.time() >= next_print:
            print_status(root)
            next_print = time.time() + interval
        time.sleep(min(5.0, max(0.1, deadline - time.time())))


def stop(root: Path, grace_s: float = 30.0) -> list[str]:
    """End the driver (SIGTERM: it starts nothing more), then every trainer it started: SIGINT
    to its process group (the trainer's ``finally`` closes its logs; its last checkpoint stays),
    SIGKILL after ``grace_s``. Only processes whose command line names this root's runs are
    signalled. Returns the names of the runs that were stopped."""
    driver = driver_pid(root)
    if _is_our_driver(driver, root):
        os.kill(int(driver), signal.SIGTERM)
        t_end = time.time() + 10
        while pid_alive(driver) and time.time() < t_end:
            time.sleep(0.1)
        if pid_alive(driver):
            os.kill(int(driver), signal.SIGKILL)
    state = read_state(root)  # the driver may have recorded runs that ended meanwhile
    victims = {n: int(r["pid"]) for n, r in state["runs"].items()
               if r.get("rc") is None and _is_our_trainer(r.get("pid"), str(root / n))}
    for pid in victims.values():
        try:
            os.killpg(pid, signal.SIGINT)
        except ProcessLookupError:
            pass
    t_end = time.time() + grace_s
    while any(pid_alive(p) for p in victims.values()) and time.time() < t_end:
        time.sleep(0.2)
    for name, pid in victims.items():
        if _is_our_trainer(pid, str(root / name)):
            try:
                os.killpg(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    for name, rec in state["runs"].items():
        if rec.get("rc") is None:
            rec.update(rc="stopped", ended_utc=_utc())
    write_state(root, state)
    if state.get("mps"):
        stop_mps(root)
    return sorted(victims)


# ----------------------------------------------------------------------------- device metadata
def _run_text(cmd: list[str]) -> Optional[str]:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 and out.stdout.strip() else None


def device_info() -> dict:
    """Where the runs were trained: GPU (None without one), driver, torch / CUDA versions, CPU."""
    import torch

    gpu = driver = None
    smi = _run_text(["nvidia-smi", "--query-gpu=name,driver_version", "--format=csv,noheader"]) if shutil.which("nvidia-smi") else None
    if smi:
        first = smi.splitlines()[0].split(",")
        gpu, driver = first[0].strip(), first[1].strip() if len(first) > 1 else None
    elif torch.cuda.is_available():
        gpu = torch.cuda.get_device_name(0)
    cpu_model = None
    try:
        cpu_model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                          if line.startswith("model name")), None)
    except OSError:
        pass
    return {"gpu": gpu, "gpu_count": torch.cuda.device_count() if torch.cuda.is_available() else 0, "driver": driver,
            "torch": torch.__version__, "cuda": torch.version.cuda, "cpu_model": cpu_model or platform.processor() or None,
            "cpu_cores": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()}


def code_hashes() -> dict[str, str]:
    """SHA-256 of the Python files of ``rl/`` and ``hwmodel/`` (the device trains with the working
    tree as it was copied, uncommitted edits included; these say exactly what ran)."""
    base = repo_root()
    files = sorted(list((base / "rl").glob("*.py")) + list((base / "hwmodel").rglob("*.py")))
    return {str(f.relative_to(base)): _sha256_file(f) for f in files}


def code_drift(manifest: dict) -> Optional[list[str]]:
    """Files whose packed hash differs from the manifest's git commit here (None when that
    commit or git is unknown here)."""
    commit, hashes = manifest.get("git_commit"), manifest.get("code_sha256") or {}
    git = ["git", "-C", str(repo_root())]
    try:
        if not commit or not hashes or subprocess.run(git + ["cat-file", "-e", f"{commit}^{{commit}}"],
                                                       capture_output=True).returncode != 0:
            return None
        differ = []
        for path, digest in hashes.items():
            out = subprocess.run(git + ["show", f"{commit}:{path}"], capture_output=True)
            if out.returncode != 0 or hashlib.sha256(out.stdout).hexdigest() != digest:
                differ.append(path)
    except OSError:  # no git here
        return None
    return differ


def git_commit(given: Optional[str] = None) -> Optional[str]:
    """``given``, else ``git rev-parse HEAD`` of this source tree (None where there is no .git,
    e.g. on the device machine: pass ``--commit`` there)."""
    if given:
        return given
    return _run_text(["git", "-C", str(repo_root()), "rev-parse", "HEAD"])


# ----------------------------------------------------------------------------- pack
def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(MIB), b""):
            h.update(chunk)
    return h.hexdigest()


def _tail(path: Path, n: int) -> bytes:
    with open(path, "rb") as fh:
        fh.seek(0, os.SEEK_END)
        size = fh.tell()
        fh.seek(max(0, size - n))
        return fh.read()


def ensure_products(run_dir: Path, bits: Iterable[int] = QUALITY_BITS, episodes: int = 10) -> None:
    """Export ``workload.nmw`` and evaluate ``quality.csv`` (one row per bitwidth) of a finished
    run in its folder, unless both already describe its checkpoint's step."""
    from hwmodel.workload import load_workload
    from rl.evaluate import append_quality_row, evaluate_run
    from rl.export import export_run

    step = campaign.run_step(run_dir)
    bits = list(bits)
    nmw, quality = run_dir / WORKLOAD_FILE, run_dir / QUALITY_FILE
    if nmw.is_file() and quality.is_file():
        try:
            with open(quality, newline="") as fh:
                rows = list(csv.DictReader(fh))
            done = {int(r["bits"]) for r in rows if int(r["steps"]) == step and int(r["episodes"]) == episodes}
            if load_workload(nmw).meta.get("steps") == step and set(bits) <= done:
                return
        except (NmlabError, ValueError, KeyError, OSError):
            pass
    export_run(run_dir, nmw)
    tmp = run_dir / f".{QUALITY_FILE}.new"
    tmp.unlink(missing_ok=True)
    for b in bits:
        append_quality_row(tmp, evaluate_run(run_dir, b, episodes))
    os.replace(tmp, quality)


def _one_thread() -> None:
    import torch

    torch.set_num_threads(1)


def make_products(run_dirs: list[Path], bits: Iterable[int], episodes: int, workers: int = 1) -> None:
    """:func:`ensure_products` of every run, in ``workers`` processes (one torch thread each)."""
    bits = tuple(bits)
    if workers <= 1 or len(run_dirs) <= 1:
        for d in run_dirs:
            ensure_products(d, bits, episodes)
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    # spawn, not fork: the parent has torch loaded (forking it is not safe with its threads).
    with ProcessPoolExecutor(min(workers, len(run_dirs)), mp_context=multiprocessing.get_context("spawn"),
                             initializer=_one_thread) as pool:
        for fut in [pool.submit(ensure_products, d, bits, episodes) for d in run_dirs]:
            fut.result()  # re-raises a worker's NmlabError


def pack(root: Path, out: Path, steps: int, only: Optional[list[str]] = None, checkpoints: bool = True,
         max_files: int = DEFAULT_MAX_FILES, part_bytes: int = DEFAULT_PART_BYTES, total_bytes: int = DEFAULT_TOTAL_BYTES,
         bits: Iterable[int] = QUALITY_BITS, episodes: int = 10, commit: Optional[str] = None, workers: int = 1,
         log: Callable[[str], None] = print) -> dict:
    """Pack the runs under ``root`` into ``out`` (see the module doc); returns the manifest.

    Args:
        root: campaign root; every folder with an ``args.json`` is a run.
        out: folder for the parts and the manifest (created; our earlier files there are replaced).
        steps: target steps: a run whose checkpoint reached them is complete.
        only: pack only these run names.
        checkpoints: add incomplete runs' checkpoints (furthest first) while they fit.
        max_files: most files written, manifest included.
        part_bytes: most bytes per part.
        total_bytes: most bytes of all files together.
        bits: bitwidths of the quality rows of complete runs.
        episodes: evaluation episodes per quality row.
        commit: git commit of the code that trained the runs (default: ``git rev-parse HEAD``).
        workers: processes that export and evaluate complete runs.
        log: where progress lines go.
    """
    bits = tuple(bits)
    if max_files < 2:
        raise NmlabError(f"max_files: need at least 2 (one part and the manifest), got {max_files}")
    if part_bytes < 1024 or total_bytes < 2048:
        raise NmlabError(f"part_bytes: parts of {part_bytes} bytes ({total_bytes} in all) are too small to pack anything")
    runs = sorted(d for d in root.iterdir() if d.is_dir() and (d / "args.json").is_file()) if root.is_dir() else []
    if only:
        missing = [n for n in only if not (root / n / "args.json").is_file()]
        if missing:
            raise NmlabError(f"only: {root / missing[0]} is not a run folder (no args.json)")
        runs = [d for d in runs if d.name in set(only)]
    state = read_state(root)
    manifest_reserve = min(256 * 1024, total_bytes // 10)  # the manifest is a few kB per run
    budget = min((max_files - 1) * part_bytes, total_bytes - manifest_reserve)
    entries, optional = [], []
    from rl.publish import run_label

    for run_dir in runs:
        args = json.loads((run_dir / "args.json").read_text())
        step = campaign.run_step(run_dir)
        rec = state["runs"].get(run_dir.name, {})
        running = rec.get("rc") is None and _is_our_trainer(rec.get("pid"), str(run_dir))
        complete = step is not None and step >= steps
        entries.append({"name": run_dir.name, "env": args.get("env"), "label": run_label(args), "seed": args.get("seed"),
                        "target_steps": steps, "checkpoint_step": step, "logged_step": logged_step(run_dir),
                        "complete": complete, "device": rec.get("device"), "running_at_pack": running,
                        "exit_status": rec.get("rc"), "learning_steps_per_s": learning_steps_per_s(run_dir),
                        "checkpoint_packed": False, "files": {}})
        if not complete and checkpoints and step is not None and step > 0:
            optional.append((step, run_dir.name))
    done = [root / e["name"] for e in entries if e["complete"]]
    if done:
        log(f"pack: {len(done)} complete runs: workloads and quality rows at {list(bits)} bits ({episodes} episodes)")
        make_products(done, bits, episodes, workers)
    manifest = {"format": FORMAT_NAME, "version": FORMAT_VERSION, "created_utc": _utc(), "git_commit": git_commit(commit),
                "target_steps": steps, "device": device_info(), "code_sha256": code_hashes(),
                "campaign": {k: state.get(k) for k in ("jobs", "cuda_jobs", "mps", "mps_note", "driver_started_utc")},
                "limits": {"max_files": max_files, "part_bytes": part_bytes, "total_bytes": total_bytes},
                "quality": {"bits": list(bits), "episodes": episodes}, "runs": entries}
    by_name = {e["name"]: e for e in entries}

    out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".pack-", dir=out))
    try:
        archive = work / "archive.tar.gz"
        with open(archive, "wb") as raw:
            with tarfile.open(fileobj=raw, mode="w:gz", compresslevel=6) as tar:
                def add_bytes(arcname: str, data: bytes, mtime: float) -> None:
                    info = tarfile.TarInfo(arcname)
                    info.size, info.mtime, info.mode = len(data), int(mtime), 0o644
                    tar.addfile(info, io.BytesIO(data))

                def add_file(entry: dict, name: str, path: Path, data: Optional[bytes] = None) -> None:
                    if data is None:
                        data = path.read_bytes()  # one read: a file replaced meanwhile is packed whole
                    entry["files"][name] = {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
                    add_bytes(f"{entry['name']}/{name}", data, path.stat().st_mtime if path.exists() else time.time())

                for e in entries:  # logs of every run, then the complete runs' products
                    run_dir = root / e["name"]
                    for name in LOG_FILES:
                        if (run_dir / name).is_file():
                            add_file(e, name, run_dir / name)
                    log_path = root / f"{e['name']}.log"
                    if log_path.is_file():
                        add_file(e, TRAIN_LOG_FILE, log_path, _tail(log_path, TRAIN_LOG_TAIL_BYTES))
                    if e["complete"]:
                        for name in (WORKLOAD_FILE, QUALITY_FILE):
                            add_file(e, name, run_dir / name)
                for _step, name in sorted(optional, reverse=True):  # furthest run first
                    path = root / name / CHECKPOINT_FILE
                    with open(path, "rb") as fh:
                        data = fh.read()
                    # Compressed size <= raw size + 0.1%, plus what gzip still buffers (bound).
                    if raw.tell() + len(data) * 1.001 + COMPRESSOR_SLACK > budget:
                        log(f"pack: {name}: checkpoint ({len(data) / MIB:.1f} MiB) does not fit; logs only")
                        continue
                    add_file(by_name[name], CHECKPOINT_FILE, path, data)
                    by_name[name]["checkpoint_packed"] = True
                    # the step packed is the one in the file (a newer checkpoint may have replaced the one seen above)
                    by_name[name]["checkpoint_step"] = _checkpoint_step_of_bytes(data, by_name[name]["checkpoint_step"])
                for e in entries:
                    add_bytes(f"{e['name']}/{RUN_INFO_FILE}", json.dumps(_run_info(e), indent=1).encode(), time.time())
                add_bytes(MANIFEST_FILE, json.dumps(manifest, indent=1).encode(), time.time())
        size = archive.stat().st_size
        if size > budget:  # checkpoints were added only within the bound, so the rest is too big
            raise NmlabError(f"pack: the logs and workloads of {len(entries)} runs compress to {size / MIB:.2f} MiB, more than the "
                             f"{budget / MIB:.2f} MiB that {max_files} files of {part_bytes / MIB:.2f} MiB "
                             f"({total_bytes / MIB:.2f} MiB together) leave; pack fewer runs with --only")
        parts = split_file(archive, work, PART_PREFIX, part_bytes)
        if len(parts) + 1 > max_files:
            raise NmlabError(f"pack: {len(parts)} parts and the manifest exceed max_files {max_files}")
        manifest["archive"] = {"bytes": size, "sha256": _sha256_file(archive),
                               "parts": [{"name": p.name, "bytes": p.stat().st_size, "sha256": _sha256_file(p)} for p in parts]}
        archive.unlink()
        with atomic_write(work / MANIFEST_FILE, "w") as fh:
            json.dump(manifest, fh, indent=1)
        if sum(p.stat().st_size for p in work.iterdir()) > total_bytes:
            raise NmlabError(f"pack: the files exceed total_bytes {total_bytes}")
        for old in out.iterdir():  # our earlier parts, which a shorter pack would leave behind
            if old.is_file() and (old.name.startswith(PART_PREFIX) or old.name == MANIFEST_FILE):
                old.unlink()
        for f in sorted(work.iterdir()):
            os.replace(f, out / f.name)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    n_ckpt = sum(e["checkpoint_packed"] for e in entries)
    log(f"pack: {len(entries)} runs ({sum(e['complete'] for e in entries)} complete, {n_ckpt} checkpoints) -> "
        f"{len(manifest['archive']['parts'])} parts, {manifest['archive']['bytes'] / MIB:.2f} MiB, in {out}")
    return manifest


def _run_info(entry: dict) -> dict:
    """A run's manifest entry without its own file list (device_run.json is not in its list)."""
    return {k: v for k, v in entry.items() if k != "files"}


def _checkpoint_step_of_bytes(data: bytes, fallback: Optional[int]) -> Optional[int]:
    import torch

    try:
        return int(torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)["global_step"])
    except Exception:  # a damaged file was caught when the run was listed; keep what we saw then
        return fallback


def split_file(path: Path, out: Path, prefix: str, part_bytes: int) -> list[Path]:
    """Cut ``path`` into ``out/<prefix>000``, ``001``... of at most ``part_bytes`` bytes each."""
    if part_bytes < 1:
        raise NmlabError(f"part_bytes: must be positive, got {part_bytes}")
    parts = []
    with open(path, "rb") as src:
        for i in range(1000):
            chunk = src.read(part_bytes)
            if not chunk and parts:
                break
            part = out / f"{prefix}{i:03d}"
            part.write_bytes(chunk)
            parts.append(part)
        else:
            raise NmlabError(f"part_bytes: {part_bytes} cuts {path.name} into more than 1000 parts")
    return parts


# ----------------------------------------------------------------------------- unpack
def _check_member(member: tarfile.TarInfo) -> Optional[tuple[str, str]]:
    """(run, file) of an archive member, None for the top-level manifest; anything else is refused."""
    name = member.name
    if not (member.isfile() or member.isdir()):
        raise NmlabError(f"unpack: {name!r}: links and special files are refused")
    if name.startswith("/") or "\\" in name or re.match(r"^[A-Za-z]:", name):
        raise NmlabError(f"unpack: {name!r}: absolute paths are refused")
    parts = PurePosixPath(name).parts
    if ".." in parts or "." in parts:
        raise NmlabError(f"unpack: {name!r}: '..' and '.' components are refused")
    if member.isdir():
        if len(parts) != 1 or not _SAFE_NAME.match(parts[0]):
            raise NmlabError(f"unpack: {name!r}: not a run folder")
        return None
    if parts == (MANIFEST_FILE,):
        return None
    if len(parts) != 2 or not _SAFE_NAME.match(parts[0]) or parts[1] not in PACKED_FILES:
        raise NmlabError(f"unpack: {name!r}: not a file that pack writes (RUN/{{{', '.join(sorted(PACKED_FILES))}}})")
    return parts[0], parts[1]


def unpack(files: list[Path], root: Path, replace: bool = False, log: Callable[[str], None] = print) -> dict:
    """Restore the run folders packed by :func:`pack` under ``root``; returns the manifest.

    Args:
        files: the parts (``device_runs.tar.gz.NNN``) and optionally ``device_manifest.json``
            (then every part's size and SHA-256 are checked against it).
        root: where run folders go (``runs/device``).
        replace: move run folders that already exist to ``root/_replaced/`` instead of refusing.
        log: where progress lines go.
    """
    files = [Path(f) for f in files]
    for f in files:
        if not f.is_file():
            raise NmlabError(f"unpack: {f}: no such file")
    manifest_files = [f for f in files if f.name == MANIFEST_FILE]
    parts = [f for f in files if f.name != MANIFEST_FILE]
    outer = None
    if manifest_files:
        try:
            outer = json.loads(manifest_files[0].read_text())
        except ValueError as exc:
            raise NmlabError(f"unpack: {manifest_files[0]}: not JSON ({exc})") from None
        if not isinstance(outer, dict) or outer.get("format") != FORMAT_NAME:
            raise NmlabError(f"unpack: {manifest_files[0]}: format: expected {FORMAT_NAME!r}")
        listed = outer.get("archive", {}).get("parts", [])
        by_name = {p.name: p for p in parts}
        missing = [p["name"] for p in listed if p["name"] not in by_name]
        if missing:
            raise NmlabError(f"unpack: part {missing[0]} is missing (the manifest lists {len(listed)})")
        for p in listed:
            f = by_name[p["name"]]
            if f.stat().st_size != p["bytes"] or _sha256_file(f) != p["sha256"]:
                raise NmlabError(f"unpack: {f}: size or SHA-256 differs from the manifest (damaged in transfer?)")
        parts = [by_name[p["name"]] for p in listed]
    else:
        bad = [p for p in parts if not re.fullmatch(re.escape(PART_PREFIX) + r"\d{3}", p.name)]
        if bad:
            raise NmlabError(f"unpack: {bad[0]}: not a part ({PART_PREFIX}NNN) or {MANIFEST_FILE}")
        parts.sort(key=lambda p: p.name)
    if not parts:
        raise NmlabError("unpack: no parts given")
    root.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=".unpack-", dir=root))
    try:
        archive = stage / "archive.tar.gz"
        with open(archive, "wb") as dst:
            for p in parts:
                with open(p, "rb") as src:
                    shutil.copyfileobj(src, dst, MIB)
        if outer is not None and _sha256_file(archive) != outer.get("archive", {}).get("sha256"):
            raise NmlabError("unpack: the joined archive's SHA-256 differs from the manifest")
        staged = stage / "runs"
        staged.mkdir()
        inner, total = None, 0
        try:
            with tarfile.open(archive, mode="r:gz") as tar:
                for member in tar:
                    where = _check_member(member)
                    if member.isdir():
                        continue
                    total += member.size
                    if total > MAX_UNPACKED_BYTES:
                        raise NmlabError(f"unpack: the archive unpacks to more than {MAX_UNPACKED_BYTES} bytes")
                    data = tar.extractfile(member).read()
                    if where is None:
                        inner = json.loads(data)
                        continue
                    run, name = where
                    (staged / run).mkdir(exist_ok=True)
                    (staged / run / name).write_bytes(data)
        except (tarfile.TarError, EOFError, OSError, ValueError, zlib.error) as exc:
            raise NmlabError(f"unpack: the archive is damaged or truncated ({str(exc)[:160]})") from None
        if not isinstance(inner, dict) or inner.get("format") != FORMAT_NAME:
            raise NmlabError(f"unpack: the archive holds no {MANIFEST_FILE} of format {FORMAT_NAME!r}")
        if inner.get("version") != FORMAT_VERSION:
            raise NmlabError(f"unpack: version: unknown version {inner.get('version')!r} (this nmlab reads {FORMAT_VERSION})")
        names = {e["name"] for e in inner["runs"]}
        extra = sorted({d.name for d in staged.iterdir()} - names)
        if extra:
            raise NmlabError(f"unpack: {extra[0]}: a folder the manifest does not list")
        for e in inner["runs"]:  # every file the manifest lists, whole, and nothing else
            folder = staged / e["name"]
            present = {f.name for f in folder.iterdir()} - {RUN_INFO_FILE} if folder.is_dir() else set()
            if present != set(e["files"]):
                raise NmlabError(f"unpack: {e['name']}: files {sorted(present ^ set(e['files']))} differ from the manifest")
            for fname, meta in e["files"].items():
                if _sha256_file(folder / fname) != meta["sha256"]:
                    raise NmlabError(f"unpack: {e['name']}/{fname}: SHA-256 differs from the manifest")
        clash = [n for n in sorted(names) if (root / n).exists()]
        if clash and not replace:
            raise NmlabError(f"unpack: {root / clash[0]} already exists; pass --replace to move old folders to {root / '_replaced'}")
        stamp = time.strftime("%Y%m%dT%H%M%S")
        for n in sorted(names):
            if (root / n).exists():
                aside = root / "_replaced" / f"{n}.{stamp}"
                aside.parent.mkdir(exist_ok=True)
                (root / n).rename(aside)
            src = staged / n
            if not src.is_dir():
                src.mkdir()
            os.replace(src, root / n)
        with atomic_write(root / f"device_manifest_{inner['created_utc'].replace(':', '')}.json", "w") as fh:
            json.dump(outer if outer is not None else inner, fh, indent=1)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    drift = code_drift(inner)
    if drift is None:
        log(f"unpack: code: cannot compare with commit {inner.get('git_commit')!r} here")
    elif drift:
        log(f"unpack: code: {len(drift)} files the runs used differ from commit {inner['git_commit']}: {' '.join(drift[:8])}")
    done = [e for e in inner["runs"] if e["complete"]]
    log(f"unpack: {len(names)} runs into {root} ({len(done)} complete; "
        f"{sum(e['checkpoint_packed'] for e in inner['runs'])} with a checkpoint to resume)")
    return inner


# ----------------------------------------------------------------------------- todo
def todo(root: Path, steps: int, seeds: int = 2, done_roots: Iterable[Path] = ()) -> list[str]:
    """Campaign runs under ``root`` that are neither complete nor being trained on this machine,
    nor complete under any of ``done_roots`` (e.g. ``runs/device``): the names for ``--only``."""
    busy = campaign.running_outs()
    names = []
    for spec in campaign_specs(root, seeds):
        if str(spec.run_dir.resolve()) in busy or is_complete(spec.run_dir, steps):
            continue
        if any(is_complete(Path(d) / spec.name, steps) for d in done_roots):
            continue
        names.append(spec.name)
    return names


# ----------------------------------------------------------------------------- CLI
def main(argv: Optional[list[str]] = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m rl.device_campaign", description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)

    def common(p: argparse.ArgumentParser, steps: bool = True) -> None:
        p.add_argument("--root", type=Path, required=True, help="campaign root: one folder per run")
        if steps:
            p.add_argument("--steps", type=int, default=200_000, help="target environment steps per run")

    p = sub.add_parser("launch", help="start the incomplete runs in the background (detached driver)")
    common(p)
    p.add_argument("--jobs", type=int, required=True, help="runs at a time")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--cuda-jobs", type=int, default=None, help="with --device cuda: at most this many runs on the GPU, the rest on the CPU (default: all)")
    p.add_argument("--only", nargs="+", default=None, metavar="NAME", help="only these runs (campaign names)")
    p.add_argument("--seeds", type=int, default=2, help="seeds of the campaign list")
    p.add_argument("--mps", action="store_true", help="start an NVIDIA MPS server for the CUDA runs (falls back without)")
    p.add_argument("--wait", type=float, default=0.0, metavar="SECONDS", help="then print progress until done or SECONDS pass")
    p.add_argument("--poll", type=float, default=5.0, help="seconds between the driver's checks")
    p.add_argument("--trainer", default=None, help="command replacing 'nmlab' (default: python -m hwmodel)")

    p = sub.add_parser("drive", help="(internal) the detached driver that launch starts")
    common(p)
    p.add_argument("--jobs", type=int, required=True)
    p.add_argument("--cuda-jobs", type=int, default=0)
    p.add_argument("--only", nargs="+", default=None)
    p.add_argument("--seeds", type=int, default=2)
    p.add_argument("--poll", type=float, default=5.0)
    p.add_argument("--trainer", default=None)
    p.add_argument("--mps-env", action="store_true")

    p = sub.add_parser("wait", help="print progress until every run ended or SECONDS passed")
    common(p, steps=False)
    p.add_argument("--seconds", type=float, required=True, help="give up waiting after this many seconds (the runs go on)")
    p.add_argument("--interval", type=float, default=60.0, help="seconds between status prints")

    p = sub.add_parser("stop", help="end the driver and every run it started")
    common(p, steps=False)
    p.add_argument("--grace", type=float, default=30.0, help="seconds between SIGINT and SIGKILL")

    p = sub.add_parser("status", help="where every run of the driver stands")
    common(p, steps=False)

    p = sub.add_parser("pack", help="logs, workloads, quality rows (and checkpoints that fit) -> at most 8 files")
    common(p)
    p.add_argument("--out", type=Path, required=True, help="folder for the parts and the manifest ($OUT)")
    p.add_argument("--only", nargs="+", default=None, metavar="NAME", help="only these runs (campaign names)")
    p.add_argument("--no-checkpoints", action="store_true", help="never pack incomplete runs' checkpoints")
    p.add_argument("--max-files", type=int, default=DEFAULT_MAX_FILES, help="files written, manifest included (default %(default)s)")
    p.add_argument("--part-bytes", type=int, default=DEFAULT_PART_BYTES, help="size of each archive part (default %(default)s)")
    p.add_argument("--total-bytes", type=int, default=DEFAULT_TOTAL_BYTES, help="all files together at most (default %(default)s)")
    p.add_argument("--bits", type=int, nargs="+", default=list(QUALITY_BITS), help="quality rows of complete runs")
    p.add_argument("--episodes", type=int, default=10, help="episodes per quality row")
    p.add_argument("--commit", default=None, help="git commit of the code (the device copy has no .git)")
    p.add_argument("--workers", type=int, default=min(8, os.cpu_count() or 1), help="processes exporting and evaluating complete runs")

    p = sub.add_parser("unpack", help="restore packed runs here")
    p.add_argument("files", nargs="+", type=Path, help="the parts and device_manifest.json")
    p.add_argument("--root", type=Path, default=Path("runs/device"), help="where the run folders go (default %(default)s)")
    p.add_argument("--replace", action="store_true", help="move existing run folders to ROOT/_replaced/")

    p = sub.add_parser("todo", help="names of runs not finished or running here (for --only)")
    common(p)
    p.add_argument("--seeds", type=int, default=2, help="seeds of the campaign list (default %(default)s)")
    p.add_argument("--done", type=Path, nargs="*", default=[], help="roots whose complete runs count as done (runs/device)")

    args = ap.parse_args(argv)
    trainer = shlex.split(args.trainer) if getattr(args, "trainer", None) else None
    try:
        if args.cmd == "launch":
            launch(args.root, args.steps, args.jobs, args.device, args.cuda_jobs, args.only, args.seeds, trainer,
                   args.mps, args.poll)
            if args.wait > 0:
                wait(args.root, args.wait)
        elif args.cmd == "drive":
            extra = mps_env(args.root) if args.mps_env else None
            drive(args.root, campaign_specs(args.root, args.seeds, args.only), args.steps, args.jobs, args.cuda_jobs,
                  trainer, args.poll, extra, log=lambda s: print(s, flush=True))
        elif args.cmd == "wait":
            wait(args.root, args.seconds, args.interval)
        elif args.cmd == "stop":
            stopped = stop(args.root, args.grace)
            print(f"stop: {len(stopped)} runs stopped: {' '.join(stopped)}")
        elif args.cmd == "status":
            print_status(args.root)
        elif args.cmd == "pack":
            pack(args.root, args.out, args.steps, args.only, not args.no_checkpoints, args.max_files, args.part_bytes,
                 args.total_bytes, args.bits, args.episodes, args.commit, args.workers, log=lambda s: print(s, flush=True))
        elif args.cmd == "unpack":
            unpack(args.files, args.root, args.replace)
        elif args.cmd == "todo":
            print(" ".join(todo(args.root, args.steps, args.seeds, args.done)))
    except NmlabError as exc:
        print(f"device_campaign {args.cmd}: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
