"""Which functions a commit changed, decided once for the history index and the commit miner.

The rule is the one SWE-bench gold functions follow (:func:`indexer.git.diff.functions_touched`),
applied to the file as it was in the commit's parent: at localization time the code is the
unfixed code, so a past fix must be credited to the functions it found, not the ones it left.
"""

from __future__ import annotations

from indexer.chunking.chunk import Chunk
from indexer.chunking.definitions import Definition, function_definitions
from indexer.git.diff import FilePatch, functions_touched


def touched_definitions(file_patch: FilePatch, source: bytes, language: str) -> tuple[list[Definition], list[str]]:
    """(the definitions of ``source`` the patch changes, in source order; the source's rows).

    ``source`` is the file at the commit's parent; overloads that share a name stay apart.
    """
    path = file_patch.old_path or ""
    defs, rows = function_definitions(source, language)
    chunks = [Chunk(path, f"{d.name}\x00{i}", d.kind, d.start_row + 1, d.end_row + 1, language, "")
              for i, d in enumerate(defs)]
    touched = [defs[int(key.rsplit("\x00", 1)[1])] for key in functions_touched(file_patch, chunks, source)]
    return touched, rows
