"""Stream sources and sinks in HDL, and the simulation harness of the SWAT core built from them.

What it is for: a bench that wakes Python once per cycle runs at a few thousand cycles per second
(docs/verification.md). Here every per-cycle decision is hardware beside the core — row memories
feeding the input streams, LFSR-driven valid gaps and ready stalls, the output rows written to a
memory, and the stream-protocol checks — so that a testbench only loads the inputs, starts a run,
waits for its end and compares the output rows in bulk, and the simulator runs at its own speed.

* :class:`Lfsr` — the project's LFSR (:mod:`swatkit.rtl.lfsr`) stepping every cycle, seeded
  at run time; :func:`~swatkit.rtl.lfsr.lfsr_sequence` is its NumPy twin.
* :class:`RowSource` — rows ``0 … count−1`` of its memory on a stream. Before each beat it offers
  nothing while a draw of its LFSR falls below ``gap`` (16-bit threshold: an idle cycle with
  probability ``gap/65536``) or while ``hold`` is high; once offered, a beat stays valid and
  unchanged until taken. While ``valid`` is low the payload is the bitwise complement of the next
  row, so a consumer that takes a beat without ``valid`` reads a wrong row.
* :class:`RowSink` — takes rows into its memory, dropping ``ready`` when its LFSR draw falls below
  ``stall`` or while ``hold`` is high, and checks the producer: an offered row must stay offered
  and unchanged until taken (``violation`` and the cycle of the first one).
* :class:`SwatHarness` — a SWAT core (or the Verilog ``swat_core`` it was written to, through
  :class:`VerilogCore`), a source for Q and one for K/V, a sink for O, and counters.

Stream transfer rule (``amaranth.lib.stream``): a beat moves on a clock edge where
``valid & ready``; a producer holds ``valid`` and the payload until then.
"""

from __future__ import annotations

import numpy as np
from amaranth import ClockSignal, Instance, Module, Mux, ResetSignal, Signal
from amaranth.hdl import ResetInserter, Shape
from amaranth.lib import fifo, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from .config import CoreParams
from .core import core_layouts, core_signature
from .lfsr import lfsr_step_hdl

__all__ = [
    "Lfsr",
    "RowSink",
    "RowSource",
    "SwatHarness",
    "VerilogCore",
    "probability_threshold",
]

THRESHOLD_BITS = 16


def probability_threshold(p: float) -> int:
    """The 16-bit threshold of an event of probability ``p`` (``0 <= p < 1``): the event happens
    in a cycle when the LFSR's low 16 bits are below it."""
    if not 0.0 <= p < 1.0:
        raise ValueError(f"probability must be in [0, 1), not {p}")
    return round(p * 2 ** THRESHOLD_BITS)


class Lfsr:
    """A 32-bit Galois LFSR stepping every cycle; ``load`` puts ``seed`` (0 becomes 1) in it."""

    def __init__(self, m: Module, seed, load, name: str):
        self.state = Signal(32, init=1, name=f"{name}_lfsr")
        step = lfsr_step_hdl(self.state)
        with m.If(load):
            m.d.sync += self.state.eq(Mux(seed.any(), seed, 1))
        with m.Else():
            m.d.sync += self.state.eq(step)

    def below(self, threshold):
        """True with probability ``threshold / 65536`` in a cycle."""
        return self.state[:THRESHOLD_BITS] < threshold


def _control_signature(depth: int) -> dict:
    return {
        "start": In(1),                   # restart: pointer to row 0, LFSR seeded
        "seed": In(32),
        "count": In(range(depth + 1)),    # rows to stream / to accept before stopping
        "hold": In(1),                    # offer / accept nothing new while high
    }


