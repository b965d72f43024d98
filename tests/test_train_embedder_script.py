"""benchmarks/train_embedder.sh, the one command that reproduces the trained embedder, end to end on
three tiny repositories (opt in: `pytest -m slow`; about two minutes on two cores)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from .conftest import git, make_git_repo
from .test_train_data_filter import PAIRS

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "train_embedder.sh"


def test_script_parses():
    subprocess.run(["bash", "-n", str(SCRIPT)], check=True)


def _documented(pairs) -> str:
    out = []
    for query, code in pairs:
        head, _, body = code.partition("\n")
        out.append(f'{head}\n    """{query}"""\n{body}\n    # keep\n    return None\n')
    return "import csv, hashlib, json, math\n\n\n" + "\n\n".join(out)


@pytest.mark.slow
def test_script_trains_and_evaluates_on_tiny_repositories(tmp_path):
    work = tmp_path / "work"
    manifest = []
    for i, name in enumerate(("acme/one", "acme/two", "acme/three")):
        repo = make_git_repo(work / "train-repos" / name.replace("/", "__"),
                             {"pkg/mod.py": _documented(PAIRS[i * 20:(i + 1) * 20])})
        manifest.append({"repo": name, "language": "python", "head": git(repo, "rev-parse", "HEAD").strip()})
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    env = {**os.environ, "MANIFEST": str(tmp_path / "manifest.json"), "MAX_STEPS": "2", "HELDOUT": "acme/three",
           "HF_HUB_OFFLINE": "1"}
    result = subprocess.run(["bash", str(SCRIPT), str(work)], env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    stats = json.loads((work / "runs/embedder-all/train_stats.json").read_text())
    assert stats["run"]["global_step"] == 2 and stats["run"]["world_size"] == 2
    assert stats["data"]["split"]["heldout_repos"] == ["acme/three"]
    assert (work / "runs/embedder-all/model/modules.json").is_file()
    metrics = json.loads((work / "runs/embedder-all/eval/metrics.json").read_text())
    assert set(metrics["results"]) == {"base", "trained"} and metrics["heldout"]["repos"] == ["acme/three"]
    # Rerun: every stage is finished, nothing is redone.
    again = subprocess.run(["bash", str(SCRIPT), str(work)], env=env, capture_output=True, text=True, timeout=900)
    assert again.returncode == 0 and "already trained" in again.stderr
