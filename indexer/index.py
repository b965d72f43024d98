"""Build the chunk snapshot of a repository, parsing and embedding only what the cache lacks."""

from __future__ import annotations

import hashlib
import json
import logging
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable, Iterator, Protocol, Sequence

import numpy as np
from filelock import FileLock, Timeout
from platformdirs import user_cache_dir

from indexer.storage.atomic import atomic_write_json
from indexer.chunking.chunk import Chunk
from indexer.chunking.chunker import CHUNKER_VERSION, chunk_source
from indexer.chunking.encoding import decode_source
from indexer.errors import EmbeddingError, FileVanishedError, StoreAccessError, StoreError
from indexer.filters import DEFAULT_MAX_FILE_SIZE, FileFilter
from indexer.reuse import FileSpan, carried_rows, row_pairs
from indexer.source import RepoSource, SourceFile, git_blob_sha, open_source
from indexer.storage.private import PRIVATE_FILE_MODE, make_private_dir
from indexer.storage.store import ChunkStore, MemoryStore, ParsedBlob, SQLiteStore, embedding_key, SCHEMA_VERSION
from indexer.chunking.tokenize import code_terms

log = logging.getLogger(__name__)

# Bump when BM25 terms change: they are cached beside the chunks, keyed by the chunker and this.
TERMS_VERSION = "2"

Progress = Callable[[str, int, int], None]
"""Called as ``progress(stage, done, total)``; the CLI turns it into progress bars."""


def default_index_dir() -> Path:
    """``$XDG_CACHE_HOME/localizer`` on Linux, the platform's user cache dir elsewhere."""
    return Path(user_cache_dir("localizer", appauthor=False))


class DocumentEncoder(Protocol):
    """What indexing needs from an embedder; kept minimal so tests can pass a tiny fake."""

    identity: str
    dim: int

    def encode_documents(self, texts: Sequence[str]) -> np.ndarray: ...


@dataclass(frozen=True)
class IndexConfig:
    """Everything that decides which chunks exist, so every command builds the same index."""

    max_file_size: int = DEFAULT_MAX_FILE_SIZE
    include_tests: bool = False
    test_rule: str = "default"  # "dirs": only test/tests/testing directories (the CoRNStack protocol)
    max_chunk_chars: int = 2000
    index_dir: Path | None = None
    use_cache: bool = True
    embed_batch_size: int = 64

    @property
    def file_filter(self) -> FileFilter:
        return FileFilter(self.max_file_size, self.include_tests, self.test_rule)

    def resolved_index_dir(self) -> Path:
        return Path(self.index_dir).expanduser() if self.index_dir else default_index_dir()


@dataclass
class IndexStats:
    files: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    parsed_files: int = 0
    chunks: int = 0
    embedded_chunks: int = 0
    reused_embeddings: int = 0
    reused_files: int = 0  # files whose chunks came from the previous snapshot in memory (a warm server)
    seconds_listing: float = 0.0
    seconds_parsing: float = 0.0
    seconds_embedding: float = 0.0


@dataclass
class RepoIndex:
    """One snapshot of a repository: its chunks, their BM25 terms and (optionally) embeddings.

    ``spans`` maps each indexed file to its rows, so the next snapshot of the same repository can
    carry unchanged files' chunks, terms, vectors and BM25 postings over instead of re-reading them
    (:mod:`indexer.reuse`).
    """

    root: Path
    description: str
    commit: str | None
    chunks: list[Chunk]
    terms: list[list[str]]
    stats: IndexStats
    embeddings: np.ndarray | None = None
    model_identity: str | None = None
    spans: dict[str, FileSpan] = field(default_factory=dict)


def _parse_key(file: SourceFile, config: IndexConfig) -> str:
    """Blob SHA plus the path, since a file chunk's text names its path; a rename re-parses one file."""
    path_digest = hashlib.sha1(file.path.encode("utf-8", errors="surrogateescape")).hexdigest()[:12]
    return f"{CHUNKER_VERSION}.{TERMS_VERSION}:{file.language}:{config.max_chunk_chars}:{file.blob_sha}:{path_digest}"


def _terms_for(chunk: Chunk, line_terms: list[list[str]]) -> str:
    """BM25 sees the whole span (the embedder's text is truncated), plus the qualified name."""
    terms = code_terms(chunk.name)
    for line in line_terms[chunk.start_line - 1 : chunk.end_line]:
        terms.extend(line)
    return " ".join(terms)


