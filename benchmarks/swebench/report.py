"""Metrics, tables and plots from a harness run's predictions (re-computable at any time).

The plot needs matplotlib, which only the ``bench`` extra installs: without it
the numbers are all still written and the plot is skipped with a note (on
stderr and in ``metrics.md``), because losing a whole run's report at the very
end to a missing plotting library is the worse failure.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Iterable

from indexer.storage.atomic import atomic_write_bytes, atomic_write_json

FILE_KS = (1, 3, 5)
FUNCTION_KS = (5, 10)
CURVE_KS = tuple(range(1, 21))
RANKINGS = ("files", "files_from_functions", "functions")
PLOT_SKIPPED = "acc_at_k.png not drawn: matplotlib is not installed (pip install 'cornstack-localizer[bench]')"

log = logging.getLogger("localizer.bench")


def _hit(ranks: dict[str, int | None], k: int) -> bool:
    """The CoRNStack rule: a hit only if ALL gold items are within the top k."""
    return bool(ranks) and all(rank is not None and rank <= k for rank in ranks.values())


def accuracy(records: Iterable[dict], ranking: str, k: int) -> tuple[float, int]:
    """(percentage, number of instances counted); instances without gold for this level are skipped."""
    counted = [r for r in records if r["gold_ranks"][ranking]]
    if not counted:
        return 0.0, 0
    hits = sum(_hit(r["gold_ranks"][ranking], k) for r in counted)
    return round(100.0 * hits / len(counted), 1), len(counted)


PAIRED = (("files", 1), ("files", 3), ("files", 5), ("functions", 5), ("functions", 10))


def paired(records: list[dict], reference: str, system: str) -> dict[str, tuple[int, int]]:
    """(wins, losses) of ``system`` against ``reference`` per metric: instances only one of them hits.

    Only instances both systems ranked, with gold at that level, count; a gain that is all wins and no
    losses and one that trades 20 wins for 15 losses read the same in a plain accuracy.
    """
    by_id = {(r["instance_id"], r["system"]): r for r in records}
    out = {}
    for ranking, k in PAIRED:
        wins = losses = 0
        for (instance, name), mine in by_id.items():
            theirs = by_id.get((instance, reference))
            if name != system or theirs is None or not mine["gold_ranks"][ranking]:
                continue
            a, b = _hit(mine["gold_ranks"][ranking], k), _hit(theirs["gold_ranks"][ranking], k)
            wins += a and not b
            losses += b and not a
        out[f"{ranking}@{k}"] = (wins, losses)
    return out


def reference_of(system: str, systems: list[str]) -> str:
    """What a system is paired against: itself without history (``bm25`` -> ``bm25:nohist``) when the
    run has that, else the first system listed."""
    base, _, flags = system.partition(":")
    sibling = f"{base}:nohist"
    return sibling if sibling in systems and sibling != system and not flags else systems[0]


def paired_table(records: list[dict], systems: list[str]) -> str:
    """Wins / losses per metric of every system against its reference (:func:`reference_of`)."""
    if len(systems) < 2:
        return ""
    header = [f"{ranking.replace('functions', 'function').replace('files', 'file')}@{k}" for ranking, k in PAIRED]
    lines = ["### Paired wins / losses", "", "| system | against | " + " | ".join(header) + " |",
             "|---|---|" + "---|" * len(header)]
    for system in systems:
        reference = reference_of(system, systems)
        if reference == system:
            continue
        counts = paired(records, reference, system)
        lines.append(f"| {system} | {reference} | " + " | ".join(f"{w} / {l}" for w, l in counts.values()) + " |")
    return "\n".join(lines) + "\n"


def load_predictions(path: Path) -> list[dict]:
    latest: dict[tuple[str, str], dict] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue
            latest[(record["instance_id"], record["system"])] = record
    return list(latest.values())


def compute_metrics(records: list[dict], systems: list[str], protocol_ids: set[str] | None) -> dict:
    subsets = {"all": None}
    if protocol_ids:
        subsets["cornstack274"] = protocol_ids
    metrics: dict = {}
    for system in systems:
        mine = [r for r in records if r["system"] == system]
        metrics[system] = {}
        for subset, ids in subsets.items():
            chosen = [r for r in mine if ids is None or r["instance_id"] in ids]
            entry: dict = {"instances": len(chosen)}
            for ranking, ks in (("files", FILE_KS), ("files_from_functions", FILE_KS), ("functions", FUNCTION_KS)):
                for k in ks:
                    value, n = accuracy(chosen, ranking, k)
                    entry[f"{ranking}@{k}"] = value
                entry[f"{ranking}_n"] = accuracy(chosen, ranking, 1)[1]
            entry["curves"] = {
                ranking: [accuracy(chosen, ranking, k)[0] for k in CURVE_KS] for ranking in ("files", "functions")
            }
            metrics[system][subset] = entry
    return metrics


def markdown_table(metrics: dict, run_info: dict | None) -> str:
    lines = []
    for subset in ("all", "cornstack274"):
        rows = [(s, m[subset]) for s, m in metrics.items() if subset in m]
        if not rows:
            continue
        title = "All instances" if subset == "all" else "CoRNStack 274 subset"
        lines += [
            f"### {title}",
            "",
            "| system | n | file@1 | file@3 | file@5 | file@1 (via fn) | file@3 (via fn) | file@5 (via fn) | n (fn) | function@5 | function@10 |",
            "|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for system, m in rows:
            lines.append(
                f"| {system} | {m['files_n']} | {m['files@1']} | {m['files@3']} | {m['files@5']} | "
                f"{m['files_from_functions@1']} | {m['files_from_functions@3']} | {m['files_from_functions@5']} | "
                f"{m['functions_n']} | {m['functions@5']} | {m['functions@10']} |"
            )
        lines.append("")
    if run_info:
        cache = run_info["cache"]
        lines += [
            f"Wall time {run_info['wall_seconds']} s for {run_info['instances']} instances "
            f"({run_info['failed']} failed). Parse cache hit rate {cache['parse_hit_rate']}; "
            f"embedding hit rate {cache['embedding_hit_rate']} "
            f"({cache['embedded_chunks']} of {cache['chunk_instances']} chunk-instances encoded).",
            "",
            "| stage | seconds |",
            "|---|---|",
            *(f"| {k} | {v} |" for k, v in run_info["timing_seconds"].items()),
            "",
        ]
    return "\n".join(lines)


def plot_curves(metrics: dict, path: Path) -> bool:
    """Draw the Acc@k curves; False (nothing written) when matplotlib cannot be imported."""
    try:
        import matplotlib
    except ImportError:
        return False

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    for axis, ranking, label in ((axes[0], "files", "File"), (axes[1], "functions", "Function")):
        for system, m in metrics.items():
            axis.plot(CURVE_KS, m["all"]["curves"][ranking], marker="o", markersize=3, label=system)
        axis.set_title(f"{label} localization: Acc@k (all gold items in top k)")
        axis.set_xlabel("k")
        axis.set_xticks([1, 5, 10, 15, 20])
        axis.grid(alpha=0.3)
    axes[0].set_ylabel("accuracy (%)")
    axes[0].set_ylim(0, 100)
    axes[1].legend(loc="lower right")
    figure.tight_layout()
    tmp = path.with_suffix(".tmp.png")
    figure.savefig(tmp, dpi=120)
    plt.close(figure)
    atomic_write_bytes(path, tmp.read_bytes())
    tmp.unlink()
    return True


def write_reports(out: Path, systems: list[str], run_info: dict | None, protocol_ids: set[str] | None) -> dict:
    records = load_predictions(out / "predictions.jsonl")
    systems = [s for s in systems if any(r["system"] == s for r in records)] or sorted({r["system"] for r in records})
    metrics = compute_metrics(records, systems, protocol_ids)
    if run_info is None:
        runs = (out / "runs.jsonl").read_text().splitlines() if (out / "runs.jsonl").exists() else []
        run_info = json.loads(runs[-1]) if runs else None
    atomic_write_json(out / "metrics.json", {"metrics": metrics, "run": run_info})
    markdown = markdown_table(metrics, run_info)
    table = paired_table(records, systems)
    if table:
        markdown = markdown.replace("\nWall time", "\n" + table + "\nWall time", 1) if "\nWall time" in markdown \
            else markdown + "\n" + table
    if metrics and not plot_curves(metrics, out / "acc_at_k.png"):
        log.warning(PLOT_SKIPPED)
        markdown += f"\n{PLOT_SKIPPED}\n"
    atomic_write_bytes(out / "metrics.md", markdown.encode())
    diagnostics = "".join(
        json.dumps({"instance_id": r["instance_id"], "system": r["system"], "gold_ranks": r["gold_ranks"]}) + "\n"
        for r in sorted(records, key=lambda r: (r["instance_id"], r["system"]))
    )
    atomic_write_bytes(out / "diagnostics.jsonl", diagnostics.encode())
    return metrics
