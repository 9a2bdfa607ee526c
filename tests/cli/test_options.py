"""The shared options of every subcommand: defaults, --config, overrides, one-line errors."""

import json
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
    parse_lengths,
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
    (["--global-engines", "2"], "--global-engines needs --bigbird (a token-band core has one "
                                "global-row engine)"),
    (["--bigbird", "64", "--global-engines", "3"],
     "--global-engines must be a power of two (or 0: chosen), not 3"),
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
        # (a refusal takes milliseconds; building what was asked would take hours or all the
        # memory: the bound leaves room for a loaded machine)
        assert time.monotonic() - start < 20.0, argv


def test_wasteful_window_warns_once(capsys):
    r = parse("--attention-window", "8192", "--seq-len", "1024")
    (line,) = waste_warnings(r, core_params(r, 1024))
    assert line == ("--attention-window 8192 makes a 8193-key window, but with --seq-len = 1024 "
                    "no row has more than 2047 keys: the window's buffers are sized for keys "
                    "that never exist")
    r = parse("--attention-window", "64", "--seq-len", "1024")
    assert waste_warnings(r, core_params(r, 1024)) == []


# -- BigBird's block-sparse pattern --------------------------------------------------------------


def test_bigbird_options_build_the_block_sparse_spec():
    r = parse("--bigbird", "64", "--seq-len", "1024")
    assert r.spec == AttentionSpec.bigbird(1024, 64, block_size=64, num_random_blocks=3, seed=0)
    r = parse("--bigbird", "16", "--random-blocks", "2", "--pattern-seed", "7",
              "--seq-len", "256", "--head-dim", "32")
    assert r.spec == AttentionSpec.bigbird(256, 32, block_size=16, num_random_blocks=2, seed=7)
    assert r.sources["bigbird_block"] == "option"


def test_bigbird_config_keys_and_an_explicit_table(tmp_path):
    cfg = tmp_path / "bb.toml"
    table = [[3], [4], [5], [6], [1], [2]]
    cfg.write_text("[spec]\nseq_len = 512\nhead_dim = 16\nbigbird_block = 64\n"
                   f"random_blocks = 1\nrandom_table = {table}\n")
    r = parse("--config", str(cfg))
    assert r.spec == AttentionSpec.bigbird(512, 16, block_size=64, num_random_blocks=1,
                                           random_table=table)
    # the spec's own [spec] table reads back as the same spec
    spec = AttentionSpec.bigbird(512, 16, block_size=32, num_random_blocks=2, seed=3)
    from swatkit.support.toml_text import dumps
    cfg.write_text(dumps({"spec": spec.as_options()}))
    assert parse("--config", str(cfg)).spec == spec
    # a seed on the command line replaces the file's table; a window replaces the whole pattern
    cfg.write_text("[spec]\nseq_len = 512\nbigbird_block = 64\nrandom_blocks = 1\n"
                   f"random_table = {table}\n")
    assert parse("--config", str(cfg), "--pattern-seed", "4").spec.pattern_seed == 4
    assert parse("--config", str(cfg), "--attention-window", "16").spec == (
        AttentionSpec.longformer(512, 64, attention_window=16))
    # Hugging Face's tables: a global or window block, or all zeros (eval), count per slot
    for hf in ([[7], [4], [5], [6], [1], [0]], [[0]] * 6):
        cfg.write_text("[spec]\nseq_len = 512\nbigbird_block = 64\nrandom_blocks = 1\n"
                       f"random_table = {hf}\n")
        assert parse("--config", str(cfg)).spec.random_table.tolist() == hf
    cfg.write_text("[spec]\nseq_len = 512\nattention_window = 64\ndilation = 2\n")
    assert parse("--config", str(cfg), "--bigbird", "64").spec == (
        AttentionSpec.bigbird(512, 64, block_size=64))


