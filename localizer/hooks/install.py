"""Install, remove and inspect the git hooks that keep the index fresh.

Each hook gets one *managed block*: a few lines of POSIX sh between
``# >>> localizer hook >>>`` and ``# <<< localizer hook <<<`` that launch
``python -m localizer.cli hook run`` detached in the background and return at
once. The block is the only thing localizer ever writes into a hook, so:

- a hook that already exists keeps running. A sh script gets the block right
  after its ``#!`` line (its exit status and stdin are untouched); any other
  hook (Python, a symlink, a non-executable file) is moved to
  ``<hook>.localizer-orig`` and chained from a small wrapper;
- ``uninstall`` cuts the block out again, or moves the original back, which
  restores the file byte for byte;
- installing twice with the same settings changes nothing.

The block records the interpreter that installed it (so hooks work inside a
virtualenv without activating it) and the retriever, model and index dir, so
background refreshes build exactly the index that queries will read.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shlex
import stat
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from indexer.storage.atomic import atomic_write_bytes
from indexer.errors import LocalizerError, RepositoryError
from indexer.git.runner import GitError, last_line, run_git
from indexer.index import repo_state_dir

from localizer.triage.gitinfo import GIT_HOOK_ENV, clean_git_env, read_repo_state
from localizer.hooks.refresh import HOOK_STATE_FILE, HookConfig, read_hook_state, read_json, read_request, resolve_root

log = logging.getLogger(__name__)

HOOK_NAMES = ("post-commit", "post-merge", "post-checkout", "post-rewrite")
BEGIN = b"# >>> localizer hook >>>"
END = b"# <<< localizer hook <<<"
ORIG_SUFFIX = ".localizer-orig"
CREATED_HEADER = b"#!/bin/sh\n"
BLOCK_VERSION = 1
REBASE_WAIT_S = 120

_SH_SHEBANG = re.compile(rb"^#!\s*(?:\S*/)?(?:env\s+(?:-\S+\s+)*)?(?:sh|bash|dash|ksh|mksh|ash|zsh)(?:\s|$)")


class HookError(LocalizerError):
    """A hook file cannot be changed safely (damaged block, leftover backup, bare repository)."""


# --------------------------------------------------------------------------- pure: the block


@dataclass(frozen=True)
class ManagedBlock:
    """Where localizer's block sits in a hook file, and what it says about itself."""

    start: int  # byte offset of the BEGIN line
    end: int  # byte offset just past the END line's newline
    meta: dict[str, Any]

    @property
    def mode(self) -> str:
        return str(self.meta.get("mode", "inserted"))

    @property
    def config(self) -> HookConfig | None:
        data = self.meta.get("config")
        return HookConfig.from_dict(data) if isinstance(data, dict) else None


