"""The shared options of every subcommand: defaults, --config, overrides, one-line errors."""

import re
import subprocess
import sys
import time

import pytest

import swatkit
from swatkit.cli import _Parser, main
from swatkit.golden import AttentionSpec, NumberFormat
from swatkit.options import (
    UsageError,
    add_hardware_options,
    add_workload_options,
    core_params,
    resolve,
    waste_warnings,
)


def parse(*argv):
    parser = _Parser(prog="swatkit test")
    add_workload_options(parser)
    add_hardware_options(parser)
    return resolve(parser.parse_args(list(argv)))


def usage_error(*argv):
    with pytest.raises(UsageError) as info:
        parse(*argv)
    return str(info.value)


def test_defaults_are_a_longformer_base_head():
    r = parse()
    assert r.spec == AttentionSpec.longformer(4096, 64, attention_window=512)
    assert r.fmt == NumberFormat()
    assert r.hardware == {}


def test_options_set_every_field():
    r = parse("--seq-len", "100", "--head-dim", "32", "--attention-window", "8",
              "--dilation", "2", "--global-tokens", "0,17", "--data-bits", "6",
              "--prob-bits", "12", "--scale-v", "0.5", "--key-lanes", "4", "--dim-lanes", "8")
    assert r.spec == AttentionSpec(100, 32, before=4, after=4, dilation=2, global_tokens=(0, 17))
    assert r.fmt == NumberFormat(data_bits=6, prob_bits=12, scale_v=0.5)
    assert r.hardware == {"key_lanes": 4, "dim_lanes": 8}


def test_causal_sliding_window():
    r = parse("--causal", "--sliding-window", "16", "--seq-len", "64")
    assert r.spec == AttentionSpec.causal(64, 64, sliding_window=16)
    assert parse("--causal").spec.before == 4095


@pytest.mark.parametrize(("argv", "message"), [
    (["--attention-window", "7"], "--attention-window must be a positive even integer, not 7"),
    (["--attention-window", "0"], "--attention-window must be a positive even integer, not 0"),
    (["--seq-len", "0"], "--seq-len must be a positive integer, not 0"),
    (["--head-dim", "-3"], "--head-dim must be a positive integer, not -3"),
    (["--dilation", "0"], "--dilation must be a positive integer, not 0"),
    (["--seq-len", "10", "--global-tokens", "3,12"],
     "--global-tokens: global token 12 is outside the sequence [0, 10)"),
    (["--global-tokens", "5,2"], "--global-tokens must be sorted and distinct, not (5, 2)"),
    (["--global-tokens", "a,b"],
     "argument --global-tokens: must be comma-separated integers, not 'a,b'"),
    (["--data-bits", "20"], "--data-bits must be an integer in 2..16, not 20"),
    (["--scale-q", "-1"], "--scale-q must be a positive finite number, not -1.0"),
    (["--causal", "--attention-window", "8"],
     "--attention-window cannot be combined with --causal (use --sliding-window)"),
    (["--sliding-window", "8"], "--sliding-window needs --causal"),
    (["--causal", "--sliding-window", "0"], "--sliding-window must be a positive integer, not 0"),
    (["--seq-len", "x"], "argument --seq-len: invalid int value: 'x'"),
])
def test_bad_values_name_the_option(argv, message):
    assert usage_error(*argv) == message


