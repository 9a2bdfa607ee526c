"""Every command, any input: a result (exit 0) or exit 2 with a one-line message; never a
traceback, never a file outside ``-o``.

Hypothesis drives each subcommand's argument parser and file readers (``--config``,
``estimate --tech`` and ``--from-flow``, ``explore --flows``) with random option values and
random files: TOML and JSON with values of the wrong type, huge integers (beyond 64 bits, and
of more digits than Python converts), JSON nested 33 to 200,000 levels deep, corrupt
``flow.json`` records (a field dropped, or replaced by a string, a bool, a negative or huge
number, a list); and in place of a file a FIFO, ``/dev/zero``, a link to it, a folder. The
commands run in-process (an uncaught exception fails the test with its traceback), in a fresh
working folder whose only change may be under ``out/``, under a watchdog: an answer that takes
more than :data:`WATCHDOG` seconds fails the test (a read that blocks or never ends). Only
paths that finish in milliseconds are taken: ``generate`` and ``flow`` with ``--print-config``
(which resolves and checks everything a build would, then stops), ``flow --collect`` and
``--list-boards``, ``estimate`` with sequence lengths either small or refused, ``explore`` on a
small model and length; ``regress`` runs up to the point where its work would start (finding
Verilator: every check of its options comes before it), ``prove`` is parsed only.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import tempfile
import time
from pathlib import Path
from unittest import mock

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from swatkit.cli import build_parser, main
from swatkit.options import TABLES, UsageError
from swatkit.support.toml_text import dumps

# examples per test: 80 in the default tier (the eight tests took 36-70 s of a suite run at 200,
# load ~3), 200 under --runslow (tests/conftest.py); more: SWATKIT_ANY_INPUT_EXAMPLES
EXAMPLES = int(os.environ.get("SWATKIT_ANY_INPUT_EXAMPLES", "80"))
WATCHDOG = 20   # seconds: no input may take longer to answer (here ~0.01-0.5 s; loaded: 2-10x)

# in place of a file: what check() makes of these markers (FIFO: a named pipe with no writer)
FIFO, TO_ZERO = "<fifo>", "<link to /dev/zero>"
NOT_FILES = st.sampled_from(["/dev/zero", "in/fifo", "in/zero", "in", ".", "/",
                             "no/such/file"])
NOT_FILE_MARKERS = {"in/fifo": FIFO, "in/zero": TO_ZERO}
# JSON nested past the readers' bound (32) and past Python's recursion limit
DEEP = st.sampled_from([33, 1000, 200_000]).map(lambda n: "[" * n + "]" * n)
HUGE_INTS = st.sampled_from([10 ** 12, 2 ** 63, -2 ** 63 - 1, 10 ** 30])
DIGITS = "9" * 5000   # more digits than Python converts (sys.get_int_max_str_digits)

# integers that are cheap when legal (a sequence of at most 5000 rows) or refused at once
INTS = st.one_of(st.integers(1, 64), st.integers(-4, 70), st.integers(71, 5000),
                 st.sampled_from([0, 2 ** 24 + 1, 2 ** 31, 2 ** 62, 10 ** 30, -2 ** 63]))
FLOATS = st.one_of(st.floats(), st.sampled_from([0.5, 1e-300, 1e308, 25.0, 100.0]))
WORDS = st.text(max_size=10)
LENGTHS = st.one_of(
    st.lists(INTS, min_size=1, max_size=4).map(lambda xs: ",".join(map(str, xs))),
    st.tuples(st.integers(-2, 4096), st.integers(-2, 4096), st.sampled_from("x+"),
              st.integers(-1, 4)).map(lambda t: f"{t[0]}:{t[1]}:{t[2]}{t[3]}"),
    st.sampled_from([f"1:{10 ** 30}:+1", f"{2 ** 25}:{2 ** 26}:x2", "1:1:x1", "4:2:+1", "::"]),
)
TEXT_VALUES = st.one_of(INTS.map(str), FLOATS.map(str), WORDS, LENGTHS,
                        st.sampled_from(["icebreaker", "ulx3s-85f", "tangnano9k", "generic",
                                         "ecp5", "axis", "core", "1x8,2x8", "0,17", "asic45",
                                         "fpga", "swat,dense", "json", "csv", "module",
                                         "in", "/", "no/such/file.toml"]))
CONFIG_VALUES = st.one_of(INTS, FLOATS.filter(lambda f: f == f and abs(f) != float("inf")),
                          st.booleans(), WORDS, LENGTHS, st.lists(INTS, max_size=3), HUGE_INTS)


@st.composite
def config_files(draw):
    """(suffix, bytes) of a --config file: tables of swatkit keys (and unknown ones) with
    random values as TOML or as a swatkit.json "config" record, or arbitrary bytes."""
    tables = {}
    for table in draw(st.lists(st.sampled_from([*TABLES, "extra"]), max_size=4, unique=True)):
        keys = [*TABLES.get(table, {}), "junk"]
        chosen = draw(st.lists(st.sampled_from(keys), max_size=5, unique=True))
        tables[table] = {k: draw(CONFIG_VALUES) for k in chosen}
    kind = draw(st.sampled_from(["toml", "json", "bytes", "deep", "digits"]))
    if kind == "toml":
        return ".toml", dumps(tables).encode()
    if kind == "json":
        return ".json", json.dumps({"config": tables} if draw(st.booleans()) else tables).encode()
    if kind == "deep":   # nested past the bound, as a whole file or as a key's value
        deep = draw(DEEP)
        return draw(st.sampled_from([
            (".json", deep.encode()),
            (".json", ('{"config": {"spec": {"seq_len": ' + deep + "}}}").encode()),
            (".toml", ("[spec]\nseq_len = " + deep + "\n").encode())]))
    if kind == "digits":
        return draw(st.sampled_from([
            (".json", ('{"config": {"spec": {"head_dim": ' + DIGITS + "}}}").encode()),
            (".toml", ("[spec]\nhead_dim = " + DIGITS + "\n").encode())]))
    return draw(st.sampled_from([".toml", ".json"])), draw(st.binary(max_size=40))


@st.composite
def energy_tables(draw):
    entries = {k: draw(st.one_of(FLOATS, INTS, WORDS)) for k in draw(st.lists(st.sampled_from(
        ["int8_add", "int32_add", "int8_mult", "int32_mult", "sram_read_64b",
         "dram_access_64b", "junk"]), max_size=7, unique=True))}
    table = {"name": draw(WORDS), "source": draw(WORDS), "energy": entries}
    if draw(st.booleans()):
        table["static_power_w"] = draw(st.one_of(FLOATS, WORDS))
    text = "\n".join(f"{k} = {json.dumps(v)}" for k, v in table.items() if k != "energy")
    text += "\n[energy]\n" + "\n".join(f"{k} = {json.dumps(v)}" for k, v in entries.items())
    return draw(st.one_of(st.just(text.replace("NaN", "nan").replace("Infinity", "inf")),
                          st.binary(max_size=30).map(lambda b: b.decode("latin-1"))))


# a flow.json as `swatkit flow --collect` writes it (iCEBreaker, causal window of 9 keys)
FLOW = {"board": "icebreaker",
        "fmax_mhz": {"cd_sync.clk": {"achieved": 28.2, "constraint": 25.0, "met": True}},
        "utilization": {"LUT": {"used": 4362, "available": 5280, "cell": "ICESTORM_LC"},
                        "DSP": {"used": 3, "available": 8, "cell": "ICESTORM_DSP"},
                        "BRAM": {"used": 10, "available": 30, "cell": "ICESTORM_RAM"}},
        "core": {"head_dim": 8, "window": 9, "key_lanes": 1, "dim_lanes": 2, "data_bits": 8,
                 "cycles_per_row": 36},
        "spec": {"seq_len": 1024, "head_dim": 8, "before": 8, "after": 0, "dilation": 1,
                 "global_tokens": [], "block_size": 0, "num_random_blocks": 0,
                 "pattern_seed": None, "explicit_random_table": None},
        "format": {"data_bits": 8, "prob_bits": 16, "exp_frac_bits": 6, "const_bits": 16,
                   "out_bits": 8, "out_frac_bits": 0, "scale_q": 0.03125, "scale_k": 0.03125,
                   "scale_v": 0.03125},
        "hardware": {"key_lanes": 1, "dim_lanes": 2, "max_seq_len": 1024,
                     "max_global_tokens": 0, "max_dilation": 1, "global_engines": 0}}
ODD_VALUES = st.one_of(st.sampled_from([None, True, False, "8", "", -1, 0, -5.0, 1e308, 8.0,
                                        [], {}, [8], {"achieved": "fast"}]),
                       HUGE_INTS, INTS, FLOATS.filter(lambda f: f == f))


def _paths(record, prefix=()):
    """Every key path into a JSON record."""
    for key, value in record.items():
        yield (*prefix, key)
        if isinstance(value, dict):
            yield from _paths(value, (*prefix, key))


FLOW_PATHS = sorted(_paths(FLOW))


@st.composite
def flow_reports(draw):
    """A flow.json: FLOW with up to three fields dropped or replaced by odd values (none: a
    valid report), or odd bytes."""
    kind = draw(st.sampled_from(["mutated", "mutated", "mutated", "deep", "digits", "bytes"]))
    if kind == "deep":
        return draw(DEEP).encode()
    if kind == "digits":
        return json.dumps(FLOW).replace('"window": 9', '"window": ' + DIGITS).encode()
    if kind == "bytes":
        return draw(st.binary(max_size=40))
    report = json.loads(json.dumps(FLOW))
    for path in draw(st.lists(st.sampled_from(FLOW_PATHS), max_size=3, unique=True)):
        parent = report
        for key in path[:-1]:
            parent = parent.get(key) if isinstance(parent, dict) else None
        if isinstance(parent, dict) and path[-1] in parent:
            if draw(st.booleans()):
                del parent[path[-1]]
            else:
                parent[path[-1]] = draw(ODD_VALUES)
    return json.dumps(report).encode()


def file_option(draw, files: dict, stem: str, content) -> str:
    """The path a file option names: a new file ``in/<stem><n><suffix>`` holding ``content``
    (a strategy of (suffix, bytes)), or (one in four) something that is not a readable file."""
    if draw(st.integers(0, 3)) == 0:
        path = draw(NOT_FILES)
        if path in NOT_FILE_MARKERS:
            files[path] = NOT_FILE_MARKERS[path]
        return path
    suffix, data = draw(content)
    path = f"in/{stem}{len(files)}{suffix}"
    files[path] = data
    return path


@st.composite
def flow_folders(draw, files: dict) -> str:
    """``explore --flows``: a folder of one or two projects, each a flow.json (a report, or
    not a file) and maybe a swatkit.json beside it; or something that is not a folder."""
    if draw(st.integers(0, 4)) == 0:
        path = draw(NOT_FILES)
        if path in NOT_FILE_MARKERS:
            files[path] = NOT_FILE_MARKERS[path]
        return path
    for project in ("a", "b")[:draw(st.integers(1, 2))]:
        files[f"in/flows/{project}/flow.json"] = draw(st.one_of(
            flow_reports(), flow_reports(), st.sampled_from([FIFO, TO_ZERO])))
        if draw(st.booleans()):
            files[f"in/flows/{project}/swatkit.json"] = draw(st.one_of(
                st.sampled_from([FIFO, TO_ZERO, b"[1, 2]", b"{", b"[" * 40 + b"]" * 40]),
                st.fixed_dictionaries({}, optional={
                    "spec": st.fixed_dictionaries({}, optional={"before": ODD_VALUES,
                                                                "after": ODD_VALUES}),
                    "hardware": st.fixed_dictionaries({}, optional={"max_seq_len": ODD_VALUES}),
                    "selftest": st.one_of(ODD_VALUES, st.fixed_dictionaries(
                        {}, optional={"rows": ODD_VALUES}))}).map(
                    lambda r: json.dumps(r).encode())))
    return "in/flows"


def options_of(command: str) -> dict:
    """option string -> argparse action, for one subcommand."""
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    return {s: a for a in sub.choices[command]._actions for s in a.option_strings
            if s.startswith("--") and s not in ("--help",)}


@st.composite
def argvs(draw, command, skip=(), always=()):
    """Random options of ``command`` with random values; file options get files in ``in/``."""
    actions = options_of(command)
    names = draw(st.lists(st.sampled_from(sorted(set(actions) - set(skip))), max_size=6))
    argv, files = [command, *always], {}
    for name in names:
        action = actions[name]
        argv.append(name)
        if action.nargs == 0:
            continue
        if name == "--config":
            argv.append(file_option(draw, files, "c", config_files()))
        elif name == "--tech" and draw(st.booleans()):
            argv.append(file_option(draw, files, "t", energy_tables().map(
                lambda text: (".toml", text.encode()))))
        elif name == "--from-flow":
            argv.append(file_option(draw, files, "f", st.one_of(flow_reports(), st.one_of(
                st.dictionaries(st.just("fmax_mhz"), st.one_of(FLOATS, WORDS, st.dictionaries(
                    WORDS, st.one_of(FLOATS, st.dictionaries(st.just("achieved"), FLOATS))))),
                st.lists(INTS)).map(lambda r: json.dumps(r).encode())).map(
                lambda data: (".json", data))))
        elif name == "--flows":
            argv.append(draw(flow_folders(files)))
        elif name in ("--junitxml", "--json") and command == "regress":
            argv.append(draw(st.one_of(NOT_FILES, st.sampled_from(["out/r.xml", "out/",
                                                                   "out/no/r.json"]))))
            if argv[-1] in NOT_FILE_MARKERS:
                files[argv[-1]] = NOT_FILE_MARKERS[argv[-1]]
        elif name in ("-o", "--output"):   # (in/f: a file, where a folder is wanted)
            argv.append(draw(st.sampled_from(["out/a", "out", "out/", "out/.", "out/b.png",
                                              "in/f", "in/f/x"])))
            if argv[-1].startswith("in/f"):
                files["in/f"] = b"a file, not a folder"
        elif name == "--plot":  # the file estimate writes: inside out/ too
            argv.append(draw(st.sampled_from(["out/p", "out/b.png", "out/c.svg", "out/..png",
                                              "out/x.jpgx", "out/no/such/x.png"])))
        else:  # mostly a value of the option's type, so that many runs get past the parser
            typed = (st.sampled_from(action.choices) if action.choices else
                     INTS.map(str) if action.type is int else
                     FLOATS.map(str) if action.type is float else TEXT_VALUES)
            argv.append(draw(st.one_of(typed, typed, typed, TEXT_VALUES)))
    return argv, files


class WouldStartError(Exception):
    """Raised where a command's long work would start: every check of its input has passed."""


