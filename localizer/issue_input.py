"""Issue text as input: read from a file or stdin, with one-line errors for what cannot be an issue."""

from __future__ import annotations

import codecs
from pathlib import Path

from indexer.errors import IssueError

# UTF-32's marks first: UTF-32-LE's begins with UTF-16-LE's.
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)


def validate_issue_text(text: str) -> str:
    """Issue text that can be ranked: not binary, not empty."""
    if "\0" in text:
        raise IssueError("the issue looks like a binary file, not text")
    if not text.strip():
        raise IssueError("the issue is empty: give its title and description")
    return text


def read_issue(path: str | Path) -> str:
    """Read an issue file (``-`` is handled by the CLI); clear errors for missing, binary or empty files."""
    path = Path(path)
    if not path.exists():
        raise IssueError(f"issue file does not exist: {path}")
    if path.is_dir():
        raise IssueError(f"issue path is a directory, not a file: {path}")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise IssueError(f"cannot read issue file {path}: {exc.strerror or exc}") from None
    return decode_issue(data, f"issue file {path}")


def bom_encoding(data: bytes) -> str | None:
    """The encoding a byte-order mark announces. Windows editors save UTF-16 and UTF-8 with one,
    and UTF-16's zero bytes would otherwise read as a binary file."""
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            return encoding
    return None


def decode_issue(data: bytes, source: str = "the issue") -> str:
    """Issue bytes from a file or stdin as text; binary and empty input are clear errors.

    A byte-order mark decides the encoding (and is dropped); without one the issue is UTF-8.
    """
    encoding = bom_encoding(data)
    if encoding is None:
        if b"\0" in data[:8192]:
            raise IssueError(f"{source} looks binary, not text")
        encoding = "utf-8"
    text = data.decode(encoding, errors="replace")
    if "\0" in text:
        raise IssueError(f"{source} looks binary, not text")
    return validate_issue_text(text)
