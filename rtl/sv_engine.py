"""SVEngine: the value half of the core — ``p = 2^((S − m)·C)``, ``l = Σp``, ``acc = Σ p·v``.

What it computes: for each row offered on ``maxes`` (its max ``m_i`` and its walk), the
probability of every key from its score (steps 2–4 of :mod:`swatkit.golden.numerics`: ``D = m −
S``, saturated beyond ``d_sat``, the ``2^(−frac)`` table and the shift, ``prob_bits`` unsigned),
``l_i = Σ p`` and the ``head_dim`` accumulators ``acc_i = Σ p·v`` (step 5, ``widths.acc`` and
``widths.sum`` bits, exact), then offers the row's groups to the normaliser on ``out``.
Throughput: one token per cycle (``key_lanes`` keys × ``dim_lanes`` elements: ``key_lanes ×
dim_lanes`` multipliers), ``ceil(W_i/KL)·G`` cycles per row. The accumulators rotate: ``G``
groups of ``dim_lanes``; the head group is updated and moved to the tail. Latency: a row is
accumulated :data:`SV_DEPTH` cycles after its last issue; ``fin`` pulses then.

Stall-all: every register of the engine moves under one enable, which drops only while a
finished row waits for the result register (the previous row's groups still going to the
dividers), so back-pressure from ``o`` loses nothing.

Ports:

- ``run``: In(run); ``maxes``: In(stream) — rows from the QK engine.
- ``s_rd``: Out — reads of the QK engine's score buffers; ``v_rd``: Out — V words of the ring
  (``rv_rd``: of the random buffers; ``f_rd``: the ring's flags).
- ``out``: Out(stream(:func:`~swatkit.rtl.normaliser.group_layout`)) — the rows' groups.
- ``fin``: Out(1) — a row is accumulated (it frees its score buffer and, after ``before`` rows,
  a ring slot); ``done``: Out — rows accumulated in this run.
- ``sv_macs``, ``exp_ops``: Out — counters of ``stats``.
"""

from __future__ import annotations

from types import SimpleNamespace

from amaranth import Cat, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .config import CoreParams
from .kv_ring import read_signature
from .normaliser import group_layout
from .qk_engine import max_layout, row_marks, score_read_signature
from .row_walk import RowWalk
from .run_control import STAT_BITS, run_signature
from .units import (
    EXP_LATENCY,
    exp2_stages,
    pipeline_stage,
    registered_mul,
    state_invariants,
    sum_tree,
)

__all__ = ["SV_DEPTH", "SVEngine"]

SV_DEPTH = 9   # last SV issue → row accumulated (read, score register, exp 4 stages, operands,
#                p·v, lane tree)


