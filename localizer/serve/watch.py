"""Noticing that the work tree or HEAD changed, and deciding when that is worth a refresh.

Three parts, each testable alone:

- :class:`ChangeFilter`: which paths matter. Source edits do; git's object writes, logs and lock
  files do not, except the few files that move HEAD (``HEAD``, ``refs/heads/...``, ``packed-refs``)
  or stage files (``index``); nor does the index cache itself when it lives inside the repository
  (a refresh writing it must not trigger the next refresh).
- :class:`Debouncer`: a pure policy over timestamps. An editor saving 100 times in 2 s (or a
  ``git checkout`` touching 1,000 files) should refresh once or twice, not 100 times: a refresh
  waits for ``quiet`` seconds without changes, but never more than ``max_wait`` after the first
  unserved change, so a storm that never calms down is still served every ``max_wait`` seconds.
- :class:`Watcher`: filesystem events through ``watchfiles`` (inotify, FSEvents, ...), and polling
  of :func:`tree_fingerprint` when events are unavailable (a watch limit reached, a network file
  system, ``--poll``) or stop working (the repository was deleted and may come back).
"""

from __future__ import annotations

import hashlib
import logging
import os
import subprocess
import threading
from dataclasses import dataclass, field
from pathlib import Path, PurePath
from typing import Callable

log = logging.getLogger(__name__)

# Directories whose changes never reach the index (the indexer skips them too).
IGNORED_DIRS = frozenset({".git", ".hg", ".svn", "__pycache__", "node_modules", ".venv", "venv", ".tox",
                          ".mypy_cache", ".pytest_cache", ".ruff_cache", ".hypothesis", ".idea"})
# Editor and tool droppings: swap files, backups, vim's write test, lock files.
_IGNORED_SUFFIXES = (".swp", ".swo", ".swx", ".pyc", ".pyo", "~", ".lock", ".tmp")
_IGNORED_NAMES = frozenset({"4913", ".DS_Store"})
# Inside the git dir, only what moves HEAD or stages files.
_GIT_FILES = frozenset({"HEAD", "packed-refs", "index", "ORIG_HEAD"})


@dataclass(frozen=True)
class ChangeFilter:
    """Whether a changed path can change what the index holds (or which commit it is of)."""

    root: Path
    git_dir: Path | None = None
    ignored: tuple[Path, ...] = ()  # e.g. the index dir when it lives inside the repository

    def __call__(self, path: str | os.PathLike[str]) -> bool:
        path = PurePath(path)
        if any(_is_under(path, other) for other in self.ignored):
            return False
        if self.git_dir is not None and _is_under(path, self.git_dir):
            return self._moves_head(path.relative_to(self.git_dir))
        try:
            rel = path.relative_to(self.root)
        except ValueError:
            return False
        name = rel.name
        if any(part in IGNORED_DIRS for part in rel.parts[:-1]) or name in IGNORED_DIRS:
            return False
        return not (name in _IGNORED_NAMES or name.endswith(_IGNORED_SUFFIXES) or name.startswith(".#"))

    @staticmethod
    def _moves_head(rel: PurePath) -> bool:
        if rel.name.endswith(".lock"):
            return False
        parts = rel.parts
        return (len(parts) == 1 and parts[0] in _GIT_FILES) or (len(parts) > 2 and parts[:2] == ("refs", "heads"))

    def watchfiles_filter(self) -> Callable[[object, str], bool]:
        """The same rule in ``watchfiles``' ``watch_filter`` shape (change, path)."""
        return lambda _change, path: self(path)


def _is_under(path: PurePath, folder: PurePath) -> bool:
    return path == folder or folder in path.parents


@dataclass
class Debouncer:
    """When a refresh is due, from the times of changes alone (no clock of its own, so tests drive it).

    ``event(now)`` records a change; ``take(now)`` says whether a refresh is due now and, if so,
    counts the pending changes as served. A refresh is due ``quiet`` seconds after the last change,
    or ``max_wait`` seconds after the first unserved one, whichever comes first.
    """

    quiet: float = 0.25
    max_wait: float = 2.0
    _first: float | None = field(default=None, repr=False)
    _last: float | None = field(default=None, repr=False)

    @property
    def pending(self) -> bool:
        return self._first is not None

    def event(self, now: float) -> None:
        if self._first is None:
            self._first = now
        self._last = now if self._last is None else max(self._last, now)

    def deadline(self) -> float | None:
        """When the pending changes are due for a refresh; None when nothing is pending."""
        if self._first is None or self._last is None:
            return None
        return min(self._last + self.quiet, self._first + self.max_wait)

    def take(self, now: float) -> bool:
        deadline = self.deadline()
        if deadline is None or now < deadline:
            return False
        self._first = self._last = None
        return True


