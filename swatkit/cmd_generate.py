"""Generate Verilog for a SWAT core sized to a workload and device.

Writes DIR/<name>.v (with a header comment: version, configuration, clock and reset, ports),
DIR/<name>.vlt (Verilator waivers), DIR/swatkit.json (the resolved configuration, derived
widths, resources, every port's bit layout and the file list; give it back as --config to
regenerate the same Verilog), and the IP packaging: DIR/<name>_pkg.sv (a SystemVerilog package
of the widths and every port's field layout), DIR/<name>.f (file list), DIR/<name>_tb.sv (a
self-checking testbench against the golden model; not for BigBird cores) and
DIR/<name>.core (FuseSoC: targets default, lint and sim). With no options: a Longformer-base
head (attention_window 512, head_dim 64, up to 4096 rows) on 8 key lanes x 8 dim lanes;
``--bigbird BLOCK --random-blocks R``: a core for BigBird's block-sparse pattern (the report
lists its maxima and what they cost).
"""

from __future__ import annotations

import argparse
import sys

from swatkit.options import (
    UsageError,
    add_hardware_options,
    add_output_option,
    add_workload_options,
    check_folder,
    command_error,
    core_params,
    output_label,
    refuse_sink_values,
    resolve,
    warn,
    waste_warnings,
)
from swatkit.support.progress import progress
from swatkit.support.toml_text import dumps

__all__ = ["add_arguments", "run"]

