"""Run :class:`~swatkit.rtl.SwatCore` in Amaranth's simulator: the RTL as a function with the
golden model's signature (``run_core(q, k, v, spec, fmt, hw) -> out``), under seeded random input
gaps and output stalls; :func:`run_core_many` sends several commands back to back to one core
(runs with different patterns, and commands the core must refuse)."""

from __future__ import annotations

import random
from typing import NamedTuple

import numpy as np
from amaranth.hdl import Fragment, Module, ResetInserter, Signal
from amaranth.sim import Simulator

from swatkit.golden import AttentionSpec, NumberFormat
from swatkit.rtl import STAT_FIELDS, CoreParams, HardwareConfig, SwatCore, core_layouts
from swatkit.rtl.core import command

from .streams import stream_get, stream_put

__all__ = ["CoreInput", "CoreRun", "Reject", "Rejected", "ResetCore", "check_results",
           "run_core", "run_core_many"]


class CoreRun(NamedTuple):
    out: np.ndarray   # (N, d) int64
    stats: dict       # the core's counters after the run
    cycles: int       # clock cycles from the command to the last output row


class CoreInput(NamedTuple):
    """One run for :func:`run_core_many`: its inputs and pattern (as :func:`run_core`'s)."""
    q: np.ndarray
    k: np.ndarray
    v: np.ndarray
    run: AttentionSpec | None = None
    global_qkv: tuple | None = None
    cmd: dict | None = None   # the command payload to send instead of ``command(p, run)``
    sinks: tuple | None = None   # learned sink scores, one per query head (a sink-logit core)
    # (a decode core) continue the sequence by these rows: q, k, v are rows P … P + n − 1 only,
    # ``run`` the sequence's pattern at its length after them (P + n); no resident columns are
    # sent again
    cont: bool = False
    ctx: int = 0   # (a core of C > 1 contexts) the context the run starts or continues


class ResetCore(NamedTuple):
    """An item of :func:`run_core_many`: the core's reset held for ``cycles`` cycles between
    two commands (a decode core's context is then invalid)."""
    cycles: int = 2


class Reject(NamedTuple):
    """A command for :func:`run_core_many` that the core must refuse: the ``cmd`` payload (a
    dict for ``core_layouts(p)["cmd"].const``), watched for ``watch`` cycles after it moved."""
    payload: dict
    watch: int = 12


class Rejected(NamedTuple):
    """What the core did after a :class:`Reject` command (``watch`` cycles)."""
    error: bool      # ``error`` was set in every watched cycle
    busy: bool       # ``busy`` was high in some watched cycle
    taken: dict      # stream name -> beats that moved (valid & ready) while watched
    offered: dict    # stream name -> watched cycles with ``valid`` high (a beat was on offer)
    # a decode core's ``ctx_valid`` in the last watched cycle (C > 1 contexts: its C bits, an int)
    ctx_valid: bool | int | None = None


def check_results(results: list, wants: list, refused: int) -> None:
    """``AssertionError`` unless :func:`run_core_many`'s ``results`` hold exactly ``refused``
    refused commands, each with ``error`` set, never busy and no beat taken, and runs whose
    outputs equal ``wants``, in order."""
    rejected = [r for r in results if isinstance(r, Rejected)]
    assert len(rejected) == refused, rejected
    for r in rejected:
        assert r.error and not r.busy and not any(r.taken.values()), r
    runs = [r for r in results if isinstance(r, CoreRun)]
    assert len(runs) == len(wants)
    for got, want in zip(runs, wants, strict=True):
        np.testing.assert_array_equal(got.out, want)


def _row(x):
    return [int(e) for e in x]


def _plans(items, p: CoreParams) -> list:
    """Per item of :func:`run_core_many`: ``(kind, command payload, details)`` — ``"reject"``
    with the :class:`Reject`, ``"reset"`` with the :class:`ResetCore`, or ``"run"`` with a
    :class:`SimpleRun` (its pattern checked against the core's maxima)."""
    plans = []
    for it in items:
        if isinstance(it, Reject):
            plans.append(("reject", it.payload, it))
            continue
        if isinstance(it, ResetCore):
            plans.append(("reset", None, it))
            continue
        if not isinstance(it, CoreInput):
            raise TypeError(f"an item must be a CoreInput, a Reject or a ResetCore, not {it!r}")
        hg = p.group_heads
        if hg > 1 and np.shape(it.q)[:1] != (hg,):
            raise ValueError(f"q must have one row block per query head of the group, shape "
                             f"({hg}, N, d), not {np.shape(it.q)}")
        n = np.shape(it.q)[-2]
        run = p.run_spec(n) if it.run is None else it.run
        p.check_run(run)
        if run.seq_len != n and not it.cont:
            raise ValueError(f"the run's pattern has seq_len {run.seq_len}, not {n} rows")
        if it.cont:   # (the sequence's pattern, at its length after the continue)
            p.check_continue(run, n)
        if it.ctx:
            p.check_context(it.ctx)
        tokens = [int(t) for t in run.global_positions()]
        gq = (it.q, it.k, it.v) if it.global_qkv is None else it.global_qkv
        cmd = (command(p, run, seq_len=n, sink_scores=it.sinks, cont=it.cont, ctx=it.ctx)
               if it.cmd is None else it.cmd)
        cols = ([] if it.cont else [int(c) for c in run.columns()] if not run.block_size
                else tokens)
        plans.append(("run", cmd, SimpleRun(it.q, it.k, it.v, run, tokens, gq,
                                            p.random_stream_rows(run), cols, n)))
    return plans


