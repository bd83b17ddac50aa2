"""RLx2: ERK densities, RigL drop/grow, cosine drop fraction, schedules, and the method in the loop."""

import math

import pytest
import torch

from hwmodel.errors import NmlabError
from rl.rlx2 import drop_fraction, erk_densities, rigl_update, topk_mask

HOPPER_ACTOR = {"actor.fc1": (256, 11), "actor.fc2": (256, 256), "actor.fc3": (3, 256)}


def _kept(shapes, dens):
    return sum(round(dens[k] * o * i) for k, (o, i) in shapes.items())


def test_erk_hopper_actor_by_hand():
    d = erk_densities(HOPPER_ACTOR, 0.9)
    # Uncapped eps = 6912 / (267 + 512 + 259) = 6.66 puts fc3 at 2.24 > 1: fc3 is kept dense and
    # eps = (6912 - 768) / (267 + 512) = 7.887 over fc1 and fc2.
    eps = (0.1 * 69120 - 768) / (267 + 512)
    assert d["actor.fc3"] == 1.0
    assert d["actor.fc1"] == pytest.approx(eps * 267 / 2816)
    assert d["actor.fc2"] == pytest.approx(eps * 512 / 65536)
    assert d["actor.fc1"] == pytest.approx(0.7478, abs=1e-4) and d["actor.fc2"] == pytest.approx(0.06162, abs=1e-5)
    assert abs(_kept(HOPPER_ACTOR, d) - 6912) <= 1


@pytest.mark.parametrize("sparsity", [0.5, 0.8, 0.9, 0.95, 0.98])
@pytest.mark.parametrize("obs,act", [(11, 3), (17, 6), (105, 8), (376, 17)])
def test_erk_invariants_on_actor_and_critic_shapes(sparsity, obs, act):
    for shapes in ({"fc1": (256, obs), "fc2": (256, 256), "fc3": (act, 256)},
                   {"fc1": (256, obs + act), "fc2": (256, 256), "fc3": (1, 256)}):
        d = erk_densities(shapes, sparsity)
        total = sum(o * i for o, i in shapes.values())
        # Kept weights = target, within rounding of each layer.
        assert abs(_kept(shapes, d) - (1 - sparsity) * total) <= len(shapes) / 2 + 1e-6
        assert all(0.0 < v <= 1.0 for v in d.values())
        free = [k for k in shapes if d[k] < 1.0]
        # Every uncapped layer: density / ((in + out) / (in * out)) is one common eps ...
        eps = {k: d[k] * shapes[k][0] * shapes[k][1] / sum(shapes[k]) for k in free}
        assert max(eps.values()) == pytest.approx(min(eps.values()))
        # ... and every capped layer would have exceeded 1 with it.
        e = next(iter(eps.values()))
        for k in shapes:
            if d[k] == 1.0:
                assert e * sum(shapes[k]) / (shapes[k][0] * shapes[k][1]) > 1.0


def test_erk_capping_cascades_and_dense_layers_use_the_budget():
    # Raw ratios: a 2/1 = 2, b (10+10)/100 = 0.2, c (100+100)/10^4 = 0.02.
    shapes = {"a": (1, 1), "b": (10, 10), "c": (100, 100)}
    d = erk_densities(shapes, 0.5)
    assert d["a"] == 1.0 and d["b"] == 1.0  # b exceeds 1 only once a is capped
    assert d["c"] == pytest.approx((0.5 * 10101 - 101) / 10_000)
    # A layer forced dense keeps all its weights; the others share what is left.
    forced = erk_densities(HOPPER_ACTOR, 0.9, dense=["actor.fc1"])
    assert forced["actor.fc1"] == 1.0 and forced["actor.fc3"] == 1.0
    assert forced["actor.fc2"] == pytest.approx((6912 - 2816 - 768) / 65536)
    assert erk_densities(shapes, 0.0) == {"a": 1.0, "b": 1.0, "c": 1.0}
    with pytest.raises(NmlabError, match="sparsity"):
        erk_densities(HOPPER_ACTOR, 0.99, dense=["actor.fc2"])
    with pytest.raises(NmlabError, match="sparsity"):
        erk_densities(HOPPER_ACTOR, 1.0)


