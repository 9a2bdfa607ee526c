"""NumberFormat and the helpers of golden/numerics.py: argument checking, the exp table, the
softmax constant, the derived widths, quantisation and the rounding of the deferred division.

Reference values are computed here independently: the exp table with 60-digit decimal arithmetic,
the rounding with exact fractions, the width bounds from the extreme integer inputs.
"""

import decimal
import functools
import math
import re
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from swatkit.golden import NumberFormat, SoftmaxConstant, Widths, dequantize, quantize
from swatkit.golden.numerics import round_half_away

# -- argument checking ---------------------------------------------------------------------------

BITS_FIELDS = {
    "data_bits": (2, 16),
    "prob_bits": (4, 24),
    "exp_frac_bits": (1, 12),
    "const_bits": (4, 24),
    "out_bits": (2, 32),
    "out_frac_bits": (0, 16),
}


def test_limits_are_the_documented_ones():
    assert NumberFormat.LIMITS == BITS_FIELDS


@pytest.mark.parametrize("name", list(BITS_FIELDS))
def test_bits_field_range(name):
    lo, hi = BITS_FIELDS[name]
    assert getattr(NumberFormat(**{name: lo}), name) == lo
    assert getattr(NumberFormat(**{name: hi}), name) == hi
    for bad in (lo - 1, hi + 1):
        message = f"{name} must be an integer in {lo}..{hi}, not {bad}"
        with pytest.raises(ValueError, match=rf"^{re.escape(message)}$"):
            NumberFormat(**{name: bad})


@pytest.mark.parametrize("name", list(BITS_FIELDS))
@pytest.mark.parametrize("bad", [8.0, "8", True, None])
def test_bits_field_type(name, bad):
    message = f"{name} must be an integer, not {bad!r}"
    with pytest.raises(TypeError, match=rf"^{re.escape(message)}$"):
        NumberFormat(**{name: bad})


@pytest.mark.parametrize("name", ["scale_q", "scale_k", "scale_v"])
def test_scale_fields(name):
    fmt = NumberFormat(**{name: 1})
    assert getattr(fmt, name) == 1.0
    assert type(getattr(fmt, name)) is float
    for bad in ("0.5", None, True, 1j):
        message = f"{name} must be a real number, not {bad!r}"
        with pytest.raises(TypeError, match=rf"^{re.escape(message)}$"):
            NumberFormat(**{name: bad})
    for bad in (0, 0.0, -0.25, math.inf, math.nan):
        message = f"{name} must be a positive finite number, not {bad!r}"
        with pytest.raises(ValueError, match=rf"^{re.escape(message)}$"):
            NumberFormat(**{name: bad})


def test_replace_validates_again():
    fmt = NumberFormat()
    assert fmt.replace(prob_bits=12).prob_bits == 12
    with pytest.raises(ValueError, match=r"^prob_bits must be an integer in 4\.\.24, not 3$"):
        fmt.replace(prob_bits=3)


def test_ranges_and_scales():
    fmt = NumberFormat(data_bits=6, out_bits=10, out_frac_bits=3, scale_v=0.5)
    assert (fmt.data_min, fmt.data_max) == (-32, 31)
    assert (fmt.out_min, fmt.out_max) == (-512, 511)
    assert fmt.scale_o == 0.5 / 8


# -- the exp table -------------------------------------------------------------------------------

@functools.cache
def exp_table_decimal(prob_bits, frac_bits):
    """``min(round_half_up(2^P·2^(−f/2^F)), 2^P − 1)`` with 60-digit decimal arithmetic."""
    with decimal.localcontext() as ctx:
        ctx.prec = 60
        two, half = decimal.Decimal(2), decimal.Decimal("0.5")
        table = []
        for f in range(2 ** frac_bits):
            value = two ** (prob_bits - decimal.Decimal(f) / 2 ** frac_bits)
            entry = int((value + half).to_integral_value(rounding=decimal.ROUND_FLOOR))
            table.append(min(entry, 2 ** prob_bits - 1))
    return table