@pytest.mark.parametrize(("argv", "message"), [
    (["--bigbird", "48", "--seq-len", "1000"], "--bigbird 48 does not divide --seq-len 1000"),
    (["--bigbird", "0"], "--bigbird must be a positive integer, not 0"),
    (["--bigbird", "64", "--random-blocks", "-1"],
     "--random-blocks must be a non-negative integer, not -1"),
    (["--bigbird", "64", "--pattern-seed", "-2"],
     "--pattern-seed must be a non-negative integer, not -2"),
    (["--bigbird", "64", "--random-blocks", "4", "--seq-len", "512"],
     "--random-blocks 4 is more than the 3 key blocks available to query block 2 of 8 (random "
     "blocks avoid blocks 0 and 7 and the window 1..3); with --bigbird 64, 4 random blocks need "
     "--seq-len >= 576"),
    (["--random-blocks", "2"], "--random-blocks needs --bigbird"),
    (["--pattern-seed", "1"], "--pattern-seed needs --bigbird"),
    (["--bigbird", "64", "--attention-window", "8"], "--attention-window cannot be combined "
     "with --bigbird (BigBird's pattern has its own window and global blocks)"),
    (["--bigbird", "64", "--causal"], "--causal cannot be combined with --bigbird (BigBird's "
     "pattern has its own window and global blocks)"),
    (["--bigbird", "64", "--dilation", "2"], "--dilation cannot be combined with --bigbird "
     "(BigBird's pattern has its own window and global blocks)"),
    (["--global-tokens", "0", "--random-blocks", "1"], "--global-tokens cannot be combined with "
     "--random-blocks (BigBird's pattern has its own window and global blocks)"),
    (["--bigbird", "x"], "argument --bigbird: invalid int value: 'x'"),
])
def test_bad_bigbird_values_name_the_option(argv, message):
    assert usage_error(*argv) == message


@pytest.mark.parametrize(("table", "message"), [
    ("[[3], [4], [5]]", "[spec] random_table in {path} must have shape (6, 1) (query blocks 1..6 "
                        "× num_random_blocks), not (3, 1)"),
    ("[[3], [4], [5], [6], [1], [9]]",
     "[spec] random_table in {path}: random_table[5, 0] = 9 is outside the key blocks [0, 8)"),
    ("[[3], [4], [5], [6], [1], [-1]]",
     "[spec] random_table in {path}: random_table[5, 0] = -1 is outside the key blocks [0, 8)"),
    ("3", "[spec] random_table in {path} must be a list of rows of integers, not 3"),
    ("[[3], [4], [5], [6], [1], ['a']]", "[spec] random_table in {path} must be a list of rows of "
                                         "integers, not [[3], [4], [5], [6], [1], ['a']]"),
])
def test_a_bad_random_table_is_named(tmp_path, table, message):
    cfg = tmp_path / "bb.toml"
    cfg.write_text("[spec]\nseq_len = 512\nbigbird_block = 64\nrandom_blocks = 1\n"
                   f"random_table = {table}\n")
    assert usage_error("--config", str(cfg)) == message.format(path=cfg)
    cfg.write_text("[spec]\nseq_len = 512\nbigbird_block = 64\nrandom_blocks = 1\n"
                   "random_table = [[3], [4], [5], [6], [1], [2]]\npattern_seed = 1\n")
    assert usage_error("--config", str(cfg)) == (
        f"[spec] pattern_seed in {cfg} cannot be combined with [spec] random_table in {cfg} "
        "(the table is given, not drawn)")


@pytest.mark.parametrize(("argv", "message"), [
    (["--bigbird", "48", "--seq-len", "480"], "--bigbird must be a power of two on the SWAT core "
     "(it checks --seq-len against it with a mask), not 48"),
    (["--bigbird", "256", "--seq-len", "2048"], "--bigbird must be at most 128 (the global first "
     "and last blocks are resident global rows and columns, at most 256), not 256"),
    (["--bigbird", "64", "--max-global-tokens", "4"], "--max-global-tokens cannot be combined "
     "with --bigbird (a BigBird core's global tokens are its first and last blocks, 128 rows, "
     "and it has no dilation)"),
    (["--bigbird", "2", "--seq-len", "64"], "--key-lanes (8) must not exceed the window (6 keys)"),
])
def test_a_bigbird_core_beyond_its_rules_names_the_option(argv, message):
    r = parse(*argv)
    with pytest.raises(UsageError) as info:
        core_params(r, r.spec.seq_len)
    assert str(info.value) == message


