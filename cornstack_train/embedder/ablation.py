"""The paper-style ablation: which step of the recipe earns its keep, measured on the same footing.

Every variant trains from the same base model for the same number of steps with
the same batch, learning rate, sequence length and seeds; only the switch it
names differs. They are then scored together: held-out MRR@10 / Recall@1/10
(one `eval` call, so one held-out set) and, when given a benchmark, SWE-bench
function Acc@10 and file Acc@3 (one harness run, beside the base model). With
several seeds every figure is the mean over seeds with a 95% bootstrap interval
over queries (instances), and each variant's difference from ``full`` gets a
paired interval (``bootstrap``): a 60-step, one-seed ablation on 13 instances
could not tell the variants apart, so the table now says when it cannot.
Finished variants are reused, so an interrupted ablation resumes at the first
variant without a model.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from indexer.storage.atomic import atomic_write_text

from cornstack_train.data.records import StageError


@dataclass(frozen=True)
class Variant:
    """One row of the table: the stage it trains on and the TrainConfig fields it changes."""

    name: str
    description: str
    stage: str = "negatives"  # "negatives" (filtered, with mined candidates) or "unfiltered" (no filter)
    overrides: Mapping[str, Any] = field(default_factory=dict)


VARIANTS: dict[str, Variant] = {v.name: v for v in (
    Variant("full", "filter + softmax-sampled hard negatives + τ curriculum (CoRNStack)"),
    Variant("no-curriculum", "τ fixed at --tau-start", overrides={"schedule": "constant"}),
    Variant("negatives-top", "always the k highest-scoring candidates", overrides={"negatives": "top"}),
    Variant("negatives-random", "k random corpus rows", overrides={"negatives": "random"}),
    Variant("negatives-none", "in-batch negatives only", overrides={"negatives": "none"}),
    # Given the `negatives` stage run on the unfiltered pairs (``unfiltered_dir``), the no-filter
    # variant is the full recipe without the filter. Without it, it trains on the mined stage, which
    # has no candidate lists, so with random negatives: compare it with negatives-random then.
    Variant("no-filter", "the full recipe on the unfiltered pairs (no dual consistency filter)", stage="unfiltered"),
)}
NO_FILTER_FALLBACK = "unfiltered mined pairs, random negatives (compare: negatives-random)"
DEFAULT_VARIANTS = tuple(VARIANTS)


@dataclass(frozen=True)
class AblationConfig:
    negatives_dir: Path  # the `negatives` stage (filtered pairs with candidates)
    mined_dir: Path  # the `mine` stage: the no-filter variant trains on it, and eval scores on it
    out: Path
    train: Any  # a TrainConfig: the shared settings (data/out are set per variant)
    variants: tuple[str, ...] = DEFAULT_VARIANTS
    eval_max_queries: int | None = 1000
    eval_max_seq_length: int | None = 256
    harness: Any | None = None  # a HarnessRunConfig (models/out set here), or None to skip SWE-bench
    nproc: int = 1  # data-parallel training processes per variant (train.batch_size stays the global batch)
    seeds: tuple[int, ...] = ()  # () = just train.seed; several: each variant trains once per seed
    unfiltered_dir: Path | None = None  # the `negatives` stage over the unfiltered pairs (the no-filter variant)
    eval_dir: Path | None = None  # the stage eval scores on (default mined_dir, split by train.split)
    resamples: int = 2000  # bootstrap resamples per interval

    def __post_init__(self) -> None:
        unknown = [v for v in self.variants if v not in VARIANTS]
        if unknown:
            raise ValueError(f"unknown variant(s) {', '.join(unknown)}; choose from {', '.join(VARIANTS)}")
        if not self.variants:
            raise ValueError("no variants to run")
        if len(set(self.seed_list)) != len(self.seed_list):
            raise ValueError("--seed values must differ")
        if self.nproc > 1:
            from cornstack_train.embedder.launch import per_process_config

            per_process_config(self.train, self.nproc)  # fails now, not after the first variant


    @property
    def seed_list(self) -> tuple[int, ...]:
        return tuple(self.seeds) or (self.train.seed,)


def effective_variant(config: AblationConfig, variant: Variant) -> Variant:
    """The no-filter variant falls back to the mined pairs with random negatives when there is no
    unfiltered `negatives` stage; every other variant is what it says."""
    if variant.stage == "unfiltered" and config.unfiltered_dir is None:
        return Variant(variant.name, NO_FILTER_FALLBACK, stage="mined", overrides={"negatives": "random"})
    return variant


def run_label(config: AblationConfig, variant: Variant, seed: int) -> str:
    """A variant's label in eval and harness output: its name, plus the seed when there are several."""
    return variant.name if len(config.seed_list) == 1 else f"{variant.name}-s{seed}"


