"""Stage ``mine``: (query, positive) pairs from repositories, git history and the published CoRNStack data.

Sources, each mined on its own into a shard so a long run can resume:

* a repository (git work tree, bare git dir or plain directory) at a
  revision, read through :func:`indexer.source.open_source` (straight from git
  objects for a revision or a bare repo): docstring pairs
  (:mod:`cornstack_train.data.docstrings`) and, from its history, commit-message
  pairs (:mod:`cornstack_train.data.commits`);
* the entries of repository lists (``--repos-list docs/history-repos.json``), each
  mined at its own pinned ``head`` and only when the licence gate
  (:mod:`cornstack_train.data.licenses`) finds it permissive there; the verdict
  goes into the source's stats, refusals into ``licence_refused``;
* ``hub:<dataset id>``: rows of a published CoRNStack dataset
  (``nomic-ai/cornstack-python-v1``...; columns ``query`` and ``document``),
  streamed, up to a limit.

Each source's pairs pass the quality rules (:mod:`cornstack_train.data.cleaning`)
and the per-repository cap; then all shards are merged, de-duplicated (exact,
then MinHash near-duplicates within each pair kind) and checked against the
SWE-bench deny-list by content. The output is a ``records`` stage with the
pair columns; ``stats.json`` says how many pairs each rule removed.

Shards live in ``<out>.work/shards`` next to the output (not inside it, since
the output directory is replaced atomically); their names carry a hash of the
settings that shape a shard, so changing ``--max-pairs-per-repo`` re-mines
instead of reusing stale shards.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from indexer.errors import RepositoryError
from indexer.git.runner import run_git
from indexer.filters import FileFilter, content_skip_reason
from indexer.source import open_source

from cornstack_train.data.cleaning import QualityConfig, code_hash, code_issue, deduplicate, pair_issue, query_issue
from cornstack_train.data.commits import CommitConfig, CommitPair, commit_pairs
from cornstack_train.data.denylist import BenchmarkHashes, canonical_repo_name, denied_by_name
from cornstack_train.data.docstrings import docstring_pairs
from cornstack_train.data.licenses import LicenseVerdict, RepoEntry, gate, load_repo_list
from cornstack_train.data.records import PAIR_COLUMNS
from cornstack_train.errors import TrainingError

log = logging.getLogger(__name__)

HUB_PREFIX = "hub:"
MANIFEST = "manifest.json"
_HUB_QUERY_COLUMNS = ("query", "docstring", "func_documentation_string", "nl")
_HUB_CODE_COLUMNS = ("document", "positive", "code", "func_code_string")


class MiningError(TrainingError):
    """A source cannot be mined (missing path, unreachable hub); the message is one line."""


@dataclass(frozen=True)
class MineConfig:
    """Everything the ``mine`` stage needs; the CLI fills it from options."""

    sources: tuple[str, ...] = ()  # repo paths and hub:<id> entries
    sources_dir: str | None = None  # every repo in it (manifest.json names them when present)
    repos_lists: tuple[str, ...] = ()  # docs/*-repos.json: each entry mined at its pinned head, licence-gated
    repos_dir: str | None = None  # where the listed repositories are, as owner__name
    languages: tuple[str, ...] = ()  # only list entries of these languages (all when empty)
    max_repos: int | None = None  # only the first N repositories that pass the gate, in name order
    rev: str | None = None  # None: the work tree, or HEAD of a bare repo
    max_pairs_per_repo: int = 1500  # docstring pairs kept per repository, after quality rules
    hub_limit: int = 100_000  # rows read per hub dataset
    commits: bool = True
    commit: CommitConfig = field(default_factory=CommitConfig)
    quality: QualityConfig = field(default_factory=QualityConfig)
    near_dup_threshold: float | None = 0.8
    benchmark_repos_dir: str | None = None
    include_tests: bool = False
    max_file_size: int = 1_000_000
    seed: int = 0

    def shard_key(self) -> str:
        """Hash of the settings that shape one source's shard."""
        shaping = {
            "rev": self.rev, "max_pairs_per_repo": self.max_pairs_per_repo, "hub_limit": self.hub_limit,
            "commits": self.commits, "commit": dataclasses.asdict(self.commit),
            "quality": dataclasses.asdict(self.quality), "include_tests": self.include_tests,
            "max_file_size": self.max_file_size, "seed": self.seed, "version": 2,
        }
        return hashlib.sha1(json.dumps(shaping, sort_keys=True).encode()).hexdigest()[:10]


