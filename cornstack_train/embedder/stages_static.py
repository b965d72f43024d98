"""Click command for the static embedder's first stage: ``distill``.

Training (``train --model DIR``), evaluation and shipping (``ship --static``) take the distilled
directory like any model; see ``cornstack_train.embedder.static`` for the recipe.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from indexer.errors import LocalizerError

from cornstack_train.embedder.static import DEFAULT_DIMS, DEFAULT_MAX_TOKENS, DEFAULT_SIF, DistillConfig, run_distill
from cornstack_train.errors import StageCommand, fail

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


@click.command("distill", cls=StageCommand, context_settings=CONTEXT)
@click.option("--out", "-o", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Output: a static model directory (Model2Vec layout: config.json, model.safetensors, tokenizer.json).")
@click.option("--model", default=None, help="Transformer to distil: ST id or dir; default the packaged MiniLM.")
@click.option("--corpus", "corpus", multiple=True, type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Stage directory (mine/filter/negatives) whose texts weight the tokens by SIF; repeatable. "
                   "Without one every token weighs 1.")
@click.option("--dims", type=click.IntRange(min=2), default=DEFAULT_DIMS, show_default=True,
              help="PCA dimensions of the table (256: 15.6 MB in fp16 for MiniLM's 30k tokens).")
@click.option("--max-tokens", type=click.IntRange(min=1), default=DEFAULT_MAX_TOKENS, show_default=True,
              help="Word pieces a text is cut to, in training and at run time alike.")
@click.option("--sif", type=click.FloatRange(min=0, min_open=True), default=DEFAULT_SIF, show_default=True,
              help="SIF coefficient a of the token weight a / (a + p(token)).")
@click.option("--device", default="cpu", show_default=True, help="Device for the transformer pass (cpu is fine: ~40 s).")
@click.option("--overwrite", is_flag=True, help="Replace an existing output.")
def distill_command(out, model, corpus, dims, max_tokens, sif, device, overwrite) -> None:
    """Distil a transformer into a static embedder: one vector per token, PCA, SIF weights.

    The result is the starting point of `train --model OUT` (the CoRNStack stages on a static
    model) and already a usable model: `localize --model OUT`.
    """
    try:
        record = run_distill(DistillConfig(out=out, model=model, corpus=tuple(corpus), dims=dims,
                                           max_tokens=max_tokens, sif=sif, device=device, overwrite=overwrite))
    except (LocalizerError, ValueError) as exc:
        fail(exc)
    click.echo(json.dumps(record, indent=2))


__all__ = ["distill_command"]
