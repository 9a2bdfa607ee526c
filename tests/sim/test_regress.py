"""The cocotb + Verilator regression of the generated Verilog (sim/regress.py, sim/cocotb_swat.py).

Each matrix case is one parametrised test (its id is the case id): Verilator runs the generated
core under cocotb and every output row is compared with the bit-exact golden model. The fast
matrix runs by default (CI); the rest of the full matrix is marked slow (``--runslow``, or
``swatkit regress --full``). Every test prints its seed; ``--seed S`` reproduces it.
"""

from __future__ import annotations

import argparse
import io
import json
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from swatkit.cmd_regress import matrix, shipped_builds
from swatkit.rtl import CoreParams
from swatkit.sim.regress import (
    DEFAULT_CORE,
    FAST,
    FULL,
    HEAVY,
    INPUT_KINDS,
    Build,
    Case,
    CaseResult,
    make_inputs,
    run_case,
    run_cases,
)

MATRIX_FAST = matrix(False)
MATRIX_FULL = matrix(True)
FULL_ONLY = [c for c in MATRIX_FULL if c not in MATRIX_FAST]


# the results of cases run in a batch with an earlier case of their build (run_cases), by id
_BATCHED: dict[str, CaseResult] = {}
_RUN: set[str] = set()   # ids of the cases this process has run (alone or in a batch)


def _matrix_result(case: Case, request, seed: int) -> CaseResult:
    """``case``'s result. The first short matrix case (``Case.short``) of a build that this
    process runs runs with every other selected short case of that build not run yet, in one
    simulator process (:func:`run_cases`: each still passes or fails on its own rows); the
    others take their result from that run. (``--dist loadgroup`` with the ``xdist_group``
    mark of the build keeps them on one worker.) A long case, and every case with
    ``--waves``, runs alone."""
    opts = request.config
    waves = opts.getoption("waves_format") if opts.getoption("waves") else None
    if case.id in _BATCHED:
        return _BATCHED.pop(case.id)
    if waves or not case.short or case.id in _RUN:   # (_RUN: a case run twice: again, alone)
        return run_case(case, seed, waves=waves, build_dir=opts.getoption("build_dir"))
    batch = [case] + [c for c in _selected_matrix_cases(request.session)
                      if c.build == case.build and c.short and c.id not in _RUN
                      and c.id != case.id]
    _RUN.update(c.id for c in batch)
    results = run_cases(batch, seed, build_dir=opts.getoption("build_dir"))
    _BATCHED.update((r.case.id, r) for r in results)
    print(f"(run with {len(batch) - 1} other cases of build {case.build.id} in one "
          "simulator process)")
    return _BATCHED.pop(case.id)


def test_loadgroup_keeps_the_cases_of_a_build_on_one_worker(request):
    """Under ``-n`` (``--dist loadgroup``, pyproject's addopts) every short fast matrix case
    (the ones with an ``xdist_group`` mark) carries its build's group in its node id
    (``...@<build>``), which is what keeps a build's cases on the worker that ran them in one
    simulator process; pytest-xdist 3.8 on pytest 9.2 drops it silently
    (pytest-dev/pytest-xdist#1386: pyproject pins pytest below 9.2)."""
    if not getattr(request.config.option, "loadgroup", False):
        pytest.skip("not under pytest-xdist's --dist loadgroup (-n)")
    ids = [item.nodeid for item in request.session.items if item.originalname == "test_fast"
           and item.get_closest_marker("xdist_group")]
    if not ids:
        pytest.skip("no short fast matrix case selected")
    assert all("@" in i.rsplit("]", 1)[-1] for i in ids), ids[:3]


def _selected_matrix_cases(session) -> list[Case]:
    """The matrix cases among the session's selected tests (test_fast and test_full)."""
    return [item.callspec.params["case"] for item in session.items
            if getattr(item, "originalname", None) in ("test_fast", "test_full")
            and not item.get_closest_marker("skip")]


def check_case(case: Case, request, seed: int) -> None:
    """Run ``case`` and fail with its first mismatch; record its figures for the reports."""
    print(f"case {case.id}: seed {seed} (reproduce with --seed {seed})")
    result = _matrix_result(case, request, seed)
    props = {
        "seed": seed, "config": case.describe(), "rows": result.rows, "cycles": result.cycles,
        "monitor_cycles": result.monitor_cycles, "ideal": result.ideal,
        "cycles_per_ideal": round(result.cycles_per_ideal, 4),
        "sim_cycles": result.sim_cycles, "sim_seconds": round(result.sim_seconds, 3),
        "wall_seconds": round(result.wall_seconds, 3),
        "build_seconds": round(result.build_seconds, 3), "passed": result.passed,
        "work_dir": str(result.work_dir),
    }
    if result.waves:
        props["waves"] = str(result.waves)
    # straight into user_properties (what record_property does, without its xunit2 warning)
    request.node.user_properties.extend(props.items())
    print(result.summary())
    if not result.passed:
        pytest.fail(result.message, pytrace=False)
    # a run that checked nothing must not pass
    assert result.rows == case.rows
    assert result.cycles == result.monitor_cycles > 0


def _params(cases: list[Case]) -> list:
    """One parameter per case, its id the case's; the short cases (``Case.short``) grouped by
    build for ``--dist loadgroup``, the long ones free to run on any worker."""
    return [pytest.param(c, id=c.id, marks=pytest.mark.xdist_group(c.build.id) if c.short
                         else ()) for c in cases]


@pytest.mark.parametrize("case", _params(MATRIX_FAST))
def test_fast(case, request, regress_seed):
    check_case(case, request, regress_seed)


