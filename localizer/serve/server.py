"""The MCP wiring: the four tools on the official ``mcp`` SDK, over stdio or streamable HTTP.

Each tool is a thin shell over :mod:`localizer.serve.tools`: its description and argument schema
are what an agent reads to decide when and how to call it. The SDK runs each (synchronous) tool
on a worker thread, so a slow triage does not hold up other calls. Any failure becomes a tool
error (``isError: true`` with a one-line reason), never a dead server: a user's mistake (an empty
issue, a deleted repository) says what to do, anything else says it is internal and is logged.

SIGTERM, SIGINT and SIGHUP stop serving, then the refresh thread stops at its next progress
report and the process exits 0 with the cache consistent.
"""

# No ``from __future__ import annotations``: the SDK reads the tools' annotations (built inside
# build_server, where the pydantic Field objects live) to make their input schemas.
import logging
import os
import signal
import threading
import time
from typing import Annotated, Any, Callable, Literal, TypeVar

from indexer.errors import LocalizerError

from localizer.config import DEFAULT_TOP_K
from localizer.history.signals import SIMILAR_COMMITS
from localizer.serve import tools
from localizer.serve.errors import ServeError
from localizer.serve.state import WarmIndex

log = logging.getLogger(__name__)

SERVER_NAME = "localizer"
DEFAULT_PORT = 8765
_T = TypeVar("_T")

INSTRUCTIONS = """\
Ranks the files and functions of one repository most likely to need the fix for an issue, from an
index kept fresh as files are edited and commits are made. Call `localize` with an issue or bug
description (title, text, traceback) to find where to look first; `triage` for a readable report with
code excerpts, likely owners and recent commits; `similar_fixes` for past commits like the problem;
`index_status` to see which commit and edits the index reflects.
"""

LOCALIZE_DESCRIPTION = """\
Rank the files and functions most likely to need the fix for an issue, best first.

Give the issue as a user would file it: title, description, error messages and tracebacks (file
paths and names in it count). Returns {"files": [{"path", "score", "evidence"?}], "functions":
[{"path", "name", "start_line", "end_line", "score", "evidence"?}], "notes": [...], "snapshot":
{...}}: the same fields as `localize --format json`. An item's optional "evidence" lists similar
past commits that changed it (sha, date, subject). Scores only order items within one answer. The
index follows the work tree, uncommitted edits included, refreshed a moment after each save.
"""

SIMILAR_FIXES_DESCRIPTION = f"""\
The past commits of this repository whose messages are most like the given text, most similar
first: how similar problems were fixed before, and where. Returns {{"commits": [{{"sha", "date",
"subject", "score"}}], "notes": [...]}}; score is relative to the best match (1.0). Only commits
before the indexed one are searched (at most {SIMILAR_COMMITS} results).
"""

INDEX_STATUS_DESCRIPTION = """\
What the server's index holds and how fresh it is: the repository, commit, file and chunk counts,
when the last refresh ran and how long it took, whether a refresh is running or changes are
pending, the last error, the history (commits, note) and how changes are watched.
"""

TRIAGE_DESCRIPTION = """\
A pre-triage report of an issue in markdown, ready to post as an issue comment: the top suspect
functions and files with code excerpts, likely owners (git blame and log), recent commits touching
them, similar past fixes, and a warning when the ranking is too flat to trust.
"""

def _answer(name: str, call: Callable[[], _T]) -> _T:
    """Run one tool; every failure becomes a ToolError the caller can read."""
    from mcp.server.mcpserver.exceptions import ToolError

    try:
        return call()
    except LocalizerError as exc:
        raise ToolError(str(exc)) from None
    except Exception as exc:  # noqa: BLE001 - a tool must answer with an error, never take the server down
        log.exception("tool %s failed", name)
        raise ToolError(f"internal error in {name}: {type(exc).__name__}: {exc} (the server is still running; "
                        "its log on stderr has the traceback)") from None


