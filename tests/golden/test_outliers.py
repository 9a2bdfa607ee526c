"""golden/outliers.py: the host-side recipe for outlier channels is exact in real arithmetic
(rotation, Q/K balance, V channel scales undone on the output), and it lowers the per-tensor
datapath's error when a few K channels are large."""

import numpy as np
import pytest

from swatkit.golden import AttentionSpec, window_attention
from swatkit.golden import measure as measure_mod
from swatkit.golden.outliers import fold_channels, hadamard


def _inputs(heads, kv_heads, n=64, d=16, gain=50.0, on_q=True, seed=0):
    rng = np.random.default_rng(seed)
    q = rng.standard_normal((heads, n, d))
    k, v = rng.standard_normal((2, kv_heads, n, d))
    k[:, :, [2, 11]] *= gain
    if on_q:
        q[:, :, [2, 11]] *= gain
    v[:, :, 5] *= gain
    return q, k, v


@pytest.mark.parametrize("rotate", [False, True])
@pytest.mark.parametrize(("heads", "kv_heads"), [(1, 1), (4, 2), (8, 1)])
@pytest.mark.parametrize("alpha", [0.0, 0.5, 1.0])
def test_the_fold_is_exact(rotate, heads, kv_heads, alpha):
    q, k, v = _inputs(heads, kv_heads)
    spec = AttentionSpec.causal(64, 16, 8)
    ref = window_attention(q, k, v, spec)
    f = fold_channels(q, k, v, alpha=alpha, rotate=rotate)
    assert f.q.shape == q.shape and f.k.shape == k.shape and f.v.shape == v.shape
    got = f.output(window_attention(f.q, f.k, f.v, spec))
    assert np.abs(got - ref).max() < 1e-10
    # every V channel now spans the same range
    assert np.allclose(np.abs(f.v).max(axis=1), 1.0)


def test_two_dimensional_inputs_keep_their_shape():
    q, k, v = (x[0] for x in _inputs(1, 1))
    spec = AttentionSpec.longformer(64, 16, 8)
    f = fold_channels(q, k, v, rotate=True)
    assert f.q.ndim == 2
    got = f.output(window_attention(f.q, f.k, f.v, spec))
    assert np.abs(got - window_attention(q, k, v, spec)).max() < 1e-10


def test_the_balance_spreads_k_outliers_over_q_and_k():
    q, k, v = _inputs(2, 1, on_q=False)
    f = fold_channels(q, k, v, alpha=0.5)
    ratio = np.abs(k).max() / np.median(np.abs(k).max(axis=1))
    ratio_k = np.abs(f.k).max() / np.median(np.abs(f.k).max(axis=1))
    ratio_q = np.abs(f.q).max() / np.median(np.abs(f.q).max(axis=1))
    assert ratio > 40 and ratio_k < ratio / 4 and ratio_q < ratio / 4


def test_hadamard_is_orthonormal_and_refuses_other_sizes():
    h = hadamard(64)
    assert np.allclose(h @ h.T, np.eye(64))
    for n in (96, 0, 3):
        with pytest.raises(ValueError, match=rf"^a Hadamard rotation needs head_dim a power of "
                                             rf"two, not {n}$"):
            hadamard(n)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"alpha": 1.5}, "alpha must be a number in [0, 1], not 1.5"),
    ({"alpha": True}, "alpha must be a number in [0, 1], not True"),
])
def test_bad_alpha(kwargs, message):
    q, k, v = _inputs(1, 1)
    with pytest.raises(ValueError) as e:
        fold_channels(q, k, v, **kwargs)
    assert str(e.value) == message


def test_bad_shapes_and_values():
    q, k, v = _inputs(3, 2)
    with pytest.raises(ValueError, match="q's heads be a multiple"):
        fold_channels(q, k, v)
    q, k, v = _inputs(2, 1)
    k[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match=r"^k contains NaN or infinity$"):
        fold_channels(q, k, v)


def test_the_recipe_lowers_the_datapath_error_on_k_outliers():
    """The measured table (tiny size): with K channels 50x larger, the Q/K balance at least
    halves the mean error of per-tensor scales."""
    text = measure_mod.measure_outliers(seq_len=256, head_dim=16, sliding_window=32, heads=4,
                                        kv_heads=1, channels=2, gain=50.0, seed=3)
    rows = {tuple(cell.strip() for cell in line.split("  ") if cell.strip())[:2]:
            line.split() for line in text.splitlines()[3:]}
    mean = {key: float(line[-3]) for key, line in rows.items()}
    assert mean["K ×50", "Q/K balance"] < mean["K ×50", "per-tensor scales"] / 2
    assert mean["none", "per-tensor scales"] < mean["K ×50", "per-tensor scales"]


def test_the_command(capsys):
    assert measure_mod.main(["outliers", "--seq-len", "64", "--head-dim", "8",
                             "--sliding-window", "8", "--heads", "2"]) == 0
    assert "rotation + Q/K balance" in capsys.readouterr().out
    with pytest.raises(SystemExit) as e:
        measure_mod.main(["outliers", "--head-dim", "8", "--channels", "9"])
    assert e.value.code == 2
    assert "--channels (9) must be at most --head-dim (8)" in capsys.readouterr().err
