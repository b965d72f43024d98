"""The harness report without matplotlib: numbers written, plot skipped with a note (not a crash)."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import pytest

from benchmarks.swebench.report import PLOT_SKIPPED, write_reports


def _predictions(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    records = [
        {"instance_id": "i1", "system": "bm25",
         "gold_ranks": {"files": {"a.py": 1}, "files_from_functions": {"a.py": 2}, "functions": {"a.py/f": 3}}},
        {"instance_id": "i2", "system": "bm25",
         "gold_ranks": {"files": {"b.py": None}, "files_from_functions": {"b.py": None}, "functions": {}}},
    ]
    (out / "predictions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))


def test_missing_matplotlib_skips_the_plot_with_a_note(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # `import matplotlib` now raises ImportError
    _predictions(tmp_path)
    with caplog.at_level(logging.WARNING):
        metrics = write_reports(tmp_path, ["bm25"], None, None)
    assert metrics["bm25"]["all"]["files@1"] == 50.0
    assert not (tmp_path / "acc_at_k.png").exists()
    assert (tmp_path / "metrics.json").exists() and (tmp_path / "diagnostics.jsonl").exists()
    assert PLOT_SKIPPED in (tmp_path / "metrics.md").read_text()
    assert [r.getMessage() for r in caplog.records] == [PLOT_SKIPPED]
    assert "\n" not in PLOT_SKIPPED


def test_with_matplotlib_the_plot_is_drawn_and_no_note(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    _predictions(tmp_path)
    write_reports(tmp_path, ["bm25"], None, None)
    assert (tmp_path / "acc_at_k.png").read_bytes().startswith(b"\x89PNG")
    assert PLOT_SKIPPED not in (tmp_path / "metrics.md").read_text()
