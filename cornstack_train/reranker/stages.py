"""Click commands for the reranker stages: ``teacher-rank``, ``repo-windows`` (windows ranked by the
product's pipeline over the training repositories), ``train-reranker``, ``eval-reranker``, and
``ship-reranker`` (install a trained adapter into the package, reranking's default switch).

Thin: flags become the stage's config dataclass and the stage runs; a LocalizerError (or a config
``ValueError``) becomes one ``cornstack-train: error:`` line and exit status 1. The
``cornstack-train`` group (cornstack_train/cli.py) registers them;
``python -m cornstack_train.reranker.stages CMD`` runs them alone.
"""

from __future__ import annotations

import json
import logging
import sys
from dataclasses import fields
from pathlib import Path

import click
from click.core import ParameterSource

from indexer.errors import LocalizerError
from localizer.progress import StageProgress
from localizer.rerank.fusion import FUSIONS, RRF_K
from localizer.rerank.reranker import RerankConfig

from cornstack_train.data.splits import RepoSplit
from cornstack_train.errors import StageCommand, StageGroup, fail
from cornstack_train.ranker.stages import corpus_options
from cornstack_train.reranker.data import LOSSES

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


def _split_options(func):
    """The held-out repositories; teacher-rank (which excludes them) and eval-reranker must agree."""
    func = click.option("--heldout-repo", "heldout_repos", multiple=True,
                        help="Hold out exactly these repositories (repeatable); overrides the fraction.")(func)
    func = click.option("--heldout-fraction", type=click.FloatRange(0, 1), default=0.1, show_default=True,
                        help="Share of repositories held out (by a hash of the name, as `train`/`eval`).")(func)
    return func


def _budget_options(func):
    """Prompt budgets: must equal what inference uses (RerankConfig's defaults)."""
    from localizer.rerank.reranker import RerankConfig as R

    func = click.option("--footer-issue-tokens", type=click.IntRange(0), default=R.footer_issue_tokens, show_default=True)(func)
    func = click.option("--min-candidate-tokens", type=click.IntRange(0), default=R.min_candidate_tokens, show_default=True)(func)
    func = click.option("--candidate-tokens", type=click.IntRange(1), default=R.candidate_tokens, show_default=True,
                        help="Tokens per candidate in the prompt.")(func)
    func = click.option("--issue-tokens", type=click.IntRange(1), default=R.issue_tokens, show_default=True,
                        help="Tokens of the query in the prompt header.")(func)
    return func


class _SystemProgress:
    """``progress(system, done, total)`` of eval-reranker: one StageProgress per system, as they run in turn."""

    def __init__(self, unit: str) -> None:
        self.unit = unit
        self._name: str | None = None
        self._bar: StageProgress | None = None

    def __call__(self, name: str, done: int, total: int) -> None:
        if name != self._name:
            self.close()
            self._name, self._bar = name, StageProgress(name, self.unit)
        assert self._bar is not None
        self._bar(done, total)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


@click.command("teacher-rank", cls=StageCommand, context_settings=CONTEXT)
@click.argument("negatives", type=click.Path(file_okay=False, path_type=Path))
@click.option("--out", "-o", required=True, type=click.Path(file_okay=False, path_type=Path), help="Output stage directory.")
@click.option("--mode", type=click.Choice(["gold-embedder", "gold-teacher", "teacher"]), default="gold-embedder",
              show_default=True, help="gold-embedder: positive first, then embedder order (no model); gold-teacher: "
              "positive first, then the teacher's order; teacher: the teacher's order as is.")
@click.option("--teacher", default=None, metavar="ID|PATH",
              help="Teacher causal LM: a packaged name (qwen2.5-coder-1.5b-instruct, the strongest that runs "
              "offline), HF id, local dir or .gguf (default: the packaged Qwen2.5-Coder-0.5B).")
@click.option("--depth", type=click.IntRange(2), default=10, show_default=True,
              help="Candidates per instance: the positive and depth-1 hardest negatives.")
