"""TD3's critic target (rl.td3.td_target): clipped double Q, the discount, target policy smoothing.

Each test recomputes what the target must be from the TD3 rules with stub networks, so a target
that took the larger critic, dropped the discount or left the smoothing noise unclipped fails.
"""

import torch

from rl.td3 import td_target


def _const_actor(value):
    return lambda obs: value.expand(len(obs), -1).clone()


def test_target_is_reward_plus_discount_times_the_smaller_target_critic():
    torch.manual_seed(0)
    b, obs_dim, act_dim = 64, 3, 2
    next_obs = torch.randn(b, obs_dim)
    q1 = torch.randn(b, 1)
    q2 = torch.randn(b, 1)
    assert (q1 < q2).any() and (q2 < q1).any()  # both critics are the smaller one somewhere
    rewards = torch.randn(b, 1)
    # gamma^k for k in 1..3, and 0 where the last transition terminated.
    discounts = torch.tensor([[0.99 ** (1 + i % 3) * (i % 5 != 0)] for i in range(b)])
    scale = torch.ones(act_dim)
    got = td_target(_const_actor(torch.zeros(1, act_dim)), lambda s, a: q1, lambda s, a: q2,
                    torch.zeros(b, act_dim), next_obs, rewards, discounts, -scale, scale, scale, 0.2, 0.5)
    want = torch.tensor([[float(rewards[i]) + float(discounts[i]) * min(float(q1[i]), float(q2[i]))] for i in range(b)])
    assert torch.allclose(got, want, rtol=0, atol=1e-6)
    # A terminated transition's target is its reward alone.
    done = discounts[:, 0] == 0
    assert done.any() and torch.equal(got[done], rewards[done])


def test_target_action_noise_is_clipped_then_the_action_kept_in_its_box():
    torch.manual_seed(1)
    b, act_dim = 4096, 2
    scale = torch.tensor([2.0, 0.5])
    low, high = -scale, scale
    noise_clip = 0.3
    seen = []

    def critic(s, a):
        seen.append(a.clone())
        return torch.zeros(len(a), 1)

    for a0 in (torch.zeros(1, act_dim), 0.95 * scale[None]):
        seen.clear()
        # A huge policy noise: almost every draw is beyond the clip, so the clip sets the spread.
        td_target(_const_actor(a0), critic, critic, torch.zeros(b, act_dim), torch.zeros(b, 3),
                  torch.zeros(b, 1), torch.ones(b, 1), low, high, scale, policy_noise=10.0, noise_clip=noise_clip)
        a = seen[0]
        assert torch.equal(seen[0], seen[1])  # both critics judge the same smoothed action
        assert (a >= low).all() and (a <= high).all()
        lo = torch.maximum(a0 - noise_clip * scale, low)
        hi = torch.minimum(a0 + noise_clip * scale, high)
        assert (a >= lo - 1e-6).all() and (a <= hi + 1e-6).all()
        # The noise is there: both ends of the clipped range are reached.
        assert torch.isclose(a, lo.expand_as(a)).any(0).all() and torch.isclose(a, hi.expand_as(a)).any(0).all()
