"""Design-space exploration: which SWAT configurations fit a device, and how fast and how
frugal each is on a whole model (``swatkit explore``).

Enumerates key lanes × dim lanes × cores, keeps the points that fit the device's resources by a
**resource model calibrated on measured builds** (``fpga_flows/calibration/BOARD.json``: the
figures of ``docs/fpga.md``'s sweeps, or ``flow.json`` reports given with ``--flows``), clocks
each point at a measured Fmax, estimates the model with
:func:`~swatkit.sim.estimate.estimate_model`, and marks the Pareto front over (latency, energy,
utilisation).

The resource model predicts what a ``swatkit flow`` build (core + on-board self-test) uses — what
was measured:

* **DSP** = multipliers + a fitted constant; multipliers = g·(2·KL·DL + KL) (QK, SV and exp,
  ``CoreParams.resources``; g query heads per K/V head under ``gqa``, 1 otherwise). Every
  multiplier here is one DSP block (operands ≤ 18 bits).
* **BRAM** = block RAMs the memories need by the device's block geometry (ECP5 ``DP16KD`` 16 Kib,
  iCE40 ``SB_RAM40_4K`` 4 Kib; the best aspect ratio per memory) + a fitted constant. Memories:
  2·KL K/V ring memories (DL·data_bits wide, ``ring_slots``·G deep), g·KL score memories
  (``score_depth`` deep) and the self-test's Q, K/V and expected-output ROMs (``test_rows`` deep:
  :func:`rom_rows`, none in LFSR mode). On an ECP5 each ring memory is built of banks of 512 words
  (``rtl.units.BankedMemory``), each bank a memory of its own.
  RAMs at most ``lutram_max_depth`` deep go to LUT RAM (ECP5: 64, as the measured counts show;
  iCE40 has none); the exp tables are ROMs in logic.
* **LUT**, **FF** = a + b·g·KL·DL (per multiply-accumulate lane: its registers, adder-tree
  share, exp and divider logic), least squares over the measured points. (Adding KL or DL as a
  second term fits the points better and predicts held-out points worse: with 4–5 points the
  4 × 4 point's DL = 4 is the only one that is not 8.)
* **cores**: C × the one-core figure, minus the self-test ROMs' blocks counted C − 1 extra times
  (the self-test's logic is counted C times: conservative).

Each fit's accuracy is measured by leaving each measured point out in turn, fitting the others
and predicting it (:func:`held_out_errors`). The calibration points have head_dim and window of
the board defaults; other shapes are extrapolations.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from swatkit.golden import AttentionSpec, NumberFormat
from swatkit.rtl import CoreParams, HardwareConfig
from swatkit.rtl.units import RAM_BANK_WORDS
from swatkit.sim.estimate import EnergyTable, estimate_model
from swatkit.sim.model_configs import ModelConfig

__all__ = ["RESOURCES", "Calibration", "ExploreError", "ResourceModel", "explore",
           "held_out_errors", "load_calibration", "pareto_front"]

RESOURCES = ("LUT", "FF", "DSP", "BRAM")
# block RAM shapes (depth, width) of each family's primitive
BLOCK_SHAPES = {
    "ecp5": ((16384, 1), (8192, 2), (4096, 4), (2048, 9), (1024, 18), (512, 36)),  # DP16KD
    "ice40": ((2048, 2), (1024, 4), (512, 8), (256, 16)),                         # SB_RAM40_4K
}
CALIBRATED = ("ulx3s-85f", "icebreaker")
# a flow.json's built_utc (fpga_flows.flow.collect)
BUILT_UTC = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")


class ExploreError(ValueError):
    """Bad calibration data or a budget nothing fits."""


@dataclass(frozen=True)
class Calibration:
    """Measured builds of one board: each point a configuration with its resources and Fmax."""

    board: str
    family: str
    source: str
    available: dict
    lutram_max_depth: int
    points: tuple[dict, ...]

    def built(self) -> str:
        """When the points were built: ``2026-12-07`` or ``2026-12-01 to 2026-12-07`` (UTC days
        of the reports' ``built_utc``), with how many points carry no date."""
        days = sorted(pt["built_utc"][:10] for pt in self.points if pt.get("built_utc"))
        undated = len(self.points) - len(days)
        if not days:
            return "builds of unrecorded date"
        when = days[0] if days[0] == days[-1] else f"{days[0]} to {days[-1]}"
        return f"builds of {when}" + (f" ({undated} of {len(self.points)} points undated)"
                                      if undated else "")


def _point_params(pt: dict) -> CoreParams:
    spec = AttentionSpec(pt["seq_len"], pt["head_dim"], pt["before"], pt["after"])
    fmt = NumberFormat(data_bits=pt.get("data_bits", 8))
    return CoreParams(spec, fmt, HardwareConfig(pt["key_lanes"], pt["dim_lanes"],
                                                pt["seq_len"]))


def load_calibration(board: str, flows: str | Path | None = None) -> Calibration:
    """The shipped calibration of ``board``, with the ``flow.json`` reports under ``flows``
    (recursively) replacing shipped points of the same configuration and adding the others."""
    from swatkit.fpga_flows import get_board

    try:
        get_board(board)
    except ValueError as e:
        raise ExploreError(str(e)) from None
    if board in CALIBRATED:
        data = json.loads(resources.files("swatkit.fpga_flows").joinpath(
            f"calibration/{board}.json").read_text())
    elif flows is None:
        raise ExploreError(f"no calibration data for board {board!r} (shipped: "
                           f"{', '.join(CALIBRATED)}); give measured flows with --flows DIR")
    else:
        b = get_board(board)
        data = {"board": board, "family": b.family, "source": "", "available": {},
                "lutram_max_depth": 64 if b.family == "ecp5" else 0,
                "base": {**b.defaults, "test_rows": rom_rows({"mode": b.selftest,
                                                              "rows": b.test_rows})},
                "points": []}
    base = data["base"]
    half = base["attention_window"] // 2
    points = [{"head_dim": base["head_dim"], "before": half, "after": half,
               "seq_len": base["seq_len"], "test_rows": base["test_rows"], "data_bits": 8,
               "origin": "shipped", **pt} for pt in data["points"]]
    source = data["source"]
    available = dict(data["available"])
    if flows is not None:
        found = _read_flows(Path(flows), board)
        if not found:
            raise ExploreError(f"--flows: no flow.json of board {board} under {flows}")
        key = ("head_dim", "before", "after", "key_lanes", "dim_lanes", "test_rows")
        new = {tuple(p[k] for k in key) for p, _ in found}
        points = [p for p in points if tuple(p[k] for k in key) not in new]
        points += [p for p, _ in found]
        for _, avail in found:
            available = {**avail, **available} if available else avail
        source = (source + "; " if source else "") + f"flow.json reports under {flows}"
    if data.get("family") not in BLOCK_SHAPES:
        raise ExploreError(f"board {board}: family {data.get('family')!r} has no block RAM model")
    return Calibration(board, data["family"], source, available,
                       int(data["lutram_max_depth"]), tuple(points))


def _read_flows(folder: Path, board: str) -> list[tuple[dict, dict]]:
    """The measured points of ``board`` under ``folder``: every flow.json checked by
    :func:`~swatkit.fpga_flows.report.read_report` (a report of another board is skipped, a
    corrupt one refused), with the ``swatkit.json`` beside it."""
    from swatkit.fpga_flows.report import ReportError, read_report, read_side_record

    found = []
    for path in _flow_files(folder):
        try:
            report = read_report(path)
            if report.board != board:
                continue
            pt = _flow_point(path, report, read_side_record(path.parent / "swatkit.json"))
        except ReportError as e:
            raise ExploreError(f"--flows: {e}") from None
        avail = {n: report.utilization[n]["available"] for n in RESOURCES
                 if "available" in report.utilization.get(n, {})}
        found.append((pt, avail))
    return found


MAX_FLOW_ENTRIES = 100_000   # files and folders under --flows (a sweep has a few dozen)


def _flow_files(folder: Path) -> list[Path]:
    """Every flow.json under ``folder`` (symbolic links to folders are not followed), in path
    order; a folder of more than :data:`MAX_FLOW_ENTRIES` entries (``/``, a home folder) or one
    that cannot be read is refused."""
    if not folder.is_dir():
        raise ExploreError(f"--flows: {folder} is not a folder" if folder.exists() else
                           f"--flows: no such folder: {folder}")

    def fail(error: OSError):
        raise ExploreError(f"--flows: cannot read {error.filename}: {error.strerror}")

    found, seen = [], 0
    for root, dirs, names in os.walk(folder, onerror=fail):
        seen += len(dirs) + len(names)
        if seen > MAX_FLOW_ENTRIES:
            raise ExploreError(f"--flows: {folder} holds more than {MAX_FLOW_ENTRIES:,} files "
                               "and folders; name the folder of the flow reports")
        if "flow.json" in names:
            found.append(Path(root) / "flow.json")
    return sorted(found)


def _flow_point(path: Path, report, info: dict) -> dict:
    """The calibration point of one checked report; ``info``: the swatkit.json beside it."""
    from swatkit.fpga_flows.report import check_count

    core = report.core
    if core is None or not report.utilization:
        raise ExploreError(f"--flows: {path} has no core or utilization record")
    if report.params is not None:   # (checked against the core record by the reader)
        p = report.params
        before, after, seq_len = p.spec.before, p.spec.after, p.hw.max_seq_len
    else:   # an earlier swatkit's report: the window's sides and the rows from swatkit.json
        spec, hw, side = info.get("spec", {}), info.get("hardware", {}), path.parent
        half = core["window"] // 2
        before = check_count(f"{side / 'swatkit.json'}: spec before", spec.get("before", half), 0)
        after = check_count(f"{side / 'swatkit.json'}: spec after", spec.get("after", half), 0)
        seq_len = check_count(f"{side / 'swatkit.json'}: hardware max_seq_len",
                              hw.get("max_seq_len", 4096), 1)
        if before + after + 1 != core["window"]:
            raise ExploreError(f"--flows: {path}: its core record says window {core['window']}, "
                               f"{side / 'swatkit.json'} before {before} and after {after}")
    selftest = info.get("selftest", {})
    check_count(f"{path.parent / 'swatkit.json'}: selftest rows", selftest.get("rows", 128), 1)
    rows = rom_rows(selftest)
    pt = {"head_dim": core["head_dim"], "key_lanes": core["key_lanes"],
          "dim_lanes": core["dim_lanes"], "data_bits": core["data_bits"],
          "before": before, "after": after, "seq_len": seq_len, "test_rows": rows,
          "origin": str(path)}
    for name in RESOURCES:
        if name in report.utilization:
            pt[name] = report.utilization[name]["used"]
    pt["fmax_mhz"] = report.fmax_mhz
    pt["abc"] = report.raw.get("abc", "abc9")   # (Yosys' LUT mapping: see fitted())
    when = report.raw.get("built_utc")
    if when is not None:
        if not (isinstance(when, str) and BUILT_UTC.fullmatch(when)):
            raise ExploreError(f"--flows: {path}: built_utc must be a UTC time like "
                               f"2026-12-07T16:03:08Z, not {when!r}")
        pt["built_utc"] = when
    try:
        _point_params(pt)
    except ValueError as e:   # (a window no core has: a corrupt report)
        raise ExploreError(f"--flows: {path} describes no core: {e}") from None
    return pt


def rom_rows(selftest: dict) -> int:
    """The rows a self-test holds in ROM (its swatkit.json ``selftest`` record): its ``rows`` in
    ROM mode (an earlier swatkit's record, without ``mode``, is ROM mode), none in LFSR or
    decode mode, whose inputs come from generators on chip."""
    return selftest.get("rows", 128) if selftest.get("mode", "rom") == "rom" else 0


def _blocks(shapes, width: int, depth: int) -> int:
    return min(math.ceil(width / w) * math.ceil(depth / d) for d, w in shapes)


def features(p: CoreParams, test_rows: int, family: str, lutram_max_depth: int,
             group: int = 1) -> dict:
    """The structural quantities the resource model is linear in."""
    kl, dl, w, b, d = p.hw.key_lanes, p.hw.dim_lanes, p.widths, p.fmt.data_bits, p.spec.head_dim
    shapes = BLOCK_SHAPES[family]
    # each lane's K and V memory: the ring's words (every class region, the resident columns,
    # each context's region) in banks of one block RAM's depth where the family has them
    # (rtl.units.BankedMemory: the last bank holds the rest, in LUT RAM when it is shallow)
    ring, bank = p.kv_depth * max(p.contexts, 1), RAM_BANK_WORDS.get(family)
    banks = [ring] if bank is None or ring <= bank else [
        min(bank, ring - start) for start in range(0, ring, bank)]
    rams = [(dl * b, n) for n in banks] * (2 * kl) + [(w.score, p.score_depth)] * (group * kl)
    core_blocks = sum(_blocks(shapes, wd, dp) for wd, dp in rams if dp > lutram_max_depth)
    roms = ((d * b, test_rows), (2 * d * b, test_rows), (d * p.fmt.out_bits, test_rows))
    return {"multipliers": group * (2 * kl * dl + kl), "core_blocks": core_blocks,
            "selftest_blocks": sum(_blocks(shapes, wd, dp) for wd, dp in roms),
            "macs": group * kl * dl, "lanes": group * kl}


def _design(name: str, f: dict) -> tuple[list[float], float]:
    """(regressors, fixed part) of resource ``name`` for features ``f``."""
    if name == "DSP":
        return [1.0], f["multipliers"]
    if name == "BRAM":
        return [1.0], f["core_blocks"] + f["selftest_blocks"]
    return [1.0, f["macs"]], 0.0


@dataclass(frozen=True)
class ResourceModel:
    """Least-squares coefficients per resource, fitted on calibration points."""

    family: str
    lutram_max_depth: int
    coef: dict            # resource -> coefficient list
    points_used: dict     # resource -> number of points fitted

    @classmethod
    def fit(cls, cal: Calibration, points=None) -> ResourceModel:
        points = cal.points if points is None else points
        coef, used = {}, {}
        for name in RESOURCES:
            rows, fixed, y = [], [], []
            for pt in points:
                if not fitted(name, pt):
                    continue
                f = features(_point_params(pt), pt["test_rows"], cal.family,
                             cal.lutram_max_depth)
                x, c = _design(name, f)
                rows.append(x)
                fixed.append(c)
                y.append(pt[name])
            if not rows:
                raise ExploreError(f"board {cal.board}: no measured {name} to calibrate on")
            a = np.array(rows)
            sol = np.linalg.lstsq(a, np.array(y) - np.array(fixed), rcond=None)[0]
            coef[name], used[name] = [float(v) for v in sol], len(rows)
        return cls(cal.family, cal.lutram_max_depth, coef, used)

    def predict(self, p: CoreParams, test_rows: int, group: int = 1, cores: int = 1) -> dict:
        f = features(p, test_rows, self.family, self.lutram_max_depth, group)
        out = {}
        for name in RESOURCES:
            x, fixed = _design(name, f)
            one = fixed + float(np.dot(self.coef[name], x))
            if name == "BRAM":
                one = cores * one - (cores - 1) * f["selftest_blocks"]
            else:
                one = cores * one
            out[name] = max(0, math.ceil(one - 1e-9))
        return out


def fitted(name: str, pt: dict) -> bool:
    """Whether the model fits resource ``name`` on point ``pt``: a measured count; for LUT and
    FF only of a build mapped by ABC9 (``abc``; flow.run falls back to the classic ABC where
    Yosys' ABC9 aborts, whose mapping takes far more LUTs: 27,795 against about 16,000 at
    4 x 8 lanes on the ULX3S, docs/fpga.md), so that the model predicts one mapping."""
    if pt.get(name) is None:
        return False
    return name not in ("LUT", "FF") or pt.get("abc", "abc9") == "abc9"


def held_out_errors(cal: Calibration) -> dict:
    """Per resource: each measured point predicted by a model fitted on the other points
    (those whose others determine the fit: as many distinct design rows as the model has
    coefficients), as (point, measured, predicted) rows."""
    out = {}
    for name in RESOURCES:
        have = [i for i, pt in enumerate(cal.points) if fitted(name, pt)]
        rows = []
        for i in have:
            others = [cal.points[j] for j in range(len(cal.points)) if j != i]
            n_params = len(_design(name, dict.fromkeys(("multipliers", "core_blocks",
                                                         "selftest_blocks", "macs"), 0))[0])
            design = [_design(name, features(_point_params(pt), pt["test_rows"], cal.family,
                                             cal.lutram_max_depth))[0]
                      for pt in others if fitted(name, pt)]
            if not design or np.linalg.matrix_rank(np.array(design)) < n_params:
                continue   # (the others do not determine the fit: e.g. two points, one MACs)
            model = ResourceModel.fit(cal, others)
            pt = cal.points[i]
            predicted = model.predict(_point_params(pt), pt["test_rows"])[name]
            rows.append({"key_lanes": pt["key_lanes"], "dim_lanes": pt["dim_lanes"],
                         "measured": pt[name], "predicted": predicted})
        out[name] = rows
    return out


def pareto_front(points: list[dict], keys=("latency_s", "energy_j", "utilisation")) -> None:
    """Mark ``pareto`` on each point: no other point is at least as good in every key and
    better in one."""
    values = np.array([[pt[k] for k in keys] for pt in points], dtype=float)
    for i, pt in enumerate(points):
        le = np.all(values <= values[i], axis=1)
        lt = np.any(values < values[i], axis=1)
        pt["pareto"] = not bool(np.any(le & lt))


NOT_ROUTED = "not routed, off the front"


def _fmax(cal: Calibration, kl: int, dl: int, head_dim: int, window: int) -> tuple[float, str]:
    timed = [pt for pt in cal.points if pt.get("fmax_mhz")]
    if not timed:
        raise ExploreError(f"board {cal.board}: no measured Fmax in the calibration data")
    same = [pt["fmax_mhz"] for pt in timed if (pt["key_lanes"], pt["dim_lanes"],
            pt["head_dim"], pt["before"] + pt["after"] + 1) == (kl, dl, head_dim, window)]
    if same:
        return min(same), "measured"
    lanes = [pt["fmax_mhz"] for pt in timed if (pt["key_lanes"], pt["dim_lanes"]) == (kl, dl)]
    if lanes:
        return min(lanes), "measured at these lanes (board default window)"
    failed = [pt.get("note", "no Fmax") for pt in cal.points if not pt.get("fmax_mhz")
              and (pt["key_lanes"], pt["dim_lanes"]) == (kl, dl)]
    lowest = min(pt["fmax_mhz"] for pt in timed)
    if failed:   # (explore keeps such a point off the Pareto front: NOT_ROUTED)
        return lowest, f"{NOT_ROUTED}: the build of these lanes: {failed[0]}; clocked at the " \
                       f"lowest measured"
    return lowest, "lowest measured"


def _powers(limit: int) -> list[int]:
    return [2 ** k for k in range(0, int(math.log2(limit)) + 1)] if limit >= 1 else []


def explore(model: ModelConfig, seq_len: int, cal: Calibration, *, budget: dict | None = None,
            fmt: NumberFormat | None = None, head_schedule: str | None = None,
            max_cores: int | None = None, table: EnergyTable | None = None,
            offchip_bytes_per_cycle: float = 16.0, test_rows: int | None = None) -> list[dict]:
    """Every (key_lanes, dim_lanes, cores) that fits ``budget`` (default: the board's
    resources), with its resources, clock, latency and energy on ``model`` at ``seq_len`` rows
    and its ``pareto`` mark, fastest first. ``head_schedule``: ``serial`` or ``gqa`` (default
    :func:`swatkit.sim.estimate.default_head_schedule`, as ``swatkit estimate``).

    Raises
    ------
    ExploreError
        Nothing fits (the message names the smallest point's needs).
    ModelError
        The model has no layer the core can run.
    """
    from swatkit.sim.estimate import default_head_schedule
    from swatkit.sim.model_configs import ModelError

    fmt = fmt or NumberFormat()
    head_schedule = head_schedule or default_head_schedule(model)
    budget = {**cal.available, **(budget or {})}
    rm = ResourceModel.fit(cal)
    if any(p.kind == "blocksparse" for p in model.patterns):
        raise ModelError(f"model {model.name}: the resource model is calibrated on token-band "
                         f"cores, not on BigBird's block-sparse core (its global-row engines "
                         f"and random-block memories); `swatkit estimate --model` estimates it")
    windows = [p for p in model.patterns if p.kind == "window"]
    if not windows:
        raise ModelError(f"model {model.name}: no layer has a sliding window")
    sizing = max(windows, key=lambda p: p.before + p.after)   # the core holds the widest
    spec = sizing.spec(seq_len, model.head_dim)
    group = model.group if head_schedule == "gqa" else 1
    jobs = model.kv_heads if head_schedule == "gqa" else model.heads
    max_cores = max_cores or min(jobs, 16)
    rows = test_rows or max(pt["test_rows"] for pt in cal.points)
    smallest = None
    points, refused = [], None
    for kl in _powers(min(64, min(p.spec(seq_len, model.head_dim).window for p in windows))):
        for dl in [x for x in _powers(min(256, model.head_dim)) if model.head_dim % x == 0]:
            try:
                p = CoreParams(spec, fmt, HardwareConfig(kl, dl, seq_len))
            except ValueError as e:
                refused = refused or str(e)
                continue
            for cores in range(1, max_cores + 1):
                used = rm.predict(p, rows, group, cores)
                util = max(used[k] / budget[k] for k in RESOURCES if budget.get(k))
                if smallest is None or util < smallest[0]:
                    smallest = (util, kl, dl, cores, used)
                if any(budget.get(k) is not None and used[k] > budget[k] for k in RESOURCES):
                    break   # more cores only need more
                fmax, fsrc = _fmax(cal, kl, dl, model.head_dim, spec.window)
                rec = next(r for r in estimate_model(
                    model, [seq_len], ["swat"], fmt=fmt, key_lanes=kl, dim_lanes=dl,
                    head_schedule=head_schedule, head_engines=group, cores=cores,
                    clock_hz=fmax * 1e6, table=table,
                    offchip_bytes_per_cycle=offchip_bytes_per_cycle,
                    clock_source=f"Fmax {fsrc}") if r["scope"] == "model")
                points.append({
                    "model": model.name, "seq_len": seq_len, "board": cal.board,
                    "key_lanes": kl, "dim_lanes": dl, "cores": cores,
                    "head_schedule": head_schedule, "macs_per_cycle": 2 * group * kl * dl * cores,
                    **used, "utilisation": util, "fmax_mhz": fmax, "fmax_source": fsrc,
                    "cycles": rec["cycles"], "latency_s": rec["latency_s"],
                    "energy_j": rec["energy_j"], "energy_breakdown": rec["energy_breakdown"],
                    "tech": rec["tech"]})
    if smallest is None:   # (no lane shape makes a core: the format or the window refuse it)
        raise ExploreError(f"no core can be made for {model.name}: {refused}")
    if not points:
        util, kl, dl, cores, used = smallest
        over = ", ".join(f"{k} {used[k]} of {budget[k]}" for k in RESOURCES
                         if budget.get(k) is not None and used[k] > budget[k])
        raise ExploreError(f"nothing fits the budget: the smallest point ({kl}x{dl} lanes, "
                           f"{cores} core) needs {over}")
    # a lane shape whose calibration build did not route has no Fmax to stand on: listed (with
    # --all), never on the front
    routed = [pt for pt in points if not pt["fmax_source"].startswith(NOT_ROUTED)]
    pareto_front(routed)
    for pt in points:
        pt.setdefault("pareto", False)
    points.sort(key=lambda r: (r["latency_s"], r["energy_j"]))
    return points


def replace_budget(cal: Calibration, **available) -> Calibration:
    return dataclasses.replace(cal, available={**cal.available, **available})
