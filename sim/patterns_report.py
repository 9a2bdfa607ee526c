"""Costs of global tokens and dilation on the SWAT core: cycles against their ideals, energy and
off-chip traffic of the global pass, and the extra resources of the generate-time maxima.

For the default Longformer head (attention_window 512: W = 513, head_dim 64, 8 × 8 lanes) at
N = 4096, from the exact cycle model (:func:`~swatkit.sim.cycle_model.swat_cycles`), the
core's counters (:func:`~swatkit.sim.cycle_model.swat_actions`), the estimate
(:func:`~swatkit.sim.estimate.estimate`) and :meth:`CoreParams.resources`::

    python -m swatkit.sim.patterns_report
    python -m swatkit.sim.patterns_report --bigbird   # BigBird-base: b = 64, r = 3, N = 1K … 16K

Ideals (every multiplier busy every cycle):

* band: ``Σ_i keys_i·d / (KL·DL)`` over the non-global rows, ``keys_i`` the row's band ∪ the
  global columns (:meth:`CoreParams.ideal_cycles`); ``issued`` is the same over the keys the
  band core issues (a global token inside a row's band is issued twice, once masked, and a
  global token's own band row is computed and dropped: :meth:`CoreParams.band_keys`);
* global pass: ``G·N·d / DL``, one q·k per (global row, key) on the engine's ``DL`` q·k
  multipliers; the engine's two-pass schedule needs ``2·G·N·d/DL`` by construction.
"""

from __future__ import annotations

import argparse

from swatkit.golden import AttentionSpec, NumberFormat
from swatkit.rtl import CoreParams, HardwareConfig
from swatkit.rtl.global_rows import global_row_cycles, global_rows_cycles

from .cycle_model import swat_actions, swat_cycles
from .estimate import estimate

N = 4096
GLOBALS = (1, 8, 32)
DILATIONS = (1, 2, 4)


def core(n: int, g: int = 0, dilation: int = 1, *, max_g: int | None = None,
         max_d: int | None = None) -> CoreParams:
    """The default Longformer head with global tokens 0 … g−1 and ``dilation``."""
    spec = AttentionSpec.longformer(n, 64).replace(dilation=dilation,
                                                   global_tokens=tuple(range(g)))
    hw = HardwareConfig(8, 8, n, max_global_tokens=g if max_g is None else max_g,
                        max_dilation=dilation if max_d is None else max_d)
    return CoreParams(spec, NumberFormat(), hw)


def _si(x: float, unit: str) -> str:
    for f, pre in ((1e9, "G"), (1e6, "M"), (1e3, "k"), (1, ""), (1e-3, "m"), (1e-6, "µ")):
        if abs(x) >= f:
            return f"{x / f:.3g} {pre}{unit}"
    return f"{x:.3g} {unit}"


def cycles_table(n: int) -> None:
    print(f"Cycles (exact model), Longformer head W = 513, d = 64, 8x8 lanes, N = {n}; "
          "global tokens 0..G-1, max_global_tokens = G, max_dilation = D")
    print(f"{'G':>3} {'D':>2} {'run cycles':>11} {'band ideal':>11} {'ratio':>6} "
          f"{'issued ideal':>12} {'ratio':>6} {'global pass':>11} {'glob ideal':>10} "
          f"{'ratio':>6} {'bound':>6}")
    rows = [(0, 1)] + [(g, 1) for g in GLOBALS] + [(0, d) for d in DILATIONS[1:]] \
        + [(8, d) for d in DILATIONS[1:]]
    for g, dil in rows:
        p = core(n, g, dil)
        run = p.run_spec(n)
        est = swat_cycles(p, n, run=run)
        issued = int(p.band_keys(run).sum()) * p.spec.head_dim / (p.hw.key_lanes
                                                                  * p.hw.dim_lanes)
        glob = global_row_cycles(p.spec.head_dim, p.hw.dim_lanes, p.fmt, n, g)
        glob_ideal = g * n * p.spec.head_dim / p.hw.dim_lanes
        bound = "global" if g and glob + 1 == est.cycles else "band"
        glob_cols = (f"{glob:11,} {glob_ideal:10,.0f} {glob / glob_ideal:6.3f}" if g
                     else f"{'–':>11} {'–':>10} {'–':>6}")
        print(f"{g:3} {dil:2} {est.cycles:11,} {est.ideal:11,.0f} {est.ratio:6.3f} "
              f"{issued:12,.0f} {est.cycles / issued:6.3f} {glob_cols} {bound:>6}")


def counts_table(n: int) -> None:
    print(f"\nCounters (swat_actions) and the estimate (asic45, 100 MHz, 16 B/cycle), N = {n}")
    print(f"{'G':>3} {'D':>2} {'pairs':>10} {'QK MACs':>10} {'SV MACs':>10} {'exps':>9} "
          f"{'glob MACs':>10} {'off-chip':>9} {'glob off':>9} {'energy':>9} {'glob E':>9} "
          f"{'flash E/SWAT':>12} {'bs E/SWAT':>9} {'bs lat/SWAT':>11}")
    for g, dil in [(0, 1)] + [(g, 1) for g in GLOBALS] + [(0, 2), (0, 4)]:
        p = core(n, g, dil)
        run = p.run_spec(n)
        c = swat_actions(p, run)
        recs = {r["dataflow"]: r for r in estimate(p, [n], ["swat", "flash", "blocksparse"])}
        s = recs["swat"]
        print(f"{g:3} {dil:2} {run.pair_count():10,} {c['qk_macs']:10.3g} {c['sv_macs']:10.3g} "
              f"{c['exp_ops']:9.3g} {s['global_pass_macs']:10.3g} "
              f"{_si(s['offchip_bytes'], 'B'):>9} {_si(s['global_pass_offchip_bytes'], 'B'):>9} "
              f"{_si(s['energy_j'], 'J'):>9} {_si(s['global_pass_energy_j'], 'J'):>9} "
              f"{recs['flash']['energy_ratio_to_swat']:12.2f} "
              f"{recs['blocksparse']['energy_ratio_to_swat']:9.2f} "
              f"{recs['blocksparse']['latency_ratio_to_swat']:11.2f}")


