"""``localize serve`` through MCP: warm ``localize`` latency, and how soon a one-file edit is served.

Issue #27's targets: a warm ``localize`` through MCP within 0.3 s without reranking (django), and an
answer from the fresh code within 2 s of a one-file edit.

    python benchmarks/bench_serve.py --repo /work/repos/pallets__flask --out bench-out/serve-flask.json

1. ``--repo`` is only read: a ``git clone --shared`` of it, with a checkout, in a temp dir is what
   the server watches and what the edits change (so bare mirrors work too).
2. ``localize serve`` on the clone, over stdio through the official SDK client: the time to the
   first answer (the index build included: cold unless ``--index-dir`` already holds the cache).
3. Warm: ``--calls`` ``localize`` calls one after another (the issues are the repository's newest
   commit messages), timed at the client: median, p90, min, max.
4. Baseline: one fresh ``localize --format json`` process on the first issue with the same index
   cache, i.e. what a call costs without the server.
5. Time to fresh: ``--edits`` times, a function with a unique name is appended to a Python file
   (the top-ranked file of the first answer); the time from the write until ``localize`` returns
   the new function in its top 10, with the server's own refresh time beside it. ``index_status`` is
   polled every ``--poll`` seconds and ``localize`` asked once a new snapshot is in (polling with
   ``localize`` itself would compete with the refresh it waits for).
6. With ``--commits N``, the same for N committed edits: the server sees a new HEAD (its history
   gains the commit) exactly when the post-commit hook would have refreshed, so this is the hook's
   path through a warm server (the hook defers to it, ``localizer.hooks.lease``).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import string
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
if not __package__:  # run as a file (python benchmarks/...py): PEP 366 lets the relative import below resolve
    __package__ = "benchmarks"

import anyio  # noqa: E402
from mcp import ClientSession, StdioServerParameters, stdio_client  # noqa: E402

from .bench_static import cpu_name  # noqa: E402
from .report_io import emit_report  # noqa: E402


def clone(repo: Path, work: Path) -> Path:
    """A checkout of ``repo``'s HEAD sharing its objects: cheap, and the edits never touch ``repo``."""
    target = work / "clone"
    subprocess.run(["git", "clone", "-q", "--shared", str(repo), str(target)], check=True)
    return target


def commit_messages(repo: Path, count: int) -> list[str]:
    out = subprocess.run(["git", "-C", str(repo), "log", "--no-merges", f"-n{count}", "--format=%s%n%n%b%x00"],
                         check=True, capture_output=True, text=True).stdout
    return [m.strip() for m in out.split("\0") if len(m.strip()) > 20] or ["fix a crash in the main module"]


def unique_name(rng: random.Random) -> str:
    """A function name made of sub-words no repository has, so only the edit can rank first."""
    words = ["".join(rng.choice(string.ascii_lowercase) for _ in range(7)) for _ in range(3)]
    return "_".join(words)


def payload(result) -> dict[str, Any]:
    if result.is_error:
        raise RuntimeError(result.content[0].text)
    return json.loads(result.content[0].text)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def summary(values: list[float]) -> dict[str, float]:
    return {"median_s": round(statistics.median(values), 4), "p90_s": round(percentile(values, 0.9), 4),
            "min_s": round(min(values), 4), "max_s": round(max(values), 4), "n": len(values)}


def cli_baseline(work_tree: Path, server_args: list[str], issue: str, work: Path) -> float:
    """One fresh ``localize`` process on a warm cache: the per-call cost the server removes."""
    issue_file = work / "issue.md"
    issue_file.write_text(issue)
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "localizer.cli", "--repo", str(work_tree), "--issue", str(issue_file),
                    "--format", "json", "--quiet", *server_args], check=True, capture_output=True, cwd=ROOT)
    return time.perf_counter() - started


