"""The reproducer a failing case prints (sim/regress.py reproduce_command, and the CLI).

A failure must be reproducible from the one line ``swatkit regress`` prints for it, for a case of
the matrix and for a case of the user's own configuration (``--config`` and options). The failure
is made deterministic through the documented test hook ``SWATKIT_CORRUPT_EXPECTED`` (one bit of
one expected element of one named case flipped, so that the real scoreboard rejects the real
RTL's row); the hint carries the hook, so the test runs the printed line as a user would paste
it, from another folder, with the hook absent from its own environment.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from swatkit.cmd_regress import add_arguments, config_options, matrix, select
from swatkit.options import UsageError
from swatkit.sim.regress import CORRUPT_ENV, FAST, parse_corrupt, reproduce_command, run_case

# the tiny configuration of tests/sim/test_regress.py (TINY with [spec] seq_len = 16, lengths up
# to 32): the same build, so that this test compiles nothing the suite does not
TINY = ("--attention-window", "4", "--head-dim", "4", "--key-lanes", "2", "--dim-lanes", "2")
HINT = re.compile(r"seed (\d+) — reproduce with: (.+)")
SUMMARY = re.compile(r"(\d+) tests, (\d+) failed; (\d+) output rows checked bit-exact")


def _env(**extra) -> dict:
    """This environment without the hook, with the venv's ``swatkit`` first on PATH."""
    env = {k: v for k, v in os.environ.items() if k != CORRUPT_ENV}
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    return {**env, **extra}


def _failures(out: str) -> list[str]:
    """The first line of each failure's message (the first mismatch)."""
    return re.findall(r"^(run \d+ \(N=\d+\): mismatch at .+)$", out, re.M)


def test_hint_reproduces_an_own_configuration_failure(request, regress_seed, tmp_path):
    """Two cases of a configuration of the user's (--config and options); one fails through the
    hook. Its hint, run from another folder, runs that case alone (its id is a prefix of the
    other's) and fails with the same mismatch; the waves it suggests land in the named folder."""
    build_dir = request.config.getoption("build_dir")
    (tmp_path / "mine.toml").write_text("[spec]\nseq_len = 16\n")
    hook = "yours/random-n2:0,1,2,3"     # run 0, row 1, column 2, bit 3 of yours/random-n2
    argv = ["swatkit", "regress", "--config", "mine.toml", *TINY, "--seq-len", "2,20",
            "--seed", str(regress_seed), "-n", "0",
            *(["--build-dir", build_dir] if build_dir else [])]
    first = subprocess.run(argv, capture_output=True, text=True, cwd=tmp_path,
                           env=_env(**{CORRUPT_ENV: hook}))
    assert first.returncode == 1, first.stdout + first.stderr
    assert SUMMARY.search(first.stdout).groups() == ("2", "1", "20")
    assert f"{CORRUPT_ENV} is set: case yours/random-n2 will fail on purpose" in first.stdout
    (mismatch,) = _failures(first.stdout)
    assert mismatch.startswith("run 0 (N=2): mismatch at row 1, column 2: ")
    (hint,) = HINT.findall(first.stdout)
    seed, command = hint
    assert seed == str(regress_seed)
    assert command.startswith(f"{CORRUPT_ENV}={hook} swatkit regress --config "
                              f"{tmp_path / 'mine.toml'} ")
    assert command.endswith(f" -k yours/random-n2 --seed {regress_seed}")
    window = re.search(r"--waves-window (rows:\d+:\d+) for the rows around the first "
                       r"mismatch", first.stdout)
    assert window and window[1] == "rows:0:2"

    assert shutil.which("swatkit", path=_env()["PATH"]), "the venv's swatkit entry point"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    again = subprocess.run(f"{command} -n 0 --waves w --waves-window {window[1]}", shell=True,
                           capture_output=True, text=True, cwd=elsewhere, env=_env())
    assert again.returncode == 1, again.stdout + again.stderr
    assert SUMMARY.search(again.stdout).groups() == ("1", "1", "0")   # that case alone
    assert _failures(again.stdout) == [mismatch]
    assert HINT.findall(again.stdout) == [hint]
    trace = elsewhere / "w" / f"yours_random-n2.seed{regress_seed}.fst"
    assert trace.is_file() and trace.stat().st_size > 0
    # the hint without the hook: the same case passes (what failed was the flipped bit)
    clean = subprocess.run(command.split(" ", 1)[1] + " -n 0", shell=True, capture_output=True,
                           text=True, cwd=elsewhere, env=_env())
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert SUMMARY.search(clean.stdout).groups() == ("1", "0", "2")


