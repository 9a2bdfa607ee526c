"""IP packaging of a generated core: a SystemVerilog package of its widths and port layouts,
a ``.f`` file list and a FuseSoC CAPI2 ``.core`` file.

Everything here is written from the objects the core is built with: the payload layouts come
from :func:`swatkit.rtl.core.core_layouts` (the same objects the core's ports and the
testbenches use), the sizes from :class:`~swatkit.rtl.config.CoreParams`, so a field's name,
offset and width in the package are the core's by construction. :func:`swatkit.rtl.generate.
generate` writes the three files beside the Verilog and lists them in ``swatkit.json``.

Package ``<name>_pkg`` (``<name>_pkg.sv``), for each port payload ``P`` (``cmd``, ``q``,
``kv``, ``o``, ``stats``; ``P`` upper-case in parameter names):

- ``P_WIDTH``; for a struct, each field ``F``'s ``P_F_OFFSET`` and ``P_F_WIDTH``; for an array
  (a row), ``P_COUNT`` elements of ``P_STRIDE`` bits, element ``i`` at ``[i·STRIDE +:
  STRIDE]``; nested the same way (``CMD_GLOBAL_TOKENS_COUNT``, ``KV_K_STRIDE``);
- a packed type ``p_t`` with the same bits: a ``struct packed`` whose members carry the
  field names (SystemVerilog lists packed members from the top bit down, so they appear in
  reverse order of offset; a name that is a SystemVerilog keyword gets a trailing ``_``: the
  command's ``before`` is the member ``before_``), a packed array of ``p_elem_t`` for a row
  (element ``i`` is ``row[i]``).

A command written as an assignment pattern with named members, ``cmd_t'{seq_len: …, before:
…, after: …}``, sizes each value to its field, and a member left out is a compile error (a
core generated with ``--max-dilation`` or ``--max-global-tokens`` has more command fields than
the default one: code written for another core does not compile silently).
"""

from __future__ import annotations

import json

from amaranth.hdl import Shape
from amaranth.lib import data

from swatkit.version import __version__

from .config import CoreParams
from .core import core_layouts

__all__ = ["file_list", "fusesoc_core", "package_name", "sv_package", "vlnv"]

PORTS = ("cmd", "q", "kv", "o", "stats")   # the payload layouts of core_layouts, in port order

# IEEE 1800-2017 keywords beyond IEEE 1364-2005's (which generate.VERILOG_KEYWORDS has): a
# layout field of that name (the command's ``before``) becomes the struct member ``before_``
_SV_KEYWORDS = """
accept_on alias always_comb always_ff always_latch assert assume before bind bins binsof bit
break byte chandle checker class clocking const constraint context continue cover covergroup
coverpoint cross dist do endchecker endclass endclocking endgroup endinterface endpackage
endprogram endproperty endsequence enum eventually expect export extends extern final
first_match foreach forkjoin global iff ignore_bins illegal_bins implements implies import
inside int interconnect interface intersect join_any join_none let local logic longint matches
modport nettype new nexttime null package packed priority program property protected pure rand
randc randcase randsequence ref reject_on restrict return s_always s_eventually s_nexttime
s_until s_until_with sequence shortint shortreal soft solve static string strong struct super
sync_accept_on sync_reject_on tagged this throughout timeprecision timeunit type typedef union
unique unique0 until until_with untyped var virtual void wait_order weak wildcard with within
"""
SV_KEYWORDS = frozenset(_SV_KEYWORDS.split())


def member(field: str) -> str:
    """The struct member for layout field ``field``: the same name, ``field_`` for a
    SystemVerilog keyword."""
    from .generate import VERILOG_KEYWORDS

    return f"{field}_" if field in SV_KEYWORDS or field in VERILOG_KEYWORDS else field


def package_name(name: str) -> str:
    """The SystemVerilog package of core ``name``: ``<name>_pkg``."""
    return f"{name}_pkg"


def vlnv(name: str) -> str:
    """The FuseSoC name of a generated core: ``swatkit:generated:<name>:<swatkit version>``."""
    return f"swatkit:generated:{name}:{__version__}"


