"""Identifier-aware tokenization shared by BM25 indexing and query building.

Code search lives or dies on identifiers: ``getUserName`` and ``get_user_name``
must meet ``user name`` in an issue. Each identifier yields its sub-words and,
when it has several, the whole identifier too, so an exact mention still
outweighs a partial one.
"""

from __future__ import annotations

import re

_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*|[0-9]+")
_CAMEL = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+[0-9]*|[A-Z]+[0-9]*|[0-9]+")

# Keywords and glue words that match everywhere and carry no location signal.
STOPWORDS = frozenset(
    """
    a an and are as at be by for from has have if in is it its of on or that the this to was
    were will with not but can do does self cls def class return none true false null
    import else elif while pass var let const function func new this public private
    protected static void int str end then we i you when what which there their be been
    """.split()
)


def split_identifier(identifier: str) -> list[str]:
    """``HTTPServerError_v2`` -> ``["http", "server", "error", "v2"]``."""
    parts: list[str] = []
    for piece in identifier.split("_"):
        if piece:
            parts.extend(m.group(0).lower() for m in _CAMEL.finditer(piece))
    return parts


def code_terms(text: str, *, keep_stopwords: bool = False) -> list[str]:
    """Terms for BM25: sub-words of every identifier plus the identifier itself."""
    terms: list[str] = []
    for match in _WORD.finditer(text):
        word = match.group(0)
        if len(word) > 64:  # hashes, base64 blobs
            continue
        subwords = split_identifier(word)
        lowered = word.lower().strip("_")
        if len(subwords) > 1 and lowered:
            terms.append(lowered)
        terms.extend(subwords)
    if keep_stopwords:
        return terms
    return [t for t in terms if t not in STOPWORDS and (len(t) > 1 or t.isdigit())]
