"""TD3 and RNM-TD3 (row-wise N:M sparse TD3) on any gymnasium Box environment, in one file.

Reads top to bottom (the config, :class:`Args`, every knob with its default, is in
:mod:`rl.args`, which does not import torch): the networks,
(the replay buffer is :mod:`rl.replay`), environment state capture (for exact resume), then :func:`train`.

TD3 (Fujimoto et al., 2018) with the current defaults of sfujim/TD3 and CleanRL
(shared/reference/rl.md): 256-256 MLPs, Adam 3e-4, batch 256, gamma 0.99, tau 0.005,
target policy noise 0.2 clipped at 0.5, exploration noise 0.1, policy delay 2, 25k random
start steps, 1M buffer.

RNM-TD3 (Vrce et al., arXiv 2602.14578): every linear layer of all six networks (actor,
twin critics, their targets) is an :class:`rl.nm_layers.NMLinear` whose forward pass uses
``W * mask`` with ``mask`` row-wise N:M, from the first step to the last. Online masks are
re-projected from the dense latent weights every ``mask_update_interval`` gradient updates
(only kept weights train, the paper's rule; ``--straight-through``: SR-STE, gradients reach
pruned weights too); the targets' latent weights are Polyak
averages of the online latent weights and their masks are re-projected from their own
latent weights at the same interval (always N:M: a forward pass uses ``W * mask``). The
Sparse Architecture Divergence (SAD, fraction of online mask entries that changed) is logged at every mask update. The paper does not state its interval or
whether it keeps dense latent weights: ours are choices, documented in docs/rl.md.

Sparse-training methods (``--method``: td3, rnm, rlx2, gmp) live behind the hook interface
of :mod:`rl.methods`; the loop below calls their hooks (masking, pruning, topology updates,
QAT) at fixed points, and TD3 / RNM-TD3 are the methods ``td3`` and ``rnm`` there.

Run directory (``--out``): ``checkpoint.pt`` (see :mod:`rl.checkpoint`), ``progress.csv``
(one row per training episode), ``eval.csv`` (periodic deterministic evaluation),
``sad.csv`` (one row per mask update), ``method.csv`` (the method's scalars: pruned fractions...),
``losses.csv``, ``args.json``, ``tb/`` (TensorBoard).
"""

from __future__ import annotations

import copy
import csv
import dataclasses
import json
import os
import sys
import time
from pathlib import Path
from typing import Any, Optional

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from hwmodel.errors import NmlabError
from hwmodel.io import atomic_write
from hwmodel.sparsity import Pattern, parse_pattern
from rl.args import Args
from rl.checkpoint import checkpoint_path, load_checkpoint, save_checkpoint
from rl.methods import DISPLAY_NAMES, Method, make_method, nm_layer_patterns, parse_overrides, resolve_method
from rl.nm_layers import NMLinear, polyak_update, update_masks  # noqa: F401  (update_masks: re-exported)
from rl.replay import ReplayBuffer  # noqa: F401  (ReplayBuffer lived here: re-exported)


# ----------------------------------------------------------------------------- config
#: Knobs a resumed run may change; every other one must match the checkpoint.
RESUMABLE_OVERRIDES = ("steps", "eval_every", "eval_episodes", "checkpoint_every", "log_every", "tensorboard",
                       "progress", "torch_threads", "device", "resume", "out")


def method_name(args: Args) -> str:
    """Name of the run's method in workload meta and quality rows: 'td3', 'rnm-td3', 'rlx2', 'gmp'."""
    return DISPLAY_NAMES[resolve_method(args)]


def layer_patterns(args: Args) -> dict[str, Pattern]:
    """Pattern of each layer, keyed ``actor.fc1`` .. ``critic.fc3`` (critic = both critics),
    as the run's method sets them (unstructured for rlx2/gmp fractions)."""
    if resolve_method(args) in ("td3", "rnm"):
        return nm_layer_patterns(args.sparsity, args.layer_sparsity)
    return make_method(args).layer_patterns()