def parse_blob(file: SourceFile, data: bytes, config: IndexConfig) -> ParsedBlob:
    """Chunk one file's bytes; skipped files are cached too, so they are judged once."""
    reason = config.file_filter.skip_reason_for_content(data)
    if reason is not None:
        return ParsedBlob(status=reason, chunks=[])
    text = decode_source(data)  # once, so chunk rows and BM25 line terms agree
    chunks = chunk_source(file.path, text, file.language, max_chars=config.max_chunk_chars)
    # Tokenize each line once: file, class and method spans overlap.
    line_terms = [code_terms(line) for line in text.split("\n")]
    records = []
    for chunk in chunks:
        record = chunk.to_dict()
        del record["path"]
        record["terms"] = _terms_for(chunk, line_terms)
        records.append(record)
    return ParsedBlob(status="ok", chunks=records)


def _path_terms(path: str) -> list[str]:
    return code_terms(path.replace("/", " ").replace(".", " "))


def _read_as_listed(source: RepoSource, file: SourceFile) -> tuple[SourceFile, bytes]:
    """The bytes of ``file`` and the listing entry that really describes them.

    A save, checkout or stash can land between listing and reading. Cached
    under the listed SHA, the bytes read would then be served for that blob
    for good, even after the work tree is clean again; keyed by the SHA of
    what was read, the cache stays true whatever happened in between.
    """
    data = source.read(file)
    blob_sha = git_blob_sha(data)
    if blob_sha != file.blob_sha:
        log.info("%s changed while it was indexed: indexing what was read", file.path)
        file = replace(file, blob_sha=blob_sha, size=len(data))
    return file, data


def _parse_missing(
    source: RepoSource,
    store: ChunkStore,
    config: IndexConfig,
    files: list[SourceFile],
    keys: list[str],
    missing: list[int],
    cached: dict[str, ParsedBlob],
    progress: Progress | None,
) -> set[int]:
    """Parse and store the files at positions ``missing``; the positions of files that vanished.

    ``files`` and ``keys`` are updated in place to describe the bytes actually
    read, and ``cached`` gains every parse, so the caller assembles chunks from them.
    """
    vanished: set[int] = set()
    fresh: list[tuple[str, ParsedBlob]] = []
    for done, i in enumerate(missing, 1):
        try:
            file, data = _read_as_listed(source, files[i])
        except FileVanishedError as exc:
            log.warning("%s: skipped", exc)
            vanished.add(i)
            continue
        files[i], keys[i] = file, _parse_key(file, config)
        if keys[i] not in cached:
            cached[keys[i]] = parse_blob(file, data, config)
            fresh.append((keys[i], cached[keys[i]]))
        if len(fresh) >= 200:
            store.put_parsed(fresh)
            fresh = []
        if progress:
            progress("parsing", done, len(missing))
    store.put_parsed(fresh)
    return vanished


def collect_chunks(
    source: RepoSource, store: ChunkStore, config: IndexConfig, progress: Progress | None = None,
    previous: RepoIndex | None = None,
) -> tuple[list[Chunk], list[list[str]], IndexStats, dict[str, FileSpan]]:
    """List files, take unchanged ones from ``previous`` (a snapshot of the same root), reuse cached
    parses by blob SHA, parse the rest."""
    stats = IndexStats()
    started = time.perf_counter()
    files = source.files()
    stats.files = len(files)
    keys = [_parse_key(f, config) for f in files]
    carried = previous.spans if previous is not None and previous.root == source.root else {}
    reused = {i for i, (file, key) in enumerate(zip(files, keys)) if key == getattr(carried.get(file.path), "key", None)}
    cached = store.get_parsed([key for i, key in enumerate(keys) if i not in reused])
    stats.seconds_listing = time.perf_counter() - started

    started = time.perf_counter()
    missing = [i for i, key in enumerate(keys) if i not in reused and key not in cached]
    stats.parsed_files = len(missing)
    stats.reused_files = len(reused)
    vanished = _parse_missing(source, store, config, files, keys, missing, cached, progress)
    if vanished:
        stats.skipped["vanished"] = len(vanished)

    chunks: list[Chunk] = []
    terms: list[list[str]] = []
    spans: dict[str, FileSpan] = {}
    for i, (file, key) in enumerate(zip(files, keys)):
        if i in vanished:
            continue
        if i in reused:
            span = carried[file.path]
            spans[file.path] = FileSpan(key, len(chunks), len(chunks) + span.stop - span.start)
            chunks.extend(previous.chunks[span.start:span.stop])
            terms.extend(previous.terms[span.start:span.stop])
            continue
        parsed = cached[key]
        if parsed.status != "ok":
            stats.skipped[parsed.status] = stats.skipped.get(parsed.status, 0) + 1
            continue
        path_terms = _path_terms(file.path)
        start = len(chunks)
        for record in parsed.chunks:
            chunks.append(
                Chunk(
                    path=file.path,
                    name=record["name"],
                    kind=record["kind"],
                    start_line=record["start_line"],
                    end_line=record["end_line"],
                    language=record["language"],
                    text=record["text"],
                )
            )
            terms.append(path_terms + record["terms"].split())
        spans[file.path] = FileSpan(key, start, len(chunks))
    stats.chunks = len(chunks)
    stats.seconds_parsing = time.perf_counter() - started
    return chunks, terms, stats, spans


