"""ONNX Runtime inference for sentence-transformers encoders, optionally int8-quantized.

Why not sentence-transformers' own ``backend="onnx"``: it goes through optimum,
whose current releases pin transformers below 5 and would downgrade the
stack. The graph here is the same one optimum exports (the bare transformer's
``last_hidden_state``); pooling and normalization stay in numpy, so any
mean/CLS-pooled BERT-like model works.

Measured on this project's 2-core AVX2 CPU (benchmarks/RESULTS.md): dynamic
int8 with per-channel weight scales costs about 0.82x the CPU time of torch
fp32 and keeps cosine 0.992 to the fp32 vectors; per-tensor scales are a
little faster but drift to cosine 0.93, so they are not offered. Plain ONNX
fp32 was no faster than torch here, but is kept for machines where it is.

The exported graph is cached once per model under the localizer cache dir,
written atomically, and keyed by the model identity, so it is never stale.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Sequence

import numpy as np

from indexer.errors import ModelLoadError

log = logging.getLogger(__name__)

# Every embedder runtime: torch fp32 (the default), torch under bf16 autocast (embedder.py), and the two ONNX ones here.
BACKENDS = ("torch", "torch-bf16", "onnx", "onnx-int8")
EXPORT_VERSION = "1"  # bump when the export recipe changes: the cache key includes it
_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def onnx_cache_dir(identity: str, root: Path | None = None) -> Path:
    if root is None:
        from indexer.index import default_index_dir

        root = default_index_dir()
    digest = hashlib.sha256(f"{EXPORT_VERSION}\0{identity}".encode()).hexdigest()[:24]
    return Path(root) / "onnx" / digest


def _pooling_mode(st_model) -> str:
    names = [type(module).__name__ for module in st_model]
    if len(names) < 2 or names[0] != "Transformer" or names[1] != "Pooling":
        raise ModelLoadError(f"the ONNX backend supports Transformer+Pooling models, not {'+'.join(names)}")
    mode = getattr(st_model[1], "pooling_mode", None) or st_model[1].get_config_dict().get("pooling_mode")
    if mode not in ("mean", "cls"):
        raise ModelLoadError(f"the ONNX backend supports mean or CLS pooling, not {mode!r}")
    return mode


def export_onnx(st_model, target_dir: Path, quantize: bool) -> Path:
    """Export (and optionally quantize) once; concurrent exporters race harmlessly to the same rename."""
    name = "model_int8.onnx" if quantize else "model.onnx"
    final = target_dir / name
    if final.exists():
        return final
    try:
        import onnx  # noqa: F401 - the exporter needs it; fail here with a clear message

        del onnx
        import torch
        from onnxruntime.quantization import QuantType, quantize_dynamic
    except ImportError as exc:
        raise ModelLoadError("the ONNX backends need onnx and onnxruntime: pip install 'cornstack-localizer[onnx]'") from exc

    target_dir.mkdir(parents=True, exist_ok=True)
    transformer = st_model[0].auto_model.eval()
    tokenizer = st_model.tokenizer
    sample = tokenizer(["def f(x):\n    return x", "a query"], padding=True, return_tensors="pt")
    input_names = [k for k in _INPUTS if k in sample]

    class _HiddenStates(torch.nn.Module):
        def __init__(self, model) -> None:
            super().__init__()
            self.model = model

        def forward(self, *inputs):
            return self.model(**dict(zip(input_names, inputs))).last_hidden_state

    log.info("exporting the embedder to ONNX%s once; later runs reuse %s", " (int8)" if quantize else "", final)
    with tempfile.TemporaryDirectory(dir=target_dir) as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the tracer's warnings are about its own internals, not the user's input
        fp32_path = Path(tmp) / "model.onnx"
        axes = {name: {0: "batch", 1: "sequence"} for name in [*input_names, "last_hidden_state"]}
        with torch.no_grad():
            torch.onnx.export(
                _HiddenStates(transformer), tuple(sample[k] for k in input_names), str(fp32_path),
                input_names=input_names, output_names=["last_hidden_state"], dynamic_axes=axes,
                opset_version=17, dynamo=False,
            )
        produced = fp32_path
        if quantize:
            produced = Path(tmp) / "model_int8.onnx"
            quantize_dynamic(str(fp32_path), str(produced), weight_type=QuantType.QInt8, per_channel=True)
        staged = target_dir / f".{name}.{os.getpid()}.tmp"
        shutil.copyfile(produced, staged)
        os.replace(staged, final)
    return final


class OnnxEncoder:
    """Encodes like ``SentenceTransformer.encode(normalize_embeddings=True)`` but through ONNX Runtime."""

    def __init__(self, st_model, identity: str, quantize: bool, cache_root: Path | None = None, threads: int | None = None):
        try:
            import onnxruntime as ort
        except ImportError as exc:
            raise ModelLoadError("the ONNX backends need onnxruntime: pip install 'cornstack-localizer[onnx]'") from exc
        self.pooling = _pooling_mode(st_model)
        self.tokenizer = st_model.tokenizer
        self.max_seq_length = int(st_model.max_seq_length or 512)
        self.normalize = any(type(module).__name__ == "Normalize" for module in st_model)
        path = export_onnx(st_model, onnx_cache_dir(identity, cache_root), quantize)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1)
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.path = path

    def encode(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        """Longest first in length-sorted batches, so padding is small; results come back in input order."""
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        out: list[np.ndarray | None] = [None] * len(texts)
        for start in range(0, len(order), batch_size):
            batch = [texts[i] for i in order[start : start + batch_size]]
            enc = self.tokenizer(batch, padding=True, truncation=True, max_length=self.max_seq_length, return_tensors="np")
            feeds = {name: enc[name].astype(np.int64) for name in self.input_names}
            hidden = self.session.run(None, feeds)[0]
            vectors = pool(hidden, enc["attention_mask"], self.pooling)
            if self.normalize:
                vectors = l2_normalize(vectors)
            for row, index in enumerate(order[start : start + batch_size]):
                out[index] = vectors[row]
        return np.asarray(out, dtype=np.float32).reshape(len(texts), -1)


def pool(hidden: np.ndarray, attention_mask: np.ndarray, mode: str) -> np.ndarray:
    if mode == "cls":
        return hidden[:, 0, :]
    mask = attention_mask[..., None].astype(hidden.dtype)
    return (hidden * mask).sum(axis=1) / np.clip(mask.sum(axis=1), 1e-9, None)


def l2_normalize(vectors: np.ndarray) -> np.ndarray:
    return vectors / np.clip(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12, None)
