"""Smoke tests of golden/measure.py on tiny sizes (the real figures are in docs/numerics.md)."""

import pytest

from swatkit.golden import measure


def test_errors_table():
    text = measure.measure_errors(seq_len=64, head_dim=8, attention_window=8, seed=1)
    lines = text.splitlines()
    assert lines[0].startswith("N 64, head_dim 8")
    assert lines[1].split()[:3] == ["format", "LSB", "(scale_o)"]
    assert len(lines) == 3 + len(measure.ERROR_FORMATS)
    for line, name in zip(lines[3:], measure.ERROR_FORMATS, strict=True):
        assert line.startswith(name)
        max_lsb, bound = float(line.split()[-5]), float(line.split()[-1])
        assert 0 < max_lsb <= bound


def test_speed_table():
    text = measure.measure_speed(seq_len=64, head_dim=8, attention_window=8, fixed_seq_len=128)
    lines = text.splitlines()
    assert [line.split()[0] for line in lines[3:6]] == [
        "attention_reference(q,", "window_attention", "fixed_point_attention"]
    assert lines[6].startswith("speed-up dense / window: ")


def test_main(capsys):
    assert measure.main(["errors", "--seq-len", "32", "--head-dim", "4",
                       "--attention-window", "4"]) == 0
    assert "default (8-bit)" in capsys.readouterr().out
    assert measure.main(["--seq-len", "32", "--fixed-seq-len", "32", "--head-dim", "4",
                       "--attention-window", "4", "--no-dense"]) == 0
    out = capsys.readouterr().out
    assert "window_attention" in out and "attention_reference" not in out
    with pytest.raises(SystemExit) as exc:
        measure.main(["errors", "--attention-window", "7"])
    assert exc.value.code == 2
    assert capsys.readouterr().err.endswith(
        "error: attention_window must be a positive even integer, not 7\n")


def test_sinks_table():
    text = measure.measure_sinks(seq_len=64, head_dim=8, sliding_window=8, heads=4, kv_heads=2,
                               sink_tokens=2, seed=1)
    lines = text.splitlines()
    assert lines[0].startswith("N 64, head_dim 8, causal sliding_window 8, 4 query heads on 2")
    assert len(lines) == 3 + 2 * len(measure.ERROR_FORMATS)
    for line in lines[3:]:
        max_lsb, bound = float(line.split()[-5]), float(line.split()[-1])
        assert 0 < max_lsb <= bound
    assert "learned sinks" in lines[3] and "2 sink tokens" in lines[4]


def test_main_sinks(capsys):
    assert measure.main(["sinks", "--seq-len", "32", "--head-dim", "4", "--sliding-window", "4",
                       "--heads", "2"]) == 0
    assert "learned sinks" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exc:
        measure.main(["sinks", "--heads", "3", "--kv-heads", "2"])
    assert exc.value.code == 2
    assert capsys.readouterr().err.endswith(
        "error: --heads (3) must be a multiple of --kv-heads (2)\n")
