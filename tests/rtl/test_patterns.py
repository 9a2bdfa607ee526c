"""SwatCore's run patterns in Amaranth's simulator: global tokens (columns and rows), dilation and
the window chosen per run on the command, against the bit-exact golden model.

Every run checks the output against ``fixed_point_attention`` with distinct global projections
(``global_qkv``), the counters against :func:`swat_actions`, the beats moved on every stream
(:func:`run_core_many`) and, stall-free, the busy cycles against :func:`swat_cycles`. Runs with
30–50 % input gaps and output stalls check outputs and counters. Then: several runs with
different patterns back to back on one build, commands the core must refuse (``error``, nothing
started, no beat taken), a hypothesis test drawing cores and patterns, and the software checks of
the patterns (:meth:`CoreParams.check_run`, :class:`HardwareConfig`).
"""

from __future__ import annotations

import dataclasses
import os
import re
from dataclasses import dataclass

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from swatkit.golden import AttentionSpec, NumberFormat, fixed_point_attention
from swatkit.rtl import CoreParams, HardwareConfig, core_layouts
from swatkit.rtl.core import command
from swatkit.sim.amaranth_core import CoreInput, Reject, Rejected, run_core, run_core_many
from swatkit.sim.cycle_model import swat_actions, swat_cycles

TIMEOUT = 50_000  # busy cycles before a run counts as hung (the longest here takes ~2 000)


def inputs(n, d, fmt, seed):
    """q, k, v and distinct global projections (q_g, k_g, v_g), uniform over the data range."""
    rng = np.random.default_rng(seed)
    six = [rng.integers(fmt.data_min, fmt.data_max + 1, size=(n, d)) for _ in range(6)]
    return six[:3], tuple(six[3:])


def check(got, p: CoreParams, run: AttentionSpec, qkv, gqkv, *, stall_free: bool):
    """One run's output, counters and (stall-free) cycles."""
    want = fixed_point_attention(*qkv, run, p.fmt, global_qkv=gqkv).out
    bad = [i for i in range(run.seq_len) if not np.array_equal(got.out[i], want[i])]
    assert not bad, f"{run}: rows {bad} differ from the golden model"
    acts = swat_actions(p, run)
    assert {k: got.stats[k] for k in acts} == acts, f"{run}: counters"
    if stall_free:
        model = swat_cycles(p, run.seq_len, run=run).cycles
        assert got.stats["cycles"] == model, f"{run}: cycles {got.stats['cycles']} != {model}"


def simulate(spec, hw, run, *, fmt=None, seed=0, gap=0.0, stall=0.0):
    fmt = fmt or NumberFormat()
    p = CoreParams(spec, fmt, hw)
    qkv, gqkv = inputs(run.seq_len, spec.head_dim, fmt, seed)
    print(f"{run} on {hw} seed {seed} gap {gap} stall {stall}")
    got = run_core(*qkv, spec, fmt, hw, run=run, global_qkv=gqkv, seed=seed, gap=gap,
                   stall=stall, timeout=TIMEOUT)
    check(got, p, run, qkv, gqkv, stall_free=gap == 0 and stall == 0)
    return got


# -- the cores -------------------------------------------------------------------------------
# (head_dim, lanes, generated window, maxima); each run below is within its core's maxima

@dataclass(frozen=True)
class Core:
    spec: AttentionSpec
    hw: HardwareConfig
    fmt: NumberFormat = dataclasses.field(default_factory=NumberFormat)

    @property
    def params(self):
        return CoreParams(self.spec, self.fmt, self.hw)


