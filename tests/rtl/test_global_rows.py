"""GlobalRowEngine in Amaranth's simulator against a plain NumPy per-row reference.

Every case runs under seeded random valid gaps on ``qg``/``kvg`` and ready stalls on ``og`` and
stall-free; the output must equal the reference exactly. The stall-free runs also check the busy
cycles against :func:`global_row_cycles` and the counters against their formulas.
"""

import dataclasses
import random
import re
import time
from dataclasses import dataclass

import numpy as np
import pytest
from amaranth.back import verilog
from amaranth.sim import Simulator
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from swatkit.golden import NumberFormat
from swatkit.rtl.global_rows import (
    GlobalRowEngine,
    GlobalRowEngines,
    global_row_cycles,
    global_rows_cycles,
    global_rows_layouts,
)
from swatkit.sim.streams import stream_get, stream_put


def reference(qg, kg, vg, fmt: NumberFormat):
    """Global rows by the contract, one row at a time: all N keys, max first, then p, l, acc."""
    head_dim = qg.shape[1]
    out = []
    for q in qg:
        scores = kg @ q                                        # step 1 (exact in int64)
        p = fmt.probabilities(scores.max() - scores, head_dim)  # steps 2–4
        total = p.sum()                                          # step 5
        acc = p @ vg
        out.append(fmt.normalise(acc, total))                   # step 6
    return np.array(out, dtype=np.int64).reshape(len(qg), head_dim)


def run_engine(qg, kg, vg, fmt, dim_lanes, *, max_seq_len=None, max_rows=None, seed=0,
               gap=0.0, stall=0.0, engines=None):
    """The RTL with the reference's signature: returns (out, counters after the run). With
    ``engines``, :class:`GlobalRowEngines` of that many engines."""
    rows, head_dim = qg.shape
    n = len(kg)
    if engines is None:
        dut = GlobalRowEngine(fmt, head_dim, dim_lanes, max_seq_len or n,
                              max_rows or max(rows, 1))
    else:
        dut = GlobalRowEngines(fmt, head_dim, dim_lanes, max_seq_len or n,
                               max_rows or max(rows, 1), engines)
    lay = global_rows_layouts(fmt, head_dim)
    rng = random.Random(seed)
    seeds = [rng.randrange(2 ** 32) for _ in range(3)]
    result = {}

    def row(x):
        return [int(e) for e in x]

    async def control(ctx):
        ctx.set(dut.seq_len, n)
        ctx.set(dut.rows, rows)
        ctx.set(dut.start, 1)
        await ctx.tick()
        ctx.set(dut.start, 0)
        while ctx.get(dut.busy):
            await ctx.tick()
        result["stats"] = {name: ctx.get(getattr(dut, name))
                           for name in ("cycles", "qk_macs", "sv_macs", "exp_ops")}

    async def put_q(ctx):
        beats = [lay["qg"].const(row(q)) for q in qg]
        await stream_put(ctx, dut.qg, beats, rng=random.Random(seeds[0]), gap=gap)

    async def put_kv(ctx):
        one_pass = [lay["kvg"].const({"k": row(kg[j]), "v": row(vg[j])}) for j in range(n)]
        await stream_put(ctx, dut.kvg, one_pass * 2, rng=random.Random(seeds[1]),
                         gap=gap)

    async def get_o(ctx):
        beats = await stream_get(ctx, dut.og, rows, rng=random.Random(seeds[2]), stall=stall,
                                 timeout=20_000)
        result["out"] = np.array([[int(b[c]) for c in range(head_dim)] for b in beats],
                                 dtype=np.int64).reshape(rows, head_dim)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    for tb in (control, put_q, put_kv, get_o):
        sim.add_testbench(tb)
    sim.run()
    return result["out"], result["stats"]


