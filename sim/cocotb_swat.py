"""cocotb bench of the generated SwatCore Verilog in its HDL harness (:mod:`swatkit.rtl.harness`).

Run by :func:`swatkit.sim.regress.run_case` and :func:`~swatkit.sim.regress.run_cases` through
``cocotb_tools.runner`` (not imported by anything else). ``$SWATKIT_CASE`` names a JSON file with
the configuration, the seed, the gap and stall probabilities, the faults and the runs
(``$SWATKIT_CASES``: a list of such files, the cases of one build, run one after another:
:func:`case_files`); the packed input rows and the expected rows (computed by the golden model in
the calling process) are in an ``.npz`` file; the outcome of each case is written to its own JSON
file for the caller. The bench does not import Amaranth (a simulator's start-up is most of a small
case's time): what it needs of the core's layouts is in the case file (``words``, ``refused``).

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
* no command is taken while ``busy`` (the harness's ``cmd_busy``);
* ``rule_error`` stays 0 (the sources keep the stream rule) and is 0 after each reset; in the
  fault case that drops K/V ``valid`` mid-row (``Case.drop_valid``) it must be 1, with the
  rows the core took then (one K/V transfer fewer) checked against the golden model;
* liveness: a run that moves no output row for longer than a bound no healthy run reaches
  (:meth:`HarnessBench.liveness_cycles`) fails at once, with the cycle each stream and the
  command last moved and what each stream offers now (:meth:`HarnessBench.stream_report`);
* faults (docs/verification.md, "Faults"): synchronous resets placed by cycle, on the command's
  transfer or on a stream's transfer cycle, of one or more cycles, one after another (each
  after an attempt at the first run), after which every run must pass; any stream's ready or
  valid held low for a fixed number of cycles; per-stream gaps and bursty on/off back-pressure;
  each next command offered while a run is in progress.
"""

from __future__ import annotations

import json
import logging
import os
import time

import cocotb
import numpy as np
from cocotb.triggers import FallingEdge, First, ReadOnly, RisingEdge, Timer

from swatkit.rtl.config import CoreParams
from swatkit.rtl.controls import STREAMS, burst_threshold, probability_threshold, unpack_rows
from swatkit.sim.clock import PERIOD_NS  # the clock the simulated top generates

__all__ = ["BenchStuckError", "HarnessBench"]


class BenchStuckError(Exception):
    """The core stopped answering the bench (a command not taken within a bound no healthy
    core reaches): the case fails with the message, instead of waiting for ever."""

ROLES = dict(STREAMS)   # each stream of the harness: "src" (feeds the core) or "sink"



def _params(case: dict) -> CoreParams:
    return CoreParams.from_dict(case["params"])


