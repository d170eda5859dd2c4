"""Late chunking keeps the document's context in each chunk: checked with the real all-MiniLM-L6-v2."""

from __future__ import annotations

import numpy as np
import pytest
from latechunk.chunking.config import ChunkingConfig
from latechunk.chunking.spans import annotate_spans
from latechunk.embedding.late_chunking import embed_documents

DOCUMENT = (
    "Sarah Johnson is a marine biologist who works at a research station in Hawaii. "
    "She spends several months every year diving near the coral reefs. "
    "Her research focuses on how rising ocean temperatures affect the reefs. "
    "Last year she published a book about it."
)
QUERY = "Sarah Johnson"


@pytest.mark.parametrize("pronoun_sentence", [1, 2, 3])
def test_late_chunked_pronoun_sentence_is_closer_to_the_person(minilm, pronoun_sentence):
    doc = annotate_spans(DOCUMENT, minilm.tokenizer, ChunkingConfig("sentences"))
    assert len(doc.spans) == 4
    (late,) = embed_documents(minilm, [doc])
    naive = minilm.encode_queries([chunk.text for chunk in doc.spans])
    query = minilm.encode_queries([QUERY])[0]
    late_score = float(late[pronoun_sentence] @ query)
    naive_score = float(naive[pronoun_sentence] @ query)
    assert late_score > naive_score + 0.05, (late_score, naive_score)


def test_late_and_naive_agree_for_a_single_chunk_document(minilm):
    """With one chunk covering the whole document, late chunking is ordinary mean pooling."""
    doc = annotate_spans("Sarah Johnson dives near coral reefs", minilm.tokenizer, ChunkingConfig("sentences"))
    (late,) = embed_documents(minilm, [doc])
    naive = minilm.encode_queries([doc.spans[0].text])
    np.testing.assert_allclose(late, naive, atol=1e-5)