class HungError(Exception):
    pass


def _watchdog(signum, frame):
    raise HungError(f"no answer within {WATCHDOG} s")


def check(argv, files, stop_at=None):
    """Run ``swatkit argv`` in a fresh folder holding ``files`` (bytes, or FIFO / TO_ZERO):
    exit 0 or 2, a one-line error (at most three lines on stderr), no file changed outside
    ``out/``, an answer within :data:`WATCHDOG` seconds. ``stop_at`` (a function's dotted
    name) is where the command's work would start: reaching it counts as exit 0."""
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for name, data in files.items():
            (work / name).parent.mkdir(parents=True, exist_ok=True)
            if data == FIFO:
                os.mkfifo(work / name)
            elif data == TO_ZERO:
                os.symlink("/dev/zero", work / name)
            else:
                (work / name).write_bytes(data)
        before = {p: p.lstat().st_mtime_ns for p in work.rglob("*")}
        out, err = io.StringIO(), io.StringIO()
        cwd = os.getcwd()
        os.chdir(work)
        previous = signal.signal(signal.SIGALRM, _watchdog)
        signal.setitimer(signal.ITIMER_REAL, WATCHDOG)
        start = time.monotonic()
        try:
            with contextlib.ExitStack() as stack:
                stack.enter_context(contextlib.redirect_stdout(out))
                stack.enter_context(contextlib.redirect_stderr(err))
                if stop_at:
                    stack.enter_context(mock.patch(stop_at, side_effect=WouldStartError))
                try:
                    code = main(argv)
                except WouldStartError:
                    code = 0
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)
            os.chdir(cwd)
        seconds = time.monotonic() - start
        lines = err.getvalue().splitlines()
        event(f"exit {code}")  # the share of results and refusals: --hypothesis-show-statistics
        if code == 2:
            ANSWERS.append(seconds)
        assert code in (0, 2), (argv, code, lines)
        assert "Traceback" not in err.getvalue(), (argv, lines)
        assert len(lines) <= 3, (argv, lines)
        if code == 2:
            assert lines[-1].startswith("swatkit: error: "), (argv, lines)
        changed = {p for p in work.rglob("*") if before.get(p) != p.lstat().st_mtime_ns}
        outside = {p for p in changed if p.relative_to(work).parts[0] != "out"}
        assert not outside, (argv, outside)


