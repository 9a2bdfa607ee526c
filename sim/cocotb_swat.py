"""cocotb bench of the generated SwatCore Verilog in its HDL harness (:mod:`swatkit.rtl.harness`).

Run by :func:`swatkit.sim.regress.run_case` through ``cocotb_tools.runner`` (not imported by
anything else). ``$SWATKIT_CASE`` names a JSON file with the configuration, the seed, the gap and
stall probabilities, the faults and the runs; the packed input rows and the expected rows
(computed by the golden model in the calling process) are in an ``.npz`` file; the outcome is
written to a JSON file for the caller.

Python does not take part in the cycles: the harness's row sources feed Q and K/V under
LFSR-driven valid gaps, its sink takes the output rows under LFSR-driven ready stalls and checks
that an offered row stays offered and unchanged until taken. This bench loads every run's rows into
the source memories, starts the harness, issues one command per run and waits (on ``busy``
falling, a single simulator callback) for its end, then reads the output memory and compares
every row with the golden model at once. The clock is generated in Verilog by the simulated
top (``sim.regress.clocked_top``): no Python, and no VPI call, per edge.

Checks, all reported in the result:

* every output row equals the golden model's row (first mismatch: run, row, column, expected,
  got), no row is missing or extra;
* the output holds an offered row, unchanged, until it is taken (the sink's ``violation``);
* nothing is taken without ``valid`` (a source offers the complement of its row while ``valid``
  is low, and the core's ``q_rows``/``kv_rows`` must equal the rows the sources sent);
* the counters: ``stats.cycles`` equals the harness's count of cycles with ``busy`` high (and, on
  a stall-free run, the figure of the cycle model); ``q_rows``, ``kv_rows`` and ``rows_out``
  equal N; ``qk_macs`` and ``sv_macs`` equal pairs · head_dim and ``exp_ops`` the pairs;
* a command of N = 0 (and N = max_seq_len + 1 where it fits) sets ``error`` and starts nothing;
* faults: a synchronous reset in the middle of a run (rows in flight and in the output FIFO),
  after which a clean run must pass; the output's ready held low, or an input stream held idle,
  for a fixed number of cycles.
"""

from __future__ import annotations

import json
import logging
import os
import time

import cocotb
import numpy as np
from cocotb.triggers import FallingEdge, First, ReadOnly, RisingEdge, Timer

from swatkit.rtl import STAT_FIELDS, core_layouts
from swatkit.rtl.core import command_value
from swatkit.rtl.harness import probability_threshold, unpack_rows
from swatkit.sim.regress import PERIOD_NS  # the clock the simulated top generates

__all__ = ["HarnessBench"]



def _params(case: dict):
    from swatkit.golden import AttentionSpec, NumberFormat
    from swatkit.rtl import CoreParams, HardwareConfig

    p = case["params"]
    spec = p["spec"]
    return CoreParams(AttentionSpec(**{**spec, "global_tokens": tuple(spec["global_tokens"])}),
                      NumberFormat(**p["format"]), HardwareConfig(**p["hardware"]))


