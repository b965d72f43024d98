"""Our gold-function rules single out exactly CoRNStack's 274 SWE-bench Lite instances.

Needs the 12 SWE-bench repositories as (bare) git clones under
``$LOCALIZER_REPOS_DIR`` (default: ``../repos`` next to the project) and the
Lite data under ``$LOCALIZER_DATA_DIR`` (default: ``../shared/data``):
``swe-bench-lite.jsonl`` and ``swe-bench-lite-cornstack-274.txt``.
Run with ``python -m pytest -m realrepo tests/benchmarks/test_gold_274.py -q``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from benchmarks.swebench.gold import git_blob_reader, gold_labels

pytestmark = pytest.mark.realrepo

PROJECT_ROOT = Path(__file__).resolve().parents[2]
REPOS_DIR = Path(os.environ.get("LOCALIZER_REPOS_DIR", PROJECT_ROOT.parent / "repos"))
DATA_DIR = Path(os.environ.get("LOCALIZER_DATA_DIR", PROJECT_ROOT.parent / "shared" / "data"))
LITE = DATA_DIR / "swe-bench-lite.jsonl"
CORNSTACK_IDS = DATA_DIR / "swe-bench-lite-cornstack-274.txt"


def _load() -> tuple[list[dict], set[str]]:
    if not LITE.is_file() or not CORNSTACK_IDS.is_file():
        pytest.skip(f"SWE-bench Lite data not found in {DATA_DIR} (set LOCALIZER_DATA_DIR)")
    if not REPOS_DIR.is_dir():
        pytest.skip(f"SWE-bench repositories not found in {REPOS_DIR} (set LOCALIZER_REPOS_DIR)")
    with LITE.open(encoding="utf-8") as f:
        instances = [json.loads(line) for line in f if line.strip()]
    missing = sorted({i["repo"] for i in instances if not (REPOS_DIR / i["repo"].replace("/", "__")).is_dir()})
    if missing:
        pytest.skip(f"repositories missing from {REPOS_DIR}: {', '.join(missing)}")
    expected = set(CORNSTACK_IDS.read_text(encoding="utf-8").split())
    return instances, expected


def test_instances_with_gold_functions_are_cornstacks_274() -> None:
    instances, expected = _load()
    assert len(instances) == 300 and len(expected) == 274

    readers = {}
    with_functions: set[str] = set()
    try:
        for instance in instances:
            repo = instance["repo"]
            if repo not in readers:
                readers[repo] = git_blob_reader(REPOS_DIR / repo.replace("/", "__"))
            labels = gold_labels(instance, readers[repo])
            assert labels.files, f"{instance['instance_id']}: no gold file"
            if labels.functions:
                with_functions.add(instance["instance_id"])
    finally:
        for reader in readers.values():
            reader.close()

    assert with_functions == expected, (
        f"missing from ours: {sorted(expected - with_functions)}; "
        f"not in CoRNStack's list: {sorted(with_functions - expected)}"
    )