@dataclass(frozen=True)
class SourceSpec:
    location: str  # a path, or hub:<dataset id>
    repo: str  # owner/name
    language: str | None = None  # as declared by a manifest, informational
    rev: str | None = None  # a pinned commit (repository lists); None: the run's --rev
    license: LicenseVerdict | None = None  # the licence gate's verdict, for list entries

    @property
    def is_hub(self) -> bool:
        return self.location.startswith(HUB_PREFIX)

    @property
    def shard_name(self) -> str:
        """Named by repository, location and pin: a list whose pin moves mines the new commit afresh."""
        safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in self.repo)
        where = self.location if self.rev is None else f"{self.location}@{self.rev}"
        return f"{safe}-{hashlib.sha1(where.encode()).hexdigest()[:8]}"


@dataclass
class SourcePlan:
    """The sources of a run, and the list entries left out with one-line reasons."""

    specs: list[SourceSpec]
    licence_refused: dict[str, str] = field(default_factory=dict)  # repo -> reason
    denied: dict[str, str] = field(default_factory=dict)  # repo -> deny-list reason


def pair_id(kind: str, repo: str, path: str, name: str, query: str, positive: str) -> str:
    """Stable across runs and machines: a hash of what the pair is, not of where it sits in a list."""
    key = "\0".join((kind, repo, path, name, query, code_hash(positive)))
    return hashlib.sha1(key.encode("utf-8", errors="surrogatepass")).hexdigest()[:20]


def make_row(kind: str, repo: str, path: str, name: str, query: str, positive: str, language: str,
             source: str) -> dict[str, str]:
    return {
        "id": pair_id(kind, repo, path, name, query, positive), "query": query, "positive": positive,
        "kind": kind, "language": language, "repo": repo, "path": path, "name": name, "source": source,
    }


# ------------------------------------------------------------- sources


def discover_sources(config: MineConfig) -> list[SourceSpec]:
    """The sources of a run, in a stable order; unknown paths are a :class:`MiningError`."""
    return plan_sources(config).specs


def listed_sources(config: MineConfig) -> SourcePlan:
    """Sources from the repository lists: in ``languages``, not deny-listed, permissive at their pin.

    The deny-list is checked first (the SWE-bench and evaluation repositories are never read,
    whatever their licence), then the licence gate; ``max_repos`` takes the first N that pass,
    in name order, so a smaller corpus is a prefix of the larger one.
    """
    if not config.repos_lists:
        return SourcePlan([])
    if not config.repos_dir:
        raise MiningError("--repos-list needs --repos-dir: the directory of owner__name clones")
    if not Path(config.repos_dir).is_dir():
        raise MiningError(f"--repos-dir does not exist or is not a directory: {config.repos_dir}")
    entries: dict[str, RepoEntry] = {}
    denied: dict[str, str] = {}
    for listing in config.repos_lists:
        for entry in load_repo_list(listing):
            if config.languages and entry.language not in config.languages:
                continue
            reason = denied_by_name(entry.repo)
            if reason:
                denied[canonical_repo_name(entry.repo)] = reason
                continue
            entries.setdefault(entry.repo, entry)
    result = gate(sorted(entries.values(), key=lambda e: e.dir_name.lower()), config.repos_dir)
    kept = result.kept[:config.max_repos] if config.max_repos else result.kept
    specs = [SourceSpec(str(g.path), canonical_repo_name(g.entry.repo), g.entry.language, g.entry.head, g.verdict)
             for g in kept]
    refused = {canonical_repo_name(v.repo): v.reason for v in result.refused}
    for repo, reason in refused.items():
        log.warning("mine: refusing %s: %s", repo, reason)
    return SourcePlan(specs, refused, denied)


