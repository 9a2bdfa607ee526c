"""The on-board self-test in Amaranth's simulator: it passes on the golden vectors, reports a
corrupted expected ROM as a failure (naming the row), reports a hang, restarts on ``start``, and
prints its result line over the UART. LFSR mode: the on-chip generator's rows equal the NumPy
generator's, the CRC-32 of the output equals ``zlib.crc32`` of the golden output, and a corrupted
signature or one wrong output element makes it report FAIL. In Verilator (its Verilog, as the
board build elaborates it): the same result as Amaranth's simulator, field for field, and the
ULX3S-85F default at its full size (``slow``)."""

import dataclasses
import json
import random
import re
import time
import zlib

import numpy as np
import pytest
from amaranth import Value
from amaranth.sim import Simulator

from swatkit.cli import main
from swatkit.fpga_flows.cocotb_selftest import uart_samples
from swatkit.fpga_flows.flow import FlowConfig, simulate_selftest, vectors_of
from swatkit.fpga_flows.selftest import (
    LFSR_MESSAGE_LEN,
    MESSAGE_LEN,
    SelfTest,
    UARTTx,
    crc_bytes,
    decode_uart,
    lfsr_bits,
    lfsr_elements,
    lfsr_seed,
    make_lfsr_vectors,
    make_vectors,
    signature,
    simulate,
    simulate_verilator,
)
from swatkit.golden import AttentionSpec, NumberFormat, fixed_point_attention
from swatkit.rtl import CoreParams, HardwareConfig
from swatkit.rtl.lfsr import lfsr_sequence
from swatkit.rtl.units import DspTarget
from swatkit.sim import regress
from swatkit.sim.streams import stream_put
from swatkit.support.boards import BOARDS


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
    return SelfTest(params, vectors, uart_divisor=3, **kwargs)


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


# grouped query heads (Q and output rows: g per position), sink tokens (their K/V rows sent
# first, as the core's resident columns), learned sink logits (one score per head on the command)
GROUP_CONFIGS = {
    "gqa4-logits-causal": (CoreParams(AttentionSpec.causal(64, 8, 6), NumberFormat(),
                                      HardwareConfig(2, 4, 64), heads=8, kv_heads=2,
                                      sink_logits=True), 10),
    "sink3-gqa2-bi": (CoreParams(AttentionSpec(64, 4, 2, 2, sink_tokens=3), NumberFormat(),
                                 HardwareConfig(1, 2, 64), heads=2, kv_heads=1), 9),
    "sink2-causal-logits": (CoreParams(AttentionSpec.causal(32, 4, 4, sink_tokens=2),
                                       NumberFormat(), HardwareConfig(2, 2, 32),
                                       sink_logits=True), 7),
}


@pytest.mark.parametrize("name", GROUP_CONFIGS)
def test_grouped_and_sink_selftest_passes_and_a_bad_row_fails(name):
    params, rows = GROUP_CONFIGS[name]
    out = rows * params.group_heads
    v = make_vectors(params, rows, SEED)
    assert v.q.shape == v.expected.shape == (out, params.spec.head_dim) and v.rows == rows
    assert (v.sink_scores is not None) == params.sink_logits
    r = simulate(SelfTest(params, v, uart_divisor=3))
    assert (r.passed, r.failed, r.hang, r.error) == (True, False, False, False)
    assert (r.rows, r.bad) == (out, 0)
    assert r.line.startswith(f"SWAT PASS rows={out:04X}/{out:04X} bad=0000 first=FFFF ")
    bad_row = out - 2   # (a later head of a late position)
    r = simulate(SelfTest(params, v.corrupted(bad_row, 1), uart_divisor=3))
    assert (r.passed, r.failed, r.hang) == (False, True, False)
    assert (r.rows, r.bad, r.first_bad) == (out, 1, bad_row)


def test_grouped_and_sink_vectors_are_golden():
    # the streams' order: position 0's query heads, then position 1's; the sink scores on the
    # score grid are the sink logits the golden model takes
    params, rows = GROUP_CONFIGS["gqa4-logits-causal"]
    v = make_vectors(params, rows, SEED)
    g, d, fmt = params.group_heads, params.spec.head_dim, params.fmt
    q = v.q.reshape(rows, g, d).transpose(1, 0, 2)
    z = np.asarray(v.sink_scores) * fmt.score_unit(d)
    want = fixed_point_attention(q, v.k[None], v.v[None], params.spec.replace(seq_len=rows),
                                 fmt, sink_logits=z).out
    assert np.array_equal(v.expected.reshape(rows, g, d).transpose(1, 0, 2), want)
    assert len(set(v.sink_scores)) > 1 and np.ptp(v.expected) > 0
    assert np.array_equal(make_vectors(params, rows, SEED).q, v.q)


