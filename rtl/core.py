"""SwatCore: the SWAT-style row-wise, input-stationary, fused window-attention core.

What it computes: one head of sliding-window attention (bidirectional or causal band, dilated
or not, with Longformer's global tokens; the pattern is chosen per run on the command, within
the maxima the core was generated for), bit-exact to
:func:`swatkit.golden.fixed_point_attention` (the contract in :mod:`swatkit.golden.numerics`).
Follows SWAT (Bai et al., DAC 2024): rows in order; K/V rows of the window stay in on-chip
buffers (input-stationary) and each enters exactly once; per row QK → softmax → SV fused, the
score row never leaves the core, normalisation deferred to one division per output element at
the end of the row.

Structure (docs/rtl.md has the diagram and the schedule)::

    kv ──► loader (a word per cycle) ──► K ring, V ring
           (key j: lane j mod KL, slot (j div KL) mod S)
    q ──► Q register ─┐
                      ▼
      QK engine: KL lanes × DL MACs; scores → score buffers (≥ 3 rows), running row max
                      ▼ (row max, row info FIFOs)
      SV engine: score → exp2 → p; p·V over KL lanes × DL; l = Σp; rotating accumulator
                      ▼ (result register: acc[d], l)
      normaliser: DL pipelined dividers ──► output row register ──► o

Throughput: ``ceil(W_i / KL) · d / DL`` cycles per row ``i`` in steady state (W_i keys in the
row); the QK engine of row i+1 overlaps the SV engine of row i. Latency of a row from its last
QK issue to its output: ``swatkit.sim.cycle_model`` (``qk_depth``, ``SV_DEPTH``) and docs/rtl.md.

Dilation D: the ring holds D residue classes (K/V row j in class j mod D at class-local index
j div D) and a row walks its class's region as an undilated row walks the ring. Global tokens:
their K/V rows come first on ``kv`` and stay in a global region that every row walks after its
band (a band key that is a global token is masked); global rows are computed by the
:class:`~swatkit.rtl.global_rows.GlobalRowEngine` on the ``qg``/``kvg``/``og`` streams, and a
global token's band row is dropped before ``o``. docs/rtl.md, "Run patterns".

Row-arrival contract: ``kv`` carries the run's global columns, then K/V rows 0…N-1 in order,
``q`` carries Q rows 0…N-1 in order, on independent streams. Row i starts when Q row i and K/V
rows up to i + D·after have arrived; K/V row j is accepted only when the ring slot it overwrites
is no longer needed (row j − D·(ring_rows − before) has finished). A producer that serialises
both streams must therefore keep K/V D·after rows ahead of Q (plus one row of slack).

The QK engine never stalls; the SV engine and the normaliser are stall-all pipelines whose
enable drops only when their result cannot move on, so output back-pressure loses nothing.
"""

from __future__ import annotations

from types import SimpleNamespace

from amaranth import Array, Cat, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, fifo, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from swatkit.golden import AttentionSpec, NumberFormat

from .config import CoreParams, HardwareConfig
from .global_rows import GLOBAL_STAT_FIELDS, GlobalRowEngine, GlobalRowEngines
from .units import (
    EXP_LATENCY,
    BankedMemory,
    divide_stages,
    divider_latency,
    exp2_stages,
    max_tree,
    max_tree_levels,
    ram_bank_words,
    registered_mul,
    sum_tree,
)

__all__ = ["STAT_FIELDS", "SwatCore", "command", "core_layouts", "core_signature"]

STAT_BITS = 48
STAT_FIELDS = ("cycles", "kv_rows", "q_rows", "rows_out", "qk_macs", "sv_macs", "exp_ops")


def _bits(limit: int) -> int:
    """Width of a field that holds 0 … limit (at least one bit)."""
    return max(1, int(limit).bit_length())


def core_layouts(p: CoreParams) -> dict:
    """The payload layouts of every port; the testbenches pack and unpack with these.

    The command carries the run's pattern: ``seq_len``, ``before``, ``after``, and, on a core
    generated for them, ``dilation`` (``max_dilation`` > 1) and ``global_count`` with the sorted
    ``global_tokens`` positions (``max_global_tokens`` > 0; entries past the count are ignored).
    """
    d = p.spec.head_dim
    row = data.ArrayLayout(signed(p.fmt.data_bits), d)
    if p.block_size:   # BigBird: the block size is the core's; a run chooses N and r
        cmd = {"seq_len": unsigned(p.index_bits)}
        if p.max_random_blocks:
            cmd["random_blocks"] = unsigned(_bits(p.max_random_blocks))
    else:
        cmd = {"seq_len": unsigned(p.index_bits), "before": unsigned(_bits(p.spec.before)),
               "after": unsigned(_bits(p.spec.after))}
    if p.max_dilation > 1:
        cmd["dilation"] = unsigned(_bits(p.max_dilation))
    if p.max_global_tokens and not p.block_size:
        cmd["global_count"] = unsigned(_bits(p.max_global_tokens))
        cmd["global_tokens"] = data.ArrayLayout(unsigned(p.index_bits), p.max_global_tokens)
    return {
        "cmd": data.StructLayout(cmd),
        "q": row,
        "kv": data.StructLayout({"k": row, "v": row}),
        "o": data.ArrayLayout(signed(p.fmt.out_bits), d),
        "stats": data.StructLayout({name: unsigned(STAT_BITS) for name in STAT_FIELDS}),
    }


def core_signature(p: CoreParams) -> wiring.Signature:
    """The ports of the core (:class:`SwatCore`'s members), for anything that stands in for it.
    A core generated for global tokens also has the global-row engine's streams ``qg``,
    ``kvg`` (in) and ``og`` (out); a block-sparse core with random blocks the random blocks'
    K/V stream ``kvr`` (in)."""
    lay = core_layouts(p)
    globals_ = {}
    if p.max_global_tokens:
        globals_ = {"qg": In(stream.Signature(lay["q"])), "kvg": In(stream.Signature(lay["kv"])),
                    "og": Out(stream.Signature(lay["o"]))}
    if p.max_random_blocks:
        globals_["kvr"] = In(stream.Signature(lay["kv"]))
    return wiring.Signature({
        "cmd": In(stream.Signature(lay["cmd"])),
        "q": In(stream.Signature(lay["q"])),
        "kv": In(stream.Signature(lay["kv"])),
        "o": Out(stream.Signature(lay["o"])),
        **globals_,
        "busy": Out(1),
        "error": Out(1),
        "stats": Out(lay["stats"]),
    })


def command(p: CoreParams, run: AttentionSpec | None = None, seq_len: int | None = None) -> dict:
    """The ``cmd`` payload (a dict for ``core_layouts(p)["cmd"].const``) that starts a run with
    the pattern ``run`` (an :class:`AttentionSpec`; default: the core's own spec), or only a
    different ``seq_len``. Not checked against the core's maxima: the core refuses a bad command
    itself (``error``); :meth:`CoreParams.check_run` checks one in software."""
    run = p.spec if run is None else run
    if p.block_size:
        fields = {"seq_len": run.seq_len if seq_len is None else seq_len}
        if p.max_random_blocks:
            fields["random_blocks"] = run.num_random_blocks
        return fields
    fields = {"seq_len": run.seq_len if seq_len is None else seq_len,
              "before": run.before, "after": run.after}
    if p.max_dilation > 1:
        fields["dilation"] = run.dilation
    if p.max_global_tokens:
        tokens = list(run.global_tokens)[:p.max_global_tokens]
        fields["global_count"] = len(run.global_tokens)
        fields["global_tokens"] = tokens + [0] * (p.max_global_tokens - len(tokens))
    return fields


