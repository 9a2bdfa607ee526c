"""Grouped query heads, sink tokens (StreamingLLM) and learned sink logits (GPT-OSS).

The spec's sink columns are checked against the rule written out here; the models against
plain per-row computations written from the contract (float: a per-row softmax with the sink in
its max and denominator; fixed point, bit for bit: a per-row loop from
``NumberFormat.probabilities`` and ``NumberFormat.normalise``, with the sink score quantised as
docs/numerics.md says); grouped heads against each head run alone on K/V head ``h // (H/K)``.
"""

import dataclasses
import json
import math
import re

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from swatkit.golden import (
    AttentionSpec,
    NumberFormat,
    attention_reference,
    error_report,
    fixed_point_attention,
    window_attention,
)
from swatkit.golden.numerics import round_half_away

SPECS = {
    "streaming": AttentionSpec.causal(40, 8, sliding_window=6, sink_tokens=4),
    "causal-dilated": AttentionSpec(41, 8, before=4, after=0, dilation=3, sink_tokens=3),
    "bidirectional": AttentionSpec(33, 8, before=3, after=3, sink_tokens=2),
    "sinks-and-global": AttentionSpec(30, 8, before=2, after=2, global_tokens=(1, 20),
                                      sink_tokens=3),
    "causal-sinks-global": AttentionSpec(30, 8, before=3, after=0, global_tokens=(2, 15),
                                         sink_tokens=4),
    "all-sinks": AttentionSpec(9, 8, before=1, after=0, sink_tokens=9),
    "one-row": AttentionSpec(1, 8, before=0, after=0, sink_tokens=1),
    "no-sinks": AttentionSpec(30, 8, before=3, after=0),
    "chunks": AttentionSpec(300, 4, before=40, after=0, sink_tokens=4),   # several row chunks
}
SPEC_IDS = list(SPECS)

FORMATS = {
    "default": NumberFormat(),
    "data4": NumberFormat(data_bits=4, scale_q=1 / 4, scale_k=1 / 4, scale_v=1 / 4),
    "out-frac4": NumberFormat(out_bits=12, out_frac_bits=4),
    "peaky": NumberFormat(scale_q=1 / 4, scale_k=1 / 4, exp_frac_bits=3, const_bits=8),
}


def rule_keys(spec, i):
    """Row i's keys, from the rule: band, global columns, sink columns (j <= i if causal);
    a global row attends every key."""
    n = spec.seq_len
    if i in spec.global_tokens:
        return np.arange(n)
    band = {i + spec.dilation * t for t in range(-spec.before, spec.after + 1)}
    sinks = {j for j in range(spec.sink_tokens) if spec.after > 0 or j <= i}
    return np.array(sorted(j for j in range(n) if j in band | sinks | set(spec.global_tokens)))


# -- the spec ----------------------------------------------------------------------------------

@pytest.mark.parametrize("name", SPEC_IDS)
def test_mask_and_counts_follow_the_rule(name):
    spec = SPECS[name]
    mask = spec.mask()
    for i in range(spec.seq_len):
        expect = rule_keys(spec, i)
        assert np.array_equal(np.flatnonzero(mask[i]), expect), i
        assert np.array_equal(spec.row_keys(i), expect), i
    assert np.array_equal(spec.keys_per_row(), mask.sum(axis=1))
    assert spec.max_keys_per_row == mask.sum(axis=1).max()
    assert spec.pair_count() == mask.sum()


def test_causal_sinks_stay_causal():
    spec = SPECS["streaming"]
    assert spec.is_causal
    assert not np.triu(spec.mask(), 1).any()
    # row 2 sees sinks 0..2 only; a far row sees its 6 band keys and the 4 sinks
    assert spec.row_keys(2).tolist() == [0, 1, 2]
    assert spec.row_keys(30).tolist() == [0, 1, 2, 3, 25, 26, 27, 28, 29, 30]
    # sink rows are not global rows: row 1 does not see the future
    assert not spec.mask()[1, 2:].any()
    # the Longformer form of "the first 4 tokens" is not causal
    glob = AttentionSpec(40, 8, before=5, after=0, global_tokens=(0, 1, 2, 3))
    assert not glob.is_causal and glob.mask()[1, 39]


