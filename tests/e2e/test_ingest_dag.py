"""The ingest DAG end to end through dag.test(): real metadata DB, real Elasticsearch and MinIO, tiny encoder."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from elasticsearch import helpers
from latechunk.sources.documents import SourceObject, load_documents

DAY = datetime(2026, 3, 2, tzinfo=UTC)
# A run with logical date D covers the day before D: the run for DAY's folder is the one of the next day.
RUN_OF_DAY = DAY + timedelta(days=1)

DOCUMENTS = {
    "bio.txt": "Sarah Johnson is a marine biologist. She spends months diving near coral reefs. Her research "
    "focuses on how rising ocean temperatures affect them.",
    "city.md": "# Berlin\n\nBerlin is the capital of Germany. It has a population of 3.8 million people.\r\n"
    "The city is known for its museums. Émigrés, cafés and 北京 visitors 🎉 fill them.",
    "notes.jsonl": '{"text": "The first record is short. It has two sentences."}\n'
    '{"text": "The second record has one"}\n',
    "page.html": "<html><body><h1>Reefs</h1><p>Coral reefs are dying. They bleach when the water warms.</p>"
    "<script>var x = 1;</script></body></html>",
}


def put_documents(s3_client, bucket: str, prefix: str, documents: dict[str, str]) -> None:
    for name, text in documents.items():
        s3_client.put_object(Bucket=bucket, Key=f"{prefix}{name}", Body=text.encode("utf-8"))


def indexed_chunks(es_client, index: str) -> list[dict]:
    es_client.indices.refresh(index=index)
    return [hit["_source"] for hit in helpers.scan(es_client, index=index, query={"query": {"match_all": {}}})]


def source_texts(s3_client, bucket: str) -> dict[str, str]:
    """Extracted text of every document in the bucket, by doc_id, as the pipeline's extractor gives it."""
    texts = {}
    for page in s3_client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for item in page.get("Contents", []):
            obj = SourceObject(bucket, item["Key"], item["ETag"].strip('"'), item["Size"], item["LastModified"])
            body = s3_client.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
            documents, _ = load_documents(obj, body)
            texts.update({document.doc_id: document.text for document in documents})
    return texts


def validation_report(s3_client, ingest, run) -> dict:
    from latechunk.staging.tables import StagingArea, read_json

    area = StagingArea(ingest.conf["staging_bucket"], "runs", ingest.dag_id, run.run_id)
    return read_json(s3_client, area.uri(area.key("validation-report.json")))


def assert_state(run, expected: str = "success") -> None:
    assert str(run.state).lower().endswith(expected), f"DAG run ended {run.state}"


def test_ingest_is_exact_incremental_and_prunes(ingest, s3_client, s3_bucket, es_client, es_index):
    prefix = f"incoming/{DAY:%Y-%m-%d}/"
    put_documents(s3_client, s3_bucket, prefix, DOCUMENTS)

    assert_state(ingest.run(RUN_OF_DAY))
    chunks = indexed_chunks(es_client, es_index)
    texts = source_texts(s3_client, s3_bucket)
    assert {chunk["doc_id"] for chunk in chunks} == set(texts), "every document (each jsonl line too) is indexed"
    for chunk in chunks:
        assert texts[chunk["doc_id"]][chunk["char_start"] : chunk["char_end"]] == chunk["text"]
        assert chunk["n_chunks"] == sum(c["doc_id"] == chunk["doc_id"] for c in chunks)
    first_versions = {(c["doc_id"], c["chunk_id"]): c["indexed_at"] for c in chunks}

    unchanged_run = ingest.run(RUN_OF_DAY)
    assert_state(unchanged_run)
    report = validation_report(s3_client, ingest, unchanged_run)
    checks = {check["name"]: check for check in report["checks"]}
    assert not checks["self_retrieval"]["skipped"] and checks["self_retrieval"]["value"] == 1.0, (
        "a run that changed nothing still checks the index by sampling it"
    )
    again = indexed_chunks(es_client, es_index)
    assert {(c["doc_id"], c["chunk_id"]): c["indexed_at"] for c in again} == first_versions, (
        "a run with nothing changed must write nothing"
    )

    changed = "Sarah Johnson moved to Hawaii. She works there now. Her team grew. They dive daily."
    put_documents(s3_client, s3_bucket, prefix, {"bio.txt": changed})
    s3_client.delete_object(Bucket=s3_bucket, Key=f"{prefix}page.html")
    assert_state(ingest.run(RUN_OF_DAY))
    final = indexed_chunks(es_client, es_index)
    keys = {chunk["key"] for chunk in final}
    assert f"{prefix}page.html" not in keys
    bio = sorted((c for c in final if c["key"] == f"{prefix}bio.txt"), key=lambda c: c["chunk_id"])
    assert "".join(c["text"] for c in bio).replace(" ", "") == changed.replace(" ", "")
    assert [c["chunk_id"] for c in bio] == list(range(4))
    etag = s3_client.head_object(Bucket=s3_bucket, Key=f"{prefix}bio.txt")["ETag"].strip('"')
    assert {c["etag"] for c in bio} == {etag}
    touched = {c["doc_id"] for c in chunks if c["key"] in (f"{prefix}bio.txt", f"{prefix}page.html")}
    untouched = {k: v for k, v in first_versions.items() if k[0] not in touched}
    kept = {(c["doc_id"], c["chunk_id"]): c["indexed_at"] for c in final if (c["doc_id"], c["chunk_id"]) in untouched}
    assert kept == untouched, "unchanged documents are neither lost nor rewritten"


