"""Progress lines for long tasks: one at least every `every_s` seconds while a task works, with rates and an ETA."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field

log = logging.getLogger("latechunk.progress")


@dataclass
class Progress:
    """Counts of one task's work.

    Used as a context manager, a background thread logs `line()` every `every_s` seconds even while one long
    document or batch is in progress; `advance` also logs when `every_s` has passed since the last line. The ETA
    extrapolates the token rate when the total number of tokens is known (documents differ in length by orders of
    magnitude, so a per-document rate misleads), else the document rate.
    """

    task: str
    total_docs: int | None = None
    total_tokens: int | None = None
    every_s: float = 30.0
    docs: int = 0
    tokens: int = 0
    chunks: int = 0
    started: float = field(default_factory=time.monotonic)
    _last_log: float = field(default_factory=time.monotonic, repr=False)
    _stop: threading.Event = field(default_factory=threading.Event, repr=False)
    _ticker: threading.Thread | None = field(default=None, repr=False)

    def __enter__(self) -> Progress:
        self._stop.clear()
        self._ticker = threading.Thread(target=self._tick, name=f"{self.task}-progress", daemon=True)
        self._ticker.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        if self._ticker is not None:
            self._ticker.join()
            self._ticker = None

    def _tick(self) -> None:
        while not self._stop.wait(max(self._last_log + self.every_s - time.monotonic(), 0.0)):
            if time.monotonic() - self._last_log >= self.every_s:
                self._log_line()

    def _log_line(self) -> None:
        self._last_log = time.monotonic()
        log.info("%s", self.line())

    def advance(self, *, docs: int = 0, tokens: int = 0, chunks: int = 0) -> None:
        self.docs += docs
        self.tokens += tokens
        self.chunks += chunks
        if time.monotonic() - self._last_log >= self.every_s:
            self._log_line()

    @property
    def seconds(self) -> float:
        return time.monotonic() - self.started

    def eta_seconds(self) -> float | None:
        """Seconds left at the rate so far; None before any work is done or without a total."""
        elapsed = self.seconds
        if self.total_tokens and self.tokens:
            return max(self.total_tokens - self.tokens, 0) * elapsed / self.tokens
        if self.total_docs and self.docs:
            return max(self.total_docs - self.docs, 0) * elapsed / self.docs
        return None

    def line(self) -> str:
        elapsed = max(self.seconds, 1e-9)
        of_total = f"/{self.total_docs:,}" if self.total_docs is not None else ""
        parts = [f"{self.task}: {self.docs:,}{of_total} docs"]
        if self.tokens or self.total_tokens:
            total = f"/{self.total_tokens:,}" if self.total_tokens else ""
            parts.append(f"{self.tokens:,}{total} tokens ({self.tokens / elapsed:,.0f}/s)")
        if self.chunks:
            parts.append(f"{self.chunks:,} chunks")
        parts.append(f"{self.docs / elapsed:.2f} docs/s")
        parts.append(f"{elapsed:,.0f}s elapsed")
        eta = self.eta_seconds()
        if eta is not None:
            parts.append(f"ETA {eta:,.0f}s")
        elif self.total_docs or self.total_tokens:
            parts.append("ETA after the first document")
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


# Counts of the stages' summaries, in the order a person reads them, with their words.
SUMMARY_LABELS = (
    ("objects_listed", "objects selected"),
    ("objects_new", "new"),
    ("objects_modified", "modified"),
    ("objects_unchanged", "unchanged"),
    ("objects_quarantined", "quarantined"),
    ("keys_to_delete", "to delete"),
    ("documents", "documents"),
    ("chunks", "chunks"),
    ("tokens", "tokens"),
    ("long_documents", "documents longer than the window"),
    ("extra_tokens", "extra tokens encoded for them"),
    ("documents_written", "documents written"),
    ("chunks_indexed", "chunks indexed"),
    ("superseded_chunks_deleted", "superseded chunks deleted"),
    ("removed_object_chunks_deleted", "chunks of deleted objects removed"),
    ("failed_documents", "documents failed"),
    ("quarantined", "quarantined"),
)


def summary_line(task: str, summary: dict) -> str:
    """One sentence a person can read at the end of a task log, from the task's structured summary."""
    counts = [f"{summary[key]:,} {label}" for key, label in SUMMARY_LABELS if isinstance(summary.get(key), int)]
    if isinstance(summary.get("passed"), bool):
        counts.insert(0, "validation passed" if summary["passed"] else "validation FAILED")
    line = f"{task} done: " + (", ".join(counts) or "nothing to report")
    if summary.get("seconds"):
        line += f" in {summary['seconds']:,.1f}s"
        if summary.get("tokens_per_s"):
            line += f" ({summary['tokens_per_s']:,.0f} tokens/s)"
    return line