CORES = {
    # bidirectional 3/3, two key lanes, 4 global tokens, dilation up to 3
    "A": Core(AttentionSpec(24, 8, 3, 3), HardwareConfig(2, 4, 24, max_global_tokens=4,
                                                         max_dilation=3)),
    # three key lanes (not dividing the window), 6-wide rows, 3 global tokens, dilation 2
    "B": Core(AttentionSpec(17, 6, 3, 3), HardwareConfig(3, 2, 17, max_global_tokens=3,
                                                         max_dilation=2)),
    # causal 2/0, one lane, one multiplier, narrow data
    "C": Core(AttentionSpec(16, 4, 2, 0), HardwareConfig(1, 1, 16, max_global_tokens=2,
                                                         max_dilation=3),
              NumberFormat(data_bits=6, out_frac_bits=2, out_bits=8)),
    # anti-causal 0/2, three key lanes = the window, dim_lanes = head_dim
    "D": Core(AttentionSpec(13, 8, 0, 2), HardwareConfig(3, 8, 13, max_global_tokens=2,
                                                         max_dilation=2)),
    # dilation only (no global tokens: no qg/kvg/og)
    "E": Core(AttentionSpec(16, 4, 2, 2), HardwareConfig(2, 2, 16, max_dilation=2)),
    # global tokens only (no dilation field)
    "F": Core(AttentionSpec(15, 5, 2, 2), HardwareConfig(2, 1, 15, max_global_tokens=2)),
    # maxima from the spec itself: its dilation 2 and its 2 global tokens
    "S": Core(AttentionSpec(14, 4, 2, 1, dilation=2, global_tokens=(0, 7)),
              HardwareConfig(2, 2, 14)),
}

# (id, core, seq_len, pattern changes); the pattern is the core's spec with these changed
PATTERNS = [
    ("A-plain-nmax", "A", 24, {}),
    ("A-n1", "A", 1, {}),
    ("A-n2", "A", 2, {}),
    ("A-n7-odd", "A", 7, {}),
    ("A-g1-first", "A", 20, {"global_tokens": (0,)}),
    ("A-g1-middle", "A", 19, {"global_tokens": (9,)}),
    ("A-g1-last", "A", 19, {"global_tokens": (18,)}),
    ("A-g-both-ends", "A", 21, {"global_tokens": (0, 20)}),
    ("A-g-adjacent", "A", 20, {"global_tokens": (5, 6, 7)}),
    ("A-g-in-each-others-bands", "A", 20, {"global_tokens": (4, 6, 9)}),
    ("A-g-max", "A", 24, {"global_tokens": (0, 5, 11, 23)}),
    ("A-g-all-n4", "A", 4, {"global_tokens": (0, 1, 2, 3)}),
    ("A-g-all-n1", "A", 1, {"global_tokens": (0,)}),
    ("A-g-all-n2", "A", 2, {"global_tokens": (0, 1)}),
    ("A-g-n3-odd", "A", 3, {"global_tokens": (1,)}),
    ("A-dil2", "A", 24, {"dilation": 2}),
    ("A-dil3", "A", 23, {"dilation": 3}),
    ("A-dil3-n5", "A", 5, {"dilation": 3}),
    ("A-dil3-causal", "A", 22, {"dilation": 3, "after": 0}),
    ("A-dil2-before0", "A", 17, {"dilation": 2, "before": 0}),
    ("A-dil2-g", "A", 21, {"dilation": 2, "global_tokens": (1, 8, 15)}),
    ("A-dil3-g-ends", "A", 24, {"dilation": 3, "global_tokens": (0, 23)}),
    ("A-dil3-g-max-adjacent", "A", 24, {"dilation": 3, "global_tokens": (10, 11, 12, 13)}),
    ("A-dil2-causal-g", "A", 15, {"dilation": 2, "after": 0, "global_tokens": (0, 3, 14)}),
    ("A-run-1/2", "A", 18, {"before": 1, "after": 2}),
    ("A-run-causal", "A", 18, {"after": 0}),
    ("A-run-before0", "A", 18, {"before": 0}),
    ("A-run-window1", "A", 11, {"before": 0, "after": 0}),
    ("A-run-1/1-dil2-g", "A", 19, {"before": 1, "after": 1, "dilation": 2,
                                   "global_tokens": (2, 17)}),
    ("B-plain", "B", 17, {}),
    ("B-g-max-nmax", "B", 17, {"global_tokens": (0, 8, 16)}),
    ("B-dil2-g-adjacent", "B", 16, {"dilation": 2, "global_tokens": (2, 3)}),
    ("B-dil2-causal", "B", 15, {"dilation": 2, "after": 0}),
    ("B-run-before0-g", "B", 11, {"before": 0, "global_tokens": (5,)}),
    ("B-run-window1-g", "B", 9, {"before": 0, "after": 0, "global_tokens": (0, 4, 8)}),
    ("B-g-all-n3", "B", 3, {"global_tokens": (0, 1, 2)}),
    ("C-plain-nmax", "C", 16, {}),
    ("C-dil3", "C", 16, {"dilation": 3}),
    ("C-dil2-g-ends", "C", 16, {"dilation": 2, "global_tokens": (0, 15)}),
    ("C-g-adjacent", "C", 12, {"global_tokens": (7, 8)}),
    ("C-n1", "C", 1, {}),
    ("C-n3-g", "C", 3, {"global_tokens": (1,)}),
    ("C-run-window1-dil3", "C", 9, {"before": 0, "dilation": 3}),
    ("D-plain-nmax", "D", 13, {}),
    ("D-dil2", "D", 13, {"dilation": 2}),
    ("D-g-last", "D", 12, {"global_tokens": (11,)}),
    ("D-g-first-two", "D", 9, {"global_tokens": (0, 1)}),
    ("D-run-after1-dil2-g", "D", 11, {"after": 1, "dilation": 2, "global_tokens": (4, 10)}),
    ("D-run-window1", "D", 7, {"after": 0}),
    ("E-dil2", "E", 16, {"dilation": 2}),
    ("E-dil1", "E", 9, {}),
    ("E-dil2-causal", "E", 13, {"dilation": 2, "after": 0}),
    ("F-g2", "F", 15, {"global_tokens": (3, 4)}),
    ("F-g-both-ends", "F", 15, {"global_tokens": (0, 14)}),
    ("F-g0", "F", 10, {}),
    ("S-own-pattern", "S", 14, {}),
    ("S-no-globals-dil1", "S", 14, {"dilation": 1, "global_tokens": ()}),
    ("S-other-globals", "S", 9, {"global_tokens": (8,)}),
]

