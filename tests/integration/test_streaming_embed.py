"""The annotate and embed stages stream a staged batch (Parquet read piece by piece, one row group written per
piece, the next piece tokenized ahead in a thread, each document pooled as soon as its windows are encoded): the
staged vectors must be the very bytes that one-shot processing of the whole batch gives."""

from __future__ import annotations

import random
import shutil

import numpy as np
import pyarrow.parquet as pq
import pytest
from latechunk.chunking.spans import AnnotatedDocument
from latechunk.embedding.encoders import load_encoder
from latechunk.embedding.late_chunking import LateChunkingConfig, document_work, embed_documents
from latechunk.pipeline import annotate as annotate_stage
from latechunk.pipeline import embed as embed_stage
from latechunk.sources.documents import Document, document_id
from latechunk.staging import tables as staging
from latechunk.staging.tables import StagingArea
from tiny_models import WORDS

pytestmark = pytest.mark.integration

WINDOW = 64  # tiny jina's window is 8192: a small window makes the long documents go through overlapping windows
CHUNKING = {"strategy": "fixed", "chunk_size": 16}
LATE = {"window_layout": "centred", "frame_windows": True, "naive_weight": 0.5}


def corpus(bucket: str) -> list[Document]:
    """Documents of 1 to ~600 words, long ones (beyond the window) among short ones."""
    rng = random.Random(3)
    lengths = [1, 3, 40, 63, 64, 65, 200, 600, 9, 130, 2, 500, 70, 33, 310, 5]
    documents = []
    for n, length in enumerate(lengths):
        text = " ".join(rng.choice(WORDS) for _ in range(length)) + "."
        key = f"docs/{n}.txt"
        documents.append(Document(document_id(bucket, key), bucket, key, f"etag{n}", text, "text/plain"))
    return documents


@pytest.fixture
def staged_batch(s3_client, s3_bucket, tiny_jina_model) -> tuple[StagingArea, str]:
    area = StagingArea(bucket=s3_bucket, prefix="staging/", dag_id="latechunk_ingest", run_id="manual__stream")
    return area, staging.write_documents(s3_client, area, 4, corpus(s3_bucket))


def one_shot(s3_client, spans_uri: str, model: str, token_budget: int) -> tuple[list, np.ndarray]:
    """The whole batch read at once, tokenized at once and encoded in one `embed_documents` call."""
    encoder = load_encoder(model, device="cpu")
    annotated = staging.read_annotated(s3_client, spans_uri)
    docs = [
        AnnotatedDocument(encoder.tokenizer(document.text)["input_ids"], doc.spans) for document, doc in annotated
    ]
    assert [doc.input_ids for doc in docs] == [doc.input_ids for _, doc in annotated], "staged token ids"
    vectors = embed_documents(
        encoder, docs, window=WINDOW, overlap=16, config=LateChunkingConfig(**LATE), token_budget=token_budget
    )
    chunks = [
        chunk
        for (document, doc), matrix in zip(annotated, vectors, strict=True)
        for chunk in embed_stage.embedded_chunks(document, doc.spans, matrix, model)
    ]
    return chunks, np.stack([chunk.vector for chunk in chunks])


def streamed(s3_client, area: StagingArea, batch_uri: str, model: str, token_budget: int, piece_tokens: int):
    annotated = annotate_stage.annotate(s3=s3_client, area=area, batch_path=batch_uri, model=model, chunking=CHUNKING)
    summary = embed_stage.embed(
        s3=s3_client, area=area, batch_path=batch_uri, model=model, window=WINDOW, window_overlap=16,
        token_budget=token_budget, device="cpu", late_chunking=LATE, piece_tokens=piece_tokens,
    )
    return annotated, summary


def row_groups(s3_client, uri: str) -> int:
    bucket, key = staging.parse_s3_uri(uri)
    body = s3_client.get_object(Bucket=bucket, Key=key)["Body"].read()
    return pq.ParquetFile(staging.pa.BufferReader(body)).num_row_groups


