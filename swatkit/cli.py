"""The ``swatkit`` command line: ``swatkit generate | regress | estimate | flow | explore | prove``.

Every subcommand takes the shared options of :mod:`swatkit.options`. A bad value exits with code 2
and one line, ``swatkit: error: <what>``; never a traceback.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading

from swatkit.options import UsageError
from swatkit.support.version import __version__

__all__ = ["main"]

# name -> (module, one-line summary); each module has add_arguments(parser) and run(args)
COMMANDS = {
    "generate": ("swatkit.cmd_generate", "generate Verilog for a configured SWAT core"),
    "regress": ("swatkit.cmd_regress", "run the cocotb + Verilator regression against the golden "
                "model"),
    "flow": ("swatkit.cmd_flow", "build the on-board self-test with the open FPGA toolchain"),
    "estimate": ("swatkit.cmd_estimate", "estimate cycles, latency and energy per sequence length"),
    "explore": ("swatkit.cmd_explore", "configurations of a model that fit a board, Pareto front"),
    "prove": ("swatkit.cmd_prove", "prove the stream contract of a (small) core by k-induction "
              "with SymbiYosys"),
}


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (the usage text stays in --help)."""

    def error(self, message):
        raise UsageError(message)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="swatkit",
        description="Sliding-window attention accelerators: generate Verilog, run the cocotb "
                    "regression, estimate cycles/latency/energy, build for open FPGA toolchains.")
    parser.add_argument("--version", action="version", version=f"swatkit {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name, (module, summary) in COMMANDS.items():
        mod = __import__(module, fromlist=["add_arguments"])
        p = sub.add_parser(name, help=summary, description=mod.__doc__.split("\n\n")[0])
        mod.add_arguments(p)
        p.set_defaults(run=mod.run)
    return parser


class _Interrupts:
    """Ctrl-C (SIGINT) and SIGTERM raise KeyboardInterrupt, so that every ``finally`` and
    ``except BaseException`` on the way out runs (the programs a command started are stopped
    there: :mod:`swatkit.support.processes`); the command exits with 128 + the signal's number (130,
    143). The signal is also remembered: Python drops an exception raised inside a finaliser
    (``__del__``, as Amaranth's run during garbage collection), so an interrupt landing there
    would otherwise be lost and the command would go on and exit 0. Nor is it raised there:
    Python would print the dropped exception's traceback ("Exception ignored in ..."); the
    signal is sent again 10 ms later instead."""

    seen = False
    signum = signal.SIGINT

    @classmethod
    def handler(cls, signum, frame):
        cls.seen = True
        cls.signum = signum
        f = frame
        while f is not None:
            if f.f_code.co_name == "__del__":
                timer = threading.Timer(0.01, os.kill, (os.getpid(), signum))
                timer.daemon = True
                timer.start()
                return
            f = f.f_back
        raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the exit code."""
    _Interrupts.seen = False
    _Interrupts.signum = signal.SIGINT
    term = None
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, _Interrupts.handler)
        term = signal.signal(signal.SIGTERM, _Interrupts.handler)
    try:
        return _run(argv)
    finally:
        if term is not None:   # (a SIGTERM after the command: the caller's, e.g. pytest's)
            signal.signal(signal.SIGTERM, term)


def _run(argv: list[str] | None) -> int:
    try:
        parser = build_parser()   # (it imports every command: half a second, interruptible)
        args = parser.parse_args(argv)
        if not getattr(args, "command", None):
            parser.print_help()
            return 2
        code = int(args.run(args) or 0)
        sys.stdout.flush()  # a closed pipe shows here, not in the interpreter's exit
        if _Interrupts.seen:
            raise KeyboardInterrupt
        return code
    except UsageError as e:
        print(f"swatkit: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("swatkit: interrupted", file=sys.stderr)
        return 128 + int(_Interrupts.signum)
    except BrokenPipeError:
        # the reader of standard output stopped early (`| head`): not an error. Point stdout at
        # /dev/null so that the interpreter's final flush does not fail again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
