"""The τ the hard-negative sampler *receives*, step by step, is the curriculum's τ at step / max_steps.

``draw_batch_negatives`` (as ``NegativeTransform`` calls it) is wrapped to record its ``tau``
argument. The logged τ is not what is checked: it is read after the step and runs one ahead.

- Simulated: every rank records every global batch's position (``PositionedBatchSampler``),
  accelerate's ``BatchSamplerShard`` deals the batches to the ranks (round robin), and each rank
  consumes its share in optimizer steps of ``gradient_accumulation_steps`` batches, the last step
  of an epoch taking what is left, as ``transformers.Trainer._run_epoch`` does. Several epochs, an
  epoch length that the batches per step do not divide.
- Real: ``train`` on the tiny model, single process, with and without gradient accumulation; the
  step each batch trains in is read from the loss's forward calls.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from cornstack_train.data.splits import RepoSplit  # noqa: E402
from cornstack_train.embedder import training  # noqa: E402
from cornstack_train.embedder.curriculum import Curriculum  # noqa: E402
from cornstack_train.embedder.training import NegativeTransform, ProgressState, TrainConfig, build_pool  # noqa: E402

from tests.train_fixtures import corpus_rows, tiny_model, write_stage  # noqa: E402

CURRICULUM = Curriculum(1.0, 0.05, "exponential")


def record_taus(monkeypatch) -> list[float]:
    """Every τ handed to the sampler, in call order."""
    seen: list[float] = []
    original = training.draw_batch_negatives

    def recording(*args, **kwargs):
        seen.append(args[6] if len(args) > 6 else kwargs["tau"])
        return original(*args, **kwargs)

    monkeypatch.setattr(training, "draw_batch_negatives", recording)
    return seen


def pool_of(n: int):
    rows = corpus_rows(n, negatives=4)
    columns = {key: [row.get(key) for row in rows] for key in rows[0]}
    return build_pool(columns, RepoSplit(heldout_fraction=0.0), need_negatives=True)


class RecordingSampler:
    """What ``PositionedBatchSampler`` does: per epoch, batches of a fresh permutation (the remainder
    dropped), each recorded with its position ``epoch * len(self) + i`` as it is yielded."""

    def __init__(self, rows: int, batch_size: int, state: ProgressState) -> None:
        self.rows, self.batch_size, self.state = rows, batch_size, state
        self.drop_last = True
        self.epoch = 0

    def __len__(self) -> int:
        return self.rows // self.batch_size

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self):
        order = np.random.default_rng([7, self.epoch]).permutation(self.rows).tolist()
        for i in range(len(self)):
            batch = order[i * self.batch_size:(i + 1) * self.batch_size]
            self.state.record_batch(batch, self.epoch * len(self) + i)
            yield batch


def simulate_rank(pool, rank: int, world: int, accumulation: int, batch_size: int, max_steps: int,
                  monkeypatch) -> tuple[list[float], list[int]]:
    """(τ the sampler received per batch, the optimizer step that batch trained in) on one rank."""
    from accelerate.data_loader import BatchSamplerShard

    seen = record_taus(monkeypatch)
    state = ProgressState(CURRICULUM)
    # as CurriculumCallback.on_train_begin sets them; the process count comes from torch.distributed
    state.max_steps, state.batches_per_step, state.world_size = max_steps, world * accumulation, world
    config = TrainConfig(data=Path("x"), out=Path("y"), batch_size=batch_size, hard_negatives=1)
    transform = NegativeTransform(pool, config, state, rank)
    sampler = RecordingSampler(len(pool), batch_size, state)
    shard = BatchSamplerShard(sampler, num_processes=world, process_index=rank)
    per_epoch = math.ceil(len(shard) / accumulation)  # transformers: num_update_steps_per_epoch
    steps: list[int] = []
    for epoch in range(max_steps):
        sampler.set_epoch(epoch)
        for j, batch in enumerate(shard):
            step = epoch * per_epoch + j // accumulation
            if step >= max_steps:
                return seen, steps
            transform({"anchor": [pool.queries[r] for r in batch], "positive": [pool.positives[r] for r in batch],
                       "row": batch})
            steps.append(step)
    return seen, steps


@pytest.mark.parametrize("world,accumulation", [(1, 1), (1, 2), (2, 1), (2, 3), (3, 2)])
def test_simulated_ranks_draw_at_the_tau_of_their_step(monkeypatch, world, accumulation):
    pool, batch_size, max_steps = pool_of(45), 4, 14  # 11 batches an epoch: no batches-per-step divides it
    for rank in range(world):
        seen, steps = simulate_rank(pool, rank, world, accumulation, batch_size, max_steps, monkeypatch)
        assert sorted(set(steps)) == list(range(max_steps)), "the simulation must cover every step"
        assert seen == pytest.approx([CURRICULUM.tau(s / max_steps) for s in steps], rel=1e-12), (rank, steps)
        monkeypatch.undo()


def test_a_batch_read_outside_training_draws_at_the_current_step():
    state = ProgressState(CURRICULUM, global_step=3, max_steps=6)
    assert state.claim_batch([0, 1, 2], batches_per_epoch=4) == (CURRICULUM.tau(0.5), None)


class AccumulatingArguments:
    """``SentenceTransformerTrainingArguments`` with gradient accumulation (``train`` has no flag for it)."""

    def __init__(self, accumulation: int) -> None:
        from sentence_transformers import SentenceTransformerTrainingArguments

        self.base, self.accumulation = SentenceTransformerTrainingArguments, accumulation

    def __call__(self, **kwargs):
        return self.base(**kwargs, gradient_accumulation_steps=self.accumulation)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("tau")
    return {"root": root, "model": tiny_model(root / "model"), "stage": write_stage(root / "negatives", corpus_rows(40))}


@pytest.mark.parametrize("accumulation", [1, 2])
def test_real_training_draws_at_the_tau_of_each_step(monkeypatch, tiny, accumulation):
    """40 rows, batches of 8: 5 batches an epoch; 7 steps cross epochs (with accumulation 2, an epoch is
    3 steps, the last one a single batch)."""
    import sentence_transformers

    seen = record_taus(monkeypatch)
    claimed: list[int | None] = []
    states: list[ProgressState] = []
    original_claim = ProgressState.claim_batch

    def claim(self, rows, *args, **kwargs):
        result = original_claim(self, rows, *args, **kwargs)
        states[:] = [self]
        claimed.append(result[1])
        return result

    monkeypatch.setattr(ProgressState, "claim_batch", claim)
    trained_in: list[int] = []
    original_make_loss = training.make_loss

    def make_loss(*args, **kwargs):
        loss = original_make_loss(*args, **kwargs)
        loss.register_forward_pre_hook(lambda module, inputs: trained_in.append(states[0].global_step))
        return loss

    monkeypatch.setattr(training, "make_loss", make_loss)
    monkeypatch.setattr(sentence_transformers, "SentenceTransformerTrainingArguments",
                        AccumulatingArguments(accumulation))
    max_steps = 7
    training.train(TrainConfig(data=tiny["stage"], out=tiny["root"] / f"run-{accumulation}", model=str(tiny["model"]),
                               batch_size=8, hard_negatives=1, max_steps=max_steps, cached=False, save_steps=100,
                               logging_steps=1, threads=1, device="cpu", max_seq_length=32, export=False,
                               split=RepoSplit(heldout_fraction=0.0)))
    during_training = [tau for tau, position in zip(seen, claimed) if position is not None]
    assert len(trained_in) == sum(1 for p in claimed if p is not None) - 1  # the loader reads one batch ahead
    assert sorted(set(trained_in)) == list(range(max_steps))
    assert len(trained_in) == {1: 7, 2: 12}[accumulation]  # 2 + 2 + 1 batches per 3 steps
    expected = [CURRICULUM.tau(step / max_steps) for step in trained_in]
    assert during_training[:len(trained_in)] == pytest.approx(expected, rel=1e-12)


DDP_WORKER = """
import json, os, sys
from pathlib import Path

