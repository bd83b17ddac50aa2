"""Replay buffer of the TD3 family: 1-step and n-step TD targets, dynamic capacity (RLx2).

The buffer is a ring of float32 numpy arrays (``np.zeros`` is committed lazily, so an
unfilled 1M buffer costs little memory). The *live window* is the ring segment of the
``size`` most recent transitions, ending just before the write head ``pos``; its start is
``(pos - size) mod capacity``. Sampling draws only live transitions. Normally the window
grows to ``capacity`` and then slides (the oldest transition is overwritten); RLx2's
dynamic capacity can also drop the oldest transitions (:meth:`ReplayBuffer.drop_oldest`),
after which the window grows back as new transitions arrive.

TD targets. :meth:`ReplayBuffer.sample` returns a :class:`Batch` whose target is

    y = rewards + discounts * min_i Q_target_i(next_obs, a'(next_obs))

- 1-step: ``rewards = r_t``, ``next_obs = s_{t+1}``, ``discounts = gamma * (1 - terminated_t)``
  (bit for bit the target TD3 computed before this module existed).
- n-step (RLx2 uses n = 3): ``k`` is the number of transitions used, ``k <= n``, stopping
  after the first transition that ends its episode (terminated *or* truncated) and at the
  write head (the newest transition); ``rewards = sum_{j<k} gamma^j r_{t+j}``,
  ``next_obs = s_{t+k}`` (the observation after the k-th transition, i.e. the terminal or
  the time-limit observation if the episode ended), ``discounts = gamma^k (1 -
  terminated_{t+k-1})``. So a terminated episode never bootstraps, and a truncated one
  bootstraps from its last observation with ``gamma^k`` (time limits are not terminal).

Policy mismatch (RLx2, Tan et al., ICLR 2023, "dynamic buffer capacity";
shared/reference/rl.md): on the ``K`` oldest live transitions (``--rlx2-mismatch-samples``, 2048),

    D = 1 / (2 K |A|) * sum_i || (pi(s_i) - mu_i) / scale ||^2

where ``mu_i`` is the behaviour policy's action *before* exploration noise (the random
action itself during the random warm-up), ``pi`` the current deterministic actor and
``scale`` the action box half-width, i.e. half the mean squared distance of actions
normalised to [-1, 1]. This is the definition of the authors' TD3 code (tyq1024/RLx2,
``F.mse_loss(pi(s)/max_action, mu/max_action) / 2`` on ``8 * batch_size`` oldest
transitions); the paper describes it in words as the distance between the current and the
behaviour policy on the oldest data. Rule (:func:`should_shrink`): every 10k environment
steps, if ``D > 0.2`` and ``size > 1e5``, drop the oldest 10% of the live transitions (the
paper's values, the defaults of the ``--rlx2-buffer-*`` knobs).
"""

from __future__ import annotations

from typing import Any, NamedTuple, Optional

import numpy as np
import torch

from hwmodel.errors import NmlabError
from rl.args import Args

#: Transitions RLx2 measures the policy mismatch on (8 x batch size 256 in the authors' code);
#: a run's is ``--rlx2-mismatch-samples``.
MISMATCH_OLDEST = Args.rlx2_mismatch_samples


class Batch(NamedTuple):
    """A minibatch; the TD target is ``rewards + discounts * Q_target(next_obs, .)``.

    All float32 tensors on the requested device: ``obs`` [B, obs_dim], ``actions``
    [B, act_dim], ``next_obs`` [B, obs_dim], ``rewards`` [B, 1] (discounted sum over the k
    steps used), ``discounts`` [B, 1] (``gamma^k`` times 0 if the k-th transition
    terminated, else 1).
    """

    obs: torch.Tensor
    actions: torch.Tensor
    next_obs: torch.Tensor
    rewards: torch.Tensor
    discounts: torch.Tensor


