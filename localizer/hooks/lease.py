"""A running ``localize serve`` tells the hooks it keeps a repository's index fresh.

The post-commit hook starts a fresh process that loads the index and, for dense retrieval, the
embedder (8-11 s) before it can embed one changed file; a server already has both warm and
watches HEAD itself. So a server that watches a work tree leaves a lease in the repository's state
dir, and the hook, finding a live lease for the same retriever, model and index dir, leaves the
refresh to the server instead of starting its own process. A lease whose process is gone is
ignored (and a stale file is harmless: it names a pid that no longer runs).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from indexer.storage.atomic import atomic_write_json

LEASE_FILE = "serve-lease.json"


def lease_terms(retriever: str, model: str | None) -> dict[str, Any]:
    """What must match for a server's refresh to be the hook's refresh."""
    return {"retriever": retriever, "model": model if retriever in ("dense", "hybrid") else None}


def write_lease(state_dir: Path, retriever: str, model: str | None) -> Path:
    path = state_dir / LEASE_FILE
    atomic_write_json(path, {"pid": os.getpid(), "started": time.time(), **lease_terms(retriever, model)})
    return path


def remove_lease(state_dir: Path) -> None:
    """Remove the lease if it is this process's (a newer server may have replaced it)."""
    lease = _read(state_dir)
    if lease is not None and lease.get("pid") == os.getpid():
        try:
            (state_dir / LEASE_FILE).unlink()
        except FileNotFoundError:
            pass


def live_lease(state_dir: Path, retriever: str, model: str | None) -> dict[str, Any] | None:
    """The lease of a running server that refreshes this index with these terms, else None."""
    lease = _read(state_dir)
    if lease is None or not isinstance(lease.get("pid"), int) or lease.get("pid") == os.getpid():
        return None
    if {k: lease.get(k) for k in ("retriever", "model")} != lease_terms(retriever, model):
        return None
    try:
        os.kill(lease["pid"], 0)
    except ProcessLookupError:
        return None
    except PermissionError:  # alive, owned by someone else
        pass
    return lease


def _read(state_dir: Path) -> dict[str, Any] | None:
    try:
        value = json.loads((state_dir / LEASE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None
