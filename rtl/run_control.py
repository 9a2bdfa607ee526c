"""RunControl: the core's command stage — a run's length and pattern, checked and latched.

What it does: takes one ``cmd`` beat while idle (:func:`~swatkit.rtl.core.core_layouts`'s
``cmd``), refuses it (``error``, nothing starts) when a field is outside the maxima the core was
generated for — the same rule as :meth:`~swatkit.rtl.config.CoreParams.check_run` — and
otherwise pulses ``run.start`` and holds the run's parameters in registers until the run ends
(``done``, from the core: every row out and the global-row engine idle). Latency: the cycle of
the ``cmd`` transfer is the cycle of ``run.start``; ``running`` rises one cycle later.

Ports:

- ``cmd``: In(stream) — ready while idle (``~running``); taken whatever its value.
- ``run``: Out(:func:`run_signature`) — ``start`` (the cycle a legal command is taken; the
  ``cmd`` payload is valid in that cycle as ``run.cmd``), ``running``, and the registers of
  the run that the other stages read: ``n`` (rows), ``after`` and ``dafter`` (dilation·after),
  ``dil``, ``gcount`` (resident columns: global tokens or sinks), ``n_mb`` (BigBird: N − b),
  ``rcount`` and ``rnd_last`` (BigBird's random blocks: r and r·b − 1). A field exists only
  on a core that has it.
- ``done``: In(1) — the run's rows are all out; ``running`` falls.
- ``ctx_valid``: Out(1) (a decode core) — the context holds a sequence that a command may
  continue: set by a legal start, 0 after a reset.

A decode core (``contexts`` >= 1, docs/rtl.md "Decode") has a ``cont`` bit on the command: 0
starts a sequence of ``seq_len`` rows (as on every core), 1 continues the context's sequence by
``seq_len`` rows — ``run.cont`` is then set with ``run.start``, ``n`` grows by ``seq_len`` (it
is the sequence's length, the end of the rows the counters of the stages run to) and the
stages keep their positions, ring and resident columns. A continue is refused
(:func:`continue_faults`) on an invalid context, past ``max_seq_len``, when its pattern
fields differ from the sequence's, or when the sequence looks ahead (``after`` > 0).
- ``error``: Out(1) — the last command was refused; ``cycles``: Out — busy cycles of the run.

A core of C > 1 contexts has a ``ctx`` field on the command: the context a start begins or a
continue goes on with (``run.ctx`` holds it through the run). ``ctx_valid`` is then C bits (bit c:
context c holds a sequence; a reset clears them all, a start sets its own), a ctx beyond C − 1
is refused like any bad field, and ``context`` (:func:`~swatkit.rtl.contexts.
context_signature` of :func:`carried_layout`) shows the sequence's length and pattern to the
core's :class:`~swatkit.rtl.contexts.ContextStore` and takes the named context's back: a
continue is checked against them and ``n`` goes on from the record's.
"""

from __future__ import annotations

from amaranth import Cat, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .config import CoreParams
from .contexts import carry, context_signature
from .units import STAT_BITS, state_invariants

__all__ = ["STAT_BITS", "RunControl", "carried_layout", "command_faults", "continue_faults",
           "ctx_faults", "field_bits", "run_signature"]


def field_bits(limit: int) -> int:
    """Width of a field that holds 0 … limit (at least one bit)."""
    return max(1, int(limit).bit_length())


