"""Estimate cycles, latency and energy per sequence length, for one head or a whole model, SWAT
core against dense, FlashAttention-style and block-sparse baselines.

Cycles of the SWAT core come from its exact cycle model (validated against RTL simulation); the
baselines have the same MAC budget and off-chip bandwidth (docs/estimation.md lists their
assumptions). Energy = action counts x an energy table (`--tech`), by component.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import sys
from pathlib import Path

from swatkit.options import (
    DEFAULT_DECODE_STEPS,
    HEAD_KEYS,
    SPEC_KEYS,
    WINDOW_KEYS,
    UsageError,
    add_hardware_options,
    add_output_option,
    add_workload_options,
    check_bandwidth,
    check_folder,
    core_params,
    gather,
    limit_error,
    make_folder,
    output_label,
    parse_lengths,
    print_report,
    refuse_sink_values,
    resolve,
    warn,
    waste_warnings,
)
from swatkit.support.progress import progress

__all__ = ["add_arguments", "clock_from_flow", "flow_core", "flow_lengths", "flow_params",
           "plot_target", "run"]

DEFAULT_LENGTHS = [2 ** k for k in range(10, 17)]  # 1K … 64K

MAX_CLOCK_MHZ = 1e6


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_workload_options(parser, seq_len_type=parse_lengths, core_features=True,
                         seq_len_help="lengths: 1024,4096 or 1024:1048576:x2 "
                                      "(default 1024:65536:x2)")
    add_hardware_options(parser)
    m = parser.add_argument_group("model (instead of one head)")
    from swatkit.sim.model_configs import PRESETS

    m.add_argument("--model", metavar="NAME|PATH",
                   help=f"a Hugging Face config.json (file or folder) or a preset: "
                        f"{', '.join(PRESETS)}")
    m.add_argument("--head-schedule", choices=("serial", "gqa"),
                   help="gqa: the query heads of a K/V head against one pass of its K/V, each "
                        "K/V row fetched once for the group; serial: heads one after another, "
                        "K/V fetched per query head (default gqa for a model with fewer K/V "
                        "heads than query heads, else serial)")
    m.add_argument("--head-engines", type=int, default=1, metavar="E",
                   help="gqa: query heads side by side on E engines, each of the lanes given "
                        "(E divides the query heads per K/V head; default 1: the group's heads "
                        "one after another on the core the lanes describe)")
    m.add_argument("--cores", type=int, default=1, metavar="C",
                   help="cores sharing the off-chip bandwidth (default 1)")
    e = parser.add_argument_group("estimate")
    e.add_argument("--dataflow", metavar="LIST",
                   help="any of swat, dense, flash, blocksparse (default all four); with "
                        "--decode any of swat, reread, onchip (default all three)")
    e.add_argument("--tile-q", type=int, default=64, metavar="R",
                   help="flash/blocksparse: query rows per tile (default 64)")
    e.add_argument("--tile-k", type=int, default=64, metavar="C",
                   help="flash/blocksparse: key rows per tile (default 64)")
    clock = e.add_mutually_exclusive_group()
    clock.add_argument("--clock-mhz", type=float, metavar="F",
                       help="clock for latency (default 100)")
    clock.add_argument("--from-flow", type=Path, metavar="DIR/flow.json",
                       help="take the clock from the Fmax that `swatkit flow` measured (and the "
                            "core from that flow: a different core is refused)")
    e.add_argument("--tech", metavar="asic45|fpga|FILE.toml",
                   help="energy table (default asic45; with --from-flow fpga, the device the "
                        "flow built for)")
    e.add_argument("--offchip-bytes-per-cycle", type=float, default=16.0, metavar="B",
                   help="off-chip bandwidth (default 16)")
    e.add_argument("--breakdown", action="store_true",
                   help="energy by component (MACs, exp, reductions, buffers, off-chip, static) "
                        "in the table")
    e.add_argument("--format", choices=("table", "csv", "json"), default="table",
                   help="output format (default table)")
    dec = parser.add_argument_group("decode (issue 26: one new row per token)")
    dec.add_argument("--decode", type=int, nargs="?", const=DEFAULT_DECODE_STEPS, metavar="T",
                     help="per-token latency, energy and off-chip bytes of T decode steps "
                          f"(default {DEFAULT_DECODE_STEPS}) after a prefill of each "
                          "--seq-len, for the head group of the options or --model's sliding "
                          "layers, against reread (FlashDecoding-style: the window's K/V "
                          "from off-chip per token) and onchip (the cache on chip, read per "
                          "query head); a causal window")
    dec.add_argument("--onchip-bytes", type=int, metavar="B",
                     help="--decode: on-chip memory for the K/V caches (window x head_dim x 2 x "
                          "bytes per K/V head and layer): the layers, in order, whose caches "
                          "fit keep them; the others re-read their window from off-chip "
                          "(default: every cache on chip)")
    e.add_argument("--plot", type=Path, metavar="FILE.png",
                   help="write latency, energy, ratios to SWAT (log-log) and the energy "
                        "breakdown to an image (PNG, SVG, PDF, ... by its suffix; no suffix: "
                        ".png; a bare file name goes into the -o folder)")
    add_output_option(parser, "the report as estimate.txt (the table as printed, with "
                              "--format table), estimate.csv and estimate.json, and --plot's "
                              "image when --plot is a bare file name (default: none, the "
                              "report on standard output only)", group=e)


def energy_table_name(args) -> str:
    """``--tech``, else the table the clock's source implies: a flow's Fmax is an FPGA's, so
    ``fpga`` with ``--from-flow``; ``asic45`` otherwise."""
    if args.tech is not None:
        return args.tech
    return "fpga" if getattr(args, "from_flow", None) else "asic45"


def _read_flow(path: Path):
    """The checked report (:func:`swatkit.fpga_flows.report.read_report`)."""
    from swatkit.fpga_flows.report import ReportError, read_report

    try:
        return read_report(path)
    except ReportError as e:
        raise UsageError(f"--from-flow: {e}") from None


def clock_from_flow(path: Path, report=None) -> float:
    """The lowest achieved Fmax (MHz) in a `swatkit flow` report (a checked
    :class:`~swatkit.fpga_flows.report.FlowReport`, read from ``path`` if not given)."""
    report = _read_flow(path) if report is None else report
    if report.fmax_mhz is None:
        raise UsageError(f"--from-flow: {path} has no achieved fmax_mhz")
    return report.fmax_mhz


CORE_KEYS = ("head_dim", "window", "key_lanes", "dim_lanes", "data_bits")


def flow_core(path: Path, report) -> tuple[dict, str]:
    """The core a flow built: its ``core`` record (``swatkit flow`` writes one; checked), else
    the default configuration of its board (a report without one), with where it came from."""
    if report.core is not None:
        return dict(report.core), "its core record"
    from swatkit.fpga_flows import BOARDS

    board = BOARDS.get(report.board)
    if board is None:
        raise UsageError(f"--from-flow: {path} records neither its core nor a known board, so "
                         f"it cannot be checked against the core estimated here")
    d = board.defaults
    return ({"head_dim": d["head_dim"], "window": d["attention_window"] + 1,
             "key_lanes": d["key_lanes"], "dim_lanes": d["dim_lanes"],
             "data_bits": d.get("data_bits", 8)},
            f"the {board.name} default (it has no core record)")


def flow_params(path: Path, report):
    """The :class:`~swatkit.rtl.CoreParams` a flow built: from its ``spec``, ``format`` and
    ``hardware`` records (checked, and against its ``core`` record, by the reader), else (a
    flow.json of an earlier swatkit) its ``config`` tables; ``None`` for a report with neither
    (only a ``core`` record, or only a board)."""
    if report.params is not None:
        return report.params
    if report.raw.get("config") is None:
        return None
    try:
        r = resolve(argparse.Namespace(config=path))
        params = core_params(r, r.spec.seq_len)
    except UsageError as e:   # (the reader of --config names itself: the file is --from-flow)
        raise UsageError(f"--from-flow: {path} has a configuration that cannot be read: "
                         f"{str(e).removeprefix('--config: ')}") from None
    if report.core is not None:
        for key, mine in (("head_dim", params.spec.head_dim), ("window", params.window),
                          ("key_lanes", params.hw.key_lanes),
                          ("dim_lanes", params.hw.dim_lanes),
                          ("data_bits", params.fmt.data_bits)):
            if report.core[key] != mine:
                raise UsageError(f"--from-flow: {path}: its core record says {key} "
                                 f"{report.core[key]}, its config record {key} {mine}")
    return params


def _flow_layer(path: Path, given: dict, flow, with_model: bool) -> dict:
    """The flow's configuration as a layer of :func:`~swatkit.options.resolve` (each field the
    user did not give, ``given``: the keys of their options and --config, is the flow's); with
    --model, the format and the lanes only (the model sets the attention pattern)."""
    import dataclasses

    layer = {f.name: getattr(flow.fmt, f.name) for f in dataclasses.fields(flow.fmt)}
    layer.update(key_lanes=flow.hw.key_lanes, dim_lanes=flow.hw.dim_lanes)
    if not with_model:
        spec = flow.spec
        layer.update(head_dim=spec.head_dim, dilation=spec.dilation,
                     global_tokens=spec.global_tokens)
        # the flow's head group and sinks (only where it has them: a layer key is a given one)
        group = (("heads", flow.heads), ("kv_heads", flow.kv_heads),
                 ("sink_logits", flow.sink_logits), ("sink_tokens", spec.sink_tokens))
        layer.update({k: v for k, v in group if v not in (0, 1, False)})
        window_keys = [k for k in WINDOW_KEYS if k in given]
        # the flow's window, when the user gives none or only its kind (the same kind: its
        # size; the other kind has none here, and _check_flow names the difference)
        if window_keys in ([], ["causal"]) and given.get("causal", spec.after == 0) == (
                spec.after == 0):
            try:
                options = spec.as_options()
            except ValueError:
                raise UsageError(f"--from-flow: {path} built {spec.describe(pattern=False)}, "
                                 "which no option describes; estimate it with the Python "
                                 "API") from None
            layer.update({k: options[k] for k in WINDOW_KEYS if k in options})
    return layer


def _check_flow(path: Path, given: dict, r, flow) -> None:
    """Refuse a value the user gave that differs from the flow's: one line, the field and both
    values."""
    import dataclasses

    def refuse(flow_text, here_text, key):
        raise UsageError(f"--from-flow: {path} built {flow_text}, not {here_text} "
                         f"({r.label(key)})")

    spec = r.spec
    if "head_dim" in given and spec.head_dim != flow.spec.head_dim:
        refuse(f"head_dim {flow.spec.head_dim}", spec.head_dim, "head_dim")
    window = [k for k in ("attention_window", "sliding_window", "causal") if k in given]
    if window and (spec.before, spec.after) != (flow.spec.before, flow.spec.after):
        refuse(flow.spec.describe(pattern=False), spec.describe(pattern=False), window[0])
    if "dilation" in given and spec.dilation != flow.spec.dilation:
        refuse(f"dilation {flow.spec.dilation}", spec.dilation, "dilation")
    if "global_tokens" in given and tuple(spec.global_tokens) != tuple(flow.spec.global_tokens):
        refuse(f"global_tokens {list(flow.spec.global_tokens)}", list(spec.global_tokens),
               "global_tokens")
    for f in dataclasses.fields(flow.fmt):
        mine, theirs = getattr(r.fmt, f.name), getattr(flow.fmt, f.name)
        if f.name in given and mine != theirs:
            refuse(f"{f.name} {theirs:g}", f"{mine:g}", f.name)
    for key in ("key_lanes", "dim_lanes"):
        theirs = getattr(flow.hw, key)
        if key in given and r.hardware.get(key) != theirs:
            refuse(f"{key} {theirs}", r.hardware.get(key), key)
    longest = max(r.lengths)
    if longest > flow.hw.max_seq_len:
        refuse(f"a core for up to {flow.hw.max_seq_len} rows (max_seq_len)",
               f"seq_len {longest}", "seq_len")


def _check_model_against_flow(path: Path, model, lengths, flow) -> None:
    """With --model: the model's head_dim and every window must be the flow's."""
    if model.head_dim != flow.spec.head_dim:
        raise UsageError(f"--from-flow: {path} built head_dim {flow.spec.head_dim}, not "
                         f"{model.head_dim} (--model {model.name})")

    for pattern in model.patterns:
        if pattern.kind == "full":
            continue
        spec = pattern.spec(max(lengths), model.head_dim)
        fields = ("before", "after", "dilation", "block_size", "num_random_blocks")
        if any(getattr(spec, k) != getattr(flow.spec, k) for k in fields):
            raise UsageError(f"--from-flow: {path} built {flow.spec.describe(pattern=False)}, "
                             f"not {spec.describe(pattern=False)} (--model {model.name})")


def flow_lengths(max_seq_len: int) -> list[int]:
    """The default lengths of an estimate of a flow's core: those of :data:`DEFAULT_LENGTHS`
    its counters take, and its ``max_seq_len``."""
    return [n for n in DEFAULT_LENGTHS if n < max_seq_len] + [max_seq_len]


def _describe_core(c: dict) -> str:
    return (f"head_dim {c['head_dim']}, window {c['window']}, {c['key_lanes']}x{c['dim_lanes']} "
            f"lanes, data_bits {c['data_bits']}")


def _flow_core_layer(args, path: Path, core: dict) -> dict:
    """The core record of a flow (an earlier swatkit's) as a layer of
    :func:`~swatkit.options.resolve`: each core field the user does not give is the flow's (no
    layer with --config or --model, which define the core themselves); its window from the
    ``swatkit.json`` beside it, unless the command line gives a window."""
    if args.model or args.config:
        return {}
    layer = {key: core[key] for key in ("head_dim", "key_lanes", "dim_lanes", "data_bits")}
    if any(getattr(args, k, None) is not None
           for k in ("attention_window", "causal", "sliding_window")):
        return layer
    from swatkit.fpga_flows.report import ReportError, check_count, read_side_record

    before = after = None
    spec_file = path.parent / "swatkit.json"   # written beside flow.json by `swatkit flow`
    try:
        spec = read_side_record(spec_file).get("spec", {})
        if "before" in spec or "after" in spec:
            before = check_count(f"{spec_file}: spec before", spec.get("before"), 0)
            after = check_count(f"{spec_file}: spec after", spec.get("after"), 0)
    except ReportError as e:
        raise UsageError(f"--from-flow: {e}") from None
    if after == 0 and before is not None and before + 1 == core["window"]:
        layer.update(causal=True, sliding_window=core["window"])
    elif core["window"] % 2 and core["window"] > 1:
        layer["attention_window"] = core["window"] - 1
    return layer


def _estimate_core(args, r, lengths: list[int], dataflows: list[str], flow, common: dict):
    """The estimate of the core the options describe (no ``--model``): one head, or one
    layer's head groups (``--heads``/``--kv-heads``, each group a run of that core). Returns
    the model of a grouped layer (else None), the core's record for ``--from-flow`` and the
    records."""
    from swatkit.sim.estimate import check_head_engines, estimate, single_head

    refuse_sink_values(r)   # (no cycle or action depends on the values)
    params = core_params(r, max(lengths) if flow is None else flow.hw.max_seq_len)
    model = single_head(params) if params.heads > 1 else None
    short = [n for n in lengths if n < params.spec.sink_tokens]
    if short:   # (every length of the sweep holds the sinks, as the longest does)
        raise UsageError(f"{r.label('sink_tokens')} {params.spec.sink_tokens} is beyond "
                         f"{r.label('seq_len')} {short[0]} (every length must hold the "
                         f"sinks)")
    estimated = [{"head_dim": params.spec.head_dim, "window": params.window,
                  "key_lanes": params.hw.key_lanes, "dim_lanes": params.hw.dim_lanes,
                  "data_bits": params.fmt.data_bits}]
    for line in waste_warnings(r, params):
        warn(line)
    if params.group_heads == 1 and args.head_engines != 1:
        raise UsageError(f"--head-engines {args.head_engines} needs --model or --heads (one "
                         f"head has no K/V group)")
    try:
        check_head_engines(args.head_engines, params.group_heads,
                           args.head_schedule or ("gqa" if params.group_heads > 1
                                                  else "serial"),
                           ("--head-engines", "--head-schedule"))
    except ValueError as e:
        raise UsageError(f"{e} ({r.label('heads')} {params.heads} on "
                         f"{r.label('kv_heads')} {params.kv_heads})") from None
    with progress(f"estimating {len(lengths)} lengths up to N = {max(lengths):,}"):
        records = estimate(params, lengths, dataflows, cores=args.cores,
                           head_schedule=args.head_schedule,
                           head_engines=args.head_engines, **common)
    return model, estimated, records


def _refuse_with_model(r) -> None:
    """The options --model sets itself (the pattern, head_dim and heads), refused when given;
    StreamingLLM's sinks (``sink_tokens``) are added to its sliding layers."""
    given = [k for k in SPEC_KEYS
             if k not in ("seq_len", "sink_tokens") and r.sources.get(k) in ("option",
                                                                              "config")]
    if given:
        what = ("its query and K/V heads and learned sinks" if given[0] in HEAD_KEYS
                else "the attention pattern and head_dim")
        raise UsageError(f"{r.label(given[0])} cannot be combined with --model (the model "
                         f"sets {what})")


