"""Progress on standard error for command-line steps that may take more than a few seconds.

A spinner with the step's description and the elapsed time while the step runs, on a terminal;
nothing when standard error is not a terminal (logs and pipes stay clean). Built on rich.
"""

from __future__ import annotations

import contextlib

__all__ = ["progress"]


@contextlib.contextmanager
def progress(description: str):
    """Show ``description`` with a spinner and the elapsed time until the block ends."""
    from rich.console import Console
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    console = Console(stderr=True)
    if not console.is_terminal:
        yield
        return
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
                  console=console, transient=True) as bar:
        bar.add_task(description, total=None)
        yield
