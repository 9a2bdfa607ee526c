"""KVRing and RandomRing: the K/V loaders and the input-stationary K/V memories of the core.

What they hold: one K and one V memory per key lane, in words of ``dim_lanes`` elements
(:class:`~swatkit.rtl.units.BankedMemory`: banks of one block RAM's depth). :class:`KVRing`
keeps the window's band rows — key ``j`` in lane ``j mod KL``, slot ``(j div KL) mod S`` of its
residue class's region (``max_dilation`` regions of ``S·G`` words) — then the run's resident
global columns (a sink core: its sink keys, K/V rows 0 … S−1), and one flag bit per ring word
(the band key is a global token, or a sink). Each K/V row
enters exactly once (SWAT's input-stationary buffer). :class:`RandomRing` keeps BigBird's random
blocks: query block B's ``r`` blocks in buffer ``B mod 2`` of memories of their own.

Throughput: a row of ``G = head_dim / dim_lanes`` words is copied out of the stream's payload in
``G`` cycles (:class:`RowCopier`); the transfer is the cycle of its last word. Row-arrival
contract: ``kv`` carries the run's global columns, then K/V rows 0 … N−1; K/V row j is taken only
when the ring slot it overwrites is no longer needed (row ``j − D·(ring_rows − before)`` has
finished SV, ``sv_fin``), which the loader keeps as a credit register.

Ports of :class:`KVRing`:

- ``kv``: In(stream) — ``{k, v}`` rows; ``run``: In(run) — the command stage's run registers.
- ``sv_fin``: In(1) — a row finishes SV (frees a ring slot once ``D·before`` rows have; on a
  grouped core, once the last of a position's g query heads has).
- ``k_rd``: In(:func:`read_signature`) — the QK engine's K reads (word two cycles after its
  address); ``v_rd``: the SV engine's V reads (under its enable); ``f_qk``/``f_sv`` (cores with
  global tokens): the flag bits at the same addresses, one cycle after their address.
- ``kv_wr``: Out — band rows written (readable); ``kv_a``, ``kv_cls``: class-local index and
  residue class of the next band row to be written; ``pre_done``: the run's global columns are
  all written; ``kv_rows``: Out — the rows counter of ``stats``.

Ports of :class:`RandomRing`: ``kvr`` (In stream), ``run``, ``sv_done`` (In: rows done), ``k_rd``,
``v_rd`` as above, and ``blocks`` (Out: query blocks whose random rows are all written).

Contexts (a decode core of C > 1 contexts, docs/rtl.md "Decode"): each context's ring (and
resident sink columns, and flags) is a region of ``kv_depth`` words of each lane's memories, at
``run.ctx · kv_depth``; the engines' addresses stay context-local and the ring adds the run's
region base (a register set with the run's start). ``context``
(:func:`~swatkit.rtl.contexts.context_signature` of :func:`carried_layout`): the loader's
pointers and credit, saved when a run ends and loaded when a continue starts.
"""

from __future__ import annotations

from types import SimpleNamespace

from amaranth import Cat, Module, Mux, Signal, unsigned
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from .config import CoreParams
from .contexts import carry, context_signature
from .row_walk import walk_addr_bits, wrap_inc
from .run_control import STAT_BITS, run_signature
from .units import BankedMemory, ram_bank_words, state_invariants

__all__ = ["KVRing", "RandomRing", "RowCopier", "carried_layout", "read_signature"]


def carried_layout(p: CoreParams) -> data.StructLayout:
    """What a context keeps of the K/V loader (C > 1 contexts): its row counters, the next
    row's lane, slot, class and region, the credit and its wait, the sink columns loaded."""
    depth, idx = range(max(p.kv_depth, 2)), unsigned(p.index_bits)
    fields = {"acc": idx, "wr": idx, "a": idx, "lane": range(max(p.hw.key_lanes, 2)),
              "base": depth, "credit": range(p.max_dilation * p.ring_rows + 1),
              "wait": range(max(p.max_dilation * p.ring_before, 1) + 1),
              "slot_free": unsigned(1)}
    if p.max_dilation > 1:
        fields["cls"] = range(max(p.max_dilation, 2))
    if p.max_dilation > 1 or p.max_global_tokens:
        fields["region"] = depth
    if p.max_global_tokens:
        fields.update(pre_acc=range(p.max_global_tokens + 1),
                      pre_wr=range(p.max_global_tokens + 1))
    return data.StructLayout(fields)


