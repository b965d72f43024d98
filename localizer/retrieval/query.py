"""Turn a long issue into what retrievers can use.

Issues average over 2,000 characters while the embedder reads 256 tokens, so
the dense query leads with what locates a bug: the title, the error message,
traceback frames, paths and identifiers, then the prose. Paths and symbols
named explicitly are also returned on their own, for BM25 emphasis and for
boosting the files and functions they name.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from indexer.chunking.tokenize import code_terms

SOURCE_EXTENSIONS = ("py", "pyi", "java", "js", "mjs", "cjs", "jsx", "ts", "tsx", "go", "php", "rb")

_CODE_BLOCK = re.compile(r"```[^\n]*\n(.*?)```", re.S)
_INLINE_CODE = re.compile(r"`([^`\n]+)`")
_PATH = re.compile(r"(?<![\w/.-])((?:[\w.-]+/)*[\w.-]+\.(?:%s))\b" % "|".join(SOURCE_EXTENSIONS))
_PY_FRAME = re.compile(r'File "([^"]+)", line (\d+), in ([\w<>]+)')
_JAVA_FRAME = re.compile(r"at ([\w$.]+)\.([\w$<>]+)\(([\w$]+\.\w+):(\d+)\)")
_GENERIC_FRAME = re.compile(r"([\w./-]+\.(?:js|ts|tsx|go|rb|php|mjs|cjs)):(\d+)(?::\d+)?(?:[:\s]+in [`'](\w+))?")
_ERROR_LINE = re.compile(r"^\s*((?:[A-Za-z_][\w]*\.)*[A-Z]\w*(?:Error|Exception|Warning|Exit|Interrupt|Fault))\b(:.*)?$", re.M)
_IDENTIFIER = re.compile(r"\b(?:[A-Za-z_]\w*\.)+[A-Za-z_]\w*\b|\b[A-Za-z_]\w*\b")
_MAX_DENSE_CHARS = 4000
_MAX_LINE_DIGITS = 9


@dataclass(frozen=True)
class TracebackFrame:
    path: str
    line: int
    function: str


@dataclass(frozen=True)
class IssueQuery:
    """An issue, parsed once, in the shapes each retriever wants."""

    text: str
    title: str
    dense_text: str
    terms: list[str]
    mentioned_paths: list[str] = field(default_factory=list)
    mentioned_symbols: frozenset[str] = frozenset()
    frames: list[TracebackFrame] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def _title(text: str) -> str:
    for line in text.splitlines():
        line = line.strip().lstrip("#").strip()
        if line:
            return line
    return ""


def _looks_like_code_symbol(word: str) -> bool:
    """snake_case, camelCase, CamelCase or dotted: shapes that prose rarely has."""
    if "." in word:
        return True
    if "_" in word.strip("_"):
        return True
    if word.startswith("__") and word.endswith("__"):
        return True
    return bool(re.search(r"[a-z][A-Z]|[A-Z][a-z]+[A-Z]", word))


def _line_number(digits: str) -> int | None:
    """A frame's line number; None for a digit run no file has (``int()`` refuses over 4300 digits)."""
    return int(digits) if len(digits) <= _MAX_LINE_DIGITS else None


def extract_frames(text: str) -> list[TracebackFrame]:
    found: list[tuple[str, str, str]] = _PY_FRAME.findall(text)
    for qualified, method, filename, line in _JAVA_FRAME.findall(text):
        package_path = "/".join(qualified.split(".")[:-1])
        found.append((f"{package_path}/{filename}" if package_path else filename, line, method))
    found += _GENERIC_FRAME.findall(text)
    frames = []
    for path, digits, function in found:
        line = _line_number(digits)
        if line is not None:
            frames.append(TracebackFrame(path, line, function))
    return frames


def build_query(text: str) -> IssueQuery:
    title = _title(text)
    inline = _INLINE_CODE.findall(_CODE_BLOCK.sub(" ", text))
    frames = extract_frames(text)
    errors = [m.group(0).strip() for m in _ERROR_LINE.finditer(text)]
    paths = list(dict.fromkeys(_PATH.findall(text) + [f.path for f in frames]))

    symbols: set[str] = set()
    for snippet in inline:
        symbols.update(m.group(0) for m in _IDENTIFIER.finditer(snippet))
    for word in _IDENTIFIER.findall(text):
        if _looks_like_code_symbol(word):
            symbols.add(word)
    symbols.update(f.function for f in frames if not f.function.startswith("<"))
    symbols = {s.strip(".") for s in symbols if len(s.strip(".")) >= 3 and not re.fullmatch(r"[\d.]+", s)}
    symbols -= set(paths)

    emphasis = " ".join([*sorted(symbols), *paths, *(f.function for f in frames)])
    terms = code_terms(text) + code_terms(title) + code_terms(emphasis) + code_terms(" ".join(errors))

    lead = [title, *errors[:3], *(f"{f.path} in {f.function}" for f in frames[-5:]), " ".join(inline[:20])]
    body = text if len(text) < _MAX_DENSE_CHARS else text[:_MAX_DENSE_CHARS]
    dense_text = "\n".join(part for part in [*lead, body] if part)
    return IssueQuery(
        text=text,
        title=title,
        dense_text=dense_text,
        terms=terms,
        mentioned_paths=paths,
        mentioned_symbols=frozenset(symbols),
        frames=frames,
        errors=errors,
    )
