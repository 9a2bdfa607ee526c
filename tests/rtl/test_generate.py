"""Verilog generation: files, the recorded configuration, ports, and a clean Verilator lint."""

import dataclasses
import json
import os
import re
import subprocess
import sys
import tomllib

import pytest
from hypothesis import HealthCheck, given, reject, settings
from hypothesis import strategies as st

from swatkit.golden import AttentionSpec, NumberFormat
from swatkit.rtl import CoreParams, HardwareConfig
from swatkit.rtl.generate import LintError, generate, lint, waivers
from swatkit.rtl.packaging import vlnv

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
                              "dilation": 1, "global_tokens": [],
                              "block_size": 0, "num_random_blocks": 0, "pattern_seed": None,
                              "explicit_random_table": None, "sink_tokens": 0}
    assert record["format"]["prob_bits"] == 12
    assert record["hardware"] == {"key_lanes": 2, "dim_lanes": 4, "max_seq_len": 64,
                                  "max_global_tokens": 0, "max_dilation": 1,
                                  "global_engines": 0}
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
    """Every QK, SV and exp multiplier is one MULT18X18D with its A, B and output registers on;
    the model is written beside the Verilog, and the pair lints clean. (That the core computes
    the same with them is the regression's ``ecp5_*`` build.)"""
    out = generate(SPEC, NumberFormat(prob_bits=12), HW, tmp_path, dsp="ecp5")
    text = out.verilog.read_text()
    record = json.loads(out.config.read_text())
    instances = re.findall(r"^\s*MULT18X18D #\((.*?)\) \w+ \(", text, re.M | re.S)
    res = record["resources"]
    assert len(instances) == (res["qk_multipliers"] + res["sv_multipliers"]
                              + res["exp_multipliers"]) == 2 * 2 * 4 + 2
    for params in instances:
        for reg in ("INPUTA", "INPUTB", "OUTPUT"):
            assert re.search(rf'\.REG_{reg}_CLK\("CLK0"\)', params)
    assert out.sim_models.name == "MULT18X18D.v"
    assert "module MULT18X18D" in out.sim_models.read_text()
    assert record["dsp"] == "ecp5" and record["files"]["sim_models"] == "MULT18X18D.v"
    lint(out)


def test_ecp5_falls_back_to_logic_for_wide_operands(tmp_path):
    """prob_bits 18 does not fit an 18x18 block as an unsigned operand: the SV multipliers stay
    generic logic (the vendor tool splits them), the QK and exp ones are blocks."""
    out = generate(SPEC, NumberFormat(prob_bits=18), HW, tmp_path, dsp="ecp5")
    record = json.loads(out.config.read_text())
    count = len(re.findall(r"^\s*MULT18X18D ", out.verilog.read_text(), re.M))
    res = record["resources"]
    assert count == res["qk_multipliers"] + res["exp_multipliers"] == 8 + 2


def swatkit(*argv, cwd=None):
    return subprocess.run([sys.executable, "-m", "swatkit.cli", *argv], capture_output=True,
                          text=True, cwd=cwd)


def test_cli_generate(tmp_path):
    done = swatkit("generate", "-o", str(tmp_path / "out"), "--causal", "--sliding-window", "8",
                   "--seq-len", "32", "--head-dim", "8", "--key-lanes", "2", "--dim-lanes", "2")
    assert done.returncode == 0, done.stderr
    record = json.loads((tmp_path / "out" / "swatkit.json").read_text())
    assert record["spec"]["before"] == 7
    assert record["hardware"] == {"key_lanes": 2, "dim_lanes": 2, "max_seq_len": 32,
                                  "max_global_tokens": 0, "max_dilation": 1,
                                  "global_engines": 0}


