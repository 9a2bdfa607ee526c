"""Verilog generation: files, the recorded configuration, ports, and a clean Verilator lint."""

import json
import re
import subprocess
import sys

import pytest

from swatkit.golden import AttentionSpec, NumberFormat
from swatkit.rtl import HardwareConfig
from swatkit.rtl.generate import LintError, generate, lint, waivers

SPEC = AttentionSpec.causal(64, 8, sliding_window=6)
HW = HardwareConfig(key_lanes=2, dim_lanes=4, max_seq_len=64)


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    return generate(SPEC, NumberFormat(prob_bits=12), HW, tmp_path_factory.mktemp("gen"),
                    name="my_core")


def test_files_and_recorded_config(generated):
    assert generated.verilog.name == "my_core.v"
    text = generated.verilog.read_text()
    assert re.search(r"^module my_core\(", text, re.M)
    record = json.loads(generated.config.read_text())
    assert record["top"] == "my_core"
    assert record["spec"] == {"seq_len": 64, "head_dim": 8, "before": 5, "after": 0,
                              "dilation": 1, "global_tokens": []}
    assert record["format"]["prob_bits"] == 12
    assert record["hardware"] == {"key_lanes": 2, "dim_lanes": 4, "max_seq_len": 64}
    assert record["widths"]["score"] == 2 * 8 + 3
    assert record["derived"]["groups"] == 2


def test_ports_in_record_match_the_verilog(generated):
    text = generated.verilog.read_text()
    header = text[text.index("module my_core("):]
    header = header[:header.index("endmodule")]
    for port in json.loads(generated.config.read_text())["ports"]:
        width = f"[{port['width'] - 1}:0] " if port["width"] > 1 else ""
        assert re.search(rf"^\s*{port['direction']} {re.escape(width)}{port['name']};",
                         header, re.M), port


def test_lint_is_clean_with_waivers(generated):
    assert "%Warning" not in lint(generated)


@pytest.mark.parametrize(("fault", "rule"), [
    ("  wire [3:0] swatkit_x;\n  assign swatkit_x = 8'hff;\n", "WIDTHTRUNC"),
    ("  reg swatkit_l;\n  always @* if (rst) swatkit_l = 1'b1;\n", "LATCH"),
])
def test_lint_catches_a_real_fault(generated, tmp_path, fault, rule):
    """The waivers do not hide faults: a truncation or a latch still fails the lint."""
    bad = tmp_path / generated.verilog.name
    text = generated.verilog.read_text()
    top = text.index("module my_core(")
    end = text.index("endmodule", top)
    bad.write_text(text[:end] + fault + text[end:])
    (tmp_path / generated.waivers.name).write_text(generated.waivers.read_text())
    broken = type(generated)(bad, generated.config, tmp_path / generated.waivers.name)
    with pytest.raises(LintError, match=rule):
        lint(broken)


def test_waivers_name_only_generator_idioms():
    rules = re.findall(r"lint_off -rule (\w+)", waivers("x.v"))
    assert sorted(rules) == ["DECLFILENAME", "PROCASSINIT", "UNUSEDSIGNAL", "WIDTHEXPAND",
                             "WIDTHTRUNC"]
    assert all('-file "*x.v"' in line for line in waivers("x.v").splitlines()
               if line.startswith("lint_off"))


def test_bad_name():
    with pytest.raises(ValueError, match=r"^name must be a Verilog identifier, not '1x'$"):
        generate(SPEC, hw=HW, out_dir=".", name="1x")


def test_bad_dsp():
    with pytest.raises(ValueError, match=r"^dsp must be one of generic, ecp5, not 'xilinx'$"):
        generate(SPEC, hw=HW, out_dir=".", dsp="xilinx")


def test_generic_export_has_no_vendor_primitive(generated):
    assert "MULT18X18D" not in generated.verilog.read_text()
    assert generated.sim_models is None
    assert json.loads(generated.config.read_text())["dsp"] == "generic"