class RowSource(wiring.Component):
    """Rows of a memory on a stream, with LFSR valid gaps (see the module docstring).

    Parameters
    ----------
    layout : data layout
        The payload (one row).
    depth : int
        Rows the memory holds.
    name : str
        Names the memory (``<name>_rows``) for loaders that write it directly.

    Members
    -------
    o : Out(stream)   the rows.
    start, seed, count, hold, gap : In   see the module docstring.
    passes : In       (with ``max_passes`` > 1) the rows are sent this many times over.
    sent : Out        rows taken since ``start``.
    """

    def __init__(self, layout, depth: int, *, name: str = "src", mem_attrs=None,
                 max_passes: int = 1):
        self.layout, self.depth, self.name = layout, depth, name
        self.max_passes = max_passes
        self.mem = memory.Memory(shape=layout, depth=depth, init=[], attrs=mem_attrs)
        passes = {"passes": In(range(max_passes + 1))} if max_passes > 1 else {}
        super().__init__({
            "o": Out(stream.Signature(layout)),
            **_control_signature(depth),
            "gap": In(THRESHOLD_BITS),
            "sent": Out(range(depth * max_passes + 1)),
            **passes,
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules[f"{self.name}_rows"] = self.mem
        rd = self.mem.read_port()
        # rows are read ahead into a small FIFO, so that a beat can leave every cycle
        buf = fifo.SyncFIFO(width=self.layout.size, depth=3)
        m.submodules.buf = ResetInserter(self.start)(buf)
        rptr = Signal(range(self.depth + 1))
        inflight = Signal()
        issue = Signal()
        m.d.comb += issue.eq(~self.start & (rptr < self.count) & (buf.level + inflight < 3))
        m.d.comb += [rd.addr.eq(rptr), rd.en.eq(1)]
        m.d.sync += inflight.eq(issue)
        m.d.comb += [buf.w_en.eq(inflight & ~self.start), buf.w_data.eq(rd.data)]
        with m.If(issue):
            m.d.sync += rptr.eq(rptr + 1)
        if self.max_passes > 1:  # rows 0 … count−1, ``passes`` times
            npass = Signal(range(self.max_passes + 1))
            with m.If(issue & (rptr + 1 == self.count) & (npass + 1 < self.passes)):
                m.d.sync += [rptr.eq(0), npass.eq(npass + 1)]
            with m.If(self.start):
                m.d.sync += npass.eq(0)
        # offering: once valid, held until taken
        lfsr = Lfsr(m, self.seed, self.start, self.name)
        held = Signal()
        valid = buf.r_rdy & ~self.start & (held | (~self.hold & ~lfsr.below(self.gap)))
        m.d.comb += [
            self.o.valid.eq(valid),
            self.o.payload.eq(Mux(valid, buf.r_data, ~buf.r_data)),
            buf.r_en.eq(valid & self.o.ready),
        ]
        m.d.sync += held.eq(valid & ~self.o.ready)
        with m.If(valid & self.o.ready):
            m.d.sync += self.sent.eq(self.sent + 1)
        with m.If(self.start):
            m.d.sync += [rptr.eq(0), inflight.eq(0), held.eq(0), self.sent.eq(0)]
        return m


class RowSink(wiring.Component):
    """Takes rows from a stream into a memory, with LFSR ready stalls, checking the producer.

    Members
    -------
    i : In(stream)    the rows.
    start, seed, count, hold, stall : In   see the module docstring (``count`` bounds the rows
        the memory takes; rows beyond it are taken and counted, not stored).
    received : Out    rows taken since ``start``.
    violation : Out(1)  an offered row was withdrawn or changed before it was taken (sticky until
        ``start``); ``violation_cycle`` is the harness cycle of the first one.
    """

    def __init__(self, layout, depth: int, *, name: str = "sink", mem_attrs=None):
        self.layout, self.depth, self.name = layout, depth, name
        self.mem = memory.Memory(shape=layout, depth=depth, init=[], attrs=mem_attrs)
        super().__init__({
            "i": In(stream.Signature(layout)),
            **_control_signature(depth),
            "stall": In(THRESHOLD_BITS),
            "cycle": In(32),
            "received": Out(32),
            "violation": Out(1),
            "violation_cycle": Out(32),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules[f"{self.name}_rows"] = self.mem
        wr = self.mem.write_port()
        lfsr = Lfsr(m, self.seed, self.start, self.name)
        ready = ~self.start & ~self.hold & ~lfsr.below(self.stall)
        take = self.i.valid & ready
        m.d.comb += [
            self.i.ready.eq(ready),
            wr.addr.eq(self.received), wr.data.eq(self.i.payload),
            wr.en.eq(take & (self.received < self.count)),
        ]
        with m.If(take):
            m.d.sync += self.received.eq(self.received + 1)
        # the producer's side of the rule: offered and not taken → offered, unchanged, next cycle
        pend = Signal()
        pend_data = Signal(self.layout.size)
        m.d.sync += [pend.eq(self.i.valid & ~ready), pend_data.eq(self.i.payload)]
        bad = pend & (~self.i.valid | (self.i.payload.as_value() != pend_data))
        with m.If(bad & ~self.violation):
            m.d.sync += [self.violation.eq(1), self.violation_cycle.eq(self.cycle)]
        with m.If(self.start):
            m.d.sync += [self.received.eq(0), self.violation.eq(0), pend.eq(0)]
        return m


class VerilogCore(wiring.Component):
    """The Verilog module that ``swatkit generate`` wrote for ``params`` (named ``name``), as a
    component with the core's ports: the harness around it then simulates exactly that file.

    ``interface="axis"`` instantiates the AXI4-Stream form (``swatkit generate --interface
    axis``, :class:`~swatkit.rtl.axis.AxisSwatCore`) and maps its ports back onto the core's:
    ``aclk``/``aresetn`` from the clock and the inverted reset, each stream's ``tdata`` padded to
    whole bytes (input padding zero, output padding dropped)."""

    def __init__(self, params: CoreParams, name: str = "swat_core", interface: str = "core"):
        self.params, self.module, self.interface = params, name, interface
        super().__init__(core_signature(params))

    def elaborate(self, platform):
        m = Module()
        if self.interface == "axis":
            m.submodules.core = self._axis(m)
            return m
        conns = {}
        for path, member, value in self.signature.flatten(self):
            prefix = "i_" if member.flow == In else "o_"
            conns[prefix + "__".join(str(p) for p in path)] = value
        m.submodules.core = Instance(self.module, i_clk=ClockSignal(), i_rst=ResetSignal(),
                                     **conns)
        return m

    def _axis(self, m: Module) -> Instance:
        from .axis import axis_streams, byte_width

        conns = {"i_aclk": ClockSignal(), "i_aresetn": ~ResetSignal()}
        for name, side, _ in axis_streams(self.params):
            port = getattr(self, name)
            bits = Shape.cast(port.payload.shape()).width
            tdata = Signal(byte_width(bits), name=f"{name}_tdata")
            prefix = f"{side}_axis_{name}_"
            if side == "s":
                m.d.comb += tdata.eq(port.payload.as_value())
                conns.update({f"i_{prefix}tdata": tdata, f"i_{prefix}tvalid": port.valid,
                              f"o_{prefix}tready": port.ready})
            else:
                m.d.comb += port.payload.eq(tdata[:bits])
                conns.update({f"o_{prefix}tdata": tdata, f"o_{prefix}tvalid": port.valid,
                              f"i_{prefix}tready": port.ready,
                              f"o_{prefix}tlast": Signal(name=f"{name}_tlast")})
        conns.update({"o_busy": self.busy, "o_error": self.error, "o_stats": self.stats})
        return Instance(self.module, **conns)


class SwatHarness(wiring.Component):
    """A SWAT core between HDL stream sources and a sink, driven by a few control inputs.

    Parameters
    ----------
    params : CoreParams
    core : wiring.Component, optional
        The core (a :class:`~swatkit.rtl.SwatCore` or a :class:`VerilogCore`); by default a
        :class:`VerilogCore` named ``swat_core`` with the given ``interface``.
    depth : int, optional
        Rows each memory holds (default ``max_seq_len``): the rows of every run loaded at once
        (the Q source and the O sink of a grouped core hold g times as many).

    Members
    -------
    start : In(1)      a pulse: sources and sink back to row 0, LFSRs seeded, counters cleared.
    seed : In(32)      seeds the three LFSRs (each mixes in its own constant).
    q_count, kv_count : In  rows the sources stream after ``start`` (all runs' rows).
    q_gap, kv_gap, o_stall : In(16)  gap / stall thresholds (see :func:`probability_threshold`).
    q_hold, kv_hold, o_hold : In(1)  offer / accept nothing new while high (long idles).
    cmd : In(stream)   passed to the core (one beat starts a run).
    busy, error, stats : Out  the core's.
    q_sent, kv_sent, o_rows : Out  rows moved since ``start``.
    cycles, busy_cycles : Out(32)  cycles since ``start``, and of those the ones with ``busy``.
    violation, violation_cycle : Out  the sink's protocol check of the core's output.

    On a core with global tokens, also the global-row engine's streams, loaded per run:
    ``g_start`` (a pulse: their sources and sink back to row 0), ``qg_count`` (the run's global
    rows), ``kvg_count`` (N) and ``kvg_passes`` (2 per run: the K_g/V_g rows are sent that many
    times over, one pass each); ``qg_sent``, ``kvg_sent``, ``og_rows`` and ``og_violation``. They
    share the gap, stall and hold controls of ``q``, ``kv`` and ``o``.

    On a block-sparse core with random blocks, also the random-block K/V stream ``kvr``, loaded
    per run and restarted by ``g_start`` too: ``kvr_count`` (the run's random rows) and
    ``kvr_sent``; it shares the gaps and hold of ``kv``.
    """

    SEEDS = (0x9E3779B9, 0x7F4A7C15, 0x85EBCA6B)  # mixed into the seed per stream

    def __init__(self, params: CoreParams, core: wiring.Component | None = None, *,
                 depth: int | None = None, mem_attrs=None, interface: str = "core"):
        self.params = params
        self.depth = depth or params.hw.max_seq_len
        self.core = core if core is not None else VerilogCore(params, interface=interface)
        lay = core_layouts(params)
        d = self.depth
        dq = self.q_depth = d * params.group_heads   # Q and O rows: g per position
        self.q_src = RowSource(lay["q"], dq, name="tb_q", mem_attrs=mem_attrs)
        self.kv_src = RowSource(lay["kv"], d, name="tb_kv", mem_attrs=mem_attrs)
        self.o_sink = RowSink(lay["o"], dq, name="tb_o", mem_attrs=mem_attrs)
        gmax = params.max_global_tokens
        glob = {}
        if params.global_rows:  # the global-row engine's streams: loaded per run
            n = params.hw.max_seq_len
            self.qg_src = RowSource(lay["q"], gmax, name="tb_qg", mem_attrs=mem_attrs)
            self.kvg_src = RowSource(lay["kv"], n, name="tb_kvg", mem_attrs=mem_attrs,
                                     max_passes=2)
            self.og_sink = RowSink(lay["o"], gmax, name="tb_og", mem_attrs=mem_attrs)
            glob = {"g_start": In(1), "qg_count": In(range(gmax + 1)),
                    "kvg_count": In(range(n + 1)), "kvg_passes": In(range(3)),
                    "qg_sent": Out(range(gmax + 1)), "kvg_sent": Out(range(2 * n + 1)),
                    "og_rows": Out(32), "og_violation": Out(1)}
        if params.max_random_blocks:   # the random blocks' K/V rows of one run
            rdepth = self.random_depth(params)
            self.kvr_src = RowSource(lay["kv"], rdepth, name="tb_kvr", mem_attrs=mem_attrs)
            glob.update(kvr_count=In(range(rdepth + 1)), kvr_sent=Out(range(rdepth + 1)))
        super().__init__({
            **glob,
            "start": In(1),
            "seed": In(32),
            "q_count": In(range(dq + 1)),
            "kv_count": In(range(d + 1)),
            "q_gap": In(THRESHOLD_BITS),
            "kv_gap": In(THRESHOLD_BITS),
            "o_stall": In(THRESHOLD_BITS),
            "q_hold": In(1),
            "kv_hold": In(1),
            "o_hold": In(1),
            "cmd": In(stream.Signature(lay["cmd"])),
            "busy": Out(1),
            "error": Out(1),
            "stats": Out(lay["stats"]),
            "q_sent": Out(range(dq + 1)),
            "kv_sent": Out(range(d + 1)),
            "o_rows": Out(32),
            "cycles": Out(32),
            "busy_cycles": Out(32),
            "violation": Out(1),
            "violation_cycle": Out(32),
        })

    @staticmethod
    def random_depth(params: CoreParams) -> int:
        """Rows of the ``kvr`` source: the most random K/V rows of a run,
        ``(max_seq_len / b − 2)·r·b``."""
        nb = params.hw.max_seq_len // params.block_size
        return max(1, (nb - 2) * params.random_rows)

    def elaborate(self, platform):
        m = Module()
        m.submodules.core = core = self.core

        def streams(src_in, src_kv, sink, names, counts, start, salt):
            """Two sources (a Q-like and a K/V-like stream) and a sink around the core's ports
            ``names``, with their controls: the shared gaps, stalls and holds."""
            for unit, name in zip((src_in, src_kv, sink), names, strict=True):
                m.submodules[f"{name}_{'sink' if unit is sink else 'src'}"] = unit
            wiring.connect(m, src_in.o, getattr(core, names[0]))
            wiring.connect(m, src_kv.o, getattr(core, names[1]))
            wiring.connect(m, getattr(core, names[2]), sink.i)
            for mix, (unit, count) in enumerate(zip((src_in, src_kv, sink), counts, strict=True)):
                m.d.comb += [unit.start.eq(start), unit.count.eq(count),
                             unit.seed.eq(self.seed ^ self.SEEDS[mix] ^ salt)]
            m.d.comb += [
                src_in.gap.eq(self.q_gap), src_kv.gap.eq(self.kv_gap), sink.stall.eq(self.o_stall),
                src_in.hold.eq(self.q_hold), src_kv.hold.eq(self.kv_hold),
                sink.hold.eq(self.o_hold), sink.cycle.eq(self.cycles),
            ]

        q, kv, o = self.q_src, self.kv_src, self.o_sink
        streams(q, kv, o, ("q", "kv", "o"), (self.q_count, self.kv_count, self.q_depth),
                self.start, 0)
        wiring.connect(m, tb_cmd=wiring.flipped(self.cmd), core_cmd=core.cmd)
        m.d.comb += [
            self.busy.eq(core.busy), self.error.eq(core.error), self.stats.eq(core.stats),
            self.q_sent.eq(q.sent), self.kv_sent.eq(kv.sent), self.o_rows.eq(o.received),
            self.violation.eq(o.violation), self.violation_cycle.eq(o.violation_cycle),
        ]
        if self.params.global_rows:
            qg, kvg, og = self.qg_src, self.kvg_src, self.og_sink
            streams(qg, kvg, og, ("qg", "kvg", "og"),
                    (self.qg_count, self.kvg_count, self.params.max_global_tokens),
                    self.g_start, 0x5A5A5A5A)
            m.d.comb += [
                kvg.passes.eq(self.kvg_passes), self.qg_sent.eq(qg.sent),
                self.kvg_sent.eq(kvg.sent), self.og_rows.eq(og.received),
                self.og_violation.eq(og.violation),
            ]
        if self.params.max_random_blocks:
            kvr = m.submodules.kvr_src = self.kvr_src
            wiring.connect(m, kvr.o, core.kvr)
            m.d.comb += [kvr.start.eq(self.g_start), kvr.count.eq(self.kvr_count),
                         kvr.seed.eq(self.seed ^ self.SEEDS[1] ^ 0x3C3C3C3C),
                         kvr.gap.eq(self.kv_gap), kvr.hold.eq(self.kv_hold),
                         self.kvr_sent.eq(kvr.sent)]
        m.d.sync += self.cycles.eq(self.cycles + 1)
        with m.If(core.busy):
            m.d.sync += self.busy_cycles.eq(self.busy_cycles + 1)
        with m.If(self.start):
            m.d.sync += [self.cycles.eq(0), self.busy_cycles.eq(0)]
        return m



# -- row packing (the memories' word layout, for loaders and readers) ----------------------------


def pack_rows(rows: np.ndarray, bits: int) -> np.ndarray:
    """Signed integer rows (n, e) as the memory words of an ``ArrayLayout(signed(bits), e)``
    (element ``j`` at bits ``j·bits …``): an (n, bytes) uint8 array, little-endian. A
    ``StructLayout`` of such rows (``kv``: k then v) is the concatenation of its fields' rows."""
    rows = np.asarray(rows, dtype=np.int64)
    n, e = rows.shape
    field = (rows & ((1 << bits) - 1)).astype(np.uint64)
    bitmat = ((field[:, :, None] >> np.arange(bits, dtype=np.uint64)) & 1).astype(np.uint8)
    return np.packbits(bitmat.reshape(n, e * bits), axis=1, bitorder="little")


def unpack_rows(words: np.ndarray, elements: int, bits: int) -> np.ndarray:
    """The inverse of :func:`pack_rows`: (n, bytes) uint8 words → signed int64 rows."""
    words = np.asarray(words, dtype=np.uint8)
    bitmat = np.unpackbits(words, axis=1, bitorder="little")[:, :elements * bits]
    bitmat = bitmat.reshape(len(words), elements, bits).astype(np.int64)
    value = (bitmat << np.arange(bits, dtype=np.int64)).sum(axis=2)
    return np.where(value >= 1 << (bits - 1), value - (1 << bits), value)