@click.option("--kind", "kinds", multiple=True, type=click.Choice(["docstring", "commit"]),
              default=("docstring", "commit"), show_default=True)
@click.option("--max-instances", type=click.IntRange(1), default=None, help="A random sample of this many windows.")
@click.option("--window", type=click.IntRange(2), default=10, show_default=True, help="Teacher's sliding window.")
@click.option("--stride", type=click.IntRange(1), default=5, show_default=True)
@click.option("--rank-mode", type=click.Choice(["first-token", "generate"]), default="first-token", show_default=True,
              help="How the teacher answers: order by the first-id distribution (one prompt pass), or decode the "
              "whole permutation (the prompt pass plus ~40 decoding steps of the full model for 10 ids).")
@click.option("--device", default="auto", show_default=True)
@click.option("--dtype", default="auto", show_default=True)
@click.option("--threads", type=click.IntRange(1), default=None, help="torch CPU threads.")
@click.option("--batch-size", type=click.IntRange(1), default=4, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@_budget_options
@_split_options
@click.option("--overwrite", is_flag=True)
def teacher_rank_command(negatives, out, mode, teacher, depth, kinds, max_instances, window, stride, rank_mode, device,
                         dtype, threads, batch_size, seed, issue_tokens, candidate_tokens, min_candidate_tokens,
                         footer_issue_tokens, heldout_fraction, heldout_repos, overwrite):
    """Rank each query's positive and hard negatives into a target order for reranker training.

    An interrupted run resumes: rerun the same command and the instances in OUT.work/ are kept.
    """
    from cornstack_train.data.records import stage_complete
    from cornstack_train.reranker.teacher import LLMTeacher, TeacherConfig, teacher_rank

    if stage_complete(out) and not overwrite:
        click.echo(f"{out} is already complete; skipping (pass --overwrite to redo it)", err=True)
        return
    if threads:
        import torch

        torch.set_num_threads(threads)
    try:
        config = TeacherConfig(mode=mode, depth=depth, kinds=tuple(kinds), max_instances=max_instances,
                               batch_size=batch_size, seed=seed)
        llm = None
        if mode != "gold-embedder":
            from localizer.rerank import ListwiseReranker, RerankConfig

            llm = LLMTeacher(ListwiseReranker(RerankConfig(
                model=teacher, window=window, stride=stride, depth=depth, mode=rank_mode, device=device, dtype=dtype,
                batch_size=batch_size, issue_tokens=issue_tokens, candidate_tokens=candidate_tokens,
                min_candidate_tokens=min_candidate_tokens, footer_issue_tokens=footer_issue_tokens)))
        with StageProgress("teacher-rank", "window") as bar:
            stats = teacher_rank(str(negatives), str(out), config, RepoSplit(heldout_fraction, tuple(heldout_repos)),
                                 llm, overwrite, bar)
    except (LocalizerError, ValueError) as exc:
        fail(exc)
    keys = ("instances", "by_kind", "repos", "teacher", "resumed", "load_seconds", "seconds_per_instance")
    click.echo(json.dumps({k: stats[k] for k in keys if k in stats}), err=True)


@click.command("repo-windows", cls=StageCommand, context_settings=CONTEXT)
@corpus_options
@click.option("--max-repos", type=click.IntRange(min=1), default=None,
              help="Only the first N training repositories (held-out ones never count), in name order.")
@click.option("--skip-repos", type=click.IntRange(min=0), default=0, show_default=True,
              help="Leave out the first N usable repositories in name order, before --max-repos counts. The "
                   "shipped learned ranker was fitted on the first 97 Python ones (benchmarks/train_ranker.sh): "
                   "its lists over its own training repositories are easier than over a new issue's.")
@click.option("--index-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Index cache to use [default: localize's].")
@click.option("--history-commits", type=click.IntRange(min=1), default=None,
              help="History window per snapshot (as localize's --history-commits) [default: localize's].")
@click.option("--depth", type=click.IntRange(2), default=None,
              help="Top functions the windows cover [default: 20, as localize's --rerank-depth].")
@click.option("--window", type=click.IntRange(2), default=None,
              help="Candidates per window [default: 10, as --rerank-window].")
@click.option("--stride", type=click.IntRange(1), default=None,
              help="How far windows move [default: 5, as --rerank-stride].")
@click.option("--offset", "offsets", multiple=True, type=click.IntRange(min=1),
              help="Snapshots this many commits before the pinned head (repeatable) [default: the learned "
                   "ranker's mining: 150, 600 and 1500].")
@click.option("--benchmark-repos-dir", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help="The benchmark repositories (owner__name clones): drop every window showing one of their "
                   "functions, as `mine --benchmark-repos-dir` drops pairs. Weights that ship need it.")
@click.option("--heldout-lists", is_flag=True,
              help="Rank the held-out repositories instead, one record per query: its whole top DEPTH in "
                   "pipeline order with every gold marked. eval-reranker reorders those lists to measure the "
                   "reranker where localize uses it.")
@_split_options
@click.option("--out", "-o", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Output stage directory.")
@click.option("--overwrite", is_flag=True)
def repo_windows_command(lists, repos_dir, languages, names, max_repos, skip_repos, index_dir, history_commits, depth,
                         window, stride, offsets, benchmark_repos_dir, heldout_lists, heldout_fraction, heldout_repos,
                         out, overwrite):
    """Reranker windows from commit messages, ranked by localize's own pipeline over the snapshot before them.

    Per training repository and past snapshot, each later commit's message is ranked (BM25, the learned
    ranker, history); every window the product's reranker would see over the top DEPTH that holds a
    function the commit changed becomes an instance, gold first. Resumable: rerun the same command and
    the repositories finished in OUT.work/ are kept.
    """
    from dataclasses import replace

    from indexer.history.build import HistoryConfig

    from localizer.config import LocalizeConfig

    from cornstack_train.data.licenses import load_repo_list
    from cornstack_train.data.records import stage_complete
    from cornstack_train.ranker.mining import MiningConfig
    from cornstack_train.ranker.stages import training_repos
    from cornstack_train.reranker.repo_windows import SourceRepo, WindowSettings, repo_windows_stage

    if stage_complete(out) and not overwrite:
        click.echo(f"{out} is already complete; skipping (pass --overwrite to redo it)", err=True)
        return
    try:
        settings = WindowSettings(**{k: v for k, v in (("depth", depth), ("window", window), ("stride", stride))
                                     if v is not None})
        config = LocalizeConfig(rerank=None)
        if index_dir is not None:
            config = replace(config, index=replace(config.index, index_dir=index_dir))
        if history_commits is not None:
            config = replace(config, history=HistoryConfig(max_commits=history_commits))
        language = {entry.dir_name: entry.language or "" for listing in lists for entry in load_repo_list(listing)}
        sources = [SourceRepo(repo, language.get(repo.name, ""))
                   for repo in training_repos(lists, repos_dir, tuple(languages), tuple(names))[skip_repos:]]
        if not sources:
            raise ValueError(f"--skip-repos {skip_repos} leaves no repository")

        def report(stats, reused: bool) -> None:
            how = "from its shard" if reused else f"{stats.seconds:.0f} s"
            click.echo(f"{stats.repo}: {stats.queries} queries, {stats.gold_in_top} with a gold in the top "
                       f"{settings.depth}, {stats.windows} windows ({how})", err=True)

        mining = MiningConfig(offsets=tuple(offsets)) if offsets else None
        benchmark = None
        if benchmark_repos_dir is not None:
            from cornstack_train.data.denylist import BenchmarkHashes
            from cornstack_train.reranker.teacher import work_dir

            # cached beside the shards, so a resumed run does not hash the benchmarks again
            benchmark = BenchmarkHashes.from_repos_dir(benchmark_repos_dir, work_dir(out) / "benchmark-hashes")
        stats = repo_windows_stage(sources, out, config, RepoSplit(heldout_fraction, tuple(heldout_repos)), settings,
                                   mining=mining, max_repos=max_repos, overwrite=overwrite, on_repo=report,
                                   lists=heldout_lists, benchmark=benchmark, repos_lists=[str(p) for p in lists])
    except (LocalizerError, ValueError) as exc:
        fail(exc)
    keys = ("instances", "repos", "queries", "queries_with_gold", "gold_in_top", "gold_in_top_share", "gold_rank",
            "heldout_repos", "resumed", "seconds_per_repo", "dropped_benchmark_overlap")
    click.echo(json.dumps({k: stats[k] for k in keys if k in stats}), err=True)


@click.command("train-reranker", cls=StageCommand, context_settings=CONTEXT)
@click.argument("instances", type=click.Path(file_okay=False, path_type=Path))
@click.option("--extra-stage", "extra_stages", multiple=True, type=click.Path(file_okay=False, path_type=Path),
              help="Another teacher-rank or repo-windows stage to train on too (repeatable): its instances follow "
              "INSTANCES', in the order given, so the same command resumes exactly.")
@click.option("--out", "-o", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Output: adapter/ (load with --reranker-adapter), checkpoints/, train_log.jsonl.")
@click.option("--model", default=None, metavar="ID|PATH", help="Base causal LM (default: packaged Qwen2.5-Coder-0.5B).")
@click.option("--preset", type=click.Choice(["cpu", "gpu"]), default="cpu", show_default=True,
              help="gpu: cuda, bf16, batch 8 x 2, gradient checkpointing; explicit flags win.")
@click.option("--loss", type=click.Choice(LOSSES), default="first-token", show_default=True,
              help="Supervise only the first id (what the first-token scorer reads) or the full permutation.")
@click.option("--lora-r", type=click.IntRange(1), default=16, show_default=True)
@click.option("--lora-alpha", type=click.IntRange(1), default=32, show_default=True)
@click.option("--lora-dropout", type=click.FloatRange(0, 1), default=0.05, show_default=True)
@click.option("--target-module", "target_modules", multiple=True,
              default=("q_proj", "k_proj", "v_proj", "o_proj"), show_default=True, help="Repeatable.")
@click.option("--lr", type=float, default=1e-4, show_default=True)
@click.option("--warmup-steps", type=click.IntRange(0), default=2, show_default=True)
@click.option("--epochs", type=click.IntRange(1), default=1, show_default=True)
@click.option("--max-steps", type=click.IntRange(1), default=None, help="Optimizer steps (default: epochs over the data).")
@click.option("--max-minutes", type=click.FloatRange(0), default=None,
              help="Stop cleanly after this much training time (checkpoint and adapter are saved).")
@click.option("--batch-size", type=click.IntRange(1), default=1, show_default=True)
@click.option("--grad-accum", type=click.IntRange(1), default=1, show_default=True)
@click.option("--save-steps", type=click.IntRange(1), default=10, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--first-stage-share", type=click.FloatRange(0, 1), default=0.0, show_default=True,
              help="Share of instances shown in first-stage order instead of shuffled, so the model can learn the "
                   "pipeline's prior (repo-windows keep its order).")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
@click.option("--dtype", default="auto", show_default=True, help="auto, fp32, bf16 or fp16.")
@click.option("--bf16", is_flag=True, help="Shorthand for --dtype bf16.")
@click.option("--gradient-checkpointing", is_flag=True)
@click.option("--threads", type=click.IntRange(1), default=None, help="torch CPU threads.")
@click.option("--no-resume", is_flag=True, help="Start over even if out/checkpoints has a checkpoint.")
@_budget_options
@click.pass_context
def train_reranker_command(ctx, instances, extra_stages, out, model, preset, loss, lora_r, lora_alpha, lora_dropout,
                           target_modules, lr, warmup_steps, epochs, max_steps, max_minutes, batch_size, grad_accum,
                           save_steps, seed, first_stage_share, device, dtype, bf16, gradient_checkpointing, threads,
                           no_resume, issue_tokens, candidate_tokens, min_candidate_tokens, footer_issue_tokens):
    """LoRA-train the listwise reranker on a teacher-rank (or repo-windows) stage, plus any --extra-stage."""
    from cornstack_train.data.records import load_stage, load_stats, sha256_tree
    from cornstack_train.reranker.training import TrainConfig, train_reranker, with_preset

    required = ("query", "candidates", "target", "positive_index")
    try:
        records = load_stage(instances, require=required).to_list()
        extras = []
        for extra in extra_stages:
            records += load_stage(extra, require=required).to_list()
            extras.append({"path": str(extra), "sha256": sha256_tree(extra), "stats": load_stats(extra)})
        config = TrainConfig(
            model=model, loss=loss, lora_r=lora_r, lora_alpha=lora_alpha, lora_dropout=lora_dropout,
            target_modules=tuple(target_modules), lr=lr, warmup_steps=warmup_steps, epochs=epochs, max_steps=max_steps,
            max_seconds=None if max_minutes is None else max_minutes * 60, batch_size=batch_size, grad_accum=grad_accum,
            seed=seed, first_stage_share=first_stage_share, issue_tokens=issue_tokens, candidate_tokens=candidate_tokens,
            min_candidate_tokens=min_candidate_tokens, footer_issue_tokens=footer_issue_tokens, device=device,
            dtype="bf16" if bf16 else dtype, gradient_checkpointing=gradient_checkpointing, save_steps=save_steps,
            threads=threads)
        names = {f.name for f in fields(TrainConfig)}
        explicit = {p for p in ctx.params if ctx.get_parameter_source(p) == ParameterSource.COMMANDLINE and p in names}
        if bf16:
            explicit.add("dtype")
        config = with_preset(config, preset, explicit)
        info = {"path": str(instances), "sha256": sha256_tree(instances), "stats": load_stats(instances)}
        if extras:
            info["extra_stages"] = extras

        def progress(entry: dict) -> None:
            click.echo(f"step {entry['step']}: loss {entry['loss']:.4f} ({entry['seconds']:.1f} s)", err=True)

        result = train_reranker(records, out, config, resume=not no_resume, data_info=info, progress=progress)
    except (LocalizerError, ValueError) as exc:
        fail(exc)
    click.echo(f"wrote adapter {result.adapter} after {result.steps} steps ({result.stopped})", err=True)


@click.command("eval-reranker", cls=StageCommand, context_settings=CONTEXT)
@click.argument("negatives", metavar="STAGE", type=click.Path(file_okay=False, path_type=Path))
@click.option("--out", "-o", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Output: metrics.json, metrics.md, ranks/SYSTEM.jsonl (reused by a re-run).")
@click.option("--adapter", "adapters", multiple=True, metavar="[NAME=]DIR",
              help="A trained adapter to evaluate (repeatable); NAME defaults to 'trained'.")
@click.option("--zero-shot/--no-zero-shot", default=True, show_default=True, help="Also the base model without adapter.")
@click.option("--model", default=None, metavar="ID|PATH", help="Base causal LM (default: packaged Qwen2.5-Coder-0.5B).")
@click.option("--depth", type=click.IntRange(2), default=10, show_default=True,
              help="Candidates per query: the positive and depth-1 hardest negatives.")
@click.option("--max-queries", type=click.IntRange(1), default=40, show_default=True)
@click.option("--kind", "kinds", multiple=True, type=click.Choice(["docstring", "commit"]), default=("docstring",),
              show_default=True)
@click.option("--window", type=click.IntRange(2), default=RerankConfig.window, show_default=True,
              help="As localize's --rerank-window.")
@click.option("--stride", type=click.IntRange(1), default=RerankConfig.stride, show_default=True,
              help="As localize's --rerank-stride.")
@click.option("--rank-mode", type=click.Choice(["first-token", "generate"]), default="first-token", show_default=True)
@click.option("--device", default="auto", show_default=True)
@click.option("--dtype", default="auto", show_default=True)
@click.option("--batch-size", type=click.IntRange(1), default=1, show_default=True,
              help="Queries per model batch (1 on a CPU: the scorer then reuses the shared prompt prefix).")
@click.option("--threads", type=click.IntRange(1), default=None, help="torch CPU threads.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--shuffle", is_flag=True,
              help="Show each list in a random order instead of first-stage order (the reranker alone, no retriever prior).")
@click.option("--retrieve-with", "retriever_model", default=None, metavar="MODEL",
              help="Build each list by searching all held-out codes with this embedder (base, a `train` output, any "
              "sentence-transformers id or dir): STAGE may then be any pairs stage, best the unfiltered `mine` one.")
@click.option("--fusion", type=click.Choice(FUSIONS), default="none", show_default=True,
              help="rrf: also a NAME+rrf row per reranker, its order fused with the first stage's (no model calls).")
@click.option("--fusion-k", type=click.IntRange(1), default=RRF_K, show_default=True, help="The RRF constant.")
@_budget_options
@_split_options
def eval_reranker_command(negatives, out, adapters, zero_shot, model, depth, max_queries, kinds, window, stride, rank_mode,
                          device, dtype, batch_size, threads, seed, shuffle, retriever_model, fusion, fusion_k,
                          issue_tokens, candidate_tokens, min_candidate_tokens, footer_issue_tokens, heldout_fraction,
                          heldout_repos):
    """MRR@10 on held-out queries: retriever order vs zero-shot LLM vs trained reranker(s).

    STAGE is a `negatives` stage: each list is a query's positive at its filter rank among its hardest
    negatives. Those pairs passed the consistency filter, so the retriever's order is strong by
    construction. With --retrieve-with, each list is instead the top --depth of a real search over
    the held-out codes, positive or not. A `repo-windows --heldout-lists` stage gives the setting
    the reranker meets in `localize` itself: each commit message's top --depth functions of its
    repository, as the product's pipeline ranked them (set --depth 20, localize's --rerank-depth).
    """
    from cornstack_train.data.records import NEGATIVE_COLUMNS, PAIR_COLUMNS, load_stage
    from cornstack_train.reranker.evaluation import (RETRIEVER, EvalConfig, evaluate, fused_ranker, list_windows,
                                                     markdown_table, reranker_ranker)
    from cornstack_train.reranker.repo_windows import LIST_COLUMNS, is_list_stage

    if threads:
        import torch

        torch.set_num_threads(threads)
    try:
        named = {}
        for spec in adapters:
            name, _, path = spec.rpartition("=")
            named[name or "trained"] = path
        from localizer.rerank import ListwiseReranker, RerankConfig

        def config(adapter: str | None) -> RerankConfig:
            return RerankConfig(model=model, adapter=adapter, window=window, stride=stride, depth=depth, mode=rank_mode,
                                device=device, dtype=dtype, batch_size=batch_size, issue_tokens=issue_tokens,
                                candidate_tokens=candidate_tokens, min_candidate_tokens=min_candidate_tokens,
                                footer_issue_tokens=footer_issue_tokens, fusion="none")  # +rrf rows: --fusion

        systems = {RETRIEVER: None}
        described = {RETRIEVER: "random order (--shuffle)" if shuffle else "first-stage (embedder) order"}
        if zero_shot:
            systems["zero-shot"] = reranker_ranker(ListwiseReranker(config(None)))
            described["zero-shot"] = f"{model or 'packaged'} without adapter, {rank_mode}"
        for name, path in named.items():
            systems[name] = reranker_ranker(ListwiseReranker(config(path)))
            described[name] = f"{model or 'packaged'} + adapter {path}, {rank_mode}"
        if fusion == "rrf":
            for name in [n for n in systems if n != RETRIEVER]:
                systems[f"{name}+rrf"] = fused_ranker(name, out, fusion_k)
                described[f"{name}+rrf"] = f"{name}'s order fused with the first stage's, RRF k={fusion_k}"
        split = RepoSplit(heldout_fraction, tuple(heldout_repos))
        eval_config = EvalConfig(depth=depth, max_queries=max_queries, kinds=tuple(kinds), seed=seed, shuffle=shuffle)
        windows = None
        if is_list_stage(negatives):
            rows = load_stage(negatives, require=LIST_COLUMNS).to_list()
            windows = list_windows(rows, split, eval_config)
            described[RETRIEVER] = f"localize's pipeline order (top {depth} per query, {negatives})" + (
                ", shown in random order (--shuffle)" if shuffle else "")
        elif retriever_model:
            rows = load_stage(negatives, require=PAIR_COLUMNS).to_list()
            windows = _retrieved_windows(rows, split, eval_config, retriever_model, device)
            described[RETRIEVER] = f"top {depth} of {retriever_model} over the held-out codes" + (
                ", shown in random order (--shuffle)" if shuffle else "")
        else:
            rows = load_stage(negatives, require=PAIR_COLUMNS + NEGATIVE_COLUMNS).to_list()
        progress = _SystemProgress("query")
        try:
            report = evaluate(rows, out, systems, split, eval_config, batch_size, described, progress, windows)
        finally:
            progress.close()
    except (LocalizerError, ValueError) as exc:
        fail(exc)
    click.echo(markdown_table(report["results"]), nl=False)


def _retrieved_windows(rows, split, eval_config, retriever_model: str, device: str):
    import numpy as np

    from localizer.device import resolve_device

    from cornstack_train.embedder.evaluation import EvalConfig as RetrievalEvalConfig, load_any_model
    from cornstack_train.reranker.evaluation import retrieved_windows

    # the same truncation as `cornstack-train eval`, so the retriever here scores as it does there
    encoder = load_any_model(retriever_model, device=resolve_device(device),
                             max_seq_length=RetrievalEvalConfig.max_seq_length)

    def encode(texts):
        return np.asarray(encoder.encode(texts, batch_size=64, normalize_embeddings=True, convert_to_numpy=True,
                                         show_progress_bar=len(texts) > 256), dtype=np.float32)

    windows = retrieved_windows(rows, split, eval_config, encode, encode)
    listed = sum(w.positive_index >= 0 for w in windows)
    click.echo(f"retrieved: {len(windows)} queries, positive in the top {eval_config.depth} for {listed}", err=True)
    return windows


@click.command("ship-reranker", cls=StageCommand, context_settings=CONTEXT)
@click.argument("run", metavar="TRAIN_DIR", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--eval", "evals", multiple=True, type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="An eval-reranker output that scored this adapter (repeatable; give the --shuffle one too): "
              "its held-out figures go into the card.")
@click.option("--mined", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help="The `mine` stage behind the training data (default: found through the stages' recorded inputs).")
@click.option("--target", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Install here instead of the package's localizer/models/reranker.")
@click.option("--max-mb", type=click.FloatRange(0, min_open=True), default=25.0, show_default=True,
              help="Refuse an adapter larger than this (megabytes of weights, config and training record).")
def ship_reranker_command(run, evals, mined, target, max_mb):
    """Install TRAIN_DIR's adapter (a train-reranker output) as the reranker the package ships, with its card.

    An installed adapter turns reranking on by default in `localize`, so it is checked first: LoRA on the
    packaged base model, inference's prompt budgets, within --max-mb, its data unchanged, its corpus
    permissive, pinned in docs/ and clear of the benchmarks. It is then copied in atomically.
    """
    from cornstack_train.reranker.shipping import ship_reranker

    try:
        report = ship_reranker(run, evals, mined, target, max_mb)
    except (LocalizerError, ValueError) as exc:
        fail(exc)
    click.echo(f"installed {report.target} ({report.adapter_bytes / 1e6:.1f} MB, adapter sha256 "
               f"{report.adapter_sha256[:12]}): {', '.join(report.files)}", err=True)


@click.group(cls=StageGroup, context_settings=CONTEXT)
@click.option("--verbose", "-v", count=True)
def _standalone(verbose: int) -> None:
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, stream=sys.stderr,
                        format="cornstack-train: %(message)s")


_standalone.add_command(teacher_rank_command)
_standalone.add_command(repo_windows_command)
_standalone.add_command(train_reranker_command)
_standalone.add_command(eval_reranker_command)
_standalone.add_command(ship_reranker_command)


if __name__ == "__main__":  # pragma: no cover
    _standalone()
