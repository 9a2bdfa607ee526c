"""Measured cycles of SwatCore against the ideal ``Σ_i W_i·d / (key_lanes·dim_lanes)``.

Runs the core in Amaranth's simulator (stall-free inputs and output) for a few shapes with
N >= 4·W and prints cycles, ideal and their ratio, checking the output bit-exactly on the way::

    python -m swatkit.sim.cycles_report
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from swatkit.golden import AttentionSpec, NumberFormat, fixed_point_attention
from swatkit.rtl import CoreParams, HardwareConfig

from .amaranth_core import run_core

SHAPES = [  # (name, spec, hw)
    ("causal W=32 d=16", AttentionSpec.causal(128, 16, 32), HardwareConfig(4, 4, 128)),
    ("bidir W=33 d=16", AttentionSpec(132, 16, 16, 16), HardwareConfig(3, 4, 132)),
    ("bidir W=33 d=16 (KL∤W)", AttentionSpec(132, 16, 16, 16), HardwareConfig(4, 4, 132)),
    ("bidir W=65 d=64", AttentionSpec(260, 64, 32, 32), HardwareConfig(5, 8, 260)),
    ("causal W=64 d=32", AttentionSpec.causal(256, 32, 64), HardwareConfig(8, 8, 256)),
]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m swatkit.sim.cycles_report",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    print(f"{'shape':26} {'N':>5} {'KL':>3} {'DL':>3} {'cycles':>8} {'ideal':>9} "
          f"{'ratio':>6} {'exact':>5} {'sim s':>6}")
    for name, spec, hw in SHAPES:
        fmt = NumberFormat()
        q, k, v = (rng.integers(fmt.data_min, fmt.data_max + 1,
                                size=(spec.seq_len, spec.head_dim)) for _ in range(3))
        params = CoreParams(spec, fmt, hw)
        t = time.perf_counter()
        run = run_core(q, k, v, params)
        elapsed = time.perf_counter() - t
        exact = bool((run.out == fixed_point_attention(q, k, v, spec, fmt).out).all())
        ideal = params.ideal_cycles(spec.seq_len)
        cycles = run.stats["cycles"]
        print(f"{name:26} {spec.seq_len:5} {hw.key_lanes:3} {hw.dim_lanes:3} {cycles:8} "
              f"{ideal:9.0f} {cycles / ideal:6.3f} {exact!s:>5} {elapsed:6.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
