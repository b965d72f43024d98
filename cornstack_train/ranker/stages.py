"""Click commands for the learned ranker: ``ranker-data`` (rows from repository histories) and ``ranker-fit``.

    cornstack-train ranker-data --repos-list docs/history-repos.json --repos-dir train-repos --out data/ranker
    cornstack-train ranker-fit data/ranker --out models/ranker [--install]

``--install`` copies the fitted ranker and its card into the package (localizer/models/ranker),
where ``localize --ranker learned`` (the default once it ships) reads it.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from pathlib import Path

import click

from indexer.history.build import HistoryConfig
from indexer.index import IndexConfig
from indexer.storage.atomic import atomic_write_json, atomic_write_text

from localizer.config import LocalizeConfig
from localizer.learned.features import FILE_FEATURES, FUNCTION_FEATURES
from localizer.learned.shipped import SHIPPED_RANKER

from cornstack_train.data.denylist import denied_by_name
from cornstack_train.data.licenses import gate, load_repo_list
from cornstack_train.errors import StageCommand, TrainingError
from cornstack_train.ranker.dataset import TrainingRepo, build_rows, load_rows
from cornstack_train.ranker.fit import FitConfig, data_digest, fit_ranker
from cornstack_train.ranker.mining import MiningConfig

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}
_DIR = click.Path(file_okay=False, path_type=Path)


def training_repos(lists: tuple[Path, ...], repos_dir: Path, languages: tuple[str, ...],
                   names: tuple[str, ...]) -> list[TrainingRepo]:
    """The corpus: entries of the repository lists (docs/*-repos.json: repo, language, head, license)
    in ``languages`` (all when empty), not denied, on disk, and permissive by the licence gate, which
    reads the licence at the pinned commit (cornstack_train/data/licenses.py): the rule for weights
    that ship (DEVELOPERS.md)."""
    candidates = []
    for listing in lists:
        for entry in load_repo_list(listing):
            if (names and entry.dir_name not in names) or (languages and entry.language not in languages):
                continue
            reason = denied_by_name(entry.repo)
            if reason:
                click.echo(f"skipping {entry.repo}: denied ({reason})", err=True)
                continue
            candidates.append(entry)
    result = gate(candidates, repos_dir)
    for verdict in result.refused:
        click.echo(f"skipping {verdict.repo}: {verdict.reason}", err=True)
    found = {kept.entry.dir_name: TrainingRepo(kept.path, kept.entry.dir_name, kept.entry.head, kept.verdict.spdx)
             for kept in result.kept}
    if not found:
        raise TrainingError(f"no usable repositories in {', '.join(map(str, lists))} under {repos_dir}")
    return sorted(found.values(), key=lambda r: r.name)


def corpus_options(func):
    """The options :func:`training_repos` reads: the lists, where their clones are, and which to take."""
    func = click.option("--repo", "names", multiple=True, help="Only this owner__name (repeatable).")(func)
    func = click.option("--language", "languages", multiple=True,
                        help="Only repositories of this language (repeatable).")(func)
    func = click.option("--repos-dir", type=click.Path(exists=True, file_okay=False, path_type=Path), required=True,
                        help="Directory of their git clones, named owner__name (work trees or bare).")(func)
    return click.option("--repos-list", "lists", multiple=True, required=True,
                        type=click.Path(exists=True, dir_okay=False, path_type=Path),
                        help="Repository list with pinned commits and licences (docs/history-repos.json); "
                             "repeatable.")(func)


@click.command("ranker-data", cls=StageCommand, context_settings=CONTEXT)
@corpus_options
@click.option("--max-repos", type=click.IntRange(min=1), default=None,
              help="Only the first N usable repositories, in name order (a smaller corpus, reproducibly).")
@click.option("--out", "-o", type=_DIR, required=True, help="Output: one .npz and one .json per repository.")
@click.option("--index-dir", type=_DIR, default=None, help="Index cache to use [default: OUT/index].")
@click.option("--history-commits", type=click.IntRange(min=1), default=HistoryConfig.max_commits, show_default=True,
              help="History window per snapshot (as localize's --history-commits).")
def ranker_data_command(lists, repos_dir, languages, names, max_repos, out, index_dir, history_commits) -> None:
    """Mine commit-message queries from repository histories and featurize them with the pipeline.

    Each repository is indexed at a few past snapshots; the commits after each snapshot are the
    queries, what they changed the labels. Resumable: finished repositories are skipped.
    """
    config = LocalizeConfig(index=IndexConfig(index_dir=index_dir or out / "index"), ranker="boosts",
                            history=HistoryConfig(max_commits=history_commits))
    repos = training_repos(lists, repos_dir, languages, names)[:max_repos]
    started = time.perf_counter()
    for done, (name, queries) in enumerate(build_rows(repos, out / "rows", config, MiningConfig()), 1):
        click.echo(f"[{done}] {name}: {queries} queries ({time.perf_counter() - started:.0f} s)", err=True)


@click.command("ranker-fit", cls=StageCommand, context_settings=CONTEXT)
@click.argument("data", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--out", "-o", type=_DIR, required=True, help="Output: ranker.json, report.json and README.md.")
@click.option("--trees", type=click.IntRange(min=1), default=FitConfig.trees, show_default=True)
@click.option("--holdout", type=click.FloatRange(0, 0.9), default=FitConfig.holdout, show_default=True,
              help="Share of repositories held out for the report.")
@click.option("--seed", type=int, default=FitConfig.seed, show_default=True)
@click.option("--install", is_flag=True, help=f"Also install the ranker into the package ({SHIPPED_RANKER.parent}).")
def ranker_fit_command(data, out, trees, holdout, seed, install) -> None:
    """Fit the LambdaRank ranker on ranker-data's rows; report held-out repositories; export JSON."""
    rows = data / "rows" if (data / "rows").is_dir() else data
    arrays, facts = load_rows(rows)
    if not facts:
        raise TrainingError(f"no ranker rows under {rows}")
    config = FitConfig(trees=trees, holdout=holdout, seed=seed)
    model, report = fit_ranker(arrays, facts, config)
    card = {"data": {"rows": str(rows), "sha256": data_digest(rows), "repositories": len({f["repo"] for f in facts}),
                     "queries": len(facts)},
            "fit": {k: getattr(config, k) for k in config.__dataclass_fields__}, "heldout": report}
    model = type(model)(model.levels, card)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "ranker.json", model.to_json())
    atomic_write_json(out / "report.json", report)
    digest = hashlib.sha256((out / "ranker.json").read_bytes()).hexdigest()
    atomic_write_text(out / "README.md", model_card(card, digest))
    if install:
        SHIPPED_RANKER.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(out / "ranker.json", SHIPPED_RANKER)
        shutil.copyfile(out / "README.md", SHIPPED_RANKER.parent / "README.md")
    click.echo(json.dumps({level: {k: v for k, v in r.items() if k != "importance"}
                           for level, r in report["levels"].items()}, indent=1))


def model_card(card: dict, model_sha256: str) -> str:
    lines = ["# localizer learned ranker", "", f"`ranker.json` sha256 {model_sha256}", "",
             "LightGBM LambdaRank over every signal of the pipeline (localizer/learned/features.py), fitted by",
             "`cornstack-train ranker-fit` on commit-message queries mined from the histories of the training",
             "repositories (`cornstack-train ranker-data`; docs/history.md lists them with pinned commits).",
             "", f"- rows: {card['data']['queries']} queries from {card['data']['repositories']} repositories, "
                 f"sha256 {card['data']['sha256'][:16]}",
             f"- fit: {json.dumps(card['fit'])}",
             f"- file features: {', '.join(FILE_FEATURES)}",
             f"- function features: {', '.join(FUNCTION_FEATURES)}",
             f"- held out: {', '.join(card['heldout']['heldout_repos'])}",
             "", "## Held-out repositories (acc@k: every changed item in the top k)", ""]
    for level, report in card["heldout"]["levels"].items():
        lines += [f"### {level}", "", "| ranker | acc@1 | acc@3 | acc@5 | acc@10 | MRR@10 | queries |", "|---|---|---|---|---|---|---|"]
        for name in ("retriever", "boosts", "learned, no history", "learned, history"):
            m = report[name]
            if m:
                lines.append(f"| {name} | {m['acc@1']} | {m['acc@3']} | {m['acc@5']} | {m['acc@10']} | {m['mrr@10']} | {m['queries']} |")
        top = ", ".join(f"{k} {v}" for k, v in list(report["importance"].items())[:8])
        lines += ["", f"Splits per feature (top 8): {top}", ""]
    return "\n".join(lines) + "\n"
