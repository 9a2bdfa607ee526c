"""Yosys 0.70's ABC9 abort on Amaranth's field names: how the ECP5 flow avoids it and how it
recognises it.

Amaranth names every field of a signal whose shape is a ``data`` layout: the Normaliser's output
payload ``o__payload``, an ``ArrayLayout(signed(8), 64)`` (rtl/normaliser.py), comes with the wires
``o__payload[0]`` … ``o__payload[63]`` (8 bits each) beside the 512-bit ``o__payload``. ABC9 hands
the mapped logic back to Yosys (``abc_ops_reintegrate``) as one-bit wires named ``NAME[INDEX]``
and rebuilds each vector ``NAME`` from those names, so bit 19 of ``o__payload`` and the element
wire ``o__payload[19]`` are the same name to it. When the bits of both are ABC9 inputs or
outputs (register outputs, for instance), it connects a one-bit slice of one to the whole of the
other, and Yosys aborts with ``Assert `GetSize(conn.first) == GetSize(conn.second)' failed``
(kernel/rtlil.cc:3091) or, with the names in the other order, ``Assert `count_id(wire->name) == 0'
failed`` (kernel/rtlil.cc:2872). Which bits get which name depends on the whole netlist, so a
change anywhere can make the abort come or go. ``tests/fpga_flows/data/abc9_field_names.v`` (ten
lines) and ``abc9_field_names.il`` (a two-element array register, from Amaranth) abort in under a
second; docs/fpga.md tells how the 4 × 8 ULX3S netlist was traced to ``o__payload``.

The field wires are aliases of their vector's bits, so :data:`HIDE_FIELD_NAMES` gives them private
names after the design is read (no logic changes; ports keep their names) and ABC9 sees no such
pair. :func:`abort` recognises the abort in a Yosys log. The ECP5 flow (:func:`flow.run`) builds
with Amaranth's script as it is and, only when ABC9 aborts, again with the names hidden
(:func:`hide_field_names`, the project's ``<name>.abc9r.ys``), then with the classic ABC should
that abort too: a netlist that does not abort keeps its names, and with them nextpnr's placement
(the names feed its hashing: the ULX3S default, 2 × 8 lanes, placed at 95.01 MHz with the names
hidden against 100.59 MHz without, nextpnr seed 3 both).
"""

import re

# Yosys command (after read_rtlil: hide_field_names): the wires with "[" in their public name
# (Amaranth's field wires; ports keep their names) get private ones
HIDE_FIELD_NAMES = "rename -hide w:*[[]*"

# the passes of Yosys' abc9 script where the name clash aborts (the log's last heading before the
# error names the pass: "2.46.12.7. Executing ABC_OPS_REINTEGRATE pass (...)")
ABORT_PASSES = ("ABC_OPS_REINTEGRATE",)

_ASSERT = re.compile(r"^ERROR: Assert `.*' failed[^\n]*", re.MULTILINE)
_HEADING = re.compile(r"^\d+(?:\.\d+)*\. (?:Executing )?(\w+)", re.MULTILINE)


def abort(log: str) -> str | None:
    """The ``ERROR: Assert …`` line of a Yosys log that ends in an assertion inside one of
    :data:`ABORT_PASSES` (the pass named by the last numbered heading before it), else
    ``None``: other errors (a missing module, a failed check) are not ABC9's abort."""
    error = _ASSERT.search(log)
    if error is None:
        return None
    headings = _HEADING.findall(log, 0, error.start())
    return error[0] if headings and headings[-1] in ABORT_PASSES else None


def hide_field_names(ys: str) -> str:
    """The Yosys script ``ys`` with :data:`HIDE_FIELD_NAMES` right after its ``read_rtlil``
    line. Raises ``ValueError`` if it reads no RTLIL."""
    lines = ys.splitlines(keepends=True)
    for i, line in enumerate(lines):
        if line.startswith("read_rtlil "):
            return "".join([*lines[:i + 1], HIDE_FIELD_NAMES + "\n", *lines[i + 1:]])
    raise ValueError("the Yosys script reads no RTLIL (no read_rtlil line)")
