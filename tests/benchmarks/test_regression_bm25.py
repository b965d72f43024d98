"""Regression pins for the BM25 figures on SWE-bench Lite, in the manner of pyserini's regressions.

A refactor must not move a measured number. These runs go through ``localize-bench``'s
:class:`Harness`, i.e. the product's ranking pipeline, and compare every column with the figures
recorded in ``benchmarks/RESULTS.md``. They need the SWE-bench repositories as git dirs under
``$LOCALIZER_REPOS_DIR`` (default ``../repos``) and the Lite data under ``$LOCALIZER_DATA_DIR``
(default ``../shared/data``), and they skip, naming what is missing, when those are absent.
``$LOCALIZER_BENCH_INDEX_DIR`` reuses an index cache across runs.

    python -m pytest -m realrepo tests/benchmarks/test_regression_bm25.py -q

- The paper's 274 ids with the paper's corpus (``--corpus protocol``): the figures every earlier
  BM25 result in RESULTS.md was measured with. About 17 minutes cold on two cores.
- The 140 Lite instances of the nine repositories whose snapshots could be fetched here (all but
  django, matplotlib and scikit-learn; ``benchmarks/swebench/lite-9-repos-140.txt``), with both
  corpora. About 5 minutes each cold.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from benchmarks.swebench.run import Harness, HarnessConfig, parse_systems

pytestmark = pytest.mark.realrepo

PROJECT_ROOT = Path(__file__).resolve().parents[2]
REPOS_DIR = Path(os.environ.get("LOCALIZER_REPOS_DIR", PROJECT_ROOT.parent / "repos"))
DATA_DIR = Path(os.environ.get("LOCALIZER_DATA_DIR", PROJECT_ROOT.parent / "shared" / "data"))
LITE = DATA_DIR / "swe-bench-lite.jsonl"
NINE_REPOS_IDS = PROJECT_ROOT / "benchmarks" / "swebench" / "lite-9-repos-140.txt"
INDEX_DIR = os.environ.get("LOCALIZER_BENCH_INDEX_DIR")  # reuse a warm cache; default: a fresh one per run
COLUMNS = ("files@1", "files@3", "files@5", "functions@5", "functions@10")

# (ids file, corpus, subset of the report, system) -> pinned figures, in COLUMNS order. bm25:boosts is
# BM25 with the hand-set boosts, the default before the learned ranker; bm25 is today's default (the
# shipped learned ranker with history; benchmarks/RESULTS.md, "History and the learned ranker", refitted
# on the 97 repositories the licence gate passes).
PINS = {
    "cornstack-274-protocol": (DATA_DIR / "swe-bench-lite-cornstack-274.txt", "protocol", "cornstack274",
                               "bm25:boosts", (52.9, 73.0, 77.4, 48.5, 58.4)),
    "nine-repos-140-protocol": (NINE_REPOS_IDS, "protocol", "all", "bm25:boosts", (47.9, 70.0, 74.3, 45.3, 51.6)),
    "nine-repos-140-product": (NINE_REPOS_IDS, "product", "all", "bm25:boosts", (47.9, 71.4, 74.3, 45.3, 51.6)),
    "nine-repos-140-product-default": (NINE_REPOS_IDS, "product", "all", "bm25", (55.7, 70.0, 77.9, 48.4, 54.7)),
}


def _require(ids_file: Path) -> None:
    if not LITE.is_file() or not ids_file.is_file():
        pytest.skip(f"SWE-bench Lite data not found ({LITE}, {ids_file}); set LOCALIZER_DATA_DIR")
    wanted = set(ids_file.read_text().split())
    repos = {json.loads(line)["repo"] for line in LITE.read_text().splitlines()
             if line.strip() and json.loads(line)["instance_id"] in wanted}
    missing = sorted(r for r in repos if not (REPOS_DIR / r.replace("/", "__")).is_dir())
    if missing:
        pytest.skip(f"repositories missing from {REPOS_DIR}: {', '.join(missing)} (set LOCALIZER_REPOS_DIR)")


@pytest.mark.parametrize("pin", sorted(PINS))
def test_bm25_figures_do_not_move(pin, tmp_path):
    ids_file, corpus, subset, system, expected = PINS[pin]
    _require(ids_file)
    config = HarnessConfig(data=str(LITE), repos_dir=REPOS_DIR, out=tmp_path / "out",
                           systems=parse_systems([system], []), ids_file=ids_file, index_dir=Path(INDEX_DIR) if INDEX_DIR else tmp_path / "idx",
                           clone=False, corpus=corpus)
    metrics = Harness(config).run()
    assert not (tmp_path / "out" / "errors.jsonl").exists()
    measured = metrics[system][subset]
    assert tuple(measured[column] for column in COLUMNS) == expected