from cornstack_train.data.splits import RepoSplit
from cornstack_train.embedder import training
from cornstack_train.embedder.training import ProgressState, TrainConfig

seen, claimed, trained_in, states = [], [], [], []
draw, claim_batch, make_loss = training.draw_batch_negatives, ProgressState.claim_batch, training.make_loss

def recording_draw(*args, **kwargs):
    seen.append(args[6])
    return draw(*args, **kwargs)

def recording_claim(self, rows, *args, **kwargs):
    result = claim_batch(self, rows, *args, **kwargs)
    states[:] = [self]
    claimed.append(result[1])
    return result

def hooked_loss(*args, **kwargs):
    loss = make_loss(*args, **kwargs)
    loss.register_forward_pre_hook(lambda module, inputs: trained_in.append(states[0].global_step))
    return loss

training.draw_batch_negatives, ProgressState.claim_batch, training.make_loss = recording_draw, recording_claim, hooked_loss
data, model, out = sys.argv[1:4]
training.train(TrainConfig(data=Path(data), out=Path(out), model=model, batch_size=4, cached=False, hard_negatives=2,
                           max_steps=10, save_steps=100, logging_steps=1, lr=1e-3, warmup_ratio=0.0, threads=1,
                           device="cpu", max_seq_length=32, export=False, split=RepoSplit(heldout_repos=("org/repo3",))))
report = {"world": states[0].processes(), "trained_in": trained_in, "taus": [t for t, p in zip(seen, claimed) if p is not None]}
Path(out, "rank%s.json" % os.environ["RANK"]).write_text(json.dumps(report))
"""


@pytest.mark.slow
def test_two_gloo_processes_draw_at_the_tau_of_each_step(tmp_path):
    """Real DDP (2 CPU processes, ~20 s here), 36 training rows in batches of 4: 9 batches an epoch, an odd
    number, and 10 steps over 3 epochs. Each rank's draws follow the step its batches train in."""
    import json
    import subprocess
    import sys

    model = tiny_model(tmp_path / "model")
    stage = write_stage(tmp_path / "negatives", corpus_rows(48))
    script = tmp_path / "worker.py"
    script.write_text(DDP_WORKER)
    out = tmp_path / "out"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false",
           "PYTHONPATH": str(Path(__file__).resolve().parents[2]) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "0",
               "--rdzv-backend", "c10d", "--rdzv-endpoint", "localhost:0", str(script), str(stage), str(model), str(out)]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-4000:]
    for rank in (0, 1):
        report = json.loads((out / f"rank{rank}.json").read_text())
        assert report["world"] == 2 and report["trained_in"] == list(range(10))
        expected = [CURRICULUM.tau(step / 10) for step in report["trained_in"]]
        assert report["taus"][:10] == pytest.approx(expected, rel=1e-12), rank
