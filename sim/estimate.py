"""Estimates of cycles, latency and energy: one attention head or a whole model, on the SWAT core
and on three baselines with the same MAC budget and the same off-chip bandwidth.

* **Cycles.** SWAT: :func:`swatkit.sim.cycle_model.swat_cycles`, the exact model of the core as
  built (validated against RTL simulation). Baselines: the phase and tile models below.
* **Action counts** per run: MACs by operand widths, exp evaluations, compares, adds, divisions,
  on-chip buffer bits read/written by buffer, off-chip bytes read/written. For SWAT they are the
  counts the core's counters measure (``qk_macs``, ``sv_macs``, ``exp_ops``, ``kv_rows``, …).
* **Energy** = Σ actions × energy per action from a table (TOML: ``[energy]`` in pJ, a ``source``
  and an ``uncertainty``) + static power × latency where the table gives it. Shipped tables:
  ``asic45`` (Horowitz, ISSCC 2014) and ``fpga`` (the same ×14, Kuon & Rose 2007). A buffer
  access costs the 64-bit SRAM read energy of a memory of the buffer's bank size
  (:meth:`EnergyTable.sram_bit`), each bank size from :class:`~swatkit.rtl.CoreParams`.

Baselines (``docs/estimation.md`` has the same list beside the figures). All of them: KL·DL
multipliers for QK and KL·DL for P·V (the SWAT core's two arrays), KL exp units, the same
``offchip_bytes_per_cycle``; the score and probability widths of the SWAT datapath.

``dense`` — the conventional unfused accelerator SWAT is compared against. The query rows are
processed in tiles of ``ring_rows`` rows (the SWAT core's K/V buffer size, so both have the same
on-chip storage), K and V are streamed from off-chip once per tile; all N keys are scored (the
mask is applied after QK); the N×N score matrix is written off-chip and read back for the softmax
pass, which writes the probabilities off-chip for the SV pass; the three phases do not overlap;
each phase takes the longer of its compute time and its off-chip transfer time.

``flash`` — fused dense attention in the manner of FlashAttention (Dao et al., NeurIPS 2022;
FlashAttention-2, Dao 2023): query tiles of ``tile_q`` rows stay on chip; for each query tile
the K/V tiles of ``tile_k`` rows are streamed from off-chip once; scores, exp and P·V stay on
chip with the online softmax (per query row and key tile after the first: one exp of
``m_old − m_new``, d multiplies rescaling the accumulator on the P·V array, the accumulator read
and written in its buffer). Every key tile is computed, except, for a causal pattern (no row
attends a later key), the tiles wholly above the diagonal (FlashAttention's causal mode); the
window is applied as a mask inside the tiles, which saves no work. Compute and transfers overlap
perfectly (double-buffered tiles) and no pipeline fill or tile-switch cycles are charged: the
cycles are ``max(QK MACs/(KL·DL), (P·V MACs + rescale multiplies)/(KL·DL), exps/KL,
off-chip bytes/bandwidth)`` — optimistic for the baseline.

``blocksparse`` — the same tiles with the window mask at tile granularity, as GPU sliding-window
kernels do: a (query tile, key tile) pair with no pair inside the window is skipped (and its K/V
rows not fetched), a partially masked tile is computed whole.

Patterns with dilation and global tokens (``docs/estimation.md``, "Global tokens and
dilation"): every dataflow makes a main pass (all N rows, each row's band and the global
columns) and a global pass (the G global rows over all N keys, through their own projections,
as Longformer); :func:`passes` gives both, :func:`actions` their sum. SWAT's counts are the
core's counters (:func:`~swatkit.sim.cycle_model.swat_actions`); its global pass is the
global-row engine's (two passes over the N ``{k_g, v_g}`` rows per run, each row serving all
G global rows). The baselines'
global pass gathers the G rows into query tiles (``dense``: tiles of its K/V storage) that read
K_g/V_g once per tile.

Whole models (:func:`estimate_model`): per layer, ``heads`` query heads on ``kv_heads`` K/V
heads (g = heads/kv_heads per group). ``gqa`` (the default when g > 1) runs each K/V head's
group against one pass of its K/V: each K/V row is fetched from off-chip and written into the
ring once and serves all g query heads (SWAT's input-stationary ring, shared by the group), on
``head_engines`` E engines side by side (each the core's QK and P·V arrays, exp units and score
buffers; E divides g; default 1, the core the lanes describe): g/E passes of the engines one
after another, each a run of the cycle model, the ring read once per pass. ``serial`` runs the
heads one by one with K/V fetched per query head (what a core without grouping does; the
default when g = 1, where the two are the same). Jobs (K/V
groups, or heads) are spread over ``cores`` cores sharing the off-chip bandwidth equally. The
baselines run one query head at a time on each slot of the same MAC budget (``cores`` × E
slots) and re-read K/V per query head. ``kv_fetches``: off-chip K/V bytes over the K/V of the
layer (each K/V head's N rows once): 1 for SWAT under ``gqa``, g under ``serial``. A learned sink
logit per query head (GPT-OSS, :attr:`ModelConfig.learned_sinks`) adds :func:`sink_term` to
every dataflow's actions and no cycles: its one exp per row runs on exp units that are busy at
most one cycle in G = d/DL of a row's walk (G > 1). A full-attention layer (``layer_types``) is
estimated with the ``flash`` model under every dataflow but ``dense`` and marked
(``computed_as``); it is not generated as the SWAT core, so only the estimate's own limits bound
it (N up to ``MAX_SEQ_LEN``), not those of Verilog generation.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from swatkit.golden import AttentionSpec
from swatkit.golden.checks import check_int
from swatkit.rtl import CoreParams, HardwareConfig
from swatkit.rtl.config import MAX_SEQ_LEN
from swatkit.rtl.global_rows import global_rows_cycles, global_state_bits

from .cycle_model import swat_actions, swat_cycles
from .model_configs import LayerPattern, ModelConfig, ModelError

__all__ = ["BASELINES", "COMPONENTS", "DATAFLOWS", "DECODE_DATAFLOWS", "HEAD_SCHEDULES",
           "EnergyTable", "Tiles", "actions", "decode_step", "default_head_schedule",
           "estimate", "estimate_decode", "estimate_model", "load_table", "sink_term"]

DATAFLOWS = ("swat", "dense", "flash", "blocksparse")
MAX_CORES = 1024   # cores sharing the off-chip bandwidth (--cores)
BASELINES = DATAFLOWS[1:]
HEAD_SCHEDULES = ("serial", "gqa")
COMPONENTS = ("macs", "exp", "reductions", "buffers", "offchip", "static")
BUILTIN_TABLES = ("asic45", "fpga")
REQUIRED_ENTRIES = ("int8_add", "int32_add", "int8_mult", "int32_mult", "sram_read_64b",
                    "dram_access_64b")
# Horowitz, ISSCC 2014 (45 nm): one 64-bit read of an SRAM of 8 KB, 32 KB, 1 MB -> pJ. The
# curve's shape; a table's sram_read_64b (its 8 KB figure) scales it.
HOROWITZ_SRAM_64B = ((8 * 1024 * 8, 10.0), (32 * 1024 * 8, 20.0), (1024 * 1024 * 8, 100.0))


class TableError(ValueError):
    """An energy table is missing or malformed."""


@dataclass(frozen=True)
class EnergyTable:
    """Energy per action in pJ, with the source it comes from."""

    name: str
    source: str
    uncertainty: str
    energy_pj: dict
    static_power_w: float = 0.0

    def mult(self, a: int, b: int) -> float:
        """An a×b-bit integer multiply: a power law in a·b through the int8 and int32 points."""
        e8, e32 = self.energy_pj["int8_mult"], self.energy_pj["int32_mult"]
        k = math.log(e32 / e8) / math.log(16)
        return e8 * (a * b / 64) ** k

    def add(self, w: int) -> float:
        """A w-bit integer add (or compare): a power law in w through the int8 and int32 points."""
        e8, e32 = self.energy_pj["int8_add"], self.energy_pj["int32_add"]
        k = math.log(e32 / e8) / math.log(4)
        return e8 * (w / 8) ** k

    def sram_bit(self, bank_bits: float = HOROWITZ_SRAM_64B[0][0]) -> float:
        """One bit read (or written) of an SRAM of ``bank_bits`` bits: piecewise linear in
        log(size)–log(energy) through Horowitz's 8 KB, 32 KB and 1 MB points (the end segments
        extended beyond them), scaled so that 8 KB costs the table's ``sram_read_64b``."""
        sizes = np.log([s for s, _ in HOROWITZ_SRAM_64B])
        pj = np.log([e for _, e in HOROWITZ_SRAM_64B])
        x = math.log(max(bank_bits, 1))
        seg = 0 if x <= sizes[1] else 1
        slope = (pj[seg + 1] - pj[seg]) / (sizes[seg + 1] - sizes[seg])
        e64 = math.exp(pj[seg] + slope * (x - sizes[seg]))
        return self.energy_pj["sram_read_64b"] / HOROWITZ_SRAM_64B[0][1] * e64 / 64

    def dram_byte(self) -> float:
        return self.energy_pj["dram_access_64b"] / 8


