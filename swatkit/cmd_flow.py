"""Build the self-test of a SWAT core for an FPGA board with the open toolchain (Yosys + nextpnr).

Writes DIR/ with Amaranth's build plan for the board (build_swat_selftest.sh/.bat, Yosys script,
RTLIL and Verilog, pin and clock constraints), swatkit.json (the resolved configuration),
vectors.npz (the self-test's inputs and expected output) and run_yowasp.sh. With --run, builds it
with the YoWASP tools from PyPI and writes DIR/flow.json (Fmax, utilisation, bitstream). Each
board has a default configuration that fits it (--list-boards); options override it.
"""

from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path

from swatkit.options import (
    UsageError,
    add_hardware_options,
    add_workload_options,
    core_params,
    resolve,
)

__all__ = ["add_arguments", "run"]

WINDOW_KEYS = ("attention_window", "causal", "sliding_window")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    b = parser.add_argument_group("board and build")
    b.add_argument("--board", metavar="NAME", help="board to build for (see --list-boards)")
    b.add_argument("-o", "--output", metavar="DIR", type=Path, default=None,
                   help="project folder to write into (default: swat_flow/<board>)")
    mode = b.add_mutually_exclusive_group()
    mode.add_argument("--list-boards", action="store_true",
                      help="list the boards and their default configurations, then exit")
    mode.add_argument("--run", action="store_true", dest="build",
                      help="build the project with the YoWASP tools and report Fmax and "
                           "utilisation")
    mode.add_argument("--collect", action="store_true",
                      help="only read the reports of a project in DIR that was already built "
                           "(e.g. with the system's tools) into DIR/flow.json")
    b.add_argument("--clock-mhz", metavar="F", type=float,
                   help="clock constraint for nextpnr (default: the board's target)")
    b.add_argument("--test-rows", metavar="N", type=int,
                   help="rows of the self-test run (default: the board's)")
    b.add_argument("--seed", metavar="S", type=int, default=1,
                   help="seed of the self-test vectors (default 1)")
    b.add_argument("--simulate", action="store_true",
                   help="run the self-test in Amaranth's simulator before writing the project")
    mode.add_argument("--sweep", action="store_true",
                      help="build several (key_lanes, dim_lanes) points into DIR/klK-dlM/ and "
                           "write DIR/sweep.md, sweep.csv, sweep.json")
    b.add_argument("--points", metavar="KxM,...",
                   help="with --sweep: the key_lanes x dim_lanes points (default: the board's)")
    add_workload_options(parser)
    add_hardware_options(parser)


def _board(args):
    from swatkit.fpga_flows.boards import get_board

    if not args.board:
        raise UsageError("--board is required (see --list-boards)")
    try:
        return get_board(args.board)
    except ValueError as e:
        raise UsageError(f"--board: {e}") from None


def list_boards() -> str:
    from swatkit.fpga_flows.boards import BOARDS

    lines = []
    for b in BOARDS.values():
        d = b.defaults
        lines.append(f"{b.name:<12} {b.title}")
        lines.append(f"{'':<12} default: head_dim {d['head_dim']}, attention_window "
                     f"{d['attention_window']}, key_lanes {d['key_lanes']}, dim_lanes "
                     f"{d['dim_lanes']}, seq_len {d['seq_len']}; self-test {b.test_rows} rows; "
                     f"clock constraint {b.target_mhz:g} MHz (oscillator {b.clock_hz / 1e6:g} "
                     "MHz)")
    return "\n".join(lines)


def resolve_with_board(args, board):
    """The shared options over the board's defaults: built-in < board < --config < options."""
    first = resolve(args)
    given = set(first.sources)
    merged = copy.copy(args)
    window_given = any(k in given for k in WINDOW_KEYS)
    for key, value in board.defaults.items():
        if key in given or (key in WINDOW_KEYS and window_given):
            continue
        setattr(merged, key, value)
    return resolve(merged)


def flow_config(args, board):
    """The :class:`~swatkit.fpga_flows.flow.FlowConfig` the options describe."""
    from swatkit.fpga_flows.flow import FlowConfig

    r = resolve_with_board(args, board)
    params = core_params(r, r.spec.seq_len)
    hw = params.hw
    rows = args.test_rows if args.test_rows is not None else min(board.test_rows, hw.max_seq_len)
    try:
        return FlowConfig(board, params, rows, args.seed, args.clock_mhz)
    except (TypeError, ValueError) as e:
        field, _, rest = str(e).partition(" ")
        option = {"test_rows": "--test-rows", "seed": "--seed", "clock_mhz": "--clock-mhz"}
        raise UsageError(f"{option.get(field, field)} {rest}") from None


