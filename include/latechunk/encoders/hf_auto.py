"""Generic encoder for architectures that ``transformers`` implements natively (BERT/MiniLM, XLM-RoBERTa,
ModernBERT, ...), loaded with ``AutoModel`` and run with SDPA attention."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from latechunk.encoders.base import Encoder

# Tokenizers that set no real limit report a huge model_max_length; anything above this is not a window.
UNSET_TOKENIZER_LIMIT = 1_000_000


def sentence_transformers_pooling(checkpoint: Path) -> str:
    """The query pooling a sentence-transformers checkpoint declares ('mean' when it declares none)."""
    pooling_config = checkpoint / "1_Pooling" / "config.json"
    if pooling_config.is_file() and json.loads(pooling_config.read_text()).get("pooling_mode_cls_token"):
        return "cls"
    return "mean"


def model_window(config: Any, tokenizer: Any) -> int:
    """The most tokens one forward pass can take: the model's position table (XLM-R style configs reserve
    ``pad_token_id + 1`` positions), capped by the tokenizer's limit when it sets a real one."""
    limits = []
    positions = getattr(config, "max_position_embeddings", None)
    if positions is not None:
        if getattr(config, "model_type", "") in ("xlm-roberta", "roberta", "camembert"):
            positions -= getattr(config, "pad_token_id", 1) + 1
        limits.append(int(positions))
    tokenizer_limit = getattr(tokenizer, "model_max_length", None)
    if tokenizer_limit and tokenizer_limit < UNSET_TOKENIZER_LIMIT:
        limits.append(int(tokenizer_limit))
    if not limits:
        raise ValueError("cannot tell the model window: pass max_length explicitly")
    return min(limits)


class HFAutoEncoder(Encoder):
    def __init__(self, model: torch.nn.Module, **kwargs: Any) -> None:
        super().__init__(dim=model.config.hidden_size, **kwargs)
        self.model = model

    def forward_tokens(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state


def load_hf_auto_model(checkpoint: Path, device: torch.device, dtype: torch.dtype) -> torch.nn.Module:
    from transformers import AutoModel

    model = AutoModel.from_pretrained(checkpoint, dtype=dtype, attn_implementation="sdpa")
    return model.to(device).eval()