@pytest.mark.parametrize(("prob_bits", "frac_bits"), [
    (16, 6),    # the default
    (4, 1),     # smallest
    (8, 4),
    (12, 8),
    (24, 12),   # largest: 4096 entries
    (4, 12),    # more entries than probability levels
])
def test_exp_table_exhaustive(prob_bits, frac_bits):
    fmt = NumberFormat(prob_bits=prob_bits, exp_frac_bits=frac_bits)
    table = fmt.exp_table()
    assert table.dtype == np.int64
    assert table.shape == (2 ** frac_bits,)
    assert table.tolist() == exp_table_decimal(prob_bits, frac_bits)
    assert table[0] == 2 ** prob_bits - 1              # 2^P itself does not fit: clamped
    assert np.all(np.diff(table) <= 0)                 # monotone (non-increasing)
    assert table.min() >= 2 ** (prob_bits - 1)          # 2^(−f/2^F) > 1/2: never loses the MSB
    if 2 ** frac_bits <= 2 ** (prob_bits - 1):
        assert np.all(np.diff(table) < 0)              # enough levels: strictly decreasing


# -- the softmax constant ------------------------------------------------------------------------

CONSTANT_CASES = [
    (NumberFormat(), 64),
    (NumberFormat(), 1),
    (NumberFormat(), 128),
    (NumberFormat(), 3),
    (NumberFormat(const_bits=4), 64),
    (NumberFormat(const_bits=24, prob_bits=24, exp_frac_bits=12), 64),
    (NumberFormat(prob_bits=4, exp_frac_bits=1), 16),
    (NumberFormat(data_bits=12, scale_q=1 / 512, scale_k=1 / 512), 64),
    (NumberFormat(scale_q=0.3, scale_k=0.07), 80),
    (NumberFormat(scale_q=1.0, scale_k=1.0, exp_frac_bits=1, const_bits=4), 1),
    # real just below 2^-10: rounding to 16 bits carries into a 17th, frac_bits drops by one
    (NumberFormat(scale_q=2 ** -10 * (1 - 2 ** -20) / math.log2(math.e), scale_k=1.0), 1),
]
CONSTANT_IDS = [f"case{i}" for i in range(len(CONSTANT_CASES))]


