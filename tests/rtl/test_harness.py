"""The HDL stream harness (rtl/harness.py) in Amaranth's simulator: its sources and sink keep the
stream rule, lose and reorder nothing, its LFSR matches its NumPy twin, its protocol check bites,
and the whole harness around a SwatCore is bit-exact to the golden model."""

import random
import re

import numpy as np
import pytest
from amaranth import Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.sim import Simulator
from hypothesis import given, settings
from hypothesis import strategies as st

from swatkit.golden import AttentionSpec, NumberFormat, fixed_point_attention
from swatkit.rtl import CoreParams, HardwareConfig, SwatCore, core_layouts
from swatkit.rtl.controls import burst_threshold, pack_rows, probability_threshold, unpack_rows
from swatkit.rtl.core import command, core_signature
from swatkit.rtl.harness import Lfsr, RowSink, RowSource, SwatHarness
from swatkit.rtl.lfsr import lfsr_sequence

ROW = data.ArrayLayout(8, 4)


def test_lfsr_matches_numpy():
    m = Module()
    seed, load = Signal(32), Signal()
    lfsr = Lfsr(m, seed, load, "t")
    got = []

    async def tb(ctx):
        ctx.set(seed, 0xDEADBEEF)
        ctx.set(load, 1)
        await ctx.tick()
        ctx.set(load, 0)
        for _ in range(200):
            got.append(ctx.get(lfsr.state))
            await ctx.tick()

    sim = Simulator(m)
    sim.add_clock(1e-8)
    sim.add_testbench(tb)
    sim.run()
    assert got == lfsr_sequence(0xDEADBEEF, 200).tolist()
    assert len(set(got)) == 200


def _source_to_sink(src):
    """A module with ``src`` feeding a :class:`RowSink` of as many rows (named ``k``)."""
    sink = RowSink(ROW, src.depth, name="k")
    m = Module()
    m.submodules.src, m.submodules.sink = src, sink
    wiring.connect(m, src.o, sink.i)
    return m, src, sink


def _load(ctx, src, sink, values):
    """The source's rows ``values`` and both units' row count, before a start."""
    for i, row in enumerate(values):
        ctx.set(src.mem.data[i], [int(x) for x in row])
    for unit in (src, sink):
        ctx.set(unit.count, len(values))


@pytest.mark.parametrize(("gap", "stall"), [(0.0, 0.0), (0.3, 0.3), (0.8, 0.1), (0.1, 0.8)])
def test_source_to_sink_keeps_the_stream_rule(gap, stall):
    """Source → sink: every row arrives once, in order; an offered row is held unchanged until
    taken (checked here on every cycle, and by the sink's own check); the idle fraction follows
    the probabilities."""
    rows = 300
    m, src, sink = _source_to_sink(RowSource(ROW, rows, name="s"))
    values = np.random.default_rng(1).integers(0, 256, size=(rows, 4))
    offered_cycles = []

    async def tb(ctx):
        _load(ctx, src, sink, values)
        ctx.set(src.gap, probability_threshold(gap))
        ctx.set(sink.stall, probability_threshold(stall))
        ctx.set(src.seed, 3)
        ctx.set(sink.seed, 4)
        ctx.set(src.start, 1)
        ctx.set(sink.start, 1)
        await ctx.tick()
        ctx.set(src.start, 0)
        ctx.set(sink.start, 0)
        pending = None
        for _ in range(20_000):
            valid, ready, payload = (ctx.get(src.o.valid), ctx.get(src.o.ready),
                                     ctx.get(src.o.payload))
            if pending is not None:
                assert valid and payload == pending, "an offered row changed or was withdrawn"
            pending = payload if valid and not ready else None
            offered_cycles.append(valid)
            await ctx.tick()
            if ctx.get(sink.received) == rows:
                break
        assert ctx.get(src.sent) == rows == ctx.get(sink.received)
        assert not ctx.get(sink.violation)
        got = [[int(x) for x in ctx.get(sink.mem.data[i])] for i in range(rows)]
        assert got == values.tolist()

    sim = Simulator(m)
    sim.add_clock(1e-8)
    sim.add_testbench(tb)
    sim.run()
    if gap == stall == 0:
        assert sum(offered_cycles) >= rows and len(offered_cycles) <= rows + 5  # one a cycle


