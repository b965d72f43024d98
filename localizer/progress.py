"""Progress bars on stderr for long indexing work, silent when stderr is not a terminal."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from indexer.index import Progress as ProgressCallback


@contextmanager
def stderr_progress(console: Console | None = None, enabled: bool = True) -> Iterator[ProgressCallback | None]:
    """Yield a ``progress(stage, done, total)`` callback drawing one bar per stage."""
    if not enabled:
        yield None
        return
    console = console or Console(stderr=True)
    bars = Progress(
        TextColumn("[bold]{task.description:<10}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=False,
    )
    tasks: dict[str, int] = {}

    def update(stage: str, done: int, total: int) -> None:
        if stage not in tasks:
            tasks[stage] = bars.add_task(stage, total=total)
        bars.update(tasks[stage], completed=done, total=total)

    with bars:
        yield update
