"""What hybrid with a static embedder costs next to BM25 alone, through the CLI, as ratios from one run.

Issue #24's targets are ratios, so that a loaded or slower machine moves both sides alike:

  1. cold index: ``localize index --retriever hybrid --model STATIC`` over ``localize index
     --retriever bm25``, each into an empty cache: <= 2x;
  2. warm query: ``localize --issue`` the same way, each on its own warm cache, median of
     ``--repeats`` runs: <= 2x.

Both sides run as fresh processes, so imports and model loading count as a user sees them.
Runs alternate (bm25, static, bm25, ...) so that drift in machine load hits both sides.
A third column times hybrid with the transformer (``--model localizer-cornstack``) for
reference when ``--transformer`` is given (minutes cold on a large repository).

Usage (a bare git dir, e.g. from the search tool's fetch; django where it can be had; --static is
a static model directory, e.g. a `cornstack-train train` run's static/, or localizer-static where the
build ships one):
  python benchmarks/bench_static.py --repo /work/repos/sympy__sympy --instance sympy__sympy-20590 \
      --static runs/static/static --out bench-out/static-sympy.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
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

from .report_io import emit_report  # noqa: E402
from indexer.git.runner import run_git  # noqa: E402

DEFAULT_DATA = ROOT.parent / "shared" / "data" / "swe-bench-lite.jsonl"


def cpu_name() -> str:
    """The CPU model and whether it runs bf16 natively (what --backend auto decides on)."""
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or "unknown"
    name = next((line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name")), "?")
    flags = next((line.split(":", 1)[1].split() for line in info.splitlines() if line.startswith("flags")), [])
    native = [f for f in ("avx512_bf16", "amx_bf16") if f in flags]
    return f"{name} ({', '.join(native) or 'no native bf16'})"


def timed_run(command: list[str]) -> float:
    started = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"failed: {' '.join(command)}\n{result.stderr}")
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repo", type=Path, required=True, help="bare git dir or clone of the repository")
    parser.add_argument("--instance", required=True, help="SWE-bench instance whose base commit and issue to use")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--repeats", type=int, default=5, help="warm queries timed per side (median reported)")
    parser.add_argument("--static", required=True, help="the static model to time (a directory or localizer-static)")
    parser.add_argument("--transformer", action="store_true",
                        help="also time hybrid with the shipped transformer embedder (localizer-cornstack)")
    parser.add_argument("--localize", default=shutil.which("localize") or "localize", help="the CLI to time")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()

    instances = [json.loads(line) for line in args.data.read_text().splitlines() if line.strip()]
    instance = next(i for i in instances if i["instance_id"] == args.instance)
    workdir = Path(tempfile.mkdtemp(prefix="bench-static-"))
    sides = {"bm25": ["--retriever", "bm25"], "static": ["--retriever", "hybrid", "--model", args.static]}
    if args.transformer:
        sides["hybrid-transformer"] = ["--retriever", "hybrid", "--model", "localizer-cornstack"]
    report: dict = {
        "instance": args.instance, "commit": instance["base_commit"],
        "static": args.static,
        "machine": f"{cpu_name()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "date": time.strftime("%Y-%m-%d"),
        "command": " ".join(sys.argv),
    }
    try:
        repo = workdir / "checkout"
        run_git(["clone", "-q", "--shared", "--no-checkout", str(args.repo), str(repo)])
        run_git(["checkout", "-q", instance["base_commit"]], repo=repo)
        issue = workdir / "issue.md"
        issue.write_text(instance["problem_statement"])
        base = [args.localize, "--repo", str(repo), "-q"]

        cold = {}
        for name, flags in sides.items():
            cold[name] = round(timed_run([args.localize, "index", "--repo", str(repo), "-q", *flags,
                                          "--index-dir", str(workdir / f"idx-{name}")]), 2)
            print(f"cold {name}: {cold[name]} s", file=sys.stderr, flush=True)
        warm: dict[str, list[float]] = {name: [] for name in sides}
        for _ in range(args.repeats):
            for name, flags in sides.items():
                warm[name].append(timed_run([*base, "--issue", str(issue), "--format", "json", *flags,
                                             "--index-dir", str(workdir / f"idx-{name}")]))
        report["cold_index_s"] = cold
        report["warm_query_s"] = {name: round(statistics.median(times), 3) for name, times in warm.items()}
        report["warm_query_all_s"] = {name: [round(t, 3) for t in times] for name, times in warm.items()}
        report["ratios"] = {
            "cold_static_over_bm25": round(cold["static"] / cold["bm25"], 2),
            "warm_static_over_bm25": round(report["warm_query_s"]["static"] / report["warm_query_s"]["bm25"], 2),
        }
        if args.transformer:
            report["ratios"]["cold_transformer_over_bm25"] = round(cold["hybrid-transformer"] / cold["bm25"], 2)
            report["ratios"]["warm_transformer_over_bm25"] = round(
                report["warm_query_s"]["hybrid-transformer"] / report["warm_query_s"]["bm25"], 2)
        report["targets_met"] = {"cold <= 2x": report["ratios"]["cold_static_over_bm25"] <= 2.0,
                                 "warm <= 2x": report["ratios"]["warm_static_over_bm25"] <= 2.0}
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    emit_report(report, args.out)


if __name__ == "__main__":
    main()