def read_signature(p: CoreParams, bits: int, *, en: bool, used: bool = True
                   ) -> wiring.Signature:
    """A read of every lane's memory, as the reading engine drives it: ``addr`` (one per lane,
    a walker's address), ``used`` (if ``used``: the lane's word is used, the condition of
    :attr:`BankedMemory.collision`), ``en`` (if ``en``: the reading engine's enable), and
    ``data`` back (``bits`` per lane)."""
    kl = p.hw.key_lanes
    members = {"addr": Out(data.ArrayLayout(unsigned(walk_addr_bits(p)), kl)),
               "data": In(data.ArrayLayout(unsigned(bits), kl))}
    if used:
        members["used"] = Out(kl)
    if en:
        members["en"] = Out(1)
    return wiring.Signature(members)


class RowCopier:
    """A K/V stream's rows copied into word-wide memories, one word (dim_lanes elements) per
    cycle, straight out of the stream's payload, which the producer holds until the transfer:
    there is no row-wide register in the core, and the transfer is the cycle of the row's last
    word. ``ready`` is then a register when a row has two words or more (G >= 2): the
    producer's row-wide payload enable is one LUT after two registers.

    ``start`` (the loader takes the beat: ``valid`` and room) copies word 0; words 1 … G − 1
    follow in the next cycles, and ``start`` is never asserted meanwhile (the loader's write
    stage, one cycle behind, holds its row). ``k`` and ``v`` hold each word the cycle after
    it is copied, which is when the loader writes it. ``busy``: words 1 … G − 1 are being
    copied; ``index``: the word being copied.

    ``dropped`` (rows of two words or more): sticky until reset, set when the producer breaks
    the stream rule on a row being copied — ``valid`` low in a cycle of words 1 … G − 1 (the
    row's transfer, at its last word, is still to come). What the core does then:
    docs/verification.md, "A producer that breaks the rule". With one word per row the row is
    sampled in the cycle of its transfer and ``dropped`` stays 0.
    """

    def __init__(self, name: str, g: int, word: int):
        self.g, self.word = g, word
        self.k = Signal(word, name=f"{name}_wk")
        self.v = Signal(word, name=f"{name}_wv")
        self.busy = Signal(name=f"{name}_copy")
        self.index = Signal(range(max(g, 2)), name=f"{name}_copy_g")
        self.ready = Signal(name=f"{name}_copy_ready")
        self.dropped = Signal(name=f"{name}_dropped")

    def build(self, m: Module, port, start):
        """The copier's logic in ``m``: rows of the stream ``port``, each from ``start``."""
        g, word = self.g, self.word
        k, v = port.payload.k.as_value(), port.payload.v.as_value()
        with m.Switch(self.index):   # (a multiplexer of G words; no shifter)
            for i in range(g):
                # (the last word as the default: index never exceeds G − 1, and a case for
                # every value of its bits keeps lint's CASEINCOMPLETE quiet when G is not 2^k)
                with m.Case(i) if i < g - 1 else m.Default():
                    m.d.sync += [self.k.eq(k[i * word:(i + 1) * word]),
                                 self.v.eq(v[i * word:(i + 1) * word])]
        if g == 1:
            m.d.comb += [port.ready.eq(start), self.busy.eq(0), self.index.eq(0),
                         self.ready.eq(start)]
            return
        m.d.comb += port.ready.eq(self.ready)
        with m.If(self.busy & ~port.valid):   # (cleared only by reset: a sticky status bit)
            m.d.sync += self.dropped.eq(1)
        with m.If(self.busy):
            with m.If(self.index == g - 1):
                m.d.sync += [self.busy.eq(0), self.index.eq(0)]
            with m.Else():
                m.d.sync += self.index.eq(self.index + 1)
        with m.Elif(start):
            m.d.sync += [self.busy.eq(1), self.index.eq(1)]
        # the transfer: the cycle that copies word G − 1
        m.d.sync += self.ready.eq(start if g == 2 else self.busy & (self.index == g - 2))


def _banked_lanes(m: Module, p: CoreParams, platform, name: str, words: int):
    """One banked memory of K or V words per lane (``<name><lane>``), and a write port of each."""
    word = p.hw.dim_lanes * p.fmt.data_bits
    bank = ram_bank_words(platform)
    mems = [BankedMemory(m, f"{name}{lane}", unsigned(word), words, bank)
            for lane in range(p.hw.key_lanes)]
    return mems, [mem.write_port() for mem in mems]


def _read_lanes(m: Module, mems, rd, name: str, en=1, base=None):
    """Every lane's word of the read ``rd`` (two cycles after its address, under ``en``;
    ``base``: a context's region, added to the address)."""
    for lane, mem in enumerate(mems):
        addr = rd.addr[lane] if base is None else rd.addr[lane] + base
        m.d.comb += rd.data[lane].eq(mem.read_registered(addr, en, en,
                                                         f"{name}{lane}", rd.used[lane]))


