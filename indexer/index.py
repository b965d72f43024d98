"""Build the chunk snapshot of a repository, parsing and embedding only what the cache lacks."""

from __future__ import annotations

import hashlib
import json
import logging
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Protocol, Sequence

import numpy as np
from filelock import FileLock, Timeout
from platformdirs import user_cache_dir

from indexer.storage.atomic import atomic_write_json
from indexer.chunking.chunk import Chunk
from indexer.chunking.chunker import CHUNKER_VERSION, chunk_source
from indexer.errors import StoreError
from indexer.filters import DEFAULT_MAX_FILE_SIZE, FileFilter
from indexer.source import RepoSource, SourceFile, open_source
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
    seconds_listing: float = 0.0
    seconds_parsing: float = 0.0
    seconds_embedding: float = 0.0


@dataclass
class RepoIndex:
    """One snapshot of a repository: its chunks, their BM25 terms and (optionally) embeddings."""

    root: Path
    description: str
    commit: str | None
    chunks: list[Chunk]
    terms: list[list[str]]
    stats: IndexStats
    embeddings: np.ndarray | None = None
    model_identity: str | None = None


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
    chunks = chunk_source(file.path, data, file.language, max_chars=config.max_chunk_chars)
    # Tokenize each line once: file, class and method spans overlap.
    line_terms = [code_terms(line) for line in data.decode("utf-8", errors="replace").split("\n")]
    records = []
    for chunk in chunks:
        record = chunk.to_dict()
        del record["path"]
        record["terms"] = _terms_for(chunk, line_terms)
        records.append(record)
    return ParsedBlob(status="ok", chunks=records)


def _path_terms(path: str) -> list[str]:
    return code_terms(path.replace("/", " ").replace(".", " "))


def collect_chunks(
    source: RepoSource, store: ChunkStore, config: IndexConfig, progress: Progress | None = None
) -> tuple[list[Chunk], list[list[str]], IndexStats]:
    """List files, reuse cached parses by blob SHA, parse the rest."""
    stats = IndexStats()
    started = time.perf_counter()
    files = source.files()
    stats.files = len(files)
    keys = [_parse_key(f, config) for f in files]
    cached = store.get_parsed(keys)
    stats.seconds_listing = time.perf_counter() - started

    started = time.perf_counter()
    missing = [(f, k) for f, k in zip(files, keys) if k not in cached]
    stats.parsed_files = len(missing)
    fresh: list[tuple[str, ParsedBlob]] = []
    for done, (file, key) in enumerate(missing, 1):
        parsed = parse_blob(file, source.read(file), config)
        cached[key] = parsed
        fresh.append((key, parsed))
        if len(fresh) >= 200:
            store.put_parsed(fresh)
            fresh = []
        if progress:
            progress("parsing", done, len(missing))
    store.put_parsed(fresh)

    chunks: list[Chunk] = []
    terms: list[list[str]] = []
    for file, key in zip(files, keys):
        parsed = cached[key]
        if parsed.status != "ok":
            stats.skipped[parsed.status] = stats.skipped.get(parsed.status, 0) + 1
            continue
        path_terms = _path_terms(file.path)
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
    stats.chunks = len(chunks)
    stats.seconds_parsing = time.perf_counter() - started
    return chunks, terms, stats


def embed_chunks(
    chunks: Sequence[Chunk],
    encoder: DocumentEncoder,
    store: ChunkStore,
    stats: IndexStats,
    config: IndexConfig,
    progress: Progress | None = None,
) -> np.ndarray:
    """Embeddings for every chunk, encoding only texts this model has never seen.

    Fresh vectors are written to the store batch by batch, so an interrupted
    cold index resumes where it stopped instead of starting over.
    """
    started = time.perf_counter()
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
        store.put_embeddings(batch, vectors)
        found.update(zip(batch, vectors))
        if progress:
            progress("embedding", min(start + step, len(todo)), len(todo))
    fresh = set(todo)
    stats.embedded_chunks = len(todo)
    stats.reused_embeddings = sum(1 for k in keys if k not in fresh)
    matrix = np.zeros((len(chunks), encoder.dim), dtype=np.float32)
    for row, key in enumerate(keys):
        matrix[row] = found[key]
    stats.seconds_embedding = time.perf_counter() - started
    return matrix


def repo_state_dir(index_dir: Path, root: Path) -> Path:
    """Per-repository state (lock, last build record) lives beside the shared cache."""
    digest = hashlib.sha256(str(root).encode()).hexdigest()[:12]
    return index_dir / "repos" / f"{root.name or 'repo'}-{digest}"


@contextmanager
def _repo_lock(state_dir: Path, timeout: float) -> Iterator[None]:
    state_dir.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(state_dir / "index.lock"))
    try:
        lock.acquire(timeout=timeout)
    except Timeout as exc:
        raise StoreError(f"another localizer process has held the index lock {lock.lock_file} for {timeout:.0f}s") from exc
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
    for key in ("schema_version", "chunker_version", "model", "embedding_dim"):
        if previous.get(key) is not None and record.get(key) is not None and previous.get(key) != record.get(key):
            log.warning(
                "index for %s was built with %s=%s, now %s: rebuilding what differs",
                record["repo"], key, previous.get(key), record.get(key),
            )


def build_index(
    repo: str | Path,
    rev: str | None = None,
    *,
    encoder: DocumentEncoder | None = None,
    config: IndexConfig | None = None,
    progress: Progress | None = None,
    lock_timeout: float = 600.0,
) -> RepoIndex:
    """Index ``repo`` at ``rev`` (default: the working tree), reusing the on-disk cache.

    With an ``encoder`` the snapshot also carries normalized chunk embeddings.
    Concurrent builds of the same repository serialize on a file lock; the
    shared SQLite cache is safe for concurrent use in any case.
    """
    config = config or IndexConfig()
    source = open_source(repo, rev, config.file_filter)
    try:
        if not config.use_cache:
            return _build(source, MemoryStore(), encoder, config, progress)
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
                index = _build(source, store, encoder, config, progress)
                record.update(
                    rev=rev, commit=index.commit, built_at=time.time(), stats=asdict(index.stats)
                )
                atomic_write_json(state_dir / "state.json", record)
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
) -> RepoIndex:
    chunks, terms, stats = collect_chunks(source, store, config, progress)
    embeddings = None
    if encoder is not None and chunks:
        embeddings = embed_chunks(chunks, encoder, store, stats, config, progress)
    return RepoIndex(
        root=source.root,
        description=source.description,
        commit=getattr(source, "commit", None),
        chunks=chunks,
        terms=terms,
        stats=stats,
        embeddings=embeddings,
        model_identity=encoder.identity if encoder else None,
    )