def test_grouped_and_sink_selftest_refusals():
    params, rows = GROUP_CONFIGS["gqa4-logits-causal"]
    message = ("selftest must be rom for a core with 8 query heads on 2 K/V, not lfsr (the LFSR "
               "generators feed one query head's rows, no sink columns and no sink scores)")
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        make_lfsr_vectors(params, rows, SEED)
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        SelfTest(params, make_vectors(params, rows, SEED), mode="lfsr")
    with pytest.raises(ValueError, match=r"^test_rows must be an integer in 1\.\.64 \(the core's "
                                         r"max_seq_len and the ROM limit \(4 Q and output rows "
                                         r"per position\)\), not 65$"):
        make_vectors(params, 65, SEED)
    sinks, _ = GROUP_CONFIGS["sink3-gqa2-bi"]
    with pytest.raises(ValueError, match=r"^test_rows must be at least the core's sink tokens "
                                         r"\(3\), not 2$"):
        make_vectors(sinks, 2, SEED)
    with pytest.raises(ValueError, match=r"^vectors must carry one sink score per query head "
                                         r"\(4\) for a core that takes learned sink logits, "
                                         r"not None$"):
        SelfTest(params, dataclasses.replace(make_vectors(params, rows, SEED), sink_scores=None))


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


@pytest.mark.parametrize("flag", [False, True])
def test_rule_error_fails_the_selftest(flag):
    """The self-test passes only if the core's ``rule_error`` stays 0: with the K/V copier's
    sticky flag forced to 1 during the run (its ROM sources keep the stream rule, so only a
    fault of the core could raise it), every row still equals the expected one, and the
    result is FAIL (not a hang)."""
    params, rows = CONFIGS["rows-below-window"]
    assert params.groups >= 2   # (rows of two words: the core's flag is a register)
    dut = selftest(params, rows)
    seen = {}

    async def bench(ctx):
        for _ in range(100_000):
            if ctx.get(dut.status.busy):
                break
            await ctx.tick()
        await ctx.tick().repeat(5)
        if flag:
            ctx.set(dut.core.ring.copier.dropped, 1)
        for _ in range(100_000):
            if ctx.get(dut.status.passed | dut.status.failed):
                break
            await ctx.tick()
        seen.update(passed=ctx.get(dut.status.passed), failed=ctx.get(dut.status.failed),
                    hang=ctx.get(dut.status.hang), rows=ctx.get(dut.rows),
                    bad=ctx.get(dut.bad))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert seen == {"passed": not flag, "failed": flag, "hang": 0, "rows": rows, "bad": 0}


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
        SelfTest(params, vectors)


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


# -- LFSR mode ------------------------------------------------------------------------------------


def lfsr_selftest(params: CoreParams, rows: int, *, vectors=None, **kwargs) -> SelfTest:
    vectors = vectors or make_lfsr_vectors(params, rows, SEED)
    return SelfTest(params, vectors, mode="lfsr", uart_divisor=3,
                    **kwargs)


@pytest.mark.parametrize("seed", [0, 1, 7, 0xFFFFFFFF, 1 << 40])
def test_lfsr_bits_are_the_harness_lfsr(seed):
    """The fast NumPy generator is the harness LFSR's bit 0, state by state."""
    for count in (1, 63, 64, 4097, 70_001):
        np.testing.assert_array_equal(lfsr_bits(seed, count),
                                      lfsr_sequence(seed, count) & 1)


def test_lfsr_elements_cover_the_signed_range():
    q = lfsr_elements(lfsr_seed(1, 0), 1024, 8, 8)
    assert (q.min(), q.max()) == (-128, 127)
    assert abs(q.mean()) < 1.5
    # element 0 is the first 8 bits of the stream, least significant first
    bits = lfsr_bits(lfsr_seed(1, 0), 8)
    value = int(sum(int(b) << i for i, b in enumerate(bits)))
    assert q[0, 0] == (value - 256 if value >= 128 else value)
    narrow = lfsr_elements(5, 100, 6, 6)
    assert (narrow.min(), narrow.max()) == (-32, 31)
    # the three streams differ
    assert len({lfsr_seed(9, i) for i in range(3)}) == 3