def parse_points(text: str) -> list[tuple[int, int]]:
    points = []
    for item in text.split(","):
        kl, sep, dl = item.strip().lower().partition("x")
        if not (sep and kl.isdigit() and dl.isdigit()):
            raise UsageError(f"--points must be key_lanes x dim_lanes pairs like 1x8,2x8, "
                             f"not {text!r}")
        points.append((int(kl), int(dl)))
    return points


def _describe(config) -> str:
    p = config.params
    s = p.spec
    return (f"window {s.before}+1+{s.after} keys, head_dim {s.head_dim}, up to "
            f"{p.hw.max_seq_len} rows; {p.hw.key_lanes} key lanes x {p.hw.dim_lanes} dim lanes "
            f"({config.cycles_per_row} cycles per row); self-test {config.test_rows} rows, "
            f"seed {config.seed}; clock constraint {config.constraint_mhz:g} MHz")


def _simulate(config) -> int:
    from swatkit.fpga_flows.selftest import SelfTest, make_vectors, simulate

    p = config.params
    vectors = make_vectors(p, config.test_rows, config.seed)
    # the same test with a fast UART, so that the line takes few simulated cycles
    result = simulate(SelfTest(p.spec, p.fmt, p.hw, vectors, uart_divisor=4),
                      max_cycles=64 * config.test_rows * (config.cycles_per_row + 64) + 100_000)
    print(f"simulation: {result.line.strip()}")
    if not result.passed:
        print("swatkit: error: the self-test fails in simulation; not building it",
              file=sys.stderr)
        return 1
    return 0


def run(args: argparse.Namespace) -> int:
    if args.list_boards:
        print(list_boards())
        return 0
    from swatkit.fpga_flows.flow import FlowError, collect, emit, format_report, format_sweep
    from swatkit.fpga_flows.flow import run as run_project
    from swatkit.fpga_flows.flow import sweep as run_sweep
    from swatkit.rtl import CoreParams

    if args.collect:
        if args.output is None and not args.board:
            raise UsageError("--collect needs the project folder (-o DIR) or --board")
        out = args.output or Path("swat_flow") / _board(args).name
        try:
            print(format_report(collect(out)))
        except FlowError as e:
            print(f"swatkit: error: {e}", file=sys.stderr)
            return 1
        print(f"wrote {out / 'flow.json'}")
        return 0
    if args.points and not args.sweep:
        raise UsageError("--points needs --sweep")
    board = _board(args)
    out = args.output or Path("swat_flow") / board.name
    config = flow_config(args, board)
    points = []
    if args.sweep:
        points = parse_points(args.points) if args.points else list(board.sweep)
        p = config.params
        for kl, dl in points:  # check every point before the first build
            try:
                CoreParams(p.spec, p.fmt, p.hw.replace(key_lanes=kl, dim_lanes=dl))
            except (TypeError, ValueError) as e:
                raise UsageError(f"--points {kl}x{dl}: {e}") from None
    print(f"{board.name}: {_describe(config)}")
    if args.simulate and _simulate(config):
        return 1
    try:
        if args.sweep:
            rows = run_sweep(config, points, out)
            print(format_sweep(rows))
            print(f"wrote {out / 'sweep.md'}, sweep.csv, sweep.json")
            return 0
        try:
            emit(config, out)
        except OSError as e:
            raise UsageError(f"--output: cannot write {out}: {e.strerror}") from None
        print(f"wrote {out}/ (build_swat_selftest.sh, swatkit.json, vectors.npz, run_yowasp.sh)")
        if not args.build:
            print(f"build it with: sh {out}/run_yowasp.sh   (YoWASP tools from PyPI)\n"
                  f"           or: cd {out} && sh build_swat_selftest.sh   (system tools)")
            return 0
        print("building with the YoWASP tools (the first call of each tool compiles it, "
              "~45 s) ...", flush=True)
        result = run_project(out)
    except FlowError as e:
        print(f"swatkit: error: {e}", file=sys.stderr)
        return 1
    print(format_report(result))
    print(f"wrote {out / 'flow.json'}")
    return 0

