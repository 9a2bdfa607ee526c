"""Hardware configuration of the SWAT core, and the parameters derived from (spec, format, hw).

:class:`HardwareConfig` holds what the hardware designer chooses (lanes, counter sizes);
:class:`CoreParams` checks it against the workload and derives every size the RTL, the docs and
the resource formula use, so that none of them computes its own.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from swatkit.golden import AttentionSpec, NumberFormat
from swatkit.golden.checks import ConfigTypeError, ConfigValueError, check_int
from swatkit.golden.numerics import Widths, clog2

__all__ = [
    "MAX_CONTEXTS",
    "MAX_DILATION",
    "MAX_GLOBAL_TOKENS",
    "MAX_HEADS",
    "MAX_HEAD_DIM",
    "MAX_KV_BUFFER_BITS",
    "MAX_MULTIPLIERS",
    "MAX_SEQ_LEN",
    "MAX_WINDOW",
    "CoreParams",
    "HardwareConfig",
    "LimitError",
]

# Cycles from a row's last QK issue to the end of its SV (pipeline depths of the two engines and
# the hand-over between them); score buffers and the K/V ring are sized to hide them.
ROW_LATENCY = 20

# Practical limits of the core (each refused at once rather than left to run for minutes or to
# overflow): generation time and memory grow with the window, head_dim, the lanes and the K/V
# buffer; at these limits Verilog generation takes about a minute on one core (docs/rtl.md).
MAX_SEQ_LEN = 2 ** 24          # rows; the row counters, and the cycle model's arrays (~1.5 GB)
MAX_HEAD_DIM = 1024            # elements per Q/K/V/O row
MAX_WINDOW = 16385             # keys per row (attention_window 16384, sliding_window 16385)
MAX_MULTIPLIERS = 4096         # key_lanes x dim_lanes per engine
MAX_KV_BUFFER_BITS = 2 ** 25   # the K/V ring (32 Mibit; the largest ECP5 has 3.7 Mbit of BRAM);
                               # a decode core's C rings together (its limit on contexts)
MAX_GLOBAL_TOKENS = 256        # resident global K/V rows (each lane compares its key with them)
MAX_DILATION = 64              # residue classes of the K/V ring
MAX_HEADS = 1024               # query (and K/V) heads of a model (GPT-OSS-120b has 64)
MAX_CONTEXTS = 256             # decode contexts: records of the context store (an asynchronous-
                               # read memory); their rings together within MAX_KV_BUFFER_BITS


class LimitError(ConfigValueError):
    """A size beyond a practical limit of the core.

    Members
    -------
    field : str
        The field over its limit (``"head_dim"``, ``"window"``, ``"max_seq_len"``, ...).
    value, limit : int
        Its value and the largest allowed.
    what : str
        Which limit, and why it exists.
    """

    def __init__(self, field: str, value: int, limit: int, what: str):
        self.value, self.limit, self.what = value, limit, what
        super().__init__(f"{field} must be at most {limit} ({what}), not {value}", field)

    def __reduce__(self):   # (pickled whole: it crosses into and out of worker processes)
        return type(self), (self.field, self.value, self.limit, self.what)


@dataclass(frozen=True)
class HardwareConfig:
    """What the hardware designer chooses.

    Parameters
    ----------
    key_lanes : int
        Attention cores working on different keys of the window in parallel (1..64).
    dim_lanes : int
        Multipliers per core per cycle; must divide ``head_dim`` (1..256).
    max_seq_len : int
        Largest sequence length the counters can handle (1..``MAX_SEQ_LEN``); ``N`` itself is
        given at run time.
    max_global_tokens : int
        Most global tokens a run may have (0..``MAX_GLOBAL_TOKENS``): K/V rows kept resident for
        the global columns, and the global-row engine's rows. The spec's own global tokens raise
        it (:attr:`CoreParams.max_global_tokens`).
    max_dilation : int
        Largest dilation a run may use (1..``MAX_DILATION``): the K/V ring holds this many
        residue classes. The spec's own dilation raises it.
    global_engines : int
        Global-row engines of a block-sparse core side by side (a power of two, 1..64, at most
        its block size), each taking every ``global_engines``-th global row; 0 (the default)
        chooses the fewest that keep its 2·b global rows off the critical path
        (:attr:`CoreParams.global_engines`). A token-band core has one.

    Raises
    ------
    TypeError, ValueError
        With a message naming the field.
    LimitError
        ``key_lanes · dim_lanes`` above ``MAX_MULTIPLIERS`` or ``max_seq_len`` above
        ``MAX_SEQ_LEN`` (a ``ValueError``).
    """

    key_lanes: int = 8
    dim_lanes: int = 8
    max_seq_len: int = 4096
    max_global_tokens: int = 0
    max_dilation: int = 1
    global_engines: int = 0

    def __post_init__(self):
        for name, lo, hi in (("key_lanes", 1, 64), ("dim_lanes", 1, 256),
                             ("max_seq_len", 1, None),
                             ("max_global_tokens", 0, MAX_GLOBAL_TOKENS),
                             ("max_dilation", 1, MAX_DILATION), ("global_engines", 0, 64)):
            object.__setattr__(self, name, check_int(name, getattr(self, name), lo, hi))
        if self.global_engines & (self.global_engines - 1):
            raise ConfigValueError(f"global_engines must be a power of two (or 0: chosen), not "
                                   f"{self.global_engines}", "global_engines")
        if self.max_seq_len > MAX_SEQ_LEN:
            raise LimitError("max_seq_len", self.max_seq_len, MAX_SEQ_LEN,
                             "the practical limit of the core's row counters and of the "
                             "cycle model")
        if self.key_lanes * self.dim_lanes > MAX_MULTIPLIERS:
            raise LimitError("key_lanes x dim_lanes", self.key_lanes * self.dim_lanes,
                             MAX_MULTIPLIERS, "multipliers per engine, the practical limit "
                             "of Verilog generation")

    def replace(self, **changes) -> HardwareConfig:
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True)
class CoreParams:
    """A (spec, format, hardware) triple checked for the SWAT core, with derived sizes.

    ``heads`` query heads on ``kv_heads`` K/V heads (default one on one): the core runs one
    K/V head and its ``group_heads`` = heads / kv_heads query heads per run. ``sink_logits``:
    the core takes a learned sink logit per query head of the run on its command (GPT-OSS;
    a token-band core without global tokens). ``contexts``: 0 (the default) for a core whose
    every run starts a sequence; C >= 1 for a decode core, whose command may also continue
    the sequence of one of its C contexts (K/V rings) by n rows (docs/rtl.md, "Decode"; a
    token-band core without global tokens). Refused with
    ``TypeError``/``ValueError`` naming the field: not integers in 1..``MAX_HEADS``, heads not
    a multiple of kv_heads, a group on a block-sparse core or one with global tokens.

    Raises ``ValueError`` naming the conflict when the core cannot implement the spec, and
    :class:`LimitError` (a ``ValueError``) for a size beyond a practical limit: ``head_dim``
    above ``MAX_HEAD_DIM``, a window above ``MAX_WINDOW`` keys, a K/V buffer above
    ``MAX_KV_BUFFER_BITS``.
    """

    spec: AttentionSpec
    fmt: NumberFormat
    hw: HardwareConfig
    heads: int = 1
    kv_heads: int = 1
    sink_logits: bool = False
    contexts: int = 0
    # False on the parameters of an estimate (:meth:`for_estimate`): never generated
    generated: ClassVar[bool] = True

    def __post_init__(self):
        spec, hw = self.spec, self.hw
        self._check_heads()
        if not isinstance(self.sink_logits, bool):
            raise ConfigTypeError(f"sink_logits must be True or False, not "
                                  f"{self.sink_logits!r}", "sink_logits")
        if self.sink_logits and (self.block_size or spec.global_tokens or hw.max_global_tokens):
            raise ConfigValueError("sink_logits needs a token-band core without global tokens "
                                   "(the global-row engine has no sink logit)", "sink_logits")
        self._check_contexts()
        if spec.head_dim > MAX_HEAD_DIM:
            raise LimitError("head_dim", spec.head_dim, MAX_HEAD_DIM,
                             "the practical limit of Verilog generation")
        if spec.window > MAX_WINDOW and self.generated:
            raise LimitError("window", spec.window, MAX_WINDOW,
                             "keys per row, the practical limit of Verilog generation")
        if spec.sink_tokens and (spec.global_tokens or hw.max_global_tokens):
            raise ConfigValueError(f"sink_tokens must be 0 on a core with global tokens, not "
                                   f"{spec.sink_tokens}: its resident columns are of one kind, "
                                   f"global tokens (each with a global row, listed on the "
                                   f"command) or sinks (key-only, counted on the command), and "
                                   f"its column walk has no per-column kind to hold both",
                                   "sink_tokens")
        if spec.sink_tokens > MAX_GLOBAL_TOKENS:
            raise LimitError("sink_tokens", spec.sink_tokens, MAX_GLOBAL_TOKENS,
                             "resident sink K/V rows, compared by each lane")
        b = spec.block_size
        if b and b & (b - 1):
            raise ConfigValueError(f"block_size must be a power of two on the SWAT core (it "
                                   f"checks seq_len against it with a mask), not {b}",
                                   "block_size")
        if b and (hw.max_global_tokens or hw.max_dilation > 1):
            raise ConfigValueError("a block-sparse (BigBird) core has no global tokens or "
                                   "dilation of its own: max_global_tokens and max_dilation "
                                   "must be 0 and 1", "max_global_tokens"
                                   if hw.max_global_tokens else "max_dilation")
        if spec.head_dim % hw.dim_lanes:
            raise ConfigValueError(f"dim_lanes ({hw.dim_lanes}) must divide head_dim "
                                   f"({spec.head_dim})", "dim_lanes")
        if hw.key_lanes > spec.window:
            raise ConfigValueError(f"key_lanes ({hw.key_lanes}) must not exceed the window "
                                   f"({spec.window} keys)", "key_lanes")
        if b and hw.global_engines > b:
            raise ConfigValueError(f"global_engines must be at most {b} (the block size: a "
                                   f"run's global rows, b or 2·b, are shared evenly), not "
                                   f"{hw.global_engines}", "global_engines")
        if 2 * b > MAX_GLOBAL_TOKENS:
            raise LimitError("block_size", b, MAX_GLOBAL_TOKENS // 2,
                             "the global first and last blocks are resident global rows and "
                             f"columns, at most {MAX_GLOBAL_TOKENS}")
        _ = self.widths  # raises if the format cannot hold this window
        self._check_context_memory()
        kv_bits = self.resources()["kv_buffer_bits"] + self.resources()["random_buffer_bits"]
        if kv_bits > MAX_KV_BUFFER_BITS and self.generated:
            raise LimitError("kv_buffer_bits", kv_bits, MAX_KV_BUFFER_BITS,
                             "the K/V ring: 2 x ring_rows x head_dim x data_bits, the practical "
                             "limit of Verilog generation")

    @classmethod
    def for_estimate(cls, spec: AttentionSpec, fmt: NumberFormat,
                     hw: HardwareConfig) -> CoreParams:
        """Parameters that are estimated, never generated: a full-attention layer (``spec``:
        every key of N rows) that the estimate computes with the baselines' formulas. Every
        check of :class:`CoreParams` holds except the two limits of Verilog generation, the
        keys per row (``MAX_WINDOW``) and the K/V ring's bits (``MAX_KV_BUFFER_BITS``): no
        Verilog of this core is ever written, and the estimate's arithmetic has no such bound.
        What the estimate needs still holds: N within ``MAX_SEQ_LEN`` (``hw``), lanes that
        divide head_dim, a number format whose widths hold a row of N keys. (A
        :class:`~swatkit.rtl.SwatCore` of these parameters is refused.)"""
        return _EstimateParams(spec, fmt, hw)

    @classmethod
    def of(cls, params: CoreParams | AttentionSpec, fmt: NumberFormat | None = None,
           hw: HardwareConfig | None = None, **group) -> CoreParams:
        """The parameters a unit is given: ``params`` itself when it is a :class:`CoreParams`
        (built once per command and handed down whole; ``fmt``, ``hw`` and the head group are
        then not given), else the checked ``(params, fmt or NumberFormat(), hw or
        HardwareConfig(), **group)`` (``group``: ``heads``, ``kv_heads``, ``sink_logits``)."""
        if isinstance(params, CoreParams):
            if fmt is not None or hw is not None or group:
                raise TypeError("fmt, hw and the head group are the CoreParams' own; give them "
                                "only with an AttentionSpec")
            if not params.generated:
                raise ValueError("these parameters are an estimate's (CoreParams.for_estimate): "
                                 "a core is generated from CoreParams")
            return params
        return cls(params, fmt or NumberFormat(), hw or HardwareConfig(), **group)

    def _check_heads(self):
        """``heads`` query heads on ``kv_heads`` K/V heads (Hugging Face's
        ``num_attention_heads``, ``num_key_value_heads``): a multiple, and on a core that runs
        a group (``group_heads`` > 1) a token band without global rows."""
        check_int("heads", self.heads, 1, MAX_HEADS)
        check_int("kv_heads", self.kv_heads, 1, MAX_HEADS)
        if self.heads % self.kv_heads:
            raise ConfigValueError(f"heads must be a multiple of kv_heads ({self.kv_heads}), "
                                   f"not {self.heads}", "heads")
        if self.group_heads > 1 and self.spec.block_size:
            raise ConfigValueError(f"heads must equal kv_heads on a block-sparse (BigBird) core "
                                   f"(it runs one query head per K/V head), not {self.heads} "
                                   f"on {self.kv_heads}", "heads")
        if self.group_heads > 1 and (self.spec.global_tokens or self.hw.max_global_tokens):
            raise ConfigValueError(f"heads must equal kv_heads on a core with global tokens "
                                   f"(Longformer's global rows run one query head per K/V "
                                   f"head), not {self.heads} on {self.kv_heads}", "heads")

    def _check_contexts(self):
        """``contexts``: 0 (no decode) or C >= 1, on a token-band core without global tokens (a
        global row needs the whole sequence's keys, BigBird its last block). The C rings'
        bits together are bounded by ``MAX_KV_BUFFER_BITS`` (:meth:`_check_context_memory`)."""
        check_int("contexts", self.contexts, 0)
        if self.contexts and (self.spec.block_size or self.spec.global_tokens
                              or self.hw.max_global_tokens):
            raise ConfigValueError(f"contexts must be 0 on a core with global tokens or BigBird "
                                   f"blocks (a global row attends the whole sequence, which a "
                                   f"continued run has not seen), not {self.contexts}",
                                   "contexts")

    def _check_context_memory(self):
        """A decode core's C contexts: at most ``MAX_CONTEXTS`` records, and their K/V rings
        (each ``ring_bits``) within ``MAX_KV_BUFFER_BITS`` together (``LimitError`` naming
        ``contexts``)."""
        if self.contexts > MAX_CONTEXTS:
            raise LimitError("contexts", self.contexts, MAX_CONTEXTS,
                             "records of the context store, a memory read in the cycle a "
                             "command is taken")
        per = self.ring_bits
        if self.contexts > 1 and self.contexts * per > MAX_KV_BUFFER_BITS and self.generated:
            raise LimitError("contexts", self.contexts, max(1, MAX_KV_BUFFER_BITS // per),
                             f"K/V rings of {per} bits each, together at most "
                             f"{MAX_KV_BUFFER_BITS} bits (MAX_KV_BUFFER_BITS), the practical "
                             f"limit of Verilog generation")

    @property
    def decode(self) -> bool:
        """The core continues sequences (``contexts`` >= 1): its command has ``cont``."""
        return self.contexts > 0

    @property
    def ctx_bits(self) -> int:
        """Width of the command's ``ctx`` field (ceil(log2 C)): 0 on a core of one context or
        none, which has no field."""
        return clog2(self.contexts) if self.contexts > 1 else 0

    @property
    def ring_bits(self) -> int:
        """Bits of one context's K/V ring (K and V words of every lane, with the resident sink
        columns) and, on a core with resident columns, its flag bits."""
        kl, dl = self.hw.key_lanes, self.hw.dim_lanes
        flags = kl * self.kv_depth if self.max_global_tokens else 0
        return 2 * kl * self.kv_depth * dl * self.widths.data + flags

    # -- sizes --------------------------------------------------------------------------------

    @property
    def group_heads(self) -> int:
        """Query heads per K/V head (g = heads / kv_heads): a run is one K/V head with its g
        query heads; every K/V row enters the ring once and serves all g (docs/rtl.md, "Grouped
        query heads")."""
        return self.heads // self.kv_heads

    @property
    def window(self) -> int:
        """Keys per row away from the sequence edges (W)."""
        return self.spec.window

    @property
    def block_size(self) -> int:
        """BigBird's block size ``b`` of a block-sparse core (0: a token-band core)."""
        return self.spec.block_size

    @property
    def max_random_blocks(self) -> int:
        """Most random key blocks per query block a run may use (a block-sparse core: the
        spec's ``num_random_blocks``)."""
        return self.spec.num_random_blocks

    @property
    def random_rows(self) -> int:
        """K/V rows of one query block's random blocks at most: ``max_random_blocks · b``."""
        return self.max_random_blocks * self.block_size

    @property
    def random_rounds(self) -> int:
        """Key rounds of a row's random blocks at most: ``ceil(r·b / key_lanes)``."""
        return math.ceil(self.random_rows / self.hw.key_lanes)

    @property
    def random_depth(self) -> int:
        """Words of each lane's random K (and V) memory: two buffers (the running query block's
        random rows, and the next one's) of ``random_rounds·G`` words."""
        return 2 * self.random_rounds * self.groups

    @property
    def ring_before(self) -> int:
        """How far below a row its lowest band key can lie (the ring keeps that many rows behind
        the oldest unfinished row): ``before``, or ``2b − 1`` on a block-sparse core (the last
        row of block B starts at key ``(B − 1)·b``)."""
        return 2 * self.block_size - 1 if self.block_size else self.spec.before

    @property
    def global_engines(self) -> int:
        """Global-row engines (:class:`~swatkit.rtl.global_rows.GlobalRowEngines`):
        ``hw.global_engines``, or when that is 0, 1 on a token-band core and on a block-sparse
        core the fewest (a power of two, at most b) whose two passes over N keys for their share
        of the 2·b global rows, ``2·(2b/E)·N·G`` cycles, take at most 5 % longer than the band
        rows' walks at N = ``max_seq_len`` (the random blocks at their most). At most ``b``, so that
        a run's global rows (b or 2·b) are shared evenly; a token-band core has one engine (its
        run's global tokens are any number)."""
        if not self.block_size:
            return 1
        if self.hw.global_engines:
            return self.hw.global_engines
        n, b = self.hw.max_seq_len - self.hw.max_seq_len % self.block_size, self.block_size
        if n <= 2 * b:
            return 1
        run = self.spec.replace(seq_len=n, num_random_blocks=self.max_random_blocks
                                if n >= (self.max_random_blocks + 5) * b else 0,
                                explicit_random_table=None,
                                pattern_seed=self.spec.pattern_seed or 0)
        band = int(self.row_rounds(run).sum()) * self.groups
        engines = 1
        while engines < b and 2 * -(-2 * b // engines) * n * self.groups > 1.05 * band:
            engines *= 2
        return engines

    @property
    def mac_lanes(self) -> int:
        """The core's q·k multipliers (as many p·v): ``key_lanes·dim_lanes``, and on a core
        with global rows ``global_engines·dim_lanes`` more. The baselines of the estimate get
        this MAC budget."""
        glob = self.global_engines * self.hw.dim_lanes if self.global_rows else 0
        return self.hw.key_lanes * self.hw.dim_lanes + glob

    @property
    def max_dilation(self) -> int:
        """Largest dilation a run may use: ``hw.max_dilation``, raised to the spec's own."""
        return max(self.hw.max_dilation, self.spec.dilation)

    @property
    def max_global_tokens(self) -> int:
        """Most resident columns a run may have: global tokens, ``hw.max_global_tokens``
        raised to the spec's; on a block-sparse core the first and last blocks, ``2·b``; on a
        sink core its sink tokens (``spec.sink_tokens``, key-only columns: no global rows)."""
        if self.block_size:
            return 2 * self.block_size
        if self.spec.sink_tokens:
            return self.spec.sink_tokens
        return max(self.hw.max_global_tokens, len(self.spec.global_tokens))

    @property
    def sink_core(self) -> bool:
        """Whether the core's resident columns are StreamingLLM's sink keys (``spec.sink_tokens``
        > 0): the first ``sink_count`` K/V rows of a run (a run-time input up to
        ``spec.sink_tokens``), key-only — no global rows — and, in a causal run, seen by row i
        only up to key i."""
        return bool(self.spec.sink_tokens)

    @property
    def global_rows(self) -> bool:
        """Whether the core computes global rows (the global-row engine's; Longformer's global
        tokens, BigBird's first and last blocks): columns that are not sinks."""
        return bool(self.max_global_tokens) and not self.sink_core

    @property
    def global_rounds(self) -> int:
        """Key rounds of the global columns at most: ``ceil(max_global_tokens / key_lanes)``."""
        return math.ceil(self.max_global_tokens / self.hw.key_lanes)

    @property
    def groups(self) -> int:
        """Cycles per key per lane: ``head_dim / dim_lanes`` (G)."""
        return self.spec.head_dim // self.hw.dim_lanes

    @property
    def band_rounds(self) -> int:
        """Most key rounds of a row's band: ``ceil(W / key_lanes)``."""
        return math.ceil(self.window / self.hw.key_lanes)

    @property
    def rounds(self) -> int:
        """Most key rounds per row: the band's, the global columns' and the random blocks'."""
        return self.band_rounds + self.global_rounds + self.random_rounds

    @property
    def score_buffers(self) -> int:
        """Rows of scores in flight between the QK and the SV engine: two, plus enough to cover
        ``ROW_LATENCY`` when rows are short (``2 + ceil(ROW_LATENCY / (rounds·G))``)."""
        return 2 + math.ceil(ROW_LATENCY / (self.rounds * self.groups))

    @property
    def ring_slots(self) -> int:
        """K/V rows each lane's buffer holds (S). The ring of ``key_lanes·S`` rows holds the
        keys of every row in flight (``W + score_buffers − 1``) and one row being loaded; on a
        block-sparse core the keys ``2b − 1`` below to ``2b − 1`` above a row in flight."""
        reach = 4 * self.block_size - 1 if self.block_size else self.window
        return math.ceil((reach + self.score_buffers) / self.hw.key_lanes)

    @property
    def ring_rows(self) -> int:
        """K/V rows of the ring of one residue class (of all, when ``max_dilation`` is 1)."""
        return self.ring_slots * self.hw.key_lanes

    @property
    def region_words(self) -> int:
        """Words of one lane's K (or V) memory that hold one residue class: ``S·G``."""
        return self.ring_slots * self.groups

    @property
    def kv_depth(self) -> int:
        """Words of each lane's K (and V) memory: ``max_dilation`` class regions of ``S·G``
        words, then ``global_rounds·G`` words for the resident global columns."""
        return (self.max_dilation * self.region_words + self.global_rounds * self.groups)

    @property
    def score_depth(self) -> int:
        """Entries of each lane's score memory: ``score_buffers`` rows of ``rounds``."""
        return self.score_buffers * self.rounds

    @property
    def index_bits(self) -> int:
        """Width of row counters: 0 … max_seq_len, or of a grouped core the rows of all its
        query heads, 0 … g·max_seq_len (the Q rows and the output rows of a run)."""
        return clog2(self.group_heads * self.hw.max_seq_len + 1)

    @property
    def max_keys(self) -> int:
        """The most keys a band row attends: the window, the global columns and the random
        blocks (at most N)."""
        return min(self.window + self.max_global_tokens + self.random_rows,
                   self.hw.max_seq_len)

    @property
    def widths(self) -> Widths:
        """The datapath's widths for rows of ``max_keys`` keys (and, on a core that takes
        learned sink logits, one more term of ``l``)."""
        return self.fmt.widths(self.spec.head_dim, self.max_keys, sink=self.sink_logits)

    @property
    def global_widths(self) -> Widths:
        """Widths of the global-row engine: a global row attends all ``max_seq_len`` keys."""
        return self.fmt.widths(self.spec.head_dim, self.hw.max_seq_len)

    # -- resources (docs/rtl.md) ---------------------------------------------------------------

    def resources(self) -> dict:
        """Multipliers and buffer bits of the core, from the formulas in docs/rtl.md.

        The ``global_*`` entries are the global-row engine's (all 0 on a core generated without
        global tokens): ``dim_lanes`` q·k and ``dim_lanes`` p·v multipliers, one exp unit and
        its table, ``dim_lanes`` dividers; its row storage (``global_buffer_bits``: the
        memory of the ``max_global_tokens`` resident Q rows, the Q row being issued, one K row,
        the V row being walked, the V FIFO of ``global_v_fifo_rows`` rows, the output FIFO of 3
        O rows) and its per-row state memories (``global_accumulator_bits``: per global row
        ``head_dim`` accumulators, ``l``, the max and ``max − d_sat``, at the widths of a row
        of ``max_seq_len`` keys). ``flag_bits``: the
        band core's one bit per K/V ring word per lane (the key is a global token)."""
        kl, dl, w, d = self.hw.key_lanes, self.hw.dim_lanes, self.widths, self.spec.head_dim
        res = {
            "qk_multipliers": kl * dl,
            "sv_multipliers": kl * dl,
            # (a core that takes learned sink logits has one more exp unit, for p_σ)
            "exp_multipliers": kl + self.sink_logits,
            # (a decode core of C contexts: C rings)
            "kv_buffer_bits": 2 * kl * self.kv_depth * dl * w.data * max(self.contexts, 1),
            "score_buffer_bits": kl * self.score_depth * w.score,
            "accumulator_bits": 2 * d * w.acc,
            "exp_table_bits": (kl + self.sink_logits) * 2 ** self.fmt.exp_frac_bits * w.prob,
            "divider_stages": dl * w.quotient,
            "random_buffer_bits": 2 * kl * self.random_depth * dl * w.data,
        }
        glob = dict.fromkeys(("global_engines", "global_qk_multipliers", "global_sv_multipliers",
                              "global_exp_multipliers", "global_v_fifo_rows",
                              "global_buffer_bits", "global_accumulator_bits",
                              "global_exp_table_bits", "global_divider_stages", "flag_bits"), 0)
        if self.sink_core:   # resident columns without global rows (C rings: C copies)
            glob["flag_bits"] = kl * self.kv_depth * max(self.contexts, 1)
        elif self.max_global_tokens:
            from .global_rows import QK_DEPTH, global_state_bits
            from .units import EXP_LATENCY

            g, gw, e = self.groups, self.global_widths, self.global_engines
            rows = e * -(-self.max_global_tokens // e)   # each engine's rows, all engines
            fifo_rows = (QK_DEPTH + EXP_LATENCY + g) // g + 2   # GlobalRowEngine's V FIFO
            glob.update(
                global_engines=e,
                global_qk_multipliers=e * dl, global_sv_multipliers=e * dl,
                global_exp_multipliers=e, global_v_fifo_rows=e * fifo_rows,
                global_buffer_bits=((rows + e * (3 + fifo_rows)) * d * w.data
                                    + e * 3 * d * self.fmt.out_bits),
                global_accumulator_bits=rows * global_state_bits(self.fmt, d, gw),
                global_exp_table_bits=e * 2 ** self.fmt.exp_frac_bits * gw.prob,
                global_divider_stages=e * dl * gw.quotient,
                flag_bits=kl * self.kv_depth)
        return {**res, **glob}

    def describe(self) -> str:
        """The core in one line, the one description ``generate``, ``prove``, ``flow``, the
        regression and the FuseSoC core print: the generated window
        (:meth:`AttentionSpec.describe`; BigBird: its blocks and random blocks), head_dim, the
        rows it counts to, the lanes, and the run-time maxima of a pattern core."""
        s = self.spec
        if self.block_size:
            shape = (f"BigBird blocks of {self.block_size} rows ({self.window}-key block "
                     f"window), first and last blocks global ({self.max_global_tokens} rows), "
                     f"up to {self.max_random_blocks} random block"
                     f"{'s' if self.max_random_blocks != 1 else ''} per query block")
        else:   # the window, its keys, then the core's own pattern (global or sink tokens)
            window = s.describe(pattern=False)
            shape = (window + (f" ({self.window} keys)" if s.after else "")
                     + s.describe()[len(window):])
        kind = "sink" if self.sink_core else "global"
        extra = "".join([f", up to {self.max_global_tokens} {kind} tokens"
                         if self.max_global_tokens and not self.block_size else "",
                         f", dilation up to {self.max_dilation}"
                         if self.max_dilation > 1 else "",
                         f", {self.heads} query heads on {self.kv_heads} K/V"
                         if self.group_heads > 1 else "",
                         ", learned sink logits" if self.sink_logits else "",
                         (f", decode ({self.contexts} context"
                          f"{'s' if self.contexts != 1 else ''})") if self.contexts else ""])
        return (f"{shape}, head_dim {s.head_dim}, up to {self.hw.max_seq_len} rows; "
                f"{self.hw.key_lanes} key lanes x {self.hw.dim_lanes} dim lanes{extra}")

    # -- run-time helpers shared by the RTL, the testbenches and the cycle model ---------------

    def run_spec(self, seq_len: int | None = None, **pattern) -> AttentionSpec:
        """The pattern of one run: the spec's own (``seq_len`` rows), with the fields given in
        ``pattern`` (``before``, ``after``, ``dilation``, ``global_tokens``) changed, checked
        against the core's maxima (:meth:`check_run`)."""
        run = self.spec.replace(seq_len=self.spec.seq_len if seq_len is None else seq_len,
                                **pattern)
        self.check_run(run)
        return run

    def check_run(self, run: AttentionSpec) -> None:
        """``ValueError`` naming the field if the core cannot run the pattern ``run`` (a window,
        dilation or global-token count above the maxima it was generated for, a longer
        sequence than its counters hold, or another head_dim)."""
        if not isinstance(run, AttentionSpec):
            raise TypeError(f"a run's pattern must be an AttentionSpec, not {run!r}")
        limits = (("seq_len", run.seq_len, self.hw.max_seq_len),
                  ("before", run.before, self.spec.before),
                  ("after", run.after, self.spec.after),
                  ("dilation", run.dilation, self.max_dilation),
                  ("global_tokens", len(run.global_tokens),
                   0 if self.sink_core else self.max_global_tokens),
                  ("sink_tokens", run.sink_tokens, self.spec.sink_tokens))
        for name, value, limit in limits:
            if value > limit:
                what = "global tokens" if name == "global_tokens" else name
                raise ConfigValueError(f"{what} must be at most {limit} on this core "
                                       f"(generated for {limit}), not {value}", name)
        if run.head_dim != self.spec.head_dim:
            raise ConfigValueError(f"head_dim must be {self.spec.head_dim} on this core, "
                                   f"not {run.head_dim}", "head_dim")
        if run.block_size != self.block_size:
            if not self.block_size:
                raise ConfigValueError("this core runs token bands; a block-sparse pattern "
                                       f"(block_size {run.block_size}) needs a core generated "
                                       "for it", "block_size")
            raise ConfigValueError(f"block_size must be {self.block_size} on this core "
                                   f"(generated for it), not {run.block_size}", "block_size")
        if run.num_random_blocks > self.max_random_blocks:
            raise ConfigValueError(f"random blocks must be at most {self.max_random_blocks} on "
                                   f"this core (generated for {self.max_random_blocks}), not "
                                   f"{run.num_random_blocks}", "num_random_blocks")

    def check_continue(self, run: AttentionSpec, rows: int) -> None:
        """``ValueError`` naming the field if a decode core cannot continue the sequence of
        the pattern ``run`` (its ``seq_len``: the sequence's length after the continue) by its
        last ``rows`` rows — the rule the core's ``cont`` command follows
        (:func:`~swatkit.rtl.run_control.continue_faults`): a core without decode support, no
        rows, a sequence of fewer rows than the continue or past ``max_seq_len``, a window that
        looks ahead (``after`` > 0: its keys have not arrived). The pattern must also be one
        the core runs (:meth:`check_run`), and the sequence's own (the core compares it)."""
        if not self.decode:
            raise ConfigValueError("this core does not continue sequences (generated without "
                                   "decode: contexts 0)", "contexts")
        check_int("rows", rows, 1)
        self.check_run(run)
        if rows >= run.seq_len:
            raise ConfigValueError(f"rows must be fewer than the sequence's {run.seq_len} (a "
                                   f"continue follows a start), not {rows}", "rows")
        if run.after:
            raise ConfigValueError(f"after must be 0 in a continued sequence (its keys after a "
                                   f"row have not arrived), not {run.after}", "after")

    def check_context(self, ctx: int) -> None:
        """``ValueError`` naming ``ctx`` unless it names one of a decode core's contexts
        (0 … C − 1; the core refuses a command on another with ``error``, nothing taken)."""
        if not self.decode:
            raise ConfigValueError("this core has no contexts (generated without decode: "
                                   "contexts 0)", "contexts")
        check_int("ctx", ctx, 0)
        if ctx >= self.contexts:
            raise ConfigValueError(f"ctx must be at most {self.contexts - 1} (the core's "
                                   f"{self.contexts} context{'s' if self.contexts != 1 else ''}"
                                   f"), not {ctx}", "ctx")

    def block_window(self, run: AttentionSpec) -> tuple[np.ndarray, np.ndarray]:
        """The first and last key of every row's band segment on a block-sparse core: for row i
        in block B, ``max((B − 1)·b, 0)`` and ``min((B + 2)·b, N) − 1`` (the global blocks'
        rows too, though their band rows are dropped)."""
        b, n = self.block_size, run.seq_len
        block = np.arange(n, dtype=np.int64) // b
        return np.maximum(block - 1, 0) * b, np.minimum((block + 2) * b, n) - 1

    def random_row(self, run: AttentionSpec) -> np.ndarray:
        """Whether each row walks random blocks (block-sparse: the rows of query blocks
        ``1 … nb − 2`` when the run has random blocks)."""
        block = np.arange(run.seq_len, dtype=np.int64) // max(self.block_size, 1)
        return ((block >= 1) & (block <= run.num_blocks - 2) & (run.num_random_blocks > 0)
                if self.block_size else np.zeros(run.seq_len, dtype=bool))

    def random_stream_rows(self, run: AttentionSpec) -> np.ndarray:
        """The K/V rows the ``kvr`` stream carries in a run (a block-sparse core): for query
        blocks ``1 … nb − 2`` in order, the ``b`` rows of each of its random key blocks, in the
        random table's order. A block the table names twice, or one that is also a window or
        global block (Hugging Face's tables), comes again and counts again: the core walks every
        random slot, as ``AttentionSpec.block_counts`` counts it."""
        if not self.block_size or not run.num_random_blocks or run.num_blocks < 3:
            return np.zeros(0, dtype=np.int64)
        b = self.block_size
        return (run.random_table.reshape(-1)[:, None] * b + np.arange(b)).reshape(-1)

    def row_rounds(self, run: AttentionSpec) -> np.ndarray:
        """Key rounds every row of ``run`` walks on the band engines: ``ceil(B_i / key_lanes)``
        for its band of B_i keys (a global token inside it included; a block-sparse core's
        block window), ``ceil(G / key_lanes)`` for the run's G global columns and, on a
        block-sparse core, ``ceil(r·b / key_lanes)`` for a row's random blocks."""
        kl = self.hw.key_lanes
        glob = -(-self.column_counts(run) // kl)
        if self.block_size:
            lo, hi = self.block_window(run)
            rnd = self.random_row(run) * -(-(run.num_random_blocks * self.block_size) // kl)
            return -(-(hi - lo + 1) // kl) + glob + rnd
        band = run.replace(global_tokens=(), sink_tokens=0).keys_per_row()
        return -(-band // kl) + glob

    def column_counts(self, run: AttentionSpec) -> np.ndarray:
        """Resident columns each row of ``run`` walks after its band: every global column; on
        a sink core the run's S sinks, in a causal run (``after`` = 0) only those up to the row,
        ``min(i + 1, S)`` (the golden rule, :meth:`AttentionSpec.column_valid`)."""
        rows = np.arange(run.seq_len, dtype=np.int64)
        if self.sink_core:
            s = run.sink_tokens
            return np.minimum(rows + 1, s) if run.after == 0 else np.full_like(rows, s)
        return np.full_like(rows, len(run.global_positions()))

    def band_keys(self, run: AttentionSpec) -> np.ndarray:
        """Keys each row of ``run`` issues on the band core: its band (a global token inside
        the band included, though masked), every global column and, on a block-sparse core,
        the row's random blocks."""
        glob = self.column_counts(run)
        if self.block_size:
            lo, hi = self.block_window(run)
            rnd = self.random_row(run) * run.num_random_blocks * self.block_size
            return hi - lo + 1 + glob + rnd
        band = run.replace(global_tokens=(), sink_tokens=0).keys_per_row()
        return band + glob

    def ideal_cycles(self, seq_len: int, run: AttentionSpec | None = None) -> float:
        """``g·Σ_i W_i·d / (key_lanes·dim_lanes)``: every MAC lane busy every cycle, over the
        pairs of the band rows of the g query heads (a run's global rows are the global-row
        engine's)."""
        run = self.run_spec(seq_len) if run is None else run
        keys = run.keys_per_row()
        keys = keys[~np.isin(np.arange(run.seq_len), run.global_positions())].sum()
        return (int(keys) * self.group_heads * self.spec.head_dim
                / (self.hw.key_lanes * self.hw.dim_lanes))

    def config_tables(self) -> dict:
        """The configuration as the ``[spec]``, ``[format]`` and ``[hardware]`` tables of a
        swatkit config (``seq_len``: the rows the counters take, ``hw.max_seq_len``)."""
        if self.block_size:   # (the random table is the run's; the hardware holds none)
            spec = {"seq_len": self.hw.max_seq_len, "head_dim": self.spec.head_dim,
                    "bigbird_block": self.block_size, "random_blocks": self.max_random_blocks}
        else:
            spec = self.spec.replace(seq_len=self.hw.max_seq_len, global_tokens=())
            spec = {**spec.as_options(), "global_tokens": list(self.spec.global_tokens)}
        if self.heads > 1 or self.kv_heads > 1:
            spec.update(heads=self.heads, kv_heads=self.kv_heads)
        if self.sink_logits:
            spec["sink_logits"] = True
        if self.contexts:
            spec["contexts"] = self.contexts
        return {
            "spec": spec,
            "format": dataclasses.asdict(self.fmt),
            "hardware": {"key_lanes": self.hw.key_lanes, "dim_lanes": self.hw.dim_lanes,
                         **({"max_global_tokens": self.max_global_tokens}
                            if self.global_rows and not self.block_size else {}),
                         **({"max_dilation": self.max_dilation}
                            if self.max_dilation > 1 else {})},
        }

    @classmethod
    def from_dict(cls, record: dict) -> CoreParams:
        """The inverse of :meth:`as_dict` (a ``swatkit.json``'s or ``flow.json``'s ``spec``,
        ``format`` and ``hardware`` records, as JSON gives them back: lists for tuples). A
        record's derived fields (``widths``, ``derived``), where present, must be the ones
        these parameters derive.

        Raises
        ------
        TypeError
            When a record is not a table, or a field has the wrong type.
        ValueError
            When a value is refused (as by the constructors), or a derived field differs.
        """
        if not isinstance(record, dict):
            raise ConfigTypeError(f"a core record must be a table, not "
                                  f"{type(record).__name__}")
        tables = {}
        for key in ("spec", "format", "hardware"):
            if not isinstance(record.get(key), dict):
                raise ConfigTypeError(f"the core record's {key!r} must be a table, not "
                                      f"{type(record.get(key)).__name__}", key)
            tables[key] = dict(record[key])
        spec = tables["spec"]
        if isinstance(spec.get("global_tokens"), list):
            spec["global_tokens"] = tuple(spec["global_tokens"])
        table = spec.get("explicit_random_table")
        if isinstance(table, list):
            spec["explicit_random_table"] = tuple(
                tuple(row) if isinstance(row, list) else row for row in table)
        heads = record.get("heads", {"heads": 1, "kv_heads": 1})
        if not isinstance(heads, dict):
            raise TypeError(f"the core record's 'heads' must be a table, not "
                            f"{type(heads).__name__}")
        p = cls(AttentionSpec(**spec), NumberFormat(**tables["format"]),
                HardwareConfig(**tables["hardware"]), **heads)
        mine = p.as_dict()
        for key in ("widths", "derived"):
            if key in record and record[key] != mine[key]:
                raise ConfigValueError(f"the core record's {key!r} are not those of its spec, "
                                       f"format and hardware", key)
        return p

    def as_dict(self) -> dict:
        """The configuration as JSON records: ``spec``, ``format``, ``hardware``, ``heads``
        (a grouped core's ``heads`` and ``kv_heads``; absent for one head on one), ``widths``,
        ``derived`` and ``resources``."""
        heads = ({"heads": {"heads": self.heads, "kv_heads": self.kv_heads,
                            **({"sink_logits": True} if self.sink_logits else {}),
                            **({"contexts": self.contexts} if self.contexts else {})}}
                 if self.heads > 1 or self.kv_heads > 1 or self.sink_logits or self.contexts
                 else {})
        return {
            "spec": dataclasses.asdict(self.spec),
            "format": dataclasses.asdict(self.fmt),
            "hardware": dataclasses.asdict(self.hw),
            **heads,
            "widths": dataclasses.asdict(self.widths),
            "derived": {
                "window": self.window, "groups": self.groups, "rounds": self.rounds,
                "ring_slots": self.ring_slots, "ring_rows": self.ring_rows,
                "score_buffers": self.score_buffers, "score_depth": self.score_depth,
                "index_bits": self.index_bits, "max_dilation": self.max_dilation,
                "max_global_tokens": self.max_global_tokens, "band_rounds": self.band_rounds,
                "global_rounds": self.global_rounds, "region_words": self.region_words,
                "kv_depth": self.kv_depth, "max_keys": self.max_keys,
                "block_size": self.block_size, "max_random_blocks": self.max_random_blocks,
                "random_rounds": self.random_rounds, "random_depth": self.random_depth,
                "ring_before": self.ring_before,
                "softmax_constant": dataclasses.asdict(
                    self.fmt.softmax_constant(self.spec.head_dim)),
            },
            "resources": self.resources(),
        }


@dataclass(frozen=True)
class _EstimateParams(CoreParams):
    """:meth:`CoreParams.for_estimate`'s parameters: checked without the limits of generation."""

    generated: ClassVar[bool] = False
