"""Encoders: ``load_encoder`` picks the native jina-embeddings-v2 implementation for jina-bert checkpoints
and ``transformers.AutoModel`` for everything ``transformers`` supports natively."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from latechunk.embedding.checkpoints import checkpoint_revision, is_jina_bert_config, model_window, resolve_checkpoint
from latechunk.embedding.encoders.base import Encoder, resolve_device, resolve_dtype
from latechunk.embedding.encoders.hf_auto import HFAutoEncoder, load_hf_auto_model, sentence_transformers_pooling
from latechunk.embedding.encoders.jina_bert import JinaBertEncoder, load_jina_bert_model

__all__ = ["Encoder", "load_encoder"]


def load_encoder(
    model_name_or_path: str | Path,
    *,
    device: str | torch.device | None = None,
    dtype: str | torch.dtype | None = None,
    max_length: int | None = None,
    revision: str | None = None,
    attention: str = "auto",
) -> Encoder:
    """Load an encoder from a local checkpoint directory or a hub repo id (resolved through the local cache).

    ``device``: default CUDA when available, else CPU. ``dtype``: ``auto`` (the default) or a name, see
    :func:`latechunk.embedding.encoders.base.resolve_dtype`.
    ``max_length``: the window in tokens; default the model's own (8192 for jina-embeddings-v2), never the
    tokenizer's ``model_max_length`` when that is unset or absurd. ``attention``: ``plain``, ``packed`` or
    ``auto`` for jina-bert checkpoints (see :class:`JinaBertEncoder`); other architectures run plain only.
    """
    from transformers import AutoTokenizer

    checkpoint = resolve_checkpoint(model_name_or_path, revision)
    torch_device = resolve_device(device)
    torch_dtype = resolve_dtype(dtype, torch_device)
    tokenizer = AutoTokenizer.from_pretrained(checkpoint)
    common = dict(
        tokenizer=tokenizer,
        model_id=str(model_name_or_path),
        revision=checkpoint_revision(checkpoint),
        device=torch_device,
        dtype=torch_dtype,
    )
    raw_config = json.loads((checkpoint / "config.json").read_text())
    if is_jina_bert_config(raw_config):
        model = load_jina_bert_model(checkpoint, torch_device, torch_dtype)
        window = max_length or model.config.max_position_embeddings
        return JinaBertEncoder(model, max_length=window, attention=attention, **common)
    if attention == "packed":
        raise ValueError(f"packed attention is implemented for jina-bert checkpoints only, not {model_name_or_path}")
    model = load_hf_auto_model(checkpoint, torch_device, torch_dtype)
    window = max_length or model_window(model.config.to_dict(), tokenizer.model_max_length)
    return HFAutoEncoder(model, max_length=window, query_pooling=sentence_transformers_pooling(checkpoint), **common)
