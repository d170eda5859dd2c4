"""Each operator through `execute(context)` against the real servers, chained as the DAG chains them."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from latechunk.pipeline.manifest import RUN_SETTINGS
from latechunk.staging import tables as staging
from latechunk_operators import (
    LateChunkAnnotateOperator,
    LateChunkEmbedOperator,
    LateChunkExtractOperator,
    LateChunkIndexOperator,
    LateChunkSwapAliasOperator,
    LateChunkValidateOperator,
)

PREFIX = "incoming/2026-02-01/"
OBJECTS = {
    "one.txt": "Ada Lovelace wrote the first program. She published it in 1843. Her notes were long.",
    "two.md": "# Engines\n\nThe analytical engine was never built. It would have used punched cards.",
    "three.json": '{"body": "A third document. It has a custom text field."}',
    "empty.txt": "   \n",
}
CHUNKING = {"strategy": "sentences", "chunk_size": 256, "overlap": 0, "sentences_per_chunk": 1}


class RecordingTaskInstance:
    """Stands in for the task instance in the context: keeps what an operator pushes to XCom."""

    def __init__(self) -> None:
        self.pushed: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.pushed[key] = value


# The DAGs give extract (which records them in the manifest) and embed the same window params.
WINDOWS = {"window": 32, "window_overlap": 8}


@pytest.fixture
def context() -> dict[str, Any]:
    return {
        "run_id": "manual__2026-02-01T00:00:00+00:00",
        "ti": RecordingTaskInstance(),
        "data_interval_start": datetime(2026, 2, 1, tzinfo=UTC),
        "data_interval_end": datetime(2026, 2, 2, tzinfo=UTC),
    }


@pytest.fixture
def stages(connections, s3_client, s3_bucket, staging_bucket, es_index, tiny_jina_model, context):
    """Runs the operators in DAG order up to a named one; returns every stage's result."""
    for name, text in OBJECTS.items():
        s3_client.put_object(Bucket=s3_bucket, Key=PREFIX + name, Body=text.encode())
    common = {"staging_bucket": staging_bucket}
    results: dict[str, Any] = {}

    def run_until(last: str, **extract_options: Any) -> dict[str, Any]:
        extract = LateChunkExtractOperator(
            task_id="extract", bucket=s3_bucket, prefix=PREFIX, index_name=es_index, model=tiny_jina_model,
            chunking=CHUNKING, json_text_field="body", docs_per_batch=2, max_bad_fraction=0.5, **WINDOWS, **common,
            **extract_options,
        )
        results["extract"] = extract.execute(context)
        for stage, operator_class, extra in (
            ("annotate", LateChunkAnnotateOperator, {"chunking": CHUNKING}),
            ("embed", LateChunkEmbedOperator, {**WINDOWS, "device": "cpu"}),
        ):
            if last == "extract":
                return results
            results[stage] = [
                operator_class(task_id=stage, batch_path=batch, model=tiny_jina_model, **extra, **common).execute(
                    context
                )
                for batch in results["extract"]
            ]
            if last == stage:
                return results
        manifest = context["ti"].pushed["manifest"]
        results["index"] = LateChunkIndexOperator(
            task_id="index", manifest_path=manifest, index_name=es_index, **common
        ).execute(context)
        if last == "index":
            return results
        results["validate"] = LateChunkValidateOperator(
            task_id="validate", manifest_path=manifest, index_name=es_index, model=tiny_jina_model,
            probes=[{"query": "Ada Lovelace program", "expected_keys": [PREFIX + "one.txt"]}], **common,
        ).execute(context)
        return results

    return run_until


def test_extract_stages_changed_objects_and_quarantines_bad_ones(stages, s3_client, context):
    batches = stages("extract")["extract"]
    assert len(batches) == 2, "3 good documents in batches of 2"
    documents = [doc for uri in batches for doc in staging.read_documents(s3_client, uri)]
    assert sorted(doc.key for doc in documents) == sorted(PREFIX + name for name in OBJECTS if name != "empty.txt")
    assert next(doc for doc in documents if doc.key.endswith("three.json")).text == "A third document. It has a " \
        "custom text field."
    summary = context["ti"].pushed["summary"]
    assert summary["objects_changed"] == 4
    assert summary["objects_quarantined"] == 1
    manifest = staging.read_json(s3_client, context["ti"].pushed["manifest"])
    assert [entry["key"] for entry in manifest["quarantine"]] == [PREFIX + "empty.txt"]
    assert manifest["batches"] == batches