# --------------------------------------------------------------------------- polling


def _git(root: Path, *args: str) -> bytes | None:
    try:
        done = subprocess.run(["git", "-C", str(root), *args], capture_output=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout if done.returncode == 0 else None


def _stat(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_mtime_ns, st.st_size


def tree_fingerprint(root: Path, git_dir: Path | None, accept: Callable[[Path], bool] | None = None) -> str:
    """A digest that changes when anything the index reads changes: what a poll compares.

    For a git work tree it is cheap whatever the size of the repository: HEAD (the commit and the
    branch), the git index file's stamp (what is staged), and the stamp of each file that ``git
    diff-files`` reports as differing from the index. A plain directory is walked. A missing root
    has a fingerprint of its own, so its deletion and its return are both changes.
    """
    digest = hashlib.sha1()
    if not root.is_dir():
        return "missing"
    if git_dir is not None:
        for part in (_git(root, "rev-parse", "-q", "--verify", "HEAD"), _git(root, "symbolic-ref", "-q", "HEAD"),
                     repr(_stat(git_dir / "index")).encode()):
            digest.update(part or b"-")
            digest.update(b"\0")
        changed = _git(root, "diff-files", "--name-only", "-z")
        for rel in sorted((changed or b"").split(b"\0")):
            if rel:
                digest.update(rel + repr(_stat(root / os.fsdecode(rel))).encode())
        return digest.hexdigest()
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d not in IGNORED_DIRS)
        for name in sorted(files):
            path = Path(folder) / name
            if accept is None or accept(path):
                digest.update(str(path).encode("utf-8", "surrogateescape") + repr(_stat(path)).encode())
    return digest.hexdigest()


# --------------------------------------------------------------------------- the watcher


class Watcher:
    """Calls ``on_change()`` (from its own thread) whenever a relevant change is seen.

    ``poll_interval`` > 0 with ``force_polling`` polls from the start. Otherwise it listens to
    filesystem events and falls back to polling when they cannot be had or stop (the root was
    removed: polling notices when it comes back). ``mode`` says which is running, for
    ``index_status``.
    """

    def __init__(self, root: Path, on_change: Callable[[], None], *, change_filter: ChangeFilter,
                 poll_interval: float = 1.0, force_polling: bool = False) -> None:
        self.root = root
        self.on_change = on_change
        self.filter = change_filter
        self.poll_interval = poll_interval
        self.force_polling = force_polling
        self.mode = "starting"
        self.note: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="localize-serve-watch", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        if not self.force_polling:
            try:
                self._watch_events()
            except Exception as exc:  # noqa: BLE001 - any failure of the event backend means: poll instead
                self.note = f"filesystem events failed ({type(exc).__name__}: {exc}); polling instead"
                log.warning("%s", self.note)
            if self._stop.is_set():
                return
            if self.note is None:
                self.note = f"filesystem events stopped ({self.root} disappeared?); polling instead"
                log.warning("%s", self.note)
        self._poll()

    def _watch_events(self) -> None:
        import watchfiles

        paths = [self.root]
        git_dir = self.filter.git_dir
        if git_dir is not None and not _is_under(git_dir, self.root):
            paths.append(git_dir)  # a linked worktree keeps its HEAD outside the work tree
        self.mode = "events"
        for changes in watchfiles.watch(*paths, watch_filter=self.filter.watchfiles_filter(), debounce=400, step=30,
                                        stop_event=self._stop, rust_timeout=1000, yield_on_timeout=True,
                                        raise_interrupt=False, ignore_permission_denied=True):
            if self._stop.is_set():
                return
            if changes:
                self.on_change()
            if not self.root.is_dir():
                self.on_change()
                return  # inotify lost the root with it: poll until it is back

    def _poll(self) -> None:
        self.mode = "polling"
        git_dir = self.filter.git_dir
        last = tree_fingerprint(self.root, git_dir, self.filter)
        while not self._stop.wait(self.poll_interval):
            current = tree_fingerprint(self.root, git_dir, self.filter)
            if current != last:
                last = current
                self.on_change()

