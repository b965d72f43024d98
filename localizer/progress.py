"""Progress on stderr: bars for indexing (the CLI) and for long training stages (``cornstack-train``).

Both draw with rich, so the project has one progress library. They differ where their users do:

* :func:`stderr_progress` is for ``localize``, which runs in a terminal or inside a git hook; when
  stderr is no terminal it stays silent (a hook's output must not fill with bars).
* :class:`StageProgress` is for training stages that run for hours, often under ``nohup`` with
  stderr in a log file. Silence there would hide whether a run still moves, and a bar would write
  control codes into the log, so when stderr is no terminal it writes one plain line a minute
  (and one when the stage ends) instead.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from typing import Callable, Iterator

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from indexer.index import Progress as ProgressCallback

# Seconds between the plain lines of a StageProgress when stderr is no terminal.
PLAIN_LINE_INTERVAL_S = 60.0


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


def plural(unit: str) -> str:
    """``query`` -> ``queries``, ``window`` -> ``windows``: the units progress lines count."""
    if unit.endswith("y") and unit[-2:-1] not in tuple("aeiou"):
        return unit[:-1] + "ies"
    return unit + "s"


class StageProgress:
    """One named bar on stderr for a training stage, driven by ``(done, total, name)`` callbacks.

    ``desc`` names the stage ("filter: encode"), ``unit`` what it counts ("text"), and ``name``
    in a callback the item at hand (a repository, a package), shown after the bar. On a terminal
    the bar disappears when closed; elsewhere see the module docstring. Use it as a context manager
    or call :meth:`close`.
    """

    def __init__(self, desc: str, unit: str, console: Console | None = None,
                 interval_s: float = PLAIN_LINE_INTERVAL_S, clock: Callable[[], float] = time.monotonic) -> None:
        self.desc, self.unit = desc, unit
        self._console = console or Console(stderr=True)
        self._interval_s, self._clock = interval_s, clock
        self._start = self._last = clock()
        self._bars: Progress | None = None
        self._task: int | None = None
        if self._console.is_terminal:
            self._bars = Progress(
                TextColumn("{task.description}", style="bold", markup=False),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[unit]}s", markup=False),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                TextColumn("{task.fields[postfix]}", markup=False),
                console=self._console,
                transient=True,
            )
            self._task = self._bars.add_task(desc, total=None, unit=unit, postfix="")
            self._bars.start()

    @property
    def is_bar(self) -> bool:
        """True when it draws a bar (stderr is a terminal), False when it writes plain lines."""
        return self._bars is not None

    def __call__(self, done: int, total: int, name: str | None = None) -> None:
        if self._bars is not None and self._task is not None:
            fields = {} if name is None else {"postfix": name}
            self._bars.update(self._task, completed=done, total=total, **fields)
            return
        now = self._clock()
        if now - self._last >= self._interval_s or done >= total:
            self._last = now
            rate = done / max(now - self._start, 1e-9)
            at = f", at {name}" if name else ""
            self._console.print(f"{self.desc}: {done}/{total} {plural(self.unit)} ({rate:.1f}/s{at})", markup=False,
                                highlight=False, soft_wrap=True)

    def close(self) -> None:
        if self._bars is not None:
            self._bars.stop()
            self._bars = None

    def __enter__(self) -> "StageProgress":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


__all__ = ["PLAIN_LINE_INTERVAL_S", "StageProgress", "stderr_progress"]