def test_cosine_drop_fraction_values():
    assert drop_fraction(0, 1000) == 0.5
    assert drop_fraction(500, 1000) == pytest.approx(0.25)
    assert drop_fraction(250, 1000) == pytest.approx(0.25 * (1 + math.sqrt(0.5)))
    assert drop_fraction(999, 1000) == pytest.approx(0.25 * (1 + math.cos(math.pi * 0.999)))
    assert drop_fraction(1000, 1000) == 0.0 and drop_fraction(5000, 1000) == 0.0
    assert drop_fraction(10_000, 975_000, zeta0=0.3) == pytest.approx(0.15 * (1 + math.cos(math.pi * 10 / 975)))


def test_topk_mask_ties_go_to_the_lower_index():
    s = torch.tensor([[1.0, 3.0, 3.0], [2.0, 3.0, 0.0]])
    assert topk_mask(s, 2).tolist() == [[False, True, True], [False, False, False]]
    assert topk_mask(s, 3).tolist() == [[False, True, True], [False, True, False]]
    assert int(topk_mask(s, 0).sum()) == 0


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("fraction", [0.0, 0.1, 0.37, 0.5, 1.0])
def test_rigl_drops_smallest_active_and_grows_largest_gradient(seed, fraction):
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(40, 30, generator=g)
    mask = torch.rand(40, 30, generator=g) < 0.2
    w *= mask  # inactive weights are zero, as in training
    grad = torch.randn(40, 30, generator=g)
    before = w.clone()
    n_active = int(mask.sum())
    new, step = rigl_update(w, mask, grad, fraction)
    assert step.n_drop == int(fraction * n_active)
    assert int(step.dropped.sum()) == int(step.grown.sum()) == step.n_drop
    assert int(new.sum()) == n_active  # active count constant
    # Dropped: active before, and no kept active weight is smaller in |w|.
    assert not (step.dropped & ~mask).any()
    kept = mask & ~step.dropped
    if step.n_drop and kept.any():
        assert before.abs()[step.dropped].max() <= before.abs()[kept].min()
    # Grown: inactive after the drop, and no other candidate has a larger |grad|.
    candidates = ~kept
    assert not (step.grown & kept).any()
    others = candidates & ~step.grown
    if step.n_drop and others.any():
        assert grad.abs()[step.grown].min() >= grad.abs()[others].max()
    assert torch.equal(new, kept | step.grown)
    # Newly active entries start at zero; entries still active keep their values.
    fresh = new & ~mask
    assert (w[fresh] == 0).all()
    assert torch.equal(w[new & mask], before[new & mask])
    assert step.changed == int((new != mask).sum())


def test_rigl_by_hand():
    w = torch.tensor([[0.5, 0.0, -0.1], [0.0, 2.0, 0.3]])
    mask = torch.tensor([[True, False, True], [False, True, True]])
    grad = torch.tensor([[9.0, 0.2, 0.0], [-0.7, 0.0, 5.0]])
    new, step = rigl_update(w, mask, grad, 0.5)  # 4 active -> drop 2: -0.1 and 0.3
    assert step.dropped.tolist() == [[False, False, True], [False, False, True]]
    # Candidates: (0,1) 0.2, (0,2) 0.0, (1,0) 0.7, (1,2) 5.0 -> grow (1,2) (regrown) and (1,0).
    assert step.grown.tolist() == [[False, False, False], [True, False, True]]
    assert new.tolist() == [[True, False, False], [True, True, True]]
    # (1,0) is new at 0, (1,2) kept its value; dropped (0,2) is zeroed by the caller's re-mask.
    assert torch.equal(w, torch.tensor([[0.5, 0.0, -0.1], [0.0, 2.0, 0.3]]))
    assert step.changed == 2


# ----------------------------------------------------------------------------- the method in the loop
import csv  # noqa: E402

from rl import td3  # noqa: E402
from rl.checkpoint import checkpoint_path, load_checkpoint  # noqa: E402
from rl.methods import make_method  # noqa: E402
from rl.nm_layers import nm_layers  # noqa: E402
from rl.rlx2 import RLx2Method  # noqa: E402

# Real Hopper-v5 but tiny: 350 gradient updates; RigL every 20 optimizer steps (critic) / 20
# actor steps; 3-step targets from update 150 (step 300); buffer checked every 100 steps and
# shrunk whenever it holds over 200 transitions (threshold 0).
SMALL = dict(env="Hopper-v5", method="rlx2", sparsity="0.8", learning_starts=150, batch_size=16, hidden=32,
             eval_every=10_000, eval_episodes=1, checkpoint_every=160, log_every=50, tensorboard=False, progress=False,
             rlx2_delta=20, rlx2_nstep_start=0.3, rlx2_buffer_check_every=100, rlx2_buffer_min_size=200,
             rlx2_buffer_threshold=0.0, seed=5)
