"""Where a regression build's time goes, and what a change of how it is built saves.

For each build named and each variant, the build is made from scratch in a private folder
(``--dir``, fresh), its phases timed — the Verilog of the core (linted) and of the harness
(``generate``), Verilator (``verilate``), Verilator's runtime objects
(``runtime``: compiled by the first build of a folder, copied by the others), the model
(``model``: ``Vtop__ALL.o``), cocotb's main (``main``: ``verilator.o``) and the archive and link
(``link``) — and then one case is run on it (``run``: the simulation of a case, golden model
included). Variants are measured one after another in the same run, so their ratios to the
first variant hold under the machine's load even where the seconds do not; the load average
is printed beside them.

Run: ``python -m swatkit.sim.build_timing --dir DIR [--builds ID,...] [--variants V,...]``
(builds: ids of ``swatkit regress --full``'s matrix; variants: :data:`VARIANTS`, or
several joined by ``+``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import sys
import time
from pathlib import Path

from . import regress

# name -> (what the variant changes, C++ optimisation of the model or None for the build's own,
# whether the harness memories' zero initialisation is a loop)
VARIANTS = {
    "today": ("the builds as the regression makes them today", None, False),
    "O0": ("model at -O0", regress.QUICK_MAKE_ARGS, False),
    "O1": ("model at -O1", regress.MAKE_ARGS, False),
    "Os": ("model at -Os", ("OPT_FAST=-Os", "OPT_SLOW=-O0", "OPT_GLOBAL=-O1"), False),
    "loop": ("harness memories zeroed by a loop, not one statement per row", None, True),
}
PHASES = ("generate", "verilate", "runtime", "model", "main", "link")


def _load() -> str:
    return "/".join(f"{x:.1f}" for x in os.getloadavg())


@contextlib.contextmanager
def _timed_make(times: dict):
    """Time the make of :func:`regress.compile_bench` phase by phase (the objects of each
    phase made by their own make call, then the rest), and Verilator."""
    import swatkit.support.processes as processes

    real = processes.run

    def run(cmd, **kw):
        cmd = [str(c) for c in cmd]
        if Path(cmd[0]).name != "make":
            start = time.monotonic()
            code = real(cmd, **kw)
            times["verilate"] = times.get("verilate", 0.0) + time.monotonic() - start
            return code
        path = Path(cmd[cmd.index("-C") + 1])
        if cmd[-1].endswith(".o"):   # the runtime alone (the first build of a runtime key)
            stages = (("runtime", []),)
        else:
            names = regress._runtime_names(path)
            stages = (("runtime", [f"{n}.o" for n in names]), ("model", ["Vtop__ALL.o"]),
                      ("main", ["verilator.o"]), ("link", []))
        for phase, targets in stages:
            start = time.monotonic()
            code = real([*cmd, *targets], **kw)
            times[phase] = times.get(phase, 0.0) + time.monotonic() - start
            if code:
                return code
        return 0

    processes.run = run
    try:
        yield
    finally:
        processes.run = real


def measure(build: regress.Build, variant: str, root: Path, seed: int) -> dict:
    """Make ``build`` as ``variant`` in ``root/<variant>/<build id>`` and run one case on it."""
    make_args, loop = None, False
    for part in variant.split("+"):   # parts combine: "loop+O0"
        _, args, zero = VARIANTS[part]
        make_args, loop = args or make_args, loop or zero
    path = root / variant / build.id
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    times: dict = {"load_before": _load()}
    saved = regress.ZERO_INIT_LOOPS
    regress.ZERO_INIT_LOOPS = loop
    try:
        with _timed_make(times):
            start = time.monotonic()
            models = regress._write_sources(build, path / "src", None)
            times["generate"] = time.monotonic() - start
            regress.compile_bench(path / "src", path, None, models,
                                  make_args=make_args or build.make_args,
                                  runtime=root / "runtime")
    finally:
        regress.ZERO_INIT_LOOPS = saved
    info = regress.BuildInfo(path, build.id, True, 0.0)
    n = min(1024, build.max_seq_len)
    case = regress.Case(f"{build.id}/timing-n{n}", build, (n,))
    real_ensure = regress.ensure_build
    regress.ensure_build = lambda *a, **k: info
    try:
        start = time.monotonic()
        result = regress.run_case(case, seed, build_dir=root / variant)
        times["run"] = time.monotonic() - start
    finally:
        regress.ensure_build = real_ensure
    if not result.passed:
        raise SystemExit(f"{case.id} ({variant}) failed: {result.message}")
    times["cycles"] = result.sim_cycles
    times["load_after"] = _load()
    times["sources_kb"] = round(sum(f.stat().st_size for f in path.glob("Vtop*.cpp")) / 1024)
    return times


def main(argv=None) -> int:
    from swatkit.cmd_regress import matrix

    from .regress import FULL_BUILDS

    parser = argparse.ArgumentParser(prog="python -m swatkit.sim.build_timing",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--dir", required=True, type=Path, help="a fresh folder for the builds")
    parser.add_argument("--builds", default="bi5_k1d1,logits_gqa8_causal16_k4d4,"
                        "longformer_default")
    parser.add_argument("--variants", default="today,loop")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", type=Path, help="write the figures here too")
    args = parser.parse_args(argv)
    builds = {b.id: b for b in FULL_BUILDS} | {c.build.id: c.build for c in matrix(True)}
    chosen = args.builds.split(",")
    variants = args.variants.split(",")
    for name in chosen:
        if name not in builds:
            parser.error(f"--builds: no build {name!r} (one of {', '.join(sorted(builds))})")
    for part in (p for v in variants for p in v.split("+")):
        if part not in VARIANTS:
            parser.error(f"--variants: no variant {part!r} (one of {', '.join(VARIANTS)})")
    if args.dir.exists() and any(args.dir.iterdir()):
        parser.error(f"--dir: {args.dir} is not empty (the runtime must be built afresh)")
    rows = []
    print(f"{'build':28} {'variant':8} " + " ".join(f"{p:>8}" for p in (*PHASES, "run"))
          + "   cycles  C++ kB  load")
    for name in chosen:
        for v in variants:
            t = measure(builds[name], v, args.dir, args.seed)
            rows.append({"build": name, "variant": v, **t})
            print(f"{name:28} {v:8} " + " ".join(f"{t.get(p, 0.0):8.1f}"
                                                 for p in (*PHASES, "run"))
                  + f" {t['cycles']:8} {t['sources_kb']:7} {t['load_before']}", flush=True)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
