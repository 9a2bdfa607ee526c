"""The AXI4-Stream wrapper: bit-exact against the golden model under random gaps and stalls,
tlast on each run's last row, quiet outputs in reset, and a clean Verilator lint."""

import random
from types import SimpleNamespace

import numpy as np
import pytest
from amaranth import Cat
from amaranth.sim import Simulator

from swatkit.golden import AttentionSpec, NumberFormat, fixed_point_attention
from swatkit.rtl import CoreParams, HardwareConfig
from swatkit.rtl.axis import AxisSwatCore, byte_width
from swatkit.rtl.core import command_value
from swatkit.rtl.generate import generate, lint
from swatkit.sim.streams import stream_get, stream_put

CASES = [
    # (spec, hw, gap, stall)
    (AttentionSpec.causal(24, 4, sliding_window=5), HardwareConfig(2, 2, max_seq_len=32),
     0.3, 0.3),
    (AttentionSpec.longformer(20, 6, attention_window=4), HardwareConfig(1, 3, max_seq_len=20),
     0.5, 0.0),
    (AttentionSpec.longformer(16, 4, attention_window=6), HardwareConfig(4, 4, max_seq_len=16),
     0.0, 0.6),
]


def port(dut, name, direction="s"):
    prefix = f"{direction}_axis_{name}_"
    return SimpleNamespace(valid=getattr(dut, prefix + "tvalid"),
                           ready=getattr(dut, prefix + "tready"),
                           payload=getattr(dut, prefix + "tdata"))


def run_axis(dut, runs, *, seed, gap, stall):
    """Simulate ``runs`` (a list of (q, k, v), or of (q, k, v, command): the rows of each
    stream in its order and the command's bits) back to back; returns, per run, the O rows
    (as many as its Q rows) and the tlast flags of its beats. The inputs of every run are
    offered in one go: the core takes a run's rows only once its command has started it."""
    lay, d = dut.layouts, dut.params.spec.head_dim
    rng = random.Random(seed)
    q_rng, kv_rng, o_rng = (random.Random(rng.randrange(2 ** 32)) for _ in range(3))
    width = byte_width(lay["o"].size)
    out = []

    async def clock(ctx):
        while True:
            ctx.set(dut.aclk, 0)
            await ctx.delay(5e-9)
            ctx.set(dut.aclk, 1)
            await ctx.delay(5e-9)

    async def reset(ctx):
        ctx.set(dut.aresetn, 0)
        for _ in range(3):  # three rising edges of aclk in reset
            await ctx.posedge(dut.aclk)
            await ctx.delay(1e-9)
            for name in ("cmd", "q", "kv"):  # in reset: no tready, no tvalid
                assert ctx.get(getattr(dut, f"s_axis_{name}_tready")) == 0
            assert ctx.get(dut.m_axis_o_tvalid) == 0
        ctx.set(dut.aresetn, 1)

    async def control(ctx):
        await reset(ctx)
        o = SimpleNamespace(valid=dut.m_axis_o_tvalid, ready=dut.m_axis_o_tready,
                            payload=Cat(dut.m_axis_o_tdata, dut.m_axis_o_tlast))
        for q, *rest in runs:
            n = len(q)
            cmd = rest[2] if len(rest) > 2 else command_value(dut.params, seq_len=n)
            await stream_put(ctx, port(dut, "cmd"), [cmd])
            beats = await stream_get(ctx, o, n, rng=o_rng, stall=stall, timeout=20_000)
            data = [b & ((1 << width) - 1) for b in beats]
            assert [b >> lay["o"].size for b in data] == [0] * n  # padding bits
            rows = np.array([list(lay["o"].from_bits(b)) for b in data],
                            dtype=np.int64).reshape(n, d)
            out.append((rows, [b >> width for b in beats]))

    async def put_q(ctx):
        await ctx.posedge(dut.aresetn)
        beats = [lay["q"].const([int(x) for x in row]).as_value().value
                 for q, *_ in runs for row in q]
        await stream_put(ctx, port(dut, "q"), beats, rng=q_rng, gap=gap)

    async def put_kv(ctx):
        await ctx.posedge(dut.aresetn)
        beats = [lay["kv"].const({"k": [int(x) for x in k[j]], "v": [int(x) for x in v[j]]})
                 .as_value().value for _, k, v, *_ in runs for j in range(len(k))]
        await stream_put(ctx, port(dut, "kv"), beats, rng=kv_rng, gap=gap)

    sim = Simulator(dut)
    sim.add_testbench(clock, background=True)  # drives aclk, the port of the sync domain
    for tb in (control, put_q, put_kv):
        sim.add_testbench(tb)
    sim.run()
    return out


