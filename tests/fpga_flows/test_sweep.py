"""``swatkit flow --sweep`` in parallel: in this process (``-j 1``), in local processes
(``-j N``) and on a Dask cluster (``--scheduler``, a ``LocalCluster`` here), with stand-in tools
(one point fails, one can be made slow), the progress lines, the files that come back, a
scheduler that cannot be reached, and Ctrl-C; one real two-point sweep, marked slow."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from swatkit.cli import main
from swatkit.fpga_flows import flow

ICE40_REPORT = {
    "fmax": {"cd_sync.clk": {"achieved": 31.1, "constraint": 25}},
    "utilization": {"ICESTORM_LC": {"used": 1500, "available": 5280},
                    "ICESTORM_RAM": {"used": 3, "available": 30},
                    "ICESTORM_DSP": {"used": 2, "available": 8}},
}
ICE40_STAT = {"design": {"num_cells_by_type": {"SB_LUT4": 1200, "SB_DFF": 800}}}
# the smallest iCEBreaker configuration: emits in about a second
TINY = ["--board", "icebreaker", "--head-dim", "4", "--attention-window", "2", "--seq-len", "64",
        "--test-rows", "8"]


def stand_in_tools(tmp_path, monkeypatch, *, fail="", slow="", seconds=60):
    """yosys, nextpnr-ice40 and icepack stand-ins, through the variables Amaranth's scripts
    read. nextpnr fails for the points whose swatkit.json matches ``fail`` and sleeps
    ``seconds`` (writing its process id to ``slow.pid``) for those matching ``slow``."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    report = json.dumps(ICE40_REPORT)
    nextpnr = ""
    if fail:
        nextpnr += (f"if grep -q '{fail}' swatkit.json; then echo 'ERROR: fake placer failed'; "
                    "exit 1; fi\n")
    if slow:
        nextpnr += (f"if grep -q '{slow}' swatkit.json; then echo $$ > {tmp_path}/slow.pid; "
                    f"sleep {seconds}; fi\n")
    tools = {
        "YOSYS": f"echo '{json.dumps(ICE40_STAT)}' > {flow.STAT}",
        "NEXTPNR_ICE40": f"{nextpnr}echo '{report}' > {flow.REPORT}",
        "ICEPACK": "echo packed > \"$2\"",
    }
    for var, body in tools.items():
        script = bin_dir / var.lower()
        script.write_text(f"#!/bin/sh\n[ \"$1\" = -V ] && exit 0\n{body}\n")
        script.chmod(0o755)
        monkeypatch.setenv(var, str(script))


def check_sweep(out, printed, err, code, *, seen_running=True):
    """kl1-dl1 built, kl2-dl1 failed (the stand-in placer): exit 1, the table, one error line.
    (A Dask point is "running" when the client's poll finds it being processed: a point of a
    second may end between two polls.)"""
    assert code == 1
    assert err.strip().splitlines() == [
        f"swatkit: error: 1 of 2 points failed (kl2-dl1); the note column of {out / 'sweep.md'} "
        "says why"]
    assert "sweep: kl1-dl1 done: 31.10 MHz, 385.9 ns/row, build " in printed
    if seen_running:
        assert "sweep: kl1-dl1 running" in printed and "sweep: kl2-dl1 running" in printed
    assert (f"sweep: kl2-dl1 failed: yosys failed: ERROR: fake placer failed (log: "
            f"{out.resolve() / 'kl2-dl1' / flow.BUILD_LOG})") in printed
    record = json.loads((out / "sweep.json").read_text())
    from swatkit.support.version import source_revision
    assert record["swatkit_revision"] == source_revision()   # (None outside a git checkout)
    rows = {(r["key_lanes"], r["dim_lanes"]): r for r in record["rows"]}
    assert [r["status"] for r in record["rows"]] == ["done", "failed"]
    assert rows[1, 1]["fmax_mhz"] == 31.1 and rows[1, 1]["LUT"] == 1500
    assert rows[2, 1]["note"].startswith("yosys failed: ERROR: fake placer failed")
    assert "| 1 | 1 | 12 | 1500 | 800 | 2 | 3 | 31.1 | 385.9 |" in (out / "sweep.md").read_text()
    result = json.loads((out / "kl1-dl1" / "flow.json").read_text())
    assert result["bitstream"] == str(out.resolve() / "kl1-dl1" / f"{flow.NAME}.bin")
    assert result["hardware"]["key_lanes"] == 1
    assert "fake placer failed" in (out / "kl2-dl1" / flow.BUILD_LOG).read_text()


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_sweep_local(jobs, tmp_path, monkeypatch, capsys):
    stand_in_tools(tmp_path, monkeypatch, fail='"key_lanes": 2,')
    out = tmp_path / "s"
    code = main(["flow", *TINY, "-o", str(out), "--sweep", "--points", "1x1,2x1", "-j", jobs])
    printed, err = capsys.readouterr()
    where = "one after another in this process" if jobs == "1" else \
        "2 at a time in local processes"
    assert f"sweep: 2 points (kl1-dl1, kl2-dl1) {where}" in printed
    check_sweep(out, printed, err, code)


