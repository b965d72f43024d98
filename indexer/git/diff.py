"""Unified diffs: which old-file lines a patch removes and where it inserts, and which functions that touches.

Two users need exactly the same answer: SWE-bench gold labels
(``benchmarks/swebench/gold.py``), where these rules reproduce the CoRNStack /
SweRank protocol, and the commit miner (``cornstack_train/data/commits.py``),
whose training positives must be credited like gold functions. So the rules
live here once, beside the chunker they read.

The rules (in :func:`functions_touched`) are the reference protocol's, down to
its textual ``def ``/``class `` test; ``gold.py`` says why each detail matters.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional, Sequence

from indexer.chunking.chunk import Chunk

__all__ = ["FilePatch", "functions_touched", "parse_patch"]

_HUNK = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@")



@dataclass(frozen=True)
class FilePatch:
    """What one file's section of a unified diff does to the old file.

    ``old_path`` is None for a created file, ``new_path`` None for a deleted
    one. ``removed_lines`` are 1-based old-file line numbers (a modified line
    is removed, then added). ``insertion_points`` are the old-file lines after
    which new lines were inserted (0: before line 1), one per inserted run;
    ``definition_insertions`` is the subset whose inserted run opens with a
    line containing ``def `` or ``class `` (taken for a new definition).
    """

    old_path: Optional[str]
    new_path: Optional[str]
    removed_lines: tuple[int, ...] = ()
    insertion_points: tuple[int, ...] = ()
    definition_insertions: tuple[int, ...] = ()


# ------------------------------------------------------------------ parsing


def _unquote(path: str) -> str:
    """Undo git's C-style quoting of unusual paths (``"a/t\\303\\251st.py"``)."""
    if len(path) < 2 or not (path.startswith('"') and path.endswith('"')):
        return path
    body = path[1:-1]
    out = bytearray()
    i = 0
    simple = {
        "n": b"\n", "t": b"\t", '"': b'"', "\\": b"\\", "a": b"\a", "b": b"\b", "f": b"\f", "r": b"\r", "v": b"\v"
    }
    while i < len(body):
        ch = body[i]
        if ch == "\\" and i + 1 < len(body):
            nxt = body[i + 1]
            if nxt in simple:
                out += simple[nxt]
                i += 2
                continue
            if re.fullmatch(r"[0-7]{3}", body[i + 1 : i + 4]):
                out.append(int(body[i + 1 : i + 4], 8))
                i += 4
                continue
        out += ch.encode("utf-8")
        i += 1
    return out.decode("utf-8", errors="replace")


def _strip_prefix(path: str, prefix: str) -> str:
    return path[len(prefix) :] if path.startswith(prefix) else path


def _header_path(raw: str, prefix: str) -> Optional[str]:
    """The path of a ``---`` / ``+++`` line: None for /dev/null, without ``a/`` / ``b/``."""
    raw = raw.split("\t", 1)[0] if not raw.startswith('"') else raw  # drop a timestamp
    raw = raw.rstrip("\r")
    if raw == "/dev/null":
        return None
    return _strip_prefix(_unquote(raw), prefix)


def _diff_git_paths(rest: str) -> tuple[Optional[str], Optional[str]]:
    """Both paths of ``diff --git a/X b/Y``; ambiguous with spaces, so only a fallback."""
    rest = rest.rstrip("\r")
    if rest.startswith('"'):
        end = rest.find('"', 1)
        while end != -1 and rest[end - 1] == "\\":
            end = rest.find('"', end + 1)
        if end != -1:
            old = _strip_prefix(_unquote(rest[: end + 1]), "a/")
            return old, _strip_prefix(_unquote(rest[end + 1 :].strip()), "b/")
    # Unchanged name (the common case): "a/P b/P" splits exactly in the middle.
    if rest.startswith("a/") and len(rest) % 2 == 1:
        half = (len(rest) - 1) // 2
        left, right = rest[:half], rest[half + 1 :]
        if rest[half] == " " and right.startswith("b/") and left[2:] == right[2:]:
            return left[2:], right[2:]
    cut = rest.find(" b/")
    if cut == -1:
        return None, None
    return _strip_prefix(rest[:cut], "a/"), _strip_prefix(_unquote(rest[cut + 1 :]), "b/")


def _opens_definition(added_line: str) -> bool:
    """The reference's textual test for an inserted run that adds a new definition."""
    return "def " in added_line or "class " in added_line


class _FileBuilder:
    def __init__(self, old_path: Optional[str] = None, new_path: Optional[str] = None) -> None:
        self.old_path = old_path
        self.new_path = new_path
        self.created = False
        self.deleted = False
        self.saw_header = False  # a ---/+++ pair settled the paths
        self.removed: list[int] = []
        self.inserted: list[int] = []
        self.runs: list[tuple[int, bool]] = []  # (insertion point, run opens with a definition)

    def build(self) -> FilePatch:
        old = None if self.created else self.old_path
        new = None if self.deleted else self.new_path
        inserted = tuple(sorted(set(self.inserted)))
        # A point is a definition insertion only if every run inserted there opens with one.
        plain = {k for k, is_def in self.runs if not is_def}
        definitions = tuple(k for k in inserted if k not in plain)
        return FilePatch(old, new, tuple(sorted(set(self.removed))), inserted, definitions)


