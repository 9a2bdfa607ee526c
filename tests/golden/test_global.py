"""Global tokens with Longformer's global projections (``global_qkv=(q_g, k_g, v_g)``).

Every model is compared with a plain row-by-row computation written here from the rule: a global
row attends all N keys through q_g, k_g, v_g; every other row attends its band and the global
columns through q, k, v (a global column inside the band counts once). The fixed-point reference
is built from ``NumberFormat.probabilities`` and ``NumberFormat.normalise`` and must be equal
bit for bit.
"""

import re

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from swatkit.golden import (
    AttentionSpec,
    NumberFormat,
    attention_reference,
    dequantize,
    error_report,
    fixed_point_attention,
    window_attention,
)

SPECS = {
    "no-global": AttentionSpec(20, 4, before=2, after=2),
    "one": AttentionSpec(33, 8, before=3, after=3, global_tokens=(16,)),
    "several": AttentionSpec(40, 8, before=3, after=3, global_tokens=(5, 17, 28)),
    "adjacent": AttentionSpec(30, 8, before=2, after=2, global_tokens=(10, 11, 12)),
    "both-ends": AttentionSpec(30, 8, before=4, after=4, global_tokens=(0, 29)),
    "all-global": AttentionSpec(12, 8, before=1, after=1, global_tokens=tuple(range(12))),
    "dilated-2": AttentionSpec(35, 8, before=3, after=3, dilation=2, global_tokens=(1, 4, 20)),
    "dilated-3": AttentionSpec(41, 8, before=3, after=2, dilation=3, global_tokens=(0, 3, 7, 40)),
    "causal": AttentionSpec(30, 8, before=5, after=0, global_tokens=(9,)),
    "causal-dilated": AttentionSpec(37, 8, before=4, after=0, dilation=2, global_tokens=(0, 21)),
    "n-1": AttentionSpec(1, 8, before=0, after=0, global_tokens=(0,)),
    # several row chunks of the banded evaluation (64 rows each here)
    "several-chunks": AttentionSpec(300, 4, before=20, after=9, global_tokens=(0, 150, 151, 299)),
}
SPEC_IDS = list(SPECS)

FORMATS = {
    "default": NumberFormat(),
    "data4": NumberFormat(data_bits=4, scale_q=1 / 4, scale_k=1 / 4, scale_v=1 / 4),
    "out-frac4": NumberFormat(out_bits=12, out_frac_bits=4),
    "saturating": NumberFormat(out_bits=6, out_frac_bits=2),
    "peaky": NumberFormat(scale_q=1 / 4, scale_k=1 / 4, exp_frac_bits=3, const_bits=8),
}


def row_keys(spec, i):
    """Row i's keys from the rule in golden/spec.py's module docstring."""
    n = spec.seq_len
    if i in spec.global_tokens:
        return np.arange(n)
    band = {i + spec.dilation * t for t in range(-spec.before, spec.after + 1)}
    return np.array([j for j in range(n) if j in band or j in spec.global_tokens])


def projections(spec, i, qkv, global_qkv):
    """The (q, k, v) that row i uses."""
    if global_qkv is not None and i in spec.global_tokens:
        return global_qkv
    return qkv


def per_row_float(q, k, v, spec, global_qkv=None):
    """Softmax attention, one row at a time, in float64."""
    out = np.zeros((spec.seq_len, spec.head_dim))
    for i in range(spec.seq_len):
        qq, kk, vv = projections(spec, i, (q, k, v), global_qkv)
        keys = row_keys(spec, i)
        s = kk[keys] @ qq[i] / np.sqrt(spec.head_dim)
        w = np.exp(s - s.max())
        out[i] = w @ vv[keys] / w.sum()
    return out


def per_row_fixed(q, k, v, spec, fmt, global_qkv=None, rows=None):
    """The six steps of the datapath, one row at a time, from the format's own definitions of
    steps 2–4 (``probabilities``) and 6 (``normalise``)."""
    rows = range(spec.seq_len) if rows is None else rows
    out, row_max, row_sum = {}, {}, {}
    for i in rows:
        qq, kk, vv = (np.asarray(x, dtype=np.int64)
                      for x in projections(spec, i, (q, k, v), global_qkv))
        keys = row_keys(spec, i)
        s = kk[keys] @ qq[i]                                  # 1. scores
        m = s.max()                                           # 2. row max
        p = fmt.probabilities(m - s, spec.head_dim)           # 2.–4.
        total = p.sum()                                       # 5. l
        acc = p @ vv[keys]                                    # 5. acc
        out[i] = fmt.normalise(acc, total)                    # 6.
        row_max[i], row_sum[i] = m, total
    return out, row_max, row_sum


