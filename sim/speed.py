"""Simulation speed of the regression bench against raw Verilator, on one configuration.

``python -m swatkit.sim.speed`` runs one case of the default core (Longformer head: 513-key
window, head_dim 64, 8×8 lanes; N = 4096 with 30 % valid gaps and ready stalls unless told
otherwise) twice on the same Verilated model:

1. through the cocotb bench of the regression (:mod:`swatkit.sim.cocotb_swat`: the HDL harness
   does the per-cycle work, Python loads, starts, waits and compares), and
2. from a plain C++ loop with no Python at all (``sim/raw_main.cpp``: the harness's row
   memories loaded through VPI, then the clock toggled in C++),

and prints cycles per second of each and their ratio, alternating the two ``--repeat`` times so
that both see the same machine load. ``--variants`` also builds the raw model
with other Verilator / C++ optimisation settings and prints build time and speed of each (how
the regression's options were chosen; docs/verification.md).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import time
from importlib import resources
from pathlib import Path

from swatkit.rtl.controls import probability_threshold
from swatkit.support import build_cache

from . import regress

__all__ = ["main", "raw_build", "raw_run"]

# Verilator (model) options and C++ options tried by --variants: (name, verilator args, make args)
VARIANTS = (
    ("regression (current)", regress.BUILD_ARGS, regress.MAKE_ARGS),
    ("C++ -O0", regress.BUILD_ARGS, ("OPT_FAST=-O0", "OPT_SLOW=-O0", "OPT_GLOBAL=-O0")),
    ("C++ -O2", regress.BUILD_ARGS, ("OPT_FAST=-O2", "OPT_SLOW=-O1", "OPT_GLOBAL=-O2")),
    ("no --x-assign/--x-initial fast", ("--output-split", "0", "-Wno-fatal"), regress.MAKE_ARGS),
)


def raw_build(build: regress.Build, path: Path, build_args=regress.BUILD_ARGS,
              make_args=regress.MAKE_ARGS) -> float:
    """Compile ``build``'s harness with the raw C++ main into ``path``; returns seconds."""
    from swatkit.support.processes import run
    from swatkit.support.toolchain import use_verilator

    v = use_verilator()
    if path.exists():
        import shutil

        shutil.rmtree(path)
    start = time.monotonic()
    models = regress._write_sources(build, path / "src", None)
    main = Path(str(resources.files("swatkit.sim").joinpath("raw_main.cpp")))
    cmd = regress.verilator_command(path / "src", path, None, models, main,
                                    ("+define+SWATKIT_EXTERNAL_CLOCK",), build_args)
    env = {**os.environ, **v.env}
    with open(path / "build.log", "w") as log:
        for c in (cmd, ["make", "-j", str(os.cpu_count() or 1), "-C", str(path), "-f",
                        "Vtop.mk", *make_args]):
            code = run(c, stdout=log, stderr=subprocess.STDOUT, env=env)
            if code:
                raise subprocess.CalledProcessError(code, c)
    return time.monotonic() - start


def raw_run(path: Path, work: Path, case: regress.Case, seed: int) -> dict:
    """Run the raw model on the inputs the bench used for ``case`` (its work folder)."""
    import numpy as np

    from swatkit.rtl.core import command_value

    p = case.build.params
    if p.max_global_tokens:
        raise ValueError("the raw loop runs band cores only (a command with global tokens is "
                         "wider than 64 bits, and it has no global-row streams)")
    arrays = np.load(work / "inputs.npz")
    for name in ("q", "kv"):
        (path / f"{name}.bin").write_bytes(arrays[f"{name}_words"].tobytes())
    q_gap, kv_gap = case.gaps
    args = [str(path / regress.TOP), str(path / "q.bin"), str(path / "kv.bin"),
            str(seed & 0xFFFFFFFF), str(probability_threshold(q_gap)),
            str(probability_threshold(kv_gap)), str(probability_threshold(case.stall)),
            *(f"{n}:{command_value(p, case.run_spec(i))}"
              for i, n in enumerate(case.seq_lens))]
    done = subprocess.run(args, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def _load() -> str:
    try:
        return "load average " + ", ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "load average unknown"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m swatkit.sim.speed", description=__doc__
                                     .split("\n\n")[0])
    parser.add_argument("--seq-len", type=int, default=4096)
    parser.add_argument("--gap", type=float, default=0.3)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--build-dir", type=Path, default=None)
    parser.add_argument("--repeat", type=int, default=2,
                        help="bench and raw loop alternated this many times (default 2)")
    parser.add_argument("--variants", action="store_true",
                        help="also build and time the raw model with other options")
    args = parser.parse_args(argv)
    build = regress.DEFAULT_CORE
    case = regress.Case(f"{build.id}/speed-n{args.seq_len}", build, (args.seq_len,),
                        gap=args.gap, stall=args.gap)
    print(f"configuration: {case.describe()}")
    print(f"machine: {os.cpu_count()} CPUs, {_load()}")
    root = build_cache.build_root(args.build_dir) / "raw"
    raw_paths = {}
    for rep in range(args.repeat):
        start = time.monotonic()
        result = regress.run_case(case, args.seed, build_dir=args.build_dir, keep=True)
        wall = time.monotonic() - start
        if not result.passed:
            print(result.message)
            return 1
        bench = result.sim_cycles / result.sim_seconds
        built = f"compiled in {result.build_seconds:.0f} s" if result.build_seconds else "cached"
        print(f"[{rep + 1}] cocotb bench: {result.rows} rows bit-exact, {result.sim_cycles:,} "
              f"cycles in {result.sim_seconds:.2f} s = {bench:,.0f} cycles/s (build {built}; "
              f"whole run {wall:.1f} s; {_load()})")
        variants = VARIANTS if args.variants else VARIANTS[:1]
        for name, build_args, make_args in variants:
            path = root / name.replace(" ", "_").replace("/", "_")
            if name not in raw_paths:
                seconds = raw_build(build, path, build_args, make_args)
                raw_paths[name] = path
                print(f"    raw C++ loop [{name}]: built in {seconds:.0f} s ({_load()})")
            raw = raw_run(path, result.work_dir, case, args.seed)
            speed = raw["cycles"] / raw["seconds"]
            print(f"[{rep + 1}] raw C++ loop [{name}]: {raw['cycles']:,} cycles in "
                  f"{raw['seconds']:.2f} s = {speed:,.0f} cycles/s; the bench runs at "
                  f"{bench / speed:.0%} of it (core cycles {raw['core_cycles']:,}, bench "
                  f"{result.cycles:,}; {_load()})")
    print(f"after: {_load()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
