"""Figures of many runs of one DAG side by side: what the trends page plots, one point per run.

Each run's figures come from its run report (``run_report.build_run_report``), so the trends page and the report
tab never disagree about a run. Runs are ordered oldest first; a figure a run does not have (a run that failed
before validating, a stage that encoded no tokens) is None and leaves a gap in its line instead of a zero.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

DOCUMENT_COUNTS = ("new", "changed", "deleted", "quarantined")
# Checks whose threshold is a ceiling (counts of problems, the mean cosine that means collapse), not a floor.
CEILING_CHECKS = ("chunk_counts", "mapping", "vector_spread", "duplicate_vectors")
CHUNK_COUNTS = ("chunks_written", "chunks_deleted")


@dataclass
class RunPoint:
    """One run's figures on the trends page."""

    run_id: str
    when: str
    state: str
    report_url: str
    documents: dict[str, int]
    chunks: dict[str, int]
    tokens_per_s: dict[str, float | None]
    checks: dict[str, float | None]
    thresholds: dict[str, float | None]
    passed: bool | None
    model: str | None = None
    model_revision: str | None = None


@dataclass
class Series:
    """One line of a chart: a name and a value (or None) per run."""

    name: str
    values: list[float | None]


@dataclass
class Chart:
    """One chart of the trends page. A validation check's chart has each run's threshold; the latest one is drawn
    as a dashed line (a floor, or a ceiling for the checks that count problems)."""

    key: str
    title: str
    y_label: str
    series: list[Series]
    thresholds: list[float | None] = field(default_factory=list)
    ceiling: bool = False

    @property
    def threshold(self) -> float | None:
        return next((value for value in reversed(self.thresholds) if value is not None), None)


def run_point(report: dict[str, Any], *, when: str, state: str, report_url: str) -> RunPoint:
    """A run's figures, from its run report's dictionary."""
    validation = report.get("validation") or {}
    checks = [check for check in validation.get("checks") or [] if not check.get("skipped")]
    return RunPoint(
        run_id=report["run_id"],
        when=when,
        state=state,
        report_url=report_url,
        documents={name: int(report["objects"].get(name) or 0) for name in DOCUMENT_COUNTS},
        chunks={name: int(report.get(name) or 0) for name in CHUNK_COUNTS},
        tokens_per_s={stage["stage"]: stage.get("tokens_per_s") for stage in report["stages"]},
        checks={check["name"]: check.get("value") for check in checks},
        thresholds={check["name"]: check.get("threshold") for check in checks},
        passed=validation.get("passed") if validation else None,
        model=report.get("model"),
        model_revision=report.get("model_revision"),
    )


def trend_charts(points: list[RunPoint]) -> list[Chart]:
    """The charts of the trends page: documents, chunks, tokens/s per stage, then one per validation check."""
    charts = [
        Chart("documents", "Documents per run", "documents",
              [Series(name, [point.documents[name] for point in points]) for name in DOCUMENT_COUNTS]),
        Chart("chunks", "Chunks per run", "chunks",
              [Series(name.replace("_", " "), [point.chunks[name] for point in points]) for name in CHUNK_COUNTS]),
    ]
    stages = [stage for stage in _ordered(point.tokens_per_s for point in points)
              if any(point.tokens_per_s.get(stage) for point in points)]
    charts.append(Chart("tokens_per_s", "Tokens per second of each stage", "tokens/s",
                        [Series(stage, [point.tokens_per_s.get(stage) for point in points]) for stage in stages]))
    for check in _ordered(point.checks for point in points):
        charts.append(Chart(
            f"check-{check}", f"Validation: {check}", "value",
            [Series(check, [point.checks.get(check) for point in points])],
            thresholds=[point.thresholds.get(check) for point in points],
            ceiling=check.split("@")[0] in CEILING_CHECKS,
        ))
    return charts


def _ordered(mappings) -> list[str]:
    """The keys of several mappings, each once, in the order they first appear."""
    keys: dict[str, None] = {}
    for mapping in mappings:
        keys.update(dict.fromkeys(mapping))
    return list(keys)
