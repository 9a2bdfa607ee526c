"""``swatkit estimate --decode``: per-token figures of decode steps against figures computed
here independently (cycles from the continue cycle model step by step, bytes by hand), the
caches' residency under ``--onchip-bytes``, a model run and the CLI's refusals."""

import json
import math

import pytest

from swatkit.cli import main
from swatkit.golden import AttentionSpec, NumberFormat
from swatkit.rtl import CoreParams, HardwareConfig
from swatkit.sim.cycle_model import swat_cycles
from swatkit.sim.estimate import (
    decode_core,
    decode_residency,
    decode_step,
    estimate_decode,
    single_head,
)
from swatkit.sim.model_configs import load_model

FMT = NumberFormat()
# a causal window of 6 keys with 2 sink tokens, 4 query heads on one K/V head, 2 x 4 lanes
D, BEFORE, SINKS, G, KL, DL = 8, 5, 2, 4, 2, 4
P, T = 2, 14     # a prefill of 2 rows, then 14 steps: the window fills and goes steady


def small_group():
    spec = AttentionSpec.causal(64, D, BEFORE + 1, sink_tokens=SINKS)
    return CoreParams(spec, FMT, HardwareConfig(KL, DL, 64),
                      heads=G, kv_heads=1, sink_logits=True)


def keys_by_hand(pos: int) -> int:
    """The keys of row ``pos``: its causal band of up to BEFORE + 1 keys, and the sinks
    before the band."""
    band = min(pos, BEFORE) + 1
    return band + max(0, min(SINKS, pos - BEFORE))


def test_small_group_per_token_figures_match_independent_counts():
    p = small_group()
    records = estimate_decode(single_head(p), [P], T, fmt=FMT, key_lanes=KL, dim_lanes=DL,
                              offchip_bytes_per_cycle=1e9, model_scope=False)
    by = {r["dataflow"]: r for r in records}
    dec = decode_core(p, P + T)
    # cycles: every step's continue run from the cycle model, one call per step
    cycles = [swat_cycles(dec, pos + 1, run=dec.run_spec(pos + 1), first_row=pos).cycles
              for pos in range(P, P + T)]
    assert by["swat"]["cycles_per_token"] == sum(cycles) / T
    assert len(set(cycles[-4:])) == 1 and cycles[0] != cycles[-1]   # (fills, then steady)
    # MACs: g heads x the row's keys x d, twice (q·k and p·v); the core issues the band and
    # the sinks up to the row (a sink inside the band twice, masked once), the baselines
    # each distinct key once
    keys = [keys_by_hand(pos) for pos in range(P, P + T)]
    issued = [min(pos, BEFORE) + 1 + min(pos + 1, SINKS) for pos in range(P, P + T)]
    assert by["swat"]["macs_per_token"] == 2 * G * D * sum(issued) / T
    for flow in ("reread", "onchip"):
        assert by[flow]["macs_per_token"] == 2 * G * D * sum(keys) / T
    # off-chip bytes (int8 data, out_bits 8): Q and O of g heads; SWAT and onchip one new K/V
    # row, reread the row's whole window and sinks
    qo = G * D * FMT.data_bits // 8 + G * D * math.ceil(FMT.out_bits / 8)
    assert by["swat"]["offchip_bytes_per_token"] == qo + 2 * D
    assert by["onchip"]["offchip_bytes_per_token"] == qo + 2 * D
    assert by["reread"]["offchip_bytes_per_token"] == qo + 2 * D * sum(keys) / T
    assert by["reread"]["offchip_bytes_ratio_to_swat"] == pytest.approx(
        (qo + 2 * D * sum(keys) / T) / (qo + 2 * D))
    # the baselines with unbounded bandwidth: their arrays' time (one tile of <= 64 keys:
    # no rescale), g·W·d / (KL·DL) per step
    assert by["onchip"]["cycles_per_token"] == sum(
        math.ceil(G * k * D / (KL * DL)) for k in keys) / T


def test_a_small_bandwidth_makes_reread_transfer_bound_and_swat_not():
    p = small_group()
    dec = decode_core(p, 40)
    pos = 30
    bw = 0.5
    c_swat, a_swat = decode_step(dec, pos, "swat", offchip_bytes_per_cycle=bw, sinks=True)
    c_re, a_re = decode_step(dec, pos, "reread", offchip_bytes_per_cycle=bw, sinks=True)
    bytes_re = a_re["offchip_read_bytes"] + a_re["offchip_write_bytes"]
    assert c_re == math.ceil(bytes_re / bw)
    assert c_swat == max(swat_cycles(dec, pos + 1, run=dec.run_spec(pos + 1),
                                     first_row=pos).cycles,
                         math.ceil((a_swat["offchip_read_bytes"]
                                    + a_swat["offchip_write_bytes"]) / bw))
    # a cache that does not fit: SWAT re-reads the window as reread does
    _, spilled = decode_step(dec, pos, "swat", offchip_bytes_per_cycle=bw, resident=False)
    assert spilled["offchip_kv_read_bytes"] == a_re["offchip_kv_read_bytes"] == \
        2 * D * keys_by_hand(pos)


