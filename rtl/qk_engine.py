"""QKEngine: the score half of the core — ``S = q·k`` for every key of a row, and the row's max.

What it computes: for a row started on ``rows`` (its Q row and where its keys are), the score
``S_ij = Σ_c q_i[c]·k_j[c]`` of every key of the row (step 1 of :mod:`swatkit.golden.numerics`,
exact, ``widths.score`` bits) into the row's score buffer, and the row max ``m_i`` over the keys
that count (a band key that is a global token is masked: it is attended as a global column).
Throughput: one token per cycle — ``key_lanes`` keys × ``dim_lanes`` elements, ``key_lanes ×
dim_lanes`` multipliers — so a row of ``W_i`` keys issues in ``ceil(W_i/KL)·G`` cycles; the
engine never stalls (the scheduler starts a row only when a score buffer is free). Latency: the
row's max and its walk (``row_layout``) are offered on ``maxes`` :func:`qk_depth` cycles after
its last issue.

Ports:

- ``run``: In(run) — the command stage's run registers; ``rows``: In(stream) — row starts from
  the :class:`~swatkit.rtl.scheduler.Scheduler` (ready while no walk is issuing, or in its
  last cycle).
- ``k_rd``: Out(read) — K words of the ring (and ``rk_rd``: of the random buffers; ``f_rd``:
  the ring's flags, on cores with global tokens).
- ``s_rd``: In(:func:`score_read_signature`) — the SV engine's reads of the score buffers.
- ``maxes``: Out(stream) — ``{max, row}`` per row, to the SV engine.
- ``qk_macs``: Out — the QK MAC counter of ``stats``.
"""

from __future__ import annotations

from amaranth import Cat, Module, Mux, Signal, signed
from amaranth.lib import data, fifo, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from .config import CoreParams
from .kv_ring import read_signature
from .row_walk import RowWalk
from .run_control import STAT_BITS, run_signature
from .scheduler import row_layout
from .units import (
    max_tree,
    max_tree_levels,
    pipeline_stage,
    registered_mul,
    state_invariants,
    sum_tree,
)

__all__ = ["QKEngine", "max_layout", "qk_depth", "score_read_signature"]


def qk_depth(p: CoreParams) -> int:
    """Last QK issue → row max readable by the SV engine: K read, K register, operand
    registers, product, dot, accumulate into the score, the lane max tree
    (``max_tree_levels``), then the FIFO."""
    return 7 + max_tree_levels(p.hw.key_lanes)


def score_read_signature(p: CoreParams) -> wiring.Signature:
    """A read of every lane's score buffer, as the SV engine drives it: ``addr`` (one for all
    lanes) under ``en``; ``data`` one cycle on."""
    return wiring.Signature({
        "addr": Out(range(max(p.score_depth, 2))), "en": Out(1),
        "data": In(data.ArrayLayout(signed(p.widths.score), p.hw.key_lanes))})


def max_layout(p: CoreParams) -> data.StructLayout:
    """The ``maxes`` payload: a row's max and its walk."""
    return data.StructLayout({"max": signed(p.widths.score), "row": row_layout(p)})


def row_marks(stages, walk: RowWalk):
    """1 per place of an engine that holds a row's last token: its walk (busy) and each
    pipeline stage where ``valid``, ``last_round`` (and ``last_g``, where the stage has it)."""
    marks = [walk.busy]
    for s in stages:
        mark = s.valid & s.last_round
        if hasattr(s, "last_g"):
            mark = mark & s.last_g
        marks.append(mark)
    return marks


