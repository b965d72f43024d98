"""Two CPU processes (gloo) train together and gather each other's embeddings for the loss.

The worker script counts the rows that come back from sentence-transformers'
``all_gather_with_grad`` inside the loss: with 2 processes each gather must
return twice the local batch, which is what "negatives gathered across
devices" means. It is launched with ``python -m torch.distributed.run``.

Marked slow: two fresh interpreters importing torch, transformers and
sentence-transformers take most of its ~70 s on a shared 2-core machine.
Run it with ``python -m pytest -m slow tests/cornstack_train/test_train_ddp.py``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.train_fixtures import corpus_rows, tiny_model, write_stage

WORKER = textwrap.dedent(
    """
    import json, os, sys
    from pathlib import Path

    import sentence_transformers.sentence_transformer.losses.cached_multiple_negatives_ranking as cached

    from cornstack_train.data.splits import RepoSplit
    from cornstack_train.embedder.training import TrainConfig, train

    gathered = []
    original = cached.all_gather_with_grad

    def counting_gather(tensor):
        result = original(tensor)
        gathered.append([int(tensor.shape[0]), int(result.shape[0])])
        return result

    cached.all_gather_with_grad = counting_gather
    data, model, out = sys.argv[1:4]
    stats = train(TrainConfig(data=Path(data), out=Path(out), model=model, batch_size=4, mini_batch_size=4,
                              hard_negatives=2, max_steps=3, save_steps=100, logging_steps=1, lr=1e-3,
                              warmup_ratio=0.0, threads=1, device="cpu", max_seq_length=32,
                              split=RepoSplit(heldout_repos=("org/repo3",))))
    rank = int(os.environ["RANK"])
    Path(out, f"rank{rank}.json").write_text(json.dumps({"run": stats["run"], "gathered": gathered}))
    """
)


@pytest.mark.slow
def test_two_process_gloo_training_gathers_negatives(tmp_path):
    model = tiny_model(tmp_path / "model")
    stage = write_stage(tmp_path / "negatives", corpus_rows(48))
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    out = tmp_path / "out"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false",
           "PYTHONPATH": str(Path(__file__).resolve().parents[2]) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "0",
               "--rdzv-backend", "c10d", "--rdzv-endpoint", "localhost:0", str(script), str(stage), str(model), str(out)]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stderr[-4000:]
    reports = [json.loads((out / f"rank{rank}.json").read_text()) for rank in (0, 1)]
    for report in reports:
        assert report["run"]["world_size"] == 2 and report["run"]["global_step"] == 3
        assert report["run"]["gather_across_devices"] is True
        # per step: queries, positives, 2 negatives -> 4 gathers, each local 4 rows -> 8 rows
        assert len(report["gathered"]) == 3 * 4
        assert all(local == 4 and total == 8 for local, total in report["gathered"])
    assert (out / "model" / "modules.json").exists()  # rank 0 exported
    stats = json.loads((out / "train_stats.json").read_text())
    assert stats["run"]["world_size"] == 2
