"""The options every ``swatkit`` subcommand shares, and how they resolve into config objects.

One definition: the workload (:class:`~swatkit.golden.AttentionSpec`), the number format
(:class:`~swatkit.golden.NumberFormat`) and the hardware (``[hardware]``: lanes) come from, in
rising priority, built-in defaults, a ``--config FILE.toml`` (tables ``[spec]``, ``[format]``,
``[hardware]``) and the command line. Every bad value becomes a :class:`UsageError` whose message
names the option (or the config key) and the value.
"""

from __future__ import annotations

import argparse
import dataclasses
import tomllib
from dataclasses import dataclass
from pathlib import Path

from swatkit.golden import AttentionSpec, NumberFormat

__all__ = [
    "DEFAULT_HEAD_DIM",
    "DEFAULT_SEQ_LEN",
    "Resolved",
    "UsageError",
    "add_hardware_options",
    "add_workload_options",
    "core_params",
    "resolve",
]

DEFAULT_SEQ_LEN = 4096     # Longformer-base's max_position_embeddings
DEFAULT_HEAD_DIM = 64      # Longformer-base: 768 / 12 heads


class UsageError(Exception):
    """A bad option value or config file; the CLI prints it as one line and exits with 2."""


# Keys of the [spec] table and the options they mirror (None: a flag with no value)
SPEC_KEYS = {
    "seq_len": "--seq-len",
    "head_dim": "--head-dim",
    "attention_window": "--attention-window",
    "causal": "--causal",
    "sliding_window": "--sliding-window",
    "dilation": "--dilation",
    "global_tokens": "--global-tokens",
}
FORMAT_KEYS = {f.name: "--" + f.name.replace("_", "-")
               for f in dataclasses.fields(NumberFormat)}
HARDWARE_KEYS = {"key_lanes": "--key-lanes", "dim_lanes": "--dim-lanes"}
TABLES = {"spec": SPEC_KEYS, "format": FORMAT_KEYS, "hardware": HARDWARE_KEYS}
ALL_OPTIONS = {**SPEC_KEYS, **FORMAT_KEYS, **HARDWARE_KEYS}


def _token_list(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(t) for t in text.split(",") if t.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"must be comma-separated integers, not {text!r}") from None


def add_workload_options(parser: argparse.ArgumentParser, seq_len_type=int,
                         seq_len_help: str = f"sequence length (default {DEFAULT_SEQ_LEN})"
                         ) -> None:
    """The [spec] and [format] options, and --config. A command that sweeps N passes its own
    ``seq_len_type`` (and sets ``args.seq_len`` to one length before :func:`resolve`)."""
    parser.add_argument("--config", metavar="FILE.toml", type=Path,
                        help="TOML with [spec], [format] and [hardware] tables; "
                             "options on the command line override it")
    g = parser.add_argument_group("workload (one attention head)")
    g.add_argument("--seq-len", metavar="N", type=seq_len_type, help=seq_len_help)
    g.add_argument("--head-dim", metavar="D", type=int,
                   help=f"head dimension (default {DEFAULT_HEAD_DIM})")
    g.add_argument("--attention-window", metavar="W", type=int,
                   help="bidirectional window, Longformer's meaning: W/2 keys on each side "
                        "(default 512)")
    g.add_argument("--causal", action="store_true", default=None,
                   help="causal sliding window (Mistral's meaning) instead")
    g.add_argument("--sliding-window", metavar="W", type=int,
                   help="with --causal: the row and W-1 keys before it (default 4096)")
    g.add_argument("--dilation", metavar="K", type=int, help="distance between window keys")
    g.add_argument("--global-tokens", metavar="I,J,...", type=_token_list,
                   help="positions that attend to, and are attended by, every row")
    f = parser.add_argument_group("number format (fixed-point datapath)")
    for field in dataclasses.fields(NumberFormat):
        kind = float if field.name.startswith("scale") else int
        f.add_argument(FORMAT_KEYS[field.name], dest=field.name, type=kind,
                       metavar="X" if kind is float else "B",
                       help=f"(default {field.default:g})")


def add_hardware_options(parser: argparse.ArgumentParser) -> None:
    """The [hardware] options."""
    h = parser.add_argument_group("hardware")
    h.add_argument("--key-lanes", metavar="K", type=int,
                   help="attention cores working on different keys in parallel")
    h.add_argument("--dim-lanes", metavar="M", type=int,
                   help="multipliers per core per cycle (divides head_dim)")