def test_annotate_stages_spans_with_exact_offsets(stages, s3_client):
    results = stages("annotate")
    paths = [result["spans_path"] for result in results["annotate"]]
    annotated = [item for path in paths for item in staging.read_annotated(s3_client, path)]
    assert len(annotated) == 3
    for document, doc in annotated:
        assert doc.spans, document.key
        assert doc.spans[-1].token_end == len(doc.input_ids)
        for span in doc.spans:
            assert document.text[span.char_start : span.char_end] == span.text
    assert sum(result["chunks"] for result in results["annotate"]) == sum(len(doc.spans) for _, doc in annotated)


def test_embed_stages_unit_vectors_for_every_span(stages, s3_client):
    results = stages("embed")
    chunks = [chunk for result in results["embed"] for chunk in staging.read_chunks(s3_client, result["chunks_path"])]
    assert len(chunks) == sum(result["chunks"] for result in results["annotate"])
    for chunk in chunks:
        assert chunk.vector.shape == (32,)
        assert abs(float((chunk.vector**2).sum()) - 1.0) < 1e-4
    assert all(result["tokens_per_s"] > 0 and result["device"] == "cpu" for result in results["embed"])


def test_index_writes_each_chunk_once(stages, es_client, es_index):
    results = stages("index")
    es_client.indices.refresh(index=es_index)
    total = sum(result["chunks"] for result in results["embed"])
    assert es_client.count(index=es_index)["count"] == total == results["index"]["chunks_indexed"]
    assert results["index"]["index_created"] is True


def test_validate_passes_on_a_good_run_and_reports(stages, s3_client):
    report = stages("validate")["validate"]
    assert report["passed"] is True
    assert report["checks"]["self_retrieval"] == 1.0
    assert staging.read_json(s3_client, report["report"])["passed"] is True


def test_section_and_document_rows_go_through_every_stage(stages, es_client, es_index):
    results = stages("validate", levels="chunk,section,document")
    summary = results["index"]
    assert summary["chunks_indexed"] == sum(result["chunks"] for result in results["embed"])
    es_client.indices.refresh(index=es_index)
    hits = es_client.search(index=es_index, size=100, source=["level", "key"])["hits"]["hits"]
    levels = sorted((hit["_source"]["level"], hit["_source"]["key"].removeprefix(PREFIX)) for hit in hits)
    # one.txt has no heading (no section row), two.md one ("Engines"), three.json none (empty.txt has no text).
    assert [entry for entry in levels if entry[0] != "chunk"] == [
        ("document", "one.txt"), ("document", "three.json"), ("document", "two.md"), ("section", "two.md")
    ]
    assert len(levels) == summary["chunks_indexed"] + 4
    assert summary["level_rows_indexed"] == 4
    (name,) = es_client.indices.get_alias(name=es_index)
    meta = es_client.indices.get_mapping(index=name)[name]["mappings"]["_meta"]["latechunk"]
    assert meta["levels"] == ["chunk", "section", "document"]
    report = results["validate"]
    assert report["passed"] is True and report["checks"]["level_counts"] == 0
    assert report["checks"]["exact_vectors"] == 1.0


def test_chunk_centred_windows_go_through_every_stage_and_are_what_the_index_serves(stages, s3_client, es_client,
                                                                                   es_index, tiny_jina_model):
    """A run with the late-only layout: embed follows the manifest's layout, the index records it, the exact check
    re-encodes with it, and the vectors served are chunk-centred ones, not the default method's."""
    import numpy as np
    from latechunk.embedding.config import LateChunkingConfig
    from latechunk.embedding.encoders import load_encoder
    from latechunk.embedding.late_chunking import embed_documents

    late = {"window_layout": "chunk_centred", "naive_weight": 0.0, "chunk_context": 4}
    results = stages("validate", late_chunking=late)
    report = results["validate"]
    assert report["passed"] is True and report["checks"]["exact_vectors"] == 1.0
    (name,) = es_client.indices.get_alias(name=es_index)
    meta = es_client.indices.get_mapping(index=name)[name]["mappings"]["_meta"]["latechunk"]
    assert meta["late_chunking"] == {"window_layout": "chunk_centred", "frame_windows": True, "chunk_context": 4}
    annotated = [item for result in results["annotate"] for item in staging.read_annotated(s3_client,
                                                                                            result["spans_path"])]
    document, doc = next((d, a) for d, a in annotated if d.key.endswith("one.txt"))
    assert len(doc.input_ids) > WINDOWS["window"], "the document must be longer than the window"
    es_client.indices.refresh(index=es_index)
    hits = es_client.search(index=es_index, size=50, query={"term": {"key": document.key}},
                            source=["chunk_id", "vector"], sort=["chunk_id"])["hits"]["hits"]  # fmt: skip
    served = np.array([hit["_source"]["vector"] for hit in hits], np.float32)
    encoder = load_encoder(tiny_jina_model, device="cpu")
    (chunk_centred,) = embed_documents(encoder, [doc], window=WINDOWS["window"],
                                       config=LateChunkingConfig(**late))  # fmt: skip
    (default,) = embed_documents(encoder, [doc], window=WINDOWS["window"], overlap=WINDOWS["window_overlap"])
    np.testing.assert_allclose(served, chunk_centred, atol=1e-5)
    assert not np.allclose(served, default, atol=1e-3)


