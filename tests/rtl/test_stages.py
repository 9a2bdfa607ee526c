"""The core's stages, each simulated alone in Amaranth's simulator through its stated ports.

The whole core is checked against the golden model in test_core.py / test_patterns.py; here each
stage meets its own contract with nothing around it: the normaliser (step 6 of the numeric
contract, rows dropped on request), the command stage (the same legality rule as
``CoreParams.check_run``), the K/V ring (which lane and word holds each key), BigBird's random
ring (which buffer, lane and word holds each random row; a buffer not overwritten before its
rows are done), the QK engine (scores and row max) and the SV engine (Σ p·v and l per row).
"""

import random

import numpy as np
import pytest
from amaranth import Module, unsigned
from amaranth.hdl import ResetInserter
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In
from amaranth.sim import Simulator

from swatkit.golden import AttentionSpec, NumberFormat
from swatkit.rtl import HardwareConfig
from swatkit.rtl.config import CoreParams
from swatkit.rtl.core import command, core_layouts
from swatkit.rtl.kv_ring import KVRing, RandomRing, RowCopier
from swatkit.rtl.normaliser import Normaliser
from swatkit.rtl.run_control import RunControl
from swatkit.sim.streams import stream_get, stream_put


def simulate(dut, *benches, background=()):
    sim = Simulator(dut)
    sim.add_clock(1e-8)
    for bench in benches:
        sim.add_testbench(bench)
    for bench in background:   # (monitors: the run ends when the benches above have)
        sim.add_testbench(bench, background=True)
    sim.run()


# -- Normaliser --------------------------------------------------------------------------------

@pytest.mark.parametrize(("head_dim", "dim_lanes", "drop"), [(8, 2, False), (6, 3, True),
                                                             (4, 4, True)])
def test_normaliser_rows(head_dim, dim_lanes, drop):
    fmt = NumberFormat()
    acc_bits, sum_bits, rows = 24, 20, 12
    rng = np.random.default_rng(head_dim)
    accs = rng.integers(-(2 ** 23), 2 ** 23, size=(rows, head_dim))
    totals = rng.integers(1, 2 ** 20, size=rows)
    totals[0], accs[0, 0] = 1, 2 ** 23 - 1   # (saturates)
    dropped = {1, 4, 5, 11} if drop else set()
    dut = Normaliser(fmt, head_dim, dim_lanes, acc_bits, sum_bits, drop=drop)
    g = head_dim // dim_lanes
    lay = dut.i.payload.shape()
    beats = [lay.const({"acc": [int(x) for x in accs[r, k * dim_lanes:(k + 1) * dim_lanes]],
                        "total": int(totals[r])}) for r in range(rows) for k in range(g)]
    want = fmt.normalise(accs, totals[:, None])
    kept = [r for r in range(rows) if r not in dropped]
    got = []

    async def put(ctx):
        await stream_put(ctx, dut.i, beats, rng=random.Random(1), gap=0.3)

    async def get(ctx):
        got.extend(await stream_get(ctx, dut.o, len(kept), rng=random.Random(2), stall=0.4))

    async def dropper(ctx):   # the consumer of ``pending``: drops the rows in ``dropped``
        index = 0
        while index < rows:
            ctx.set(dut.drop, index in dropped)
            _, _, pending, leave = await ctx.tick().sample(dut.pending, dut.leave)
            assert not leave or pending
            index += bool(leave)

    simulate(dut, put, get, *([dropper] if drop else []))
    np.testing.assert_array_equal(np.array([[int(x) for x in row] for row in got]), want[kept])
    assert np.ptp(want) > 0


def test_normaliser_refuses_a_group_that_does_not_divide():
    with pytest.raises(ValueError, match=r"^dim_lanes \(4\) must divide head_dim \(6\)$"):
        Normaliser(NumberFormat(), 6, 4, 16, 16)


# -- RunControl --------------------------------------------------------------------------------

