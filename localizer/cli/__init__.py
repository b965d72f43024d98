"""The ``localize`` command: a thin click layer over :class:`localizer.Localizer`."""

from localizer.cli.main import main

__all__ = ["main"]
