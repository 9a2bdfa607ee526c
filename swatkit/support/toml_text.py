"""TOML text of flat tables (scalars and lists), for configs swatkit prints or embeds.

The standard library reads TOML (``tomllib``) but does not write it; swatkit's tables hold only
booleans, integers, finite floats, strings and lists of them, which this writes exactly (a
float as Python's shortest round-trip repr, a string as a JSON string, which is a TOML basic
string). Every stage may use it.
"""

from __future__ import annotations

import json
import math

__all__ = ["dumps"]


def _value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"no TOML for {value!r}")
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    raise TypeError(f"no TOML for {value!r}")


def dumps(tables: dict) -> str:
    """``{table: {key: value}}`` as TOML text (``None`` values are left out)."""
    lines = []
    for table, values in tables.items():
        lines.append(f"[{table}]")
        lines += [f"{key} = {_value(v)}" for key, v in values.items() if v is not None]
        lines.append("")
    return "\n".join(lines)