def run_core_many(items, spec: CoreParams | AttentionSpec, fmt: NumberFormat | None = None,
                  hw: HardwareConfig | None = None, *, seed: int = 0, gap: float = 0.0,
                  stall: float = 0.0, timeout: int | None = None,
                  vcd: str | None = None, platform=None, heads: int = 1,
                  kv_heads: int = 1, sink_logits: bool = False, contexts: int = 0) -> list:
    """Send the commands of ``items`` back to back to one core generated for ``spec``: a
    :class:`CoreInput` starts a run (the next command is sent once the core is idle again), a
    :class:`Reject` sends a command the core must refuse. Returns, per item, a :class:`CoreRun`
    or a :class:`Rejected`.

    The input streams carry every run's beats back to back (the next run's first beats are on
    offer while the core is idle, refuses a command, or finishes a run), so a beat taken by the
    wrong run shows. Raises ``AssertionError`` if the core refuses a good command, if it reads a
    K/V word in the cycle it writes it (``SwatCore.rw_collision``), if a run moves
    another number of beats on a stream than it should (``kv``: G + N, ``q``: N, ``qg``: G,
    ``kvg``: 2·N if G > 0, ``o``: N − G, ``og``: G), or if a beat moves while the core is idle;
    ``TimeoutError`` if a run stays busy for more than ``timeout`` cycles (default: no limit) or
    a stream still has beats to move when the last run has ended. ``platform``: what the core is
    elaborated for (default none; e.g. ``DspTarget("generic", ram_bank_words=4)`` for banked
    K/V memories). ``spec`` may be the core's :class:`CoreParams`, whole (then without ``fmt``,
    ``hw`` and the head group); with an ``AttentionSpec``, ``hw`` defaults to the default lanes
    with counters for the longest run. ``heads``, ``kv_heads``: a grouped core
    (:class:`~swatkit.rtl.CoreParams`); each run's ``q`` is then (g, N, d) for its g = heads /
    kv_heads query heads, ``k`` and ``v`` (N, d), and its output (g, N, d); ``q`` and ``o`` move
    g·N beats. ``sink_logits``: the core takes learned sink scores on the command (each run's
    :attr:`CoreInput.sinks`)."""
    runs = [it for it in items if isinstance(it, CoreInput)]
    group = {}
    if not isinstance(spec, CoreParams):
        hw = hw or HardwareConfig(max_seq_len=max([np.shape(it.q)[-2] for it in runs] + [1]))
        group = {"heads": heads, "kv_heads": kv_heads, "sink_logits": sink_logits,
                 "contexts": contexts}
    dut = SwatCore(spec, fmt, hw, **group)
    # (the core's reset, for a ResetCore item: the core's alone, so that the stream benches,
    # which wait on the sync clock, go on through it)
    core_reset = Signal(name="core_reset")
    top = Module()
    top.submodules.dut = ResetInserter(core_reset)(dut)
    p = dut.params
    hg = p.group_heads
    lay = core_layouts(p)
    globals_ = p.global_rows
    randoms = bool(p.max_random_blocks)

    plans = _plans(items, p)   # per item: (kind, command payload, run details)
    good = [plan[2] for plan in plans if plan[0] == "run"]

    rng = random.Random(seed)
    seeds = [rng.randrange(2 ** 32) for _ in range(3)]
    outs = [np.zeros((hg, r.rows, p.spec.head_dim), dtype=np.int64) for r in good]
    done = {}
    results = []

    streams = {"q": dut.q, "kv": dut.kv, "o": dut.o}
    if globals_:
        streams.update(qg=dut.qg, kvg=dut.kvg, og=dut.og)
    if randoms:
        streams["kvr"] = dut.kvr
    names = list(streams)
    sampled = [s for name in names for s in (streams[name].valid, streams[name].ready)]

    def moved(values):
        return {name: (values[2 * i], values[2 * i + 1]) for i, name in enumerate(names)}

    def expected(r):
        n, g = r.rows, len(r.tokens)
        want = {"q": hg * n, "kv": len(r.cols) + n, "o": hg * n - g}
        if globals_:
            want.update(qg=g, kvg=2 * n if g else 0, og=g)
        if randoms:
            want["kvr"] = len(r.rnd)
        return want

    async def send(ctx, payload, what):
        """Offer a command until it moves; a beat moving meanwhile (the core idle) fails."""
        ctx.set(dut.cmd.payload, lay["cmd"].const(payload))
        ctx.set(dut.cmd.valid, 1)
        while True:
            _, _, ready, *vals = await ctx.tick().sample(dut.cmd.ready, *sampled)
            for name, (v, r) in moved(vals).items():
                assert not (v and r), f"a beat moved on {name} while the core was idle " \
                                      f"(before {what})"
            if ready:
                break
        ctx.set(dut.cmd.valid, 0)

    async def control(ctx):
        k = 0
        for index, (kind, payload, item) in enumerate(plans):
            if kind == "reset":   # (no command is offered meanwhile)
                ctx.set(core_reset, 1)
                for _ in range(item.cycles):
                    await ctx.tick()
                ctx.set(core_reset, 0)
                continue
            if kind == "reject":
                await send(ctx, payload, f"command {index}")
                results.append(await _watch(ctx, dut, streams, item.watch))
                continue
            r = good[k]
            await send(ctx, payload, f"command {index}")
            start = 0
            count = dict.fromkeys(names, 0)
            while True:
                _, _, busy, err, clash, *vals = await ctx.tick().sample(
                    dut.busy, dut.error, dut.rw_collision, *sampled)
                start += 1
                assert not clash, (f"item {index} ({r.run}): cycle {start} reads a K/V word "
                                   "where it is written (BankedMemory's no_rw_check)")
                for name, (v, rdy) in moved(vals).items():
                    count[name] += bool(v and rdy)
                if start == 1:
                    assert not err, f"the core refused the command of item {index} ({r.run})"
                if not busy and start > 1:
                    break
                if timeout is not None and start > timeout:
                    raise TimeoutError(f"item {index} ({r.run}) still busy after {timeout} "
                                       f"cycles; beats moved: {count}")
            want = expected(r)
            assert count == want, (f"item {index} ({r.run}) moved {count} beats, expected "
                                   f"{want}")
            stats = ctx.get(dut.stats)
            results.append(CoreRun(outs[k] if hg > 1 else outs[k][0],
                                   {name: int(getattr(stats, name))
                                             for name in STAT_FIELDS}, start))
            k += 1
        # every stream must be done: nothing left to move
        for _ in range(2):
            await ctx.tick()
        left = [name for name in benches_names if not done.get(name)]
        if left:
            raise TimeoutError(f"streams {left} still have beats to move after the last run")

    sim = Simulator(Fragment.get(top, platform) if platform is not None else top)
    sim.add_clock(1e-8)
    benches = _stream_benches(dut, good, outs, done, seeds, gap, stall)
    benches_names = list(benches)
    for tb in [control, *benches.values()]:
        sim.add_testbench(tb)
    if vcd:
        with sim.write_vcd(vcd):
            sim.run()
    else:
        sim.run()
    return results


