"""Scheduler: the Q registers and the row bookkeeping that start each row's QK walk.

What it does: takes Q rows 0 … N−1 from ``q`` into two registers (the next row's Q and one
behind it, so that ``q.ready`` is a function of registers only), keeps the next row's window —
its first band key ``lo`` (class-local), that key's lane and slot, the K/V rows it waits for
(``hi1 = min(i + dilation·after + 1, N)``; BigBird: its block's ``min((B + 2)·b, N)``) — in
registers worked out for the next row when a row starts, and offers the row on ``rows`` when its
Q row is in, its keys are written (``kv_wr >= hi1``), a score buffer is free (fewer than
``score_buffers`` rows between the QK start and the end of SV) and, on cores that have them, the
global columns and the row's random blocks are loaded. One row per transfer; a row can start in
the cycle its predecessor's walk issues its last token.

Ports:

- ``q``: In(stream) — Q rows; ``run``: In(run) — the command stage's run registers.
- ``rows``: Out(stream(:func:`row_layout`)) — a row's start: its Q row and where its keys are
  (``rem``: offset of its last key from its first, ``lane0``, ``base``, ``later``: the slot
  after ``base``, ``sbuf``: its score buffer, ``region``: its residue class's region, ``rnd``/
  ``rsel``: random blocks and their buffer, ``cols``: a sink core's sink columns of the row).
- ``kv_wr``, ``kv_a``, ``kv_cls``: In — the K/V ring's written rows and its next row's index and
  class; ``pre_done``: In — the global columns are loaded; ``blocks``: In — query blocks whose
  random rows are loaded; ``sv_fin``: In — a row finished SV (frees its score buffer).
- ``q_rows``: Out — the Q rows counter of ``stats``.
- ``context`` (a decode core of C > 1 contexts): :func:`~swatkit.rtl.contexts.
  context_signature` of :func:`carried_layout` — the row counters and the next row's window,
  saved when a run ends and loaded when a continue starts (docs/rtl.md, "Decode").
"""

from __future__ import annotations

from types import SimpleNamespace

from amaranth import Array, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .config import CoreParams
from .contexts import carry, context_signature
from .row_walk import wrap_inc
from .run_control import STAT_BITS, run_signature
from .units import state_invariants

__all__ = ["Scheduler", "carried_layout", "row_layout"]


def carried_layout(p: CoreParams) -> data.StructLayout:
    """What a context keeps of the scheduler (C > 1 contexts): the Q rows taken and started,
    the next row's position, its band's first key (with its lane, slot and wait), its
    class-local index, class and region, and a sink core's sink columns. (The score buffer
    pointer and the query head are not: every buffer is free and the head 0 when a run ends.)"""
    depth, idx = range(max(p.kv_depth, 2)), unsigned(p.index_bits)
    fields = {"q_cnt": idx, "qk_row": idx, "lo": idx, "qk_a": idx,
              "lo_lane": range(max(p.hw.key_lanes, 2)), "lo_base": depth,
              "lo_wait": range(max(p.spec.before, p.block_size, 1) + 1)}
    if p.max_dilation > 1:
        fields.update(qk_cls=range(max(p.max_dilation, 2)), qk_region=depth)
    if p.group_heads > 1:
        fields["qk_pos"] = idx
    if p.sink_core:
        fields["cols"] = range(p.max_global_tokens + 1)
    return data.StructLayout(fields)


def row_layout(p: CoreParams) -> data.StructLayout:
    """Where a row's keys are: what an engine needs to walk it (:meth:`RowWalk.start`)."""
    depth = range(max(p.kv_depth, 2))
    fields = {"lane0": range(max(p.hw.key_lanes, 2)), "base": depth,
              "sbuf": range(p.score_buffers), "rem": range(p.window + 1), "later": depth}
    if p.max_dilation > 1:
        fields["region"] = depth
    if p.max_random_blocks:   # the row has random blocks, in buffer rsel
        fields.update(rnd=unsigned(1), rsel=unsigned(1))
    if p.sink_core:   # the sink columns the row walks (a causal run: up to the row)
        fields["cols"] = range(p.max_global_tokens + 1)
    if p.sink_logits:   # the learned sink score of the row's query head
        fields["sink"] = signed(p.widths.score)
    return data.StructLayout(fields)


