"""The background index refresh that the git hooks launch: later requests win, nothing piles up.

A burst of commits (a script, ``git pull``, a quick amend) launches one refresh
per hook. Running them all would waste minutes of CPU on snapshots that are
stale before they finish, and queueing them behind one lock would pile up
processes. So every refresh first takes a *ticket* (a sequence number in
``hook-request.json``), then waits for ``hook-refresh.lock``:

- a waiting refresh whose ticket is no longer the newest exits at once;
- the one holding the lock checks between parse and embedding batches and
  stops when a newer ticket exists (what it cached is kept: the cache is
  content-addressed, so the next refresh reuses it).

At most one refresh runs and one waits, and the last request always runs.
``build_index`` still takes the index lock, so a refresh and an interactive
``localize`` never build the same index at once.

The outcome of each refresh that held the lock goes to ``hook-state.json`` in
the repository's state dir (atomically), which ``localize hook status`` reads.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
import traceback
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
from filelock import FileLock, Timeout

from indexer.storage.atomic import atomic_write_json
from indexer.errors import LocalizerError, RepositoryError
from indexer.filters import DEFAULT_MAX_FILE_SIZE
from indexer.history.store import read_history
from indexer.index import DocumentEncoder, IndexConfig, build_index, default_index_dir, repo_state_dir
from indexer.source import find_git_root

from localizer.config import DEFAULT_BACKEND, DEFAULT_MODEL, DEFAULT_RETRIEVER, LocalizeConfig
from localizer.embedding.embedder import EmbedderConfig
from localizer.hooks.lease import live_lease
from localizer.pipeline import needs_embedder
from localizer.triage.gitinfo import GIT_HOOK_ENV, read_repo_state, rebase_in_progress

log = logging.getLogger(__name__)

HOOK_STATE_FILE = "hook-state.json"
REQUEST_FILE = "hook-request.json"
REQUEST_LOCK = "hook-request.lock"
REFRESH_LOCK = "hook-refresh.lock"
LOG_FILE = "hook.log"
LOG_MAX_BYTES = 1 << 20


class Superseded(Exception):
    """A newer refresh was requested; this one stops so that the newer one runs."""


class StaleEncoderCache(Exception):
    """The cached model identity no longer matches the model that was loaded."""


@dataclass(frozen=True)
class HookConfig:
    """What the hooks run, fixed at install time so a refresh indexes what queries will read.

    It is written into each hook's managed block, both as the command line and
    as JSON (which ``hook status`` reads back).
    """

    retriever: str = DEFAULT_RETRIEVER
    model: str = DEFAULT_MODEL
    device: str = "auto"
    backend: str = DEFAULT_BACKEND  # the runtime whose embeddings the queries will read (each is cached apart)
    index_dir: str = ""  # absolute; empty means the default cache dir
    max_file_size: int = DEFAULT_MAX_FILE_SIZE
    include_tests: bool = False
    issues_dir: str | None = None  # triage these issue files after each refresh
    reports_dir: str | None = None

    def resolved_index_dir(self) -> Path:
        return Path(self.index_dir).expanduser() if self.index_dir else default_index_dir()

    def log_path(self) -> Path:
        return self.resolved_index_dir() / LOG_FILE

    def localize_config(self) -> LocalizeConfig:
        """The config of the ``localize`` runs this hook keeps an index fresh for (and of its triage)."""
        return LocalizeConfig(
            retriever=self.retriever,
            embedder=EmbedderConfig(model=self.model, device=self.device, backend=self.backend,
                                    artifact_dir=self.resolved_index_dir()),
            index=IndexConfig(max_file_size=self.max_file_size, include_tests=self.include_tests,
                              index_dir=self.resolved_index_dir()),
        )

    def index_config(self) -> IndexConfig:
        return self.localize_config().index

    def embedder_config(self) -> EmbedderConfig:
        return self.localize_config().embedder

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "HookConfig":
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)

    def to_args(self) -> list[str]:
        """The ``localize hook run`` options that reproduce this config."""
        args = ["--retriever", self.retriever, "--model", self.model, "--device", self.device, "--backend", self.backend,
                "--index-dir", str(self.resolved_index_dir()), "--max-file-size", str(self.max_file_size)]
        if self.include_tests:
            args.append("--include-tests")
        if self.issues_dir:
            args += ["--issues-dir", self.issues_dir]
        if self.reports_dir:
            args += ["--reports-dir", self.reports_dir]
        return args


@dataclass(frozen=True)
class RefreshOutcome:
    status: str  # "ok" | "superseded" | "skipped" | "error"
    message: str
    ticket: int | None = None
    record: dict[str, Any] | None = None


# --------------------------------------------------------------------------- tickets


class RequestQueue:
    """Monotonic request tickets in the state dir; the newest ticket is the one that should run."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.path = state_dir / REQUEST_FILE

    def latest(self) -> int:
        """The newest ticket; 0 when there is none, or when the file holds no valid one (checked often: no warning)."""
        request = read_request(self.state_dir, warn=False)
        return request["seq"] if request else 0

    def request(self, hook: str) -> int:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        with FileLock(str(self.state_dir / REQUEST_LOCK), timeout=30):
            current = read_request(self.state_dir)  # warns about a damaged file, which this write replaces
            ticket = (current["seq"] if current else 0) + 1
            atomic_write_json(self.path, {"seq": ticket, "hook": hook, "pid": os.getpid(), "requested_at": time.time()})
        return ticket