def render_block(hook: str, config: HookConfig, interpreter: str, mode: str) -> bytes:
    """The managed block for one hook. ``mode`` ``wrapped`` adds the call of the moved original.

    post-rewrite after ``--amend`` is skipped (post-commit already ran); during a
    rebase every hook but post-rewrite is skipped, and post-rewrite waits for the
    rebase to finish, since git runs it while the rebase state still exists.
    A branch switch that keeps the same commit changes no file and is skipped too.
    """
    if hook not in HOOK_NAMES:
        raise ValueError(f"unknown hook {hook}")
    for text in (interpreter, config.index_dir, config.issues_dir or "", config.reports_dir or ""):
        if "\n" in text or "\r" in text:
            raise HookError(f"a path with a line break cannot go into a hook: {text!r}")
    meta = json.dumps({"version": BLOCK_VERSION, "hook": hook, "mode": mode, "python": interpreter,
                       "config": config.to_dict()}, sort_keys=True, ensure_ascii=True)
    q = shlex.quote
    log_path = config.log_path()
    run_args = " ".join(q(a) for a in config.to_args())
    lines = [
        f"{BEGIN.decode()} managed by `localize hook install`; `localize hook uninstall` removes it",
        f"# localizer-hook: {meta}",
        "# Refreshes the localizer index in the background: it never blocks this hook or changes its result.",
        "(",
        f"  _lz_py={q(interpreter)}",
        f"  _lz_log={q(str(log_path))}",
        f"  _lz_hook={hook}",
        "  _lz_wait=0",
        '  _lz_git=$(git rev-parse --absolute-git-dir 2>/dev/null) || exit 0',
        '  _lz_top=$(git rev-parse --show-toplevel 2>/dev/null) || exit 0',
        '  _lz_now=$(date -u +%Y-%m-%dT%H:%M:%SZ)',
        f"  mkdir -p {q(str(log_path.parent))} 2>/dev/null",
    ]
    if hook == "post-rewrite":
        lines.append('  [ "${1:-}" = amend ] && exit 0  # post-commit already refreshed')
    if hook == "post-checkout":
        lines.append('  [ "${1:-}" = "${2:-}" ] && [ "${3:-}" = 1 ] && exit 0  # same commit: no file changed')
    lines += [
        '  if [ -d "$_lz_git/rebase-merge" ] || [ -d "$_lz_git/rebase-apply" ]; then',
    ]
    if hook == "post-rewrite":
        lines.append(f"    _lz_wait={REBASE_WAIT_S}  # git runs post-rewrite before it removes the rebase state")
    else:
        lines += [
            '    echo "$_lz_now $_lz_hook [$_lz_top] skipped: a rebase is in progress;'
            ' post-rewrite refreshes the index when it finishes" >>"$_lz_log"',
            "    exit 0",
        ]
    lines += [
        "  fi",
        '  if [ ! -x "$_lz_py" ]; then',
        '    echo "$_lz_now $_lz_hook [$_lz_top] error: $_lz_py is gone; run \'localize hook install\' again" >>"$_lz_log"',
        "    exit 0",
        "  fi",
        f"  unset {' '.join(GIT_HOOK_ENV)}",
        "  cd / || exit 0  # python -m puts the cwd on sys.path; the repository may have its own 'localizer'",
        '  nohup "$_lz_py" -m localizer.cli hook run --background --hook "$_lz_hook" --repo "$_lz_top"'
        f' --wait-rebase "$_lz_wait" {run_args} </dev/null >>"$_lz_log" 2>&1 &',
        ") </dev/null >/dev/null 2>&1 || :",
    ]
    if mode == "wrapped":
        lines += [
            f'if [ -x "$0{ORIG_SUFFIX}" ]; then exec "$0{ORIG_SUFFIX}" "$@"; fi  # the hook that was here before',
        ]
    lines.append(END.decode())
    return ("\n".join(lines) + "\n").encode()


def find_block(data: bytes) -> ManagedBlock | None:
    start = data.find(BEGIN)
    if start == -1:
        return None
    if start > 0 and data[start - 1 : start] != b"\n":
        raise HookError("the localizer block does not start on its own line")
    end = data.find(END, start)
    if end == -1:
        raise HookError("the localizer block has no end marker")
    newline = data.find(b"\n", end)
    stop = len(data) if newline == -1 else newline + 1
    meta: dict[str, Any] = {}
    match = re.search(rb"^# localizer-hook: (\{.*\})$", data[start:stop], re.M)
    if match:
        try:
            meta = json.loads(match.group(1))
        except ValueError:
            meta = {}
    return ManagedBlock(start, stop, meta)


def can_insert(data: bytes) -> bool:
    """A sh-family script whose first line ends in a newline can take the block after it."""
    first, newline, _ = data.partition(b"\n")
    return bool(newline) and bool(_SH_SHEBANG.match(first))


def insert_block(original: bytes, block: bytes) -> bytes:
    first, _, rest = original.partition(b"\n")
    return first + b"\n" + block + rest


def remove_block(data: bytes, block: ManagedBlock) -> bytes:
    return data[: block.start] + data[block.end :]


# --------------------------------------------------------------------------- I/O: hook files


@dataclass(frozen=True)
class HookChange:
    hook: str
    path: Path
    action: str  # created | inserted | wrapped | updated | unchanged | removed | restored | absent
    detail: str = ""


