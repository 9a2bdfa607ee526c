"""Normaliser: the deferred softmax normalisation of a row, and the output FIFO behind it.

What it computes: ``o_c = fmt.normalise(acc_c, l)`` (step 6 of :mod:`swatkit.golden.numerics`:
``round(acc_c / l)`` with its rounding, saturated to ``out_bits``) for each of a row's
``head_dim`` accumulators, ``dim_lanes`` of them per cycle through pipelined dividers
(:func:`~swatkit.rtl.units.divide_stages`), and assembles the row for ``o``. Both the band core
(:class:`~swatkit.rtl.core.SwatCore`) and the global-row engine
(:class:`~swatkit.rtl.global_rows.GlobalRowEngine`) end in it.

Throughput: one group (``dim_lanes`` accumulators and the row's ``l``) per cycle, a row per
``G = head_dim / dim_lanes`` groups. Latency: ``divider_latency(fmt)`` cycles from a group's
transfer on ``i`` to its quotients, one to the row register, then the FIFO (:data:`DEPTH`).
The dividers and the row register move together under one enable (``i.ready``): it drops only
while a whole row waits for room in the FIFO. The rows leave through a FIFO so that
``o.ready`` reaches no pipeline enable.

Ports (stream rule of :mod:`swatkit.rtl.units`):

- ``i``: In(stream(:func:`group_layout`)) — a row's groups in order, ``{acc, total}``.
- ``o``: Out(stream) — the rows (``head_dim`` signed ``out_bits`` elements).
- with ``drop=True``: ``pending`` (Out: a row is assembled and not yet gone), ``drop`` (In: that
  row is discarded instead of sent; asserted only with ``pending``), ``leave`` (Out: the row
  goes, sent to the FIFO or discarded, this cycle).
"""

from __future__ import annotations

from amaranth import Cat, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, fifo, stream, wiring
from amaranth.lib.wiring import In, Out

from swatkit.golden import NumberFormat

from .units import divide_stages, divider_latency, state_invariants

__all__ = ["DEPTH", "Normaliser", "group_layout"]

DEPTH = 3   # rows of the output FIFO


def group_layout(dim_lanes: int, acc_bits: int, sum_bits: int) -> data.StructLayout:
    """A group of a row: ``dim_lanes`` signed accumulators and the row's ``l``."""
    return data.StructLayout({"acc": data.ArrayLayout(signed(acc_bits), dim_lanes),
                              "total": unsigned(sum_bits)})


class Normaliser(wiring.Component):
    """The row normaliser and output FIFO (module docstring).

    Parameters
    ----------
    fmt : NumberFormat
    head_dim, dim_lanes : int
        Elements of a row, and of a group (``dim_lanes`` divides ``head_dim``).
    acc_bits, sum_bits : int
        Widths of an accumulator and of ``l``.
    drop : bool
        With the ``pending``/``drop``/``leave`` ports (a row can be discarded).
    """

    def __init__(self, fmt: NumberFormat, head_dim: int, dim_lanes: int, acc_bits: int,
                 sum_bits: int, *, drop: bool = False):
        if head_dim % dim_lanes:
            self._MustUse__silence = True   # (not built: no "created but never used" warning)
            raise ValueError(f"dim_lanes ({dim_lanes}) must divide head_dim ({head_dim})")
        self.fmt, self.head_dim, self.dim_lanes, self.can_drop = fmt, head_dim, dim_lanes, drop
        self.groups = head_dim // dim_lanes
        members = {
            "i": In(stream.Signature(group_layout(dim_lanes, acc_bits, sum_bits))),
            "o": Out(stream.Signature(data.ArrayLayout(signed(fmt.out_bits), head_dim))),
        }
        if drop:
            members.update(pending=Out(1), drop=In(1), leave=Out(1))
        super().__init__(members)
        latency = divider_latency(fmt)
        # not ports (for the invariants of the stage that feeds it): groups in the dividers and
        # the row register; whole rows in the row register and the FIFO; nothing inside
        self.groups_inside = Signal(range(latency + self.groups + 1))
        self.rows_inside = Signal(range(DEPTH + 2))
        self.idle = Signal()

    def elaborate(self, platform):
        m = Module()
        fmt, d, dl, g = self.fmt, self.head_dim, self.dim_lanes, self.groups
        ofifo = fifo.SyncFIFOBuffered(width=d * fmt.out_bits, depth=DEPTH)
        m.submodules.ofifo = ofifo
        div_en = Signal()
        o_valid = Signal()
        m.d.comb += self.i.ready.eq(div_en)
        accs = [self.i.payload.acc[u] for u in range(dl)]
        outs = divide_stages(m, div_en, accs, self.i.payload.total, fmt, name="norm")
        dvalid = self.i.valid
        norm_valid = []
        for k in range(divider_latency(fmt)):
            dvalid_r = Signal(name=f"norm_valid{k}")
            with m.If(div_en):
                m.d.sync += dvalid_r.eq(dvalid)
            dvalid = dvalid_r
            norm_valid.append(dvalid_r)
        o_row = Signal(d * fmt.out_bits)
        o_cnt = Signal(range(max(g, 2)))
        with m.If(div_en & dvalid):
            m.d.sync += o_row.eq(Cat(o_row[dl * fmt.out_bits:], *outs))
            m.d.sync += o_cnt.eq(Mux(o_cnt == g - 1, 0, o_cnt + 1))
        if self.can_drop:
            leave = o_valid & (ofifo.w_rdy | self.drop)
            m.d.comb += [div_en.eq(~o_valid | ofifo.w_rdy | self.drop),
                         ofifo.w_en.eq(o_valid & ~self.drop), ofifo.w_data.eq(o_row),
                         self.pending.eq(o_valid), self.leave.eq(leave)]
        else:
            leave = o_valid & ofifo.w_rdy
            m.d.comb += [div_en.eq(~o_valid | ofifo.w_rdy),
                         ofifo.w_en.eq(o_valid), ofifo.w_data.eq(o_row)]
        with m.If(leave):
            m.d.sync += o_valid.eq(0)
        with m.If(div_en & dvalid & (o_cnt == g - 1)):
            m.d.sync += o_valid.eq(1)
        m.d.comb += [self.o.valid.eq(ofifo.r_rdy), self.o.payload.eq(ofifo.r_data),
                     ofifo.r_en.eq(self.o.ready)]

        # -- invariants ------------------------------------------------------------------------
        m.d.comb += [self.groups_inside.eq(sum(norm_valid) + o_cnt),
                     self.rows_inside.eq(ofifo.level + o_valid),
                     self.idle.eq(~Cat(o_valid, *norm_valid, o_cnt).any()
                                  & (ofifo.level == 0))]
        state_invariants(m, platform, [
            (o_cnt < g if g > 1 else o_cnt == 0, "inv: output group counter in range"),
            (ofifo.level <= ofifo.depth, "inv: output FIFO level"),
        ])
        return m
