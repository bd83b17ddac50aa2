"""Learning-curve reference: Stable-Baselines3's TD3 with nmlab's TD3 hyperparameters.

A check of our dense TD3's *quality* (bench_td3.py checks its speed): SB3's TD3 trained with
the same hyperparameters (256-256, Adam 3e-4, batch 256, gamma 0.99, tau 0.005, target noise
0.2 clipped at 0.5, exploration noise 0.1, policy delay 2, 25k random start steps, 1M buffer;
read from ``rl.td3.Args`` by sb3_td3.py) and evaluated exactly as ``nmlab train`` evaluates:
every ``--eval-every`` steps, the deterministic policy over ``--eval-episodes`` episodes whose
start states are seeded ``seed + 100000 + i`` (through rl.td3.evaluate_policy itself). Writes
``eval.csv`` in the format of ``nmlab train`` (step, return_mean, return_std, episodes,
time_s) and ``args.json``, so the curve sits beside a run of ours in the same units.

    python benchmarks/sb3_reference.py --env Hopper-v5 --steps 150000 --seed 0 --out runs/reference/sb3_hopper_s0

Needs the ``bench`` extra (``pip install -e .[bench]``: stable-baselines3).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--env", default="Hopper-v5")
    ap.add_argument("--steps", type=int, default=200_000, help="environment steps")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--learning-starts", type=int, default=25_000)
    ap.add_argument("--eval-every", type=int, default=10_000)
    ap.add_argument("--eval-episodes", type=int, default=10)
    ap.add_argument("--torch-threads", type=int, default=1)
    ap.add_argument("--out", type=Path, required=True, help="run folder (eval.csv, args.json)")
    a = ap.parse_args(argv)
    try:
        from stable_baselines3.common.callbacks import BaseCallback
    except ImportError:
        print("sb3_reference: error: stable-baselines3 is not installed (pip install -e .[bench])", file=sys.stderr)
        return 2
    import numpy as np
    import torch

    from hwmodel.io import atomic_write
    from rl.td3 import evaluate_policy, make_env
    from sb3_td3 import sb3_td3  # benchmarks/sb3_td3.py: our hyperparameters, read from rl.td3.Args

    torch.set_num_threads(a.torch_threads)
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / "args.json").write_text(json.dumps({
        "env": a.env, "method": "sb3-td3", "sparsity": "dense", "seed": a.seed, "steps": a.steps,
        "learning_starts": a.learning_starts, "eval_every": a.eval_every, "eval_episodes": a.eval_episodes,
        "stable_baselines3": __import__("stable_baselines3").__version__}, indent=1))
    rows: list[str] = ["step,return_mean,return_std,episodes,time_s"]
    t0 = time.time()

    def evaluate(model) -> list[float]:
        # nmlab's own evaluation loop, with SB3's deterministic action in place of our actor.
        def act(obs: torch.Tensor) -> torch.Tensor:
            return torch.as_tensor(model.predict(obs.squeeze(0).numpy(), deterministic=True)[0]).unsqueeze(0)

        return evaluate_policy(act, a.env, a.eval_episodes, a.seed)

    class EvalEvery(BaseCallback):
        def _on_step(self) -> bool:
            if self.num_timesteps % a.eval_every == 0:
                r = evaluate(self.model)
                rows.append(f"{self.num_timesteps},{np.mean(r):.4f},{np.std(r):.4f},{len(r)},{time.time() - t0:.2f}")
                with atomic_write(a.out / "eval.csv", "w") as fh:  # rewritten each time: a killed run keeps its curve
                    fh.write("\n".join(rows) + "\n")
                print(f"{a.env} sb3-td3 seed {a.seed}: step {self.num_timesteps}, eval {np.mean(r):.1f}", flush=True)
            return True

    model = sb3_td3(make_env(a.env), a.learning_starts, a.seed)
    model.learn(total_timesteps=a.steps, callback=EvalEvery())
    return 0


if __name__ == "__main__":
    sys.exit(main())
