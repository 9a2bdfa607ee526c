"""GlobalRowEngine: Longformer's global rows, each attending all N keys through its own
projections, bit-exact to the fixed-point contract of :mod:`swatkit.golden.numerics`.

What it computes: for each global row ``g`` (``rows`` of them per run, in order) with query
``q_g[g]`` and the global keys/values ``k_g[j]``, ``v_g[j]`` (``j = 0 … N−1``)::

    S_j = Σ_c q_g[g, c]·k_g[j, c]                  (step 1, exact)
    m = max_j S_j;  p_j = fmt.probabilities(m − S_j, head_dim)      (steps 2–4)
    l = Σ_j p_j;  acc_c = Σ_j p_j·v_g[j, c]          (step 5)
    o_c = fmt.normalise(acc_c, l)                    (step 6)

with the band core's units (:func:`~swatkit.rtl.units.registered_mul`, ``sum_tree``,
``exp2_stages``, ``divide_stages``), so the numerics are the core's by construction.

Schedule and cost (multi-query): the run's ``rows`` q_g rows are loaded first and stay resident,
and every streamed K_g/V_g row serves all of them. The contract needs each row's max before its
first exponential and the engine keeps no N-sized score store, so the N K/V rows are streamed
**twice per run** (not per global row). Pass 1: for each key ``j`` and each global row ``r``
in turn, the score ``S_rj`` (one group of ``dim_lanes`` elements per cycle, ``G = head_dim /
dim_lanes`` cycles) is folded into row ``r``'s running max. Pass 2: each score is recomputed,
its exponential taken and ``p·v`` (``dim_lanes`` multipliers, ``G`` cycles) and ``l`` added into
row ``r``'s state; a key thus takes ``rows·G`` cycles in either pass. After pass 2 the rows are
read out in order, one group per cycle, into the dividers. Pass 2 follows pass 1 with no bubble
(a row's max is final by the time its first pass-2 score reaches it, because the pipeline keeps
order), so a run with always-valid inputs and an always-ready output is busy for exactly
``global_row_cycles(...) = 2·rows·N·G + rows·(G + 1) + G + divider_latency(fmt) + FILL_DRAIN``
cycles (``rows``: the Q rows load; ``rows·G``: the read-out; ``G``: the last key's p·v groups;
``FILL_DRAIN = 16``: the first K/V row, the QK pipeline, the exp, the p·v multipliers, the
read-out's memory read, the output register and FIFO, the row counter).
Off-chip traffic per run: ``rows`` Q rows and ``2·N`` K/V row pairs in, whatever ``rows`` (the V
half is ignored in pass 1), ``rows`` O rows out. Multipliers: ``2·dim_lanes``; storage: memories
for the resident Q rows (``max_rows × head_dim × data_bits``) and for each row's state
(``max_rows × global_state_bits(...)``: its ``head_dim`` accumulators, one word of ``dim_lanes``
per group, its ``l``, its max and ``max − d_sat``; each memory at least two rows deep, the
second unused when ``max_rows`` is 1); one K row, one V row, a Q row register and a
FIFO of ``(8 + G) // G + 2`` V rows.

Ports (stream transfer rule as in :mod:`swatkit.rtl.units`: a beat moves in a cycle with
``valid & ready``; a producer holds ``valid`` and its payload until the transfer):

- ``start`` (pulse), ``seq_len``, ``rows``: sampled on a ``start`` pulse while idle; ``rows`` or
  ``seq_len`` equal to 0 starts nothing. The instantiating core validates the values.
- ``qg``: one Q row per global row (all of them before the first K/V beat is taken); ``kvg``:
  per run, pass 1 then pass 2, each the N beats ``{k: k_g[j], v: v_g[j]}`` in key order (``2·N``
  beats per run, whatever ``rows``); ``og``: one O row per global row, in order, after pass 2.
- ``busy``; the 48-bit counters ``cycles`` (busy cycles), ``qk_macs`` (``2·rows·N·head_dim``),
  ``sv_macs`` (``rows·N·head_dim``), ``exp_ops`` (``rows·N``), cleared by any start while
  idle (one that starts nothing too).

Structure: the Q rows wait in a memory whose read port always holds the next row to issue; a
loader holds one K row and rotates it through the ``dim_lanes`` q·k multipliers once per global
row. A row's max (pass 1) and its accumulators and ``l`` (pass 2) live in memories updated by
read-modify-write (the read transparent, one stage ahead of the write). V rows of pass 2 wait
in a small FIFO until the first global row's probability of their key is known, then rotate
through the p·v multipliers once per global row. The datapath never stalls (no row result
waits in it); the read-out after pass 2 advances under the dividers' enable, and the output
rows leave through a FIFO so that ``og.ready`` reaches no pipeline enable (as in the core).
"""

from __future__ import annotations

from types import SimpleNamespace

from amaranth import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, fifo, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from swatkit.golden import NumberFormat
from swatkit.golden.checks import check_int
from swatkit.golden.numerics import clog2

