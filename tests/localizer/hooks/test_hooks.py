"""Git hooks that keep the index fresh: install/uninstall round trips, background refreshes, races, rebases."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from filelock import FileLock

from indexer.index import IndexConfig, build_index, repo_state_dir
from localizer.cli.main import main
from localizer.hooks.install import (
    CREATED_HEADER,
    HOOK_NAMES,
    HookError,
    can_insert,
    find_block,
    hook_status,
    insert_block,
    install_hooks,
    remove_block,
    render_block,
    render_status,
    uninstall_hooks,
)
from localizer.hooks.refresh import HookConfig, RequestQueue, read_hook_state, refresh_repo

from tests.conftest import HashingEncoder, commit_all, git, make_git_repo

SH = shutil.which("sh") or "/bin/sh"


def run(*args, input=None):
    return CliRunner().invoke(main, [str(a) for a in args], input=input, catch_exceptions=False)


def _config(index_dir: Path, retriever: str = "bm25", **kw) -> HookConfig:
    return HookConfig(retriever=retriever, index_dir=str(index_dir), **kw)


def _state_dir(repo: Path, index_dir: Path) -> Path:
    return repo_state_dir(index_dir, repo.resolve())


def _wait_for(predicate, timeout: float = 40.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def _head(repo: Path) -> str:
    return git(repo, "rev-parse", "HEAD").strip()


def _refreshed_at(repo: Path, index_dir: Path, commit: str, hook: str | None = None):
    def check():
        state = read_hook_state(_state_dir(repo, index_dir)) or {}
        success = state.get("last_success") or {}
        if success.get("commit") == commit and (hook is None or success.get("hook") == hook):
            return success
        return None

    return check


def _log(index_dir: Path) -> str:
    path = index_dir / "hook.log"
    return path.read_text() if path.exists() else ""


# --------------------------------------------------------------------------- pure: the managed block


@pytest.mark.parametrize("mode", ["created", "inserted", "wrapped"])
@pytest.mark.parametrize("hook", HOOK_NAMES)
def test_block_is_valid_posix_sh(tmp_path, hook, mode):
    script = CREATED_HEADER + render_block(hook, _config(tmp_path / "idx it's"), "/opt/py env/bin/python", mode)
    path = tmp_path / "hook"
    path.write_bytes(script)
    check = subprocess.run([SH, "-n", str(path)], capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
    block = find_block(script)
    assert block is not None and block.mode == mode and block.config.retriever == "bm25"
    assert block.meta["python"] == "/opt/py env/bin/python"


ORIGINALS = [
    b"#!/bin/sh\necho hello\nexit 3\n",
    b"#!/usr/bin/env bash\nset -euo pipefail\nread -r x || true\n",
    b"#!/bin/sh -e\r\necho crlf\r\n",
    b"#!/bin/sh\necho 'no newline at the end'",
]


@pytest.mark.parametrize("original", ORIGINALS)
def test_insert_then_remove_restores_bytes(original):
    assert can_insert(original)
    block = render_block("post-commit", HookConfig(index_dir="/idx"), "/usr/bin/python3", "inserted")
    installed = insert_block(original, block)
    assert installed.startswith(original.split(b"\n", 1)[0] + b"\n" + block)
    found = find_block(installed)
    assert remove_block(installed, found) == original


@pytest.mark.parametrize("data,expected", [
    (b"#!/bin/sh\n", True),
    (b"#!/bin/bash -e\nx\n", True),
    (b"#!/usr/bin/env zsh\n", True),
    (b"#!/usr/bin/env python3\nprint(1)\n", False),
    (b"#!/bin/sh", False),  # no newline after the shebang: wrap instead
    (b"echo no shebang\n", False),
    (b"#!/usr/bin/env node\n", False),
])
def test_can_insert_only_into_sh_scripts(data, expected):
    assert can_insert(data) is expected


def test_damaged_block_is_refused():
    with pytest.raises(HookError, match="no end marker"):
        find_block(b"#!/bin/sh\n# >>> localizer hook >>>\necho half\n")


# --------------------------------------------------------------------------- install / uninstall


@pytest.fixture
def repo(tmp_path):
    return make_git_repo(tmp_path / "proj", {"app/core.py": "def handle(request):\n    return request\n"})


def test_install_twice_is_a_no_op_with_a_message(repo, tmp_path):
    index_dir = tmp_path / "idx"
    first = run("hook", "install", "--repo", repo, "--retriever", "bm25", "--index-dir", index_dir)
    assert first.exit_code == 0, first.output
    for name in HOOK_NAMES:
        path = repo / ".git" / "hooks" / name
        assert path.stat().st_mode & stat.S_IXUSR
    before = {name: (repo / ".git/hooks" / name).read_bytes() for name in HOOK_NAMES}
    second = run("hook", "install", "--repo", repo, "--retriever", "bm25", "--index-dir", index_dir)
    assert second.exit_code == 0
    assert "already installed" in second.stdout and "nothing changed" in second.stdout
    assert before == {name: (repo / ".git/hooks" / name).read_bytes() for name in HOOK_NAMES}
    # Other settings update the block in place, still one block per hook.
    third = run("hook", "install", "--repo", repo, "--retriever", "dense", "--index-dir", index_dir)
    assert "updated" in third.stdout
    text = (repo / ".git/hooks/post-commit").read_bytes()
    assert text.count(b">>> localizer hook >>>") == 1 and b"--retriever dense" in text


def test_uninstall_when_never_installed(repo):
    result = run("hook", "uninstall", "--repo", repo)
    assert result.exit_code == 0
    assert "not installed" in result.stdout and "nothing to do" in result.stdout


def test_uninstall_restores_every_kind_of_existing_hook_byte_for_byte(repo, tmp_path):
    hooks = repo / ".git" / "hooks"
    sh_hook = b"#!/bin/sh\n# team hook\necho committed >> /dev/null\n"
    py_hook = b"#!/usr/bin/env python3\nprint('merged')\n"
    lazy_hook = b"#!/bin/sh\necho never runs: not executable\n"
    (hooks / "post-commit").write_bytes(sh_hook)
    (hooks / "post-commit").chmod(0o750)
    (hooks / "post-merge").write_bytes(py_hook)
    (hooks / "post-merge").chmod(0o755)
    (hooks / "post-rewrite").write_bytes(lazy_hook)
    (hooks / "post-rewrite").chmod(0o644)
    (hooks / "shared-checkout").write_bytes(b"#!/bin/sh\n")
    (hooks / "shared-checkout").chmod(0o755)
    (hooks / "post-checkout").symlink_to("shared-checkout")
    snapshot = {
        name: (os.readlink(hooks / name) if (hooks / name).is_symlink() else (hooks / name).read_bytes(),
               stat.S_IMODE(os.lstat(hooks / name).st_mode))
        for name in HOOK_NAMES
    }

    result = install_hooks(repo, _config(tmp_path / "idx"))
    actions = {c.hook: c.action for c in result.changes}
    assert actions == {"post-commit": "inserted", "post-merge": "wrapped", "post-checkout": "wrapped",
                       "post-rewrite": "wrapped"}
    assert (hooks / "post-merge.localizer-orig").read_bytes() == py_hook
    assert stat.S_IMODE((hooks / "post-commit").stat().st_mode) == 0o750

    out = run("hook", "uninstall", "--repo", repo)
    assert out.exit_code == 0 and "restored" in out.stdout
    after = {
        name: (os.readlink(hooks / name) if (hooks / name).is_symlink() else (hooks / name).read_bytes(),
               stat.S_IMODE(os.lstat(hooks / name).st_mode))
        for name in HOOK_NAMES
    }
    assert after == snapshot
    assert not list(hooks.glob("*.localizer-orig"))
    # A second uninstall finds nothing to do.
    assert "nothing to do" in run("hook", "uninstall", "--repo", repo).stdout


def test_uninstall_removes_created_hooks_entirely(repo, tmp_path):
    install_hooks(repo, _config(tmp_path / "idx"))
    uninstall_hooks(repo)
    assert not any((repo / ".git/hooks" / name).exists() for name in HOOK_NAMES)


def test_chained_hooks_still_run_with_their_stdin(repo, tmp_path):
    hooks = repo / ".git" / "hooks"
    marker = tmp_path / "python-hook-ran"
    rewritten = tmp_path / "rewritten.txt"
    (hooks / "post-commit").write_text(f"#!{sys.executable}\nopen({str(marker)!r}, 'w').write('yes')\n")
    (hooks / "post-commit").chmod(0o755)
    (hooks / "post-rewrite").write_text(f"#!/bin/sh\ncat > '{rewritten}'\n")
    (hooks / "post-rewrite").chmod(0o755)
    index_dir = tmp_path / "idx"
    install_hooks(repo, _config(index_dir))
    (repo / "app/core.py").write_text("def handle(request):\n    return request or None\n")
    old = commit_all(repo, "change")
    assert marker.read_text() == "yes"
    git(repo, "commit", "-q", "--amend", "-m", "change, amended")
    assert rewritten.read_text().split()[0] == old  # post-rewrite got "<old> <new>" on stdin
    _wait_for(_refreshed_at(repo, index_dir, _head(repo)), what="the refresh after the amend")


def test_block_survives_strict_shell_options_in_the_original_hook(repo, tmp_path):
    hooks = repo / ".git" / "hooks"
    marker = tmp_path / "strict-ran"
    (hooks / "post-commit").write_text(f"#!/bin/sh -eu\necho \"$0\" > '{marker}'\n")
    (hooks / "post-commit").chmod(0o755)
    index_dir = tmp_path / "idx"
    install_hooks(repo, _config(index_dir))
    (repo / "app/core.py").write_text("def handle(request):\n    return request.body\n")
    commit = commit_all(repo, "strict hook")
    assert marker.read_text().strip().endswith("post-commit")
    _wait_for(_refreshed_at(repo, index_dir, commit), what="the refresh from a set -eu hook")


def test_install_refuses_a_bare_repository_and_a_plain_directory(repo, tmp_path):
    bare = tmp_path / "bare.git"
    subprocess.run(["git", "clone", "-q", "--bare", str(repo), str(bare)], check=True)
    result = run("hook", "install", "--repo", bare, "--index-dir", tmp_path / "idx")
    assert result.exit_code == 1 and "bare repository" in result.stderr
    plain = tmp_path / "plain"
    plain.mkdir()
    result = run("hook", "install", "--repo", plain, "--index-dir", tmp_path / "idx")
    assert result.exit_code == 1 and "not a git repository" in result.stderr
    assert result.stderr.count("localize: error:") == 1


# --------------------------------------------------------------------------- background refresh through git


def test_commit_refreshes_the_index_in_the_background(repo, tmp_path):
    index_dir = tmp_path / "idx"
    install_hooks(repo, _config(index_dir))
    (repo / "app/views.py").write_text("def render_page(page):\n    return page.title\n")
    commit = commit_all(repo, "add views")
    record = _wait_for(_refreshed_at(repo, index_dir, commit), what="the post-commit refresh")
    assert record["hook"] == "post-commit" and record["branch"] == "main" and record["error"] is None
    assert record["stats"]["files"] == 2 and record["duration_s"] >= 0
    assert "post-commit" in _log(index_dir) and "ok: refreshed main" in _log(index_dir)
    status = run("hook", "status", "--repo", repo)
    assert status.exit_code == 0
    assert f"main @ {commit[:12]}" in status.stdout and "last error:   none" in status.stdout
    payload = json.loads(run("hook", "status", "--repo", repo, "--format", "json").stdout)
    assert payload["installed"] == "all" and payload["last_success"]["commit"] == commit


def test_hooks_never_block_git_even_when_the_refresh_must_wait(repo, tmp_path):
    """Checked by the order of events, not by a wall-clock bound (which flaked on a busy machine): the
    commit returns while another refresh holds the lock, its refresh is then waiting, and it starts
    only after the lock is released. A hook that waited for the lock would never let the commit return."""
    index_dir = tmp_path / "idx"
    install_hooks(repo, _config(index_dir))
    state_dir = _state_dir(repo, index_dir)
    state_dir.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(state_dir / "hook-refresh.lock"))
    committed: list[str] = []
    with lock:  # a refresh "in progress": the new one has to wait for it
        (repo / "app/core.py").write_text("def handle(request):\n    return 1\n")
        committing = threading.Thread(target=lambda: committed.append(commit_all(repo, "while another refresh runs")))
        committing.start()
        committing.join(120)  # generous: only a hook that waits for the lock would never return
        assert not committing.is_alive() and committed, "git commit waited for the refresh lock"
        commit = committed[0]
        _wait_for(lambda: RequestQueue(state_dir).latest() >= 1, what="the hook's refresh request")
        assert _refreshed_at(repo, index_dir, commit)() is None
        released_at = time.time()
    record = _wait_for(_refreshed_at(repo, index_dir, commit), what="the refresh once the lock is free")
    assert record["started_at"] >= released_at


def test_hooks_work_with_core_hooks_path(repo, tmp_path):
    index_dir = tmp_path / "idx"
    git(repo, "config", "core.hooksPath", ".githooks")
    result = run("hook", "install", "--repo", repo, "--retriever", "bm25", "--index-dir", index_dir)
    assert result.exit_code == 0 and str(repo / ".githooks") in result.stdout
    assert (repo / ".githooks/post-commit").is_file() and not (repo / ".git/hooks/post-commit").exists()
    (repo / "app/core.py").write_text("def handle(request):\n    return 2\n")
    commit = commit_all(repo, "with hooksPath")
    _wait_for(_refreshed_at(repo, index_dir, commit), what="the refresh through core.hooksPath")
    assert "core.hooksPath" in run("hook", "status", "--repo", repo).stdout
    uninstall_hooks(repo)
    assert not any((repo / ".githooks" / name).exists() for name in HOOK_NAMES)


def test_rebase_skips_refreshes_until_post_rewrite(repo, tmp_path):
    index_dir = tmp_path / "idx"
    git(repo, "checkout", "-q", "-b", "feature")
    for i in range(2):
        (repo / f"app/feature{i}.py").write_text(f"def feature_{i}():\n    return {i}\n")
        commit_all(repo, f"feature {i}")
    git(repo, "checkout", "-q", "main")
    (repo / "app/base.py").write_text("def base():\n    return 0\n")
    commit_all(repo, "base")
    git(repo, "checkout", "-q", "feature")
    install_hooks(repo, _config(index_dir))
    git(repo, "rebase", "-q", "main")
    head = _head(repo)
    record = _wait_for(_refreshed_at(repo, index_dir, head, hook="post-rewrite"), what="the post-rewrite refresh")
    assert record["stats"]["files"] == 4
    log_text = _log(index_dir)
    assert "post-commit" in log_text and "skipped: a rebase is in progress" in log_text


def test_hook_run_during_a_rebase_says_so_and_does_nothing(repo, tmp_path):
    index_dir = tmp_path / "idx"
    (repo / ".git/rebase-merge").mkdir()
    outcome = refresh_repo(repo, _config(index_dir), hook="post-commit")
    assert outcome.status == "skipped" and "rebase is in progress" in outcome.message
    assert read_hook_state(_state_dir(repo, index_dir)) is None
    cli = subprocess.run([sys.executable, "-m", "localizer.cli", "hook", "run", "--repo", str(repo), "--retriever",
                          "bm25", "--index-dir", str(index_dir)], capture_output=True, text=True)
    assert cli.returncode == 0 and "skipped: a rebase is in progress" in cli.stdout
    install_hooks(repo, _config(index_dir))
    assert "refreshes are paused" in render_status(hook_status(repo))
    # The hook itself skips without starting Python, and says why in the log.
    subprocess.run([SH, str(repo / ".git/hooks/post-commit")], cwd=repo, check=True)
    assert "skipped: a rebase is in progress" in _log(index_dir)


def test_a_missing_interpreter_is_logged_not_fatal(repo, tmp_path):
    index_dir = tmp_path / "idx"
    install_hooks(repo, _config(index_dir), interpreter=str(tmp_path / "gone/bin/python"))
    (repo / "app/core.py").write_text("def handle(request):\n    return 3\n")
    commit_all(repo, "commit still works")
    assert "is gone; run 'localize hook install' again" in _log(index_dir)
    assert "BROKEN" in render_status(hook_status(repo))


# --------------------------------------------------------------------------- the refresh itself


class BlockingEncoder(HashingEncoder):
    """Holds the refresh lock inside embedding until the test lets it go."""

    def __init__(self) -> None:
        super().__init__()
        self.entered = threading.Event()
        self.release = threading.Event()

    def encode_documents(self, texts):
        self.entered.set()
        assert self.release.wait(20)
        return super().encode_documents(texts)


def test_concurrent_refreshes_the_later_one_wins(repo, tmp_path):
    index_dir = tmp_path / "idx"
    config = _config(index_dir, retriever="dense")
    queue = RequestQueue(_state_dir(repo, index_dir))
    blocking = BlockingEncoder()
    outcomes: dict[str, object] = {}

    def refresh(name, encoder):
        outcomes[name] = refresh_repo(repo, config, hook=name, encoder_factory=lambda _: encoder, poll_interval=0.05)

    a = threading.Thread(target=refresh, args=("a", blocking))
    a.start()
    assert blocking.entered.wait(20)  # a holds the lock, mid-build
    b = threading.Thread(target=refresh, args=("b", HashingEncoder()))
    b.start()
    _wait_for(lambda: queue.latest() == 2, what="b's request")
    c_encoder = HashingEncoder()
    c = threading.Thread(target=refresh, args=("c", c_encoder))
    c.start()
    b.join(10)
    assert outcomes["b"].status == "superseded"  # a waiting refresh gives way without waiting for the lock
    blocking.release.set()
    a.join(20)
    c.join(20)
    assert outcomes["a"].status == "superseded"  # the running one stops at its next checkpoint
    assert outcomes["c"].status == "ok", outcomes["c"].message
    state = read_hook_state(_state_dir(repo, index_dir))
    assert state["last_success"]["ticket"] == 3 and state["last_run"]["hook"] == "c"
    # What a cached before stopping was kept, and the index is whole.
    assert outcomes["c"].record["stats"]["parsed_files"] == 0
    again = build_index(repo, encoder=HashingEncoder(), config=IndexConfig(index_dir=index_dir))
    assert again.stats.parsed_files == 0 and again.stats.embedded_chunks == 0
    assert json.loads((_state_dir(repo, index_dir) / "state.json").read_text())["repo"] == str(repo.resolve())


def test_simultaneous_hook_processes_do_not_corrupt_the_index(repo, tmp_path):
    index_dir = tmp_path / "idx"
    command = [sys.executable, "-m", "localizer.cli", "hook", "run", "--repo", str(repo), "--retriever", "bm25",
               "--index-dir", str(index_dir)]
    procs = [subprocess.Popen(command + ["--hook", f"p{i}"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True) for i in range(4)]
    outputs = [p.communicate(timeout=60)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs), outputs
    assert all(" ok: " in out or " superseded: " in out for out in outputs), outputs
    state_dir = _state_dir(repo, index_dir)
    state = read_hook_state(state_dir)
    assert state["last_success"]["ticket"] == RequestQueue(state_dir).latest() == 4
    again = build_index(repo, config=IndexConfig(index_dir=index_dir))
    assert again.stats.parsed_files == 0 and len(again.chunks) == state["last_success"]["chunks"]


def test_model_is_not_loaded_when_nothing_needs_embedding(repo, tmp_path):
    index_dir = tmp_path / "idx"
    loads = []

    def factory(config):
        loads.append(config.model)
        return HashingEncoder()

    config = _config(index_dir, retriever="hybrid")
    first = refresh_repo(repo, config, encoder_factory=factory)
    assert first.status == "ok" and first.record["encoder_loaded"] and len(loads) == 1
    second = refresh_repo(repo, config, encoder_factory=factory)
    assert second.status == "ok" and second.record["encoder_loaded"] is False and len(loads) == 1
    assert "model not loaded" in second.message
    (repo / "app/core.py").write_text("def handle(request):\n    return request.user\n")
    third = refresh_repo(repo, config, encoder_factory=factory)
    assert third.record["encoder_loaded"] and third.record["stats"]["embedded_chunks"] >= 1 and len(loads) == 2


def test_status_shows_the_last_error(repo, tmp_path):
    index_dir = tmp_path / "idx"
    config = _config(index_dir, retriever="dense", model=str(tmp_path / "no-such-model"))
    install_hooks(repo, config)
    outcome = refresh_repo(repo, config, hook="post-commit")
    assert outcome.status == "error" and "model path does not exist" in outcome.message
    text = render_status(hook_status(repo))
    assert "last refresh: never" in text and "last error:" in text and "model path does not exist" in text


def test_refresh_on_unborn_and_detached_heads(tmp_path):
    index_dir = tmp_path / "idx"
    empty = tmp_path / "empty"
    empty.mkdir()
    git(empty, "init", "-q", "-b", "main")
    (empty / "mod.py").write_text("def f():\n    return 1\n")
    git(empty, "add", "mod.py")
    outcome = refresh_repo(empty, _config(index_dir))
    assert outcome.status == "ok" and "(no commits)" in outcome.message and outcome.record["commit"] is None
    install_hooks(empty, _config(index_dir))
    assert "(no commits yet)" in render_status(hook_status(empty))

    repo = make_git_repo(tmp_path / "det", {"a.py": "def a():\n    return 1\n"})
    git(repo, "checkout", "-q", "--detach")
    outcome = refresh_repo(repo, _config(index_dir))
    assert outcome.status == "ok" and outcome.record["detached"] and "detached HEAD @" in outcome.message


def test_a_refresh_stores_the_history_of_the_new_commit(tmp_path):
    """The post-commit refresh computes the new commit's history record, so localize reads it warm."""
    from indexer.history.store import read_history
    from tests.sample_repo import SAMPLE_FILES

    repo = make_git_repo(tmp_path / "repo", SAMPLE_FILES)
    (repo / "shop" / "cart.py").write_text((repo / "shop" / "cart.py").read_text() + "\n# changed\n")
    commit = commit_all(repo, "Fix the cart total")
    config = _config(tmp_path / "index")
    assert refresh_repo(repo, config, hook="post-commit").status == "ok"
    history = read_history(repo, None, config.index_config(), config.localize_config().history_settings())
    assert history.computed == 0 and history.records[0].sha == commit
