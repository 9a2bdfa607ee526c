"""Estimation: the cycle model and action counts against the RTL, energy tables, the CLI."""

import contextlib
import csv
import dataclasses
import io
import json
import re
import subprocess
import sys

import numpy as np
import pytest

from swatkit.cli import main
from swatkit.golden import AttentionSpec, NumberFormat
from swatkit.rtl import CoreParams, HardwareConfig
from swatkit.rtl.global_rows import global_row_cycles
from swatkit.sim.amaranth_core import run_core
from swatkit.sim.cycle_model import swat_actions, swat_cycles
from swatkit.sim.estimate import (
    COMPONENTS,
    Tiles,
    actions,
    dense_cycles,
    dense_tile_rows,
    estimate,
    estimate_model,
    load_table,
    passes,
    sink_columns,
    tile_counts,
)

RTL_CASES = [
    (AttentionSpec(24, 8, 3, 2), HardwareConfig(2, 4, 32), NumberFormat()),
    (AttentionSpec.causal(20, 6, 5), HardwareConfig(2, 3, 32), NumberFormat(out_frac_bits=2)),
    (AttentionSpec(5, 4, 4, 4), HardwareConfig(3, 2, 8), NumberFormat()),
    (AttentionSpec(1, 4, 2, 2), HardwareConfig(1, 1, 8), NumberFormat()),
    (AttentionSpec(40, 4, 3, 5), HardwareConfig(3, 1, 64), NumberFormat(data_bits=4)),
    (AttentionSpec(66, 16, 8, 8), HardwareConfig(4, 8, 80), NumberFormat(prob_bits=12)),
    # the run's pattern: global tokens (columns and rows), dilation, both, causal + dilation
    (AttentionSpec(24, 8, 3, 2, 2, (0, 5)), HardwareConfig(2, 4, 32), NumberFormat()),
    (AttentionSpec.causal(21, 4, 4).replace(dilation=3, global_tokens=(20,)),
     HardwareConfig(2, 2, 32), NumberFormat()),
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
    assert predicted["global_rows_out"] == len(spec.global_tokens)


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
     "energy table {p}: [energy] int8_add must be a positive finite number, not -1"),
    ("name = \n", "energy table {p} is not valid TOML: Invalid value (at line 1, column 8)"),
    ("name='x'\nsource='y'\nenergy=3\n", "energy table {p}: energy must be a table ([energy])"),
    ("name='x'\nsource='y'\n[energy]\nint8_add=inf\nint32_add=1\nint8_mult=1\nint32_mult=1\n"
     "sram_read_64b=1\ndram_access_64b=1\n",
     "energy table {p}: [energy] int8_add must be a positive finite number, not inf"),
])
def test_bad_tables(tmp_path, text, message):
    path = tmp_path / "t.toml"
    path.write_text(text)
    with pytest.raises(ValueError) as info:
        load_table(str(path))
    assert str(info.value) == message.format(p=path)