async def measure(args: argparse.Namespace, work_tree: Path, server_args: list[str], issues: list[str],
                  report: dict[str, Any]) -> None:
    params = StdioServerParameters(command=sys.executable,
                                   args=["-m", "localizer.cli", "serve", "--repo", str(work_tree), *server_args],
                                   cwd=str(ROOT), env={"TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1"})
    started = time.perf_counter()
    with open(args.server_log, "w") if args.server_log else open(os.devnull, "w") as errlog:
        async with stdio_client(params, errlog=errlog) as (read, write), ClientSession(read, write) as client:
            await client.initialize()
            report["initialize_s"] = round(time.perf_counter() - started, 3)
            call = {"issue": issues[0], "top_k": 10}
            while True:  # the server answers "still being built" after a minute of a cold build: ask again
                result = await client.call_tool("localize", call)
                if not (result.is_error and "still being built" in result.content[0].text):
                    break
                if time.perf_counter() - started > args.ready_timeout:
                    raise RuntimeError(f"no index after {args.ready_timeout} s: {result.content[0].text}")
                await anyio.sleep(1.0)
            first = payload(result)
            report["first_answer_s"] = round(time.perf_counter() - started, 3)
            status = payload(await client.call_tool("index_status", {}))
            report["index"] = {key: status.get(key) for key in ("files", "chunks", "functions", "commit", "model")}
            report["index"]["history_commits"] = (status.get("history") or {}).get("commits")
            report["index"]["watch"] = status["watch"]["mode"]

            latencies = []
            for i in range(args.calls):
                t = time.perf_counter()
                payload(await client.call_tool("localize", {"issue": issues[i % len(issues)], "top_k": 10}))
                latencies.append(time.perf_counter() - t)
            report["warm_localize"] = summary(latencies)

            target = next((f["path"] for f in first["files"] if f["path"].endswith(".py")), None)
            if target is None:
                report["time_to_fresh"] = {"skipped": "no Python file among the first answer's files"}
                return
            path = work_tree / target
            original = path.read_text(encoding="utf-8", errors="surrogateescape")
            rng = random.Random(args.seed)
            fresh, refresh, per_edit = await edits_served(client, args, path, original, rng, commit=False)
            report["refreshes_per_edit"] = per_edit
            path.write_text(original, encoding="utf-8", errors="surrogateescape")
            report["time_to_fresh"] = {"file": target, **summary(fresh), "server_refresh": summary(refresh)}
            if args.commits:
                await anyio.sleep(0.5)
                fresh, refresh, per_edit = await edits_served(client, args, path, original, rng, commit=True)
                report["time_to_fresh_commit"] = {"file": target, **summary(fresh), "server_refresh": summary(refresh),
                                                  "refreshes_per_commit": per_edit}


