"""Build the history of one snapshot: the commits before it, each reduced to a :class:`CommitRecord`.

**Ancestors only.** The history of a snapshot at commit C is the non-merge commits reachable
from C (``git rev-list C``), newest first, and nothing else: never ``--all``, never a branch or a
descendant. A user's clone, and every benchmark mirror, has refs to commits after C, some of
which fix the very bug being localized; reading them would be reading the answer.

**Incremental by construction.** Records are stored under their commit SHA, so a build lists
the window's SHAs (one cheap ``rev-list``), reads the stored ones and computes only the rest with
one ``git log --no-walk --stdin -p``. After one new commit that is one commit's diff, which keeps
the post-commit hook's refresh within its budget; and a build at an older revision (the
benchmark) reuses every record its window shares with a newer one.

**Without history** (a plain directory, a repository with no commits, a shallow clone cut
before the window) the build says so in :attr:`History.note` and returns what there is, so the
caller ranks as it would without history.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Protocol, Sequence

from indexer.chunking.languages import language_for_path
from indexer.chunking.tokenize import code_terms
from indexer.filters import FileFilter
from indexer.git.blobs import GitBlobReader
from indexer.git.diff import parse_patch
from indexer.git.log import LogLimits, RawCommit, iter_commits
from indexer.git.runner import GitError, run_git
from indexer.history.changes import touched_definitions
from indexer.history.records import CommitRecord
from indexer.source import find_git_root

log = logging.getLogger(__name__)

HISTORY_VERSION = "2"  # 2: records stored as plain JSON

Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class HistoryConfig:
    """Which commits the history holds and what is kept of each.

    ``max_commits`` caps the window at the newest non-merge ancestors (see the measured default in
    docs/history.md). ``bulk_files`` marks commits that change more files than this as bulk (kept,
    but crediting nothing): a reformat or a vendoring says nothing about any one file.
    """

    max_commits: int = 3000  # measured: docs/history.md, "Window"
    bulk_files: int = 50
    max_changed_lines: int = 20000
    include_tests: bool = False
    test_rule: str = "default"

    @property
    def file_filter(self) -> FileFilter:
        return FileFilter(include_tests=self.include_tests, test_rule=self.test_rule)

    @property
    def key_prefix(self) -> str:
        """A record's key is this plus its SHA: records depend on the commit and on which files count
        for functions, nothing else."""
        from indexer.chunking.chunker import CHUNKER_VERSION

        tests = "tests" if self.include_tests else f"notests-{self.test_rule}"
        return f"h{HISTORY_VERSION}.{CHUNKER_VERSION}:{tests}:{self.bulk_files}:{self.max_changed_lines}:"


class HistoryStore(Protocol):
    """Where records live between builds: the index's SQLite store, or its memory store (``--no-cache``)."""

    def get_commits(self, keys: Sequence[str]) -> dict[str, bytes]: ...

    def put_commits(self, items: Iterable[tuple[str, bytes]]) -> None: ...


@dataclass
class History:
    """The commits before one snapshot, newest first. ``note`` says why history is missing or cut short."""

    commit: str | None
    records: list[CommitRecord] = field(default_factory=list)
    note: str | None = None
    computed: int = 0  # records computed by this build (the rest came from the store)

    @property
    def time(self) -> int | None:
        """The snapshot's own time: the newest record's, which ages are measured from."""
        return self.records[0].time if self.records else None


def build_history(
    repo: str | Path,
    rev: str | None,
    store: HistoryStore,
    config: HistoryConfig = HistoryConfig(),
    progress: Progress | None = None,
) -> History:
    """The history of ``repo`` at ``rev`` (default HEAD), computing only records not in ``store``."""
    path = Path(repo).expanduser().resolve()
    found = find_git_root(path)
    if found is None:
        return History(None, note=f"{path} is not a git repository: ranking without history")
    root = found[0]
    commit = _resolve(root, rev or "HEAD")
    if commit is None:
        if rev is not None:
            return History(None, note=f"cannot resolve {rev} in {root}: ranking without history")
        return History(None, note=f"{root} has no commits yet: ranking without history")
    shas = _window(root, commit, config.max_commits)
    prefix = config.key_prefix
    keys = {sha: prefix + sha for sha in shas}
    stored = store.get_commits(list(keys.values()))
    missing = [sha for sha in shas if keys[sha] not in stored]
    records = {sha: CommitRecord.decode(stored[keys[sha]]) for sha in shas if keys[sha] in stored}
    if missing:
        fresh = _compute(root, missing, config, progress)
        store.put_commits((keys[r.sha], r.encode()) for r in fresh.values())
        records.update(fresh)
    history = History(commit, [records[sha] for sha in shas if sha in records], computed=len(missing))
    if len(shas) < config.max_commits and _is_shallow(root):  # a full window cannot be cut short
        history.note = f"{root} is a shallow clone: history holds only its {len(history.records)} commits"
    elif not history.records:
        history.note = f"{root} has no history before {commit[:12]}: ranking without history"
    return history


def _resolve(root: Path, rev: str) -> str | None:
    result = run_git(["rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}"], repo=root, check=False, text=True)
    return result.stdout.strip() or None if result.returncode == 0 else None


def _window(root: Path, commit: str, max_commits: int) -> list[str]:
    """The newest ``max_commits`` non-merge ancestors of ``commit``, itself included, newest first."""
    result = run_git(["rev-list", "--no-merges", f"--max-count={max_commits}", commit, "--"], repo=root, text=True)
    return result.stdout.split()


def _is_shallow(root: Path) -> bool:
    result = run_git(["rev-parse", "--is-shallow-repository"], repo=root, check=False, text=True)
    return result.stdout.strip() == "true"


