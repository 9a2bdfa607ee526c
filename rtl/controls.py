"""What the harness's controls and row memories mean, without Amaranth (:mod:`swatkit.rtl.harness`
builds the hardware; this is the half a testbench needs, and what the cocotb bench of the
regression imports, so that a simulator process does not load Amaranth).

* :data:`STREAMS` — the harness's streams and their roles.
* :func:`probability_threshold`, :func:`burst_threshold` — the 16-bit thresholds of its valid
  gaps, ready stalls and bursts.
* :func:`pack_rows`, :func:`unpack_rows` — the words of its row memories.
"""

from __future__ import annotations

import numpy as np

__all__ = ["STREAMS", "THRESHOLD_BITS", "burst_threshold", "pack_rows", "probability_threshold",
           "unpack_rows"]

THRESHOLD_BITS = 16

# the harness's streams: (name, role) — role "src" (a RowSource feeding the core) or "sink"
STREAMS = (("q", "src"), ("kv", "src"), ("o", "sink"), ("qg", "src"), ("kvg", "src"),
           ("og", "sink"), ("kvr", "src"))


def probability_threshold(p: float) -> int:
    """The 16-bit threshold of an event of probability ``p`` (``0 <= p < 1``): the event happens
    in a cycle when the LFSR's low 16 bits are below it."""
    if not 0.0 <= p < 1.0:
        raise ValueError(f"probability must be in [0, 1), not {p}")
    return round(p * 2 ** THRESHOLD_BITS)


def burst_threshold(mean_cycles: float) -> int:
    """The ``burst`` threshold of on and off runs that last ``mean_cycles`` on average
    (``2 <= mean_cycles <= 65536``): a switch with probability ``1/mean_cycles`` a cycle."""
    if not 2 <= mean_cycles <= 2 ** THRESHOLD_BITS:
        raise ValueError(f"mean burst length must be in [2, {2 ** THRESHOLD_BITS}] cycles, "
                         f"not {mean_cycles}")
    return round(2 ** THRESHOLD_BITS / mean_cycles)


# -- row packing (the memories' word layout, for loaders and readers) ----------------------------


def pack_rows(rows: np.ndarray, bits: int) -> np.ndarray:
    """Signed integer rows (n, e) as the memory words of an ``ArrayLayout(signed(bits), e)``
    (element ``j`` at bits ``j·bits …``): an (n, bytes) uint8 array, little-endian. A
    ``StructLayout`` of such rows (``kv``: k then v) is the concatenation of its fields' rows."""
    rows = np.asarray(rows, dtype=np.int64)
    n, e = rows.shape
    field = (rows & ((1 << bits) - 1)).astype(np.uint64)
    bitmat = ((field[:, :, None] >> np.arange(bits, dtype=np.uint64)) & 1).astype(np.uint8)
    return np.packbits(bitmat.reshape(n, e * bits), axis=1, bitorder="little")


def unpack_rows(words: np.ndarray, elements: int, bits: int) -> np.ndarray:
    """The inverse of :func:`pack_rows`: (n, bytes) uint8 words → signed int64 rows."""
    words = np.asarray(words, dtype=np.uint8)
    bitmat = np.unpackbits(words, axis=1, bitorder="little")[:, :elements * bits]
    bitmat = bitmat.reshape(len(words), elements, bits).astype(np.int64)
    value = (bitmat << np.arange(bits, dtype=np.int64)).sum(axis=2)
    return np.where(value >= 1 << (bits - 1), value - (1 << bits), value)
