"""How long a history window pays: similar-past-fix ranking alone, per window, on commit queries.

The history window (``--history-commits``) trades cold build time for memory of older fixes. This
measures, on commit-message queries mined from long-lived training repositories (never SWE-bench), how
often history alone puts every changed file in its top k, for each window, through the pipeline's own
``--ranker history``. The default window is the longest whose cold build stays within the cost target
(a django-sized history in 60 s on two cores); benchmarks/RESULTS.md has the figures.

Usage:
  python benchmarks/measure_history_window.py --repos-list docs/history-repos.json --repos-dir train-repos \
      --repo pallets__click ... --windows 500 1000 3000 10000 --out bench-out/history-window.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
if not __package__:
    __package__ = "benchmarks"

from .report_io import emit_report  # noqa: E402
from cornstack_train.ranker.mining import MiningConfig, queries_after, snapshots  # noqa: E402
from indexer.history.build import HistoryConfig  # noqa: E402
from indexer.index import IndexConfig  # noqa: E402
from localizer.config import LocalizeConfig  # noqa: E402
from localizer.pipeline import RankingPipeline  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repos-list", type=Path, required=True)
    parser.add_argument("--repos-dir", type=Path, required=True)
    parser.add_argument("--repo", action="append", required=True, help="owner__name (repeatable)")
    parser.add_argument("--windows", type=int, nargs="+", default=[500, 1000, 3000, 10000])
    parser.add_argument("--index-dir", type=Path, required=True)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    heads = {e["repo"].replace("/", "__"): e["head"] for e in json.loads(args.repos_list.read_text())}
    mining = MiningConfig(offsets=(300,))
    hits = {w: {1: 0, 3: 0, 5: 0, 10: 0} for w in args.windows}
    seconds = {w: 0.0 for w in args.windows}
    total = 0
    for name in args.repo:
        path = args.repos_dir / name
        for snapshot in snapshots(path, mining.offsets, heads[name]):
            queries = queries_after(path, snapshot, mining, HistoryConfig(), heads[name])
            for window in args.windows:
                pipeline = RankingPipeline(LocalizeConfig(index=IndexConfig(index_dir=args.index_dir), ranker="history",
                                                          history=HistoryConfig(max_commits=window)))
                started = time.perf_counter()
                index = pipeline.build_index(path, rev=snapshot)
                seconds[window] += time.perf_counter() - started
                files = {c.path for c in index.chunks if c.kind == "file"}
                for query in queries:
                    gold = {f for f in query.files if f in files}
                    if not gold:
                        continue
                    total += window == args.windows[0]
                    ranked = pipeline.rank(index, query.text).files
                    positions = [ranked.index(f) for f in gold if f in ranked]
                    for k in hits[window]:
                        hits[window][k] += len(positions) == len(gold) and max(positions) < k
    report = {"queries": total, "repos": args.repo,
              "history_alone_file_acc": {w: {f"@{k}": round(100 * v / max(total, 1), 1) for k, v in h.items()}
                                         for w, h in hits.items()},
              "index_seconds": {w: round(s, 1) for w, s in seconds.items()}}
    emit_report(report, args.out)


if __name__ == "__main__":
    main()
