"""How documents are cut into chunks: the strategies and their settings, recorded with the index."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

STRATEGIES = ("sentences", "sections", "fixed", "spans")
DEFAULT_MAX_CHUNK_TOKENS = 512
# Documents of more tokens are quarantined by annotate. A million tokens is a long book (about 4 MB of English
# text), about 4 minutes of jina-v2-base on two CPU cores (docs/performance.md). Embed memory no longer grows with
# a document's tokens times the vector size (windows are pooled as they come), but its token ids and chunks do.
DEFAULT_MAX_DOCUMENT_TOKENS = 1_000_000


@dataclass(frozen=True)
class ChunkingConfig:
    """How to cut a document into chunks. Recorded with every chunk (``as_dict``)."""

    strategy: str = "sentences"  # "sentences" | "sections" | "fixed" | "spans"
    chunk_size: int = 256  # tokens per chunk, "fixed" only
    overlap: int = 0  # tokens shared by consecutive chunks, "fixed" only
    sentences_per_chunk: int = 1  # "sentences", and "sections" over the cap
    max_chunk_tokens: int = DEFAULT_MAX_CHUNK_TOKENS  # content tokens per chunk at most, "sentences", "sections"

    def validate(self) -> None:
        if self.strategy not in STRATEGIES:
            raise ValueError(f"unknown chunking strategy {self.strategy!r}; expected one of {STRATEGIES}")
        if self.chunk_size < 1:
            raise ValueError(f"chunk_size must be >= 1 token, got {self.chunk_size}")
        if not 0 <= self.overlap < self.chunk_size:
            raise ValueError(
                f"overlap must satisfy 0 <= overlap < chunk_size, got overlap={self.overlap}, "
                f"chunk_size={self.chunk_size}"
            )
        if self.sentences_per_chunk < 1:
            raise ValueError(f"sentences_per_chunk must be >= 1, got {self.sentences_per_chunk}")
        if self.max_chunk_tokens < 1:
            raise ValueError(f"max_chunk_tokens must be >= 1 token, got {self.max_chunk_tokens}")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)