def test_run_control_takes_exactly_the_legal_commands():
    spec = AttentionSpec(seq_len=20, head_dim=4, before=3, after=2, global_tokens=(2, 9))
    p = CoreParams(spec, NumberFormat(),
                   HardwareConfig(key_lanes=2, dim_lanes=2, max_seq_len=20, max_dilation=3,
                                  max_global_tokens=2))
    lay = core_layouts(p)["cmd"]
    dut = RunControl(p, lay)
    legal = [p.run_spec(20), p.run_spec(7, before=0, after=0, global_tokens=()),
             p.run_spec(13, before=3, after=2, dilation=3, global_tokens=(12,))]
    cmds = [(command(p, run), True, run.seq_len) for run in legal]
    good = command(p, legal[0])
    # (before <= 3 and dilation <= 3 fill their fields: no larger value can be sent)
    for bad in ({"seq_len": 0}, {"seq_len": 21}, {"after": 3}, {"dilation": 0},
                {"global_count": 3}, {"global_tokens": [9, 2]}, {"global_tokens": [2, 20]}):
        cmds.append(({**good, **bad}, False, None))
    random.Random(3).shuffle(cmds)

    async def bench(ctx):
        for payload, ok, n in cmds:
            ctx.set(dut.cmd.payload, lay.const(payload))
            ctx.set(dut.cmd.valid, 1)
            _, _, ready, start = await ctx.tick().sample(dut.cmd.ready, dut.run.start)
            assert ready and start == ok, payload
            ctx.set(dut.cmd.valid, 0)
            assert ctx.get(dut.error) == (not ok)
            if ok:   # running until the core says the rows are out; nothing taken meanwhile
                assert ctx.get(dut.run.running) and ctx.get(dut.run.n) == n
                ctx.set(dut.cmd.valid, 1)
                for _ in range(5):
                    _, _, ready = await ctx.tick().sample(dut.cmd.ready)
                    assert not ready
                ctx.set(dut.cmd.valid, 0)
                assert ctx.get(dut.cycles) == 5
                ctx.set(dut.done, 1)
                await ctx.tick()
                ctx.set(dut.done, 0)
                assert not ctx.get(dut.run.running)

    simulate(dut, bench)


# -- RowCopier ---------------------------------------------------------------------------------

class _CopierBench(wiring.Component):
    """A :class:`RowCopier` of G-word rows alone: it starts a row whenever ``kv`` offers one
    and ``take`` is high (as the loader does), with a reset input of its own."""

    def __init__(self, g: int, word: int):
        self.copier = RowCopier("kv", g, word)
        row = data.ArrayLayout(unsigned(word), g)
        super().__init__({"kv": In(stream.Signature(data.StructLayout({"k": row, "v": row}))),
                          "take": In(1), "rst": In(1)})

    def elaborate(self, platform):
        inner = Module()
        c = self.copier
        self.start = self.kv.valid & self.take & ~c.busy
        c.build(inner, self.kv, self.start)
        m = Module()
        m.submodules.inner = ResetInserter(self.rst)(inner)
        return m


@pytest.mark.parametrize(("g", "drop_at"), [(2, None), (2, 1), (3, None), (3, 1), (3, 2),
                                            (1, None)])
def test_row_copier_flags_valid_dropped_mid_row(g, drop_at):
    """Six rows of G words under random gaps, each copied word 0, 1, …, G − 1. A producer that
    keeps the rule leaves ``dropped`` at 0, also when it withdraws an offer the copier has not
    started (row 2: nothing of it was copied). One that drops ``valid`` for a cycle at word
    ``drop_at`` (1 … G − 1) of row 3's copy sets ``dropped``; it stays set through the rows
    after, and only a reset clears it. (At the last word the row is not taken: it is offered
    again and copied a second time.) With one-word rows (G = 1) the row is sampled in its
    transfer cycle and ``dropped`` stays 0."""
    word = 4
    dut = _CopierBench(g, word)
    c = dut.copier
    rng = random.Random(g * 10 + (drop_at or 0))
    rows = [[[rng.randrange(16) for _ in range(g)] for _ in range(2)] for _ in range(6)]
    seen = {"dropped": False, "set": False, "reset": False, "words": []}

    async def offer(ctx, k, v, drop):
        """Offer a row until it is taken; ``drop``: withdraw valid at that word of its copy."""
        ctx.set(dut.kv.payload, {"k": k, "v": v})
        ctx.set(dut.kv.valid, 1)
        while True:
            ready = ctx.get(dut.kv.ready)
            if drop is not None and ctx.get(c.busy) and ctx.get(c.index) == drop:
                ctx.set(dut.kv.valid, 0)   # the rule broken for one cycle
                seen["dropped"], drop = True, None
                await ctx.tick()
                ctx.set(dut.kv.valid, 1)
                continue
            await ctx.tick()
            if ready:
                break
        ctx.set(dut.kv.valid, 0)

    async def producer(ctx):
        ctx.set(dut.take, 1)
        for j, (k, v) in enumerate(rows):
            while rng.random() < 0.4:   # gaps before the offer
                await ctx.tick()
            if j == 2:   # an offer withdrawn before the copier starts it: not seen
                ctx.set(dut.take, 0)
                ctx.set(dut.kv.payload, {"k": k, "v": v})
                ctx.set(dut.kv.valid, 1)
                await ctx.tick()
                ctx.set(dut.kv.valid, 0)
                await ctx.tick()
                ctx.set(dut.take, 1)
            await offer(ctx, k, v, drop_at if j == 3 else None)
        for _ in range(g + 3):
            await ctx.tick()
        assert ctx.get(c.dropped) == (drop_at is not None), "dropped at the end"
        seen["reset"] = True
        ctx.set(dut.rst, 1)
        await ctx.tick()
        ctx.set(dut.rst, 0)
        await ctx.tick()
        assert not ctx.get(c.dropped), "dropped after the reset"

    async def monitor(ctx):
        async for _, _, dropped, busy, index, start in ctx.tick().sample(
                c.dropped, c.busy, c.index, dut.start):
            # never set without a drop; once set, held until the reset
            assert not dropped or seen["dropped"], "set without a drop"
            assert dropped or not seen["set"] or seen["reset"], "cleared without a reset"
            seen["set"] |= bool(dropped)
            if start or busy:
                seen["words"].append(0 if start else int(index))

    simulate(dut, producer, background=(monitor,))
    again = drop_at is not None and drop_at == g - 1   # (row 3 copied twice)
    assert seen["words"] == list(range(g)) * (6 + again)


