"""Explore SWAT configurations for a model on a board: key lanes × dim lanes × cores that fit.

The workload is a model (`--model`) or, as for `swatkit estimate`, one head (or head group)
that the workload options and `--config` describe (default: a Longformer-base head); one
Pareto front per sequence length (`--seq-len`, a list or range as for estimate). Each point's
resources come from a resource model calibrated on measured builds of the board
(shipped: docs/fpga.md's ULX3S-85F and iCEBreaker sweeps; `--flows DIR` adds or replaces
flow.json reports), its clock from a measured Fmax, its latency and energy from the model
estimate; the Pareto front over latency, energy and utilisation is marked. See
docs/estimation.md.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from swatkit.options import (
    MAX_CORES,
    UsageError,
    add_output_option,
    add_workload_options,
    check_bandwidth,
    check_int_option,
    make_folder,
    output_label,
    parse_lengths,
    print_report,
    resolve,
    warn,
)

__all__ = ["add_arguments", "parse_resources", "run"]

RESOURCE_NAMES = {"lut": "LUT", "ff": "FF", "dsp": "DSP", "bram": "BRAM"}
MAX_PLOT_LENGTHS = 6   # --plot: a panel per N, side by side
# what the resource model is not calibrated on (the options that set it, refused for an own
# head): resident global or sink rows, dilation's residue classes, BigBird's engines
UNCALIBRATED = {"global_tokens": "global tokens", "sink_tokens": "sink tokens",
                "dilation": "dilation", "bigbird_block": "BigBird's block-sparse pattern"}


def parse_resources(text: str) -> dict:
    """``dsp=156,bram=208,lut=83640`` -> ``{"DSP": 156, "BRAM": 208, "LUT": 83640}``."""
    out = {}
    for item in text.split(","):
        name, _, value = item.partition("=")
        key = RESOURCE_NAMES.get(name.strip().lower())
        if key is None:
            raise argparse.ArgumentTypeError(
                f"must be NAME=COUNT items with NAME one of {', '.join(RESOURCE_NAMES)}, "
                f"not {item.strip()!r}")
        try:
            count = int(value)
        except ValueError:
            count = -1
        if count < 0:
            raise argparse.ArgumentTypeError(
                f"{name.strip()} must be a non-negative integer, not {value.strip()!r}")
        out[key] = count
    return out


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_workload_options(parser, seq_len_type=parse_lengths, core_features=True,
                         seq_len_help="lengths: 1024,4096 or 1024:16384:x2 (default 4096); "
                                      "one Pareto front per N")
    from swatkit.sim.model_configs import PRESETS

    m = parser.add_argument_group("model (instead of one head)")
    m.add_argument("--model", metavar="NAME|PATH",
                   help=f"a Hugging Face config.json (file or folder) or a preset: "
                        f"{', '.join(PRESETS)}")
    parser.add_argument("--board", default="ulx3s-85f", metavar="NAME",
                        help="the device and its calibration (default ulx3s-85f; shipped: "
                             "ulx3s-85f, icebreaker)")
    parser.add_argument("--resources", type=parse_resources, metavar="dsp=N,bram=N,lut=N",
                        help="a budget instead of the board's whole device")
    parser.add_argument("--flows", type=Path, metavar="DIR",
                        help="flow.json reports (searched recursively) to calibrate on, with "
                             "the shipped points of other configurations")
    parser.add_argument("--head-schedule", choices=("serial", "gqa"),
                        help="as for swatkit estimate (default gqa for a model with fewer K/V "
                             "heads than query heads, else serial)")
    parser.add_argument("--max-cores", type=int, metavar="C",
                        help="most cores to try (default: the heads to schedule, at most 16)")
    parser.add_argument("--tech", default="fpga", metavar="asic45|fpga|FILE.toml",
                        help="energy table (default fpga)")
    parser.add_argument("--offchip-bytes-per-cycle", type=float, default=16.0, metavar="B",
                        help="off-chip bandwidth shared by the cores (default 16)")
    parser.add_argument("--format", choices=("table", "csv", "json"), default="table",
                        help="output format (default table)")
    parser.add_argument("--all", action="store_true",
                        help="table: every point that fits, not only the Pareto front")
    parser.add_argument("--plot", type=Path, metavar="FILE.png",
                        help="latency against utilisation, the Pareto front joined, a panel "
                             f"per N (at most {MAX_PLOT_LENGTHS}); a bare file name goes into "
                             "the -o folder")
    add_output_option(parser, "the report as explore.txt (the table as printed, with "
                              "--format table), explore.csv and explore.json, and --plot's "
                              "image when --plot is a bare file name (default: none, the "
                              "report on standard output only)")


def run(args: argparse.Namespace) -> int:
    from swatkit.cmd_estimate import csv_text, output_plot
    from swatkit.fpga_flows.explore import (
        RESOURCES,
        ExploreError,
        ResourceModel,
        explore,
        held_out_errors,
        load_calibration,
    )
    from swatkit.rtl.config import MAX_SEQ_LEN
    from swatkit.sim.estimate import TableError, load_table
    from swatkit.sim.model_configs import ModelError

    r = resolve(args, lengths=[4096])
    lengths = list(r.lengths)
    for n in lengths:
        check_int_option(r.label("seq_len"), n, 1, MAX_SEQ_LEN)
    if args.max_cores is not None:
        check_int_option("--max-cores", args.max_cores, 1, MAX_CORES)
    check_bandwidth(args.offchip_bytes_per_cycle)
    model = _workload(args, r)
    try:
        table = load_table(args.tech)
    except TableError as e:
        raise UsageError(f"--tech: {e}") from None
    try:
        cal = load_calibration(args.board, args.flows)
    except ExploreError as e:
        raise UsageError(str(e) if str(e).startswith("--flows") else f"--board: {e}") from None
    if args.plot and len(lengths) > MAX_PLOT_LENGTHS:
        raise UsageError(f"--plot draws a panel per N: at most {MAX_PLOT_LENGTHS} lengths, "
                         f"not {len(lengths)} ({r.label('seq_len')})")
    plot_path = output_plot(args)
    points = []
    for n in lengths:
        try:
            points += explore(model, n, cal, budget=args.resources, fmt=r.fmt,
                              head_schedule=args.head_schedule, max_cores=args.max_cores,
                              table=table, offchip_bytes_per_cycle=args.offchip_bytes_per_cycle)
        except ModelError as e:
            raise UsageError(f"{'--model' if args.model else 'the head'}: {e}") from None
        except ExploreError as e:
            raise UsageError(str(e) if len(lengths) == 1 else
                             f"at N = {n} ({r.label('seq_len')}): {e}") from None
    fit = ResourceModel.fit(cal)
    held = held_out_errors(cal)
    summary = {
        "model": model.name, "seq_lens": lengths, "board": cal.board,
        "budget": {**cal.available, **(args.resources or {})},
        "calibration": {"source": cal.source, "built": cal.built(), "points": list(cal.points),
                        "coefficients": fit.coef, "held_out": held},
        "points": points,
    }
    rows = [{**{k: v for k, v in p.items() if k != "energy_breakdown"},
             **{f"breakdown_{k}_j": v for k, v in p["energy_breakdown"].items()}}
            for p in points]
    print_report(args, "explore", {"csv": csv_text(rows),
                                   "json": json.dumps(summary, indent=1) + "\n"},
                 lambda: print_table(summary, show_all=args.all, resources=RESOURCES,
                                     table=table))
    if plot_path:
        if args.output is not None:
            make_folder(output_label(args), args.output)
        plot(summary, plot_path)
        print(f"wrote {plot_path}", file=sys.stderr if args.format != "table" else sys.stdout)
    return 0


def _workload(args: argparse.Namespace, r):
    """The model to explore: ``--model``'s (the options that describe a head refused beside
    it, as estimate refuses them), else the head (or head group) of the workload options
    (:func:`swatkit.sim.estimate.single_head`), within what the resource model is calibrated
    on (a token-band core: no global or sink rows, no dilation, no BigBird)."""
    from swatkit.cmd_estimate import _refuse_with_model
    from swatkit.options import core_params, refuse_sink_values
    from swatkit.sim.estimate import single_head
    from swatkit.sim.model_configs import ModelError, load_model

    refuse_sink_values(r)
    for key in r.hardware:   # (a config file's [hardware] table: explore sets the lanes)
        warn(f"{r.label(key)} is not used: explore enumerates the lanes and sizes the core "
             "for each N")
    if args.model:
        _refuse_with_model(r)
        if "sink_tokens" in r.sources:
            raise UsageError(f"{r.label('sink_tokens')} cannot be combined with --model in "
                             "explore (the resource model has no resident sink rows)")
        try:
            model = load_model(args.model)
        except ModelError as e:
            raise UsageError(f"--model: {e}") from None
        return model
    spec = r.spec
    for key, what in UNCALIBRATED.items():
        given = {"global_tokens": spec.global_tokens, "sink_tokens": spec.sink_tokens,
                 "dilation": spec.dilation > 1, "bigbird_block": spec.block_size}[key]
        if given:
            raise UsageError(f"{r.label(key)}: explore's resource model is calibrated on "
                             f"sliding-window cores without {what}; `swatkit estimate` "
                             "estimates it")
    return single_head(core_params(r, spec.seq_len, key_lanes=1, dim_lanes=1))


def _held_out_line(name: str, rows: list[dict]) -> str:
    if not rows:
        return f"{name}: too few measured points to hold one back"
    errs = [100 * (r["predicted"] - r["measured"]) / r["measured"] for r in rows]
    each = ", ".join(f"{r['key_lanes']}x{r['dim_lanes']} {e:+.1f}%"
                     for r, e in zip(rows, errs, strict=True))
    return f"{name}: worst {max(abs(e) for e in errs):.1f}% ({each})"


def print_table(summary: dict, *, show_all: bool, resources, table) -> None:
    from rich.console import Console
    from rich.table import Table

    from swatkit.cmd_estimate import _si

    budget = summary["budget"]
    shown_all = []
    for n in summary["seq_lens"]:   # a table and a front per N
        points = [p for p in summary["points"] if p["seq_len"] == n]
        shown = points if show_all else [p for p in points if p["pareto"]]
        shown_all += shown
        first = points[0]
        t = Table(title=f"{summary['model']} at N = {n} on {summary['board']} "
                        f"({', '.join(f'{k} {budget[k]}' for k in resources if k in budget)}); "
                        f"{first['head_schedule']} heads, energy table {first['tech']}")
        cols = ["KLxDL", "cores", "MACs/cycle", *resources, "util", "Fmax MHz", "latency",
                "energy", "pareto"]
        for c in cols:
            t.add_column(c, justify="left" if c in ("KLxDL", "pareto") else "right")
        for p in shown:
            t.add_row(f"{p['key_lanes']}x{p['dim_lanes']}", str(p["cores"]),
                      str(p["macs_per_cycle"]), *(str(p[k]) for k in resources),
                      f"{100 * p['utilisation']:.0f}%",
                      f"{p['fmax_mhz']:g}" + ("" if p["fmax_source"] == "measured" else "*"),
                      _si(p["latency_s"], "s"), _si(p["energy_j"], "J"),
                      "yes" if p["pareto"] else "")
        Console(width=160).print(t)
        front = sum(p["pareto"] for p in points)
        print(f"{len(points)} points fit; {front} on the Pareto front (latency, energy, "
              f"utilisation){'' if show_all else '; --all lists every point'}")
    shown = shown_all
    print("resources: as `swatkit flow` builds the core with its self-test; Fmax* = "
          + " | ".join(sorted({p["fmax_source"] for p in shown if p["fmax_source"] != "measured"}))
          if any(p["fmax_source"] != "measured" for p in shown) else
          "resources: as `swatkit flow` builds the core with its self-test")
    print("resource model, each measured point held back and predicted from the others:")
    for name, rows in summary["calibration"]["held_out"].items():
        print("  " + _held_out_line(name, rows))
    print(f"calibration: {summary['calibration']['built']}; {summary['calibration']['source']}")
    print(f"energy table {table.name}: {table.source}")


def plot(summary: dict, path: Path) -> None:
    """Latency against utilisation, coloured by energy, the Pareto front joined and labelled
    (KLxDLxcores): a panel per N."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from swatkit.cmd_estimate import save_figure

    lengths = summary["seq_lens"]
    fig, axes = plt.subplots(1, len(lengths), figsize=(7.5 * len(lengths), 5), squeeze=False)
    fronts = []
    for ax, n in zip(axes[0], lengths, strict=True):
        points = [p for p in summary["points"] if p["seq_len"] == n]
        sc = ax.scatter([100 * p["utilisation"] for p in points],
                        [p["latency_s"] for p in points],
                        c=[p["energy_j"] for p in points], cmap="viridis", s=22, alpha=0.8)
        front = sorted((p for p in points if p["pareto"]), key=lambda p: p["utilisation"])
        ax.plot([100 * p["utilisation"] for p in front], [p["latency_s"] for p in front], "r-",
                lw=1, label="Pareto front (latency, energy, utilisation)")
        ax.scatter([100 * p["utilisation"] for p in front], [p["latency_s"] for p in front],
                   facecolors="none", edgecolors="r", s=60)
        ax.set_yscale("log")
        ax.set(xlabel="utilisation of the most used resource (%)",
               ylabel="latency per model (s)",
               title=f"{summary['model']}, N = {n}, {summary['board']} (labels KLxDLxcores)")
        fig.colorbar(sc, ax=ax, label="energy per model (J)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8, loc="upper right")
        fronts.append((ax, front, points))
    fig.tight_layout()
    for ax, front, points in fronts:   # (placed once the layout is final)
        labels: dict[tuple, list[str]] = {}   # points at one place share a label
        for p in front:
            at = (round(100 * p["utilisation"], 1), p["latency_s"])
            labels.setdefault(at, []).append(f"{p['key_lanes']}x{p['dim_lanes']}x{p['cores']}")
        place_labels(ax, [(at, ", ".join(names)) for at, names in labels.items()],
                     [(100 * p["utilisation"], p["latency_s"]) for p in points])
    save_figure(fig, path)


# where a label may go from its point, in points: beside it first, then further out in rings
_DIRECTIONS = ((1, 1), (1, -1), (-1, 1), (-1, -1), (1, 0), (-1, 0), (0, 1), (0, -1))
_DISTANCES = (5, 12, 20, 30, 42, 56, 72)


def place_labels(ax, labels, obstacles, fontsize: float = 7) -> None:
    """Annotate each ``((x, y), text)`` of ``labels`` near its point where its text overlaps
    no other label, no marker of ``obstacles`` (data coordinates) and stays inside the axes:
    the nearest free place of a ring of positions around the point, with a leader line when
    it is not beside the point. A label with no free place within the rings takes the least
    crowded one."""
    from matplotlib.text import Text

    fig = ax.figure
    renderer = fig.canvas.get_renderer()
    scale = fig.dpi / 72
    inside = ax.get_window_extent(renderer)
    marks = [_box(*ax.transData.transform(xy), 3.5 * scale) for xy in obstacles]
    taken = []
    for xy, text in sorted(labels, key=lambda item: item[0]):
        best = None
        for distance in _DISTANCES:
            for dx, dy in _DIRECTIONS:
                note = ax.annotate(
                    text, xy, fontsize=fontsize, textcoords="offset points",
                    xytext=(dx * distance, dy * distance),
                    ha={1: "left", -1: "right", 0: "center"}[dx],
                    va={1: "bottom", -1: "top", 0: "center"}[dy],
                    arrowprops=(None if distance <= _DISTANCES[0] else
                                {"arrowstyle": "-", "color": "0.25", "lw": 0.7,
                                 "shrinkA": 0, "shrinkB": 3}))
                note.update_positions(renderer)
                box = Text.get_window_extent(note, renderer)   # the text, not its leader
                clash = sum(box.overlaps(b) for b in taken + marks) \
                    + 100 * (not inside.contains(box.x0, box.y0)
                             or not inside.contains(box.x1, box.y1))
                if best is None or clash < best[0]:
                    if best is not None:
                        best[1].remove()
                    best = (clash, note, box)
                else:
                    note.remove()
                if clash == 0:
                    break
            if best[0] == 0:
                break
        taken.append(best[2])


def _box(x: float, y: float, half: float):
    from matplotlib.transforms import Bbox

    return Bbox.from_extents(x - half, y - half, x + half, y + half)