def _scalar(shape) -> str:
    s = Shape.cast(shape)
    sign = " signed" if s.signed else ""
    return f"logic{sign} [{s.width - 1}:0]" if s.width > 1 or s.signed else "logic"


def _declare(path: list[str], shape, params: list[str], types: list[str]) -> str:
    """Parameters and typedefs of ``shape`` at ``path`` (appended to ``params``/``types``,
    inner types first); returns the SystemVerilog type of ``shape``."""
    upper = "_".join(path).upper()
    params.append(f"  localparam int {upper}_WIDTH = {Shape.cast(shape).width};")
    if isinstance(shape, data.StructLayout):
        members = []
        for field_name, field in shape:
            inner = [*path, field_name]
            fu = "_".join(inner).upper()
            params.append(f"  localparam int {fu}_OFFSET = {field.offset};")
            kind = _declare(inner, field.shape, params, types)
            top = field.offset + Shape.cast(field.shape).width - 1
            renamed = member(field_name)
            note = f" ({field_name!r} is a SystemVerilog keyword)" if renamed != field_name else ""
            members.append((field.offset, f"    {kind} {renamed};  // [{top}:{field.offset}]"
                                          + note))
        name = "_".join(path) + "_t"
        types.append("  typedef struct packed {\n"
                     + "\n".join(text for _, text in sorted(members, reverse=True))
                     + f"\n  }} {name};")
        return name
    if isinstance(shape, data.ArrayLayout):
        stride = Shape.cast(shape.elem_shape).width
        params.append(f"  localparam int {upper}_COUNT = {shape.length};")
        params.append(f"  localparam int {upper}_STRIDE = {stride};")
        elem = _declare([*path, "elem"], shape.elem_shape, [], types)
        if not isinstance(shape.elem_shape, data.Layout):
            elem = "_".join(path) + "_elem_t"
            types.append(f"  typedef {_scalar(shape.elem_shape)} {elem};")
        name = "_".join(path) + "_t"
        types.append(f"  typedef {elem} [{upper}_COUNT-1:0] {name};  "
                     f"// element i at [{stride}i+{stride - 1}:{stride}i]")
        return name
    return _scalar(shape)


