"""The licence gate: only permissively licensed repositories, judged at their pinned commit, feed training.

Weights trained on fetched public code may ship only when every repository behind them is under
a permissive licence (docs/training-data.md). The lists in ``docs/*-repos.json`` carry a
``license`` filled in by hand, and a licence can change between a project's first commit and
today, so the gate believes neither alone: it reads the licence files *at the pinned commit*
(``git ls-tree`` and ``git cat-file``, which work on bare mirrors) and keeps a repository only
when both the listed licence and the licence read there are permissive. Everything it cannot
read or recognise is refused, with a one-line reason, because a wrong "yes" costs far more than a
lost repository.

The classifier is a handful of key phrases per licence, not a licence scanner: it has to tell
the few permissive licences apart and notice anything else in the same text (tqdm's LICENCE is
MIT *and* MPL-2.0; a BSD file that bundles GPL code is GPL too).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from indexer.git.runner import GitError, run_git

from cornstack_train.errors import TrainingError

PERMISSIVE = frozenset({"MIT", "BSD-2-Clause", "BSD-3-Clause", "Apache-2.0", "ISC", "0BSD"})

MAX_LICENSE_BYTES = 512 * 1024  # a licence file larger than this is not a licence file
_LICENSE_NAME = re.compile(r"^(.*[-_.])?(licen[cs]es?|copying|copyright|unlicense)([-_.].*)?$", re.I)
_CODE_SUFFIX = re.compile(r"\.(py|pyi|js|mjs|ts|go|rb|php|java|c|h|rs|json|ya?ml|toml|cfg|sh)$", re.I)


class LicenseError(TrainingError):
    """A repository's licence cannot be read (no such commit, a broken mirror); the message is one line."""


@dataclass(frozen=True)
class RepoEntry:
    """One entry of a repository list (docs/history-repos.json): what the gate and the miner need."""

    repo: str  # owner/name
    head: str  # the pinned commit
    language: str | None = None
    license: str | None = None  # as listed, an SPDX expression
    license_file: str | None = None  # as listed

    @property
    def dir_name(self) -> str:
        return self.repo.replace("/", "__")

    @classmethod
    def from_json(cls, entry: dict[str, Any]) -> "RepoEntry":
        if not entry.get("repo") or not entry.get("head"):
            raise LicenseError(f"repository list entry without repo or head: {json.dumps(entry)[:120]}")
        return cls(entry["repo"], entry["head"], entry.get("language"), entry.get("license"),
                   entry.get("license_file"))


@dataclass(frozen=True)
class FoundLicense:
    """What the licence files at a commit say: an SPDX expression (None: no file, or nothing recognised)."""

    spdx: str | None
    file: str | None  # the files read, comma-separated


@dataclass(frozen=True)
class LicenseVerdict:
    """The gate's decision on one repository, recorded in the mined data's stats."""

    repo: str
    commit: str
    spdx: str | None  # read at ``commit``
    file: str | None
    permissive: bool
    reason: str  # one line


@dataclass(frozen=True)
class GatedRepo:
    entry: RepoEntry
    path: Path
    verdict: LicenseVerdict


@dataclass(frozen=True)
class GateResult:
    kept: list[GatedRepo]
    refused: list[LicenseVerdict]


# ------------------------------------------------------------ classifying


def spdx_ids(expression: str | None) -> set[str]:
    """The licence ids of an SPDX expression (``MPL-2.0 AND MIT`` → both); exceptions (``WITH x``) kept as ids."""
    if not expression:
        return set()
    tokens = re.split(r"[\s()]+", expression)
    return {t for t in tokens if t and t.upper() not in ("AND", "OR", "WITH")}


def is_permissive(expression: str | None) -> bool:
    """Every id of the expression is permissive: an ``AND`` with anything else, or an exception, is not."""
    ids = spdx_ids(expression)
    return bool(ids) and ids <= PERMISSIVE


def _normalise(text: str) -> str:
    text = text.lower().replace("licence", "license")
    return re.sub(r"[\s*#>]+", " ", text)


def _version(text: str, start: int, default: str) -> str:
    """The first ``version N[.M]`` / ``v. N.M`` shortly after ``start``."""
    found = re.search(r"\b(?:version|v\.?)\s*(\d+(?:\.\d+)?)", text[start:start + 250])
    return found.group(1) if found else default


def _dotted(version: str) -> str:
    return version if "." in version else f"{version}.0"


