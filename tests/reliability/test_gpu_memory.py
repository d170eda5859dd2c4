"""GPU memory: a forward pass that runs out of memory is split and retried. On CPU the out-of-memory error is
raised by the encoder's own forward for any batch of more than one window (torch.OutOfMemoryError, what CUDA
raises), and the embed stage (real staging in MinIO, tiny jina encoder) must give the same vectors as without it."""

from __future__ import annotations

import uuid

import numpy as np
import pytest
import torch
from conftest import put
from latechunk.embedding.encoders.base import Encoder
from latechunk.pipeline.annotate import annotate
from latechunk.pipeline.embed import embed
from latechunk.pipeline.extract import ExtractSettings, extract
from latechunk.staging import tables as staging
from latechunk.staging.tables import StagingArea

pytestmark = pytest.mark.integration

CHUNKING = {"strategy": "sentences", "sentences_per_chunk": 1}


def test_out_of_memory_batches_are_split_and_give_the_same_vectors(
    monkeypatch, s3_client, s3_bucket, staging_bucket, es_client, es_index, tiny_jina_model
):
    docs = {f"d{i}.txt": " ".join(f"Sentence {j} of text {i} on coral reefs." for j in range(3 + i)) for i in range(5)}
    put(s3_client, s3_bucket, docs)
    area = StagingArea(staging_bucket, "runs", "latechunk_ingest", f"manual__{uuid.uuid4().hex[:8]}")
    settings = ExtractSettings(
        bucket=s3_bucket, prefix="incoming/", index=es_index, model=tiny_jina_model, chunking=CHUNKING
    )
    (batch,) = extract(s3=s3_client, es=es_client, area=area, settings=settings)["batches"]
    annotate(s3=s3_client, area=area, batch_path=batch, model=tiny_jina_model, chunking=CHUNKING)

    def run_embed() -> dict[str, np.ndarray]:
        uri = embed(
            s3=s3_client, area=area, batch_path=batch, model=tiny_jina_model, window=32, window_overlap=8, device="cpu"
        )["chunks_path"]
        return {chunk.es_id: chunk.vector for chunk in staging.read_chunks(s3_client, uri)}

    reference = run_embed()
    forward = Encoder._forward_padded
    calls = {"oom": 0, "ok": 0}

    def forward_with_little_memory(self, sequences):
        if len(sequences) > 1:
            calls["oom"] += 1
            raise torch.OutOfMemoryError("CUDA out of memory (simulated on CPU)")
        calls["ok"] += 1
        return forward(self, sequences)

    monkeypatch.setattr(Encoder, "_forward_padded", forward_with_little_memory)
    split = run_embed()
    assert calls["oom"] > 0 and calls["ok"] > 1
    assert split.keys() == reference.keys()
    for chunk_id, vector in reference.items():
        np.testing.assert_allclose(split[chunk_id], vector, atol=1e-5)
