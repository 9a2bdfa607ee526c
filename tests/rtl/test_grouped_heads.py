"""Grouped query heads (docs/rtl.md, "Grouped query heads"): a core generated for g query heads
per K/V head runs one K/V head and its g query heads per run, bit-exact to
``fixed_point_attention`` with q (g, N, d) on k, v (1, N, d); the cycle model stays exact; the
configuration, its options and their refusals."""

import json
import subprocess
import sys

import numpy as np
import pytest

from swatkit.golden import AttentionSpec, NumberFormat, fixed_point_attention
from swatkit.rtl import HardwareConfig
from swatkit.rtl.config import CoreParams
from swatkit.rtl.core import command
from swatkit.sim.amaranth_core import CoreInput, Reject, check_results, run_core, run_core_many
from swatkit.sim.cycle_model import swat_actions, swat_cycles


def _inputs(rng, g, n, d, bits=8):
    lo, hi = -(1 << (bits - 1)), 1 << (bits - 1)
    return (rng.integers(lo, hi, (g, n, d)), rng.integers(lo, hi, (1, n, d)),
            rng.integers(lo, hi, (1, n, d)))


# (heads, kv_heads, N, before, after, head_dim, key_lanes, dim_lanes): causal and
# bidirectional, a row of one cycle (G = 1), one key lane, a ring that fills up (a small window
# on three lanes), g not a power of two
SHAPES = [(4, 1, 20, 3, 0, 4, 2, 2), (6, 2, 17, 2, 2, 8, 3, 4), (2, 1, 25, 0, 0, 4, 1, 4),
          (8, 1, 12, 5, 0, 8, 2, 8), (3, 1, 30, 1, 1, 4, 3, 2)]


@pytest.mark.by_turns("gap")
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: f"h{s[0]}k{s[1]}-n{s[2]}-{s[3]}+{s[4]}")
@pytest.mark.parametrize("gap", [0.0, 0.35])
def test_grouped_core_is_bit_exact_and_the_cycle_model_exact(shape, gap):
    heads, kv_heads, n, before, after, d, kl, dl = shape
    g = heads // kv_heads
    seed = 1000 * g + n
    print(f"seed {seed}, gaps and stalls {gap}")
    rng = np.random.default_rng(seed)
    spec = AttentionSpec(n, d, before, after)
    q, k, v = _inputs(rng, g, n, d)
    want = fixed_point_attention(q, k, v, spec).out
    assert want.shape == (g, n, d) and np.ptp(want) > 0
    hw = HardwareConfig(kl, dl, max_seq_len=n)
    got = run_core(q, k[0], v[0], spec, hw=hw, heads=heads, kv_heads=kv_heads, seed=seed,
                   gap=gap, stall=gap)
    np.testing.assert_array_equal(got.out, want)
    p = CoreParams(spec, NumberFormat(), hw, heads, kv_heads)
    actions = swat_actions(p, spec)
    assert {name: got.stats[name] for name in actions} == actions
    assert actions["kv_rows"] == n and actions["q_rows"] == actions["rows_out"] == g * n
    if not gap:   # the cycle model is exact for stall-free streams
        assert got.stats["cycles"] == swat_cycles(p, n).cycles


def test_grouped_runs_back_to_back_with_patterns_and_refusals():
    """Runs of other windows and dilations on one grouped core, and commands it refuses (they
    start nothing and take no beat)."""
    rng = np.random.default_rng(7)
    spec = AttentionSpec(40, 4, 3, 1)
    hw = HardwareConfig(2, 2, max_seq_len=40, max_dilation=3)
    p = CoreParams(spec, NumberFormat(), hw, 6, 2)
    runs = [spec.replace(dilation=2), spec.replace(seq_len=9, after=0, dilation=3),
            spec.replace(seq_len=1)]
    items, wants = [], []
    for run in runs:
        q, k, v = _inputs(rng, 3, run.seq_len, 4)
        wants.append(fixed_point_attention(q, k, v, run).out)
        items.append(CoreInput(q, k[0], v[0], run))
    items.insert(1, Reject({**command(p, seq_len=5), "seq_len": 0}))
    items.insert(2, Reject({**command(p, seq_len=5), "seq_len": 41}))
    out = run_core_many(items, spec, hw=hw, heads=6, kv_heads=2, seed=3, gap=0.2, stall=0.2)
    check_results(out, wants, refused=2)