def test_unreadable_tables(tmp_path):
    with pytest.raises(ValueError, match=rf"^energy table {re.escape(str(tmp_path))} is a folder, "
                                         r"not a file$"):
        load_table(str(tmp_path))
    (tmp_path / "t.toml").write_bytes(b"\xff\xfe")
    with pytest.raises(ValueError, match=r"^energy table .*t\.toml is not UTF-8 text"):
        load_table(str(tmp_path / "t.toml"))


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
    """``swatkit estimate ARGV`` in this process (:func:`swatkit.cli.main`, as the other CLI
    tests run it; a process of its own took 0.6-1 s a call, half a minute of the suite): its
    exit code, standard output and standard error, as a finished process's."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(["estimate", *argv])
        except SystemExit as e:   # (argparse's exit: the command prints and exits 2)
            code = e.code
    return subprocess.CompletedProcess(["swatkit", "estimate", *argv], code, out.getvalue(),
                                       err.getvalue())


def test_cli_json_records():
    done = swatkit("--seq-len", "1024:4096:x2", "--format", "json", "--attention-window", "64",
                   "--key-lanes", "4", "--tech", "fpga")
    assert done.returncode == 0, done.stderr
    records = json.loads(done.stdout)
    assert [(r["dataflow"], r["seq_len"]) for r in records] == [
        (d, n) for d in ("swat", "dense", "flash", "blocksparse") for n in (1024, 2048, 4096)]
    for r in records:
        for key in ("window", "head_dim", "cycles", "latency_s", "energy_j", "macs",
                    "offchip_bytes", "tech", "qk_macs", "exp_ops", "offchip_read_bytes",
                    "model", "layers", "heads", "kv_heads", "head_schedule", "cores",
                    "energy_breakdown", "latency_ratio_to_swat", "energy_ratio_to_swat"):
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


FMAX = {"sync": {"achieved": 50.0, "constraint": 25}}
ULX3S_CORE = {"head_dim": 64, "window": 65, "key_lanes": 4, "dim_lanes": 8, "data_bits": 8,
              "cycles_per_row": 136}


def test_cli_clock_and_core_from_flow(tmp_path):
    flow = tmp_path / "flow.json"
    flow.write_text(json.dumps({"board": "ulx3s-85f", "fmax_mhz": FMAX, "core": ULX3S_CORE}))
    done = swatkit("--seq-len", "1024", "--format", "json", "--from-flow", str(flow),
                   "--dataflow", "swat")
    assert done.returncode == 0, done.stderr
    (rec,) = json.loads(done.stdout)
    assert rec["clock_hz"] == 50e6
    assert rec["latency_s"] == pytest.approx(rec["cycles"] / 50e6)
    # no core options: the flow's core is estimated
    assert (rec["window"], rec["key_lanes"], rec["dim_lanes"]) == (65, 4, 8)
    same = swatkit("--seq-len", "1024", "--format", "json", "--from-flow", str(flow),
                   "--dataflow", "swat", "--attention-window", "64", "--key-lanes", "4")
    assert json.loads(same.stdout)[0]["cycles"] == rec["cycles"]


@pytest.mark.parametrize(("report", "argv", "message"), [
    ({"board": "ulx3s-85f", "fmax_mhz": FMAX, "core": ULX3S_CORE}, ["--key-lanes", "8"],
     "--from-flow: {p} built head_dim 64, window 65, 4x8 lanes, data_bits 8 (its core record), "
     "not the core estimated here (head_dim 64, window 65, 8x8 lanes, data_bits 8)"),
    # a report without a core record: the board's default configuration is assumed
    ({"board": "icebreaker", "fmax_mhz": FMAX}, ["--attention-window", "16"],
     "--from-flow: {p} built head_dim 8, window 9, 1x2 lanes, data_bits 8 (the icebreaker "
     "default (it has no core record)), not the core estimated here (head_dim 8, window 17, "
     "1x2 lanes, data_bits 8)"),
    ({"fmax_mhz": FMAX}, [],
     "--from-flow: {p} records neither its core nor a known board, so it cannot be checked "
     "against the core estimated here"),
    ({"board": "ulx3s-85f", "fmax_mhz": FMAX, "core": ULX3S_CORE}, ["--model", "mistral-7b"],
     "--from-flow: {p} built head_dim 64, window 65, 4x8 lanes, data_bits 8 (its core record), "
     "not the core estimated here (head_dim 128, window 4096, 8x8 lanes, data_bits 8)"),
])
def test_cli_from_flow_refuses_another_core(tmp_path, report, argv, message):
    flow = tmp_path / "flow.json"
    flow.write_text(json.dumps(report))
    done = swatkit("--seq-len", "1024", "--from-flow", str(flow), *argv)
    assert done.returncode == 2
    assert done.stderr == f"swatkit: error: {message.format(p=flow)}\n"


def test_cli_grouped_model_table():
    # a GQA model: the K/V columns and the sink line; per group by default, per head if serial
    done = swatkit("--model", "gpt-oss-20b", "--seq-len", "1024", "--dataflow", "swat")
    assert done.returncode == 0, done.stderr
    assert "K/V off-chip" in done.stdout and "K/V reads" in done.stdout
    assert ("SWAT gqa: each K/V row fetched once for the 8 query heads of its group, on 1 "
            "engine;") in done.stdout
    assert "learned sinks: one sink logit per query head" in done.stdout
    rows = [line for line in done.stdout.splitlines() if line.startswith("│ swat ")]
    assert rows[0].split("│")[-2].strip() == "1"    # K/V reads of the sliding layers
    done = swatkit("--model", "gpt-oss-20b", "--seq-len", "1024", "--dataflow", "swat",
                   "--head-schedule", "serial")
    rows = [line for line in done.stdout.splitlines() if line.startswith("│ swat ")]
    assert rows[0].split("│")[-2].strip() == "8" and "serial: K/V fetched per query head" in (
        done.stdout)
    done = swatkit("--model", "gpt-oss-20b", "--seq-len", "1024", "--dataflow", "swat",
                   "--head-engines", "8")
    assert "gqa heads on 8 head engines" in done.stdout.replace("\n", " ")


def test_cli_model_json_and_breakdown_table():
    done = swatkit("--model", "longformer-base", "--seq-len", "2048", "--format", "json",
                   "--cores", "3", "--dataflow", "swat,blocksparse")
    assert done.returncode == 0, done.stderr
    records = json.loads(done.stdout)
    assert [(r["dataflow"], r["scope"]) for r in records] == [
        ("swat", "layer"), ("swat", "model"), ("blocksparse", "layer"), ("blocksparse", "model")]
    layer, model = records[:2]
    assert (model["model"], model["layers"], model["heads"], model["kv_heads"],
            model["head_schedule"], model["cores"]) == ("longformer-base", 12, 12, 12,
                                                       "serial", 3)
    assert model["cycles"] == 12 * layer["cycles"]
    assert set(model["energy_breakdown"]) == set(COMPONENTS)
    assert records[3]["latency_ratio_to_swat"] == pytest.approx(
        records[3]["latency_s"] / model["latency_s"])
    table = swatkit("--model", "longformer-base", "--seq-len", "4096", "--breakdown",
                    "--dataflow", "swat,flash")
    assert table.returncode == 0, table.stderr
    assert "E buffers" in table.stdout and "model (12)" in table.stdout
    assert "not modelled: global tokens" in table.stdout
    assert "N=4096: flash/SWAT latency" in table.stdout
    # BigBird's whole pattern: its random blocks' K/V in the table, nothing left unmodelled
    table = swatkit("--model", "bigbird-roberta-base", "--seq-len", "4096",
                    "--dataflow", "swat,flash")
    assert table.returncode == 0, table.stderr
    assert "not modelled" not in table.stdout and "random K/V" in table.stdout
    assert "N=4096: flash/SWAT latency" in table.stdout


@pytest.mark.parametrize(("argv", "message"), [
    (["--seq-len", "0"], "argument --seq-len: must be positive integers, not 0"),
    (["--seq-len", "8:4:x2"], "argument --seq-len: a range must not end before it starts: "
                              "'8:4:x2'"),
    (["--dataflow", "swat,gpu"], "--dataflow must be a subset of swat, dense, flash, "
                                 "blocksparse, not 'gpu'"),
    (["--tech", "missing.toml"], "--tech: no such energy table: missing.toml (expected asic45 "
                                 "or fpga or a TOML file)"),
    (["--clock-mhz", "0"], "--clock-mhz must be positive and finite, not 0"),
    (["--clock-mhz", "inf"], "--clock-mhz must be positive and finite, not inf"),
    (["--head-dim", "4611686018427387904"], "--head-dim must be at most 1024 (the practical "
                                            "limit of Verilog generation), not "
                                            "4611686018427387904"),
    (["--seq-len", "1:100000000000000:+1"], "argument --seq-len: at most 256 lengths, not "
                                            "100,000,000,000,000 from '1:100000000000000:+1'"),
    (["--from-flow", "nope.json"], "--from-flow: no such file: nope.json"),
    (["--model", "gpt-5"], "--model: unknown model 'gpt-5': not a preset (longformer-base, "
                           "longformer-large, bigbird-roberta-base, mistral-7b, gpt-oss-20b, "
                           "gemma-3-1b) and no such "
                           "file or folder"),
    (["--model", "mistral-7b", "--head-dim", "64"], "--head-dim cannot be combined with --model "
                                                    "(the model sets the attention pattern and "
                                                    "head_dim)"),
    (["--model", "mistral-7b", "--dim-lanes", "3"],
     "--model: model mistral-7b, layer 0 (causal sliding_window 4096): dim_lanes (3) must divide "
     "head_dim (128)"),
    (["--cores", "0"], "--cores must be a positive integer, not 0"),
    (["--tile-q", "0"], "--tile-q must be a positive integer, not 0"),
    (["--tile-k", "-3"], "--tile-k must be a positive integer, not -3"),
    (["--tile-k", str(10 ** 30)], f"--tile-k must be at most 16777216 (no sequence is longer), "
                                  f"not {10 ** 30}"),
    (["--cores", "1025"], "--cores must be at most 1024 (a practical limit: one device holds far "
                          "fewer), not 1025"),
    (["--model", "gpt-oss-20b", "--head-engines", "3"],
     "--head-engines must divide the query heads per K/V head (8), not 3 (--model gpt-oss-20b)"),
    (["--model", "mistral-7b", "--head-schedule", "serial", "--head-engines", "2"],
     "--head-engines must be 1 under --head-schedule serial (the engines of a K/V group are "
     "gqa's), not 2 (--model mistral-7b)"),
    (["--model", "longformer-base", "--head-engines", "0"],
     "--head-engines must be a positive integer, not 0 (--model longformer-base)"),
    (["--head-engines", "2"], "--head-engines 2 needs --model or --heads (one head has no K/V "
                              "group)"),
    (["--heads", "8", "--kv-heads", "2", "--head-engines", "3"],
     "--head-engines must divide the query heads per K/V head (4), not 3 (--heads 8 on "
     "--kv-heads 2)"),
    (["--heads", "8", "--head-schedule", "serial", "--head-engines", "2"],
     "--head-engines must be 1 under --head-schedule serial (the engines of a K/V group are "
     "gqa's), not 2 (--heads 8 on --kv-heads 1)"),
    (["--model", "mistral-7b", "--heads", "8"],
     "--heads cannot be combined with --model (the model sets its query and K/V heads and "
     "learned sinks)"),
    (["--model", "mistral-7b", "--head-dim", "8"],
     "--head-dim cannot be combined with --model (the model sets the attention pattern and "
     "head_dim)"),
    (["--causal", "--sliding-window", "16", "--sink-tokens", "8", "--seq-len", "4,64"],
     "--sink-tokens 8 is beyond --seq-len 4 (every length must hold the sinks)"),
    (["--causal", "--sliding-window", "16", "--heads", "4", "--sink-logits", "1,2",
      "--seq-len", "64"],
     "--sink-logits takes values only in swatkit regress (the core takes them at run time, on "
     "each command)"),
])
def test_cli_bad_values(argv, message):
    done = swatkit(*argv)
    assert done.returncode == 2
    assert done.stderr == f"swatkit: error: {message}\n"


def test_buffer_energy_through_horowitz_points():
    t = load_table("asic45")
    for kbytes, pj in ((8, 10.0), (32, 20.0), (1024, 100.0)):
        assert t.sram_bit(kbytes * 1024 * 8) * 64 == pytest.approx(pj)
    assert t.sram_bit(2 * 1024 * 8) * 64 == pytest.approx(5.0)        # 8->32 KB slope, extended
    assert 20.0 < t.sram_bit(256 * 1024 * 8) * 64 < 100.0
    fpga = load_table("fpga")
    assert fpga.sram_bit(32 * 1024 * 8) == pytest.approx(14 * t.sram_bit(32 * 1024 * 8))


def test_buffer_energy_follows_the_core_buffer_size():
    # the same actions cost more in a core whose K/V ring banks are larger
    fmt = NumberFormat()
    small = CoreParams(AttentionSpec.longformer(4096, 64, 64), fmt, HardwareConfig(8, 8, 4096))
    big = CoreParams(AttentionSpec.longformer(4096, 64, 64), fmt, HardwareConfig(1, 8, 4096))
    (a,) = estimate(small, [4096], ["swat"])
    (b,) = estimate(big, [4096], ["swat"])
    assert a["kv_buffer_read_bits"] == b["kv_buffer_read_bits"]
    assert b["energy_buffers_j"] > a["energy_buffers_j"]


def _count_tiles(keep: np.ndarray, tiles: Tiles) -> tuple[int, int, int]:
    """(pairs computed, K/V rows fetched, tiles computed) by brute force over a keep mask: a
    tile with one kept pair is computed whole."""
    n = len(keep)
    pairs = fetched = computed = 0
    for r0 in range(0, n, tiles.q):
        for c0 in range(0, n, tiles.k):
            block = keep[r0:r0 + tiles.q, c0:c0 + tiles.k]
            if block.any():
                pairs += block.size
                fetched += block.shape[1]
                computed += 1
    return pairs, fetched, computed


@pytest.mark.parametrize("spec", [AttentionSpec(300, 8, 20, 20), AttentionSpec(300, 8, 70, 0),
                                  AttentionSpec(257, 8, 3, 100), AttentionSpec(300, 8, 299, 0)])
@pytest.mark.parametrize("tiles", [Tiles(64, 64), Tiles(32, 48), Tiles(1, 1), Tiles(100, 7)])
def test_tiles_equal_a_count_over_the_mask(spec, tiles):
    p = CoreParams(spec, NumberFormat(), HardwareConfig(1, 1, spec.seq_len))
    n, mask = spec.seq_len, spec.mask()
    causal = np.tril(np.ones((n, n), dtype=bool))
    for dataflow, keep in (("blocksparse", mask),
                           ("flash", causal if spec.after == 0 else np.ones_like(mask))):
        t = tile_counts(p, n, dataflow, tiles)
        assert (t["pairs_computed"], t["kv_rows_fetched"], t["tiles_computed"]) == (
            _count_tiles(keep, tiles)), dataflow
    if tiles == Tiles(1, 1):   # one-pair tiles: block-sparse does exactly the window's work
        assert tile_counts(p, n, "blocksparse", tiles)["pairs_computed"] == spec.pair_count()


def test_baselines_same_budget_and_breakdown_adds_up():
    p = CoreParams(AttentionSpec.longformer(4096, 64), NumberFormat(), HardwareConfig(8, 8, 4096))
    recs = {r["dataflow"]: r for r in estimate(p, [4096], ["swat", "dense", "flash",
                                                            "blocksparse"])}
    for r in recs.values():
        assert sum(r["energy_breakdown"].values()) == pytest.approx(r["energy_j"])
        assert r["latency_ratio_to_swat"] == pytest.approx(r["latency_s"]
                                                           / recs["swat"]["latency_s"])
    flash, bs = recs["flash"], recs["blocksparse"]
    # fused dense: every pair, K/V once per query tile of 64 rows, no scores off-chip
    assert flash["qk_macs"] == 4096 * 4096 * 64
    assert flash["offchip_read_bytes"] == 4096 * 64 + 2 * 64 * 4096 * 64
    assert flash["cycles"] >= flash["qk_macs"] / 64
    # window tiles: more work than the window (partial tiles whole), far less than dense
    assert recs["swat"]["macs"] < bs["macs"] < 1.3 * recs["swat"]["macs"]
    assert 1.0 < bs["latency_ratio_to_swat"] < flash["latency_ratio_to_swat"]
    assert flash["latency_ratio_to_swat"] < recs["dense"]["latency_ratio_to_swat"]


def test_cli_plot_checked_before_any_work(tmp_path):
    done = swatkit("--plot", str(tmp_path / "p.jpgx"))
    assert done.returncode == 2 and done.stdout == ""
    assert re.fullmatch(rf"swatkit: error: --plot: cannot write \.jpgx files "
                        rf"\({re.escape(str(tmp_path))}/p\.jpgx\); use one of \..*\.png.*\n",
                        done.stderr)
    done = swatkit("--seq-len", "1024", "--plot", str(tmp_path / "plot"), "--format", "csv")
    assert done.returncode == 0
    assert done.stderr == f"wrote {tmp_path / 'plot.png'}\n"
    assert (tmp_path / "plot.png").read_bytes()[:4] == b"\x89PNG"


def test_cli_seq_len_from_the_config_file(tmp_path):
    config = tmp_path / "c.toml"
    config.write_text("[spec]\nseq_len = 2048\nattention_window = 64\n")
    done = swatkit("--config", str(config), "--format", "json", "--dataflow", "swat")
    assert [r["seq_len"] for r in json.loads(done.stdout)] == [2048]
    config.write_text("[spec]\nseq_len = '1024:4096:x2'\n")
    done = swatkit("--config", str(config), "--format", "json", "--dataflow", "swat")
    assert [r["seq_len"] for r in json.loads(done.stdout)] == [1024, 2048, 4096]
    done = swatkit("--config", str(config), "--format", "json", "--dataflow", "swat",
                   "--seq-len", "512")  # the option wins
    assert [r["seq_len"] for r in json.loads(done.stdout)] == [512]


def test_cli_stdout_closed_early_is_not_an_error():
    done = subprocess.run(f"{sys.executable} -m swatkit.cli estimate --seq-len 1024:1048576:x2 "
                          "| head -1; exit ${PIPESTATUS[0]}", shell=True, executable="bash",
                          capture_output=True, text=True)
    assert done.returncode == 0
    assert done.stderr == ""


# -- the run's pattern: dilation and global tokens ------------------------------------------------

PATTERNS = [
    AttentionSpec.longformer(4096, 64),
    AttentionSpec.longformer(4096, 64).replace(global_tokens=(0,)),
    AttentionSpec.longformer(4096, 64).replace(global_tokens=tuple(range(8))),
    AttentionSpec.longformer(4096, 64).replace(global_tokens=(0, 100, 2000, 4095)),
    AttentionSpec.longformer(4096, 64).replace(dilation=2),
    AttentionSpec.longformer(4096, 64).replace(dilation=4, global_tokens=(0, 17)),
    AttentionSpec.causal(3000, 64, 1024).replace(dilation=3, global_tokens=(0, 2999)),
]


def _core(spec, **hw):
    return CoreParams(spec, NumberFormat(), HardwareConfig(8, 8, spec.seq_len, **hw))


@pytest.mark.parametrize("spec", PATTERNS, ids=range(len(PATTERNS)))
def test_swat_actions_are_the_core_counters(spec):
    p = _core(spec)
    n, d, g = spec.seq_len, spec.head_dim, len(spec.global_tokens)
    a = actions(p, n, "swat")
    counters = swat_actions(p, p.run_spec(n))
    for name, value in counters.items():
        assert a[name] == value, name
    main, glob = passes(p, n, "swat")
    # the global-row engine: two q·k passes and one p·v pass over N keys per global row
    assert (glob["qk_macs"], glob["sv_macs"], glob["exp_ops"]) == (2 * g * n * d, g * n * d,
                                                                    g * n)
    # the band core issues every row's band (global keys in it masked, not skipped) and the G
    # global columns, for all N rows
    band = int(p.band_keys(p.run_spec(n)).sum())
    assert main["qk_macs"] == main["sv_macs"] == band * d
    assert band >= spec.pair_count() - g * n
    (rec,) = estimate(p, [n], ["swat"])
    assert rec["cycles"] >= swat_cycles(p, n).cycles
    assert rec["pairs"] == spec.pair_count() and rec["pairs_computed"] == band + g * n
    assert rec["global_pass_macs"] == 3 * g * n * d
    assert rec["global_pass_cycles"] == global_row_cycles(d, 8, p.fmt, n, g)
    assert (rec["dilation"], rec["global_tokens"]) == (spec.dilation, g)


@pytest.mark.parametrize("spec", PATTERNS, ids=range(len(PATTERNS)))
def test_swat_offchip_bytes(spec):
    """Q once, K/V once plus the G global columns sent first on kv, O once (N − G rows on o, G
    on og); the global pass: G q_g rows, per run two passes of N {k_g, v_g} beats."""
    p = _core(spec)
    n, d, g = spec.seq_len, spec.head_dim, len(spec.global_tokens)
    a = actions(p, n, "swat")
    row = d  # int8: one byte per element
    kvg = 2 * n if g else 0  # {k_g, v_g} beats: two passes per run, whatever G
    assert a["offchip_read_bytes"] == (n + 2 * (n + g) + g + 2 * kvg) * row
    assert a["offchip_write_bytes"] == n * d * p.fmt.out_bits // 8
    assert a["global_kv_rows"] == kvg and a["global_q_rows"] == g
    assert a["kv_buffer_write_bits"] == 2 * (n + g) * d * 8
    (rec,) = estimate(p, [n], ["swat"])
    assert rec["global_pass_offchip_bytes"] == (g + 2 * kvg) * row + g * d * p.fmt.out_bits // 8
    assert rec["offchip_bytes"] == a["offchip_read_bytes"] + a["offchip_write_bytes"]


def test_kv_bank_follows_the_maxima():
    """The K/V buffer bank is a lane's whole memory (kv_depth words): more residue classes and
    global columns make every K/V access dearer; the same run costs more on a core generated
    for larger maxima, and its cycles and counts do not change."""
    spec = AttentionSpec.longformer(4096, 64).replace(global_tokens=(0,))
    small, big = _core(spec), _core(spec, max_dilation=4, max_global_tokens=32)
    (a,) = estimate(small, [4096], ["swat"])
    (b,) = estimate(big, [4096], ["swat"])
    assert big.kv_depth > small.kv_depth
    assert b["energy_buffers_j"] > a["energy_buffers_j"]
    assert (a["cycles"], a["qk_macs"]) == (b["cycles"], b["qk_macs"])
    assert (a["max_global_tokens"], b["max_global_tokens"], b["max_dilation"]) == (1, 32, 4)


@pytest.mark.parametrize("spec", PATTERNS[1:4] + PATTERNS[5:], ids=range(5))
def test_baselines_count_global_rows_as_full_rows(spec):
    p = _core(spec)
    n, d, g = spec.seq_len, spec.head_dim, len(spec.global_tokens)
    dense_main, dense_glob = passes(p, n, "dense")
    assert dense_main["qk_macs"] == n * n * d and dense_glob["qk_macs"] == g * n * d
    assert dense_glob["global_kv_rows"] == n * -(-g // dense_tile_rows(p))
    assert dense_cycles(p, n, 16.0) >= (n * n + g * n) * 2 * d / 64
    for flow in ("flash", "blocksparse"):
        main, glob = passes(p, n, flow, Tiles(64, 64))
        assert glob["sv_macs"] == g * n * d  # every global row over all N keys
        assert glob["global_kv_rows"] == n * -(-g // 64)
        assert glob["global_q_rows"] == g and main["rows_out"] == n - g
    # every dataflow computes at least the pattern's pairs
    recs = estimate(p, [n], ["swat", "dense", "flash", "blocksparse"])
    for r in recs:
        assert r["pairs"] == spec.pair_count()
        assert r["pairs_computed"] >= r["pairs"], r["dataflow"]
        assert r["global_pass_pairs"] == g * n


GLOBAL_TILE_SPECS = [AttentionSpec(300, 8, 20, 20, 1, (0, 150)),
                     AttentionSpec(300, 8, 70, 0, 1, (7, 299)),
                     AttentionSpec(257, 8, 3, 10, 3, (100,)),
                     AttentionSpec(300, 8, 9, 0, 4, (0, 1, 2, 250))]


@pytest.mark.parametrize("spec", GLOBAL_TILE_SPECS, ids=range(len(GLOBAL_TILE_SPECS)))
@pytest.mark.parametrize("tiles", [Tiles(64, 64), Tiles(32, 48), Tiles(4, 1), Tiles(100, 7),
                                   Tiles(2, 3), Tiles(1, 1)])
def test_tiles_with_global_columns_and_dilation_equal_a_count_over_the_mask(spec, tiles):
    """Main pass: every row's band and the global columns, over all N rows (a global row is in
    its query tile, computed whole); global pass: the G rows over all key tiles."""
    p = CoreParams(spec, NumberFormat(), HardwareConfig(1, 1, spec.seq_len))
    n, g = spec.seq_len, len(spec.global_tokens)
    rows = np.arange(n)
    band = spec.in_band(rows[:, None], rows[None, :])
    main = band.copy()
    main[:, list(spec.global_tokens)] = True
    keep = {"blocksparse": main,
            "flash": (np.tril(np.ones((n, n), dtype=bool)) | main) if spec.after == 0
            else np.ones_like(main)}
    for dataflow, mask in keep.items():
        t = tile_counts(p, n, dataflow, tiles)
        assert (t["pairs_computed"], t["kv_rows_fetched"], t["tiles_computed"]) == (
            _count_tiles(mask, tiles)), dataflow
        assert t["global_pairs_computed"] == g * n
        assert t["global_tiles_computed"] == -(-g // tiles.q) * -(-n // tiles.k)


SINK_TILE_SPECS = [AttentionSpec.causal(300, 8, sliding_window=20, sink_tokens=4),
                   AttentionSpec(300, 8, 9, 0, 4, sink_tokens=1),
                   AttentionSpec(257, 8, 10, 10, 1, sink_tokens=70)]


@pytest.mark.parametrize("spec", SINK_TILE_SPECS, ids=range(len(SINK_TILE_SPECS)))
@pytest.mark.parametrize("tiles", [Tiles(64, 64), Tiles(32, 48), Tiles(4, 1), Tiles(1, 1)])
def test_tiles_with_sink_columns_equal_a_count_over_the_mask(spec, tiles):
    """The baselines keep the key tiles of the sink columns as of global columns; no global
    pass (a sink is a key-only column)."""
    n = spec.seq_len
    p = CoreParams(spec.replace(sink_tokens=0), NumberFormat(), HardwareConfig(1, 1, n))
    mask = spec.mask()
    keep = {"blocksparse": mask,
            "flash": (np.tril(np.ones((n, n), dtype=bool)) | mask) if spec.after == 0
            else np.ones_like(mask)}
    for dataflow, want in keep.items():
        t = tile_counts(p, n, dataflow, tiles, run=spec)
        assert (t["pairs_computed"], t["kv_rows_fetched"], t["tiles_computed"]) == (
            _count_tiles(want, tiles)), dataflow
        assert t["global_pairs_computed"] == 0


def _json(*argv):
    done = swatkit(*argv, "--format", "json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_cli_pattern_options_flow_through():
    recs = _json("--seq-len", "2048,4096", "--global-tokens", "0,1,2,3", "--dilation", "2",
                 "--max-global-tokens", "8", "--max-dilation", "4")
    assert [(r["dataflow"], r["seq_len"]) for r in recs] == [
        (d, n) for d in ("swat", "dense", "flash", "blocksparse") for n in (2048, 4096)]
    for r in recs:
        spec = AttentionSpec.longformer(r["seq_len"], 64).replace(dilation=2,
                                                                  global_tokens=(0, 1, 2, 3))
        assert (r["dilation"], r["global_tokens"], r["global_token_positions"]) == (
            2, 4, [0, 1, 2, 3])
        assert (r["max_global_tokens"], r["max_dilation"]) == (8, 4)
        assert r["pairs"] == spec.pair_count()
        assert r["global_pass_pairs"] == 4 * r["seq_len"]
        for key in ("global_pass_macs", "global_pass_offchip_bytes", "global_pass_energy_j",
                    "global_kv_rows", "global_q_rows", "global_rows_out", "pairs_computed"):
            assert r[key] > 0, key
        assert r["global_pass_energy_j"] < r["energy_j"]
        assert r["layer_pattern"] == ("attention_window 512, dilation 2, "
                                      "global tokens 0,1,2,3")
    swat = recs[1]
    p = CoreParams(AttentionSpec.longformer(4096, 64).replace(dilation=2,
                                                              global_tokens=(0, 1, 2, 3)),
                   NumberFormat(), HardwareConfig(8, 8, 4096, 8, 4))
    assert swat["qk_macs"] == swat_actions(p, p.run_spec(4096))["qk_macs"]
    assert swat["global_pass_cycles"] == global_row_cycles(64, 8, p.fmt, 4096, 4)
    # without global tokens the global pass costs nothing
    (plain,) = _json("--seq-len", "1024", "--dataflow", "swat", "--dilation", "2")
    assert plain["global_pass_macs"] == plain["global_pass_offchip_bytes"] == 0
    assert plain["dilation"] == 2 and plain["global_tokens"] == 0
    table = swatkit("--seq-len", "4096", "--global-tokens", "0", "--dataflow", "swat,flash")
    assert table.returncode == 0, table.stderr
    assert "global MACs" in table.stdout and "global tokens 0," in table.stdout


@pytest.mark.parametrize(("argv", "message"), [
    (["--seq-len", "1024,4096", "--global-tokens", "0,2000"],
     "--global-tokens: global token 2000 is outside 0..1023 for --seq-len 1024 (every length "
     "must exceed each global-token position)"),
    (["--global-tokens", "5000"],   # the default sweep starts at 1024
     "--global-tokens: global token 5000 is outside 0..1023 for --seq-len 1024 (every length "
     "must exceed each global-token position)"),
    (["--seq-len", "4096", "--global-tokens", "4096"],
     "--global-tokens: global token 4096 is outside the sequence [0, 4096)"),
    (["--global-tokens", "3,1"], "--global-tokens must be sorted and distinct, not (3, 1)"),
    (["--dilation", "0"], "--dilation must be a positive integer, not 0"),
    (["--dilation", "65"], "--dilation must be at most 64 (residue classes of the K/V ring), "
                           "not 65"),
    (["--max-dilation", "65"], "--max-dilation must be an integer in 1..64, not 65"),
    (["--max-global-tokens", "257"], "--max-global-tokens must be an integer in 0..256, not 257"),
    (["--max-global-tokens", "1", "--global-tokens", "0,5"],
     "--max-global-tokens 1 is below the 2 positions of --global-tokens"),
    (["--dilation", "3", "--max-dilation", "2"], "--max-dilation 2 is below --dilation 3"),
    (["--seq-len", "4096", "--global-tokens", ",".join(map(str, range(257)))],
     "--global-tokens lists 257 positions; at most 256 (the core's resident global K/V rows)"),
    (["--model", "longformer-base", "--dilation", "2"],
     "--dilation cannot be combined with --model (the model sets the attention pattern and "
     "head_dim)"),
    (["--bigbird", "64", "--seq-len", "1000,1024"], "--bigbird 64 does not divide --seq-len 1000"),
    (["--bigbird", "64", "--seq-len", "448"],
     "--random-blocks 3 is more than the 2 key blocks available to query block 2 of 7 (random "
     "blocks avoid blocks 0 and 6 and the window 1..3); with --bigbird 64, 3 random blocks need "
     "--seq-len >= 512"),
    (["--bigbird", "48", "--seq-len", "960"], "--bigbird must be a power of two on the SWAT "
     "core (it checks --seq-len against it with a mask), not 48"),
    (["--bigbird", "64", "--global-tokens", "0"], "--global-tokens cannot be combined with "
     "--bigbird (BigBird's pattern has its own window and global blocks)"),
    (["--model", "longformer-base", "--bigbird", "64"],
     "--bigbird cannot be combined with --model (the model sets the attention pattern and "
     "head_dim)"),
])
def test_cli_bad_pattern_values(argv, message):
    done = swatkit(*argv)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr == f"swatkit: error: {message}\n"


def test_patterns_report_runs():
    from swatkit.sim import patterns_report

    out = io.StringIO()
    import contextlib

    with contextlib.redirect_stdout(out):
        assert patterns_report.main(["--seq-len", "1024"]) == 0
    text = out.getvalue()
    assert "global_qk_multipliers" in text and "flag_bits" in text
    assert text.count("\n 32  1 ") == 2   # G = 32 in the cycles and in the counts table


# -- BigBird's block-sparse pattern --------------------------------------------------------------

BIGBIRD_SPECS = [AttentionSpec.bigbird(512, 16, 16, 2), AttentionSpec.bigbird(256, 8, 8, 1, seed=4),
                 AttentionSpec.bigbird(64, 8, 16, 0), AttentionSpec.bigbird(32, 8, 16, 3)]


@pytest.mark.parametrize("spec", BIGBIRD_SPECS, ids=range(len(BIGBIRD_SPECS)))
def test_bigbird_swat_offchip_bytes_list_every_stream(spec):
    """kv: G + N rows, q: N, o: N − G, qg: G, kvg: 2N, og: G, kvr: the random blocks' rows,
    fetched once per query block (``random_stream_rows``)."""
    p = _core(spec)
    n, d, b, r = spec.seq_len, spec.head_dim, spec.block_size, spec.num_random_blocks
    g = min(n, 2 * b)
    run = p.run_spec(n)
    rnd = len(p.random_stream_rows(run))
    assert rnd == max(0, spec.num_blocks - 2) * r * b
    a = actions(p, n, "swat")
    row = d   # int8: one byte per element
    assert a["random_kv_rows"] == rnd
    assert a["offchip_random_kv_read_bytes"] == 2 * rnd * row
    assert a["offchip_read_bytes"] == (n + 2 * (g + n) + g + 2 * 2 * n + 2 * rnd) * row
    assert a["offchip_write_bytes"] == ((n - g) + g) * d * p.fmt.out_bits // 8
    # every random key a row walks is read from the random memories, written once per fetch
    rows = max(0, n - 2 * b) if spec.num_blocks > 2 else 0
    assert a["random_buffer_read_bits"] == 2 * rows * r * b * d * 8
    assert a["random_buffer_write_bits"] == 2 * rnd * d * 8
    (rec,) = estimate(p, [n], ["swat"])
    assert rec["offchip_bytes"] == a["offchip_read_bytes"] + a["offchip_write_bytes"]
    assert rec["offchip_bytes_per_output"] == rec["offchip_bytes"] / (n * d)
    assert rec["offchip_random_kv_read_bytes"] == 2 * rnd * row
    assert rec["cycles"] >= swat_cycles(p, n, run=run).cycles
    assert (rec["block_size"], rec["random_blocks"], rec["global_tokens"]) == (b, r, g)
    assert rec["pairs"] == spec.pair_count()
    assert rec["global_pass_pairs"] == g * n


def test_bigbird_swat_actions_count_both_engines():
    spec = BIGBIRD_SPECS[0]
    p = _core(spec)
    n, d, g = spec.seq_len, spec.head_dim, 2 * spec.block_size
    main, glob = passes(p, n, "swat")
    band = int(p.band_keys(p.run_spec(n)).sum())
    assert (glob["qk_macs"], glob["sv_macs"], glob["exp_ops"]) == (2 * g * n * d, g * n * d,
                                                                    g * n)
    assert main["qk_macs"] == main["sv_macs"] == band * d
    assert actions(p, n, "swat")["rows_out"] == n - g


@pytest.mark.parametrize("spec", BIGBIRD_SPECS, ids=range(len(BIGBIRD_SPECS)))
@pytest.mark.parametrize("tiles", [Tiles(64, 64), Tiles(32, 48), Tiles(1, 1), Tiles(8, 3),
                                   Tiles(100, 7)])
def test_bigbird_tiles_equal_a_count_over_the_mask(spec, tiles):
    """The baselines compute BigBird's global rows in their main pass (its global rows use the
    ordinary projections): block-sparse tiles follow the mask, flash computes every tile."""
    p = _core(spec)
    n, mask = spec.seq_len, spec.mask()
    for dataflow, keep in (("blocksparse", mask), ("flash", np.ones_like(mask))):
        t = tile_counts(p, n, dataflow, tiles)
        assert (t["pairs_computed"], t["kv_rows_fetched"], t["tiles_computed"]) == (
            _count_tiles(keep, tiles)), dataflow
        assert t["global_pairs_computed"] == 0
    if tiles == Tiles(1, 1):
        assert tile_counts(p, n, "blocksparse", tiles)["pairs_computed"] == spec.pair_count()


def test_bigbird_dense_baseline_and_the_plain_window():
    spec = AttentionSpec.bigbird(2048, 64, 64, 3)
    p = _core(spec)
    n, d = spec.seq_len, spec.head_dim
    recs = {r["dataflow"]: r for r in estimate(p, [n], ["swat", "dense", "flash",
                                                        "blocksparse"])}
    dense = recs["dense"]
    assert dense["macs"] == 2 * n * n * d            # all N rows over all N keys, QK and SV
    assert dense["global_pass_macs"] == 0 and dense["rows_out"] == n
    assert dense["cycles"] == dense_cycles(p, n, 16.0)
    assert recs["flash"]["macs"] == 2 * n * n * d
    assert recs["blocksparse"]["pairs_computed"] == tile_counts(
        p, n, "blocksparse", Tiles())["pairs_computed"]
    assert dense["latency_ratio_to_swat"] == dense["latency_s"] / recs["swat"]["latency_s"]
    # the plain window of as many keys per row: BigBird-base's (5 + 3)·64 = Longformer's 512
    band = CoreParams(AttentionSpec.longformer(n, d, 512), NumberFormat(),
                      HardwareConfig(8, 8, n))
    for name, rec in recs.items():
        (plain,) = estimate(band, [n], [name])
        assert rec["plain_window"] == 512
        assert rec["plain_window_offchip_bytes_per_output"] == plain["offchip_bytes_per_output"]
    swat = recs["swat"]
    assert swat["plain_window_offchip_bytes_per_output"] == (n + 2 * n + n) * d / (n * d)
    assert swat["offchip_bytes_per_output"] > swat["plain_window_offchip_bytes_per_output"]


def test_cli_bigbird_estimate():
    recs = _json("--bigbird", "64", "--random-blocks", "3", "--seq-len", "1024,2048")
    assert [(r["dataflow"], r["seq_len"]) for r in recs] == [
        (d, n) for d in ("swat", "dense", "flash", "blocksparse") for n in (1024, 2048)]
    for r in recs:
        spec = AttentionSpec.bigbird(r["seq_len"], 64, 64, 3)
        assert r["pairs"] == spec.pair_count()
        assert r["layer_pattern"] == "BigBird block_size 64, 3 random blocks (seed 0)"
        assert (r["block_size"], r["random_blocks"], r["global_tokens"]) == (64, 3, 128)
    swat = recs[1]
    p = _core(AttentionSpec.bigbird(2048, 64, 64, 3))
    rnd = len(p.random_stream_rows(p.run_spec(2048)))
    assert swat["offchip_random_kv_read_bytes"] == 2 * rnd * 64
    assert swat["random_kv_rows"] == rnd == (2048 // 64 - 2) * 3 * 64
    table = swatkit("--bigbird", "64", "--seq-len", "1024", "--dataflow", "swat,dense")
    assert table.returncode == 0, table.stderr
    assert "random K/V" in table.stdout and "band B/out" in table.stdout
    assert "BigBird block_size 64, 3 random blocks (seed 0)" in table.stdout
    assert "N=1024: dense/SWAT latency" in table.stdout


def test_patterns_report_bigbird_runs():
    import contextlib

    from swatkit.sim import patterns_report

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert patterns_report.main(["--bigbird"]) == 0
    text = out.getvalue()
    assert re.search(r"^ 16384 ", text, re.M) and "random_buffer_bits" in text
    assert re.search(r"^random_buffer_bits +0 +393,216 \(\+393,216\)$", text, re.M)


@pytest.mark.parametrize(("n", "window", "sinks", "kl", "dl", "d"), [
    (2048, 128, 4, 8, 8, 64), (3000, 256, 8, 8, 8, 64), (2048, 128, 4, 8, 16, 128),
    (4096, 512, 1, 16, 8, 64)])
def test_sink_columns_are_the_cores_global_columns_without_global_rows(n, window, sinks, kl,
                                                                       dl, d):
    # StreamingLLM's sink keys on SWAT, estimated as the core's global columns: the band core's
    # counters with S global columns are the band's plus sink_columns' (a bidirectional band,
    # where every row attends a global column as it does a sink), and the cycles agree within 8
    # where the band engines, not the global-row engine, end the run
    from swatkit.rtl.global_rows import global_rows_cycles

    fmt = NumberFormat()
    band = CoreParams(AttentionSpec.longformer(n, d, attention_window=window), fmt,
                      HardwareConfig(kl, dl, n))
    glob = CoreParams(AttentionSpec.longformer(n, d, attention_window=window,
                                               global_tokens=tuple(range(sinks))), fmt,
                      HardwareConfig(kl, dl, n, max_global_tokens=sinks))
    cols, extra = sink_columns(band, n, sinks)
    with_band, _ = passes(band, n, "swat")
    with_glob, _ = passes(glob, n, "swat")
    assert cols["qk_macs"] == n * sinks * d
    for key, value in cols.items():
        assert with_band[key] + value == with_glob[key], key
    band_cycles, glob_cycles = swat_cycles(band, n).cycles, swat_cycles(glob, n).cycles
    assert glob_cycles > global_rows_cycles(d, dl, fmt, n, sinks, glob.global_engines) + 1
    assert 0 <= glob_cycles - (band_cycles + extra) <= 8


def test_one_group_from_the_options_is_the_grouped_cores_cycle_model():
    # estimate of a group (no --model): K/V heads × one run of the core `generate --heads`
    # writes (its exact cycle model), K/V fetched once per group (and the S sink rows once more,
    # as the core's resident columns); serial re-reads K/V per query head
    n, fmt = 1024, NumberFormat()
    spec = AttentionSpec.causal(n, 64, sliding_window=128, sink_tokens=4)
    p = CoreParams(spec, fmt, HardwareConfig(max_seq_len=n), heads=64, kv_heads=8,
                   sink_logits=True)
    gqa, flash = estimate(p, [n], ["swat", "flash"])
    serial = estimate(p, [n], ["swat"], head_schedule="serial")[0]
    assert gqa["cycles"] == 8 * swat_cycles(p, n).cycles
    assert gqa["offchip_kv_read_bytes"] == 8 * 2 * (n + 4) * 64
    assert serial["offchip_kv_read_bytes"] == 64 * 2 * (n + 4) * 64
    assert gqa["kv_fetches"] == (n + 4) / n and flash["kv_fetches"] > 8
    assert gqa["learned_sinks"] and gqa["sink_tokens"] == 4 and gqa["heads"] == 64
    assert serial["cycles"] > gqa["cycles"]   # (8 runs of one head each per group)
    assert gqa["qk_macs"] == 8 * swat_actions(p, p.run_spec(n))["qk_macs"]


def test_sink_tokens_in_a_model_estimate():
    # every sliding layer gets the S sink keys; the pairs are the spec's; SWAT's K/V once per
    # group still, the S sink rows fetched once more as the global columns are
    from swatkit.sim.model_configs import load_model

    m, n, s = load_model("mistral-7b"), 8192, 4
    flows = ["swat", "flash", "blocksparse", "dense"]
    plain = [r for r in estimate_model(m, [n], flows, fmt=NumberFormat())
             if r["scope"] == "layer"]
    sink = [r for r in estimate_model(m, [n], flows, fmt=NumberFormat(), sink_tokens=s)
            if r["scope"] == "layer"]
    spec = AttentionSpec.causal(n, 128, sliding_window=4096, sink_tokens=s)
    for a, b in zip(plain, sink, strict=True):
        assert b["pairs"] == m.heads * spec.pair_count() > a["pairs"]
        assert b["sink_tokens"] == s and b["layer_pattern"].endswith(", sink tokens 4")
    swat = sink[0]
    # (the core walks min(i + 1, S) sink columns on causal row i: rows below S see fewer)
    assert swat["qk_macs"] - plain[0]["qk_macs"] == m.heads * (n * s - s * (s - 1) // 2) * 128
    assert swat["offchip_kv_read_bytes"] == m.kv_heads * 2 * (n + s) * 128
    # SWAT's cycles: each of the 8 K/V heads one run of the grouped sink core (its exact
    # cycle model: the core holds the sinks), against the core without sinks
    sink_core = CoreParams(spec, NumberFormat(), HardwareConfig(8, 8, n), heads=4, kv_heads=1)
    band_core = dataclasses.replace(sink_core, spec=spec.replace(sink_tokens=0))
    assert swat["cycles"] == m.kv_heads * swat_cycles(sink_core, n).cycles
    assert plain[0]["cycles"] == m.kv_heads * swat_cycles(band_core, n).cycles
    assert sink[3]["cycles"] == plain[3]["cycles"]   # dense computes all N² pairs anyway
    with pytest.raises(ValueError, match=r"^sink_tokens 8193 is beyond the sequence "
                       r"\(seq_len 8192\)$"):
        estimate_model(m, [n], ["swat"], fmt=NumberFormat(), sink_tokens=n + 1)
    with pytest.raises(ValueError,
                       match=r"^sink_tokens must be a non-negative integer, not -1$"):
        estimate_model(m, [n], ["swat"], fmt=NumberFormat(), sink_tokens=-1)
    with pytest.raises(ValueError, match=r"^sink_tokens needs a sliding-window layer; model "
                       r"bigbird-roberta-base has none \(BigBird's blocks have no sink "
                       r"columns\)$"):
        estimate_model(load_model("bigbird-roberta-base"), [n], ["swat"], fmt=NumberFormat(),
                       sink_tokens=4)


def _plotted(monkeypatch, argv):
    """The figure ``swatkit <argv>`` plots, before it is written."""
    import swatkit.cmd_estimate as cmd_estimate
    from swatkit.cli import main

    figures = []
    monkeypatch.setattr(cmd_estimate, "save_figure", lambda fig, path: figures.append(fig))
    assert main(argv) == 0
    (fig,) = figures
    fig.tight_layout()
    fig.canvas.draw()
    return fig


def test_plot_hides_no_line_and_no_bar(monkeypatch, tmp_path, capsys):
    """docs/img/estimate_mistral.png: SWAT and blocksparse coincide in latency. In each panel,
    of two lines that coincide (within 8 pixels everywhere) the one drawn over the other is
    narrower (the wider shows around it) or dashed; the components' legend covers no bar and
    no label."""
    import itertools

    fig = _plotted(monkeypatch, ["estimate", "--causal", "--sliding-window", "4096",
                                 "--head-dim", "128", "--seq-len", "1024:65536:x2",
                                 "--plot", str(tmp_path / "p.png")])
    pairs = 0
    for ax in fig.axes[:3]:
        lines = [line for line in ax.get_lines() if len(line.get_xdata()) > 2]  # (not y = 1)
        for a, b in itertools.combinations(lines, 2):
            ya, yb = (ax.transData.transform(line.get_xydata())[:, 1] for line in (a, b))
            if np.abs(ya - yb).max() > 8:   # pixels apart somewhere: both show
                continue
            pairs += 1
            low, high = sorted((a, b), key=lambda line: line.get_zorder())
            assert (high.get_zorder() > low.get_zorder()
                    and high.get_linewidth() < low.get_linewidth()) \
                or high.get_linestyle() != low.get_linestyle(), (low.get_label(),
                                                                 high.get_label())
    assert pairs >= 2   # SWAT and blocksparse latency at least, in two panels
    bars = fig.axes[3]
    legend = bars.get_legend().get_window_extent()
    covered = [p for p in bars.patches if p.get_window_extent().overlaps(legend)]
    covered += [t for t in bars.texts if t.get_window_extent().overlaps(legend)]
    assert not covered
