"""First-stage retrieval: issue parsing, BM25/dense/hybrid retrievers, fusion and mention boosts."""