ANSWERS = []   # seconds to each refusal (exit 2) in this module's tests


@pytest.fixture(scope="module", autouse=True)
def refusal_times():
    """How many inputs were refused, and how fast (in-process: without Python's start-up);
    shown with ``-s``."""
    yield
    if ANSWERS:
        times = sorted(ANSWERS)
        print(f"\n{len(times)} refusals: median {1000 * times[len(times) // 2]:.1f} ms, "
              f"99th percentile {1000 * times[int(0.99 * (len(times) - 1))]:.1f} ms, "
              f"max {1000 * times[-1]:.1f} ms")


FAST = settings(max_examples=EXAMPLES, deadline=None, derandomize=False,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@FAST
@given(argvs("generate", skip=("--print-config", "--lint"), always=("--print-config",)))
def test_generate_any_options(case):
    check(*case)


@FAST
@given(st.sampled_from(["icebreaker", "ulx3s-85f", "tangnano9k"]),
       argvs("flow", skip=("--run", "--sweep", "--simulate", "--collect", "--print-config",
                           "--list-boards"), always=("--print-config",)))
def test_flow_any_options(board, case):
    argv, files = case
    check([*argv[:2], "--board", board, *argv[2:]], files)  # a later --board wins


@FAST
@given(st.sampled_from(["--collect", "--list-boards"]), argvs("flow", skip=(
    "--run", "--sweep", "--simulate", "--collect", "--print-config", "--list-boards")))
def test_flow_collect_and_list_any_options(mode, case):
    argv, files = case
    check([*argv, mode], files)


@FAST
@given(argvs("estimate"))
def test_estimate_any_options(case):
    check(*case)


@FAST
@given(st.sampled_from(["icebreaker", "ulx3s-85f"]),
       st.one_of(st.integers(1, 4096), st.sampled_from([0, -1, 2 ** 24 + 1, 10 ** 30])),
       argvs("explore", skip=("--model", "--board", "--seq-len", "--max-cores", "--plot"),
             always=("--model", "longformer-base")))
def test_explore_any_options(board, seq_len, case):
    """explore on a small model and length (a run takes well under a second), with random
    --flows folders and --tech tables."""
    argv, files = case
    check([*argv, "--board", board, "--seq-len", str(seq_len)], files)


@FAST
@given(st.sampled_from(["icebreaker", "ulx3s-85f"]),
       st.one_of(st.integers(1, 4096).map(str), st.sampled_from(["64,128", "64:1024:x4", "0",
                                                                 "1:99999999:x2"])),
       argvs("explore", skip=("--model", "--board", "--seq-len", "--max-cores", "--plot")))
def test_explore_own_head_any_options(board, lengths, case):
    """explore on the head the workload options and --config describe (no --model), at a
    few small lengths."""
    argv, files = case
    check([*argv, "--board", board, "--seq-len", lengths], files)


@FAST
@given(argvs("regress"))
def test_regress_any_options(case):
    """regress up to finding Verilator, which comes after every check of its options: a bad
    input is refused before any build or simulation starts."""
    check(*case, stop_at="swatkit.support.toolchain.find_verilator")


@FAST
@given(argvs("prove"))
def test_prove_parses_or_fails_in_one_line(case):
    """prove runs for minutes once parsed: its parser only."""
    argv, _ = case
    try:
        build_parser().parse_args(argv)
    except UsageError as e:
        assert "\n" not in str(e)
