"""Progress lines for long tasks: at most one every `every_s` seconds, with rates and an ETA."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

log = logging.getLogger("latechunk.progress")


@dataclass
class Progress:
    """Counts of one task's work. `advance` logs a line when `every_s` has passed since the last one."""

    task: str
    total_docs: int | None = None
    every_s: float = 30.0
    docs: int = 0
    tokens: int = 0
    chunks: int = 0
    started: float = field(default_factory=time.monotonic)
    _last_log: float = field(default_factory=time.monotonic)

    def advance(self, *, docs: int = 0, tokens: int = 0, chunks: int = 0) -> None:
        self.docs += docs
        self.tokens += tokens
        self.chunks += chunks
        now = time.monotonic()
        if now - self._last_log >= self.every_s:
            self._last_log = now
            log.info("%s", self.line())

    @property
    def seconds(self) -> float:
        return time.monotonic() - self.started

    def line(self) -> str:
        elapsed = max(self.seconds, 1e-9)
        parts = [f"{self.task}: {self.docs}" + (f"/{self.total_docs}" if self.total_docs is not None else "") + " docs"]
        if self.tokens:
            parts.append(f"{self.tokens} tokens ({self.tokens / elapsed:,.0f}/s)")
        if self.chunks:
            parts.append(f"{self.chunks} chunks")
        parts.append(f"{self.docs / elapsed:.2f} docs/s")
        if self.total_docs and self.docs:
            remaining = (self.total_docs - self.docs) * elapsed / self.docs
            parts.append(f"ETA {remaining:,.0f}s")
        return ", ".join(parts)

    def summary(self) -> dict[str, float | int]:
        elapsed = max(self.seconds, 1e-9)
        return {
            "documents": self.docs,
            "tokens": self.tokens,
            "chunks": self.chunks,
            "seconds": round(elapsed, 3),
            "tokens_per_s": round(self.tokens / elapsed, 1),
            "docs_per_s": round(self.docs / elapsed, 3),
        }
