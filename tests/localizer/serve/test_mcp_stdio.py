"""A real MCP client session (the official SDK) against ``localize serve`` over stdio.

One server process serves the whole session, as an agent's would: initialize, list the tools,
localize, see an edit served, survive bad calls, answer 8 concurrent calls while a refresh runs,
and report a deleted repository as a tool error while ``index_status`` keeps answering. A second
test speaks raw JSON-RPC to check that a malformed line and SIGTERM leave it in good order.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import anyio
import pytest
from click.testing import CliRunner
from mcp import ClientSession, StdioServerParameters, stdio_client  # the test extra has the SDK: never skipped

from localizer.cli.main import main
from tests.conftest import make_git_repo, write_files
from tests.sample_repo import SAMPLE_FILES

ROOT = Path(__file__).resolve().parents[3]
ISSUE = "The coupon discount is applied twice in the cart total"
NEW_FUNCTION = "\n\ndef frobnicate_widget_discount(amount):\n    return amount * 0.5\n"
ENV = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


def server_command(repo: Path, index_dir: Path) -> list[str]:
    return [sys.executable, "-m", "localizer.cli", "serve", "--repo", str(repo), "--index-dir", str(index_dir),
            "--debounce", "0.1"]


def answer(result) -> dict[str, Any]:
    assert not result.is_error, result.content[0].text
    return json.loads(result.content[0].text)


def names(served: dict[str, Any]) -> list[str]:
    return [hit["name"] for hit in served["functions"]]


async def poll(call, done, timeout: float = 20.0):
    """Call until ``done(value)``; the bounded wait of an agent re-asking after an edit."""
    deadline = time.monotonic() + timeout
    while True:
        value = await call()
        if done(value) or time.monotonic() > deadline:
            return value
        await anyio.sleep(0.1)


def test_mcp_session_localizes_sees_edits_survives_bad_calls_and_concurrency(tmp_path: Path):
    repo = make_git_repo(tmp_path / "shop", SAMPLE_FILES)
    index_dir = tmp_path / "index"
    command = server_command(repo, index_dir)
    params = StdioServerParameters(command=command[0], args=command[1:], cwd=str(ROOT), env=ENV)
    issue_file = tmp_path / "issue.md"
    issue_file.write_text(ISSUE)

    async def session() -> None:
        with open(tmp_path / "server.log", "w") as errlog:
            async with stdio_client(params, errlog=errlog) as (read, write), ClientSession(read, write) as client:
                init = await client.initialize()
                assert init.server_info.name == "localizer" and "localize" in (init.instructions or "")

                listed = {tool.name: tool for tool in (await client.list_tools()).tools}
                assert set(listed) == {"localize", "similar_fixes", "index_status", "triage"}
                schema = listed["localize"].input_schema
                assert schema["required"] == ["issue"]
                assert set(schema["properties"]) == {"issue", "top_k", "level"}
                assert schema["properties"]["level"]["enum"] == ["file", "function", "both"]
                assert all(tool.description and len(tool.description) > 80 for tool in listed.values())

                # the same ranking and JSON fields as `localize --format json`
                served = answer(await client.call_tool("localize", {"issue": ISSUE, "top_k": 5}))
                cli = CliRunner().invoke(main, ["--repo", str(repo), "--index-dir", str(index_dir), "--issue",
                                                str(issue_file), "--top-k", "5", "--format", "json"])
                assert cli.exit_code == 0, cli.output
                assert {k: served[k] for k in ("files", "functions")} == json.loads(cli.stdout)
                assert "Cart.total" in names(served)
                first = served["snapshot"]["generation"]

                # an edit is served within a bounded wait, without restarting anything
                write_files(repo, {"shop/pricing.py": SAMPLE_FILES["shop/pricing.py"] + NEW_FUNCTION})
                fresh = await poll(
                    lambda: client.call_tool("localize", {"issue": "frobnicate widget discount", "top_k": 3}),
                    lambda result: "frobnicate_widget_discount" in names(answer(result)))
                assert "frobnicate_widget_discount" in names(answer(fresh))
                assert answer(fresh)["snapshot"]["generation"] > first

                # bad calls are error answers, and the server keeps answering
                for name, arguments in [("localize", {"issue": ""}), ("localize", {"issue": "x", "top_k": 0}),
                                        ("localize", {"issue": "x", "top_k": "many"}),
                                        ("localize", {"issue": "x", "level": "lines"}), ("localize", {}),
                                        ("no_such_tool", {})]:
                    result = await client.call_tool(name, arguments)
                    assert result.is_error, (name, arguments)
                huge = answer(await client.call_tool("localize", {"issue": ISSUE + " filler" * 20_000, "top_k": 1}))
                assert any("characters" in note for note in huge["notes"])
                status = answer(await client.call_tool("index_status", {}))
                assert status["state"] == "ready" and status["watch"]["mode"] in ("events", "polling")

                # 8 concurrent calls while a refresh runs: all answer, the same within one snapshot
                write_files(repo, {"shop/cart.py": SAMPLE_FILES["shop/cart.py"] + "\n# touched\n"})
                results: list[dict[str, Any]] = []

                async def one() -> None:
                    results.append(answer(await client.call_tool("localize", {"issue": ISSUE, "top_k": 5})))

                await anyio.sleep(0.12)  # past the debounce: the refresh is starting
                async with anyio.create_task_group() as group:
                    for _ in range(8):
                        group.start_soon(one)
                assert len(results) == 8
                by_generation: dict[int, list[dict[str, Any]]] = {}
                for result in results:
                    by_generation.setdefault(result["snapshot"]["generation"], []).append(result)
                for same in by_generation.values():
                    assert all(r["functions"] == same[0]["functions"] and r["files"] == same[0]["files"] for r in same)

                triage = await client.call_tool("triage", {"issue": ISSUE})
                assert not triage.is_error and "Cart.total" in triage.content[0].text

                # a repository deleted under the server: a clear error; index_status still answers
                shutil.rmtree(repo)
                gone = await client.call_tool("localize", {"issue": ISSUE})
                assert gone.is_error and "no longer exists" in gone.content[0].text
                status = answer(await client.call_tool("index_status", {}))
                assert status["repo_exists"] is False

    anyio.run(session)
    log = (tmp_path / "server.log").read_text()
    assert "Traceback" not in log, log


def test_malformed_input_and_sigterm(tmp_path: Path):
    """Raw JSON-RPC: a line that is not JSON is dropped, the server still answers; SIGTERM exits 0."""
    repo = make_git_repo(tmp_path / "shop", SAMPLE_FILES)
    process = subprocess.Popen(server_command(repo, tmp_path / "index"), cwd=ROOT, env={**os.environ, **ENV},
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def send(message: str | dict) -> None:
        line = message if isinstance(message, str) else json.dumps(message)
        process.stdin.write(line.encode() + b"\n")
        process.stdin.flush()

    def receive() -> dict:
        return json.loads(process.stdout.readline())

    try:
        send({"jsonrpc": "2.0", "id": 1, "method": "initialize",
              "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}}})
        assert receive()["result"]["serverInfo"]["name"] == "localizer"
        send({"jsonrpc": "2.0", "method": "notifications/initialized"})
        send("{this is not json")
        send({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "localize", "arguments": {"issue": ISSUE}}})
        reply = receive()
        assert reply["id"] == 2 and not reply["result"].get("isError")
        assert json.loads(reply["result"]["content"][0]["text"])["functions"]
        started = time.monotonic()
        process.send_signal(signal.SIGTERM)
        assert process.wait(10) == 0
        assert time.monotonic() - started < 5
        assert b"Traceback" not in process.stderr.read()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_http_address_parsing():
    from localizer.serve.server import parse_address

    assert parse_address("127.0.0.1:8765") == ("127.0.0.1", 8765)
    assert parse_address("[::1]:9000") == ("::1", 9000)
    assert parse_address(":8000") == ("127.0.0.1", 8000) == parse_address("8000")
    for bad in ("localhost", "host:0", "host:70000", "host:http"):
        with pytest.raises(ValueError):
            parse_address(bad)


def test_cli_edge_gives_one_line_errors(tmp_path: Path):
    missing = CliRunner().invoke(main, ["serve", "--repo", str(tmp_path / "nope")])
    assert missing.exit_code == 1 and "localize: error: repository path does not exist" in missing.output
    assert "Traceback" not in missing.output
    bad_address = CliRunner().invoke(main, ["serve", "--repo", str(tmp_path), "--http", "host:99999"])
    assert bad_address.exit_code == 2 and "--http" in bad_address.output
