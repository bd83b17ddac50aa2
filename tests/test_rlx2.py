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
