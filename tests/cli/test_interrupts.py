"""Ctrl-C, SIGTERM and kill -9 (swatkit/cli.py, swatkit/support/processes.py,
swatkit/cmd_regress.py).

An interrupt that lands in a finaliser is sent again, not dropped. A guarded program
(:func:`swatkit.support.processes.run`) ends with its caller, whether the caller is interrupted or
killed. `swatkit regress` interrupted at several points of a small cached run (start-up, the
worker pool's start-up, a simulation, between cases, a pool winding down, a build) exits 130
(143 on SIGTERM) with the one line ``swatkit: interrupted`` and leaves no process behind; killed
with SIGKILL while it builds, nothing it started goes on.

Every process a command starts inherits its environment, so the tests tag the command with a
variable of their own and look for live processes carrying it in ``/proc/<pid>/environ``: that
finds them even after they are re-parented to init.
"""

import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from swatkit import cli

needs_proc = pytest.mark.skipif(not Path("/proc/self/environ").is_file(),
                                reason="needs Linux's /proc")


class _Finaliser:
    def __del__(self):   # (called directly below for its frame, a finaliser's)
        return sys._getframe()


def test_interrupt_outside_a_finaliser_raises(monkeypatch):
    monkeypatch.setattr(cli._Interrupts, "seen", False)
    with pytest.raises(KeyboardInterrupt):
        cli._Interrupts.handler(signal.SIGINT, sys._getframe())
    assert cli._Interrupts.seen


def test_interrupt_inside_a_finaliser_is_sent_again(monkeypatch):
    sent = []
    monkeypatch.setattr(cli.os, "kill", lambda pid, sig: sent.append((pid, sig)))
    monkeypatch.setattr(cli._Interrupts, "seen", False)
    # (it returns: a raise there would be dropped by Python)
    cli._Interrupts.handler(signal.SIGINT, _Finaliser().__del__())
    deadline = time.monotonic() + 5
    while not sent and time.monotonic() < deadline:
        time.sleep(0.01)
    assert sent == [(cli.os.getpid(), signal.SIGINT)]
    assert cli._Interrupts.seen


def test_main_leaves_the_callers_sigterm_handler():
    before = signal.getsignal(signal.SIGTERM)
    assert cli.main(["regress", "--runs", "0"]) == 2
    assert signal.getsignal(signal.SIGTERM) is before


# -- helpers ----------------------------------------------------------------------------------


def _alive(pid: str) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def tagged(tag: str) -> list[str]:
    """``pid command`` of every live process whose environment carries ``tag``."""
    marker = f"SWATKIT_TEST_TAG={tag}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if marker not in (entry / "environ").read_bytes().split(b"\0"):
                continue
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if _alive(entry.name):
            found.append(f"{entry.name} {cmd[:100]}")
    return found


def left_behind(tag: str, within: float = 1.0) -> list[str]:
    """The tagged processes still alive ``within`` seconds from now (none: at once)."""
    deadline = time.monotonic() + within
    while (found := tagged(tag)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return found


def start(argv, tag, cwd=None, **kw):
    env = {**os.environ, "SWATKIT_TEST_TAG": tag}
    return subprocess.Popen([sys.executable, *argv], cwd=cwd, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True, **kw)


def wait_until(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(0.02)
    pytest.fail(f"{what} did not happen within {timeout} s")


# -- guarded programs ---------------------------------------------------------------------------


def test_run_passes_the_exit_status_on():
    from swatkit.support.processes import run

    assert run(["sh", "-c", "exit 3"]) == 3
    assert run(["sh", "-c", "kill -TERM $$"]) == 128 + signal.SIGTERM
    with pytest.raises(FileNotFoundError, match=r"^no such program: no-such-program-here$"):
        run(["no-such-program-here"])


# a caller that runs a program with a child of its own (sleep & sleep), as make runs compilers
CALLER = ("import sys; from swatkit.support.processes import run; print('go', flush=True); "
          "run(['sh', '-c', 'sleep 60 & sleep 60'])")


@needs_proc
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL])
def test_a_guarded_program_ends_with_its_caller(sig):
    """Interrupted (KeyboardInterrupt in the caller) or killed (SIGKILL: the guard sees its
    parent die), the caller takes the program and the program's children with it."""
    tag = secrets.token_hex(6)
    proc = start(["-c", CALLER], tag)
    assert proc.stdout.readline() == "go\n"
    wait_until(lambda: sum(p.split(" ", 1)[1].startswith("sleep 60") for p in tagged(tag)) == 2,
               30, "two sleeps")
    os.kill(proc.pid, sig)
    proc.communicate(timeout=30)
    assert left_behind(tag) == []


# -- swatkit regress ------------------------------------------------------------------------------

TINY = ["--attention-window", "4", "--head-dim", "4", "--key-lanes", "2", "--dim-lanes", "2"]


