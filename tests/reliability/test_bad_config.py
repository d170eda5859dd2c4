"""Bad configuration fails the run with a clear error before anything is written: no index created or changed,
nothing staged. Whole DAG runs through dag.test() against the real Elasticsearch and MinIO."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from conftest import put, run_state, task_states
from latechunk.index.spec import IndexSpec, index_body
from latechunk.pipeline.extract import ExtractSettings, extract
from latechunk.pipeline.models import describe_model
from latechunk.staging.tables import StagingArea

pytestmark = pytest.mark.integration

DAY = datetime(2026, 3, 2, tzinfo=UTC)
DOCS = {"a.txt": "Coral reefs bleach when the ocean warms. Divers see it first.", "b.md": "# Notes\n\nShort note."}


def staged_keys(s3_client, bucket: str) -> list[str]:
    return [item["Key"] for item in s3_client.list_objects_v2(Bucket=bucket).get("Contents", [])]


def assert_failed_before_writing(run, output: str, message: str, s3_client, staging_bucket, es_client, es_index):
    assert run_state(run) == "failed"
    states = task_states(run)
    assert states["extract"][0].endswith("failed"), states
    assert not any(
        task.startswith(("annotate", "embed")) and state.endswith("success") for task, (state, _) in states.items()
    ), states
    assert message in output, f"expected {message!r} in the task log"
    assert staged_keys(s3_client, staging_bucket) == [], "nothing may be staged"
    assert not es_client.indices.exists(index=es_index), "no index may be created"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"model": "/nonexistent/encoder"}, "unknown model '/nonexistent/encoder'"),
        ({"model": "no-such-org/no-such-model"}, "unknown model 'no-such-org/no-such-model'"),
        ({"chunking_strategy": "fixed", "chunk_size": 16, "chunk_overlap": 16}, "overlap must satisfy 0 <= overlap"),
        ({"window": 64, "window_overlap": 64}, "window_overlap must satisfy 0 <= window_overlap < window"),
        ({"chunking_strategy": "fixed", "chunk_size": 128, "window": 64}, "chunk_size=128 tokens is larger than"),
        ({"window": 16384}, "window=16384 tokens exceeds the model's window of 8192"),
    ],
    ids=[
        "unknown-model-path",
        "unknown-model-hub-id",
        "chunk-overlap-not-below-chunk-size",
        "window-overlap-not-below-window",
        "chunk-size-above-window",
        "window-above-model-window",
    ],
)
def test_bad_settings_fail_the_run_before_anything_is_written(
    pipeline, overrides, message, s3_client, s3_bucket, staging_bucket, es_client, es_index, capfd
):
    put(s3_client, s3_bucket, DOCS)
    run = pipeline.run(DAY, **overrides)
    output = "".join(capfd.readouterr())
    assert_failed_before_writing(run, output, message, s3_client, staging_bucket, es_client, es_index)


def test_dims_that_disagree_with_the_existing_index_fail_before_anything_is_written(
    pipeline, s3_client, s3_bucket, staging_bucket, es_client, es_index, capfd
):
    model = pipeline.conf["model"]
    info = describe_model(model)  # 32 dims
    spec = IndexSpec(name=es_index, dims=16, model_id=model, model_revision=info.revision)
    es_client.indices.create(index=es_index, **index_body(spec))
    put(s3_client, s3_bucket, DOCS)
    run = pipeline.run(DAY)
    output = "".join(capfd.readouterr())
    assert run_state(run) == "failed"
    assert task_states(run)["extract"][0].endswith("failed")
    assert f"index '{es_index}' does not match the configuration: dims is 16 in the index, 32 configured" in output
    assert staged_keys(s3_client, staging_bucket) == []
    assert es_client.count(index=es_index)["count"] == 0
    assert es_client.indices.get_mapping(index=es_index)[es_index]["mappings"]["properties"]["vector"]["dims"] == 16


def test_missing_search_connection_fails_before_anything_is_written(
    pipeline, monkeypatch, s3_client, s3_bucket, staging_bucket, es_client, es_index, capfd
):
    put(s3_client, s3_bucket, DOCS)
    monkeypatch.delenv("AIRFLOW_CONN_LATECHUNK_ES")
    run = pipeline.run(DAY)
    output = "".join(capfd.readouterr())
    assert_failed_before_writing(
        run, output, "The conn_id `latechunk_es` isn't defined", s3_client, staging_bucket, es_client, es_index
    )


def test_missing_s3_connection_fails_before_anything_is_written(
    pipeline, monkeypatch, s3_client, s3_bucket, staging_bucket, es_client, es_index, capfd
):
    put(s3_client, s3_bucket, DOCS)
    monkeypatch.delenv("AIRFLOW_CONN_LATECHUNK_S3")
    run = pipeline.run(DAY)
    output = "".join(capfd.readouterr())
    assert run_state(run) == "failed" and task_states(run)["extract"][0].endswith("failed")
    assert staged_keys(s3_client, staging_bucket) == [] and not es_client.indices.exists(index=es_index)
    assert "The conn_id `latechunk_s3` isn't defined" in output


@pytest.mark.parametrize(
    ("window", "window_overlap", "chunking", "message"),
    [
        (64, 64, {"strategy": "sentences"}, "window_overlap must satisfy 0 <= window_overlap < window"),
        (64, 16, {"strategy": "fixed", "chunk_size": 128}, "chunk_size=128 tokens is larger than the encoder window"),
        (16384, 16, {"strategy": "sentences"}, "window=16384 tokens exceeds the model's window of 8192"),
    ],
    ids=["window-overlap-not-below-window", "chunk-size-above-window", "window-above-model-window"],
)
def test_window_settings_are_checked_by_the_extract_stage_before_staging(
    tiny_jina_model,
    window,
    window_overlap,
    chunking,
    message,
    s3_client,
    s3_bucket,
    staging_bucket,
    es_client,
    es_index,
):
    """The extract stage itself refuses window settings the embed stage cannot honour."""
    put(s3_client, s3_bucket, DOCS)
    area = StagingArea(staging_bucket, "runs", "latechunk_ingest", f"manual__{uuid.uuid4().hex[:8]}")
    settings = ExtractSettings(
        bucket=s3_bucket,
        prefix="incoming/",
        index=es_index,
        model=tiny_jina_model,
        chunking=chunking,
        window=window,
        window_overlap=window_overlap,
    )
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        extract(s3=s3_client, es=es_client, area=area, settings=settings)
    assert staged_keys(s3_client, staging_bucket) == []
    assert not es_client.indices.exists(index=es_index)
