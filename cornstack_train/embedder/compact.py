"""Write a fine-tuned embedder as a small delta on top of the packaged MiniLM.

The format, and the loader the runtime uses, are ``localizer.embedding.shipped``'s (why a
delta, why fp16 differences, the files of a delta directory): the runtime must read shipped
weights without importing the training package. This module is the writer's half, which only
training needs: compare a trained model with the base, keep the tensors that changed, and
write them with their manifest atomically.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from indexer.storage.atomic import atomic_replace_dir
from localizer.embedding.shipped import (
    CARD_FILE,
    DELTA_FILE,
    FORMAT,
    MANIFEST_FILE,
    CompactError,
    base_model_dir,
    sha256_file,
    weights_sha256,
)


def compute_delta(trained_state: dict[str, Any], base_state: dict[str, Any]) -> dict[str, Any]:
    """fp16 ``trained - base`` for every tensor that changed; unchanged tensors are left out."""
    import torch

    delta: dict[str, Any] = {}
    for key, value in trained_state.items():
        if key not in base_state:
            raise CompactError(f"tensor {key!r} is not in the base model (was a LoRA adapter left unmerged?)")
        base = base_state[key]
        if tuple(base.shape) != tuple(value.shape):
            raise CompactError(f"tensor {key!r} has shape {tuple(value.shape)}, base has {tuple(base.shape)}")
        if not torch.is_floating_point(value):
            if not torch.equal(value.cpu(), base.cpu()):
                raise CompactError(f"integer tensor {key!r} differs from the base model")
            continue
        diff = value.detach().float().cpu() - base.detach().float().cpu()
        if torch.count_nonzero(diff):
            delta[key] = diff.to(torch.float16).contiguous()
    return delta


def write_compact(model, out_dir: str | Path, base: str | Path | None = None, card: str | None = None,
                  overwrite: bool = False) -> Path:
    """Write the delta of ``model`` (a SentenceTransformer) against the base model, atomically."""
    from safetensors.torch import save_file
    from sentence_transformers import SentenceTransformer

    out = Path(out_dir)
    if out.exists() and not overwrite:
        raise CompactError(f"{out} already exists")
    base_dir = base_model_dir(base)
    base_model = SentenceTransformer(str(base_dir), device="cpu")
    delta = compute_delta(model.state_dict(), base_model.state_dict())
    manifest = {
        "format": FORMAT,
        "base_weights_sha256": weights_sha256(base_dir),
        "keys": sorted(delta),
        "parameters": int(sum(t.numel() for t in delta.values())),
        "max_seq_length": int(model.max_seq_length or 0),
    }

    def write(tmp: Path) -> None:
        save_file(delta, str(tmp / DELTA_FILE), metadata={"format": FORMAT})
        manifest["delta_sha256"] = sha256_file(tmp / DELTA_FILE)
        (tmp / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2) + "\n")
        if card:
            (tmp / CARD_FILE).write_text(card)

    atomic_replace_dir(out, write)
    return out


__all__ = ["compute_delta", "write_compact"]
