"""A plain-torch Qwen2 forward pass, for first-token scoring without transformers' model stack.

Why: a fresh ``localize --rerank`` has 10 s for the top 20, model load included (issue #25), and
on the 2-core machine importing transformers' Qwen2 modules alone took about 2.1 s of it: they pull
in generation, loss and distributed-sharding code that scoring never runs. This module needs torch
and safetensors only, and reads the weights memory-mapped.

It implements exactly what :class:`~localizer.rerank.scorers.FirstTokenScorer` calls: a forward
pass over left-padded prompts with explicit position ids, the logits of the last positions, and a
KV cache that later calls extend and :meth:`KVCache.crop` shortens. Everything else (generation for
``--rerank-mode generate``, training, adapters that are not merged, and any config this does not
implement: rope scaling, sliding windows, other activations) loads through transformers.
A parity test holds it to transformers' logits on a random tiny Qwen2.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

WEIGHTS = "model.safetensors"


@dataclass(frozen=True)
class Qwen2Shape:
    """The numbers of a Qwen2 ``config.json`` this module needs."""

    heads: int
    kv_heads: int
    head_dim: int
    layers: int
    eps: float
    rope_theta: float
    max_positions: int
    tied: bool

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "Qwen2Shape | None":
        """None for a config this module does not implement (transformers loads those)."""
        if config.get("model_type") != "qwen2" or config.get("hidden_act", "silu") != "silu":
            return None
        if config.get("use_sliding_window") or config.get("rope_scaling"):
            return None
        rope = config.get("rope_parameters") or {}
        if rope.get("rope_type", "default") != "default":
            return None
        heads = int(config["num_attention_heads"])
        hidden = int(config["hidden_size"])
        return cls(heads=heads, kv_heads=int(config.get("num_key_value_heads") or heads),
                   head_dim=int(config.get("head_dim") or hidden // heads), layers=int(config["num_hidden_layers"]),
                   eps=float(config.get("rms_norm_eps", 1e-6)),
                   rope_theta=float(rope.get("rope_theta", config.get("rope_theta", 10000.0))),
                   max_positions=int(config.get("max_position_embeddings", 32768)),
                   tied=bool(config.get("tie_word_embeddings", False)))


class KVCache:
    """Keys and values per layer, ``[batch, kv_heads, tokens, head_dim]``; ``crop`` as transformers'
    ``DynamicCache.crop`` (a negative length drops that many tokens from the end)."""

    def __init__(self, layers: int) -> None:
        self.keys: list[torch.Tensor | None] = [None] * layers
        self.values: list[torch.Tensor | None] = [None] * layers

    def get_seq_length(self) -> int:
        return 0 if self.keys[0] is None else int(self.keys[0].shape[2])

    def update(self, layer: int, key: torch.Tensor, value: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.keys[layer] is not None:
            key = torch.cat([self.keys[layer], key], dim=2)
            value = torch.cat([self.values[layer], value], dim=2)
        self.keys[layer], self.values[layer] = key, value
        return key, value

    def crop(self, max_length: int) -> None:
        length = self.get_seq_length()
        if max_length < 0:
            max_length = length + max_length
        if length <= max_length:
            return
        self.keys = [k[:, :, :max_length] if k is not None else None for k in self.keys]
        self.values = [v[:, :, :max_length] if v is not None else None for v in self.values]


@dataclass
class Output:
    logits: torch.Tensor
    past_key_values: KVCache | None


def _rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """As transformers' Qwen2RMSNorm: normalized in fp32, scaled in the input's dtype."""
    dtype = x.dtype
    x32 = x.float()
    x32 = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + eps)
    return weight * x32.to(dtype)


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def _attention_kwargs(attention_mask: torch.Tensor, past: int, new: int) -> dict[str, Any]:
    """How ``scaled_dot_product_attention`` masks ``new`` queries after ``past`` cached tokens.

    Without padding, a fresh prompt is plain causal and a single new token sees everything: torch's
    fused CPU kernel serves those, several times faster on a 1,000-token prompt than an explicit mask.
    Otherwise (left padding, or several new tokens after a cache) an explicit mask: causal, bottom-right
    aligned, padding hidden. A padded query sees no real key, so it is let see itself: no row is all
    -inf, whose NaN would reach real rows through their zero attention weights.
    """
    if bool(attention_mask.all()):
        if past == 0:
            return {"is_causal": True}
        if new == 1:
            return {}
    device = attention_mask.device
    keys = torch.arange(past + new, device=device)
    queries = past + torch.arange(new, device=device)
    allowed = (keys[None, :] <= queries[:, None])[None, None] & attention_mask[:, None, None, :].bool()
    return {"attn_mask": allowed | (keys[None, :] == queries[:, None])[None, None]}


class Qwen2ForScoring(nn.Module):
    """Qwen2's decoder, weights by their transformers names, for :class:`FirstTokenScorer`."""

    def __init__(self, shape: Qwen2Shape, weights: dict[str, torch.Tensor]) -> None:
        super().__init__()
        self.shape = shape
        self.config = SimpleNamespace(max_position_embeddings=shape.max_positions, model_type="qwen2")
        if shape.tied or "lm_head.weight" not in weights:
            weights = {**weights, "lm_head.weight": weights["model.embed_tokens.weight"]}
        # keep transformers' names, so the state dict reads like the checkpoint
        self.weights = nn.ParameterDict({name.replace(".", "/"): nn.Parameter(t, requires_grad=False)
                                         for name, t in weights.items()})
        inv_freq = 1.0 / (shape.rope_theta ** (torch.arange(0, shape.head_dim, 2, dtype=torch.int64).float()
                                               / shape.head_dim))
        self.register_buffer("inv_freq", inv_freq, persistent=False)

    def w(self, name: str) -> torch.Tensor:
        return self.weights[name.replace(".", "/")]

    def _rope(self, position_ids: torch.Tensor, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        freqs = position_ids[:, :, None].float() * self.inv_freq[None, None, :].float()
        emb = torch.cat((freqs, freqs), dim=-1)
        return emb.cos().to(dtype)[:, None], emb.sin().to(dtype)[:, None]

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                position_ids: torch.Tensor | None = None, past_key_values: KVCache | None = None,
                logits_to_keep: int = 1, use_cache: bool = True) -> Output:
        s = self.shape
        batch, new = input_ids.shape
        cache = past_key_values if past_key_values is not None else KVCache(s.layers)
        past = cache.get_seq_length()
        device = input_ids.device
        if attention_mask is None:
            attention_mask = torch.ones(batch, past + new, dtype=torch.long, device=device)
        if position_ids is None:
            position_ids = torch.arange(past, past + new, device=device)[None].expand(batch, new)
        x = F.embedding(input_ids, self.w("model.embed_tokens.weight"))
        cos, sin = self._rope(position_ids, x.dtype)
        attention = _attention_kwargs(attention_mask, past, new)
        for i in range(s.layers):
            p = f"model.layers.{i}."
            h = _rms_norm(x, self.w(p + "input_layernorm.weight"), s.eps)
            q = F.linear(h, self.w(p + "self_attn.q_proj.weight"), self.w(p + "self_attn.q_proj.bias"))
            k = F.linear(h, self.w(p + "self_attn.k_proj.weight"), self.w(p + "self_attn.k_proj.bias"))
            v = F.linear(h, self.w(p + "self_attn.v_proj.weight"), self.w(p + "self_attn.v_proj.bias"))
            q = q.view(batch, new, s.heads, s.head_dim).transpose(1, 2)
            k = k.view(batch, new, s.kv_heads, s.head_dim).transpose(1, 2)
            v = v.view(batch, new, s.kv_heads, s.head_dim).transpose(1, 2)
            q = q * cos + _rotate_half(q) * sin
            k = k * cos + _rotate_half(k) * sin
            k, v = cache.update(i, k, v)
            attn = F.scaled_dot_product_attention(q, k, v, enable_gqa=True, **attention)
            attn = attn.transpose(1, 2).reshape(batch, new, s.heads * s.head_dim)
            x = x + F.linear(attn, self.w(p + "self_attn.o_proj.weight"))
            h = _rms_norm(x, self.w(p + "post_attention_layernorm.weight"), s.eps)
            gate = F.linear(h, self.w(p + "mlp.gate_proj.weight"))
            up = F.linear(h, self.w(p + "mlp.up_proj.weight"))
            x = x + F.linear(F.silu(gate) * up, self.w(p + "mlp.down_proj.weight"))
        x = _rms_norm(x[:, -logits_to_keep:] if logits_to_keep else x, self.w("model.norm.weight"), s.eps)
        return Output(F.linear(x, self.w("lm_head.weight")), cache if use_cache else None)


def load_qwen2_for_scoring(directory: str | Path, dtype: torch.dtype) -> Qwen2ForScoring | None:
    """The model in ``directory`` (a transformers save with one ``model.safetensors``), or None when
    this module does not implement it."""
    from safetensors.torch import load_file

    directory = Path(directory)
    config_path, weights_path = directory / "config.json", directory / WEIGHTS
    if not config_path.is_file() or not weights_path.is_file():
        return None
    shape = Qwen2Shape.from_config(json.loads(config_path.read_text()))
    if shape is None:
        return None
    weights = load_file(str(weights_path))
    needed = {"model.embed_tokens.weight", "model.norm.weight"}
    if not needed <= weights.keys() or f"model.layers.{shape.layers - 1}.self_attn.q_proj.bias" not in weights:
        return None
    weights = {name: t if t.dtype == dtype else t.to(dtype) for name, t in weights.items()}
    return Qwen2ForScoring(shape, weights).eval()
