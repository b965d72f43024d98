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
  model at all, so it takes seconds.

The strongest local teacher is the packaged Qwen2.5-Coder-1.5B-Instruct
(``--teacher qwen2.5-coder-1.5b-instruct``; see docs/rerank.md for its measured cost per window).
A teacher run takes hours on a CPU, so it is resumable: each ranked batch of instances is
appended to ``<out>.work/instances.jsonl`` as it finishes, and a rerun of the same command skips
the ids already there. The stage itself is written only at the end, atomically, in the same
order and form as an uninterrupted run, and the work directory is then removed.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Protocol, Sequence

from cornstack_train.reranker.data import Instance, Window, embedder_order, first_stage_window, gold_anchored
from cornstack_train.data.splits import RepoSplit

log = logging.getLogger("cornstack_train.reranker.teacher")

TEACHER_MODES = ("gold-embedder", "gold-teacher", "teacher")
EMBEDDER_TEACHER = "embedder"
WORK_SUFFIX = ".work"  # <out>.work/: the resumable run beside the stage it will become
WORK_FILE = "instances.jsonl"
WORK_META = "run.json"


class Teacher(Protocol):
    """Ranks windows: for each (query, candidate texts in first-stage order), a best-first order."""

    name: str

    def rank(self, queries: Sequence[str], candidate_lists: Sequence[Sequence[str]]) -> list[list[int]]: ...


# The reranker settings that change a teacher's orders: a resumed run must use the same ones.
TEACHER_SETTINGS = ("model", "adapter", "mode", "window", "stride", "depth", "issue_tokens", "candidate_tokens",
                    "min_candidate_tokens", "footer_issue_tokens", "max_prompt_tokens", "dtype", "system_message")


class LLMTeacher:
    """A teacher LLM behind ``localizer.rerank.ListwiseReranker`` (its sliding windows and prompt)."""

    def __init__(self, reranker, name: str | None = None) -> None:
        from localizer.rerank.models import packaged_name

        self.reranker = reranker
        model = reranker.config.model
        self.name = name or packaged_name(model) or str(model)  # None means the packaged default, not "None"

    @property
    def settings(self) -> dict[str, Any]:
        """What, besides the model, decides the orders: recorded in stats and checked on resume."""
        config = self.reranker.config
        return {key: getattr(config, key) for key in TEACHER_SETTINGS}

    def load(self) -> float:
        """Load (or convert, the first time) the model now; seconds taken. Kept out of the per-window time."""
        started = time.perf_counter()
        self.reranker.loaded  # noqa: B018 - the property loads
        return time.perf_counter() - started

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
                 progress: Callable[[int, int], None] | None = None, done: dict[str, Instance] | None = None,
                 on_ranked: Callable[[list[Instance]], None] | None = None) -> list[Instance]:
    """Instances for ``windows``, in their order; the teacher (if the mode needs one) ranks ``batch_size`` at a time.

    ``done`` holds instances of an earlier, interrupted run by window id: those windows are not
    ranked again. ``on_ranked`` receives every newly ranked batch as soon as it exists (to save it).
    """
    needs_teacher = config.mode != "gold-embedder"
    if needs_teacher and teacher is None:
        raise ValueError(f"teacher mode {config.mode!r} needs a teacher model")
    name = teacher.name if needs_teacher and teacher is not None else EMBEDDER_TEACHER
    done = dict(done or {})
    pending = [w for w in windows if w.id not in done]
    if progress and done:
        progress(len(windows) - len(pending), len(windows))
    step = config.batch_size if needs_teacher else max(len(pending), 1)
    for start in range(0, len(pending), step):
        chunk = pending[start:start + step]
        orders = teacher.rank([w.query for w in chunk], [w.candidates for w in chunk]) if needs_teacher else [None] * len(chunk)
        ranked = [Instance(w, target_order(config.mode, w, o), name, config.mode) for w, o in zip(chunk, orders)]
        if on_ranked:
            on_ranked(ranked)
        done.update((inst.window.id, inst) for inst in ranked)
        if progress:
            progress(len(windows) - len(pending) + start + len(chunk), len(windows))
    return [done[w.id] for w in windows]


# --------------------------------------------------------------------------- the resumable work file


def work_dir(out_dir: str | Path) -> Path:
    """``<out>.work``: a sibling, because the stage directory itself appears only when it is complete."""
    out = Path(out_dir)
    return out.with_name(out.name + WORK_SUFFIX)


