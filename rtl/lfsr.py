"""The project's LFSR, once: a 32-bit Galois LFSR, in HDL and as its NumPy twin.

Polynomial x^32 + x^30 + x^26 + x^25 + 1 (maximal length), Galois form with the taps
:data:`LFSR_TAPS`: a step shifts the state right by one and XORs the taps in when the bit
shifted out is 1. A seed of 0 (the one state the LFSR never leaves) is loaded as 1. Users: the
simulation harness's valid gaps and ready stalls (:mod:`swatkit.rtl.harness`), the board
self-test's Q/K/V generators (:mod:`swatkit.fpga_flows.selftest`). tests/rtl/test_lfsr.py checks
the HDL step against :func:`lfsr_sequence` and :func:`lfsr_bits` against both.
"""

from __future__ import annotations

import numpy as np
from amaranth import Value

__all__ = ["LFSR_TAPS", "lfsr_bits", "lfsr_seed", "lfsr_sequence", "lfsr_step", "lfsr_step_hdl"]

LFSR_TAPS = 0xA3000000  # Galois form of x^32 + x^30 + x^26 + x^25 + 1 (maximal length)


def lfsr_seed(seed: int) -> int:
    """The state a load of ``seed`` puts in the LFSR: its low 32 bits, 0 loaded as 1."""
    return (int(seed) & 0xFFFFFFFF) or 1


def lfsr_step(state: int) -> int:
    """One step of the LFSR (a Python integer state)."""
    return (state >> 1) ^ (LFSR_TAPS if state & 1 else 0)


def lfsr_step_hdl(state: Value) -> Value:
    """One step of the LFSR, as an Amaranth expression of the 32-bit ``state``."""
    return (state >> 1) ^ (state[0].replicate(32) & LFSR_TAPS)


def lfsr_sequence(seed: int, count: int) -> np.ndarray:
    """The first ``count`` states after a load of ``seed`` (uint32; element 0 is the loaded
    state)."""
    state = lfsr_seed(seed)
    out = np.empty(count, dtype=np.uint32)
    for i in range(count):
        out[i] = state
        state = lfsr_step(state)
    return out


def lfsr_bits(seed: int, count: int) -> np.ndarray:
    """Bit 0 of the first ``count`` states after a load of ``seed`` (uint8): the same as
    ``lfsr_sequence(seed, count) & 1``, computed in blocks (jump-ahead by a GF(2) matrix, then
    all blocks stepped at once), so that millions of bits take a fraction of a second."""
    state = lfsr_seed(seed)
    block = max(64, min(4096, int(np.sqrt(max(count, 1))) + 1))
    blocks = -(-count // block)
    # columns of the block-step matrix: the state ``block`` steps after each unit state
    cols = []
    for i in range(32):
        s = 1 << i
        for _ in range(block):
            s = lfsr_step(s)
        cols.append(s)
    starts = np.empty(blocks, dtype=np.uint32)
    for b in range(blocks):
        starts[b] = state
        nxt = 0
        for i in range(32):
            if state >> i & 1:
                nxt ^= cols[i]
        state = nxt
    out = np.empty((blocks, block), dtype=np.uint8)
    s = starts
    taps = np.uint32(LFSR_TAPS)
    for t in range(block):
        low = s & np.uint32(1)
        out[:, t] = low
        s = (s >> np.uint32(1)) ^ (taps * low)
    return out.reshape(-1)[:count]
