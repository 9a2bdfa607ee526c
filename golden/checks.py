"""How the configuration objects refuse a value: errors that name their field, and the one
integer check.

Every configuration object (:class:`~swatkit.golden.AttentionSpec`,
:class:`~swatkit.golden.NumberFormat`, :class:`~swatkit.rtl.HardwareConfig`,
:class:`~swatkit.rtl.CoreParams`) raises a :class:`ConfigValueError` or :class:`ConfigTypeError`
(a ``ValueError`` / ``TypeError``) whose ``field`` says which field the message is about, so
that a front end can name the option the user typed for it without reading the message. The
message itself starts with the field's name when it is about that field alone.
"""

from __future__ import annotations

import numpy as np

__all__ = ["ConfigError", "ConfigTypeError", "ConfigValueError", "check_int"]


class ConfigError(Exception):
    """A refused configuration value (the base of :class:`ConfigValueError` and
    :class:`ConfigTypeError`).

    Members
    -------
    field : str or None
        The field the message is about, as the object names it (``"head_dim"``,
        ``"num_random_blocks"``, ...); ``None`` for a rule between several fields that the
        message states (a format's scales against head_dim).
    """

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.field = field


class ConfigValueError(ConfigError, ValueError):
    """A configuration value out of range, or in conflict with another field."""


class ConfigTypeError(ConfigError, TypeError):
    """A configuration value of the wrong type."""


def check_int(field: str, value, lo: int, hi: int | None = None, *,
              name: str | None = None, why: str | None = None) -> int:
    """The library's integer rule: ``value`` is an ``int`` (or a NumPy integer), not a
    ``bool``, in ``lo..hi`` (no upper bound: ``hi`` None); returns it as an ``int``.

    The one wording (``name``, default ``field``, as the message names the value):
    ``"<name> must be an integer, not <value!r>"`` (a :class:`ConfigTypeError`), and a
    :class:`ConfigValueError` ``"<name> must be an integer in lo..hi, not <value>"``, or
    without ``hi`` ``"must be a positive integer"`` (``lo`` 1), ``"must be a non-negative
    integer"`` (``lo`` 0), ``"must be an integer >= lo"``; ``why`` (what sets the bounds)
    follows the bound in parentheses: ``"must be an integer in 1..1024 (the core's
    max_seq_len), not 2000"``.
    """
    name = name or field
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise ConfigTypeError(f"{name} must be an integer, not {value!r}", field)
    if value < lo or (hi is not None and value > hi):
        if hi is not None:
            bound = f"an integer in {lo}..{hi}"
        else:
            bound = {0: "a non-negative integer", 1: "a positive integer"}.get(
                lo, f"an integer >= {lo}")
        if why:
            bound = f"{bound} ({why})"
        raise ConfigValueError(f"{name} must be {bound}, not {value}", field)
    return int(value)
