"""The warm index a server answers from, and how it is kept fresh without making anyone wait.

A :class:`Snapshot` is everything one index state needs to answer: the :class:`RepoIndex`, a
:class:`Localizer` over it with its own :class:`RankingPipeline` (whose BM25 index, FAISS index
and history view are built before the snapshot is published) and the history view.
:class:`WarmIndex` holds the current one and replaces it in the background:

- the embedder and the reranker are loaded once and handed to every snapshot's pipeline;
- a change (from the :class:`~localizer.serve.watch.Watcher`) goes to the
  :class:`~localizer.serve.watch.Debouncer`; when a refresh is due, one thread builds the next
  snapshot from the live one: unchanged files' chunks, vectors and BM25 postings are carried
  over (:mod:`indexer.reuse`, :mod:`localizer.retrieval.bm25`), and only the changed files are
  read, parsed, embedded and indexed. On sympy (24k functions) that took a refresh from 1.9 s
  to about 0.2 s (``benchmarks/RESULTS.md``, "localize serve");
- the new snapshot is swapped in under a lock; a call reads the current snapshot once, so it
  answers wholly from the old or wholly from the new one, never a mix, and never waits for a
  refresh;
- a failed refresh keeps the last good snapshot and records the error for ``index_status``.

Ranking itself is serialized (:attr:`WarmIndex.rank_lock`): the models and the pipeline's small
caches are not made for concurrent use, and a ranking takes milliseconds to a few hundred of
them, so eight concurrent calls queue briefly and all answer the same as one at a time would.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

from indexer.errors import LocalizerError, RepositoryError
from indexer.git.runner import run_git
from indexer.index import RepoIndex, repo_state_dir
from indexer.source import find_git_root

from localizer.api import Localizer
from localizer.config import LocalizeConfig
from localizer.embedding.embedder import Embedder
from localizer.embedding.static import StaticEmbedder
from localizer.history.view import HistoryView
from localizer.hooks.lease import remove_lease, write_lease
from localizer.pipeline import RankingPipeline, SharedWork
from localizer.rerank.reranker import ListwiseReranker
from localizer.serve.errors import NotReadyError, ServeError
from localizer.serve.watch import ChangeFilter, Debouncer, Watcher

log = logging.getLogger(__name__)


class _Stopped(Exception):
    """The server is shutting down: an index build in progress stops at its next progress report."""


class _ServeShared(SharedWork):
    """:class:`SharedWork` that keeps the history views of the last two commits, under a lock.

    The live snapshot and the one being built are ranked side by side; with the base class's single
    slot, each would evict the other's history and a query could rebuild it on the query path.
    Most refreshes (an edit, no new commit) reuse the live view as it is.
    """

    def __init__(self, keep: int = 2) -> None:
        super().__init__()
        self._views: OrderedDict[tuple[Any, ...], HistoryView] = OrderedDict()
        self._keep = keep
        self._views_lock = threading.Lock()

    def history(self, key: tuple[Any, ...], compute: Callable[[], HistoryView]) -> HistoryView:
        with self._views_lock:
            if key in self._views:
                self._views.move_to_end(key)
                return self._views[key]
        view = compute()
        with self._views_lock:
            self._views[key] = view
            while len(self._views) > self._keep:
                self._views.popitem(last=False)
        return view


class SnapshotLocalizer(Localizer):
    """A :class:`Localizer` over one snapshot whose rankings take the server-wide rank lock.

    ``localize`` and the triage report (which ranks through ``localize``) both come here, so a
    triage's git blame runs outside the lock while its ranking is serialized with everyone else's.
    """

    def __init__(self, repo: Path, config: LocalizeConfig, rank_lock: threading.Lock, shared: SharedWork, *,
                 embedder: Embedder | StaticEmbedder | None, reranker: ListwiseReranker | None,
                 progress: Callable[[str, int, int], None] | None) -> None:
        super().__init__(repo, config, progress, embedder=embedder, reranker=reranker)
        self.pipeline = RankingPipeline(config, embedder=embedder, reranker=reranker, shared=shared)
        self._rank_lock = rank_lock

    def rank(self, issue_text: str):
        with self._rank_lock:
            return super().rank(issue_text)


@dataclass(frozen=True)
class Snapshot:
    """One published index state; never changed after it is published."""

    localizer: SnapshotLocalizer
    index: RepoIndex
    history: HistoryView | None
    head: str | None  # the commit checked out (the index's own commit for --rev); None before the first commit
    generation: int  # 1 for the first build, +1 per published refresh
    started_at: float  # wall time the build began: changes before it are in
    finished_at: float
    seconds: float


@dataclass(frozen=True)
class RepoLocation:
    """Where the server's repository is and whether it can be watched."""

    root: Path
    git_dir: Path | None  # None for a plain directory or a fixed snapshot
    watchable: bool
    why_not: str | None = None  # why it is not watched


