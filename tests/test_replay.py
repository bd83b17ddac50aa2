"""Replay buffer: 1-step targets as before, n-step targets by hand, live window, dynamic capacity."""

import numpy as np
import pytest
import torch

from hwmodel.errors import NmlabError
from rl.replay import Batch, ReplayBuffer, policy_mismatch, should_shrink


class FixedRng:
    """Stands in for a numpy Generator: ``integers`` returns preset draws (checks the bounds)."""

    def __init__(self, draws):
        self.draws = np.asarray(draws)

    def integers(self, low, high, size):
        assert size == len(self.draws) and low == 0 and (self.draws < high).all()
        return self.draws.copy()


def _fill(buf, specs):
    """specs: (reward, terminated, truncated) per transition; obs = [t], next_obs = [t + 0.5]
    (or [100 + t] when the episode ends there: the final observation)."""
    for t, (r, term, trunc) in enumerate(specs):
        nxt = 100.0 + t if (term or trunc) else t + 0.5
        buf.add(np.array([t], np.float32), np.array([nxt], np.float32), np.array([t / 10], np.float32), r, term, trunc)


# Episode A: t0..t2 (terminated at t2); episode B: t3..t5 (time limit at t5); C: t6, t7 running.
EPISODES = [(1.0, False, False), (2.0, False, False), (3.0, True, False),
            (4.0, False, False), (5.0, False, False), (6.0, False, True),
            (7.0, False, False), (8.0, False, False)]


def test_three_step_targets_by_hand():
    buf = ReplayBuffer(10, 1, 1, gamma=0.5)
    _fill(buf, EPISODES)
    b = buf.sample(FixedRng(range(8)), 8, "cpu", n_step=3)
    assert isinstance(b, Batch)
    # k = 3, 2, 1 (terminated at t2: no bootstrap), 3, 2, 1 (truncated at t5: bootstrap from
    # the time-limit observation with gamma^k), 2, 1 (the write head after t7).
    rewards = [1 + 0.5 * 2 + 0.25 * 3, 2 + 0.5 * 3, 3, 4 + 0.5 * 5 + 0.25 * 6, 5 + 0.5 * 6, 6, 7 + 0.5 * 8, 8]
    discounts = [0, 0, 0, 0.125, 0.25, 0.5, 0.25, 0.5]
    next_obs = [102, 102, 102, 105, 105, 105, 7.5, 7.5]
    assert b.rewards[:, 0].tolist() == rewards
    assert b.discounts[:, 0].tolist() == discounts
    assert b.next_obs[:, 0].tolist() == next_obs
    assert b.obs[:, 0].tolist() == list(range(8))
    assert torch.allclose(b.actions[:, 0], torch.arange(8) / 10)
    for t in (b.obs, b.actions, b.next_obs, b.rewards, b.discounts):
        assert t.dtype == torch.float32 and t.shape[0] == 8


def test_one_step_targets_by_hand_and_n1_of_sample():
    buf = ReplayBuffer(10, 1, 1, gamma=0.5)
    _fill(buf, EPISODES)
    b = buf.sample(FixedRng(range(8)), 8, "cpu")
    assert b.rewards[:, 0].tolist() == [s[0] for s in EPISODES]
    # Only termination stops bootstrapping; truncation (t5) bootstraps with gamma.
    assert b.discounts[:, 0].tolist() == [0.5, 0.5, 0, 0.5, 0.5, 0.5, 0.5, 0.5]
    assert b.next_obs[:, 0].tolist() == [0.5, 1.5, 102, 3.5, 4.5, 105, 6.5, 7.5]


class OldBuffer:
    """The TD3 buffer as it was before rl/replay.py (td3.ReplayBuffer at commit a6442ab)."""

    def __init__(self, capacity, obs_dim, act_dim):
        self.capacity = capacity
        self.obs = np.zeros((capacity, obs_dim), dtype=np.float32)
        self.next_obs = np.zeros((capacity, obs_dim), dtype=np.float32)
        self.actions = np.zeros((capacity, act_dim), dtype=np.float32)
        self.rewards = np.zeros((capacity, 1), dtype=np.float32)
        self.dones = np.zeros((capacity, 1), dtype=np.float32)
        self.pos = self.size = 0

    def add(self, obs, next_obs, action, reward, done):
        i = self.pos
        self.obs[i], self.next_obs[i], self.actions[i] = obs, next_obs, action
        self.rewards[i, 0], self.dones[i, 0] = reward, float(done)
        self.pos = (i + 1) % self.capacity
        self.size = min(self.size + 1, self.capacity)

    def sample(self, rng, batch_size):
        idx = rng.integers(0, self.size, size=batch_size)
        arrays = (self.obs[idx], self.actions[idx], self.next_obs[idx], self.rewards[idx], self.dones[idx])
        return tuple(torch.from_numpy(a) for a in arrays)


