"""A fitted tree ensemble, evaluated with numpy: the learned ranker ships as one small JSON file.

The ranker is fitted with LightGBM's LambdaRank (``cornstack-train ranker``) and exported as flat
arrays per tree, so ``localize`` needs neither LightGBM nor pickles (a model file is data, never
code). Missing values follow LightGBM's rules exactly: a split routes NaN to its default side when
its missing type is NaN, treats NaN as 0 when the type is None, and routes both 0 and NaN to the
default side when it is Zero. A test checks the evaluator against LightGBM's own predictions.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from indexer.errors import ModelLoadError

FORMAT = "localizer-ranker/1"
_ZERO = 1e-35  # LightGBM's kZeroThreshold


@dataclass(frozen=True)
class Tree:
    """Internal nodes 0..n-1; a child >= 0 is a node, a child < 0 is leaf ``~child``."""

    feature: np.ndarray  # int32
    threshold: np.ndarray  # float64
    left: np.ndarray  # int32
    right: np.ndarray  # int32
    default_left: np.ndarray  # bool
    missing: np.ndarray  # int8: 0 None, 1 Zero, 2 NaN
    leaf_value: np.ndarray  # float64

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Tree":
        return cls(np.asarray(data["feature"], np.int32), np.asarray(data["threshold"], np.float64),
                   np.asarray(data["left"], np.int32), np.asarray(data["right"], np.int32),
                   np.asarray(data["default_left"], bool), np.asarray(data["missing"], np.int8),
                   np.asarray(data["leaf_value"], np.float64))

    def to_json(self) -> dict[str, Any]:
        return {"feature": self.feature.tolist(), "threshold": self.threshold.tolist(), "left": self.left.tolist(),
                "right": self.right.tolist(), "default_left": self.default_left.tolist(),
                "missing": self.missing.tolist(), "leaf_value": self.leaf_value.tolist()}

    def predict(self, x: np.ndarray) -> np.ndarray:
        n = x.shape[0]
        if len(self.feature) == 0:  # a single-leaf tree
            return np.full(n, self.leaf_value[0] if len(self.leaf_value) else 0.0)
        node = np.zeros(n, dtype=np.int32)
        rows = np.arange(n)
        active = node >= 0
        while active.any():
            r, nd = rows[active], node[active]
            value = x[r, self.feature[nd]].astype(np.float64)
            missing = self.missing[nd]
            is_nan = np.isnan(value)
            value = np.where(is_nan & (missing != 2), 0.0, value)
            to_default = (is_nan & (missing == 2)) | ((missing == 1) & (np.abs(value) <= _ZERO))
            go_left = np.where(to_default, self.default_left[nd], value <= self.threshold[nd])
            node[r] = np.where(go_left, self.left[nd], self.right[nd])
            active = node >= 0
        return self.leaf_value[~node]


@dataclass(frozen=True)
class LevelModel:
    """The ensemble of one level (files or functions) and the feature names its columns follow."""

    features: tuple[str, ...]
    trees: tuple[Tree, ...]

    def score(self, matrix: np.ndarray, features: Sequence[str]) -> np.ndarray:
        if tuple(features) != self.features:
            raise ModelLoadError(f"the ranker was fitted on features {', '.join(self.features)}, "
                                 f"not {', '.join(features)}")
        out = np.zeros(matrix.shape[0])
        for tree in self.trees:  # a few ms per 100 trees over a head of a few hundred rows
            out += tree.predict(matrix)
        return out


@dataclass(frozen=True)
class RankerModel:
    levels: dict[str, LevelModel]
    card: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {"format": FORMAT, "card": self.card,
                "levels": {name: {"features": list(level.features), "trees": [t.to_json() for t in level.trees]}
                           for name, level in self.levels.items()}}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "RankerModel":
        found = data.get("format") if isinstance(data, dict) else type(data).__name__
        if found != FORMAT:
            raise ModelLoadError(f"not a localizer ranker (format {found!r}, expected {FORMAT})")
        levels = {name: LevelModel(tuple(level["features"]), tuple(Tree.from_json(t) for t in level["trees"]))
                  for name, level in data["levels"].items()}
        if set(levels) != {"file", "function"}:
            raise ModelLoadError("a ranker needs a file and a function level")
        return cls(levels, dict(data.get("card", {})))

    @classmethod
    def load(cls, path: str | Path) -> "RankerModel":
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
            return cls.from_json(data)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ModelLoadError(f"cannot load the ranker {path}: {exc}") from exc


def trees_from_lightgbm(dump: dict[str, Any]) -> tuple[Tree, ...]:
    """LightGBM's ``dump_model()`` trees as flat arrays (only ``<=`` numeric splits are used here)."""
    trees = []
    for info in dump["tree_info"]:
        feature, threshold, left, right, default_left, missing, leaves = [], [], [], [], [], [], []

        def walk(node: dict[str, Any]) -> int:
            if "leaf_value" in node or "split_index" not in node:
                leaves.append(float(node.get("leaf_value", 0.0)))
                return ~(len(leaves) - 1)
            if node.get("decision_type", "<=") != "<=":
                raise ValueError(f"unsupported split {node.get('decision_type')}")
            index = len(feature)
            feature.append(int(node["split_feature"]))
            threshold.append(float(node["threshold"]))
            default_left.append(bool(node.get("default_left", True)))
            missing.append({"None": 0, "Zero": 1, "NaN": 2}[node.get("missing_type", "None")])
            left.append(0)
            right.append(0)
            left[index] = walk(node["left_child"])
            right[index] = walk(node["right_child"])
            return index

        walk(info["tree_structure"])
        trees.append(Tree(np.asarray(feature, np.int32), np.asarray(threshold), np.asarray(left, np.int32),
                          np.asarray(right, np.int32), np.asarray(default_left, bool), np.asarray(missing, np.int8),
                          np.asarray(leaves)))
    return tuple(trees)