def test_every_length_of_a_sweep_fits_the_blocks(tmp_path):
    parser = _Parser(prog="swatkit test")
    add_workload_options(parser, seq_len_type=parse_lengths)
    r = resolve(parser.parse_args(["--bigbird", "64", "--seq-len", "1024:16384:x2"]),
                lengths=[1024])
    assert r.lengths == (1024, 2048, 4096, 8192, 16384) and r.spec.seq_len == 16384
    with pytest.raises(UsageError, match=r"^--bigbird 64 does not divide --seq-len 1000$"):
        resolve(parser.parse_args(["--bigbird", "64", "--seq-len", "1000,1024"]), lengths=[1])
    cfg = tmp_path / "bb.toml"
    cfg.write_text("[spec]\nbigbird_block = 64\nrandom_blocks = 1\n"
                   "random_table = [[3], [4], [5], [6], [1], [2]]\n")
    with pytest.raises(UsageError, match=r"^\[spec\] random_table in .* is the table of 512 rows "
                                         r"\(8 blocks\); it cannot serve --seq-len 256$"):
        resolve(parser.parse_args(["--config", str(cfg), "--seq-len", "256,512"]), lengths=[1])
    assert waste_warnings(r, core_params(r, 16384)) == []


def test_bigbird_on_the_command_line_exits_2_in_one_line():
    done = subprocess.run([sys.executable, "-m", "swatkit.cli", "generate", "--bigbird", "64",
                           "--seq-len", "1000", "--print-config"], capture_output=True, text=True)
    assert done.returncode == 2
    assert done.stderr == "swatkit: error: --bigbird 64 does not divide --seq-len 1000\n"


def test_flow_refuses_a_bigbird_core_in_one_line():
    done = subprocess.run([sys.executable, "-m", "swatkit.cli", "flow", "--board", "icebreaker",
                           "--bigbird", "4", "--seq-len", "64", "--head-dim", "8",
                           "--random-blocks", "1", "--print-config"],
                          capture_output=True, text=True)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr == (
        "swatkit: error: --bigbird: the board self-test does not yet drive a BigBird core's "
        "global-row and random-block streams (qg, kvg, og, kvr); write its Verilog with swatkit "
        "generate --bigbird\n")


def test_global_engines_set_and_chosen():
    """BigBird-base up to 4096 rows: 4 engines by default (within 5 % of the band core), or as
    given (at most the block size)."""
    r = parse("--bigbird", "64")
    assert core_params(r, 4096).global_engines == 4
    assert core_params(r, 4096).mac_lanes == 64 + 4 * 8
    r = parse("--bigbird", "64", "--global-engines", "1")
    assert core_params(r, 4096).global_engines == 1
    r = parse("--bigbird", "4", "--seq-len", "64", "--global-engines", "8")
    with pytest.raises(UsageError) as info:
        core_params(r, 64)
    assert str(info.value) == ("--global-engines must be at most 4 (the block size: a run's "
                               "global rows, b or 2·b, are shared evenly), not 8")


def parse_over(layer, *argv):
    parser = _Parser(prog="swatkit test")
    add_workload_options(parser)
    add_hardware_options(parser)
    return resolve(parser.parse_args(list(argv)), defaults=layer)


BOARDISH = {"head_dim": 8, "attention_window": 8, "sliding_window": 9, "seq_len": 1024,
            "key_lanes": 1}


