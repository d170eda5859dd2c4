"""Section and document vectors are pooled in the same pass as the chunks: each equals the mean of its tokens'
embeddings, for a document in one window and for one encoded in windows, and adding them changes no chunk vector."""

from __future__ import annotations

import numpy as np
import pytest
from latechunk.chunking.config import ChunkingConfig
from latechunk.chunking.levels import LEVELS, level_spans
from latechunk.chunking.spans import annotate_documents
from latechunk.embedding.config import LateChunkingConfig
from latechunk.embedding.late_chunking import embed_documents, embed_tokens
from latechunk.sources.structure import DocumentStructure, Heading

SECTIONS = {"Brew": "Hot water.", "Descale": "Do it monthly.", "Milk": "Steam it."}


def structured_text(repeat: int) -> tuple[str, DocumentStructure]:
    """A text with one heading per section (the body repeated ``repeat`` times) and its structure."""
    text, headings = "Coffee notes.\n\n", []
    for title, body in SECTIONS.items():
        headings.append(Heading(1, len(text), len(text) + len(title), title))
        text += f"{title}\n\n" + " ".join([body] * repeat) + "\n\n"
    return text.rstrip(), DocumentStructure(headings=headings)


def mean_vector(matrix: np.ndarray, start: int, end: int) -> np.ndarray:
    """The mean of rows [start, end) in float64, L2-normalised: the formula, directly."""
    mean = matrix[start:end].astype(np.float64).mean(axis=0)
    return mean / np.linalg.norm(mean)


@pytest.mark.parametrize(("repeat", "window"), [(1, None), (8, 32)], ids=["one_window", "windowed"])
def test_section_and_document_vectors_are_the_mean_of_their_token_embeddings(tiny_encoder, repeat, window):
    text, structure = structured_text(repeat)
    (doc,) = annotate_documents([text], tiny_encoder.tokenizer, ChunkingConfig("sentences"), [structure])
    n_tokens = len(doc.input_ids)
    assert (n_tokens > 2 * window) if window else (n_tokens <= tiny_encoder.max_length)
    rows, _ = level_spans(structure, doc.spans, n_tokens, LEVELS)
    assert [row.level for row in rows] == ["section"] * 4 + ["document"]
    config = LateChunkingConfig()  # centred, framed windows, naive mix on chunks
    (vectors,) = embed_documents(
        tiny_encoder, [doc], window=window, overlap=8 if window else None, config=config,
        extra_spans=[[(row.token_start, row.token_end) for row in rows]],
    )  # fmt: skip
    assert vectors.shape == (len(doc.spans) + len(rows), tiny_encoder.dim)
    (tokens,) = embed_tokens(
        tiny_encoder, [doc.input_ids], window=window, overlap=8 if window else None,
        layout=config.window_layout, frame_windows=config.frame_windows,
    )  # fmt: skip
    expected = np.array([mean_vector(tokens, row.token_start, row.token_end) for row in rows])
    np.testing.assert_allclose(vectors[len(doc.spans) :], expected, atol=2e-6, rtol=0)
    assert rows[-1].token_end - rows[-1].token_start == n_tokens


@pytest.mark.parametrize("window", [None, 32])
def test_level_spans_change_no_chunk_vector(tiny_jina, window):
    text, structure = structured_text(8 if window else 1)
    (doc,) = annotate_documents([text], tiny_jina.tokenizer, ChunkingConfig("sentences"), [structure])
    rows, _ = level_spans(structure, doc.spans, len(doc.input_ids), LEVELS)
    (alone,) = embed_documents(tiny_jina, [doc], window=window, overlap=8 if window else None)
    (with_levels,) = embed_documents(
        tiny_jina, [doc], window=window, overlap=8 if window else None,
        extra_spans=[[(row.token_start, row.token_end) for row in rows]],
    )  # fmt: skip
    np.testing.assert_array_equal(with_levels[: len(doc.spans)], alone)
