"""The unit of indexing: a file, class or function span with the text an embedder sees."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

ChunkKind = Literal["file", "class", "function", "method"]
CHUNK_KINDS: tuple[str, ...] = ("file", "class", "function", "method")


@dataclass(frozen=True)
class Chunk:
    """One retrievable span of a source file.

    ``name`` is the qualified name (``Class.method``, ``Outer.Inner``, ``func``);
    it is empty for ``file`` chunks. Lines are 1-based and inclusive.
    ``text`` is what the embedder sees: bounded in size, and for functions it
    carries the enclosing class as context plus the signature and docstring,
    which survive truncation of long bodies.
    """

    path: str
    name: str
    kind: str
    start_line: int
    end_line: int
    language: str
    text: str

    @property
    def is_function(self) -> bool:
        return self.kind in ("function", "method")

    @property
    def key(self) -> str:
        """Unique within one snapshot: overloads share a name but not a start line."""
        return f"{self.path}::{self.name}::{self.start_line}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Chunk":
        return cls(
            path=data["path"],
            name=data["name"],
            kind=data["kind"],
            start_line=int(data["start_line"]),
            end_line=int(data["end_line"]),
            language=data["language"],
            text=data["text"],
        )
