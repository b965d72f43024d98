"""Choose the dual-consistency filter's defaults from data: inject shuffled pairs, see what survives.

    python benchmarks/measure_filter.py data/mined --sample 2000 --out bench/threshold-measurement.json

One row per distinct code is sampled from a ``mine`` stage; 10% of the
queries are paired with another pair's code (``filtering.measure_injection``),
and for each k and threshold the table gives the share of injected pairs
removed and of clean pairs kept, overall, by pair kind and by language.
Vectors go through the same on-disk cache as the ``filter`` stage, so a rerun
(or a later ``filter`` run) does not encode them again.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

if not __package__:  # run as a file (python benchmarks/...py): PEP 366 lets the relative import below resolve
    __package__ = "benchmarks"
from .report_io import emit_report  # noqa: E402
from cornstack_train.data.filtering import measure_injection  # noqa: E402
from cornstack_train.data.records import load_stage  # noqa: E402
from cornstack_train.data.vectors import VectorCache, load_encoder, unique_codes  # noqa: E402

THRESHOLDS = [0.0, 0.1, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mined", type=Path, help="a finished `cornstack-train mine` directory")
    parser.add_argument("--sample", type=int, default=2000)
    parser.add_argument("--model", default=None, help="filter model (default: the packaged MiniLM)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--cache-dir", type=Path, default=None, help="default: <mined parent>/.vector-cache")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()

    dataset = load_stage(args.mined)
    rng = np.random.default_rng(args.seed)
    _, _, first_rows = unique_codes(dataset["positive"])
    rows = rng.choice(np.array(first_rows), size=min(args.sample, len(first_rows)), replace=False)
    sample = dataset.select(sorted(rows.tolist()))
    encoder = load_encoder(args.model, args.device)
    cache = VectorCache(str(args.cache_dir or args.mined.parent / ".vector-cache"), encoder.identity)
    started = time.time()
    queries = cache.encode(sample["query"], "query", encoder.encode_queries, chunk_size=256)
    codes = cache.encode(sample["positive"], "code", encoder.encode_codes, chunk_size=256)
    report = {
        "mined": str(args.mined), "n": len(sample), "model": encoder.identity,
        "encode_seconds": round(time.time() - started, 1),
        "all": measure_injection(queries, codes, THRESHOLDS, ks=(1, 2, 5), seed=args.seed),
        "by_kind": {}, "by_language_k2": {},
    }
    kinds, languages = np.array(sample["kind"]), np.array(sample["language"])
    for kind in ("docstring", "commit"):
        mask = kinds == kind
        if mask.sum() > 50:
            report["by_kind"][kind] = {"n": int(mask.sum()),
                                       "table": measure_injection(queries[mask], codes[mask], THRESHOLDS, ks=(1, 2, 5), seed=args.seed)}
    for language in sorted(set(languages.tolist())):
        mask = languages == language
        if mask.sum() > 50:
            report["by_language_k2"][language] = {
                "n": int(mask.sum()),
                "table": measure_injection(queries[mask], codes[mask], [0.0, 0.2, 0.3, 0.4], ks=(2,), seed=args.seed)}
    scores = np.einsum("ij,ij->i", queries, codes)
    report["clean_score_percentiles"] = {f"p{p}": float(np.percentile(scores, p)) for p in (5, 10, 25, 50, 75, 90)}
    emit_report(report, args.out)


if __name__ == "__main__":
    main()