def test_streamed_vectors_are_byte_identical_to_one_shot_processing(
    s3_client, staged_batch, tiny_jina_model, monkeypatch
):
    area, batch_uri = staged_batch
    monkeypatch.setattr(annotate_stage, "ANNOTATE_ROWS", 5)
    # A budget of one token gives every window a forward pass of its own in both paths, so that the only
    # differences left are the streaming's: pieces, read-ahead, per-document pooling, row groups.
    annotated, summary = streamed(s3_client, area, batch_uri, tiny_jina_model, token_budget=1, piece_tokens=150)
    assert row_groups(s3_client, annotated["spans_path"]) == 4  # 16 documents, 5 per row group
    assert row_groups(s3_client, summary["chunks_path"]) > 4  # one row group per piece of ~150 tokens

    staged = staging.read_chunks(s3_client, summary["chunks_path"])
    expected, matrix = one_shot(s3_client, annotated["spans_path"], tiny_jina_model, token_budget=1)
    assert [(c.doc_id, c.chunk_id, c.text, c.token_start, c.token_end) for c in staged] == [
        (c.doc_id, c.chunk_id, c.text, c.token_start, c.token_end) for c in expected
    ]
    assert np.stack([chunk.vector for chunk in staged]).tobytes() == matrix.tobytes()
    spans = staging.read_annotated(s3_client, annotated["spans_path"])
    assert summary["tokens"] == sum(doc.spans[-1].token_end for _, doc in spans)
    long_docs = sum(len(doc.input_ids) > WINDOW for _, doc in spans)
    assert 0 < long_docs < len(spans)
    special_ids = set(load_encoder(tiny_jina_model, device="cpu").tokenizer.all_special_ids)
    work = sum(document_work(doc, WINDOW, 16, LateChunkingConfig(**LATE), special_ids) for _, doc in spans)
    assert (summary["long_document_method"], summary["long_documents"], summary["extra_tokens"]) == (
        "centred+framed, naive 0.5", long_docs, work - summary["tokens"]
    )
    assert summary["long_document_share"] == round(long_docs / len(spans), 4) and summary["extra_tokens"] > 0


def test_streamed_vectors_match_one_shot_with_batched_forward_passes(s3_client, staged_batch, tiny_jina_model):
    area, batch_uri = staged_batch
    annotated, summary = streamed(s3_client, area, batch_uri, tiny_jina_model, token_budget=512, piece_tokens=400)
    staged = np.stack([chunk.vector for chunk in staging.read_chunks(s3_client, summary["chunks_path"])])
    _, expected = one_shot(s3_client, annotated["spans_path"], tiny_jina_model, token_budget=4096)
    # Other batch compositions pad differently, which moves float32 results in the last bits only.
    np.testing.assert_allclose(staged, expected, atol=1e-5)
    assert summary["documents"] == 16


def test_a_failing_read_ahead_fails_the_task_and_stages_nothing(s3_client, staged_batch, tiny_jina_model, monkeypatch):
    area, batch_uri = staged_batch
    annotated = annotate_stage.annotate(
        s3=s3_client, area=area, batch_path=batch_uri, model=tiny_jina_model, chunking=CHUNKING
    )
    real = staging.annotated_from_row
    calls = []

    def breaks_on_the_tenth_row(row):
        calls.append(row["doc_id"])
        if len(calls) == 10:
            raise RuntimeError("staged batch unreadable")
        return real(row)

    monkeypatch.setattr(staging, "annotated_from_row", breaks_on_the_tenth_row)
    with pytest.raises(RuntimeError, match="staged batch unreadable"):
        embed_stage.embed(
            s3=s3_client, area=area, batch_path=batch_uri, model=tiny_jina_model, window=WINDOW, window_overlap=16,
            device="cpu", piece_tokens=100,
        )
    chunks_key = area.batch_key(staging.STAGE_CHUNKS, 4)
    listed = s3_client.list_objects_v2(Bucket=area.bucket, Prefix=chunks_key).get("KeyCount", 0)
    assert listed == 0, "a failed embed must not leave a partial chunks batch"
    assert annotated["documents"] == 16


def test_token_ids_of_another_tokenizer_are_refused(s3_client, staged_batch, tiny_jina_model, tmp_path):
    area, batch_uri = staged_batch
    annotate_stage.annotate(s3=s3_client, area=area, batch_path=batch_uri, model=tiny_jina_model, chunking=CHUNKING)
    other = shutil.copytree(tiny_jina_model, tmp_path / "another-model")
    with pytest.raises(ValueError, match="annotate and embed must use the same model"):
        embed_stage.embed(s3=s3_client, area=area, batch_path=batch_uri, model=str(other), device="cpu")
