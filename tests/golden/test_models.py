"""The golden models: the banded float model against the dense oracle, the bit-exact model against
a deliberately naive per-row loop written from the contract, input checking, and the measured
error of the bit-exact model against its documented bound (property-based).
"""

import re

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from swatkit.golden import (
    AttentionSpec,
    ErrorReport,
    FixedPointResult,
    NumberFormat,
    attention_reference,
    error_report,
    fixed_point_attention,
    window_attention,
)

PATTERNS = {
    "bidirectional": AttentionSpec(40, 8, before=4, after=4),
    "asymmetric": AttentionSpec(33, 8, before=2, after=6),
    "causal": AttentionSpec(40, 8, before=7, after=0),
    "dilated": AttentionSpec(41, 8, before=3, after=3, dilation=3),
    "dilated-causal": AttentionSpec(37, 8, before=4, after=0, dilation=2),
    "global": AttentionSpec(40, 8, before=3, after=3, global_tokens=(0, 13, 39)),
    "dilated-global": AttentionSpec(45, 8, before=2, after=2, dilation=4, global_tokens=(2, 3, 30)),
    "causal-global": AttentionSpec(30, 8, before=5, after=0, global_tokens=(9,)),
    "n-smaller-than-window": AttentionSpec(6, 8, before=10, after=10),
    "n-smaller-than-dilated-window": AttentionSpec(9, 8, before=3, after=3, dilation=5),
    "n-1": AttentionSpec(1, 8, before=4, after=4),
    "n-1-global": AttentionSpec(1, 8, before=0, after=0, global_tokens=(0,)),
    "window-1": AttentionSpec(12, 8, before=0, after=0),
    # long enough for several row chunks of the banded evaluation (chunk = 64 rows here)
    "several-chunks": AttentionSpec(300, 4, before=20, after=9, global_tokens=(150,)),
    "several-chunks-dilated": AttentionSpec(301, 4, before=5, after=40, dilation=2),
}
PATTERN_IDS = list(PATTERNS)


def brute_force_keys(spec, i):
    """Row i's keys from the rule in golden/spec.py's module docstring."""
    n = spec.seq_len
    if i in spec.global_tokens:
        return list(range(n))
    band = {i + spec.dilation * t for t in range(-spec.before, spec.after + 1)}
    return sorted(j for j in range(n) if j in band or j in spec.global_tokens)


def random_float(spec, seed):
    rng = np.random.default_rng(seed)
    return tuple(rng.standard_normal((spec.seq_len, spec.head_dim)) for _ in range(3))


def random_int(spec, fmt, seed):
    rng = np.random.default_rng(seed)
    shape = (spec.seq_len, spec.head_dim)
    return tuple(rng.integers(fmt.data_min, fmt.data_max + 1, shape) for _ in range(3))


# -- float models --------------------------------------------------------------------------------

@pytest.mark.parametrize("spec", list(PATTERNS.values()), ids=PATTERN_IDS)
def test_window_attention_equals_reference(spec):
    q, k, v = random_float(spec, 1)
    q = 3 * q                                   # peaky rows as well as flat ones
    ref = attention_reference(q, k, v, spec.mask())
    out = window_attention(q, k, v, spec)
    assert out.shape == ref.shape == (spec.seq_len, spec.head_dim)
    assert out.dtype == np.float64
    np.testing.assert_allclose(out, ref, rtol=0, atol=1e-12)
    if spec.seq_len > 1:
        assert np.ptp(out) > 0


def test_reference_is_softmax_attention():
    """The oracle itself, on one row computed by hand."""
    rng = np.random.default_rng(3)
    q, k, v = (rng.standard_normal((5, 3)) for _ in range(3))
    mask = np.ones((5, 5), dtype=bool)
    mask[2, [0, 4]] = False
    s = q[2] @ k[[1, 2, 3]].T / np.sqrt(3)
    w = np.exp(s) / np.exp(s).sum()
    np.testing.assert_allclose(attention_reference(q, k, v, mask)[2], w @ v[[1, 2, 3]],
                               rtol=0, atol=1e-14)


def test_window_attention_accepts_integer_and_list_inputs():
    spec = AttentionSpec(10, 2, before=2, after=1)
    q, k, v = (np.arange(20).reshape(10, 2) % 5 - 2 for _ in range(3))
    np.testing.assert_allclose(window_attention(q.tolist(), k, v, spec),
                               attention_reference(q, k, v, spec.mask()), rtol=0, atol=1e-12)


