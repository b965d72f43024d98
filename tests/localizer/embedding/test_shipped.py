"""The shipped embedder's format lives in the runtime: localizer reads it without the training package."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from localizer.embedding import shipped

ROOT = Path(__file__).resolve().parents[3]


def test_the_shipped_model_dir_is_the_package_data_dir():
    assert shipped.shipped_model_dir() == ROOT / "localizer" / "models" / shipped.SHIPPED_DIR


def test_the_checked_in_delta_is_found_and_keyed_by_its_sha256():
    from localizer.embedding.embedder import DEFAULT_MODEL, local_model_identity

    path = shipped.shipped_model_path()
    if path is None:
        pytest.skip("this tree ships no trained embedder")
    manifest = json.loads((path / shipped.MANIFEST_FILE).read_text())
    assert shipped.is_compact_dir(path) and manifest["format"] == shipped.FORMAT
    assert local_model_identity(path) == f"delta:{manifest['delta_sha256']}" == f"delta:{shipped.delta_sha256(path)}"
    assert DEFAULT_MODEL == shipped.SHIPPED_MODEL


def test_a_broken_manifest_is_refused_as_a_model_load_error(tmp_path):
    from indexer.errors import ModelLoadError

    assert shipped.delta_sha256(tmp_path) is None and not shipped.is_compact_dir(tmp_path)
    with pytest.raises(ModelLoadError, match="not a delta directory"):
        shipped.load_compact(tmp_path)
    (tmp_path / shipped.MANIFEST_FILE).write_text("{not json")
    (tmp_path / shipped.DELTA_FILE).write_bytes(b"")
    assert shipped.delta_sha256(tmp_path) is None
    with pytest.raises(shipped.CompactError, match="cannot be read"):
        shipped.load_compact(tmp_path)
    (tmp_path / shipped.MANIFEST_FILE).write_text(json.dumps({"format": "other/9"}))
    with pytest.raises(shipped.CompactError, match="unknown delta format"):
        shipped.load_compact(tmp_path)


def test_the_runtime_never_imports_the_training_package_or_the_benchmarks():
    code = (
        "import sys\n"
        "import localizer, localizer.embedding.embedder, localizer.embedding.shipped, localizer.device\n"
        "import localizer.progress, localizer.rerank.models\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('cornstack_train', 'benchmarks'))\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)
