"""SWE-bench instances and repositories: local files or the hub, local repos or a clone."""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from indexer.errors import LocalizerError
from indexer.git.runner import run_git

log = logging.getLogger(__name__)

HUB_DATASET = "princeton-nlp/SWE-bench_Lite"


@dataclass(frozen=True)
class Instance:
    instance_id: str
    repo: str  # owner/name
    base_commit: str
    problem_statement: str
    patch: str

    @property
    def repo_dir_name(self) -> str:
        return self.repo.replace("/", "__")


def _from_records(records: Iterable[dict]) -> list[Instance]:
    instances = []
    for record in records:
        try:
            instances.append(
                Instance(
                    instance_id=record["instance_id"],
                    repo=record["repo"],
                    base_commit=record["base_commit"],
                    problem_statement=record["problem_statement"],
                    patch=record["patch"],
                )
            )
        except KeyError as exc:
            raise LocalizerError(f"dataset record is missing the field {exc.args[0]!r}") from None
    return instances


def load_instances(source: str, split: str = "test") -> list[Instance]:
    """A local .jsonl/.json/.parquet file, or a Hugging Face dataset id."""
    path = Path(source).expanduser()
    if path.exists():
        if path.suffix == ".parquet":
            import datasets

            return _from_records(datasets.Dataset.from_parquet(str(path)))
        text = path.read_text()
        if path.suffix == ".json":
            payload = json.loads(text)
            return _from_records(payload if isinstance(payload, list) else payload["instances"])
        return _from_records(json.loads(line) for line in text.splitlines() if line.strip())
    if source.endswith((".jsonl", ".json", ".parquet")) or "/" not in source:
        raise LocalizerError(f"dataset file does not exist: {source}")
    try:
        import datasets

        return _from_records(datasets.load_dataset(source, split=split))
    except Exception as exc:  # noqa: BLE001 - offline hubs fail in many ways
        raise LocalizerError(
            f"could not load dataset {source!r} from the Hugging Face hub ({type(exc).__name__}); "
            "pass a local file instead, e.g. --data ../shared/data/swe-bench-lite.jsonl"
        ) from exc


def load_ids(path: str | Path) -> list[str]:
    path = Path(path)
    if not path.exists():
        raise LocalizerError(f"ids file does not exist: {path}")
    return [line.strip() for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")]


def ensure_repos(instances: Iterable[Instance], repos_dir: Path, clone: bool = True) -> dict[str, Path]:
    """Map each repo to a local git dir; clone the missing ones where the network allows."""
    found: dict[str, Path] = {}
    missing: list[str] = []
    for repo in sorted({i.repo for i in instances}):
        path = repos_dir / repo.replace("/", "__")
        if path.exists():
            found[repo] = path.resolve()
            continue
        if clone:
            try:
                log.warning("cloning %s into %s", repo, path)
                # No credential prompt: a repository that is gone must fail, not wait for a password.
                run_git(["clone", "--bare", f"https://github.com/{repo}.git", str(path)],
                        env={**os.environ, "GIT_TERMINAL_PROMPT": "0"})
                found[repo] = path
                continue
            except LocalizerError as exc:  # git's one-line error: network, missing repository, no git
                log.warning("could not clone %s: %s", repo, exc)
        missing.append(repo)
    if missing:
        names = ", ".join(r.replace("/", "__") for r in missing)
        raise LocalizerError(f"missing repositories in {repos_dir}: {names} (a bare git dir or clone per repo)")
    return found