def command_value(p: CoreParams, run: AttentionSpec | None = None,
                  seq_len: int | None = None) -> int:
    """:func:`command` as the integer of the ``cmd`` payload's bits."""
    const = core_layouts(p)["cmd"].const(command(p, run, seq_len))
    return const.as_value().value & ((1 << core_layouts(p)["cmd"].size) - 1)


def _wrap_inc(value, step, modulus):
    """``(value + step) mod modulus`` for ``0 <= value < modulus``, ``0 <= step <= modulus``."""
    if isinstance(step, int) and step == 1 and isinstance(modulus, int):
        # (an equality instead of an add, a compare and a subtract in carry chains: the walkers'
        # address step, a critical path of the ULX3S default, issue 15)
        return Mux(value == modulus - 1, 0, value + 1)
    nxt = value + step
    return Mux(nxt >= modulus, nxt - modulus, nxt)


class _RowCopier:
    """A K/V stream's rows copied into word-wide memories, one word (dim_lanes elements) per
    cycle, straight out of the stream's payload, which the producer holds until the transfer:
    there is no row-wide register in the core, and the transfer is the cycle of the row's last
    word. ``ready`` is then a register when a row has two words or more (G >= 2): the
    producer's row-wide payload enable is one LUT after two registers.

    ``start`` (the loader takes the beat: ``valid`` and room) copies word 0; words 1 … G − 1
    follow in the next cycles, and ``start`` is never asserted meanwhile (the loader's write
    stage, one cycle behind, holds its row). ``k`` and ``v`` hold each word the cycle after
    it is copied, which is when the loader writes it (as the row register did before, issue
    15). ``busy``: words 1 … G − 1 are being copied; ``index``: the word being copied.
    """

    def __init__(self, m: Module, name: str, port, start, g: int, word: int):
        self.k = Signal(word, name=f"{name}_wk")
        self.v = Signal(word, name=f"{name}_wv")
        self.busy = Signal(name=f"{name}_copy")
        self.index = Signal(range(max(g, 2)), name=f"{name}_copy_g")
        self.ready = Signal(name=f"{name}_copy_ready")
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
        with m.If(self.busy):
            with m.If(self.index == g - 1):
                m.d.sync += [self.busy.eq(0), self.index.eq(0)]
            with m.Else():
                m.d.sync += self.index.eq(self.index + 1)
        with m.Elif(start):
            m.d.sync += [self.busy.eq(1), self.index.eq(1)]
        # the transfer: the cycle that copies word G − 1
        m.d.sync += self.ready.eq(start if g == 2 else self.busy & (self.index == g - 2))


class _RowWalk:
    """Issue state of one engine walking a row: rounds of KL keys, G groups per key.

    Both engines walk rows the same way; this is the one definition of which lane holds which
    key of the row and where. A row is its band, then (on a core with global tokens) the run's
    global columns:

    * band: lane L holds the row's key ``lo + r·KL + off_L`` in round r (``off_L = (L − lo) mod
      KL``, class-local indices of the row's residue class), at K/V address ``region + slot·G +
      g``, wrapping inside the class's region of ``S·G`` words;
    * global columns: lane L holds global column ``r·KL + L`` at ``gbase + r·G + g``;
    * random blocks (a block-sparse core, rows of query blocks 1 … nb − 2): lane L holds the
      query block's random K/V row ``r·KL + L`` at ``rsel·random_rounds·G + r·G + g`` of the
      random memories (buffer ``rsel``, the block's parity).
    """

    def __init__(self, m: Module, p: CoreParams, name: str, globals_=None, rnd_rem=None):
        kl, g = p.hw.key_lanes, p.groups
        self.p = p
        self.busy = Signal(name=f"{name}_busy")
        self.g = Signal(range(max(g, 2)), name=f"{name}_g")
        self.rem = Signal(range(max(p.window, p.max_global_tokens, p.random_rows) + 1),
                          name=f"{name}_rem")  # last key offset − r·KL
        self.lane0 = Signal(range(max(kl, 2)), name=f"{name}_lane0")
        self.first_round = Signal(name=f"{name}_first_round")
        self.addr = [Signal(range(max(p.kv_depth, p.random_depth, 2)), name=f"{name}_addr{lane}")
                     for lane in range(kl)]
        self.s_addr = Signal(range(max(p.score_depth, 2)), name=f"{name}_saddr")
        self.lanes = Signal(kl, name=f"{name}_lanes")
        # the class region of the row's band (constant 0 on a core without dilation)
        self.classes = p.max_dilation > 1
        if self.classes:
            self.region = Signal(range(max(p.kv_depth, 2)), name=f"{name}_region")
            self.wrap_hi = Signal(range(p.kv_depth + 1), name=f"{name}_wrap_hi")
        # the global columns: count and segment flag (a core without them has neither)
        self.globals = globals_
        if globals_ is not None:
            self.in_glob = Signal(name=f"{name}_in_glob")
        # the random blocks: rnd_rem is the run's r·b − 1; row_rnd whether this row has them
        self.rnd_rem = rnd_rem
        self.in_rnd = Signal(name=f"{name}_in_rnd")   # (constant 0 without random blocks)
        if rnd_rem is not None:
            self.row_rnd = Signal(name=f"{name}_row_rnd")
            self.rsel = Signal(name=f"{name}_rsel")
        m.d.comb += self.lanes.eq(Cat(self.offset(lane) <= self.rem for lane in range(kl)))
        self.first_g = self.g == 0
        self.last_g = self.g == g - 1
        # the last round of a segment (rem < KL), kept as a register beside rem: it gates
        # the start of the next row, and so the Q stream's ready
        self.last_round = Signal(name=f"{name}_last_round")
        if globals_ is None:
            self.end_round = self.last_round
        else:  # the last round of the row: of its last segment
            last_seg = self.in_glob | ~globals_.any()
            if rnd_rem is not None:
                last_seg = self.in_rnd | (~self.row_rnd & last_seg)
            self.end_round = self.last_round & last_seg
        self.last = self.busy & self.last_g & self.end_round
        self.active = sum(self.lanes[lane] for lane in range(kl))  # keys issued this cycle

    def offset(self, lane: int):
        """``(lane − lane0) mod KL``: which key of the round this lane holds."""
        kl = self.p.hw.key_lanes
        if lane == kl - 1:  # lane0 <= KL − 1 always
            return lane - self.lane0
        return Mux(lane >= self.lane0, lane - self.lane0, lane + kl - self.lane0)

    def start(self, rem, lane0, lo_base, sbuf, region=None, rnd=None, rsel=None, later=None):
        """Statements that start walking a row (``lo_base`` inside the class ``region``; with
        random blocks when ``rnd``, from buffer ``rsel``); ``later``: the slot after
        ``lo_base`` (:meth:`later`), if the caller has it."""
        sg = self.p.region_words
        # sbuf · rounds from a table of constants (a multiply here became a MULT18X18D on the
        # ECP5, on the critical path of the SV start), padded to every value of sbuf's bits
        bases = [k * self.p.rounds for k in range(self.p.score_buffers)]
        bases += [bases[-1]] * (2 ** len(sbuf) - len(bases))
        stmts = [
            self.busy.eq(1), self.g.eq(0), self.rem.eq(rem), self.lane0.eq(lane0),
            self.last_round.eq(rem < self.p.hw.key_lanes),
            self.first_round.eq(1), self.s_addr.eq(Array(bases)[sbuf]),
        ]
        # lanes below the row's first lane hold their first key one slot later
        if later is None:
            later = self.later(lo_base)
        for lane, a in enumerate(self.addr):
            base = Mux(lane < lane0, later, lo_base) if lane < self.p.hw.key_lanes - 1 \
                else lo_base
            stmts.append(a.eq(region + base) if self.classes else a.eq(base))
        if self.classes:
            stmts += [self.region.eq(region), self.wrap_hi.eq(region + sg)]
        if self.globals is not None:
            stmts.append(self.in_glob.eq(0))
        if self.rnd_rem is not None:
            stmts += [self.in_rnd.eq(0), self.row_rnd.eq(rnd), self.rsel.eq(rsel)]
        return stmts

    def later(self, lo_base):
        """The address one slot after ``lo_base``: the first key of the lanes below lane0."""
        return _wrap_inc(lo_base, self.p.groups, self.p.region_words)

    def _next_addr(self, a):
        sg = self.p.region_words
        if self.classes:
            nxt = a + 1
            band = Mux(nxt == self.wrap_hi, self.region, nxt)
        else:
            band = _wrap_inc(a, 1, sg)
        if self.globals is None:
            return band
        return Mux(self.in_glob | self.in_rnd, a + 1, band)

    def issue(self, m: Module, en, macs):
        """Issue one token per cycle while busy and ``en``; count its MACs into ``macs``."""
        kl = self.p.hw.key_lanes
        with m.If(en & self.busy):
            m.d.sync += [a.eq(self._next_addr(a)) for a in self.addr]
            m.d.sync += [self.g.eq(Mux(self.last_g, 0, self.g + 1)),
                         macs.eq(macs + self.active * self.p.hw.dim_lanes)]
            with m.If(self.last_g):  # the end of a key: next round
                m.d.sync += [self.rem.eq(self.rem - kl), self.last_round.eq(self.rem < 2 * kl),
                             self.s_addr.eq(self.s_addr + 1), self.first_round.eq(0)]
                if self.globals is not None:
                    # the band's last round: on to the global columns
                    in_band = ~self.in_glob & ~self.in_rnd
                    with m.If(self.last_round & in_band & self.globals.any()):
                        gbase = self.p.max_dilation * self.p.region_words
                        m.d.sync += [self.in_glob.eq(1), self.rem.eq(self.globals - 1),
                                     self.last_round.eq(self.globals - 1 < kl),
                                     self.lane0.eq(0), *[a.eq(gbase) for a in self.addr]]
                    if self.rnd_rem is not None:
                        # the last round of the band or the global columns: on to the random
                        # blocks, if the row has them
                        with m.Elif(self.last_round & ~self.in_rnd & self.row_rnd):
                            rbase = Mux(self.rsel, self.p.random_rounds * self.p.groups, 0)
                            m.d.sync += [self.in_glob.eq(0), self.in_rnd.eq(1),
                                         self.rem.eq(self.rnd_rem),
                                         self.last_round.eq(self.rnd_rem < kl), self.lane0.eq(0),
                                         *[a.eq(rbase) for a in self.addr]]
            with m.If(self.last):
                m.d.sync += self.busy.eq(0)


