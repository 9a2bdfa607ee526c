"""Amaranth HDL for sliding-window attention: the SWAT core, its units, Verilog generation.

The configuration (:class:`CoreParams`) loads without Amaranth; the core's names
(:class:`SwatCore`, :func:`core_layouts`, …) load it on first use, so that a process that only
needs the configuration (the regression's bench in the simulator) does not import it.
"""

from .config import CoreParams, HardwareConfig, LimitError

__all__ = ["STAT_FIELDS", "CoreParams", "HardwareConfig", "LimitError", "SwatCore", "core_layouts",
           "core_signature"]

_CORE_NAMES = ("STAT_FIELDS", "SwatCore", "core_layouts", "core_signature")


def __getattr__(name: str):
    if name in _CORE_NAMES:
        from . import core

        return getattr(core, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
