"""Run the cocotb + Verilator regression of the generated Verilog against the golden model.

Each case of the configuration matrix (sim/regress.py) generates the Verilog that `swatkit
generate` writes, compiles it with Verilator (cached per configuration), drives it under cocotb
with random valid gaps and ready stalls, and compares every output row bit for bit with the
fixed-point golden model. The cases are the pytest tests of tests/sim/test_regress.py (run with
pytest-xdist for -n); a JUnit XML report is written. Exit code 0 if every case passed, 1 if any
failed.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import secrets
import sys
import time
from pathlib import Path

from swatkit.options import UsageError

__all__ = ["add_arguments", "find_tests", "run"]

TESTS = Path("tests") / "sim" / "test_regress.py"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--fast", action="store_true",
                      help="the fast matrix (the default; what CI runs)")
    mode.add_argument("--full", action="store_true",
                      help="the whole matrix (the fast one and the slow cases)")
    parser.add_argument("-k", metavar="EXPR", dest="keyword",
                        help="only the cases matching EXPR (pytest -k: substrings of case ids "
                             "such as bi9_k2d4/edges, with and/or/not)")
    parser.add_argument("-n", "--workers", metavar="WORKERS", type=int,
                        help="parallel simulations (default: the number of CPUs; 0 runs in "
                             "this process)")
    parser.add_argument("--seed", metavar="S", type=int,
                        help="seed of the inputs, gaps and stalls (default: a fresh one, "
                             "printed)")
    parser.add_argument("--waves", nargs="?", const="vcd", choices=("vcd", "fst"),
                        help="record waveforms of every case (VCD unless 'fst' is given; "
                             "traced builds are cached separately)")
    parser.add_argument("--build-dir", metavar="DIR", type=Path,
                        help="Verilator build cache (default ~/.cache/swatkit/verilator)")
    parser.add_argument("--junitxml", metavar="FILE", type=Path,
                        help="JUnit XML report (default: regress.xml in the build cache)")
    parser.add_argument("--json", metavar="FILE", type=Path,
                        help="also write the results (per case and totals) as JSON")


def find_tests() -> Path:
    """tests/sim/test_regress.py of the source tree: the working folder's, else the one beside
    the installed package (an editable install)."""
    import swatkit

    for root in (Path.cwd(), Path(swatkit.__file__).resolve().parent.parent):
        if (root / TESTS).is_file():
            return root / TESTS
    raise UsageError(f"{TESTS} not found: swatkit regress runs the test suite of a source "
                     "checkout (run it from the repository, or pip install -e it)")


def _recorder(progress, task, console):
    """A pytest plugin that feeds the progress display and keeps every test's outcome."""
    import pytest

    class Recorder:
        def __init__(self):
            self.results: dict[str, dict] = {}
            self.order: list[str] = []

        def ordered(self) -> list[dict]:
            """The results in collection (matrix) order."""
            rank = {nodeid: i for i, nodeid in enumerate(self.order)}
            return [self.results[k] for k in sorted(self.results,
                                                    key=lambda k: rank.get(k, len(rank)))]

        def pytest_collection_finish(self, session):
            self.order = [item.nodeid for item in session.items]
            progress.update(task, total=len(self.order))

        @pytest.hookimpl(optionalhook=True)
        def pytest_xdist_node_collection_finished(self, node, ids):
            self.order = list(ids)  # the controller learns them from a worker
            progress.update(task, total=len(ids))

        def pytest_runtest_logreport(self, report):
            entry = self.results.setdefault(report.nodeid, {
                "name": _name(report.nodeid), "outcome": "passed", "message": ""})
            props = dict(report.user_properties)
            if props:
                entry["props"] = props
            if report.failed:
                entry["outcome"] = "failed" if report.when == "call" else "error"
                entry["message"] = entry["message"] or report.longreprtext
            elif report.skipped and entry["outcome"] == "passed":
                entry["outcome"] = "skipped"
            if report.when == "call" or (report.when == "setup" and not report.passed):
                progress.update(task, advance=1, description=entry["name"])
                verdict = {"passed": "[green]PASS[/]", "skipped": "[yellow]SKIP[/]"}.get(
                    entry["outcome"], "[red]FAIL[/]")
                detail = (f"  {props['rows']} rows, {props['cycles']} cycles, "
                          f"{props['cycles_per_ideal']:.3f}× ideal" if "rows" in props else "")
                console.print(f"{verdict} {entry['name']}{detail}", highlight=False)

    return Recorder()


