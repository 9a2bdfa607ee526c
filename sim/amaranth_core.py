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
from swatkit.rtl.core import GLOBAL_ROWS, command

from .streams import stream_get, stream_put

__all__ = ["CoreRun", "run_core"]


class CoreRun(NamedTuple):
    out: np.ndarray   # (N, d) int64
    stats: dict       # the core's counters after the run
    cycles: int       # clock cycles from the command to the last output row


def run_core(q, k, v, spec: AttentionSpec, fmt: NumberFormat | None = None,
             hw: HardwareConfig | None = None, *, run: AttentionSpec | None = None,
             global_qkv=None, seed: int = 0, gap: float = 0.0, stall: float = 0.0,
             vcd: str | None = None) -> CoreRun:
    """Simulate one run of N = ``len(q)`` rows on the core generated for ``spec`` (its maxima),
    with the pattern ``run`` (default: ``spec``'s, N rows); ``global_qkv`` as in
    :func:`~swatkit.golden.fixed_point_attention`. ``gap``/``stall`` are the probabilities of an
    idle input cycle and of a dropped ``ready`` on an output (seeded by ``seed``)."""
    fmt = fmt or NumberFormat()
    hw = hw or HardwareConfig(max_seq_len=max(len(q), 1))
    dut = SwatCore(spec, fmt, hw)
    p = dut.params
    lay = core_layouts(p)
    n = len(q)
    run = p.run_spec(n) if run is None else run
    p.check_run(run)
    tokens = list(run.global_tokens)
    band_rows = [i for i in range(n) if i not in set(tokens)]
    qg, kg, vg = (q, k, v) if global_qkv is None else global_qkv
    rng = random.Random(seed)
    seeds = [rng.randrange(2 ** 32) for _ in range(3)]
    result = {}

    async def control(ctx):
        ctx.set(dut.cmd.payload, lay["cmd"].const(command(p, run)))
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
        # the run's global columns first (resident), then the band rows
        beats = [lay["kv"].const({"k": [int(x) for x in k[j]], "v": [int(x) for x in v[j]]})
                 for j in [*tokens, *range(n)]]
        await stream_put(ctx, dut.kv, beats, rng=random.Random(seeds[0]), gap=gap)

    async def put_q(ctx):
        beats = [lay["q"].const([int(x) for x in q[i]]) for i in range(n)]
        await stream_put(ctx, dut.q, beats, rng=random.Random(seeds[1]), gap=gap)

    out = np.zeros((n, spec.head_dim), dtype=np.int64)

    async def get_o(ctx):
        rows = await stream_get(ctx, dut.o, len(band_rows), rng=random.Random(seeds[2]),
                                stall=stall, timeout=100_000)
        for i, r in zip(band_rows, rows, strict=True):
            out[i] = [int(r[c]) for c in range(spec.head_dim)]

    async def put_global(ctx):
        # each global row's q_g, then two passes over (k_g, v_g) per global row
        await stream_put(ctx, dut.qg, [lay["q"].const([int(x) for x in qg[g]]) for g in tokens],
                         rng=random.Random(seeds[0] + 1), gap=gap)

    async def put_global_kv(ctx):
        beats = [lay["kv"].const({"k": [int(x) for x in kg[j]], "v": [int(x) for x in vg[j]]})
                 for _ in tokens for _pass in range(2) for j in range(n)]
        await stream_put(ctx, dut.kvg, beats, rng=random.Random(seeds[1] + 1), gap=gap)

    async def get_global(ctx):
        rows = await stream_get(ctx, dut.og, len(tokens), rng=random.Random(seeds[2] + 1),
                                stall=stall, timeout=100_000)
        for g, r in zip(tokens, rows, strict=True):
            out[g] = [int(r[c]) for c in range(spec.head_dim)]

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    benches = [control, put_kv, put_q, get_o]
    if p.max_global_tokens and GLOBAL_ROWS:
        benches += [put_global, put_global_kv, get_global]
    for tb in benches:
        sim.add_testbench(tb)
    if vcd:
        with sim.write_vcd(vcd):
            sim.run()
    else:
        sim.run()
    return CoreRun(out, result["stats"], result["cycles"])
