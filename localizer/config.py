"""The configuration of a localization run and the defaults every entry point shares.

``localize``, ``localize triage``, the git hooks and the benchmark harness all build a
:class:`LocalizeConfig`; the CLI maps its options onto it in one place
(:mod:`localizer.cli.options`), and the hooks store theirs as
:class:`~localizer.hooks.refresh.HookConfig`, whose defaults are these.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from indexer.history.build import HistoryConfig
from indexer.index import IndexConfig

from localizer.embedding.embedder import DEFAULT_MODEL as _DEFAULT_MODEL
from localizer.embedding.embedder import EmbedderConfig
from localizer.learned.shipped import default_ranker
from localizer.rerank.reranker import RerankConfig
from localizer.retrieval.retrievers import RETRIEVERS

LEVELS = ("file", "function", "both")

# BM25 is the default retriever. Over the 140 SWE-bench-Lite instances of the nine repositories
# fetched here, in one run (benchmarks/RESULTS.md, "Static embedder"), BM25 scored file@1/3/5
# 47.9/71.4/74.3 and function@5/10 45.3/51.6; hybrid with the CoRNStack-trained MiniLM
# 49.3/71.4/79.3 and 42.2/58.6 (better on four columns, worse on function@5, and a cold dense index
# of a large repository costs tens of minutes on two cores); hybrid with the static embedder trained
# by the same recipe, which indexes at BM25's cost, 40.7/63.6/70.7 and 28.1/42.2, below BM25 on every
# column. So no hybrid is at least BM25 everywhere, and the default needs no model.
DEFAULT_RETRIEVER = "bm25"
# The embedder's defaults are EmbedderConfig's own (the runtime auto, the shipped trained model), named here so
# that the CLI, the hooks and the harness read them from one place.
DEFAULT_BACKEND = EmbedderConfig.backend
DEFAULT_MODEL = _DEFAULT_MODEL
DEFAULT_TOP_K = 10
# The learned ranker over every signal where the package ships one (see localizer/learned/), else
# the hand-set boosts. Measured (benchmarks/RESULTS.md, "The learned ranker refitted under the licence
# gate"): on the 140 Lite instances, learned with history 55.7/70.0/77.9 file@1/3/5 and 48.4/54.7
# function@5/10 against the boosts' 47.9/71.4/74.3 and 45.3/51.6; on 19 held-out training repositories
# better on every column.
DEFAULT_RANKER = default_ranker()


@dataclass(frozen=True)
class LocalizeConfig:
    """One object for every knob of a localization run (CLI options map onto it in one place)."""

    rev: str | None = None
    retriever: str = DEFAULT_RETRIEVER
    embedder: EmbedderConfig = field(default_factory=EmbedderConfig)
    index: IndexConfig = field(default_factory=IndexConfig)
    top_k: int = DEFAULT_TOP_K
    mention_boost: float = 1.0  # 0 turns off boosting of files/functions the issue names (boosts ranker)
    # The repository's own history (similar past fixes, fix-proneness, co-change); None: --no-history.
    # On by default: better on every held-out column and on Lite's file columns (function@5/10 -0.8/-1.6).
    history: HistoryConfig | None = field(default_factory=HistoryConfig)
    # "learned" (the shipped model), "boosts" (hand-set weights), or the path of a ranker file.
    ranker: str = DEFAULT_RANKER
    # LLM listwise reranking of the top functions; off until a trained model measurably helps.
    rerank: RerankConfig | None = None

    def history_settings(self) -> HistoryConfig | None:
        """The history config with the index's test rule: history counts the files the index holds."""
        if self.history is None:
            return None
        return replace(self.history, include_tests=self.index.include_tests, test_rule=self.index.test_rule)

    def __post_init__(self) -> None:
        if self.retriever not in RETRIEVERS:
            raise ValueError(f"unknown retriever {self.retriever!r}; choose one of {', '.join(RETRIEVERS)}")
        if self.top_k < 1:
            raise ValueError("top_k must be at least 1")

