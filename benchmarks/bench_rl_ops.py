"""Timings behind the cost claims in rl/ comments, on the CPU, single-threaded, in one run.

    .venv/bin/python benchmarks/bench_rl_ops.py            # Hopper-v5 shapes, hidden 256

Prints, each as a ratio measured in this run (median of ``--repeats`` timings of ``--calls`` calls):

1. ``rl/nm_layers.py`` NMLinear keeps float copies of its bool mask: ``W * bool_mask`` vs
   ``W * float_mask`` on a 256x256 layer.
2. ``rl/nm_layers.py`` ``project_nm`` (N rounds of argmax) vs a stable descending sort per
   group (as ``rl.sparsity.nm_mask``, in float32) at 1:4, 2:4, 4:8 and 2:8, as project_nm's
   time over the sort's (the ratio its docstring quotes).
3. ``rl/nm_layers.py`` ``polyak_update``: re-projecting the masks of the three target
   networks (nine layers, 2:4) vs one TD3 gradient update (critic + actor + Polyak, batch 256).
4. ``rl/td3.py``: one fused Adam step over a critic pair's parameters vs the default (foreach) one.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from machine import cpu_timed as timed  # noqa: E402  (benchmarks/machine.py; one torch thread: CPU time is the work)


def sort_mask(weight: torch.Tensor, n: int, m: int) -> torch.Tensor:
    """N:M mask by a stable descending sort per group (fan-in a multiple of m)."""
    out, cols = weight.shape
    g = weight.abs().view(out, -1, m)
    order = torch.sort(g, dim=-1, descending=True, stable=True).indices[..., :n]
    return torch.zeros_like(g, dtype=torch.bool).scatter_(-1, order, True).view(out, cols)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=200)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--hidden", type=int, default=256)
    a = ap.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    from hwmodel.sparsity import parse_pattern
    from rl import td3
    from rl.nm_layers import polyak_update, project_nm, update_masks

    h = a.hidden
    print(f"torch {torch.__version__}, 1 thread, hidden {h}, median of {a.repeats} x {a.calls} calls")

    w = torch.randn(h, h)
    mb = torch.rand(h, h) > 0.5
    mf = mb.float()
    t_bool, t_float = timed(lambda: w * mb, a.calls, a.repeats), timed(lambda: w * mf, a.calls, a.repeats)
    print(f"1. W * bool mask {t_bool * 1e6:.1f} us, W * float mask {t_float * 1e6:.1f} us: bool / float = {t_bool / t_float:.1f}x")

    for pat in ("1:4", "2:4", "4:8", "2:8"):
        p = parse_pattern(pat)
        assert torch.equal(project_nm(w, p), sort_mask(w, p.n, p.m))
        t_arg = timed(lambda: project_nm(w, p), a.calls, a.repeats)
        t_sort = timed(lambda: sort_mask(w, p.n, p.m), a.calls, a.repeats)
        print(f"2. {pat} {h}x{h}: project_nm {t_arg * 1e6:.1f} us, stable sort {t_sort * 1e6:.1f} us: project_nm / sort = {t_arg / t_sort:.2f}x")

    obs_dim, act_dim = 11, 3  # Hopper-v5
    args = td3.Args(sparsity="2:4", hidden=h)
    low, high = -np.ones(act_dim, np.float32), np.ones(act_dim, np.float32)
    nets = td3.build_networks(args, obs_dim, act_dim, low, high)
    actor, qf1, qf2 = nets["actor"], nets["qf1"], nets["qf2"]
    targets = (nets["actor_target"], nets["qf1_target"], nets["qf2_target"])
    q_opt = torch.optim.Adam(list(qf1.parameters()) + list(qf2.parameters()), lr=3e-4, fused=True)
    a_opt = torch.optim.Adam(actor.parameters(), lr=3e-4, fused=True)
    b = 256
    obs, act, nxt, rew = torch.randn(b, obs_dim), torch.rand(b, act_dim) * 2 - 1, torch.randn(b, obs_dim), torch.randn(b, 1)

    def update() -> None:
        with torch.no_grad():
            na = (nets["actor_target"](nxt) + (torch.randn_like(act) * 0.2).clamp(-0.5, 0.5)).clamp(-1, 1)
            y = rew + 0.99 * torch.min(nets["qf1_target"](nxt, na), nets["qf2_target"](nxt, na))
        loss = torch.nn.functional.mse_loss(qf1(obs, act), y) + torch.nn.functional.mse_loss(qf2(obs, act), y)
        q_opt.zero_grad(set_to_none=True)
        loss.backward()
        q_opt.step()
        aloss = -qf1(obs, actor(obs)).mean()
        a_opt.zero_grad(set_to_none=True)
        aloss.backward()
        a_opt.step()
        for on, tg in zip((actor, qf1, qf2), targets):
            polyak_update(on, tg, 0.005, reproject=False)

    calls = max(a.calls // 10, 5)
    t_upd = timed(update, calls, a.repeats)
    t_proj = timed(lambda: update_masks(targets), calls, a.repeats)
    print(f"3. re-projecting the 3 target networks (2:4) {t_proj * 1e3:.2f} ms, one gradient update (actor included) "
          f"{t_upd * 1e3:.2f} ms: projection / update = {t_proj / t_upd:.2f}x")

    params = [p.detach().clone().requires_grad_() for p in list(qf1.parameters()) + list(qf2.parameters())]
    for p in params:
        p.grad = torch.randn_like(p)
    fused, plain = torch.optim.Adam(params, lr=3e-4, fused=True), torch.optim.Adam(params, lr=3e-4)
    t_fused, t_plain = timed(fused.step, a.calls, a.repeats), timed(plain.step, a.calls, a.repeats)
    print(f"4. Adam step over both critics: fused {t_fused * 1e6:.1f} us, default {t_plain * 1e6:.1f} us: "
          f"default / fused = {t_plain / t_fused:.1f}x")


if __name__ == "__main__":
    main()
