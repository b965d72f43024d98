"""Stage ``train-reranker``: LoRA fine-tuning of a causal LM on listwise target orders.

The model reads the very prompt inference builds (``localizer.rerank.build_prompt`` with the
same token budgets) and is trained, by language-modelling loss on the answer tokens only, to
write the teacher's order: the whole permutation (``--loss full``) or only the first id
(``--loss first-token``, what the default first-token scorer reads). Candidates are shown in
a fresh random order per instance and per epoch; the order is a pure function of (seed,
epoch, instance), so a resumed run sees exactly the batches the interrupted one would have.

Outputs under ``out/``: ``adapter/`` (a peft adapter plus a model card, what
``localize --rerank --reranker-adapter out/adapter`` loads), ``checkpoints/step-N/``
(adapter, optimizer and scheduler state; the latest two kept), ``train_log.jsonl`` and
``train_stats.json``. Every directory is written beside its target and renamed into place.
"""

from __future__ import annotations

import json
import logging
import math
import random
import shutil
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from indexer.storage.atomic import atomic_replace_dir, atomic_write_text
from localizer.rerank.prompt import PROMPT_FORMAT, SYSTEM_MESSAGE, PromptBudget, build_prompt
from localizer.rerank.reranker import RerankConfig

from cornstack_train.errors import TrainingError
from cornstack_train.reranker.data import IGNORE_INDEX, LOSSES, answer_for, encode_example, instance_rng, shuffle_window

log = logging.getLogger("cornstack_train.reranker.training")

CHECKPOINTS = "checkpoints"
ADAPTER = "adapter"
KEEP_CHECKPOINTS = 2

# --preset values; flags given explicitly win. The gpu preset keeps the prompt budgets: they
# must match what inference uses, so change them deliberately (--candidate-tokens) if at all.
PRESETS: dict[str, dict[str, Any]] = {
    "cpu": {},
    "gpu": {"device": "cuda", "dtype": "bf16", "batch_size": 8, "grad_accum": 2, "gradient_checkpointing": True,
            "save_steps": 200},
}


@dataclass(frozen=True)
class TrainConfig:
    model: str | None = None  # packaged Qwen2.5-Coder-0.5B-Instruct, an HF id/dir, or a .gguf
    loss: str = "first-token"
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    target_modules: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj")
    lr: float = 1e-4
    weight_decay: float = 0.0
    warmup_steps: int = 2
    epochs: int = 1
    max_steps: int | None = None  # optimizer steps; default: epochs over the data
    max_seconds: float | None = None  # stop cleanly (checkpoint + adapter) after this much training time
    batch_size: int = 1
    grad_accum: int = 1
    seed: int = 0
    # Share of instances shown in first-stage order (the rest shuffled). 0, the paper's way, keeps the model
    # from learning "the answer is usually [1]"; but the shuffled model also ignores the pipeline's order,
    # which held-out lists show is worth keeping (rrf fusion helps every checkpoint). Above 0 the model may
    # learn the prior itself: repo-windows stages keep the pipeline's order, whose [1] is right about half
    # the time; teacher-rank stages put the positive in a seeded random slot, so there it carries nothing.
    first_stage_share: float = 0.0
    # prompt budgets: the same fields, and defaults, as localizer.rerank.RerankConfig
    issue_tokens: int = RerankConfig.issue_tokens
    candidate_tokens: int = RerankConfig.candidate_tokens
    min_candidate_tokens: int = RerankConfig.min_candidate_tokens
    footer_issue_tokens: int = RerankConfig.footer_issue_tokens
    max_prompt_tokens: int | None = None
    system_message: str | None = SYSTEM_MESSAGE
    device: str = "auto"
    dtype: str = "auto"
    gradient_checkpointing: bool = False
    save_steps: int = 10
    threads: int | None = None

    def __post_init__(self) -> None:
        if self.loss not in LOSSES:
            raise ValueError(f"unknown loss {self.loss!r}; choose one of {', '.join(LOSSES)}")
        if min(self.batch_size, self.grad_accum, self.epochs, self.lora_r, self.save_steps) < 1:
            raise ValueError("batch size, grad accumulation, epochs, LoRA r and save steps must be at least 1")
        if not 0.0 <= self.first_stage_share <= 1.0:
            raise ValueError("the first-stage order share must be between 0 and 1")

    def rerank_config(self) -> RerankConfig:
        """The inference settings these prompts match (for the model card and budgets)."""
        return RerankConfig(model=self.model, issue_tokens=self.issue_tokens, candidate_tokens=self.candidate_tokens,
                            min_candidate_tokens=self.min_candidate_tokens, footer_issue_tokens=self.footer_issue_tokens,
                            max_prompt_tokens=self.max_prompt_tokens, system_message=self.system_message)


