"""Golden models of sliding-window attention (pure NumPy).

* :func:`attention_reference` — float64 dense masked softmax attention, O(N²): the oracle.
* :func:`window_attention` — float64, banded: O(N·W·d) time, O(N·W) memory.
* :func:`fixed_point_attention` — the bit-exact model of the integer datapath (the numeric
  contract of :mod:`swatkit.golden.numerics`); the RTL must equal it exactly.
* :func:`error_report` — the fixed-point model's error against the float model.

Heads: every model takes one head, ``q``, ``k``, ``v`` of shape ``(N, d)``, or grouped query
heads, ``q`` ``(H, N, d)`` and ``k``, ``v`` ``(K, N, d)`` with ``H`` a multiple of ``K``: query
head ``h`` uses K/V head ``h // (H / K)`` (Hugging Face's ``repeat_kv`` order), and the results
gain a leading head axis. Each head is the one-head model on its K/V head. GPT-OSS's learned
sinks are ``sink_logits=`` (one real value per query head, in units of ``q·k/sqrt(d)``): they join
each row's softmax max and denominator and carry no value; StreamingLLM's sink keys are
``spec.sink_tokens``. See docs/numerics.md, "Grouped heads and attention sinks".

Global tokens (``spec.global_tokens``): every row attends its band and the global columns through
``q``, ``k``, ``v`` (a global column inside the band counts once); a global row attends all N keys.
Hugging Face's Longformer computes the global rows with their own projections (``query_global``,
``key_global``, ``value_global``); every model here takes them as the optional keyword
``global_qkv=(q_g, k_g, v_g)``, and then the global rows use ``q_g``, ``k_g``, ``v_g``. Without it
the global rows use ``q``, ``k``, ``v``. See docs/numerics.md, "Global tokens".

The banded models evaluate rows in chunks. A dilated band is ``dilation`` independent contiguous
bands (rows and keys of one residue class modulo the dilation), so every chunk is one dense
block product ``Q_chunk · K_span^T`` whose diagonal band holds the row's band scores. Integer
products go through float64 matrix products only where every partial sum is an integer below
2^53 (then the result is exact whatever the summation order); otherwise through int64.
"""

from __future__ import annotations

import itertools
from typing import NamedTuple

import numpy as np
from numpy.lib.stride_tricks import as_strided

from .checks import ConfigValueError, check_int
from .numerics import NumberFormat, dequantize
from .spec import AttentionSpec

__all__ = [
    "ErrorReport",
    "FixedPointResult",
    "attention_reference",
    "error_report",
    "fixed_point_attention",
    "sequence_runs",
    "window_attention",
]

_EXACT_FLOAT = 2 ** 53
# scores per batch of the block-sparse evaluation: its working set is about 100 bytes a score
_BATCH_SCORES = 2 ** 18


def _shape_name(name: str, ndim: int) -> str:
    if ndim == 2:
        return "a 2-D array (seq_len, head_dim)"
    heads = "heads" if name.startswith("q") else "kv_heads"
    return f"a 3-D array ({heads}, seq_len, head_dim)"


def _check_arrays(names, arrays, integer: bool, ndim: int = 2) -> list[np.ndarray]:
    """Each input an ``ndim``-D array; integer dtype (fixed point) or finite values (float)."""
    out = []
    for name, x in zip(names, arrays, strict=True):
        x = np.asarray(x)
        if x.ndim != ndim:
            raise ValueError(f"{name} must be {_shape_name(name, ndim)}, not shape {x.shape}")
        if integer and not np.issubdtype(x.dtype, np.integer):
            raise TypeError(f"{name} must be an integer array, not {x.dtype}")
        if not integer and not np.all(np.isfinite(x)):
            raise ValueError(f"{name} contains NaN or infinity")
        out.append(x)
    return out


