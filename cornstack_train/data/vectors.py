"""Text → vector encoding for the data stages, with a content-addressed cache.

Filtering and negative mining embed the same queries and codes with the same
model; encoding is by far their costliest step (~30 texts/s for MiniLM on two
CPU cores), so vectors are cached on disk keyed by (model identity, prompt,
text). The cache is written in parts as encoding goes, so an interrupted run
resumes where it stopped, and several processes (``--encode-shard I/N``, one per GPU)
can fill it in parallel before one process runs the search (with the runtime's FAISS
helpers, ``localizer.retrieval.faiss_index``: the same exact inner product the dense
retriever uses).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import uuid
from pathlib import Path
from typing import Callable, Protocol, Sequence

import numpy as np


class TextEncoder(Protocol):
    """What the data stages need from a model: batch encoding of queries and of code, L2-normalized."""

    identity: str

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray: ...

    def encode_codes(self, texts: Sequence[str]) -> np.ndarray: ...


class EmbedderEncoder:
    """Adapter from :class:`localizer.embedding.embedder.Embedder` (any sentence-transformers model)."""

    def __init__(self, embedder) -> None:
        self.embedder = embedder
        self.identity = f"{embedder.identity}|query={embedder.query_prompt}"

    def _encode(self, texts: Sequence[str], prompt: str) -> np.ndarray:
        # The embedder's own path, so its backend (bf16 autocast, ONNX) applies as it does in the index.
        return self.embedder.encode_texts(list(texts), prompt)

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self._encode(texts, self.embedder.query_prompt)

    def encode_codes(self, texts: Sequence[str]) -> np.ndarray:
        return self._encode(texts, self.embedder.document_prompt)


def load_encoder(model: str | None, device: str = "auto", batch_size: int = 64,
                 max_seq_length: int | None = None, backend: str = "torch") -> EmbedderEncoder:
    from localizer.embedding.embedder import BASE_MODEL, EmbedderConfig, open_embedder

    # The stages' default is the base MiniLM, not localize's default: the data must not depend on
    # whether this build ships trained weights.
    return EmbedderEncoder(open_embedder(EmbedderConfig(model=model or BASE_MODEL, device=device, batch_size=batch_size,
                                                   max_seq_length=max_seq_length, backend=backend)))


def _key(role: str, text: str) -> bytes:
    return hashlib.sha1(f"{role}\0{text}".encode("utf-8", errors="surrogatepass")).digest()


class VectorCache:
    """Vectors of one model identity under ``root/<hash of identity>/part-*.npz``."""

    def __init__(self, root: str | Path | None, identity: str) -> None:
        self.dir = Path(root) / hashlib.sha1(identity.encode()).hexdigest()[:16] if root else None
        self._vectors: dict[bytes, np.ndarray] = {}
        if self.dir is not None and self.dir.is_dir():
            for part in sorted(self.dir.glob("part-*.npz")):
                try:
                    with np.load(part) as data:
                        keys = data["keys"]
                        if keys.dtype.kind == "S":  # older parts: numpy strips trailing NULs from S20
                            raw = [bytes(k).ljust(20, b"\0") for k in keys]
                        else:
                            raw = [row.tobytes() for row in keys]
                        for k, v in zip(raw, data["vectors"]):
                            self._vectors[k] = v
                except (OSError, ValueError, KeyError):  # a torn part from a killed run: re-encode its texts
                    continue

    def __len__(self) -> int:
        return len(self._vectors)

    def _save(self, keys: list[bytes], vectors: np.ndarray) -> None:
        if self.dir is None or not keys:
            return
        self.dir.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(suffix=".npz.tmp", dir=self.dir)
        with os.fdopen(fd, "wb") as fh:
            # Raw uint8 rows: an "S20" array would silently drop a key's trailing NUL bytes.
            raw = np.frombuffer(b"".join(keys), dtype=np.uint8).reshape(len(keys), 20)
            np.savez(fh, keys=raw, vectors=vectors.astype(np.float32))
        os.replace(tmp, self.dir / f"part-{uuid.uuid4().hex}.npz")

    def encode(self, texts: Sequence[str], role: str, encode: Callable[[Sequence[str]], np.ndarray],
               chunk_size: int = 1024, on_progress: Callable[[int], None] | None = None) -> np.ndarray:
        """Vectors for ``texts`` (role ``query`` or ``code``), encoding only what the cache lacks.

        ``on_progress(n)`` is called with the number of texts done: first those
        found in the cache, then each encoded chunk.
        """
        keys = [_key(role, t) for t in texts]
        missing: dict[bytes, str] = {}
        for k, t in zip(keys, texts):
            if k not in self._vectors and k not in missing:
                missing[k] = t
        todo = list(missing.items())
        if on_progress and len(keys) > len(todo):
            on_progress(len(keys) - len(todo))  # cached texts count as done
        for start in range(0, len(todo), chunk_size):
            batch = todo[start : start + chunk_size]
            vectors = encode([t for _, t in batch])
            for (k, _), v in zip(batch, vectors):
                self._vectors[k] = v
            self._save([k for k, _ in batch], vectors)
            if on_progress:
                on_progress(len(batch))
        if not keys:
            return np.zeros((0, 0), dtype=np.float32)
        return np.stack([self._vectors[k] for k in keys]).astype(np.float32)


def unique_codes(positives: Sequence[str]) -> tuple[list[str], np.ndarray, list[int]]:
    """(distinct codes by normalized text, row → code index, code → first row holding it).

    The code corpus is searched once per distinct code: a function two commits
    touched must not compete with itself for its own query's top-k.
    """
    from cornstack_train.data.cleaning import code_hash

    index: dict[str, int] = {}
    codes: list[str] = []
    first_row: list[int] = []
    row_to_code = np.empty(len(positives), dtype=np.int64)
    for row, code in enumerate(positives):
        h = code_hash(code)
        j = index.get(h)
        if j is None:
            j = index[h] = len(codes)
            codes.append(code)
            first_row.append(row)
        row_to_code[row] = j
    return codes, row_to_code, first_row


def query_key(text: str) -> str:
    """Rows whose queries agree up to case and spacing share a query (a commit that changed several functions)."""
    return " ".join(text.split()).lower()


def query_groups(query_keys: Sequence[str] | None, row_to_code: np.ndarray) -> dict[int, np.ndarray]:
    """Row → every code paired with its query (compared by :func:`query_key`), for queries with several codes."""
    if query_keys is None:
        return {}
    by_query: dict[str, list[int]] = {}
    for row, key in enumerate(query_keys):
        by_query.setdefault(query_key(key), []).append(row)
    groups: dict[int, np.ndarray] = {}
    for rows in by_query.values():
        codes = np.unique(row_to_code[rows])
        if len(codes) > 1:
            for row in rows:
                groups[row] = codes
    return groups
