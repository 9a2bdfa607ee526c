"""SwatCore's block-sparse (BigBird) mode in Amaranth's simulator, against the bit-exact golden
model: the block window from the input-stationary ring, the first and last blocks as global
columns (resident) and global rows (the global-row engine, with q, k, v), and each query block's
random blocks on the ``kvr`` stream.

Every run checks the output against ``fixed_point_attention``, the counters against
:func:`swat_actions`, the beats moved on every stream (:func:`run_core_many`: ``kvr`` carries
``len(random_stream_rows)`` rows) and, stall-free, the busy cycles against :func:`swat_cycles`.
Then runs with different N, r and tables back to back, commands the core must refuse, and the
software checks (:class:`CoreParams`, :meth:`CoreParams.check_run`).
"""

from __future__ import annotations

import numpy as np
import pytest

from swatkit.golden import AttentionSpec, NumberFormat, fixed_point_attention
from swatkit.rtl import CoreParams, HardwareConfig
from swatkit.rtl.core import command
from swatkit.sim.amaranth_core import CoreInput, Reject, Rejected, run_core, run_core_many
from swatkit.sim.cycle_model import swat_actions, swat_cycles

TIMEOUT = 100_000


def qkv(n, d, seed):
    fmt = NumberFormat()
    rng = np.random.default_rng(seed)
    return [rng.integers(fmt.data_min, fmt.data_max + 1, size=(n, d)) for _ in range(3)]


def check(got, p, run, inputs, stall_free):
    want = fixed_point_attention(*inputs, run, p.fmt).out
    bad = [i for i in range(run.seq_len) if not np.array_equal(got.out[i], want[i])]
    assert not bad, f"{run}: rows {bad} differ from the golden model"
    acts = swat_actions(p, run)
    assert {k: got.stats[k] for k in acts} == acts
    if stall_free:
        assert got.stats["cycles"] == swat_cycles(p, run.seq_len, run=run).cycles


# (block, random blocks, blocks, key_lanes, dim_lanes, head_dim): N = 2b … 16b, b = 2, 4, 8,
# r = 0, 1, 3, key lanes that do and do not divide the block
SHAPES = [
    (2, 0, 1, 2, 2, 4), (2, 0, 2, 2, 2, 4), (2, 0, 3, 1, 2, 4), (2, 1, 6, 2, 2, 4),
    (2, 3, 8, 2, 4, 8), (2, 3, 16, 3, 2, 4), (4, 1, 6, 3, 2, 4), (4, 3, 9, 4, 4, 8),
    # b = 8: 56 rows of a 4 x 2 core took 22 s of the suite (both gap settings, load ~3), and
    # 8 x 8 lanes (64 MACs) are slow in Amaranth's simulator (70 s of the suite); Verilator runs
    # b = 8, r = 3 on 4 x 8 lanes in the fast matrix and BigBird-base on 8 x 8 in the full one
    pytest.param((8, 1, 7, 4, 2, 8), marks=pytest.mark.slow),
    pytest.param((8, 3, 8, 8, 8, 16), marks=pytest.mark.slow),
]


@pytest.mark.by_turns("gap")
@pytest.mark.parametrize("gap", [0.0, 0.4], ids=["stall-free", "gaps40"])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "b{}r{}nb{}k{}d{}h{}".format(*s)
                         if isinstance(s, tuple) else None)
def test_bigbird_run(shape, gap):
    b, r, nb, kl, dl, d = shape
    n = b * nb
    spec = AttentionSpec.bigbird(n, d, b, r, seed=nb)
    hw = HardwareConfig(key_lanes=kl, dim_lanes=dl, max_seq_len=n)
    p = CoreParams(spec, NumberFormat(), hw)
    inputs = qkv(n, d, seed=n + r)
    got = run_core(*inputs, spec, hw=hw, seed=3, gap=gap, stall=gap, timeout=TIMEOUT)
    check(got, p, spec, inputs, stall_free=gap == 0)


# Tables of the kinds Hugging Face draws (nb = 8, r = 3): training at N = 1024 may name a global
# block or a block of the row's own window (here also a block twice); eval mode is all zeros
# (block 0 then counts 1 + r times); sim/regress.py runs HF's own tables on Verilator. The core
# walks every random slot, so it counts them as HF does (golden/spec.py, "Counting").
HF_TABLES = {
    "hf-train": ((7, 0, 4), (5, 6, 3), (4, 1, 6), (5, 5, 1), (1, 2, 7), (0, 3, 6)),
    "hf-eval": ((0, 0, 0),) * 6,
}


