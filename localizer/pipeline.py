"""The one ranking pipeline: an index plus an issue in, ranked files and functions out.

Every caller runs this code and no other: ``localize`` and the :class:`~localizer.Localizer`
API, ``localize triage``, the hook's triage of issue files, ``localize-bench`` and, through
it, ``cornstack-train harness``. So a number the benchmark reports is a number of the code
users run: the harness may batch around the pipeline (one loaded model for many systems, one
BM25 index for every system of an instance, one reranker call for systems that rerank the
same list) but never re-implements a step of it.

The steps, in order:

1. **Query.** The issue is parsed once (:func:`~localizer.retrieval.query.build_query`):
   terms for BM25, a dense text that leads with what locates a bug, and the paths, traceback
   frames and symbols it names.
2. **Retrieval.** BM25, dense or their reciprocal-rank fusion (``config.retriever``).
3. **History** (``config.history``). The commits before the snapshot (ancestors only,
   :mod:`indexer.history`) give each candidate its similar past fixes, fix-proneness and
   co-change (:mod:`localizer.history.signals`).
4. **Scores.** The learned ranker (``config.ranker``, :mod:`localizer.learned`) scores the head of
   each level from every signal: retriever scores and ranks, what the issue names, path features
   and history. With ``ranker="boosts"``, each level's scores are scaled to 0-1 plus hand-set
   mention boosts instead (:func:`~localizer.retrieval.ranking.final_scores`).
5. **Reranking** (``config.rerank``). The listwise LLM reorders the top ``depth`` functions;
   its order is fused with the retriever's as configured (``RerankConfig.fusion``), scores are
   handed out by position, and files follow the reranked functions
   (:mod:`localizer.rerank.localize`).

:class:`Ranking` keeps every scored item, so callers take a top k (``localize``) or find the
rank of any gold item (the harness) from the same lists.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from indexer.index import Progress, RepoIndex, build_index

from indexer.errors import LocalizerError, ModelLoadError
from indexer.history.build import History
from indexer.history.store import read_history

from localizer.config import LocalizeConfig
from localizer.embedding.embedder import Embedder, open_embedder
from localizer.embedding.static import StaticEmbedder
from localizer.history.signals import HistorySignals, history_only_scores, history_signals
from localizer.history.view import HistoryView
from localizer.issue_input import validate_issue_text
from localizer.learned.features import build_candidates
from localizer.learned.model import RankerModel
from localizer.learned.rank import learned_order
from localizer.learned.shipped import HISTORY_ONLY, load_ranker
from localizer.rerank.reranker import ListwiseReranker
from localizer.rerank.shipped import not_installed_note
from localizer.retrieval.query import IssueQuery, build_query
from localizer.retrieval.ranking import final_scores, mentioned_files, order
from localizer.retrieval.retrievers import (BM25Retriever, DenseRetriever, HybridRetriever, Retriever,
                                            Scores, bm25_part)


log = logging.getLogger(__name__)


def needs_embedder(config: LocalizeConfig) -> bool:
    """The one answer to "does this run load the embedder": dense and hybrid do, BM25 does not."""
    return config.retriever in ("dense", "hybrid")


@dataclass
class Ranking:
    """Every scored file and function of one issue over one index, best first.

    ``functions`` holds chunk rows of ``index.chunks``. ``model_order`` is the reranker's own
    order of the head it reordered (positions in the retriever's head, before fusion), or None
    when nothing was reranked. ``history`` holds the issue's history signals (the similar past
    fixes behind each suspect), None when the run has no history.
    """

    index: RepoIndex
    query: IssueQuery
    files: list[str]
    file_scores: dict[str, float]
    functions: list[int]
    function_scores: dict[int, float]
    model_order: list[int] | None = None
    history: HistorySignals | None = None


class SharedWork:
    """What several pipelines over the same instance may share instead of recomputing.

    The harness runs many configurations (systems) on one index: they share the BM25 index
    built over it, and configurations that rerank the same head with the same reranker share
    the model's order of it (fusion is applied per configuration afterwards). Only the latest
    index and head are kept: the harness visits one instance at a time.
    """

    def __init__(self) -> None:
        self._bm25: tuple[RepoIndex, BM25Retriever] | None = None
        self._model_order: tuple[tuple[Any, ...], list[int]] | None = None
        self._history: tuple[tuple[Any, ...], HistoryView] | None = None
        self._timing: dict[str, float] = {}

    def bm25(self, index: RepoIndex, previous: tuple[RepoIndex, BM25Retriever] | None = None) -> BM25Retriever:
        """The BM25 index over ``index``; ``previous`` (an earlier snapshot and its BM25) is updated
        instead of rebuilt when given."""
        if self._bm25 is None or not _same_snapshot(self._bm25[0], index):
            started = time.perf_counter()
            self._bm25 = (index, BM25Retriever(index, previous))
            self._add_time("index:bm25-build", time.perf_counter() - started)
        return self._bm25[1]

    def model_order(self, key: tuple[Any, ...], compute: Callable[[], list[int]]) -> list[int]:
        if self._model_order is None or self._model_order[0] != key:
            started = time.perf_counter()
            self._model_order = (key, compute())
            self._add_time("rerank", time.perf_counter() - started)
        return self._model_order[1]

    def history(self, key: tuple[Any, ...], compute: Callable[[], HistoryView]) -> HistoryView:
        if self._history is None or self._history[0] != key:
            started = time.perf_counter()
            self._history = (key, compute())
            self._add_time("index:history", time.perf_counter() - started)
        return self._history[1]

    def pop_timing(self) -> dict[str, float]:
        """Seconds spent building BM25 indexes and histories and in reranker calls since the last call."""
        timing, self._timing = self._timing, {}
        return timing

    def _add_time(self, key: str, seconds: float) -> None:
        self._timing[key] = self._timing.get(key, 0.0) + seconds


def _same_snapshot(a: RepoIndex, b: RepoIndex) -> bool:
    """Whether a BM25 index built over ``a`` serves ``b``: the harness builds one snapshot per model
    at a commit, with the same chunks and terms, and BM25 should be built once for all of them."""
    return a is b or (a.root == b.root and a.commit == b.commit and len(a.chunks) == len(b.chunks)
                      and a.terms == b.terms and a.chunks == b.chunks)


class RankingPipeline:
    """The steps above for one :class:`LocalizeConfig`; models load on first use.

    ``embedder`` and ``reranker`` inject loaded models (shared between pipelines, or fakes in
    tests); by default they are built from the config when first needed. ``shared`` lets
    pipelines over the same index share their BM25 index and reranker calls.
    """

    def __init__(self, config: LocalizeConfig, *, embedder: Embedder | StaticEmbedder | None = None,
                 reranker: ListwiseReranker | None = None, shared: SharedWork | None = None) -> None:
        if reranker is not None and config.rerank is not None and reranker.config.depth != config.rerank.depth:
            raise ValueError(f"the reranker reorders {reranker.config.depth} functions but the config says "
                             f"{config.rerank.depth}")
        self.config = config
        self._embedder = embedder
        self._reranker = reranker
        self._shared = shared or SharedWork()
        self._retriever: tuple[RepoIndex, Retriever] | None = None
        self._ranker: RankerModel | None = load_ranker(config.ranker)
        self.history_note: str | None = None  # why the last snapshot ranked without (full) history
        self.rerank_note: str | None = None  # why a default (not asked-for) rerank was skipped

    @property
    def embedder(self) -> Embedder | StaticEmbedder | None:
        """The embedder when the retriever needs one (loaded lazily), else None."""
        if self._embedder is None and needs_embedder(self.config):
            self._embedder = open_embedder(self.config.embedder)
        return self._embedder if needs_embedder(self.config) else None

    @property
    def reranker(self) -> ListwiseReranker | None:
        """The listwise reranker when ``config.rerank`` is set; its model loads on first use."""
        if self._reranker is None and self.config.rerank is not None:
            self._reranker = ListwiseReranker(self.config.rerank)
        return self._reranker if self.config.rerank is not None else None

    def build_index(self, repo: str | Path, progress: Progress | None = None, rev: str | None = None,
                    previous: RepoIndex | None = None) -> RepoIndex:
        """The snapshot this config ranks: chunks at ``rev`` (default ``config.rev``), with embeddings
        when the retriever needs them. ``previous``, an earlier snapshot of the same repository,
        lends its unchanged files (a warm server's refresh)."""
        index = build_index(repo, rev or self.config.rev, encoder=self.embedder, config=self.config.index,
                            progress=progress, previous=previous)
        self.history(index, progress)
        return index

    def history(self, index: RepoIndex, progress: Progress | None = None) -> HistoryView | None:
        """The history before ``index``'s commit (HEAD for a work tree), built once and shared; None when off."""
        settings = self.config.history_settings()
        if settings is None:
            return None
        key = (str(index.root), index.commit, settings, self.config.index.resolved_index_dir(),
               self.config.index.use_cache)

        def compute() -> HistoryView:
            try:
                history = read_history(index.root, index.commit, self.config.index, settings, progress)
            except LocalizerError as exc:  # history only adds evidence: rank without it, and say why
                log.warning("history unavailable: %s", exc)
                history = History(index.commit, note=f"history unavailable ({exc}): ranking without history")
            return HistoryView(history)

        view = self._shared.history(key, compute)
        self.history_note = view.history.note
        return view

    def retriever(self, index: RepoIndex, previous: tuple[RepoIndex, Retriever] | None = None) -> Retriever:
        """The configured retriever over ``index``. ``previous`` is an earlier snapshot and its
        retriever: BM25 is then updated with the changed files instead of rebuilt."""
        if self._retriever is None or self._retriever[0] is not index:
            kind = self.config.retriever
            earlier = None
            if previous is not None and (bm25 := bm25_part(previous[1])) is not None:
                earlier = (previous[0], bm25)
            if kind == "bm25":
                retriever: Retriever = self._shared.bm25(index, earlier)
            elif kind == "dense":
                retriever = DenseRetriever(index, self.embedder)
            else:
                retriever = HybridRetriever(self._shared.bm25(index, earlier), DenseRetriever(index, self.embedder))
            self._retriever = (index, retriever)
        return self._retriever[1]

    def signals(self, index: RepoIndex, issue_text: str) -> tuple[IssueQuery, Scores, HistorySignals | None]:
        """Steps 1-3: the parsed issue, the retriever's scores and the history signals (None without history).

        The ranker's training data (``cornstack-train ranker-data``) is built from exactly this, so
        the learned ranker is fitted on the signals it ranks with.
        """
        query = build_query(validate_issue_text(issue_text))
        scores = self.retriever(index).score(query)
        view = self.history(index)
        signals = None
        if view is not None and view.records:
            signals = history_signals(view, query.terms, mentioned_files(query, scores.files))
        return query, scores, signals

    def rank(self, index: RepoIndex, issue_text: str) -> Ranking:
        query, scores, signals = self.signals(index, issue_text)
        if self.config.ranker == HISTORY_ONLY:
            chunks = index.chunks
            file_scores, function_scores = history_only_scores(
                signals, scores.files, ((row, (chunks[row].path, chunks[row].name)) for row in scores.functions))
        elif self._ranker is None:
            file_scores, function_scores = final_scores(query, scores, index.chunks, self.config.mention_boost)
        else:
            candidates = build_candidates(query, scores, index.chunks, signals)
            file_scores, function_scores = learned_order(candidates, self._ranker)
        ranking = Ranking(index, query, order(file_scores), file_scores, order(function_scores), function_scores,
                          history=signals)
        if self.reranker is not None and ranking.functions and self.rerank_note is None:
            try:
                self._rerank(ranking, issue_text)
            except ModelLoadError as exc:
                if self.config.rerank.required:
                    raise
                # on only because the build ships an adapter: rank without it, say why once per pipeline
                log.warning("default reranking skipped: %s", exc)
                self.rerank_note = not_installed_note(str(exc))
        return ranking

    def _rerank(self, ranking: Ranking, issue_text: str) -> None:
        """Functions reordered by the LLM and fused as configured; files follow them as configured."""
        from localizer.rerank.fusion import apply_fusion
        from localizer.rerank.localize import function_candidates, reranked_files, rescore_by_position

        reranker, settings = self.reranker, self.config.rerank
        chunks = ranking.index.chunks
        head = ranking.functions[: settings.depth]
        key = (id(reranker), issue_text, tuple((chunks[row].path, chunks[row].name, chunks[row].start_line)
                                               for row in head))

        def model_order() -> list[int]:
            candidates = function_candidates(head, chunks, ranking.function_scores)
            return reranker.rerank(issue_text, candidates).model_order

        ranking.model_order = self._shared.model_order(key, model_order)
        reordered = [head[p] for p in apply_fusion(settings.fusion, ranking.model_order, settings.fusion_k)]
        head_scores = rescore_by_position(reordered, {row: ranking.function_scores[row] for row in head})
        ranking.function_scores = {**ranking.function_scores, **head_scores}
        ranking.functions = reordered + ranking.functions[settings.depth:]
        # promote follows the functions as ranked; rrf fuses the model's own order with the file ranker's, as
        # fusion does at function level (fusing both levels would count the first stage twice)
        followed = reordered if settings.files == "promote" else [head[p] for p in ranking.model_order]
        ranking.files = reranked_files(settings.files, [chunks[row].path for row in followed], ranking.files,
                                       settings.fusion_k)
        ranking.file_scores = rescore_by_position(ranking.files, ranking.file_scores)
