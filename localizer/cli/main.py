"""``localize``: a thin click layer over :class:`localizer.Localizer`."""

from __future__ import annotations

import errno
import logging
import os
import sys
from pathlib import Path

import click
from rich.console import Console

from indexer.errors import LocalizerError

from localizer.api import Localizer
from localizer.cli.options import (HOOK_OPTIONS, INDEX_OPTIONS, RERANK_OPTIONS, OptionError, hook_config,
                                   localize_config, options)
from localizer.config import LEVELS, LocalizeConfig
from localizer.issue_input import IssueError, decode_issue, read_issue
from localizer.pipeline import RankingPipeline, needs_embedder
from localizer.progress import stderr_progress

log = logging.getLogger("localizer")


def _setup_logging(verbose: int) -> None:
    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="localize: %(message)s", stream=sys.stderr, force=True)
    _quiet_libraries(level)


def _quiet_libraries(level: int = logging.WARNING) -> None:
    """Model and index libraries log chatty INFO lines and warn about tokenizer forks."""
    for noisy in ("sentence_transformers", "transformers", "httpx", "huggingface_hub", "faiss", "bm25s", "filelock"):
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def _fail(message: str, code: int = 1) -> None:
    click.echo(f"localize: error: {message}", err=True)
    sys.exit(code)


def _os_error_line(exc: OSError) -> str:
    """An OSError as one line naming the file: ``/x/y: Permission denied``."""
    reason = exc.strerror or str(exc) or type(exc).__name__
    return f"{exc.filename}: {reason}" if exc.filename is not None else reason


class _Edge(click.Group):
    """The CLI edge for the file system: an unwritable path or a full disk anywhere below is a
    one-line error, not a traceback. A closed pipe (``localize ... | head``) is left to click."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except OSError as exc:
            if exc.errno == errno.EPIPE:
                raise
            _fail(_os_error_line(exc))


def _fail_on(exc: LocalizerError) -> None:
    """The one-line error of a library error; conflicting options exit 2, like click's usage errors."""
    _fail(str(exc), code=2 if isinstance(exc, OptionError) else 1)


def _warn_unused_model(ctx: click.Context, retriever: str) -> None:
    """BM25 needs no model: say so rather than silently ignore an explicit --model."""
    from click.core import ParameterSource

    if not needs_embedder(LocalizeConfig(retriever=retriever)) and ctx.get_parameter_source("model") not in (
            ParameterSource.DEFAULT, None):
        log.warning("--model is not used by --retriever bm25; add --retriever dense or hybrid to use it")


def _read_issue_arg(issue: str) -> str:
    if issue == "-":
        # A closed stdin (``<&-``, some CI runners) is None, or a stream that cannot be read:
        # one line, not a traceback (issue #26, case 6).
        stream = getattr(sys.stdin, "buffer", None)
        if stream is None:
            raise IssueError("--issue -: stdin is closed; pass the issue on stdin or as a file")
        try:
            data = stream.read()
        except (OSError, ValueError) as exc:
            raise IssueError(f"--issue -: cannot read stdin: {exc}") from None
        return decode_issue(data, "the issue on stdin")
    return read_issue(issue)


