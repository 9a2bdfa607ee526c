"""Decode (docs/rtl.md, "Decode"): a run that continues a sequence. A decode core's command
either starts a sequence or continues it by n rows (``cont``); the K/V ring, the sink columns and
the position carry over, and the rows of any split of a sequence (a prefill, then single-row
steps or chunks) equal the same rows of one run (``sequence_runs`` of
``fixed_point_attention``), in Amaranth's simulator under gaps and stalls. The cycle model and
the action counts are exact for a continue; the core refuses a continue it cannot compute."""

import numpy as np
import pytest

from swatkit.golden import AttentionSpec, NumberFormat, fixed_point_attention, sequence_runs
from swatkit.golden.checks import ConfigTypeError, ConfigValueError
from swatkit.rtl import HardwareConfig
from swatkit.rtl.config import CoreParams, LimitError
from swatkit.rtl.core import command, core_layouts
from swatkit.sim.amaranth_core import (
    CoreInput,
    Reject,
    ResetCore,
    check_results,
    run_core_many,
)
from swatkit.sim.cycle_model import swat_actions, swat_cycles


def _inputs(rng, g, n, d):
    return (rng.integers(-128, 128, (g, n, d)), rng.integers(-128, 128, (n, d)),
            rng.integers(-128, 128, (n, d)))


def _items(q, k, v, spec, lengths, sinks=None):
    """One start, then continues: the runs of a sequence split into ``lengths`` rows."""
    items, a = [], 0
    g = q.shape[0]
    for n in lengths:
        b = a + n
        items.append(CoreInput(q[:, a:b] if g > 1 else q[0, a:b], k[a:b], v[a:b],
                               spec.replace(seq_len=b), cont=a > 0, sinks=sinks))
        a = b
    return items


# (heads, before, dilation, sinks, learned sink logits, head_dim, key_lanes, dim_lanes,
# lengths): a causal window; with sinks (the prefill shorter than the window); dilated (the
# ring's residue classes carry over); a grouped core; learned sink logits; one key lane
SPLITS = [(1, 5, 1, 0, False, 4, 2, 2, [7, 1, 1, 1, 5, 9]),
          (1, 6, 1, 3, False, 4, 2, 2, [3, 1, 1, 8, 1, 6]),
          (1, 3, 3, 2, False, 4, 1, 4, [4, 1, 1, 1, 1, 1, 1, 12]),
          (3, 4, 1, 2, False, 4, 2, 2, [5, 1, 1, 13]),
          (2, 6, 1, 0, True, 8, 3, 4, [9, 1, 1, 10]),
          (1, 9, 2, 4, False, 8, 4, 2, [30, 1, 1, 1, 2])]


@pytest.mark.by_turns("gap")
@pytest.mark.parametrize("shape", SPLITS, ids=lambda s: f"g{s[0]}-b{s[1]}x{s[2]}-s{s[3]}"
                                                        f"{'-logits' if s[4] else ''}")
@pytest.mark.parametrize("gap", [0.0, 0.3])
def test_a_split_sequence_equals_one_run_and_the_cycle_model_is_exact(shape, gap):
    g, before, dil, sinks, logits, d, kl, dl, lengths = shape
    n = sum(lengths)
    seed = 7 * n + before
    print(f"seed {seed}, gaps and stalls {gap}")
    rng = np.random.default_rng(seed)
    spec = AttentionSpec(n, d, before, 0, dilation=dil, sink_tokens=sinks)
    q, k, v = _inputs(rng, g, n, d)
    z = rng.uniform(-2, 2, g) if logits else None
    want = fixed_point_attention(q, k[None], v[None], spec, sink_logits=z).out
    hw = HardwareConfig(kl, dl, max_seq_len=n + 5, max_dilation=dil)
    p = CoreParams(spec, NumberFormat(), hw, g, 1, logits, contexts=1)
    sigma = tuple(NumberFormat().sink_scores(z, d)) if logits else None
    got = run_core_many(_items(q, k, v, spec, lengths, sigma), p, seed=seed, gap=gap,
                        stall=gap)
    runs = sequence_runs(want, lengths)
    check_results(got, [r if g > 1 else r[0] for r in runs], refused=0)
    # the rows are not trivial: they spread, and a continue that lost its ring would differ
    assert np.ptp(want) > 0
    end = 0
    for n_rows, result in zip(lengths, got, strict=True):
        end += n_rows
        run = spec.replace(seq_len=end)
        actions = swat_actions(p, run, end - n_rows)
        assert {name: result.stats[name] for name in actions} == actions
        if not gap:
            assert result.stats["cycles"] == swat_cycles(p, end, run=run,
                                                         first_row=end - n_rows).cycles