def random_float(spec, seed, count=6):
    rng = np.random.default_rng(seed)
    return tuple(rng.standard_normal((spec.seq_len, spec.head_dim)) for _ in range(count))


def random_int(spec, fmt, seed, count=6):
    rng = np.random.default_rng(seed)
    shape = (spec.seq_len, spec.head_dim)
    return tuple(rng.integers(fmt.data_min, fmt.data_max + 1, shape) for _ in range(count))


def non_global(spec):
    rows = np.ones(spec.seq_len, dtype=bool)
    rows[list(spec.global_tokens)] = False
    return rows


# -- float models --------------------------------------------------------------------------------

@pytest.mark.parametrize("spec", list(SPECS.values()), ids=SPEC_IDS)
def test_window_attention_global_projections(spec):
    q, k, v, q_g, k_g, v_g = random_float(spec, 1)
    q, q_g = 3 * q, 3 * q_g                         # peaky rows as well as flat ones
    g, rest = list(spec.global_tokens), non_global(spec)
    out = window_attention(q, k, v, spec, global_qkv=(q_g, k_g, v_g))
    assert out.shape == (spec.seq_len, spec.head_dim) and out.dtype == np.float64
    expected = per_row_float(q, k, v, spec, (q_g, k_g, v_g))
    np.testing.assert_allclose(out, expected, rtol=0, atol=1e-12)
    # the dense oracle agrees, and its global rows are plain attention with q_g, k_g, v_g
    dense = attention_reference(q, k, v, spec.mask(), global_qkv=(q_g, k_g, v_g),
                                global_tokens=spec.global_tokens)
    np.testing.assert_allclose(dense, expected, rtol=0, atol=1e-12)
    np.testing.assert_allclose(
        dense[g], attention_reference(q_g, k_g, v_g, np.ones((spec.seq_len,) * 2, bool))[g],
        rtol=0, atol=1e-12)
    # the non-global rows do not see global_qkv at all; the global rows do
    plain = window_attention(q, k, v, spec)
    assert np.array_equal(out[rest], plain[rest])
    if g:
        assert np.abs(out[g] - plain[g]).max() > 1e-3


@pytest.mark.parametrize("spec", list(SPECS.values()), ids=SPEC_IDS)
def test_float_without_global_qkv_unchanged(spec):
    """Without ``global_qkv`` the global rows use q, k, v: the same bits as passing (q, k, v)."""
    q, k, v = random_float(spec, 2, 3)
    plain = window_attention(q, k, v, spec)
    assert np.array_equal(plain, window_attention(q, k, v, spec, global_qkv=(q, k, v)))
    np.testing.assert_allclose(plain, per_row_float(q, k, v, spec), rtol=0, atol=1e-12)
    mask = spec.mask()
    assert np.array_equal(attention_reference(q, k, v, mask),
                          attention_reference(q, k, v, mask, global_tokens=spec.global_tokens))


def test_global_qkv_unused_without_global_tokens():
    """Accepted and unused when the spec has no global tokens (but still checked)."""
    spec = SPECS["no-global"]
    q, k, v, q_g, k_g, v_g = random_float(spec, 3)
    assert np.array_equal(window_attention(q, k, v, spec, global_qkv=[q_g, k_g, v_g]),
                          window_attention(q, k, v, spec))
    assert np.array_equal(attention_reference(q, k, v, spec.mask(), global_qkv=(q_g, k_g, v_g)),
                          attention_reference(q, k, v, spec.mask()))
    fmt = NumberFormat()
    qi, ki, vi, qgi, kgi, vgi = random_int(spec, fmt, 3)
    for x, y in zip(fixed_point_attention(qi, ki, vi, spec, global_qkv=(qgi, kgi, vgi)),
                    fixed_point_attention(qi, ki, vi, spec), strict=True):
        assert np.array_equal(x, y)
    with pytest.raises(ValueError, match=r"^v_g has shape \(20, 3\), but q has shape \(20, 4\)$"):
        window_attention(q, k, v, spec, global_qkv=(q_g, k_g, v_g[:, :3]))
    with pytest.raises(ValueError, match=r"^q_g has value 300 outside the 8-bit signed range "
                                         r"\[-128, 127\]$"):
        fixed_point_attention(qi, ki, vi, spec, global_qkv=(np.full_like(qgi, 300), kgi, vgi))


