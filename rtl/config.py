"""Hardware configuration of the SWAT core, and the parameters derived from (spec, format, hw).

:class:`HardwareConfig` holds what the hardware designer chooses (lanes, counter sizes);
:class:`CoreParams` checks it against the workload and derives every size the RTL, the docs and
the resource formula use, so that none of them computes its own.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from swatkit.golden import AttentionSpec, NumberFormat
from swatkit.golden.numerics import Widths, clog2

__all__ = [
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
MAX_KV_BUFFER_BITS = 2 ** 25   # the K/V ring (32 Mibit; the largest ECP5 has 3.7 Mbit of BRAM)


class LimitError(ValueError):
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
        self.field, self.value, self.limit, self.what = field, value, limit, what
        super().__init__(f"{field} must be at most {limit} ({what}), not {value}")


def _check_int(name, value, lo, hi=None):
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an integer, not {value!r}")
    if value < lo or (hi is not None and value > hi):
        bound = f"in {lo}..{hi}" if hi is not None else f">= {lo}"
        raise ValueError(f"{name} must be an integer {bound}, not {value}")


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

    def __post_init__(self):
        _check_int("key_lanes", self.key_lanes, 1, 64)
        _check_int("dim_lanes", self.dim_lanes, 1, 256)
        _check_int("max_seq_len", self.max_seq_len, 1)
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

    Raises ``ValueError`` naming the conflict when the core cannot implement the spec, and
    :class:`LimitError` (a ``ValueError``) for a size beyond a practical limit: ``head_dim``
    above ``MAX_HEAD_DIM``, a window above ``MAX_WINDOW`` keys, a K/V buffer above
    ``MAX_KV_BUFFER_BITS``.
    """

    spec: AttentionSpec
    fmt: NumberFormat
    hw: HardwareConfig

    def __post_init__(self):
        spec, hw = self.spec, self.hw
        if spec.head_dim > MAX_HEAD_DIM:
            raise LimitError("head_dim", spec.head_dim, MAX_HEAD_DIM,
                             "the practical limit of Verilog generation")
        if spec.window > MAX_WINDOW:
            raise LimitError("window", spec.window, MAX_WINDOW,
                             "keys per row, the practical limit of Verilog generation")
        if spec.dilation != 1:
            raise ValueError(f"the SWAT core does not implement dilation yet (dilation is "
                             f"{spec.dilation}; must be 1)")
        if spec.global_tokens:
            raise ValueError("the SWAT core does not implement global tokens yet "
                             f"(global_tokens is {spec.global_tokens!r}; must be empty)")
        if spec.head_dim % hw.dim_lanes:
            raise ValueError(f"dim_lanes ({hw.dim_lanes}) must divide head_dim "
                             f"({spec.head_dim})")
        if hw.key_lanes > spec.window:
            raise ValueError(f"key_lanes ({hw.key_lanes}) must not exceed the window "
                             f"({spec.window} keys)")
        _ = self.widths  # raises if the format cannot hold this window
        kv_bits = self.resources()["kv_buffer_bits"]
        if kv_bits > MAX_KV_BUFFER_BITS:
            raise LimitError("kv_buffer_bits", kv_bits, MAX_KV_BUFFER_BITS,
                             "the K/V ring: 2 x ring_rows x head_dim x data_bits, the practical "
                             "limit of Verilog generation")

    # -- sizes --------------------------------------------------------------------------------

    @property
    def window(self) -> int:
        """Keys per row away from the sequence edges (W)."""
        return self.spec.window

    @property
    def groups(self) -> int:
        """Cycles per key per lane: ``head_dim / dim_lanes`` (G)."""
        return self.spec.head_dim // self.hw.dim_lanes

    @property
    def rounds(self) -> int:
        """Most key rounds per row: ``ceil(W / key_lanes)``."""
        return math.ceil(self.window / self.hw.key_lanes)

    @property
    def score_buffers(self) -> int:
        """Rows of scores in flight between the QK and the SV engine: two, plus enough to cover
        ``ROW_LATENCY`` when rows are short (``2 + ceil(ROW_LATENCY / (rounds·G))``)."""
        return 2 + math.ceil(ROW_LATENCY / (self.rounds * self.groups))

    @property
    def ring_slots(self) -> int:
        """K/V rows each lane's buffer holds (S). The ring of ``key_lanes·S`` rows holds the
        keys of every row in flight (``W + score_buffers − 1``) and one row being loaded."""
        return math.ceil((self.window + self.score_buffers) / self.hw.key_lanes)

    @property
    def ring_rows(self) -> int:
        return self.ring_slots * self.hw.key_lanes

    @property
    def score_depth(self) -> int:
        """Entries of each lane's score memory: ``score_buffers`` rows of ``rounds``."""
        return self.score_buffers * self.rounds

    @property
    def index_bits(self) -> int:
        """Width of row counters (0 … max_seq_len)."""
        return clog2(self.hw.max_seq_len + 1)

    @property
    def widths(self) -> Widths:
        return self.fmt.widths(self.spec.head_dim, min(self.window, self.hw.max_seq_len))

    # -- resources (docs/rtl.md) ---------------------------------------------------------------

    def resources(self) -> dict:
        """Multipliers and buffer bits of the core, from the formulas in docs/rtl.md."""
        kl, dl, w = self.hw.key_lanes, self.hw.dim_lanes, self.widths
        return {
            "qk_multipliers": kl * dl,
            "sv_multipliers": kl * dl,
            "exp_multipliers": kl,
            "kv_buffer_bits": 2 * self.ring_rows * self.spec.head_dim * w.data,
            "score_buffer_bits": kl * self.score_depth * w.score,
            "accumulator_bits": 2 * self.spec.head_dim * w.acc,
            "exp_table_bits": kl * 2 ** self.fmt.exp_frac_bits * w.prob,
            "divider_stages": dl * w.quotient,
        }

    # -- run-time helpers shared by the RTL, the testbenches and the cycle model ---------------

    def ideal_cycles(self, seq_len: int) -> float:
        """``Σ_i W_i·d / (key_lanes·dim_lanes)``: every MAC lane busy every cycle."""
        keys = AttentionSpec(seq_len, self.spec.head_dim, self.spec.before,
                             self.spec.after).pair_count()
        return keys * self.spec.head_dim / (self.hw.key_lanes * self.hw.dim_lanes)

    def config_tables(self) -> dict:
        """The configuration as the ``[spec]``, ``[format]`` and ``[hardware]`` tables of a
        swatkit config (``seq_len``: the rows the counters take, ``hw.max_seq_len``)."""
        spec = self.spec.replace(seq_len=self.hw.max_seq_len, global_tokens=())
        return {
            "spec": {**spec.as_options(), "global_tokens": list(self.spec.global_tokens)},
            "format": dataclasses.asdict(self.fmt),
            "hardware": {"key_lanes": self.hw.key_lanes, "dim_lanes": self.hw.dim_lanes},
        }

    def as_dict(self) -> dict:
        return {
            "spec": dataclasses.asdict(self.spec),
            "format": dataclasses.asdict(self.fmt),
            "hardware": dataclasses.asdict(self.hw),
            "widths": dataclasses.asdict(self.widths),
            "derived": {
                "window": self.window, "groups": self.groups, "rounds": self.rounds,
                "ring_slots": self.ring_slots, "ring_rows": self.ring_rows,
                "score_buffers": self.score_buffers, "score_depth": self.score_depth,
                "index_bits": self.index_bits,
                "softmax_constant": dataclasses.asdict(
                    self.fmt.softmax_constant(self.spec.head_dim)),
            },
            "resources": self.resources(),
        }
