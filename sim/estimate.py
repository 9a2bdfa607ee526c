"""Estimates of cycles, latency and energy per sequence length, for the SWAT core and for a dense,
unfused baseline with the same MAC budget.

* **Cycles.** SWAT: :func:`swatkit.sim.cycle_model.swat_cycles`, the exact model of the core as
  built (validated against RTL simulation). Dense baseline: the phase model below.
* **Action counts** per run: MACs by operand widths, exp evaluations, compares, adds, divisions,
  on-chip buffer bits read/written by buffer, off-chip bytes read/written. For SWAT they are the
  counts the core's counters measure (``qk_macs``, ``sv_macs``, ``exp_ops``, ``kv_rows``, …).
* **Energy** = Σ actions × energy per action from a table (TOML: ``[energy]`` in pJ, a ``source``
  and an ``uncertainty``) + static power × latency where the table gives it. Shipped tables:
  ``asic45`` (Horowitz, ISSCC 2014) and ``fpga`` (the same ×14, Kuon & Rose 2007).

Dense baseline (the conventional accelerator SWAT is compared against), assumptions:
KL·DL MACs per cycle and KL exp units, as the SWAT core; the query rows are processed in tiles of
``ring_rows`` rows (the SWAT core's K/V buffer size, so both have the same on-chip storage), K and
V are streamed from off-chip once per tile; all N keys are scored (the mask is applied after QK);
the N×N score matrix is written off-chip and read back for the softmax pass, which writes the
probabilities off-chip for the SV pass; the three phases do not overlap; each phase takes the
longer of its compute time and its off-chip transfer time at ``offchip_bytes_per_cycle``.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from swatkit.golden import AttentionSpec
from swatkit.rtl import CoreParams

from .cycle_model import swat_cycles

__all__ = ["DATAFLOWS", "EnergyTable", "actions", "estimate", "load_table"]

DATAFLOWS = ("swat", "dense")
BUILTIN_TABLES = ("asic45", "fpga")
REQUIRED_ENTRIES = ("int8_add", "int32_add", "int8_mult", "int32_mult", "sram_read_64b",
                    "dram_access_64b")


class TableError(ValueError):
    """An energy table is missing or malformed."""


@dataclass(frozen=True)
class EnergyTable:
    """Energy per action in pJ, with the source it comes from."""

    name: str
    source: str
    uncertainty: str
    energy_pj: dict
    static_power_w: float = 0.0

    def mult(self, a: int, b: int) -> float:
        """An a×b-bit integer multiply: a power law in a·b through the int8 and int32 points."""
        e8, e32 = self.energy_pj["int8_mult"], self.energy_pj["int32_mult"]
        k = math.log(e32 / e8) / math.log(16)
        return e8 * (a * b / 64) ** k

    def add(self, w: int) -> float:
        """A w-bit integer add (or compare): a power law in w through the int8 and int32 points."""
        e8, e32 = self.energy_pj["int8_add"], self.energy_pj["int32_add"]
        k = math.log(e32 / e8) / math.log(4)
        return e8 * (w / 8) ** k

    def sram_bit(self) -> float:
        return self.energy_pj["sram_read_64b"] / 64

    def dram_byte(self) -> float:
        return self.energy_pj["dram_access_64b"] / 8


def load_table(name_or_path: str) -> EnergyTable:
    """A shipped table by name (``asic45``, ``fpga``) or a TOML file."""
    if name_or_path in BUILTIN_TABLES:
        text = resources.files("swatkit.sim").joinpath(f"tables/{name_or_path}.toml").read_text()
        where = name_or_path
    else:
        path = Path(name_or_path)
        try:
            text = path.read_text()
        except FileNotFoundError:
            raise TableError(f"no such energy table: {name_or_path} (expected "
                             f"{' or '.join(BUILTIN_TABLES)} or a TOML file)") from None
        where = str(path)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise TableError(f"energy table {where} is not valid TOML: {e}") from None
    for key in ("name", "source", "energy"):
        if key not in data:
            raise TableError(f"energy table {where} has no {key!r}")
    entries = data["energy"]
    missing = [k for k in REQUIRED_ENTRIES if k not in entries]
    if missing:
        raise TableError(f"energy table {where} lacks [energy] {', '.join(missing)}")
    for key, value in entries.items():
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            raise TableError(f"energy table {where}: [energy] {key} must be a positive number, "
                             f"not {value!r}")
    if data.get("unit", "pJ") != "pJ":
        raise TableError(f"energy table {where}: unit must be \"pJ\", not {data['unit']!r}")
    static = data.get("static_power_w", 0.0)
    if isinstance(static, bool) or not isinstance(static, int | float) or static < 0:
        raise TableError(f"energy table {where}: static_power_w must be a non-negative number, "
                         f"not {static!r}")
    return EnergyTable(str(data["name"]), str(data["source"]), str(data.get("uncertainty", "")),
                       {k: float(v) for k, v in entries.items()}, float(static))


def _pairs(p: CoreParams, n: int) -> int:
    return AttentionSpec(n, p.spec.head_dim, p.spec.before, p.spec.after).pair_count()


def actions(p: CoreParams, n: int, dataflow: str) -> dict:
    """Action counts of one run of ``n`` rows."""
    d, b, w = p.spec.head_dim, p.fmt.data_bits, p.widths
    row_bytes = math.ceil(n * d * b / 8)
    out_bytes = math.ceil(n * d * p.fmt.out_bits / 8)
    if dataflow == "swat":
        pairs = _pairs(p, n)
        return {
            "qk_macs": pairs * d, "sv_macs": pairs * d, "exp_ops": pairs,
            "max_compares": pairs, "sum_adds": pairs, "divisions": n * d,
            "kv_rows": n, "q_rows": n, "rows_out": n,
            "kv_buffer_write_bits": 2 * n * d * b, "kv_buffer_read_bits": 2 * pairs * d * b,
            "score_buffer_write_bits": pairs * w.score, "score_buffer_read_bits": pairs * w.score,
            "offchip_read_bytes": 3 * row_bytes, "offchip_write_bytes": out_bytes,
        }
    if dataflow == "dense":
        full = n * n
        tiles = math.ceil(n / p.ring_rows)
        s_bytes, p_bytes = math.ceil(w.score / 8), math.ceil(w.prob / 8)
        return {
            "qk_macs": full * d, "sv_macs": full * d, "exp_ops": full,
            "max_compares": full, "sum_adds": full, "divisions": n * d,
            "kv_rows": tiles * n, "q_rows": n, "rows_out": n,
            "kv_buffer_write_bits": 2 * tiles * n * d * b, "kv_buffer_read_bits": 2 * full * d * b,
            "score_buffer_write_bits": 0, "score_buffer_read_bits": 0,
            "offchip_read_bytes": row_bytes * (1 + 2 * tiles) + full * (s_bytes + p_bytes),
            "offchip_write_bytes": out_bytes + full * (s_bytes + p_bytes),
        }
    raise ValueError(f"dataflow must be one of {', '.join(DATAFLOWS)}, not {dataflow!r}")


def dense_cycles(p: CoreParams, n: int, offchip_bytes_per_cycle: float) -> int:
    """Cycles of the dense baseline: three phases, each compute- or bandwidth-bound."""
    d, w = p.spec.head_dim, p.widths
    macs_per_cycle = p.hw.key_lanes * p.hw.dim_lanes
    full = n * n
    tiles = math.ceil(n / p.ring_rows)
    kv_bytes = tiles * n * d * p.fmt.data_bits / 8
    s_bytes, p_bytes = math.ceil(w.score / 8), math.ceil(w.prob / 8)
    bw = offchip_bytes_per_cycle
    qk = max(full * d / macs_per_cycle, (kv_bytes + full * s_bytes) / bw)
    softmax = max(full / p.hw.key_lanes, full * (s_bytes + p_bytes) / bw)
    sv = max(full * d / macs_per_cycle, (kv_bytes + full * p_bytes) / bw)
    return math.ceil(qk + softmax + sv)


def energy_breakdown(p: CoreParams, acts: dict, table: EnergyTable) -> dict:
    """Energy in joules per action class."""
    w, b = p.widths, p.fmt.data_bits
    pj = {
        "qk_mac": acts["qk_macs"] * (table.mult(b, b) + table.add(w.score)),
        "sv_mac": acts["sv_macs"] * (table.mult(w.prob, b) + table.add(w.acc)),
        "exp": acts["exp_ops"] * (table.mult(w.diff, w.const) + table.add(w.exp_arg)
                                  + table.add(w.prob) + w.prob * table.sram_bit()),
        "max": acts["max_compares"] * table.add(w.score),
        "sum": acts["sum_adds"] * table.add(w.sum),
        "divide": acts["divisions"] * w.quotient * table.add(w.sum + w.quotient + 1),
        "buffers": (acts["kv_buffer_write_bits"] + acts["kv_buffer_read_bits"]
                    + acts["score_buffer_write_bits"] + acts["score_buffer_read_bits"])
        * table.sram_bit(),
        "offchip": (acts["offchip_read_bytes"] + acts["offchip_write_bytes"]) * table.dram_byte(),
    }
    return {k: v * 1e-12 for k, v in pj.items()}


def estimate(p: CoreParams, seq_lens, dataflows=DATAFLOWS, *, clock_hz: float = 100e6,
             table: EnergyTable | None = None, offchip_bytes_per_cycle: float = 16.0,
             clock_source: str = "--clock-mhz") -> list[dict]:
    """One record per (dataflow, seq_len): cycles, latency, energy and action counts.

    ``p.hw.max_seq_len`` must cover every length (it sizes the core's counters only)."""
    table = table or load_table("asic45")
    records = []
    for dataflow in dataflows:
        for n in seq_lens:
            acts = actions(p, n, dataflow)
            if dataflow == "swat":
                model = swat_cycles(p, n).cycles
                io_bound = math.ceil((acts["offchip_read_bytes"] + acts["offchip_write_bytes"])
                                     / offchip_bytes_per_cycle)
                cycles = max(model, io_bound)
            else:
                cycles = dense_cycles(p, n, offchip_bytes_per_cycle)
            latency = cycles / clock_hz
            parts = energy_breakdown(p, acts, table)
            static = table.static_power_w * latency
            records.append({
                "dataflow": dataflow, "seq_len": n, "window": p.spec.window,
                "before": p.spec.before, "after": p.spec.after, "head_dim": p.spec.head_dim,
                "key_lanes": p.hw.key_lanes, "dim_lanes": p.hw.dim_lanes,
                "cycles": cycles, "ideal_cycles": p.ideal_cycles(n), "clock_hz": clock_hz,
                "clock_source": clock_source, "latency_s": latency,
                "energy_j": sum(parts.values()) + static, "static_energy_j": static,
                "tech": table.name, "macs": acts["qk_macs"] + acts["sv_macs"],
                "offchip_bytes": acts["offchip_read_bytes"] + acts["offchip_write_bytes"],
                **acts,
                **{f"energy_{k}_j": v for k, v in parts.items()},
            })
    return records
