"""The on-board self-test in Amaranth's simulator: it passes on the golden vectors, reports a
corrupted expected ROM as a failure (naming the row), reports a hang, restarts on ``start``, and
prints its result line over the UART."""

import random
import re

import numpy as np
import pytest
from amaranth.sim import Simulator

from swatkit.fpga_flows.boards import BOARDS
from swatkit.fpga_flows.selftest import (
    MESSAGE_LEN,
    SelfTest,
    UARTTx,
    decode_uart,
    make_vectors,
    simulate,
)
from swatkit.golden import AttentionSpec, NumberFormat, fixed_point_attention
from swatkit.rtl import CoreParams, HardwareConfig
from swatkit.sim.streams import stream_put


def board_params(name: str) -> CoreParams:
    d = BOARDS[name].defaults
    spec = AttentionSpec.longformer(d["seq_len"], d["head_dim"], d["attention_window"])
    return CoreParams(spec, NumberFormat(), HardwareConfig(d["key_lanes"], d["dim_lanes"],
                                                           d["seq_len"]))


CONFIGS = {
    "icebreaker-default": (board_params("icebreaker"), BOARDS["icebreaker"].test_rows),
    "causal-kl2-dl3-narrow": (CoreParams(
        AttentionSpec.causal(64, 6, 5), NumberFormat(data_bits=6, out_frac_bits=2, out_bits=8),
        HardwareConfig(2, 3, 64)), 20),
    "rows-below-window": (CoreParams(AttentionSpec(16, 4, 4, 4), NumberFormat(),
                                     HardwareConfig(3, 2, 16)), 3),
}
SEED = 7


def selftest(params: CoreParams, rows: int, *, corrupt_row=None, **kwargs) -> SelfTest:
    vectors = make_vectors(params, rows, SEED)
    if corrupt_row is not None:
        vectors = vectors.corrupted(corrupt_row, column=params.spec.head_dim - 1)
    return SelfTest(params.spec, params.fmt, params.hw, vectors, uart_divisor=3, **kwargs)


@pytest.mark.parametrize("name", CONFIGS)
def test_selftest_passes(name):
    params, rows = CONFIGS[name]
    print(f"config {name} seed {SEED}")
    r = simulate(selftest(params, rows))
    assert (r.passed, r.failed, r.hang, r.error) == (True, False, False, False)
    assert (r.rows, r.bad, r.first_bad) == (rows, 0, 0xFFFF)
    assert r.line == (f"SWAT PASS rows={rows:04X}/{rows:04X} bad=0000 first=FFFF "
                      f"cycles={r.cycles:08X}\r\n")
    # the run takes at least the steady-state bound of every row
    assert r.cycles >= rows * params.groups


@pytest.mark.parametrize("name", CONFIGS)
def test_corrupted_expected_rom_fails(name):
    params, rows = CONFIGS[name]
    bad_row = rows // 2
    r = simulate(selftest(params, rows, corrupt_row=bad_row))
    assert (r.passed, r.failed, r.hang) == (False, True, False)
    assert (r.rows, r.bad, r.first_bad) == (rows, 1, bad_row)
    assert r.line.startswith(f"SWAT FAIL rows={rows:04X}/{rows:04X} bad=0001 "
                             f"first={bad_row:04X} ")


def test_hang_is_reported():
    params, rows = CONFIGS["icebreaker-default"]
    # a timeout shorter than the first row's latency: the checker gives up before any row
    r = simulate(selftest(params, rows, timeout=10))
    assert (r.passed, r.failed, r.hang) == (False, True, True)
    assert r.rows == 0
    assert r.line.startswith(f"SWAT HANG rows=0000/{rows:04X} ")


def test_restart_runs_the_test_again():
    params, rows = CONFIGS["rows-below-window"]
    dut = selftest(params, rows)
    seen = []

    async def wait_for(ctx, signal, limit=100_000):
        for _ in range(limit):
            if ctx.get(signal):
                return
            await ctx.tick()
        raise TimeoutError(f"{signal} not set in {limit} cycles")

    async def bench(ctx):
        for run in range(2):
            await wait_for(ctx, dut.status.busy)
            await wait_for(ctx, dut.status.passed | dut.status.failed)
            seen.append((ctx.get(dut.status.passed), ctx.get(dut.rows)))
            if run == 0:
                await ctx.tick().repeat(3)
                ctx.set(dut.start, 1)
                await ctx.tick().repeat(2)
                ctx.set(dut.start, 0)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert seen == [(1, rows), (1, rows)]


def test_vectors_are_golden_and_reproducible():
    params, rows = CONFIGS["icebreaker-default"]
    a, b = make_vectors(params, rows, SEED), make_vectors(params, rows, SEED)
    np.testing.assert_array_equal(a.q, b.q)
    spec = params.spec.replace(seq_len=rows)
    want = fixed_point_attention(a.q, a.k, a.v, spec, params.fmt).out
    np.testing.assert_array_equal(a.expected, want)
    assert a.expected.std() > 0  # not a trivial output
    assert not np.array_equal(make_vectors(params, rows, SEED + 1).q, a.q)
    bad = a.corrupted(3, 1)
    assert (bad.expected != a.expected).sum() == 1


@pytest.mark.parametrize("rows", [0, 1025])
def test_vectors_rows_checked(rows):
    params, _ = CONFIGS["icebreaker-default"]
    message = ("test_rows must be an integer in 1..1024 (the core's max_seq_len and the ROM "
               f"limit), not {rows}")
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        make_vectors(params, rows, SEED)
    with pytest.raises(TypeError, match=r"^test_rows must be an integer, not 2\.0$"):
        make_vectors(params, 2.0, SEED)


def test_selftest_checks_vector_shape():
    params, _ = CONFIGS["icebreaker-default"]
    other, _ = CONFIGS["rows-below-window"]
    vectors = make_vectors(other, 3, SEED)
    with pytest.raises(ValueError, match=r"^vectors.q has shape \(3, 4\), expected \(3, 8\)$"):
        SelfTest(params.spec, params.fmt, params.hw, vectors)


def test_uart_tx_sends_bytes_under_gaps():
    divisor = 5
    dut = UARTTx(divisor)
    text = b"SWAT \x00\xff\r\n"
    samples = []

    async def feed(ctx):
        await stream_put(ctx, dut.data, list(text), rng=random.Random(3), gap=0.5)

    async def watch(ctx):
        for _ in range((len(text) + 2) * (10 * divisor + 8)):
            await ctx.tick()
            samples.append(ctx.get(dut.tx))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(feed)
    sim.add_testbench(watch)
    sim.run()
    assert samples[0] == 1  # idles high
    assert decode_uart(samples, divisor) == text


def test_uart_divisor_checked():
    with pytest.raises(ValueError, match=r"^divisor must be a positive integer, not 0$"):
        UARTTx(0)
    with pytest.raises(TypeError, match=r"^divisor must be an integer, not 2\.5$"):
        UARTTx(2.5)


def test_message_length_is_fixed():
    params, rows = CONFIGS["rows-below-window"]
    r = simulate(selftest(params, rows))
    assert len(r.line) == MESSAGE_LEN


@pytest.mark.slow
def test_ulx3s_default_passes_in_simulation():
    params = board_params("ulx3s-85f")
    rows = BOARDS["ulx3s-85f"].test_rows
    r = simulate(selftest(params, rows))
    assert r.passed and r.rows == rows, r