def validate_args(args: Args) -> None:
    """One-line NmlabError naming the first bad knob (types and bounds as on the command
    line first: a campaign's ``train:`` or a checkpoint's args did not come through argparse)."""
    from rl.train_cmd import check_option

    for f in dataclasses.fields(Args):
        check_option(f.name, getattr(args, f.name))
    make_method(args)
    positive = ("steps", "hidden", "buffer_size", "batch_size", "policy_frequency", "mask_update_interval",
                "eval_every", "eval_episodes", "checkpoint_every", "log_every", "torch_threads", "prune_every")
    for name in positive:  # check_option took them as integers >= 0
        value = getattr(args, name)
        if value < 1:
            raise NmlabError(f"{name}: must be a positive integer, got {value!r}")
    for name in ("gamma", "tau"):
        if not 0.0 <= getattr(args, name) <= 1.0:
            raise NmlabError(f"{name}: must be in [0, 1], got {getattr(args, name)}")
    for name in ("learning_rate", "policy_noise", "noise_clip", "exploration_noise", "srste_decay"):
        if getattr(args, name) < 0:
            raise NmlabError(f"{name}: must be >= 0, got {getattr(args, name)}")
    if not (args.qat_bits == 0 or 2 <= args.qat_bits <= 16):
        raise NmlabError(f"qat_bits: must be 0 (no QAT) or an integer from 2 to 16, got {args.qat_bits!r}")
    if not 0.0 <= args.qat_fraction < 1.0:
        raise NmlabError(f"qat_fraction: must be in [0, 1), got {args.qat_fraction}")
    if not 0.0 <= args.prune_start_fraction < 1.0:
        raise NmlabError(f"prune_start_fraction: must be in [0, 1), got {args.prune_start_fraction}")
    if not 0.0 < args.prune_end_fraction <= 1.0:
        raise NmlabError(f"prune_end_fraction: must be in (0, 1], got {args.prune_end_fraction}")
    if args.prune_start_fraction >= args.prune_end_fraction:
        # Named after the one moved from its default (a campaign names the key it was given).
        if args.prune_end_fraction == Args.prune_end_fraction:
            raise NmlabError(f"prune_start_fraction: must be below --prune-end-fraction {args.prune_end_fraction}, "
                             f"got {args.prune_start_fraction}")
        raise NmlabError(f"prune_end_fraction: must be above --prune-start-fraction {args.prune_start_fraction}, "
                         f"got {args.prune_end_fraction}")
    if not 0.0 < args.rlx2_buffer_drop_fraction <= 1.0:
        raise NmlabError(f"rlx2_buffer_drop_fraction: must be in (0, 1], got {args.rlx2_buffer_drop_fraction}")
    try:
        dev = torch.device(args.device)
    except (RuntimeError, TypeError, ValueError):
        raise NmlabError(f"device: not a torch device: {args.device!r}") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        # Also catches resuming a GPU-trained run on a CPU machine without --device cpu.
        raise NmlabError(f"device: {args.device!r}: torch {torch.__version__} sees no CUDA GPU here (pass --device cpu)")


# ----------------------------------------------------------------------------- environment
def make_env(env_id: str) -> gym.Env:
    """gymnasium.make with one-line errors for unknown ids and non-Box action spaces."""
    try:
        env = gym.make(env_id)
    except Exception as exc:  # gymnasium raises several error types for unknown/broken ids
        raise NmlabError(f"env: cannot make {env_id!r} ({str(exc).splitlines()[0][:120]})") from None
    if not isinstance(env.action_space, gym.spaces.Box) or not isinstance(env.observation_space, gym.spaces.Box):
        env.close()
        raise NmlabError(f"env: {env_id!r} needs Box observation and action spaces")
    if len(env.observation_space.shape) != 1 or len(env.action_space.shape) != 1:
        env.close()
        raise NmlabError(f"env: {env_id!r} needs flat (1-D) observation and action spaces")
    return env


def _time_limit(env: gym.Env) -> Optional[gym.wrappers.TimeLimit]:
    w = env
    while isinstance(w, gym.Wrapper):
        if isinstance(w, gym.wrappers.TimeLimit):
            return w
        w = w.env
    return None


def _mj_spec():
    import mujoco

    return mujoco.mjtState.mjSTATE_INTEGRATION


#: Derived MuJoCo arrays a gymnasium v5 env reads *before* it steps the physics: Ant-v5 its torso's ``xpos``
#: and Humanoid-v5 the mass centre from ``xipos`` (their forward reward is the move from there). They are not
#: integration state, and MuJoCo leaves them one substep behind ``qpos``, so they are saved as they are.
MJ_DERIVED = ("xpos", "xipos")


def get_env_state(env: gym.Env) -> dict[str, Any]:
    """Everything needed to continue the current episode bit for bit (MuJoCo physics + RNGs)."""
    u = env.unwrapped
    mj_state = mj_derived = None
    if hasattr(u, "model") and hasattr(u, "data"):
        import mujoco

        s = np.empty(mujoco.mj_stateSize(u.model, _mj_spec()), dtype=np.float64)
        mujoco.mj_getState(u.model, u.data, s, _mj_spec())
        mj_state = torch.from_numpy(s)
        mj_derived = {k: torch.from_numpy(np.array(getattr(u.data, k), dtype=np.float64)) for k in MJ_DERIVED}
    tl = _time_limit(env)
    return {
        "mj_state": mj_state,
        "mj_derived": mj_derived,
        "elapsed_steps": int(tl._elapsed_steps) if tl is not None and tl._elapsed_steps is not None else None,
        "env_rng": json.dumps(u.np_random.bit_generator.state),
        "action_space_rng": json.dumps(env.action_space.np_random.bit_generator.state),
    }


