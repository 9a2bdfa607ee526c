"""The options every ``swatkit`` subcommand shares, and how they resolve into config objects.

One definition: the workload (:class:`~swatkit.golden.AttentionSpec`), the number format
(:class:`~swatkit.golden.NumberFormat`) and the hardware (``[hardware]``: lanes) come from, in
rising priority, built-in defaults, a ``--config`` file and the command line. The file is TOML
with tables ``[spec]``, ``[format]``, ``[hardware]`` (and ``[generate]``, ``[flow]`` for those
commands), or a ``swatkit.json`` / ``flow.json`` that ``swatkit generate`` / ``flow`` wrote (its
``"config"`` record holds the same tables). The window is one group: a window option on the
command line (``--attention-window``, ``--causal``/``--no-causal``, ``--sliding-window``)
replaces the whole window of the file.

BigBird's block-sparse pattern (``--bigbird BLOCK``, ``--random-blocks R``, ``--pattern-seed S``;
``[spec]`` keys ``bigbird_block``, ``random_blocks``, ``pattern_seed`` and ``random_table``, an
explicit table as a list of rows) is the other kind of pattern: it builds
:meth:`AttentionSpec.bigbird`. Given together with a window option (the window keys,
``--dilation``, ``--global-tokens``) from the same place it is an error; a BigBird option on the
command line replaces the file's window (and its dilation and global tokens), and a window
option on the command line replaces the file's BigBird pattern.

Every bad value becomes a :class:`UsageError` whose message names the option (or the config key)
and the value as the user gave them; sizes beyond the core's practical limits
(:mod:`swatkit.rtl.config`) are refused at once, naming the limit.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from swatkit.golden import AttentionSpec, NumberFormat
from swatkit.support.inputs import InputFileError, check_int, load_json, load_toml

__all__ = [
    "DEFAULT_DECODE_STEPS",
    "DEFAULT_HEAD_DIM",
    "DEFAULT_SEQ_LEN",
    "MAX_CORES",
    "MAX_LENGTHS",
    "MAX_REGRESS_ROWS",
    "MAX_RUNS",
    "MAX_SEED",
    "MAX_WORKERS",
    "Given",
    "Resolved",
    "SpelledAction",
    "UsageError",
    "add_hardware_options",
    "add_output_option",
    "add_workload_options",
    "check_folder",
    "check_int_option",
    "check_output_file",
    "command_error",
    "core_params",
    "gather",
    "limit_error",
    "make_folder",
    "output_label",
    "parse_lengths",
    "print_report",
    "resolve",
    "spelled",
    "warn",
    "waste_warnings",
    "write_files",
]

DEFAULT_SEQ_LEN = 4096     # Longformer-base's max_position_embeddings
DEFAULT_HEAD_DIM = 64      # Longformer-base: 768 / 12 heads
DEFAULT_ATTENTION_WINDOW = 512
DEFAULT_SLIDING_WINDOW = 4096
DEFAULT_DECODE_STEPS = 256  # `--decode` without T (estimate, regress)
MAX_LENGTHS = 256          # sequence lengths in one `--seq-len` list or range
# what one `swatkit regress` case may ask for, refused before anything is built: its rows (the
# sum over its runs) and the rows its harness holds (the core's max_seq_len at least). The
# harness keeps every row in simulated memory, and its Verilog grows faster than its depth
# (default core, load ~5: 17 s at 4,096 rows, 8 min at 16,384, unfinished after 10 min at 65,536).
MAX_REGRESS_ROWS = 16384
MAX_RUNS = 1024            # `regress --runs`: runs back to back in one case
MAX_WORKERS = 256          # `regress -n`: parallel simulations
MAX_SEED = 2 ** 31 - 1     # `regress --seed` (a fresh seed is drawn below 2^31)
MAX_CORES = 1024           # `explore --max-cores`


class UsageError(Exception):
    """A bad option value or config file; the CLI prints it as one line and exits with 2."""


def check_int_option(label: str, value, lo: int, hi: int) -> int:
    """An integer option a command checks itself: :func:`swatkit.support.inputs.check_int`
    (``label``: the option or key as the user gave it), a :class:`UsageError`."""
    return check_int(label, value, lo, hi, UsageError)


def check_output_file(label: str, path: Path) -> Path:
    """A file a command will write at its end, checked before it starts: not a folder, in a
    folder that exists and that it may write in."""
    if path.is_dir():
        raise UsageError(f"{label}: {path} is a folder, not a file")
    folder = path.resolve().parent
    if not folder.is_dir():
        raise UsageError(f"{label}: no such folder: {path.parent}")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise UsageError(f"{label}: cannot write in {path.parent}")
    if path.exists() and not os.access(path, os.W_OK):
        raise UsageError(f"{label}: cannot write {path}")
    return path


# -- -o/--output: the folder a command writes into ------------------------------------------


class SpelledAction(argparse.Action):
    """Stores an option's value and how the user spelled the option (``-o`` or ``--output``)
    as ``<dest>_option``, so that a message names what they typed (:func:`spelled`)."""

    def __call__(self, parser, namespace, values, option_string=None):
        setattr(namespace, self.dest, values)
        setattr(namespace, f"{self.dest}_option", option_string)


def spelled(args: argparse.Namespace, dest: str, default: str) -> str:
    """The option of ``dest`` as the user typed it (a :class:`SpelledAction`), else
    ``default``."""
    return getattr(args, f"{dest}_option", None) or default


class _OutputAction(SpelledAction):
    """``-o/--output``'s action (:func:`add_output_option`)."""