@pytest.mark.parametrize(("argv", "message"), [
    (["--attention-window", "7"], "--attention-window must be a positive even integer, not 7"),
    (["--dim-lanes", "5"], "--dim-lanes (5) must divide head_dim (64)"),
    (["--key-lanes", "0"], "--key-lanes must be an integer in 1..64, not 0"),
    (["--dilation", "0"], "--dilation must be a positive integer, not 0"),
    (["--max-dilation", "0"], "--max-dilation must be an integer in 1..64, not 0"),
    (["--max-global-tokens", "-1"], "--max-global-tokens must be an integer in 0..256, not -1"),
    (["--global-tokens", "5,3"], "--global-tokens must be sorted and distinct, not (5, 3)"),
    (["--global-tokens", "4096"], "--global-tokens: global token 4096 is outside the sequence "
                                  "[0, 4096)"),
    (["--name", "a-b"], "--name must be a Verilog identifier, not 'a-b'"),
    (["--name", "module"], "--name must be a Verilog identifier, not 'module'"),
    (["--dsp", "xilinx"], "argument --dsp: invalid choice: 'xilinx' (choose from 'generic', "
                          "'ecp5')"),
    (["--interface", "axi"], "argument --interface: invalid choice: 'axi' (choose from 'core', "
                             "'axis')"),
])
def test_cli_generate_bad_values(tmp_path, argv, message, refused):
    done = refused("generate", "-o", str(tmp_path), *argv)
    assert done.returncode == 2
    assert done.stderr == f"swatkit: error: {message}\n"
    assert done.stdout == ""


@pytest.mark.parametrize(("max_seq_len", "before"), [(15, 1), (16, 1), (1023, 1), (64, 0)])
def test_lint_is_clean_at_every_counter_size(tmp_path, max_seq_len, before):
    """A max_seq_len of 2^k − 1 fills the command field: the core then has no "too long"
    compare (Verilator's CMPCONST); other sizes keep it. A window with no key before the row
    (before = 0) has no constant ``>= 0`` compare (UNSIGNED)."""
    spec = AttentionSpec(max_seq_len, 4, before, 1)
    out = generate(spec, NumberFormat(), HardwareConfig(1, 1, max_seq_len), tmp_path)
    assert "%Warning" not in lint(out)


# -- what a Verilog user reads: header, layouts, files; the round trip ---------------------------


def test_header_states_version_config_clock_reset_and_ports(generated):
    from swatkit.support.version import __version__

    text = generated.verilog.read_text()
    head = text[:text.index("module my_core(")]
    assert head.startswith(f"// my_core: the SWAT sliding-window attention core, generated by "
                           f"swatkit {__version__}.\n")
    assert "//   causal = true\n//   sliding_window = 6\n" in head
    assert "// Reset: rst: synchronous, active high" in head
    assert re.search(r"^//   input\s+\[63:0\] q__payload\s+8 x signed 8 \(element i at "
                     r"\[8i\+7:8i\]\)$", head, re.M)
    assert re.search(r"^//   input\s+\[127:0\] kv__payload\s+k \[63:0\] = .*, v \[127:64\] = ",
                     head, re.M)


def test_record_gives_every_ports_layout_and_the_files(generated):
    record = json.loads(generated.config.read_text())
    assert record["files"] == {"verilog": "my_core.v", "waivers": "my_core.vlt",
                               "config": "swatkit.json", "package": "my_core_pkg.sv",
                               "file_list": "my_core.f", "testbench": "my_core_tb.sv",
                               "fusesoc_core": "my_core.core"}
    folder = generated.verilog.parent
    assert all((folder / f).is_file() for f in record["files"].values())
    by_name = {p["name"]: p for p in record["ports"]}
    q = by_name["q__payload"]["layout"]
    assert (q["kind"], q["count"], q["stride"], q["element"]) == (
        "array", 8, 8, {"kind": "signed", "width": 8})
    kv = by_name["kv__payload"]["layout"]["fields"]
    assert [(f["name"], f["offset"], f["width"]) for f in kv] == [("k", 0, 64), ("v", 64, 64)]
    stats = by_name["stats"]["layout"]["fields"]
    assert [(f["name"], f["offset"]) for f in stats][:2] == [("cycles", 0), ("kv_rows", 48)]
    assert all("layout" not in p for p in record["ports"] if p["width"] == 1)
    assert record["clock_reset"]["reset"].startswith("rst: synchronous, active high")


def test_swatkit_json_regenerates_the_same_verilog(generated, tmp_path):
    done = swatkit("generate", "--config", str(generated.config), "-o", str(tmp_path))
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "my_core.v").read_text() == generated.verilog.read_text()
    printed = swatkit("generate", "--config", str(generated.config), "--print-config")
    assert printed.returncode == 0 and printed.stderr == ""
    assert tomllib.loads(printed.stdout) == json.loads(generated.config.read_text())["config"]


