"""`swatkit prove` / :mod:`swatkit.sim.formal`: the stream contract proved by k-induction.

The proofs run SymbiYosys (yowasp-sby) and yices; the default configuration takes about 40 s on
the 2-core machine, each broken variant about 20 s. Each broken variant must fail the property it
breaks: a prover that always says "proved" fails these tests.
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time

import pytest

from swatkit.cli import main
from swatkit.golden import AttentionSpec, NumberFormat
from swatkit.rtl import HardwareConfig
from swatkit.rtl.config import CoreParams
from swatkit.sim import formal

TINY = CoreParams(AttentionSpec.longformer(4, 1, attention_window=2),
                  NumberFormat(data_bits=2, prob_bits=4, exp_frac_bits=1, const_bits=4,
                               out_bits=2),
                  HardwareConfig(key_lanes=1, dim_lanes=1, max_seq_len=4))


def prove_cli(capsys, *argv):
    rc = main(["prove", *argv])
    out, err = capsys.readouterr()
    return rc, out, err


def status_of(out: str) -> dict:
    """``{name: status}`` from the one-line-per-property report."""
    statuses = {}
    for line in out.splitlines():
        m = re.match(r"^(proved|FAILED|NOT PROVED|TIMEOUT|ERROR|covered|NOT COVERED)\s+(\w+)\s",
                     line)
        if m:
            statuses[m.group(2)] = m.group(1)
    return statuses


# -- the harness, without the solver -----------------------------------------------------------

def _checks(il: str) -> dict:
    """``{flavor: [message, ...]}`` of the ``$check`` cells of an RTLIL design."""
    found = {}
    for message, flavor in re.findall(r'cell \$check \S+\n    parameter \\FORMAT "(.*)"\n'
                                      r'(?:    parameter .*\n)*?    parameter \\FLAVOR "(\w+)"',
                                      il):
        found.setdefault(flavor, []).append(message)
    return found


def test_the_stages_own_the_invariants():
    from amaranth.back import rtlil

    def invariants(check):
        il = rtlil.convert(formal.ContractHarness(TINY, check), name="harness",
                           platform=formal.platform(check), emit_src=False)
        return {flavor: sorted(m for m in messages if m.startswith("inv: "))
                for flavor, messages in _checks(il).items()}

    proved = invariants("invariants")
    # every stage's and the core's: the run, the K/V loader and copier, the scheduler, both
    # engines' walks, the normaliser, and the bookkeeping across them, and that rule_error
    # stays 0 under the producer rule (43 on this one-word-row core)
    assert len(proved["assert"]) == 43 and not proved.get("assume")
    for message in ("inv: 1 <= n <= max_seq_len", "inv: K/V copier idle",
                    "inv: rule_error stays 0 while the producers keep the rule",
                    "inv: Q rows = started + Q registers", "inv: QK last-round flag = rem < KL",
                    "inv: SV last-round flag = rem < KL", "inv: output FIFO level",
                    "inv: started rows are in the engines", "inv: an idle core is empty"):
        assert message in proved["assert"], message
    # a property's job assumes the same invariants; the covers search from reset without them
    for prop in formal.properties(TINY):
        given = invariants(prop)
        assert given["assume"] == proved["assert"] and not given.get("assert"), prop
    assert not any(invariants("cover").values())
    # a stage elaborated for a FormalPlatform carries its own, with no core around it
    from swatkit.rtl.core import SwatCore
    from swatkit.rtl.units import FormalPlatform

    core = SwatCore(TINY.spec, TINY.fmt, TINY.hw)
    core._MustUse__silence = True   # (only its QK engine is elaborated)
    il = rtlil.convert(core.qk, name="qk", platform=FormalPlatform("assert"), emit_src=False)
    assert [m for m in _checks(il)["assert"] if m] == ["inv: QK last-round flag = rem < KL",
                                                       "inv: QK group counter idle",
                                                       "inv: QK group counter in range",
                                                       "inv: row-max FIFO level"]


GLOBAL = CoreParams(AttentionSpec.longformer(4, 1, attention_window=2, global_tokens=(0,)),
                    TINY.fmt, TINY.hw)
BIGBIRD = CoreParams(AttentionSpec.bigbird(8, 1, block_size=1, num_random_blocks=1, seed=0),
                     TINY.fmt, HardwareConfig(key_lanes=1, dim_lanes=1, max_seq_len=8))


def test_pattern_stages_own_their_invariants():
    from amaranth.back import rtlil

    def invariants(params, check):
        il = rtlil.convert(formal.ContractHarness(params, check), name="harness",
                           platform=formal.platform(check), emit_src=False)
        return {flavor: sorted(m for m in messages if m.startswith("inv: "))
                for flavor, messages in _checks(il).items()}

    proved = invariants(GLOBAL, "invariants")["assert"]
    # the global-row engine's own (its run, counters, read-out, pipeline tokens), the K/V
    # loader's global columns, and the rows dropped before o
    engine = [m for m in proved if m.startswith("inv: global rows: ")]
    # 13 on its state; per pipeline stage (12), pass 2's last key only after its take, and
    # nothing behind the run's final token (11: not the first stage)
    assert len(engine) == 13 + 12 + 11, engine
    for message in ("inv: global columns taken = written + loading",
                    "inv: band rows only after the global columns",
                    "inv: rows done = rows out + the global rows dropped",
                    "inv: the global-row engine runs only within a run",
                    "inv: gcount <= max_global_tokens, n"):
        assert message in proved, message
    given = invariants(GLOBAL, "global_counts")
    assert given["assume"] == proved and not given.get("assert")
    assert set(formal.properties(GLOBAL)) == {*formal.properties(TINY), "og_held", "qg_valid",
                                              "kvg_valid", "global_counts"}
    # BigBird: the scheduler's block window (not the band's), RandomRing's loader, and the
    # random rows' wait across them; kvr_valid is a property
    bigbird = invariants(BIGBIRD, "invariants")["assert"]
    for message in ("inv: qk_row = block · b + place in the block",
                    "inv: hi1 = min(bend, n)", "inv: every started row had its block's keys",
                    "inv: row_rnd = a middle block of a run with random blocks",
                    "inv: r_bend = (blocks written + 3 + the block being finished) · b",
                    "inv: no random row written while idle",
                    "inv: the random copier is one word ahead of the writes",
                    "inv: no row of the block whose random rows are loading has started"):
        assert message in bigbird, message
    assert not any(m.startswith(("inv: hi1 = min(qk_pos", "inv: near")) for m in bigbird)
    assert invariants(BIGBIRD, "kvr_valid")["assume"] == bigbird
    assert "kvr_valid" in formal.properties(BIGBIRD)


def test_bigbird_cover_depth_reaches_an_output_row():
    """A BigBird run's length is a multiple of b and its first and last blocks are global rows
    (not on o): the covers' run is one block, and the default depth is the cycle model's for
    3b rows (the shortest run with a row on o), also where b does not divide 2."""
    from swatkit.sim.cycle_model import swat_cycles

    p = CoreParams(AttentionSpec.bigbird(24, 2, block_size=4, num_random_blocks=1, seed=0),
                   TINY.fmt, HardwareConfig(key_lanes=1, dim_lanes=1, max_seq_len=24))
    assert formal.cover_run(p) == 4 and formal.cover_run(TINY) == 2
    run = p.run_spec(12, num_random_blocks=0)
    assert formal.default_cover_depth(p) == swat_cycles(p, 12, run=run).cycles + 12
    assert formal.covers(p)["run_ends"] == "a run of 4 rows (one block) ends"


def test_open_properties_say_why():
    """Every core prove takes has its stages' invariants stated; only a core with several
    global-row engines side by side leaves the three global properties that read an engine's
    counters, and says why."""
    for params in (TINY, GLOBAL, BIGBIRD):
        assert formal.open_properties(params) == {}
    engines = CoreParams(BIGBIRD.spec.replace(seq_len=12, block_size=2), TINY.fmt,
                         HardwareConfig(key_lanes=1, dim_lanes=1, max_seq_len=12,
                                        global_engines=2))
    assert engines.global_engines == 2
    assert formal.open_properties(engines) == dict.fromkeys(
        ("qg_valid", "kvg_valid", "global_counts"), formal.ENGINES_OPEN.format(2))


def test_failed_assertions_are_named_per_module(tmp_path):
    # the stages' check cells share names ("_witness_.check_N"): a failure is looked up in the
    # module sby names, and RTLIL's octal escapes are decoded
    cell = ('  cell $check \\_witness_.check_7\n    parameter \\TRG_WIDTH 0\n'
            '    parameter \\FORMAT "{}"\n    parameter \\FLAVOR "assert"\n  end\n')
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "design.il").write_text(
        "module \\harness.core.ring\n" + cell.format("inv: ring") + "end\n"
        "module \\harness.core.scheduler\n" + cell.format("inv: dil\\302\\267after")
        + "end\n")
    assert formal._check_messages(tmp_path) == {
        "harness.core.ring._witness_.check_7": "inv: ring",
        "harness.core.scheduler._witness_.check_7": "inv: dil\u00b7after"}


def test_formal_platform_refuses_another_mode():
    from swatkit.rtl.units import FormalPlatform

    with pytest.raises(ValueError, match=r"^invariants must be 'assert' or 'assume', not 'x'$"):
        FormalPlatform("x")
    assert FormalPlatform("assume") == "formal"   # (Amaranth's FIFOs add their assertions)


@pytest.mark.parametrize(("kwargs", "exc", "message"), [
    ({"check": "bogus"}, ValueError,
     "check must be one of o_held, cmd_valid, q_valid, kv_valid, row_counts, invariants or "
     "cover, not 'bogus'"),
    ({"check": "o_held", "fault": "x"}, ValueError,
     "fault must be one of hold, valid, length, not 'x'"),
])
def test_harness_arguments(kwargs, exc, message):
    with pytest.raises(exc, match=f"^{re.escape(message)}$"):
        formal.ContractHarness(TINY, **kwargs)


def test_size_limits():
    formal.check_size(TINY)
    big = CoreParams(TINY.spec.replace(head_dim=128), TINY.fmt, TINY.hw)
    with pytest.raises(ValueError, match=r"^head_dim 128 is too big to prove in reasonable time "
                                         r"\(limit 64 for swatkit prove\)$"):
        formal.check_size(big)


# -- bad input: one line, exit 2, before any tool runs ------------------------------------------

@pytest.mark.parametrize(("argv", "message"), [
    (["--head-dim", "128"],
     "--head-dim 128 is too big to prove in reasonable time (limit 64 for swatkit prove)"),
    (["--seq-len", "8192"],
     "--seq-len 8192 is too big to prove in reasonable time (limit 4096 for swatkit prove)"),
    (["--causal", "--sliding-window", "4096", "--head-dim", "128"],
     "window 4096 is too big to prove in reasonable time (limit 513 for swatkit prove)"),
    (["--attention-window", "7"], "--attention-window must be a positive even integer, not 7"),
    (["--property", "og_held"], "--property og_held: not a property of this core (its "
                                "properties: o_held, cmd_valid, q_valid, kv_valid, row_counts)"),
    (["--key-lanes", "4"], "--key-lanes (4) must not exceed the window (3 keys)"),
    (["--dim-lanes", "2"], "--dim-lanes (2) must divide head_dim (1)"),
    (["--depth", "0"], "argument --depth: must be a positive integer, not 0"),
    (["--solver", "z3"],
     "argument --solver: invalid choice: 'z3' (choose from 'yices', 'boolector')"),
    (["--property", "o_held,bogus"], "--property must be among o_held, cmd_valid, q_valid, "
                                     "kv_valid, row_counts, og_held, qg_valid, kvg_valid, "
                                     "global_counts, kvr_valid, not 'bogus'"),
    (["--heads", "6", "--kv-heads", "4"], "--heads must be a multiple of --kv-heads (4), not 6"),
    (["--sink-logits", "1,2"], "--sink-logits takes values only in swatkit regress (the core "
                               "takes them at run time, on each command)"),
    (["--sink-tokens", "2", "--global-tokens", "0"],
     "--sink-tokens must be 0 on a core with global tokens, not 2: its resident columns are of "
     "one kind, global tokens (each with a global row, listed on the command) or sinks "
     "(key-only, counted on the command), and its column walk has no per-column kind to hold "
     "both"),
])
def test_bad_input_is_one_line(capsys, tmp_path, argv, message):
    rc, _out, err = prove_cli(capsys, *argv, "-o", str(tmp_path / "p"))
    assert rc == 2
    assert err == f"swatkit: error: {message}\n"
    assert not (tmp_path / "p").exists()


def test_config_file_overrides_the_prove_defaults(capsys, tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text("[spec]\nhead_dim = 96\n")
    rc, _out, err = prove_cli(capsys, "--config", str(cfg), "-o", str(tmp_path / "p"))
    assert (rc, err) == (2, "swatkit: error: --head-dim 96 is too big to prove in reasonable time "
                            "(limit 64 for swatkit prove)\n")


# -- proofs ------------------------------------------------------------------------------------

# (the suite's default tier proves the default core, the decode core and one broken variant;
# the other configurations and variants run with --runslow: docs/verification.md, "Tiers")
SLOW = pytest.mark.slow


@pytest.mark.parametrize(("argv", "pattern_covers"), [
    pytest.param([], (), id="default"),
    # a row of two words (the K/V row copier at work) on a causal window, whose sides are not
    # 2^k - 1 (a command with a larger before/after fits its fields: the core refuses it)
    pytest.param(["--causal", "--head-dim", "2", "--dim-lanes", "1"], (),
                 id="causal-two-words", marks=SLOW),
    # a pattern core: dilation up to 2 (two residue classes in the ring; each run's dilation
    # is a solver input, 1 or 2)
    pytest.param(["--dilation", "2"], ("dilated_run",), id="dilation", marks=SLOW),
])
def test_configuration_is_proved(capsys, tmp_path, argv, pattern_covers):
    rc, out, _err = prove_cli(capsys, *argv, "-o", str(tmp_path / "p"))
    print(out)
    statuses = status_of(out)
    band = ("o_held", "cmd_valid", "q_valid", "kv_valid", "row_counts")
    assert statuses == {**{name: "proved" for name in band}, "invariants": "proved",
                        **{name: "covered" for name in ("o_row", "run_ends", *pattern_covers)}}
    assert rc == 0
    # the covers are not vacuous: an output row needs about 30 steps from reset
    step = int(re.search(r"covered\s+o_row .*\[step (\d+)", out).group(1))
    assert 20 < step < 60
    covers = 2 + len(pattern_covers)
    assert (f"5 of 5 properties proved, invariants proved, {covers} of {covers} covers "
            f"reached") in out


@pytest.mark.slow
def test_bigbird_core_is_proved(capsys, tmp_path):
    # the invariants (the scheduler's block window, RandomRing's loader) and BigBird's own
    # property, kvr_valid, with row_counts (kv: the 2b global columns and N rows); covers to
    # 2 steps only (a short test: only kvr_row, a random row taken the cycle after the
    # command, is reached, and the exit is 1 for that alone; the whole core with its covers:
    # test_bigbird_core_is_proved_whole)
    rc, out, _err = prove_cli(capsys, "--bigbird", "1", "--random-blocks", "1", "--seq-len",
                              "8", "--cover-depth", "2", "--property", "kvr_valid,row_counts",
                              "-o", str(tmp_path / "p"))
    print(out)
    statuses = status_of(out)
    assert {name: statuses[name] for name in ("invariants", "kvr_valid", "row_counts",
                                              "kvr_row")} == \
        {"invariants": "proved", "kvr_valid": "proved", "row_counts": "proved",
         "kvr_row": "covered"}
    assert "2 of 2 properties proved, invariants proved, 1 of 4 covers reached" in out
    assert rc == 1


@pytest.mark.slow
def test_bigbird_core_is_proved_whole(capsys, tmp_path):
    # the band's 5, the global-row engines' 4 and kvr_valid; a global row, a random row and
    # a run's end reached
    rc, out, _err = prove_cli(capsys, "--bigbird", "1", "--random-blocks", "1", "--seq-len",
                              "8", "-o", str(tmp_path / "p"))
    print(out)
    assert status_of(out) == {**dict.fromkeys(formal.properties(BIGBIRD), "proved"),
                              "invariants": "proved",
                              **dict.fromkeys(formal.covers(BIGBIRD), "covered")}
    assert "10 of 10 properties proved, invariants proved, 4 of 4 covers reached" in out
    assert rc == 0


@pytest.mark.parametrize(("fault", "prop", "statuses"), [
    pytest.param("hold", "o_held", ("FAILED",), marks=SLOW),
    pytest.param("valid", "q_valid", ("FAILED",), marks=SLOW),
    ("length", "row_counts", ("FAILED",)),
])
def test_broken_variant_fails(capsys, tmp_path, fault, prop, statuses):
    rc, out, _err = prove_cli(capsys, "--fault", fault, "--property", prop,
                             "-o", str(tmp_path / "p"))
    print(out)
    assert rc == 1
    assert status_of(out)[prop] in statuses
    assert status_of(out)["invariants"] == "proved"   # the fault is outside the core
    trace = re.search(r"trace: (\S+\.vcd)", out).group(1)
    assert trace.startswith(str(tmp_path)) and (tmp_path / trace).exists()
    assert "0 of 1 properties proved" in out


def test_ctrl_c_is_interrupted(tmp_path):
    proc = subprocess.Popen([sys.executable, "-m", "swatkit.cli", "prove", "-o",
                             str(tmp_path / "p")], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not list(tmp_path.glob("p/*/job/logfile.txt")) and time.monotonic() < deadline:
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert (proc.returncode, err.strip().splitlines()[-1:]) == (130, ["swatkit: interrupted"]), \
        (out, err)
    assert "Traceback" not in err


@pytest.mark.slow
def test_global_token_core_is_proved(capsys, tmp_path):
    # one global token (Longformer's CLS row): the band's 5 properties and the global-row
    # engine's 4
    rc, out, _err = prove_cli(capsys, "--global-tokens", "0", "-o", str(tmp_path / "p"))
    print(out)
    assert status_of(out) == {**dict.fromkeys(formal.properties(GLOBAL), "proved"),
                              "invariants": "proved",
                              **dict.fromkeys(formal.covers(GLOBAL), "covered")}
    assert "9 of 9 properties proved, invariants proved, 3 of 3 covers reached" in out
    assert rc == 0


@pytest.mark.slow
@pytest.mark.parametrize("argv", [
    # head_dim > dim_lanes (a row in G groups), two key lanes, causal
    ["--head-dim", "2", "--attention-window", "4", "--key-lanes", "2", "--seq-len", "7"],
    # the regression's bi9_k2d4 shape with the default 8-bit format, every N up to 32
    ["--attention-window", "8", "--head-dim", "8", "--key-lanes", "2", "--dim-lanes", "4",
     "--seq-len", "32", "--data-bits", "8", "--prob-bits", "16", "--exp-frac-bits", "6",
     "--const-bits", "16", "--out-bits", "8"],
    ["--causal", "--sliding-window", "8", "--head-dim", "4", "--key-lanes", "3",
     "--dim-lanes", "2", "--seq-len", "12"],
])
def test_larger_configurations_are_proved(capsys, tmp_path, argv):
    rc, out, _err = prove_cli(capsys, *argv, "-o", str(tmp_path / "p"))
    print(out)
    assert rc == 0, out


# grouped query heads (2 on 1), StreamingLLM's sinks (2, causal), learned sink logits (on 2 heads)
GROUPED = CoreParams(TINY.spec, TINY.fmt, TINY.hw, heads=2, kv_heads=1)
SINKS = CoreParams(AttentionSpec.causal(4, 1, sliding_window=3, sink_tokens=2), TINY.fmt,
                   TINY.hw)
LOGITS = CoreParams(AttentionSpec.causal(4, 1, sliding_window=3), TINY.fmt, TINY.hw, heads=2,
                    kv_heads=1, sink_logits=True)


def test_group_and_sink_cores_state_their_invariants_and_counts():
    # the run control owns nq = g·n (without it the grouped core's invariants do not close by
    # induction: "an idle core is empty" fails at depth 4 from a state with n 3, nq 4) and the
    # sink scores' range; a sink core's kv carries its S sinks first, no global rows
    from amaranth.back import rtlil

    def asserted(p):
        il = rtlil.convert(formal.ContractHarness(p, "invariants"), name="harness",
                           platform=formal.platform("invariants"), emit_src=False)
        return set(_checks(il)["assert"])

    assert "inv: nq = g · n" in asserted(GROUPED)
    found = asserted(LOGITS)
    assert {"inv: nq = g · n", "inv: the sink score of head 0 is in the scores' range",
            "inv: the sink score of head 1 is in the scores' range"} <= found
    assert "inv: global columns taken <= gcount" in asserted(SINKS)
    for p in (GROUPED, SINKS, LOGITS):
        formal.check_size(p)   # (no longer refused)
        assert list(formal.properties(p)) == ["o_held", "cmd_valid", "q_valid", "kv_valid",
                                              "row_counts"]
        assert list(formal.covers(p)) == ["o_row", "run_ends"]
    assert formal.properties(GROUPED)["row_counts"].startswith("q: 2N rows, kv: N, o: 2N;")
    assert formal.properties(SINKS)["row_counts"].startswith("q: N rows, kv: S + N, o: N;")


@pytest.mark.slow
@pytest.mark.parametrize("argv", [
    ["--heads", "2"],
    ["--causal", "--sink-tokens", "2"],
    ["--causal", "--heads", "2", "--sink-logits"],
], ids=["grouped", "sinks", "sink-logits"])
def test_group_and_sink_cores_are_proved(capsys, tmp_path, argv):
    rc, out, _err = prove_cli(capsys, *argv, "-o", str(tmp_path / "p"))
    print(out)
    assert "5 of 5 properties proved, invariants proved, 2 of 2 covers reached" in out
    assert rc == 0


INTERRUPT_WHILE_ELABORATING = """
import sys
import amaranth.hdl._ir as ir
from swatkit.cli import main

