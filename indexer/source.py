"""Where file contents come from: a git revision, a git working tree, or a plain directory.

A revision is read straight from git objects (no checkout), which is how the
benchmark indexes hundreds of base commits. Every file is identified by its git
blob SHA, so the parse cache can tell unchanged content apart from edits no
matter where it came from.
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Protocol

from indexer.errors import FileVanishedError, RepositoryError
from indexer.filters import FileFilter
from indexer.git.blobs import GitBlobReader
from indexer.git.runner import GitError, run_git
from indexer.chunking.languages import language_for_path

log = logging.getLogger(__name__)

_SKIPPED_DIRS_WHEN_WALKING = frozenset({".git", ".hg", ".svn", "__pycache__", "node_modules", ".venv", "venv", ".tox"})


def git_blob_sha(data: bytes) -> str:
    """The SHA-1 git gives this content as a blob, so worktree and commit files share cache keys."""
    digest = hashlib.sha1(b"blob %d\0" % len(data))
    digest.update(data)
    return digest.hexdigest()


@dataclass(frozen=True)
class SourceFile:
    path: str  # repo-relative, POSIX separators
    blob_sha: str
    size: int
    language: str


class RepoSource(Protocol):
    """A listing of indexable files plus a way to read their bytes."""

    root: Path
    description: str

    def files(self) -> list[SourceFile]: ...

    def read(self, file: SourceFile) -> bytes: ...

    def close(self) -> None: ...


def find_git_root(path: Path) -> tuple[Path, bool] | None:
    """(top of the work tree, False) or (git dir, True) for a bare repo; None outside git."""
    result = run_git(["rev-parse", "--is-bare-repository", "--absolute-git-dir"], repo=path, check=False, text=True)
    if result.returncode != 0:
        return None
    is_bare, git_dir = result.stdout.strip().splitlines()[:2]
    if is_bare == "true":
        return Path(git_dir), True
    top = run_git(["rev-parse", "--show-toplevel"], repo=path, check=False, text=True)
    if top.returncode != 0:  # inside the .git directory itself
        return None
    return Path(top.stdout.strip()), False


def _read_work_file(root: Path, path: str) -> bytes:
    """The bytes of a file on disk, with one-line errors instead of tracebacks.

    Indexing runs while people save, check out and rename (the background hook
    starts on exactly those events), so a listed file may be gone when it is
    read: that is a :class:`FileVanishedError`, which indexing skips.
    """
    try:
        return (root / path).read_bytes()
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        raise FileVanishedError(f"{path} was deleted or renamed while it was indexed") from None
    except OSError as exc:
        raise RepositoryError(f"cannot read {root / path}: {exc.strerror or exc}") from None


def _keep(path: str, size: int | None, file_filter: FileFilter) -> str | None:
    """The language of an indexable path, or None when the path is skipped before reading."""
    language = language_for_path(path)
    if language is None or file_filter.skip_reason_for_path(path, size) is not None:
        return None
    return language


class GitRevisionSource:
    """Files of one commit, read from the object database: no checkout, no work tree needed."""

    def __init__(self, root: Path, rev: str, file_filter: FileFilter) -> None:
        self.root = root
        self.rev = rev
        self._filter = file_filter
        try:
            found = run_git(["rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}"], repo=root)
        except GitError:
            raise RepositoryError(f"unknown revision {rev!r} in {root}") from None
        self.commit = found.stdout.decode().strip()
        self.description = f"{root} @ {self.commit[:12]}"
        self._reader = GitBlobReader(root)

    def files(self) -> list[SourceFile]:
        listing = run_git(["ls-tree", "-r", "-l", "-z", "--full-tree", self.commit], repo=self.root).stdout
        files = []
        for entry in listing.split(b"\0"):
            if not entry:
                continue
            meta, _, raw_path = entry.partition(b"\t")
            mode, kind, sha, size = meta.split()
            if kind != b"blob" or mode == b"120000":  # submodules and symlinks are not code here
                continue
            if not size.isdigit():  # object absent from a partial clone: nothing to read
                continue
            path = raw_path.decode("utf-8", errors="surrogateescape")
            language = _keep(path, int(size), self._filter)
            if language:
                files.append(SourceFile(path, sha.decode(), int(size), language))
        return files

    def read(self, file: SourceFile) -> bytes:
        return self._reader.read(file.blob_sha)

    def close(self) -> None:
        self._reader.close()


class GitWorktreeSource:
    """Tracked files as they are on disk now, so uncommitted edits are localized too.

    The blob SHA of an unmodified file comes from git's index; only files that
    ``git diff-files`` reports as changed are read and hashed, so a warm run on
    a large repository reads almost nothing.
    """

    def __init__(self, root: Path, file_filter: FileFilter) -> None:
        self.root = root
        self._filter = file_filter
        self.description = str(root)

    def files(self) -> list[SourceFile]:
        staged = run_git(["ls-files", "-s", "-z"], repo=self.root).stdout
        changed = {
            p.decode("utf-8", errors="surrogateescape")
            for p in run_git(["diff-files", "--name-only", "-z"], repo=self.root).stdout.split(b"\0")
            if p
        }
        files = []
        seen: set[str] = set()
        for entry in staged.split(b"\0"):
            if not entry:
                continue
            meta, _, raw_path = entry.partition(b"\t")
            mode, sha, _stage = meta.split()
            path = raw_path.decode("utf-8", errors="surrogateescape")
            if mode in (b"120000", b"160000") or path in seen:  # symlink, submodule, merge stages
                continue
            seen.add(path)
            full = self.root / path
            try:
                stat = full.lstat()
            except OSError:  # deleted in the work tree
                continue
            if not full.is_file() or full.is_symlink():
                continue
            language = _keep(path, stat.st_size, self._filter)
            if not language:
                continue
            blob_sha = sha.decode()
            if path in changed:
                try:
                    blob_sha = git_blob_sha(_read_work_file(self.root, path))
                except FileVanishedError as exc:
                    log.warning("%s: skipped", exc)
                    continue
            files.append(SourceFile(path, blob_sha, stat.st_size, language))
        return files

    def read(self, file: SourceFile) -> bytes:
        return _read_work_file(self.root, file.path)

    def close(self) -> None:
        pass


class DirectorySource:
    """A directory that is not a git repository: walked, with every candidate file hashed."""

    def __init__(self, root: Path, file_filter: FileFilter) -> None:
        self.root = root
        self._filter = file_filter
        self.description = f"{root} (not a git repository)"

    def _walk(self) -> Iterator[Path]:
        for dirpath, dirnames, filenames in os.walk(self.root, followlinks=False):
            dirnames[:] = sorted(d for d in dirnames if d not in _SKIPPED_DIRS_WHEN_WALKING)
            for name in sorted(filenames):
                yield Path(dirpath) / name

    def files(self) -> list[SourceFile]:
        files = []
        for full in self._walk():
            if full.is_symlink() or not full.is_file():
                continue
            path = full.relative_to(self.root).as_posix()
            try:
                size = full.stat().st_size
            except FileNotFoundError:  # gone since the walk saw it
                continue
            language = _keep(path, size, self._filter)
            if not language:
                continue
            try:
                blob_sha = git_blob_sha(_read_work_file(self.root, path))
            except FileVanishedError as exc:
                log.warning("%s: skipped", exc)
                continue
            files.append(SourceFile(path, blob_sha, size, language))
        return files

    def read(self, file: SourceFile) -> bytes:
        return _read_work_file(self.root, file.path)

    def close(self) -> None:
        pass


def open_source(repo: str | os.PathLike[str], rev: str | None, file_filter: FileFilter) -> RepoSource:
    """Pick the right source for a path and optional revision, with clear errors for bad input."""
    path = Path(repo).expanduser()
    if not path.exists():
        raise RepositoryError(f"repository path does not exist: {path}")
    if not path.is_dir():
        raise RepositoryError(f"repository path is not a directory: {path}")
    path = path.resolve()
    found = find_git_root(path)
    if found is None:
        if rev is not None:
            raise RepositoryError(f"--rev {rev} needs a git repository, and {path} is not one")
        return DirectorySource(path, file_filter)
    git_root, is_bare = found
    has_commits = run_git(["rev-parse", "--verify", "--quiet", "HEAD"], repo=git_root, check=False).returncode == 0
    if rev is not None or is_bare:
        if not has_commits and rev is None:
            raise RepositoryError(f"{git_root} has no commits to index")
        return GitRevisionSource(git_root, rev or "HEAD", file_filter)
    return GitWorktreeSource(git_root, file_filter)
