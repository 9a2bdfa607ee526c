"""Reading a file the user named: bounded in size and depth, and never blocking.

Every configuration, report or table a command reads (``--config``, ``estimate --from-flow``
and ``--tech``, ``explore --flows``) goes through :func:`read_bytes`, :func:`load_json` or
:func:`load_toml`, so that whatever path the user gives is answered at once:

- only a regular file is opened for reading: a folder, a FIFO (which would block until a
  writer comes), a device such as ``/dev/zero`` (endless) or a socket is refused by what the
  opened descriptor is (opened without blocking, so a FIFO cannot hang the open either);
- at most :data:`MAX_INPUT_BYTES` are read: a larger file is refused, never read whole;
- JSON and TOML nested deeper than :data:`MAX_NESTING` containers are refused (Python's parsers
  would raise ``RecursionError`` a little deeper, and code that walks the data later too);
- JSON's non-standard ``NaN`` and ``Infinity`` are refused, as are integers of more digits than
  Python converts (a ``ValueError`` inside the parsers).

Each refusal is an :class:`InputFileError` (a ``ValueError``) whose message names the path as
given and says what is wrong with it; a caller puts the option in front (``--config: ...``).
"""

from __future__ import annotations

import json
import numbers
import os
import stat
import sys
import tomllib

__all__ = ["MAX_INPUT_BYTES", "MAX_NESTING", "InputFileError", "check_int", "check_nesting",
           "integer_problem",
           "load_json", "load_toml", "read_bytes"]

MAX_INPUT_BYTES = 16 * 2 ** 20   # far above any configuration or report swatkit writes
MAX_NESTING = 32                 # containers inside containers (swatkit's own files: 4)


class InputFileError(ValueError):
    """A file that cannot be read as asked; the message names the path."""