def test_crc_definition():
    out = np.array([[1, -1, 127], [-128, 0, 5]])
    assert crc_bytes(out, 8) == bytes([1, 0xFF, 0x7F, 0x80, 0, 5])
    assert crc_bytes(out, 12) == bytes([1, 0, 0xFF, 0xFF, 0x7F, 0, 0x80, 0xFF, 0, 0, 5, 0])
    assert signature(out, 8) == zlib.crc32(out.astype(np.int8).tobytes())
    assert signature(out, 16) == zlib.crc32(out.astype("<i2").tobytes())


def test_lfsr_vectors_are_golden():
    params, _ = CONFIGS["icebreaker-default"]
    v = make_lfsr_vectors(params, 64, SEED)
    np.testing.assert_array_equal(v.q, lfsr_elements(lfsr_seed(SEED, 0), 64, 8, 8))
    np.testing.assert_array_equal(v.k, lfsr_elements(lfsr_seed(SEED, 1), 64, 8, 8))
    np.testing.assert_array_equal(v.v, lfsr_elements(lfsr_seed(SEED, 2), 64, 8, 8))
    spec = params.spec.replace(seq_len=64)
    want = fixed_point_attention(v.q, v.k, v.v, spec, params.fmt).out
    np.testing.assert_array_equal(v.expected, want)
    assert v.crc == zlib.crc32(want.astype(np.int8).tobytes())
    assert v.corrupted_signature(3).crc == v.crc ^ 8
    with pytest.raises(ValueError, match=r"^these vectors have no signature"):
        make_vectors(params, 4, SEED).corrupted_signature()


def test_hdl_generator_rows_equal_numpy():
    """Every Q and K/V row the on-chip generators hand to the core (6-bit data, head_dim 6)
    equals make_lfsr_vectors' rows."""
    params, rows = CONFIGS["causal-kl2-dl3-narrow"]
    dut = lfsr_selftest(params, rows)
    d, bits = params.spec.head_dim, params.fmt.data_bits
    seen = {"q": [], "kv": []}

    def unpack(word, count):
        vals = [(word >> (bits * j)) & ((1 << bits) - 1) for j in range(count)]
        return [x - (1 << bits) if x >> (bits - 1) else x for x in vals]

    async def watch(ctx):  # after each edge: a beat offered and taken moves on the next one
        for _ in range(20_000):
            if len(seen["kv"]) == rows and len(seen["q"]) == rows:
                break
            await ctx.tick()
            for name in seen:
                port = getattr(dut.core, name)
                if ctx.get(port.valid) and ctx.get(port.ready):
                    word = ctx.get(Value.cast(port.payload))
                    seen[name].append(unpack(word, d if name == "q" else 2 * d))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(watch)
    sim.run()
    v = make_lfsr_vectors(params, rows, SEED)
    np.testing.assert_array_equal(np.array(seen["q"]), v.q)
    np.testing.assert_array_equal(np.array(seen["kv"]), np.concatenate([v.k, v.v], axis=1))


LFSR_CONFIGS = {
    # a realistic N for the iCEBreaker default (N = 1024 takes ~66 s: the slow test below)
    "icebreaker-default-256": (CONFIGS["icebreaker-default"][0], 256),
    "causal-kl2-dl3-narrow": CONFIGS["causal-kl2-dl3-narrow"],
    "rows-below-window": CONFIGS["rows-below-window"],
}


@pytest.mark.parametrize("name", LFSR_CONFIGS)
def test_lfsr_selftest_passes(name):
    params, rows = LFSR_CONFIGS[name]
    v = make_lfsr_vectors(params, rows, SEED)
    t = time.monotonic()
    r = simulate(lfsr_selftest(params, rows, vectors=v))
    print(f"config {name} seed {SEED}: {rows} rows, {r.cycles} cycles, "
          f"{time.monotonic() - t:.1f} s: {r.line.strip()}")
    assert (r.passed, r.failed, r.hang, r.error) == (True, False, False, False)
    assert (r.rows, r.crc) == (rows, v.crc)
    assert r.line == (f"SWAT PASS rows={rows:04X}/{rows:04X} crc={v.crc:08X} want={v.crc:08X} "
                      f"cycles={r.cycles:08X}\r\n")
    assert len(r.line) == LFSR_MESSAGE_LEN
    assert r.cycles >= rows * params.groups