# -- KVRing ------------------------------------------------------------------------------------

@pytest.mark.parametrize(("key_lanes", "dim_lanes"), [(2, 2), (3, 1), (4, 4)])
def test_kv_ring_places_each_key(key_lanes, dim_lanes):
    """Rows 0 … N−1 taken under gaps, each written into lane j mod KL, words (slot·G + g) of
    its slot (j div KL) mod S, and no more rows taken than the ring has room for until rows
    finish (``sv_fin``)."""
    spec = AttentionSpec(seq_len=24, head_dim=4, before=2, after=3)
    p = CoreParams(spec, NumberFormat(), HardwareConfig(key_lanes=key_lanes, dim_lanes=dim_lanes,
                                                         max_seq_len=24))
    lay = core_layouts(p)
    dut = KVRing(p, lay["kv"], lay["cmd"])
    n, g, kl, ring = spec.seq_len, p.groups, key_lanes, p.ring_rows
    rng = np.random.default_rng(key_lanes)
    k, v = (rng.integers(-128, 128, size=(n, spec.head_dim)) for _ in range(2))
    beats = [lay["kv"].const({"k": [int(x) for x in k[j]], "v": [int(x) for x in v[j]]})
             for j in range(n)]

    def word(row, grp):
        elems = row[grp * dim_lanes:(grp + 1) * dim_lanes]
        return sum((int(x) & 0xFF) << (8 * u) for u, x in enumerate(elems))

    async def control(ctx):
        ctx.set(dut.run.cmd, lay["cmd"].const(command(p)))
        ctx.set(dut.run.n, n)
        ctx.set(dut.run.start, 1)
        await ctx.tick()
        ctx.set(dut.run.start, 0)
        ctx.set(dut.run.running, 1)

    async def put(ctx):
        await ctx.tick()
        await stream_put(ctx, dut.kv, beats, rng=random.Random(4), gap=0.3)

    async def check(ctx):
        done = 0
        for _ in range(40 * n * g):
            _, _, written = await ctx.tick().sample(dut.kv_wr)
            # until `before` rows are done, the ring holds ring_rows rows; then one more per row
            assert written <= ring + max(done - spec.before, 0)
            if written >= min(n, done + spec.after + 1) and done < n:
                # row `done` has all its keys: check each of them where the walk finds it
                lo, hi = max(done - spec.before, 0), min(done + spec.after, n - 1)
                for j in range(lo, hi + 1):
                    lane, slot = j % kl, (j // kl) % p.ring_slots
                    for grp in range(g):
                        ctx.set(dut.k_rd.addr[lane], slot * g + grp)
                        ctx.set(dut.v_rd.addr[lane], slot * g + grp)
                        ctx.set(dut.v_rd.en, 1)
                        await ctx.tick()
                        ctx.set(dut.v_rd.en, 1)
                        await ctx.tick()
                        _, _, kw, vw = await ctx.tick().sample(dut.k_rd.data[lane],
                                                               dut.v_rd.data[lane])
                        assert (int(kw), int(vw)) == (word(k[j], grp), word(v[j], grp)), \
                            (done, j, grp)
                ctx.set(dut.sv_fin, 1)   # row `done` finishes: its oldest slot frees
                await ctx.tick()
                ctx.set(dut.sv_fin, 0)
                done += 1
            if done == n:
                break
        assert done == n and ctx.get(dut.kv_rows) == n

    simulate(dut, control, put, check)


# -- the command rule: hardware form = software form -------------------------------------------

def _software_legal(p: CoreParams, fields: dict) -> bool:
    """The command ``fields`` as a pattern: does ``AttentionSpec`` build it and ``check_run``
    take it?"""
    spec = p.spec
    try:
        if p.block_size:
            run = AttentionSpec(seq_len=fields["seq_len"], head_dim=spec.head_dim, before=0,
                                after=0, block_size=p.block_size,
                                num_random_blocks=fields.get("random_blocks", 0),
                                pattern_seed=spec.pattern_seed)
        else:
            count = fields.get("global_count", 0)
            tokens = tuple(fields.get("global_tokens", [])[:count])
            if count > len(fields.get("global_tokens", [])):
                return False
            run = AttentionSpec(seq_len=fields["seq_len"], head_dim=spec.head_dim,
                                before=fields["before"], after=fields["after"],
                                dilation=fields.get("dilation", 1), global_tokens=tokens,
                                sink_tokens=fields.get("sink_count", 0))
        p.check_run(run)
        if fields.get("sink_on"):   # learned sink scores: NumberFormat.sink_scores's range
            unit = p.fmt.score_unit(spec.head_dim)
            p.fmt.sink_scores(np.asarray(fields["sink_scores"]) * unit, spec.head_dim)
    except ValueError:
        return False
    return True


@pytest.mark.parametrize("kind", ["band", "bigbird", "sinks"])
def test_command_rule_is_check_run(kind):
    """``command_faults`` (what the core and the formal checker refuse) agrees with
    ``AttentionSpec`` + ``CoreParams.check_run`` on every command drawn (each field over its
    whole width, so past every limit)."""
    from amaranth import Cat, Module
    from amaranth.lib import wiring

    from swatkit.rtl.run_control import command_faults

    if kind == "band":
        spec = AttentionSpec(seq_len=20, head_dim=4, before=3, after=2, global_tokens=(2, 9))
        hw = HardwareConfig(key_lanes=2, dim_lanes=2, max_seq_len=20, max_dilation=3,
                            max_global_tokens=2)
    elif kind == "sinks":   # sink tokens, and a grouped core's learned sink scores
        spec = AttentionSpec(seq_len=20, head_dim=4, before=3, after=2, sink_tokens=3)
        hw = HardwareConfig(key_lanes=2, dim_lanes=2, max_seq_len=20)
    else:
        spec = AttentionSpec(seq_len=64, head_dim=4, before=0, after=0, block_size=4,
                             num_random_blocks=2, pattern_seed=1)
        hw = HardwareConfig(key_lanes=2, dim_lanes=2, max_seq_len=100)
    p = (CoreParams(spec, NumberFormat(), hw, heads=2, sink_logits=True) if kind == "sinks"
         else CoreParams(spec, NumberFormat(), hw))
    lo, hi = p.fmt.score_range(spec.head_dim)
    lay = core_layouts(p)["cmd"]

    class Rule(wiring.Component):
        def __init__(self):
            super().__init__({"cmd": wiring.In(lay), "bad": wiring.Out(1)})

        def elaborate(self, platform):
            m = Module()
            m.d.comb += self.bad.eq(Cat(*command_faults(p, self.cmd)).any())
            return m

    dut = Rule()
    rng = random.Random(7)

    def draw():
        fields = {}
        for name, field in lay:
            shape = field.shape
            if name == "sink_scores":   # near the scores' range, sometimes anywhere
                bits = shape.elem_shape.width
                fields[name] = [rng.randrange(-2 ** (bits - 1), 2 ** (bits - 1))
                                if rng.random() < 0.1 else rng.randrange(lo - 3, hi + 4)
                                for _ in range(shape.length)]
            elif isinstance(shape, type(lay)) or hasattr(shape, "length"):   # global_tokens
                fields[name] = sorted(rng.randrange(2 ** shape.elem_shape.width)
                                      for _ in range(shape.length))
                if rng.random() < 0.3:
                    fields[name].reverse()
            else:
                width = shape.width
                # mostly small values (where the limits are), sometimes any value of the field
                top = 2 ** width if rng.random() < 0.3 else min(2 ** width, 2 * 20 + 2)
                fields[name] = rng.randrange(top)
        return fields

    cases = [command(p)] + [draw() for _ in range(1500)]
    disagree, legal = [], 0

    async def bench(ctx):
        nonlocal legal
        for fields in cases:
            ctx.set(dut.cmd, lay.const(fields))
            hard = not ctx.get(dut.bad)
            soft = _software_legal(p, fields)
            legal += soft
            if hard != soft:
                disagree.append((fields, hard, soft))

    sim = Simulator(dut)
    sim.add_testbench(bench)
    sim.run()
    assert not disagree, disagree[:5]
    assert 50 < legal < len(cases) - 50   # both answers drawn often


# -- QKEngine ----------------------------------------------------------------------------------

@pytest.mark.parametrize(("key_lanes", "dim_lanes", "before", "after"),
                         [(2, 2, 2, 2), (3, 1, 4, 0), (1, 4, 1, 3)])
def test_qk_engine_scores_and_row_max(key_lanes, dim_lanes, before, after):
    """Rows started on ``rows`` (with gaps) from K words served with the ring's two-cycle read
    latency: each row's max on ``maxes`` (taken under stalls) is that of q·k over its keys, and
    its score buffer holds every key's score where the SV engine reads it (lane L, round r: key
    lo + r·KL + (L − lane0) mod KL)."""
    from swatkit.rtl.qk_engine import QKEngine
    from swatkit.rtl.scheduler import Scheduler

    n, d = 12, 4
    spec = AttentionSpec(seq_len=n, head_dim=d, before=before, after=after)
    p = CoreParams(spec, NumberFormat(), HardwareConfig(key_lanes=key_lanes, dim_lanes=dim_lanes,
                                                         max_seq_len=n))
    lay = core_layouts(p)
    scheduler = Scheduler(p, lay["q"], lay["cmd"])
    scheduler._MustUse__silence = True   # (only its payload's layout is used)
    rows_layout = scheduler.rows.payload.shape()
    dut = QKEngine(p, rows_layout, lay["cmd"])
    kl, g, slots, sb = key_lanes, p.groups, p.ring_slots, p.score_buffers
    n = min(n, p.ring_rows)   # (every key in the ring at once: none overwritten)
    rng = np.random.default_rng(key_lanes * 10 + before)
    q = rng.integers(-128, 128, size=(n, d))
    k = rng.integers(-128, 128, size=(n, d))
    mem = [dict() for _ in range(kl)]   # the ring: key j in lane j mod KL, slot (j div KL) mod S
    for j in range(n):
        for grp in range(g):
            elems = k[j, grp * dim_lanes:(grp + 1) * dim_lanes]
            mem[j % kl][(j // kl) % slots * g + grp] = sum((int(x) & 0xFF) << (8 * u)
                                                          for u, x in enumerate(elems))
    scores = q @ k.T
    windows = [(max(i - before, 0), min(i + after, n - 1)) for i in range(n)]
    started, taken = [0], [0]

    def start_payload(i):
        lo, hi = windows[i]
        base = (lo // kl) % slots * g
        return rows_layout.const({
            "q": sum((int(x) & 0xFF) << (8 * c) for c, x in enumerate(q[i])),
            "row": {"lane0": lo % kl, "base": base, "later": (base + g) % (slots * g),
                    "sbuf": i % sb, "rem": hi - lo}})

    async def rows(ctx):
        gaps = random.Random(1)
        for i in range(n):
            while started[0] - taken[0] >= sb or gaps.random() < 0.3:   # a score buffer free
                ctx.set(dut.rows.valid, 0)
                await ctx.tick()
            ctx.set(dut.rows.payload, start_payload(i))
            ctx.set(dut.rows.valid, 1)
            await ctx.tick().until(dut.rows.ready)
            started[0] += 1
        ctx.set(dut.rows.valid, 0)

    async def ring(ctx):   # the K reads: the word two cycles after its address
        previous = None
        while True:
            _, _, *addrs = await ctx.tick().sample(*(dut.k_rd.addr[lane] for lane in range(kl)))
            if previous is not None:
                for lane in range(kl):
                    ctx.set(dut.k_rd.data[lane], mem[lane].get(int(previous[lane]), 0))
            previous = addrs

    async def sv(ctx):
        stalls = random.Random(2)
        for i in range(n):
            while True:
                _, _, valid, row_max = await ctx.tick().sample(dut.maxes.valid,
                                                               dut.maxes.payload.max)
                if valid and stalls.random() >= 0.4:
                    break
            lo, hi = windows[i]
            assert row_max == scores[i, lo:hi + 1].max(), i
            for r in range(-(-(hi - lo + 1) // kl)):   # the row's scores, round by round
                ctx.set(dut.s_rd.addr, (i % sb) * p.rounds + r)
                ctx.set(dut.s_rd.en, 1)
                await ctx.tick()
                for lane in range(kl):
                    j = lo + r * kl + (lane - lo % kl) % kl
                    if j <= hi:
                        assert ctx.get(dut.s_rd.data[lane]) == scores[i, j], (i, r, lane)
            ctx.set(dut.s_rd.en, 0)
            ctx.set(dut.maxes.ready, 1)
            await ctx.tick()
            ctx.set(dut.maxes.ready, 0)
            taken[0] += 1
        # (a MAC per key and element: the lanes without a key in a round do not count)
        assert ctx.get(dut.qk_macs) == sum((hi - lo + 1) * d for lo, hi in windows)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(rows)
    sim.add_testbench(ring, background=True)
    sim.add_testbench(sv)
    sim.run()
    assert taken[0] == n


# -- Scheduler ---------------------------------------------------------------------------------

@pytest.mark.parametrize(("key_lanes", "before", "after"), [(2, 2, 3), (3, 4, 0)])
def test_scheduler_starts_each_row_when_its_keys_are_in(key_lanes, before, after):
    """Q rows under gaps, K/V rows written slowly, rows finishing SV late: row i starts only
    once K/V rows up to min(i + after, N − 1) are written and a score buffer is free, with its
    Q row and its window's first key (lane, slot), offset of its last key and score buffer."""
    from swatkit.rtl.scheduler import Scheduler

    n, d = 14, 4
    spec = AttentionSpec(seq_len=n, head_dim=d, before=before, after=after)
    p = CoreParams(spec, NumberFormat(), HardwareConfig(key_lanes=key_lanes, dim_lanes=2,
                                                         max_seq_len=n))
    lay = core_layouts(p)
    dut = Scheduler(p, lay["q"], lay["cmd"])
    kl, g, slots, sb = key_lanes, p.groups, p.ring_slots, p.score_buffers
    q = np.random.default_rng(before).integers(-128, 128, size=(n, d))
    written, done, starts = [0], [0], []

    async def control(ctx):
        ctx.set(dut.run.cmd, lay["cmd"].const(command(p)))
        ctx.set(dut.run.start, 1)
        await ctx.tick()
        ctx.set(dut.run.start, 0)
        ctx.set(dut.run.running, 1)
        ctx.set(dut.run.n, n)
        ctx.set(dut.run.after, after)
        ctx.set(dut.run.dafter, after)

    async def put_q(ctx):
        await ctx.tick()
        beats = [lay["q"].const([int(x) for x in row]) for row in q]
        await stream_put(ctx, dut.q, beats, rng=random.Random(3), gap=0.5)

    async def world(ctx):   # the ring writes a K/V row every 5 cycles; SV finishes rows late
        await ctx.tick()
        ctx.set(dut.rows.ready, 1)
        for cycle in range(2000):
            if cycle % 5 == 0 and written[0] < n:
                written[0] += 1
            ctx.set(dut.kv_wr, written[0])
            ctx.set(dut.kv_a, written[0])
            fin = len(starts) > done[0] and cycle % 7 == 0
            ctx.set(dut.sv_fin, fin)
            _, _, valid, payload = await ctx.tick().sample(dut.rows.valid, dut.rows.payload)
            done[0] += fin
            if valid:
                i = len(starts)
                assert written[0] >= min(i + after + 1, n), (i, written[0])
                assert i - done[0] < sb, (i, done[0])
                starts.append(payload)
            if len(starts) == n:
                break

    simulate(dut, control, put_q, world)
    assert len(starts) == n
    for i, payload in enumerate(starts):
        lo, hi = max(i - before, 0), min(i + after, n - 1)
        row = payload.row
        assert int(payload.q) == sum((int(x) & 0xFF) << (8 * c) for c, x in enumerate(q[i]))
        assert (row.lane0, row.base, row.rem, row.sbuf) == \
            (lo % kl, (lo // kl) % slots * g, hi - lo, i % sb), i


# -- RandomRing --------------------------------------------------------------------------------

@pytest.mark.parametrize(("key_lanes", "dim_lanes", "random_blocks"), [(2, 2, 2), (3, 4, 1)])
def test_random_ring_buffers_each_block(key_lanes, dim_lanes, random_blocks):
    """BigBird's random rows for query blocks 1 … nb−2 taken under gaps (r·b rows per block):
    block B's row t lands in buffer B mod 2, lane t mod KL, word (t div KL)·G + g; ``blocks``
    counts the blocks written, and block B (B ≥ 3) is not taken before the rows up to
    (B − 1)·b − 1 are done (``sv_done``), since it overwrites block B − 2's buffer."""
    spec = AttentionSpec.bigbird(32, 4, block_size=4, num_random_blocks=random_blocks, seed=1)
    p = CoreParams(spec, NumberFormat(), HardwareConfig(key_lanes=key_lanes, dim_lanes=dim_lanes,
                                                         max_seq_len=32))
    lay = core_layouts(p)
    dut = RandomRing(p, lay["kv"], lay["cmd"])
    b, r, g, kl, nb = spec.block_size, random_blocks, p.groups, key_lanes, spec.num_blocks
    per = r * b                    # rows per query block
    rwords = p.random_rounds * g   # words of one buffer per lane
    rng = np.random.default_rng(key_lanes)
    rows = {blk: [rng.integers(-128, 128, size=(2, spec.head_dim)) for _ in range(per)]
            for blk in range(1, nb - 1)}
    beats = [lay["kv"].const({"k": [int(x) for x in kv[0]], "v": [int(x) for x in kv[1]]})
             for blk in range(1, nb - 1) for kv in rows[blk]]

    def word(row, grp):
        elems = row[grp * dim_lanes:(grp + 1) * dim_lanes]
        return sum((int(x) & 0xFF) << (8 * u) for u, x in enumerate(elems))

    async def control(ctx):
        ctx.set(dut.run.cmd, lay["cmd"].const(command(p)))
        ctx.set(dut.run.n, spec.seq_len)
        ctx.set(dut.run.n_mb, spec.seq_len - b)
        ctx.set(dut.run.rcount, r)
        ctx.set(dut.run.rnd_last, per - 1)
        ctx.set(dut.run.start, 1)
        await ctx.tick()
        ctx.set(dut.run.start, 0)
        ctx.set(dut.run.running, 1)

    async def put(ctx):
        await ctx.tick()
        await stream_put(ctx, dut.kvr, beats, rng=random.Random(key_lanes), gap=0.3)

    async def check(ctx):
        checked = 0                   # blocks checked
        for _ in range(60 * len(beats) * g):
            _, _, written = await ctx.tick().sample(dut.blocks)
            if written > checked:
                blk = checked + 1
                base = (blk % 2) * rwords
                for t, (k, v) in enumerate(rows[blk]):
                    lane, addr = t % kl, base + (t // kl) * g
                    for grp in range(g):
                        ctx.set(dut.k_rd.addr[lane], addr + grp)
                        ctx.set(dut.v_rd.addr[lane], addr + grp)
                        ctx.set(dut.v_rd.en, 1)
                        await ctx.tick()
                        await ctx.tick()
                        _, _, kw, vw = await ctx.tick().sample(dut.k_rd.data[lane],
                                                               dut.v_rd.data[lane])
                        assert (int(kw), int(vw)) == (word(k, grp), word(v, grp)), \
                            (blk, t, grp)
                checked = blk
                # query block blk's rows finish: block blk + 2 may overwrite its buffer
                ctx.set(dut.sv_done, (blk + 1) * b)
            if checked == nb - 2:
                break
        assert checked == nb - 2

    async def bound(ctx):
        # block B >= 3 waits for the rows up to (B - 1)·b - 1: never more written than that
        async for _, _, written, done in ctx.tick().sample(dut.blocks, dut.sv_done):
            assert written <= max(2, done // b + 1), (written, done)

    simulate(dut, control, put, check, background=(bound,))


# -- SVEngine ----------------------------------------------------------------------------------

@pytest.mark.parametrize(("key_lanes", "dim_lanes", "before", "after"),
                         [(2, 2, 2, 3), (3, 1, 4, 0), (1, 4, 1, 1)])
def test_sv_engine_sums_and_accumulators(key_lanes, dim_lanes, before, after):
    """Rows offered on ``maxes`` (with gaps: each its max and walk), scores served from score
    buffers with one cycle of read latency and V words from the ring with two: each row's
    groups on ``out`` (taken under stalls) are ``acc = Σ p·v`` and ``l = Σ p`` exactly, with
    ``p`` the golden model's probabilities (numerics steps 2–4) of ``m − S``; ``done``
    counts the rows and ``sv_macs`` a MAC per key and element."""
    from swatkit.rtl.qk_engine import max_layout
    from swatkit.rtl.sv_engine import SVEngine

    n, d = 12, 4
    spec = AttentionSpec(seq_len=n, head_dim=d, before=before, after=after)
    fmt = NumberFormat()
    p = CoreParams(spec, fmt, HardwareConfig(key_lanes=key_lanes, dim_lanes=dim_lanes,
                                             max_seq_len=n))
    lay = core_layouts(p)
    dut = SVEngine(p, lay["cmd"])
    kl, g, slots, sb = key_lanes, p.groups, p.ring_slots, p.score_buffers
    n = min(n, p.ring_rows)   # (every V row in the ring at once: none overwritten)
    rng = np.random.default_rng(key_lanes * 10 + before)
    v = rng.integers(-128, 128, size=(n, d))
    lo_s, hi_s = fmt.score_range(d)
    scores = rng.integers(lo_s // 64, hi_s // 64, size=(n, n))   # (a spread that spans d_sat)
    windows = [(max(i - before, 0), min(i + after, n - 1)) for i in range(n)]
    vmem = [dict() for _ in range(kl)]   # V row j in lane j mod KL, slot (j div KL) mod S
    for j in range(n):
        for grp in range(g):
            elems = v[j, grp * dim_lanes:(grp + 1) * dim_lanes]
            vmem[j % kl][(j // kl) % slots * g + grp] = sum((int(x) & 0xFF) << (8 * u)
                                                           for u, x in enumerate(elems))
    expected = []
    for i, (lo, hi) in enumerate(windows):
        s_row = scores[i, lo:hi + 1]
        probs = fmt.probabilities(s_row.max() - s_row, d)
        expected.append((probs @ v[lo:hi + 1], int(probs.sum())))
    smem = {}   # score buffer sbuf, round r, lane L: key lo + r·KL + (L − lane0) mod KL
    for i, (lo, hi) in enumerate(windows):
        for r in range(-(-(hi - lo + 1) // kl)):
            smem[i, r] = [int(scores[i, lo + r * kl + (lane - lo % kl) % kl])
                          if lo + r * kl + (lane - lo % kl) % kl <= hi else 0
                          for lane in range(kl)]
    layout = max_layout(p)
    started, taken = [0], [0]

    async def control(ctx):
        ctx.set(dut.run.n, n)
        ctx.set(dut.run.start, 1)
        await ctx.tick()
        ctx.set(dut.run.start, 0)
        ctx.set(dut.run.running, 1)
        gaps = random.Random(1)
        for i, (lo, hi) in enumerate(windows):
            while started[0] - taken[0] >= sb or gaps.random() < 0.3:
                ctx.set(dut.maxes.valid, 0)
                await ctx.tick()
            base = (lo // kl) % slots * g
            ctx.set(dut.maxes.payload, layout.const({
                "max": int(scores[i, lo:hi + 1].max()),
                "row": {"lane0": lo % kl, "base": base, "later": (base + g) % (slots * g),
                        "sbuf": i % sb, "rem": hi - lo}}))
            ctx.set(dut.maxes.valid, 1)
            await ctx.tick().until(dut.maxes.ready)
            started[0] += 1
        ctx.set(dut.maxes.valid, 0)

    async def memories(ctx):   # under each read's enable: scores one cycle after their
        previous = None          # address, V words two (read, then a fabric register)
        while True:
            _, _, s_en, s_addr, v_en, *addrs = await ctx.tick().sample(
                dut.s_rd.en, dut.s_rd.addr, dut.v_rd.en,
                *(dut.v_rd.addr[lane] for lane in range(kl)))
            if s_en:
                sbuf, r = divmod(int(s_addr), p.rounds)
                row = next((i for i in range(started[0] - 1, -1, -1) if i % sb == sbuf), None)
                for lane, value in enumerate(smem.get((row, r), [0] * kl)):
                    ctx.set(dut.s_rd.data[lane], value)
            if v_en:
                if previous is not None:
                    for lane in range(kl):
                        ctx.set(dut.v_rd.data[lane], vmem[lane].get(int(previous[lane]), 0))
                previous = addrs

    async def out(ctx):
        stalls = random.Random(2)
        for i in range(n):
            acc, total = [], None
            for _ in range(g):
                while True:
                    ready = stalls.random() >= 0.4
                    ctx.set(dut.out.ready, ready)
                    _, _, valid, group, l_sum = await ctx.tick().sample(
                        dut.out.valid, dut.out.payload.acc, dut.out.payload.total)
                    if valid and ready:
                        break
                acc += [int(x) for x in group]
                assert total in (None, int(l_sum))
                total = int(l_sum)
            taken[0] += 1
            assert (acc, total) == ([int(x) for x in expected[i][0]], expected[i][1]), i
        ctx.set(dut.out.ready, 0)
        await ctx.tick()
        assert ctx.get(dut.done) == n
        assert ctx.get(dut.sv_macs) == sum((hi - lo + 1) * d for lo, hi in windows)

    simulate(dut, control, out, background=(memories,))
    assert taken[0] == n
