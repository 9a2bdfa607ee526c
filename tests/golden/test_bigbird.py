"""BigBird's block-sparse pattern (``AttentionSpec.bigbird``, ``block_size > 0``).

The mask is compared with a plain block-by-block construction written here from the rule; the
random table with the rule (avoidance, distinctness) and with the documented generator,
re-implemented here from PCG64's raw words; the models with a plain per-row computation (float:
per-row softmax and the dense oracle; fixed point: bit for bit, from
``NumberFormat.probabilities`` and ``NumberFormat.normalise``). Explicit tables as Hugging Face
draws them (a random block that is also a window or global block, repeats in a row, the
all-zero eval table) count each random slot, as HF does (tests/golden/test_hf_bigbird.py runs
HF itself).
"""

import dataclasses
import json
import pickle
import re
import tracemalloc

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from swatkit.golden import (
    AttentionSpec,
    NumberFormat,
    attention_reference,
    error_report,
    fixed_point_attention,
    random_block_table,
    window_attention,
)

BLOCKS = (2, 4, 8)
RANDOM = (0, 1, 3)


def legal(nb, r):
    """The table rule as the docs state it: every row of the table has r candidates."""
    return r == 0 or nb <= 2 or nb - 5 >= r


def plain_block_attends(nb, table, qb, kb):
    """Query block qb attends key block kb: the rule of golden/spec.py's module docstring."""
    if qb in (0, nb - 1) or kb in (0, nb - 1) or abs(qb - kb) <= 1:
        return True
    return kb in set(int(x) for x in table[qb - 1])


def plain_row_slots(spec, i):
    """Row i's keys with their multiplicity, from the counting rule of golden/spec.py's module
    docstring: a global row every key once; otherwise the distinct window and global blocks
    once, then every random block of its table row once more."""
    n, b = spec.seq_len, spec.block_size
    nb, qb = n // b, i // b
    if qb in (0, nb - 1):
        return list(range(n))
    blocks = sorted({0, qb - 1, qb, qb + 1, nb - 1})
    blocks += [int(x) for x in spec.random_table[qb - 1]]
    return [kb * b + t for kb in blocks for t in range(b)]


def plain_mask(spec):
    n, b, nb = spec.seq_len, spec.block_size, spec.seq_len // spec.block_size
    table = spec.random_table
    mask = np.zeros((n, n), dtype=bool)
    for qb in range(nb):
        for kb in range(nb):
            if plain_block_attends(nb, table, qb, kb):
                mask[qb * b:(qb + 1) * b, kb * b:(kb + 1) * b] = True
    return mask


