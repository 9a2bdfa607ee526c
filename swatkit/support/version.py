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
