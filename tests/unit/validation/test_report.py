"""The report's verdicts: an error check that fails fails the run, a warning never does, a skipped check passes."""

from __future__ import annotations

import pytest
from latechunk.validation.report import CHECKS, Check, Thresholds, ValidationError, ValidationReport


def report(*checks: Check) -> ValidationReport:
    return ValidationReport("chunks", list(checks))


def test_a_failed_error_check_fails_the_report_and_raises():
    failed = report(Check("chunk_counts", 1, 0, False, {"mismatches": [{"doc_id": "d"}]}), Check("mapping", 0, 0, True))
    assert not failed.passed and failed.check("chunk_counts").blocking
    assert failed.check("chunk_counts").status == "FAILED"
    with pytest.raises(ValidationError, match="chunk_counts: FAILED") as caught:
        failed.raise_for_failure()
    assert caught.value.report is failed
    assert "means: every document of the run" in failed.summary()


def test_a_failed_warning_is_reported_and_passes():
    warned = report(Check("query_retrieval", 0.5, 0.8, False, severity="warning"), Check("mapping", 0, 0, True))
    assert warned.passed and [check.name for check in warned.warnings] == ["query_retrieval"]
    assert warned.check("query_retrieval").status == "WARNING"
    assert "passed with 1 warning(s)" in warned.summary()
    warned.raise_for_failure()
    assert warned.to_dict()["warnings"] == ["query_retrieval"] and warned.to_dict()["passed"] is True


def test_skipped_checks_pass_and_every_check_says_what_it_means():
    skipped = report(Check("knn_recall@10", None, 0.9, True, {"reason": "too large"}, skipped=True))
    assert skipped.passed and skipped.check("knn_recall@10").status == "skipped"
    assert skipped.summary() == "validation of 'chunks': passed\n  knn_recall@10: skipped (value=-, threshold=0.9)"
    assert skipped.to_dict()["checks"][0]["description"] == CHECKS["knn_recall"]


def test_semantic_checks_are_warnings_or_errors_only():
    assert Thresholds(semantic_severity="error").semantic_severity == "error"
    with pytest.raises(ValueError, match="semantic checks must be one of"):
        Thresholds(semantic_severity="fatal")
