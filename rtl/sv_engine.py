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

No stall-all enable: the walk issues while the skid buffer in front of the accumulators has
room for every token in flight (:data:`SKID_DEPTH`: a counter of them, compared with a
constant); behind the walk the score and V reads, the exp units, the ``p·v`` multipliers and the
lane sums move every cycle, with no enable across the multiplier array. Only the accumulators
wait: a finished row at the skid's head waits while the previous row is still in the result
register (its groups going to the dividers); the tokens behind it queue in the skid buffer, so
back-pressure from ``o`` loses nothing. A stall-free run never fills the buffer (a token goes
straight on when it is empty), so the latency and the cycle counts are those of a pipeline
without it.

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
    skid_buffer,
    state_invariants,
    sum_tree,
)

__all__ = ["SV_DEPTH", "SVEngine"]

SV_DEPTH = 9   # last SV issue → row accumulated (read, score register, exp 4 stages, operands,
#                p·v, lane tree)
SKID_DEPTH = SV_DEPTH + 1   # tokens the skid buffer before the accumulators holds: every token
#                             the pipeline can hold, and one more, so the walk (which issues
#                             while fewer are in flight) never waits in a stall-free run


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
        # (for the tests: tokens waiting in the skid buffer)
        self.skid_level = Signal(range(SKID_DEPTH + 1))

    def elaborate(self, platform):
        m = Module()
        g = self.params.groups
        # the walk issues while the skid buffer has room for every token in flight; behind it
        # the pipeline, the multipliers and the exp units have no enable
        inflight = Signal(range(SKID_DEPTH + 1), name="sv_inflight")
        go = Signal(name="sv_go")
        m.d.comb += go.eq(inflight < SKID_DEPTH)
        sv, t, stages, front = self._walk_and_front(m, platform, go)
        t, lane_sum, lsum, back = self._multiply(m, platform, t, front)
        stages += back
        take = Signal(name="sv_take")   # the accumulator takes the skid's head token
        head, skid = self._skid(m, platform, t, lane_sum, lsum, take)
        final, total_new = self._accumulate(m, take, head)

        # -- the result register: a finished row, fed to the normaliser one group per cycle ----
        res = self._result_register(m, take & head.done, final, total_new)
        # the only wait: a finished row at the head while the last one is still in the result
        # register (it drives the accumulators and the skid, not the multipliers)
        m.d.comb += take.eq(head.valid & ~(head.done & res.full & ~res.release))
        m.d.sync += inflight.eq(inflight + (go & sv.busy) - take)
        with m.If(self.run.start):
            m.d.sync += [sig.eq(0) for sig in (res.sv_done, front.sv_macs, front.exp_ops)]

        # -- invariants ------------------------------------------------------------------------
        marks = row_marks(stages, sv)
        m.d.comb += [self.inside.eq(sum(marks) + skid.rows), self.skid_level.eq(skid.level),
                     self.groups.eq(Mux(res.full, g - res.feed_g, 0)),
                     self.idle.eq(~Cat(*marks, res.full).any() & (skid.rows == 0))]
        state_invariants(m, platform, [
            *sv.invariants("SV"),
            (inflight == sum(s.valid for s in stages) + skid.level,
             "inv: SV tokens in flight = tokens in the pipeline and the skid buffer"),
            *[(~skid.flags[k].as_value().any() | (k < skid.level),
               f"inv: SV skid flags {k} clear at or past the level")
              for k in range(SKID_DEPTH)],
            (res.full | (res.feed_g == 0), "inv: divider feed idle"),
            (res.feed_g < g if g > 1 else res.feed_g == 0, "inv: divider feed in range"),
            (res.feed_last == (res.feed_g == g - 1), "inv: divider feed's last-group flag"),
            (t.done == (t.valid & t.last_round & t.last_g), "inv: SV row-done flag"),
        ])
        return m

    def _walk_and_front(self, m: Module, platform, go):
        """The row walk (issuing under ``go``), the score read, ``D = m − S`` and the exp
        stages, and the V reads: returns the walk, the stage aligned with ``p`` (and with the
        registered V words), the stages so far, and ``p`` (``probs``, the sink's ``p_sig``) with
        the counters."""
        p, run = self.params, self.run
        fmt, w = p.fmt, p.widths
        kl, d = p.hw.key_lanes, p.spec.head_dim
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
        m.d.comb += [self.maxes.ready.eq(go & (~sv.busy | sv.last)),
                     sv_start.eq(self.maxes.valid & self.maxes.ready)]
        sv_macs = Signal(STAT_BITS, name="stat_sv_macs")
        exp_ops = Signal(STAT_BITS, name="stat_exp_ops")
        m.d.comb += [self.sv_macs.eq(sv_macs), self.exp_ops.eq(exp_ops)]
        sv.issue(m, go, sv_macs)
        with m.If(go & sv.busy & sv.first_g):
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

        # (the reads run every cycle: a stage's word is used only where the stage is valid)
        m.d.comb += [self.s_rd.addr.eq(sv.s_addr), self.s_rd.en.eq(1)]
        if gmax:  # the band keys that are global tokens, read beside their scores
            m.d.comb += [self.f_rd.en.eq(1),
                         *[self.f_rd.addr[lane].eq(sv.addr[lane]) for lane in range(kl)]]
        addr_bits = Cat(*sv.addr)
        own = {"sig": sink.sig, "son": sink.on} if sink else {}   # (the row's sink)
        t = pipeline_stage(m, "sv1", valid=sv.busy & go, lanes=sv.lanes, first_g=sv.first_g,
                           last_g=sv.last_g, first_round=sv.first_round,
                           last_round=sv.end_round, addr=addr_bits, m=sv_m, m_lo=sv_m_lo,
                           rnd=sv.in_rnd, **own)
        stages = [t]
        # the scores are registered out of the block RAMs before D = m − S and the clamp
        t_lanes = ((t.lanes & ~(self.f_rd.data.as_value() & (~t.rnd).replicate(kl)))
                   if gmax else t.lanes)
        own = {"sig": t.sig, "son": t.son} if sink else {}
        t = pipeline_stage(m, "sv1s", valid=t.valid, lanes=t_lanes, first_g=t.first_g,
                           last_g=t.last_g, first_round=t.first_round,
                           last_round=t.last_round, addr=t.addr, m=t.m, m_lo=t.m_lo,
                           s=self.s_rd.data.as_value(), rnd=t.rnd, **own)
        stages.append(t)
        score = [t.s[lane * w.score:(lane + 1) * w.score].as_signed() for lane in range(kl)]
        diffs = [(t.m - score[lane]).as_unsigned()[:w.score] for lane in range(kl)]
        sats = [score[lane] < t.m_lo for lane in range(kl)]
        probs = exp2_stages(m, 1, diffs, fmt, d, name="sv_exp", saturated=sats,
                            platform=platform)
        p_sig = None
        if sink:   # p_σ of the sink score: one more exp unit, beside the lanes'
            p_sig = exp2_stages(m, 1, [(t.m - t.sig).as_unsigned()[:w.score]], fmt, d,
                                     name="sv_sink_exp", saturated=[t.sig < t.m_lo],
                                     platform=platform)[0]
        for k in range(EXP_LATENCY):
            own = {"son": t.son} if sink else {}
            if k == EXP_LATENCY - 1:   # p is taken at a key's first group: one register
                own["pen"] = t.valid & t.first_g
            t = pipeline_stage(m, f"sv{k + 2}", valid=t.valid, lanes=t.lanes,
                               first_g=t.first_g, last_g=t.last_g, first_round=t.first_round,
                               last_round=t.last_round, addr=t.addr, rnd=t.rnd, **own)
            stages.append(t)
            if k == EXP_LATENCY - 3:  # issue the V read: its word, registered twice, meets p
                # (read, then registered in the fabric once per bank, as the K words)
                abits = len(sv.addr[0])
                used = [t.valid & t.lanes[lane] for lane in range(kl)]
                reads = [(self.v_rd, ~t.rnd)] + ([(self.rv_rd, t.rnd)] if rmax else [])
                for rd, which in reads:
                    m.d.comb += rd.en.eq(1)
                    for lane in range(kl):
                        m.d.comb += [rd.addr[lane].eq(t.addr[lane * abits:(lane + 1) * abits]),
                                     rd.used[lane].eq(used[lane] & which)]
        front = SimpleNamespace(probs=probs, p_sig=p_sig, sv_macs=sv_macs, exp_ops=exp_ops)
        return sv, t, stages, front

    def _multiply(self, m: Module, platform, t, front):
        """``p`` and the ``p·v`` multipliers, ``Σp``, and the sums over the lanes: returns the
        stage aligned with the lane sums, the lane sums, ``Σp`` and the stages."""
        p = self.params
        fmt, w = p.fmt, p.widths
        kl, dl, bits = p.hw.key_lanes, p.hw.dim_lanes, p.fmt.data_bits
        word = dl * bits
        sink = front.p_sig is not None
        # t is aligned with probs (and with the registered V words)
        # p is taken at a key's first group and held for its other groups: by each multiplier as
        # its operand A, and by p_in for the probability sum. ("keep": without it Yosys' ABC9
        # aborts on a p register feeding the ECP5 multipliers; docs/fpga.md)
        keep = {"keep": 1}
        p_next = [Mux(t.lanes[lane], front.probs[lane], 0) for lane in range(kl)]
        p_en = t.pen
        p_in = [Signal(unsigned(fmt.prob_bits), name=f"sv_p{lane}", attrs=keep)
                for lane in range(kl)]
        with m.If(p_en):
            m.d.sync += [p_in[lane].eq(p_next[lane]) for lane in range(kl)]
        if sink:   # p_σ joins l once, with the row's first key
            p_in.append(Signal(unsigned(fmt.prob_bits), name="sv_p_sink"))
            with m.If(p_en):
                m.d.sync += p_in[-1].eq(Mux(t.son & t.first_round, front.p_sig, 0))
        # the V words (registered in the fabric above), then registered as multiplier operands
        v_word = self.v_rd.data.as_value()
        if p.max_random_blocks:
            v_word = Mux(t.rnd, self.rv_rd.data.as_value(), v_word)
        vw = [data.View(data.ArrayLayout(signed(bits), dl), v_word[lane * word:(lane + 1) * word])
              for lane in range(kl)]
        t = pipeline_stage(m, "sv_mul", valid=t.valid, first_g=t.first_g,
                           last_g=t.last_g, first_round=t.first_round, last_round=t.last_round)
        stages = [t]
        pv = [[Signal(signed(w.pv), name=f"sv_pv{lane}_{u}") for u in range(dl)]
              for lane in range(kl)]
        for lane in range(kl):
            for u in range(dl):
                registered_mul(m, platform, p_next[lane], vw[lane][u], pv[lane][u],
                               en_a=p_en, name=f"sv_mul{lane}_{u}", a_attrs=keep)
        psum = Signal(unsigned(w.sum))
        m.d.sync += psum.eq(Mux(t.first_g, sum_tree(p_in), 0))
        t = pipeline_stage(m, "sv_pv", valid=t.valid, first_g=t.first_g,
                           last_g=t.last_g, first_round=t.first_round, last_round=t.last_round)
        stages.append(t)
        lane_sum = [Signal(signed(w.acc), name=f"sv_lsum{u}") for u in range(dl)]
        lsum = Signal(unsigned(w.sum))
        m.d.sync += [lane_sum[u].eq(sum_tree(pv[lane][u] for lane in range(kl)))
                     for u in range(dl)]
        m.d.sync += lsum.eq(psum)
        t = pipeline_stage(m, "sv_tree", valid=t.valid, first_g=t.first_g,
                           last_g=t.last_g, first_round=t.first_round,
                           last_round=t.last_round, done=t.valid & t.last_round & t.last_g)
        stages.append(t)
        return t, lane_sum, lsum, stages

    def _skid(self, m: Module, platform, t, lane_sum, lsum, take):
        """The skid buffer between the lane sums and the accumulators
        (:func:`~swatkit.rtl.units.skid_buffer`; room is the walk's ``go``). The sums wait in
        its FIFO; the tokens' flags in registers beside it (a shift register: entry 0 is the
        head, entries at or past the level are clear), so that the rows in the buffer are a
        sum of register bits. Returns the head token (``valid``, ``lane_sum``, ``lsum``,
        ``first_g``, ``first_round``, ``done``), and the buffer (``level``, ``rows``: row-done
        tokens in it, ``flags``)."""
        p = self.params
        w, dl = p.widths, p.hw.dim_lanes
        sums = data.StructLayout({"lane_sum": data.ArrayLayout(signed(w.acc), dl),
                                  "lsum": unsigned(w.sum)})
        marks = data.StructLayout({"first_g": 1, "first_round": 1, "done": 1})
        tok, tok_f = Signal(sums), Signal(marks)
        m.d.comb += [tok.lsum.eq(lsum), *[tok.lane_sum[u].eq(lane_sum[u]) for u in range(dl)],
                     tok_f.first_g.eq(t.first_g), tok_f.first_round.eq(t.first_round),
                     tok_f.done.eq(t.done)]
        q = skid_buffer(m, platform, "sv_skid", tok.as_value(), t.valid, take, SKID_DEPTH)
        flags = [Signal(marks, name=f"sv_skid_f{k}") for k in range(SKID_DEPTH)]
        head, head_f = Signal(sums), Signal(marks)
        waiting = q.level != 0
        m.d.comb += [head.eq(q.word),
                     head_f.eq(Mux(waiting, flags[0].as_value(), tok_f.as_value()))]
        at = q.level - q.popped   # where a token written this cycle lands
        for k in range(SKID_DEPTH):
            below = flags[k + 1].as_value() if k + 1 < SKID_DEPTH else 0
            with m.If(q.pushed & (at == k)):
                m.d.sync += flags[k].eq(tok_f)
            with m.Elif(q.popped):
                m.d.sync += flags[k].eq(below)
        ns = SimpleNamespace(valid=q.valid, lane_sum=head.lane_sum, lsum=head.lsum,
                             first_g=head_f.first_g, first_round=head_f.first_round,
                             done=head_f.done)
        return ns, SimpleNamespace(level=q.level, rows=sum(f.done for f in flags),
                                   flags=flags)

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

    def _accumulate(self, m: Module, take, t):
        """The rotating accumulator — G groups of DL accumulators; the head group is updated
        and moved to the tail, so after every key all groups are back in order — and ``l``:
        returns the row's accumulators as they finish (``final``) and ``l`` with this token
        (``t``: the skid buffer's head, taken when ``take``)."""
        p = self.params
        w, dl, g = p.widths, p.hw.dim_lanes, p.groups
        acc = [[Signal(signed(w.acc), name=f"sv_acc{k}_{u}") for u in range(dl)]
               for k in range(g)]
        total = Signal(unsigned(w.sum))
        new = [Mux(t.first_round, 0, acc[0][u]) + t.lane_sum[u] for u in range(dl)]
        total_new = Mux(t.first_round & t.first_g, 0, total) + t.lsum
        with m.If(take):
            for k in range(g - 1):
                m.d.sync += [acc[k][u].eq(acc[k + 1][u]) for u in range(dl)]
            m.d.sync += [acc[g - 1][u].eq(new[u]) for u in range(dl)]
            m.d.sync += total.eq(total_new)
        return [acc[k][u] for k in range(1, g) for u in range(dl)] + new, total_new

    def _result_register(self, m: Module, row_done, final, total_new) -> SimpleNamespace:
        """The result register: a finished row (its ``head_dim`` accumulators ``final`` and its
        ``l``, taken when ``row_done``), offered on ``out`` one group per cycle, rotated so that
        the group to divide is always at the bottom; ``fin``/``done``. Returns ``full`` and
        ``release`` (the last group goes this cycle): a finished row waits while ``full &
        ~release``."""
        p = self.params
        w, dl, g, d = p.widths, p.hw.dim_lanes, p.groups, p.spec.head_dim
        res = [Signal(signed(w.acc), name=f"res_acc{k}") for k in range(d)]
        res_total = Signal(unsigned(w.sum))
        res_full = Signal(name="res_full")
        res_release = Signal()
        feed_g = Signal(range(max(g, 2)), name="feed_g")
        # feed_last = (feed_g == g − 1) as a register: the release decides the accumulators'
        # enable (a critical path of the iCEBreaker build)
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
        m.d.comb += [self.fin.eq(row_done), self.done.eq(sv_done)]
        with m.If(row_done):  # after the rotation above: a new result replaces it
            m.d.sync += [res[k].eq(final[k]) for k in range(d)]
            m.d.sync += [res_full.eq(1), res_total.eq(total_new), sv_done.eq(sv_done + 1)]
        return SimpleNamespace(full=res_full, release=res_release, feed_g=feed_g,
                               feed_last=feed_last, sv_done=sv_done)
