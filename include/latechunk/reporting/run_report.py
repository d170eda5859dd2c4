"""One run's report, assembled from what its tasks wrote: the manifest, the validation report and the summaries.

This is what a user reads to know what a run did: how many objects it listed and what became of each (new, changed,
unchanged, indexed, deferred, deleted, quarantined with the reason), how many chunks and tokens it wrote, how long
each stage took and how fast it went, and what each validation check measured against which threshold.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from latechunk.embedding.config import LateChunkingConfig

STAGES = ("extract", "annotate", "embed", "index", "validate")


@dataclass
class StageFigures:
    stage: str
    tasks: int = 0
    seconds: float = 0.0
    tokens: int = 0
    chunks: int = 0
    state: str = "none"

    @property
    def tokens_per_s(self) -> float | None:
        return round(self.tokens / self.seconds, 1) if self.tokens and self.seconds else None


@dataclass
class RunReport:
    dag_id: str
    run_id: str
    index: str | None
    model: str | None
    objects: dict[str, int]
    quarantine: list[dict[str, Any]]
    chunks_written: int
    chunks_deleted: int
    tokens: int
    stages: list[StageFigures]
    validation: dict[str, Any] | None
    links: dict[str, str] = field(default_factory=dict)
    model_revision: str | None = None
    long_documents: dict[str, Any] = field(default_factory=dict)
    # An event run's notifications: how many, the keys they named, the rejected ones by reason, the oldest and
    # newest event time, and the delay from those to the end of the index task (empty for other runs).
    events: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        stages = [{**asdict(stage), "tokens_per_s": stage.tokens_per_s} for stage in self.stages]
        return {**asdict(self), "stages": stages}


def build_run_report(
    *,
    dag_id: str,
    run_id: str,
    manifest: dict[str, Any] | None,
    validation: dict[str, Any] | None,
    summaries: dict[str, list[dict[str, Any]]],
    task_times: dict[str, list[tuple[str | None, float]]],
    links: dict[str, str] | None = None,
) -> RunReport:
    """``summaries``: each task's XCom summaries (one per mapped instance); ``task_times``: each task's instances
    as (state, seconds)."""
    extract = (summaries.get("extract") or [{}])[0]
    index = (summaries.get("index") or [{}])[0]
    objects = {
        "listed": int(extract.get("objects_listed") or 0),
        "new": int(extract.get("objects_new") or 0),
        "changed": int(extract.get("objects_modified") or 0),
        "unchanged": int(extract.get("objects_unchanged") or 0),
        "deleted": len((manifest or {}).get("deleted_keys") or []),
        # The index task's account, once it ran, includes the objects that gave no chunk or that the index refused.
        "quarantined": int(index.get("objects_quarantined", extract.get("objects_quarantined")) or 0),
        "indexed": int(index.get("objects_indexed") or 0),
        "deferred": int(index.get("objects_deferred") or 0),
        # Objects of failed batches, left to the next run, and those this run read again for an earlier one.
        "pending": int(index.get("objects_pending") or 0),
        "retried": int(extract.get("objects_retried") or 0),
    }
    # The validation report's list holds every stage's entries; without it, extract's and the index task's.
    quarantine = (validation or {}).get("quarantine") or [
        *((manifest or {}).get("quarantine") or []), *(index.get("index_quarantine") or [])
    ]
    stages = [_stage(stage, summaries.get(stage) or [], task_times.get(stage) or []) for stage in STAGES]
    embedded = next(stage for stage in stages if stage.stage == "embed")
    deleted = sum(int(index.get(name) or 0) for name in
                  ("stale_chunks_deleted", "superseded_chunks_deleted", "removed_object_chunks_deleted",
                   "quarantined_object_chunks_deleted"))
    return RunReport(
        dag_id=dag_id,
        run_id=run_id,
        index=(manifest or {}).get("index"),
        model=(manifest or {}).get("model"),
        objects=objects,
        quarantine=list(quarantine),
        chunks_written=int(index.get("chunks_indexed") or 0),
        chunks_deleted=deleted,
        tokens=embedded.tokens,
        stages=stages,
        validation=validation,
        links=dict(links or {}),
        model_revision=(manifest or {}).get("model_revision"),
        long_documents=long_documents(manifest, summaries.get("embed") or []),
        events=event_report(extract.get("events"), index.get("finished_at")),
    )


def event_report(figures: dict[str, Any] | None, indexed_at: str | None) -> dict[str, Any]:
    """The events an event run took, with their end-to-end delays once its index task is done."""
    if not figures:
        return {}
    from datetime import datetime

    from latechunk.sources.events import delays

    return {**figures, **(delays(figures, datetime.fromisoformat(indexed_at)) if indexed_at else {})}


def long_documents(manifest: dict[str, Any] | None, embedded: list[dict[str, Any]]) -> dict[str, Any]:
    """Which method computed the vectors of documents longer than the window (as the manifest recorded it) and
    what it cost this run: how many documents were that long, their share of the embedded documents, and the
    tokens the encoder processed beyond the documents' own (summed over the embed tasks' summaries)."""
    if not manifest:
        return {}
    summaries = [summary for summary in embedded if isinstance(summary, dict)]
    documents = sum(int(summary.get("documents") or 0) for summary in summaries)
    long_docs = sum(int(summary.get("long_documents") or 0) for summary in summaries)
    tokens = sum(int(summary.get("tokens") or 0) for summary in summaries)
    extra = sum(int(summary.get("extra_tokens") or 0) for summary in summaries)
    return {
        "method": LateChunkingConfig.from_recorded(manifest.get("late_chunking") or {}).name,
        "window": manifest.get("window"),
        "window_overlap": manifest.get("window_overlap"),
        "documents": long_docs,
        "share": round(long_docs / documents, 4) if documents else None,
        "extra_tokens": extra,
        "encoder_cost": round((tokens + extra) / tokens, 4) if tokens else None,
    }


def _stage(stage: str, summaries: list[dict[str, Any]], times: list[tuple[str | None, float]]) -> StageFigures:
    states = {state for state, _ in times}
    state = "none" if not times else next(
        (s for s in ("failed", "running", "queued", "upstream_failed") if s in states), sorted(states, key=str)[0]
    )
    return StageFigures(
        stage=stage,
        tasks=len(times),
        seconds=round(sum(seconds for _, seconds in times), 1),
        tokens=sum(int(summary.get("tokens") or 0) for summary in summaries if isinstance(summary, dict)),
        chunks=sum(int(summary.get("chunks") or 0) for summary in summaries if isinstance(summary, dict)),
        state=str(state),
    )
