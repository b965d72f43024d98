"""Errors a user can act on. The CLI prints their message as one line and exits non-zero."""


class LocalizerError(Exception):
    """Base class for failures caused by input or environment, not by a bug in localizer."""


class RepositoryError(LocalizerError):
    """The repository path or revision cannot be read."""


class ModelLoadError(LocalizerError):
    """An embedder or reranker could not be loaded from the given id or path."""


class IssueError(LocalizerError):
    """The issue text is missing, empty or not text."""


class StoreError(LocalizerError):
    """The on-disk index store cannot be used (and could not be rebuilt)."""
