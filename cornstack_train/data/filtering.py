"""Stage ``filter``: CoRNStack's dual consistency filtering.

A mined pair is trusted only if an off-the-shelf embedder agrees with it:
embed every query and every distinct code, and keep a pair when its positive
is among the ``top_k`` codes nearest to its query (the query singles out its
own code against the whole corpus) **and** their cosine similarity reaches
``threshold`` (the match is not merely the least bad one). Docstrings that
describe something else (a license, a TODO, a sibling function) and commit
messages about unrelated changes fail one test or the other.

Defaults measured, not guessed (docs/training.md has the tables): 2,000
real mined pairs (one per distinct code) from 51 training repositories, 10%
shuffled pairs injected, packaged MiniLM.

* The rank test alone (k=2) removes 100% of the injected pairs; the
  threshold hardly changes that. It keeps 73.6% of clean docstring pairs
  (k=1: 64.6%, k=5: 81.1%) and 37.7% of commit pairs. CoRNStack's k=2 is
  kept: k=5 lets more noise through on a large corpus, k=1 loses 9 points.
* ``threshold=0.3``: mismatched (query, code) pairs have cosine p50 0.07,
  p95 0.25, p99 0.34, so 0.3 alone rejects 97.9% of them; that matters where
  the rank test is weak (a small corpus, one repository). Added to k=2 it
  costs 0.1 point of clean pairs; 0.35 costs 0.6, 0.4 costs 3.3 (docstring
  pairs then fall to 70.4%).

Another filter model has another score scale: re-measure
(:func:`measure_injection`) before relying on these values.

The core, :func:`consistency_filter`, is pure numpy + FAISS on given vectors;
the model and the datasets I/O stay in :func:`run_filter`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from localizer.device import resolve_device
from localizer.retrieval.faiss_index import flat_ip_index, search

from cornstack_train.data.vectors import TextEncoder, VectorCache, query_groups, query_key, unique_codes

DEFAULT_TOP_K = 2
DEFAULT_THRESHOLD = 0.3
DEFAULT_RANK_DEPTH = 100


@dataclass(frozen=True)
class FilterConfig:
    model: str | None = None  # None: the packaged MiniLM
    device: str = "auto"
    batch_size: int = 64
    max_seq_length: int | None = None  # None: the model's own
    backend: str = "torch"  # localizer.embedding.embedder backends; its own vector-cache key
    top_k: int = DEFAULT_TOP_K
    threshold: float = DEFAULT_THRESHOLD
    rank_depth: int = DEFAULT_RANK_DEPTH  # ranks are exact up to this depth
    cache_dir: str | None = None  # vector cache; None: <output parent>/.vector-cache
    encode_shard: tuple[int, int] | None = None  # (i, n): only fill the cache with every n-th text from i


@dataclass
class ConsistencyResult:
    """Per row: keep flag, 1-based rank of its positive (``rank_depth + 1`` = deeper), cosine score."""

    keep: np.ndarray
    rank: np.ndarray
    score: np.ndarray


def consistency_filter(
    query_vecs: np.ndarray,
    code_vecs: np.ndarray,
    row_to_code: np.ndarray,
    top_k: int = DEFAULT_TOP_K,
    threshold: float = DEFAULT_THRESHOLD,
    rank_depth: int = DEFAULT_RANK_DEPTH,
    use_gpu: bool = False,
    query_keys: Sequence[str] | None = None,
) -> ConsistencyResult:
    """Dual consistency on L2-normalized vectors.

    ``query_vecs[i]`` is row i's query, ``code_vecs[row_to_code[i]]`` its
    positive; the corpus is all of ``code_vecs``. A row is kept when its
    positive ranks within ``top_k`` for its query and the cosine is at least
    ``threshold``. Rows with equal ``query_keys`` share a query (a commit that
    changed several functions): their other positives do not count against
    each other's rank.
    """
    if top_k < 1:
        raise ValueError(f"top_k must be >= 1, got {top_k}")
    n = len(query_vecs)
    if n == 0:
        return ConsistencyResult(np.zeros(0, bool), np.zeros(0, np.int64), np.zeros(0, np.float32))
    row_to_code = np.asarray(row_to_code, dtype=np.int64)
    score = np.einsum("ij,ij->i", query_vecs, code_vecs[row_to_code]).astype(np.float32)
    depth = max(top_k, rank_depth)
    index = flat_ip_index(code_vecs, use_gpu=use_gpu)
    _, ids = search(index, query_vecs, depth)
    hit = ids == row_to_code[:, None]
    found = hit.any(axis=1)
    position = hit.argmax(axis=1)
    rank = np.where(found, position + 1, depth + 1).astype(np.int64)
    for row, group in query_groups(query_keys, row_to_code).items():
        if found[row]:  # siblings ranked ahead of the own code do not count
            rank[row] -= int(np.isin(ids[row, : position[row]], group).sum())
    keep = (rank <= top_k) & (score >= threshold)
    return ConsistencyResult(keep, rank, score)


# ---------------------------------------------------------- measurement


def inject_shuffled(n: int, fraction: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(query rows, code rows, injected mask): the n clean pairs plus ``fraction * n`` wrong ones.

    A wrong pair joins the query of one clean row with the code of another,
    so the corpus of codes is unchanged and each wrong pair's true code is
    still there to outrank it, as with a mislabeled pair in real data.
    """
    rng = np.random.default_rng(seed)
    m = max(1, int(round(n * fraction))) if n > 1 else 0
    queries = rng.choice(n, size=m, replace=False)
    codes = rng.integers(0, n - 1, size=m)
    codes = codes + (codes >= queries)  # never the query's own code
    query_rows = np.concatenate([np.arange(n), queries])
    code_rows = np.concatenate([np.arange(n), codes])
    injected = np.concatenate([np.zeros(n, bool), np.ones(m, bool)])
    return query_rows, code_rows, injected


