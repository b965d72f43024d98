"""Identifier-aware tokenization shared by BM25 indexing and query building.

Code search lives or dies on identifiers: ``getUserName`` and ``get_user_name``
must meet ``user name`` in an issue. Each identifier yields its sub-words and,
when it has several, the whole identifier too, so an exact mention still
outweighs a partial one.
"""

from __future__ import annotations

import re
from functools import lru_cache

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


@lru_cache(maxsize=200_000)
def _word_terms(word: str, keep_stopwords: bool) -> tuple[str, ...]:
    """Terms of one word; cached because code repeats the same identifiers endlessly."""
    if len(word) > 64:  # hashes, base64 blobs
        return ()
    subwords = split_identifier(word)
    lowered = word.lower().strip("_")
    terms = [lowered, *subwords] if len(subwords) > 1 and lowered else subwords
    if keep_stopwords:
        return tuple(terms)
    return tuple(t for t in terms if t not in STOPWORDS and (len(t) > 1 or t.isdigit()))


def code_terms(text: str, *, keep_stopwords: bool = False) -> list[str]:
    """Terms for BM25: sub-words of every identifier plus the identifier itself."""
    terms: list[str] = []
    for word in _WORD.findall(text):
        terms.extend(_word_terms(word, keep_stopwords))
    return terms