async def _watch(ctx, dut, streams: dict, cycles: int) -> Rejected:
    """What the core does for ``cycles`` cycles after a command it must refuse moved."""
    names = list(streams)
    sampled = [s for name in names for s in (streams[name].valid, streams[name].ready)]
    taken = dict.fromkeys(names, 0)
    offered = dict.fromkeys(names, 0)
    error, busy = True, False
    for _ in range(cycles):
        _, _, err, bsy, *vals = await ctx.tick().sample(dut.error, dut.busy, *sampled)
        error &= bool(err)
        busy |= bool(bsy)
        for i, name in enumerate(names):
            taken[name] += bool(vals[2 * i] and vals[2 * i + 1])
            offered[name] += bool(vals[2 * i])
    valid = None
    if dut.params.decode:
        valid = ctx.get(dut.ctx_valid)
        valid = int(valid) if dut.params.ctx_bits else bool(valid)
    return Rejected(error, busy, taken, offered, valid)


def _stream_benches(dut, good: list, outs: list, done: dict, seeds: list, gap: float,
                    stall: float) -> dict:
    """The testbenches of :func:`run_core_many`'s streams, ``{stream: testbench}``: sources
    of every run's rows on the inputs (seeded gaps), sinks of the outputs (seeded stalls)
    that write each run's rows into ``outs``; each marks its stream in ``done`` at the end."""
    p = dut.params
    hg, lay = p.group_heads, core_layouts(p)

    async def put_kv(ctx):
        # per run: its resident columns first (global tokens or sinks), then the band rows
        beats = [lay["kv"].const({"k": _row(r.k[j]), "v": _row(r.v[j])})
                 for r in good for j in [*r.cols, *range(r.rows)]]
        await stream_put(ctx, dut.kv, beats, rng=random.Random(seeds[0]), gap=gap)
        done["kv"] = True

    async def put_random_kv(ctx):
        # per run: the random blocks' K/V rows, query block by query block
        beats = [lay["kv"].const({"k": _row(r.k[j]), "v": _row(r.v[j])})
                 for r in good for j in r.rnd]
        await stream_put(ctx, dut.kvr, beats, rng=random.Random(seeds[0] + 2), gap=gap)
        done["kvr"] = True

    async def put_q(ctx):
        # (a grouped core: the g query heads of position 0, then of position 1, …)
        beats = [lay["q"].const(_row(r.q[h, i] if hg > 1 else r.q[i])) for r in good
                 for i in range(r.rows) for h in range(hg)]
        await stream_put(ctx, dut.q, beats, rng=random.Random(seeds[1]), gap=gap)
        done["q"] = True

    async def get_o(ctx):
        total = sum(hg * r.rows - len(r.tokens) for r in good)
        rows = iter(await stream_get(ctx, dut.o, total, rng=random.Random(seeds[2]),
                                     stall=stall, timeout=100_000))
        for out, r in zip(outs, good, strict=True):
            for i in range(r.rows):
                if i not in r.tokens:
                    for h in range(hg):
                        row = next(rows)
                        out[h, i] = [int(row[c]) for c in range(p.spec.head_dim)]
        done["o"] = True

    async def put_global(ctx):
        # each global row's q_g (two passes over (k_g, v_g) per run serve them all)
        beats = [lay["q"].const(_row(r.gq[0][g])) for r in good for g in r.tokens]
        await stream_put(ctx, dut.qg, beats, rng=random.Random(seeds[0] + 1), gap=gap)
        done["qg"] = True

    async def put_global_kv(ctx):
        beats = [lay["kv"].const({"k": _row(r.gq[1][j]), "v": _row(r.gq[2][j])})
                 for r in good if r.tokens for _pass in range(2)
                 for j in range(r.rows)]
        await stream_put(ctx, dut.kvg, beats, rng=random.Random(seeds[1] + 1), gap=gap)
        done["kvg"] = True

    async def get_global(ctx):
        total = sum(len(r.tokens) for r in good)
        rows = iter(await stream_get(ctx, dut.og, total, rng=random.Random(seeds[2] + 1),
                                     stall=stall, timeout=100_000))
        for out, r in zip(outs, good, strict=True):
            for g in r.tokens:
                row = next(rows)
                out[0, g] = [int(row[c]) for c in range(p.spec.head_dim)]
        done["og"] = True

    benches = {"kv": put_kv, "q": put_q, "o": get_o}
    if p.global_rows:
        benches.update(qg=put_global, kvg=put_global_kv, og=get_global)
    if p.max_random_blocks:
        benches["kvr"] = put_random_kv
    return benches


