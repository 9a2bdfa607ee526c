"""The fixed-point number contract of the datapath: formats, derived widths, tables, rounding.

Every stage that handles numbers takes them from here: the bit-exact golden model
(:func:`swatkit.golden.fixed_point_attention`), the RTL (its widths, its exp ROM, its softmax
constant) and the energy model (operand widths). The derivation of every width is written out in
``docs/numerics.md``; :meth:`NumberFormat.widths` is that derivation in code and asserts it.

The datapath of one query row ``i`` (all integers):

1. ``S_ij = Σ_c q_ic·k_jc``  (exact, ``score`` bits, signed)
2. ``m_i = max_j S_ij`` over the row's keys; ``D_ij = min(m_i − S_ij, D_sat)``  (unsigned)
3. ``x_ij = (D_ij·C + 2^(shift−1)) >> shift``  — round half up to ``exp_frac_bits`` fraction
   bits; ``C`` is the unsigned constant ``≈ s_q·s_k·log2(e)/sqrt(d)·2^c_frac``
4. ``p_ij = EXP[x_ij mod 2^F] >> min(x_ij >> F, prob_bits)``  — ``2^-x`` from a table of
   ``2^F`` entries, ``EXP[f] = min(round_half_up(2^P·2^(−f/2^F)), 2^P − 1)``; the shift truncates
5. ``l_i = Σ_j p_ij`` (unsigned), ``acc_ic = Σ_j p_ij·v_jc`` (signed)
6. ``o_ic = sat(round_half_away(acc_ic·2^out_frac_bits / l_i))`` to ``out_bits`` signed

A **learned sink logit** (GPT-OSS; one real value ``z`` per query head, in the units of the
scaled logits ``q·k/sqrt(d)``) is quantised once to a score ``σ = round_half_away(z / u)``,
``u = s_q·s_k/sqrt(d)`` (:meth:`NumberFormat.sink_scores`; it must lie in the scores' range),
and then behaves as one more key with value zero: it joins the row max of step 2
(``m_i = max(max_j S_ij, σ)``) and the sum of step 5 (``l_i = Σ_j p_ij + p_σ``, ``p_σ`` from
steps 2–4 with ``D = m_i − σ``), not ``acc``. :meth:`NumberFormat.row_weights` is steps 2–5
(without ``acc``), sink included: the single definition the golden model uses.

Clamping ``D`` at ``D_sat`` changes no result (every ``D >= D_sat`` already gives ``p = 0``); it
bounds the width of the exp-argument multiplier.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from .checks import ConfigTypeError, ConfigValueError, check_int

__all__ = [
    "NumberFormat",
    "SoftmaxConstant",
    "Widths",
    "dequantize",
    "quantize",
    "round_half_away",
]


def clog2(n: int) -> int:
    """Smallest ``b`` with ``2**b >= n`` (0 for n = 1)."""
    return max(0, (int(n) - 1).bit_length())


# Fraction bits of the softmax constant C: beyond these, a score step moves a probability by
# less than 2^-(64 - const_bits) of its range (and the shifts of the datapath grow with them)
MAX_CONST_FRAC_BITS = 64


def _check_scale(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigTypeError(f"{name} must be a real number, not {value!r}", name)
    if not (math.isfinite(value) and value > 0):
        raise ConfigValueError(f"{name} must be a positive finite number, not {value!r}", name)


def round_half_away(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """``num / den`` rounded to the nearest integer, ties away from zero (integer arrays, den > 0).

    This is the rounding of the deferred normalisation: the divider works on the magnitude
    ``|num|`` and applies the sign afterwards, so ``floor((2·|num| + den) / (2·den))``.
    """
    num = np.asarray(num, dtype=np.int64)
    den = np.asarray(den, dtype=np.int64)
    mag = (2 * np.abs(num) + den) // (2 * den)
    return np.where(num < 0, -mag, mag)


def quantize(x, scale: float, bits: int) -> np.ndarray:
    """Real values to signed ``bits``-bit integers: ``round_half_away(x / scale)``, saturated to
    the symmetric range ``±(2**(bits-1) − 1)``."""
    _check_scale("scale", scale)
    check_int("bits", bits, 2, 32)
    y = np.asarray(x, dtype=np.float64) / scale
    if not np.all(np.isfinite(y)):
        raise ValueError("quantize: input contains NaN or infinity")
    top = 2 ** (bits - 1) - 1
    # floor(|y| + 0.5) would round 0.5 − 2^−54 up (the sum rounds to 1.0); compare the exact
    # fraction |y| − floor(|y|) with one half instead
    mag = np.floor(np.abs(y))
    q = np.sign(y) * (mag + (np.abs(y) - mag >= 0.5))
    return np.clip(q, -top, top).astype(np.int64)


def dequantize(q, scale: float) -> np.ndarray:
    """Integers back to reals: ``q · scale``."""
    _check_scale("scale", scale)
    return np.asarray(q, dtype=np.float64) * scale


@dataclass(frozen=True)
class SoftmaxConstant:
    """The softmax scale ``C ≈ s_q·s_k·log2(e)/sqrt(d)`` as an unsigned fixed-point integer.

    ``value / 2**frac_bits`` approximates the real constant with ``const_bits`` significant bits;
    ``shift = frac_bits − exp_frac_bits`` brings ``D·value`` to the exp table's fraction bits;
    ``d_sat`` is the smallest difference ``D`` whose probability is certainly zero.
    """

    real: float
    value: int
    frac_bits: int
    shift: int
    d_sat: int


@dataclass(frozen=True)
class Widths:
    """Bit widths of every intermediate for one (spec, format) pair. See docs/numerics.md."""

    data: int       # Q, K, V elements, signed
    product: int    # q·k, signed
    score: int      # S = Σ q·k over head_dim, signed
    diff: int       # D = min(m − S, D_sat), unsigned
    const: int      # C, unsigned
    exp_arg: int    # D·C before the rounding shift, unsigned
    exp_int: int    # integer part of x after clamping to prob_bits, unsigned
    prob: int       # p, unsigned
    keys: int       # W = most keys in any row
    sum: int        # l = Σ p, unsigned
    pv: int         # p·v, signed
    acc: int        # Σ p·v, signed
    quotient: int   # round(acc·2^f / l) before saturation, signed
    out: int        # O elements, signed


@dataclass(frozen=True)
class NumberFormat:
    """The fixed-point formats of the attention datapath.

    Parameters
    ----------
    data_bits : int
        Width of the signed Q, K and V elements (2..16).
    prob_bits : int
        Width of the unsigned probabilities ``p`` (UQ0.prob_bits; 4..24).
    exp_frac_bits : int
        Fraction bits of the exp argument; the exp table has ``2**exp_frac_bits`` entries (1..12).
    const_bits : int
        Significant bits of the softmax constant ``C`` (4..24).
    out_bits : int
        Width of the signed output elements (2..32).
    out_frac_bits : int
        Extra fraction bits of O over V: ``scale_o = scale_v / 2**out_frac_bits`` (0..16).
    scale_q, scale_k, scale_v : float
        Real value of one LSB of Q, K and V.

    Raises
    ------
    TypeError
        A field has the wrong type.
    ValueError
        A field is out of range.
    """

    data_bits: int = 8
    prob_bits: int = 16
    exp_frac_bits: int = 6
    const_bits: int = 16
    out_bits: int = 8
    out_frac_bits: int = 0
    scale_q: float = 1 / 32
    scale_k: float = 1 / 32
    scale_v: float = 1 / 32

    LIMITS: ClassVar[dict[str, tuple[int, int]]] = {
        "data_bits": (2, 16),
        "prob_bits": (4, 24),
        "exp_frac_bits": (1, 12),
        "const_bits": (4, 24),
        "out_bits": (2, 32),
        "out_frac_bits": (0, 16),
    }

    def __post_init__(self):
        for name, (lo, hi) in self.LIMITS.items():
            object.__setattr__(self, name, check_int(name, getattr(self, name), lo, hi))
        for name in ("scale_q", "scale_k", "scale_v"):
            _check_scale(name, getattr(self, name))
            object.__setattr__(self, name, float(getattr(self, name)))

    def replace(self, **changes) -> NumberFormat:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    # -- ranges and scales ------------------------------------------------------------------

    @property
    def data_min(self) -> int:
        return -(2 ** (self.data_bits - 1))

    @property
    def data_max(self) -> int:
        return 2 ** (self.data_bits - 1) - 1

    @property
    def out_min(self) -> int:
        return -(2 ** (self.out_bits - 1))

    @property
    def out_max(self) -> int:
        return 2 ** (self.out_bits - 1) - 1

    @property
    def scale_o(self) -> float:
        """Real value of one LSB of O."""
        return self.scale_v / 2 ** self.out_frac_bits

    # -- the constants and tables of the datapath ------------------------------------------

    def exp_table(self) -> np.ndarray:
        """``EXP[f] = min(round_half_up(2^P · 2^(−f / 2^F)), 2^P − 1)`` for ``f < 2^F``."""
        f = np.arange(2 ** self.exp_frac_bits, dtype=np.float64)
        table = np.floor(2.0 ** (self.prob_bits - f / 2 ** self.exp_frac_bits) + 0.5)
        return np.minimum(table, 2 ** self.prob_bits - 1).astype(np.int64)

    def softmax_constant(self, head_dim: int) -> SoftmaxConstant:
        """The constant ``C`` for a head of width ``head_dim`` (see :class:`SoftmaxConstant`)."""
        real = self.scale_q * self.scale_k * math.log2(math.e) / math.sqrt(head_dim)
        if not math.isfinite(real):   # (two finite scales whose product overflows a float)
            raise ConfigValueError(
                f"scale_q·scale_k/sqrt(head_dim) = {self.scale_q * self.scale_k:.6g}/"
                f"sqrt({head_dim}) is too large: one score step would span more than the whole "
                "probability range")
        frac = (self.const_bits - 1 - math.floor(math.log2(real)) if real > 0
                else MAX_CONST_FRAC_BITS + 1)
        if frac > MAX_CONST_FRAC_BITS:  # (the product of two tiny scales may even be 0.0)
            raise ConfigValueError(
                f"scale_q·scale_k/sqrt(head_dim) = {real / math.log2(math.e):.6g} is too small: "
                f"the softmax constant would need more than {MAX_CONST_FRAC_BITS} fraction bits")
        value = round(real * 2.0 ** frac)
        if value >= 2 ** self.const_bits:  # rounding carried into a new bit
            frac -= 1
            value = round(real * 2.0 ** frac)
        shift = frac - self.exp_frac_bits
        if shift < 1:
            raise ConfigValueError(
                f"scale_q·scale_k/sqrt(head_dim) = {real / math.log2(math.e):.6g} is too large: "
                "one score step would span more than the whole probability range")
        # D·value >= (prob_bits + 1)·2^frac  ⇒  x >= (prob_bits + 1)·2^F  ⇒  p = 0
        limit = (self.prob_bits + 1) << frac
        d_sat = -(-limit // value)
        return SoftmaxConstant(real, value, frac, shift, d_sat)

    def probabilities(self, diff, head_dim: int) -> np.ndarray:
        """Steps 2–4 for differences ``D = m − S >= 0`` (integer array): the probabilities ``p``.

        ``x = (min(D, D_sat)·C + 2^(shift−1)) >> shift`` (round half up), then
        ``p = EXP[x mod 2^F] >> min(x >> F, prob_bits)`` (the shift truncates).
        """
        const = self.softmax_constant(head_dim)
        frac = self.exp_frac_bits
        d = np.minimum(np.asarray(diff, dtype=np.int64), const.d_sat)
        x = (d * const.value + (1 << (const.shift - 1))) >> const.shift
        return self.exp_table()[x & ((1 << frac) - 1)] >> np.minimum(x >> frac, self.prob_bits)

    def score_unit(self, head_dim: int) -> float:
        """The real scaled logit ``q·k/sqrt(d)`` of one score LSB: ``s_q·s_k/sqrt(head_dim)``."""
        return self.scale_q * self.scale_k / math.sqrt(head_dim)

    def score_range(self, head_dim: int) -> tuple[int, int]:
        """The least and the greatest score ``S = Σ q·k`` of legal inputs:
        ``−d·2^(b−1)·(2^(b−1) − 1)`` and ``d·2^(2b−2)``."""
        half = 2 ** (self.data_bits - 1)
        return -head_dim * half * (half - 1), head_dim * half * half

    def sink_scores(self, sink_logits, head_dim: int) -> np.ndarray:
        """Learned sink logits (real, in units of ``q·k/sqrt(d)``) to integer scores:
        ``σ = round_half_away(z / score_unit)``, int64, one per value.

        Raises
        ------
        ValueError
            A value is NaN or infinite, or ``σ`` lies outside :meth:`score_range` (then the
            widths of steps 2–3 would not hold).
        """
        z = np.asarray(sink_logits, dtype=np.float64)
        if not np.all(np.isfinite(z)):
            raise ValueError("sink_logits contains NaN or infinity")
        y = z / self.score_unit(head_dim)
        mag = np.floor(np.abs(y))   # round half away, as quantize() (exact fraction test)
        sigma = np.sign(y) * (mag + (np.abs(y) - mag >= 0.5))
        lo, hi = self.score_range(head_dim)
        bad = (sigma < lo) | (sigma > hi)
        if bad.any():
            i = int(np.argmax(bad.reshape(-1)))
            unit = self.score_unit(head_dim)
            raise ValueError(
                f"sink logit {float(z.reshape(-1)[i]):.6g} (head {i}) is outside the scores' "
                f"range [{lo * unit:.6g}, {hi * unit:.6g}] of this format (head_dim "
                f"{head_dim})")
        return sigma.astype(np.int64)

    def row_weights(self, scores, valid, head_dim: int, sink=None):
        """Steps 2–5 for rows of integer ``scores`` (``valid`` marks each row's keys): returns
        ``(p, m, l)``, the probabilities (0 where not valid), the row max ``m_i`` and the sum
        ``l_i``. A sink score ``sink`` (an integer from :meth:`sink_scores`, or None) joins the
        max and the sum and no ``acc``:
        ``m = max(max_valid S, σ)``, ``l = Σ p + p_σ``."""
        s = np.asarray(scores, dtype=np.int64)
        m = np.where(valid, s, np.iinfo(np.int64).min).max(axis=1)
        if sink is not None:
            m = np.maximum(m, sink)
        p = np.where(valid, self.probabilities(m[:, None] - s, head_dim), 0)
        total = p.sum(axis=1)
        if sink is not None:
            total = total + self.probabilities(m - sink, head_dim)
        return p, m, total

    def normalise(self, acc, total) -> np.ndarray:
        """Step 6: ``sat(round_half_away(acc·2^out_frac_bits / total))`` to ``out_bits``."""
        o = round_half_away(np.asarray(acc, dtype=np.int64) << self.out_frac_bits, total)
        return np.clip(o, self.out_min, self.out_max)

    def widths(self, head_dim: int, keys: int, sink: bool = False) -> Widths:
        """Derive every intermediate width for rows of ``keys`` keys of width ``head_dim``
        (``sink``: with a learned sink logit, one more term of ``l``).

        Raises ``ValueError`` if an intermediate would exceed 63 bits (the golden model computes in
        int64).
        """
        bits, p, f = self.data_bits, self.prob_bits, self.out_frac_bits
        const = self.softmax_constant(head_dim)
        score = 2 * bits + clog2(head_dim)
        diff = min(score, const.d_sat.bit_length())
        exp_arg = diff + self.const_bits
        w = Widths(
            data=bits,
            product=2 * bits,
            score=score,
            diff=diff,
            const=self.const_bits,
            exp_arg=exp_arg,
            exp_int=clog2(p + 1),
            prob=p,
            keys=keys,
            sum=p + clog2(keys + sink),
            pv=p + 1 + bits,
            acc=p + bits + clog2(keys),
            quotient=bits + f,
            out=self.out_bits,
        )
        # No intermediate can overflow for any legal input (docs/numerics.md):
        max_abs_q = 2 ** (bits - 1)
        assert head_dim * max_abs_q ** 2 <= 2 ** (w.score - 1) - 1
        # D = m − S <= max S − min S = d·2^(bits−1)·(2^bits − 1), and D <= d_sat after the clamp
        d_max = min(const.d_sat, head_dim * max_abs_q * (2 * max_abs_q - 1))
        assert d_max < 2 ** w.diff
        assert d_max * const.value < 2 ** w.exp_arg
        # a sink score lies in the scores' range (sink_scores), so D = m − σ obeys d_max too
        assert (keys + sink) * (2 ** p - 1) < 2 ** w.sum
        assert keys * (2 ** p - 1) * max_abs_q < 2 ** (w.acc - 1)
        assert (max_abs_q << f) <= 2 ** (w.quotient - 1)  # |o| <= max|v|: a convex combination
        widest = max(w.exp_arg, w.sum, w.acc + f + 1)
        if widest > 63:
            raise ConfigValueError(
                f"this format needs {widest}-bit intermediates for rows of {keys} keys; "
                "at most 63 are supported")
        return w

    def error_bound(self, head_dim: int, keys: int, sink: bool = False) -> float:
        """Worst-case ``|o_fixed − o_float|`` in output LSBs (``scale_o``), for rows of at most
        ``keys`` keys, when no output saturates; ``sink``: with a learned sink logit (one more
        weight, of value 0; the float model takes the dequantised logit ``σ·score_unit``, as it
        takes the dequantised Q, K, V). Derived in docs/numerics.md."""
        const = self.softmax_constant(head_dim)
        p = self.prob_bits
        # exp-argument error: C rounded to frac_bits, x rounded to exp_frac_bits, D < d_sat
        eps = const.d_sat * abs(const.value / 2 ** const.frac_bits - const.real) \
            + 2.0 ** -(self.exp_frac_bits + 1)
        r = 2.0 ** eps - 1          # relative error of each probability
        eta = 2.0 ** (1 - p)        # absolute error of each probability (table round, shift)
        w_eta = (keys + sink) * eta
        floor_a = 1 - 2.0 ** -p     # the row's maximum always has p = 2^P − 1

        def ratio(big_b: float) -> float:
            return (r * big_b + w_eta) / max(big_b * (1 - r) - w_eta, floor_a)

        # (r·B + W·η) / max(B(1−r) − W·η, 1 − 2^−P) is monotone on each side of its breakpoint
        corner = (floor_a + w_eta) / (1 - r)
        worst = max(ratio(1.0), ratio(max(corner, 1.0)), r / (1 - r))
        v_half_range = 2 ** (self.data_bits - 1)
        return 0.5 + 2 * v_half_range * 2 ** self.out_frac_bits * worst
