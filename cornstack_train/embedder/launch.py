"""Run a ``TrainConfig`` in N local data-parallel processes (torchrun), from Python.

``cornstack-train train`` under ``torchrun`` covers a person at a shell. Callers that hold a
config object (``ablate``) use this instead: the config travels as JSON, each process rebuilds
it and calls :func:`training.train`, which picks up ``RANK``/``WORLD_SIZE`` and gathers the
negatives across processes. On two CPU cores, two single-thread processes ran a step of
batch 32 in 6.3 s; one two-thread process took 13-15 s (docs/training.md).

``batch_size`` stays the *global* batch: each process gets ``batch_size / nproc``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from indexer.storage.atomic import atomic_write_text

from cornstack_train.data.splits import RepoSplit
from cornstack_train.embedder.training import TrainConfig, train
from cornstack_train.errors import TrainingError


def config_to_json(config: TrainConfig) -> str:
    return json.dumps(dataclasses.asdict(config), default=str, indent=2) + "\n"


def config_from_json(text: str) -> TrainConfig:
    raw = json.loads(text)
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ValueError(f"unknown TrainConfig field(s): {', '.join(unknown)}")
    raw["data"], raw["out"] = Path(raw["data"]), Path(raw["out"])
    split = raw["split"]
    raw["split"] = RepoSplit(**{**split, "heldout_repos": tuple(split["heldout_repos"])})
    return TrainConfig(**raw)


def per_process_config(config: TrainConfig, nproc: int) -> TrainConfig:
    """The config each of ``nproc`` processes runs: its share of the global batch, one thread."""
    if nproc < 1:
        raise ValueError("nproc must be >= 1")
    if config.batch_size % nproc or config.batch_size // nproc < 2:
        raise ValueError(f"a global batch of {config.batch_size} does not split into {nproc} processes of >= 2")
    per = config.batch_size // nproc
    return dataclasses.replace(config, batch_size=per, mini_batch_size=min(config.mini_batch_size, per), threads=1)


def launch_command(config_path: Path, nproc: int, python: str = sys.executable) -> list[str]:
    return [python, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
            "-m", "cornstack_train.embedder.launch", str(config_path)]


def train_in_processes(config: TrainConfig, nproc: int, run=subprocess.run) -> dict[str, Any]:
    """Train ``config`` in ``nproc`` processes; returns the stats rank 0 wrote. ``run`` is for tests."""
    if nproc == 1:
        return train(config)
    shared = per_process_config(config, nproc)
    config_path = Path(config.out).parent / f".{Path(config.out).name}.train-config.json"
    config_path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(config_path, config_to_json(shared))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = run(launch_command(config_path, nproc), env=env)
    if result.returncode != 0:
        raise TrainingError(f"training in {nproc} processes failed (exit {result.returncode}); config {config_path}")
    return json.loads((Path(config.out) / "train_stats.json").read_text())


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        raise SystemExit("usage: python -m cornstack_train.embedder.launch CONFIG.json (under torchrun)")
    train(config_from_json(Path(args[0]).read_text()))


if __name__ == "__main__":  # pragma: no cover
    main()
