"""Install a trained reranker adapter as the one this package ships (``cornstack-train ship-reranker``).

An adapter in ``localizer/models/reranker`` turns reranking on for every run of ``localize``
(``localizer.rerank.shipped``), so nothing gets there unchecked and nothing gets there by halves:

* the adapter must be a peft LoRA adapter (``adapter_config.json``, ``adapter_model.safetensors``
  whose header reads) trained by ``train-reranker`` (its ``training.json``) on the packaged default
  model, the only one the shipped adapter is applied to; another base is refused, since its
  weights would be merged into a model they were not trained for;
* its prompt budgets must be the ones inference uses (``RerankConfig``'s defaults), because
  ``localize`` has no budget flags: an adapter trained on other budgets would read prompts it never saw;
* it must fit ``--max-mb`` (25 MB, the issue's budget for weights inside the package);
* the teacher-rank data it names must still hash to what it was trained on (when it is on disk),
  and the mined corpus behind it must meet DEVELOPERS.md's rule for weights trained on fetched
  repositories: mined from the docs/ lists only, every repository permissive at its pin, the
  pins still in those lists, and the benchmark content-overlap check run; so must every
  ``--extra-stage`` (a ``repo-windows`` stage's own repositories, pins and overlap check);
* held-out evaluations given with ``--eval`` must have scored these very weights.

Then the adapter is copied into a sibling temp directory, the model card (``README.md``) and its
machine-readable twin (``card.json``) are written beside it, and the directory is renamed into
place: readers see the old adapter or the new one, never half of one.
"""

from __future__ import annotations

import json
import re
import shutil
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

from indexer.storage.atomic import atomic_replace_dir
from localizer.embedding.shipped import sha256_file
from localizer.rerank.models import DEFAULT_RERANKER, PACKAGED, packaged_name
from localizer.rerank.prompt import PROMPT_FORMAT, SYSTEM_MESSAGE, recorded_prompt_format
from localizer.rerank.reranker import RerankConfig
from localizer.rerank.shipped import SHIPPED_RERANKER

from cornstack_train.data.denylist import canonical_repo_name
from cornstack_train.data.licenses import LicenseError, is_permissive, load_repo_list
from cornstack_train.data.records import STATS_FILE, load_stats, sha256_tree
from cornstack_train.errors import TrainingError
from cornstack_train.reranker.card import BUDGETS, REPRODUCE, card_data, render_card

MAX_SHIPPED_MB = 25.0  # the budget for weights inside the package
CONFIG_FILE = "adapter_config.json"
WEIGHTS_FILE = "adapter_model.safetensors"
TRAINING_FILE = "training.json"
CARD_FILE = "README.md"
CARD_JSON = "card.json"
PROJECT_ROOT = Path(__file__).resolve().parents[2]
_ADAPTER_DESCRIPTION = re.compile(r"\+ adapter (.+), (?:first-token|generate)$")


class ShipError(TrainingError):
    """The adapter, its data or its corpus may not ship; nothing was installed."""


@dataclass(frozen=True)
class Adapter:
    """A checked adapter directory: what will be copied, and what its files say about it."""

    path: Path
    config: dict[str, Any]  # adapter_config.json
    training: dict[str, Any]  # training.json
    run_stats: dict[str, Any] | None  # the run's train_stats.json, when it belongs to this adapter
    bytes: int
    weights_sha256: str


@dataclass(frozen=True)
class PinnedRepo:
    repo: str
    head: str
    license: str


@dataclass(frozen=True)
class RepoList:
    path: str  # relative to the project root when inside it
    sha256: str
    entries: int


@dataclass(frozen=True)
class Corpus:
    """The mined stage behind the training data, as DEVELOPERS.md's shipping rule needs it recorded."""

    mined: str
    stats_sha256: str
    repos: tuple[PinnedRepo, ...]
    lists: tuple[RepoList, ...]
    benchmark_repos: tuple[str, ...]
    denied_by_name: int
    licence_refused: dict[str, str]
    pairs: int | None
    pairs_by_kind: dict[str, int]

    @property
    def licenses(self) -> dict[str, int]:
        return dict(Counter(r.license for r in self.repos).most_common())


@dataclass(frozen=True)
class HeldOut:
    """One eval-reranker output that scored this adapter."""

    path: str
    shuffled: bool
    retriever: str
    queries: int
    repos: tuple[str, ...]
    results: dict[str, dict[str, Any]]
    adapter_rows: tuple[str, ...]  # the rows that are these weights (and their +rrf fusions)