def with_preset(config: TrainConfig, preset: str, explicit: set[str]) -> TrainConfig:
    """``config`` with the preset's values for every field not given explicitly."""
    values = {k: v for k, v in PRESETS[preset].items() if k not in explicit}
    return replace(config, **values)


# --------------------------------------------------------------------------- data stream (pure)


@dataclass(frozen=True)
class Example:
    input_ids: list[int]
    labels: list[int]
    instance: int
    epoch: int
    positive_position: int  # where the positive was shown (0-based): a check on shuffling


def epoch_order(n: int, seed: int, epoch: int) -> list[int]:
    order = list(range(n))
    random.Random(f"{seed}:{epoch}:order").shuffle(order)
    return order


def stream_indices(n: int, seed: int, start: int = 0) -> Iterator[tuple[int, int]]:
    """(epoch, instance) pairs forever, from flat position ``start``: each epoch a fresh permutation."""
    epoch, offset = divmod(start, n)
    while True:
        order = epoch_order(n, seed, epoch)
        for i in order[offset:]:
            yield epoch, i
        epoch, offset = epoch + 1, 0


def make_example(tokenizer, record: dict[str, Any], budget: PromptBudget, config: TrainConfig, epoch: int,
                 index: int) -> Example:
    """One instance shuffled for (epoch, index), or kept in first-stage order (``config.first_stage_share``),
    prompted as at inference, with its masked labels."""
    positions = list(record["target"]) + [record["positive_index"]]
    if shows_first_stage_order(config, epoch, index):
        shown, mapped = list(record["candidates"]), positions
    else:
        shown, mapped = shuffle_window(record["candidates"], positions, instance_rng(config.seed, epoch, index))
    target, positive = mapped[:-1], mapped[-1]
    prompt = build_prompt(tokenizer, record["query"], shown, budget, config.system_message)
    suffix, answer = answer_for(target, config.loss)
    ids, labels = encode_example(tokenizer, prompt.text + suffix, answer, eos=config.loss == "full")
    return Example(ids, labels, index, epoch, positive)


def shows_first_stage_order(config: TrainConfig, epoch: int, index: int) -> bool:
    """Whether instance ``index`` keeps its first-stage order in ``epoch``: a draw of its own generator, so
    a share of 0 leaves every shuffle exactly as before and resumes see the same choice."""
    if config.first_stage_share <= 0.0:
        return False
    return random.Random(f"{config.seed}:{epoch}:{index}:first-stage").random() < config.first_stage_share


def collate(examples: Sequence[Example], pad_id: int):
    """Right-padded tensors; padded labels are ignored."""
    import torch

    width = max(len(e.input_ids) for e in examples)
    ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    labels = torch.full((len(examples), width), IGNORE_INDEX, dtype=torch.long)
    mask = torch.zeros((len(examples), width), dtype=torch.long)
    for row, e in enumerate(examples):
        n = len(e.input_ids)
        ids[row, :n] = torch.tensor(e.input_ids)
        labels[row, :n] = torch.tensor(e.labels)
        mask[row, :n] = 1
    return ids, mask, labels


