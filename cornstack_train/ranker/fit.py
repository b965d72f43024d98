"""Fit the learned ranker with LightGBM LambdaRank, evaluate it on held-out repositories, export it.

Each query contributes two groups per level: one with its history features and one with them
hidden (NaN), so one model serves ``localize`` with history and ``--no-history`` alike, and the
held-out report compares the two on the same queries. Repositories, not queries, are held out: a
repository's own vocabulary and habits must not leak from training into validation.

The exported model is :mod:`localizer.learned.model`'s JSON: flat arrays per tree, read by numpy.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from localizer.learned.features import FILE_FEATURES, FILE_HISTORY, FUNCTION_FEATURES, FUNCTION_HISTORY
from localizer.learned.model import LevelModel, RankerModel, trees_from_lightgbm

from cornstack_train.errors import TrainingError

LEVELS = {"file": (FILE_FEATURES, FILE_HISTORY), "function": (FUNCTION_FEATURES, FUNCTION_HISTORY)}


@dataclass(frozen=True)
class FitConfig:
    """LambdaRank settings. Small trees and a strong minimum leaf size: the model must transfer from
    commit messages to issues, so it should learn broad rules, not one repository's quirks."""

    trees: int = 300
    learning_rate: float = 0.05
    leaves: int = 15
    min_data_in_leaf: int = 50
    feature_fraction: float = 0.9
    bagging_fraction: float = 0.8
    holdout: float = 0.2
    seed: int = 0


def split_repos(repos: list[str], holdout: float, seed: int) -> tuple[set[str], set[str]]:
    """(training repositories, held-out repositories), by a seeded shuffle of the sorted names."""
    names = sorted(set(repos))
    random.Random(seed).shuffle(names)
    cut = max(1, round(len(names) * holdout)) if len(names) > 1 else 0
    return set(names[cut:]), set(names[:cut])


