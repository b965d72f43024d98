"""The paper-style ablation: which step of the recipe earns its keep, measured on the same footing.

Every variant trains from the same base model for the same number of steps with
the same batch, learning rate, sequence length and seed; only the switch it
names differs. They are then scored together: held-out MRR@10 / Recall@1/10
(one `eval` call, so one held-out set) and, when given a benchmark, SWE-bench
function Acc@10 and file Acc@3 of the dense retriever (one harness run, beside
the base model). Finished variants are reused, so an interrupted ablation
resumes at the first variant without a model.
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
    stage: str = "negatives"  # "negatives" (filtered, with mined candidates) or "mined" (no filter)
    overrides: Mapping[str, Any] = field(default_factory=dict)


VARIANTS: dict[str, Variant] = {v.name: v for v in (
    Variant("full", "filter + softmax-sampled hard negatives + τ curriculum (CoRNStack)"),
    Variant("no-curriculum", "τ fixed at --tau-start", overrides={"schedule": "constant"}),
    Variant("negatives-top", "always the k highest-scoring candidates", overrides={"negatives": "top"}),
    Variant("negatives-random", "k random corpus rows", overrides={"negatives": "random"}),
    Variant("negatives-none", "in-batch negatives only", overrides={"negatives": "none"}),
    # The mined stage has no candidate lists, so the unfiltered variant can only use random
    # negatives: compare it with negatives-random, which differs from it by the filter alone.
    Variant("no-filter", "unfiltered mined pairs, random negatives (compare: negatives-random)",
            stage="mined", overrides={"negatives": "random"}),
)}
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

    def __post_init__(self) -> None:
        unknown = [v for v in self.variants if v not in VARIANTS]
        if unknown:
            raise ValueError(f"unknown variant(s) {', '.join(unknown)}; choose from {', '.join(VARIANTS)}")
        if not self.variants:
            raise ValueError("no variants to run")
        if self.nproc > 1:
            from cornstack_train.embedder.launch import per_process_config

            per_process_config(self.train, self.nproc)  # fails now, not after the first variant


def variant_train_config(config: AblationConfig, variant: Variant):
    """The shared TrainConfig with this variant's stage, output directory and switches."""
    data = config.negatives_dir if variant.stage == "negatives" else config.mined_dir
    return dataclasses.replace(config.train, data=Path(data), out=Path(config.out) / "variants" / variant.name,
                               resume=False, overwrite=False, **dict(variant.overrides))


def _trained(out: Path) -> bool:
    return (out / "train_stats.json").is_file() and ((out / "model").is_dir() or (out / "delta").is_dir())


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
    for variant in variants:
        cfg = variant_train_config(config, variant)
        if _trained(cfg.out):
            log(f"ablation: {variant.name} already trained, reused")
            continue
        if (cfg.out / "checkpoints").is_dir():
            cfg = dataclasses.replace(cfg, resume=True)
        log(f"ablation: training {variant.name} ({variant.description})")
        train_fn(cfg)
    model_specs = tuple(f"{v.name}={variant_train_config(config, v).out}" for v in variants)
    eval_report = eval_fn(EvalConfig(data=Path(config.mined_dir), out=out / "eval", models=("base", *model_specs),
                                     split=config.train.split, max_queries=config.eval_max_queries,
                                     max_seq_length=config.eval_max_seq_length, device=config.train.device))
    harness_metrics = None
    if config.harness is not None:
        harness_cfg = dataclasses.replace(config.harness, models=model_specs, out=out / "harness")
        harness_metrics = harness_fn(harness_cfg)
    report = {
        "variants": {v.name: {"description": v.description, "stage": v.stage, "overrides": dict(v.overrides)}
                     for v in variants},
        "train": json.loads(json.dumps(dataclasses.asdict(config.train), default=str)),
        "eval": eval_report.get("results", eval_report),
        "heldout": eval_report.get("heldout"),
        "harness": _harness_rows(harness_metrics, ["base", *[v.name for v in variants]]) if harness_metrics else None,
    }
    atomic_write_text(out / "ablation.json", json.dumps(report, indent=2) + "\n")
    atomic_write_text(out / "ablation.md", ablation_table(report))
    return report


def _harness_rows(metrics: Mapping[str, Any], labels: Sequence[str]) -> dict[str, dict[str, float]]:
    """Dense-retriever figures per label out of the harness's ``{system: {"all": {...}}}``."""
    rows: dict[str, dict[str, float]] = {}
    for system, values in metrics.items():
        if not system.startswith("dense"):
            continue
        label = system.partition("@")[2] or "base"
        label = "base" if label not in labels else label
        overall = values.get("all", values)
        rows[label] = {key: overall[key] for key in ("functions@10", "functions@5", "files@3", "instances")
                       if key in overall}
    return rows


def ablation_table(report: Mapping[str, Any]) -> str:
    """Markdown: one row per model, the base first, then the variants in the order they ran."""
    harness = report.get("harness") or {}
    header = "| model | what changes | held-out MRR@10 | Recall@1 | Recall@10 |"
    rule = "|---|---|---|---|---|"
    if harness:
        header += " SWE-bench function@10 | file@3 |"
        rule += "---|---|"
    lines = [header, rule]
    labels = ["base", *report["variants"]]
    for label in labels:
        ev = report["eval"].get(label)
        if ev is None:
            raise StageError(f"no eval results for {label!r}")
        what = "the packaged MiniLM, untrained" if label == "base" else report["variants"][label]["description"]
        row = f"| {label} | {what} | {ev['mrr@10']:.4f} | {ev['recall@1']:.4f} | {ev['recall@10']:.4f} |"
        if harness:
            h = harness.get(label, {})
            row += f" {_pct(h.get('functions@10'))} | {_pct(h.get('files@3'))} |"
        lines.append(row)
    held = report.get("heldout") or {}
    if held:
        lines.append("")
        lines.append(f"Held-out: {held.get('queries')} queries over {held.get('corpus')} codes from "
                     f"{len(held.get('repos', []))} repositories never trained on.")
    return "\n".join(lines) + "\n"


def _pct(value: float | None) -> str:
    return "" if value is None else f"{value:.1f}"
