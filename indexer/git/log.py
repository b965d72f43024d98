"""Stream commits with their zero-context patches from one ``git log -p``.

Two users read history the same way: the history index (:mod:`indexer.history`), which
credits what each past commit changed, and the commit miner
(``cornstack_train/data/commits.py``), which turns commits into training pairs. One
``git log -p`` streams every commit, so thousands of commits cost one process, not thousands.

Only non-merge commits are read (a merge's diff repeats its branch's commits), and only
ancestors of the revisions named: nothing here ever passes ``--all`` or reads another ref, so a
clone whose refs point at later commits never leaks them into an older snapshot's history.
"""

from __future__ import annotations

import subprocess
import tempfile
from dataclasses import dataclass
from typing import Iterator, Sequence

from indexer.git.runner import GitError, PathLike, last_line, start_git

_COMMIT_MARK = "\x01\x02commit "


@dataclass(frozen=True)
class RawCommit:
    """One commit as ``git log`` gives it. ``patch`` is empty when the commit is over the size limits
    (``files`` and ``changed_lines`` still count it), so a vendoring commit costs only its read."""

    sha: str
    parents: tuple[str, ...]
    message: str
    patch: str
    files: int
    changed_lines: int
    time: int = 0  # author time, seconds since the epoch
    author: str = ""  # author name, as git records it
    email: str = ""  # author email; with the name, how a bot (dependabot[bot], renovate) is told apart


@dataclass(frozen=True)
class LogLimits:
    """Above either limit a commit keeps its counts but not its patch text."""

    max_files: int = 10
    max_changed_lines: int = 500


def iter_commits(
    repo: PathLike,
    revisions: Sequence[str] = ("HEAD",),
    *,
    limits: LogLimits = LogLimits(),
    max_count: int | None = None,
    only: Sequence[str] | None = None,
    renames: bool = True,
    include_root: bool = False,
) -> Iterator[RawCommit]:
    """Non-merge commits reachable from ``revisions``, newest first, each with a ``-U0`` patch.

    ``only`` reads exactly these commits instead (``--no-walk``, SHAs fed on stdin), which is how
    the history index reads just the commits it has not stored yet. Root commits (nothing existed
    before them) are skipped unless ``include_root``. ``renames=False`` turns rename detection off,
    which a repository with missing blobs (a partial mirror) needs, since detection reads them.
    A failing ``git log`` raises :class:`GitError` once the stream ends.
    """
    # The author rides on the mark line after NULs: a name may hold spaces, never a NUL or newline.
    fmt = f"{_COMMIT_MARK}%H %P %at%x00%an%x00%ae%n%B%x02"
    args = ["log", "--no-merges", "--no-color", "--no-ext-diff", "--no-textconv", "-p", "-U0",
            f"--format={fmt}", "-M" if renames else "--no-renames"]
    if max_count is not None:
        args.append(f"-n{max_count}")
    if only is not None:
        args += ["--no-walk=unsorted", "--stdin"]
    else:
        args += [*revisions]
    args.append("--")
    with tempfile.TemporaryFile() as errors:
        proc = start_git(args, repo=repo, stdin=subprocess.PIPE if only is not None else subprocess.DEVNULL,
                         stdout=subprocess.PIPE, stderr=errors)
        assert proc.stdout is not None
        if only is not None:
            assert proc.stdin is not None
            _feed(proc, only)
        finished = False
        try:
            yield from _parse(proc.stdout, limits, include_root)
            finished = True
        finally:
            proc.stdout.close()
            if not finished:
                proc.kill()
            returncode = proc.wait()
        if finished and returncode != 0:
            errors.seek(0)
            stderr = errors.read().decode("utf-8", errors="replace")
            raise GitError(f"git log failed in {repo}: {last_line(stderr)}", command=args, returncode=returncode,
                           stderr=stderr)


def _feed(proc: subprocess.Popen[bytes], shas: Sequence[str]) -> None:
    """Write the SHAs on a thread: a long list would fill the pipe while git already writes output."""
    import threading

    def write() -> None:
        try:
            assert proc.stdin is not None
            proc.stdin.write("".join(f"{sha}\n" for sha in shas).encode("ascii"))
            proc.stdin.close()
        except (BrokenPipeError, ValueError):
            pass

    threading.Thread(target=write, daemon=True).start()


def _parse(stream, limits: LogLimits, include_root: bool) -> Iterator[RawCommit]:
    current: dict | None = None

    def finish(c: dict | None) -> RawCommit | None:
        if c is None or (not c["parents"] and not include_root):
            return None
        return RawCommit(c["sha"], c["parents"], c["message"], "".join(c["patch"]) if c["keep"] else "",
                         c["files"], c["lines"], c["time"], c["author"], c["email"])

    in_message = False
    for raw in stream:
        line = raw.decode("utf-8", errors="replace")
        if line.startswith(_COMMIT_MARK):
            done = finish(current)
            if done is not None:
                yield done
            head, _, ident = line[len(_COMMIT_MARK):].rstrip("\r\n").partition("\x00")
            author, _, email = ident.partition("\x00")
            fields = head.split()
            time = int(fields[-1]) if len(fields) >= 2 and fields[-1].isdigit() else 0
            current = {"sha": fields[0], "parents": tuple(fields[1:-1]), "time": time, "author": author.strip(),
                       "email": email.strip(), "msg": [], "message": "",
                       "patch": [], "files": 0, "lines": 0, "keep": True}
            in_message = True
            continue
        if current is None:
            continue
        if in_message:
            if "\x02" in line:
                current["msg"].append(line.split("\x02", 1)[0])
                current["message"] = "".join(current["msg"]).strip()
                in_message = False
            else:
                current["msg"].append(line)
            continue
        if line.startswith("diff --git "):
            current["files"] += 1
        elif line[:1] in ("+", "-") and not line.startswith(("+++ ", "--- ")):
            current["lines"] += 1
        if current["files"] > limits.max_files or current["lines"] > limits.max_changed_lines:
            current["keep"] = False
            current["patch"] = []
        if current["keep"]:
            current["patch"].append(line)
    done = finish(current)
    if done is not None:
        yield done