def _clock_and_table(args, report) -> tuple:
    """The clock (MHz) and where it came from (``report``: a flow's), and the energy table;
    the bandwidth checked."""
    from swatkit.sim.estimate import TableError, load_table

    if report is not None:
        clock_mhz, source = clock_from_flow(args.from_flow, report), f"fmax from {args.from_flow}"
    else:
        clock_mhz = 100.0 if args.clock_mhz is None else args.clock_mhz
        source = "--clock-mhz" if args.clock_mhz is not None else "default 100 MHz"
    if not (clock_mhz > 0 and math.isfinite(clock_mhz)):
        raise UsageError(f"--clock-mhz must be positive and finite, not {clock_mhz:g}")
    if clock_mhz > MAX_CLOCK_MHZ:  # (a clock in Hz must stay finite, a latency non-zero)
        raise UsageError(f"--clock-mhz must be at most {MAX_CLOCK_MHZ:g} (1 THz), not "
                         f"{clock_mhz:g}")
    check_bandwidth(args.offchip_bytes_per_cycle)
    try:
        table = load_table(energy_table_name(args))
    except TableError as e:
        raise UsageError(f"--tech: {e}") from None
    return clock_mhz, source, table


def parse_dataflows(text: str | None, allowed, *, what: str = "--dataflow") -> list[str]:
    """``--dataflow``'s comma-separated names (``None``: all of ``allowed``), each once, in
    the order given; a name outside ``allowed``, or none, is refused in one line."""
    dataflows = [d.strip() for d in (text or ",".join(allowed)).split(",") if d.strip()]
    for d in dataflows:
        if d not in allowed:
            raise UsageError(f"{what} must be a subset of {', '.join(allowed)}, not {d!r}")
    if not dataflows:
        raise UsageError("--dataflow must name at least one dataflow")
    return list(dict.fromkeys(dataflows))