@pytest.mark.parametrize("adds", [40, 64, 150])  # partly filled, exactly full, wrapped around
def test_one_step_batch_reproduces_the_old_td3_target_bitwise(adds):
    gen = np.random.default_rng(1)
    old, new = OldBuffer(64, 3, 2), ReplayBuffer(64, 3, 2, gamma=0.99)
    for _ in range(adds):
        o, n, a = gen.normal(size=3).astype(np.float32), gen.normal(size=3).astype(np.float32), gen.normal(size=2)
        r, term, trunc = float(gen.normal()), bool(gen.random() < 0.1), bool(gen.random() < 0.1)
        old.add(o, n, a, r, term)
        new.add(o, n, a, r, term, trunc)
    q_next = torch.from_numpy(gen.normal(size=(32, 1)).astype(np.float32)) * 100
    o_obs, o_act, o_next, o_rew, o_done = old.sample(np.random.default_rng(5), 32)
    b = new.sample(np.random.default_rng(5), 32, "cpu")
    for x, y in ((o_obs, b.obs), (o_act, b.actions), (o_next, b.next_obs), (o_rew, b.rewards)):
        assert torch.equal(x, y)
    # The target expression of the old loop and of the new one: equal bit for bit.
    assert torch.equal(o_rew + (1.0 - o_done) * 0.99 * q_next, b.rewards + b.discounts * q_next)


def _reference_targets(items, n, gamma):
    """Plain-python n-step targets over the live transitions (oldest first)."""
    out = []
    for s in range(len(items)):
        total, k = 0.0, 0
        for j in range(n):
            if s + j >= len(items):
                break
            _, r, term, trunc = items[s + j]
            total += gamma ** j * r
            k += 1
            if term or trunc:
                break
        last = items[s + k - 1]
        out.append((items[s][0], total, last[0], gamma ** k * (0.0 if last[2] else 1.0)))
    return out


@pytest.mark.parametrize("seed", range(4))
def test_n_step_matches_a_plain_model_through_wraps_and_drops(seed):
    gen = np.random.default_rng(seed)
    cap, gamma = 37, 0.9
    buf = ReplayBuffer(cap, 1, 1, gamma=gamma)
    live = []  # (id, reward, terminated, truncated), oldest first
    for t in range(300):
        r, term, trunc = float(gen.integers(-3, 4)), bool(gen.random() < 0.08), bool(gen.random() < 0.08)
        buf.add(np.array([t], np.float32), np.array([t], np.float32), np.zeros(1, np.float32), r, term, trunc)
        live = (live + [(t, r, term, trunc)])[-cap:]
        if gen.random() < 0.05:
            frac = float(gen.choice([0.1, 0.3, 0.5]))
            dropped = buf.drop_oldest(frac)
            assert dropped == int(frac * len(live))
            live = live[dropped:]
        assert buf.size == len(live)
        if t % 23 == 0 or t == 299:
            for n in (1, 2, 3, 5):
                b = buf.sample(FixedRng(range(buf.size)), buf.size, "cpu", n_step=n)
                ref = _reference_targets(live, n, gamma)
                if buf.size == cap:  # a full buffer draws slots, not ages (see ReplayBuffer._draw)
                    ref = [ref[(s - buf.start) % cap] for s in range(cap)]
                assert b.obs[:, 0].tolist() == [float(x[0]) for x in ref]
                assert b.next_obs[:, 0].tolist() == [float(x[2]) for x in ref]
                assert np.allclose(b.rewards[:, 0].numpy(), [x[1] for x in ref], rtol=1e-6)
                assert np.allclose(b.discounts[:, 0].numpy(), [x[3] for x in ref], rtol=1e-6)


def test_drop_oldest_removes_exactly_the_oldest_tenth_and_sampling_skips_them():
    buf = ReplayBuffer(100, 1, 1)
    for t in range(130):  # wrapped: live ids 30..129, oldest at slot 30
        buf.add(np.array([t], np.float32), np.array([t], np.float32), np.zeros(1, np.float32), 0.0, False)
    assert buf.drop_oldest(0.1) == 10
    assert buf.size == 90 and buf.start == 40
    ids = buf.sample(np.random.default_rng(0), 20_000, "cpu").obs[:, 0]
    assert set(ids.int().tolist()) == set(range(40, 130))
    # The window grows back as new transitions arrive; the dropped slots are reused last.
    for t in range(130, 145):
        buf.add(np.array([t], np.float32), np.array([t], np.float32), np.zeros(1, np.float32), 0.0, False)
    assert buf.size == 100
    ids = buf.sample(np.random.default_rng(0), 20_000, "cpu").obs[:, 0]
    assert set(ids.int().tolist()) == set(range(45, 145))
    obs, _ = ReplayBuffer.oldest(_with_behavior(buf), 3)
    assert obs[:, 0].tolist() == [45, 46, 47]


def _with_behavior(buf):
    buf.behavior = buf.actions.copy()
    return buf


def test_shrink_rule_needs_both_mismatch_and_size():
    assert should_shrink(0.21, 100_001)
    assert not should_shrink(0.2, 100_001)  # strictly above the threshold
    assert not should_shrink(0.5, 100_000)  # strictly above the minimum size
    assert should_shrink(0.05, 11, threshold=0.04, min_size=10)


