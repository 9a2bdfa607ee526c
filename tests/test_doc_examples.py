"""Every example in README.md and docs/*.md runs: each ```python block is executed as a
script (in a fresh interpreter, in a temporary folder); each ```verilog/```systemverilog
block is linted (``verilator --lint-only -Wall``) inside a module, against the core that the
command on its first line (``// swatkit generate ...``) generates, and simulated: it replaces
the instantiation in that core's generated testbench (``<name>_tb.sv``, between
``TB_CORE_BEGIN`` and ``TB_CORE_END``), which drives the example's signals and compares every
output row with the golden model."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from swatkit.rtl.packaging import TB_CORE_BEGIN, TB_CORE_END
from swatkit.support.toolchain import find_verilator

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```(\w+)[^\n]*\n(.*?)^```", re.S | re.M)


def examples(*languages: str) -> list:
    """``pytest.param(code, id="file:line")`` for every fenced block in one of ``languages``."""
    found = []
    for doc in DOCS:
        text = doc.read_text()
        for m in FENCE.finditer(text):
            if m[1] in languages:
                line = text[:m.start()].count("\n") + 1
                found.append(pytest.param(m[2], id=f"{doc.relative_to(ROOT)}:{line}"))
    return found


PYTHON = examples("python")
VERILOG = examples("verilog", "systemverilog")
# each simulation builds a default-size core with Verilator (~30 s at load 5): the AXI4-Stream
# one runs with --runslow (swatkit regress --full); its form is also simulated on a small core
# by tests/rtl/test_packaging.py
VERILOG_SIM = [pytest.param(*p.values, id=p.id, marks=[pytest.mark.slow]
                            if "--interface axis" in p.values[0] else []) for p in VERILOG]


def test_the_docs_have_the_examples_this_file_runs():
    """The extraction finds what is there (a fence typo would drop an example silently)."""
    ids = [p.id for p in PYTHON + VERILOG]
    assert len(PYTHON) == 5 and len(VERILOG) == 2, ids
    assert any(i.startswith("docs/rtl.md") for i in (p.id for p in PYTHON))  # Amaranth
    assert sum(text.count("```python") for text in (d.read_text() for d in DOCS)) == 5


@pytest.mark.parametrize("code", PYTHON)
def test_python_example_runs(code, tmp_path):
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=tmp_path, timeout=600)
    assert done.returncode == 0, done.stderr


_cores: dict[str, Path] = {}
# the Verilog examples generate their cores once per process (_cores): one worker runs them
VERILOG_GROUP = pytest.mark.xdist_group("doc-examples-verilog")


def generated(command: str, tmp_path_factory) -> Path:
    """The folder of ``swatkit generate ...`` (its ``-o`` replaced), one per command."""
    if command not in _cores:
        argv = shlex.split(command)
        assert argv[:2] == ["swatkit", "generate"], command
        args = argv[2:]
        if "-o" in args:   # the example's folder name; ours is a temporary one
            i = args.index("-o")
            del args[i:i + 2]
        out = tmp_path_factory.mktemp("core")
        done = subprocess.run([sys.executable, "-m", "swatkit.cli", "generate", *args,
                               "-o", str(out)], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        _cores[command] = out
    return _cores[command]


@VERILOG_GROUP
@pytest.mark.parametrize("code", VERILOG)
def test_verilog_example_compiles(code, tmp_path, tmp_path_factory):
    core = example_core(code, tmp_path_factory)
    clocks = "aclk, aresetn" if "aclk" in code else "clk, rst"
    (tmp_path / "doc_example.sv").write_text(
        f"module doc_example(input logic {clocks});\n{code}endmodule\n")
    # the example leaves the core's inputs to the design and reads no outputs: only that is
    # waived, in the example only (widths, the command's fields and the pins stay checked)
    (tmp_path / "doc_example.vlt").write_text(
        "`verilator_config\n"
        'lint_off -rule UNDRIVEN -file "*doc_example.sv"\n'
        'lint_off -rule UNUSEDSIGNAL -file "*doc_example.sv"\n')
    v = find_verilator()
    done = subprocess.run(
        [str(v.executable), "--lint-only", "-Wall", str(core / "swat_core.vlt"),
         "doc_example.vlt", "-F", str(core / "swat_core.f"), "doc_example.sv",
         "--top-module", "doc_example"],
        capture_output=True, text=True, cwd=tmp_path, env={**os.environ, **v.env})
    assert done.returncode == 0, done.stderr


def example_core(code: str, tmp_path_factory) -> Path:
    first = code.splitlines()[0]
    m = re.match(r"// (swatkit generate[^(]*)", first)
    assert m, f"the example's first line names the command that generates its core: {first!r}"
    return generated(m[1].strip(), tmp_path_factory)


def simulate_example(code: str, tmp_path, tmp_path_factory) -> subprocess.CompletedProcess:
    """The example's core's testbench with the example in place of its instantiation, built
    with Verilator (``--binary``, C++ at -O0) and run."""
    core = example_core(code, tmp_path_factory)
    tb = (core / "swat_core_tb.sv").read_text()
    begin, end = tb.index(TB_CORE_BEGIN), tb.index(TB_CORE_END)
    (tmp_path / "swat_core_tb.sv").write_text(tb[:begin] + code + tb[end:])
    v = find_verilator()
    env = {**os.environ, **v.env}
    build = subprocess.run(
        [str(v.executable), "--binary", "--timing", "-Wall", "--output-split", "0",
         "-CFLAGS", "-fcoroutines", "-CFLAGS", "-O0", "--Mdir", "obj",
         str(core / "swat_core.vlt"), "-F", str(core / "swat_core.f"), "swat_core_tb.sv",
         "--top-module", "swat_core_tb"],
        capture_output=True, text=True, cwd=tmp_path, env=env)
    if build.returncode != 0:
        return build
    return subprocess.run([str(tmp_path / "obj" / "Vswat_core_tb")], capture_output=True,
                          text=True, cwd=tmp_path, env=env, timeout=600)


@VERILOG_GROUP
@pytest.mark.parametrize("code", VERILOG_SIM)
def test_verilog_example_simulates_against_the_golden_model(code, tmp_path, tmp_path_factory):
    """32 rows of the example's core, driven through the example's own signals under random
    gaps and stalls, each equal to ``fixed_point_attention``'s; the command the example builds
    is the testbench's (checked when it moves). The same build expecting a wrong row fails."""
    done = simulate_example(code, tmp_path, tmp_path_factory)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "PASS: 32 rows of swat_core equal to the golden model" in done.stdout
    wrong = subprocess.run([str(tmp_path / "obj" / "Vswat_core_tb"), "+flip_row=5"],
                           capture_output=True, text=True, cwd=tmp_path)
    assert wrong.returncode != 0 and "row 5: got" in wrong.stdout


