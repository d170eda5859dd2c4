"""The annotate stage caps sentence chunks at the model window, whatever max_chunk_tokens says."""

from __future__ import annotations

import uuid

import pytest
from latechunk.pipeline.annotate import annotate
from latechunk.pipeline.shared import stage_uri
from latechunk.sources.documents import Document
from latechunk.staging import tables as staging
from tiny_models import save_tiny_bert

pytestmark = pytest.mark.integration


def test_sentence_chunks_never_exceed_the_model_window(s3_client, staging_bucket, tmp_path):
    save_tiny_bert(tmp_path)  # a 128-token window
    area = staging.StagingArea(staging_bucket, "runs", "test", uuid.uuid4().hex)
    text = " ".join(["the city of berlin is the capital of germany"] * 60)  # one sentence of 540 tokens
    document = Document("d1", "b", "k.txt", "e", text, "text/plain")
    batch = staging.write_documents(s3_client, area, 0, [document])
    chunking = {"strategy": "sentences", "max_chunk_tokens": 10_000}
    annotate(s3=s3_client, area=area, batch_path=batch, model=str(tmp_path), chunking=chunking)
    ((_, doc),) = staging.read_annotated(s3_client, stage_uri(batch, staging.STAGE_SPANS))
    spans = doc.spans
    assert len(spans) > 4 and max(span.token_end - span.token_start for span in spans) <= 128 + 2