def run(args: argparse.Namespace) -> int:
    from swatkit.rtl import LimitError
    from swatkit.sim.estimate import (
        DATAFLOWS,
        Tiles,
        check_cores,
        check_head_engines,
        default_head_schedule,
        estimate_model,
    )
    from swatkit.sim.model_configs import ModelError, load_model

    if args.decode is not None or args.onchip_bytes is not None:
        from swatkit.cmd_estimate_decode import run_decode

        return run_decode(args)
    report = core = flow = mine = None
    defaults, layer = DEFAULT_LENGTHS, None
    if args.from_flow:
        report = _read_flow(args.from_flow)
        flow = flow_params(args.from_flow, report)
        if flow is None:  # a flow.json of an earlier swatkit: its core record only
            core, core_source = flow_core(args.from_flow, report)
            layer = _flow_core_layer(args, args.from_flow, core)
        else:
            defaults = flow_lengths(flow.hw.max_seq_len)
            mine = gather(args)
            # what the user gave (options, --config); "causal": the kind of window they chose
            given = {k: mine.values[k] is True if k == "causal" else None
                     for k in mine.sources if k != "seq_len"}
            layer = _flow_layer(args.from_flow, given, flow, with_model=bool(args.model))
    r = resolve(args, lengths=defaults, defaults=layer, given=mine)
    if flow is not None:
        _check_flow(args.from_flow, given if not args.model else
                    {k: v for k, v in given.items() if k not in SPEC_KEYS}, r, flow)
    lengths = list(r.lengths)
    tokens = r.spec.global_tokens
    short = [n for n in lengths if tokens and tokens[-1] >= n]
    if short:   # (the spec holds the longest; every length of the sweep must hold them too)
        raise UsageError(f"{r.label('global_tokens')}: global token {tokens[-1]} is outside "
                         f"0..{short[0] - 1} for {r.label('seq_len')} {short[0]} (every "
                         f"length must exceed each global-token position)")
    dataflows = parse_dataflows(args.dataflow, DATAFLOWS)
    try:
        check_cores(args.cores)
    except ValueError as e:
        raise UsageError(f"--{e}") from None
    try:
        tiles = Tiles(args.tile_q, args.tile_k)
    except ValueError as e:
        raise UsageError(f"--{str(e).replace('_', '-', 1)}") from None
    clock_mhz, source, table = _clock_and_table(args, report)
    plot_path = output_plot(args)
    common = {"clock_hz": clock_mhz * 1e6, "table": table, "tiles": tiles,
              "offchip_bytes_per_cycle": args.offchip_bytes_per_cycle, "clock_source": source}
    if args.model:
        _refuse_with_model(r)
        try:
            model = load_model(args.model)
        except ModelError as e:
            raise UsageError(f"--model: {e}") from None
        for line in model.warnings:
            warn(f"--model: {line}")
        if flow is not None:
            _check_model_against_flow(args.from_flow, model, lengths, flow)
        try:
            check_head_engines(args.head_engines, model.group,
                               args.head_schedule or default_head_schedule(model),
                               ("--head-engines", "--head-schedule"))
        except ValueError as e:
            raise UsageError(f"{e} (--model {model.name})") from None
        hw = {"key_lanes": 8, "dim_lanes": 8, **r.hardware}
        windows = {p.spec(max(lengths), model.head_dim).window
                   for p in model.patterns if p.kind != "full"}
        estimated = [{"head_dim": model.head_dim, "window": w, "key_lanes": hw["key_lanes"],
                      "dim_lanes": hw["dim_lanes"], "data_bits": r.fmt.data_bits}
                     for w in sorted(windows)]
        try:
            with progress(f"estimating {model.name} at {len(lengths)} lengths"):
                records = estimate_model(model, lengths, dataflows, fmt=r.fmt, **hw,
                                         head_schedule=args.head_schedule,
                                         head_engines=args.head_engines, cores=args.cores,
                                         sink_tokens=r.spec.sink_tokens, **common)
        except LimitError as e:
            raise limit_error(e, r) from None
        except (ModelError, TypeError, ValueError) as e:
            raise UsageError(f"--model: {e}") from None
    else:
        model, estimated, records = _estimate_core(args, r, lengths, dataflows, flow, common)
    if core is not None:
        for c in estimated:
            if c != core:
                raise UsageError(f"--from-flow: {args.from_flow} built {_describe_core(core)} "
                                 f"({core_source}), not the core estimated here "
                                 f"({_describe_core(c)})")
        warn(f"--from-flow: {args.from_flow} has no configuration record (an earlier swatkit "
             "wrote it): only its head_dim, window, lanes and data_bits were taken and checked")
    print_report(args, "estimate", {"csv": csv_text([_flat(rec) for rec in records]),
                                    "json": json.dumps(records, indent=1) + "\n"},
                 lambda: print_table(records, table, clock_mhz, source, model,
                                     breakdown=args.breakdown))
    if plot_path:
        if args.output is not None:
            make_folder(output_label(args), args.output)
        plot(records, plot_path, table.name, clock_mhz, model)
        print(f"wrote {plot_path}", file=sys.stderr if args.format != "table" else sys.stdout)
    return 0


