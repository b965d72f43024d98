"""The warm index in-process: answers during a refresh, edit storms, a deleted repository, bad input."""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from indexer.errors import IssueError
from indexer.index import IndexConfig

from localizer.api import Localizer
from localizer.config import LocalizeConfig
from localizer.serve import tools
from localizer.serve.errors import ServeError
from localizer.serve.state import WarmIndex
from localizer.serve.watch import Debouncer
from tests.conftest import commit_all, make_git_repo, write_files
from tests.sample_repo import SAMPLE_FILES

NEW_FUNCTION = "\n\ndef frobnicate_widget_discount(amount):\n    return amount * 0.5\n"
ISSUE = "The coupon discount is applied twice in the cart total"


def wait_for(predicate, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = make_git_repo(tmp_path / "shop", SAMPLE_FILES, message="Add the shop")
    write_files(root, {"shop/cart.py": SAMPLE_FILES["shop/cart.py"].replace("        if self.coupon:\n", "        if False:\n")})
    commit_all(root, "Fix coupon discount applied twice in the cart total")
    write_files(root, {"shop/payment.py": SAMPLE_FILES["shop/payment.py"] + "\n# card checks\n"})
    commit_all(root, "Document card payment checks")
    return root


class GatedWarmIndex(WarmIndex):
    """A refresh after the first waits at a gate, so a test can call tools while it is running."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.gate = threading.Event()
        self.building = threading.Event()

    def _build(self, started_at, started):
        if self.generation >= 1:
            self.building.set()
            assert self.gate.wait(20)
        return super()._build(started_at, started)


def make_state(repo: Path, tmp_path: Path, cls=WarmIndex, **kwargs) -> WarmIndex:
    config = LocalizeConfig(index=IndexConfig(index_dir=tmp_path / "index"))
    state = cls(repo, config, **{"watch": False, **kwargs})
    state.start()
    state.snapshot(timeout=30)
    return state


def test_eight_concurrent_calls_during_a_refresh_all_answer_from_one_snapshot(repo: Path, tmp_path: Path):
    state = make_state(repo, tmp_path, GatedWarmIndex)
    try:
        before = tools.localize(state, ISSUE, 5)
        write_files(repo, {"shop/pricing.py": SAMPLE_FILES["shop/pricing.py"] + NEW_FUNCTION})
        state.refresh_now()
        assert state.building.wait(10)
        assert state.status()["refreshing"]
        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(lambda _: tools.localize(state, ISSUE, 5), range(8)))
        assert all(answer == before for answer in answers)  # the old snapshot, whole, for everyone
        state.gate.set()
        assert wait_for(lambda: state.generation == 2)
        after = tools.localize(state, "frobnicate widget discount", 5)
        assert after["snapshot"]["generation"] == 2
        assert "frobnicate_widget_discount" in [hit["name"] for hit in after["functions"]]
    finally:
        state.gate.set()
        state.close()


def test_an_edit_storm_refreshes_once_or_twice(repo: Path, tmp_path: Path):
    state = make_state(repo, tmp_path, debouncer=Debouncer(quiet=0.2, max_wait=2.0))
    try:
        for i in range(100):  # 100 saves in about a second
            write_files(repo, {"shop/pricing.py": SAMPLE_FILES["shop/pricing.py"] + f"\n# save {i}\n"})
            state.notify_change()
            time.sleep(0.01)
        assert wait_for(lambda: not state.status()["pending_changes"] and not state.status()["refreshing"])
        assert 1 <= state.status()["refreshes"] - 1 <= 2
    finally:
        state.close()


def test_a_deleted_repository_is_a_clear_error_and_the_other_tools_keep_answering(repo: Path, tmp_path: Path):
    state = make_state(repo, tmp_path)
    try:
        shutil.rmtree(repo)
        for call in (lambda: tools.localize(state, ISSUE), lambda: tools.triage(state, ISSUE)):
            with pytest.raises(ServeError, match="no longer exists"):
                call()
        state.refresh_now()
        assert wait_for(lambda: state.status()["last_error"] is not None)
        status = tools.index_status(state)
        assert status["repo_exists"] is False and "no longer exists" in status["last_error"]
        assert status["state"] == "ready" and status["failed_refreshes"] == 1
        assert tools.similar_fixes(state, ISSUE)["commits"]  # history is still in memory
    finally:
        state.close()


def test_similar_fixes_finds_the_past_fix(repo: Path, tmp_path: Path):
    state = make_state(repo, tmp_path)
    try:
        answer = tools.similar_fixes(state, "coupon applied twice", top_k=3)
        top = answer["commits"][0]
        assert top["subject"] == "Fix coupon discount applied twice in the cart total"
        assert set(top) == {"sha", "date", "subject", "score"} and top["score"] == 1.0
        status = tools.index_status(state)
        assert status["history"]["enabled"] and status["history"]["commits"] >= 1
        assert status["commit"] == answer["snapshot"]["commit"] and status["chunks"] > 0 and status["files"] > 0
    finally:
        state.close()


def test_triage_renders_the_markdown_report(repo: Path, tmp_path: Path):
    state = make_state(repo, tmp_path)
    try:
        report = tools.triage(state, "Coupon applied twice\n\nThe cart total applies the coupon discount twice.")
        assert "Cart.total" in report and "shop/cart.py" in report
    finally:
        state.close()


def test_bad_arguments_are_errors_and_a_huge_issue_is_cut_with_a_note(repo: Path, tmp_path: Path):
    state = make_state(repo, tmp_path)
    try:
        with pytest.raises(IssueError):
            tools.localize(state, "   ")
        with pytest.raises(ServeError, match="top_k"):
            tools.localize(state, ISSUE, top_k=0)
        with pytest.raises(ServeError, match="level"):
            tools.localize(state, ISSUE, level="lines")
        huge = ISSUE + "\n" + "log line with nothing in it\n" * 10_000
        answer = tools.localize(state, huge, 3)
        assert answer["functions"] and any("characters" in note for note in answer["notes"])
    finally:
        state.close()


def test_truncate_issue_keeps_head_and_tail():
    text = "HEAD" + "x" * 100 + "TAIL"
    cut, note = tools.truncate_issue(text, limit=40)
    assert cut.startswith("HEAD") and cut.endswith("TAIL") and "characters cut" in cut and "108" in note
    assert tools.truncate_issue("short", limit=40) == ("short", None)


def test_its_own_writes_do_not_trigger_refreshes(repo: Path):
    """The index cache inside the repository, and git reads by triage, must not feed a refresh loop."""
    config = LocalizeConfig(index=IndexConfig(index_dir=repo / ".localizer-cache"))
    state = WarmIndex(repo, config)  # watching, with filesystem events
    state.start()
    try:
        state.snapshot(timeout=30)
        tools.triage(state, ISSUE)
        time.sleep(1.0)
        status = state.status()
        assert status["watch"]["mode"] == "events" and status["refreshes"] == 1 and not status["pending_changes"]
    finally:
        state.close()


def test_hybrid_refresh_embeds_only_the_changed_file_with_the_warm_model(repo: Path, tmp_path: Path, hashing_encoder):
    config = LocalizeConfig(retriever="hybrid", index=IndexConfig(index_dir=tmp_path / "index"))
    state = WarmIndex(repo, config, watch=False, embedder=hashing_encoder)
    state.start()
    try:
        state.snapshot(timeout=30)
        cold = len(hashing_encoder.encoded)
        write_files(repo, {"shop/pricing.py": SAMPLE_FILES["shop/pricing.py"] + NEW_FUNCTION})
        state.refresh_now()
        assert wait_for(lambda: state.generation == 2)
        embedded = hashing_encoder.encoded[cold:]
        assert embedded and len(embedded) <= 3 and all("pricing" in text or "frobnicate" in text for text in embedded)
        answer = tools.localize(state, "frobnicate widget", 5)
        assert "frobnicate_widget_discount" in [hit["name"] for hit in answer["functions"]]
        # the same answer as a Localizer built from scratch on the edited tree
        fresh_process = Localizer(repo, config, embedder=hashing_encoder).localize("frobnicate widget", 5)
        assert {k: answer[k] for k in ("files", "functions")} == fresh_process.to_json_dict()
        assert tools.index_status(state)["model"] == hashing_encoder.identity
    finally:
        state.close()


def test_a_watching_server_holds_a_lease_the_post_commit_hook_defers_to(repo: Path, tmp_path: Path):
    """The hook leaves the refresh to a running server (warm models, its own watcher) and says so."""
    from indexer.index import repo_state_dir
    from localizer.hooks.lease import LEASE_FILE, live_lease
    from localizer.hooks.refresh import HookConfig, refresh_repo

    state = make_state(repo, tmp_path, watch=True, poll_interval=0.2)
    state_dir = repo_state_dir(tmp_path / "index", repo.resolve())
    try:
        assert (state_dir / LEASE_FILE).is_file()
        # the hook is another process in real life: its own pid never counts as the server's
        lease = json.loads((state_dir / LEASE_FILE).read_text())
        lease["pid"] = os.getppid()
        (state_dir / LEASE_FILE).write_text(json.dumps(lease))
        config = HookConfig(retriever="bm25", index_dir=str(tmp_path / "index"))
        outcome = refresh_repo(repo, config, hook="post-commit")
        assert outcome.status == "delegated" and "localize serve" in outcome.message
        # another retriever is not the server's refresh: the hook refreshes by itself
        assert live_lease(state_dir, "hybrid", "some-model") is None
        lease["pid"] = os.getpid()  # back to this process, so close() removes it
        (state_dir / LEASE_FILE).write_text(json.dumps(lease))
    finally:
        state.close()
    assert not (state_dir / LEASE_FILE).exists()


def test_a_lease_of_a_process_that_is_gone_is_ignored(tmp_path: Path):
    import subprocess
    import sys

    from localizer.hooks.lease import LEASE_FILE, live_lease

    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (tmp_path / LEASE_FILE).write_text(json.dumps({"pid": int(gone.stdout), "retriever": "bm25", "model": None}))
    assert live_lease(tmp_path, "bm25", "any") is None
    (tmp_path / LEASE_FILE).write_text("not json")
    assert live_lease(tmp_path, "bm25", "any") is None