class KVRing(wiring.Component):
    """The band's K/V loader and ring, with the resident global columns (module docstring).

    Parameters
    ----------
    params : CoreParams
    kv_layout : data.Layout
        The ``kv`` payload's layout (``{k, v}`` rows).
    cmd_layout : data.Layout
        The command's layout (the ``run`` port carries it).
    """

    def __init__(self, params: CoreParams, kv_layout: data.Layout, cmd_layout: data.Layout):
        self.params = p = params
        word = p.hw.dim_lanes * p.fmt.data_bits
        members = {
            "kv": In(stream.Signature(kv_layout)),
            "run": In(run_signature(p, cmd_layout)),
            "sv_fin": In(1),
            "k_rd": In(read_signature(p, word, en=False)),
            "v_rd": In(read_signature(p, word, en=True)),
            "kv_wr": Out(p.index_bits),
            "kv_a": Out(p.index_bits),
            "kv_rows": Out(STAT_BITS),
        }
        if p.max_dilation > 1:
            members["kv_cls"] = Out(range(max(p.max_dilation, 2)))
        if p.max_global_tokens:
            members.update(f_qk=In(read_signature(p, 1, en=False, used=False)),
                           f_sv=In(read_signature(p, 1, en=True, used=False)), pre_done=Out(1))
        if p.ctx_bits:
            members["context"] = Out(context_signature(carried_layout(p)))
        super().__init__(members)
        # (C > 1 contexts) the running context's region of the memories: run.ctx · kv_depth
        self.ctx_base = (Signal(range(p.contexts * p.kv_depth), name="kv_ctx_base")
                         if p.ctx_bits else None)
        # not ports: 1 in a cycle that reads a used K/V word where it is written (the promise of
        # BankedMemory's no_rw_check); the loader's state, for the invariants
        self.collision = Signal()
        g = p.groups
        self.state = SimpleNamespace(
            acc=Signal(p.index_bits, name="kv_acc"),       # band rows accepted
            hold=Signal(name="kv_hold"),                   # a row is being written
            g=Signal(range(max(g, 2)), name="kv_g"),       # its word
            more=Signal(name="kv_more"),                   # kv_acc < n
            credit=Signal(range(p.max_dilation * p.ring_rows + 1), name="kv_credit"),
            wait=Signal(range(max(p.max_dilation * p.ring_before, 1) + 1), name="kv_wait"),
            slot_free=Signal(name="slot_free"),            # credit > 0, as a register
        )
        if p.group_heads > 1:   # the query heads of the finishing row's position before it
            self.state.fin_head = Signal(range(p.group_heads), name="kv_fin_head")
        if p.max_global_tokens:   # the run's global columns, ahead of the band rows
            gmax = p.max_global_tokens
            self.state.pre_acc = Signal(range(gmax + 1), name="kv_pre_acc")   # accepted
            self.state.pre_wr = Signal(range(gmax + 1), name="kv_pre_wr")     # written
            self.state.pre = Signal(name="kv_pre")   # the row being written is a global column
        self.copier = RowCopier("kv", g, word)

    def invariants(self) -> list[tuple]:
        """``(test, message)``: the loader's invariants on a band core (for ``swatkit prove``),
        in terms of its registers and the run's."""
        p, s, run = self.params, self.state, self.run
        g = p.groups
        running = run.running
        c = self.copier
        return [
            (~running | (s.slot_free == (s.credit != 0)), "inv: slot_free = credit > 0"),
            *self._preamble_invariants(),
            (~running | (s.acc <= run.n), "inv: kv_acc <= n"),
            (~running | (s.more == (s.acc < run.n)), "inv: kv_more = kv_acc < n"),
            # the credit: the ring's bound on kv_acc, which grows with the rows done once
            # dilation·before rows are done (kv_wait counts them down)
            (~running | (s.wait == 0) | (s.credit + s.acc == self.ring_credit()),
             "inv: no credit gained while kv_wait counts"),
            (s.hold | (s.g == 0), "inv: K/V group counter idle"),
            # the row copier runs one word ahead of the write stage; its ready register marks
            # the row's last word
            (~c.busy | (s.hold & (c.index == s.g + 1)),
             "inv: the K/V copier is one word ahead of the writes"),
            (c.busy | (c.index == 0), "inv: K/V copier idle"),
            *([(c.ready == (c.busy & (c.index == g - 1)),
                "inv: K/V ready = the copier's last word")] if g > 1 else []),
            (s.g < g if g > 1 else s.g == 0, "inv: K/V group counter in range"),
        ]

    def _preamble_invariants(self) -> list[tuple]:
        """K/V rows taken = written + the one being written, for the band rows and (on a core
        with global tokens) the run's global columns, which all come first."""
        s, run = self.state, self.run
        running = run.running
        if not self.params.max_global_tokens:
            return [(~running | (s.acc == self.kv_wr + s.hold),
                     "inv: K/V rows taken = written + loading")]
        return [
            (~running | (s.acc == self.kv_wr + (s.hold & ~s.pre)),
             "inv: K/V rows taken = written + loading"),
            (~running | (s.pre_acc == s.pre_wr + (s.hold & s.pre)),
             "inv: global columns taken = written + loading"),
            (~running | (s.pre_acc <= run.gcount), "inv: global columns taken <= gcount"),
            # (a band row is taken at the earliest in the cycle the last global column's last
            # word is written)
            (~running | ((s.acc == 0) & ~(s.hold & ~s.pre)) | (s.pre_wr == run.gcount),
             "inv: band rows only after the global columns"),
        ]

    def ring_credit(self):
        """The loader's credit at the start of the run: dilation · ring rows (the run's
        dilation: each residue class has a region of ring rows)."""
        p = self.params
        return self.run.dil * p.ring_rows if p.max_dilation > 1 else p.ring_rows

    def credit_bound(self, sv_done) -> tuple:
        """``(test, message)``: the credit's bound, given the rows done (the SV engine's; a
        grouped core's positions done are ``(sv_done − fin_head) / g``)."""
        s, hg = self.state, self.params.group_heads
        if hg > 1:
            return (~self.run.running | (hg * (s.credit + s.acc) + s.fin_head
                                         <= hg * self.ring_credit() + sv_done),
                    "inv: credit bound <= dilation · ring + positions done")
        return (~self.run.running | (s.credit + s.acc <= self.ring_credit() + sv_done),
                "inv: credit bound <= dilation · ring + rows done")

    def _position_fin(self, m: Module):
        """A position's rows are all done: every ``sv_fin``, or on a grouped core the one of
        its last query head (a K/V row serves the g heads of every position in its reach, so
        its slot frees by positions, not rows)."""
        hg = self.params.group_heads
        if hg == 1:
            return self.sv_fin
        head = self.state.fin_head
        fin = Signal(name="kv_pos_fin")
        m.d.comb += fin.eq(self.sv_fin & (head == hg - 1))
        with m.If(self.sv_fin):
            m.d.sync += head.eq(Mux(head == hg - 1, 0, head + 1))
        with m.If(self.run.start):
            m.d.sync += head.eq(0)
        return fin

    def _write_ports(self, m: Module, ports, addr, lane_sel, flag, pre):
        """The ring's write ports: every lane's K and V (and, with global tokens, the
        global-token flag of a band row; ``flag``, ``pre``: the flag and the preamble's
        marker) take the copier's row word at ``addr`` while the loader holds a row for the
        lane ``lane_sel``."""
        kwr, vwr, fwr = ports
        hold, copy = self.state.hold, self.copier
        for lane in range(self.params.hw.key_lanes):
            m.d.comb += [
                kwr[lane].addr.eq(addr), kwr[lane].data.eq(copy.k),
                kwr[lane].en.eq(hold & (lane_sel == lane)),
                vwr[lane].addr.eq(addr), vwr[lane].data.eq(copy.v),
                vwr[lane].en.eq(hold & (lane_sel == lane)),
            ]
            if flag is not None:
                m.d.comb += [fwr[lane].addr.eq(addr), fwr[lane].data.eq(flag),
                             fwr[lane].en.eq(hold & ~pre & (lane_sel == lane))]

    def elaborate(self, platform):
        m = Module()
        p, run, s = self.params, self.run, self.state
        kl, g = p.hw.key_lanes, p.groups
        sg, depth, ring = p.region_words, p.kv_depth, p.ring_rows
        dmax, gmax, blk = p.max_dilation, p.max_global_tokens, p.block_size
        running, n, cmd, start_run = run.running, run.n, run.cmd, run.start
        dil = run.dil if dmax > 1 else 1
        gcount = run.gcount if gmax else None
        kv_acc, kv_hold, kv_g = s.acc, s.hold, s.g
        kv_more, kv_credit, kv_wait, slot_free = s.more, s.credit, s.wait, s.slot_free
        kv_wr = Signal(p.index_bits, name="kv_wr")   # band rows written (readable)
        kv_rows = Signal(STAT_BITS, name="stat_kv_rows")
        m.d.comb += [self.kv_wr.eq(kv_wr), self.kv_rows.eq(kv_rows)]

        kwr, vwr, fwr = self._memories(m, platform)

        # loader: the run's global columns first (into the global region), then the band rows,
        # each taken when its slot is free and written in G cycles
        kv_lane = Signal(range(max(kl, 2)))
        kv_base = Signal(range(max(depth, 2)))   # the row's first word inside its region
        kv_cls = Signal(range(max(dmax, 2)))     # residue class of the next band row written
        kv_region = Signal(range(max(depth, 2)))  # kv_cls · S·G (the global region: preamble)
        kv_a = Signal(p.index_bits)              # class-local index of the next band row written
        m.d.comb += self.kv_a.eq(kv_a)
        if dmax > 1:
            m.d.comb += self.kv_cls.eq(kv_cls)
        # The take condition is kept in registers so that kv.ready is a short function of
        # registers (it drives the producer and the loader's enables): "rows left" kv_more =
        # (kv_acc < n), and "a ring slot is free", which is kv_acc < max(dilation·ring rows,
        # sv_done + dilation·(ring rows − before)), as the credit (that bound − kv_acc). The
        # bound starts at dilation·ring rows and grows by one with every row that finishes SV
        # once dilation·before rows have (kv_wait counts those).
        kv_band = Signal()   # a band row is accepted (kv_acc counts up)
        sv_fin = self._position_fin(m)
        kv_last = kv_hold & (kv_g == g - 1)
        kv_take = Signal()
        if gmax:
            pre_acc, pre_wr, kv_pre = s.pre_acc, s.pre_wr, s.pre   # (accepted, written)
            pre_more = pre_acc < gcount
            kv_flag = Signal()                   # the band row being written is a global token
            if not blk and not p.sink_core:   # the global tokens still ahead of the loader
                lpos = [Signal(p.index_bits, name=f"kv_gpos{k}") for k in range(gmax)]
                lrem = Signal(range(gmax + 1))
            m.d.comb += [kv_take.eq(running & (pre_more | (kv_more & slot_free))
                                    & (~kv_hold | kv_last)),
                         kv_band.eq(self.kv.valid & kv_take & ~pre_more)]
        else:
            m.d.comb += [kv_take.eq(running & kv_more & slot_free & (~kv_hold | kv_last)),
                         kv_band.eq(self.kv.valid & kv_take)]
        with m.If(kv_band):
            m.d.sync += kv_more.eq(kv_acc + 1 < n)
        with m.If(sv_fin & kv_wait.any()):
            m.d.sync += kv_wait.eq(kv_wait - 1)
        # (as a choice between credit ± 1, so that the late kv_band and sv_fin select at the end
        # instead of entering an adder's carry chain)
        kv_grow = sv_fin & ~kv_wait.any()
        with m.If(kv_band & ~kv_grow):
            m.d.sync += [kv_credit.eq(kv_credit - 1), slot_free.eq(kv_credit != 1)]
        with m.Elif(kv_grow & ~kv_band):
            m.d.sync += [kv_credit.eq(kv_credit + 1), slot_free.eq(1)]
        # a new sequence (on a decode core, a continue keeps the ring's credit: its rows go on)
        new_seq = (start_run & ~run.cont) if p.decode else start_run
        with m.If(start_run):   # (seq_len >= 1)
            d_r = cmd.dilation if dmax > 1 else 1
            credit = [kv_credit.eq(d_r * ring), slot_free.eq(1),
                      kv_wait.eq(p.ring_before if blk else d_r * cmd.before)]
            m.d.sync += [kv_more.eq(1), *([] if p.decode else credit)]
        if p.decode:
            with m.If(new_seq):
                m.d.sync += credit
        kv_start = self.kv.valid & kv_take
        kv_copy = self.copier
        kv_copy.build(m, self.kv, kv_start)
        kv_addr = kv_region + kv_base + kv_g
        if p.ctx_bits:
            kv_addr = kv_addr + self.ctx_base
        self._write_ports(m, (kwr, vwr, fwr), kv_addr, kv_lane,
                          kv_flag if gmax else None, kv_pre if gmax else None)

        def next_lane(base_step):
            """The next row's lane, and its slot once every lane has one."""
            with m.If(kv_lane == kl - 1):
                m.d.sync += [kv_lane.eq(0), kv_base.eq(base_step)]
            with m.Else():
                m.d.sync += kv_lane.eq(kv_lane + 1)

        def band_written():
            m.d.sync += [kv_wr.eq(kv_wr + 1), kv_rows.eq(kv_rows + 1)]
            if dmax > 1:  # rows of one class-local index fill the classes in turn
                with m.If(kv_cls == dil - 1):
                    m.d.sync += [kv_cls.eq(0), kv_region.eq(0), kv_a.eq(kv_a + 1)]
                    next_lane(wrap_inc(kv_base, g, sg))
                with m.Else():
                    m.d.sync += [kv_cls.eq(kv_cls + 1), kv_region.eq(kv_region + sg)]
            else:
                m.d.sync += kv_a.eq(kv_a + 1)
                next_lane(wrap_inc(kv_base, g, sg))

        with m.If(kv_hold):
            m.d.sync += kv_g.eq(kv_g + 1)
            with m.If(kv_last):
                m.d.sync += [kv_hold.eq(0), kv_g.eq(0)]
                if gmax:
                    with m.If(kv_pre):
                        m.d.sync += pre_wr.eq(pre_wr + 1)
                        with m.If(pre_wr + 1 == gcount):  # the band starts in region 0
                            m.d.sync += [kv_region.eq(0), kv_base.eq(0), kv_lane.eq(0)]
                        with m.Else():
                            next_lane(kv_base + g)
                    with m.Else():
                        band_written()
                else:
                    band_written()
        with m.If(kv_start):
            m.d.sync += [kv_hold.eq(1), kv_g.eq(0)]
            if gmax:
                with m.If(pre_more):
                    m.d.sync += [pre_acc.eq(pre_acc + 1), kv_pre.eq(1)]
                with m.Else():
                    if blk:   # the first and last blocks are the global tokens
                        hit = (kv_acc < blk) | (kv_acc >= run.n_mb)
                    elif p.sink_core:   # the sinks: the first gcount rows
                        hit = kv_acc < gcount
                    else:
                        hit = lrem.any() & (lpos[0] == kv_acc)
                        with m.If(hit):
                            m.d.sync += [lrem.eq(lrem - 1),
                                         *[lpos[k].eq(lpos[k + 1]) for k in range(gmax - 1)]]
                    m.d.sync += [kv_acc.eq(kv_acc + 1), kv_pre.eq(0), kv_flag.eq(hit)]
            else:
                m.d.sync += kv_acc.eq(kv_acc + 1)
        self._new_run(m, new_seq, kv_rows, kv_region,
                      (kv_acc, kv_wr, kv_lane, kv_base, kv_cls, kv_a, kv_rows),
                      lpos if gmax and not blk and not p.sink_core else None,
                      lrem if gmax and not blk and not p.sink_core else None)
        if p.ctx_bits:
            self._contexts(m, (kv_acc, kv_wr, kv_a, kv_lane, kv_base, kv_credit, kv_wait,
                               slot_free, kv_cls, kv_region))
        state_invariants(m, platform, [*self.invariants(), (
            (kv_rows <= kv_wr, "inv: stats.kv_rows <= kv_wr") if p.decode   # (a continue's)
            else (kv_rows == kv_wr, "inv: stats.kv_rows = kv_wr"))])
        return m

    def _contexts(self, m: Module, regs):
        """(C > 1 contexts) the run's region base, set with its start, and the carried
        registers (``regs`` in :func:`carried_layout`'s order; the class and region where the
        layout has them), loaded when a continue starts."""
        p, run, s = self.params, self.run, self.state
        with m.If(run.start):
            m.d.sync += self.ctx_base.eq(run.cmd.ctx * p.kv_depth)
        names = ("acc", "wr", "a", "lane", "base", "credit", "wait", "slot_free", "cls",
                 "region")
        fields = carried_layout(p).members
        carried = {k: r for k, r in zip(names, regs, strict=True) if k in fields}
        if p.max_global_tokens:
            carried.update(pre_acc=s.pre_acc, pre_wr=s.pre_wr)
        carry(m, self.context, carried, run.start & run.cont)

    def _new_run(self, m: Module, new_seq, kv_rows, kv_region, counters, lpos, lrem):
        """A new run resets every pointer and counter (``counters``, the global columns'
        loader, the region); on a decode core a continue keeps all but the rows counter of
        ``stats`` (``kv_rows``): its rows go on from the sequence's."""
        p, run, s = self.params, self.run, self.state
        gmax, cmd = p.max_global_tokens, run.cmd
        if gmax:
            with m.If(new_seq):
                gb = p.max_dilation * p.region_words   # the global region
                m.d.sync += [s.pre_acc.eq(0), s.pre_wr.eq(0),
                             kv_region.eq(Mux(run.cmd_gcount.any(), gb, 0))]
                if lpos is not None:
                    m.d.sync += [lrem.eq(cmd.global_count),
                                 *[lpos[k].eq(cmd.global_tokens[k]) for k in range(gmax)]]
            m.d.comb += self.pre_done.eq(s.pre_wr == run.gcount)
        with m.If(new_seq):
            m.d.sync += [sig.eq(0) for sig in counters]
            if not gmax:   # (with global tokens, the loader's start above sets the region)
                m.d.sync += kv_region.eq(0)
        if p.decode:
            with m.If(run.start):
                m.d.sync += kv_rows.eq(0)

    def _memories(self, m: Module, platform):
        """The lane memories — K and V words in ``max_dilation`` class regions of S·G words, then
        the resident global columns; one flag bit per word (the band key is a global token) —
        with the engines' reads; returns the write ports of each (``None`` for no flags)."""
        p = self.params
        depth = p.kv_depth * max(p.contexts, 1)   # (C > 1 contexts: a region each)
        base = self.ctx_base
        kmem, kwr = _banked_lanes(m, p, platform, "kmem", depth)
        vmem, vwr = _banked_lanes(m, p, platform, "vmem", depth)
        _read_lanes(m, kmem, self.k_rd, "qk_k", base=base)
        _read_lanes(m, vmem, self.v_rd, "sv_v", self.v_rd.en, base)
        m.d.comb += self.collision.eq(Cat(mem.collision for mem in (*kmem, *vmem)).any())
        if not p.max_global_tokens:
            return kwr, vwr, None
        fmem = [memory.Memory(shape=1, depth=depth, init=[]) for _ in range(p.hw.key_lanes)]
        for lane, mem in enumerate(fmem):
            m.submodules[f"fmem{lane}"] = mem
        fwr = [mem.write_port() for mem in fmem]
        for lane, mem in enumerate(fmem):
            qk_flag = mem.read_port()
            sv_flag = mem.read_port()
            qk_addr, sv_addr = self.f_qk.addr[lane], self.f_sv.addr[lane]
            if base is not None:
                qk_addr, sv_addr = qk_addr + base, sv_addr + base
            m.d.comb += [qk_flag.addr.eq(qk_addr),
                         self.f_qk.data[lane].eq(qk_flag.data),
                         sv_flag.addr.eq(sv_addr), sv_flag.en.eq(self.f_sv.en),
                         self.f_sv.data[lane].eq(sv_flag.data)]
        return kwr, vwr, fwr