class _Heads(NamedTuple):
    """Checked inputs with a head axis: q ``(H, N, d)``, k and v ``(K, N, d)``."""

    q: np.ndarray
    k: np.ndarray
    v: np.ndarray
    global_qkv: tuple | None          # (q_g (H, N, d), k_g (K, N, d), v_g (K, N, d)) or None
    sink_logits: np.ndarray | None    # (H,) float64 or None
    one_head: bool                    # 2-D inputs: the results have no head axis

    @property
    def heads(self) -> int:
        return self.q.shape[0]

    def kv_head(self, h: int) -> int:
        """Hugging Face's ``repeat_kv`` order: query head h uses K/V head h // (H / K)."""
        return h // (self.q.shape[0] // self.k.shape[0])

    def head(self, h: int):
        """``(q, k, v, global_qkv, sink)`` of query head ``h`` (2-D arrays)."""
        kv = self.kv_head(h)
        g = None if self.global_qkv is None else (
            self.global_qkv[0][h], self.global_qkv[1][kv], self.global_qkv[2][kv])
        z = None if self.sink_logits is None else self.sink_logits[h]
        return self.q[h], self.k[kv], self.v[kv], g, z

    def join(self, per_head):
        """Stack per-head results along a new first axis (none for 2-D inputs)."""
        return per_head[0] if self.one_head else np.stack(per_head)


def _check_sink_logits(sink_logits, heads: int) -> np.ndarray | None:
    """``sink_logits`` as ``(heads,)`` float64: one finite real value per query head."""
    if sink_logits is None:
        return None
    try:
        raw = np.asarray(sink_logits)
    except ValueError:  # (a ragged sequence)
        raw = np.asarray(None)
    if raw.dtype.kind not in "iuf":
        raise TypeError(f"sink_logits must be real numbers, not {sink_logits!r}")
    z = raw.astype(np.float64)
    if z.ndim > 1 or z.size != heads:
        raise ValueError(f"sink_logits must hold one value per query head ({heads}), not "
                         f"shape {z.shape}")
    if not np.all(np.isfinite(z)):
        raise ValueError("sink_logits contains NaN or infinity")
    return z.reshape(heads)


def _check_inputs(q, k, v, spec: AttentionSpec | None, integer: bool, global_qkv=None,
                  sink_logits=None) -> _Heads:
    """Check q, k, v (and the global projections and sink logits, if given).

    q of 2 (or fewer) dimensions is one head: ``(N, d)``, and k, v, ``q_g``, ``k_g``, ``v_g``
    must have its shape. q of 3 (or more) is ``(H, N, d)``: k, v are ``(K, N, d)`` with
    ``H`` a multiple of ``K``, ``q_g`` has q's shape and ``k_g``, ``v_g`` k's.
    """
    ndim = 3 if np.ndim(q) >= 3 else 2
    arrays = _check_arrays("qkv", (q, k, v), integer, ndim)
    shape = arrays[0].shape
    if ndim == 2:
        for name, x in zip("kv", arrays[1:], strict=True):
            if x.shape != shape:
                raise ValueError(f"{name} has shape {x.shape}, but q has shape {shape}")
        ref = {"q_g": "q", "k_g": "q", "v_g": "q"}
    else:
        q3, k3, v3 = arrays
        for name, x in (("q", q3), ("k", k3)):
            if not x.shape[0]:
                raise ValueError(f"{name} must have at least one head, not shape {x.shape}")
        if k3.shape[1:] != shape[1:]:
            raise ValueError(f"k has shape {k3.shape}, but q has shape {shape}")
        if v3.shape != k3.shape:
            raise ValueError(f"v has shape {v3.shape}, but k has shape {k3.shape}")
        if shape[0] % k3.shape[0]:
            raise ValueError(f"heads ({shape[0]}) must be a multiple of kv_heads "
                             f"({k3.shape[0]})")
        ref = {"q_g": "q", "k_g": "k", "v_g": "k"}
    if spec is not None and shape[-2:] != (spec.seq_len, spec.head_dim):
        raise ValueError(
            f"inputs have shape {shape[-2:]}, but the spec is (seq_len={spec.seq_len}, "
            f"head_dim={spec.head_dim})")
    if global_qkv is not None and spec is not None and spec.block_size:
        raise ValueError("global_qkv (Longformer's global projections) does not apply to a "
                         "block-sparse spec: BigBird computes every row with q, k, v")
    if global_qkv is not None:
        if not isinstance(global_qkv, tuple | list):
            raise TypeError("global_qkv must be a tuple of three arrays (q_g, k_g, v_g), not "
                            f"{type(global_qkv).__name__}")
        if len(global_qkv) != 3:
            raise ValueError("global_qkv must be a tuple of three arrays (q_g, k_g, v_g), not "
                             f"{len(global_qkv)} items")
        names = ("q_g", "k_g", "v_g")
        global_qkv = tuple(_check_arrays(names, global_qkv, integer, ndim))
        shapes = {"q": shape, "k": arrays[1].shape}
        for name, x in zip(names, global_qkv, strict=True):
            if x.shape != shapes[ref[name]]:
                raise ValueError(f"{name} has shape {x.shape}, but {ref[name]} has shape "
                                 f"{shapes[ref[name]]}")
    heads = shape[0] if ndim == 3 else 1
    sinks = _check_sink_logits(sink_logits, heads)
    if ndim == 2:
        arrays = [x[None] for x in arrays]
        if global_qkv is not None:
            global_qkv = tuple(x[None] for x in global_qkv)
    return _Heads(*arrays, global_qkv, sinks, ndim == 2)


