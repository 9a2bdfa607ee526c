"""The decode self-test (``SelfTest(mode="decode")``, ``swatkit flow --selftest decode``): a
decode core prefills P rows and decodes T single-row steps on the LFSR inputs, and one CRC-32
over every output row is compared on chip with the golden model's over the P + T rows.

In Amaranth's simulator (a grouped core with learned sink logits, a few rows): it passes, its
busy cycles of the steps equal the cycle model's, and a wrong output element in a decode step
or a wrong signature makes it fail; in Verilator, the same result field for field. The ULX3S
build's full size (1,024 + 256 rows of the GPT-OSS group) is checked by
``swatkit flow --board ulx3s-85f --selftest decode --simulate verilator`` (docs/fpga.md)."""

from __future__ import annotations

import re

import numpy as np
import pytest

from swatkit.cli import main
from swatkit.fpga_flows.flow import FlowConfig, decode_model_cycles, vectors_of
from swatkit.fpga_flows.selftest import (
    DECODE_MESSAGE_LEN,
    SINK_SEED,
    SelfTest,
    lfsr_elements,
    lfsr_seed,
    make_decode_vectors,
    make_lfsr_vectors,
    signature,
    simulate,
    simulate_verilator,
    sink_bits,
)
from swatkit.golden import AttentionSpec, NumberFormat, fixed_point_attention, sequence_runs
from swatkit.rtl import CoreParams, HardwareConfig
from swatkit.rtl.lfsr import lfsr_seed as load_seed
from swatkit.support.boards import BOARDS

SEED = 7
# a causal window of 4 keys, head_dim 4, 2 query heads on one K/V head with learned sink
# logits, one key lane and one dim lane: the generators (5 cycles a row) keep ahead of the core
# (16 cycles an output row), so the decode steps' busy cycles are the cycle model's exactly
SPEC = AttentionSpec.causal(10, 4, sliding_window=4)
PARAMS = CoreParams(SPEC, NumberFormat(), HardwareConfig(1, 1, 10), heads=2, kv_heads=1,
                    sink_logits=True, contexts=1)
PREFILL, STEPS = 5, 4


def decode_selftest(vectors=None, **kwargs) -> SelfTest:
    vectors = vectors or make_decode_vectors(PARAMS, PREFILL, STEPS, SEED)
    return SelfTest(PARAMS, vectors, mode="decode", uart_divisor=3, **kwargs)


def test_decode_vectors_are_golden():
    v = make_decode_vectors(PARAMS, PREFILL, STEPS, SEED)
    rows, g, d = PREFILL + STEPS, 2, 4
    assert (v.rows, v.steps, v.prefill, v.out_rows) == (rows, STEPS, PREFILL, g * rows)
    # one generator stream for the g heads' Q rows, in the q stream's order; K and V as LFSR
    # mode's
    np.testing.assert_array_equal(v.q, lfsr_elements(lfsr_seed(SEED, 0), g * rows, d, 8))
    np.testing.assert_array_equal(v.k, lfsr_elements(lfsr_seed(SEED, 1), rows, d, 8))
    np.testing.assert_array_equal(v.v, lfsr_elements(lfsr_seed(SEED, 2), rows, d, 8))
    # the sink scores: g elements of their own generator, within a sixth of the scores' range
    bits = sink_bits(PARAMS)
    lo, hi = PARAMS.fmt.score_range(d)
    assert 2 ** (bits - 1) <= min(-lo, hi) // 6 < 2 ** bits
    assert v.sink_scores == tuple(int(x) for x in lfsr_elements(load_seed(SEED ^ SINK_SEED),
                                                                1, g, bits)[0])
    assert len(set(v.sink_scores)) > 1
    # expected: the one-run golden output over P + T rows, head h of position i at row g·i + h
    heads = v.q.reshape(rows, g, d).transpose(1, 0, 2)
    sinks = np.asarray(v.sink_scores, dtype=np.float64) * PARAMS.fmt.score_unit(d)
    out = fixed_point_attention(heads, v.k[None], v.v[None], SPEC.replace(seq_len=rows),
                                PARAMS.fmt, sink_logits=sinks).out
    for h in range(g):
        np.testing.assert_array_equal(v.expected[h::g], out[h])
        # (the prefill's rows and the steps' rows are slices of that one run)
        runs = sequence_runs(out[h], [PREFILL] + [1] * STEPS)
        np.testing.assert_array_equal(np.concatenate(runs), out[h])
    assert np.ptp(v.expected) > 0
    assert v.crc == signature(v.expected, PARAMS.fmt.out_bits)


