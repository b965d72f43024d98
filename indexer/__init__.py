"""indexer: split repositories into file, class and function chunks with a content-addressed cache."""

from indexer.chunking.chunk import Chunk
from indexer.index import IndexConfig, IndexStats, RepoIndex, build_index, default_index_dir

__all__ = ["Chunk", "IndexConfig", "IndexStats", "RepoIndex", "build_index", "default_index_dir"]
