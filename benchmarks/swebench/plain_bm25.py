"""A vanilla BM25 baseline, to explain how far the identifier-aware BM25 moves from the reference.

The reference numbers in the literature use BM25 over raw function text with a
plain word tokenizer (lowercased ``\\w\\w+`` words, English stop words, no
identifier splitting, no file paths, the issue text as is). This module builds
exactly that view of a snapshot, so both can be compared on the same instances.
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Callable

from indexer.index import RepoIndex
from localizer.retrieval.query import IssueQuery

_WORD = re.compile(r"(?u)\b\w\w+\b")


def _stopwords() -> frozenset[str]:
    from bm25s.stopwords import STOPWORDS_EN

    return frozenset(STOPWORDS_EN)


def plain_terms(text: str, stopwords: frozenset[str]) -> list[str]:
    return [w for w in _WORD.findall(text.lower()) if w not in stopwords]


def plain_view(index: RepoIndex, commit: str, read_blob: Callable[[str, str], bytes | None]) -> RepoIndex:
    """The same chunks, with BM25 terms taken from their raw source text only."""
    stopwords = _stopwords()
    lines_of: dict[str, list[str]] = {}
    terms = []
    for chunk in index.chunks:
        if chunk.path not in lines_of:
            data = read_blob(commit, chunk.path) or b""
            lines_of[chunk.path] = data.decode("utf-8", errors="replace").split("\n")
        span = "\n".join(lines_of[chunk.path][chunk.start_line - 1 : chunk.end_line])
        terms.append(plain_terms(span, stopwords))
    return replace(index, terms=terms)


def plain_query(query: IssueQuery) -> IssueQuery:
    return replace(query, terms=plain_terms(query.text, _stopwords()))
