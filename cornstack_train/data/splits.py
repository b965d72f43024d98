"""Which repositories are held out for evaluation, decided the same way by `train` and `eval`.

Pairs from one repository share identifiers, helpers and style, so a random
row split leaks: the model would be tested on near-copies of what it trained
on. The split is by repository, and it is a pure function of the repository
name (a salted SHA-256), so `train` and `eval` agree without sharing a file,
and adding repositories never moves an existing one across the split.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field


@dataclass(frozen=True)
class RepoSplit:
    heldout_fraction: float = 0.1
    heldout_repos: tuple[str, ...] = field(default_factory=tuple)  # explicit list: overrides the fraction
    salt: str = "cornstack-eval"

    def is_heldout(self, repo: str) -> bool:
        if self.heldout_repos:
            return repo in self.heldout_repos
        return repo_bucket(repo, self.salt) < self.heldout_fraction

    def describe(self) -> dict:
        return {"heldout_fraction": self.heldout_fraction, "heldout_repos": list(self.heldout_repos), "salt": self.salt}


def repo_bucket(repo: str, salt: str = "cornstack-eval") -> float:
    """A stable number in [0, 1) for a repository name."""
    digest = hashlib.sha256(f"{salt}\0{repo}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64