class QKEngine(wiring.Component):
    """The QK engine (module docstring).

    Parameters
    ----------
    params : CoreParams
    rows_layout : data.Layout
        The scheduler's ``rows`` payload.
    cmd_layout : data.Layout
        The command's layout (the ``run`` port carries it).
    """

    def __init__(self, params: CoreParams, rows_layout: data.Layout, cmd_layout: data.Layout):
        self.params = p = params
        word = p.hw.dim_lanes * p.fmt.data_bits
        members = {
            "run": In(run_signature(p, cmd_layout)),
            "rows": In(stream.Signature(rows_layout)),
            "k_rd": Out(read_signature(p, word, en=False)),
            "s_rd": In(score_read_signature(p)),
            "maxes": Out(stream.Signature(max_layout(p))),
            "qk_macs": Out(STAT_BITS),
        }
        if p.max_random_blocks:
            members["rk_rd"] = Out(read_signature(p, word, en=False))
        if p.max_global_tokens:
            members["f_rd"] = Out(read_signature(p, 1, en=False, used=False))
        super().__init__(members)
        # not ports (for the core's invariants): rows started and not yet taken by the SV
        # engine (in the walk, the pipeline or the row-max FIFO); nothing inside
        self.inside = Signal(range(p.score_buffers + qk_depth(p) + 2))
        self.idle = Signal()

    def elaborate(self, platform):
        m = Module()
        p = self.params
        rowmax = fifo.SyncFIFO(width=p.widths.score, depth=p.score_buffers)
        info = fifo.SyncFIFO(width=len(self.rows.payload.row.as_value()), depth=p.score_buffers)
        m.submodules.info = info
        m.submodules.rowmax = rowmax
        qk, q_cur, qk_macs = self._walk(m, info)
        s1, s1k, s1r, s2, s3, sums = self._dot_products(m, platform, qk, q_cur)
        s4, s5s, smem = self._scores_and_max(m, s3, sums, rowmax)

        # -- the row's max and walk, to the SV engine ------------------------------------------
        # (the walk is in the info FIFO from the row's start: both are read at the transfer)
        taken = self.maxes.valid & self.maxes.ready
        m.d.comb += [self.maxes.valid.eq(rowmax.r_rdy), self.maxes.payload.max.eq(rowmax.r_data),
                     self.maxes.payload.row.eq(info.r_data),
                     rowmax.r_en.eq(taken), info.r_en.eq(taken)]
        # -- the SV engine's score reads -------------------------------------------------------
        for lane, mem in enumerate(smem):
            srd = mem.read_port()
            m.d.comb += [srd.addr.eq(self.s_rd.addr), srd.en.eq(self.s_rd.en),
                         self.s_rd.data[lane].eq(srd.data)]

        with m.If(self.run.start):
            m.d.sync += qk_macs.eq(0)

        # -- invariants ------------------------------------------------------------------------
        stages = [s1, s1k, s1r, s2, s3, s4, *s5s]
        marks = row_marks(stages, qk)
        m.d.comb += [self.inside.eq(sum(marks) + rowmax.level),
                     self.idle.eq(~Cat(*marks).any() & (rowmax.level == 0))]
        state_invariants(m, platform, [
            *qk.invariants("QK"),
            (rowmax.level <= p.score_buffers, "inv: row-max FIFO level"),
        ])
        return m

    def _walk(self, m, info):
        """The row walk: a row starts when ``rows`` moves, its Q row rotates a group per
        issue, and its walk waits in ``info`` beside its max. Returns the walker, the Q row
        register and the MAC counter."""
        p, run = self.params, self.run
        word = p.hw.dim_lanes * p.fmt.data_bits
        gmax, rmax = p.max_global_tokens, p.max_random_blocks
        # the resident columns a row walks: the run's, or a sink core's row's own (held from
        # the row's start: a causal row sees the sinks up to itself)
        cols = run.gcount if gmax else None
        if p.sink_core:
            cols = Signal(range(gmax + 1), name="qk_cols")
        qk = RowWalk(m, p, "qk", cols, run.rnd_last if rmax else None)
        q_cur = Signal(len(self.rows.payload.q))
        qk_start = self.rows.valid & self.rows.ready
        m.d.comb += self.rows.ready.eq(~qk.busy | qk.last)
        qk_macs = Signal(STAT_BITS, name="stat_qk_macs")
        m.d.comb += self.qk_macs.eq(qk_macs)
        qk.issue(m, 1, qk_macs)
        with m.If(qk.busy):
            m.d.sync += q_cur.eq(q_cur.rotate_right(word))
        row = self.rows.payload.row
        with m.If(qk_start):
            m.d.sync += [*qk.start(row.rem, row.lane0, row.base, row.sbuf,
                                   row.region if p.max_dilation > 1 else None,
                                   row.rnd if rmax else None, row.rsel if rmax else None,
                                   later=row.later),
                         q_cur.eq(self.rows.payload.q)]
            if p.sink_core:
                m.d.sync += cols.eq(row.cols)
        # the row's walk waits in the info FIFO beside its max
        m.d.comb += [info.w_en.eq(qk_start), info.w_data.eq(row)]

        if gmax:  # a band key that is a global token is attended as a global column instead
            m.d.comb += [self.f_rd.addr[lane].eq(qk.addr[lane]) for lane in range(p.hw.key_lanes)]
        return qk, q_cur, qk_macs

    def _dot_products(self, m, platform, qk, q_cur):
        """The issued group's Q·K products (``key_lanes`` × ``dim_lanes`` registered
        multipliers) and each lane's score, accumulated over the row's groups. Returns the
        pipeline's stages and the lanes' sums."""
        p = self.params
        w, kl, dl, bits = p.widths, p.hw.key_lanes, p.hw.dim_lanes, p.fmt.data_bits
        word = dl * bits
        gmax, rmax = p.max_global_tokens, p.max_random_blocks
        s1 = pipeline_stage(m, "qk1", valid=qk.busy, lanes=qk.lanes, first_g=qk.first_g,
                            last_g=qk.last_g, first_round=qk.first_round,
                            last_round=qk.end_round, s_addr=qk.s_addr, qg=q_cur[:word],
                            rnd=qk.in_rnd)
        # the K words and the Q group are registered in the fabric (a block RAM's output has a
        # long route to a multiplier block; the K words once per bank), then again as the
        # multipliers' operands: on an ECP5 those and the product's registers are the DSP
        # block's own
        # (the flags are the ring's: a random key is never masked)
        s1_lanes = ((s1.lanes & ~(self.f_rd.data.as_value() & (~s1.rnd).replicate(kl)))
                    if gmax else s1.lanes)
        s1k = pipeline_stage(m, "qk1k", valid=s1.valid, lanes=s1_lanes, first_g=s1.first_g,
                             last_g=s1.last_g, first_round=s1.first_round,
                             last_round=s1.last_round, s_addr=s1.s_addr, qg=s1.qg, rnd=s1.rnd)
        # (a lane's word is used when the walker issues and the lane holds a key)
        for lane in range(kl):
            m.d.comb += [self.k_rd.addr[lane].eq(qk.addr[lane]),
                         self.k_rd.used[lane].eq(qk.busy & qk.lanes[lane] & ~qk.in_rnd)]
        k_data = self.k_rd.data.as_value()
        if rmax:   # a random key's word comes from the random memories
            for lane in range(kl):
                m.d.comb += [self.rk_rd.addr[lane].eq(qk.addr[lane]),
                             self.rk_rd.used[lane].eq(qk.busy & qk.lanes[lane] & qk.in_rnd)]
            k_data = Mux(s1k.rnd, self.rk_rd.data.as_value(), k_data)
        s1r = pipeline_stage(m, "qk1r", valid=s1k.valid, lanes=s1k.lanes, first_g=s1k.first_g,
                             last_g=s1k.last_g, first_round=s1k.first_round,
                             last_round=s1k.last_round, s_addr=s1k.s_addr)
        qg = data.View(data.ArrayLayout(signed(bits), dl), s1k.qg)
        kw = [data.View(data.ArrayLayout(signed(bits), dl), k_data[lane * word:(lane + 1) * word])
              for lane in range(kl)]
        s2 = pipeline_stage(m, "qk2", valid=s1r.valid, lanes=s1r.lanes, first_g=s1r.first_g,
                            last_g=s1r.last_g, first_round=s1r.first_round,
                            last_round=s1r.last_round, s_addr=s1r.s_addr)
        prods = [[Signal(signed(2 * bits), name=f"qk_prod{lane}_{u}") for u in range(dl)]
                 for lane in range(kl)]
        for lane in range(kl):
            for u in range(dl):
                registered_mul(m, platform, qg[u], kw[lane][u], prods[lane][u],
                               name=f"qk_mul{lane}_{u}")
        s3 = pipeline_stage(m, "qk3", valid=s2.valid, lanes=s2.lanes, first_g=s2.first_g,
                            last_g=s2.last_g, first_round=s2.first_round,
                            last_round=s2.last_round, s_addr=s2.s_addr)
        # the group's dot product as two registered half sums (the products come from the
        # multiplier blocks over a long route: one adder tree of all DL after it did not fit a
        # 100 MHz cycle on the ECP5), added with the accumulator
        half = (dl + 1) // 2
        dots = [[Signal(signed(w.score), name=f"qk_dot{lane}_{h}") for h in range(2)]
                for lane in range(kl)]
        for lane in range(kl):
            m.d.sync += dots[lane][0].eq(sum_tree(prods[lane][:half]))
            if dl > 1:
                m.d.sync += dots[lane][1].eq(sum_tree(prods[lane][half:]))
        accs = [Signal(signed(w.score), name=f"qk_acc{lane}") for lane in range(kl)]
        sums = [Mux(s3.first_g, 0, accs[lane]) + dots[lane][0] + dots[lane][1]
                for lane in range(kl)]
        with m.If(s3.valid):
            m.d.sync += [accs[lane].eq(sums[lane]) for lane in range(kl)]
        return s1, s1k, s1r, s2, s3, sums

    def _scores_and_max(self, m, s3, sums, rowmax):
        """The lanes' scores into the score memories, and the round's max over the lanes
        folded into the row's running max (into ``rowmax`` at the row's last round). Returns
        the score stage, the max tree's stages and the score memories."""
        p = self.params
        w, kl = p.widths, p.hw.key_lanes
        gmax = p.max_global_tokens
        s4 = pipeline_stage(m, "qk4", valid=s3.valid & s3.last_g, lanes=s3.lanes,
                            first_round=s3.first_round, last_round=s3.last_round,
                            s_addr=s3.s_addr)
        scores = [Signal(signed(w.score), name=f"qk_score{lane}") for lane in range(kl)]
        m.d.sync += [scores[lane].eq(sums[lane]) for lane in range(kl)]

        smem = [memory.Memory(shape=signed(w.score), depth=p.score_depth, init=[])
                for _ in range(kl)]
        for lane in range(kl):
            m.submodules[f"smem{lane}"] = smem[lane]
        swr = [mem.write_port() for mem in smem]
        for lane in range(kl):
            m.d.comb += [swr[lane].addr.eq(s4.s_addr), swr[lane].data.eq(scores[lane]),
                         swr[lane].en.eq(s4.valid & s4.lanes[lane])]
        # the round's max over the lanes (a tree registered at every level), then folded into
        # the row's running max
        tree_max, tree_any = max_tree(m, scores, [s4.lanes[lane] for lane in range(kl)],
                                      name="qk_max")
        s5 = s4
        s5s = []
        for level in range(max_tree_levels(kl)):
            s5 = pipeline_stage(m, f"qk5_{level}", valid=s5.valid,
                                first_round=s5.first_round, last_round=s5.last_round)
            s5s.append(s5)
        row_max = Signal(signed(w.score))
        if gmax:
            # a round can have every key masked (band keys that are global tokens): the max
            # takes only rounds with a key in them
            have = Signal()   # row_max holds a key of this row
            cur = ~s5.first_round & have
            max_next = Mux(tree_any & (~cur | (tree_max > row_max)), tree_max, row_max)
            with m.If(s5.valid):
                m.d.sync += [row_max.eq(max_next), have.eq(cur | tree_any)]
        else:
            max_next = Mux(s5.first_round | (tree_max > row_max), tree_max, row_max)
            with m.If(s5.valid):
                m.d.sync += row_max.eq(max_next)
        m.d.comb += [rowmax.w_en.eq(s5.valid & s5.last_round), rowmax.w_data.eq(max_next)]

        return s4, s5s, smem
