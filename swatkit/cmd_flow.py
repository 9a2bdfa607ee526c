"""Build the self-test of a SWAT core for an FPGA board with the open toolchain (Yosys + nextpnr).

Writes DIR/ with Amaranth's build plan for the board (build_swat_selftest.sh/.bat, Yosys script,
RTLIL and Verilog, pin and clock constraints), swatkit.json (the resolved configuration),
vectors.npz (the self-test's inputs and expected output) and run_yowasp.sh. With --run, builds it
with the YoWASP tools from PyPI and writes DIR/flow.json (Fmax, utilisation, bitstream). Each
board has a default configuration that fits it (--list-boards); options override it.
"""

from __future__ import annotations

import argparse
import dataclasses
import re
import shlex
import sys
from pathlib import Path

from swatkit.options import (
    UsageError,
    add_hardware_options,
    add_output_option,
    add_workload_options,
    check_folder,
    command_error,
    connect_scheduler,
    core_params,
    gather,
    output_label,
    refuse_sink_values,
    resolve,
    warn,
    waste_warnings,
)
from swatkit.support.progress import progress

__all__ = ["SweepProgress", "add_arguments", "run", "simulator_for"]

MAX_POINTS = 32  # --sweep points: each is a full build of minutes
MAX_JOBS = 64    # -j: local processes (each a nextpnr of up to a few GB)
SIMULATORS = ("amaranth", "verilator")  # fpga_flows.flow.SIMULATORS (not imported: a fast --help)
# --simulate without a simulator: Verilator above this many cycles of the run (rows x cycles per
# row). Amaranth's simulator runs 560-1,200 cycles/s on the iCEBreaker's core; a Verilator build
# takes 25-45 s, then runs 200,000-300,000 cycles/s, and is cached (docs/fpga.md): a cold build
# pays off from ~30,000 cycles, a cached one at once.
AUTO_VERILATOR_CYCLES = 20_000
# --selftest decode: the core when the options do not say otherwise (a layer over the board's
# defaults): the GPT-OSS sliding head group (gpt-oss-20b/120b config.json: sliding_window 128,
# head_dim 64, 64 query heads on 8 K/V heads, a learned sink logit per head) as
# `swatkit regress` decodes it, a prefill of 1024 rows and 256 decode steps; a decode core
# (contexts 1) on the board's lanes
DECODE_DEFAULTS = {"causal": True, "sliding_window": 128, "head_dim": 64, "heads": 64,
                   "kv_heads": 8, "sink_logits": True, "seq_len": 1280}
DECODE_STEPS = 256


def add_arguments(parser: argparse.ArgumentParser) -> None:
    b = parser.add_argument_group("board and build")
    b.add_argument("--board", metavar="NAME", help="board to build for (see --list-boards)")
    add_output_option(parser, "the build project (Verilog of the self-test top, build "
                              "scripts, swatkit.json, vectors.npz) and, once built, its "
                              "reports and flow.json; --sweep: a project per point and "
                              "sweep.json; --collect reads it (default swat_flow/<board>)",
                      group=b)
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
    b.add_argument("--selftest", choices=("rom", "lfsr", "decode"),
                   help="self-test mode: rom (inputs and expected rows in ROM, reports the "
                        "first bad row), lfsr (inputs generated on chip, the output's CRC-32 "
                        "compared; no ROM limit on the rows) or decode (a decode core, by "
                        "default the GPT-OSS sliding head group: a prefill of --test-rows "
                        "rows, then --decode-steps steps of one row, on LFSR inputs, one "
                        "CRC-32) (default: the board's)")
    b.add_argument("--test-rows", metavar="N", type=int,
                   help="rows of the self-test run (default: the board's in rom mode, seq_len "
                        "in lfsr mode; decode: the prefill's rows, seq_len minus the steps)")
    b.add_argument("--decode-steps", metavar="T", type=int,
                   help=f"with --selftest decode: decode steps after the prefill (default "
                        f"{DECODE_STEPS})")
    b.add_argument("--seed", metavar="S", type=int,
                   help="seed of the self-test vectors or generators (default 1)")
    b.add_argument("--abc", choices=("abc9", "abc"),
                   help="Yosys' LUT mapping: abc9 (synth's own) or abc (the classic ABC, ECP5 "
                        "only; Yosys 0.70's ABC9 aborts on some netlists) (default: the board's)")
    b.add_argument("--nextpnr-options", metavar="'OPTS'",
                   help="extra nextpnr arguments, e.g. '--router router2 --seed 3' (default: "
                        "the board's)")
    mode.add_argument("--print-config", action="store_true",
                      help="print the resolved configuration (board defaults, --config, "
                           "options) as TOML, usable as --config, and exit")
    b.add_argument("--simulate", nargs="?", const="auto", choices=("auto", *SIMULATORS),
                   metavar="SIMULATOR",
                   help="run the self-test to its report before writing the project, in "
                        "verilator or amaranth (Amaranth's simulator); auto (the default): "
                        f"amaranth for runs of up to {AUTO_VERILATOR_CYCLES:,} cycles (rows x "
                        "cycles per row), verilator above")
    mode.add_argument("--sweep", action="store_true",
                      help="build several (key_lanes, dim_lanes) points into DIR/klK-dlM/ and "
                           "write DIR/sweep.md, sweep.csv, sweep.json")
    b.add_argument("--points", metavar="KxM,...",
                   help="with --sweep: the key_lanes x dim_lanes points (default: the board's)")
    b.add_argument("-j", "--jobs", metavar="N", type=int,
                   help="with --sweep: points built at once in local processes (default: the "
                        "number of CPUs; 1: one after another in this process)")
    b.add_argument("--scheduler", metavar="ADDRESS",
                   help="with --sweep: build the points on the workers of this Dask "
                        "distributed scheduler (e.g. tcp://host:8786; pip install "
                        "'swatkit[dask]'); their files come back to DIR")
    add_workload_options(parser, core_features=True)
    add_hardware_options(parser)


