"""What the pipeline needs to know about a model without loading its weights."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from latechunk.encoders.base import checkpoint_revision, resolve_checkpoint


@dataclass(frozen=True)
class ModelInfo:
    model_id: str
    dims: int
    revision: str


@lru_cache(maxsize=8)
def describe_model(model: str) -> ModelInfo:
    """Vector size and revision of a model (hub id or local path), from its config and files; raises a clear
    error for a model that cannot be found."""
    try:
        checkpoint = resolve_checkpoint(model)
    except Exception as error:
        raise ValueError(
            f"unknown model {model!r}: not a local checkpoint directory and not in the Hugging Face cache "
            f"({error})"
        ) from error
    config = json.loads((checkpoint / "config.json").read_text())
    dims = config.get("hidden_size") or config.get("d_model") or config.get("dim")
    if not dims:
        raise ValueError(f"model {model!r}: its config.json names no hidden_size")
    return ModelInfo(model_id=model, dims=int(dims), revision=checkpoint_revision(checkpoint))


@lru_cache(maxsize=8)
def load_tokenizer(model: str) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(resolve_checkpoint(model))
