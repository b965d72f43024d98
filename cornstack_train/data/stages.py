"""Click commands of the data stages: ``mine``, ``filter``, ``negatives``.

Thin: each builds its stage's config dataclass from options and calls the
library function; errors in the input (any LocalizerError) become one
``cornstack-train: error:`` line and exit status 1, and a finished output is
left alone unless ``--overwrite``.
Progress goes to stderr (``localizer.progress.StageProgress``: a bar on a
terminal, a line a minute in a log). The ``cornstack-train`` group
(cornstack_train/cli.py) registers them.
"""

from __future__ import annotations

import json
import logging

import click

from indexer.errors import LocalizerError
from localizer.embedding.onnx_backend import BACKENDS
from localizer.progress import StageProgress

from cornstack_train.data.commits import CommitConfig
from cornstack_train.data.records import stage_complete
from cornstack_train.errors import StageCommand, fail

log = logging.getLogger(__name__)


def _skip_existing(out: str, overwrite: bool) -> bool:
    if stage_complete(out) and not overwrite:
        click.echo(f"{out} is already complete; skipping (pass --overwrite to redo it)", err=True)
        return True
    return False


def _summary(stats: dict, keys: tuple[str, ...]) -> None:
    click.echo(json.dumps({k: stats[k] for k in keys if k in stats}, indent=1), err=True)


def _parse_shard(value: str | None) -> tuple[int, int] | None:
    if value is None:
        return None
    try:
        i, n = (int(x) for x in value.split("/"))
    except ValueError:
        raise click.BadParameter(f"expected I/N, e.g. 0/4, got {value!r}", param_hint="--encode-shard") from None
    if not 0 <= i < n:
        raise click.BadParameter(f"need 0 <= I < N, got {value!r}", param_hint="--encode-shard")
    return i, n


def _model_options(func):
    func = click.option("--model", default=None, metavar="ID|PATH",
                        help="Any sentence-transformers model id or local path; default: the packaged MiniLM.")(func)
    func = click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")(func)
    func = click.option("--batch-size", default=64, show_default=True, type=click.IntRange(1))(func)
    func = click.option("--max-seq-length", default=None, type=click.IntRange(8),
                        help="Truncate texts to this many tokens (default: the model's).")(func)
    func = click.option("--backend", default="torch", show_default=True, type=click.Choice(BACKENDS),
                        help="Encoder runtime, as in localize: torch-bf16 halves CPU time where the CPU has "
                             "native bf16; each backend has its own vector-cache key.")(func)
    func = click.option("--cache-dir", default=None, type=click.Path(file_okay=False),
                        help="Vector cache shared by filter and negatives (default: <out parent>/.vector-cache).")(func)
    return func


@click.command("mine", cls=StageCommand)
@click.argument("sources", nargs=-1)
@click.option("--out", "-o", required=True, type=click.Path(file_okay=False), help="Output stage directory.")
@click.option("--sources-dir", type=click.Path(file_okay=False),
              help="Mine every repository in this directory (manifest.json, if present, names them); "
                   "no licence gate, so not for weights that ship.")
@click.option("--repos-list", "repos_lists", multiple=True, type=click.Path(exists=True, dir_okay=False),
              help="Repository list with pinned heads and licences (docs/history-repos.json); repeatable. "
                   "Each entry is mined at its own head, only if permissive there (the licence gate).")
@click.option("--repos-dir", type=click.Path(file_okay=False),
              help="Where --repos-list's repositories are, as owner__name clones (bare or not).")
@click.option("--language", "languages", multiple=True,
              help="Only --repos-list entries of this language (repeatable).")
@click.option("--max-repos", default=None, type=click.IntRange(1),
              help="Only the first N --repos-list repositories that pass the gate, in name order.")
@click.option("--rev", default=None,
              help="Revision to mine for SOURCES and --sources-dir (default: work tree, or HEAD of a bare repo); "
                   "--repos-list entries use their pinned head.")
@click.option("--max-pairs-per-repo", default=1500, show_default=True, type=click.IntRange(0),
              help="Docstring pairs kept per repository after cleaning (0: no cap).")
@click.option("--max-commits", default=500, show_default=True, type=click.IntRange(0),
              help="Newest non-merge commits examined per repository for commit pairs.")