def _name(nodeid: str) -> str:
    """The case id of a test (the bites test by what it does)."""
    match = re.search(r"::(test_\w+)(?:\[(.*)\])?$", nodeid)
    if not match:
        return nodeid
    if match[1] == "test_scoreboard_bites":
        return "scoreboard bites (one expected bit flipped)"
    return match[2] or match[1]


def _pytest_args(args, tests: Path, seed: int, junit: Path) -> list[str]:
    selected = [f"{tests}::test_fast", f"{tests}::test_scoreboard_bites"]
    if args.full:  # the whole matrix, and the slow tests of the FPGA flows (a real build)
        selected += [f"{tests}::test_full", str(tests.parent.parent / "fpga_flows")]
    out = [*selected, "-p", "no:cacheprovider", "--seed", str(seed), f"--junitxml={junit}"]
    if args.full:
        out.append("--runslow")
    if args.keyword:
        out += ["-k", args.keyword]
    if args.waves:
        out += ["--waves", "--waves-format", args.waves]
    if args.build_dir:
        out += ["--build-dir", str(args.build_dir)]
    if args.workers:
        out += ["-n", str(args.workers)]
    else:
        out += ["-p", "no:xdist", "--capture=sys"]  # keep the display out of fd capture
    return out


def run(args: argparse.Namespace) -> int:
    from swatkit.sim.regress import build_root

    if args.workers is None:
        args.workers = os.cpu_count() or 1
    if args.workers < 0:
        raise UsageError(f"-n must be a non-negative integer, not {args.workers}")
    if args.seed is not None and args.seed < 0:
        raise UsageError(f"--seed must be a non-negative integer, not {args.seed}")
    if args.workers > 0:
        try:
            import xdist  # noqa: F401 - only checks that pytest-xdist is there
        except ImportError:
            raise UsageError("-n needs pytest-xdist (pip install pytest-xdist), or give -n 0")\
                from None
    from swatkit.sim.toolchain import ToolchainError, find_verilator

    try:
        verilator = find_verilator()
    except ToolchainError as e:
        raise UsageError(str(e)) from None
    for option, path in (("--junitxml", args.junitxml), ("--json", args.json)):
        if path is not None and not path.resolve().parent.is_dir():
            raise UsageError(f"{option}: no such folder: {path.parent}")
    tests = find_tests()
    root = build_root(args.build_dir)
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UsageError(f"--build-dir: cannot create {root}: {e.strerror}") from None
    seed = secrets.randbelow(2 ** 31) if args.seed is None else args.seed
    junit = (args.junitxml or root / "regress.xml").resolve()
    log = root / "regress.log"
    mode = "full" if args.full else "fast"

    import pytest
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    sys.stdout.flush()
    sys.stderr.flush()
    terminal = os.fdopen(os.dup(sys.stdout.fileno()), "w")
    console = Console(file=terminal)
    console.print(f"swatkit regress --{mode}: seed {seed}, {args.workers or 'no'} workers, "
                  f"Verilator {'.'.join(map(str, verilator.version))}, builds in {root}",
                  highlight=False)
    progress = Progress(TextColumn("[bold]regress"), BarColumn(), MofNCompleteColumn(),
                        TimeElapsedColumn(), TextColumn("{task.description}"),
                        console=console, redirect_stdout=False, redirect_stderr=False,
                        transient=True)
    task = progress.add_task("collecting", total=None)
    recorder = _recorder(progress, task, console)
    start = time.monotonic()
    with open(log, "w") as fh, _output_to(fh), progress:
        code = pytest.main(_pytest_args(args, tests, seed, junit), plugins=[recorder])
    wall = time.monotonic() - start
    results = recorder.ordered()
    try:
        return _report(args, console, code, results, log, junit, wall, seed, mode)
    finally:
        console.file.flush()
        terminal.close()


