"""Run the cocotb + Verilator regression of the generated Verilog against the golden model.

Each case generates the Verilog that `swatkit generate` writes, wraps it in the HDL harness (row
sources and sink with LFSR-driven valid gaps and ready stalls), compiles it with Verilator (cached
per configuration), runs it under cocotb and compares every output row bit for bit with the
fixed-point golden model. With no configuration option it runs the fast matrix (`--full`: the
whole matrix); with any of the shared options, `--dsp`, `--seq-len`, `--inputs`, `--gap`,
`--stall` or `--runs` it verifies that one configuration instead. Exit code 0 if every case
passed, 1 if any failed, 2 on a bad option.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import secrets
import time
from pathlib import Path

from swatkit.options import (
    DEFAULT_DECODE_STEPS,
    DEFAULT_SEQ_LEN,
    MAX_REGRESS_ROWS,
    MAX_RUNS,
    MAX_SEED,
    MAX_WORKERS,
    SpelledAction,
    UsageError,
    add_hardware_options,
    add_output_option,
    add_workload_options,
    check_folder,
    check_int_option,
    check_output_file,
    check_sink_values,
    connect_scheduler,
    core_params,
    make_folder,
    output_label,
    parse_lengths,
    resolve,
    spelled,
)

__all__ = ["add_arguments", "matrix", "own_cases", "run", "shipped_builds"]

# options that say how the cases run, not which cases there are; every other option (the
# shared workload and hardware options, --dsp, --inputs, --gap, --stall, --runs) describes a
# configuration of the user's, whose cases run instead of the matrix
RUN_OPTIONS = ("fast", "full", "keyword", "workers", "scheduler", "seed", "waves",
               "waves_format", "waves_window", "build_dir", "junitxml", "json", "output")


def _kinds(text: str) -> tuple[str, ...]:
    return tuple(t.strip() for t in text.split(","))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from swatkit.rtl.units import DSP_TARGETS

    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--fast", action="store_true",
                      help="the fast matrix (the default; what CI runs)")
    mode.add_argument("--full", action="store_true",
                      help="the whole matrix (the fast one and the slow cases)")
    add_workload_options(parser, core_features=True, decode=True, seq_len_type=parse_lengths,
                         seq_len_help="with a configuration: lengths, a case each: 600,4096 "
                                      "or 1024:4096:x2 (default: [spec] seq_len, else "
                                      f"{DEFAULT_SEQ_LEN}); the core is built for the largest")
    add_hardware_options(parser)
    parser.add_argument("--dsp", choices=DSP_TARGETS, default=None,
                        help="multipliers as generic logic (default) or ECP5 MULT18X18D blocks")
    own = parser.add_argument_group("your configuration's cases")
    own.add_argument("--inputs", metavar="KIND[,KIND...]", type=_kinds,
                     help="input patterns (default random): one case per kind and N")
    own.add_argument("--gap", metavar="P", type=float,
                     help="probability of an idle cycle before an input beat (default 0)")
    own.add_argument("--stall", metavar="P", type=float,
                     help="probability that the output's ready is low in a cycle (default 0)")
    own.add_argument("--decode", metavar="T", type=int, nargs="?", const=DEFAULT_DECODE_STEPS,
                     help=f"decode: after a prefill of --seq-len rows, T decode steps (default "
                          f"{DEFAULT_DECODE_STEPS}, as estimate --decode), each a "
                          "run that continues the sequence by one row with the K/V ring kept "
                          "on chip (a core generated with --contexts, 1 unless given; a causal "
                          "window without global tokens); with --contexts C > 1, C sequences "
                          "of their own inputs, their prefills and steps interleaved")
    own.add_argument("--runs", metavar="R", type=int,
                     help="runs of N rows back to back in each case (default 1)")
    parser.add_argument("-k", metavar="EXPR", dest="keyword",
                        help="only the cases whose id contains EXPR (a substring such as "
                             "bi9_k2d4/edges; several separated by commas); a case's whole "
                             "id selects that case alone")
    parser.add_argument("-n", "-j", "--workers", "--jobs", dest="workers", metavar="N",
                        type=int, action=SpelledAction,
                        help="parallel simulations in local processes (default: the number of "
                             "CPUs; 0 runs in this process); -j/--jobs as in flow and prove")
    parser.add_argument("--scheduler", metavar="ADDRESS",
                        help="run the cases on the workers of this Dask distributed scheduler "
                             "(e.g. tcp://host:8786; pip install 'swatkit[dask]'); each worker "
                             "builds in its own cache (--build-dir, else its default)")
    parser.add_argument("--seed", metavar="S", type=int,
                        help="seed of the inputs, gaps and stalls (default: a fresh one, "
                             "printed)")
    from swatkit.sim.regress import WAVE_FORMATS

    waves = parser.add_argument_group("waves (for debugging a case)")
    waves.add_argument("--waves", nargs="?", const=True, metavar="DIR", type=Path,
                       help="record a trace of every case into DIR (default: the -o folder, "
                            "else the working folder), named <case>.seed<S>.fst; traced "
                            "builds are cached apart")
    waves.add_argument("--waves-format", choices=WAVE_FORMATS,
                       help="fst (the default where the lz4 headers are installed: Debian "
                            "liblz4-dev) or vcd")
    waves.add_argument("--waves-window", metavar="A:B",
                       help="record only clock cycles A to B of the simulation (A:B or "
                            "cycles:A:B), or from output row A-1 to row B-1 (rows:A:B); "
                            "a failure names the rows around its first mismatch")
    parser.add_argument("--build-dir", metavar="DIR", type=Path,
                        help="Verilator build cache (default ~/.cache/swatkit/verilator)")
    add_output_option(parser, "the JUnit XML report results.xml, the results (per case "
                              "and totals) as results.json, and the traces of --waves "
                              "without a folder (default: results.xml in the working folder, "
                              "no JSON)")
    parser.add_argument("--junitxml", metavar="FILE", type=Path,
                        help="JUnit XML report (default: results.xml in the -o folder, else "
                             "in the working folder)")
    parser.add_argument("--json", metavar="FILE", type=Path,
                        help="also write the results (per case and totals) as JSON (default: "
                             "results.json in the -o folder; none without -o)")


# -- what runs --------------------------------------------------------------------------------


def shipped_builds():
    """The cores swatkit ships: `swatkit generate`'s default and each board's default core
    (`swatkit flow --board B` with no options; ECP5 boards with their multiplier blocks)."""
    from swatkit.sim.regress import DEFAULT_CORE, Build
    from swatkit.support.boards import BOARDS

    from .cmd_flow import resolve_with_board

    builds = [DEFAULT_CORE]
    for board in BOARDS.values():
        parser = argparse.ArgumentParser()
        add_workload_options(parser)
        add_hardware_options(parser)
        r = resolve_with_board(parser.parse_args([]), board)
        params = core_params(r, r.spec.seq_len)
        builds.append(Build.from_params(f"{board.name}_default", params,
                                        dsp="ecp5" if board.family == "ecp5" else "generic"))
    return builds


def shipped_cases(full: bool):
    """Real-size cases of the shipped cores. The fast matrix runs `swatkit generate`'s default
    core and each board's default core at N = 1024 (stall-free: the cycle model is checked; the
    small boards' also under 30 % gaps and stalls). The full matrix adds the larger builds and
    lengths (their ids end in ``-full``): the ULX3S default under stalls, the default head with
    Longformer's patterns at N = 4096, a BigBird-base head, the GPT-OSS sliding head group in
    prefill and in decode (1024 rows, then 256 steps), the default core at N = 4096, the
    BigBird-base head at N = 4096, the Mistral-style causal core (sliding window 4096, head_dim
    128) at N = 4608 and its head group (4 query heads per K/V head, :func:`mistral_group`) at
    N = 4608. (The fast matrix keeps to the builds a cold CI run can afford: issue 28.)"""
    from swatkit.golden import AttentionSpec, NumberFormat
    from swatkit.rtl import CoreParams, HardwareConfig
    from swatkit.sim.cycle_model import swat_cycles
    from swatkit.sim.regress import QUICK_CYCLES, Build, Case

    cases = []
    for b in shipped_builds():
        n = min(1024, b.max_seq_len)
        cases.append(Case(f"{b.id}/random-n{n}", b, (n,)))
        # under stalls in the fast matrix when the run is short (the small boards': under
        # QUICK_CYCLES stall-free), else in the full matrix only (its id ends in -full)
        stall30 = "" if swat_cycles(b.params, n).cycles <= QUICK_CYCLES else "-full"
        if full or not stall30:
            cases.append(Case(f"{b.id}/random-n{n}-stall30{stall30}", b, (n,), gap=0.3,
                              stall=0.3))
    if not full:
        return cases
    # the default head generated for Longformer's patterns: global tokens (the CLS token, a
    # question) and dilation, chosen per run on one build
    default = shipped_builds()[0]
    patterned = dataclasses.replace(Build.from_params("longformer_global8_dil2", CoreParams(
        default.params.spec, default.fmt, default.hardware.replace(max_global_tokens=8,
                                                                  max_dilation=2))),
        depth=4096 + 2048 + 1024 + 3 * 8)
    cases.append(Case(f"{patterned.id}/patterns-n4096-full", patterned, (4096, 2048, 1024),
                      patterns=({"global_tokens": (0,)},
                                {"global_tokens": (0, 100, 101, 102, 103, 104, 105, 2047)},
                                {"dilation": 2, "global_tokens": (0, 511)})))
    # a BigBird-base head (block 64, 3 random blocks, head_dim 64) on the default lanes
    bigbird = Build.from_params("bigbird_base_b64r3", CoreParams(
        AttentionSpec.bigbird(4096, 64, 64, 3), NumberFormat(), HardwareConfig()))
    cases.append(Case(f"{bigbird.id}/random-n1024-full", bigbird, (1024,)))
    # a GPT-OSS sliding-attention head group: window 128 causal, head_dim 64, 8 query heads on
    # one K/V head (each K/V row enters once and serves the 8), sink logits drawn per run
    gpt_oss = gpt_oss_group()
    cases.append(Case(f"{gpt_oss.id}/random-n1024-full", gpt_oss, (1024,)))
    # the same group decoding: a prefill of 1024 rows, then 256 decode steps of one row each,
    # the window's K/V kept on chip between them (docs/rtl.md, "Decode")
    decode = gpt_oss_group(decode=True)
    cases.append(Case(f"{decode.id}/prefill1024-decode256-full", decode, (1024,), decode=256))
    cases.append(Case(f"{bigbird.id}/random-n4096-full", bigbird, (4096,)))
    cases.append(Case(f"{bigbird.id}/random-n2048-stall30-full", bigbird, (2048,),
                      gap=0.3, stall=0.3))
    cases.append(Case(f"{patterned.id}/patterns-n4096-stall30-full", patterned,
                      (4096, 1024), gap=0.3, stall=0.3,
                      patterns=({"global_tokens": tuple(range(8))},
                                {"dilation": 2, "before": 100, "after": 0})))
    cases.append(Case(f"{default.id}/random-n4096-full", default, (4096,)))
    cases.append(Case(f"{default.id}/extremes-n4096-stall30-full", default, (4096,),
                      inputs="extremes", gap=0.3, stall=0.3))
    mistral = Build.from_params("mistral_causal4096_d128", CoreParams(
        AttentionSpec.causal(seq_len=4608, head_dim=128, sliding_window=4096),
        NumberFormat(), HardwareConfig(max_seq_len=4608)))
    cases.append(Case(f"{mistral.id}/random-n4608-full", mistral, (4608,)))
    group = mistral_group()
    cases.append(Case(f"{group.id}/random-n4608-full", group, (4608,)))
    return cases


def mistral_group():
    """The build of a Mistral-7B-v0.1 head group (its config.json: ``sliding_window`` 4096,
    ``head_dim`` 128, 32 query heads on 8 K/V heads: 4 per group) up to 4608 rows, on the
    default 8×8 lanes (the lanes of ``mistral_causal4096_d128``; 16×16 lanes would take a
    quarter of the cycles, but their single-file C++ model did not compile in 22 min:
    docs/verification.md)."""
    from swatkit.golden import AttentionSpec, NumberFormat
    from swatkit.rtl import CoreParams, HardwareConfig
    from swatkit.sim.regress import Build

    return Build.from_params("mistral_group_h32k8", CoreParams(
        AttentionSpec.causal(seq_len=4608, head_dim=128, sliding_window=4096), NumberFormat(),
        HardwareConfig(max_seq_len=4608), heads=32, kv_heads=8))


def gpt_oss_group(decode: bool = False):
    """The build of a GPT-OSS sliding-attention head group (gpt-oss-20b/120b config.json:
    ``sliding_window`` 128, ``head_dim`` 64, 64 query heads on 8 K/V heads: 8 per group; a
    learned sink logit per query head) on the default lanes, up to 1024 rows; with ``decode``
    a decode core (one context) up to 1280 rows: a 1024-row prefill and 256 decode steps."""
    from swatkit.golden import AttentionSpec, NumberFormat
    from swatkit.rtl import CoreParams, HardwareConfig
    from swatkit.sim.regress import Build

    n = 1280 if decode else 1024
    return Build.from_params("gptoss_sliding_h64k8" + ("_decode" if decode else ""), CoreParams(
        AttentionSpec.causal(seq_len=n, head_dim=64, sliding_window=128), NumberFormat(),
        HardwareConfig(max_seq_len=n), heads=64, kv_heads=8, sink_logits=True,
        contexts=int(decode)))


def matrix(full: bool):
    """The fast (or full) matrix: the small configurations of :mod:`swatkit.sim.regress` and the
    shipped cores at real sizes."""
    from swatkit.sim.regress import FAST, FULL

    return [*(FULL if full else FAST), *shipped_cases(full)]


def own_cases(args) -> list:
    """The cases of the configuration the options describe."""
    from swatkit.sim.regress import INPUT_KINDS, Build, Case

    given = args.seq_len
    args.seq_len = None
    r = resolve(args)
    lengths = given or (r.spec.seq_len,)
    runs = 1 if args.runs is None else check_int_option("--runs", args.runs, 1, MAX_RUNS)
    steps = _decode_steps(args, r, runs)
    if steps:   # (a decode core: its counters hold the prefill and the steps)
        r = dataclasses.replace(r, heads={"contexts": 1, **r.heads})
    seq_len = "--seq-len" if given else r.label("seq_len")   # (as the user gave the lengths)
    for n in lengths:
        check_int_option(seq_len, n, 1, MAX_REGRESS_ROWS)
    if r.spec.block_size:   # each N must carry the BigBird pattern as configured
        for n in lengths:
            try:
                r.spec.replace(seq_len=n)
            except ValueError as e:
                raise UsageError(f"{seq_len} {n}: {e}") from None
    # a core for the configured seq_len; N above it needs a larger core, built for the next
    # power of two so that other lengths up to it reuse that build
    largest = max(lengths) + steps
    if largest <= r.spec.seq_len:
        params = core_params(r, r.spec.seq_len)
    else:
        try:
            params = core_params(r, _bucket(largest))
        except UsageError:   # the power of two is past a limit that N itself is not
            params = core_params(r, largest)
    check_sink_values(r, params)
    tokens = r.spec.global_tokens
    for n in lengths:   # every run has the configuration's global tokens: none may be cut
        if tokens and tokens[-1] >= n:
            raise UsageError(f"{r.label('global_tokens')}: global token {tokens[-1]} is outside "
                             f"0..{n - 1} for {seq_len} {n}")
    kinds = args.inputs or ("random",)
    for kind in kinds:
        if kind not in INPUT_KINDS:
            raise UsageError(f"--inputs: unknown kind {kind!r} (one of {', '.join(INPUT_KINDS)})")
    for option in ("gap", "stall"):
        value = getattr(args, option)
        if value is not None and not 0.0 <= value < 1.0:
            raise UsageError(f"--{option} must be a probability in [0, 1), not {value}")
    gap, stall = args.gap or 0.0, args.stall or 0.0
    build = Build.from_params("yours", params, dsp=args.dsp or "generic")
    pattern = {}
    if r.spec.block_size:   # the configured random blocks and table (the build's: seed 0)
        spec = r.spec
        pattern = {"num_random_blocks": spec.num_random_blocks,
                   "pattern_seed": spec.pattern_seed,
                   "explicit_random_table": spec.explicit_random_table}
    # the harness holds every run's K/V rows with the run's global columns before them (the
    # global tokens, or BigBird's first and last blocks: 2·b rows per run)
    base = build.harness_depth   # (the core's max_seq_len)
    rows = runs * max(_kv_rows(build, n + steps, pattern) for n in lengths)
    if steps and params.contexts > 1:   # (each context its own sequence, with its sinks)
        rows = params.contexts * (rows + params.spec.sink_tokens)
    if max(rows, base) > MAX_REGRESS_ROWS:   # (refused before anything is built)
        what = (f"--seq-len {max(lengths)} x --runs {runs}" if rows > base else
                f"{r.label('seq_len')} {r.spec.seq_len}" if r.spec.seq_len >= max(lengths)
                else f"--seq-len {max(lengths)}")
        raise UsageError(f"{what} needs a harness of {max(rows, base)} rows (global rows "
                         f"included); regress takes at most {MAX_REGRESS_ROWS} per case")
    g = params.group_heads   # (a grouped core's harness holds g Q and O rows per position)
    if g * max(rows, base) > MAX_REGRESS_ROWS:
        raise UsageError(f"{r.label('heads')} {params.heads} on {r.label('kv_heads')} "
                         f"{params.kv_heads} needs a harness of {g * max(rows, base)} Q rows "
                         f"({g} per position, {max(rows, base)} positions); regress takes at "
                         f"most {MAX_REGRESS_ROWS} per case")
    build = _with_depth(build, rows)
    cases = []
    for kind in kinds:
        for n in lengths:
            tag = ((f"x{runs}" if runs > 1 else "") + (f"-decode{steps}" if steps else "")
                   + (f"-gap{gap:g}-stall{stall:g}" if gap or stall else ""))
            cases.append(Case(f"yours/{kind}-n{n}{tag}",
                              build, (n,) * runs, inputs=kind, gap=gap, stall=stall,
                              patterns=(pattern,) * runs if pattern else (),
                              sink_logits=r.sink_values, decode=steps))
    return cases


def _decode_steps(args, r, runs: int) -> int:
    """``--decode T``'s steps (0 without it), checked against the configuration: a causal
    token band without global tokens, one run, and a core generated with --contexts if the
    configuration says so."""
    if args.decode is None:
        return 0
    steps = check_int_option("--decode", args.decode, 1, MAX_REGRESS_ROWS)
    spec = r.spec
    if spec.block_size or spec.global_tokens or r.hardware.get("max_global_tokens"):
        raise UsageError("--decode needs a token band without global tokens (a global row "
                         "attends the whole sequence, which a decode step has not seen)")
    if spec.after:
        raise UsageError("--decode needs a causal window (--causal): a decode step's keys "
                         "after its row have not arrived")
    if runs > 1:
        raise UsageError("--decode takes one prefill run, not --runs " + str(runs))
    if r.heads.get("contexts") == 0:
        raise UsageError(f"--decode needs a decode core, not {r.label('contexts')} 0")
    return steps


def _kv_rows(build, n: int, pattern: dict) -> int:
    """K/V rows one run of ``n`` rows sends: its global columns, then its rows."""
    return n + len(build.spec(n).replace(**pattern).global_positions())


def _bucket(rows: int) -> int:
    """The power of two at or above ``rows``."""
    return 1 << max(rows - 1, 0).bit_length()


def _with_depth(build, rows: int):
    """``build`` with memories for ``rows`` K/V rows: its own depth if that holds them, else
    the next power of two (so that other lengths and run counts up to it share the build)."""
    return (build if rows <= build.harness_depth
            else dataclasses.replace(build, depth=_bucket(rows)))


# -- running ----------------------------------------------------------------------------------


def _worker_init(parent: int):
    import signal

    from swatkit.support.processes import watch_parent

    # Ctrl-C is the parent's to handle (it stops the workers); the worker starts with SIGINT
    # and SIGTERM blocked (_start_pool) so that a signal during its start-up is not raised
    # in it as a traceback
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM})
    # the command killed, however (kill -9 included): the worker ends, and with it the
    # programs it runs (their guards watch it in turn)
    watch_parent(parent)


def _run_one(case, seed, waves, build_dir, reproduce=None):
    """``run_case``; ``waves``: its waves arguments (:func:`_waves`) or None."""
    from swatkit.sim.regress import run_case

    try:
        return run_case(case, seed, build_dir=build_dir, reproduce=reproduce,
                        **(waves or {}))
    except Exception as e:  # a build that fails is the case's failure, with its message
        from swatkit.sim.regress import CaseResult, failure_hint

        return CaseResult(case, seed, False, message=f"{type(e).__name__}: {e}" + (
            f"\n{failure_hint(seed, reproduce)}" if reproduce else ""))


def _run_unit(cases, seed, waves, build_dir, hints):
    """The cases of one work unit (:func:`_units`: cases of one build) in one simulator
    process (:func:`swatkit.sim.regress.run_cases`); with waves, or a single case, each alone
    (:func:`_run_one`). ``hints``: each case's reproducer."""
    if waves or len(cases) == 1:
        return [_run_one(c, seed, waves, build_dir, hints[c.id]) for c in cases]
    from swatkit.sim.regress import CaseResult, failure_hint, run_cases

    try:
        return run_cases(cases, seed, build_dir=build_dir, reproduce=hints)
    except Exception as e:  # a build that fails is every case's failure, with its message
        return [CaseResult(c, seed, False, message=f"{type(e).__name__}: {e}\n"
                           + failure_hint(seed, hints[c.id])) for c in cases]


