"""Hostile documents from extraction through Parquet staging on the real S3 server: metadata with integers beyond
64 bits, NaN and infinities, nesting 300 deep, and lone surrogates in text and metadata all stage and read back."""

from __future__ import annotations

import json
import math

import pytest
from latechunk.sources.documents import SourceObject, load_documents
from latechunk.staging.tables import StagingArea, read_documents, write_documents

pytestmark = pytest.mark.integration


def test_hostile_metadata_and_text_survive_extract_and_staging(s3_client, s3_bucket):
    deep: object = "bottom"
    for level in range(300):
        deep = {f"level{level}": deep}
    objects = {
        "feed.jsonl": b'{"text": "Big numbers.", "id": 123456789012345678901234567890, "neg": -18446744073709551617}\n'
        b'{"text": "Odd floats.", "nan": NaN, "inf": Infinity, "ninf": -Infinity}\n',
        "deep.json": json.dumps({"text": "Deep metadata.", "meta": deep}).encode(),
        "lone.json": b'{"text": "A \\ud800 lone \\udc00 surrogate.", "tag\\udbff": "v\\ud800"}',
    }
    documents = []
    for key, data in objects.items():
        found, quarantine = load_documents(SourceObject(s3_bucket, key, "etag", len(data)), data)
        assert quarantine == []
        documents.extend(found)
    area = StagingArea(bucket=s3_bucket, prefix="staging/", dag_id="latechunk_ingest", run_id="hostile")

    staged = {doc.ref: doc for doc in read_documents(s3_client, write_documents(s3_client, area, 0, documents))}

    assert staged["feed.jsonl#1"].metadata == {"id": 123456789012345678901234567890, "neg": -18446744073709551617}
    odd = staged["feed.jsonl#2"].metadata
    assert math.isnan(odd["nan"]) and odd["inf"] == math.inf and odd["ninf"] == -math.inf
    assert staged["deep.json"].metadata == {"meta": deep}
    lone = staged["lone.json"]
    assert lone.text == "A \ufffd lone \ufffd surrogate."
    assert lone.metadata == {"tag\ufffd": "v\ufffd"}
    assert [(doc.doc_id, doc.text) for doc in documents] == [(staged[doc.ref].doc_id, staged[doc.ref].text)
                                                             for doc in documents]
