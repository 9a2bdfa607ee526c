"""Verilog generation: a configured :class:`SwatCore` (or its AXI4-Stream wrapper) →
``<name>.v`` (opening with a comment: version, configuration, clock and reset, ports),
``swatkit.json`` (the fully resolved configuration, derived widths, every port's bit layout, the
file list, and a ``"config"`` record that ``swatkit generate --config`` accepts),
``<name>.vlt`` (Verilator lint waivers) and the IP packaging of :mod:`swatkit.rtl.packaging`:
``<name>_pkg.sv`` (a SystemVerilog package of the widths and port layouts), ``<name>.f`` (file
list) and ``<name>.core`` (FuseSoC).
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from amaranth.back import verilog
from amaranth.hdl import Shape
from amaranth.lib import data, wiring

from swatkit.golden import AttentionSpec, NumberFormat
from swatkit.golden.checks import ConfigTypeError, ConfigValueError
from swatkit.support.toml_text import dumps
from swatkit.support.version import __version__

from .axis import AxisSwatCore
from .config import CoreParams, HardwareConfig
from .core import SwatCore
from .packaging import (
    VERILOG_KEYWORDS,
    file_list,
    fusesoc_core,
    package_name,
    sv_package,
    testbench,
)
from .units import DSP_TARGETS, DspTarget

__all__ = [
    "INTERFACES",
    "Generated",
    "LintError",
    "check_target",
    "describe_layout",
    "generate",
    "header",
    "lint",
    "ports",
    "waivers",
]

INTERFACES = ("core", "axis")   # the core's own stream ports, or AXI4-Stream (rtl/axis.py)



class LintError(RuntimeError):
    """Verilator reported warnings that no waiver covers."""


@dataclass(frozen=True)
class Generated:
    verilog: Path
    config: Path
    waivers: Path
    sim_models: Path | None = None   # Verilog models of the vendor primitives used, if any
    removed: tuple[Path, ...] = ()   # stale files of an earlier run in the folder, removed
    package: Path | None = None      # <name>_pkg.sv: widths and port layouts
    file_list: Path | None = None    # <name>.f: the HDL sources in compile order
    fusesoc_core: Path | None = None  # <name>.core: FuseSoC CAPI2
    testbench: Path | None = None    # <name>_tb.sv: self-checking (not for BigBird cores)

    @property
    def sources(self) -> list[Path]:
        """The HDL sources in compile order: the package, the vendor models, the core."""
        return [f for f in (self.package, self.sim_models, self.verilog) if f is not None]


def ecp5_model() -> str:
    """The Verilog simulation model of the ``MULT18X18D`` subset that ``dsp="ecp5"`` uses."""
    return resources.files("swatkit.rtl").joinpath("primitives/MULT18X18D.v").read_text()


def waivers(verilog_name: str) -> str:
    """The Verilator configuration of waivers for Amaranth-generated Verilog, each with its reason.

    Only generator idioms are waived, and only in the generated file; rules that catch hardware
    faults (UNOPTFLAT, MULTIDRIVEN, LATCH, COMBDLY, BLKANDNBLK, CASEINCOMPLETE, WIDTHTRUNC, ...)
    stay live.
    """
    f = f'-file "*{verilog_name}"'
    return "\n".join([
        "`verilator_config",
        "// Amaranth extends narrower operands implicitly (zero/sign extension is the language's",
        "// rule, not a truncation); width *truncation* stays live.",
        f"lint_off -rule WIDTHEXPAND {f}",
        "// Amaranth emits intermediate wires of which only some bits are read (e.g. the carry",
        "// bit of an adder, the unused half of a product), and unread debug names.",
        f"lint_off -rule UNUSEDSIGNAL {f}",
        "// Amaranth declares every register with its reset value as an initialiser and also",
        "// assigns it in the process (the init value is the power-on state on FPGAs).",
        f"lint_off -rule PROCASSINIT {f}",
        "// All modules of the design are written into one file named after the top module.",
        f"lint_off -rule DECLFILENAME {f}",
        "// Amaranth writes `x == 0` as `!x` on a multi-bit x (well defined: true iff x is 0);",
        "// only that form is waived, every other truncation stays live.",
        f'lint_off -rule WIDTHTRUNC {f} -match "Logical operator LOGNOT expects 1 bit*"',
        "",
    ])


def describe_layout(shape) -> dict:
    """The bit layout of a port's shape: ``{"kind": "struct", "fields": [{"name", "offset",
    "width", "layout"}]}``, ``{"kind": "array", "count", "stride", "element"}`` (element ``i`` at
    bits ``[i·stride + stride − 1 : i·stride]``) or ``{"kind": "signed" | "unsigned", "width"}``."""
    if isinstance(shape, data.StructLayout):
        return {"kind": "struct", "width": shape.size, "fields": [
            {"name": name, "offset": field.offset, "width": Shape.cast(field.shape).width,
             "layout": describe_layout(field.shape)} for name, field in shape]}
    if isinstance(shape, data.ArrayLayout):
        element = Shape.cast(shape.elem_shape).width
        return {"kind": "array", "width": shape.size, "count": shape.length, "stride": element,
                "element": describe_layout(shape.elem_shape)}
    s = Shape.cast(shape)
    return {"kind": "signed" if s.signed else "unsigned", "width": s.width}


def layout_text(layout: dict) -> str:
    """One line for a :func:`describe_layout` result, e.g. ``64 x signed 8 (element i at
    [8i+7:8i])``."""
    kind = layout["kind"]
    if kind == "array":
        s = layout["stride"]
        return (f"{layout['count']} x {layout_text(layout['element'])} "
                f"(element i at [{s}i+{s - 1}:{s}i])")
    if kind == "struct":
        return ", ".join(f"{f['name']} [{f['offset'] + f['width'] - 1}:{f['offset']}]"
                         + (f" = {layout_text(f['layout'])}" if f["layout"]["kind"] != "unsigned"
                            else "")
                         for f in layout["fields"])
    return f"{kind} {layout['width']}"


def ports(core: wiring.Component) -> list[dict]:
    """Verilog ports of a component: name, direction, width, and the bit layout of each data
    port (Amaranth joins paths with ``__``). A component whose signature holds its own clock
    (:class:`AxisSwatCore`) has no ``clk``/``rst``; its ``tdata`` layouts come from its
    ``tdata_layouts``."""
    out = []
    if "aclk" not in core.signature.members:
        out += [{"name": "clk", "direction": "input", "width": 1},
                {"name": "rst", "direction": "input", "width": 1}]
    named = getattr(core, "tdata_layouts", {})
    for path, member, _value in core.signature.flatten(core):
        name = "__".join(str(p) for p in path)
        port = {"name": name, "direction": "input" if member.flow == wiring.In else "output",
                "width": Shape.cast(member.shape).width}
        layout = named.get(name, member.shape)
        if isinstance(layout, data.Layout):
            port["layout"] = describe_layout(layout)
        out.append(port)
    return out


CLOCK_RESET = {
    "core": {"clock": "clk, rising edge", "reset": "rst: synchronous, active high (hold it "
             "high for at least one rising edge of clk)"},
    "axis": {"clock": "aclk, rising edge", "reset": "aresetn: synchronous, active low (hold it "
             "low for at least one rising edge of aclk); every tvalid and tready output is low "
             "while it is low"},
}
STREAM_RULE = ("a beat moves on a rising clock edge where valid and ready are both high; a "
               "producer holds valid and its data until then, and valid never waits for ready")


def header(name: str, interface: str, tables: dict | None, port_list: list[dict],
           params: CoreParams) -> str:
    """The comment that opens the generated Verilog: version, configuration (TOML that
    ``--config`` accepts; for a window no option describes, the spec's own fields), clock and
    reset, the stream rule and every port with its layout."""
    what = ("the SWAT sliding-window attention core" if interface == "core" else
            "the SWAT sliding-window attention core with AXI4-Stream ports")
    lines = [f"{name}: {what}, generated by swatkit {__version__}."]
    if tables is not None:
        lines += ["Regenerate it with: swatkit generate --config swatkit.json (beside this file).",
                  ""]
    else:
        lines += [""]
    lines += config_lines(tables, params)
    lines += ["",
              f"Clock: {CLOCK_RESET[interface]['clock']}.",
              f"Reset: {CLOCK_RESET[interface]['reset']}.",
              f"Streams (valid/ready): {STREAM_RULE}.",
              "",
              f"Ports (bit layouts in swatkit.json, \"ports\"; named fields, widths and packed "
              f"types in package {package_name(name)}, {package_name(name)}.sv):"]
    width = max(len(p["name"]) for p in port_list)
    for p in port_list:
        bits = f"[{p['width'] - 1}:0]" if p["width"] > 1 else ""
        text = f"  {p['direction']:<6} {bits:>10} {p['name']:<{width}}"
        if "layout" in p:
            text += "  " + layout_text(p["layout"])
        lines.append(text.rstrip())
    return "".join(f"// {line}".rstrip() + "\n" for line in lines) + "\n"


def config_lines(tables: dict | None, params: CoreParams) -> list[str]:
    """The configuration as the generated files state it: TOML that ``--config`` accepts, or,
    for a window no option describes (``tables`` None), the spec's own fields."""
    if tables is not None:
        lines = ["Configuration (TOML; swatkit generate --config accepts it):"]
    else:
        record = params.as_dict()
        tables = {key: record[key] for key in ("spec", "format", "hardware")}
        lines = ["Configuration (the window has unequal sides, which no swatkit option makes; "
                 "made through the Python API):"]
    return lines + ["  " + line for line in dumps(tables).splitlines() if line]


def check_target(name: str = "swat_core", dsp: str = "generic",
                 interface: str = "core") -> None:
    """Check the output choices of :func:`generate`: ``TypeError``/``ValueError`` naming the
    field (every form takes every core, grouped and sink-logit cores too:
    :mod:`~swatkit.rtl.axis`)."""
    for field, value in (("name", name), ("dsp", dsp), ("interface", interface)):
        if not isinstance(value, str):
            raise ConfigTypeError(f"{field} must be a string, not {value!r}", field)
    if not name.isidentifier() or not name.isascii() or name in VERILOG_KEYWORDS:
        raise ConfigValueError(f"name must be a Verilog identifier, not {name!r}", "name")
    if dsp not in DSP_TARGETS:
        raise ConfigValueError(f"dsp must be one of {', '.join(DSP_TARGETS)}, not {dsp!r}",
                               "dsp")
    if interface not in INTERFACES:
        raise ConfigValueError(f"interface must be one of {', '.join(INTERFACES)}, not "
                               f"{interface!r}", "interface")


def generate(params: CoreParams | AttentionSpec, fmt: NumberFormat | None = None,
             hw: HardwareConfig | None = None, out_dir: str | Path = ".",
             name: str = "swat_core", dsp: str = "generic", interface: str = "core", *,
             heads: int = 1, kv_heads: int = 1, sink_logits: bool = False) -> Generated:
    """Write ``<out_dir>/<name>.v``, ``<name>.vlt``, ``swatkit.json`` and the packaging of
    :mod:`swatkit.rtl.packaging` (``<name>_pkg.sv``, ``<name>.f``, ``<name>.core`` and, for a
    sliding-window core, the testbench ``<name>_tb.sv``) for the core of ``params`` (a
    :class:`CoreParams`, or an ``AttentionSpec`` with ``fmt`` and ``hw``:
    :meth:`CoreParams.of`); returns their paths.

    ``dsp`` (one of :data:`DSP_TARGETS`): ``"generic"`` writes the multipliers as logic for any
    tool to map; ``"ecp5"`` instantiates Lattice ``MULT18X18D`` blocks with their registers on
    (see :func:`~swatkit.rtl.units.registered_mul`), and also writes ``MULT18X18D.v``, the
    simulation model of the part of the primitive used. ``interface`` (one of
    :data:`INTERFACES`): ``"core"``, the core's own ports; ``"axis"``, the core inside
    :class:`~swatkit.rtl.axis.AxisSwatCore`. ``heads``, ``kv_heads``: a grouped core
    (:class:`~swatkit.rtl.CoreParams`). A BigBird core has no SystemVerilog testbench (it
    drives no global-row or random-block streams).

    Files that an earlier run listed in ``<out_dir>/swatkit.json`` and this run does not write
    (say ``MULT18X18D.v`` after a ``dsp="ecp5"`` run) are removed (``Generated.removed``).

    Raises
    ------
    TypeError, ValueError
        A bad ``name``, ``dsp`` or ``interface``, or a configuration the core cannot implement.
    """
    # (a CoreParams holds its head group; an AttentionSpec takes it from the arguments)
    group = ({} if isinstance(params, CoreParams) else
             {"heads": heads, "kv_heads": kv_heads, "sink_logits": sink_logits})
    check_target(name, dsp, interface)
    params = CoreParams.of(params, fmt, hw, **group)
    top = SwatCore(params) if interface == "core" else AxisSwatCore(params)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    config = out / "swatkit.json"
    earlier = _listed_files(config)
    vpath = out / f"{name}.v"
    platform = None if dsp == "generic" else DspTarget(dsp)
    target = {"name": name, "dsp": dsp, "interface": interface}
    try:
        tables = {**top.params.config_tables(), "generate": target}
    except ValueError:  # a window with unequal sides: the API makes it, no option does
        tables = None
    port_list = ports(top)
    text = verilog.convert(top, name=name, platform=platform, emit_src=False)
    vpath.write_text(header(name, interface, tables, port_list, top.params) + text)
    vlt = out / f"{name}.vlt"
    vlt.write_text(waivers(vpath.name))
    files = {"verilog": vpath.name, "waivers": vlt.name, "config": config.name}
    models = None
    if dsp == "ecp5":
        models = out / "MULT18X18D.v"
        models.write_text(ecp5_model())
        files["sim_models"] = models.name
    pkg = out / f"{package_name(name)}.sv"
    stated = config_lines(tables, top.params)
    pkg.write_text(sv_package(name, top.params, port_list, stated,
                              regenerate=tables is not None))
    sources = [(pkg.name, "systemVerilogSource"),
               *([(models.name, "verilogSource")] if models else []),
               (vpath.name, "verilogSource")]
    flist = out / f"{name}.f"
    flist.write_text(file_list(name, [f for f, _ in sources], stated))
    files.update(package=pkg.name, file_list=flist.name)
    tb = None
    if not top.params.block_size:
        tb = out / f"{name}_tb.sv"
        tb.write_text(testbench(name, top.params, port_list, interface=interface,
                                config_lines=stated))
        files["testbench"] = tb.name
    core_file = out / f"{name}.core"
    core_file.write_text(fusesoc_core(name, _summary(top.params, interface), sources, vlt.name,
                                      tb.name if tb else None, stated))
    files["fusesoc_core"] = core_file.name
    record = {
        "swatkit_version": __version__,
        "top": name,
        "interface": interface,
        "files": files,
        "dsp": dsp,
        "clock_reset": CLOCK_RESET[interface],
        "config": tables,
        **top.params.as_dict(),
        "ports": port_list,
    }
    config.write_text(json.dumps(record, indent=2) + "\n")
    removed = []
    for stale in sorted(earlier - set(files.values())):
        (out / stale).unlink(missing_ok=True)
        removed.append(out / stale)
    return Generated(vpath, config, vlt, models, tuple(removed), pkg, flist, core_file, tb)


def _summary(p: CoreParams, interface: str) -> str:
    """One line naming the core's configuration (the FuseSoC description)."""
    return ("SWAT sliding-window attention core: " + p.describe()
            + (", AXI4-Stream ports" if interface == "axis" else ""))


def _listed_files(config: Path) -> set[str]:
    """The files an earlier run's ``swatkit.json`` lists (plain names in its folder only)."""
    try:
        files = json.loads(config.read_text()).get("files", {})
    except (OSError, ValueError, AttributeError):
        return set()
    if not isinstance(files, dict):
        return set()
    return {f for f in files.values()
            if isinstance(f, str) and f and Path(f).name == f and f not in (".", "..")}


def lint(generated: Generated, top: str | None = None) -> str:
    """``verilator --lint-only -Wall`` with the waivers on the sources (the package, the vendor
    models, the core); raises :class:`LintError` on any warning, returns Verilator's (empty)
    output otherwise."""
    from swatkit.support.toolchain import find_verilator

    v = find_verilator()
    top = top or generated.verilog.stem
    done = subprocess.run(
        [str(v.executable), "--lint-only", "-Wall", str(generated.waivers),
         *(str(f) for f in generated.sources), "--top-module", top],
        capture_output=True, text=True, env={**__import__("os").environ, **v.env})
    if done.returncode != 0 or "%Warning" in done.stderr or "%Error" in done.stderr:
        raise LintError(done.stderr.strip())
    return done.stderr
