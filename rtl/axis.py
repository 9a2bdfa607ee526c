"""AxisSwatCore: the SWAT core behind AXI4-Stream ports, for Verilog projects.

What it is: :class:`~swatkit.rtl.SwatCore` unchanged, with its streams renamed and framed the
AXI4-Stream way (ARM IHI 0051), so that a Verilog user can connect it to a DMA or an interconnect
without reading Python. Latency and throughput are the core's; the wrapper adds no register on
the data path.

* Clock ``aclk``; reset ``aresetn``: synchronous, active low (held low for at least one rising
  edge of ``aclk``). While it is low every ``tvalid`` and ``tready`` output is low.
* ``s_axis_cmd``: one beat starts a run; ``tdata[index_bits-1:0]`` is N, the rows of the run
  (0, or above ``max_seq_len``, is rejected: ``error`` rises and nothing starts).
* ``s_axis_q``, ``s_axis_kv``: one Q row, one K and one V row per beat, rows 0 … N−1 in order;
  element ``e`` of a row is the signed ``data_bits`` field at bit ``e·data_bits``; in a K/V beat
  the K row comes first (low bits), then the V row.
* ``m_axis_o``: one O row per beat (signed ``out_bits`` elements, same order); ``tlast`` on the
  run's last row (row N−1).
* Every ``tdata`` is padded to whole bytes (AXI4-Stream's rule); input padding bits are ignored,
  output padding bits are 0. No ``tkeep``/``tstrb`` (every byte is data). ``tvalid`` never waits
  for ``tready``.
* ``busy``, ``error`` and ``stats`` are the core's, unchanged.
"""

from __future__ import annotations

from amaranth import ClockDomain, ClockSignal, Module, ResetSignal, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from swatkit.golden import AttentionSpec, NumberFormat

from .config import HardwareConfig
from .core import SwatCore, core_layouts

__all__ = ["AxisSwatCore", "byte_width"]


def byte_width(bits: int) -> int:
    """``bits`` rounded up to whole bytes (the width of a ``tdata``)."""
    return 8 * -(-bits // 8)


class AxisSwatCore(wiring.Component):
    """The SWAT core with AXI4-Stream ports (``aclk``, active-low synchronous ``aresetn``).

    Parameters
    ----------
    spec, fmt, hw
        As for :class:`~swatkit.rtl.SwatCore`.

    Members
    -------
    aclk, aresetn : In(1)
        Clock, and synchronous active-low reset.
    s_axis_cmd_tdata, s_axis_cmd_tvalid : In; s_axis_cmd_tready : Out
        Starts a run of N rows (``tdata``: N).
    s_axis_q_tdata, s_axis_q_tvalid : In; s_axis_q_tready : Out
        Q rows.
    s_axis_kv_tdata, s_axis_kv_tvalid : In; s_axis_kv_tready : Out
        K and V rows (K in the low half).
    m_axis_o_tdata, m_axis_o_tvalid, m_axis_o_tlast : Out; m_axis_o_tready : In
        O rows; ``tlast`` on row N−1.
    busy, error : Out(1); stats : Out(layout)
        The core's.

    Raises
    ------
    ValueError
        When the configuration cannot implement the spec (see :class:`CoreParams`).
    """

    def __init__(self, spec: AttentionSpec, fmt: NumberFormat | None = None,
                 hw: HardwareConfig | None = None):
        self.core = SwatCore(spec, fmt, hw)
        self.params = self.core.params
        self.layouts = core_layouts(self.params)
        self.tdata_layouts = {"s_axis_cmd_tdata": self.layouts["cmd"],
                              "s_axis_q_tdata": self.layouts["q"],
                              "s_axis_kv_tdata": self.layouts["kv"],
                              "m_axis_o_tdata": self.layouts["o"]}
        members = {"aclk": In(1), "aresetn": In(1)}
        for name, direction in (("cmd", "s"), ("q", "s"), ("kv", "s"), ("o", "m")):
            data_in = direction == "s"
            width = byte_width(self.layouts[name].size)
            members[f"{direction}_axis_{name}_tdata"] = In(width) if data_in else Out(width)
            members[f"{direction}_axis_{name}_tvalid"] = In(1) if data_in else Out(1)
            members[f"{direction}_axis_{name}_tready"] = Out(1) if data_in else In(1)
        members["m_axis_o_tlast"] = Out(1)
        members["busy"] = Out(1)
        members["error"] = Out(1)
        members["stats"] = Out(self.layouts["stats"])
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        m.domains.sync = ClockDomain("sync")
        m.d.comb += [ClockSignal("sync").eq(self.aclk), ResetSignal("sync").eq(~self.aresetn)]
        m.submodules.core = core = self.core
        live = self.aresetn  # outputs quiet while in reset

        for name in ("cmd", "q", "kv"):
            port = getattr(core, name)
            m.d.comb += [
                port.payload.eq(getattr(self, f"s_axis_{name}_tdata")[:self.layouts[name].size]),
                port.valid.eq(getattr(self, f"s_axis_{name}_tvalid") & live),
                getattr(self, f"s_axis_{name}_tready").eq(port.ready & live),
            ]
        m.d.comb += [
            self.m_axis_o_tdata.eq(core.o.payload.as_value()),
            self.m_axis_o_tvalid.eq(core.o.valid & live),
            core.o.ready.eq(self.m_axis_o_tready & live),
            self.busy.eq(core.busy),
            self.error.eq(core.error),
            self.stats.eq(core.stats),
        ]

        # tlast: count the run's output rows against the N its command started
        index_bits = self.params.index_bits
        rows = Signal(index_bits)
        last_row = Signal(index_bits)
        with m.If(core.cmd.valid & core.cmd.ready):
            m.d.sync += [rows.eq(0), last_row.eq(core.cmd.payload.seq_len - 1)]
        with m.Elif(core.o.valid & core.o.ready):
            m.d.sync += rows.eq(rows + 1)
        m.d.comb += self.m_axis_o_tlast.eq(rows == last_row)
        return m