@dataclass(frozen=True)
class Case:
    id: str
    head_dim: int
    dim_lanes: int
    n: int
    rows: int
    fmt: NumberFormat = dataclasses.field(default_factory=NumberFormat)
    inputs: str = "random"  # random | max | min | dominant
    max_seq_len: int | None = None  # the engine's; default N

    def data(self, seed):
        rng = np.random.default_rng(seed)
        f, d = self.fmt, self.head_dim
        qg = rng.integers(f.data_min, f.data_max + 1, size=(self.rows, d))
        kg, vg = (rng.integers(f.data_min, f.data_max + 1, size=(self.n, d)) for _ in range(2))
        if self.inputs == "max":
            qg, kg, vg = (np.full_like(x, f.data_max) for x in (qg, kg, vg))
        elif self.inputs == "min":
            qg, kg, vg = (np.full_like(x, f.data_min) for x in (qg, kg, vg))
        elif self.inputs == "dominant":  # one key far above the others: p ≈ one-hot
            kg = rng.integers(-2, 3, size=(self.n, d))
            kg[self.n // 2] = f.data_max
            qg = np.full_like(qg, f.data_max)
        return qg, kg, vg


CASES = [
    Case("d4-dl1-n7-r3", 4, 1, 7, 3),
    Case("d4-dl2-n33-r1", 4, 2, 33, 1),
    Case("d4-dl4-n2-r3", 4, 4, 2, 3),
    Case("d8-dl2-n7-r3", 8, 2, 7, 3),
    Case("d8-dl4-n1-r3", 8, 4, 1, 3),
    Case("d8-dl8-n33-r3", 8, 8, 33, 3),
    Case("d8-dl1-n2-r1", 8, 1, 2, 1),
    Case("d4-dl2-n7-r3-fmt", 4, 2, 7, 3,
         NumberFormat(data_bits=6, prob_bits=12, exp_frac_bits=4, out_frac_bits=2, out_bits=9)),
    Case("d4-dl1-n7-r1-saturating", 4, 1, 7, 1, NumberFormat(out_bits=5, out_frac_bits=1)),
    Case("all-max", 8, 4, 7, 3, inputs="max"),
    Case("all-min", 4, 2, 33, 1, inputs="min"),
    Case("dominant-key", 8, 2, 7, 3, inputs="dominant"),
    Case("d8-dl4-n9-r8-many-rows", 8, 4, 9, 8),
    Case("d64-dl8-n40-r2-default-size", 64, 8, 40, 2, max_seq_len=4096),
]


@pytest.mark.by_turns("stall")
@pytest.mark.parametrize("stall", [0.0, 0.4], ids=["no-stalls", "stalls-40pc"])
@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_engine_matches_reference(case, stall):
    seed = 2024
    print(f"case {case.id} seed {seed} stall {stall}")
    qg, kg, vg = case.data(seed)
    got, stats = run_engine(qg, kg, vg, case.fmt, case.dim_lanes, max_seq_len=case.max_seq_len,
                            seed=seed, gap=stall, stall=stall)
    want = reference(qg, kg, vg, case.fmt)
    np.testing.assert_array_equal(got, want)
    if case.inputs == "random" and case.n > 1:
        assert np.ptp(want) > 0  # the comparison is not between two trivial outputs
    r, n, d = case.rows, case.n, case.head_dim
    assert stats["qk_macs"] == 2 * r * n * d
    assert stats["sv_macs"] == r * n * d
    assert stats["exp_ops"] == r * n
    if stall == 0.0:
        assert stats["cycles"] == global_row_cycles(d, case.dim_lanes, case.fmt, n, r)


def test_stall_patterns_do_not_change_the_output():
    """Heavy output back-pressure (the result register and the dividers hold the pipeline),
    input gaps on one stream only, and both: nothing lost, duplicated or reordered."""
    case = Case("x", 4, 2, 7, 3)
    qg, kg, vg = case.data(5)
    want = reference(qg, kg, vg, case.fmt)
    for seed, gap, stall in [(1, 0.0, 0.9), (2, 0.7, 0.0), (3, 0.5, 0.5), (4, 0.9, 0.9)]:
        print(f"seed {seed} gap {gap} stall {stall}")
        got, stats = run_engine(qg, kg, vg, case.fmt, case.dim_lanes, seed=seed, gap=gap,
                                stall=stall)
        np.testing.assert_array_equal(got, want)
        assert stats["exp_ops"] == case.rows * case.n


def test_output_backpressure_holds_the_pipeline():
    """More rows than the output FIFO and the output register hold, and an output that is
    rarely ready: the read-out must wait (the dividers' enable drops) without losing or
    repeating anything."""
    case = Case("x", 4, 2, 2, 9)
    qg, kg, vg = case.data(6)
    got, stats = run_engine(qg, kg, vg, case.fmt, case.dim_lanes, seed=6, stall=0.95)
    np.testing.assert_array_equal(got, reference(qg, kg, vg, case.fmt))
    assert stats["sv_macs"] == case.rows * case.n * case.head_dim


def test_headroom_in_the_sizes():
    """N and rows below the engine's maxima (the widths come from max_seq_len)."""
    case = Case("x", 8, 4, 7, 2)
    qg, kg, vg = case.data(8)
    got, _ = run_engine(qg, kg, vg, case.fmt, case.dim_lanes, max_seq_len=1000,
                        max_rows=5, seed=8, gap=0.3, stall=0.3)
    np.testing.assert_array_equal(got, reference(qg, kg, vg, case.fmt))


def _two_runs(runs):
    """Runs one after the other on one engine: each (qg, kg, vg) → (outputs, counters)."""
    fmt, head_dim = NumberFormat(), runs[0][0].shape[1]
    dut = GlobalRowEngine(fmt, head_dim, 2, 16, 4)
    lay = global_rows_layouts(fmt, head_dim)
    stats, outs = [], []

    def row(x):
        return [int(e) for e in x]

    async def control(ctx):
        for qg, kg, _ in runs:
            ctx.set(dut.seq_len, len(kg))
            ctx.set(dut.rows, len(qg))
            ctx.set(dut.start, 1)
            await ctx.tick()
            ctx.set(dut.start, 0)
            while ctx.get(dut.busy):
                await ctx.tick()
            stats.append({name: ctx.get(getattr(dut, name)) for name in ("qk_macs", "exp_ops")})

    async def put(ctx):  # the streams carry the runs back to back
        await stream_put(ctx, dut.qg, [lay["qg"].const(row(q)) for qg, _, _ in runs
                                       for q in qg], rng=random.Random(1), gap=0.3)

    async def put_kv(ctx):
        beats = [lay["kvg"].const({"k": row(kg[j]), "v": row(vg[j])})
                 for qg, kg, vg in runs for _pass in range(2) for j in range(len(kg))]
        await stream_put(ctx, dut.kvg, beats, rng=random.Random(2), gap=0.3)

    async def get(ctx):
        for qg, _, _ in runs:
            beats = await stream_get(ctx, dut.og, len(qg), rng=random.Random(3), stall=0.3)
            outs.append(np.array([[int(b[c]) for c in range(head_dim)] for b in beats]))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    for tb in (control, put, put_kv, get):
        sim.add_testbench(tb)
    sim.run()
    return list(zip(outs, stats, strict=True))


def test_a_second_run_starts_afresh():
    case = Case("x", 4, 2, 9, 2)
    first = case.data(1)
    second = tuple(x[:1] if i == 0 else x[:5] for i, x in enumerate(case.data(2)))
    for (got, stats), (qg, kg, vg) in zip(_two_runs([first, second]), (first, second),
                                          strict=True):
        np.testing.assert_array_equal(got, reference(qg, kg, vg, NumberFormat()))
        assert stats == {"qk_macs": 2 * len(qg) * len(kg) * 4, "exp_ops": len(qg) * len(kg)}


def test_takes_no_beat_beyond_the_run():
    """With valid always high on both inputs, a run takes exactly its rows Q beats and
    2·N K/V beats (whatever rows), and nothing more once it has ended."""
    fmt, rows, n = NumberFormat(), 2, 3
    dut = GlobalRowEngine(fmt, 4, 2, 8, 4)
    taken = {"qg": 0, "kvg": 0, "og": 0}

    async def tb(ctx):
        ctx.set(dut.seq_len, n)
        ctx.set(dut.rows, rows)
        ctx.set(dut.start, 1)
        for port in (dut.qg, dut.kvg):
            ctx.set(port.valid, 1)
        ctx.set(dut.og.ready, 1)
        await ctx.tick()
        ctx.set(dut.start, 0)
        for _ in range(global_row_cycles(4, 2, fmt, n, rows) + 20):
            _, _, qr, kr, ov = await ctx.tick().sample(dut.qg.ready, dut.kvg.ready,
                                                       dut.og.valid)
            taken["qg"] += qr
            taken["kvg"] += kr
            taken["og"] += ov
        assert not ctx.get(dut.busy)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(tb)
    sim.run()
    assert taken == {"qg": rows, "kvg": 2 * n, "og": rows}


@pytest.mark.parametrize(("seq_len", "rows"), [(5, 0), (0, 2)])
def test_nothing_to_do_starts_nothing(seq_len, rows):
    dut = GlobalRowEngine(NumberFormat(), 4, 2, 8, 2)
    seen = []

    async def tb(ctx):
        ctx.set(dut.seq_len, seq_len)
        ctx.set(dut.rows, rows)
        ctx.set(dut.start, 1)
        ctx.set(dut.qg.valid, 1)
        ctx.set(dut.kvg.valid, 1)
        for _ in range(4):
            _, _, busy, qr, kr, ov = await ctx.tick().sample(
                dut.busy, dut.qg.ready, dut.kvg.ready, dut.og.valid)
            seen.append((busy, qr, kr, ov))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(tb)
    sim.run()
    assert seen == [(0, 0, 0, 0)] * 4
    assert global_row_cycles(4, 2, NumberFormat(), seq_len, rows) == 0


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from([(1, 1), (2, 1), (3, 3), (4, 1), (4, 2), (6, 3), (8, 2), (8, 8)]),
       st.integers(1, 9), st.integers(1, 3), st.integers(3, 10), st.integers(0, 2 ** 16))
