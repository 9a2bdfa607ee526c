"""The regression's faults (sim/regress.py ``Case``, sim/cocotb_swat.py): the fault fields are
checked, the fast matrix tries every kind, the reset faults hit what they say, and the liveness
check bites, naming the stalled stream.

The fault cases themselves run with the rest of the fast matrix
(``tests/sim/test_regress.py::test_fast``; ``swatkit regress -k /fault-``); the simulations
here reuse the matrix's small builds (``bi5_k1d1``, ``glob_bi5_k1d1``,
``bigbird_b4r1_k3d2``).
"""

from __future__ import annotations

import re

import pytest

from swatkit.sim.regress import FAST, HOLDS, RESET_KINDS, Case, run_case

B5, G5, BB4 = (next(c.build for c in FAST if c.build.id == name)
               for name in ("bi5_k1d1", "glob_bi5_k1d1", "bigbird_b4r1_k3d2"))
FAULTS = [c for c in FAST if "/fault-" in c.id]


# -- the fields (no simulator) -------------------------------------------------------------------


@pytest.mark.parametrize(("changes", "message"), [
    ({"holds": (("og_hold", 1, 5),)},
     r"holds must be \(one of o_hold, q_hold, kv_hold, at >= 0, cycles >= 1\), not "
     r"\('og_hold', 1, 5\)"),
    ({"resets": (("kvr_transfer", 1, 1),)},
     r"resets must be \(one of cycle, command, q_transfer, kv_transfer, o_transfer, at >= 0 "
     r"\(0 for command\), cycles >= 1\), not \('kvr_transfer', 1, 1\)"),
    ({"resets": (("command", 3, 1),)}, r"resets must be .*, not \('command', 3, 1\)"),
    ({"resets": (("cycle", 3, 0),)}, r"resets must be .*, not \('cycle', 3, 0\)"),
    ({"stream_gaps": (("kvg", 0.5),)},
     r"stream_gaps must be \(one of no stream on this core, a probability in \[0, 1\)\), not "
     r"\('kvg', 0\.5\)"),
    ({"bursts": (("o", 1),)},
     r"bursts must be \(one of q, kv, o, mean cycles in 2\.\.65536\), not \('o', 1\)"),
    ({"bursts": (("kvr", 50),)}, r"bursts must be .*, not \('kvr', 50\)"),
    ({"early_command": 5, "seq_lens": (5,)},
     r"early_command needs at least two runs, a core without global or random streams and "
     r"cycles >= 0, not 5 on 1 run\(s\) of bi5_k1d1"),
    ({"early_command": -1}, r"early_command needs .*, not -1 on 2 run\(s\) of bi5_k1d1"),
    ({"drop_valid": 2},
     r"drop_valid needs one run of N rows, no resets, a band core without resident columns "
     r"whose rows have two words or more, and 0 <= row < N, not 2 on 2 run\(s\) of bi5_k1d1"),
    ({"drop_valid": 5, "seq_lens": (5,)}, r"drop_valid needs .*, not 5 on 1 run\(s\) of bi5_k1d1"),
    ({"drop_valid": 1, "seq_lens": (5,), "reset_after": 9},
     r"drop_valid needs .*, not 1 on 1 run\(s\) of bi5_k1d1"),
])
def test_fault_fields_are_checked(changes, message):
    fields = {"seq_lens": (5, 5), **changes}
    with pytest.raises(ValueError, match=rf"^x: {message}$"):
        Case("x", B5, **fields)


def test_fault_fields_follow_the_core():
    """The global and random streams' faults are accepted where the core has those streams;
    a command offered early is refused where rows are loaded per run."""
    case = Case("x", G5, (20,), stream_gaps=(("og", 0.5), ("qg", 0.1)),
                holds=(("kvg_hold", 3, 9),), bursts=(("og", 7),))
    assert case.stream_controls()["og"] == {"gap": 0.5, "burst": 7}
    assert case.stream_controls()["kvg"] == {"gap": 0.0, "burst": 0}
    assert not case.stall_free
    with pytest.raises(ValueError, match=r"^x: stream_gaps must be \(one of qg, kvg, og, a "
                       r"probability in \[0, 1\)\), not \('kvr', 0\.5\)$"):
        Case("x", G5, (20,), stream_gaps=(("kvr", 0.5),))
    with pytest.raises(ValueError, match=r"^x: early_command needs .* of glob_bi5_k1d1$"):
        Case("x", G5, (20, 20), early_command=3)
    # valid dropped mid-row: rows of two words or more (bi3_k3d4's are one), no global columns
    one_word = next(c.build for c in FAST if c.build.id == "bi3_k3d4")
    assert one_word.params.groups == 1
    for build in (G5, one_word):
        with pytest.raises(ValueError, match=rf"^x: drop_valid needs .* of {build.id}$"):
            Case("x", build, (20,), drop_valid=3)
    assert "K/V valid dropped at the last word of row 3" in Case("x", B5, (20,),
                                                                 drop_valid=3).describe()
    assert Case("x", BB4, (8,), holds=(("kvr_hold", 1, 5),)).streams[-1] == "kvr"
    assert Case("x", B5, (5,), reset_after=9).reset_faults == (("cycle", 9, 3),)
    with pytest.raises(ValueError, match=r"^stuck must name a hold of the case's streams, not "
                       r"'og_hold'$"):
        run_case(Case("x", B5, (5,)), 1, stuck=("og_hold", 5))


