"""Stable-Baselines3's TD3 configured with nmlab's TD3 defaults (rl.td3.Args), for side-by-side checks.

The hyperparameters are read from ``rl.td3.Args``, not typed again, so the speed benchmark
(bench_td3.py) and the learning-curve reference (sb3_reference.py) compare against the same
configuration ours trains with. Needs the ``bench`` extra (stable-baselines3).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def sb3_td3(env, learning_starts: int, seed: int):
    """An SB3 ``TD3`` on ``env`` (an env id or a gymnasium env) with nmlab's default hyperparameters.

    Args:
        env: gymnasium env or env id.
        learning_starts: random-action steps before learning (ours: ``--learning-starts``).
        seed: SB3's seed.
    """
    import numpy as np
    from stable_baselines3 import TD3
    from stable_baselines3.common.noise import NormalActionNoise

    from rl.td3 import Args

    d = Args()
    model = TD3("MlpPolicy", env, learning_rate=d.learning_rate, buffer_size=d.buffer_size,
                learning_starts=learning_starts, batch_size=d.batch_size, tau=d.tau, gamma=d.gamma,
                train_freq=1, gradient_steps=1, policy_delay=d.policy_frequency,
                target_policy_noise=d.policy_noise, target_noise_clip=d.noise_clip,
                policy_kwargs=dict(net_arch=[d.hidden, d.hidden]), seed=seed, device="cpu", verbose=0)
    # SB3 adds action noise in its [-1, 1]-scaled action space: a fraction of the box
    # half-width, as our --exploration-noise is.
    act_dim = model.action_space.shape[0]
    model.action_noise = NormalActionNoise(np.zeros(act_dim), d.exploration_noise * np.ones(act_dim))
    return model
