"""The CoRNStack data and training pipeline that builds localizer's models.

``data/`` mines (query, code) pairs from repositories and registry releases, cleans them,
filters them by dual consistency and mines hard negatives; ``embedder/`` trains, evaluates,
ablates and ships the bi-encoder; ``reranker/`` builds listwise training lists, teacher orders
and the LoRA-tuned reranker. ``cornstack-train`` (``cli.py``) runs each stage.
"""