def _board(given):
    """The board the user named (``--board`` or ``[flow] board``; ``given``: :func:`gather`'s
    values)."""
    from swatkit.support.boards import get_board

    name = given.values.get("board")
    if name is None:
        raise UsageError("--board is required (see --list-boards)")
    try:
        return get_board(name)
    except (TypeError, ValueError) as e:
        raise UsageError(f"{given.label('board')}: {e}") from None


def list_boards() -> str:
    from swatkit.support.boards import BOARDS

    lines = []
    for b in BOARDS.values():
        d = b.defaults
        lines.append(f"{b.name:<12} {b.title}")
        lines.append(f"{'':<12} default: head_dim {d['head_dim']}, attention_window "
                     f"{d['attention_window']}, key_lanes {d['key_lanes']}, dim_lanes "
                     f"{d['dim_lanes']}, seq_len {d['seq_len']}; self-test "
                     f"{_default_rows(b, d['seq_len'])} rows ({b.selftest}); "
                     f"clock constraint {b.target_mhz:g} MHz (oscillator {b.clock_hz / 1e6:g} "
                     "MHz)")
        if b.why:
            lines.append(f"{'':<12} why: {b.why}")
    return "\n".join(lines)


def _default_rows(board, max_seq_len: int, mode: str | None = None) -> int:
    """The self-test's rows when ``--test-rows`` is not given: the board's in ROM mode, all
    ``max_seq_len`` rows (up to the 16-bit counter) in LFSR mode."""
    from swatkit.fpga_flows.selftest import MAX_LFSR_ROWS

    if (mode or board.selftest) == "lfsr":
        return min(max_seq_len, MAX_LFSR_ROWS)
    return min(board.test_rows, max_seq_len)


def resolve_with_board(args, board, given=None):
    """The shared options over the board's defaults: built-in < board (its default core, a
    layer of :func:`~swatkit.options.resolve`) < --config < options (``given``: what
    :func:`~swatkit.options.gather` read of them, if it did). A causal window without a
    length gets the board's number of keys (not the 4096 of a Mistral head, which no small
    device holds)."""
    window = board.defaults["attention_window"]   # (keys: window + 1, of either kind)
    layer = {**board.defaults, "sliding_window": window + 1}
    given = given or gather(args, "flow")
    if given.values.get("selftest") == "decode":
        layer.update(DECODE_DEFAULTS)
    return resolve(args, "flow", defaults=layer, given=given)