def test_hint_reproduces_a_full_matrix_failure(request, regress_seed, tmp_path):
    """A case of the full matrix only (on a build of the fast one): its hint adds --full and
    selects it by its whole id; run, it fails with the same mismatch."""
    build_dir = request.config.getoption("build_dir")
    case = "glob1_bi5_d6_k2d2/random-n250-heavy-full"
    hook = f"{case}:0,100,5,0"
    first = subprocess.run(
        ["swatkit", "regress", "--full", "-k", "glob1_bi5_d6_k2d2/random-n250", "-n", "0",
         "--seed", str(regress_seed), *(["--build-dir", build_dir] if build_dir else [])],
        capture_output=True, text=True, cwd=tmp_path, env=_env(**{CORRUPT_ENV: hook}))
    assert first.returncode == 1, first.stdout + first.stderr
    (mismatch,) = _failures(first.stdout)
    assert mismatch.startswith("run 0 (N=250): mismatch at row 100, column 5: ")
    (hint,) = HINT.findall(first.stdout)
    build = ["--build-dir", str(Path(build_dir).resolve())] if build_dir else []
    assert hint[1] == shlex.join([f"{CORRUPT_ENV}={hook}", "swatkit", "regress", "--full",
                                  *build, "-k", case, "--seed", str(regress_seed)])
    # row 100 is the 100th row on the output stream (output row 99): row 0 is the global token
    assert re.search(r"--waves-window rows:97:100 for the rows around", first.stdout)
    again = subprocess.run(hint[1] + " -n 0", shell=True, capture_output=True, text=True,
                           cwd=tmp_path, env=_env())
    assert again.returncode == 1, again.stdout + again.stderr
    assert SUMMARY.search(again.stdout).groups() == ("1", "1", "0")
    assert _failures(again.stdout) == [mismatch]


def test_hint_carries_the_output_folder(request, regress_seed, tmp_path):
    """With ``-o DIR`` the reports go into DIR (results.xml and results.json, nothing else in
    the working folder), and a failure's hint carries ``-o`` as an absolute path: run from
    another folder with ``--waves`` and no folder, its reports and its trace land in DIR again.
    (The case is TINY's, traced as VCD: the builds of tests/sim/test_waves.py.)"""
    build_dir = request.config.getoption("build_dir")
    build = ["--build-dir", str(Path(build_dir).resolve())] if build_dir else []
    (tmp_path / "mine.toml").write_text("[spec]\nseq_len = 16\n")
    case = "yours/random-n20"
    hook = f"{case}:0,3,1,0"
    first = subprocess.run(["swatkit", "regress", "--config", "mine.toml", *TINY, "--seq-len",
                            "20", "-n", "0", "--seed", str(regress_seed), "-o", "reports",
                            *build],
                           capture_output=True, text=True, cwd=tmp_path,
                           env=_env(**{CORRUPT_ENV: hook}))
    assert first.returncode == 1, first.stdout + first.stderr
    out = tmp_path / "reports"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine.toml", "reports"]
    assert sorted(p.name for p in out.iterdir()) == ["results.json", "results.xml"]
    record = json.loads((out / "results.json").read_text())
    assert (record["totals"]["tests"], record["totals"]["failed"]) == (1, 1)
    assert f'name="{case}"' in (out / "results.xml").read_text()
    (mismatch,) = _failures(first.stdout)
    (hint,) = HINT.findall(first.stdout)
    assert hint[1].startswith(f"{CORRUPT_ENV}={hook} swatkit regress --config "
                              f"{tmp_path / 'mine.toml'} ")
    assert f" -o {out} " in hint[1], hint[1]
    assert hint[1].endswith(f" -k {case} --seed {regress_seed}"), hint[1]
    for p in out.iterdir():
        p.unlink()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    again = subprocess.run(hint[1] + " -n 0 --waves --waves-format vcd", shell=True,
                           capture_output=True, text=True, cwd=elsewhere, env=_env())
    assert again.returncode == 1, again.stdout + again.stderr
    assert _failures(again.stdout) == [mismatch]
    assert list(elsewhere.iterdir()) == []
    trace = out / f"yours_random-n20.seed{regress_seed}.vcd"
    assert trace.is_file() and trace.stat().st_size > 0
    assert (out / "results.xml").is_file() and (out / "results.json").is_file()