def resources_table(n: int) -> None:
    cases = [("default", core(n)), ("max_global_tokens 8", core(n, max_g=8)),
             ("max_dilation 4", core(n, max_d=4)), ("both", core(n, max_g=8, max_d=4))]
    res = [(name, p.resources()) for name, p in cases]
    print(f"\nResources (CoreParams.resources()), W = 513, d = 64, 8x8 lanes, max_seq_len {n}")
    print(f"{'resource':26}" + "".join(f"{name:>24}" for name, _ in res))
    for key in res[0][1]:
        base = res[0][1][key]
        cells = []
        for _, r in res:
            delta = r[key] - base
            cells.append(f"{r[key]:,}" + (f" ({delta:+,})" if delta and r is not res[0][1]
                                          else ""))
        print(f"{key:26}" + "".join(f"{c:>24}" for c in cells))


BIGBIRD_LENGTHS = (1024, 2048, 4096, 8192, 16384)


def bigbird_core(n: int, block: int = 64, random_blocks: int = 3) -> CoreParams:
    """A BigBird-base head (blocks of 64, 3 random blocks, table seed 0, head_dim 64) on 8 × 8
    lanes, counters for ``n`` rows."""
    return CoreParams(AttentionSpec.bigbird(n, 64, block, random_blocks), NumberFormat(),
                      HardwareConfig(8, 8, n))


def bigbird_table(lengths=BIGBIRD_LENGTHS) -> None:
    """Per N: SWAT's cycles against the ideal, the dense baseline against SWAT, and off-chip
    bytes per output element against the plain window of as many keys per row."""
    print("BigBird-base head (b = 64, r = 3, seed 0, d = 64), 8x8 lanes, asic45, 100 MHz, "
          "16 B/cycle; band: attention_window 512 (the same 512 keys per interior row)")
    print(f"{'N':>6} {'SWAT cycles':>12} {'ideal':>11} {'ratio':>6} {'glob eng':>10} "
          f"{'dense/SWAT lat':>14} {'dense/SWAT E':>12} {'SWAT B/out':>10} {'random':>7} "
          f"{'band B/out':>10} {'dense B/out':>11} {'band':>6}")
    for n in lengths:
        p = bigbird_core(n)
        run = p.run_spec(n)
        recs = {r["dataflow"]: r for r in estimate(p, [n], ["swat", "dense"])}
        s, dense = recs["swat"], recs["dense"]
        glob = global_rows_cycles(64, 8, p.fmt, n, len(run.global_positions()),
                                  p.global_engines)
        print(f"{n:6} {s['cycles']:12,} {s['ideal_cycles']:11,.0f} "
              f"{s['cycles'] / s['ideal_cycles']:6.3f} {glob:10,} "
              f"{dense['latency_ratio_to_swat']:14.2f} {dense['energy_ratio_to_swat']:12.2f} "
              f"{s['offchip_bytes_per_output']:10.2f} "
              f"{s['offchip_random_kv_read_bytes'] / (n * 64):7.2f} "
              f"{s['plain_window_offchip_bytes_per_output']:10.2f} "
              f"{dense['offchip_bytes_per_output']:11.1f} "
              f"{dense['plain_window_offchip_bytes_per_output']:6.1f}")


def bigbird_resources(n: int = 4096) -> None:
    cases = [("Longformer default", core(n)), ("BigBird b=64 r=3", bigbird_core(n))]
    res = [(name, p.resources()) for name, p in cases]
    print(f"\nResources (CoreParams.resources()), d = 64, 8x8 lanes, max_seq_len {n}: the "
          "default Longformer core (W = 513) and a BigBird-base core")
    print(f"{'resource':26}" + "".join(f"{name:>26}" for name, _ in res))
    for key in res[0][1]:
        base = res[0][1][key]
        cells = [f"{base:,}"] + [f"{r[key]:,}" + (f" ({r[key] - base:+,})" if r[key] != base
                                                   else "") for _, r in res[1:]]
        print(f"{key:26}" + "".join(f"{c:>26}" for c in cells))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m swatkit.sim.patterns_report",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--seq-len", type=int, default=N, help=f"N (default {N})")
    parser.add_argument("--bigbird", action="store_true",
                        help="the BigBird-base head instead, at N = "
                             f"{', '.join(map(str, BIGBIRD_LENGTHS))}")
    args = parser.parse_args(argv)
    if args.bigbird:
        bigbird_table()
        bigbird_resources()
        return 0
    if args.seq_len <= max(GLOBALS):
        parser.error(f"--seq-len must exceed {max(GLOBALS)} (the global tokens 0..31), "
                     f"not {args.seq_len}")
    cycles_table(args.seq_len)
    counts_table(args.seq_len)
    resources_table(args.seq_len)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