def add_output_option(parser: argparse.ArgumentParser, what: str,
                      default: str | None = None, *, group=None) -> None:
    """``-o/--output DIR``, with one meaning in every subcommand: the folder the command
    writes into (made if missing). ``what``: what goes there, for the help; ``default``: the
    folder without ``-o``, as the help says it (``None``: without ``-o`` the command writes
    where ``what`` says)."""
    (group or parser).add_argument(
        "-o", "--output", metavar="DIR", type=Path, action=_OutputAction,
        default=None if default is None else Path(default),
        help=f"the folder to write into, made if missing: {what}"
             + (f" (default {default})" if default is not None else ""))


def output_label(args: argparse.Namespace) -> str:
    """``-o`` or ``--output``, as the user typed it (``--output`` for the default)."""
    return spelled(args, "output", "--output")


def check_folder(label: str, path: Path) -> Path:
    """A folder a command will write into (made when its work starts), checked before it
    starts: not an existing file, and the nearest existing folder above it one it may write
    in; else :class:`UsageError` naming ``label`` (the option as typed) and ``path``."""
    if path.exists() and not path.is_dir():
        raise UsageError(f"{label}: {path} is a file, not a folder")
    full = path.expanduser().resolve()
    existing = next(p for p in (full, *full.parents) if p.exists())
    if not existing.is_dir():
        raise UsageError(f"{label}: cannot create {path}: {existing} is a file")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UsageError(f"{label}: cannot write in {existing}")
    return path


