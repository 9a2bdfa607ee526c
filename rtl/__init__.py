"""Amaranth HDL for sliding-window attention: the SWAT core, its units, Verilog generation."""

from .config import CoreParams, HardwareConfig, LimitError
from .core import STAT_FIELDS, SwatCore, core_layouts, core_signature

__all__ = ["STAT_FIELDS", "CoreParams", "HardwareConfig", "LimitError", "SwatCore", "core_layouts",
           "core_signature"]
