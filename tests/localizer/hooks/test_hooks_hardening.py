"""Hooks against bad input (issue #26, cases 6 and 7): relative paths, half-done installs, damaged state files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import localizer.hooks.install as install_module
from indexer.index import repo_state_dir
from localizer.hooks.install import HOOK_NAMES, HookError, find_block, hook_status, install_hooks, render_status
from localizer.hooks.refresh import HookConfig, RequestQueue, read_hook_state, refresh_repo

from tests.cli_helpers import run
from tests.conftest import HashingEncoder, make_git_repo


@pytest.fixture
def repo(tmp_path):
    return make_git_repo(tmp_path / "proj", {"app/core.py": "def handle(request):\n    return request\n"})


def _config(index_dir: Path, retriever: str = "bm25", **kw) -> HookConfig:
    return HookConfig(retriever=retriever, index_dir=str(index_dir), **kw)


def _state_dir(repo: Path, index_dir: Path) -> Path:
    path = repo_state_dir(index_dir, repo.resolve())
    path.mkdir(parents=True, exist_ok=True)
    return path


def _hooks(repo: Path) -> dict[str, bytes | None]:
    hooks = repo / ".git" / "hooks"
    return {name: (hooks / name).read_bytes() if (hooks / name).is_file() else None for name in HOOK_NAMES}


# --------------------------------------------------------------------------- case 7: install


def test_install_stores_a_relative_model_path_as_an_absolute_one(repo, tmp_path, monkeypatch):
    """The hook runs from /, where ./models/mine names nothing: every refresh used to fail."""
    (tmp_path / "work" / "models" / "mine").mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "work")
    result = run("hook", "install", "--repo", repo, "--retriever", "dense", "--model", "./models/mine",
                 "--index-dir", "idx")
    assert result.exit_code == 0, result.stderr
    block = find_block((repo / ".git/hooks/post-commit").read_bytes())
    expected = str((tmp_path / "work" / "models" / "mine").resolve())
    assert block.config.model == expected and block.config.index_dir == str((tmp_path / "work" / "idx").resolve())
    assert f"--model {expected}" in (repo / ".git/hooks/post-commit").read_text()


def test_install_leaves_hub_ids_and_absolute_paths_alone(repo, tmp_path):
    install_hooks(repo, _config(tmp_path / "idx", "dense", model="org/some-model"))
    assert find_block((repo / ".git/hooks/post-commit").read_bytes()).config.model == "org/some-model"
    install_hooks(repo, _config(tmp_path / "idx", "dense", model=str(tmp_path / "not-yet")))
    assert find_block((repo / ".git/hooks/post-commit").read_bytes()).config.model == str(tmp_path / "not-yet")


def test_install_checks_every_hook_before_writing_any(repo, tmp_path):
    """A later hook that is a directory used to leave the earlier ones installed while install exited 1."""
    (repo / ".git/hooks/post-checkout").mkdir()
    before = _hooks(repo)
    result = run("hook", "install", "--repo", repo, "--retriever", "bm25", "--index-dir", tmp_path / "idx")
    assert result.exit_code == 1 and "is a directory, not a hook" in result.stderr
    assert _hooks(repo) == before
    assert not (tmp_path / "idx").exists()


def test_install_rolls_back_when_a_write_fails(repo, tmp_path, monkeypatch):
    hooks = repo / ".git" / "hooks"
    team = b"#!/bin/sh\necho team hook\n"
    (hooks / "post-commit").write_bytes(team)
    (hooks / "post-commit").chmod(0o750)
    (hooks / "post-merge").write_bytes(b"#!/usr/bin/env python3\nprint('merged')\n")
    (hooks / "post-merge").chmod(0o755)
    before = _hooks(repo)
    write = install_module._write_hook
    calls = []

    def failing_write(path, data, mode):
        calls.append(path.name)
        if len(calls) == 3:  # post-commit inserted, post-merge wrapped, then post-checkout fails
            raise OSError(28, "No space left on device", str(path))
        write(path, data, mode)

    monkeypatch.setattr(install_module, "_write_hook", failing_write)
    with pytest.raises(OSError):
        install_hooks(repo, _config(tmp_path / "idx"))
    assert _hooks(repo) == before
    assert (hooks / "post-commit").stat().st_mode & 0o777 == 0o750
    assert not list(hooks.glob("*.localizer-orig"))


def test_a_path_with_a_newline_is_refused_before_anything_is_created(repo, tmp_path):
    index_dir = tmp_path / "idx\nevil"
    with pytest.raises(HookError, match="line break"):
        install_hooks(repo, _config(index_dir))
    assert not index_dir.exists()
    assert _hooks(repo) == {name: None for name in HOOK_NAMES}


# --------------------------------------------------------------------------- case 6: state files


def test_a_null_seq_in_the_request_file_is_ignored_with_a_warning(repo, tmp_path, caplog):
    index_dir = tmp_path / "idx"
    state_dir = _state_dir(repo, index_dir)
    (state_dir / "hook-request.json").write_text(json.dumps({"seq": None, "requested_at": "yesterday"}))
    assert RequestQueue(state_dir).latest() == 0
    outcome = refresh_repo(repo, _config(index_dir), hook="post-commit")
    assert outcome.status == "ok" and outcome.ticket == 1
    assert "hook-request.json" in caplog.text and "wrong types" in caplog.text

    (state_dir / "hook-request.json").write_text(json.dumps({"seq": None, "requested_at": "yesterday"}))
    result = run("hook", "status", "--repo", repo, "--index-dir", index_dir)
    assert result.exit_code == 0, result.stderr
    assert "pending" not in result.stdout and "hook-request.json" in result.stderr


@pytest.mark.parametrize("state", [
    {"last_run": "oops", "last_success": [1]},
    {"last_success": {"commit": 12, "finished_at": "noon", "duration_s": "fast", "stats": []}},
    {"last_run": {"ticket": None, "finished_at": 1e999}},
])
def test_hook_status_survives_a_hook_state_of_the_wrong_type(repo, tmp_path, state):
    index_dir = tmp_path / "idx"
    (_state_dir(repo, index_dir) / "hook-state.json").write_text(json.dumps(state))
    result = run("hook", "status", "--repo", repo, "--index-dir", index_dir)
    assert result.exit_code == 0, result.stderr
    assert "Traceback" not in result.stderr and "hook-state.json" in result.stderr
    assert json.loads(run("hook", "status", "--repo", repo, "--index-dir", index_dir, "--format", "json").stdout)


@pytest.mark.parametrize("encoders", [[], {"key": "oops"}, "oops"])
def test_a_refresh_rebuilds_a_hook_state_of_the_wrong_type(repo, tmp_path, encoders):
    """A bad remembered encoder used to crash the refresh, or fail every refresh after it."""
    index_dir = tmp_path / "idx"
    state_dir = _state_dir(repo, index_dir)
    config = _config(index_dir, "dense", model="org/hub-model")
    from localizer.hooks.refresh import encoder_cache_key

    if isinstance(encoders, dict):  # the key this config looks up, holding a dim that is not a number
        encoders = {encoder_cache_key(config.embedder_config()): {"identity": "x", "dim": "abc"}}
    (state_dir / "hook-state.json").write_text(json.dumps({"encoders": encoders, "last_run": 7}))
    outcome = refresh_repo(repo, config, encoder_factory=lambda _: HashingEncoder())
    assert outcome.status == "ok", outcome.message
    state = read_hook_state(state_dir)
    assert state["last_run"]["ticket"] == 1 and isinstance(state["encoders"], dict)
    assert all(value["identity"] == "hashing-test-encoder" for value in state["encoders"].values())
    assert "last refresh:" in render_status(hook_status(repo, index_dir))
