"""Which changes matter, when they are worth a refresh, and noticing them (events and polling)."""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path

import pytest

from localizer.serve.watch import ChangeFilter, Debouncer, Watcher, tree_fingerprint
from tests.conftest import commit_all, make_git_repo, write_files
from tests.sample_repo import SAMPLE_FILES


def count_refreshes(event_times: list[float], debouncer: Debouncer, tick: float = 0.01) -> int:
    """The refreshes ``debouncer`` asks for over these change times, checked every ``tick`` seconds
    as the refresh loop does (which also wakes on every change)."""
    refreshes, pending = 0, sorted(event_times)
    now, end = pending[0], pending[-1] + debouncer.quiet + debouncer.max_wait + tick
    while now <= end:
        while pending and pending[0] <= now:
            debouncer.event(pending.pop(0))
            refreshes += debouncer.take(now)
        refreshes += debouncer.take(now)
        now += tick
    return refreshes


def test_an_edit_storm_of_100_saves_in_2_seconds_refreshes_once_or_twice():
    storm = [i * 0.02 for i in range(100)]  # 100 saves over 2 s
    assert 1 <= count_refreshes(storm, Debouncer(quiet=0.25, max_wait=2.0)) <= 2
    # a storm that never calms down is still served every max_wait seconds, not starved
    assert count_refreshes(storm, Debouncer(quiet=0.25, max_wait=1.0)) == 2


def test_debouncer_waits_for_quiet_then_fires_once():
    debouncer = Debouncer(quiet=0.25, max_wait=2.0)
    assert not debouncer.pending and debouncer.deadline() is None and not debouncer.take(100.0)
    debouncer.event(10.0)
    debouncer.event(10.1)
    assert debouncer.deadline() == pytest.approx(10.35)
    assert not debouncer.take(10.3)
    assert debouncer.take(10.35)
    assert not debouncer.pending and not debouncer.take(11.0)


def test_debouncer_separate_edits_refresh_separately():
    assert count_refreshes([0.0, 1.0, 2.0], Debouncer(quiet=0.25, max_wait=2.0)) == 3


def test_change_filter_keeps_source_and_head_moves_only(tmp_path: Path):
    root = tmp_path / "repo"
    git_dir = root / ".git"
    cache = root / ".localizer-cache"
    keep = ChangeFilter(root, git_dir, (cache,))
    assert keep(root / "shop/cart.py")
    assert keep(root / "README.md")
    assert keep(git_dir / "HEAD") and keep(git_dir / "index") and keep(git_dir / "packed-refs")
    assert keep(git_dir / "refs/heads/main") and keep(git_dir / "refs/heads/feature/x")
    for path in (git_dir / "objects/ab/cdef", git_dir / "index.lock", git_dir / "refs/heads/main.lock",
                 git_dir / "logs/HEAD", git_dir / "refs/remotes/origin/main", root / "shop/__pycache__/cart.pyc",
                 root / "shop/.cart.py.swp", root / "shop/cart.py~", root / "node_modules/x/index.js",
                 cache / "chunks.sqlite", tmp_path / "elsewhere.py"):
        assert not keep(path), path


def test_fingerprint_changes_with_edits_commits_and_deletion(tmp_path: Path):
    root = make_git_repo(tmp_path / "repo", SAMPLE_FILES)
    git_dir = root / ".git"
    first = tree_fingerprint(root, git_dir)
    assert tree_fingerprint(root, git_dir) == first
    write_files(root, {"shop/cart.py": SAMPLE_FILES["shop/cart.py"] + "\n# edited\n"})
    edited = tree_fingerprint(root, git_dir)
    assert edited != first
    write_files(root, {"shop/cart.py": SAMPLE_FILES["shop/cart.py"] + "\n# edited again, longer\n"})
    assert tree_fingerprint(root, git_dir) != edited  # a second edit of a modified file counts too
    commit_all(root, "edit")
    committed = tree_fingerprint(root, git_dir)
    assert committed not in (first, edited)
    shutil.rmtree(root)
    assert tree_fingerprint(root, git_dir) == "missing"


@pytest.mark.parametrize("force_polling", [False, True], ids=["events", "polling"])
def test_watcher_sees_an_edit(tmp_path: Path, force_polling: bool):
    root = make_git_repo(tmp_path / "repo", SAMPLE_FILES)
    seen = threading.Event()
    watcher = Watcher(root, seen.set, change_filter=ChangeFilter(root, root / ".git"), poll_interval=0.1,
                      force_polling=force_polling)
    watcher.start()
    try:
        deadline = time.monotonic() + 5
        while watcher.mode == "starting" and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.2)  # let the backend arm
        assert watcher.mode == ("polling" if force_polling else "events")
        write_files(root, {"shop/pricing.py": SAMPLE_FILES["shop/pricing.py"] + "\ndef new_function():\n    pass\n"})
        assert seen.wait(5), f"no change seen in {watcher.mode} mode"
    finally:
        watcher.stop()