def test_sweep_on_a_dask_cluster(tmp_path, monkeypatch, capsys):
    """The points run on the workers of a LocalCluster; their files come back as bytes and the
    client writes them (and reads flow.json again, so that its paths are the client's)."""
    distributed = pytest.importorskip("distributed")
    stand_in_tools(tmp_path, monkeypatch, fail='"key_lanes": 2,')
    landed = []
    real_land = flow.land
    monkeypatch.setattr(flow, "land", lambda payload, folder: landed.append(
        (sorted(payload["files"]), str(folder))) or real_land(payload, folder))
    out = tmp_path / "s"
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster:
        code = main(["flow", *TINY, "-o", str(out), "--sweep", "--points", "1x1,2x1",
                     "--scheduler", cluster.scheduler_address])
    printed, err = capsys.readouterr()
    assert "sweep: 2 points (kl1-dl1, kl2-dl1) on the Dask cluster at inproc://" in printed
    assert "(2 workers)" in printed
    check_sweep(out, printed, err, code, seen_running=False)
    assert len(landed) == 2
    files, _ = next(x for x in landed if x[1].endswith("kl1-dl1"))
    assert {"report.json", "stat.json", f"{flow.NAME}.bin", "swatkit.json", "vectors.npz",
            "build.log", f"build_{flow.NAME}.sh"} <= set(files)
    assert "flow.json" not in files and f"{flow.NAME}.json" not in files  # written here / kept
    assert os.access(out / "kl1-dl1" / "run_yowasp.sh", os.X_OK)


def test_unreachable_scheduler(tmp_path, monkeypatch, capsys):
    pytest.importorskip("distributed")
    monkeypatch.setattr(flow, "CONNECT_TIMEOUT", 1)
    start = time.monotonic()
    code = main(["flow", *TINY, "-o", str(tmp_path / "s"), "--sweep", "--scheduler",
                 "tcp://127.0.0.1:9"])
    printed, err = capsys.readouterr()
    assert code == 2 and printed == ""
    (line,) = err.strip().splitlines()
    assert line.startswith("swatkit: error: --scheduler: cannot reach the Dask scheduler at "
                           "tcp://127.0.0.1:9: ")
    assert time.monotonic() - start < 30
    assert not (tmp_path / "s").exists()


def test_scheduler_without_dask_names_the_extra(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed fails
    code = main(["flow", *TINY, "-o", str(tmp_path / "s"), "--sweep", "--scheduler",
                 "tcp://127.0.0.1:8786"])
    assert code == 2
    assert capsys.readouterr().err == ("swatkit: error: --scheduler: a Dask scheduler needs "
                                       "dask.distributed: pip install 'swatkit[dask]'\n")


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_ctrl_c_stops_the_sweep(jobs, tmp_path, monkeypatch):
    """Ctrl-C while one point builds (its placer sleeps): the build's tools stop, the command
    says which points finished, writes those, and exits 130."""
    stand_in_tools(tmp_path, monkeypatch, slow='"key_lanes": 2,')
    out = tmp_path / "s"
    points = "1x1,2x1" if jobs == "2" else "1x1,2x1,1x2"
    process = subprocess.Popen(
        [sys.executable, "-m", "swatkit.cli", "flow", *TINY, "-o", str(out), "--sweep",
         "--points", points, "-j", jobs], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True)
    pid_file = tmp_path / "slow.pid"
    deadline = time.monotonic() + 120
    while not ((out / "kl1-dl1" / "flow.json").exists() and pid_file.exists()):
        assert process.poll() is None and time.monotonic() < deadline
        time.sleep(0.2)
    time.sleep(1)  # the client has seen kl1-dl1 finish
    slow = int(pid_file.read_text())
    process.send_signal(signal.SIGINT)
    printed, err = process.communicate(timeout=60)
    assert "sweep: kl1-dl1 done" in printed
    assert process.returncode == 130, err
    left = "none" if jobs == "2" else "kl1-dl2"
    assert err.splitlines() == [
        f"swatkit: sweep stopped: finished kl1-dl1 (done); stopped kl2-dl1; not started {left} "
        f"({out / 'sweep.md'} has the finished points)",
        "swatkit: interrupted"]
    deadline = time.monotonic() + 10
    while not _gone(slow):
        assert time.monotonic() < deadline, "the stopped point's tools still run"
        time.sleep(0.1)
    record = json.loads((out / "sweep.json").read_text())
    assert [r["key_lanes"] for r in record["rows"]] == [1]
    assert record["interrupted"] == {"stopped": ["kl2-dl1"]}


# -- one real sweep -------------------------------------------------------------------------------


@pytest.mark.slow
def test_real_sweep_two_points_in_parallel(tmp_path, capsys):
    """Two points of the smallest iCE40 configuration built at once with the YoWASP tools."""
    out = tmp_path / "s"
    assert main(["flow", *TINY, "-o", str(out), "--sweep", "--points", "1x1,1x2",
                 "-j", "2"]) == 0
    rows = json.loads((out / "sweep.json").read_text())["rows"]
    assert [(r["key_lanes"], r["dim_lanes"], r["status"]) for r in rows] == [
        (1, 1, "done"), (1, 2, "done")]
    for r in rows:
        assert r["fmax_mhz"] > 0 and r["LUT"] > 0
        folder = out / flow.point_name(r["key_lanes"], r["dim_lanes"])
        assert (folder / f"{flow.NAME}.bin").stat().st_size > 100_000
        result = json.loads((folder / "flow.json").read_text())
        assert all("$PACKER" not in p["from_clock"] + p["to_clock"]
                   for p in result["critical_paths"])
    assert rows[1]["cycles_per_row"] < rows[0]["cycles_per_row"]