def _check_global_tokens(tokens, n: int) -> np.ndarray:
    if isinstance(tokens, str) or not isinstance(tokens, tuple | list | np.ndarray):
        raise TypeError(f"global_tokens must be a sequence of integers, not {tokens!r}")
    for g in tokens:
        if isinstance(g, bool) or not isinstance(g, int | np.integer):
            raise TypeError(f"global_tokens must be a sequence of integers, not {tokens!r}")
        if not 0 <= g < n:
            raise ValueError(f"global token {g} is outside the sequence [0, {n})")
    return np.asarray(tokens, dtype=np.int64).reshape(-1)


def _softmax_rows(q, k, v, mask, sink=None) -> np.ndarray:
    """Masked softmax rows; ``mask`` holds multiplicities (a key counted c times enters the
    max once and the denominator and the value sum c times: BigBird's repeated blocks)."""
    s = np.where(mask > 0, q @ k.T / np.sqrt(q.shape[1]), -np.inf)
    m = s.max(axis=1, keepdims=True)
    if sink is None:
        s = np.exp(s - m) * mask
        return (s / s.sum(axis=1, keepdims=True)) @ v
    m = np.maximum(m, sink)      # GPT-OSS: the sink joins the max and the denominator
    s = np.exp(s - m) * mask
    return (s / (s.sum(axis=1, keepdims=True) + np.exp(sink - m))) @ v


def _check_mask(mask, n: int) -> np.ndarray:
    """A boolean mask, or an integer array of multiplicities (``AttentionSpec.key_counts``),
    as int64 counts."""
    arr = np.asarray(mask)
    if arr.dtype.kind not in "biu":   # (anything else is read as a boolean mask, as before)
        arr = arr.astype(bool)
    if arr.shape != (n, n):
        raise ValueError(f"mask has shape {arr.shape}, expected {(n, n)}")
    if arr.dtype.kind == "i" and (arr < 0).any():
        i, j = np.argwhere(arr < 0)[0]
        raise ValueError(f"mask[{i}, {j}] = {arr[i, j]} is negative (a count of keys)")
    if not (arr != 0).any(axis=1).all():
        raise ValueError("every row of mask must attend at least one key")
    return arr.astype(np.int64)


