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
  run's last row (row N−1; on a core with global tokens ``o`` carries the N − G band rows and
  ``tlast`` marks the last of them).
* A grouped core (``heads`` query heads on ``kv_heads``, g = heads / kv_heads): ``s_axis_q`` and
  ``m_axis_o`` carry g·N rows, the g query heads of position 0, then of position 1, …
  (``tlast`` on row g·N − 1); ``s_axis_kv`` carries N rows, each serving the g heads. A sink
  core: ``s_axis_kv`` carries the run's S sink rows first (its resident columns), then the N
  rows. A core that takes learned sink logits: the sink scores (one per query head) and
  ``sink_on`` are fields of the command's ``tdata``, as of the core's ``cmd`` layout.
* On a core with global tokens (``max_global_tokens`` > 0): ``s_axis_qg``, ``s_axis_kvg`` and
  ``m_axis_og``, the global-row engine's streams (docs/rtl.md), framed the same way; ``tlast``
  on ``og``'s last global row.
* Every ``tdata`` is padded to whole bytes (AXI4-Stream's rule); input padding bits are ignored,
  output padding bits are 0. No ``tkeep``/``tstrb`` (every byte is data). ``tvalid`` never waits
  for ``tready``.
* ``busy``, ``error``, ``rule_error`` and ``stats`` are the core's, unchanged (``rule_error``:
  sticky until ``aresetn``, a producer dropped ``tvalid`` in the middle of a K/V row of two
  words or more, docs/rtl.md).
"""

from __future__ import annotations

from amaranth import ClockDomain, ClockSignal, Module, Mux, ResetSignal, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from swatkit.golden import AttentionSpec, NumberFormat

from .config import CoreParams, HardwareConfig
from .core import SwatCore, core_layouts

__all__ = ["AxisSwatCore", "axis_streams", "byte_width"]


def byte_width(bits: int) -> int:
    """``bits`` rounded up to whole bytes (the width of a ``tdata``)."""
    return 8 * -(-bits // 8)


class AxisSwatCore(wiring.Component):
    """The SWAT core with AXI4-Stream ports (``aclk``, active-low synchronous ``aresetn``).

    Parameters
    ----------
    params, fmt, hw
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
    busy, error, rule_error : Out(1); stats : Out(layout)
        The core's.

    Raises
    ------
    ValueError
        When the configuration cannot implement the spec (see :class:`CoreParams`).
    """

    def __init__(self, params: CoreParams | AttentionSpec, fmt: NumberFormat | None = None,
                 hw: HardwareConfig | None = None):
        self.core = SwatCore(params, fmt, hw)
        self.params = self.core.params
        self.layouts = core_layouts(self.params)
        self.streams = axis_streams(self.params)
        self.tdata_layouts = {f"{side}_axis_{name}_tdata": self.layouts[kind]
                              for name, side, kind in self.streams}
        members = {"aclk": In(1), "aresetn": In(1)}
        for name, direction, kind in self.streams:
            data_in = direction == "s"
            width = byte_width(self.layouts[kind].size)
            members[f"{direction}_axis_{name}_tdata"] = In(width) if data_in else Out(width)
            members[f"{direction}_axis_{name}_tvalid"] = In(1) if data_in else Out(1)
            members[f"{direction}_axis_{name}_tready"] = Out(1) if data_in else In(1)
            if not data_in:
                members[f"m_axis_{name}_tlast"] = Out(1)
        members["busy"] = Out(1)
        members["error"] = Out(1)
        members["rule_error"] = Out(1)
        members["stats"] = Out(self.layouts["stats"])
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        m.domains.sync = ClockDomain("sync")
        m.d.comb += [ClockSignal("sync").eq(self.aclk), ResetSignal("sync").eq(~self.aresetn)]
        m.submodules.core = core = self.core
        live = self.aresetn  # outputs quiet while in reset

        for name, side, kind in self.streams:
            port = getattr(core, name)
            if side == "s":
                m.d.comb += [
                    port.payload.eq(getattr(self, f"s_axis_{name}_tdata")[
                        :self.layouts[kind].size]),
                    port.valid.eq(getattr(self, f"s_axis_{name}_tvalid") & live),
                    getattr(self, f"s_axis_{name}_tready").eq(port.ready & live),
                ]
            else:
                m.d.comb += [
                    getattr(self, f"m_axis_{name}_tdata").eq(port.payload.as_value()),
                    getattr(self, f"m_axis_{name}_tvalid").eq(port.valid & live),
                    port.ready.eq(getattr(self, f"m_axis_{name}_tready") & live),
                ]
        m.d.comb += [self.busy.eq(core.busy), self.error.eq(core.error),
                     self.rule_error.eq(core.rule_error), self.stats.eq(core.stats)]

        # tlast: count the run's output rows against the rows its command asked for
        cmd = core.cmd.payload
        blk = self.params.block_size
        if blk:   # BigBird: the first and last blocks (every row when N <= 2b)
            globals_ = Mux(cmd.seq_len > 2 * blk, 2 * blk, cmd.seq_len)
        else:
            globals_ = cmd.global_count if self.params.global_rows else 0
        for name, side, _ in self.streams:
            if side != "m":
                continue
            port = getattr(core, name)
            rows = Signal(self.params.index_bits, name=f"{name}_rows")
            last_row = Signal(self.params.index_bits, name=f"{name}_last_row")
            # (a grouped core's o: g rows per position)
            hg = self.params.group_heads if name == "o" else 1
            with m.If(core.cmd.valid & core.cmd.ready):
                m.d.sync += [rows.eq(0), last_row.eq(
                    (cmd.seq_len - globals_ if name == "o" else globals_) * hg - 1)]
            with m.Elif(port.valid & port.ready):
                m.d.sync += rows.eq(rows + 1)
            m.d.comb += getattr(self, f"m_axis_{name}_tlast").eq(rows == last_row)
        return m


def axis_streams(params) -> list[tuple[str, str, str]]:
    """``(port, side, layout)`` of every stream of the AXI4-Stream form: ``s`` in, ``m`` out."""
    streams = [("cmd", "s", "cmd"), ("q", "s", "q"), ("kv", "s", "kv"), ("o", "m", "o")]
    if params.global_rows:
        streams += [("qg", "s", "q"), ("kvg", "s", "kv"), ("og", "m", "o")]
    if params.max_random_blocks:
        streams.append(("kvr", "s", "kv"))
    return streams