@pytest.mark.parametrize(("spec", "hw", "gap", "stall"), CASES)
def test_bit_exact_with_tlast_under_gaps_and_stalls(spec, hw, gap, stall, regress_seed):
    fmt = NumberFormat()
    dut = AxisSwatCore(spec, fmt, hw)
    rng = np.random.default_rng(regress_seed)
    runs = []
    for n in (spec.seq_len, max(1, spec.seq_len // 2)):  # two runs: tlast must restart
        runs.append(tuple(rng.integers(-128, 128, size=(n, spec.head_dim)) for _ in range(3)))
    results = run_axis(dut, runs, seed=regress_seed, gap=gap, stall=stall)
    for (q, k, v), (rows, last) in zip(runs, results, strict=True):
        n = len(q)
        expected = fixed_point_attention(q, k, v, spec.replace(seq_len=n), fmt).out
        assert np.ptp(expected) > 0, "trivial output"
        np.testing.assert_array_equal(rows, expected,
                                      err_msg=f"seed {regress_seed} (--seed to reproduce)")
        assert last == [0] * (n - 1) + [1]


# grouped query heads with learned sink logits (q and o: g rows per position, the scores in
# the command's tdata), and sink tokens on a grouped core (kv: the S sink rows first)
GROUP_CASES = [
    (CoreParams(AttentionSpec.causal(20, 4, sliding_window=5), NumberFormat(),
                HardwareConfig(2, 2, max_seq_len=20), heads=8, kv_heads=2, sink_logits=True),
     0.3, 0.3),
    (CoreParams(AttentionSpec(16, 4, 2, 2, sink_tokens=2), NumberFormat(),
                HardwareConfig(1, 4, max_seq_len=16), heads=3, kv_heads=1), 0.4, 0.2),
]


@pytest.mark.parametrize(("params", "gap", "stall"), GROUP_CASES)
def test_grouped_and_sink_cores_bit_exact_with_tlast(params, gap, stall, regress_seed):
    p, fmt = params, params.fmt
    dut = AxisSwatCore(p)
    g, d = p.group_heads, p.spec.head_dim
    rng = np.random.default_rng(regress_seed)
    runs, expected = [], []
    for n in (p.spec.seq_len, p.spec.seq_len // 2 + 1):   # two runs: tlast must restart
        run = p.run_spec(n)
        q = rng.integers(-128, 128, size=(g, n, d))
        k, v = (rng.integers(-128, 128, size=(n, d)) for _ in range(2))
        scores = None
        if p.sink_logits:   # (on the score grid: the integers the command carries)
            lo, hi = fmt.score_range(d)
            scores = [int(x) for x in rng.integers(lo // 6, hi // 6 + 1, g)]
        logits = None if scores is None else np.asarray(scores) * fmt.score_unit(d)
        out = fixed_point_attention(q, k[None], v[None], run, fmt, sink_logits=logits).out
        sinks = np.arange(run.sink_tokens)   # sent first on kv
        runs.append((q.transpose(1, 0, 2).reshape(g * n, d), np.concatenate([k[sinks], k]),
                     np.concatenate([v[sinks], v]),
                     command_value(p, run, sink_scores=scores)))
        expected.append(out.transpose(1, 0, 2).reshape(g * n, d))
    results = run_axis(dut, runs, seed=regress_seed, gap=gap, stall=stall)
    for want, (rows, last) in zip(expected, results, strict=True):
        assert np.ptp(want) > 0, "trivial output"
        np.testing.assert_array_equal(rows, want,
                                      err_msg=f"seed {regress_seed} (--seed to reproduce)")
        assert last == [0] * (len(want) - 1) + [1]


def test_tdata_is_padded_to_bytes():
    dut = AxisSwatCore(AttentionSpec.causal(8, 3, sliding_window=2), NumberFormat(data_bits=6),
                       HardwareConfig(1, 3, max_seq_len=8))
    assert (len(dut.s_axis_q_tdata), len(dut.s_axis_kv_tdata), len(dut.s_axis_cmd_tdata)) == (
        24, 40, 8)


def test_generated_axis_top_lints_clean(tmp_path):
    out = generate(AttentionSpec.causal(32, 8, sliding_window=6), NumberFormat(),
                   HardwareConfig(2, 4, max_seq_len=32), tmp_path, name="swat_axis",
                   interface="axis")
    text = out.verilog.read_text()
    for name in ("aclk", "aresetn", "s_axis_q_tdata", "s_axis_kv_tvalid", "s_axis_cmd_tready",
                 "m_axis_o_tlast", "m_axis_o_tready"):
        assert f" {name};" in text
    assert "%Warning" not in lint(out)