def embed_chunks(
    chunks: Sequence[Chunk],
    encoder: DocumentEncoder,
    store: ChunkStore,
    stats: IndexStats,
    config: IndexConfig,
    progress: Progress | None = None,
    carried: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
) -> np.ndarray:
    """Embeddings for every chunk, encoding only texts this model has never seen.

    Fresh vectors are written to the store batch by batch, so an interrupted
    cold index resumes where it stopped instead of starting over. ``carried`` is
    ``(new_rows, old_rows, old_matrix)``: vectors of unchanged files taken from the
    previous snapshot (same model) without a store lookup.
    """
    started = time.perf_counter()
    matrix = np.zeros((len(chunks), encoder.dim), dtype=np.float32)
    rows = np.arange(len(chunks))
    if carried is not None:
        new_rows, old_rows, old_matrix = carried
        matrix[new_rows] = old_matrix[old_rows]
        rows = np.setdiff1d(rows, new_rows, assume_unique=True)
        stats.reused_embeddings += len(new_rows)
    chunks = [chunks[row] for row in rows]
    keys = [embedding_key(encoder.identity, c.text) for c in chunks]
    found = store.get_embeddings(list(dict.fromkeys(keys)), encoder.dim)
    todo = list(dict.fromkeys(k for k in keys if k not in found))
    text_of = {k: c.text for k, c in zip(keys, chunks)}
    # Long texts first: similar lengths batch together with little padding.
    todo.sort(key=lambda k: len(text_of[k]), reverse=True)
    step = max(config.embed_batch_size * 8, 256)
    for start in range(0, len(todo), step):
        batch = todo[start : start + step]
        vectors = np.asarray(encoder.encode_documents([text_of[k] for k in batch]), dtype=np.float32)
        _check_finite(vectors, encoder)
        store.put_embeddings(batch, vectors)
        found.update(zip(batch, vectors))
        if progress:
            progress("embedding", min(start + step, len(todo)), len(todo))
    fresh = set(todo)
    stats.embedded_chunks = len(todo)
    stats.reused_embeddings += sum(1 for k in keys if k not in fresh)
    for row, key in zip(rows, keys):
        matrix[row] = found[key]
    stats.seconds_embedding = time.perf_counter() - started
    return matrix


def _check_finite(vectors: np.ndarray, encoder: DocumentEncoder) -> None:
    """Never cache or search a vector with NaN or inf: FAISS then returns no hits, silently."""
    finite = np.isfinite(vectors).reshape(len(vectors), -1).all(axis=1)
    if not finite.all():
        raise EmbeddingError(
            f"embedder {encoder.identity} produced non-finite vectors for {int((~finite).sum())} of {len(vectors)} chunks"
        )


def repo_state_dir(index_dir: Path, root: Path) -> Path:
    """Per-repository state (lock, last build record) lives beside the shared cache."""
    digest = hashlib.sha256(str(root).encode()).hexdigest()[:12]
    return index_dir / "repos" / f"{root.name or 'repo'}-{digest}"