def test_lfsr_corrupted_signature_fails():
    # (the compare does not depend on the core: the small configuration, not the iCEBreaker's,
    # whose 256 rows take ~15 s in Amaranth's simulator and pass in the test above)
    params, rows = LFSR_CONFIGS["causal-kl2-dl3-narrow"]
    v = make_lfsr_vectors(params, rows, SEED)
    r = simulate(lfsr_selftest(params, rows, vectors=v.corrupted_signature(0)))
    assert (r.passed, r.failed, r.hang, r.error) == (False, True, False, False)
    assert (r.rows, r.crc) == (rows, v.crc)  # the output was right; the constant is not
    assert r.line == (f"SWAT FAIL rows={rows:04X}/{rows:04X} crc={v.crc:08X} "
                      f"want={v.crc ^ 1:08X} cycles={r.cycles:08X}\r\n")


def test_lfsr_wrong_output_element_fails():
    """One output element off by its lowest bit (row 5, element 3): FAIL, and the CRC is the
    one of the golden output with that bit flipped."""
    params, rows = CONFIGS["causal-kl2-dl3-narrow"]
    v = make_lfsr_vectors(params, rows, SEED)
    r = simulate(lfsr_selftest(params, rows, vectors=v, fault=(5, 3)))
    assert (r.passed, r.failed, r.hang) == (False, True, False)
    bad = v.expected.copy()
    bad[5, 3] ^= 1
    assert r.crc == signature(bad, params.fmt.out_bits) != v.crc
    assert r.line.startswith(f"SWAT FAIL rows={rows:04X}/{rows:04X} crc={r.crc:08X} "
                             f"want={v.crc:08X} ")


def test_lfsr_hang_is_reported():
    params, rows = CONFIGS["rows-below-window"]
    r = simulate(lfsr_selftest(params, rows, timeout=10))
    assert (r.passed, r.failed, r.hang) == (False, True, True)
    assert r.line.startswith(f"SWAT HANG rows=0000/{rows:04X} crc=00000000 ")


def test_lfsr_mode_checked():
    params, _ = CONFIGS["icebreaker-default"]
    with pytest.raises(ValueError, match=r"^mode must be one of rom, lfsr, decode, not 'ram'$"):
        SelfTest(params, make_vectors(params, 4, SEED), mode="ram")
    with pytest.raises(ValueError, match=r"^LFSR mode needs vectors with a seed and a CRC"):
        SelfTest(params, make_vectors(params, 4, SEED),
                 mode="lfsr")
    message = ("test_rows must be an integer in 1..1024 (the core's max_seq_len and the 16-bit "
               "row counter), not 1025")
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        make_lfsr_vectors(params, 1025, SEED)


@pytest.mark.slow
def test_lfsr_selftest_passes_at_the_icebreaker_seq_len():
    """The iCEBreaker default at its full seq_len, N = 1024 (~37 k cycles; ~66 s here)."""
    params, _ = CONFIGS["icebreaker-default"]
    rows = params.hw.max_seq_len
    v = make_lfsr_vectors(params, rows, SEED)
    r = simulate(lfsr_selftest(params, rows, vectors=v), max_cycles=10**6)
    assert r.passed and (r.rows, r.crc) == (rows, v.crc), r


# -- in Verilator ---------------------------------------------------------------------------------

# (mode, fault, multipliers and memories): the 6-bit causal configuration, 20 rows, each case
# one Verilator build; "ecp5-banks4" is the ECP5 build's Verilog (MULT18X18D and its model) with
# 4-word K/V memory banks, so that a small core has several banks
VERILATOR_CASES = {
    "lfsr-pass": ("lfsr", None, None),
    "lfsr-corrupted-signature": ("lfsr", "signature", None),
    "rom-corrupted-row": ("rom", "row", None),
    "lfsr-pass-ecp5-banks4": ("lfsr", None, DspTarget("ecp5", ram_bank_words=4)),
}