def variant_train_config(config: AblationConfig, variant: Variant, seed: int | None = None):
    """The shared TrainConfig with this variant's stage, output directory, switches and seed."""
    variant = effective_variant(config, variant)
    seed = config.seed_list[0] if seed is None else seed
    data = {"negatives": config.negatives_dir, "unfiltered": config.unfiltered_dir, "mined": config.mined_dir}[
        variant.stage]
    out = Path(config.out) / "variants" / run_label(config, variant, seed)
    return dataclasses.replace(config.train, data=Path(data), out=out, seed=seed, resume=False, overwrite=False,
                               **dict(variant.overrides))


def _trained(out: Path) -> bool:
    return (out / "train_stats.json").is_file() and any((out / sub).is_dir() for sub in ("model", "delta", "static"))


def run_ablation(config: AblationConfig, train_fn: Callable | None = None, eval_fn: Callable | None = None,
                 harness_fn: Callable | None = None, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Train the missing variants, score them all, write ``ablation.json`` and ``ablation.md``.

    The three callables default to the real stages; tests inject tiny ones.
    """
    from cornstack_train.embedder.evaluation import EvalConfig, evaluate, run_harness
    from cornstack_train.embedder.launch import train_in_processes

    if train_fn is None:
        def train_fn(cfg):
            return train_in_processes(cfg, config.nproc)
    eval_fn, harness_fn = eval_fn or evaluate, harness_fn or run_harness
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    variants = [VARIANTS[name] for name in config.variants]
    runs = [(variant, seed, run_label(config, variant, seed)) for variant in variants for seed in config.seed_list]
    for variant, seed, label in runs:
        cfg = variant_train_config(config, variant, seed)
        if _trained(cfg.out):
            log(f"ablation: {label} already trained, reused")
            continue
        if (cfg.out / "checkpoints").is_dir():
            cfg = dataclasses.replace(cfg, resume=True)
        log(f"ablation: training {label} ({effective_variant(config, variant).description})")
        train_fn(cfg)
    model_specs = tuple(f"{label}={variant_train_config(config, v, seed).out}" for v, seed, label in runs)
    # "base" is the untrained start: the packaged MiniLM, or the model every variant starts from.
    base = "base" if config.train.model is None else f"base={config.train.model}"
    eval_report = eval_fn(EvalConfig(data=Path(config.eval_dir or config.mined_dir), out=out / "eval",
                                     models=(base, *model_specs), split=config.train.split,
                                     max_queries=config.eval_max_queries, max_seq_length=config.eval_max_seq_length,
                                     device=config.train.device))
    harness_metrics = harness_items = None
    if config.harness is not None:
        harness_cfg = dataclasses.replace(config.harness, models=model_specs, out=out / "harness")
        harness_metrics = harness_fn(harness_cfg)
        harness_items = _harness_items(out / "harness" / "diagnostics.jsonl", _retriever_of(config.harness))
    labels = {variant.name: [label for v, _, label in runs if v is variant] for variant in variants}
    effective = {v.name: effective_variant(config, v) for v in variants}
    report = {
        "variants": {name: {"description": e.description, "stage": e.stage, "overrides": dict(e.overrides),
                            "runs": labels[name]}
                     for name, e in effective.items()},
        "seeds": list(config.seed_list),
        "train": json.loads(json.dumps(dataclasses.asdict(config.train), default=str)),
        "eval": {label: {k: v for k, v in result.items() if k != "ranks"}
                 for label, result in eval_report.get("results", eval_report).items()},
        "heldout": eval_report.get("heldout"),
        "harness": _harness_rows(harness_metrics, ["base", *[label for _, _, label in runs]],
                                 _retriever_of(config.harness)) if harness_metrics else None,
        "intervals": intervals(eval_report.get("results", {}), harness_items, labels, config.resamples),
    }
    atomic_write_text(out / "ablation.json", json.dumps(report, indent=2) + "\n")
    atomic_write_text(out / "ablation.md", ablation_table(report))
    return report


def _retriever_of(harness: Any | None) -> str:
    """The retriever whose figures the table reports: the first the harness ran (dense by default)."""
    retrievers = tuple(getattr(harness, "retrievers", ()) or ("dense",))
    return retrievers[0]


def _harness_items(diagnostics: Path, retriever: str) -> dict[str, dict[str, list[float | None]]] | None:
    """Per-instance Acc (function@10, file@3) per label, read from the harness's ``diagnostics.jsonl``
    (the harness visits the instances in the same order for every system, so lists pair up by index)."""
    from cornstack_train.embedder.bootstrap import hits_from_gold_ranks

    if not diagnostics.is_file():
        return None
    rows: dict[str, dict[str, list[float | None]]] = {}
    for line in diagnostics.read_text().splitlines():
        record = json.loads(line)
        system, _, label = str(record.get("system", "")).partition("@")
        if system != retriever or not label:
            continue
        item = rows.setdefault(label, {"functions@10": [], "files@3": []})
        item["functions@10"].append(hits_from_gold_ranks(record.get("gold_ranks", {}), "functions", 10))
        item["files@3"].append(hits_from_gold_ranks(record.get("gold_ranks", {}), "files", 3))
    return rows


def intervals(eval_results: Mapping[str, Any], harness_items: Mapping[str, Any] | None,
              labels: Mapping[str, Sequence[str]], resamples: int) -> dict[str, dict[str, str]]:
    """Per variant: each metric's seed mean with a 95% bootstrap interval, and its paired difference
    from ``full`` (when ``full`` ran), as display strings (MRR x100, Acc in points)."""
    from cornstack_train.embedder.bootstrap import bootstrap_mean, paired_difference, reciprocal_ranks, seed_mean

    def per_item(variant: str) -> dict[str, Any]:
        items: dict[str, Any] = {}
        runs = labels[variant]
        if all(label in eval_results and "ranks" in eval_results[label] for label in runs):
            items["mrr@10"] = seed_mean([reciprocal_ranks(eval_results[label]["ranks"]) for label in runs])
        if harness_items and all(label in harness_items for label in runs):
            for metric in ("functions@10", "files@3"):
                columns = [harness_items[label][metric] for label in runs]
                scored = [i for i, value in enumerate(columns[0]) if value is not None]
                items[metric] = seed_mean([[column[i] for i in scored] for column in columns])
        return items

    scores = {variant: per_item(variant) for variant in labels}
    out: dict[str, dict[str, str]] = {}
    for variant, items in scores.items():
        row: dict[str, str] = {}
        for metric, values in items.items():
            row[metric] = bootstrap_mean(values, resamples).format(scale=100)
            reference = scores.get("full", {}).get(metric)
            if variant != "full" and reference is not None and len(reference) == len(values):
                delta = paired_difference(values, reference, resamples)
                row[f"{metric} vs full"] = delta.format(scale=100) + ("" if delta.excludes_zero() else " (n.s.)")
        out[variant] = row
    return out


def _harness_rows(metrics: Mapping[str, Any], labels: Sequence[str], retriever: str = "dense"
                  ) -> dict[str, dict[str, float]]:
    """One retriever's figures per label out of the harness's ``{system: {"all": {...}}}``."""
    rows: dict[str, dict[str, float]] = {}
    for system, values in metrics.items():
        if system.partition("@")[0] != retriever:
            continue
        label = system.partition("@")[2] or "base"
        label = "base" if label not in labels else label
        overall = values.get("all", values)
        rows[label] = {key: overall[key] for key in ("functions@10", "functions@5", "files@3", "instances")
                       if key in overall}
    return rows


def ablation_table(report: Mapping[str, Any]) -> str:
    """Markdown: one row per model, the base first, then the variants in the order they ran; each
    variant's figures are the mean over its seeds. With intervals, a second table gives each
    metric's 95% bootstrap interval and its paired difference from ``full``."""
    harness = report.get("harness") or {}
    header = "| model | what changes | held-out MRR@10 | Recall@1 | Recall@10 |"
    rule = "|---|---|---|---|---|"
    if harness:
        header += " SWE-bench function@10 | file@3 |"
        rule += "---|---|"
    lines = [header, rule]
    for label in ["base", *report["variants"]]:
        runs = [label] if label == "base" else report["variants"][label].get("runs", [label])
        evals = [report["eval"].get(run) for run in runs]
        if any(ev is None for ev in evals):
            raise StageError(f"no eval results for {label!r}")
        what = ("the untrained starting model" if label == "base" else report["variants"][label]["description"])
        mean = {key: sum(ev[key] for ev in evals) / len(evals) for key in ("mrr@10", "recall@1", "recall@10")}
        row = f"| {label} | {what} | {mean['mrr@10']:.4f} | {mean['recall@1']:.4f} | {mean['recall@10']:.4f} |"
        if harness:
            cells = [harness.get(run, {}) for run in runs]
            row += "".join(f" {_pct(_mean([c.get(key) for c in cells]))} |" for key in ("functions@10", "files@3"))
        lines.append(row)
    held = report.get("heldout") or {}
    if held:
        lines.append("")
        lines.append(f"Held-out: {held.get('queries')} queries over {held.get('corpus')} codes from "
                     f"{len(held.get('repos', []))} repositories never trained on. "
                     f"Seeds: {', '.join(str(s) for s in report.get('seeds', [])) or 'one'}.")
    spans = report.get("intervals") or {}
    if any(spans.values()):
        metrics = [m for m in ("mrr@10", "functions@10", "files@3") if any(m in row for row in spans.values())]
        lines += ["", "95% bootstrap intervals (resampling queries/instances, seeds averaged first; MRR x100), "
                      "and each variant's paired difference from full ((n.s.): the interval contains 0):", ""]
        lines.append("| variant | " + " | ".join(f"{m} | {m} vs full" for m in metrics) + " |")
        lines.append("|---|" + "---|---|" * len(metrics))
        for variant, row in spans.items():
            lines.append(f"| {variant} | " + " | ".join(f"{row.get(m, '')} | {row.get(m + ' vs full', '')}"
                                                       for m in metrics) + " |")
    return "\n".join(lines) + "\n"


def _mean(values: Sequence[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return sum(present) / len(present) if len(present) == len(values) and present else None


def _pct(value: float | None) -> str:
    return "" if value is None else f"{value:.1f}"