class ConstActor(torch.nn.Module):
    def __init__(self, value):
        super().__init__()
        self.value = torch.tensor(value, dtype=torch.float32)

    def forward(self, obs):
        return self.value.expand(obs.shape[0], -1)


def test_policy_mismatch_on_the_oldest_transitions_by_hand():
    buf = ReplayBuffer(8, 1, 2, store_behavior=True)
    for t in range(12):  # wrapped: live 4..11
        mu = np.array([0.5, -1.0] if t < 6 else [9.0, 9.0], np.float32)
        buf.add(np.array([t], np.float32), np.array([t], np.float32), mu + 0.3, 0.0, False, behavior_action=mu)
    buf.drop_oldest(0.25)  # live 6..11
    actor, scale = ConstActor([1.0, 1.0]), torch.tensor([2.0, 4.0])
    # Oldest 2 are t6, t7 with mu = (9, 9): ((1-9)/2)^2 = 16, ((1-9)/4)^2 = 4 -> mean 10, halved 5.
    assert policy_mismatch(buf, actor, scale, k=2) == pytest.approx(5.0)
    buf2 = ReplayBuffer(8, 1, 2, store_behavior=True)
    for t in range(3):
        buf2.add(np.array([t], np.float32), np.array([t], np.float32), np.array([0.5, -1.0], np.float32), 0.0, False,
                 behavior_action=np.array([0.5, -1.0], np.float32))
    # (1-0.5)/2 = 0.25 -> 0.0625; (1+1)/4 = 0.5 -> 0.25; mean 0.15625, halved 0.078125 (k > size uses all).
    assert policy_mismatch(buf2, actor, scale, k=2048) == pytest.approx(0.078125)
    # Without a behaviour action the executed action is stored.
    buf3 = ReplayBuffer(4, 1, 1, store_behavior=True)
    buf3.add(np.zeros(1), np.zeros(1), np.array([0.25]), 0.0, False)
    assert buf3.oldest(1)[1].tolist() == [[0.25]]
    with pytest.raises(NmlabError, match="store_behavior"):
        ReplayBuffer(4, 1, 1).oldest(1)


def test_state_dict_round_trip_keeps_window_flags_and_samples():
    gen = np.random.default_rng(3)
    buf = ReplayBuffer(50, 2, 1, gamma=0.97, store_behavior=True)
    for t in range(77):
        buf.add(gen.normal(size=2), gen.normal(size=2), gen.normal(size=1), float(gen.normal()),
                bool(gen.random() < 0.1), bool(gen.random() < 0.1), behavior_action=gen.normal(size=1))
    buf.drop_oldest(0.3)
    state = buf.state_dict()
    assert state["filled"] == 50 and state["size"] == 35 and state["pos"] == 27
    again = ReplayBuffer(50, 2, 1, gamma=0.97, store_behavior=True)
    again.load_state_dict(state)
    for n in (1, 3):
        a = buf.sample(np.random.default_rng(9), 64, "cpu", n_step=n)
        b = again.sample(np.random.default_rng(9), 64, "cpu", n_step=n)
        assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert np.array_equal(buf.oldest(10)[1], again.oldest(10)[1])
    with pytest.raises(NmlabError, match="more than buffer_size"):
        ReplayBuffer(20, 2, 1).load_state_dict(state)


def test_old_checkpoint_buffers_still_load():
    old = OldBuffer(16, 2, 1)
    for t in range(5):
        old.add(np.full(2, t), np.full(2, t + 1), np.zeros(1), float(t), t == 4)
    n = old.size
    state = {k: torch.from_numpy(getattr(old, k)[:n].copy()) for k in ("obs", "next_obs", "actions", "rewards", "dones")}
    state.update(pos=old.pos, size=old.size)
    buf = ReplayBuffer(16, 2, 1, gamma=0.5, store_behavior=True)
    buf.load_state_dict(state)
    assert (buf.size, buf.pos, buf.filled, buf.start) == (5, 5, 5, 0)
    assert not buf.truncated.any()
    assert np.array_equal(buf.behavior[:5], buf.actions[:5])
    b = buf.sample(FixedRng([0, 3]), 2, "cpu", n_step=2)
    assert b.rewards[:, 0].tolist() == [0 + 0.5 * 1, 3 + 0.5 * 4]
    assert b.discounts[:, 0].tolist() == [0.25, 0.0]  # t4 terminated


def test_bad_calls_are_one_line_errors():
    buf = ReplayBuffer(4, 1, 1)
    with pytest.raises(NmlabError, match="empty"):
        buf.sample(np.random.default_rng(0), 2, "cpu")
    buf.add(np.zeros(1), np.zeros(1), np.zeros(1), 0.0, False)
    with pytest.raises(NmlabError, match="n_step"):
        buf.sample(np.random.default_rng(0), 2, "cpu", n_step=0)
    with pytest.raises(NmlabError, match="buffer_drop_fraction"):
        buf.drop_oldest(1.5)
