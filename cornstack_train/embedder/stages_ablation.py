"""``cornstack-train ablate``: the recipe's steps switched off one at a time, in one table."""

from __future__ import annotations

from pathlib import Path

import click

from indexer.errors import LocalizerError
from localizer.embedding.onnx_backend import BACKENDS

from cornstack_train.embedder.ablation import DEFAULT_VARIANTS, VARIANTS, AblationConfig, run_ablation
from cornstack_train.embedder.curriculum import SCHEDULES
from cornstack_train.embedder.stages import CONTEXT, _split, split_options
from cornstack_train.errors import StageCommand, fail


@click.command("ablate", cls=StageCommand, context_settings=CONTEXT)
@click.argument("negatives_dir", metavar="NEGATIVES", type=click.Path(file_okay=False, path_type=Path))
@click.argument("mined_dir", metavar="MINED", type=click.Path(file_okay=False, path_type=Path))
@click.option("--out", "-o", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Writes variants/<name>/, eval/, harness/, ablation.json and ablation.md.")
@click.option("--variant", "variants", multiple=True, type=click.Choice(list(VARIANTS)),
              help=f"Variants to run, repeatable (default: all: {', '.join(DEFAULT_VARIANTS)}).")
@click.option("--max-steps", type=click.IntRange(1), default=60, show_default=True,
              help="Optimizer steps per variant (the same for all, so they compare).")
@click.option("--batch-size", type=click.IntRange(2), default=32, show_default=True)
@click.option("--hard-negatives", type=click.IntRange(0), default=3, show_default=True)
@click.option("--lr", type=float, default=5e-5, show_default=True)
@click.option("--tau-start", type=click.FloatRange(min=0, min_open=True), default=1.0, show_default=True)
@click.option("--tau-end", type=click.FloatRange(min=0, min_open=True), default=0.05, show_default=True)
@click.option("--schedule", type=click.Choice([s for s in SCHEDULES if s != "constant"]), default="exponential",
              show_default=True)
@click.option("--max-seq-length", type=click.IntRange(8), default=128, show_default=True)
@click.option("--no-cache", is_flag=True, help="Plain MNRL without gradient caching (faster if the batch fits).")
@click.option("--bf16", is_flag=True, help="bf16 autocast (2.6x faster steps on CPUs with native bf16).")
@click.option("--threads", type=click.IntRange(1), default=None)
@click.option("--nproc", type=click.IntRange(1), default=1, show_default=True,
              help="Train each variant in N data-parallel processes of one thread (torchrun); --batch-size stays "
              "the global batch. On 2 CPU cores, --nproc 2 halves the step time.")
@click.option("--device", default="auto", show_default=True)
@click.option("--seed", "seeds", type=int, multiple=True,
              help="Train every variant once per seed (repeatable; default one run, seed 0). With several, the "
                   "table gives seed means with 95% bootstrap intervals.")
@click.option("--model", default=None, metavar="DIR",
              help="Starting model of every variant (e.g. a `distill` output for the static embedder); default the "
                   "packaged MiniLM.")
@click.option("--unfiltered", "unfiltered_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="The `negatives` stage run on the unfiltered mined pairs: no-filter then trains the full recipe "
                   "on it (without it: the mined pairs with random negatives).")
@click.option("--eval-data", "eval_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Stage scored for held-out MRR@10 (default MINED, split by the held-out options).")
@click.option("--epochs", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Train each variant for this many epochs instead of --max-steps.")
@split_options
@click.option("--eval-max-queries", type=click.IntRange(1), default=1000, show_default=True,
              help="Held-out queries scored (from MINED, so the held-out set is not pre-selected by the filter).")
@click.option("--swebench-data", default=None, help="SWE-bench .jsonl: also score each variant's dense retriever.")
@click.option("--repos-dir", type=click.Path(file_okay=False, path_type=Path), default=None)
@click.option("--ids", "ids_file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Only these instance ids (a fixed subset when CPU time forbids all 300).")
@click.option("--index-dir", type=click.Path(file_okay=False, path_type=Path), default=None)
@click.option("--backend", type=click.Choice(BACKENDS), default="torch", show_default=True,
              help="Runtime of the variants in the harness (the base MiniLM stays fp32).")
@click.option("--retriever", "harness_retriever", type=click.Choice(["dense", "hybrid"]), default="dense",
              show_default=True, help="Which retriever's SWE-bench figures the table reports.")
def ablate_command(negatives_dir, mined_dir, out, variants, max_steps, batch_size, hard_negatives, lr, tau_start,
                   tau_end, schedule, max_seq_length, no_cache, bf16, threads, nproc, device, seeds, model,
                   unfiltered_dir, eval_dir, epochs, heldout_fraction, heldout_repos, eval_max_queries, swebench_data,
                   repos_dir, ids_file, index_dir, backend, harness_retriever) -> None:
    """Train each ablation variant for the same steps, then score all of them side by side.

    NEGATIVES is the `negatives` stage, MINED the `mine` stage (the no-filter
    variant trains on it; held-out MRR@10 is measured on its held-out
    repositories). With --swebench-data and --repos-dir, the harness adds
    function Acc@10 and file Acc@3 of each variant's dense retriever.
    """
    from cornstack_train.embedder.evaluation import HarnessRunConfig
    from cornstack_train.embedder.training import TrainConfig

    if bool(swebench_data) != bool(repos_dir):
        raise click.UsageError("--swebench-data and --repos-dir go together")
    split = _split(heldout_fraction, heldout_repos)
    steps = -1 if epochs else max_steps
    train = TrainConfig(data=negatives_dir, out=out, model=model, hard_negatives=hard_negatives, tau_start=tau_start,
                        tau_end=tau_end, schedule=schedule, batch_size=batch_size, cached=not no_cache,
                        epochs=epochs or 1.0, max_steps=steps, lr=lr, seed=(seeds or (0,))[0], bf16=bf16,
                        device=device, threads=threads, max_seq_length=max_seq_length,
                        save_steps=max(10, max_steps // 4) if steps > 0 else 100_000, split=split)
    harness = None
    if swebench_data:
        harness = HarnessRunConfig(data=swebench_data, repos_dir=repos_dir, out=out / "harness", models=(),
                                   retrievers=(harness_retriever,), ids_file=ids_file, index_dir=index_dir,
                                   device=device, backend=backend, base_model=model)
    try:
        config = AblationConfig(negatives_dir=negatives_dir, mined_dir=mined_dir, out=out, train=train,
                                variants=tuple(variants) or DEFAULT_VARIANTS, eval_max_queries=eval_max_queries,
                                harness=harness, nproc=nproc, seeds=tuple(seeds), unfiltered_dir=unfiltered_dir,
                                eval_dir=eval_dir, eval_max_seq_length=None if model else 256)
        run_ablation(config, log=lambda line: click.echo(line, err=True))
    except (LocalizerError, ValueError) as exc:  # a failed training subprocess is a TrainingError
        fail(exc)
    click.echo((out / "ablation.md").read_text())


__all__ = ["ablate_command"]
