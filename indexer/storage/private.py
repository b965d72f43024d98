"""Owner-only directories and files for the cache.

The cache holds the code of every repository ever indexed, so nobody else on
the machine may read it: directories are created 0700 and files 0600. Existing
paths are left as they are, since the user may have chosen their modes.
"""

from __future__ import annotations

import os
from pathlib import Path

PRIVATE_DIR_MODE = 0o700
PRIVATE_FILE_MODE = 0o600


def make_private_dir(path: Path) -> None:
    """Create ``path`` and every missing parent 0700 (``Path.mkdir`` gives parents the default mode)."""
    missing = []
    current = Path(path)
    while not current.exists() and current != current.parent:
        missing.append(current)
        current = current.parent
    for directory in reversed(missing):
        directory.mkdir(mode=PRIVATE_DIR_MODE, exist_ok=True)


def touch_private_file(path: Path) -> None:
    """Create ``path`` empty and 0600 if it does not exist, before a library creates it 0644."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE_MODE)
    except FileExistsError:
        return
    os.close(fd)
