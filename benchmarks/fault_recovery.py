"""Fault recovery, reproduced small: kill nmlab's sweeps, training runs and Ray campaigns mid-run,
resume them with the same command, and compare what they end with to an uninterrupted run.

    python benchmarks/fault_recovery.py                  # everything: 384 s on 2 cores (docs/results/fault_recovery.txt)
    python benchmarks/fault_recovery.py --only sweep     # local pool and Ray cluster sweeps (~2 min)
    python benchmarks/fault_recovery.py --only train     # nmlab train + export (~30 s)
    python benchmarks/fault_recovery.py --only campaign  # nmlab campaign on a local Ray instance (~3-4 min)

Output of a full run: docs/results/fault_recovery.txt. Checks (docs/sweeps.md "Running: local
pool, Ray, resume", docs/rl.md "Campaigns"):

* sweep: a 2,448-point grid (bundled workloads and designs, 306 chunks) run uninterrupted with
  ``--workers 1`` is the reference; runs with ``--workers 2`` are interrupted once a quarter of
  the chunks are written (a progress marker: the part files, not a fixed sleep), then the same
  command is run again: SIGKILL of the process group, SIGKILL of the sweep process alone (its pool
  workers must end too, within 5 s), SIGINT of the process group (Ctrl-C: exit 130 and its
  one line), and a ``ray start --head`` cluster (``--ray 127.0.0.1:PORT``) whose processes are
  all SIGKILLed mid-sweep (the sweep must end by itself; the cluster is started again before the
  rerun). Each resumed ``points.parquet`` is compared with the reference byte for byte (MD5 of
  the file) and as data (pandas ``DataFrame.equals``).
* train: ``nmlab train`` (Hopper-v5, 2:4, 1,600 steps, 32-unit nets, a checkpoint every 200
  steps) SIGKILLed once ``eval.csv`` has its step-800 row, resumed with ``--resume``, exported
  with ``nmlab export``; compared with the same run trained in one go (in a folder of the same
  name: the export records it).
* campaign: ``nmlab campaign`` (Hopper-v5, dense and 2:4, 2,000 steps each, a checkpoint every
  200) on a local Ray instance, against the same campaign run in one go: the Ray worker training a
  run SIGKILLed after the run's step-800 evaluation (Ray retries it); the driver's process group
  sent SIGINT (Ctrl-C) once every run is past step 400; every process of the Ray instance
  SIGKILLed (what ``ray stop --force`` does) once every run is past step 400 (the driver must end
  by itself). After the last two, the same command again.

Files compared for a run: ``workload.nmw``, ``quality.csv`` (campaign), ``losses.csv``,
``sad.csv``, ``method.csv`` and ``done.json`` (campaign) byte for byte; ``eval.csv`` and
``progress.csv`` without their ``time_s`` column; ``checkpoint.pt`` tensor by tensor (it records
the run's ``out`` and ``resume`` options, so its bytes differ between two folders).

Everything runs in a temporary folder (TMP in the output), through the project's CLI (``python -m
hwmodel.cli``, with this checkout first on PYTHONPATH). Ray runs with its own temporary folder
(RAY_TMPDIR), and only the processes started here are stopped, after each check and at the end,
whatever happens (``ray stop`` would stop every Ray instance of the machine). One line per check
(PASS/FAIL and what was compared), then the wall time and the machine; exit status 1 if any
check fails. Linux only (it finds processes in /proc).
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.machine import children, describe, stat_fields  # noqa: E402

CLI = [sys.executable, "-m", "hwmodel.cli"]
#: Environment variable naming the temporary folder in every process started here (to find them all).
MARK = "NMLAB_FAULT_RECOVERY_DIR"

SWEEP_CONFIG = """\
version: 1
patterns: [dense, "2:4", "1:4", "1:8", unstructured]
bits: [32, 16, 8, 4]
gpus: bundled
scenarios: [{scenario: inference, batch: [1, 8, 64, 256]}, {scenario: train_step, batch: [64, 256]}]
chunk_size: 8
"""

TRAIN_STEPS = 1600
TRAIN_ARGS = ["--env", "Hopper-v5", "--sparsity", "2:4", "--seed", "0", "--steps", str(TRAIN_STEPS),
              "--learning-starts", "300", "--hidden", "32", "--batch-size", "32", "--buffer-size", "5000",
              "--eval-every", "400", "--eval-episodes", "2", "--checkpoint-every", "200", "--log-every", "100",
              "--no-tensorboard", "--no-progress", "--torch-threads", "1"]

CAMPAIGN_STEPS = 2000
CAMPAIGN_CONFIG = f"""\
version: 1
envs: [Hopper-v5]
agents: [dense, "2:4"]
seeds: [0]
steps: {CAMPAIGN_STEPS}
train: {{learning_starts: 300, hidden: 32, batch_size: 32, buffer_size: 5000, eval_every: 400, eval_episodes: 2,
        checkpoint_every: 200, log_every: 100, tensorboard: false}}
