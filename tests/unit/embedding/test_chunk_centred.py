"""Chunk-centred windows (`window_layout="chunk_centred"`): each chunk of a document longer than the window is
encoded in its own window of up to ``chunk_context`` tokens on each side, framed, and only its tokens are pooled."""

from __future__ import annotations

import numpy as np
from latechunk.chunking.config import ChunkingConfig
from latechunk.chunking.spans import annotate_spans
from latechunk.embedding.chunk_centred import chunk_windows, special_affixes
from latechunk.embedding.config import LateChunkingConfig
from latechunk.embedding.late_chunking import document_work, embed_documents
from latechunk.embedding.pooling import l2_normalize

TEXT = " ".join(
    f"Meeting {i}: the marketing team reviewed the remote control design, the battery and the rubber case. "
    "Then the industrial designer presented the costs of the chips." for i in range(6)
)
CHUNK_CENTRED = LateChunkingConfig(window_layout="chunk_centred", naive_weight=0.0, chunk_context=5)


def fixed_doc(encoder, size=12, text=TEXT):
    return annotate_spans(text, encoder.tokenizer, ChunkingConfig(strategy="fixed", chunk_size=size))


def test_each_chunk_is_its_own_window_with_context_on_both_sides(tiny_encoder):
    """Every chunk vector is the mean of its tokens' outputs in a window built by hand from the definition:
    the document's [CLS] where the slice lacks it, 5 tokens before, the chunk, 5 after, [SEP] where it lacks it."""
    doc = fixed_doc(tiny_encoder)
    window = 40
    assert len(doc.input_ids) > 3 * window
    (vectors,) = embed_documents(tiny_encoder, [doc], window=window, config=CHUNK_CENTRED)
    cls, sep = special_affixes(doc.input_ids, set(tiny_encoder.tokenizer.all_special_ids))
    assert vectors.shape == (len(doc.spans), tiny_encoder.dim)
    for row, span in enumerate(doc.spans):
        start, end = max(0, span.token_start - 5), min(len(doc.input_ids), span.token_end + 5)
        head = cls if start > 0 else []
        ids = head + doc.input_ids[start:end] + (sep if end < len(doc.input_ids) else [])
        (outputs,) = tiny_encoder.encode_token_batches([ids])
        first = len(head) + span.token_start - start
        expected = l2_normalize(outputs[first : first + span.token_end - span.token_start].mean(axis=0)[None])[0]
        np.testing.assert_allclose(vectors[row], expected, atol=1e-5)


def test_a_document_that_fits_the_window_is_late_chunked_whole_as_before(tiny_encoder):
    doc = fixed_doc(tiny_encoder, text=TEXT[:100])
    window = len(doc.input_ids)
    assert window <= tiny_encoder.max_length
    (chunk_centred,) = embed_documents(tiny_encoder, [doc], window=window, config=CHUNK_CENTRED)
    (default,) = embed_documents(tiny_encoder, [doc], window=window)
    np.testing.assert_array_equal(chunk_centred, default)


def test_context_shrinks_to_fit_the_window_and_long_chunks_are_encoded_in_pieces(tiny_encoder):
    doc = fixed_doc(tiny_encoder, size=30)
    special = set(tiny_encoder.tokenizer.all_special_ids)
    windows = chunk_windows(doc, 36, 5, special)
    assert [w.row for w in windows] == list(range(len(doc.spans)))
    assert max(len(w.ids) for w in windows) <= 36
    for w, span in zip(windows, doc.spans, strict=True):
        assert w.ids[w.first : w.last] == doc.input_ids[span.token_start : span.token_end]
    # 30-token chunks (31 with [CLS] or [SEP]) fill a 31-token window alone, unframed and without context
    middle = chunk_windows(doc, 31, 5, special)[1:-1]
    assert [w.ids for w in middle] == [doc.input_ids[s.token_start : s.token_end] for s in doc.spans[1:-1]]
    # chunks longer than the window: consecutive raw pieces of their own tokens, pooled over the whole chunk
    pieces = chunk_windows(doc, 20, 5, special)
    assert [w.row for w in pieces] == [row for row, span in enumerate(doc.spans)
                                       for _ in range(-(-(span.token_end - span.token_start) // 20))]  # fmt: skip
    for row, span in enumerate(doc.spans):
        tokens = [t for w in pieces if w.row == row for t in w.ids[w.first : w.last]]
        assert tokens == doc.input_ids[span.token_start : span.token_end]
    (vectors,) = embed_documents(tiny_encoder, [doc], window=20, config=CHUNK_CENTRED)
    outputs = tiny_encoder.encode_token_batches([w.ids for w in pieces[:2]])
    np.testing.assert_allclose(vectors[0], l2_normalize(np.concatenate(outputs).mean(axis=0)[None])[0], atol=1e-5)


def test_the_work_counted_is_what_the_encoder_receives_and_progress_counts_every_token(tiny_encoder, monkeypatch):
    docs = [fixed_doc(tiny_encoder, size) for size in (8, 16)]
    received, told = [], []
    forward = tiny_encoder.forward_batch

    def counting(sequences):
        received.append(sum(map(len, sequences)))
        return forward(sequences)

    monkeypatch.setattr(tiny_encoder, "forward_batch", counting)
    embed_documents(tiny_encoder, docs, window=40, config=CHUNK_CENTRED, on_tokens=told.append)
    special = set(tiny_encoder.tokenizer.all_special_ids)
    assert sum(received) == sum(document_work(doc, 40, 10, CHUNK_CENTRED, special) for doc in docs)
    assert sum(told) == sum(len(doc.input_ids) for doc in docs)
    # 5 tokens of context on each side of 8-token chunks: about (8 + 10 + 2) / 8 tokens encoded per token
    assert 2.0 < document_work(docs[0], 40, 10, CHUNK_CENTRED, special) / len(docs[0].input_ids) < 2.6
