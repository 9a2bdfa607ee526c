"""``swatkit estimate --decode [T]``: per-token latency, energy and off-chip bytes of decode
steps (one new row per token against the last W keys), for the head group of the options or a
model's sliding layers, SWAT's resident ring against a decoder that re-reads the window from
off-chip per token (``reread``) and one that keeps the cache on chip but reads it per query head
(``onchip``); :func:`swatkit.sim.estimate.estimate_decode` is the model, docs/estimation.md
("Decode") its assumptions."""

from __future__ import annotations

import json

from swatkit.options import (
    UsageError,
    check_folder,
    core_params,
    limit_error,
    output_label,
    print_report,
    resolve,
)

__all__ = ["run_decode"]

MAX_DECODE_STEPS = 1 << 20


def _refuse_options(args) -> None:
    """Options --decode does not take (they describe the prefill estimate), and bad values."""
    if args.decode is None:
        raise UsageError(f"--onchip-bytes {args.onchip_bytes} needs --decode (the caches that "
                         "stay on chip between tokens)")
    if not 1 <= args.decode <= MAX_DECODE_STEPS:
        raise UsageError(f"--decode must be 1..{MAX_DECODE_STEPS} steps, not {args.decode}")
    if args.onchip_bytes is not None and args.onchip_bytes < 0:
        raise UsageError(f"--onchip-bytes must be a non-negative number of bytes, not "
                         f"{args.onchip_bytes}")
    for option, value, neutral in (("--from-flow", args.from_flow, None),
                                   ("--plot", args.plot, None),
                                   ("--head-schedule", args.head_schedule, None),
                                   ("--head-engines", args.head_engines, 1),
                                   ("--cores", args.cores, 1)):
        if value != neutral:
            raise UsageError(f"{option} cannot be combined with --decode (the decode estimate "
                             f"is one core running a layer's K/V head groups in turn)")


def _refuse_pattern(r) -> None:
    """A pattern the decode core cannot continue: one line naming the option that set it."""
    spec = r.spec

    def named(keys) -> str:
        given = [k for k in keys if r.sources.get(k) in ("option", "config")]
        return r.label(given[0]) if given else f"{r.label(keys[0])} (default)"

    if spec.block_size:
        raise UsageError(f"{named(('bigbird_block',))} cannot be combined with --decode "
                         f"(BigBird's last block attends keys a decode step has not seen)")
    if spec.global_tokens:
        raise UsageError(f"{named(('global_tokens',))} cannot be combined with --decode (a "
                         f"global row attends every key, later ones too)")
    if spec.after:
        raise UsageError(f"--decode needs a causal window (--causal --sliding-window W), not "
                         f"{spec.describe(pattern=False)} "
                         f"({named(('attention_window', 'sliding_window', 'causal'))})")


def run_decode(args) -> int:
    from swatkit.cmd_estimate import _clock_and_table, _refuse_with_model, parse_dataflows
    from swatkit.rtl import LimitError
    from swatkit.sim.estimate import DECODE_DATAFLOWS, Tiles, estimate_decode, single_head
    from swatkit.sim.model_configs import ModelError, load_model

    _refuse_options(args)
    r = resolve(args, lengths=[1024, 4096, 16384])
    if args.output is not None:
        check_folder(output_label(args), args.output)
    lengths = list(r.lengths)
    dataflows = parse_dataflows(args.dataflow, DECODE_DATAFLOWS,
                                what="--dataflow with --decode")
    if dataflows[0] != "swat":   # (the ratios are to SWAT)
        dataflows = ["swat"] + [d for d in dataflows if d != "swat"]
    try:
        tiles = Tiles(args.tile_q, args.tile_k)
    except ValueError as e:
        raise UsageError(f"--{str(e).replace('_', '-', 1)}") from None
    clock_mhz, source, table = _clock_and_table(args, None)
    longest = max(lengths) + args.decode
    if args.model:
        _refuse_with_model(r)
        try:
            model = load_model(args.model)
            if r.spec.sink_tokens:
                from swatkit.sim.estimate import _with_sink_tokens

                model = _with_sink_tokens(model, r.spec.sink_tokens)
        except (ModelError, ValueError) as e:
            raise UsageError(f"--model: {e}") from None
        option = "--model"
    else:
        _refuse_pattern(r)
        model = single_head(core_params(r, longest))
        option = "--decode"
    try:
        records = estimate_decode(
            model, lengths, args.decode, dataflows, fmt=r.fmt,
            key_lanes=r.hardware.get("key_lanes", 8), dim_lanes=r.hardware.get("dim_lanes", 8),
            clock_hz=clock_mhz * 1e6, table=table,
            offchip_bytes_per_cycle=args.offchip_bytes_per_cycle, tiles=tiles,
            onchip_bytes=args.onchip_bytes, clock_source=source,
            model_scope=bool(args.model))
    except LimitError as e:
        raise limit_error(e, r) from None
    except (ModelError, ValueError) as e:
        raise UsageError(f"{option}: {e}") from None
    print_report(args, "estimate", {"csv": _csv(records),
                                    "json": json.dumps(records, indent=1) + "\n"},
                 lambda: print_decode(records, model, table, clock_mhz, source,
                                      breakdown=args.breakdown))
    return 0


