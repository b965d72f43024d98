"""The static embedder's training side: distillation from a transformer, and the bridge between
the shipped Model2Vec layout (``localizer.embedding.static``) and sentence-transformers.

The recipe (``docs/training.md``, "Static embedder"):

1. **Distil** (``cornstack-train distill``). Every token of the transformer's vocabulary is
   embedded on its own (``[CLS] token [SEP]`` through the model, its pooled sentence vector),
   the table is reduced by PCA, and each row is weighted by SIF, ``a / (a + p(token))``, with
   ``p`` counted on the training corpus: frequent tokens (``self``, ``(``, ``the``) carry
   little about where a bug is and would otherwise dominate every mean. This is Model2Vec's
   method, written out here so it runs offline with what the project already depends on (the
   ``model2vec[distill]`` extra pulls ``kernels``, whose import breaks transformers:
   ``../shared/MODELS.md``).
2. **Train** (``cornstack-train train --model <distilled dir>``): the transformer's stages
   unchanged (pairs, filtering, false-negative removal, softmax-sampled hard negatives under
   the τ curriculum, InfoNCE), on sentence-transformers' ``StaticEmbedding``, which averages
   the same table rows the runtime averages.
3. **Export**: the trained table goes back to the Model2Vec layout, fp16, for ``ship --static``.
"""

from __future__ import annotations

import json
import logging
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from localizer.embedding.static import StaticModel, is_static_dir, save_static

log = logging.getLogger("cornstack_train.static")

# The word-piece vocabulary's placeholders: never produced by the tokenizer, so never trained.
UNUSED_TOKEN = re.compile(r"^\[unused\d+\]$")
DEFAULT_DIMS = 256
# A function or file rarely needs more than 512 word pieces to say what it does, and the mean
# over more tokens only blurs it; Model2Vec cuts at 512 too.
DEFAULT_MAX_TOKENS = 512
# SIF's a: Model2Vec's default coefficient (1e-4) on a natural-language corpus; code repeats its
# keywords and punctuation far more, so the weight falls off from a higher frequency.
DEFAULT_SIF = 1e-3


def pca(table: np.ndarray, dims: int) -> np.ndarray:
    """Rows projected onto their ``dims`` principal axes (centred; no whitening, as Model2Vec)."""
    centred = table - table.mean(axis=0, keepdims=True)
    if dims >= table.shape[1]:
        return centred.astype(np.float32)
    _, _, axes = np.linalg.svd(centred, full_matrices=False)
    projected = centred @ axes[:dims].T
    # SVD's axis signs are arbitrary; fix them so the same input always gives the same table.
    signs = np.sign(projected[np.abs(projected).argmax(axis=0), np.arange(dims)])
    return (projected * np.where(signs == 0, 1, signs)).astype(np.float32)


def sif_weights(counts: Counter, vocab_size: int, coefficient: float = DEFAULT_SIF) -> np.ndarray:
    """``a / (a + p(token))`` per token id; tokens never seen weigh 1."""
    weights = np.ones(vocab_size, dtype=np.float32)
    total = sum(counts.values())
    if total == 0:
        return weights
    for token, count in counts.items():
        if 0 <= token < vocab_size:
            weights[token] = coefficient / (coefficient + count / total)
    return weights


def count_tokens(tokenizer: Any, texts: Iterable[str], batch_size: int = 1024) -> Counter:
    """How often each token id occurs in ``texts``, cut as the model cuts them."""
    counts: Counter = Counter()
    batch: list[str] = []
    for text in texts:
        batch.append(text)
        if len(batch) == batch_size:
            counts.update(t for e in tokenizer.encode_batch(batch, add_special_tokens=False) for t in e.ids)
            batch = []
    if batch:
        counts.update(t for e in tokenizer.encode_batch(batch, add_special_tokens=False) for t in e.ids)
    return counts


def token_vectors(model: Any, tokenizer: Any, batch_size: int = 512) -> np.ndarray:
    """Each vocabulary token's own sentence vector through ``model`` (a SentenceTransformer), fp32.

    ``[unused]`` placeholders get zeros: they never occur, and their vectors would only pull the PCA.
    """
    import torch

    vocab = tokenizer.get_vocab()
    size = tokenizer.get_vocab_size()
    cls_id, sep_id = vocab.get("[CLS]"), vocab.get("[SEP]")
    ids = [i for token, i in sorted(vocab.items(), key=lambda item: item[1]) if not UNUSED_TOKEN.match(token)]
    out = np.zeros((size, model.get_embedding_dimension()), dtype=np.float32)
    model.eval()
    with torch.inference_mode():
        for start in range(0, len(ids), batch_size):
            chunk = ids[start:start + batch_size]
            rows = [[cls_id, t, sep_id] if cls_id is not None and sep_id is not None else [t] for t in chunk]
            input_ids = torch.tensor(rows, dtype=torch.long, device=model.device)
            features = {"input_ids": input_ids, "attention_mask": torch.ones_like(input_ids),
                        "token_type_ids": torch.zeros_like(input_ids)}
            out[chunk] = model(features)["sentence_embedding"].float().cpu().numpy()
    return out


