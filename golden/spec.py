"""The attention workload: one head of sliding-window attention, and its window pattern.

:class:`AttentionSpec` is the single definition of which keys each query row attends to. The
golden models, the RTL, the cycle model and the energy model all take their key sets and counts
from it; none of them has its own copy of the rule.

The rule (row ``i`` of a sequence of ``seq_len`` rows):

* **band**: keys ``i + dilation·t`` for ``t = -before … after`` (``t = 0`` is the row itself), kept
  where ``0 <= key < seq_len``;
* **global tokens** (Longformer / BigBird): every row also attends to every position in
  ``global_tokens``, and a row that *is* a global token attends to every key.

The spec says only which keys a row attends to, not with which projections. Longformer computes
the global rows with their own projections (``query_global``, ``key_global``, ``value_global``);
the golden models take those as an optional input (``global_qkv``, see
:mod:`swatkit.golden.models`).

Longformer's ``attention_window=512`` is ``before = after = 256``; Mistral's
``sliding_window=4096`` is the row and the 4095 keys before it (``before=4095, after=0``).
"""

from __future__ import annotations

import dataclasses
import itertools
import operator
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

__all__ = ["AttentionSpec", "BandKeys"]


def _check_int(name: str, value, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise TypeError(f"{name} must be an integer, not {value!r}")
    if value < minimum:
        qualifier = "positive" if minimum == 1 else "non-negative"
        raise ValueError(f"{name} must be a {qualifier} integer, not {value}")


class BandKeys(NamedTuple):
    """Key indices of every row's band, vectorised.

    ``index[i, t]`` is the key at band offset ``t - before`` (times the dilation) of row ``i``;
    ``valid[i, t]`` is False where that key falls outside ``[0, seq_len)`` (``index`` is then
    clipped into range so that it can still be used to gather).
    """

    index: np.ndarray  # (seq_len, before + after + 1) int64
    valid: np.ndarray  # (seq_len, before + after + 1) bool


@dataclass(frozen=True)
class AttentionSpec:
    """One head of sliding-window attention.

    Parameters
    ----------
    seq_len : int
        Number of query rows and of key/value rows, ``N >= 1``.
    head_dim : int
        Width ``d`` of every Q, K, V and O row, ``d >= 1``.
    before, after : int
        Number of band keys before and after the query row (the row itself always counts).
    dilation : int
        Distance between consecutive band keys (1 = contiguous window).
    global_tokens : tuple of int
        Positions that every row attends to and that attend to every key. Sorted, distinct,
        each in ``[0, seq_len)``. (Longformer's ``is_index_global_attn``; the models' optional
        ``global_qkv`` gives these rows their own projections.)

    Raises
    ------
    TypeError
        A field has the wrong type.
    ValueError
        A field is out of range, or ``global_tokens`` is not sorted, distinct and in range.
    """

    seq_len: int
    head_dim: int
    before: int = 256
    after: int = 256
    dilation: int = 1
    global_tokens: tuple[int, ...] = ()

    def __post_init__(self):
        _check_int("seq_len", self.seq_len, 1)
        _check_int("head_dim", self.head_dim, 1)
        _check_int("before", self.before, 0)
        _check_int("after", self.after, 0)
        _check_int("dilation", self.dilation, 1)
        tokens = self.global_tokens
        if isinstance(tokens, str) or not isinstance(tokens, tuple | list):
            raise TypeError(f"global_tokens must be a tuple of integers, not {tokens!r}")
        for g in tokens:
            if isinstance(g, bool) or not isinstance(g, int | np.integer):
                raise TypeError(f"global_tokens must be a tuple of integers, not {tokens!r}")
            if not 0 <= g < self.seq_len:
                raise ValueError(
                    f"global token {g} is outside the sequence [0, {self.seq_len})")
        if any(a >= b for a, b in itertools.pairwise(tokens)):
            raise ValueError(
                f"global_tokens must be sorted and distinct, not {tuple(tokens)!r}")
        object.__setattr__(self, "global_tokens", tuple(operator.index(g) for g in tokens))

    # -- presets with the meaning the model families give their parameters --------------------

    @classmethod
    def longformer(cls, seq_len: int, head_dim: int, attention_window: int = 512,
                   global_tokens=()) -> AttentionSpec:
        """Hugging Face Longformer: ``attention_window`` (even) keys, half on each side."""
        if isinstance(attention_window, bool) or not isinstance(attention_window, int):
            raise TypeError(f"attention_window must be an integer, not {attention_window!r}")
        if attention_window <= 0 or attention_window % 2:
            raise ValueError(
                f"attention_window must be a positive even integer, not {attention_window}")
        half = attention_window // 2
        return cls(seq_len, head_dim, before=half, after=half,
                   global_tokens=tuple(global_tokens))

    @classmethod
    def causal(cls, seq_len: int, head_dim: int, sliding_window: int = 4096) -> AttentionSpec:
        """Mistral / Gemma: the row itself and the ``sliding_window - 1`` rows before it."""
        if isinstance(sliding_window, bool) or not isinstance(sliding_window, int):
            raise TypeError(f"sliding_window must be an integer, not {sliding_window!r}")
        if sliding_window <= 0:
            raise ValueError(
                f"sliding_window must be a positive integer, not {sliding_window}")
        return cls(seq_len, head_dim, before=sliding_window - 1, after=0)

    def replace(self, **changes) -> AttentionSpec:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    def as_options(self) -> dict:
        """The spec in the presets' terms (the ``[spec]`` table of a swatkit config):
        ``attention_window`` for an even bidirectional window, ``causal`` and ``sliding_window``
        for a causal one. ``ValueError`` for a window neither preset makes (unequal sides)."""
        out = {"seq_len": self.seq_len, "head_dim": self.head_dim}
        if self.after == 0:
            out.update(causal=True, sliding_window=self.before + 1)
        elif self.before == self.after:
            out["attention_window"] = 2 * self.before
        else:
            raise ValueError(f"window {self.before}+1+{self.after} has no preset form (a "
                             "bidirectional window has equal sides, a causal one none after)")
        out.update(dilation=self.dilation, global_tokens=list(self.global_tokens))
        return out

    # -- derived quantities ------------------------------------------------------------------

    @property
    def is_causal(self) -> bool:
        """True if no row attends to a later row."""
        return self.after == 0 and not self.global_tokens

    @property
    def window(self) -> int:
        """Band keys of a row away from the sequence edges: ``before + after + 1``."""
        return self.before + self.after + 1

    @property
    def max_keys_per_row(self) -> int:
        """The most keys any row attends to (``W`` of the datapath's width derivations)."""
        if self.global_tokens:
            return self.seq_len
        return int(self.keys_per_row().max())

    def band_offsets(self) -> np.ndarray:
        """Offsets of the band keys from the query row, in key order."""
        return np.arange(-self.before, self.after + 1, dtype=np.int64) * self.dilation

    def band_keys(self) -> BandKeys:
        """Every row's band keys (without the global-token part), as index and validity arrays."""
        index = np.arange(self.seq_len, dtype=np.int64)[:, None] + self.band_offsets()[None, :]
        valid = (index >= 0) & (index < self.seq_len)
        return BandKeys(np.clip(index, 0, self.seq_len - 1), valid)

    def in_band(self, rows, keys) -> np.ndarray:
        """Whether each key lies in the band of the matching row (broadcasting)."""
        delta = np.asarray(keys, dtype=np.int64) - np.asarray(rows, dtype=np.int64)
        return ((delta % self.dilation == 0)
                & (delta >= -self.before * self.dilation)
                & (delta <= self.after * self.dilation))

    def row_keys(self, row: int) -> np.ndarray:
        """The sorted key indices that row ``row`` attends to."""
        if not 0 <= row < self.seq_len:
            raise ValueError(f"row {row} is outside the sequence [0, {self.seq_len})")
        if row in self.global_tokens:
            return np.arange(self.seq_len, dtype=np.int64)
        keys = self.band_offsets() + row
        keys = keys[(keys >= 0) & (keys < self.seq_len)]
        return np.union1d(keys, np.asarray(self.global_tokens, dtype=np.int64))

    def mask(self) -> np.ndarray:
        """The dense ``(seq_len, seq_len)`` boolean mask: ``mask[i, j]`` if row i attends key j."""
        n = self.seq_len
        rows = np.arange(n)[:, None]
        mask = self.in_band(rows, np.arange(n)[None, :])
        g = np.asarray(self.global_tokens, dtype=np.int64)
        mask[:, g] = True
        mask[g, :] = True
        return mask

    def keys_per_row(self) -> np.ndarray:
        """Number of keys each row attends to, shape ``(seq_len,)``."""
        rows = np.arange(self.seq_len, dtype=np.int64)
        # band offsets t in [-before, after] with 0 <= row + dilation*t < seq_len
        last = np.minimum(self.after, (self.seq_len - 1 - rows) // self.dilation)
        first = np.maximum(-self.before, -(rows // self.dilation))
        counts = last - first + 1
        g = np.asarray(self.global_tokens, dtype=np.int64)
        if g.size:
            counts = counts + (~self.in_band(rows[:, None], g[None, :])).sum(axis=1)
            counts[g] = self.seq_len
        return counts.astype(np.int64)

    def pair_count(self) -> int:
        """Total number of (query, key) pairs: the QK and the SV multiply-accumulate rows."""
        return int(self.keys_per_row().sum())