def csv_text(rows: list[dict]) -> str:
    """``rows`` as CSV with a header: every key of any row, in the order they first come."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(dict.fromkeys(k for x in rows for k in x)))
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def output_plot(args) -> Path | None:
    """``--plot``'s file (:func:`plot_target`; ``None`` without it): a bare file name goes
    into the ``-o`` folder; ``-o`` checked too (:func:`~swatkit.options.check_folder`). Both
    before any work."""
    if args.output is not None:
        check_folder(output_label(args), args.output)
    if not args.plot:
        return None
    bare = args.output is not None and args.plot.name == str(args.plot)
    return plot_target(args.output / args.plot if bare else args.plot,
                       made=args.output if bare else None)


def plot_target(path: Path, made: Path | None = None) -> Path:
    """The file ``--plot`` writes: its suffix names a format matplotlib writes (none: .png),
    and its folder exists (or is ``made``, the -o folder, made before the figure is written).
    Checked before any work."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise UsageError("--plot needs matplotlib: pip install 'swatkit[plots]'") from None
    if path.name in ("", ".", ".."):
        raise UsageError(f"--plot needs a file name, not {str(path)!r}")
    if not path.suffix:
        path = path.with_name(path.name + ".png")
    kinds = FigureCanvasAgg(Figure()).get_supported_filetypes()
    if path.suffix[1:].lower() not in kinds:
        raise UsageError(f"--plot: cannot write {path.suffix} files ({path}); use one of "
                         f"{', '.join('.' + k for k in sorted(kinds))}")
    folder = path.parent
    if not folder.is_dir() and folder != made:
        raise UsageError(f"--plot: no such folder: {folder} (for {path})")
    return path