@click.group(cls=_Edge, invoke_without_command=True, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("--issue", metavar="FILE|-", default=None, help="Issue text: a file, or - for stdin.")
@click.option("--level", type=click.Choice(LEVELS), default="both", show_default=True, help="Rank files, functions, or both.")
@click.option("--top-k", type=click.IntRange(min=1), default=10, show_default=True, help="How many of each to show.")
@click.option("--format", "output_format", type=click.Choice(["table", "json"]), default="table", show_default=True,
              help="json prints {files: [...], functions: [...]} to stdout; logs stay on stderr.")
@options(*INDEX_OPTIONS, *RERANK_OPTIONS)
@click.version_option(package_name="cornstack-localizer", prog_name="localize")
@click.pass_context
def main(ctx, issue, level, top_k, output_format, **opts):
    """Rank the files and functions most likely to need the fix for an issue.

    \b
    Example:
      localize --repo . --issue issue.md
      gh issue view 123 --json title,body -q '.title + "\\n" + .body' | localize --issue - --format json

    The first run indexes the repository (tree-sitter chunks of Python, Java,
    JavaScript/TypeScript, Go, PHP and Ruby) into a cache; later runs re-parse
    and re-embed only what changed.
    """
    if ctx.invoked_subcommand is not None:
        return
    _setup_logging(opts["verbose"])
    if issue is None:
        click.echo(ctx.get_help(), err=True)
        _fail("missing --issue FILE (or - for stdin)", code=2)
    _warn_unused_model(ctx, opts["retriever"])
    try:
        text = _read_issue_arg(issue)
        config = localize_config(opts, top_k)
        with stderr_progress(enabled=not opts["quiet"] and sys.stderr.isatty()) as progress:
            localizer = Localizer(opts["repo"], config, progress=progress)
            localizer.index()
        result = localizer.localize(text)
    except LocalizerError as exc:
        _fail_on(exc)
    except KeyboardInterrupt:
        _fail("interrupted", code=130)
    for note in result.notes:
        click.echo(f"localize: note: {note}", err=True)
    if output_format == "json":
        from localizer.cli.render import render_json

        render_json(result, level, sys.stdout)
    else:
        from localizer.cli.render import render_table

        render_table(result, level, Console(soft_wrap=True))


@main.command("index")
@options(*INDEX_OPTIONS)
@click.pass_context
def index_command(ctx, **opts):
    """Build or refresh the index without querying (what the git hook runs)."""
    _setup_logging(opts["verbose"])
    _warn_unused_model(ctx, opts["retriever"])
    try:
        with stderr_progress(enabled=not opts["quiet"] and sys.stderr.isatty()) as progress:
            index = RankingPipeline(localize_config(opts)).build_index(opts["repo"], progress=progress)
    except LocalizerError as exc:
        _fail_on(exc)
    except KeyboardInterrupt:
        _fail("interrupted", code=130)
    s = index.stats
    click.echo(
        f"indexed {index.description}: {s.files} files, {s.chunks} chunks; "
        f"parsed {s.parsed_files} files, embedded {s.embedded_chunks} chunks, reused {s.reused_embeddings}",
        err=True,
    )


# --------------------------------------------------------------------------- git hooks


_REPO_OPTION = click.option("--repo", type=click.Path(file_okay=False, path_type=Path), default=".",
                            show_default=True, help="The git repository (any directory inside its work tree).")


@main.group("hook")
def hook_group():
    """Keep the index fresh on every commit, merge, checkout and rebase.

    \b
      localize hook install --retriever bm25   # add the hooks (chains any existing ones)
      localize hook status                     # installed? last refresh, commit, error
      localize hook uninstall                  # restore the hooks exactly as they were

    The hooks launch a refresh in the background and return at once; it
    re-parses and re-embeds only what changed. Refreshes started together
    (a burst of commits) do not pile up: the newest one wins.
    """


@hook_group.command("install")
@_REPO_OPTION
@options(*HOOK_OPTIONS)
def hook_install(repo, **opts):
    """Install post-commit, post-merge, post-checkout and post-rewrite hooks.

    Each hook gets a managed block that starts `localize hook run` with this
    Python interpreter and these settings, so refreshes build the index that
    your queries read. Existing hooks keep running (the block is added to a sh
    hook, any other hook is chained); core.hooksPath is honoured. Installing
    again with the same settings changes nothing.
    """
    from localizer.hooks.install import install_hooks

    _setup_logging(0)
    try:
        config = hook_config(opts)
        result = install_hooks(repo, config)
    except LocalizerError as exc:
        _fail_on(exc)
    if not result.changed:
        click.echo(f"localizer hooks are already installed in {result.hooks_dir} with these settings; nothing changed")
    else:
        click.echo(f"localizer hooks in {result.hooks_dir}:")
        words = {"created": "installed", "inserted": "installed, chained into the existing hook",
                 "wrapped": "installed", "updated": "updated to the new settings", "unchanged": "already installed"}
        for change in result.changes:
            detail = f" ({change.detail})" if change.detail and change.action == "wrapped" else ""
            click.echo(f"  {change.hook:<14} {words.get(change.action, change.action)}{detail}")
        click.echo(f"refreshes log to {config.log_path()}; check them with 'localize hook status'")
    for note in result.notes:
        click.echo(f"note: {note}")


@hook_group.command("uninstall")
@_REPO_OPTION
def hook_uninstall(repo):
    """Remove the hooks, leaving every hook exactly as it was before install."""
    from localizer.hooks.install import uninstall_hooks

    _setup_logging(0)
    try:
        result = uninstall_hooks(repo)
    except LocalizerError as exc:
        _fail_on(exc)
    if not result.changed:
        click.echo(f"localizer hooks are not installed in {result.hooks_dir}; nothing to do")
        return
    click.echo(f"localizer hooks removed from {result.hooks_dir}:")
    for change in result.changes:
        if change.action == "absent":
            continue
        words = {"removed": "removed", "restored": "restored to what was there before"}
        detail = f" ({change.detail})" if change.detail else ""
        click.echo(f"  {change.hook:<14} {words.get(change.action, change.action)}{detail}")


@hook_group.command("status")
@_REPO_OPTION
@click.option("--index-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Index dir to read refresh state from [default: the one the hooks were installed with].")
@click.option("--format", "output_format", type=click.Choice(["text", "json"]), default="text", show_default=True)
def hook_status_command(repo, index_dir, output_format):
    """Show whether the hooks are installed, the last refresh (when, which commit) and the last error."""
    from localizer.hooks.install import hook_status, render_status

    _setup_logging(0)
    try:
        status = hook_status(repo, index_dir)
    except LocalizerError as exc:
        _fail_on(exc)
    if output_format == "json":
        import json

        click.echo(json.dumps(status.to_json_dict(), indent=2))
    else:
        click.echo(render_status(status))


@hook_group.command("run")
@_REPO_OPTION
@click.option("--hook", "hook_name", default="manual", show_default=True, help="Which hook started this run (for the log).")
@click.option("--wait-rebase", type=click.FloatRange(min=0), default=0, show_default=True,
              help="Seconds to wait for a rebase in progress to finish before giving up.")
@click.option("--background", is_flag=True, help="Detach from the terminal's session (the hooks pass this).")
@options(*HOOK_OPTIONS)
def hook_run(repo, hook_name, wait_rebase, background, **opts):
    """Refresh the index now, as the hooks do (they run this in the background).

    Skipped during a rebase; exits at once when a newer refresh was requested.
    Writes the outcome to the hook state that 'localize hook status' shows.
    """
    import time as _time

    from localizer.hooks.refresh import refresh_repo, rotate_log

    if background:
        try:
            os.setsid()
        except OSError:
            pass
    logging.basicConfig(level=logging.WARNING, stream=sys.stdout, force=True,
                        format=f"%(asctime)s {hook_name} [{repo}] %(levelname)s: %(message)s")
    _quiet_libraries()
    config = hook_config(opts)
    if background:
        rotate_log(config.log_path())
    try:
        outcome = refresh_repo(repo, config, hook=hook_name, wait_rebase=wait_rebase)
    except LocalizerError as exc:
        status, message = "error", str(exc)
    else:
        status, message = outcome.status, outcome.message
    click.echo(f"{_time.strftime('%Y-%m-%dT%H:%M:%SZ', _time.gmtime())} {hook_name} [{repo}] {status}: {message}")
    if status == "error":
        sys.exit(1)


# --------------------------------------------------------------------------- serve


def _http_address(ctx, param, value):
    if value is None:
        return None
    from localizer.serve.server import parse_address

    try:
        return parse_address(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


@main.command("serve")
@click.option("--http", "http", metavar="HOST:PORT", default=None, callback=_http_address,
              help="Serve streamable HTTP at http://HOST:PORT/mcp instead of stdio (e.g. 127.0.0.1:8765).")
@click.option("--poll", type=click.FloatRange(min=0.1), default=None, metavar="SECONDS",
              help="Poll for changes every SECONDS instead of listening to filesystem events (network file "
                   "systems; events fall back to polling by themselves when they fail).")
@click.option("--debounce", type=click.FloatRange(min=0), default=0.25, show_default=True, metavar="SECONDS",
              help="Refresh once the files have been quiet this long (and at least every 2 s while they keep "
                   "changing), so an edit storm refreshes once or twice.")
@options(*INDEX_OPTIONS, *RERANK_OPTIONS)
@click.pass_context
def serve_command(ctx, http, poll, debounce, **opts):
    """Serve the localizer to coding agents and editors over MCP, warm and always fresh.

    \b
    Example (an MCP client starts it; see docs/mcp.md for Claude Code, Cursor, VS Code):
      localize serve --repo /path/to/repo
      localize serve --repo . --retriever hybrid --http 127.0.0.1:8765

    It speaks MCP over stdio (or streamable HTTP with --http), loads the index
    and the models once, and offers the tools localize, similar_fixes, triage
    and index_status. It watches the work tree and HEAD and refreshes the index
    in the background (only changed files are re-parsed and re-embedded); calls
    are answered from the current index meanwhile. Logs go to stderr.
    """
    from localizer.serve.server import serve
    from localizer.serve.state import WarmIndex
    from localizer.serve.watch import Debouncer

    _setup_logging(opts["verbose"])
    _warn_unused_model(ctx, opts["retriever"])
    try:
        state = WarmIndex(opts["repo"], localize_config(opts), debouncer=Debouncer(quiet=debounce),
                          poll_interval=poll)
        serve(state, http)
    except LocalizerError as exc:
        _fail_on(exc)
    except KeyboardInterrupt:
        _fail("interrupted", code=130)


# --------------------------------------------------------------------------- triage


@main.command("triage")
@click.option("--issue", metavar="FILE|-", default=None, help="The issue: a file (first line is the title), or - for stdin.")
@click.option("--title", default=None, help="The issue title (with --body; handy in CI, from environment variables).")
@click.option("--body", default=None, metavar="TEXT|-", help="The issue body; - reads it from stdin.")
@click.option("--issues-dir", type=click.Path(path_type=Path), default=None,
              help="Triage every .md/.txt issue file in this directory, one report each; up-to-date reports are skipped.")
@click.option("--out-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Where --issues-dir writes reports [default: ISSUES_DIR/reports].")
@click.option("--force", is_flag=True, help="With --issues-dir: rewrite reports even when they are up to date.")
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the report to this file (atomically) instead of stdout.")
@click.option("--format", "output_format", type=click.Choice(["markdown", "json"]), default="markdown",
              show_default=True, help="markdown: an issue comment; json: the same data for bots.")
@click.option("--top-k", type=click.IntRange(min=1), default=5, show_default=True, help="Suspect files and functions to show.")
@click.option("--excerpt-lines", type=click.IntRange(min=0), default=8, show_default=True,
              help="Lines of code shown for each suspect (0: none).")
@click.option("--owners", "owners_per_file", type=click.IntRange(min=0), default=3, show_default=True,
              help="Likely owners listed per suspect file.")
@click.option("--commits", type=click.IntRange(min=0), default=8, show_default=True,
              help="Recent commits touching the suspects to list.")
@click.option("--show-emails", is_flag=True, help="Show owners' and authors' emails (hidden by default: reports get posted publicly).")
@click.option("--no-blame", is_flag=True, help="Owners from git log only; faster on very long histories.")
@options(*INDEX_OPTIONS, *RERANK_OPTIONS)
def triage_command(issue, title, body, issues_dir, out_dir, force, output, output_format, top_k, excerpt_lines,
                   owners_per_file, commits, show_emails, no_blame, **opts):
    """Pre-triage an issue: suspects with code, likely owners, recent commits.

    \b
    Prints a markdown report ready to paste as an issue comment:
      - the top suspect functions and files (path:start-end, score, a code excerpt);
      - likely owners of each file: who last changed the suspect lines (git blame)
        and who changes the file most (git log), weighted by recency;
      - recent commits touching the suspects;
      - a warning when the scores are too flat to trust the order.

    \b
    Examples:
      localize triage --issue issue.md
      localize triage --title "$TITLE" --body "$BODY" --format json
      localize triage --issues-dir issues/        # one report per file in issues/reports/
    """
    from localizer.triage.triager import IssueText, TriageConfig, Triager
    from localizer.triage.render import render_json, render_markdown

    _setup_logging(opts["verbose"])
    repo, quiet = opts["repo"], opts["quiet"]
    sources = sum(x is not None for x in (issue, issues_dir)) + (title is not None or body is not None)
    if sources != 1:
        _fail("give exactly one of --issue FILE|-, --title/--body, or --issues-dir DIR", code=2)
    if (out_dir or force) and issues_dir is None:
        _fail("--out-dir and --force go with --issues-dir", code=2)
    try:
        config = TriageConfig(
            localize=localize_config(opts),
            files=top_k, functions=top_k, excerpt_lines=excerpt_lines, owners_per_file=owners_per_file,
            commits=commits, blame=not no_blame,
        )
        if issues_dir is not None:
            from localizer.triage.batch import REPORTS_DIRNAME, issue_files, triage_directory

            with stderr_progress(enabled=not quiet and sys.stderr.isatty()) as progress:
                triager = Triager(repo, config, progress=progress)
                if issue_files(issues_dir, out_dir or issues_dir / REPORTS_DIRNAME, warn=False):
                    triager.localizer.index()
            result = triage_directory(repo, issues_dir, config, out_dir=out_dir, output_format=output_format,
                                      show_emails=show_emails, force=force, triager=triager)
            for path, message in result.failed:
                click.echo(f"localize: skipped {path}: {message}", err=True)
            click.echo(f"triaged {issues_dir}: {result.line()}", err=True)
            if result.failed:
                sys.exit(1)
            return
        if issue is not None:
            parsed = IssueText.parse(_read_issue_arg(issue), "stdin" if issue == "-" else str(issue))
        else:
            if body == "-":
                body = _read_issue_arg("-")
            parsed = IssueText.from_parts(title, body)
        with stderr_progress(enabled=not quiet and sys.stderr.isatty()) as progress:
            triager = Triager(repo, config, progress=progress)
            triager.localizer.index()
        report = triager.triage(parsed)
    except LocalizerError as exc:
        _fail_on(exc)
    except KeyboardInterrupt:
        _fail("interrupted", code=130)
    text = render_json(report, show_emails) if output_format == "json" else render_markdown(report, show_emails)
    if output is not None:
        from indexer.storage.atomic import atomic_write_bytes

        try:
            atomic_write_bytes(output, text.encode("utf-8"))
        except OSError as exc:
            _fail(f"cannot write the report to {output}: {_os_error_line(exc)}")
        click.echo(f"wrote {output}", err=True)
    else:
        click.echo(text, nl=False)


if __name__ == "__main__":  # pragma: no cover
    main()
