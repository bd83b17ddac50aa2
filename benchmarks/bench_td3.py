"""Training throughput of dense TD3 vs RNM-TD3 (ours) vs Stable-Baselines3's TD3, in one run.

Each configuration trains on the same env with the same hyperparameters (256-256 MLPs,
batch 256, Adam 3e-4, gamma 0.99, tau 0.005, policy delay 2, target noise 0.2 / 0.5,
exploration noise 0.1, one gradient update per env step) for ``--learning-starts`` random
steps followed by ``--updates`` learning steps, single-threaded torch on the CPU. What is
timed is the whole ``learn``/``train`` call, so each learning step is one env step, one
action inference and one gradient update (the actor every second one); ours additionally
runs one 1-episode evaluation and writes one checkpoint at the end (counted against us).
Configurations are interleaved over ``--repeats`` rounds so load drift on a shared machine
hits them alike; the median is reported.

    .venv/bin/python benchmarks/bench_td3.py --env Hopper-v5 --updates 3000 --repeats 3

Needs the ``bench`` extra (stable-baselines3). Prints a table and writes ``--csv``.
"""

from __future__ import annotations

import argparse
import csv
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

import torch  # noqa: E402


def run_ours(env: str, sparsity: str, learning_starts: int, updates: int, seed: int) -> float:
    """Seconds for one nmlab TD3 / RNM-TD3 run of learning_starts + updates steps."""
    from rl import td3

    tmp = tempfile.mkdtemp(prefix="bench_td3_")
    try:
        args = td3.Args(env=env, sparsity=sparsity, steps=learning_starts + updates, learning_starts=learning_starts,
                        seed=seed, out=str(Path(tmp) / "run"), eval_every=10**9, eval_episodes=1,
                        checkpoint_every=10**9, tensorboard=False, progress=False, torch_threads=1)
        t = time.perf_counter()
        td3.train(args)
        return time.perf_counter() - t
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def run_sb3(env: str, learning_starts: int, updates: int, seed: int) -> float:
    """Seconds for one Stable-Baselines3 TD3 run with the same hyperparameters."""
    import gymnasium as gym
    import numpy as np
    from stable_baselines3 import TD3
    from stable_baselines3.common.noise import NormalActionNoise

    e = gym.make(env)
    act_dim = e.action_space.shape[0]
    model = TD3("MlpPolicy", e, learning_rate=3e-4, buffer_size=1_000_000, learning_starts=learning_starts,
                batch_size=256, tau=0.005, gamma=0.99, train_freq=1, gradient_steps=1, policy_delay=2,
                target_policy_noise=0.2, target_noise_clip=0.5,
                action_noise=NormalActionNoise(np.zeros(act_dim), 0.1 * np.ones(act_dim)),
                policy_kwargs=dict(net_arch=[256, 256]), seed=seed, device="cpu", verbose=0)
    t = time.perf_counter()
    model.learn(total_timesteps=learning_starts + updates)
    return time.perf_counter() - t


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--env", default="Hopper-v5")
    ap.add_argument("--updates", type=int, default=3000, help="learning steps (= gradient updates) per run")
    ap.add_argument("--learning-starts", type=int, default=1000, help="random steps before learning")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--sparsity", nargs="+", default=["dense", "2:4", "1:8"])
    ap.add_argument("--no-sb3", action="store_true", help="skip Stable-Baselines3")
    ap.add_argument("--csv", default=None, help="write per-run timings here")
    a = ap.parse_args()
    torch.set_num_threads(1)
    configs = [("nmlab", s) for s in a.sparsity] + ([] if a.no_sb3 else [("sb3", "dense")])
    times: dict[tuple[str, str], list[float]] = {c: [] for c in configs}
    rows = []
    # Untimed warm-up of each implementation (imports, first-call allocations).
    run_ours(a.env, a.sparsity[0], 200, 50, 99)
    if not a.no_sb3:
        run_sb3(a.env, 200, 50, 99)
    for rep in range(a.repeats):
        for impl, sp in configs:
            sec = run_ours(a.env, sp, a.learning_starts, a.updates, rep) if impl == "nmlab" else run_sb3(a.env, a.learning_starts, a.updates, rep)
            times[(impl, sp)].append(sec)
            rows.append({"impl": impl, "sparsity": sp, "repeat": rep, "seconds": round(sec, 3)})
            print(f"round {rep} {impl:6s} {sp:6s} {sec:7.1f} s", file=sys.stderr, flush=True)
    n = a.learning_starts + a.updates
    print(f"\n{a.env}: {a.learning_starts} random + {a.updates} learning steps, median of {a.repeats}, 1 torch thread")
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} logical CPUs, torch {torch.__version__}, load avg {os.getloadavg()[0]:.2f}")
    dense = statistics.median(times[("nmlab", "dense")]) if ("nmlab", "dense") in times else None
    sb3 = statistics.median(times[("sb3", "dense")]) if ("sb3", "dense") in times else None
    print(f"{'impl':8s} {'pattern':8s} {'steps/s':>9s} {'vs dense':>9s} {'vs SB3':>8s}")
    for (impl, sp), ts in times.items():
        med = statistics.median(ts)
        # Learning-phase rate: the random phase takes well under a second at these sizes.
        rate = n / med
        print(f"{impl:8s} {sp:8s} {rate:9.1f} {'' if dense is None else f'{dense / med:9.2f}'} "
              f"{'' if sb3 is None else f'{sb3 / med:8.2f}'}")
    if a.csv:
        with open(a.csv, "w", newline="") as fh:
            w = csv.DictWriter(fh, ["impl", "sparsity", "repeat", "seconds"])
            w.writeheader()
            w.writerows(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