def test_sink_columns_are_one_rule():
    spec = SPECS["causal-sinks-global"]
    assert spec.columns().tolist() == [0, 1, 2, 3, 15]
    valid = spec.column_valid([0, 1, 10])
    # row 0: sink 0 in its band; global 2 always; sinks 1, 3 in its future
    assert valid.tolist() == [[False, False, True, False, True],
                              [False, False, True, False, True],
                              [True, True, True, True, True]]
    with pytest.raises(ValueError, match=r"^columns: a block-sparse spec \(block_size 8\) has "
                                         r"no token band; use row_keys\(\), mask\(\) or "
                                         r"block_key_slots\(\)$"):
        AttentionSpec.bigbird(64, 8, block_size=8, num_random_blocks=0).columns()


@pytest.mark.parametrize(("kwargs", "error", "message"), [
    ({"sink_tokens": 1.0}, TypeError, "sink_tokens must be an integer, not 1.0"),
    ({"sink_tokens": True}, TypeError, "sink_tokens must be an integer, not True"),
    ({"sink_tokens": -1}, ValueError, "sink_tokens must be a non-negative integer, not -1"),
    ({"sink_tokens": 9}, ValueError, "sink_tokens 9 is beyond the sequence (seq_len 8)"),
])
def test_sink_tokens_refused(kwargs, error, message):
    with pytest.raises(error, match=f"^{re.escape(message)}$"):
        AttentionSpec(8, 4, before=2, after=0, **kwargs)


def test_sink_tokens_refused_on_block_sparse():
    with pytest.raises(ValueError, match=r"^a block-sparse spec \(block_size 8\) has no "
                                         r"sink_tokens, not 2$"):
        AttentionSpec(64, 8, before=0, after=0, block_size=8, sink_tokens=2)


def test_sink_tokens_round_trip():
    spec = SPECS["streaming"]
    assert spec.sink_tokens == 4 and isinstance(spec.sink_tokens, int)
    record = json.loads(json.dumps(dataclasses.asdict(spec)))
    assert AttentionSpec(**record) == spec
    assert spec.as_options() == {"seq_len": 40, "head_dim": 8, "causal": True,
                                 "sliding_window": 6, "dilation": 1, "global_tokens": [],
                                 "sink_tokens": 4}
    assert "sink_tokens" not in SPECS["no-sinks"].as_options()
    assert AttentionSpec(8, 4, sink_tokens=np.int64(2)).sink_tokens == 2
    with pytest.raises(ValueError, match=r"^sink_tokens 4 is beyond the sequence \(seq_len 3\)$"):
        spec.replace(seq_len=3)


def test_core_params_take_sinks_where_the_core_has_them():
    """A core generated for sink tokens keeps them (and round-trips through its dict form); a
    core with global tokens refuses them (its resident columns are of one kind); a run
    brings no more sinks than its core was generated for."""
    from swatkit.rtl.config import CoreParams, HardwareConfig

    hw = HardwareConfig(key_lanes=2, dim_lanes=2)
    spec = AttentionSpec.causal(32, 8, sliding_window=8, sink_tokens=4)
    p = CoreParams(spec, NumberFormat(), hw)
    assert p.sink_core and p.max_global_tokens == 4
    record = json.loads(json.dumps(p.as_dict()))
    assert record["spec"]["sink_tokens"] == 4
    assert CoreParams.from_dict(record) == p
    with pytest.raises(ValueError, match=r"^sink_tokens must be 0 on a core with global tokens, "
                                         r"not 4: its resident columns are of one kind, global "
                                         r"tokens \(each with a global row, listed on the "
                                         r"command\) or sinks \(key-only, counted on the "
                                         r"command\), and its column walk has no per-column kind "
                                         r"to hold both$"):
        CoreParams(spec, NumberFormat(), hw.replace(max_global_tokens=2))
    p = CoreParams(spec.replace(sink_tokens=0), NumberFormat(), hw)
    with pytest.raises(ValueError, match=r"^sink_tokens must be at most 0 on this core "
                                         r"\(generated for 0\), not 2$"):
        p.run_spec(32, sink_tokens=2)