def measure_injection(
    query_vecs: np.ndarray,
    code_vecs: np.ndarray,
    thresholds: Sequence[float],
    ks: Sequence[int] = (1, 2, 5),
    fraction: float = 0.1,
    seed: int = 0,
) -> list[dict[str, float]]:
    """For each (k, threshold): share of injected pairs removed and of clean pairs kept.

    ``query_vecs[i]`` / ``code_vecs[i]`` are clean pair i (codes distinct).
    """
    query_rows, code_rows, injected = inject_shuffled(len(query_vecs), fraction, seed)
    table = []
    for k in ks:
        base = consistency_filter(query_vecs[query_rows], code_vecs, code_rows, top_k=k, threshold=-1.0)
        for t in thresholds:
            keep = base.keep & (base.score >= t)
            table.append({
                "k": int(k), "threshold": float(t),
                "injected_removed": float(1.0 - keep[injected].mean()),
                "clean_kept": float(keep[~injected].mean()),
            })
    return table


# ---------------------------------------------------------------- stage


def encode_pairs(
    queries: Sequence[str], codes: Sequence[str], encoder: TextEncoder, cache: VectorCache,
    on_progress: Callable[[int], None] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    q = cache.encode(queries, "query", encoder.encode_queries, on_progress=on_progress)
    c = cache.encode(codes, "code", encoder.encode_codes, on_progress=on_progress)
    return q, c


def default_cache_dir(out: str | Path) -> Path:
    return Path(out).resolve().parent / ".vector-cache"


@dataclass
class PairInputs:
    """What ``filter`` and ``negatives`` both start from: the stage, its distinct codes, an encoder
    and the vector cache they share, and a progress callback counting encoded texts."""

    dataset: Any
    queries: list[str]
    codes: list[str]
    row_to_code: np.ndarray
    first_row: list[int]
    encoder: TextEncoder
    cache: VectorCache
    progress: Callable[[int], None]


def open_pair_inputs(config, input_dir: str | Path, out: str | Path, encoder: TextEncoder | None = None,
                     on_progress: Callable[[int, int], None] | None = None) -> PairInputs:
    """``config`` is a FilterConfig or NegativesConfig: both name the model, device, batch and cache dir."""
    from cornstack_train.data.records import load_stage
    from cornstack_train.data.vectors import load_encoder

    ds = load_stage(input_dir)
    queries = ds["query"]
    codes, row_to_code, first_row = unique_codes(ds["positive"])
    if encoder is None:
        encoder = load_encoder(config.model, config.device, config.batch_size, config.max_seq_length,
                               config.backend)
    cache = VectorCache(config.cache_dir or default_cache_dir(out), encoder.identity)
    total = len(queries) + len(codes)
    done = [0]

    def progress(n: int) -> None:
        done[0] += n
        if on_progress:
            on_progress(done[0], total)

    return PairInputs(ds, queries, codes, row_to_code, first_row, encoder, cache, progress)


def run_filter(
    config: FilterConfig, input_dir: str | Path, out: str | Path, overwrite: bool = False,
    encoder: TextEncoder | None = None, on_progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Filter a ``mine`` stage into ``out``; returns the stats written to ``stats.json``.

    ``on_progress(done, total)`` reports encoded texts.
    """
    from cornstack_train.data.records import save_stage

    inputs = open_pair_inputs(config, input_dir, out, encoder, on_progress)
    ds, queries, codes, row_to_code = inputs.dataset, inputs.queries, inputs.codes, inputs.row_to_code
    encoder, cache, progress = inputs.encoder, inputs.cache, inputs.progress

    if config.encode_shard is not None:
        # Scale-out: n processes (one per GPU) each fill the shared cache with
        # their slice; a final run without a shard finds every vector cached.
        i, n = config.encode_shard
        q, c = encode_pairs(queries[i::n], codes[i::n], encoder, cache, progress)
        return {"stage": "filter", "encode_shard": [i, n], "encoded_queries": len(q), "encoded_codes": len(c)}
    q, c = encode_pairs(queries, codes, encoder, cache, progress)
    result = consistency_filter(q, c, row_to_code, config.top_k, config.threshold, config.rank_depth,
                                use_gpu=resolve_device(config.device).startswith("cuda"), query_keys=[query_key(t) for t in queries])
    out_ds = ds.add_column("filter_score", [float(s) for s in result.score])
    out_ds = out_ds.add_column("filter_rank", [int(r) for r in result.rank])
    kept_idx = np.flatnonzero(result.keep)
    out_ds = out_ds.select(kept_idx.tolist())
    stats = {
        "stage": "filter", "config": dataclasses.asdict(config), "model_identity": encoder.identity,
        "input": str(input_dir), "pairs_in": len(ds), "pairs_kept": int(result.keep.sum()),
        "keep_rate": float(result.keep.mean()) if len(ds) else 0.0,
        "distinct_codes": len(codes),
        "dropped_rank": int((result.rank > config.top_k).sum()),
        "dropped_threshold_only": int(((result.rank <= config.top_k) & (result.score < config.threshold)).sum()),
        "score_percentiles": _percentiles(result.score),
        "keep_rate_by": _keep_rates(ds, result.keep),
    }
    save_stage(out_ds, out, stats, overwrite=overwrite)
    return stats


def _percentiles(values: np.ndarray) -> dict[str, float]:
    if len(values) == 0:
        return {}
    return {f"p{p}": float(np.percentile(values, p)) for p in (5, 25, 50, 75, 95)}


def _keep_rates(ds, keep: np.ndarray) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for column in ("kind", "language"):
        values = np.asarray(ds[column])
        out[column] = {str(v): float(keep[values == v].mean()) for v in sorted(set(values.tolist()))}
    return out