@pytest.mark.slow
@pytest.mark.parametrize("case", _params(FULL_ONLY))
def test_full(case, request, regress_seed):
    check_case(case, request, regress_seed)


def test_scoreboard_bites(request, regress_seed):
    """One flipped bit in one expected element makes the run fail, naming that element."""
    case = next(c for c in FAST if c.id == "bi9_k2d4/extremes-n300")
    rng = np.random.default_rng(regress_seed)
    row, col, bit = int(rng.integers(300)), int(rng.integers(8)), int(rng.integers(8))
    print(f"seed {regress_seed}: flipping bit {bit} of expected row {row}, column {col}")
    result = run_case(case, regress_seed, build_dir=request.config.getoption("build_dir"),
                      corrupt=(0, row, col, bit))
    assert not result.passed
    assert re.match(rf"run 0 \(N=300\): mismatch at row {row}, column {col}: expected -?\d+, "
                    rf"got -?\d+ ", result.message), result.message
    assert f"seed {regress_seed}" in result.message
    assert case.describe() in result.message
    # nothing else differs: every other row of the run matched
    assert result.runs[0]["bad_rows"] == 1


def test_cases_of_a_build_share_a_process_and_pass_or_fail_on_their_own(request, regress_seed,
                                                                       monkeypatch):
    """run_cases: the cases of one build in one simulator process, each with its own result
    file. One flipped expected bit in the second of three cases fails that case alone, naming
    its element; the batch ends there and the third case runs again in a process of its own
    (two simulator processes in all); the first case's figures equal a run of it alone."""
    from swatkit.sim import regress

    cases = [c for c in FAST if c.build.id == "bi5_k1d1"][:3]
    row = int(np.random.default_rng(regress_seed).integers(300))
    monkeypatch.setenv(regress.CORRUPT_ENV, f"{cases[1].id}:0,{row},2,1")
    processes = []
    real = regress.run_bench

    def counted(path, work, *args, **kw):
        processes.append(work.name)
        return real(path, work, *args, **kw)

    monkeypatch.setattr(regress, "run_bench", counted)
    build_dir = request.config.getoption("build_dir")
    first, second, third = run_cases(cases, regress_seed, build_dir=build_dir)
    assert [r.case for r in (first, second, third)] == cases
    assert first.passed and third.passed, (first.message, third.message)
    assert not second.passed
    assert re.match(rf"run 0 \(N=\d+\): mismatch at row {row}, column 2: ", second.message), \
        second.message
    assert f"case {cases[1].id}:" in second.message
    assert len(processes) == 2 and ".batch." in processes[0] and cases[2].id.split("/")[1] \
        in processes[1], processes
    assert len({first.nonce, second.nonce, third.nonce}) == 3
    monkeypatch.delenv(regress.CORRUPT_ENV)
    alone = run_case(cases[0], regress_seed, build_dir=build_dir)
    assert (alone.passed, alone.rows, alone.cycles, alone.sim_cycles, alone.runs) == \
        (True, first.rows, first.cycles, first.sim_cycles, first.runs)
    with pytest.raises(ValueError, match="run_cases needs cases of one build, not bi5_k1d1, "
                                         "bi9_k2d4"):
        run_cases([cases[0], FAST[0]], regress_seed, build_dir=build_dir)


def test_work_units_batch_the_short_cases_of_a_build():
    """swatkit regress's work units: the short cases of a build together (split across the
    workers only when builds are fewer than workers), each long case alone, and one unit of
    every build before a second unit of any (each configuration compiled once, the
    compilations in parallel)."""
    from swatkit.cmd_regress import _units

    cases = [c for c in MATRIX_FULL if c.build.id in ("bi9_k2d4", "longformer_default",
                                                       "causal8_k3d2")]
    long = [i for i, c in enumerate(cases) if not c.short]
    assert long and all(cases[i].build.id == "longformer_default" for i in long)
    units = _units(cases, 2)
    assert sorted(i for u in units for i in u) == list(range(len(cases)))
    for unit in units:
        assert len({cases[i].build for i in unit}) == 1
        assert len(unit) == 1 or all(cases[i].short for i in unit)
    assert [u for u in units if u[0] in long] == [[i] for i in long]
    short_b9 = [i for i, c in enumerate(cases) if c.build.id == "bi9_k2d4" and c.short]
    assert short_b9 in units   # (3 builds for 2 workers: one unit each)
    firsts = [cases[u[0]].build for u in units[:3]]
    assert len(set(firsts)) == 3
    # one build for 4 workers: its short cases in 4 units
    b9 = [c for c in cases if c.build.id == "bi9_k2d4"]
    assert sorted(len(u) for u in _units(b9, 4)) == sorted(
        len(range(j, len(b9), 4)) for j in range(4))


# -- the matrix itself (no simulator) ------------------------------------------------------------


