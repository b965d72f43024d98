"""Stage ``eval``: does the trained embedder retrieve the right code for held-out queries?

The held-out set is every pair from the repositories that ``splits.RepoSplit``
holds out (the same split ``train`` excludes, so nothing leaks). Each
held-out query is searched against the corpus of all held-out positives
(distinct texts; FAISS exact inner product on normalized vectors) and scored by
where its own positive lands: MRR@10, Recall@1, Recall@10, overall and per
language and kind. Several models run side by side on the same queries.

A commit message is mined once per function the commit changed, so one query
text can have several held-out positives. The headline figures count only the
row's own positive (another function of the same commit ranked above it is a
miss); ``any_positive`` also reports the rank of the first of them, the
question `localize` answers ("is any function the fix touches near the top").

``harness`` runs the SWE-bench-Lite localization harness (``localize-bench``, from
``benchmarks/swebench/run.py``) for trained models next to the base MiniLM and BM25: the
end-to-end number the project's default retriever is chosen by. It runs as a subprocess
through the harness's own command line, because the benchmarks sit above training in the
package layers (training must not import them) and its CLI is the interface it keeps stable.

The metric functions are pure (ranks in, numbers out) and tested on hand-made rankings.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import shlex
import shutil
import subprocess
import sys
import time
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from indexer.storage.atomic import atomic_write_text
from localizer.device import resolve_device
from localizer.embedding.shipped import is_compact_dir, load_compact, read_manifest
from localizer.embedding.static import is_static_dir
from localizer.retrieval.faiss_index import flat_ip_index, search

from cornstack_train.data.records import DATA_DIR, StageError, load_stage, sha256_tree
from cornstack_train.data.splits import RepoSplit
from cornstack_train.embedder.static import to_sentence_transformer
from cornstack_train.errors import TrainingError

log = logging.getLogger("cornstack_train.eval")

BASE_ALIASES = ("base", "default", "minilm")


# --------------------------------------------------------------------------- metrics (pure)


def first_relevant_ranks(ranked: np.ndarray, gold: Sequence[int]) -> np.ndarray:
    """1-based rank of ``gold[q]`` in row ``ranked[q]`` (ids, best first); 0 when it is not there."""
    ranked = np.asarray(ranked)
    gold = np.asarray(gold).reshape(-1, 1)
    if ranked.ndim != 2 or ranked.shape[0] != gold.shape[0]:
        raise ValueError(f"ranked has shape {ranked.shape}, expected ({gold.shape[0]}, depth)")
    hits = ranked == gold
    found = hits.any(axis=1)
    return np.where(found, hits.argmax(axis=1) + 1, 0).astype(np.int64)


def first_relevant_of_any(ranked: np.ndarray, relevant: Sequence[Sequence[int]]) -> np.ndarray:
    """1-based rank of the first id of ``relevant[q]`` in row ``ranked[q]``; 0 when none is there."""
    ranked = np.asarray(ranked)
    if ranked.ndim != 2 or ranked.shape[0] != len(relevant):
        raise ValueError(f"ranked has shape {ranked.shape}, expected ({len(relevant)}, depth)")
    ranks = np.zeros(len(relevant), dtype=np.int64)
    for q, ids in enumerate(relevant):
        hits = np.flatnonzero(np.isin(ranked[q], np.asarray(list(ids), dtype=ranked.dtype)))
        ranks[q] = hits[0] + 1 if hits.size else 0
    return ranks


def mrr_at_k(ranks: Sequence[int], k: int) -> float:
    ranks = np.asarray(ranks)
    if ranks.size == 0:
        return 0.0
    reciprocal = np.where((ranks >= 1) & (ranks <= k), 1.0 / np.maximum(ranks, 1), 0.0)
    return float(reciprocal.mean())


def recall_at_k(ranks: Sequence[int], k: int) -> float:
    """With one relevant item per query, recall@k is the share of queries whose item is in the top k."""
    ranks = np.asarray(ranks)
    if ranks.size == 0:
        return 0.0
    return float(((ranks >= 1) & (ranks <= k)).mean())


def summarize(ranks: Sequence[int]) -> dict[str, float]:
    return {
        "mrr@10": round(mrr_at_k(ranks, 10), 4),
        "recall@1": round(recall_at_k(ranks, 1), 4),
        "recall@10": round(recall_at_k(ranks, 10), 4),
        "queries": int(len(ranks)),
    }


def grouped_metrics(ranks: np.ndarray, groups: Sequence[str]) -> dict[str, dict[str, float]]:
    by_group: dict[str, list[int]] = defaultdict(list)
    for rank, group in zip(ranks.tolist(), groups):
        by_group[group].append(rank)
    return {group: summarize(values) for group, values in sorted(by_group.items())}


# --------------------------------------------------------------------------- held-out set


@dataclass
class HeldOut:
    queries: list[str]
    corpus: list[str]  # distinct held-out positives
    gold: np.ndarray  # per query: index of its positive in ``corpus``
    relevant: list[tuple[int, ...]]  # per query: every held-out positive of the same query text and repository
    languages: list[str]
    kinds: list[str]
    repos: list[str]


def build_heldout(columns: dict[str, Sequence], split: RepoSplit, max_queries: int | None = None, seed: int = 0) -> HeldOut:
    """Held-out queries and the corpus they are searched in (all held-out positives, deduplicated)."""
    rows = [i for i, repo in enumerate(columns["repo"]) if split.is_heldout(repo)]
    if not rows:
        raise StageError("no held-out rows: raise --heldout-fraction or name repositories with --heldout-repo")
    corpus_index: dict[str, int] = {}
    positives_of: dict[tuple[str, str], set[int]] = defaultdict(set)
    for i in rows:
        code = corpus_index.setdefault(columns["positive"][i], len(corpus_index))
        positives_of[(columns["repo"][i], columns["query"][i])].add(code)
    queries_rows = rows
    if max_queries is not None and len(rows) > max_queries:
        picked = np.random.default_rng(seed).choice(len(rows), size=max_queries, replace=False)
        queries_rows = [rows[j] for j in sorted(picked.tolist())]
    languages = columns.get("language") or [""] * len(columns["repo"])
    kinds = columns.get("kind") or [""] * len(columns["repo"])
    return HeldOut(
        queries=[columns["query"][i] for i in queries_rows],
        corpus=list(corpus_index),
        gold=np.asarray([corpus_index[columns["positive"][i]] for i in queries_rows], dtype=np.int64),
        relevant=[tuple(sorted(positives_of[(columns["repo"][i], columns["query"][i])])) for i in queries_rows],
        languages=[languages[i] for i in queries_rows],
        kinds=[kinds[i] for i in queries_rows],
        repos=sorted({columns["repo"][i] for i in rows}),
    )


def top_ids(query_vectors: np.ndarray, doc_vectors: np.ndarray, depth: int) -> np.ndarray:
    """Top-``depth`` corpus ids per query by exact inner product (the runtime's FAISS helper)."""
    _, ids = search(flat_ip_index(doc_vectors), query_vectors, depth)
    return ids


# --------------------------------------------------------------------------- models


def parse_model_spec(spec: str) -> tuple[str, str]:
    """``LABEL=PATH`` or ``PATH`` or ``base`` -> (label, what to load)."""
    label, sep, target = spec.partition("=")
    if not sep:
        target = spec
        label = "base" if spec in BASE_ALIASES else _short_label(spec)
    return label, target


def _short_label(path: str) -> str:
    parts = Path(path).expanduser().parts
    return "/".join(parts[-2:]) if len(parts) >= 2 else path


def resolve_trained(target: str) -> str:
    """A `train` output directory stands for the model in it (``static/`` for a static run, which is
    what ships, else ``model/``, else ``delta/``)."""
    path = Path(target).expanduser()
    if is_static_dir(path / "static"):
        return str(path / "static")
    for sub in ("model", "delta"):
        if (path / sub / "modules.json").is_file() or is_compact_dir(path / sub):
            return str(path / sub)
    return target


def load_any_model(target: str, device: str = "cpu", max_seq_length: int | None = None):
    """The packaged MiniLM (``base``), a `train` output or delta directory, or any sentence-transformers id/dir."""
    from sentence_transformers import SentenceTransformer

    from localizer.embedding.embedder import BASE_MODEL, resolve_model

    target = resolve_trained(target)
    if is_compact_dir(target):
        model = load_compact(target, device=device)
    else:
        resolved = resolve_model(BASE_MODEL if target in BASE_ALIASES else target)[0]
        if is_static_dir(resolved):
            # A static model has no token limit to set: its tokenizer's truncation is part of the model.
            return to_sentence_transformer(resolved, device=device)
        model = SentenceTransformer(resolved, device=device)
    if max_seq_length:
        model.max_seq_length = max_seq_length
    return model


# --------------------------------------------------------------------------- stage


@dataclass(frozen=True)
class EvalConfig:
    data: Path
    out: Path
    models: tuple[str, ...] = ("base",)
    split: RepoSplit = field(default_factory=RepoSplit)
    max_queries: int | None = None
    batch_size: int = 64
    device: str = "auto"
    max_seq_length: int | None = 256
    seed: int = 0


def evaluate(config: EvalConfig, encoders: dict[str, Any] | None = None) -> dict[str, Any]:
    """Run every model on the held-out set; write ``metrics.json`` and ``metrics.md`` to ``out``.

    ``encoders`` maps labels to ready models (tests pass tiny ones); the rest
    are loaded from ``config.models``.
    """
    dataset = load_stage(config.data)
    columns = {name: dataset[name] for name in ("query", "positive", "repo", "language", "kind") if name in dataset.column_names}
    heldout = build_heldout(columns, config.split, config.max_queries, config.seed)
    device = resolve_device(config.device)
    models = dict(encoders or {})
    for spec in config.models:
        label, target = parse_model_spec(spec)
        if label in models:
            raise StageError(f"two models are labelled {label!r}: name them LABEL=PATH")
        models[label] = target
    results: dict[str, Any] = {}
    for label, model in models.items():
        started = time.perf_counter()
        if isinstance(model, str):
            model = load_any_model(model, device=device, max_seq_length=config.max_seq_length)
        encode = dict(batch_size=config.batch_size, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False)
        doc_vectors = np.asarray(model.encode(heldout.corpus, **encode), dtype=np.float32)
        query_vectors = np.asarray(model.encode(heldout.queries, **encode), dtype=np.float32)
        ranked = top_ids(query_vectors, doc_vectors, 10)
        ranks = first_relevant_ranks(ranked, heldout.gold)
        any_ranks = first_relevant_of_any(ranked, heldout.relevant)
        results[label] = {
            **summarize(ranks),
            "by_language": grouped_metrics(ranks, heldout.languages),
            "by_kind": grouped_metrics(ranks, heldout.kinds),
            "any_positive": {**summarize(any_ranks), "by_kind": grouped_metrics(any_ranks, heldout.kinds)},
            "seconds": round(time.perf_counter() - started, 2),
            # per query, in held-out order: what the ablation's bootstrap intervals resample
            "ranks": ranks.tolist(),
        }
    report = {
        "data": str(config.data),
        "data_sha256": sha256_tree(Path(config.data) / DATA_DIR),
        "split": config.split.describe(),
        "heldout": {"queries": len(heldout.queries), "corpus": len(heldout.corpus), "repos": heldout.repos},
        "models": {label: (spec if isinstance(spec, str) else type(spec).__name__) for label, spec in models.items()},
        "config": json.loads(json.dumps(asdict(config), default=str)),
        "results": results,
    }
    out = Path(config.out)
    atomic_write_text(out / "metrics.json", json.dumps(report, indent=2) + "\n")
    atomic_write_text(out / "metrics.md", markdown_table(report))
    return report


def markdown_table(report: dict[str, Any]) -> str:
    held = report["heldout"]
    lines = [
        f"Held-out retrieval: {held['queries']} queries over {held['corpus']} code snippets from "
        f"{len(held['repos'])} held-out repositories. MRR@10, Recall@1/10: the row's own positive; "
        "any positive: the first of the query's positives (a commit message has one per changed function).",
        "",
        "| model | MRR@10 | Recall@1 | Recall@10 | MRR@10 any positive | Recall@10 any positive |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for label, metrics in report["results"].items():
        any_positive = metrics["any_positive"]
        lines.append(f"| {label} | {metrics['mrr@10']:.4f} | {metrics['recall@1']:.4f} | {metrics['recall@10']:.4f} "
                     f"| {any_positive['mrr@10']:.4f} | {any_positive['recall@10']:.4f} |")
    kinds = sorted({kind for m in report["results"].values() for kind in m["by_kind"]})
    if len(kinds) > 1:
        lines += ["", "MRR@10 by pair kind (own positive / any positive):", "",
                  "| model | " + " | ".join(kinds) + " |", "|---|" + "---:|" * len(kinds)]
        for label, metrics in report["results"].items():
            any_kind = metrics["any_positive"]["by_kind"]
            cells = [f"{metrics['by_kind'][kind]['mrr@10']:.4f} / {any_kind[kind]['mrr@10']:.4f}" for kind in kinds]
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
    languages = sorted({lang for m in report["results"].values() for lang in m["by_language"]})
    if len(languages) > 1:
        lines += ["", "MRR@10 by language:", "", "| model | " + " | ".join(languages) + " |",
                  "|---|" + "---:|" * len(languages)]
        for label, metrics in report["results"].items():
            cells = [f"{metrics['by_language'].get(lang, {}).get('mrr@10', float('nan')):.4f}" for lang in languages]
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- SWE-bench harness


@dataclass(frozen=True)
class HarnessRunConfig:
    """What ``cornstack-train harness`` (and ``ablate``) asks of the SWE-bench harness.

    It is this pipeline's own config, not the harness's: :func:`harness_command_line` turns it
    into the flags of the harness's command line, the only interface between the two.
    """

    data: str
    repos_dir: Path
    out: Path
    models: tuple[str, ...]
    retrievers: tuple[str, ...] = ("bm25", "dense", "hybrid")
    ids_file: Path | None = None
    limit: int | None = None
    index_dir: Path | None = None
    device: str = "auto"
    clone: bool = False
    backend: str = "torch"  # runtime of the trained models; the base MiniLM keeps base_backend
    base_backend: str = "torch"  # fp32 by default, so earlier runs' cached base embeddings are reused
    workers: int = 1
    # The base model to run beside the trained ones: the packaged MiniLM by default; a static ablation
    # compares with its own untrained start instead (a MiniLM index costs minutes per commit).
    base_model: str | None = None


def materialize(spec: str, cache_dir: Path) -> str:
    """A path the harness's Embedder can load: delta directories are rebuilt into a full ST directory once."""
    label, target = parse_model_spec(spec)
    target = resolve_trained(target)
    if not is_compact_dir(target):
        if "=" not in spec:
            return target
        # The harness names a system after its model directory; every `train` output holds a
        # `model/`, so a labelled spec is reached through a link named after its label.
        link = cache_dir / label.replace("/", "__")
        cache_dir.mkdir(parents=True, exist_ok=True)
        if not (link.is_symlink() and link.resolve() == Path(target).resolve()):
            tmp = link.with_name(f".{link.name}.link")
            tmp.unlink(missing_ok=True)
            tmp.symlink_to(Path(target).resolve(), target_is_directory=True)
            os.replace(tmp, link)
        return str(link)
    manifest = read_manifest(target)
    full = cache_dir / f"{label.replace('/', '__')}-{manifest.get('delta_sha256', 'x')[:12]}"
    if not (full / "modules.json").exists():
        tmp = full.with_name(f".{full.name}.tmp")
        load_compact(target).save(str(tmp))
        os.replace(tmp, full)
    return str(full)


# Where the harness's module can live: a wheel installs benchmarks/ as ``localizer_benchmarks``;
# a checkout has it as ``benchmarks`` (importable from the checkout's root).
HARNESS_MODULES = ("localizer_benchmarks", "benchmarks")


def harness_launcher() -> list[str]:
    """How to start the harness: ``localize-bench`` on the PATH, else its module with this interpreter.

    The module is found without importing the benchmarks (training may not): ``find_spec`` of a
    top-level name locates a package and runs none of its code. The installed name comes first,
    so a virtualenv that is not activated (no ``localize-bench`` on the PATH) still runs its own copy.
    """
    installed = shutil.which("localize-bench")
    if installed:
        return [installed]
    for package in HARNESS_MODULES:
        spec = importlib.util.find_spec(package)
        roots = list(spec.submodule_search_locations or []) if spec is not None else []
        if any((Path(root) / "swebench" / "run.py").is_file() for root in roots):
            return [sys.executable, "-m", f"{package}.swebench.run"]
    raise TrainingError("the SWE-bench harness is not available: install localizer with its benchmarks "
                        "(localize-bench) or run from a checkout that has benchmarks/swebench/run.py")


def harness_command_line(config: HarnessRunConfig, models: Sequence[str], launcher: Sequence[str]) -> list[str]:
    """The harness's command line for ``config``: ``models[0]`` is the base model, the rest the trained ones.

    The base model runs under ``--backend`` (``config.base_backend``), each trained model under
    ``--model-backend MODEL=config.backend``; every retriever is crossed with every model by the harness.
    """
    argv = [*launcher, "--data", str(config.data), "--repos-dir", str(config.repos_dir), "--out", str(config.out)]
    for retriever in config.retrievers:
        argv += ["--retriever", retriever]
    for model in models:
        argv += ["--model", str(model)]
    argv += ["--backend", config.base_backend]
    for model in models[1:]:
        argv += ["--model-backend", f"{model}={config.backend}"]
    if config.ids_file is not None:
        argv += ["--ids", str(config.ids_file)]
    if config.limit is not None:
        argv += ["--limit", str(config.limit)]
    if config.index_dir is not None:
        argv += ["--index-dir", str(config.index_dir)]
    argv += ["--device", config.device, "--workers", str(config.workers)]
    if not config.clone:
        argv.append("--no-clone")
    return argv


def run_harness(config: HarnessRunConfig, run: Callable[..., Any] = subprocess.run,
                launcher: Sequence[str] | None = None) -> dict[str, Any]:
    """SWE-bench-Lite localization for ``models`` next to the base MiniLM (and BM25 when asked).

    Returns the harness's per-system metrics (``metrics.json``'s ``metrics``). The harness's
    log goes to stderr as it runs; its stdout (the table) is dropped, ``harness`` prints
    ``metrics.md`` itself. ``run`` and ``launcher`` are for tests.
    """
    from localizer.embedding.embedder import BASE_MODEL

    base = BASE_MODEL if config.base_model is None else materialize(f"base={config.base_model}",
                                                                    Path(config.out) / "models")
    models = [base] + [materialize(spec, Path(config.out) / "models") for spec in config.models]
    argv = harness_command_line(config, models, harness_launcher() if launcher is None else launcher)
    log.info("harness: %s", shlex.join(argv))
    result = run(argv, stdout=subprocess.DEVNULL)
    if result.returncode != 0:
        raise TrainingError(f"the SWE-bench harness failed (exit {result.returncode}; its error is above): "
                            f"{shlex.join(argv)}")
    try:
        return json.loads((Path(config.out) / "metrics.json").read_text())["metrics"]
    except (OSError, ValueError, KeyError) as exc:
        raise TrainingError(f"the SWE-bench harness wrote no readable {Path(config.out) / 'metrics.json'}: {exc}") from None