def plan_sources(config: MineConfig) -> SourcePlan:
    """Every source of a run (directories, lists, hub datasets) and what the lists left out."""
    plan = listed_sources(config)
    specs = plan.specs
    # A repository the lists name is theirs to judge: --sources-dir neither mines it twice nor
    # brings back one the gate refused.
    governed = {s.repo for s in specs} | set(plan.licence_refused) | set(plan.denied)
    if config.sources_dir:
        root = Path(config.sources_dir)
        if not root.is_dir():
            raise MiningError(f"--sources-dir does not exist or is not a directory: {root}")
        manifest = root / MANIFEST
        if manifest.is_file():
            entries = json.loads(manifest.read_text())
            for e in entries:
                path = Path(e.get("path") or root / e["repo"].replace("/", "__"))
                if path.exists() and canonical_repo_name(e["repo"]) not in governed:
                    specs.append(SourceSpec(str(path), canonical_repo_name(e["repo"]), e.get("language")))
            listed = {Path(s.location).name for s in specs}
        else:
            listed = set()
        for child in sorted(root.iterdir()):
            if (child.name not in listed and child.is_dir() and not child.name.startswith(".")
                    and canonical_repo_name(child.name) not in governed):
                specs.append(SourceSpec(str(child), canonical_repo_name(child.name)))
    for location in config.sources:
        if location.startswith(HUB_PREFIX):
            dataset_id = location[len(HUB_PREFIX):]
            if not dataset_id:
                raise MiningError(f"empty dataset id in {location!r}; write hub:owner/name")
            specs.append(SourceSpec(location, dataset_id, _hub_language(dataset_id)))
            continue
        path = Path(location).expanduser()
        if not path.is_dir():
            raise MiningError(f"source is not a directory: {location}")
        specs.append(SourceSpec(str(path), canonical_repo_name(path.resolve().name)))
    return plan


def _hub_language(dataset_id: str) -> str | None:
    for language in ("python", "java", "javascript", "typescript", "go", "php", "ruby"):
        if f"-{language}-" in dataset_id or dataset_id.endswith(f"-{language}"):
            return language
    return None


# -------------------------------------------------------------- mining


def _bump(stats: dict[str, Any], key: str, n: int = 1) -> None:
    stats[key] = stats.get(key, 0) + n


def _cap(rows: list[dict[str, str]], limit: int) -> list[dict[str, str]]:
    """At most ``limit`` rows, chosen by id hash: a deterministic sample spread over the repository."""
    if limit <= 0 or len(rows) <= limit:
        return rows
    return sorted(rows, key=lambda r: r["id"])[:limit]


def _head_commit(location: Path, rev: str | None) -> str:
    result = run_git(["rev-parse", "--verify", "--quiet", f"{rev or 'HEAD'}^{{commit}}"], repo=location, check=False,
                     text=True)
    return result.stdout.strip() if result.returncode == 0 else ""


def mine_repository(spec: SourceSpec, config: MineConfig,
                    on_file: Callable[[], None] | None = None) -> tuple[list[dict[str, str]], dict[str, Any]]:
    """Docstring and commit pairs of one repository, after quality rules and the per-repo cap."""
    stats: dict[str, Any] = {"repo": spec.repo, "location": spec.location}
    denied = denied_by_name(spec.repo) or denied_by_name(Path(spec.location).name)
    if denied:
        stats["denied_by_name"] = denied
        return [], stats
    file_filter = FileFilter(max_file_size=config.max_file_size, include_tests=config.include_tests)
    try:
        source = open_source(spec.location, spec.rev or config.rev, file_filter)
    except RepositoryError as exc:
        raise MiningError(str(exc)) from None
    if spec.license is not None:
        v = spec.license
        stats["license"] = {"spdx": v.spdx, "file": v.file, "commit": v.commit, "reason": v.reason}
    rev = spec.rev or config.rev
    head = _head_commit(Path(spec.location), rev)
    origin = f"git:{head}" if head else f"dir:{spec.location}"
    doc_rows: list[dict[str, str]] = []
    try:
        files = source.files()
        stats["files"] = len(files)
        for f in files:
            if on_file:
                on_file()
            data = source.read(f)
            if content_skip_reason(data):
                _bump(stats, "files_skipped_content")
                continue
            for p in docstring_pairs(data, f.language):
                _bump(stats, "documented_functions")
                issue = pair_issue(p.query, p.positive, config.quality)
                if issue:
                    _bump(stats, f"dropped_{issue}")
                    continue
                doc_rows.append(make_row("docstring", spec.repo, f.path, p.name, p.query, p.positive,
                                         f.language, origin))
    finally:
        source.close()
    unique = deduplicate([r["query"] for r in doc_rows], [r["positive"] for r in doc_rows], near_threshold=None)
    _bump(stats, "dropped_exact_duplicate_in_repo", unique.exact)
    doc_rows = [doc_rows[i] for i in unique.keep]
    capped = _cap(doc_rows, config.max_pairs_per_repo)
    _bump(stats, "dropped_repo_cap", len(doc_rows) - len(capped))
    stats["docstring_pairs"] = len(capped)

    commit_rows: list[dict[str, str]] = []
    if config.commits and head:
        commit_cfg = dataclasses.replace(config.commit, rev=head)

        def unusable(cp: CommitPair) -> str | None:
            return query_issue(cp.query, config.quality) or code_issue(cp.positive, config.quality)

        for cp in commit_pairs(Path(spec.location), commit_cfg, file_filter, stats, check=unusable):
            commit_rows.append(make_row("commit", spec.repo, cp.path, cp.name, cp.query, cp.positive,
                                        cp.language, f"commit:{cp.commit}"))
    stats["commit_pairs"] = len(commit_rows)
    return capped + commit_rows, stats


