"""The on-board self-test: a SWAT core, its test vectors and expected output in ROM, a checker.

What it does: after reset (and again on every ``start`` pulse) :class:`SelfTest` issues one run
of ``N`` rows to a :class:`~swatkit.rtl.SwatCore`, streams Q and K/V rows from ROMs on the core's
two input streams, and compares every output row with the expected row, also from ROM. The
vectors come from a seed (:func:`make_vectors`); the expected rows are
:func:`swatkit.golden.fixed_point_attention` of them, so a pass means the core on the board is
bit-exact to the golden model for that workload. The result is shown on status outputs (mapped to
LEDs by :class:`BoardTop`) and printed as one line over a UART where the board has one::

    SWAT PASS rows=0020/0020 bad=0000 first=FFFF cycles=00000A3C

(``FAIL``: some rows differ, ``first`` is the first such row; ``HANG``: no output row for
``timeout`` cycles; ``EROR``: the core rejected the command. All numbers are hexadecimal;
``cycles`` counts from the command to the last row checked.)

Streams: the Q and K/V feeders are independent producers (the core's row-arrival contract holds
for any interleaving of them); each holds ``valid`` and its payload until the transfer. The
checker takes one output row every other cycle at most (it reads the expected row from a
synchronous ROM), which back-pressures the core's ``o`` stream.

Amaranth 0.5 has no UART in its standard library; :class:`UARTTx` is a minimal 8N1 transmitter.

Simulation, from reset to the end of the result line: :func:`simulate` in Amaranth's simulator
(a few hundred cycles per second: small runs), :func:`simulate_verilator` in Verilator (the
Verilog of the board build, with the device family's multipliers and memory banks; a build of
20-40 s, then ~250,000 cycles per second: the boards' full-size runs). Both return a
:class:`SelfTestResult`, equal field for field for the same self-test.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import tempfile
import time
import zlib
from dataclasses import dataclass, replace
from pathlib import Path
from types import SimpleNamespace

import numpy as np
from amaranth import Cat, Const, Elaboratable, Module, Mux, Signal, Value
from amaranth.lib import enum, io, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from swatkit.golden import fixed_point_attention
from swatkit.golden.checks import check_int
from swatkit.golden.numerics import clog2
from swatkit.rtl import CoreParams, SwatCore, core_layouts
from swatkit.rtl.core import command
from swatkit.rtl.harness import SwatHarness
from swatkit.rtl.lfsr import lfsr_bits, lfsr_step_hdl
from swatkit.rtl.lfsr import lfsr_seed as load_seed
from swatkit.rtl.units import covered_select
from swatkit.support import build_cache

__all__ = [
    "DECODE_MESSAGE_LEN",
    "LFSR_MESSAGE_LEN",
    "LFSR_SEEDS",
    "MAX_LFSR_ROWS",
    "MAX_TEST_ROWS",
    "MODES",
    "SINK_SEED",
    "STATUS_NAMES",
    "BoardTop",
    "SelfTest",
    "SelfTestResult",
    "SimRun",
    "UARTTx",
    "Vectors",
    "crc_bytes",
    "decode_refusal",
    "decode_uart",
    "lfsr_bits",
    "lfsr_elements",
    "lfsr_seed",
    "make_decode_vectors",
    "make_lfsr_vectors",
    "make_vectors",
    "rom_rows_limit",
    "signature",
    "simulate",
    "simulate_verilator",
    "sink_bits",
]

MAX_TEST_ROWS = 4096    # rows of one ROM-mode run (the ROMs hold every row)
MAX_LFSR_ROWS = 0xFFFF  # rows of one LFSR-mode run (the 16-bit row counter)
MODES = ("rom", "lfsr", "decode")
# the Q, K and V generators' seeds are the run's seed XOR these (0 becomes 1), as SwatHarness mixes
LFSR_SEEDS = SwatHarness.SEEDS
# decode mode: the sink scores' generator is seeded with the run's seed XOR this (0 becomes 1)
SINK_SEED = 0x51AC5EED
STATUS_NAMES = ("passed", "failed", "busy", "alive", "hang", "error")


# -- test vectors ---------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Vectors:
    """Inputs and expected output of one self-test run.

    Members
    -------
    q : int64 array (g·rows, head_dim)
        Signed ``data_bits`` values, in the ``q`` stream's order: a grouped core's g query
        heads of position 0, then of position 1, … (one head: the rows).
    k, v : int64 arrays (rows, head_dim)
        Signed ``data_bits`` values (the run's positions; a sink core takes its first S rows
        again, first, as its resident sink columns).
    expected : int64 array (g·rows, head_dim)
        What the core must output (signed ``out_bits``), in the ``o`` stream's order.
    seed : int
        The seed ``q, k, v`` were drawn from (``None`` for hand-made vectors).
    sink_scores : tuple of int or None
        A core that takes learned sink logits: the run's sink scores, one per query head
        (:meth:`~swatkit.golden.NumberFormat.sink_scores`), on its command.
    steps : int
        Decode mode: the last ``steps`` positions are decode steps (one row each) after a
        prefill of ``rows - steps`` rows; 0 in the other modes.
    """

    q: np.ndarray
    k: np.ndarray
    v: np.ndarray
    expected: np.ndarray
    seed: int | None = None
    crc: int | None = None
    sink_scores: tuple[int, ...] | None = None
    steps: int = 0

    @property
    def prefill(self) -> int:
        """Decode mode: the rows of the prefill run (``rows - steps``)."""
        return self.rows - self.steps

    @property
    def rows(self) -> int:
        """The run's length N (its positions)."""
        return len(self.k)

    @property
    def out_rows(self) -> int:
        """Output rows of the run: N times the query heads per K/V head."""
        return len(self.expected)

    def corrupted(self, row: int, column: int = 0) -> Vectors:
        """A copy whose expected ``row`` differs in one element (to check that a fault fails)."""
        bad = self.expected.copy()
        bad[row, column] = bad[row, column] + 1 if bad[row, column] <= 0 else bad[row, column] - 1
        return replace(self, expected=bad)

    def corrupted_signature(self, bit: int = 0) -> Vectors:
        """A copy whose expected CRC (LFSR mode) has ``bit`` flipped: the self-test must fail."""
        if self.crc is None:
            raise ValueError("these vectors have no signature (not LFSR-mode vectors)")
        return replace(self, crc=self.crc ^ (1 << bit))


