"""Encoder runtimes side by side: CPU cost per chunk and agreement with torch fp32.

    python benchmarks/bench_encoder.py --repo ../repos/django__django --texts 400 --out bench/encoder.json

Wall time on a shared machine says more about the neighbours than the
encoder, so the figure that decides is process CPU seconds per 100 chunks
(all threads, including ONNX Runtime's pool). Texts are real chunk texts of
the repository, shuffled with a fixed seed, each runtime sorting by length as
it does in production. Every runtime is timed ``--repeats`` times,
interleaved, and the best run is kept.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

if not __package__:  # run as a file (python benchmarks/...py): PEP 366 lets the relative import below resolve
    __package__ = "benchmarks"
from .report_io import emit_report  # noqa: E402
from indexer.chunking.chunker import chunk_source  # noqa: E402
from indexer.filters import FileFilter  # noqa: E402
from indexer.chunking.languages import language_for_path  # noqa: E402
from indexer.source import open_source  # noqa: E402
from localizer.embedding.embedder import Embedder, EmbedderConfig  # noqa: E402


def sample_texts(repo: Path, rev: str | None, count: int, seed: int) -> list[str]:
    source = open_source(repo, rev, FileFilter())
    try:
        texts = []
        for file in source.files():
            language = language_for_path(file.path)
            if language:
                texts.extend(chunk.text for chunk in chunk_source(file.path, source.read(file), language))
    finally:
        source.close()
    random.Random(seed).shuffle(texts)
    return texts[:count]


def measure(embedder: Embedder, texts: list[str]) -> tuple[float, float, np.ndarray]:
    cpu, wall = time.process_time(), time.perf_counter()
    vectors = embedder.encode_documents(texts)
    return time.process_time() - cpu, time.perf_counter() - wall, vectors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repo", type=Path, required=True)
    parser.add_argument("--rev", default=None)
    parser.add_argument("--texts", type=int, default=400)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--backend", action="append", default=None, help="default: torch, onnx, onnx-int8")
    parser.add_argument("--model", default="localizer-cornstack", help="a transformer embedder (the runtimes are its)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()

    texts = sample_texts(args.repo, args.rev, args.texts, args.seed)
    backends = args.backend or ["torch", "onnx", "onnx-int8"]
    embedders = {name: Embedder(EmbedderConfig(model=args.model, device="cpu", backend=name)) for name in backends}
    best: dict[str, tuple[float, float]] = {}
    vectors: dict[str, np.ndarray] = {}
    for _ in range(args.repeats):
        for name, embedder in embedders.items():
            cpu, wall, vecs = measure(embedder, texts)
            vectors[name] = vecs
            if name not in best or cpu < best[name][0]:
                best[name] = (cpu, wall)
    reference = vectors[backends[0]]
    rows = []
    for name in backends:
        cpu, wall = best[name]
        cosines = np.sum(vectors[name] * reference, axis=1)
        rows.append({
            "backend": name,
            "runs_as": embedders[name].config.backend,  # what auto chose on this CPU
            "cpu_seconds_per_100": round(100 * cpu / len(texts), 2),
            "wall_chunks_per_second": round(len(texts) / wall, 1),
            "cpu_speedup_vs_first": round(best[backends[0]][0] / cpu, 2),
            "cosine_to_first_mean": round(float(cosines.mean()), 4),
            "cosine_to_first_min": round(float(cosines.min()), 4),
        })
    from localizer.rerank.models import this_cpu_supports_bf16

    emit_report({"repo": str(args.repo), "rev": args.rev, "texts": len(texts), "model": args.model,
                 "native_bf16": this_cpu_supports_bf16(), "backends": rows}, args.out)


if __name__ == "__main__":
    main()
