"""``flow.json`` as read back: ``swatkit estimate --from-flow`` and ``swatkit explore --flows``.

:func:`read_report` reads a report with the bounded reader of
:mod:`swatkit.support.inputs` and checks every record a reader uses, by type and range,
without coercing anything (``"8"`` is not 8, ``true`` is not 1):

- ``core``: ``head_dim``, ``window``, ``key_lanes``, ``dim_lanes``, ``data_bits``, integers in
  the ranges the core accepts;
- ``spec``, ``format``, ``hardware``: together they must make a :class:`~swatkit.rtl.CoreParams`
  (the config objects check their own fields);
- ``fmax_mhz``: per clock an achieved Fmax, a positive finite number (nextpnr's constant-net
  "clocks", ``$PACKER_…``, are left out); ``null`` where the flow has not run;
- ``utilization``: per resource ``used`` and ``available``, integers with
  ``0 <= used <= available``.

and then checks the records against each other: the ``core`` record must describe the core of
the ``spec``/``format``/``hardware`` records. A report that fails any check is refused with a
:class:`ReportError` naming the path, the record and the value, so a corrupt record can never
be replaced silently by a default.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from pathlib import Path

from swatkit.golden import AttentionSpec, NumberFormat
from swatkit.support.inputs import InputFileError, check_int, load_json

__all__ = ["CORE_FIELDS", "FlowReport", "ReportError", "check_count", "read_report",
           "read_side_record"]


class ReportError(ValueError):
    """A flow.json (or the swatkit.json beside it) that cannot be used; names the path."""


def _core_ranges() -> dict:
    from swatkit.rtl.config import MAX_HEAD_DIM, MAX_WINDOW

    return {"head_dim": (1, MAX_HEAD_DIM), "window": (1, MAX_WINDOW), "key_lanes": (1, 64),
            "dim_lanes": (1, 256), "data_bits": NumberFormat.LIMITS["data_bits"]}


CORE_FIELDS = ("head_dim", "window", "key_lanes", "dim_lanes", "data_bits")


def check_count(where: str, value, lo: int, hi: int | None = None) -> int:
    """A count in a report: :func:`swatkit.support.inputs.check_int`, a :class:`ReportError`."""
    return check_int(where, value, lo, hi, ReportError)


@dataclass(frozen=True)
class FlowReport:
    """A checked flow.json: the records readers use.

    Members
    -------
    path : Path
    board : str or None
    core : dict or None
        The ``core`` record's :data:`CORE_FIELDS`.
    params : CoreParams or None
        The core of the ``spec``, ``format`` and ``hardware`` records (None: the report has
        none of them, as those of an earlier swatkit).
    fmax_mhz : float or None
        The lowest achieved Fmax of the design's clocks (None: none recorded).
    utilization : dict
        Resource name -> ``{"used": int, "available": int}`` (``available`` may be absent).
    raw : dict
        The whole report.
    """

    path: Path
    board: str | None
    core: dict | None
    params: object | None
    fmax_mhz: float | None
    utilization: dict = field(default_factory=dict)
    raw: dict = field(default_factory=dict)


def _json_object(path, what: str) -> dict:
    """The JSON object in ``path`` (the bounded reader), or a :class:`ReportError` naming it as
    ``what`` when it is not one."""
    try:
        value = load_json(path)
    except InputFileError as e:
        raise ReportError(str(e)) from None
    if not isinstance(value, dict):
        raise ReportError(f"{path} is not {what} (a JSON object)")
    return value


def read_report(path: str | Path) -> FlowReport:
    """Read and check the flow.json at ``path`` (see the module's docstring)."""
    report = _json_object(path, "a flow.json report")
    board = report.get("board")
    if board is not None and not isinstance(board, str):
        raise ReportError(f"{path}: board must be a board's name, not {board!r}")
    core = _core(path, report.get("core"))
    params = _params(path, report)
    if core is not None and params is not None:
        mine = {"head_dim": params.spec.head_dim, "window": params.window,
                "key_lanes": params.hw.key_lanes, "dim_lanes": params.hw.dim_lanes,
                "data_bits": params.fmt.data_bits}
        for key in CORE_FIELDS:
            if core[key] != mine[key]:
                raise ReportError(f"{path}: its core record says {key} {core[key]}, its spec, "
                                  f"format and hardware records {key} {mine[key]}")
    return FlowReport(Path(path), board, core, params, _fmax(path, report.get("fmax_mhz")),
                      _utilization(path, report.get("utilization")), report)


def _core(path, core) -> dict | None:
    if core is None:
        return None
    if not isinstance(core, dict):
        raise ReportError(f"{path}: core must be a record of {', '.join(CORE_FIELDS)}, "
                          f"not {core!r}")
    for key, (lo, hi) in _core_ranges().items():
        if key not in core:
            raise ReportError(f"{path}: core has no {key}")
        check_count(f"{path}: core {key}", core[key], lo, hi)
    return {key: core[key] for key in CORE_FIELDS}


def _params(path, report: dict):
    from swatkit.rtl import CoreParams, HardwareConfig

    records = {k: report.get(k) for k in ("spec", "format", "hardware")}
    if all(r is None for r in records.values()):
        return None
    for name, record in records.items():
        if not isinstance(record, dict):
            raise ReportError(f"{path}: {name} must be a record (spec, format and hardware "
                              f"come together), not {record!r}")
    for (name, record), kind in zip(records.items(), (AttentionSpec, NumberFormat,
                                                      HardwareConfig), strict=True):
        unknown = sorted(set(record) - {f.name for f in fields(kind)})
        if unknown:
            raise ReportError(f"{path}: {name} has an unknown field {unknown[0]!r}")
    try:
        return CoreParams.from_dict(records)
    except (TypeError, ValueError) as e:
        raise ReportError(f"{path}: its spec, format and hardware records make no core: "
                          f"{e}") from None


def _fmax(path, fmax) -> float | None:
    if fmax is None:
        return None
    clocks = fmax if isinstance(fmax, dict) else {"fmax_mhz": fmax}
    values = []
    for clock, value in clocks.items():
        if "$PACKER_" in clock:   # nextpnr's constant nets (older reports kept them)
            continue
        achieved = value.get("achieved") if isinstance(value, dict) else value
        if achieved is None:   # (a clock nextpnr did not time)
            continue
        if isinstance(achieved, bool) or not isinstance(achieved, int | float) or not (
                math.isfinite(achieved) and achieved > 0):
            where = "fmax_mhz" if clock == "fmax_mhz" else f"fmax_mhz of clock {clock!r}"
            raise ReportError(f"{path}: {where} must be a positive number of MHz, not "
                              f"{achieved!r}")
        values.append(float(achieved))
    return min(values) if values else None


def _utilization(path, util) -> dict:
    if util is None:
        return {}
    if not isinstance(util, dict):
        raise ReportError(f"{path}: utilization must be a record per resource, not {util!r}")
    out = {}
    for name, entry in util.items():
        if not isinstance(entry, dict):
            raise ReportError(f"{path}: utilization {name} must be a record with used and "
                              f"available, not {entry!r}")
        checked = {"used": check_count(f"{path}: utilization {name} used", entry.get("used"),
                                       0)}
        if entry.get("available") is not None:
            checked["available"] = check_count(f"{path}: utilization {name} available",
                                               entry["available"], 0)
            if checked["used"] > checked["available"]:
                raise ReportError(f"{path}: utilization {name} used {checked['used']} is more "
                                  f"than available {checked['available']}")
        out[name] = checked
    return out


def read_side_record(path: Path) -> dict:
    """The ``swatkit.json`` beside a flow.json (``{}`` if there is none), checked as a JSON
    object; the fields a reader takes from it it checks itself (:func:`check_count`)."""
    if not path.exists() and not path.is_symlink():
        return {}
    record = _json_object(path, "a swatkit.json record")
    for name in ("spec", "hardware", "selftest"):
        if not isinstance(record.get(name, {}), dict):
            raise ReportError(f"{path}: {name} must be a record, not {record[name]!r}")
    return record