@dataclass
class HookResult:
    hooks_dir: Path
    changes: list[HookChange]
    notes: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return any(c.action not in ("unchanged", "absent") for c in self.changes)


def _write_hook(path: Path, data: bytes, mode: int) -> None:
    """Atomic, with the mode set before the rename: git skips a hook it sees non-executable."""
    atomic_write_bytes(path, data, mode)


def hooks_dir_for(root: Path) -> Path:
    """Where git looks for hooks: honours ``core.hooksPath`` and linked worktrees."""
    try:
        result = run_git(["rev-parse", "--git-path", "hooks"], repo=root, text=True, env=clean_git_env())
    except GitError as exc:
        raise RepositoryError(f"cannot find the hooks directory of {root}: {last_line(exc.stderr)}") from None
    path = Path(result.stdout.strip())
    return path if path.is_absolute() else (root / path).resolve()


def hooks_path_setting(root: Path) -> tuple[str, str] | None:
    """(scope, value) of ``core.hooksPath`` when set: global ones serve every repository."""
    result = run_git(["config", "--show-scope", "--get", "core.hooksPath"], repo=root, check=False, text=True)
    if result.returncode != 0 or not result.stdout.strip():
        return None
    scope, _, value = result.stdout.strip().partition("\t")
    return scope, value


def _work_tree_root(repo: str | os.PathLike[str]) -> Path:
    state = read_repo_state(resolve_root(repo))
    if state.bare:  # pragma: no cover - resolve_root refuses bare repositories already
        raise HookError(f"{state.root} is a bare repository")
    return state.root


def _default_interpreter() -> str:
    # Not resolved: a venv's python is a symlink, and resolving it would lose the venv.
    if not sys.executable:
        raise HookError("cannot tell which Python runs localizer (sys.executable is empty)")
    return os.path.abspath(sys.executable)


def install_hooks(repo: str | os.PathLike[str], config: HookConfig, interpreter: str | None = None,
                  hooks: tuple[str, ...] = HOOK_NAMES) -> HookResult:
    """Add the managed block to each hook; a second install with the same settings is a no-op.

    All or nothing: every hook is planned (and every path checked) before anything is written,
    and a write that still fails rolls back the hooks already changed.
    """
    root = _work_tree_root(repo)
    python = interpreter or _default_interpreter()
    config = install_config(config)
    directory = hooks_dir_for(root)
    steps = [_plan_one(directory / hook, hook, config, python) for hook in hooks]
    directory.mkdir(parents=True, exist_ok=True)
    config.resolved_index_dir().mkdir(parents=True, exist_ok=True)
    _apply(steps)
    result = HookResult(directory, [step.change for step in steps])
    setting = hooks_path_setting(root)
    if setting and setting[0] in ("global", "system"):
        result.notes.append(f"core.hooksPath is set in the {setting[0]} git config ({setting[1]}): "
                            "these hooks run for every repository that uses it")
    inside = directory.resolve().is_relative_to(root.resolve())
    if inside and not directory.resolve().is_relative_to((root / ".git").resolve()):
        result.notes.append(f"the hooks dir {directory} is inside the work tree: if it is tracked, the edited hooks show in git status")
    return result


def install_config(config: HookConfig) -> HookConfig:
    """The config as the hooks run it: from ``/``, so a relative index dir or model path must be absolute now."""
    index_dir = Path(config.index_dir).expanduser() if config.index_dir else config.resolved_index_dir()
    return replace(config, index_dir=str(index_dir if index_dir.is_absolute() else index_dir.resolve()),
                   model=absolute_model(config.model))


def absolute_model(model: str) -> str:
    """A model given as a local path, made absolute; a hub id or a packaged alias is left as it is."""
    path = Path(model).expanduser()
    if path.is_absolute():
        return str(path)
    if model.startswith(".") or (path.exists() and _loads_as_path(model)):
        return str(path.resolve())
    return model


def _loads_as_path(model: str) -> bool:
    """Whether ``--model`` would load this directory: packaged aliases win over a directory of the same name."""
    from localizer.embedding.embedder import resolve_model

    try:
        loaded, _ = resolve_model(model)
    except LocalizerError:
        return False
    return loaded == str(Path(model).resolve())


