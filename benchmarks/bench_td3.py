"""Training throughput of dense TD3 vs RNM-TD3 (ours) vs Stable-Baselines3's TD3, in one run.

Each configuration trains on the same env with the same hyperparameters (256-256 MLPs,
batch 256, Adam 3e-4, gamma 0.99, tau 0.005, policy delay 2, target noise 0.2 / 0.5,
exploration noise 0.1, one gradient update per env step) for ``--learning-starts`` random
steps followed by ``--updates`` learning steps, single-threaded torch on the CPU. Each
learning step is one env step, one action inference and one gradient update (the actor
every second one). Every configuration is also run with 0 learning steps and that time is
subtracted, so set-up, the random phase and our end-of-run evaluation and checkpoint
cancel out and the rate is updates per second of the learning phase. CPU time of this
process is reported beside wall time: on a shared machine it is far less disturbed by
other processes. Configurations are interleaved over ``--repeats`` rounds, in an order rotated every
round, and the median is reported.

    .venv/bin/python benchmarks/bench_td3.py --env Hopper-v5 --updates 2000 --repeats 5

Needs the ``bench`` extra (stable-baselines3). Prints a table and writes ``--csv``.
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))  # sb3_td3.py

import torch  # noqa: E402


def run_ours(env: str, sparsity: str, learning_starts: int, updates: int, seed: int) -> tuple[float, float]:
    """(wall, CPU) seconds of one nmlab run of learning_starts + updates steps. ``sparsity``:
    an N:M pattern or 'dense' (TD3 / RNM-TD3), or METHOD=SPARSITY for another method
    ('rlx2=0.9', 'gmp=0.9')."""
    from rl import td3

    method, _, sp = sparsity.rpartition("=")
    tmp = tempfile.mkdtemp(prefix="bench_td3_")
    try:
        args = td3.Args(env=env, method=method, sparsity=sp, steps=learning_starts + updates, learning_starts=learning_starts,
                        seed=seed, out=str(Path(tmp) / "run"), eval_every=10**9, eval_episodes=1,
                        checkpoint_every=10**9, tensorboard=False, progress=False, torch_threads=1)
        t, c = time.perf_counter(), time.process_time()
        td3.train(args)
        return time.perf_counter() - t, time.process_time() - c
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def run_sb3(env: str, learning_starts: int, updates: int, seed: int) -> tuple[float, float]:
    """(wall, CPU) seconds of one Stable-Baselines3 TD3 run with the same hyperparameters (sb3_td3.py)."""
    from sb3_td3 import sb3_td3  # benchmarks/sb3_td3.py

    model = sb3_td3(env, learning_starts, seed)
    t, c = time.perf_counter(), time.process_time()
    model.learn(total_timesteps=learning_starts + updates)
    return time.perf_counter() - t, time.process_time() - c


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--env", default="Hopper-v5")
    ap.add_argument("--updates", type=int, default=3000, help="learning steps (= gradient updates) per run")
    ap.add_argument("--learning-starts", type=int, default=1000, help="random steps before learning")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--sparsity", nargs="+", default=["dense", "2:4", "1:8"],
                    help="configurations: N:M patterns or 'dense', or METHOD=SPARSITY ('rlx2=0.9', 'gmp=0.9')")
    ap.add_argument("--no-sb3", action="store_true", help="skip Stable-Baselines3")
    ap.add_argument("--csv", default=None, help="write per-run timings here")
    a = ap.parse_args()
    if not a.no_sb3 and importlib.util.find_spec("stable_baselines3") is None:
        # Checked before any run: without it the SB3 warm-up ended in a ModuleNotFoundError
        # traceback after our own warm-up had run.
        print("bench_td3: error: stable-baselines3 is not installed (pip install -e .[bench], "
              "or pass --no-sb3)", file=sys.stderr)
        return 2
    torch.set_num_threads(1)
    configs = [("nmlab", s) for s in a.sparsity] + ([] if a.no_sb3 else [("sb3", "dense")])
    times: dict[tuple[str, str], list[tuple[float, float]]] = {c: [] for c in configs}
    rows = []
    # Untimed warm-up of each implementation (imports, first-call allocations).
    run_ours(a.env, a.sparsity[0], 200, 50, 99)
    if not a.no_sb3:
        run_sb3(a.env, 200, 50, 99)
    def one(impl: str, sp: str, updates: int, rep: int) -> tuple[float, float]:
        if impl == "nmlab":
            return run_ours(a.env, sp, a.learning_starts, updates, rep)
        return run_sb3(a.env, a.learning_starts, updates, rep)

    # Each round times every configuration twice: with 0 and with --updates learning steps.
    # The difference is the learning phase alone (set-up, random steps, our final 1-episode
    # evaluation and checkpoint cancel out), so the rate is gradient updates (= learning
    # env steps) per second. CPU time (this process only) is much less sensitive than wall
    # time to other processes on a shared machine; both are reported.
    for rep in range(a.repeats):
        # Rotate the order every round so no configuration always runs first or last.
        for impl, sp in configs[rep % len(configs):] + configs[: rep % len(configs)]:
            w0, c0 = one(impl, sp, 0, rep)
            w1, c1 = one(impl, sp, a.updates, rep)
            times[(impl, sp)].append((w1 - w0, c1 - c0))
            rows.append({"impl": impl, "sparsity": sp, "repeat": rep, "wall_s": round(w1 - w0, 3), "cpu_s": round(c1 - c0, 3)})
            print(f"round {rep} {impl:6s} {sp:9s} learning phase {w1 - w0:7.1f} s wall, {c1 - c0:7.1f} s CPU", file=sys.stderr, flush=True)
    print(f"\n{a.env}: {a.learning_starts} random steps then {a.updates} learning steps (1 update each), "
          f"median of {a.repeats} rounds, 1 torch thread")
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} logical CPUs, torch {torch.__version__}, "
          f"load avg {os.getloadavg()[0]:.2f} at the end")
    med = {k: (statistics.median(w for w, _ in v), statistics.median(c for _, c in v)) for k, v in times.items()}
    dense = med.get(("nmlab", "dense"))
    sb3 = med.get(("sb3", "dense"))
    print(f"{'impl':6s} {'config':9s} {'upd/s wall':>10s} {'upd/s CPU':>10s} {'vs dense (CPU)':>15s} {'vs SB3 (CPU)':>13s}")
    for (impl, sp), (w, c) in med.items():
        print(f"{impl:6s} {sp:9s} {a.updates / w:10.1f} {a.updates / c:10.1f} "
              f"{'' if dense is None else f'{dense[1] / c:15.2f}'} {'' if sb3 is None else f'{sb3[1] / c:13.2f}'}")
    if a.csv:
        with open(a.csv, "w", newline="") as fh:
            w = csv.DictWriter(fh, ["impl", "sparsity", "repeat", "wall_s", "cpu_s"])
            w.writeheader()
            w.writerows(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
