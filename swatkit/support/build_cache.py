"""The build cache every Verilator user of swatkit shares (the regression's harness builds in
``swatkit.sim.regress``, the board self-test's in ``swatkit.fpga_flows.selftest``): where
builds live (:func:`build_root`), one build per key however many processes ask for it at once
(:func:`cached_build`, under a lock file), and the tool versions a key includes
(:func:`tool_versions`). What is built and how is the caller's; this module only keeps it.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = ["BuildInfo", "build_root", "cached_build", "locked", "remove_leftovers",
           "tool_versions"]


def build_root(build_dir: str | os.PathLike | None = None) -> Path:
    """Where builds are cached: ``build_dir``, else ``$SWATKIT_BUILD_DIR``, else
    ``$XDG_CACHE_HOME/swatkit/verilator`` (``~/.cache/swatkit/verilator``)."""
    if build_dir:
        return Path(build_dir).expanduser().resolve()
    if os.environ.get("SWATKIT_BUILD_DIR"):
        return Path(os.environ["SWATKIT_BUILD_DIR"]).expanduser().resolve()
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "swatkit" / "verilator"


@dataclass(frozen=True)
class BuildInfo:
    """A compiled build: its folder, its hash and whether this call compiled it."""

    path: Path
    key: str
    built: bool
    seconds: float


@contextlib.contextmanager
def locked(path: Path):
    """An exclusive lock file, so that parallel workers build a configuration once."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def tool_versions() -> str:
    import cocotb

    from swatkit.support.toolchain import find_verilator

    v = find_verilator()
    return f"cocotb {cocotb.__version__}; verilator {v.version} at {v.executable}"


def remove_leftovers(root: Path) -> list[str]:
    """Remove what interrupted builds of any key left in ``root`` (``<key>.tmp-<nonce>``
    folders: a build killed with SIGKILL, or a machine that went down, cannot clean up after
    itself) and return their names. A folder is a leftover when no process holds its key's
    lock: every build of a key holds it while its folder exists (:func:`cached_build`)."""
    removed = []
    for tmp in sorted(root.glob("*.tmp-*")):
        key = tmp.name.split(".tmp-", 1)[0]
        with open(root / f"{key}.lock", "a") as fh:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:   # its build is running (perhaps this process's own)
                continue
            try:
                shutil.rmtree(tmp, ignore_errors=True)
                removed.append(tmp.name)
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)
    return removed


def cached_build(root: Path, key: str, top: str, make) -> BuildInfo:
    """The build ``<root>/<key>``, made by ``make(path)`` unless a finished one is there (its
    ``build.ok`` stamp and the ``top`` executable); ``make`` returns what the stamp records
    beside the key and the seconds. Callers of one key, in one process or several, build it
    once: the first holds a lock file (``<key>.lock``) while it builds, the others wait for
    it. The build is made in a folder of its own (``<key>.tmp-<nonce>``) and renamed to
    ``<key>`` when it is complete, so a finished build is never changed in place, and what
    an interrupted build (or a compiler that outlived it) leaves behind is never taken for a
    build; such leftovers are removed by the next build of any key (:func:`remove_leftovers`)."""
    root.mkdir(parents=True, exist_ok=True)
    path = root / key
    with locked(root / f"{key}.lock"):
        stamp = path / "build.ok"
        if stamp.is_file() and (path / top).is_file():
            return BuildInfo(path, key, False, 0.0)
        for old in [path, *root.glob(f"{key}.tmp-*")]:   # (this key's: its lock is ours)
            shutil.rmtree(old, ignore_errors=True)
        remove_leftovers(root)   # (the other keys' whose lock nobody holds)
        tmp = root / f"{key}.tmp-{secrets.token_hex(4)}"
        start = time.monotonic()
        try:
            record = make(tmp)
            seconds = time.monotonic() - start
            (tmp / "build.ok").write_text(json.dumps(
                {"key": key, **record, "seconds": round(seconds, 1)}, indent=2) + "\n")
            os.rename(tmp, path)
            # one line per build made (builds.log): what a run of the suite compiled
            with open(root / "builds.log", "a") as fh:
                fh.write(json.dumps({"key": key, "top": top, "build": record.get("build"),
                                     "seconds": round(seconds, 1),
                                     "finished": time.strftime("%Y-%m-%dT%H:%M:%S")}) + "\n")
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return BuildInfo(path, key, True, seconds)