def test_a_run_with_other_levels_than_its_index_is_refused(stages):
    stages("index")
    with pytest.raises(Exception, match=r"levels is \['chunk'\] in the index, \['chunk', 'section'\] configured"):
        stages("extract", levels="chunk,section")


def test_swap_alias_moves_the_alias_atomically(connections, es_client, es_index):
    from latechunk.index.elasticsearch import ElasticsearchBackend
    from latechunk.index.spec import IndexSpec

    for name in (f"{es_index}-a", f"{es_index}-b"):
        ElasticsearchBackend(es_client).ensure_index(IndexSpec(name=name, dims=8, model_id="m", replicas=0))
    LateChunkSwapAliasOperator(task_id="swap", alias=es_index, new_index=f"{es_index}-a").execute({})
    result = LateChunkSwapAliasOperator(
        task_id="swap", alias=es_index, new_index=f"{es_index}-b", delete_old=True
    ).execute({})
    assert result["previous"] == [f"{es_index}-a"]
    assert list(es_client.indices.get_alias(name=es_index)) == [f"{es_index}-b"]
    assert not es_client.indices.exists(index=f"{es_index}-a")


def test_swap_alias_refuses_an_alias_over_an_index_it_did_not_build_without_retrying(connections, es_client, es_index):
    from airflow.sdk.exceptions import AirflowFailException
    from latechunk.index.elasticsearch import ElasticsearchBackend
    from latechunk.index.spec import IndexSpec

    es_client.indices.create(index=f"{es_index}-theirs", aliases={es_index: {}})
    ElasticsearchBackend(es_client).ensure_index(IndexSpec(name=f"{es_index}-b", dims=8, model_id="m", replicas=0))
    swap = LateChunkSwapAliasOperator(task_id="swap", alias=es_index, new_index=f"{es_index}-b", delete_old=True)
    with pytest.raises(AirflowFailException, match="was not built by latechunk"):
        swap.execute({})
    assert list(es_client.indices.get_alias(name=es_index)) == [f"{es_index}-theirs"]


def test_swap_alias_catches_the_new_index_up_with_the_bucket_before_it_swaps(
    connections, es_client, es_index, s3_client, s3_bucket, staging_bucket, make_chunks
):
    """What other runs changed while the reindex built its index: a deleted object leaves the new index, an
    overwritten one goes on the ingest DAG's pending list (latechunk.pipeline.catch_up); then the alias moves."""
    import numpy as np
    from latechunk.chunking.config import ChunkingConfig
    from latechunk.embedding.config import LateChunkingConfig
    from latechunk.index.elasticsearch import ElasticsearchBackend
    from latechunk.index.spec import IndexSpec
    from latechunk.pipeline.batch_failures import pending_uri, read_pending
    from latechunk.pipeline.manifest import RunManifest

    new = f"{es_index}-b"
    backend = ElasticsearchBackend(es_client)
    backend.ensure_index(IndexSpec(name=new, dims=8, model_id="m", replicas=0))
    for key in ("incoming/kept.txt", "incoming/gone.txt"):
        chunks = make_chunks(key, 2, bucket=s3_bucket, etag="v1", vectors=np.eye(8, dtype=np.float32)[:2])
        assert backend.upsert_documents(new, chunks).ok
    now = s3_client.put_object(Bucket=s3_bucket, Key="incoming/kept.txt", Body=b"rewritten")["ETag"].strip('"')
    reindex = RunManifest(
        bucket=s3_bucket, prefix="incoming/", index=new, model="m", model_revision="r", dims=8,
        chunking=ChunkingConfig(), window=64, window_overlap=16, late_chunking=LateChunkingConfig(),
        max_bad_fraction=0.2,
    ).write(s3_client, staging.StagingArea(staging_bucket, "runs", "latechunk_reindex", "manual__1"))  # fmt: skip

    result = LateChunkSwapAliasOperator(
        task_id="swap", alias=es_index, new_index=new, manifest_path=reindex, staging_bucket=staging_bucket
    ).execute({"run_id": "manual__1"})
    assert (result["catch_up"]["removed"], result["catch_up"]["pending"]) == (["incoming/gone.txt"],
                                                                              ["incoming/kept.txt"])  # fmt: skip
    assert list(es_client.indices.get_alias(name=es_index)) == [new]
    ingest = staging.StagingArea(staging_bucket, "runs", "latechunk_ingest", "any")
    assert {key: entry["etag"] for key, entry in read_pending(s3_client, pending_uri(ingest, es_index)).items()} == {
        "incoming/kept.txt": now
    }
    assert set(backend.indexed_etags(new, bucket=s3_bucket)) == {"incoming/kept.txt"}


