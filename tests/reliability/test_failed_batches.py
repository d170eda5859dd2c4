"""A failed batch does not sink its run, and nothing it leaves behind stays unindexed.

The stages run for real on the real servers with the tiny encoder, each batch as its annotate and embed tasks would
run it (a failed try records its error, as `LateChunkBaseOperator.run_batch_stage` does). One embed fails: the run
indexes and validates the other batches, reports the failed batch's objects with the embed error, and ends failed;
a later run whose day folders no longer include the failed objects' folder reads them again and completes them.
"""

from __future__ import annotations

import uuid
from dataclasses import replace

import pytest
from conftest import assert_exact, chunk_counts, put, run_state, task_states
from latechunk.chunking.config import ChunkingConfig
from latechunk.embedding.config import LateChunkingConfig
from latechunk.pipeline import annotate as annotate_stage
from latechunk.pipeline import embed as embed_stage
from latechunk.pipeline.annotate import annotate
from latechunk.pipeline.batch_failures import (
    NO_RECORD,
    RETRY_RUNS,
    BatchesFailed,
    FailedObjects,
    pending_uri,
    read_batch_failures,
    read_pending,
    record_failure,
    update_pending,
)
from latechunk.pipeline.embed import embed
from latechunk.pipeline.extract import ExtractSettings, day_prefixes, extract
from latechunk.pipeline.index import index
from latechunk.pipeline.manifest import RunManifest
from latechunk.pipeline.validate import ValidationSettings, validate
from latechunk.staging import tables as staging
from support import TINY_ENCODER_VALIDATION, run_objects

CHUNKING = {"strategy": "sentences", "sentences_per_chunk": 1}
OLD_DAY, NEW_DAY = "2026-03-01", "2026-03-10"
OLD = {f"{OLD_DAY}/doc-{i}.txt": f"Reef {i} has corals. Divers count fish {i} times. It is warm." for i in range(6)}
NEW = {f"{NEW_DAY}/new-{i}.txt": f"Harbour {i} has boats. Sailors mend nets {i} times." for i in range(2)}
DAG_ID = "latechunk_ingest"


class Runs:
    """Runs of the ingest stages for one index; `fail_embed` names the batch numbers whose embed fails."""

    def __init__(self, s3_client, es_client, bucket, staging_bucket, es_index, model):
        self.s3, self.es, self.bucket, self.staging_bucket = s3_client, es_client, bucket, staging_bucket
        self.index, self.model = es_index, model

    def area(self) -> staging.StagingArea:
        return staging.StagingArea(self.staging_bucket, "runs", DAG_ID, f"scheduled__{uuid.uuid4().hex[:8]}")

    def run(
        self, day: str, *, lookback_days: int = 2, fail_embed: frozenset[int] = frozenset(),
        kill_embed: frozenset[int] = frozenset(),
    ) -> dict:
        from datetime import UTC, datetime, timedelta

        start = datetime.fromisoformat(day).replace(tzinfo=UTC)
        area = self.area()
        settings = ExtractSettings(
            bucket=self.bucket, prefix="incoming/", index=self.index, model=self.model, chunking=CHUNKING,
            docs_per_batch=2, window=64, window_overlap=16,
            select_prefixes=day_prefixes("incoming/", start, start + timedelta(days=1), lookback_days),
        )  # fmt: skip
        extracted = extract(s3=self.s3, es=self.es, area=area, settings=settings)
        for number, batch in enumerate(extracted["batches"]):
            annotate(s3=self.s3, area=area, batch_path=batch, model=self.model, chunking=CHUNKING)
            if number in kill_embed:  # the worker died: no error recorded, no chunks staged
                continue
            try:
                if number in fail_embed:
                    raise RuntimeError("CUDA error: an illegal memory access was encountered")
                embed(s3=self.s3, area=area, batch_path=batch, model=self.model, window=64, window_overlap=16)
            except RuntimeError as error:  # what the embed task's failed try records
                record_failure(self.s3, batch, "embed", error)
        common = {"s3": self.s3, "es": self.es, "manifest_path": extracted["manifest"], "index_name": self.index}
        result = {"extract": extracted, "index": index(**common), "manifest": extracted["manifest"]}
        settings = ValidationSettings(sample_size=20, **TINY_ENCODER_VALIDATION)
        try:
            result["validate"] = validate(**common, settings=settings)
        except BatchesFailed as error:
            result["validate_error"] = str(error)
        report_uri = f"{extracted['manifest'].rpartition('/')[0]}/validation-report.json"
        result["report"] = staging.read_json(self.s3, report_uri)
        return result

    def pending(self) -> dict:
        return read_pending(self.s3, pending_uri(self.area(), self.index))


@pytest.fixture
def runs(s3_client, es_client, s3_bucket, staging_bucket, es_index, tiny_jina_model) -> Runs:
    return Runs(s3_client, es_client, s3_bucket, staging_bucket, es_index, tiny_jina_model)


