"""Long late chunking methods on a fixed slice of qmsum_dev (2 meetings cut to about 2,000 MiniLM tokens, 512-token
window): the project's vectors against a direct computation written independently here, with the Hugging Face
model called on one unpadded sequence at a time and each token's window found by a closed-form rule."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from latechunk.chunking.config import ChunkingConfig
from latechunk.chunking.spans import annotate_spans
from latechunk.embedding.config import PLAIN
from latechunk.embedding.late_chunking import (
    LateChunkingConfig,
    document_work,
    embed_documents,
    embed_naive,
    embed_tokens,
    encoded_tokens,
)
from latechunk.evaluation.harness import LateVariant, chunking_configs, embed_corpus, encoder_work, late_key
from latechunk.evaluation.retrieval import ChunkVectors
from latechunk.evaluation.units import document_units, unit_kind

QMSUM = Path(__file__).resolve().parents[3] / "shared" / "datasets" / "qmsum_dev" / "corpus.jsonl"
SLICE_TOKENS = 2000
WINDOW = 512

pytestmark = pytest.mark.skipif(not QMSUM.is_file(), reason="needs ../shared/datasets/qmsum_dev")


@pytest.fixture(scope="module")
def minilm_encoder(minilm_dir):
    from latechunk.embedding.encoders import load_encoder

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    return load_encoder(minilm_dir, device="cpu")


@pytest.fixture(scope="module")
def hf_model(minilm_dir):
    from transformers import AutoModel

    return AutoModel.from_pretrained(minilm_dir).eval()


@pytest.fixture(scope="module")
def meetings(minilm_encoder) -> list[str]:
    """The first two meetings, each cut after its first SLICE_TOKENS content tokens."""
    with open(QMSUM, encoding="utf-8") as handle:
        texts = [json.loads(line)["text"] for line, _ in zip(handle, range(2), strict=False)]
    tokenizer = minilm_encoder.tokenizer
    cut = []
    for text in texts:
        offsets = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
        cut.append(text[: offsets[SLICE_TOKENS - 1][1]])
    return cut


def direct_token_embeddings(model, ids: list[int], overlap: int, layout: str, framed: bool) -> np.ndarray:
    """Each token's embedding from the window that keeps it: raw windows start every ``stride`` tokens; token t
    belongs to window min(max(0, (t - left) // stride), last), where ``last`` is the first window that reaches
    the end; the last window of the centred layout is moved to end exactly at the document's end."""
    n = len(ids)
    cls, sep = ids[0], ids[-1]
    raw = WINDOW - 2 if framed else WINDOW
    left = overlap if layout == "stitched" else overlap // 2
    stride = raw - overlap
    last = next(k for k in range(1, n) if k * stride + raw >= n)
    rows = []
    cache: dict[int, torch.Tensor] = {}
    for t in range(n):
        k = min(max(0, (t - left) // stride), last)
        start = n - raw if (k == last and layout == "centred") else k * stride
        end = min(start + raw, n)
        if k not in cache:
            head = [cls] if framed and start > 0 else []
            tail = [sep] if framed and end < n else []
            with torch.no_grad():
                out = model(input_ids=torch.tensor([head + ids[start:end] + tail])).last_hidden_state[0]
            cache[k] = out[len(head) :]
        rows.append(cache[k][t - start].numpy())
    return np.stack(rows)


def direct_naive(model, ids: list[int], token_start: int, token_end: int) -> np.ndarray:
    content = ids[max(token_start, 1) : min(token_end, len(ids) - 1)]
    with torch.no_grad():
        out = model(input_ids=torch.tensor([[ids[0], *content, ids[-1]]])).last_hidden_state[0]
    return out.mean(dim=0).numpy()


def unit(vector: np.ndarray) -> np.ndarray:
    return vector / np.linalg.norm(vector)


@pytest.mark.parametrize(
    "config, overlap, chunk_size",
    [
        (PLAIN, 128, 64),
        (LateChunkingConfig(), 128, 256),
        (LateChunkingConfig(window_layout="stitched", frame_windows=True, naive_weight=0.3), 256, 32),
        (LateChunkingConfig(window_layout="centred", frame_windows=True, naive_weight=0.5), 128, 128),
    ],
)
def test_method_vectors_equal_a_direct_computation(minilm_encoder, hf_model, meetings, config, overlap, chunk_size):
    model = hf_model
    chunking = ChunkingConfig("fixed", chunk_size=chunk_size)
    docs = [annotate_spans(t, minilm_encoder.tokenizer, chunking) for t in meetings]
    assert all(len(doc.input_ids) == SLICE_TOKENS + 2 for doc in docs)
    vectors = embed_documents(minilm_encoder, docs, window=WINDOW, overlap=overlap, config=config)
    for doc, got in zip(docs, vectors, strict=True):
        tokens = direct_token_embeddings(model, doc.input_ids, overlap, config.window_layout, config.frame_windows)
        assert got.shape == (len(doc.spans), minilm_encoder.dim)
        for span, row in zip(doc.spans, got, strict=True):
            expected = unit(tokens[span.token_start : span.token_end].mean(axis=0))
            if config.naive_weight:
                naive = unit(direct_naive(model, doc.input_ids, span.token_start, span.token_end))
                expected = unit(config.naive_weight * naive + (1 - config.naive_weight) * expected)
            np.testing.assert_allclose(row, expected, atol=2e-5)


def test_the_default_method_changes_the_vectors_of_long_documents_only(minilm_encoder, meetings):
    """The default (centred framed windows mixed with naive vectors) against plain late chunking: other vectors
    for a document longer than the window, the very same ones for a document that fits it."""
    long_doc = annotate_spans(meetings[0], minilm_encoder.tokenizer, ChunkingConfig("fixed", chunk_size=64))
    short_doc = annotate_spans(meetings[0][:800], minilm_encoder.tokenizer, ChunkingConfig("fixed", chunk_size=64))
    assert len(short_doc.input_ids) <= minilm_encoder.max_length < len(long_doc.input_ids)
    plain = embed_documents(minilm_encoder, [long_doc, short_doc], config=PLAIN)
    default = embed_documents(minilm_encoder, [long_doc, short_doc])
    assert not np.allclose(plain[0], default[0], atol=1e-3)
    np.testing.assert_array_equal(plain[1], default[1])


class CountingEncoder:
    """Wraps an encoder and counts the tokens it is asked to encode."""

    def __init__(self, encoder) -> None:
        self.encoder, self.tokens = encoder, 0

    def __getattr__(self, name):
        return getattr(self.encoder, name)

    def encode_token_batches(self, sequences, **kwargs):
        self.tokens += sum(len(s) for s in sequences)
        return self.encoder.encode_token_batches(sequences, **kwargs)

    def iter_token_batches(self, sequences, **kwargs):
        self.tokens += sum(len(s) for s in sequences)
        return self.encoder.iter_token_batches(sequences, **kwargs)


@pytest.mark.parametrize("layout, framed, overlap", [("stitched", False, 128), ("centred", True, 256)])
def test_reported_encoder_cost_is_what_the_encoder_receives(minilm_encoder, meetings, layout, framed, overlap):
    ids = [minilm_encoder.tokenizer(t)["input_ids"] for t in meetings]
    counting = CountingEncoder(minilm_encoder)
    embed_tokens(counting, ids, overlap=overlap, layout=layout, frame_windows=framed)
    planned = sum(encoded_tokens(len(d), WINDOW, overlap, layout, (1, 1) if framed else (0, 0)) for d in ids)
    assert counting.tokens == planned

    variant = LateVariant(layout, framed, overlap, naive_weight=0.0)
    fake = {(late_key(variant), 64): ChunkVectors(np.zeros(0, np.int64), np.zeros((0, 384), np.float32))}
    work = encoder_work(minilm_encoder, ids, fake, [variant])
    assert work[(late_key(variant), 64)].sum() == planned

    docs = [annotate_spans(t, minilm_encoder.tokenizer, ChunkingConfig("fixed", chunk_size=64)) for t in meetings]
    counting.tokens = 0
    embed_naive(counting, docs)
    owners = np.repeat(np.arange(len(docs)), [len(doc.spans) for doc in docs])
    naive = {("naive", 64): ChunkVectors(owners, np.zeros((len(owners), 384), np.float32))}
    assert encoder_work(minilm_encoder, ids, naive)[("naive", 64)].sum() == counting.tokens

    config = LateChunkingConfig(layout, framed, naive_weight=0.6)  # windows, then the naive pass of long documents
    counting.tokens = 0
    embed_documents(counting, docs, window=WINDOW, overlap=overlap, config=config)
    mixed = LateVariant(layout, framed, overlap, naive_weight=0.6)
    chunks = {(late_key(mixed), 64): ChunkVectors(owners, np.zeros((len(owners), 384), np.float32))}
    assert encoder_work(minilm_encoder, ids, chunks, [mixed])[(late_key(mixed), 64)].sum() == counting.tokens
    special_ids = set(minilm_encoder.tokenizer.all_special_ids)
    assert sum(document_work(doc, WINDOW, overlap, config, special_ids) for doc in docs) == counting.tokens


def test_section_vectors_of_a_windowed_meeting_equal_a_direct_computation(minilm_encoder, hf_model, meetings):
    """Turn sections of 256 tokens and the document vector of a 2,000-token meeting (4 windows of 512), pooled in
    the harness's late pass, against the independent per-token computation above."""
    variant = LateVariant("centred", True, 128, naive_weight=0.6)
    vectors = embed_corpus(
        minilm_encoder,
        meetings[:1],
        ["late"],
        chunking_configs("fixed", [256]),
        long_late=True,
        late_variants=[variant],
        units=["section", "document"],
        section_tokens=[256],
    )
    ids = minilm_encoder.tokenizer(meetings[0])["input_ids"]
    tokens = direct_token_embeddings(hf_model, ids, 128, "centred", True)
    sections = document_units(minilm_encoder, meetings[0], [256]).sections[256]
    assert len(sections) > 4 and sections[-1][1] == len(ids)
    got = vectors[(unit_kind(late_key(variant), "section"), 256)].vectors
    expected = np.stack([unit(tokens[start:end].mean(axis=0)) for start, end in sections])
    np.testing.assert_allclose(got, expected, atol=2e-5)
    document = vectors[(unit_kind(late_key(variant), "document"), 0)].vectors
    np.testing.assert_allclose(document[0], unit(tokens.mean(axis=0)), atol=2e-5)