def load_table(name_or_path: str) -> EnergyTable:
    """A shipped table by name (``asic45``, ``fpga``) or a TOML file."""
    if name_or_path in BUILTIN_TABLES:
        text = resources.files("swatkit.sim").joinpath(f"tables/{name_or_path}.toml").read_text()
        where = name_or_path
        data = tomllib.loads(text)
    else:
        from swatkit.support.inputs import InputFileError, load_toml, shown

        where = shown(Path(name_or_path))
        try:
            data = load_toml(name_or_path, kind="energy table")
        except InputFileError as e:
            message = str(e)
            if message.startswith("no such energy table"):
                message += f" (expected {' or '.join(BUILTIN_TABLES)} or a TOML file)"
            raise TableError(message) from None
    for key in ("name", "source", "energy"):
        if key not in data:
            raise TableError(f"energy table {where} has no {key!r}")
    entries = data["energy"]
    if not isinstance(entries, dict):
        raise TableError(f"energy table {where}: energy must be a table ([energy])")
    missing = [k for k in REQUIRED_ENTRIES if k not in entries]
    if missing:
        raise TableError(f"energy table {where} lacks [energy] {', '.join(missing)}")
    for key, value in entries.items():
        if (isinstance(value, bool) or not isinstance(value, int | float) or value <= 0
                or not math.isfinite(value)):
            raise TableError(f"energy table {where}: [energy] {key} must be a positive finite "
                             f"number, not {value!r}")
    if data.get("unit", "pJ") != "pJ":
        raise TableError(f"energy table {where}: unit must be \"pJ\", not {data['unit']!r}")
    static = data.get("static_power_w", 0.0)
    if (isinstance(static, bool) or not isinstance(static, int | float) or static < 0
            or not math.isfinite(static)):
        raise TableError(f"energy table {where}: static_power_w must be a non-negative finite "
                         "number, "
                         f"not {static!r}")
    return EnergyTable(str(data["name"]), str(data["source"]), str(data.get("uncertainty", "")),
                       {k: float(v) for k, v in entries.items()}, float(static))



@dataclass(frozen=True)
class Tiles:
    """Tile sizes of the ``flash`` and ``blocksparse`` baselines: ``q`` query rows stay on chip
    while K/V tiles of ``k`` rows stream past."""

    q: int = 64
    k: int = 64

    def __post_init__(self):
        for name, value in (("tile_q", self.q), ("tile_k", self.k)):
            check_int(name, value, 1)
            if value > MAX_SEQ_LEN:
                raise ValueError(f"{name} must be at most {MAX_SEQ_LEN} (no sequence is longer), "
                                 f"not {value}")


def _run(p: CoreParams, n: int, run: AttentionSpec | None) -> AttentionSpec:
    """The pattern of a run of ``n`` rows: ``run``, or the core's spec (its dilation and global
    tokens too) over ``n`` rows."""
    return p.run_spec(n) if run is None else run


def _rows_bytes(rows: int, d: int, bits: int) -> int:
    return math.ceil(rows * d * bits / 8)


