"""``explore``'s calibration data, written from a sweep's builds.

``python -m swatkit.fpga_flows.calibrate BOARD DIR [-o FILE]`` reads ``DIR/sweep.json`` (written
by ``swatkit flow --board BOARD --sweep -o DIR``) and the ``flow.json`` of every built point
under DIR (checked as ``swatkit explore --flows`` reads them), and writes the calibration record
that ``fpga_flows/calibration/BOARD.json`` holds: the board's available resources, the sweep's
base configuration, one point per (key_lanes, dim_lanes) with its measured resources and Fmax,
and the dates of the builds (``built``: the first and last build, from each report's file time)
with the swatkit version and source revision that made them. A point that did not fit keeps the
counts the flow's message names (nextpnr's cell, used of available) and the message itself as
its note; a point that failed otherwise keeps only the note.

The shipped files are refreshed this way (docs/estimation.md, "Calibration data"), so
``swatkit explore`` prints the date of the builds its resource model and Fmax rest on.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

__all__ = ["calibration_record", "main"]

# "ICESTORM_LC 5506 used of 5280" in a DoesNotFitError's message (fpga_flows.flow)
_OVER = re.compile(r"([A-Za-z0-9_]+) (\d+) used of (\d+)")


def _failed_point(row: dict, family: str) -> dict:
    """The calibration point of a sweep row that failed: the counts its message names."""
    from swatkit.fpga_flows.explore import RESOURCES
    from swatkit.fpga_flows.flow import RESOURCES as CELLS

    pt = {"key_lanes": row["key_lanes"], "dim_lanes": row["dim_lanes"], "fmax_mhz": None}
    cell_of = CELLS.get(family, {})
    for cell, used, _avail in _OVER.findall(row.get("note", "")):
        # the first resource counted on this cell (iCE40: an ICESTORM_LC is a LUT first)
        name = next((r for r in RESOURCES if cell_of.get(r) == cell), None)
        if name is not None and name not in pt:
            pt[name] = int(used)
    pt["note"] = f"failed (the flow's message: {row.get('note') or 'none'}); no Fmax"
    return pt


def calibration_record(board: str, folder: str | Path) -> dict:
    """The calibration record of ``board`` from the sweep in ``folder``.

    Raises :class:`~swatkit.fpga_flows.explore.ExploreError` when the folder holds no sweep of
    that board or a report is corrupt.
    """
    from swatkit.fpga_flows.explore import ExploreError, _read_flows, rom_rows
    from swatkit.fpga_flows.report import read_report
    from swatkit.support.boards import get_board

    folder = Path(folder)
    try:
        b = get_board(board)
    except ValueError as e:
        raise ExploreError(str(e)) from None
    try:
        sweep = json.loads((folder / "sweep.json").read_text())
    except (OSError, ValueError) as e:
        raise ExploreError(f"{folder / 'sweep.json'}: cannot read the sweep: {e}") from None
    if sweep.get("board") != board:
        raise ExploreError(f"{folder / 'sweep.json'} is a sweep of {sweep.get('board')!r}, "
                           f"not {board!r}")
    base = sweep["base"]
    measured = {(pt["key_lanes"], pt["dim_lanes"]): (pt, avail)
                for pt, avail in _read_flows(folder, board)}
    points, available, built, tools = [], {}, [], {}
    for row in sweep["rows"]:
        lanes = (row["key_lanes"], row["dim_lanes"])
        if row.get("status") == "done" and lanes in measured:
            pt, avail = measured[lanes]
            report = read_report(Path(pt["origin"]))
            available = available or avail
            when = pt.get("built_utc")   # (checked by the reader)
            built += [when] if when else []
            tools = tools or (report.raw.get("tool_versions") or {})
            points.append({k: v for k, v in pt.items() if k != "origin"})
        else:
            points.append(_failed_point(row, b.family))
    if not any(pt.get("fmax_mhz") for pt in points):
        raise ExploreError(f"{folder}: no point of the sweep was built (no Fmax to calibrate on)")
    revision = sweep.get("swatkit_revision")
    tool_text = ", ".join(f"{k} {v}" for k, v in sorted(tools.items()))
    first, last = (min(built)[:10], max(built)[:10]) if built else ("?", "?")
    when = first if first == last else f"{first} to {last}"
    return {
        "board": board,
        "family": b.family,
        "source": (f"`swatkit flow --board {board} --sweep` builds of {when} (swatkit "
                   f"{base.get('swatkit_version')}"
                   + (f", source {revision}" if revision else "")
                   + (f"; {tool_text}" if tool_text else "") + "), core + self-test"),
        "built": {"first": min(built) if built else None, "last": max(built) if built else None},
        "swatkit_version": base.get("swatkit_version"),
        "swatkit_revision": revision,
        "available": available,
        "lutram_max_depth": 64 if b.family == "ecp5" else 0,
        "base": {"head_dim": base["spec"]["head_dim"],
                 "attention_window": base["spec"]["before"] + base["spec"]["after"],
                 "seq_len": base["hardware"]["max_seq_len"],
                 "test_rows": rom_rows(base["selftest"])},
        "points": points,
    }


def main(argv: list[str] | None = None) -> int:
    from swatkit.fpga_flows.explore import ExploreError

    parser = argparse.ArgumentParser(
        prog="python -m swatkit.fpga_flows.calibrate",
        description="write explore's calibration record of BOARD from the sweep in DIR "
                    "(swatkit flow --board BOARD --sweep -o DIR)")
    parser.add_argument("board", metavar="BOARD")
    parser.add_argument("folder", metavar="DIR")
    parser.add_argument("-o", "--output", metavar="FILE",
                        help="write the record here (default: print it)")
    args = parser.parse_args(argv)
    try:
        record = calibration_record(args.board, args.folder)
    except ExploreError as e:
        print(f"calibrate: error: {e}", file=sys.stderr)
        return 2
    text = json.dumps(record, indent=1) + "\n"
    if args.output:
        Path(args.output).write_text(text)
        print(f"wrote {args.output}: {len(record['points'])} points, {record['source']}")
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":   # pragma: no cover - the command line
    sys.exit(main())
