"""How the regression's Verilator builds are made (sim/regress.py, "builds"): the harness's
row memories as Verilog modules zeroed by loops, and one compiled Verilator runtime for builds
whose model is compiled at different optimisation levels. The builds' results are the
regression's own tests; these check the forms, without a build."""

from __future__ import annotations

import re

import pytest

from swatkit.sim.regress import (
    FAST,
    MAKE_ARGS,
    QUICK_MAKE_ARGS,
    _runtime_key,
    harness_verilog,
    zero_init_loops,
)

ROW = re.compile(r"^    (\\?[\w$.]+ ?)\[(\d+)\] = (\d+)'h0+;$", re.M)


def test_zero_init_loops_rewrite_only_whole_zero_memories():
    text = "\n".join([
        "module m(clk);",
        "  reg [7:0] mem [2:0];",                 # zeroed row by row: a loop
        "  initial begin",
        "    mem[0] = 8'h00;", "    mem[1] = 8'h00;", "    mem[2] = 8'h00;",
        "  end",
        "  reg [3:0] rom [1:0];",                 # contents: kept
        "  initial begin",
        "    rom[0] = 4'h0;", "    rom[1] = 4'h5;",
        "  end",
        "  reg [3:0] \\a.b  [1:0];",              # an escaped name
        "  initial begin",
        "    \\a.b [0] = 4'h0;", "    \\a.b [1] = 4'h0;",
        "  end",
        "  reg [1:0] r;",                         # one register: kept
        "  initial begin",
        "    r[0] = 2'h0;",
        "  end",
        "  reg [1:0] two [2:1];",                 # not from row 0: kept
        "  initial begin",
        "    two[1] = 2'h0;", "    two[2] = 2'h0;",
        "  end",
        "endmodule", ""])
    assert zero_init_loops(text) == "\n".join([
        "module m(clk);",
        "  reg [7:0] mem [2:0];",
        "  integer swatkit_zero_0;",
        "  initial begin",
        "    for (swatkit_zero_0 = 0; swatkit_zero_0 < 3; swatkit_zero_0 = swatkit_zero_0 + 1)",
        "      mem[swatkit_zero_0] = 8'h0;",
        "  end",
        "  reg [3:0] rom [1:0];",
        "  initial begin",
        "    rom[0] = 4'h0;", "    rom[1] = 4'h5;",
        "  end",
        "  reg [3:0] \\a.b  [1:0];",
        "  integer swatkit_zero_1;",
        "  initial begin",
        "    for (swatkit_zero_1 = 0; swatkit_zero_1 < 2; swatkit_zero_1 = swatkit_zero_1 + 1)",
        "      \\a.b [swatkit_zero_1] = 4'h0;",
        "  end",
        "  reg [1:0] r;",
        "  initial begin",
        "    r[0] = 2'h0;",
        "  end",
        "  reg [1:0] two [2:1];",
        "  initial begin",
        "    two[1] = 2'h0;", "    two[2] = 2'h0;",
        "  end",
        "endmodule", ""])


@pytest.mark.parametrize("build", [b for b in dict.fromkeys(c.build for c in FAST)
                                   if b.id in ("glob_bi9_k2d4", "logits_gqa8_causal16_k4d4")],
                         ids=lambda b: b.id)
def test_harness_row_memories_are_verilog_modules(build):
    """The harness Verilog the regression compiles (:func:`harness_verilog`): each row memory
    of the harness is an instance ``<name>_rows`` of ``swat_rows_mem`` with the memory's width
    and depth, defined once and zeroed by a loop; no memory is zeroed row by row (the FIFOs'
    are loops too), so the text does not grow with the depth."""
    from swatkit.rtl.harness import ROWS_MEM_VERILOG, RowSink, RowSource

    harness, text = harness_verilog(build)
    units = [u for u in vars(harness).values() if isinstance(u, (RowSource, RowSink))]
    assert {u.name for u in units} >= {"tb_q", "tb_kv", "tb_o"}
    instances = re.findall(r"  swat_rows_mem #\(\n    \.ABITS\(32'd(\d+)\),\n"
                           r"    \.DEPTH\(32'd(\d+)\),\n    \.WIDTH\(32'd(\d+)\)\n"
                           r"  \) (tb_\w+_rows) \(", text)
    assert len(instances) == text.count("  swat_rows_mem #(") == len(units)
    assert sorted((name, int(a), int(d), int(w)) for a, d, w, name in instances) == sorted(
        (f"{u.name}_rows", max(1, (u.depth - 1).bit_length()), u.depth, u.layout.size)
        for u in units)
    assert max(u.depth for u in units) >= build.harness_depth
    assert text.count("module swat_rows_mem") == 1 and text.endswith(ROWS_MEM_VERILOG)
    assert re.search(r"initial begin\n    for \(i = 0; i < DEPTH; i = i \+ 1\)\n"
                     r"      rows\[i\] = \{WIDTH\{1'b0\}\};\n", ROWS_MEM_VERILOG)
    assert not ROW.search(text)   # no memory row zeroed by a statement of its own
    assert "swatkit_zero_0" in text   # the read-ahead FIFOs' storage


