"""Native jina-embeddings-v2 encoder: BERT with ALiBi attention biases and a GEGLU feed-forward.

Loads the official checkpoints (``model.safetensors``, sharded safetensors or ``pytorch_model.bin``) by parameter
name, without remote code, so it runs on any ``transformers`` version. Architecture, per layer (post-LayerNorm):

    h = LayerNorm(x + Dense(SelfAttention(x, bias=ALiBi + padding mask)))
    y = LayerNorm(h + Wo(GELU(G[:, :I]) * G[:, I:])),  G = GatedLayers(h)   (no bias on GatedLayers)

There are no position embeddings: ALiBi adds ``-slope_h * |i - j|`` to the attention logits of head ``h``,
symmetric in both directions. The plain (reference) path runs padded batches through
``scaled_dot_product_attention`` with a dense (batch, heads, seq, seq) bias as an additive mask (a fused
memory-efficient kernel on CUDA); ``jina_packed`` runs packed sequences without a dense bias or padding. Both go
through the same layers: attention takes an ``attend(query, key, value)`` function.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from latechunk.embedding.encoders.base import Encoder
from latechunk.embedding.encoders.jina_packed import BACKENDS, Attend, default_backend, packed_attend, plan_packs

ATTENTION_MODES = ("plain", "packed", "auto")
ACTIVATIONS = {"geglu": F.gelu, "reglu": F.relu}
CHECKPOINT_PREFIXES = ("bert.", "model.")


@dataclass(frozen=True)
class JinaBertConfig:
    vocab_size: int
    hidden_size: int
    num_hidden_layers: int
    num_attention_heads: int
    intermediate_size: int
    max_position_embeddings: int = 8192
    type_vocab_size: int = 2
    layer_norm_eps: float = 1e-12
    pad_token_id: int = 0
    feed_forward_type: str = "geglu"

    @classmethod
    def from_dict(cls, config: dict[str, Any]) -> JinaBertConfig:
        fields = {name: config[name] for name in cls.__dataclass_fields__ if name in config}
        parsed = cls(**fields)
        if parsed.feed_forward_type not in ACTIVATIONS:
            raise ValueError(f"unsupported feed_forward_type {parsed.feed_forward_type!r}")
        if parsed.hidden_size % parsed.num_attention_heads:
            raise ValueError("hidden_size must be a multiple of num_attention_heads")
        return parsed


def alibi_slopes(num_heads: int) -> torch.Tensor:
    """Per-head ALiBi slopes (num_heads,): a geometric series for a power of two heads; otherwise the series of
    the nearest lower power of two followed by every other slope of the next power of two."""

    def power_of_two_slopes(n: int) -> list[float]:
        start = 2.0 ** (-8.0 / n)
        return [start ** (i + 1) for i in range(n)]

    lower = 2 ** math.floor(math.log2(num_heads))
    slopes = power_of_two_slopes(lower)
    if lower < num_heads:
        slopes += power_of_two_slopes(2 * lower)[0::2][: num_heads - lower]
    return torch.tensor(slopes, dtype=torch.float32)


def alibi_bias(num_heads: int, seq_len: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """Symmetric ALiBi bias (1, heads, seq, seq), built in float32 then cast."""
    positions = torch.arange(seq_len, device=device, dtype=torch.float32)
    distance = (positions[None, :] - positions[:, None]).abs()  # (seq, seq)
    slopes = alibi_slopes(num_heads).to(device)  # (heads,)
    return (-slopes[:, None, None] * distance[None]).unsqueeze(0).to(dtype)


class JinaBertEmbeddings(nn.Module):
    def __init__(self, config: JinaBertConfig) -> None:
        super().__init__()
        self.word_embeddings = nn.Embedding(config.vocab_size, config.hidden_size, padding_idx=config.pad_token_id)
        self.token_type_embeddings = nn.Embedding(config.type_vocab_size, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        # input_ids: (batch, seq) -> (batch, seq, hidden); every token has token type 0
        token_types = self.token_type_embeddings.weight[0]  # (hidden,)
        return self.LayerNorm(self.word_embeddings(input_ids) + token_types)


class JinaBertAttention(nn.Module):
    """Self-attention with query/key/value fused into one projection (``qkv``) at load time."""

    def __init__(self, config: JinaBertConfig) -> None:
        super().__init__()
        self.num_heads = config.num_attention_heads
        self.head_dim = config.hidden_size // config.num_attention_heads
        self.qkv = nn.Linear(config.hidden_size, 3 * config.hidden_size)
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)

    def forward(self, hidden: torch.Tensor, attend: Attend) -> torch.Tensor:
        # hidden: (batch, seq, hidden)
        batch, seq, width = hidden.shape
        qkv = self.qkv(hidden).view(batch, seq, 3, self.num_heads, self.head_dim)
        query, key, value = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # each (batch, heads, seq, head_dim)
        context = attend(query, key, value)  # (batch, heads, seq, head_dim)
        context = context.transpose(1, 2).reshape(batch, seq, width)
        return self.LayerNorm(hidden + self.dense(context))


class JinaBertGLUMLP(nn.Module):
    def __init__(self, config: JinaBertConfig) -> None:
        super().__init__()
        self.intermediate_size = config.intermediate_size
        self.activation = ACTIVATIONS[config.feed_forward_type]
        self.gated_layers = nn.Linear(config.hidden_size, 2 * config.intermediate_size, bias=False)
        self.wo = nn.Linear(config.intermediate_size, config.hidden_size)
        self.layernorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        # hidden: (batch, seq, hidden)
        gated, linear = self.gated_layers(hidden).split(self.intermediate_size, dim=-1)  # (b, s, I) each
        return self.layernorm(hidden + self.wo(self.activation(gated) * linear))


class JinaBertLayer(nn.Module):
    def __init__(self, config: JinaBertConfig) -> None:
        super().__init__()
        self.attention = JinaBertAttention(config)
        self.mlp = JinaBertGLUMLP(config)

    def forward(self, hidden: torch.Tensor, attend: Attend) -> torch.Tensor:
        return self.mlp(self.attention(hidden, attend))


class JinaBertModel(nn.Module):
    """Token ids -> last hidden states. Parameter names follow the official checkpoint, except that the
    per-layer query/key/value projections are fused (see :func:`fuse_qkv`)."""

    def __init__(self, config: JinaBertConfig) -> None:
        super().__init__()
        self.config = config
        self.embeddings = JinaBertEmbeddings(config)
        self.layers = nn.ModuleList(JinaBertLayer(config) for _ in range(config.num_hidden_layers))
        self._alibi_cache: dict[tuple[int, torch.device, torch.dtype], torch.Tensor] = {}

    def attention_bias(self, attention_mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        """ALiBi plus a key-padding mask: (1 or batch, heads, seq, seq)."""
        seq = attention_mask.shape[1]
        key = (seq, attention_mask.device, dtype)
        if key not in self._alibi_cache:
            self._alibi_cache.clear()
            self._alibi_cache[key] = alibi_bias(self.config.num_attention_heads, seq, attention_mask.device, dtype)
        bias = self._alibi_cache[key]  # (1, heads, seq, seq)
        if bool(attention_mask.all()):
            return bias
        padding = torch.zeros(attention_mask.shape, device=attention_mask.device, dtype=dtype)  # (batch, seq)
        padding.masked_fill_(attention_mask == 0, torch.finfo(dtype).min)
        return bias + padding[:, None, None, :]

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        # input_ids, attention_mask: (batch, seq) -> (batch, seq, hidden)
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        bias = self.attention_bias(attention_mask, self.embeddings.LayerNorm.weight.dtype)
        return self.encode(input_ids, partial(F.scaled_dot_product_attention, attn_mask=bias))

    def encode(self, input_ids: torch.Tensor, attend: Attend) -> torch.Tensor:
        # input_ids: (batch, seq) -> (batch, seq, hidden); ``attend`` carries ALiBi and the masking
        hidden = self.embeddings(input_ids)
        for layer in self.layers:
            hidden = layer(hidden, attend)
        return hidden


def fuse_qkv(state_dict: dict[str, torch.Tensor], num_layers: int) -> dict[str, torch.Tensor]:
    """Map official parameter names onto :class:`JinaBertModel`'s: strip a ``bert.``/``model.`` prefix,
    concatenate query/key/value into ``qkv``, move ``attention.output.*`` onto the attention module and
    drop what an encoder does not use (pooler, MLM head, buffers)."""
    state = {}
    for name, tensor in state_dict.items():
        for prefix in CHECKPOINT_PREFIXES:
            if name.startswith(prefix):
                name = name[len(prefix) :]
        state[name] = tensor
    mapped = {name: state[name] for name in state if name.startswith("embeddings.") and "position" not in name}
    for i in range(num_layers):
        source, target = f"encoder.layer.{i}.", f"layers.{i}."
        for kind in ("weight", "bias"):
            mapped[f"{target}attention.qkv.{kind}"] = torch.cat(
                [state[f"{source}attention.self.{proj}.{kind}"] for proj in ("query", "key", "value")]
            )
            mapped[f"{target}attention.dense.{kind}"] = state[f"{source}attention.output.dense.{kind}"]
            mapped[f"{target}attention.LayerNorm.{kind}"] = state[f"{source}attention.output.LayerNorm.{kind}"]
            mapped[f"{target}mlp.wo.{kind}"] = state[f"{source}mlp.wo.{kind}"]
            mapped[f"{target}mlp.layernorm.{kind}"] = state[f"{source}mlp.layernorm.{kind}"]
        mapped[f"{target}mlp.gated_layers.weight"] = state[f"{source}mlp.gated_layers.weight"]
    return mapped


def read_state_dict(checkpoint: Path) -> dict[str, torch.Tensor]:
    """All tensors of a checkpoint directory: single or sharded safetensors, else ``pytorch_model.bin``."""
    from safetensors.torch import load_file

    files = sorted(checkpoint.glob("*.safetensors"))
    if files:
        return {name: tensor for file in files for name, tensor in load_file(str(file)).items()}
    binaries = sorted(checkpoint.glob("pytorch_model*.bin"))
    if not binaries:
        raise FileNotFoundError(f"no safetensors or pytorch_model.bin weights in {checkpoint}")
    state: dict[str, torch.Tensor] = {}
    for file in binaries:
        state.update(torch.load(file, map_location="cpu", weights_only=True))
    return state


def load_jina_bert_model(checkpoint: Path, device: torch.device, dtype: torch.dtype) -> JinaBertModel:
    config = JinaBertConfig.from_dict(json.loads((checkpoint / "config.json").read_text()))
    model = JinaBertModel(config)
    try:
        weights = fuse_qkv(read_state_dict(checkpoint), config.num_hidden_layers)
    except KeyError as missing:
        raise ValueError(f"{checkpoint} is not a jina-bert checkpoint: parameter {missing} is missing") from None
    model.load_state_dict(weights, strict=True)
    return model.to(device=device, dtype=dtype).eval()


def resolve_attention(attention: str, device: torch.device) -> str:
    """``auto`` means plain, the reference, everywhere for now: on CPU the packed path measured faster on document
    windows but slower on many short (query-like) sequences, and its CUDA kernel (compiled FlexAttention) has not
    been measured on a GPU yet (docs/performance.md); ``packed`` opts in."""
    if attention not in ATTENTION_MODES:
        raise ValueError(f"attention must be one of {ATTENTION_MODES}, got {attention!r}")
    if attention == "auto":
        return "plain"
    return attention


class JinaBertEncoder(Encoder):
    """``attention``: ``plain`` runs padded batches with a dense ALiBi bias (the reference); ``packed`` packs
    whole sequences into rows of at most ``token_budget`` tokens (``jina_packed``); ``auto`` see
    :func:`resolve_attention`. ``backend``: the packed path's attention backend (``flex`` or ``segments``),
    default by device."""

    def __init__(
        self, model: JinaBertModel, *, attention: str = "auto", backend: str | None = None, **kwargs: Any
    ) -> None:
        super().__init__(dim=model.config.hidden_size, **kwargs)
        self.model = model
        self.attention = resolve_attention(attention, self.device)
        self.backend = backend or default_backend(self.device)
        if self.backend not in BACKENDS:
            raise ValueError(f"packed attention backend must be one of {BACKENDS}, got {self.backend!r}")
        self.slopes = alibi_slopes(model.config.num_attention_heads).to(self.device)  # (heads,) float32

    def forward_tokens(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.model(input_ids, attention_mask)

    def plan_batches(self, lengths: Sequence[int], token_budget: int) -> list[list[int]]:
        if self.attention == "plain":
            return super().plan_batches(lengths, token_budget)
        return plan_packs(lengths, token_budget)

    def batch_tokens(self, lengths: Sequence[int]) -> int:
        if self.attention == "plain":
            return super().batch_tokens(lengths)
        return sum(lengths)  # a pack holds its sequences back to back, unpadded

    def forward_batch(self, sequences: Sequence[Sequence[int]]) -> list[np.ndarray]:
        if self.attention == "plain":
            return super().forward_batch(sequences)
        lengths = [len(sequence) for sequence in sequences]
        input_ids = torch.tensor([[token for sequence in sequences for token in sequence]], dtype=torch.long)
        with torch.inference_mode():
            attend = packed_attend(self.slopes, lengths, self.backend)
            hidden = self.model.encode(input_ids.to(self.device), attend)[0]  # (total, dim), model dtype
            hidden = hidden.float().cpu().numpy()
        return np.split(hidden, np.cumsum(lengths)[:-1])