@pytest.fixture(scope="module")
def small_run(tmp_path_factory, request):
    """A small regression (four cases of 40 runs of 32 rows, a few seconds each) on a build
    that is in the cache (built here if needed)."""
    folder = tmp_path_factory.mktemp("interrupts")
    (folder / "mine.toml").write_text("[spec]\nseq_len = 16\n")
    build_dir = request.config.getoption("build_dir")
    argv = ["-m", "swatkit.cli", "regress", "--config", "mine.toml", *TINY, "--seq-len", "32",
            "--runs", "40", *(["--build-dir", build_dir] if build_dir else [])]
    done = subprocess.run([sys.executable, *argv, "-n", "0", "--seed", "1"], cwd=folder,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    return folder, [*argv, "--inputs", "random,max,min,extremes", "--seed", "2"]


def _line(proc, prefix: str):
    """Read standard output up to a line that starts with ``prefix`` (after the display's
    control characters)."""
    for line in proc.stdout:
        if line.lstrip("\x1b[?25l\r").startswith(prefix):
            return line
    pytest.fail(f"no line {prefix!r} on standard output")


def _simulating(tag):
    return any("swat_tb" in p for p in tagged(tag))


# where the interrupt lands: (workers, what to wait for)
POINTS = {
    "start-up": ("2", lambda proc, tag: time.sleep(0.8)),   # (importing the commands)
    "pool start-up": ("2", lambda proc, tag: _line(proc, "swatkit regress your configuration")),
    "simulating": ("2", lambda proc, tag: wait_until(lambda: _simulating(tag), 120,
                                                     "a simulation")),
    "between cases": ("0", lambda proc, tag: _line(proc, "PASS")),
    "pool winding down": ("2", lambda proc, tag: (_line(proc, "PASS"), _line(proc, "PASS"),
                                                  _line(proc, "PASS"))),
}


@needs_proc
@pytest.mark.parametrize("point", POINTS)
def test_ctrl_c_anywhere_stops_everything(small_run, point):
    """SIGINT to the command's process group (what a terminal's Ctrl-C sends) at ``point``:
    exit 130, the one line, and no process left (in the last point one case is still running
    and one worker waits idle for a task)."""
    folder, argv = small_run
    workers, wait = POINTS[point]
    tag = secrets.token_hex(6)
    proc = start([*argv, "-n", workers], tag, cwd=folder)
    wait(proc, tag)
    os.killpg(proc.pid, signal.SIGINT)
    sent = time.monotonic()
    out, err = proc.communicate(timeout=60)
    took = time.monotonic() - sent
    print(f"{point}: exit {proc.returncode} {took:.2f} s after the signal")
    assert proc.returncode == 130, out + err
    assert err.splitlines() == ["swatkit: interrupted"], err
    assert left_behind(tag) == []
    assert took < 10   # (well under a second on an idle machine)


@needs_proc
def test_sigterm_stops_everything(small_run):
    """SIGTERM to the command alone while its workers simulate: exit 143, the one line, no
    process left."""
    folder, argv = small_run
    tag = secrets.token_hex(6)
    proc = start([*argv, "-n", "2"], tag, cwd=folder)
    wait_until(lambda: _simulating(tag), 120, "a simulation")
    proc.terminate()
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM, out + err
    assert err.splitlines() == ["swatkit: interrupted"], err
    assert left_behind(tag) == []


def _compiling(tag):
    return any(("make" in p and " -C " in p) or "cc1plus" in p for p in tagged(tag))


@needs_proc
@pytest.mark.parametrize(("sig", "workers"), [(signal.SIGINT, "2"), (signal.SIGKILL, "2"),
                                              (signal.SIGKILL, "0")])
def test_a_build_stops_with_the_command(tmp_path, sig, workers):
    """A build of a new configuration (an empty cache), stopped while the C++ compiler runs:
    by Ctrl-C (exit 130, the one line) or by SIGKILL to the command alone (the workers and
    the compilers watch it). Nothing goes on compiling, and no build is left as finished."""
    tag = secrets.token_hex(6)
    proc = start(["-m", "swatkit.cli", "regress", *TINY, "--seq-len", "8", "-n", workers,
                  "--build-dir", str(tmp_path / "cache"), "--seed", "1"], tag, cwd=tmp_path)
    wait_until(lambda: _compiling(tag), 300, "a compilation")
    if sig == signal.SIGINT:
        os.killpg(proc.pid, sig)
    else:
        proc.kill()
    out, err = proc.communicate(timeout=60)
    assert left_behind(tag) == []
    if sig == signal.SIGINT:
        assert proc.returncode == 130, out + err
        assert err.splitlines() == ["swatkit: interrupted"], err
    else:
        assert proc.returncode == -signal.SIGKILL
    assert not list((tmp_path / "cache").glob("*/build.ok"))