def test_fast_matrix_covers_the_issue():
    builds = {c.build for c in FAST}
    assert sum(c.rows for c in FAST) >= 10_000
    assert {b.kind for b in builds} == {"causal", "bidirectional", "BigBird"}
    assert any(b.before != b.after and b.after for b in builds)  # asymmetric band
    assert len({(b.key_lanes, b.dim_lanes) for b in builds}) >= 5
    assert len({b.fmt for b in builds}) >= 3
    ns = [(n, c.build) for c in FAST for n in c.seq_lens]
    assert any(n == 1 for n, _ in ns)
    assert any(n < b.params.window for n, b in ns)
    assert any(n % b.key_lanes for n, b in ns)
    assert {c.inputs for c in FAST} >= {"random", "max", "min", "extremes", "equal_scores",
                                         "dominant"}
    assert any(c.gap == c.stall == 0 for c in FAST)
    assert any(c.gap >= 0.3 and c.stall >= 0.3 for c in FAST)
    assert HEAVY >= 0.3
    assert len({c.id for c in FULL}) == len(FULL) and set(FAST) <= set(FULL)
    # faults: a reset with rows in flight, long deterministic stalls, runs of different N
    assert any(c.reset_after for c in FAST)
    assert any(c.build.interface == "axis" and c.gap >= 0.3 for c in FAST)  # --interface axis
    assert any(s == "o_hold" and n >= 2000 for c in FAST for s, _, n in c.holds)
    assert {s for c in FAST for s, _, n in c.holds if n >= 1000} >= {"q_hold", "kv_hold"}
    assert any(len(set(c.seq_lens)) > 2 and c.idle == (0,) for c in FAST)
    # issue 29: a core with exactly one global token (the CLS-token head), and rows of a number
    # of words (head_dim / dim_lanes) that is not a power of two
    assert any(b.params.max_global_tokens == 1 for b in builds)
    assert any(b.params.groups & (b.params.groups - 1) for b in builds)


def test_fast_matrix_covers_bigbird():
    """Issue 14's BigBird cases: blocks of 2, 4 and 8; runs with r = 0, 1 and 3; N = 2b … 32b
    and the smallest N with random blocks ((r + 5)·b); tables drawn and given; every stream
    (the random one shares the K/V gaps) under heavy gaps and stalls; a reset mid-run."""
    cases = [c for c in FAST if c.build.block_size]
    runs = [(c, c.run_spec(i)) for c in cases for i in range(len(c.seq_lens))]
    assert {c.build.block_size for c in cases} == {2, 4, 8}
    assert {r.num_random_blocks for _, r in runs} >= {0, 1, 3}
    for b in (2, 4, 8):
        blocks = {r.num_blocks for c, r in runs if c.build.block_size == b}
        assert 2 in blocks and max(blocks) >= 16, b
    assert any(r.num_blocks == r.num_random_blocks + 5 and r.num_random_blocks for _, r in runs)
    assert any(r.num_blocks == 32 for _, r in runs)
    assert any(r.explicit_random_table is not None for _, r in runs)
    assert len({r.pattern_seed for _, r in runs if r.explicit_random_table is None}) >= 3
    assert any(c.gap >= 0.3 and c.stall >= 0.3 for c in cases)
    assert any(c.gaps[1] >= 0.8 for c in cases)   # K/V and random rows starved
    assert any(c.reset_after for c in cases)
    # Hugging Face's tables (issue 29 item 7): keys counted twice, and eval's all-zero table
    assert any((r.block_counts()[1:-1] > 1).any() for _, r in runs if r.num_blocks > 2)
    assert any(r.num_random_blocks and r.num_blocks > 2 and not r.random_table.any()
               for _, r in runs)


def test_fast_matrix_covers_grouped_heads():
    """Issue 25's grouped query heads: causal and bidirectional groups (g = 4 and 3, 6 query
    heads on 2 K/V), stall-free (the cycle model checked) and under heavy gaps and stalls, a
    reset mid-run, run patterns on one build; the GPT-OSS sliding group at N = 1024 in the full
    matrix."""
    cases = [c for c in MATRIX_FAST if c.build.params.group_heads > 1]
    assert {c.build.kind for c in cases} == {"causal", "bidirectional"}
    assert {c.build.params.group_heads for c in cases} >= {3, 4, 8}
    assert any(c.build.kv_heads > 1 for c in cases)
    assert any(c.stall_free for c in cases)
    assert any(c.gap >= 0.3 and c.stall >= 0.3 for c in cases)
    assert any(c.reset_after for c in cases)
    assert any(c.patterns for c in cases)
    assert not [c for c in cases if c.build.head_dim == 64]   # (real size: the full matrix)
    gpt = [c for c in FULL_ONLY if c.build.params.group_heads > 1 and c.build.head_dim == 64]
    assert gpt and gpt[0].build.before == 127 and gpt[0].build.after == 0
    assert gpt[0].build.params.group_heads == 8 and gpt[0].stall_free
    assert gpt[0].seq_lens == (1024,) and gpt[0].build.sink_logits


def test_fast_matrix_covers_sinks():
    """Issue 25's sink tokens (causal: rows below S see fewer; bidirectional on a grouped core;
    fewer sinks and none per run) and learned sink logits (runs with and without), stall-free
    and under heavy gaps and stalls."""
    sinks = [c for c in MATRIX_FAST if c.build.sink_tokens]
    assert {c.build.kind for c in sinks} == {"causal", "bidirectional"}
    runs = [c.run_spec(i) for c in sinks for i in range(len(c.seq_lens))]
    assert {r.sink_tokens for r in runs} >= {0, 1, 3, 4}
    assert any(r.seq_len < r.sink_tokens + 1 for r in runs)   # a run shorter than its sinks
    assert any(c.build.params.group_heads > 1 for c in sinks)
    assert any(c.stall_free for c in sinks) and any(c.gap >= 0.3 for c in sinks)
    logits = [c for c in MATRIX_FAST if c.build.sink_logits]
    assert any(len(c.seq_lens) >= 3 and c.stall_free for c in logits)   # every third: none
    assert any(c.gap >= 0.3 and c.stall >= 0.3 for c in logits)