def _first_column(row: dict[str, Any], names: Iterable[str]) -> str | None:
    for name in names:
        value = row.get(name)
        if isinstance(value, str) and value.strip():
            return value
    return None


def iter_hub_rows(dataset_id: str, limit: int) -> Iterator[dict[str, Any]]:
    """Rows of a hub dataset, streamed; a one-line :class:`MiningError` where the hub is out of reach."""
    try:
        from datasets import load_dataset

        stream = load_dataset(dataset_id, split="train", streaming=True)
        for i, row in enumerate(stream):
            if i >= limit:
                break
            yield row
    except MiningError:
        raise
    except Exception as exc:  # noqa: BLE001 - network, auth and format errors all end the source
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise MiningError(f"cannot stream {dataset_id} from the Hugging Face hub: {first}") from None


def mine_hub(spec: SourceSpec, config: MineConfig,
             rows_iter: Iterable[dict[str, Any]] | None = None) -> tuple[list[dict[str, str]], dict[str, Any]]:
    """Pairs from a published dataset (``query`` → query, ``document`` → positive), quality rules applied."""
    dataset_id = spec.location[len(HUB_PREFIX):]
    stats: dict[str, Any] = {"repo": spec.repo, "location": spec.location}
    language = spec.language or "unknown"
    rows: list[dict[str, str]] = []
    for row in rows_iter if rows_iter is not None else iter_hub_rows(dataset_id, config.hub_limit):
        _bump(stats, "hub_rows")
        query, positive = _first_column(row, _HUB_QUERY_COLUMNS), _first_column(row, _HUB_CODE_COLUMNS)
        if query is None or positive is None:
            _bump(stats, "dropped_missing_columns")
            continue
        repo = str(row.get("repo") or row.get("repository") or dataset_id)
        if repo != dataset_id and denied_by_name(repo):
            _bump(stats, "dropped_denied_repo")
            continue
        issue = pair_issue(query, positive, config.quality)
        if issue:
            _bump(stats, f"dropped_{issue}")
            continue
        rows.append(make_row("docstring", repo, str(row.get("path") or ""), str(row.get("func_name") or ""),
                             query, positive, str(row.get("language") or language), spec.location))
    stats["docstring_pairs"] = len(rows)
    return rows, stats


# -------------------------------------------------------------- shards


def _write_shard(shard_dir: Path, name: str, rows: list[dict[str, str]], stats: dict[str, Any]) -> None:
    """Rows then stats, each renamed into place: a shard with a stats file is complete."""
    shard_dir.mkdir(parents=True, exist_ok=True)
    for suffix, payload in ((".jsonl", "".join(json.dumps(r) + "\n" for r in rows)),
                            (".json", json.dumps(stats, indent=1, sort_keys=True))):
        fd, tmp = tempfile.mkstemp(prefix=f".{name}", dir=shard_dir)
        with os.fdopen(fd, "w") as fh:
            fh.write(payload)
        os.replace(tmp, shard_dir / f"{name}{suffix}")


def _read_shard(shard_dir: Path, name: str) -> tuple[list[dict[str, str]], dict[str, Any]] | None:
    stats_path = shard_dir / f"{name}.json"
    rows_path = shard_dir / f"{name}.jsonl"
    if not stats_path.is_file() or not rows_path.is_file():
        return None
    with rows_path.open() as fh:
        rows = [json.loads(line) for line in fh if line.strip()]
    return rows, json.loads(stats_path.read_text())


def work_dir_for(out: str | Path) -> Path:
    out = Path(out)
    return out.with_name(out.name + ".work")


# ------------------------------------------------------------ assembly


@dataclass
class MineResult:
    rows: list[dict[str, str]]
    stats: dict[str, Any]


