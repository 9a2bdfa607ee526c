"""cocotb bench of the generated SwatCore Verilog: stream drivers, a monitor, an in-order
scoreboard.

Run by :func:`swatkit.sim.regress.run_case` through ``cocotb_tools.runner`` (not imported by
anything else). ``$SWATKIT_CASE`` names a JSON file with the configuration, the seed, the stall
probabilities and the runs; the inputs and the expected rows (computed by the golden model in the
calling process) are in an ``.npz`` file; the outcome is written to a JSON file for the caller.

Transfer rule on every stream (``amaranth.lib.stream``): a beat moves on a rising clock edge where
``valid & ready``; the producer holds ``valid`` and the payload until then. The bench drives on
the falling edge and samples in the read-only phase after it, so what it samples is what the next
rising edge sees. Payloads are packed and unpacked with the RTL's own layouts
(:func:`swatkit.rtl.core_layouts`).

Checks, all reported in the result:

* every output row equals the golden model's row (first mismatch: run, row, column, expected,
  got), no row is missing or extra;
* the output holds an offered row, unchanged, until it is taken;
* the core takes every Q and K/V row, and drops ``busy`` after the last output row;
* the counters: ``stats.cycles`` equals the cycles the monitor saw ``busy`` high (and, on a
  stall-free run, the figure of the cycle model, :mod:`swatkit.sim.cycle_model`); ``q_rows``,
  ``kv_rows`` and ``rows_out`` equal N; ``qk_macs`` and ``sv_macs`` equal pairs · head_dim and
  ``exp_ops`` the pairs of the window pattern;
* a command of N = 0 (and N = max_seq_len + 1 where it fits) sets ``error`` and starts nothing.
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
import time

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import Event, FallingEdge, ReadOnly

from swatkit.golden import AttentionSpec, NumberFormat
from swatkit.rtl import STAT_FIELDS, CoreParams, HardwareConfig, core_layouts

__all__ = ["Scoreboard", "StreamDriver", "StreamMonitor", "SwatBench"]


class StreamDriver:
    """Offers beats on the DUT's stream input ``<name>__{valid,ready,payload}``, with an idle
    cycle before each beat with probability ``gap``. While ``valid`` is low the payload is
    random, so that a consumer that takes it without ``valid`` is caught."""

    def __init__(self, dut, name: str, layout, *, rng: random.Random, gap: float,
                 log: logging.Logger):
        self.clk = dut.clk
        self.valid = getattr(dut, f"{name}__valid")
        self.ready = getattr(dut, f"{name}__ready")
        self.payload = getattr(dut, f"{name}__payload")
        self.layout = layout
        self.rng, self.gap = rng, gap
        self.log = log.getChild(name)
        self.sent = 0

    def pack(self, value) -> int:
        """A payload (as for ``layout.const``) as the port's bit vector."""
        return self.layout.const(value).as_value().value

    def idle(self):
        self.valid.value = 0
        self.payload.value = self.rng.getrandbits(self.layout.size)

    async def send(self, beats):
        """Offer each beat until it is taken; returns in the cycle after the last transfer."""
        for beat in beats:
            await FallingEdge(self.clk)
            while self.gap and self.rng.random() < self.gap:
                self.idle()
                await FallingEdge(self.clk)
            self.valid.value = 1
            self.payload.value = self.pack(beat)
            while True:
                await ReadOnly()
                if self.ready.value:
                    break  # taken at the coming rising edge
                await FallingEdge(self.clk)
            self.sent += 1
        await FallingEdge(self.clk)
        self.idle()
        self.log.debug("%d beats sent", self.sent)


