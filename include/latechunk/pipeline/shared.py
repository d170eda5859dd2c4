"""What the annotate, embed, index and validate stages share: where a batch is at each stage, and which tokenizer
gave its token ids."""

from __future__ import annotations

import re

_BATCH_INDEX = re.compile(r"batch-(\d+)\.parquet$")


def batch_index(batch_uri: str) -> int:
    """The batch number of a staged batch URI; every stage of a batch uses the same number."""
    match = _BATCH_INDEX.search(batch_uri)
    if not match:
        raise ValueError(f"not a staged batch URI: {batch_uri!r}")
    return int(match.group(1))


def stage_uri(batch_uri: str, stage: str) -> str:
    """The same batch at another stage: ``.../<run>/documents/batch-00003.parquet`` -> ``.../<run>/<stage>/...``."""
    batch_index(batch_uri)
    folder, _, name = batch_uri.rpartition("/")
    return f"{folder.rpartition('/')[0]}/{stage}/{name}"


def tokenizer_identity(model: str, revision: str) -> str:
    """The model and revision whose tokenizer gave a batch's token ids."""
    return f"{model}@{revision}"