def _flat(rec: dict) -> dict:
    """A record for CSV: the breakdown as ``breakdown_<component>_j`` columns, layers as A-B."""
    out = {k: v for k, v in rec.items() if k != "energy_breakdown"}
    idx = rec["layer_indices"]
    out["layer_indices"] = f"{idx[0]}-{idx[-1]}" if idx == list(range(idx[0], idx[-1] + 1)) \
        else " ".join(map(str, idx))
    out.update({f"breakdown_{k}_j": v for k, v in rec["energy_breakdown"].items()})
    return out


def _layers(rec: dict) -> str:
    idx = rec["layer_indices"]
    if rec["scope"] == "model":
        return f"model ({rec['layers']})"
    span = f"{idx[0]}" if len(idx) == 1 else (
        f"{idx[0]}-{idx[-1]}" if idx == list(range(idx[0], idx[-1] + 1)) else f"{len(idx)} layers")
    return f"{span} ×{len(idx)}"


def _title(records, clock_mhz, source, table, model) -> str:
    first = records[0]
    lanes = f"{first['key_lanes']}x{first['dim_lanes']} lanes"
    if model is None:
        return (f"{first['layer_pattern']}, head_dim {first['head_dim']}, {lanes}"
                f"{'' if first['cores'] == 1 else ', ' + str(first['cores']) + ' cores'}, "
                f"{clock_mhz:g} MHz ({source}), energy table {table.name}")
    patterns = ", ".join(dict.fromkeys(r["layer_pattern"] for r in records
                                       if r["scope"] == "layer"))
    engines = first["head_engines"]
    schedule = (f"{first['head_schedule']} heads"
                + (f" on {engines} head engines" if engines > 1 else ""))
    return (f"{model.name}: {model.layers} layers, {model.heads} heads ({model.kv_heads} K/V), "
            f"head_dim {model.head_dim}, {patterns}; {schedule}, "
            f"{first['cores']} core{'s' if first['cores'] > 1 else ''} of {lanes}, "
            f"{clock_mhz:g} MHz ({source}), energy table {table.name}")


