"""One device rule for the embedder, the reranker and training (localizer.device)."""

from __future__ import annotations

import types

import pytest

from indexer.errors import LocalizerError
from localizer import device as device_module
from localizer.device import DeviceError, resolve_device


def _fake_torch(cuda: int = 0, mps: bool = False):
    """A stand-in for torch with ``cuda`` GPUs and (or not) MPS; torch.device parses as the real one does."""
    import torch

    return types.SimpleNamespace(
        cuda=types.SimpleNamespace(is_available=lambda: cuda > 0, device_count=lambda: cuda),
        backends=types.SimpleNamespace(mps=types.SimpleNamespace(is_available=lambda: mps)),
        device=torch.device,
    )


@pytest.fixture
def machine(monkeypatch):
    def use(cuda: int = 0, mps: bool = False) -> None:
        monkeypatch.setitem(__import__("sys").modules, "torch", _fake_torch(cuda, mps))

    return use


def test_auto_picks_cuda_then_mps_then_cpu(machine):
    machine(cuda=1, mps=True)
    assert resolve_device("auto") == "cuda"
    machine(cuda=0, mps=True)
    assert resolve_device("auto") == "mps"
    machine()
    assert resolve_device("auto") == resolve_device(None) == resolve_device("") == "cpu"


def test_explicit_devices_are_checked_in_one_line(machine):
    machine(cuda=2)
    assert resolve_device("cpu") == "cpu"
    assert resolve_device("cuda") == "cuda" and resolve_device("cuda:1") == "cuda:1"
    with pytest.raises(DeviceError, match="has 2 CUDA device"):
        resolve_device("cuda:2")
    with pytest.raises(DeviceError, match="no MPS device"):
        resolve_device("mps")
    machine()
    with pytest.raises(DeviceError, match="no CUDA device is available") as info:
        resolve_device("cuda")
    assert isinstance(info.value, LocalizerError) and "\n" not in str(info.value)
    with pytest.raises(DeviceError, match="unknown device 'gpu0'"):
        resolve_device("gpu0")


def test_the_runtime_callers_share_the_rule():
    from localizer.embedding import embedder
    from localizer.rerank import models

    assert embedder.resolve_device is models.resolve_device is device_module.resolve_device


def test_onnx_backends_take_auto_as_the_cpu(machine):
    from localizer.embedding.embedder import EmbedderConfig, _device_for

    machine(cuda=1)
    assert _device_for(EmbedderConfig(device="auto", backend="onnx-int8")) == "cpu"
    assert _device_for(EmbedderConfig(device="auto", backend="torch")) == "cuda"
    assert _device_for(EmbedderConfig(device="cuda", backend="onnx")) == "cuda"  # refused later, by name