class SwatCore(wiring.Component):
    """Row-wise, input-stationary, fused sliding-window attention core.

    Parameters
    ----------
    spec : AttentionSpec
        The largest window a run may use (``before``, ``after``) and the default pattern
        (``dilation``, ``global_tokens``); ``seq_len`` is only a default — N is given at run
        time on ``cmd``, up to ``hw.max_seq_len``.
    fmt : NumberFormat
    hw : HardwareConfig

    Members
    -------
    cmd : In(stream)  starts a run of N rows with its pattern (``core_layouts``: ``seq_len``,
        ``before``, ``after``, and on cores generated for them ``dilation``, ``global_count``,
        ``global_tokens``); accepted only when idle; a value outside the generated maxima sets
        ``error`` and starts nothing (:meth:`CoreParams.check_run` is the same rule).
    q : In(stream)    one Q row per beat (``head_dim`` signed ``data_bits`` elements).
    kv : In(stream)   one K row and one V row per beat: the run's global columns, then rows
        0 … N−1.
    o : Out(stream)   one O row per beat (signed ``out_bits`` elements): the rows that are not
        global tokens.
    qg, kvg, og       (cores with ``max_global_tokens`` > 0) the global-row engine's streams
        (:class:`~swatkit.rtl.global_rows.GlobalRowEngine`): q_g of each global token; k_g, v_g
        of rows 0 … N−1, twice; the global rows.
    busy : Out(1)     a run is in progress.
    error : Out(1)    the last command was rejected.
    stats : Out(layout)  performance counters of the current/last run (``STAT_FIELDS``).

    Raises
    ------
    ValueError
        When the configuration cannot implement the spec (see :class:`CoreParams`).
    """

    def __init__(self, spec: AttentionSpec, fmt: NumberFormat | None = None,
                 hw: HardwareConfig | None = None):
        self.params = CoreParams(spec, fmt or NumberFormat(), hw or HardwareConfig())
        super().__init__(core_signature(self.params))
        # not a port: 1 in a cycle that reads a K/V word where it is written (the promise of
        # BankedMemory's no_rw_check; the simulated runs check it, synthesis removes it)
        self.rw_collision = Signal()

    def elaborate(self, platform):
        m = Module()
        p = self.params
        spec, fmt, hw, w = p.spec, p.fmt, p.hw, p.widths
        kl, dl, g, d = hw.key_lanes, hw.dim_lanes, p.groups, spec.head_dim
        b, sg = fmt.data_bits, p.ring_slots * p.groups
        before, after = spec.before, spec.after
        word = dl * b  # one K/V memory word: dim_lanes elements

        running = Signal()
        n = Signal(p.index_bits)
        kv_acc = Signal(p.index_bits)   # K/V band rows accepted
        kv_wr = Signal(p.index_bits)    # K/V band rows written (readable)
        q_cnt = Signal(p.index_bits)    # Q rows accepted
        qk_row = Signal(p.index_bits)   # rows whose QK has started
        sv_done = Signal(p.index_bits)  # rows whose SV has finished
        rows_out = Signal(p.index_bits)   # rows sent on o
        rows_done = Signal(p.index_bits)  # rows sent on o or dropped (global rows)
        start_run = Signal()
        stats = {name: Signal(STAT_BITS, name=f"stat_{name}") for name in STAT_FIELDS}
        dmax, gmax, ring = p.max_dilation, p.max_global_tokens, p.ring_rows
        # a block-sparse (BigBird) core: block size, most random blocks
        blk, rmax = p.block_size, p.max_random_blocks

        # -- command: the run's length and pattern ---------------------------------------------
        cmd = self.cmd.payload
        if not blk:
            after_r = Signal.like(cmd.after)     # the run's pattern (before: lo_wait below)
        dil = Signal.like(cmd.dilation) if dmax > 1 else 1
        # dilation · after: the band's reach after the row (up to max_dilation · after, which can
        # exceed twice max_seq_len)
        dafter = Signal(range(max(dmax * after, 1) + 1))
        gcount = Signal(range(gmax + 1)) if gmax else None
        if blk:
            # the global tokens are the first and last blocks (all rows when N <= 2b); n_mb is
            # N − b, the first token of the last block
            cmd_gcount = Signal(range(gmax + 1))
            m.d.comb += cmd_gcount.eq(Mux(cmd.seq_len > 2 * blk, 2 * blk, cmd.seq_len))
            n_mb = Signal(p.index_bits)
            rcount = Signal(range(rmax + 1)) if rmax else None   # the run's random blocks
            rnd_last = Signal(range(max(p.random_rows, 1)))      # r·b − 1
        elif gmax:
            cmd_gcount = cmd.global_count

        def over(value, limit, width):
            """``value > limit`` (no compare when the field holds nothing larger)."""
            return (value > limit) if limit < 2 ** width - 1 else 0

        m.d.comb += [self.cmd.ready.eq(~running), self.busy.eq(running)]
        with m.If(self.cmd.valid & ~running):
            seq_len = cmd.seq_len
            bad = [~seq_len.any(), over(seq_len, hw.max_seq_len, p.index_bits)]
            if blk:
                lb = blk.bit_length() - 1   # N must be a multiple of the block size
                if lb:
                    bad.append(seq_len[:lb].any())
                if rmax:   # r random blocks exist for every query block: N >= (r + 5)·b
                    r_cmd = cmd.random_blocks
                    bad += [over(r_cmd, rmax, len(r_cmd)),
                            r_cmd.any() & (seq_len > 2 * blk) & (seq_len < (r_cmd + 5) * blk)]
            else:
                bad += [over(cmd.before, before, len(cmd.before)),
                        over(cmd.after, after, len(cmd.after))]
            if dmax > 1:
                bad += [~cmd.dilation.any(), over(cmd.dilation, dmax, len(cmd.dilation))]
            if gmax and not blk:
                count, pos = cmd.global_count, cmd.global_tokens
                bad.append(over(count, gmax, len(count)))
                for k in range(gmax):   # the positions in use: in the sequence, increasing
                    used = count > k
                    bad.append(used & (pos[k] >= seq_len))
                    if k:
                        bad.append(used & (pos[k] <= pos[k - 1]))
            with m.If(Cat(*bad).any()):
                m.d.sync += self.error.eq(1)
            with m.Else():
                m.d.comb += start_run.eq(1)
                d_r = cmd.dilation if dmax > 1 else 1
                m.d.sync += [self.error.eq(0), running.eq(1), n.eq(seq_len)]
                if blk:
                    m.d.sync += n_mb.eq(seq_len - blk)
                    if rmax:
                        m.d.sync += [rcount.eq(cmd.random_blocks),
                                     rnd_last.eq(cmd.random_blocks * blk - 1)]
                else:
                    m.d.sync += [after_r.eq(cmd.after), dafter.eq(d_r * cmd.after)]
                if dmax > 1:
                    m.d.sync += dil.eq(cmd.dilation)
                if gmax:
                    m.d.sync += gcount.eq(cmd_gcount)
        band_done = rows_done == n
        if gmax:
            # global rows: the global-row engine (its own streams), started with the run
            if p.global_engines > 1:   # (BigBird's 2·b global rows)
                glob = GlobalRowEngines(fmt, d, dl, hw.max_seq_len, gmax, p.global_engines)
            else:
                glob = GlobalRowEngine(fmt, d, dl, hw.max_seq_len, gmax)
            m.submodules.glob = glob
            m.d.comb += [glob.start.eq(start_run), glob.seq_len.eq(cmd.seq_len),
                         glob.rows.eq(cmd_gcount)]
            wiring.connect(m, glob.qg, wiring.flipped(self.qg))
            wiring.connect(m, glob.kvg, wiring.flipped(self.kvg))
            wiring.connect(m, wiring.flipped(self.og), glob.og)
            band_done = band_done & ~glob.busy
        with m.If(running & band_done):
            m.d.sync += running.eq(0)
        with m.If(running):
            m.d.sync += stats["cycles"].eq(stats["cycles"] + 1)
        # (the MACs and exponentials of the global-row engine count with the band's; every
        # command that starts a run clears the engine's counters, also one without global rows)
        for name, sig in stats.items():
            if gmax and name in GLOBAL_STAT_FIELDS and name != "cycles":
                sig = sig + getattr(glob, name)  # (cleared by every start, also with no rows)
            m.d.comb += getattr(self.stats, name).eq(sig)

        # -- K/V ring: one K and one V memory per lane, words of dim_lanes elements -----------
        # (max_dilation class regions of S·G words, then the resident global columns)
        depth = p.kv_depth
        def lane_memories(name, shape, words):
            """One memory per lane (``<name><lane>``), and a write port of each."""
            mems = [memory.Memory(shape=shape, depth=words, init=[]) for _ in range(kl)]
            for lane, mem in enumerate(mems):
                m.submodules[f"{name}{lane}"] = mem
            return mems, [mem.write_port() for mem in mems]

        # (K and V words: banks of one block RAM's depth, see BankedMemory)
        bank = ram_bank_words(platform)
        def banked_lane_memories(name, words):
            """One banked memory of K or V words per lane, and a write port of each."""
            mems = [BankedMemory(m, f"{name}{lane}", unsigned(word), words, bank)
                    for lane in range(kl)]
            return mems, [mem.write_port() for mem in mems]

        kmem, kwr = banked_lane_memories("kmem", depth)
        vmem, vwr = banked_lane_memories("vmem", depth)
        banked = [*kmem, *vmem]
        # one bit per ring word: the band key is a global token (attended as a global column)
        if gmax:
            fmem, fwr = lane_memories("fmem", 1, depth)

        # loader: the run's global columns first (into the global region), then the band rows,
        # each taken when its slot is free and written in G cycles
        kv_hold = Signal()
        kv_g = Signal(range(max(g, 2)))
        kv_lane = Signal(range(max(kl, 2)))
        kv_base = Signal(range(max(depth, 2)))   # the row's first word inside its region
        kv_cls = Signal(range(max(dmax, 2)))     # residue class of the next band row written
        kv_region = Signal(range(max(depth, 2)))  # kv_cls · S·G (the global region: preamble)
        kv_a = Signal(p.index_bits)              # class-local index of the next band row written
        # The take condition is kept in registers so that kv.ready is a short function of
        # registers (it drives the producer and the loader's enables; iCEBreaker timing, issue
        # 15): "rows left" kv_more = (kv_acc < n), and "a ring slot is free", which is
        # kv_acc < max(dilation·ring rows, sv_done + dilation·(ring rows − before)), as the
        # credit (that bound − kv_acc). The bound starts at dilation·ring rows and grows by one
        # with every row that finishes SV once dilation·before rows have (kv_wait counts those).
        kv_more = Signal()
        kv_credit = Signal(range(dmax * ring + 1))
        kv_wait = Signal(range(max(dmax * p.ring_before, 1) + 1))   # (one bit at least)
        kv_band = Signal()   # a band row is accepted (kv_acc counts up)
        sv_fin = Signal()    # a row finishes SV (sv_done counts up)
        slot_free = Signal()   # kv_credit > 0, kept as a register beside the credit
        kv_last = kv_hold & (kv_g == g - 1)
        kv_take = Signal()
        if gmax:
            pre_acc = Signal(range(gmax + 1))    # global columns accepted
            pre_more = pre_acc < gcount
            kv_pre = Signal()                    # the row being written is a global column
            kv_flag = Signal()                   # the band row being written is a global token
            pre_wr = Signal(range(gmax + 1))     # global columns written
            if not blk:   # the global tokens still ahead of the loader
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
        with m.If(start_run):   # (seq_len >= 1)
            d_r = cmd.dilation if dmax > 1 else 1
            m.d.sync += [kv_more.eq(1), kv_credit.eq(d_r * ring), slot_free.eq(1),
                         kv_wait.eq(p.ring_before if blk else d_r * cmd.before)]
        kv_start = self.kv.valid & kv_take
        kv_copy = _RowCopier(m, "kv", self.kv, kv_start, g, word)
        kv_addr = kv_region + kv_base + kv_g
        for lane in range(kl):
            m.d.comb += [
                kwr[lane].addr.eq(kv_addr), kwr[lane].data.eq(kv_copy.k),
                kwr[lane].en.eq(kv_hold & (kv_lane == lane)),
                vwr[lane].addr.eq(kv_addr), vwr[lane].data.eq(kv_copy.v),
                vwr[lane].en.eq(kv_hold & (kv_lane == lane)),
            ]
            if gmax:
                m.d.comb += [fwr[lane].addr.eq(kv_addr), fwr[lane].data.eq(kv_flag),
                             fwr[lane].en.eq(kv_hold & ~kv_pre & (kv_lane == lane))]
        def next_lane(base_step):
            """The next row's lane, and its slot once every lane has one."""
            with m.If(kv_lane == kl - 1):
                m.d.sync += [kv_lane.eq(0), kv_base.eq(base_step)]
            with m.Else():
                m.d.sync += kv_lane.eq(kv_lane + 1)

        def band_written():
            m.d.sync += [kv_wr.eq(kv_wr + 1), stats["kv_rows"].eq(stats["kv_rows"] + 1)]
            if dmax > 1:  # rows of one class-local index fill the classes in turn
                with m.If(kv_cls == dil - 1):
                    m.d.sync += [kv_cls.eq(0), kv_region.eq(0), kv_a.eq(kv_a + 1)]
                    next_lane(_wrap_inc(kv_base, g, sg))
                with m.Else():
                    m.d.sync += [kv_cls.eq(kv_cls + 1), kv_region.eq(kv_region + sg)]
            else:
                m.d.sync += kv_a.eq(kv_a + 1)
                next_lane(_wrap_inc(kv_base, g, sg))

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
                        hit = (kv_acc < blk) | (kv_acc >= n_mb)
                    else:
                        hit = lrem.any() & (lpos[0] == kv_acc)
                        with m.If(hit):
                            m.d.sync += [lrem.eq(lrem - 1),
                                         *[lpos[k].eq(lpos[k + 1]) for k in range(gmax - 1)]]
                    m.d.sync += [kv_acc.eq(kv_acc + 1), kv_pre.eq(0), kv_flag.eq(hit)]
            else:
                m.d.sync += kv_acc.eq(kv_acc + 1)
        if gmax:
            with m.If(start_run):
                gb = dmax * sg   # the global region
                m.d.sync += [pre_acc.eq(0), pre_wr.eq(0),
                             kv_region.eq(Mux(cmd_gcount.any(), gb, 0))]
                if not blk:
                    m.d.sync += [lrem.eq(cmd.global_count),
                                 *[lpos[k].eq(cmd.global_tokens[k]) for k in range(gmax)]]
            pre_done = pre_wr == gcount

        # random-block loader (a block-sparse core with random blocks): the K/V rows of query
        # block B's r random blocks (b rows each, in the table's order) come on kvr for B = 1 …
        # nb − 2, into random buffer B mod 2 of their own memories (row t: lane t mod KL, word
        # (t div KL)·G + g). Block B waits until block B − 2, which used that buffer, has
        # finished (SV of rows up to (B − 1)·b − 1); a row of block B starts QK once its block's
        # rows are all written (r_wr_blk >= B).
        if rmax:
            rwords = p.random_rounds * g
            rkmem, rkwr = banked_lane_memories("rkmem", p.random_depth)
            rvmem, rvwr = banked_lane_memories("rvmem", p.random_depth)
            banked += [*rkmem, *rvmem]
            r_hold = Signal()
            r_g = Signal(range(max(g, 2)))
            r_lane = Signal(range(max(kl, 2)))
            r_base = Signal(range(max(p.random_depth, 2)))
            r_buf = Signal()                           # the buffer being written
            r_row = Signal(range(max(p.random_rows, 2)))   # row of the block being taken
            r_wlast = Signal()                         # the row being written ends its block
            r_bend = Signal(p.index_bits + 2)          # (B + 2)·b of the block being taken
            r_wr_blk = Signal(p.index_bits)            # blocks whose random rows are written
            r_last = r_hold & (r_g == g - 1)
            r_free = (r_bend <= 4 * blk) | (sv_done + 3 * blk >= r_bend)
            r_take = Signal()
            m.d.comb += [r_take.eq(running & rcount.any() & (r_bend <= n) & r_free
                                   & (~r_hold | r_last))]
            r_start = self.kvr.valid & r_take
            r_copy = _RowCopier(m, "kvr", self.kvr, r_start, g, word)
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
                m.d.sync += [r_hold.eq(1), r_g.eq(0), r_wlast.eq(r_row == rnd_last)]
                with m.If(r_row == rnd_last):
                    m.d.sync += [r_row.eq(0), r_bend.eq(r_bend + blk)]
                with m.Else():
                    m.d.sync += r_row.eq(r_row + 1)
            with m.If(start_run):   # block 1 first, into buffer 1
                m.d.sync += [r_hold.eq(0), r_g.eq(0), r_lane.eq(0), r_base.eq(rwords),
                             r_buf.eq(1), r_row.eq(0), r_bend.eq(3 * blk), r_wr_blk.eq(0)]

        # -- Q registers -----------------------------------------------------------------------
        # the next row's Q (q_next) and one more behind it (q_skid): the Q stream's ready is a
        # function of registers only, not of the QK start (a long path into the Q source)
        q_full = Signal()
        q_next = Signal(d * b)
        q_skid_full = Signal()
        q_skid = Signal(d * b)
        q_more = Signal()   # q_cnt < n
        qk_start = Signal()
        q_take = self.q.valid & self.q.ready
        m.d.comb += self.q.ready.eq(running & q_more & ~q_skid_full)
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
            m.d.sync += [q_cnt.eq(q_cnt + 1), q_more.eq(q_cnt + 1 < n),
                         stats["q_rows"].eq(stats["q_rows"] + 1)]

        # -- row bookkeeping shared by the QK start --------------------------------------------
        # The next row to start, i = qk_row: its residue class (and the class's K/V region) and
        # its class-local index a; its band's first key lo (class-local) and that key's lane and
        # slot; whether its band reaches past the sequence (near), and hi1, the K/V rows it
        # waits for (i + dilation·after + 1, at most N). All kept in registers and worked out
        # for the next row when a row starts, so that the QK start is a plain compare.
        lo_lane = Signal(range(max(kl, 2)))
        lo_base = Signal(range(max(depth, 2)))
        sbuf = Signal(range(p.score_buffers))
        hi1 = Signal(p.index_bits + 1)
        near = Signal()
        lo = Signal(p.index_bits)
        qk_a = Signal(p.index_bits)
        qk_cls = Signal(range(max(dmax, 2)))
        qk_region = Signal(range(max(depth, 2)))
        # lo = max(a − before, 0) moves on with a once a >= before: lo_wait = max(before − a, 0)
        # counts the indices until then, so that neither lo nor the lo_lane/lo_base step needs a
        # compare or subtract against the run's before (a before register in those made Yosys
        # 0.70 abort in ABC9 on the ULX3S default; docs/fpga.md)
        lo_wait = Signal(range(max(before, blk, 1) + 1))   # (one bit at least)
        lo_step = ~lo_wait.any()   # a >= before
        wrap = (qk_cls == dil - 1) if dmax > 1 else 1   # the next row has the next index
        if blk:
            # Block-sparse: row i of block B walks keys max((B − 1)·b, 0) … min((B + 2)·b, N)
            # − 1. The pointer lo above runs as a band with before = b, so that at a block's
            # first row it is (B − 1)·b; the block's rows keep that (blo*). hi1 is min((B +
            # 2)·b, N), from bend = (B + 2)·b; row_rnd says the next row has random blocks
            # (1 <= B <= nb − 2).
            blk_t = Signal(range(max(blk, 2)))   # the next row's place in its block
            qk_blk = Signal(p.index_bits)        # its block
            bend = Signal(p.index_bits + 2)
            row_rnd = Signal()
            blo = Signal.like(lo)
            blo_lane = Signal.like(lo_lane)
            blo_base = Signal.like(lo_base)
            blk_first = blk_t == 0
            row_lo = Mux(blk_first, lo, blo)
            row_lo_lane = Mux(blk_first, lo_lane, blo_lane)
            row_lo_base = Mux(blk_first, lo_base, blo_base)
        else:
            row_lo, row_lo_lane, row_lo_base = lo, lo_lane, lo_base
        with m.If(start_run):
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
        with m.Elif(qk_start):
            if blk:
                with m.If(blk_first):
                    m.d.sync += [blo.eq(lo), blo_lane.eq(lo_lane), blo_base.eq(lo_base)]
                with m.If(blk_t == blk - 1):   # the next row starts the next block
                    nxt = bend + blk
                    m.d.sync += [blk_t.eq(0), qk_blk.eq(qk_blk + 1), bend.eq(nxt),
                                 hi1.eq(Mux(nxt > n, n, nxt))]
                    if rmax:
                        m.d.sync += row_rnd.eq(rcount.any() & (nxt <= n))
                with m.Else():
                    m.d.sync += blk_t.eq(blk_t + 1)
            else:
                reach = qk_row + dafter + 2
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
        last_a = (kv_a - 1 + (qk_cls < kv_cls)) if dmax > 1 else kv_a - 1
        rem0 = Signal(range(p.window + 1))   # offset of the row's last key from its first
        if blk:
            m.d.comb += rem0.eq(hi1 - 1 - row_lo)
        else:
            m.d.comb += rem0.eq(Mux(near, last_a, qk_a + after_r) - lo)
        # what the SV engine needs to walk the row again: first lane/address, buffer, keys
        # (and the slot after base, computed beside the QK start rather than after the FIFO)
        info_fields = {"lane0": lo_lane.shape(), "base": lo_base.shape(), "sbuf": sbuf.shape(),
                       "rem": rem0.shape(), "later": lo_base.shape()}
        if dmax > 1:
            info_fields["region"] = qk_region.shape()
        if rmax:   # the row has random blocks, in buffer rsel
            info_fields.update(rnd=unsigned(1), rsel=unsigned(1))
        row_info = data.StructLayout(info_fields)
        info = fifo.SyncFIFO(width=row_info.size, depth=p.score_buffers)
        rowmax = fifo.SyncFIFO(width=w.score, depth=p.score_buffers)
        m.submodules.info = info
        m.submodules.rowmax = rowmax

        # -- QK engine (never stalls) ----------------------------------------------------------
        qk = _RowWalk(m, p, "qk", gcount, rnd_last if rmax else None)
        q_cur = Signal(d * b)
        # registered forms of "rows left to start" (qk_row < n) and "a score buffer is free"
        # (qk_row − sv_done < score_buffers), so that qk_start is a short function of registers
        qk_more = Signal()
        sb_free = Signal(range(p.score_buffers + 1))
        # (sv_fin: a row finishes SV, declared with the K/V loader)
        with m.If(qk_start):
            m.d.sync += qk_more.eq(qk_row + 1 < n)
        with m.If(qk_start & ~sv_fin):
            m.d.sync += sb_free.eq(sb_free - 1)
        with m.Elif(sv_fin & ~qk_start):
            m.d.sync += sb_free.eq(sb_free + 1)
        with m.If(start_run):
            m.d.sync += [qk_more.eq(1), sb_free.eq(p.score_buffers)]
        # (a row with random blocks also waits for its block's random rows)
        rnd_ok = (~row_rnd | (r_wr_blk >= qk_blk)) if rmax else 1
        m.d.comb += qk_start.eq(running & qk_more & q_full & (kv_wr >= hi1) & sb_free.any()
                                & (~qk.busy | qk.last) & (pre_done if gmax else 1) & rnd_ok)
        qk.issue(m, 1, stats["qk_macs"])
        with m.If(qk.busy):
            m.d.sync += q_cur.eq(q_cur.rotate_right(word))
        with m.If(qk_start):
            rsel = qk_blk[0] if rmax else None
            m.d.sync += [*qk.start(rem0, row_lo_lane, row_lo_base, sbuf, qk_region,
                                   row_rnd if rmax else None, rsel), q_cur.eq(q_next),
                         qk_row.eq(qk_row + 1),
                         sbuf.eq(Mux(sbuf == p.score_buffers - 1, 0, sbuf + 1))]
            w_row = data.View(row_info, info.w_data)
            m.d.comb += [info.w_en.eq(1), w_row.lane0.eq(row_lo_lane),
                         w_row.base.eq(row_lo_base), w_row.sbuf.eq(sbuf), w_row.rem.eq(rem0),
                         w_row.later.eq(qk.later(row_lo_base))]
            if dmax > 1:
                m.d.comb += w_row.region.eq(qk_region)
            if rmax:
                m.d.comb += [w_row.rnd.eq(row_rnd), w_row.rsel.eq(rsel)]
            with m.If(wrap & lo_step):   # the next index's band starts one key on
                with m.If(lo_lane == kl - 1):
                    m.d.sync += [lo_lane.eq(0), lo_base.eq(_wrap_inc(lo_base, g, sg))]
                with m.Else():
                    m.d.sync += lo_lane.eq(lo_lane + 1)

        if gmax:  # a band key that is a global token is attended as a global column instead
            qk_flag = [mem.read_port() for mem in fmem]
            for lane in range(kl):
                m.d.comb += qk_flag[lane].addr.eq(qk.addr[lane])

        def stage(name, en=1, **fields):
            """A pipeline register stage: each field registered under the enable ``en``."""
            regs = {key: Signal(value.shape(), name=f"{name}_{key}")
                    for key, value in fields.items()}
            with m.If(en):
                m.d.sync += [regs[key].eq(value) for key, value in fields.items()]
            return SimpleNamespace(**regs)

        s1 = stage("qk1", valid=qk.busy, lanes=qk.lanes, first_g=qk.first_g, last_g=qk.last_g,
                   first_round=qk.first_round, last_round=qk.end_round, s_addr=qk.s_addr,
                   qg=q_cur[:word], rnd=qk.in_rnd)
        # the K words and the Q group are registered in the fabric (a block RAM's output has a
        # long route to a multiplier block; the K words once per bank), then again as the
        # multipliers' operands: on an ECP5 those and the product's registers are the DSP
        # block's own
        # (the flags are the ring's: a random key is never masked)
        s1_lanes = ((s1.lanes & ~(Cat(f.data for f in qk_flag) & (~s1.rnd).replicate(kl)))
                    if gmax else s1.lanes)
        s1k = stage("qk1k", valid=s1.valid, lanes=s1_lanes, first_g=s1.first_g,
                    last_g=s1.last_g, first_round=s1.first_round, last_round=s1.last_round,
                    s_addr=s1.s_addr, qg=s1.qg, rnd=s1.rnd)
        # (a lane's word is used when the walker issues and the lane holds a key)
        k_data = Cat(kmem[lane].read_registered(qk.addr[lane], 1, 1, f"qk_k{lane}",
                                                qk.busy & qk.lanes[lane] & ~qk.in_rnd)
                     for lane in range(kl))
        if rmax:   # a random key's word comes from the random memories
            k_data = Mux(s1k.rnd, Cat(rkmem[lane].read_registered(
                qk.addr[lane], 1, 1, f"qk_rk{lane}", qk.busy & qk.lanes[lane] & qk.in_rnd)
                for lane in range(kl)), k_data)
        s1r = stage("qk1r", valid=s1k.valid, lanes=s1k.lanes, first_g=s1k.first_g,
                    last_g=s1k.last_g, first_round=s1k.first_round, last_round=s1k.last_round,
                    s_addr=s1k.s_addr)
        qg = data.View(data.ArrayLayout(signed(b), dl), s1k.qg)
        kw = [data.View(data.ArrayLayout(signed(b), dl), k_data[lane * word:(lane + 1) * word])
              for lane in range(kl)]
        s2 = stage("qk2", valid=s1r.valid, lanes=s1r.lanes, first_g=s1r.first_g,
                   last_g=s1r.last_g, first_round=s1r.first_round, last_round=s1r.last_round,
                   s_addr=s1r.s_addr)
        prods = [[Signal(signed(2 * b), name=f"qk_prod{lane}_{u}") for u in range(dl)]
                 for lane in range(kl)]
        for lane in range(kl):
            for u in range(dl):
                registered_mul(m, platform, qg[u], kw[lane][u], prods[lane][u],
                               name=f"qk_mul{lane}_{u}")
        s3 = stage("qk3", valid=s2.valid, lanes=s2.lanes, first_g=s2.first_g, last_g=s2.last_g,
                   first_round=s2.first_round, last_round=s2.last_round, s_addr=s2.s_addr)
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
        s4 = stage("qk4", valid=s3.valid & s3.last_g, lanes=s3.lanes,
                   first_round=s3.first_round, last_round=s3.last_round, s_addr=s3.s_addr)
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
        for level in range(max_tree_levels(kl)):
            s5 = stage(f"qk5_{level}", valid=s5.valid, first_round=s5.first_round,
                       last_round=s5.last_round)
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

        # -- SV engine (stall-all under sv_en) -----------------------------------------------
        sv_en = Signal()
        sv = _RowWalk(m, p, "sv", gcount, rnd_last if rmax else None)
        sv_m = Signal(signed(w.score))
        # m − d_sat: a score below it saturates the exp (D = m − S > d_sat), compared beside the
        # subtract instead of after it
        d_sat = fmt.softmax_constant(d).d_sat
        sv_m_lo = Signal(signed(max(w.score, d_sat.bit_length()) + 2))
        sv_start = Signal()
        i_row = data.View(row_info, info.r_data)
        m.d.comb += sv_start.eq(sv_en & rowmax.r_rdy & (~sv.busy | sv.last))
        m.d.comb += [rowmax.r_en.eq(sv_start), info.r_en.eq(sv_start)]
        sv.issue(m, sv_en, stats["sv_macs"])
        with m.If(sv_en & sv.busy & sv.first_g):
            m.d.sync += stats["exp_ops"].eq(stats["exp_ops"] + sv.active)
        with m.If(sv_start):
            m.d.sync += [*sv.start(i_row.rem, i_row.lane0, i_row.base, i_row.sbuf,
                                   i_row.region if dmax > 1 else None,
                                   i_row.rnd if rmax else None, i_row.rsel if rmax else None,
                                   later=i_row.later),
                         sv_m.eq(rowmax.r_data), sv_m_lo.eq(rowmax.r_data.as_signed() - d_sat)]

        srd = [mem.read_port() for mem in smem]
        for lane in range(kl):
            m.d.comb += [srd[lane].addr.eq(sv.s_addr), srd[lane].en.eq(sv_en)]

        if gmax:  # the band keys that are global tokens, read beside their scores
            sv_flag = [mem.read_port() for mem in fmem]
            for lane in range(kl):
                m.d.comb += [sv_flag[lane].addr.eq(sv.addr[lane]), sv_flag[lane].en.eq(sv_en)]
        addr_bits = Cat(*sv.addr)
        t = stage("sv1", sv_en, valid=sv.busy, lanes=sv.lanes, first_g=sv.first_g,
                     last_g=sv.last_g, first_round=sv.first_round, last_round=sv.end_round,
                     addr=addr_bits, m=sv_m, m_lo=sv_m_lo, rnd=sv.in_rnd)
        # the scores are registered out of the block RAMs before D = m − S and the clamp
        t_lanes = ((t.lanes & ~(Cat(f.data for f in sv_flag) & (~t.rnd).replicate(kl)))
                   if gmax else t.lanes)
        t = stage("sv1s", sv_en, valid=t.valid, lanes=t_lanes, first_g=t.first_g,
                  last_g=t.last_g, first_round=t.first_round, last_round=t.last_round,
                  addr=t.addr, m=t.m, m_lo=t.m_lo, s=Cat(srd[lane].data for lane in range(kl)),
                  rnd=t.rnd)
        score = [t.s[lane * w.score:(lane + 1) * w.score].as_signed() for lane in range(kl)]
        diffs = [(t.m - score[lane]).as_unsigned()[:w.score] for lane in range(kl)]
        sats = [score[lane] < t.m_lo for lane in range(kl)]
        probs = exp2_stages(m, sv_en, diffs, fmt, d, name="sv_exp", saturated=sats,
                            platform=platform)
        for k in range(EXP_LATENCY):
            t = stage(f"sv{k + 2}", sv_en, valid=t.valid, lanes=t.lanes, first_g=t.first_g,
                         last_g=t.last_g, first_round=t.first_round, last_round=t.last_round,
                         addr=t.addr, rnd=t.rnd)
            if k == EXP_LATENCY - 3:  # issue the V read: its word, registered twice, meets p
                # (read, then registered in the fabric once per bank, as the K words)
                abits = len(sv.addr[0])
                v_addr = [t.addr[lane * abits:(lane + 1) * abits] for lane in range(kl)]
                used = [sv_en & t.valid & t.lanes[lane] for lane in range(kl)]
                v_data = Cat(vmem[lane].read_registered(v_addr[lane], sv_en, sv_en,
                                                        f"sv_v{lane}", used[lane] & ~t.rnd)
                             for lane in range(kl))
                if rmax:   # and from the random memories
                    rv_data = Cat(rvmem[lane].read_registered(v_addr[lane], sv_en, sv_en,
                                                              f"sv_rv{lane}", used[lane] & t.rnd)
                                  for lane in range(kl))
        # t is now aligned with probs (and, below, with the registered V words)
        # p is taken at a key's first group and held for its other groups: by each multiplier as
        # its operand A, and by p_in for the probability sum. ("keep": without it Yosys
        # 0.64-0.70 abort in ABC9 on a p register feeding the ECP5 multipliers.)
        keep = {"keep": 1}
        p_next = [Mux(t.lanes[lane], probs[lane], 0) for lane in range(kl)]
        p_en = sv_en & t.valid & t.first_g
        p_in = [Signal(unsigned(fmt.prob_bits), name=f"sv_p{lane}", attrs=keep)
                for lane in range(kl)]
        with m.If(p_en):
            m.d.sync += [p_in[lane].eq(p_next[lane]) for lane in range(kl)]
        # the V words (registered in the fabric above), then registered as multiplier operands
        v_word = Mux(t.rnd, rv_data, v_data) if rmax else v_data
        vw = [data.View(data.ArrayLayout(signed(b), dl), v_word[lane * word:(lane + 1) * word])
              for lane in range(kl)]
        t = stage("sv_mul", sv_en, valid=t.valid, first_g=t.first_g, last_g=t.last_g,
                  first_round=t.first_round, last_round=t.last_round)
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
        t = stage("sv_pv", sv_en, valid=t.valid, first_g=t.first_g, last_g=t.last_g,
                     first_round=t.first_round, last_round=t.last_round)
        lane_sum = [Signal(signed(w.acc), name=f"sv_lsum{u}") for u in range(dl)]
        lsum = Signal(unsigned(w.sum))
        with m.If(sv_en):
            m.d.sync += [lane_sum[u].eq(sum_tree(pv[lane][u] for lane in range(kl)))
                         for u in range(dl)]
            m.d.sync += lsum.eq(psum)
        # (done: the row's last group, one register bit for sv_en below)
        t = stage("sv_tree", sv_en, valid=t.valid, first_g=t.first_g, last_g=t.last_g,
                     first_round=t.first_round, last_round=t.last_round,
                     done=t.valid & t.last_round & t.last_g)
        # rotating accumulator: G groups of DL accumulators; the head group is updated and
        # moved to the tail, so after every key all groups are back in order
        acc = [[Signal(signed(w.acc), name=f"sv_acc{k}_{u}") for u in range(dl)]
               for k in range(g)]
        total = Signal(unsigned(w.sum))
        new = [Mux(t.first_round, 0, acc[0][u]) + lane_sum[u] for u in range(dl)]
        total_new = Mux(t.first_round & t.first_g, 0, total) + lsum
        res = [Signal(signed(w.acc), name=f"res_acc{k}") for k in range(d)]
        res_total = Signal(unsigned(w.sum))
        res_full = Signal()
        res_release = Signal()
        row_done = t.done   # = t.valid & t.last_round & t.last_g
        m.d.comb += sv_en.eq(~(row_done & res_full & ~res_release))
        with m.If(sv_en & t.valid):
            for k in range(g - 1):
                m.d.sync += [acc[k][u].eq(acc[k + 1][u]) for u in range(dl)]
            m.d.sync += [acc[g - 1][u].eq(new[u]) for u in range(dl)]
            m.d.sync += total.eq(total_new)
        final = [acc[k][u] for k in range(1, g) for u in range(dl)] + new

        # -- normaliser: DL dividers, fed one group per cycle ----------------------------------
        # the output rows leave through a small FIFO, so that the sink's ready reaches no
        # pipeline enable (a sink's combinational ready would otherwise sit on the SV engine's
        # clock-enable path)
        ofifo = fifo.SyncFIFOBuffered(width=d * fmt.out_bits, depth=3)
        m.submodules.ofifo = ofifo
        div_en = Signal()
        o_valid = Signal()
        feed_g = Signal(range(max(g, 2)))
        # feed_last = (feed_g == g − 1) as a register: sv_en (through res_release) is the SV
        # engine's clock enable, the iCEBreaker's critical path once the K/V loader's was gone
        feed_last = Signal(init=int(g == 1))
        feed = div_en & res_full
        m.d.comb += res_release.eq(feed & feed_last)
        with m.If(feed):
            m.d.sync += feed_g.eq(Mux(feed_g == g - 1, 0, feed_g + 1))
            if g > 1:
                m.d.sync += feed_last.eq(feed_g == g - 2)
            # rotate the result so that the group to divide is always at the bottom
            for k in range(d):
                m.d.sync += res[k].eq(res[(k + dl) % d])
        with m.If(res_release):
            m.d.sync += res_full.eq(0)
        with m.If(sv_en & row_done):  # after the rotation above: a new result replaces it
            m.d.sync += [res[k].eq(final[k]) for k in range(d)]
            m.d.sync += [res_full.eq(1), res_total.eq(total_new), sv_done.eq(sv_done + 1)]
        m.d.comb += sv_fin.eq(sv_en & row_done)
        outs = divide_stages(m, div_en, res[:dl], res_total, fmt, name="norm")
        dvalid = feed
        for k in range(divider_latency(fmt)):
            dvalid_r = Signal(name=f"norm_valid{k}")
            with m.If(div_en):
                m.d.sync += dvalid_r.eq(dvalid)
            dvalid = dvalid_r
        o_row = Signal(d * fmt.out_bits)
        o_cnt = Signal(range(max(g, 2)))
        with m.If(div_en & dvalid):
            m.d.sync += o_row.eq(Cat(o_row[dl * fmt.out_bits:], *outs))
            m.d.sync += o_cnt.eq(Mux(o_cnt == g - 1, 0, o_cnt + 1))
        o_sent = self.o.valid & self.o.ready
        if gmax:
            # a global token's band row is dropped here: the global-row engine sends its row
            o_idx = Signal(p.index_bits)   # the row in o_row
            o_drop = Signal()
            if blk:   # the first and last blocks
                m.d.comb += o_drop.eq(o_valid & ((o_idx < blk) | (o_idx >= n_mb)))
            else:
                opos = [Signal(p.index_bits, name=f"o_gpos{k}") for k in range(gmax)]
                orem = Signal(range(gmax + 1))
                m.d.comb += o_drop.eq(o_valid & orem.any() & (opos[0] == o_idx))
            m.d.comb += [div_en.eq(~o_valid | ofifo.w_rdy | o_drop),
                         ofifo.w_en.eq(o_valid & ~o_drop), ofifo.w_data.eq(o_row)]
            with m.If(o_valid & (ofifo.w_rdy | o_drop)):
                m.d.sync += [o_valid.eq(0), o_idx.eq(o_idx + 1)]
            if not blk:
                with m.If(o_drop):
                    m.d.sync += [orem.eq(orem - 1),
                                 *[opos[k].eq(opos[k + 1]) for k in range(gmax - 1)]]
            m.d.sync += rows_done.eq(rows_done + o_sent + o_drop)
            with m.If(start_run):
                m.d.sync += o_idx.eq(0)
                if not blk:
                    m.d.sync += [orem.eq(cmd.global_count),
                                 *[opos[k].eq(cmd.global_tokens[k]) for k in range(gmax)]]
        else:
            m.d.comb += [div_en.eq(~o_valid | ofifo.w_rdy),
                         ofifo.w_en.eq(o_valid), ofifo.w_data.eq(o_row)]
            with m.If(o_valid & ofifo.w_rdy):
                m.d.sync += o_valid.eq(0)
            m.d.comb += rows_done.eq(rows_out)
        with m.If(div_en & dvalid & (o_cnt == g - 1)):
            m.d.sync += o_valid.eq(1)
        m.d.comb += [self.o.valid.eq(ofifo.r_rdy), self.o.payload.eq(ofifo.r_data),
                     ofifo.r_en.eq(self.o.ready)]
        with m.If(o_sent):
            m.d.sync += [rows_out.eq(rows_out + 1), stats["rows_out"].eq(stats["rows_out"] + 1)]

        # -- a new run resets every pointer and counter ----------------------------------------
        with m.If(start_run):
            m.d.sync += [sig.eq(0) for sig in (
                kv_acc, kv_wr, q_cnt, qk_row, sv_done, rows_out, kv_lane, kv_base, lo_lane,
                lo_base, sbuf, kv_cls, kv_a, *stats.values())]
            m.d.sync += q_more.eq(1)   # (seq_len >= 1)
            if gmax:
                m.d.sync += rows_done.eq(0)
            else:  # (with global tokens, the loader's start above sets the region)
                m.d.sync += kv_region.eq(0)
        m.d.comb += self.rw_collision.eq(Cat(mem.collision for mem in banked).any())
        return m