def lr_factor(step: int, warmup: int, total: int) -> float:
    """Linear warmup, then linear decay to 10% at ``total`` optimizer steps."""
    if warmup and step < warmup:
        return (step + 1) / warmup
    if total <= warmup:
        return 1.0
    return max(0.1, 1.0 - 0.9 * (step - warmup) / max(total - warmup, 1))


# --------------------------------------------------------------------------- model edges


def answer_loss(model, input_ids, attention_mask, labels):
    """Mean cross-entropy over the answer tokens, projecting only their hidden states to the vocabulary.

    A 150k vocabulary over a 1,000-token prompt would be 600 MB of logits per instance, almost
    all masked; the trunk (``model.model``) and head (``model.lm_head``) of an HF causal LM are
    called separately so only supervised positions reach the head.
    """
    import torch.nn.functional as F

    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    target = labels[:, 1:]
    keep = target != IGNORE_INDEX
    if hasattr(inner, "model") and hasattr(inner, "lm_head"):
        hidden = inner.model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        logits = inner.lm_head(hidden[:, :-1][keep]).float()
    else:  # any other causal LM: full logits
        logits = model(input_ids=input_ids, attention_mask=attention_mask).logits[:, :-1][keep].float()
    return F.cross_entropy(logits, target[keep])


def add_lora(model, config: TrainConfig):
    from peft import LoraConfig, get_peft_model

    lora = LoraConfig(r=config.lora_r, lora_alpha=config.lora_alpha, lora_dropout=config.lora_dropout,
                      target_modules=list(config.target_modules), task_type="CAUSAL_LM", bias="none")
    model = get_peft_model(model, lora)
    if config.gradient_checkpointing:
        model.gradient_checkpointing_enable()
        model.enable_input_require_grads()
    return model


def latest_checkpoint(out: Path) -> Path | None:
    found = sorted((out / CHECKPOINTS).glob("step-*/state.json"))
    return found[-1].parent if found else None


def save_checkpoint(out: Path, model, optimizer, step: int, consumed: int, history: list[dict]) -> Path:
    import torch

    def write(tmp: Path) -> None:
        model.save_pretrained(str(tmp))
        torch.save({"optimizer": optimizer.state_dict()}, tmp / "optimizer.pt")
        (tmp / "state.json").write_text(json.dumps({"step": step, "consumed": consumed, "history": history}) + "\n")

    path = atomic_replace_dir(out / CHECKPOINTS / f"step-{step:07d}", write)
    for old in sorted((out / CHECKPOINTS).glob("step-*"))[:-KEEP_CHECKPOINTS]:
        shutil.rmtree(old, ignore_errors=True)
    return path


def load_checkpoint(path: Path, model, optimizer) -> dict:
    """Restore adapter weights and optimizer state; returns step, consumed and history.

    Both are read before either is applied, so a checkpoint that is refused changes nothing.
    """
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    weights = path / "adapter_model.safetensors"
    adapter = load_file(str(weights)) if weights.exists() else load_tensors(path / "adapter_model.bin")
    optimizer_state = load_tensors(path / "optimizer.pt")["optimizer"]
    set_peft_model_state_dict(model, adapter)
    optimizer.load_state_dict(optimizer_state)
    return json.loads((path / "state.json").read_text())


def load_tensors(path: Path) -> dict:
    """A ``torch.save`` file of tensors and plain containers, and nothing else.

    ``weights_only=True`` refuses any other pickled object: a checkpoint directory is a file
    anyone may hand over (a shared run, a download), and a full unpickle runs its code.
    """
    import pickle

    import torch

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise TrainingError(f"{path} holds more than tensors, so it is not a checkpoint this trainer wrote; "
                            f"refusing to load it ({first})") from None


# --------------------------------------------------------------------------- the loop


@dataclass
class TrainResult:
    out: Path
    adapter: Path
    steps: int
    history: list[dict] = field(default_factory=list)
    stopped: str = "done"  # done | max_seconds


def total_steps(n: int, config: TrainConfig) -> int:
    per_step = config.batch_size * config.grad_accum
    return config.max_steps if config.max_steps is not None else max(1, math.ceil(n * config.epochs / per_step))