# -- the bit-exact model -------------------------------------------------------------------------

def check_fixed(spec, fmt, qkv, global_qkv, rows=None):
    result = fixed_point_attention(*qkv, spec, fmt, global_qkv=global_qkv)
    out, row_max, row_sum = per_row_fixed(*qkv, spec, fmt, global_qkv, rows)
    for i in out:
        assert result.out[i].tolist() == out[i].tolist(), f"row {i}"
        assert result.row_max[i] == row_max[i], f"row {i}"
        assert result.row_sum[i] == row_sum[i], f"row {i}"
    return result


@pytest.mark.parametrize("fmt", list(FORMATS.values()), ids=list(FORMATS))
@pytest.mark.parametrize("spec", list(SPECS.values()), ids=SPEC_IDS)
def test_fixed_point_global_projections(spec, fmt):
    q, k, v, q_g, k_g, v_g = random_int(spec, fmt, 5)
    result = check_fixed(spec, fmt, (q, k, v), (q_g, k_g, v_g))
    assert result.out.dtype == result.row_max.dtype == result.row_sum.dtype == np.int64
    g, rest = list(spec.global_tokens), non_global(spec)
    # a global row's m and l are those of q_g·k_gᵀ over all N keys
    assert np.array_equal(result.row_max[g], (q_g[g] @ k_g.T).max(axis=1))
    plain = fixed_point_attention(q, k, v, spec, fmt)
    for x, y in zip(result, plain, strict=True):
        assert np.array_equal(x[rest], y[rest])
    if g:
        assert not np.array_equal(result.out[g], plain.out[g])
    if spec.seq_len > 1:
        assert np.ptp(result.out) > 0


@pytest.mark.parametrize("spec", list(SPECS.values()), ids=SPEC_IDS)
def test_fixed_point_without_global_qkv_unchanged(spec):
    fmt = NumberFormat()
    q, k, v = random_int(spec, fmt, 6, 3)
    plain = check_fixed(spec, fmt, (q, k, v), None)
    for x, y in zip(plain, fixed_point_attention(q, k, v, spec, fmt, global_qkv=(q, k, v)),
                    strict=True):
        assert np.array_equal(x, y)


def test_fixed_point_global_projections_int64_path():
    """Bounds above 2^53 send the products through int64: global rows with their own
    projections over N = 2^14 + 1 keys, checked on a few rows of both kinds."""
    fmt = NumberFormat(data_bits=16, prob_bits=24, out_bits=16, scale_q=2 ** -12,
                       scale_k=2 ** -12, scale_v=2 ** -12)
    spec = AttentionSpec(2 ** 14 + 1, 1, before=2, after=2, global_tokens=(0, 5, 2 ** 14))
    assert spec.max_keys_per_row * (2 ** 24 - 1) * 2 ** 15 >= 2 ** 53
    q, k, v, q_g, k_g, v_g = (x.reshape(-1, 1) for x in random_int(
        AttentionSpec(spec.seq_len, 1, 0, 0), fmt, 7))
    check_fixed(spec, fmt, (q, k, v), (q_g, k_g, v_g), rows=[0, 1, 5, 6, 4000, 2 ** 14])


# -- error against float64 -----------------------------------------------------------------------

@pytest.mark.parametrize("fmt", [f for name, f in FORMATS.items() if name != "saturating"],
                         ids=[name for name in FORMATS if name != "saturating"])
@pytest.mark.parametrize("spec", [SPECS[s] for s in ("several", "dilated-3", "causal",
                                                     "all-global", "several-chunks")],
                         ids=["several", "dilated-3", "causal", "all-global", "several-chunks"])