# the cases also run under input gaps and output stalls (outputs and counters, not cycles)
STALLED = {"A-g-max", "A-g-in-each-others-bands", "A-g-all-n4", "A-dil3-g-ends",
           "A-dil2-causal-g", "A-run-window1", "B-g-max-nmax", "B-dil2-g-adjacent",
           "B-run-window1-g", "C-dil2-g-ends", "D-run-after1-dil2-g", "E-dil2", "F-g2",
           "S-own-pattern", "A-n1", "A-g-all-n1"}


def pattern(core: Core, n: int, changes: dict) -> AttentionSpec:
    return core.params.run_spec(n, **changes)


# the patterns of the default tier: each core once, and each kind of pattern (N = 1, global tokens
# at the ends, all, adjacent and the most, dilation with and without them, causal, a run's own
# smaller window); the others are slow (every one of them also runs back to back in
# test_pattern_changes_from_run_to_run's sequences or on Verilator in the fast matrix's
# glob_bi9_k2d4/patterns): each pattern here is a core elaborated and compiled for Amaranth's
# simulator, about 1.5 s before its first cycle
DEFAULT_TIER = {"A-plain-nmax", "A-n1", "A-g-max", "A-g-all-n1", "A-g-adjacent", "A-dil3-g-ends",
                "A-dil2-causal-g", "A-run-1/1-dil2-g", "A-run-window1", "B-g-max-nmax",
                "C-dil2-g-ends", "D-run-after1-dil2-g", "E-dil2-causal", "F-g-both-ends",
                "S-own-pattern"}
STALLED_DEFAULT_TIER = {"A-g-max", "A-run-window1", "B-run-window1-g", "D-run-after1-dil2-g",
                        "S-own-pattern"}


def _tiered(cases, default):
    return [pytest.param(*c[1:], id=c[0], marks=() if c[0] in default else pytest.mark.slow)
            for c in cases]


@pytest.mark.parametrize(("core_id", "n", "changes"), _tiered(PATTERNS, DEFAULT_TIER))
def test_pattern_stall_free(core_id, n, changes):
    core = CORES[core_id]
    simulate(core.spec, core.hw, pattern(core, n, changes), fmt=core.fmt, seed=n)


@pytest.mark.by_turns("rate")
@pytest.mark.parametrize("rate", [0.3, 0.5])
@pytest.mark.parametrize(("core_id", "n", "changes"),
                         _tiered([c for c in PATTERNS if c[0] in STALLED], STALLED_DEFAULT_TIER))
def test_pattern_with_gaps_and_stalls(core_id, n, changes, rate):
    core = CORES[core_id]
    simulate(core.spec, core.hw, pattern(core, n, changes), fmt=core.fmt, seed=17 + n,
             gap=rate, stall=rate)