def test_the_hint_names_the_output_folder_as_an_absolute_path(tmp_path, monkeypatch):
    monkeypatch.delenv(CORRUPT_ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    assert reproduce_command("a/b", 3, output=Path("out")) == (
        f"swatkit regress -o {tmp_path / 'out'} -k a/b --seed 3")
    assert reproduce_command("a/b-full", 3, output="o", build_dir="c") == (
        f"swatkit regress --full -o {tmp_path / 'o'} --build-dir {tmp_path / 'c'} "
        f"-k a/b-full --seed 3")


def test_a_case_that_cannot_run_names_its_reproducer(monkeypatch):
    """A case whose build fails (the worker catches it) still ends with its reproducer."""
    from swatkit import cmd_regress
    from swatkit.sim import regress

    def broken(*args, **kwargs):
        raise RuntimeError("Verilator build failed")

    monkeypatch.setattr(regress, "run_case", broken)
    result = cmd_regress._run_one(FAST[0], 4, None, None, "swatkit regress -k x --seed 4")
    assert not result.passed
    assert result.message.splitlines()[:2] == [
        "RuntimeError: Verilator build failed",
        "seed 4 — reproduce with: swatkit regress -k x --seed 4"]
    assert result.message.splitlines()[2].startswith("waves: add --waves [DIR]")


def test_the_hint_carries_the_hook_for_its_case_only(monkeypatch):
    case = next(c for c in FAST if c.id == "bi3_k3d4/edges-heavy")
    monkeypatch.delenv(CORRUPT_ENV, raising=False)
    assert reproduce_command(case.id, 3) == "swatkit regress -k bi3_k3d4/edges-heavy --seed 3"
    monkeypatch.setenv(CORRUPT_ENV, "other/case:0,0,0,0")
    assert reproduce_command(case.id, 3) == "swatkit regress -k bi3_k3d4/edges-heavy --seed 3"
    monkeypatch.setenv(CORRUPT_ENV, f"{case.id}:0,0,0,0")
    assert reproduce_command(case.id, 3) == (f"{CORRUPT_ENV}={case.id}:0,0,0,0 swatkit regress "
                                             f"-k bi3_k3d4/edges-heavy --seed 3")


@pytest.mark.parametrize(("text", "expected"), [
    ("yours/random-n20:0,7,1,3", ("yours/random-n20", (0, 7, 1, 3))),
    ("a:b/c:1,2,3,4", ("a:b/c", (1, 2, 3, 4))),
])
def test_parse_corrupt(text, expected):
    assert parse_corrupt(text) == expected


@pytest.mark.parametrize("text", ["", "x", "case:1,2,3", "case:1,2,3,-4", ":1,2,3,4",
                                  "case:a,b,c,d"])
def test_parse_corrupt_refuses(text):
    with pytest.raises(ValueError, match=rf"^{CORRUPT_ENV} must be CASE_ID:RUN,ROW,COLUMN,BIT "
                                         rf"with integers >= 0, not {re.escape(repr(text))}$"):
        parse_corrupt(text)


@pytest.mark.parametrize(("corrupt", "message"), [
    ((1, 0, 0, 0), r"bi3_k3d4/random-n300-gap80: corrupt \(1, 0, 0, 0\) names run 1; the case "
                   r"has runs 0\.\.0"),
    ((0, 300, 0, 0), r"bi3_k3d4/random-n300-gap80: corrupt \(0, 300, 0, 0\) is outside run 0: "
                     r"300 rows of 4 elements of 8 bits"),
    ((0, 0, 0, 8), r"bi3_k3d4/random-n300-gap80: corrupt \(0, 0, 0, 8\) is outside run 0: "
                   r"300 rows of 4 elements of 8 bits"),
])
def test_corrupt_outside_the_case(corrupt, message, tmp_path, monkeypatch):
    """Refused before the simulator runs (the build is looked up first: a fake Verilator build
    stands in, so that nothing is compiled)."""
    from swatkit.sim import regress

    case = next(c for c in FAST if c.id == "bi3_k3d4/random-n300-gap80")
    monkeypatch.setattr(regress, "ensure_build", lambda *a, **k: regress.BuildInfo(
        tmp_path, "fake", False, 0.0))
    monkeypatch.setattr(regress, "run_bench", lambda *a, **k: pytest.fail("simulated"))
    with pytest.raises(ValueError, match=f"^{message}$"):
        run_case(case, 1, build_dir=tmp_path, corrupt=corrupt)


def test_cli_refuses_a_bad_hook(tmp_path):
    done = subprocess.run([sys.executable, "-m", "swatkit.cli", "regress", "-k", "w1_k1d2/edges"],
                          capture_output=True, text=True, cwd=tmp_path,
                          env=_env(**{CORRUPT_ENV: "w1_k1d2/edges:0,1"}))
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.strip() == (f"swatkit: error: {CORRUPT_ENV} must be CASE_ID:RUN,ROW,"
                                   f"COLUMN,BIT with integers >= 0, not 'w1_k1d2/edges:0,1'")


def test_full_only_cases_end_in_full():
    """The matrix's naming rule that the reproducer relies on: a case of --full only has an id
    ending in -full, a case of the fast matrix does not; its hint adds --full."""
    fast, full = matrix(False), matrix(True)
    assert {c.id for c in fast} <= {c.id for c in full}
    for case in full:
        assert case.id.endswith("-full") == (case not in fast), case.id
    only = next(c for c in full if c not in fast)
    assert reproduce_command(only.id, 9) == f"swatkit regress --full -k {only.id} --seed 9"


def test_a_whole_id_selects_that_case_alone():
    cases = matrix(True)
    short = "bi9_k2d4/random-n1000"
    assert any(c.id != short and short in c.id for c in cases)   # (a prefix of another id)
    assert [c.id for c in select(cases, short)] == [short]
    assert len(select(cases, "bi9_k2d4/random-n10")) >= 2        # a substring: every case
    assert [c.id for c in select(cases, f"{short}, bi3_k3d4/edges-heavy")] == [
        short, "bi3_k3d4/edges-heavy"]
    with pytest.raises(UsageError, match=r"^-k 'nothing' matches no case$"):
        select(cases, "nothing")


@pytest.mark.parametrize("argv", [
    ["--config", "mine.toml", "--seq-len", "2,20", "--no-causal", "--gap", "0.35",
     "--inputs", "random,max", "--global-tokens", "0,3", "--data-bits", "6", "--runs", "2"],
    ["--causal", "--sliding-window", "8", "--key-lanes", "3", "--dsp", "ecp5",
     "--scale-q", "0.0078125", "--stall", "1e-05"],
    ["--bigbird", "4", "--random-blocks", "1", "--pattern-seed", "7", "--global-engines", "2",
     "--max-dilation", "1", "--max-global-tokens", "0"],
])
def test_config_options_give_the_same_configuration(argv, tmp_path, monkeypatch):
    """The options a reproducer carries parse to the same values (from any folder: files
    become absolute paths); the run options (-k, --seed, -n, --waves, reports) are left out."""
    monkeypatch.chdir(tmp_path)
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    run = ["-k", "x", "--seed", "4", "-n", "0", "--waves", "w", "--json", "r.json", "-o", "o"]
    given = parser.parse_args([*argv, *run])
    words = config_options(given)
    assert not set(words) & {"-k", "--seed", "-n", "--waves", "--json", "-o", "--output"}
    monkeypatch.chdir(tmp_path.parent)
    again = parser.parse_args(words)
    for name, value in vars(given).items():
        if name == "config" and value is not None:
            assert again.config == tmp_path / "mine.toml"
        elif "--" + name.replace("_", "-") not in run and name not in (
                "keyword", "workers", "output") and not name.endswith("_option"):
            assert getattr(again, name) == value, name


def test_every_configuration_option_selects_the_configuration(tmp_path):
    """Any configuration option (--bigbird, a format option: once ignored) runs the user's
    configuration, not the matrix, so that its hint reproduces it."""
    for option in (["--bigbird", "4"], ["--data-bits", "6"], ["--max-global-tokens", "2"]):
        done = subprocess.run([sys.executable, "-m", "swatkit.cli", "regress", *option,
                               "--fast"], capture_output=True, text=True, cwd=tmp_path)
        assert done.returncode == 2
        assert done.stderr.strip() == ("swatkit: error: --fast/--full run the matrix; they "
                                       "cannot be combined with a configuration"), option
