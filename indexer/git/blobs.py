"""Read file contents from git objects through one long-lived ``git cat-file --batch``.

Indexing a revision reads thousands of blobs, and the benchmark reads the base
version of every patched file of hundreds of instances: one process fed names
on stdin does that without thousands of forks, and without a checkout.

Objects are named as git names them: a blob SHA (what the indexer lists with
``ls-tree``) or ``<commit>:<path>`` (what gold labels and commit mining ask
for). Callers differ in what a missing object means, so there are two ways to
ask: :meth:`GitBlobReader.get` answers None (the benchmark: a patched file that
does not exist at the base commit has no gold functions), :meth:`read` raises
:class:`RepositoryError` (the indexer: a listed blob that cannot be read is a
broken repository).
"""

from __future__ import annotations

import os
import subprocess
import threading
from typing import Optional

from indexer.errors import RepositoryError
from indexer.git.runner import PathLike, start_git


class GitBlobReader:
    """Blob contents by object name, from one ``git cat-file --batch`` started on first use.

    Thread-safe (one request at a time); call :meth:`close` or use it as a
    context manager. Calling it as ``reader(commit, path)`` is
    ``get(f"{commit}:{path}")``, the ``read_blob`` callable that gold labels
    take.
    """

    def __init__(self, repo: PathLike) -> None:
        self.repo = os.fspath(repo)
        self._process: Optional[subprocess.Popen[bytes]] = None
        self._lock = threading.Lock()

    def get(self, name: str) -> Optional[bytes]:
        """The blob's bytes; None when the object is missing, ambiguous or not a blob."""
        if "\n" in name:  # would be read as two requests
            return None
        with self._lock:
            if self._process is None:
                self._process = start_git(["cat-file", "--batch"], repo=self.repo, stdin=subprocess.PIPE,
                                          stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
            proc = self._process
            assert proc.stdin is not None and proc.stdout is not None
            try:
                proc.stdin.write(name.encode("utf-8", errors="surrogateescape") + b"\n")
                proc.stdin.flush()
                header = proc.stdout.readline()
            except (BrokenPipeError, ValueError):  # the process is gone (or its pipe was closed)
                header = b""
            if not header:
                self._process = None
                proc.kill()
                proc.wait()
                raise RepositoryError(f"git cat-file stopped in {self.repo}")
            parts = header.split()
            if len(parts) != 3 or not parts[2].isdigit():  # "<name> missing" / "<name> ambiguous"
                return None
            data = proc.stdout.read(int(parts[2]))
            proc.stdout.read(1)  # the newline after the contents
            return data if parts[1] == b"blob" else None

    def read(self, name: str) -> bytes:
        """The blob's bytes; :class:`RepositoryError` when it cannot be read."""
        data = self.get(name)
        if data is None:
            raise RepositoryError(f"git object {name} is missing from {self.repo}")
        return data

    def __call__(self, commit: str, path: str) -> Optional[bytes]:
        """``path`` as it is at ``commit``; None when it does not exist there."""
        return self.get(f"{commit}:{path}")

    def close(self) -> None:
        with self._lock:
            if self._process is not None:
                if self._process.stdin:
                    self._process.stdin.close()
                self._process.wait(timeout=10)
                if self._process.stdout:
                    self._process.stdout.close()
                self._process = None

    def __enter__(self) -> "GitBlobReader":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:  # best effort; call close() or use ``with``
        try:
            self.close()
        except Exception:
            pass
