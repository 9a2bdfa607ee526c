"""Every command, any input: a result (exit 0) or exit 2 with a one-line message; never a
traceback, never a file outside ``-o``.

Hypothesis drives each subcommand's argument parser and configuration loaders (``--config``,
``estimate --tech`` and ``--from-flow``) with random option values and random files. The
commands run in-process (an uncaught exception fails the test with its traceback), in a fresh
working folder whose only change may be under ``out/``. Only paths that finish in milliseconds
are taken: ``generate`` and ``flow`` with ``--print-config`` (which resolves and checks
everything a build would, then stops), ``flow --collect`` and ``--list-boards``, ``estimate`` with
sequence lengths either small or refused; ``regress``, ``prove`` and ``explore`` are parsed
only (they run for minutes).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from swatkit.cli import build_parser, main
from swatkit.options import TABLES, UsageError
from swatkit.toml_text import dumps

# examples per test (~15 s for all five at 200 on one core); more: SWATKIT_ANY_INPUT_EXAMPLES
EXAMPLES = int(os.environ.get("SWATKIT_ANY_INPUT_EXAMPLES", "200"))

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
                          st.booleans(), WORDS, LENGTHS, st.lists(INTS, max_size=3))


@st.composite
def config_files(draw):
    """(suffix, bytes) of a --config file: tables of swatkit keys (and unknown ones) with
    random values as TOML or as a swatkit.json "config" record, or arbitrary bytes."""
    tables = {}
    for table in draw(st.lists(st.sampled_from([*TABLES, "extra"]), max_size=4, unique=True)):
        keys = [*TABLES.get(table, {}), "junk"]
        chosen = draw(st.lists(st.sampled_from(keys), max_size=5, unique=True))
        tables[table] = {k: draw(CONFIG_VALUES) for k in chosen}
    kind = draw(st.sampled_from(["toml", "json", "bytes"]))
    if kind == "toml":
        return ".toml", dumps(tables).encode()
    if kind == "json":
        return ".json", json.dumps({"config": tables} if draw(st.booleans()) else tables).encode()
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
            suffix, data = draw(config_files())
            files[f"in/c{len(files)}{suffix}"] = data
            argv.append(f"in/c{len(files) - 1}{suffix}")
        elif name == "--tech" and draw(st.booleans()):
            files[f"in/t{len(files)}.toml"] = draw(energy_tables()).encode()
            argv.append(f"in/t{len(files) - 1}.toml")
        elif name == "--from-flow":
            files[f"in/f{len(files)}.json"] = json.dumps(draw(st.one_of(
                st.dictionaries(st.just("fmax_mhz"), st.one_of(FLOATS, WORDS, st.dictionaries(
                    WORDS, st.one_of(FLOATS, st.dictionaries(st.just("achieved"), FLOATS))))),
                st.lists(INTS)))).encode()
            argv.append(f"in/f{len(files) - 1}.json")
        elif name in ("-o", "--output"):
            argv.append(draw(st.sampled_from(["out/a", "out", "out/", "out/.", "out/b.png"])))
        elif name == "--plot":  # the file estimate writes: inside out/ too
            argv.append(draw(st.sampled_from(["out/p", "out/b.png", "out/c.svg", "out/..png",
                                              "out/x.jpgx", "out/no/such/x.png"])))
        else:  # mostly a value of the option's type, so that many runs get past the parser
            typed = (st.sampled_from(action.choices) if action.choices else
                     INTS.map(str) if action.type is int else
                     FLOATS.map(str) if action.type is float else TEXT_VALUES)
            argv.append(draw(st.one_of(typed, typed, typed, TEXT_VALUES)))
    return argv, files


def check(argv, files):
    """Run ``swatkit argv`` in a fresh folder holding ``files``: exit 0 or 2, a one-line error
    (at most three lines on stderr), no file changed outside ``out/``."""
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for name, data in files.items():
            (work / name).parent.mkdir(exist_ok=True)
            (work / name).write_bytes(data)
        before = {p: p.stat().st_mtime_ns for p in work.rglob("*")}
        out, err = io.StringIO(), io.StringIO()
        cwd = os.getcwd()
        os.chdir(work)
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                code = main(argv)
        finally:
            os.chdir(cwd)
        lines = err.getvalue().splitlines()
        event(f"exit {code}")  # the share of results and refusals: --hypothesis-show-statistics
        assert code in (0, 2), (argv, code, lines)
        assert "Traceback" not in err.getvalue(), (argv, lines)
        assert len(lines) <= 3, (argv, lines)
        if code == 2:
            assert lines[-1].startswith("swatkit: error: "), (argv, lines)
        changed = {p for p in work.rglob("*") if before.get(p) != p.stat().st_mtime_ns}
        outside = {p for p in changed if p.relative_to(work).parts[0] != "out"}
        assert not outside, (argv, outside)


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
@given(st.sampled_from(["regress", "prove", "explore"]).flatmap(argvs))
def test_long_running_commands_parse_or_fail_in_one_line(case):
    """regress, prove and explore run for minutes once parsed: their parsers only."""
    argv, _ = case
    try:
        build_parser().parse_args(argv)
    except UsageError as e:
        assert "\n" not in str(e)
