"""Everything that touches git: one command runner, one object reader, and unified-diff parsing.

Kept in ``indexer`` because ``indexer`` is the package every other one may
import: the localizer, the training data miner and the benchmark harness all
read git the same way instead of each wrapping ``subprocess`` on its own.
"""

from indexer.git.blobs import GitBlobReader
from indexer.git.diff import FilePatch, functions_touched, parse_patch
from indexer.git.runner import GitError, run_git

__all__ = ["FilePatch", "GitBlobReader", "GitError", "functions_touched", "parse_patch", "run_git"]
