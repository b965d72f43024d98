"""How every speed benchmark hands over its report: printed, and written atomically with --out."""

from __future__ import annotations

import json
from pathlib import Path

from indexer.storage.atomic import atomic_write_json


def emit_report(report: dict, out: Path | None) -> None:
    print(json.dumps(report, indent=2))
    if out:
        atomic_write_json(out, report)