@dataclass(frozen=True)
class ShipReport:
    target: Path
    adapter_bytes: int
    adapter_sha256: str
    files: tuple[str, ...]


# --------------------------------------------------------------------------- the adapter


def adapter_dir_of(run: str | Path) -> Path:
    """A train-reranker output's ``adapter/``, or the path itself when it is an adapter directory."""
    run = Path(run)
    for candidate in (run / "adapter", run):
        if (candidate / CONFIG_FILE).is_file():
            return candidate
    raise ShipError(f"{run} holds no peft adapter ({CONFIG_FILE}); is it a `train-reranker` output?")


def _read_json(path: Path, what: str) -> dict[str, Any]:
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ShipError(f"cannot read {what} {path}: {exc}") from None
    if not isinstance(value, dict):
        raise ShipError(f"{what} {path} is not a JSON object")
    return value


def names_default_base(declared: str | None) -> bool:
    """Whether an adapter_config's base names the packaged default: by name or alias, or as its
    converted copy in the model cache (``<name>-<sha256[:12]>-vN``, which also pins the GGUF)."""
    if not declared:
        return False
    if packaged_name(declared) == DEFAULT_RERANKER:
        return True
    return Path(declared).name.startswith(f"{DEFAULT_RERANKER}-{PACKAGED[DEFAULT_RERANKER].sha256[:12]}-v")


def check_base(config: dict[str, Any], training: dict[str, Any], where: Path) -> None:
    """Refuse an adapter for any model but the packaged default: localize merges it into that one."""
    trained_on = training.get("base_model")
    if not trained_on or packaged_name(str(trained_on)) != DEFAULT_RERANKER:
        raise ShipError(f"{where} was trained on {trained_on!r}, not the packaged default {DEFAULT_RERANKER}; "
                        "the shipped adapter is merged into that model only")
    declared = config.get("base_model_name_or_path")
    if declared and not names_default_base(declared):
        raise ShipError(f"{where}/{CONFIG_FILE} names base model {declared!r}, not the packaged {DEFAULT_RERANKER}")


def check_budgets(training: dict[str, Any], where: Path) -> None:
    """Refuse a prompt layout or budgets other than inference's: localize has no flags to match them."""
    trained_format = recorded_prompt_format(training)
    if trained_format != PROMPT_FORMAT:
        raise ShipError(f"{where} was trained on prompt format {trained_format}; inference builds format "
                        f"{PROMPT_FORMAT}, so retrain it")
    config = training.get("config") or {}
    expected = {name: getattr(RerankConfig, name) for name in BUDGETS}
    expected.update(max_prompt_tokens=None, system_message=SYSTEM_MESSAGE)
    wrong = [f"{k} {config.get(k)!r} (inference: {v!r})" for k, v in expected.items() if config.get(k, v) != v]
    missing = [k for k in BUDGETS if k not in config]
    if missing:
        raise ShipError(f"{where}/{TRAINING_FILE} records no {', '.join(missing)}; "
                        "ship an adapter train-reranker wrote")
    if wrong:
        raise ShipError(f"{where} was trained with prompt budgets inference does not use: {'; '.join(wrong)}")


def check_weights(weights: Path, config: dict[str, Any]) -> None:
    """The safetensors header reads and holds LoRA pairs of the configured rank (no tensor is loaded)."""
    from safetensors import safe_open

    if config.get("peft_type", "LORA") != "LORA":
        raise ShipError(f"{weights.parent} is a {config.get('peft_type')} adapter, not LoRA")
    try:
        with safe_open(str(weights), framework="pt") as handle:
            shapes = {key: handle.get_slice(key).get_shape() for key in handle.keys()}
    except Exception as exc:  # noqa: BLE001 - any reader failure means a corrupt or foreign file
        raise ShipError(f"{weights} is not a readable safetensors file: {exc}") from None
    lora_a = {k: s for k, s in shapes.items() if ".lora_A." in k}
    if not lora_a or len(lora_a) != sum(".lora_B." in k for k in shapes):
        raise ShipError(f"{weights} holds no matching lora_A/lora_B weights")
    rank = config.get("r")
    if rank and not config.get("rank_pattern") and any(s[0] != rank for s in lora_a.values()):
        raise ShipError(f"{weights} has LoRA ranks other than r={rank} of its {CONFIG_FILE}")


