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

A grouped core (g query heads per K/V head) has g rows per position, in the order of the Q
stream (position 0's heads, then position 1's): the recurrence runs over those g·N rows, each
with its position's keys (``hi_i``, ``R_i``), and a K/V slot frees when the last head of the
position ``x − ring + before`` is done.

Interior rows repeat with period ``R·G`` (``g·R·G`` per position) once the pipeline is full; the
model detects that and jumps over them, so N = 1M costs about as much as N = 10K.
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
                skip_periodic: bool = True, first_row: int = 0) -> CycleEstimate:
    """Busy cycles of one stall-free run of ``seq_len`` rows on the core ``p``, with the
    pattern ``run`` (default: the core's spec; :meth:`CoreParams.run_spec`). With
    ``skip_periodic=False`` every row is visited; the result is the same.

    ``first_row`` P > 0 (a decode core): the run continues a sequence whose rows 0 … P − 1 a
    run before it computed, to ``seq_len`` rows (rows P … seq_len − 1; its ``ideal`` counts
    those). The earlier rows are all done when it starts: their ring slots, score buffers and
    engines are free, so the recurrence starts at row P with no constraint from them. On a
    core of C > 1 contexts the same holds whichever context ran before: a continue loads its
    context's registers in the cycle its command is taken (``ContextStore``, read as the
    command is offered) and the run that ended saved its own in its last cycle, so a context
    switch costs no cycle and the model has no term for it (the regression checks this on
    every stall-free run of an interleaved decode case)."""
    n = int(seq_len)
    if not 1 <= n <= p.hw.max_seq_len:
        raise ValueError(f"seq_len must be in 1..{p.hw.max_seq_len}, not {seq_len}")
    run = p.run_spec(n) if run is None else run
    p.check_run(run)
    if run.seq_len != n:
        raise ValueError(f"the run's pattern has seq_len {run.seq_len}, not {n}")
    if first_row:
        p.check_continue(run, n - first_row)
        skip_periodic = False   # (a continue's rows are all visited)
    g, before, after, dil = p.groups, run.before, run.after, run.dilation
    glob_pos = run.global_positions()
    n_glob = len(glob_pos)                # global rows
    n_cols = len(run.columns()) if not p.block_size else n_glob   # resident columns
    ring, nb = p.ring_rows, p.score_buffers
    reach = dil * after                   # the band's reach after the row
    # K/V row x waits for row x − free_back to finish (a block-sparse core: 2b − 1 behind)
    free_back = dil * (ring - (p.ring_before if p.block_size else before))
    if p.block_size:   # the last K/V row each row waits for, and the random blocks
        hi_row = p.block_window(run)[1]
        rnd_ready = _random_ready(p, run)
        skip_periodic = False
    # rows in order: position 0's g query heads, position 1's, … (one head: row = position)
    hg = p.group_heads
    rows = n * hg
    rg = np.repeat(p.row_rounds(run) * g, hg)
    qd = qk_depth(p)
    # (a continue: the rows before it finished long before; their times bind nothing)
    before_run = -(2 ** 62) if first_row else 0
    a = np.full(n, before_run, dtype=np.int64)      # K/V accept cycle (per position)
    s = np.full(rows, before_run, dtype=np.int64)   # QK start
    u = np.full(rows, before_run, dtype=np.int64)   # SV start
    e = np.full(rows, before_run, dtype=np.int64)   # SV done
    loaded = first_row                    # K/V rows whose accept time is known
    # rows whose schedule is periodic can be skipped: from here on all times move by rg_mid
    # per row (g·rg_mid per position)
    interior_end = n - reach - 2          # positions before this have a full, unclipped window
    rg_mid = (math.ceil(run.window / p.hw.key_lanes) + math.ceil(n_cols / p.hw.key_lanes)) * g
    history = 3 * dil * (nb + ring // max(1, before + after + 1) + 4)
    first = 0 if first_row else n_cols * g   # the resident columns are accepted first
    r = first_row * hg
    visited = 0
    while r < rows:
        i = r // hg                       # the row's position
        hi = int(hi_row[i]) if p.block_size else min(n - 1, i + reach)
        while loaded <= hi:
            x = loaded
            t = a[x - 1] + g if x > first_row else first
            if x >= dil * ring:   # its slot frees when position x − free_back is done
                t = max(t, e[(x - free_back) * hg + hg - 1] + 1)
            a[x] = t
            loaded += 1
        t = max(1, a[hi] + g + 1)
        if r > first_row * hg:
            t = max(t, s[r - 1] + rg[r - 1])
        if r >= nb:
            t = max(t, e[r - nb] + 1)
        if p.block_size and rnd_ready is not None:
            t = max(t, rnd_ready(i, e))
        s[r] = t
        u[r] = s[r] + rg[r] + qd
        if r:
            u[r] = max(u[r], u[r - 1] + rg[r - 1])
        e[r] = u[r] + rg[r] + SV_DEPTH
        visited += 1
        # periodic? (at a position's last head: every interval in a window of recent positions
        # equals the period)
        if (skip_periodic and r % hg == hg - 1
                and dil * before + history < i < interior_end - history
                and rg[r] == rg_mid
                and _periodic(s, u, e, a, i, history, hg * rg_mid, reach, hg)):
            jump = interior_end - history - i
            if jump > 0:
                steps = np.arange(1, jump + 1, dtype=np.int64) * (hg * rg_mid)
                for arr in (s, u, e):
                    last = arr[r - hg + 1:r + 1]
                    arr[r + 1:r + 1 + jump * hg] = (last[None, :] + steps[:, None]).reshape(-1)
                a[loaded:loaded + jump] = a[loaded - 1] + steps
                loaded += jump
                r += jump * hg
        r += 1
    # the last row leaves on o (or, a global token's band row, is dropped before the output
    # FIFO: DROP_EARLY cycles sooner)
    last_dropped = n_glob and glob_pos[-1] == n - 1
    cycles = int(e[rows - 1] + g + divider_latency(p.fmt) + 5 - (DROP_EARLY if last_dropped else 0))
    # the global-row engine runs beside the band from the start of the run; the run ends when
    # both are done
    if n_glob:
        cycles = max(cycles, global_rows_cycles(p.spec.head_dim, p.hw.dim_lanes, p.fmt, n,
                                                n_glob, p.global_engines) + 1)
    ideal = p.ideal_cycles(n, run)
    if first_row:   # the rows of the continue
        keys = p.band_keys(run)[first_row:].sum()   # (a decode core has no global rows)
        ideal = float(keys * hg * p.spec.head_dim / (p.hw.key_lanes * p.hw.dim_lanes))
    return CycleEstimate(cycles, ideal, int(s[first_row * hg]) + 1, visited)


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


def swat_actions(p: CoreParams, run: AttentionSpec, first_row: int = 0) -> dict:
    """The core's counters after a run with the pattern ``run`` (``stats``, but ``cycles``):
    the band engines issue every row's band (a global token inside it masked, not skipped) and
    the run's G global columns, for all N rows (a global token's band row is computed, then
    dropped); the global-row engine makes two q·k passes and one p·v pass over the N keys per
    global row. A grouped core reads each K/V row once and takes, computes and sends g rows
    per position. ``first_row`` P > 0: a run that continues the sequence (of ``run.seq_len``
    rows after it) from row P (:func:`swat_cycles`), which counts its rows only."""
    p.check_run(run)
    if first_row:
        p.check_continue(run, run.seq_len - first_row)
    n, d, n_glob = run.seq_len - first_row, p.spec.head_dim, len(run.global_positions())
    hg = p.group_heads   # (a grouped core has no global rows)
    band_keys = int(p.band_keys(run)[first_row:].sum()) * hg
    return {"kv_rows": n, "q_rows": hg * n, "rows_out": hg * (n - n_glob),
            "qk_macs": (band_keys + 2 * n_glob * n) * d,
            "sv_macs": (band_keys + n_glob * n) * d,
            "exp_ops": band_keys + n_glob * n}


def _periodic(s, u, e, a, i, window, period, after, hg=1) -> bool:
    """Whether the last ``window`` positions up to position ``i`` (its last head) are periodic:
    each row's times ``period`` after those of the same head one position before, and the K/V
    accepts ``after`` ahead of them one ``period`` apart."""
    lo, hi = (i - window) * hg, (i + 1) * hg
    for arr in (s, u, e):
        x = arr[lo:hi]
        if not np.all(x[hg:] - x[:-hg] == period):
            return False
    k = i + after
    return bool(np.all(np.diff(a[k - window:k + 1]) == period))
