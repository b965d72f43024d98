"""The history index: each commit before a snapshot reduced to what it changed, stored by commit SHA."""

from indexer.history.build import History, HistoryConfig, build_history
from indexer.history.records import CommitRecord

__all__ = ["CommitRecord", "History", "HistoryConfig", "build_history"]