def integer_problem(name: str, value, lo: int, hi: int | None = None,
                    why: str | None = None) -> tuple[type, str] | None:
    """The one integer rule of swatkit and its one wording: None when ``value`` is an integer
    (an ``int`` or a NumPy integer; not a ``bool``, and nothing is coerced: not ``"8"``, not
    ``8.0``) in ``lo..hi`` (no upper bound: ``hi`` None); else ``(TypeError, "<name> must be
    an integer, not <value!r>")`` or ``(ValueError, "<name> must be an integer in lo..hi, not
    <value>")``, without ``hi`` ``"a positive integer"`` (``lo`` 1), ``"a non-negative
    integer"`` (``lo`` 0) or ``"an integer >= lo"``; ``why`` (what sets the bounds) follows the
    bound in parentheses: ``"must be an integer in 1..1024 (the core's max_seq_len), not
    2000"``. :func:`check_int` and :func:`swatkit.golden.checks.check_int` raise it."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        return TypeError, f"{name} must be an integer, not {value!r}"
    if lo <= value and (hi is None or value <= hi):
        return None
    if hi is not None:
        bound = f"an integer in {lo}..{hi}"
    else:
        bound = {0: "a non-negative integer", 1: "a positive integer"}.get(
            lo, f"an integer >= {lo}")
    if why:
        bound = f"{bound} ({why})"
    return ValueError, f"{name} must be {bound}, not {value}"


def check_int(label: str, value, lo: int, hi: int | None = None, error=ValueError) -> int:
    """An integer the user gave (an option a command checks itself, a field of a report read
    back) by :func:`integer_problem`'s rule and wording; a problem raises ``error`` (an
    exception class taking the message). The config objects (``AttentionSpec``,
    ``NumberFormat``, ``HardwareConfig``) check theirs with
    :func:`swatkit.golden.checks.check_int`, the same rule."""
    problem = integer_problem(label, value, lo, hi)
    if problem is not None:
        raise error(problem[1])
    return int(value)


def shown(path: str | os.PathLike) -> str:
    """``path`` as a message shows it: as typed, or quoted with escapes (``repr``) when it holds
    a character that is not printable (a line break would split the one-line message)."""
    text = str(path)
    return text if text.isprintable() else repr(text)


_KINDS = ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a device"),
          (stat.S_ISBLK, "a device"), (stat.S_ISSOCK, "a socket"))


def read_bytes(path: str | os.PathLike, limit: int = MAX_INPUT_BYTES, kind: str = "") -> bytes:
    """The bytes of the regular file ``path``, at most ``limit`` of them. ``kind`` (say
    ``"energy table"``) goes before the path in messages."""
    name = f"{kind} {shown(path)}" if kind else shown(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except FileNotFoundError:
        raise InputFileError(f"no such {kind or 'file'}: {shown(path)}") from None
    except OSError as e:
        raise InputFileError(f"cannot read {name}: {e.strerror}") from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            what = next((what for test, what in _KINDS if test(mode)), None)
            raise InputFileError(f"{name} is {what}, not a file" if what else
                                 f"{name} is not a regular file")
        chunks, size = [], 0
        while size <= limit:
            chunk = os.read(fd, min(limit + 1 - size, 2 ** 20))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except OSError as e:
        raise InputFileError(f"cannot read {name}: {e.strerror}") from None
    finally:
        os.close(fd)
    if size > limit:
        raise InputFileError(f"{name} is larger than {limit:,} bytes")
    return b"".join(chunks)


def _no_constant(name: str):
    raise ValueError(f"{name} is not a JSON number")


def _parse_error(name: str, syntax: str, error: ValueError) -> InputFileError:
    if "integer string conversion" in str(error):   # Python's limit, not the file's syntax
        return InputFileError(f"{name} has an integer of more than "
                              f"{sys.get_int_max_str_digits()} digits")
    return InputFileError(f"{name} is not valid {syntax}: {error}")


def load_json(path: str | os.PathLike, limit: int = MAX_INPUT_BYTES, kind: str = ""):
    """The JSON value in the file ``path`` (bounded as :func:`read_bytes`, depth as
    :func:`check_nesting`)."""
    name = f"{kind} {shown(path)}" if kind else shown(path)
    raw = read_bytes(path, limit, kind)
    try:
        value = json.loads(raw, parse_constant=_no_constant)
    except RecursionError:
        raise InputFileError(f"{name} nests more than {MAX_NESTING} levels deep") from None
    except UnicodeDecodeError:
        raise InputFileError(f"{name} is not UTF-8 text (a JSON file)") from None
    except ValueError as e:   # (JSONDecodeError, NaN, an integer of too many digits)
        raise _parse_error(name, "JSON", e) from None
    check_nesting(value, name)
    return value


def load_toml(path: str | os.PathLike, limit: int = MAX_INPUT_BYTES, kind: str = "") -> dict:
    """The TOML tables in the file ``path`` (bounded as :func:`read_bytes`, depth as
    :func:`check_nesting`)."""
    name = f"{kind} {shown(path)}" if kind else shown(path)
    raw = read_bytes(path, limit, kind)
    try:
        value = tomllib.loads(raw.decode("utf-8"))
    except RecursionError:
        raise InputFileError(f"{name} nests more than {MAX_NESTING} levels deep") from None
    except UnicodeDecodeError:
        raise InputFileError(f"{name} is not UTF-8 text (a TOML file)") from None
    except ValueError as e:   # (TOMLDecodeError, an integer of too many digits)
        raise _parse_error(name, "TOML", e) from None
    check_nesting(value, name)
    return value


def check_nesting(value, path: str | os.PathLike = "the data", limit: int = MAX_NESTING) -> None:
    """Refuse ``value`` (parsed JSON or TOML) if it nests more than ``limit`` containers."""
    level = [value] if isinstance(value, dict | list) else []
    depth = 0
    while level:
        depth += 1
        if depth > limit:
            raise InputFileError(f"{shown(path)} nests more than {limit} levels deep")
        level = [v for c in level for v in (c.values() if isinstance(c, dict) else c)
                 if isinstance(v, dict | list)]