def p_of_d(fmt, const, d):
    """Steps 3 and 4 of the datapath for an array of differences ``d`` (independent NumPy)."""
    table = np.array(exp_table_decimal(fmt.prob_bits, fmt.exp_frac_bits), dtype=np.int64)
    x = (d * const.value + 2 ** (const.shift - 1)) // 2 ** const.shift
    frac = fmt.exp_frac_bits
    return table[x % 2 ** frac] >> np.minimum(x // 2 ** frac, fmt.prob_bits), x


@pytest.mark.parametrize(("fmt", "head_dim"), CONSTANT_CASES, ids=CONSTANT_IDS)
def test_softmax_constant(fmt, head_dim):
    const = fmt.softmax_constant(head_dim)
    assert isinstance(const, SoftmaxConstant)
    real = fmt.scale_q * fmt.scale_k * math.log2(math.e) / math.sqrt(head_dim)
    assert const.real == pytest.approx(real, rel=1e-15)
    # exactly const_bits significant bits, rounded to nearest at frac_bits
    assert const.value.bit_length() == fmt.const_bits
    exact = Fraction(const.real) * 2 ** const.frac_bits
    assert abs(const.value - exact) <= Fraction(1, 2)
    assert const.shift == const.frac_bits - fmt.exp_frac_bits >= 1
    # d_sat is the smallest D with D·C >= (P + 1)·2^frac
    limit = (fmt.prob_bits + 1) * 2 ** const.frac_bits
    assert const.d_sat * const.value >= limit > (const.d_sat - 1) * const.value


@pytest.mark.parametrize(("fmt", "head_dim"), CONSTANT_CASES, ids=CONSTANT_IDS)
def test_d_sat_contract(fmt, head_dim):
    """"every D >= d_sat gives p = 0", so clamping D at d_sat changes no probability."""
    const = fmt.softmax_constant(head_dim)
    d_sat = const.d_sat
    if d_sat <= 2 ** 20:
        d = np.arange(0, 3 * d_sat + 64, dtype=np.int64)
    else:  # every D near 0 and near d_sat, a random sample elsewhere (up to 2^40)
        rng = np.random.default_rng(d_sat)
        d = np.unique(np.concatenate([
            np.arange(0, 2 ** 18), np.arange(d_sat - 2 ** 18, d_sat + 2 ** 18),
            rng.integers(0, 3 * d_sat, 2 ** 18), rng.integers(0, 2 ** 40, 2 ** 12)]))
    p, x = p_of_d(fmt, const, d)
    assert p[0] == 2 ** fmt.prob_bits - 1        # the row maximum: the largest probability
    assert np.all(np.diff(p) <= 0)               # larger difference, smaller probability
    assert not p[d >= d_sat].any()
    assert p[d < d_sat].size > 0
    clamped, _ = p_of_d(fmt, const, np.minimum(d, d_sat))
    assert np.array_equal(clamped, p)
    # p is zero exactly from x >= P·2^F on; d_sat (from P + 1) lies at or beyond that point
    assert np.array_equal(p == 0, x >= fmt.prob_bits * 2 ** fmt.exp_frac_bits)
    assert d[np.flatnonzero(p == 0)[0]] <= d_sat


@pytest.mark.parametrize(("fmt", "head_dim"), CONSTANT_CASES, ids=CONSTANT_IDS)
def test_probabilities_is_steps_2_to_4(fmt, head_dim):
    """NumberFormat.probabilities (the model's steps 2–4) against the independent p_of_d."""
    const = fmt.softmax_constant(head_dim)
    rng = np.random.default_rng(head_dim)
    d = np.concatenate([np.arange(0, 4096), rng.integers(0, 4 * const.d_sat, 4096)])
    got = fmt.probabilities(d.reshape(2, -1), head_dim)
    assert got.shape == (2, 4096)
    expected, _ = p_of_d(fmt, const, np.minimum(d, const.d_sat))
    assert got.reshape(-1).tolist() == expected.tolist()


def test_normalise_is_step_6():
    fmt = NumberFormat(out_bits=6, out_frac_bits=2)
    acc = np.arange(-700, 701, dtype=np.int64)[:, None]
    total = np.arange(1, 30, dtype=np.int64)[None, :]
    got = fmt.normalise(acc, total)
    expected = [[min(max(round_half_away_exact(4 * a, t), -32), 31) for t in range(1, 30)]
                for a in range(-700, 701)]
    assert got.tolist() == expected


def test_softmax_constant_rounding_carry():
    fmt, head_dim = CONSTANT_CASES[-1]
    const = fmt.softmax_constant(head_dim)
    assert const.real < 2 ** -10
    assert (const.value, const.frac_bits) == (2 ** 15, 25)


def test_softmax_constant_too_large():
    message = ("scale_q·scale_k/sqrt(head_dim) = 1 is too large: one score step would span "
               "more than the whole probability range")
    fmt = NumberFormat(scale_q=1.0, scale_k=1.0, exp_frac_bits=12, const_bits=4)
    with pytest.raises(ValueError, match=rf"^{re.escape(message)}$"):
        fmt.softmax_constant(1)
    # the same format is fine for a wider head (smaller real constant)
    assert fmt.softmax_constant(2 ** 20).shift >= 1
    # two finite scales whose product overflows a float (hypothesis found them, through the
    # CLI: an OverflowError traceback before)
    big = NumberFormat(scale_q=6.478512856971803e+118, scale_k=1.9406825176892104e+189)
    message = ("scale_q·scale_k/sqrt(head_dim) = 1.25727e+308/sqrt(64) is too large: one score "
               "step would span more than the whole probability range")
    with pytest.raises(ValueError, match=rf"^{re.escape(message)}$"):
        big.softmax_constant(64)


# -- derived widths ------------------------------------------------------------------------------

def test_widths_default():
    assert NumberFormat().widths(64, 513) == Widths(
        data=8, product=16, score=22, diff=17, const=16, exp_arg=33, exp_int=5, prob=16,
        keys=513, sum=26, pv=25, acc=34, quotient=8, out=8)


def fits_signed(value, bits):
    return -(2 ** (bits - 1)) <= value <= 2 ** (bits - 1) - 1


def fits_unsigned(value, bits):
    return 0 <= value <= 2 ** bits - 1


WIDTH_CASES = [
    (NumberFormat(), 64, 513),
    (NumberFormat(), 1, 1),
    (NumberFormat(), 3, 7),
    (NumberFormat(), 128, 4096),
    (NumberFormat(data_bits=2, exp_frac_bits=1, prob_bits=4, const_bits=4), 1, 2),
    (NumberFormat(data_bits=16, prob_bits=24, out_bits=32, out_frac_bits=8,
                  scale_q=2 ** -12, scale_k=2 ** -12), 64, 65),
    (NumberFormat(data_bits=12, scale_q=1 / 512, scale_k=1 / 512, out_bits=12), 64, 513),
    (NumberFormat(prob_bits=24, exp_frac_bits=12, const_bits=24), 96, 100_000),
    # small scales: the score range, not d_sat, limits D (used to trip the exp_arg assertion)
    (NumberFormat(scale_q=1 / 256, scale_k=1 / 256), 1, 9),
    (NumberFormat(data_bits=2), 1, 9),
    (NumberFormat(data_bits=4, scale_q=1 / 1024, scale_k=1 / 1024, const_bits=24), 3, 9),
]


@pytest.mark.parametrize(("fmt", "head_dim", "keys"), WIDTH_CASES)
def test_widths_hold_the_extremes(fmt, head_dim, keys):
    """Every intermediate's extreme value, computed from the extreme inputs, fits its width."""
    w = fmt.widths(head_dim, keys)
    const = fmt.softmax_constant(head_dim)
    lo, hi = fmt.data_min, fmt.data_max
    pmax = 2 ** fmt.prob_bits - 1
    assert (w.data, w.const, w.prob, w.keys, w.out) == (
        fmt.data_bits, fmt.const_bits, fmt.prob_bits, keys, fmt.out_bits)
    for product in (lo * lo, lo * hi, hi * hi):
        assert fits_signed(product, w.product)
    s_max, s_min = head_dim * lo * lo, head_dim * lo * hi
    assert fits_signed(s_max, w.score) and fits_signed(s_min, w.score)
    d_max = min(s_max - s_min, const.d_sat)
    assert fits_unsigned(d_max, w.diff)
    assert fits_unsigned(d_max * const.value, w.exp_arg)
    if d_max == const.d_sat:  # then even the rounding addend of step 3 fits (docs/numerics.md)
        assert fits_unsigned(d_max * const.value + 2 ** (const.shift - 1), w.exp_arg)
    assert fits_unsigned(const.value, w.const)
    assert fits_unsigned(fmt.prob_bits, w.exp_int)          # min(x >> F, P) <= P
    assert fits_unsigned(keys * pmax, w.sum)
    assert fits_signed(pmax * lo, w.pv) and fits_signed(pmax * hi, w.pv)
    assert fits_signed(keys * pmax * lo, w.acc) and fits_signed(keys * pmax * hi, w.acc)
    # |o| <= max|v| (a convex combination of the v), scaled by 2^out_frac_bits
    assert fits_signed(lo * 2 ** fmt.out_frac_bits, w.quotient)
    assert fits_signed(hi * 2 ** fmt.out_frac_bits, w.quotient)


@settings(max_examples=200, deadline=None)
@given(b=st.integers(2, 16), p=st.integers(4, 24), f=st.integers(1, 12), c=st.integers(4, 24),
       out_frac=st.integers(0, 16), scale_exp=st.integers(-14, 2), head_dim=st.integers(1, 4096),
       keys=st.integers(1, 2 ** 24))
def test_widths_never_assert(b, p, f, c, out_frac, scale_exp, head_dim, keys):
    """For any legal format, widths() returns or raises ValueError (shift < 1, or > 63 bits); its
    internal overflow assertions never fire (they did for small scales before the fix)."""
    fmt = NumberFormat(data_bits=b, prob_bits=p, exp_frac_bits=f, const_bits=c,
                       out_frac_bits=out_frac, scale_q=2.0 ** scale_exp, scale_k=0.75)
    try:
        w = fmt.widths(head_dim, keys)
    except ValueError:
        return
    assert max(w.exp_arg, w.sum, w.acc + out_frac + 1) <= 63


def test_widths_score_limited_difference():
    """With small scales d_sat exceeds every reachable D; the width follows the score range."""
    fmt = NumberFormat(scale_q=1 / 256, scale_k=1 / 256)
    w = fmt.widths(1, 9)
    assert fmt.softmax_constant(1).d_sat.bit_length() > w.score
    assert w.diff == w.score == 16


def test_widths_63_bit_limit():
    fmt = NumberFormat()
    assert fmt.widths(64, 2 ** 38).acc + fmt.out_frac_bits + 1 == 63
    message = ("this format needs 64-bit intermediates for rows of 274877906945 keys; "
               "at most 63 are supported")
    with pytest.raises(ValueError, match=rf"^{re.escape(message)}$"):
        fmt.widths(64, 2 ** 38 + 1)
    fmt = NumberFormat(data_bits=16, prob_bits=24, out_frac_bits=16)
    message = ("this format needs 77-bit intermediates for rows of 1048576 keys; "
               "at most 63 are supported")
    with pytest.raises(ValueError, match=rf"^{re.escape(message)}$"):
        fmt.widths(64, 2 ** 20)


# -- error bound (the measurement is in test_models.py) ------------------------------------------

def test_error_bound_shape():
    fmt = NumberFormat()
    bound = fmt.error_bound(64, 513)
    assert bound > 0.5                                   # at least the final rounding
    assert fmt.error_bound(64, 1025) >= bound            # more keys, more accumulated error
    assert fmt.replace(prob_bits=20, exp_frac_bits=10).error_bound(64, 513) < bound
    assert fmt.replace(out_frac_bits=4).error_bound(64, 513) > bound  # finer LSB, more LSBs


# -- rounding, quantisation ----------------------------------------------------------------------

def round_half_away_exact(num, den):
    q = Fraction(num, den)
    mag = math.floor(abs(q) + Fraction(1, 2))
    return -mag if q < 0 else mag


def test_round_half_away_exhaustive():
    num = np.arange(-300, 301, dtype=np.int64)[:, None]
    den = np.arange(1, 41, dtype=np.int64)[None, :]
    got = round_half_away(num, den)
    assert got.dtype == np.int64
    assert got.shape == (601, 40)
    expected = [[round_half_away_exact(n, d) for d in range(1, 41)] for n in range(-300, 301)]
    assert got.tolist() == expected


def test_round_half_away_ties_and_large():
    assert round_half_away([5, -5, 7, -7, 1, -1], [2, 2, 2, 2, 2, 2]).tolist() == [
        3, -3, 4, -4, 1, -1]
    big = 2 ** 60 + 3
    assert int(round_half_away(big, 2)) == 2 ** 59 + 2
    assert int(round_half_away(-big, 2)) == -(2 ** 59 + 2)


def test_quantize_rounds_half_away():
    halves = np.arange(-600, 601) / 2                    # every half-integer in ±300 and ints
    got = quantize(halves, 1.0, 12)
    assert got.dtype == np.int64
    assert got.tolist() == [round_half_away_exact(k, 2) for k in range(-600, 601)]
    # just below one half: rounds to zero (0.5 − 2^-54 + 0.5 is 1.0 in float64)
    below = np.nextafter(0.5, 0.0)
    assert quantize([below, -below, np.nextafter(1.5, 0.0)], 1.0, 8).tolist() == [0, 0, 1]
    assert quantize(0.1, 1 / 32, 8) == 3
    assert quantize(-0.109375, 1 / 32, 8) == -4          # −3.5 LSB: away from zero


@pytest.mark.parametrize("bits", [2, 3, 8, 16, 32])
def test_quantize_saturates_symmetrically(bits):
    top = 2 ** (bits - 1) - 1
    got = quantize([1e30, -1e30, top + 0.49, -top - 0.49, top + 0.5, -top - 0.5], 1.0, bits)
    assert got.tolist() == [top, -top, top, -top, top, -top]


def test_quantize_round_trip():
    rng = np.random.default_rng(7)
    x = rng.uniform(-3.9, 3.9, size=(64, 8))
    q = quantize(x, 1 / 32, 8)
    assert q.shape == x.shape
    assert np.abs(dequantize(q, 1 / 32) - x).max() <= 1 / 64
    assert dequantize(np.array([3, -2]), 0.5).tolist() == [1.5, -1.0]
    assert dequantize(5, 0.25).dtype == np.float64


def test_quantize_checks():
    with pytest.raises(ValueError, match=r"^bits must be an integer in 2\.\.32, not 1$"):
        quantize(1.0, 1.0, 1)
    with pytest.raises(TypeError, match=r"^bits must be an integer, not 8\.0$"):
        quantize(1.0, 1.0, 8.0)
    with pytest.raises(ValueError, match=r"^scale must be a positive finite number, not 0$"):
        quantize(1.0, 0, 8)
    with pytest.raises(TypeError, match=r"^scale must be a real number, not '1'$"):
        quantize(1.0, "1", 8)
    for bad in (math.nan, math.inf, -math.inf):
        with pytest.raises(ValueError, match=r"^quantize: input contains NaN or infinity$"):
            quantize([0.0, bad], 1.0, 8)
    with pytest.raises(ValueError, match=r"^scale must be a positive finite number, not -1\.0$"):
        dequantize(1, -1.0)


@pytest.mark.parametrize("scale_k", [6.55256931873846e-306, 1e-320])
def test_softmax_constant_of_tiny_scales_is_refused(scale_k):
    """Found by tests/cli/test_any_input.py: 2.0 ** frac overflowed (a product of 0.0 has no
    log2 at all)."""
    with pytest.raises(ValueError, match=r"^scale_q·scale_k/sqrt\(head_dim\) = .* is too small: "
                                         r"the softmax constant would need more than 64 "
                                         r"fraction bits$"):
        NumberFormat(scale_k=scale_k).softmax_constant(64)