@dataclass(frozen=True)
class _Step:
    """One hook's planned change: computed before anything is written, so a bad hook stops the whole install."""

    change: HookChange
    data: bytes | None = None  # the new hook; None when it stays as it is
    mode: int = 0o755  # an edited hook keeps its mode
    previous: bytes | None = None  # what an edited hook held, for the rollback
    move_to: Path | None = None  # wrapped: where the hook that was there goes


def _plan_one(path: Path, hook: str, config: HookConfig, python: str) -> _Step:
    orig = path.with_name(path.name + ORIG_SUFFIX)
    if not os.path.lexists(path):
        return _Step(HookChange(hook, path, "created"), CREATED_HEADER + render_block(hook, config, python, "created"))
    if path.is_dir() and not path.is_symlink():
        raise HookError(f"{path} is a directory, not a hook")
    if path.is_symlink() or not path.is_file():
        return _plan_wrap(path, orig, hook, config, python,
                          "it is a symlink" if path.is_symlink() else "it is not a regular file")
    data = path.read_bytes()
    try:
        existing = find_block(data)
    except HookError as exc:
        raise HookError(f"{path}: {exc}; fix or remove the block by hand") from None
    mode = stat.S_IMODE(path.stat().st_mode)
    if existing is not None:
        block = render_block(hook, config, python, existing.mode)
        if data[existing.start : existing.end] == block:
            return _Step(HookChange(hook, path, "unchanged", existing.mode))
        return _Step(HookChange(hook, path, "updated", existing.mode), data[: existing.start] + block + data[existing.end :],
                     mode, data)
    if mode & 0o100 and can_insert(data):
        return _Step(HookChange(hook, path, "inserted"), insert_block(data, render_block(hook, config, python, "inserted")),
                     mode, data)
    reason = "it is not executable" if not mode & 0o100 else "it is not a sh script"
    return _plan_wrap(path, orig, hook, config, python, reason)


def _plan_wrap(path: Path, orig: Path, hook: str, config: HookConfig, python: str, reason: str) -> _Step:
    if os.path.lexists(orig):
        raise HookError(f"{orig} already exists (left from an earlier install?): move it back to {path.name} or remove it")
    return _Step(HookChange(hook, path, "wrapped", f"{reason}: moved to {orig.name} and chained"),
                 CREATED_HEADER + render_block(hook, config, python, "wrapped"), move_to=orig)


def _apply(steps: list[_Step]) -> None:
    """Write the planned hooks; when one fails, the ones already written are put back as they were."""
    done: list[_Step] = []
    try:
        for step in steps:
            _apply_one(step)
            done.append(step)
    except BaseException:
        for step in reversed(done):
            try:
                _undo(step)
            except OSError as exc:
                log.warning("could not roll back %s: %s", step.change.path, exc)
        raise


def _apply_one(step: _Step) -> None:
    if step.data is None:
        return
    path = step.change.path
    if step.move_to is None:
        _write_hook(path, step.data, step.mode)
        return
    os.rename(path, step.move_to)
    try:
        _write_hook(path, step.data, step.mode)
    except BaseException:
        os.rename(step.move_to, path)
        raise


def _undo(step: _Step) -> None:
    path = step.change.path
    if step.data is None:
        return
    if step.move_to is not None:
        os.replace(step.move_to, path)
    elif step.previous is not None:
        _write_hook(path, step.previous, step.mode)
    else:
        path.unlink()


def uninstall_hooks(repo: str | os.PathLike[str], hooks: tuple[str, ...] = HOOK_NAMES) -> HookResult:
    """Remove the managed blocks; every hook is left exactly as it was before install."""
    root = _work_tree_root(repo)
    directory = hooks_dir_for(root)
    result = HookResult(directory, [])
    directories = [directory]
    default = read_repo_state(root).common_dir / "hooks"
    if default.resolve() != directory.resolve():
        directories.append(default)  # installed before core.hooksPath changed
    for hook in hooks:
        changes = [_uninstall_one(d / hook, hook) for d in directories if d.is_dir()]
        real = [c for c in changes if c.action != "absent"]
        result.changes.extend(real or changes[:1] or [HookChange(hook, directory / hook, "absent")])
    return result