def read_adapter(run: str | Path, max_bytes: int) -> Adapter:
    """Every check on the adapter itself, cheapest first; nothing is written."""
    path = adapter_dir_of(run)
    for name in (CONFIG_FILE, WEIGHTS_FILE, TRAINING_FILE):
        if not (path / name).is_file():
            raise ShipError(f"{path} has no {name}; ship the adapter/ directory `train-reranker` wrote")
    size = sum((path / name).stat().st_size for name in (CONFIG_FILE, WEIGHTS_FILE, TRAINING_FILE))
    if size > max_bytes:
        raise ShipError(f"{path} is {size / 1e6:.1f} MB, over the {max_bytes / 1e6:g} MB the package may ship "
                        "(train with a smaller --lora-r or fewer --target-module)")
    config = _read_json(path / CONFIG_FILE, "adapter config")
    training = _read_json(path / TRAINING_FILE, "training record")
    check_base(config, training, path)
    check_budgets(training, path)
    check_weights(path / WEIGHTS_FILE, config)
    run_stats = None
    stats_file = path.parent / "train_stats.json"
    if path.name == "adapter" and stats_file.is_file():
        stats = _read_json(stats_file, "training stats")
        run_stats = stats if stats.get("steps") == training.get("steps") else None
    return Adapter(path, config, training, run_stats, size, sha256_file(path / WEIGHTS_FILE))


# --------------------------------------------------------------------------- its data and corpus


def _stage_record(data: dict[str, Any]) -> dict[str, Any]:
    """One training stage as ``training.json`` names it; re-hashed when still on disk, and refused if changed."""
    recorded = data.get("sha256")
    if not recorded:
        raise ShipError(f"{TRAINING_FILE} records no sha256 of the training data; train with `cornstack-train "
                        "train-reranker`, which does")
    stats = data.get("stats") or {}
    record = {"path": data.get("path", ""), "sha256": recorded, "stage": stats.get("stage"),
              "instances": stats.get("instances"), "by_kind": stats.get("by_kind", {}), "repos": stats.get("repos"),
              "teacher": stats.get("teacher"), "mode": (stats.get("config") or {}).get("mode"),
              "depth": (stats.get("config") or {}).get("depth"), "split": stats.get("split"), "bytes": None,
              "verified": False}
    stage = Path(record["path"]) if record["path"] else None
    if stage is not None and stage.is_dir():
        found = sha256_tree(stage)
        if found != recorded:
            raise ShipError(f"{stage} has changed since training (sha256 {found[:12]}, trained on {recorded[:12]}); "
                            "the card could not name the data")
        record["bytes"] = sum(p.stat().st_size for p in stage.rglob("*") if p.is_file())
        record["verified"] = True
    return record


def repo_windows_corpus(stats: dict[str, Any], where: str) -> dict[str, Any]:
    """The repositories behind a ``repo-windows`` stage, refused unless DEVELOPERS.md's rule holds for them:
    every one permissive where the licence gate read it, at the pin its docs/ list gives, and the
    windows checked against the benchmark functions (``--benchmark-repos-dir``)."""
    if not stats.get("benchmark_repos"):
        raise ShipError(f"{where} was built without the benchmark content-overlap check (repo-windows "
                        "--benchmark-repos-dir)")
    listings = (stats.get("config") or {}).get("repos_lists") or []
    if not listings:
        raise ShipError(f"{where} records no docs/ repository lists; its pins cannot be checked")
    lists, heads = pinned_lists(listings)
    repos = [pinned_repo(name, repo.get("license"), repo.get("head") or "", heads, f"{name} in {where}", "ranked",
                         "the windows")
             for name, repo in sorted((stats.get("per_repo") or {}).items())]
    if not repos:
        raise ShipError(f"{where} records no repositories")
    return {"repos": [asdict(r) for r in repos], "lists": [asdict(r) for r in lists],
            "licenses": dict(Counter(r.license for r in repos).most_common()),
            "benchmark_repos": list(stats["benchmark_repos"]),
            "dropped_benchmark_overlap": stats.get("dropped_benchmark_overlap", 0)}


