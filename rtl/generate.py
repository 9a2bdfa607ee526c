"""Verilog generation: a configured :class:`SwatCore` → ``<name>.v``, ``swatkit.json`` (the fully
resolved configuration, derived widths and port list) and ``<name>.vlt`` (Verilator lint waivers).
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from amaranth.back import verilog
from amaranth.hdl import Shape
from amaranth.lib import wiring

from swatkit.golden import AttentionSpec, NumberFormat
from swatkit.version import __version__

from .config import HardwareConfig
from .core import SwatCore
from .units import DSP_TARGETS, DspTarget

__all__ = ["Generated", "LintError", "generate", "lint", "ports", "waivers"]


class LintError(RuntimeError):
    """Verilator reported warnings that no waiver covers."""


@dataclass(frozen=True)
class Generated:
    verilog: Path
    config: Path
    waivers: Path
    sim_models: Path | None = None   # Verilog models of the vendor primitives used, if any


def ecp5_model() -> str:
    """The Verilog simulation model of the ``MULT18X18D`` subset that ``dsp="ecp5"`` uses."""
    return resources.files("swatkit.rtl").joinpath("models/MULT18X18D.v").read_text()


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


def ports(core: wiring.Component) -> list[dict]:
    """Verilog ports of a component: name, direction, width (Amaranth joins paths with ``__``)."""
    out = [{"name": "clk", "direction": "input", "width": 1},
           {"name": "rst", "direction": "input", "width": 1}]
    for path, member, _value in core.signature.flatten(core):
        out.append({
            "name": "__".join(str(p) for p in path),
            "direction": "input" if member.flow == wiring.In else "output",
            "width": Shape.cast(member.shape).width,
        })
    return out


def generate(spec: AttentionSpec, fmt: NumberFormat | None = None,
             hw: HardwareConfig | None = None, out_dir: str | Path = ".",
             name: str = "swat_core", dsp: str = "generic") -> Generated:
    """Write ``<out_dir>/<name>.v``, ``<name>.vlt`` and ``swatkit.json``; returns their paths.

    ``dsp`` (one of :data:`DSP_TARGETS`): ``"generic"`` writes the multipliers as logic for any
    tool to map; ``"ecp5"`` instantiates Lattice ``MULT18X18D`` blocks with their registers on
    (see :func:`~swatkit.rtl.units.registered_mul`), and also writes ``MULT18X18D.v``, the
    simulation model of the part of the primitive used.
    """
    if not name.isidentifier():
        raise ValueError(f"name must be a Verilog identifier, not {name!r}")
    if dsp not in DSP_TARGETS:
        raise ValueError(f"dsp must be one of {', '.join(DSP_TARGETS)}, not {dsp!r}")
    core = SwatCore(spec, fmt, hw)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    vpath = out / f"{name}.v"
    platform = None if dsp == "generic" else DspTarget(dsp)
    vpath.write_text(verilog.convert(core, name=name, platform=platform, emit_src=False))
    vlt = out / f"{name}.vlt"
    vlt.write_text(waivers(vpath.name))
    files = {"verilog": vpath.name, "waivers": vlt.name}
    models = None
    if dsp == "ecp5":
        models = out / "MULT18X18D.v"
        models.write_text(ecp5_model())
        files["sim_models"] = models.name
    config = out / "swatkit.json"
    record = {
        "swatkit_version": __version__,
        "top": name,
        "files": files,
        "dsp": dsp,
        **core.params.as_dict(),
        "ports": ports(core),
    }
    config.write_text(json.dumps(record, indent=2) + "\n")
    return Generated(vpath, config, vlt, models)


def lint(generated: Generated, top: str | None = None) -> str:
    """``verilator --lint-only -Wall`` with the waivers; raises :class:`LintError` on any
    warning, returns Verilator's (empty) output otherwise."""
    from swatkit.toolchain import find_verilator

    v = find_verilator()
    top = top or generated.verilog.stem
    done = subprocess.run(
        [str(v.executable), "--lint-only", "-Wall", str(generated.waivers),
         *([str(generated.sim_models)] if generated.sim_models else []),
         str(generated.verilog), "--top-module", top],
        capture_output=True, text=True, env={**__import__("os").environ, **v.env})
    if done.returncode != 0 or "%Warning" in done.stderr or "%Error" in done.stderr:
        raise LintError(done.stderr.strip())
    return done.stderr