_SPDX_TAG = re.compile(r"spdx-license-identifier:\s*([^\n]+)", re.I)
_PHRASES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("MIT", re.compile(r"permission is hereby granted, free of charge, to any person obtaining a copy|"
                       r"\b(licensed|released|distributed|available) under (the )?(terms of the )?mit license")),
    ("BSD", re.compile(r"redistribution and use in source and binary forms,?[^.]{0,80}? with or without "
                       r"modification,? are permitted provided")),
    ("ISC", re.compile(r"permission to use, copy, modify, (and/or|and) distribute this software for any purpose "
                       r"with or without fee is hereby granted")),
    ("Apache", re.compile(r"apache license,? (version|v\.?) ?(\d\.\d)")),
    ("MPL", re.compile(r"mozilla public license")),
    ("EPL", re.compile(r"eclipse public license")),
    ("CDDL", re.compile(r"common development and distribution license")),
    ("EUPL", re.compile(r"european union public license")),
    ("Artistic", re.compile(r"artistic license")),
    ("PSF-2.0", re.compile(r"python software foundation license")),
    ("Unlicense", re.compile(r"free and unencumbered software released into the public domain")),
    ("CC0-1.0", re.compile(r"\bcc0\b|creative commons zero")),
    ("CC", re.compile(r"creative commons attribution")),
    ("WTFPL", re.compile(r"do what the fuck you want")),
    ("Ruby", re.compile(r"you can redistribute it and/or modify it under either the terms of the 2-clause bsdl")),
)
# A GNU licence counts when the text *is* one (its title or the FSF's notice), not when another
# licence names it: MPL-2.0 lists the GPL family among its "Secondary Licenses".
_GNU = re.compile(r"gnu (lesser |library |affero )?general public license")
_GNU_ITSELF = re.compile(r"free software foundation|general public license (version|v\.?) ?\d")


def license_ids(text: str) -> set[str]:
    """Every licence the text is (or bundles), as SPDX-like ids; empty when nothing is recognised."""
    ids: set[str] = set()
    for tag in _SPDX_TAG.findall(text):
        ids |= spdx_ids(tag.strip().strip("*/#-> ").strip())
    norm = _normalise(text)
    for name, pattern in _PHRASES:
        found = pattern.search(norm)
        if not found:
            continue
        if name == "BSD":
            advertising = "all advertising materials mentioning features" in norm
            third = "neither the name" in norm or "endorse or promote products derived" in norm
            ids.add("BSD-4-Clause" if advertising else "BSD-3-Clause" if third else "BSD-2-Clause")
        elif name == "ISC":
            ids.add("ISC" if "provided that the above copyright notice" in norm else "0BSD")
        elif name == "Apache":
            ids.add(f"Apache-{found.group(2)}")
        elif name in ("MPL", "EPL", "CDDL", "EUPL", "Artistic"):
            default = {"MPL": "2.0", "EPL": "2.0", "CDDL": "1.0", "EUPL": "1.2", "Artistic": "2.0"}[name]
            ids.add(f"{name}-{_dotted(_version(norm, found.end(), default))}")
        else:
            ids.add(name)
    gnu = _GNU.search(norm)  # the first mention names the licence; its text then cites the others
    if gnu and _GNU_ITSELF.search(norm):
        kind = (gnu.group(1) or "").strip()
        family = {"lesser": "LGPL", "library": "LGPL", "affero": "AGPL"}.get(kind, "GPL")
        version = _version(norm, gnu.end(), "3" if family == "AGPL" else "2")
        ids.add(f"{family}-{_dotted(version)}")
    return ids


def classify_license(text: str) -> str | None:
    """An SPDX expression for a licence text (several licences joined by ``AND``), or None."""
    ids = license_ids(text)
    return " AND ".join(sorted(ids)) if ids else None


# ------------------------------------------------------------------ git


def _tree(repo_path: Path, commit: str) -> list[tuple[str, str, int, str]]:
    """(type, object, size, name) of the root tree at ``commit``."""
    try:
        out = run_git(["ls-tree", "-l", "-z", f"{commit}^{{tree}}", "--"], repo=repo_path, text=True).stdout
    except GitError as exc:
        raise LicenseError(f"cannot list {commit[:12]} in {repo_path}: {exc}") from None
    rows = []
    for item in out.split("\0"):
        meta, _, name = item.partition("\t")
        parts = meta.split()
        if len(parts) == 4:
            rows.append((parts[1], parts[2], int(parts[3]) if parts[3].isdigit() else 0, name))
    return rows


def _blob(repo_path: Path, obj: str) -> str:
    data = run_git(["cat-file", "blob", obj], repo=repo_path).stdout
    return data.decode("utf-8", errors="replace")


