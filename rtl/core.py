"""SwatCore: the SWAT-style row-wise, input-stationary, fused window-attention core.

What it computes: one head of sliding-window attention (bidirectional or causal band, dilated
or not, with Longformer's global tokens; the pattern is chosen per run on the command, within
the maxima the core was generated for), bit-exact to
:func:`swatkit.golden.fixed_point_attention` (the contract in :mod:`swatkit.golden.numerics`).
Follows SWAT (Bai et al., DAC 2024): rows in order; K/V rows of the window stay in on-chip
buffers (input-stationary) and each enters exactly once; per row QK → softmax → SV fused, the
score row never leaves the core, normalisation deferred to one division per output element at
the end of the row.

Structure: a chain of stage components, each in its own file with its ports stated, joined
here (docs/rtl.md has the diagram and the schedule)::

    cmd ──► RunControl (run_control.py) ──run──► every stage
    kv  ──► KVRing (kv_ring.py): loader (a word per cycle) ──► K ring, V ring, flags
            (key j: lane j mod KL, slot (j div KL) mod S)           ▲ k_rd      ▲ v_rd
    q   ──► Scheduler (scheduler.py): Q registers, row bookkeeping  │           │
              ──rows──► QKEngine (qk_engine.py): KL lanes × DL MACs, score buffers, row max
              ──maxes──► SVEngine (sv_engine.py): exp2 → p; p·V; l = Σp; result register
              ──groups──► Normaliser (normaliser.py): DL dividers, output FIFO ──► o
    kvr ──► RandomRing (kv_ring.py), BigBird's random blocks; qg/kvg/og: GlobalRowEngine

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

from amaranth import Cat, Module, Mux, Shape, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from swatkit.golden import AttentionSpec, NumberFormat

from . import kv_ring, run_control, scheduler
from .config import CoreParams, HardwareConfig
from .contexts import ContextStore, carry, context_layout
from .global_rows import GLOBAL_STAT_FIELDS, GlobalRowEngine, GlobalRowEngines
from .kv_ring import KVRing, RandomRing
from .normaliser import Normaliser
from .qk_engine import QKEngine
from .run_control import STAT_BITS, RunControl, field_bits
from .scheduler import Scheduler
from .sv_engine import SVEngine
from .units import state_invariants

__all__ = ["STAT_FIELDS", "SwatCore", "command", "core_layouts", "core_signature",
           "refused_commands"]

STAT_FIELDS = ("cycles", "kv_rows", "q_rows", "rows_out", "qk_macs", "sv_macs", "exp_ops")


def core_layouts(p: CoreParams) -> dict:
    """The payload layouts of every port; the testbenches pack and unpack with these.

    The command carries the run's pattern: ``seq_len``, ``before``, ``after``, and, on a core
    generated for them, ``dilation`` (``max_dilation`` > 1) and ``global_count`` with the sorted
    ``global_tokens`` positions (``max_global_tokens`` > 0; entries past the count are ignored);
    on a sink core ``sink_count`` (the run's sink tokens, up to ``spec.sink_tokens``); on a
    decode core ``cont`` (continue the sequence by ``seq_len`` rows; docs/rtl.md, "Decode").
    """
    d = p.spec.head_dim
    row = data.ArrayLayout(signed(p.fmt.data_bits), d)
    if p.block_size:   # BigBird: the block size is the core's; a run chooses N and r
        cmd = {"seq_len": unsigned(p.index_bits)}
        if p.max_random_blocks:
            cmd["random_blocks"] = unsigned(field_bits(p.max_random_blocks))
    else:
        cmd = {"seq_len": unsigned(p.index_bits), "before": unsigned(field_bits(p.spec.before)),
               "after": unsigned(field_bits(p.spec.after))}
    if p.max_dilation > 1:
        cmd["dilation"] = unsigned(field_bits(p.max_dilation))
    if p.sink_logits:   # the run's learned sink scores (NumberFormat.sink_scores), per head
        cmd["sink_on"] = unsigned(1)
        cmd["sink_scores"] = data.ArrayLayout(signed(p.widths.score), p.group_heads)
    if p.sink_core:   # the run's sink tokens: K/V rows 0 … sink_count − 1
        cmd["sink_count"] = unsigned(field_bits(p.max_global_tokens))
    elif p.max_global_tokens and not p.block_size:
        cmd["global_count"] = unsigned(field_bits(p.max_global_tokens))
        cmd["global_tokens"] = data.ArrayLayout(unsigned(p.index_bits), p.max_global_tokens)
    if p.decode:   # 0: start a sequence of seq_len rows; 1: continue it by seq_len rows
        cmd["cont"] = unsigned(1)
    if p.ctx_bits:   # (C > 1 contexts) the context the command starts or continues
        cmd["ctx"] = unsigned(p.ctx_bits)
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
    K/V stream ``kvr`` (in); a decode core ``ctx_valid`` (out: its context holds a sequence
    that a continue may extend)."""
    lay = core_layouts(p)
    globals_ = {}
    if p.global_rows:
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
        "rule_error": Out(1),
        "stats": Out(lay["stats"]),
        # (C > 1 contexts: bit c for context c)
        **({"ctx_valid": Out(max(p.contexts, 1))} if p.decode else {}),
    })