def _uninstall_one(path: Path, hook: str) -> HookChange:
    orig = path.with_name(path.name + ORIG_SUFFIX)
    if not path.is_file() or path.is_symlink():
        return HookChange(hook, path, "absent")
    data = path.read_bytes()
    try:
        block = find_block(data)
    except HookError as exc:
        raise HookError(f"{path}: {exc}; fix or remove the block by hand") from None
    if block is None:
        return HookChange(hook, path, "absent")
    if block.mode == "wrapped":
        if os.path.lexists(orig):
            os.replace(orig, path)
            return HookChange(hook, path, "restored", f"moved {orig.name} back")
        path.unlink()
        return HookChange(hook, path, "removed", f"{orig.name} was missing, so there was nothing to restore")
    rest = remove_block(data, block)
    if block.mode == "created" and rest == CREATED_HEADER:
        path.unlink()
        return HookChange(hook, path, "removed")
    _write_hook(path, rest, stat.S_IMODE(path.stat().st_mode))
    detail = "kept what was added outside the block" if block.mode == "created" else ""
    return HookChange(hook, path, "restored", detail)


# --------------------------------------------------------------------------- status


@dataclass
class HookFileStatus:
    hook: str
    path: Path
    installed: bool
    mode: str | None = None
    config: HookConfig | None = None
    python: str | None = None
    python_ok: bool | None = None


@dataclass
class HookStatus:
    repo: Path
    hooks_dir: Path
    hooks_path: tuple[str, str] | None
    files: list[HookFileStatus]
    config: HookConfig | None
    state_dir: Path
    hook_state: dict[str, Any] | None
    index_record: dict[str, Any] | None
    rebasing: bool
    log_path: Path
    pending: dict[str, Any] | None = None

    @property
    def installed(self) -> str:
        count = sum(f.installed for f in self.files)
        return "all" if count == len(self.files) else "none" if count == 0 else "some"

    def to_json_dict(self) -> dict[str, Any]:
        return {
            "repo": str(self.repo),
            "hooks_dir": str(self.hooks_dir),
            "core_hooks_path": list(self.hooks_path) if self.hooks_path else None,
            "installed": self.installed,
            "hooks": {f.hook: {"installed": f.installed, "mode": f.mode, "python": f.python, "python_ok": f.python_ok,
                               "path": str(f.path)} for f in self.files},
            "config": self.config.to_dict() if self.config else None,
            "state_dir": str(self.state_dir),
            "last_run": (self.hook_state or {}).get("last_run"),
            "last_success": (self.hook_state or {}).get("last_success"),
            "index": self.index_record,
            "pending_request": self.pending,
            "rebase_in_progress": self.rebasing,
            "log": str(self.log_path),
        }


def hook_status(repo: str | os.PathLike[str], index_dir: Path | None = None) -> HookStatus:
    root = _work_tree_root(repo)
    directory = hooks_dir_for(root)
    files: list[HookFileStatus] = []
    config: HookConfig | None = None
    for hook in HOOK_NAMES:
        path = directory / hook
        block = None
        if path.is_file():
            try:
                block = find_block(path.read_bytes())
            except HookError:
                block = None
        if block is None:
            files.append(HookFileStatus(hook, path, False))
            continue
        python = block.meta.get("python")
        files.append(HookFileStatus(hook, path, True, block.mode, block.config, python,
                                    bool(python) and os.access(python, os.X_OK)))
        config = config or block.config
    if index_dir is not None:
        base = HookConfig(index_dir=str(Path(index_dir).expanduser().resolve()))
    else:
        base = config or HookConfig()
    state_dir = repo_state_dir(base.resolved_index_dir(), root)
    hook_state = read_hook_state(state_dir)
    request = read_request(state_dir)
    last_ticket = ((hook_state or {}).get("last_run") or {}).get("ticket")
    pending = request if request and request.get("seq") != last_ticket else None
    return HookStatus(
        repo=root,
        hooks_dir=directory,
        hooks_path=hooks_path_setting(root),
        files=files,
        config=config,
        state_dir=state_dir,
        hook_state=hook_state,
        index_record=read_json(state_dir / "state.json"),
        rebasing=read_repo_state(root).rebasing,
        log_path=base.log_path(),
        pending=pending,
    )


