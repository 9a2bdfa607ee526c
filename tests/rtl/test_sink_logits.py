"""Learned sink logits (GPT-OSS; docs/rtl.md, "Learned sink logits"): a core generated with
``sink_logits`` takes one sink score per query head on each run's command, joins it to the row
max and to l (not to acc), bit-exact to ``fixed_point_attention(..., sink_logits=z)``; a score
outside the scores' range is refused by the core; the options."""

import subprocess
import sys

import numpy as np
import pytest

from swatkit.golden import AttentionSpec, NumberFormat, fixed_point_attention
from swatkit.rtl import HardwareConfig
from swatkit.rtl.config import CoreParams
from swatkit.rtl.core import command, core_layouts
from swatkit.sim.amaranth_core import CoreInput, Reject, check_results, run_core, run_core_many
from swatkit.sim.cycle_model import swat_cycles

FMT = NumberFormat()


def _draw(rng, g, n, d):
    """Inputs of g query heads on one K/V head, and sink logits on the score grid in a sixth
    of the scores' range (the size of a row's larger scores: the sink changes rows)."""
    lo, hi = FMT.score_range(d)
    sigma = rng.integers(lo // 6, hi // 6 + 1, g)
    return (rng.integers(-128, 128, (g, n, d)), rng.integers(-128, 128, (1, n, d)),
            rng.integers(-128, 128, (1, n, d)), sigma, sigma * FMT.score_unit(d))


# (heads, N, before, after, sinks, head_dim, key_lanes, dim_lanes): one head, causal groups,
# bidirectional with sink tokens, one key lane
SHAPES = [(1, 20, 5, 0, 0, 8, 2, 4), (4, 25, 6, 0, 0, 8, 2, 4), (3, 20, 2, 2, 2, 4, 3, 1),
          (8, 16, 15, 0, 0, 16, 2, 8), (2, 9, 0, 0, 0, 4, 1, 4)]


@pytest.mark.by_turns("gap")
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: f"g{s[0]}-n{s[1]}-{s[2]}+{s[3]}-s{s[4]}")
@pytest.mark.parametrize("gap", [0.0, 0.35])
def test_sink_logits_are_bit_exact(shape, gap):
    g, n, before, after, sinks, d, kl, dl = shape
    seed = 10 * n + g
    print(f"seed {seed}, gaps and stalls {gap}")
    rng = np.random.default_rng(seed)
    spec = AttentionSpec(n, d, before, after, sink_tokens=sinks)
    q, k, v, sigma, z = _draw(rng, g, n, d)
    np.testing.assert_array_equal(FMT.sink_scores(z, d), sigma)
    want = fixed_point_attention(q, k, v, spec, sink_logits=z).out
    assert not np.array_equal(want, fixed_point_attention(q, k, v, spec).out)
    hw = HardwareConfig(kl, dl, max_seq_len=n)
    got = run_core(q if g > 1 else q[0], k[0], v[0], spec, hw=hw, heads=g, seed=seed, gap=gap,
                   stall=gap, sinks=tuple(sigma))
    np.testing.assert_array_equal(got.out if g > 1 else got.out[None], want)
    if not gap:   # the sink's exp runs beside the lanes': the schedule is unchanged
        p = CoreParams(spec, FMT, hw, g, 1, True)
        assert got.stats["cycles"] == swat_cycles(p, n).cycles


def test_runs_with_and_without_sinks_and_refused_scores():
    """Sinks per run (other values, none) on one core; a sink score outside the scores' range
    starts nothing and takes no beat."""
    rng = np.random.default_rng(3)
    d, g = 8, 2
    spec = AttentionSpec(24, d, 4, 0)
    hw = HardwareConfig(2, 4, max_seq_len=24)
    p = CoreParams(spec, FMT, hw, g, 1, True)
    assert {"sink_on", "sink_scores"} <= set(core_layouts(p)["cmd"].members)
    lo, hi = FMT.score_range(d)
    items, wants = [], []
    for n, with_sinks in ((24, True), (10, False), (5, True)):
        run = spec.replace(seq_len=n)
        q, k, v, sigma, z = _draw(rng, g, n, d)
        wants.append(fixed_point_attention(q, k, v, run, sink_logits=z if with_sinks else None)
                     .out)
        items.append(CoreInput(q, k[0], v[0], run, sinks=tuple(sigma) if with_sinks else None))
    items.insert(1, Reject(command(p, spec.replace(seq_len=5), sink_scores=(0, hi + 1))))
    items.insert(2, Reject(command(p, spec.replace(seq_len=5), sink_scores=(lo - 1, 0))))
    out = run_core_many(items, spec, hw=hw, heads=g, sink_logits=True, seed=4, gap=0.2,
                        stall=0.2)
    check_results(out, wants, refused=2)