def flow_config(args, board, given=None):
    """The :class:`~swatkit.fpga_flows.flow.FlowConfig` the options describe, and the resolved
    options (``given``: what :func:`~swatkit.options.gather` read of them, if it did)."""
    from swatkit.fpga_flows.flow import FlowConfig

    r = resolve_with_board(args, board, given)
    if r.spec.block_size:
        raise UsageError(f"{r.label('bigbird_block')}: the board self-test does not yet drive a "
                         "BigBird core's global-row and random-block streams (qg, kvg, og, kvr);"
                         " write its Verilog with swatkit generate --bigbird")
    refuse_sink_values(r)   # (the self-test draws its sink scores from --seed)
    params = core_params(r, r.spec.seq_len)
    own = r.command
    steps = 0
    if own.get("selftest") == "decode":   # a decode core (one context), and its steps
        steps = own.get("decode_steps", DECODE_STEPS)
        try:
            params = dataclasses.replace(params, contexts=1)
        except (TypeError, ValueError) as e:
            raise command_error(e, r) from None
    elif "decode_steps" in own:
        raise UsageError(f"{r.label('decode_steps')} needs --selftest decode")
    # (the LFSR self-test feeds one head's rows: a grouped or sink core's default is rom)
    mode = own.get("selftest", "rom" if params.group_heads > 1 or params.sink_core
                   or params.sink_logits else board.selftest)
    rows = own.get("test_rows")
    if rows is None:
        from swatkit.fpga_flows.selftest import rom_rows_limit

        rows = (params.hw.max_seq_len - steps if mode == "decode" else
                _default_rows(board, rom_rows_limit(params) if mode == "rom"
                              else params.hw.max_seq_len, mode if mode in ("rom", "lfsr")
                              else None))
    nextpnr = own.get("nextpnr_options")
    if isinstance(nextpnr, str):
        try:
            nextpnr = shlex.split(nextpnr)
        except ValueError as e:
            raise UsageError(f"{r.label('nextpnr_options')}: {e}") from None
    if isinstance(nextpnr, list):
        nextpnr = tuple(nextpnr)
    try:
        return FlowConfig(board, params, rows, own.get("seed", 1), own.get("clock_mhz"),
                          mode, own.get("abc"), nextpnr, steps), r
    except (TypeError, ValueError) as e:
        raise command_error(e, r) from None


def parse_points(text: str) -> list[tuple[int, int]]:
    points = []
    items = text.split(",")
    if len(items) > MAX_POINTS:
        raise UsageError(f"--points must list at most {MAX_POINTS} points (each is a build of "
                         f"minutes), not {len(items)}")
    for item in items:
        match = re.fullmatch(r"\s*([0-9]{1,4})\s*[xX]\s*([0-9]{1,4})\s*", item)
        if match is None:
            raise UsageError(f"--points must be key_lanes x dim_lanes pairs like 1x8,2x8, "
                             f"not {text!r}")
        point = (int(match[1]), int(match[2]))
        if point in points:
            raise UsageError(f"--points lists {point[0]}x{point[1]} twice")
        points.append(point)
    return points


def _describe(config) -> str:
    steps = f" + {config.decode_steps} decode steps" if config.decode_steps else ""
    return (f"{config.params.describe()} ({config.cycles_per_row} cycles per row); self-test "
            f"{config.test_rows} rows{steps} "
            f"({config.selftest}), seed {config.seed}; clock constraint "
            f"{config.constraint_mhz:g} MHz")


def _run_cycles(config) -> int:
    """About the self-test run's cycles: its output rows x cycles per row (decode: the
    prefill's and the steps' positions, g output rows each)."""
    if config.decode_steps:
        rows = (config.test_rows + config.decode_steps) * config.params.group_heads
        return rows * config.cycles_per_row
    return config.test_rows * config.cycles_per_row


def simulator_for(config, choice: str) -> str:
    """The simulator of ``--simulate [choice]``: ``auto`` is Amaranth's for runs of up to
    ``AUTO_VERILATOR_CYCLES`` steady-state cycles (rows x cycles per row), Verilator above."""
    if choice != "auto":
        return choice
    cycles = _run_cycles(config)
    return "verilator" if cycles > AUTO_VERILATOR_CYCLES else "amaranth"


