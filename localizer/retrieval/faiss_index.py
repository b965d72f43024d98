"""The one place that builds and searches FAISS indexes, for retrieval at run time and for training.

Exact inner product (``IndexFlatIP``) over normalized vectors is cosine similarity. A repository has
at most a few hundred thousand chunks and training corpora a few hundred thousand codes, so an
exact flat index is fast enough on a CPU and never loses a hit to approximation.
"""

from __future__ import annotations

import numpy as np


def flat_ip_index(vectors: np.ndarray, use_gpu: bool = False):
    """Exact inner-product index over ``vectors``; on a GPU when asked and FAISS has one."""
    import faiss

    index = faiss.IndexFlatIP(vectors.shape[1])
    if use_gpu and hasattr(faiss, "StandardGpuResources") and faiss.get_num_gpus() > 0:
        index = faiss.index_cpu_to_gpu(faiss.StandardGpuResources(), 0, index)
    if len(vectors):
        index.add(np.ascontiguousarray(vectors, dtype=np.float32))
    return index


def search(index, queries: np.ndarray, depth: int, batch: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """(scores, ids) of the ``depth`` nearest rows per query, in batches to bound memory.

    Ids are -1 where FAISS found fewer than ``depth`` rows."""
    depth = min(depth, index.ntotal)
    queries = np.asarray(queries, dtype=np.float32).reshape(len(queries), -1)
    scores = np.empty((len(queries), depth), dtype=np.float32)
    ids = np.empty((len(queries), depth), dtype=np.int64)
    for start in range(0, len(queries), batch):
        s, i = index.search(np.ascontiguousarray(queries[start : start + batch]), depth)
        scores[start : start + batch], ids[start : start + batch] = s, i
    return scores, ids
