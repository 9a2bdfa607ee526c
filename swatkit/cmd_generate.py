"""Generate Verilog for a SWAT core sized to a workload and device.

Writes DIR/<name>.v, DIR/<name>.vlt (Verilator waivers) and DIR/swatkit.json (the resolved spec,
format, hardware, derived widths, resources and ports). With no options: a Longformer-base head
(attention_window 512, head_dim 64, up to 4096 rows) on 8 key lanes x 8 dim lanes.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from swatkit.options import (
    UsageError,
    add_hardware_options,
    add_workload_options,
    core_params,
    resolve,
)

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from swatkit.rtl.units import DSP_TARGETS

    add_workload_options(parser)
    add_hardware_options(parser)
    parser.add_argument("-o", "--output", metavar="DIR", type=Path, default=Path("swat_build"),
                        help="folder to write into (default: swat_build)")
    parser.add_argument("--name", default="swat_core", help="Verilog top module name")
    parser.add_argument("--dsp", choices=DSP_TARGETS, default="generic",
                        help="multipliers as generic logic for any tool (default), or as Lattice "
                             "ECP5 MULT18X18D blocks with their registers (also writes the "
                             "block's simulation model, MULT18X18D.v)")
    parser.add_argument("--lint", action="store_true",
                        help="run verilator --lint-only -Wall on the result")


def run(args: argparse.Namespace) -> int:
    from swatkit.rtl.generate import LintError, generate, lint

    r = resolve(args)
    hw = core_params(r, r.spec.seq_len).hw
    try:
        out = generate(r.spec, r.fmt, hw, args.output, args.name, dsp=args.dsp)
    except ValueError as e:  # "name must be a Verilog identifier, not ..."
        raise UsageError(f"--{e}") from None
    except OSError as e:
        raise UsageError(f"--output: cannot write {args.output}: {e.strerror}") from None
    import json

    info = json.loads(out.config.read_text())
    res = info["resources"]
    print(f"wrote {out.verilog}  ({out.verilog.stat().st_size // 1024} KiB)")
    print(f"wrote {out.waivers}")
    print(f"wrote {out.config}")
    if out.sim_models:
        print(f"wrote {out.sim_models}  (simulation model of the ECP5 multiplier block)")
    s = r.spec
    print(f"window {s.before}+1+{s.after} keys, head_dim {s.head_dim}, up to {hw.max_seq_len} rows;"
          f" {hw.key_lanes} key lanes x {hw.dim_lanes} dim lanes")
    print(f"multipliers {res['qk_multipliers']} (QK) + {res['sv_multipliers']} (SV) + "
          f"{res['exp_multipliers']} (exp); K/V buffer {res['kv_buffer_bits'] // 1024} Kib, "
          f"scores {res['score_buffer_bits'] // 1024} Kib")
    if args.lint:
        try:
            lint(out)
        except LintError as e:
            print(str(e))
            print("swatkit: error: verilator lint reported warnings")
            return 1
        print("verilator --lint-only -Wall: clean")
    return 0