def test_config_file_and_override(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text('[spec]\nseq_len = 300\nhead_dim = 16\ncausal = true\nsliding_window = 32\n'
                   '[format]\nprob_bits = 12\n[hardware]\nkey_lanes = 2\n')
    r = parse("--config", str(cfg), "--seq-len", "200")
    assert r.spec == AttentionSpec.causal(200, 16, sliding_window=32)
    assert r.fmt.prob_bits == 12
    assert r.hardware == {"key_lanes": 2}
    assert r.sources["seq_len"] == "option"
    assert r.sources["head_dim"] == "config"


@pytest.mark.parametrize(("text", "message"), [
    ("[spec]\nhead_dim = 0\n", "[spec] head_dim in {path} must be a positive integer, not 0"),
    ("[spec]\nhead_dim = '64'\n", "[spec] head_dim in {path} must be an integer, not '64'"),
    ("[spec]\nwindow = 3\n", "--config: unknown key 'window' in [spec] of {path}"),
    ("[specs]\n", "--config: unknown table [specs] in {path} "
                  "(expected [spec], [format], [hardware], [generate], [flow])"),
    ("[spec\n", "--config: {path} is not valid TOML: Expected ']' at the end of a table "
                "declaration (at line 1, column 6)"),
])
def test_bad_config_files(tmp_path, text, message):
    cfg = tmp_path / "c.toml"
    cfg.write_text(text)
    assert usage_error("--config", str(cfg)) == message.format(path=cfg)


def test_missing_config_file(tmp_path):
    assert usage_error("--config", str(tmp_path / "nope.toml")) == (
        f"--config: no such file: {tmp_path / 'nope.toml'}")


def test_version_and_help(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.strip() == f"swatkit {swatkit.__version__}"
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    assert "usage: swatkit" in capsys.readouterr().out


def test_unknown_command_is_one_line_exit_2():
    done = subprocess.run([sys.executable, "-m", "swatkit.cli", "frobnicate"],
                          capture_output=True, text=True)
    assert done.returncode == 2
    assert re.fullmatch(r"swatkit: error: argument COMMAND: invalid choice: 'frobnicate'.*\n",
                        done.stderr)
    assert "Traceback" not in done.stderr


# -- options override the file; the window is one group -------------------------------------------


def test_a_window_option_replaces_the_files_window(tmp_path):
    cfg = tmp_path / "good.toml"
    cfg.write_text("[spec]\nseq_len = 256\nattention_window = 64\n")
    r = parse("--config", str(cfg), "--causal")
    assert r.spec == AttentionSpec.causal(256, 64, sliding_window=4096)
    cfg.write_text("[spec]\ncausal = true\nsliding_window = 32\n")
    assert parse("--config", str(cfg), "--attention-window", "16").spec.before == 8
    assert parse("--config", str(cfg), "--no-causal").spec.before == 256


def test_a_config_value_is_named_as_the_file_names_it(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text("[spec]\nhead_dim = 4096\n")
    parser = _Parser(prog="swatkit test")
    add_workload_options(parser)
    add_hardware_options(parser)
    r = resolve(parser.parse_args(["--config", str(cfg)]))
    with pytest.raises(UsageError, match=rf"^\[spec\] head_dim in {re.escape(str(cfg))} must be "
                                         r"at most 1024 \(the practical limit of Verilog "
                                         r"generation\), not 4096$"):
        core_params(r, 64)


@pytest.mark.parametrize(("argv", "message"), [
    (["--seq-len", "100000000000"], "--seq-len must be at most 16777216 (the practical limit of "
                                    "the core's row counters and of the cycle model), not "
                                    "100000000000"),
    (["--head-dim", "65536"], "--head-dim must be at most 1024 (the practical limit of Verilog "
                              "generation), not 65536"),
    (["--attention-window", "1000000"], "--attention-window must be at most 16384 (16385 keys "
                                        "per row, the practical limit of Verilog generation), "
                                        "not 1000000"),
    (["--causal", "--sliding-window", "16386"], "--sliding-window must be at most 16385 (keys "
                                                "per row, the practical limit of Verilog "
                                                "generation), not 16386"),
    (["--key-lanes", "64", "--dim-lanes", "128", "--head-dim", "128"],
     "--key-lanes x --dim-lanes must be at most 4096 (multipliers per engine, the practical "
     "limit of Verilog generation), not 8192"),
    (["--head-dim", "1024", "--attention-window", "4096"],
     "--attention-window 4096 with --head-dim 1024 needs a K/V buffer of 64.1 Mibit; the limit "
     "is 32 Mibit (the K/V ring: 2 x ring_rows x head_dim x data_bits, the practical limit of "
     "Verilog generation): lower one of them"),
])
def test_sizes_beyond_the_limits_name_the_option(argv, message):
    r = parse(*argv)
    with pytest.raises(UsageError) as info:
        core_params(r, r.spec.seq_len)
    assert str(info.value) == message


def test_the_largest_inputs_are_refused_at_once():
    for argv in (["generate", "--head-dim", str(2 ** 62)], ["generate", "--seq-len", str(10 ** 30)],
                 ["estimate", "--seq-len", f"1:{10 ** 30}:+1"],
                 ["generate", "--attention-window", str(2 ** 62)]):
        start = time.monotonic()
        assert main(argv) == 2
        assert time.monotonic() - start < 1.0, argv


def test_wasteful_window_warns_once(capsys):
    r = parse("--attention-window", "8192", "--seq-len", "1024")
    (line,) = waste_warnings(r, core_params(r, 1024))
    assert line == ("--attention-window 8192 makes a 8193-key window, but with --seq-len = 1024 "
                    "no row has more than 2047 keys: the window's buffers are sized for keys "
                    "that never exist")
    r = parse("--attention-window", "64", "--seq-len", "1024")
    assert waste_warnings(r, core_params(r, 1024)) == []
