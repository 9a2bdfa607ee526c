"""AttentionSpec: argument checking, presets, and the window rule against a brute-force loop.

The brute-force rule below is written from the module docstring of ``golden/spec.py`` (row ``i``
attends key ``j`` if ``j = i + dilation·t`` for some ``t`` in ``-before … after``, or either of
them is a global token); every vectorised view of the pattern must agree with it.
"""

import dataclasses
import re

import numpy as np
import pytest

from swatkit.golden import AttentionSpec, BandKeys


def brute_force_attends(spec, i, j):
    """The rule of the module docstring, one (row, key) pair at a time."""
    if i in spec.global_tokens or j in spec.global_tokens:
        return True
    return any(j == i + spec.dilation * t for t in range(-spec.before, spec.after + 1))


def brute_force_mask(spec):
    n = spec.seq_len
    return np.array([[brute_force_attends(spec, i, j) for j in range(n)] for i in range(n)],
                    dtype=bool).reshape(n, n)


def brute_force_band(spec, i):
    """Band keys of row ``i`` (no global part), in band-slot order, with their slot index."""
    return [(t + spec.before, i + spec.dilation * t)
            for t in range(-spec.before, spec.after + 1)
            if 0 <= i + spec.dilation * t < spec.seq_len]


# -- argument checking ---------------------------------------------------------------------------

@pytest.mark.parametrize(("kwargs", "message"), [
    ({"seq_len": "8"}, "seq_len must be an integer, not '8'"),
    ({"seq_len": 8.0}, "seq_len must be an integer, not 8.0"),
    ({"seq_len": True}, "seq_len must be an integer, not True"),
    ({"head_dim": None}, "head_dim must be an integer, not None"),
    ({"before": 1.5}, "before must be an integer, not 1.5"),
    ({"after": False}, "after must be an integer, not False"),
    ({"dilation": "2"}, "dilation must be an integer, not '2'"),
    ({"global_tokens": "01"}, "global_tokens must be a tuple of integers, not '01'"),
    ({"global_tokens": 3}, "global_tokens must be a tuple of integers, not 3"),
    ({"global_tokens": {1, 2}}, "global_tokens must be a tuple of integers, not {1, 2}"),
    ({"global_tokens": (1.0,)}, "global_tokens must be a tuple of integers, not (1.0,)"),
    ({"global_tokens": [0, True]}, "global_tokens must be a tuple of integers, not [0, True]"),
])
def test_wrong_type(kwargs, message):
    args = {"seq_len": 8, "head_dim": 4} | kwargs
    with pytest.raises(TypeError, match=rf"^{re.escape(message)}$"):
        AttentionSpec(**args)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"seq_len": 0}, "seq_len must be a positive integer, not 0"),
    ({"seq_len": -3}, "seq_len must be a positive integer, not -3"),
    ({"head_dim": 0}, "head_dim must be a positive integer, not 0"),
    ({"before": -1}, "before must be a non-negative integer, not -1"),
    ({"after": -2}, "after must be a non-negative integer, not -2"),
    ({"dilation": 0}, "dilation must be a positive integer, not 0"),
    ({"global_tokens": (8,)}, "global token 8 is outside the sequence [0, 8)"),
    ({"global_tokens": (-1,)}, "global token -1 is outside the sequence [0, 8)"),
    ({"global_tokens": (3, 1)}, "global_tokens must be sorted and distinct, not (3, 1)"),
    ({"global_tokens": [2, 2]}, "global_tokens must be sorted and distinct, not (2, 2)"),
])
def test_bad_value(kwargs, message):
    args = {"seq_len": 8, "head_dim": 4} | kwargs
    with pytest.raises(ValueError, match=rf"^{re.escape(message)}$"):
        AttentionSpec(**args)


def test_numpy_integers_and_lists_are_accepted():
    spec = AttentionSpec(np.int64(8), np.int32(4), before=np.int16(2),
                         global_tokens=[1, np.int64(5)])
    assert spec.global_tokens == (1, 5)
    assert all(type(g) is int for g in spec.global_tokens)
    assert spec.window == 2 + 256 + 1


def test_defaults_are_longformer_512():
    spec = AttentionSpec(1024, 64)
    assert (spec.before, spec.after, spec.dilation, spec.global_tokens) == (256, 256, 1, ())
    assert spec == AttentionSpec.longformer(1024, 64)