def command(p: CoreParams, run: AttentionSpec | None = None, seq_len: int | None = None,
            sink_scores=None, cont: bool = False, ctx: int = 0) -> dict:
    """The ``cmd`` payload (a dict for ``core_layouts(p)["cmd"].const``) that starts a run with
    the pattern ``run`` (an :class:`AttentionSpec`; default: the core's own spec), or only a
    different ``seq_len``; on a core that takes learned sink logits, ``sink_scores`` (one
    integer per query head, :meth:`NumberFormat.sink_scores`; None: no sink). Not checked
    against the core's maxima: the core refuses a bad command itself (``error``);
    :meth:`CoreParams.check_run` checks one in software. On a decode core, ``cont``: the
    command continues the sequence (of the pattern ``run``) by ``seq_len`` rows
    (:meth:`CoreParams.check_continue` checks one in software); ``ctx``: the context it
    names on a core of C > 1 contexts (not checked either: a ctx beyond C − 1 that the field
    holds is refused by the core; :meth:`CoreParams.check_context`)."""
    if cont and not p.decode:
        raise ValueError("cont needs a decode core (contexts >= 1)")
    if ctx and not p.ctx_bits:
        raise ValueError("ctx needs a core of 2 contexts or more")
    fields = _command_fields(p, p.spec if run is None else run, seq_len, sink_scores)
    if p.decode:
        fields["cont"] = int(bool(cont))
    if p.ctx_bits:
        fields["ctx"] = int(ctx)
    return fields


def _command_fields(p: CoreParams, run: AttentionSpec, seq_len: int | None,
                    sink_scores) -> dict:
    """:func:`command`'s fields of a run's length and pattern."""
    sinks = {}
    if p.sink_logits:
        scores = [0] * p.group_heads if sink_scores is None else [int(x) for x in sink_scores]
        sinks = {"sink_on": int(sink_scores is not None), "sink_scores": scores}
    if p.block_size:
        fields = {"seq_len": run.seq_len if seq_len is None else seq_len}
        if p.max_random_blocks:
            fields["random_blocks"] = run.num_random_blocks
        return fields
    fields = {"seq_len": run.seq_len if seq_len is None else seq_len,
              "before": run.before, "after": run.after, **sinks}
    if p.max_dilation > 1:
        fields["dilation"] = run.dilation
    if p.sink_core:
        fields["sink_count"] = run.sink_tokens
    elif p.max_global_tokens:
        tokens = list(run.global_tokens)[:p.max_global_tokens]
        fields["global_count"] = len(run.global_tokens)
        fields["global_tokens"] = tokens + [0] * (p.max_global_tokens - len(tokens))
    return fields


def command_value(p: CoreParams, run: AttentionSpec | None = None,
                  seq_len: int | None = None, sink_scores=None, cont: bool = False,
                  ctx: int = 0) -> int:
    """:func:`command` as the integer of the ``cmd`` payload's bits."""
    return _command_bits(p, command(p, run, seq_len, sink_scores, cont, ctx))


def _command_bits(p: CoreParams, fields: dict) -> int:
    """The bits of the ``cmd`` payload ``fields`` (a dict for ``core_layouts(p)["cmd"].const``)."""
    lay = core_layouts(p)["cmd"]
    return lay.const(fields).as_value().value & ((1 << lay.size) - 1)