def make_folder(label: str, path: Path) -> Path:
    """Make the folder :func:`check_folder` checked (and its parents); a failure is a
    :class:`UsageError`."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UsageError(f"{label}: cannot create {path}: {e.strerror}") from None
    return path


def write_files(label: str, folder: Path, texts: dict[str, str]) -> list[Path]:
    """Write each ``name: text`` of ``texts`` into ``folder`` (made if missing); returns the
    paths. A failure is a :class:`UsageError` naming ``label`` and the file."""
    make_folder(label, folder)
    paths = []
    for name, text in texts.items():
        path = folder / name
        try:
            path.write_text(text)
        except OSError as e:
            raise UsageError(f"{label}: cannot write {path}: {e.strerror}") from None
        paths.append(path)
    return paths


def print_report(args: argparse.Namespace, stem: str, forms: dict[str, str],
                 table) -> list[Path]:
    """Print a command's report in its ``--format`` (``table``: the function ``table()``
    prints it; ``csv``, ``json``: the texts of ``forms``) and, with ``-o DIR``, save it into
    DIR: the table as printed (``STEM.txt``, with ``--format table``), and every form of
    ``forms`` (``STEM.csv``, ``STEM.json``). Returns the files written, each also named on a
    line ``wrote FILE`` (on standard error unless the format is the table)."""
    import contextlib
    import io

    if args.format == "table":
        table()
    else:
        sys.stdout.write(forms[args.format])
    if args.output is None:
        return []
    texts = {f"{stem}.{kind}": text for kind, text in forms.items()}
    if args.format == "table":   # (the same table again, into a string: no terminal styles)
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            table()
        texts = {f"{stem}.txt": printed.getvalue(), **texts}
    paths = write_files(output_label(args), args.output, texts)
    for path in paths:
        print(f"wrote {path}", file=sys.stdout if args.format == "table" else sys.stderr)
    return paths


# Keys of the [spec] table and the options they mirror
SPEC_KEYS = {
    "seq_len": "--seq-len",
    "head_dim": "--head-dim",
    "attention_window": "--attention-window",
    "causal": "--causal",
    "sliding_window": "--sliding-window",
    "dilation": "--dilation",
    "global_tokens": "--global-tokens",
    "sink_tokens": "--sink-tokens",
    "bigbird_block": "--bigbird",
    "random_blocks": "--random-blocks",
    "pattern_seed": "--pattern-seed",
    "random_table": "random_table",   # (only in a config file: a list of rows)
    "heads": "--heads",
    "kv_heads": "--kv-heads",
    "sink_logits": "--sink-logits",
    "contexts": "--contexts",
}
# grouped query heads and sink tokens: the commands whose parser has --heads take them
# (generate, regress, estimate, flow, prove; a parser without them refuses the keys of a
# config file); decode contexts: generate and regress
HEAD_KEYS = ("heads", "kv_heads", "sink_logits", "contexts")   # CoreParams' own fields
CORE_FEATURE_KEYS = (*HEAD_KEYS, "sink_tokens")
WINDOW_KEYS = ("attention_window", "causal", "sliding_window")
# the token band's pattern keys, and BigBird's: one kind per configuration
BAND_KEYS = (*WINDOW_KEYS, "dilation", "global_tokens", "sink_tokens")
BIGBIRD_KEYS = ("bigbird_block", "random_blocks", "pattern_seed", "random_table")
DEFAULT_RANDOM_BLOCKS = 3   # BigBird-base (Hugging Face's num_random_blocks)
# the names the golden spec and the core give BigBird's fields in their messages
FIELD_KEYS = {"block_size": "bigbird_block", "num_random_blocks": "random_blocks",
              "seed": "pattern_seed", "explicit_random_table": "random_table"}
FORMAT_KEYS = {f.name: "--" + f.name.replace("_", "-")
               for f in dataclasses.fields(NumberFormat)}
HARDWARE_KEYS = {"key_lanes": "--key-lanes", "dim_lanes": "--dim-lanes",
                 "max_global_tokens": "--max-global-tokens", "max_dilation": "--max-dilation",
                 "global_engines": "--global-engines"}
SHARED_TABLES = {"spec": SPEC_KEYS, "format": FORMAT_KEYS, "hardware": HARDWARE_KEYS}
# the tables of one command each (the command applies their defaults)
COMMAND_TABLES = {
    "generate": {"name": "--name", "dsp": "--dsp", "interface": "--interface"},
    "flow": {"board": "--board", "clock_mhz": "--clock-mhz", "selftest": "--selftest",
             "test_rows": "--test-rows", "seed": "--seed", "abc": "--abc",
             "nextpnr_options": "--nextpnr-options", "decode_steps": "--decode-steps"},
}
TABLES = {**SHARED_TABLES, **COMMAND_TABLES}
ALL_OPTIONS = {**SPEC_KEYS, **FORMAT_KEYS, **HARDWARE_KEYS}


def _real_list(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(t) for t in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"must be comma-separated real numbers, not {text!r}") from None


def _token_list(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(t) for t in text.split(",") if t.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"must be comma-separated integers, not {text!r}") from None


def parse_lengths(text: str) -> list[int]:
    """``1024,4096`` or ``START:STOP:xFACTOR`` / ``START:STOP:+STEP`` (STOP included), at most
    :data:`MAX_LENGTHS` lengths (counted before any is made)."""
    def positive(token):
        try:
            value = int(token)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"must be positive integers, a list A,B or a range START:STOP:xF, "
                f"not {text!r}") from None
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be positive integers, not {value}")
        return value

    if ":" in text:
        parts = text.split(":")
        if len(parts) != 3 or parts[2][:1] not in ("x", "+"):
            raise argparse.ArgumentTypeError(
                f"a range is START:STOP:xFACTOR or START:STOP:+STEP, not {text!r}")
        start, stop, step = positive(parts[0]), positive(parts[1]), positive(parts[2][1:])
        geometric = parts[2][0] == "x"
        if geometric and step < 2:
            raise argparse.ArgumentTypeError(f"a range's factor must be at least 2, not {step}")
        if stop < start:
            raise argparse.ArgumentTypeError(f"a range must not end before it starts: {text!r}")
        if geometric:
            count, n = 0, start
            while n <= stop and count <= MAX_LENGTHS:
                count, n = count + 1, n * step
        else:
            count = (stop - start) // step + 1
        if count > MAX_LENGTHS:
            raise argparse.ArgumentTypeError(
                f"at most {MAX_LENGTHS} lengths, not {count:,} from {text!r}")
        lengths, n = [], start
        while n <= stop:
            lengths.append(n)
            n = n * step if geometric else n + step
        return lengths
    tokens = text.split(",")
    if len(tokens) > MAX_LENGTHS:
        raise argparse.ArgumentTypeError(f"at most {MAX_LENGTHS} lengths, not {len(tokens):,}")
    return [positive(t) for t in tokens]


def add_workload_options(parser: argparse.ArgumentParser, seq_len_type=int,
                         seq_len_help: str = f"sequence length (default {DEFAULT_SEQ_LEN})",
                         core_features: bool = False, decode: bool = False) -> None:
    """The [spec] and [format] options, and --config. A command that sweeps N passes
    ``seq_len_type=parse_lengths`` and resolves with ``lengths=True``; a command that builds
    grouped and sink cores passes ``core_features=True`` (``--heads``, ``--kv-heads``,
    ``--sink-tokens``, ``--sink-logits``), one that builds decode cores ``decode=True``
    (``--contexts``: generate and regress); the others refuse those keys in a config file."""
    parser.add_argument("--config", metavar="FILE", type=Path,
                        help="TOML with [spec], [format] and [hardware] tables, or a "
                             "swatkit.json / flow.json written by swatkit; options on the "
                             "command line override it")
    g = parser.add_argument_group("workload (one attention head)")
    g.add_argument("--seq-len", metavar="N", type=seq_len_type, help=seq_len_help)
    g.add_argument("--head-dim", metavar="D", type=int,
                   help=f"head dimension (default {DEFAULT_HEAD_DIM})")
    g.add_argument("--attention-window", metavar="W", type=int,
                   help="bidirectional window, Longformer's meaning: W/2 keys on each side "
                        f"(default {DEFAULT_ATTENTION_WINDOW})")
    g.add_argument("--causal", action=argparse.BooleanOptionalAction, default=None,
                   help="causal sliding window (Mistral's meaning) instead")
    g.add_argument("--sliding-window", metavar="W", type=int,
                   help="with --causal: the row and W-1 keys before it "
                        f"(default {DEFAULT_SLIDING_WINDOW})")
    g.add_argument("--dilation", metavar="K", type=int, help="distance between window keys")
    g.add_argument("--global-tokens", metavar="I,J,...", type=_token_list,
                   help="positions that attend to, and are attended by, every row")
    if core_features:
        g.add_argument("--sink-tokens", metavar="S", type=int,
                       help="StreamingLLM's sink keys: the first S positions are key-only "
                            "columns every row attends, within causality")
        g.add_argument("--heads", metavar="H", type=int,
                       help="query heads (Hugging Face's num_attention_heads; default 1): with "
                            "--kv-heads, a core for one K/V head and its H/K query heads")
        g.add_argument("--kv-heads", metavar="K", type=int,
                       help="K/V heads (num_key_value_heads; default 1); --heads must be a "
                            "multiple")
        g.add_argument("--sink-logits", metavar="Z,...", nargs="?", const=True,
                       type=_real_list,
                       help="GPT-OSS's learned sink logits: the core takes one per query head "
                            "on each run's command; regress draws them per run, or uses the "
                            "values given (one per query head of the group)")
    if decode:
        g.add_argument("--contexts", metavar="C", type=int,
                       help="decode: a core whose command can also continue a sequence (a "
                            "prefill, then decode steps or chunks) with the window's K/V kept "
                            "on chip, for C contexts (default 0: every run starts a sequence; "
                            "causal windows without global tokens)")
    b = parser.add_argument_group("BigBird block-sparse pattern (instead of a window)")
    b.add_argument("--bigbird", dest="bigbird_block", metavar="BLOCK", type=int,
                   help="BigBird's block-sparse attention with blocks of BLOCK rows (a power of "
                        "two for the core): a 3-block window, the first and last blocks "
                        "global, random key blocks per query block")
    b.add_argument("--random-blocks", metavar="R", type=int,
                   help=f"with --bigbird: random key blocks per query block (default "
                        f"{DEFAULT_RANDOM_BLOCKS})")
    b.add_argument("--pattern-seed", metavar="S", type=int,
                   help="with --bigbird: the seed the random block table is drawn from "
                        "(default 0; an explicit table: [spec] random_table in --config)")
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
    h.add_argument("--max-global-tokens", metavar="G", type=int,
                   help="most global tokens a run may have (default: as many as "
                        "--global-tokens lists)")
    h.add_argument("--max-dilation", metavar="D", type=int,
                   help="largest dilation a run may use (default: --dilation)")
    h.add_argument("--global-engines", metavar="E", type=int,
                   help="BigBird: global-row engines side by side (a power of two, at most "
                        "--bigbird; default: the fewest that keep the global rows off the "
                        "critical path)")


@dataclass(frozen=True)
class Resolved:
    """What the shared options resolved to."""

    spec: AttentionSpec
    fmt: NumberFormat
    hardware: dict  # [hardware] keys given (validated by the stage that uses them)
    sources: dict   # key -> "option" | "config" for every key given (defaults are absent)
    names: dict = dataclasses.field(default_factory=dict)    # key -> what the user typed
    command: dict = dataclasses.field(default_factory=dict)  # the command's table, as given
    lengths: tuple[int, ...] = ()   # with lengths=True: every sequence length (spec: the max)
    heads: dict = dataclasses.field(default_factory=dict)   # CoreParams' heads, kv_heads,
    # sink_logits (a bool) as given
    sink_values: tuple | None = None   # learned sink logits given as values (regress)

    def label(self, key: str) -> str:
        """How the user named ``key``: the option, or the config file's key."""
        return self.names.get(key) or ALL_OPTIONS.get(key) or COMMAND_LABELS.get(key, key)


