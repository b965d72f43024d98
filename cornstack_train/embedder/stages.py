"""Click commands for the model stages: ``train``, ``eval``, ``harness``, ``ship``.

A thin layer: each command turns its flags into the stage's config dataclass
and calls the stage; a LocalizerError (or a config ``ValueError``) becomes one
``cornstack-train: error:`` line and exit status 1 (``cornstack_train.errors``).
The ``cornstack-train`` group (cornstack_train/cli.py) registers them;
``python -m cornstack_train.embedder.stages`` runs them standalone (and is what
``torchrun`` launches for multi-process training).
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import click
from click.core import ParameterSource

from indexer.errors import LocalizerError
from localizer.embedding.onnx_backend import BACKENDS
from localizer.embedding.shipped import shipped_model_dir

from cornstack_train.data.splits import RepoSplit
from cornstack_train.embedder.curriculum import SCHEDULES
from cornstack_train.embedder.sampler import MODES
from cornstack_train.embedder.training import HARDNESS_MODES, LOSS_DIRECTIONS
from cornstack_train.errors import StageCommand, StageGroup, fail

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}

# --preset values; a flag given explicitly on the command line always wins.
PRESETS: dict[str, dict[str, object]] = {
    "cpu": {},
    "gpu": {"batch_size": 256, "mini_batch_size": 64, "bf16": True, "device": "cuda", "hard_negatives": 7,
            "save_steps": 500, "lr": 5e-5},
}


def split_options(func):
    """The held-out repositories; `train` and `eval` must be given the same values."""
    func = click.option("--heldout-repo", "heldout_repos", multiple=True,
                        help="Hold out exactly these repositories (owner/name; repeatable). Overrides the fraction.")(func)
    func = click.option("--heldout-fraction", type=click.FloatRange(0, 1), default=0.1, show_default=True,
                        help="Share of repositories held out for `eval` (by a hash of the repo name).")(func)
    return func


def _split(heldout_fraction: float, heldout_repos: tuple[str, ...]) -> RepoSplit:
    return RepoSplit(heldout_fraction=heldout_fraction, heldout_repos=tuple(heldout_repos))


@click.command("train", cls=StageCommand, context_settings=CONTEXT)
@click.argument("data", metavar="NEGATIVES", type=click.Path(file_okay=False, path_type=Path))
@click.option("--out", "-o", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Output: model/, delta/, checkpoints/, train_stats.json.")
@click.option("--model", default=None, help="Starting model: ST id or dir, a delta dir; default the packaged MiniLM.")
@click.option("--preset", type=click.Choice(sorted(PRESETS)), default="cpu", show_default=True,
              help="Defaults for the hardware: gpu = batch 256, mini-batch 64, 7 negatives, bf16, cuda.")
@click.option("--negatives", type=click.Choice(MODES), default="softmax", show_default=True,
              help="Hard negatives: softmax sampling (CoRNStack), top-k, random corpus rows, or none (in-batch only).")
@click.option("--hard-negatives", "hard_negatives", type=click.IntRange(0), default=3, show_default=True,
              help="Hard negatives per query (k).")
@click.option("--tau-start", type=click.FloatRange(min=0, min_open=True), default=1.0, show_default=True,
              help="Sampling temperature at the start (high: near uniform over the mined candidates).")
@click.option("--tau-end", type=click.FloatRange(min=0, min_open=True), default=0.05, show_default=True,
              help="Sampling temperature at the end (low: the hardest candidates).")
@click.option("--schedule", type=click.Choice([s for s in SCHEDULES if s != "constant"]), default="exponential",
              show_default=True, help="How τ falls from --tau-start to --tau-end over training.")
@click.option("--no-curriculum", is_flag=True, help="Constant τ = --tau-start.")
@click.option("--batch-size", type=click.IntRange(2), default=32, show_default=True,
              help="Queries per batch (per process); all their positives/negatives are in-batch negatives.")
@click.option("--mini-batch-size", type=click.IntRange(1), default=16, show_default=True,
              help="Gradient-caching chunk: memory scales with this, not --batch-size.")
@click.option("--no-cache", is_flag=True, help="Plain MNRL without gradient caching (faster if the batch fits).")
@click.option("--epochs", type=click.FloatRange(min=0, min_open=True), default=1.0, show_default=True)
@click.option("--max-steps", type=int, default=-1, show_default=True, help="Stop after N optimizer steps (overrides --epochs).")
@click.option("--lr", type=float, default=2e-5, show_default=True)
@click.option("--warmup", "warmup_ratio", type=click.FloatRange(0, 1), default=0.1, show_default=True,
              help="Share of steps with linear LR warm-up.")
@click.option("--scale", type=click.FloatRange(min=0, min_open=True), default=20.0, show_default=True,
              help="InfoNCE logit scale (1 / loss temperature).")
@click.option("--loss-direction", "directions", multiple=True, type=click.Choice(LOSS_DIRECTIONS),
              default=("query_to_doc",), show_default=True,
              help="InfoNCE terms in one joint softmax (repeat the flag): doc_to_query makes it symmetric, "
                   "query_to_query and doc_to_doc add GTE's extra in-batch terms. Must include query_to_doc.")
@click.option("--hardness-mode", type=click.Choice(HARDNESS_MODES), default=None,
              help="Up-weight hard negatives inside the softmax by --hardness-strength × their (detached) similarity.")
@click.option("--hardness-strength", type=click.FloatRange(min=0), default=0.0, show_default=True,
              help="The alpha of --hardness-mode (Lan et al. 2025 use 9 for in_batch_negatives).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--resume", is_flag=True, help="Continue from the last checkpoint in OUT/checkpoints.")
@click.option("--overwrite", is_flag=True, help="Replace an existing OUT/model.")
@click.option("--bf16", is_flag=True, help="bf16 autocast (fast on GPUs; slower on CPUs without avx512_bf16).")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda, cuda:N.")
@click.option("--threads", type=click.IntRange(1), default=None, help="torch CPU threads (1 is fastest on a busy machine).")
@click.option("--lora", is_flag=True, help="Train a LoRA adapter (merged into the exported weights).")
@click.option("--lora-rank", type=click.IntRange(1), default=16, show_default=True)
@click.option("--train-embeddings", is_flag=True, help="Also train the word embeddings (the delta then exceeds 25 MB).")
@click.option("--max-seq-length", type=click.IntRange(8), default=256, show_default=True)
@click.option("--save-steps", type=click.IntRange(1), default=200, show_default=True, help="Checkpoint every N steps.")
@click.option("--logging-steps", type=click.IntRange(1), default=10, show_default=True)
@click.option("--max-rows", type=click.IntRange(1), default=None, help="Only the first N training rows (smoke runs).")
@click.option("--no-export", is_flag=True, help="Skip writing model/ and delta/ (step-time measurements).")
@split_options
@click.pass_context
def train_command(ctx: click.Context, **opts) -> None:
    """Fine-tune the embedder on NEGATIVES with InfoNCE and curriculum-sampled hard negatives (CoRNStack).

    Each query is contrasted with its positive, k hard negatives re-drawn at
    every step with p ∝ exp(score/τ) while τ falls from --tau-start to --tau-end,
    and every other text in the batch. Repositories held out for `eval` are
    never trained on. Multi-process: `torchrun --nproc_per_node N -m
    cornstack_train.embedder.stages train ...` (negatives are gathered across
    processes).
    """
    from cornstack_train.embedder.training import TrainConfig, train

    for key, value in PRESETS[opts["preset"]].items():
        if ctx.get_parameter_source(key) in (ParameterSource.DEFAULT, None):
            opts[key] = value
    try:
        config = TrainConfig(
            data=opts["data"], out=opts["out"], model=opts["model"], negatives=opts["negatives"],
            hard_negatives=opts["hard_negatives"], tau_start=opts["tau_start"], tau_end=opts["tau_end"],
            schedule="constant" if opts["no_curriculum"] else opts["schedule"], batch_size=opts["batch_size"],
            mini_batch_size=opts["mini_batch_size"], cached=not opts["no_cache"], epochs=opts["epochs"],
            max_steps=opts["max_steps"], lr=opts["lr"], warmup_ratio=opts["warmup_ratio"], scale=opts["scale"],
            directions=tuple(opts["directions"]), hardness_mode=opts["hardness_mode"],
            hardness_strength=opts["hardness_strength"], seed=opts["seed"], resume=opts["resume"], bf16=opts["bf16"], device=opts["device"],
            threads=opts["threads"], lora=opts["lora"], lora_rank=opts["lora_rank"], lora_alpha=2 * opts["lora_rank"],
            freeze_embeddings=not opts["train_embeddings"], max_seq_length=opts["max_seq_length"],
            save_steps=opts["save_steps"], logging_steps=opts["logging_steps"], max_rows=opts["max_rows"],
            split=_split(opts["heldout_fraction"], opts["heldout_repos"]), export=not opts["no_export"],
            overwrite=opts["overwrite"],
        )
        stats = train(config)
    except (LocalizerError, ValueError) as exc:
        fail(exc)
    run = stats["run"]
    click.echo(f"trained {run['global_step']} steps in {run['wall_seconds']} s "
               f"({run['step_seconds_mean']} s/step), loss {run['train_loss']}")
    if "export" in stats:
        click.echo(json.dumps(stats["export"], indent=2))


@click.command("eval", cls=StageCommand, context_settings=CONTEXT)
@click.argument("data", metavar="STAGE", type=click.Path(file_okay=False, path_type=Path))
@click.option("--out", "-o", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Writes metrics.json and metrics.md here.")
@click.option("--model", "models", multiple=True, default=("base",), show_default=True,
              help="`base`/`default` (packaged MiniLM), a `train` output dir, an ST dir/id, a delta dir; "
                   "LABEL=PATH names it. Repeatable.")
@click.option("--max-queries", type=click.IntRange(1), default=None, help="Sample this many held-out queries.")
@click.option("--batch-size", type=click.IntRange(1), default=64, show_default=True)
@click.option("--max-seq-length", type=click.IntRange(8), default=256, show_default=True)
@click.option("--device", default="auto", show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@split_options
def eval_command(data, out, models, max_queries, batch_size, max_seq_length, device, seed, heldout_fraction,
                 heldout_repos) -> None:
    """Held-out query→code retrieval in STAGE: MRR@10, Recall@1, Recall@10 per model, side by side.

    Uses the same repository split as `train` (give both the same --heldout-*
    flags); each held-out query is searched among all held-out positives.
    """
    from cornstack_train.embedder.evaluation import EvalConfig, evaluate

    config = EvalConfig(data=data, out=out, models=tuple(models), split=_split(heldout_fraction, heldout_repos),
                        max_queries=max_queries, batch_size=batch_size, device=device,
                        max_seq_length=max_seq_length, seed=seed)
    try:
        evaluate(config)
    except (LocalizerError, ValueError) as exc:
        fail(exc)
    click.echo((Path(out) / "metrics.md").read_text())


@click.command("harness", cls=StageCommand, context_settings=CONTEXT)
@click.option("--model", "models", multiple=True, required=True,
              help="Trained model: a `train` output dir, an ST dir or a delta dir (LABEL=PATH names it). Repeatable.")
@click.option("--data", default="princeton-nlp/SWE-bench_Lite", show_default=True,
              help="SWE-bench .jsonl/.json/.parquet or a dataset id.")
@click.option("--repos-dir", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="One bare git dir or clone per repository, named owner__name.")
@click.option("--out", "-o", type=click.Path(file_okay=False, path_type=Path), required=True)
@click.option("--retriever", "retrievers", multiple=True, default=("bm25", "dense", "hybrid"), show_default=True,
              help="bm25 (no model), dense, hybrid; crossed with the base MiniLM and every --model.")
@click.option("--ids", "ids_file", type=click.Path(dir_okay=False, path_type=Path), default=None)
@click.option("--limit", type=click.IntRange(1), default=None)
@click.option("--index-dir", type=click.Path(file_okay=False, path_type=Path), default=None)
@click.option("--device", default="auto", show_default=True)
@click.option("--clone", is_flag=True, help="Clone missing repositories (needs network).")
@click.option("--backend", type=click.Choice(BACKENDS), default="torch", show_default=True,
              help="Runtime of the trained models (torch-bf16: half the CPU time where the CPU has native bf16).")
@click.option("--base-backend", type=click.Choice(BACKENDS), default="torch", show_default=True,
              help="Runtime of the base MiniLM; fp32 reuses the embeddings earlier runs cached.")
@click.option("--workers", type=click.IntRange(1), default=1, show_default=True,
              help="Harness worker processes (whole repositories each).")
def harness_command(models, data, repos_dir, out, retrievers, ids_file, limit, index_dir, device, clone, backend,
                    base_backend, workers) -> None:
    """SWE-bench-Lite localization of trained models next to the base MiniLM and BM25.

    Runs the harness (`localize-bench`, else its module with this Python, as
    installed or from a checkout) as a subprocess; delta directories are first
    rebuilt into full model directories under OUT/models.
    """
    from cornstack_train.embedder.evaluation import HarnessRunConfig, run_harness

    config = HarnessRunConfig(data=data, repos_dir=repos_dir, out=out, models=tuple(models),
                              retrievers=tuple(retrievers), ids_file=ids_file, limit=limit, index_dir=index_dir,
                              device=device, clone=clone, backend=backend, base_backend=base_backend,
                              workers=workers)
    try:
        run_harness(config)
    except LocalizerError as exc:
        fail(exc)
    click.echo((Path(out) / "metrics.md").read_text())


@click.command("ship", cls=StageCommand, context_settings=CONTEXT)
@click.argument("run", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--into", "--out", "-o", "into", type=click.Path(file_okay=False, path_type=Path), default=None,
              metavar="DIR",
              help=f"Install into DIR instead of the localizer package's models/cornstack ({shipped_model_dir()}): "
                   "package data, in the source tree of the checkout this runs from. --out is an old name of it.")
@click.option("--max-mb", type=click.FloatRange(min=0.1), default=25.0, show_default=True,
              help="Refuse a model larger than this (the package's budget for weights).")
@click.option("--static", "static", is_flag=True,
              help="Ship a static run's static/ model as --model localizer-static (default DIR: the package's "
                   "models/static).")
def ship_command(run, into, max_mb, static) -> None:
    """Install a `train` run's compact delta as the embedder `localize --model localizer-cornstack` loads.

    RUN is a `train` output (or its delta/ directory). The delta must fit the
    budget and rebuild on the packaged MiniLM; its model card and the run's
    train_stats.json and held-out metrics are installed next to it.

    Without --into this writes package data of the checkout (or install) it runs
    from: localizer/models/cornstack in the source tree, which the next release
    ships and `localize` loads by default. Commit it only for a model trained on
    the registry corpus (docs/training.md).
    """
    from cornstack_train.embedder.shipping import ship, ship_static

    try:
        report = (ship_static if static else ship)(run, into, max_bytes=int(max_mb * 1e6))
    except (LocalizerError, OSError) as exc:
        fail(exc)
    click.echo(f"installed {report.target} ({report.delta_bytes / 1e6:.1f} MB, {'weights' if static else 'delta'} "
               f"sha256 {report.delta_sha256[:12]}...): {', '.join(report.files)}")


@click.group(cls=StageGroup, context_settings=CONTEXT)
@click.option("--verbose", "-v", count=True)
def main(verbose: int) -> None:
    """The model stages of the CoRNStack pipeline (standalone entry point)."""
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, stream=sys.stderr,
                        format="cornstack-train: %(message)s")


main.add_command(train_command)
main.add_command(eval_command)
main.add_command(harness_command)
main.add_command(ship_command)

__all__ = ["train_command", "eval_command", "harness_command", "ship_command", "PRESETS"]

if __name__ == "__main__":
    main()