def test_matrix_covers_what_we_ship():
    """The default core and every board's default core run at real size in the fast matrix
    (stall-free, so the cycle model is checked; the small boards' also under stalls); the
    larger builds and lengths in the full matrix only."""
    shipped = shipped_builds()
    assert shipped[0] == DEFAULT_CORE
    for build in shipped:
        sizes = [c for c in MATRIX_FAST if c.build == build]
        assert any(c.stall_free and max(c.seq_lens) >= min(1024, build.max_seq_len)
                   for c in sizes), build.id
        assert any(c.gap >= 0.3 and c.stall >= 0.3 for c in MATRIX_FULL if c.build == build)
    assert {c.build.id for c in MATRIX_FAST if c.gap >= 0.3 and c.build in shipped} == \
        {"icebreaker_default", "tangnano9k_default"}
    assert any(b.dsp == "ecp5" for b in shipped)
    assert any(c.build == DEFAULT_CORE and c.seq_lens == (4096,) for c in FULL_ONLY)
    mistral = [c for c in FULL_ONLY if c.build.after == 0 and c.build.head_dim == 128]
    assert mistral and mistral[0].build.before == 4095 and mistral[0].seq_lens[0] >= 4608
    # the Mistral-7B head group: 4 query heads per K/V head, N >= 4608, stall-free (cycles exact)
    group = [c for c in FULL_ONLY if c.build.params.group_heads == 4 and c.build.head_dim == 128]
    assert group and group[0].build.before == 4095 and group[0].seq_lens[0] >= 4608
    assert group[0].stall_free and group[0].build.params.heads == 32
    bigbird = [c for c in MATRIX_FULL if c.build.block_size == 64]
    assert any(c.stall_free and c.seq_lens == (1024,) and c in FULL_ONLY for c in bigbird)
    assert any(c.seq_lens == (4096,) for c in bigbird)
    assert len({c.id for c in MATRIX_FULL}) == len(MATRIX_FULL)


def test_default_core_is_what_generate_writes():
    """DEFAULT_CORE is the configuration `swatkit generate` resolves with no options."""
    from swatkit.cli import build_parser
    from swatkit.options import core_params, resolve

    args = build_parser().parse_args(["generate"])
    r = resolve(args)
    params = core_params(r, r.spec.seq_len)
    assert Build.from_params(DEFAULT_CORE.id, params) == DEFAULT_CORE


@pytest.mark.parametrize("kind", INPUT_KINDS)
def test_inputs_are_in_range(kind):
    build = next(c.build for c in FAST if c.build.fmt.data_bits == 4)
    q, k, v = make_inputs(kind, 50, build, np.random.default_rng(0))
    for x in (q, k, v):
        assert x.shape == (50, build.head_dim) and x.dtype == np.int64
        assert x.min() >= build.fmt.data_min and x.max() <= build.fmt.data_max


def test_cases_are_checked():
    b = FAST[0].build
    with pytest.raises(ValueError, match=r"^x: seq_lens must be in 1\.\.1000 each and at most "
                       r"1000 in all \(the harness's memories\), not \(0,\)$"):
        Case("x", b, (0,))
    with pytest.raises(ValueError, match=r"^x: seq_lens must be .*, not \(600, 600\)$"):
        Case("x", b, (600, 600))
    with pytest.raises(ValueError, match=r"^x: holds must be \(one of o_hold, q_hold, kv_hold, "
                       r"at >= 0, cycles >= 1\), not \('x_hold', 1, 5\)$"):
        Case("x", b, (5,), holds=(("x_hold", 1, 5),))
    with pytest.raises(ValueError, match=r"^x: stall must be in \[0, 1\), not 1\.0$"):
        Case("x", b, (5,), stall=1.0)
    with pytest.raises(ValueError, match=r"^x: inputs must be one of .*, not 'noise'$"):
        Case("x", b, (5,), inputs="noise")
    with pytest.raises(ValueError, match=r"^dim_lanes \(3\) must divide head_dim \(8\)$"):
        Build("x", head_dim=8, before=1, after=1, key_lanes=1, dim_lanes=3)
    assert isinstance(b.params, CoreParams)


def test_a_build_holds_its_core_params():
    """A build is its CoreParams, checked once: its fields are read from it, never rebuilt, and
    a build of the form it holds keeps the very object."""
    b = FAST[0].build
    assert b.params is b.params and b.fmt is b.params.fmt and b.hardware is b.params.hw
    assert (b.head_dim, b.before, b.after, b.key_lanes, b.max_seq_len) == (
        b.params.spec.head_dim, b.params.spec.before, b.params.spec.after,
        b.params.hw.key_lanes, b.params.hw.max_seq_len)
    same = Build.from_params("y", b.params)
    assert same.params is b.params
    with pytest.raises(TypeError, match=r"^x: give a Build its CoreParams or the keywords of "
                                        r"its shape, one of them$"):
        Build("x", b.params, head_dim=8)
    with pytest.raises(TypeError, match=r"^x: give a Build its CoreParams or the keywords of "
                                        r"its shape, one of them$"):
        Build("x")


# -- swatkit regress -----------------------------------------------------------------------------


def swatkit(*argv, cwd=None):
    return subprocess.run([sys.executable, "-m", "swatkit.cli", *argv], capture_output=True,
                          text=True, cwd=cwd)



LAST_LINE = (r"(\d+) tests, (\d+) failed; (\d+) output rows checked bit-exact; \d+ core cycles; "
             r"wall \d+m[\d.]+s; Verilator\+cocotb simulated \d+ cycles at [\d,]+ cycles/s")


