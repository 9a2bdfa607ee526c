"""Moved to :mod:`swatkit.toolchain` (every stage may use it). This re-export keeps the
importers that still name ``swatkit.sim.toolchain`` working; new code imports
``swatkit.toolchain``."""

from swatkit.toolchain import (
    MIN_VERILATOR,
    ToolchainError,
    Verilator,
    find_verilator,
    use_verilator,
)

__all__ = ["MIN_VERILATOR", "ToolchainError", "Verilator", "find_verilator", "use_verilator"]
