"""Run :class:`~swatkit.rtl.SwatCore` in Amaranth's simulator: the RTL as a function with the
golden model's signature (``run_core(q, k, v, spec, fmt, hw) -> out``), under seeded random input
gaps and output stalls."""

from __future__ import annotations

import random
from typing import NamedTuple

import numpy as np
from amaranth.sim import Simulator

from swatkit.golden import AttentionSpec, NumberFormat
from swatkit.rtl import STAT_FIELDS, HardwareConfig, SwatCore, core_layouts

from .streams import stream_get, stream_put

__all__ = ["CoreRun", "run_core"]


class CoreRun(NamedTuple):
    out: np.ndarray   # (N, d) int64
    stats: dict       # the core's counters after the run
    cycles: int       # clock cycles from the command to the last output row


def run_core(q, k, v, spec: AttentionSpec, fmt: NumberFormat | None = None,
             hw: HardwareConfig | None = None, *, seed: int = 0, gap: float = 0.0,
             stall: float = 0.0, vcd: str | None = None) -> CoreRun:
    """Simulate one run of N = ``len(q)`` rows; ``gap``/``stall`` are the probabilities of an
    idle input cycle and of a dropped ``o.ready`` (seeded by ``seed``)."""
    fmt = fmt or NumberFormat()
    hw = hw or HardwareConfig(max_seq_len=max(len(q), 1))
    dut = SwatCore(spec, fmt, hw)
    lay = core_layouts(dut.params)
    n = len(q)
    rng = random.Random(seed)
    seeds = [rng.randrange(2 ** 32) for _ in range(3)]
    result = {}

    async def control(ctx):
        ctx.set(dut.cmd.payload, lay["cmd"].const({"seq_len": n}))
        ctx.set(dut.cmd.valid, 1)
        await ctx.tick().until(dut.cmd.ready)
        ctx.set(dut.cmd.valid, 0)
        start = 0
        while True:
            _, _, busy = await ctx.tick().sample(dut.busy)
            start += 1
            if not busy and start > 1:
                break
        stats = ctx.get(dut.stats)
        result["stats"] = {name: int(getattr(stats, name)) for name in STAT_FIELDS}
        result["cycles"] = start

    async def put_kv(ctx):
        beats = [lay["kv"].const({"k": [int(x) for x in k[j]], "v": [int(x) for x in v[j]]})
                 for j in range(n)]
        await stream_put(ctx, dut.kv, beats, rng=random.Random(seeds[0]), gap=gap)

    async def put_q(ctx):
        beats = [lay["q"].const([int(x) for x in q[i]]) for i in range(n)]
        await stream_put(ctx, dut.q, beats, rng=random.Random(seeds[1]), gap=gap)

    async def get_o(ctx):
        rows = await stream_get(ctx, dut.o, n, rng=random.Random(seeds[2]), stall=stall,
                                timeout=100_000)
        result["out"] = np.array([[int(r[c]) for c in range(spec.head_dim)] for r in rows],
                                 dtype=np.int64).reshape(n, spec.head_dim)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    for tb in (control, put_kv, put_q, get_o):
        sim.add_testbench(tb)
    if vcd:
        with sim.write_vcd(vcd):
            sim.run()
    else:
        sim.run()
    return CoreRun(result["out"], result["stats"], result["cycles"])