COMMAND_LABELS = {k: v for table in COMMAND_TABLES.values() for k, v in table.items()}


def _load_config(path: Path) -> dict:
    try:
        if path.suffix.lower() == ".json":
            record = load_json(path)
        else:
            data = load_toml(path)
    except InputFileError as e:
        raise UsageError(f"--config: {e}") from None
    if path.suffix.lower() == ".json":
        data = record.get("config") if isinstance(record, dict) else None
        if not isinstance(data, dict):
            raise UsageError(f"--config: {path} has no \"config\" record (the swatkit.json "
                             "and flow.json that swatkit writes have one, unless their window "
                             "has unequal sides, which no option makes)")
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


@dataclass(frozen=True)
class Given:
    """What the user gave, before any default: the options over ``--config`` (``values``),
    how each was named (``names``) and where it came from (``sources``: ``"option"`` or
    ``"config"``). :func:`gather` reads it once; :func:`resolve` takes it, so a command that
    must look at the user's values first (the board a flow builds for, the keys an estimate
    from a flow overrides) reads the config file once and builds its objects once."""

    values: dict
    names: dict
    sources: dict

    def label(self, key: str) -> str:
        """How the user named ``key``: the option, or the config file's key."""
        return self.names.get(key) or ALL_OPTIONS.get(key) or COMMAND_LABELS.get(key, key)