class StreamMonitor:
    """Takes beats from the DUT's stream output ``<name>__*``, dropping ``ready`` with
    probability ``stall`` each cycle; checks that an offered beat is held unchanged until taken.

    Also samples ``busy`` every cycle (``busy_cycles``) and watches progress: ``done`` is set
    when ``expect`` rows have arrived and ``busy`` is low, or when no row arrived for
    ``timeout`` cycles (``timed_out``).
    """

    def __init__(self, dut, name: str, layout, *, rng: random.Random, stall: float,
                 log: logging.Logger):
        self.clk = dut.clk
        self.valid = getattr(dut, f"{name}__valid")
        self.ready = getattr(dut, f"{name}__ready")
        self.payload = getattr(dut, f"{name}__payload")
        self.busy = dut.busy
        self.layout = layout
        self.rng, self.stall = rng, stall
        self.log = log.getChild(name)
        self.sink = None
        self.protocol_errors: list[str] = []
        self.cycle = 0
        self.busy_cycles = 0
        self.received = 0
        self.expect = None
        self.timeout = 0
        self.timed_out = False
        self.done = Event()
        self._idle = 0
        self._task = None

    def start(self):
        self._task = cocotb.start_soon(self._run())

    def stop(self):
        if self._task is not None:
            self._task.cancel()
            self._task = None

    def arm(self, rows: int, sink, timeout: int):
        """Expect ``rows`` more rows, passed to ``sink(row)``; no row for ``timeout`` cycles
        ends the wait."""
        self.sink, self.expect, self.timeout = sink, self.received + rows, timeout
        self.timed_out, self._idle = False, 0
        self.done.clear()

    def unpack(self, raw: int) -> list[int]:
        value = self.layout.from_bits(raw)
        return [value[i] for i in range(self.layout.length)]

    async def _run(self):
        pending = None  # the payload offered and not taken in the previous cycle
        while True:
            await FallingEdge(self.clk)
            ready = not (self.stall and self.rng.random() < self.stall)
            self.ready.value = ready
            await ReadOnly()
            self.cycle += 1
            busy = bool(self.busy.value)
            self.busy_cycles += busy
            valid = bool(self.valid.value)
            raw = self.payload.value.to_unsigned() if valid or pending is not None else None
            if pending is not None and (not valid or raw != pending):
                self.protocol_errors.append(
                    f"cycle {self.cycle}: an offered output row was "
                    f"{'withdrawn' if not valid else 'changed'} before it was taken")
            pending = raw if valid and not ready else None
            if valid and ready:
                self.received += 1
                self._idle = 0
                if self.sink is not None:
                    self.sink(self.unpack(raw))
            else:
                self._idle += 1
            if self.expect is not None and not self.done.is_set():
                if self.received >= self.expect and not busy:
                    self.done.set()
                elif self._idle > self.timeout:
                    self.timed_out = True
                    self.done.set()


class Scoreboard:
    """In-order checker: each received row against the next expected row, exact equality."""

    def __init__(self, expected: np.ndarray, label: str, log: logging.Logger):
        self.expected = expected
        self.label = label
        self.log = log
        self.rows = 0
        self.bad_rows = 0
        self.extra = 0
        self.first = None

    def __call__(self, row: list[int]):
        i = self.rows
        self.rows += 1
        if i >= len(self.expected):
            self.extra += 1
            if self.first is None:
                self.first = f"{self.label}: extra output row {i} (expected {len(self.expected)})"
            return
        want = self.expected[i]
        got = np.asarray(row, dtype=np.int64)
        cols = np.nonzero(want != got)[0]
        if cols.size:
            self.bad_rows += 1
            if self.first is None:
                c = int(cols[0])
                self.first = (f"{self.label}: mismatch at row {i}, column {c}: expected "
                              f"{int(want[c])}, got {int(got[c])} (expected row "
                              f"{want.tolist()}, got {got.tolist()})")
                self.log.error(self.first)

    @property
    def checked(self) -> int:
        """Rows compared with an expected row."""
        return min(self.rows, len(self.expected))


