"""ContextStore: a decode core's C contexts — the carried registers of each sequence, one record.

What it holds: on a core of C > 1 contexts (``CoreParams.contexts``; docs/rtl.md, "Decode"),
one record per context of the registers a continue carries over — the sequence's length and
pattern (run control), the K/V loader's pointers and credit (ring), the next row's window
(scheduler), the rows sent (core): :func:`context_layout`, a ``StructLayout`` of the stages'
own layouts. The stages keep working on their own registers; the store loads them from the
named context's record when a continue starts and saves them into the running context's
record when a run ends. Each context's K/V rows stay in the ring's memories, in a region of
their own (``KVRing``: ``ctx · kv_depth`` words on), which the engines never see.

Timing: the record is read combinationally at the command's ``ctx`` (a memory of C words with
an asynchronous read: distributed RAM or registers), so a continue's start loads the stages in
the cycle the command is taken — a context switch costs no cycle; the save is one write in the
cycle the run ends (``done``), before the next command can be taken.

Ports:

- ``rd_ctx``: In — the context named by the command on offer; ``load``: Out(record) — its
  record (combinational).
- ``wr_ctx``: In — the running context; ``save``: In(1) — write ``cur`` into its record;
  ``cur``: In(record) — the stages' registers.

A core of one context keeps its registers where they are (no store: its Verilog is the one it
had before contexts existed).
"""

from __future__ import annotations

from amaranth import Module, Shape, Value
from amaranth.lib import data, memory, wiring
from amaranth.lib.wiring import In, Out

from .config import CoreParams

__all__ = ["ContextStore", "carry", "context_layout", "context_signature"]


def context_signature(layout: data.StructLayout) -> wiring.Signature:
    """A stage's side of the store: ``save`` (Out: its carried registers, ``layout``) and
    ``load`` (In: the named context's record of them)."""
    return wiring.Signature({"save": Out(layout), "load": In(layout)})


def context_layout(stages: dict) -> data.StructLayout:
    """The record of one context: ``{stage name: that stage's carried layout}``."""
    return data.StructLayout(stages)


def carry(m: Module, port, regs: dict, load) -> None:
    """A stage's carried registers ``regs`` (``{field: Signal}``, the fields of its ``port``'s
    layout, widths equal) shown on ``port.save`` and loaded from ``port.load`` when ``load``
    (a continue starts; ``None``: the stage reads its record itself). Called last in the
    stage's ``elaborate``: the load wins over the stage's own statements of that cycle."""
    fields = dict(port.save.shape().members)
    if set(fields) != set(regs):
        raise ValueError(f"carried registers {sorted(regs)} differ from the layout's "
                         f"{sorted(fields)}")
    for name, sig in regs.items():
        if Value.cast(sig).shape().width != Shape.cast(fields[name]).width:
            raise ValueError(f"carried register {name}: {Value.cast(sig).shape()}, the layout's "
                             f"{fields[name]}")
        m.d.comb += getattr(port.save, name).eq(sig)
        if load is None:
            continue
        with m.If(load):
            m.d.sync += sig.eq(getattr(port.load, name))


class ContextStore(wiring.Component):
    """The C records of a decode core's contexts (module docstring).

    Parameters
    ----------
    params : CoreParams
        A core of ``contexts`` > 1.
    layout : data.StructLayout
        One context's record (:func:`context_layout`).
    """

    def __init__(self, params: CoreParams, layout: data.StructLayout):
        if params.contexts < 2:
            raise ValueError(f"a context store needs 2 contexts or more, not {params.contexts}")
        self.params, self.layout = params, layout
        c = params.contexts
        super().__init__({
            "rd_ctx": In(range(c)),
            "load": Out(layout),
            "wr_ctx": In(range(c)),
            "save": In(1),
            "cur": In(layout),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.records = mem = memory.Memory(shape=self.layout,
                                                   depth=self.params.contexts, init=[])
        rd = mem.read_port(domain="comb")
        wr = mem.write_port()
        m.d.comb += [rd.addr.eq(self.rd_ctx), self.load.eq(rd.data),
                     wr.addr.eq(self.wr_ctx), wr.data.eq(self.cur), wr.en.eq(self.save)]
        return m