get = ir.Fragment.get
def interrupted(obj, platform):  # Ctrl-C half-way through elaborating a job's design
    if type(obj).__name__ == "SyncFIFOBuffered":
        raise KeyboardInterrupt
    return get(obj, platform)
ir.Fragment.get = staticmethod(interrupted)
sys.exit(main(["prove", "-o", sys.argv[1]]))
"""


def test_ctrl_c_while_elaborating_is_one_line(tmp_path):
    # the half-built design must not add "created but never used" warnings after the line
    done = subprocess.run([sys.executable, "-c", INTERRUPT_WHILE_ELABORATING,
                           str(tmp_path / "p")], capture_output=True, text=True, timeout=300)
    assert (done.returncode, done.stderr) == (130, "swatkit: interrupted\n")


# -- decode cores: the continue command a solver input ------------------------------------------

DECODE = CoreParams(AttentionSpec.causal(4, 1, sliding_window=3), TINY.fmt, TINY.hw, contexts=1)


def test_decode_core_states_its_sequence():
    # every property's job ties the observer's sequence (started, rows, pattern) to the core's
    # and the run's transfers to the sequence's; the stages' invariants are stated again for
    # the time between the runs of a sequence ("(live)"), and the stats counters count a run
    from amaranth.back import rtlil

    def checks(check):
        il = rtlil.convert(formal.ContractHarness(DECODE, check), name="harness",
                           platform=formal.platform(check), emit_src=False)
        return _checks(il)

    formal.check_size(DECODE)
    asserted = set(checks("invariants")["assert"])
    assert {"inv: kv_more = kv_acc < n (live)", "inv: slot_free = credit > 0 (live)",
            "inv: free score buffers (live)", "inv: stats.kv_rows <= kv_wr",
            "inv: stats.q_rows <= q_cnt", "inv: stats.rows_out <= rows_out"} <= asserted
    assert "inv: stats.kv_rows = kv_wr" not in asserted
    ties = set(checks("row_counts")["assert"])
    assert {"ctx_valid is not whether a sequence was started (since the reset)",
            "the core's n is not the sequence's rows",
            "the core's window start is not the sequence's",
            "q: the sequence's rows are not its runs'",
            "between runs, a row of the sequence has not passed"} <= ties
    assert set(checks("cover")["cover"]) == {"o_row", "run_ends", "cont_ends", "cont_invalid",
                                             "cont_past_limit"}
    # the covers' default depth: a run of 2 rows, then a continue by one
    assert formal.default_cover_depth(DECODE) > formal.default_cover_depth(
        CoreParams(DECODE.spec, DECODE.fmt, DECODE.hw))


def test_decode_core_is_proved(capsys, tmp_path):
    # the five properties with cont free (covers to 2 steps only: a short test, whose exit is
    # 1 for the unreached covers alone; only a continue on the context no start has made is
    # refused that soon; the whole proof with its covers: docs/verification.md)
    rc, out, _err = prove_cli(capsys, "--causal", "--contexts", "1", "--cover-depth", "2",
                              "-o", str(tmp_path / "p"))
    print(out)
    statuses = status_of(out)
    band = ("o_held", "cmd_valid", "q_valid", "kv_valid", "row_counts")
    assert {name: statuses[name] for name in ("invariants", *band)} == \
        {"invariants": "proved", **{name: "proved" for name in band}}
    assert statuses["cont_invalid"] == "covered"
    assert "5 of 5 properties proved, invariants proved" in out
    assert rc == 1


@pytest.mark.slow
@pytest.mark.parametrize(("fault", "prop"), [("length", "row_counts"), ("valid", "q_valid")])
def test_decode_broken_variant_fails(capsys, tmp_path, fault, prop):
    rc, out, _err = prove_cli(capsys, "--causal", "--contexts", "1", "--fault", fault,
                              "--property", prop, "--cover-depth", "2",
                              "-o", str(tmp_path / "p"))
    print(out)
    assert rc == 1
    assert status_of(out)[prop] == "FAILED"
    assert status_of(out)["invariants"] == "proved"
