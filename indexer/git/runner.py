"""The one way to run git: a failed command becomes a one-line :class:`GitError`.

Why one runner: each caller used to wrap ``subprocess`` its own way, so the
same failure read differently from module to module, and a missing ``git``
binary surfaced as a ``FileNotFoundError`` traceback in some of them. Here a
failure always reads ``git <command> failed in <dir>: <git's last stderr
line>``, which the CLI prints as one line, and ``stderr`` keeps the whole
message for the few callers that inspect it.

Why plain subprocesses and not gitpython: this runs inside every background
hook, where start-up time matters, and nothing here needs an object model.
Commands run as ``git -C <repo> ...``, so a bare repository (a git dir) and a
work tree are both just a path.
"""

from __future__ import annotations

import os
import subprocess
from typing import IO, Any, Mapping, Sequence, Union

from indexer.errors import RepositoryError

GIT_NOT_FOUND = "git is not installed or not on PATH"

# Git's messages in English whatever the user's locale, for callers that read them
# (owners tells "no such path" from other blame failures). gitpython did the same.
C_LOCALE: Mapping[str, str] = {"LC_ALL": "C", "LANGUAGE": "C"}

PathLike = Union[str, "os.PathLike[str]"]


class GitError(RepositoryError):
    """A git command exited non-zero; the message is one line, ``stderr`` is git's whole message."""

    def __init__(self, message: str, *, command: Sequence[str], returncode: int, stderr: str) -> None:
        super().__init__(message)
        self.command = tuple(command)
        self.returncode = returncode
        self.stderr = stderr

    def __reduce__(self):  # keyword-only arguments: rebuild it explicitly when it crosses processes
        return (_rebuild_git_error, (str(self), self.command, self.returncode, self.stderr))


def _rebuild_git_error(message: str, command: Sequence[str], returncode: int, stderr: str) -> "GitError":
    return GitError(message, command=command, returncode=returncode, stderr=stderr)


def git_argv(args: Sequence[str], repo: PathLike | None = None) -> list[str]:
    """``git -C <repo> <args>``, or ``git <args>`` when no repository is involved (a clone)."""
    return ["git", *(("-C", os.fspath(repo)) if repo is not None else ()), *args]


def last_line(stderr: str | bytes) -> str:
    """The line of git's message that says what went wrong (earlier ones are hints and warnings)."""
    if isinstance(stderr, bytes):
        stderr = stderr.decode("utf-8", errors="replace")
    lines = [line.strip() for line in stderr.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "unknown error"


def run_git(
    args: Sequence[str],
    *,
    repo: PathLike | None = None,
    check: bool = True,
    text: bool = False,
    env: Mapping[str, str] | None = None,
    input: bytes | str | None = None,
) -> subprocess.CompletedProcess[Any]:
    """Run ``git <args>`` in ``repo`` and capture its output.

    ``check`` (default): a non-zero exit raises :class:`GitError`; without it
    the completed process comes back for the caller to judge (git's exit
    status is often the answer, as with ``rev-parse --verify``). ``text``
    decodes output as UTF-8, keeping undecodable bytes of paths as surrogates.
    ``env`` replaces the environment (e.g. without the variables git exports
    to hooks). A missing git binary always raises :class:`RepositoryError`.
    """
    argv = git_argv(args, repo)
    encoding = {"encoding": "utf-8", "errors": "surrogateescape"} if text else {}
    try:
        result = subprocess.run(argv, input=input, capture_output=True, check=False,
                                env=dict(env) if env is not None else None, **encoding)
    except FileNotFoundError as exc:
        raise RepositoryError(GIT_NOT_FOUND) from exc
    if check and result.returncode != 0:
        stderr = result.stderr if isinstance(result.stderr, str) else result.stderr.decode("utf-8", errors="replace")
        where = f" in {os.fspath(repo)}" if repo is not None else ""
        raise GitError(f"git {' '.join(args[:2])} failed{where}: {last_line(stderr)}",
                       command=argv, returncode=result.returncode, stderr=stderr)
    return result


def start_git(args: Sequence[str], *, repo: PathLike | None = None, stdin: int | IO[Any] | None = None,
              stdout: int | IO[Any] | None = None, stderr: int | IO[Any] | None = None) -> subprocess.Popen[bytes]:
    """A long-lived ``git`` process (``cat-file --batch``, a streamed ``log``).

    A missing git binary raises :class:`RepositoryError`, as in :func:`run_git`.
    """
    try:
        return subprocess.Popen(git_argv(args, repo), stdin=stdin, stdout=stdout, stderr=stderr)
    except FileNotFoundError as exc:
        raise RepositoryError(GIT_NOT_FOUND) from exc

