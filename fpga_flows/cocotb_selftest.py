"""cocotb bench of the board self-test's Verilog (:class:`~swatkit.fpga_flows.selftest.SelfTest`).

Run by :func:`swatkit.fpga_flows.selftest.simulate_verilator` through ``cocotb_tools.runner``
(not imported by anything else). ``$SWATKIT_SELFTEST`` names a JSON file with the cycle limit,
the UART divisor, the cycles of the result line and where to write the result.

Python does not take part in the cycles: the clock is generated in Verilog by the simulated top
(``sim.regress.clocked_top``), the self-test generates (LFSR mode) or reads (ROM mode) its own
inputs and checks its own output. The bench waits for ``passed`` or ``failed`` to rise (one
simulator callback; a timer ends a run that never reports), then for the result line, whose
changes of the UART line it records as they happen (a few hundred callbacks), and reads the
status outputs.
"""

from __future__ import annotations

import json
import os
import time

import cocotb
from cocotb.triggers import First, RisingEdge, Timer
from cocotb.utils import get_sim_time

from swatkit.fpga_flows.selftest import STATUS_NAMES, decode_uart
from swatkit.sim.clock import PERIOD_NS  # the clock the simulated top generates

__all__ = ["uart_samples"]

FIRST_EDGE_NS = PERIOD_NS // 2   # the top's clock rises at PERIOD/2, then every PERIOD


def uart_samples(changes: list[tuple[int, int]], end_cycle: int) -> list[int]:
    """The line once per cycle (its value after each rising edge, as Amaranth's simulator
    samples it) from the ``(cycle, value)`` changes; idle high before the first change."""
    samples, value, cycle = [], 1, 0
    for at, new in changes:
        samples.extend([value] * (at - cycle))
        value, cycle = new, at
    samples.extend([value] * (end_cycle - cycle + 1))
    return samples


@cocotb.test()
async def selftest_reports(dut):
    with open(os.environ["SWATKIT_SELFTEST"]) as fh:
        case = json.load(fh)
    dut.rst.value = 0
    dut.start.value = 0
    changes = []

    def cycle_now() -> int:  # the rising edge at or before now
        return (int(get_sim_time("ns")) - FIRST_EDGE_NS) // PERIOD_NS

    async def watch_tx():
        while True:
            await dut.tx.value_change
            changes.append((cycle_now(), int(dut.tx.value)))

    if case["uart_divisor"]:
        cocotb.start_soon(watch_tx())
    start = time.monotonic()
    fired = await First(RisingEdge(dut.status__passed), RisingEdge(dut.status__failed),
                        Timer(case["max_cycles"] * PERIOD_NS + FIRST_EDGE_NS, unit="ns"))
    result = {}
    if isinstance(fired, Timer):
        result["timeout"] = True
    else:
        await Timer(case["line_cycles"] * PERIOD_NS, unit="ns")
        status = {name: bool(int(getattr(dut, f"status__{name}").value))
                  for name in STATUS_NAMES if name != "alive"}
        line = None
        if case["uart_divisor"]:
            samples = uart_samples(changes, cycle_now())
            line = decode_uart(samples, case["uart_divisor"]).decode("ascii", errors="replace")
        result = {
            "passed": status["passed"], "failed": status["failed"], "hang": status["hang"],
            "error": status["error"], "rows": int(dut.rows.value), "bad": int(dut.bad.value),
            "first_bad": int(dut.first_bad.value), "cycles": int(dut.cycles.value),
            "crc": int(dut.crc.value) if case["mode"] != "rom" else None, "line": line,
        }
        if case["mode"] == "decode":
            result.update(pre_cycles=int(dut.pre_cycles.value),
                          dec_cycles=int(dut.dec_cycles.value))
    result["sim_cycles"] = cycle_now() + 1
    result["sim_seconds"] = time.monotonic() - start
    with open(case["result"], "w") as fh:
        json.dump(result, fh, indent=2)