def tile_counts(p: CoreParams, n: int, dataflow: str, tiles: Tiles,
                run: AttentionSpec | None = None) -> dict:
    """Work of the tiled baselines over ``n`` rows with the pattern ``run`` (default: the core's
    spec): pairs computed, K/V rows fetched, (row, key tile) visits.

    Main pass, over all N rows in query tiles of ``tiles.q`` contiguous rows: ``flash`` keeps
    every key tile (causal, ``after = 0``: those not wholly above the diagonal); ``blocksparse``
    keeps the key tiles that hold a band key of some row of the query tile (the band's hull
    ``[r0 − before·D, r1 − 1 + after·D]`` when the tile has at least D rows; a shorter tile's
    keys have gaps, counted exactly); both also keep the key tile of every global column.
    Global pass (keys ``global_*``): the G global rows, gathered into ``ceil(G/tiles.q)`` query
    tiles, over every key tile of their own K/V (a global row is a full row of N keys)."""
    run = _run(p, n, run)
    before, after, dil = run.before, run.after, run.dilation
    r0 = np.arange(0, n, tiles.q, dtype=np.int64)
    r1 = np.minimum(r0 + tiles.q, n)
    causal = after == 0 and not run.block_size
    if run.block_size:
        return _block_tile_counts(run, r0, r1, dataflow, tiles)
    if dataflow == "blocksparse":
        lo = np.maximum(0, r0 - before * dil)
        hi = np.minimum(n - 1, r1 - 1 + after * dil)
    else:
        lo = np.zeros_like(r0)
        hi = r1 - 1 if causal else np.full_like(r0, n - 1)
    k_lo, k_hi = lo // tiles.k, hi // tiles.k
    ktiles = k_hi - k_lo + 1
    cols = np.minimum(n, (k_hi + 1) * tiles.k) - k_lo * tiles.k
    # blocksparse with dilation: a query tile of fewer than D rows leaves gaps in the hull; its
    # key tiles are counted band offset by band offset (each offset's keys form one range)
    short = (np.flatnonzero(r1 - r0 < dil) if dataflow == "blocksparse"
             else np.zeros(0, dtype=np.int64))
    if short.size:
        sr0, sr1 = r0[short], r1[short]
        last = np.full(short.size, -1, dtype=np.int64)   # the last key tile counted
        count = np.zeros(short.size, dtype=np.int64)
        width = np.zeros(short.size, dtype=np.int64)
        for t in range(-before, after + 1):
            a, b = np.maximum(sr0 + t * dil, 0), np.minimum(sr1 - 1 + t * dil, n - 1)
            ta, tb = a // tiles.k, b // tiles.k
            first = np.maximum(ta, last + 1)
            new = (a <= b) & (tb >= first)
            count += np.where(new, tb - first + 1, 0)
            width += np.where(new, np.minimum(n, (tb + 1) * tiles.k) - first * tiles.k, 0)
            last = np.where(a <= b, np.maximum(last, tb), last)
        ktiles[short], cols[short] = count, width
    # the key tiles of the columns (global and sink tokens) that the band misses
    columns = run.columns()
    for t in np.unique(columns // tiles.k):
        t = int(t)
        c0, c1 = t * tiles.k, min(n, (t + 1) * tiles.k)
        mine = columns[columns // tiles.k == t]
        # a causal row attends sink j only if j <= i (a global column: every row)
        first = (int(mine[0]) if after == 0 and not np.isin(mine, run.global_tokens).any()
                 else 0)
        if dataflow == "blocksparse" and dil > 1:
            # a band key in the tile: some j − i in [c0 − (r1−1), c1−1 − r0] that is a
            # multiple of D within [−before·D, after·D]
            d_lo = np.maximum(c0 - (r1 - 1), -before * dil)
            d_hi = np.minimum(c1 - 1 - r0, after * dil)
            outside = ~((d_hi >= d_lo) & ((d_hi // dil) * dil >= d_lo))
        else:
            outside = (t < k_lo) | (t > k_hi)
        outside &= r1 - 1 >= first
        ktiles = ktiles + outside
        cols = cols + outside * (c1 - c0)
    rows = r1 - r0
    n_glob = len(run.global_tokens)
    all_k = -(-n // tiles.k)
    g_tiles = -(-n_glob // tiles.q)
    return {"query_tiles": int(r0.size), "tiles_computed": int(ktiles.sum()),
            "tiles_total": int(r0.size * all_k),
            "pairs_computed": int((rows * cols).sum()), "kv_rows_fetched": int(cols.sum()),
            "row_tile_visits": int((rows * ktiles).sum()),
            "rescales": int((rows * (ktiles - 1)).sum()),
            "global_query_tiles": g_tiles, "global_tiles_computed": g_tiles * all_k,
            "global_pairs_computed": n_glob * n, "global_kv_rows_fetched": g_tiles * n,
            "global_row_tile_visits": n_glob * all_k,
            "global_rescales": n_glob * (all_k - 1)}


def _block_tile_counts(run: AttentionSpec, r0: np.ndarray, r1: np.ndarray, dataflow: str,
                       tiles: Tiles) -> dict:
    """:func:`tile_counts` for a block-sparse (BigBird) pattern. Its global rows use the
    ordinary projections, so they are rows of the main pass (no global pass). ``flash``: every
    key tile of every query tile; ``blocksparse``: the key tiles that hold a key block of some
    query block the query tile overlaps (:meth:`AttentionSpec.block_mask`'s rule: a global
    query block keeps every key tile)."""
    n, b, nb = run.seq_len, run.block_size, run.num_blocks
    all_k = -(-n // tiles.k)
    width = np.minimum(n, (np.arange(all_k) + 1) * tiles.k) - np.arange(all_k) * tiles.k
    rows = r1 - r0
    if dataflow == "blocksparse" and nb > 2:
        # (query tile, key tile) pairs of every (query block, key block) slot of the
        # non-global query blocks, then every key tile for the global blocks' query tiles
        slots = run.block_key_slots().index                  # (nb − 2, 5 + r) key blocks
        qblock = np.arange(1, nb - 1, dtype=np.int64)
        pairs = []
        span_q = (b - 1) // tiles.q + 2                      # query tiles a block can touch
        span_k = (b - 1) // tiles.k + 2
        for dq in range(span_q):
            qt = (qblock * b) // tiles.q + dq
            q_ok = (qt * tiles.q < (qblock + 1) * b) & (qt < r0.size)
            for dk in range(span_k):
                kt = (slots * b) // tiles.k + dk
                k_ok = (kt * tiles.k < (slots + 1) * b) & (kt < all_k)
                ok = q_ok[:, None] & k_ok
                pairs.append((qt[:, None] * all_k + kt)[ok])
        glob_q = np.unique(np.concatenate([
            np.arange(0, b) // tiles.q, np.arange(n - b, n) // tiles.q]))
        pairs.append((glob_q[:, None] * all_k + np.arange(all_k)[None, :]).reshape(-1))
        pairs = np.unique(np.concatenate(pairs))
        qt, kt = pairs // all_k, pairs % all_k
        ktiles = np.bincount(qt, minlength=r0.size)
        cols = np.bincount(qt, weights=width[kt], minlength=r0.size).astype(np.int64)
    else:   # flash, or every block global (nb <= 2): every key tile
        ktiles = np.full(r0.size, all_k, dtype=np.int64)
        cols = np.full(r0.size, n, dtype=np.int64)
    return {"query_tiles": int(r0.size), "tiles_computed": int(ktiles.sum()),
            "tiles_total": int(r0.size * all_k),
            "pairs_computed": int((rows * cols).sum()), "kv_rows_fetched": int(cols.sum()),
            "row_tile_visits": int((rows * ktiles).sum()),
            "rescales": int((rows * (ktiles - 1)).sum()),
            "global_query_tiles": 0, "global_tiles_computed": 0, "global_pairs_computed": 0,
            "global_kv_rows_fetched": 0, "global_row_tile_visits": 0, "global_rescales": 0}


# every action key (a dataflow without one has 0); the global pass's own keys are global_*
ACTION_KEYS = ("qk_macs", "sv_macs", "rescale_mults", "exp_ops", "max_compares", "sum_adds",
               "divisions", "kv_rows", "q_rows", "rows_out", "global_kv_rows",
               "global_q_rows", "global_rows_out", "q_buffer_write_bits",
               "q_buffer_read_bits", "kv_buffer_write_bits", "kv_buffer_read_bits",
               "score_buffer_write_bits", "score_buffer_read_bits", "acc_buffer_write_bits",
               "acc_buffer_read_bits", "global_buffer_write_bits", "global_buffer_read_bits",
               "random_kv_rows", "random_buffer_write_bits", "random_buffer_read_bits",
               "offchip_read_bytes", "offchip_kv_read_bytes", "offchip_random_kv_read_bytes",
               "offchip_write_bytes")


def _pass(**counts) -> dict:
    out = dict.fromkeys(ACTION_KEYS, 0)
    out.update(counts)
    return out


def dense_tile_rows(p: CoreParams) -> int:
    """Query rows per tile of the ``dense`` baseline: the rows the SWAT core's K/V storage
    holds (``kv_depth`` words of ``dim_lanes`` elements per lane: every residue class's ring
    and the global columns' region)."""
    return p.kv_depth * p.hw.key_lanes // p.groups


def passes(p: CoreParams, n: int, dataflow: str, tiles: Tiles | None = None,
           run: AttentionSpec | None = None) -> tuple[dict, dict]:
    """Action counts of one head over ``n`` rows with the pattern ``run`` (default: the core's
    spec), as two passes: the main pass (every row's band and the global columns) and the
    global pass (the G global rows over all N keys, through their own projections
    ``q_g``/``k_g``/``v_g``, as Longformer). :func:`actions` is their sum.

    A block-sparse (BigBird) pattern: on SWAT, G = 2·b (the first and last blocks) on the
    global-row engine, and the random blocks' K/V rows on ``kvr`` (``random_kv_rows``,
    ``offchip_random_kv_read_bytes``, the ``random`` buffer); the baselines compute the global
    rows in their main pass (BigBird's global rows use the ordinary projections)."""
    run = _run(p, n, run)
    d, bits, w = p.spec.head_dim, p.fmt.data_bits, p.widths
    ob = p.fmt.out_bits
    n_glob = len(run.global_positions())   # (BigBird: the first and last blocks)
    gp = n_glob * n    # pairs of the global rows
    if dataflow == "swat":
        counters = swat_actions(p, run)   # the core's counters: both engines
        band = int(p.band_keys(run).sum())  # keys issued on the band core (masked ones too)
        # BigBird's random blocks: their K/V rows arrive on kvr, once per query block
        # (p.random_stream_rows), into the random memories the band core reads them from
        rnd_rows = len(p.random_stream_rows(run))
        rnd_keys = int(p.random_row(run).sum()) * run.num_random_blocks * p.block_size
        rnd_bytes = _rows_bytes(2 * rnd_rows, d, bits)
        # the global-row engine (rtl/global_rows.py), multi-query: the G Q rows resident, N K/V
        # beats per pass (the V half unused in pass 1) serving all G rows; pass 1 q·k and max,
        # pass 2 q·k again, exp, p·v, sum; per (key, global row) a Q row read, the K row (and
        # in pass 2 the V row) walked, the row's state read and written (max in pass 1, max
        # read, l and the accumulators in pass 2); G Q rows in, G O rows out
        gw = p.global_widths
        max_bits = global_state_bits(p.fmt, d, gw) - d * gw.acc - gw.sum  # max, max − d_sat
        glob = _pass(qk_macs=2 * gp * d, sv_macs=gp * d, exp_ops=gp, max_compares=gp,
                     sum_adds=gp, divisions=n_glob * d,
                     global_kv_rows=2 * n if n_glob else 0,
                     global_q_rows=n_glob, global_rows_out=n_glob,
                     global_buffer_write_bits=(n_glob + 3 * n) * d * bits if n_glob else 0,
                     global_buffer_read_bits=5 * gp * d * bits,
                     acc_buffer_write_bits=gp * (d * gw.acc + gw.sum + max_bits),
                     acc_buffer_read_bits=gp * (d * gw.acc + gw.sum + 2 * max_bits),
                     offchip_read_bytes=(_rows_bytes(n_glob, d, bits)
                                         + (_rows_bytes(4 * n, d, bits) if n_glob else 0)),
                     offchip_write_bytes=_rows_bytes(n_glob, d, ob))
        # the resident columns first (G global tokens, S sinks; BigBird: its 2b global rows),
        # then the N rows
        n_cols = n_glob if run.block_size else len(run.columns())
        kv_bytes = _rows_bytes(2 * (n + n_cols), d, bits)
        main = _pass(qk_macs=counters["qk_macs"] - glob["qk_macs"],
                     sv_macs=counters["sv_macs"] - glob["sv_macs"],
                     exp_ops=counters["exp_ops"] - glob["exp_ops"],
                     max_compares=band, sum_adds=band, divisions=n * d,
                     kv_rows=counters["kv_rows"], q_rows=counters["q_rows"],
                     rows_out=counters["rows_out"],
                     kv_buffer_write_bits=2 * (n + n_cols) * d * bits,
                     kv_buffer_read_bits=2 * (band - rnd_keys) * d * bits,
                     random_kv_rows=rnd_rows,
                     random_buffer_write_bits=2 * rnd_rows * d * bits,
                     random_buffer_read_bits=2 * rnd_keys * d * bits,
                     score_buffer_write_bits=band * w.score,
                     score_buffer_read_bits=band * w.score,
                     offchip_read_bytes=_rows_bytes(n, d, bits) + kv_bytes + rnd_bytes,
                     offchip_kv_read_bytes=kv_bytes,
                     offchip_random_kv_read_bytes=rnd_bytes,
                     offchip_write_bytes=_rows_bytes(n - n_glob, d, ob))
        return main, glob
    if run.block_size:
        # BigBird's global rows use the ordinary projections: a baseline computes them in its
        # main pass (the SWAT core's global-row engine is its own choice)
        n_glob = 0
    if dataflow == "dense":
        s_bytes, p_bytes = math.ceil(w.score / 8), math.ceil(w.prob / 8)
        rows = dense_tile_rows(p)

        def dense_pass(q_rows, out_rows, **names):
            full = q_rows * n
            streams = -(-q_rows // rows)   # K/V streamed once per query tile
            kv_bytes = 2 * _rows_bytes(streams * n, d, bits)
            return _pass(
                qk_macs=full * d, sv_macs=full * d, exp_ops=full, max_compares=full,
                sum_adds=full, divisions=q_rows * d,
                kv_buffer_write_bits=2 * streams * n * d * bits,
                kv_buffer_read_bits=2 * full * d * bits,
                offchip_read_bytes=(_rows_bytes(q_rows, d, bits) + kv_bytes
                                    + full * (s_bytes + p_bytes)),
                offchip_kv_read_bytes=kv_bytes if not names else 0,
                offchip_write_bytes=_rows_bytes(out_rows, d, ob) + full * (s_bytes + p_bytes),
                **{names.get("kv", "kv_rows"): streams * n, names.get("q", "q_rows"): q_rows,
                   names.get("out", "rows_out"): out_rows})

        main = dense_pass(n, n - n_glob)
        glob = dense_pass(n_glob, n_glob, kv="global_kv_rows", q="global_q_rows",
                          out="global_rows_out") if n_glob else _pass()
        return main, glob
    if dataflow in ("flash", "blocksparse"):
        t = tile_counts(p, n, dataflow, tiles or Tiles(), run)

        def tiled(pre, q_rows, out_rows, kv_key, q_key, out_key):
            pairs, fetched = t[pre + "pairs_computed"], t[pre + "kv_rows_fetched"]
            visits, rescales = t[pre + "row_tile_visits"], t[pre + "rescales"]
            kv_bytes = 2 * _rows_bytes(fetched, d, bits)
            return _pass(
                qk_macs=pairs * d, sv_macs=pairs * d, rescale_mults=rescales * d,
                exp_ops=pairs + rescales, max_compares=pairs, sum_adds=pairs,
                divisions=q_rows * d,
                q_buffer_write_bits=q_rows * d * bits, q_buffer_read_bits=visits * d * bits,
                kv_buffer_write_bits=2 * fetched * d * bits,
                kv_buffer_read_bits=2 * pairs * d * bits,
                score_buffer_write_bits=pairs * w.score, score_buffer_read_bits=pairs * w.score,
                acc_buffer_write_bits=visits * d * w.acc, acc_buffer_read_bits=visits * d * w.acc,
                offchip_read_bytes=_rows_bytes(q_rows, d, bits) + kv_bytes,
                offchip_kv_read_bytes=kv_bytes if not pre else 0,
                offchip_write_bytes=_rows_bytes(out_rows, d, ob),
                **{kv_key: fetched, q_key: q_rows, out_key: out_rows})

        main = tiled("", n, n - n_glob, "kv_rows", "q_rows", "rows_out")
        main.update(tiles_computed=t["tiles_computed"], tiles_total=t["tiles_total"])
        glob = (tiled("global_", n_glob, n_glob, "global_kv_rows", "global_q_rows",
                      "global_rows_out") if n_glob else _pass())
        glob.update(tiles_computed=t["global_tiles_computed"],
                    tiles_total=t["global_tiles_computed"])
        return main, glob
    raise ValueError(f"dataflow must be one of {', '.join(DATAFLOWS)}, not {dataflow!r}")


def actions(p: CoreParams, n: int, dataflow: str, tiles: Tiles | None = None,
            run: AttentionSpec | None = None) -> dict:
    """Action counts of one head over ``n`` rows with the pattern ``run`` (default: the core's
    spec): both passes of :func:`passes` summed. For ``swat``, ``qk_macs``, ``sv_macs``,
    ``exp_ops``, ``kv_rows``, ``q_rows``, ``rows_out`` are the core's counters
    (:func:`~swatkit.sim.cycle_model.swat_actions`)."""
    main, glob = passes(p, n, dataflow, tiles, run)
    return {k: main.get(k, 0) + glob.get(k, 0) for k in dict.fromkeys([*main, *glob])}


def buffer_banks(p: CoreParams, dataflow: str, tiles: Tiles | None = None) -> dict:
    """Bits of one bank of each on-chip buffer (a buffer is split into ``key_lanes`` banks, as
    the SWAT core's K/V ring and score memories are); ``exp_table`` is one lane's table. SWAT's
    K/V bank is a lane's whole K (or V) memory, ``kv_depth`` words (every residue class's ring
    and the global columns), its ``global`` bank the global-row engine's row storage."""
    d, b, w, kl = p.spec.head_dim, p.fmt.data_bits, p.widths, p.hw.key_lanes
    banks = {"exp_table": 2 ** p.fmt.exp_frac_bits * w.prob}
    if dataflow in ("swat", "dense"):
        banks["kv"] = p.kv_depth * p.hw.dim_lanes * b
        if dataflow == "swat":
            banks["score"] = p.score_depth * w.score
            res = p.resources()
            banks["global"] = max(1, res["global_buffer_bits"])
            banks["acc"] = max(1, res["global_accumulator_bits"])  # the global rows' state
            banks["random"] = max(1, p.random_depth * p.hw.dim_lanes * b)  # one lane's K or V
    else:
        t = tiles or Tiles()
        banks.update(q=math.ceil(t.q * d * b / kl), kv=math.ceil(t.k * d * b / kl),
                     score=math.ceil(t.q * t.k * w.score / kl),
                     acc=math.ceil(t.q * d * w.acc / kl))
    return banks


def dense_cycles(p: CoreParams, n: int, offchip_bytes_per_cycle: float,
                 run: AttentionSpec | None = None) -> int:
    """Cycles of the dense baseline: three phases, each compute- or bandwidth-bound, over both
    passes (the main pass's N rows and the global rows)."""
    main, glob = passes(p, n, "dense", run=run)
    d, w = p.spec.head_dim, p.widths
    macs_per_cycle = p.mac_lanes
    full = (main["sv_macs"] + glob["sv_macs"]) // d
    kv_bytes = ((main["kv_rows"] + glob["global_kv_rows"]) * d * p.fmt.data_bits / 8)
    s_bytes, p_bytes = math.ceil(w.score / 8), math.ceil(w.prob / 8)
    bw = offchip_bytes_per_cycle
    qk = max(full * d / macs_per_cycle, (kv_bytes + full * s_bytes) / bw)
    softmax = max(full / p.hw.key_lanes, full * (s_bytes + p_bytes) / bw)
    sv = max(full * d / macs_per_cycle, (kv_bytes + full * p_bytes) / bw)
    return math.ceil(qk + softmax + sv)


def _offchip(acts: dict) -> int:
    return acts["offchip_read_bytes"] + acts["offchip_write_bytes"]


@functools.lru_cache(maxsize=1024)
def _swat_cycles(p: CoreParams, n: int) -> int:
    # a sweep over cores, schedules or models asks for the same (core, N) many times
    return swat_cycles(p, n).cycles


def head_cycles(p: CoreParams, n: int, dataflow: str, acts: dict,
                offchip_bytes_per_cycle: float, runs: int = 1, extra: int = 0) -> int:
    """Cycles of one head: SWAT's cycle model (or its off-chip time if longer), the dense phase
    model, or the tiled baselines' ``max`` of their arrays' and transfers' times. SWAT with
    ``runs`` > 1: a K/V group whose query heads take ``runs`` passes of the engines (``acts``
    the whole group's): one run of the grouped core with ``runs`` query heads per K/V head
    (:attr:`CoreParams.group_heads`, the cycle model of the core ``swatkit generate --heads``
    writes), plus ``extra`` cycles per pass (the sink columns of :func:`sink_columns`, where
    the core cannot hold the sinks)."""
    io = _offchip(acts) / offchip_bytes_per_cycle
    if dataflow == "swat":
        group = dataclasses.replace(p, heads=runs, kv_heads=1) if runs > 1 else p
        return max(_swat_cycles(group, n) + runs * extra, math.ceil(io))
    if dataflow == "dense":
        return dense_cycles(p, n, offchip_bytes_per_cycle)
    macs = p.mac_lanes
    return math.ceil(max(acts["qk_macs"] / macs, (acts["sv_macs"] + acts["rescale_mults"]) / macs,
                         acts["exp_ops"] / p.hw.key_lanes, io))


def energy_breakdown(p: CoreParams, acts: dict, table: EnergyTable, banks: dict) -> dict:
    """Energy in joules per action class."""
    w, b = p.widths, p.fmt.data_bits
    buffers = sum((acts.get(f"{name}_buffer_read_bits", 0)
                   + acts.get(f"{name}_buffer_write_bits", 0)) * table.sram_bit(bits)
                  for name, bits in banks.items() if name != "exp_table")
    pj = {
        "qk_mac": acts["qk_macs"] * (table.mult(b, b) + table.add(w.score)),
        "sv_mac": acts["sv_macs"] * (table.mult(w.prob, b) + table.add(w.acc)),
        "rescale": acts["rescale_mults"] * table.mult(w.prob, w.acc),
        "exp": acts["exp_ops"] * (table.mult(w.diff, w.const) + table.add(w.exp_arg)
                                  + table.add(w.prob)
                                  + w.prob * table.sram_bit(banks["exp_table"])),
        "max": acts["max_compares"] * table.add(w.score),
        "sum": acts["sum_adds"] * table.add(w.sum),
        "divide": acts["divisions"] * w.quotient * table.add(w.sum + w.quotient + 1),
        "buffers": buffers,
        "offchip": _offchip(acts) * table.dram_byte(),
    }
    return {k: v * 1e-12 for k, v in pj.items()}


def components(parts: dict, static_j: float) -> dict:
    """The per-component breakdown (J): MACs (QK, P·V, rescaling), exp, reductions (max, sum,
    division), buffers, off-chip, static."""
    return {"macs": parts["qk_mac"] + parts["sv_mac"] + parts["rescale"], "exp": parts["exp"],
            "reductions": parts["max"] + parts["sum"] + parts["divide"],
            "buffers": parts["buffers"], "offchip": parts["offchip"], "static": static_j}


# keys of a head's actions that a gqa group shares: each K/V row is fetched and written into
# the ring once for the group (the band's K/V; the global rows' K/V and everything else are per
# query head); the ring is read once per pass of the engines (broadcast to the side-by-side ones)
_SHARED = ("kv_rows", "kv_buffer_write_bits", "offchip_kv_read_bytes")
_PER_PASS = ("kv_buffer_read_bits",)


def sink_term(p: CoreParams, n: int) -> dict:
    """The actions a learned sink logit (GPT-OSS: one per query head) adds to one head's run of
    ``n`` rows, under every dataflow: per row one compare (the sink joins the row max), one exp
    (``2^((z − m)·C)``) and one add (to the denominator); the head's sink score read from
    off-chip once (a score-width integer, :meth:`NumberFormat.sink_scores`). No MAC and no value:
    the sink carries none."""
    return {"max_compares": n, "exp_ops": n, "sum_adds": n,
            "offchip_read_bytes": math.ceil(p.widths.score / 8)}


def sink_columns(p: CoreParams, n: int, sink_tokens: int) -> tuple[dict, int]:
    """What StreamingLLM's ``sink_tokens`` S key-only columns add to a SWAT run of ``n`` rows on
    the core ``p`` (built without them), and the cycles they add, where the sink core cannot be
    built (:func:`_window_core`: more sinks than the core's resident columns, or with global
    tokens; elsewhere the sink core's own counters and exact cycle model count them). Estimated
    as the core's global columns without global rows: every row issues the S columns on the
    band engines (masked where a causal row precedes a sink, as a global column inside the band
    is), ``ceil(S/KL)`` more key rounds of G = d/DL cycles per row; the S sink K/V rows are
    fetched before the N rows and written into the column region once, as the global columns
    are (accepted first: S·G cycles)."""
    s, d, b, w = sink_tokens, p.spec.head_dim, p.fmt.data_bits, p.widths
    keys = n * s
    kv_bytes = _rows_bytes(2 * s, d, b)
    acts = {"qk_macs": keys * d, "sv_macs": keys * d, "exp_ops": keys, "max_compares": keys,
            "sum_adds": keys, "kv_buffer_write_bits": 2 * s * d * b,
            "kv_buffer_read_bits": 2 * keys * d * b, "score_buffer_write_bits": keys * w.score,
            "score_buffer_read_bits": keys * w.score, "offchip_read_bytes": kv_bytes,
            "offchip_kv_read_bytes": kv_bytes}
    cycles = (n * math.ceil(s / p.hw.key_lanes) + s) * p.groups
    return acts, cycles


def _job(p: CoreParams, n: int, dataflow: str, group: int, bw: float, tiles: Tiles,
         engines: int = 1, sinks: bool = False, sink_tokens: int = 0):
    """Cycles and actions of one job: a head, or (SWAT under gqa) ``group`` query heads against
    one pass of their K/V head on ``engines`` engines side by side (``group/engines`` passes of
    the engines, one after another), given ``bw`` bytes per cycle; also the actions of the
    global pass alone. ``sinks``: each query head has a learned sink logit (:func:`sink_term`);
    ``sink_tokens``: the layer's sink columns (``p`` is the core without them; SWAT:
    :func:`sink_columns`, the baselines: the pattern with them)."""
    extra = 0
    if p.sink_core:   # the core's own sink columns: its counters and cycle model count them
        sink_tokens = 0
    if sink_tokens and dataflow == "swat":
        main, glob = passes(p, n, dataflow, tiles)
        cols, extra = sink_columns(p, n, sink_tokens)
        main = {**main, **{k: main[k] + v for k, v in cols.items()}}
    else:
        run = p.spec.replace(seq_len=n, sink_tokens=sink_tokens) if sink_tokens else None
        main, glob = passes(p, n, dataflow, tiles, run)
    if sinks:
        main = {**main, **{k: main[k] + v for k, v in sink_term(p, n).items()}}
    if group > 1:
        shared = main["offchip_kv_read_bytes"]
        main = {k: v if k in _SHARED else v * (group // engines) if k in _PER_PASS
                else v * group for k, v in main.items()}
        main["offchip_read_bytes"] = main["offchip_read_bytes"] - group * shared + shared
        glob = {k: v * group for k, v in glob.items()}
    acts = {k: main.get(k, 0) + glob.get(k, 0) for k in dict.fromkeys([*main, *glob])}
    return head_cycles(p, n, dataflow, acts, bw, group // engines, extra), acts, glob


def check_head_engines(head_engines, group: int, head_schedule: str,
                       names=("head_engines", "head_schedule")) -> None:
    """``head_engines``: a divisor of ``group`` (the query heads per K/V head) under ``gqa``, 1
    under ``serial`` (``TypeError``/``ValueError`` naming it as ``names`` say: the argument and
    the schedule's, or the CLI's options)."""
    name, schedule = names
    check_int(name, head_engines, 1)
    if head_schedule != "gqa" and head_engines != 1:
        raise ValueError(f"{name} must be 1 under {schedule} {head_schedule} (the engines of a "
                         f"K/V group are gqa's), not {head_engines}")
    if group % head_engines:
        raise ValueError(f"{name} must divide the query heads per K/V head ({group}), not "
                         f"{head_engines}")


def check_cores(cores) -> None:
    """``cores``: 1..``MAX_CORES`` (``TypeError``/``ValueError`` naming it)."""
    check_int("cores", cores, 1)
    if cores > MAX_CORES:
        raise ValueError(f"cores must be at most {MAX_CORES} (a practical limit: one device "
                         f"holds far fewer), not {cores}")


def default_head_schedule(model: ModelConfig) -> str:
    """The head schedule of a model when none is given (``estimate`` and ``explore`` alike):
    ``gqa`` for a model with fewer K/V heads than query heads, else ``serial``."""
    return "gqa" if model.group > 1 else "serial"


def _checked(model: ModelConfig, dataflows, head_schedule, head_engines, cores, sink_tokens):
    """:func:`estimate_model`'s arguments checked: the model (with its sink tokens) and the
    head schedule (``None``: :func:`default_head_schedule`)."""
    if head_schedule is None:
        head_schedule = default_head_schedule(model)
    if head_schedule not in HEAD_SCHEDULES:
        raise ValueError(f"head_schedule must be one of {', '.join(HEAD_SCHEDULES)}, "
                         f"not {head_schedule!r}")
    check_head_engines(head_engines, model.group, head_schedule)
    check_cores(cores)
    if sink_tokens:
        model = _with_sink_tokens(model, sink_tokens)
    for dataflow in dataflows:
        if dataflow not in DATAFLOWS:
            raise ValueError(f"dataflow must be one of {', '.join(DATAFLOWS)}, not {dataflow!r}")
    if all(pattern.kind == "full" for pattern in model.patterns):
        raise ModelError(f"model {model.name}: no layer has a sliding window (all "
                         f"{model.layers} are full attention); the SWAT core runs "
                         f"sliding-window layers only")
    return model, head_schedule


def estimate_model(model: ModelConfig, seq_lens, dataflows=DATAFLOWS, *, fmt, key_lanes: int = 8,
                   dim_lanes: int = 8, head_schedule: str | None = None, head_engines: int = 1,
                   cores: int = 1, clock_hz: float = 100e6, table: EnergyTable | None = None,
                   offchip_bytes_per_cycle: float = 16.0, tiles: Tiles | None = None,
                   clock_source: str = "--clock-mhz", model_scope: bool = True,
                   max_global_tokens: int = 0, max_dilation: int = 1,
                   global_engines: int = 0, sink_tokens: int = 0) -> list[dict]:
    """Per-layer records (one per group of layers with the same pattern: figures of *one* such
    layer) and, with ``model_scope``, per-model totals, for each (dataflow, seq_len).
    ``head_schedule``: ``None`` (the default) is ``gqa`` for a model with fewer K/V heads than
    query heads, else ``serial`` (the same thing when each K/V head has one query head).
    ``sink_tokens``: StreamingLLM's S sink keys added to every sliding-window layer (a full
    layer sees them already); on SWAT estimated as :func:`sink_columns` says.

    Raises
    ------
    ModelError
        The core cannot run a layer's pattern, or no layer has a sliding window.
    ValueError, TypeError
        A bad ``head_schedule``, ``head_engines``, ``cores``, dataflow or tile size.
    """
    table = table or load_table("asic45")
    tiles = tiles or Tiles()
    model, head_schedule = _checked(model, dataflows, head_schedule, head_engines, cores,
                                    sink_tokens)
    groups = model.layer_groups()
    max_n = max(seq_lens)
    params = {}
    for pattern, indices in groups:
        for n in seq_lens:
            spec = pattern.spec(n, model.head_dim)
            try:
                hw = HardwareConfig(key_lanes, dim_lanes, max_seq_len=max_n,
                                    max_global_tokens=max_global_tokens,
                                    max_dilation=max_dilation, global_engines=global_engines)
                params[pattern, n] = (CoreParams.for_estimate(spec, fmt, hw)
                                      if pattern.kind == "full" else _window_core(spec, fmt, hw))
            except ValueError as e:
                raise ModelError(f"model {model.name}, layer {indices[0]} "
                                 f"({pattern.describe(n, model.head_dim)}): {e}") from None
    g, engines = model.group, head_engines
    records = []
    for dataflow in dataflows:
        for n in seq_lens:
            totals = None
            for pattern, indices in groups:
                p = params[pattern, n]
                computed_as = dataflow
                if pattern.kind == "full" and dataflow in ("swat", "blocksparse"):
                    computed_as = "flash"
                if computed_as == "swat" and head_schedule == "gqa":
                    jobs, group, slots = model.kv_heads, g, cores
                else:   # one head per slot of the same MAC budget, K/V per head
                    jobs, group, slots = model.heads, 1, cores * engines
                busy = min(slots, jobs)
                cycles, acts, glob = _job(p, n, computed_as, group,
                                          offchip_bytes_per_cycle / busy, tiles,
                                          engines if group > 1 else 1, model.learned_sinks,
                                          pattern.sink_tokens)
                cycles *= -(-jobs // slots)
                acts = {k: v * jobs for k, v in acts.items()}
                glob = {k: v * jobs for k, v in glob.items()}
                latency = cycles / clock_hz
                banks = buffer_banks(p, computed_as, tiles)
                parts = energy_breakdown(p, acts, table, banks)
                glob_parts = energy_breakdown(p, glob, table, banks)
                static = table.static_power_w * latency
                layer_spec = pattern.spec(n, model.head_dim)
                window_pairs = layer_spec.pair_count()
                n_glob = len(layer_spec.global_positions())
                plain = None
                if pattern.kind == "blocksparse":   # the plain window of as many keys per row
                    w_plain = plain_window(layer_spec)
                    band = dataclasses.replace(p, spec=AttentionSpec.longformer(
                        n, model.head_dim, attention_window=w_plain))
                    _, band_acts, _ = _job(band, n, computed_as, group,
                                           offchip_bytes_per_cycle / busy, tiles,
                                           engines if group > 1 else 1)
                    plain = _offchip(band_acts) * jobs / (n * model.head_dim * model.heads)
                # (every q·k multiplier of the core busy: the band's and the global-row engines')
                ideal = (window_pairs * model.head_dim * model.heads
                         / (p.mac_lanes * cores * engines))
                rec = {
                    "dataflow": dataflow, "seq_len": n, "scope": "layer",
                    "model": model.name if model_scope else None, "layers": model.layers,
                    "layer_indices": indices, "layer_pattern": pattern.describe(n, model.head_dim),
                    "full_attention": pattern.kind == "full", "computed_as": computed_as,
                    "heads": model.heads, "kv_heads": model.kv_heads,
                    "head_schedule": head_schedule, "head_engines": engines, "cores": cores,
                    "learned_sinks": model.learned_sinks,
                    "window": p.spec.window, "before": p.spec.before, "after": p.spec.after,
                    "dilation": p.spec.dilation, "global_tokens": n_glob,
                    "global_token_positions": list(layer_spec.global_tokens),
                    "sink_tokens": pattern.sink_tokens,
                    "max_global_tokens": p.max_global_tokens, "max_dilation": p.max_dilation,
                    "head_dim": model.head_dim, "key_lanes": key_lanes, "dim_lanes": dim_lanes,
                    "tile_q": tiles.q if computed_as in ("flash", "blocksparse") else None,
                    "tile_k": tiles.k if computed_as in ("flash", "blocksparse") else None,
                    "cycles": cycles, "ideal_cycles": ideal, "clock_hz": clock_hz,
                    "clock_source": clock_source, "latency_s": latency,
                    "energy_j": sum(parts.values()) + static, "static_energy_j": static,
                    "tech": table.name, "macs": acts["qk_macs"] + acts["sv_macs"],
                    "offchip_bytes": _offchip(acts),
                    "kv_fetches": acts["offchip_kv_read_bytes"] / _kv_bytes(model, n, fmt),
                    "offchip_bytes_per_output": _offchip(acts) / (n * model.head_dim
                                                                  * model.heads),
                    "block_size": layer_spec.block_size,
                    "random_blocks": layer_spec.num_random_blocks,
                    "plain_window": w_plain if plain is not None else None,
                    "plain_window_offchip_bytes_per_output": plain,
                    "pairs": window_pairs * model.heads,
                    "pairs_computed": acts["sv_macs"] // model.head_dim,
                    "global_pass_pairs": n_glob * n * model.heads,
                    "global_pass_macs": glob["qk_macs"] + glob["sv_macs"],
                    "global_pass_offchip_bytes": _offchip(glob),
                    "global_pass_energy_j": sum(glob_parts.values()),
                    "global_pass_cycles": (
                        global_rows_cycles(model.head_dim, dim_lanes, fmt, n, n_glob,
                                           p.global_engines)
                        if computed_as == "swat" else None),
                    "global_engines": p.global_engines if n_glob else 0,
                    "mac_lanes": p.mac_lanes,
                    **acts,
                    **{f"energy_{k}_j": v for k, v in parts.items()},
                    "energy_breakdown": components(parts, static),
                    "note": model.note,
                }
                records.append(rec)
                totals = _add(totals, rec, len(indices))
            if model_scope:
                totals.update(offchip_bytes_per_output=totals["offchip_bytes"] / (
                                  n * model.head_dim * model.heads * model.layers),
                              kv_fetches=totals["offchip_kv_read_bytes"] / (
                                  _kv_bytes(model, n, fmt) * model.layers),
                              plain_window_offchip_bytes_per_output=None)
                totals.update(scope="model", layer_indices=list(range(model.layers)),
                              layer_pattern="all layers", computed_as=dataflow,
                              full_attention=any(p.kind == "full" for p in model.patterns))
                records.append(totals)
    _ratios(records)
    return records


def _window_core(spec: AttentionSpec, fmt, hw: HardwareConfig) -> CoreParams:
    """The core of a window layer: with its sink tokens, the sink core (its exact counters and
    cycles); where the core cannot hold them (more than ``MAX_GLOBAL_TOKENS``, or with global
    tokens), the core without them, whose sink columns :func:`sink_columns` estimates."""
    if spec.sink_tokens:
        try:
            return CoreParams(spec, fmt, hw)
        except ValueError:
            pass
    return CoreParams(spec.replace(sink_tokens=0), fmt, hw)


def _with_sink_tokens(model: ModelConfig, sink_tokens) -> ModelConfig:
    """``model`` with ``sink_tokens`` sink keys on every sliding-window layer."""
    if isinstance(sink_tokens, bool) or not isinstance(sink_tokens, int):
        raise TypeError(f"sink_tokens must be an integer, not {sink_tokens!r}")
    if sink_tokens < 0:
        raise ValueError(f"sink_tokens must be a non-negative integer, not {sink_tokens}")
    if not any(p.kind == "window" for p in model.patterns):
        raise ValueError(f"sink_tokens needs a sliding-window layer; model {model.name} has "
                         f"none (BigBird's blocks have no sink columns)")
    return dataclasses.replace(model, patterns=tuple(
        dataclasses.replace(p, sink_tokens=sink_tokens) if p.kind == "window" else p
        for p in model.patterns))


def _kv_bytes(model: ModelConfig, n: int, fmt) -> int:
    """Bytes of one layer's K and V: every K/V head's ``n`` rows once (what ``kv_fetches``
    divides the off-chip K/V bytes by)."""
    return model.kv_heads * _rows_bytes(2 * n, model.head_dim, fmt.data_bits)


# per-layer figures that stay the same in a model's totals; every other number is summed
_CONSTANT = ("seq_len", "layers", "heads", "kv_heads", "head_engines", "cores", "window", "before",
             "after", "head_dim", "key_lanes", "dim_lanes", "clock_hz", "tile_q", "tile_k",
             "dilation", "global_tokens", "max_global_tokens", "max_dilation",
             "global_pass_cycles", "block_size", "random_blocks", "plain_window", "sink_tokens")


def _add(totals: dict | None, rec: dict, times: int) -> dict:
    summed = [k for k, v in rec.items() if k not in _CONSTANT and not isinstance(v, bool)
              and isinstance(v, int | float)]
    if totals is None:
        totals = {**rec, **dict.fromkeys(summed, 0)}
        totals["energy_breakdown"] = dict.fromkeys(COMPONENTS, 0.0)
    for k in summed:
        totals[k] = totals.get(k, 0) + rec[k] * times
    for k, v in rec["energy_breakdown"].items():
        totals["energy_breakdown"][k] += v * times
    return totals


def _ratios(records: list[dict]) -> None:
    """Each record's latency and energy over SWAT's for the same length and layers."""
    swat = {(r["seq_len"], r["scope"], tuple(r["layer_indices"])): r
            for r in records if r["dataflow"] == "swat"}
    for r in records:
        ref = swat.get((r["seq_len"], r["scope"], tuple(r["layer_indices"])))
        r["latency_ratio_to_swat"] = r["latency_s"] / ref["latency_s"] if ref else None
        r["energy_ratio_to_swat"] = r["energy_j"] / ref["energy_j"] if ref else None


def plain_window(spec: AttentionSpec) -> int:
    """The Longformer ``attention_window`` (even) of the plain band that a block-sparse spec is
    compared with: as many keys per row as its interior query blocks attend, ``(5 + r)·b`` (the
    3-block window, the 2 global blocks, r random blocks), rounded up to even (BigBird-base,
    b = 64, r = 3: 512, Longformer-base's window)."""
    keys = (5 + spec.num_random_blocks) * spec.block_size
    return keys + keys % 2


def single_head(p: CoreParams) -> ModelConfig:
    """One layer with ``p``'s window (or block-sparse pattern), sink tokens, learned sink
    logits and heads: what ``swatkit estimate`` without ``--model`` estimates (one head, or
    ``p.heads`` query heads on ``p.kv_heads`` K/V heads: ``kv_heads`` runs of the core
    ``p`` describes, each one K/V head with its ``group_heads`` query heads)."""
    s = p.spec
    if s.block_size:
        pattern = LayerPattern("blocksparse", block_size=s.block_size,
                               random_blocks=s.num_random_blocks, pattern_seed=s.pattern_seed,
                               random_table=s.explicit_random_table)
    else:
        pattern = LayerPattern("window", s.before, s.after, s.dilation,
                               global_tokens=s.global_tokens, sink_tokens=s.sink_tokens)
    name = "head" if p.heads == 1 else "head group"
    return ModelConfig(name, name, 1, p.heads, p.kv_heads, s.head_dim, (pattern,),
                       source="the options (one layer of the heads given)",
                       learned_sinks=p.sink_logits)


def estimate(p: CoreParams, seq_lens, dataflows=("swat", "dense"), *, clock_hz: float = 100e6,
             table: EnergyTable | None = None, offchip_bytes_per_cycle: float = 16.0,
             clock_source: str = "--clock-mhz", tiles: Tiles | None = None,
             cores: int = 1, head_schedule: str | None = None,
             head_engines: int = 1) -> list[dict]:
    """One record per (dataflow, seq_len) for one head on the core ``p`` (a grouped core:
    its ``heads`` query heads on ``kv_heads`` K/V heads, :func:`single_head`, under
    ``head_schedule`` on ``head_engines`` as :func:`estimate_model` says): cycles, latency,
    energy (with ``energy_breakdown``), action counts and the ratios to SWAT.

    ``p.hw.max_seq_len`` must cover every length (it sizes the core's counters only)."""
    for n in seq_lens:
        if not 1 <= n <= p.hw.max_seq_len:
            raise ValueError(f"seq_len must be in 1..{p.hw.max_seq_len}, not {n}")
        if p.spec.global_tokens and p.spec.global_tokens[-1] >= n:
            raise ValueError(f"global token {p.spec.global_tokens[-1]} is outside 0..{n - 1} "
                             f"(seq_len {n})")
    return estimate_model(single_head(p), seq_lens, dataflows, fmt=p.fmt,
                          key_lanes=p.hw.key_lanes, dim_lanes=p.hw.dim_lanes, cores=cores,
                          clock_hz=clock_hz, table=table,
                          offchip_bytes_per_cycle=offchip_bytes_per_cycle, tiles=tiles,
                          clock_source=clock_source, model_scope=False,
                          head_schedule=head_schedule, head_engines=head_engines,
                          max_global_tokens=p.hw.max_global_tokens,
                          max_dilation=p.hw.max_dilation, global_engines=p.hw.global_engines)


# ---------------------------------------------------------------------------------------------
# Decode (issue 26 item 4): one new row per token against the last W keys of its sequence

DECODE_DATAFLOWS = ("swat", "reread", "onchip")


def decode_core(p: CoreParams, max_seq_len: int) -> CoreParams:
    """The decode core of one K/V head group of ``p`` (its ``group_heads`` query heads on one
    K/V head, one context), with counters for ``max_seq_len`` positions: what ``swatkit
    generate --contexts 1`` builds for the group. ``ValueError`` naming the field when the
    pattern cannot continue (global tokens, BigBird: :meth:`CoreParams.check_continue`)."""
    hw = dataclasses.replace(p.hw, max_seq_len=max_seq_len)
    q = dataclasses.replace(p, hw=hw, heads=p.group_heads, kv_heads=1, contexts=1)
    if q.spec.after:
        from swatkit.golden.checks import ConfigValueError

        raise ConfigValueError(f"after must be 0 to decode (a new row has no later keys), not "
                               f"{q.spec.after}", "after")
    return q


def decode_cache_rows(p: CoreParams) -> int:
    """K/V rows a decode step's keys come from, per K/V head: the window and the sink
    columns (what a resident cache holds)."""
    return p.spec.window + p.spec.sink_tokens


def decode_cache_bytes(p: CoreParams) -> int:
    """Bytes of one K/V head's resident cache: window (with sinks) x d x 2 (K and V) x bytes."""
    return _rows_bytes(2 * decode_cache_rows(p), p.spec.head_dim, p.fmt.data_bits)


@functools.lru_cache(maxsize=4096)
def _decode_step_cycles(p: CoreParams, pos: int) -> int:
    return swat_cycles(p, pos + 1, run=p.run_spec(pos + 1), first_row=pos).cycles


def decode_step_cycles(p: CoreParams, pos: int) -> int:
    """Cycles of the decode step that computes row ``pos`` (``pos`` >= 1 rows before it) on the
    decode core ``p``: the exact cycle model of a continue run (first row ``pos``, end ``pos +
    1``). A continue's recurrence starts free of earlier rows, so its cycles depend on the
    row's keys only; positions past the window and sinks (every row's keys the same) share
    one evaluation (:func:`decode_steady`)."""
    return _decode_step_cycles(p, min(pos, decode_steady(p)))


def decode_steady(p: CoreParams) -> int:
    """The first position from which every decode step's row has the same keys (its whole
    dilated window, every sink before it): a step there and any later one are alike."""
    return p.spec.dilation * p.spec.before + p.spec.sink_tokens + 1


def decode_step(p: CoreParams, pos: int, dataflow: str, tiles: Tiles | None = None,
                offchip_bytes_per_cycle: float = 16.0, resident: bool = True,
                sinks: bool = False) -> tuple[int, dict]:
    """Cycles and actions of one decode step of a K/V head group (``p``: :func:`decode_core`)
    computing row ``pos``: its g query heads against the keys of that row (window and sinks).

    ``swat``: the core's continue run (:func:`decode_step_cycles`, counters of
    :func:`~swatkit.sim.cycle_model.swat_actions`): one new K/V row from off-chip into the
    ring, the ring read per query head as the grouped core walks each head's band; off-chip
    only Q, O and the new K/V row. ``resident=False`` (its cache does not fit on chip): the
    window's K/V re-read from off-chip every token as ``reread`` does, and the step takes at
    least its transfer time; ``onchip`` then is ``reread`` (the same on-chip budget).
    ``reread`` (FlashDecoding-style): per token the window's K/V read from off-chip once for
    the group (GQA-aware, the strongest such baseline), through a K/V tile buffer of
    ``tiles.k`` rows read per query head, with the online softmax's rescales per key tile.
    ``onchip``: the cache kept on chip (off-chip only the new K/V row), but not input-
    stationary: per query head the window's K/V read from the cache memory into the tile
    buffer and from there into the arrays (``cache`` bank: the size of SWAT's K/V bank).
    Both baselines: the same MAC arrays, exp units and bandwidth; cycles the longest of
    their arrays', exp units' and transfers' times, no fill or drain (optimistic for them).
    ``sinks``: a learned sink logit per query head (:func:`sink_term` per row; the logits
    stay on chip across the sequence)."""
    if dataflow not in DECODE_DATAFLOWS:
        raise ValueError(f"dataflow must be one of {', '.join(DECODE_DATAFLOWS)}, not "
                         f"{dataflow!r}")
    if dataflow == "onchip" and not resident:   # (the same budget: no cache, re-read it)
        dataflow = "reread"
    pos = min(pos, decode_steady(p))   # (later steps are alike: O(window) work, not O(N))
    run = p.run_spec(pos + 1)
    d, bits, ob, w, g = p.spec.head_dim, p.fmt.data_bits, p.fmt.out_bits, p.widths, p.group_heads
    counters = swat_actions(p, run, first_row=pos)
    rows = int(run.keys_per_row()[pos])         # the row's distinct keys (window and sinks)
    window_kv = _rows_bytes(2 * rows, d, bits)
    if dataflow == "swat":
        keys = counters["sv_macs"] // d   # g x the keys the core issues (a sink in the band
        # is issued twice, masked once, until the window has passed the sinks)
        kv = _rows_bytes(2, d, bits) if resident else window_kv
        acts = _pass(qk_macs=counters["qk_macs"], sv_macs=counters["sv_macs"],
                     exp_ops=counters["exp_ops"], max_compares=keys, sum_adds=keys,
                     divisions=g * d, kv_rows=counters["kv_rows"], q_rows=g, rows_out=g,
                     kv_buffer_write_bits=2 * d * bits, kv_buffer_read_bits=2 * keys * d * bits,
                     score_buffer_write_bits=keys * w.score, score_buffer_read_bits=keys * w.score,
                     offchip_read_bytes=_rows_bytes(g, d, bits) + kv, offchip_kv_read_bytes=kv,
                     offchip_write_bytes=_rows_bytes(g, d, ob))
    else:
        keys = g * rows   # (the baselines compute each distinct key once)
        ktiles = -(-rows // (tiles or Tiles()).k)
        visits, rescales = g * ktiles, g * (ktiles - 1)
        kv = window_kv if dataflow == "reread" else _rows_bytes(2, d, bits)
        acts = _pass(qk_macs=keys * d, sv_macs=keys * d, rescale_mults=rescales * d,
                     exp_ops=keys + rescales, max_compares=keys, sum_adds=keys,
                     divisions=g * d, kv_rows=rows if dataflow == "reread" else 1, q_rows=g,
                     rows_out=g, q_buffer_write_bits=g * d * bits,
                     q_buffer_read_bits=visits * d * bits,
                     kv_buffer_write_bits=2 * (rows if dataflow == "reread" else keys) * d * bits,
                     kv_buffer_read_bits=2 * keys * d * bits,
                     score_buffer_write_bits=keys * w.score, score_buffer_read_bits=keys * w.score,
                     acc_buffer_write_bits=visits * d * w.acc,
                     acc_buffer_read_bits=visits * d * w.acc,
                     offchip_read_bytes=_rows_bytes(g, d, bits) + kv, offchip_kv_read_bytes=kv,
                     offchip_write_bytes=_rows_bytes(g, d, ob))
        if dataflow == "onchip":   # the new row written into the cache, the window read per head
            acts.update(cache_buffer_write_bits=2 * d * bits,
                        cache_buffer_read_bits=2 * keys * d * bits)
    if sinks:
        for k, v in sink_term(p, 1).items():
            if k != "offchip_read_bytes":
                acts[k] += v * g
    io_cycles = _offchip(acts) / offchip_bytes_per_cycle
    if dataflow == "swat":
        cycles = max(decode_step_cycles(p, pos), math.ceil(io_cycles))
    else:
        macs = p.mac_lanes
        cycles = math.ceil(max(acts["qk_macs"] / macs,
                               (acts["sv_macs"] + acts["rescale_mults"]) / macs,
                               acts["exp_ops"] / p.hw.key_lanes, io_cycles))
    return cycles, acts


def decode_banks(p: CoreParams, dataflow: str, tiles: Tiles | None = None) -> dict:
    """Bank sizes of a decode step's buffers: SWAT's (:func:`buffer_banks`), the tiled
    baselines' (``flash``'s), and ``onchip``'s cache, banked as SWAT's K/V memory is."""
    if dataflow == "swat":
        return buffer_banks(p, "swat")
    banks = buffer_banks(p, "flash", tiles)
    if dataflow == "onchip":
        banks["cache"] = p.kv_depth * p.hw.dim_lanes * p.fmt.data_bits
    return banks


def decode_layer_cores(model: ModelConfig, fmt, hw: HardwareConfig) -> dict:
    """The decode core of a K/V head group of each sliding-window layer pattern of ``model``
    (:func:`decode_core`), by pattern; full-attention layers have none (decode estimates the
    sliding layers). ``ModelError`` naming the layer when a pattern cannot decode (not
    causal, global tokens, BigBird)."""
    cores = {}
    for pattern, indices in model.layer_groups():
        if pattern.kind == "full":
            continue
        n = hw.max_seq_len
        what = f"model {model.name}, layer {indices[0]} ({pattern.describe(n, model.head_dim)})"
        if pattern.kind != "window" or pattern.global_tokens or pattern.after:
            raise ModelError(f"{what}: decode needs a causal sliding window without global "
                             f"tokens (a new row has no later keys; a global row attends "
                             f"every key)")
        try:
            p = CoreParams(pattern.spec(n, model.head_dim), fmt, hw, heads=model.group,
                           kv_heads=1, sink_logits=model.learned_sinks, contexts=1)
            cores[pattern] = decode_core(p, n)
        except ValueError as e:
            raise ModelError(f"{what}: {e}") from None
    if not cores:
        raise ModelError(f"model {model.name}: no layer has a sliding window (all "
                         f"{model.layers} are full attention)")
    return cores


def decode_residency(model: ModelConfig, cores: dict, onchip_bytes: int | None) -> dict:
    """Which sliding layers keep their caches on chip: layer index -> (cache bytes of the
    layer: every K/V head's window and sinks, resident?). The layers in order, each kept while
    the caches kept so far fit in ``onchip_bytes`` (``None``: no limit, every layer kept)."""
    out, used = {}, 0
    by_layer = {i: pat for pat, idx in model.layer_groups() for i in idx}
    for i in sorted(by_layer):
        p = cores.get(by_layer[i])
        if p is None:
            continue
        size = model.kv_heads * decode_cache_bytes(p)
        fits = onchip_bytes is None or used + size <= onchip_bytes
        used += size if fits else 0
        out[i] = (size, fits)
    return out


def _decode_layer(p: CoreParams, n: int, steps: int, dataflow: str, tiles, bw: float,
                  resident: bool, sinks: bool, kv_heads: int):
    """Cycles and actions of ``steps`` decode steps after a prefill of ``n`` rows, for one
    layer: its ``kv_heads`` groups one after another on the core (each a :func:`decode_step`)."""
    cycles, acts = 0, dict.fromkeys(ACTION_KEYS, 0)
    end, steady = n + steps, max(n, decode_steady(p))
    # the steps before the steady position one by one, then one for all the (alike) others
    for pos, times in [(pos, 1) for pos in range(n, min(end, steady))] + (
            [(steady, end - steady)] if end > steady else []):
        c, a = decode_step(p, pos, dataflow, tiles, bw, resident, sinks)
        cycles += c * times
        for k, v in a.items():
            acts[k] = acts.get(k, 0) + v * times
    return cycles * kv_heads, {k: v * kv_heads for k, v in acts.items()}


def estimate_decode(model: ModelConfig, seq_lens, steps: int = 256,
                    dataflows=DECODE_DATAFLOWS, *, fmt, key_lanes: int = 8, dim_lanes: int = 8,
                    clock_hz: float = 100e6, table: EnergyTable | None = None,
                    offchip_bytes_per_cycle: float = 16.0, tiles: Tiles | None = None,
                    onchip_bytes: int | None = None, clock_source: str = "--clock-mhz",
                    model_scope: bool = True) -> list[dict]:
    """Per-token figures of decode: after a prefill of N rows (each of ``seq_lens``), ``steps``
    decode steps of one row each; per sliding-window layer (one record per group of layers
    with the same pattern and residency: figures of *one* such layer) and, with
    ``model_scope``, the model's sliding layers summed: cycles, latency, energy (with its
    breakdown) and off-chip bytes per token, each the mean over the steps, for each dataflow
    of :data:`DECODE_DATAFLOWS` (:func:`decode_step`). ``onchip_bytes``: the on-chip memory
    for the caches (:func:`decode_residency`); SWAT re-reads a non-resident layer's window
    from off-chip as ``reread`` does, and so does ``onchip`` (``resident`` False in their
    records).

    Raises ``ModelError`` (a layer that cannot decode), ``ValueError``/``TypeError`` (bad
    steps, lengths, dataflow, budget)."""
    table = table or load_table("asic45")
    tiles = tiles or Tiles()
    check_int("steps", steps, 1)
    if onchip_bytes is not None:
        check_int("onchip_bytes", onchip_bytes, 0)
    for dataflow in dataflows:
        if dataflow not in DECODE_DATAFLOWS:
            raise ValueError(f"dataflow must be one of {', '.join(DECODE_DATAFLOWS)}, not "
                             f"{dataflow!r}")
    longest = max(seq_lens) + steps
    if min(seq_lens) < 1 or longest > MAX_SEQ_LEN:
        raise ValueError(f"the prefill and the steps must make 2..{MAX_SEQ_LEN} rows, not "
                         f"{min(seq_lens)} .. {longest}")
    hw = HardwareConfig(key_lanes, dim_lanes, max_seq_len=longest)
    cores = decode_layer_cores(model, fmt, hw)
    where = decode_residency(model, cores, onchip_bytes)
    groups = {}   # (pattern, resident) -> layer indices
    for pattern, indices in model.layer_groups():
        for i in indices:
            if i in where:
                groups.setdefault((pattern, where[i][1]), []).append(i)
    records = []
    for dataflow in dataflows:
        for n in seq_lens:
            totals = None
            for (pattern, resident), indices in groups.items():
                p = cores[pattern]
                cycles, acts = _decode_layer(p, n, steps, dataflow, tiles,
                                             offchip_bytes_per_cycle, resident,
                                             model.learned_sinks, model.kv_heads)
                latency = cycles / clock_hz
                parts = energy_breakdown(p, acts, table, decode_banks(p, dataflow, tiles))
                static = table.static_power_w * latency
                ideal = (acts["qk_macs"] / p.mac_lanes) / steps
                rec = {"dataflow": dataflow, "seq_len": n, "steps": steps, "scope": "layer",
                       "model": model.name if model_scope else None, "layers": model.layers,
                       "layer_indices": indices,
                       "layer_pattern": pattern.describe(n + 1, model.head_dim),
                       "resident": resident if dataflow != "reread" else None,
                       "cache_bytes": where[indices[0]][0], "onchip_bytes": onchip_bytes,
                       "heads": model.heads, "kv_heads": model.kv_heads,
                       "window": p.spec.window, "sink_tokens": p.spec.sink_tokens,
                       "learned_sinks": model.learned_sinks, "head_dim": model.head_dim,
                       "key_lanes": key_lanes, "dim_lanes": dim_lanes,
                       "tile_k": tiles.k if dataflow != "swat" else None,
                       "clock_hz": clock_hz, "clock_source": clock_source, "tech": table.name,
                       "cycles_per_token": cycles / steps, "ideal_cycles_per_token": ideal,
                       "latency_per_token_s": latency / steps,
                       "energy_per_token_j": (sum(parts.values()) + static) / steps,
                       "macs_per_token": (acts["qk_macs"] + acts["sv_macs"]) / steps,
                       "offchip_bytes_per_token": _offchip(acts) / steps,
                       "offchip_kv_bytes_per_token": acts["offchip_kv_read_bytes"] / steps,
                       "energy_breakdown": {k: v / steps
                                            for k, v in components(parts, static).items()}}
                records.append(rec)
                totals = _add_decode(totals, rec, len(indices))
            if model_scope:
                totals.update(scope="model", layer_indices=sorted(where),
                              layer_pattern="sliding layers", resident=None, cache_bytes=sum(
                                  size for size, _ in where.values()))
                records.append(totals)
    swat = {(r["seq_len"], r["scope"], tuple(r["layer_indices"])): r
            for r in records if r["dataflow"] == "swat"}
    for r in records:
        ref = swat.get((r["seq_len"], r["scope"], tuple(r["layer_indices"])))
        for key, field in (("latency", "latency_per_token_s"), ("energy", "energy_per_token_j"),
                           ("offchip_bytes", "offchip_bytes_per_token")):
            r[f"{key}_ratio_to_swat"] = r[field] / ref[field] if ref else None
    return records


_DECODE_SUMMED = ("cycles_per_token", "ideal_cycles_per_token", "latency_per_token_s",
                  "energy_per_token_j", "macs_per_token", "offchip_bytes_per_token",
                  "offchip_kv_bytes_per_token")


def _add_decode(totals: dict | None, rec: dict, times: int) -> dict:
    """A model's sliding layers summed (they run one after another per token)."""
    if totals is None:
        totals = {**rec, **dict.fromkeys(_DECODE_SUMMED, 0),
                  "energy_breakdown": dict.fromkeys(COMPONENTS, 0.0)}
    for k in _DECODE_SUMMED:
        totals[k] += rec[k] * times
    for k, v in rec["energy_breakdown"].items():
        totals["energy_breakdown"][k] += v * times
    return totals