def test_print_config_is_the_resolved_toml(tmp_path):
    done = swatkit("generate", "--print-config", "--head-dim", "32", "--key-lanes", "4",
                   "--dsp", "ecp5", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert list(tmp_path.iterdir()) == []  # writes nothing
    tables = tomllib.loads(done.stdout)
    assert tables["spec"] == {"seq_len": 4096, "head_dim": 32, "attention_window": 512,
                              "dilation": 1, "global_tokens": []}
    assert tables["hardware"] == {"key_lanes": 4, "dim_lanes": 8}
    assert tables["generate"] == {"name": "swat_core", "dsp": "ecp5", "interface": "core"}
    assert tables["format"] == dataclasses.asdict(NumberFormat())


def test_options_override_the_config_file(tmp_path):
    good = tmp_path / "good.toml"
    good.write_text("[spec]\nseq_len = 32\nhead_dim = 4\nattention_window = 4\n"
                    "[hardware]\nkey_lanes = 1\ndim_lanes = 2\n[generate]\nname = 'g'\n")
    done = swatkit("generate", "--config", str(good), "--causal", "--sliding-window", "3",
                   "--print-config")
    assert done.returncode == 0, done.stderr
    tables = tomllib.loads(done.stdout)
    assert tables["spec"]["causal"] and tables["spec"]["sliding_window"] == 3
    assert "attention_window" not in tables["spec"] and tables["generate"]["name"] == "g"
    bad = tmp_path / "bad.toml"
    bad.write_text("[generate]\nname = 'a-b'\n")
    done = swatkit("generate", "--config", str(bad))
    assert done.stderr == (f"swatkit: error: [generate] name in {bad} must be a Verilog "
                           "identifier, not 'a-b'\n")


def test_regenerating_removes_the_files_of_an_earlier_run(tmp_path):
    small = ["-o", str(tmp_path), "--seq-len", "16", "--head-dim", "4", "--attention-window",
             "2", "--key-lanes", "1", "--dim-lanes", "2"]
    assert swatkit("generate", *small, "--dsp", "ecp5").returncode == 0
    assert (tmp_path / "MULT18X18D.v").is_file()
    (tmp_path / "mine.v").write_text("// not swatkit's\n")
    done = swatkit("generate", *small, "--name", "other")
    assert done.returncode == 0, done.stderr
    assert sorted(f.name for f in tmp_path.iterdir()) == [
        "mine.v", "other.core", "other.f", "other.v", "other.vlt", "other_pkg.sv",
        "other_tb.sv", "swatkit.json"]
    for stale in ("MULT18X18D.v", "swat_core.v", "swat_core_pkg.sv", "swat_core.core",
                  "swat_core_tb.sv"):
        assert f"removed {tmp_path / stale}" in done.stdout


def test_wasteful_window_warns_on_one_line(tmp_path):
    done = swatkit("generate", "-o", str(tmp_path), "--seq-len", "8", "--head-dim", "2",
                   "--attention-window", "32", "--key-lanes", "1", "--dim-lanes", "2")
    assert done.returncode == 0
    assert done.stderr == ("swatkit: warning: --attention-window 32 makes a 33-key window, but "
                           "with --seq-len = 8 no row has more than 15 keys: the window's "
                           "buffers are sized for keys that never exist\n")


def test_a_window_no_option_makes_has_its_fields_in_the_header(tmp_path):
    out = generate(AttentionSpec(16, 4, 1, 3), NumberFormat(), HardwareConfig(1, 2, 16), tmp_path)
    head = out.verilog.read_text()[:1000]
    assert "//   before = 1\n//   after = 3\n" in head and "--config" not in head
    assert json.loads(out.config.read_text())["config"] is None
    done = swatkit("generate", "--config", str(out.config), "--print-config")
    assert done.returncode == 2
    assert done.stderr.startswith(f"swatkit: error: --config: {out.config} has no \"config\" "
                                  "record")


def test_cli_generate_bigbird(tmp_path):
    """A small BigBird core: Verilog, its maxima and their cost in the report and the record,
    the kvr stream and the {seq_len, random_blocks} command in the header and the record."""
    out = tmp_path / "bb"
    done = swatkit("generate", "-o", str(out), "--bigbird", "4", "--random-blocks", "1",
                   "--seq-len", "64", "--head-dim", "8", "--key-lanes", "2", "--dim-lanes", "4")
    assert done.returncode == 0, done.stderr
    record = json.loads((out / "swatkit.json").read_text())
    derived, res = record["derived"], record["resources"]
    assert (derived["block_size"], derived["max_random_blocks"]) == (4, 1)
    assert derived["max_global_tokens"] == 8   # the first and last blocks
    # (two global-row engines of dim_lanes q·k multipliers: the default for this core)
    assert res["random_buffer_bits"] > 0 and res["global_engines"] == 2
    assert res["global_qk_multipliers"] == 2 * 4
    assert record["config"]["spec"] == {"seq_len": 64, "head_dim": 8, "bigbird_block": 4,
                                        "random_blocks": 1}
    ports = {p["name"]: p for p in record["ports"]}
    assert {"kvr__payload", "kvr__valid", "kvr__ready", "qg__payload", "kvg__payload",
            "og__payload"} <= set(ports)
    assert ports["kvr__payload"]["layout"] == ports["kv__payload"]["layout"]
    assert [f["name"] for f in ports["cmd__payload"]["layout"]["fields"]] == [
        "seq_len", "random_blocks"]
    text = (out / "swat_core.v").read_text()
    assert "//   bigbird_block = 4\n//   random_blocks = 1\n" in text
    assert re.search(r"^//   input +\[7:0\] cmd__payload +seq_len \[6:0\], random_blocks "
                     r"\[7:7\]$", text, re.M)
    assert re.search(r"^module swat_core\(", text, re.M)
    assert done.stdout.splitlines()[3:6] == [
        f"wrote {out / 'swat_core_pkg.sv'}  (package swat_core_pkg: widths, port field layouts)",
        f"wrote {out / 'swat_core.f'}  (sources in compile order)",
        f"wrote {out / 'swat_core.core'}  (FuseSoC core {vlnv('swat_core')})"]
    assert done.stdout.splitlines()[6:] == [
        "BigBird blocks of 4 rows (12-key block window), first and last blocks global (8 rows), "
        "up to 1 random block per query block, head_dim 8, up to 64 rows; 2 key lanes x 4 dim "
        "lanes",
        f"multipliers 8 (QK) + 8 (SV) + 2 (exp); K/V buffer {res['kv_buffer_bits'] // 1024} Kib,"
        f" scores {res['score_buffer_bits'] // 1024} Kib",
        f"global blocks: 2 global-row engines side by side (8 + 8 + 2 multipliers, rows "
        f"{res['global_buffer_bits'] // 1024} Kib, state {res['global_accumulator_bits'] // 1024}"
        f" Kib), global K/V columns resident (flags {res['flag_bits'] // 1024} Kib)",
        f"random blocks: up to 4 K/V rows per query block on kvr, double-buffered: "
        f"random_buffer_bits {res['random_buffer_bits'] // 1024} Kib",
        "run command: seq_len (a multiple of the block size), random_blocks (0..1)"]
    # the record regenerates the same core
    again = swatkit("generate", "-o", str(tmp_path / "again"), "--config",
                    str(out / "swatkit.json"))
    assert again.returncode == 0, again.stderr
    assert (tmp_path / "again" / "swat_core.v").read_text() == text


# -- every legal configuration lints clean (a property test) -------------------------------------

KINDS = ("longformer", "causal", "dilated", "one-global", "globals", "bigbird")
# configurations per window kind and run (~3 s each at load 2; drawn afresh every run), 4 with
# --runslow (tests/conftest.py SLOW_EXAMPLES); more: SWATKIT_LINT_EXAMPLES
LINT_EXAMPLES = int(os.environ.get("SWATKIT_LINT_EXAMPLES", "1"))


@st.composite
def legal_configs(draw, kind):
    """(spec, fmt, hw, dsp, interface): a small configuration of window kind ``kind``, with
    lanes and word groups that need not be powers of two; CoreParams may still refuse it (then
    the test rejects the example)."""
    dim_lanes = draw(st.integers(1, 5))
    head_dim = dim_lanes * draw(st.integers(1, 7))   # head_dim / dim_lanes: 3, 5, 6, 7 too
    hw = {}
    if kind == "bigbird":
        block = draw(st.sampled_from([1, 2, 4]))
        n = block * draw(st.integers(3, 10))
        r = draw(st.sampled_from([0, 1, 2]))
        try:
            spec = AttentionSpec.bigbird(n, head_dim, block, r, seed=draw(st.integers(0, 99)))
        except ValueError:   # more random blocks than a row has: not legal
            reject()
        if draw(st.booleans()):
            hw["global_engines"] = draw(st.sampled_from([e for e in (1, 2, 4) if e <= block]))
    else:
        n = draw(st.integers(4, 64))
        if kind == "causal" or (kind != "longformer" and draw(st.booleans())):
            spec = AttentionSpec.causal(n, head_dim, draw(st.integers(1, 12)))
        else:
            spec = AttentionSpec.longformer(n, head_dim, 2 * draw(st.integers(1, 6)))
        if kind == "dilated":
            spec = spec.replace(dilation=draw(st.integers(2, 4)))
        if kind == "one-global":
            spec = spec.replace(global_tokens=(draw(st.integers(0, n - 1)),))
        if kind == "globals":
            spec = spec.replace(global_tokens=tuple(sorted(draw(st.sets(
                st.integers(0, n - 1), min_size=2, max_size=4)))))
        if draw(st.booleans()):   # run-time headroom beyond the spec's own pattern
            hw["max_global_tokens"] = draw(st.integers(0, 3))
            hw["max_dilation"] = draw(st.integers(1, 3))
    hw = HardwareConfig(key_lanes=draw(st.integers(1, min(spec.window, 5))),
                        dim_lanes=dim_lanes, max_seq_len=draw(st.integers(spec.seq_len, 200)),
                        **hw)
    fmt = NumberFormat(**draw(st.fixed_dictionaries({}, optional={
        "data_bits": st.integers(2, 10), "prob_bits": st.integers(4, 18),
        "exp_frac_bits": st.integers(1, 8), "const_bits": st.integers(4, 18),
        "out_bits": st.integers(2, 16), "out_frac_bits": st.integers(0, 4)})))
    dsp = draw(st.sampled_from(["generic", "generic", "ecp5"]))
    interface = draw(st.sampled_from(["core", "core", "axis"]))
    return spec, fmt, hw, dsp, interface


def check_lints_clean(out_dir, spec, fmt, hw, dsp="generic", interface="core"):
    print(f"lint {spec} {fmt} {hw} dsp={dsp} interface={interface}")
    out = generate(spec, fmt, hw, out_dir, dsp=dsp, interface=interface)
    assert "%Warning" not in lint(out)


@pytest.mark.parametrize("kind", KINDS)
@settings(max_examples=LINT_EXAMPLES, deadline=None, derandomize=False, print_blob=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_every_legal_configuration_lints_clean(tmp_path, kind, data):
    """Whatever legal configuration a user picks, ``generate --lint`` passes: each window kind
    (Longformer band, causal, dilated, exactly one global token, several, BigBird) with lanes
    and word groups (head_dim / dim_lanes) that are not powers of two, number formats, both DSP
    targets and both interfaces."""
    spec, fmt, hw, dsp, interface = data.draw(legal_configs(kind))
    try:
        CoreParams(spec, fmt, hw)
    except ValueError:   # (and LimitError) a combination the core refuses: not legal
        reject()
    check_lints_clean(tmp_path / f"{kind}-{dsp}-{interface}-{len(list(tmp_path.iterdir()))}",
                      spec, fmt, hw, dsp, interface)


@pytest.mark.parametrize(("spec", "hw"), [
    # exactly one global token: a one-row global-row memory (was `wire [-1:0]`, ASCRANGE)
    (AttentionSpec.longformer(16, 4, 4, global_tokens=(0,)), HardwareConfig(2, 2, 16)),
    # head_dim / dim_lanes = 3: the row copier's word index (was CASEINCOMPLETE)
    (AttentionSpec.causal(16, 6, 5), HardwareConfig(3, 2, 16)),
], ids=["one-global-token", "three-words-per-row"])
def test_shapes_that_once_failed_lint_clean(tmp_path, spec, hw):
    check_lints_clean(tmp_path, spec, NumberFormat(), hw)


def test_one_random_row_lints_clean(tmp_path):
    """BigBird with block 1 and one random block (r·b = 1 random row per query block: the
    random-row counter's range was 0 bits wide, ``wire [-1:0]``)."""
    check_lints_clean(tmp_path, AttentionSpec.bigbird(6, 1, 1, 1), NumberFormat(),
                      HardwareConfig(1, 1, 6))