def test_engine_matches_reference_hypothesis(shape, n, rows, data_bits, seed):
    head_dim, dim_lanes = shape
    fmt = NumberFormat(data_bits=data_bits)
    case = Case("h", head_dim, dim_lanes, n, rows, fmt)
    qg, kg, vg = case.data(seed)
    got, stats = run_engine(qg, kg, vg, fmt, dim_lanes, max_seq_len=n + seed % 3, seed=seed,
                            gap=0.3, stall=0.3)
    np.testing.assert_array_equal(got, reference(qg, kg, vg, fmt))
    assert stats["sv_macs"] == rows * n * head_dim


@pytest.mark.parametrize(("args", "exc", "message"), [
    (("fmt", 4, 2, 8, 1), TypeError, "fmt must be a NumberFormat, not 'fmt'"),
    ((None, 4.0, 2, 8, 1), TypeError, "head_dim must be an integer, not 4.0"),
    ((None, 0, 2, 8, 1), ValueError, "head_dim must be a positive integer, not 0"),
    ((None, 8, 3, 8, 1), ValueError, "dim_lanes must divide head_dim (8), not 3"),
    ((None, 8, 0, 8, 1), ValueError, "dim_lanes must be a positive integer, not 0"),
    ((None, 8, 2, 0, 1), ValueError, "max_seq_len must be a positive integer, not 0"),
    ((None, 8, 2, 8, 0), ValueError, "max_rows must be a positive integer, not 0"),
    ((None, 8, 2, 8, True), TypeError, "max_rows must be an integer, not True"),
])
def test_constructor_checks(args, exc, message):
    fmt, *rest = args
    with pytest.raises(exc, match=f"^{re.escape(message)}$"):
        GlobalRowEngine(NumberFormat() if fmt is None else fmt, *rest)