def test_the_default_tier_names_patterns_of_the_table():
    """Every pattern the default tier keeps is one of the table (a typo would drop it from both
    tiers' view without a word), and every core of the table has one there."""
    assert {c[0] for c in PATTERNS} >= DEFAULT_TIER
    assert STALLED_DEFAULT_TIER <= STALLED
    assert {c[1] for c in PATTERNS if c[0] in DEFAULT_TIER} == {c[1] for c in PATTERNS}


def test_global_projections_are_used():
    """The global rows differ with and without ``global_qkv``: the tests above tell them
    apart."""
    core = CORES["A"]
    run = pattern(core, 20, {"global_tokens": (4, 6, 9)})
    qkv, gqkv = inputs(20, 8, core.fmt, 3)
    with_g = fixed_point_attention(*qkv, run, core.fmt, global_qkv=gqkv).out
    without = fixed_point_attention(*qkv, run, core.fmt).out
    for g in run.global_tokens:
        assert not np.array_equal(with_g[g], without[g])
    band = [i for i in range(20) if i not in run.global_tokens]
    np.testing.assert_array_equal(with_g[band], without[band])


@pytest.mark.parametrize(("spec", "hw", "n", "dilation"), [
    (AttentionSpec(2, 4, 0, 4), HardwareConfig(1, 1, 2, max_dilation=2), 2, 2),
    (AttentionSpec(6, 4, 1, 4), HardwareConfig(2, 2, 6, max_dilation=4), 6, 4),
    (AttentionSpec(6, 4, 1, 4), HardwareConfig(2, 2, 6, max_global_tokens=1, max_dilation=4),
     6, 4),
], ids=["n2-after4-dil2", "n6-after4-dil4", "n6-after4-dil4-g"])
def test_dilated_reach_beyond_twice_max_seq_len(spec, hw, n, dilation):
    """A bug found here by hypothesis: the band's reach dilation·after was held in
    ``index_bits + 1`` bits, and wrapped (to 0 for 8 in 3 bits, 16 in 4 bits) when it reached
    2^(index_bits+1), which a core with a small ``max_seq_len`` or a large ``after ·
    max_dilation`` allows (a Longformer-base head with max_seq_len 512 and max_dilation 8
    too: 8·256 = 2048 in 11 bits); a row near the end was then taken for an interior one and
    walked keys past the end of the sequence."""
    simulate(spec, hw, CoreParams(spec, NumberFormat(), hw).run_spec(n, dilation=dilation))


# -- several runs with different patterns on one build ----------------------------------------

SEQUENCES = {
    "A": [(24, {}), (24, {"dilation": 3, "global_tokens": (0, 23)}), (7, {"after": 0}),
          (4, {"global_tokens": (0, 1, 2, 3)}),
          (13, {"before": 0, "dilation": 2, "global_tokens": (3, 4)}), (1, {"global_tokens": (0,)}),
          (19, {"before": 1, "after": 2, "global_tokens": (2, 3, 4, 18)}), (1, {}),
          (24, {"dilation": 2}), (24, {})],
    "B": [(17, {"global_tokens": (0, 8, 16)}), (5, {}), (16, {"dilation": 2, "after": 0}),
          (17, {"before": 0, "after": 0, "global_tokens": (1,)}), (17, {})],
    "C": [(16, {"dilation": 3}), (2, {"global_tokens": (0, 1)}), (16, {}),
          (10, {"before": 1, "dilation": 2, "global_tokens": (9,)}), (16, {"dilation": 3})],
    "E": [(16, {"dilation": 2}), (16, {}), (3, {"dilation": 2, "before": 0}),
          (16, {"dilation": 2, "after": 0})],
}


def run_sequence(core: Core, steps, *, seed, rate):
    p = core.params
    items, expect = [], []
    for k, (n, changes) in enumerate(steps):
        run = pattern(core, n, changes)
        qkv, gqkv = inputs(n, core.spec.head_dim, core.fmt, seed + k)
        items.append(CoreInput(*qkv, run, gqkv))
        expect.append((run, qkv, gqkv))
    results = run_core_many(items, core.spec, core.fmt, core.hw, seed=seed, gap=rate,
                            stall=rate, timeout=TIMEOUT)
    for got, (run, qkv, gqkv) in zip(results, expect, strict=True):
        check(got, p, run, qkv, gqkv, stall_free=rate == 0)