# --------------------------------------------------------------------------- lazy encoder


def encoder_cache_key(config: EmbedderConfig) -> str:
    """What decides a model's identity, computed without loading the model."""
    from localizer.embedding.embedder import resolve_model

    _, base = resolve_model(config.model)
    return json.dumps([base, config.document_prompt, config.max_seq_length, config.trust_remote_code, config.backend])


class LazyEncoder:
    """A document encoder that loads the model only when some chunk really needs embedding.

    Importing torch and sentence-transformers takes seconds, and many refreshes
    (a checkout of an indexed commit, a commit touching only docs) embed
    nothing. The identity and dimension that cache lookups need are remembered
    from the last load; if the loaded model turns out different, encoding
    refuses (:class:`StaleEncoderCache`) and the refresh starts over.
    """

    def __init__(self, config: EmbedderConfig, known: dict[str, Any] | None = None,
                 factory: Callable[[EmbedderConfig], DocumentEncoder] | None = None) -> None:
        self._config = config
        self._known = known if known and known.get("identity") and known.get("dim") else None
        self._factory = factory
        self._encoder: DocumentEncoder | None = None
        self.load_seconds: float | None = None

    @property
    def loaded(self) -> bool:
        return self._encoder is not None

    def _load(self) -> DocumentEncoder:
        if self._encoder is None:
            started = time.perf_counter()
            if self._factory is not None:
                self._encoder = self._factory(self._config)
            else:
                from localizer.embedding.embedder import open_embedder

                self._encoder = open_embedder(self._config)
            self.load_seconds = time.perf_counter() - started
        return self._encoder

    @property
    def identity(self) -> str:
        if self._encoder is None and self._known:
            return str(self._known["identity"])
        return self._load().identity

    @property
    def dim(self) -> int:
        if self._encoder is None and self._known:
            return int(self._known["dim"])
        return self._load().dim

    def encode_documents(self, texts: Sequence[str]) -> np.ndarray:
        encoder = self._load()
        if self._known and (encoder.identity != self._known["identity"] or encoder.dim != int(self._known["dim"])):
            raise StaleEncoderCache(f"model identity changed to {encoder.identity}")
        return encoder.encode_documents(texts)

    def remember(self) -> dict[str, Any] | None:
        if self._encoder is not None:
            return {"identity": self._encoder.identity, "dim": int(self._encoder.dim)}
        return self._known


# --------------------------------------------------------------------------- state file


def read_json(path: Path, warn: bool = False) -> dict[str, Any] | None:
    """A JSON object from a state file, or None when it is missing, unreadable or not an object.

    With ``warn``, a file that is there but unusable says so: the hooks rewrite it, so ignoring it is safe.
    """
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        if warn:
            log.warning("ignoring %s: %s; the next refresh rewrites it", path, exc)
        return None
    if not isinstance(data, dict):
        if warn:
            log.warning("ignoring %s: not a JSON object; the next refresh rewrites it", path)
        return None
    return data