async def edits_served(client: ClientSession, args: argparse.Namespace, path: Path, original: str,
                       rng: random.Random, commit: bool) -> tuple[list[float], list[float], list[int]]:
    """Seconds from each edit (``--edits`` of them; committed with ``commit``, as the post-commit hook
    sees it) until ``localize`` returns the new function in its top 10 (the learned ranker may put a
    long function above a one-line match of a nonsense query: freshness is the question here, not rank); the server's refresh seconds; refreshes per edit."""
    fresh, refresh, per_edit = [], [], []
    for _ in range(args.commits if commit else args.edits):
        name = unique_name(rng)
        before = payload(await client.call_tool("index_status", {}))["generation"]
        path.write_text(original + f"\n\ndef {name}(value):\n    return value\n", encoding="utf-8",
                        errors="surrogateescape")
        head = None
        if commit:
            subprocess.run(["git", "-C", str(path.parent), "commit", "-q", "-a", "-m", f"Fix {name.replace('_', ' ')}"],
                           check=True, env={**os.environ, "GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "b@x",
                                            "GIT_COMMITTER_NAME": "bench", "GIT_COMMITTER_EMAIL": "b@x"})
            head = subprocess.run(["git", "-C", str(path.parent), "rev-parse", "HEAD"], check=True,
                                  capture_output=True, text=True).stdout.strip()
        written = time.perf_counter()
        while True:  # index_status is cheap: polling with localize would slow the refresh it waits for
            status = payload(await client.call_tool("index_status", {}))
            if status["generation"] > before and not status["refreshing"] and (head is None or status["commit"] == head):
                answer = payload(await client.call_tool(
                    "localize", {"issue": name.replace("_", " "), "top_k": 10, "level": "function"}))
                if any(function["name"] == name for function in answer["functions"]):
                    fresh.append(time.perf_counter() - written)
                    break
            if time.perf_counter() - written > args.fresh_timeout:
                raise RuntimeError(f"the edit was not served within {args.fresh_timeout} s")
            await anyio.sleep(args.poll)
        status = payload(await client.call_tool("index_status", {}))
        refresh.append(status["last_refresh"]["seconds"])
        per_edit.append(status["generation"] - before)
        await anyio.sleep(0.5)  # let the watcher settle before the next edit
    return fresh, refresh, per_edit


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repo", type=Path, required=True, help="A git repository (bare mirrors too); only read.")
    parser.add_argument("--retriever", default="bm25", choices=["bm25", "dense", "hybrid"])
    parser.add_argument("--model", default=None, help="The embedder for dense/hybrid [default: localize's].")
    parser.add_argument("--ranker", default=None, help="learned, boosts, history or a ranker file [default: localize's].")
    parser.add_argument("--index-dir", type=Path, default=None,
                        help="An index cache to reuse (the clone keeps the repository's blobs, so it hits) "
                             "[default: a fresh one in the temp dir: the first answer includes a cold build].")
    parser.add_argument("--rerank", action="store_true", help="Serve with the listwise LLM reranker on.")
    parser.add_argument("--reranker-adapter", default=None, help="A LoRA adapter for --rerank.")
    parser.add_argument("--calls", type=int, default=30, help="Warm localize calls to time.")
    parser.add_argument("--edits", type=int, default=3, help="One-file edits to time.")
    parser.add_argument("--commits", type=int, default=0,
                        help="Committed one-file edits to time as well (a new HEAD: the post-commit hook's path).")
    parser.add_argument("--poll", type=float, default=0.05, help="Seconds between index_status calls after an edit.")
    parser.add_argument("--fresh-timeout", type=float, default=60.0)
    parser.add_argument("--ready-timeout", type=float, default=1800.0, help="Seconds to wait for the first answer.")
    parser.add_argument("--no-cli-baseline", action="store_true", help="Skip timing one fresh localize process.")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--server-log", type=Path, default=None, help="Keep the server's stderr here.")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-serve-") as tmp:
        work = Path(tmp)
        started = time.perf_counter()
        work_tree = clone(args.repo.resolve(), work)
        index_dir = args.index_dir or work / "index"
        server_args = ["--retriever", args.retriever, "--index-dir", str(index_dir)]
        if args.model:
            server_args += ["--model", args.model]
        if args.ranker:
            server_args += ["--ranker", args.ranker]
        server_args += ["--rerank" if args.rerank else "--no-rerank"]
        if args.reranker_adapter:
            server_args += ["--reranker-adapter", args.reranker_adapter]
        issues = commit_messages(work_tree, max(args.calls, 1))
        report: dict[str, Any] = {
            "benchmark": "serve", "repo": str(args.repo), "retriever": args.retriever, "model": args.model,
            "rerank": args.rerank, "reranker_adapter": args.reranker_adapter,
            "ranker": args.ranker or "default",
            "cpu": cpu_name(), "cpus": os.cpu_count(), "clone_s": round(time.perf_counter() - started, 3),
            "index_dir": "temp (cold)" if args.index_dir is None else str(index_dir),
        }
        anyio.run(measure, args, work_tree, server_args, issues, report)
        if not args.no_cli_baseline:
            report["cli_localize_s"] = round(cli_baseline(work_tree, server_args, issues[0], work), 3)
    emit_report(report, args.out)


if __name__ == "__main__":
    main()