def rom_rows_limit(params: CoreParams) -> int:
    """Most rows (positions) of a ROM-mode run of the core ``params``: its ``max_seq_len``, and
    :data:`MAX_TEST_ROWS` Q and output rows in ROM (a grouped core's g per position)."""
    return min(params.hw.max_seq_len, MAX_TEST_ROWS // params.group_heads)


def make_vectors(params: CoreParams, rows: int, seed: int) -> Vectors:
    """Uniform random Q, K, V over the whole signed ``data_bits`` range from ``seed`` (a
    grouped core: Q of each query head of the group), on a core that takes learned sink
    logits a sink score per query head (in a sixth of the scores' range each side, as the
    regression draws them), and their :func:`~swatkit.golden.fixed_point_attention` output, in
    the streams' order (:class:`Vectors`). A sink core's run has its S sink tokens.

    Raises
    ------
    TypeError, ValueError
        ``rows`` is not an integer in ``1 .. rom_rows_limit(params)``, or fewer than the sink
        core's sink tokens.
    """
    limit = rom_rows_limit(params)
    per = (f" ({params.group_heads} Q and output rows per position)"
           if params.group_heads > 1 else "")
    check_int("test_rows", rows, 1, limit, why=f"the core's max_seq_len and the ROM limit{per}")
    if rows < params.spec.sink_tokens:
        raise ValueError(f"test_rows must be at least the core's sink tokens "
                         f"({params.spec.sink_tokens}), not {rows}")
    fmt, g, d = params.fmt, params.group_heads, params.spec.head_dim
    rng = np.random.default_rng(seed)
    shape = (rows, d)
    q, k, v = (rng.integers(fmt.data_min, fmt.data_max + 1, size=shape, dtype=np.int64)
               for _ in range(3))
    spec = params.spec.replace(seq_len=rows, global_tokens=())
    scores = sinks = None
    if params.sink_logits:
        lo, hi = fmt.score_range(d)
        scores = tuple(int(x) for x in rng.integers(lo // 6, hi // 6 + 1, g))
        sinks = np.asarray(scores, dtype=np.float64) * fmt.score_unit(d)
    if g == 1:
        expected = fixed_point_attention(q, k, v, spec, fmt, sink_logits=sinks).out
        return Vectors(q, k, v, expected, seed, None, scores)
    q = np.stack([q] + [rng.integers(fmt.data_min, fmt.data_max + 1, size=shape,
                                     dtype=np.int64) for _ in range(g - 1)])
    expected = fixed_point_attention(q, k[None], v[None], spec, fmt, sink_logits=sinks).out
    # the streams' order: position 0's heads, then position 1's, …
    q, expected = (x.transpose(1, 0, 2).reshape(g * rows, d) for x in (q, expected))
    return Vectors(q, k, v, expected, seed, None, scores)


# -- LFSR mode: inputs generated on chip, output folded into a CRC-32 ---------------------------
#
# The generator (the NumPy form here, the HDL form in _LfsrFeeder): the project's LFSR
# (swatkit.rtl.lfsr: lfsr_bits and lfsr_step_hdl), loaded with a seed (0 becomes 1; the state
# after the load is state 0). Its bit stream is bit 0 of states 0, 1,
# 2, ...; element e of a stream is the ``data_bits`` bits e·B … e·B+B−1 of that bit stream (B =
# data_bits; the first bit is the least significant), read as two's complement, and row r holds
# elements r·head_dim … r·head_dim+head_dim−1 (element j of the row at position j). Q, K and V
# are three streams with seeds ``seed ^ LFSR_SEEDS[0, 1, 2]``.


def lfsr_elements(seed: int, rows: int, head_dim: int, bits: int) -> np.ndarray:
    """The ``(rows, head_dim)`` signed ``bits``-bit elements of the stream seeded with ``seed``
    (int64; see the generator above)."""
    stream_bits = lfsr_bits(seed, rows * head_dim * bits).reshape(rows, head_dim, bits)
    value = (stream_bits.astype(np.int64) << np.arange(bits, dtype=np.int64)).sum(axis=2)
    return np.where(value >= 1 << (bits - 1), value - (1 << bits), value)


def crc_bytes(out: np.ndarray, out_bits: int) -> bytes:
    """The bytes the LFSR mode's CRC runs over: every output element in order (row by row,
    element 0 first), each as ``ceil(out_bits / 8)`` bytes of its two's complement value,
    sign-extended, least significant byte first."""
    width = -(-out_bits // 8)
    flat = np.ascontiguousarray(np.asarray(out, dtype="<i8").reshape(-1))
    return flat.view(np.uint8).reshape(-1, 8)[:, :width].tobytes()


def signature(out: np.ndarray, out_bits: int) -> int:
    """The CRC-32 of the output rows (``zlib.crc32`` of :func:`crc_bytes`: the reflected
    polynomial 0xEDB88320, initial value and final XOR 0xFFFFFFFF)."""
    return zlib.crc32(crc_bytes(out, out_bits))


def lfsr_refusal(params: CoreParams) -> str:
    """Why the LFSR self-test cannot run the core ``params`` (a grouped, sink or sink-logit
    core): its generators feed one query head's rows, no sink rows and no sink scores."""
    what = (f"{params.heads} query heads on {params.kv_heads} K/V" if params.group_heads > 1
            else f"sink tokens ({params.spec.sink_tokens})" if params.sink_core
            else "learned sink logits")
    return (f"selftest must be rom for a core with {what}, not lfsr (the LFSR generators feed "
            "one query head's rows, no sink columns and no sink scores)")


def make_lfsr_vectors(params: CoreParams, rows: int, seed: int) -> Vectors:
    """The LFSR mode's Q, K, V (the on-chip generator's output, computed in NumPy), their
    :func:`~swatkit.golden.fixed_point_attention` output and its :func:`signature` (``crc``).

    Raises
    ------
    TypeError, ValueError
        ``rows`` is not an integer in ``1 .. min(max_seq_len, MAX_LFSR_ROWS)``.
    """
    limit = min(params.hw.max_seq_len, MAX_LFSR_ROWS)
    check_int("test_rows", rows, 1, limit,
              why="the core's max_seq_len and the 16-bit row counter")
    if params.group_heads > 1 or params.sink_core or params.sink_logits:
        raise ValueError(lfsr_refusal(params))
    fmt, d = params.fmt, params.spec.head_dim
    q, k, v = (lfsr_elements(lfsr_seed(seed, i), rows, d, fmt.data_bits) for i in range(3))
    spec = params.spec.replace(seq_len=rows, global_tokens=())
    expected = fixed_point_attention(q, k, v, spec, fmt).out
    return Vectors(q, k, v, expected, seed, signature(expected, fmt.out_bits))


def lfsr_seed(seed: int, stream: int) -> int:
    """The LFSR seed of ``stream`` (0: Q, 1: K, 2: V) for the run's ``seed``."""
    return load_seed(seed ^ LFSR_SEEDS[stream])


# -- decode mode: a prefill, then decode steps, on the LFSR mode's generators --------------------
#
# The Q generator's stream holds the g query heads' rows in the q stream's order (position 0's
# heads 0 … g−1, then position 1's, …): row r of the stream is head r mod g of position r // g.
# K and V as in LFSR mode. A core that takes learned sink logits gets one score per query head on
# its command (a constant of the build): the g elements of one more generator (seed XOR
# SINK_SEED), each of ``sink_bits`` bits, within a sixth of the scores' range as the regression
# draws them.


def decode_refusal(params: CoreParams) -> str | None:
    """Why the decode self-test cannot run the core ``params`` (``None`` if it can): it needs a
    decode core (``contexts`` >= 1) with a causal window, and feeds no sink rows."""
    if not params.decode:
        return ("selftest decode needs a decode core (contexts >= 1): its command continues a "
                "sequence")
    if params.spec.after:
        return (f"selftest decode needs a causal window, not one with {params.spec.after} keys "
                "after the row (a decode step's later keys have not arrived)")
    if params.sink_core:
        return (f"selftest decode must have no sink tokens, not {params.spec.sink_tokens} (its "
                "generators feed no sink rows; learned sink logits are taken)")
    return None


def sink_bits(params: CoreParams) -> int:
    """Bits of each generated sink score: the largest two's complement width within a sixth of
    the scores' range (:meth:`~swatkit.golden.NumberFormat.score_range`)."""
    lo, hi = params.fmt.score_range(params.spec.head_dim)
    return max(1, min(-lo // 6, hi // 6).bit_length())


def make_decode_vectors(params: CoreParams, prefill: int, steps: int, seed: int) -> Vectors:
    """The decode mode's inputs (the generators' output, computed in NumPy) over the ``prefill +
    steps`` positions, the sink scores, the one-run :func:`~swatkit.golden.fixed_point_attention`
    output in the ``o`` stream's order (a prefill run and decode steps must give the same rows,
    docs/rtl.md "Decode") and its :func:`signature` (``crc``).

    Raises
    ------
    TypeError, ValueError
        ``prefill`` or ``steps`` is not a positive integer, their sum exceeds ``max_seq_len``
        or the 16-bit row counter (g output rows per position), or the core cannot decode
        (:func:`decode_refusal`).
    """
    why = decode_refusal(params)
    if why is not None:
        raise ValueError(why)
    g, fmt, d = params.group_heads, params.fmt, params.spec.head_dim
    check_int("test_rows", prefill, 1)
    check_int("decode_steps", steps, 1)
    rows = prefill + steps
    limit = min(params.hw.max_seq_len, MAX_LFSR_ROWS // g)
    if rows > limit:
        raise ValueError(f"test_rows + decode_steps must be at most {limit} (the core's "
                         f"max_seq_len and the 16-bit row counter, {g} output rows per "
                         f"position), not {prefill} + {steps}")
    q = lfsr_elements(lfsr_seed(seed, 0), g * rows, d, fmt.data_bits)
    k, v = (lfsr_elements(lfsr_seed(seed, i), rows, d, fmt.data_bits) for i in (1, 2))
    spec = params.spec.replace(seq_len=rows, global_tokens=())
    scores = sinks = None
    if params.sink_logits:
        scores = tuple(int(x) for x in lfsr_elements(load_seed(seed ^ SINK_SEED), 1, g,
                                                      sink_bits(params))[0])
        sinks = np.asarray(scores, dtype=np.float64) * fmt.score_unit(d)
    heads = q.reshape(rows, g, d).transpose(1, 0, 2)
    out = fixed_point_attention(heads, k[None], v[None], spec, fmt, sink_logits=sinks).out
    expected = out.reshape(g, rows, d).transpose(1, 0, 2).reshape(g * rows, d)
    return Vectors(q, k, v, expected, seed, signature(expected, fmt.out_bits), scores, steps)


# -- UART transmitter -----------------------------------------------------------------------------


class UARTTx(wiring.Component):
    """Minimal UART transmitter: 8 data bits, no parity, one stop bit, LSB first.

    Parameters
    ----------
    divisor : int
        Clock cycles per bit (``round(clock_hz / baud)``), at least 1.

    Members
    -------
    data : In(stream.Signature(8))  one byte per beat; ``ready`` while the line is idle.
    tx : Out(1)  the serial line (idles high); driven straight from a register.
    """

    def __init__(self, divisor: int):
        self._MustUse__silence = True  # until checked: no "created but never used" warning
        check_int("divisor", divisor, 1)
        self._MustUse__silence = False
        self.divisor = divisor
        super().__init__({"data": In(stream.Signature(8)), "tx": Out(1, init=1)})

    def elaborate(self, platform):
        m = Module()
        frame = Signal(10, init=0x3FF)        # start bit, 8 data bits, stop bit; shifts out LSB
        left = Signal(range(11))              # bits of the frame still to send
        timer = Signal(range(self.divisor))
        m.d.comb += [self.tx.eq(frame[0]), self.data.ready.eq(left == 0)]
        with m.If((left == 0) & self.data.valid):
            m.d.sync += [frame.eq(Cat(Const(0, 1), self.data.payload, Const(1, 1))),
                         left.eq(10), timer.eq(self.divisor - 1)]
        with m.Elif((left != 0) & (timer == 0)):
            m.d.sync += [frame.eq(Cat(frame[1:], Const(1, 1))), left.eq(left - 1),
                         timer.eq(self.divisor - 1)]
        with m.Elif(left != 0):
            m.d.sync += timer.eq(timer - 1)
        return m


# -- the self-test ----------------------------------------------------------------------------


class _State(enum.Enum, shape=3):
    IDLE = 0
    CMD = 1
    RUN = 2
    REPORT = 3
    DONE = 4


def _hex(value, digits: int) -> list:
    """ASCII hex digits of ``value`` (most significant first), zero-extended to ``digits``."""
    v = Cat(value, Const(0, max(0, 4 * digits - len(value))))
    out = []
    for i in reversed(range(digits)):
        nib = v[4 * i:4 * i + 4]
        out.append(Mux(nib < 10, nib + ord("0"), nib + (ord("A") - 10))[:8])
    return out


class _RomFeeder:
    """Drives a stream from a synchronous ROM: one row per beat, rows ``0 .. n-1`` in order.

    ``valid`` is a register; the read port's enable drops while a beat waits for ``ready``, so
    the payload (the read data) holds until the transfer.
    """

    def __init__(self, m: Module, name: str, rom: memory.Memory, port, n: int, run, clear):
        rd = rom.read_port()
        count = Signal(range(n + 1), name=f"{name}_count")
        valid = Signal(name=f"{name}_valid")
        take = ~valid | port.ready
        m.d.comb += [rd.addr.eq(count), rd.en.eq(take), port.valid.eq(valid),
                     port.payload.eq(rd.data)]
        with m.If(clear):
            m.d.sync += [count.eq(0), valid.eq(0)]
        with m.Elif(take):
            more = run & (count < n)
            m.d.sync += valid.eq(more)
            with m.If(more):
                m.d.sync += count.eq(count + 1)


def lfsr_next(m: Module, state, bits: int, name: str):
    """HDL form of the generator: ``bits`` LFSR steps of ``state`` unrolled (one signal per
    step, so that the expression stays linear); returns the element (bit 0 of each state on the
    way, the first one least significant) and the next state."""
    out = []
    for i in range(bits):
        out.append(state[0])
        step = Signal(32, name=f"{name}_step{i}")
        m.d.comb += step.eq(lfsr_step_hdl(state))
        state = step
    return Cat(*out), state


class _LfsrFeeder:
    """Drives a stream with rows from the generator: one element per cycle (per field) into a
    shift register, then the whole row into the payload register (``head_dim + 1`` cycles per
    row), rows ``0 .. n-1``; ``valid`` and the payload hold until the transfer.

    ``fields``: (payload field, seed) per LFSR, e.g. ``[(q, seed_q)]`` or ``[(kv.k, seed_k),
    (kv.v, seed_v)]``; all advance together.
    """

    def __init__(self, m: Module, name: str, port, fields, d: int, bits: int, n: int, clear):
        filled = Signal(range(d + 1), name=f"{name}_filled")
        count = Signal(range(n + 1), name=f"{name}_count")
        valid = Signal(name=f"{name}_valid")
        # filled == d and count < n as registers: the payload's enable (``deliver``, the
        # core's late ready and these) is one LUT before a row-wide register
        full = Signal(name=f"{name}_full")
        more = Signal(init=1, name=f"{name}_more")
        m.d.comb += port.valid.eq(valid)
        with m.If(valid & port.ready):
            m.d.sync += valid.eq(0)
        # (the generator runs ahead from the clear, not from the run's start: the rows and their
        # order are the same, and the shift registers' enable is one LUT after registers; with
        # ``run`` in it, the path from the state register was the 4 × 8 build's critical one)
        generate = ~full & more
        deliver = full & (~valid | port.ready)
        for index, (field, seed) in enumerate(fields):
            state = Signal(32, init=seed, name=f"{name}{index}_lfsr")
            acc = Signal(d * bits, name=f"{name}{index}_acc")
            row = Signal(d * bits, name=f"{name}{index}_row")
            m.d.comb += field.eq(row)
            element, nxt = lfsr_next(m, state, bits, f"{name}{index}")
            with m.If(clear):
                m.d.sync += state.eq(seed)
            with m.Elif(generate):
                m.d.sync += [state.eq(nxt), acc.eq(Cat(acc[bits:], element))]
            with m.If(deliver):   # (never with generate; after a clear the row is not valid)
                m.d.sync += row.eq(acc)
        with m.If(clear):
            m.d.sync += [filled.eq(0), count.eq(0), valid.eq(0), full.eq(0), more.eq(1)]
        with m.Elif(generate):
            m.d.sync += [filled.eq(filled + 1), full.eq(filled == d - 1)]
        with m.Elif(deliver):
            m.d.sync += [filled.eq(0), count.eq(count + 1), valid.eq(1), full.eq(0),
                         more.eq(count + 1 < n)]


def crc32_byte(m: Module, crc, byte):
    """HDL form of one byte of CRC-32 (reflected, polynomial 0xEDB88320; no final XOR), one
    signal per bit step."""
    for i in range(8):
        step = Signal(32, name=f"crc_step{i}")
        m.d.comb += step.eq((crc >> 1) ^ ((crc[0] ^ byte[i]).replicate(32) & 0xEDB88320))
        crc = step
    return crc


class SelfTest(wiring.Component):
    """A :class:`~swatkit.rtl.SwatCore` checked against expected rows held in ROM (``mode
    "rom"``), or against the CRC-32 of its output on inputs generated on chip (``"lfsr"``).

    Parameters
    ----------
    params : CoreParams
        The core's configuration, handed down whole (see :class:`~swatkit.rtl.SwatCore`).
    vectors : Vectors
        Inputs and expected output; ``vectors.rows`` is the ``seq_len`` of the run. In LFSR
        mode only ``rows``, ``seed`` and ``crc`` are used (:func:`make_lfsr_vectors`): the
        inputs come from the on-chip generator, and ``crc`` is the constant it compares with.
    mode : str
        ``"rom"`` or ``"lfsr"`` (see the module docstring).
    uart_divisor : int or None
        Clock cycles per UART bit; ``None`` leaves ``tx`` idle (boards without a UART).
    timeout : int or None
        Cycles without an output row after which the test stops with ``hang``; by default
        ``16·(rounds·groups + 64) + 4096``, in LFSR mode plus ``(after + 2)·(head_dim + 1)``
        (the K/V rows generated before the first output row).
    rom_style : str or None
        Yosys ``rom_style`` of the three ROMs: ``"block"`` (the default) keeps Yosys from
        building the wide, shallow ROMs from LUTs; ``None`` leaves the choice to Yosys.
    fault : (int, int) or None
        LFSR mode, for tests: flip bit 0 of output element ``fault[1]`` of row ``fault[0]``
        before it enters the CRC (a wrong output element; the test must fail).

    Members
    -------
    start : In(1)     a rising edge restarts the test once it has reported (it also runs once
        after reset; after a hang only a reset restarts the core).
    status : Out     ``passed`` (all rows equal / the signature equal), ``failed`` (a row or
        the signature differs, the core rejected the command, raised ``rule_error``, or it
        hung), ``busy``, ``hang``,
        ``error`` (the core's error flag), 1 bit each; ``passed`` and ``failed`` hold until the
        next start.
    rows : Out(16)    output rows checked.
    bad : Out(16)     ROM mode: rows that differ from the expected rows (saturates).
    first_bad : Out(16)  ROM mode: the first such row (all ones when none).
    crc : Out(32)     LFSR mode: the CRC-32 of the output rows so far (final XOR applied).
    cycles : Out(32)  cycles from the command to the last row checked.
    tx : Out(1)       UART line with the result line (see the module docstring).

    Raises
    ------
    ValueError
        The vectors do not match the configuration (shape, rows above ``max_seq_len``), an
        unknown mode, LFSR-mode vectors without a seed or CRC.
    """

    def __init__(self, params: CoreParams, vectors: Vectors, *, mode: str = "rom",
                 uart_divisor: int | None = None,
                 timeout: int | None = None, rom_style: str | None = "block",
                 fault: tuple[int, int] | None = None):
        self._MustUse__silence = True  # until the arguments are checked
        if not isinstance(params, CoreParams):
            raise TypeError(f"params must be a CoreParams, not {params!r}")
        p = self.params = params
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
        if mode == "lfsr" and (p.group_heads > 1 or p.sink_core or p.sink_logits):
            raise ValueError(lfsr_refusal(p))
        if mode == "decode" and decode_refusal(p) is not None:
            raise ValueError(decode_refusal(p))
        shape = (vectors.rows, p.spec.head_dim)
        grouped = (p.group_heads * vectors.rows, p.spec.head_dim)
        for name in ("q", "k", "v", "expected"):
            want = grouped if name in ("q", "expected") else shape
            if getattr(vectors, name).shape != want:
                raise ValueError(f"vectors.{name} has shape {getattr(vectors, name).shape}, "
                                 f"expected {want}")
        limit = (rom_rows_limit(p) if mode == "rom" else min(p.hw.max_seq_len, MAX_LFSR_ROWS)
                 if mode == "lfsr" else min(p.hw.max_seq_len, MAX_LFSR_ROWS // p.group_heads))
        if not 1 <= vectors.rows <= limit:
            raise ValueError(f"vectors have {vectors.rows} rows; the self-test runs 1..{limit}")
        if vectors.rows < p.spec.sink_tokens:
            raise ValueError(f"vectors have {vectors.rows} rows, fewer than the core's sink "
                             f"tokens ({p.spec.sink_tokens})")
        if p.sink_logits and (vectors.sink_scores is None
                              or len(vectors.sink_scores) != p.group_heads):
            raise ValueError(f"vectors must carry one sink score per query head "
                             f"({p.group_heads}) for a core that takes learned sink logits, "
                             f"not {vectors.sink_scores}")
        if mode == "lfsr" and (vectors.seed is None or vectors.crc is None):
            raise ValueError("LFSR mode needs vectors with a seed and a CRC "
                             "(make_lfsr_vectors)")
        if mode == "decode" and (vectors.seed is None or vectors.crc is None
                                 or not 1 <= vectors.steps < vectors.rows):
            raise ValueError("decode mode needs vectors with a seed, a CRC and decode steps "
                             "after a prefill (make_decode_vectors)")
        self._MustUse__silence = False
        self.core = SwatCore(p)
        self.vectors, self.mode, self.rom_style, self.fault = vectors, mode, rom_style, fault
        self.uart = None if uart_divisor is None else UARTTx(uart_divisor)
        self.timeout = timeout if timeout is not None else (
            16 * (p.rounds * p.groups + 64) + 4096
            + (0 if mode == "rom" else (p.spec.after + 2) * (p.spec.head_dim + 1)))
        super().__init__({
            "start": In(1),
            "status": Out(wiring.Signature({name: Out(1) for name in STATUS_NAMES
                                            if name != "alive"})),
            "rows": Out(16),
            "bad": Out(16),
            "first_bad": Out(16, init=0xFFFF),
            "crc": Out(32),
            "cycles": Out(32),
            "tx": Out(1, init=1),
            # decode mode: the core's busy cycles in the prefill run, and in the decode steps
            **({"pre_cycles": Out(32), "dec_cycles": Out(32)} if mode == "decode" else {}),
        })

    @property
    def cycle_limit(self) -> int:
        """A bound on the cycles from reset to the report of a run: four times every row at
        the slowest steady rate of the core (``rounds·groups`` cycles per row), the LFSR
        generators (``head_dim + 1``) and the CRC (one cycle per output byte, plus one), plus
        twice the hang ``timeout`` (a hung run reports within it). Simulations give up there."""
        return 4 * self.run_cycles + 2 * self.timeout + 1000

    @property
    def run_cycles(self) -> int:
        """The cycles of a run at the slowest steady rate of the core: every output row at
        ``rounds·groups`` cycles, or the LFSR generators' ``head_dim + 1``, or the CRC's one
        cycle per output byte plus one, whichever is slowest."""
        p = self.params
        d = p.spec.head_dim
        per_row = max(p.rounds * p.groups, d + 1, d * -(-p.fmt.out_bits // 8) + 1)
        return self.vectors.out_rows * per_row

    @property
    def line_cycles(self) -> int:
        """Cycles from the report to the end of the result line (0 without a UART)."""
        return (self.message_len + 1) * (10 * self.uart.divisor + 2) if self.uart else 0

    @property
    def message_len(self) -> int:
        """Bytes of the result line, ``"\\r\\n"`` included."""
        return {"rom": MESSAGE_LEN, "lfsr": LFSR_MESSAGE_LEN}.get(self.mode, DECODE_MESSAGE_LEN)

    def message(self, state_word) -> list:
        """The bytes of the result line (``state_word``: four ASCII byte values)."""
        text = []

        def put(s):
            text.extend(Const(ord(c), 8) for c in s)

        put("SWAT ")
        text.extend(state_word)
        put(" rows=")
        text.extend(_hex(self.rows, 4))
        put("/")
        text.extend(_hex(Const(self.vectors.out_rows, 16), 4))
        if self.mode == "rom":
            put(" bad=")
            text.extend(_hex(self.bad, 4))
            put(" first=")
            text.extend(_hex(self.first_bad, 4))
        else:
            put(" crc=")
            text.extend(_hex(self.crc, 8))
            put(" want=")
            text.extend(_hex(Const(self.vectors.crc, 32), 8))
        put(" cycles=")
        text.extend(_hex(self.cycles, 8))
        if self.mode == "decode":
            put(" pre=")
            text.extend(_hex(self.pre_cycles, 8))
            put(" dec=")
            text.extend(_hex(self.dec_cycles, 8))
        put("\r\n")
        assert len(text) == self.message_len
        return text

    def _rom_checker(self, m: Module, core, lay, n: int, run, clear):
        """ROM mode: Q, K/V from ROMs; every output row compared with the expected row.
        Returns the ``finished`` condition."""
        vec = self.vectors
        # a grouped core: g Q and output rows per position; a sink core: its S sink rows first
        # on kv (its resident columns), then the N rows
        s = self.params.spec.sink_tokens
        n_out, kv_rows = vec.out_rows, np.concatenate([np.arange(s), np.arange(n)])

        def rows_of(array):
            return [[int(x) for x in row] for row in array]

        block = {"rom_style": self.rom_style} if self.rom_style else {}
        qrom = memory.Memory(shape=lay["q"], depth=n_out, init=rows_of(vec.q), attrs=block)
        kvrom = memory.Memory(shape=lay["kv"], depth=len(kv_rows), init=[
            {"k": [int(x) for x in vec.k[r]], "v": [int(x) for x in vec.v[r]]}
            for r in kv_rows], attrs=block)
        orom = memory.Memory(shape=lay["o"], depth=n_out, init=rows_of(vec.expected),
                             attrs=block)
        m.submodules.qrom, m.submodules.kvrom, m.submodules.orom = qrom, kvrom, orom
        _RomFeeder(m, "qfeed", qrom, core.q, n_out, run, clear)
        _RomFeeder(m, "kvfeed", kvrom, core.kv, len(kv_rows), run, clear)

        # -- checker: capture a row; next cycle XOR it with the expected row, then reduce the
        # difference to one mismatch bit, then count it (registered steps: a row is hundreds of
        # bits wide, and a flat compare would be the longest path of the design)
        erd = orom.read_port()
        got = Signal(lay["o"])
        pending = Signal()
        diff = Signal(len(got.as_value()))
        diff_valid = Signal()
        diff_row = Signal.like(self.rows)
        mismatch = Signal()
        mismatch_valid = Signal()
        mismatch_row = Signal.like(self.rows)
        m.d.comb += [core.o.ready.eq(run & ~pending),
                     erd.addr.eq(self.rows[:max(clog2(n_out), 1)]),
                     erd.en.eq(core.o.ready)]
        with m.If(clear):
            m.d.sync += [pending.eq(0), diff_valid.eq(0), mismatch_valid.eq(0), self.rows.eq(0),
                         self.bad.eq(0), self.first_bad.eq(0xFFFF)]
        with m.Else():
            with m.If(core.o.valid & core.o.ready):
                m.d.sync += [got.eq(core.o.payload), pending.eq(1)]
            with m.If(pending):
                m.d.sync += [pending.eq(0), self.rows.eq(self.rows + 1)]
            m.d.sync += [diff_valid.eq(pending), diff.eq(got.as_value() ^ erd.data.as_value()),
                         diff_row.eq(self.rows),
                         mismatch_valid.eq(diff_valid), mismatch.eq(diff.any()),
                         mismatch_row.eq(diff_row)]
            with m.If(mismatch_valid & mismatch):
                with m.If(self.bad != 0xFFFF):
                    m.d.sync += self.bad.eq(self.bad + 1)
                with m.If(self.bad == 0):
                    m.d.sync += self.first_bad.eq(mismatch_row)
        finished = (self.rows == n_out) & ~pending & ~diff_valid & ~mismatch_valid
        return finished, self.bad == 0

    def _lfsr_checker(self, m: Module, core, n: int, run, clear):
        """LFSR mode: Q, K/V from the generators; the output rows folded into a CRC-32, one
        byte per cycle (``head_dim·ceil(out_bits/8) + 1`` cycles per row). Returns the
        ``finished`` and ``ok`` conditions."""
        p = self.params
        d, bits, obits = p.spec.head_dim, p.fmt.data_bits, p.fmt.out_bits
        seed, n_out = self.vectors.seed, self.vectors.out_rows   # (decode: g rows a position)
        _LfsrFeeder(m, "qgen", core.q, [(core.q.payload, lfsr_seed(seed, 0))], d, bits, n_out,
                    clear)
        _LfsrFeeder(m, "kvgen", core.kv, [(core.kv.payload.k, lfsr_seed(seed, 1)),
                                          (core.kv.payload.v, lfsr_seed(seed, 2))],
                    d, bits, n, clear)
        width = -(-obits // 8)
        nbytes = d * width
        shift = Signal(8 * nbytes)
        left = Signal(range(nbytes + 1))
        # left == 0 as a register: o.ready is one LUT after registers, and the row-wide shift
        # register's load enable one more (why: docs/fpga.md, "Toward 100 MHz on 2 × 8")
        empty = Signal(init=1)
        crc = Signal(32, init=0xFFFFFFFF)
        m.d.comb += [core.o.ready.eq(run & empty), self.crc.eq(~crc)]
        elements = []
        for j in range(d):
            x = Value.cast(core.o.payload[j]).as_unsigned()
            if self.fault is not None and j == self.fault[1]:
                x = (x ^ (self.rows == self.fault[0]))[:obits]
            elements.append(Cat(x, x[-1].replicate(8 * width - obits)))
        with m.If(clear):
            m.d.sync += [left.eq(0), empty.eq(1), crc.eq(0xFFFFFFFF), self.rows.eq(0)]
        with m.Elif(core.o.valid & core.o.ready):
            m.d.sync += [shift.eq(Cat(*elements)), left.eq(nbytes), empty.eq(0),
                         self.rows.eq(self.rows + 1)]
        with m.Elif(~empty):
            m.d.sync += [crc.eq(crc32_byte(m, crc, shift[:8])), shift.eq(shift >> 8),
                         left.eq(left - 1), empty.eq(left == 1)]
        finished = (self.rows == n_out) & empty
        return finished, self.crc == self.vectors.crc

    def _decode_steps(self, m: Module, core, clear):
        """Decode mode: the command's ``seq_len`` (the prefill's rows, then 1), ``first`` (the
        prefill's command; then ``cont``), ``left`` (decode steps still to command), and the
        core's busy cycles counted in ``pre_cycles`` (the prefill run) and ``dec_cycles`` (the
        steps)."""
        vec = self.vectors
        first = Signal(init=1, name="dec_first")
        left = Signal(range(vec.steps + 1), init=vec.steps, name="dec_left")
        seq_len = Signal.like(core.cmd.payload.seq_len, name="dec_seq_len")
        m.d.comb += seq_len.eq(Mux(first, vec.prefill, 1))
        with m.If(clear):
            m.d.sync += [first.eq(1), left.eq(vec.steps), self.pre_cycles.eq(0),
                         self.dec_cycles.eq(0)]
        with m.Elif(core.busy & first):
            m.d.sync += self.pre_cycles.eq(self.pre_cycles + 1)
        with m.Elif(core.busy):
            m.d.sync += self.dec_cycles.eq(self.dec_cycles + 1)
        return SimpleNamespace(first=first, left=left, seq_len=seq_len)

    def elaborate(self, platform):
        m = Module()
        n, lay = self.vectors.rows, core_layouts(self.params)
        m.submodules.core = core = self.core

        state = Signal(_State)
        go = Signal(init=1)            # run once after reset
        start_d = Signal()
        m.d.sync += start_d.eq(self.start)
        with m.If(self.start & ~start_d):
            m.d.sync += go.eq(1)

        # state == IDLE and state == RUN as registers, set and cleared with the state: they
        # drive the generators, checkers and counters spread over the die (no decode of the
        # state register in front of them; why: docs/fpga.md, "Toward 100 MHz on 2 × 8")
        clear = Signal(init=1)
        run = Signal()
        if self.mode == "rom":
            finished, ok_rows = self._rom_checker(m, core, lay, n, run, clear)
        else:
            finished, ok_rows = self._lfsr_checker(m, core, n, run, clear)

        idle = Signal(range(self.timeout + 1))
        hung = Signal()
        st = self.status
        with m.If(clear):
            m.d.sync += [self.cycles.eq(0), idle.eq(0), hung.eq(0)]
        with m.Elif(run):
            m.d.sync += self.cycles.eq(self.cycles + 1)
            with m.If(core.o.valid & core.o.ready):
                m.d.sync += idle.eq(0)
            with m.Else():
                m.d.sync += idle.eq(idle + 1)

        # -- sequencing -------------------------------------------------------------------------
        passed = Signal()
        failed = Signal()
        m.d.comb += [st.passed.eq(passed), st.failed.eq(failed),
                     st.busy.eq((state == _State.CMD) | run),
                     st.hang.eq(hung), st.error.eq(core.error)]
        fields = command(core.params, sink_scores=self.vectors.sink_scores)
        # the spec's pattern, n rows (a list: the sink scores, an array of the layout); decode
        # mode: the prefill's rows, then one row a step, continuing the sequence
        steps = self._decode_steps(m, core, clear) if self.mode == "decode" else None
        m.d.comb += [core.cmd.payload.seq_len.eq(n if steps is None else steps.seq_len),
                     *[getattr(core.cmd.payload, name).eq(
                         getattr(core.cmd.payload, name).shape().const(value)
                         if isinstance(value, list) else value)
                       for name, value in fields.items()
                       if name != "seq_len" and not (steps is not None and name == "cont")]]
        if steps is not None:
            m.d.comb += core.cmd.payload.cont.eq(~steps.first)
        msg_index = Signal(range(self.message_len + 1))
        # (an If chain, not a Switch on the 3-bit state: its unused codes would leave each
        # per-signal case statement of the Verilog incomplete, which Verilator's -Wall reports)
        with m.If(state == _State.IDLE):
            m.d.sync += [go.eq(0), passed.eq(0), failed.eq(0)]
            with m.If(go):
                m.d.sync += [state.eq(_State.CMD), clear.eq(0)]
        with m.Elif(state == _State.CMD):
            m.d.comb += core.cmd.valid.eq(1)
            with m.If(core.cmd.ready):
                m.d.sync += [state.eq(_State.RUN), run.eq(1)]
        with m.Elif(state == _State.RUN), m.If(finished | core.error | (idle == self.timeout)):
            m.d.sync += [state.eq(_State.REPORT), run.eq(0), msg_index.eq(0)]
            m.d.sync += hung.eq(~finished & ~core.error)
            # (the ROMs' sources keep the stream rule: a rule_error is a fault of the core)
            ok = finished & ~core.error & ~core.rule_error & ok_rows
            m.d.sync += [passed.eq(ok), failed.eq(~ok)]
        if steps is not None:   # a run has ended and steps are left: the next one's command
            with m.If((state == _State.RUN) & ~core.busy & ~core.error & steps.left.any()
                      & ~(finished | (idle == self.timeout))):
                m.d.sync += [state.eq(_State.CMD), steps.first.eq(0),
                             steps.left.eq(steps.left - 1)]
        with m.Elif(state == _State.REPORT):
            if self.uart is None:
                m.d.sync += state.eq(_State.DONE)
            else:
                word = [Mux(passed, ord(a), Mux(hung, ord(b), Mux(core.error, ord(c), ord(d))))
                        for a, b, c, d in zip("PASS", "HANG", "EROR", "FAIL", strict=True)]
                text = self.message(word)
                m.d.comb += [self.uart.data.valid.eq(1),
                             self.uart.data.payload.eq(covered_select(m, msg_index, text, 8,
                                                                         "msg_byte"))]
                with m.If(self.uart.data.ready):
                    m.d.sync += msg_index.eq(msg_index + 1)
                    with m.If(msg_index == len(text) - 1):
                        m.d.sync += state.eq(_State.DONE)
        with m.Elif(state == _State.DONE), m.If(go):
            m.d.sync += [state.eq(_State.IDLE), clear.eq(1)]
        if self.uart is not None:
            m.submodules.uart = self.uart
            m.d.comb += self.tx.eq(self.uart.tx)
        return m


MESSAGE_LEN = 62       # bytes of the ROM mode's result line, "\r\n" included (SelfTest.message)
LFSR_MESSAGE_LEN = 69  # bytes of the LFSR mode's result line
DECODE_MESSAGE_LEN = 95  # the decode mode's: the LFSR mode's, " pre=XXXXXXXX dec=XXXXXXXX"


class BoardTop(Elaboratable):
    """A :class:`SelfTest` wired to a board: status on LEDs, the result line on the UART.

    The test runs once after every reset of the ``sync`` domain: after configuration, and on
    the board's reset button where the platform has one (``platform.default_rst``).

    Parameters
    ----------
    selftest : SelfTest
    leds : tuple of str
        What LED ``i`` shows: one of ``STATUS_NAMES`` (``alive`` blinks at about 1 Hz while the
        clock runs), or ``""`` to leave it unused.
    uart : bool
        Whether to request ``uart`` 0 and drive its ``tx``.
    clock_hz : float
        Frequency of the clock the core runs on (sets the ``alive`` blink rate).
    """

    def __init__(self, selftest: SelfTest, *, leds: tuple[str, ...], uart: bool,
                 clock_hz: float):
        for what in leds:
            if what and what not in STATUS_NAMES:
                raise ValueError(f"LED status must be one of {', '.join(STATUS_NAMES)}, "
                                 f"not {what!r}")
        self.selftest = selftest
        self.leds, self.uart, self.clock_hz = leds, uart, clock_hz

    def elaborate(self, platform):
        m = Module()
        m.submodules.selftest = st = self.selftest
        blink = Signal(max(clog2(int(self.clock_hz)), 2))
        m.d.sync += blink.eq(blink + 1)
        status = {name: getattr(st.status, name) for name in STATUS_NAMES if name != "alive"}
        status["alive"] = blink[-1]
        for index, what in enumerate(self.leds):
            if what:
                m.submodules[f"led{index}"] = led = io.Buffer(
                    "o", platform.request("led", index, dir="-"))
                m.d.comb += led.o.eq(status[what])
        if self.uart:
            m.submodules.uart_tx = tx = io.Buffer("o", platform.request("uart", 0, dir="-").tx)
            m.d.comb += tx.o.eq(st.tx)
        return m


# -- simulation -----------------------------------------------------------------------------


@dataclass(frozen=True)
class SimRun:
    """How a simulation of the self-test went: not what the self-test reported (results of two
    simulators compare equal without it).

    Members
    -------
    simulator : str
        ``"amaranth"`` or ``"verilator"``.
    sim_cycles : int
        Every simulated clock cycle, from reset to the end of the result line.
    sim_seconds : float
        Wall time of the simulation itself.
    build_seconds : float
        Verilator: Verilog export, lint and compilation (0 when the build was cached).
    build_dir : Path or None
        Verilator: the build's folder.
    """

    simulator: str
    sim_cycles: int
    sim_seconds: float
    build_seconds: float = 0.0
    build_dir: Path | None = None

    @property
    def cycles_per_second(self) -> float:
        return self.sim_cycles / self.sim_seconds if self.sim_seconds else float("nan")

    def summary(self) -> str:
        build = (f"; build {self.build_seconds:.1f} s" if self.build_seconds
                 else "; cached build" if self.simulator == "verilator" else "")
        return (f"{self.simulator}: {self.sim_cycles:,} cycles in {self.sim_seconds:.1f} s "
                f"({self.cycles_per_second:,.0f} cycles/s{build})")


@dataclass(frozen=True)
class SelfTestResult:
    """What the self-test reported in simulation (``run``: how the simulation went, left out
    of comparisons)."""

    passed: bool
    failed: bool
    hang: bool
    error: bool
    rows: int
    bad: int
    first_bad: int
    cycles: int        # the self-test's own count (command to last row)
    line: str | None   # the UART line, decoded (None without a UART)
    crc: int | None = None  # LFSR and decode modes: the signature the self-test computed
    pre_cycles: int | None = None   # decode mode: the core's busy cycles in the prefill run
    dec_cycles: int | None = None   # ... and in the decode steps
    run: SimRun | None = dataclasses.field(default=None, compare=False, repr=False)


def decode_uart(samples: list[int], divisor: int) -> bytes:
    """8N1 bytes from a line sampled once per clock cycle (``divisor`` cycles per bit)."""
    out, t = [], 0
    while t < len(samples):
        if samples[t] == 0:  # start bit: sample the middle of each following bit
            mid = t + divisor // 2
            bits = [samples[mid + divisor * (i + 1)] for i in range(9)
                    if mid + divisor * (i + 1) < len(samples)]
            if len(bits) < 9:
                break
            out.append(sum(b << i for i, b in enumerate(bits[:8])))
            t = mid + divisor * 9
        else:
            t += 1
    return bytes(out)


def simulate(selftest: SelfTest, *, max_cycles: int = 1_000_000,
             vcd: str | None = None) -> SelfTestResult:
    """Run ``selftest`` from reset in Amaranth's simulator until it reports (and, with a UART,
    has sent its line); raises ``TimeoutError`` after ``max_cycles``."""
    from amaranth.sim import Simulator

    st = selftest
    result = {}
    divisor = st.uart.divisor if st.uart is not None else 0

    async def bench(ctx):
        samples = []
        for _ in range(max_cycles):
            await ctx.tick()
            samples.append(ctx.get(st.tx))
            if ctx.get(st.status.passed) or ctx.get(st.status.failed):
                break
        else:
            raise TimeoutError(f"the self-test did not finish in {max_cycles} cycles")
        for _ in range(st.line_cycles):
            await ctx.tick()
            samples.append(ctx.get(st.tx))
        status = {name: bool(ctx.get(getattr(st.status, name)))
                  for name in STATUS_NAMES if name != "alive"}
        result.update(
            passed=status["passed"], failed=status["failed"], hang=status["hang"],
            error=status["error"], rows=ctx.get(st.rows), bad=ctx.get(st.bad),
            first_bad=ctx.get(st.first_bad), cycles=ctx.get(st.cycles),
            crc=ctx.get(st.crc) if st.mode != "rom" else None,
            **({"pre_cycles": ctx.get(st.pre_cycles), "dec_cycles": ctx.get(st.dec_cycles)}
               if st.mode == "decode" else {}),
            line=decode_uart(samples, divisor).decode("ascii", errors="replace")
            if divisor else None)
        result["sim_cycles"] = len(samples)

    sim = Simulator(st)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    start = time.monotonic()
    if vcd:
        with sim.write_vcd(vcd):
            sim.run()
    else:
        sim.run()
    run = SimRun("amaranth", result.pop("sim_cycles"), time.monotonic() - start)
    return SelfTestResult(**result, run=run)


# -- simulation in Verilator ------------------------------------------------------------------
#
# The self-test's Verilog (exported by Amaranth, for the board's device family), linted with the
# core's waivers, with the clock generated in Verilog around it (sim.regress.clocked_top), built
# by Verilator with the regression's options and cached under the regression's build root; the
# cocotb bench (fpga_flows/cocotb_selftest.py) only waits for passed or failed, then reads the
# status and the UART line.

SIM_TOP = "swat_selftest_tb"   # the simulated top: the Verilog clock around the self-test
SIM_MODULE = "swat_selftest"   # the self-test's Verilog module
BENCH_MODULE = "swatkit.fpga_flows.cocotb_selftest"


def _selftest_sources(selftest: SelfTest, platform) -> dict[str, str]:
    """The files of a Verilator build of ``selftest``: its Verilog, the waivers, the vendor
    models ``platform`` needs, the clocked top and what the bench reads (the top's ports)."""
    from amaranth.back import verilog

    from swatkit.rtl.generate import ecp5_model, waivers
    from swatkit.sim.regress import clocked_top, public_vlt

    text = verilog.convert(selftest, name=SIM_MODULE, platform=platform, emit_src=False)
    files = {f"{SIM_MODULE}.vlt": waivers(f"{SIM_MODULE}.v"), "public.vlt": public_vlt(SIM_TOP)}
    if "MULT18X18D" in text:
        files["MULT18X18D.v"] = ecp5_model()
    files[f"{SIM_MODULE}.v"] = text
    files[f"{SIM_TOP}.v"] = clocked_top(selftest, top=SIM_TOP, inner=SIM_MODULE,
                                        instance="selftest")
    return files


def _build_selftest(selftest: SelfTest, platform, root: Path):
    """The cached Verilator build of ``selftest`` (a ``swatkit.support.build_cache.BuildInfo``).
    The key hashes
    the files compiled (the Verilog holds the whole configuration, the vectors' constants
    included), the Verilator and C++ options and the tool versions."""
    from swatkit.rtl.generate import Generated, LintError, lint
    from swatkit.sim import regress

    files = _selftest_sources(selftest, platform)
    # (-O0 for a short run, as a small build of the regression: regress.make_args_for)
    make_args = regress.make_args_for(selftest.run_cycles)
    record = json.dumps({"files": {name: hashlib.sha256(text.encode()).hexdigest()
                                   for name, text in files.items()},
                         "build_args": regress.BUILD_ARGS, "make_args": make_args,
                         "runtime": "the regression's",   # (<cache>/runtime: compile_bench)
                         "timing": regress.TIMING_ARGS, "tools": build_cache.tool_versions()},
                        sort_keys=True)
    key = hashlib.sha256(record.encode()).hexdigest()[:16]
    p = selftest.params

    def make(path: Path) -> dict:
        src = path / "src"
        src.mkdir(parents=True)
        for name, text in files.items():
            (src / name).write_text(text)
        config = src / "selftest.json"
        config.write_text(json.dumps({
            "mode": selftest.mode, "rows": selftest.vectors.rows, "seed": selftest.vectors.seed,
            "decode_steps": selftest.vectors.steps,
            "crc": selftest.vectors.crc,
            "uart_divisor": selftest.uart.divisor if selftest.uart else None,
            "timeout": selftest.timeout, "fault": selftest.fault,
            "family": getattr(platform, "family", None), **p.as_dict()}, indent=2) + "\n")
        models = [name for name in files if name == "MULT18X18D.v"]
        generated = Generated(src / f"{SIM_MODULE}.v", config, src / f"{SIM_MODULE}.vlt",
                              src / models[0] if models else None)
        try:
            lint(generated)
        except LintError as e:
            raise RuntimeError(f"verilator --lint-only -Wall reports warnings on the self-test's "
                               f"Verilog ({src / (SIM_MODULE + '.v')}):\n{e}") from None
        # (Verilator's runtime objects: the regression's, in the cache root's runtime/)
        regress.compile_bench(src, path, None, models, top=SIM_TOP, make_args=make_args,
                              sources=[n for n in files if n not in models],
                              runtime=root.parent / "runtime")
        return {"build": "selftest", "config": json.loads(config.read_text()),
                "build_args": regress.BUILD_ARGS, "make_args": make_args,
                "tools": build_cache.tool_versions(), "lint": "verilator --lint-only -Wall: clean"}

    return build_cache.cached_build(root, key, SIM_TOP, make)


def simulate_verilator(selftest: SelfTest, *, platform=None,
                       build_dir: str | os.PathLike | None = None,
                       max_cycles: int | None = None) -> SelfTestResult:
    """Run ``selftest`` from reset in Verilator until it reports (and, with a UART, has sent
    its line): the same result as :func:`simulate`, at Verilator's speed.

    Parameters
    ----------
    selftest : SelfTest
    platform :
        What the Verilog is exported for, as the board build elaborates it:
        ``swatkit.rtl.units.DspTarget("ecp5")`` simulates an ECP5 build (``MULT18X18D``
        multipliers with their model, the K/V memories in 512-word banks); ``None`` the generic
        Verilog (iCE40, Gowin).
    build_dir : path, optional
        Build cache root (``swatkit.support.build_cache.build_root``); builds go to its
        ``selftest/``.
    max_cycles : int, optional
        Give up (``TimeoutError``) when the self-test has not reported after this many cycles;
        default :attr:`SelfTest.cycle_limit`.

    Raises
    ------
    TimeoutError
        No report within ``max_cycles``.
    RuntimeError
        The Verilog has lint warnings, the build failed, or the simulator ended without a result
        (the message names the log).
    """
    from swatkit.sim import regress

    limit = selftest.cycle_limit if max_cycles is None else max_cycles
    check_int("max_cycles", limit, 1)
    root = build_cache.build_root(build_dir)
    info = _build_selftest(selftest, platform, root / "selftest")
    runs = root / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f"selftest-{info.key}-", dir=runs))
    case = {"max_cycles": limit, "line_cycles": selftest.line_cycles,
            "uart_divisor": selftest.uart.divisor if selftest.uart else None,
            "mode": selftest.mode, "result": str(work / "result.json")}
    (work / "case.json").write_text(json.dumps(case, indent=2) + "\n")
    status = regress.run_bench(info.path, work, 0, None, top=SIM_TOP, test_module=BENCH_MODULE,
                               extra_env={"SWATKIT_SELFTEST": str(work / "case.json")})
    out = work / "result.json"
    data = json.loads(out.read_text()) if out.is_file() else {}
    if data.get("timeout"):
        shutil.rmtree(work, ignore_errors=True)
        raise TimeoutError(f"the self-test did not finish in {limit} cycles")
    if "passed" not in data:
        raise RuntimeError(f"the Verilator simulation of the self-test ended without a result "
                           f"({status or 'no result file'}); see {work / 'sim.log'}")
    shutil.rmtree(work, ignore_errors=True)
    run = SimRun("verilator", data.pop("sim_cycles"), data.pop("sim_seconds"), info.seconds,
                 info.path)
    return SelfTestResult(**data, run=run)