def test_fast_matrix_tries_every_fault():
    """Every reset kind, every stream held, every stream bursty and every global or random
    stream under gaps of its own, on small builds; one-cycle, longer and repeated resets; a
    command offered early, with and without gaps and stalls."""
    assert {k for c in FAULTS for k, _, _ in c.resets} == set(RESET_KINDS)
    assert {s for c in FAST for s, _, _ in c.holds} == set(HOLDS)
    assert {s for c in FAULTS for s, _ in c.bursts} == {h[:-len("_hold")] for h in HOLDS}
    assert {s for c in FAULTS for s, _ in c.stream_gaps} == {"qg", "kvg", "og", "kvr"}
    assert any(n == 1 for c in FAULTS for _, _, n in c.resets)
    assert any(n > 1 for c in FAULTS for _, _, n in c.resets)
    assert max(len(c.reset_faults) for c in FAULTS) >= 3
    assert any(c.resets and c.stall_free for c in FAULTS)   # the cycle model after resets
    early = [c for c in FAULTS if c.early_command is not None]
    assert any(c.stall_free for c in early) and any(not c.stall_free for c in early)
    assert any(c.early_command == 0 for c in early)
    # a K/V producer that drops valid mid-row (rows of 4 words): rule_error
    assert any(c.drop_valid is not None and c.build.params.groups >= 2 for c in FAULTS)
    # no build of their own (the decode faults need a decode core: the matrix's decode builds)
    decode = {c.build for c in FAST if c.decode}
    assert {c.build for c in FAULTS} <= {B5, G5, BB4, *decode}
    assert all(c.rows <= 300 for c in FAULTS)


# -- in the simulator ----------------------------------------------------------------------------


def test_reset_faults_hit_what_they_say(request, regress_seed):
    """Each reset of ``bi5_k1d1/fault-resets`` lands where its kind says (the bench's record:
    the cycle counted from the attempt's start), and the runs after them are bit-exact."""
    case = next(c for c in FAULTS if c.id == "bi5_k1d1/fault-resets")
    result = run_case(case, regress_seed, build_dir=request.config.getoption("build_dir"))
    assert result.passed, result.message
    assert [(f["kind"], f["at"], f["cycles"]) for f in result.faults] == list(case.resets)
    for fault in result.faults:
        if fault["kind"] == "command":
            assert fault["cycle"] <= 2   # the command is offered as the attempt starts
        else:   # (the attempt's start, the command's transfer and `at` cycles before it)
            assert fault["cycle"] >= fault["at"] + 2, fault
    assert result.rows == case.rows


@pytest.mark.parametrize(("build", "signal", "state"), [
    (B5, "kv_hold", r"now valid 0, ready \d"),
    (B5, "o_hold", r"now valid \d, ready 0"),
    (G5, "og_hold", r"now valid \d, ready 0"),
    (BB4, "kvr_hold", r"now valid 0, ready \d"),
])
def test_liveness_names_the_stalled_stream(build, signal, state, request, regress_seed):
    """A stream held forever from cycle 40 (a hold the bench's bounds do not count): the run
    fails within the liveness bound, not the run's whole timeout, and the report names each
    stream's last transfer and what it offers now, the held one with its hold."""
    n = 64 if build.block_size else 200
    patterns = ({"global_tokens": (0, 100)},) if build is G5 else ()
    case = Case(f"{build.id}/stuck-{signal}", build, (n,), patterns=patterns)
    result = run_case(case, regress_seed, build_dir=request.config.getoption("build_dir"),
                      stuck=(signal, 40))
    assert not result.passed
    stream = signal[:-len("_hold")]
    first = result.message.splitlines()[0]
    match = re.match(rf"^run 0 \(N={n}, [^)]*\): no output row for (\d+) cycles \(bound (\d+)\) "
                     rf"at cycle (\d+); cmd last moved at cycle \d+ \(now valid 0, ready 0\); "
                     rf"q last moved at cycle \d+ .*", first)
    assert match, first
    waited, bound, now = map(int, match.groups())
    assert bound < waited <= 1.3 * bound + 100
    moved = re.search(rf"; {stream} last moved at cycle (\d+) \({state}; {signal} high\)", first)
    assert moved, first
    assert int(moved.group(1)) < now - bound
    assert "timeout" not in first


def test_a_run_that_never_starts_fails_within_its_liveness_bound(request, regress_seed):
    """The first run's command replaced by one the core refuses (N = 0): busy never rises, and
    the bench reports that within the liveness bound instead of waiting for ever."""
    case = Case(f"{B5.id}/refused-first", B5, (200,))
    result = run_case(case, regress_seed, build_dir=request.config.getoption("build_dir"),
                      refuse_first=True)
    assert not result.passed
    first = result.message.splitlines()[0]
    assert re.match(r"^run 0 \(N=200, [^)]*\): the run did not start: busy stayed low for \d+ "
                    r"cycles after its command \(error 1\); cmd last moved at cycle \d+ ", first), \
        first