def refused_commands(p: CoreParams) -> dict[str, int]:
    """``{description: payload}`` of commands the core must refuse (``error``, no run): N = 0,
    N = max_seq_len + 1 where the field holds it, and on a core generated for them a dilation
    of 0 or above the maximum, a global token at N, global tokens out of order, more global
    tokens than the maximum, a sink score outside the scores' range, more sinks than generated
    or than N; on a BigBird core N not a multiple of b and r above what N allows. The
    payloads are the ``cmd`` bits (the regression's bench offers each, and checks that the
    core refuses it)."""
    lay = core_layouts(p)["cmd"]

    def value(**changes):
        return _command_bits(p, {**command(p, seq_len=5), **changes})

    def width(name):
        return Shape.cast(lay.members[name]).width

    if p.block_size:   # N not a multiple of b, r above the maximum or above what N allows
        b, r = p.block_size, p.max_random_blocks
        bad = {"seq_len=0": value(seq_len=0)}
        if p.hw.max_seq_len + b < 2 ** p.index_bits:
            bad[f"seq_len={p.hw.max_seq_len + b}"] = value(seq_len=p.hw.max_seq_len + b)
        if b > 1:
            bad[f"seq_len={3 * b + 1}"] = value(seq_len=3 * b + 1)
        if r:
            if r + 1 < 2 ** width("random_blocks"):
                bad[f"random_blocks={r + 1}"] = value(seq_len=b, random_blocks=r + 1)
            bad[f"random_blocks={r} at N={(r + 4) * b}"] = value(seq_len=(r + 4) * b,
                                                                  random_blocks=r)
        return bad
    bad = {"seq_len=0": value(seq_len=0)}
    if p.hw.max_seq_len + 1 < 2 ** p.index_bits:
        bad[f"seq_len={p.hw.max_seq_len + 1}"] = value(seq_len=p.hw.max_seq_len + 1)
    if p.spec.after + 1 < 2 ** width("after"):
        bad[f"after={p.spec.after + 1}"] = value(after=p.spec.after + 1)
    if p.max_dilation > 1:
        bad["dilation=0"] = value(dilation=0)
        if p.max_dilation + 1 < 2 ** width("dilation"):
            bad[f"dilation={p.max_dilation + 1}"] = value(dilation=p.max_dilation + 1)
    if p.sink_logits:   # a sink score outside the scores' range (where the field holds it)
        lo, hi = p.fmt.score_range(p.spec.head_dim)
        heads = p.group_heads
        if hi + 1 < 2 ** (p.widths.score - 1):
            bad[f"sink score {hi + 1}"] = value(sink_on=1,
                                                sink_scores=[0] * (heads - 1) + [hi + 1])
        if lo - 1 >= -2 ** (p.widths.score - 1):
            bad[f"sink score {lo - 1}"] = value(sink_on=1, sink_scores=[lo - 1] * heads)
    g = p.max_global_tokens
    if p.sink_core:   # more sinks than generated, or than N
        if g + 1 < 2 ** width("sink_count"):
            bad[f"sink_count={g + 1}"] = value(sink_count=g + 1)
        if g > 1:
            bad[f"sink_count={g} at N=1"] = value(seq_len=1, sink_count=g)
    elif g:
        bad["global token 5 of N=5"] = value(global_count=1,
                                             global_tokens=[5] + [0] * (g - 1))
        if g > 1:
            bad["global tokens 3, 1"] = value(global_count=2,
                                              global_tokens=[3, 1] + [0] * (g - 2))
        if g + 1 < 2 ** width("global_count"):
            bad[f"{g + 1} global tokens"] = value(global_count=g + 1)
    return bad


