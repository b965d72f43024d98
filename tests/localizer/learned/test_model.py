"""The numpy tree evaluator agrees with LightGBM, NaNs and zeros included; bad files fail in one line."""

from __future__ import annotations

import json

import numpy as np
import pytest

from indexer.errors import ModelLoadError
from localizer.learned.model import LevelModel, RankerModel, trees_from_lightgbm


def test_the_evaluator_matches_lightgbm_with_missing_values():
    lightgbm = pytest.importorskip("lightgbm")
    rng = np.random.default_rng(0)
    X = rng.normal(size=(600, 5))
    X[rng.random(X.shape) < 0.2] = np.nan
    X[:, 3] = np.where(rng.random(600) < 0.3, 0.0, X[:, 3])
    y = (np.nan_to_num(X[:, 0]) + np.isnan(X[:, 1]) * 1.5 + (X[:, 3] == 0) > 0.5).astype(int)
    groups = [20] * 30
    booster = lightgbm.train({"objective": "lambdarank", "num_leaves": 7, "min_data_in_leaf": 5, "verbose": -1,
                              "use_missing": True, "zero_as_missing": False},
                             lightgbm.Dataset(X, y, group=groups), num_boost_round=20)
    trees = trees_from_lightgbm(booster.dump_model())
    model = LevelModel(tuple("abcde"), trees)
    np.testing.assert_allclose(model.score(X.astype(np.float32), tuple("abcde")),
                               booster.predict(X.astype(np.float32)), rtol=1e-6, atol=1e-9)


def test_a_model_round_trips_through_json_and_checks_its_features(tmp_path):
    tree = {"feature": [0], "threshold": [0.5], "left": [-1], "right": [-2], "default_left": [True],
            "missing": [2], "leaf_value": [0.0, 1.0]}
    level = {"features": ["x"], "trees": [tree]}
    path = tmp_path / "ranker.json"
    path.write_text(json.dumps({"format": "localizer-ranker/1", "levels": {"file": level, "function": level}}))
    model = RankerModel.load(path)
    scores = model.levels["file"].score(np.array([[0.2], [0.9], [np.nan]], np.float32), ("x",))
    assert scores.tolist() == [0.0, 1.0, 0.0]  # NaN goes to the default (left) side
    with pytest.raises(ModelLoadError, match="fitted on features"):
        model.levels["file"].score(np.zeros((1, 1), np.float32), ("y",))
    assert RankerModel.from_json(model.to_json()).to_json() == model.to_json()


@pytest.mark.parametrize("text", ["not json", json.dumps({"format": "other"}), json.dumps([1, 2])])
def test_a_broken_ranker_file_is_a_one_line_error(tmp_path, text):
    path = tmp_path / "ranker.json"
    path.write_text(text)
    with pytest.raises(ModelLoadError, match="ranker"):
        RankerModel.load(path)