def train_reranker(records: Sequence[dict[str, Any]], out: str | Path, config: TrainConfig, loaded=None,
                   resume: bool = True, data_info: dict | None = None,
                   progress: Callable[[dict], None] | None = None) -> TrainResult:
    """Train a LoRA adapter on instance ``records`` (teacher-rank rows); see the module docstring.

    ``loaded`` injects a ``localizer.rerank.models.LoadedModel`` (tests); otherwise the model
    is loaded as inference loads it. ``data_info`` goes into the model card (path, sha256, stats).
    """
    import torch

    if not records:
        raise ValueError("no training instances")
    out = Path(out)
    if config.threads:
        torch.set_num_threads(config.threads)
    if loaded is None:
        from localizer.rerank.models import load_reranker_model

        loaded = load_reranker_model(config.model, None, config.device, config.dtype)
    tokenizer, device = loaded.tokenizer, loaded.device
    budget = config.rerank_config().budget(loaded.context_size)
    torch.manual_seed(config.seed)
    model = add_lora(loaded.model, config)
    model.to(device)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=config.lr, weight_decay=config.weight_decay)
    steps_total = total_steps(len(records), config)
    step, consumed, history = 0, 0, []
    checkpoint = latest_checkpoint(out) if resume else None
    if checkpoint is not None:
        state = load_checkpoint(checkpoint, model, optimizer)
        step, consumed, history = state["step"], state["consumed"], state["history"]
        log.warning("resuming from %s (step %d)", checkpoint, step)
        # steps after the checkpoint were lost with the interruption: the log restarts from it
        atomic_write_text(out / "train_log.jsonl", "".join(json.dumps(h) + "\n" for h in history))
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "train_config.json", json.dumps(asdict(config), indent=2) + "\n")
    stream = stream_indices(len(records), config.seed, consumed)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    model.train()
    started, stopped = time.perf_counter(), "done"
    while step < steps_total:
        if config.max_seconds is not None and time.perf_counter() - started > config.max_seconds:
            stopped = "max_seconds"
            break
        step_started = time.perf_counter()
        for group in optimizer.param_groups:
            group["lr"] = config.lr * lr_factor(step, config.warmup_steps, steps_total)
        optimizer.zero_grad(set_to_none=True)
        losses, tokens = [], 0
        for _ in range(config.grad_accum):
            batch = []
            for _ in range(config.batch_size):
                epoch, index = next(stream)
                batch.append(make_example(tokenizer, records[index], budget, config, epoch, index))
                consumed += 1
            ids, mask, labels = (t.to(device) for t in collate(batch, pad))
            loss = answer_loss(model, ids, mask, labels)
            (loss / config.grad_accum).backward()
            losses.append(float(loss.detach()))
            tokens += int(mask.sum())
        torch.nn.utils.clip_grad_norm_(trainable, 1.0)
        optimizer.step()
        step += 1
        entry = {"step": step, "loss": round(sum(losses) / len(losses), 5), "lr": optimizer.param_groups[0]["lr"],
                 "tokens": tokens, "seconds": round(time.perf_counter() - step_started, 2), "consumed": consumed}
        history.append(entry)
        with (out / "train_log.jsonl").open("a") as handle:
            handle.write(json.dumps(entry) + "\n")
        if step % config.save_steps == 0 or step == steps_total:
            save_checkpoint(out, model, optimizer, step, consumed, history)
        if progress:
            progress(entry)
    if not history or history[-1]["step"] != step or step % config.save_steps:
        save_checkpoint(out, model, optimizer, step, consumed, history)
    model.eval()
    adapter = save_adapter(out, model, config, loaded.name, history, data_info or {}, steps_total, stopped)
    stats = {"steps": step, "planned_steps": steps_total, "stopped": stopped, "instances": len(records),
             "consumed": consumed, "loss_first": history[0]["loss"] if history else None,
             "loss_last": history[-1]["loss"] if history else None, "seconds": round(sum(h["seconds"] for h in history), 1)}
    atomic_write_text(out / "train_stats.json", json.dumps(stats, indent=2) + "\n")
    return TrainResult(out, adapter, step, history, stopped)