def training_data(training: dict[str, Any], mined: str | Path | None) -> dict[str, Any]:
    """What the adapter was trained on: the main stage and every ``--extra-stage``, each re-hashed when still
    on disk. A ``repo-windows`` extra brings its own repositories (:func:`repo_windows_corpus`); any
    other extra must descend from ``mined``, the corpus the card names."""
    data = training.get("data") or {}
    record = _stage_record(data)
    extras = []
    for extra in data.get("extra_stages") or []:
        found = _stage_record(extra)
        stats = extra.get("stats") or {}
        if found["stage"] == "repo-windows":
            found["corpus"] = repo_windows_corpus(stats, found["path"] or "an extra stage")
        else:
            upstream = find_mined(found["path"])
            if upstream is None or mined is None or Path(upstream).resolve() != Path(mined).resolve():
                raise ShipError(f"extra stage {found['path']} does not descend from the mined corpus the card names")
        extras.append(found)
    record["extra_stages"] = extras
    return record


def find_mined(stage: str | Path | None, hops: int = 4) -> Path | None:
    """The ``mine`` stage upstream of ``stage``, following each stage's recorded ``input``."""
    path = Path(stage) if stage else None
    for _ in range(hops + 1):
        if path is None or not (path / STATS_FILE).is_file():
            return None
        stats = load_stats(path)
        if stats.get("stage") == "mine":
            return path
        path = Path(stats["input"]) if stats.get("input") else None
    return None


def _shown(path: Path) -> str:
    resolved = path.resolve()
    return str(resolved.relative_to(PROJECT_ROOT)) if resolved.is_relative_to(PROJECT_ROOT) else str(path)


def pinned_lists(listings: Sequence[str]) -> tuple[list[RepoList], dict[str, str]]:
    """The docs/ repository lists a stage names, and the pinned head of every repository in them."""
    lists, heads = [], {}
    for listing in listings:
        path = _repo_list(listing)
        try:
            entries = load_repo_list(path)
        except LicenseError as exc:
            raise ShipError(str(exc)) from None
        lists.append(RepoList(_shown(path), sha256_file(path), len(entries)))
        for entry in entries:
            heads.setdefault(canonical_repo_name(entry.repo), entry.head)
    return lists, heads


def pinned_repo(repo: str, spdx: str | None, commit: str, heads: dict[str, str], who: str, verb: str,
                rebuilt: str) -> PinnedRepo:
    """``repo`` as the card records it, refused unless permissive at ``commit`` and pinned there by the docs/
    lists (``heads``, from :func:`pinned_lists`); ``who``, ``verb`` and ``rebuilt`` word the refusal."""
    if not is_permissive(spdx):
        raise ShipError(f"{who} is not permissively licensed at its pin ({spdx or 'no licence recorded'})")
    listed = heads.get(canonical_repo_name(repo))
    if listed != commit:
        where = f"pin it at {listed[:12]}" if listed else "do not list it"
        raise ShipError(f"{who} was {verb} at {commit[:12] or 'no recorded commit'} but the docs lists {where}; "
                        f"{rebuilt} could not be rebuilt from them")
    return PinnedRepo(repo, commit, spdx)


def _repo_list(listing: str) -> Path:
    path = Path(listing)
    for candidate in (path, PROJECT_ROOT / path, PROJECT_ROOT / "docs" / path.name):
        if candidate.is_file():
            return candidate
    raise ShipError(f"the repository list {listing} the corpus was mined from is gone; its pins cannot be checked")


def read_corpus(mined: str | Path) -> Corpus:
    """The mined stage's record, refused unless it meets DEVELOPERS.md's rule for shippable weights."""
    mined = Path(mined)
    if not (mined / STATS_FILE).is_file():
        raise ShipError(f"{mined} is not a finished stage (no {STATS_FILE})")
    stats = load_stats(mined)
    if stats.get("stage") != "mine":
        raise ShipError(f"{mined} is a {stats.get('stage')!r} stage, not the `mine` stage")
    config = stats.get("config") or {}
    if config.get("sources") or config.get("sources_dir"):
        raise ShipError(f"{mined} also mined sources no licence gate judged (paths or --sources-dir); "
                        "weights that ship come from --repos-list only")
    if not config.get("repos_lists"):
        raise ShipError(f"{mined} was not mined from the docs/ repository lists (--repos-list)")
    if not stats.get("benchmark_repos"):
        raise ShipError(f"{mined} was mined without the benchmark content-overlap check (--benchmark-repos-dir)")
    sources = stats.get("sources") or {}
    if not sources:
        raise ShipError(f"{mined} records no mined repositories")
    lists, heads = pinned_lists(config["repos_lists"])
    repos = []
    for repo, source in sorted(sources.items()):
        verdict = source.get("license") or {}
        repos.append(pinned_repo(repo, verdict.get("spdx"), verdict.get("commit") or "", heads, repo, "mined",
                                 "the corpus"))
    return Corpus(mined=str(mined), stats_sha256=sha256_file(mined / STATS_FILE), repos=tuple(repos),
                  lists=tuple(lists), benchmark_repos=tuple(stats["benchmark_repos"]),
                  denied_by_name=len(stats.get("denied_repos") or {}),
                  licence_refused=dict(stats.get("licence_refused") or {}), pairs=stats.get("pairs"),
                  pairs_by_kind=dict(stats.get("pairs_by_kind") or {}))