def test_decode_selftest_passes_with_the_model_cycles():
    v = make_decode_vectors(PARAMS, PREFILL, STEPS, SEED)
    r = simulate(decode_selftest(v))
    print(f"seed {SEED}: {r.line.strip()}")
    assert (r.passed, r.failed, r.hang, r.error) == (True, False, False, False)
    assert (r.rows, r.crc) == (v.out_rows, v.crc)
    assert r.line == (f"SWAT PASS rows={v.out_rows:04X}/{v.out_rows:04X} crc={v.crc:08X} "
                      f"want={v.crc:08X} cycles={r.cycles:08X} pre={r.pre_cycles:08X} "
                      f"dec={r.dec_cycles:08X}\r\n")
    assert len(r.line) == DECODE_MESSAGE_LEN
    config = FlowConfig(BOARDS["ulx3s-85f"], PARAMS, PREFILL, SEED, selftest="decode",
                        decode_steps=STEPS)
    prefill, steps = decode_model_cycles(config)
    assert len(steps) == STEPS and min(steps) > 0
    assert r.dec_cycles == sum(steps)
    # the prefill starts behind the generators (a row in head_dim + 1 cycles): a few more
    assert prefill <= r.pre_cycles <= prefill + 16
    assert r.cycles > r.pre_cycles + r.dec_cycles


@pytest.mark.parametrize("row", [PREFILL * 2 - 1, (PREFILL + STEPS) * 2 - 1],
                         ids=["prefill-row", "last-step-row"])
def test_decode_wrong_output_element_fails(row):
    v = make_decode_vectors(PARAMS, PREFILL, STEPS, SEED)
    r = simulate(decode_selftest(v, fault=(row, 1)))
    assert (r.passed, r.failed, r.hang, r.error) == (False, True, False, False)
    bad = v.expected.copy()
    bad[row, 1] ^= 1
    assert r.crc == signature(bad, PARAMS.fmt.out_bits) != v.crc
    assert r.line.startswith(f"SWAT FAIL rows={v.out_rows:04X}/{v.out_rows:04X} "
                             f"crc={r.crc:08X} want={v.crc:08X} ")


def test_decode_corrupted_signature_fails():
    v = make_decode_vectors(PARAMS, PREFILL, STEPS, SEED)
    r = simulate(decode_selftest(v.corrupted_signature(5)))
    assert (r.passed, r.failed, r.hang) == (False, True, False)
    assert r.crc == v.crc   # the output was right; the constant is not


def test_decode_refusals():
    plain = CoreParams(SPEC, NumberFormat(), HardwareConfig(1, 1, 10))
    with pytest.raises(ValueError, match=r"^selftest decode needs a decode core \(contexts "
                                         r">= 1\): its command continues a sequence$"):
        make_decode_vectors(plain, 4, 2, SEED)
    with pytest.raises(ValueError, match=r"^selftest decode needs a decode core"):
        SelfTest(plain, make_decode_vectors(PARAMS, 4, 2, SEED), mode="decode")
    sinks = CoreParams(AttentionSpec.causal(10, 4, sliding_window=4, sink_tokens=2),
                       NumberFormat(), HardwareConfig(1, 1, 10), contexts=1)
    with pytest.raises(ValueError, match=r"^selftest decode must have no sink tokens, not 2 "):
        make_decode_vectors(sinks, 4, 2, SEED)
    message = ("test_rows + decode_steps must be at most 10 (the core's max_seq_len and the "
               "16-bit row counter, 2 output rows per position), not 8 + 3")
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        make_decode_vectors(PARAMS, 8, 3, SEED)
    with pytest.raises(ValueError, match=r"^decode_steps must be a positive integer, not 0$"):
        make_decode_vectors(PARAMS, 8, 0, SEED)
    one = CoreParams(SPEC, NumberFormat(), HardwareConfig(1, 1, 10), contexts=1)
    with pytest.raises(ValueError, match=r"^decode mode needs vectors with a seed, a CRC and "
                                         r"decode steps after a prefill"):
        SelfTest(one, make_lfsr_vectors(CoreParams(SPEC, NumberFormat(), HardwareConfig(1, 1, 10)),
                                        6, SEED), mode="decode")


