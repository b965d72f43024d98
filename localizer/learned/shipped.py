"""Which ranker a run uses: the learned one shipped in the package, one from a path, or the boosts.

``boosts`` is the hand-set scoring the pipeline had before the learned ranker (retriever scores
scaled to 0-1 plus fixed boosts for what the issue names); it stays available as a baseline and
for builds without a fitted model. ``history`` ranks by similar past fixes alone, ignoring the code:
it shows what history knows by itself.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from indexer.errors import ModelLoadError

from localizer.learned.model import RankerModel

LEARNED = "learned"
BOOSTS = "boosts"
HISTORY_ONLY = "history"  # similar past fixes alone: a diagnostic (the history row of the benchmark)
SHIPPED_RANKER = Path(__file__).resolve().parent.parent / "models" / "ranker" / "ranker.json"


def shipped_ranker_available() -> bool:
    return SHIPPED_RANKER.is_file()


def default_ranker() -> str:
    """The learned ranker where the package ships one, else the boosts."""
    return LEARNED if shipped_ranker_available() else BOOSTS


def load_ranker(name: str) -> RankerModel | None:
    """The model ``name`` refers to; None for the boosts and the history-only ranking."""
    if name in (BOOSTS, HISTORY_ONLY):
        return None
    if name == LEARNED:
        if not shipped_ranker_available():
            raise ModelLoadError(f"this build ships no learned ranker ({SHIPPED_RANKER} is missing); "
                                 f"use --ranker {BOOSTS} or a ranker file")
        return _load(str(SHIPPED_RANKER))
    return _load(str(Path(name).expanduser().resolve()))


@lru_cache(maxsize=4)
def _load(path: str) -> RankerModel:
    return RankerModel.load(path)