class RandomRing(wiring.Component):
    """BigBird's random-block loader and buffers (module docstring).

    The K/V rows of query block B's r random blocks (b rows each, in the table's order) come on
    ``kvr`` for B = 1 … nb − 2, into random buffer B mod 2 (row t: lane t mod KL, word
    (t div KL)·G + g). Block B waits until block B − 2, which used that buffer, has finished
    (SV of rows up to (B − 1)·b − 1); a row of block B starts QK once ``blocks >= B``. The
    rows are whatever the table names: a block repeated, or also in the window or global (as
    in Hugging Face's tables), is stored and walked again, so it counts once per slot.
    """

    def __init__(self, params: CoreParams, kv_layout: data.Layout, cmd_layout: data.Layout):
        self.params = p = params
        word = p.hw.dim_lanes * p.fmt.data_bits
        super().__init__({
            "kvr": In(stream.Signature(kv_layout)),
            "run": In(run_signature(p, cmd_layout)),
            "sv_done": In(p.index_bits),
            "k_rd": In(read_signature(p, word, en=False)),
            "v_rd": In(read_signature(p, word, en=True)),
            "blocks": Out(p.index_bits),
        })
        self.collision = Signal()   # (as KVRing's)
        self.copier = RowCopier("kvr", p.groups, word)
        # the loader's state, for the invariants (rows are counted by block: the row of the
        # block being taken and that block's end)
        self.state = SimpleNamespace(
            hold=Signal(name="r_hold"),                         # a row is being written
            g=Signal(range(max(p.groups, 2)), name="r_g"),      # its word
            buf=Signal(name="r_buf"),                           # the buffer being written
            row=Signal(range(max(p.random_rows, 2)), name="r_row"),   # row of the block taken
            wlast=Signal(name="r_wlast"),          # the row being written ends its block
            bend=Signal(p.index_bits + 2, name="r_bend"),   # (B + 2)·b of the block taken
            wr_blk=Signal(p.index_bits, name="r_wr_blk"),   # blocks whose rows are written
        )

    def rows_taken(self):
        """The ``kvr`` rows taken since the run started, counting the one being copied:
        ``(B − 1)·r·b + row`` for the block B being taken."""
        s, run, blk = self.state, self.run, self.params.block_size
        return (s.bend // blk - 3) * (run.rnd_last + 1) + s.row

    def invariants(self) -> list[tuple]:
        """``(test, message)``: the random loader's invariants (for ``swatkit prove``), in
        terms of its registers and the run's."""
        p, s, run, c = self.params, self.state, self.run, self.copier
        g, blk = p.groups, p.block_size
        running = run.running
        return [
            (running | ~s.hold, "inv: no random row written while idle"),
            (s.hold | (s.g == 0), "inv: random group counter idle"),
            (s.g < g if g > 1 else s.g == 0, "inv: random group counter in range"),
            (~c.busy | (s.hold & (c.index == s.g + 1)),
             "inv: the random copier is one word ahead of the writes"),
            (c.busy | (c.index == 0), "inv: random copier idle"),
            *([(c.ready == (c.busy & (c.index == g - 1)),
                "inv: kvr ready = the copier's last word")] if g > 1 else []),
            (~running | (s.row <= run.rnd_last), "inv: r_row <= the block's last row"),
            (~running | (s.bend == (s.wr_blk + 3 + (s.hold & s.wlast)) * blk),
             "inv: r_bend = (blocks written + 3 + the block being finished) · b"),
            (~running | (s.buf == ~s.wr_blk[0]), "inv: block B in buffer B mod 2"),
            (~running | ~s.hold | ~s.wlast | (s.row == 0),
             "inv: the block's last row written: the next row is the next block's first"),
            (~running | (s.bend <= 3 * blk) | (s.bend <= run.n + blk),
             "inv: no block taken past N"),
            (~running | (s.row == 0) | (s.bend <= run.n), "inv: a block partly taken is in N"),
            (~running | ~s.hold | (s.bend <= Mux(s.wlast, run.n + blk, run.n)),
             "inv: the block being written is in N"),
            (~running | run.rcount.any() | ((s.bend == 3 * blk) & ~s.hold & (s.row == 0)),
             "inv: no random row taken in a run without random blocks"),
        ]

    def elaborate(self, platform):
        m = Module()
        p, run = self.params, self.run
        kl, g, blk = p.hw.key_lanes, p.groups, p.block_size
        running, n, start_run = run.running, run.n, run.start
        rwords = p.random_rounds * g
        rkmem, rkwr = _banked_lanes(m, p, platform, "rkmem", p.random_depth)
        rvmem, rvwr = _banked_lanes(m, p, platform, "rvmem", p.random_depth)
        s = self.state
        r_hold, r_g, r_buf, r_row = s.hold, s.g, s.buf, s.row
        r_wlast, r_bend, r_wr_blk = s.wlast, s.bend, s.wr_blk
        r_lane = Signal(range(max(kl, 2)))
        r_base = Signal(range(max(p.random_depth, 2)))
        m.d.comb += self.blocks.eq(r_wr_blk)
        r_last = r_hold & (r_g == g - 1)
        r_free = (r_bend <= 4 * blk) | (self.sv_done + 3 * blk >= r_bend)
        r_take = Signal()
        m.d.comb += [r_take.eq(running & run.rcount.any() & (r_bend <= n) & r_free
                               & (~r_hold | r_last))]
        r_start = self.kvr.valid & r_take
        r_copy = self.copier
        r_copy.build(m, self.kvr, r_start)
        for lane in range(kl):
            en = r_hold & (r_lane == lane)
            m.d.comb += [rkwr[lane].addr.eq(r_base + r_g), rkwr[lane].data.eq(r_copy.k),
                         rkwr[lane].en.eq(en),
                         rvwr[lane].addr.eq(r_base + r_g), rvwr[lane].data.eq(r_copy.v),
                         rvwr[lane].en.eq(en)]
        with m.If(r_hold):
            m.d.sync += r_g.eq(r_g + 1)
            with m.If(r_last):
                m.d.sync += [r_hold.eq(0), r_g.eq(0)]
                with m.If(r_wlast):   # the block is written: the next one, other buffer
                    m.d.sync += [r_wr_blk.eq(r_wr_blk + 1), r_lane.eq(0), r_buf.eq(~r_buf),
                                 r_base.eq(Mux(r_buf, 0, rwords))]
                with m.Elif(r_lane == kl - 1):
                    m.d.sync += [r_lane.eq(0), r_base.eq(r_base + g)]
                with m.Else():
                    m.d.sync += r_lane.eq(r_lane + 1)
        with m.If(r_start):
            m.d.sync += [r_hold.eq(1), r_g.eq(0), r_wlast.eq(r_row == run.rnd_last)]
            with m.If(r_row == run.rnd_last):
                m.d.sync += [r_row.eq(0), r_bend.eq(r_bend + blk)]
            with m.Else():
                m.d.sync += r_row.eq(r_row + 1)
        with m.If(start_run):   # block 1 first, into buffer 1
            m.d.sync += [r_hold.eq(0), r_g.eq(0), r_lane.eq(0), r_base.eq(rwords),
                         r_buf.eq(1), r_row.eq(0), r_bend.eq(3 * blk), r_wr_blk.eq(0)]
        _read_lanes(m, rkmem, self.k_rd, "qk_rk")
        _read_lanes(m, rvmem, self.v_rd, "sv_rv", self.v_rd.en)
        m.d.comb += self.collision.eq(Cat(mem.collision for mem in (*rkmem, *rvmem)).any())
        state_invariants(m, platform, self.invariants())
        return m
