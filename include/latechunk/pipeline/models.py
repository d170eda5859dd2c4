"""What the pipeline needs to know about a model without loading its weights."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from latechunk.chunking.levels import DEFAULT_LEVELS
from latechunk.embedding.checkpoints import (
    RevisionUnavailable,
    checkpoint_revision,
    is_jina_bert_config,
    model_window,
    resolve_checkpoint,
    tokenizer_limit,
)
from latechunk.index.spec import IndexSpec

if TYPE_CHECKING:
    from latechunk.pipeline.manifest import RunManifest


@dataclass(frozen=True)
class ModelInfo:
    model_id: str
    dims: int
    revision: str
    window: int  # the most tokens one forward pass takes, as the encoder will use it


@lru_cache(maxsize=8)
def describe_model(model: str, revision: str | None = None) -> ModelInfo:
    """Vector size, revision and window of a model (hub id or local path), from its config and files, without
    loading its weights; raises a clear error for a model that cannot be found (`RevisionUnavailable` for a
    ``revision`` that is not at hand)."""
    try:
        checkpoint = resolve_checkpoint(model, revision)
    except RevisionUnavailable:
        raise
    except Exception as error:
        raise ValueError(
            f"unknown model {model!r}: not a local checkpoint directory and not in the Hugging Face cache "
            f"({error})"
        ) from error
    config = json.loads((checkpoint / "config.json").read_text())
    dims = config.get("hidden_size") or config.get("d_model") or config.get("dim")
    if not dims:
        raise ValueError(f"model {model!r}: its config.json names no hidden_size")
    if is_jina_bert_config(config):
        window = int(config["max_position_embeddings"])
    else:
        window = model_window(config, tokenizer_limit(checkpoint))
    return ModelInfo(model_id=model, dims=int(dims), revision=checkpoint_revision(checkpoint), window=window)


@lru_cache(maxsize=8)
def load_tokenizer(model: str, revision: str | None = None) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(resolve_checkpoint(model, revision))


def index_spec(
    name: str,
    *,
    model: str,
    dims: int,
    revision: str,
    chunking: dict[str, Any],
    window: int,
    window_overlap: int | None,
    late_chunking: dict[str, Any] | None = None,
    index_options: dict[str, Any] | None = None,
    levels: tuple[str, ...] = DEFAULT_LEVELS,
) -> IndexSpec:
    """The index configuration of a run: what its `_meta` records and what an existing index must match."""
    options = {"index_options": index_options} if index_options else {}
    return IndexSpec(
        name=name, dims=dims, model_id=model, model_revision=revision, chunking=chunking, window=window,
        window_overlap=window_overlap, late_chunking=late_chunking or {}, levels=levels, **options,
    )  # fmt: skip


def manifest_index_spec(name: str, manifest: RunManifest, index_options: dict[str, Any] | None = None) -> IndexSpec:
    """The run's index configuration, as the extract stage recorded it in the manifest."""
    return index_spec(
        name, model=manifest.model, dims=manifest.dims, revision=manifest.model_revision,
        chunking=manifest.chunking.as_dict(), window=manifest.window, window_overlap=manifest.window_overlap,
        late_chunking=manifest.late_chunking.recorded(), index_options=index_options, levels=manifest.levels,
    )  # fmt: skip