def gather(args: argparse.Namespace, command: str | None = None) -> Given:
    """The values of the options and of ``--config`` (options win; a window, band or BigBird
    group on the command line replaces the file's group), for the shared tables and
    ``command``'s own (``"generate"``, ``"flow"``)."""
    path = getattr(args, "config", None)
    config = _load_config(path) if path else {}
    window_on_line = any(getattr(args, k, None) is not None for k in WINDOW_KEYS)
    band_on_line = any(getattr(args, k, None) is not None for k in BAND_KEYS)
    bigbird_on_line = any(getattr(args, k, None) is not None for k in BIGBIRD_KEYS)
    values, names, sources = {}, {}, {}
    tables = dict(SHARED_TABLES)
    if command in COMMAND_TABLES:
        tables[command] = COMMAND_TABLES[command]
    for table, keys in tables.items():
        for key, option in keys.items():
            given = getattr(args, key, None)
            if given is not None:
                values[key], names[key], sources[key] = given, option, "option"
            elif key in config.get(table, {}) and not (
                    (key in WINDOW_KEYS and window_on_line)
                    or (key in BAND_KEYS and bigbird_on_line)
                    or (key in BIGBIRD_KEYS and band_on_line)
                    or (key == "random_table" and sources.get("pattern_seed") == "option")):
                values[key] = config[table][key]
                names[key] = f"[{table}] {key} in {path}"
                sources[key] = "config"
    return Given(values, names, sources)


def resolve(args: argparse.Namespace, command: str | None = None, *,
            lengths: list[int] | None = None, defaults: dict | None = None,
            given: Given | None = None) -> Resolved:
    """Merge defaults, ``--config`` and options into a spec, a format and hardware fields.

    ``command`` (``"generate"``, ``"flow"``) also resolves that command's table into
    :attr:`Resolved.command`. With ``lengths`` (the default lengths of a command that sweeps
    N), ``seq_len`` may be a list of lengths (the option's ``parse_lengths``; in the file an
    integer, a list or a range string): :attr:`Resolved.lengths` holds them, and the spec takes
    the largest. ``defaults``: a layer of values (keys of the tables, e.g. a board's default
    core, or the tiny core ``prove`` proves) between the built-in defaults and ``--config``
    (:func:`_apply_defaults`); its values are not in :attr:`Resolved.sources`. ``given``: what
    :func:`gather` read for the same ``args`` and ``command`` (read here when absent).
    """
    if given is None:
        given = gather(args, command)
    values, names, sources = dict(given.values), dict(given.names), dict(given.sources)

    if defaults:
        _apply_defaults(values, names, defaults)

    def fail(key, message):
        raise UsageError(f"{names.get(key, key)} {message}")

    heads = {k: values[k] for k in HEAD_KEYS if k in values}
    sink_values = None
    if "sink_logits" in heads:
        heads["sink_logits"], sink_values = _sink_logits(heads["sink_logits"],
                                                         names["sink_logits"])
    given = [k for k in CORE_FEATURE_KEYS if k in values and values[k] not in (0, False)]
    if given and not hasattr(args, "heads"):
        fail(given[0], "is not taken by this command (grouped query heads and sink tokens: "
                       "swatkit generate, regress, estimate, flow and prove)")
    if "contexts" in values and not hasattr(args, "contexts"):
        fail("contexts", "is not taken by this command (decode contexts: swatkit generate, "
                         "regress and prove)")

    all_lengths = ()
    if lengths:
        all_lengths = (_lengths(values["seq_len"], names["seq_len"]) if "seq_len" in values
                       else tuple(lengths))
        values["seq_len"] = max(all_lengths)
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
    if causal and tokens:   # (the golden spec keeps Longformer's meaning: docs/numerics.md)
        fail("global_tokens", f"cannot be combined with {names.get('causal', '--causal')}: "
                              "Longformer's global rows attend every key, later ones too; for "
                              "keys that every row sees within causality (StreamingLLM's "
                              f"sinks) use {ALL_OPTIONS['sink_tokens']} S")

    spec_args = {"seq_len": values.get("seq_len", DEFAULT_SEQ_LEN),
                 "head_dim": values.get("head_dim", DEFAULT_HEAD_DIM)}
    bigbird = [k for k in BIGBIRD_KEYS if k in values]
    if bigbird:
        band = [k for k in BAND_KEYS if k in values and values[k] is not False]
        if band:
            fail(band[0], f"cannot be combined with {names[bigbird[0]]} (BigBird's pattern "
                          "has its own window and global blocks)")
        if "bigbird_block" not in values:
            fail(bigbird[0], "needs --bigbird")
        if "random_table" in values and "pattern_seed" in values:
            fail("pattern_seed", f"cannot be combined with {names['random_table']} (the table "
                                 "is given, not drawn)")
        spec, fmt = _bigbird(spec_args, values, names, all_lengths)
        hardware = {k: values[k] for k in HARDWARE_KEYS if k in values}
        own = {k: values[k] for k in COMMAND_TABLES.get(command, {}) if k in values}
        return Resolved(spec, fmt, hardware, sources, names, own,
                        all_lengths or (spec.seq_len,), heads, sink_values)
    try:
        if causal:
            spec = AttentionSpec.causal(
                **spec_args, sliding_window=values.get("sliding_window", DEFAULT_SLIDING_WINDOW))
        else:
            spec = AttentionSpec.longformer(
                **spec_args,
                attention_window=values.get("attention_window", DEFAULT_ATTENTION_WINDOW))
        spec = spec.replace(dilation=values.get("dilation", 1), global_tokens=tokens,
                            sink_tokens=values.get("sink_tokens", 0))
        fmt = NumberFormat(**{k: values[k] for k in FORMAT_KEYS if k in values})
    except (TypeError, ValueError) as e:
        raise option_error(e, names) from None
    hardware = {k: values[k] for k in HARDWARE_KEYS if k in values}
    own = {k: values[k] for k in COMMAND_TABLES.get(command, {}) if k in values}
    return Resolved(spec, fmt, hardware, sources, names, own,
                    all_lengths or (spec.seq_len,), heads, sink_values)