def test_backfill_processes_exactly_each_interval(ingest, s3_client, s3_bucket, es_client, es_index):
    days = [datetime(2026, 1, d, tzinfo=UTC) for d in (1, 2, 3)]
    for day in days:
        put_documents(s3_client, s3_bucket, f"incoming/{day:%Y-%m-%d}/", {"a.txt": f"Report of {day:%B %d}. All good."})

    # The first day as a user who cleared some fields of the trigger form: null params take the DAG's defaults.
    cleared = {"docs_per_batch": None, "max_object_bytes": None, "staging_prefix": None, "validation_sample_size": None}
    assert_state(ingest.run(days[0] + timedelta(days=1), **cleared))
    assert_state(ingest.run(days[1] + timedelta(days=1)))
    keys = {chunk["key"] for chunk in indexed_chunks(es_client, es_index)}
    assert keys == {f"incoming/{day:%Y-%m-%d}/a.txt" for day in days[:2]}


def test_validation_fails_on_vectors_from_another_model(ingest, s3_client, s3_bucket, es_client, es_index):
    from latechunk.staging.tables import StagingArea
    from latechunk_operators import LateChunkValidateOperator

    put_documents(s3_client, s3_bucket, f"incoming/{DAY:%Y-%m-%d}/", DOCUMENTS)
    run = ingest.run(RUN_OF_DAY)
    assert_state(run)

    rng = np.random.default_rng(3)
    hits = list(helpers.scan(es_client, index=es_index, query={"query": {"match_all": {}}, "_source": ["vector"]}))
    dims = len(hits[0]["_source"]["vector"])
    actions = (
        {"_op_type": "update", "_index": es_index, "_id": hit["_id"], "doc": {"vector": v.tolist()}}
        for hit, v in zip(hits, rng.standard_normal((len(hits), dims)).astype(np.float32), strict=True)
    )
    helpers.bulk(es_client, actions, refresh=True)

    area = StagingArea(ingest.conf["staging_bucket"], "runs", "latechunk_ingest", run.run_id)
    operator = LateChunkValidateOperator(
        task_id="validate_corrupted",
        manifest_path=area.uri(area.key("manifest.json")),
        index_name=es_index,
        model=ingest.conf["model"],
        staging_bucket=ingest.conf["staging_bucket"],
    )
    from latechunk.validation.run import ValidationError

    with pytest.raises(ValidationError) as failure:
        operator.execute({"run_id": run.run_id})
    assert not failure.value.report.check("self_retrieval").passed
    assert failure.value.report.check("exact_vectors").blocking


def test_reindex_swaps_the_alias_only_after_validation(ingest, s3_client, s3_bucket, es_client, es_index):
    from support import Pipeline

    put_documents(s3_client, s3_bucket, f"incoming/{DAY:%Y-%m-%d}/", DOCUMENTS)
    assert_state(ingest.run(RUN_OF_DAY))
    (served,) = es_client.indices.get_alias(name=es_index)
    before = es_client.count(index=es_index)["count"]

    reindex = Pipeline({**ingest.conf, "sentences_per_chunk": 2, "delete_old_index": True}, "latechunk_reindex")
    failing = reindex.run(DAY, probes="coral reefs => no/such/key.txt")
    assert_state(failing, "failed")
    assert list(es_client.indices.get_alias(name=es_index)) == [served], "a failed rebuild leaves the alias alone"

    assert_state(reindex.run(DAY))
    (rebuilt,) = es_client.indices.get_alias(name=es_index)
    assert rebuilt != served
    assert not es_client.indices.exists(index=served), "delete_old_index removes the index the alias left"
    after = es_client.count(index=es_index)["count"]
    assert 0 < after < before, "two sentences per chunk give fewer chunks than one"
    meta = es_client.indices.get_mapping(index=rebuilt)[rebuilt]["mappings"]["_meta"]["latechunk"]
    assert meta["chunking"]["sentences_per_chunk"] == 2


