"""Options of the test suite.

``--runslow``    run the tests marked ``slow`` (skipped otherwise); ``swatkit regress --full``
                 gives it. The property tests then draw more examples (:data:`SLOW_EXAMPLES`).
``--seed S``     seed of the cocotb regression's inputs, valid gaps and ready stalls (default: a
                 fresh one per session, printed in the header and by every test).
``--waves``      record a VCD per cocotb run (in its work folder); ``--waves-format fst`` for FST.
``--build-dir``  where Verilator builds are cached (default ``~/.cache/swatkit/verilator``).

While the suite runs, a line names each Verilator build as a regression case starts it
(``building <build>: <configuration> (for <case>)``) and each build as it is finished (``built
<build> in S s``, from the cache's ``builds.log``); the summary counts the builds made.
"""

from __future__ import annotations

import os
import secrets

import pytest

SEED = pytest.StashKey[int]()


def pytest_addoption(parser):
    parser.addoption("--runslow", action="store_true", default=False,
                     help="run tests marked slow (the full regression matrix)")
    group = parser.getgroup("swatkit", "swatkit cocotb regression")
    group.addoption("--seed", type=int, default=None, metavar="S",
                    help="seed of the regression's inputs, gaps and stalls (default: random, "
                         "printed)")
    group.addoption("--waves", action="store_true", default=False,
                    help="record waveforms of every cocotb run (dump.vcd)")
    group.addoption("--waves-format", choices=("vcd", "fst"), default="vcd",
                    help="with --waves: vcd (default) or fst (needs the lz4 headers)")
    group.addoption("--build-dir", default=None, metavar="DIR",
                    help="Verilator build cache (default ~/.cache/swatkit/verilator)")


# examples of the property tests: the default tier's (in each module), and under --runslow
# (unless the variable is set)
SLOW_EXAMPLES = {"SWATKIT_ANY_INPUT_EXAMPLES": "200", "SWATKIT_PATTERN_EXAMPLES": "25",
                 "SWATKIT_LINT_EXAMPLES": "4"}


def pytest_configure(config):
    if config.getoption("--runslow"):
        for name, value in SLOW_EXAMPLES.items():
            os.environ.setdefault(name, value)
    seed = config.getoption("seed")
    if seed is None:  # xdist workers take the controller's seed
        seed = getattr(config, "workerinput", {}).get("swatkit_seed")
    if seed is None:
        seed = secrets.randbelow(2 ** 31)
    if seed < 0:
        raise pytest.UsageError(f"--seed must be a non-negative integer, not {seed}")
    config.stash[SEED] = seed


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node):
    node.workerinput["swatkit_seed"] = node.config.stash[SEED]


def pytest_report_header(config):
    return f"swatkit regression seed: {config.stash[SEED]} (reproduce with --seed)"


def pytest_collection_modifyitems(config, items):
    # the regression matrix first (each build with its cases: the suite's longest work units),
    # the real-size cores' first of all (their models compile at -O1), so that under -n the
    # builds spread over the workers from the start and the many short tests fill in at the
    # end, not one long build alone in the last minute
    items.sort(key=_schedule)
    if config.getoption("--runslow"):
        return
    skip = pytest.mark.skip(reason="slow: needs --runslow")
    turns = pytest.mark.skip(reason="by turns: the other setting runs in the default tier; "
                                    "both with --runslow")
    off = off_turn(items)
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)
        elif item in off:
            item.add_marker(turns)


# modules whose tests make Verilator builds or proofs of their own (tens of seconds each):
# scheduled after the matrix, before the many short tests
_LONG_MODULES = ("tests/sim/test_reproduce.py", "tests/sim/test_waves.py",
                 "tests/sim/test_decode_regress.py", "tests/sim/test_formal.py",
                 "tests/cli/test_interrupts.py", "tests/fpga_flows/test_selftest",
                 "tests/test_doc_examples.py", "tests/rtl/test_packaging.py")


def _schedule(item) -> tuple[bool, bool]:
    """Matrix cases first (``test_fast``/``test_full`` of tests/sim/test_regress.py), those of
    builds whose models compile at -O1 (the real-size cores) before the others; then the
    modules of :data:`_LONG_MODULES`; then the rest."""
    from swatkit.sim.regress import MAKE_ARGS, Case

    case = getattr(item, "callspec", None) and item.callspec.params.get("case")
    if "test_regress.py::test_f" not in item.nodeid or not isinstance(case, Case):
        return True, not item.nodeid.startswith(_LONG_MODULES)
    return False, case.build.make_args != MAKE_ARGS


def by_turns(item):
    """``(test, shape, setting)`` of an item of a test marked ``by_turns(NAME)``, else None:
    the test (module and function), its shape (the other arguments' values, by identity: a
    shape is one entry of the parametrize lists) and NAME's value."""
    mark = item.get_closest_marker("by_turns")
    if mark is None or not hasattr(item, "callspec"):
        return None
    (name,) = mark.args
    params = item.callspec.params
    shape = tuple(id(v) for arg, v in sorted(params.items()) if arg != name)
    return (item.path, item.originalname), shape, params[name]


