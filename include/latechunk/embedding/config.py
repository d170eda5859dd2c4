"""How chunk vectors are computed beyond one encoder window: the settings, without torch (the extract task checks
them and records them with the index)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

WINDOW_LAYOUTS = ("stitched", "centred", "chunk_centred")
CHUNK_CENTRED = "chunk_centred"
# Context tokens on each side of a chunk in its own window (``chunk_centred``): measured best of 16/32/64/127 on
# long meetings with 64- and 256-token chunks (docs/retrieval-quality.md).
DEFAULT_CHUNK_CONTEXT = 32
# Context tokens consecutive windows share, by default: min(DEFAULT_OVERLAP, window // 4), i.e. 128 for a
# 512-token window (the measured setting) and 256 from 1,024 tokens up (jina-embeddings-v2's 8,192).
DEFAULT_OVERLAP = 256


# Padded tokens per forward pass of the embed stage, by default: bounds its memory.
DEFAULT_TOKEN_BUDGET = 16384


def default_overlap(window: int) -> int:
    return min(DEFAULT_OVERLAP, window // 4)


@dataclass(frozen=True)
class LateChunkingConfig:
    """How chunk vectors are computed from the encoder beyond the window size: recorded with the chunking
    settings (``recorded``), since vectors computed one way must not be mixed with vectors computed another.

    The defaults are the method measured best on long documents (docs/retrieval-quality.md, "Long documents"):
    centred, framed windows, each chunk vector mixed with its naive vector at weight 0.6. They change nothing for
    a document that fits one window."""

    window_layout: str = "centred"
    frame_windows: bool = True
    naive_weight: float = 0.6
    chunk_context: int = DEFAULT_CHUNK_CONTEXT  # ``chunk_centred`` only: context tokens on each side of a chunk

    def validate(self) -> None:
        if self.window_layout not in WINDOW_LAYOUTS:
            raise ValueError(f"window_layout must be one of {WINDOW_LAYOUTS}, got {self.window_layout!r}")
        if not 0.0 <= self.naive_weight <= 1.0:
            raise ValueError(f"naive_weight must be within [0, 1], got {self.naive_weight}")
        if self.chunk_context < 0:
            raise ValueError(f"chunk_context must be >= 0 tokens, got {self.chunk_context}")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def recorded(self) -> dict[str, Any]:
        """The settings that differ from plain long late chunking (`PLAIN`): what an index records. An index of
        plain late chunking records none, so indices from before these settings existed (and indices built with
        the former defaults) read as plain and are refused by a run of any other method."""
        plain = asdict(PLAIN)
        recorded = {name: value for name, value in self.as_dict().items() if value != plain[name]}
        if self.window_layout != CHUNK_CENTRED:  # the context of chunk-centred windows changes nothing else
            recorded.pop("chunk_context", None)
        return recorded

    @classmethod
    def from_recorded(cls, recorded: dict[str, Any]) -> LateChunkingConfig:
        """The config an index or manifest recorded (`recorded`): plain late chunking for what it leaves out."""
        return replace(PLAIN, **recorded)

    @property
    def name(self) -> str:
        """The method in words, for reports: e.g. ``centred+framed, naive 0.6`` or ``stitched (plain)``."""
        if self == PLAIN:
            return "stitched (plain)"
        framed = "+framed" if self.frame_windows else ""
        context = f", context {self.chunk_context}" if self.window_layout == CHUNK_CENTRED else ""
        mix = f", naive {self.naive_weight:g}" if self.naive_weight else ""
        return f"{self.window_layout}{framed}{context}{mix}"


# Plain long late chunking, the reference implementation's and this project's default before the measured method
# became the default: the baseline `recorded` compares with.
PLAIN = LateChunkingConfig(window_layout="stitched", frame_windows=False, naive_weight=0.0)
