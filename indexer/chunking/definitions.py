"""Function and method definitions of one file with their documentation rows, for data mining.

The chunker renders embedder text (bounded, with class context); training data
needs something else from the same parse: where each function's docstring or
leading comment sits, so that the documentation can become a query and the
code without it a positive. This module exposes that geometry read-only, from
the chunker's own walk, so names and spans agree with the index exactly and
the chunker's output (and ``CHUNKER_VERSION``) stays untouched.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from indexer.chunking.chunker import _SPECS, _collect, _decode  # same package: one walk, one naming
from indexer.chunking.languages import LANGUAGES, get_parser

__all__ = ["Definition", "function_definitions"]


@dataclass(frozen=True)
class Definition:
    """One function or method. Rows are 0-based and inclusive.

    ``doc_rows`` is the docstring (Python: inside the body) or the comment
    block right above the definition (every other language), or None.
    ``start_row`` includes decorators / export keywords, as chunk spans do.
    """

    name: str
    kind: str  # "function" | "method"
    start_row: int
    end_row: int
    header_end_row: int
    doc_rows: Optional[tuple[int, int]]
    doc_inside: bool  # the documentation is inside the span (Python docstrings)


def function_definitions(source: bytes | str, language: str) -> tuple[list[Definition], list[str]]:
    """(definitions in source order, the decoded source split into rows with ``\\r`` dropped).

    Raises ValueError for an unsupported language. Broken source yields what
    tree-sitter recovers, like :func:`indexer.chunking.chunker.chunk_source`.
    """
    if language not in _SPECS:
        raise ValueError(f"unsupported language {language!r}; expected one of {', '.join(LANGUAGES)}")
    spec = _SPECS[language]
    text, data = _decode(source)
    rows = [r.rstrip("\r") for r in text.split("\n")]
    if not data.strip():
        return [], rows
    tree = get_parser(language).parse(data)
    last = len(rows) - 1
    out = []
    for d in _collect(tree.root_node, spec, data):
        if d.kind not in ("function", "method"):
            continue
        out.append(
            Definition(
                name=d.name,
                kind=d.kind,
                start_row=d.start_row,
                end_row=min(d.end_row, last),
                header_end_row=d.header_end_row,
                doc_rows=d.doc_rows,
                doc_inside=spec.docstring_in_body,
            )
        )
    out.sort(key=lambda d: (d.start_row, -d.end_row))
    return out, rows
