"""Decode on the cocotb + Verilator bench (sim/regress.py ``Case.decode``, ``swatkit regress
--decode T``): a prefill, then decode steps that continue the sequence, every row checked
against the one-run golden model; what the fast matrix holds; the decode fields and options
checked before anything is built. The matrix's decode cases themselves run in
tests/sim/test_regress.py (``test_fast``)."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from swatkit.cmd_regress import matrix
from swatkit.sim.regress import FAST, Build, Case, run_case

MATRIX_FAST = matrix(False)
DEC = next(c.build for c in FAST if c.build.id == "decode_sink2_causal8_k3d2")
DECC = next(c.build for c in FAST if c.build.id == "decode_ctx3_sink2_causal8_k3d2")


def test_fast_matrix_covers_decode():
    """Issue 26: small decode builds (sinks and dilation carried over; a grouped core with
    learned sink logits), stall-free (the cycle model checked per step) and under heavy gaps
    and stalls, a prefill of one row and of several, steps whose K/V row arrives late, a reset
    after the last step; in the full matrix, the GPT-OSS sliding group decoding 256 tokens
    after 1024 rows."""
    cases = [c for c in MATRIX_FAST if c.decode]
    assert all(c.build.params.decode for c in cases)
    assert any(c.stall_free for c in cases)
    assert any(c.gap >= 0.3 and c.stall >= 0.3 for c in cases)
    assert {c.seq_lens[0] for c in cases} >= {1, 3, 100}
    assert any(c.build.sink_tokens for c in cases)
    assert any(c.build.params.group_heads > 1 and c.build.sink_logits for c in cases)
    assert any(dict(c.patterns[0]).get("dilation", 1) > 1 for c in cases if c.patterns)
    assert any(c.late_kv for c in cases) and any(c.decode_reset for c in cases)
    assert not [c for c in cases if c.build.head_dim == 64]   # (real size: the full matrix)
    gpt = [c for c in matrix(True) if c.decode and c.build.head_dim == 64]
    assert len(gpt) == 1 and gpt[0].id.endswith("-full")
    assert len(gpt) == 1 and gpt[0].seq_lens == (1024,) and gpt[0].decode == 256
    p = gpt[0].build.params
    assert (p.spec.before, p.spec.after, p.group_heads, p.heads, p.kv_heads) == \
        (127, 0, 8, 64, 8)
    assert p.sink_logits and gpt[0].stall_free
    # several contexts (issue 26 item 2): interleaved, stall-free and heavy, with faults
    ctx = [c for c in cases if c.contexts > 1]
    assert any(c.stall_free for c in ctx) and any(c.gap >= 0.3 for c in ctx)
    assert any(c.late_kv and c.decode_reset for c in ctx)
    assert all(c.build.params.contexts < 2 ** c.build.params.ctx_bits for c in ctx)


@pytest.mark.parametrize(("changes", "message"), [
    ({"decode": 5, "build": next(c.build for c in FAST if c.build.id == "causal8_k3d2")},
     r"decode needs a decode build \(contexts >= 1\) and one prefill run, not 5 steps on 1 "
     r"run\(s\) of causal8_k3d2"),
    ({"seq_lens": (10, 10)}, r"decode needs a decode build .* not 5 steps on 2 run\(s\) of "
                             r"decode_sink2_causal8_k3d2"),
    ({"seq_lens": (396,)}, r"the prefill and 5 steps make 401 rows, more than the build's "
                           r"400"),
    ({"late_kv": ((1, 10),)}, r"late_kv must be \(step in 2\.\.5, cycles >= 1\), not \(1, 10\)"),
    ({"late_kv": ((3, 0),)}, r"late_kv must be \(step in 2\.\.5, cycles >= 1\), not \(3, 0\)"),
    ({"decode": 0, "decode_reset": True}, r"late_kv and decode_reset need decode steps"),
    ({"reset_after": 100}, r"a decode case takes late_kv and decode_reset faults, not early "
                           r"commands or resets of the first run"),
])
def test_decode_fields_are_checked(changes, message):
    fields = {"id": "x", "build": DEC, "seq_lens": (10,), "decode": 5, **changes}
    with pytest.raises(ValueError, match=rf"^x: {message}$"):
        Case(**fields)


def swatkit(*argv, cwd=None):
    return subprocess.run([sys.executable, "-m", "swatkit.cli", *argv], capture_output=True,
                          text=True, cwd=cwd)


@pytest.mark.parametrize(("argv", "message"), [
    (["--decode", "4"], r"--decode needs a causal window \(--causal\): a decode step's keys "
                        r"after its row have not arrived"),
    (["--causal", "--decode", "0"], r"--decode must be an integer in 1\.\.16384, not 0"),
    (["--causal", "--decode", "2", "--runs", "2"],
     r"--decode takes one prefill run, not --runs 2"),
    (["--causal", "--decode", "2", "--contexts", "0"],
     r"--decode needs a decode core, not --contexts 0"),
    (["--global-tokens", "0", "--causal", "--decode", "2"], r"--global-tokens cannot be "
                                                            r"combined with --causal.*"),
    (["--bigbird", "16", "--decode", "2"], r"--decode needs a token band without global "
                                           r"tokens \(a global row attends the whole "
                                           r"sequence, which a decode step has not seen\)"),
])
def test_cli_decode_bad_values(argv, message, request, tmp_path, refused):
    build_dir = request.config.getoption("build_dir")
    done = refused("regress", *argv, *(["--build-dir", build_dir] if build_dir else []),
                   cwd=tmp_path)
    assert done.returncode == 2
    assert re.fullmatch(f"swatkit: error: {message}", done.stderr.splitlines()[-1]), done.stderr
    assert list(tmp_path.iterdir()) == []   # refused before anything was built or written


def test_a_contexts_case_fits_its_harness():
    """A decode case runs every context of its build: C sequences in the harness at once."""
    b = Build("d4", head_dim=4, before=3, after=0, key_lanes=1, dim_lanes=2, sink_tokens=1,
              contexts=4, max_seq_len=50)
    case = Case("d4/ok", b, (5,), decode=6)   # (4 x (11 + 1) K/V rows: 48 of 51)
    assert case.contexts == 4 and case.rows == 4 * 11
    assert "then 6 decode steps, in each of 4 contexts, interleaved" in case.describe()
    with pytest.raises(ValueError, match=r"^x: 4 contexts of 25 rows and 1 resident columns "
                                         r"need 104 K/V rows, more than the harness's 51$"):
        Case("x", b, (20,), decode=5)


# one flipped bit in the expected row of one decode step fails the case, naming that step's
# run, and every run before it passes: one context (step 7's run, after the prefill), and three
# interleaved ones (runs: the 3 prefills, then step 1 of contexts 0, 1, 2, …; run 7 is context
# 1's second step)
@pytest.mark.parametrize(("build", "prefill", "steps", "corrupt", "row", "pattern"), [
    pytest.param(DEC, 20, 10, (7, 0, 3, 2), 26, None, id="decode-step"),
    pytest.param(DECC, 12, 4, (7, 0, 5, 1), 13, "decode step 2, row 13, context 1",
                 id="one-context"),
])
def test_scoreboard_bites(build, prefill, steps, corrupt, row, pattern, request,
                          regress_seed):
    case = Case(f"{build.id}/bite", build, (prefill,), decode=steps)
    result = run_case(case, regress_seed, build_dir=request.config.getoption("build_dir"),
                      corrupt=corrupt)
    assert not result.passed
    assert re.match(rf"run 7 \(N=1\): mismatch at row {row}, column {corrupt[2]}: ",
                    result.message), result.message
    assert [r["bad_rows"] for r in result.runs[:8]] == [0] * 7 + [1]
    if pattern:
        assert pattern in result.runs[7]["pattern"]


def test_a_build_keeps_its_contexts():
    b = Build("d", head_dim=4, before=3, after=0, key_lanes=1, dim_lanes=2, contexts=1,
              max_seq_len=50)
    assert b.params.decode and Build.from_params("d", b.params).params == b.params


def test_cli_decode_own_configuration(request, regress_seed, tmp_path):
    """``swatkit regress --decode T`` on a configuration of one's own: a prefill of --seq-len
    rows and T steps, every row checked (the core made a decode core by --decode)."""
    build_dir = request.config.getoption("build_dir")
    done = swatkit("regress", "--causal", "--sliding-window", "9", "--head-dim", "8",
                   "--key-lanes", "3", "--dim-lanes", "2", "--seq-len", "40", "--decode", "20",
                   "--sink-tokens", "2", "--seed", str(regress_seed),
                   *(["--build-dir", build_dir] if build_dir else []), cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "decode (1 context)" in done.stdout
    assert re.search(r"^PASS yours/random-n40-decode20  60 rows, ", done.stdout, re.M)
    assert re.search(r"1 tests, 0 failed; 60 output rows checked bit-exact", done.stdout)


def test_cli_decode_several_contexts(request, regress_seed, tmp_path):
    """``swatkit regress --decode T --contexts C``: C sequences of their own inputs, their
    prefills and steps interleaved, every row checked (2 contexts x 30 positions x 2 query
    heads: 120 rows)."""
    build_dir = request.config.getoption("build_dir")
    done = swatkit("regress", "--causal", "--sliding-window", "6", "--head-dim", "4",
                   "--key-lanes", "2", "--dim-lanes", "2", "--sink-tokens", "1", "--heads", "2",
                   "--kv-heads", "1", "--sink-logits", "--contexts", "2", "--seq-len", "20",
                   "--decode", "10", "--gap", "0.2", "--stall", "0.2",
                   "--seed", str(regress_seed),
                   *(["--build-dir", build_dir] if build_dir else []), cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "decode (2 contexts)" in done.stdout
    assert re.search(r"1 tests, 0 failed; 120 output rows checked bit-exact", done.stdout)