def test_a_defaults_layer_lies_between_the_built_in_defaults_and_the_user(tmp_path):
    """A board's default core (or prove's tiny core) is a layer of resolve: below --config and
    the options, with the window group's rules; its values are not the user's (sources)."""
    r = parse_over(BOARDISH)
    assert r.spec == AttentionSpec.longformer(1024, 8, attention_window=8)
    assert r.hardware == {"key_lanes": 1} and r.sources == {}
    assert r.label("key_lanes") == "--key-lanes"
    # the kind alone takes the layer's number of keys for that kind, either way
    assert parse_over(BOARDISH, "--causal").spec == AttentionSpec.causal(1024, 8, 9)
    assert parse_over(BOARDISH, "--no-causal").spec.window == 9
    assert parse_over(BOARDISH, "--causal", "--sliding-window", "5").spec.window == 5
    assert parse_over(BOARDISH, "--attention-window", "4").spec.window == 5
    assert parse_over(BOARDISH, "--dilation", "2").spec.dilation == 2   # (the layer's window)
    assert parse_over(BOARDISH, "--dilation", "2").spec.window == 9
    bigbird = parse_over(BOARDISH, "--bigbird", "4").spec   # its window replaces the layer's
    assert (bigbird.block_size, bigbird.head_dim, bigbird.seq_len) == (4, 8, 1024)
    # a config file is above the layer: its causal window takes the layer's size of that kind
    config = tmp_path / "c.toml"
    config.write_text("[spec]\ncausal = true\nhead_dim = 4\n[hardware]\nkey_lanes = 2\n")
    r = parse_over(BOARDISH, "--config", str(config))
    assert r.spec == AttentionSpec.causal(1024, 4, 9) and r.hardware == {"key_lanes": 2}
    config.write_text("[spec]\nbigbird_block = 2\nrandom_blocks = 1\nseq_len = 64\n")
    assert parse_over(BOARDISH, "--config", str(config)).spec == AttentionSpec.bigbird(
        64, 8, 2, 1)
    with pytest.raises(UsageError, match=r"^--head-dim must be a positive integer, not 0$"):
        parse_over({**BOARDISH, "head_dim": 0})
    # a layer of one kind (a flow's causal core) gives no size to the other kind
    flow = {"causal": True, "sliding_window": 33}
    assert parse_over(flow).spec == AttentionSpec.causal(4096, 64, 33)
    assert parse_over(flow, "--no-causal").spec == AttentionSpec.longformer(4096, 64)


def test_flow_and_prove_take_a_causal_window_from_the_config_file(tmp_path, capsys):
    """The board's and prove's defaults are layers, not options written over the file: a
    config file's ``causal = true`` keeps its kind (it used to be refused, "--sliding-window
    needs --causal", as the default was written in as an option)."""
    config = tmp_path / "c.toml"
    config.write_text("[spec]\ncausal = true\nhead_dim = 4\n")
    assert main(["flow", "--board", "icebreaker", "--config", str(config),
                 "--print-config"]) == 0
    out = capsys.readouterr().out
    assert "causal = true\nsliding_window = 9\n" in out and "head_dim = 4\n" in out


def test_causal_global_tokens_are_refused_naming_sink_tokens(tmp_path):
    """Longformer's global rows see later keys: on a causal window the command line refuses
    them and names StreamingLLM's --sink-tokens (the golden spec keeps Longformer's meaning)."""
    done = subprocess.run([sys.executable, "-m", "swatkit.cli", "generate", "--causal",
                           "--global-tokens", "0,1,2,3", "--print-config"],
                          capture_output=True, text=True)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr == (
        "swatkit: error: --global-tokens cannot be combined with --causal: Longformer's global "
        "rows attend every key, later ones too; for keys that every row sees within causality "
        "(StreamingLLM's sinks) use --sink-tokens S\n")
    parser = _Parser(prog="swatkit test")
    add_workload_options(parser, core_features=True)

    def core(*argv):
        return resolve(parser.parse_args(list(argv)))

    with pytest.raises(UsageError, match=r"^--sink-tokens 5000 is beyond the sequence "
                                         r"\(seq_len 4096\)$"):
        core("--causal", "--sink-tokens", "5000")
    assert core("--causal", "--sink-tokens", "4").spec.sink_tokens == 4
    # a parser without the group and sink options (core_features) refuses the key of a config
    # file
    config = tmp_path / "sinks.toml"
    config.write_text("[spec]\ncausal = true\nsink_tokens = 4\n")
    with pytest.raises(UsageError, match=r"^\[spec\] sink_tokens in .* is not taken by this "
                                         r"command \(grouped query heads and sink tokens: "
                                         r"swatkit generate, regress, estimate, flow and "
                                         r"prove\)$"):
        parse("--config", str(config))


