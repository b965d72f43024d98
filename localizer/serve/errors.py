"""The server's own errors: each one is a message a tool caller (or the CLI edge) can act on."""

from __future__ import annotations

from indexer.errors import LocalizerError


class ServeError(LocalizerError):
    """The server cannot answer this call now (no index yet, repository gone, missing extra)."""


class NotReadyError(ServeError):
    """The first index is still being built; the caller should retry (``index_status`` shows progress)."""
