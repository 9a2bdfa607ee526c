"""Estimate cycles, latency and energy per sequence length, SWAT core against a dense baseline.

Cycles of the SWAT core come from its exact cycle model (validated against RTL simulation);
the dense baseline is the conventional unfused accelerator with the same MAC budget (see
docs/estimation.md for its assumptions). Energy = action counts x an energy table (`--tech`).
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
from pathlib import Path

from swatkit.options import (
    UsageError,
    add_hardware_options,
    add_workload_options,
    core_params,
    resolve,
)

__all__ = ["add_arguments", "parse_lengths", "run"]

DEFAULT_LENGTHS = [2 ** k for k in range(10, 17)]  # 1K … 64K


def parse_lengths(text: str) -> list[int]:
    """``1024,4096`` or ``START:STOP:xFACTOR`` / ``START:STOP:+STEP`` (STOP included)."""
    def positive(token):
        try:
            value = int(token)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"must be positive integers, a list A,B or a range START:STOP:xF, "
                f"not {text!r}") from None
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be positive integers, not {value}")
        return value

    if ":" in text:
        parts = text.split(":")
        if len(parts) != 3 or parts[2][:1] not in ("x", "+"):
            raise argparse.ArgumentTypeError(
                f"a range is START:STOP:xFACTOR or START:STOP:+STEP, not {text!r}")
        start, stop, step = positive(parts[0]), positive(parts[1]), positive(parts[2][1:])
        if parts[2][0] == "x" and step < 2:
            raise argparse.ArgumentTypeError(f"a range's factor must be at least 2, not {step}")
        if stop < start:
            raise argparse.ArgumentTypeError(f"a range must not end before it starts: {text!r}")
        lengths, n = [], start
        while n <= stop:
            lengths.append(n)
            n = n * step if parts[2][0] == "x" else n + step
        return lengths
    return [positive(t) for t in text.split(",")]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_workload_options(parser, seq_len_type=parse_lengths,
                         seq_len_help="lengths: 1024,4096 or 1024:1048576:x2 "
                                      "(default 1024:65536:x2)")
    add_hardware_options(parser)
    e = parser.add_argument_group("estimate")
    e.add_argument("--dataflow", default="swat,dense", metavar="LIST",
                   help="swat, dense or both (default swat,dense)")
    clock = e.add_mutually_exclusive_group()
    clock.add_argument("--clock-mhz", type=float, metavar="F",
                       help="clock for latency (default 100)")
    clock.add_argument("--from-flow", type=Path, metavar="DIR/flow.json",
                       help="take the clock from the Fmax that `swatkit flow` measured")
    e.add_argument("--tech", default="asic45", metavar="asic45|fpga|FILE.toml",
                   help="energy table (default asic45)")
    e.add_argument("--offchip-bytes-per-cycle", type=float, default=16.0, metavar="B",
                   help="off-chip bandwidth (default 16)")
    e.add_argument("--format", choices=("table", "csv", "json"), default="table",
                   help="output format (default table)")
    e.add_argument("--plot", type=Path, metavar="FILE.png",
                   help="write latency and energy vs N (log-log) to a PNG")


def clock_from_flow(path: Path) -> float:
    """The lowest achieved Fmax (MHz) in a `swatkit flow` report."""
    try:
        report = json.loads(path.read_text())
    except FileNotFoundError:
        raise UsageError(f"--from-flow: no such file: {path}") from None
    except (OSError, json.JSONDecodeError) as e:
        raise UsageError(f"--from-flow: cannot read {path}: {e}") from None
    fmax = report.get("fmax_mhz") if isinstance(report, dict) else None
    values = []
    if isinstance(fmax, int | float):
        values = [fmax]
    elif isinstance(fmax, dict):
        for v in fmax.values():
            if isinstance(v, dict):
                v = v.get("achieved")
            if isinstance(v, int | float):
                values.append(v)
    if not values or min(values) <= 0:
        raise UsageError(f"--from-flow: {path} has no achieved fmax_mhz")
    return float(min(values))


def run(args: argparse.Namespace) -> int:
    from swatkit.sim.estimate import DATAFLOWS, TableError, estimate, load_table

    lengths = args.seq_len or DEFAULT_LENGTHS
    args.seq_len = max(lengths)
    r = resolve(args)
    if r.sources.get("seq_len") == "config":  # a single length from the config file
        lengths = [r.spec.seq_len]
    dataflows = [d.strip() for d in args.dataflow.split(",") if d.strip()]
    for d in dataflows:
        if d not in DATAFLOWS:
            raise UsageError(f"--dataflow must be a subset of {', '.join(DATAFLOWS)}, "
                             f"not {d!r}")
    if not dataflows:
        raise UsageError("--dataflow must name at least one dataflow")
    if args.from_flow:
        clock_mhz, source = clock_from_flow(args.from_flow), f"fmax from {args.from_flow}"
    else:
        clock_mhz = 100.0 if args.clock_mhz is None else args.clock_mhz
        source = "--clock-mhz" if args.clock_mhz is not None else "default 100 MHz"
    if not clock_mhz > 0:
        raise UsageError(f"--clock-mhz must be positive, not {clock_mhz:g}")
    if not args.offchip_bytes_per_cycle > 0:
        raise UsageError(f"--offchip-bytes-per-cycle must be positive, "
                         f"not {args.offchip_bytes_per_cycle:g}")
    try:
        table = load_table(args.tech)
    except TableError as e:
        raise UsageError(f"--tech: {e}") from None
    params = core_params(r, max(lengths))
    records = estimate(params, lengths, dataflows, clock_hz=clock_mhz * 1e6, table=table,
                       offchip_bytes_per_cycle=args.offchip_bytes_per_cycle,
                       clock_source=source)
    if args.format == "json":
        print(json.dumps(records, indent=1))
    elif args.format == "csv":
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=list(records[0]))
        writer.writeheader()
        writer.writerows(records)
        sys.stdout.write(buf.getvalue())
    else:
        print_table(records, table, clock_mhz, source)
    if args.plot:
        plot(records, args.plot, table.name, clock_mhz)
        print(f"wrote {args.plot}", file=sys.stderr if args.format != "table" else sys.stdout)
    return 0


def print_table(records, table, clock_mhz, source) -> None:
    from rich.console import Console
    from rich.table import Table

    first = records[0]
    t = Table(title=f"window {first['before']}+1+{first['after']}, head_dim {first['head_dim']}, "
                    f"{first['key_lanes']}x{first['dim_lanes']} lanes, {clock_mhz:g} MHz "
                    f"({source}), energy table {table.name}")
    for col in ("dataflow", "N", "cycles", "cycles/ideal", "latency", "energy", "MACs",
                "off-chip"):
        t.add_column(col, justify="left" if col == "dataflow" else "right")
    for r in records:
        t.add_row(r["dataflow"], f"{r['seq_len']}", f"{r['cycles']:,}",
                  f"{r['cycles'] / r['ideal_cycles']:.3f}", _si(r["latency_s"], "s"),
                  _si(r["energy_j"], "J"), f"{r['macs']:.3g}", _si(r["offchip_bytes"], "B"))
    Console(width=120).print(t)
    by = {(r["dataflow"], r["seq_len"]): r for r in records}
    ratios = [(n, by[("dense", n)], by[("swat", n)]) for n in sorted({r["seq_len"]
              for r in records}) if ("dense", n) in by and ("swat", n) in by]
    for n, dense, swat in ratios:
        print(f"N={n}: dense/SWAT latency {dense['latency_s'] / swat['latency_s']:.1f}x, "
              f"energy {dense['energy_j'] / swat['energy_j']:.1f}x")
    print(f"energy table {table.name}: {table.source}")


def _si(value: float, unit: str) -> str:
    for factor, prefix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k"), (1, ""),
                           (1e-3, "m"), (1e-6, "µ"), (1e-9, "n"), (1e-12, "p")):
        if abs(value) >= factor:
            return f"{value / factor:.3g} {prefix}{unit}"
    return f"{value:.3g} {unit}"


def plot(records, path: Path, tech: str, clock_mhz: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_t, ax_e) = plt.subplots(1, 2, figsize=(10, 4))
    for dataflow in dict.fromkeys(r["dataflow"] for r in records):
        rows = [r for r in records if r["dataflow"] == dataflow]
        n = [r["seq_len"] for r in rows]
        ax_t.loglog(n, [r["latency_s"] for r in rows], "o-", label=dataflow)
        ax_e.loglog(n, [r["energy_j"] for r in rows], "o-", label=dataflow)
    first = records[0]
    ax_t.set(xlabel="sequence length N", ylabel=f"latency (s) at {clock_mhz:g} MHz",
             title="latency per head")
    ax_e.set(xlabel="sequence length N", ylabel=f"energy (J), table {tech}",
             title="energy per head")
    for ax in (ax_t, ax_e):
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    fig.suptitle(f"window {first['window']}, head_dim {first['head_dim']}, "
                 f"{first['key_lanes']}x{first['dim_lanes']} lanes")
    fig.tight_layout()
    try:
        fig.savefig(path, dpi=120)
    except OSError as e:
        raise UsageError(f"--plot: cannot write {path}: {e.strerror}") from None
    finally:
        plt.close(fig)
