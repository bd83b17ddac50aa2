"""Gradual magnitude pruning (unstructured and N:M) + QAT: schedule, masks, quantizer, resume, export."""

import csv
import math

import numpy as np
import pytest
import torch

from hwmodel.errors import NmlabError
from hwmodel.sparsity import verify
from hwmodel.workload import load_workload
from rl import gmp, td3
from rl.checkpoint import checkpoint_path, load_checkpoint, save_checkpoint
from rl.evaluate import evaluate_run
from rl.export import export_run, load_run
from rl.methods import make_method
from rl.nm_layers import NMLinear, nm_layers
from rl.quant import fake_quant_per_channel

SMALL = dict(env="Hopper-v5", learning_starts=150, batch_size=16, hidden=32, eval_every=10_000,
             eval_episodes=1, checkpoint_every=250, log_every=50, tensorboard=False, progress=False)


def _rows(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def _gmp(**kw):
    return td3.Args(**{**dict(method="gmp", sparsity="0.9"), **kw})


# ----------------------------------------------------------------------------- schedule
def test_cubic_schedule_values_by_hand():
    # 1M steps, 20% QAT: pruning phase P = 800k, t_s = 160k, t_e = 640k.
    m = make_method(_gmp(sparsity="0.95", steps=1_000_000, qat_bits=8))
    s = m.schedule
    assert (s.pruning_steps, s.t_start, s.t_end, m.qat_start) == (800_000, 160_000, 640_000, 800_000)
    assert s.sparsity(0, 0.95) == 0.0
    assert s.sparsity(159_999, 0.95) == 0.0
    assert s.sparsity(160_000, 0.95) == 0.0
    # Halfway: 1 - (1 - 0.5)^3 = 0.875; a quarter: 1 - 0.75^3 = 0.578125.
    assert s.sparsity(400_000, 0.95) == pytest.approx(0.95 * 0.875, abs=1e-12)
    assert s.sparsity(280_000, 0.95) == pytest.approx(0.95 * 0.578125, abs=1e-12)
    assert s.sparsity(520_000, 0.95) == pytest.approx(0.95 * (1 - 0.25 ** 3), abs=1e-12)
    assert s.sparsity(640_000, 0.95) == 0.95
    assert s.sparsity(900_000, 0.95) == 0.95
    # Without QAT the schedule spans all steps.
    s2 = make_method(_gmp(steps=1_000_000)).schedule
    assert (s2.t_start, s2.t_end) == (200_000, 800_000)
    # Short runs round t_s and t_e to multiples of prune_every: P = 2400 -> 480 -> 0, 1920 -> 2000.
    s3 = make_method(_gmp(steps=3000, qat_bits=8)).schedule
    assert (s3.pruning_steps, s3.t_start, s3.t_end) == (2400, 0, 2000)


def test_prune_window_follows_the_start_and_end_knobs():
    # Without QAT P = 1M: t_s = 10%, t_e = 50%; with 20% QAT P = 800k: 80k and 400k.
    s = make_method(_gmp(steps=1_000_000, prune_start_fraction=0.1, prune_end_fraction=0.5)).schedule
    assert (s.t_start, s.t_end) == (100_000, 500_000)
    assert s.sparsity(300_000, 0.9) == pytest.approx(0.9 * 0.875, abs=1e-12)  # halfway
    q = make_method(_gmp(steps=1_000_000, qat_bits=8, prune_start_fraction=0.1, prune_end_fraction=0.5)).schedule
    assert (q.t_start, q.t_end) == (80_000, 400_000)
    assert [t for t in range(0, 1_000_001, 1000) if q.is_prune_step(t)] == list(range(80_000, 400_001, 1000))
    # Pruning from the first step to the end of the phase.
    w = make_method(_gmp(steps=10_000, prune_start_fraction=0.0, prune_end_fraction=1.0)).schedule
    assert (w.t_start, w.t_end) == (0, 10_000)


def test_prunes_only_every_prune_every_inside_the_window():
    s = make_method(_gmp(steps=1_000_000, qat_bits=8)).schedule
    steps = [t for t in range(0, 1_000_001) if s.is_prune_step(t)]
    assert steps == list(range(160_000, 640_001, 1000))


def test_magnitude_mask_is_monotone_and_exact():
    torch.manual_seed(0)
    w = torch.randn(7, 9)
    mask = torch.ones_like(w, dtype=torch.bool)
    for k in (0, 5, 20, 40, 62):
        new = gmp.magnitude_mask(w, mask, k)
        assert int((~new).sum()) == k
        assert not (mask == False).logical_and(new).any()  # noqa: E712  never regrown
        if k:  # the pruned ones are the k smallest |w|
            assert w.abs()[~new].max() <= w.abs()[new].min()
        w = w * new
        mask = new


def test_gradual_nm_respects_group_caps_and_ends_exactly_nm():
    torch.manual_seed(1)
    pattern = td3.parse_pattern("2:4")
    w = torch.randn(5, 14)  # fan-in 14: groups of 4, 4, 4 and a padded group of 2 real columns
    cap = gmp.group_capacity(14, pattern)
    assert cap.tolist() == [2, 2, 2, 0]
    total = 5 * 6
    mask = torch.ones_like(w, dtype=torch.bool)
    for f in (0.0, 0.1, 0.35, 0.5, 0.8, 0.97, 1.0):
        new = gmp.nm_gradual_mask(w, mask, pattern, f)
        assert int((~new).sum()) == math.floor(f * total + 0.5)
        assert not (~mask & new).any()  # monotone
        pruned_per_group = torch.nn.functional.pad(~new, (0, 2)).view(5, 4, 4).sum(-1)
        assert (pruned_per_group <= cap).all()
        mask, w = new, w * new
    counts = torch.nn.functional.pad(mask, (0, 2)).view(5, 4, 4).sum(-1)
    assert counts.tolist() == [[2, 2, 2, 2]] * 5  # min(N, r_g) kept: N:M exactly
    assert verify(mask.numpy(), "2:4") is None


def test_bad_gmp_knobs_are_one_line_errors(tmp_path):
    cases = [
        (dict(method="gmp"), "sparsity: --method gmp needs a target"),
        (dict(method="gmp", sparsity="1.2"), "sparsity: must be a fraction"),
        (dict(method="gmp", sparsity="0.9", actor_sparsity="lots"), "actor_sparsity"),
        (dict(method="gmp", sparsity="0.9", layer_sparsity="fc1=dense"), "layer_sparsity"),
        (dict(method="rnm", sparsity="2:4", qat_bits=8), "qat_bits"),
        (dict(method="gmp", sparsity="0.9", qat_bits=1), "qat_bits"),
        (dict(method="gmp", sparsity="0.9", qat_fraction=1.0), "qat_fraction"),
        (dict(method="gmp", sparsity="0.9", prune_distribution="global"), "prune_distribution"),
        (dict(method="gmp", sparsity="0.9", prune_start_fraction=1.0), r"prune_start_fraction: must be in \[0, 1\)"),
        (dict(method="gmp", sparsity="0.9", prune_start_fraction=-0.1), "prune_start_fraction"),
        (dict(method="gmp", sparsity="0.9", prune_end_fraction=0.0), r"prune_end_fraction: must be in \(0, 1\]"),
        (dict(method="gmp", sparsity="0.9", prune_end_fraction=1.5), "prune_end_fraction"),
        (dict(method="gmp", sparsity="0.9", prune_start_fraction=0.5, prune_end_fraction=0.5),
         "prune_end_fraction: must be above --prune-start-fraction 0.5"),
        (dict(method="gmp", sparsity="0.9", prune_start_fraction=0.85), "prune_start_fraction: must be below --prune-end-fraction 0.8"),
        (dict(method="td3", sparsity="2:4"), "sparsity: --method td3"),
        (dict(method="rnm"), "sparsity: --method rnm"),
        (dict(method="magic"), "method"),
    ]
    for kw, msg in cases:
        with pytest.raises(NmlabError, match=msg) as err:
            td3.validate_args(td3.Args(out=str(tmp_path / "x"), **kw))
        assert "\n" not in str(err.value)


# ----------------------------------------------------------------------------- QAT
def test_fake_quant_per_channel_by_hand():
    w = torch.tensor([[0.5, -1.0, 0.26, 0.0], [0.1, 0.2, -0.4, 0.05], [0.0, 0.0, 0.0, 0.0]])
    # 2 bits: 1 level, scale = row max |w|. Row 0: 0.5 rounds to even (0), 0.26 -> 0.
    assert torch.equal(fake_quant_per_channel(w, 2), torch.tensor([[0.0, -1.0, 0.0, 0.0], [0.0, 0.0, -0.4, 0.0], [0.0] * 4]))
    # 3 bits: 3 levels, scale 1/3 (row 0): 1.5 -> 2, -3 -> -3, 0.78 -> 1; row 1 scale 0.4/3:
    # 0.75 -> 1, 1.5 -> 2, -3, 0.375 -> 0.
    q3 = fake_quant_per_channel(w, 3)
    assert q3[0].tolist() == pytest.approx([2 / 3, -1.0, 1 / 3, 0.0], abs=1e-7)
    assert q3[1].tolist() == pytest.approx([0.4 / 3, 0.8 / 3, -0.4, 0.0], abs=1e-7)
    # 8 bits: 127 levels; 0.26 * 127 = 33.02 -> 33.
    q8 = fake_quant_per_channel(w, 8)
    assert q8[0].tolist() == pytest.approx([64 / 127, -1.0, 33 / 127, 0.0], abs=1e-7)
    for bits in range(2, 9):
        torch.manual_seed(bits)
        x = torch.randn(6, 10)
        q = fake_quant_per_channel(x, bits)
        levels = 2 ** (bits - 1) - 1
        scale = x.abs().amax(1, keepdim=True) / levels
        k = q / scale
        assert torch.allclose(k, k.round(), atol=1e-4)  # on the integer grid
        assert (k.round().abs() <= levels).all()
        assert ((q - x).abs() <= scale / 2 + 1e-6).all()  # nearest level
        assert torch.equal(q[x == 0], x[x == 0])
        assert torch.equal(fake_quant_per_channel(q, bits), q)  # idempotent: evaluate at the QAT bits = as trained


def test_qat_layer_forward_is_quantized_and_gradient_straight_through():
    torch.manual_seed(0)
    a = NMLinear(10, 6, "unstructured", decay=0.0, straight_through=False)
    mask = torch.rand(6, 10) > 0.5
    a.set_mask(mask)
    b = NMLinear(10, 6, "unstructured", decay=0.0, straight_through=False)
    b.load_state_dict(a.state_dict())
    a.qat_bits = 4
    x = torch.randn(5, 10)
    expected = torch.nn.functional.linear(x, fake_quant_per_channel(a.weight.detach() * mask, 4), a.bias.detach())
    out_a = a(x)
    assert torch.equal(out_a, expected)
    assert not torch.equal(out_a, b(x))
    out_a.sum().backward()
    b(x).sum().backward()
    # STE: the gradient is that of the unquantized masked layer (zero on pruned weights).
    assert torch.equal(a.weight.grad, b.weight.grad)
    assert (a.weight.grad[~mask] == 0).all()


def _built(hidden=256, **kw):
    """A GMP method and its six networks (HalfCheetah shapes: 17 observations, 6 actions), masks initialised."""
    args = _gmp(env="HalfCheetah-v5", steps=10_000, hidden=hidden, **kw)
    method = make_method(args)
    nets = td3.build_networks(args, 17, 6, -np.ones(6, np.float32), np.ones(6, np.float32), method)
    method.init_masks(nets)
    method.prepare(nets, 0)
    return method, nets


def test_erk_prunes_each_layer_to_its_erk_sparsity_and_keeps_the_network_target():
    from rl.rlx2 import erk_densities

    method, nets = _built(actor_sparsity="0.9", critic_sparsity="0.8")
    stats = method.prune(nets, method.schedule.t_end)  # s_F reached
    for name, net in nets.items():
        kind, target = ("actor", 0.9) if name.startswith("actor") else ("critic", 0.8)
        layers = nm_layers(net)
        dens = erk_densities({f"fc{i + 1}": tuple(l.weight.shape) for i, l in enumerate(layers)}, target)
        kept = total = 0
        for i, layer in enumerate(layers):
            d, n = dens[f"fc{i + 1}"], layer.weight.numel()
            if d >= 1.0:  # ERK keeps the small output layer dense: a dense layer, exported as such
                assert layer.pattern.kind == "dense" and bool(layer.mask.all())
            else:
                assert int((~layer.mask).sum()) == gmp.prune_count(n, 1.0 - d)
                assert (layer.weight[~layer.mask] == 0).all()
            kept, total = kept + int(layer.mask.sum()), total + n
        assert abs((1 - kept / total) - target) < 1e-3, name  # the network's target, not each layer's
        assert stats[f"{kind}_sparsity"] == pytest.approx(1 - kept / total, abs=1e-9)
    # The 256->1 critic output and 256->6 actor output stay dense; fc2 carries the pruning.
    assert [l.pattern.kind for l in nm_layers(nets["qf1"])] == ["unstructured", "unstructured", "dense"]
    assert 1 - nm_layers(nets["actor"])[1].mask.float().mean() > 0.9


def test_prune_count_rounds_half_up_and_keeps_one_weight():
    """The tests above take prune_count as their expectation: its rounding is pinned here by hand."""
    assert gmp.prune_count(10, 0.25) == 3   # 2.5 rounds up (Python's round() would give 2)
    assert gmp.prune_count(10, 0.24) == 2 and gmp.prune_count(10, 0.26) == 3
    assert gmp.prune_count(1000, 0.9) == 900 and gmp.prune_count(7, 0.0) == 0
    assert gmp.prune_count(5, 1.0) == 4 and gmp.prune_count(1, 0.9) == 0  # at least one weight stays


def test_uniform_prunes_every_layer_to_the_target():
    method, nets = _built(prune_distribution="uniform")
    method.prune(nets, method.schedule.t_end)
    for net in nets.values():
        for layer in nm_layers(net):
            assert layer.pattern.kind == "unstructured"
            assert int((~layer.mask).sum()) == gmp.prune_count(layer.weight.numel(), 0.9)


def test_a_uniform_checkpoint_keeps_its_sparse_output_layers_under_the_erk_default():
    """prepare() marks a layer dense only when its mask is all ones: a run pruned under the
    uniform distribution (or before ERK existed) loads with every trained mask in force."""
    method, nets = _built(prune_distribution="uniform")
    method.prune(nets, method.schedule.t_end)
    erk = make_method(_gmp(env="HalfCheetah-v5", steps=10_000))
    erk.prepare(nets, 0)
    assert all(l.pattern.kind == "unstructured" for net in nets.values() for l in nm_layers(net))


# ----------------------------------------------------------------------------- real runs
@pytest.fixture(scope="module")
def gmp_run(tmp_path_factory):
    """Unstructured GMP (uniform layers), 700 steps: prune every 50 inside [150, 550]; checks invariants after every update."""
    out = tmp_path_factory.mktemp("gmp") / "run"
    prunes, violations = [], []
    real_prune, real_on_update = gmp.GMPMethod.prune, gmp.GMPMethod.on_update

    def prune(self, nets, t):
        result = real_prune(self, nets, t)
        prunes.append((t, {name: [(l.mask.numel(), int((~l.mask).sum())) for l in nm_layers(net)] for name, net in nets.items()},
                       self.schedule.sparsity(t, 0.9), self.schedule.sparsity(t, 0.8)))
        return result

    def on_update(self, update_step, global_step, nets):
        for name, net in nets.items():
            online = nets[name.replace("_target", "")]
            for layer, ref in zip(nm_layers(net), nm_layers(online)):
                if not torch.equal(layer.mask, ref.mask) or (layer.weight[~layer.mask] != 0).any():
                    violations.append((update_step, name))
        return real_on_update(self, update_step, global_step, nets)

    gmp.GMPMethod.prune, gmp.GMPMethod.on_update = prune, on_update
    try:
        td3.train(_gmp(out=str(out), sparsity="0.9", critic_sparsity="0.8", steps=700, prune_every=50, seed=2,
                       prune_distribution="uniform", **SMALL))
    finally:
        gmp.GMPMethod.prune, gmp.GMPMethod.on_update = real_prune, real_on_update
    return out, prunes, violations


@pytest.mark.mujoco
@pytest.mark.slow
def test_gmp_prunes_on_schedule_within_one_weight(gmp_run):
    out, prunes, _ = gmp_run
    # init_masks prunes at step 0 (schedule 0), then every 50 steps in [150, 550].
    assert [t for t, *_ in prunes] == [0] + list(range(150, 551, 50))
    for t, layers, s_actor, s_critic in prunes:
        for name, per_layer in layers.items():
            s = s_actor if name.startswith("actor") else s_critic
            for n, pruned in per_layer:
                assert abs(pruned - s * n) <= 0.5 + 1e-9, (t, name, n, pruned, s)
    assert prunes[-1][2] == pytest.approx(0.9) and prunes[-1][3] == pytest.approx(0.8)
    rows = [r for r in _rows(out / "method.csv") if r["name"] == "actor_sparsity"]
    assert [int(r["step"]) for r in rows] == list(range(150, 551, 50))
    assert float(rows[-1]["value"]) == pytest.approx(0.9, abs=0.01)


@pytest.mark.mujoco
@pytest.mark.slow
def test_pruned_weights_stay_zero_in_online_and_target_networks(gmp_run):
    out, _, violations = gmp_run
    assert violations == []  # checked after every gradient update (optimizer steps and Polyak done)
    _, nets, ckpt = load_run(out)
    assert ckpt["update_step"] == 550
    for name, net in nets.items():
        online = nets[name.replace("_target", "")]
        for layer, ref in zip(nm_layers(net), nm_layers(online)):
            assert layer.pattern.kind == "unstructured" and not layer.straight_through
            assert torch.equal(layer.mask, ref.mask)
            assert (layer.weight[~layer.mask] == 0).all()
            assert layer.weight[layer.mask].abs().min() > 0


@pytest.mark.mujoco
@pytest.mark.slow
def test_gradual_nm_run_ends_exactly_nm_on_every_group(tmp_path):
    out = tmp_path / "nm"
    td3.train(_gmp(out=str(out), sparsity="2:4", actor_sparsity="1:8", steps=600, prune_every=50, **SMALL))
    _, nets, _ = load_run(out)
    for name, net in nets.items():
        pattern = td3.parse_pattern("1:8" if name.startswith("actor") else "2:4")
        for layer in nm_layers(net):
            assert layer.pattern == pattern
            mask = layer.mask
            pad = (-mask.shape[1]) % pattern.m
            real = torch.nn.functional.pad(torch.ones_like(mask), (0, pad)).view(mask.shape[0], -1, pattern.m).sum(-1)
            kept = torch.nn.functional.pad(mask, (0, pad)).view(mask.shape[0], -1, pattern.m).sum(-1)
            assert torch.equal(kept, torch.clamp(real, max=pattern.n)), name
            assert (layer.weight[~mask] == 0).all()


def _ckpt_equal(a, b):
    for key in td3.NETWORK_EXPORT_NAMES:
        assert a[key].keys() == b[key].keys()
        for name in a[key]:
            assert torch.equal(a[key][name], b[key][name]), (key, name)
    for opt in ("actor_optimizer", "q_optimizer"):
        for k, st in a[opt]["state"].items():
            for name, v in st.items():
                assert torch.equal(v, b[opt]["state"][k][name]), (opt, k, name)


@pytest.mark.mujoco
@pytest.mark.slow
def test_gmp_qat_resume_is_bitwise_equal_to_an_uninterrupted_run(tmp_path):
    # P = 700 - 140 = 560 (QAT from step 560 on); t_s = 100, t_e = 450. Checkpoint at 320: mid-schedule.
    # The schedule depends on --steps, so the interruption is a crash at step 330 of the
    # 700-step run (last checkpoint at 320), not a shorter run.
    kw = dict(SMALL, method="gmp", sparsity="0.85", qat_bits=6, steps=700, prune_every=50, seed=4, checkpoint_every=160)
    td3.train(td3.Args(out=str(tmp_path / "a"), **kw))

    class Crash(Exception):
        pass

    real = gmp.GMPMethod.on_env_step

    def crash_at_330(self, global_step, buffer, actor):
        if global_step == 330:
            raise Crash
        return real(self, global_step, buffer, actor)

    gmp.GMPMethod.on_env_step = crash_at_330
    try:
        with pytest.raises(Crash):
            td3.train(td3.Args(out=str(tmp_path / "b"), **kw))
    finally:
        gmp.GMPMethod.on_env_step = real
    assert load_checkpoint(checkpoint_path(tmp_path / "b"))["global_step"] == 320
    td3.train(td3.Args(out=str(tmp_path / "b"), resume=True, **kw), explicit={"resume", "out"})
    a, b = load_checkpoint(checkpoint_path(tmp_path / "a")), load_checkpoint(checkpoint_path(tmp_path / "b"))
    assert a["global_step"] == b["global_step"] == 700
    _ckpt_equal(a, b)
    assert _rows(tmp_path / "a" / "method.csv") == _rows(tmp_path / "b" / "method.csv")
    assert [r["return"] for r in _rows(tmp_path / "a" / "progress.csv")] == [r["return"] for r in _rows(tmp_path / "b" / "progress.csv")]
    with pytest.raises(NmlabError, match="resume: method"):
        td3.train(td3.Args(out=str(tmp_path / "b"), method="rnm", resume=True), explicit={"method", "resume", "out"})
    with pytest.raises(NmlabError, match="resume: steps: .*schedule"):
        td3.train(td3.Args(out=str(tmp_path / "b"), steps=900, resume=True), explicit={"steps", "resume", "out"})


@pytest.mark.mujoco
@pytest.mark.slow
def test_checkpoint_from_before_methods_resumes_bitwise(tmp_path):
    """A checkpoint without method_state and without the new Args fields resumes as before."""
    kw = dict(SMALL, sparsity="2:4", mask_update_interval=30, seed=6)
    td3.train(td3.Args(out=str(tmp_path / "a"), steps=420, **kw))
    td3.train(td3.Args(out=str(tmp_path / "b"), steps=260, **kw))
    path = checkpoint_path(tmp_path / "b")
    old = load_checkpoint(path)
    del old["method_state"]
    for name in ("method", "actor_sparsity", "critic_sparsity", "prune_every", "qat_bits", "qat_fraction"):
        del old["args"][name]
    save_checkpoint(path, {k: v for k, v in old.items() if k not in ("format", "version")})
    td3.train(td3.Args(out=str(tmp_path / "b"), steps=420, resume=True, **kw), explicit={"steps", "resume", "out"})
    _ckpt_equal(load_checkpoint(checkpoint_path(tmp_path / "a")), load_checkpoint(path))


@pytest.mark.mujoco
@pytest.mark.slow
def test_export_of_a_qat_run_is_a_valid_workload_with_unstructured_8bit_layers(tmp_path):
    out = tmp_path / "q"
    td3.train(_gmp(out=str(out), sparsity="0.9", qat_bits=8, steps=500, prune_every=50, seed=1,
                   prune_distribution="uniform", **SMALL))
    wl_path = tmp_path / "q.nmw"
    export_run(out, wl_path)
    wl = load_workload(wl_path)
    assert wl.meta["method"] == "gmp" and wl.meta["sparsity"] == "unstructured" and wl.meta["qat_bits"] == 8
    _, nets, ckpt = load_run(out)
    assert len(wl.layers) == 18
    by_name = {l.name: l for l in wl.layers}
    for key, network in td3.NETWORK_EXPORT_NAMES.items():
        for i, lin in enumerate(nm_layers(nets[key])):
            layer = by_name[f"{network}.fc{i + 1}"]
            assert layer.pattern == "unstructured" and layer.weight_bits == 8
            mask = ckpt[key][f"fc{i + 1}.mask"].numpy()
            assert np.array_equal(layer.mask, mask)
            assert 0.85 < 1 - mask.mean() < 0.95
            w = layer.weight
            assert (w[~mask] == 0).all()
            # Exported weights are the 8-bit fake-quantized masked weights the network computes with.
            latent = ckpt[key][f"fc{i + 1}.weight"] * ckpt[key][f"fc{i + 1}.mask"]
            assert np.array_equal(w, fake_quant_per_channel(latent, 8).numpy())
            scale = np.abs(w).max(1, keepdims=True) / 127
            scale[scale == 0] = 1.0  # rows pruned entirely (90% of a fan-in of 11)
            assert np.allclose(w / scale, np.round(w / scale), atol=1e-3)
    # nmlab evaluate: 32 bits is the network as trained (the final training evaluation), and
    # quantizing again at the QAT bits changes nothing.
    final = float(_rows(out / "eval.csv")[-1]["return_mean"])
    for bits in (32, 8):
        row = evaluate_run(out, bits, episodes=1)
        assert (row["method"], row["sparsity"]) == ("gmp", "unstructured")
        assert row["return_mean"] == pytest.approx(final, abs=1e-3)


# ----------------------------------------------------------------------------- smoke: every method
@pytest.mark.mujoco
@pytest.mark.slow
@pytest.mark.parametrize("method,sparsity,extra", [
    ("td3", "dense", {}),
    ("rnm", "2:4", {}),
    ("gmp", "0.9", {"qat_bits": 8}),
    ("gmp", "2:4", {}),
    ("rlx2", "0.9", {}),
])
def test_smoke_run_of_each_method(tmp_path, method, sparsity, extra):
    args = td3.Args(env="Hopper-v5", method=method, sparsity=sparsity, steps=3000, learning_starts=1000,
                    hidden=64, batch_size=64, eval_every=3000, eval_episodes=2, checkpoint_every=3000,
                    tensorboard=False, progress=False, out=str(tmp_path / method), **extra)
    make_method(args)  # every method ships: "not available" is a failure, not a skip
    summary = td3.train(args)
    assert summary["updates"] == 2000
    assert summary["eval_return_mean"] is not None and math.isfinite(summary["eval_return_mean"])
    wl = export_run(tmp_path / method, tmp_path / f"{method}.nmw")
    assert len(wl.layers) == 18


def test_train_help_lists_every_option(capsys):
    """argparse %-formats help strings: a '%' in one (--rlx2-buffer-drop-fraction's '10%') must not crash --help."""
    from hwmodel.cli import main as nmlab
    from rl.train_cmd import TRAIN_OPTIONS

    assert nmlab(["train", "--help"]) == 0  # main() returns argparse's status
    text = capsys.readouterr().out
    for name, *_ in TRAIN_OPTIONS:
        assert "--" + name.replace("_", "-") in text
    assert "10%" in text


class _Kill(Exception):
    pass


@pytest.fixture(scope="module")
def gmp_24_stopped_at_250(tmp_path_factory):
    """A gmp 2:4 run (600 steps, pruned every 50) stopped one step after its checkpoint at step 250,
    inside the pruning window, so its masks are not all 2:4 yet: its folder. Read-only for tests."""
    out = tmp_path_factory.mktemp("gmp_mid") / "mid"
    real = gmp.GMPMethod.on_env_step

    def kill(self, global_step, buffer, actor):
        if global_step == 251:
            raise _Kill()
        return real(self, global_step, buffer, actor)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(gmp.GMPMethod, "on_env_step", kill)
        with pytest.raises(_Kill):
            td3.train(_gmp(out=str(out), sparsity="2:4", steps=600, prune_every=50, **SMALL))
    return out


@pytest.mark.mujoco
@pytest.mark.slow
def test_export_mid_schedule_writes_gradual_nm_layers_as_unstructured_with_their_masks(tmp_path, gmp_24_stopped_at_250):
    """rl/export.py: a gradual-N:M layer exported before its schedule ended (its mask not N:M
    yet) is written as "unstructured" with its real mask, so the workload is valid and the model
    sees what was trained; a layer whose mask already is N:M keeps its N:M pattern."""
    out = gmp_24_stopped_at_250
    assert load_checkpoint(checkpoint_path(out))["global_step"] == 250
    _, nets, _ = load_run(out)
    wl = export_run(out, tmp_path / "mid.nmw", episodes=1)
    assert load_workload(tmp_path / "mid.nmw").layers[0].name == wl.layers[0].name
    layers = [lin for key in td3.NETWORK_EXPORT_NAMES for lin in nm_layers(nets[key])]
    assert len(layers) == len(wl.layers)
    kinds = set()
    for lin, layer in zip(layers, wl.layers):
        mask = lin.mask.numpy()
        nm = verify(mask, "2:4") is None
        kinds.add(nm)
        assert layer.pattern == ("2:4" if nm else "unstructured"), layer.name
        assert np.array_equal(layer.mask, mask), layer.name
    assert False in kinds  # mid-schedule: some layer is not 2:4 yet


@pytest.mark.mujoco
@pytest.mark.slow
def test_gradual_nm_exported_mid_schedule_says_why_no_return_joins_and_takes_no_other_agents(tmp_path, gmp_24_stopped_at_250,
                                                                                           capsys):
    """A gmp 2:4 run exported before its masks are 2:4 is an unstructured workload labelled
    "gmp 2:4": the sweep joined it to no row of its own, silently, and took any gmp unstructured
    row of the env (another gmp agent's, "gmp 0.9") for its return. Now export says why no return
    joins it, and the sweep joins none to it."""
    from hwmodel.cli import main
    from sweeps.derived import _join_one, load_quality
    from sweeps.grid import _workload_info

    out = gmp_24_stopped_at_250
    end = make_method(_gmp(sparsity="2:4", steps=600, prune_every=50, **SMALL)).schedule.t_end
    note = (f"note: {out} is gmp 2:4 at step 250, before its masks are 2:4 (its schedule reaches 2:4 at step {end}): "
            f"its workload is unstructured and no quality row is its return (nmlab evaluate --csv writes none before "
            f"step {end}), so a sweep joins no return to it; export and evaluate it from step {end} on to compare it as 2:4")
    assert main(["export", str(out), "--out", str(tmp_path / "mid.nmw"), "--episodes", "1"]) == 0
    assert capsys.readouterr().err.strip() == note
    info = _workload_info(str(tmp_path / "mid.nmw"))
    assert (info.pattern, info.agent, info.method) == ("unstructured", "gmp 2:4", "gmp")
    # Another gmp agent of the env (fractions removed: rows "unstructured" and "0.9") is not its return.
    table = tmp_path / "q.csv"
    table.write_text("env,method,sparsity,bits,seed,steps,episodes,return_mean,return_std\n"
                     "Hopper-v5,gmp,unstructured,8,0,600,1,123.0,1.0\nHopper-v5,gmp,0.9,8,1,600,1,321.0,1.0\n")
    quality = load_quality(table)
    assert _join_one(quality, "Hopper-v5", "unstructured", 8, "gmp", info.agent) is None
    assert _join_one(quality, "Hopper-v5", "unstructured", 8, "gmp", "gmp 0.9")[0] == pytest.approx((123.0 + 321.0) / 2)


@pytest.mark.mujoco
@pytest.mark.slow
def test_gradual_nm_evaluated_mid_schedule_writes_no_row_a_sweep_would_average_with_finished_seeds(
        tmp_path, gmp_24_stopped_at_250, capsys):
    """nmlab evaluate --csv of a gmp 2:4 run before its masks are 2:4 wrote a row labelled 2:4 (method gmp),
    printing only a note: a sweep then averaged its return with another seed's finished gmp 2:4 run (same
    env, pattern, bits, method). Now --csv refuses it in one line before evaluating (exit 2, the table
    unchanged), so the finished agent's return is its own; without --csv the return is printed with a note
    that it is not yet the 2:4 agent's."""
    from hwmodel.cli import main
    from sweeps.derived import _join_one, load_quality

    out = gmp_24_stopped_at_250
    end = make_method(_gmp(sparsity="2:4", steps=600, prune_every=50, **SMALL)).schedule.t_end
    where = f"{out} is gmp 2:4 at step 250, before its masks are 2:4 (its schedule reaches 2:4 at step {end})"
    table = tmp_path / "q.csv"
    finished = ("env,method,sparsity,bits,seed,steps,episodes,return_mean,return_std\n"
                "Hopper-v5,gmp,2:4,8,1,600,1,400.0,1.0\n")  # another seed's finished gmp 2:4 run
    table.write_text(finished)
    assert main(["evaluate", str(out), "--bits", "8", "--episodes", "1", "--csv", str(table)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.strip().splitlines() == [
        f"nmlab evaluate: error: --csv: {where}: its return is not yet the 2:4 agent's, and a sweep would average it "
        f"with other seeds' 2:4 rows, so no quality row is written for it before step {end} (nmlab evaluate "
        f"without --csv prints its return)"]
    assert table.read_text() == finished
    mean, _std, seeds, steps = _join_one(load_quality(table), "Hopper-v5", "2:4", 8, "gmp", "gmp 2:4")
    assert (mean, seeds, steps) == (400.0, 1, 600)  # the finished seed's return alone
    assert main(["evaluate", str(out), "--bits", "8", "--episodes", "1", "--csv", str(tmp_path / "new.csv")]) == 2
    assert not (tmp_path / "new.csv").exists()
    # Bundling it (rl/publish.py) is refused the same way, before anything is exported.
    from rl.publish import bundle

    dest = tmp_path / "bundled"
    dest.mkdir()
    with pytest.raises(NmlabError, match=r"^bundle: .* is gmp 2:4 at step 250, before its masks are 2:4"):
        bundle([out], bits=(8,), episodes=1, dest=dest)
    assert list(dest.iterdir()) == []
    capsys.readouterr()
    assert main(["evaluate", str(out), "--bits", "8", "--episodes", "1"]) == 0
    captured = capsys.readouterr()
    assert captured.out.startswith("Hopper-v5 gmp 2:4 seed 0 at 250 steps, 8-bit weights: return ")
    assert captured.err.strip() == (f"note: {where}: this return is not yet the 2:4 agent's (nmlab evaluate --csv "
                                    f"writes no row for it before step {end})")
