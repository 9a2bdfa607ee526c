"""Smoke tests of golden/bench.py on tiny sizes (the real figures are in docs/numerics.md)."""

import pytest

from swatkit.golden import bench


def test_errors_table():
    text = bench.measure_errors(seq_len=64, head_dim=8, attention_window=8, seed=1)
    lines = text.splitlines()
    assert lines[0].startswith("N 64, head_dim 8")
    assert lines[1].split()[:3] == ["format", "LSB", "(scale_o)"]
    assert len(lines) == 3 + len(bench.ERROR_FORMATS)
    for line, name in zip(lines[3:], bench.ERROR_FORMATS, strict=True):
        assert line.startswith(name)
        max_lsb, bound = float(line.split()[-5]), float(line.split()[-1])
        assert 0 < max_lsb <= bound


def test_speed_table():
    text = bench.measure_speed(seq_len=64, head_dim=8, attention_window=8, fixed_seq_len=128)
    lines = text.splitlines()
    assert [line.split()[0] for line in lines[3:6]] == [
        "attention_reference(q,", "window_attention", "fixed_point_attention"]
    assert lines[6].startswith("speed-up dense / window: ")


def test_main(capsys):
    assert bench.main(["errors", "--seq-len", "32", "--head-dim", "4",
                       "--attention-window", "4"]) == 0
    assert "default (8-bit)" in capsys.readouterr().out
    assert bench.main(["--seq-len", "32", "--fixed-seq-len", "32", "--head-dim", "4",
                       "--attention-window", "4", "--no-dense"]) == 0
    out = capsys.readouterr().out
    assert "window_attention" in out and "attention_reference" not in out
    with pytest.raises(SystemExit) as exc:
        bench.main(["errors", "--attention-window", "7"])
    assert exc.value.code == 2
    assert capsys.readouterr().err.endswith(
        "error: attention_window must be a positive even integer, not 7\n")
