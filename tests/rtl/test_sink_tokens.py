"""Sink tokens (StreamingLLM; docs/rtl.md, "Sink tokens"): the first S positions are resident
key-only columns every row sees, within causality — the global-column mechanism without global
rows. Bit-exact to ``fixed_point_attention`` with ``sink_tokens=S`` in Amaranth's simulator, the
cycle model exact, the command's sink count checked by the core."""

import subprocess
import sys

import numpy as np
import pytest

from swatkit.golden import AttentionSpec, NumberFormat, fixed_point_attention
from swatkit.rtl import HardwareConfig
from swatkit.rtl.config import CoreParams, LimitError
from swatkit.rtl.core import command, core_layouts
from swatkit.sim.amaranth_core import CoreInput, Reject, check_results, run_core, run_core_many
from swatkit.sim.cycle_model import swat_actions, swat_cycles


def _inputs(rng, g, n, d):
    return (rng.integers(-128, 128, (g, n, d)), rng.integers(-128, 128, (1, n, d)),
            rng.integers(-128, 128, (1, n, d)))


# (heads, N, before, after, dilation, S, head_dim, key_lanes, dim_lanes): causal (rows below S
# see fewer sinks), bidirectional, every row a sink (S = N), dilated, on a grouped core, a
# window inside the sinks
SHAPES = [(1, 20, 5, 0, 1, 3, 4, 2, 2), (1, 30, 4, 4, 1, 4, 8, 3, 4), (1, 6, 1, 1, 1, 6, 4, 1, 4),
          (1, 40, 3, 0, 2, 5, 4, 3, 2), (4, 25, 6, 0, 1, 4, 4, 2, 2), (3, 16, 1, 0, 1, 8, 4, 2, 2)]


@pytest.mark.by_turns("gap")
@pytest.mark.parametrize("shape", SHAPES,
                         ids=lambda s: f"g{s[0]}-n{s[1]}-{s[2]}+{s[3]}x{s[4]}-s{s[5]}")
@pytest.mark.parametrize("gap", [0.0, 0.35])
def test_sink_core_is_bit_exact_and_the_cycle_model_exact(shape, gap):
    g, n, before, after, dil, sinks, d, kl, dl = shape
    seed = 100 * sinks + n
    print(f"seed {seed}, gaps and stalls {gap}")
    rng = np.random.default_rng(seed)
    spec = AttentionSpec(n, d, before, after, dilation=dil, sink_tokens=sinks)
    q, k, v = _inputs(rng, g, n, d)
    want = fixed_point_attention(q, k, v, spec).out
    # the sinks matter: without them the rows differ
    assert not np.array_equal(want, fixed_point_attention(q, k, v, spec.replace(
        sink_tokens=0)).out)
    hw = HardwareConfig(kl, dl, max_seq_len=n, max_dilation=dil)
    got = run_core(q if g > 1 else q[0], k[0], v[0], spec, hw=hw, heads=g, seed=seed, gap=gap,
                   stall=gap)
    np.testing.assert_array_equal(got.out if g > 1 else got.out[None], want)
    p = CoreParams(spec, NumberFormat(), hw, g, 1)
    actions = swat_actions(p, spec)
    assert {name: got.stats[name] for name in actions} == actions
    if not gap:
        assert got.stats["cycles"] == swat_cycles(p, n).cycles


def test_sink_runs_back_to_back_and_bad_sink_counts_are_refused():
    """Runs with 4, 1 and 0 sinks and another window on one core; a command with more sinks
    than generated, or more than N, starts nothing and takes no beat."""
    rng = np.random.default_rng(5)
    spec = AttentionSpec(30, 4, 5, 0, sink_tokens=4)
    hw = HardwareConfig(2, 2, max_seq_len=30)
    p = CoreParams(spec, NumberFormat(), hw)
    assert "sink_count" in core_layouts(p)["cmd"].members
    runs = [spec, spec.replace(seq_len=9, sink_tokens=1), spec.replace(sink_tokens=0),
            spec.replace(seq_len=3, before=2, sink_tokens=3)]
    items, wants = [], []
    for run in runs:
        q, k, v = _inputs(rng, 1, run.seq_len, 4)
        wants.append(fixed_point_attention(q[0], k[0], v[0], run).out)
        items.append(CoreInput(q[0], k[0], v[0], run))
    items.insert(1, Reject({**command(p, seq_len=5), "sink_count": 5}))
    items.insert(2, Reject({**command(p, seq_len=2), "sink_count": 3}))
    out = run_core_many(items, spec, hw=hw, seed=9, gap=0.2, stall=0.2)
    check_results(out, wants, refused=2)
    with pytest.raises(ValueError, match=r"^global tokens must be at most 0 on this core "
                                         r"\(generated for 0\), not 1$"):
        p.check_run(spec.replace(sink_tokens=0, global_tokens=(3,)))


def test_core_params_sink_refusals():
    fmt, hw = NumberFormat(), HardwareConfig(2, 2, 512)
    with pytest.raises(ValueError, match=r"^sink_tokens must be 0 on a core with global tokens, "
                                         r"not 2: its resident columns are of one kind, global "
                                         r"tokens \(each with a global row, listed on the "
                                         r"command\) or sinks \(key-only, counted on the "
                                         r"command\), and its column walk has no per-column kind "
                                         r"to hold both$"):
        CoreParams(AttentionSpec(64, 8, 3, 3, global_tokens=(0,), sink_tokens=2), fmt, hw)
    with pytest.raises(LimitError, match=r"^sink_tokens must be at most 256 \(resident sink K/V "
                                         r"rows, compared by each lane\), not 300$"):
        CoreParams(AttentionSpec(512, 8, 3, 0, sink_tokens=300), fmt, hw)
    p = CoreParams(AttentionSpec(64, 8, 3, 0, sink_tokens=4), fmt, hw)
    assert p.sink_core and not p.global_rows and p.max_global_tokens == 4
    res = p.resources()
    assert res["global_engines"] == 0 and res["flag_bits"] > 0
    assert p.config_tables()["spec"]["sink_tokens"] == 4
    assert "max_global_tokens" not in p.config_tables()["hardware"]
    # a causal row walks the sinks up to itself
    np.testing.assert_array_equal(p.column_counts(p.spec.replace(seq_len=6)),
                                  [1, 2, 3, 4, 4, 4])


def test_generate_states_the_sinks():
    done = subprocess.run([sys.executable, "-m", "swatkit.cli", "generate", "--causal",
                           "--sliding-window", "128", "--sink-tokens", "4", "--print-config"],
                          capture_output=True, text=True)
    assert done.returncode == 0 and "\nsink_tokens = 4\n" in done.stdout
    done = subprocess.run([sys.executable, "-m", "swatkit.cli", "generate", "--sink-tokens", "2",
                           "--global-tokens", "0", "--print-config"], capture_output=True,
                          text=True)
    assert done.returncode == 2
    assert done.stderr == ("swatkit: error: --sink-tokens must be 0 on a core with global tokens, "
                           "not 2: its resident columns are of one kind, global tokens (each with "
                           "a global row, listed on the command) or sinks (key-only, counted on "
                           "the command), and its column walk has no per-column kind to hold "
                           "both\n")