def test_frozen_and_replace_validates_again():
    spec = AttentionSpec(8, 4, before=2, after=2)
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.seq_len = 9
    assert spec.replace(dilation=2) == AttentionSpec(8, 4, before=2, after=2, dilation=2)
    with pytest.raises(ValueError, match=r"^dilation must be a positive integer, not 0$"):
        spec.replace(dilation=0)
    with pytest.raises(ValueError, match=r"^global token 8 is outside the sequence \[0, 8\)$"):
        spec.replace(global_tokens=(8,))


# -- presets -------------------------------------------------------------------------------------

def test_longformer_preset():
    spec = AttentionSpec.longformer(4096, 64)
    assert (spec.before, spec.after, spec.window) == (256, 256, 513)
    spec = AttentionSpec.longformer(100, 16, attention_window=8, global_tokens=[0, 50])
    assert (spec.before, spec.after, spec.dilation) == (4, 4, 1)
    assert spec.global_tokens == (0, 50)
    assert not spec.is_causal


@pytest.mark.parametrize(("window", "error", "message"), [
    (7, ValueError, "attention_window must be a positive even integer, not 7"),
    (0, ValueError, "attention_window must be a positive even integer, not 0"),
    (-2, ValueError, "attention_window must be a positive even integer, not -2"),
    (8.0, TypeError, "attention_window must be an integer, not 8.0"),
    (True, TypeError, "attention_window must be an integer, not True"),
])
def test_longformer_preset_checks(window, error, message):
    with pytest.raises(error, match=rf"^{re.escape(message)}$"):
        AttentionSpec.longformer(64, 8, attention_window=window)


def test_causal_preset():
    spec = AttentionSpec.causal(8192, 128)
    assert (spec.before, spec.after, spec.window) == (4095, 0, 4096)
    assert spec.is_causal
    spec = AttentionSpec.causal(10, 4, sliding_window=1)
    assert spec.window == 1
    assert spec.keys_per_row().tolist() == [1] * 10
    assert np.array_equal(spec.mask(), np.eye(10, dtype=bool))


@pytest.mark.parametrize(("window", "error", "message"), [
    (0, ValueError, "sliding_window must be a positive integer, not 0"),
    (-4, ValueError, "sliding_window must be a positive integer, not -4"),
    ("4", TypeError, "sliding_window must be an integer, not '4'"),
    (False, TypeError, "sliding_window must be an integer, not False"),
])
def test_causal_preset_checks(window, error, message):
    with pytest.raises(error, match=rf"^{re.escape(message)}$"):
        AttentionSpec.causal(64, 8, sliding_window=window)


def test_is_causal():
    assert AttentionSpec(8, 4, before=3, after=0).is_causal
    assert not AttentionSpec(8, 4, before=3, after=1).is_causal
    assert not AttentionSpec(8, 4, before=3, after=0, global_tokens=(0,)).is_causal


# -- the window pattern --------------------------------------------------------------------------

PATTERNS = {
    "bidirectional": AttentionSpec(20, 4, before=3, after=3),
    "asymmetric": AttentionSpec(17, 4, before=1, after=4),
    "causal": AttentionSpec(20, 4, before=5, after=0),
    "causal-preset": AttentionSpec.causal(12, 4, sliding_window=4),
    "longformer-preset": AttentionSpec.longformer(30, 4, attention_window=8),
    "dilated": AttentionSpec(23, 4, before=2, after=2, dilation=3),
    "dilated-causal": AttentionSpec(19, 4, before=3, after=0, dilation=2),
    "global": AttentionSpec(20, 4, before=2, after=2, global_tokens=(0, 7, 19)),
    "dilated-global": AttentionSpec(25, 4, before=2, after=1, dilation=4, global_tokens=(3, 4, 12)),
    "causal-global": AttentionSpec(16, 4, before=3, after=0, global_tokens=(5,)),
    "n-smaller-than-window": AttentionSpec(5, 4, before=8, after=8),
    "n-smaller-than-dilated-window": AttentionSpec(6, 4, before=2, after=2, dilation=7),
    "n-1": AttentionSpec(1, 4, before=3, after=3),
    "n-1-global": AttentionSpec(1, 4, before=0, after=0, global_tokens=(0,)),
    "no-band-neighbours": AttentionSpec(9, 4, before=0, after=0),
    "all-global": AttentionSpec(4, 4, before=1, after=0, global_tokens=(0, 1, 2, 3)),
}


@pytest.fixture(params=list(PATTERNS.values()), ids=list(PATTERNS))
def spec(request):
    return request.param


def test_mask_matches_rule(spec):
    mask = spec.mask()
    assert mask.dtype == bool
    assert np.array_equal(mask, brute_force_mask(spec))
    # every row attends at least itself
    assert mask[np.arange(spec.seq_len), np.arange(spec.seq_len)].all()


