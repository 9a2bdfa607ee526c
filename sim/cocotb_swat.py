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
from amaranth import Shape
from cocotb.triggers import FallingEdge, First, ReadOnly, RisingEdge, Timer

from swatkit.rtl import STAT_FIELDS, core_layouts
from swatkit.rtl.core import command
from swatkit.rtl.harness import probability_threshold, unpack_rows
from swatkit.sim.regress import PERIOD_NS  # the clock the simulated top generates

__all__ = ["HarnessBench"]



def _params(case: dict):
    from swatkit.golden import AttentionSpec, NumberFormat
    from swatkit.rtl import CoreParams, HardwareConfig

    p = case["params"]
    spec = p["spec"]
    if spec.get("explicit_random_table") is not None:
        spec["explicit_random_table"] = tuple(map(tuple, spec["explicit_random_table"]))
    return CoreParams(AttentionSpec(**{**spec, "global_tokens": tuple(spec["global_tokens"])}),
                      NumberFormat(**p["format"]), HardwareConfig(**p["hardware"]),
                      **p.get("heads", {}))


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
        self.first = ""   # the first mismatch

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

    @staticmethod
    def write_memory(mem, words):
        for i, word in enumerate(words):
            mem[i].value = int.from_bytes(word.tobytes(), "little")

    def read_memory(self, mem, rows: int, layout: str):
        nbytes = (self.layouts[layout].size + 7) // 8
        raw = np.zeros((rows, nbytes), dtype=np.uint8)
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
        (q_gap, kv_gap), stall = case["gaps"], case["stall"]
        await FallingEdge(dut.clk)
        dut.q_count.value = q_rows
        dut.kv_count.value = kv_rows
        dut.q_gap.value = probability_threshold(q_gap)
        dut.kv_gap.value = probability_threshold(kv_gap)
        dut.o_stall.value = probability_threshold(stall)
        dut.seed.value = case["seed"] & 0xFFFFFFFF
        dut.start.value = 1
        await FallingEdge(dut.clk)
        dut.start.value = 0

    async def command(self, value: int):
        """Offer the command ``value`` (its payload bits) until the core takes it; returns just
        after the transfer."""
        dut = self.dut
        await FallingEdge(dut.clk)
        dut.cmd__payload.value = value
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

    def bad_commands(self) -> dict:
        """``{description: payload}`` of commands the core must refuse: N = 0, N =
        max_seq_len + 1 where the field holds it, and on a core generated for them a dilation of
        0 or above the maximum, a global token at N, global tokens out of order, more global
        tokens than the maximum."""
        p = self.params
        lay = self.layouts["cmd"]

        def value(**changes):
            fields = {**command(p, seq_len=5), **changes}
            return lay.const(fields).as_value().value & ((1 << lay.size) - 1)

        def width(name):
            return Shape.cast(lay.members[name]).width

        if p.block_size:   # N not a multiple of b, r above the maximum or above what N allows
            b, r = p.block_size, p.max_random_blocks
            bad = {"seq_len=0": value(seq_len=0)}
            if p.hw.max_seq_len + b < 2 ** p.index_bits:
                bad[f"seq_len={p.hw.max_seq_len + b}"] = value(seq_len=p.hw.max_seq_len + b)
            if b > 1:
                bad[f"seq_len={3 * b + 1}"] = value(seq_len=3 * b + 1)
            if r:
                if r + 1 < 2 ** width("random_blocks"):
                    bad[f"random_blocks={r + 1}"] = value(seq_len=b, random_blocks=r + 1)
                bad[f"random_blocks={r} at N={(r + 4) * b}"] = value(seq_len=(r + 4) * b,
                                                                      random_blocks=r)
            return bad
        bad = {"seq_len=0": value(seq_len=0)}
        if p.hw.max_seq_len + 1 < 2 ** p.index_bits:
            bad[f"seq_len={p.hw.max_seq_len + 1}"] = value(seq_len=p.hw.max_seq_len + 1)
        if p.spec.after + 1 < 2 ** width("after"):
            bad[f"after={p.spec.after + 1}"] = value(after=p.spec.after + 1)
        if p.max_dilation > 1:
            bad["dilation=0"] = value(dilation=0)
            if p.max_dilation + 1 < 2 ** width("dilation"):
                bad[f"dilation={p.max_dilation + 1}"] = value(dilation=p.max_dilation + 1)
        if p.sink_logits:   # a sink score outside the scores' range (where the field holds it)
            lo, hi = p.fmt.score_range(p.spec.head_dim)
            heads = p.group_heads
            if hi + 1 < 2 ** (p.widths.score - 1):
                bad[f"sink score {hi + 1}"] = value(sink_on=1,
                                                    sink_scores=[0] * (heads - 1) + [hi + 1])
            if lo - 1 >= -2 ** (p.widths.score - 1):
                bad[f"sink score {lo - 1}"] = value(sink_on=1, sink_scores=[lo - 1] * heads)
        g = p.max_global_tokens
        if p.sink_core:   # more sinks than generated, or than N
            if g + 1 < 2 ** width("sink_count"):
                bad[f"sink_count={g + 1}"] = value(sink_count=g + 1)
            if g > 1:
                bad[f"sink_count={g} at N=1"] = value(seq_len=1, sink_count=g)
        elif g:
            bad["global token 5 of N=5"] = value(global_count=1,
                                                 global_tokens=[5] + [0] * (g - 1))
            if g > 1:
                bad["global tokens 3, 1"] = value(global_count=2,
                                                  global_tokens=[3, 1] + [0] * (g - 2))
            if g + 1 < 2 ** width("global_count"):
                bad[f"{g + 1} global tokens"] = value(global_count=g + 1)
        return bad

    async def check_bad_commands(self):
        """Every command of :meth:`bad_commands` sets ``error`` and starts nothing."""
        for what, payload in self.bad_commands().items():
            await self.command(payload)
            await ReadOnly()
            if not self.dut.error.value or self.dut.busy.value:
                self.error(f"command {what}: expected error=1, busy=0; got "
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

    def timeout_cycles(self, n: int, count: int = 0) -> int:
        """A bound no healthy run reaches: every row's full walk, slowed by the gaps and stalls,
        and the longest hold, with a wide margin."""
        p = self.params
        per_row = (p.rounds + 1) * p.groups + p.spec.after * p.groups + 40
        (q_gap, kv_gap), stall = self.case["gaps"], self.case["stall"]
        slow = 1 / ((1 - q_gap) * (1 - kv_gap) * (1 - stall))
        holds = sum(f[1] for f in self.case.get("holds", {}).values())
        # the global-row engine's two passes (each key once per global row) and its read-out
        glob = 2 * count * n * p.groups + count * (p.groups + 101) + p.random_rows * n
        return int(4 * (n * per_row + glob) * slow) + holds + 10_000

    async def wait_run(self, n: int, label: str, count: int = 0) -> bool:
        """Until ``busy`` falls (True) or the timeout (False)."""
        dut = self.dut
        if not dut.busy.value:
            await RisingEdge(dut.busy)
        limit = self.timeout_cycles(n, count)
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
        first = self.case["runs"][0]
        await self.start(first["q_rows"], n + first["columns"])
        await self.start_globals(0)
        await self.command(self.case["runs"][0]["command"])
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
        fault = case.get("reset_after")
        self.interrupted = None
        if fault is not None:
            await self.interrupted_run(runs[0]["seq_len"], fault)
        await self.start(sum(r["q_rows"] for r in runs),
                         sum(r["seq_len"] + r["columns"] for r in runs))
        holds = [cocotb.start_soon(self.hold(sig, at, length))
                 for sig, (at, length) in case.get("holds", {}).items()]
        idle_choices = case.get("idle", [0])
        q_base = kv_base = o_base = 0
        for index, run in enumerate(runs):
            n, count = run["seq_len"], run["globals"]
            # (Q and output rows: g per position on a grouped core)
            q_rows, o_rows = run["q_rows"], run["o_rows"]
            label = f"run {index} (N={n}, {run['pattern']})"
            await self.start_globals(index)
            await self.command(run["command"])
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
            want = {"cycles": monitor, **run["actions"]}
            for name, value in want.items():
                if stats[name] != value:
                    self.error(f"{label}: stats.{name} is {stats[name]}, expected {value}")
            model = run.get("model_cycles")
            if model is not None and stats["cycles"] != model:
                self.error(f"{label}: stats.cycles is {stats['cycles']}, but the cycle model "
                           f"(sim/cycle_model.py) gives {model} for this stall-free run")
            if got_rows != o_rows:
                self.error(f"{label}: {got_rows} output rows at the end of the run, expected "
                           f"{o_rows}")
            for name, sent in (("q", q_base + q_rows), ("kv", kv_base + n + run["columns"])):
                if int(getattr(dut, f"{name}_sent").value) != sent:
                    self.error(f"{label}: the {name} source sent "
                               f"{int(getattr(dut, f'{name}_sent').value)} rows, expected {sent}")
            if count:
                self.check_globals(index, label)
            if dut.error.value:
                self.error(f"{label}: error is set after a valid command")
            q_base += q_rows
            kv_base += n + run["columns"]
            o_base += o_rows
            if index + 1 < len(runs):
                await self.cycles(idle_choices[index % len(idle_choices)])
        for task in holds:
            task.cancel()
        # after the last run: long enough for a stray row to show
        await self.cycles(p.groups + 40)
        await ReadOnly()
        if int(dut.o_rows.value) != o_base and len(self.runs) == len(runs):
            self.error(f"{int(dut.o_rows.value) - o_base} extra output rows after the last run")
        if dut.violation.value:
            self.error(f"cycle {int(dut.violation_cycle.value)}: an offered output row was "
                       "withdrawn or changed before it was taken")
        self.compare(min(int(dut.o_rows.value), self.case["o_depth"]))
        self.sim_cycles = int(dut.cycles.value)

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

    def mismatch(self, index, got, expected, n, rows, global_rows=False):
        """Record the first mismatch between ``got`` and ``expected`` (rows of run ``index``;
        ``rows`` their row numbers in the run); the count of rows that differ."""
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
                                                self.arrays[f"rows{index}"])
            self.rows += checked
        if self.first:
            self.errors.insert(0, self.first)  # the first mismatch first: usually the cause
            self.log.error(self.first)

    def write_result(self):
        errors = self.errors
        result = {"case": self.case["case"], "seed": self.case["seed"],
                  "nonce": self.case["nonce"], "passed": not errors,
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