def _sink_logits(value, label: str) -> tuple[bool, tuple | None]:
    """``--sink-logits`` (True: the core takes them) or its values (a list of reals, or
    ``[spec] sink_logits`` true/false or a list): whether the core takes them, and the values
    given (None: drawn per run). Non-finite values are refused here; the count and the range,
    which depend on the group and the format, by :func:`check_sink_values`."""
    if isinstance(value, bool):
        return value, None
    if not isinstance(value, list | tuple) or not value or any(
            isinstance(z, bool) or not isinstance(z, int | float) for z in value):
        raise UsageError(f"{label} must be true or a list of real numbers, not {value!r}")
    if not all(math.isfinite(z) for z in value):
        raise UsageError(f"{label} must be finite real numbers, not {list(value)}")
    return True, tuple(float(z) for z in value)


def refuse_sink_values(resolved: Resolved) -> None:
    """Sink logits given as values, to a command that does not run the core on them (all but
    regress): :class:`UsageError`, one line."""
    if resolved.sink_values is not None:
        raise UsageError(f"{resolved.label('sink_logits')} takes values only in swatkit regress "
                         "(the core takes them at run time, on each command)")


def check_sink_values(resolved: Resolved, params) -> None:
    """The sink logits given as values: one per query head of the group, each in the scores'
    range of the format (:meth:`NumberFormat.sink_scores`), else :class:`UsageError`."""
    values, label = resolved.sink_values, resolved.label("sink_logits")
    if values is None:
        return
    if len(values) != params.group_heads:
        raise UsageError(f"{label} gives {len(values)} value{'s' if len(values) > 1 else ''}; "
                         f"the group has {params.group_heads} query "
                         f"head{'s' if params.group_heads > 1 else ''} (--heads / --kv-heads)")
    try:
        params.fmt.sink_scores(values, params.spec.head_dim)
    except ValueError as e:
        raise UsageError(f"{label}: {e}") from None


def _apply_defaults(values: dict, names: dict, defaults: dict) -> None:
    """Fill ``values`` (what the options and the config file give; ``names``: their labels,
    the option's for a value of the layer) from the layer ``defaults``
    below them, by the rules of the window group: the user's window (any of its keys) replaces
    the layer's, a BigBird pattern replaces its window, dilation and global tokens, a window
    key its BigBird pattern. The layer's window may give a size for each kind
    (``attention_window``, ``sliding_window``) and a kind (``causal``): a user who chooses the
    kind alone (``--causal``, ``--no-causal``) gets the layer's size of that kind, if it has
    one."""
    layer = dict(defaults)
    window_given = any(k in values for k in WINDOW_KEYS)
    band_given = any(k in values and values[k] is not False for k in BAND_KEYS)
    bigbird_given = any(k in values for k in BIGBIRD_KEYS)
    causal = values.get("causal", False if window_given else layer.get("causal", False))
    for key, value in layer.items():
        if key in values or (key in BAND_KEYS and bigbird_given) or (
                key in BIGBIRD_KEYS and band_given):
            continue
        if key == "causal" and window_given:
            continue
        if key in ("attention_window", "sliding_window") and (
                "attention_window" in values or "sliding_window" in values
                or (key == "sliding_window") != causal):
            continue
        values[key] = value
        names[key] = ALL_OPTIONS.get(key) or COMMAND_LABELS.get(key, key)


def _bigbird(spec_args: dict, values: dict, names: dict, lengths: tuple[int, ...]):
    """The BigBird spec and the number format of the resolved values; with ``lengths`` (a
    sweep), the pattern is checked at every length (the spec holds the longest)."""
    table = values.get("random_table")
    if table is not None and not isinstance(table, list):
        raise UsageError(f"{names['random_table']} must be a list of rows of integers, "
                         f"not {table!r}")
    if table is not None and any(not isinstance(row, list) or any(
            isinstance(x, bool) or not isinstance(x, int) for x in row) for row in table):
        raise UsageError(f"{names['random_table']} must be a list of rows of integers, "
                         f"not {table!r}")
    pattern = {"block_size": values["bigbird_block"],
               "num_random_blocks": values.get("random_blocks", DEFAULT_RANDOM_BLOCKS),
               "seed": values.get("pattern_seed"), "random_table": table}
    try:
        spec = AttentionSpec.bigbird(**spec_args, **pattern)
        fmt = NumberFormat(**{k: values[k] for k in FORMAT_KEYS if k in values})
    except (TypeError, ValueError) as e:
        raise option_error(e, names) from None
    for n in lengths:
        if n == spec.seq_len:
            continue
        try:
            spec.replace(seq_len=n)
        except (TypeError, ValueError) as e:
            if table is not None:
                raise UsageError(f"{names['random_table']} is the table of {spec.seq_len} rows "
                                 f"({spec.num_blocks} blocks); it cannot serve "
                                 f"{names.get('seq_len', '--seq-len')} {n}") from None
            raise option_error(e, names) from None
    return spec, fmt


