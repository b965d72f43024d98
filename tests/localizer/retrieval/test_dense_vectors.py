"""#26 case 5 as a user sees it: NaN vectors in the store made dense retrieval return no hit at all."""

import sqlite3

import numpy as np

from indexer.index import IndexConfig, build_index
from indexer.storage.store import SQLiteStore
from localizer.retrieval.query import build_query
from localizer.retrieval.retrievers import DenseRetriever

from tests.conftest import HashingEncoder


def test_dense_retrieval_still_finds_hits_after_nan_vectors_reach_the_store(sample_repo, index_dir):
    config = IndexConfig(index_dir=index_dir)
    build_index(sample_repo, encoder=HashingEncoder(), config=config)
    nan = np.full(HashingEncoder.dim, np.nan, dtype=np.float32).tobytes()
    with sqlite3.connect(index_dir / SQLiteStore.FILENAME) as conn:
        conn.execute("UPDATE embeddings SET vec = ?", (nan,))
    index = build_index(sample_repo, encoder=HashingEncoder(), config=config)
    scores = DenseRetriever(index, HashingEncoder()).score(build_query("Removing an item from the cart keeps it"))
    assert scores.functions and scores.files
    assert "shop/cart.py" in scores.files
