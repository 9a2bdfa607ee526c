"""swatkit: a toolkit for sliding-window attention accelerators.

The stages live in top-level folders of the repository and are installed as subpackages:
``swatkit.golden`` (spec, formats, NumPy models), ``swatkit.rtl`` (Amaranth units),
``swatkit.sim`` (regression, estimates), ``swatkit.fpga_flows`` (open-toolchain builds).
"""

import os as _os
from importlib.metadata import PackageNotFoundError as _NotFound
from importlib.metadata import version as _version

# Run from a source checkout (the checkout on sys.path, e.g. `python -c ...` at its root), this
# folder shadows the installed package and the stage folders sit beside it rather than inside it:
# make them importable as its subpackages. An installed copy has no pyproject.toml beside it.
_root = _os.path.dirname(_os.path.dirname(_os.path.abspath(__file__)))
if _os.path.isfile(_os.path.join(_root, "pyproject.toml")) and _os.path.isdir(
        _os.path.join(_root, "golden")):
    __path__.append(_root)

try:
    __version__ = _version("swatkit")
except _NotFound:  # pragma: no cover - running from a checkout that was never installed
    __version__ = "0+unknown"

from swatkit.golden import AttentionSpec, NumberFormat  # noqa: E402

__all__ = ["AttentionSpec", "NumberFormat", "__version__"]