def test_onchip_budget_keeps_the_first_layers_that_fit():
    m = load_model("gpt-oss-20b")
    recs = estimate_decode(m, [256], 2, fmt=FMT, onchip_bytes=5 * 131072 + 1)
    swat = [r for r in recs if r["dataflow"] == "swat" and r["scope"] == "layer"]
    # per layer: 8 K/V heads x 128 keys x 64 x 2 x 1 byte
    assert {r["cache_bytes"] for r in swat} == {8 * 128 * 64 * 2}
    kept = sorted(i for r in swat if r["resident"] for i in r["layer_indices"])
    spilled = sorted(i for r in swat if not r["resident"] for i in r["layer_indices"])
    assert kept == [0, 2, 4, 6, 8] and spilled == list(range(10, 24, 2))
    for r in swat:   # K/V off-chip per token and layer: 8 groups, a new row or the window
        assert r["offchip_kv_bytes_per_token"] == 8 * 2 * 64 * (1 if r["resident"] else 128)
    total = next(r for r in recs if r["dataflow"] == "swat" and r["scope"] == "model")
    assert total["offchip_kv_bytes_per_token"] == 8 * 2 * 64 * (5 + 7 * 128)


def test_residency_without_a_budget_keeps_every_sliding_layer():
    from swatkit.sim.estimate import decode_layer_cores

    m = load_model("gemma-3-1b")
    cores = decode_layer_cores(m, FMT, HardwareConfig(8, 8, 2048))
    where = decode_residency(m, cores, None)
    assert all(fits for _, fits in where.values())
    assert len(where) == sum(len(i) for pat, i in m.layer_groups() if pat.kind != "full")


def test_cli_model_run(capsys):
    assert main(["estimate", "--decode", "8", "--model", "gpt-oss-20b", "--seq-len", "1024",
                 "--onchip-bytes", "1048576"]) == 0
    out = capsys.readouterr().out
    assert "on chip: 0-14 step 2 (8 layers, 1,048,576 bytes); not on chip: 16-22 step 2 " \
           "(4 layers)" in out
    assert "not estimated: 12 full-attention layers" in out
    assert main(["estimate", "--decode", "8", "--model", "gpt-oss-20b", "--seq-len", "1024",
                 "--format", "json"]) == 0
    recs = json.loads(capsys.readouterr().out)
    swat = next(r for r in recs if r["dataflow"] == "swat" and r["scope"] == "layer")
    dec = decode_core(CoreParams(AttentionSpec.causal(1033, 64, 128), FMT,
                                 HardwareConfig(8, 8, 1033), heads=8, kv_heads=1,
                                 sink_logits=True), 1033)
    step = swat_cycles(dec, 1025, run=dec.run_spec(1025), first_row=1024).cycles
    assert swat["cycles_per_token"] == 8 * step   # 8 K/V head groups in turn


SMALL = ["--head-dim", "8", "--key-lanes", "2", "--dim-lanes", "4", "--seq-len", "32"]


@pytest.mark.parametrize(("extra", "message"), [
    (["--decode", "--attention-window", "4"],
     "--decode needs a causal window (--causal --sliding-window W), not "),
    (["--decode"], "--decode needs a causal window (--causal --sliding-window W), not "),
    (["--decode", "--attention-window", "4", "--global-tokens", "0"],
     "--global-tokens cannot be combined with --decode"),
    (["--decode", "--bigbird", "4"], "--bigbird cannot be combined with --decode"),
    (["--causal", "--sliding-window", "5", "--onchip-bytes", "100"],
     "--onchip-bytes 100 needs --decode"),
    (["--causal", "--sliding-window", "5", "--decode", "0"], "--decode must be 1..1048576"),
    (["--causal", "--sliding-window", "5", "--decode", "--onchip-bytes", "-1"],
     "--onchip-bytes must be a non-negative number of bytes, not -1"),
    (["--causal", "--sliding-window", "5", "--decode", "--dataflow", "swat,flash"],
     "--dataflow with --decode must be a subset of swat, reread, onchip, not 'flash'"),
    (["--causal", "--sliding-window", "5", "--decode", "--cores", "2"],
     "--cores cannot be combined with --decode"),
])
def test_cli_refusals(extra, message, capsys):
    assert main(["estimate", *SMALL, *extra]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"swatkit: error: {message}") and err.count("\n") == 1, err


def test_cli_refuses_a_model_that_cannot_decode(capsys):
    assert main(["estimate", "--decode", "--model", "longformer-base", "--seq-len",
                 "1024"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("swatkit: error: --model: model longformer-base, layer 0 ")
    assert "decode needs a causal sliding window" in err and err.count("\n") == 1


def test_the_docs_model_example_is_what_the_command_prints(capsys):
    # docs/estimation.md, "Decode": the GPT-OSS-20b block is the command's output
    import re
    import shlex
    from pathlib import Path

    doc = (Path(__file__).parents[2] / "docs" / "estimation.md").read_text()
    section = doc[doc.index("The whole GPT-OSS-20b with 1 MiB"):]
    command, shown = re.search(r"```\n\$ (.*?)\n(.*?)```", section, re.S).groups()
    args = shlex.split(command)
    assert args[0] == "swatkit"
    assert main(args[1:]) == 0
    assert capsys.readouterr().out == shown


def test_cli_csv_and_breakdown(capsys):
    import csv
    import io

    base = ["estimate", "--decode", "4", "--causal", "--sliding-window", "8", "--head-dim", "8",
            "--seq-len", "32"]
    assert main([*base, "--format", "csv"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [r["dataflow"] for r in rows] == ["swat", "reread", "onchip"]
    # one head, W = 8, d = 8, int8: reread moves the window's K/V, SWAT one K/V row
    assert float(rows[1]["offchip_kv_bytes_per_token"]) == 2 * 8 * 8
    assert float(rows[0]["offchip_kv_bytes_per_token"]) == 2 * 8
    parts = [float(rows[0][f"breakdown_{c}_j"]) for c in
             ("macs", "exp", "reductions", "buffers", "offchip", "static")]
    assert sum(parts) == pytest.approx(float(rows[0]["energy_per_token_j"]))
    assert main([*base, "--breakdown"]) == 0
    assert "E offchip" in capsys.readouterr().out