def distill(model: Any, tokenizer: Any, *, dims: int = DEFAULT_DIMS, corpus: Iterable[str] = (),
            sif: float = DEFAULT_SIF) -> np.ndarray:
    """The distilled table: token vectors, PCA to ``dims``, SIF-weighted by ``corpus`` counts."""
    vectors = token_vectors(model, tokenizer)
    used = vectors.any(axis=1)  # the [unused] placeholders are all-zero: keep them out of the PCA, and zero
    table = np.zeros((vectors.shape[0], min(dims, vectors.shape[1])), dtype=np.float32)
    table[used] = pca(vectors[used], dims)
    weights = sif_weights(count_tokens(tokenizer, corpus), table.shape[0], sif)
    return table * weights[:, None]


def base_tokenizer(model_dir: str | Path, max_tokens: int = DEFAULT_MAX_TOKENS):
    """The transformer's fast tokenizer, cut at ``max_tokens`` word pieces and unpadded."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(Path(model_dir) / "tokenizer.json"))
    tokenizer.no_padding()
    tokenizer.enable_truncation(max_tokens)
    return tokenizer


# --------------------------------------------------------------------------- sentence-transformers bridge


def is_static_st(model: Any) -> bool:
    """Whether a SentenceTransformer is a static embedder (its first module a ``StaticEmbedding``)."""
    try:
        first = model[0]
    except (TypeError, IndexError, KeyError):
        return False
    return type(first).__name__ == "StaticEmbedding"


def to_sentence_transformer(static_dir: str | Path, device: str = "cpu"):
    """A trainable SentenceTransformer over the table of a Model2Vec-layout directory."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import StaticEmbedding

    static = StaticModel.load(static_dir)
    module = StaticEmbedding(static.tokenizer, embedding_weights=static.table.copy())
    return SentenceTransformer(modules=[module], device=device)


def export_static(model: Any, out_dir: str | Path, extra_config: dict[str, Any] | None = None) -> Path:
    """A trained static SentenceTransformer written back in the shipped layout (fp16)."""
    module = model[0]
    table = module.embedding.weight.detach().float().cpu().numpy()
    save_static(out_dir, module.tokenizer, table, extra_config=extra_config)
    return Path(out_dir)


# --------------------------------------------------------------------------- the `distill` stage


@dataclass(frozen=True)
class DistillConfig:
    out: Path
    model: str | None = None  # None: the packaged MiniLM
    corpus: tuple[Path, ...] = ()  # stage directories whose query and positive texts give the SIF counts
    dims: int = DEFAULT_DIMS
    max_tokens: int = DEFAULT_MAX_TOKENS
    sif: float = DEFAULT_SIF
    device: str = "cpu"
    overwrite: bool = False

    def __post_init__(self) -> None:
        if self.dims < 2 or self.max_tokens < 1 or self.sif <= 0:
            raise ValueError("--dims must be >= 2, --max-tokens >= 1 and --sif > 0")


def run_distill(config: DistillConfig) -> dict[str, Any]:
    """Distil ``config.model`` into a static model directory at ``config.out``; returns its record."""
    import time

    from sentence_transformers import SentenceTransformer

    from indexer.storage.atomic import atomic_replace_dir
    from localizer.device import resolve_device
    from localizer.embedding.embedder import BASE_MODEL, resolve_model

    from cornstack_train.data.records import StageError, load_stage, sha256_tree, DATA_DIR

    out = Path(config.out)
    if is_static_dir(out) and not config.overwrite:
        raise StageError(f"{out} already holds a static model; pass --overwrite to distil again")
    target, identity = resolve_model(config.model or BASE_MODEL)
    if not (Path(target) / "tokenizer.json").is_file():
        raise StageError(f"{target} has no tokenizer.json: distillation needs a fast (tokenizers) tokenizer")
    started = time.perf_counter()
    model = SentenceTransformer(target, device=resolve_device(config.device))
    tokenizer = base_tokenizer(target, config.max_tokens)

    def corpus_texts():
        for stage in config.corpus:
            dataset = load_stage(stage)
            for column in ("query", "positive"):
                yield from dataset[column]

    table = distill(model, tokenizer, dims=config.dims, corpus=corpus_texts(), sif=config.sif)
    record = {"base": identity, "dims": config.dims, "max_tokens": config.max_tokens, "sif": config.sif,
              "corpus": {str(stage): sha256_tree(Path(stage) / DATA_DIR) for stage in config.corpus},
              "seconds": round(time.perf_counter() - started, 1)}

    def write(tmp: Path) -> None:
        save_static(tmp, tokenizer, table, extra_config={"distilled_from": identity, "sif": config.sif,
                                                          "apply_pca": config.dims})
        (tmp / "distill.json").write_text(json.dumps(record, indent=2) + "\n")

    atomic_replace_dir(out, write)
    return record


__all__ = ["DistillConfig", "run_distill", "DEFAULT_DIMS", "DEFAULT_MAX_TOKENS", "DEFAULT_SIF", "base_tokenizer", "count_tokens", "distill",
           "export_static", "is_static_dir", "is_static_st", "pca", "sif_weights", "to_sentence_transformer",
           "token_vectors"]