@pytest.mark.parametrize("name", VERILATOR_CASES)
def test_verilator_equals_amaranth(name, request):
    """The self-test's Verilog in Verilator reports what Amaranth's simulator reports, field
    for field, and the UART line takes as many cycles."""
    params, rows = CONFIGS["causal-kl2-dl3-narrow"]
    mode, fault, platform = VERILATOR_CASES[name]
    make = make_lfsr_vectors if mode == "lfsr" else make_vectors
    v = make(params, rows, SEED)
    bad_row = 11
    vectors = (v.corrupted_signature(0) if fault == "signature"
               else v.corrupted(bad_row, 2) if fault == "row" else v)

    def dut():
        return SelfTest(params, vectors, mode=mode, uart_divisor=3)

    want = simulate(dut())
    got = simulate_verilator(dut(), platform=platform,
                             build_dir=request.config.getoption("build_dir"))
    print(f"config causal-kl2-dl3-narrow seed {SEED}, {name}: {got.line.strip()}; "
          f"{got.run.summary()}")
    assert got == want
    for field in ("passed", "failed", "hang", "error", "rows", "bad", "first_bad", "cycles",
                  "line", "crc"):
        assert getattr(got, field) == getattr(want, field), field
    assert got.run.simulator == "verilator" and want.run.simulator == "amaranth"
    assert got.run.sim_cycles == want.run.sim_cycles > got.cycles
    # a short run: its model compiled at -O0, as a small build of the regression
    built = json.loads((got.run.build_dir / "build.ok").read_text())
    assert tuple(built["make_args"]) == regress.QUICK_MAKE_ARGS, built["make_args"]
    # Verilator's runtime objects are the regression's (<cache>/runtime), not compiled again
    # into <cache>/selftest/runtime (a build that takes them says where from)
    cache = got.run.build_dir.parent   # (<cache>/selftest)
    log = (got.run.build_dir / "build.log").read_text()
    assert f"from {cache / 'runtime'}" not in log
    assert any((cache.parent / "runtime").glob("*/ok"))
    assert (got.hang, got.error, got.rows) == (False, False, rows)
    if mode == "lfsr":
        verdict = "FAIL" if fault else "PASS"
        assert (got.passed, got.crc) == (not fault, v.crc)
        assert got.line == (f"SWAT {verdict} rows={rows:04X}/{rows:04X} crc={v.crc:08X} "
                            f"want={vectors.crc:08X} cycles={got.cycles:08X}\r\n")
    else:
        assert (got.passed, got.bad, got.first_bad) == (False, 1, bad_row)
        assert got.line.startswith(f"SWAT FAIL rows={rows:04X}/{rows:04X} bad=0001 "
                                   f"first={bad_row:04X} ")


def test_the_self_test_build_is_optimised_for_its_run():
    """The self-test's model is compiled as a regression build of as many cycles
    (sim.regress.make_args_for): -O0 for a run of up to QUICK_CYCLES (the small self-tests
    here, the iCEBreaker's default at its full 1024 rows), -O1 above (the ULX3S default from
    64 rows on; its board self-test runs 4096)."""
    small = lfsr_selftest(*CONFIGS["causal-kl2-dl3-narrow"])
    ice = lfsr_selftest(board_params("icebreaker"), 1024)
    ulx = lfsr_selftest(board_params("ulx3s-85f"), 64)
    assert small.run_cycles < ice.run_cycles <= regress.QUICK_CYCLES < ulx.run_cycles
    assert [regress.make_args_for(t.run_cycles) for t in (small, ice, ulx)] == [
        regress.QUICK_MAKE_ARGS, regress.QUICK_MAKE_ARGS, regress.MAKE_ARGS]
    assert ulx.cycle_limit == 4 * ulx.run_cycles + 2 * ulx.timeout + 1000


def test_verilator_gives_up_after_max_cycles(request):
    params, rows = CONFIGS["causal-kl2-dl3-narrow"]
    dut = lfsr_selftest(params, rows)  # the build of "lfsr-pass" above (the same Verilog)
    with pytest.raises(TimeoutError, match=r"^the self-test did not finish in 50 cycles$"):
        simulate_verilator(dut, max_cycles=50, build_dir=request.config.getoption("build_dir"))
    with pytest.raises(ValueError, match=r"^max_cycles must be a positive integer, not 0$"):
        simulate_verilator(dut, max_cycles=0)


