"""Indexing and query speed on a real repository (the issue's django snapshot by default).

Measures, in one process on this machine:
  1. chunk counts;
  2. cold index time, BM25 only and dense with the default model;
  3. the pure encoder time for the same chunk texts;
  4. re-index time after a one-file change;
  5. warm query latency per retriever (in-process, and end-to-end through the CLI);
  6. peak memory (max RSS).

Usage (the repo is a bare git dir, e.g. from the search tool's fetch):
  python benchmarks/bench_index.py --repo /work/.mirror/swe-bench+django__django/repo \
      --instance django__django-11099 --out bench-out/index-django.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
if not __package__:  # run as a file (python benchmarks/...py): PEP 366 lets the relative import below resolve
    __package__ = "benchmarks"

from .report_io import emit_report  # noqa: E402
from indexer.git.runner import run_git  # noqa: E402
from indexer.index import IndexConfig, build_index  # noqa: E402
from localizer.api import LocalizeConfig, Localizer  # noqa: E402
from localizer.embedding.embedder import Embedder  # noqa: E402
from localizer.retrieval.retrievers import BM25Retriever  # noqa: E402

DEFAULT_DATA = ROOT.parent / "shared" / "data" / "swe-bench-lite.jsonl"


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def load_instances(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def checkout(bare: Path, commit: str, workdir: Path) -> Path:
    target = workdir / "checkout"
    run_git(["clone", "-q", "--shared", "--no-checkout", str(bare), str(target)])
    run_git(["checkout", "-q", commit], repo=target)
    return target


def edit_one_function(repo: Path, relpath: str) -> None:
    """Change one line inside one function, as a typical one-file fix does."""
    path = repo / relpath
    lines = path.read_text().splitlines(keepends=True)
    for i, line in enumerate(lines):
        if line.lstrip().startswith("def ") and i + 1 < len(lines):
            indent = len(lines[i + 1]) - len(lines[i + 1].lstrip())
            lines.insert(i + 1, " " * indent + "pass  # benchmark edit\n")
            break
    path.write_text("".join(lines))


def timed(fn):
    started = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repo", type=Path, required=True, help="bare git dir or clone of the repository")
    parser.add_argument("--instance", default="django__django-11099", help="SWE-bench instance whose base commit to use")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--edit", default="django/db/models/query.py", help="file changed for the re-index timing")
    parser.add_argument("--queries", type=int, default=20, help="issues (same repo) timed for warm query latency")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()

    instances = load_instances(args.data)
    instance = next(i for i in instances if i["instance_id"] == args.instance)
    issues = [i["problem_statement"] for i in instances if i["repo"] == instance["repo"]][: args.queries]
    report: dict = {
        "instance": args.instance,
        "commit": instance["base_commit"],
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.python_version()}",
        "date": time.strftime("%Y-%m-%d"),
    }
    workdir = Path(tempfile.mkdtemp(prefix="bench-index-"))
    try:
        repo = checkout(args.repo, instance["base_commit"], workdir)

        # 1-2. BM25-only cold index (work tree and straight from git objects).
        config = IndexConfig(index_dir=workdir / "idx-bm25")
        index, seconds = timed(lambda: build_index(repo, encoder=None, config=config))
        _, bm25_build = timed(lambda: BM25Retriever(index))
        kinds = Counter(c.kind for c in index.chunks)
        report["files"] = index.stats.files
        report["skipped"] = index.stats.skipped
        report["chunks"] = {"total": len(index.chunks), **dict(kinds)}
        report["cold_bm25_index_s"] = round(seconds + bm25_build, 2)
        report["cold_bm25_breakdown_s"] = {"list+parse": round(seconds, 2), "bm25 index": round(bm25_build, 2)}
        rev_config = IndexConfig(index_dir=workdir / "idx-bm25-rev")
        _, rev_seconds = timed(lambda: build_index(args.repo, instance["base_commit"], encoder=None, config=rev_config))
        report["cold_bm25_parse_from_git_objects_s"] = round(rev_seconds, 2)
        print(json.dumps(report, indent=2), flush=True)

        # 2. Dense cold index with the default model.
        embedder, load_s = timed(Embedder)
        report["model_load_s"] = round(load_s, 2)
        dense_config = IndexConfig(index_dir=workdir / "idx-dense")
        dense, dense_s = timed(lambda: build_index(repo, encoder=embedder, config=dense_config))
        report["cold_dense_index_s"] = round(dense_s, 2)
        report["cold_dense_breakdown_s"] = {
            "list": round(dense.stats.seconds_listing, 2),
            "parse": round(dense.stats.seconds_parsing, 2),
            "embed (incl. cache writes)": round(dense.stats.seconds_embedding, 2),
        }
        report["embedded_chunks"] = dense.stats.embedded_chunks
        report["peak_rss_after_dense_mib"] = round(peak_rss_mib())
        print(json.dumps(report, indent=2), flush=True)

        # 3. Pure encoder time over the same unique texts, in the same batches.
        texts = sorted({c.text for c in dense.chunks}, key=len, reverse=True)
        _, encode_s = timed(lambda: embedder.encode_documents(texts))
        report["pure_encode_s"] = round(encode_s, 2)
        report["encode_chunks_per_s"] = round(len(texts) / encode_s, 1)
        report["cold_dense_over_pure_encode"] = round(dense_s / encode_s, 3)
        print(json.dumps(report, indent=2), flush=True)

        # 4. Re-index after a one-file change (work tree, dense, warm cache).
        _, warm_s = timed(lambda: build_index(repo, encoder=embedder, config=dense_config))
        report["reindex_no_change_s"] = round(warm_s, 2)
        edit_one_function(repo, args.edit)
        changed, reindex_s = timed(lambda: build_index(repo, encoder=embedder, config=dense_config))
        report["reindex_one_file_s"] = round(reindex_s, 2)
        report["reindex_one_file_work"] = {
            "parsed_files": changed.stats.parsed_files,
            "embedded_chunks": changed.stats.embedded_chunks,
        }

        # 5. Warm query latency, in-process (index in memory) and through the CLI.
        latency = {}
        for retriever in ("bm25", "dense", "hybrid"):
            localizer = Localizer(repo, LocalizeConfig(retriever=retriever, index=dense_config),
                                  embedder=embedder)  # share the loaded model
            _, ready_s = timed(lambda: (localizer.index(), localizer.localize(issues[0])))
            times = [timed(lambda: localizer.localize(text))[1] for text in issues]
            latency[retriever] = {
                "index_ready_s": round(ready_s, 2),
                "query_mean_s": round(statistics.mean(times), 3),
                "query_p50_s": round(statistics.median(times), 3),
                "query_max_s": round(max(times), 3),
            }
        report["warm_query"] = latency
        issue_file = workdir / "issue.md"
        issue_file.write_text(issues[0])
        cli = {}
        for retriever in ("bm25", "dense", "hybrid"):
            command = ["localize", "--repo", str(repo), "--issue", str(issue_file), "--retriever", retriever,
                       "--index-dir", str(dense_config.index_dir), "--format", "json", "-q"]
            _, cli_s = timed(lambda: subprocess.run(command, check=True, capture_output=True))
            cli[retriever] = round(cli_s, 2)
        report["warm_cli_end_to_end_s"] = cli
        report["peak_rss_mib"] = round(peak_rss_mib())
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    emit_report(report, args.out)


if __name__ == "__main__":
    main()