def set_env_state(env: gym.Env, state: dict[str, Any], seed: int) -> bool:
    """Restore :func:`get_env_state`. Returns False when the episode could not be restored
    (a non-MuJoCo env): the caller then starts a fresh episode."""
    env.reset(seed=seed)  # wrappers (order enforcing, time limit) need a reset first
    u = env.unwrapped
    restored = False
    if state.get("mj_state") is not None and hasattr(u, "model"):
        import mujoco

        mujoco.mj_setState(u.model, u.data, state["mj_state"].numpy().astype(np.float64), _mj_spec())
        derived = state.get("mj_derived")
        if derived is None:
            # A checkpoint from before mj_derived: the kinematics of the restored state (not of the reset
            # above), one substep ahead of what the run had, so Ant/Humanoid resume close, not exactly.
            mujoco.mj_kinematics(u.model, u.data)
        else:
            for k in MJ_DERIVED:
                target = getattr(u.data, k)
                value = derived[k].numpy()
                if value.shape != target.shape:
                    raise ValueError(f"{k}: shape {tuple(value.shape)}, this env has {tuple(target.shape)}")
                target[...] = value
        tl = _time_limit(env)
        if tl is not None:
            tl._elapsed_steps = state["elapsed_steps"]
        restored = True
    u.np_random.bit_generator.state = json.loads(state["env_rng"])
    env.action_space.np_random.bit_generator.state = json.loads(state["action_space_rng"])
    return restored


# ----------------------------------------------------------------------------- networks
class Actor(nn.Module):
    """Deterministic policy: obs -> fc1 -> relu -> fc2 -> relu -> fc3 -> tanh, scaled to the action box."""

    def __init__(self, obs_dim: int, act_dim: int, hidden: int, patterns: dict[str, Pattern],
                 low: np.ndarray, high: np.ndarray, decay: float, straight_through: bool) -> None:
        super().__init__()
        kw = dict(decay=decay, straight_through=straight_through)
        self.fc1 = NMLinear(obs_dim, hidden, patterns["actor.fc1"], **kw)
        self.fc2 = NMLinear(hidden, hidden, patterns["actor.fc2"], **kw)
        self.fc3 = NMLinear(hidden, act_dim, patterns["actor.fc3"], **kw)
        self.register_buffer("action_scale", torch.as_tensor((high - low) / 2.0, dtype=torch.float32))
        self.register_buffer("action_bias", torch.as_tensor((high + low) / 2.0, dtype=torch.float32))

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.fc1(obs))
        x = torch.relu(self.fc2(x))
        return torch.tanh(self.fc3(x)) * self.action_scale + self.action_bias


class Critic(nn.Module):
    """Q(obs, action): concat -> fc1 -> relu -> fc2 -> relu -> fc3 (one value)."""

    def __init__(self, obs_dim: int, act_dim: int, hidden: int, patterns: dict[str, Pattern],
                 decay: float, straight_through: bool) -> None:
        super().__init__()
        kw = dict(decay=decay, straight_through=straight_through)
        self.fc1 = NMLinear(obs_dim + act_dim, hidden, patterns["critic.fc1"], **kw)
        self.fc2 = NMLinear(hidden, hidden, patterns["critic.fc2"], **kw)
        self.fc3 = NMLinear(hidden, 1, patterns["critic.fc3"], **kw)

    def forward(self, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.fc1(torch.cat([obs, action], dim=1)))
        x = torch.relu(self.fc2(x))
        return self.fc3(x)


def build_networks(args: Args, obs_dim: int, act_dim: int, low: np.ndarray, high: np.ndarray,
                   method: Optional[Method] = None) -> dict[str, nn.Module]:
    """The six TD3 networks; targets start as copies of their online networks (masks included).
    ``method`` (default: built from ``args``) gives the layer patterns and NMLinear options."""
    method = make_method(args) if method is None else method
    pats = method.layer_patterns()
    kw = method.layer_options()
    actor = Actor(obs_dim, act_dim, args.hidden, pats, low, high, **kw)
    qf1 = Critic(obs_dim, act_dim, args.hidden, pats, **kw)
    qf2 = Critic(obs_dim, act_dim, args.hidden, pats, **kw)
    nets = {"actor": actor, "qf1": qf1, "qf2": qf2}
    for name in list(nets):
        nets[f"{name}_target"] = copy.deepcopy(nets[name])
    return {k: v.to(args.device) for k, v in nets.items()}


#: Checkpoint keys of the networks and the names ``nmlab export`` gives them.
NETWORK_EXPORT_NAMES = {"actor": "actor", "qf1": "critic1", "qf2": "critic2",
                        "actor_target": "actor_target", "qf1_target": "critic1_target", "qf2_target": "critic2_target"}


#: Files of a run folder besides checkpoint.pt, progress.csv and tb/: a fresh run appends to the
#: CSV logs and replaces args.json, so it refuses a folder that holds one without holding a run.
RUN_LOG_FILES = ("eval.csv", "sad.csv", "losses.csv", "method.csv", "args.json")


# ----------------------------------------------------------------------------- logging
class CsvLog:
    """Append-only CSV with a header; on resume, rows past the checkpoint's step are dropped."""

    def __init__(self, path: Path, columns: list[str], keep_upto_step: Optional[int] = None) -> None:
        self.path, self.columns = path, columns
        if keep_upto_step is not None and path.is_file():
            from hwmodel.limits import parse_int, read_csv

            # Bounded and checked like every CSV input (size, UTF-8, cells per row): a damaged row is
            # one line naming it (a binary log was a UnicodeDecodeError traceback, a row with an
            # extra cell a ValueError one from the writer below).
            _, read = read_csv(path, "resume", required=("step",))  # its errors name the file
            rows = [r for i, r in read if parse_int(r.get("step"), f"resume: {path}: line {i}: step", 0) <= keep_upto_step]
            with atomic_write(path, "w") as fh:
                w = csv.DictWriter(fh, columns, extrasaction="ignore")
                w.writeheader()
                w.writerows(rows)
        new = not path.is_file()
        self.fh = open(path, "a", newline="")
        self.writer = csv.DictWriter(self.fh, columns)
        if new:
            self.writer.writeheader()
            self.fh.flush()

    def write(self, **row: Any) -> None:
        self.writer.writerow(row)
        self.fh.flush()

    def close(self) -> None:
        self.fh.close()


