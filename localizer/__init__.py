"""localizer: rank the files and functions most likely to need the fix for an issue."""

from indexer.errors import IssueError, LocalizerError, ModelLoadError, RepositoryError, StoreError

from localizer.api import FileHit, FunctionHit, LocalizationResult, LocalizeConfig, Localizer, read_issue
from localizer.embedding.embedder import Embedder, EmbedderConfig

__version__ = "0.1.0"

__all__ = [
    "Embedder",
    "EmbedderConfig",
    "FileHit",
    "FunctionHit",
    "IssueError",
    "LocalizationResult",
    "LocalizeConfig",
    "Localizer",
    "LocalizerError",
    "ModelLoadError",
    "RepositoryError",
    "StoreError",
    "read_issue",
]