def _csv(records) -> str:
    from swatkit.cmd_estimate import csv_text

    return csv_text([{**{k: v for k, v in r.items() if k != "energy_breakdown"},
                      "layer_indices": " ".join(map(str, r["layer_indices"])),
                      **{f"breakdown_{k}_j": v for k, v in r["energy_breakdown"].items()}}
                     for r in records])


def _span(idx: list[int]) -> str:
    if len(idx) == 1:
        return str(idx[0])
    step = idx[1] - idx[0]
    if idx == list(range(idx[0], idx[-1] + 1, step)):
        return f"{idx[0]}-{idx[-1]}" + (f" step {step}" if step > 1 else "")
    return " ".join(map(str, idx))


def print_decode(records, model, table, clock_mhz, source, *, breakdown=False) -> None:
    from rich.console import Console
    from rich.table import Table

    from swatkit.cmd_estimate import _ratio, _si
    from swatkit.sim.estimate import COMPONENTS

    first = records[0]
    whole = model.layers > 1
    t = Table(title=f"decode: {model.name}, {model.heads} query heads on {model.kv_heads} K/V "
                    f"head{'s' if model.kv_heads > 1 else ''}, head_dim {model.head_dim}, "
                    f"{first['key_lanes']}x{first['dim_lanes']} lanes, {clock_mhz:g} MHz "
                    f"({source}), energy table {table.name}; per token, mean of "
                    f"{first['steps']} steps after a prefill of N rows")
    columns = ["dataflow", "N"] + (["layers"] if whole else []) + [
        "cache", "cycles", "cycles/ideal", "latency", "energy", "off-chip", "K/V off-chip",
        "lat/SWAT", "E/SWAT", "B/SWAT"] + ([f"E {c}" for c in COMPONENTS] if breakdown else [])
    for col in columns:
        t.add_column(col, justify="left" if col in ("dataflow", "layers", "cache") else "right")
    for r in records:
        if r["scope"] == "model":
            cache, layers = "", f"sliding ({len(r['layer_indices'])})"
        else:
            cache = "" if r["resident"] is None else "on chip" if r["resident"] else "off chip"
            idx = r["layer_indices"]
            span = _span(idx)
            short = span if ' ' not in span or 'step' in span else f'{idx[0]}…{idx[-1]}'
            layers = f"{short} ×{len(idx)}"
        row = [r["dataflow"], f"{r['seq_len']}"] + ([layers] if whole else []) + [
            cache, f"{r['cycles_per_token']:,.0f}",
            f"{r['cycles_per_token'] / r['ideal_cycles_per_token']:.3f}",
            _si(r["latency_per_token_s"], "s"), _si(r["energy_per_token_j"], "J"),
            _si(r["offchip_bytes_per_token"], "B"), _si(r["offchip_kv_bytes_per_token"], "B"),
            _ratio(r["latency_ratio_to_swat"]), _ratio(r["energy_ratio_to_swat"]),
            _ratio(r["offchip_bytes_ratio_to_swat"])]
        if breakdown:
            row += [_si(r["energy_breakdown"][c], "J") for c in COMPONENTS]
        t.add_row(*row)
    Console(width=240 if breakdown else 180).print(t)
    _print_notes(records, model)
    print(f"energy table {table.name}: {table.source}")


def _print_notes(records, model) -> None:
    """What the figures assume: the baselines, the caches' residency, the layers left out."""
    first = records[0]
    layers = [r for r in records if r["scope"] == "layer" and r["dataflow"] == "swat"
              and r["seq_len"] == first["seq_len"]]
    print("reread: the window's K/V read from off-chip every token, once per K/V head group, "
          "through a K/V tile buffer read per query head (FlashDecoding-style); onchip: the "
          "cache on chip (only the new K/V row from off-chip), read into the tile buffer per "
          "query head; both on the same MAC arrays and bandwidth, with no fill or drain. "
          "SWAT: the decode core's exact cycle model (sim/cycle_model.py, a continue of one "
          "row per step)")
    budget = first["onchip_bytes"]
    size = sum(r["cache_bytes"] * len(r["layer_indices"]) for r in layers)
    kept = sorted(i for r in layers if r["resident"] for i in r["layer_indices"])
    spilled = sorted(i for r in layers if not r["resident"] for i in r["layer_indices"])
    per = layers[0]["cache_bytes"]
    if budget is None:
        print(f"caches: {per:,} bytes per layer (window {first['window']}"
              f"{' + ' + str(first['sink_tokens']) + ' sinks' if first['sink_tokens'] else ''}"
              f" x head_dim x 2 x {model.kv_heads} K/V heads), {size:,} in all; no "
              f"--onchip-bytes: every cache assumed on chip")
    else:
        print(f"--onchip-bytes {budget:,}: caches of {per:,} bytes per layer, {size:,} in all; "
              f"on chip: {_span(kept) if kept else 'none'} ({len(kept)} layers, "
              f"{len(kept) * per:,} bytes)" + (
                  f"; not on chip: {_span(spilled)} ({len(spilled)} layers): SWAT re-reads "
                  f"their window's K/V from off-chip every token, as reread does (and so "
                  f"does onchip)"
                  if spilled else ""))
    full = model.layers - len(kept) - len(spilled)
    if full:
        print(f"not estimated: {full} full-attention layer{'s' if full > 1 else ''} (a full "
              f"layer's cache grows with the sequence; this estimate covers sliding layers)")
    if model.learned_sinks:
        print("learned sinks: one sink logit per query head, counted in every dataflow (per "
              "row one compare, one exp, one add)")
