"""The pipeline's metrics reach a StatsD listener through Airflow's own metrics settings (``[metrics]``), as a task
process sends them: a UDP socket stands in for the StatsD server and the datagrams are read back. Every name is in
docs/deployment.md's table, and a failed validation still sends the values that failed it."""

from __future__ import annotations

import socket
from datetime import UTC, datetime

import pytest
from latechunk.reporting.metrics import metric_name, stage_metrics
from support import REPO

EXTRACT = {"objects_listed": 12, "objects_new": 5, "objects_modified": 2, "objects_unchanged": 5,
           "objects_quarantined": 1, "keys_to_delete": 3, "tokens": 0, "seconds": 2.5}
EMBED = {"documents": 7, "tokens": 4000, "chunks": 30, "seconds": 2.0, "tokens_per_s": 2000.0}
INDEX = {"chunks_indexed": 30, "documents_written": 7, "objects_quarantined": 2, "stale_chunks_deleted": 4,
         "superseded_chunks_deleted": 1, "removed_object_chunks_deleted": 0, "seconds": 0.8}
VALIDATE = {"passed": True, "checks": {"self_retrieval": 1.0, "query_retrieval@3": 0.875, "probes": None}}


@pytest.fixture
def statsd_listener(monkeypatch):
    """A UDP socket on loopback, and Airflow's metrics configured to send there, as a task process is."""
    pytest.importorskip("statsd", reason="Airflow's StatsD backend needs the statsd package (apache-airflow[statsd])")
    from airflow.sdk._shared.observability.metrics.base_stats_logger import NoStatsLogger
    from airflow.sdk.observability import stats
    from airflow.sdk.observability.metrics import stats_utils

    listener = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    listener.bind(("127.0.0.1", 0))
    listener.settimeout(10)
    for name, value in {"STATSD_ON": "True", "STATSD_HOST": "127.0.0.1", "STATSD_PORT": str(listener.getsockname()[1]),
                        "STATSD_PREFIX": "airflow"}.items():
        monkeypatch.setenv(f"AIRFLOW__METRICS__{name}", value)
    # What the task runner does when a task process starts (airflow.sdk.execution_time.task_runner.main).
    stats.initialize(factory=stats_utils.get_stats_factory(), export_legacy_names=False)
    yield listener
    stats.initialize(factory=NoStatsLogger, export_legacy_names=False)
    listener.close()


def received(listener: socket.socket, count: int) -> dict[str, tuple[float, str]]:
    """``count`` StatsD lines (``name:value|type``), as {name: (value, type)}."""
    lines: dict[str, tuple[float, str]] = {}
    while len(lines) < count:
        for line in listener.recv(65535).decode().splitlines():
            name, _, rest = line.partition(":")
            value, _, kind = rest.partition("|")
            lines[name] = (float(value), kind)
    return lines


def test_metric_names_are_documented_and_safe():
    assert metric_name("latechunk_ingest", "validation", "query_retrieval@3") == \
        "latechunk.latechunk_ingest.validation.query_retrieval_3"
    names = {metric.name for stage, summary in (("extract", EXTRACT), ("embed", EMBED), ("index", INDEX),
                                                 ("validate", VALIDATE))
             for metric in stage_metrics("latechunk_ingest", stage, summary)}
    documented = (REPO / "docs" / "deployment.md").read_text()
    for name in names:
        generic = name.replace("latechunk.latechunk_ingest.", "latechunk.<dag_id>.")
        generic = generic.replace("query_retrieval_3", "<check>").replace("self_retrieval", "<check>")
        generic = generic.replace(".extract", ".<stage>").replace(".embed", ".<stage>").replace(".index", ".<stage>")
        assert f"`{generic}`" in documented, generic


def test_each_stage_sends_its_figures_to_statsd(statsd_listener):
    from airflow.sdk import DAG
    from latechunk_operators.index import LateChunkIndexOperator
    from latechunk_operators.metrics import emit

    emit(stage_metrics("latechunk_ingest", "extract", EXTRACT))
    lines = received(statsd_listener, 7)
    assert lines["airflow.latechunk.latechunk_ingest.documents_new"] == (5.0, "g")
    assert lines["airflow.latechunk.latechunk_ingest.documents_changed"] == (2.0, "g")
    assert lines["airflow.latechunk.latechunk_ingest.documents_deleted"] == (3.0, "g")
    assert lines["airflow.latechunk.latechunk_ingest.documents_quarantined"] == (1.0, "g")
    assert lines["airflow.latechunk.latechunk_ingest.seconds.extract"] == (2500.0, "ms")

    emit(stage_metrics("latechunk_reindex", "embed", EMBED))
    lines = received(statsd_listener, 5)
    assert lines["airflow.latechunk.latechunk_reindex.tokens_per_s.embed"] == (2000.0, "g")
    assert lines["airflow.latechunk.latechunk_reindex.tokens.embed"] == (4000.0, "c")
    assert lines["airflow.latechunk.latechunk_reindex.chunks.embed"] == (30.0, "c")

    emit(stage_metrics("latechunk_ingest", "validate", VALIDATE))
    lines = received(statsd_listener, 3)
    assert lines["airflow.latechunk.latechunk_ingest.validation.query_retrieval_3"] == (0.875, "g")
    assert lines["airflow.latechunk.latechunk_ingest.validation.passed"] == (1.0, "g")
    assert not any("probes" in name for name in lines), "a skipped check has no value to send"

    # The operators send theirs when they end, with the summary that goes to XCom.
    with DAG("latechunk_ingest", schedule=None, start_date=datetime(2026, 1, 1, tzinfo=UTC)):
        index = LateChunkIndexOperator(task_id="index", manifest_path="s3://b/m.json", index_name="docs",
                                       staging_bucket="staging")
    index.summarised(INDEX)
    lines = received(statsd_listener, 5)
    assert lines["airflow.latechunk.latechunk_ingest.chunks_indexed"] == (30.0, "g")
    assert lines["airflow.latechunk.latechunk_ingest.chunks_deleted"] == (5.0, "g")
    assert lines["airflow.latechunk.latechunk_ingest.documents_quarantined"] == (2.0, "g")


def test_a_failed_validation_sends_the_values_that_failed_it(monkeypatch):
    from airflow.sdk import DAG
    from latechunk.validation.report import Check, ValidationError, ValidationReport
    from latechunk_operators import metrics
    from latechunk_operators.validate import LateChunkValidateOperator

    report = ValidationReport("docs", [Check("query_retrieval", 0.25, 0.8, False), Check("probes", None, 1.0, True,
                                                                                         skipped=True)])
    sent = []
    monkeypatch.setattr(metrics, "emit", lambda batch: sent.extend(batch))
    monkeypatch.setattr(LateChunkValidateOperator, "run_checks", lambda self: report.raise_for_failure())
    with DAG("latechunk_reindex", schedule=None, start_date=datetime(2026, 1, 1, tzinfo=UTC)):
        validate = LateChunkValidateOperator(task_id="validate", manifest_path="s3://b/m.json", index_name="docs",
                                             model="m", staging_bucket="staging")
    with pytest.raises(ValidationError):
        validate.execute({})
    assert {(metric.name, metric.value) for metric in sent} == {
        ("latechunk.latechunk_reindex.validation.query_retrieval", 0.25),
        ("latechunk.latechunk_reindex.validation.passed", 0.0),
    }
