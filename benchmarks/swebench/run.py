"""SWE-bench-Lite localization harness with the CoRNStack protocol.

Several systems (retriever, model, boosts, reranking) are compared side by side on the same
instances in one run. Each instance is indexed at its base commit straight from git objects,
reusing the content-addressed cache across instances, and predictions stream to JSONL so an
interrupted run resumes where it stopped.

Every system is a :class:`~localizer.config.LocalizeConfig` ranked by
:class:`~localizer.pipeline.RankingPipeline`, the code ``localize`` runs: the harness only
batches around it (one loaded model per ``--model``, one BM25 index per instance, one reranker
call for systems reranking the same list). Where the product and the paper's protocol differ,
the harness measures the product: its corpus also skips ``test_*.py``-style files
(``--corpus product``, the default), while ``--corpus protocol`` drops only
``test``/``tests``/``testing`` directories, as CoRNStack and SweRank do, for figures comparable
with theirs. The gold labels always follow the protocol (``gold.py``).

    python -m benchmarks.swebench.run --data ../shared/data/swe-bench-lite.jsonl \\
        --repos-dir ../repos --retriever bm25 --retriever dense --retriever hybrid --out bench-out/lite
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
import traceback
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable, Iterable, Sequence

import click

from indexer.errors import LocalizerError
from indexer.git.runner import run_git
from indexer.history.build import HistoryConfig
from indexer.index import IndexConfig, RepoIndex
from localizer.cli.options import OptionError, options, rerank_config
from localizer.config import DEFAULT_BACKEND, DEFAULT_MODEL, DEFAULT_RANKER, LocalizeConfig
from localizer.embedding.embedder import BACKEND_CHOICES, Embedder, EmbedderConfig, open_embedder
from localizer.embedding.static import StaticEmbedder
from localizer.pipeline import RankingPipeline, SharedWork
from localizer.progress import StageProgress
from localizer.rerank.reranker import ListwiseReranker, RerankConfig

from .data import Instance, ensure_repos, load_ids, load_instances
from .gold import GoldLabels, function_id, git_blob_reader, gold_labels
from .metrics import files_from_functions, gold_ranks
from .report import write_reports

log = logging.getLogger("localizer.bench")

SAVED_DEPTH = 100  # predictions keep this many items per ranking; gold ranks use the full ranking
CORPORA = {"product": "default", "protocol": "dirs"}  # --corpus -> IndexConfig.test_rule


@dataclass(frozen=True)
class System:
    """One column of the comparison: a retriever, its model, the ranker, history, and reranking."""

    name: str
    retriever: str
    model: str | None
    boost: bool = True  # with the boosts ranker: whether mention boosts apply (False: :raw)
    rerank: bool = False  # the LLM listwise reranker reorders this retriever's top functions
    fusion: str = "none"  # rrf: the reranked order fused with the retriever's (localizer.rerank.fusion)
    ranker: str | None = None  # None: the run's --ranker; else boosts or history (localizer.learned.shipped)
    history: bool = True  # False: :nohist, the same system with --no-history


@dataclass(frozen=True)
class HarnessConfig:
    data: str
    repos_dir: Path
    out: Path
    systems: tuple[System, ...]
    ids_file: Path | None = None
    limit: int | None = None
    index_dir: Path | None = None
    device: str = "auto"
    backend: str = DEFAULT_BACKEND  # embedder runtime for dense/hybrid (localizer.embedding.onnx_backend)
    # Per-model overrides of ``backend``: a new model can run in bf16 while the base model
    # keeps the fp32 embeddings already in the index cache.
    model_backends: dict = field(default_factory=dict)
    clone: bool = True
    rerank: RerankConfig | None = None  # for systems with +rerank; None: RerankConfig()
    workers: int = 1  # processes, each with whole repositories and cores/workers threads
    corpus: str = "product"  # product: what localize indexes; protocol: the paper's corpus (module docstring)
    ranker: str = DEFAULT_RANKER  # systems without a ranker flag use it: learned, boosts or a ranker file
    history_commits: int = HistoryConfig.max_commits

    def __post_init__(self) -> None:
        if self.corpus not in CORPORA:
            raise ValueError(f"unknown corpus {self.corpus!r}; choose one of {', '.join(CORPORA)}")

    def index_config(self) -> IndexConfig:
        return IndexConfig(index_dir=self.index_dir, test_rule=CORPORA[self.corpus])

    def embedder_config(self, model: str) -> EmbedderConfig:
        return EmbedderConfig(model=model, device=self.device, backend=self.model_backends.get(model, self.backend),
                              artifact_dir=self.index_dir)

    def localize_config(self, system: System) -> LocalizeConfig:
        """The product config a system runs; systems differ only in what their spec names."""
        rerank = None
        if system.rerank:
            rerank = replace(self.rerank or RerankConfig(device=self.device), fusion=system.fusion)
        return LocalizeConfig(retriever=system.retriever, embedder=self.embedder_config(system.model or DEFAULT_MODEL),
                              index=self.index_config(), mention_boost=1.0 if system.boost else 0.0, rerank=rerank,
                              ranker=system.ranker or self.ranker,
                              history=HistoryConfig(max_commits=self.history_commits) if system.history else None)


def parse_model_backends(specs: Sequence[str], models: Sequence[str]) -> dict[str, str]:
    """``MODEL=BACKEND`` pairs; the model must be one of ``--model`` so a typo cannot pass silently."""
    backends: dict[str, str] = {}
    for spec in specs:
        model, sep, backend = spec.rpartition("=")
        if not sep or not model:
            raise click.BadParameter(f"expected MODEL=BACKEND, got {spec!r}", param_hint="--model-backend")
        if backend not in BACKEND_CHOICES:
            raise click.BadParameter(f"unknown backend {backend!r} in {spec!r}; choose one of {', '.join(BACKEND_CHOICES)}",
                                     param_hint="--model-backend")
        if model not in models:
            raise click.BadParameter(f"{model!r} is not one of the --model values", param_hint="--model-backend")
        backends[model] = backend
    return backends


SYSTEM_FLAGS = {"raw": "the boosts ranker without mention boosts", "boosts": "the hand-set boosts ranker",
                "nohist": "without history (--no-history)", "history": "similar past fixes alone"}


def parse_systems(retrievers: Sequence[str], models: Sequence[str]) -> tuple[System, ...]:
    """``bm25``, ``dense``, ``hybrid``, each optionally with ``:FLAG[,FLAG]`` (:data:`SYSTEM_FLAGS`):
    ``bm25:nohist`` is the default pipeline with ``--no-history``, ``bm25:boosts`` the hand-set
    ranker, ``bm25:raw`` that without mention boosts, ``bm25:history`` history alone. A ``+rerank``
    suffix (``bm25+rerank``, ``hybrid:raw+rerank``) adds the LLM listwise reranker on top, and
    ``+rerank+rrf`` fuses its order with the retriever's. ``bm25+rerank`` and ``bm25+rerank+rrf``
    in one run share the model calls.

    Model-based retrievers are crossed with every ``--model``; names carry the
    model only when there are several.
    """
    systems: list[System] = []
    for spec in retrievers:
        base, *stages = spec.split("+")
        if stages not in ([], ["rerank"], ["rerank", "rrf"]):
            raise click.BadParameter(f"unknown stages in {spec!r} (+rerank, optionally then +rrf)")
        rerank = bool(stages)
        fusion = "rrf" if stages[1:] == ["rrf"] else "none"
        suffix = spec[len(base):]
        retriever, _, flag_text = base.partition(":")
        flags = set(flag_text.split(",")) - {""}
        if retriever not in ("bm25", "dense", "hybrid") or not flags <= set(SYSTEM_FLAGS):
            raise click.BadParameter(f"unknown retriever {spec!r} (bm25, dense, hybrid, optionally with "
                                     f":{'/'.join(SYSTEM_FLAGS)}, then optionally +rerank or +rerank+rrf)")
        ranker = "history" if "history" in flags else "boosts" if flags & {"raw", "boosts"} else None
        options = {"boost": "raw" not in flags, "rerank": rerank, "fusion": fusion, "ranker": ranker,
                   "history": "nohist" not in flags}
        if retriever == "bm25":
            systems.append(System(spec, retriever, None, **options))
            continue
        for model in models:
            name = spec if len(models) == 1 else f"{base}@{Path(model).name}{suffix}"
            systems.append(System(name, retriever, model, **options))
    names = [s.name for s in systems]
    if len(set(names)) != len(names):
        raise click.BadParameter("the same retriever/model was given twice")
    return tuple(systems)


def _commit_time(repo_dir: Path, commit: str) -> int:
    result = run_git(["show", "-s", "--format=%ct", commit], repo=repo_dir, check=False, text=True)
    return int(result.stdout.strip() or 0)


def order_for_cache(instances: Iterable[Instance], repo_dirs: dict[str, Path]) -> list[Instance]:
    """Group by repo and walk commits in time order: neighbours share most chunks."""
    return sorted(instances, key=lambda i: (i.repo, _commit_time(repo_dirs[i.repo], i.base_commit), i.instance_id))


def _done_pairs(path: Path) -> set[tuple[str, str]]:
    done: set[tuple[str, str]] = set()
    if path.exists():
        for line in path.read_text().splitlines():
            try:
                record = json.loads(line)
                done.add((record["instance_id"], record["system"]))
            except (ValueError, KeyError):
                continue  # a line cut short by an interrupted run is redone
    return done


def _append(path: Path, record: dict) -> None:
    with path.open("a") as handle:
        handle.write(json.dumps(record) + "\n")
        handle.flush()


class Harness:
    def __init__(self, config: HarnessConfig, reranker: ListwiseReranker | None = None) -> None:
        if reranker is not None:  # an injected reranker (tests, or one already loaded) brings its settings
            config = replace(config, rerank=reranker.config)
        self.config = config
        self._reranker = reranker  # built on first use from config.rerank
        self._embedders: dict[str, Embedder | StaticEmbedder] = {}
        self._pipelines: dict[str, RankingPipeline] = {}
        self._shared = SharedWork()  # one BM25 index and one reranker call per instance, for every system
        self._readers: dict[Path, object] = {}
        self.timing: dict[str, float] = {}
        self.cache: dict[str, int] = {"files": 0, "parsed_files": 0, "chunk_instances": 0, "embedded_chunks": 0}

    def embedder(self, model: str) -> Embedder | StaticEmbedder:
        """One loaded embedder per model, shared by every system that uses it."""
        if model not in self._embedders:
            self._embedders[model] = open_embedder(self.config.embedder_config(model))
        return self._embedders[model]

    def reranker(self) -> ListwiseReranker:
        """One reranker for every +rerank system; each system applies its own fusion to its order."""
        if self._reranker is None:
            self._reranker = ListwiseReranker(self.config.rerank or RerankConfig(device=self.config.device))
        return self._reranker

    def pipeline(self, system: System) -> RankingPipeline:
        """The product's pipeline for one system, sharing models and per-instance work with the others."""
        if system.name not in self._pipelines:
            self._pipelines[system.name] = RankingPipeline(
                self.config.localize_config(system), embedder=self.embedder(system.model) if system.model else None,
                reranker=self.reranker() if system.rerank else None, shared=self._shared)
        return self._pipelines[system.name]

    def blob_reader(self, repo_dir: Path):
        """One long-lived ``git cat-file`` reader per repository."""
        if repo_dir not in self._readers:
            self._readers[repo_dir] = git_blob_reader(repo_dir)
        return self._readers[repo_dir]

    def _index(self, repo_dir: Path, instance: Instance, system: System) -> RepoIndex:
        started = time.perf_counter()
        index = self.pipeline(system).build_index(repo_dir, rev=instance.base_commit)
        self._add_time(f"index:{system.model or 'bm25'}", time.perf_counter() - started)
        stats = index.stats
        self.cache["files"] += stats.files
        self.cache["parsed_files"] += stats.parsed_files
        if system.model:
            self.cache["chunk_instances"] += stats.chunks
            self.cache["embedded_chunks"] += stats.embedded_chunks
        return index

    def _add_time(self, key: str, seconds: float) -> None:
        self.timing[key] = self.timing.get(key, 0.0) + seconds

    def run_instance(self, instance: Instance, repo_dir: Path, systems: Sequence[System], gold: GoldLabels) -> list[dict]:
        # One index per model (its chunks are the same at one commit); model-free systems rank the first.
        indexes: dict[str | None, RepoIndex] = {}
        for system in systems:
            if system.model and system.model not in indexes:
                indexes[system.model] = self._index(repo_dir, instance, system)
        base = next(iter(indexes.values()), None) or self._index(repo_dir, instance, systems[0])
        records = []
        for system in systems:
            started = time.perf_counter()
            index = indexes.get(system.model, base)
            ranking = self.pipeline(system).rank(index, instance.problem_statement)
            files = ranking.files
            functions = [function_id(index.chunks[row].path, index.chunks[row].name) for row in ranking.functions]
            files_via_functions = files_from_functions(functions)
            seconds = time.perf_counter() - started
            self._add_time(f"query:{system.name}", seconds)
            records.append(
                {
                    "instance_id": instance.instance_id,
                    "system": system.name,
                    "files": files[:SAVED_DEPTH],
                    "functions": functions[:SAVED_DEPTH],
                    "files_from_functions": files_via_functions[:SAVED_DEPTH],
                    "gold_files": list(gold.files),
                    "gold_functions": list(gold.functions),
                    "gold_ranks": {
                        "files": gold_ranks(files, gold.files),
                        "files_from_functions": gold_ranks(files_via_functions, gold.files),
                        "functions": gold_ranks(functions, gold.functions),
                    },
                    "corpus": {"files": len(ranking.file_scores), "functions": len(ranking.function_scores)},
                    "seconds": round(seconds, 4),
                }
            )
        for key, seconds in self._shared.pop_timing().items():
            self._add_time(key, seconds)
        return records

    def select_instances(self) -> tuple[list[Instance], dict[str, Path]]:
        """The instances to visit, repo by repo in commit order, and their repositories."""
        config = self.config
        instances = load_instances(config.data)
        if config.ids_file:
            wanted = set(load_ids(config.ids_file))
            instances = [i for i in instances if i.instance_id in wanted]
        if config.limit:
            instances = instances[: config.limit]
        if not instances:
            raise LocalizerError("no instances to run (check --data, --ids and --limit)")
        repo_dirs = ensure_repos(instances, config.repos_dir, clone=config.clone)
        return order_for_cache(instances, repo_dirs), repo_dirs

    def run_instances(self, instances: Sequence[Instance], repo_dirs: dict[str, Path], done: set[tuple[str, str]],
                      emit: Callable[[str, object], None]) -> None:
        """Visit ``instances`` in order, reporting through ``emit``: ``start`` (an instance id),
        ``prediction`` and ``error`` (records), ``advance``. A failing instance never stops the rest."""
        for instance in instances:
            todo = [s for s in self.config.systems if (instance.instance_id, s.name) not in done]
            emit("start", instance.instance_id)
            if todo:
                try:
                    repo_dir = repo_dirs[instance.repo]
                    gold = gold_labels(asdict(instance), self.blob_reader(repo_dir))
                    for record in self.run_instance(instance, repo_dir, todo, gold):
                        emit("prediction", record)
                except Exception as exc:  # noqa: BLE001 - one bad instance must not stop the run
                    emit("error", {"instance_id": instance.instance_id, "error": repr(exc),
                                   "traceback": traceback.format_exc()})
            emit("advance", None)
        for reader in self._readers.values():
            reader.close()
        self._readers.clear()

    def run(self) -> dict:
        config = self.config
        config.out.mkdir(parents=True, exist_ok=True)
        predictions = config.out / "predictions.jsonl"
        errors = config.out / "errors.jsonl"
        instances, repo_dirs = self.select_instances()
        done = _done_pairs(predictions)
        shards = split_by_repo(instances, config.workers)
        started = time.perf_counter()
        failures = 0
        visited = 0
        with StageProgress("instances" if len(shards) == 1 else f"instances ({len(shards)} workers)",
                           "instance") as bar:

            def emit(kind: str, payload) -> None:
                nonlocal failures, visited
                if kind == "prediction":
                    _append(predictions, payload)
                elif kind == "error":
                    failures += 1
                    log.warning("%s failed: %s", payload["instance_id"], payload["error"])
                    _append(errors, payload)
                elif kind == "start" and len(shards) == 1:
                    bar(visited, len(instances), payload)
                elif kind == "advance":
                    visited += 1
                    bar(visited, len(instances))

            if len(shards) > 1:
                self._run_workers(shards, repo_dirs, done, emit)
            else:
                self.run_instances(instances, repo_dirs, done, emit)
        wall = time.perf_counter() - started
        run_info = {
            "wall_seconds": round(wall, 1),
            "instances": len(instances),
            "failed": failures,
            "workers": len(shards),
            "timing_seconds": {k: round(v, 2) for k, v in sorted(self.timing.items())},
            "cache": {
                **self.cache,
                "parse_hit_rate": _rate(self.cache["files"] - self.cache["parsed_files"], self.cache["files"]),
                "embedding_hit_rate": _rate(
                    self.cache["chunk_instances"] - self.cache["embedded_chunks"], self.cache["chunk_instances"]
                ),
                "encoded_fraction": _rate(self.cache["embedded_chunks"], self.cache["chunk_instances"]),
            },
            "systems": [asdict(s) for s in config.systems],
            "rerank": asdict(config.rerank) if config.rerank else None,
            "backend": config.backend,
            "model_backends": dict(config.model_backends),
            "data": config.data,
            "ids_file": str(config.ids_file) if config.ids_file else None,
            "date": time.strftime("%Y-%m-%d %H:%M"),
        }
        _append(config.out / "runs.jsonl", run_info)
        return write_reports(config.out, [s.name for s in config.systems], run_info, _protocol_ids(config))

    def _run_workers(self, shards: list[list[Instance]], repo_dirs: dict[str, Path], done: set[tuple[str, str]],
                     emit: Callable[[str, object], None]) -> None:
        """One process per shard; this process alone writes the outputs, so resume works as in a serial run."""
        import multiprocessing
        import queue as queue_module

        context = multiprocessing.get_context("spawn")  # no forked torch thread pools
        messages = context.Queue()
        threads = max(1, _cpu_count() // len(shards))
        workers = [context.Process(target=_worker, args=(n, self.config, shard, repo_dirs, done, threads, messages),
                                   name=f"bench-worker-{n}", daemon=True) for n, shard in enumerate(shards)]
        for worker in workers:
            worker.start()
        finished: set[int] = set()
        seen_dead: set[int] = set()
        while len(finished) < len(workers):
            try:
                kind, payload = messages.get(timeout=2)
            except queue_module.Empty:
                for n, worker in enumerate(workers):
                    if n in finished or worker.is_alive():
                        continue
                    if n in seen_dead:  # dead and silent for a whole wait: it never reported back
                        finished.add(n)  # what it did not finish is redone on resume
                        emit("error", {"instance_id": f"worker-{n}", "traceback": "",
                                       "error": f"worker process exited with code {worker.exitcode}"})
                    seen_dead.add(n)  # its last messages may still be in the queue
                continue
            if kind == "finished":
                finished.add(payload["worker"])
                for key, seconds in payload["timing"].items():
                    self._add_time(key, seconds)
                for key, count in payload["cache"].items():
                    self.cache[key] += count
            else:
                emit(kind, payload)
        for worker in workers:
            worker.join()


def split_by_repo(instances: Sequence[Instance], workers: int) -> list[list[Instance]]:
    """Whole repositories per worker, so each repository's cache reuse stays in one process; the
    largest repositories (by instance count) go first, each to the least-loaded worker. Order within
    a repository is kept."""
    groups: dict[str, list[Instance]] = {}
    for instance in instances:
        groups.setdefault(instance.repo, []).append(instance)
    shards: list[list[Instance]] = [[] for _ in range(max(1, min(workers, len(groups))))]
    for repo in sorted(groups, key=lambda r: (-len(groups[r]), r)):
        min(shards, key=len).extend(groups[repo])
    return shards


def _worker(number: int, config: HarnessConfig, instances: list[Instance], repo_dirs: dict[str, Path],
            done: set[tuple[str, str]], threads: int, messages) -> None:
    """A worker process: its share of the instances, every message sent back to the parent."""
    import torch

    torch.set_num_threads(threads)
    harness = Harness(config)
    harness.run_instances(instances, repo_dirs, done, lambda kind, payload: messages.put((kind, payload)))
    messages.put(("finished", {"worker": number, "timing": harness.timing, "cache": harness.cache}))


def _cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _protocol_ids(config: HarnessConfig) -> set[str] | None:
    """The paper's 274 ids, when the shared list sits beside the data file."""
    candidate = Path(config.data).expanduser().parent / "swe-bench-lite-cornstack-274.txt"
    return set(load_ids(candidate)) if candidate.exists() else None


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


@click.command(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("--data", default="princeton-nlp/SWE-bench_Lite", show_default=True,
              help="A .jsonl/.json/.parquet file or a Hugging Face dataset id (split test).")
@click.option("--repos-dir", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Holds one bare git dir or clone per repo, named owner__name (symlinks are fine).")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Output dir: predictions.jsonl, diagnostics.jsonl, metrics.json, metrics.md, acc_at_k.png.")
@click.option("--ids", "ids_file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Only these instance ids (one per line), e.g. the paper's 274.")
@click.option("--retriever", "retrievers", multiple=True, default=("bm25",), show_default=True,
              help="bm25, dense or hybrid; repeat to compare; add :nohist for --no-history, :boosts for the "
                   "hand-set ranker (:raw without mention boosts), :history for similar past fixes alone; "
                   "+rerank for the LLM reranker on top (e.g. bm25 and bm25+rerank side by side), "
                   "+rerank+rrf to fuse its order with the retriever's.")
@click.option("--ranker", default=DEFAULT_RANKER, show_default=True,
              help="Ranker of systems without a ranker flag: learned (the shipped model), boosts, or a ranker file.")
@click.option("--history-commits", type=click.IntRange(min=1), default=HistoryConfig.max_commits, show_default=True,
              help="History window, as localize's --history-commits.")
@click.option("--model", "models", multiple=True, default=(DEFAULT_MODEL,), show_default=True,
              help="Embedder for dense/hybrid; repeat to compare models.")
@click.option("--corpus", type=click.Choice(tuple(CORPORA)), default="product", show_default=True,
              help="product: the files localize indexes (also skips test_*.py-style files); protocol: the paper's "
                   "corpus (drops only test/tests/testing directories), for figures comparable with CoRNStack's.")
@options("reranker_model", "reranker_adapter", "rerank_depth", "rerank_window", "rerank_stride", "rerank_mode",
         "rerank_files")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Only the first N instances (a smoke run).")
@options("index_dir", "device", "backend")
@click.option("--model-backend", "model_backends", multiple=True, metavar="MODEL=BACKEND",
              help="Runtime for one --model only, e.g. a new model in torch-bf16 beside the base model's cached "
                   "fp32 embeddings. Repeatable.")
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True,
              help="Worker processes, each taking whole repositories and cores/N torch threads: they overlap the "
                   "single-threaded parsing and BM25 work; the encoder alone gained nothing on 2 cores.")
@click.option("--no-clone", is_flag=True, help="Never try to clone a missing repository.")
@click.option("--report-only", is_flag=True, help="Recompute metrics and plots from existing predictions.")
@click.option("--verbose", "-v", count=True)
def main(data, repos_dir, out, ids_file, retrievers, ranker, history_commits, models, corpus, limit, index_dir, device,
         backend, model_backends, workers, no_clone, report_only, verbose, **rerank_options):
    """Measure top-k localization accuracy on SWE-bench-Lite (CoRNStack protocol)."""
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="bench: %(message)s", stream=sys.stderr)
    systems = parse_systems(retrievers, models)
    try:
        # fusion is per system here (+rerank+rrf), applied to the model's own order
        rerank = rerank_config({**rerank_options, "device": device}, fusion="none")
    except OptionError as exc:
        raise click.BadParameter(str(exc)) from exc
    config = HarnessConfig(data=data, repos_dir=repos_dir, out=out, systems=systems, ids_file=ids_file,
                           limit=limit, index_dir=index_dir, device=device, backend=backend,
                           model_backends=parse_model_backends(model_backends, models), clone=not no_clone, workers=workers,
                           rerank=rerank if any(s.rerank for s in systems) else None, corpus=corpus,
                           ranker=ranker, history_commits=history_commits)
    try:
        if report_only:
            write_reports(out, [s.name for s in systems], None, _protocol_ids(config))
        else:
            Harness(config).run()
    except LocalizerError as exc:
        click.echo(f"bench: error: {exc}", err=True)
        sys.exit(1)
    click.echo((out / "metrics.md").read_text())


if __name__ == "__main__":
    main()
