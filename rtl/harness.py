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
  probability ``gap/65536``), while ``hold`` is high, or during an off run of its ``burst``
  on/off process; once offered, a beat stays valid and unchanged until taken. While ``valid``
  is low the payload is the bitwise complement of the next row, so a consumer that takes a
  beat without ``valid`` reads a wrong row. A source built with ``drop_fault`` can break the
  rule once on purpose (``drop``, ``drop_row``): a fault for the core's ``rule_error``.
* :class:`RowSink` — takes rows into its memory, dropping ``ready`` when its LFSR draw falls below
  ``stall``, while ``hold`` is high or during an off run of ``burst``, and checks the producer:
  an offered row must stay offered and unchanged until taken (``violation`` and the cycle of
  the first one).
* :class:`SwatHarness` — a SWAT core (or the Verilog ``swat_core`` it was written to, through
  :class:`VerilogCore`), a source for Q and one for K/V, a sink for O (and for the global and
  random streams of cores that have them), each with its own gap or stall, hold and burst
  controls, and counters: among them the cycle each stream (and the command) last moved, which
  a liveness check reports when a run stops making progress.

Bursty back-pressure (``burst``): beside the per-cycle draws, a stream alternates between on and
off runs; in each cycle it switches with probability ``burst/65536`` (a draw of the high 16 bits
of the same LFSR), so both kinds of run last ``65536/burst`` cycles on average, geometrically
distributed (long idles, not only single-cycle gaps). ``burst = 0`` never switches: always on.

Row memories in Verilog (``verilog_rows=True``): Amaranth writes a memory's initial contents row by
row even when they are all zero, which made the harness's Verilog generation take most of a small
build's generation time (22 of 28 s of ``logits_gqa8_causal16_k4d4``'s harness in ``emit_memory``,
1.6 M bits) and minutes on a large one. The Verilog the regression compiles therefore has each
row memory as an :class:`~amaranth.hdl.Instance` of :data:`ROWS_MEM_VERILOG`'s parametric
``swat_rows_mem #(WIDTH, DEPTH, ABITS)``, zeroed by a loop (its rows are the array ``rows``:
``<unit>.<name>_rows.rows`` in the hierarchy); the Amaranth simulator keeps the
``lib.memory`` form (``verilog_rows=False``, the default), with the same ports and timing:
one synchronous read (data the cycle after the address, no transparency) and one synchronous
write port.

