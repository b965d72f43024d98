"""Atomic file writes: readers see the old file or the new one, never half of either."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable


def atomic_write_bytes(path: Path, data: bytes, mode: int | None = None) -> None:
    """``mode`` is set before the rename, so nobody sees the file with the wrong permissions."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            if mode is not None:
                os.fchmod(handle.fileno(), mode)
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def atomic_write_json(path: Path, payload: Any) -> None:
    atomic_write_bytes(path, (json.dumps(payload, indent=2, sort_keys=True) + "\n").encode())


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def atomic_replace_dir(target: Path, write: Callable[[Path], None], public: bool = False) -> Path:
    """Fill a sibling temp dir with ``write(tmp)``, then swap it in for ``target``.

    Readers see the old directory or the new one: an interrupted write leaves
    only a hidden temp dir behind, never a half-written ``target``. With ``public``
    (package data, which every user of an install reads) the files become 0644 and
    the directory 0755: the temp dir is made 0700 and training writes its files 0600.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    try:
        write(tmp)
        if public:
            for path in tmp.iterdir():
                path.chmod(0o644)
            tmp.chmod(0o755)
        if target.exists():
            trash = target.with_name(f".{target.name}.old")
            shutil.rmtree(trash, ignore_errors=True)
            os.replace(target, trash)
            os.replace(tmp, target)
            shutil.rmtree(trash, ignore_errors=True)
        else:
            os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target