def _groups(qids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(order that makes each query's rows contiguous, group sizes in that order)."""
    order = np.argsort(qids, kind="stable")
    _, sizes = np.unique(qids[order], return_counts=True)
    return order, sizes


def with_history_hidden(matrix: np.ndarray, features: tuple[str, ...], history: tuple[str, ...]) -> np.ndarray:
    hidden = matrix.copy()
    hidden[:, [features.index(name) for name in history]] = np.nan
    return hidden


def level_data(arrays: dict[str, np.ndarray], level: str, qids: set[int], hide: bool) -> tuple[np.ndarray, ...]:
    features, history = LEVELS[level]
    X, y, q = arrays[f"{level}_X"], arrays[f"{level}_y"], arrays[f"{level}_qid"]
    keep = np.isin(q, list(qids))
    X, y, q = X[keep], y[keep], q[keep]
    if hide:
        X = with_history_hidden(X, features, history)
    order, sizes = _groups(q)
    return X[order], y[order], q[order], sizes


def fit_level(arrays: dict[str, np.ndarray], level: str, train_qids: set[int], config: FitConfig) -> LevelModel:
    try:
        import lightgbm
    except ImportError as exc:
        raise TrainingError("fitting the ranker needs lightgbm: pip install 'cornstack-localizer[train]'") from exc
    features, _ = LEVELS[level]
    parts = [level_data(arrays, level, train_qids, hide) for hide in (False, True)]
    X = np.concatenate([p[0] for p in parts])
    y = np.concatenate([p[1] for p in parts])
    sizes = np.concatenate([p[3] for p in parts])
    if not len(X) or not y.any():
        raise TrainingError(f"no {level} training rows with a gold item")
    params = {"objective": "lambdarank", "metric": "ndcg", "eval_at": [1, 5, 10], "learning_rate": config.learning_rate,
              "num_leaves": config.leaves, "min_data_in_leaf": config.min_data_in_leaf,
              "feature_fraction": config.feature_fraction, "bagging_fraction": config.bagging_fraction,
              "bagging_freq": 1, "seed": config.seed, "deterministic": True, "num_threads": 2, "verbose": -1,
              "lambdarank_truncation_level": 20}
    data = lightgbm.Dataset(X, y, group=sizes, feature_name=list(features), free_raw_data=False)
    booster = lightgbm.train(params, data, num_boost_round=config.trees)
    return LevelModel(tuple(features), trees_from_lightgbm(booster.dump_model()))


def level_metrics(arrays: dict[str, np.ndarray], level: str, qids: set[int], scorer, hide: bool,
                  facts_by_qid: dict[int, dict]) -> dict[str, float]:
    """acc@1/3/5/10 (every gold item in the top k, the SWE-bench rule) and MRR@10 of the first gold item.

    Gold items outside the head count as misses; ``scorer`` None ranks by the retriever.
    """
    features, _ = LEVELS[level]
    X, y, q, sizes = level_data(arrays, level, qids, hide)
    gold_key = "gold_files" if level == "file" else "gold_functions"
    per_query = []
    start = 0
    for size in sizes:
        rows = slice(start, start + size)
        start += size
        if scorer is None:
            ranking = np.argsort(X[rows][:, features.index("retr_rank")], kind="stable")
        else:
            ranking = np.argsort(-scorer(X[rows]), kind="stable")
        per_query.append((np.flatnonzero(y[rows][ranking]).tolist(), facts_by_qid[int(q[rows][0])][gold_key]))
    return summarize(per_query)


def boosts_metrics(facts: list[dict], level: str) -> dict[str, float]:
    """The same metrics for the hand-set boosts, from the ranks recorded when the rows were built."""
    key, gold_key = ("boosts_file_ranks", "gold_files") if level == "file" else ("boosts_function_ranks", "gold_functions")
    return summarize([(f[key], f[gold_key]) for f in facts if f[gold_key]])


def summarize(per_query: list[tuple[list[int], int]]) -> dict[str, float]:
    """acc@k and MRR@10 over queries given as (positions of the gold items found, ascending; gold count).

    A query counts at k when every gold item was found within the top k; MRR reads the first one.
    """
    if not per_query:
        return {}
    count = len(per_query)
    out: dict[str, float] = {}
    for k in (1, 3, 5, 10):
        hits = sum(bool(positions) and len(positions) == gold and positions[-1] < k for positions, gold in per_query)
        out[f"acc@{k}"] = round(100.0 * hits / count, 1)
    out["mrr@10"] = round(sum(1.0 / (p[0] + 1) for p, _ in per_query if p and p[0] < 10) / count, 4)
    out["queries"] = count
    return out


def fit_ranker(arrays: dict[str, np.ndarray], facts: list[dict], config: FitConfig) -> tuple[RankerModel, dict[str, Any]]:
    """The model fitted on the training repositories, and the held-out report."""
    repos = [f["repo"] for f in facts]
    train_repos, held_repos = split_repos(repos, config.holdout, config.seed)
    train_q = {f["qid"] for f in facts if f["repo"] in train_repos}
    held_q = {f["qid"] for f in facts if f["repo"] in held_repos}
    facts_by_qid = {f["qid"]: f for f in facts}
    levels = {level: fit_level(arrays, level, train_q, config) for level in LEVELS}
    report: dict[str, Any] = {"train_repos": sorted(train_repos), "heldout_repos": sorted(held_repos),
                              "train_queries": len(train_q), "heldout_queries": len(held_q), "levels": {}}
    for level, model in levels.items():
        features, _ = LEVELS[level]
        score = lambda X, m=model, f=features: m.score(X, f)  # noqa: E731
        held_facts = [facts_by_qid[q] for q in held_q]
        report["levels"][level] = {
            "retriever": level_metrics(arrays, level, held_q, None, False, facts_by_qid),
            "boosts": boosts_metrics(held_facts, level),
            "learned, no history": level_metrics(arrays, level, held_q, score, True, facts_by_qid),
            "learned, history": level_metrics(arrays, level, held_q, score, False, facts_by_qid),
            "importance": feature_gain(model, features),
        }
    return RankerModel(levels, {}), report


def feature_gain(model: LevelModel, features: tuple[str, ...]) -> dict[str, int]:
    """How many splits use each feature: what the ranker leans on (reported in the model card)."""
    counts = {name: 0 for name in features}
    for tree in model.trees:
        for index in tree.feature.tolist():
            counts[features[index]] += 1
    return dict(sorted(counts.items(), key=lambda kv: -kv[1]))


def data_digest(directory: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(directory.glob("*.npz")):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()