def print_table(records, table, clock_mhz, source, model=None, *, breakdown=False) -> None:
    from rich.console import Console
    from rich.table import Table

    from swatkit.sim.estimate import COMPONENTS

    t = Table(title=_title(records, clock_mhz, source, table, model))
    columns = ["dataflow", "N"]
    layered = model is not None and model.layers > 1
    if layered:
        columns += ["layers"]
    columns += ["cycles", "cycles/ideal", "latency", "energy", "MACs", "off-chip",
                "lat/SWAT", "E/SWAT"]
    glob = any(r.get("global_tokens") for r in records)
    if glob:   # the pattern's pairs, and what the global rows' pass costs
        columns += ["pairs", "global MACs", "global off-chip", "global E"]
    blocks = any(r.get("block_size") for r in records)
    if blocks:   # BigBird: the random blocks' K/V fetches; bytes per output against the band
        columns += ["random K/V", "B/out", "band B/out"]
    grouped = model is not None and model.group > 1
    if grouped:   # GQA: the K/V bytes, and how many times each K/V row comes from off-chip
        columns += ["K/V off-chip", "K/V reads"]
    if breakdown:
        columns += [f"E {c}" for c in COMPONENTS]
    for col in columns:
        t.add_column(col, justify="left" if col in ("dataflow", "layers") else "right")
    for r in records:
        name = r["dataflow"]
        if r["computed_as"] != r["dataflow"] and r["scope"] == "layer":
            name += f" ({r['computed_as']}: full layer)"
        row = [name, f"{r['seq_len']}"]
        if layered:
            row.append(_layers(r))
        row += [f"{r['cycles']:,}", f"{r['cycles'] / r['ideal_cycles']:.3f}",
                _si(r["latency_s"], "s"), _si(r["energy_j"], "J"), f"{r['macs']:.3g}",
                _si(r["offchip_bytes"], "B"), _ratio(r["latency_ratio_to_swat"]),
                _ratio(r["energy_ratio_to_swat"])]
        if glob:
            row += [f"{r['pairs']:.4g}", f"{r['global_pass_macs']:.3g}",
                    _si(r["global_pass_offchip_bytes"], "B"), _si(r["global_pass_energy_j"], "J")]
        if blocks:
            band = r.get("plain_window_offchip_bytes_per_output")
            row += [_si(r["offchip_random_kv_read_bytes"], "B")
                    if r["computed_as"] == "swat" else "–",
                    _bytes_per_output(r["offchip_bytes_per_output"]),
                    "–" if band is None else _bytes_per_output(band)]
        if grouped:
            row += [_si(r["offchip_kv_read_bytes"], "B"), f"{r['kv_fetches']:.3g}"]
        if breakdown:
            row += [_si(r["energy_breakdown"][c], "J") for c in COMPONENTS]
        t.add_row(*row)
    Console(width=240 if breakdown or glob or blocks or grouped else 160).print(t)
    scope = "model" if any(r["scope"] == "model" for r in records) else "layer"
    for n in sorted({r["seq_len"] for r in records}):
        parts = [f"{r['dataflow']}/SWAT latency {r['latency_ratio_to_swat']:.1f}x, "
                 f"energy {r['energy_ratio_to_swat']:.1f}x" for r in records
                 if r["seq_len"] == n and r["scope"] == scope and r["dataflow"] != "swat"
                 and r["latency_ratio_to_swat"] is not None]
        if parts:
            print(f"N={n}: " + "; ".join(parts))
    if blocks:
        windows = sorted({r["plain_window"] for r in records if r.get("plain_window")})
        print("random K/V: off-chip bytes of the random blocks' K/V rows (SWAT: the kvr stream, "
              "fetched per query block; the baselines fetch K/V by tile). B/out: off-chip bytes "
              "per output element; band B/out: the same dataflow on the plain window of as many "
              f"keys per row (attention_window {', '.join(map(str, windows))})")
    if grouped:
        first = records[0]
        how = (f"gqa: each K/V row fetched once for the {model.group} query heads of its group, "
               f"on {first['head_engines']} engine{'s' if first['head_engines'] > 1 else ''}"
               if first["head_schedule"] == "gqa" else "serial: K/V fetched per query head")
        print(f"K/V off-chip: bytes of K and V read from off-chip; K/V reads: those bytes over "
              f"the K and V of the layers ({model.kv_heads} K/V head"
              f"{'s' if model.kv_heads > 1 else ''} of N rows, once). SWAT {how}; the "
              f"baselines re-read K/V per query head (and per query tile)")
    if model is not None:
        if model.learned_sinks:
            print("learned sinks: one sink logit per query head, counted in every dataflow "
                  "(per row one compare, one exp, one add; no cycles)")
        if model.note:
            print(f"not modelled: {model.note}")
        if model.max_positions and max(r["seq_len"] for r in records) > model.max_positions:
            print(f"note: {model.name} was trained for up to {model.max_positions} positions")
        print(f"model values: {model.source}")
    print(f"energy table {table.name}: {table.source}")


