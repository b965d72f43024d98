"""Stage ``train``: contrastive fine-tuning of the bi-encoder (CoRNStack, section 3.3).

The loss is InfoNCE over (query, positive, negative_1..k): every query is
scored against its own positive, the k hard negatives drawn for it, and all
positives and negatives of the other queries in the batch (in-batch negatives,
gathered across processes under DDP). sentence-transformers'
CachedMultipleNegativesRankingLoss computes exactly this with gradient caching,
so a batch of 256 costs the memory of a mini-batch of 16.

What CoRNStack adds, and what this module is about, is *which* hard negatives:
they are re-drawn every time a batch is formed, by softmax sampling over the
mined candidates with a temperature that falls over training (``sampler``,
``curriculum``). The trainer sees a ``datasets.Dataset`` whose transform
materializes the negative columns when a batch is read; the transform reads
the current τ from a ``ProgressState`` that a TrainerCallback advances after
each optimizer step. The batch sampler (no duplicate queries or positives in a
batch) works on the untransformed pairs, so forming batches draws nothing.

Outputs in ``--out``:

- ``model/``: the trained model as a sentence-transformers directory
  (``SentenceTransformer(dir)``, ``localize --model DIR``), LoRA merged, with a
  model card (README.md) recording config, data stats and sha256 of the input
  data and the weights
- ``delta/``: the same model as an fp16 delta on the packaged MiniLM (the
  format ``localize`` ships, ``localizer.embedding.shipped``; written by
  ``compact``), when training started from it
- ``checkpoints/``: trainer checkpoints every ``save_steps`` (``--resume``)
- ``train_stats.json``: config, data stats, step times, the loss/τ log
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from indexer.storage.atomic import atomic_replace_dir, atomic_write_text
from localizer.device import resolve_device
from localizer.embedding.shipped import DELTA_FILE, is_compact_dir, load_compact, read_manifest, weights_sha256
from localizer.embedding.static import is_static_dir

from cornstack_train.data.records import DATA_DIR, NEGATIVE_COLUMNS, StageError, load_stage, load_stats, sha256_tree
from cornstack_train.embedder.compact import write_compact
from cornstack_train.embedder.curriculum import Curriculum
from cornstack_train.embedder.sampler import MODES, draw_batch_negatives
from cornstack_train.embedder.static import export_static, is_static_st, to_sentence_transformer
from cornstack_train.data.splits import RepoSplit

log = logging.getLogger("cornstack_train.train")

LORA_TARGETS = ("query", "key", "value", "dense")
# The InfoNCE terms sentence-transformers' MNRL can add to the standard query→document one: the reverse
# document→query term (symmetric InfoNCE), and query→query / document→document terms (GTE's "improved
# contrastive loss"). They reuse the embeddings already computed for the batch, so they cost no encoding.
LOSS_DIRECTIONS = ("query_to_doc", "doc_to_query", "query_to_query", "doc_to_doc")
HARDNESS_MODES = ("in_batch_negatives", "hard_negatives", "all_negatives")


@dataclass(frozen=True)
class TrainConfig:
    data: Path
    out: Path
    model: str | None = None  # None: the packaged MiniLM
    negatives: str = "softmax"  # none | random | top | softmax
    hard_negatives: int = 3
    tau_start: float = 1.0
    tau_end: float = 0.05
    schedule: str = "exponential"  # linear | cosine | exponential | constant (--no-curriculum)
    batch_size: int = 32
    mini_batch_size: int = 16
    cached: bool = True  # gradient caching (CachedMNRL); False: plain MNRL
    epochs: float = 1.0
    max_steps: int = -1  # > 0 overrides epochs
    lr: float = 2e-5
    warmup_ratio: float = 0.1
    weight_decay: float = 0.01
    scale: float = 20.0  # InfoNCE logit scale = 1 / loss temperature
    directions: tuple[str, ...] = ("query_to_doc",)  # InfoNCE terms; see LOSS_DIRECTIONS
    hardness_mode: str | None = None  # None | in_batch_negatives | hard_negatives | all_negatives
    hardness_strength: float = 0.0
    seed: int = 0
    resume: bool = False
    bf16: bool = False
    device: str = "auto"
    lora: bool = False
    lora_rank: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    freeze_embeddings: bool = True  # keeps the shipped delta small (the word embeddings are half of MiniLM)
    max_seq_length: int | None = 256
    save_steps: int = 200
    save_total_limit: int = 2
    logging_steps: int = 10
    threads: int | None = None  # torch intra-op threads; 1 is fastest on a busy shared CPU
    max_rows: int | None = None  # train on the first N rows (smoke runs, step-time measurements)
    split: RepoSplit = field(default_factory=RepoSplit)
    export: bool = True
    overwrite: bool = False

    def __post_init__(self) -> None:
        if self.negatives not in MODES:
            raise ValueError(f"--negatives must be one of {', '.join(MODES)}")
        if self.hard_negatives < 0:
            raise ValueError("--hard-negatives must be >= 0")
        if self.batch_size < 2:
            raise ValueError("--batch-size must be >= 2 (in-batch negatives)")
        object.__setattr__(self, "directions", tuple(self.directions))  # JSON round trips give lists
        unknown = [d for d in self.directions if d not in LOSS_DIRECTIONS]
        if unknown or "query_to_doc" not in self.directions:
            raise ValueError(f"--loss-direction must include query_to_doc and be among {', '.join(LOSS_DIRECTIONS)}"
                             + (f" (got {', '.join(unknown)})" if unknown else ""))
        if self.hardness_mode is not None and self.hardness_mode not in HARDNESS_MODES:
            raise ValueError(f"--hardness-mode must be one of {', '.join(HARDNESS_MODES)}")
        if self.hardness_strength < 0:
            raise ValueError("--hardness-strength must be >= 0")

    def curriculum(self) -> Curriculum:
        return Curriculum(self.tau_start, self.tau_end, self.schedule)

    @property
    def k(self) -> int:
        return 0 if self.negatives == "none" else self.hard_negatives


# --------------------------------------------------------------------------- data


@dataclass
class TrainingPool:
    """The training rows as arrays: what the negative sampler needs, nothing else."""

    queries: list[str]
    positives: list[str]
    candidates: list[np.ndarray]  # per row: pool row indices of mined hard negatives
    scores: list[np.ndarray]  # per row: their similarity to the query
    text_keys: np.ndarray  # per row: a stable 64-bit hash of ``positive``
    stats: dict[str, Any]
    query_keys: np.ndarray | None = None  # per row: the same hash of ``query``

    def __len__(self) -> int:
        return len(self.queries)


def text_key(text: str) -> int:
    """Stable across processes (unlike ``hash``), so every DDP rank agrees."""
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=8).digest(), "big", signed=True)


def build_pool(columns: dict[str, Sequence], split: RepoSplit, need_negatives: bool, max_rows: int | None = None) -> TrainingPool:
    """Training rows: held-out repositories removed, negative ids mapped to row indices.

    Negatives that point at held-out or unknown rows are dropped, so nothing of
    the evaluation repositories reaches training even as a negative.
    """
    has_negatives = all(c in columns for c in NEGATIVE_COLUMNS)
    if need_negatives and not has_negatives:
        raise StageError(
            "this stage has no negative_ids/negative_scores columns: run the `negatives` stage, "
            "or train with --negatives none|random"
        )
    ids = list(columns["id"])
    repos = list(columns["repo"])
    keep = [i for i, repo in enumerate(repos) if not split.is_heldout(repo)]
    if max_rows is not None:
        keep = keep[:max_rows]
    position = {ids[i]: n for n, i in enumerate(keep)}
    queries = [columns["query"][i] for i in keep]
    positives = [columns["positive"][i] for i in keep]
    candidates: list[np.ndarray] = []
    scores: list[np.ndarray] = []
    dropped = 0
    for i in keep:
        if not has_negatives:
            candidates.append(np.zeros(0, dtype=np.int64))
            scores.append(np.zeros(0, dtype=np.float64))
            continue
        rows, values = [], []
        for neg_id, score in zip(columns["negative_ids"][i] or [], columns["negative_scores"][i] or []):
            row = position.get(neg_id)
            if row is None:
                dropped += 1
                continue
            rows.append(row)
            values.append(score)
        candidates.append(np.asarray(rows, dtype=np.int64))
        scores.append(np.asarray(values, dtype=np.float64))
    counts = [len(c) for c in candidates]
    kinds = columns.get("kind")
    languages = columns.get("language")
    stats = {
        "rows_in": len(ids),
        "rows_train": len(keep),
        "rows_heldout": sum(1 for r in repos if split.is_heldout(r)),
        "repos_train": len({repos[i] for i in keep}),
        "repos_heldout": len({r for r in repos if split.is_heldout(r)}),
        "has_negative_columns": has_negatives,
        "candidates_per_query": {
            "mean": round(float(np.mean(counts)), 2) if counts else 0.0,
            "min": int(min(counts)) if counts else 0,
            "max": int(max(counts)) if counts else 0,
        },
        "negatives_dropped_heldout_or_unknown": dropped,
        "kinds": dict(Counter(kinds[i] for i in keep)) if kinds is not None else {},
        "languages": dict(Counter(languages[i] for i in keep)) if languages is not None else {},
        "split": split.describe(),
    }
    return TrainingPool(queries, positives, candidates, scores, np.asarray([text_key(p) for p in positives], dtype=np.int64),
                        stats, np.asarray([text_key(q) for q in queries], dtype=np.int64))


@dataclass
class ProgressState:
    """Training progress shared between the trainer (writer) and the dataset transform (reader).

    ``batch_positions`` maps a training batch (its row indices) to its position
    in the run, recorded by the batch sampler as it yields it. The transform
    derives τ and its random stream from that position rather than from the
    trainer's step counter, because the loader prefetches a batch one step
    early, and not after a resume: keyed by position, a resumed run draws
    what an uninterrupted one would.

    A position is ``epoch * batches_per_epoch + i`` over the batches of all
    processes. The processes take them in turn (accelerate's
    ``BatchSamplerShard``, dropping an epoch's last incomplete round), and an
    epoch ends with a short optimizer step when the accumulation does not
    divide its batches (``transformers.Trainer``), so the step of a position is
    counted per epoch (``step_of``), not as ``position // batches_per_step``,
    which drifts (by up to a step per epoch) when the batches per step do not
    divide the epoch.
    """

    curriculum: Curriculum
    global_step: int = 0
    max_steps: int = 1
    batches_per_step: int = 1  # processes x gradient accumulation
    world_size: int | None = None  # processes; None: torch.distributed's (1 when not distributed)
    batch_positions: dict = field(default_factory=dict)

    @property
    def progress(self) -> float:
        return self.global_step / max(1, self.max_steps)

    @property
    def tau(self) -> float:
        return self.curriculum.tau(self.progress)

    def record_batch(self, rows: Sequence[int], position: int) -> None:
        self.batch_positions[tuple(int(r) for r in rows)] = position
        while len(self.batch_positions) > 4096:  # other ranks' batches are never claimed here
            self.batch_positions.pop(next(iter(self.batch_positions)))

    def claim_batch(self, rows: Sequence[int], batches_per_epoch: int | None = None) -> tuple[float, int | None]:
        """(τ, position) for a batch being read; position None for reads outside training.

        τ is the curriculum's at the step that will train on the batch (``step_of``).
        """
        position = self.batch_positions.pop(tuple(int(r) for r in rows), None)
        if position is None:
            return self.tau, None
        step = self.step_of(position, batches_per_epoch)
        return self.curriculum.tau(step / max(1, self.max_steps)), position

    def processes(self) -> int:
        """The data-parallel processes. The trainer hands over only processes x accumulation
        (``batches_per_step``); the process count is torch.distributed's, which it set up."""
        if self.world_size:
            return self.world_size
        import torch.distributed as dist

        return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1

    def step_of(self, position: int, batches_per_epoch: int | None) -> int:
        """The optimizer step (0-based) that trains on the batch at ``position``.

        Without ``batches_per_epoch`` (the sampler's length) the run is taken as one epoch.
        """
        per_step = max(1, self.batches_per_step)
        if not batches_per_epoch:
            return position // per_step
        world = max(1, self.processes())
        accumulation = max(1, per_step // world)
        epoch, index = divmod(position, batches_per_epoch)
        per_process = max(1, batches_per_epoch // world)  # each process's batches in an epoch
        steps_per_epoch = -(-per_process // accumulation)  # the last step takes what is left
        return epoch * steps_per_epoch + (index // world) // accumulation


class NegativeTransform:
    """``datasets`` batch transform: (anchor, positive, row) -> (anchor, positive, negative_1..k).

    Called once per batch (the DataLoader reads a batch with ``__getitems__``),
    so the exclusion of other rows' positives sees the whole batch. τ and the
    random stream are pure functions of (seed, rank, the batch's position in the
    run): a resumed run draws the same negatives as an uninterrupted one.
    """

    def __init__(self, pool: TrainingPool, config: TrainConfig, state: ProgressState, rank: int = 0) -> None:
        self.pool, self.config, self.state, self.rank = pool, config, state, rank

    def __call__(self, batch: dict[str, list]) -> dict[str, list]:
        rows = [int(r) for r in batch["row"]]
        out = {"anchor": list(batch["anchor"]), "positive": list(batch["positive"])}
        k = self.config.k
        if k == 0:
            return out
        # A training batch is full (the sampler drops the last incomplete one), so the sampler yields
        # len(pool) // len(rows) batches an epoch: what the state needs to count steps per epoch.
        tau, position = self.state.claim_batch(rows, len(self.pool) // max(1, len(rows)))
        if position is None:  # a read outside training (e.g. the model card's examples)
            entropy = [self.config.seed, self.rank, 1 << 40, self.state.global_step, rows[0] if rows else 0, len(rows)]
        else:
            entropy = [self.config.seed, self.rank, position]
        rng = np.random.default_rng(entropy)
        chosen = draw_batch_negatives(rows, self.pool.candidates, self.pool.scores, self.pool.text_keys, k,
                                      self.config.negatives, tau, rng, self.pool.query_keys)
        for j in range(k):
            out[f"negative_{j + 1}"] = [self.pool.positives[r] for r in chosen[:, j]]
        return out


def make_datasets(pool: TrainingPool, config: TrainConfig, state: ProgressState, rank: int = 0):
    """(train dataset with the negative transform, plain pairs for the duplicate-free batch sampler)."""
    from datasets import Dataset

    pairs = Dataset.from_dict({"anchor": pool.queries, "positive": pool.positives})
    train = Dataset.from_dict({"anchor": pool.queries, "positive": pool.positives, "row": list(range(len(pool)))})
    train.set_transform(NegativeTransform(pool, config, state, rank))
    return train, pairs


# --------------------------------------------------------------------------- model


def load_model(model: str | None, device: str, max_seq_length: int | None):
    """The starting model: a sentence-transformers id or directory, a delta directory, or the packaged MiniLM."""
    from sentence_transformers import SentenceTransformer

    from localizer.embedding.embedder import BASE_MODEL, resolve_model

    if model and is_compact_dir(model):
        st = load_compact(model, device=device)
    else:
        target, _ = resolve_model(model or BASE_MODEL)  # training starts from the base, never the shipped model
        if is_static_dir(target):
            # A static model (``cornstack-train distill``): its token budget is its tokenizer's truncation,
            # the same at training and at run time, so --max-seq-length does not apply.
            return to_sentence_transformer(target, device=device)
        st = SentenceTransformer(target, device=device)
    # Truncating for training is a cost knob; the exported model reads as far as its base did.
    st.base_max_seq_length = st.max_seq_length
    if max_seq_length:
        st.max_seq_length = max_seq_length
    return st


def base_weights_dir(model: str | None) -> Path | None:
    """The directory holding the starting weights, when they are a local ST directory."""
    from localizer.embedding.embedder import BASE_MODEL, resolve_model

    target, _ = resolve_model(model or BASE_MODEL)
    return Path(target) if Path(target).is_dir() else None


def freeze_word_embeddings(model) -> int:
    frozen = 0
    for name, param in model.named_parameters():
        if "word_embeddings" in name:
            param.requires_grad_(False)
            frozen += param.numel()
    return frozen


def freeze_unused_pooler(model) -> int:
    """BERT's pooler head is computed but never reaches a sentence embedding (mean pooling of tokens).

    Under DDP a trainable parameter without a gradient stops the run ("parameters
    that were not used in producing loss"); freezing it avoids that without the
    per-step graph walk of ``find_unused_parameters``.
    """
    frozen = 0
    for name, param in model.named_parameters():
        if ".pooler." in f".{name}":
            param.requires_grad_(False)
            frozen += param.numel()
    return frozen


def add_lora(model, config: TrainConfig) -> None:
    """Wrap the transformer in a peft LoRA model (merged back before export)."""
    try:
        from peft import LoraConfig, get_peft_model
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise StageError("--lora needs peft: pip install peft") from exc
    transformer = model[0]
    lora = LoraConfig(r=config.lora_rank, lora_alpha=config.lora_alpha, lora_dropout=config.lora_dropout,
                      target_modules=list(LORA_TARGETS))
    transformer.model = get_peft_model(transformer.model, lora)


def merge_lora(model) -> None:
    transformer = model[0]
    inner = transformer.model
    if hasattr(inner, "merge_and_unload"):
        transformer.model = inner.merge_and_unload()


def trainable_parameters(model) -> tuple[int, int]:
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return trainable, total


def make_loss(model, config: TrainConfig, distributed: bool):
    """The InfoNCE loss. Without gradient caching it is ``AnswerMaskedMNRL``: under DDP the gathered
    candidates of other processes can repeat a query's own answer, which it masks (``losses``)."""
    from sentence_transformers.sentence_transformer.losses import CachedMultipleNegativesRankingLoss

    from cornstack_train.embedder.losses import AnswerMaskedMNRL

    options = loss_options(config)
    try:
        if config.cached:
            return CachedMultipleNegativesRankingLoss(model, scale=config.scale, mini_batch_size=config.mini_batch_size,
                                                      gather_across_devices=distributed, **options)
        return AnswerMaskedMNRL(model, scale=config.scale, gather_across_devices=distributed, **options)
    except TypeError as exc:
        if not options:
            raise
        raise ValueError(f"this sentence-transformers has no {', '.join(options)} on its ranking losses "
                         f"(--loss-direction, --hardness-*): upgrade it ({exc})") from exc


def loss_options(config: TrainConfig) -> dict[str, Any]:
    """Only the loss arguments that differ from plain InfoNCE, so the default run works on older
    sentence-transformers releases, which lack them."""
    options: dict[str, Any] = {}
    if tuple(config.directions) != ("query_to_doc",):
        options["directions"] = tuple(config.directions)
    if config.hardness_mode is not None and config.hardness_strength > 0:
        options["hardness_mode"] = config.hardness_mode
        options["hardness_strength"] = config.hardness_strength
    return options


# --------------------------------------------------------------------------- trainer


def _trainer_classes():
    """Defined lazily: importing sentence-transformers' trainer costs seconds, the CLI's --help should not."""
    from sentence_transformers import SentenceTransformerTrainer
    from sentence_transformers.base.sampler import NoDuplicatesBatchSampler
    from transformers import TrainerCallback
    from transformers.trainer_callback import ProgressCallback

    class CurriculumCallback(TrainerCallback):
        """Advances the shared progress (τ) and records per-step wall times."""

        def __init__(self, state: ProgressState) -> None:
            self.progress = state
            self.step_seconds: list[float] = []
            self.step_cpu_seconds: list[float] = []  # process CPU time: comparable on a shared, busy machine
            self._started = self._cpu = 0.0

        def on_train_begin(self, args, state, control, **kwargs):
            self.progress.max_steps = max(1, state.max_steps)
            self.progress.batches_per_step = max(1, args.world_size) * max(1, args.gradient_accumulation_steps)
            self.progress.global_step = state.global_step

        def on_step_begin(self, args, state, control, **kwargs):
            self._started, self._cpu = time.perf_counter(), time.process_time()

        def on_step_end(self, args, state, control, **kwargs):
            self.step_seconds.append(time.perf_counter() - self._started)
            self.step_cpu_seconds.append(time.process_time() - self._cpu)
            self.progress.global_step = state.global_step

    class PositionedBatchSampler(NoDuplicatesBatchSampler):
        """No duplicate texts in a batch; records each batch's position in the run for the transform."""

        def __init__(self, *args, progress: ProgressState, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            self.progress = progress

        def __iter__(self):
            offset = self.epoch * len(self)
            for i, batch in enumerate(super().__iter__()):
                self.progress.record_batch(batch, offset + i)
                yield batch

    class CurriculumTrainer(SentenceTransformerTrainer):
        """Batches from the plain pairs (no duplicate texts); τ in the logs and on the progress bar."""

        def __init__(self, *args, progress: ProgressState, pairs, **kwargs) -> None:
            self.progress_state = progress
            self.pairs = pairs
            super().__init__(*args, **kwargs)

        def get_batch_sampler(self, dataset, batch_size, drop_last, valid_label_columns=None, generator=None, seed=0):
            if dataset is self.train_dataset:
                return PositionedBatchSampler(self.pairs, batch_size=batch_size, drop_last=drop_last,
                                              valid_label_columns=valid_label_columns, generator=generator, seed=seed,
                                              precompute_hashes=True, precompute_num_proc=1,
                                              progress=self.progress_state)
            return super().get_batch_sampler(dataset, batch_size, drop_last, valid_label_columns, generator, seed)

        def log(self, logs, *args, **kwargs):
            if "loss" in logs:
                logs = {**logs, "tau": round(self.progress_state.tau, 5)}
                for callback in self.callback_handler.callbacks:
                    bar = getattr(callback, "training_bar", None) if isinstance(callback, ProgressCallback) else None
                    if bar is not None:
                        bar.set_postfix(loss=f"{logs['loss']:.4f}", tau=f"{logs['tau']:.4f}", refresh=False)
            return super().log(logs, *args, **kwargs)

    return CurriculumCallback, CurriculumTrainer


def _world() -> tuple[int, int]:
    return int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))


def last_checkpoint(checkpoints: Path) -> Path | None:
    found = []
    for path in checkpoints.glob("checkpoint-*"):
        suffix = path.name.split("-", 1)[1]
        if path.is_dir() and suffix.isdigit() and (path / "trainer_state.json").is_file():
            found.append((int(suffix), path))
    return max(found)[1] if found else None


def train(config: TrainConfig) -> dict[str, Any]:
    """Run the stage; returns the stats written to ``train_stats.json``."""
    import torch
    from sentence_transformers import SentenceTransformerTrainingArguments
    from sentence_transformers.base.sampler import BatchSamplers

    rank, world = _world()
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    checkpoints = out / "checkpoints"
    if (out / "model").exists() and not (config.resume or config.overwrite):
        raise StageError(f"{out / 'model'} already exists; pass --overwrite to train again or --resume to continue")
    resume_from = None
    if config.resume:
        resume_from = last_checkpoint(checkpoints)
        if resume_from is None:
            log.warning("--resume: no checkpoint under %s, starting from the beginning", checkpoints)
    elif checkpoints.exists() and rank == 0:
        shutil.rmtree(checkpoints)  # a fresh run must not mix with old checkpoints

    device = resolve_device(config.device)
    need_negatives = config.negatives in ("top", "softmax") and config.k > 0
    dataset = load_stage(config.data)
    wanted = ("id", "query", "positive", "repo", "kind", "language", *NEGATIVE_COLUMNS)
    columns = {name: dataset[name] for name in dataset.column_names if name in wanted}
    pool = build_pool(columns, config.split, need_negatives, config.max_rows)
    if len(pool) < config.batch_size * world:
        raise StageError(f"{len(pool)} training rows cannot fill one batch of {config.batch_size} x {world} process(es)")

    if config.threads:
        torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    model = load_model(config.model, device, config.max_seq_length)
    frozen = freeze_word_embeddings(model) if config.freeze_embeddings else 0
    freeze_unused_pooler(model)
    if config.lora:
        add_lora(model, config)
    trainable, total = trainable_parameters(model)

    progress = ProgressState(config.curriculum())
    train_dataset, pairs = make_datasets(pool, config, progress, rank)
    CurriculumCallback, CurriculumTrainer = _trainer_classes()
    callback = CurriculumCallback(progress)
    args = SentenceTransformerTrainingArguments(
        output_dir=str(checkpoints),
        per_device_train_batch_size=config.batch_size,
        num_train_epochs=config.epochs,
        max_steps=config.max_steps,
        learning_rate=config.lr,
        warmup_steps=float(config.warmup_ratio),  # transformers 5: a float < 1 is a ratio
        weight_decay=config.weight_decay,
        bf16=config.bf16,
        use_cpu=device == "cpu",
        seed=config.seed,
        data_seed=config.seed,
        save_strategy="steps",
        save_steps=config.save_steps,
        save_total_limit=config.save_total_limit,
        logging_steps=config.logging_steps,
        logging_first_step=True,
        batch_sampler=BatchSamplers.NO_DUPLICATES,
        dataloader_drop_last=True,
        dataloader_num_workers=0,  # the transform reads the in-process τ
        report_to=[],
        ddp_backend="gloo" if device == "cpu" and world > 1 else None,
        ddp_find_unused_parameters=False if world > 1 else None,
    )
    trainer = CurriculumTrainer(
        model=model,
        args=args,
        train_dataset=train_dataset,
        loss=make_loss(model, config, distributed=world > 1),
        callbacks=[callback],
        progress=progress,
        pairs=pairs,
    )
    started = time.perf_counter()
    result = trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
    wall = time.perf_counter() - started

    history = [entry for entry in trainer.state.log_history if "loss" in entry]
    steady = callback.step_seconds[1:] or callback.step_seconds
    stats: dict[str, Any] = {
        "config": _jsonable(asdict(config)),
        "data": {**pool.stats, "stage": str(config.data), "stage_stats": _safe_stats(config.data),
                 "data_sha256": sha256_tree(Path(config.data) / DATA_DIR)},
        "model": {"start": config.model or "packaged MiniLM", "parameters": total, "trainable": trainable,
                  "frozen_embeddings": frozen, "lora": config.lora},
        "run": {
            "device": device, "world_size": world, "bf16": config.bf16, "gradient_caching": config.cached,
            "gather_across_devices": world > 1, "global_step": trainer.state.global_step,
            "resumed_from": str(resume_from) if resume_from else None,
            "wall_seconds": round(wall, 2), "train_loss": getattr(result, "training_loss", None),
            "step_seconds_mean": round(float(np.mean(steady)), 4) if steady else None,
            "step_seconds": [round(s, 4) for s in callback.step_seconds],
            "step_cpu_seconds": [round(s, 4) for s in callback.step_cpu_seconds],
            "tau_final": progress.tau,
        },
        "log": history,
    }
    if rank == 0 and config.export:
        stats["export"] = export(model, config, stats)
    if rank == 0:
        _write_json(out / "train_stats.json", stats)
    return stats


def export(model, config: TrainConfig, stats: dict[str, Any]) -> dict[str, Any]:
    """Write ``model/`` (full ST directory) and, from the packaged MiniLM, ``delta/``; both with a model card."""
    if config.lora:
        merge_lora(model)
    model = model.to("cpu").float()
    out = Path(config.out)
    info: dict[str, Any] = {}
    if is_static_st(model):
        return export_static_run(model, config, stats, info)
    model.max_seq_length = getattr(model, "base_max_seq_length", None) or model.max_seq_length
    def write(tmp: Path) -> None:
        model.save(str(tmp))
        info["weights_sha256"] = weights_sha256(tmp)
        (tmp / "README.md").write_text(model_card(config, stats, info))

    target = atomic_replace_dir(out / "model", write)
    info["model_dir"] = str(target)
    base_dir = base_weights_dir(None)
    started_from_packaged = config.model is None or (
        base_weights_dir(config.model) is not None and base_dir is not None
        and weights_sha256(base_weights_dir(config.model)) == weights_sha256(base_dir)
    )
    if started_from_packaged and base_dir is not None:
        delta_dir = write_compact(model, out / "delta", base=base_dir, overwrite=True)
        manifest = read_manifest(delta_dir)
        info["delta_dir"] = str(delta_dir)
        info["delta_sha256"] = manifest["delta_sha256"]
        info["delta_bytes"] = (delta_dir / DELTA_FILE).stat().st_size
        info["delta_parameters"] = manifest["parameters"]
        (delta_dir / "README.md").write_text(model_card(config, stats, info))
    return info


def export_static_run(model, config: TrainConfig, stats: dict[str, Any], info: dict[str, Any]) -> dict[str, Any]:
    """A static run's output: ``static/``, the table in the shipped Model2Vec layout (fp16), with a card.

    There is no ST ``model/`` copy: the layout loads in sentence-transformers
    (``StaticEmbedding.load``), Model2Vec and ``localize --model DIR`` alike.
    """
    def write(tmp: Path) -> None:
        export_static(model, tmp, extra_config={"trained_by": "cornstack-train", "negatives": config.negatives})
        info["weights_sha256"] = weights_sha256(tmp)
        (tmp / "README.md").write_text(model_card(config, stats, info, static=True))

    info["static_dir"] = str(atomic_replace_dir(Path(config.out) / "static", write))
    info["static_bytes"] = sum(f.stat().st_size for f in Path(info["static_dir"]).iterdir())
    return info


def negatives_phrase(config: TrainConfig) -> str:
    """What the hard negatives were, in words, as the run drew them (not as the recipe's default says)."""
    if config.k == 0:
        return "in-batch negatives only (no hard negatives)"
    drawn = {
        "softmax": f"{config.k} hard negatives per query sampled by softmax over the mined candidates "
                   f"(τ {config.tau_start}→{config.tau_end}, {config.schedule})",
        "top": f"the {config.k} highest-scoring mined hard negatives per query",
        "random": f"{config.k} hard negatives per query drawn uniformly from the mined candidates",
    }[config.negatives]
    return f"in-batch negatives and {drawn}"


def model_card(config: TrainConfig, stats: dict[str, Any], info: dict[str, Any], static: bool = False) -> str:
    run = stats.get("run", {})
    data = stats.get("data", {})
    record = {"config": _jsonable(asdict(config)), "data": data, "model": stats.get("model"), "run": run,
              "weights": info}
    last = stats.get("log", [])[-1:] or [{}]
    start = stats.get("model", {}).get("start", "all-MiniLM-L6-v2")
    if static:
        what = f"A static (Model2Vec-layout) embedder for issue-to-code retrieval: a token table distilled from {start}"
        usage = ("from localizer.embedding.static import StaticModel\nmodel = StaticModel.load('static/')\n"
                 "# or: localize --model static/; sentence-transformers: StaticEmbedding.load('static/')\n")
    else:
        what = f"A sentence-transformers bi-encoder for issue-to-code retrieval, fine-tuned from {start}"
        usage = ("from sentence_transformers import SentenceTransformer\nmodel = SentenceTransformer('model/')\n"
                 "# or, from the compact delta on the packaged MiniLM:\n"
                 "from localizer.embedding.shipped import load_compact\nmodel = load_compact('delta/')\n")
    return (
        "# localizer code embedder (CoRNStack fine-tune)\n\n"
        f"{what}, trained with InfoNCE over {negatives_phrase(config)}.\n\n"
        f"```python\n{usage}```\n\n"
        f"- training rows: {data.get('rows_train')} from {data.get('repos_train')} repositories "
        f"({data.get('repos_heldout')} held out for evaluation)\n"
        f"- steps: {run.get('global_step')}, final logged loss: {last[0].get('loss')}, device: {run.get('device')}"
        f" x{run.get('world_size')}\n"
        f"- input data sha256: `{data.get('data_sha256')}`\n"
        f"- weights sha256: `{info.get('weights_sha256')}`\n"
        + (f"- delta sha256: `{info['delta_sha256']}` ({info['delta_bytes']} bytes)\n" if "delta_sha256" in info else "")
        + "\n## Full record\n\n```json\n" + json.dumps(_jsonable(record), indent=2, default=str) + "\n```\n"
    )


def _safe_stats(stage: Path) -> dict[str, Any]:
    try:
        return load_stats(stage)
    except (OSError, ValueError):
        return {}


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def _write_json(path: Path, payload: Any) -> None:
    atomic_write_text(path, json.dumps(_jsonable(payload), indent=2) + "\n")