@pytest.mark.by_turns("gap")
@pytest.mark.parametrize("gap", [0.0, 0.4], ids=["stall-free", "gaps40"])
@pytest.mark.parametrize("table", list(HF_TABLES), ids=list(HF_TABLES))
def test_bigbird_run_hf_tables(table, gap):
    b, r, nb, d = 2, 3, 8, 4
    spec = AttentionSpec.bigbird(b * nb, d, b, r, random_table=HF_TABLES[table])
    assert (spec.block_counts() > 1).any()                  # (a key that counts twice)
    hw = HardwareConfig(key_lanes=2, dim_lanes=2, max_seq_len=b * nb)
    p = CoreParams(spec, NumberFormat(), hw)
    inputs = qkv(b * nb, d, seed=7)
    got = run_core(*inputs, spec, hw=hw, seed=5, gap=gap, stall=gap, timeout=TIMEOUT)
    check(got, p, spec, inputs, stall_free=gap == 0)
    assert got.stats["kv_rows"] == b * nb and len(p.random_stream_rows(spec)) == (nb - 2) * r * b


def test_bigbird_runs_back_to_back_and_bad_commands():
    """Runs with other N, r and an explicit table (rows not ascending) on one core, between
    commands it must refuse (N not a multiple of b, r above the maximum or above what N
    allows, N = 0): each sets ``error``, starts nothing and takes no beat."""
    b, d = 2, 4
    core = AttentionSpec.bigbird(32, d, b, 2)
    hw = HardwareConfig(key_lanes=2, dim_lanes=2, max_seq_len=32)
    p = CoreParams(core, NumberFormat(), hw)
    table = ((6, 3), (5, 4), (1, 6), (2, 6), (3, 1), (4, 1))
    runs = [AttentionSpec.bigbird(16, d, b, 2, random_table=table),
            AttentionSpec.bigbird(6, d, b, 0), AttentionSpec.bigbird(32, d, b, 1, seed=5),
            AttentionSpec.bigbird(2, d, b, 2), AttentionSpec.bigbird(20, d, b, 2, seed=9)]
    bad = [{"seq_len": 7, "random_blocks": 0}, {"seq_len": 0, "random_blocks": 0},
           {"seq_len": 16, "random_blocks": 3}, {"seq_len": 12, "random_blocks": 2}]
    items = []
    for k, run in enumerate(runs):
        items.append(CoreInput(*qkv(run.seq_len, d, seed=k), run))
        items.append(Reject(bad[k % len(bad)]))
    results = run_core_many(items, core, hw=hw, seed=1, timeout=TIMEOUT)
    for item, res in zip(items, results, strict=True):
        if isinstance(item, Reject):
            assert isinstance(res, Rejected)
            assert res.error and not res.busy and not any(res.taken.values()), item
        else:
            check(res, p, item.run, (item.q, item.k, item.v), stall_free=True)


def test_bigbird_command_layout():
    p = CoreParams(AttentionSpec.bigbird(64, 8, 4, 2), NumberFormat(), HardwareConfig(
        max_seq_len=64))
    run = p.run_spec(40, num_random_blocks=1)
    assert command(p, run) == {"seq_len": 40, "random_blocks": 1}
    assert p.max_global_tokens == 8 and p.max_random_blocks == 2
    # the random stream: for query blocks 1 … nb − 2, each table entry's b rows
    rows = p.random_stream_rows(run)
    assert len(rows) == (10 - 2) * 1 * 4
    assert list(rows[:4]) == [4 * run.random_table[0, 0] + t for t in range(4)]


def test_bigbird_params_refuse():
    fmt = NumberFormat()
    with pytest.raises(ValueError, match=r"^block_size must be a power of two on the SWAT core"):
        CoreParams(AttentionSpec.bigbird(48, 8, 6, 0), fmt, HardwareConfig(max_seq_len=48))
    with pytest.raises(ValueError, match=r"max_global_tokens and max_dilation must be 0 and 1"):
        CoreParams(AttentionSpec.bigbird(32, 8, 4, 0), fmt,
                   HardwareConfig(max_seq_len=32, max_global_tokens=2))
    p = CoreParams(AttentionSpec.bigbird(64, 8, 4, 1), fmt, HardwareConfig(max_seq_len=64))
    with pytest.raises(ValueError, match=r"^random blocks must be at most 1 on this core"):
        p.check_run(AttentionSpec.bigbird(64, 8, 4, 2))
    with pytest.raises(ValueError, match=r"^block_size must be 4 on this core"):
        p.check_run(AttentionSpec.bigbird(64, 8, 8, 0))
    with pytest.raises(ValueError, match=r"a block-sparse pattern .* needs a core generated"):
        CoreParams(AttentionSpec(64, 8, 8, 8), fmt, HardwareConfig(max_seq_len=64)).check_run(
            AttentionSpec.bigbird(64, 8, 4, 0))
