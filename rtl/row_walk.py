"""RowWalk: how an engine walks a row of keys — the one definition of which lane holds which
key of a row, and where in the K/V memories.

Both engines (:mod:`~swatkit.rtl.qk_engine`, :mod:`~swatkit.rtl.sv_engine`) walk every row the
same way, one token (a group of ``dim_lanes`` elements of ``key_lanes`` keys) per cycle:
``ceil(W_i / KL)`` rounds of ``G = head_dim / dim_lanes`` groups for a row of ``W_i`` keys. A
:class:`RowWalk` is the issue state of one engine (registers built into the engine's module), not
a component: it has no ports of its own, the engine's enable drives it.
"""

from __future__ import annotations

from amaranth import Array, Cat, Module, Mux, Shape, Signal

from .config import CoreParams

__all__ = ["RowWalk", "walk_addr_bits", "wrap_inc"]


def walk_addr_bits(p: CoreParams) -> int:
    """Width of a walker's K/V addresses (the ring's and, on a core with random blocks, the
    random buffers' words)."""
    return Shape.cast(range(max(p.kv_depth, p.random_depth, 2))).width


def wrap_inc(value, step, modulus):
    """``(value + step) mod modulus`` for ``0 <= value < modulus``, ``0 <= step <= modulus``."""
    if isinstance(step, int) and step == 1 and isinstance(modulus, int):
        # (an equality instead of an add, a compare and a subtract in carry chains: the walkers'
        # address step, a critical path of the ULX3S default; docs/fpga.md, build 17)
        return Mux(value == modulus - 1, 0, value + 1)
    nxt = value + step
    return Mux(nxt >= modulus, nxt - modulus, nxt)



class RowWalk:
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
        self.addr = [Signal(walk_addr_bits(p), name=f"{name}_addr{lane}")
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

    def invariants(self, label: str) -> list[tuple]:
        """``(test, message)``: the walk's registers agree (for ``swatkit prove``): the
        registered last-round flag is ``rem < KL``; the group counter is below G, and 0 while
        idle."""
        g, kl = self.p.groups, self.p.hw.key_lanes
        return [
            (~self.busy | (self.last_round == (self.rem < kl)),
             f"inv: {label} last-round flag = rem < KL"),
            (self.busy | (self.g == 0), f"inv: {label} group counter idle"),
            (self.g < g if g > 1 else self.g == 0, f"inv: {label} group counter in range"),
        ]

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
        return wrap_inc(lo_base, self.p.groups, self.p.region_words)

    def _next_addr(self, a):
        sg = self.p.region_words
        if self.classes:
            nxt = a + 1
            band = Mux(nxt == self.wrap_hi, self.region, nxt)
        else:
            band = wrap_inc(a, 1, sg)
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