def _lengths(value, label: str) -> tuple[int, ...]:
    """Sequence lengths from the option (a list already) or the config (int, list, range)."""
    try:
        if isinstance(value, str):
            value = parse_lengths(value)
        elif not isinstance(value, list):
            value = [value]
    except argparse.ArgumentTypeError as e:
        raise UsageError(f"{label}: {e}") from None
    if not value or len(value) > MAX_LENGTHS:
        raise UsageError(f"{label} must list 1..{MAX_LENGTHS} lengths, not {len(value)}")
    for n in value:
        if isinstance(n, bool) or not isinstance(n, int):
            raise UsageError(f"{label} must be positive integers, not {n!r}")
        if n <= 0:
            raise UsageError(f"{label} must be positive integers, not {n}")
    return tuple(value)


def core_params(resolved: Resolved, max_seq_len: int, **hardware):
    """The SWAT core's :class:`~swatkit.rtl.CoreParams` for the resolved options, with counters
    for ``max_seq_len`` rows (``hardware`` overrides fields of ``resolved.hardware``); a bad or
    conflicting value, or a size beyond a practical limit, becomes a :class:`UsageError` naming
    the options the user typed."""
    from swatkit.rtl import CoreParams, HardwareConfig, LimitError
    from swatkit.rtl.config import MAX_DILATION, MAX_GLOBAL_TOKENS

    # the run's pattern raises the generate-time maxima, within their limits; a maximum given
    # below the pattern it must run is a contradiction
    spec, given = resolved.spec, {**resolved.hardware, **hardware}
    label = resolved.label
    if spec.block_size:   # BigBird: its global tokens are its first and last blocks
        for key, neutral in (("max_global_tokens", 0), ("max_dilation", 1)):
            if key in given and given[key] != neutral:
                raise UsageError(f"{label(key)} cannot be combined with {label('bigbird_block')} "
                                 "(a BigBird core's global tokens are its first and last "
                                 f"blocks, {2 * spec.block_size} rows, and it has no dilation)")
    elif given.get("global_engines", 0) not in (0, 1):
        raise UsageError(f"{label('global_engines')} needs {label('bigbird_block')} (a token-band "
                         "core has one global-row engine)")
    count = len(spec.global_tokens)
    if count > MAX_GLOBAL_TOKENS:
        raise UsageError(f"{label('global_tokens')} lists {count} positions; at most "
                         f"{MAX_GLOBAL_TOKENS} (the core's resident global K/V rows)")
    if spec.dilation > MAX_DILATION:
        raise UsageError(f"{label('dilation')} must be at most {MAX_DILATION} (residue classes "
                         f"of the K/V ring), not {spec.dilation}")
    for key, lowest, need, what in (
            ("max_global_tokens", 0, count, f"the {count} positions of {label('global_tokens')}"),
            ("max_dilation", 1, spec.dilation, f"{label('dilation')} {spec.dilation}")):
        value = given.get(key)   # (out of its own range: HardwareConfig says so below)
        if isinstance(value, int) and not isinstance(value, bool) and lowest <= value < need:
            raise UsageError(f"{label(key)} {value} is below {what}")
    try:
        hw = HardwareConfig(**{**resolved.hardware, **hardware}, max_seq_len=max_seq_len)
        return CoreParams(resolved.spec, resolved.fmt, hw, **resolved.heads)
    except LimitError as e:
        raise limit_error(e, resolved) from None
    except (TypeError, ValueError) as e:
        raise option_error(e, resolved.names) from None


def limit_error(error, resolved: Resolved) -> UsageError:
    """A :class:`~swatkit.rtl.LimitError` in the options' units and names."""
    spec = resolved.spec
    label = resolved.label
    if error.field == "head_dim":
        return UsageError(f"{label('head_dim')} must be at most {error.limit} ({error.what}), "
                          f"not {error.value}")
    if error.field == "max_seq_len":
        return UsageError(f"{label('seq_len')} must be at most {error.limit} ({error.what}), "
                          f"not {error.value}")
    if error.field == "window":
        if spec.block_size:
            return UsageError(f"{label('bigbird_block')} {spec.block_size} makes a "
                              f"{spec.window}-key block window; at most {error.limit} keys "
                              f"({error.what})")
        if spec.after == 0:  # causal: sliding_window keys
            return UsageError(f"{label('sliding_window')} must be at most {error.limit} "
                              f"({error.what}), not {spec.window}")
        return UsageError(f"{label('attention_window')} must be at most {error.limit - 1} "
                          f"({error.limit} {error.what}), not {spec.window - 1}")
    if error.field == "block_size":
        return UsageError(f"{label('bigbird_block')} must be at most {error.limit} ({error.what}), "
                          f"not {error.value}")
    if error.field == "contexts":
        return UsageError(f"{label('contexts')} must be at most {error.limit} ({error.what}), "
                          f"not {error.value}")
    if error.field == "key_lanes x dim_lanes":
        return UsageError(f"{label('key_lanes')} x {label('dim_lanes')} must be at most "
                          f"{error.limit} ({error.what}), not {error.value}")
    if spec.block_size:
        window = (f"{label('bigbird_block')} {spec.block_size} with {label('random_blocks')} "
                  f"{spec.num_random_blocks}")
    elif spec.after == 0:
        window = f"{label('sliding_window')} {spec.window}"
    else:
        window = f"{label('attention_window')} {spec.window - 1}"
    return UsageError(f"{window} with {label('head_dim')} {spec.head_dim} needs a K/V buffer of "
                      f"{error.value / 2 ** 20:.1f} Mibit; the limit is "
                      f"{error.limit / 2 ** 20:g} Mibit ({error.what}): lower one of them")


