"""Stage ``negatives``: hard negatives per pair, with likely false negatives removed.

CoRNStack trains with hard negatives: codes that the embedder finds close to
a query but that are not its positive. The nearest codes include many that
*are* correct answers (a sibling overload, a copy in another file, another
function the same commit changed), and training to push those away teaches
the model wrong things. So, among the ``search_depth`` nearest codes of each
query, a candidate is dropped when

* it is a positive of the same query (rows sharing the query text: a commit
  that changed several functions),
* it is the positive again by normalized text (``identical``), or nearly the
  same code (code-code cosine >= ``max_code_similarity``, 0.98),
* its similarity to the query is within ``margin`` of the positive's, i.e.
  above ``(1 - margin) * positive score`` (NV-Retriever's TopK-PercPos, 95%),
* or above ``max_score`` in absolute terms.

The first ``top_n`` survivors (default 50) are stored as ``negative_ids``
(the id of a row whose positive is that code) with ``negative_scores``. The
training stage samples from them (softmax-weighted, curriculum), so storing
more than it uses is cheap and keeps that choice there.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from localizer.device import resolve_device
from localizer.retrieval.faiss_index import flat_ip_index, search

from cornstack_train.data.vectors import TextEncoder, query_groups

DROP_REASONS = ("same_query", "identical", "near_duplicate", "margin", "max_score")


@dataclass(frozen=True)
class NegativesConfig:
    model: str | None = None  # None: the packaged MiniLM (the filter's default, so its vectors are cached)
    device: str = "auto"
    batch_size: int = 64
    max_seq_length: int | None = None
    backend: str = "torch"  # localizer.embedding.embedder backends; its own vector-cache key
    top_n: int = 50
    search_depth: int | None = None  # None: 2 * top_n + 20
    margin: float = 0.05
    max_score: float = 0.9
    max_code_similarity: float = 0.98
    cache_dir: str | None = None


@dataclass
class NegativesResult:
    negatives: list[np.ndarray]  # code indices per row, best first
    scores: list[np.ndarray]
    dropped: dict[str, int] = field(default_factory=dict)


def hard_negatives(
    query_vecs: np.ndarray,
    code_vecs: np.ndarray,
    row_to_code: np.ndarray,
    query_keys: Sequence[str] | None = None,
    code_keys: Sequence[str] | None = None,
    top_n: int = 50,
    search_depth: int | None = None,
    margin: float = 0.05,
    max_score: float = 0.9,
    max_code_similarity: float = 0.98,
    batch: int = 512,
    use_gpu: bool = False,
) -> NegativesResult:
    """Pure core on L2-normalized vectors: the ``top_n`` hard negatives (code indices) of each row.

    ``query_keys`` (e.g. the query text) groups rows sharing a query;
    ``code_keys`` (e.g. normalized-code hashes) marks identical codes.
    """
    n = len(query_vecs)
    row_to_code = np.asarray(row_to_code, dtype=np.int64)
    dropped = {r: 0 for r in DROP_REASONS}
    if n == 0:
        return NegativesResult([], [], dropped)
    depth = search_depth or (2 * top_n + 20)
    index = flat_ip_index(code_vecs, use_gpu=use_gpu)
    groups = query_groups(query_keys, row_to_code)
    keys = np.asarray(code_keys, dtype=object) if code_keys is not None else None
    negatives: list[np.ndarray] = []
    scores_out: list[np.ndarray] = []
    for start in range(0, n, batch):
        stop = min(n, start + batch)
        s, ids = search(index, query_vecs[start:stop], depth)
        pos = row_to_code[start:stop]
        pos_score = np.einsum("ij,ij->i", query_vecs[start:stop], code_vecs[pos])
        valid = ids >= 0
        safe = np.where(valid, ids, 0)
        is_pos = ids == pos[:, None]
        same_query = np.zeros_like(is_pos)
        for r in range(start, stop):
            group = groups.get(r)
            if group is not None:
                same_query[r - start] = np.isin(ids[r - start], group)
        same_query &= ~is_pos
        identical = np.zeros_like(is_pos)
        if keys is not None:
            identical = (keys[safe] == keys[pos][:, None]) & ~is_pos & ~same_query
        code_sim = np.einsum("bdk,bk->bd", code_vecs[safe], code_vecs[pos])
        rest = valid & ~is_pos & ~same_query & ~identical
        near = rest & (code_sim >= max_code_similarity)
        rest &= ~near
        too_close = rest & (s > (1.0 - margin) * pos_score[:, None])
        rest &= ~too_close
        too_high = rest & (s > max_score)
        rest &= ~too_high
        for name, mask in zip(DROP_REASONS, (same_query, identical, near, too_close, too_high)):
            dropped[name] += int(mask.sum())
        for b in range(stop - start):
            chosen = np.flatnonzero(rest[b])[:top_n]
            negatives.append(ids[b, chosen])
            scores_out.append(s[b, chosen])
    return NegativesResult(negatives, scores_out, dropped)


def run_negatives(
    config: NegativesConfig, input_dir: str | Path, out: str | Path, overwrite: bool = False,
    encoder: TextEncoder | None = None, on_progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Add ``negative_ids`` / ``negative_scores`` to a ``filter`` (or ``mine``) stage and save it to ``out``."""
    from cornstack_train.data.cleaning import code_hash
    from cornstack_train.data.filtering import encode_pairs, open_pair_inputs
    from cornstack_train.data.records import save_stage
    from cornstack_train.data.vectors import query_key

    inputs = open_pair_inputs(config, input_dir, out, encoder, on_progress)
    ds, queries, codes, row_to_code, first_row = (inputs.dataset, inputs.queries, inputs.codes,
                                                  inputs.row_to_code, inputs.first_row)
    encoder = inputs.encoder
    q, c = encode_pairs(queries, codes, encoder, inputs.cache, inputs.progress)
    result = hard_negatives(
        q, c, row_to_code, query_keys=[query_key(t) for t in queries],
        code_keys=[code_hash(code) for code in codes], top_n=config.top_n, search_depth=config.search_depth,
        margin=config.margin, max_score=config.max_score, max_code_similarity=config.max_code_similarity,
        use_gpu=resolve_device(config.device).startswith("cuda"),
    )
    ids = ds["id"]
    negative_ids = [[ids[first_row[j]] for j in row] for row in result.negatives]
    negative_scores = [[float(x) for x in row] for row in result.scores]
    out_ds = ds.add_column("negative_ids", negative_ids).add_column("negative_scores", negative_scores)
    counts = np.array([len(r) for r in negative_ids]) if negative_ids else np.zeros(0)
    stats = {
        "stage": "negatives", "config": dataclasses.asdict(config), "model_identity": encoder.identity,
        "input": str(input_dir), "pairs": len(ds), "distinct_codes": len(codes),
        "negatives_per_pair": {
            "mean": float(counts.mean()) if len(counts) else 0.0,
            "min": int(counts.min()) if len(counts) else 0,
            "rows_with_fewer_than_top_n": int((counts < config.top_n).sum()),
        },
        "dropped_candidates": result.dropped,
    }
    save_stage(out_ds, out, stats, overwrite=overwrite)
    return stats