def run_signature(p: CoreParams, cmd_layout: data.Layout) -> wiring.Signature:
    """The run's parameters as the command stage drives them (``Out``), for the stages that
    read them (``In``, flipped)."""
    gmax, dmax, blk, rmax = p.max_global_tokens, p.max_dilation, p.block_size, \
        p.max_random_blocks
    members = {
        "start": Out(1),
        "running": Out(1),
        "cmd": Out(cmd_layout),
        "n": Out(p.index_bits),
        # dilation · after: the band's reach after the row (up to max_dilation · after)
        "dafter": Out(range(max(dmax * p.spec.after, 1) + 1)),
    }
    if p.group_heads > 1:
        members["nq"] = Out(p.index_bits)   # Q rows (and output rows): g · N
    if p.decode:   # the command taken with start continues the sequence
        members["cont"] = Out(1)
    if p.ctx_bits:   # the run's context (C > 1 contexts)
        members["ctx"] = Out(range(p.contexts))
    if p.sink_logits:   # the run's learned sink scores, one per query head, and whether used
        members["sinks"] = Out(data.ArrayLayout(signed(p.widths.score), p.group_heads))
        members["sink_on"] = Out(1)
    if not blk:
        members["after"] = Out(field_bits(p.spec.after))
    if dmax > 1:
        members["dil"] = Out(field_bits(dmax))
    if gmax:
        members["gcount"] = Out(range(gmax + 1))
        # the global columns of the command being taken (valid with ``start``)
        members["cmd_gcount"] = Out(range(gmax + 1))
    if blk:
        members["n_mb"] = Out(p.index_bits)    # N − b: the first token of the last block
        if rmax:
            members["rcount"] = Out(range(rmax + 1))
            members["rnd_last"] = Out(range(max(p.random_rows, 2)))   # r·b − 1 (one bit at least)
    return wiring.Signature(members)


def carried_layout(p: CoreParams) -> data.StructLayout:
    """What a context keeps of the command stage (C > 1 contexts): the sequence's rows so far
    ``n`` and the pattern fields a continue is compared with."""
    fields = {"n": unsigned(p.index_bits), "before": unsigned(field_bits(p.spec.before)),
              "after": unsigned(field_bits(p.spec.after))}
    if p.max_dilation > 1:
        fields["dil"] = unsigned(field_bits(p.max_dilation))
    if p.sink_core:
        fields["gcount"] = range(p.max_global_tokens + 1)
    if p.sink_logits:
        fields["sink_on"] = unsigned(1)
        fields["sinks"] = data.ArrayLayout(signed(p.widths.score), p.group_heads)
    return data.StructLayout(fields)


def ctx_faults(p: CoreParams, cmd) -> list:
    """``[1 when the command names a context the core has not]`` on a core of C > 1 contexts
    whose ``ctx`` field holds more (C not a power of two); else ``[]``: nothing to check."""
    if p.ctx_bits and p.contexts < 2 ** p.ctx_bits:
        return [cmd.ctx > p.contexts - 1]
    return []


def command_faults(p: CoreParams, cmd) -> list:
    """What makes the command ``cmd`` (a ``cmd`` payload view) one the core refuses, as 1-bit
    values (any one set: refused). The hardware form of :meth:`CoreParams.check_run` with
    :class:`AttentionSpec`'s own checks of a pattern: N from 1 to ``max_seq_len`` (BigBird: a
    multiple of the block, and ``(r + 5)·b`` rows for r random blocks), ``before``/``after``
    within the generated window, dilation from 1 to ``max_dilation``, at most
    ``max_global_tokens`` global tokens, in the sequence and increasing (a sink core: at most
    its sink tokens, and at most N). The core and the
    formal checker (``sim/formal.py``) both use it; tests/rtl/test_stages.py checks it against
    ``check_run`` value by value."""
    spec, hw = p.spec, p.hw
    dmax, gmax, blk, rmax = p.max_dilation, p.max_global_tokens, p.block_size, \
        p.max_random_blocks

    def over(value, limit, width):
        """``value > limit`` (no compare when the field holds nothing larger)."""
        return (value > limit) if limit < 2 ** width - 1 else 0

    seq_len = cmd.seq_len
    bad = [~seq_len.any(), over(seq_len, hw.max_seq_len, p.index_bits), *ctx_faults(p, cmd)]
    if blk:
        lb = blk.bit_length() - 1   # N must be a multiple of the block size
        if lb:
            bad.append(seq_len[:lb].any())
        if rmax:   # r random blocks exist for every query block: N >= (r + 5)·b
            r_cmd = cmd.random_blocks
            bad += [over(r_cmd, rmax, len(r_cmd)),
                    r_cmd.any() & (seq_len > 2 * blk) & (seq_len < (r_cmd + 5) * blk)]
    else:
        bad += [over(cmd.before, spec.before, len(cmd.before)),
                over(cmd.after, spec.after, len(cmd.after))]
    if dmax > 1:
        bad += [~cmd.dilation.any(), over(cmd.dilation, dmax, len(cmd.dilation))]
    if p.sink_logits:   # a sink score in the scores' range (NumberFormat.sink_scores)
        lo, hi = p.fmt.score_range(spec.head_dim)
        for h in range(p.group_heads):
            sigma = cmd.sink_scores[h]
            bad.append(cmd.sink_on & ((sigma < lo) | (sigma > hi)))
    if p.sink_core:   # at most the generated sinks, and within the sequence
        count = cmd.sink_count
        bad += [over(count, gmax, len(count)), count > seq_len]
    elif gmax and not blk:
        count, pos = cmd.global_count, cmd.global_tokens
        bad.append(over(count, gmax, len(count)))
        for k in range(gmax):   # the positions in use: in the sequence, increasing
            used = count > k
            bad.append(used & (pos[k] >= seq_len))
            if k:
                bad.append(used & (pos[k] <= pos[k - 1]))
    return bad