class HarnessBench:
    """The harness with its core; loads rows, issues runs, reads and checks the output."""

    def __init__(self, dut, case: dict, arrays):
        self.dut, self.case, self.arrays = dut, case, arrays
        self.params = _params(case)
        self.words = case["words"]   # the payload layouts the bench reads (the case file's)
        self.log = logging.getLogger("cocotb.swat")
        self.errors: list[str] = []
        self.runs: list[dict] = []
        self.rows = 0
        self.sim_seconds = 0.0
        self.sim_cycles = 0
        self.first = ""   # the first mismatch
        self.first_output_row = None   # its place in the output stream (not a global row)
        self.faults: list[dict] = []   # what each reset fault hit
        self.streams = list(case["streams"])   # the harness's streams (q, kv, o, ...)
        self.idle_at = 0   # ``cycles`` in the first idle cycle after the last run

    def error(self, text: str):
        self.log.error(text)
        self.errors.append(text)

    async def cycles(self, n: int):
        """Let ``n`` clock cycles pass without waking Python on each."""
        if n > 0:
            await Timer(n * PERIOD_NS, unit="ns")

    async def waves(self, rows: bool):
        """Raise the traced top's ``waves_on`` (:func:`swatkit.sim.regress.gated_main`: the
        trace records while it is high) for the case's waves window: ``cycles`` from the
        start of the simulation (``rows=False``: called at once), ``rows`` of the output
        stream (``rows=True``: called when the runs start; ``o_rows`` counts the rows taken).
        No window: the whole simulation."""
        waves = self.case.get("waves")
        window = waves and waves["window"]
        if waves is None or (window is None and rows) or (
                window is not None and (window[0] == "rows") != rows):
            return
        dut = self.dut
        if window is None:
            dut.waves_on.value = 1
            return
        _, start, stop = window
        if not rows:
            await self.cycles(start)
            dut.waves_on.value = 1
            if stop is not None:
                await self.cycles(stop - start)
                dut.waves_on.value = 0
            return
        # from the cycle output row start-1 is taken to the cycle row stop-1 is taken (and one
        # cycle more, so that the transfer shows)
        while int(dut.o_rows.value) < start:
            await dut.o_rows.value_change
        await FallingEdge(dut.clk)   # (the change is seen read-only: drive on the next edge)
        dut.waves_on.value = 1
        if stop is not None:
            while int(dut.o_rows.value) < stop:
                await dut.o_rows.value_change
            await self.cycles(2)
            await FallingEdge(dut.clk)
            dut.waves_on.value = 0

    async def reset(self, cycles: int = 3):
        """Drive ``rst`` high from now (a falling edge, or before the clock starts) for
        ``cycles`` rising edges; the command, the holds and ``start`` low."""
        dut = self.dut
        for name in ("start", "cmd__valid", *(f"{s}_hold" for s in self.streams)):
            getattr(dut, name).value = 0
        dut.rst.value = 1
        for _ in range(cycles):
            await RisingEdge(dut.clk)
        await FallingEdge(dut.clk)
        dut.rst.value = 0

    @staticmethod
    def write_memory(mem, words):
        mem = mem.rows   # a swat_rows_mem instance's array (rtl/harness.py)
        for i, word in enumerate(words):
            mem[i].value = int.from_bytes(word.tobytes(), "little")

    def read_memory(self, mem, rows: int, layout: str):
        nbytes = (self.words[f"{layout}_bits"] + 7) // 8
        raw = np.zeros((rows, nbytes), dtype=np.uint8)
        mem = mem.rows   # as write_memory's
        for i in range(rows):
            value = mem[i].value.to_unsigned()
            raw[i] = np.frombuffer(value.to_bytes(nbytes, "little"), dtype=np.uint8)
        return unpack_rows(raw, self.params.spec.head_dim, self.params.fmt.out_bits)

    def load(self):
        """Every run's Q and K/V rows (each run's global columns before its rows), one after
        another, into the source memories."""
        harness = self.dut.harness
        self.write_memory(harness.q_src.tb_q_rows, self.arrays["q_words"])
        self.write_memory(harness.kv_src.tb_kv_rows, self.arrays["kv_words"])

    async def start_globals(self, index: int):
        """Run ``index``'s global rows into the global-row streams' memories (q_g of its
        global tokens; k_g, v_g of every row, sent twice per run); their sources and
        sink back to row 0."""
        run = self.case["runs"][index]
        count = run["globals"]
        if not count:
            return
        dut, harness = self.dut, self.dut.harness
        await FallingEdge(dut.clk)
        if self.params.max_random_blocks:   # the run's random blocks' K/V rows
            self.write_memory(harness.kvr_src.tb_kvr_rows, self.arrays[f"kvr{index}"])
            dut.kvr_count.value = run["random"]
        self.write_memory(harness.qg_src.tb_qg_rows, self.arrays[f"qg{index}"])
        self.write_memory(harness.kvg_src.tb_kvg_rows, self.arrays[f"kvg{index}"])
        dut.qg_count.value = count
        dut.kvg_count.value = run["seq_len"]
        dut.kvg_passes.value = 2
        dut.g_start.value = 1
        await FallingEdge(dut.clk)
        dut.g_start.value = 0

    async def start(self, q_rows: int, kv_rows: int):
        """Sources back to row 0 with ``q_rows`` Q and ``kv_rows`` K/V rows; gaps, stalls and
        seeds applied."""
        dut, case = self.dut, self.case
        await FallingEdge(dut.clk)
        dut.q_count.value = q_rows
        dut.kv_count.value = kv_rows
        for name, control in case["streams"].items():   # each stream's gap/stall and bursts
            threshold = probability_threshold(control["gap"])
            kind = "stall" if ROLES[name] == "sink" else "gap"
            getattr(dut, f"{name}_{kind}").value = threshold
            burst = control["burst"]
            getattr(dut, f"{name}_burst").value = burst_threshold(burst) if burst else 0
        dut.seed.value = case["seed"] & 0xFFFFFFFF
        drop = case.get("drop_valid")   # (a producer that drops valid mid-row, once)
        dut.kv_drop.value, dut.kv_drop_row.value = drop is not None, drop or 0
        dut.start.value = 1
        await FallingEdge(dut.clk)
        dut.start.value = 0

    def command_bound(self) -> int:
        """Cycles a command may wait to be taken: the longest run's :meth:`timeout_cycles` (a
        command offered during a run waits for its end)."""
        return max(self.timeout_cycles(r["seq_len"], r["globals"]) for r in self.case["runs"])

    async def command(self, value: int):
        """Offer the command ``value`` (its payload bits) until the core takes it; returns just
        after the transfer. Raises :class:`BenchStuckError` when the core has not taken it within
        :meth:`command_bound` cycles."""
        dut, bound = self.dut, self.command_bound()
        await FallingEdge(dut.clk)
        dut.cmd__payload.value = value
        dut.cmd__valid.value = 1
        for _ in range(bound):
            await ReadOnly()
            taken = bool(dut.cmd__ready.value)
            await RisingEdge(dut.clk)
            if taken:
                break
        else:
            raise BenchStuckError(f"the core did not take the command {value:#x} within {bound} "
                             f"cycles (busy {int(dut.busy.value)}, error "
                             f"{int(dut.error.value)}); {self.stream_report()}")
        await FallingEdge(dut.clk)
        dut.cmd__valid.value = 0

    def stats(self) -> dict:
        bits = self.dut.stats.value.to_unsigned()
        return {name: (bits >> offset) & ((1 << width) - 1)
                for name, offset, width in self.words["stats"]}

    async def check_bad_commands(self):
        """Every command the core must refuse (the case file's ``refused``:
        :func:`swatkit.rtl.core.refused_commands`) sets ``error`` and starts nothing."""
        for what, payload in self.case["refused"].items():
            await self.command(payload)
            await ReadOnly()
            if not self.dut.error.value or self.dut.busy.value:
                self.error(f"command {what}: expected error=1, busy=0; got "
                           f"error={int(self.dut.error.value)}, busy={int(self.dut.busy.value)}")

    async def hold(self, signal: str, at: int, length: int):
        """Raise ``signal`` (a ``<stream>_hold``) ``at`` cycles from now for ``length``
        cycles."""
        await self.cycles(at)
        await FallingEdge(self.dut.clk)
        getattr(self.dut, signal).value = 1
        await self.cycles(length)
        await FallingEdge(self.dut.clk)
        getattr(self.dut, signal).value = 0

    def _slowdown(self) -> tuple[float, int]:
        """How much the case's gaps, stalls and bursts can slow a run: a factor (every
        stream's gaps and stalls, and 2 for each bursty stream, whose off runs take half the
        time) and a sum of cycles (every hold, and 20 mean off runs of each bursty stream: a
        longer one has probability e^-20)."""
        factor, extra = 1.0, sum(f[1] for f in self.case.get("holds", {}).values())
        extra += max((r.get("late_kv", 0) for r in self.case["runs"]), default=0)
        for control in self.case["streams"].values():
            factor /= 1 - control["gap"]
            if control["burst"]:
                factor *= 2
                extra += 20 * control["burst"]
        return factor, extra

    def _work(self, rows: int, n: int, count: int) -> int:
        """Ideal-ish cycles of ``rows`` rows' full walk in a run of ``n`` rows with ``count``
        global rows, with the global-row engine's two passes (each key once per global row),
        its read-out and the random blocks' rows, and slack per row."""
        p = self.params
        per_row = (p.rounds + 1) * p.groups + p.spec.after * p.groups + 40
        glob = 2 * count * n * p.groups + count * (p.groups + 101) + p.random_rows * n
        return rows * per_row + glob

    def timeout_cycles(self, n: int, count: int = 0) -> int:
        """A bound no healthy run reaches: every row's full walk, slowed by the gaps, stalls,
        bursts and holds, with a wide margin."""
        factor, extra = self._slowdown()
        return int(4 * self._work(n, n, count) * factor) + extra + 10_000

    def liveness_cycles(self, n: int, count: int = 0) -> int:
        """A bound no healthy run reaches between two output rows (on ``o`` or ``og``), from
        the command to the first, or from the last to the run's end: the walk of the rows of
        a window (``after`` + 4, and the global columns that come first), the global-row
        engine's work (its rows come out at its end), slowed as :meth:`timeout_cycles`."""
        factor, extra = self._slowdown()
        rows = self.params.spec.after + 4 + count
        return min(int(4 * self._work(rows, n, count) * factor) + extra + 2_000,
                   self.timeout_cycles(n, count))

    def stream_report(self) -> str:
        """The cycle each stream and the command last moved a beat, and what each offers now:
        ``q last moved at cycle 812 (now valid 1, ready 0; q_hold high)``, …"""
        dut, parts = self.dut, []
        for name in ("cmd", *self.streams):
            moved, flow = int(getattr(dut, f"{name}_moved").value), int(
                getattr(dut, f"{name}_flow").value)
            held = [] if name == "cmd" or not getattr(dut, f"{name}_hold").value \
                else [f"{name}_hold high"]
            parts.append(f"{name} last moved at cycle {moved} (now valid {flow & 1}, ready "
                         f"{flow >> 1}{'; ' + held[0] if held else ''})")
        return "; ".join(parts)

    async def wait_run(self, n: int, label: str, count: int = 0) -> bool:
        """Until ``busy`` falls (True), or False when the run stops making progress (no output
        row for :meth:`liveness_cycles`) or outlasts :meth:`timeout_cycles`, reported with
        :meth:`stream_report`."""
        dut = self.dut
        limit, live = self.timeout_cycles(n, count), self.liveness_cycles(n, count)
        if not dut.busy.value:
            fired = await First(RisingEdge(dut.busy), Timer(live * PERIOD_NS, unit="ns"))
            if not isinstance(fired, RisingEdge):
                self.error(f"{label}: the run did not start: busy stayed low for {live} cycles "
                           f"after its command (error {int(dut.error.value)}); "
                           f"{self.stream_report()}")
                return False
        began = int(dut.cycles.value)
        step = max(100, live // 4)   # one wake-up of Python per step
        while True:
            fired = await First(FallingEdge(dut.busy), Timer(step * PERIOD_NS, unit="ns"))
            if isinstance(fired, FallingEdge):
                break
            now = int(dut.cycles.value)
            last = max(int(dut.cmd_moved.value), *(int(getattr(dut, f"{s}_moved").value)
                                                   for s in self.streams if ROLES[s] == "sink"))
            if now - last > live:
                self.error(f"{label}: no output row for {now - last} cycles (bound {live}) at "
                           f"cycle {now}; {self.stream_report()}")
                return False
            if now - began > limit:
                self.error(f"{label}: timeout: the run did not end within {limit} cycles "
                           f"({int(dut.o_rows.value)} output rows, {int(dut.q_sent.value)} Q "
                           f"and {int(dut.kv_sent.value)} K/V rows taken); "
                           f"{self.stream_report()}")
                return False
        await ReadOnly()
        self.idle_at = int(dut.cycles.value)
        return True

    async def _reset_on(self, kind: str, at: int, cycles: int, n: int) -> str:
        """Place one reset fault on the attempt just started (see ``Case.resets``); returns
        the error text if it could not be placed, else ""."""
        dut = self.dut
        if kind == "command":   # rst high in the cycle the command is offered and taken
            await FallingEdge(dut.clk)
            dut.cmd__payload.value = self.case["runs"][0]["command"]
            dut.cmd__valid.value = 1
            dut.rst.value = 1
            self.faults[-1]["cycle"] = int(dut.cycles.value)
            await ReadOnly()
            if not dut.cmd__ready.value:
                return "the core was not ready for the command in the reset's cycle"
            await RisingEdge(dut.clk)
            await FallingEdge(dut.clk)
            dut.cmd__valid.value = 0
            if cycles > 1:
                await self.reset(cycles - 1)
            else:
                dut.rst.value = 0
            return ""
        await self.command(self.case["runs"][0]["command"])
        await self.cycles(at)
        await FallingEdge(dut.clk)
        if kind != "cycle":   # the first cycle from here on in which the stream moves a beat
            flow = getattr(dut, f"{kind[:-len('_transfer')]}_flow")
            for _ in range(self.timeout_cycles(n)):
                if int(flow.value) == 3 or not dut.busy.value:
                    break
                await FallingEdge(dut.clk)
        if not dut.busy.value:
            return (f"the run of {n} rows was over before the reset ({kind}, at {at}); nothing "
                    "was interrupted")
        record = self.faults[-1]
        record.update(cycle=int(dut.cycles.value), rows_out_before_reset=int(dut.o_rows.value))
        dut.rst.value = 1
        if kind != "cycle":
            await ReadOnly()
            if int(flow.value) != 3:
                return f"no {kind} in the reset's cycle"
            await FallingEdge(dut.clk)
            cycles -= 1
        if cycles:
            await self.reset(cycles)
        dut.rst.value = 0
        return ""

    async def reset_faults(self):
        """Each reset of the case: an attempt at the first run (its rows loaded, its command
        given), reset as ``Case.resets`` says; the core must be idle after each."""
        run = self.case["runs"][0]
        n = run["seq_len"]
        for kind, at, cycles in self.case["resets"]:
            self.faults.append({"kind": kind, "at": at, "cycles": cycles})
            await self.start(run["q_rows"], n + run["columns"])
            await self.start_globals(0)
            why = await self._reset_on(kind, at, cycles, n)
            if why:
                self.error(f"reset fault {kind} at {at}: {why}")
            await FallingEdge(self.dut.clk)
            await ReadOnly()
            if self.dut.busy.value or self.dut.error.value:
                self.error(f"reset fault {kind} at {at}: busy={int(self.dut.busy.value)}, "
                           f"error={int(self.dut.error.value)} after the reset; expected 0, 0")
            if self.dut.rule_error.value:
                self.error(f"reset fault {kind} at {at}: rule_error is set after the reset")

    async def offer_early(self, value: int, after: int):
        """Offer the command ``value`` ``after`` cycles from now, while a run is in progress,
        until the core takes it."""
        await self.cycles(after)
        await FallingEdge(self.dut.clk)
        if not self.dut.busy.value:
            self.error(f"early command: the run was over {after} cycles after its command; the "
                       "next command was not offered during it")
        await self.command(value)

    async def run_all(self):
        dut, case, p = self.dut, self.case, self.params
        runs = case["runs"]
        if case["resets"]:
            await self.reset_faults()
        window = cocotb.start_soon(self.waves(rows=True))
        await self.start(sum(r["q_rows"] for r in runs),
                         sum(r["seq_len"] + r["columns"] for r in runs))
        holds = [cocotb.start_soon(self.hold(sig, at, length))
                 for sig, (at, length) in case.get("holds", {}).items()]
        if case.get("stuck"):
            holds.append(cocotb.start_soon(self.hold(case["stuck"][0], case["stuck"][1],
                                                     1 << 40)))
        idle_choices = case.get("idle", [0])
        early = case.get("early_command")
        pending = None   # the next command, offered early
        q_base = kv_base = o_base = 0
        for index, run in enumerate(runs):
            n, count = run["seq_len"], run["globals"]
            # (Q and output rows: g per position on a grouped core)
            q_rows, o_rows = run["q_rows"], run["o_rows"]
            label = f"run {index} (N={n}, {run['pattern']})"
            await self.start_globals(index)
            if pending is None:   # (the refuse_first fault: a command the core refuses, N = 0)
                await self.command(self.case["refused"]["seq_len=0"]
                                   if index == 0 and case.get("refuse_first") else run["command"])
            else:   # taken on the first idle cycle, not before
                await pending
                if int(dut.cmd_moved.value) != self.idle_at:
                    self.error(f"{label}: its command, offered during the run before, was "
                               f"taken at cycle {int(dut.cmd_moved.value)}, expected the first "
                               f"idle cycle, {self.idle_at}")
            pending = None
            self.late_kv(index)
            if early is not None and index + 1 < len(runs):
                pending = cocotb.start_soon(self.offer_early(runs[index + 1]["command"], early))
            busy_before = int(dut.busy_cycles.value)
            ok = await self.wait_run(q_rows, label, count)
            stats = self.stats()
            got_rows = int(dut.o_rows.value) - o_base
            monitor = int(dut.busy_cycles.value) - busy_before
            record = {"seq_len": n, "pattern": run["pattern"], "stats": stats,
                      "monitor_cycles": monitor, "ideal": run["ideal"], "rows": 0,
                      "bad_rows": 0, "base": o_base, "globals": count}
            self.runs.append(record)
            if not ok:
                break
            self.check_run(index, label, stats, monitor, got_rows, q_base, kv_base)
            q_base += q_rows
            kv_base += n + run["columns"]
            o_base += o_rows
            if index + 1 < len(runs) and pending is None:
                await self.cycles(idle_choices[index % len(idle_choices)])
        for task in holds:
            task.cancel()
        window.cancel()
        if pending is not None:
            pending.cancel()
        # after the last run: long enough for a stray row to show
        await self.cycles(p.groups + 40)
        await ReadOnly()
        if int(dut.o_rows.value) != o_base and len(self.runs) == len(runs):
            self.error(f"{int(dut.o_rows.value) - o_base} extra output rows after the last run")
        if dut.violation.value:
            self.error(f"cycle {int(dut.violation_cycle.value)}: an offered output row was "
                       "withdrawn or changed before it was taken")
        if dut.cmd_busy.value:
            self.error("the core took a command while busy")
        self.compare(min(int(dut.o_rows.value), self.case["o_depth"]))
        self.sim_cycles = int(dut.cycles.value)
        if self.case.get("decode_reset") and len(self.runs) == len(runs):
            await self.continue_after_reset()

    def late_kv(self, index: int):
        """Fault (decode): run ``index``'s command was just taken. If the next run (a decode
        step) is late, the K/V stream offers nothing new from now (this run's row is on offer
        already); if this run is, the stream goes on ``late_kv`` cycles from now."""
        runs, dut = self.case["runs"], self.dut

        async def release(cycles):
            await self.cycles(cycles)
            await FallingEdge(dut.clk)
            dut.kv_hold.value = 0

        if index + 1 < len(runs) and runs[index + 1].get("late_kv"):
            dut.kv_hold.value = 1   # (now: the falling edge after the command's transfer)
        if runs[index].get("late_kv"):
            cocotb.start_soon(release(runs[index]["late_kv"]))

    async def continue_after_reset(self):
        """Fault (decode): after the last step, reset the core (with the harness), put rows on
        offer again and offer the last step's command (a continue by one row): the context is
        gone, so it must be refused — ``error`` set, never busy, no beat taken."""
        dut, last = self.dut, self.case["runs"][-1]
        await FallingEdge(dut.clk)
        await self.reset()
        await self.start(last["q_rows"], last["seq_len"])
        await self.command(last["command"])
        busy = False
        for _ in range(4 * self.params.groups + 40):
            await RisingEdge(dut.clk)
            await ReadOnly()
            busy |= bool(dut.busy.value)
        taken = {name: int(getattr(dut, f"{name}_sent").value) for name in ("q", "kv")}
        if not dut.error.value or busy or any(taken.values()):
            self.error(f"a continue after a reset: expected error=1, never busy, no row taken; "
                       f"got error={int(dut.error.value)}, busy {busy}, rows taken {taken}")

    def check_run(self, index, label, stats, monitor, got_rows, q_base, kv_base):
        """A finished run's counters, row counts, streams and error flag."""
        dut, run = self.dut, self.case["runs"][index]
        n, count = run["seq_len"], run["globals"]
        want = {"cycles": monitor, **run["actions"]}
        for name, value in want.items():
            if stats[name] != value:
                self.error(f"{label}: stats.{name} is {stats[name]}, expected {value}")
        model = run.get("model_cycles")
        if model is not None and stats["cycles"] != model:
            self.error(f"{label}: stats.cycles is {stats['cycles']}, but the cycle model "
                       f"(sim/cycle_model.py) gives {model} for this stall-free run")
        if got_rows != run["o_rows"]:   # (Q and output rows: g per position when grouped)
            self.error(f"{label}: {got_rows} output rows at the end of the run, expected "
                       f"{run['o_rows']}")
        for name, sent in (("q", q_base + run["q_rows"]),
                           ("kv", kv_base + n + run["columns"] - run.get("kv_short", 0))):
            if int(getattr(dut, f"{name}_sent").value) != sent:
                self.error(f"{label}: the {name} source sent "
                           f"{int(getattr(dut, f'{name}_sent').value)} rows, expected {sent}")
        if count:
            self.check_globals(index, label)
        if dut.error.value:
            self.error(f"{label}: error is set after a valid command")
        want = run.get("rule_error", 0)
        if int(dut.rule_error.value) != want:
            self.error(f"{label}: rule_error is {int(dut.rule_error.value)}, expected {want}"
                       + (" (a producer dropped valid mid-row)" if want else ""))
        if int(dut.kv_drop_fired.value) != ("drop_row" in run):
            self.error(f"{label}: the K/V source's drop of valid "
                       f"{'did not happen' if 'drop_row' in run else 'happened unasked'}")

    def check_globals(self, index: int, label: str):
        """The run's global rows (on ``og``) against the golden model; the global streams'
        counts and the sink's protocol check."""
        dut, run = self.dut, self.case["runs"][index]
        count, n = run["globals"], run["seq_len"]
        sent = {"qg": count, "kvg": 2 * n}
        if self.params.max_random_blocks:
            sent["kvr"] = run["random"]
        for name, value in sent.items():
            if int(getattr(dut, f"{name}_sent").value) != value:
                self.error(f"{label}: the {name} source sent "
                           f"{int(getattr(dut, f'{name}_sent').value)} rows, expected {value}")
        if int(dut.og_rows.value) != count:
            self.error(f"{label}: {int(dut.og_rows.value)} global rows on og, expected {count}")
        if dut.og_violation.value:
            self.error(f"{label}: an offered global row (og) was withdrawn or changed before "
                       "it was taken")
        got = self.read_memory(self.dut.harness.og_sink.tb_og_rows,
                               min(count, int(dut.og_rows.value)), "o")
        expected = self.arrays[f"gexpected{index}"]
        self.rows += len(got)
        self.runs[index]["bad_rows"] += self.mismatch(
            index, got, expected[:len(got)], run["seq_len"], self.arrays[f"rows{index}"],
            global_rows=True)

    def mismatch(self, index, got, expected, n, rows, global_rows=False, base=0):
        """Record the first mismatch between ``got`` and ``expected`` (rows of run ``index``;
        ``rows`` their row numbers in the run; ``base`` the place of the first in the output
        stream); the count of rows that differ."""
        diff = np.nonzero(got != expected)
        bad_rows = np.unique(diff[0])
        if bad_rows.size and not self.first:
            r, c = int(diff[0][0]), int(diff[1][0])
            if global_rows:
                tokens = np.setdiff1d(np.arange(n), rows)
                where = f"global row {int(tokens[r])}"
            elif f"heads{index}" in self.arrays:   # a grouped core: the row's query head too
                where = f"row {int(rows[r])} of query head {int(self.arrays[f'heads{index}'][r])}"
            else:
                where = f"row {int(rows[r])}"
                self.first_output_row = base + r
            self.first = (f"run {index} (N={n}): mismatch at {where}, column {c}: expected "
                          f"{int(expected[r, c])}, got {int(got[r, c])} (expected row "
                          f"{expected[r].tolist()}, got {got[r].tolist()}); "
                          f"rows that differ: {bad_rows.size}")
        return int(bad_rows.size)

    def compare(self, rows: int):
        """Read the output memory and compare it with the expected rows of every run."""
        got = self.read_memory(self.dut.harness.o_sink.tb_o_rows, rows, "o")
        for index, record in enumerate(self.runs):
            expected = self.arrays[f"expected{index}"]
            base, n = record["base"], record["seq_len"]
            mine = got[base:base + len(expected)]
            checked = min(len(mine), len(expected))
            record["rows"] = checked + record["globals"]
            record["bad_rows"] += self.mismatch(index, mine[:checked], expected[:checked], n,
                                                self.arrays[f"rows{index}"], base=base)
            self.rows += checked
        if self.first:
            self.errors.insert(0, self.first)  # the first mismatch first: usually the cause
            self.log.error(self.first)

    def write_result(self):
        errors = self.errors
        result = {"case": self.case["case"], "seed": self.case["seed"],
                  "nonce": self.case["nonce"], "passed": not errors,
                  "rows": self.rows, "runs": self.runs, "faults": self.faults,
                  "sim_cycles": self.sim_cycles, "sim_seconds": self.sim_seconds,
                  "message": errors[0] if errors else "", "errors": errors[:20],
                  "first_output_row": self.first_output_row}
        with open(self.case["result"], "w") as fh:
            json.dump(result, fh, indent=2)
        return result


def case_files() -> list[str]:
    """The case files of this simulator process, run one after another: ``$SWATKIT_CASES``
    names a JSON list of them (the cases of one build: :func:`swatkit.sim.regress.run_cases`),
    ``$SWATKIT_CASE`` one."""
    if "SWATKIT_CASES" in os.environ:
        with open(os.environ["SWATKIT_CASES"]) as fh:
            return list(json.load(fh))
    return [os.environ["SWATKIT_CASE"]]


async def run_case_file(dut, path: str) -> dict:
    """Every run of one case through the HDL harness; every O row against the golden model.
    The harness and core start from a reset, whatever the case before left in them (the
    memories excepted: a case loads its own rows, and reads only the rows it made)."""
    with open(path) as fh:
        case = json.load(fh)
    arrays = np.load(case["inputs"])
    bench = HarnessBench(dut, case, arrays)
    bench.log.info("case %s, seed %d: %s", case["case"], case["seed"], case["config"])
    started = time.perf_counter()
    window = cocotb.start_soon(bench.waves(rows=False))
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
    window.cancel()
    return result


@cocotb.test()
async def swat_core_matches_golden_model(dut):
    """Every case of the process (:func:`case_files`), each with its own result file. The
    first case that fails (or raises) ends the process: the cases after it have no result,
    and :func:`swatkit.sim.regress.run_cases` runs them again, each in a process of its own."""
    for path in case_files():
        result = await run_case_file(dut, path)
        if not result["passed"]:
            break
    assert result["passed"], result["message"]
