"""Issue text as input: read from a file or stdin, with one-line errors for what cannot be an issue."""

from __future__ import annotations

from pathlib import Path

from indexer.errors import IssueError



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
    return decode_issue(path.read_bytes(), f"issue file {path}")


def decode_issue(data: bytes, source: str = "the issue") -> str:
    """Issue bytes from a file or stdin as text; binary and empty input are clear errors."""
    if b"\0" in data[:8192]:
        raise IssueError(f"{source} looks binary, not text")
    return validate_issue_text(data.decode("utf-8", errors="replace"))