quality_bits: [32, 8]
quality_episodes: 1
"""
CAMPAIGN_RUNS = ("hopper_dense_s0", "hopper_2of4_s0")

#: Files of a run folder compared byte for byte (those present), and those compared without time_s.
BYTE_FILES = ("workload.nmw", "quality.csv", "losses.csv", "sad.csv", "method.csv", "done.json")
TIMED_FILES = ("eval.csv", "progress.csv")


class Failed(Exception):
    """A check's precondition did not hold (the command failed, or was not interrupted mid-run)."""


class Harness:
    """Temp folder, environment, started processes and Ray cleanup, and the check results."""

    def __init__(self, root: Path, timeout: float):
        self.root = root
        self.timeout = timeout
        self.ray_root = root / "r"  # RAY_TMPDIR: short, Ray's socket paths must stay under 108 bytes
        self.ray_root.mkdir()
        self.env = {**os.environ, "RAY_TMPDIR": str(self.ray_root), MARK: str(root),
                    "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
        self.env.pop("RAY_ADDRESS", None)
        self.procs: list[subprocess.Popen] = []
        self.results: list[tuple[bool, str]] = []

    # ------------------------------------------------------------------ processes
    def run(self, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
        """The command to its end; Failed unless it exits 0."""
        proc = subprocess.run([*CLI, *args], capture_output=True, text=True, env=env or self.env, cwd=self.root,
                              timeout=self.timeout, stdin=subprocess.DEVNULL)
        if proc.returncode != 0:
            raise Failed(f"`nmlab {' '.join(args)}` exited {proc.returncode}: {_tail(proc.stderr or proc.stdout)}")
        return proc

    def start(self, *args: str, env: dict | None = None) -> subprocess.Popen:
        """The command in its own session (its own process group, as a terminal's job is)."""
        proc = subprocess.Popen([*CLI, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env=env or self.env, cwd=self.root, start_new_session=True, stdin=subprocess.DEVNULL)
        self.procs.append(proc)
        return proc

    def wait_for(self, cond, proc: subprocess.Popen, what: str) -> None:
        """Poll ``cond`` every 10 ms while ``proc`` runs; Failed if it ends first or ``timeout`` passes."""
        t0 = time.monotonic()
        while not cond():
            if proc.poll() is not None:
                out, err = proc.communicate()
                raise Failed(f"the command ended (exit {proc.returncode}) before {what}: {_tail(err or out)}")
            if time.monotonic() - t0 > self.timeout:
                raise Failed(f"timed out after {self.timeout:.0f} s waiting for {what}")
            time.sleep(0.01)

    def ray_pids(self) -> list[int]:
        """Processes started here that outlive their command, Ray's above all: those whose command
        line names this harness's Ray folder, whose environment carries its mark, or whose working
        folder is the temporary folder (Ray's agents rename their command line)."""
        marks = (str(self.ray_root).encode(), f"{MARK}={self.root}".encode())
        pids = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) == os.getpid():
                continue
            try:
                if _alive(int(entry.name)) and (
                        marks[0] in (entry / "cmdline").read_bytes()
                        or marks[1] in (entry / "environ").read_bytes()
                        or os.readlink(entry / "cwd").startswith(str(self.root))):
                    pids.append(int(entry.name))
            except OSError:
                pass
        return pids

    def kill_ray(self, spare: tuple[int, ...] = ()) -> int:
        """SIGKILL every Ray process started here but ``spare`` (as `ray stop --force` does, but only ours)."""
        killed: set[int] = set()
        deadline = time.monotonic() + 15
        while (pids := [p for p in self.ray_pids() if p not in spare]) and time.monotonic() < deadline:
            for pid in pids:
                _signal(pid, signal.SIGKILL)
                killed.add(pid)
            time.sleep(0.2)
        return len(killed)

    def kill_ray_wait(self, proc: subprocess.Popen, command: str, ray: str) -> tuple[int, float]:
        """SIGKILL every Ray process started here but ``proc``, the command (``command``: sweep, campaign)
        running on them, and wait for Ray to end that command by itself (docs/sweeps.md: exit 2 with one
        line, or exit 1 about a minute later): (processes killed, seconds until it ended)."""
        t_kill = time.monotonic()
        n = self.kill_ray(spare=(proc.pid,))
        wait_s = max(self.timeout, 150)
        try:
            proc.communicate(timeout=wait_s)
        except subprocess.TimeoutExpired:
            raise Failed(f"the {command} still ran {wait_s:.0f} s after its Ray {ray} was killed") from None
        return n, time.monotonic() - t_kill

    def cleanup(self) -> None:
        """SIGKILL what is still running: the commands' process groups, then every Ray process started here."""
        for proc in self.procs:
            if proc.poll() is None:
                _signal_group(proc.pid, signal.SIGKILL)
                proc.wait()
        self.kill_ray()  # an instance's agents can outlive it

    # ------------------------------------------------------------------ results
    def check(self, name: str, body) -> None:
        t0 = time.monotonic()
        try:
            ok, text = body()
        except Failed as exc:
            ok, text = False, str(exc)
        except subprocess.TimeoutExpired as exc:
            ok, text = False, f"timed out after {exc.timeout:.0f} s: {exc.cmd}"
        text = text.replace(str(self.root), "TMP")  # the temporary folder, named once at the start
        line = f"{'PASS' if ok else 'FAIL'}  {name} ({time.monotonic() - t0:.1f} s): {text}"
        print(line, flush=True)
        self.results.append((ok, line))
        self.cleanup()  # a failed check leaves nothing running for the next one


def _tail(text: str, n: int = 3) -> str:
    return " | ".join((text or "").strip().splitlines()[-n:])


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def _alive(pid: int) -> bool:
    fields = stat_fields(pid)
    return fields is not None and fields[0] != "Z"


# ---------------------------------------------------------------------------------- sweeps
def _parts(out: Path) -> int:
    """Part files a sweep has written (one per chunk)."""
    return len(list((out / "parts").glob("part-*.parquet")))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ray_start(h: Harness, port: int, env: dict) -> None:
    ray = shutil.which("ray", path=str(Path(sys.executable).parent)) or shutil.which("ray")
    if not ray:
        raise Failed("no `ray` command beside this Python")
    proc = subprocess.run([ray, "start", "--head", "--port", str(port), "--num-cpus", "2", "--include-dashboard=false",
                           "--disable-usage-stats"], capture_output=True, text=True, env=env, cwd=h.root,
                          timeout=h.timeout, stdin=subprocess.DEVNULL)
    if proc.returncode != 0:
        raise Failed(f"ray start exited {proc.returncode}: {_tail(proc.stderr or proc.stdout)}")


def sweep_checks(h: Harness) -> None:
    import pandas as pd

    cfg = h.root / "sweep.yaml"
    cfg.write_text(SWEEP_CONFIG)
    ref = h.root / "sweep_ref"
    h.run("sweep", str(cfg), "--out", str(ref), "--workers", "1", "--quiet")
    ref_md5, ref_df = _md5(ref / "points.parquet"), pd.read_parquet(ref / "points.parquet")
    total_parts = _parts(ref)
    kill_at = total_parts // 4

    def compare(out: Path, again: subprocess.CompletedProcess, how: str) -> tuple[bool, str]:
        got = out / "points.parquet"
        got_md5 = _md5(got)
        same_bytes, same_df = got_md5 == ref_md5, pd.read_parquet(got).equals(ref_df)
        done = next((ln for ln in again.stdout.splitlines() if "already done" in ln), again.stdout.strip())
        return same_bytes and same_df, (
            f"{how}; rerun: {done.split('(', 1)[-1].rstrip(')')}; points.parquet md5 {got_md5[:12]} "
            f"{'==' if same_bytes else '!='} uninterrupted --workers 1 run's {ref_md5[:12]}, "
            f"DataFrame.equals {same_df} ({len(ref_df):,} rows)")

    def interrupted(name: str, how: str, sig_group: int | None):
        out = h.root / name
        args = ("sweep", str(cfg), "--out", str(out), "--workers", "2", "--quiet")
        proc = h.start(*args)
        workers: list[int] = []

        def ready() -> bool:
            nonlocal workers
            workers = children(proc.pid)
            return (out / "parts").is_dir() and _parts(out) >= kill_at and len(workers) >= 2

        h.wait_for(ready, proc, f"{kill_at} part files")
        extra = ""
        if sig_group is None:  # the sweep process alone
            proc.kill()
            proc.wait()
            t0 = time.monotonic()
            while any(_alive(w) for w in workers) and time.monotonic() - t0 < 5:
                time.sleep(0.01)
            left = [w for w in workers if _alive(w)]
            for w in left:
                _signal(w, signal.SIGKILL)
            if left:
                raise Failed(f"pool workers {left} outlived the killed sweep by 5 s")
            extra = f", its {len(workers)} pool workers gone {time.monotonic() - t0:.2f} s later"
            _, err = proc.communicate()
        else:
            _signal_group(proc.pid, sig_group)
            _, err = proc.communicate(timeout=h.timeout)
        if sig_group == signal.SIGINT:
            line = (err.strip().splitlines() or [""])[-1]
            if proc.returncode != 130 or "nmlab sweep: interrupted; the " not in line:
                raise Failed(f"Ctrl-C: exit {proc.returncode}, last line {line!r}")
            extra = f", exit 130: {line.split(';')[1].strip()}"
        elif proc.returncode != -signal.SIGKILL:
            raise Failed(f"exit {proc.returncode} after SIGKILL: {_tail(err)}")
        kept = _parts(out)
        if (out / "points.parquet").exists() or kept >= total_parts:
            raise Failed("the sweep had finished before it was interrupted")
        again = h.run(*args)
        return compare(out, again, f"{how} with {kept} of {total_parts} part files written{extra}")

    def ray_cluster():
        port = _free_port()
        env = dict(h.env)
        if (Path.home() / ".ray" / "auth_token").exists():
            env["RAY_AUTH_MODE"] = "token"  # `ray start` turns token authentication on where this file exists
        out = h.root / "sweep_ray"
        args = ("sweep", str(cfg), "--out", str(out), "--ray", f"127.0.0.1:{port}", "--quiet")
        try:
            _ray_start(h, port, env)
            proc = h.start(*args, env=env)
            h.wait_for(lambda: (out / "parts").is_dir() and _parts(out) >= kill_at, proc, f"{kill_at} part files")
            n, ended = h.kill_ray_wait(proc, "sweep", "cluster")
            kept = _parts(out)
            if proc.returncode == 0 or (out / "points.parquet").exists() or kept >= total_parts:
                raise Failed(f"the sweep finished (exit {proc.returncode}) although its cluster was killed")
            _ray_start(h, port, env)
            again = h.run(*args, env=env)
        finally:
            h.kill_ray()
        return compare(out, again, f"{n} Ray processes SIGKILLed with {kept} of {total_parts} part files written; "
                                   f"the sweep ended {ended:.0f} s later, exit {proc.returncode}; cluster started again")

    h.check("sweep SIGKILL (process group) + resume",
            lambda: interrupted("sweep_killpg", "SIGKILL of the process group", signal.SIGKILL))
    h.check("sweep SIGKILL (sweep process alone) + resume",
            lambda: interrupted("sweep_kill", "SIGKILL of the sweep process alone", None))
    h.check("sweep Ctrl-C (SIGINT to the process group) + resume",
            lambda: interrupted("sweep_int", "SIGINT of the process group", signal.SIGINT))
    h.check("sweep on a Ray cluster killed mid-run + resume", ray_cluster)


# ---------------------------------------------------------------------------------- runs
def _rows_without_time(path: Path) -> list[dict]:
    with open(path, newline="") as fh:
        return [{k: v for k, v in row.items() if k != "time_s"} for row in csv.DictReader(fh)]


def _differences(a, b, path="") -> list[str]:
    """Paths where two checkpoint objects differ (tensors by torch.equal), the run's options left out."""
    import numpy as np
    import torch

    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        same = isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and a.dtype == b.dtype \
            and a.shape == b.shape and torch.equal(a, b)
        return [] if same else [path]
    if isinstance(a, dict) and isinstance(b, dict):
        if a.keys() != b.keys():
            return [f"{path}{{keys}}"]
        return [d for k in a if not (path == "" and k == "args") for d in _differences(a[k], b[k], f"{path}{k}.")]
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        if len(a) != len(b):
            return [f"{path}len"]
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in _differences(x, y, f"{path}{i}.")]
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return [] if np.array_equal(a, b) else [path]
    return [] if a == b or (a != a and b != b) else [path]


def compare_runs(ref: Path, got: Path) -> tuple[bool, str]:
    import torch

    same, differ = [], []
    for name in BYTE_FILES:
        if (ref / name).exists() or (got / name).exists():
            ok = (ref / name).exists() and (got / name).exists() and (ref / name).read_bytes() == (got / name).read_bytes()
            (same if ok else differ).append(name)
    for name in TIMED_FILES:
        ok = _rows_without_time(ref / name) == _rows_without_time(got / name)
        (same if ok else differ).append(f"{name} w/o time_s")
    a = torch.load(ref / "checkpoint.pt", map_location="cpu", weights_only=False)
    b = torch.load(got / "checkpoint.pt", map_location="cpu", weights_only=False)
    diff = _differences(a, b)
    (differ if diff else same).append("checkpoint.pt tensors" + (f" ({', '.join(diff[:3])})" if diff else ""))
    if not differ:
        return True, "equal: " + ", ".join(same)
    return False, "DIFFER: " + ", ".join(differ) + "; equal: " + ", ".join(same)


def _eval_steps(path: Path) -> list[int]:
    try:
        with open(path, newline="") as fh:
            return [int(r["step"]) for r in csv.DictReader(fh) if r.get("step")]
    except (OSError, ValueError, KeyError):
        return []


def train_checks(h: Harness) -> None:
    def body():
        # Same folder name: the export records it (the manifest's `run`).
        ref, got = h.root / "train_ref" / "hopper_2of4_s0", h.root / "train_killed" / "hopper_2of4_s0"
        h.run("train", *TRAIN_ARGS, "--out", str(ref))
        h.run("export", str(ref), "--out", str(ref / "workload.nmw"))
        proc = h.start("train", *TRAIN_ARGS, "--out", str(got))
        h.wait_for(lambda: (got / "checkpoint.pt").exists() and max(_eval_steps(got / "eval.csv"), default=0) >= 800,
                   proc, "eval.csv's step-800 row")
        _signal_group(proc.pid, signal.SIGKILL)
        proc.communicate()
        last = max(_eval_steps(got / "eval.csv"), default=0)
        if last >= TRAIN_STEPS:
            raise Failed("the run had finished before it was killed")
        again = h.run("train", "--out", str(got), "--resume", "--steps", str(TRAIN_STEPS))
        h.run("export", str(got), "--out", str(got / "workload.nmw"))
        ok, text = compare_runs(ref, got)
        m = re.search(r"\((\d+) in this invocation", again.stdout)
        if not m or not 0 < int(m.group(1)) < TRAIN_STEPS:
            raise Failed(f"--resume did not continue the run: {_tail(again.stdout)}")
        resumed = TRAIN_STEPS - int(m.group(1))
        return ok, (f"SIGKILL after eval.csv's step-{last} row; --resume continued from the step-{resumed} checkpoint "
                    f"and trained the other {m.group(1)} steps; vs the run trained in one go: {text}")

    h.check(f"train (Hopper-v5 2:4, {TRAIN_STEPS:,} steps) SIGKILL + --resume + export", body)


def _attempts(run: Path) -> list[dict]:
    try:
        with open(run / "attempts.csv", newline="") as fh:
            return list(csv.DictReader(fh))
    except OSError:
        return []


def _mid_run(run: Path, step: int) -> bool:
    """The run is in its first attempt, past ``step`` (its eval.csv row) with a checkpoint and no done.json:
    a kill now loses the work since that checkpoint."""
    return ((run / "checkpoint.pt").is_file() and not (run / "done.json").exists() and len(_attempts(run)) == 1
            and max(_eval_steps(run / "eval.csv"), default=0) >= step)


def _resumed_from(run: Path) -> str:
    """Where the run's last attempt started, from its attempts.csv (steps_trained of its `trained` row)."""
    att = _attempts(run)
    last = att[-1] if att else {}
    if last.get("event") != "trained" or last.get("resumed") != "True":
        raise Failed(f"{run.name} was not resumed: attempts.csv {[(a['event'], a['resumed']) for a in att]}")
    return f"{run.name} resumed at step {CAMPAIGN_STEPS - int(last['steps_trained'])}"


def campaign_checks(h: Harness) -> None:
    cfg = h.root / "campaign.yaml"
    cfg.write_text(CAMPAIGN_CONFIG)
    ref = h.root / "camp_ref"
    have_ref = False

    def reference():
        nonlocal have_ref
        h.run("campaign", str(cfg), "--out", str(ref), "--workers", "2")
        have_ref = True
        return True, f"{len(CAMPAIGN_RUNS)} runs of {CAMPAIGN_STEPS:,} steps trained in one go (the reference)"

    def start_mid_run(folder: str, runs: tuple[str, ...], step: int, what: str):
        """The campaign started in ``folder``, once each of ``runs`` is mid-run past ``step``: (out, args, proc)."""
        if not have_ref:
            raise Failed("no reference campaign")
        out = h.root / folder
        args = ("campaign", str(cfg), "--out", str(out), "--workers", "2")
        proc = h.start(*args)
        h.wait_for(lambda: all(_mid_run(out / n, step) for n in runs), proc, what)
        return out, args, proc

    def resumed_all(out: Path) -> str:
        return ", ".join(_resumed_from(out / n) for n in CAMPAIGN_RUNS)

    def compare_all(out: Path) -> tuple[bool, str]:
        results = [compare_runs(ref / name, out / name) for name in CAMPAIGN_RUNS]
        ok = all(r[0] for r in results)
        if len({r[1] for r in results}) == 1:
            return ok, f"{' and '.join(CAMPAIGN_RUNS)} each vs the reference: {results[0][1]}"
        return ok, "; ".join(f"{name}: {text}" for name, (_, text) in zip(CAMPAIGN_RUNS, results))

    def worker_killed():
        name = CAMPAIGN_RUNS[0]
        out, _, proc = start_mid_run("camp_worker", (name,), 800, f"{name}'s step-800 eval row")
        pid = int(_attempts(out / name)[0]["pid"])
        _signal(pid, signal.SIGKILL)  # the Ray worker training the run
        stdout, err = proc.communicate(timeout=h.timeout)
        if proc.returncode != 0:
            raise Failed(f"the campaign exited {proc.returncode}: {_tail(err or stdout)}")
        att = _attempts(out / name)
        starts = [(a["event"], a["resumed"]) for a in att]
        if starts[:2] != [("start", "False"), ("start", "True")]:
            raise Failed(f"{name}'s attempts.csv: {starts}")
        ok, text = compare_all(out)
        return ok, (f"Ray worker (pid {pid}) training {name} SIGKILLed after its step-800 evaluation; Ray retried "
                    f"it: {_resumed_from(out / name)}; {text}")

    def ctrl_c():
        out, args, proc = start_mid_run("camp_int", CAMPAIGN_RUNS, 400, "every run's step-400 eval row")
        _signal_group(proc.pid, signal.SIGINT)
        stdout, err = proc.communicate(timeout=h.timeout)
        line = next((ln for ln in (stdout + err).splitlines() if "nmlab campaign: interrupted" in ln), "")
        if proc.returncode != 130 or not line:
            raise Failed(f"Ctrl-C: exit {proc.returncode}, {_tail(err or stdout)}")
        if all((out / n / "done.json").exists() for n in CAMPAIGN_RUNS):
            raise Failed("every run had finished before the Ctrl-C")
        h.run(*args)
        ok, text = compare_all(out)
        return ok, f"exit 130: {line.split(';')[1].strip()}; same command again: {resumed_all(out)}; {text}"

    def ray_killed():
        out, args, proc = start_mid_run("camp_ray", CAMPAIGN_RUNS, 400, "every run's step-400 eval row")
        killed, ended = h.kill_ray_wait(proc, "campaign", "instance")
        if proc.returncode == 0 or all((out / n / "done.json").exists() for n in CAMPAIGN_RUNS):
            raise Failed(f"the campaign finished (exit {proc.returncode}) although its Ray instance was killed")
        h.run(*args)
        ok, text = compare_all(out)
        return ok, (f"{killed} processes of the campaign's Ray instance SIGKILLed mid-run; the driver ended {ended:.0f} s "
                    f"later, exit {proc.returncode}; same command again: {resumed_all(out)}; {text}")

    h.check(f"campaign reference (Ray, {' + '.join(CAMPAIGN_RUNS)})", reference)
    h.check("campaign Ray worker SIGKILL, retried by Ray", worker_killed)
    h.check("campaign Ctrl-C (SIGINT to the driver's group) + same command", ctrl_c)
    h.check("campaign Ray instance SIGKILLed (as by ray stop --force) + same command", ray_killed)


PARTS = {"sweep": sweep_checks, "train": train_checks, "campaign": campaign_checks}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", choices=sorted(PARTS), action="append",
                        help="run only this part (repeatable): sweep (local pool and Ray cluster), train "
                             "(nmlab train + export), campaign (nmlab campaign on Ray)")
    parser.add_argument("--timeout", type=float, default=300.0,
                        help="seconds any one command or wait may take (default: 300)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (its path is printed)")
    args = parser.parse_args(argv)
    if not args.timeout > 0:
        parser.error(f"--timeout: must be a positive number of seconds, got {args.timeout}")
    if not sys.platform.startswith("linux"):
        parser.error("runs on Linux only (finds processes in /proc)")
    t0 = time.monotonic()
    root = Path(tempfile.mkdtemp(prefix="nmfr"))
    print(f"fault recovery: {', '.join(args.only or PARTS)}; TMP = {root}", flush=True)
    h = Harness(root, args.timeout)
    try:
        for name in (args.only or PARTS):
            PARTS[name](h)
    finally:
        h.cleanup()
        if args.keep:
            print(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    failed = sum(not ok for ok, _ in h.results)
    print(f"{len(h.results) - failed} of {len(h.results)} checks passed; wall {time.monotonic() - t0:.0f} s; "
          f"{describe()}")
    return 1 if failed or not h.results else 0


if __name__ == "__main__":
    sys.exit(main())