@pytest.mark.parametrize("drop_row", [0, 7, 39])
def test_source_drops_valid_once_when_asked(drop_row):
    """A source built with ``drop_fault`` and ``drop`` high breaks the rule exactly once: in the
    first cycle the sink is ready for row ``drop_row`` after it was offered and not taken, valid
    is low (the payload the row's complement); the row is offered again after it, and every
    row still arrives once, in order. The sink's own check sees the withdrawal. (The sink here
    is ready only in a row's second offered cycle, as the core's K/V copier of two-word rows
    is: its ``hold`` is driven from the cycle before.)"""
    rows = 40
    m, src, sink = _source_to_sink(RowSource(ROW, rows, name="s", drop_fault=True))
    values = np.random.default_rng(drop_row).integers(0, 256, size=(rows, 4))
    withdrawn = []

    async def tb(ctx):
        _load(ctx, src, sink, values)
        ctx.set(src.drop, 1)
        ctx.set(src.drop_row, drop_row)
        ctx.set(src.start, 1)
        ctx.set(sink.start, 1)
        await ctx.tick()
        ctx.set(src.start, 0)
        ctx.set(sink.start, 0)
        pending = None
        for cycle in range(5_000):
            ctx.set(sink.hold, pending is None)   # (ready in the second cycle of an offer)
            valid, ready, payload = (ctx.get(src.o.valid), ctx.get(src.o.ready),
                                     ctx.get(src.o.payload))
            if pending is not None and not valid:   # withdrawn before it was taken
                withdrawn.append((cycle, ctx.get(src.sent), ready,
                                  payload == [~x & 0xFF for x in pending]))
            pending = payload if valid and not ready else None
            await ctx.tick()
            if ctx.get(sink.received) == rows:
                break
        assert ctx.get(src.sent) == rows == ctx.get(sink.received)
        assert ctx.get(src.drop_fired) and ctx.get(sink.violation)
        got = [[int(x) for x in ctx.get(sink.mem.data[i])] for i in range(rows)]
        assert got == values.tolist()

    sim = Simulator(m)
    sim.add_clock(1e-8)
    sim.add_testbench(tb)
    sim.run()
    assert [w[1:] for w in withdrawn] == [(drop_row, 1, True)]


class _BadProducer(wiring.Component):
    """Offers a row and withdraws (or changes) it before it is taken."""

    o: Out(stream.Signature(ROW))
    change: In(1)

    def elaborate(self, platform):
        m = Module()
        count = Signal(8)
        m.d.sync += count.eq(count + 1)
        m.d.comb += self.o.valid.eq(count[1] | self.change)
        m.d.comb += self.o.payload.eq(Mux(self.change, count, 5))
        return m


@pytest.mark.parametrize("change", [0, 1])
def test_sink_catches_a_producer_that_breaks_the_rule(change):
    bad, sink = _BadProducer(), RowSink(ROW, 16, name="k")
    m = Module()
    m.submodules.bad, m.submodules.sink = bad, sink
    wiring.connect(m, bad.o, sink.i)

    async def tb(ctx):
        ctx.set(bad.change, change)
        ctx.set(sink.stall, probability_threshold(0.5))
        ctx.set(sink.count, 16)
        await ctx.tick().repeat(100)
        assert ctx.get(sink.violation)

    sim = Simulator(m)
    sim.add_clock(1e-8)
    sim.add_testbench(tb)
    sim.run()


def test_harness_around_the_core_is_bit_exact():
    """The harness with an Amaranth SwatCore (the board self-test's arrangement): one run under
    30 % gaps and stalls equals the golden model; counters agree."""
    spec, fmt, hw = AttentionSpec(64, 8, 4, 4), NumberFormat(), HardwareConfig(2, 4, 64)
    p = CoreParams(spec, fmt, hw)
    h = SwatHarness(p, SwatCore(spec, fmt, hw))
    n = 40
    rng = np.random.default_rng(2)
    q, k, v = (rng.integers(-128, 128, size=(n, 8)) for _ in range(3))
    expected = fixed_point_attention(q, k, v, AttentionSpec(n, 8, 4, 4), fmt).out

    async def tb(ctx):
        for i in range(n):
            ctx.set(h.q_src.mem.data[i], [int(x) for x in q[i]])
            ctx.set(h.kv_src.mem.data[i], {"k": [int(x) for x in k[i]],
                                           "v": [int(x) for x in v[i]]})
        ctx.set(h.q_count, n)
        ctx.set(h.kv_count, n)
        for s in (h.q_gap, h.kv_gap, h.o_stall):
            ctx.set(s, probability_threshold(0.3))
        ctx.set(h.seed, random.Random(5).getrandbits(32))
        ctx.set(h.start, 1)
        await ctx.tick()
        ctx.set(h.start, 0)
        ctx.set(h.cmd.valid, 1)
        ctx.set(h.cmd.payload, core_layouts(p)["cmd"].const(command(p, seq_len=n)))
        await ctx.tick().until(h.cmd.ready)
        ctx.set(h.cmd.valid, 0)
        await ctx.tick().until(h.o_rows == n)
        await ctx.tick().repeat(5)
        got = [[int(x) for x in ctx.get(h.o_sink.mem.data[i])] for i in range(n)]
        assert got == expected.tolist()
        stats = ctx.get(h.stats)
        assert stats.rows_out == stats.q_rows == stats.kv_rows == n
        assert stats.cycles == ctx.get(h.busy_cycles) > 0
        assert not ctx.get(h.violation) and not ctx.get(h.busy)

    sim = Simulator(h)
    sim.add_clock(1e-8)
    sim.add_testbench(tb)
    sim.run()