# ----------------------------------------------------------------------------- evaluation
@torch.no_grad()
def evaluate_policy(actor: nn.Module, env_id: str, episodes: int, seed: int, device: str = "cpu",
                    seed_offset: int = Args.eval_seed_offset) -> list[float]:
    """Deterministic returns of ``actor`` over ``episodes`` episodes; episode i resets with
    ``seed + seed_offset + i`` (``--eval-seed-offset``) so every evaluation of a run sees the
    same start states and no training RNG is consumed."""
    env = make_env(env_id)
    returns = []
    try:
        for i in range(episodes):
            obs, _ = env.reset(seed=seed + seed_offset + i)
            done, total = False, 0.0
            while not done:
                action = actor(torch.as_tensor(obs, dtype=torch.float32, device=device).unsqueeze(0))
                obs, reward, terminated, truncated, _ = env.step(action.squeeze(0).cpu().numpy())
                total += float(reward)
                done = terminated or truncated
            returns.append(total)
    finally:
        env.close()
    return returns


# ----------------------------------------------------------------------------- training
def _resolve_resume(args: Args, explicit: set[str]) -> tuple[Args, dict[str, Any]]:
    """Load the checkpoint of ``args.out`` and merge: knobs not in RESUMABLE_OVERRIDES must match."""
    ckpt = load_checkpoint(checkpoint_path(args.out))
    saved = ckpt["args"]
    if not isinstance(saved, dict):
        raise NmlabError("checkpoint: args: must be a mapping")
    known = {f.name for f in dataclasses.fields(Args)}
    merged = {k: v for k, v in saved.items() if k in known}
    from rl.train_cmd import check_option

    for name, value in merged.items():
        # A damaged checkpoint value is named as the checkpoint's, not as a knob the user passed.
        try:
            check_option(name, value)
        except NmlabError as exc:
            raise NmlabError(f"checkpoint: {checkpoint_path(args.out)}: args: {exc}") from None
    saved_args = Args(**merged)  # the run's own knobs, before this invocation's overrides
    for name in ("env", "sparsity", "layer_sparsity"):
        ours, theirs = getattr(args, name), saved.get(name)
        if name in explicit and _norm(name, ours) != _norm(name, theirs):
            raise NmlabError(f"resume: {name}: the run in {args.out} used {theirs!r}, not {ours!r}")
    if "method" in explicit:
        # Compare resolved names: a checkpoint from before --method existed has none (inferred).
        ours_m, theirs_m = _method_or_raw(args), _method_or_raw(saved_args)
        if ours_m != theirs_m:
            raise NmlabError(f"resume: method: the run in {args.out} used {theirs_m!r}, not {ours_m!r}")
    if "steps" in explicit and args.steps != saved.get("steps"):
        try:
            fixed = make_method(saved_args).schedule_uses_steps
        except NmlabError:
            fixed = False
        if fixed:
            raise NmlabError(f"resume: steps: the {resolve_method(saved_args)} schedule of the run in {args.out} "
                             f"depends on its --steps {saved.get('steps')!r}; a resumed run cannot change it")
    for name in explicit:
        if name in RESUMABLE_OVERRIDES or name in ("env", "sparsity", "layer_sparsity", "method"):
            continue
        # Against the run's knobs with defaults filled in: a run saved before a knob existed used its default.
        if getattr(args, name) != getattr(saved_args, name):
            raise NmlabError(f"resume: {name}: the run in {args.out} used {getattr(saved_args, name)!r}; "
                             f"a resumed run cannot change it")
    for name in RESUMABLE_OVERRIDES:
        if name in explicit:
            merged[name] = getattr(args, name)
    done = ckpt["global_step"]
    if isinstance(merged.get("steps"), int) and merged["steps"] < done:
        # Training cannot go back; a smaller --steps would only rewrite args.json with it.
        raise NmlabError(f"resume: steps: the run in {args.out} has trained {done} steps already; "
                         f"--steps must be at least that, got {merged['steps']}")
    merged["resume"], merged["out"] = True, args.out
    return Args(**merged), ckpt


def _method_or_raw(args: Args) -> str:
    try:
        return resolve_method(args)
    except NmlabError:
        return args.method


def _norm(name: str, value: Any) -> Any:
    if name == "sparsity":
        try:
            return str(parse_pattern(value)) if ":" in str(value) or str(value).strip().lower() == "dense" else float(value)
        except (NmlabError, ValueError):
            return value
    if name == "layer_sparsity":
        try:
            return {k: str(v) for k, v in parse_overrides(value or "").items()}
        except NmlabError:
            return value
    return value