def _decode_cycles(config, result) -> None:
    """The decode self-test's busy cycles beside the cycle model's."""
    from swatkit.fpga_flows.flow import decode_model_cycles

    prefill, steps = decode_model_cycles(config)
    t = config.decode_steps
    for what, got, want in (("prefill", result.pre_cycles, prefill),
                            (f"{t} decode steps", result.dec_cycles, sum(steps))):
        same = "equal to" if got == want else f"{got - want:+,} against"
        print(f"decode self-test: {what}: {got:,} busy cycles, {same} the cycle model "
              f"({want:,})")
    print(f"decode self-test: {result.dec_cycles / t:,.1f} cycles per decode step (cycle model "
          f"{min(steps):,}..{max(steps):,})")


def _simulate(config, simulator: str) -> int:
    from swatkit.fpga_flows.flow import simulate_selftest

    try:
        result = simulate_selftest(config, simulator)
    except (RuntimeError, TimeoutError) as e:  # a missing Verilator, a failed build, a hang
        print(f"swatkit: error: the {simulator} simulation of the self-test failed: {e}",
              file=sys.stderr)
        return 1
    print(f"simulation: {result.line.strip()}")
    print(f"simulated with {result.run.summary()}")
    if result.pre_cycles is not None:
        _decode_cycles(config, result)
    if not result.passed:
        print("swatkit: error: the self-test fails in simulation; not building it",
              file=sys.stderr)
        return 1
    return 0


def run(args: argparse.Namespace) -> int:
    if args.list_boards:
        print(list_boards())
        return 0
    from swatkit.fpga_flows.flow import FlowError, collect, emit, format_report, point_config
    from swatkit.fpga_flows.flow import run as run_project

    user = gather(args, "flow")
    if args.collect:
        if args.output is None and "board" not in user.values:
            raise UsageError("--collect needs the project folder (-o DIR) or --board")
        out = args.output or Path("swat_flow") / _board(user).name
        try:
            print(format_report(collect(out)))
        except FlowError as e:  # the folder the user named is not a built project
            raise UsageError(f"--collect: {e}") from None
        print(f"wrote {out / 'flow.json'}")
        return 0
    for given, option in ((args.points, "--points"), (args.jobs is not None, "-j/--jobs"),
                          (args.scheduler, "--scheduler")):
        if given and not args.sweep:
            raise UsageError(f"{option} needs --sweep")
    if args.jobs is not None:
        if args.scheduler:
            raise UsageError("-j/--jobs cannot be combined with --scheduler (the cluster's "
                             "workers set the parallelism)")
        if not 1 <= args.jobs <= MAX_JOBS:
            raise UsageError(f"-j/--jobs must be an integer in 1..{MAX_JOBS}, not {args.jobs}")
    board = _board(user)
    out = args.output or Path("swat_flow") / board.name
    config, r = flow_config(args, board, user)
    if args.print_config:
        from swatkit.support.toml_text import dumps

        sys.stdout.write(dumps(config.config_tables()))
        return 0
    points = []
    if args.sweep:
        points = parse_points(args.points) if args.points else list(board.sweep)
        for kl, dl in points:  # check every point before the first build
            try:
                point_config(config, kl, dl)
            except (TypeError, ValueError) as e:
                raise UsageError(f"--points {kl}x{dl}: {e}") from None
    check_folder(output_label(args), out)
    client = connect_scheduler(args.scheduler)   # (before anything is printed or built)
    for line in waste_warnings(r, config.params):
        warn(line)
    print(f"{board.name}: {_describe(config)}", flush=True)
    if args.simulate:
        simulator = simulator_for(config, args.simulate)
        with progress(f"simulating the self-test in {simulator} ({config.test_rows} rows, "
                      f"about {_run_cycles(config):,} cycles)"):
            failed = _simulate(config, simulator)
        if failed:
            return 1
    try:
        if args.sweep:
            return _sweep(config, points, out, args.jobs, client)
        try:
            with progress("writing the build project (Verilog of the self-test top)"):
                emit(config, out)
        except OSError as e:
            raise UsageError(f"{output_label(args)}: cannot write {out}: {e.strerror}") from None
        print(f"wrote {out}/ (build_swat_selftest.sh, swatkit.json, vectors.npz, run_yowasp.sh)")
        if not args.build:
            print(f"build it with: sh {out}/run_yowasp.sh   (YoWASP tools from PyPI)\n"
                  f"           or: cd {out} && sh build_swat_selftest.sh   (system tools)")
            return 0
        print("building with the YoWASP tools (the first call of each tool compiles it, "
              "~45 s) ...", flush=True)
        with progress(f"building for the {board.device} (log: {out / 'build.log'})"):
            result = run_project(out)
    except FlowError as e:
        print(f"swatkit: error: {e}", file=sys.stderr)
        return 1
    print(format_report(result))
    print(f"wrote {out / 'flow.json'}")
    return 0


