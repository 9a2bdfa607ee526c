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
The dividers have no enable: they move every cycle, and their quotients go straight into the
row register, or, while a whole row waits there for room in the FIFO, into a skid buffer of
``divider_latency + 1`` groups in front of it. ``i.ready`` is a counter of the groups in
flight compared with that constant, so it is never low in a stall-free run (the latency and the
cycle counts are those of the dividers alone). The rows leave through a FIFO so that
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

from .units import divide_stages, divider_latency, skid_buffer, state_invariants

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
        self.groups_inside = Signal(range(2 * latency + self.groups + 2))
        self.rows_inside = Signal(range(DEPTH + 2))
        self.idle = Signal()
        # (for the tests: quotient groups waiting in the skid buffer)
        self.skid_level = Signal(range(latency + 2))

    def elaborate(self, platform):
        m = Module()
        fmt, d, dl, g = self.fmt, self.head_dim, self.dim_lanes, self.groups
        latency = divider_latency(fmt)
        ofifo = fifo.SyncFIFOBuffered(width=d * fmt.out_bits, depth=DEPTH)
        m.submodules.ofifo = ofifo
        # the groups in flight (in the dividers and the skid buffer): a group is taken while
        # fewer than the skid buffer holds are, so none is ever lost
        inflight = Signal(range(latency + 2), name="norm_inflight")
        m.d.comb += self.i.ready.eq(inflight < latency + 1)
        accs = [self.i.payload.acc[u] for u in range(dl)]
        outs = divide_stages(m, 1, accs, self.i.payload.total, fmt, name="norm")
        dvalid = self.i.valid & self.i.ready
        norm_valid = []
        for k in range(latency):
            dvalid_r = Signal(name=f"norm_valid{k}")
            m.d.sync += dvalid_r.eq(dvalid)
            dvalid = dvalid_r
            norm_valid.append(dvalid_r)
        # the skid buffer: a group goes straight into the row register when the buffer is
        # empty and the register takes it
        o_valid = Signal()
        asm = Signal()   # the row register takes a group this cycle
        skid = skid_buffer(m, platform, "skid", Cat(*outs), dvalid, asm, latency + 1)
        head = skid.word
        m.d.sync += inflight.eq(inflight + (self.i.valid & self.i.ready) - asm)
        o_row = Signal(d * fmt.out_bits)
        o_cnt = Signal(range(max(g, 2)))
        with m.If(asm):
            m.d.sync += o_row.eq(Cat(o_row[dl * fmt.out_bits:], head))
            m.d.sync += o_cnt.eq(Mux(o_cnt == g - 1, 0, o_cnt + 1))
        room = ~o_valid | ofifo.w_rdy   # the row register takes a group (or drops its row)
        if self.can_drop:
            room = room | self.drop
            leave = o_valid & (ofifo.w_rdy | self.drop)
            m.d.comb += [ofifo.w_en.eq(o_valid & ~self.drop), ofifo.w_data.eq(o_row),
                         self.pending.eq(o_valid), self.leave.eq(leave)]
        else:
            leave = o_valid & ofifo.w_rdy
            m.d.comb += [ofifo.w_en.eq(o_valid), ofifo.w_data.eq(o_row)]
        m.d.comb += asm.eq(skid.valid & room)
        with m.If(leave):
            m.d.sync += o_valid.eq(0)
        with m.If(asm & (o_cnt == g - 1)):
            m.d.sync += o_valid.eq(1)
        m.d.comb += [self.o.valid.eq(ofifo.r_rdy), self.o.payload.eq(ofifo.r_data),
                     ofifo.r_en.eq(self.o.ready)]

        # -- invariants ------------------------------------------------------------------------
        m.d.comb += [self.groups_inside.eq(sum(norm_valid) + skid.level + o_cnt),
                     self.rows_inside.eq(ofifo.level + o_valid),
                     self.skid_level.eq(skid.level),
                     self.idle.eq(~Cat(o_valid, *norm_valid, o_cnt).any()
                                  & (ofifo.level == 0) & (skid.level == 0))]
        state_invariants(m, platform, [
            (o_cnt < g if g > 1 else o_cnt == 0, "inv: output group counter in range"),
            (ofifo.level <= ofifo.depth, "inv: output FIFO level"),
            (inflight == sum(norm_valid) + skid.level,
             "inv: groups in flight = groups in the dividers and the skid buffer"),
        ])
        return m