@pytest.mark.by_turns("rate")
@pytest.mark.parametrize("rate", [0.0, 0.4], ids=["stall-free", "gaps-stalls-40pc"])
@pytest.mark.parametrize("core_id", list(SEQUENCES))
def test_pattern_changes_from_run_to_run(core_id, rate):
    print(f"core {core_id} rate {rate}")
    run_sequence(CORES[core_id], SEQUENCES[core_id], seed=5, rate=rate)


def test_counters_of_a_run_without_globals_after_one_with():
    """The smallest case of a bug found here: a run without global tokens after one with them
    reported the earlier run's global-row MACs and exponentials (the global-row engine starts
    nothing, so its counters were not cleared, and the core added them to its own)."""
    core = CORES["F"]
    runs = [pattern(core, 3, {"global_tokens": (1,)}), pattern(core, 2, {})]
    items = []
    for k, run in enumerate(runs):
        qkv, gqkv = inputs(run.seq_len, 5, core.fmt, k)
        items.append(CoreInput(*qkv, run, gqkv))
    results = run_core_many(items, core.spec, core.fmt, core.hw, timeout=TIMEOUT)
    for got, item in zip(results, items, strict=True):
        check(got, core.params, item.run, item[:3], item.global_qkv, stall_free=True)


def test_dilated_run_after_one_ending_mid_class():
    """The smallest case of a bug found here: on a core with dilation but no global tokens, a
    run after one whose last K/V row was not of the last residue class (N = 3, dilation 2)
    wrote its first K/V rows into the wrong class region (the loader's region was not reset by
    the command), so its first rows differed from the golden model."""
    core = CORES["E"]
    runs = [pattern(core, 3, {"dilation": 2}), pattern(core, 5, {"dilation": 2})]
    items = []
    for k, run in enumerate(runs):
        qkv, _ = inputs(run.seq_len, 4, core.fmt, k)
        items.append(CoreInput(*qkv, run))
    results = run_core_many(items, core.spec, core.fmt, core.hw, timeout=TIMEOUT)
    for got, item in zip(results, items, strict=True):
        check(got, core.params, item.run, item[:3], None, stall_free=True)


def test_same_inputs_after_other_patterns():
    """A run repeated after runs with other patterns gives the same output, counters and
    cycles: nothing of an earlier run (ring contents, global columns, flags) leaks into it."""
    core = CORES["A"]
    run = pattern(core, 20, {"dilation": 2, "global_tokens": (6, 7)})
    qkv, gqkv = inputs(20, 8, core.fmt, 11)
    others = [pattern(core, 24, {"global_tokens": (0, 5, 6, 7)}),
              pattern(core, 24, {"dilation": 3})]
    items = [CoreInput(*qkv, run, gqkv)]
    for k, other in enumerate(others):
        oqkv, ogqkv = inputs(other.seq_len, 8, core.fmt, 100 + k)
        items.append(CoreInput(*oqkv, other, ogqkv))
    items.append(CoreInput(*qkv, run, gqkv))
    results = run_core_many(items, core.spec, core.fmt, core.hw, timeout=TIMEOUT)
    first, last = results[0], results[-1]
    np.testing.assert_array_equal(first.out, last.out)
    assert first.stats == last.stats
    check(last, core.params, run, qkv, gqkv, stall_free=True)


# -- commands the core must refuse --------------------------------------------------------------

# before/after 2 (2-bit fields: 3 is representable), max_seq_len 20 (5 bits), max_dilation 2
# (2 bits), max_global_tokens 2 (2 bits): every out-of-range value fits in its field
BAD_CORE = Core(AttentionSpec(20, 4, 2, 2), HardwareConfig(2, 2, 20, max_global_tokens=2,
                                                           max_dilation=2))


def _payload(n=10, before=2, after=2, dilation=1, count=0, tokens=(0, 0)):
    return {"seq_len": n, "before": before, "after": after, "dilation": dilation,
            "global_count": count, "global_tokens": list(tokens)}