def save_adapter(out: Path, model, config: TrainConfig, base_name: str, history: list[dict], data_info: dict,
                 steps_total: int, stopped: str) -> Path:
    def write(tmp: Path) -> None:
        model.save_pretrained(str(tmp))
        (tmp / "training.json").write_text(json.dumps(
            {"base_model": base_name, "prompt_format": PROMPT_FORMAT, "config": asdict(config), "data": data_info,
             "steps": len(history)},
            indent=2, default=str) + "\n")
        (tmp / "README.md").write_text(model_card(base_name, config, history, data_info, steps_total, stopped))

    return atomic_replace_dir(out / ADAPTER, write)


def _mean(values: Sequence[float]) -> float | None:
    return round(sum(values) / len(values), 4) if values else None


def model_card(base_name: str, config: TrainConfig, history: Sequence[dict], data_info: dict, steps_total: int,
               stopped: str) -> str:
    """A README for the adapter: what it was trained from, on what (with the data's sha256), and how.

    ``cornstack-train ship-reranker`` replaces it with the shipped card (corpus, held-out results);
    this one travels with every adapter, shipped or not, so it names how to reproduce and install it.
    """
    k = max(1, min(5, len(history) // 2 or 1))
    first, last = _mean([h["loss"] for h in history[:k]]), _mean([h["loss"] for h in history[-k:]])
    stats = data_info.get("stats", {})
    return "\n".join([
        "# Listwise reranker LoRA adapter (cornstack_train)",
        "",
        f"Base model: `{base_name}`. LoRA r={config.lora_r}, alpha={config.lora_alpha}, dropout={config.lora_dropout},"
        f" target modules {', '.join(config.target_modules)}.",
        f"Loss: `{config.loss}` (language-modelling loss on the answer only; prompt tokens masked).",
        "",
        "Use it:",
        "",
        "```bash",
        "localize --issue issue.md --rerank --reranker-adapter THIS_DIR",
        "```",
        "",
        "```python",
        "from localizer.rerank import ListwiseReranker, RerankConfig",
        "reranker = ListwiseReranker(RerankConfig(adapter='THIS_DIR'))",
        "```",
        "",
        f"Prompt budgets it was trained with (use the same at inference): issue {config.issue_tokens},"
        f" candidate {config.candidate_tokens} (min {config.min_candidate_tokens}), footer issue"
        f" {config.footer_issue_tokens} tokens.",
        "",
        "## Training",
        "",
        f"- steps: {len(history)} of {steps_total} planned ({stopped}); batch {config.batch_size} x accumulation"
        f" {config.grad_accum}; lr {config.lr}; seed {config.seed}",
        f"- loss, mean of the first {k} steps: {first}; of the last {k}: {last}",
        f"- training seconds: {round(sum(h['seconds'] for h in history), 1)}",
        "",
        "## Data",
        "",
        f"- path: `{data_info.get('path', '')}`",
        f"- sha256 (all files of the teacher-rank stage): `{data_info.get('sha256', '')}`",
        f"- instances: {stats.get('instances', '')}; by kind: {json.dumps(stats.get('by_kind', {}))};"
        f" repositories: {stats.get('repos', '')}",
        f"- teacher: `{stats.get('teacher', '')}`, mode `{stats.get('config', {}).get('mode', '')}`;"
        f" window depth {stats.get('config', {}).get('depth', '')}",
        "",
        "## Config",
        "",
        "```json",
        json.dumps(asdict(config), indent=2),
        "```",
        "",
        "## Reproduce and ship",
        "",
        "The shipped adapter is rebuilt, from mining to install, by `benchmarks/train_reranker.sh WORK`;",
        "`cornstack-train ship-reranker RUN_DIR --eval EVAL_DIR --mined MINED_DIR` installs a run into the package",
        "(only an adapter for the packaged base model, trained with inference's prompt budgets).",
        "",
    ])
