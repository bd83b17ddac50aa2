"""N:M core: parsing, masks (numpy and torch agree), verify, compression, transposability."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from hwmodel import sparsity as nps
from hwmodel.errors import NmlabError
from rl import sparsity as ts

PATTERNS = ["1:2", "2:4", "1:4", "1:8", "2:8", "4:8", "3:7", "5:5"]


@pytest.mark.parametrize("text", ["3:2", "0:4", "2:0", "a:b", "4", "", "1:1", "-1:4", "2:4:8", None, 4])
def test_bad_patterns_raise_naming_the_value(text):
    with pytest.raises(NmlabError) as info:
        nps.parse_pattern(text)
    assert repr(text) in str(info.value)
    assert "\n" not in str(info.value)


def test_unquoted_yaml_pattern_error_says_to_quote_it():
    # yaml.safe_load("[2:4, 1:8]") gives [124, 68]: the error must point back at the typo.
    import yaml
    for text, value in (("2:4", 124), ("1:8", 68)):
        assert yaml.safe_load(text) == value
        with pytest.raises(NmlabError, match=f'base-60 number {value}: quote it, "{text}"'):
            nps.parse_pattern(value, field="patterns[0]")
    # A number no N:M reads as (N > M) gets no hint: 10^30 was "an unquoted 16666666666666666666666666666:40".
    for value in (10**30, 60 * 5 + 4, 59, -124, True):
        with pytest.raises(NmlabError) as info:
            nps.parse_pattern(value, field="patterns[0]")
        assert "base-60" not in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize("text,n,m", [("2:4", 2, 4), (" 1:8 ", 1, 8), ("4:4", 4, 4), ("1:2", 1, 2)])
def test_parse_nm(text, n, m):
    p = nps.parse_pattern(text)
    assert (p.kind, p.n, p.m) == ("nm", n, m)
    assert str(p) == f"{n}:{m}"


def test_parse_dense_and_unstructured():
    assert nps.parse_pattern("dense").kind == "dense"
    assert nps.parse_pattern("Dense").density == 1.0
    assert nps.parse_pattern("unstructured").kind == "unstructured"
    with pytest.raises(NmlabError, match=r"'unstructured' is not a sparsity pattern \(expected 'N:M'"):
        nps.parse_pattern("unstructured", allow_unstructured=False)


def test_meta_bits():
    assert [nps.meta_bits_per_value(m) for m in (2, 3, 4, 5, 8, 16)] == [1, 2, 2, 3, 3, 4]


def _brute_mask(w, n, m):
    """Reference: loop over every group, sort by (-|w|, index)."""
    out, cols = w.shape
    mask = np.zeros_like(w, dtype=bool)
    for r in range(out):
        for g0 in range(0, cols, m):
            idx = list(range(g0, min(g0 + m, cols)))
            idx.sort(key=lambda j: (-abs(float(w[r, j])), j))
            for j in idx[:n]:
                mask[r, j] = True
    return mask


weights = st.tuples(st.integers(1, 9), st.integers(1, 30), st.integers(0, 2**31 - 1), st.sampled_from(PATTERNS), st.booleans())


def _make(out, cols, seed, ties):
    rng = np.random.default_rng(seed)
    if ties:  # few distinct magnitudes, both signs: lots of ties
        return rng.integers(-2, 3, size=(out, cols)).astype(np.float32)
    return rng.standard_normal((out, cols)).astype(np.float32)


@settings(max_examples=300, deadline=None)
@given(weights)
def test_mask_matches_brute_force_and_torch(args):
    out, cols, seed, pattern, ties = args
    w = _make(out, cols, seed, ties)
    p = nps.parse_pattern(pattern)
    mask = nps.nm_mask(w, p)
    np.testing.assert_array_equal(mask, _brute_mask(w, p.n, p.m))
    np.testing.assert_array_equal(ts.nm_mask(torch.from_numpy(w), p).numpy(), mask)
    # Every group: exactly min(N, real columns in the group) kept; padding never kept.
    counts = nps.group_counts(mask, p.m)
    real = np.array([min(p.m, cols - g * p.m) for g in range(counts.shape[1])])
    np.testing.assert_array_equal(counts, np.minimum(p.n, real)[None, :].repeat(out, 0))
    assert nps.verify(mask, p) is None
    assert ts.verify(torch.from_numpy(mask), p) is None


def test_padding_reported_for_odd_fan_in():
    assert nps.group_padding(14, "2:4") == 2  # Hopper critic fan-in
    assert nps.group_padding(23, "1:8") == 1  # HalfCheetah critic fan-in
    assert nps.group_padding(256, "2:4") == 0
    assert nps.group_padding(23, "dense") == 0
    w = np.ones((2, 23), dtype=np.float32)
    mask = nps.nm_mask(w, "4:8")  # last group: 7 real columns, 1 pad; 4 kept, all real
    assert mask.shape == (2, 23)
    assert nps.group_counts(mask, 8).tolist() == [[4, 4, 4]] * 2


def test_ties_go_to_the_lower_index():
    w = np.array([[1.0, -1.0, 1.0, 1.0]], dtype=np.float32)
    assert nps.nm_mask(w, "2:4").tolist() == [[True, True, False, False]]
    assert ts.nm_mask(torch.from_numpy(w), "2:4").tolist() == [[True, True, False, False]]


@settings(max_examples=200, deadline=None)
@given(weights, st.integers(0, 2**31 - 1))
def test_verify_finds_first_violation(args, seed2):
    out, cols, seed, pattern, _ = args
    p = nps.parse_pattern(pattern)
    if p.n == p.m or cols < p.n + 1:
        return
    mask = nps.nm_mask(_make(out, cols, seed, False), p)
    rng = np.random.default_rng(seed2)
    groups = [g for g in range((cols + p.m - 1) // p.m) if min(p.m, cols - g * p.m) > p.n]
    if not groups:
        return
    # One to three violations: verify names the first in row-major order, not any of them.
    bad = {(int(rng.integers(out)), int(rng.choice(groups))) for _ in range(int(rng.integers(1, 4)))}
    for row, group in bad:
        cols_in_group = np.arange(group * p.m, min(cols, (group + 1) * p.m))
        mask[row, cols_in_group[~mask[row, cols_in_group]][0]] = True
    assert nps.verify(mask, p) == min(bad)
    assert ts.verify(torch.from_numpy(mask), p) == min(bad)


@settings(max_examples=200, deadline=None)
@given(weights, st.floats(0.0, 1.0))
def test_compress_round_trip_is_bit_exact(args, drop):
    out, cols, seed, pattern, ties = args
    p = nps.parse_pattern(pattern)
    w = _make(out, cols, seed, ties)
    mask = nps.nm_mask(w, p)
    # Also masks keeping fewer than N in some groups.
    rng = np.random.default_rng(seed)
    thin = mask & (rng.random(mask.shape) >= drop)
    for m in (mask, thin):
        c = nps.compress(w, m, p)
        groups = (cols + p.m - 1) // p.m
        assert c.values.shape == (out, groups * p.n) == c.indices.shape
        assert c.metadata_bits == out * groups * p.n * nps.meta_bits_per_value(p.m)
        dense, slots = nps.decompress(c)
        np.testing.assert_array_equal(dense.view(np.uint32), np.where(m, w, np.float32(0)).view(np.uint32))
        assert (slots | ~m).all()  # every kept weight has a slot
    dense, slots = nps.decompress(nps.compress(w, mask, p))
    np.testing.assert_array_equal(slots, mask)


@pytest.mark.parametrize("pattern", ["2:256", "2:512", "3:1000", "1:70000"])
def test_compress_round_trip_for_groups_over_256(pattern):
    """Indices of a group of more than 256 do not fit a byte: they must not wrap (2:512 kept
    position 300 read back as 44 before)."""
    w = np.random.default_rng(0).standard_normal((3, 1500)).astype(np.float32)
    mask = nps.nm_mask(w, pattern)
    c = nps.compress(w, mask, pattern)
    assert int(c.indices.max()) < nps.parse_pattern(pattern).m
    dense, slots = nps.decompress(c)
    np.testing.assert_array_equal(dense, np.where(mask, w, np.float32(0)))
    np.testing.assert_array_equal(slots, mask)


def test_compress_layout_by_hand():
    """Per group: the kept values in index order, then unused slots (value 0) at the lowest free indices."""
    w = np.array([[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]], dtype=np.float32)
    mask = np.array([[False, True, False, True, False, False, True, False]])
    c = nps.compress(w, mask, "2:4")
    assert c.values.tolist() == [[2.0, 4.0, 7.0, 0.0]]
    assert c.indices.tolist() == [[1, 3, 2, 0]]


def test_compress_rejects_violating_mask():
    w = np.ones((1, 4), dtype=np.float32)
    with pytest.raises(NmlabError, match="row 0 group 0"):
        nps.compress(w, np.ones((1, 4), bool), "2:4")


def test_transposable():
    # A 4x4 2:4 mask that is 2:4 along columns too (a Latin-square-like layout).
    t = np.array([[1, 1, 0, 0], [0, 1, 1, 0], [0, 0, 1, 1], [1, 0, 0, 1]], dtype=bool)
    assert nps.is_transposable(t, "2:4")
    assert ts.is_transposable(torch.from_numpy(t), "2:4")
    # Row-wise 2:4 but every row keeps columns 0 and 1: columns hold 4 of 4.
    nt = np.array([[1, 1, 0, 0]] * 4, dtype=bool)
    assert nps.verify(nt, "2:4") is None
    assert not nps.is_transposable(nt, "2:4")
    assert not ts.is_transposable(torch.from_numpy(nt), "2:4")


@settings(max_examples=100, deadline=None)
@given(weights)
def test_transposable_agrees_with_torch(args):
    out, cols, seed, pattern, ties = args
    mask = nps.nm_mask(_make(out, cols, seed, ties), pattern)
    assert nps.is_transposable(mask, pattern) == ts.is_transposable(torch.from_numpy(mask), pattern)


def test_group_counts_fast_paths_match_a_plain_sum():
    """group_counts picks word products, packed popcounts or slice sums by M and size: every path counts the same,
    including a partial last group (padding never counts) and transposed (strided) masks."""
    from hwmodel.sparsity import group_counts

    rng = np.random.default_rng(7)
    for out, cols in [(1, 1), (3, 9), (6, 256), (256, 17), (256, 256), (40, 300), (2, 513)]:
        mask = rng.random((out, cols)) < rng.uniform(0.1, 0.9)
        for a in (mask, mask.T):
            for m in (2, 3, 4, 8, 16, 24, 32, 64):
                groups = -(-a.shape[1] // m)
                padded = np.zeros((a.shape[0], groups * m), dtype=np.int64)
                padded[:, :a.shape[1]] = a
                want = padded.reshape(a.shape[0], groups, m).sum(axis=2)
                got = group_counts(a, m)
                assert got.dtype == np.int32 and got.shape == want.shape
                assert np.array_equal(got, want), (a.shape, m)
