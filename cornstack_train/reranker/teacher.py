"""Stage ``teacher-rank``: target orders for reranker training, from a teacher LLM or gold-anchored.

CoRNStack distils the listwise reranker from a large teacher (Qwen2.5-32B-Instruct) that
ranks each query's positive and hard negatives with the sliding-window procedure. Here the
teacher runs through ``localizer.rerank`` itself (same prompt, windows and parsing as
inference), so any causal LM id, local directory or ``.gguf`` file can teach.

Modes (``teacher_mode``):

* ``teacher``: the teacher's order as it is;
* ``gold-teacher``: the positive first, the rest in the teacher's order (a small teacher's
  mistakes about the one certain fact are overruled);
* ``gold-embedder``: the positive first, the rest in first-stage (embedder) order; needs no
  model at all. Offline on a CPU this is the practical choice: the strongest local teacher,
  Qwen2.5-Coder-1.5B, ranks a window in about a minute here.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass
from typing import Any, Callable, Iterable, Protocol, Sequence

from cornstack_train.reranker.data import Instance, Window, embedder_order, first_stage_window, gold_anchored
from cornstack_train.data.splits import RepoSplit

log = logging.getLogger("cornstack_train.reranker.teacher")

TEACHER_MODES = ("gold-embedder", "gold-teacher", "teacher")
EMBEDDER_TEACHER = "embedder"


class Teacher(Protocol):
    """Ranks windows: for each (query, candidate texts in first-stage order), a best-first order."""

    name: str

    def rank(self, queries: Sequence[str], candidate_lists: Sequence[Sequence[str]]) -> list[list[int]]: ...


class LLMTeacher:
    """A teacher LLM behind ``localizer.rerank.ListwiseReranker`` (its sliding windows and prompt)."""

    def __init__(self, reranker, name: str | None = None) -> None:
        self.reranker = reranker
        self.name = name or str(reranker.config.model)

    def rank(self, queries: Sequence[str], candidate_lists: Sequence[Sequence[str]]) -> list[list[int]]:
        from localizer.rerank import Candidate

        lists = [[Candidate(docid=str(i), text=t, score=float(len(texts) - i)) for i, t in enumerate(texts)]
                 for texts in candidate_lists]
        results = self.reranker.rerank_batch(list(queries), lists)
        # the model's own order (never fused with the input order), then anything below the rerank depth
        return [r.model_order + list(range(len(r.model_order), len(texts))) for r, texts in zip(results, candidate_lists)]


@dataclass(frozen=True)
class TeacherConfig:
    mode: str = "gold-embedder"
    depth: int = 10  # candidates per instance: the positive and depth - 1 hard negatives
    kinds: tuple[str, ...] = ("docstring", "commit")
    exclude_heldout: bool = True  # leave the eval repositories out of training data
    max_instances: int | None = None
    batch_size: int = 4  # queries ranked together by an LLM teacher
    seed: int = 0

    def __post_init__(self) -> None:
        if self.mode not in TEACHER_MODES:
            raise ValueError(f"unknown teacher mode {self.mode!r}; choose one of {', '.join(TEACHER_MODES)}")
        if self.depth < 2:
            raise ValueError("depth must be at least 2 (a positive and a negative)")


def target_order(mode: str, window: Window, teacher_order: Sequence[int] | None) -> list[int]:
    """The training target for one window (pure)."""
    if mode == "gold-embedder":
        return gold_anchored(embedder_order(window.scores), window.positive_index)
    if teacher_order is None:
        raise ValueError(f"mode {mode!r} needs a teacher's order")
    if sorted(teacher_order) != list(range(len(window.candidates))):
        raise ValueError(f"teacher order {list(teacher_order)} is not a permutation of the window")
    if mode == "gold-teacher":
        return gold_anchored(teacher_order, window.positive_index)
    return list(teacher_order)


def select_windows(rows: Iterable[dict[str, Any]], by_id: dict[str, dict[str, Any]], config: TeacherConfig,
                   split: RepoSplit) -> list[Window]:
    """The windows to rank: wanted kinds, training repositories only, in row order, at most ``max_instances``."""
    windows = []
    for row in rows:
        if row["kind"] not in config.kinds or (config.exclude_heldout and split.is_heldout(row["repo"])):
            continue
        window = first_stage_window(row, by_id, config.depth)
        if window is not None:
            windows.append(window)
        if config.max_instances is not None and len(windows) >= config.max_instances:
            break
    return windows


def rank_windows(windows: Sequence[Window], config: TeacherConfig, teacher: Teacher | None,
                 progress: Callable[[int, int], None] | None = None) -> list[Instance]:
    """Instances for ``windows``; the teacher (if the mode needs one) ranks ``batch_size`` at a time."""
    needs_teacher = config.mode != "gold-embedder"
    if needs_teacher and teacher is None:
        raise ValueError(f"teacher mode {config.mode!r} needs a teacher model")
    name = teacher.name if needs_teacher and teacher is not None else EMBEDDER_TEACHER
    out: list[Instance] = []
    step = config.batch_size if needs_teacher else max(len(windows), 1)
    for start in range(0, len(windows), step):
        chunk = windows[start:start + step]
        orders = teacher.rank([w.query for w in chunk], [w.candidates for w in chunk]) if needs_teacher else [None] * len(chunk)
        out.extend(Instance(w, target_order(config.mode, w, o), name, config.mode) for w, o in zip(chunk, orders))
        if progress:
            progress(len(out), len(windows))
    return out


def instance_stats(instances: Sequence[Instance], config: TeacherConfig, split: RepoSplit, seconds: float) -> dict:
    """What ``stats.json`` records: counts by source, agreement of teacher and gold, the config."""
    by_kind: dict[str, int] = {}
    for inst in instances:
        by_kind[inst.window.meta.get("kind", "")] = by_kind.get(inst.window.meta.get("kind", ""), 0) + 1
    top_is_positive = sum(inst.target[0] == inst.window.positive_index for inst in instances)
    return {
        "stage": "teacher-rank",
        "instances": len(instances),
        "by_kind": by_kind,
        "repos": len({inst.window.meta.get("repo") for inst in instances}),
        "target_top_is_positive": round(top_is_positive / max(len(instances), 1), 4),
        "teacher": instances[0].teacher if instances else None,
        "config": asdict(config),
        "split": split.describe(),
        "seconds": round(seconds, 1),
    }


def teacher_rank(negatives_dir: str, out_dir: str, config: TeacherConfig, split: RepoSplit,
                 teacher: Teacher | None = None, overwrite: bool = False,
                 progress: Callable[[int, int], None] | None = None) -> dict:
    """Read a ``negatives`` stage, rank its windows, write the instances as a stage; returns its stats."""
    from datasets import Dataset

    from cornstack_train.data.records import NEGATIVE_COLUMNS, PAIR_COLUMNS, StageError, load_stage, save_stage

    started = time.perf_counter()
    data = load_stage(negatives_dir, require=PAIR_COLUMNS + NEGATIVE_COLUMNS)
    rows = data.to_list()
    by_id = {r["id"]: r for r in rows}
    if config.max_instances is not None:  # a sample across repositories, not the first repo's rows
        import random

        random.Random(config.seed).shuffle(rows)
    windows = select_windows(rows, by_id, config, split)
    if not windows:
        raise StageError(f"no training windows in {negatives_dir} (kinds {config.kinds}, held-out repos excluded)")
    log.info("ranking %d windows (%s)", len(windows), config.mode)
    instances = rank_windows(windows, config, teacher, progress)
    stats = instance_stats(instances, config, split, time.perf_counter() - started)
    stats["input"] = str(negatives_dir)
    save_stage(Dataset.from_list([i.record() for i in instances]), out_dir, stats, overwrite=overwrite)
    return stats