def off_turn(items) -> list:
    """The items the default tier leaves out. A test marked ``by_turns(NAME)`` is parametrized
    over shapes and over NAME's two settings (stall-free and under gaps and stalls, or two
    rates of them): the default tier runs each shape once, the i-th shape (in collection order)
    with NAME's setting i mod 2 (in sorted order), so that half the shapes run with each;
    ``--runslow`` runs every pair."""
    shapes, settings, found = {}, {}, []
    for item in items:
        turn = by_turns(item)
        if turn is not None:
            test, shape, setting = turn
            shapes.setdefault(test, {}).setdefault(shape, len(shapes[test]))
            settings.setdefault(test, set()).add(setting)
            found.append((item, turn))
    return [item for item, (test, shape, setting) in found
            if sorted(settings[test]).index(setting) != shapes[test][shape] % 2]


class BuildProgress:
    """The progress lines of the Verilator builds (in the controlling process only)."""

    def __init__(self, config):
        from swatkit.support.build_cache import build_root

        self.config = config
        self.root = build_root(config.getoption("build_dir"))
        self.log = self.root / "builds.log"
        self.start = self.log.stat().st_size if self.log.is_file() else 0
        self.seen = self.start
        self.announced: set = set()
        self.cases = None
        self.made: list[str] = []

    def write(self, text: str) -> None:
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line(text)

    def starting(self, nodeid: str) -> None:
        """A regression case starts: name its build if the cache does not have it."""
        if "test_regress.py::test_f" not in nodeid or "[" not in nodeid:
            return
        from swatkit.sim.regress import build_key

        if self.cases is None:
            from swatkit.cmd_regress import matrix

            self.cases = {c.id: c for c in matrix(True)}
        # (an id, then "@<build>" under --dist loadgroup: xdist appends the test's group)
        case = self.cases.get(nodeid.split("[", 1)[1].rsplit("@", 1)[0].rstrip("]"))
        if case is None or case.build in self.announced:
            return
        self.announced.add(case.build)
        waves = (self.config.getoption("waves_format") if self.config.getoption("waves")
                 else None)
        if not (self.root / build_key(case.build, waves) / "build.ok").is_file():
            self.write(f"building {case.build.id}: {case.build.describe()} (for {case.id})")

    def finished(self) -> None:
        """Name the builds finished since the last call (the lines builds.log gained)."""
        import json

        if not self.log.is_file() or self.log.stat().st_size <= self.seen:
            return
        with open(self.log) as fh:
            fh.seek(self.seen)
            text = fh.read()
        end = text.rfind("\n") + 1
        self.seen += len(text[:end].encode())
        for line in text[:end].splitlines():
            record = json.loads(line)
            self.made.append(record.get("build") or record["key"])
            self.write(f"built {self.made[-1]} in {record['seconds']} s "
                       f"({len(self.made)} Verilator builds so far)")


_PROGRESS: list[BuildProgress] = []   # the controlling process's, once the session starts


@pytest.hookimpl(trylast=True)
def pytest_sessionstart(session):
    if not hasattr(session.config, "workerinput"):   # not in an xdist worker
        _PROGRESS.append(BuildProgress(session.config))


def pytest_runtest_logreport(report):
    if not _PROGRESS:
        return
    if report.when == "setup" and report.passed:   # the test runs now (not skipped)
        _PROGRESS[-1].starting(report.nodeid)
    elif report.when == "teardown":
        _PROGRESS[-1].finished()


def pytest_terminal_summary(terminalreporter):
    if _PROGRESS:
        progress = _PROGRESS[-1]
        progress.finished()
        terminalreporter.write_line(f"Verilator builds made: {len(progress.made)} (in "
                                    f"{progress.root}; each is a line of builds.log)")


@pytest.fixture
def regress_seed(request) -> int:
    """The session's regression seed (``--seed``)."""
    return request.config.stash[SEED]


@pytest.fixture
def refused(monkeypatch):
    """``refused("regress", *ARGV, cwd=DIR)``: ``swatkit ARGV`` run in this process
    (:func:`swatkit.cli.main`, from ``DIR``), for a command the CLI refuses before it runs
    anything; returns its exit code, standard output and standard error as a finished
    process's. A process of its own costs ~0.75 s of start-up a call."""
    import contextlib
    import io
    import subprocess

    from swatkit.cli import main

    def run(*argv, cwd=None):
        if cwd is not None:
            monkeypatch.chdir(cwd)
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(list(argv))
            except SystemExit as e:   # (argparse's exit: the command prints and exits 2)
                code = e.code
        return subprocess.CompletedProcess(["swatkit", *argv], code, out.getvalue(),
                                           err.getvalue())

    return run
