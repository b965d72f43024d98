"""Docstring-code pairs from one source file: the documentation is the query, the code the positive.

CoRNStack's core data: a function's docstring (or the comment block above it,
in languages that document that way) says in natural language what the code
does, which is exactly what an issue does for the code that must change. The
documentation is cut out of the positive; left in, the model would learn to
match text with itself instead of prose with code.

Definitions come from :mod:`indexer.chunking.definitions`, i.e. the same tree-sitter
walk the index uses, so names agree with what ``localize`` reports.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass

from indexer.chunking.definitions import Definition, function_definitions

from cornstack_train.data.cleaning import docstring_text


@dataclass(frozen=True)
class DocPair:
    """One documented function. Lines are 1-based and inclusive (the function's span)."""

    name: str
    kind: str
    start_line: int
    end_line: int
    query: str  # documentation prose, markers removed
    positive: str  # the function without its documentation, dedented


def function_code(defn: Definition, rows: list[str], drop_doc: bool = True) -> str:
    """The function's source, dedented; with ``drop_doc`` its in-body docstring rows removed.

    Leading comments are outside the span already, so only Python changes.
    """
    skip: range = range(0)
    if drop_doc and defn.doc_inside and defn.doc_rows is not None:
        skip = range(defn.doc_rows[0], defn.doc_rows[1] + 1)
    lines = [rows[r] for r in range(defn.start_row, defn.end_row + 1) if r not in skip]
    return textwrap.dedent("\n".join(lines).expandtabs(4)).strip("\n")


def documentation(defn: Definition, rows: list[str], language: str) -> str:
    if defn.doc_rows is None:
        return ""
    first, last = defn.doc_rows
    return docstring_text("\n".join(rows[first : last + 1]), language)


def docstring_pairs(source: bytes | str, language: str) -> list[DocPair]:
    """Every documented function or method of the file, in source order (unfiltered)."""
    defs, rows = function_definitions(source, language)
    pairs = []
    for d in defs:
        query = documentation(d, rows, language)
        if not query:
            continue
        pairs.append(DocPair(d.name, d.kind, d.start_row + 1, d.end_row + 1, query, function_code(d, rows)))
    return pairs
