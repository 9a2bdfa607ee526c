"""``swatkit estimate --from-flow DIR/flow.json``: the flow's own configuration (spec, format,
lanes, max_seq_len) and clock are estimated; a value given on the command line or in --config
that differs from the flow's is refused in one line naming the field and both values; a
flow.json of an earlier swatkit (no configuration record) still works, with a warning."""

import contextlib
import io
import json

import pytest

from swatkit.cli import main
from swatkit.fpga_flows import flow

REPORT = {"fmax": {"cd_sync.clk": {"achieved": 28.2, "constraint": 25},
                   "$PACKER_GND_NET_$glb_clk": {"achieved": 900.0, "constraint": 25}},
          "utilization": {"ICESTORM_LC": {"used": 4362, "available": 5280}}}


@pytest.fixture(scope="module")
def causal_flow(tmp_path_factory):
    """flow.json of an iCEBreaker build (stand-in reports): causal window of 9 keys, head_dim 8,
    1 x 2 lanes, prob_bits 12, up to 1024 rows. One project for the module's tests, which
    only read it."""
    out = tmp_path_factory.mktemp("from_flow") / "ice"
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(["flow", "--board", "icebreaker", "--causal", "--prob-bits", "12",
                     "-o", str(out)]) == 0
        (out / flow.REPORT).write_text(json.dumps(REPORT))
        assert main(["flow", "-o", str(out), "--collect"]) == 0
    return out / "flow.json"


def estimate(capsys, *argv):
    code = main(["estimate", "--format", "json", "--dataflow", "swat", *argv])
    out, err = capsys.readouterr()
    return code, (json.loads(out) if code == 0 else None), err


def test_the_flows_configuration_and_clock(causal_flow, capsys):
    code, records, err = estimate(capsys, "--from-flow", str(causal_flow))
    assert code == 0 and err == ""
    (rec,) = records  # the flow's max_seq_len, 1024, is the only default length
    assert rec["seq_len"] == 1024 and rec["clock_hz"] == 28.2e6  # not the $PACKER "clock"
    assert (rec["head_dim"], rec["window"], rec["key_lanes"], rec["dim_lanes"]) == (8, 9, 1, 2)
    assert rec["tech"] == "fpga"   # a flow's clock is an FPGA's: its energy table by default
    # the same as the configuration given in full (format and energy table included)
    code, same, _ = estimate(capsys, "--causal", "--sliding-window", "9", "--head-dim", "8",
                             "--key-lanes", "1", "--dim-lanes", "2", "--prob-bits", "12",
                             "--seq-len", "1024", "--clock-mhz", "28.2", "--tech", "fpga")
    assert code == 0
    for key in ("cycles", "energy_j", "macs", "layer_pattern"):
        assert same[0][key] == rec[key], key
    code, other, _ = estimate(capsys, "--causal", "--sliding-window", "9", "--head-dim", "8",
                              "--key-lanes", "1", "--dim-lanes", "2", "--seq-len", "1024",
                              "--tech", "fpga")
    assert other[0]["energy_j"] != rec["energy_j"]  # prob_bits 16: the format matters
    # --tech given wins over the flow's default; without --from-flow the default is asic45
    code, asic, _ = estimate(capsys, "--from-flow", str(causal_flow), "--tech", "asic45")
    assert asic[0]["tech"] == "asic45" and asic[0]["energy_j"] < rec["energy_j"]
    assert same[0]["cycles"] == asic[0]["cycles"]
    code, plain, _ = estimate(capsys, "--seq-len", "1024")
    assert plain[0]["tech"] == "asic45"


