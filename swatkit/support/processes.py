"""Child programs that end with the command that started them.

Every program a regression runs (Verilator, the ``make`` of its model and the compilers make
starts, the simulator) is started by :func:`run`, in a process group of its own under a guard:
a small Python process (this file run as a script, ``python -I -S processes.py <parent pid>
<program> <args>``: standard library only) that leads the group, starts the program in it,
passes its exit status on, and kills the whole group with SIGKILL when

* it is told to stop (SIGTERM, SIGINT or SIGHUP), or
* the process that started it dies, however it dies (``kill -9`` included): the guard asks
  Linux for SIGTERM on its parent's death (``prctl(PR_SET_PDEATHSIG)``; elsewhere this part is
  missing) and checks its parent once more after asking, for the case that it died before.

:func:`run` itself kills the group at once if it is interrupted while it waits (Ctrl-C in the
process that called it, or any other exception). A process that runs programs this way and is
killed takes them with it within milliseconds; nothing the command started outlives it.
A group of its own also means that a terminal's Ctrl-C reaches only swatkit's own processes,
which stop their programs themselves (the compiler is never left ignoring the signal, as it
did when it inherited a pool worker's ``SIG_IGN``).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Sequence

__all__ = ["kill_group", "run", "running", "watch_parent"]

PR_SET_PDEATHSIG = 1   # linux/prctl.h

_GROUPS: set[int] = set()   # groups of the programs this process is waiting for


def running() -> frozenset[int]:
    """The process groups of the programs this process's :func:`run` calls wait for."""
    return frozenset(_GROUPS)


def kill_group(pgid: int) -> None:
    """SIGKILL to every process of the group ``pgid`` (gone already: nothing)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def run(cmd: Sequence[str], *, cwd=None, env: dict | None = None, stdout=None,
        stderr=None) -> int:
    """Run ``cmd`` under the guard (see the module) and return its exit status (128 + N if
    signal N ended it). ``stdout``, ``stderr``: as for :class:`subprocess.Popen`; standard
    input is ``/dev/null``. Raises :class:`FileNotFoundError` if the program is not found on
    ``env``'s (else this process's) PATH."""
    cmd = [str(c) for c in cmd]
    path = (env if env is not None else os.environ).get("PATH")
    if shutil.which(cmd[0], path=path) is None:
        raise FileNotFoundError(f"no such program: {cmd[0]}")
    proc = subprocess.Popen([sys.executable, "-I", "-S", __file__, str(os.getpid()), *cmd],
                            cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=stdout,
                            stderr=stderr, start_new_session=True)
    _GROUPS.add(proc.pid)
    try:
        return proc.wait()
    except BaseException:
        kill_group(proc.pid)
        proc.wait()
        raise
    finally:
        _GROUPS.discard(proc.pid)


def watch_parent(parent: int, sig: int = signal.SIGTERM) -> None:
    """Ask for ``sig`` when this process's parent dies (Linux; elsewhere nothing), and exit at
    once if ``parent`` is no longer the parent (it died before the request)."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(ImportError, OSError, AttributeError):   # (no prctl: no watch)
            import ctypes

            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0)
    if os.getppid() != parent:
        os._exit(128 + int(sig))


def _guard(parent: int, cmd: list[str]) -> int:
    """The guard (see the module): ``cmd`` in this process's group, which it kills when told
    to stop or when ``parent`` dies."""
    def stop(*_):
        os.killpg(0, signal.SIGKILL)   # the whole group: the program, its children, the guard

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, stop)
    watch_parent(parent)
    code = subprocess.Popen(cmd).wait()
    return code if code >= 0 else 128 - code


if __name__ == "__main__":
    sys.exit(_guard(int(sys.argv[1]), sys.argv[2:]))