def test_templated_fields_render_from_params_and_dates():
    operator = LateChunkExtractOperator(
        task_id="extract", bucket="{{ params.bucket }}", prefix="{{ params.prefix }}{{ ds }}/",
        index_name="{{ params.index }}", model="m", chunking={"strategy": "{{ params.strategy }}"},
        staging_bucket="{{ params.bucket }}-staging",
    )
    operator.render_template_fields(
        {"params": {"bucket": "docs", "prefix": "in/", "index": "chunks", "strategy": "fixed"}, "ds": "2026-02-01"}
    )
    assert (operator.bucket, operator.prefix, operator.index_name) == ("docs", "in/2026-02-01/", "chunks")
    assert operator.chunking == {"strategy": "fixed"}
    assert operator.staging_bucket == "docs-staging"


@pytest.fixture
def extracted(connections, s3_client, s3_bucket, staging_bucket, es_index, tiny_jina_model, tmp_path, context):
    """An extract task run with its own copy of the tiny model; returns its batches, model path and common args."""
    import shutil

    model = tmp_path / "model"
    shutil.copytree(tiny_jina_model, model)
    for name, text in OBJECTS.items():
        s3_client.put_object(Bucket=s3_bucket, Key=PREFIX + name, Body=text.encode())
    common = {"staging_bucket": staging_bucket}
    batches = LateChunkExtractOperator(
        task_id="extract", bucket=s3_bucket, prefix=PREFIX, index_name=es_index, model=str(model), chunking=CHUNKING,
        json_text_field="body", docs_per_batch=8, max_bad_fraction=0.5, **WINDOWS, **common,
    ).execute(context)  # fmt: skip
    return batches, model, common


def test_annotate_and_embed_follow_the_manifest_not_their_arguments(extracted, s3_client, context):
    """Stored DAG files pass chunking, window and model to annotate and embed: still accepted, but the settings
    extract checked and recorded in the run manifest are the ones used."""
    (batch,), model, common = extracted
    manifest = context["ti"].pushed["manifest"]
    with pytest.warns(DeprecationWarning, match="chunking, model ignored"):
        annotate = LateChunkAnnotateOperator(
            task_id="annotate", batch_path=batch, manifest_path=manifest, model="elsewhere",
            chunking={"strategy": "fixed", "chunk_size": 2}, **common,
        )  # fmt: skip
    spans = annotate.execute(context)["spans_path"]
    with pytest.warns(DeprecationWarning, match="window, window_overlap"):
        embed = LateChunkEmbedOperator(
            task_id="embed", batch_path=batch, model="elsewhere", window=4096, window_overlap=0, device="cpu", **common
        )
    embedded = embed.execute(context)
    one = next(doc for document, doc in staging.read_annotated(s3_client, spans) if document.key.endswith("one.txt"))
    assert len(one.spans) == 3, "one sentence per chunk, as recorded, not 2-token chunks"
    assert embedded["long_documents"] == 3, "all 3 are longer than the recorded 32-token window (not than 4096)"
    assert embedded["chunks"] == sum(len(doc.spans) for _, doc in staging.read_annotated(s3_client, spans))


def test_a_model_changed_after_extract_fails_annotate_and_embed_without_retries(extracted, context):
    from airflow.sdk.exceptions import AirflowFailException

    (batch,), model, common = extracted
    config = model / "config.json"
    config.write_text(config.read_text().replace("{", '{"note": "retrained", ', 1))
    for operator in (
        LateChunkAnnotateOperator(task_id="annotate", batch_path=batch, **common),
        LateChunkEmbedOperator(task_id="embed", batch_path=batch, device="cpu", **common),
    ):
        with pytest.raises(AirflowFailException, match="that the run recorded"):
            operator.execute(context)