def test_continues_the_core_refuses_take_nothing():
    """A continue with no sequence, past max_seq_len, with another pattern (before, sink
    count) than the sequence's, on a sequence that looks ahead (after > 0), or after a reset
    (ctx_valid then reads 0) is refused: ``error``, never busy, no beat taken; the sequence
    goes on after each refusal but the reset, and a refused start keeps it."""
    d, n = 4, 30
    spec = AttentionSpec(n, d, 5, 2, sink_tokens=2)
    hw = HardwareConfig(2, 2, max_seq_len=n)
    p = CoreParams(spec, NumberFormat(), hw, contexts=1)
    assert "cont" in core_layouts(p)["cmd"].members
    causal = spec.replace(after=0)
    rng = np.random.default_rng(3)
    q, k, v = _inputs(rng, 1, n, d)
    want = fixed_point_attention(q[0], k, v, causal).out
    look = fixed_point_attention(q[0, :6], k[:6], v[:6], spec.replace(seq_len=6)).out

    def cont(rows, **change):
        return Reject(command(p, causal.replace(**change), seq_len=rows, cont=True))

    # (with no sequence, the pattern registers hold 0s: a continue with that pattern is
    # refused for the context alone)
    empty = {"before": 0, "sink_tokens": 0}
    items = [cont(1, **empty),                                      # no sequence yet
             *_items(q, k, v, causal.replace(seq_len=10), [8, 1]),  # rows 0 … 8
             cont(n - 9 + 1),                                      # past max_seq_len
             cont(1, before=4), cont(1, sink_tokens=1),            # another pattern
             Reject({**command(p, seq_len=5), "sink_count": 3}),   # a refused start
             *_items(q, k, v, causal.replace(seq_len=12), [9, 3])[1:],   # rows 9 … 11
             ResetCore(), cont(1, **empty),                        # the context is gone
             CoreInput(q[0, :6], k[:6], v[:6], spec.replace(seq_len=6)),   # after = 2
             cont(1, after=2), cont(1)]                            # it cannot continue
    got = run_core_many(items, p, seed=4, gap=0.2, stall=0.2)
    check_results(got, [want[:8], want[8:9], want[9:12], look], refused=8)
    valid = [r.ctx_valid for r in got if hasattr(r, "ctx_valid")]
    assert valid == [False, True, True, True, True, False, True, True]


def test_a_continue_with_other_sink_logits_is_refused():
    d, n = 4, 12
    spec = AttentionSpec(n, d, 3, 0)
    p = CoreParams(spec, NumberFormat(), HardwareConfig(1, 2, max_seq_len=n), 2, 1, True, 1)
    rng = np.random.default_rng(8)
    q, k, v = _inputs(rng, 2, n, d)
    z = np.array([0.7, -1.2])
    sigma = tuple(int(x) for x in NumberFormat().sink_scores(z, d))
    want = fixed_point_attention(q, k[None], v[None], spec, sink_logits=z).out
    items = _items(q, k, v, spec.replace(seq_len=6), [5, 1], sigma)
    bad = [Reject(command(p, spec, seq_len=1, sink_scores=s, cont=True))
           for s in [(sigma[0], sigma[1] + 1), None]]
    got = run_core_many([items[0], *bad, items[1]], p, seed=2)
    check_results(got, [w for w in sequence_runs(want[:, :6], [5, 1])], refused=2)