def _makefiles(path, trace: int = 0) -> None:
    (path / "Vtop.mk").write_text(f"VM_SC = 0\nVERILATOR_ROOT = /v\nVM_TRACE = {trace}\n")
    (path / "Vtop_classes.mk").write_text("VM_GLOBAL_FAST += \\\n  verilated \\\n\n")


def test_one_runtime_for_models_at_any_optimisation(tmp_path):
    """Verilator's runtime objects are compiled with OPT_GLOBAL alone: a build of the model at
    -O0 and one at -O1 share them; another OPT_GLOBAL, or tracing, do not."""
    _makefiles(tmp_path)
    make = ["make", "-C", str(tmp_path), "-f", "Vtop.mk", "VM_TRACE=0"]
    quick, full = (_runtime_key(tmp_path, [*make, *args]) for args in (QUICK_MAKE_ARGS,
                                                                         MAKE_ARGS))
    assert QUICK_MAKE_ARGS != MAKE_ARGS and quick == full
    assert _runtime_key(tmp_path, [*make, *MAKE_ARGS, "OBJCACHE=ccache"]) == full
    assert _runtime_key(tmp_path, [*make, *MAKE_ARGS[:-1], "OPT_GLOBAL=-O2"]) != full
    assert _runtime_key(tmp_path, [*make[:-1], "VM_TRACE=1", *MAKE_ARGS]) != full
    _makefiles(tmp_path, trace=1)
    assert _runtime_key(tmp_path, [*make, *MAKE_ARGS]) != full


@pytest.mark.parametrize(("argv", "message"), [
    (["--builds", "nope"], r"--builds: no build 'nope' \(one of .*bi5_k1d1.*\)"),
    (["--variants", "loop+fast"],
     r"--variants: no variant 'fast' \(one of today, O0, O1, Os, loop\)"),
    (["--dir", "{full}"], r"--dir: .*full is not empty \(the runtime must be built afresh\)"),
])
def test_build_timing_refuses_bad_options(tmp_path, capsys, argv, message):
    """``python -m swatkit.sim.build_timing`` checks its options before it builds anything."""
    from swatkit.sim.build_timing import main

    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("")
    argv = [a.format(full=tmp_path / "full") for a in argv]
    with pytest.raises(SystemExit) as exit_:
        main(["--dir", str(tmp_path / "new"), *argv])
    assert exit_.value.code == 2
    assert re.fullmatch(f"python -m swatkit.sim.build_timing: error: {message}",
                        capsys.readouterr().err.splitlines()[-1])
    assert not (tmp_path / "new").exists()


def test_the_bench_loads_without_amaranth():
    """The cocotb bench runs in every simulator process of the regression: it takes what it
    needs of the core's layouts from the case file (``words``, ``refused``), so that loading
    Amaranth (about 0.8 s of a small case's 2 s here) is not part of every run."""
    import subprocess
    import sys

    code = ("import sys, swatkit.sim.cocotb_swat; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'amaranth'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout


def test_the_case_file_carries_the_refused_commands_and_stats_fields():
    """The bench's numbers equal the core's layouts (the Amaranth form they stand for)."""
    from swatkit.rtl.core import STAT_FIELDS, core_layouts, refused_commands
    from swatkit.sim.regress import BB4, GQ3, LOGIT, bench_words

    for build in (FAST[0].build, BB4, GQ3, LOGIT):
        p = build.params
        words, layouts = bench_words(p), core_layouts(p)
        assert words["o_bits"] == layouts["o"].size
        assert [name for name, _, _ in words["stats"]] == list(STAT_FIELDS)
        value = sum(i + 1 << offset for i, (_, offset, _) in enumerate(words["stats"]))
        unpacked = layouts["stats"].from_bits(value)
        assert [int(getattr(unpacked, n)) for n in STAT_FIELDS] == list(range(1, 8))
        refused = refused_commands(p)
        assert "seq_len=0" in refused
        assert all(0 <= v < 1 << layouts["cmd"].size for v in refused.values())