Stream transfer rule (``amaranth.lib.stream``): a beat moves on a clock edge where
``valid & ready``; a producer holds ``valid`` and the payload until then.
"""

from __future__ import annotations

from amaranth import Cat, ClockSignal, Instance, Module, Mux, ResetSignal, Signal
from amaranth.hdl import ResetInserter, Shape
from amaranth.lib import fifo, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from .config import CoreParams
from .controls import STREAMS, THRESHOLD_BITS  # (the harness's rules without Amaranth)
from .core import core_layouts, core_signature
from .lfsr import lfsr_step_hdl

__all__ = [
    "ROWS_MEM",
    "ROWS_MEM_VERILOG",
    "Lfsr",
    "RowSink",
    "RowSource",
    "SwatHarness",
    "VerilogCore",
]

# the row memory of the Verilog form (see the module docstring): written once, one module for all
ROWS_MEM = "swat_rows_mem"
ROWS_MEM_VERILOG = f"""// swatkit.rtl.harness: a row memory of the harness, zeroed by a loop
module {ROWS_MEM} #(parameter WIDTH = 1, parameter DEPTH = 1, parameter ABITS = 1) (
  input clk,
  input [ABITS-1:0] raddr,
  output reg [WIDTH-1:0] rdata,
  input we,
  input [ABITS-1:0] waddr,
  input [WIDTH-1:0] wdata
);
  reg [WIDTH-1:0] rows [0:DEPTH-1];
  integer i;
  initial begin
    for (i = 0; i < DEPTH; i = i + 1)
      rows[i] = {{WIDTH{{1'b0}}}};
    rdata = {{WIDTH{{1'b0}}}};
  end
  always @(posedge clk) begin
    if (we)
      rows[waddr] <= wdata;
    rdata <= rows[raddr];
  end
endmodule
"""


class _RowsPorts:
    """The ports a row source or sink uses of its memory (``addr``/``data``/``en`` of a read or a
    write port), in either form; :func:`_row_memory` connects them."""

    def __init__(self, width: int, depth: int):
        abits = max(1, (depth - 1).bit_length())
        self.raddr, self.rdata = Signal(abits), Signal(width)
        self.waddr, self.wdata, self.we = Signal(abits), Signal(width), Signal()


def _row_memory(m: Module, unit, read: bool) -> _RowsPorts:
    """``unit``'s row memory (``unit.mem``, or with ``unit.verilog_rows`` an Instance of
    :data:`ROWS_MEM`) as submodule ``<name>_rows`` of ``m``, with a read port (``read``) or a
    write port; returns the port signals. Addresses are truncated to the memory's address
    width in both forms."""
    width = unit.layout.size
    ports = _RowsPorts(width, unit.depth)
    name = f"{unit.name}_rows"
    if unit.verilog_rows:
        m.submodules[name] = Instance(
            ROWS_MEM, p_WIDTH=width, p_DEPTH=unit.depth, p_ABITS=len(ports.raddr),
            i_clk=ClockSignal(), i_raddr=ports.raddr, o_rdata=ports.rdata, i_we=ports.we,
            i_waddr=ports.waddr, i_wdata=ports.wdata,
            **{f"a_{key}": value for key, value in (unit.mem_attrs or {}).items()})
        return ports
    m.submodules[name] = unit.mem
    if read:
        rd = unit.mem.read_port()
        m.d.comb += [rd.addr.eq(ports.raddr), rd.en.eq(1), ports.rdata.eq(rd.data)]
    else:
        wr = unit.mem.write_port()
        m.d.comb += [wr.addr.eq(ports.waddr), wr.data.eq(ports.wdata), wr.en.eq(ports.we)]
    return ports


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

    def switch(self, threshold):
        """True with probability ``threshold / 65536`` in a cycle, from the high 16 bits (the
        on/off switch of a bursty stream; independent enough of :meth:`below` for a bench)."""
        return self.state[THRESHOLD_BITS:] < threshold


def _off_runs(m: Module, lfsr: Lfsr, burst, start, name: str):
    """The off state of a bursty stream (see the module docstring): switched when the LFSR's
    switch draw falls below ``burst``, on after ``start``."""
    off = Signal(name=f"{name}_off")
    with m.If(start):
        m.d.sync += off.eq(0)
    with m.Elif(lfsr.switch(burst)):
        m.d.sync += off.eq(~off)
    return off


def _control_signature(depth: int) -> dict:
    return {
        "start": In(1),                   # restart: pointer to row 0, LFSR seeded
        "seed": In(32),
        "count": In(range(depth + 1)),    # rows to stream / to accept before stopping
        "hold": In(1),                    # offer / accept nothing new while high
        "burst": In(THRESHOLD_BITS),      # on/off runs of mean 65536/burst cycles; 0: none
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
    verilog_rows : bool
        The memory as an Instance of :data:`ROWS_MEM` (for Verilog output; see the module
        docstring), not a ``lib.memory.Memory`` (``mem``, for Amaranth's simulator);
        ``mem_attrs`` are then the instance's attributes.

    Members
    -------
    o : Out(stream)   the rows.
    start, seed, count, hold, gap, burst : In   see the module docstring.
    passes : In       (with ``max_passes`` > 1) the rows are sent this many times over.
    sent : Out        rows taken since ``start``.
    drop, drop_row : In; drop_fired : Out   (with ``drop_fault``) a producer that breaks the
        stream rule once: while ``drop`` is high, the first time the consumer is ready for row
        ``drop_row`` (``sent == drop_row``) after the row has been offered a cycle, ``valid``
        is withdrawn for that cycle (the payload is then the row's complement) and the row is
        offered again after it; ``drop_fired`` (sticky until ``start``) says it happened. On a
        consumer that copies a row word by word before its transfer (the core's ``kv`` with
        rows of two words or more) that is the cycle of the row's last word. The consumer's
        ``ready`` must not depend on ``valid`` in the same cycle (a combinational loop).
    """

    def __init__(self, layout, depth: int, *, name: str = "src", mem_attrs=None,
                 max_passes: int = 1, drop_fault: bool = False, verilog_rows: bool = False):
        self.layout, self.depth, self.name = layout, depth, name
        self.max_passes, self.drop_fault = max_passes, drop_fault
        self.verilog_rows, self.mem_attrs = verilog_rows, mem_attrs
        self.mem = (None if verilog_rows else
                    memory.Memory(shape=layout, depth=depth, init=[], attrs=mem_attrs))
        passes = {"passes": In(range(max_passes + 1))} if max_passes > 1 else {}
        if drop_fault:
            passes.update(drop=In(1), drop_row=In(range(depth + 1)), drop_fired=Out(1))
        super().__init__({
            "o": Out(stream.Signature(layout)),
            **_control_signature(depth),
            "gap": In(THRESHOLD_BITS),
            "sent": Out(range(depth * max_passes + 1)),
            **passes,
        })

    def elaborate(self, platform):
        m = Module()
        rd = _row_memory(m, self, read=True)
        # rows are read ahead into a small FIFO, so that a beat can leave every cycle
        buf = fifo.SyncFIFO(width=self.layout.size, depth=3)
        m.submodules.buf = ResetInserter(self.start)(buf)
        rptr = Signal(range(self.depth + 1))
        inflight = Signal()
        issue = Signal()
        m.d.comb += issue.eq(~self.start & (rptr < self.count) & (buf.level + inflight < 3))
        m.d.comb += rd.raddr.eq(rptr)
        m.d.sync += inflight.eq(issue)
        m.d.comb += [buf.w_en.eq(inflight & ~self.start), buf.w_data.eq(rd.rdata)]
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
        off = _off_runs(m, lfsr, self.burst, self.start, self.name)
        held = Signal()
        valid = buf.r_rdy & ~self.start & (held | (~self.hold & ~off & ~lfsr.below(self.gap)))
        if self.drop_fault:   # the rule broken once: valid withdrawn in a cycle it is taken
            fire = (self.drop & ~self.drop_fired & held & (self.sent == self.drop_row)
                    & self.o.ready)
            with m.If(fire):
                m.d.sync += self.drop_fired.eq(1)
            with m.If(self.start):
                m.d.sync += self.drop_fired.eq(0)
            offered = Signal()
            m.d.comb += offered.eq(valid & ~fire)
            valid = offered
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
    start, seed, count, hold, stall, burst : In   see the module docstring (``count`` bounds
        the rows the memory takes; rows beyond it are taken and counted, not stored).
    received : Out    rows taken since ``start``.
    violation : Out(1)  an offered row was withdrawn or changed before it was taken (sticky until
        ``start``); ``violation_cycle`` is the harness cycle of the first one.
    """

    def __init__(self, layout, depth: int, *, name: str = "sink", mem_attrs=None,
                 verilog_rows: bool = False):
        self.layout, self.depth, self.name = layout, depth, name
        self.verilog_rows, self.mem_attrs = verilog_rows, mem_attrs   # as RowSource's
        self.mem = (None if verilog_rows else
                    memory.Memory(shape=layout, depth=depth, init=[], attrs=mem_attrs))
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
        wr = _row_memory(m, self, read=False)
        lfsr = Lfsr(m, self.seed, self.start, self.name)
        off = _off_runs(m, lfsr, self.burst, self.start, self.name)
        ready = ~self.start & ~self.hold & ~off & ~lfsr.below(self.stall)
        take = self.i.valid & ready
        m.d.comb += [
            self.i.ready.eq(ready),
            wr.waddr.eq(self.received), wr.wdata.eq(self.i.payload),
            wr.we.eq(take & (self.received < self.count)),
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
        conns.update({"o_busy": self.busy, "o_error": self.error,
                      "o_rule_error": self.rule_error, "o_stats": self.stats})
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
    verilog_rows : bool
        The row memories as Instances of :data:`ROWS_MEM` (the Verilog the regression
        compiles: write :data:`ROWS_MEM_VERILOG` beside it); default ``lib.memory`` memories.

    Members
    -------
    start : In(1)      a pulse: sources and sink back to row 0, LFSRs seeded, counters cleared.
    seed : In(32)      seeds the LFSRs (each stream mixes in its own constant).
    q_count, kv_count : In  rows the sources stream after ``start`` (all runs' rows).
    cmd : In(stream)   passed to the core (one beat starts a run).
    busy, error, rule_error, stats : Out  the core's.
    q_sent, kv_sent, o_rows : Out  rows moved since ``start``.
    cycles, busy_cycles : Out(32)  cycles since ``start``, and of those the ones with ``busy``.
    violation, violation_cycle : Out  the sink's protocol check of the core's output.
    cmd_busy : Out(1)  sticky until ``start``: the core took a command while ``busy``.
    kv_drop, kv_drop_row : In; kv_drop_fired : Out   a K/V producer that breaks the stream
        rule once (:class:`RowSource`'s ``drop``): valid withdrawn in the cycle the core would
        take K/V row ``kv_drop_row`` (counted from ``start``), the last word of its copy. Only
        on a core whose rows have two words or more (elsewhere the inputs do nothing and
        ``kv_drop_fired`` stays 0).

    Per stream ``s`` of :meth:`streams` (``q``, ``kv``, ``o``, and ``qg``, ``kvg``, ``og``,
    ``kvr`` on cores that have them), each independent of the others:

    ``s_gap`` (sources) or ``s_stall`` (sinks) : In(16)  gap / stall threshold (see
        :func:`~swatkit.rtl.controls.probability_threshold`).
    ``s_hold`` : In(1)  offer / accept nothing new while high (long idles).
    ``s_burst`` : In(16)  bursty on/off runs (:func:`~swatkit.rtl.controls.burst_threshold`;
        0: none).
    ``s_moved`` : Out(32)  the value of ``cycles`` in the stream's last transfer (0: none since
        ``start``); also ``cmd_moved`` for the command.
    ``s_flow`` : Out(2)  the stream's ``valid`` (bit 0) and ``ready`` (bit 1) now; also
        ``cmd_flow``.

    On a core with global tokens, also the global-row engine's streams, loaded per run:
    ``g_start`` (a pulse: their sources and sink back to row 0), ``qg_count`` (the run's global
    rows), ``kvg_count`` (N) and ``kvg_passes`` (2 per run: the K_g/V_g rows are sent that many
    times over, one pass each); ``qg_sent``, ``kvg_sent``, ``og_rows`` and ``og_violation``.

    On a block-sparse core with random blocks, also the random-block K/V stream ``kvr``, loaded
    per run and restarted by ``g_start`` too: ``kvr_count`` (the run's random rows) and
    ``kvr_sent``.
    """

    SEEDS = (0x9E3779B9, 0x7F4A7C15, 0x85EBCA6B)  # mixed into the seed per stream

    def __init__(self, params: CoreParams, core: wiring.Component | None = None, *,
                 depth: int | None = None, mem_attrs=None, interface: str = "core",
                 verilog_rows: bool = False):
        self.params = params
        rows = {"mem_attrs": mem_attrs, "verilog_rows": verilog_rows}
        self.depth = depth or params.hw.max_seq_len
        self.core = core if core is not None else VerilogCore(params, interface=interface)
        lay = core_layouts(params)
        d = self.depth
        dq = self.q_depth = d * params.group_heads   # Q and O rows: g per position
        self.q_src = RowSource(lay["q"], dq, name="tb_q", **rows)
        self.kv_src = RowSource(lay["kv"], d, name="tb_kv", **rows,
                                drop_fault=params.groups >= 2)
        self.o_sink = RowSink(lay["o"], dq, name="tb_o", **rows)
        gmax = params.max_global_tokens
        glob = {}
        if params.global_rows:  # the global-row engine's streams: loaded per run
            n = params.hw.max_seq_len
            self.qg_src = RowSource(lay["q"], gmax, name="tb_qg", **rows)
            self.kvg_src = RowSource(lay["kv"], n, name="tb_kvg", **rows,
                                     max_passes=2)
            self.og_sink = RowSink(lay["o"], gmax, name="tb_og", **rows)
            glob = {"g_start": In(1), "qg_count": In(range(gmax + 1)),
                    "kvg_count": In(range(n + 1)), "kvg_passes": In(range(3)),
                    "qg_sent": Out(range(gmax + 1)), "kvg_sent": Out(range(2 * n + 1)),
                    "og_rows": Out(32), "og_violation": Out(1)}
        if params.max_random_blocks:   # the random blocks' K/V rows of one run
            rdepth = self.random_depth(params)
            self.kvr_src = RowSource(lay["kv"], rdepth, name="tb_kvr", **rows)
            glob.update(kvr_count=In(range(rdepth + 1)), kvr_sent=Out(range(rdepth + 1)))
        controls = {}
        for name, role in self.streams(params):
            controls.update({f"{name}_{'gap' if role == 'src' else 'stall'}": In(THRESHOLD_BITS),
                             f"{name}_hold": In(1), f"{name}_burst": In(THRESHOLD_BITS),
                             f"{name}_moved": Out(32), f"{name}_flow": Out(2)})
        super().__init__({
            **glob,
            **controls,
            "start": In(1),
            "seed": In(32),
            "q_count": In(range(dq + 1)),
            "kv_count": In(range(d + 1)),
            "cmd": In(stream.Signature(lay["cmd"])),
            "busy": Out(1),
            "error": Out(1),
            "rule_error": Out(1),
            "stats": Out(lay["stats"]),
            "kv_drop": In(1),
            "kv_drop_row": In(range(d + 1)),
            "kv_drop_fired": Out(1),
            "q_sent": Out(range(dq + 1)),
            "kv_sent": Out(range(d + 1)),
            "o_rows": Out(32),
            "cycles": Out(32),
            "busy_cycles": Out(32),
            "violation": Out(1),
            "violation_cycle": Out(32),
            "cmd_busy": Out(1),
            "cmd_moved": Out(32),
            "cmd_flow": Out(2),
        })

    @staticmethod
    def streams(params: CoreParams) -> tuple[tuple[str, str], ...]:
        """The harness's streams on a core of ``params``: ``(name, role)`` of :data:`STREAMS`
        with the global streams where the core has global rows (global tokens, not a sink
        core's columns) and ``kvr`` where it has random blocks."""
        have = {"q", "kv", "o"}
        if params.global_rows:
            have |= {"qg", "kvg", "og"}
        if params.max_random_blocks:
            have.add("kvr")
        return tuple((name, role) for name, role in STREAMS if name in have)

    @staticmethod
    def random_depth(params: CoreParams) -> int:
        """Rows of the ``kvr`` source: the most random K/V rows of a run,
        ``(max_seq_len / b − 2)·r·b``."""
        nb = params.hw.max_seq_len // params.block_size
        return max(1, (nb - 2) * params.random_rows)

    def _watch(self, m: Module, name: str, port) -> None:
        """``<name>_moved`` and ``<name>_flow`` of the stream ``port``."""
        moved, flow = getattr(self, f"{name}_moved"), getattr(self, f"{name}_flow")
        m.d.comb += flow.eq(Cat(port.valid, port.ready))
        with m.If(self.start):
            m.d.sync += moved.eq(0)
        with m.Elif(port.valid & port.ready):
            m.d.sync += moved.eq(self.cycles)

    def elaborate(self, platform):
        m = Module()
        m.submodules.core = core = self.core
        units = {"q": self.q_src, "kv": self.kv_src, "o": self.o_sink}
        counts = {"q": self.q_count, "kv": self.kv_count, "o": self.q_depth}
        salts = {"q": 0, "kv": 0, "o": 0}
        mixes = {"q": 0, "kv": 1, "o": 2}
        if self.params.global_rows:
            units.update(qg=self.qg_src, kvg=self.kvg_src, og=self.og_sink)
            counts.update(qg=self.qg_count, kvg=self.kvg_count,
                          og=self.params.max_global_tokens)
            salts.update(qg=0x5A5A5A5A, kvg=0x5A5A5A5A, og=0x5A5A5A5A)
            mixes.update(qg=0, kvg=1, og=2)
        if self.params.max_random_blocks:
            units["kvr"] = self.kvr_src
            counts["kvr"] = self.kvr_count
            salts["kvr"], mixes["kvr"] = 0x3C3C3C3C, 1
        for name, role in self.streams(self.params):
            unit = m.submodules[f"{name}_{role}"] = units[name]
            if role == "src":
                wiring.connect(m, unit.o, getattr(core, name))
                port = unit.o
                m.d.comb += unit.gap.eq(getattr(self, f"{name}_gap"))
            else:
                wiring.connect(m, getattr(core, name), unit.i)
                port = unit.i
                m.d.comb += [unit.stall.eq(getattr(self, f"{name}_stall")),
                             unit.cycle.eq(self.cycles)]
            start = self.start if name in ("q", "kv", "o") else self.g_start
            m.d.comb += [unit.start.eq(start), unit.count.eq(counts[name]),
                         unit.seed.eq(self.seed ^ self.SEEDS[mixes[name]] ^ salts[name]),
                         unit.hold.eq(getattr(self, f"{name}_hold")),
                         unit.burst.eq(getattr(self, f"{name}_burst"))]
            self._watch(m, name, port)
        q, kv, o = self.q_src, self.kv_src, self.o_sink
        wiring.connect(m, tb_cmd=wiring.flipped(self.cmd), core_cmd=core.cmd)
        self._watch(m, "cmd", self.cmd)
        with m.If(self.start):
            m.d.sync += self.cmd_busy.eq(0)
        with m.Elif(self.cmd.valid & self.cmd.ready & core.busy):
            m.d.sync += self.cmd_busy.eq(1)
        m.d.comb += [
            self.busy.eq(core.busy), self.error.eq(core.error), self.stats.eq(core.stats),
            self.rule_error.eq(core.rule_error),
            self.q_sent.eq(q.sent), self.kv_sent.eq(kv.sent), self.o_rows.eq(o.received),
            self.violation.eq(o.violation), self.violation_cycle.eq(o.violation_cycle),
        ]
        if kv.drop_fault:
            m.d.comb += [kv.drop.eq(self.kv_drop), kv.drop_row.eq(self.kv_drop_row),
                         self.kv_drop_fired.eq(kv.drop_fired)]
        if self.params.global_rows:
            qg, kvg, og = self.qg_src, self.kvg_src, self.og_sink
            m.d.comb += [
                kvg.passes.eq(self.kvg_passes), self.qg_sent.eq(qg.sent),
                self.kvg_sent.eq(kvg.sent), self.og_rows.eq(og.received),
                self.og_violation.eq(og.violation),
            ]
        if self.params.max_random_blocks:
            m.d.comb += self.kvr_sent.eq(self.kvr_src.sent)
        m.d.sync += self.cycles.eq(self.cycles + 1)
        with m.If(core.busy):
            m.d.sync += self.busy_cycles.eq(self.busy_cycles + 1)
        with m.If(self.start):
            m.d.sync += [self.cycles.eq(0), self.busy_cycles.eq(0)]
        return m
