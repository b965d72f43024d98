"""The configuration of a localization run and the defaults every entry point shares.

``localize``, ``localize triage``, the git hooks and the benchmark harness all build a
:class:`LocalizeConfig`; the CLI maps its options onto it in one place
(:mod:`localizer.cli.options`), and the hooks store theirs as
:class:`~localizer.hooks.refresh.HookConfig`, whose defaults are these.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from indexer.index import IndexConfig

from localizer.embedding.embedder import DEFAULT_MODEL as _DEFAULT_MODEL
from localizer.embedding.embedder import EmbedderConfig
from localizer.rerank.reranker import RerankConfig
from localizer.retrieval.retrievers import RETRIEVERS

LEVELS = ("file", "function", "both")

# BM25 is the default retriever: over all 300 SWE-bench Lite instances it scored file@1/3/5
# 52.0/72.0/76.3 and function@5/10 48.5/58.4 with no model, while hybrid with the packaged MiniLM
# was no consistently better (53.0/70.7/80.7, 46.7/59.5) and costs a dense index (about 6 minutes
# cold on django on two cores). Hybrid with the shipped CoRNStack embedder beats it on most
# columns, at that same cost, so it stays opt-in (benchmarks/RESULTS.md, README "Why BM25").
DEFAULT_RETRIEVER = "bm25"
# The embedder's defaults are EmbedderConfig's own (fp32 torch, the shipped model), named here so
# that the CLI, the hooks and the harness read them from one place.
DEFAULT_BACKEND = EmbedderConfig.backend
DEFAULT_MODEL = _DEFAULT_MODEL
DEFAULT_TOP_K = 10


@dataclass(frozen=True)
class LocalizeConfig:
    """One object for every knob of a localization run (CLI options map onto it in one place)."""

    rev: str | None = None
    retriever: str = DEFAULT_RETRIEVER
    embedder: EmbedderConfig = field(default_factory=EmbedderConfig)
    index: IndexConfig = field(default_factory=IndexConfig)
    top_k: int = DEFAULT_TOP_K
    mention_boost: float = 1.0  # 0 turns off boosting of files/functions the issue names
    # LLM listwise reranking of the top functions; off until a trained model measurably helps.
    rerank: RerankConfig | None = None

    def __post_init__(self) -> None:
        if self.retriever not in RETRIEVERS:
            raise ValueError(f"unknown retriever {self.retriever!r}; choose one of {', '.join(RETRIEVERS)}")
        if self.top_k < 1:
            raise ValueError("top_k must be at least 1")