BAD_COMMANDS = {
    "seq_len-0": _payload(n=0),
    "seq_len-above-max": _payload(n=21),
    "seq_len-field-max": _payload(n=31),
    "before-above-window": _payload(before=3),
    "after-above-window": _payload(after=3),
    "dilation-0": _payload(dilation=0),
    "dilation-above-max": _payload(dilation=3),
    "global-count-above-max": _payload(count=3, tokens=(1, 2)),
    "global-position-eq-seq_len": _payload(count=1, tokens=(10, 0)),
    "global-position-above-seq_len": _payload(count=2, tokens=(3, 17)),
    "global-positions-equal": _payload(count=2, tokens=(4, 4)),
    "global-positions-decreasing": _payload(count=2, tokens=(5, 2)),
    "global-position-above-max": _payload(n=20, count=1, tokens=(31, 0)),
}


def _assert_refused(res, name, streams):
    assert isinstance(res, Rejected)
    assert res.error, f"{name}: error not set"
    assert not res.busy, f"{name}: the core started a run"
    assert res.taken == dict.fromkeys(res.taken, 0), f"{name}: beats taken {res.taken}"
    for s in streams:  # the next run's beats were on offer the whole time
        assert res.offered[s] == 12, f"{name}: nothing offered on {s}: {res.offered}"


@pytest.mark.parametrize("rate", [0.0, 0.4], ids=["stall-free", "gaps-stalls-40pc"])
def test_bad_commands_start_nothing(rate):
    """Every class of bad command sets ``error``, leaves ``busy`` low and takes no beat while
    the next run's beats are on offer on q, kv, qg and kvg; the good command after it runs
    bit-exact (and clears ``error``)."""
    core = BAD_CORE
    p = core.params
    good = pattern(core, 10, {"global_tokens": (3, 9)})
    items, expect = [], []
    for k, payload in enumerate(BAD_COMMANDS.values()):
        items.append(Reject(payload))
        # two refused commands in a row, then a good one
        if k % 3 == 2:
            qkv, gqkv = inputs(10, 4, core.fmt, k)
            items.append(CoreInput(*qkv, good, gqkv))
            expect.append((qkv, gqkv))
    qkv, gqkv = inputs(10, 4, core.fmt, 99)
    items.append(CoreInput(*qkv, good, gqkv))
    expect.append((qkv, gqkv))
    results = run_core_many(items, core.spec, core.fmt, core.hw, seed=3, gap=rate, stall=rate,
                            timeout=TIMEOUT)
    names = iter(BAD_COMMANDS)
    runs = iter(expect)
    for res in results:
        if isinstance(res, Rejected):
            name = next(names)
            # stall-free the producers offer a beat in every cycle
            _assert_refused(res, name, ["q", "kv", "qg", "kvg"] if rate == 0 else [])
        else:
            q_kv, g_qkv = next(runs)
            check(res, p, good, q_kv, g_qkv, stall_free=rate == 0)


def test_unused_global_slots_are_ignored():
    """Positions past ``global_count`` are ignored (any value, even out of range or not
    increasing): the command starts the run with the first ``global_count`` tokens."""
    core = BAD_CORE
    p = core.params
    run = pattern(core, 10, {"global_tokens": (7,)})
    items = []
    for k, garbage in enumerate([(7, 31), (7, 2), (7, 7)]):
        qkv, gqkv = inputs(10, 4, core.fmt, 4 + k)
        items.append(CoreInput(*qkv, run, gqkv, cmd=_payload(count=1, tokens=garbage)))
    qkv, gqkv = inputs(10, 4, core.fmt, 8)
    items.append(CoreInput(*qkv, run.replace(global_tokens=()), gqkv,
                           cmd=_payload(count=0, tokens=(25, 3))))
    results = run_core_many(items, core.spec, core.fmt, core.hw, timeout=TIMEOUT)
    for got, item in zip(results, items, strict=True):
        check(got, p, item.run, item[:3], item.global_qkv, stall_free=True)