def _ago(seconds: float) -> str:
    seconds = max(0, int(seconds))
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds // size} {unit} ago"
    return f"{seconds} s ago"


def _when(stamp: Any, now: float) -> str:
    """A time read from a state file; anything but a number (``state.json`` is not ours to validate) is "?"."""
    if not isinstance(stamp, (int, float)) or isinstance(stamp, bool) or not stamp:
        return "?"
    try:
        return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(stamp)) + f" ({_ago(now - stamp)})"
    except (OverflowError, OSError, ValueError):  # inf, nan, or past what the platform's clock holds
        return "?"


def render_status(status: HookStatus, now: float | None = None) -> str:
    """``localize hook status`` as text: installed or not, last refresh, last error."""
    now = time.time() if now is None else now
    out = [f"repository: {status.repo}", f"hooks dir:  {status.hooks_dir}"
           + (f"  (core.hooksPath, {status.hooks_path[0]} config)" if status.hooks_path else "")]
    for f in status.files:
        if not f.installed:
            out.append(f"  {f.hook:<14} not installed")
            continue
        how = {"created": "installed", "inserted": "installed, chained into the existing hook",
               "wrapped": f"installed, chaining {f.hook}{ORIG_SUFFIX}"}.get(f.mode or "", "installed")
        if f.python_ok is False:
            how += f"; BROKEN: interpreter {f.python} is gone, run 'localize hook install' again"
        out.append(f"  {f.hook:<14} {how}")
    if status.config:
        c = status.config
        model = "" if c.retriever == "bm25" else f", model {c.model}"
        out.append(f"config:     retriever {c.retriever}{model}, index dir {c.resolved_index_dir()}"
                   + (f", triage {c.issues_dir}" if c.issues_dir else ""))
    state = status.hook_state or {}
    success, last = state.get("last_success"), state.get("last_run")
    if success:
        where = (success.get("branch") or "detached HEAD") + (
            f" @ {success['commit'][:12]}" if success.get("commit") else " (no commits yet)")
        stats = success.get("stats") or {}
        out.append(f"last refresh: {_when(success.get('finished_at'), now)} by {success.get('hook')}, {where}, "
                   f"{success.get('duration_s', 0):.2f} s; parsed {stats.get('parsed_files', 0)} files, "
                   f"embedded {stats.get('embedded_chunks', 0)} chunks of {success.get('chunks', '?')}")
    else:
        out.append("last refresh: never (by the hooks)")
    if last and last.get("status") == "skipped":
        out.append(f"last run:     {_when(last.get('finished_at'), now)} by {last.get('hook')}: skipped, {last.get('note')}")
    elif last and last.get("status") == "error":
        out.append(f"last error:   {_when(last.get('finished_at'), now)} by {last.get('hook')}: {last.get('error')}")
    elif last:
        out.append("last error:   none")
    if status.pending and status.pending.get("requested_at"):
        out.append(f"pending:      refresh #{status.pending.get('seq')} requested by {status.pending.get('hook')} "
                   f"{_ago(now - status.pending['requested_at'])}, no result yet (running, waiting, or it died: see the log)")
    if status.index_record and status.index_record.get("built_at"):
        out.append(f"index built:  {_when(status.index_record['built_at'], now)} (by any localize run)")
    if status.rebasing:
        out.append("rebase in progress: refreshes are paused; post-rewrite refreshes the index when it finishes")
    out.append(f"log:          {status.log_path}")
    return "\n".join(out)


__all__ = [
    "HOOK_NAMES",
    "HOOK_STATE_FILE",
    "HookChange",
    "HookConfig",
    "HookError",
    "HookResult",
    "HookStatus",
    "find_block",
    "hook_status",
    "install_hooks",
    "render_block",
    "uninstall_hooks",
]