def test_a_failed_batch_indexes_the_others_and_a_later_run_completes_it_outside_the_lookback(
    runs, s3_client, s3_bucket, es_client, es_index
):
    put(s3_client, s3_bucket, OLD)
    first = runs.run(OLD_DAY, fail_embed=frozenset({1}))

    # The other batches are indexed, exactly; the failed batch's two objects are not, and nothing is lost.
    failed_batch = first["extract"]["batches"][1]
    failed_keys = {document.key for document in staging.read_documents(s3_client, failed_batch)}
    assert len(failed_keys) == 2
    summary = first["index"]
    assert (summary["objects_indexed"], summary["objects_pending"]) == (4, 2)
    ((reported,),) = [summary["failed_batches"]]
    assert reported["batch"] == failed_batch
    assert reported["reason"].startswith("batch failed in embed: RuntimeError: CUDA error")
    chunks = assert_exact(es_client, es_index, s3_client, s3_bucket, expect_missing=failed_keys)
    assert set(chunk_counts(chunks)) == {f"incoming/{name}" for name in OLD} - failed_keys

    # The good batches were validated, the failed objects are in the report with the reason, and the run fails.
    assert first["report"]["passed"] is True
    assert "validate" not in first and "2 of their objects" in first["validate_error"]
    listed = {entry["key"]: entry for entry in first["report"]["quarantine"] if entry["reason"] == "batch_failed"}
    assert set(listed) == failed_keys
    assert all("batch failed in embed" in entry["detail"] and "pending" in entry["detail"] for entry in listed.values())
    assert set(runs.pending()) == failed_keys
    assert read_batch_failures(s3_client, first["manifest"]).batches == {failed_batch: reported["reason"]}

    # Nine days later the look-back (2 days) no longer lists the old folder: the pending objects are read anyway.
    put(s3_client, s3_bucket, NEW)
    second = runs.run(NEW_DAY)
    assert not any(prefix.startswith(f"incoming/{OLD_DAY}") for prefix in second["extract"]["select_prefixes"])
    assert second["extract"]["objects_retried"] == 2
    manifest = staging.read_json(s3_client, second["manifest"])
    assert set(run_objects(s3_client, manifest)) == failed_keys | {f"incoming/{name}" for name in NEW}
    assert (second["index"]["objects_indexed"], second["index"]["objects_pending"]) == (4, 0)
    assert second["validate"]["passed"] is True and second["report"]["failed_batches"] == {}
    assert_exact(es_client, es_index, s3_client, s3_bucket)
    assert runs.pending() == {}


def test_an_object_whose_batch_keeps_failing_is_quarantined_after_the_last_retry(
    runs, s3_client, s3_bucket, es_client, es_index
):
    put(s3_client, s3_bucket, {name: text for name, text in OLD.items() if name.endswith(("-0.txt", "-1.txt"))})
    for attempt in range(1, RETRY_RUNS + 1):
        result = runs.run(OLD_DAY if attempt == 1 else NEW_DAY, fail_embed=frozenset({0}))
        keys = {f"incoming/{OLD_DAY}/doc-{i}.txt" for i in range(2)}
        if attempt < RETRY_RUNS:
            assert result["index"]["objects_pending"] == 2 and set(runs.pending()) == keys
            assert {key: entry["runs"] for key, entry in runs.pending().items()} == dict.fromkeys(keys, attempt)
    assert result["index"]["objects_pending"] == 0 and result["index"]["objects_quarantined"] == 2
    assert runs.pending() == {}
    given_up = [entry for entry in result["report"]["quarantine"] if entry["reason"] == "batch_failed"]
    assert {entry["key"] for entry in given_up} == keys
    assert all(f"failed in {RETRY_RUNS} runs" in entry["detail"] for entry in given_up)
    assert chunk_counts(assert_exact(es_client, es_index, s3_client, s3_bucket, expect_missing=keys)) == {}


def test_a_document_the_tokenizer_fails_on_is_quarantined_alone(
    runs, s3_client, s3_bucket, es_client, es_index, monkeypatch
):
    poisoned = f"incoming/{OLD_DAY}/doc-3.txt"
    real = annotate_stage.annotate_documents

    def fails_on_reef_3(texts, tokenizer, config, structures=None):
        if any(text.startswith("Reef 3 ") for text in texts):
            raise ValueError("tokenizer: invalid byte sequence")
        return real(texts, tokenizer, config, structures)

    monkeypatch.setattr(annotate_stage, "annotate_documents", fails_on_reef_3)
    put(s3_client, s3_bucket, OLD)
    result = runs.run(OLD_DAY)

    assert result["index"]["failed_batches"] == [] and result["validate"]["passed"] is True
    assert (result["index"]["objects_indexed"], result["index"]["objects_quarantined"]) == (5, 1)
    (entry,) = [entry for entry in result["report"]["quarantine"] if entry["reason"] == "annotate_failed"]
    assert entry["key"] == poisoned and "ValueError: tokenizer: invalid byte sequence" in entry["detail"]
    chunks = assert_exact(es_client, es_index, s3_client, s3_bucket, expect_missing={poisoned})
    assert poisoned not in chunk_counts(chunks)


