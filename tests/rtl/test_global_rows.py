"""GlobalRowEngine in Amaranth's simulator against a plain NumPy per-row reference.

Every case runs under seeded random valid gaps on ``qg``/``kvg`` and ready stalls on ``og`` and
stall-free; the output must equal the reference exactly. The stall-free runs also check the busy
cycles against :func:`global_row_cycles` and the counters against their formulas.
"""

import random
import time
from dataclasses import dataclass

import numpy as np
import pytest
from amaranth.back import verilog
from amaranth.sim import Simulator

from swatkit.golden import NumberFormat
from swatkit.rtl.global_rows import (
    GlobalRowEngine,
    global_row_cycles,
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
               gap=0.0, stall=0.0):
    """The RTL with the reference's signature: returns (out, counters after the run)."""
    rows, head_dim = qg.shape
    n = len(kg)
    dut = GlobalRowEngine(fmt, head_dim, dim_lanes, max_seq_len or n, max_rows or max(rows, 1))
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
        await stream_put(ctx, dut.kvg, one_pass * (2 * rows), rng=random.Random(seeds[1]),
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
    fmt: NumberFormat = NumberFormat()
    inputs: str = "random"  # random | max | min | dominant

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
]


@pytest.mark.parametrize("stall", [0.0, 0.4], ids=["no-stalls", "stalls-40pc"])
@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_engine_matches_reference(case, stall):
    seed = 2024
    print(f"case {case.id} seed {seed} stall {stall}")
    qg, kg, vg = case.data(seed)
    got, stats = run_engine(qg, kg, vg, case.fmt, case.dim_lanes, seed=seed, gap=stall,
                            stall=stall)
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
