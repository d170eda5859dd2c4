"""The pipeline's metrics: what each task's summary says, as named numbers for StatsD or OpenTelemetry.

Names are ``latechunk.<dag_id>.<what>`` (Airflow's own ``[metrics] statsd_prefix``, ``airflow`` by default, comes
in front). Per-run figures are gauges (a dashboard shows the last run's value); figures of mapped tasks, one per
batch, are counters, so that they add up over a run's batches; a stage's time is a timer. The table of every name
is in docs/deployment.md ("Metrics").
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

MetricKind = Literal["gauge", "counter", "timer"]
# Summary count of the extract task -> metric name.
EXTRACT_GAUGES = {
    "objects_listed": "documents_listed",
    "objects_new": "documents_new",
    "objects_modified": "documents_changed",
    "objects_unchanged": "documents_unchanged",
    "keys_to_delete": "documents_deleted",
    "objects_quarantined": "documents_quarantined",
}
# Summary count of the index task -> metric name; its quarantine count includes what later stages quarantined.
INDEX_GAUGES = {
    "documents_written": "documents_written",
    "chunks_indexed": "chunks_indexed",
    "objects_quarantined": "documents_quarantined",
}
INDEX_DELETIONS = ("stale_chunks_deleted", "superseded_chunks_deleted", "removed_object_chunks_deleted",
                   "quarantined_object_chunks_deleted")
MAPPED_STAGES = ("annotate", "embed")
_NOT_IN_A_NAME = re.compile(r"[^A-Za-z0-9_-]")


@dataclass(frozen=True)
class Metric:
    name: str
    kind: MetricKind
    value: float


def metric_name(dag_id: str, *parts: str) -> str:
    """``latechunk.<dag_id>.<part>...``, each part with the characters StatsD and OTel refuse replaced by ``_``."""
    return ".".join(["latechunk", *(_NOT_IN_A_NAME.sub("_", part) for part in (dag_id, *parts))])


def stage_metrics(dag_id: str, stage: str, summary: dict[str, Any]) -> list[Metric]:
    """The metrics of one finished task of ``stage`` (extract, annotate, embed, index, validate), from its summary."""
    metrics: list[Metric] = []
    if isinstance(summary.get("seconds"), int | float):
        metrics.append(Metric(metric_name(dag_id, "seconds", stage), "timer", float(summary["seconds"])))
    if summary.get("tokens") and summary.get("tokens_per_s"):
        metrics.append(Metric(metric_name(dag_id, "tokens_per_s", stage), "gauge", float(summary["tokens_per_s"])))
    if stage in MAPPED_STAGES:
        for name in ("documents", "tokens", "chunks"):
            if isinstance(summary.get(name), int):
                metrics.append(Metric(metric_name(dag_id, name, stage), "counter", summary[name]))
    gauges = {"extract": EXTRACT_GAUGES, "index": INDEX_GAUGES}.get(stage, {})
    metrics += [Metric(metric_name(dag_id, name), "gauge", summary[key])
                for key, name in gauges.items() if isinstance(summary.get(key), int)]
    if stage == "index":
        deleted = sum(int(summary.get(name) or 0) for name in INDEX_DELETIONS)
        metrics.append(Metric(metric_name(dag_id, "chunks_deleted"), "gauge", deleted))
    if stage == "validate" and isinstance(summary.get("checks"), dict):
        metrics += validation_metrics(dag_id, summary["checks"], passed=bool(summary.get("passed")))
    return metrics


def validation_metrics(dag_id: str, checks: dict[str, float | None], *, passed: bool) -> list[Metric]:
    """One gauge per check that measured something (skipped checks have no value), and the verdict as 1 or 0."""
    metrics = [Metric(metric_name(dag_id, "validation", name), "gauge", float(value))
               for name, value in checks.items() if isinstance(value, int | float)]
    metrics.append(Metric(metric_name(dag_id, "validation", "passed"), "gauge", 1.0 if passed else 0.0))
    return metrics
