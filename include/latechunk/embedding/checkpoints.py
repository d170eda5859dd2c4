"""What a checkpoint is, read from its files alone: where it lives, its revision, its family and its window.

Nothing here imports torch or transformers, so the tasks that never encode (extract, index) stay light.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

WEIGHT_FILE_PATTERN = re.compile(r".*\.(safetensors|bin)$")
# transformers' stand-in for "no limit" in tokenizer configs (and absurd values some revisions ship).
UNSET_TOKENIZER_LIMIT = 1_000_000


class RevisionUnavailable(ValueError):
    """The revision a run recorded is not the one at hand: its vectors would be another model's."""


def resolve_checkpoint(model_name_or_path: str | Path, revision: str | None = None) -> Path:
    """A local directory as is; otherwise a hub repo id resolved through the local Hugging Face cache
    (``HF_HUB_OFFLINE=1`` keeps it offline). With ``revision`` (a `checkpoint_revision`), exactly that revision:
    a cached snapshot of that commit, or a local directory whose files hash to it; `RevisionUnavailable` if not,
    never whatever the cache's ``main`` or the directory holds now."""
    path = Path(model_name_or_path)
    if path.is_dir():
        if revision is not None and checkpoint_revision(path) != revision:
            raise RevisionUnavailable(
                f"{path} now holds revision {checkpoint_revision(path)}, not {revision} that the run recorded: "
                "restore that checkpoint or start a new run"
            )
        return path
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(str(model_name_or_path), revision=revision))
    except Exception as error:
        if revision is None:
            raise
        raise RevisionUnavailable(
            f"{model_name_or_path} at revision {revision}, which the run recorded, is not available ({error}): "
            "download that revision into the model cache or start a new run"
        ) from error


def checkpoint_revision(path: Path) -> str:
    """The hub commit for a cache snapshot; otherwise a content hash of the config and weight files, so a
    changed checkpoint never passes for the same revision."""
    parts = path.resolve().parts
    if len(parts) >= 2 and parts[-2] == "snapshots" and re.fullmatch(r"[0-9a-f]{40}", parts[-1]):
        return parts[-1]
    digest = hashlib.sha256()
    for file in sorted(path.iterdir()):
        if file.name == "config.json" or WEIGHT_FILE_PATTERN.fullmatch(file.name):
            digest.update(file.name.encode())
            with file.open("rb") as handle:
                for block in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(block)
    return "sha256:" + digest.hexdigest()[:16]


def is_jina_bert_config(config: dict[str, Any]) -> bool:
    """True for jina-embeddings-v2 style checkpoints, whose config says ``model_type: bert`` but which
    ``transformers`` would silently build as a plain BERT."""
    architectures = " ".join(config.get("architectures") or [])
    auto_map = " ".join(str(value) for value in (config.get("auto_map") or {}).values())
    return (
        "JinaBert" in architectures
        or "jina-bert" in auto_map
        or "JinaBert" in auto_map
        or config.get("position_embedding_type") == "alibi"
    )


def model_window(config: dict[str, Any], tokenizer_limit: int | None) -> int:
    """The most tokens one forward pass can take: the model's position table (XLM-R style configs reserve
    ``pad_token_id + 1`` positions), capped by the tokenizer's limit when it sets a real one."""
    limits = []
    positions = config.get("max_position_embeddings")
    if positions is not None:
        if config.get("model_type", "") in ("xlm-roberta", "roberta", "camembert"):
            positions -= (config.get("pad_token_id") or 1) + 1
        limits.append(int(positions))
    if tokenizer_limit and tokenizer_limit < UNSET_TOKENIZER_LIMIT:
        limits.append(int(tokenizer_limit))
    if not limits:
        raise ValueError("cannot tell the model window: pass max_length explicitly")
    return min(limits)


def tokenizer_limit(checkpoint: Path) -> int | None:
    """``model_max_length`` from the checkpoint's tokenizer config, if it has one."""
    path = checkpoint / "tokenizer_config.json"
    if not path.is_file():
        return None
    value = json.loads(path.read_text()).get("model_max_length")
    return int(value) if isinstance(value, int | float) else None