def test_ecp5_export(tmp_path):
    """Every QK and SV multiplier is one MULT18X18D with its A, B and output registers on; the
    model is written beside the Verilog, and the pair lints clean. (That the core computes the
    same with them is the regression's ``ecp5_*`` build.)"""
    out = generate(SPEC, NumberFormat(prob_bits=12), HW, tmp_path, dsp="ecp5")
    text = out.verilog.read_text()
    record = json.loads(out.config.read_text())
    instances = re.findall(r"^\s*MULT18X18D #\((.*?)\) \w+ \(", text, re.M | re.S)
    res = record["resources"]
    assert len(instances) == res["qk_multipliers"] + res["sv_multipliers"] == 2 * 2 * 4
    for params in instances:
        for reg in ("INPUTA", "INPUTB", "OUTPUT"):
            assert re.search(rf'\.REG_{reg}_CLK\("CLK0"\)', params)
    assert out.sim_models.name == "MULT18X18D.v"
    assert "module MULT18X18D" in out.sim_models.read_text()
    assert record["dsp"] == "ecp5" and record["files"]["sim_models"] == "MULT18X18D.v"
    lint(out)


def test_ecp5_falls_back_to_logic_for_wide_operands(tmp_path):
    """prob_bits 18 does not fit an 18x18 block as an unsigned operand: the SV multipliers stay
    generic logic (the vendor tool splits them), the QK ones are blocks."""
    out = generate(SPEC, NumberFormat(prob_bits=18), HW, tmp_path, dsp="ecp5")
    record = json.loads(out.config.read_text())
    count = len(re.findall(r"^\s*MULT18X18D ", out.verilog.read_text(), re.M))
    assert count == record["resources"]["qk_multipliers"] == 8


def swatkit(*argv, cwd=None):
    return subprocess.run([sys.executable, "-m", "swatkit.cli", *argv], capture_output=True,
                          text=True, cwd=cwd)


def test_cli_generate(tmp_path):
    done = swatkit("generate", "-o", str(tmp_path / "out"), "--causal", "--sliding-window", "8",
                   "--seq-len", "32", "--head-dim", "8", "--key-lanes", "2", "--dim-lanes", "2")
    assert done.returncode == 0, done.stderr
    record = json.loads((tmp_path / "out" / "swatkit.json").read_text())
    assert record["spec"]["before"] == 7
    assert record["hardware"] == {"key_lanes": 2, "dim_lanes": 2, "max_seq_len": 32}


@pytest.mark.parametrize(("argv", "message"), [
    (["--attention-window", "7"], "--attention-window must be a positive even integer, not 7"),
    (["--dim-lanes", "5"], "--dim-lanes (5) must divide head_dim (64)"),
    (["--key-lanes", "0"], "--key-lanes must be an integer in 1..64, not 0"),
    (["--dilation", "2"],
     "the SWAT core does not implement dilation yet (dilation is 2; must be 1)"),
    (["--global-tokens", "0"],
     "the SWAT core does not implement global tokens yet (global_tokens is (0,); must be empty)"),
    (["--name", "a-b"], "--name must be a Verilog identifier, not 'a-b'"),
    (["--dsp", "xilinx"], "argument --dsp: invalid choice: 'xilinx' (choose from 'generic', "
                          "'ecp5')"),
])
def test_cli_generate_bad_values(tmp_path, argv, message):
    done = swatkit("generate", "-o", str(tmp_path), *argv)
    assert done.returncode == 2
    assert done.stderr == f"swatkit: error: {message}\n"
    assert done.stdout == ""


@pytest.mark.parametrize("max_seq_len", [15, 16, 1023])
def test_lint_is_clean_at_every_counter_size(tmp_path, max_seq_len):
    """A max_seq_len of 2^k − 1 fills the command field: the core then has no "too long"
    compare (Verilator's CMPCONST); other sizes keep it."""
    spec = AttentionSpec(max_seq_len, 4, 1, 1)
    out = generate(spec, NumberFormat(), HardwareConfig(1, 1, max_seq_len), tmp_path)
    assert "%Warning" not in lint(out)