# -- reference computations written from the contract -----------------------------------------

def per_row_float(q, k, v, spec, sink=None):
    """One head, one row at a time, float64; the sink joins max and denominator."""
    out = np.zeros((spec.seq_len, spec.head_dim))
    for i in range(spec.seq_len):
        keys = rule_keys(spec, i)
        s = k[keys] @ q[i] / math.sqrt(spec.head_dim)
        m = s.max() if sink is None else max(s.max(), sink)
        w = np.exp(s - m)
        out[i] = w @ v[keys] / (w.sum() + (0.0 if sink is None else math.exp(sink - m)))
    return out


def sink_score(fmt, z, d):
    """docs/numerics.md: σ = round_half_away(z / (s_q·s_k/√d))."""
    y = z / (fmt.scale_q * fmt.scale_k / math.sqrt(d))
    return int(math.copysign(math.floor(abs(y) + 0.5), y)) if abs(y) % 1 != 0.5 else \
        int(math.copysign(math.floor(abs(y)) + 1, y))


def per_row_fixed(q, k, v, spec, fmt, z=None):
    """One head, one row at a time, from the steps of docs/numerics.md, sink as a key of value
    0 that joins m and l."""
    n, d = spec.seq_len, spec.head_dim
    out = np.zeros((n, d), dtype=np.int64)
    row_max, row_sum = np.zeros(n, dtype=np.int64), np.zeros(n, dtype=np.int64)
    for i in range(n):
        keys = rule_keys(spec, i)
        s = k[keys].astype(np.int64) @ q[i].astype(np.int64)
        m = int(s.max())
        if z is not None:
            sigma = sink_score(fmt, z, d)
            m = max(m, sigma)
        p = fmt.probabilities(m - s, d)
        total = int(p.sum())
        if z is not None:
            total += int(fmt.probabilities(np.array([m - sigma]), d)[0])
        acc = p @ v[keys].astype(np.int64)
        out[i] = fmt.normalise(acc, np.int64(total))
        row_max[i], row_sum[i] = m, total
    return out, row_max, row_sum


def draw(shape, rng, integer=False, fmt=None):
    if integer:
        return rng.integers(fmt.data_min, fmt.data_max + 1, shape)
    return rng.standard_normal(shape)


# -- the float models ----------------------------------------------------------------------------

@pytest.mark.parametrize("name", SPEC_IDS)
@pytest.mark.parametrize("with_sink", [False, True])
def test_float_models_equal_per_row(name, with_sink):
    spec = SPECS[name]
    rng = np.random.default_rng(7)
    q, k, v = draw((3, spec.seq_len, spec.head_dim), rng) * 1.5
    z = 1.3 if with_sink else None
    expect = per_row_float(q, k, v, spec, z)
    sink = None if z is None else [z]
    np.testing.assert_allclose(window_attention(q, k, v, spec, sink_logits=sink), expect,
                               rtol=0, atol=1e-13)
    np.testing.assert_allclose(attention_reference(q, k, v, spec.mask(), sink_logits=z,
                                                   global_tokens=spec.global_tokens),
                               expect, rtol=0, atol=1e-13)


def test_sink_logit_moves_the_output():
    spec = SPECS["streaming"]
    rng = np.random.default_rng(0)
    q, k, v = draw((3, spec.seq_len, spec.head_dim), rng)
    plain = window_attention(q, k, v, spec)
    # a very negative sink changes nothing; a very positive one takes every row's weight
    np.testing.assert_allclose(window_attention(q, k, v, spec, sink_logits=[-800.0]), plain,
                               rtol=0, atol=1e-15)
    assert np.abs(window_attention(q, k, v, spec, sink_logits=[800.0])).max() < 1e-300
    moved = window_attention(q, k, v, spec, sink_logits=[0.5])
    assert np.abs(moved - plain).max() > 0.05