def assemble(shards: list[tuple[list[dict[str, str]], dict[str, Any]]], config: MineConfig,
             benchmark: BenchmarkHashes | None) -> MineResult:
    """Merge shards, de-duplicate within each kind, drop benchmark-overlapping positives; count everything."""
    rows = [r for shard_rows, _ in shards for r in shard_rows]
    totals: dict[str, Any] = {}
    for _, s in shards:
        for key, value in s.items():
            if isinstance(value, int) and (key.startswith(("dropped_", "commit_skipped_")) or key in (
                    "documented_functions", "files", "files_skipped_content", "commits_used", "commits_used_fault",
                    "hub_rows")):
                _bump(totals, key, value)
    stats: dict[str, Any] = {"before_dedup": len(rows)}
    kept: list[dict[str, str]] = []
    for kind in ("docstring", "commit"):
        group = [r for r in rows if r["kind"] == kind]
        result = deduplicate([r["query"] for r in group], [r["positive"] for r in group],
                             near_threshold=config.near_dup_threshold)
        totals[f"dropped_exact_duplicate_{kind}"] = result.exact
        totals[f"dropped_near_duplicate_{kind}"] = result.near
        kept.extend(group[i] for i in result.keep)
    if benchmark is not None:
        before = len(kept)
        kept = [r for r in kept if code_hash(r["positive"]) not in benchmark]
        totals["dropped_benchmark_overlap"] = before - len(kept)
        stats["benchmark_repos"] = benchmark.repos
        stats["benchmark_function_hashes"] = len(benchmark.hashes)
    stats["drop_reasons"] = dict(sorted(totals.items()))
    stats["pairs"] = len(kept)
    by_language: dict[str, dict[str, int]] = {}
    for r in kept:
        entry = by_language.setdefault(r["language"], {"docstring": 0, "commit": 0})
        entry[r["kind"]] += 1
    stats["pairs_by_language"] = dict(sorted(by_language.items()))
    stats["pairs_by_kind"] = {k: sum(v[k] for v in by_language.values()) for k in ("docstring", "commit")}
    stats["denied_repos"] = {s["repo"]: s["denied_by_name"] for _, s in shards if s.get("denied_by_name")}
    stats["sources"] = {s["repo"]: {k: v for k, v in s.items() if k not in ("repo",)} for _, s in shards}
    return MineResult(kept, stats)


def run_mine(config: MineConfig, out: str | Path, overwrite: bool = False,
             progress: Callable[[str, int, int], None] | None = None) -> dict[str, Any]:
    """Mine every source (reusing finished shards), assemble, and save the stage to ``out``.

    ``progress(source, index, total)`` is called before each source. Returns
    the stats written to ``stats.json``.
    """
    from datasets import Dataset

    from cornstack_train.data.records import save_stage

    plan = plan_sources(config)
    specs = plan.specs
    if not specs:
        refused = f" ({len(plan.licence_refused)} refused by the licence gate)" if plan.licence_refused else ""
        raise MiningError(f"no sources: give repository paths, --sources-dir, --repos-list or hub:<dataset id>"
                          f"{refused}")
    benchmark = None
    shard_dir = work_dir_for(out) / "shards"
    if config.benchmark_repos_dir:
        benchmark = BenchmarkHashes.from_repos_dir(config.benchmark_repos_dir, work_dir_for(out) / "benchmark-hashes")
    key = config.shard_key()
    shards = []
    errors: dict[str, str] = {}
    reused = 0
    for i, spec in enumerate(specs):
        if progress:
            progress(spec.repo, i, len(specs))
        log.info("mine: [%d/%d] %s", i + 1, len(specs), spec.repo)
        name = f"{spec.shard_name}-{key}"
        found = _read_shard(shard_dir, name)
        if found is not None:
            shards.append(found)
            reused += 1
            continue
        try:
            rows, stats = mine_hub(spec, config) if spec.is_hub else mine_repository(spec, config)
        except MiningError as exc:
            log.error("%s", exc)
            errors[spec.location] = str(exc)
            continue
        _write_shard(shard_dir, name, rows, stats)
        shards.append((rows, stats))
    if errors and not shards:
        raise MiningError(next(iter(errors.values())))
    result = assemble(shards, config, benchmark)
    stats = {"stage": "mine", "config": dataclasses.asdict(config), "errors": errors,
             "shards_reused": reused, **result.stats,
             "licence_refused": dict(sorted(plan.licence_refused.items()))}
    stats["denied_repos"] = dict(sorted({**plan.denied, **stats.get("denied_repos", {})}.items()))
    stats["licenses"] = {s["repo"]: s["license"]["spdx"] for _, s in shards if s.get("license")}
    columns = {c: [r[c] for r in result.rows] for c in PAIR_COLUMNS}
    save_stage(Dataset.from_dict(columns), out, stats, overwrite=overwrite)
    return stats