def parse_patch(patch: str) -> list[FilePatch]:
    """Parse a (git-style) unified diff into one :class:`FilePatch` per file.

    Hunks are read by their line counts, so content lines that look like
    headers (a removed ``-- x`` reads ``--- x``) are never mistaken for them.
    Handles renames/copies, created and deleted files, binary sections,
    ``\\ No newline at end of file`` markers and plain (non-git) diffs.
    """
    files: list[FilePatch] = []
    current: Optional[_FileBuilder] = None
    old_left = new_left = 0
    old_line = 0
    last_kind = ""  # kind of the previous hunk line, to group inserted runs

    def finish() -> None:
        nonlocal current
        if current is not None:
            files.append(current.build())
        current = None

    for line in patch.split("\n"):
        if old_left > 0 or new_left > 0:
            tag = line[:1]
            if tag == "\\":  # "\ No newline at end of file"
                continue
            if tag == "-" and old_left > 0:
                assert current is not None
                current.removed.append(old_line)
                old_line += 1
                old_left -= 1
                last_kind = "-"
                continue
            if tag == "+" and new_left > 0:
                assert current is not None
                if last_kind != "+":
                    current.inserted.append(old_line - 1)
                    current.runs.append((old_line - 1, _opens_definition(line[1:])))
                new_left -= 1
                last_kind = "+"
                continue
            if tag == " " or line in ("", "\r"):  # context (some tools strip a blank's space)
                old_line += 1
                old_left -= 1
                new_left -= 1
                last_kind = " "
                continue
            # Malformed counts: leave the hunk and read the line as a header.
            old_left = new_left = 0

        if line.startswith("diff --git "):
            finish()
            current = _FileBuilder(*_diff_git_paths(line[len("diff --git ") :]))
        elif line.startswith("--- "):
            if current is None or current.saw_header:
                finish()
                current = _FileBuilder()
            current.old_path = _header_path(line[4:], "a/")
            current.created = current.old_path is None
            current.saw_header = True
        elif line.startswith("+++ ") and current is not None:
            current.new_path = _header_path(line[4:], "b/")
            current.deleted = current.new_path is None
        elif current is None:
            continue
        elif line.startswith(("rename from ", "copy from ")):
            current.old_path = _unquote(line.split(" ", 2)[2].rstrip("\r"))
        elif line.startswith(("rename to ", "copy to ")):
            current.new_path = _unquote(line.split(" ", 2)[2].rstrip("\r"))
        elif line.startswith("new file mode"):
            current.created = True
        elif line.startswith("deleted file mode"):
            current.deleted = True
        else:
            match = _HUNK.match(line)
            if match:
                old_start = int(match.group(1))
                old_left = int(match.group(2)) if match.group(2) is not None else 1
                new_left = int(match.group(4)) if match.group(4) is not None else 1
                # An empty old range names the line *after which* the hunk goes.
                old_line = old_start + 1 if old_left == 0 else old_start
                last_kind = ""
    finish()
    return files


# ----------------------------------------------------------------- functions

_PY_DEF = re.compile(r"\s*(?:async\s+)?def\b")


def _definition_line(chunk: Chunk, lines: Optional[list[str]]) -> int:
    """First line of ``chunk`` that counts for gold purposes: the ``def`` line for Python.

    Chunk spans open at the decorators; the reference protocol (Python's
    ``ast`` ``lineno``) starts a function at its ``def`` keyword.
    """
    if lines is None or chunk.language != "python":
        return chunk.start_line
    for number in range(chunk.start_line, min(chunk.end_line, len(lines)) + 1):
        if _PY_DEF.match(lines[number - 1]):
            return number
    return chunk.start_line


def _source_lines(source: bytes | str | None) -> Optional[list[str]]:
    if source is None:
        return None
    text = source.decode("utf-8", errors="replace") if isinstance(source, (bytes, bytearray)) else source
    return text.split("\n")


def functions_touched(
    file_patch: FilePatch, chunks: Sequence[Chunk], source: bytes | str | None = None
) -> list[str]:
    """Qualified names of the pre-existing functions/methods the patch changes, in source order.

    Only ``function`` / ``method`` chunks count (a nested function is part of
    its outermost function's chunk). A function spans ``start..end``:

    * a removed old line ``r`` credits it when ``start <= r <= end``;
    * lines inserted after old line ``k`` credit it when the old line that
      follows them is inside it, ``start <= k + 1 <= end``, unless the
      inserted run opens with a new definition (``definition_insertions``).

    ``source`` is the file's text at the base commit. When given, a Python
    function starts at its ``def`` line, decorators excluded, as the reference
    protocol has it (SWE-bench gold labels always pass it); without it the
    chunk's own span, decorators included, is used.
    """
    lines = _source_lines(source)
    removed = file_patch.removed_lines
    skipped = set(file_patch.definition_insertions)
    followers = [k + 1 for k in file_patch.insertion_points if k not in skipped]
    functions = sorted(
        (c for c in chunks if c.kind in ("function", "method")), key=lambda c: (c.start_line, c.end_line)
    )
    touched: dict[str, None] = {}
    for chunk in functions:
        start, end = _definition_line(chunk, lines), chunk.end_line
        if any(start <= r <= end for r in removed) or any(start <= n <= end for n in followers):
            touched.setdefault(chunk.name, None)
    return list(touched)