def test_bad_commands_on_a_plain_core():
    """A core without global tokens or dilation: seq_len, before and after."""
    core = Core(AttentionSpec(12, 4, 1, 2), HardwareConfig(1, 4, 12))
    p = core.params
    fields = set(core_layouts(p)["cmd"].members)
    assert fields == {"seq_len", "before", "after"}
    qkv, _ = inputs(12, 4, core.fmt, 0)
    run = p.run_spec(12)
    bad = [{"seq_len": 0, "before": 1, "after": 2}, {"seq_len": 13, "before": 1, "after": 2},
           {"seq_len": 12, "before": 1, "after": 3}]
    items = [Reject(b) for b in bad] + [CoreInput(*qkv, run)]
    results = run_core_many(items, core.spec, core.fmt, core.hw, timeout=TIMEOUT)
    for res, b in zip(results[:-1], bad, strict=True):
        _assert_refused(res, str(b), ["q", "kv"])
    check(results[-1], p, run, qkv, None, stall_free=True)


# -- hypothesis: any core and patterns within its maxima ----------------------------------------
# 10 examples in the default tier, 25 under --runslow (tests/conftest.py);
# SWATKIT_PATTERN_EXAMPLES=N for a longer search

SHAPES = [(4, 1), (4, 2), (4, 4), (5, 1), (6, 2), (6, 3), (8, 2), (8, 4), (8, 8)]
FORMATS = [NumberFormat(), NumberFormat(data_bits=6, out_frac_bits=2, out_bits=8)]


@st.composite
def cores_and_runs(draw):
    d, dl = draw(st.sampled_from(SHAPES))
    before, after = draw(st.integers(0, 5)), draw(st.integers(0, 5))
    kl = draw(st.integers(1, min(4, before + after + 1)))
    hw = HardwareConfig(kl, dl, draw(st.integers(1, 24)),
                        max_global_tokens=draw(st.integers(0, 4)),
                        max_dilation=draw(st.integers(1, 4)))
    core = Core(AttentionSpec(hw.max_seq_len, d, before, after), hw,
                draw(st.sampled_from(FORMATS)))
    p = core.params
    runs = []
    for _ in range(draw(st.integers(1, 3))):
        n = draw(st.integers(1, hw.max_seq_len))
        tokens = draw(st.lists(st.integers(0, n - 1), unique=True,
                               max_size=min(p.max_global_tokens, n)))
        runs.append(p.run_spec(n, before=draw(st.integers(0, before)),
                               after=draw(st.integers(0, after)),
                               dilation=draw(st.integers(1, p.max_dilation)),
                               global_tokens=tuple(sorted(tokens))))
    rate = draw(st.sampled_from([0.0, 0.0, 0.3, 0.5]))
    return core, runs, rate, draw(st.integers(0, 2 ** 16))


EXAMPLES = int(os.environ.get("SWATKIT_PATTERN_EXAMPLES", "10"))


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cores_and_runs())
def test_hypothesis_patterns(drawn):
    core, runs, rate, seed = drawn
    print(core, runs, rate, seed)
    items = []
    for k, run in enumerate(runs):
        qkv, gqkv = inputs(run.seq_len, core.spec.head_dim, core.fmt, seed + k)
        items.append(CoreInput(*qkv, run, gqkv))
    results = run_core_many(items, core.spec, core.fmt, core.hw, seed=seed, gap=rate,
                            stall=rate, timeout=TIMEOUT)
    for got, item in zip(results, items, strict=True):
        check(got, core.params, item.run, (item.q, item.k, item.v), item.global_qkv,
              stall_free=rate == 0)


# -- software checks of a run's pattern -----------------------------------------------------------

def _message(exc_info):
    return str(exc_info.value)


P = CoreParams(AttentionSpec(24, 8, 3, 2), NumberFormat(),
               HardwareConfig(2, 4, 24, max_global_tokens=4, max_dilation=3))


@pytest.mark.parametrize(("changes", "message"), [
    ({"seq_len": 25}, "seq_len must be at most 24 on this core (generated for 24), not 25"),
    ({"before": 4}, "before must be at most 3 on this core (generated for 3), not 4"),
    ({"after": 3}, "after must be at most 2 on this core (generated for 2), not 3"),
    ({"dilation": 4}, "dilation must be at most 3 on this core (generated for 3), not 4"),
    ({"global_tokens": (0, 1, 2, 3, 4)},
     "global tokens must be at most 4 on this core (generated for 4), not 5"),
    ({"head_dim": 4}, "head_dim must be 8 on this core, not 4"),
])
def test_check_run_names_the_field(changes, message):
    run = P.spec.replace(**changes)
    with pytest.raises(ValueError) as e:
        P.check_run(run)
    assert _message(e) == message
    seq_len = changes.pop("seq_len", None)
    with pytest.raises(ValueError) as e:
        P.run_spec(seq_len, **changes)
    assert _message(e) == message