@dataclass(frozen=True)
class Resolved:
    """What the shared options resolved to."""

    spec: AttentionSpec
    fmt: NumberFormat
    hardware: dict  # [hardware] keys given (validated by the stage that uses them)
    sources: dict   # key -> "default" | "config" | "option", for reports


def _load_config(path: Path) -> dict:
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise UsageError(f"--config: no such file: {path}") from None
    except OSError as e:
        raise UsageError(f"--config: cannot read {path}: {e.strerror}") from None
    except tomllib.TOMLDecodeError as e:
        raise UsageError(f"--config: {path} is not valid TOML: {e}") from None
    for table, value in data.items():
        if table not in TABLES:
            raise UsageError(f"--config: unknown table [{table}] in {path} "
                             f"(expected {', '.join('[' + t + ']' for t in TABLES)})")
        if not isinstance(value, dict):
            raise UsageError(f"--config: {table} in {path} must be a table")
        for key in value:
            if key not in TABLES[table]:
                raise UsageError(f"--config: unknown key {key!r} in [{table}] of {path}")
    return data


def resolve(args: argparse.Namespace) -> Resolved:
    """Merge defaults, ``--config`` and options into a spec, a format and hardware fields."""
    config = _load_config(args.config) if getattr(args, "config", None) else {}
    values, names, sources = {}, {}, {}
    for table, keys in TABLES.items():
        for key, option in keys.items():
            given = getattr(args, key, None)
            if given is not None:
                values[key], names[key], sources[key] = given, option, "option"
            elif key in config.get(table, {}):
                values[key] = config[table][key]
                names[key] = f"[{table}] {key} in {args.config}"
                sources[key] = "config"

    def fail(key, message):
        raise UsageError(f"{names.get(key, key)} {message}")

    causal = values.get("causal", False)
    if not isinstance(causal, bool):
        fail("causal", f"must be true or false, not {causal!r}")
    if causal and "attention_window" in values:
        fail("attention_window", "cannot be combined with --causal (use --sliding-window)")
    if not causal and "sliding_window" in values:
        fail("sliding_window", "needs --causal")
    tokens = values.get("global_tokens", ())
    if isinstance(tokens, list):
        tokens = tuple(tokens)

    spec_args = {"seq_len": values.get("seq_len", DEFAULT_SEQ_LEN),
                 "head_dim": values.get("head_dim", DEFAULT_HEAD_DIM)}
    try:
        if causal:
            spec = AttentionSpec.causal(**spec_args,
                                        sliding_window=values.get("sliding_window", 4096))
        else:
            spec = AttentionSpec.longformer(**spec_args,
                                            attention_window=values.get("attention_window", 512))
        spec = spec.replace(dilation=values.get("dilation", 1), global_tokens=tokens)
        fmt = NumberFormat(**{k: values[k] for k in FORMAT_KEYS if k in values})
    except (TypeError, ValueError) as e:
        raise option_error(e, names) from None
    hardware = {k: values[k] for k in HARDWARE_KEYS if k in values}
    return Resolved(spec, fmt, hardware, sources)


def core_params(resolved: Resolved, max_seq_len: int):
    """The SWAT core's :class:`~swatkit.rtl.CoreParams` for the resolved options, with counters
    for ``max_seq_len`` rows; a bad or conflicting value becomes a :class:`UsageError`."""
    from swatkit.rtl import CoreParams, HardwareConfig

    try:
        hw = HardwareConfig(**resolved.hardware, max_seq_len=max_seq_len)
        return CoreParams(resolved.spec, resolved.fmt, hw)
    except (TypeError, ValueError) as e:
        raise option_error(e, {}) from None


def option_error(error: Exception, names: dict) -> UsageError:
    """Turn a library message, which starts with a field name, into one naming the option."""
    message = str(error)
    field, _, rest = message.partition(" ")
    key = "global_tokens" if field == "global" else field  # "global token 40 is outside ..."
    label = names.get(key) or ALL_OPTIONS.get(key)
    if label is None:
        return UsageError(message)
    return UsageError(f"{label} {rest}" if key == field else f"{label}: {message}")
