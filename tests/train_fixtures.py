"""Tiny models and stages for the training tests: seconds, not minutes.

The model is a 2-layer, 32-wide BERT with the packaged MiniLM's tokenizer,
wrapped as a sentence-transformers model. The corpus is synthetic: each query
names a verb and a noun, and its positive is a function with those words, so a
few steps of training visibly help.
"""

from __future__ import annotations

import random
from pathlib import Path

from cornstack_train.data.records import save_stage

VERBS = ["parse", "load", "save", "merge", "split", "sort", "filter", "render", "fetch", "encode", "decode", "hash"]
NOUNS = ["config", "user", "file", "table", "image", "token", "graph", "cache", "query", "index", "stream", "record"]


def tiny_model(root: Path, seed: int = 0) -> Path:
    import torch
    from sentence_transformers import SentenceTransformer, models
    from transformers import AutoTokenizer, BertConfig, BertModel

    from localizer.embedding.embedder import packaged_model_path

    tokenizer = AutoTokenizer.from_pretrained(str(packaged_model_path()))
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=128)
    torch.manual_seed(seed)
    raw = root / "raw"
    BertModel(config).save_pretrained(raw)
    tokenizer.save_pretrained(raw)
    transformer = models.Transformer(str(raw), max_seq_length=48)
    model = SentenceTransformer(modules=[transformer, models.Pooling(32, "mean"), models.Normalize()], device="cpu")
    model.save(str(root / "st"))
    return root / "st"


def corpus_rows(n: int = 64, repos: int = 4, negatives: int = 6, seed: int = 0) -> list[dict]:
    rnd = random.Random(seed)
    rows = []
    for i in range(n):
        verb, noun = VERBS[i % 12], NOUNS[(i * 5 + i // 12) % 12]
        rows.append({
            "id": f"r{i}", "query": f"{verb} the {noun} number {i}",
            "positive": f"def {verb}_{noun}_{i}(x):\n    return {verb}({noun}, {i})",
            "kind": "docstring" if i % 3 else "commit", "language": "python" if i % 2 else "go",
            "repo": f"org/repo{i % repos}", "path": f"m{i}.py", "name": f"{verb}_{noun}_{i}", "source": "synthetic",
            "filter_score": 0.5, "filter_rank": 1,
        })
    if negatives:
        for i, row in enumerate(rows):
            picked = rnd.sample([j for j in range(n) if j != i], negatives)
            row["negative_ids"] = [f"r{j}" for j in picked]
            row["negative_scores"] = [round(rnd.random(), 3) for _ in picked]
    return rows


def write_stage(path: Path, rows: list[dict]) -> Path:
    from datasets import Dataset

    save_stage(Dataset.from_list(rows), path, {"rows": len(rows)}, overwrite=True)
    return path