# -- the bit-exact model against a naive loop ----------------------------------------------------

def naive_fixed_point(q, k, v, spec, fmt, rows=None):
    """The 6 steps of golden/numerics.py's docstring, one row and one key at a time, in Python
    integers (unbounded: an overflow in the model under test cannot hide here)."""
    const = fmt.softmax_constant(spec.head_dim)
    table = [int(e) for e in fmt.exp_table()]
    big_f, big_p = fmt.exp_frac_bits, fmt.prob_bits
    d = spec.head_dim
    rows = range(spec.seq_len) if rows is None else rows
    out, row_max, row_sum = {}, {}, {}
    for i in rows:
        keys = brute_force_keys(spec, i)
        scores = [sum(int(q[i, c]) * int(k[j, c]) for c in range(d)) for j in keys]   # 1.
        m = max(scores)                                                              # 2.
        probs = []
        for s in scores:
            diff = min(m - s, const.d_sat)                                           # 2.
            x = (diff * const.value + 2 ** (const.shift - 1)) // 2 ** const.shift    # 3.
            probs.append(table[x % 2 ** big_f] // 2 ** min(x // 2 ** big_f, big_p))  # 4.
        total = sum(probs)                                                           # 5.
        o = []
        for c in range(d):
            acc = sum(p * int(v[j, c]) for p, j in zip(probs, keys, strict=True))    # 5.
            num = acc * 2 ** fmt.out_frac_bits
            mag = (2 * abs(num) + total) // (2 * total)                              # 6. round
            val = -mag if num < 0 else mag
            o.append(min(max(val, fmt.out_min), fmt.out_max))                        # 6. sat
        out[i], row_max[i], row_sum[i] = o, m, total
    return out, row_max, row_sum


FORMATS = {
    "default": NumberFormat(),
    "data4": NumberFormat(data_bits=4, scale_q=1 / 4, scale_k=1 / 4, scale_v=1 / 4),
    "data12": NumberFormat(data_bits=12, out_bits=12, scale_q=1 / 512, scale_k=1 / 512),
    "prob8-exp2": NumberFormat(prob_bits=8, exp_frac_bits=2, const_bits=6),
    "prob24-exp12": NumberFormat(prob_bits=24, exp_frac_bits=12, const_bits=24),
    "out-frac4": NumberFormat(out_bits=12, out_frac_bits=4),
    "saturating": NumberFormat(out_bits=6, out_frac_bits=2),
    "peaky": NumberFormat(scale_q=1 / 4, scale_k=1 / 4, exp_frac_bits=3, const_bits=8),
}


def check_fixed_point(spec, fmt, q, k, v, rows=None):
    """Compare the model with the naive loop (on ``rows``, default all) and return the result."""
    result = fixed_point_attention(q, k, v, spec, fmt)
    assert isinstance(result, FixedPointResult)
    n, d = spec.seq_len, spec.head_dim
    assert result.out.shape == (n, d) and result.out.dtype == np.int64
    assert result.row_max.shape == result.row_sum.shape == (n,)
    assert result.row_max.dtype == result.row_sum.dtype == np.int64
    out, row_max, row_sum = naive_fixed_point(q, k, v, spec, fmt, rows)
    for i in out:
        assert result.out[i].tolist() == out[i], f"row {i}"
        assert int(result.row_max[i]) == row_max[i], f"row {i}"
        assert int(result.row_sum[i]) == row_sum[i], f"row {i}"
    return result


@pytest.mark.parametrize("fmt", list(FORMATS.values()), ids=list(FORMATS))
@pytest.mark.parametrize("spec", list(PATTERNS.values()), ids=PATTERN_IDS)
def test_fixed_point_equals_naive_loop(spec, fmt):
    q, k, v = random_int(spec, fmt, 5)
    result = check_fixed_point(spec, fmt, q, k, v)
    if spec.seq_len > 1:
        assert np.ptp(result.out) > 0               # not trivial
    assert np.all(result.row_sum >= 2 ** fmt.prob_bits - 1)   # the row maximum's p


@pytest.mark.parametrize("fmt", list(FORMATS.values()), ids=list(FORMATS))
@pytest.mark.parametrize("case", ["max", "min", "alternating", "equal-scores", "dominant-first",
                                  "dominant-last"])
def test_fixed_point_extremes_equal_naive_loop(case, fmt):
    spec = AttentionSpec(24, 4, before=3, after=2, dilation=2, global_tokens=(11,))
    n, d = spec.seq_len, spec.head_dim
    lo, hi = fmt.data_min, fmt.data_max
    rng = np.random.default_rng(11)
    v = rng.integers(lo, hi + 1, (n, d))
    if case == "max":
        q = k = v = np.full((n, d), hi)
    elif case == "min":
        q = k = v = np.full((n, d), lo)
    elif case == "alternating":
        q = np.where(np.arange(n * d).reshape(n, d) % 2, lo, hi)
        k = np.where(np.arange(n * d).reshape(n, d) % 3, hi, lo)
        v = np.where(np.arange(n * d).reshape(n, d) % 5, lo, hi)
    elif case == "equal-scores":
        q, k = np.zeros((n, d), dtype=np.int64), rng.integers(lo, hi + 1, (n, d))
    else:  # one key far above all others, at a sequence edge (first or last row)
        q = np.full((n, d), hi)
        k = np.zeros((n, d), dtype=np.int64)
        k[0 if case == "dominant-first" else n - 1] = hi
    result = check_fixed_point(spec, fmt, q, k, v)
    if case == "equal-scores":
        # every probability is the maximal one: row_sum = keys · (2^P − 1)
        assert np.array_equal(result.row_sum, spec.keys_per_row() * (2 ** fmt.prob_bits - 1))
        assert not result.row_max.any()


def test_fixed_point_int64_path():
    """Bounds above 2^53 send the products through int64 instead of float64: check rows of both
    kinds against the naive loop (a global token makes every row's W = N = 2^14 + 1)."""
    fmt = NumberFormat(data_bits=16, prob_bits=24, out_bits=16, scale_q=2 ** -12,
                       scale_k=2 ** -12, scale_v=2 ** -12)
    spec = AttentionSpec(2 ** 14 + 1, 1, before=2, after=2, global_tokens=(5,))
    assert spec.max_keys_per_row * (2 ** 24 - 1) * 2 ** 15 >= 2 ** 53
    rng = np.random.default_rng(2)
    q, k, v = (rng.integers(fmt.data_min, fmt.data_max + 1, (spec.seq_len, 1)) for _ in range(3))
    check_fixed_point(spec, fmt, q, k, v, rows=[0, 1, 5, 6, 4000, spec.seq_len - 1])


def test_fixed_point_default_format_and_list_inputs():
    spec = AttentionSpec(16, 4, before=2, after=2)
    q, k, v = random_int(spec, NumberFormat(), 9)
    a = fixed_point_attention(q, k, v, spec)
    b = fixed_point_attention(q.astype(np.int8).tolist(), k.astype(np.int16), v, spec,
                              NumberFormat())
    for x, y in zip(a, b, strict=True):
        assert np.array_equal(x, y)


# -- input checking ------------------------------------------------------------------------------

SPEC = AttentionSpec(8, 4, before=1, after=1)


def ints(shape, value=0):
    return np.full(shape, value, dtype=np.int64)


@pytest.mark.parametrize(("args", "error", "message"), [
    ((ints(32), ints((8, 4)), ints((8, 4))), ValueError,
     "q must be a 2-D array (seq_len, head_dim), not shape (32,)"),
    ((ints((8, 4)), ints((1, 8, 4)), ints((8, 4))), ValueError,
     "k must be a 2-D array (seq_len, head_dim), not shape (1, 8, 4)"),
    ((ints((8, 4)), ints((8, 4)), ints((8, 3))), ValueError,
     "v has shape (8, 3), but q has shape (8, 4)"),
    ((ints((8, 4)), ints((7, 4)), ints((8, 4))), ValueError,
     "k has shape (7, 4), but q has shape (8, 4)"),
    ((ints((9, 4)), ints((9, 4)), ints((9, 4))), ValueError,
     "inputs have shape (9, 4), but the spec is (seq_len=8, head_dim=4)"),
    ((np.zeros((8, 4)), ints((8, 4)), ints((8, 4))), TypeError,
     "q must be an integer array, not float64"),
    ((ints((8, 4)), ints((8, 4)), np.zeros((8, 4), dtype=bool)), TypeError,
     "v must be an integer array, not bool"),
    ((ints((8, 4), 128), ints((8, 4)), ints((8, 4))), ValueError,
     "q_int has value 128 outside the 8-bit signed range [-128, 127]"),
    ((ints((8, 4)), ints((8, 4), -129), ints((8, 4))), ValueError,
     "k_int has value -129 outside the 8-bit signed range [-128, 127]"),
    ((ints((8, 4)), ints((8, 4)), np.full((8, 4), 200, dtype=np.uint8)), ValueError,
     "v_int has value 200 outside the 8-bit signed range [-128, 127]"),
])
def test_fixed_point_input_checks(args, error, message):
    with pytest.raises(error, match=rf"^{re.escape(message)}$"):
        fixed_point_attention(*args, SPEC)


def test_fixed_point_range_follows_format():
    fmt = NumberFormat(data_bits=4)
    fixed_point_attention(ints((8, 4), -8), ints((8, 4), 7), ints((8, 4)), SPEC, fmt)
    with pytest.raises(ValueError, match=r"^q_int has value 8 outside the 4-bit signed range "
                                         r"\[-8, 7\]$"):
        fixed_point_attention(ints((8, 4), 8), ints((8, 4)), ints((8, 4)), SPEC, fmt)


def test_float_model_input_checks():
    x = np.zeros((8, 4))
    bad = x.copy()
    bad[3, 1] = np.nan
    with pytest.raises(ValueError, match=r"^k contains NaN or infinity$"):
        window_attention(x, bad, x, SPEC)
    with pytest.raises(ValueError, match=r"^v contains NaN or infinity$"):
        attention_reference(x, x, np.where(bad == bad, np.inf, 0), SPEC.mask())
    with pytest.raises(ValueError, match=r"^inputs have shape \(8, 4\), but the spec is "
                                         r"\(seq_len=8, head_dim=5\)$"):
        window_attention(x, x, x, SPEC.replace(head_dim=5))
    with pytest.raises(ValueError, match=r"^mask has shape \(8, 7\), expected \(8, 8\)$"):
        attention_reference(x, x, x, np.ones((8, 7), dtype=bool))
    mask = np.eye(8, dtype=bool)
    mask[5, 5] = False
    with pytest.raises(ValueError, match=r"^every row of mask must attend at least one key$"):
        attention_reference(x, x, x, mask)


# -- error against float64: measured <= bound ----------------------------------------------------

def check_error(q, k, v, spec, fmt):
    report = error_report(q, k, v, spec, fmt)
    assert isinstance(report, ErrorReport)
    assert report.bound_lsb == fmt.error_bound(spec.head_dim, spec.max_keys_per_row)
    assert report.max_abs == pytest.approx(report.max_lsb * fmt.scale_o, rel=1e-12, abs=0)
    # the mean of equal errors can exceed their max by an ulp of float summation
    assert 0 <= report.mean_lsb <= report.max_lsb * (1 + 1e-12)
    assert report.max_lsb <= report.bound_lsb, (spec, fmt, report)
    return report


UNSATURATED = [name for name in FORMATS if name != "saturating"]


@pytest.mark.parametrize("fmt", [FORMATS[name] for name in UNSATURATED], ids=UNSATURATED)
def test_error_within_bound_random(fmt):
    spec = AttentionSpec(200, 16, before=12, after=12, global_tokens=(0, 99))
    rng = np.random.default_rng(4)
    q, k, v = (np.clip(np.rint(rng.normal(0, (fmt.data_max + 1) / 3, (200, 16))),
                       fmt.data_min, fmt.data_max).astype(np.int64) for _ in range(3))
    report = check_error(q, k, v, spec, fmt)
    assert report.max_lsb > 0


@pytest.mark.parametrize("fmt", [
    NumberFormat(),
    NumberFormat(prob_bits=4, exp_frac_bits=3, scale_q=1 / 16, scale_k=1 / 16, scale_v=1 / 4),
    NumberFormat(prob_bits=6, exp_frac_bits=1, const_bits=6, data_bits=6, out_bits=6),
], ids=["default", "prob4", "prob6-exp1"])
def test_error_within_bound_plateau(fmt):
    """The worst case of the absolute probability error: one maximal key whose value is at one end
    of the range, and 40 keys on a plateau ``level`` below it with values at the other end; every
    level is tried, so each of the 40 small probabilities meets every rounding and truncation."""
    n = 41
    spec = AttentionSpec(n, 1, before=20, after=20)
    q = np.full((n, 1), fmt.data_max)
    v = np.full((n, 1), fmt.data_max)
    v[20] = fmt.data_min
    for level in range(fmt.data_min, fmt.data_max):
        k = np.full((n, 1), level)
        k[20] = fmt.data_max
        check_error(q, k, v, spec, fmt)


@st.composite
def specs(draw):
    n = draw(st.integers(1, 24))
    d = draw(st.integers(1, 6))
    globals_ = draw(st.lists(st.integers(0, n - 1), max_size=3, unique=True))
    return AttentionSpec(n, d, before=draw(st.integers(0, 5)), after=draw(st.integers(0, 5)),
                         dilation=draw(st.integers(1, 3)), global_tokens=tuple(sorted(globals_)))


@st.composite
def formats(draw):
    b = draw(st.integers(2, 12))
    f = draw(st.integers(0, 4))
    scale = st.sampled_from([1.0, 0.5, 0.3, 1 / 8, 1 / 32, 0.01, 1 / 256, 1 / 1000])
    # out_bits >= data_bits + out_frac_bits: the bound assumes that no output saturates
    return NumberFormat(data_bits=b, prob_bits=draw(st.integers(4, 24)),
                        exp_frac_bits=draw(st.integers(1, 12)), const_bits=draw(st.integers(4, 24)),
                        out_bits=b + f + draw(st.integers(0, 2)), out_frac_bits=f,
                        scale_q=draw(scale), scale_k=draw(scale), scale_v=draw(scale))


@st.composite
def cases(draw):
    spec, fmt = draw(specs()), draw(formats())
    try:
        fmt.softmax_constant(spec.head_dim)
    except ValueError:
        assume(False)       # one score step would exceed the whole probability range
    n, d = spec.seq_len, spec.head_dim
    lo, hi = fmt.data_min, fmt.data_max
    kind = draw(st.sampled_from(["random", "extreme", "all-max", "all-min", "equal-scores",
                                 "dominant", "plateau"]))
    if kind in ("random", "extreme"):
        elements = (st.integers(lo, hi) if kind == "random"
                    else st.sampled_from([lo, lo + 1, -1, 0, 1, hi - 1, hi]))
        q, k, v = (draw(hnp.arrays(np.int64, (n, d), elements=elements)) for _ in range(3))
    elif kind in ("all-max", "all-min"):
        q = k = v = np.full((n, d), hi if kind == "all-max" else lo)
        v = v * draw(st.sampled_from([1, -1])) if kind == "all-max" else v
    elif kind == "equal-scores":
        q = np.zeros((n, d), dtype=np.int64)
        k, v = (draw(hnp.arrays(np.int64, (n, d), elements=st.integers(lo, hi)))
                for _ in range(2))
    elif kind == "plateau":  # one top key, the others on one lower level, opposite values
        top = draw(st.sampled_from([0, n - 1, n // 2]))
        q = np.full((n, d), hi)
        k = np.full((n, d), draw(st.integers(lo, hi)))
        k[top] = hi
        v = np.full((n, d), hi)
        v[top] = lo
    else:  # one key dominates; at a sequence edge or anywhere
        q = np.full((n, d), draw(st.sampled_from([lo, hi])))
        k = np.zeros((n, d), dtype=np.int64)
        k[draw(st.sampled_from([0, n - 1, n // 2]))] = q[0, 0]
        v = draw(hnp.arrays(np.int64, (n, d), elements=st.sampled_from([lo, hi])))
    return q, k, v, spec, fmt


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cases())
def test_error_within_bound_property(case):
    q, k, v, spec, fmt = case
    check_error(q, k, v, spec, fmt)


@st.composite
def exact_cases(draw):
    spec, fmt = draw(specs()), draw(formats())
    fmt = fmt.replace(out_bits=draw(st.integers(2, fmt.out_bits)))   # saturation allowed here
    try:
        fmt.softmax_constant(spec.head_dim)
    except ValueError:
        assume(False)
    elements = st.integers(fmt.data_min, fmt.data_max)
    q, k, v = (draw(hnp.arrays(np.int64, (spec.seq_len, spec.head_dim), elements=elements))
               for _ in range(3))
    return q, k, v, spec, fmt


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(exact_cases())
def test_fixed_point_equals_naive_loop_property(case):
    q, k, v, spec, fmt = case
    check_fixed_point(spec, fmt, q, k, v)