def _units(cases, workers: int) -> list[list[int]]:
    """The cases' indices in work units, each run in one simulator process: the short cases
    (``Case.short``) of one build, split into as many units as there are workers per build (so
    that a run of few builds still keeps every worker busy); each long case alone. The first
    unit of each build comes first: each configuration is compiled once (the others wait for
    it, :func:`swatkit.support.build_cache.cached_build`), and the compilations run in
    parallel."""
    by_build: dict = {}
    for i, case in enumerate(cases):   # (a long case: a build of its own, for the split)
        by_build.setdefault(case.build if case.short else (case.build, i), []).append(i)
    split = max(1, -(-max(workers, 1) // len(by_build))) if by_build else 1
    firsts, rest, seen = [], [], set()
    for indices in by_build.values():
        k = min(split, len(indices))
        chunks = [indices[j::k] for j in range(k)]
        build = cases[indices[0]].build
        if build in seen:
            rest.extend(chunks)
        else:
            seen.add(build)
            firsts.append(chunks[0])
            rest.extend(chunks[1:])
    return firsts + rest


def config_options(args: argparse.Namespace) -> list[str]:
    """The options of ``args`` that describe the user's configuration and its cases (every
    option but :data:`RUN_OPTIONS`), as command-line words that give the same values: files
    as absolute paths, so that the words work from any folder. Empty: the matrix."""
    parser = argparse.ArgumentParser(add_help=False)
    add_arguments(parser)
    words = []
    for action in parser._actions:
        value = getattr(args, action.dest, None)
        if not action.option_strings or action.dest in RUN_OPTIONS or value is None:
            continue
        if isinstance(action, argparse.BooleanOptionalAction):
            words.append(action.option_strings[0 if value else 1])
        elif isinstance(action, argparse._StoreTrueAction):
            if value:
                words.append(action.option_strings[0])
        else:
            text = (str(value.expanduser().resolve()) if isinstance(value, Path) else
                    ",".join(map(str, value)) if isinstance(value, (tuple, list)) else
                    str(value))
            words += [action.option_strings[-1], text]
    return words


def select(cases: list, keyword: str | None) -> list:
    """The cases ``-k`` selects: a word that is a case's whole id selects that case alone;
    any other word, every case whose id contains it (words separated by commas)."""
    if not keyword:
        return cases
    words = [w.strip() for w in keyword.split(",") if w.strip()]
    ids = {c.id for c in cases}
    chosen = [c for c in cases if any(w == c.id if w in ids else w in c.id for w in words)]
    if not chosen:
        raise UsageError(f"-k {keyword!r} matches no case")
    return chosen


def _waves(args: argparse.Namespace) -> dict | None:
    """``run_case``'s waves arguments from ``--waves``, ``--waves-format`` and
    ``--waves-window``, checked before anything runs (the folder is made later)."""
    from swatkit.sim.regress import default_wave_format, parse_waves_window, wave_format

    if args.waves is None:
        for name in ("waves_format", "waves_window"):
            if getattr(args, name) is not None:
                raise UsageError(f"--{name.replace('_', '-')} needs --waves")
        return None
    folder = args.waves
    if folder is True:   # (--waves without a folder: the -o folder, else the working one)
        folder = args.output or Path(".")
    elif str(folder) in ("vcd", "fst") and not folder.is_dir():   # (the option's old form)
        raise UsageError(f"--waves {folder}: --waves takes a folder (the format is "
                         f"--waves-format {folder})")
    check_folder("--waves", folder)   # (made when the work starts, with the build cache)
    try:
        fmt = wave_format(args.waves_format or default_wave_format())
    except ValueError as e:
        raise UsageError(f"--waves-format: {e}") from None
    if args.waves_window is not None:
        try:
            parse_waves_window(args.waves_window)
        except ValueError as e:
            raise UsageError(f"--waves-window: {e}") from None
    return {"waves": fmt, "waves_dir": folder.resolve(), "waves_window": args.waves_window}


def _corrupt_hook() -> str:
    """The test hook ``SWATKIT_CORRUPT_EXPECTED`` (:func:`swatkit.sim.regress.parse_corrupt`):
    checked before anything runs; a line that says it is set, or ``""``."""
    from swatkit.sim.regress import CORRUPT_ENV, parse_corrupt

    text = os.environ.get(CORRUPT_ENV)
    if not text:
        return ""
    try:
        case_id, where = parse_corrupt(text)
    except ValueError as e:
        raise UsageError(str(e)) from None
    return (f"{CORRUPT_ENV} is set: case {case_id} will fail on purpose (bit {where[3]} of "
            f"expected run {where[0]}, row {where[1]}, column {where[2]} flipped; a test hook)")


def run(args: argparse.Namespace) -> int:
    from swatkit.sim.regress import reproduce_command
    from swatkit.support.toolchain import ToolchainError, find_verilator

    options = config_options(args)   # (as the user gave them: own_cases changes args)
    own = bool(options)
    if own and (args.fast or args.full):
        raise UsageError("--fast/--full run the matrix; they cannot be combined with a "
                         "configuration")
    if args.scheduler and args.workers is not None:
        raise UsageError(f"{spelled(args, 'workers', '-n')} cannot be combined with "
                         "--scheduler (the cluster's workers set the parallelism)")
    if args.workers is None:
        args.workers = min(os.cpu_count() or 1, MAX_WORKERS)
    check_int_option(spelled(args, "workers", "-n"), args.workers, 0, MAX_WORKERS)
    if args.seed is not None:
        check_int_option("--seed", args.seed, 0, MAX_SEED)
    if args.output is not None:
        check_folder(output_label(args), args.output)
    junit, json_path = report_paths(args)
    for label, given, path in (("--junitxml", args.junitxml, junit),
                               ("--json", args.json, json_path)):
        # (given, or in a folder that exists: one -o makes is checked by check_folder)
        if path is not None and (given is not None or path.parent.is_dir()):
            check_output_file(label, path)
    junit, json_path = junit.resolve(), json_path and json_path.resolve()
    hook = _corrupt_hook()
    cases = select(own_cases(args) if own else matrix(args.full), args.keyword)
    waves = _waves(args)
    try:
        verilator = find_verilator()
    except ToolchainError as e:
        raise UsageError(str(e)) from None
    from swatkit.support.build_cache import build_root

    root = build_root(args.build_dir)
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UsageError(f"--build-dir: cannot create {root}: {e.strerror}") from None
    if args.output is not None:
        make_folder(output_label(args), args.output)
    if waves is not None:
        make_folder("--waves", waves["waves_dir"])
    client = connect_scheduler(args.scheduler)   # (before anything is printed or built)
    seed = secrets.randbelow(2 ** 31) if args.seed is None else args.seed
    mode = "your configuration" if own else ("--full" if args.full else "--fast")
    hints = {c.id: reproduce_command(c.id, seed, options, args.build_dir, args.output)
             for c in cases}

    from rich.console import Console

    console = Console(highlight=False, soft_wrap=True)
    if client is not None:
        count = len(client.scheduler_info().get("workers", {}))
        where = (f"on the Dask cluster at {client.scheduler.address} ({count} workers), "
                 f"builds in {args.build_dir or 'each worker' + chr(39) + 's cache'}")
    else:
        where = f"{args.workers or 'no'} workers, builds in {root}"
    console.print(f"swatkit regress {mode}: {len(cases)} cases, seed {seed}, Verilator "
                  f"{'.'.join(map(str, verilator.version))}, {where}")
    if own:
        console.print(f"configuration: {cases[0].build.describe()}")
    if hook:
        console.print(hook, markup=False)
    start = time.monotonic()
    try:
        results = _run_cases(console, cases, seed, waves, args.build_dir, args.workers,
                             client, hints)
    finally:
        if client is not None:
            client.close()
    wall = time.monotonic() - start
    return _report(args, console, results, junit, wall, seed, mode, json_path)


def report_paths(args: argparse.Namespace) -> tuple[Path, Path | None]:
    """Where the JUnit XML and the JSON results go: ``--junitxml`` / ``--json`` as given, else
    ``results.xml`` / ``results.json`` in the ``-o`` folder; without ``-o``, results.xml in
    the working folder and no JSON."""
    folder = args.output
    junit = args.junitxml or (folder or Path(".")) / "results.xml"
    json_path = args.json or (folder / "results.json" if folder is not None else None)
    return junit, json_path


def _uncached(cases, waves, build_dir) -> list:
    """The builds of ``cases`` that the cache does not have yet, in the order they start."""
    from swatkit.sim.regress import build_key
    from swatkit.support.build_cache import build_root

    root, builds = build_root(build_dir), []
    for case in cases:
        if case.build not in builds:
            builds.append(case.build)
    fmt = waves["waves"] if waves else None
    return [b for b in builds if not (root / build_key(b, fmt) / "build.ok").is_file()]


def _run_cases(console, cases, seed, waves, build_dir, workers, client=None, hints=None):
    """Every case, in parallel processes (builds first, one per configuration) or on a Dask
    cluster (``client``), with a progress display; returns the results in the cases'
    order. ``hints``: each case id's reproducer (:func:`run`; default the matrix's)."""
    from swatkit.sim.regress import reproduce_command

    hints = hints or {c.id: reproduce_command(c.id, seed, build_dir=build_dir) for c in cases}
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    progress = Progress(TextColumn("[bold]regress"), BarColumn(), MofNCompleteColumn(),
                        TimeElapsedColumn(), TextColumn("{task.description}"),
                        console=console, transient=True)
    results = [None] * len(cases)
    # the builds this run compiles (not in the cache): named in the progress line until done
    building = [] if client is not None else _uncached(cases, waves, build_dir)
    left = {b: sum(c.build == b for c in cases) for b in building}

    def state() -> str:
        if not building:
            return "running"
        names = ", ".join(b.id for b in building[:3]) + (", …" if len(building) > 3 else "")
        return f"building {len(building)} configuration(s): {names}"

    def done(index, result):
        results[index] = result
        build = result.case.build
        if build in left:
            left[build] -= 1
            if result.build_seconds or not left[build]:   # compiled (or given up)
                building.remove(build)
                del left[build]
                progress.console.print(f"built {build.id} in {result.build_seconds:.1f} s"
                                       if result.build_seconds else
                                       f"not built: {build.id}")
        progress.update(task, advance=1, description=state())
        verdict = "[green]PASS[/]" if result.passed else "[red]FAIL[/]"
        detail = (f"  {result.rows} rows, {result.cycles} cycles, "
                  f"{result.cycles_per_ideal:.3f}× ideal" if result.rows else "")
        progress.console.print(f"{verdict} {result.case.id}{detail}")

    with progress:
        task = progress.add_task(state(), total=len(cases))
        if client is not None:
            return _run_on_dask(client, cases, seed, waves, build_dir, done, results, console,
                                hints)
        if workers == 0:
            for unit in _units(cases, 1):
                build = cases[unit[0]].build
                what = (f"{len(unit)} cases of {build.id}" if len(unit) > 1 else
                        cases[unit[0]].id)
                progress.update(task, description=(
                    f"building {build.id}, then running {what}"
                    if build in building else f"running {what}"))
                for i, result in zip(unit, _run_unit([cases[i] for i in unit], seed, waves,
                                                     build_dir, hints), strict=True):
                    done(i, result)
            return results
        pool = _start_pool(workers)
        try:
            # the cases of a build in one simulator process; one unit of each build first, so
            # that each configuration is compiled once and the compilations run in parallel
            pending = {tuple(unit): pool.apply_async(_run_unit, (
                [cases[i] for i in unit], seed, waves, build_dir,
                {cases[i].id: hints[cases[i].id] for i in unit}))
                for unit in _units(cases, workers)}
            while pending:
                for unit in [u for u, r in pending.items() if r.ready()]:
                    for i, result in zip(unit, pending.pop(unit).get(), strict=True):
                        done(i, result)
                time.sleep(0.2)
            pool.close()
            pool.join()
        except BaseException:
            _stop_pool(pool)
            finished = sum(r is not None for r in results)
            console.print(f"{finished} of {len(cases)} cases had finished")
            raise
    return results


def _run_on_dask(client, cases, seed, waves, build_dir, done, results, console, hints):
    """The cases as tasks of the Dask cluster behind ``client`` (work units of :func:`_units`);
    a task the cluster loses (a worker gone) is the failure of its cases. Ctrl-C cancels every
    task not finished."""
    import uuid

    futures = {}
    workers = max(1, len(client.scheduler_info().get("workers", {})))
    try:
        for unit in _units(cases, workers):
            key = f"swatkit-regress-{cases[unit[0]].id}-{uuid.uuid4().hex[:8]}"
            futures[tuple(unit)] = client.submit(
                _run_unit, [cases[i] for i in unit], seed, waves, build_dir,
                {cases[i].id: hints[cases[i].id] for i in unit}, key=key, pure=False)
        pending = dict(futures)
        while pending:
            for unit in [u for u, f in pending.items() if f.done()]:
                future = pending.pop(unit)
                try:
                    unit_results = future.result()
                except Exception as e:   # the task was lost, or could not run on the worker
                    from swatkit.sim.regress import CaseResult, failure_hint

                    unit_results = [CaseResult(cases[i], seed, False, message=(
                        f"the Dask task failed: {type(e).__name__}: {e}\n"
                        + failure_hint(seed, hints[cases[i].id]))) for i in unit]
                for i, result in zip(unit, unit_results, strict=True):
                    done(i, result)
            time.sleep(0.2)
    except BaseException:
        client.cancel(list(futures.values()), force=True)
        finished = sum(r is not None for r in results)
        console.print(f"{finished} of {len(cases)} cases had finished")
        raise
    return results


def _start_pool(workers: int):
    """A pool of ``workers`` spawned processes (:func:`_worker_init`). They are started with
    SIGINT and SIGTERM blocked, which they inherit; interrupted while it starts them, every
    worker started so far is killed."""
    import multiprocessing
    import signal
    from multiprocessing import resource_tracker

    # (the pool's first lock starts the resource tracker, which unblocks both signals after
    # it started it: start it first)
    resource_tracker.ensure_running()
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    try:
        return multiprocessing.get_context("spawn").Pool(
            workers, initializer=_worker_init, initargs=(os.getpid(),))
    except BaseException:
        for worker in multiprocessing.active_children():
            worker.kill()
        raise
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)


def _stop_pool(pool) -> None:
    """Stop the pool within a second, whatever it is doing: ``Pool.terminate`` (its SIGTERM
    ends each worker, and the guards of the programs a worker runs then kill those:
    :mod:`swatkit.support.processes`), given half a second in a daemon thread, then SIGKILL to every
    worker still there. The command never waits on ``Pool.terminate`` itself: it takes the
    task queue's read lock and joins the pool's threads before it stops the workers, and a
    worker that dies holding that lock (an idle worker waits for a task holding it) never
    gives it back. A terminate left waiting holds nothing up, and it does not run again at
    exit."""
    import multiprocessing
    import threading

    cleanup = threading.Thread(target=pool.terminate, name="pool-terminate", daemon=True)
    cleanup.start()
    cleanup.join(0.5)
    for worker in multiprocessing.active_children():
        worker.kill()


def _junit(results, path: Path, wall: float, seed: int) -> None:
    import xml.etree.ElementTree as ET

    suite = ET.Element("testsuite", name="swatkit regress", tests=str(len(results)),
                       failures=str(sum(not r.passed for r in results)), time=f"{wall:.3f}")
    for r in results:
        tc = ET.SubElement(suite, "testcase", classname="swatkit.regress", name=r.case.id,
                           time=f"{r.wall_seconds:.3f}")
        props = ET.SubElement(tc, "properties")
        for name, value in _props(r, seed).items():
            ET.SubElement(props, "property", name=name, value=str(value))
        if not r.passed:
            ET.SubElement(tc, "failure", message=r.message.splitlines()[0] if r.message
                          else "failed").text = r.message
    ET.ElementTree(ET.Element("testsuites")).getroot().append(suite)
    tree = ET.ElementTree(suite)
    ET.indent(tree)
    tree.write(path, encoding="utf-8", xml_declaration=True)


def _props(r, seed: int) -> dict:
    return {"seed": seed, "config": r.case.describe(), "rows": r.rows, "cycles": r.cycles,
            "monitor_cycles": r.monitor_cycles, "ideal": r.ideal,
            "cycles_per_ideal": round(r.cycles_per_ideal, 4) if r.ideal else None,
            "sim_cycles": r.sim_cycles, "sim_seconds": round(r.sim_seconds, 3),
            "wall_seconds": round(r.wall_seconds, 3),
            "build_seconds": round(r.build_seconds, 3), "passed": r.passed,
            "work_dir": str(r.work_dir) if r.work_dir else None, "nonce": r.nonce,
            **({"waves": str(r.waves)} if r.waves else {})}


def _report(args, console, results, junit, wall, seed, mode, json_path=None) -> int:
    """The table, the failures, the waves, the reports (``junit``; ``json_path``, default
    ``--json``) and the summary line; the exit code."""
    from rich.table import Table

    table = Table(title=f"swatkit regress {mode} (seed {seed})")
    table.add_column("case", overflow="fold")
    for column in ("rows", "cycles", "cycles/ideal", "cycles/s"):
        table.add_column(column, justify="right", no_wrap=True)
    table.add_column("result", no_wrap=True)
    for r in results:
        speed = r.sim_cycles / r.sim_seconds if r.sim_seconds else 0
        table.add_row(r.case.id, str(r.rows), str(r.cycles),
                      f"{r.cycles_per_ideal:.3f}" if r.ideal else "",
                      f"{speed:,.0f}" if speed else "",
                      "[green]pass" if r.passed else "[red]FAIL")
    console.print(table)
    failed = [r for r in results if not r.passed]
    for r in failed:
        console.rule(f"[red]{r.case.id}")
        console.print(r.message.strip(), markup=False)
    if args.waves:
        for r in results:
            if r.waves:
                console.print(f"waves of {r.case.id}: {r.waves}  "
                              f"(view: {r.waves.with_suffix('.gtkw')})")
    rows = sum(r.rows for r in results if r.passed)
    cycles = sum(r.cycles for r in results)
    sim_cycles = sum(r.sim_cycles for r in results)
    sim_seconds = sum(r.sim_seconds for r in results)
    speed = sim_cycles / sim_seconds if sim_seconds else 0.0
    totals = {"tests": len(results), "failed": len(failed), "rows": rows, "cycles": cycles,
              "sim_cycles": sim_cycles, "sim_seconds": sim_seconds,
              "cycles_per_second": speed, "wall_seconds": wall}
    json_path = json_path or args.json
    try:
        _junit(results, junit, wall, seed)
        if json_path:
            record = {"mode": mode, "seed": seed, "workers": args.workers, "wall_seconds": wall,
                      "totals": totals,
                      "cases": [{"name": r.case.id, "outcome": "passed" if r.passed
                                 else "failed", "message": r.message, "props": _props(r, seed)}
                                for r in results]}
            json_path.write_text(json.dumps(record, indent=2, default=str) + "\n")
    except OSError as e:
        raise UsageError(f"cannot write the report: {e.strerror}: {e.filename}") from None
    console.print(f"JUnit XML: {junit}" + (f"   JSON: {json_path}" if json_path else ""))
    minutes, seconds = divmod(wall, 60)
    console.print(
        f"{len(results)} tests, {len(failed)} failed; {rows} output rows checked bit-exact; "
        f"{cycles} core cycles; wall {int(minutes)}m{seconds:04.1f}s; Verilator+cocotb "
        f"simulated {sim_cycles} cycles at {speed:,.0f} cycles/s")
    return 1 if failed else 0
