"""Static embeddings: a token-vector table averaged per text, in numpy, with no torch.

A static embedder is a transformer distilled into one vector per token (Model2Vec) and then
trained contrastively like the transformer (``cornstack_train.embedder.static``). Encoding a
text is a tokenizer call and a mean of table rows, so a repository embeds in seconds where
MiniLM takes minutes, and ``localize`` can run the dense half of ``hybrid`` by default.

The on-disk layout is Model2Vec's, so a model trained here also loads with
``model2vec.StaticModel.from_pretrained`` and sentence-transformers'
``StaticEmbedding.load``, and a Model2Vec model loads here:

- ``config.json``: ``{"model_type": "model2vec", "normalize": true, "hidden_dim": D, ...}``
- ``model.safetensors``: ``embeddings`` (V x D; fp16 or fp32), optionally Model2Vec's
  vocabulary-quantisation ``mapping`` and per-token ``weights``
- ``tokenizer.json``: a ``tokenizers`` tokenizer; its truncation setting is the model's
  token budget, read the same way by training (sentence-transformers) and by this module

Encoding follows sentence-transformers' ``StaticEmbedding`` exactly (no special tokens,
unknown tokens kept, mean over tokens), because that is what the table was trained under;
vectors are then L2-normalised. This module must not import torch: the warm ``localize``
query is bounded by loading the index, not by importing a deep-learning framework
(``tests/localizer/embedding/test_static.py`` checks ``sys.modules``).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from indexer.errors import ModelLoadError

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
TOKENIZER_FILE = "tokenizer.json"
MODEL_TYPE = "model2vec"
# Texts per tokenizer call and sparse product: large batches amortise the calls, and a batch's ids
# (at most 512 per text) are all it holds besides its vectors.
DEFAULT_BATCH_SIZE = 2048
# The fewest texts worth a thread of their own: below it, starting threads costs more than it saves.
MIN_THREAD_SLICE = 64


def is_static_dir(path: str | Path) -> bool:
    """Whether ``path`` holds a static model in the Model2Vec layout."""
    config = Path(path) / CONFIG_FILE
    if not (config.is_file() and (Path(path) / WEIGHTS_FILE).is_file()):
        return False
    try:
        return json.loads(config.read_text()).get("model_type") == MODEL_TYPE
    except (OSError, ValueError, AttributeError):
        return False


def fold_table(embeddings: np.ndarray, mapping: np.ndarray | None = None,
               weights: np.ndarray | None = None) -> np.ndarray:
    """One fp32 row per token id: Model2Vec may store a smaller table, a token -> row ``mapping``
    and per-token ``weights``; averaging the folded rows gives what Model2Vec averages."""
    table = np.asarray(embeddings, dtype=np.float32)
    if mapping is not None:
        table = table[np.asarray(mapping, dtype=np.int64)]
    if weights is not None:
        table = table * np.asarray(weights, dtype=np.float32)[:, None]
    return np.ascontiguousarray(table)


def mean_rows(table: np.ndarray, token_ids: Sequence[Sequence[int]]) -> np.ndarray:
    """The mean table row of each id list (zeros for an empty one): the static encoder's whole model.

    Computed as a sparse (texts x vocabulary) matrix of 1/length weights times the table: on
    sympy's 29k chunks (155 tokens each) that took 0.1 s per 8,000 texts where gathering the
    rows and ``np.add.reduceat`` took 7.6 s (benchmarks/RESULTS.md, "static embedder").
    """
    from scipy.sparse import csr_matrix

    lengths = np.fromiter((len(ids) for ids in token_ids), dtype=np.int64, count=len(token_ids))
    indptr = np.concatenate(([0], np.cumsum(lengths)))
    flat = np.fromiter((t for ids in token_ids for t in ids), dtype=np.int64, count=int(indptr[-1]))
    weights = np.repeat(1.0 / np.maximum(lengths, 1), lengths).astype(np.float32)
    averaging = csr_matrix((weights, flat, indptr), shape=(len(token_ids), table.shape[0]))
    return np.asarray(averaging @ table, dtype=np.float32)


def normalize_rows(vectors: np.ndarray) -> np.ndarray:
    """L2-normalised rows; all-zero rows (texts with no tokens) stay zero rather than NaN."""
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return np.divide(vectors, norms, out=np.zeros_like(vectors), where=norms > 0)


@dataclass
class StaticModel:
    """A loaded static model: tokenizer, fp32 table, and how texts are cut and normalised."""

    tokenizer: Any  # tokenizers.Tokenizer
    table: np.ndarray
    normalize: bool = True

    @property
    def dim(self) -> int:
        return int(self.table.shape[1])

    @property
    def max_tokens(self) -> int | None:
        """The token budget a text is cut to (the tokenizer's truncation), None when uncut."""
        truncation = self.tokenizer.truncation
        return int(truncation["max_length"]) if truncation else None

    @classmethod
    def load(cls, path: str | Path) -> "StaticModel":
        from safetensors.numpy import load_file
        from tokenizers import Tokenizer

        path = Path(path)
        if not is_static_dir(path):
            raise ModelLoadError(f"not a static model directory (needs {CONFIG_FILE} with model_type "
                                 f"{MODEL_TYPE!r}, {WEIGHTS_FILE} and {TOKENIZER_FILE}): {path}")
        try:
            config = json.loads((path / CONFIG_FILE).read_text())
            tensors = load_file(str(path / WEIGHTS_FILE))
            tokenizer = Tokenizer.from_file(str(path / TOKENIZER_FILE))
        except Exception as exc:  # noqa: BLE001 - any unreadable file is one user-facing load error
            raise ModelLoadError(f"could not load static model {path}: {exc}") from exc
        if "embeddings" not in tensors:
            raise ModelLoadError(f"{path / WEIGHTS_FILE} has no 'embeddings' tensor")
        table = fold_table(tensors["embeddings"], tensors.get("mapping"), tensors.get("weights"))
        if table.ndim != 2 or table.shape[0] < tokenizer.get_vocab_size():
            raise ModelLoadError(f"{path}: the table ({table.shape}) does not cover the tokenizer's "
                                 f"{tokenizer.get_vocab_size()} tokens")
        tokenizer.no_padding()
        return cls(tokenizer, table, bool(config.get("normalize", True)))

    def token_ids(self, texts: Sequence[str]) -> list[list[int]]:
        return [encoding.ids for encoding in self.tokenizer.encode_batch(list(texts), add_special_tokens=False)]

    def encode(self, texts: Sequence[str], batch_size: int = DEFAULT_BATCH_SIZE) -> np.ndarray:
        """fp32 vectors of ``texts``, L2-normalised when the model says so.

        Tokenizing is most of the cost (a sparse product does the averaging), and ``tokenizers``
        releases the GIL, so slices of a large call are tokenized on one thread per core: 1.5x on
        two busy cores. Threads rather than ``TOKENIZERS_PARALLELISM``, which the CLI turns off so
        that processes forked later do not warn, and which would change a caller's setting.
        """
        texts = list(texts)
        workers = min(os.cpu_count() or 1, 4)
        width = max(1, batch_size)
        if len(texts) >= 2 * MIN_THREAD_SLICE and workers > 1:
            width = min(width, max(MIN_THREAD_SLICE, -(-len(texts) // workers)))
        slices = [texts[i:i + width] for i in range(0, len(texts), width)]
        if len(slices) > 1 and workers > 1:
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(workers) as pool:
                parts = list(pool.map(lambda part: mean_rows(self.table, self.token_ids(part)), slices))
        else:
            parts = [mean_rows(self.table, self.token_ids(part)) for part in slices]
        vectors = np.concatenate(parts) if parts else np.zeros((0, self.dim), dtype=np.float32)
        return normalize_rows(vectors) if self.normalize else vectors


def save_static(path: str | Path, tokenizer: Any, table: np.ndarray, *, dtype: str = "float16",
                extra_config: dict[str, Any] | None = None) -> None:
    """Write a static model in the Model2Vec layout (fp16 by default: half the bytes, and a cosine
    of ~1.0 to the fp32 vectors, since a mean of many rows averages the rounding out)."""
    from safetensors.numpy import save_file

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    table = np.asarray(table, dtype=np.float32)
    save_file({"embeddings": np.ascontiguousarray(table.astype(dtype))}, str(path / WEIGHTS_FILE))
    tokenizer.save(str(path / TOKENIZER_FILE))
    config = {"model_type": MODEL_TYPE, "architectures": ["StaticModel"], "hidden_dim": int(table.shape[1]),
              "normalize": True, **(extra_config or {})}
    (path / CONFIG_FILE).write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")


class StaticEmbedder:
    """The :class:`~localizer.embedding.embedder.Embedder` interface over a :class:`StaticModel`.

    Built by :func:`~localizer.embedding.embedder.open_embedder` when the model resolves to a
    static directory. It runs on the CPU in numpy whatever ``--device`` says (a table lookup
    gains nothing from a GPU), and the runtime ``backend`` does not apply, so neither enters the
    cache key: every configuration gives the same vectors.
    """

    device = "cpu"

    def __init__(self, config: Any, load_target: str, model_identity: str) -> None:
        self.config = config
        self.load_target = load_target
        self._model = StaticModel.load(load_target)
        self.query_prompt = config.query_prompt or ""
        self.document_prompt = config.document_prompt or ""
        if config.max_seq_length:
            self._model.tokenizer.enable_truncation(int(config.max_seq_length))
        self.dim = self._model.dim
        self.max_seq_length = self._model.max_tokens or 0
        self.identity = f"{model_identity}|doc={self.document_prompt}|len={self.max_seq_length}|static"

    @property
    def model(self) -> StaticModel:
        return self._model

    def encode_texts(self, texts: Sequence[str], prompt: str) -> np.ndarray:
        batch = [prompt + t for t in texts] if prompt else list(texts)
        return self._model.encode(batch, batch_size=max(self.config.batch_size, DEFAULT_BATCH_SIZE))

    def encode_documents(self, texts: Sequence[str]) -> np.ndarray:
        return self.encode_texts(texts, self.document_prompt)

    def encode_query(self, text: str) -> np.ndarray:
        return self.encode_texts([text], self.query_prompt)[0]