@contextlib.contextmanager
def _output_to(fh):
    """Send everything written to stdout and stderr (this process's and the pytest workers',
    at file-descriptor level) to ``fh``; the progress display keeps a copy of the terminal."""
    saved = [os.dup(1), os.dup(2)]
    sys.stdout.flush()
    sys.stderr.flush()
    os.dup2(fh.fileno(), 1)
    os.dup2(fh.fileno(), 2)
    try:
        with contextlib.redirect_stdout(fh), contextlib.redirect_stderr(fh):
            yield
    finally:
        fh.flush()
        for fd, copy in zip((1, 2), saved, strict=True):
            os.dup2(copy, fd)
            os.close(copy)


def _report(args, console, code, results, log, junit, wall, seed, mode) -> int:
    import pytest

    if code == pytest.ExitCode.NO_TESTS_COLLECTED or (code == 0 and not results):
        raise UsageError(f"-k {args.keyword!r} matches no case" if args.keyword
                         else "no case was collected")
    if code not in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED):
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-30:])
        console.print(tail, markup=False, highlight=False)
        console.print(f"[red]pytest stopped with exit code {int(code)}[/] (log: {log})")
        return int(code) or 1
    totals = _summary(console, results, wall, seed, mode)
    for entry in results:
        if entry["outcome"] in ("failed", "error"):
            console.rule(f"[red]{entry['name']}")
            console.print(entry["message"].strip(), markup=False, highlight=False)
    if args.waves:
        for entry in results:
            if "waves" in entry.get("props", {}):
                console.print(f"waves of {entry['name']}: {entry['props']['waves']}",
                              highlight=False)
    console.print(f"JUnit XML: {junit}   pytest log: {log}", highlight=False)
    if args.json:
        record = {"mode": mode, "seed": seed, "workers": args.workers, "wall_seconds": wall,
                  "totals": totals, "cases": results}
        try:
            args.json.write_text(json.dumps(record, indent=2, default=str) + "\n")
        except OSError as e:
            raise UsageError(f"--json: cannot write {args.json}: {e.strerror}") from None
    failed = totals["failed"] or code != pytest.ExitCode.OK
    return 1 if failed else 0


def _summary(console, results: list[dict], wall: float, seed: int, mode: str) -> dict:
    from rich.table import Table

    table = Table(title=f"swatkit regress --{mode} (seed {seed})")
    table.add_column("config", overflow="fold")
    for column in ("rows", "cycles", "cycles/ideal"):
        table.add_column(column, justify="right", no_wrap=True)
    table.add_column("result", no_wrap=True)
    rows = cycles = sim_cycles = 0
    sim_seconds = 0.0
    failed = 0
    for entry in results:
        p = entry.get("props", {})
        ok = entry["outcome"] in ("passed", "skipped")
        failed += not ok
        rows += p.get("rows", 0) if ok else 0
        cycles += p.get("cycles", 0)
        sim_cycles += p.get("sim_cycles", 0)
        sim_seconds += p.get("sim_seconds", 0.0)
        verdict = {"passed": "[green]pass", "skipped": "[yellow]skip",
                   "error": "[red]ERROR"}.get(entry["outcome"], "[red]FAIL")
        table.add_row(entry["name"], str(p["rows"]) if "rows" in p else "",
                      str(p["cycles"]) if "cycles" in p else "",
                      f"{p['cycles_per_ideal']:.3f}" if "cycles_per_ideal" in p else "",
                      verdict)
    console.print(table)
    speed = sim_cycles / sim_seconds if sim_seconds else 0.0
    minutes, seconds = divmod(wall, 60)
    console.print(
        f"{len(results)} tests, {failed} failed; {rows} output rows checked bit-exact; "
        f"{cycles} core cycles; wall {int(minutes)}m{seconds:04.1f}s; Verilator+cocotb "
        f"simulated {sim_cycles} cycles at {speed:,.0f} cycles/s", highlight=False)
    return {"tests": len(results), "failed": failed, "rows": rows, "cycles": cycles,
            "sim_cycles": sim_cycles, "sim_seconds": sim_seconds,
            "cycles_per_second": speed, "wall_seconds": wall}