@dataclass(frozen=True)
class WorkFile:
    """Instances of an unfinished teacher-rank run, one JSON record per line, appended as they are ranked.

    A kill can tear only the last line; :meth:`load` drops it (and cuts it off, so the next
    append starts on a fresh line). ``run.json`` holds what the run's orders depend on: a rerun
    with other settings, input or teacher is refused instead of mixing two teachers in one stage.
    """

    root: Path

    @property
    def path(self) -> Path:
        return self.root / WORK_FILE

    def start(self, identity: dict[str, Any]) -> None:
        """Begin a run, or check that the run found here is this one."""
        from indexer.storage.atomic import atomic_write_json

        from cornstack_train.data.records import StageError

        meta = self.root / WORK_META
        identity = json.loads(json.dumps(identity))  # compared as stored: tuples become lists
        if meta.is_file():
            before = json.loads(meta.read_text())
            changed = sorted(k for k in set(before) | set(identity) if before.get(k) != identity.get(k))
            if changed:
                raise StageError(f"{self.root} holds an unfinished run with other {', '.join(changed)}: rerun it with "
                                 "the same flags, or pass --overwrite to start over")
            return
        self.root.mkdir(parents=True, exist_ok=True)
        self.path.unlink(missing_ok=True)
        atomic_write_json(meta, identity)

    def load(self) -> dict[str, dict[str, Any]]:
        """Finished records by id; a torn last line is dropped and truncated away."""
        if not self.path.is_file():
            return {}
        records: dict[str, dict[str, Any]] = {}
        good = 0
        with self.path.open("rb") as handle:
            for line in handle:
                if not line.endswith(b"\n"):
                    break
                try:
                    record = json.loads(line)
                except ValueError:
                    break
                records[record["id"]] = record
                good += len(line)
        if good != self.path.stat().st_size:
            log.warning("dropping a torn record at the end of %s", self.path)
            with self.path.open("r+b") as handle:
                handle.truncate(good)
        return records

    def append(self, instances: Sequence[Instance]) -> None:
        """Add ranked instances durably: flushed and fsynced before the next batch is ranked."""
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write("".join(json.dumps(inst.record(), ensure_ascii=False) + "\n" for inst in instances))
            handle.flush()
            os.fsync(handle.fileno())

    def remove(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)

    @contextmanager
    def claimed(self) -> Iterator[None]:
        """Held for the whole run: a second process on the same output would append every instance twice."""
        from filelock import FileLock, Timeout

        from cornstack_train.data.records import StageError

        self.root.parent.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(self.root.with_name(f".{self.root.name}.lock")))
        try:
            lock.acquire(timeout=0)
        except Timeout:
            raise StageError(f"another teacher-rank is writing {self.root}; wait for it or stop it") from None
        try:
            yield
        finally:
            lock.release()


def resumed_instances(records: dict[str, dict[str, Any]], windows: Sequence[Window]) -> dict[str, Instance]:
    """The work file's records as instances of today's windows; a record for a different list is an error."""
    from cornstack_train.data.records import StageError

    done = {}
    for w in windows:
        record = records.get(w.id)
        if record is None:
            continue
        if record["candidate_ids"] != w.candidate_ids or record["positive_index"] != w.positive_index:
            raise StageError(f"the unfinished run's instance {w.id} ranks another candidate list than the input "
                             "gives now: pass --overwrite to start over")
        done[w.id] = Instance(w, list(record["target"]), record["teacher"], record["teacher_mode"])
    return done


def run_identity(negatives_dir: str, config: TeacherConfig, split: RepoSplit, teacher: Teacher | None) -> dict:
    """What a run's instances depend on (batch size aside: it changes speed, not the windows or the teacher)."""
    needs_teacher = config.mode != "gold-embedder"
    settings = asdict(config)
    settings.pop("batch_size")
    return {"input": str(Path(negatives_dir).resolve()), "config": settings, "split": split.describe(),
            "teacher": teacher.name if needs_teacher and teacher is not None else EMBEDDER_TEACHER,
            "teacher_settings": getattr(teacher, "settings", None) if needs_teacher else None}


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
    """Read a ``negatives`` stage, rank its windows, write the instances as a stage; returns its stats.

    Resumable: instances are appended to ``<out>.work/`` as they are ranked and a rerun ranks only
    the rest (``overwrite`` discards an unfinished run as well as a finished stage).
    """
    from datasets import Dataset

    from cornstack_train.data.records import NEGATIVE_COLUMNS, PAIR_COLUMNS, StageError, load_stage, save_stage

    needs_teacher = config.mode != "gold-embedder"
    if needs_teacher and teacher is None:
        raise ValueError(f"teacher mode {config.mode!r} needs a teacher model")
    if Path(out_dir).exists() and not overwrite:
        raise StageError(f"{out_dir} already exists; pass overwrite=True (--overwrite) to replace it")
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
    if not needs_teacher:  # seconds of work and no model: nothing worth resuming
        instances = rank_windows(windows, config, None, progress)
        stats = instance_stats(instances, config, split, time.perf_counter() - started)
        stats["input"] = str(negatives_dir)
        save_stage(Dataset.from_list([i.record() for i in instances]), out_dir, stats, overwrite=overwrite)
        return stats
    work = WorkFile(work_dir(out_dir))
    with work.claimed():
        if overwrite:
            work.remove()
        work.start(run_identity(negatives_dir, config, split, teacher))
        done = resumed_instances(work.load(), windows)
        pending = len(windows) - len(done)
        log.info("ranking %d windows (%s)%s", pending, config.mode,
                 f"; {len(done)} done by an earlier run" if done else "")
        load_seconds = teacher.load() if pending and hasattr(teacher, "load") else 0.0
        rank_started = time.perf_counter()
        instances = rank_windows(windows, config, teacher, progress, done, work.append)
        rank_seconds = time.perf_counter() - rank_started
        stats = instance_stats(instances, config, split, time.perf_counter() - started)
        stats["input"] = str(negatives_dir)
        stats["resumed"] = len(done)  # instances taken from the work file, not ranked by this run
        stats["teacher_settings"] = getattr(teacher, "settings", None)
        stats["load_seconds"] = round(load_seconds, 1)
        stats["rank_seconds"] = round(rank_seconds, 1)
        # one instance is one teacher window when --window >= --depth (the default, 10 and 10)
        stats["seconds_per_instance"] = round(rank_seconds / pending, 2) if pending else None
        save_stage(Dataset.from_list([i.record() for i in instances]), out_dir, stats, overwrite=overwrite)
        work.remove()
    return stats