class Scheduler(wiring.Component):
    """The Q registers and the row bookkeeping (module docstring).

    Parameters
    ----------
    params : CoreParams
    q_layout, cmd_layout : data.Layout
        The ``q`` payload's and the command's layouts.
    """

    def __init__(self, params: CoreParams, q_layout: data.Layout, cmd_layout: data.Layout):
        self.params = p = params
        members = {
            "q": In(stream.Signature(q_layout)),
            "run": In(run_signature(p, cmd_layout)),
            "rows": Out(stream.Signature(data.StructLayout(
                {"q": unsigned(q_layout.size), "row": row_layout(p)}))),
            "kv_wr": In(p.index_bits),
            "kv_a": In(p.index_bits),
            "sv_fin": In(1),
            "q_rows": Out(STAT_BITS),
        }
        if p.max_dilation > 1:
            members["kv_cls"] = In(range(max(p.max_dilation, 2)))
        if p.max_global_tokens:
            members["pre_done"] = In(1)
        if p.max_random_blocks:
            members["blocks"] = In(p.index_bits)
        if p.ctx_bits:
            members["context"] = Out(context_signature(carried_layout(p)))
        super().__init__(members)
        self.state = SimpleNamespace(
            q_cnt=Signal(p.index_bits, name="q_cnt"),   # Q rows accepted
            q_full=Signal(name="q_full"),
            q_skid_full=Signal(name="q_skid_full"),
            q_more=Signal(name="q_more"),               # q_cnt < n
            qk_row=Signal(p.index_bits, name="qk_row"),   # rows whose QK has started
            qk_more=Signal(name="qk_more"),             # qk_row < n
            hi1=Signal(p.index_bits + 1, name="hi1"),
            near=Signal(name="near"),
            sb_free=Signal(range(p.score_buffers + 1), name="sb_free"),
        )
        if p.block_size:   # block-sparse: the next row's place in its block, its block, (B + 2)·b
            blk = p.block_size
            self.state.blk_t = Signal(range(max(blk, 2)), name="blk_t")
            self.state.qk_blk = Signal(p.index_bits, name="qk_blk")
            self.state.bend = Signal(p.index_bits + 2, name="bend")
            self.state.row_rnd = Signal(name="row_rnd")   # the next row has random blocks
        # a grouped core: the next row's position and query head (rows in the order position
        # 0 heads 0 … g − 1, position 1, …); one head: the position is the row
        if p.group_heads > 1:
            self.state.qk_pos = Signal(p.index_bits, name="qk_pos")
            self.state.qk_head = Signal(range(p.group_heads), name="qk_head")
        else:
            self.state.qk_pos, self.state.qk_head = self.state.qk_row, 0

    def invariants(self) -> list[tuple]:
        """``(test, message)``: the scheduler's invariants (for ``swatkit prove``): the Q
        registers and the row counters, and the next row's window — the band's
        (:meth:`_band_invariants`) or, on a block-sparse core, its block's
        (:meth:`_block_invariants`)."""
        s, run = self.state, self.run
        running, n = run.running, run.n
        nq = run.nq if self.params.group_heads > 1 else n   # Q rows of the run
        heads = []
        if self.params.group_heads > 1:
            heads = [(s.qk_row == s.qk_pos * self.params.group_heads + s.qk_head,
                      "inv: rows started = position · g + head")]
        return [
            *heads,
            (~running | (s.q_cnt == s.qk_row + s.q_full + s.q_skid_full),
             "inv: Q rows = started + Q registers"),
            (~s.q_skid_full | s.q_full, "inv: the second Q register only behind the first"),
            (~running | (s.q_more == (s.q_cnt < nq)), "inv: q_more = q_cnt < nq"),
            (~running | (s.q_cnt <= nq), "inv: q_cnt <= nq"),
            (~running | (s.qk_more == (s.qk_row < nq)), "inv: qk_more = qk_row < nq"),
            *(self._block_invariants() if self.params.block_size else self._band_invariants()),
        ]

    def _block_invariants(self) -> list[tuple]:
        """A block-sparse core's next row: row ``qk_row`` is row ``blk_t`` of block ``qk_blk``,
        it waits for ``hi1 = min((B + 2)·b, N)`` K/V rows, it has random blocks when its block
        is a middle one (1 <= B <= nb − 2) and the run has some; every started row had its
        block's keys."""
        s, run, blk = self.state, self.run, self.params.block_size
        running, n = run.running, run.n
        started_end = Mux(s.blk_t == 0, s.bend - blk, s.bend)   # the last started row's block
        checks = [
            (~running | (s.blk_t < blk), "inv: blk_t < b"),
            (~running | (s.qk_row == s.qk_blk * blk + s.blk_t),
             "inv: qk_row = block · b + place in the block"),
            (~running | (s.bend == (s.qk_blk + 2) * blk), "inv: bend = (block + 2) · b"),
            (~running | (s.hi1 == Mux(s.bend > n, n, s.bend)), "inv: hi1 = min(bend, n)"),
            (~running | (s.qk_row == 0) | (self.kv_wr >= Mux(started_end > n, n, started_end)),
             "inv: every started row had its block's keys"),
        ]
        if self.params.max_random_blocks:
            checks.append((~running | (s.row_rnd == (run.rcount.any() & (s.qk_blk != 0)
                                                     & (s.bend <= n))),
                           "inv: row_rnd = a middle block of a run with random blocks"))
        return checks

    def _band_invariants(self) -> list[tuple]:
        """A band core's next row: ``hi1``, ``near``, and every started row had its keys."""
        s, run = self.state, self.run
        running, n = run.running, run.n
        # (the run's window is the command's: dafter = dilation · after of the run)
        reach = s.qk_pos + run.dafter + 1
        # the last row started has the next row's position, or the one before
        started = reach - 1 + (s.qk_head != 0) if self.params.group_heads > 1 else reach - 1
        return [
            (~running | (s.hi1 == Mux(reach > n, n, reach)),
             "inv: hi1 = min(qk_pos + dilation·after + 1, n)"),
            (~running | (s.near == (reach > n)), "inv: near = the row's band reaches N"),
            (~running | (s.qk_row == 0) | (self.kv_wr >= Mux(started > n, n, started)),
             "inv: every started row had its keys"),
        ]

    def elaborate(self, platform):
        m = Module()
        p, run, s = self.params, self.run, self.state
        kl, g = p.hw.key_lanes, p.groups
        sg, depth, before = p.region_words, p.kv_depth, p.spec.before
        dmax, blk, rmax = p.max_dilation, p.block_size, p.max_random_blocks
        running, n, cmd, start_run = run.running, run.n, run.cmd, run.start
        dil = run.dil if dmax > 1 else 1
        q_cnt, q_full = s.q_cnt, s.q_full
        qk_row, qk_more, hi1, near, sb_free = s.qk_row, s.qk_more, s.hi1, s.near, s.sb_free
        q_rows = Signal(STAT_BITS, name="stat_q_rows")
        m.d.comb += self.q_rows.eq(q_rows)
        qk_start = Signal()
        m.d.comb += qk_start.eq(self.rows.valid & self.rows.ready)
        new_seq = (start_run & ~run.cont) if p.decode else start_run
        nq, qk_pos, adv = self._heads(m, qk_start, new_seq)

        # -- Q registers -----------------------------------------------------------------------
        q_next = self._q_registers(m, qk_start, q_rows, nq)

        # -- row bookkeeping -------------------------------------------------------------------
        # The next row to start, i = qk_row: its residue class (and the class's K/V region) and
        # its class-local index a; its band's first key lo (class-local) and that key's lane and
        # slot; whether its band reaches past the sequence (near), and hi1, the K/V rows it
        # waits for (i + dilation·after + 1, at most N). All kept in registers and worked out
        # for the next row when a row starts, so that the QK start is a plain compare.
        lo_lane = Signal(range(max(kl, 2)))
        lo_base = Signal(range(max(depth, 2)))
        sbuf = Signal(range(p.score_buffers))
        lo = Signal(p.index_bits)
        qk_a = Signal(p.index_bits)
        qk_cls = Signal(range(max(dmax, 2)))
        qk_region = Signal(range(max(depth, 2)))
        # lo = max(a − before, 0) moves on with a once a >= before: lo_wait = max(before − a, 0)
        # counts the indices until then, so that neither lo nor the lo_lane/lo_base step needs a
        # compare or subtract against the run's before (a before register in those made Yosys'
        # ABC9 abort on the ULX3S default; docs/fpga.md)
        lo_wait = Signal(range(max(before, blk, 1) + 1))   # (one bit at least)
        lo_step = ~lo_wait.any()   # a >= before
        wrap = (qk_cls == dil - 1) if dmax > 1 else 1   # the next row has the next index
        if blk:
            # Block-sparse: row i of block B walks keys max((B − 1)·b, 0) … min((B + 2)·b, N)
            # − 1. The pointer lo above runs as a band with before = b, so that at a block's
            # first row it is (B − 1)·b; the block's rows keep that (blo*). hi1 is min((B +
            # 2)·b, N), from bend = (B + 2)·b; row_rnd says the next row has random blocks
            # (1 <= B <= nb − 2).
            blk_t, qk_blk, bend, row_rnd = s.blk_t, s.qk_blk, s.bend, s.row_rnd
            blo = Signal.like(lo)
            blo_lane = Signal.like(lo_lane)
            blo_base = Signal.like(lo_base)
            blk_first = blk_t == 0
            row_lo = Mux(blk_first, lo, blo)
            row_lo_lane = Mux(blk_first, lo_lane, blo_lane)
            row_lo_base = Mux(blk_first, lo_base, blo_base)
        else:
            row_lo, row_lo_lane, row_lo_base = lo, lo_lane, lo_base
        if p.decode:
            self._continue_window(m, near, hi1)
        with m.If(new_seq):
            if blk:
                m.d.sync += [hi1.eq(Mux(cmd.seq_len > 2 * blk, 2 * blk, cmd.seq_len)),
                             bend.eq(2 * blk), blk_t.eq(0), qk_blk.eq(0), row_rnd.eq(0),
                             lo.eq(0), lo_wait.eq(blk), qk_a.eq(0)]
            else:
                reach = (cmd.dilation if dmax > 1 else 1) * cmd.after + 1
                m.d.sync += [near.eq(reach > cmd.seq_len),
                             hi1.eq(Mux(reach > cmd.seq_len, cmd.seq_len, reach)),
                             lo.eq(0), lo_wait.eq(cmd.before), qk_a.eq(0), qk_cls.eq(0),
                             qk_region.eq(0)]
        with m.Elif(adv):
            if blk:
                with m.If(blk_first):
                    m.d.sync += [blo.eq(lo), blo_lane.eq(lo_lane), blo_base.eq(lo_base)]
                with m.If(blk_t == blk - 1):   # the next row starts the next block
                    nxt = bend + blk
                    m.d.sync += [blk_t.eq(0), qk_blk.eq(qk_blk + 1), bend.eq(nxt),
                                 hi1.eq(Mux(nxt > n, n, nxt))]
                    if rmax:
                        m.d.sync += row_rnd.eq(run.rcount.any() & (nxt <= n))
                with m.Else():
                    m.d.sync += blk_t.eq(blk_t + 1)
            else:
                reach = qk_pos + run.dafter + 2
                m.d.sync += [near.eq(reach > n), hi1.eq(Mux(reach > n, n, reach))]
            if dmax > 1:
                with m.If(wrap):
                    m.d.sync += [qk_cls.eq(0), qk_region.eq(0)]
                with m.Else():
                    m.d.sync += [qk_cls.eq(qk_cls + 1), qk_region.eq(qk_region + sg)]
            with m.If(wrap):
                m.d.sync += qk_a.eq(qk_a + 1)
                with m.If(lo_step):
                    m.d.sync += lo.eq(lo + 1)
                with m.Else():
                    m.d.sync += lo_wait.eq(lo_wait - 1)
        # the row's last band key (class-local): a + after, or near the end the last row of its
        # class that arrived (every K/V row has arrived by then: hi1 = N)
        kv_a = self.kv_a
        last_a = (kv_a - 1 + (qk_cls < self.kv_cls)) if dmax > 1 else kv_a - 1
        rem0 = Signal(range(p.window + 1))   # offset of the row's last key from its first
        if blk:
            m.d.comb += rem0.eq(hi1 - 1 - row_lo)
        else:
            m.d.comb += rem0.eq(Mux(near, last_a, qk_a + run.after) - lo)

        # -- the QK start ----------------------------------------------------------------------
        self._qk_counters(m, qk_start, nq)
        # (a row with random blocks also waits for its block's random rows)
        rnd_ok = (~row_rnd | (self.blocks >= qk_blk)) if rmax else 1
        pre_done = self.pre_done if p.max_global_tokens else 1
        m.d.comb += self.rows.valid.eq(running & qk_more & q_full & (self.kv_wr >= hi1)
                                       & sb_free.any() & pre_done & rnd_ok)
        row = self.rows.payload.row
        m.d.comb += [self.rows.payload.q.eq(q_next), row.lane0.eq(row_lo_lane),
                     row.base.eq(row_lo_base), row.sbuf.eq(sbuf), row.rem.eq(rem0),
                     row.later.eq(wrap_inc(row_lo_base, g, sg))]
        if dmax > 1:
            m.d.comb += row.region.eq(qk_region)
        if rmax:
            m.d.comb += [row.rnd.eq(row_rnd), row.rsel.eq(qk_blk[0])]
        cols = None
        if p.sink_core:
            cols = self._sink_columns(m, new_seq, adv)
            m.d.comb += row.cols.eq(cols)
        if p.sink_logits:   # the learned sink score of the row's query head
            sinks = [run.sinks[h] for h in range(p.group_heads)]
            m.d.comb += row.sink.eq(Array(sinks)[s.qk_head] if len(sinks) > 1 else sinks[0])
        with m.If(qk_start):
            m.d.sync += [qk_row.eq(qk_row + 1),
                         sbuf.eq(Mux(sbuf == p.score_buffers - 1, 0, sbuf + 1))]
        with m.If(adv), m.If(wrap & lo_step):   # the next index's band starts one key on
            with m.If(lo_lane == kl - 1):
                m.d.sync += [lo_lane.eq(0), lo_base.eq(wrap_inc(lo_base, g, sg))]
            with m.Else():
                m.d.sync += lo_lane.eq(lo_lane + 1)

        # -- a new run resets every pointer and counter ---------------------------------------
        self._new_run(m, new_seq, (q_cnt, qk_row, lo_lane, lo_base, sbuf), q_rows)
        if p.ctx_bits:
            self._contexts(m, {"q_cnt": q_cnt, "qk_row": qk_row, "lo": lo, "qk_a": qk_a,
                               "lo_lane": lo_lane, "lo_base": lo_base, "lo_wait": lo_wait,
                               "qk_cls": qk_cls, "qk_region": qk_region, "qk_pos": s.qk_pos,
                               "cols": cols})
        state_invariants(m, platform, [*self.invariants(), (
            (q_rows <= q_cnt, "inv: stats.q_rows <= q_cnt") if self.params.decode
            else (q_rows == q_cnt, "inv: stats.q_rows = q_cnt"))])
        return m

    def _continue_window(self, m: Module, near, hi1):
        """A continue (decode core) keeps the next row's window, whose reach is the row itself
        (a continued sequence has after = 0): hi1 = qk_pos + 1 (C > 1 contexts: the position
        in the named context's record)."""
        p, s, run = self.params, self.state, self.run
        pos = s.qk_pos
        if p.ctx_bits:
            rec = self.context.load
            pos = rec.qk_pos if p.group_heads > 1 else rec.qk_row
        with m.If(run.start & run.cont):
            m.d.sync += [near.eq(0), hi1.eq(pos + 1)]

    def _contexts(self, m: Module, regs: dict):
        """(C > 1 contexts) the carried registers (``regs``, those :func:`carried_layout`
        has), loaded from the named context's record when a continue starts."""
        fields = carried_layout(self.params).members
        carry(m, self.context, {k: r for k, r in regs.items() if k in fields},
              self.run.start & self.run.cont)

    def _qk_counters(self, m: Module, qk_start, nq):
        """The registered forms of "rows left to start" (``qk_more``: qk_row < nq) and "a score
        buffer is free" (``sb_free``: qk_row − sv_done < score_buffers), so that the QK start
        is a short function of registers."""
        p, run, s = self.params, self.run, self.state
        start_run, sv_fin, qk_more, sb_free = run.start, self.sv_fin, s.qk_more, s.sb_free
        with m.If(qk_start):
            m.d.sync += qk_more.eq(s.qk_row + 1 < nq)
        with m.If(qk_start & ~sv_fin):
            m.d.sync += sb_free.eq(sb_free - 1)
        with m.Elif(sv_fin & ~qk_start):
            m.d.sync += sb_free.eq(sb_free + 1)
        with m.If(start_run):
            m.d.sync += [qk_more.eq(1), sb_free.eq(p.score_buffers)]

    def _new_run(self, m: Module, new_seq, counters, q_rows):
        """A new run resets ``counters`` (a continue on a decode core keeps them: its rows go
        on from the sequence's) and the Q rows counter of ``stats`` (every run)."""
        p, run, s = self.params, self.run, self.state
        start_run = run.start
        if p.decode:
            with m.If(new_seq):
                m.d.sync += [sig.eq(0) for sig in counters]
            with m.If(start_run):
                m.d.sync += [q_rows.eq(0), s.q_more.eq(1)]
        else:
            with m.If(start_run):
                m.d.sync += [sig.eq(0) for sig in (*counters, q_rows)]
                m.d.sync += s.q_more.eq(1)   # (seq_len >= 1)

    def _heads(self, m: Module, qk_start, start_run):
        """``(nq, qk_pos, adv)``: the run's Q rows, the next row's position, and ``adv``, a
        row start after which the row bookkeeping moves on — the start of a position's last
        query head (a grouped core walks one position's keys once per head; one head: every
        start, and the position is the row)."""
        p, run, s = self.params, self.run, self.state
        hg = p.group_heads
        if hg == 1:
            return run.n, s.qk_row, qk_start
        qk_pos, qk_head = s.qk_pos, s.qk_head
        adv = Signal()
        m.d.comb += adv.eq(qk_start & (qk_head == hg - 1))
        with m.If(qk_start):
            m.d.sync += qk_head.eq(Mux(qk_head == hg - 1, 0, qk_head + 1))
        with m.If(adv):
            m.d.sync += qk_pos.eq(qk_pos + 1)
        with m.If(start_run):
            m.d.sync += [qk_pos.eq(0), qk_head.eq(0)]
        return run.nq, qk_pos, adv

    def _sink_columns(self, m: Module, start_run, adv) -> Signal:
        """The sink columns of the next row (returned): the run's S, or in a causal run
        ``min(i + 1, S)`` for position i (:meth:`CoreParams.column_counts`)."""
        run, cmd = self.run, self.run.cmd
        cols = Signal(range(self.params.max_global_tokens + 1), name="sink_cols")
        with m.If(start_run):
            m.d.sync += cols.eq(Mux((cmd.after == 0) & cmd.sink_count.any(), 1, cmd.sink_count))
        with m.Elif(adv & (cols < run.gcount)):
            m.d.sync += cols.eq(cols + 1)
        return cols

    def _q_registers(self, m: Module, qk_start, q_rows, nq) -> Signal:
        """The next row's Q (returned) and one more behind it (``q_skid``): the Q stream's
        ready is a function of registers only, not of the QK start (a long path into the Q
        source). ``nq``: the run's Q rows."""
        run, s = self.run, self.state
        q_cnt, q_full, q_skid_full, q_more = s.q_cnt, s.q_full, s.q_skid_full, s.q_more
        q_next = Signal(len(self.q.payload.as_value()))
        q_skid = Signal(len(self.q.payload.as_value()))
        q_take = self.q.valid & self.q.ready
        m.d.comb += self.q.ready.eq(run.running & q_more & ~q_skid_full)
        with m.If(qk_start):   # q_next moves to the QK engine
            with m.If(q_skid_full):
                m.d.sync += [q_next.eq(q_skid), q_skid_full.eq(0)]
            with m.Elif(~q_take):
                m.d.sync += q_full.eq(0)
        with m.If(q_take):   # (q_skid is empty)
            with m.If(~q_full | qk_start):
                m.d.sync += [q_next.eq(self.q.payload.as_value()), q_full.eq(1)]
            with m.Else():
                m.d.sync += [q_skid.eq(self.q.payload.as_value()), q_skid_full.eq(1)]
            m.d.sync += [q_cnt.eq(q_cnt + 1), q_more.eq(q_cnt + 1 < nq),
                         q_rows.eq(q_rows + 1)]
        return q_next