def sv_package(name: str, params: CoreParams, port_list: list[dict],
               config_lines: list[str], regenerate: bool = True) -> str:
    """The text of ``<name>_pkg.sv``: the core's sizes and, for every port payload, its width,
    field offsets and widths and a packed type (see the module docstring). ``port_list`` (from
    :func:`swatkit.rtl.generate.ports`) adds the width of every AXI4-Stream ``tdata`` port, which
    is padded to whole bytes; ``config_lines`` is the configuration the header states, and
    ``regenerate`` whether ``swatkit generate --config swatkit.json`` makes it again."""
    p = params
    sizes = [
        ("HEAD_DIM", p.spec.head_dim, "elements of a Q, K, V or O row"),
        ("DATA_BITS", p.fmt.data_bits, "a Q, K, V element: signed"),
        ("OUT_BITS", p.fmt.out_bits, "an O element: signed"),
        ("OUT_FRAC_BITS", p.fmt.out_frac_bits, "fraction bits of an O element"),
        ("MAX_SEQ_LEN", p.hw.max_seq_len, "the largest cmd.seq_len"),
        ("INDEX_BITS", p.index_bits, "a row index or row count"),
        ("WINDOW_BEFORE", p.spec.before, "the generated window: keys before the row"),
        ("WINDOW_AFTER", p.spec.after, "and after it (0: causal)"),
        ("MAX_DILATION", p.max_dilation, "the largest cmd.dilation"),
        ("MAX_GLOBAL_TOKENS", p.max_global_tokens, "global tokens (BigBird: its global rows)"),
        ("BLOCK_SIZE", p.block_size, "BigBird block size (0: a sliding-window core)"),
        ("MAX_RANDOM_BLOCKS", p.max_random_blocks, "the largest cmd.random_blocks"),
        ("KEY_LANES", p.hw.key_lanes, ""),
        ("DIM_LANES", p.hw.dim_lanes, ""),
    ]
    pkg = package_name(name)
    lines = [f"// {pkg}: widths and port layouts of {name} ({name}.v), generated by swatkit "
             f"{__version__}",
             "// from the layouts the core is built with (swatkit.rtl.core.core_layouts).",
             *(["// Regenerate with: swatkit generate --config swatkit.json (beside this file)."]
               if regenerate else []),
             "//",
             *(f"// {line}".rstrip() for line in config_lines),
             "//",
             "// Every payload P has P_WIDTH; a struct field F has P_F_OFFSET and P_F_WIDTH; a "
             "row (array)",
             "// has P_COUNT elements of P_STRIDE bits, element i at [i*STRIDE +: STRIDE]. The "
             "packed types",
             "// p_t have the same bits; a struct's members are listed from the top bit down.",
             f"package {pkg};",
             "",
             "  // constants for the code around the core, which uses some of them",
             "  /* verilator lint_off UNUSEDPARAM */",
             "  // sizes fixed at generation"]
    width = max(len(n) for n, _, _ in sizes)
    for key, value, why in sizes:
        lines.append(f"  localparam int {key:<{width}} = {value};"
                     + (f"  // {why}" if why else ""))
    layouts = core_layouts(params)
    for port in PORTS:
        decl, types = [], []
        _declare([port], layouts[port], decl, types)
        lines += ["", f"  // {port}", *decl, *types]
    tdata = [q for q in port_list if q["name"].endswith("_tdata")]
    if tdata:
        lines += ["", "  // AXI4-Stream tdata ports: the payload in the low bits, padded with "
                  "zeros to whole bytes"]
        lines += [f"  localparam int {q['name'].upper()}_WIDTH = {q['width']};" for q in tdata]
    lines += ["  /* verilator lint_on UNUSEDPARAM */", "", f"endpackage : {pkg}", ""]
    return "\n".join(lines)


def file_list(name: str, files: list[str]) -> str:
    """The text of ``<name>.f``: the HDL sources in compile order, one per line, relative to
    the file list's folder (``verilator -F``, ``vcs -F``, ``xrun -F`` read them so)."""
    return (f"// {name}: HDL sources in compile order, relative to this file (read it with -F)\n"
            + "".join(f"{f}\n" for f in files))


def _q(text: str) -> str:
    return json.dumps(text)   # a JSON string is a YAML double-quoted scalar


def fusesoc_core(name: str, description: str, sources: list[tuple[str, str]],
                 waivers: str) -> str:
    """The text of ``<name>.core``, a FuseSoC CAPI2 description of the generated core.

    Filesets: ``rtl`` (``sources``: (file, FuseSoC file type) in compile order) and
    ``verilator_waivers`` (the ``.vlt``). Targets: ``default`` (the sources, top ``name``) and
    ``lint`` (Edalize's lint flow with Verilator: ``--lint-only -Wall`` with the waivers)."""
    lines = ["CAPI=2:",
             f"# {name}: FuseSoC description written by swatkit {__version__} (swatkit "
             "generate); regenerate, do not edit",
             f"name: {_q(vlnv(name))}",
             f"description: {_q(description)}",
             "",
             "filesets:",
             "  rtl:",
             "    files:",
             *(f"      - {_q(f)}: {{file_type: {kind}}}" for f, kind in sources),
             "  verilator_waivers:",
             "    files:",
             f"      - {_q(waivers)}: {{file_type: vlt}}",
             "",
             "targets:",
             "  default:",
             "    filesets: [rtl]",
             f"    toplevel: {name}",
             "  lint:",
             "    description: \"verilator --lint-only -Wall with the generated waivers\"",
             "    filesets: [rtl, verilator_waivers]",
             "    flow: lint",
             "    flow_options:",
             "      tool: verilator",
             "      verilator_options: [-Wall]",
             f"    toplevel: {name}",
             ""]
    return "\n".join(lines)