@settings(max_examples=50, deadline=None)
@given(st.integers(2, 16), st.integers(1, 9), st.data())
def test_pack_rows_round_trip(bits, elements, draw):
    rows = draw.draw(st.lists(st.lists(st.integers(-(1 << (bits - 1)), (1 << (bits - 1)) - 1),
                                       min_size=elements, max_size=elements),
                              min_size=1, max_size=5))
    words = pack_rows(np.array(rows), bits)
    assert unpack_rows(words, elements, bits).tolist() == rows
    # the layout's own packing: element j at bits j·bits
    layout = data.ArrayLayout(bits, elements)
    for row, word in zip(rows, words, strict=True):
        value = int.from_bytes(word.tobytes(), "little")
        assert value == layout.const([x & ((1 << bits) - 1) for x in row]).as_value().value


def test_probability_threshold_is_checked():
    with pytest.raises(ValueError, match=r"^probability must be in \[0, 1\), not 1\.0$"):
        probability_threshold(1.0)
    assert probability_threshold(0.5) == 32768


# -- faults: bursty back-pressure, the stream watch, commands during a run -----------------------


def _off_states(seed: int, threshold: int, cycles: int) -> np.ndarray:
    """The NumPy twin of a stream's on/off process: off in cycle t (t = 0 the first cycle after
    ``start``) when an odd number of the switch draws before it fell below ``threshold``."""
    states = lfsr_sequence(seed, cycles)
    switches = (states >> 16) < threshold
    return np.concatenate([[0], np.cumsum(switches[:-1]) % 2]).astype(bool)


@pytest.mark.parametrize("role", ["source", "sink"])
def test_bursts_follow_the_lfsr_twin(role):
    """Bursty back-pressure: a source offers (a sink accepts) exactly in the cycles the NumPy
    twin of its on/off process is on; the runs average the mean asked for."""
    rows, cycles, mean, seed = 4000, 3000, 50, 0x1234567
    unit = (RowSource(ROW, rows, name="s") if role == "source" else RowSink(ROW, rows, name="k"))
    port = unit.o if role == "source" else unit.i
    seen = []

    async def tb(ctx):
        ctx.set(unit.count, rows)
        ctx.set(unit.burst, burst_threshold(mean))
        ctx.set(unit.seed, seed)
        ctx.set(unit.start, 1)
        await ctx.tick()
        ctx.set(unit.start, 0)
        ctx.set(port.ready if role == "source" else port.valid, 1)
        for _ in range(cycles):
            seen.append(ctx.get(port.valid if role == "source" else port.ready))
            await ctx.tick()

    sim = Simulator(unit)
    sim.add_clock(1e-8)
    sim.add_testbench(tb)
    sim.run()
    on = ~_off_states(seed, burst_threshold(mean), cycles)
    seen = np.array(seen, dtype=bool)
    first = 3 if role == "source" else 0   # (the source's rows are read ahead first)
    assert (seen[first:] == on[first:]).all()
    switches = np.count_nonzero(np.diff(on.astype(int)))
    assert 0.7 * mean <= cycles / (switches + 1) <= 1.4 * mean
    assert on.mean() < 0.8 and (~on).mean() < 0.8   # long runs of both kinds


def test_burst_threshold_is_checked():
    with pytest.raises(ValueError, match=r"^mean burst length must be in \[2, 65536\] cycles, "
                       r"not 1$"):
        burst_threshold(1)
    assert burst_threshold(2) == 32768 and burst_threshold(65536) == 1


class _GreedyCore(wiring.Component):
    """A SwatCore whose command port is always ready: it takes a command while busy (the fault
    the harness's ``cmd_busy`` flags)."""

    def __init__(self, spec, fmt, hw):
        self.inner = SwatCore(spec, fmt, hw)
        super().__init__(core_signature(self.inner.params))

    def elaborate(self, platform):
        m = Module()
        m.submodules.inner = self.inner
        for (_, member, mine), (_, _, theirs) in zip(
                self.signature.flatten(self), self.inner.signature.flatten(self.inner),
                strict=True):
            m.d.comb += theirs.eq(mine) if member.flow == In else mine.eq(theirs)
        m.d.comb += self.cmd.ready.eq(1)
        return m


