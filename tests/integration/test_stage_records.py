"""Documents that give no chunk (only zero-width characters here) through the real stages: quarantined with a
reason in the run's report, counted toward max_bad_fraction, and not read again while unchanged. And what the
index stage adds: UTF-16 offsets on every chunk, the window settings in the index's _meta."""

from __future__ import annotations

import uuid

import pytest
from latechunk.index.spec import IndexMismatchError
from latechunk.pipeline.annotate import annotate
from latechunk.pipeline.embed import embed
from latechunk.pipeline.extract import ExtractSettings, TooManyBadDocuments, extract
from latechunk.pipeline.index import index
from latechunk.pipeline.validate import ValidationSettings, validate
from latechunk.staging import tables as staging

pytestmark = pytest.mark.integration

PREFIX = "incoming/"
OBJECTS = {
    "one.txt": "Sarah Johnson is a marine biologist. She spends months diving near coral reefs.",
    "two.txt": "Berlin is the capital of Germany. It has a population of millions of people.",
    "three.txt": "The city is known for its museums. They were built in the capital.",
    "emoji.txt": "Party time 🎉 is here. Then 👨‍👩‍👧 more text follows.",
    "invisible.txt": "\u200b\u200c\u200d\u2060\ufeff\u200b",
}
CHUNKING = {"strategy": "sentences", "sentences_per_chunk": 1}


@pytest.fixture
def run_pipeline(s3_client, s3_bucket, staging_bucket, es_client, es_index, tiny_jina_model):
    for name, text in OBJECTS.items():
        s3_client.put_object(Bucket=s3_bucket, Key=PREFIX + name, Body=text.encode())

    def run(max_bad_fraction: float, window: int = 64) -> dict:
        area = staging.StagingArea(staging_bucket, "runs", "test", uuid.uuid4().hex)
        settings = ExtractSettings(
            bucket=s3_bucket, prefix=PREFIX, index=es_index, model=tiny_jina_model, chunking=CHUNKING,
            max_bad_fraction=max_bad_fraction, window=window, window_overlap=16,
        )  # fmt: skip
        extracted = extract(s3=s3_client, es=es_client, area=area, settings=settings)
        for batch in extracted["batches"]:
            annotate(s3=s3_client, area=area, batch_path=batch, model=tiny_jina_model, chunking=CHUNKING)
            embed(s3=s3_client, area=area, batch_path=batch, model=tiny_jina_model, window=window, window_overlap=16)
        common = {"s3": s3_client, "es": es_client, "manifest_path": extracted["manifest"], "index_name": es_index}
        indexed = index(**common)
        validated = validate(**common, settings=ValidationSettings())
        report = staging.read_json(s3_client, validated["report"])
        return {"extract": extracted, "index": indexed, "report": report}

    return run


def test_a_document_without_chunks_is_quarantined_tombstoned_and_not_read_again(run_pipeline):
    first = run_pipeline(max_bad_fraction=0.5)
    assert first["index"]["tombstones_recorded"] == 1
    (entry,) = [entry for entry in first["report"]["quarantine"] if entry["key"].endswith("invisible.txt")]
    assert entry["reason"] == "no_chunks" and "zero-width" in entry["detail"]

    second = run_pipeline(max_bad_fraction=0.5)
    assert second["extract"]["objects_changed"] == 0, "the tombstoned object is unchanged: nothing is read again"
    assert second["index"]["tombstones_recorded"] == 0


def test_documents_without_chunks_count_toward_max_bad_fraction(run_pipeline, es_client, es_index):
    with pytest.raises(TooManyBadDocuments, match=r"1 of 5 objects \(20%\) could not be ingested \(1 gave no chunk\)"):
        run_pipeline(max_bad_fraction=0.1)
    assert not es_client.indices.exists(index=es_index), "nothing was indexed"


def test_indexed_chunks_carry_utf16_offsets(run_pipeline, es_client, es_index):
    run_pipeline(max_bad_fraction=0.5)
    es_client.indices.refresh(index=es_index)
    hits = es_client.search(index=es_index, query={"term": {"key": PREFIX + "emoji.txt"}}, size=10)["hits"]["hits"]
    for chunk in (hit["_source"] for hit in hits):
        before = OBJECTS["emoji.txt"][: chunk["char_start"]]
        assert chunk["char_start_utf16"] == len(before.encode("utf-16-le")) // 2
        assert chunk["char_end_utf16"] - chunk["char_start_utf16"] == len(chunk["text"].encode("utf-16-le")) // 2
    assert any(hit["_source"]["char_end_utf16"] > hit["_source"]["char_end"] for hit in hits)


def test_a_run_with_another_window_is_refused(run_pipeline):
    run_pipeline(max_bad_fraction=0.5, window=64)
    with pytest.raises(IndexMismatchError, match="window is 64 in the index, 32 configured"):
        run_pipeline(max_bad_fraction=0.5, window=32)