def test_decode_configuration_is_checked():
    spec, fmt, hw = AttentionSpec(64, 8, 7, 0), NumberFormat(), HardwareConfig(2, 4)
    with pytest.raises(ConfigValueError, match=r"^contexts must be 0 on a core with global "
                                               r"tokens or BigBird blocks \(a global row "
                                               r"attends the whole sequence, which a continued "
                                               r"run has not seen\), not 1$") as info:
        CoreParams(spec.replace(after=7, global_tokens=(3,)), fmt, hw, contexts=1)
    assert info.value.field == "contexts"
    with pytest.raises(ConfigValueError, match=r"^contexts must be 0 on a core with global"):
        CoreParams(AttentionSpec(64, 8, 0, 0, block_size=8), fmt, hw, contexts=1)
    with pytest.raises(LimitError, match=r"^contexts must be at most 256 \(records of the "
                                         r"context store, a memory read in the cycle a command "
                                         r"is taken\), not 257$"):
        CoreParams(spec, fmt, hw, contexts=257)
    with pytest.raises(ConfigTypeError, match=r"^contexts must be an integer, not True$"):
        CoreParams(spec, fmt, hw, contexts=True)
    with pytest.raises(ConfigValueError, match=r"^contexts must be a non-negative integer, "
                                               r"not -1$"):
        CoreParams(spec, fmt, hw, contexts=-1)
    plain, dec = CoreParams(spec, fmt, hw), CoreParams(spec, fmt, hw, contexts=1)
    with pytest.raises(ValueError, match=r"^cont needs a decode core \(contexts >= 1\)$"):
        command(plain, cont=True)
    with pytest.raises(ConfigValueError, match=r"^this core does not continue sequences "
                                               r"\(generated without decode: contexts 0\)$"):
        plain.check_continue(spec, 1)
    with pytest.raises(ConfigValueError, match=r"^after must be 0 in a continued sequence "
                                               r"\(its keys after a row have not arrived\), "
                                               r"not 3$"):
        CoreParams(spec.replace(after=3), fmt, hw, contexts=1).check_continue(
            spec.replace(after=3), 1)
    with pytest.raises(ConfigValueError, match=r"^rows must be fewer than the sequence's 64 "
                                               r"\(a continue follows a start\), not 64$"):
        dec.check_continue(spec, 64)
    with pytest.raises(ConfigValueError, match=r"^seq_len must be at most 4096 on this core"):
        dec.check_continue(spec.replace(seq_len=4097), 1)
    # a core without decode has no cont field; one with it says so, and stores its contexts
    assert "cont" not in core_layouts(plain)["cmd"].members
    assert dec.describe().endswith(", decode (1 context)")
    assert CoreParams.from_dict(dec.as_dict()) == dec


def test_max_seq_len_bounds_positions_not_the_ring():
    """GPT-OSS's 131,072-token context: the counters widen, the K/V ring stays the window's."""
    spec = AttentionSpec(1024, 64, 127, 0, sink_tokens=0)
    fmt = NumberFormat()
    small, long = (CoreParams(spec, fmt, HardwareConfig(8, 8, max_seq_len=m), 64, 8, True, 1)
                   for m in (1024, 131072))
    assert long.resources() == small.resources()
    assert long.kv_depth == small.kv_depth and long.index_bits > small.index_bits


def test_sequence_runs_are_slices_of_one_run():
    out = np.arange(2 * 10 * 3).reshape(2, 10, 3)
    parts = sequence_runs(out, [4, 1, 5])
    np.testing.assert_array_equal(np.concatenate(parts, axis=1), out)
    assert [x.shape[1] for x in parts] == [4, 1, 5]
    with pytest.raises(ConfigValueError, match=r"^lengths must add up to the sequence's 10 "
                                               r"rows, not 5$"):
        sequence_runs(out, [4, 1])
    with pytest.raises(ConfigValueError, match=r"^lengths must be a positive integer, not 0$"):
        sequence_runs(out, [10, 0])


def test_a_start_replaces_the_sequence_it_follows():
    """A start on a context that holds a sequence begins a new one (new rows, another window
    and sink count): its continues see only the new sequence's keys."""
    d = 4
    spec = AttentionSpec(40, d, 6, 0, sink_tokens=3)
    p = CoreParams(spec, NumberFormat(), HardwareConfig(2, 2, max_seq_len=40), contexts=1)
    rng = np.random.default_rng(11)
    first, second = _inputs(rng, 1, 14, d), _inputs(rng, 1, 12, d)
    seq1, seq2 = spec.replace(seq_len=14), spec.replace(seq_len=12, before=4, sink_tokens=2)
    want1 = fixed_point_attention(first[0][0], first[1], first[2], seq1).out
    want2 = fixed_point_attention(second[0][0], second[1], second[2], seq2).out
    items = [*_items(*first, seq1, [10, 1, 3]), *_items(*second, seq2, [5, 1, 1, 5])]
    got = run_core_many(items, p, seed=12, gap=0.25, stall=0.25)
    check_results(got, [*sequence_runs(want1, [10, 1, 3]), *sequence_runs(want2, [5, 1, 1, 5])],
                  refused=0)