@contextmanager
def _repo_lock(state_dir: Path, timeout: float) -> Iterator[None]:
    lock = FileLock(str(state_dir / "index.lock"), mode=PRIVATE_FILE_MODE)
    try:
        make_private_dir(state_dir)
        lock.acquire(timeout=timeout)
    except Timeout as exc:
        raise StoreError(f"another localizer process has held the index lock {lock.lock_file} for {timeout:.0f}s") from exc
    except OSError as exc:
        raise StoreAccessError(f"cannot lock the index state in {state_dir}: {exc}") from exc
    try:
        yield
    finally:
        lock.release()


def _check_previous_build(state_dir: Path, record: dict) -> None:
    """Say why a rebuild happens when the index was last built with other settings."""
    path = state_dir / "state.json"
    try:
        previous = json.loads(path.read_text())
    except FileNotFoundError:
        return
    except (OSError, ValueError):
        log.warning("index state %s is unreadable: rebuilding", path)
        return
    if not isinstance(previous, dict):
        log.warning("index state %s is not a JSON object: rebuilding", path)
        return
    for key in ("schema_version", "chunker_version", "model", "embedding_dim"):
        if previous.get(key) is not None and record.get(key) is not None and previous.get(key) != record.get(key):
            log.warning(
                "index for %s was built with %s=%s, now %s: rebuilding what differs",
                record["repo"], key, previous.get(key), record.get(key),
            )


def _write_state(state_dir: Path, record: dict) -> None:
    """Record the build; a full disk or read-only index dir is a one-line error, not a traceback."""
    try:
        atomic_write_json(state_dir / "state.json", record)
    except OSError as exc:
        raise StoreAccessError(f"cannot write the index state in {state_dir}: {exc}") from exc


def build_index(
    repo: str | Path,
    rev: str | None = None,
    *,
    encoder: DocumentEncoder | None = None,
    config: IndexConfig | None = None,
    progress: Progress | None = None,
    lock_timeout: float = 600.0,
    previous: RepoIndex | None = None,
) -> RepoIndex:
    """Index ``repo`` at ``rev`` (default: the working tree), reusing the on-disk cache.

    With an ``encoder`` the snapshot also carries normalized chunk embeddings.
    ``previous`` is an earlier snapshot of the same repository still in memory (a warm
    server's): its unchanged files are carried over instead of read from the cache.
    Concurrent builds of the same repository serialize on a file lock; the
    shared SQLite cache is safe for concurrent use in any case.
    """
    config = config or IndexConfig()
    source = open_source(repo, rev, config.file_filter)
    try:
        if not config.use_cache:
            return _build(source, MemoryStore(), encoder, config, progress, previous)
        index_dir = config.resolved_index_dir()
        store = SQLiteStore(index_dir)
        state_dir = repo_state_dir(index_dir, source.root)
        try:
            with _repo_lock(state_dir, lock_timeout):
                record = {
                    "repo": str(source.root),
                    "schema_version": SCHEMA_VERSION,
                    "chunker_version": CHUNKER_VERSION,
                    "model": encoder.identity if encoder else None,
                    "embedding_dim": encoder.dim if encoder else None,
                }
                _check_previous_build(state_dir, record)
                index = _build(source, store, encoder, config, progress, previous)
                record.update(
                    rev=rev, commit=index.commit, built_at=time.time(), stats=asdict(index.stats)
                )
                _write_state(state_dir, record)
                return index
        finally:
            store.close()
    finally:
        source.close()


def _build(
    source: RepoSource,
    store: ChunkStore,
    encoder: DocumentEncoder | None,
    config: IndexConfig,
    progress: Progress | None,
    previous: RepoIndex | None = None,
) -> RepoIndex:
    chunks, terms, stats, spans = collect_chunks(source, store, config, progress, previous)
    embeddings = None
    if encoder is not None and chunks:
        carried = None
        if (previous is not None and previous.embeddings is not None and previous.model_identity == encoder.identity
                and previous.embeddings.shape[1] == encoder.dim):
            new_rows, old_rows = row_pairs(carried_rows(previous.spans, spans, len(previous.chunks)))
            carried = (new_rows, old_rows, previous.embeddings)
        embeddings = embed_chunks(chunks, encoder, store, stats, config, progress, carried)
    return RepoIndex(
        root=source.root,
        description=source.description,
        commit=getattr(source, "commit", None),
        chunks=chunks,
        terms=terms,
        stats=stats,
        embeddings=embeddings,
        model_identity=encoder.identity if encoder else None,
        spans=spans,
    )