@pytest.mark.parametrize("greedy", [False, True])
def test_harness_watches_streams_and_commands_during_a_run(greedy):
    """A command offered during a run: the core takes it on the first idle cycle (``cmd_moved``),
    never while busy (``cmd_busy``, which a core that takes it while busy sets); each stream's
    ``moved`` is the cycle of its last transfer and ``flow`` its valid and ready."""
    spec, fmt, hw = AttentionSpec(32, 4, 1, 1), NumberFormat(), HardwareConfig(3, 4, 32)
    p = CoreParams(spec, fmt, hw)
    h = SwatHarness(p, (_GreedyCore if greedy else SwatCore)(spec, fmt, hw), depth=64)
    n = 20
    rng = np.random.default_rng(3)
    q, k, v = (rng.integers(-128, 128, size=(2 * n, 4)) for _ in range(3))
    cmd = core_layouts(p)["cmd"].const(command(p, seq_len=n))
    last = {"q": -1, "o": -1}

    async def tb(ctx):
        for i in range(2 * n):
            ctx.set(h.q_src.mem.data[i], [int(x) for x in q[i]])
            ctx.set(h.kv_src.mem.data[i], {"k": [int(x) for x in k[i]],
                                           "v": [int(x) for x in v[i]]})
        ctx.set(h.q_count, 2 * n)
        ctx.set(h.kv_count, 2 * n)
        ctx.set(h.q_gap, probability_threshold(0.3))
        ctx.set(h.o_burst, burst_threshold(8))
        ctx.set(h.start, 1)
        await ctx.tick()
        ctx.set(h.start, 0)
        ctx.set(h.cmd.valid, 1)
        ctx.set(h.cmd.payload, cmd)
        await ctx.tick().until(h.cmd.ready)
        await ctx.tick().repeat(5)   # the second command, offered while the first run goes on
        assert ctx.get(h.busy)
        def watch():
            """This cycle's transfers (each stream's ``flow`` checked against its ports)."""
            for name, port in (("q", h.q_src.o), ("o", h.o_sink.i)):
                flow = ctx.get(port.valid) | ctx.get(port.ready) << 1
                assert ctx.get(getattr(h, f"{name}_flow")) == flow
                if flow == 3:
                    last[name] = ctx.get(h.cycles)

        idle = None
        for _ in range(3000):
            watch()
            if idle is None and not ctx.get(h.busy):
                idle = ctx.get(h.cycles)
            if ctx.get(h.cmd.ready) and not (ctx.get(h.busy) and not greedy):
                break
            await ctx.tick()
        await ctx.tick()
        ctx.set(h.cmd.valid, 0)
        assert ctx.get(h.cmd_busy) == greedy
        if not greedy:
            assert ctx.get(h.cmd_moved) == idle
        for _ in range(3000):
            watch()
            if not ctx.get(h.busy):
                break
            await ctx.tick()
        await ctx.tick().repeat(3)
        assert (ctx.get(h.q_moved), ctx.get(h.o_moved)) == (last["q"], last["o"])
        assert min(last.values()) > 0

    sim = Simulator(h)
    sim.add_clock(1e-8)
    sim.add_testbench(tb)
    sim.run()


@pytest.mark.parametrize("depth", [1, 2, 5, 16, 700])
@pytest.mark.parametrize("role", ["source", "sink"])
def test_verilog_rows_form(role, depth):
    """``verilog_rows=True`` (the Verilog the regression compiles): the unit's memory is one
    instance ``<name>_rows`` of ``swat_rows_mem`` with its width, depth and address bits, no
    Amaranth memory (no per-row initial contents), ``mem_attrs`` on the instance, and the same
    ports as the default form."""
    from amaranth.back import verilog
    from amaranth.hdl import Fragment

    from swatkit.rtl.harness import ROWS_MEM, ROWS_MEM_VERILOG

    make = RowSource if role == "source" else RowSink
    unit = make(ROW, depth, name="s", verilog_rows=True, mem_attrs={"keep": 1})
    plain = make(ROW, depth, name="s")
    assert unit.mem is None and plain.mem is not None
    assert unit.signature == plain.signature
    Fragment.get(plain, None)   # (elaborated: no "never used" warning)
    text = verilog.convert(unit, name="unit", emit_src=False)
    abits = max(1, (depth - 1).bit_length())
    assert text.count(f"  {ROWS_MEM} #(") == 1
    assert (f"  (* keep = 32'd1 *)\n  {ROWS_MEM} #(\n    .ABITS(32'd{abits}),\n"
            f"    .DEPTH(32'd{depth}),\n    .WIDTH(32'd{ROW.size})\n  ) s_rows (\n") in text
    port = ".raddr(rptr" if role == "source" else ".waddr(received"
    assert port in text
    arrays = re.findall(r"reg \[\d+:0\] \S+ \[(\d+):0\];", text)   # (the FIFO's 3 rows)
    assert [int(n) for n in arrays] == ([2] if role == "source" else [])
    assert f"module {ROWS_MEM} #(parameter WIDTH" in ROWS_MEM_VERILOG