@pytest.mark.parametrize(("changes", "message"), [
    ({"seq_len": 0}, "seq_len must be a positive integer, not 0"),
    ({"dilation": 0}, "dilation must be a positive integer, not 0"),
    ({"before": -1}, "before must be a non-negative integer, not -1"),
    ({"global_tokens": (3, 24)}, "global token 24 is outside the sequence [0, 24)"),
    ({"global_tokens": (-1,)}, "global token -1 is outside the sequence [0, 24)"),
    ({"global_tokens": (3, 3)}, "global_tokens must be sorted and distinct, not (3, 3)"),
    ({"global_tokens": (5, 2)}, "global_tokens must be sorted and distinct, not (5, 2)"),
])
def test_run_spec_refuses_bad_patterns(changes, message):
    seq_len = changes.pop("seq_len", 24)
    with pytest.raises(ValueError) as e:
        P.run_spec(seq_len, **changes)
    assert _message(e) == message


def test_check_run_type_and_good_patterns():
    with pytest.raises(TypeError, match="a run's pattern must be an AttentionSpec"):
        P.check_run({"seq_len": 4})
    # the maxima themselves are fine, and so is every smaller value
    P.run_spec(24, before=3, after=2, dilation=3, global_tokens=(0, 1, 22, 23))
    P.run_spec(1, before=0, after=0, dilation=1, global_tokens=(0,))
    with pytest.raises(ValueError, match="the run's pattern has seq_len 5, not 6"):
        swat_cycles(P, 6, run=P.run_spec(5))


@pytest.mark.parametrize(("field", "value", "message"), [
    ("max_dilation", 0, "max_dilation must be an integer in 1..64, not 0"),
    ("max_dilation", 65, "max_dilation must be an integer in 1..64, not 65"),
    ("max_global_tokens", -1, "max_global_tokens must be an integer in 0..256, not -1"),
    ("max_global_tokens", 257, "max_global_tokens must be an integer in 0..256, not 257"),
])
def test_hardware_config_maxima(field, value, message):
    with pytest.raises(ValueError) as e:
        HardwareConfig(**{field: value})
    assert _message(e) == message


@pytest.mark.parametrize("field", ["max_dilation", "max_global_tokens"])
@pytest.mark.parametrize("value", [True, 2.0, "2", None])
def test_hardware_config_maxima_types(field, value):
    with pytest.raises(TypeError, match=re.escape(f"{field} must be an integer, not {value!r}")):
        HardwareConfig(**{field: value})


def test_maxima_from_the_spec_and_the_command_fields():
    hw = HardwareConfig(2, 2, 16)
    p = CoreParams(AttentionSpec(16, 4, 2, 2, dilation=3, global_tokens=(0, 5)),
                   NumberFormat(), hw)
    assert (p.max_dilation, p.max_global_tokens) == (3, 2)
    # hardware maxima above the spec's stay
    p2 = CoreParams(p.spec, NumberFormat(), hw.replace(max_dilation=5, max_global_tokens=4))
    assert (p2.max_dilation, p2.max_global_tokens) == (5, 4)
    cmd = core_layouts(p)["cmd"]
    assert set(cmd.members) == {"seq_len", "before", "after", "dilation", "global_count",
                                "global_tokens"}
    assert command(p, p.run_spec(9, global_tokens=(8,))) == {
        "seq_len": 9, "before": 2, "after": 2, "dilation": 3, "global_count": 1,
        "global_tokens": [8, 0]}
    plain = CoreParams(AttentionSpec(16, 4, 2, 2), NumberFormat(), hw)
    assert set(core_layouts(plain)["cmd"].members) == {"seq_len", "before", "after"}
    assert (plain.max_dilation, plain.max_global_tokens) == (1, 0)
    # a pattern beyond a plain core's maxima
    with pytest.raises(ValueError, match="dilation must be at most 1 on this core"):
        plain.run_spec(16, dilation=2)
    with pytest.raises(ValueError, match="global tokens must be at most 0 on this core"):
        plain.run_spec(16, global_tokens=(3,))
