"""Datapath units in Amaranth's simulator against the golden steps of the numeric contract.

Exp2 is checked exhaustively over every difference up to past the clamp for small formats;
Divider exhaustively over all accumulators for small sums, and on random and extreme values for
the default format. Both run under seeded random input gaps and output stalls.
"""

import random

import numpy as np
import pytest
from amaranth.sim import Simulator

from swatkit.golden import NumberFormat
from swatkit.rtl.units import EXP_LATENCY, Divider, Exp2, divider_latency
from swatkit.sim.streams import stream_get, stream_put


def run_unit(dut, beats, seed, gap=0.3, stall=0.3):
    got = []

    async def put(ctx):
        await stream_put(ctx, dut.i, beats, rng=random.Random(seed), gap=gap)

    async def get(ctx):
        got.extend(await stream_get(ctx, dut.o, len(beats), rng=random.Random(seed + 1),
                                    stall=stall))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(put)
    sim.add_testbench(get)
    sim.run()
    return got


EXP_FORMATS = [
    (NumberFormat(prob_bits=8, exp_frac_bits=3, scale_q=0.25, scale_k=0.25), 4),
    (NumberFormat(prob_bits=12, exp_frac_bits=5, const_bits=10, scale_q=0.125, scale_k=0.25),
     16),
    (NumberFormat(prob_bits=16, exp_frac_bits=6, scale_q=0.5, scale_k=0.5), 64),
]


@pytest.mark.parametrize(("fmt", "head_dim"), EXP_FORMATS)
def test_exp2_exhaustive(fmt, head_dim):
    lanes = 2
    d_sat = fmt.softmax_constant(head_dim).d_sat
    diffs = np.arange(d_sat + 8)
    if len(diffs) % lanes:
        diffs = np.append(diffs, 0)
    assert len(diffs) < 5000  # exhaustive must stay fast
    dut = Exp2(fmt, head_dim, lanes=lanes, diff_bits=int(diffs.max()).bit_length())
    beats = [dut.i.payload.shape().const([int(x) for x in pair])
             for pair in diffs.reshape(-1, lanes)]
    got = np.array([[int(b[k]) for k in range(lanes)] for b in run_unit(dut, beats, 11)])
    want = fmt.probabilities(diffs, head_dim).reshape(-1, lanes)
    np.testing.assert_array_equal(got, want)
    assert want.max() == 2 ** fmt.prob_bits - 1 and want.min() == 0  # the range is covered


def test_exp2_default_format_random_and_edges():
    fmt, head_dim = NumberFormat(), 64
    d_sat = fmt.softmax_constant(head_dim).d_sat
    rng = np.random.default_rng(5)
    diffs = np.concatenate([np.arange(64), d_sat + np.arange(-32, 32),
                            rng.integers(0, 2 ** 20, 1000), [2 ** 20 - 1]])
    dut = Exp2(fmt, head_dim, lanes=1, diff_bits=20)
    got = [int(b[0]) for b in run_unit(dut, [dut.i.payload.shape().const([int(x)])
                                             for x in diffs], 3)]
    np.testing.assert_array_equal(got, fmt.probabilities(diffs, head_dim))


DIV_FORMATS = [
    NumberFormat(data_bits=3, prob_bits=4),
    NumberFormat(data_bits=3, prob_bits=4, out_frac_bits=2, out_bits=4),  # saturates
    NumberFormat(data_bits=4, prob_bits=4, out_frac_bits=1),
]


@pytest.mark.parametrize("fmt", DIV_FORMATS)
def test_divider_exhaustive_small(fmt):
    """Every (acc, l) with l in a few sums of up to 3 keys and every reachable acc."""
    keys, big = 3, 2 ** (fmt.data_bits - 1)
    sum_bits, acc_bits = fmt.prob_bits + 2, fmt.prob_bits + fmt.data_bits + 2
    cases = [(a, total) for total in (1, 2, 7, 15, 16, 31, keys * (2 ** fmt.prob_bits - 1))
             for a in range(-total * big, total * (big - 1) + 1)]
    dut = Divider(fmt, acc_bits, sum_bits, lanes=1)
    beats = [dut.i.payload.shape().const({"acc": [a], "total": t}) for a, t in cases]
    got = [int(b[0]) for b in run_unit(dut, beats, 7)]
    acc, total = np.array(cases).T
    np.testing.assert_array_equal(got, fmt.normalise(acc, total))


def test_divider_default_format_random_and_extremes():
    fmt, lanes = NumberFormat(), 4
    w = fmt.widths(64, 513)
    rng = np.random.default_rng(9)
    totals = np.concatenate([[2 ** 16 - 1, w.keys * (2 ** 16 - 1)],
                             rng.integers(2 ** 16 - 1, w.keys * (2 ** 16 - 1), 300)])
    beats, want = [], []
    for t in totals:
        accs = [int(-t * 128), int(t * 127), 0, int(rng.integers(-t * 128, t * 127 + 1))]
        beats.append({"acc": accs, "total": int(t)})
        want.append(fmt.normalise(np.array(accs), int(t)))
    dut = Divider(fmt, w.acc, w.sum, lanes=lanes)
    got = run_unit(dut, [dut.i.payload.shape().const(b) for b in beats], 13)
    np.testing.assert_array_equal([[int(b[k]) for k in range(lanes)] for b in got], want)


def test_latencies():
    """The pipeline depths the core's schedule relies on."""
    assert EXP_LATENCY == 4
    assert divider_latency(NumberFormat(out_frac_bits=3)) == 8 + 3 + 2