def test_decode_in_verilator_equals_amaranth(request):
    v = make_decode_vectors(PARAMS, PREFILL, STEPS, SEED)
    fault = (PREFILL * 2 + 3, 2)   # a row of the second decode step
    for kwargs in ({}, {"fault": fault}):
        want = simulate(decode_selftest(v, **kwargs))
        got = simulate_verilator(decode_selftest(v, **kwargs),
                                 build_dir=request.config.getoption("build_dir"))
        print(f"seed {SEED} {kwargs}: {got.line.strip()}; {got.run.summary()}")
        assert got == want
        assert (got.pre_cycles, got.dec_cycles) == (want.pre_cycles, want.dec_cycles)
        assert got.passed == (not kwargs)


# -- the command line ---------------------------------------------------------------------------

def flow_cli(capsys, *argv):
    rc = main(["flow", *argv])
    out, err = capsys.readouterr()
    return rc, out, err


def test_flow_decode_defaults_to_the_gpt_oss_group(capsys):
    rc, out, _err = flow_cli(capsys, "--board", "ulx3s-85f", "--selftest", "decode",
                             "--print-config")
    assert rc == 0
    for line in ("seq_len = 1280", "head_dim = 64", "causal = true", "sliding_window = 128",
                 "heads = 64", "kv_heads = 8", "sink_logits = true", "key_lanes = 2",
                 "dim_lanes = 8", 'selftest = "decode"', "test_rows = 1024",
                 "decode_steps = 256"):
        assert line in out.splitlines(), line
    assert "contexts" not in out   # (implied by the mode; flow takes no contexts key)


def test_flow_decode_project(tmp_path, capsys):
    import json

    rc, out, _err = flow_cli(capsys, "--board", "ulx3s-85f", "--selftest", "decode",
                             "--causal", "--sliding-window", "4", "--head-dim", "4", "--heads", "2",
                             "--kv-heads", "1", "--key-lanes", "1", "--dim-lanes", "1",
                             "--seq-len", "10", "--decode-steps", "4",
                             "-o", str(tmp_path / "p"), "--simulate", "amaranth")
    print(out)
    assert rc == 0
    assert "self-test 6 rows + 4 decode steps (decode)" in out
    assert "simulation: SWAT PASS rows=0014/0014 " in out
    assert re.search(r"decode self-test: 4 decode steps: [0-9,]+ busy cycles, equal to the "
                     r"cycle model", out)
    info = json.loads((tmp_path / "p" / "swatkit.json").read_text())
    config = FlowConfig(BOARDS["ulx3s-85f"], PARAMS, 6, 1, selftest="decode", decode_steps=4)
    assert info["selftest"] == {"mode": "decode", "rows": 6, "seed": 1,
                                "vectors": "vectors.npz", "decode_steps": 4,
                                "crc": f"{vectors_of(config).crc:08X}"}


@pytest.mark.parametrize(("argv", "message"), [
    (["--decode-steps", "3"], "--decode-steps needs --selftest decode"),
    (["--selftest", "decode", "--no-causal", "--attention-window", "8"],
     "--selftest decode needs a causal window, not one with 4 keys after the row (a decode "
     "step's later keys have not arrived)"),
    (["--selftest", "decode", "--test-rows", "1200"],
     "--test-rows + decode_steps must be at most 1280 (the core's max_seq_len and the 16-bit "
     "row counter, 8 output rows per position), not 1200 + 256"),
    (["--selftest", "decode", "--decode-steps", "0"],
     "--decode-steps must be a positive integer, not 0"),
])
def test_flow_decode_bad_input_is_one_line(capsys, tmp_path, argv, message):
    rc, _out, err = flow_cli(capsys, "--board", "ulx3s-85f", *argv, "-o", str(tmp_path / "p"))
    assert (rc, err) == (2, f"swatkit: error: {message}\n")
    assert not (tmp_path / "p").exists()
