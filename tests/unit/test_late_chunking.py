from __future__ import annotations

import numpy as np
import pytest
import torch
from latechunk.chunking.config import ChunkingConfig
from latechunk.chunking.spans import annotate_spans
from latechunk.embedding.encoders.base import Encoder
from latechunk.embedding.late_chunking import embed_documents, embed_tokens, plan_windows

LONG_TEXT = " ".join(
    f"Sarah Johnson works in Berlin {i}. She spends months diving near coral reefs. Her research focuses on "
    "how rising ocean temperatures affect the reefs." for i in range(4)
)


class ProbeEncoder(Encoder):
    """Returns, for every position, (token id, position inside the window, window length): it shows exactly
    which window each stitched row came from. Records the batch shapes it was called with."""

    def __init__(self, max_length: int) -> None:
        super().__init__(
            tokenizer=None, max_length=max_length, dim=3, model_id="probe", revision="0",
            device=torch.device("cpu"), dtype=torch.float32,
        )
        self.calls: list[tuple[int, int]] = []

    def forward_tokens(self, input_ids, attention_mask):
        self.calls.append(tuple(input_ids.shape))
        positions = torch.arange(input_ids.shape[1]).expand_as(input_ids)
        lengths = attention_mask.sum(dim=1, keepdim=True).expand_as(input_ids)
        return torch.stack([input_ids, positions, lengths], dim=-1).float()


@pytest.mark.parametrize("n_tokens", [0, 1, 7, 8, 9, 20, 23, 24, 25, 100])
@pytest.mark.parametrize("window, overlap", [(8, 0), (8, 3), (8, 7), (5, 1), (1, 0)])
def test_windows_cover_every_token_exactly_once(n_tokens, window, overlap):
    windows = plan_windows(n_tokens, window, overlap)
    kept = [t for w in windows for t in range(w.keep_from, w.end)]
    assert kept == list(range(n_tokens))
    for previous, current in zip(windows, windows[1:], strict=False):
        assert current.start == previous.end - overlap and current.keep_from == previous.end
    assert all(w.end - w.start <= window and w.end > w.keep_from for w in windows)
    expected_count = 0 if n_tokens == 0 else 1 + max(0, -(-(n_tokens - window) // (window - overlap)))
    assert len(windows) == expected_count, "no wasted trailing window"


@pytest.mark.parametrize("window, overlap", [(0, 0), (8, 8), (8, -1)])
def test_invalid_windows_are_rejected(window, overlap):
    with pytest.raises(ValueError):
        plan_windows(10, window, overlap)


def test_stitched_rows_come_from_one_window_each_and_batch_across_documents():
    encoder = ProbeEncoder(max_length=16)
    documents = [list(range(100, 100 + n)) for n in (40, 16, 3, 70)]
    matrices = embed_tokens(encoder, documents, window=16, overlap=5, token_budget=64)
    for ids, matrix in zip(documents, matrices, strict=True):
        assert matrix.shape == (len(ids), 3)
        np.testing.assert_array_equal(matrix[:, 0], ids)  # every token once, in order
        later_windows = matrix[16:]
        assert (later_windows[:, 1] >= 5).all(), "rows of later windows skip the overlap"
    n_windows = sum(len(plan_windows(len(ids), 16, 5)) for ids in documents)
    assert len(encoder.calls) < n_windows, "windows of different documents share forward passes"
    assert all(batch * length <= 64 for batch, length in encoder.calls)


def single_pass_vectors(encoder, doc):
    from latechunk.embedding.pooling import pool_spans

    with torch.no_grad():
        ids = torch.tensor([doc.input_ids])
        model = encoder.model
        hidden = model(ids) if hasattr(model, "layers") else model(input_ids=ids).last_hidden_state
    return pool_spans(hidden[0].numpy(), doc.spans)


def test_window_at_least_the_document_equals_single_pass(tiny_encoder):
    texts = [LONG_TEXT[:n] for n in (40, 150, 400)]
    docs = [annotate_spans(t, tiny_encoder.tokenizer, ChunkingConfig()) for t in texts]
    window = max(len(doc.input_ids) for doc in docs)
    assert window <= tiny_encoder.max_length
    late = embed_documents(tiny_encoder, docs, window=window, token_budget=2 * window)
    for doc, vectors in zip(docs, late, strict=True):
        np.testing.assert_allclose(vectors, single_pass_vectors(tiny_encoder, doc), atol=1e-5, rtol=0)


def test_small_windows_equal_encoding_each_window_alone(tiny_encoder):
    doc = annotate_spans(LONG_TEXT, tiny_encoder.tokenizer, ChunkingConfig())
    window, overlap = 24, 6
    assert len(doc.input_ids) > 3 * window
    (stitched,) = embed_tokens(tiny_encoder, [doc.input_ids], window=window, overlap=overlap)
    assert stitched.shape == (len(doc.input_ids), tiny_encoder.dim)
    for w in plan_windows(len(doc.input_ids), window, overlap):
        (alone,) = tiny_encoder.encode_token_batches([doc.input_ids[w.start : w.end]])
        np.testing.assert_allclose(stitched[w.keep_from : w.end], alone[w.keep_from - w.start :], atol=1e-5)
    (late,) = embed_documents(tiny_encoder, [doc], window=window, overlap=overlap)
    assert late.shape == (len(doc.spans), tiny_encoder.dim)
    np.testing.assert_allclose(np.linalg.norm(late, axis=1), 1.0, atol=1e-5)
    single = single_pass_vectors(tiny_encoder, doc)
    assert not np.allclose(late, single, atol=1e-3), "a token only sees its window: results must differ"


def test_alibi_windows_are_translation_invariant_unlike_absolute_positions(tiny_jina, tiny_bert):
    """The same tokens placed at a different offset of a sequence: ALiBi sees only relative positions, so a
    block that attends only to itself (attention_mask isolates it) gives identical outputs at any offset,
    while absolute position embeddings change them."""
    block = tiny_jina.tokenizer("she works in berlin near the reefs", add_special_tokens=False)["input_ids"]
    for encoder, invariant in ((tiny_jina, True), (tiny_bert, False)):
        with torch.no_grad():
            model = encoder.model
            alone = torch.tensor([block])
            shifted = torch.tensor([[encoder.pad_token_id] * 5 + block])
            mask = (torch.arange(shifted.shape[1]) >= 5).long()[None]
            if invariant:
                out_alone, out_shifted = model(alone), model(shifted, mask)
            else:
                out_alone = model(input_ids=alone).last_hidden_state
                out_shifted = model(input_ids=shifted, attention_mask=mask).last_hidden_state
        same = torch.allclose(out_alone[0], out_shifted[0, 5:], atol=1e-5)
        assert same is invariant


def test_documents_without_chunks_get_empty_arrays(tiny_bert):
    docs = [annotate_spans(text, tiny_bert.tokenizer, ChunkingConfig()) for text in ("", "One. Two.")]
    empty, two = embed_documents(tiny_bert, docs)
    assert empty.shape == (0, tiny_bert.dim) and two.shape == (2, tiny_bert.dim)


def test_window_larger_than_the_encoder_is_rejected(tiny_bert):
    with pytest.raises(ValueError, match="exceeds"):
        embed_tokens(tiny_bert, [[1, 2, 3]], window=tiny_bert.max_length + 1)