def test_an_index_of_the_former_long_document_defaults_is_refused_then_rebuilt(
    ingest, s3_client, s3_bucket, es_client, es_index
):
    """An index built with plain long late chunking (the defaults before the measured method) records no
    late-chunking settings; a run with today's defaults is refused, and the reindex DAG moves the alias to a new
    index that records them."""
    from latechunk.embedding.config import PLAIN, LateChunkingConfig
    from support import Pipeline

    put_documents(s3_client, s3_bucket, f"incoming/{DAY:%Y-%m-%d}/", DOCUMENTS)
    assert_state(ingest.run(RUN_OF_DAY, **PLAIN.as_dict()))
    (served,) = es_client.indices.get_alias(name=es_index)
    assert es_client.indices.get_mapping(index=served)[served]["mappings"]["_meta"]["latechunk"]["late_chunking"] == {}

    assert_state(ingest.run(RUN_OF_DAY), "failed")  # the extract task refuses the index
    assert list(es_client.indices.get_alias(name=es_index)) == [served]

    assert_state(Pipeline({**ingest.conf, "delete_old_index": True}, "latechunk_reindex").run(DAY))
    (rebuilt,) = es_client.indices.get_alias(name=es_index)
    assert rebuilt != served
    meta = es_client.indices.get_mapping(index=rebuilt)[rebuilt]["mappings"]["_meta"]["latechunk"]
    assert meta["late_chunking"] == LateChunkingConfig().recorded()
    assert_state(ingest.run(RUN_OF_DAY))


def test_levels_are_refused_on_an_index_of_chunks_then_rebuilt_by_the_reindex(
    ingest, s3_client, s3_bucket, es_client, es_index
):
    """An index of chunks only records no levels and keeps its rows as they were; a run asking for section and
    document rows is refused, the reindex DAG rebuilds with them, and its validation counts and re-pools them."""
    from support import Pipeline

    put_documents(s3_client, s3_bucket, f"incoming/{DAY:%Y-%m-%d}/", DOCUMENTS)
    assert_state(ingest.run(RUN_OF_DAY))
    (served,) = es_client.indices.get_alias(name=es_index)
    assert "levels" not in es_client.indices.get_mapping(index=served)[served]["mappings"]["_meta"]["latechunk"]
    assert all("level" not in chunk for chunk in indexed_chunks(es_client, es_index))
    chunks_before = es_client.count(index=es_index)["count"]

    levels = "chunk,section,document"
    assert_state(ingest.run(RUN_OF_DAY, levels=levels), "failed")  # the extract task refuses the index
    assert list(es_client.indices.get_alias(name=es_index)) == [served]

    reindex = Pipeline({**ingest.conf, "levels": levels, "delete_old_index": True}, "latechunk_reindex")
    run = reindex.run(DAY)
    assert_state(run)
    (rebuilt,) = es_client.indices.get_alias(name=es_index)
    meta = es_client.indices.get_mapping(index=rebuilt)[rebuilt]["mappings"]["_meta"]["latechunk"]
    assert meta["levels"] == ["chunk", "section", "document"]
    rows = indexed_chunks(es_client, es_index)
    by_level = {level: [row for row in rows if row["level"] == level] for level in ("chunk", "section", "document")}
    assert len(by_level["chunk"]) == chunks_before
    assert len(by_level["document"]) == len({row["doc_id"] for row in by_level["chunk"]})
    assert {tuple(row["section"]) for row in by_level["section"]} >= {("Berlin",), ("Reefs",)}
    checks = {check["name"]: check for check in validation_report(s3_client, reindex, run)["checks"]}
    assert checks["level_counts"]["passed"] and checks["exact_vectors"]["details"]["level_rows"] > 0
    assert_state(ingest.run(RUN_OF_DAY, levels=levels))