def test_cli_runs_cases_and_reports(request, regress_seed, tmp_path):
    """A matrix case by -k, from a folder that is not the checkout: the reports go there."""
    case = "bi3_k3d4/edges-heavy"
    build_dir = request.config.getoption("build_dir")
    done = swatkit("regress", "-k", case, "-n", "0", "--seed", str(regress_seed),
                   "--json", "r.json", *(["--build-dir", build_dir] if build_dir else []),
                   cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"seed {regress_seed}" in done.stdout
    assert re.search(r"case\s.*rows\s.*cycles\s.*cycles/ideal\s.*result", done.stdout)
    last = re.fullmatch(LAST_LINE, done.stdout.strip().splitlines()[-1])
    assert last and last[1] == "1" and last[2] == "0"
    record = json.loads((tmp_path / "r.json").read_text())
    assert record["seed"] == regress_seed and record["totals"]["failed"] == 0
    assert [c["name"] for c in record["cases"]] == [case]
    assert record["totals"]["rows"] == next(c.rows for c in FAST if c.id == case)
    testcase = ET.parse(tmp_path / "results.xml").find(".//testcase")
    props = {p.get("name"): p.get("value") for p in testcase.iter("property")}
    assert props["seed"] == str(regress_seed) and props["passed"] == "True"


def test_cli_own_configuration(request, regress_seed, tmp_path):
    """The shared options select one configuration: one case per input kind and N, R runs
    each, under the given gaps and stalls; every row bit-exact. (The configuration is TINY's,
    given as a config file and an option: the build of the other own-configuration tests.)"""
    build_dir = request.config.getoption("build_dir")
    (tmp_path / "mine.toml").write_text("[spec]\nhead_dim = 4\nattention_window = 4\n"
                                        "seq_len = 32\n[hardware]\nkey_lanes = 2\n")
    done = swatkit("regress", "--config", "mine.toml", "--dim-lanes", "2",
                   "--seq-len", "12,3", "--runs", "2", "--inputs", "random,extremes",
                   "--gap", "0.3", "--stall", "0.3", "-n", "0", "--seed", str(regress_seed),
                   *(["--build-dir", build_dir] if build_dir else []), cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "attention_window 4 (5 keys), head_dim 4, up to 32 rows; 2 key lanes x 2 dim lanes" \
        in done.stdout   # ([spec] seq_len: the core the user generates, not the longest N)
    last = re.fullmatch(LAST_LINE, done.stdout.strip().splitlines()[-1])
    assert last and (last[1], last[2], last[3]) == ("4", "0", str(2 * (2 * 12 + 2 * 3)))
    # the same build as TINY's cases (one cache key: no build of its own)
    from swatkit.cmd_regress import add_arguments, own_cases
    from swatkit.sim.regress import build_key

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    mine = own_cases(parser.parse_args(["--config", str(tmp_path / "mine.toml"), "--dim-lanes",
                                        "2", "--seq-len", "12,3", "--runs", "2"]))
    (tmp_path / "tiny").mkdir()
    (tiny,) = _own(tmp_path / "tiny", *TINY, "--seq-len", "32")
    assert {build_key(c.build, None) for c in mine} == {build_key(tiny.build, None)}


def _own(tmp_path, *argv):
    from swatkit.cmd_regress import add_arguments, own_cases

    (tmp_path / "mine.toml").write_text("[spec]\nseq_len = 16\n")
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return own_cases(parser.parse_args(["--config", str(tmp_path / "mine.toml"), *argv]))


@pytest.mark.parametrize(("argv", "globals_per_run"), [
    (["--bigbird", "2", "--random-blocks", "1", "--runs", "3", "--seq-len", "12,16"], 4),
    (["--global-tokens", "0,3", "--runs", "3", "--seq-len", "8,16"], 2),
    (["--runs", "4"], 0),
])
def test_own_cases_size_the_harness_for_every_run(tmp_path, argv, globals_per_run):
    """R runs back to back need R times the K/V rows of the longest run, its global columns
    (global tokens; BigBird's first and last blocks, 2·b rows) included."""
    cases = _own(tmp_path, "--head-dim", "4", "--key-lanes", "2", "--dim-lanes", "2", *argv)
    runs = int(argv[argv.index("--runs") + 1])
    longest = max(c.seq_lens[0] for c in cases)
    for case in cases:
        assert len(case.seq_lens) == runs
        kv_rows = sum(n + len(case.run_spec(i).global_positions())
                      for i, n in enumerate(case.seq_lens))
        assert kv_rows == runs * (case.seq_lens[0] + globals_per_run)
        assert case.build.harness_depth >= runs * (longest + globals_per_run)


def test_own_build_is_the_core_the_options_describe(tmp_path):
    """The build holds the command's CoreParams whole: a field the matrix's shape does not
    name (``--global-engines``) is the user's, not dropped for the default."""
    (case, *_) = _own(tmp_path, "--bigbird", "8", "--random-blocks", "1", "--seq-len", "512",
                      "--head-dim", "8", "--key-lanes", "2", "--dim-lanes", "4",
                      "--global-engines", "1")
    assert case.build.params.hw.global_engines == 1 == case.build.params.global_engines


def test_own_lengths_share_a_build(tmp_path):
    """N and the number of runs are run-time: lengths and run counts within one power of two
    resolve to one build (one cache key: no rebuild), a larger one to the next; N above the
    configured seq_len builds the core for the next power of two."""
    from swatkit.sim.regress import build_key

    def key(*argv):
        (case, *_) = _own(tmp_path, *TINY, *argv)   # [spec] seq_len = 16
        return case.build, build_key(case.build, None)

    (b16, k16), (_, k9) = key(), key("--seq-len", "9,16")
    assert k16 == k9 and b16.max_seq_len == 16 and b16.harness_depth == 16
    (b17, k17), (_, k30), (_, k32) = (key("--seq-len", n) for n in ("17", "30", "20,32"))
    assert k17 == k30 == k32 != k16
    assert b17.max_seq_len == 32 and b17.harness_depth == 32
    (r3, k3), (_, k5), (r6, k6) = (key("--seq-len", "12", "--runs", r) for r in "356")
    assert k3 == k5 != k6 and r3.harness_depth == 64 and r6.harness_depth == 128 \
        and r3.max_seq_len == 16


def test_small_builds_compile_their_model_unoptimised(tmp_path):
    """A build whose harness holds at most QUICK_CYCLES ideal cycles of rows compiles its model
    at -O0 (its runs are short); the shipped real-size cores, and a small core whose harness
    holds many runs, at -O1. Verilator's runtime is -O1 in both (one shared runtime)."""
    from swatkit.sim.regress import MAKE_ARGS, QUICK_CYCLES, QUICK_MAKE_ARGS

    assert "OPT_FAST=-O0" in QUICK_MAKE_ARGS and "OPT_FAST=-O1" in MAKE_ARGS
    assert [a for a in QUICK_MAKE_ARGS if "GLOBAL" in a] == [a for a in MAKE_ARGS
                                                             if "GLOBAL" in a]
    for b in {c.build for c in FAST}:
        assert b.make_args == QUICK_MAKE_ARGS, b.id
        assert b.params.ideal_cycles(b.max_seq_len) <= QUICK_CYCLES
    assert DEFAULT_CORE.make_args == MAKE_ARGS
    (case,) = _own(tmp_path, "--head-dim", "8", "--attention-window", "8", "--key-lanes", "1",
                   "--dim-lanes", "1", "--seq-len", "1000")
    (many,) = _own(tmp_path, "--head-dim", "8", "--attention-window", "8", "--key-lanes", "1",
                   "--dim-lanes", "1", "--seq-len", "1000", "--runs", "16")
    assert case.build.make_args == QUICK_MAKE_ARGS and many.build.make_args == MAKE_ARGS


def test_cli_bigbird_runs_back_to_back(request, regress_seed, tmp_path):
    """A BigBird core with --runs 2: two runs of N rows, each with its 2·b global rows."""
    build_dir = request.config.getoption("build_dir")
    (tmp_path / "mine.toml").write_text("[spec]\nseq_len = 16\n")
    done = swatkit("regress", "--config", "mine.toml", "--bigbird", "2", "--random-blocks", "1",
                   "--head-dim", "4", "--key-lanes", "2", "--dim-lanes", "2", "--runs", "2",
                   "-n", "0", "--seed", str(regress_seed),
                   *(["--build-dir", build_dir] if build_dir else []), cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    last = re.fullmatch(LAST_LINE, done.stdout.strip().splitlines()[-1])
    assert last and (last[1], last[2], last[3]) == ("1", "0", "32")


@pytest.mark.parametrize(("argv", "message"), [
    (["-n", "-1"], r"-n must be an integer in 0\.\.256, not -1"),
    (["-n", "100000"], r"-n must be an integer in 0\.\.256, not 100000"),
    (["--seed", "-3"], r"--seed must be an integer in 0\.\.2147483647, not -3"),
    (["--fast", "--full"], r"argument --full: not allowed with argument --fast"),
    (["--waves", ".", "--waves-format", "lxt"],  # argparse quotes choices from Python 3.12 on
     r"argument --waves-format: invalid choice: 'lxt' \(choose from '?fst'?, '?vcd'?\)"),
    (["--json", "/no/such/folder/r.json"], r"--json: no such folder: /no/such/folder"),
    (["-n", "0", "-k", "no_such_case"], r"-k 'no_such_case' matches no case"),
    (["--fast", "--seq-len", "100"],
     r"--fast/--full run the matrix; they cannot be combined with a configuration"),
    (["--inputs", "noise"], r"--inputs: unknown kind 'noise' \(one of random, max, min, "
                            r"extremes, equal_scores, dominant, small\)"),
    (["--gap", "1.5"], r"--gap must be a probability in \[0, 1\), not 1\.5"),
    (["--runs", "0"], r"--runs must be an integer in 1\.\.1024, not 0"),
    (["--runs", "100000000"], r"--runs must be an integer in 1\.\.1024, not 100000000"),
    (["--seq-len", "0"], r"argument --seq-len: must be positive integers, not 0"),
    (["--seq-len", "16777216"], r"--seq-len must be an integer in 1\.\.16384, not 16777216"),
    (["--seq-len", "9000", "--runs", "2"], r"--seq-len 9000 x --runs 2 needs a harness of "
                                          r"18000 rows \(global rows included\); regress takes "
                                          r"at most 16384 per case"),
    (["--config", "c.toml", "--seq-len", "100"],
     r"\[spec\] seq_len in c\.toml 100000 needs a harness of 100000 rows \(global rows "
     r"included\); regress takes at most 16384 per case"),
    (["--junitxml", "."], r"--junitxml: \. is a folder, not a file"),
    (["--json", "."], r"--json: \. is a folder, not a file"),
    (["--seq-len", "x"], r"argument --seq-len: must be positive integers, a list A,B or a "
                         r"range START:STOP:xF, not 'x'"),
    (["--seq-len", "64:16:x2"], r"argument --seq-len: a range must not end before it starts: "
                                r"'64:16:x2'"),
    (["--attention-window", "7"], r"--attention-window must be a positive even integer, not 7"),
    (["--head-dim", "8", "--dim-lanes", "3"], r"--dim-lanes \(3\) must divide head_dim \(8\)"),
    (["--global-tokens", "0,50", "--seq-len", "40,60"],
     r"--global-tokens: global token 50 is outside 0\.\.39 for --seq-len 40"),
    (["--dilation", "2", "--max-dilation", "1"],
     r"--max-dilation 1 is below --dilation 2"),
])
def test_cli_bad_values(argv, message, request, tmp_path, refused):
    build_dir = request.config.getoption("build_dir")
    if "c.toml" in argv:
        (tmp_path / "c.toml").write_text("[spec]\nseq_len = 100000\n")
    before = set(tmp_path.iterdir())
    done = refused("regress", *argv, *(["--build-dir", build_dir] if build_dir else []),
                   cwd=tmp_path)
    assert done.returncode == 2
    assert re.fullmatch(f"swatkit: error: {message}", done.stderr.splitlines()[-1]), done.stderr
    assert set(tmp_path.iterdir()) == before  # refused before anything was built or written


def test_cli_exit_code_on_failure(tmp_path):
    """A failed case makes the command exit with 1, after the table and the case's message."""
    from rich.console import Console

    from swatkit.cmd_regress import _report

    out = io.StringIO()
    args = argparse.Namespace(keyword=None, waves=None, json=None, workers=2)
    ok, bad = FAST[0], FAST[1]
    results = [
        CaseResult(ok, 7, True, rows=10, cycles=100, ideal=80.0, sim_cycles=120,
                   sim_seconds=0.1),
        CaseResult(bad, 7, False, rows=10, cycles=100, ideal=80.0, sim_cycles=120,
                   sim_seconds=0.1, message="run 0 (N=10): mismatch at row 3"),
    ]
    code = _report(args, Console(file=out, width=120), results, tmp_path / "j.xml", 5.0, 7,
                   "--fast")
    assert code == 1
    text = out.getvalue()
    assert "2 tests, 1 failed; 10 output rows checked" in text
    assert "run 0 (N=10): mismatch at row 3" in text
    failure = ET.parse(tmp_path / "j.xml").find(".//failure")
    assert failure is not None and failure.get("message") == "run 0 (N=10): mismatch at row 3"


# (the default tier interrupts regress at five points, and during a build, in
# tests/cli/test_interrupts.py; a killed build's folder is cleared by the next build,
# tests/support/test_build_cache.py. This one's case builds at -O1 and runs 1.2 M cycles.)
@pytest.mark.slow
def test_cli_interrupted(request, regress_seed, tmp_path):
    """Ctrl-C (SIGINT to the command's process group, as a terminal sends it): one line,
    exit 130, no traceback; the build cache stays usable (the case then passes)."""
    import os
    import signal
    import time

    build_dir = request.config.getoption("build_dir")
    # long enough (1.2 million cycles after its build; 16,000 rows, within the 16,384 rows a
    # case may hold) that the interrupt lands inside it
    argv = [sys.executable, "-m", "swatkit.cli", "regress", "--head-dim", "8",
            "--attention-window", "8", "--key-lanes", "1", "--dim-lanes", "1", "--seq-len",
            "1000", "--runs", "16", "-n", "1", "--seed", str(regress_seed),
            *(["--build-dir", build_dir] if build_dir else [])]
    proc = subprocess.Popen(argv, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    first = proc.stdout.readline()
    assert first.startswith("swatkit regress your configuration: 1 cases"), first
    time.sleep(3)  # inside the build or the simulation
    os.killpg(proc.pid, signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, out + err
    assert err.strip().splitlines()[-1] == "swatkit: interrupted"
    assert "Traceback" not in err and "Traceback" not in out
    done = swatkit(*argv[3:], cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.slow   # (a tool's test: builds the raw C++ model besides the bench's)
def test_raw_benchmark_runs_the_same_model(request, regress_seed, tmp_path):
    """sim/speed.py's C++ loop drives the same harness and core as the bench: on a stall-free
    run the core counts the same cycles under both."""
    from swatkit.sim.speed import raw_build, raw_run

    case = next(c for c in FAST if c.id == "bi5_k1d1/random-n500")
    result = run_case(case, regress_seed, build_dir=request.config.getoption("build_dir"),
                      keep=True)
    assert result.passed, result.message
    raw_build(case.build, tmp_path / "raw")
    raw = raw_run(tmp_path / "raw", result.work_dir, case, regress_seed)
    assert raw["core_cycles"] == result.cycles > 0
    assert raw["rows_out"] == 500 and raw["seconds"] > 0


# -- isolation: runs of one configuration at the same time -----------------------------------------

# a tiny configuration (one build shared by the tests below)
TINY = ("--attention-window", "4", "--head-dim", "4", "--key-lanes", "2", "--dim-lanes", "2")


def _tiny_case(tmp_path, n=32):
    (case,) = _own(tmp_path, *TINY, "--seq-len", str(n))
    return case


def test_results_of_another_run_are_refused(tmp_path):
    """A results file is read only if it carries the run's case id, seed and nonce."""
    from swatkit.sim.regress import read_result

    path = tmp_path / "result.json"
    assert read_result(path, "c/x", 5, "ab") == (None, "")
    path.write_text(json.dumps({"case": "c/x", "seed": 5, "nonce": "ab", "rows": 3}))
    assert read_result(path, "c/x", 5, "ab") == ({"case": "c/x", "seed": 5, "nonce": "ab",
                                                  "rows": 3}, "")
    data, why = read_result(path, "c/x", 5, "cd")
    assert data is None
    assert why == (f"the results file {path} is another run's (case 'c/x', seed 5, nonce 'ab'; "
                   "this run is case 'c/x', seed 5, nonce 'cd')")
    path.write_text("[1, 2]")
    assert read_result(path, "c/x", 5, "ab") == (
        None, f"the results file {path} is not a JSON object")


def test_concurrent_runs_pass_or_fail_on_their_own_rows(request, regress_seed, tmp_path):
    """Two runs of one case at once, in two processes, with different seeds: the one whose
    expectation has a flipped bit fails on exactly that element, the other passes; each had
    its own work folder and nonce."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    case = _tiny_case(tmp_path)
    build_dir = request.config.getoption("build_dir")
    run_case(case, regress_seed, build_dir=build_dir)   # the build, before the race
    row, col, bit = 17, 2, 3
    with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as pool:
        bad = pool.submit(run_case, case, regress_seed, build_dir=build_dir,
                          corrupt=(0, row, col, bit))
        good = pool.submit(run_case, case, regress_seed + 1, build_dir=build_dir)
        bad, good = bad.result(timeout=600), good.result(timeout=600)
    assert good.passed, good.message
    assert good.rows == 32 and good.seed == regress_seed + 1 and good.work_dir is None
    assert not bad.passed
    assert re.match(rf"run 0 \(N=32\): mismatch at row {row}, column {col}: ", bad.message), \
        bad.message
    assert bad.runs[0]["bad_rows"] == 1 and bad.rows == 32
    assert f"seed {regress_seed} " in bad.message
    assert bad.nonce != good.nonce and bad.work_dir.name == f"{case.id.replace('/', '_')}." \
                                                             f"{bad.nonce}"
    assert json.loads((bad.work_dir / "result.json").read_text())["nonce"] == bad.nonce
    shutil.rmtree(bad.work_dir)   # (a failed run's folder is kept: not this one's)


def test_concurrent_commands_each_check_their_own_rows(request, regress_seed, tmp_path):
    """Two `swatkit regress` of one configuration started together (different seeds), one of
    them with the same case twice in a worker pool (--seq-len 32,32 -n 2): every case passes
    on its own rows (own seed, own nonce)."""
    build_dir = request.config.getoption("build_dir")
    cache = ["--build-dir", build_dir] if build_dir else []
    _tiny_case(tmp_path)   # (writes mine.toml: the same build as the test above)
    procs = []
    for name, seed, lengths, workers in (("a", regress_seed, "32", "0"),
                                         ("b", regress_seed + 1, "32,32", "2")):
        (tmp_path / name).mkdir()
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "swatkit.cli", "regress", "--config", "../mine.toml", *TINY,
             "--seq-len", lengths,
             "-n", workers, "--seed", str(seed), "--json", "r.json", *cache],
            cwd=tmp_path / name, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    outs = [p.communicate(timeout=900)[0] for p in procs]
    for proc, out in zip(procs, outs, strict=True):
        assert proc.returncode == 0, out
    nonces = []
    for name, seed, count in (("a", regress_seed, 1), ("b", regress_seed + 1, 2)):
        record = json.loads((tmp_path / name / "r.json").read_text())
        assert record["seed"] == seed and record["totals"]["failed"] == 0
        assert [c["name"] for c in record["cases"]] == ["yours/random-n32"] * count
        assert record["totals"]["rows"] == 32 * count
        nonces += [c["props"]["nonce"] for c in record["cases"]]
    assert len(set(nonces)) == 3 and all(re.fullmatch(r"[0-9a-f]{16}", n) for n in nonces)


# -- on a Dask cluster ---------------------------------------------------------------------------


def test_cli_runs_cases_on_a_dask_cluster(request, regress_seed, tmp_path, capsys,
                                          monkeypatch):
    """--scheduler: the cases run as tasks of a Dask cluster (an in-process LocalCluster with
    two workers here); each case's rows are checked as in a local run and the report is the
    same."""
    distributed = pytest.importorskip("distributed")
    from swatkit.cli import main

    build_dir = request.config.getoption("build_dir")
    _tiny_case(tmp_path)   # (writes mine.toml: the tiny build of the isolation tests)
    monkeypatch.chdir(tmp_path)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster:
        code = main(["regress", "--config", "mine.toml", *TINY, "--seq-len", "32,20",
                     "--inputs", "random,extremes", "--seed", str(regress_seed),
                     "--scheduler", cluster.scheduler_address, "--json", "r.json",
                     *(["--build-dir", build_dir] if build_dir else [])])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "on the Dask cluster at inproc://" in out and "(2 workers)" in out
    record = json.loads((tmp_path / "r.json").read_text())
    assert sorted(c["name"] for c in record["cases"]) == sorted(
        f"yours/{k}-n{n}" for k in ("random", "extremes") for n in (32, 20))
    assert record["totals"] == {**record["totals"], "failed": 0, "rows": 2 * (32 + 20)}
    assert all(c["props"]["passed"] and c["props"]["nonce"] for c in record["cases"])
    last = re.fullmatch(LAST_LINE, out.strip().splitlines()[-1])
    assert last and (last[1], last[2]) == ("4", "0")


@pytest.mark.parametrize(("argv", "message"), [
    (["--scheduler", "tcp://127.0.0.1:9"],
     r"--scheduler: cannot reach the Dask scheduler at tcp://127\.0\.0\.1:9: .+"),
    (["-n", "2", "--scheduler", "tcp://127.0.0.1:9"],
     r"-n cannot be combined with --scheduler \(the cluster's workers set the parallelism\)"),
])
def test_cli_bad_scheduler(argv, message, tmp_path, monkeypatch, capsys):
    pytest.importorskip("distributed")
    from swatkit.cli import main
    from swatkit.fpga_flows import flow

    monkeypatch.setattr(flow, "CONNECT_TIMEOUT", 1)
    monkeypatch.chdir(tmp_path)
    code = main(["regress", "-k", "w1_k1d2/edges", *argv])
    out, err = capsys.readouterr()
    assert code == 2 and out == ""
    (line,) = err.strip().splitlines()
    assert re.fullmatch(f"swatkit: error: {message}", line), line
    assert not list(tmp_path.iterdir())
