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
from localizer.embedding.shipped import shipped_static_path
from localizer.rerank.reranker import RerankConfig
from localizer.retrieval.retrievers import RETRIEVERS

LEVELS = ("file", "function", "both")


def default_retriever() -> str:
    """``hybrid`` when this build ships the static embedder, else ``bm25``.

    Hybrid with the static embedder scores at least BM25's on every column of SWE-bench Lite
    and indexes in about BM25's time (benchmarks/RESULTS.md, "static embedder"; README, "Why
    hybrid"). Without it a dense index costs a transformer pass over the repository (about 7
    minutes cold on django on two cores), too slow to run unasked, so BM25 stays the default
    and ``localize`` says so once (:data:`FALLBACK_NOTE`).
    """
    return "hybrid" if shipped_static_path() is not None else "bm25"


DEFAULT_RETRIEVER = default_retriever()
FALLBACK_NOTE = ("note: this build ships no static embedder (localizer/models/static), so the default retriever is "
                 "bm25; --retriever hybrid --model MODEL embeds with a transformer")
# The embedder's defaults are EmbedderConfig's own (the runtime auto, the shipped static model), named here so
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