def attention_reference(q, k, v, mask, *, global_qkv=None, global_tokens=(),
                        sink_logits=None) -> np.ndarray:
    """Dense float64 softmax attention ``softmax(q·kᵀ/sqrt(d) masked)·v``.

    Parameters
    ----------
    q : array (N, d) or (H, N, d)
        One head, or ``H`` query heads.
    k, v : array (N, d), or (K, N, d) with 3-D q
        ``H`` a multiple of ``K``: query head ``h`` uses K/V head ``h // (H / K)`` (Hugging
        Face's ``repeat_kv`` order). The result has q's shape.
    mask : bool array (N, N), or integer array (N, N)
        ``mask[i, j]`` if row i attends key j (every head); every row must attend a key. An
        integer array gives multiplicities (``AttentionSpec.key_counts()``): key j counted c
        times enters row i's denominator and value sum c times (BigBird's repeated random
        blocks, counted as Hugging Face counts them); boolean is the same as 0/1.
    global_qkv : tuple of three arrays, optional
        Longformer's global projections ``(q_g, k_g, v_g)`` of every token (``q_g`` of q's
        shape, ``k_g``, ``v_g`` of k's). Rows in ``global_tokens`` then compute
        ``softmax(q_g[i]·k_gᵀ/sqrt(d))·v_g`` over all N keys; the other rows use q, k, v.
        Without it, every row uses q, k, v.
    global_tokens : sequence of int
        The global rows (any order). The mask row of each must be all True.
    sink_logits : array (H,) of float, optional
        GPT-OSS's learned sink of each query head (a scalar or one value for 2-D q), in the
        units of the scaled logits ``q·k/sqrt(d)``: it joins every row's max and denominator,
        ``p_j = e^(s_j − m) / (Σ e^(s − m) + e^(z − m))``, ``m = max(max s, z)``, and carries
        no value.

    Raises
    ------
    TypeError
        ``global_qkv`` is not a tuple or list, ``global_tokens`` is not a sequence of integers,
        or ``sink_logits`` are not real numbers.
    ValueError
        An input has the wrong shape or a NaN or infinity, the heads are not a multiple of the
        K/V heads, a mask row is empty or a count negative, a global token is outside the
        sequence, the mask row of a global token is not all True, or ``sink_logits`` has not one
        value per query head.
    """
    x = _check_inputs(q, k, v, None, False, global_qkv, sink_logits)
    n = x.q.shape[1]
    mask = _check_mask(mask, n)
    g = _check_global_tokens(global_tokens, n)
    for i in g:
        if not (mask[i] > 0).all():
            raise ValueError(f"row {i} is a global token, but its mask row is not all True")
    outs = []
    for h in range(x.heads):
        qh, kh, vh, gh, z = x.head(h)
        qh, kh, vh = (a.astype(np.float64) for a in (qh, kh, vh))
        out = _softmax_rows(qh, kh, vh, mask, z)
        if gh is not None and g.size:
            q_g, k_g, v_g = (a.astype(np.float64) for a in gh)
            out[g] = _softmax_rows(q_g[g], k_g, v_g, np.ones((g.size, n), dtype=bool), z)
        outs.append(out)
    return x.join(outs)


def _band_view(dense: np.ndarray, width: int) -> np.ndarray:
    """``view[a, t] = dense[a, a + t]``: the diagonal band of a (c, c + width − 1) block."""
    s0, s1 = dense.strides
    return as_strided(dense, shape=(dense.shape[0], width), strides=(s0 + s1, s1))


def _matmul(a: np.ndarray, b: np.ndarray, bound: int) -> np.ndarray:
    """``a @ b``; exact for integer operands when every |partial sum| <= bound."""
    if a.dtype.kind == "f":
        return a @ b
    if bound < _EXACT_FLOAT:
        return np.rint(a.astype(np.float64) @ b.astype(np.float64)).astype(np.int64)
    return a.astype(np.int64) @ b.astype(np.int64)