def locate(repo: str | Path, rev: str | None) -> RepoLocation:
    """The root ``build_index`` keys its cache by, and what to watch: a work tree (its files and its
    HEAD) or a plain directory. A bare repository or ``--rev`` is a fixed snapshot."""
    path = Path(repo).expanduser()
    if not path.is_dir():
        raise RepositoryError(f"repository path does not exist or is not a directory: {path}")
    path = path.resolve()
    found = find_git_root(path)
    if found is None:
        return RepoLocation(path, None, rev is None, "--rev needs git" if rev else None)
    root, bare = found
    if bare:
        return RepoLocation(root, None, False, "a bare repository has no work tree to watch")
    if rev is not None:
        return RepoLocation(root, None, False, f"--rev {rev} is a fixed commit")
    git_dir = run_git(["rev-parse", "--absolute-git-dir"], repo=root, text=True).stdout.strip()
    return RepoLocation(root, Path(git_dir), True)


class WarmIndex:
    """The current :class:`Snapshot` of one repository, refreshed in the background.

    ``embedder`` and ``reranker`` inject loaded models (as :class:`Localizer` takes them).
    ``start()`` returns at once: the first build (models included) runs on the refresh thread, and
    :meth:`snapshot` waits for it up to ``ready_timeout`` seconds. ``close()`` stops the watcher
    and the refresh thread; a build in progress stops at its next progress report, leaving the
    cache consistent (its writes are atomic and content-addressed).
    """

    def __init__(self, repo: str | Path, config: LocalizeConfig, *, debouncer: Debouncer | None = None,
                 watch: bool = True, poll_interval: float | None = None, ready_timeout: float = 60.0,
                 embedder: Embedder | StaticEmbedder | None = None, reranker: ListwiseReranker | None = None) -> None:
        self.location = locate(repo, config.rev)
        self.root = self.location.root
        self.config = config
        self.ready_timeout = ready_timeout
        self.rank_lock = threading.Lock()
        # Fails fast on a bad --ranker; the models (unless injected) load on the refresh thread.
        self._models = RankingPipeline(config, embedder=embedder, reranker=reranker)
        self._shared = _ServeShared()
        self._lock = threading.Lock()  # guards the fields below
        self._snapshot: Snapshot | None = None
        self._debouncer = debouncer or Debouncer()
        self._refreshing = False
        self._progress: tuple[str, int, int] | None = None
        self._refreshes = 0
        self._failures = 0
        self._last_error: str | None = None
        self._last_error_at: float | None = None
        self._last_change_at: float | None = None
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread: threading.Thread | None = None
        self._watcher: Watcher | None = None
        self._lease_dir: Path | None = None
        if not config.index.use_cache:
            log.warning("--no-cache: every refresh re-parses (and re-embeds) the whole repository")
        if watch and self.location.watchable:
            ignored = (config.index.resolved_index_dir().resolve(),) if config.index.use_cache else ()
            self._watcher = Watcher(self.root, self.notify_change,
                                    change_filter=ChangeFilter(self.root, self.location.git_dir, ignored),
                                    poll_interval=poll_interval or 1.0, force_polling=poll_interval is not None)

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="localize-serve-refresh", daemon=True)
        self._thread.start()
        if self._watcher is not None:
            self._watcher.start()
            self._take_lease()

    def close(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._watcher is not None:
            self._watcher.stop(timeout)
        if self._thread is not None:
            self._thread.join(timeout)
        if self._lease_dir is not None:
            remove_lease(self._lease_dir)

    def _take_lease(self) -> None:
        """Tell the git hooks this server keeps the index fresh (localizer.hooks.lease)."""
        if not self.config.index.use_cache:
            return
        state_dir = repo_state_dir(self.config.index.resolved_index_dir(), self.root)
        try:
            state_dir.mkdir(parents=True, exist_ok=True)
            write_lease(state_dir, self.config.retriever, self.config.embedder.model)
        except OSError as exc:
            log.warning("could not write the serve lease in %s (%s): the hooks refresh by themselves", state_dir, exc)
            return
        self._lease_dir = state_dir

    # ------------------------------------------------------------------ reading

    def snapshot(self, timeout: float | None = None) -> Snapshot:
        """The current snapshot, waiting for the first build when there is none yet."""
        self._ready.wait(self.ready_timeout if timeout is None else timeout)
        with self._lock:
            snapshot, error, building = self._snapshot, self._last_error, self._refreshing
        if snapshot is not None:
            return snapshot
        if error is not None and not building:
            raise ServeError(f"the index of {self.root} could not be built: {error}")
        raise NotReadyError(f"the index of {self.root} is still being built{self._progress_text()}; "
                            "try again shortly (index_status shows its progress)")

    def check_repository(self) -> None:
        """A clear error when the repository was deleted or moved while the server ran."""
        if not self.root.is_dir():
            raise ServeError(f"the repository {self.root} no longer exists (deleted or moved while the server ran); "
                             "answers would point into files that are gone. The server keeps running and indexes it "
                             "again if it comes back; index_status still answers")

    def status(self) -> dict[str, Any]:
        """What ``index_status`` reports: the snapshot served, the refresh state and the last error."""
        with self._lock:
            snapshot, refreshing, progress = self._snapshot, self._refreshing, self._progress
            refreshes, failures = self._refreshes, self._failures
            error, error_at, change_at = self._last_error, self._last_error_at, self._last_change_at
            pending = self._debouncer.pending
        status: dict[str, Any] = {
            "repo": str(self.root),
            "repo_exists": self.root.is_dir(),
            "state": "ready" if snapshot is not None else ("indexing" if not self._ready.is_set() else "failed"),
            "retriever": self.config.retriever,
            "refreshing": refreshing,
            "progress": {"stage": progress[0], "done": progress[1], "total": progress[2]} if progress else None,
            "pending_changes": pending or bool(snapshot and change_at and change_at > snapshot.started_at),
            "last_change_at": _iso(change_at),
            "refreshes": refreshes,
            "failed_refreshes": failures,
            "last_error": error,
            "last_error_at": _iso(error_at),
            "watch": self._watch_status(),
        }
        if snapshot is not None:
            index = snapshot.index
            status.update(
                commit=snapshot.head,
                work_tree=index.commit is None,  # uncommitted edits are in
                description=index.description,
                files=index.stats.files,
                chunks=len(index.chunks),
                functions=sum(chunk.kind != "file" for chunk in index.chunks),
                model=index.model_identity,
                generation=snapshot.generation,
                last_refresh={"started_at": _iso(snapshot.started_at), "finished_at": _iso(snapshot.finished_at),
                              "seconds": round(snapshot.seconds, 3), "age_s": round(time.time() - snapshot.finished_at, 1),
                              "stats": asdict(index.stats)},
            )
            view = snapshot.history
            status["history"] = ({"enabled": False, "commits": 0, "note": "history is off (--no-history)"}
                                 if view is None else
                                 {"enabled": True, "commits": len(view.records), "note": view.history.note})
        if self.config.rerank is not None:
            status["reranker"] = self.config.rerank.model
        return status

    def _watch_status(self) -> dict[str, Any]:
        if self._watcher is None:
            return {"mode": "off", "note": self.location.why_not or "watching is off"}
        return {"mode": self._watcher.mode, "note": self._watcher.note}

    def _progress_text(self) -> str:
        with self._lock:
            progress = self._progress
        return f" ({progress[0]}: {progress[1]}/{progress[2]})" if progress else ""

    # ------------------------------------------------------------------ refreshing

    def notify_change(self) -> None:
        """A relevant file or HEAD changed (the watcher's callback); the debouncer decides when to refresh."""
        with self._lock:
            self._debouncer.event(time.monotonic())
            self._last_change_at = time.time()
        self._wake.set()

    def refresh_now(self) -> None:
        """Refresh as soon as the refresh thread is free, without waiting for a quiet period."""
        with self._lock:
            self._debouncer.event(time.monotonic() - self._debouncer.max_wait)
            self._last_change_at = time.time()
        self._wake.set()

    @property
    def generation(self) -> int:
        with self._lock:
            return self._snapshot.generation if self._snapshot else 0

    def _loop(self) -> None:
        try:
            self._refresh()
        finally:
            self._ready.set()
        while True:
            self._wake.clear()
            if self._stop.is_set():
                return
            with self._lock:
                due = self._debouncer.take(time.monotonic())
                deadline = self._debouncer.deadline()
                self._refreshing = due  # with the take, so no one sees neither pending nor refreshing
            if due:
                self._refresh()
                continue
            self._wake.wait(None if deadline is None else max(0.0, deadline - time.monotonic()))

    def _refresh(self) -> None:
        started_at, started = time.time(), time.monotonic()
        with self._lock:
            self._refreshing = True
        snapshot, error = None, None
        try:
            snapshot = self._build(started_at, started)
        except _Stopped:
            return
        except LocalizerError as exc:
            error = str(exc)
        except Exception as exc:  # noqa: BLE001 - a refresh must record a failure and keep the server up
            log.exception("refresh of %s failed", self.root)
            error = f"{type(exc).__name__}: {exc}"
        finally:
            with self._lock:
                self._refreshing = False
                self._progress = None
        with self._lock:
            self._refreshes += 1
            if snapshot is not None:
                self._snapshot = snapshot
                self._last_error = self._last_error_at = None
            else:
                self._failures += 1
                self._last_error, self._last_error_at = error, time.time()
        if error is not None:
            log.warning("refresh of %s failed: %s", self.root, error)
        else:
            log.info("refreshed %s in %.2fs (generation %d)", self.root, snapshot.seconds, snapshot.generation)

    def _build(self, started_at: float, started: float) -> Snapshot:
        if not self.root.is_dir():
            raise RepositoryError(f"the repository {self.root} no longer exists")
        head = self._head()
        embedder, reranker = self._warm_models()
        localizer = SnapshotLocalizer(self.root, self.config, self.rank_lock, self._shared, embedder=embedder,
                                      reranker=reranker, progress=self._on_progress)
        with self._lock:
            live = self._snapshot
        # Only the changed files are read, parsed, embedded and indexed: the rest is carried over
        # from the live snapshot (indexer.reuse), which keeps answering meanwhile.
        index = localizer.index(previous=live.index if live is not None else None)  # and the history
        pipeline = localizer.pipeline
        previous = (live.index, live.localizer.pipeline.retriever(live.index)) if live is not None else None
        pipeline.retriever(index, previous)  # BM25 and FAISS over the new chunks, off the query path
        view = pipeline.history(index)
        if view is not None and view.records:
            view.similar(["warm"], 1)  # the commit-message BM25 that similar_fixes searches
        with self._lock:
            generation = (self._snapshot.generation if self._snapshot else 0) + 1
        return Snapshot(localizer, index, view, index.commit or head, generation, started_at, time.time(),
                        time.monotonic() - started)

    def _head(self) -> str | None:
        """HEAD before the build: a commit made during it is picked up by the next refresh."""
        if self.location.git_dir is None:
            return None
        found = run_git(["rev-parse", "-q", "--verify", "HEAD^{commit}"], repo=self.root, check=False, text=True)
        return found.stdout.strip() if found.returncode == 0 else None

    def _warm_models(self) -> tuple[Embedder | StaticEmbedder | None, ListwiseReranker | None]:
        """The embedder and reranker, loaded on the first refresh and reused by every later one."""
        embedder = self._models.embedder
        reranker = self._models.reranker
        if reranker is not None:
            reranker.loaded  # noqa: B018 - load the model now, not on the first query
        return embedder, reranker

    def _on_progress(self, stage: str, done: int, total: int) -> None:
        if self._stop.is_set():
            raise _Stopped()
        with self._lock:
            self._progress = (stage, done, total)


def _iso(when: float | None) -> str | None:
    return None if when is None else time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(when))
