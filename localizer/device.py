"""Which torch device a ``--device`` value means: the one answer the embedder, the reranker and training share.

There used to be three answers. The embedder and the reranker passed an explicit value through
unchecked, so ``--device cuda`` on a machine without CUDA failed deep inside torch with a
multi-line traceback, or with a model-load error that blamed the model; training checked it and
said so in one line. Now every caller gets training's behaviour:

* ``auto`` (or an empty value) picks CUDA when torch sees a GPU, else Apple's MPS when torch has
  it, else the CPU: the fastest device present, which is what sentence-transformers and
  transformers pick themselves when given none;
* ``cpu`` is always granted;
* an explicitly requested device that this machine lacks (``cuda``/``cuda:N`` without CUDA or
  with fewer than N+1 GPUs, ``mps`` without MPS) or a value torch cannot parse is a
  :class:`DeviceError`, one line that names the device, instead of a silent fall back to the CPU
  (a GPU run that quietly trains on the CPU wastes hours before anyone notices).

Any other device torch can parse (``xpu``, ``meta``) is passed through for torch to judge.
"""

from __future__ import annotations

from indexer.errors import LocalizerError

AUTO = "auto"


class DeviceError(LocalizerError):
    """The requested device does not exist on this machine or is not a device name."""


def resolve_device(device: str | None = AUTO) -> str:
    """The device to put models on for ``device`` (``auto``, ``cpu``, ``cuda``, ``cuda:N``, ``mps``, ...)."""
    device = (device or AUTO).strip()
    if device == "cpu":
        return device
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a dependency
        if device == AUTO:
            return "cpu"
        raise DeviceError(f"--device {device} needs torch, which is not installed") from None
    if device == AUTO:
        if torch.cuda.is_available():
            return "cuda"
        if _mps_available(torch):
            return "mps"
        return "cpu"
    try:
        parsed = torch.device(device)
    except (RuntimeError, ValueError):
        raise DeviceError(f"unknown device {device!r}: use auto, cpu, cuda, cuda:N or mps") from None
    if parsed.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceError(f"--device {device} was asked for but no CUDA device is available")
        count = torch.cuda.device_count()
        if parsed.index is not None and parsed.index >= count:
            raise DeviceError(f"--device {device} was asked for but this machine has {count} CUDA device(s)")
    elif parsed.type == "mps" and not _mps_available(torch):
        raise DeviceError(f"--device {device} was asked for but no MPS device is available")
    return device


def _mps_available(torch) -> bool:
    backend = getattr(getattr(torch, "backends", None), "mps", None)
    return bool(backend is not None and backend.is_available())


__all__ = ["AUTO", "DeviceError", "resolve_device"]