# -- grouped query heads -------------------------------------------------------------------------

GROUPS = [(1, 1), (4, 1), (4, 2), (6, 3), (8, 8)]


@pytest.mark.parametrize(("heads", "kv_heads"), GROUPS)
@pytest.mark.parametrize("name", ["streaming", "sinks-and-global", "no-sinks"])
def test_grouped_heads_are_heads_alone(heads, kv_heads, name):
    spec, fmt = SPECS[name], NumberFormat()
    rng = np.random.default_rng(heads * 10 + kv_heads)
    n, d = spec.seq_len, spec.head_dim
    q, q_g = draw((2, heads, n, d), rng)
    k, v, k_g, v_g = draw((4, kv_heads, n, d), rng)
    qi, qgi = draw((2, heads, n, d), rng, True, fmt)
    ki, vi, kgi, vgi = draw((4, kv_heads, n, d), rng, True, fmt)
    z = rng.uniform(-2, 2, heads)
    out = window_attention(q, k, v, spec, global_qkv=(q_g, k_g, v_g), sink_logits=z)
    fixed = fixed_point_attention(qi, ki, vi, spec, fmt, global_qkv=(qgi, kgi, vgi),
                                  sink_logits=z)
    dense = attention_reference(q, k, v, spec.mask(), sink_logits=z,
                                global_tokens=spec.global_tokens, global_qkv=(q_g, k_g, v_g))
    assert out.shape == dense.shape == fixed.out.shape == (heads, n, d)
    assert fixed.row_max.shape == fixed.row_sum.shape == (heads, n)
    rep = np.repeat(np.arange(kv_heads), heads // kv_heads)   # Hugging Face's repeat_kv
    for h in range(heads):
        kv = rep[h]
        one = window_attention(q[h], k[kv], v[kv], spec, global_qkv=(q_g[h], k_g[kv], v_g[kv]),
                               sink_logits=z[h])
        assert np.array_equal(out[h], one)
        np.testing.assert_allclose(dense[h], one, rtol=0, atol=1e-13)
        alone = fixed_point_attention(qi[h], ki[kv], vi[kv], spec, fmt,
                                      global_qkv=(qgi[h], kgi[kv], vgi[kv]), sink_logits=[z[h]])
        for got, want in zip(fixed, alone, strict=True):
            assert np.array_equal(got[h], want)
    if kv_heads < heads:  # the order matters: query heads 0 and 1 share K/V head 0
        assert np.array_equal(out[1], window_attention(q[1], k[0], v[0], spec,
                                                       global_qkv=(q_g[1], k_g[0], v_g[0]),
                                                       sink_logits=z[1]))


# -- the fixed-point model -----------------------------------------------------------------------

@pytest.mark.parametrize("name", SPEC_IDS)
@pytest.mark.parametrize("fmt_name", list(FORMATS))
def test_fixed_point_equals_per_row_loop(name, fmt_name):
    spec, fmt = SPECS[name], FORMATS[fmt_name]
    rng = np.random.default_rng(11)
    q, k, v = draw((3, spec.seq_len, spec.head_dim), rng, True, fmt)
    lo, hi = fmt.score_range(spec.head_dim)
    unit = fmt.score_unit(spec.head_dim)
    for z in (None, 0.0, 0.7, -2.5, 0.9 * hi * unit, 0.9 * lo * unit):
        got = fixed_point_attention(q, k, v, spec, fmt,
                                    sink_logits=None if z is None else [z])
        want = per_row_fixed(q, k, v, spec, fmt, z)
        for g, w in zip(got, want, strict=True):
            assert np.array_equal(g, w), z
        assert got.out.std() > 0 or z is not None


def test_sink_scores_quantise_half_away():
    fmt, d = NumberFormat(), 64
    u = fmt.score_unit(d)
    assert u == 1 / 32 / 32 / 8
    assert fmt.sink_scores([0.5 * u, -0.5 * u, 2.49 * u, -2.5 * u, 0.0], d).tolist() == \
        [1, -1, 2, -3, 0]
    lo, hi = fmt.score_range(d)
    assert (lo, hi) == (-64 * 128 * 127, 64 * 128 * 128)
    assert fmt.sink_scores([hi * u, lo * u], d).tolist() == [hi, lo]
    with pytest.raises(ValueError, match=r"^sink logit 128\.001 \(head 1\) is outside the "
                                         r"scores' range \[-127, 128\] of this format "
                                         r"\(head_dim 64\)$"):
        fmt.sink_scores([0.0, 128.001], d)
    with pytest.raises(ValueError, match=r"^sink_logits contains NaN or infinity$"):
        fmt.sink_scores([math.inf], d)


def test_sink_in_widths_and_bound():
    fmt = NumberFormat()
    assert fmt.widths(64, 512).sum == 16 + 9
    assert fmt.widths(64, 512, sink=True).sum == 16 + 10   # 513 terms
    assert fmt.widths(64, 513, sink=True).sum == 16 + 10
    assert fmt.error_bound(64, 128, sink=True) == fmt.error_bound(64, 129)


def test_row_weights_sink_at_the_max():
    fmt, d = NumberFormat(), 8
    s = np.array([[100, 90, -5]])
    valid = np.array([[True, True, False]])
    p, m, total = fmt.row_weights(s, valid, d, sink=np.int64(400))
    assert m.tolist() == [400]
    sink_p = 2 ** fmt.prob_bits - 1
    assert total.tolist() == [int(p.sum()) + sink_p]
    assert p[0, 2] == 0 and p[0, 0] < sink_p
    p0, m0, t0 = fmt.row_weights(s, valid, d)
    assert m0.tolist() == [100] and p0[0, 0] == sink_p and t0.tolist() == [p0.sum()]


# -- error against the float model ----------------------------------------------------------------

@st.composite
def cases(draw_):
    n = draw_(st.integers(1, 40))
    d = draw_(st.sampled_from([1, 2, 4, 8]))
    before = draw_(st.integers(0, 6))
    causal = draw_(st.booleans())
    after = 0 if causal else draw_(st.integers(0, 4))
    sinks = draw_(st.integers(0, min(n, 5)))
    kv_heads = draw_(st.integers(1, 2))
    heads = kv_heads * draw_(st.integers(1, 3))
    spec = AttentionSpec(n, d, before=before, after=after, sink_tokens=sinks)
    fmt = draw_(st.sampled_from(list(FORMATS.values())))
    seed = draw_(st.integers(0, 2 ** 32 - 1))
    extreme = draw_(st.sampled_from(["random", "max", "min"]))
    use_sink = draw_(st.booleans())
    return spec, fmt, heads, kv_heads, seed, extreme, use_sink


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cases())
def test_error_within_bound(case):
    spec, fmt, heads, kv_heads, seed, extreme, use_sink = case
    rng = np.random.default_rng(seed)
    n, d = spec.seq_len, spec.head_dim
    q = draw((heads, n, d), rng, True, fmt)
    k, v = draw((2, kv_heads, n, d), rng, True, fmt)
    if extreme != "random":
        k = np.full_like(k, fmt.data_max if extreme == "max" else fmt.data_min)
    lo, hi = fmt.score_range(d)
    u = fmt.score_unit(d)
    z = rng.uniform(lo * u, hi * u, heads) * rng.choice([1e-4, 1e-2, 1.0]) if use_sink else None
    rep = error_report(q, k, v, spec, fmt, sink_logits=z)
    assert rep.bound_lsb == fmt.error_bound(d, spec.max_keys_per_row, sink=use_sink)
    if fmt.out_bits >= fmt.data_bits + fmt.out_frac_bits:   # (no saturation)
        assert rep.max_lsb <= rep.bound_lsb