# --------------------------------------------------------------------------- held-out results


def _same_weights(described: str, adapter: Adapter) -> bool:
    path = Path(described).expanduser()
    if path.resolve() == adapter.path.resolve():
        return True
    weights = path / WEIGHTS_FILE
    return weights.is_file() and sha256_file(weights) == adapter.weights_sha256


def read_heldout(eval_dir: str | Path, adapter: Adapter) -> HeldOut:
    """An eval-reranker output; refused unless one of its rows scored these weights."""
    eval_dir = Path(eval_dir)
    report = _read_json(eval_dir / "metrics.json", "held-out metrics")
    results, systems = report.get("results") or {}, report.get("systems") or {}
    rows = []
    for name, description in systems.items():
        found = _ADAPTER_DESCRIPTION.search(str(description))
        if found and _same_weights(found.group(1), adapter):
            rows += [name] + [f"{name}+rrf"] * (f"{name}+rrf" in results)
    if not rows:
        raise ShipError(f"{eval_dir} scored no adapter with these weights; pass the eval-reranker output of this run")
    queries = next(iter(results.values()), {}).get("queries", 0)
    return HeldOut(path=str(eval_dir), shuffled=bool((report.get("config") or {}).get("shuffle")),
                   retriever=str(systems.get("retriever", "")), queries=int(queries),
                   repos=tuple(report.get("repos") or ()), results=results, adapter_rows=tuple(rows))


def ship_reranker(run: str | Path, evals: Sequence[str | Path] = (), mined: str | Path | None = None,
                  target: str | Path | None = None, max_mb: float = MAX_SHIPPED_MB) -> ShipReport:
    """Check the adapter, its data, its corpus and its held-out results; then install it with its card.

    ``target`` defaults to the package's ``models/reranker`` (``localizer.rerank.shipped``); ``mined``
    defaults to the ``mine`` stage found upstream of the training data.
    """
    adapter = read_adapter(run, int(max_mb * 1e6))
    mined = mined if mined is not None else find_mined((adapter.training.get("data") or {}).get("path"))
    data = training_data(adapter.training, mined)
    if mined is None:
        raise ShipError(f"no `mine` stage found upstream of {data['path'] or 'the training data'}; pass --mined DIR, "
                        "the corpus the card must name")
    corpus = read_corpus(mined)
    heldout = [read_heldout(d, adapter) for d in evals]
    target = Path(target) if target is not None else SHIPPED_RERANKER

    def write(tmp: Path) -> None:
        shutil.copy2(adapter.path / WEIGHTS_FILE, tmp / WEIGHTS_FILE)
        shutil.copy2(adapter.path / TRAINING_FILE, tmp / TRAINING_FILE)
        # The trainer's cache path says nothing to a user and names a machine: record the packaged name.
        config = {**adapter.config, "base_model_name_or_path": DEFAULT_RERANKER}
        (tmp / CONFIG_FILE).write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
        files = {p.name: sha256_file(p) for p in sorted(tmp.iterdir())}
        card = card_data(adapter, data, corpus, heldout, files)
        (tmp / CARD_JSON).write_text(json.dumps(card, indent=2) + "\n")
        (tmp / CARD_FILE).write_text(render_card(card))

    atomic_replace_dir(target, write, public=True)
    return ShipReport(target=target, adapter_bytes=adapter.bytes, adapter_sha256=adapter.weights_sha256,
                      files=tuple(sorted(p.name for p in target.iterdir())))


__all__ = ["MAX_SHIPPED_MB", "REPRODUCE", "Adapter", "Corpus", "HeldOut", "ShipError", "ShipReport", "adapter_dir_of",
           "card_data", "find_mined", "read_adapter", "read_corpus", "read_heldout", "render_card", "ship_reranker",
           "training_data"]