def _bytes_per_output(x: float) -> str:
    return f"{x:,.0f}" if x >= 1000 else f"{x:.3g}"


def _ratio(x: float | None) -> str:
    return "–" if x is None else f"{x:.2f}"


def _si(value: float, unit: str) -> str:
    for factor, prefix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k"), (1, ""),
                           (1e-3, "m"), (1e-6, "µ"), (1e-9, "n"), (1e-12, "p")):
        if abs(value) >= factor:
            return f"{value / factor:.3g} {prefix}{unit}"
    return f"{value:.3g} {unit}"


def plot(records, path: Path, tech: str, clock_mhz: float, model=None) -> None:
    """Latency, energy and the ratio of each baseline to SWAT vs N (log-log, x ticks at the
    lengths estimated), and the energy by component at the largest N."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FixedLocator, NullLocator

    from swatkit.sim.estimate import COMPONENTS

    scope = "model" if any(r["scope"] == "model" for r in records) else "layer"
    rows = [r for r in records if r["scope"] == scope]
    lengths = sorted({r["seq_len"] for r in rows})
    fig, axes = plt.subplots(1, 4, figsize=(19, 4.4))
    ax_t, ax_e, ax_r, ax_b = axes
    flows = list(dict.fromkeys(r["dataflow"] for r in rows))
    for i, dataflow in enumerate(flows):
        mine = [r for r in rows if r["dataflow"] == dataflow]
        n = [r["seq_len"] for r in mine]
        style = _line_style(i, len(flows))
        line = ax_t.loglog(n, [r["latency_s"] for r in mine], label=dataflow, **style)[0]
        ax_e.loglog(n, [r["energy_j"] for r in mine], label=dataflow, **style)
        if dataflow != "swat" and mine[0]["latency_ratio_to_swat"] is not None:
            ax_r.loglog(n, [r["latency_ratio_to_swat"] for r in mine],
                        color=line.get_color(), label=f"{dataflow} latency", **style)
            ax_r.loglog(n, [r["energy_ratio_to_swat"] for r in mine],
                        color=line.get_color(), label=f"{dataflow} energy",
                        **{**style, "marker": "s", "linestyle": "--"})
    per = "per model" if model is not None else "per head"
    ax_t.set(ylabel=f"latency (s) at {clock_mhz:g} MHz", title=f"latency {per}")
    ax_e.set(ylabel=f"energy (J), table {tech}", title=f"energy {per}")
    ax_r.set(ylabel="baseline / SWAT", title="ratio to SWAT")
    ax_r.axhline(1.0, color="grey", lw=0.8)
    for ax in (ax_t, ax_e, ax_r):
        ax.set_xlabel("sequence length N")
        ax.xaxis.set_major_locator(FixedLocator(lengths))
        ax.xaxis.set_minor_locator(NullLocator())
        ax.set_xticklabels([f"{n // 1024}K" if n % 1024 == 0 else str(n) for n in lengths],
                           rotation=45)
        ax.grid(True, which="both", alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    largest = [r for r in rows if r["seq_len"] == lengths[-1]]
    bottom = [0.0] * len(largest)
    names = [r["dataflow"] for r in largest]
    for c in COMPONENTS:
        shares = [100 * r["energy_breakdown"][c] / r["energy_j"] for r in largest]
        ax_b.bar(names, shares, bottom=bottom, label=c)
        bottom = [b + v for b, v in zip(bottom, shares, strict=True)]
    for i, r in enumerate(largest):
        ax_b.text(i, 101, _si(r["energy_j"], "J"), ha="center", va="bottom", fontsize=8)
    ax_b.set(ylabel="share of energy (%)", ylim=(0, 112),
             title=f"energy by component, N = {lengths[-1]}")
    ax_b.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))  # beside the bars
    first = rows[0]
    if model is not None:
        patterns = dict.fromkeys(r["layer_pattern"] for r in records if r["scope"] == "layer")
        what = (f"{model.name}: {', '.join(patterns)}, {model.heads} heads "
                f"({model.kv_heads} K/V), head_dim {model.head_dim}, "
                f"{first['head_schedule']}, {first['cores']} core(s)")
    else:
        what = f"{first['layer_pattern']}, head_dim {first['head_dim']}"
    fig.suptitle(f"{what}; {first['key_lanes']}x{first['dim_lanes']} lanes")
    save_figure(fig, path)


def _line_style(index: int, count: int) -> dict:
    """The style of the ``index``-th of ``count`` series in one panel: the first drawn widest,
    with the largest hollow markers, each later one narrower and above it, so that series
    that coincide (SWAT and blocksparse do at a band's N) stay visible one inside the
    other."""
    width = 1.0 + 2.4 * (count - 1 - index) / max(count - 1, 1)
    return {"marker": "o", "linestyle": "-", "linewidth": width, "markersize": 3 + 2.2 * width,
            "markerfacecolor": "none", "markeredgewidth": 1.3, "zorder": 2 + index}


def save_figure(fig, path: Path) -> None:
    """Write a figure for ``--plot`` (a write error is a usage error) and close it."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    try:
        fig.savefig(path, dpi=110)
    except OSError as e:
        raise UsageError(f"--plot: cannot write {path}: {e.strerror}") from None
    finally:
        plt.close(fig)