# -- bad input ------------------------------------------------------------------------------------

SPEC = AttentionSpec(8, 4, before=2, after=0)
F = np.zeros((4, 8, 4))
KV = np.zeros((2, 8, 4))


@pytest.mark.parametrize(("args", "kwargs", "error", "message"), [
    ((F, KV[:, :7], KV), {}, ValueError, "k has shape (2, 7, 4), but q has shape (4, 8, 4)"),
    ((F, KV, KV[:1]), {}, ValueError, "v has shape (1, 8, 4), but k has shape (2, 8, 4)"),
    ((F, np.zeros((3, 8, 4)), np.zeros((3, 8, 4))), {}, ValueError,
     "heads (4) must be a multiple of kv_heads (3)"),
    ((F[:0], KV, KV), {}, ValueError, "q must have at least one head, not shape (0, 8, 4)"),
    ((F, KV[:0], KV[:0]), {}, ValueError, "k must have at least one head, not shape (0, 8, 4)"),
    ((F, KV[0], KV), {}, ValueError,
     "k must be a 3-D array (kv_heads, seq_len, head_dim), not shape (8, 4)"),
    ((F[None], KV, KV), {}, ValueError,
     "q must be a 3-D array (heads, seq_len, head_dim), not shape (1, 4, 8, 4)"),
    ((F, KV, KV), {"global_qkv": (F, KV, F)}, ValueError,
     "v_g has shape (4, 8, 4), but k has shape (2, 8, 4)"),
    ((F, KV, KV), {"global_qkv": (KV, KV, KV)}, ValueError,
     "q_g has shape (2, 8, 4), but q has shape (4, 8, 4)"),
    ((F, KV, KV), {"sink_logits": [0.0] * 3}, ValueError,
     "sink_logits must hold one value per query head (4), not shape (3,)"),
    ((F, KV, KV), {"sink_logits": np.zeros((4, 1))}, ValueError,
     "sink_logits must hold one value per query head (4), not shape (4, 1)"),
    ((F[0], KV[0], KV[0]), {"sink_logits": [0.0, 1.0]}, ValueError,
     "sink_logits must hold one value per query head (1), not shape (2,)"),
    ((F, KV, KV), {"sink_logits": [0.0, 1.0, math.nan, 0.0]}, ValueError,
     "sink_logits contains NaN or infinity"),
    ((F, KV, KV), {"sink_logits": "1.0"}, TypeError, "sink_logits must be real numbers, not '1.0'"),
    ((F, KV, KV), {"sink_logits": [True] * 4}, TypeError,
     "sink_logits must be real numbers, not [True, True, True, True]"),
    ((F, KV, KV), {"sink_logits": [None] * 4}, TypeError,
     "sink_logits must be real numbers, not [None, None, None, None]"),
])
def test_bad_input(args, kwargs, error, message):
    pattern = f"^{re.escape(message)}$"
    with pytest.raises(error, match=pattern):
        window_attention(*args, SPEC, **kwargs)
    with pytest.raises(error, match=pattern):
        attention_reference(*args, SPEC.mask(), **kwargs)
    if "global_qkv" in kwargs:
        kwargs = {"global_qkv": tuple(a.astype(np.int64) for a in kwargs["global_qkv"])}
    with pytest.raises(error, match=pattern):
        fixed_point_attention(*(np.asarray(a, dtype=np.int64) for a in args), SPEC, **kwargs)


def test_fixed_point_sink_outside_scores():
    q = np.zeros((2, 8, 4), dtype=np.int64)
    with pytest.raises(ValueError, match=r"^sink logit -1e\+06 \(head 1\) is outside the scores' "
                                         r"range \[-31\.75, 32\] of this format "
                                         r"\(head_dim 4\)$"):
        fixed_point_attention(q, q[:1], q[:1], SPEC, sink_logits=[0.0, -1e6])
    assert round_half_away(np.array([3]), np.array([2])).tolist() == [2]