def continue_faults(p: CoreParams, cmd, regs: dict, n, valid) -> list:
    """What makes the continue command ``cmd`` one a decode core refuses, as 1-bit values:
    the context holds no sequence (``valid`` 0: never started, or reset since), no rows, past
    ``max_seq_len`` (``n``, the sequence's rows so far, plus ``seq_len``), a window that looks
    ahead (``after`` > 0: its keys have not arrived), or a pattern field other than the
    sequence's (``regs``: the run registers of its start — ``before``, ``after``, ``dil``,
    ``gcount``, ``sinks``, ``sink_on``). :meth:`CoreParams.check_continue` is the same rule."""
    seq_len = cmd.seq_len
    bad = [~valid, *ctx_faults(p, cmd), ~seq_len.any(), n + seq_len > p.hw.max_seq_len,
           cmd.after.any(), cmd.after != regs["after"], cmd.before != regs["before"]]
    if p.max_dilation > 1:
        bad.append(cmd.dilation != regs["dil"])
    if p.sink_core:
        bad.append(cmd.sink_count != regs["gcount"])
    if p.sink_logits:
        bad += [cmd.sink_on != regs["sink_on"],
                cmd.sink_scores.as_value() != regs["sinks"].as_value()]
    return bad


class RunControl(wiring.Component):
    """The command stage (module docstring).

    Parameters
    ----------
    params : CoreParams
    cmd_layout : data.Layout
        The ``cmd`` payload's layout (``core_layouts(params)["cmd"]``).
    """

    def __init__(self, params: CoreParams, cmd_layout: data.Layout):
        self.params = params
        super().__init__({
            "cmd": In(stream.Signature(cmd_layout)),
            "run": Out(run_signature(params, cmd_layout)),
            "done": In(1),
            "error": Out(1),
            "cycles": Out(STAT_BITS),
            **({"ctx_valid": Out(max(params.contexts, 1))} if params.decode else {}),
            **({"context": Out(context_signature(carried_layout(params)))}
               if params.ctx_bits else {}),
        })
        # not ports: a decode core's sequence window start (for swatkit prove's observer)
        if params.decode:
            self.seq_before = Signal(cmd_layout["before"].shape, name="seq_before")

    def invariants(self) -> list[tuple]:
        """``(test, message)``: what holds in every reachable state (for ``swatkit prove``)."""
        p, run = self.params, self.run
        running = run.running
        checks = [(~running | ((run.n >= 1) & (run.n <= p.hw.max_seq_len)),
                   "inv: 1 <= n <= max_seq_len")]
        if p.group_heads > 1:   # a grouped core's Q and output rows: g per position
            checks.append((~running | (run.nq == run.n * p.group_heads), "inv: nq = g · n"))
        if p.sink_logits:   # the run's sink scores (when used) in the scores' range
            lo, hi = p.fmt.score_range(p.spec.head_dim)
            checks += [(~running | ~run.sink_on | ((run.sinks[h] >= lo) & (run.sinks[h] <= hi)),
                        f"inv: the sink score of head {h} is in the scores' range")
                       for h in range(p.group_heads)]
        # the pattern's registers hold what a legal command gave them (command_faults)
        dil = run.dil if p.max_dilation > 1 else 1
        if p.max_dilation > 1:
            checks.append((~running | ((run.dil >= 1) & (run.dil <= p.max_dilation)),
                           "inv: 1 <= dil <= max_dilation"))
        if not p.block_size:
            checks += [(~running | (run.after <= p.spec.after), "inv: after <= the window's"),
                       (~running | (run.dafter == dil * run.after), "inv: dafter = dil · after")]
        if p.max_global_tokens and not p.block_size:
            checks.append((~running | ((run.gcount <= p.max_global_tokens)
                                       & (run.gcount <= run.n)),
                           "inv: gcount <= max_global_tokens, n"))
        if p.block_size:
            blk = p.block_size
            checks += [
                (~running | (run.n_mb + blk == run.n), "inv: n_mb = n - b"),
                (~running | (run.n[:blk.bit_length() - 1] == 0), "inv: n is a multiple of b"),
                (~running | (run.gcount == Mux(run.n > 2 * blk, 2 * blk, run.n)),
                 "inv: gcount = min(n, 2b)"),
            ]
            if p.max_random_blocks:
                checks += [
                    (~running | (run.rcount <= p.max_random_blocks),
                     "inv: rcount <= max_random_blocks"),
                    (~running | ~run.rcount.any()
                     | (run.rnd_last == run.rcount * blk - 1),
                     "inv: rnd_last = rcount · b - 1"),
                    (~running | ~run.rcount.any() | (run.n <= 2 * blk)
                     | (run.n >= (run.rcount + 5) * blk),
                     "inv: N holds the random blocks"),
                ]
        return checks

    def _latch(self, m: Module, regs: dict, running, n):
        """The statements of a command that starts a run: its length and pattern latched."""
        p, cmd, run = self.params, self.cmd.payload, self.run
        dmax, gmax, blk, rmax = p.max_dilation, p.max_global_tokens, p.block_size, \
            p.max_random_blocks
        d_r = cmd.dilation if dmax > 1 else 1
        m.d.sync += [self.error.eq(0), running.eq(1), n.eq(cmd.seq_len)]
        if p.group_heads > 1:
            m.d.sync += regs["nq"].eq(cmd.seq_len * p.group_heads)
        if p.sink_logits:
            m.d.sync += [regs["sinks"].eq(cmd.sink_scores),
                         regs["sink_on"].eq(cmd.sink_on)]
        if blk:
            m.d.sync += regs["n_mb"].eq(cmd.seq_len - blk)
            if rmax:
                m.d.sync += [regs["rcount"].eq(cmd.random_blocks),
                             regs["rnd_last"].eq(cmd.random_blocks * blk - 1)]
        else:
            m.d.sync += [regs["after"].eq(cmd.after), regs["dafter"].eq(d_r * cmd.after)]
        if dmax > 1:
            m.d.sync += regs["dil"].eq(cmd.dilation)
        if gmax:
            m.d.sync += regs["gcount"].eq(run.cmd_gcount)

    def _continue_faults(self, regs: dict, n, valid) -> list:
        """:func:`continue_faults` of the command on offer, against the sequence of its context:
        the stage's registers (one context) or the named context's record (C > 1)."""
        p, cmd = self.params, self.cmd.payload
        if not p.ctx_bits:
            return continue_faults(p, cmd, regs, n, valid)
        rec = self.context.load
        named = {"before": rec.before, "after": rec.after}
        for name in ("dil", "gcount", "sinks", "sink_on"):
            if name in regs:
                named[name] = getattr(rec, name)
        # (a decode rather than a shift, which lint finds too wide; a ctx the field holds
        # beyond C − 1 reads 0, and ctx_faults refuses it)
        bit = Cat(*[valid[c] & (cmd.ctx == c) for c in range(p.contexts)]).any()
        return continue_faults(p, cmd, named, rec.n, bit)

    def _start_or_continue(self, m: Module, regs: dict, running, n):
        """The statements of a legal command on a decode core: a start latches the pattern
        and makes its context valid; a continue keeps the pattern and adds ``seq_len`` rows to
        the sequence's (C > 1: those of the named context's record, loaded)."""
        p, cmd, run, valid = self.params, self.cmd.payload, self.run, self._valid
        with m.If(cmd.cont):   # the sequence goes on: its pattern stays
            if p.ctx_bits:   # (the record's pattern equals the command's: latched from it)
                self._latch(m, regs, running, n)
                m.d.sync += regs["before"].eq(cmd.before)
                total = self.context.load.n + cmd.seq_len
            else:
                total = n + cmd.seq_len
            m.d.sync += [self.error.eq(0), running.eq(1), n.eq(total)]
            if p.group_heads > 1:
                m.d.sync += regs["nq"].eq(total * p.group_heads)
        with m.Else():
            if p.ctx_bits:
                m.d.sync += regs["before"].eq(cmd.before)
                for c in range(p.contexts):
                    with m.If(cmd.ctx == c):
                        m.d.sync += valid[c].eq(1)
            else:
                m.d.sync += [valid.eq(1), regs["before"].eq(cmd.before)]
            self._latch(m, regs, running, n)
        if p.ctx_bits:
            m.d.sync += run.ctx.eq(cmd.ctx)

    def elaborate(self, platform):
        m = Module()
        p, run = self.params, self.run
        gmax, blk = p.max_global_tokens, p.block_size
        cmd = self.cmd.payload
        m.d.comb += run.cmd.eq(cmd)
        if blk:
            # the global tokens are the first and last blocks (all rows when N <= 2b)
            m.d.comb += run.cmd_gcount.eq(Mux(cmd.seq_len > 2 * blk, 2 * blk, cmd.seq_len))
        elif p.sink_core:
            m.d.comb += run.cmd_gcount.eq(cmd.sink_count)
        elif gmax:
            m.d.comb += run.cmd_gcount.eq(cmd.global_count)

        running = Signal(name="running")
        n = Signal(p.index_bits, name="n")
        m.d.comb += [self.cmd.ready.eq(~running), run.running.eq(running), run.n.eq(n)]
        regs = {}
        for name in ("after", "dil", "gcount", "n_mb", "rcount", "rnd_last", "dafter", "nq",
                     "sinks", "sink_on"):
            if hasattr(run, name):
                regs[name] = (Signal(run.sinks.shape(), name=name) if name == "sinks"
                              else Signal.like(getattr(run, name), name=name))
                m.d.comb += getattr(run, name).eq(regs[name])
        if p.decode:   # the sequence's window start, and whether there is a sequence (C > 1:
            # bit c, context c's)
            regs["before"] = self.seq_before
            self._valid = valid = Signal(max(p.contexts, 1), name="ctx_valid")
            m.d.comb += [self.ctx_valid.eq(valid), run.cont.eq(cmd.cont)]
        with m.If(self.cmd.valid & ~running):
            refuse = Cat(*command_faults(p, cmd)).any()
            if p.decode:
                refuse = Mux(cmd.cont, Cat(*self._continue_faults(regs, n, valid)).any(),
                             refuse)
            with m.If(refuse):
                m.d.sync += self.error.eq(1)
            with m.Else():
                m.d.comb += run.start.eq(1)
                if p.decode:
                    self._start_or_continue(m, regs, running, n)
                else:
                    self._latch(m, regs, running, n)
        with m.If(running & self.done):
            m.d.sync += running.eq(0)
        if p.ctx_bits:   # (loaded from the store never: a continue reads its record itself)
            carried = {"n": n, "before": regs["before"], "after": regs["after"]}
            carried.update({k: regs[k] for k in ("dil", "gcount", "sinks", "sink_on")
                            if k in regs})
            carry(m, self.context, carried, None)
        cycles = Signal(STAT_BITS, name="stat_cycles")
        m.d.comb += self.cycles.eq(cycles)
        with m.If(running):
            m.d.sync += cycles.eq(cycles + 1)
        with m.If(run.start):
            m.d.sync += cycles.eq(0)
        state_invariants(m, platform, self.invariants())
        return m

