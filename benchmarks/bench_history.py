"""What the history index costs: a cold build, the incremental update after one commit, and per query.

Issue #23's cost targets, measured on one repository (django where it can be had):

  1. cold: the history of the newest ``--commits`` non-merge commits into an empty store (<= 60 s);
  2. incremental: one new commit on top, into the same store (<= 2 s; what the post-commit hook pays);
  3. query overhead: what a ``localize`` process adds for history, i.e. loading the window from the
     store, arranging it (:class:`~localizer.history.view.HistoryView`) and the per-issue signals
     and features, next to the same query without history (<= 0.2 s).

The new commit is made with plumbing in a ``--shared`` clone (no checkout, no copy of objects):
one Python file of HEAD gets one changed line inside a function, so the commit has a real diff.
Issues are the Lite problem statements of the repository when ``--data`` has any, else its commit
messages.

Usage:
  python benchmarks/bench_history.py --repo /work/repos/sympy__sympy --out bench-out/history-sympy.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
if not __package__:  # run as a file (python benchmarks/...py): PEP 366 lets the relative import below resolve
    __package__ = "benchmarks"

from .bench_static import DEFAULT_DATA, cpu_name  # noqa: E402
from .report_io import emit_report  # noqa: E402
from indexer.git.runner import run_git  # noqa: E402
from indexer.history.build import HistoryConfig, build_history  # noqa: E402
from indexer.index import IndexConfig  # noqa: E402
from indexer.storage.store import SQLiteStore  # noqa: E402
from localizer.config import LocalizeConfig  # noqa: E402
from localizer.history.signals import history_signals  # noqa: E402
from localizer.history.view import HistoryView  # noqa: E402
from localizer.learned.features import build_candidates  # noqa: E402
from localizer.pipeline import RankingPipeline  # noqa: E402
from localizer.retrieval.query import build_query  # noqa: E402
from localizer.retrieval.ranking import mentioned_files  # noqa: E402


def timed(fn):
    started = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - started


def one_commit_on_top(repo: Path, work: Path) -> Path:
    """A ``--shared`` clone of ``repo`` with one more commit that changes one line of a Python function."""
    clone = work / "clone"
    subprocess.run(["git", "clone", "-q", "--shared", "--no-checkout", str(repo), str(clone)], check=True)
    files = run_git(["ls-tree", "-r", "--name-only", "HEAD"], repo=clone, text=True).stdout.split()
    path = next(p for p in files if p.endswith(".py") and "/test" not in p and p.count("/") >= 1
                and "def " in run_git(["show", f"HEAD:{p}"], repo=clone, text=True).stdout)
    text = run_git(["show", f"HEAD:{path}"], repo=clone, text=True).stdout
    lines = text.split("\n")
    at = next(i for i, line in enumerate(lines) if line.lstrip().startswith("def ")) + 1
    lines.insert(at, lines[at][: len(lines[at]) - len(lines[at].lstrip())] + "pass  # benchmark edit")
    blob = run_git(["hash-object", "-w", "--stdin"], repo=clone, input="\n".join(lines), text=True).stdout.strip()
    run_git(["read-tree", "HEAD"], repo=clone)
    run_git(["update-index", "--cacheinfo", f"100644,{blob},{path}"], repo=clone)
    tree = run_git(["write-tree"], repo=clone, text=True).stdout.strip()
    env = {"GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "b@e", "GIT_COMMITTER_NAME": "bench",
           "GIT_COMMITTER_EMAIL": "b@e", "PATH": "/usr/bin:/bin:/usr/local/bin"}
    commit = run_git(["commit-tree", tree, "-p", "HEAD", "-m", "Fix the benchmark edit"], repo=clone, text=True,
                     env=env).stdout.strip()
    run_git(["update-ref", "HEAD", commit], repo=clone)
    return clone


def issues_for(repo: Path, data: Path, limit: int) -> list[str]:
    name = repo.name.replace("__", "/")
    texts = []
    if data.exists():
        for line in data.read_text().splitlines():
            record = json.loads(line)
            if record.get("repo") == name:
                texts.append(record["problem_statement"])
    if not texts:
        log = run_git(["log", "--no-merges", f"-n{limit}", "--format=%B%x00", "HEAD"], repo=repo, text=True).stdout
        texts = [t.strip() for t in log.split("\x00") if t.strip()]
    return texts[:limit]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repo", type=Path, required=True, help="a git repository (a bare mirror is fine)")
    parser.add_argument("--commits", type=int, default=HistoryConfig.max_commits, help="history window")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="Lite jsonl, for the issues")
    parser.add_argument("--queries", type=int, default=20)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    config = HistoryConfig(max_commits=args.commits)
    report: dict = {"repo": str(args.repo), "commits": args.commits, "machine": cpu_name(),
                    "date": time.strftime("%Y-%m-%d")}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        store = SQLiteStore(work / "index")
        try:
            cold, report["cold_s"] = timed(lambda: build_history(args.repo, None, store, config))
            report["records"], report["computed"] = len(cold.records), cold.computed
            warm, report["warm_load_s"] = timed(lambda: build_history(args.repo, None, store, config))
            clone = one_commit_on_top(args.repo, work)
            incremental, report["incremental_s"] = timed(lambda: build_history(clone, None, store, config))
            report["incremental_computed"] = incremental.computed
        finally:
            store.close()

        def arranged() -> HistoryView:
            view = HistoryView(warm)
            view.similar(["warm"], 1)  # builds its message BM25, which the first query of a process pays
            return view

        view, report["view_s"] = timed(arranged)
        pipeline = RankingPipeline(LocalizeConfig(index=IndexConfig(index_dir=work / "index"), ranker="boosts",
                                                  history=None))
        index = pipeline.build_index(args.repo)
        retriever = pipeline.retriever(index)
        per_query = []
        for text in issues_for(args.repo, args.data, args.queries):
            query = build_query(text)
            scores = retriever.score(query)
            started = time.perf_counter()
            signals = history_signals(view, query.terms, mentioned_files(query, scores.files))
            with_history = build_candidates(query, scores, index.chunks, signals)
            middle = time.perf_counter()
            build_candidates(query, scores, index.chunks, None)
            ended = time.perf_counter()
            per_query.append((middle - started) - (ended - middle))
            del with_history
        report["queries"] = len(per_query)
        report["signals_median_s"] = round(statistics.median(per_query), 4) if per_query else None
        report["query_overhead_s"] = round(report["warm_load_s"] + report["view_s"]
                                           + (report["signals_median_s"] or 0.0), 3)
    for key in ("cold_s", "warm_load_s", "incremental_s", "view_s"):
        report[key] = round(report[key], 3)
    emit_report(report, args.out)


if __name__ == "__main__":
    main()
