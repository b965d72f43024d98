"""A fresh ``localize --rerank`` per issue: what reranking the top 20 costs, model load included.

Issue #25's target: rerank the top 20 in at most 10 s per issue on a 2-core machine, model load
included. So every timed call is a new process, as a user's or a git hook's would be:

    python benchmarks/bench_rerank.py --repo /work/repos/pallets__flask --adapter WORK/train/adapter \
        --data ../shared/data/swe-bench-lite.jsonl --out bench-out/rerank-flask.json

1. The issues are the repository's SWE-bench-Lite problem statements when ``--data`` holds any (real
   issue text, the length the prompt budget trims), else its newest commit messages.
2. One untimed ``--no-rerank`` run builds the index cache, so neither side pays for indexing.
3. ``first_use_s``: the first ``--rerank`` run, which may also convert the packaged base model and
   merge the adapter into it (both cached under the index dir for later runs).
4. Then, per issue, a fresh ``--no-rerank`` process and a fresh ``--rerank`` process, alternating so
   that both see the same machine load: the medians, p90s and the median of the per-issue
   difference (what reranking adds).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
if not __package__:  # run as a file (python benchmarks/...py): PEP 366 lets the relative import below resolve
    __package__ = "benchmarks"

from .bench_serve import commit_messages, summary  # noqa: E402
from .bench_static import cpu_name  # noqa: E402
from .report_io import emit_report  # noqa: E402

TARGET_S = 10.0  # issue #25: top 20 reranked within 10 s per issue, model load included


def lite_issues(data: Path, repo_dir: Path, count: int) -> list[str]:
    """Problem statements of the Lite instances of the repository ``repo_dir`` names (``owner__name``)."""
    name = repo_dir.name.replace("__", "/", 1)
    issues = []
    for line in data.read_text().splitlines():
        row = json.loads(line)
        if row.get("repo") == name and row.get("problem_statement"):
            issues.append(row["problem_statement"])
    return issues[:count]


def run_localize(repo: Path, issue_file: Path, flags: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "localizer.cli", "--repo", str(repo), "--issue", str(issue_file),
                    "--format", "json", "--quiet", *flags], check=True, capture_output=True, cwd=ROOT)
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repo", type=Path, required=True, help="A git repository (work tree or bare).")
    parser.add_argument("--adapter", default=None, help="Reranker adapter directory [default: the shipped one].")
    parser.add_argument("--data", type=Path, default=None, help="SWE-bench-Lite .jsonl: take the issues from it.")
    parser.add_argument("--issues", type=int, default=5, help="How many issues to time.")
    parser.add_argument("--index-dir", type=Path, default=None, help="Index cache [default: localize's].")
    parser.add_argument("--out", type=Path, default=None, help="Write the report here as JSON too.")
    args = parser.parse_args(argv)

    issues = lite_issues(args.data, args.repo, args.issues) if args.data else []
    source = "swe-bench-lite problem statements" if issues else "commit messages"
    issues = issues or commit_messages(args.repo, args.issues)
    common = ["--rev", "HEAD"] + (["--index-dir", str(args.index_dir)] if args.index_dir else [])
    rerank = [*common, "--rerank"] + (["--reranker-adapter", args.adapter] if args.adapter else [])
    plain = [*common, "--no-rerank"]
    report: dict[str, Any] = {"date": date.today().isoformat(), "machine": cpu_name(), "repo": str(args.repo),
                              "adapter": args.adapter or "shipped", "issues": len(issues), "issue_source": source,
                              "target_s": TARGET_S}
    with tempfile.TemporaryDirectory() as tmp:
        files = []
        for i, text in enumerate(issues):
            path = Path(tmp) / f"issue-{i}.md"
            path.write_text(text)
            files.append(path)
        report["index_build_s"] = round(run_localize(args.repo, files[0], plain), 2)
        report["first_use_s"] = round(run_localize(args.repo, files[0], rerank), 2)
        without, with_rerank = [], []
        for path in files:
            without.append(run_localize(args.repo, path, plain))
            with_rerank.append(run_localize(args.repo, path, rerank))
    report["no_rerank"] = summary(without)
    report["rerank"] = summary(with_rerank)
    report["rerank_adds_median_s"] = round(statistics.median(r - w for r, w in zip(with_rerank, without)), 3)
    report["within_target"] = report["rerank"]["p90_s"] <= TARGET_S
    emit_report(report, args.out)
    return report


if __name__ == "__main__":
    main()