class ReplayBuffer:
    """Ring buffer with terminated/truncated flags, n-step sampling and a movable live window.

    Args:
        capacity: maximum number of live transitions.
        obs_dim: observation length.
        act_dim: action length.
        gamma: discount factor used to build ``Batch.discounts`` (and n-step rewards).
        store_behavior: also keep the behaviour policy's noise-free action per transition
            (needed for :func:`policy_mismatch`; costs ``4 * act_dim`` bytes per transition).
    """

    def __init__(self, capacity: int, obs_dim: int, act_dim: int, gamma: float = 0.99,
                 store_behavior: bool = False) -> None:
        if capacity < 1:
            raise NmlabError(f"buffer_size: must be a positive integer, got {capacity}")
        self.capacity = capacity
        self.gamma = float(gamma)
        self.obs = np.zeros((capacity, obs_dim), dtype=np.float32)
        self.next_obs = np.zeros((capacity, obs_dim), dtype=np.float32)
        self.actions = np.zeros((capacity, act_dim), dtype=np.float32)
        self.rewards = np.zeros((capacity, 1), dtype=np.float32)
        self.dones = np.zeros((capacity, 1), dtype=np.float32)  # terminated (true end, no bootstrap)
        self.truncated = np.zeros(capacity, dtype=bool)  # time limit: episode ends, bootstrap continues
        self.behavior = np.zeros((capacity, act_dim), dtype=np.float32) if store_behavior else None
        self.pos = 0  # write head: the slot the next transition goes to
        self.size = 0  # live transitions, the ring segment ending just before pos
        self.filled = 0  # slots ever written (rows a checkpoint must keep)

    @property
    def stores_behavior(self) -> bool:
        """Whether behaviour (noise-free policy) actions are kept for :func:`policy_mismatch`."""
        return self.behavior is not None

    @property
    def start(self) -> int:
        """Slot of the oldest live transition."""
        return (self.pos - self.size) % self.capacity

    def add(self, obs: np.ndarray, next_obs: np.ndarray, action: np.ndarray, reward: float,
            terminated: bool, truncated: bool = False, behavior_action: Optional[np.ndarray] = None) -> None:
        """Append one transition (overwrites the oldest when the window is full).

        Args:
            obs: observation the action was taken in.
            next_obs: observation after the step (the final one if the episode ended).
            action: action executed (with exploration noise).
            reward: reward of the step.
            terminated: the episode truly ended (no bootstrap from ``next_obs``).
            truncated: the episode was cut by a time limit (bootstrap continues).
            behavior_action: the policy's action before exploration noise (stored only when
                the buffer was built with ``store_behavior``; ``None`` stores ``action``).
        """
        i = self.pos
        self.obs[i], self.next_obs[i], self.actions[i] = obs, next_obs, action
        self.rewards[i, 0], self.dones[i, 0] = reward, float(terminated)
        self.truncated[i] = bool(truncated)
        if self.behavior is not None:
            self.behavior[i] = action if behavior_action is None else behavior_action
        self.pos = (i + 1) % self.capacity
        self.size = min(self.size + 1, self.capacity)
        self.filled = min(self.filled + 1, self.capacity)

    def _draw(self, rng: np.random.Generator, batch_size: int) -> np.ndarray:
        if self.size == 0:
            raise NmlabError("buffer: cannot sample from an empty replay buffer")
        if self.size == self.capacity:
            # Every slot is live: draw slots directly (the same draws as before windows existed).
            return rng.integers(0, self.capacity, size=batch_size)
        start = self.start
        idx = rng.integers(0, self.size, size=batch_size)
        return idx if start == 0 else (idx + start) % self.capacity

    def sample(self, rng: np.random.Generator, batch_size: int, device: str, n_step: int = 1) -> Batch:
        """A uniform minibatch of live transitions with ``n_step``-step targets (see module doc).

        Args:
            rng: numpy generator (one ``integers`` call per sample: exact resume relies on it).
            batch_size: transitions per batch.
            device: torch device of the returned tensors.
            n_step: TD horizon n >= 1 (1 = classic TD3 target).
        """
        idx = self._draw(rng, batch_size)
        if n_step == 1:
            discounts = (1.0 - self.dones[idx]) * np.float32(self.gamma)
            arrays = (self.obs[idx], self.actions[idx], self.next_obs[idx], self.rewards[idx], discounts)
        else:
            rewards, last, k = self._n_step(idx, n_step)
            discounts = (self.gamma ** k)[:, None] * (1.0 - self.dones[last].astype(np.float64))
            arrays = (self.obs[idx], self.actions[idx], self.next_obs[last], rewards.astype(np.float32)[:, None],
                      discounts.astype(np.float32))
        return Batch(*(torch.from_numpy(np.ascontiguousarray(a)).to(device) for a in arrays))

    def _n_step(self, idx: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(discounted reward sums [B] float64, slot of the last transition used [B], k [B])."""
        if n < 1:
            raise NmlabError(f"n_step: must be >= 1, got {n}")
        offset = (idx - self.start) % self.capacity  # age rank in the window: 0 = oldest
        slots = (idx[:, None] + np.arange(n)) % self.capacity
        ends = (self.dones[slots, 0] > 0) | self.truncated[slots]
        used = np.ones(slots.shape, dtype=bool)
        for j in range(1, n):
            # Step j is used if step j-1 was used and did not end its episode, and it is live
            # (older than the write head).
            used[:, j] = used[:, j - 1] & ~ends[:, j - 1] & (offset + j < self.size)
        k = used.sum(axis=1)
        gam = self.gamma ** np.arange(n)
        rewards = (self.rewards[slots, 0].astype(np.float64) * gam * used).sum(axis=1)
        last = slots[np.arange(len(idx)), k - 1]
        return rewards, last, k

    # ------------------------------------------------------------------ dynamic capacity
    def drop_oldest(self, fraction: float) -> int:
        """Drop ``int(fraction * size)`` oldest live transitions; returns how many."""
        if not 0.0 <= fraction <= 1.0:
            raise NmlabError(f"buffer_drop_fraction: must be in [0, 1], got {fraction}")
        n = int(fraction * self.size)
        self.size -= n
        return n

    def oldest(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(observations, behaviour actions) of the ``min(k, size)`` oldest live transitions."""
        if self.behavior is None:
            raise NmlabError("buffer: built without store_behavior, cannot measure the policy mismatch")
        slots = (self.start + np.arange(min(k, self.size))) % self.capacity
        return self.obs[slots], self.behavior[slots]

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict[str, Any]:
        """Plain tensors and ints: the written rows ``[0, filled)`` in slot order, ``pos``, ``size``, ``filled``."""
        n = self.filled
        state = {"obs": torch.from_numpy(self.obs[:n].copy()), "next_obs": torch.from_numpy(self.next_obs[:n].copy()),
                 "actions": torch.from_numpy(self.actions[:n].copy()), "rewards": torch.from_numpy(self.rewards[:n].copy()),
                 "dones": torch.from_numpy(self.dones[:n].copy()), "truncated": torch.from_numpy(self.truncated[:n].copy()),
                 "pos": self.pos, "size": self.size, "filled": n}
        if self.behavior is not None:
            state["behavior"] = torch.from_numpy(self.behavior[:n].copy())
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`. Checkpoints from before n-step/dynamic capacity (no
        ``filled``, ``truncated`` or ``behavior``) load with ``filled = size``, no truncation
        flags and behaviour actions equal to the stored actions."""
        size = int(state["size"])
        n = int(state.get("filled", size))
        pos = int(state["pos"])
        if not 0 <= size <= n <= self.capacity:
            raise NmlabError(f"checkpoint: buffer: holds {n} rows / {size} live transitions, more than buffer_size {self.capacity}")
        if not 0 <= pos < self.capacity:
            raise NmlabError(f"checkpoint: buffer.pos: {pos} outside [0, {self.capacity})")
        keys = ["obs", "next_obs", "actions", "rewards", "dones"]
        if self.behavior is not None and "behavior" in state:
            keys.append("behavior")
        for key in keys:
            arr = getattr(self, key)
            src = state[key].numpy()
            if src.shape != (n, arr.shape[1]):
                raise NmlabError(f"checkpoint: buffer.{key}: shape {tuple(src.shape)} does not match ({n}, {arr.shape[1]})")
            arr[:n] = src
        if self.behavior is not None and "behavior" not in state:
            self.behavior[:n] = self.actions[:n]
        self.truncated[:] = False
        if "truncated" in state:
            src = state["truncated"].numpy()
            if src.shape != (n,):
                raise NmlabError(f"checkpoint: buffer.truncated: shape {tuple(src.shape)} does not match ({n},)")
            self.truncated[:n] = src
        self.pos, self.size, self.filled = pos, size, n


# ---------------------------------------------------------------------- policy mismatch
@torch.no_grad()
def policy_mismatch(buffer: ReplayBuffer, actor: torch.nn.Module, action_scale: torch.Tensor,
                    k: int = MISMATCH_OLDEST, device: str = "cpu") -> float:
    """RLx2's policy mismatch D on the ``k`` oldest live transitions (formula in the module doc).

    Args:
        buffer: a buffer built with ``store_behavior=True`` (not empty).
        actor: the current deterministic policy, obs [B, obs_dim] -> action [B, act_dim].
        action_scale: half-width of the action box per dimension (normalises actions to [-1, 1]).
        k: how many of the oldest transitions to use.
        device: torch device of ``actor``.
    """
    obs, behavior = buffer.oldest(k)
    if len(obs) == 0:
        raise NmlabError("buffer: cannot measure the policy mismatch of an empty replay buffer")
    pi = actor(torch.from_numpy(np.ascontiguousarray(obs)).to(device))
    diff = (pi - torch.from_numpy(np.ascontiguousarray(behavior)).to(device)) / action_scale
    return float(diff.square().mean() / 2.0)


def should_shrink(mismatch: float, size: int, threshold: float = 0.2, min_size: int = 100_000) -> bool:
    """RLx2's rule: drop the oldest transitions when ``mismatch > threshold`` and ``size > min_size``."""
    return mismatch > threshold and size > min_size
