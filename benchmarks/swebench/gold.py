"""Gold localization labels of a SWE-bench instance, derived from its reference patch.

The protocol is the one CoRNStack / SweRank evaluate with on SWE-bench Lite:

* **gold files** are the files the patch modifies, named on the source side
  (``--- a/path``); a file the patch creates (``--- /dev/null``) is not one.
* **gold functions** are the functions and methods that already exist at the
  base commit (``function`` / ``method`` chunks of :func:`chunk_source`) whose
  lines the patch changes, written ``path/Class/method`` or ``path/func``.
  A function spans from its ``def`` line (Python decorators are *not* part
  of it) to its last line, and

  - a removed old line (a modified line is removed, then added) credits the
    function whose span holds it;
  - a run of lines inserted after old line ``k`` credits the function whose
    span holds old line ``k + 1``, the line the insertion lands in front of;
  - except that a run whose first line contains ``def `` or ``class `` (plain
    substring test, as in the reference) is taken for a new definition and
    credits nothing: newly added functions never count;
  - nested functions belong to their outermost function or method (our chunks
    never split a function).

These details are what make exactly 274 of the 300 SWE-bench Lite instances
have at least one gold function, the set CoRNStack / SweRank report
function-level numbers on (``tests/benchmarks/test_gold_274.py``). Each one matters:
crediting the function *before* an insertion point instead of the one after
it, counting decorator lines, or dropping the ``def``/``class`` test each
moves instances in or out of that set.

The patch parsing and the line rules live in :mod:`indexer.git.diff`, which
the commit miner of ``cornstack_train`` shares; this module applies them to a
SWE-bench instance. Everything here is pure except :func:`git_blob_reader`,
which reads base files from a (bare) git repository without checking anything
out (:class:`indexer.git.blobs.GitBlobReader`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Optional

from indexer.chunking.chunker import chunk_source
from indexer.chunking.languages import language_for_path
from indexer.git.blobs import GitBlobReader
from indexer.git.diff import FilePatch, functions_touched, parse_patch

__all__ = [
    "FilePatch",
    "GoldLabels",
    "parse_patch",
    "gold_files",
    "functions_touched",
    "function_id",
    "gold_function_ids",
    "gold_labels",
    "git_blob_reader",
    "GitBlobReader",
    "BlobReader",
]

BlobReader = Callable[[str, str], Optional[bytes]]


@dataclass(frozen=True)
class GoldLabels:
    """Gold files (patch order) and gold function ids (patch order, then source order)."""

    instance_id: str
    files: tuple[str, ...]
    functions: tuple[str, ...]


def gold_files(patch: str) -> list[str]:
    """Files the patch modifies (source-side paths), in patch order; created files excluded."""
    seen: dict[str, None] = {}
    for fp in parse_patch(patch):
        if fp.old_path is not None:
            seen.setdefault(fp.old_path, None)
    return list(seen)


def function_id(path: str, qualified_name: str) -> str:
    """``path/Class/method`` for ``Class.method`` in ``path``."""
    return f"{path}/{qualified_name.replace('.', '/')}"


def gold_function_ids(path: str, names: Iterable[str]) -> list[str]:
    return [function_id(path, name) for name in names]


def gold_labels(instance: dict, read_blob: BlobReader) -> GoldLabels:
    """Gold files and functions of one SWE-bench instance.

    ``read_blob(commit, path)`` returns the file's bytes at ``commit`` (the
    instance's ``base_commit``), or None when it does not exist there. Files in
    unsupported languages are gold files without gold functions.
    """
    patch = instance["patch"]
    commit = instance["base_commit"]
    files: dict[str, None] = {}
    functions: dict[str, None] = {}
    for fp in parse_patch(patch):
        if fp.old_path is None:
            continue
        files.setdefault(fp.old_path, None)
        language = language_for_path(fp.old_path)
        if language is None:
            continue
        source = read_blob(commit, fp.old_path)
        if source is None:
            continue
        chunks = chunk_source(fp.old_path, source, language)
        for fid in gold_function_ids(fp.old_path, functions_touched(fp, chunks, source)):
            functions.setdefault(fid, None)
    return GoldLabels(str(instance["instance_id"]), tuple(files), tuple(functions))


# ---------------------------------------------------------------------- I/O


def git_blob_reader(repo_dir: Path) -> GitBlobReader:
    """A ``read_blob(commit, path)`` for a (bare or not) git repository at ``repo_dir``.

    The returned callable keeps one ``git cat-file --batch`` process; it also
    has ``close()`` and works as a context manager. A path missing at that
    commit reads as None.
    """
    return GitBlobReader(Path(repo_dir))