from .normaliser import Normaliser
from .units import (
    EXP_LATENCY,
    STAT_BITS,
    _reg,
    divider_latency,
    exp2_stages,
    registered_mul,
    state_invariants,
    sum_tree,
)

__all__ = [
    "GLOBAL_STAT_FIELDS",
    "GlobalRowEngine",
    "GlobalRowEngines",
    "global_row_cycles",
    "global_rows_cycles",
    "global_rows_layouts",
    "global_rows_signature",
    "global_state_bits",
]

GLOBAL_STAT_FIELDS = ("cycles", "qk_macs", "sv_macs", "exp_ops")

# Pipeline depths (cycles under the enable) of the schedule; global_row_cycles is built from them
QK_DEPTH = 4   # issue → multiplier operands → products → group sum → score register
SV_DEPTH = 2   # walker → multiplier operands → products (accumulated into the row there)
# Cycles of a run besides 2·rows·N·G (the K groups issued) + rows (the Q rows load) + G (the last
# key's V groups) + rows·G (the read-out) + the divider latency: the first K/V row enters (1),
# QK_DEPTH, EXP_LATENCY, SV_DEPTH, the read-out's memory read (1), the output row register (1),
# the output FIFO (2), the row counter that ends busy (1)
FILL_DRAIN = 1 + QK_DEPTH + EXP_LATENCY + SV_DEPTH + 1 + 1 + 2 + 1


def _rows_memory(shape, depth: int) -> memory.Memory:
    """A memory of ``depth`` rows, at least two: a one-row memory (one global row per engine,
    Longformer's CLS token) has a 0-bit address, which the Verilog backend writes as
    ``wire [-1:0]`` (Verilator's ASCRANGE). The second row is never addressed."""
    return memory.Memory(shape=shape, depth=max(depth, 2), init=[])


def _check_shape(fmt, head_dim, dim_lanes) -> int:
    """Check the arguments shared by the engine and its cycle model; return G."""
    if not isinstance(fmt, NumberFormat):
        raise TypeError(f"fmt must be a NumberFormat, not {fmt!r}")
    check_int("head_dim", head_dim, 1)
    check_int("dim_lanes", dim_lanes, 1)
    if head_dim % dim_lanes:
        raise ValueError(f"dim_lanes must divide head_dim ({head_dim}), not {dim_lanes}")
    return head_dim // dim_lanes


def _lo_bits(fmt: NumberFormat, head_dim: int, w) -> int:
    """Width of a row's ``max − d_sat`` (kept beside its max)."""
    return max(w.score, fmt.softmax_constant(head_dim).d_sat.bit_length()) + 2


def global_state_bits(fmt: NumberFormat, head_dim: int, w) -> int:
    """Bits of one global row's state in the engine's memories (``w``: the engine's widths):
    ``head_dim`` accumulators, ``l``, the max and ``max − d_sat``."""
    return head_dim * w.acc + w.sum + w.score + _lo_bits(fmt, head_dim, w)


def global_rows_layouts(fmt: NumberFormat, head_dim: int) -> dict:
    """The payload layouts of the streams (``qg``, ``kvg``, ``og``); testbenches pack and
    unpack with these."""
    row = data.ArrayLayout(signed(fmt.data_bits), head_dim)
    return {
        "qg": row,
        "kvg": data.StructLayout({"k": row, "v": row}),
        "og": data.ArrayLayout(signed(fmt.out_bits), head_dim),
    }


def global_rows_signature(fmt: NumberFormat, head_dim: int, max_seq_len: int,
                          max_rows: int) -> wiring.Signature:
    """The ports of :class:`GlobalRowEngine`."""
    lay = global_rows_layouts(fmt, head_dim)
    return wiring.Signature({
        "start": In(1),
        "seq_len": In(unsigned(clog2(max_seq_len + 1))),
        "rows": In(range(max_rows + 1)),
        "qg": In(stream.Signature(lay["qg"])),
        "kvg": In(stream.Signature(lay["kvg"])),
        "og": Out(stream.Signature(lay["og"])),
        "busy": Out(1),
        **{name: Out(STAT_BITS) for name in GLOBAL_STAT_FIELDS},
    })


def global_row_cycles(head_dim: int, dim_lanes: int, fmt: NumberFormat, seq_len: int,
                      rows: int) -> int:
    """Busy cycles of a run of ``rows`` global rows over ``seq_len`` keys with always-valid
    inputs and an always-ready output (what the engine's ``cycles`` counter reads afterwards):
    ``2·rows·N·G + rows·(G + 1) + G + divider_latency(fmt) + FILL_DRAIN``, 0 when nothing
    starts."""
    g = _check_shape(fmt, head_dim, dim_lanes)
    check_int("seq_len", seq_len, 0)
    check_int("rows", rows, 0)
    if rows == 0 or seq_len == 0:
        return 0
    return (2 * rows * seq_len * g + rows * (g + 1) + g + divider_latency(fmt)
            + FILL_DRAIN)


