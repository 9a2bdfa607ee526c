"""Cycle model of the SWAT core as built: a row-level recurrence of its schedule.

For stall-free input and output streams the model gives the exact number of cycles the core is
busy (``stats.cycles``); the regression checks this equality on every stall-free run. The
recurrence follows the RTL's start conditions (the stages of rtl/core.py, whose pipeline depths
are their own: ``qk_depth`` in rtl/qk_engine.py, ``SV_DEPTH`` in rtl/sv_engine.py), with ``G =
d/DL`` and ``R_i = ceil(W_i/KL)`` rounds for row i:

* K/V row x is accepted at ``a_x = max(a_{x−1} + G, e_{x−ring+before} + 1)`` (the loader writes a
  row in G cycles; the ring slot must be free) and is readable ``G + 1`` cycles later;
* row i starts QK at ``s_i = max(s_{i−1} + R_{i−1}·G, 1, a_{hi_i} + G + 1,
  e_{i−score_buffers} + 1)`` (previous row issued, Q row in, keys loaded, a score buffer free);
* its row max reaches the SV engine ``qk_depth(p)`` cycles after its last QK issue, and SV
  starts at ``u_i = max(s_i + R_i·G + qk_depth, u_{i−1} + R_{i−1}·G)``;
* the row finishes SV (``e_i``) ``SV_DEPTH`` cycles after its last SV issue;
* the run ends ``G + divider_latency + 5`` cycles after the last row's SV.

Interior rows repeat with period ``R·G`` once the pipeline is full; the model detects that and
jumps over them, so N = 1M costs about as much as N = 10K.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from swatkit.golden import AttentionSpec
from swatkit.rtl import CoreParams
from swatkit.rtl.global_rows import global_rows_cycles
from swatkit.rtl.qk_engine import qk_depth
from swatkit.rtl.sv_engine import SV_DEPTH
from swatkit.rtl.units import divider_latency

__all__ = ["SV_DEPTH", "CycleEstimate", "qk_depth", "swat_actions", "swat_cycles"]


DROP_EARLY = 2  # a dropped last row ends the run this many cycles before a sent one


@dataclass(frozen=True)
class CycleEstimate:
    cycles: int            # busy cycles of the run (stats.cycles)
    ideal: float           # Σ W_i·d / (KL·DL)
    fill: int              # cycles before the first QK issue
    rows_simulated: int    # rows the recurrence visited (the rest were periodic)

    @property
    def ratio(self) -> float:
        return self.cycles / self.ideal


def swat_cycles(p: CoreParams, seq_len: int, *, run: AttentionSpec | None = None,
                skip_periodic: bool = True) -> CycleEstimate:
    """Busy cycles of one stall-free run of ``seq_len`` rows on the core ``p``, with the
    pattern ``run`` (default: the core's spec; :meth:`CoreParams.run_spec`). With
    ``skip_periodic=False`` every row is visited; the result is the same."""
    n = int(seq_len)
    if not 1 <= n <= p.hw.max_seq_len:
        raise ValueError(f"seq_len must be in 1..{p.hw.max_seq_len}, not {seq_len}")
    run = p.run_spec(n) if run is None else run
    p.check_run(run)
    if run.seq_len != n:
        raise ValueError(f"the run's pattern has seq_len {run.seq_len}, not {n}")
    g, before, after, dil = p.groups, run.before, run.after, run.dilation
    glob_pos = run.global_positions()
    n_glob = len(glob_pos)
    ring, nb = p.ring_rows, p.score_buffers
    reach = dil * after                   # the band's reach after the row
    # K/V row x waits for row x − free_back to finish (a block-sparse core: 2b − 1 behind)
    free_back = dil * (ring - (p.ring_before if p.block_size else before))
    if p.block_size:   # the last K/V row each row waits for, and the random blocks
        hi_row = p.block_window(run)[1]
        rnd_ready = _random_ready(p, run)
        skip_periodic = False
    rg = p.row_rounds(run) * g
    qd = qk_depth(p)
    a = np.zeros(n, dtype=np.int64)       # K/V accept cycle
    s = np.zeros(n, dtype=np.int64)       # QK start
    u = np.zeros(n, dtype=np.int64)       # SV start
    e = np.zeros(n, dtype=np.int64)       # SV done
    loaded = 0                            # K/V rows whose accept time is known
    # rows whose schedule is periodic can be skipped: from here on all times move by rg_mid
    interior_end = n - reach - 2          # rows before this have a full, unclipped window
    rg_mid = (math.ceil(run.window / p.hw.key_lanes) + math.ceil(n_glob / p.hw.key_lanes)) * g
    history = 3 * dil * (nb + ring // max(1, before + after + 1) + 4)
    first = n_glob * g                    # the global columns are accepted first
    i = 0
    visited = 0
    while i < n:
        hi = int(hi_row[i]) if p.block_size else min(n - 1, i + reach)
        while loaded <= hi:
            x = loaded
            t = a[x - 1] + g if x else first
            if x >= dil * ring:
                t = max(t, e[x - free_back] + 1)
            a[x] = t
            loaded += 1
        t = max(1, a[hi] + g + 1)
        if i:
            t = max(t, s[i - 1] + rg[i - 1])
        if i >= nb:
            t = max(t, e[i - nb] + 1)
        if p.block_size and rnd_ready is not None:
            t = max(t, rnd_ready(i, e))
        s[i] = t
        u[i] = s[i] + rg[i] + qd
        if i:
            u[i] = max(u[i], u[i - 1] + rg[i - 1])
        e[i] = u[i] + rg[i] + SV_DEPTH
        visited += 1
        # periodic? (every interval in a window of recent rows equals the period)
        if (skip_periodic and dil * before + history < i < interior_end - history
                and rg[i] == rg_mid
                and _periodic(s, u, e, a, i, history, rg_mid, reach)):
            jump = interior_end - history - i
            if jump > 0:
                steps = np.arange(1, jump + 1, dtype=np.int64) * rg_mid
                for arr, base in ((s, i), (u, i), (e, i)):
                    arr[base + 1:base + jump + 1] = arr[base] + steps
                a[loaded:loaded + jump] = a[loaded - 1] + steps
                loaded += jump
                i += jump
        i += 1
    # the last row leaves on o (or, a global token's band row, is dropped before the output
    # FIFO: DROP_EARLY cycles sooner)
    last_dropped = n_glob and glob_pos[-1] == n - 1
    cycles = int(e[n - 1] + g + divider_latency(p.fmt) + 5 - (DROP_EARLY if last_dropped else 0))
    # the global-row engine runs beside the band from the start of the run; the run ends when
    # both are done
    if n_glob:
        cycles = max(cycles, global_rows_cycles(p.spec.head_dim, p.hw.dim_lanes, p.fmt, n,
                                                n_glob, p.global_engines) + 1)
    return CycleEstimate(cycles, p.ideal_cycles(n, run), int(s[0]) + 1, visited)


def _random_ready(p: CoreParams, run: AttentionSpec):
    """For a block-sparse run with random blocks: a function ``(row, e) -> cycle`` giving the
    first cycle row ``row`` may start QK as far as its random rows go (0 for a row without
    them), where ``e`` is the SV-done array filled so far. The random loader takes a row every
    G cycles (written G cycles later); query block B's rows go into buffer B mod 2 and, for B
    >= 3, wait until row (B − 1)·b − 1 has finished SV (block B − 2 has released that buffer).
    None when the run has no random rows."""
    b, g, per = p.block_size, p.groups, run.num_random_blocks * p.block_size
    nblk = run.num_blocks
    if not per or nblk < 3:
        return None
    done = {}      # block -> cycle its random rows are readable
    state = {"t": None, "next": 1}   # accept cycle of the last random row taken; next block

    def ready(row: int, e) -> int:
        blk = row // b
        if not 1 <= blk <= nblk - 2:
            return 0
        while state["next"] <= blk:
            nxt = state["next"]
            t = 0 if state["t"] is None else state["t"] + g
            if nxt >= 3:
                t = max(t, int(e[(nxt - 1) * b - 1]) + 1)
            t += (per - 1) * g     # the block's rows follow one another
            state["t"] = t
            done[nxt] = t + g + 1
            state["next"] += 1
        return done[blk]

    return ready


def swat_actions(p: CoreParams, run: AttentionSpec) -> dict:
    """The core's counters after a run with the pattern ``run`` (``stats``, but ``cycles``):
    the band engines issue every row's band (a global token inside it masked, not skipped) and
    the run's G global columns, for all N rows (a global token's band row is computed, then
    dropped); the global-row engine makes two q·k passes and one p·v pass over the N keys per
    global row."""
    p.check_run(run)
    n, d, n_glob = run.seq_len, p.spec.head_dim, len(run.global_positions())
    band_keys = int(p.band_keys(run).sum())
    return {"kv_rows": n, "q_rows": n, "rows_out": n - n_glob,
            "qk_macs": (band_keys + 2 * n_glob * n) * d,
            "sv_macs": (band_keys + n_glob * n) * d,
            "exp_ops": band_keys + n_glob * n}


def _periodic(s, u, e, a, i, window, period, after) -> bool:
    lo = i - window
    for arr in (s, u, e):
        if not np.all(np.diff(arr[lo:i + 1]) == period):
            return False
    k = i + after
    return bool(np.all(np.diff(a[k - window:k + 1]) == period))