def test_cycle_model_skips_periodic_positions_exactly():
    """The periodic jump (by positions, g rows each) gives the cycles of the full recurrence;
    the GPT-OSS sliding group (window 128, head_dim 64, 8 query heads on 1) keeps its MACs
    busy."""
    for n, before, after, d, kl, dl, g in [(3000, 127, 0, 64, 8, 8, 8), (2000, 4, 4, 8, 2, 4, 4),
                                           (2000, 1, 1, 4, 3, 4, 2), (3000, 0, 0, 4, 1, 2, 5)]:
        p = CoreParams(AttentionSpec(n, d, before, after), NumberFormat(),
                       HardwareConfig(kl, dl, n), g, 1)
        fast, full = swat_cycles(p, n), swat_cycles(p, n, skip_periodic=False)
        assert fast.cycles == full.cycles and fast.rows_simulated < full.rows_simulated
    gpt_oss = CoreParams(AttentionSpec.causal(1024, 64, sliding_window=128), NumberFormat(),
                         HardwareConfig(max_seq_len=1024), heads=8, kv_heads=1)
    est = swat_cycles(gpt_oss, 1024)
    one = CoreParams(gpt_oss.spec, gpt_oss.fmt, gpt_oss.hw)
    assert est.ideal == 8 * one.ideal_cycles(1024)
    assert 1.0 <= est.ratio < 1.01


def test_core_params_refuses_bad_groups():
    spec, fmt, hw = AttentionSpec(64, 8, 3, 0), NumberFormat(), HardwareConfig(2, 2, 64)
    cases = [((6, 4), ValueError, r"^heads must be a multiple of kv_heads \(4\), not 6$"),
             ((0, 1), ValueError, r"^heads must be an integer in 1\.\.1024, not 0$"),
             ((8, 0), ValueError, r"^kv_heads must be an integer in 1\.\.1024, not 0$"),
             ((8.0, 1), TypeError, r"^heads must be an integer, not 8\.0$")]
    for (h, k), kind, message in cases:
        with pytest.raises(kind, match=message):
            CoreParams(spec, fmt, hw, h, k)
    with pytest.raises(ValueError, match=r"^heads must equal kv_heads on a core with global "
                                         r"tokens \(Longformer's global rows run one query "
                                         r"head per K/V head\), not 8 on 1$"):
        CoreParams(spec.replace(global_tokens=(0,)), fmt, hw, 8, 1)
    with pytest.raises(ValueError, match=r"^heads must equal kv_heads on a block-sparse "
                                         r"\(BigBird\) core \(it runs one query head per K/V "
                                         r"head\), not 4 on 2$"):
        CoreParams(AttentionSpec.bigbird(64, 8, 8, 1), fmt, hw, 4, 2)


def test_grouped_params_round_trip_and_show_their_heads():
    p = CoreParams(AttentionSpec.causal(1024, 64, sliding_window=128), NumberFormat(),
                   HardwareConfig(max_seq_len=1024), heads=64, kv_heads=8)
    record = json.loads(json.dumps(p.as_dict()))
    assert record["heads"] == {"heads": 64, "kv_heads": 8}
    assert CoreParams.from_dict(record) == p
    tables = p.config_tables()
    assert (tables["spec"]["heads"], tables["spec"]["kv_heads"]) == (64, 8)
    # one head on one: the records are those of a core without the fields
    one = CoreParams(p.spec, p.fmt, p.hw)
    assert "heads" not in one.as_dict() and "heads" not in one.config_tables()["spec"]
    # counters hold the g·N rows of a run
    assert p.index_bits == 14 and one.index_bits == 11


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "swatkit.cli", *args], capture_output=True,
                          text=True)


@pytest.mark.parametrize("args, message", [
    (["--heads", "6", "--kv-heads", "4"], "--heads must be a multiple of --kv-heads (4), not 6"),
    (["--kv-heads", "0"], "--kv-heads must be an integer in 1..1024, not 0"),
    (["--heads", "8", "--global-tokens", "0"],
     "--heads must equal --kv-heads on a core with global tokens (Longformer's global rows run "
     "one query head per K/V head), not 8 on 1"),
])
def test_generate_refuses_bad_groups_in_one_line(args, message):
    done = _cli("generate", *args, "--print-config")
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr == f"swatkit: error: {message}\n"


def test_print_config_shows_the_group_and_estimate_takes_it(tmp_path):
    done = _cli("generate", "--causal", "--sliding-window", "128", "--heads", "8",
                "--kv-heads", "2", "--print-config")
    assert done.returncode == 0
    assert "\nheads = 8\nkv_heads = 2\n" in done.stdout
    config = tmp_path / "g.toml"
    config.write_text(done.stdout)
    again = _cli("generate", "--config", str(config), "--print-config")
    assert again.returncode == 0 and again.stdout == done.stdout
    # estimate takes the group from the file: one layer of 8 query heads on 2 K/V heads
    done = _cli("estimate", "--config", str(config), "--seq-len", "1024", "--dataflow", "swat")
    assert done.returncode == 0, done.stderr
    assert "head group: 1 layers, 8 heads (2 K/V)" in done.stdout