@click.option("--no-commits", is_flag=True, help="Only docstring pairs.")
@click.option("--max-commit-files", default=10, show_default=True, type=click.IntRange(1),
              help="Skip commits that change more files.")
@click.option("--max-commit-lines", default=500, show_default=True, type=click.IntRange(1),
              help="Skip commits that add or remove more lines.")
@click.option("--max-commit-functions", default=5, show_default=True, type=click.IntRange(1),
              help="Skip commits that change more functions (their message is too diffuse).")
@click.option("--max-commit-pairs", default=CommitConfig.max_pairs, show_default=True, type=click.IntRange(0),
              help="Commit pairs kept per repository, commits whose message describes a fault first (0: no cap).")
@click.option("--hub-limit", default=100_000, show_default=True, type=click.IntRange(1),
              help="Rows read from each hub:<dataset> source.")
@click.option("--benchmark-repos-dir", type=click.Path(file_okay=False),
              help="SWE-bench repos (owner__name dirs): drop pairs whose code is a function of theirs.")
@click.option("--near-dup-threshold", default=0.8, show_default=True, type=click.FloatRange(0, 1),
              help="MinHash Jaccard above which a code is a near-duplicate (1 disables).")
@click.option("--include-tests", is_flag=True, help="Also mine test files.")
@click.option("--overwrite", is_flag=True, help="Redo a finished output.")
def mine_command(sources, out, sources_dir, repos_lists, repos_dir, languages, max_repos, rev, max_pairs_per_repo,
                 max_commits, no_commits, max_commit_files, max_commit_lines, max_commit_functions, max_commit_pairs,
                 hub_limit, benchmark_repos_dir, near_dup_threshold, include_tests, overwrite):
    """Mine (query, code) pairs: docstrings, commit messages, published CoRNStack data.

    SOURCES are repository paths (work tree, bare git dir or plain directory)
    and hub:<dataset id> entries, e.g. hub:nomic-ai/cornstack-python-v1.
    Pairs pass CoRNStack's cleaning rules, then exact and near-duplicate
    removal; the twelve SWE-bench repositories, the eight evaluation
    repositories, their forks and copies of their functions are never mined.
    With --repos-list, each listed repository is mined at its pinned head and
    only when its licence there is permissive (docs/training-data.md).
    Finished sources are kept in <out>.work and reused by a rerun.
    """
    from cornstack_train.data.mining import MineConfig, run_mine

    if _skip_existing(out, overwrite):
        return
    config = MineConfig(
        sources=tuple(sources), sources_dir=sources_dir, repos_lists=tuple(repos_lists), repos_dir=repos_dir,
        languages=tuple(languages), max_repos=max_repos, rev=rev, max_pairs_per_repo=max_pairs_per_repo,
        hub_limit=hub_limit, commits=not no_commits and max_commits > 0,
        commit=CommitConfig(rev=rev or "HEAD", max_commits=max_commits, max_files=max_commit_files,
                            max_changed_lines=max_commit_lines, max_functions=max_commit_functions,
                            max_pairs=max_commit_pairs),
        near_dup_threshold=None if near_dup_threshold >= 1 else near_dup_threshold,
        benchmark_repos_dir=benchmark_repos_dir, include_tests=include_tests,
    )
    bar = StageProgress("mine", "source")
    try:
        stats = run_mine(config, out, overwrite=overwrite, progress=lambda name, index, total: bar(index, total, name))
    except (LocalizerError, FileNotFoundError) as exc:
        fail(exc)
    finally:
        bar.close()
    _summary(stats, ("pairs", "pairs_by_kind", "pairs_by_language", "errors", "licence_refused"))
    click.echo(f"wrote {stats['pairs']} pairs to {out}", err=True)


@click.command("filter", cls=StageCommand)
@click.argument("input_dir", metavar="MINED", type=click.Path(file_okay=False))
@click.option("--out", "-o", required=True, type=click.Path(file_okay=False), help="Output stage directory.")
@click.option("--top-k", default=2, show_default=True, type=click.IntRange(1),
              help="Keep a pair only if its code is among the query's k nearest codes.")
@click.option("--threshold", default=None, type=float,
              help="...and their cosine is at least this (default: the measured value, see docs/training.md).")