def test_a_dag_run_with_a_failing_embed_indexes_the_others_ends_failed_and_the_next_run_completes_it(
    pipeline, s3_client, s3_bucket, es_client, es_index, monkeypatch
):
    """The same through whole DAG runs (dag.test): the trigger rules let index and validate run after a failed
    embed, the run ends failed at validate, and a run nine days later completes the objects."""
    from datetime import UTC, datetime

    real = embed_stage.embed

    def embed_fails_on_batch_1(**kwargs):
        if kwargs["batch_path"].endswith("/batch-00001.parquet"):
            raise RuntimeError("CUDA error: an illegal memory access was encountered")
        return real(**kwargs)

    monkeypatch.setattr(embed_stage, "embed", embed_fails_on_batch_1)
    put(s3_client, s3_bucket, OLD)
    folders = {"partition_by_date": True, "lookback_days": 2, "docs_per_batch": 2}
    run = pipeline.run(datetime(2026, 3, 2, tzinfo=UTC), **folders)  # covers 2026-03-01
    states = {task: state for task, (state, _) in task_states(run).items()}
    assert run_state(run) == "failed", states
    assert (states["embed[0]"], states["embed[1]"], states["embed[2]"]) == ("success", "failed", "success")
    assert (states["batches_done"], states["index"], states["validate"]) == ("success", "success", "failed")
    assert states["publish"] == "upstream_failed"
    report = pipeline.report(s3_client, run)
    failed_keys = {entry["key"] for entry in report["quarantine"] if entry["reason"] == "batch_failed"}
    assert report["passed"] is True and len(failed_keys) == 2
    assert all("batch failed in embed: RuntimeError" in reason for reason in report["failed_batches"].values())
    assert_exact(es_client, es_index, s3_client, s3_bucket, expect_missing=failed_keys)

    monkeypatch.setattr(embed_stage, "embed", real)
    put(s3_client, s3_bucket, NEW)
    later = pipeline.run(datetime(2026, 3, 11, tzinfo=UTC), **folders)  # covers 03-10, looks back to 03-08
    assert run_state(later) == "success", task_states(later)
    assert set(pipeline.manifest(s3_client, later)["retried"]) == failed_keys
    assert_exact(es_client, es_index, s3_client, s3_bucket)


def test_a_batch_whose_worker_died_is_reported_without_an_error_and_retried(
    runs, s3_client, s3_bucket, es_client, es_index
):
    put(s3_client, s3_bucket, OLD)
    first = runs.run(OLD_DAY, kill_embed=frozenset({2}))
    ((reported,),) = [first["index"]["failed_batches"]]
    assert reported == {"batch": first["extract"]["batches"][2], "reason": NO_RECORD}
    assert first["index"]["objects_pending"] == 2 and len(runs.pending()) == 2
    second = runs.run(NEW_DAY)
    assert second["extract"]["objects_retried"] == 2 and runs.pending() == {}
    assert_exact(es_client, es_index, s3_client, s3_bucket)


def test_the_pending_list_keeps_deferred_objects_and_drops_only_what_a_run_took(runs, s3_client, s3_bucket):
    """The list beside the DAG's run folders, read and written by the index task: deferred objects (changed
    while extract read them) wait on it; a settled run removes the keys its extract took, and only those."""
    uri = pending_uri(runs.area(), runs.index)
    manifest = RunManifest(
        bucket=s3_bucket, prefix="", index=runs.index, model="m", model_revision="r", dims=4,
        chunking=ChunkingConfig(), window=64, window_overlap=16, late_chunking=LateChunkingConfig(),
        max_bad_fraction=0.2, pending_uri=uri, changed={"a.txt": "ea"},
    )
    none = FailedObjects({}, {}, {})
    update_pending(s3_client, manifest, FailedObjects({"b": "r"}, {"a.txt": "batch failed in embed: X"}, {}),
                   {"moving.txt": "em"}, settled=True)  # fmt: skip
    assert runs.pending() == {
        "a.txt": {"bucket": s3_bucket, "etag": "ea", "reason": "batch failed in embed: X", "runs": 1},
        "moving.txt": {"bucket": s3_bucket, "etag": "em", "reason": "changed while the run read it", "runs": 0},
    }
    took_one = replace(manifest, changed={}, retried={"moving.txt": 0})
    update_pending(s3_client, took_one, none, {}, settled=False)
    assert set(runs.pending()) == {"a.txt", "moving.txt"}, "nothing is removed before the run's writes are verified"
    update_pending(s3_client, took_one, none, {}, settled=True)
    assert set(runs.pending()) == {"a.txt"}