ONLINE = ("actor", "qf1", "qf2")


def _rows(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


class Kill(Exception):
    pass


@pytest.fixture(scope="module")
def rlx2_run(tmp_path_factory):
    """An uninterrupted 500-step run; after every gradient update a spy records the mask
    counts of all six networks, target/online mask equality and zeros outside the masks."""
    out = tmp_path_factory.mktemp("rlx2") / "a"
    seen = []
    real = RLx2Method.on_update

    def spy(self, update_step, global_step, nets):
        counts = {n: [int(l.mask.sum()) for l in nm_layers(nets[n])] for n in nets}
        same = all(torch.equal(a.mask, b.mask) for n in ONLINE for a, b in zip(nm_layers(nets[n]), nm_layers(nets[f"{n}_target"])))
        zeros = all(bool((l.weight[~l.mask] == 0).all()) for net in nets.values() for l in nm_layers(net))
        seen.append((update_step, counts, same, zeros, self.td_steps(update_step)))
        return real(self, update_step, global_step, nets)

    RLx2Method.on_update = spy
    try:
        td3.train(td3.Args(out=str(out), steps=500, **SMALL))
    finally:
        RLx2Method.on_update = real
    return out, seen


@pytest.mark.mujoco
@pytest.mark.slow
def test_masks_stay_at_erk_densities_in_online_and_target_networks(rlx2_run):
    out, seen = rlx2_run
    assert [s[0] for s in seen] == list(range(1, 351))
    state = load_checkpoint(checkpoint_path(out))["method_state"]
    dens = state["densities"]
    # Hopper actor 11-32-32-3, critics 14-32-32-1 at 80% sparsity (ERK keeps critic.fc3 dense).
    expect_actor = erk_densities({"actor.fc1": (32, 11), "actor.fc2": (32, 32), "actor.fc3": (3, 32)}, 0.8)
    expect_critic = erk_densities({"critic.fc1": (32, 14), "critic.fc2": (32, 32), "critic.fc3": (1, 32)}, 0.8)
    assert dens == pytest.approx({**expect_actor, **expect_critic})
    sizes = {"actor": [32 * 11, 32 * 32, 3 * 32], "qf": [32 * 14, 32 * 32, 32]}
    want = {n: [round(dens[f"{'actor' if n.startswith('actor') else 'critic'}.fc{i + 1}"] * s)
                for i, s in enumerate(sizes["actor" if n.startswith("actor") else "qf"])] for n in seen[0][1]}
    for update, counts, same, zeros, _ in seen:
        assert counts == want, update
        assert same, update  # targets hold the online masks after every update
        assert zeros, update  # every latent weight outside its mask is exactly zero
    # Overall kept fraction of the actor: 20% within rounding.
    assert abs(sum(want["actor"]) - 0.2 * sum(sizes["actor"])) <= 1.5


@pytest.mark.mujoco
@pytest.mark.slow
def test_topology_updates_at_the_schedule_with_cosine_drop_counts(rlx2_run):
    out, seen = rlx2_run
    state = load_checkpoint(checkpoint_path(out))["method_state"]
    assert state["t_end_critic"] == 350 and state["t_end_actor"] == 175
    rows = _rows(out / "method.csv")
    by = lambda name: {int(r["update"]): float(r["value"]) for r in rows if r["name"] == name}  # noqa: E731
    # Critic: every 20 critic updates below T_end = 350; actor: every 20 actor updates (= 40
    # critic updates) below 175 actor updates.
    assert sorted(by("critic_drop_fraction")) == list(range(20, 350, 20))
    assert sorted(by("actor_drop_fraction")) == list(range(40, 350, 40))
    counts = seen[0][1]
    for u, zeta in by("critic_drop_fraction").items():
        assert zeta == pytest.approx(drop_fraction(u, 350), abs=1e-8)  # logged to 8 decimals
        expected = sum(int(drop_fraction(u, 350) * c) for n in ("qf1", "qf2") for c, full in zip(counts[n], (448, 1024, 32))
                       if c < full)
        assert by("critic_dropped")[u] == expected
    for u, zeta in by("actor_drop_fraction").items():
        assert zeta == pytest.approx(drop_fraction(u // 2, 175), abs=1e-8)
        assert by("actor_dropped")[u] == sum(int(drop_fraction(u // 2, 175) * c) for c in counts["actor"])
    # SAD rows: one per update with a topology change, totals of the evolving layers.
    sad = _rows(out / "sad.csv")
    assert [int(r["update"]) for r in sad] == list(range(20, 350, 20))
    for r in sad:
        u = int(r["update"])
        dropped = by("critic_dropped")[u] + by("actor_dropped").get(u, 0)
        # Each net swap changes two entries; a dropped entry regrown at once changes none.
        assert int(r["changed"]) <= 2 * dropped and int(r["changed"]) % 2 == 0
    assert int(sad[0]["changed"]) > 0


@pytest.mark.mujoco
@pytest.mark.slow
def test_multi_step_targets_switch_on_after_the_delay(rlx2_run):
    out, seen = rlx2_run
    assert {u: n for u, *_, n in seen if u in (149, 150, 151)} == {149: 1, 150: 3, 151: 3}
    rows = [r for r in _rows(out / "method.csv") if r["name"] == "td_steps"]
    assert [(int(r["update"]), float(r["value"])) for r in rows] == [(150, 3.0)]


@pytest.mark.mujoco
@pytest.mark.slow
def test_dynamic_buffer_checks_and_drops_the_oldest_tenth(rlx2_run):
    out, _ = rlx2_run
    rows = _rows(out / "method.csv")
    size = [(int(r["step"]), float(r["value"])) for r in rows if r["name"] == "buffer_size"]
    dropped = [(int(r["step"]), float(r["value"])) for r in rows if r["name"] == "buffer_dropped"]
    mismatch = [float(r["value"]) for r in rows if r["name"] == "buffer_mismatch"]
    assert [s for s, _ in size] == [100, 200, 300, 400, 500]
    # Sizes: 100, 200 (not above the minimum 200), 300 -> drop 30, 370 -> drop 37, 433 -> drop 43.
    assert dropped == [(100, 0), (200, 0), (300, 30), (400, 37), (500, 43)]
    assert size == [(100, 100), (200, 200), (300, 270), (400, 333), (500, 390)]
    assert all(m > 0 for m in mismatch)
    buf = load_checkpoint(checkpoint_path(out))["buffer"]
    assert buf["size"] == 390 and buf["filled"] == 500 and buf["pos"] == 500


@pytest.mark.mujoco
@pytest.mark.slow
def test_rlx2_resume_after_a_kill_is_bitwise_equal_to_the_uninterrupted_run(rlx2_run, tmp_path):
    a_dir, _ = rlx2_run
    b_dir = tmp_path / "b"
    real = RLx2Method.on_env_step

    def kill(self, global_step, buffer, actor):
        if global_step == 321:  # killed one step after the checkpoint at 320
            raise Kill()
        return real(self, global_step, buffer, actor)

    RLx2Method.on_env_step = kill
    try:
        with pytest.raises(Kill):
            td3.train(td3.Args(out=str(b_dir), steps=500, **SMALL))
    finally:
        RLx2Method.on_env_step = real
    mid = load_checkpoint(checkpoint_path(b_dir))
    assert mid["global_step"] == 320 and mid["buffer"]["size"] == 290  # a shrunk window is in the checkpoint
    assert mid["method_state"]["topology_updates_critic"] == 8
    td3.train(td3.Args(out=str(b_dir), steps=500, resume=True, **SMALL), explicit={"resume", "out"})
    a, b = load_checkpoint(checkpoint_path(a_dir)), load_checkpoint(checkpoint_path(b_dir))
    assert (a["global_step"], a["update_step"]) == (b["global_step"], b["update_step"]) == (500, 350)
    for key in td3.NETWORK_EXPORT_NAMES:
        for name in a[key]:
            assert torch.equal(a[key][name], b[key][name]), (key, name)
    for opt in ("actor_optimizer", "q_optimizer"):
        for i, st in a[opt]["state"].items():
            for k, v in st.items():
                assert torch.equal(v, b[opt]["state"][i][k]), (opt, i, k)
    for k, v in a["buffer"].items():
        assert torch.equal(v, b["buffer"][k]) if isinstance(v, torch.Tensor) else v == b["buffer"][k], k
    assert a["method_state"] == b["method_state"]
    for log in ("progress.csv", "sad.csv", "method.csv", "losses.csv", "eval.csv"):
        assert _strip(_rows(a_dir / log)) == _strip(_rows(b_dir / log)), log


def _strip(rows):
    return [{k: v for k, v in r.items() if k != "time_s"} for r in rows]


def test_cli_knobs_and_one_line_errors():
    base = td3.Args(method="rlx2", sparsity="0.9")
    m = make_method(base)
    assert isinstance(m, RLx2Method) and (m.actor_sparsity, m.critic_sparsity) == (0.9, 0.9)
    assert m.sparsity_label() == "0.9" and td3.method_name(base) == "rlx2"
    assert all(str(p) == "unstructured" for p in m.layer_patterns().values())
    # Paper defaults, frozen from --steps: T_end = all 975k updates, 3-step from update 300k.
    assert (m.t_end, m.nstep_start, m.td_steps(299_999), m.td_steps(300_000)) == ({"critic": 975_000, "actor": 487_500}, 300_000, 1, 3)
    split = make_method(td3.Args(method="rlx2", sparsity="0.9", actor_sparsity="0.96", critic_sparsity="0.88",
                                 layer_sparsity="actor.fc3=dense"))
    assert (split.actor_sparsity, split.critic_sparsity, split.sparsity_label()) == (0.96, 0.88, "0.96/0.88")
    assert str(split.layer_patterns()["actor.fc3"]) == "dense"
    bad = [(dict(sparsity="2:4"), "sparsity"), (dict(sparsity="dense"), "sparsity"),
           (dict(sparsity="0.9", critic_sparsity="1.2"), "critic_sparsity"),
           (dict(sparsity="0.9", layer_sparsity="fc2=2:4"), "layer_sparsity"),
           (dict(sparsity="0.9", rlx2_delta=0), "rlx2_delta"), (dict(sparsity="0.9", rlx2_zeta=1.5), "rlx2_zeta"),
           (dict(sparsity="0.9", rlx2_nstep=0), "rlx2_nstep"), (dict(sparsity="0.9", qat_bits=8), "qat_bits")]
    for kw, field in bad:
        with pytest.raises(NmlabError, match=field) as err:
            make_method(td3.Args(method="rlx2", **kw))
        assert "\n" not in str(err.value)
    # Buffer knobs, checked as nmlab train checks them (bounds first, then the ranges).
    for kw, msg in [(dict(rlx2_buffer_drop_fraction=0.0), r"rlx2_buffer_drop_fraction: must be in \(0, 1\]"),
                    (dict(rlx2_buffer_drop_fraction=1.5), "rlx2_buffer_drop_fraction"),
                    (dict(rlx2_buffer_drop_fraction=float("nan")), "rlx2_buffer_drop_fraction"),
                    (dict(rlx2_mismatch_samples=0), "rlx2_mismatch_samples: must be an integer from 1"),
                    (dict(rlx2_mismatch_samples=2.5), "rlx2_mismatch_samples: must be an integer")]:
        with pytest.raises(NmlabError, match=msg) as err:
            td3.validate_args(td3.Args(method="rlx2", sparsity="0.9", **kw))
        assert "\n" not in str(err.value)


def test_buffer_check_uses_the_mismatch_sample_and_drop_fraction_knobs(monkeypatch):
    """on_env_step measures the mismatch on --rlx2-mismatch-samples transitions and drops
    --rlx2-buffer-drop-fraction of the live ones (they were the constants 2048 and 0.1)."""
    import rl.rlx2 as rlx2_mod
    from rl.replay import ReplayBuffer

    asked = []
    monkeypatch.setattr(rlx2_mod, "policy_mismatch", lambda buffer, actor, scale, k, device: asked.append(k) or 1.0)
    buf = ReplayBuffer(100, 3, 2, store_behavior=True)
    for i in range(40):
        buf.add([i, 0, 0], [i + 1, 0, 0], [0.0, 0.0], 0.0, False, False, [0.0, 0.0])
    actor = torch.nn.Module()
    actor.action_scale = torch.ones(2)
    m = make_method(td3.Args(method="rlx2", sparsity="0.9", rlx2_buffer_check_every=10, rlx2_buffer_min_size=0,
                             rlx2_buffer_threshold=0.5, rlx2_mismatch_samples=7, rlx2_buffer_drop_fraction=0.25))
    assert m.on_env_step(10, buf, actor) == {"buffer_mismatch": 1.0, "buffer_size": 30, "buffer_dropped": 10}
    assert asked == [7]
    default = make_method(td3.Args(method="rlx2", sparsity="0.9", rlx2_buffer_check_every=10, rlx2_buffer_min_size=0))
    assert default.on_env_step(20, buf, actor)["buffer_dropped"] == 3  # 0.1 of 30
    assert asked == [7, 2048]


@pytest.mark.mujoco
@pytest.mark.slow
def test_export_writes_unstructured_layers_with_their_masks(rlx2_run, tmp_path):
    from hwmodel.workload import load_workload
    from rl.export import export_run

    out, seen = rlx2_run
    path = tmp_path / "rlx2.nmw"
    export_run(out, path)
    wl = load_workload(path)
    assert wl.meta["method"] == "rlx2" and wl.meta["sparsity"] == "0.8"
    # docs/rl.md "Export": rlx2 and gmp exports record the per-network targets.
    assert (wl.meta["actor_sparsity"], wl.meta["critic_sparsity"]) == ("0.8", "0.8")
    counts = seen[-1][1]
    nets = {"actor": "actor", "critic1": "qf1", "critic2": "qf2", "actor_target": "actor_target",
            "critic1_target": "qf1_target", "critic2_target": "qf2_target"}
    for layer in wl.layers:
        network, fc = layer.name.split(".")
        kept = counts[nets[network]][int(fc[2]) - 1]
        if network.startswith("critic") and fc == "fc3":
            assert layer.pattern == "dense" and layer.mask is None  # ERK keeps the 32-weight head dense
        else:
            assert layer.pattern == "unstructured" and int(layer.mask.sum()) == kept, layer.name
            assert (layer.weight[~layer.mask] == 0).all()


def test_gradients_outside_the_mask_never_reach_the_optimizer_and_topology_steps_skip_it():
    """RLx2's after_backward hook (the optimizer sees what it leaves): between topology updates
    the gradient of every pruned entry is zeroed (Adam's moments of a pruned weight stay zero,
    so a regrown weight starts clean) and kept entries keep theirs; at a topology update
    (t % delta == 0, t < T_end) the mask changes, pruned weights are zero and every gradient is
    dropped so the optimizer step is skipped (RigL); from T_end on no topology update happens."""
    from rl.methods import make_method
    from rl.nm_layers import NMLinear
    from rl import td3

    torch.manual_seed(0)
    m = make_method(td3.Args(method="rlx2", sparsity="0.5", steps=1000, learning_starts=0, rlx2_t_end=0.5,
                             rlx2_delta=5, rlx2_zeta=0.5))
    assert m.t_end["critic"] == 500
    net = torch.nn.Sequential(NMLinear(8, 6, "unstructured", decay=0.0, straight_through=True))
    layer = net[0]
    layer.set_mask(topk_mask(layer.weight.abs(), 24))
    with torch.no_grad():
        layer.weight.mul_(layer.mask_f)
    x = torch.randn(16, 8)

    def backward():
        net.zero_grad(set_to_none=True)
        net(x).pow(2).sum().backward()
        return layer.weight.grad.clone()

    for update in (3, 7, 500, 505):  # not multiples of delta, then T_end and past it
        mask = layer.mask.clone()
        dense_grad = backward()
        assert (dense_grad[~mask] != 0).any()  # straight-through: pruned entries get a gradient
        m.after_backward("critic", (net,), update)
        assert torch.equal(layer.mask, mask), update
        assert torch.equal(layer.weight.grad, torch.where(mask, dense_grad, torch.zeros_like(dense_grad))), update
    for update in (5, 10):
        before = layer.mask.clone()
        backward()
        m.after_backward("critic", (net,), update)
        assert layer.weight.grad is None and layer.bias.grad is None, update
        assert int(layer.mask.sum()) == 24, update
        # (At 10 the entries grown at 5 still hold 0: RigL may drop and regrow the same ones.)
        assert update != 5 or not torch.equal(layer.mask, before)
        assert (layer.weight[~layer.mask] == 0).all()
    assert m.topology_updates["critic"] == 2