class SwatCore(wiring.Component):
    """Row-wise, input-stationary, fused sliding-window attention core.

    Parameters
    ----------
    params : CoreParams
        The checked configuration, handed down whole (or an :class:`AttentionSpec` with ``fmt``
        and ``hw``, checked here: :meth:`CoreParams.of`). Its spec is the largest window a run
        may use (``before``, ``after``) and the default pattern (``dilation``,
        ``global_tokens``); ``seq_len`` is only a default — N is given at run time on ``cmd``,
        up to ``hw.max_seq_len``.
    fmt : NumberFormat, optional
    hw : HardwareConfig, optional
    heads, kv_heads : int, optional
        Query heads on K/V heads (:class:`CoreParams`; only with an ``AttentionSpec``): the
        core runs one K/V head and its g = heads / kv_heads query heads per run (default one
        on one).
    sink_logits : bool, optional
        The core takes a learned sink score per query head on each run's command
        (``sink_on``, ``sink_scores``).

    Members
    -------
    cmd : In(stream)  starts a run of N rows with its pattern (``core_layouts``: ``seq_len``,
        ``before``, ``after``, and on cores generated for them ``dilation``, ``global_count``,
        ``global_tokens``); accepted only when idle; a value outside the generated maxima sets
        ``error`` and starts nothing (:meth:`CoreParams.check_run` is the same rule).
    q : In(stream)    one Q row per beat (``head_dim`` signed ``data_bits`` elements); on a
        grouped core the g query heads' rows of position 0, then of position 1, …
    kv : In(stream)   one K row and one V row per beat: the run's global columns, then rows
        0 … N−1.
    o : Out(stream)   one O row per beat (signed ``out_bits`` elements): the rows that are not
        global tokens (a grouped core: g per position, in the order of ``q``).
    qg, kvg, og       (cores with ``max_global_tokens`` > 0) the global-row engine's streams
        (:class:`~swatkit.rtl.global_rows.GlobalRowEngine`): q_g of each global token; k_g, v_g
        of rows 0 … N−1, twice; the global rows.
    busy : Out(1)     a run is in progress.
    error : Out(1)    the last command was rejected.
    rule_error : Out(1)  sticky until reset: a producer dropped ``valid`` in the middle of a
        row of ``kv`` (or ``kvr``) of two words or more (:class:`~swatkit.rtl.kv_ring.
        RowCopier`); the rows taken since are not the producer's. Always 0 when a row is
        one word.
    stats : Out(layout)  performance counters of the current/last run (``STAT_FIELDS``).
    ctx_valid : Out(1)  (a decode core) the context holds a sequence a ``cont`` command may
        continue: set by a start, cleared by a reset; a continue then is refused.

    The stages (``control``, ``ring``, ``random``, ``scheduler``, ``qk``, ``sv``, ``norm``,
    ``glob``; ``None`` where the core has none) are attributes, and ``counters`` holds the
    registers that the stream contract's proofs read (``sim/formal.py``).

    Raises
    ------
    ValueError
        When the configuration cannot implement the spec (see :class:`CoreParams`).
    """

    def __init__(self, params: CoreParams | AttentionSpec, fmt: NumberFormat | None = None,
                 hw: HardwareConfig | None = None, **group):
        self.params = p = CoreParams.of(params, fmt, hw, **group)
        super().__init__(core_signature(p))
        lay = core_layouts(p)
        cmd = lay["cmd"]
        self.control = RunControl(p, cmd)
        self.ring = KVRing(p, lay["kv"], cmd)
        self.random = RandomRing(p, lay["kv"], cmd) if p.max_random_blocks else None
        self.scheduler = Scheduler(p, lay["q"], cmd)
        self.qk = QKEngine(p, self.scheduler.rows.payload.shape(), cmd)
        self.sv = SVEngine(p, cmd)
        self.norm = Normaliser(p.fmt, p.spec.head_dim, p.hw.dim_lanes, p.widths.acc,
                               p.widths.sum, drop=p.global_rows)
        self.store = None   # (C > 1 contexts) the carried registers of each context
        if p.ctx_bits:
            self.store = ContextStore(p, context_layout({
                "control": run_control.carried_layout(p), "ring": kv_ring.carried_layout(p),
                "sched": scheduler.carried_layout(p),
                "core": data.StructLayout({"rows_out": unsigned(p.index_bits)})}))
        self.glob = None
        if p.global_rows:   # (BigBird's 2·b global rows: several engines)
            d, dl, gmax = p.spec.head_dim, p.hw.dim_lanes, p.max_global_tokens
            self.glob = (GlobalRowEngines(p.fmt, d, dl, p.hw.max_seq_len, gmax,
                                          p.global_engines) if p.global_engines > 1
                         else GlobalRowEngine(p.fmt, d, dl, p.hw.max_seq_len, gmax))
        for stage in self._stages():   # (the core's own "never used" warning covers them)
            stage._MustUse__silence = True
        # not a port: 1 in a cycle that reads a K/V word where it is written (the promise of
        # BankedMemory's no_rw_check; the simulated runs check it, synthesis removes it)
        self.rw_collision = Signal()
        run = self.control.run
        self.counters = SimpleNamespace(
            running=run.running, n=run.n, q_cnt=self.scheduler.state.q_cnt,
            kv_acc=self.ring.state.acc, kv_copy=self.ring.copier.busy,
            rows_out=Signal(p.index_bits, name="rows_out"))

    def _stages(self):
        return [s for s in (self.control, self.ring, self.random, self.scheduler, self.qk,
                            self.sv, self.norm, self.glob, self.store) if s is not None]

    def elaborate(self, platform):
        m = Module()
        p = self.params
        gmax, blk, rmax = p.max_global_tokens, p.block_size, p.max_random_blocks
        control, ring, rnd, sched = self.control, self.ring, self.random, self.scheduler
        qk, sv, norm, glob = self.qk, self.sv, self.norm, self.glob
        for name, stage in (("control", control), ("ring", ring), ("random", rnd),
                            ("scheduler", sched), ("qk", qk), ("sv", sv), ("norm", norm),
                            ("glob", glob), ("contexts", self.store)):
            if stage is not None:
                m.submodules[name] = stage
        run = control.run

        # -- the chain: streams and the memories' reads ----------------------------------------
        wiring.connect(m, wiring.flipped(self.cmd), control.cmd)
        wiring.connect(m, control.run, *(s.run for s in (ring, rnd, sched, qk, sv)
                                         if s is not None))
        wiring.connect(m, wiring.flipped(self.kv), ring.kv)
        wiring.connect(m, wiring.flipped(self.q), sched.q)
        wiring.connect(m, scheduler=sched.rows, qk=qk.rows)
        wiring.connect(m, qk=qk.k_rd, ring=ring.k_rd)
        wiring.connect(m, sv=sv.s_rd, qk=qk.s_rd)
        wiring.connect(m, qk=qk.maxes, sv=sv.maxes)
        wiring.connect(m, sv=sv.v_rd, ring=ring.v_rd)
        wiring.connect(m, sv=sv.out, norm=norm.i)
        wiring.connect(m, norm.o, wiring.flipped(self.o))
        m.d.comb += [ring.sv_fin.eq(sv.fin), sched.sv_fin.eq(sv.fin),
                     sched.kv_wr.eq(ring.kv_wr), sched.kv_a.eq(ring.kv_a)]
        if p.max_dilation > 1:
            m.d.comb += sched.kv_cls.eq(ring.kv_cls)
        if gmax:
            wiring.connect(m, qk=qk.f_rd, ring=ring.f_qk)
            wiring.connect(m, sv=sv.f_rd, ring=ring.f_sv)
            m.d.comb += sched.pre_done.eq(ring.pre_done)
        if rmax:
            wiring.connect(m, wiring.flipped(self.kvr), rnd.kvr)
            wiring.connect(m, qk=qk.rk_rd, random=rnd.k_rd)
            wiring.connect(m, sv=sv.rv_rd, random=rnd.v_rd)
            m.d.comb += [sched.blocks.eq(rnd.blocks), rnd.sv_done.eq(sv.done)]
        m.d.comb += [self.busy.eq(run.running), self.error.eq(control.error),
                     self.rule_error.eq(ring.copier.dropped
                                        | (rnd.copier.dropped if rmax else 0))]
        if p.decode:
            m.d.comb += self.ctx_valid.eq(control.ctx_valid)

        # -- the rows out: a global token's band row is dropped (the global-row engine sends
        # its row), the others counted ----------------------------------------------------------
        rows_out = self.counters.rows_out               # rows sent on o
        rows_done = Signal(p.index_bits, name="rows_done")   # rows sent on o or dropped
        stat_rows_out = Signal(STAT_BITS, name="stat_rows_out")
        o_sent = self.o.valid & self.o.ready
        drops = None   # (the row register's index, the global tokens still ahead of it)
        if p.global_rows:
            o_idx = Signal(p.index_bits, name="o_idx")   # the row in the normaliser's register
            o_drop = Signal()
            if blk:   # the first and last blocks
                m.d.comb += o_drop.eq(norm.pending & ((o_idx < blk) | (o_idx >= run.n_mb)))
            else:
                opos = [Signal(p.index_bits, name=f"o_gpos{k}") for k in range(gmax)]
                orem = Signal(range(gmax + 1), name="o_grem")
                m.d.comb += o_drop.eq(norm.pending & orem.any() & (opos[0] == o_idx))
            m.d.comb += norm.drop.eq(o_drop)
            with m.If(norm.leave):
                m.d.sync += o_idx.eq(o_idx + 1)
            if not blk:
                with m.If(o_drop):
                    m.d.sync += [orem.eq(orem - 1),
                                 *[opos[k].eq(opos[k + 1]) for k in range(gmax - 1)]]
            drops = SimpleNamespace(idx=o_idx, rem=None if blk else orem,
                                    pos=None if blk else opos)
            m.d.sync += rows_done.eq(rows_done + o_sent + o_drop)
            with m.If(run.start):
                m.d.sync += [o_idx.eq(0), rows_done.eq(0)]
                if not blk:
                    m.d.sync += [orem.eq(run.cmd.global_count),
                                 *[opos[k].eq(run.cmd.global_tokens[k]) for k in range(gmax)]]
        else:
            m.d.comb += rows_done.eq(rows_out)
        with m.If(o_sent):
            m.d.sync += [rows_out.eq(rows_out + 1), stat_rows_out.eq(stat_rows_out + 1)]
        if p.decode:   # (a continue's rows go on from the sequence's: rows_out counts on)
            with m.If(run.start):
                m.d.sync += stat_rows_out.eq(0)
                with m.If(~run.cont):
                    m.d.sync += rows_out.eq(0)
            if p.ctx_bits:
                self._contexts(m, rows_out)
        else:
            with m.If(run.start):
                m.d.sync += [rows_out.eq(0), stat_rows_out.eq(0)]

        # -- the run ends when every row is out (and the global rows are done) -----------------
        band_done = rows_done == (run.nq if p.group_heads > 1 else run.n)
        if p.global_rows:
            # global rows: the global-row engine (its own streams), started with the run
            m.d.comb += [glob.start.eq(run.start), glob.seq_len.eq(run.cmd.seq_len),
                         glob.rows.eq(run.cmd_gcount)]
            wiring.connect(m, glob.qg, wiring.flipped(self.qg))
            wiring.connect(m, glob.kvg, wiring.flipped(self.kvg))
            wiring.connect(m, wiring.flipped(self.og), glob.og)
            band_done = band_done & ~glob.busy
        m.d.comb += control.done.eq(band_done)

        # -- stats: each stage's counters (the global-row engine's MACs and exponentials count
        # with the band's; every command that starts a run clears the engine's counters, also
        # one without global rows) -------------------------------------------------------------
        stats = {"cycles": control.cycles, "kv_rows": ring.kv_rows, "q_rows": sched.q_rows,
                 "rows_out": stat_rows_out, "qk_macs": qk.qk_macs, "sv_macs": sv.sv_macs,
                 "exp_ops": sv.exp_ops}
        for name, sig in stats.items():
            if p.global_rows and name in GLOBAL_STAT_FIELDS and name != "cycles":
                sig = sig + getattr(glob, name)
            m.d.comb += getattr(self.stats, name).eq(sig)
        collisions = [ring.collision] + ([rnd.collision] if rmax else [])
        m.d.comb += self.rw_collision.eq(Cat(*collisions).any())

        # -- invariants across the stages (for swatkit prove; nothing in a build) --------------
        state_invariants(m, platform, [*self._invariants(rows_done, stat_rows_out),
                                       *self._drop_invariants(rows_out, rows_done, drops)])
        return m

    def _contexts(self, m: Module, rows_out):
        """(C > 1 contexts) the context store: read at the command's ``ctx``, written with the
        stages' carried registers (and ``rows_out``) in the running context's record when the
        run ends; each stage loads its own when a continue starts."""
        store, run, control = self.store, self.control.run, self.control
        m.d.comb += [store.rd_ctx.eq(run.cmd.ctx), store.wr_ctx.eq(run.ctx),
                     store.save.eq(run.running & control.done)]
        for name, stage in (("control", control), ("ring", self.ring),
                            ("sched", self.scheduler)):
            m.d.comb += [getattr(store.cur, name).eq(stage.context.save),
                         stage.context.load.eq(getattr(store.load, name))]
        carry(m, SimpleNamespace(save=store.cur.core, load=store.load.core),
              {"rows_out": rows_out}, run.start & run.cont)

    def _drop_invariants(self, rows_out, rows_done, drops) -> list[tuple]:
        """The rows dropped before ``o`` (global tokens' band rows) add up: ``rows_done`` =
        rows sent + the global rows among those that left the normaliser's row register
        (``o_idx`` of them); the global-row engine runs only within a run."""
        if drops is None:
            return []
        p, run, norm = self.params, self.control.run, self.norm
        running, idx, blk = run.running, drops.idx, p.block_size
        checks = [
            (~running | (idx + norm.pending == rows_done + norm.rows_inside),
             "inv: o_idx = rows out or dropped + rows in the output FIFO"),
            (~self.glob.busy | running, "inv: the global-row engine runs only within a run"),
        ]
        if blk:   # rows below b or from N − b on are global: those among the first o_idx
            m_lo = Mux(idx < run.n_mb, idx, run.n_mb)
            return [*checks,
                    (~running | (idx <= run.n), "inv: o_idx <= n"),
                    (~running | (rows_done == rows_out + idx - Mux(m_lo > blk, m_lo - blk, 0)),
                     "inv: rows done = rows out + the global rows dropped")]
        rem, pos, gmax = drops.rem, drops.pos, p.max_global_tokens
        checks += [
            (~running | (rem <= run.gcount), "inv: global rows left to drop <= gcount"),
            (~running | (rows_done == rows_out + run.gcount - rem),
             "inv: rows done = rows out + the global rows dropped"),
            (~running | ~rem.any() | (pos[0] >= idx),
             "inv: the next global row to drop is not behind the normaliser"),
        ]
        for k in range(gmax):
            checks.append((~running | (rem <= k) | (pos[k] < run.n),
                           f"inv: global row {k} to drop is in the sequence"))
            if k:
                checks.append((~running | (rem <= k) | (pos[k] > pos[k - 1]),
                               f"inv: global rows to drop {k - 1}, {k} increase"))
        return checks

    def _invariants(self, rows_done, stat_rows_out) -> list[tuple]:
        """The row bookkeeping adds up across the stages: every row started and not yet out
        (sent on ``o``, or dropped: a global token's band row) is in exactly one place."""
        p, run = self.params, self.control.run
        sched, ring, qk, sv, norm = self.scheduler, self.ring, self.qk, self.sv, self.norm
        s, g, sb = sched.state, p.groups, p.score_buffers
        running = run.running
        # rows started (QK) and not through SV: in the QK walk, the QK pipeline, the row-max
        # FIFO, the SV walk or the SV pipeline
        in_sv = qk.inside + sv.inside
        # groups of rows through SV and not yet out: in the result register, the dividers, the
        # output row being assembled; whole rows in the row register and the output FIFO
        groups = sv.groups + norm.groups_inside
        out_rows = rows_done + norm.rows_inside
        idle = (qk.idle & sv.idle & norm.idle & ~ring.state.hold & ~s.q_full
                & ~s.q_skid_full)
        rnd = self.random   # (BigBird: a block's rows start once its random rows are written)
        random = [] if rnd is None else [
            (~running | ~run.rcount.any() | ((rnd.state.wr_blk + 3) * p.block_size > run.n)
             | (s.qk_row <= (rnd.state.wr_blk + 1) * p.block_size),
             "inv: no row of the block whose random rows are loading has started")]
        done, started = sv.done, (~running | (s.qk_row == sv.done + in_sv),
                                  "inv: started rows are in the engines")
        if p.decode:   # (sv.done counts the run's rows; a continue's go on from the sequence's)
            done, started = s.qk_row - in_sv, (~running | (sv.done + in_sv <= s.qk_row),
                                               "inv: the run's rows done <= rows started")
        return [
            *random,
            started,
            (~running | (s.sb_free + s.qk_row == done + sb), "inv: free score buffers"),
            (~running | (g * done == g * out_rows + groups),
             "inv: finished rows are in the normaliser or out"),
            ring.credit_bound(done),
            (running | idle, "inv: an idle core is empty"),
            ((stat_rows_out <= self.counters.rows_out, "inv: stats.rows_out <= rows_out")
             if p.decode else   # (a continue's rows; rows_out counts the sequence's)
             (stat_rows_out == self.counters.rows_out, "inv: stats.rows_out = rows_out")),
        ]