def plain_row_keys(spec, i):
    b, nb = spec.block_size, spec.seq_len // spec.block_size
    table = spec.random_table
    return [j for j in range(spec.seq_len) if plain_block_attends(nb, table, i // b, j // b)]


def plain_table(nb, r, seed):
    """The generator of random_block_table's docstring, written again from it."""
    words = iter(np.random.PCG64(seed).random_raw(100_000).tolist())

    def below(n):
        while True:
            w = next(words)
            if w < 2 ** 64 - 2 ** 64 % n:
                return w % n

    rows = []
    for i in range(1, nb - 1):
        cand = [j for j in range(1, nb - 1) if abs(j - i) > 1]
        for t in range(r):
            j = t + below(len(cand) - t)
            cand[t], cand[j] = cand[j], cand[t]
        rows.append(sorted(cand[:r]))
    return np.array(rows, dtype=np.int64).reshape(max(0, nb - 2), r)


def all_cases():
    """(b, nb, r) for b = 2, 4, 8, r = 0, 1, 3, nb = 1 … 32."""
    return [(b, nb, r) for b in BLOCKS for r in RANDOM for nb in range(1, 33)]


LEGAL = [c for c in all_cases() if legal(c[1], c[2])]
ILLEGAL = [c for c in all_cases() if not legal(c[1], c[2])]


def model_cases():
    """Per (b, r): the smallest N (one block), two blocks, the smallest sparse N with r random
    blocks, one more block, and N = 12b and 32b."""
    out = []
    for b in BLOCKS:
        for r in RANDOM:
            smallest_sparse = 3 if r == 0 else r + 5
            for nb in sorted({1, 2, smallest_sparse, smallest_sparse + 1, 12, 32}):
                out.append((b, nb, r))
    return out


def case_id(case):
    b, nb, r = case
    return f"b{b}-nb{nb}-r{r}"


# -- the pattern ---------------------------------------------------------------------------------

@pytest.mark.parametrize("case", LEGAL, ids=case_id)
def test_mask_and_counts_match_the_plain_construction(case):
    b, nb, r = case
    spec = AttentionSpec.bigbird(nb * b, 4, block_size=b, num_random_blocks=r, seed=nb)
    mask = spec.mask()
    assert mask.shape == (nb * b, nb * b) and mask.dtype == bool
    assert np.array_equal(mask, plain_mask(spec))
    assert np.array_equal(spec.keys_per_row(), mask.sum(axis=1))
    assert spec.keys_per_row().dtype == np.int64
    assert spec.pair_count() == int(mask.sum())
    assert spec.max_keys_per_row == nb * b == int(mask.sum(axis=1).max())
    assert np.array_equal(spec.block_mask().repeat(b, 0).repeat(b, 1), mask)
    for i in {0, b - 1, min(b, nb * b - 1), nb * b // 2, nb * b - b, nb * b - 1}:
        assert spec.row_keys(i).tolist() == plain_row_keys(spec, i)
        assert spec.row_keys(i).dtype == np.int64
    for qb in range(nb):
        assert spec.block_keys(qb).tolist() == [kb for kb in range(nb)
                                                if plain_block_attends(nb, spec.random_table,
                                                                       qb, kb)]


@pytest.mark.parametrize("case", [c for c in LEGAL if c[1] >= 3], ids=case_id)
def test_block_key_slots_cover_each_row_once(case):
    b, nb, r = case
    spec = AttentionSpec.bigbird(nb * b, 4, block_size=b, num_random_blocks=r)
    index, valid = spec.block_key_slots()
    assert index.shape == valid.shape == (nb - 2, 5 + r)
    for qb in range(1, nb - 1):
        blocks = index[qb - 1][valid[qb - 1]].tolist()
        assert len(blocks) == len(set(blocks))  # a key counts once
        assert sorted(blocks) == spec.block_keys(qb).tolist()
        assert index[qb - 1, :5].tolist() == [0, qb - 1, qb, qb + 1, nb - 1]


def test_known_pattern_by_hand():
    # nb = 6, r = 1, table rows for query blocks 1..4
    spec = AttentionSpec.bigbird(12, 2, block_size=2, num_random_blocks=1,
                                 random_table=[[3], [4], [1], [2]])
    assert spec.block_mask().astype(int).tolist() == [
        [1, 1, 1, 1, 1, 1],
        [1, 1, 1, 1, 0, 1],
        [1, 1, 1, 1, 1, 1],
        [1, 1, 1, 1, 1, 1],
        [1, 0, 1, 1, 1, 1],
        [1, 1, 1, 1, 1, 1],
    ]
    assert spec.keys_per_row().tolist() == [12, 12, 10, 10, 12, 12, 12, 12, 10, 10, 12, 12]
    spec = AttentionSpec.bigbird(16, 2, block_size=2, num_random_blocks=0)
    # query block 1: blocks 0..2 and 7; block 3: 0, 2..4, 7; block 6: 0, 5..7
    assert spec.keys_per_row().tolist() == [16, 16, 8, 8, 10, 10, 10, 10, 10, 10, 10, 10, 8, 8,
                                            16, 16]
    assert spec.row_keys(6).tolist() == [0, 1, 4, 5, 6, 7, 8, 9, 14, 15]


# -- Hugging Face's tables: every random slot counts -------------------------------------------

# nb = 8, r = 2. Query block 1 draws the global block 7 and block 0 (its window's and global),
# block 3 its window block 4, block 4 block 5 twice (also its window), block 6 the global 0: what
# HF's tables hold (training at N = 1024: global blocks, and window blocks when
# max_position_embeddings = N; eval: all zeros)
HF_TABLE = [[7, 0], [5, 6], [4, 1], [5, 5], [1, 2], [0, 3]]
HF_COUNTS = [
    [1, 1, 1, 1, 1, 1, 1, 1],
    [2, 1, 1, 0, 0, 0, 0, 2],
    [1, 1, 1, 1, 0, 1, 1, 1],
    [1, 1, 1, 1, 2, 0, 0, 1],
    [1, 0, 0, 1, 1, 3, 0, 1],
    [1, 1, 1, 0, 1, 1, 1, 1],
    [2, 0, 0, 1, 0, 1, 1, 1],
    [1, 1, 1, 1, 1, 1, 1, 1],
]


def test_hf_style_table_counts_every_random_slot():
    spec = AttentionSpec.bigbird(64, 4, block_size=8, num_random_blocks=2, random_table=HF_TABLE)
    assert spec.random_table.tolist() == HF_TABLE
    counts = spec.block_counts()
    assert counts.dtype == np.int64 and counts.tolist() == HF_COUNTS
    assert np.array_equal(spec.block_mask(), counts > 0)
    keys = spec.key_counts()
    assert keys.dtype == np.int64 and np.array_equal(keys, counts.repeat(8, 0).repeat(8, 1))
    assert np.array_equal(spec.mask(), keys > 0)
    assert np.array_equal(spec.keys_per_row(), keys.sum(axis=1))
    assert spec.pair_count() == int(keys.sum()) > int(spec.mask().sum())
    assert spec.block_keys(4).tolist() == [0, 3, 4, 5, 7]     # distinct: how often is counts'
    assert spec.row_keys(8).tolist() == [*range(24), *range(56, 64)]
    index, valid = spec.block_key_slots()
    assert valid[:, 5:].all() and index[3, 5:].tolist() == [5, 5]
    for i in range(64):
        assert sorted(plain_row_slots(spec, i)) == np.repeat(np.arange(64), keys[i]).tolist()
    assert np.array_equal(AttentionSpec.bigbird(64, 4, 8, 0).key_counts(),
                          AttentionSpec.bigbird(64, 4, 8, 0).mask())


def test_hf_eval_table_weights_block_zero_one_plus_r_times():
    """HF's eval mode: an all-zero table, so every non-global row sees key block 0 1 + r times
    (once as the global block, r times as a random one). Counting it once is a different
    answer (the models must not)."""
    nb, b, r = 10, 8, 3
    spec = AttentionSpec.bigbird(nb * b, 8, block_size=b, num_random_blocks=r,
                                 random_table=np.zeros((nb - 2, r), dtype=np.int64))
    counts = spec.block_counts()
    assert counts[1:-1, 0].tolist() == [1 + r] * (nb - 2)
    assert counts[1:-1].sum(axis=1).tolist() == [4 + r] + [5 + r] * (nb - 4) + [4 + r]
    rng = np.random.default_rng(3)
    q, k, v = (rng.standard_normal((nb * b, 8)) for _ in range(3))
    out = window_attention(3 * q, k, v, spec)
    np.testing.assert_allclose(out, attention_reference(3 * q, k, v, spec.key_counts()),
                               rtol=0, atol=1e-12)
    np.testing.assert_allclose(out, per_row_float(3 * q, k, v, spec), rtol=0, atol=1e-12)
    once = attention_reference(3 * q, k, v, spec.mask())
    assert np.abs(out - once)[b:-b].max() > 1e-2
    np.testing.assert_allclose(out[[*range(b), *range(-b, 0)]],      # (the global blocks)
                               once[[*range(b), *range(-b, 0)]], rtol=0, atol=1e-12)
    fmt = NumberFormat()
    qi, ki, vi = random_int(spec, fmt, 4)
    res = fixed_point_attention(qi, ki, vi, spec, fmt)
    want, row_max, row_sum = per_row_fixed(qi, ki, vi, spec, fmt)
    assert np.array_equal(res.out, want) and np.array_equal(res.row_sum, row_sum)
    assert np.array_equal(res.row_max, row_max) and np.ptp(res.out) > 0
    rep = error_report(qi, ki, vi, spec, fmt)
    assert rep.max_lsb <= rep.bound_lsb


def test_reference_takes_counts_and_refuses_negative_ones():
    x = np.eye(4)
    counts = np.eye(4, dtype=np.int64) + np.array([[0, 2, 0, 0]] * 4)
    got = attention_reference(x, x, np.arange(16.0).reshape(4, 4), counts)
    e = np.exp(1 / 2)   # row 0: key 0 scores 1/sqrt(4), key 1 (twice) 0
    np.testing.assert_allclose(got[0], (e * np.arange(4.0) + 2 * np.arange(4.0, 8.0)) / (e + 2),
                               rtol=1e-15)
    counts[2, 3] = -1
    with pytest.raises(ValueError, match=r"^mask\[2, 3\] = -1 is negative \(a count of keys\)$"):
        attention_reference(x, x, x, counts)


def test_global_positions_and_derived_properties():
    spec = AttentionSpec.bigbird(64, 8, block_size=8, num_random_blocks=1, seed=3)
    assert spec.global_positions().tolist() == list(range(8)) + list(range(56, 64))
    assert spec.num_blocks == 8 and spec.window == 24
    assert not spec.is_causal and spec.max_keys_per_row == 64
    assert spec.random_table.shape == (6, 1) and spec.random_table.dtype == np.int64
    assert AttentionSpec.bigbird(8, 8, block_size=4, num_random_blocks=3).global_positions(
        ).tolist() == list(range(8))
    band = AttentionSpec(40, 8, 3, 3, global_tokens=(5, 9))
    assert band.global_positions().tolist() == [5, 9] and band.num_blocks == 0
    assert band.random_table.shape == (0, 0)


# -- the random table ----------------------------------------------------------------------------

@pytest.mark.parametrize("case", [c for c in LEGAL if c[2] and c[1] >= 3], ids=case_id)
def test_drawn_table_follows_the_rule(case):
    b, nb, r = case
    for seed in (0, 1, 2 ** 40 + 7):
        table = AttentionSpec.bigbird(nb * b, 4, block_size=b, num_random_blocks=r,
                                      seed=seed).random_table
        assert table.shape == (nb - 2, r)
        for t, row in enumerate(table.tolist()):
            i = t + 1
            assert len(set(row)) == r and row == sorted(row)
            assert all(1 <= x <= nb - 2 and abs(x - i) > 1 for x in row)
        assert np.array_equal(table, plain_table(nb, r, seed))
        assert np.array_equal(table, random_block_table(nb, r, seed))


def test_table_is_pinned_for_known_seeds():
    """The generator uses only PCG64's raw words: these values must never change."""
    assert random_block_table(10, 2, 7).tolist() == [
        [4, 6], [5, 7], [1, 5], [6, 7], [1, 3], [2, 3], [2, 4], [1, 6]]
    assert random_block_table(16, 3, 0)[:4].tolist() == [
        [4, 9, 14], [4, 6, 13], [1, 5, 12], [2, 8, 13]]
    assert random_block_table(40, 3, 12345)[-2:].tolist() == [[5, 7, 9], [8, 14, 16]]


def test_table_is_deterministic_and_depends_on_the_seed():
    a = AttentionSpec.bigbird(4096, 64, block_size=64, num_random_blocks=3, seed=11)
    b = AttentionSpec.bigbird(4096, 64, block_size=64, num_random_blocks=3, seed=11)
    c = AttentionSpec.bigbird(4096, 64, block_size=64, num_random_blocks=3, seed=12)
    assert a == b and hash(a) == hash(b) and np.array_equal(a.random_table, b.random_table)
    assert a != c and not np.array_equal(a.random_table, c.random_table)
    assert AttentionSpec.bigbird(4096, 64).pattern_seed == 0  # seed None draws with 0
    assert AttentionSpec.bigbird(4096, 64) == AttentionSpec.bigbird(4096, 64, seed=0)


def test_random_table_is_a_copy():
    spec = AttentionSpec.bigbird(128, 4, block_size=8, num_random_blocks=2)
    table = spec.random_table
    table[:] = 0
    assert spec.random_table.min() > 0


def test_explicit_table_round_trips():
    drawn = AttentionSpec.bigbird(96, 4, block_size=8, num_random_blocks=3, seed=5)
    table = drawn.random_table
    spec = AttentionSpec.bigbird(96, 4, block_size=8, num_random_blocks=3, random_table=table)
    assert spec.pattern_seed is None
    assert spec.explicit_random_table == tuple(tuple(row) for row in table.tolist())
    assert all(type(x) is int for row in spec.explicit_random_table for x in row)
    assert np.array_equal(spec.random_table, table) and np.array_equal(spec.mask(), drawn.mask())
    assert spec != drawn  # a spec compares by its fields: drawn from a seed, or given
    # lists, tuples, unsigned arrays; an empty table where there are no rows
    assert AttentionSpec.bigbird(96, 4, block_size=8, num_random_blocks=3,
                                 random_table=table.astype(np.uint16).tolist()) == spec
    assert AttentionSpec.bigbird(16, 4, block_size=8, num_random_blocks=3,
                                 random_table=()).random_table.shape == (0, 3)
    assert AttentionSpec.bigbird(48, 4, block_size=8, num_random_blocks=0,
                                 random_table=[[]] * 4).random_table.shape == (4, 0)


@pytest.mark.parametrize("spec", [
    AttentionSpec.bigbird(96, 4, block_size=8, num_random_blocks=3, seed=5),
    AttentionSpec.bigbird(96, 4, block_size=8, num_random_blocks=2,
                          random_table=[[3, 9], [4, 10], [1, 5], [6, 8], [1, 2], [2, 4], [1, 10],
                                        [2, 6], [4, 6], [1, 7]]),
    AttentionSpec(40, 8, 3, 3, global_tokens=(1, 7)),
], ids=["drawn", "explicit", "band"])
def test_asdict_json_replace_pickle_round_trips(spec):
    """Other stages write ``dataclasses.asdict(spec)`` to JSON and read it back with
    ``AttentionSpec(**record)`` (global_tokens made a tuple)."""
    record = json.loads(json.dumps(dataclasses.asdict(spec)))
    again = AttentionSpec(**{**record, "global_tokens": tuple(record["global_tokens"])})
    assert again == spec and hash(again) == hash(spec)
    assert np.array_equal(again.mask(), spec.mask())
    assert dataclasses.replace(spec) == spec == spec.replace()
    assert pickle.loads(pickle.dumps(spec)) == spec
    assert spec.replace(head_dim=16).random_table.tolist() == spec.random_table.tolist()
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.block_size = 3


def test_replace_draws_again_for_a_new_length():
    spec = AttentionSpec.bigbird(256, 8, block_size=8, num_random_blocks=3, seed=4)
    longer = spec.replace(seq_len=512)
    assert longer.pattern_seed == 4 and longer.random_table.shape == (62, 3)
    assert np.array_equal(longer.random_table, random_block_table(64, 3, 4))
    explicit = AttentionSpec.bigbird(256, 8, block_size=8, num_random_blocks=3,
                                     random_table=spec.random_table)
    with pytest.raises(ValueError, match=re.escape(
            "explicit_random_table must have shape (62, 3) (query blocks 1..62 × "
            "num_random_blocks), not (30, 3)")):
        explicit.replace(seq_len=512)


def test_as_options():
    spec = AttentionSpec.bigbird(4096, 64, block_size=64, num_random_blocks=3, seed=9)
    assert spec.as_options() == {"seq_len": 4096, "head_dim": 64, "bigbird_block": 64,
                                 "random_blocks": 3, "pattern_seed": 9}
    explicit = AttentionSpec.bigbird(48, 8, block_size=8, num_random_blocks=1,
                                     random_table=[[3], [4], [1], [2]])
    assert explicit.as_options() == {"seq_len": 48, "head_dim": 8, "bigbird_block": 8,
                                     "random_blocks": 1, "random_table": [[3], [4], [1], [2]]}


# -- bad input -----------------------------------------------------------------------------------

@pytest.mark.parametrize("case", ILLEGAL, ids=case_id)
def test_too_many_random_blocks(case):
    b, nb, r = case
    i = min(2, nb - 2)
    available = max(0, nb - 5) if nb >= 5 else 0
    message = (f"num_random_blocks {r} is more than the {available} key blocks available to "
               f"query block {i} of {nb} (random blocks avoid blocks 0 and {nb - 1} and the "
               f"window {i - 1}..{i + 1}); with block_size {b}, {r} random blocks need "
               f"seq_len >= {b * (r + 5)}")
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        AttentionSpec.bigbird(nb * b, 4, block_size=b, num_random_blocks=r)
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        AttentionSpec.bigbird(nb * b, 4, block_size=b, num_random_blocks=r,
                              random_table=np.ones((nb - 2, r), dtype=int))


TABLE_ERRORS = [
    # nb = 8, r = 2: rows for query blocks 1..6
    (np.zeros((5, 2), int), ValueError,
     "random_table must have shape (6, 2) (query blocks 1..6 × num_random_blocks), not (5, 2)"),
    (np.zeros((6, 3), int), ValueError,
     "random_table must have shape (6, 2) (query blocks 1..6 × num_random_blocks), not (6, 3)"),
    (np.zeros(12, int), ValueError,
     "random_table must have shape (6, 2) (query blocks 1..6 × num_random_blocks), not (12,)"),
    ([[3, 4]] * 5 + [[3]], ValueError, "random_table must be a rectangular array of integers"),
    (np.full((6, 2), 3.0), TypeError, "random_table must be an array of integers, not float64"),
    (np.full((6, 2), True), TypeError, "random_table must be an array of integers, not bool"),
    ("abc", TypeError, "random_table must be an array of integers, not 'abc'"),
    ([[3, 9], [4, 5], [5, 1], [1, 2], [1, 2], [1, 2]], ValueError,
     "random_table[0, 1] = 9 is outside the key blocks [0, 8)"),
    ([[3, 4], [4, 5], [5, -1], [1, 2], [1, 2], [1, 2]], ValueError,
     "random_table[2, 1] = -1 is outside the key blocks [0, 8)"),
    (np.array([[3, 2 ** 64 - 1]] + [[1, 2]] * 5, dtype=np.uint64), ValueError,
     f"random_table[0, 1] = {2 ** 64 - 1} is outside the key blocks [0, 8)"),
    ([[3, 4], [7, 8], [5, 1], [0, 2], [1, 2], [1, 2]], ValueError,
     "random_table[1, 1] = 8 is outside the key blocks [0, 8)"),
]


@pytest.mark.parametrize(("table", "error", "message"), TABLE_ERRORS,
                         ids=[m for _, _, m in TABLE_ERRORS])
def test_explicit_table_checks(table, error, message):
    with pytest.raises(error, match=f"^{re.escape(message)}$"):
        AttentionSpec.bigbird(64, 4, block_size=8, num_random_blocks=2, random_table=table)
    # the constructor checks the same, under its own field name
    with pytest.raises(error, match=f"^{re.escape(message.replace('random_table', 'explicit_random_table'))}$"):  # noqa: E501
        AttentionSpec(64, 4, 0, 0, block_size=8, num_random_blocks=2,
                      explicit_random_table=table)


@pytest.mark.parametrize(("build", "error", "message"), [
    (lambda: AttentionSpec.bigbird(100, 8), ValueError,
     "block_size 64 does not divide seq_len 100"),
    (lambda: AttentionSpec.bigbird(100, 8, block_size=8, random_table=[[3]]), ValueError,
     "block_size 8 does not divide seq_len 100"),
    (lambda: AttentionSpec.bigbird(64, 8, block_size=0), ValueError,
     "block_size must be a positive integer, not 0"),
    (lambda: AttentionSpec.bigbird(64, 8, block_size="8"), TypeError,
     "block_size must be an integer, not '8'"),
    (lambda: AttentionSpec.bigbird(64, 8, block_size=8, num_random_blocks=-1), ValueError,
     "num_random_blocks must be a non-negative integer, not -1"),
    (lambda: AttentionSpec.bigbird(64, 8, block_size=8, num_random_blocks=1.0), TypeError,
     "num_random_blocks must be an integer, not 1.0"),
    (lambda: AttentionSpec.bigbird(64, 8, block_size=8, seed=-1), ValueError,
     "seed must be a non-negative integer, not -1"),
    (lambda: AttentionSpec.bigbird(64, 8, block_size=8, seed=True), TypeError,
     "seed must be an integer, not True"),
    (lambda: AttentionSpec.bigbird(64, 8, block_size=8, num_random_blocks=1, seed=1,
                                   random_table=[[3]] * 6), ValueError,
     "give seed or random_table, not both"),
    (lambda: AttentionSpec(64, 8, 0, 0, block_size=8, num_random_blocks=1, pattern_seed=0,
                           explicit_random_table=[[3]] * 6), ValueError,
     "give pattern_seed or explicit_random_table, not both"),
    (lambda: AttentionSpec(64, 8, block_size=-8), ValueError,
     "block_size must be a non-negative integer, not -8"),
    (lambda: AttentionSpec(64, 8, 0, 0, block_size=8, pattern_seed=-2), ValueError,
     "pattern_seed must be a non-negative integer, not -2"),
    (lambda: AttentionSpec(64, 8, block_size=8), ValueError,
     "a block-sparse spec (block_size 8) has no token band: before and after must be 0 and "
     "dilation 1, not before=256, after=256, dilation=1"),
    (lambda: AttentionSpec(64, 8, 0, 0, 2, block_size=8), ValueError,
     "a block-sparse spec (block_size 8) has no token band: before and after must be 0 and "
     "dilation 1, not before=0, after=0, dilation=2"),
    (lambda: AttentionSpec(64, 8, 0, 0, global_tokens=(3,), block_size=8), ValueError,
     "a block-sparse spec (block_size 8) has no global_tokens (its global rows and columns are "
     "the first and last blocks), not (3,)"),
    (lambda: AttentionSpec(64, 8, num_random_blocks=2), ValueError,
     "num_random_blocks needs a block-sparse spec (block_size > 0)"),
    (lambda: AttentionSpec(64, 8, pattern_seed=0), ValueError,
     "pattern_seed needs a block-sparse spec (block_size > 0)"),
    (lambda: AttentionSpec(64, 8, explicit_random_table=()), ValueError,
     "explicit_random_table needs a block-sparse spec (block_size > 0)"),
    (lambda: AttentionSpec.bigbird(64, 8, block_size=8).replace(before=1), ValueError,
     "a block-sparse spec (block_size 8) has no token band: before and after must be 0 and "
     "dilation 1, not before=1, after=0, dilation=1"),
    (lambda: AttentionSpec.bigbird(64, 8, block_size=8).replace(seq_len=60), ValueError,
     "block_size 8 does not divide seq_len 60"),
    (lambda: AttentionSpec.bigbird(64, 8, block_size=8).band_keys(), ValueError,
     "band_keys: a block-sparse spec (block_size 8) has no token band; use row_keys(), mask() "
     "or block_key_slots()"),
    (lambda: AttentionSpec.bigbird(64, 8, block_size=8).in_band(1, 2), ValueError,
     "in_band: a block-sparse spec (block_size 8) has no token band; use row_keys(), mask() "
     "or block_key_slots()"),
    (lambda: AttentionSpec(64, 8).block_mask(), ValueError,
     "block_mask needs a block-sparse spec (block_size > 0)"),
    (lambda: AttentionSpec.bigbird(64, 8, block_size=8).block_keys(8), ValueError,
     "block 8 is outside the blocks [0, 8)"),
    (lambda: AttentionSpec.bigbird(64, 8, block_size=8).row_keys(64), ValueError,
     "row 64 is outside the sequence [0, 64)"),
    (lambda: random_block_table(8, 4, 0), ValueError,
     "num_random_blocks 4 is more than the 3 key blocks available to query block 2 of 8 "
     "(random blocks avoid blocks 0 and 7 and the window 1..3)"),
])
def test_bad_input(build, error, message):
    with pytest.raises(error, match=f"^{re.escape(message)}$"):
        build()


# -- the models ----------------------------------------------------------------------------------

FORMATS = {
    "default": NumberFormat(),
    "data4": NumberFormat(data_bits=4, scale_q=1 / 4, scale_k=1 / 4, scale_v=1 / 4),
    "out-frac4": NumberFormat(out_bits=12, out_frac_bits=4),
    "peaky": NumberFormat(scale_q=1 / 4, scale_k=1 / 4, exp_frac_bits=3, const_bits=8),
}


def per_row_float(q, k, v, spec):
    out = np.zeros((spec.seq_len, spec.head_dim))
    for i in range(spec.seq_len):
        keys = plain_row_slots(spec, i)
        s = k[keys] @ q[i] / np.sqrt(spec.head_dim)
        w = np.exp(s - s.max())
        out[i] = w @ v[keys] / w.sum()
    return out


def per_row_fixed(q, k, v, spec, fmt, rows=None):
    """The six steps, one row at a time, from NumberFormat.probabilities and .normalise (the
    rows not in ``rows`` stay zero)."""
    n = spec.seq_len
    out = np.zeros((n, spec.head_dim), dtype=np.int64)
    row_max, row_sum = np.zeros(n, np.int64), np.zeros(n, np.int64)
    for i in range(n) if rows is None else rows:
        keys = plain_row_slots(spec, i)                   # (with repeats: each slot counts)
        s = k[keys] @ q[i]                                # 1.
        m = s.max()                                       # 2.
        p = fmt.probabilities(m - s, spec.head_dim)       # 2.–4.
        out[i] = fmt.normalise(p @ v[keys], p.sum())      # 5., 6.
        row_max[i], row_sum[i] = m, p.sum()
    return out, row_max, row_sum


def random_int(spec, fmt, seed):
    rng = np.random.default_rng(seed)
    shape = (spec.seq_len, spec.head_dim)
    return tuple(rng.integers(fmt.data_min, fmt.data_max + 1, shape) for _ in range(3))


@pytest.mark.parametrize("case", model_cases(), ids=case_id)
def test_window_attention_equals_reference(case):
    b, nb, r = case
    spec = AttentionSpec.bigbird(nb * b, 8, block_size=b, num_random_blocks=r, seed=nb + r)
    rng = np.random.default_rng(nb)
    q, k, v = (rng.standard_normal((nb * b, 8)) for _ in range(3))
    q = 3 * q                                   # peaky rows as well as flat ones
    out = window_attention(q, k, v, spec)
    assert out.shape == (nb * b, 8) and out.dtype == np.float64
    np.testing.assert_allclose(out, attention_reference(q, k, v, spec.mask()), rtol=0,
                               atol=1e-12)
    np.testing.assert_allclose(out, per_row_float(q, k, v, spec), rtol=0, atol=1e-12)
    assert np.ptp(out) > 0


@pytest.mark.parametrize("fmt", list(FORMATS.values()), ids=list(FORMATS))
@pytest.mark.parametrize("case", model_cases(), ids=case_id)
def test_fixed_point_equals_per_row_reference(case, fmt):
    b, nb, r = case
    spec = AttentionSpec.bigbird(nb * b, 8, block_size=b, num_random_blocks=r, seed=nb + r)
    q, k, v = random_int(spec, fmt, nb + b)
    res = fixed_point_attention(q, k, v, spec, fmt)
    out, row_max, row_sum = per_row_fixed(q, k, v, spec, fmt)
    assert res.out.dtype == np.int64 and res.out.shape == (nb * b, 8)
    assert np.array_equal(res.out, out)
    assert np.array_equal(res.row_max, row_max) and np.array_equal(res.row_sum, row_sum)
    assert np.ptp(res.out) > 0
    rep = error_report(q, k, v, spec, fmt)
    assert rep.bound_lsb == fmt.error_bound(8, nb * b)
    assert rep.max_lsb <= rep.bound_lsb


def test_an_explicit_table_changes_the_result():
    """The random blocks really are attended: a different table, a different output."""
    spec = AttentionSpec.bigbird(80, 4, block_size=8, num_random_blocks=1,
                                 random_table=[[3], [4], [5], [6], [7], [1], [2], [3]])
    other = spec.replace(explicit_random_table=[[4], [5], [6], [7], [8], [2], [3], [4]])
    fmt = NumberFormat()
    q, k, v = random_int(spec, fmt, 5)
    a = fixed_point_attention(q, k, v, spec, fmt).out
    c = fixed_point_attention(q, k, v, other, fmt).out
    assert np.array_equal(c, per_row_fixed(q, k, v, other, fmt)[0])
    assert not np.array_equal(a[8:72], c[8:72])
    assert np.array_equal(a[:8], c[:8]) and np.array_equal(a[72:], c[72:])  # global blocks


def test_global_qkv_is_refused():
    spec = AttentionSpec.bigbird(32, 4, block_size=4, num_random_blocks=1)
    x = np.zeros((32, 4), dtype=np.int64)
    message = ("global_qkv (Longformer's global projections) does not apply to a block-sparse "
               "spec: BigBird computes every row with q, k, v")
    for model in (window_attention, fixed_point_attention, error_report):
        with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
            model(x, x, x, spec, global_qkv=(x, x, x))


def test_large_n_never_forms_the_dense_matrix(monkeypatch):
    """N = 16384, b = 64, r = 3: no N × N array (not the mask, not a score matrix)."""
    spec = AttentionSpec.bigbird(16384, 16, block_size=64, num_random_blocks=3)
    fmt = NumberFormat()
    q, k, v = random_int(spec, fmt, 0)
    expected_pairs = (2 * 64 * 16384 + 2 * 64 * (4 + 3) * 64 + 252 * 64 * (5 + 3) * 64)
    assert spec.pair_count() == expected_pairs

    def no_mask(self):
        raise AssertionError("the model built the dense mask")

    monkeypatch.setattr(AttentionSpec, "mask", no_mask)
    tracemalloc.start()
    try:
        res = fixed_point_attention(q, k, v, spec, fmt)
        out = window_attention(q * fmt.scale_q, k * fmt.scale_k, v * fmt.scale_v, spec)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 16384 * 16384 // 4  # 64 MiB; a boolean N × N mask alone is 256 MiB
    rows = [0, 63, 64, 5000, 16320, 16383]
    expected = per_row_fixed(q, k, v, spec, fmt, rows)[0]
    assert np.array_equal(res.out[rows], expected[rows])
    assert np.isfinite(out).all() and np.ptp(res.out) > 0


# -- property-based ------------------------------------------------------------------------------

@st.composite
def bigbird_cases(draw):
    b = draw(st.integers(1, 4))
    r = draw(st.integers(0, 3))
    nb = draw(st.integers(1, 12))
    assume(legal(nb, r))
    d = draw(st.integers(1, 6))
    seed = draw(st.integers(0, 2 ** 63))
    spec = AttentionSpec.bigbird(nb * b, d, block_size=b, num_random_blocks=r, seed=seed)
    fmt = draw(st.sampled_from(list(FORMATS.values())))
    data_seed = draw(st.integers(0, 2 ** 32 - 1))
    return spec, fmt, data_seed


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(bigbird_cases())
def test_property_models_match_the_rule(case):
    spec, fmt, data_seed = case
    assert np.array_equal(spec.mask(), plain_mask(spec))
    q, k, v = random_int(spec, fmt, data_seed)
    res = fixed_point_attention(q, k, v, spec, fmt)
    out, row_max, row_sum = per_row_fixed(q, k, v, spec, fmt)
    assert np.array_equal(res.out, out)
    assert np.array_equal(res.row_max, row_max) and np.array_equal(res.row_sum, row_sum)
    real = (q * fmt.scale_q, k * fmt.scale_k, v * fmt.scale_v)
    np.testing.assert_allclose(window_attention(*real, spec),
                               attention_reference(*real, spec.mask()), rtol=0, atol=1e-12)
    rep = error_report(q, k, v, spec, fmt)
    assert rep.max_lsb <= rep.bound_lsb


@st.composite
def hf_style_cases(draw):
    """Any table of in-range blocks (repeats, window and global blocks: HF's tables)."""
    b = draw(st.integers(1, 4))
    r = draw(st.integers(1, 3))
    nb = draw(st.integers(r + 5, 12))
    d = draw(st.integers(1, 6))
    table = draw(st.lists(st.lists(st.integers(0, nb - 1), min_size=r, max_size=r),
                          min_size=nb - 2, max_size=nb - 2))
    spec = AttentionSpec.bigbird(nb * b, d, block_size=b, num_random_blocks=r,
                                 random_table=table)
    fmt = draw(st.sampled_from(list(FORMATS.values())))
    return spec, fmt, draw(st.integers(0, 2 ** 32 - 1))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(hf_style_cases())
def test_property_hf_style_tables_count_every_slot(case):
    spec, fmt, data_seed = case
    keys = spec.key_counts()
    assert np.array_equal(spec.keys_per_row(), keys.sum(axis=1))
    q, k, v = random_int(spec, fmt, data_seed)
    res = fixed_point_attention(q, k, v, spec, fmt)
    out, row_max, row_sum = per_row_fixed(q, k, v, spec, fmt)
    assert np.array_equal(res.out, out)
    assert np.array_equal(res.row_max, row_max) and np.array_equal(res.row_sum, row_sum)
    real = (q * fmt.scale_q, k * fmt.scale_k, v * fmt.scale_v)
    np.testing.assert_allclose(window_attention(*real, spec),
                               attention_reference(*real, keys), rtol=0, atol=1e-12)
    rep = error_report(q, k, v, spec, fmt)
    assert rep.max_lsb <= rep.bound_lsb
