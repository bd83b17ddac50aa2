"""Reduced-scale campaign driver: Hopper-v5 and HalfCheetah-v5, 2 seeds, dense TD3 vs RNM-TD3
(2:4, 1:4, 1:8) vs RLx2 vs gradual magnitude pruning + 8-bit QAT.

Runs ``nmlab train`` for every run of :func:`campaign_runs` in order, at most ``--jobs`` at a
time (each single-threaded, ``nice -n 5``), passing ``--resume`` to runs that already have a
checkpoint, so a later session continues the campaign by starting it again::

    nohup setsid .venv/bin/python -m rl.campaign --root runs/reduced --steps 200000 > runs/reduced/campaign.log 2>&1 &

A run is finished when its checkpoint's step equals ``--steps``. ``--status`` prints where
every run stands and exits. Results are published by :mod:`rl.publish`.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional, Sequence

ENVS = ("Hopper-v5", "HalfCheetah-v5")
PATTERNS = ("dense", "2:4", "1:4", "1:8")
#: Further methods (issue 7), by run label. RLx2 uses the paper's per-env actor/critic
#: sparsities (Tan et al. 2023, TD3 table; /work/shared/reference/rl.md) and a topology
#: interval scaled to 200k-step runs (2000 keeps the paper's ~97 critic updates of topology).
#: GMP prunes both networks to 90% on the cubic schedule, then trains 20% of the steps with
#: 8-bit QAT (Ivanov et al. 2024; Graesser et al. 2022 for TD3 at ~90%).
RLX2_SPARSITY = {"Hopper-v5": ("0.98", "0.95"), "HalfCheetah-v5": ("0.9", "0.85")}
METHODS = ("rlx2", "gmp")


def pattern_tag(pattern: str) -> str:
    """'2:4' -> '2of4', 'dense' -> 'dense' (file-name safe)."""
    return pattern.replace(":", "of")


def run_name(env: str, pattern: str, seed: int) -> str:
    """``hopper_2of4_s0``: lower-case env without -v5, pattern tag, seed."""
    return f"{env.lower().replace('-v5', '')}_{pattern_tag(pattern)}_s{seed}"


#: Labels in priority groups: dense and 2:4 of both envs first, then 1:4 and 1:8, then the methods.
GROUPS = (("dense", "2:4"), ("1:4", "1:8"), METHODS)
LABELS = tuple(label for group in GROUPS for label in group)


def campaign_runs(seeds: int = 2, only: Optional[Sequence[str]] = None) -> list[tuple[str, str, int]]:
    """(env, label, seed) in priority order: dense and 2:4 of both envs first, then 1:4 and 1:8,
    then RLx2 and GMP, then the next seed. A label is an N:M pattern, 'dense' or a method of METHODS.
    ``only`` keeps the runs of these labels (one issue's runs before the rest)."""
    order = []
    for seed in range(seeds):
        for group in GROUPS:
            for env in ENVS:
                order += [(env, p, seed) for p in group if not only or p in only]
    return order


def label_args(env: str, label: str) -> list[str]:
    """The ``nmlab train`` options that select a run's method and sparsity."""
    if label == "rlx2":
        actor, critic = RLX2_SPARSITY[env]
        return ["--method", "rlx2", "--sparsity", critic, "--actor-sparsity", actor, "--critic-sparsity", critic,
                "--rlx2-delta", "2000"]
    if label == "gmp":
        return ["--method", "gmp", "--sparsity", "0.9", "--qat-bits", "8"]
    return ["--sparsity", label]


def running_outs() -> set[str]:
    """Resolved ``--out`` directories of ``nmlab train`` processes alive on this machine (any
    driver's, or started by hand), so a restarted driver never trains a run twice."""
    outs = set()
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            argv = cmdline.read_bytes().decode(errors="replace").split("\0")
            cwd = os.readlink(cmdline.parent / "cwd")
        except OSError:
            continue  # the process ended while we looked
        if "train" in argv and "--out" in argv and any(a.endswith("nmlab") for a in argv):
            i = argv.index("--out")
            if i + 1 < len(argv):
                outs.add(str((Path(cwd) / argv[i + 1]).resolve()))
    return outs


def run_step(run_dir: Path) -> Optional[int]:
    """Steps done according to the run's checkpoint, or None without one."""
    ckpt = run_dir / "checkpoint.pt"
    if not ckpt.is_file():
        return None
    from rl.checkpoint import load_checkpoint

    try:
        return int(load_checkpoint(ckpt)["global_step"])
    except Exception:  # a damaged checkpoint: report, never crash the driver
        return -1


def _complete_in(run_dir: Path, steps: int) -> bool:
    from rl.device_campaign import is_complete  # imports this module: keep it lazy

    return is_complete(run_dir, steps)


def command(env: str, pattern: str, seed: int, run_dir: Path, steps: int, resume: bool) -> list[str]:
    """The nmlab train command line of one run (default hyperparameters, 25k random start steps)."""
    exe = str(Path(sys.executable).with_name("nmlab"))
    cmd = ["nice", "-n", "5", exe, "train", "--env", env, *label_args(env, pattern), "--seed", str(seed),
           "--steps", str(steps), "--out", str(run_dir), "--checkpoint-every", "10000", "--torch-threads", "1"]
    return cmd + (["--resume"] if resume else [])


def main(argv: Optional[list[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()),
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--root", default="runs/reduced", help="directory holding one folder per run")
    ap.add_argument("--steps", type=int, default=200_000, help="environment steps per run")
    ap.add_argument("--seeds", type=int, default=2, help="seeds per (env, pattern)")
    ap.add_argument("--jobs", type=int, default=2, help="runs at a time (one core each)")
    ap.add_argument("--status", action="store_true", help="print each run's progress and exit")
    ap.add_argument("--done-in", nargs="*", default=[], metavar="ROOT",
                    help="skip runs complete under these roots (runs/device: trained on a GPU machine, rl.device_campaign)")
    ap.add_argument("--only", nargs="+", choices=LABELS, metavar="LABEL",
                    help=f"train only the runs of these labels ({', '.join(LABELS)}); default: all")
    args = ap.parse_args(argv)
    root = Path(args.root)
    root.mkdir(parents=True, exist_ok=True)
    todo = []
    for env, pattern, seed in campaign_runs(args.seeds, args.only):
        run_dir = root / run_name(env, pattern, seed)
        step = run_step(run_dir)
        elsewhere = next((d for d in args.done_in if _complete_in(Path(d) / run_dir.name, args.steps)), None)
        if args.status:
            print(f"{run_dir.name:28s} {'-' if step is None else step:>8} / {args.steps}"
                  + (f"  (complete in {elsewhere})" if elsewhere else ""))
        elif elsewhere:
            continue
        elif step is None or step < args.steps:
            todo.append((env, pattern, seed, run_dir, step is not None))
    if args.status:
        return 0
    # One driver per root: two would train the same run directory twice.
    lock = root / "campaign.pid"
    if lock.is_file():
        try:
            os.kill(int(lock.read_text().strip()), 0)
            print(f"campaign: another driver (pid {lock.read_text().strip()}) is running on {root}", file=sys.stderr)
            return 2
        except (ProcessLookupError, ValueError):
            pass  # stale lock from a driver that is gone
    lock.write_text(str(os.getpid()))
    env_vars = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    running: list[tuple[subprocess.Popen, str]] = []
    while todo or running:
        foreign = running_outs() - {str(Path(name).resolve()) for _, name in running}
        # Runs another process is training count against --jobs and wait until it is done.
        while len(running) + len(foreign) < args.jobs and any(str(t[3].resolve()) not in foreign for t in todo):
            item = next(t for t in todo if str(t[3].resolve()) not in foreign)
            todo.remove(item)
            env, pattern, seed, run_dir, resume = item
            step = run_step(run_dir)
            if step is not None and step >= args.steps:
                continue  # another process finished it while we waited
            if resume is False and step is not None:
                resume = True  # another process checkpointed it while we waited
            if not resume and run_dir.exists():
                shutil.rmtree(run_dir)  # killed before its first checkpoint: nothing to continue
            run_dir.mkdir(parents=True, exist_ok=True)
            log = open(run_dir.parent / f"{run_dir.name}.log", "a")
            cmd = command(env, pattern, seed, run_dir, args.steps, resume)
            print(time.strftime("%H:%M:%S"), "start", " ".join(cmd), flush=True)
            running.append((subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env_vars), str(run_dir)))
        time.sleep(10)
        for proc, name in list(running):
            if proc.poll() is not None:
                print(time.strftime("%H:%M:%S"), "done", Path(name).name, "rc", proc.returncode, flush=True)
                running.remove((proc, name))
        for t in list(todo):  # a foreign process finished this run meanwhile
            if str(t[3].resolve()) not in foreign and (run_step(t[3]) or 0) >= args.steps:
                todo.remove(t)
    lock.unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