class HarnessBench:
    """The harness with its core; loads rows, issues runs, reads and checks the output."""

    def __init__(self, dut, case: dict, arrays):
        self.dut, self.case, self.arrays = dut, case, arrays
        self.params = _params(case)
        self.layouts = core_layouts(self.params)
        self.log = logging.getLogger("cocotb.swat")
        self.errors: list[str] = []
        self.runs: list[dict] = []
        self.rows = 0
        self.sim_seconds = 0.0
        self.sim_cycles = 0

    def error(self, text: str):
        self.log.error(text)
        self.errors.append(text)

    async def cycles(self, n: int):
        """Let ``n`` clock cycles pass without waking Python on each."""
        if n > 0:
            await Timer(n * PERIOD_NS, unit="ns")

    async def reset(self):
        dut = self.dut
        for name in ("start", "q_hold", "kv_hold", "o_hold", "cmd__valid"):
            getattr(dut, name).value = 0
        dut.rst.value = 1
        await self.cycles(3)
        await FallingEdge(dut.clk)
        dut.rst.value = 0

    def load(self):
        """Every run's Q and K/V rows, one after another, into the source memories."""
        harness = self.dut.harness
        qmem, kvmem = harness.q_src.tb_q_rows, harness.kv_src.tb_kv_rows
        for name, mem in (("q", qmem), ("kv", kvmem)):
            words = self.arrays[f"{name}_words"]
            for i, word in enumerate(words):
                mem[i].value = int.from_bytes(word.tobytes(), "little")

    async def start(self, rows: int):
        """Sources back to row 0 with ``rows`` rows each; gaps, stalls and seeds applied."""
        dut, case = self.dut, self.case
        (q_gap, kv_gap), stall = case["gaps"], case["stall"]
        await FallingEdge(dut.clk)
        dut.q_count.value = rows
        dut.kv_count.value = rows
        dut.q_gap.value = probability_threshold(q_gap)
        dut.kv_gap.value = probability_threshold(kv_gap)
        dut.o_stall.value = probability_threshold(stall)
        dut.seed.value = case["seed"] & 0xFFFFFFFF
        dut.start.value = 1
        await FallingEdge(dut.clk)
        dut.start.value = 0

    async def command(self, n: int):
        """Offer ``{seq_len: n}`` until the core takes it; returns just after the transfer."""
        dut = self.dut
        await FallingEdge(dut.clk)
        dut.cmd__payload.value = command_value(self.params, seq_len=n)
        dut.cmd__valid.value = 1
        while True:
            await ReadOnly()
            taken = bool(dut.cmd__ready.value)
            await RisingEdge(dut.clk)
            if taken:
                break
        await FallingEdge(dut.clk)
        dut.cmd__valid.value = 0

    def stats(self) -> dict:
        value = self.layouts["stats"].from_bits(self.dut.stats.value.to_unsigned())
        return {name: int(getattr(value, name)) for name in STAT_FIELDS}

    async def check_bad_commands(self):
        """N = 0, and N = max_seq_len + 1 where the command field can hold it, set ``error``
        and start nothing."""
        bad = [0]
        if self.params.hw.max_seq_len + 1 < 2 ** self.params.index_bits:
            bad.append(self.params.hw.max_seq_len + 1)
        for n in bad:
            await self.command(n)
            await ReadOnly()
            if not self.dut.error.value or self.dut.busy.value:
                self.error(f"command seq_len={n}: expected error=1, busy=0; got "
                           f"error={int(self.dut.error.value)}, busy={int(self.dut.busy.value)}")

    async def hold(self, signal: str, at: int, length: int):
        """Raise ``signal`` (``o_hold``, ``q_hold``, ``kv_hold``) ``at`` cycles from now for
        ``length`` cycles."""
        await self.cycles(at)
        await FallingEdge(self.dut.clk)
        getattr(self.dut, signal).value = 1
        await self.cycles(length)
        await FallingEdge(self.dut.clk)
        getattr(self.dut, signal).value = 0

    def timeout_cycles(self, n: int) -> int:
        """A bound no healthy run reaches: every row's full walk, slowed by the gaps and stalls,
        and the longest hold, with a wide margin."""
        p = self.params
        per_row = (p.rounds + 1) * p.groups + p.spec.after * p.groups + 40
        (q_gap, kv_gap), stall = self.case["gaps"], self.case["stall"]
        slow = 1 / ((1 - q_gap) * (1 - kv_gap) * (1 - stall))
        holds = sum(f[1] for f in self.case.get("holds", {}).values())
        return int(4 * n * per_row * slow) + holds + 10_000

    async def wait_run(self, n: int, label: str) -> bool:
        """Until ``busy`` falls (True) or the timeout (False)."""
        dut = self.dut
        if not dut.busy.value:
            await RisingEdge(dut.busy)
        limit = self.timeout_cycles(n)
        fired = await First(FallingEdge(dut.busy), Timer(limit * PERIOD_NS, unit="ns"))
        if not isinstance(fired, FallingEdge):
            self.error(f"{label}: timeout: the run did not end within {limit} cycles "
                       f"({int(dut.o_rows.value)} output rows, {int(dut.q_sent.value)} Q and "
                       f"{int(dut.kv_sent.value)} K/V rows taken)")
            return False
        await ReadOnly()
        return True

    async def interrupted_run(self, n: int, after: int):
        """A run of ``n`` rows reset ``after`` cycles in; the harness restarts afterwards."""
        await self.start(n)
        await self.command(n)
        await self.cycles(after)
        await FallingEdge(self.dut.clk)
        if not self.dut.busy.value:
            self.error(f"reset fault: the run of {n} rows was over before the reset at cycle "
                       f"{after}; nothing was interrupted")
        self.interrupted = {"seq_len": n, "after": after,
                            "rows_out_before_reset": int(self.dut.o_rows.value)}
        await self.reset()
        if self.dut.busy.value:
            self.error("reset fault: busy is still high after the reset")

    async def run_all(self):
        dut, case, p = self.dut, self.case, self.params
        runs = case["runs"]
        total = sum(r["seq_len"] for r in runs)
        fault = case.get("reset_after")
        self.interrupted = None
        if fault is not None:
            await self.interrupted_run(runs[0]["seq_len"], fault)
        await self.start(total)
        holds = [cocotb.start_soon(self.hold(sig, at, length))
                 for sig, (at, length) in case.get("holds", {}).items()]
        idle_choices = case.get("idle", [0])
        base = 0
        for index, run in enumerate(runs):
            n = run["seq_len"]
            label = f"run {index} (N={n})"
            await self.command(n)
            busy_before = int(dut.busy_cycles.value)
            ok = await self.wait_run(n, label)
            stats = self.stats()
            got_rows = int(dut.o_rows.value) - base
            monitor = int(dut.busy_cycles.value) - busy_before
            record = {"seq_len": n, "stats": stats, "monitor_cycles": monitor,
                      "ideal": run["ideal"], "rows": 0, "bad_rows": 0, "base": base}
            self.runs.append(record)
            if not ok:
                break
            want = {"cycles": monitor, "q_rows": n, "kv_rows": n, "rows_out": n,
                    "qk_macs": run["pairs"] * p.spec.head_dim,
                    "sv_macs": run["pairs"] * p.spec.head_dim, "exp_ops": run["pairs"]}
            for name, value in want.items():
                if stats[name] != value:
                    self.error(f"{label}: stats.{name} is {stats[name]}, expected {value}")
            model = run.get("model_cycles")
            if model is not None and stats["cycles"] != model:
                self.error(f"{label}: stats.cycles is {stats['cycles']}, but the cycle model "
                           f"(sim/cycle_model.py) gives {model} for this stall-free run")
            if got_rows != n:
                self.error(f"{label}: {got_rows} output rows at the end of the run, expected {n}")
            for name in ("q_sent", "kv_sent"):
                if int(getattr(dut, name).value) != base + n:
                    self.error(f"{label}: the {name[:-5]} source sent "
                               f"{int(getattr(dut, name).value) - base} rows, expected {n}")
            if dut.error.value:
                self.error(f"{label}: error is set after a valid command")
            base += n
            if index + 1 < len(runs):
                await self.cycles(idle_choices[index % len(idle_choices)])
        for task in holds:
            task.cancel()
        # after the last run: long enough for a stray row to show
        await self.cycles(p.groups + 40)
        await ReadOnly()
        if int(dut.o_rows.value) != base and len(self.runs) == len(runs):
            self.error(f"{int(dut.o_rows.value) - base} extra output rows after the last run")
        if dut.violation.value:
            self.error(f"cycle {int(dut.violation_cycle.value)}: an offered output row was "
                       "withdrawn or changed before it was taken")
        self.compare(min(int(dut.o_rows.value), self.case["depth"]))
        self.sim_cycles = int(dut.cycles.value)

    def compare(self, rows: int):
        """Read the output memory and compare it with the expected rows of every run."""
        mem = self.dut.harness.o_sink.tb_o_rows
        nbytes = (self.layouts["o"].size + 7) // 8
        raw = np.zeros((rows, nbytes), dtype=np.uint8)
        for i in range(rows):
            value = mem[i].value.to_unsigned()
            raw[i] = np.frombuffer(value.to_bytes(nbytes, "little"), dtype=np.uint8)
        d = self.params.spec.head_dim
        got = unpack_rows(raw, d, self.params.fmt.out_bits)
        first = None
        for index, record in enumerate(self.runs):
            expected = self.arrays[f"expected{index}"]
            base, n = record["base"], record["seq_len"]
            mine = got[base:base + n]
            checked = min(len(mine), n)
            diff = np.nonzero(mine[:checked] != expected[:checked])
            bad_rows = np.unique(diff[0])
            record["rows"], record["bad_rows"] = checked, int(bad_rows.size)
            self.rows += checked
            if bad_rows.size and first is None:
                r = int(diff[0][0])
                c = int(diff[1][0])
                first = (f"run {index} (N={n}): mismatch at row {r}, column {c}: expected "
                         f"{int(expected[r, c])}, got {int(mine[r, c])} (expected row "
                         f"{expected[r].tolist()}, got {mine[r].tolist()}); "
                         f"rows that differ: {bad_rows.size}")
        if first is not None:
            self.errors.insert(0, first)  # the first mismatch first: usually the cause
            self.log.error(first)

    def write_result(self):
        errors = self.errors
        result = {"case": self.case["case"], "seed": self.case["seed"], "passed": not errors,
                  "rows": self.rows, "runs": self.runs, "interrupted": self.interrupted,
                  "sim_cycles": self.sim_cycles, "sim_seconds": self.sim_seconds,
                  "message": errors[0] if errors else "", "errors": errors[:20]}
        with open(self.case["result"], "w") as fh:
            json.dump(result, fh, indent=2)
        return result


@cocotb.test()
async def swat_core_matches_golden_model(dut):
    """Every run of the case through the HDL harness; every O row against the golden model."""
    with open(os.environ["SWATKIT_CASE"]) as fh:
        case = json.load(fh)
    arrays = np.load(case["inputs"])
    bench = HarnessBench(dut, case, arrays)
    bench.log.info("case %s, seed %d: %s", case["case"], case["seed"], case["config"])
    started = time.perf_counter()
    try:
        bench.load()
        await bench.reset()
        await bench.check_bad_commands()
        await bench.run_all()
    except Exception as e:
        bench.error(f"the bench raised {type(e).__name__}: {e}")
        raise
    finally:
        bench.sim_seconds = time.perf_counter() - started
        result = bench.write_result()
    await Timer(PERIOD_NS, unit="ns")
    assert result["passed"], result["message"]
