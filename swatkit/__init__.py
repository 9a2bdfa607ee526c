"""swatkit: a toolkit for sliding-window attention accelerators.

The stages live in top-level folders of the repository and are installed as subpackages:
``swatkit.golden`` (spec, formats, NumPy models), ``swatkit.rtl`` (Amaranth units),
``swatkit.sim`` (regression, estimates), ``swatkit.fpga_flows`` (open-toolchain builds).

This front-door package stays light: importing it (which importing any stage does) loads no
stage. Beside the command line it holds :mod:`swatkit.support`, what every stage may share
(version, TOML text, the bounded file reader, processes, the Verilator finder and build cache,
progress lines): one floor below every stage, importing none of them.
"""

import os as _os

from swatkit.support.version import __version__

# Run from a source checkout (the checkout on sys.path, e.g. `python -c ...` at its root), this
# folder shadows the installed package and the stage folders sit beside it rather than inside it:
# make them importable as its subpackages. An installed copy has no pyproject.toml beside it.
_root = _os.path.dirname(_os.path.dirname(_os.path.abspath(__file__)))
if _os.path.isfile(_os.path.join(_root, "pyproject.toml")) and _os.path.isdir(
        _os.path.join(_root, "golden")):
    __path__.append(_root)

__all__ = ["AttentionSpec", "NumberFormat", "__version__"]


def __getattr__(name):
    # the spec types on the front door, imported on first use so that `import swatkit` (and
    # with it every stage's import) loads no stage
    if name in ("AttentionSpec", "NumberFormat"):
        from swatkit import golden

        return getattr(golden, name)
    raise AttributeError(f"module 'swatkit' has no attribute {name!r}")
