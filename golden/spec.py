"""The attention workload: one head of sliding-window attention, and its window pattern.

:class:`AttentionSpec` is the single definition of which keys each query row attends to. The
golden models, the RTL, the cycle model and the energy model all take their key sets and counts
from it; none of them has its own copy of the rule.

The rule (row ``i`` of a sequence of ``seq_len`` rows):

* **band**: keys ``i + dilation·t`` for ``t = -before … after`` (``t = 0`` is the row itself), kept
  where ``0 <= key < seq_len``;
* **global tokens** (Longformer): every row also attends to every position in
  ``global_tokens``, and a row that *is* a global token attends to every key;
* **sink tokens** (StreamingLLM): every row also attends to the first ``sink_tokens`` positions,
  key-only columns (a sink row attends only its own keys), within causality: in a causal band
  (``after = 0``) row ``i`` attends sink ``j`` only if ``j <= i``.

The global and sink positions are the spec's *columns* (:meth:`AttentionSpec.columns`); whether
row ``i`` attends column ``j`` outside its band is :meth:`AttentionSpec.column_valid`, the one
definition :meth:`~AttentionSpec.mask`, :meth:`~AttentionSpec.row_keys`,
:meth:`~AttentionSpec.keys_per_row` and the golden models use.

A one-sided band with global tokens is *not* causal (``is_causal`` is False): a global row
attends every key and earlier rows attend the later global columns. StreamingLLM's "causal
window plus the first 4 tokens" is ``sink_tokens=4``, not ``global_tokens=(0, 1, 2, 3)``.

or, for a **block-sparse** spec (BigBird's "ITC" pattern, ``block_size = b > 0``, ``seq_len`` a
multiple of ``b``, ``nb = seq_len / b`` blocks; row ``i`` is in query block ``i // b``):

* query blocks ``0`` and ``nb − 1`` are global: they attend every key;
* every query block attends key blocks ``0`` and ``nb − 1``;
* query block ``i`` (``1 <= i <= nb − 2``) also attends key blocks ``i − 1, i, i + 1`` (the block
  window) and the ``r = num_random_blocks`` key blocks of row ``i − 1`` of the random table
  (:attr:`AttentionSpec.random_table`, shape ``(nb − 2, r)``, every entry a key block in
  ``[0, nb)``); ``r <= nb − 5`` whenever the table has rows (``nb >= 3``), else ``ValueError``.
  The table is drawn from ``pattern_seed`` by :func:`random_block_table` (whose rows are distinct
  and avoid blocks ``0``, ``nb − 1`` and ``i − 1 … i + 1``: the BigBird paper's rule) or given
  explicitly (``explicit_random_table``), and an explicit table may break that rule, as Hugging
  Face's do.

**Counting** (Hugging Face's ``BigBirdBlockSparseAttention``): a non-global query block's key
blocks are its *slots* (:meth:`AttentionSpec.block_key_slots`): ``0, i − 1, i, i + 1, nb − 1``
with the window's repeats of the global blocks removed (``i − 1 = 0`` for block 1, ``i + 1 =
nb − 1`` for block ``nb − 2``: these count once), then its ``r`` random blocks, each of which
counts *every* time: a random block that is also a window or global block, or that appears twice
in its row, enters the softmax once per slot (weight and value alike). HF concatenates the
gathered random blocks to the window and global blocks without removing repeats; its eval-mode
table is all zeros, so there key block 0 counts ``1 + r`` times. :meth:`AttentionSpec.block_counts`
and :meth:`AttentionSpec.key_counts` give these multiplicities; :meth:`AttentionSpec.mask` is
where they are non-zero. A global query block attends every key once.

A block-sparse spec has no token band (``before = after = 0``, ``dilation = 1``), no
``global_tokens`` and no ``sink_tokens``: its global rows and columns are the first and last
blocks (:meth:`AttentionSpec.global_positions`).

The spec says only which keys a row attends to, not with which projections. Longformer computes
the global rows with their own projections (``query_global``, ``key_global``, ``value_global``);
the golden models take those as an optional input (``global_qkv``, see
:mod:`swatkit.golden.models`).

Longformer's ``attention_window=512`` is ``before = after = 256``; Mistral's
``sliding_window=4096`` is the row and the 4095 keys before it (``before=4095, after=0``).
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import operator
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

__all__ = ["AttentionSpec", "BandKeys", "BlockSlots", "random_block_table"]


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


class BlockSlots(NamedTuple):
    """Key blocks of every non-global query block of a block-sparse spec, vectorised.

    Row ``t`` is query block ``i = t + 1``; its columns are the key blocks
    ``0, i − 1, i, i + 1, nb − 1`` and then the ``r`` random blocks of table row ``t``, in that
    order. ``valid[t, s]`` is False where a window slot repeats a global one (``i − 1 = 0`` for
    query block 1, ``i + 1 = nb − 1`` for query block ``nb − 2``): those count once. A random
    slot is always valid, even where it repeats a window, global or random block of its row:
    it counts every time (Hugging Face's counting; the module docstring).
    """

    index: np.ndarray  # (nb - 2, 5 + r) int64: key block numbers
    valid: np.ndarray  # (nb - 2, 5 + r) bool


def _random_candidates(num_blocks: int, block: int) -> int:
    """How many key blocks query block ``block`` may draw: ``1 … nb − 2`` minus its window."""
    lo, hi = max(1, block - 1), min(num_blocks - 2, block + 1)
    return num_blocks - 2 - max(0, hi - lo + 1)


def _random_candidate(block: int, k: int) -> int:
    """The ``k``-th (from 0, ascending) key block that query block ``block`` may draw."""
    left = max(0, block - 2)  # blocks 1 … block − 2 lie left of the window
    return 1 + k if k < left else block + 2 + (k - left)


class _Words:
    """The 64-bit output words of ``PCG64(seed)``, read in order (buffered; the order of the
    stream does not depend on the buffer size)."""

    def __init__(self, seed: int):
        self._bits = np.random.PCG64(seed)
        self._buffer: list[int] = []

    def below(self, n: int) -> int:
        """A uniform integer in ``[0, n)``: the next word ``w`` with ``w < 2^64 − (2^64 mod n)``
        (rejection, so no modulo bias), reduced ``w mod n``."""
        limit = 2 ** 64 - 2 ** 64 % n
        while True:
            if not self._buffer:
                self._buffer = self._bits.random_raw(256).tolist()[::-1]
            w = self._buffer.pop()
            if w < limit:
                return w % n


def random_block_table(num_blocks: int, num_random_blocks: int, seed: int) -> np.ndarray:
    """BigBird's random table drawn from ``seed``: an ``(nb − 2, r)`` int64 array.

    Row ``i − 1`` holds the random key blocks of query block ``i`` (``1 <= i <= nb − 2``):
    ``r`` distinct blocks from ``1 … nb − 2`` outside the window ``i − 1 … i + 1``, sorted
    ascending. The generator is fixed here, not borrowed from ``numpy.random.Generator`` (whose
    methods carry no stream guarantee across NumPy versions): only the raw 64-bit words of
    ``numpy.random.PCG64(seed)`` are used, whose stream NumPy keeps stable. For each query block
    in order ``i = 1 … nb − 2``, with ``m`` candidates listed ascending, a partial Fisher–Yates
    shuffle picks, for ``t = 0 … r − 1``, position ``t + u`` where ``u`` is uniform in
    ``[0, m − t)`` (:meth:`_Words.below`: rejection of the words ``>= 2^64 − (2^64 mod n)``,
    then ``w mod n``), and swaps it to position ``t``; the first ``r`` candidates are the row.

    Raises
    ------
    TypeError
        An argument is not an integer.
    ValueError
        An argument is negative, or a row has fewer than ``r`` candidates.
    """
    _check_int("num_blocks", num_blocks, 1)
    _check_int("num_random_blocks", num_random_blocks, 0)
    _check_int("seed", seed, 0)
    nb, r = int(num_blocks), int(num_random_blocks)
    table = np.zeros((max(0, nb - 2), r), dtype=np.int64)
    if not table.size:
        return table
    _check_random_blocks("num_random_blocks", nb, r)
    words = _Words(int(seed))
    for i in range(1, nb - 1):
        m = _random_candidates(nb, i)
        moved: dict[int, int] = {}  # the positions the shuffle has changed so far
        chosen = []
        for t in range(r):
            j = t + words.below(m - t)
            chosen.append(moved.get(j, j))
            moved[j] = moved.get(t, t)
        table[i - 1] = sorted(_random_candidate(i, c) for c in chosen)
    return table


def _check_random_blocks(name: str, nb: int, r: int, block_size: int | None = None) -> None:
    """``r`` random blocks must exist for every query block of the table."""
    if r == 0 or nb < 3:
        return
    i = min(2, nb - 2)  # the middle blocks have the fewest candidates: nb − 5
    available = _random_candidates(nb, i)
    if r > available:
        need = (f"; with block_size {block_size}, {r} random blocks need seq_len >= "
                f"{block_size * (r + 5)}" if block_size else "")
        raise ValueError(
            f"{name} {r} is more than the {available} key blocks available to query block {i} "
            f"of {nb} (random blocks avoid blocks 0 and {nb - 1} and the window "
            f"{i - 1}..{i + 1}){need}")


def _check_random_table(name: str, table, nb: int, r: int) -> np.ndarray:
    """An explicit random table as an ``(nb − 2, r)`` int64 array, checked entry by entry: each
    a key block in ``[0, nb)``. A global or window block, or a block twice in a row, is legal:
    it counts once per slot (Hugging Face's tables have them; the module docstring)."""
    if isinstance(table, str | bytes):
        raise TypeError(f"{name} must be an array of integers, not {table!r}")
    try:
        arr = np.asarray(table)
    except ValueError:
        raise ValueError(f"{name} must be a rectangular array of integers") from None
    if arr.size and (arr.dtype.kind not in "iu"):
        raise TypeError(f"{name} must be an array of integers, not {arr.dtype}")
    shape = (max(0, nb - 2), r)
    if arr.shape == (0,) and shape[0] == 0:
        arr = arr.reshape(shape)
    if arr.shape != shape:
        raise ValueError(f"{name} must have shape {shape} (query blocks 1..{nb - 2} × "
                         f"num_random_blocks), not {arr.shape}")
    if not arr.size:
        return np.zeros(shape, dtype=np.int64)
    given = arr
    # (an unsigned entry beyond int64 is out of range either way; the message shows it as given)
    arr = np.minimum(arr, nb).astype(np.int64) if arr.dtype.kind == "u" else arr.astype(np.int64)
    outside = (arr < 0) | (arr >= nb)
    if outside.any():
        t, c = np.unravel_index(np.argmax(outside), outside.shape)
        raise ValueError(f"{name}[{t}, {c}] = {int(given[t, c])} is outside the key blocks "
                         f"[0, {nb})")
    return arr


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
    sink_tokens : int
        StreamingLLM's sink keys: the first ``sink_tokens`` positions are key-only columns that
        every row attends, within causality (see the module docstring); ``0 <= sink_tokens <=
        seq_len``. (GPT-OSS's *learned* sink is a logit, not a token: the models'
        ``sink_logits``.)
    block_size : int
        BigBird's block size ``b``; 0 (the default) for a token-band spec. A block-sparse spec
        (see the module docstring; :meth:`bigbird` builds one) needs ``seq_len`` a multiple of
        ``b``, ``before = after = 0``, ``dilation = 1`` and no ``global_tokens``.
    num_random_blocks : int
        ``r``, the random key blocks of every non-global query block (block-sparse only).
    pattern_seed : int or None
        The seed the random table is drawn from (:func:`random_block_table`). A block-sparse spec
        without ``explicit_random_table`` gets 0 when None is given; None otherwise.
    explicit_random_table : array-like (nb − 2, r) of int, or None
        A random table given explicitly instead of drawn (block-sparse only; then
        ``pattern_seed`` must be None). Stored as a tuple of tuples.

    Members
    -------
    random_table : numpy.ndarray
        The ``(nb − 2, r)`` int64 table, drawn or explicit (a new array on every access).

    Raises
    ------
    TypeError
        A field has the wrong type.
    ValueError
        A field is out of range, ``global_tokens`` is not sorted, distinct and in range,
        ``sink_tokens`` exceeds ``seq_len``, or the
        block-sparse fields do not fit the rule (``block_size`` does not divide ``seq_len``, a
        band or global tokens on a block-sparse spec, more random blocks than a row has, a
        random table of the wrong shape or with an entry outside the key blocks, block-sparse
        fields on a token-band spec, sink tokens on a
        block-sparse spec).
    """

    seq_len: int
    head_dim: int
    before: int = 256
    after: int = 256
    dilation: int = 1
    global_tokens: tuple[int, ...] = ()
    block_size: int = 0
    num_random_blocks: int = 0
    pattern_seed: int | None = None
    explicit_random_table: tuple[tuple[int, ...], ...] | None = None
    sink_tokens: int = 0

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
        _check_int("sink_tokens", self.sink_tokens, 0)
        if self.sink_tokens > self.seq_len:
            raise ValueError(f"sink_tokens {self.sink_tokens} is beyond the sequence (seq_len "
                             f"{self.seq_len})")
        object.__setattr__(self, "sink_tokens", int(self.sink_tokens))
        self._check_blocks()

    def _check_blocks(self) -> None:
        _check_int("block_size", self.block_size, 0)
        _check_int("num_random_blocks", self.num_random_blocks, 0)
        if self.pattern_seed is not None:
            _check_int("pattern_seed", self.pattern_seed, 0)
        b, r, table = self.block_size, self.num_random_blocks, self.explicit_random_table
        if not b:
            for name, value in (("num_random_blocks", r or None), ("pattern_seed",
                                self.pattern_seed), ("explicit_random_table", table)):
                if value is not None:
                    raise ValueError(f"{name} needs a block-sparse spec (block_size > 0)")
            return
        n = self.seq_len
        if n % b:
            raise ValueError(f"block_size {b} does not divide seq_len {n}")
        if (self.before, self.after, self.dilation) != (0, 0, 1):
            raise ValueError(
                f"a block-sparse spec (block_size {b}) has no token band: before and after must "
                f"be 0 and dilation 1, not before={self.before}, after={self.after}, "
                f"dilation={self.dilation}")
        if self.sink_tokens:
            raise ValueError(
                f"a block-sparse spec (block_size {b}) has no sink_tokens, not {self.sink_tokens}")
        if self.global_tokens:
            raise ValueError(
                f"a block-sparse spec (block_size {b}) has no global_tokens (its global rows and "
                f"columns are the first and last blocks), not {self.global_tokens!r}")
        nb = n // b
        _check_random_blocks("num_random_blocks", nb, r, b)
        if table is not None:
            if self.pattern_seed is not None:
                raise ValueError("give pattern_seed or explicit_random_table, not both")
            rows = _check_random_table("explicit_random_table", table, nb, r)
            object.__setattr__(self, "explicit_random_table",
                               tuple(tuple(int(x) for x in row) for row in rows))
        else:
            object.__setattr__(self, "pattern_seed",
                               0 if self.pattern_seed is None else int(self.pattern_seed))
        for name in ("block_size", "num_random_blocks"):
            object.__setattr__(self, name, int(getattr(self, name)))

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
    def causal(cls, seq_len: int, head_dim: int, sliding_window: int = 4096,
               sink_tokens: int = 0) -> AttentionSpec:
        """Mistral / Gemma: the row itself and the ``sliding_window - 1`` rows before it;
        StreamingLLM with ``sink_tokens`` (its 4) key-only sink columns."""
        if isinstance(sliding_window, bool) or not isinstance(sliding_window, int):
            raise TypeError(f"sliding_window must be an integer, not {sliding_window!r}")
        if sliding_window <= 0:
            raise ValueError(
                f"sliding_window must be a positive integer, not {sliding_window}")
        return cls(seq_len, head_dim, before=sliding_window - 1, after=0,
                   sink_tokens=sink_tokens)

    @classmethod
    def bigbird(cls, seq_len: int, head_dim: int, block_size: int = 64,
                num_random_blocks: int = 3, seed: int | None = None,
                random_table=None) -> AttentionSpec:
        """BigBird's block-sparse attention (its "ITC" form; see the module docstring).

        ``block_size`` and ``num_random_blocks`` are Hugging Face's ``block_size`` and
        ``num_random_blocks`` (BigBird-base: 64 and 3). The random table is drawn from ``seed``
        (None: 0) by :func:`random_block_table`, or ``random_table`` gives it explicitly, shape
        ``(seq_len / block_size − 2, num_random_blocks)`` — not both.

        Hugging Face's ``BigBirdBlockSparseAttention`` draws its table with ``np.random`` in
        training mode (re-seeded with the layer's index on every call, so each layer keeps one
        table) and uses an all-zero table in eval mode; either, taken per head, is a legal
        ``random_table`` here and counts as HF counts it (a random block that is also a window or
        global block, or repeated, counts once per slot: the module docstring). Drawn tables are
        reproducible and follow the paper's rule. See docs/numerics.md, "BigBird block-sparse".
        """
        _check_int("block_size", block_size, 1)
        if seed is not None:
            _check_int("seed", seed, 0)
        if random_table is None:
            return cls(seq_len, head_dim, before=0, after=0, block_size=block_size,
                       num_random_blocks=num_random_blocks,
                       pattern_seed=0 if seed is None else seed)
        if seed is not None:
            raise ValueError("give seed or random_table, not both")
        _check_int("seq_len", seq_len, 1)
        _check_int("num_random_blocks", num_random_blocks, 0)
        if seq_len % block_size == 0:  # (else the spec says so) check under the builder's name
            _check_random_blocks("num_random_blocks", seq_len // block_size,
                                 num_random_blocks, block_size)
            _check_random_table("random_table", random_table, seq_len // block_size,
                                num_random_blocks)
        return cls(seq_len, head_dim, before=0, after=0, block_size=block_size,
                   num_random_blocks=num_random_blocks, explicit_random_table=random_table)

    def replace(self, **changes) -> AttentionSpec:
        """A copy with some fields changed (validated again). A drawn random table is drawn
        again for the new fields (``replace(seq_len=…)`` keeps ``pattern_seed``); an explicit
        one must fit them."""
        return dataclasses.replace(self, **changes)

    def as_options(self) -> dict:
        """The spec in the presets' terms (the ``[spec]`` table of a swatkit config):
        ``attention_window`` for an even bidirectional window, ``causal`` and ``sliding_window``
        for a causal one; ``bigbird_block``, ``random_blocks`` and ``pattern_seed`` (or
        ``random_table``, a list of rows, when the table is explicit) for a block-sparse one.
        ``ValueError`` for a window neither preset makes (unequal sides)."""
        out = {"seq_len": self.seq_len, "head_dim": self.head_dim}
        if self.block_size:
            out.update(bigbird_block=self.block_size, random_blocks=self.num_random_blocks)
            if self.explicit_random_table is None:
                out["pattern_seed"] = self.pattern_seed
            else:
                out["random_table"] = [list(row) for row in self.explicit_random_table]
            return out
        if self.after == 0:
            out.update(causal=True, sliding_window=self.before + 1)
        elif self.before == self.after:
            out["attention_window"] = 2 * self.before
        else:
            raise ValueError(f"window {self.before}+1+{self.after} has no preset form (a "
                             "bidirectional window has equal sides, a causal one none after)")
        out.update(dilation=self.dilation, global_tokens=list(self.global_tokens))
        if self.sink_tokens:  # (only when set: a reader that does not know the key refuses it)
            out["sink_tokens"] = self.sink_tokens
        return out

    def describe(self, *, compact: bool = False, pattern: bool = True) -> str:
        """The pattern in words, the one description every command prints: in the options'
        terms (``causal sliding_window 128``, ``attention_window 512``, ``window 3+1+5``,
        ``, dilation 2``, ``, global tokens 0,17``, ``sink tokens 4``, ``BigBird block_size 64, 3
        random blocks (seed 0)``), or ``compact`` for a case line (``3+1+5×2 g[0,17] s4``,
        ``bigbird b64 r3 seed 0``). ``pattern=False``: the window's shape alone (no global
        or sink tokens, no random table)."""
        if self.block_size:
            table = ("table" if self.explicit_random_table is not None
                     else f"seed {self.pattern_seed}")
            if compact:
                return f"bigbird b{self.block_size} r{self.num_random_blocks} {table}"
            text = (f"BigBird block_size {self.block_size}, {self.num_random_blocks} random "
                    f"block{'s' if self.num_random_blocks != 1 else ''}")
            return text + (f" ({table})" if pattern else "")
        if compact:
            text = f"{self.before}+1+{self.after}"
            text += f"×{self.dilation}" if self.dilation > 1 else ""
        else:
            if self.after == 0:
                text = f"causal sliding_window {self.before + 1}"
            elif self.before == self.after:
                text = f"attention_window {2 * self.before}"
            else:
                text = f"window {self.before}+1+{self.after}"
            text += f", dilation {self.dilation}" if self.dilation > 1 else ""
        if not pattern:
            return text
        tokens = self.global_tokens
        if tokens:
            shown = ",".join(map(str, tokens[:6])) + (",…" if len(tokens) > 6 else "")
            text += f" g[{shown}]" if compact else f", global tokens {shown}"
        if self.sink_tokens:
            text += f" s{self.sink_tokens}" if compact else f", sink tokens {self.sink_tokens}"
        return text

    # -- derived quantities ------------------------------------------------------------------

    @property
    def is_causal(self) -> bool:
        """True if no row attends to a later row (never for a block-sparse spec: its global
        blocks attend every key)."""
        return self.after == 0 and not self.global_tokens and not self.block_size

    @property
    def window(self) -> int:
        """Band keys of a row away from the sequence edges: ``before + after + 1``; for a
        block-sparse spec the keys of its block window, ``3·block_size``."""
        if self.block_size:
            return 3 * self.block_size
        return self.before + self.after + 1

    @property
    def max_keys_per_row(self) -> int:
        """The most keys any row attends to (``W`` of the datapath's width derivations):
        ``seq_len`` with global tokens or for a block-sparse spec (its global blocks); sink
        columns outside the band count."""
        if self.global_tokens or self.block_size:
            return self.seq_len
        return int(self.keys_per_row().max())

    # -- the block-sparse pattern (block_size > 0) ------------------------------------------

    @property
    def num_blocks(self) -> int:
        """``nb = seq_len / block_size`` (0 for a token-band spec)."""
        return self.seq_len // self.block_size if self.block_size else 0

    @functools.cached_property
    def _random_table(self) -> np.ndarray:
        nb, r = self.num_blocks, self.num_random_blocks
        if self.explicit_random_table is not None:
            table = np.array(self.explicit_random_table, dtype=np.int64).reshape(
                max(0, nb - 2), r)
        elif self.block_size:
            table = random_block_table(nb, r, self.pattern_seed)
        else:
            table = np.zeros((0, 0), dtype=np.int64)
        table.flags.writeable = False
        return table

    @property
    def random_table(self) -> np.ndarray:
        """The random table, ``(nb − 2, r)`` int64 (a new array): row ``i − 1`` holds the random
        key blocks of query block ``i``. Drawn from ``pattern_seed`` by
        :func:`random_block_table`, or ``explicit_random_table``. ``(0, 0)`` for a token-band
        spec."""
        return self._random_table.copy()

    def _need_blocks(self, what: str) -> None:
        if not self.block_size:
            raise ValueError(f"{what} needs a block-sparse spec (block_size > 0)")

    def _no_band(self, what: str) -> None:
        if self.block_size:
            raise ValueError(f"{what}: a block-sparse spec (block_size {self.block_size}) has "
                             "no token band; use row_keys(), mask() or block_key_slots()")

    def global_positions(self) -> np.ndarray:
        """The rows that attend every key and that every row attends, sorted:
        ``global_tokens``, or for a block-sparse spec the first and last blocks."""
        if not self.block_size:
            return np.asarray(self.global_tokens, dtype=np.int64)
        b, n = self.block_size, self.seq_len
        if n <= 2 * b:
            return np.arange(n, dtype=np.int64)
        return np.concatenate([np.arange(b), np.arange(n - b, n)]).astype(np.int64)

    def block_counts(self) -> np.ndarray:
        """The ``(nb, nb)`` int64 multiplicities: ``[I, J]`` is how many times query block I
        attends key block J (0: not at all). Global query blocks attend every key block once; a
        non-global one counts its valid slots (:meth:`block_key_slots`), so a random block that
        is also a window or global block, or repeated in its row, counts more than once."""
        self._need_blocks("block_counts")
        nb = self.num_blocks
        counts = np.ones((nb, nb), dtype=np.int64)
        if nb > 2:
            index, valid = self.block_key_slots()
            counts[1:-1] = 0
            rows = np.broadcast_to(np.arange(nb - 2)[:, None], index.shape)
            np.add.at(counts[1:-1], (rows[valid], index[valid]), 1)
        return counts

    def block_mask(self) -> np.ndarray:
        """The ``(nb, nb)`` boolean block mask: ``[I, J]`` if query block I attends key block J
        (:meth:`block_counts` non-zero)."""
        self._need_blocks("block_mask")
        return self.block_counts() > 0

    def block_keys(self, block: int) -> np.ndarray:
        """The sorted, distinct key blocks that query block ``block`` attends (how often each
        counts: :meth:`block_counts`)."""
        self._need_blocks("block_keys")
        nb = self.num_blocks
        if not 0 <= block < nb:
            raise ValueError(f"block {block} is outside the blocks [0, {nb})")
        if block in (0, nb - 1):
            return np.arange(nb, dtype=np.int64)
        return np.union1d([0, block - 1, block, block + 1, nb - 1],
                          self._random_table[block - 1]).astype(np.int64)

    def block_key_slots(self) -> BlockSlots:
        """The key blocks of every non-global query block (see :class:`BlockSlots`)."""
        self._need_blocks("block_key_slots")
        nb = self.num_blocks
        block = np.arange(1, nb - 1, dtype=np.int64)[:, None]
        window = np.concatenate([np.zeros_like(block), block - 1, block, block + 1,
                                 np.full_like(block, nb - 1)], axis=1)
        index = np.concatenate([window, self._random_table], axis=1)
        valid = np.ones(index.shape, dtype=bool)
        valid[:, 1] = block[:, 0] - 1 != 0
        valid[:, 3] = block[:, 0] + 1 != nb - 1
        return BlockSlots(index, valid)

    # -- the token band (block_size = 0) ------------------------------------------------------

    def band_offsets(self) -> np.ndarray:
        """Offsets of the band keys from the query row, in key order."""
        self._no_band("band_offsets")
        return np.arange(-self.before, self.after + 1, dtype=np.int64) * self.dilation

    def band_keys(self) -> BandKeys:
        """Every row's band keys (without the global-token part), as index and validity arrays."""
        self._no_band("band_keys")
        index = np.arange(self.seq_len, dtype=np.int64)[:, None] + self.band_offsets()[None, :]
        valid = (index >= 0) & (index < self.seq_len)
        return BandKeys(np.clip(index, 0, self.seq_len - 1), valid)

    def in_band(self, rows, keys) -> np.ndarray:
        """Whether each key lies in the band of the matching row (broadcasting)."""
        self._no_band("in_band")
        delta = np.asarray(keys, dtype=np.int64) - np.asarray(rows, dtype=np.int64)
        return ((delta % self.dilation == 0)
                & (delta >= -self.before * self.dilation)
                & (delta <= self.after * self.dilation))

    def columns(self) -> np.ndarray:
        """The spec's columns outside the band, sorted: the union of ``global_tokens`` and the
        sink positions ``0 … sink_tokens − 1``."""
        self._no_band("columns")
        return np.union1d(np.asarray(self.global_tokens, dtype=np.int64),
                          np.arange(self.sink_tokens, dtype=np.int64)).astype(np.int64)

    def column_valid(self, rows) -> np.ndarray:
        """``(len(rows), len(columns()))`` bool: whether row ``i`` attends column ``j`` *outside
        its band* (a column inside the band is a band key: it counts once). A global column
        counts for every row; a sink column that is not global counts for row ``i`` only if
        ``j <= i`` when the band is causal (``after = 0``). Rows that are global tokens attend
        every key besides (:meth:`mask`)."""
        self._no_band("column_valid")
        rows = np.asarray(rows, dtype=np.int64).reshape(-1, 1)
        cols = self.columns()[None, :]
        valid = ~self.in_band(rows, cols)
        if self.after == 0:
            sink_only = ~np.isin(cols, np.asarray(self.global_tokens, dtype=np.int64))
            valid &= ~sink_only | (cols <= rows)
        return valid

    def row_keys(self, row: int) -> np.ndarray:
        """The sorted key indices that row ``row`` attends to."""
        if not 0 <= row < self.seq_len:
            raise ValueError(f"row {row} is outside the sequence [0, {self.seq_len})")
        if self.block_size:
            b = self.block_size
            blocks = self.block_keys(row // b)
            return (blocks[:, None] * b + np.arange(b)).reshape(-1)
        if row in self.global_tokens:
            return np.arange(self.seq_len, dtype=np.int64)
        keys = self.band_offsets() + row
        keys = keys[(keys >= 0) & (keys < self.seq_len)]
        return np.union1d(keys, self.columns()[self.column_valid([row])[0]])

    def key_counts(self) -> np.ndarray:
        """The dense ``(seq_len, seq_len)`` int64 multiplicities: how many times row i attends
        key j. The mask as 0/1 for a token-band spec; :meth:`block_counts` per block for a
        block-sparse one (a repeated random block counts once per slot, as in Hugging Face's
        BigBird). ``attention_reference`` takes it as its ``mask``."""
        if self.block_size:
            b = self.block_size
            return self.block_counts().repeat(b, axis=0).repeat(b, axis=1)
        return self.mask().astype(np.int64)

    def mask(self) -> np.ndarray:
        """The dense ``(seq_len, seq_len)`` boolean mask: ``mask[i, j]`` if row i attends key j
        (at least once: :meth:`key_counts`)."""
        n = self.seq_len
        if self.block_size:
            b = self.block_size
            return self.block_mask().repeat(b, axis=0).repeat(b, axis=1)
        rows = np.arange(n)[:, None]
        mask = self.in_band(rows, np.arange(n)[None, :])
        mask[:, self.columns()] |= self.column_valid(rows)
        mask[np.asarray(self.global_tokens, dtype=np.int64), :] = True
        return mask

    def keys_per_row(self) -> np.ndarray:
        """Number of keys each row attends to, shape ``(seq_len,)``; a block-sparse row counts
        a key once per slot (:meth:`key_counts` summed over the row), so a repeated random block
        counts every time, as the hardware walks it."""
        if self.block_size:
            nb, b = self.num_blocks, self.block_size
            blocks = np.arange(nb, dtype=np.int64)
            # window i − 1 … i + 1, plus blocks 0 and nb − 1 where the window misses them, plus r
            # random slots whatever they hold
            counts = 3 + (blocks != 1) + (blocks != nb - 2) + self.num_random_blocks
            counts[[0, -1]] = nb
            return (counts * b).repeat(b)
        rows = np.arange(self.seq_len, dtype=np.int64)
        # band offsets t in [-before, after] with 0 <= row + dilation*t < seq_len
        last = np.minimum(self.after, (self.seq_len - 1 - rows) // self.dilation)
        first = np.maximum(-self.before, -(rows // self.dilation))
        counts = last - first + 1
        if self.global_tokens or self.sink_tokens:
            counts = counts + self.column_valid(rows).sum(axis=1)
            counts[np.asarray(self.global_tokens, dtype=np.int64)] = self.seq_len
        return counts.astype(np.int64)

    def pair_count(self) -> int:
        """Total number of (query, key) pairs: the QK and the SV multiply-accumulate rows."""
        return int(self.keys_per_row().sum())