@VERILOG_GROUP
def test_a_wrong_command_in_an_example_fails(tmp_path, tmp_path_factory):
    """The lint above can fail: the default core's example with its command's ``after``
    field left out, or with the row count of the issue's bad example (a 13-bit count in a
    31-bit port), does not pass."""
    (example,) = [p.values[0] for p in VERILOG if "--interface" not in p.values[0]]
    for bad, message in [
            (example.replace(", after: 256}", "}"),
             "Assignment pattern missed initializing elements: 'logic[8:0]' 'after'"),
            (example.replace(".cmd__payload(cmd)", ".cmd__payload(n_rows)"),
             "%Warning-WIDTHEXPAND: doc_example.sv:")]:
        assert bad != example
        with pytest.raises(AssertionError, match=re.escape(message)):
            test_verilog_example_compiles(bad, tmp_path, tmp_path_factory)


@VERILOG_GROUP
def test_the_package_excerpt_in_rtl_md_is_what_generate_writes(tmp_path_factory):
    """docs/rtl.md shows the default core's command as ``swatkit generate -o swat_build``
    writes it in ``swat_core_pkg.sv``: the excerpt is verbatim in the generated file."""
    text = (ROOT / "docs" / "rtl.md").read_text()
    (excerpt,) = re.findall(r"^```\n(  // cmd\n.*?)^```", text, re.S | re.M)
    package = (generated("swatkit generate -o swat_build", tmp_path_factory)
               / "swat_core_pkg.sv").read_text()
    assert excerpt in package
    assert "} cmd_t;" in excerpt and "CMD_WIDTH = 31;" in excerpt