def _compute(root: Path, shas: list[str], config: HistoryConfig, progress: Progress | None) -> dict[str, CommitRecord]:
    """Records for ``shas``, on every core when there are many (parsing the parents' files dominates)."""
    workers = min(os.cpu_count() or 1, 8)
    if len(shas) < PARALLEL_FROM or workers < 2:
        return _compute_serial(root, shas, config, progress)
    slices = [shas[i: i + SLICE] for i in range(0, len(shas), SLICE)]
    records: dict[str, CommitRecord] = {}
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork")) as pool:
        for done in pool.map(_compute_encoded, [(root, part, config) for part in slices]):
            records.update((sha, CommitRecord.decode(data)) for sha, data in done.items())
            if progress is not None:
                progress("history", len(records), len(shas))
    return records


# Below this many new commits one process is quicker than starting a pool (the hook's case).
PARALLEL_FROM = 200
SLICE = 100


def _compute_encoded(job: tuple[Path, list[str], HistoryConfig]) -> dict[str, bytes]:
    root, shas, config = job
    return {sha: record.encode() for sha, record in _compute_serial(root, shas, config, None).items()}


def _compute_serial(root: Path, shas: list[str], config: HistoryConfig,
                    progress: Progress | None) -> dict[str, CommitRecord]:
    """Records for ``shas`` from one ``git log -p``.

    Mirrors that lack some blobs (large files left out of a partial copy) make ``git log -p`` fail:
    then rename detection is dropped (it reads blobs), and if that is not enough the commits are
    split in halves until the ones git cannot diff are found; those keep their message and the
    names of the files they changed, without functions.
    """
    reader = GitBlobReader(root)
    records: dict[str, CommitRecord] = {}

    def report() -> None:
        if progress is not None:
            progress("history", len(records), len(shas))

    try:
        try:
            records.update(_read(root, shas, config, reader, renames=True, on_record=report))
            return records
        except GitError as exc:
            log.warning("history of %s without rename detection: %s", root, exc)
        records.clear()
        pending = [shas]
        while pending:
            part = pending.pop()
            try:
                records.update(_read(root, part, config, reader, renames=False, on_record=report))
            except GitError:
                if len(part) > 1:
                    pending += [part[: len(part) // 2], part[len(part) // 2:]]
                else:
                    records[part[0]] = _names_only(root, part[0], config)
        return records
    finally:
        reader.close()


def _read(root: Path, shas: list[str], config: HistoryConfig, reader: GitBlobReader, *, renames: bool,
          on_record: Callable[[], None]) -> dict[str, CommitRecord]:
    limits = LogLimits(config.bulk_files, config.max_changed_lines)
    records: dict[str, CommitRecord] = {}
    for raw in iter_commits(root, only=shas, limits=limits, renames=renames, include_root=True):
        records[raw.sha] = commit_record(raw, reader, config)
        on_record()
    return records


def _names_only(root: Path, sha: str, config: HistoryConfig) -> CommitRecord:
    """A commit git cannot diff: its message and changed file names (no blob is read for those)."""
    shown = run_git(["show", "-s", "--format=%at%x00%P%x00%B", sha], repo=root, check=False, text=True)
    if shown.returncode != 0:  # not even the commit can be read: it holds nothing
        return CommitRecord(sha, 0, "")
    at, parents, message = (shown.stdout.split("\x00", 2) + ["", ""])[:3]
    message = message.strip()
    base = CommitRecord(sha, int(at or 0), message, tuple(code_terms(message)))
    if not parents.strip():
        return base
    names = run_git(["diff-tree", "--no-commit-id", "--name-only", "-r", "--no-renames", "-z", sha], repo=root,
                    check=False, text=True).stdout.split("\x00")
    files = tuple(name for name in names if name)
    if len(files) > config.bulk_files:
        return CommitRecord(sha, base.time, message, base.terms, bulk=True)
    return CommitRecord(sha, base.time, message, base.terms, files)


def commit_record(raw: RawCommit, read_blob: Callable[[str, str], bytes | None], config: HistoryConfig) -> CommitRecord:
    """One commit reduced to what ranking needs; ``read_blob(commit, path)`` reads the parent's files."""
    base = CommitRecord(raw.sha, raw.time, raw.message, tuple(code_terms(raw.message)))
    if not raw.parents:  # a root commit, or a shallow clone's boundary: everything looks added
        return base
    if raw.files > config.bulk_files or not raw.patch:
        return CommitRecord(base.sha, base.time, base.message, base.terms, bulk=raw.files > 0)
    files: list[str] = []
    renames: list[tuple[str, str]] = []
    functions: list[tuple[str, str]] = []
    keep = config.file_filter
    for fp in parse_patch(raw.patch):
        name = fp.new_path or fp.old_path
        if name is None:
            continue
        files.append(name)
        if fp.old_path and fp.new_path and fp.old_path != fp.new_path:
            renames.append((fp.old_path, fp.new_path))
        if fp.old_path is None or fp.new_path is None:
            continue  # a created or deleted file had no functions to fix
        language = language_for_path(fp.old_path)
        if language is None or keep.skip_reason_for_path(fp.old_path) is not None:
            continue
        source = read_blob(raw.parents[0], fp.old_path)
        if source is None or keep.skip_reason_for_content(source) is not None:
            continue
        touched, _ = touched_definitions(fp, source, language)
        functions.extend((name, d.name) for d in touched)
    return CommitRecord(base.sha, base.time, base.message, base.terms, tuple(files), tuple(renames),
                        tuple(dict.fromkeys(functions)))
