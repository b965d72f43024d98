"""indexer: split repositories into file, class and function chunks with a content-addressed cache."""

from .chunk import Chunk
from .index import IndexConfig, IndexStats, RepoIndex, build_index, default_index_dir

__all__ = ["Chunk", "IndexConfig", "IndexStats", "RepoIndex", "build_index", "default_index_dir"]
