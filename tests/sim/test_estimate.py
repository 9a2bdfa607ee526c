"""Estimation: the cycle model and action counts against the RTL, energy tables, the CLI."""

import csv
import io
import json
import subprocess
import sys

import numpy as np
import pytest

from swatkit.golden import AttentionSpec, NumberFormat
from swatkit.rtl import CoreParams, HardwareConfig
from swatkit.sim.amaranth_core import run_core
from swatkit.sim.cycle_model import swat_cycles
from swatkit.sim.estimate import actions, dense_cycles, estimate, load_table

RTL_CASES = [
    (AttentionSpec(24, 8, 3, 2), HardwareConfig(2, 4, 32), NumberFormat()),
    (AttentionSpec.causal(20, 6, 5), HardwareConfig(2, 3, 32), NumberFormat(out_frac_bits=2)),
    (AttentionSpec(5, 4, 4, 4), HardwareConfig(3, 2, 8), NumberFormat()),
    (AttentionSpec(1, 4, 2, 2), HardwareConfig(1, 1, 8), NumberFormat()),
    (AttentionSpec(40, 4, 3, 5), HardwareConfig(3, 1, 64), NumberFormat(data_bits=4)),
    (AttentionSpec(66, 16, 8, 8), HardwareConfig(4, 8, 80), NumberFormat(prob_bits=12)),
]


@pytest.mark.parametrize(("spec", "hw", "fmt"), RTL_CASES,
                         ids=[f"{s.seq_len}-{s.before}-{s.after}-{h.key_lanes}x{h.dim_lanes}"
                              for s, h, _ in RTL_CASES])
def test_model_equals_rtl(spec, hw, fmt):
    rng = np.random.default_rng(2)
    q, k, v = (rng.integers(fmt.data_min, fmt.data_max + 1, size=(spec.seq_len, spec.head_dim))
               for _ in range(3))
    run = run_core(q, k, v, spec, fmt, hw)
    p = CoreParams(spec, fmt, hw)
    assert swat_cycles(p, spec.seq_len).cycles == run.stats["cycles"]
    predicted = actions(p, spec.seq_len, "swat")
    for name in ("qk_macs", "sv_macs", "exp_ops", "kv_rows", "q_rows", "rows_out"):
        assert predicted[name] == run.stats[name], name


@pytest.mark.parametrize(("spec", "hw"), [
    (AttentionSpec.longformer(20000, 64), HardwareConfig(8, 8, 20000)),
    (AttentionSpec.causal(30000, 128, 4096), HardwareConfig(8, 16, 30000)),
    (AttentionSpec(5000, 16, 16, 16), HardwareConfig(4, 4, 5000)),
    (AttentionSpec(5000, 4, 1, 1), HardwareConfig(1, 1, 5000)),
    (AttentionSpec.causal(5000, 8, 3), HardwareConfig(2, 8, 5000)),
])
def test_periodic_skip_changes_nothing(spec, hw):
    p = CoreParams(spec, NumberFormat(), hw)
    fast = swat_cycles(p, spec.seq_len)
    assert fast.rows_simulated < spec.seq_len  # the skip happened
    assert fast.cycles == swat_cycles(p, spec.seq_len, skip_periodic=False).cycles


def test_model_rejects_lengths_beyond_the_counters():
    p = CoreParams(AttentionSpec(8, 4, 1, 1), NumberFormat(), HardwareConfig(1, 1, 8))
    with pytest.raises(ValueError, match=r"^seq_len must be in 1\.\.8, not 9$"):
        swat_cycles(p, 9)


def test_dense_baseline_is_quadratic_and_bounded_by_compute():
    p = CoreParams(AttentionSpec.longformer(8192, 64), NumberFormat(), HardwareConfig(8, 8, 8192))
    a1, a2 = actions(p, 4096, "dense"), actions(p, 8192, "dense")
    assert a2["qk_macs"] == 4 * a1["qk_macs"] == 4 * 4096 * 4096 * 64
    assert dense_cycles(p, 4096, 16.0) >= 2 * 4096 * 4096 * 64 / 64
    swat = actions(p, 4096, "swat")
    assert swat["kv_rows"] == 4096  # every K/V row read once
    assert swat["offchip_read_bytes"] == 3 * 4096 * 64  # Q, K, V once, int8


def test_energy_tables_cite_sources():
    for name in ("asic45", "fpga"):
        t = load_table(name)
        assert t.source and t.uncertainty
        assert t.mult(8, 8) == pytest.approx(t.energy_pj["int8_mult"])
        assert t.mult(32, 32) == pytest.approx(t.energy_pj["int32_mult"])
        assert t.add(32) == pytest.approx(t.energy_pj["int32_add"])
    assert load_table("asic45").energy_pj["int8_mult"] == 0.2  # Horowitz ISSCC 2014