def _sweep(config, points, out: Path, jobs, client) -> int:
    """``--sweep``: the points in parallel, their progress, the table; exit 1 when a point
    failed, Ctrl-C names the points that finished."""
    from swatkit.fpga_flows.flow import (
        SweepInterrupted,
        default_jobs,
        format_sweep,
        point_name,
        sweep,
    )

    names = [point_name(kl, dl) for kl, dl in points]
    if client is not None:
        workers = len(client.scheduler_info().get("workers", {}))
        where = f"on the Dask cluster at {client.scheduler.address} ({workers} workers)"
        jobs = 1
    else:
        jobs = jobs or default_jobs()
        where = ("one after another in this process" if jobs == 1 or len(points) == 1
                 else f"{min(jobs, len(points))} at a time in local processes")
    print(f"sweep: {len(points)} points ({', '.join(names)}) {where}", flush=True)
    try:
        with SweepProgress(names, config.board.device) as shown:
            rows = sweep(config, points, out, jobs=jobs, scheduler=client, on_event=shown.event)
    except SweepInterrupted as e:
        finished = [f"{point_name(r['key_lanes'], r['dim_lanes'])} ({r['status']})"
                    for r in e.rows]
        left = [n for n in names if n not in e.stopped
                and n not in {point_name(r["key_lanes"], r["dim_lanes"]) for r in e.rows}]
        print(f"swatkit: sweep stopped: finished {', '.join(finished) or 'none'}; stopped "
              f"{', '.join(e.stopped) or 'none'}; not started {', '.join(left) or 'none'} "
              f"({out / 'sweep.md'} has the finished points)", file=sys.stderr)
        raise KeyboardInterrupt from None
    finally:
        if client is not None:
            client.close()
    print(format_sweep(rows))
    print(f"wrote {out / 'sweep.md'}, sweep.csv, sweep.json")
    failed = [point_name(r["key_lanes"], r["dim_lanes"]) for r in rows
              if r["status"] == "failed"]
    if failed:
        print(f"swatkit: error: {len(failed)} of {len(rows)} points failed "
              f"({', '.join(failed)}); the note column of {out / 'sweep.md'} says why",
              file=sys.stderr)
        return 1
    return 0


_STATE_STYLE = {"queued": "dim", "running": "yellow", "done": "green", "failed": "red"}


class SweepProgress:
    """The state of every sweep point: a live table on a terminal (rich), else one line per
    change on standard output."""

    def __init__(self, names: list[str], device: str):
        import time

        from rich.console import Console

        self.console = Console(stderr=True)
        self.device = device
        self.state = {n: ["queued", "", None, None] for n in names}  # state, detail, start, end
        self.clock = time.monotonic
        self.live = None

    def __enter__(self):
        if self.console.is_terminal:
            from rich.live import Live

            self.live = Live(get_renderable=self._table, console=self.console,
                             refresh_per_second=2, transient=True)
            self.live.__enter__()
        return self

    def __exit__(self, *exc):
        if self.live is not None:
            self.live.__exit__(*exc)
        return False

    def event(self, name: str, state: str, detail: str) -> None:
        entry = self.state[name]
        now = self.clock()
        if state == "running":
            entry[2] = now
        else:
            entry[3] = now
        entry[0], entry[1] = state, detail
        if self.live is None:
            print(f"sweep: {name} {state}{': ' + detail if detail else ''}", flush=True)

    def _table(self):
        from rich.table import Table

        counts = {s: sum(e[0] == s for e in self.state.values()) for s in _STATE_STYLE}
        table = Table(title=f"sweep on the {self.device}: " + ", ".join(
            f"{n} {s}" for s, n in counts.items() if n), title_justify="left")
        for col in ("point", "state", "time", ""):
            table.add_column(col)
        for name, (state, detail, start, end) in self.state.items():
            spent = "" if start is None else f"{(end or self.clock()) - start:.0f} s"
            table.add_row(name, f"[{_STATE_STYLE[state]}]{state}[/]", spent, detail)
        return table
