"""BankedMemory: K/V memories split into banks of one block RAM's depth, registered per bank.

On an ECP5 the core's K and V memories are built of 512-word banks (``RAM_BANK_WORDS``); these
tests give the simulated core 4-word banks (``DspTarget("generic", ram_bank_words=4)``) so that
every ring, global and random memory has several banks and a short last one, and check that
the outputs are the golden model's bit for bit and the cycles the cycle model's: the banks
change no schedule.
"""

import random

import numpy as np
import pytest
from amaranth import Module, Signal, unsigned
from amaranth.sim import Simulator

from swatkit.golden import AttentionSpec, NumberFormat, fixed_point_attention
from swatkit.rtl import CoreParams, HardwareConfig
from swatkit.rtl.units import RAM_BANK_WORDS, BankedMemory, DspTarget, ram_bank_words
from swatkit.sim.amaranth_core import run_core
from swatkit.sim.cycle_model import swat_actions, swat_cycles


@pytest.mark.parametrize(("depth", "bank"), [(10, 4), (8, 4), (3, 4), (9, None), (17, 1)])
def test_banked_memory_reads_as_one_memory(depth, bank):
    """Random writes and reads under random enables: the registered word is the word a read
    port followed by a register gives (read when ``en``, before the same cycle's write), and
    ``collision`` flags a read of the address written in the same cycle."""
    m = Module()
    mem = BankedMemory(m, "mem", unsigned(8), depth, bank)
    wp = mem.write_port()
    raddr, en, reg_en = Signal(range(depth)), Signal(), Signal()
    out = mem.read_registered(raddr, en, reg_en, "out")
    assert len(mem.banks) == (1 if bank is None else -(-depth // bank))
    rng = random.Random(depth)

    async def bench(ctx):
        model = [0] * depth
        rdata = out_model = 0
        for _ in range(400):
            w = (rng.randrange(depth), rng.randrange(256), rng.random() < 0.5)
            r = (rng.randrange(depth), rng.random() < 0.6, rng.random() < 0.6)
            ctx.set(wp.addr, w[0])
            ctx.set(wp.data, w[1])
            ctx.set(wp.en, w[2])
            ctx.set(raddr, r[0])
            ctx.set(en, r[1])
            ctx.set(reg_en, r[2])
            # (the promise of no_rw_check: a read where the same cycle writes is flagged)
            assert ctx.get(mem.collision) == (r[1] and w[2] and r[0] == w[0])
            await ctx.tick()
            # (the register takes the read data of before this edge)
            out_model, rdata = (rdata if r[2] else out_model), (model[r[0]] if r[1] else rdata)
            if w[2]:
                model[w[0]] = w[1]
            assert ctx.get(out) == out_model

    sim = Simulator(m)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()


@pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")
def test_bank_words_must_be_a_power_of_two():
    with pytest.raises(ValueError, match=r"^bank_words must be a power of two, not 6$"):
        BankedMemory(Module(), "mem", unsigned(8), 10, 6)


def test_bank_of_each_target():
    assert ram_bank_words(None) is None
    assert ram_bank_words(DspTarget("generic")) is None
    assert ram_bank_words(DspTarget("ecp5")) == RAM_BANK_WORDS["ecp5"] == 512
    assert ram_bank_words(DspTarget("ecp5", ram_bank_words=8)) == 8


BANKED = DspTarget("generic", ram_bank_words=4)

# (id, core spec, hardware, run pattern changes, N): the ring of each is several 4-word banks
CORES = [
    ("band", AttentionSpec(40, 8, 5, 5), HardwareConfig(2, 4, 40), {}, 40),
    ("causal-kl3", AttentionSpec.causal(33, 6, 7), HardwareConfig(3, 2, 33), {}, 33),
    ("globals-dilation", AttentionSpec(30, 8, 3, 3),
     HardwareConfig(2, 4, 30, max_global_tokens=3, max_dilation=2),
     {"dilation": 2, "global_tokens": (0, 13, 29)}, 30),
    ("bigbird-b4r1", AttentionSpec.bigbird(32, 8, 4, 1, seed=5), HardwareConfig(2, 4, 32),
     {}, 32),
]


@pytest.mark.by_turns("gap")
@pytest.mark.parametrize("gap", [0.0, 0.4], ids=["stall-free", "gaps40"])
@pytest.mark.parametrize(("spec", "hw", "changes", "n"), [c[1:] for c in CORES],
                         ids=[c[0] for c in CORES])
def test_core_with_banked_memories(spec, hw, changes, n, gap):
    p = CoreParams(spec, NumberFormat(), hw)
    assert p.kv_depth > 2 * BANKED.ram_bank_words   # (three banks or more)
    run = p.run_spec(n, **changes) if changes else p.run_spec(n)
    rng = np.random.default_rng(n)
    fmt = p.fmt
    q, k, v = (rng.integers(fmt.data_min, fmt.data_max + 1, size=(n, spec.head_dim))
               for _ in range(3))
    got = run_core(q, k, v, spec, hw=hw, run=run, seed=2, gap=gap, stall=gap,
                   timeout=100_000, platform=BANKED)
    want = fixed_point_attention(q, k, v, run, fmt).out
    np.testing.assert_array_equal(got.out, want)
    acts = swat_actions(p, run)
    assert {key: got.stats[key] for key in acts} == acts
    if gap == 0:
        assert got.stats["cycles"] == swat_cycles(p, n, run=run).cycles
