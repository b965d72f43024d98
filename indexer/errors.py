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


class StoreAccessError(StoreError):
    """The index store is unusable for a reason outside it (disk full, I/O error, permissions, locks).

    Nothing says the data is bad, so it is left where it is: moving a healthy
    shared cache aside would make every repository re-parse for nothing.
    """


class FileVanishedError(RepositoryError):
    """A listed file was deleted or renamed before it could be read; indexing skips it."""


class EmbeddingError(LocalizerError):
    """An embedder produced vectors that cannot be searched (NaN or infinite values)."""
