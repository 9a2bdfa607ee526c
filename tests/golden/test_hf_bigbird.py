"""BigBird's block-sparse attention against Hugging Face's ``BigBirdBlockSparseAttention``, in
float64, fed HF's own random tables.

One layer with random weights (no downloads) runs on random hidden states in float64; the random
table it uses is captured where it gathers the random blocks (``torch_gather_b2``), and for every
head swatkit's ``window_attention`` (and the dense ``attention_reference`` on
``spec.key_counts()``) gets HF's q, k, v and that table. The output must agree to ~1e-15, and
HF's attention probabilities (one entry per key: a key counted c times holds the weight of one
copy) must equal ``e^(s_ij − m_i) / Σ_j c_ij·e^(s_ij − m_i)``.

The cases are the tables HF really produces (transformers 5.x, ``modeling_big_bird.py``):

* training at N = 1024 (``_bigbird_block_rand_mask``, the paper's plan, drawn for
  ``max_position_embeddings`` and cut): with 4096 positions its rows may name the last global
  block; with 1024 the last query blocks draw from their own window. HF re-seeds ``np.random``
  with the layer's index on every call, so a layer's table is the same on every pass;
* training at other N (``_bigbird_block_rand_mask_with_head``): the paper's rule, no repeats;
* eval mode: both helpers return all zeros, so key block 0 counts ``1 + r`` times.

Needs torch and transformers (the ``hf`` extra); skipped without.
"""

import numpy as np
import pytest

from swatkit.golden import AttentionSpec, attention_reference, window_attention
from swatkit.sim import regress

# torch and transformers are imported when the module's first test runs, not at collection
# (several seconds in every worker), and one worker runs the Hugging Face tests
pytestmark = pytest.mark.xdist_group("hugging-face")
torch = transformers = big_bird = None


@pytest.fixture(scope="module", autouse=True)
def hugging_face():
    global torch, transformers, big_bird
    torch = pytest.importorskip("torch",
                                reason="needs torch (a CPU build) for Hugging Face layers")
    transformers = pytest.importorskip("transformers",
                                       reason="needs transformers (the hf extra)")
    big_bird = pytest.importorskip("transformers.models.big_bird.modeling_big_bird",
                                   reason="needs transformers with BigBird")

HEADS, D = 2, 8


def run_layer(n, b, r, training, max_positions, layer=3):
    """HF's block-sparse layer on random input: its q, k, v ``(heads, N, d)``, output
    ``(heads, N, d)``, attention probabilities ``(heads, N, N)`` and the random tables it used
    on two passes ``(2, heads, nb − 2, r)``."""
    config = transformers.BigBirdConfig(
        hidden_size=HEADS * D, num_attention_heads=HEADS, block_size=b, num_random_blocks=r,
        max_position_embeddings=max_positions, attention_type="block_sparse")
    torch.manual_seed(layer)
    att = big_bird.BigBirdBlockSparseAttention(config, seed=layer).double().train(training)
    tables = []
    gather = att.torch_gather_b2

    def captured(params, indices):
        tables.append(indices[0].numpy().copy())
        return gather(params, indices)

    att.torch_gather_b2 = captured
    x = torch.randn(1, n, HEADS * D, dtype=torch.float64)
    blocked, band, from_mask, to_mask = big_bird.BigBirdModel.create_masks_for_block_sparse_attn(
        torch.ones(1, n, dtype=torch.float64), b)
    with torch.no_grad():
        for _ in range(2):
            out, probs = att(x, band_mask=band, from_mask=from_mask, to_mask=to_mask,
                             from_blocked_mask=blocked, to_blocked_mask=blocked)
        q, k, v = (lin(x)[0].view(n, HEADS, D).transpose(0, 1).numpy()
                   for lin in (att.query, att.key, att.value))
    out = out[0].view(n, HEADS, D).transpose(0, 1).numpy()
    # (each pass gathers the keys and then the values with the same table)
    assert len(tables) == 4
    assert np.array_equal(tables[0], tables[1]) and np.array_equal(tables[2], tables[3])
    return q, k, v, out, probs[0].numpy(), np.stack(tables[::2])