def test_row_keys_match_rule(spec):
    for i in range(spec.seq_len):
        expected = [j for j in range(spec.seq_len) if brute_force_attends(spec, i, j)]
        keys = spec.row_keys(i)
        assert keys.dtype == np.int64
        assert keys.tolist() == expected


def test_keys_per_row_and_pair_count(spec):
    expected = brute_force_mask(spec).sum(axis=1)
    counts = spec.keys_per_row()
    assert counts.dtype == np.int64
    assert counts.tolist() == expected.tolist()
    assert spec.pair_count() == int(expected.sum())
    assert isinstance(spec.pair_count(), int)
    assert spec.max_keys_per_row == (spec.seq_len if spec.global_tokens else int(expected.max()))


def test_band_keys_match_rule(spec):
    band = spec.band_keys()
    assert isinstance(band, BandKeys)
    assert band.index.shape == band.valid.shape == (spec.seq_len, spec.window)
    assert band.index.dtype == np.int64
    assert band.valid.dtype == bool
    assert band.index.min() >= 0
    assert band.index.max() < spec.seq_len
    for i in range(spec.seq_len):
        expected = brute_force_band(spec, i)
        slots = np.flatnonzero(band.valid[i]).tolist()
        assert slots == [s for s, _ in expected]
        assert band.index[i, slots].tolist() == [j for _, j in expected]
    assert np.array_equal(spec.band_offsets(),
                          np.arange(-spec.before, spec.after + 1) * spec.dilation)


def test_band_plus_globals_is_the_mask(spec):
    """The band view and the global tokens together give exactly the mask."""
    band = spec.band_keys()
    rebuilt = np.zeros((spec.seq_len, spec.seq_len), dtype=bool)
    for i in range(spec.seq_len):
        rebuilt[i, band.index[i, band.valid[i]]] = True
    g = list(spec.global_tokens)
    rebuilt[:, g] = True
    rebuilt[g, :] = True
    assert np.array_equal(rebuilt, spec.mask())


def test_in_band_matches_rule(spec):
    rows = np.arange(spec.seq_len)[:, None]
    keys = np.arange(-2 * spec.seq_len, 2 * spec.seq_len)[None, :]  # also keys off the ends
    expected = [[any(j == i + spec.dilation * t for t in range(-spec.before, spec.after + 1))
                 for j in keys[0]] for i in rows[:, 0]]
    assert np.array_equal(spec.in_band(rows, keys), np.array(expected, dtype=bool))


def test_row_keys_range_check():
    spec = AttentionSpec(8, 4, before=1, after=1)
    for row in (8, -1):
        with pytest.raises(ValueError, match=rf"^row {row} is outside the sequence \[0, 8\)$"):
            spec.row_keys(row)


@pytest.mark.parametrize(("spec", "pairs"), [
    # interior rows 3 keys, the two end rows 2
    (AttentionSpec(10, 4, before=1, after=1), 10 * 3 - 2),
    # row i attends min(i + 1, 4) keys
    (AttentionSpec.causal(10, 4, sliding_window=4), 1 + 2 + 3 + 4 * 7),
    # the window covers the whole sequence: dense
    (AttentionSpec(6, 4, before=8, after=8), 36),
    # dilation 2 on 7 rows, one key each side: rows 0,1,5,6 have 2 keys, rows 2..4 have 3
    (AttentionSpec(7, 4, before=1, after=1, dilation=2), 4 * 2 + 3 * 3),
    # global token 0: row 0 attends 10 keys; rows 1..9 their band plus key 0 (already in row 1's)
    (AttentionSpec(10, 4, before=1, after=1, global_tokens=(0,)), 10 + (28 - 2) + 8),
    (AttentionSpec(1, 4, before=3, after=3), 1),
])
def test_pair_count_known_values(spec, pairs):
    assert spec.pair_count() == pairs
    assert spec.pair_count() == int(spec.mask().sum())


def test_large_pattern_counts_without_mask():
    """keys_per_row is closed-form: check it on a long sequence against the band view."""
    spec = AttentionSpec(50_000, 64, before=300, after=211, dilation=3, global_tokens=(7, 49_999))
    band = spec.band_keys()
    counts = band.valid.sum(axis=1)
    g = np.asarray(spec.global_tokens)
    rows = np.arange(spec.seq_len)
    counts = counts + (~spec.in_band(rows[:, None], g[None, :])).sum(axis=1)
    counts[g] = spec.seq_len
    assert np.array_equal(spec.keys_per_row(), counts)
