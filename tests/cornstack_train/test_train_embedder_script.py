"""benchmarks/train_embedder.sh, the one command that reproduces the trained embedder, end to end on
three tiny repositories, and (SOURCES=registry) on three tiny releases served by a local PyPI (opt in:
`pytest -m slow`; about two minutes on two cores)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.conftest import git, make_git_repo
from tests.cornstack_train.test_train_data_filter import PAIRS

ROOT = Path(__file__).resolve().parents[2]
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


def _sdist(name: str, source: str) -> bytes:
    import io
    import tarfile

    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tf:
        data = source.encode()
        info = tarfile.TarInfo(f"{name}-1.0/{name.replace('-', '_')}/mod.py")
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


@pytest.mark.slow
def test_registry_recipe_downloads_mines_trains_and_evaluates(tmp_path):
    """SOURCES=registry against a local PyPI: a static server works because the client parses the
    simple index's JSON (PEP 691) whatever content type comes back."""
    import hashlib
    import http.server
    import threading
    from functools import partial

    site = tmp_path / "site"
    lists = {"train": [], "heldout": []}
    for i, name in enumerate(("acme-one", "acme-two", "acme-three")):
        archive = _sdist(name, _documented(PAIRS[i * 20:(i + 1) * 20]))
        (site / "files").mkdir(parents=True, exist_ok=True)
        (site / "files" / f"{name}-1.0.tar.gz").write_bytes(archive)
        lists["heldout" if name == "acme-three" else "train"].append(
            {"registry": "pypi", "name": name, "version": "1.0", "language": "python"})
        page = site / "simple" / name / "index.html"
        page.parent.mkdir(parents=True)
        page.write_text(json.dumps({"files": [{"filename": f"{name}-1.0.tar.gz", "url": "URL",
                                               "hashes": {"sha256": hashlib.sha256(archive).hexdigest()}}]}))
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(site))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    base = f"http://127.0.0.1:{server.server_address[1]}"
    for page in (site / "simple").rglob("index.html"):
        page.write_text(page.read_text().replace("URL", f"{base}/files/{page.parent.name}-1.0.tar.gz"))
    for kind, entries in lists.items():
        (tmp_path / f"{kind}.json").write_text(json.dumps(entries))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    work = tmp_path / "work"
    env = {**os.environ, "SOURCES": "registry", "REGISTRY_LIST": str(tmp_path / "train.json"),
           "REGISTRY_HELDOUT": str(tmp_path / "heldout.json"), "PYPI_URL": f"{base}/simple", "MAX_STEPS": "2",
           "HF_HUB_OFFLINE": "1"}
    try:
        result = subprocess.run(["bash", str(SCRIPT), str(work)], env=env, capture_output=True, text=True,
                                timeout=900)
    finally:
        server.shutdown()
    assert result.returncode == 0, result.stderr[-3000:]
    assert (work / "registry-sources/pypi__acme-one/acme_one/mod.py").is_file()
    mined = json.loads((work / "data/mined-registry-sources/stats.json").read_text())
    assert mined["pairs_by_kind"]["commit"] == 0 and mined["pairs_by_kind"]["docstring"] > 0
    stats = json.loads((work / "runs/embedder-registry/train_stats.json").read_text())
    assert stats["run"]["global_step"] == 2 and stats["data"]["split"]["heldout_fraction"] == 0
    metrics = json.loads((work / "runs/embedder-registry/eval-registry/metrics.json").read_text())
    assert set(metrics["results"]) == {"base", "trained"} and metrics["heldout"]["repos"] == ["pypi/acme-three"]
    assert not (work / "runs/embedder-registry/eval").exists()  # no git-mined data in this WORK
