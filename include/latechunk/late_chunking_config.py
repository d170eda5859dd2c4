"""How chunk vectors are computed beyond one encoder window: the settings, without torch (the extract task checks
them and records them with the index)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

WINDOW_LAYOUTS = ("stitched", "centred")


@dataclass(frozen=True)
class LateChunkingConfig:
    """How chunk vectors are computed from the encoder beyond the window size: recorded with the chunking
    settings (``as_dict``), since vectors computed one way must not be mixed with vectors computed another."""

    window_layout: str = "stitched"
    frame_windows: bool = False
    naive_weight: float = 0.0

    def validate(self) -> None:
        if self.window_layout not in WINDOW_LAYOUTS:
            raise ValueError(f"window_layout must be one of {WINDOW_LAYOUTS}, got {self.window_layout!r}")
        if not 0.0 <= self.naive_weight <= 1.0:
            raise ValueError(f"naive_weight must be within [0, 1], got {self.naive_weight}")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def recorded(self) -> dict[str, Any]:
        """The settings that differ from plain long late chunking: what an index records (an index of plain late
        chunking records none, so indices from before these settings existed still match)."""
        plain = asdict(LateChunkingConfig())
        return {name: value for name, value in self.as_dict().items() if value != plain[name]}
