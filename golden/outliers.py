"""Outlier channels: a host-side recipe that keeps the per-tensor datapath accurate when a few
channels of Q, K (or V) are much larger than the rest, as in LLM K/V caches.

The core quantises Q, K and V with one scale each (``NumberFormat.scale_q/k/v``). A channel 50×
larger than the others then sets the scale, and every other channel keeps a few bits. The
datapath cannot apply a scale per channel (its dot products sum the channels before any scale),
so the recipe folds per-channel scales into the inputs on the host, exactly in real arithmetic,
and undoes the part that reaches the output after the core:

1. **rotation** (``rotate=True``): Q, K and V times one orthonormal Hadamard matrix ``R``
   (head_dim a power of two). ``(qR)·(kR) = q·k``, so the scores are unchanged; an outlier
   channel's energy is spread over all channels. The output comes back as ``out·Rᵀ``.
2. **Q/K balance** (SmoothQuant's migration, ``alpha``): per K/V head and channel ``c``,
   ``s_c = max|k_c|^α / max|q_c|^(1−α)`` (Q's maximum over the query heads of the group);
   ``q_c·s_c`` and ``k_c / s_c`` keep every product ``q_c·k_c``, with the two ranges balanced.
3. **V channel scales**: per K/V head and channel, ``t_c = max|v_c|``; the core gets ``v_c / t_c``
   (every channel spans the same range) and the host multiplies output channel ``c`` by ``t_c``
   (attention is linear in V).

:func:`fold_channels` returns the folded inputs and :meth:`Folded.output` undoes them; the
per-tensor scales of the folded inputs are the caller's (``python -m swatkit.golden.measure
outliers`` takes each tensor's maximum). docs/numerics.md has the measured errors.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Folded", "fold_channels", "hadamard"]


def hadamard(n: int) -> np.ndarray:
    """The orthonormal Hadamard matrix of order ``n`` (Sylvester's construction, ``H·Hᵀ = I``);
    ``ValueError`` unless ``n`` is a power of two."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1 or n & (n - 1):
        raise ValueError(f"a Hadamard rotation needs head_dim a power of two, not {n!r}")
    h = np.ones((1, 1))
    while h.shape[0] < n:
        h = np.block([[h, h], [h, -h]])
    return h / np.sqrt(n)


@dataclass(frozen=True)
class Folded:
    """Inputs for the core (``q``, ``k``, ``v``, shaped as given) and what undoes the fold on
    its output: ``v_scale`` (K/V heads, head_dim), ``rotation`` (head_dim², or ``None``)."""

    q: np.ndarray
    k: np.ndarray
    v: np.ndarray
    v_scale: np.ndarray
    rotation: np.ndarray | None

    def output(self, out) -> np.ndarray:
        """The attention of the original inputs from the attention of the folded ones (real
        values, shaped like ``q``)."""
        out = np.asarray(out, dtype=np.float64)
        flat = out.ndim == 2
        o = out[None] if flat else out
        group = o.shape[0] // self.v_scale.shape[0]
        o = o * np.repeat(self.v_scale, group, axis=0)[:, None, :]
        if self.rotation is not None:
            o = o @ self.rotation.T
        return o[0] if flat else o


def _heads(x, name: str) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim not in (2, 3):
        raise ValueError(f"{name} must be (N, head_dim) or (heads, N, head_dim), not shape "
                         f"{x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{name} contains NaN or infinity")
    return x[None] if x.ndim == 2 else x


def fold_channels(q, k, v, *, alpha: float = 0.5, rotate: bool = False) -> Folded:
    """Fold per-channel scales into ``q``, ``k``, ``v`` (see the module docstring): 2-D
    (N, head_dim) or grouped 3-D inputs, ``q`` (H, N, d) on ``k``, ``v`` (K, N, d) with H a
    multiple of K (Hugging Face's ``repeat_kv`` order, as the golden models). ``alpha`` in
    [0, 1]: 0 leaves K as it is, 1 leaves Q as it is."""
    if isinstance(alpha, bool) or not isinstance(alpha, int | float) or not 0 <= alpha <= 1:
        raise ValueError(f"alpha must be a number in [0, 1], not {alpha!r}")
    flat = np.ndim(q) == 2
    q3, k3, v3 = _heads(q, "q"), _heads(k, "k"), _heads(v, "v")
    if k3.shape != v3.shape or q3.shape[1:] != k3.shape[1:] or q3.shape[0] % k3.shape[0]:
        raise ValueError(f"q {np.shape(q)} on k {np.shape(k)}, v {np.shape(v)}: k and v must "
                         f"match, and q's heads be a multiple of theirs on the same (N, d)")
    group = q3.shape[0] // k3.shape[0]
    rot = hadamard(q3.shape[2]) if rotate else None
    if rot is not None:
        q3, k3, v3 = q3 @ rot, k3 @ rot, v3 @ rot
    # Q/K balance, per K/V head and channel (Q's maximum over the heads of its group)
    mq = np.abs(q3).max(axis=1).reshape(k3.shape[0], group, -1).max(axis=1)
    mk = np.abs(k3).max(axis=1)
    live = (mq > 0) & (mk > 0)
    s = np.where(live, mk ** alpha / np.where(live, mq, 1.0) ** (1 - alpha), 1.0)
    q3 = q3 * np.repeat(s, group, axis=0)[:, None, :]
    k3 = k3 / s[:, None, :]
    t = np.abs(v3).max(axis=1)
    t = np.where(t > 0, t, 1.0)
    v3 = v3 / t[:, None, :]
    if flat:
        q3, k3, v3 = q3[0], k3[0], v3[0]
    return Folded(q3, k3, v3, t, rot)