def test_sink_logit_params_and_refusals():
    hw = HardwareConfig(2, 2, 64)
    p = CoreParams(AttentionSpec(64, 8, 3, 0), FMT, hw, 8, 1, True)
    assert p.widths == FMT.widths(8, p.max_keys, sink=True)
    assert CoreParams.from_dict(p.as_dict()) == p
    assert p.config_tables()["spec"]["sink_logits"] is True
    one = CoreParams(p.spec, FMT, hw, 8, 1)   # the sink's exp unit and its table
    assert p.resources()["exp_multipliers"] == one.resources()["exp_multipliers"] + 1 == 3
    assert p.resources()["exp_table_bits"] == 3 * 2 ** FMT.exp_frac_bits * FMT.prob_bits
    with pytest.raises(TypeError, match=r"^sink_logits must be True or False, not 1$"):
        CoreParams(AttentionSpec(64, 8, 3, 0), FMT, hw, 1, 1, 1)
    with pytest.raises(ValueError, match=r"^sink_logits needs a token-band core without global "
                                         r"tokens \(the global-row engine has no sink logit\)$"):
        CoreParams(AttentionSpec(64, 8, 3, 3, global_tokens=(0,)), FMT, hw, 1, 1, True)


def test_options_take_sink_logits_on_core_commands_only():
    done = subprocess.run([sys.executable, "-m", "swatkit.cli", "generate", "--causal",
                           "--sliding-window", "128", "--heads", "64", "--kv-heads", "8",
                           "--sink-logits", "--print-config"], capture_output=True, text=True)
    assert done.returncode == 0 and "\nsink_logits = true\n" in done.stdout
    # (the AXI4-Stream form carries the sink scores in the command's tdata: tests/rtl/test_axis)
    done = subprocess.run([sys.executable, "-m", "swatkit.cli", "generate", "--sink-logits",
                           "--interface", "axis", "--print-config"], capture_output=True,
                          text=True)
    assert done.returncode == 0 and "\nsink_logits = true\n" in done.stdout
    assert "\ninterface = \"axis\"\n" in done.stdout


GROUP = ["--causal", "--sliding-window", "8", "--head-dim", "8", "--key-lanes", "2",
         "--dim-lanes", "4", "--heads", "4", "--kv-heads", "2", "--seq-len", "100"]


@pytest.mark.parametrize("value, message", [
    ("1,2,3", "--sink-logits gives 3 values; the group has 2 query heads (--heads / --kv-heads)"),
    ("1,nan", "--sink-logits must be finite real numbers, not [1.0, nan]"),
    ("1,1e9", "--sink-logits: sink logit 1e+09 (head 1) is outside the scores' range "
              "[-44.9013, 45.2548] of this format (head_dim 8)"),
    ("a,b", "argument --sink-logits: must be comma-separated real numbers, not 'a,b'"),
])
def test_regress_refuses_bad_sink_logits_before_any_build(value, message, tmp_path):
    done = subprocess.run([sys.executable, "-m", "swatkit.cli", "regress", *GROUP,
                           "--sink-logits", value, "-n", "0", "--build-dir", str(tmp_path),
                           "--junitxml", str(tmp_path / "r.xml")], capture_output=True,
                          text=True)
    assert done.returncode == 2
    assert done.stderr.splitlines()[-1] == f"swatkit: error: {message}"
    assert not any(tmp_path.iterdir())   # nothing built, nothing written


def test_generate_takes_no_sink_values():
    done = subprocess.run([sys.executable, "-m", "swatkit.cli", "generate", "--sink-logits",
                           "1,2", "--print-config"], capture_output=True, text=True)
    assert done.returncode == 2
    assert done.stderr == ("swatkit: error: --sink-logits takes values only in swatkit regress "
                           "(the core takes them at run time, on each command)\n")
