"""The validation report: what each check means, its thresholds, and the pass/fail verdict.

A check is an ``error`` (the run fails when it does not pass) or a ``warning`` (reported in the log and the run
report, never failing the run). The model-grounded checks are warnings by default: whether a chunk's text, asked
as a question, finds its own document depends on the corpus (boilerplate, templates, numbers, text the model does
not know) as much as on the index, while the exact check proves the vectors are the model's.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

CHECKS = {
    "current_versions": "every object the run wrote is in the index at the version the run staged, or at a later "
    "version another run wrote since (the bucket no longer holds the staged one): no stale write overtook it",
    "exact_vectors": "a sample of the run's documents, annotated and late-chunked again by the run's model with "
    "the run's settings, gives exactly the chunks the index serves: the same texts and offsets, and vectors within "
    "the cosine bound of the embed stage's dtype",
    "chunk_counts": "every document of the run has exactly its staged number of chunks in the index",
    "level_counts": "every document of the run has exactly its staged number of section and document rows in the "
    "index (indices of several levels only)",
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
SEVERITIES = ("warning", "error")
# The checks whose outcome depends on what the corpus says, not only on whether the index is right.
SEMANTIC_CHECKS = ("query_retrieval", "document_query", "vector_spread", "duplicate_vectors")
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
    severity: str = "error"  # or "warning": reported, never failing the run

    @property
    def blocking(self) -> bool:
        """Failed, and fails the run."""
        return not self.passed and self.severity == "error"

    @property
    def status(self) -> str:
        if self.skipped:
            return "skipped"
        if self.passed:
            return "ok"
        return "FAILED" if self.severity == "error" else "WARNING"

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
    # How the checks that depend on the corpus report a miss: "warning" (default) or "error" (fails the run).
    semantic_severity: str = "warning"
    exact_min_cosine: float = 0.9999  # `latechunk.validation.exact.MIN_COSINE` of the embed stage's dtype

    def __post_init__(self) -> None:
        if self.semantic_severity not in SEVERITIES:
            raise ValueError(f"semantic checks must be one of {SEVERITIES}, got {self.semantic_severity!r}")


@dataclass
class ValidationReport:
    index: str
    checks: list[Check]

    @property
    def passed(self) -> bool:
        return not any(check.blocking for check in self.checks)

    @property
    def warnings(self) -> list[Check]:
        return [check for check in self.checks if not check.passed and check.severity == "warning"]

    def check(self, name: str) -> Check:
        return next(check for check in self.checks if check.name == name)

    def to_dict(self) -> dict[str, Any]:
        checks = [{**asdict(check), "description": check.description} for check in self.checks]
        warnings = [check.name for check in self.warnings]
        return {"index": self.index, "passed": self.passed, "warnings": warnings, "checks": checks}

    def summary(self) -> str:
        verdict = "FAILED" if not self.passed else f"passed with {len(self.warnings)} warning(s)"
        lines = [f"validation of {self.index!r}: {verdict if not self.passed or self.warnings else 'passed'}"]
        for check in self.checks:
            value, threshold = _number(check.value), _number(check.threshold)
            lines.append(f"  {check.name}: {check.status} (value={value}, threshold={threshold})")
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


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


def _brief(details: dict[str, Any], limit: int = 400) -> str:
    text = ", ".join(f"{key}={value}" for key, value in details.items())
    return text if len(text) <= limit else text[:limit] + "..."