def test_error_within_bound_global_projections(spec, fmt):
    qkv = random_int(spec, fmt, 8)
    report = error_report(*qkv[:3], spec, fmt, global_qkv=qkv[3:])
    assert report.bound_lsb == fmt.error_bound(spec.head_dim, spec.max_keys_per_row)
    assert 0 <= report.max_lsb <= report.bound_lsb
    # the report compares with float attention that uses the global projections too
    scales = (fmt.scale_q, fmt.scale_k, fmt.scale_v) * 2
    real = [dequantize(x, s) for x, s in zip(qkv, scales, strict=True)]
    fixed = fixed_point_attention(*qkv[:3], spec, fmt, global_qkv=qkv[3:]).out
    err = np.abs(dequantize(fixed, fmt.scale_o) - per_row_float(*real[:3], spec, real[3:]))
    assert report.max_abs == pytest.approx(err.max(), rel=1e-9, abs=1e-15)


# -- input checking ------------------------------------------------------------------------------

SPEC = AttentionSpec(8, 4, before=1, after=1, global_tokens=(2,))


def ints(shape, value=0):
    return np.full(shape, value, dtype=np.int64)


OK = ints((8, 4))


@pytest.mark.parametrize(("global_qkv", "error", "message"), [
    ((ints((7, 4)), OK, OK), ValueError, "q_g has shape (7, 4), but q has shape (8, 4)"),
    ((OK, ints((8, 5)), OK), ValueError, "k_g has shape (8, 5), but q has shape (8, 4)"),
    ((OK, OK, ints(32)), ValueError,
     "v_g must be a 2-D array (seq_len, head_dim), not shape (32,)"),
    ((np.zeros((8, 4)), OK, OK), TypeError, "q_g must be an integer array, not float64"),
    ((OK, np.zeros((8, 4), dtype=bool), OK), TypeError, "k_g must be an integer array, not bool"),
    ((OK, OK, ints((8, 4), 128)), ValueError,
     "v_g has value 128 outside the 8-bit signed range [-128, 127]"),
    ((OK, ints((8, 4), -129), OK), ValueError,
     "k_g has value -129 outside the 8-bit signed range [-128, 127]"),
    ((OK, OK), ValueError,
     "global_qkv must be a tuple of three arrays (q_g, k_g, v_g), not 2 items"),
    (np.zeros((3, 8, 4), dtype=np.int64), TypeError,
     "global_qkv must be a tuple of three arrays (q_g, k_g, v_g), not ndarray"),
])
def test_fixed_point_global_input_checks(global_qkv, error, message):
    with pytest.raises(error, match=rf"^{re.escape(message)}$"):
        fixed_point_attention(OK, OK, OK, SPEC, global_qkv=global_qkv)
    with pytest.raises(error, match=rf"^{re.escape(message)}$"):
        error_report(OK, OK, OK, SPEC, global_qkv=global_qkv)


def test_fixed_point_global_range_follows_format():
    fmt = NumberFormat(data_bits=4)
    fixed_point_attention(OK, OK, OK, SPEC, fmt, global_qkv=(ints((8, 4), -8), OK, ints((8, 4), 7)))
    with pytest.raises(ValueError, match=r"^q_g has value 8 outside the 4-bit signed range "
                                         r"\[-8, 7\]$"):
        fixed_point_attention(OK, OK, OK, SPEC, fmt, global_qkv=(ints((8, 4), 8), OK, OK))


def nan_at(shape, value=np.nan):
    x = np.zeros(shape)
    x[3, 1] = value
    return x


X = np.zeros((8, 4))


