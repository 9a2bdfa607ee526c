"""Open-toolchain FPGA flows: board targets, the on-board self-test, build projects and reports.

* :mod:`~swatkit.support.boards` — the boards (``amaranth-boards`` platforms) and the default
  configuration that fits each.
* :mod:`~swatkit.fpga_flows.selftest` — the self-test top: a SWAT core fed from ROM (vectors and
  golden output) or from on-chip LFSRs (the output's CRC-32 against the golden one), a checker,
  pass/fail LEDs and a result line over the UART; its simulation in Amaranth's simulator or in
  Verilator (:mod:`~swatkit.fpga_flows.cocotb_selftest` is that bench).
* :mod:`~swatkit.fpga_flows.flow` — build projects (Amaranth build plans), runs with the YoWASP
  tools, Fmax and utilisation reports, sweeps. ``swatkit flow`` is its command line.
* :mod:`~swatkit.fpga_flows.abc9` — Yosys 0.70's ABC9 abort on Amaranth's field names: the
  renaming the ECP5 scripts run to avoid it, and how a build log shows it (the classic-ABC
  fallback).
* :mod:`~swatkit.fpga_flows.report` — a ``flow.json`` read back with every record checked
  (``swatkit estimate --from-flow``, ``swatkit explore --flows``).
* :mod:`~swatkit.fpga_flows.explore` — the design-space exploration of ``swatkit explore``: a
  resource model calibrated on these builds (``calibration/BOARD.json``) and the Pareto front.

``docs/fpga.md`` has the measured figures and the commands that produced them.
"""

from swatkit.support.boards import BOARDS, Board, get_board

from .flow import DoesNotFitError, FlowConfig, FlowError, collect, emit, run, sweep
from .selftest import (
    BoardTop,
    SelfTest,
    Vectors,
    make_lfsr_vectors,
    make_vectors,
    simulate,
    simulate_verilator,
)

__all__ = [
    "BOARDS",
    "Board",
    "BoardTop",
    "DoesNotFitError",
    "FlowConfig",
    "FlowError",
    "SelfTest",
    "Vectors",
    "collect",
    "emit",
    "get_board",
    "make_lfsr_vectors",
    "make_vectors",
    "run",
    "simulate",
    "simulate_verilator",
    "sweep",
]
