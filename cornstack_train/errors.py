"""The training pipeline's errors, under the one root every localizer error has, and how its commands report them.

Runtime and training share ``indexer.errors.LocalizerError``: a failure caused by input or
environment (a missing stage, a delta made for another base model, a device this machine lacks,
an unreachable registry) is one of them, and a command prints its message as one line and exits
non-zero, never a traceback. A traceback is left for what is a bug. Errors raised by the runtime
(``ModelLoadError``, ``DeviceError``, the shipped-weights ``CompactError``) are LocalizerErrors
already, so one ``except LocalizerError`` at the edge catches everything a user can act on.
"""

from __future__ import annotations

import sys
from typing import Any, NoReturn

import click

from indexer.errors import LocalizerError

PROG = "cornstack-train"


class TrainingError(LocalizerError):
    """A training stage cannot go on: bad input, a missing or wrong stage, a failed subprocess."""


def one_line(error: BaseException | str) -> str:
    """The message on one line (a multi-line message would look like a traceback in a log)."""
    text = " ".join(line.strip() for line in str(error).splitlines() if line.strip())
    return text or type(error).__name__


def fail(error: BaseException | str) -> NoReturn:
    """Print ``cornstack-train: error: MESSAGE`` on stderr and exit 1."""
    click.echo(f"{PROG}: error: {one_line(error)}", err=True)
    sys.exit(1)


class StageCommand(click.Command):
    """A stage's click command: a LocalizerError that escapes it is printed as one line, exit status 1.

    The commands still catch what they expect (and ``ValueError`` from config checks) themselves;
    this is the edge for the rest, also when a command runs on its own
    (``python -m cornstack_train.embedder.stages``) or under ``CliRunner`` in tests.
    """

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except LocalizerError as exc:
            fail(exc)


class StageGroup(click.Group):
    """The ``cornstack-train`` group: the same edge around every subcommand, whatever its class."""

    command_class = StageCommand

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except LocalizerError as exc:
            fail(exc)


__all__ = ["PROG", "StageCommand", "StageGroup", "TrainingError", "fail", "one_line"]