def global_rows_cycles(head_dim: int, dim_lanes: int, fmt: NumberFormat, seq_len: int,
                       rows: int, engines: int = 1) -> int:
    """Busy cycles of :class:`GlobalRowEngines` (``engines`` engines, ``rows`` a multiple of
    it: ``c = rows / engines`` each) under always-valid inputs and an always-ready output: one
    engine's :func:`global_row_cycles` for ``c`` rows, and the collection of the rows in turn,
    ``2·(E − 1) + (c − 1)·(E + max(G, E) − G − 1)`` cycles more (measured in the Amaranth
    simulator for G = 1 … 16, E = 2 … 16, c = 1 … 5; tests/rtl/test_global_rows.py)."""
    g = _check_shape(fmt, head_dim, dim_lanes)
    check_int("engines", engines, 1)
    if rows % engines:
        raise ValueError(f"rows ({rows}) must be a multiple of engines ({engines})")
    c = rows // engines
    base = global_row_cycles(head_dim, dim_lanes, fmt, seq_len, c)
    if engines == 1 or not base:
        return base
    return base + 2 * (engines - 1) + (c - 1) * (engines + max(g, engines) - g - 1)


class GlobalRowEngine(wiring.Component):
    """Two-pass multi-query engine for global attention rows (all N keys, own projections):
    every streamed K/V row serves all the run's global rows.

    Parameters
    ----------
    fmt : NumberFormat
    head_dim : int
        Elements per Q/K/V/O row.
    dim_lanes : int
        Multipliers per engine (q·k and p·v each); must divide ``head_dim``.
    max_seq_len : int
        Largest N; sizes ``seq_len`` and every width (``fmt.widths(head_dim, max_seq_len)``).
    max_rows : int
        Largest number of global rows per run (>= 1).

    Members
    -------
    start : In(1)      starts a run when idle (``seq_len``, ``rows`` sampled then).
    seq_len : In(unsigned(clog2(max_seq_len + 1)))   N, the keys of every global row.
    rows : In(range(max_rows + 1))   global rows in the run.
    qg : In(stream)    ``ArrayLayout(signed(data_bits), head_dim)``: one Q row per global row.
    kvg : In(stream)   ``{k, v}`` rows: per run, N beats for pass 1, N for pass 2.
    og : Out(stream)   ``ArrayLayout(signed(out_bits), head_dim)``: one O row per global row,
                       after pass 2.
    busy : Out(1)      a run is in progress (until its last O row has moved).
    cycles, qk_macs, sv_macs, exp_ops : Out(48)   counters of the current/last run.

    Raises
    ------
    TypeError
        An argument has the wrong type.
    ValueError
        ``dim_lanes`` does not divide ``head_dim``, a size is below 1, or the format cannot
        hold rows of ``max_seq_len`` keys (from :meth:`NumberFormat.widths`).
    """

    def __init__(self, fmt: NumberFormat, head_dim: int, dim_lanes: int, max_seq_len: int,
                 max_rows: int):
        self._MustUse__silence = True  # until the arguments are checked
        self.groups = _check_shape(fmt, head_dim, dim_lanes)
        check_int("max_seq_len", max_seq_len, 1)
        check_int("max_rows", max_rows, 1)
        self.widths = fmt.widths(head_dim, max_seq_len)  # (raises for a format too wide)
        self._MustUse__silence = False
        self.fmt, self.head_dim, self.dim_lanes = fmt, head_dim, dim_lanes
        self.max_seq_len, self.max_rows = max_seq_len, max_rows
        super().__init__(global_rows_signature(fmt, head_dim, max_seq_len, max_rows))
        # not ports: the run's registers and the streams' counters, for the invariants and the
        # stream contract's proofs (sim/formal.py)
        index = len(self.seq_len)
        self.state = SimpleNamespace(
            active=Signal(name="g_active"), n=Signal(index, name="g_n"),
            n_rows=Signal(range(max_rows + 1), name="g_n_rows"),
            q_acc=Signal(range(max_rows + 1), name="g_q_acc"),          # qg rows taken
            rows_out=Signal(range(max_rows + 1), name="g_rows_out"),    # og rows sent
            kv_pass2=Signal(name="g_kv_pass2"), kv_j=Signal(index, name="g_kv_j"),
            kv_done=Signal(name="g_kv_done"))

    def kvg_taken(self):
        """``kvg`` beats taken in the run: ``kv_j`` of the pass, after N of pass 1."""
        s = self.state
        return Mux(s.kv_done, 2 * s.n, Mux(s.kv_pass2, s.n, 0) + s.kv_j)

    def elaborate(self, platform):
        m = Module()
        e = self._context(m)
        self._control(m, e)
        qrd, q_loaded = self._q_rows(m, e)
        ld = self._kv_loader(m, e, qrd, q_loaded)
        score, c = self._qk(m, e, platform, ld)
        prob, c = self._softmax(m, e, score, c)
        pv, s1, s2 = self._sv(m, e, platform, prob, c, ld.vfifo)
        readout = self._accumulate_and_read(m, e, pv, s1, s2)
        state_invariants(m, platform, self._invariants(e.stages, readout))
        wiring.connect(m, readout.norm.o, wiring.flipped(self.og))
        with m.If(self.og.valid & self.og.ready):
            m.d.sync += e.st.rows_out.eq(e.st.rows_out + 1)
        self._start(m, e, readout)
        return m

    def _context(self, m):
        """What every part of :meth:`elaborate` shares: the sizes, the run's registers, the
        statistics counters, the pipeline's stage list (for the invariants) and its enable."""
        fmt, dl = self.fmt, self.dim_lanes
        stats = {name: Signal(STAT_BITS, name=f"stat_{name}") for name in GLOBAL_STAT_FIELDS}
        m.d.comb += [getattr(self, name).eq(sig) for name, sig in stats.items()]
        e = SimpleNamespace(
            fmt=fmt, w=self.widths, d=self.head_dim, dl=dl, g=self.groups, b=fmt.data_bits,
            word=dl * fmt.data_bits,   # one group of dim_lanes elements
            max_rows=self.max_rows, st=self.state, stats=stats, stages=[],
            en=Const(1))  # the datapath never waits (the row state is in memories, read out after)
        e.addr = lambda row, grp: row * e.g + grp   # row's group grp in the accumulator memory
        return e

    @staticmethod
    def _regs(m, e, name, **fields):
        """A pipeline register stage: each field registered under ``e.en``."""
        stage = {key: _reg(m, e.en, value, f"{name}_{key}") for key, value in fields.items()}
        e.stages.append(stage)
        return stage

    def _control(self, m, e):
        """Run control: busy while active, the cycle counter, the end after the last row."""
        st = e.st
        m.d.comb += self.busy.eq(st.active)
        with m.If(st.active):
            m.d.sync += e.stats["cycles"].eq(e.stats["cycles"] + 1)
            with m.If(st.rows_out == st.n_rows):
                m.d.sync += st.active.eq(0)

    def _q_rows(self, m, e):
        """The Q memory: the run's q_g rows, resident; its read port holds the next row to
        issue. Returns the read port and "all Q rows loaded"."""
        st = e.st
        qmem = _rows_memory(unsigned(e.d * e.b), e.max_rows)
        m.submodules.qmem = qmem
        qwr = qmem.write_port()
        qrd = qmem.read_port(transparent_for=(qwr,))
        q_loaded = st.q_acc == st.n_rows
        m.d.comb += [self.qg.ready.eq(st.active & ~q_loaded),
                     qwr.addr.eq(st.q_acc), qwr.data.eq(self.qg.payload.as_value()),
                     qwr.en.eq(self.qg.valid & self.qg.ready)]
        with m.If(self.qg.valid & self.qg.ready):
            m.d.sync += st.q_acc.eq(st.q_acc + 1)
        return qrd, q_loaded

    def _kv_loader(self, m, e, qrd, q_loaded):
        """The K/V loader: a K row is issued G times over (once per global row, G groups
        each). A key's V is popped when the first global row's probability of it arrives,
        QK_DEPTH + EXP_LATENCY + 1 cycles after that row's last K group issued: up to that
        many / G later keys are loaded meanwhile, into ``vfifo``."""
        st, g, max_rows, stats = e.st, e.g, e.max_rows, e.stats
        n, n_rows, kv_pass2, kv_j = st.n, st.n_rows, st.kv_pass2, st.kv_j
        vfifo = fifo.SyncFIFO(width=e.d * e.b, depth=(QK_DEPTH + EXP_LATENCY + g) // g + 2)
        m.submodules.vfifo = vfifo
        hold = Signal()           # a K row is being issued
        hold_g = Signal(range(max(g, 2)))
        hold_r = Signal(range(max(max_rows, 2)))
        hold_last_g = hold_g == g - 1
        hold_last_r = hold_r == n_rows - 1
        kbuf = Signal(e.d * e.b)
        q_cur = Signal(e.d * e.b)
        flags = Signal(data.StructLayout({"pass2": 1, "first_key": 1, "last_key": 1}))
        next_row = hold & hold_last_g & ~hold_last_r  # on to the next global row of the key
        kv_take = Signal()
        take = Signal()
        m.d.comb += [
            kv_take.eq(st.active & q_loaded & ~st.kv_done
                       & (~hold | (hold & hold_last_g & hold_last_r))
                       & (~kv_pass2 | vfifo.w_rdy)),
            self.kvg.ready.eq(kv_take),
            take.eq(self.kvg.valid & kv_take),
            vfifo.w_data.eq(self.kvg.payload.v.as_value()),
            vfifo.w_en.eq(take & kv_pass2),
        ]
        # the Q read port: row 0 while the rows load (transparent), then always the row after
        # the one q_cur takes
        after = hold_r + 2
        m.d.comb += [
            qrd.en.eq(~q_loaded | take | next_row),
            qrd.addr.eq(Mux(~q_loaded, 0, Mux(take, Mux(n_rows == 1, 0, 1),
                                                Mux(after == n_rows, 0, after)))),
        ]
        with m.If(hold):
            m.d.sync += [kbuf.eq(kbuf.rotate_right(e.word)), q_cur.eq(q_cur.rotate_right(e.word)),
                         hold_g.eq(Mux(hold_last_g, 0, hold_g + 1)),
                         stats["qk_macs"].eq(stats["qk_macs"] + e.dl)]
            with m.If(hold_last_g):
                with m.If(hold_last_r):
                    m.d.sync += hold.eq(0)
                with m.Else():
                    m.d.sync += [hold_r.eq(hold_r + 1), q_cur.eq(qrd.data)]
        with m.If(take):
            last_key = kv_j == n - 1
            m.d.sync += [kbuf.eq(self.kvg.payload.k.as_value()), hold.eq(1), hold_g.eq(0),
                         hold_r.eq(0), q_cur.eq(qrd.data),
                         flags.pass2.eq(kv_pass2), flags.first_key.eq(kv_j == 0),
                         flags.last_key.eq(last_key),
                         kv_j.eq(Mux(last_key, 0, kv_j + 1))]
            with m.If(last_key):
                m.d.sync += kv_pass2.eq(~kv_pass2)
                with m.If(kv_pass2):
                    m.d.sync += st.kv_done.eq(1)
        e.stages.append({"valid": hold, "pass2": flags.pass2, "last_key": flags.last_key,
                         "r": hold_r, "last_g": hold_last_g})
        return SimpleNamespace(hold=hold, hold_g=hold_g, hold_r=hold_r, last_g=hold_last_g,
                               kbuf=kbuf, q_cur=q_cur, flags=flags, vfifo=vfifo)

    def _qk(self, m, e, platform, ld):
        """QK: ``dim_lanes`` multipliers, one group per cycle, accumulated over the G groups
        of a (key, global row). Returns the score and its stage."""
        en, b, dl, w = e.en, e.b, e.dl, e.w
        c = {"valid": ld.hold, "first_g": ld.hold_g == 0, "last_g": ld.last_g, "r": ld.hold_r,
             "pass2": ld.flags.pass2, "first_key": ld.flags.first_key,
             "last_key": ld.flags.last_key}
        qv = data.View(data.ArrayLayout(signed(b), dl), ld.q_cur[:e.word])
        kv = data.View(data.ArrayLayout(signed(b), dl), ld.kbuf[:e.word])
        prods = [Signal(signed(2 * b), name=f"qk_prod{u}") for u in range(dl)]
        for u in range(dl):
            registered_mul(m, platform, qv[u], kv[u], prods[u], en_a=en, en_b=en, en_out=en,
                           name=f"qk_mul{u}")
        c = self._regs(m, e, "qk1", **c)   # operands
        c = self._regs(m, e, "qk2", **c)   # products
        dot = _reg(m, en, sum_tree(prods), "qk_dot", signed(w.score))
        c = self._regs(m, e, "qk3", **c)
        acc = Signal(signed(w.score))
        score_next = Mux(c["first_g"], 0, acc) + dot
        with m.If(en & c["valid"]):
            m.d.sync += acc.eq(score_next)
        score = _reg(m, en, score_next, "qk_score", signed(w.score))
        return score, c

    def _softmax(self, m, e, score, c):
        """The row maxima (pass 1) and the exponentials (pass 2). The max memory holds per
        global row its running max m and m − d_sat, read (transparently) one stage ahead of
        the score; every pass-1 score of a row reaches the score stage before its first
        pass-2 score, so pass 2 reads the final m. Returns the probability and its stage."""
        fmt, w, d, en = e.fmt, e.w, e.d, e.en
        d_sat = fmt.softmax_constant(d).d_sat
        lo_bits = _lo_bits(fmt, d, w)
        mmem = _rows_memory(unsigned(w.score + lo_bits), e.max_rows)
        m.submodules.mmem = mmem
        mwr = mmem.write_port()
        mrd = mmem.read_port(transparent_for=(mwr,))
        m.d.comb += mrd.addr.eq(c["r"])
        c = self._regs(m, e, "qk4", valid=c["valid"] & c["last_g"], pass2=c["pass2"], r=c["r"],
                       first_key=c["first_key"], last_key=c["last_key"])
        row_max = mrd.data[:w.score].as_signed()
        m_lo = mrd.data[w.score:].as_signed()
        max_next = Mux(c["first_key"] | (score > row_max), score, row_max)
        lo_next = Signal(signed(lo_bits))
        m.d.comb += lo_next.eq(max_next - d_sat)
        m.d.comb += [mwr.addr.eq(c["r"]), mwr.data.eq(Cat(max_next, lo_next)),
                     mwr.en.eq(en & c["valid"] & ~c["pass2"])]
        with m.If(en & c["valid"] & c["pass2"]):
            m.d.sync += e.stats["exp_ops"].eq(e.stats["exp_ops"] + 1)
        diff = (row_max - score).as_unsigned()[:w.score]
        (prob,) = exp2_stages(m, en, [diff], fmt, d, name="exp", saturated=[score < m_lo])
        c = {"valid": c["valid"] & c["pass2"], "first_key": c["first_key"],
             "last_key": c["last_key"], "r": c["r"]}
        for k in range(EXP_LATENCY):
            c = self._regs(m, e, f"exp{k}", **c)
        return prob, c

    def _sv(self, m, e, platform, prob, c, vfifo):
        """SV: a walker feeds the key's V groups with its p to ``dim_lanes`` multipliers.
        Returns the products and the two stages behind them."""
        en, g, b, dl, w = e.en, e.g, e.b, e.dl, e.w
        arrive = en & c["valid"]  # a pass-2 probability (the key's V leaves the FIFO for row 0)
        walk = Signal()
        walk_g = Signal(range(max(g, 2)))
        walk_last_g = walk_g == g - 1
        p_hold = Signal(unsigned(e.fmt.prob_bits))
        vcur = Signal(e.d * b)
        wflags = Signal(data.StructLayout({"first_key": 1, "last_key": 1}))
        walk_r = Signal(range(max(e.max_rows, 2)))
        m.d.comb += vfifo.r_en.eq(arrive & (c["r"] == 0))
        with m.If(en & walk):
            m.d.sync += [vcur.eq(vcur.rotate_right(e.word)),
                         walk_g.eq(Mux(walk_last_g, 0, walk_g + 1)),
                         e.stats["sv_macs"].eq(e.stats["sv_macs"] + dl)]
            with m.If(walk_last_g):
                m.d.sync += walk.eq(0)
        with m.If(arrive):  # (the previous row's last group is issuing at the latest, and
            # has rotated V back in place)
            m.d.sync += [walk.eq(1), walk_g.eq(0), p_hold.eq(prob), walk_r.eq(c["r"]),
                         wflags.first_key.eq(c["first_key"]), wflags.last_key.eq(c["last_key"])]
            with m.If(c["r"] == 0):
                m.d.sync += vcur.eq(vfifo.r_data)
        s = {"valid": walk, "first_g": walk_g == 0, "last_g": walk_last_g, "g": walk_g,
             "r": walk_r, "first_key": wflags.first_key, "last_key": wflags.last_key,
             "p": p_hold}
        e.walk_at = len(e.stages)   # (the SV walk holds a row for its G groups)
        e.stages.append(s)
        vv = data.View(data.ArrayLayout(signed(b), dl), vcur[:e.word])
        # p is taken with the key's first V group and held by the multipliers for the others
        # ("keep" as in the core: Yosys' ABC9 aborts on a p register feeding ECP5 multipliers)
        keep = {"keep": 1}
        pv = [Signal(signed(w.pv), name=f"sv_pv{u}") for u in range(dl)]
        for u in range(dl):
            registered_mul(m, platform, p_hold, vv[u], pv[u], en_a=en & walk & (walk_g == 0),
                           en_b=en, en_out=en, name=f"sv_mul{u}", a_attrs=keep)
        s1 = self._regs(m, e, "sv1", **s)
        s2 = self._regs(m, e, "sv2", **s1)
        return pv, s1, s2

    def _accumulate_and_read(self, m, e, pv, s1, s2):
        """The accumulator memory (word (r, group): row r's ``dim_lanes`` accumulators of the
        group) and the l memory (each row's l), read-modify-write with the read (transparent)
        one stage ahead of the products; after pass 2 the same read ports feed the
        normaliser, row by row, group by group. Returns the read-out's registers."""
        en, g, dl, w, st, addr = e.en, e.g, e.dl, e.w, e.st, e.addr
        amem = _rows_memory(unsigned(dl * w.acc), e.max_rows * g)
        lmem = _rows_memory(unsigned(w.sum), e.max_rows)
        m.submodules.amem, m.submodules.lmem = amem, lmem
        awr, lwr = amem.write_port(), lmem.write_port()
        ard = amem.read_port(transparent_for=(awr,))
        lrd = lmem.read_port(transparent_for=(lwr,))
        old = [ard.data[u * w.acc:(u + 1) * w.acc].as_signed() for u in range(dl)]
        new = [Signal(signed(w.acc), name=f"sv_new{u}") for u in range(dl)]
        m.d.comb += [new[u].eq(Mux(s2["first_key"], 0, old[u]) + pv[u]) for u in range(dl)]
        total_new = Mux(s2["first_key"], 0, lrd.data) + s2["p"]
        m.d.comb += [awr.addr.eq(addr(s2["r"], s2["g"])), awr.data.eq(Cat(*new)),
                     awr.en.eq(en & s2["valid"]),
                     lwr.addr.eq(s2["r"]), lwr.data.eq(total_new),
                     lwr.en.eq(en & s2["valid"] & s2["first_g"])]

        # -- read-out: after the last row's last group, row by row, group by group
        out_phase = Signal()
        with m.If(en & s2["valid"] & s2["last_key"] & s2["last_g"] & (s2["r"] == st.n_rows - 1)):
            m.d.sync += out_phase.eq(1)
        # the normaliser and output FIFO (the core's): a group per cycle under its enable
        norm = Normaliser(e.fmt, e.d, dl, w.acc, w.sum)
        m.submodules.norm = norm
        div_en = norm.i.ready
        rd_r = Signal(range(max(e.max_rows, 2)))
        rd_g = Signal(range(max(g, 2)))
        rd_done = Signal()
        feed = out_phase & ~rd_done
        m.d.comb += [
            ard.addr.eq(Mux(out_phase, addr(rd_r, rd_g), addr(s1["r"], s1["g"]))),
            ard.en.eq(~out_phase | div_en),
            lrd.addr.eq(Mux(out_phase, rd_r, s1["r"])),
            lrd.en.eq(~out_phase | div_en),
        ]
        with m.If(div_en & feed):
            m.d.sync += rd_g.eq(Mux(rd_g == g - 1, 0, rd_g + 1))
            with m.If(rd_g == g - 1):
                m.d.sync += rd_r.eq(rd_r + 1)
                with m.If(rd_r == st.n_rows - 1):
                    m.d.sync += rd_done.eq(1)
        # (the group read one cycle ago, under the normaliser's enable)
        norm_read = _reg(m, div_en, feed, "norm_read")
        m.d.comb += [norm.i.valid.eq(norm_read),
                     norm.i.payload.acc.eq(ard.data), norm.i.payload.total.eq(lrd.data)]
        return SimpleNamespace(phase=out_phase, r=rd_r, g=rd_g, done=rd_done, read=norm_read,
                               norm=norm, walk_at=e.walk_at)

    def _start(self, m, e, readout):
        """A start latches the run and clears every pointer and counter (a start with
        nothing to do clears the statistics too: they read 0 for that run)."""
        st = e.st
        start_run = Signal()
        m.d.comb += start_run.eq(self.start & ~st.active & self.rows.any() & self.seq_len.any())
        with m.If(start_run):
            m.d.sync += [st.active.eq(1), st.n.eq(self.seq_len), st.n_rows.eq(self.rows)]
            m.d.sync += [sig.eq(0) for sig in (st.rows_out, st.q_acc, st.kv_pass2, st.kv_j,
                                                st.kv_done, readout.phase, readout.r,
                                                readout.g, readout.done)]
        with m.If(self.start & ~st.active):
            m.d.sync += [sig.eq(0) for sig in e.stats.values()]

    def _invariants(self, stages, readout) -> list[tuple]:
        """``(test, message)``: what holds in every reachable state (for ``swatkit prove``):
        the run's registers in range, the streams' counters within the run's rows and keys,
        the K/V passes after the Q rows, a token of the pipeline (``stages``: the K row being
        issued, the QK, exp and SV stages) carrying pass 2's last key only once that key is
        taken, the read-out only after pass 2 with its groups accounted for (read, in the
        normaliser, or in rows sent), and an idle engine empty."""
        st, g, rd, norm = self.state, self.groups, readout, readout.norm
        active = st.active
        tokens = Cat(stage["valid"] for stage in stages).any()
        fed = Mux(rd.done, st.n_rows * g, rd.r * g + rd.g)
        kv_started = st.kv_pass2 | st.kv_j.any() | st.kv_done | stages[0]["valid"]
        checks = [
            (~active | ((st.n >= 1) & (st.n <= self.max_seq_len) & (st.n_rows >= 1)
                        & (st.n_rows <= self.max_rows)),
             "inv: global rows: 1 <= n <= max_seq_len, 1 <= rows <= max_rows"),
            (~active | ((st.q_acc <= st.n_rows) & (st.rows_out <= st.n_rows)),
             "inv: global rows: Q rows taken, rows out <= rows"),
            (~active | (st.kv_j < st.n), "inv: global rows: key index < n"),
            (~st.kv_done | (~st.kv_pass2 & ~st.kv_j.any()),
             "inv: global rows: after pass 2, no key pending"),
            (~active | ~kv_started | (st.q_acc == st.n_rows),
             "inv: global rows: K/V rows only after the Q rows"),
            (~rd.phase | (st.kv_done & ~tokens), "inv: global rows: the read-out after pass 2"),
            (rd.phase | (~(rd.r.any() | rd.g.any() | rd.done | rd.read | st.rows_out.any())
                         & norm.idle & (norm.rows_inside == 0)),
             "inv: global rows: nothing read out before pass 2 ends"),
            (fed == rd.read + norm.groups_inside + g * (norm.rows_inside + st.rows_out),
             "inv: global rows: groups read = in the normaliser + rows out"),
            (~rd.phase | rd.done | (rd.r < st.n_rows), "inv: global rows: read-out row < rows"),
            (rd.g < g if g > 1 else rd.g == 0, "inv: global rows: read-out group < G"),
            (~rd.done | (rd.g == 0), "inv: global rows: read-out done at a row's end"),
            (active | ~tokens, "inv: global rows: an idle engine has no token in flight"),
            (active | ~rd.phase | (st.rows_out == st.n_rows),
             "inv: global rows: an idle engine has sent its rows"),
        ]
        for k, stage in enumerate(stages):   # pass 2's last key: only once it is taken
            last = stage["valid"] & stage.get("pass2", 1) & stage["last_key"]
            checks.append((~last | st.kv_done,
                           f"inv: global rows: stage {k} holds pass 2's last key after its "
                           f"take"))
            # the run's final token (pass 2, last key, last row, last group) has nothing behind
            # it: the read-out starts with the pipeline empty
            final = last & (stage["r"] == st.n_rows - 1)
            if "last_g" in stage and k != rd.walk_at:
                final = final & stage["last_g"]
            if k:
                behind = Cat(earlier["valid"] for earlier in stages[:k]).any()
                checks.append((~final | ~behind,
                               f"inv: global rows: nothing behind the final token in stage "
                               f"{k}"))
        return checks


class GlobalRowEngines(wiring.Component):
    """``engines`` :class:`GlobalRowEngine` side by side, with the ports of one: global row
    ``r`` of a run is engine ``r mod engines``'s. The ``qg`` rows are dealt to the engines in
    turn, every ``kvg`` beat goes to all engines that have rows (taken when all of them are
    ready), and the ``og`` rows are collected from the engines in turn, so the streams and their
    order are those of one engine while a run takes about ``1/engines`` of the cycles
    (:func:`global_rows_cycles`). For BigBird, whose 2·b global rows attend every key.

    Parameters
    ----------
    fmt, head_dim, dim_lanes, max_seq_len, max_rows
        As :class:`GlobalRowEngine`'s (``max_rows``: of all engines together).
    engines : int
        A power of two, 1 … ``max_rows``.
    """

    def __init__(self, fmt: NumberFormat, head_dim: int, dim_lanes: int, max_seq_len: int,
                 max_rows: int, engines: int):
        check_int("engines", engines, 1)
        if engines & (engines - 1) or engines > max(max_rows, 1):
            raise ValueError(f"engines must be a power of two, at most max_rows ({max_rows}), "
                             f"not {engines}")
        self.engines = [GlobalRowEngine(fmt, head_dim, dim_lanes, max_seq_len,
                                        -(-max_rows // engines)) for _ in range(engines)]
        self.max_rows = max_rows
        super().__init__(global_rows_signature(fmt, head_dim, max_seq_len, max_rows))

    def elaborate(self, platform):
        m = Module()
        e_n = len(self.engines)
        shift = e_n.bit_length() - 1
        used = Signal(e_n)   # the engines with rows in this run
        qsel = Signal(range(max(e_n, 2)))
        osel = Signal(range(max(e_n, 2)))
        cycles = Signal(STAT_BITS)
        busy = 0
        for k, eng in enumerate(self.engines):
            m.submodules[f"engine{k}"] = eng
            rows_k = (self.rows + (e_n - 1 - k)) >> shift   # rows r < rows with r mod E = k
            m.d.comb += [eng.start.eq(self.start), eng.seq_len.eq(self.seq_len),
                         eng.rows.eq(rows_k)]
            with m.If(self.start & ~self.busy):
                m.d.sync += used[k].eq(rows_k.any())
            busy = busy | eng.busy
        m.d.comb += self.busy.eq(busy)
        # qg: dealt in turn
        qready = Signal()
        for k, eng in enumerate(self.engines):
            m.d.comb += [eng.qg.payload.eq(self.qg.payload),
                         eng.qg.valid.eq(self.qg.valid & (qsel == k))]
            with m.If(qsel == k):
                m.d.comb += qready.eq(eng.qg.ready)
        m.d.comb += self.qg.ready.eq(qready)
        with m.If(self.qg.valid & qready):
            m.d.sync += qsel.eq(Mux(qsel == e_n - 1, 0, qsel + 1))
        # kvg: to every engine with rows at once
        all_ready = Cat(eng.kvg.ready | ~used[k] for k, eng in enumerate(self.engines)).all()
        m.d.comb += self.kvg.ready.eq(self.busy & all_ready)
        for k, eng in enumerate(self.engines):
            m.d.comb += [eng.kvg.payload.eq(self.kvg.payload),
                         eng.kvg.valid.eq(self.kvg.valid & self.busy & all_ready & used[k])]
        # og: collected in turn
        for k, eng in enumerate(self.engines):
            m.d.comb += eng.og.ready.eq(self.og.ready & (osel == k))
            with m.If(osel == k):
                m.d.comb += [self.og.valid.eq(eng.og.valid), self.og.payload.eq(eng.og.payload)]
        with m.If(self.og.valid & self.og.ready):
            m.d.sync += osel.eq(Mux(osel == e_n - 1, 0, osel + 1))
        with m.If(self.start & ~self.busy):
            m.d.sync += [qsel.eq(0), osel.eq(0), cycles.eq(0)]
        with m.Elif(self.busy):
            m.d.sync += cycles.eq(cycles + 1)
        m.d.comb += self.cycles.eq(cycles)
        for name in GLOBAL_STAT_FIELDS:
            if name != "cycles":
                m.d.comb += getattr(self, name).eq(sum(getattr(eng, name)
                                                       for eng in self.engines))
        return m
