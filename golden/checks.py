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

from swatkit.support.inputs import integer_problem

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
    """A configuration integer by swatkit's one integer rule and wording
    (:func:`swatkit.support.inputs.integer_problem`; ``name``, default ``field``, names the
    value; ``why``: what sets the bounds): a :class:`ConfigTypeError` or
    :class:`ConfigValueError` carrying ``field``; returns ``value`` as an ``int``."""
    problem = integer_problem(name or field, value, lo, hi, why)
    if problem is not None:
        kind, message = problem
        raise (ConfigTypeError if kind is TypeError else ConfigValueError)(message, field)
    return int(value)