def build_server(state: WarmIndex):
    """An ``MCPServer`` whose tools answer from ``state``."""
    try:
        from mcp.server.mcpserver import MCPServer
        from mcp.types import ToolAnnotations
        from pydantic import Field
    except ImportError as exc:
        raise ServeError(f"localize serve needs the MCP SDK ({exc}): pip install 'cornstack-localizer[serve]'") from None

    from localizer import __version__

    app = MCPServer(SERVER_NAME, version=__version__, instructions=INSTRUCTIONS, log_level="WARNING")
    read_only = ToolAnnotations(read_only_hint=True, destructive_hint=False, idempotent_hint=True,
                                open_world_hint=False)
    issue_doc = ("The issue: title, description, error messages and tracebacks, as plain text or markdown. "
                 f"Longer than {tools.MAX_ISSUE_CHARS:,} characters, it is cut (head and tail kept) with a note.")

    @app.tool(name="localize", title="Localize an issue", description=LOCALIZE_DESCRIPTION, annotations=read_only)
    def localize(
        issue: Annotated[str, Field(min_length=1, description=issue_doc)],
        top_k: Annotated[int, Field(ge=1, le=tools.MAX_TOP_K,
                                    description="How many files and how many functions to return.")] = DEFAULT_TOP_K,
        level: Annotated[Literal["file", "function", "both"],
                         Field(description="Rank files, functions, or both.")] = "both",
    ) -> dict[str, Any]:
        return _answer("localize", lambda: tools.localize(state, issue, top_k, level))

    @app.tool(name="similar_fixes", title="Similar past fixes", description=SIMILAR_FIXES_DESCRIPTION,
              annotations=read_only)
    def similar_fixes(
        text: Annotated[str, Field(min_length=1, description="An issue, an error message or a short description "
                                                             "of the change to look for in past commit messages.")],
        top_k: Annotated[int, Field(ge=1, le=SIMILAR_COMMITS, description="How many commits to return.")] = 10,
    ) -> dict[str, Any]:
        return _answer("similar_fixes", lambda: tools.similar_fixes(state, text, top_k))

    @app.tool(name="index_status", title="Index status", description=INDEX_STATUS_DESCRIPTION,
              annotations=read_only)
    def index_status() -> dict[str, Any]:
        return _answer("index_status", lambda: tools.index_status(state))

    @app.tool(name="triage", title="Triage report", description=TRIAGE_DESCRIPTION, annotations=read_only,
              structured_output=False)
    def triage(
        issue: Annotated[str, Field(min_length=1, description=issue_doc)],
        top_k: Annotated[int, Field(ge=1, le=50, description="How many suspect files and functions to show.")] = 5,
    ) -> str:
        return _answer("triage", lambda: tools.triage(state, issue, top_k))

    return app


def parse_address(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:PORT`` for IPv6; ``:PORT`` or ``PORT`` for localhost) as (host, port)."""
    host, sep, port = text.strip().rpartition(":")
    if not sep:
        host, port = "", text.strip()
    host = host.strip("[]") or "127.0.0.1"
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"expected HOST:PORT with a port from 1 to 65535, got {text!r}")
    return host, int(port)


def serve(state: WarmIndex, http: tuple[str, int] | None = None, grace: float = 0.5) -> None:
    """Serve MCP until the client goes away (stdio) or a signal arrives; then stop refreshing."""
    import anyio

    app = build_server(state)
    state.start()
    try:
        if http is None:
            anyio.run(_serve_stdio, app, lambda: _exit_if_stuck(state, grace))
        else:
            # uvicorn catches the signals itself, shuts down gracefully, then raises the signal again
            # for the handlers it found: these make that a clean exit.
            for signum in _SIGNALS:
                signal.signal(signum, _exit_cleanly)
            anyio.run(_serve_http, app, http)
    except SystemExit as exc:
        if exc.code not in (0, None):
            raise
    finally:
        state.close()


_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


def _exit_cleanly(signum, frame) -> None:
    log.info("%s: shutting down", signal.Signals(signum).name)
    raise SystemExit(0)


def _exit_if_stuck(state: WarmIndex, grace: float) -> None:
    """After a signal, give the event loop ``grace`` seconds to wind down, then exit anyway.

    The stdio transport reads stdin on a worker thread that no cancellation can interrupt while
    the client keeps the pipe open, so a SIGTERM alone would leave the process waiting for input.
    The refresh thread is stopped first (at its next progress report), so the cache stays consistent.
    """

    def exit_later() -> None:
        time.sleep(grace)
        state.close()
        logging.shutdown()
        os._exit(0)

    threading.Thread(target=exit_later, name="localize-serve-exit", daemon=True).start()


async def _serve_stdio(app, on_signal: Callable[[], None]) -> None:
    import anyio

    async with anyio.create_task_group() as group:

        async def stop_on_signal() -> None:
            with anyio.open_signal_receiver(*_SIGNALS) as signals:
                async for signum in signals:
                    log.info("%s: shutting down", signal.Signals(signum).name)
                    on_signal()
                    group.cancel_scope.cancel()
                    return

        group.start_soon(stop_on_signal)
        await app.run_stdio_async()  # returns when the client closes stdin
        group.cancel_scope.cancel()


async def _serve_http(app, http: tuple[str, int]) -> None:
    host, port = http
    log.warning("serving MCP at http://%s:%d/mcp", host if ":" not in host else f"[{host}]", port)
    await app.run_streamable_http_async(host=host, port=port)