def test_cycle_model_formula():
    fmt = NumberFormat(out_frac_bits=2)
    # 2·rows·N·G + rows·(G + 1) + G + divider latency (8 + 2 + 2) + 16
    assert global_row_cycles(64, 8, fmt, 4096, 8) == 2 * 8 * 4096 * 8 + 8 * 9 + 8 + 12 + 16
    assert global_row_cycles(4, 2, fmt, 5, 1) == 2 * 5 * 2 + 3 + 2 + 12 + 16
    with pytest.raises(ValueError, match=r"^dim_lanes must divide head_dim \(64\), not 7$"):
        global_row_cycles(64, 7, fmt, 10, 1)


def test_converts_to_verilog():
    """A default-ish size (head_dim 64, 8 lanes, N up to 4096, 8 rows) exports to Verilog."""
    t0 = time.perf_counter()
    text = verilog.convert(GlobalRowEngine(NumberFormat(), 64, 8, 4096, 8), name="global_rows")
    print(f"verilog.convert: {time.perf_counter() - t0:.1f} s, {len(text)} characters")
    for port in ("kvg__payload", "og__ready", "qk_macs", "seq_len"):
        assert port in text


# (head_dim, dim_lanes, engines, rows per engine): G = 1 … 16, E = 2 … 8
ENGINE_SHAPES = [(16, 1, 8, 2), (8, 4, 8, 2), (32, 2, 2, 4), (4, 1, 4, 3), (8, 2, 4, 1)]


@pytest.mark.parametrize("shape", ENGINE_SHAPES, ids=lambda s: "d{}dl{}e{}c{}".format(*s))
def test_engines_side_by_side(shape):
    """GlobalRowEngines: bit-exact, the counters of all rows, and the busy cycles of
    :func:`global_rows_cycles`; with 30 % gaps and stalls the same output."""
    d, dl, e, c = shape
    n, rows, fmt = 7, e * c, NumberFormat()
    rng = np.random.default_rng(d + e)
    qg, kg, vg = (rng.integers(fmt.data_min, fmt.data_max + 1, (r, d)) for r in (rows, n, n))
    want = reference(qg, kg, vg, fmt)
    out, stats = run_engine(qg, kg, vg, fmt, dl, engines=e)
    np.testing.assert_array_equal(out, want)
    assert stats == {"cycles": global_rows_cycles(d, dl, fmt, n, rows, e),
                     "qk_macs": 2 * rows * n * d, "sv_macs": rows * n * d, "exp_ops": rows * n}
    out, _ = run_engine(qg, kg, vg, fmt, dl, engines=e, gap=0.3, stall=0.3, seed=5)
    np.testing.assert_array_equal(out, want)


def test_engines_checks():
    fmt = NumberFormat()
    with pytest.raises(ValueError, match=r"^engines must be a power of two, at most max_rows "
                                         r"\(8\), not 3$"):
        GlobalRowEngines(fmt, 8, 2, 16, 8, 3)
    with pytest.raises(ValueError, match=r"^rows \(6\) must be a multiple of engines \(4\)$"):
        global_rows_cycles(8, 2, fmt, 16, 6, 4)
    assert global_rows_cycles(8, 2, fmt, 16, 6, 1) == global_row_cycles(8, 2, fmt, 16, 6)
