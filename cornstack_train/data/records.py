"""The one on-disk format every stage reads and writes: a ``datasets`` dataset plus ``stats.json``.

Stages hand each other datasets, never ad-hoc files, so a run of any size
(tens of thousands of pairs here, millions on a cluster) goes through the same
code. A stage directory appears only when the stage has finished: it is written
to a sibling temp directory and renamed into place, so an interrupted run never
leaves a half-written stage that a later stage would trust.

Columns shared by the stages (a later stage keeps the earlier columns):

- ``mine``:      id, query, positive, kind ("docstring" | "commit"), language,
                 repo, path, name, source
- ``filter``:    + filter_score (cosine of query and positive), filter_rank
                 (1-based rank of the positive among the other pairs' codes for
                 the query; exact up to the filter's ``--rank-depth``, deeper
                 ranks read depth + 1)
- ``negatives``: + negative_ids (ids of other rows whose ``positive`` is a hard
                 negative for this query), negative_scores (their similarity)
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from indexer.storage.atomic import atomic_replace_dir
from localizer.embedding.shipped import sha256_file

from cornstack_train.errors import TrainingError

PAIR_COLUMNS = ("id", "query", "positive", "kind", "language", "repo", "path", "name", "source")
FILTER_COLUMNS = ("filter_score", "filter_rank")
NEGATIVE_COLUMNS = ("negative_ids", "negative_scores")
STATS_FILE = "stats.json"
DATA_DIR = "data"


class StageError(TrainingError):
    """A stage's input is missing, malformed, or from the wrong stage."""


def stage_complete(out_dir: str | Path) -> bool:
    out = Path(out_dir)
    return (out / STATS_FILE).is_file() and (out / DATA_DIR).is_dir()


def save_stage(dataset: Any, out_dir: str | Path, stats: dict[str, Any], overwrite: bool = False) -> Path:
    """Write ``dataset`` (a ``datasets.Dataset``) and ``stats`` to ``out_dir`` atomically."""
    out = Path(out_dir)
    if out.exists():
        if not overwrite:
            raise StageError(f"{out} already exists; pass overwrite=True (--overwrite) to replace it")
    def write(tmp: Path) -> None:
        dataset.save_to_disk(str(tmp / DATA_DIR))
        (tmp / STATS_FILE).write_text(json.dumps(stats, indent=2, sort_keys=True, default=str) + "\n")

    atomic_replace_dir(out, write)
    return out


def load_stage(in_dir: str | Path, require: tuple[str, ...] = PAIR_COLUMNS):
    """Load a finished stage; a clear error names what is missing instead of a KeyError later."""
    from datasets import load_from_disk

    path = Path(in_dir)
    if not path.exists():
        raise StageError(f"stage directory does not exist: {path}")
    if not stage_complete(path):
        raise StageError(f"{path} is not a finished stage (no {STATS_FILE} and {DATA_DIR}/)")
    dataset = load_from_disk(str(path / DATA_DIR))
    missing = [c for c in require if c not in dataset.column_names]
    if missing:
        raise StageError(f"{path} lacks column(s) {', '.join(missing)}: was it written by the right stage?")
    return dataset


def load_stats(in_dir: str | Path) -> dict[str, Any]:
    return json.loads((Path(in_dir) / STATS_FILE).read_text())


def sha256_tree(root: str | Path) -> str:
    """One hash over every file under ``root`` (relative path and content), independent of listing order.

    Model cards and run records carry it for the stage data they were trained or scored on, so
    a figure can be traced to the exact data behind it.
    """
    root = Path(root)
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(root)).encode() + b"\0")
        digest.update(sha256_file(path).encode())
    return digest.hexdigest()