def option_error(error: Exception, names: dict) -> UsageError:
    """A configuration error of the spec, format or hardware objects as one naming what the
    user typed for its field (:attr:`~swatkit.golden.checks.ConfigError.field`; ``names``:
    :attr:`Resolved.names`, else the option); an error about no one field keeps its message."""
    field = getattr(error, "field", None)
    key = FIELD_KEYS.get(field, field)   # BigBird's fields as the spec names them
    return _labelled(error, field, (names.get(key) or ALL_OPTIONS.get(key)) if key else None,
                     names if key in FIELD_KEYS.values() else None)


def command_error(error: Exception, resolved: Resolved) -> UsageError:
    """A configuration error of a command's own table (``[generate]``, ``[flow]``: its
    :attr:`~swatkit.golden.checks.ConfigError.field`) as one naming what the user typed."""
    field = getattr(error, "field", None)
    return _labelled(error, field, resolved.label(field) if field else None)


def _labelled(error: Exception, field: str | None, label: str | None,
              names: dict | None = None) -> UsageError:
    """The message with its field's ``label`` in the place of the field's name ("--head-dim
    must be ..."), or before it ("--global-tokens: global token 40 is outside ...");
    ``names``: the other fields a BigBird message names (``seq_len``, ``block_size``) as the
    user named them too."""
    message = str(error)
    if label is None:
        return UsageError(message)
    if message.startswith(f"{field}["):   # "random_table[2, 0] = 3 is inside the window ..."
        return UsageError(f"{label}: random_table{message[len(field):]}")
    if not message.startswith(f"{field} "):
        return UsageError(f"{label}: {message}")
    rest = message[len(field) + 1:]
    if field == "heads":   # "heads must be a multiple of kv_heads (4), not 6"
        rest = rest.replace("kv_heads", (names or {}).get("kv_heads") or ALL_OPTIONS["kv_heads"])
    if names is not None:
        rest = (rest.replace("seq_len", names.get("seq_len") or ALL_OPTIONS["seq_len"])
                .replace("block_size", names.get("bigbird_block")
                         or ALL_OPTIONS["bigbird_block"]))
    return UsageError(f"{label} {rest}")


# -- what a configuration wastes --------------------------------------------------------------


def waste_warnings(resolved: Resolved, params) -> list[str]:
    """One line for each legal but wasteful choice of ``params`` (a :class:`CoreParams` made
    from ``resolved``): a window wider than any row of ``max_seq_len`` rows can use."""
    spec, n = params.spec, params.hw.max_seq_len
    if spec.block_size:   # (a block window is as wide as its blocks, at any length)
        return []
    usable = min(spec.before, n - 1) + min(spec.after, n - 1) + 1
    if spec.window <= usable:
        return []
    if spec.after == 0:
        window = f"{resolved.label('sliding_window')} {spec.window}"
    else:
        window = f"{resolved.label('attention_window')} {spec.window - 1}"
    if "sliding_window" not in resolved.names and spec.after == 0:
        window += " (the default)"
    return [f"{window} makes a {spec.window}-key window, but with {resolved.label('seq_len')} = "
            f"{n} no row has more than {usable} keys: the window's buffers are sized for keys "
            "that never exist"]


def connect_scheduler(address: str | None):
    """A Dask client of the scheduler at ``address`` (``--scheduler``; ``None``: none), reached
    before any work starts, or :class:`UsageError` naming the option."""
    if not address:
        return None
    from swatkit.fpga_flows.flow import SchedulerError, connect

    try:
        return connect(address)
    except SchedulerError as e:
        raise UsageError(f"--scheduler: {e}") from None


def warn(message: str) -> None:
    """One line on standard error."""
    print(f"swatkit: warning: {message}", file=sys.stderr)


BANDWIDTH_RANGE = (1e-3, 1e6)  # off-chip bytes per cycle the estimates accept


def check_bandwidth(value: float) -> float:
    """``--offchip-bytes-per-cycle``: a finite number in :data:`BANDWIDTH_RANGE` (below it the
    cycle counts of the models overflow; nothing real is that slow)."""
    lo, hi = BANDWIDTH_RANGE
    if not (lo <= value <= hi):
        raise UsageError(f"--offchip-bytes-per-cycle must be between {lo:g} and {hi:g}, "
                         f"not {value:g}")
    return value