class SVEngine(wiring.Component):
    """The SV engine (module docstring).

    Parameters
    ----------
    params : CoreParams
    cmd_layout : data.Layout
        The command's layout (the ``run`` port carries it).
    """

    def __init__(self, params: CoreParams, cmd_layout: data.Layout):
        self.params = p = params
        w = p.widths
        word = p.hw.dim_lanes * p.fmt.data_bits
        members = {
            "run": In(run_signature(p, cmd_layout)),
            "maxes": In(stream.Signature(max_layout(p))),
            "s_rd": Out(score_read_signature(p)),
            "v_rd": Out(read_signature(p, word, en=True)),
            "out": Out(stream.Signature(group_layout(p.hw.dim_lanes, w.acc, w.sum))),
            "fin": Out(1),
            "done": Out(p.index_bits),
            "sv_macs": Out(STAT_BITS),
            "exp_ops": Out(STAT_BITS),
        }
        if p.max_random_blocks:
            members["rv_rd"] = Out(read_signature(p, word, en=True))
        if p.max_global_tokens:
            members["f_rd"] = Out(read_signature(p, 1, en=True, used=False))
        super().__init__(members)
        # not ports (for the core's invariants): rows taken from ``maxes`` and not yet
        # accumulated (in the walk or the pipeline); groups in the result register; nothing
        # inside
        self.inside = Signal(range(SV_DEPTH + EXP_LATENCY + 4))
        self.groups = Signal(range(p.groups + 1))
        self.idle = Signal()

    def elaborate(self, platform):
        m = Module()
        run, g = self.run, self.params.groups
        sv_en = Signal()
        sv, sv_m, sv_m_lo, sink, sv_macs, exp_ops = self._walk(m, sv_en)
        t, probs, p_sig, stages = self._probabilities(m, platform, sv_en, sv, sv_m, sv_m_lo,
                                                      sink)
        t, lane_sum, lsum = self._products(m, platform, sv_en, t, probs, p_sig, sink, stages)
        final, total_new = self._accumulate(m, sv_en, t, lane_sum, lsum)

        # -- the result register: a finished row, fed to the normaliser one group per cycle ----
        res = self._result_register(m, sv_en, t.done, final, total_new)
        sv_done = res.sv_done

        with m.If(run.start):
            m.d.sync += [sig.eq(0) for sig in (sv_done, sv_macs, exp_ops)]

        # -- invariants ------------------------------------------------------------------------
        marks = row_marks(stages, sv)
        m.d.comb += [self.inside.eq(sum(marks)),
                     self.groups.eq(Mux(res.full, g - res.feed_g, 0)),
                     self.idle.eq(~Cat(*marks, res.full).any())]
        state_invariants(m, platform, [
            *sv.invariants("SV"),
            (res.full | (res.feed_g == 0), "inv: divider feed idle"),
            (res.feed_g < g if g > 1 else res.feed_g == 0, "inv: divider feed in range"),
            (res.feed_last == (res.feed_g == g - 1), "inv: divider feed's last-group flag"),
            (t.done == (t.valid & t.last_round & t.last_g), "inv: SV row-done flag"),
        ])
        return m

    def _walk(self, m, sv_en):
        """The row walk under ``sv_en``: a row starts when ``maxes`` moves, with its max (and
        m − d_sat) held for its keys, the MAC and exp counters. Returns the walker, the max
        registers, the row's sink (or None) and the counters."""
        p, run = self.params, self.run
        fmt, w, d = p.fmt, p.widths, p.spec.head_dim
        gmax, rmax = p.max_global_tokens, p.max_random_blocks
        # the resident columns a row walks: the run's, or a sink core's row's own (held from
        # the row's start: a causal row sees the sinks up to itself)
        cols = run.gcount if gmax else None
        if p.sink_core:
            cols = Signal(range(gmax + 1), name="sv_cols")
        sv = RowWalk(m, p, "sv", cols, run.rnd_last if rmax else None)
        sv_m = Signal(signed(w.score))
        # m − d_sat: a score below it saturates the exp (D = m − S > d_sat), compared beside the
        # subtract instead of after it
        d_sat = fmt.softmax_constant(d).d_sat
        sv_m_lo = Signal(signed(max(w.score, d_sat.bit_length()) + 2))
        sv_start = Signal()
        i_row = self.maxes.payload.row
        m.d.comb += [self.maxes.ready.eq(sv_en & (~sv.busy | sv.last)),
                     sv_start.eq(self.maxes.valid & self.maxes.ready)]
        sv_macs = Signal(STAT_BITS, name="stat_sv_macs")
        exp_ops = Signal(STAT_BITS, name="stat_exp_ops")
        m.d.comb += [self.sv_macs.eq(sv_macs), self.exp_ops.eq(exp_ops)]
        sv.issue(m, sv_en, sv_macs)
        with m.If(sv_en & sv.busy & sv.first_g):
            m.d.sync += exp_ops.eq(exp_ops + sv.active)
        row_max, sink = self._sink_start(m, sv_start)
        with m.If(sv_start):
            m.d.sync += [*sv.start(i_row.rem, i_row.lane0, i_row.base, i_row.sbuf,
                                   i_row.region if p.max_dilation > 1 else None,
                                   i_row.rnd if rmax else None, i_row.rsel if rmax else None,
                                   later=i_row.later),
                         sv_m.eq(row_max), sv_m_lo.eq(row_max - d_sat)]
            if p.sink_core:
                m.d.sync += cols.eq(i_row.cols)

        return sv, sv_m, sv_m_lo, sink, sv_macs, exp_ops

    def _probabilities(self, m, platform, sv_en, sv, sv_m, sv_m_lo, sink):
        """The walked keys' scores read and registered, D = m − S and the clamp, the
        ``key_lanes`` exp units (and the sink's), and the V reads issued to meet them. Returns
        the stage aligned with the probabilities, the probabilities, the sink's (or None) and
        the stages so far."""
        p = self.params
        fmt, w, d = p.fmt, p.widths, p.spec.head_dim
        kl = p.hw.key_lanes
        gmax, rmax = p.max_global_tokens, p.max_random_blocks
        p_sig = None
        m.d.comb += [self.s_rd.addr.eq(sv.s_addr), self.s_rd.en.eq(sv_en)]
        if gmax:  # the band keys that are global tokens, read beside their scores
            m.d.comb += [self.f_rd.en.eq(sv_en),
                         *[self.f_rd.addr[lane].eq(sv.addr[lane]) for lane in range(kl)]]
        addr_bits = Cat(*sv.addr)
        own = {"sig": sink.sig, "son": sink.on} if sink else {}   # (the row's sink)
        t = pipeline_stage(m, "sv1", sv_en, valid=sv.busy, lanes=sv.lanes, first_g=sv.first_g,
                           last_g=sv.last_g, first_round=sv.first_round,
                           last_round=sv.end_round, addr=addr_bits, m=sv_m, m_lo=sv_m_lo,
                           rnd=sv.in_rnd, **own)
        stages = [t]
        # the scores are registered out of the block RAMs before D = m − S and the clamp
        t_lanes = ((t.lanes & ~(self.f_rd.data.as_value() & (~t.rnd).replicate(kl)))
                   if gmax else t.lanes)
        own = {"sig": t.sig, "son": t.son} if sink else {}
        t = pipeline_stage(m, "sv1s", sv_en, valid=t.valid, lanes=t_lanes, first_g=t.first_g,
                           last_g=t.last_g, first_round=t.first_round,
                           last_round=t.last_round, addr=t.addr, m=t.m, m_lo=t.m_lo,
                           s=self.s_rd.data.as_value(), rnd=t.rnd, **own)
        stages.append(t)
        score = [t.s[lane * w.score:(lane + 1) * w.score].as_signed() for lane in range(kl)]
        diffs = [(t.m - score[lane]).as_unsigned()[:w.score] for lane in range(kl)]
        sats = [score[lane] < t.m_lo for lane in range(kl)]
        probs = exp2_stages(m, sv_en, diffs, fmt, d, name="sv_exp", saturated=sats,
                            platform=platform)
        if sink:   # p_σ of the sink score: one more exp unit, beside the lanes'
            p_sig = exp2_stages(m, sv_en, [(t.m - t.sig).as_unsigned()[:w.score]], fmt, d,
                                name="sv_sink_exp", saturated=[t.sig < t.m_lo],
                                platform=platform)[0]
        for k in range(EXP_LATENCY):
            own = {"son": t.son} if sink else {}
            t = pipeline_stage(m, f"sv{k + 2}", sv_en, valid=t.valid, lanes=t.lanes,
                               first_g=t.first_g, last_g=t.last_g, first_round=t.first_round,
                               last_round=t.last_round, addr=t.addr, rnd=t.rnd, **own)
            stages.append(t)
            if k == EXP_LATENCY - 3:  # issue the V read: its word, registered twice, meets p
                # (read, then registered in the fabric once per bank, as the K words)
                abits = len(sv.addr[0])
                used = [sv_en & t.valid & t.lanes[lane] for lane in range(kl)]
                reads = [(self.v_rd, ~t.rnd)] + ([(self.rv_rd, t.rnd)] if rmax else [])
                for rd, which in reads:
                    m.d.comb += rd.en.eq(sv_en)
                    for lane in range(kl):
                        m.d.comb += [rd.addr[lane].eq(t.addr[lane * abits:(lane + 1) * abits]),
                                     rd.used[lane].eq(used[lane] & which)]
        return t, probs, p_sig, stages

    def _products(self, m, platform, sv_en, t, probs, p_sig, sink, stages):
        """p·v: each lane's p taken at a key's first group and held (by the multipliers and
        for the probability sum), the V words as the other operands, then the sums over the
        lanes. Returns the stage aligned with the lane sums, the sums and the sum of p."""
        p = self.params
        fmt, w = p.fmt, p.widths
        kl, dl, bits = p.hw.key_lanes, p.hw.dim_lanes, p.fmt.data_bits
        word = dl * bits
        rmax = p.max_random_blocks
        # t is now aligned with probs (and, below, with the registered V words)
        # p is taken at a key's first group and held for its other groups: by each multiplier as
        # its operand A, and by p_in for the probability sum. ("keep": without it Yosys' ABC9
        # aborts on a p register feeding the ECP5 multipliers; docs/fpga.md)
        keep = {"keep": 1}
        p_next = [Mux(t.lanes[lane], probs[lane], 0) for lane in range(kl)]
        p_en = sv_en & t.valid & t.first_g
        p_in = [Signal(unsigned(fmt.prob_bits), name=f"sv_p{lane}", attrs=keep)
                for lane in range(kl)]
        with m.If(p_en):
            m.d.sync += [p_in[lane].eq(p_next[lane]) for lane in range(kl)]
        if sink:   # p_σ joins l once, with the row's first key
            p_in.append(Signal(unsigned(fmt.prob_bits), name="sv_p_sink"))
            with m.If(p_en):
                m.d.sync += p_in[-1].eq(Mux(t.son & t.first_round, p_sig, 0))
        # the V words (registered in the fabric above), then registered as multiplier operands
        v_word = self.v_rd.data.as_value()
        if rmax:
            v_word = Mux(t.rnd, self.rv_rd.data.as_value(), v_word)
        vw = [data.View(data.ArrayLayout(signed(bits), dl), v_word[lane * word:(lane + 1) * word])
              for lane in range(kl)]
        t = pipeline_stage(m, "sv_mul", sv_en, valid=t.valid, first_g=t.first_g,
                           last_g=t.last_g, first_round=t.first_round, last_round=t.last_round)
        stages.append(t)
        pv = [[Signal(signed(w.pv), name=f"sv_pv{lane}_{u}") for u in range(dl)]
              for lane in range(kl)]
        for lane in range(kl):
            for u in range(dl):
                registered_mul(m, platform, p_next[lane], vw[lane][u], pv[lane][u],
                               en_a=p_en, en_b=sv_en, en_out=sv_en, name=f"sv_mul{lane}_{u}",
                               a_attrs=keep)
        psum = Signal(unsigned(w.sum))
        with m.If(sv_en):
            m.d.sync += psum.eq(Mux(t.first_g, sum_tree(p_in), 0))
        t = pipeline_stage(m, "sv_pv", sv_en, valid=t.valid, first_g=t.first_g,
                           last_g=t.last_g, first_round=t.first_round, last_round=t.last_round)
        stages.append(t)
        lane_sum = [Signal(signed(w.acc), name=f"sv_lsum{u}") for u in range(dl)]
        lsum = Signal(unsigned(w.sum))
        with m.If(sv_en):
            m.d.sync += [lane_sum[u].eq(sum_tree(pv[lane][u] for lane in range(kl)))
                         for u in range(dl)]
            m.d.sync += lsum.eq(psum)
        # (done: the row's last group, one register bit for sv_en below)
        t = pipeline_stage(m, "sv_tree", sv_en, valid=t.valid, first_g=t.first_g,
                           last_g=t.last_g, first_round=t.first_round,
                           last_round=t.last_round, done=t.valid & t.last_round & t.last_g)
        stages.append(t)
        return t, lane_sum, lsum

    def _sink_start(self, m: Module, sv_start):
        """The row's max as the SV engine starts it, and (a core that takes learned sink
        logits) its sink: ``sig``, the row's sink score, and ``on``, held from the start. The
        sink score joins the max here and the sum ``l`` at the row's first key."""
        p, run, i_row = self.params, self.run, self.maxes.payload.row
        row_max = self.maxes.payload.max
        if not p.sink_logits:
            return row_max, None
        sink = SimpleNamespace(sig=Signal(signed(p.widths.score), name="sv_sink"),
                               on=Signal(name="sv_sink_on"))
        with m.If(sv_start):
            m.d.sync += [sink.sig.eq(i_row.sink), sink.on.eq(run.sink_on)]
        return Mux(run.sink_on & (i_row.sink > row_max), i_row.sink, row_max), sink

    def _accumulate(self, m: Module, sv_en, t, lane_sum, lsum):
        """The rotating accumulator — G groups of DL accumulators; the head group is updated
        and moved to the tail, so after every key all groups are back in order — and ``l``:
        returns the row's accumulators as they finish (``final``) and ``l`` with this token."""
        p = self.params
        w, dl, g = p.widths, p.hw.dim_lanes, p.groups
        acc = [[Signal(signed(w.acc), name=f"sv_acc{k}_{u}") for u in range(dl)]
               for k in range(g)]
        total = Signal(unsigned(w.sum))
        new = [Mux(t.first_round, 0, acc[0][u]) + lane_sum[u] for u in range(dl)]
        total_new = Mux(t.first_round & t.first_g, 0, total) + lsum
        with m.If(sv_en & t.valid):
            for k in range(g - 1):
                m.d.sync += [acc[k][u].eq(acc[k + 1][u]) for u in range(dl)]
            m.d.sync += [acc[g - 1][u].eq(new[u]) for u in range(dl)]
            m.d.sync += total.eq(total_new)
        return [acc[k][u] for k in range(1, g) for u in range(dl)] + new, total_new

    def _result_register(self, m: Module, sv_en, row_done, final, total_new) -> SimpleNamespace:
        """The result register: a finished row (its ``head_dim`` accumulators ``final`` and its
        ``l``, taken when ``sv_en & row_done``), offered on ``out`` one group per cycle, rotated
        so that the group to divide is always at the bottom. It drives ``sv_en`` low while a
        finished row waits for it, and ``fin``/``done``."""
        p = self.params
        w, dl, g, d = p.widths, p.hw.dim_lanes, p.groups, p.spec.head_dim
        res = [Signal(signed(w.acc), name=f"res_acc{k}") for k in range(d)]
        res_total = Signal(unsigned(w.sum))
        res_full = Signal(name="res_full")
        res_release = Signal()
        m.d.comb += sv_en.eq(~(row_done & res_full & ~res_release))
        feed_g = Signal(range(max(g, 2)), name="feed_g")
        # feed_last = (feed_g == g − 1) as a register: sv_en (through res_release) is the SV
        # engine's clock enable, a critical path of the iCEBreaker build
        feed_last = Signal(init=int(g == 1))
        feed = self.out.ready & res_full
        m.d.comb += [self.out.valid.eq(res_full), res_release.eq(feed & feed_last),
                     self.out.payload.total.eq(res_total),
                     *[self.out.payload.acc[u].eq(res[u]) for u in range(dl)]]
        with m.If(feed):
            m.d.sync += feed_g.eq(Mux(feed_g == g - 1, 0, feed_g + 1))
            if g > 1:
                m.d.sync += feed_last.eq(feed_g == g - 2)
            # rotate the result so that the group to divide is always at the bottom
            for k in range(d):
                m.d.sync += res[k].eq(res[(k + dl) % d])
        with m.If(res_release):
            m.d.sync += res_full.eq(0)
        sv_done = Signal(p.index_bits, name="sv_done")
        m.d.comb += [self.fin.eq(sv_en & row_done), self.done.eq(sv_done)]
        with m.If(sv_en & row_done):  # after the rotation above: a new result replaces it
            m.d.sync += [res[k].eq(final[k]) for k in range(d)]
            m.d.sync += [res_full.eq(1), res_total.eq(total_new), sv_done.eq(sv_done + 1)]
        return SimpleNamespace(full=res_full, feed_g=feed_g, feed_last=feed_last,
                               sv_done=sv_done)
