"""What the history index keeps of one commit: enough to credit files and functions, nothing more.

A record is immutable once written, because a commit is: it is stored under its SHA
(content-addressed, like the parse cache's blobs), so a record computed once serves every
later build, at any revision whose ancestors include that commit.
"""

from __future__ import annotations

import json
from dataclasses import dataclass


@dataclass(frozen=True)
class CommitRecord:
    """One non-merge commit.

    ``files`` are the paths the commit changed, as named after the commit (a deleted file by
    its old name). ``renames`` are ``(old, new)`` pairs, so that a file's older history follows
    it to its current name. ``functions`` are ``(path, qualified name)`` of the functions the
    commit changed, decided at its parent with the rule of SWE-bench gold functions
    (:func:`indexer.git.diff.functions_touched`). ``bulk`` marks a commit too large to say
    anything about single files (a vendoring, a reformat); it keeps no files.
    """

    sha: str
    time: int  # author time, seconds since the epoch
    message: str
    terms: tuple[str, ...] = ()
    files: tuple[str, ...] = ()
    renames: tuple[tuple[str, str], ...] = ()
    functions: tuple[tuple[str, str], ...] = ()
    bulk: bool = False

    @property
    def subject(self) -> str:
        return self.message.split("\n", 1)[0].strip()

    def encode(self) -> bytes:
        payload = {"s": self.sha, "t": self.time, "m": self.message, "w": list(self.terms),
                   "f": list(self.files), "r": [list(r) for r in self.renames],
                   "fn": [list(f) for f in self.functions], "b": self.bulk}
        # Plain JSON: a record is a few hundred bytes, and a query decodes thousands of them, where
        # decompression alone cost a tenth of the history's query overhead.
        return json.dumps(payload, separators=(",", ":")).encode("utf-8", "surrogatepass")

    @classmethod
    def decode(cls, data: bytes) -> "CommitRecord":
        p = json.loads(data.decode("utf-8", "surrogatepass"))
        return cls(sha=p["s"], time=int(p["t"]), message=p["m"], terms=tuple(p["w"]), files=tuple(p["f"]),
                   renames=tuple((a, b) for a, b in p["r"]), functions=tuple((a, b) for a, b in p["fn"]),
                   bulk=bool(p["b"]))
