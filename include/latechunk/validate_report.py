"""The validation report: what each check means, its thresholds, and the pass/fail verdict."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

CHECKS = {
    "chunk_counts": "every document of the run has exactly its staged number of chunks in the index",
    "mapping": "the index's vector field and its recorded model, revision, chunking and window settings are the "
    "run's, and the staged chunks come from that model",
    "self_retrieval": "each sampled chunk's own vector finds the chunk at rank 1 (or a chunk with the same text or "
    "vector): the index serves what was written",
    "knn_recall": "approximate kNN finds the exact nearest neighbours (computed client-side over every vector)",
    "query_retrieval": "each sampled chunk's text, encoded as a query by the run's model, finds the chunk's "
    "document in the top k (or a chunk with the same text): the vectors mean what the model means",
    "document_query": "each sampled document's title (else its first sentence), encoded by the run's model, finds "
    "the document in the top k",
    "vector_spread": "the mean cosine between sampled vectors and the vectors of other documents is below the "
    "bound: the vectors did not collapse onto one direction",
    "duplicate_vectors": "no vector is shared by different texts (among the sampled chunks and their nearest "
    "neighbours)",
    "probes": "each user probe query finds one of its expected objects in the top k",
}
MAX_LISTED = 20
# Scores closer than this count as ties: identical chunks (same text in two documents) score the same.
SCORE_TIE = 1e-5


@dataclass
class Check:
    name: str
    value: float | None
    threshold: float | None
    passed: bool
    details: dict[str, Any] = field(default_factory=dict)
    skipped: bool = False

    @property
    def description(self) -> str:
        return CHECKS.get(self.name.split("@")[0], "")


@dataclass(frozen=True)
class Thresholds:
    """Pass marks of the checks. Rates are shares of the sampled chunks or documents."""

    self_retrieval: float = 0.95
    recall: float = 0.9
    query_retrieval: float = 0.8
    document_query: float = 0.6
    max_mean_cosine: float = 0.95
    probes: float = 1.0
    query_k: int = 3  # hits a query may look at; small, so that a small index does not pass by chance


@dataclass
class ValidationReport:
    index: str
    checks: list[Check]

    @property
    def passed(self) -> bool:
        return all(check.passed for check in self.checks)

    def check(self, name: str) -> Check:
        return next(check for check in self.checks if check.name == name)

    def to_dict(self) -> dict[str, Any]:
        checks = [{**asdict(check), "description": check.description} for check in self.checks]
        return {"index": self.index, "passed": self.passed, "checks": checks}

    def summary(self) -> str:
        lines = [f"validation of {self.index!r}: {'passed' if self.passed else 'FAILED'}"]
        for check in self.checks:
            status = "skipped" if check.skipped else ("ok" if check.passed else "FAILED")
            lines.append(f"  {check.name}: {status} (value={check.value}, threshold={check.threshold})")
            if not check.passed:
                lines.append(f"    means: {check.description}; details: {_brief(check.details)}")
        return "\n".join(lines)

    def raise_for_failure(self) -> None:
        if not self.passed:
            raise ValidationError(self)


class ValidationError(Exception):
    def __init__(self, report: ValidationReport):
        super().__init__(report.summary())
        self.report = report


def _brief(details: dict[str, Any], limit: int = 400) -> str:
    text = ", ".join(f"{key}={value}" for key, value in details.items())
    return text if len(text) <= limit else text[:limit] + "..."