# -- -o/--output: the folder a command writes into, one option in every subcommand -----------

COMMANDS = ("generate", "regress", "flow", "estimate", "explore", "prove")


def _subparsers():
    from swatkit.cli import build_parser

    sub = next(a for a in build_parser()._actions if a.dest == "command")
    return sub.choices


def test_every_subcommand_has_one_output_option():
    """-o/--output in all six subcommands, the helper's (options.add_output_option): one
    spelling, one type, a help that says what goes into the folder."""
    from pathlib import Path

    from swatkit.options import _OutputAction

    prefix = "the folder to write into, made if missing: "
    for name, parser in _subparsers().items():
        (action,) = [a for a in parser._actions if "-o" in a.option_strings]
        assert action.option_strings == ["-o", "--output"], name
        assert isinstance(action, _OutputAction) and action.type is Path, name
        assert action.metavar == "DIR" and action.help.startswith(prefix), name
        assert len(action.help) > len(prefix) + 20, name   # (what goes there)
    assert set(_subparsers()) == set(COMMANDS)


@pytest.mark.parametrize("argv", [
    ["generate"], ["regress", "-k", "bi5_k1d1/fault-resets"], ["flow", "--board", "icebreaker"],
    ["estimate", "--seq-len", "1024"], ["estimate", "--causal", "--decode", "4"],
    ["explore", "--seq-len", "1024"], ["prove"]])
