"""``--contexts C``: a decode core (docs/rtl.md, "Decode") from ``swatkit generate``, its
configuration kept in the config it writes, bad values refused in one line naming the
option."""

import pytest

from swatkit.cli import main

SMALL = ["--causal", "--sliding-window", "9", "--head-dim", "4", "--key-lanes", "1",
         "--dim-lanes", "2", "--seq-len", "40"]


def test_generate_a_decode_core_and_read_its_config_back(tmp_path, capsys):
    out = tmp_path / "dec"
    assert main(["generate", *SMALL, "--contexts", "1", "-o", str(out)]) == 0
    text = capsys.readouterr().out
    line = [x for x in text.splitlines() if x.startswith("decode: ")]
    # (one context: the ring of 13 rows — the window's 9 and 4 score buffers — of 4 int8 K
    # and 4 V elements each: 832 bits)
    assert line == ["decode: 1 context, each a K/V ring of 13 rows kept on chip (0.8 Kib, 104 "
                    "bytes; 0.8 Kib in all); the command's cont bit continues the sequence by "
                    "seq_len rows (one K/V row read per decode step), up to 40 positions (the "
                    "counters, not the ring); a decode step with a full causal window: 73 "
                    "cycles (cycle model); status ctx_valid"]
    assert "decode (1 context)" in text
    verilog = (out / "swat_core.v").read_text()
    assert "ctx_valid" in verilog
    # the config written beside the Verilog makes the same core again
    assert main(["generate", "--config", str(out / "swatkit.json"), "--print-config"]) == 0
    assert "contexts = 1\n" in capsys.readouterr().out


def test_generate_a_core_of_several_contexts(tmp_path, capsys):
    """C = 3 contexts: three rings in all, a 2-bit ctx field, a ctx_valid bit per context."""
    out = tmp_path / "dec3"
    assert main(["generate", *SMALL, "--contexts", "3", "-o", str(out)]) == 0
    line = [x for x in capsys.readouterr().out.splitlines() if x.startswith("decode: ")]
    assert line == ["decode: 3 contexts, each a K/V ring of 13 rows kept on chip (0.8 Kib, 104 "
                    "bytes; 2.4 Kib in all); the command's cont bit continues the sequence by "
                    "seq_len rows (one K/V row read per decode step), up to 40 positions (the "
                    "counters, not the ring); a decode step with a full causal window: 73 "
                    "cycles (cycle model); the command's ctx field (2 bits) names the context, "
                    "a switch costs no cycle; status ctx_valid (3 bits, one per context)"]
    assert "output [2:0] ctx_valid" in (out / "swat_core.v").read_text()


@pytest.mark.parametrize(("extra", "message"), [
    (["--contexts", "257"], "--contexts must be at most 256 (records of the context store, a "
                            "memory read in the cycle a command is taken), not 257"),
    (["--contexts", "32", "--sliding-window", "1024", "--head-dim", "64", "--key-lanes", "8",
      "--dim-lanes", "8", "--seq-len", "4096"],
     "--contexts must be at most 31 (K/V rings of 1056768 bits each, together at most "
     "33554432 bits (MAX_KV_BUFFER_BITS), the practical limit of Verilog generation), not 32"),
    (["--contexts", "3", "--interface", "axis"],
     "--interface must be core for a decode core (--contexts 3), not axis"),
    (["--contexts", "-1"], "--contexts must be a non-negative integer, not -1"),
    (["--contexts", "1", "--interface", "axis"],
     "--interface must be core for a decode core (--contexts 1), not axis"),
    (["--contexts", "1", "--sink-tokens", "0", "--max-global-tokens", "2"],
     "--contexts must be 0 on a core with global tokens or BigBird blocks (a global row "
     "attends the whole sequence, which a continued run has not seen), not 1"),
])
def test_bad_contexts_are_one_line(extra, message, capsys, tmp_path):
    assert main(["generate", *SMALL, *extra, "-o", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert err == f"swatkit: error: {message}\n"


def test_prove_takes_a_decode_core_and_flow_its_key_not(tmp_path, capsys):
    """``swatkit prove`` proves a decode core (``--contexts``, or the key of the config file
    generate wrote: its continue is a solver input, tests/sim/test_formal.py); ``flow`` takes
    no contexts key (its decode self-test implies one)."""
    from swatkit.golden import AttentionSpec, NumberFormat
    from swatkit.rtl import CoreParams, HardwareConfig
    from swatkit.sim import formal

    out = tmp_path / "dec"
    assert main(["generate", *SMALL, "--contexts", "1", "-o", str(out)]) == 0
    capsys.readouterr()
    # (several contexts: the observer follows one sequence, so they are not proved yet)
    assert main(["prove", "--config", str(out / "swatkit.json"), "--contexts", "2",
                 "-o", str(tmp_path / "p")]) == 2
    assert capsys.readouterr().err == (
        "swatkit: error: --contexts 2: swatkit prove covers decode cores of one context "
        "(--contexts 1); several contexts are verified by the regression (swatkit regress "
        "--decode T --contexts C), not proved yet\n")
    assert main(["flow", "--board", "ulx3s-85f", "--config", str(out / "swatkit.json"),
                 "--print-config"]) == 2
    assert capsys.readouterr().err == (
        f"swatkit: error: [spec] contexts in {out / 'swatkit.json'} is not taken by this "
        "command (decode contexts: swatkit generate, regress and prove)\n")
    p = CoreParams(AttentionSpec(8, 2, 4, 0), NumberFormat(data_bits=2),
                   HardwareConfig(1, 1, max_seq_len=8), contexts=1)
    formal.check_size(p)
    assert {"cont_ends", "cont_invalid", "cont_past_limit"} <= set(formal.covers(p))