DEFAULTS = {"name": "swat_core", "dsp": "generic", "interface": "core"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from swatkit.rtl.generate import INTERFACES
    from swatkit.rtl.units import DSP_TARGETS

    add_workload_options(parser, core_features=True, decode=True)
    add_hardware_options(parser)
    add_output_option(parser, "the Verilog, its Verilator waivers, swatkit.json (the "
                              "configuration and resources), the SystemVerilog package, the .f "
                              "file list, the testbench and the FuseSoC .core",
                      default="swat_build")
    parser.add_argument("--name", help="Verilog top module name (default swat_core)")
    parser.add_argument("--dsp", choices=DSP_TARGETS,
                        help="multipliers as generic logic for any tool (default), or as Lattice "
                             "ECP5 MULT18X18D blocks with their registers (also writes the "
                             "block's simulation model, MULT18X18D.v)")
    parser.add_argument("--interface", choices=INTERFACES,
                        help="the core's own stream ports (default), or the core wrapped in "
                             "AXI4-Stream ports (s_axis_q_*, s_axis_kv_*, s_axis_cmd_*, "
                             "m_axis_o_* with tlast; aclk, active-low aresetn)")
    parser.add_argument("--print-config", action="store_true",
                        help="print the resolved configuration as TOML (usable as --config) "
                             "and exit without writing anything")
    parser.add_argument("--lint", action="store_true",
                        help="run verilator --lint-only -Wall on the result")


def decode_line(p) -> str:
    """What a decode core holds per context and what a continue is (``generate``'s line)."""
    from swatkit.sim.cycle_model import swat_cycles

    res = p.resources()
    # (one context: the ring and its resident sink columns; C contexts have C rings)
    per = res["kv_buffer_bits"] // p.contexts
    # a decode step once the window is full (the core's own causal pattern, after = 0)
    prefill = min(p.window + p.spec.sink_tokens, p.hw.max_seq_len - 1)
    step = ""
    if prefill >= 1:
        run = p.spec.replace(after=0, seq_len=prefill + 1)
        cycles = swat_cycles(p, prefill + 1, run=run, first_row=prefill).cycles
        step = f"; a decode step with a full causal window: {cycles:,} cycles (cycle model)"
    rows = (f"{p.ring_rows} rows" + (f" in each of {p.max_dilation} residue classes"
                                      if p.max_dilation > 1 else "")
            + (f" and {p.max_global_tokens} sink rows" if p.sink_core else ""))
    return (f"decode: {p.contexts} context{'s' if p.contexts != 1 else ''}, each a K/V ring "
            f"of {rows} kept on chip ({per / 1024:.1f} Kib, {per // 8:,} bytes; "
            f"{p.contexts * per / 1024:.1f} Kib in all); the command's cont bit continues the "
            f"sequence by seq_len rows (one K/V row read per decode step), up to "
            f"{p.hw.max_seq_len} positions (the counters, not the ring){step}; "
            + (f"the command's ctx field ({p.ctx_bits} bit{'s' if p.ctx_bits != 1 else ''}) "
               f"names the context, a switch costs no cycle; status ctx_valid ({p.contexts} "
               f"bits, one per context)" if p.ctx_bits else "status ctx_valid"))


def run(args: argparse.Namespace) -> int:
    from swatkit.rtl.generate import LintError, check_target, generate, lint
    from swatkit.rtl.packaging import vlnv

    r = resolve(args, "generate")
    refuse_sink_values(r)
    params = core_params(r, r.spec.seq_len)
    target = {**DEFAULTS, **r.command}
    if params.decode and target["interface"] != "core":
        raise UsageError(f"{r.label('interface')} must be core for a decode core "
                         f"({r.label('contexts')} {params.contexts}), not "
                         f"{target['interface']}")
    try:
        check_target(**target)
    except (TypeError, ValueError) as e:  # "name must be a Verilog identifier, not ..."
        raise command_error(e, r) from None
    if args.print_config:
        sys.stdout.write(dumps({**params.config_tables(), "generate": target}))
        return 0
    check_folder(output_label(args), args.output)
    for line in waste_warnings(r, params):
        warn(line)
    try:
        with progress(f"generating Verilog ({params.window}-key "
                      f"{'block ' if params.block_size else ''}window, head_dim "
                      f"{params.spec.head_dim}, {params.hw.key_lanes}x{params.hw.dim_lanes} "
                      "lanes)"):
            out = generate(params, out_dir=args.output, **target)
    except OSError as e:
        raise UsageError(f"{output_label(args)}: cannot write {args.output}: "
                         f"{e.strerror}") from None
    import json

    info = json.loads(out.config.read_text())
    res = info["resources"]
    print(f"wrote {out.verilog}  ({out.verilog.stat().st_size // 1024} KiB)")
    print(f"wrote {out.waivers}")
    print(f"wrote {out.config}")
    if out.sim_models:
        print(f"wrote {out.sim_models}  (simulation model of the ECP5 multiplier block)")
    print(f"wrote {out.package}  (package {out.package.stem}: widths, port field layouts)")
    print(f"wrote {out.file_list}  (sources in compile order)")
    if out.testbench:
        print(f"wrote {out.testbench}  (self-checking testbench against the golden model)")
    print(f"wrote {out.fusesoc_core}  (FuseSoC core {vlnv(target['name'])})")
    for stale in out.removed:
        print(f"removed {stale}  (written by an earlier run, not by this one)")
    print(params.describe() + ("; AXI4-Stream ports" if target["interface"] == "axis" else ""))
    print(f"multipliers {res['qk_multipliers']} (QK) + {res['sv_multipliers']} (SV) + "
          f"{res['exp_multipliers']} (exp); K/V buffer {res['kv_buffer_bits'] // 1024} Kib, "
          f"scores {res['score_buffer_bits'] // 1024} Kib")
    if params.block_size:
        engines = res["global_engines"]
        print(f"global blocks: {engines} global-row engine{'s' if engines > 1 else ''} "
              f"side by side ({res['global_qk_multipliers']} + "
              f"{res['global_sv_multipliers']} + {res['global_exp_multipliers']} multipliers, "
              f"rows {res['global_buffer_bits'] // 1024} Kib, state "
              f"{res['global_accumulator_bits'] // 1024} Kib), global K/V columns resident "
              f"(flags {res['flag_bits'] // 1024} Kib)")
        if params.max_random_blocks:
            print(f"random blocks: up to {params.random_rows} K/V rows per query block on kvr, "
                  f"double-buffered: random_buffer_bits {res['random_buffer_bits'] // 1024} Kib")
        print("run command: seq_len (a multiple of the block size)"
              + (f", random_blocks (0..{params.max_random_blocks})"
                 if params.max_random_blocks else ""))
    elif params.max_global_tokens or params.max_dilation > 1:
        parts = []
        if params.sink_core:
            sink_bits = (2 * params.hw.key_lanes * params.global_rounds * params.groups
                         * params.hw.dim_lanes * params.fmt.data_bits)
            parts.append(f"up to {params.max_global_tokens} sink tokens (resident key-only "
                         f"columns, no global rows: sink_count on the command; "
                         f"{sink_bits} bits of the K/V buffer, flags {res['flag_bits']} bits)")
        elif params.max_global_tokens:
            parts.append(f"up to {params.max_global_tokens} global tokens (global-row engine: "
                         f"{res['global_qk_multipliers']} + {res['global_sv_multipliers']} + "
                         f"{res['global_exp_multipliers']} multipliers; flags "
                         f"{res['flag_bits'] // 1024} Kib)")
        if params.max_dilation > 1:
            parts.append(f"dilation up to {params.max_dilation} ({params.max_dilation} residue "
                         "classes in the K/V ring)")
        print("run patterns: window up to the generated one, " + ", ".join(parts))
    if params.group_heads > 1:
        g = params.group_heads
        print(f"grouped query heads: {params.heads} on {params.kv_heads} K/V head"
              f"{'s' if params.kv_heads > 1 else ''}; a run is one K/V head and its {g} query "
              f"heads ({g}·N Q and O rows, each K/V row read once for the {g}), the heads one "
              f"after another on the same engines: no extra multipliers or buffers, {g}x the "
              f"cycles of one head (ideal {params.ideal_cycles(params.hw.max_seq_len):,.0f} at "
              f"N = {params.hw.max_seq_len}), counters {params.index_bits} bits")
    if params.sink_logits:
        w = params.widths
        print(f"learned sink logits: the command carries sink_on and {params.group_heads} sink "
              f"score{'s' if params.group_heads > 1 else ''} of {w.score} bits (one per query "
              f"head: {params.group_heads * w.score + 1} command bits); one more exp unit and "
              f"its {2 ** params.fmt.exp_frac_bits}-entry table, l {w.sum} bits")
    if params.decode:
        print(decode_line(params))
    if args.lint:
        try:
            with progress("verilator --lint-only -Wall"):
                lint(out)
        except LintError as e:
            print(str(e))
            print("swatkit: error: verilator lint reported warnings", file=sys.stderr)
            return 1
        print("verilator --lint-only -Wall: clean")
    return 0