def licence_files(names: Iterable[str]) -> list[str]:
    """Root file names that hold a licence: LICENSE*, LICENCE*, COPYING*, MIT-LICENSE, LICENSE.BSD..."""
    return sorted(n for n in names if _LICENSE_NAME.match(n) and not _CODE_SUFFIX.search(n))


def read_license(repo_path: str | Path, commit: str, listed_file: str | None = None) -> FoundLicense:
    """The licence at ``commit``: every licence file at the root, classified together.

    ``listed_file`` (the list's ``license_file``) is read only where the root has no licence file,
    since a few projects keep theirs in a README or a package directory. Raises
    :class:`LicenseError` when the commit cannot be read.
    """
    repo_path = Path(repo_path)
    tree = [row for row in _tree(repo_path, commit) if row[0] == "blob"]
    by_name = {name: (obj, size) for _, obj, size, name in tree}
    names = licence_files(by_name)
    if not names and listed_file:
        found = run_git(["rev-parse", "--verify", "--quiet", f"{commit}:{listed_file}"], repo=repo_path,
                        check=False, text=True)
        if found.returncode == 0:
            by_name[listed_file] = (found.stdout.strip(), 0)
            names = [listed_file]
    ids: set[str] = set()
    read: list[str] = []
    for name in names:
        obj, size = by_name[name]
        if size > MAX_LICENSE_BYTES:
            continue
        try:
            text = _blob(repo_path, obj)
        except GitError as exc:
            raise LicenseError(f"cannot read {name} at {commit[:12]} in {repo_path}: {exc}") from None
        read.append(name)
        ids |= license_ids(text)
    return FoundLicense(" AND ".join(sorted(ids)) if ids else None, ", ".join(read) or None)


# ----------------------------------------------------------------- gate


def judge(entry: RepoEntry, found: FoundLicense) -> LicenseVerdict:
    """Permissive only when the list and the files at the pin both say so."""

    def verdict(permissive: bool, reason: str) -> LicenseVerdict:
        return LicenseVerdict(entry.repo, entry.head, found.spdx, found.file, permissive, reason)

    if found.file is None:
        return verdict(False, f"no LICENSE/LICENCE/COPYING file at {entry.head[:12]}")
    if found.spdx is None:
        return verdict(False, f"{found.file} at {entry.head[:12]}: licence not recognised")
    if not is_permissive(found.spdx):
        return verdict(False, f"{found.file} at {entry.head[:12]} is {found.spdx}, not permissive")
    if not is_permissive(entry.license):
        return verdict(False, f"listed licence {entry.license!r} is not permissive (file says {found.spdx})")
    note = "" if spdx_ids(entry.license) == spdx_ids(found.spdx) else f" (listed {entry.license})"
    return verdict(True, f"{found.spdx} in {found.file} at {entry.head[:12]}{note}")


def check_repository(entry: RepoEntry, path: Path) -> LicenseVerdict:
    """Read and judge one repository; an unreadable pin is a refusal, not an error."""
    if not path.exists():
        return LicenseVerdict(entry.repo, entry.head, None, None, False, f"not on disk: {path}")
    try:
        found = read_license(path, entry.head, entry.license_file)
    except LicenseError as exc:
        return LicenseVerdict(entry.repo, entry.head, None, None, False, str(exc))
    return judge(entry, found)


def gate(entries: Iterable[RepoEntry | dict[str, Any]], repos_dir: str | Path) -> GateResult:
    """Split list entries into kept (permissive at their pin, on disk as ``repos_dir/owner__name``) and refused."""
    kept: list[GatedRepo] = []
    refused: list[LicenseVerdict] = []
    for raw in entries:
        entry = raw if isinstance(raw, RepoEntry) else RepoEntry.from_json(raw)
        path = Path(repos_dir) / entry.dir_name
        verdict = check_repository(entry, path)
        if verdict.permissive:
            kept.append(GatedRepo(entry, path, verdict))
        else:
            refused.append(verdict)
    return GateResult(kept, refused)


def load_repo_list(path: str | Path) -> list[RepoEntry]:
    """The entries of one repository list (a JSON array of {repo, head, language, license, license_file})."""
    try:
        raw = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise LicenseError(f"cannot read repository list {path}: {exc}") from None
    if not isinstance(raw, list):
        raise LicenseError(f"repository list {path} is not a JSON array")
    return [RepoEntry.from_json(e) for e in raw]


__all__ = ["PERMISSIVE", "FoundLicense", "GateResult", "GatedRepo", "LicenseError", "LicenseVerdict", "RepoEntry",
           "check_repository", "classify_license", "gate", "is_permissive", "judge", "license_ids", "licence_files",
           "load_repo_list", "read_license", "spdx_ids"]