def _is_number(value: Any) -> bool:
    """A finite int or float: JSON also reads Infinity, NaN and integers too large for a float."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _is_text(value: Any) -> bool:
    return isinstance(value, str)


def _is_object(value: Any) -> bool:
    return isinstance(value, dict)


# What `hook status` and the refresh read from a run record, and what each field must be (or null).
_RECORD_FIELDS: dict[str, Callable[[Any], bool]] = {
    "hook": _is_text, "status": _is_text, "error": _is_text, "note": _is_text, "commit": _is_text,
    "branch": _is_text, "ticket": _is_count, "files": _is_count, "chunks": _is_count, "stats": _is_object,
    "triage": _is_object, "started_at": _is_number, "finished_at": _is_number, "duration_s": _is_number,
}
_REQUEST_FIELDS: dict[str, Callable[[Any], bool]] = {
    "seq": _is_count, "hook": _is_text, "pid": _is_count, "requested_at": _is_number,
}


def _well_typed(value: Any, fields: dict[str, Callable[[Any], bool]]) -> bool:
    return isinstance(value, dict) and all(value.get(k) is None or check(value[k]) for k, check in fields.items())


def _valid_encoder(value: Any) -> bool:
    return isinstance(value, dict) and _is_text(value.get("identity")) and _is_count(value.get("dim")) and value["dim"] > 0


def read_request(state_dir: Path, warn: bool = True) -> dict[str, Any] | None:
    """``hook-request.json``, or None when it is missing or damaged (``{"seq": null}``, a text timestamp)."""
    path = state_dir / REQUEST_FILE
    request = read_json(path, warn)
    if request is None:
        return None
    if not _well_typed(request, _REQUEST_FIELDS) or request.get("seq") is None:
        if warn:
            log.warning("ignoring %s: its fields have the wrong types; the next refresh rewrites it", path)
        return None
    return request


def read_hook_state(state_dir: Path) -> dict[str, Any] | None:
    """``hook-state.json`` with every part of the wrong type dropped, and a warning.

    The file is only a record of past refreshes, so the safe repair is to forget the bad part:
    the next refresh writes a whole one. Trusting it would crash ``hook status`` or, for a bad
    remembered encoder, fail every refresh from then on.
    """
    path = state_dir / HOOK_STATE_FILE
    state = read_json(path, warn=True)
    if state is None:
        return None
    dropped = [key for key in ("last_run", "last_success") if key in state and not _well_typed(state[key], _RECORD_FIELDS)]
    encoders = state.get("encoders")
    if encoders is not None and not isinstance(encoders, dict):
        dropped.append("encoders")
    elif encoders:
        bad = [key for key, value in encoders.items() if not _valid_encoder(value)]
        dropped += [f"encoders[{key!r}]" for key in bad]
        state["encoders"] = {key: value for key, value in encoders.items() if key not in bad}
    for key in dropped:
        state.pop(key, None)
    if dropped:
        log.warning("ignoring %s in %s: wrong types; the next refresh rewrites them", ", ".join(dropped), path)
    return state


def _write_hook_state(state_dir: Path, record: dict[str, Any], encoders: dict[str, Any] | None = None) -> None:
    """Only the lock holder writes, so this read-modify-write cannot lose another refresh's record."""
    state = read_hook_state(state_dir) or {}
    state["last_run"] = record
    if record.get("status") == "ok":
        state["last_success"] = record
    if encoders:
        state.setdefault("encoders", {}).update(encoders)
    atomic_write_json(state_dir / HOOK_STATE_FILE, state)