@pytest.mark.parametrize(("global_qkv", "error", "message"), [
    ((nan_at((8, 4)), X, X), ValueError, "q_g contains NaN or infinity"),
    ((X, X, nan_at((8, 4), np.inf)), ValueError, "v_g contains NaN or infinity"),
    ((X, np.zeros((9, 4)), X), ValueError, "k_g has shape (9, 4), but q has shape (8, 4)"),
    ((X, X, np.zeros((1, 8, 4))), ValueError,
     "v_g must be a 2-D array (seq_len, head_dim), not shape (1, 8, 4)"),
    ((X, X, X, X), ValueError,
     "global_qkv must be a tuple of three arrays (q_g, k_g, v_g), not 4 items"),
    ({"q_g": X}, TypeError, "global_qkv must be a tuple of three arrays (q_g, k_g, v_g), not dict"),
])
def test_float_global_input_checks(global_qkv, error, message):
    with pytest.raises(error, match=rf"^{re.escape(message)}$"):
        window_attention(X, X, X, SPEC, global_qkv=global_qkv)
    with pytest.raises(error, match=rf"^{re.escape(message)}$"):
        attention_reference(X, X, X, SPEC.mask(), global_qkv=global_qkv,
                            global_tokens=SPEC.global_tokens)


def test_reference_global_token_checks():
    mask = SPEC.mask()
    with pytest.raises(ValueError, match=r"^row 3 is a global token, but its mask row is not all "
                                         r"True$"):
        attention_reference(X, X, X, mask, global_qkv=(X, X, X), global_tokens=(2, 3))
    with pytest.raises(ValueError, match=r"^global token 8 is outside the sequence \[0, 8\)$"):
        attention_reference(X, X, X, mask, global_tokens=[8])
    with pytest.raises(ValueError, match=r"^global token -1 is outside the sequence \[0, 8\)$"):
        attention_reference(X, X, X, mask, global_tokens=(-1,))
    with pytest.raises(TypeError, match=r"^global_tokens must be a sequence of integers, not "
                                        r"\(2\.0,\)$"):
        attention_reference(X, X, X, mask, global_tokens=(2.0,))
    with pytest.raises(TypeError, match=r"^global_tokens must be a sequence of integers, not 2$"):
        attention_reference(X, X, X, mask, global_tokens=2)


# -- property-based: small random specs, formats and inputs -------------------------------------

@st.composite
def global_cases(draw):
    n = draw(st.integers(1, 40))
    d = draw(st.integers(1, 8))
    if draw(st.booleans()):
        tokens = sorted(draw(st.lists(st.integers(0, n - 1), max_size=6, unique=True)))
    else:  # a run of adjacent tokens, possibly all of them
        first = draw(st.integers(0, n - 1))
        tokens = list(range(first, draw(st.integers(first, n - 1)) + 1))
    spec = AttentionSpec(n, d, before=draw(st.integers(0, 6)), after=draw(st.integers(0, 6)),
                         dilation=draw(st.integers(1, 3)), global_tokens=tuple(tokens))
    b = draw(st.integers(2, 12))
    scale = st.sampled_from([1.0, 0.5, 0.3, 1 / 8, 1 / 32, 0.01, 1 / 256])
    fmt = NumberFormat(data_bits=b, prob_bits=draw(st.integers(4, 24)),
                       exp_frac_bits=draw(st.integers(1, 12)), const_bits=draw(st.integers(4, 24)),
                       out_bits=draw(st.integers(2, 20)), out_frac_bits=draw(st.integers(0, 4)),
                       scale_q=draw(scale), scale_k=draw(scale), scale_v=draw(scale))
    try:
        fmt.softmax_constant(d)
    except ValueError:
        assume(False)       # one score step would exceed the whole probability range
    elements = st.integers(fmt.data_min, fmt.data_max)
    arrays = tuple(draw(hnp.arrays(np.int64, (n, d), elements=elements)) for _ in range(6))
    return spec, fmt, arrays


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(global_cases())
def test_global_projections_property(case):
    spec, fmt, (q, k, v, q_g, k_g, v_g) = case
    check_fixed(spec, fmt, (q, k, v), (q_g, k_g, v_g))
    real = [dequantize(x, s) for x, s in
            zip((q, k, v, q_g, k_g, v_g), (fmt.scale_q, fmt.scale_k, fmt.scale_v) * 2,
                strict=True)]
    out = window_attention(*real[:3], spec, global_qkv=real[3:])
    assert np.allclose(out, per_row_float(*real[:3], spec, real[3:]), rtol=1e-12, atol=1e-12)
    assert np.allclose(out, attention_reference(*real[:3], spec.mask(), global_qkv=real[3:],
                                                global_tokens=spec.global_tokens),
                       rtol=1e-12, atol=1e-12)