class SimpleRun(NamedTuple):
    q: np.ndarray
    k: np.ndarray
    v: np.ndarray
    run: AttentionSpec
    tokens: list
    gq: tuple
    rnd: np.ndarray   # the K/V rows of the random-block stream
    cols: list        # the resident columns sent first on kv (global tokens or sinks)
    rows: int         # the run's rows (N; a continue's n)


def run_core(q, k, v, spec: CoreParams | AttentionSpec, fmt: NumberFormat | None = None,
             hw: HardwareConfig | None = None, *, run: AttentionSpec | None = None,
             global_qkv=None, seed: int = 0, gap: float = 0.0, stall: float = 0.0,
             timeout: int | None = None, vcd: str | None = None, platform=None,
             heads: int = 1, kv_heads: int = 1, sinks=None) -> CoreRun:
    """Simulate one run of N = ``len(q)`` rows on the core generated for ``spec`` (its maxima),
    with the pattern ``run`` (default: ``spec``'s, N rows); ``global_qkv`` as in
    :func:`~swatkit.golden.fixed_point_attention`. ``gap``/``stall`` are the probabilities of an
    idle input cycle and of a dropped ``ready`` on an output (seeded by ``seed``). One item of
    :func:`run_core_many` (whose checks of the beats moved apply, and its defaults; ``heads``,
    ``kv_heads``: a grouped core, q of shape (g, N, d); ``sinks``: learned sink scores, one per
    query head, on a core generated to take them)."""
    group = ({} if isinstance(spec, CoreParams) else
             {"heads": heads, "kv_heads": kv_heads, "sink_logits": sinks is not None})
    (result,) = run_core_many([CoreInput(q, k, v, run, global_qkv, sinks=sinks)], spec, fmt,
                              hw, seed=seed, gap=gap, stall=stall, timeout=timeout, vcd=vcd,
                              platform=platform, **group)
    return result
