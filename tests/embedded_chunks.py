"""Builders of embedded chunks for the index, staging and validation tests; tests/conftest.py serves them as the
`make_chunks`, `random_unit_vectors` and `corpus_chunks` fixtures."""

from __future__ import annotations

import numpy as np
from latechunk.sources.documents import EmbeddedChunk, document_id

DIMS = 768
MODEL_ID = "test/random-encoder"


def unit_vectors(n: int, dims: int = DIMS, seed: int = 0) -> np.ndarray:
    vectors = np.random.default_rng(seed).standard_normal((n, dims)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def document_chunks(
    key: str,
    n_chunks: int,
    *,
    bucket: str = "corpus",
    etag: str = '"v1"',
    vectors: np.ndarray | None = None,
    part: str = "",
    seed: int = 0,
) -> list[EmbeddedChunk]:
    """The chunks of one document; chunk i covers characters [10 i, 10 i + 9) of a made-up text."""
    if vectors is None:
        vectors = unit_vectors(n_chunks, seed=seed)
    return [
        EmbeddedChunk(
            doc_id=document_id(bucket, key, part),
            bucket=bucket,
            key=key,
            part=part,
            etag=etag,
            chunk_id=i,
            n_chunks=n_chunks,
            text=f"{key} chunk {i} of {n_chunks} ({etag})",
            char_start=10 * i,
            char_end=10 * i + 9,
            token_start=4 * i,
            token_end=4 * i + 4,
            vector=vectors[i],
            model_id=MODEL_ID,
            metadata={"source": key, "nested": {"i": i}},
        )
        for i in range(n_chunks)
    ]


def corpus(documents: int = 20) -> list[EmbeddedChunk]:
    """Documents of 1 to 8 chunks (82 chunks for 20 documents), each with its own random unit vectors."""
    chunks = []
    for d in range(documents):
        chunks += document_chunks(f"docs/doc-{d:02d}.txt", 1 + d % 8, seed=100 + d)
    return chunks


def leveled_rows(
    key: str, *, etag: str = '"v1"', sections: int = 3, levels=("chunk", "section", "document"), seed: int = 0
) -> list[EmbeddedChunk]:
    """The rows of one Markdown-like document of ``sections`` headed sections of two chunks each (and a preamble
    chunk), as the embed stage stages them for ``levels``: chunks, then section and document rows, random vectors."""
    from latechunk.chunking.levels import level_spans
    from latechunk.chunking.spans import ChunkSpan
    from latechunk.pipeline.embed import embedded_rows
    from latechunk.sources.documents import Document
    from latechunk.sources.structure import DocumentStructure, Heading

    text, headings, bounds = "Preamble.", [], [(0, 9)]
    for number in range(sections):
        title = f"Part {number}"
        start = len(text) + 2
        text += f"\n\n{title}\n\nFirst sentence {number}. Second sentence {number}."
        headings.append(Heading(1, start, start + len(title), title))
        middle = text.index(" Second", start)
        bounds += [(start, middle), (middle + 1, len(text))]
    spans = [ChunkSpan(i, 4 * i, 4 * i + 4, a, b, text[a:b]) for i, (a, b) in enumerate(bounds)]
    document = Document(
        doc_id=document_id("corpus", key), bucket="corpus", key=key, etag=etag, text=text,
        content_type="text/markdown", structure=DocumentStructure(headings=headings),
    )  # fmt: skip
    levels_of = level_spans(document.structure, spans, spans[-1].token_end, levels)
    vectors = unit_vectors(len(spans) + len(levels_of[0]), seed=seed)
    return embedded_rows(document, spans, vectors, MODEL_ID, levels_of if tuple(levels) != ("chunk",) else None)