@pytest.mark.parametrize("spelling", ["-o", "--output"])
def test_an_output_folder_that_is_a_file_is_refused(argv, spelling, tmp_path, monkeypatch,
                                                    capsys):
    """-o naming an existing file: exit 2, one line naming the option as typed and the path,
    before any work (nothing is built, run or written)."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "f").write_text("mine")
    assert main([*argv, spelling, "f"]) == 2
    out, err = capsys.readouterr()
    assert err == f"swatkit: error: {spelling}: f is a file, not a folder\n"
    assert main([*argv, spelling, "f/sub"]) == 2
    out, err = capsys.readouterr()
    assert err == (f"swatkit: error: {spelling}: cannot create f/sub: {tmp_path / 'f'} is a "
                   "file\n")
    assert [p.name for p in tmp_path.iterdir()] == ["f"] and out == ""


def _run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    assert code == 0, err
    return out, err


def _printed(out: str) -> str:
    """Standard output without the lines that name the files written."""
    return "".join(line for line in out.splitlines(keepends=True)
                   if not line.startswith("wrote "))


@pytest.mark.parametrize(("command", "argv"), [
    ("estimate", ["--seq-len", "1024,4096", "--dataflow", "swat,dense"]),
    ("estimate", ["--seq-len", "1024", "--causal", "--sliding-window", "128", "--decode", "8"]),
    ("explore", ["--seq-len", "1024,4096", "--model", "longformer-base"]),
])
def test_estimate_and_explore_save_their_report_into_the_output_folder(
        command, argv, tmp_path, monkeypatch, capsys):
    """With -o DIR: the table as printed (DIR/<command>.txt) and the CSV and JSON that
    --format csv / json print, into DIR (made); a bare --plot name goes there too, a --plot
    path with a folder stays where it points. Without -o nothing is written."""
    monkeypatch.chdir(tmp_path)
    table, _ = _run(capsys, command, *argv)
    as_csv, _ = _run(capsys, command, *argv, "--format", "csv")
    as_json, _ = _run(capsys, command, *argv, "--format", "json")
    assert list(tmp_path.iterdir()) == []
    out, _ = _run(capsys, command, *argv, "-o", "r/new")
    folder = tmp_path / "r" / "new"
    files = {p.name: p.read_bytes().decode() for p in folder.iterdir()}
    assert files == {f"{command}.txt": table, f"{command}.csv": as_csv,
                     f"{command}.json": as_json}
    assert _printed(out) == table
    assert out.endswith("".join(f"wrote r/new/{command}.{k}\n" for k in ("txt", "csv", "json")))
    # --format json: standard output is the JSON alone; no .txt (the printed form is the JSON)
    out, err = _run(capsys, command, *argv, "--format", "json", "--output", "j")
    assert out == as_json and json.loads(out)
    assert sorted(p.name for p in (tmp_path / "j").iterdir()) == [f"{command}.csv",
                                                                  f"{command}.json"]
    assert err.splitlines()[-2:] == [f"wrote j/{command}.csv", f"wrote j/{command}.json"]
    if "--decode" in argv:
        return   # (--plot is refused with --decode)
    _run(capsys, command, *argv, "-o", "p", "--plot", "fig", "--format", "csv")
    assert (tmp_path / "p" / "fig.png").read_bytes()[:4] == b"\x89PNG"
    (tmp_path / "sub").mkdir()
    _run(capsys, command, *argv, "-o", "q", "--plot", "sub/fig.png", "--format", "csv")
    assert (tmp_path / "sub" / "fig.png").is_file()
    assert not (tmp_path / "q" / "fig.png").exists()


def test_explore_takes_a_list_of_lengths_a_front_each(capsys):
    """explore --seq-len takes estimate's syntax (a list or a range): one Pareto front per N,
    each the front that N alone gives; every row carries its N (table, CSV, JSON)."""
    import csv
    import io

    out, _ = _run(capsys, "explore", "--model", "longformer-base", "--seq-len", "1024:4096:x4",
                  "--format", "json")
    both = json.loads(out)
    assert both["seq_lens"] == [1024, 4096]
    for n in (1024, 4096):
        alone = json.loads(_run(capsys, "explore", "--model", "longformer-base", "--seq-len",
                                str(n), "--format", "json")[0])
        assert alone["seq_lens"] == [n]
        assert [p for p in both["points"] if p["seq_len"] == n] == alone["points"]
    assert {p["seq_len"] for p in both["points"]} == {1024, 4096}
    rows = list(csv.DictReader(io.StringIO(_run(capsys, "explore", "--model",
                                                "longformer-base", "--seq-len", "1024,4096",
                                                "--format", "csv")[0])))
    assert [int(r["seq_len"]) for r in rows] == [p["seq_len"] for p in both["points"]]
    table, _ = _run(capsys, "explore", "--model", "longformer-base", "--seq-len", "1024,4096")
    assert [line for line in table.splitlines() if "longformer-base at N =" in line] == [
        line for line in table.splitlines() if "at N = 1024 on" in line or
        "at N = 4096 on" in line]
    assert table.count("on the Pareto front") == 2


def test_explore_takes_an_own_head_instead_of_a_model(capsys, tmp_path):
    """Without --model, explore explores the head (group) the workload options or --config
    describe, as estimate estimates it: the same points as the Python API on that head."""
    from swatkit.fpga_flows.explore import explore, load_calibration
    from swatkit.rtl import CoreParams, HardwareConfig
    from swatkit.sim.estimate import load_table, single_head

    config = tmp_path / "head.toml"
    config.write_text("[spec]\ncausal = true\nsliding_window = 128\nhead_dim = 64\nheads = 8\n"
                      "kv_heads = 2\n[format]\ndata_bits = 6\n")
    out, _ = _run(capsys, "explore", "--config", str(config), "--seq-len", "2048",
                  "--format", "json")
    fmt = NumberFormat(data_bits=6)
    head = single_head(CoreParams(AttentionSpec.causal(2048, 64, 128), fmt,
                                  HardwareConfig(1, 1, 2048), heads=8, kv_heads=2))
    expected = explore(head, 2048, load_calibration("ulx3s-85f"), fmt=fmt,
                       table=load_table("fpga"))   # (explore's default table)
    assert json.loads(out)["points"] == json.loads(json.dumps(expected))
    assert {p["head_schedule"] for p in expected} == {"gqa"}
    # the default head (Longformer-base's) when nothing is given
    out, _ = _run(capsys, "explore", "--format", "json")
    assert json.loads(out)["model"] == "head"


@pytest.mark.parametrize(("argv", "message"), [
    (["--global-tokens", "0"], "--global-tokens: explore's resource model is calibrated on "
                               "sliding-window cores without global tokens; `swatkit "
                               "estimate` estimates it"),
    (["--dilation", "2"], "--dilation: explore's resource model is calibrated on "
                          "sliding-window cores without dilation; `swatkit estimate` "
                          "estimates it"),
    (["--bigbird", "64"], "--bigbird: explore's resource model is calibrated on "
                          "sliding-window cores without BigBird's block-sparse pattern; "
                          "`swatkit estimate` estimates it"),
    (["--model", "mistral-7b", "--head-dim", "8"],
     "--head-dim cannot be combined with --model (the model sets the attention pattern "
     "and head_dim)"),
    (["--seq-len", "0:8:x2"], "argument --seq-len: must be positive integers, not 0"),
    (["--seq-len", "1024:65536:x2", "--plot", "p.png"],
     "--plot draws a panel per N: at most 6 lengths, not 7 (--seq-len)"),
    (["--seq-len", "1024,99999999"], "--seq-len must be an integer in 1..16777216, not "
                                     "99999999"),
])
def test_explore_refuses_in_one_line(argv, message, capsys):
    assert main(["explore", *argv]) == 2
    assert capsys.readouterr().err == f"swatkit: error: {message}\n"


def test_regress_seq_len_takes_estimates_syntax():
    """regress --seq-len: a list or a range, parsed by the one parser (options.parse_lengths)."""
    from swatkit.cmd_regress import add_arguments

    parser = _Parser(prog="swatkit regress")
    add_arguments(parser)
    assert parser.parse_args(["--seq-len", "600,4096"]).seq_len == [600, 4096]
    assert parser.parse_args(["--seq-len", "256:2048:x2"]).seq_len == [256, 512, 1024, 2048]

    # --decode without T: the same default steps as estimate --decode
    from swatkit.cmd_estimate import add_arguments as estimate_arguments
    from swatkit.options import DEFAULT_DECODE_STEPS

    estimate = _Parser(prog="swatkit estimate")
    estimate_arguments(estimate)
    assert parser.parse_args(["--decode"]).decode == DEFAULT_DECODE_STEPS
    assert estimate.parse_args(["--decode"]).decode == DEFAULT_DECODE_STEPS
    assert parser.parse_args(["--decode", "3"]).decode == 3


@pytest.mark.parametrize("spelling", ["-n", "-j", "--workers", "--jobs"])
def test_regress_takes_jobs_as_flow_and_prove_do(spelling, capsys):
    """regress's parallel simulations: -n/--workers (pytest-xdist's spelling) or -j/--jobs
    (flow's and prove's), one option; a bad value names the spelling typed."""
    from swatkit.cmd_regress import add_arguments

    parser = _Parser(prog="swatkit regress")
    add_arguments(parser)
    assert parser.parse_args([spelling, "3"]).workers == 3
    assert main(["regress", spelling, "-1"]) == 2
    assert capsys.readouterr().err == (f"swatkit: error: {spelling} must be an integer in "
                                       "0..256, not -1\n")
    assert main(["regress", spelling, "2", "--scheduler", "tcp://127.0.0.1:9"]) == 2
    assert capsys.readouterr().err == (f"swatkit: error: {spelling} cannot be combined with "
                                       "--scheduler (the cluster's workers set the "
                                       "parallelism)\n")
