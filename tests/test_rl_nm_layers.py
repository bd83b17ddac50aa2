"""N:M layers of RNM-TD3: projection, masked forward, SR-STE gradients, Polyak re-projection."""

import pytest
import torch

from hwmodel.sparsity import parse_pattern
from rl import sparsity as tsp
from rl.nm_layers import NMLinear, nm_layers, polyak_update, project_nm, update_masks

PATTERNS = ["1:2", "2:4", "1:4", "1:8", "2:8", "4:8"]


@pytest.mark.parametrize("pattern", PATTERNS)
@pytest.mark.parametrize("fan_in", [14, 23, 11, 64, 17])
def test_project_nm_matches_reference_mask_including_ties_and_padding(pattern, fan_in):
    g = torch.Generator().manual_seed(fan_in)
    w = torch.randn(37, fan_in, generator=g)
    # Coarse values force many ties, which must go to the lower index like the reference.
    w_ties = torch.round(w * 2) / 2
    for weight in (w, w_ties):
        got = project_nm(weight, parse_pattern(pattern))
        assert torch.equal(got, tsp.nm_mask(weight, pattern))
        assert tsp.verify(got, pattern) is None


def test_odd_fan_in_is_padded_not_dropped():
    # Hopper's critic fan-in 14 under 2:4: the last group has 2 real columns, both kept.
    w = torch.randn(8, 14)
    mask = project_nm(w, parse_pattern("2:4"))
    assert mask[:, 12:].all()
    assert mask.sum() == 8 * (3 * 2 + 2)


def test_forward_uses_masked_weight():
    layer = NMLinear(23, 16, "2:4")
    x = torch.randn(5, 23)
    expected = torch.nn.functional.linear(x, layer.weight * layer.mask, layer.bias)
    assert torch.equal(layer(x), expected)
    assert tsp.verify(layer.mask, "2:4") is None
    assert not layer.mask.all()


def test_srste_gradient_reaches_pruned_weights_with_decay():
    layer = NMLinear(8, 4, "1:4", decay=0.5)
    x = torch.randn(3, 8)
    layer(x).sum().backward()
    grad_masked = x.sum(0).expand(4, 8)  # d/dW of sum(x W^T) for every weight
    expected = grad_masked + 0.5 * layer.weight.detach() * (~layer.mask)
    assert torch.allclose(layer.weight.grad, expected)
    assert (layer.weight.grad[~layer.mask] != 0).all()


def test_masked_gradient_mode_updates_only_kept_weights():
    layer = NMLinear(8, 4, "1:4", straight_through=False)
    layer(torch.randn(3, 8)).sum().backward()
    assert (layer.weight.grad[~layer.mask] == 0).all()
    assert (layer.weight.grad[layer.mask] != 0).all()


def test_update_mask_reports_changes_and_follows_latent_magnitudes():
    layer = NMLinear(8, 2, "2:4")
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[4.0, 3, 2, 1, 1, 2, 3, 4], [1, 2, 3, 4, 4, 3, 2, 1]]))
    layer.update_mask()
    with torch.no_grad():
        layer.weight[0, :4] = torch.tensor([1.0, 2, 3, 4])  # the kept pair of row 0, group 0 flips
    changed, total = layer.update_mask()
    assert (changed, total) == (4, 16)
    assert layer.mask[0, :4].tolist() == [False, False, True, True]


def test_dense_layer_is_plain_linear():
    layer = NMLinear(6, 3, "dense")
    assert layer.mask.all() and not layer.sparse
    assert layer.update_mask() == (0, 0)


def test_polyak_keeps_targets_nm_and_tracks_online_latent_weights():
    torch.manual_seed(0)
    online = torch.nn.Sequential(NMLinear(14, 32, "1:8"), torch.nn.ReLU(), NMLinear(32, 3, "2:4"))
    target = torch.nn.Sequential(NMLinear(14, 32, "1:8"), torch.nn.ReLU(), NMLinear(32, 3, "2:4"))
    for i in range(50):
        with torch.no_grad():
            for p in online.parameters():
                p.add_(torch.randn_like(p) * 0.1)
        update_masks([online])
        old = [l.mask.clone() for l in nm_layers(target)]
        polyak_update(online, target, 0.2, reproject=i % 2 == 0)
        for src, dst, before in zip(nm_layers(online), nm_layers(target), old):
            assert tsp.verify(dst.mask, dst.pattern) is None
            if i % 2 == 0:
                assert torch.equal(dst.mask, tsp.nm_mask(dst.weight, dst.pattern))
            else:
                assert torch.equal(dst.mask, before)  # no re-projection: mask untouched
    # tau = 1 copies the online latent weights, so the target mask is the online mask.
    polyak_update(online, target, 1.0)
    for src, dst in zip(nm_layers(online), nm_layers(target)):
        assert torch.equal(dst.weight, src.weight)
        assert torch.equal(dst.mask, src.mask)
    x = torch.randn(4, 14)
    assert torch.equal(online(x), target(x))


def test_loaded_mask_drives_the_forward_pass():
    a, b = NMLinear(16, 4, "1:4", decay=0.1), NMLinear(16, 4, "1:4", decay=0.1)
    b.load_state_dict(a.state_dict())
    x = torch.randn(2, 16)
    assert torch.equal(a(x), b(x))
    assert torch.equal(b.mask_f, b.mask.float())
    assert torch.equal(b.decay_mask, 0.1 * (~b.mask).float())