def _dense_rows(rows, q, k, v, weights, finish, qk_bound, pv_unit, out, extra):
    """Rows ``rows`` over all N keys, a few rows at a time (about ``_BATCH_SCORES`` at once)."""
    n = k.shape[0]
    step = max(1, _BATCH_SCORES // n)
    for a0 in range(0, rows.size, step):
        sub = rows[a0:a0 + step]
        scores = _matmul(q[sub], k.T, qk_bound)
        p, state = weights(scores, np.ones(scores.shape, dtype=bool))
        out[sub] = finish(_matmul(p, v, n * pv_unit), state)
        for e, s in zip(extra, state, strict=True):
            e[sub] = s


def _attend_blocks(q, k, v, spec: AttentionSpec, weights, finish, qk_bound=0, pv_unit=0):
    """Evaluate every row of a block-sparse (BigBird) spec, as :func:`_attend` does a band.

    Each non-global query block gathers the rows of its key blocks (``spec.block_key_slots()``:
    ``5 + r`` slots of ``b`` keys, a window slot that repeats a global one masked out, a random
    slot counted whatever it repeats) and is one dense
    ``b × (5 + r)·b`` block, batched over query blocks: O(N·(5 + r)·b·d). The global first and
    last blocks attend all N keys: O(b·N·d). No N × N matrix is formed.
    """
    n, b, nb = spec.seq_len, spec.block_size, spec.num_blocks
    d = q.shape[1]
    out = extra = None
    if nb > 2:
        index, slot_valid = spec.block_key_slots()
        width = index.shape[1] * b
        qb, kb, vb = (x.reshape(nb, b, d) for x in (q, k, v))
        step = max(1, _BATCH_SCORES // (b * width))  # query blocks per batch
        for c0 in range(0, nb - 2, step):
            c1 = min(c0 + step, nb - 2)
            c = c1 - c0
            keys = kb[index[c0:c1]].reshape(c, width, d)
            values = vb[index[c0:c1]].reshape(c, width, d)
            # (a stacked matmul with a transposed view of the keys misses BLAS: copy it)
            scores = _matmul(qb[1 + c0:1 + c1], np.ascontiguousarray(keys.transpose(0, 2, 1)),
                             qk_bound)
            valid = np.broadcast_to(np.repeat(slot_valid[c0:c1], b, axis=1)[:, None, :],
                                    scores.shape)
            p, state = weights(scores.reshape(c * b, width), valid.reshape(c * b, width))
            acc = _matmul(p.reshape(c, b, width), values, width * pv_unit)
            o = finish(acc.reshape(c * b, d), state)
            if out is None:
                out = np.zeros((n, d), dtype=o.dtype)
                extra = tuple(np.zeros(n, dtype=np.asarray(s).dtype) for s in state)
            rows = slice((1 + c0) * b, (1 + c1) * b)
            out[rows] = o
            for e, s in zip(extra, state, strict=True):
                e[rows] = s
    g = spec.global_positions()
    if out is None:  # every row is global: probe the output types on one row
        scores = _matmul(q[:1], k.T, qk_bound)
        p, state = weights(scores, np.ones(scores.shape, dtype=bool))
        o = finish(_matmul(p, v, n * pv_unit), state)
        out = np.zeros((n, d), dtype=o.dtype)
        extra = tuple(np.zeros(n, dtype=np.asarray(s).dtype) for s in state)
    _dense_rows(g, q, k, v, weights, finish, qk_bound, pv_unit, out, extra)
    return out, extra


def _attend(q, k, v, spec: AttentionSpec, weights, finish, qk_bound=0, pv_bound=0,
            global_qkv=None):
    """Evaluate every row of the window pattern.

    ``weights(S, valid) -> (p, state)`` turns a block of scores (rows × keys, ``valid`` marks the
    row's real keys) into unnormalised weights (zero where not valid); ``finish(acc, state)``
    normalises ``acc = p·V``. Band rows are evaluated chunk by chunk, with the spec's columns
    (global and sink tokens, ``spec.columns()``, where ``spec.column_valid`` says) through the
    ordinary ``k``, ``v``; rows that are global tokens densely over all keys, through
    ``global_qkv = (q_g, k_g, v_g)`` if given, else through ``q``, ``k``, ``v``: O(G·N·d).
    """
    n, before, after, dil = spec.seq_len, spec.before, spec.after, spec.dilation
    width = spec.window
    g = np.asarray(spec.global_tokens, dtype=np.int64)
    cols = spec.columns()
    out = None
    zero = np.zeros((1, q.shape[1]), dtype=k.dtype)
    for r in range(min(dil, n)):
        rows = np.arange(r, n, dil)
        m = rows.size
        # keys of this residue class, padded so that every band slot exists
        kp = np.concatenate([np.repeat(zero, before, 0), k[rows], np.repeat(zero, after, 0)])
        vp = np.concatenate([np.repeat(zero, before, 0), v[rows], np.repeat(zero, after, 0)])
        chunk = int(np.clip(width // 2, 64, 2048))
        for a0 in range(0, m, chunk):
            a1 = min(a0 + chunk, m)
            c = a1 - a0
            sub = np.arange(a0, a1)[:, None] + np.arange(width)[None, :] - before
            valid = (sub >= 0) & (sub < m)
            dense = _matmul(q[rows[a0:a1]], kp[a0:a1 + width - 1].T, qk_bound)
            scores = _band_view(dense, width)
            if cols.size:
                scores = np.concatenate([scores, _matmul(q[rows[a0:a1]], k[cols].T, qk_bound)],
                                        1)
                valid = np.concatenate([valid, spec.column_valid(rows[a0:a1])], 1)
            else:
                scores = np.ascontiguousarray(scores)
            p, state = weights(scores, valid)
            p_dense = np.zeros((c, c + width - 1), dtype=p.dtype)
            _band_view(p_dense, width)[...] = p[:, :width]
            acc = _matmul(p_dense, vp[a0:a1 + width - 1], pv_bound)
            if cols.size:
                acc = acc + _matmul(p[:, width:], v[cols], pv_bound)
            o = finish(acc, state)
            if out is None:
                out = np.zeros((n, q.shape[1]), dtype=o.dtype)
                extra = tuple(np.zeros(n, dtype=np.asarray(s).dtype) for s in state)
            out[rows[a0:a1]] = o
            for e, s in zip(extra, state, strict=True):
                e[rows[a0:a1]] = s
    if g.size:
        q_g, k_g, v_g = (q, k, v) if global_qkv is None else global_qkv
        scores = _matmul(q_g[g], k_g.T, qk_bound)
        p, state = weights(scores, np.ones(scores.shape, dtype=bool))
        out[g] = finish(_matmul(p, v_g, pv_bound), state)
        for e, s in zip(extra, state, strict=True):
            e[g] = s
    return out, extra


def window_attention(q, k, v, spec: AttentionSpec, *, global_qkv=None,
                     sink_logits=None) -> np.ndarray:
    """Float64 sliding-window attention over the pattern of ``spec``, O(N·W·d) time.

    Equal to ``attention_reference(q, k, v, spec.key_counts(), global_qkv=global_qkv,
    global_tokens=spec.global_tokens, sink_logits=sink_logits)`` up to float64 rounding
    (``spec.mask()`` gives the same except where a BigBird random block repeats a key: then
    the key counts once per slot, as in Hugging Face's ``BigBirdBlockSparseAttention``).

    Parameters
    ----------
    q : array (N, d) or (H, N, d)
        Finite real values: one head, or ``H`` query heads.
    k, v : arrays (N, d), or (K, N, d) with 3-D q
        Finite real values. ``H`` is a multiple of ``K``; query head ``h`` uses K/V head
        ``h // (H / K)`` (Hugging Face's ``repeat_kv`` order). The result has q's shape.
    spec : AttentionSpec
    global_qkv : tuple of three arrays, optional
        Longformer's global projections ``(q_g, k_g, v_g)`` of every token (``query_global``,
        ``key_global``, ``value_global``; ``q_g`` of q's shape, ``k_g``, ``v_g`` of k's). Rows in
        ``spec.global_tokens`` then attend all N keys through them; every other row still uses
        q, k, v (also for its global columns). Without it, the global rows use q, k, v. With a
        spec without global tokens they are checked and go unused.
    sink_logits : array (H,) of float, optional
        GPT-OSS's learned sink of each query head (a scalar or one value for 2-D q), in the units
        of the scaled logits ``q·k/sqrt(d)``: it joins the max and the denominator of every row
        of its head and carries no value (see :func:`attention_reference`).

    Raises
    ------
    TypeError
        ``global_qkv`` is not a tuple or list, or ``sink_logits`` are not real numbers.
    ValueError
        An input has the wrong shape or contains NaN or infinity, the heads are not a multiple
        of the K/V heads, ``global_qkv`` does not have three items, or ``sink_logits`` has not
        one finite value per query head.
    """
    x = _check_inputs(q, k, v, spec, False, global_qkv, sink_logits)
    scale = 1.0 / np.sqrt(spec.head_dim)
    outs = []
    for h in range(x.heads):
        qh, kh, vh, gh, z = x.head(h)
        qh, kh, vh = (a.astype(np.float64) for a in (qh, kh, vh))
        if gh is not None:
            gh = tuple(a.astype(np.float64) for a in gh)

        def weights(s, valid, z=z):
            s = np.where(valid, s * scale, -np.inf)
            m = s.max(axis=1, keepdims=True)
            if z is None:
                p = np.exp(s - m)
                return p, (p.sum(axis=1),)
            m = np.maximum(m, z)  # the sink joins the max and the denominator
            p = np.exp(s - m)
            return p, (p.sum(axis=1) + np.exp(z - m[:, 0]),)

        def finish(acc, state):
            return acc / state[0][:, None]

        if spec.block_size:
            outs.append(_attend_blocks(qh, kh, vh, spec, weights, finish)[0])
        else:
            outs.append(_attend(qh, kh, vh, spec, weights, finish, global_qkv=gh)[0])
    return x.join(outs)


class FixedPointResult(NamedTuple):
    """Output of :func:`fixed_point_attention`: O rows and per-row intermediates (with a
    leading head axis for 3-D inputs: ``(H, N, d)``, ``(H, N)``, ``(H, N)``)."""

    out: np.ndarray       # (N, d) int64, signed out_bits
    row_max: np.ndarray   # (N,) int64: m_i, the largest score of the row (or its sink score)
    row_sum: np.ndarray   # (N,) int64: l_i, the sum of the row's probabilities (and the sink's)
    # (for a global row with global projections: those of its q_g·k_g scores)


def fixed_point_attention(q_int, k_int, v_int, spec: AttentionSpec,
                          fmt: NumberFormat | None = None, *,
                          global_qkv=None, sink_logits=None) -> FixedPointResult:
    """The bit-exact model of the datapath (see :mod:`swatkit.golden.numerics` for each step).

    Parameters
    ----------
    q_int : integer array (N, d) or (H, N, d)
        Signed ``fmt.data_bits``-bit values: one head, or ``H`` query heads.
    k_int, v_int : integer arrays (N, d), or (K, N, d) with 3-D q
        Signed ``fmt.data_bits``-bit values; query head ``h`` uses K/V head ``h // (H / K)``
        (Hugging Face's ``repeat_kv`` order). The results have a head axis with 3-D q.
    spec : AttentionSpec
    fmt : NumberFormat, optional
        Defaults to ``NumberFormat()``.
    global_qkv : tuple of three integer arrays, optional
        Longformer's global projections ``(q_g, k_g, v_g)`` of every token (``q_g`` of q's
        shape, ``k_g``, ``v_g`` of k's), signed ``fmt.data_bits``-bit values with the scales of
        q, k, v. Rows in ``spec.global_tokens`` then run the six steps over all N keys with them
        (and their ``row_max``, ``row_sum`` are those of that computation); every other row
        uses q, k, v. Without it, the global rows use q, k, v. With a spec without global
        tokens they are checked and go unused.
    sink_logits : array (H,) of float, optional
        GPT-OSS's learned sink of each query head (a scalar or one value for 2-D q), real, in
        the units of ``q·k/sqrt(d)``; quantised by :meth:`NumberFormat.sink_scores` and joined
        to every row's max and sum by :meth:`NumberFormat.row_weights`.

    Raises
    ------
    TypeError
        An input is not an integer array, ``global_qkv`` is not a tuple or list, or
        ``sink_logits`` are not real numbers.
    ValueError
        An input has the wrong shape, or a value outside the signed ``data_bits`` range, the
        heads are not a multiple of the K/V heads, ``global_qkv`` does not have three items, or
        ``sink_logits`` has not one finite value per query head within the scores' range.
    """
    fmt = NumberFormat() if fmt is None else fmt
    x = _check_inputs(q_int, k_int, v_int, spec, True, global_qkv, sink_logits)
    named = [("q_int", x.q), ("k_int", x.k), ("v_int", x.v)]
    if x.global_qkv is not None:
        named += zip(("q_g", "k_g", "v_g"), x.global_qkv, strict=True)
    for name, a in named:
        if a.size and (a.min() < fmt.data_min or a.max() > fmt.data_max):
            bad = a.min() if a.min() < fmt.data_min else a.max()
            raise ValueError(f"{name} has value {bad} outside the {fmt.data_bits}-bit signed "
                             f"range [{fmt.data_min}, {fmt.data_max}]")
    sinks = None if x.sink_logits is None else fmt.sink_scores(x.sink_logits, spec.head_dim)
    keys = spec.max_keys_per_row
    fmt.widths(spec.head_dim, keys, sink=sinks is not None)  # asserts no intermediate overflows
    big = 2 ** (fmt.data_bits - 1)
    qk_bound, pv_unit = spec.head_dim * big * big, (2 ** fmt.prob_bits - 1) * big
    results = []
    for h in range(x.heads):
        q, k, v, gh, _ = x.head(h)
        q, k, v = (a.astype(np.int64) for a in (q, k, v))
        if gh is not None:
            gh = tuple(a.astype(np.int64) for a in gh)
        sink = None if sinks is None else sinks[h]

        def weights(s, valid, sink=sink):
            p, m, total = fmt.row_weights(s, valid, spec.head_dim, sink)   # 2.–5. (l)
            return p, (m, total)

        def finish(acc, state):
            return fmt.normalise(acc, state[1][:, None])                    # 6.

        if spec.block_size:
            out, (row_max, row_sum) = _attend_blocks(q, k, v, spec, weights, finish, qk_bound,
                                                     pv_unit)
        else:
            out, (row_max, row_sum) = _attend(q, k, v, spec, weights, finish,
                                              qk_bound=qk_bound, pv_bound=keys * pv_unit,
                                              global_qkv=gh)
        results.append((out, row_max, row_sum))
    return FixedPointResult(*(x.join([r[i] for r in results]) for i in range(3)))


def sequence_runs(out: np.ndarray, lengths) -> list[np.ndarray]:
    """The rows each run of a split sequence gives, from ``out``, the rows of one run over the
    whole sequence (:func:`fixed_point_attention`'s ``out``, rows on its second-to-last axis):
    run r of ``lengths[r]`` rows gives the next ``lengths[r]`` rows. This is the decode
    contract (a prefill of P rows, then runs that continue the sequence: docs/rtl.md,
    "Decode") — the slices of the one-run model, not a second model.

    Raises
    ------
    TypeError, ValueError
        A length is not a positive integer, or the lengths do not add up to the rows of
        ``out``.
    """
    n = np.shape(out)[-2] if np.ndim(out) >= 2 else -1
    lengths = [check_int("lengths", x, 1) for x in lengths]
    if sum(lengths) != n:
        raise ConfigValueError(f"lengths must add up to the sequence's {n} rows, not "
                               f"{sum(lengths)}", "lengths")
    ends = np.cumsum([0, *lengths])
    return [np.asarray(out)[..., a:b, :] for a, b in itertools.pairwise(ends)]


class ErrorReport(NamedTuple):
    """Error of the fixed-point model against float64 on the same (dequantised) inputs."""

    max_abs: float        # real units
    mean_abs: float       # real units
    max_lsb: float        # in output LSBs (fmt.scale_o)
    mean_lsb: float
    bound_lsb: float      # NumberFormat.error_bound for this spec


def error_report(q_int, k_int, v_int, spec: AttentionSpec, fmt: NumberFormat | None = None, *,
                 global_qkv=None, sink_logits=None) -> ErrorReport:
    """Compare :func:`fixed_point_attention` with :func:`window_attention` on the dequantised
    inputs (``global_qkv``, if given, goes to both; ``q_g``, ``k_g``, ``v_g`` are dequantised
    with ``scale_q``, ``scale_k``, ``scale_v``; ``sink_logits``, if given, reach the float
    model as their quantised scores times ``fmt.score_unit``). 2-D or 3-D inputs, as the
    models take them; the figures are over every head."""
    fmt = NumberFormat() if fmt is None else fmt
    fixed = fixed_point_attention(q_int, k_int, v_int, spec, fmt, global_qkv=global_qkv,
                                  sink_logits=sink_logits).out
    scales = (fmt.scale_q, fmt.scale_k, fmt.scale_v)
    if global_qkv is not None:
        global_qkv = tuple(dequantize(x, s) for x, s in zip(global_qkv, scales, strict=True))
    if sink_logits is not None:
        sink_logits = (fmt.sink_scores(sink_logits, spec.head_dim)
                       * fmt.score_unit(spec.head_dim))
    ref = window_attention(*(dequantize(x, s) for x, s in
                             zip((q_int, k_int, v_int), scales, strict=True)), spec,
                           global_qkv=global_qkv, sink_logits=sink_logits)
    err = np.abs(dequantize(fixed, fmt.scale_o) - ref)
    lsb = err / fmt.scale_o
    return ErrorReport(float(err.max()), float(err.mean()), float(lsb.max()),
                       float(lsb.mean()), fmt.error_bound(spec.head_dim, spec.max_keys_per_row,
                                                          sink=sink_logits is not None))
