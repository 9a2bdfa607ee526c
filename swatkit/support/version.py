"""The installed swatkit version, for every artefact that records what made it.

A leaf module: it imports nothing of swatkit, so every stage (``golden``, ``rtl``, ``sim``,
``fpga_flows``) may use it without depending on another stage or on the command line.
"""

from importlib.metadata import PackageNotFoundError, version

__all__ = ["__version__"]

try:
    __version__ = version("swatkit")
except PackageNotFoundError:  # pragma: no cover - a checkout that was never installed
    __version__ = "0+unknown"


def source_revision() -> str | None:
    """The git commit of the swatkit sources in use (``abc1234``, ``abc1234-dirty`` with
    uncommitted changes), or None for an installed copy that is not a git checkout; what a
    build record names so that its figures can be traced to the code that made them."""
    import subprocess
    from pathlib import Path

    here = Path(__file__).resolve().parents[2]
    if not (here / ".git").exists():
        return None
    try:
        head = subprocess.run(["git", "-C", str(here), "rev-parse", "--short=7", "HEAD"],
                              capture_output=True, text=True, timeout=10, check=True)
        dirty = subprocess.run(["git", "-C", str(here), "status", "--porcelain",
                                "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return head.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
