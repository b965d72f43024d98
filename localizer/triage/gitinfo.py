"""The state a git repository is in, read once, so hooks and triage can explain odd states.

Triage and the hooks both meet repositories that are not on a tidy branch:
no commits yet, a detached HEAD, a shallow clone, a rebase half done. Each of
those changes what can be trusted (blame in a shallow clone attributes old
lines to the graft point, for instance), so the facts are gathered here and
the callers decide what to say. Git runs through :func:`indexer.git.runner.run_git`
(plain subprocesses, not gitpython: this runs inside every background hook,
where start-up time matters).
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from indexer.errors import RepositoryError
from indexer.git.runner import run_git

# Variables git exports to hooks. A background job that outlives the hook must
# not inherit them: GIT_INDEX_FILE may name a temporary index that is gone by then.
GIT_HOOK_ENV = (
    "GIT_DIR",
    "GIT_WORK_TREE",
    "GIT_INDEX_FILE",
    "GIT_PREFIX",
    "GIT_COMMON_DIR",
    "GIT_OBJECT_DIRECTORY",
    "GIT_ALTERNATE_OBJECT_DIRECTORIES",
    "GIT_QUARANTINE_PATH",
)

REBASE_DIRS = ("rebase-merge", "rebase-apply")


def _git(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Its exit status is the answer (``rev-parse --verify``), so failures are not raised."""
    return run_git(args, repo=cwd, check=False, text=True)


@dataclass(frozen=True)
class RepoState:
    """Facts about one work tree (or bare repository) at one moment."""

    root: Path  # top of the work tree; the git dir itself for a bare repository
    git_dir: Path  # this work tree's git dir (differs from common_dir in linked worktrees)
    common_dir: Path  # where hooks, objects and refs live
    bare: bool
    head: str | None  # None: no commits yet
    branch: str | None  # None: detached HEAD (an unborn branch still has a name)
    shallow: bool
    rebasing: bool

    @property
    def unborn(self) -> bool:
        return self.head is None

    @property
    def detached(self) -> bool:
        return self.branch is None and self.head is not None

    def describe_head(self) -> str:
        """``main @ 1a2b3c4d5e6f``, ``detached HEAD @ ...`` or ``main (no commits yet)``."""
        if self.head is None:
            return f"{self.branch or 'HEAD'} (no commits yet)"
        where = self.branch if self.branch else "detached HEAD"
        return f"{where} @ {self.head[:12]}"


def rebase_in_progress(git_dir: Path) -> bool:
    """Both rebase backends keep their state dir until the very end, post-rewrite included."""
    return any((git_dir / name).is_dir() for name in REBASE_DIRS)


def read_repo_state(path: str | os.PathLike[str]) -> RepoState:
    """Inspect ``path``; a clear :class:`RepositoryError` when it is not in a git repository."""
    path = Path(path).expanduser()
    if not path.is_dir():
        raise RepositoryError(f"repository path does not exist or is not a directory: {path}")
    info = _git(path, "rev-parse", "--is-bare-repository", "--absolute-git-dir", "--git-common-dir",
                "--is-shallow-repository")
    if info.returncode != 0:
        raise RepositoryError(f"{path} is not inside a git repository")
    is_bare, git_dir, common_dir, shallow = info.stdout.strip().splitlines()[:4]
    git_dir_path = Path(git_dir)
    common = Path(common_dir)
    if not common.is_absolute():
        common = (path / common).resolve()
    bare = is_bare == "true"
    if bare:
        root = git_dir_path
    else:
        top = _git(path, "rev-parse", "--show-toplevel")
        if top.returncode != 0:
            raise RepositoryError(f"{path} is inside a git directory, not a work tree")
        root = Path(top.stdout.strip())
    head = _git(root, "rev-parse", "-q", "--verify", "HEAD^{commit}")
    branch = _git(root, "symbolic-ref", "-q", "--short", "HEAD")
    return RepoState(
        root=root,
        git_dir=git_dir_path,
        common_dir=common,
        bare=bare,
        head=head.stdout.strip() if head.returncode == 0 else None,
        branch=branch.stdout.strip() if branch.returncode == 0 else None,
        shallow=shallow == "true",
        rebasing=rebase_in_progress(git_dir_path),
    )


def shallow_boundary(state: RepoState) -> set[str]:
    """Commits whose parents were cut off by a shallow clone: they "introduce" every file."""
    try:
        return set((state.common_dir / "shallow").read_text().split())
    except OSError:
        return set()


def clean_git_env() -> dict[str, str]:
    """This process's environment without the variables git sets for hooks."""
    return {k: v for k, v in os.environ.items() if k not in GIT_HOOK_ENV}
