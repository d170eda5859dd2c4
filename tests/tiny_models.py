"""Tiny random encoders built on the fly: a WordPiece tokenizer from a small vocabulary, a 2-layer BERT and a
2-layer jina-v2 checkpoint (official parameter names), saved to a directory and loadable like any real checkpoint."""

from __future__ import annotations

import json
import string
from pathlib import Path

import numpy as np
import torch

WORDS = (
    "the a an is was of and to in it she he her his they their on at for with from by as this that "
    "sarah johnson marine biologist works hawaii spends months diving near coral reefs research focuses "
    "how rising ocean temperatures affect berlin city capital germany population million people"
).split()
CJK = "我爱你他也很好中文北京"


def tiny_vocab() -> list[str]:
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    letters = list(string.ascii_lowercase + string.digits)
    return specials + list(string.punctuation) + list("。！？…“”’") + letters + [f"##{c}" for c in letters] + list(
        CJK
    ) + WORDS


def save_tiny_tokenizer(directory: Path) -> None:
    from transformers import BertTokenizer

    directory.mkdir(parents=True, exist_ok=True)
    vocab = {token: index for index, token in enumerate(tiny_vocab())}
    BertTokenizer(vocab=vocab, do_lower_case=True, model_max_length=512).save_pretrained(directory)


def save_tiny_bert(directory: Path) -> None:
    from transformers import BertConfig, BertModel

    save_tiny_tokenizer(directory)
    config = BertConfig(
        vocab_size=len(tiny_vocab()),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=128,
    )
    torch.manual_seed(0)
    BertModel(config).save_pretrained(directory)


def jina_checkpoint_tensors(vocab_size: int, hidden: int, layers: int, intermediate: int, seed: int):
    """Random weights under the official jina-embeddings-v2 parameter names (plus an unused pooler)."""
    rng = np.random.default_rng(seed)

    def normal(*shape: int, std: float = 0.3) -> torch.Tensor:
        return torch.from_numpy((rng.standard_normal(shape) * std).astype(np.float32))

    def layer_norm(prefix: str) -> dict[str, torch.Tensor]:
        return {f"{prefix}.weight": 1 + normal(hidden, std=0.1), f"{prefix}.bias": normal(hidden, std=0.1)}

    tensors = {
        "embeddings.word_embeddings.weight": normal(vocab_size, hidden, std=1.0),
        "embeddings.token_type_embeddings.weight": normal(2, hidden, std=1.0),
        **layer_norm("embeddings.LayerNorm"),
        "pooler.dense.weight": normal(hidden, hidden),
        "pooler.dense.bias": normal(hidden),
    }
    for i in range(layers):
        prefix = f"encoder.layer.{i}"
        for projection in ("query", "key", "value"):
            tensors[f"{prefix}.attention.self.{projection}.weight"] = normal(hidden, hidden)
            tensors[f"{prefix}.attention.self.{projection}.bias"] = normal(hidden, std=0.1)
        tensors[f"{prefix}.attention.output.dense.weight"] = normal(hidden, hidden)
        tensors[f"{prefix}.attention.output.dense.bias"] = normal(hidden, std=0.1)
        tensors.update(layer_norm(f"{prefix}.attention.output.LayerNorm"))
        tensors[f"{prefix}.mlp.gated_layers.weight"] = normal(2 * intermediate, hidden)
        tensors[f"{prefix}.mlp.wo.weight"] = normal(hidden, intermediate)
        tensors[f"{prefix}.mlp.wo.bias"] = normal(hidden, std=0.1)
        tensors.update(layer_norm(f"{prefix}.mlp.layernorm"))
    return tensors


def save_tiny_jina(
    directory: Path, seed: int = 7, *, hidden: int = 32, layers: int = 2, heads: int = 4, intermediate: int = 48
) -> None:
    """A random jina-v2 checkpoint (tiny by default; bench/pipeline_throughput.py asks for other sizes)."""
    from safetensors.torch import save_file

    save_tiny_tokenizer(directory)
    config = {
        "architectures": ["JinaBertForMaskedLM"],
        "model_type": "bert",
        "hidden_size": hidden,
        "num_hidden_layers": layers,
        "num_attention_heads": heads,
        "intermediate_size": intermediate,
        "max_position_embeddings": 8192,
        "position_embedding_type": "alibi",
        "feed_forward_type": "geglu",
        "vocab_size": len(tiny_vocab()),
        "type_vocab_size": 2,
        "layer_norm_eps": 1e-12,
        "pad_token_id": 0,
    }
    (directory / "config.json").write_text(json.dumps(config))
    tensors = jina_checkpoint_tensors(len(tiny_vocab()), hidden, layers, intermediate, seed=seed)
    save_file(tensors, str(directory / "model.safetensors"))


def stand_in_encoder(dim: int = 768, window: int = 8192, vocab: int = 1000):
    """A one-layer stand-in with a real model's vector size and window, cheap enough for a million tokens on CPU:
    each output is the token's embedding plus the mean embedding of its window (so outputs depend on the window).
    It has no tokenizer: feed it token ids."""
    from latechunk.embedding.encoders.base import Encoder

    class StandInEncoder(Encoder):
        def __init__(self) -> None:
            super().__init__(
                tokenizer=None, max_length=window, dim=dim, model_id="stand-in", revision="0",
                device=torch.device("cpu"), dtype=torch.float32,
            )  # fmt: skip
            generator = torch.Generator().manual_seed(0)
            self.table = torch.randn((vocab, dim), generator=generator)  # (vocab, dim)

        def forward_tokens(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            own = self.table[input_ids]  # (batch, seq, dim)
            mask = attention_mask.unsqueeze(-1).to(own.dtype)  # (batch, seq, 1)
            return own + (own * mask).sum(dim=1, keepdim=True) / mask.sum(dim=1, keepdim=True)

    return StandInEncoder()