class SwatBench:
    """The DUT with its drivers, monitor and scoreboard; runs the runs of one case."""

    def __init__(self, dut, case: dict):
        self.dut = dut
        self.case = case
        p = case["params"]
        spec = p["spec"]
        self.params = CoreParams(
            AttentionSpec(**{**spec, "global_tokens": tuple(spec["global_tokens"])}),
            NumberFormat(**p["format"]), HardwareConfig(**p["hardware"]))
        self.layouts = core_layouts(self.params)
        self.log = logging.getLogger("cocotb.swat")
        seed, cid = case["seed"], case["case"]

        def rng(stream):
            return random.Random(f"{seed}:{cid}:{stream}")

        (q_gap, kv_gap), stall = case["gaps"], case["stall"]
        self.cmd = StreamDriver(dut, "cmd", self.layouts["cmd"], rng=rng("cmd"), gap=0.0,
                                log=self.log)
        self.q = StreamDriver(dut, "q", self.layouts["q"], rng=rng("q"), gap=q_gap,
                              log=self.log)
        self.kv = StreamDriver(dut, "kv", self.layouts["kv"], rng=rng("kv"), gap=kv_gap,
                               log=self.log)
        self.o = StreamMonitor(dut, "o", self.layouts["o"], rng=rng("o"), stall=stall,
                               log=self.log)
        self.idle_rng = rng("idle")
        self.errors: list[str] = []
        self.runs: list[dict] = []
        self.rows = 0
        self.started = time.perf_counter()

    def error(self, text: str):
        self.log.error(text)
        self.errors.append(text)

    async def reset(self):
        dut = self.dut
        Clock(dut.clk, 10, unit="ns").start()
        for d in (self.cmd, self.q, self.kv):
            d.idle()
        dut.o__ready.value = 0
        dut.rst.value = 1
        for _ in range(3):
            await FallingEdge(dut.clk)
        dut.rst.value = 0
        self.o.start()

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
            await self.cmd.send([{"seq_len": n}])
            await ReadOnly()
            if not self.dut.error.value or self.dut.busy.value:
                self.error(f"command seq_len={n}: expected error=1, busy=0; got "
                           f"error={int(self.dut.error.value)}, busy={int(self.dut.busy.value)}")

    async def run(self, index: int, run: dict, arrays, *, last: bool) -> None:
        n = run["seq_len"]
        q, k, v = (arrays[f"{x}{index}"] for x in "qkv")
        expected = arrays[f"expected{index}"]
        label = f"run {index} (N={n})"
        board = Scoreboard(expected, label, self.log.getChild("scoreboard"))
        p = self.params
        per_row = p.rounds * p.groups + p.spec.after * p.groups
        q_gap, kv_gap = self.case["gaps"]
        timeout = math.ceil((2000 + 20 * per_row)
                            / ((1 - q_gap) * (1 - kv_gap) * (1 - self.case["stall"])))
        busy_before = self.o.busy_cycles
        self.o.arm(n, board, timeout)
        tasks = [
            cocotb.start_soon(self.kv.send(
                {"k": [int(x) for x in k[j]], "v": [int(x) for x in v[j]]} for j in range(n))),
            cocotb.start_soon(self.q.send([int(x) for x in q[i]] for i in range(n))),
        ]
        sent_before = (self.q.sent, self.kv.sent)
        await self.cmd.send([{"seq_len": n}])
        await self.o.done.wait()
        await FallingEdge(self.dut.clk)  # done is set in the read-only phase
        errs = []
        if self.o.timed_out:
            errs.append(f"{label}: timeout: no output row for {timeout} cycles "
                       f"({board.rows} of {n} received; {self.q.sent - sent_before[0]} Q and "
                       f"{self.kv.sent - sent_before[1]} K/V rows taken)")
        for task in tasks:
            if not task.done():
                task.cancel()
                errs.append(f"{label}: the core finished without taking every Q and K/V row")
        for d in (self.q, self.kv):
            d.idle()
        await ReadOnly()
        stats = self.stats()
        monitor_cycles = self.o.busy_cycles - busy_before
        want = {"cycles": monitor_cycles, "q_rows": n, "kv_rows": n, "rows_out": n,
                "qk_macs": run["pairs"] * p.spec.head_dim,
                "sv_macs": run["pairs"] * p.spec.head_dim, "exp_ops": run["pairs"]}
        for name, value in want.items():
            if stats[name] != value:
                errs.append(f"{label}: stats.{name} is {stats[name]}, expected {value}")
        model = run.get("model_cycles")
        if model is not None and stats["cycles"] != model:
            errs.append(f"{label}: stats.cycles is {stats['cycles']}, but the cycle model "
                        f"(sim/cycle_model.py) gives {model} for this stall-free run")
        if self.dut.error.value:
            errs.append(f"{label}: error is set after a valid command")
        # idle cycles before the next command (none, or a few: the next run may start at once)
        # or, after the last run, enough for a stray row to show; no extra row may appear
        idle = p.groups + 24 if last else self.idle_rng.choice([0, 0, 1, 2, 5, 13, 30])
        for _ in range(idle):
            await FallingEdge(self.dut.clk)
        if board.rows < n and not self.o.timed_out:
            errs.append(f"{label}: {board.rows} of {n} output rows received")
        # the first mismatch first: it is usually the cause of the rest
        for text in ([board.first] if board.first else []) + errs:
            self.error(text)
        self.rows += board.checked
        self.runs.append({"seq_len": n, "rows": board.checked, "bad_rows": board.bad_rows,
                          "monitor_cycles": monitor_cycles, "stats": stats,
                          "ideal": run["ideal"]})
        self.log.info("%s: %d rows checked, %d bad; %d cycles (%.3f× ideal)", label,
                      board.checked, board.bad_rows, stats["cycles"],
                      stats["cycles"] / run["ideal"])

    def write_result(self):
        errors = self.errors + self.o.protocol_errors
        result = {"case": self.case["case"], "seed": self.case["seed"], "passed": not errors,
                  "rows": self.rows, "runs": self.runs,
                  # every simulated clock cycle (reset and checks included) and the wall time
                  # of the test, for the simulator's speed
                  "sim_cycles": self.o.cycle,
                  "sim_seconds": time.perf_counter() - self.started,
                  "message": errors[0] if errors else "",
                  "errors": errors[:20]}
        with open(self.case["result"], "w") as fh:
            json.dump(result, fh, indent=2)
        return result


@cocotb.test()
async def swat_core_matches_golden_model(dut):
    """Every run of the case: drive Q and K/V rows, compare every O row with the golden model."""
    with open(os.environ["SWATKIT_CASE"]) as fh:
        case = json.load(fh)
    bench = SwatBench(dut, case)
    bench.log.info("case %s, seed %d: %s", case["case"], case["seed"], case["config"])
    arrays = np.load(case["inputs"])
    try:
        await bench.reset()
        await bench.check_bad_commands()
        for index, run in enumerate(case["runs"]):
            await bench.run(index, run, arrays, last=index == len(case["runs"]) - 1)
    except Exception as e:
        bench.error(f"the bench raised {type(e).__name__}: {e}")
        raise
    finally:
        bench.o.stop()
        result = bench.write_result()
    assert result["passed"], result["message"]