def test_a_manifest_staged_before_the_upgrade_is_followed_to_the_index(extracted, s3_client, es_client, es_index,
                                                                       context):  # fmt: skip
    """A run in flight during an upgrade: its manifest is the plain JSON of before (no late-chunking record, no
    retry bookkeeping); annotate, embed and index read it, and the index records plain late chunking."""
    (batch,), _, common = extracted
    uri = context["ti"].pushed["manifest"]
    bucket, key = staging.parse_s3_uri(uri)
    old = staging.read_json(s3_client, uri)
    for newer in ("late_chunking", "retried", "pending_uri"):
        old.pop(newer)
    s3_client.put_object(Bucket=bucket, Key=key, Body=json.dumps(old).encode())
    s3_client.delete_object(Bucket=bucket, Key=f"{key.rpartition('/')[0]}/{RUN_SETTINGS}")  # not staged then
    LateChunkAnnotateOperator(task_id="annotate", batch_path=batch, **common).execute(context)
    embedded = LateChunkEmbedOperator(task_id="embed", batch_path=batch, device="cpu", **common).execute(context)
    assert embedded["long_document_method"] == "stitched (plain)"
    indexed = LateChunkIndexOperator(task_id="index", manifest_path=uri, index_name=es_index, **common).execute(
        context
    )
    assert indexed["chunks_indexed"] == embedded["chunks"]
    from latechunk.embedding.config import PLAIN, LateChunkingConfig
    from latechunk.index.spec import META_KEY

    (mapping,) = es_client.indices.get_mapping(index=es_index).values()
    recorded = mapping["mappings"]["_meta"][META_KEY].get("late_chunking") or {}
    assert LateChunkingConfig.from_recorded(recorded) == PLAIN


def test_the_extract_planned_over_key_ranges_and_gathered_stages_what_one_extract_task_does(
    connections, s3_client, s3_bucket, staging_bucket, es_index, tiny_jina_model, context
):
    """plan_extract -> extract_shard per range -> extract, executed as the DAG runs them, against one extract
    task; and the gathering task of a run created before the upgrade (no range extracted) extracts it all."""
    from latechunk_operators.extract_shards import (
        LateChunkExtractShardOperator,
        LateChunkGatherExtractOperator,
        LateChunkPlanExtractOperator,
    )

    for name, text in OBJECTS.items():
        s3_client.put_object(Bucket=s3_bucket, Key=PREFIX + name, Body=text.encode())
    arguments = dict(bucket=s3_bucket, prefix=PREFIX, index_name=es_index, model=tiny_jina_model, chunking=CHUNKING,
                     json_text_field="body", docs_per_batch=2, max_bad_fraction=0.5, extract_shards=3,
                     objects_per_shard=1, staging_bucket=staging_bucket, **WINDOWS)  # fmt: skip

    def staged(uris: list[str]) -> list[str]:
        return sorted(doc.key for uri in uris for doc in staging.read_documents(s3_client, uri))

    shards = LateChunkPlanExtractOperator(task_id="plan_extract", **arguments).execute(context)
    assert len(shards) == 3 and context["ti"].pushed["summary"]["key_ranges"] == 3
    results, listed = [], 0
    for shard in shards:
        extract_range = LateChunkExtractShardOperator(task_id="extract_shard", shard=shard, **arguments)
        results.append(extract_range.execute(context))
        range_summary = context["ti"].pushed["summary"]
        assert range_summary["peak_rss_mb"] > 0
        listed += range_summary["objects_listed"]
    assert listed == len(OBJECTS)
    gathered = LateChunkGatherExtractOperator(task_id="extract", shard_results=results, **arguments).execute(context)
    summary = context["ti"].pushed["summary"]
    assert (summary["key_ranges"], summary["objects_changed"], summary["objects_quarantined"]) == (3, 4, 1)
    whole = LateChunkExtractOperator(task_id="extract", **arguments).execute(context)
    assert context["ti"].pushed["summary"]["key_ranges"] == 1
    assert staged(gathered) == staged(whole) == sorted(PREFIX + name for name in OBJECTS if name != "empty.txt")

    fallback = LateChunkGatherExtractOperator(task_id="extract", shard_results=[], **arguments).execute(context)
    assert staged(fallback) == staged(whole) and context["ti"].pushed["summary"]["objects_changed"] == 4
