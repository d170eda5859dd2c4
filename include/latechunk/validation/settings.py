"""The validate stage's settings, without the checks (the DAGs' params take their defaults from here)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from latechunk.validation.report import Thresholds

# The pass marks' defaults are the checks' own (`Thresholds`); the settings name them as the params do.
_CHECKS = Thresholds()


@dataclass(frozen=True)
class ValidationSettings:
    """The validate stage's settings, the defaults of the DAGs' validation params."""

    sample_size: int = 50
    self_retrieval_threshold: float = _CHECKS.self_retrieval
    recall_threshold: float = _CHECKS.recall
    query_retrieval_threshold: float = _CHECKS.query_retrieval
    document_query_threshold: float = _CHECKS.document_query
    max_mean_cosine: float = _CHECKS.max_mean_cosine
    query_k: int = _CHECKS.query_k
    probes: list[dict[str, Any]] = field(default_factory=list)
    semantic_checks: str = _CHECKS.semantic_severity  # or "error": the model-grounded queries and the geometry fail
    exact_sample_tokens: int = 16384  # tokens of the run's documents the exact check re-encodes

    def thresholds(self) -> Thresholds:
        return Thresholds(
            self_retrieval=self.self_retrieval_threshold,
            recall=self.recall_threshold,
            query_retrieval=self.query_retrieval_threshold,
            document_query=self.document_query_threshold,
            max_mean_cosine=self.max_mean_cosine,
            query_k=self.query_k,
            semantic_severity=self.semantic_checks,
        )