@click.option("--rank-depth", default=100, show_default=True, type=click.IntRange(1),
              help="Ranks are recorded exactly up to this depth.")
@click.option("--encode-shard", default=None, metavar="I/N",
              help="Only encode every N-th text from I into the vector cache, then stop (one process per GPU); "
                   "a final run without it filters using the cached vectors.")
@_model_options
@click.option("--overwrite", is_flag=True, help="Redo a finished output.")
def filter_command(input_dir, out, top_k, threshold, rank_depth, encode_shard, model, device, batch_size,
                   max_seq_length, backend, cache_dir, overwrite):
    """Dual consistency filtering of the MINED stage: keep pairs whose query finds its own code.

    Every query and distinct code is embedded (vectors cached for the
    negatives stage); a pair stays if its code is among the query's --top-k
    nearest codes and their cosine reaches --threshold.
    """
    from cornstack_train.data.filtering import DEFAULT_THRESHOLD, FilterConfig, run_filter

    shard = _parse_shard(encode_shard)
    if shard is None and _skip_existing(out, overwrite):
        return
    config = FilterConfig(model=model, device=device, batch_size=batch_size, max_seq_length=max_seq_length,
                          backend=backend,
                          top_k=top_k, threshold=DEFAULT_THRESHOLD if threshold is None else threshold,
                          rank_depth=rank_depth, cache_dir=cache_dir, encode_shard=shard)
    bar = StageProgress("filter: encode", "text")
    try:
        stats = run_filter(config, input_dir, out, overwrite=overwrite, on_progress=bar)
    except LocalizerError as exc:
        fail(exc)
    finally:
        bar.close()
    _summary(stats, ("pairs_in", "pairs_kept", "keep_rate", "keep_rate_by", "encode_shard", "encoded_queries",
                     "encoded_codes"))


@click.command("negatives", cls=StageCommand)
@click.argument("input_dir", metavar="FILTERED", type=click.Path(file_okay=False))
@click.option("--out", "-o", required=True, type=click.Path(file_okay=False), help="Output stage directory.")
@click.option("--top-n", default=50, show_default=True, type=click.IntRange(1), help="Negatives kept per pair.")
@click.option("--search-depth", default=None, type=click.IntRange(1),
              help="Nearest codes examined per query (default 2*top-n+20).")
@click.option("--margin", default=0.05, show_default=True, type=click.FloatRange(0, 1),
              help="Drop candidates scoring above (1-margin) x the positive's score: likely false negatives.")
@click.option("--max-score", default=0.9, show_default=True, type=float,
              help="Drop candidates above this query similarity.")
@click.option("--max-code-similarity", default=0.98, show_default=True, type=float,
              help="Drop candidates this similar to the positive (near-duplicate code).")
@_model_options
@click.option("--overwrite", is_flag=True, help="Redo a finished output.")
def negatives_command(input_dir, out, top_n, search_depth, margin, max_score, max_code_similarity, model, device,
                      batch_size, max_seq_length, backend, cache_dir, overwrite):
    """Hard negatives for every pair of the FILTERED stage, likely false negatives removed.

    Candidates are the codes nearest to each query; other positives of the
    same query, copies and near-copies of the positive, and candidates
    scoring too close to the positive are dropped.
    """
    from cornstack_train.data.negatives import NegativesConfig, run_negatives

    if _skip_existing(out, overwrite):
        return
    config = NegativesConfig(model=model, device=device, batch_size=batch_size, max_seq_length=max_seq_length,
                             backend=backend,
                             top_n=top_n, search_depth=search_depth, margin=margin, max_score=max_score,
                             max_code_similarity=max_code_similarity, cache_dir=cache_dir)
    bar = StageProgress("negatives: encode", "text")
    try:
        stats = run_negatives(config, input_dir, out, overwrite=overwrite, on_progress=bar)
    except LocalizerError as exc:
        fail(exc)
    finally:
        bar.close()
    _summary(stats, ("pairs", "negatives_per_pair", "dropped_candidates"))


DATA_COMMANDS = (mine_command, filter_command, negatives_command)
__all__ = ["mine_command", "filter_command", "negatives_command", "DATA_COMMANDS"]