def test_values_equal_to_the_flows_are_accepted(causal_flow, capsys, tmp_path):
    config = tmp_path / "c.toml"
    config.write_text("[spec]\ncausal = true\n[hardware]\nkey_lanes = 1\n")
    for argv in (["--causal"], ["--key-lanes", "1", "--seq-len", "256,512"],
                 ["--sliding-window", "9", "--causal", "--prob-bits", "12"],
                 ["--config", str(config)]):
        code, records, err = estimate(capsys, "--from-flow", str(causal_flow), *argv)
        assert code == 0, err
        assert {(r["window"], r["key_lanes"], r["dim_lanes"]) for r in records} == {(9, 1, 2)}
        assert "causal" in records[0]["layer_pattern"]


@pytest.mark.parametrize(("argv", "message"), [
    (["--key-lanes", "2"], "built key_lanes 1, not 2 (--key-lanes)"),
    (["--dim-lanes", "1"], "built dim_lanes 2, not 1 (--dim-lanes)"),
    (["--attention-window", "8"],
     "built causal sliding_window 9, not attention_window 8 (--attention-window)"),
    (["--causal", "--sliding-window", "5"],
     "built causal sliding_window 9, not causal sliding_window 5 (--sliding-window)"),
    (["--no-causal"], "built causal sliding_window 9, not attention_window 512 (--causal)"),
    (["--head-dim", "16"], "built head_dim 8, not 16 (--head-dim)"),
    (["--dilation", "2"], "built dilation 1, not 2 (--dilation)"),
    (["--prob-bits", "16"], "built prob_bits 12, not 16 (--prob-bits)"),
    (["--seq-len", "512,2048"],
     "built a core for up to 1024 rows (max_seq_len), not seq_len 2048 (--seq-len)"),
    (["--config", "{cfg}"], "built dim_lanes 2, not 4 ([hardware] dim_lanes in {cfg})"),
    (["--model", "longformer-base"], "built head_dim 8, not 64 (--model longformer-base)"),
])
def test_a_mismatching_value_is_refused(causal_flow, capsys, tmp_path, argv, message):
    cfg = tmp_path / "c.toml"
    cfg.write_text("[hardware]\ndim_lanes = 4\n")
    argv = [a.format(cfg=cfg) for a in argv]
    code, _, err = estimate(capsys, "--from-flow", str(causal_flow), *argv)
    assert code == 2
    assert err == f"swatkit: error: --from-flow: {causal_flow} {message.format(cfg=cfg)}\n"


def test_a_model_with_the_flows_core(tmp_path, capsys):
    """--model with a flow that built one of its heads: the flow's lanes and clock."""
    out = tmp_path / "u"
    assert main(["flow", "--board", "ulx3s-85f", "--attention-window", "512", "-o",
                 str(out)]) == 0
    (out / flow.REPORT).write_text(json.dumps({"fmax": {"clk": {"achieved": 80.0,
                                                                "constraint": 75}}}))
    assert main(["flow", "-o", str(out), "--collect"]) == 0
    capsys.readouterr()
    code, records, err = estimate(capsys, "--from-flow", str(out / "flow.json"), "--model",
                                  "longformer-base")
    assert code == 0, err
    assert {(r["key_lanes"], r["dim_lanes"], r["clock_hz"]) for r in records} == {(2, 8, 80e6)}
    assert {r["seq_len"] for r in records} == {1024, 2048, 4096}


def test_an_old_flow_json_works_with_a_warning(tmp_path, capsys):
    old = tmp_path / "flow.json"
    old.write_text(json.dumps({"board": "ulx3s-85f", "fmax_mhz": {"c": {"achieved": 50.0}},
                               "core": {"head_dim": 64, "window": 65, "key_lanes": 4,
                                        "dim_lanes": 8, "data_bits": 8}}))
    code, records, err = estimate(capsys, "--from-flow", str(old), "--seq-len", "1024")
    assert code == 0
    assert (records[0]["window"], records[0]["key_lanes"]) == (65, 4)
    assert err == (f"swatkit: warning: --from-flow: {old} has no configuration record (an "
                   "earlier swatkit wrote it): only its head_dim, window, lanes and data_bits "
                   "were taken and checked\n")