def table_kinds(table):
    """How many entries of a ``(heads, nb − 2, r)`` table name a global block, a block of their
    query block's window, or repeat an entry of their row."""
    nb = table.shape[1] + 2
    block = np.arange(1, nb - 1)[None, :, None]
    repeats = sum(len(row) - len(set(row.tolist())) for head in table for row in head)
    return {"global": int(((table == 0) | (table == nb - 1)).sum()),
            "window": int((np.abs(table - block) <= 1).sum()), "repeat": repeats}


CASES = {
    # id: (N, b, r, training, max_position_embeddings, the kinds the table must show)
    "train-n1024-pos4096": (1024, 64, 3, True, 4096, {"global"}),
    "train-n1024-pos1024": (1024, 64, 3, True, 1024, {"window"}),
    "train-n640-plan": (640, 32, 3, True, 4096, set()),
    "eval-n1024": (1024, 64, 3, False, 4096, {"global", "window", "repeat"}),
    "eval-n256-plan": (256, 16, 2, False, 4096, {"global", "window", "repeat"}),
}


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_window_attention_equals_hf_block_sparse(case):
    n, b, r, training, positions, kinds = CASES[case]
    q, k, v, out, probs, tables = run_layer(n, b, r, training, positions)
    nb = n // b
    assert tables.shape == (2, HEADS, nb - 2, r)
    assert np.array_equal(tables[0], tables[1])          # re-seeded: one table per layer
    table = tables[0]
    found = {kind for kind, count in table_kinds(table).items() if count}
    assert found == kinds, f"{case}: the table shows {found}, expected {kinds}"
    repeated = 0
    if not training:
        assert not table.any()                           # eval: the all-zero table
    for h in range(HEADS):
        spec = AttentionSpec.bigbird(n, D, block_size=b, num_random_blocks=r,
                                     random_table=table[h])
        got = window_attention(q[h], k[h], v[h], spec)
        np.testing.assert_allclose(got, out[h], rtol=0, atol=1e-13)
        counts = spec.key_counts()
        np.testing.assert_allclose(attention_reference(q[h], k[h], v[h], counts), out[h],
                                   rtol=0, atol=1e-13)
        # HF's probabilities: the weight of one copy of each attended key, zero elsewhere
        s = np.where(counts > 0, q[h] @ k[h].T / np.sqrt(D), -np.inf)
        e = np.exp(s - s.max(axis=1, keepdims=True))
        np.testing.assert_allclose(probs[h], e / (e * counts).sum(axis=1, keepdims=True),
                                   rtol=0, atol=1e-13)
        np.testing.assert_allclose((probs[h] * counts).sum(axis=1), 1.0, rtol=0, atol=1e-13)
        once = attention_reference(q[h], k[h], v[h], spec.mask())
        assert (np.abs(once - out[h]).max() > 1e-6) == (counts > 1).any(), \
            "counting a repeated key once must differ from HF exactly where a key repeats"
        assert np.ptp(out[h]) > 0
        repeated += int((counts > 1).any())
    assert repeated == HEADS if not training else bool(repeated) == bool(kinds)


@pytest.mark.parametrize(("positions", "table"), [(4096, regress.HF_TABLE_POS4096),
                                                   (1024, regress.HF_TABLE_POS1024)],
                         ids=["pos4096", "pos1024"])
def test_the_regression_runs_hf_tables(positions, table):
    """The BigBird regression's HF tables (sim/regress.py) are the ones HF draws: layer 3,
    training, N = 1024, b = 64, r = 3, head 1."""
    tables = run_layer(1024, 64, 3, True, positions)[-1]
    assert tuple(map(tuple, tables[0, 1].tolist())) == table