def process_age() -> float | None:
    """Seconds since this process started (Linux only): how long interpreter start-up took."""
    try:
        stat = Path("/proc/self/stat").read_text()
        ticks = int(stat.rsplit(")", 1)[1].split()[19])
        uptime = float(Path("/proc/uptime").read_text().split()[0])
        return max(0.0, uptime - ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return None


def rotate_log(path: Path, max_bytes: int = LOG_MAX_BYTES) -> None:
    """Keep one old log; the hook appends forever otherwise."""
    try:
        if path.stat().st_size > max_bytes:
            os.replace(path, path.with_name(path.name + ".1"))
    except OSError:
        pass


# --------------------------------------------------------------------------- refresh


def resolve_root(repo: str | os.PathLike[str]) -> Path:
    """The root ``build_index`` keys its state dir by, so hooks and queries share one state dir."""
    path = Path(repo).expanduser()
    if not path.is_dir():
        raise RepositoryError(f"repository path does not exist or is not a directory: {path}")
    found = find_git_root(path.resolve())
    if found is None:
        raise RepositoryError(f"{path} is not a git repository: the hooks need one")
    root, bare = found
    if bare:
        raise RepositoryError(f"{root} is a bare repository: hooks refresh the index of a work tree")
    return root


def refresh_repo(
    repo: str | os.PathLike[str],
    config: HookConfig,
    *,
    hook: str = "manual",
    wait_rebase: float = 0.0,
    encoder_factory: Callable[[EmbedderConfig], DocumentEncoder] | None = None,
    poll_interval: float = 0.1,
    lock_timeout: float = 3600.0,
    on_ticket: Callable[[int], None] | None = None,
) -> RefreshOutcome:
    """Refresh the work tree's index unless a newer request supersedes this one.

    ``wait_rebase``: seconds to wait for a rebase to finish first (the
    post-rewrite hook runs while the rebase's state dir still exists).
    """
    startup = process_age()
    for name in GIT_HOOK_ENV:  # a manual run from inside a hook must not inherit them either
        os.environ.pop(name, None)
    root = resolve_root(repo)
    repo_state = read_repo_state(root)
    deadline = time.monotonic() + wait_rebase
    while rebase_in_progress(repo_state.git_dir) and time.monotonic() < deadline:
        time.sleep(poll_interval)
    if rebase_in_progress(repo_state.git_dir):
        return RefreshOutcome("skipped", f"a rebase is in progress in {root}: refresh skipped; "
                                         "the post-rewrite hook refreshes the index when the rebase finishes")

    state_dir = repo_state_dir(config.resolved_index_dir(), root)
    lease = None if config.issues_dir else live_lease(state_dir, config.retriever, config.model)
    if lease is not None:  # its watcher has seen this commit and refreshes with warm models
        return RefreshOutcome("delegated", f"`localize serve` (pid {lease['pid']}) keeps this index fresh: "
                                           "refresh left to it")
    queue = RequestQueue(state_dir)
    try:
        ticket = queue.request(hook)
    except Timeout:
        return RefreshOutcome("error", f"could not take a refresh ticket: {state_dir / REQUEST_LOCK} stayed locked")
    if on_ticket:
        on_ticket(ticket)
    lock = FileLock(str(state_dir / REFRESH_LOCK))
    give_up = time.monotonic() + lock_timeout
    while True:
        newest = queue.latest()
        if newest != ticket:
            return RefreshOutcome("superseded", f"superseded by request #{newest} while waiting", ticket)
        try:
            lock.acquire(timeout=poll_interval)
            break
        except Timeout:
            if time.monotonic() > give_up:
                return RefreshOutcome("error", f"gave up waiting {lock_timeout:.0f}s for {lock.lock_file}", ticket)
    try:
        return _refresh_locked(root, config, hook, ticket, queue, state_dir, startup, encoder_factory)
    finally:
        lock.release()


def _preempt_check(queue: RequestQueue, ticket: int, every: float = 0.25) -> Callable[[str, int, int], None]:
    """A progress callback that stops the build when a newer request exists (checked a few times a second)."""
    last = [0.0]

    def check(stage: str, done: int, total: int) -> None:
        now = time.monotonic()
        if now - last[0] < every and done < total:
            return
        last[0] = now
        newest = queue.latest()
        if newest != ticket:
            raise Superseded(f"superseded by request #{newest} during {stage}")

    return check


def _refresh_locked(root: Path, config: HookConfig, hook: str, ticket: int, queue: RequestQueue,
                    state_dir: Path, startup: float | None,
                    encoder_factory: Callable[[EmbedderConfig], DocumentEncoder] | None) -> RefreshOutcome:
    newest = queue.latest()
    if newest != ticket:
        return RefreshOutcome("superseded", f"superseded by request #{newest}", ticket)
    repo_state = read_repo_state(root)
    if repo_state.rebasing:
        message = (f"a rebase started in {root}: refresh skipped; "
                   "the post-rewrite hook refreshes the index when it finishes")
        _write_hook_state(state_dir, {"hook": hook, "ticket": ticket, "pid": os.getpid(), "status": "skipped",
                                      "note": message, "error": None, "finished_at": time.time()})
        return RefreshOutcome("skipped", message, ticket)
    started_at = time.time()
    started = time.perf_counter()
    record: dict[str, Any] = {
        "hook": hook,
        "ticket": ticket,
        "pid": os.getpid(),
        "started_at": started_at,
        "repo": str(root),
        "commit": repo_state.head,
        "branch": repo_state.branch,
        "detached": repo_state.detached,
        "retriever": config.retriever,
        "model": config.model if needs_embedder(config.localize_config()) else None,
        "startup_s": round(startup, 3) if startup is not None else None,
    }
    hook_state = read_hook_state(state_dir) or {}
    encoders: dict[str, Any] = {}
    try:
        index, encoder, parse_phase_s = _build(root, config, hook_state, encoder_factory, queue, ticket)
        record["parse_phase_s"] = parse_phase_s
        record["stats"] = asdict(index.stats)
        record["files"] = index.stats.files
        record["chunks"] = len(index.chunks)
        if encoder is not None:
            record["encoder_identity"] = encoder.identity
            record["encoder_loaded"] = encoder.loaded
            record["encoder_load_s"] = round(encoder.load_seconds, 3) if encoder.load_seconds else None
            remembered = encoder.remember()
            if remembered:
                encoders[encoder_cache_key(config.embedder_config())] = remembered
        record["index_s"] = round(time.perf_counter() - started, 3)
        if config.issues_dir:
            record["triage"] = _triage_issues(root, config, queue, ticket)
        record.update(status="ok", error=None)
    except Superseded as exc:
        return RefreshOutcome("superseded", str(exc), ticket)
    except LocalizerError as exc:
        record.update(status="error", error=str(exc))
    except Exception as exc:  # noqa: BLE001 - a background job must record, not lose, any failure
        log.error("refresh failed:\n%s", traceback.format_exc())
        record.update(status="error", error=f"{type(exc).__name__}: {exc}")
    record["finished_at"] = time.time()
    record["duration_s"] = round(time.perf_counter() - started, 3)
    _write_hook_state(state_dir, record, encoders)
    if record["status"] == "ok":
        return RefreshOutcome("ok", _summary(record), ticket, record)
    return RefreshOutcome("error", record["error"], ticket, record)


def _build(root: Path, config: HookConfig, hook_state: dict[str, Any],
           encoder_factory: Callable[[EmbedderConfig], DocumentEncoder] | None, queue: RequestQueue, ticket: int):
    progress = _preempt_check(queue, ticket)
    encoder = None
    parse_phase_s = None
    if needs_embedder(config.localize_config()):
        # Phase 1 needs no model: changed files are parsed and BM25-ready in about a second,
        # while loading the embedder alone takes several; phase 2 then embeds only what changed.
        started = time.perf_counter()
        build_index(root, None, encoder=None, config=config.index_config(), progress=progress)
        parse_phase_s = round(time.perf_counter() - started, 3)
        known = (hook_state.get("encoders") or {}).get(encoder_cache_key(config.embedder_config()))
        encoder = LazyEncoder(config.embedder_config(), known, encoder_factory)
    try:
        index = build_index(root, None, encoder=encoder, config=config.index_config(), progress=progress)
    except StaleEncoderCache:
        log.info("model identity changed since the last refresh: rebuilding with the loaded model")
        encoder = LazyEncoder(config.embedder_config(), None, encoder_factory)
        index = build_index(root, None, encoder=encoder, config=config.index_config(), progress=progress)
    _refresh_history(root, config)
    return index, encoder, parse_phase_s


def _refresh_history(root: Path, config: HookConfig) -> None:
    """Store the records of the new commits, so the next ``localize`` reads its history warm.

    Records are keyed by commit SHA: after one commit this computes one record (well under a second).
    """
    settings = config.localize_config().history_settings()
    if settings is None:
        return
    history = read_history(root, None, config.index_config(), settings)
    log.info("history: %d commits, %d new", len(history.records), history.computed)


def _triage_issues(root: Path, config: HookConfig, queue: RequestQueue, ticket: int) -> dict[str, Any]:
    from localizer.triage.batch import triage_directory
    from localizer.triage.triager import TriageConfig

    issues = Path(config.issues_dir or "")
    issues = issues if issues.is_absolute() else root / issues
    reports = Path(config.reports_dir) if config.reports_dir else None
    if reports is not None and not reports.is_absolute():
        reports = root / reports
    triage_config = TriageConfig(localize=config.localize_config())

    def check() -> None:
        if queue.latest() != ticket:
            raise Superseded("superseded by a newer request during triage")

    result = triage_directory(root, issues, triage_config, out_dir=reports, before_each=check)
    return result.summary()


def _summary(record: dict[str, Any]) -> str:
    stats = record.get("stats") or {}
    where = (record.get("branch") or "detached HEAD") + (f" @ {record['commit'][:12]}" if record.get("commit") else " (no commits)")
    text = (f"refreshed {where} in {record['duration_s']:.2f}s: {stats.get('files', 0)} files, "
            f"parsed {stats.get('parsed_files', 0)}, embedded {stats.get('embedded_chunks', 0)} chunks")
    if record.get("encoder_loaded") is False:
        text += " (model not loaded: nothing to embed)"
    if record.get("triage"):
        text += f"; triage: {record['triage'].get('line', '')}"
    return text