@pytest.mark.parametrize(("text", "message"), [
    ("name='x'\nsource='y'\n[energy]\nint8_add=1\n",
     "energy table {p} lacks [energy] int32_add, int8_mult, int32_mult, sram_read_64b, "
     "dram_access_64b"),
    ("name='x'\n[energy]\n", "energy table {p} has no 'source'"),
    ("name='x'\nsource='y'\n[energy]\nint8_add=-1\nint32_add=1\nint8_mult=1\nint32_mult=1\n"
     "sram_read_64b=1\ndram_access_64b=1\n",
     "energy table {p}: [energy] int8_add must be a positive number, not -1"),
    ("name = \n", "energy table {p} is not valid TOML: Invalid value (at line 1, column 8)"),
])
def test_bad_tables(tmp_path, text, message):
    path = tmp_path / "t.toml"
    path.write_text(text)
    with pytest.raises(ValueError) as info:
        load_table(str(path))
    assert str(info.value) == message.format(p=path)


def test_user_table_with_static_power(tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text("name='mine'\nsource='my measurements'\nstatic_power_w = 0.5\n[energy]\n"
                    "int8_add=1\nint32_add=4\nint8_mult=2\nint32_mult=32\nsram_read_64b=64\n"
                    "dram_access_64b=800\n")
    p = CoreParams(AttentionSpec(64, 8, 2, 2), NumberFormat(), HardwareConfig(1, 8, 64))
    (rec,) = estimate(p, [64], ["swat"], clock_hz=1e6, table=load_table(str(path)))
    assert rec["tech"] == "mine"
    assert rec["static_energy_j"] == pytest.approx(0.5 * rec["cycles"] / 1e6)
    assert rec["energy_offchip_j"] == pytest.approx((3 * 64 * 8 + 64 * 8) * 100e-12)


def swatkit(*argv):
    return subprocess.run([sys.executable, "-m", "swatkit.cli", "estimate", *argv],
                          capture_output=True, text=True)


def test_cli_json_records():
    done = swatkit("--seq-len", "1024:4096:x2", "--format", "json", "--attention-window", "64",
                   "--key-lanes", "4", "--tech", "fpga")
    assert done.returncode == 0, done.stderr
    records = json.loads(done.stdout)
    assert [(r["dataflow"], r["seq_len"]) for r in records] == [
        ("swat", 1024), ("swat", 2048), ("swat", 4096),
        ("dense", 1024), ("dense", 2048), ("dense", 4096)]
    for r in records:
        for key in ("window", "head_dim", "cycles", "latency_s", "energy_j", "macs",
                    "offchip_bytes", "tech", "qk_macs", "exp_ops", "offchip_read_bytes"):
            assert key in r
        assert r["tech"] == "fpga" and r["window"] == 65


def test_cli_csv_and_plot(tmp_path):
    png = tmp_path / "p.png"
    done = swatkit("--seq-len", "512,1024", "--format", "csv", "--dataflow", "swat",
                   "--causal", "--sliding-window", "128", "--plot", str(png))
    assert done.returncode == 0, done.stderr
    rows = list(csv.DictReader(io.StringIO(done.stdout)))
    assert [int(r["seq_len"]) for r in rows] == [512, 1024]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_clock_from_flow(tmp_path):
    flow = tmp_path / "flow.json"
    flow.write_text(json.dumps({"fmax_mhz": {"sync": {"achieved": 50.0, "constraint": 25}}}))
    done = swatkit("--seq-len", "1024", "--format", "json", "--from-flow", str(flow),
                   "--dataflow", "swat")
    (rec,) = json.loads(done.stdout)
    assert rec["clock_hz"] == 50e6
    assert rec["latency_s"] == pytest.approx(rec["cycles"] / 50e6)


@pytest.mark.parametrize(("argv", "message"), [
    (["--seq-len", "0"], "argument --seq-len: must be positive integers, not 0"),
    (["--seq-len", "8:4:x2"], "argument --seq-len: a range must not end before it starts: "
                              "'8:4:x2'"),
    (["--dataflow", "swat,gpu"], "--dataflow must be a subset of swat, dense, flash, blocksparse, not 'gpu'"),
    (["--tech", "missing.toml"], "--tech: no such energy table: missing.toml (expected asic45 "
                                 "or fpga or a TOML file)"),
    (["--clock-mhz", "0"], "--clock-mhz must be positive, not 0"),
    (["--from-flow", "nope.json"], "--from-flow: no such file: nope.json"),
])
def test_cli_bad_values(argv, message):
    done = swatkit(*argv)
    assert done.returncode == 2
    assert done.stderr == f"swatkit: error: {message}\n"
