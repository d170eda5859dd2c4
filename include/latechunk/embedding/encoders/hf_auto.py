"""Generic encoder for architectures that ``transformers`` implements natively (BERT/MiniLM, XLM-RoBERTa,
ModernBERT, ...), loaded with ``AutoModel`` and run with SDPA attention."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from latechunk.embedding.encoders.base import Encoder


def sentence_transformers_pooling(checkpoint: Path) -> str:
    """The query pooling a sentence-transformers checkpoint declares ('mean' when it declares none)."""
    pooling_config = checkpoint / "1_Pooling" / "config.json"
    if pooling_config.is_file() and json.loads(pooling_config.read_text()).get("pooling_mode_cls_token"):
        return "cls"
    return "mean"


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
