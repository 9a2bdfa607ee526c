"""The project's LFSR (rtl/lfsr.py): the HDL step against its NumPy twin, and the block-wise
bit stream against the plain sequence."""

import numpy as np
import pytest
from amaranth import Module, Signal
from amaranth.sim import Simulator

from swatkit.rtl.lfsr import LFSR_TAPS, lfsr_bits, lfsr_seed, lfsr_sequence, lfsr_step_hdl


@pytest.mark.parametrize("seed", [0xDEADBEEF, 0, 1 << 40 | 5])
def test_hdl_step_is_the_numpy_sequence(seed):
    m = Module()
    state = Signal(32, init=lfsr_seed(seed))
    m.d.sync += state.eq(lfsr_step_hdl(state))
    got = []

    async def tb(ctx):
        for _ in range(300):
            got.append(ctx.get(state))
            await ctx.tick()

    sim = Simulator(m)
    sim.add_clock(1e-8)
    sim.add_testbench(tb)
    sim.run()
    want = lfsr_sequence(seed, 300)
    assert got == want.tolist() and len(set(got)) == 300
    assert want[0] == (seed & 0xFFFFFFFF or 1)   # a seed of 0 loads as 1


@pytest.mark.parametrize("count", [1, 63, 64, 65, 4097, 20000])
def test_bits_are_bit_zero_of_the_states(count):
    np.testing.assert_array_equal(lfsr_bits(0x1234, count), lfsr_sequence(0x1234, count) & 1)


def test_taps_are_the_stated_polynomial():
    # x^32 + x^30 + x^26 + x^25 + 1 in Galois form: bit 31 - (32 - k) for the terms x^k, k < 32
    assert sum(1 << (k - 1) for k in (32, 30, 26, 25)) == LFSR_TAPS