def _logged_eval(out: Path, step: int) -> Optional[tuple[float, float]]:
    """(mean, std) return that eval.csv in ``out`` holds for ``step``; None when it has none or
    cannot be read (the summary then shows no return; the log itself is left as it is)."""
    from rl.export import final_eval

    try:
        return final_eval(out, step)
    except NmlabError:
        return None


@torch.no_grad()
def td_target(actor_t: nn.Module, qf1_t: nn.Module, qf2_t: nn.Module, actions: torch.Tensor, next_obs: torch.Tensor,
              rewards: torch.Tensor, discounts: torch.Tensor, low: torch.Tensor, high: torch.Tensor,
              scale: torch.Tensor, policy_noise: float, noise_clip: float) -> torch.Tensor:
    """TD3's critic target ``rewards + discounts * min(Q1_t, Q2_t)(next_obs, a')`` (Fujimoto et al., 2018).

    Target policy smoothing: ``a' = clip(actor_t(next_obs) + clip(eps, -c, c) * scale, low, high)``,
    ``eps ~ N(0, policy_noise^2)`` drawn like ``actions``, ``c = noise_clip``; clipped double Q: the
    smaller of the two target critics. ``discounts`` is ``gamma^k (1 - terminated)`` (rl/replay.py).
    """
    noise = (torch.randn_like(actions) * policy_noise).clamp(-noise_clip, noise_clip) * scale
    next_a = torch.max(torch.min(actor_t(next_obs) + noise, high), low)
    q_next = torch.min(qf1_t(next_obs, next_a), qf2_t(next_obs, next_a))
    return rewards + discounts * q_next


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C (or SIGINT) during :func:`train`: where the run stopped and what a resume starts from.

    A KeyboardInterrupt, so callers that stop on one still do; ``nmlab train`` turns it into a
    line that says what is kept and how to continue."""

    def __init__(self, step: int, steps: int, checkpoint_step: Optional[int], first_checkpoint: int):
        super().__init__(step)
        self.step = step                          # env steps done when the interrupt came
        self.steps = steps                        # the run's target
        self.checkpoint_step = checkpoint_step    # step of the checkpoint on disk (None: none yet)
        self.first_checkpoint = first_checkpoint  # where a fresh run writes its first one


#: Bytes a checkpoint holds besides its tensors' data (torch.save's zip records and alignment, the pickled
#: structure, args, RNG states), with room to spare: 48,093 after ``nmlab train --env Humanoid-v5 --steps 300
#: --learning-starts 150 --out /tmp/hum`` (checkpoint.pt's 9,525,193 bytes less the 9,477,100 of
#: :func:`checkpoint_bytes_at_least`).
CHECKPOINT_ALLOWANCE = 1 << 20


def checkpoint_bytes_at_least(args: Args, obs_dim: int, act_dim: int) -> tuple[int, int]:
    """(bytes of the six networks, bytes per replay row) of the run's checkpoints, lower bounds once updates
    have begun (a checkpoint before ``learning_starts`` has no Adam moments yet): float32
    weights and biases and a bool mask per weight for every network, Adam's two float32 moments per
    online parameter; a row's observations, next observations, action, reward, done (float32) and
    truncated flag, plus the behaviour action of rlx2 (rl/checkpoint.py). The last checkpoint holds
    ``min(steps, buffer_size)`` rows."""
    h = args.hidden
    critic = [(obs_dim + act_dim, h), (h, h), (h, 1)]
    online = [(obs_dim, h), (h, h), (h, act_dim)] + critic + critic
    params = sum(i * o + o for i, o in online)
    weights = sum(i * o for i, o in online)
    nets = 2 * (4 * params + weights) + 2 * 4 * params
    row = 4 * (2 * obs_dim + act_dim + 2) + 1 + (4 * act_dim if resolve_method(args) == "rlx2" else 0)
    return nets, row


def checkpoint_size(args: Args, obs_dim: int, act_dim: int) -> Optional[tuple[int, int, int, int, int, int]]:
    """None where the run's last checkpoint fits the ``checkpoint_bytes`` limit, else (bytes it would take at
    least, the limit, bytes of its networks and archive records, bytes per replay row, rows it keeps, the largest
    ``buffer_size`` that fits: 0 where none does). What ``nmlab train`` and ``nmlab campaign`` check."""
    from hwmodel.limits import limit

    nets, row = checkpoint_bytes_at_least(args, obs_dim, act_dim)
    nets += CHECKPOINT_ALLOWANCE
    rows = min(args.steps, args.buffer_size)
    need, cap = nets + rows * row, limit("checkpoint_bytes")
    if need <= cap:
        return None
    return need, cap, nets, row, rows, max(0, cap - nets) // row


def check_checkpoint_size(args: Args, obs_dim: int, act_dim: int) -> None:
    """Refuse a run whose checkpoints would outgrow the ``checkpoint_bytes`` limit that resume,
    export and evaluate read them under (Humanoid-v5's 348-d observations at the default 1M
    buffer: 2.9 GB): it would train for hours, then no nmlab command could read the result."""
    from hwmodel.limits import LIMITS

    size = checkpoint_size(args, obs_dim, act_dim)
    if size is None:
        return
    need, cap, nets, row, rows, fits = size
    # The values to type are plain integers: --buffer-size and the variable take no thousands separators.
    env_var = (f"set {LIMITS['checkpoint_bytes'].env} to {need} or more for this run and every command that "
               f"reads it (docs/limits.md)")
    if fits < 1:  # no buffer brings it under: the networks alone are too large
        raise NmlabError(
            f"hidden: a {args.env} checkpoint's networks and Adam moments at --hidden {args.hidden} take about "
            f"{nets:,} bytes, about {need:,} with its {rows:,} transitions, over the limit of {cap:,} that resume, "
            f"export and evaluate read a checkpoint under; give a smaller --hidden, or {env_var}")
    raise NmlabError(
        f"buffer_size: a {args.env} checkpoint keeps {rows:,} transitions of {row:,} bytes, about {need:,} "
        f"bytes in all, over the limit of {cap:,} that resume, export and evaluate read a checkpoint under; "
        f"give --buffer-size {fits} or less, or {env_var}")


def train(args: Args, explicit: Optional[set[str]] = None) -> dict[str, Any]:
    """Train (or resume) one run. ``explicit``: names of knobs the user set (for resume checks;
    None means all). Returns a summary dict (steps, final evaluation, steps/s)."""
    explicit = {f.name for f in dataclasses.fields(Args)} if explicit is None else explicit
    ckpt = None
    out = Path(args.out)
    if args.resume:
        args, ckpt = _resolve_resume(args, explicit)
    elif checkpoint_path(out).exists():
        raise NmlabError(f"out: {out} already holds a run; pass --resume to continue it or choose a new --out")
    elif (out / "progress.csv").exists():
        # --resume would fail too: there is nothing to continue from.
        raise NmlabError(f"out: {out} holds a run stopped before its first checkpoint (--checkpoint-every); "
                         f"remove it to start again or choose a new --out")
    else:
        # A fresh run appends to its CSV logs and replaces args.json: a folder holding files of those
        # names but no run (a user's eval.csv, what was left of a run after removing its checkpoint and
        # progress.csv) had the new rows appended to the old, headerless, and the file was lost.
        held = [name for name in RUN_LOG_FILES if os.path.lexists(out / name)]
        if held:
            raise NmlabError(f"out: {out} holds {held[0]} but no run (no checkpoint.pt or progress.csv); a fresh run "
                             f"writes its own {held[0]} there: move the file or choose a new --out")
    validate_args(args)
    if args.steps <= args.learning_starts:
        # Every step of such a run is a random action: nothing trains, the actor stays its random
        # initialisation. Said before the work, not only in the summary line.
        print(f"nmlab train: note: --steps {args.steps} <= --learning-starts {args.learning_starts}: every step is "
              f"a random action and no gradient update runs (the actor stays as initialised); "
              f"give --learning-starts below --steps to train", file=sys.stderr)
    on_cuda = torch.device(args.device).type == "cuda"
    torch.set_num_threads(args.torch_threads)

    env = make_env(args.env)
    obs_dim, act_dim = env.observation_space.shape[0], env.action_space.shape[0]
    low, high = env.action_space.low.astype(np.float32), env.action_space.high.astype(np.float32)
    if not (np.all(np.isfinite(low)) and np.all(np.isfinite(high))):
        raise NmlabError(f"env: {args.env!r} has an unbounded action space")
    check_checkpoint_size(args, obs_dim, act_dim)
    out.mkdir(parents=True, exist_ok=True)  # only once the env is known good: a bad --env leaves nothing

    # Seeding (a resume overwrites all of these from the checkpoint).
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    env.action_space.seed(args.seed)
    obs, _ = env.reset(seed=args.seed)

    method = make_method(args)
    nets = build_networks(args, obs_dim, act_dim, low, high, method)
    if ckpt is None:
        method.init_masks(nets)
    actor, qf1, qf2 = nets["actor"], nets["qf1"], nets["qf2"]
    actor_t, qf1_t, qf2_t = nets["actor_target"], nets["qf1_target"], nets["qf2_target"]
    # Fused Adam: one kernel per step instead of several small ops per parameter tensor (a step
    # over both critics 3.5x to 7.3x faster on one CPU thread: benchmarks/bench_rl_ops.py, item 4).
    q_opt = torch.optim.Adam(list(qf1.parameters()) + list(qf2.parameters()), lr=args.learning_rate, fused=True)
    a_opt = torch.optim.Adam(actor.parameters(), lr=args.learning_rate, fused=True)
    rb = ReplayBuffer(args.buffer_size, obs_dim, act_dim, gamma=args.gamma, store_behavior=method.stores_behavior_actions)
    scale = actor.action_scale
    low_t, high_t = torch.as_tensor(low, device=args.device), torch.as_tensor(high, device=args.device)

    start_step, update_step, episode = 0, 0, 0
    ep_return, ep_len = 0.0, 0
    if ckpt is not None:
        part = ""  # the checkpoint entry being restored, named in the error
        try:
            # Each entry that is a plain state dict, under its own name (the name the error gives).
            for part, holder in [*nets.items(), ("q_optimizer", q_opt), ("actor_optimizer", a_opt), ("buffer", rb)]:
                holder.load_state_dict(ckpt[part])
            part = "method_state"
            method.load_state_dict(ckpt.get("method_state", {}))
            part = "rng"
            torch.set_rng_state(ckpt["rng"]["torch"])
            if on_cuda and "cuda" in ckpt["rng"]:
                # Exploration and target-smoothing noise come from the CUDA generator on a GPU.
                torch.cuda.set_rng_state(ckpt["rng"]["cuda"], torch.device(args.device))
            rng.bit_generator.state = json.loads(ckpt["rng"]["numpy"])
            part = "env_state"
            es = ckpt["env_state"]
            if set_env_state(env, es, args.seed):
                obs = es["obs"].numpy().copy()
                ep_return, ep_len = float(es["episode_return"]), int(es["episode_length"])
            else:
                obs, _ = env.reset()
            part = "global_step"
            start_step, update_step, episode = int(ckpt["global_step"]), int(ckpt["update_step"]), int(ckpt["episode"])
        except (KeyError, RuntimeError, ValueError, TypeError, AttributeError) as exc:
            # Any of these from a damaged or hostile checkpoint (a missing key, a wrong type).
            raise NmlabError(f"checkpoint: {checkpoint_path(out)}: {part}: does not match this run "
                             f"({str(exc).splitlines()[0][:160]})") from None
    method.prepare(nets, start_step)

    keep = start_step if ckpt is not None else None
    progress_log = CsvLog(out / "progress.csv", ["step", "episode", "return", "length", "time_s"], keep)
    eval_log = CsvLog(out / "eval.csv", ["step", "return_mean", "return_std", "episodes", "time_s"], keep)
    sad_log = CsvLog(out / "sad.csv", ["step", "update", "changed", "total", "sad"], keep)
    loss_log = CsvLog(out / "losses.csv", ["step", "update", "qf_loss", "actor_loss", "q1_mean"], keep)
    method_log = CsvLog(out / "method.csv", ["step", "update", "name", "value"], keep)
    # After the logs: a resume refused for a damaged log leaves the run's args as they were.
    with atomic_write(out / "args.json", "w") as fh:
        json.dump({**dataclasses.asdict(args), "method": method_name(args), "obs_dim": obs_dim, "act_dim": act_dim}, fh, indent=1)
    tb = None
    if args.tensorboard:
        from torch.utils.tensorboard import SummaryWriter

        tb = SummaryWriter(str(out / "tb"), purge_step=start_step if ckpt is not None else None)

    from tqdm import tqdm

    bar = tqdm(total=args.steps, initial=start_step, disable=not args.progress, file=sys.stderr,
               desc=f"{method_name(args)} {method.sparsity_label()} {args.env}", unit="step", mininterval=2.0, dynamic_ncols=True)
    t0 = time.time()
    recent: list[float] = []
    actor_loss_v = float("nan")
    # A resume evaluates only when it trains on: until then the run's final evaluation is the one
    # logged at the checkpoint's step (eval.csv, as `nmlab export` reads it).
    last_eval: Optional[tuple[float, float]] = _logged_eval(out, start_step) if ckpt is not None else None

    def log_method(scalars: dict[str, float], step_done: int) -> None:
        """sad.csv row for mask_changed/mask_total; every other scalar to method.csv and TensorBoard."""
        if "mask_total" in scalars:
            changed, total = int(scalars["mask_changed"]), int(scalars["mask_total"])
            sad = changed / total
            sad_log.write(step=step_done, update=update_step, changed=changed, total=total, sad=round(sad, 8))
            if tb is not None:
                tb.add_scalar("sparsity/sad", sad, step_done)
        for key, value in scalars.items():
            if key in ("mask_changed", "mask_total"):
                continue
            method_log.write(step=step_done, update=update_step, name=key, value=round(float(value), 8))
            if tb is not None:
                tb.add_scalar(f"method/{key}", value, step_done)

    saved_step = keep  # the step of the checkpoint a resume would start from (None: none yet)
    step_done = start_step  # env steps done, named by Ctrl-C

    def checkpoint(step_done: int) -> None:
        nonlocal saved_step
        save_checkpoint(checkpoint_path(out), {
            "args": dataclasses.asdict(args), "global_step": step_done, "update_step": update_step, "episode": episode,
            **{name: net.state_dict() for name, net in nets.items()},
            "actor_optimizer": a_opt.state_dict(), "q_optimizer": q_opt.state_dict(), "buffer": rb.state_dict(),
            "method_state": method.state_dict(),
            "rng": {"torch": torch.get_rng_state(), "numpy": json.dumps(rng.bit_generator.state),
                    **({"cuda": torch.cuda.get_rng_state(torch.device(args.device))} if on_cuda else {})},
            "env_state": {**get_env_state(env), "obs": torch.from_numpy(np.asarray(obs, dtype=np.float64).copy()),
                          "episode_return": ep_return, "episode_length": ep_len},
        })
        saved_step = step_done

    try:
        for global_step in range(start_step, args.steps):
            # --- act
            behavior_action = None  # the policy's action before noise (RLx2's policy mismatch); None = the action
            if global_step < args.learning_starts:
                action = env.action_space.sample()
            else:
                with torch.no_grad():
                    a = actor(torch.as_tensor(obs, dtype=torch.float32, device=args.device).unsqueeze(0))[0]
                    if rb.stores_behavior:
                        behavior_action = a.cpu().numpy()
                    a = a + torch.randn_like(a) * scale * args.exploration_noise
                    action = torch.max(torch.min(a, high_t), low_t).cpu().numpy()
            next_obs, reward, terminated, truncated, _ = env.step(action)
            ep_return += float(reward)
            ep_len += 1
            # Bootstrapping continues through time-limit truncation: only `terminated` is a true end
            # (`truncated` only ends n-step returns).
            rb.add(obs, next_obs, action, float(reward), bool(terminated), bool(truncated), behavior_action)
            obs = next_obs
            if terminated or truncated:
                episode += 1
                progress_log.write(step=global_step + 1, episode=episode, **{"return": round(ep_return, 4)},
                                   length=ep_len, time_s=round(time.time() - t0, 2))
                if tb is not None:
                    tb.add_scalar("charts/episodic_return", ep_return, global_step + 1)
                recent = (recent + [ep_return])[-10:]
                obs, _ = env.reset()
                ep_return, ep_len = 0.0, 0
            scalars = method.on_env_step(global_step + 1, rb, actor)
            if scalars:
                log_method(scalars, global_step + 1)

            # --- learn
            if global_step >= args.learning_starts:
                b_obs, b_act, b_next, b_rew, b_disc = rb.sample(rng, args.batch_size, args.device, method.td_steps(update_step + 1))
                target = td_target(actor_t, qf1_t, qf2_t, b_act, b_next, b_rew, b_disc, low_t, high_t, scale,
                                   args.policy_noise, args.noise_clip)
                q1, q2 = qf1(b_obs, b_act), qf2(b_obs, b_act)
                qf_loss = nn.functional.mse_loss(q1, target) + nn.functional.mse_loss(q2, target)
                update_step += 1  # this update's 1-based number (the hooks see it)
                q_opt.zero_grad(set_to_none=True)
                qf_loss.backward()
                method.after_backward("critic", (qf1, qf2), update_step)
                q_opt.step()
                method.after_optimizer_step("critic", (qf1, qf2), update_step)
                if update_step % args.policy_frequency == 0:
                    actor_loss = -qf1(b_obs, actor(b_obs)).mean()
                    a_opt.zero_grad(set_to_none=True)
                    actor_loss.backward()
                    method.after_backward("actor", (actor,), update_step)
                    a_opt.step()
                    method.after_optimizer_step("actor", (actor,), update_step)
                    actor_loss_v = float(actor_loss.detach())
                    pairs = [(actor, actor_t), (qf1, qf1_t), (qf2, qf2_t)]
                    for online, tgt in pairs:
                        polyak_update(online, tgt, args.tau, reproject=False)
                    method.after_polyak(pairs)
                scalars = method.on_update(update_step, global_step + 1, nets)
                if scalars:
                    log_method(scalars, global_step + 1)
                if update_step % args.log_every == 0:
                    q1m, qfl = float(q1.detach().mean()), float(qf_loss.detach())
                    loss_log.write(step=global_step + 1, update=update_step, qf_loss=round(qfl, 6),
                                   actor_loss=round(actor_loss_v, 6), q1_mean=round(q1m, 6))
                    if tb is not None:
                        tb.add_scalar("losses/qf_loss", qfl, global_step + 1)
                        tb.add_scalar("losses/actor_loss", actor_loss_v, global_step + 1)
                        tb.add_scalar("losses/q1_mean", q1m, global_step + 1)

            step_done = global_step + 1
            bar.update(1)
            if step_done % 1000 == 0:
                # No steps/s here: tqdm shows its own rate, and a cumulative one beside it disagreed with it.
                bar.set_postfix(ret=f"{np.mean(recent):.0f}" if recent else "-", refresh=False)
                if tb is not None:
                    tb.add_scalar("charts/SPS", (step_done - start_step) / max(time.time() - t0, 1e-9), step_done)
            if step_done % args.eval_every == 0 or step_done == args.steps:
                rets = evaluate_policy(actor, args.env, args.eval_episodes, args.seed, args.device, args.eval_seed_offset)
                last_eval = (float(np.mean(rets)), float(np.std(rets)))
                eval_log.write(step=step_done, return_mean=round(last_eval[0], 4), return_std=round(last_eval[1], 4),
                               episodes=len(rets), time_s=round(time.time() - t0, 2))
                if tb is not None:
                    tb.add_scalar("eval/return_mean", last_eval[0], step_done)
            if step_done % args.checkpoint_every == 0 or step_done == args.steps:
                checkpoint(step_done)
    except KeyboardInterrupt as exc:
        raise TrainingInterrupted(step_done, args.steps, saved_step, min(args.checkpoint_every, args.steps)) from exc
    finally:
        bar.close()
        for log in (progress_log, eval_log, sad_log, loss_log, method_log):
            log.close()
        if tb is not None:
            tb.close()
        env.close()
    elapsed = time.time() - t0
    return {"steps": args.steps, "steps_this_session": args.steps - start_step, "elapsed_s": elapsed,
            "steps_per_s": (args.steps - start_step) / max(elapsed, 1e-9), "updates": update_step,
            "eval_return_mean": last_eval[0] if last_eval else None, "eval_return_std": last_eval[1] if last_eval else None}