def test_uart_samples_from_changes():
    # a start bit at cycle 3 (two cycles), a high bit, the line high again at cycle 7
    assert uart_samples([(3, 0), (5, 1)], 7) == [1, 1, 1, 0, 0, 1, 1, 1]
    assert uart_samples([], 2) == [1, 1, 1]
    # 0x81 at 4 cycles per bit: idle, start bit, bit 0 high, bits 1-6 low, bit 7 high, stop bit
    line = [1] * 5 + [0] * 4 + [1] * 4 + [0] * 24 + [1] * 4 + [1] * 8
    changes = [(i, b) for i, b in enumerate(line) if i and line[i - 1] != b]
    assert changes == [(5, 0), (9, 1), (13, 0), (37, 1)]
    assert uart_samples(changes, len(line) - 1) == line
    assert decode_uart(uart_samples(changes, len(line) - 1), 4) == bytes([0x81])


@pytest.mark.slow
def test_ulx3s_default_passes_in_verilator(tmp_path, capsys, monkeypatch, request):
    """``swatkit flow --board ulx3s-85f --simulate``: the board's default (the Longformer-base
    head on 2 x 8 lanes, LFSR mode, all 4096 rows, the flow's seed) in Verilator, with the ECP5
    build's multipliers and memory banks, passes with the golden model's CRC (~8.2 M cycles)."""
    if request.config.getoption("build_dir"):
        monkeypatch.setenv("SWATKIT_BUILD_DIR", request.config.getoption("build_dir"))
    board = BOARDS["ulx3s-85f"]
    params = board_params("ulx3s-85f")
    out = tmp_path / "p"
    t = time.monotonic()
    assert main(["flow", "--board", "ulx3s-85f", "-o", str(out), "--simulate"]) == 0
    seconds = time.monotonic() - t
    text = capsys.readouterr().out
    print(text)
    info = json.loads((out / "swatkit.json").read_text())
    seed = info["selftest"]["seed"]
    assert (board.selftest, info["selftest"]["mode"], info["selftest"]["rows"]) == (
        "lfsr", "lfsr", 4096)
    # the golden CRC, from the generator's inputs and the bit-exact model
    v = make_lfsr_vectors(params, 4096, seed)
    assert v.crc == signature(fixed_point_attention(v.q, v.k, v.v, params.spec,
                                                    params.fmt).out, params.fmt.out_bits)
    assert info["selftest"]["crc"] == f"{v.crc:08X}"
    line = re.search(r"^simulation: (SWAT .*)$", text, re.M)[1]
    assert re.fullmatch(f"SWAT PASS rows=1000/1000 crc={v.crc:08X} want={v.crc:08X} "
                        r"cycles=([0-9A-F]{8})", line), line
    cycles = int(line[-8:], 16)
    # every row's keys at 2 x 8 MACs per cycle, and no more than 5 % above
    ideal = params.ideal_cycles(4096, params.spec)
    assert ideal <= cycles <= 1.05 * ideal, (cycles, ideal)
    assert re.search(r"^simulated with verilator: [\d,]+ cycles in ", text, re.M)
    print(f"ULX3S default in Verilator: {cycles} cycles (ideal {ideal:.0f}); wall {seconds:.1f} s")


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["lfsr", "rom"])
def test_ulx3s_default_fault_fails_in_verilator(mode, request):
    """The ULX3S default in Verilator: LFSR mode with its signature's bit 0 flipped (all 4096
    rows; the computed CRC stays the golden one), ROM mode (the board's rows) with one expected
    element off: both FAIL."""
    board = BOARDS["ulx3s-85f"]
    params = board_params("ulx3s-85f")
    rows = 4096 if mode == "lfsr" else board.test_rows
    config = FlowConfig(board, params, rows, selftest=mode)
    v = vectors_of(config)
    bad_row = rows - 3
    r = simulate_selftest(config, "verilator", build_dir=request.config.getoption("build_dir"),
                          vectors=v.corrupted_signature(0) if mode == "lfsr"
                          else v.corrupted(bad_row, 63))
    print(f"ULX3S default, {mode} mode, seed {config.seed}: {r.line.strip()}; {r.run.summary()}")
    assert (r.passed, r.failed, r.hang, r.error, r.rows) == (False, True, False, False, rows)
    if mode == "lfsr":
        assert r.crc == v.crc
        assert r.line.startswith(f"SWAT FAIL rows=1000/1000 crc={v.crc:08X} "
                                 f"want={v.crc ^ 1:08X} ")
    else:
        assert (r.bad, r.first_bad) == (1, bad_row)
