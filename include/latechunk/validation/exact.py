"""The exact check: what the index serves is what the run's model gives for the run's documents.

A sample of the documents this run wrote is annotated and late-chunked again, whole, through the same code path
(the run's tokenizer, chunking, window, overlap and late-chunking settings), and every chunk the index serves for
them is compared with the result: its text and offsets must be equal, its vector within a cosine bound of the
fresh one. Unlike the model-grounded queries this never depends on what the text says: boilerplate, numbers, code
or a language the model does not know re-encode to the same vectors. Random, rotated, shuffled, truncated, stale
or another model's vectors, a chunk given its neighbour's vector and spans shifted by one token all fail it.

In an index of several levels (`latechunk.chunking.levels`) the sample's section and document rows are pooled again
from the same pass and compared the same way (offsets and vector).

The bound depends on the dtype the embed stage ran in (the validate task re-encodes on its own device, in float32
on CPU): ``MIN_COSINE`` holds the bounds measured by ``bench/exact_bound.py`` with a margin; the measured figures
are in docs/reliability.md. The sample is drawn at random by documents and bounded by ``max_tokens``: its cost is
reported with the check.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from latechunk.chunking.config import ChunkingConfig
from latechunk.chunking.levels import DEFAULT_LEVELS, LevelSpan, level_spans
from latechunk.chunking.spans import annotate_documents
from latechunk.embedding.config import LateChunkingConfig
from latechunk.embedding.late_chunking import embed_documents
from latechunk.index.backend import SearchBackend
from latechunk.sources.documents import Document
from latechunk.sources.structure import DocumentStructure
from latechunk.validation.report import MAX_LISTED, Check

# Lowest cosine between a served vector and its re-encoding that still counts as equal, by the dtype the embed
# stage ran in (bench/exact_bound.py, MiniLM, 1,457 chunks of NFCorpus and QMSum, CPU): float32 in batches against
# float32 alone differed by at most 2.4e-7, bfloat16 by 1.9e-4; the bounds leave a margin of 40x and 5x. float16
# keeps 3 more mantissa bits than bfloat16, so the bfloat16 bound holds for it. A chunk given its neighbour's
# vector scored at most 0.978; a span pooled one token off 0.99999 at best (a 500-token chunk) and far lower for
# most chunks, so the check catches it in float32 through the shorter chunks of the same documents.
MIN_COSINE = {"float32": 0.99999, "bfloat16": 0.999, "float16": 0.999}
SPAN_FIELDS = ("text", "char_start", "char_end", "token_start", "token_end")
LEVEL_FIELDS = ("char_start", "char_end", "token_start", "token_end")


@dataclass(frozen=True)
class Reencoder:
    """The run's embedding path: the encoder (its tokenizer annotates) and the settings the run recorded."""

    encoder: Any  # latechunk.embedding.encoders.Encoder
    chunking: ChunkingConfig
    window: int | None = None
    overlap: int | None = None
    late_chunking: LateChunkingConfig = field(default_factory=LateChunkingConfig)
    token_budget: int = 16384
    tokenizer: Any = None  # the annotate stage's tokenizer; default the encoder's
    levels: tuple[str, ...] = DEFAULT_LEVELS

    def chunks(
        self, texts: Sequence[str], structures: Sequence[DocumentStructure] | None = None
    ) -> list[tuple[Any, np.ndarray]]:
        """(AnnotatedDocument, (n_chunks, dim) vectors) of each text (with its structure, which moves chunk
        boundaries), as annotate and embed make them."""
        return [(annotated, vectors) for annotated, vectors, _, _ in self.rows(texts, structures)]

    def rows(
        self, texts: Sequence[str], structures: Sequence[DocumentStructure] | None = None
    ) -> list[tuple[Any, np.ndarray, list[LevelSpan], np.ndarray]]:
        """`chunks`, with each text's section and document spans (for the reencoder's ``levels``) and their
        vectors, pooled in the same pass as the embed stage pools them."""
        tokenizer = self.tokenizer or self.encoder.tokenizer
        structures = list(structures) if structures is not None else [DocumentStructure()] * len(texts)
        annotated = annotate_documents(list(texts), tokenizer, self.chunking, structures)
        extra = [level_spans(structure, doc.spans, len(doc.input_ids), self.levels)[0]
                 for structure, doc in zip(structures, annotated, strict=True)]  # fmt: skip
        vectors = embed_documents(
            self.encoder, annotated, window=self.window, overlap=self.overlap, config=self.late_chunking,
            token_budget=self.token_budget,
            extra_spans=[[(row.token_start, row.token_end) for row in rows] for rows in extra],
        )  # fmt: skip
        return [(doc, matrix[: len(doc.spans)], rows, matrix[len(doc.spans) :])
                for doc, matrix, rows in zip(annotated, vectors, extra, strict=True)]  # fmt: skip


def sample_by_tokens(
    tokens_by_doc: dict[str, int], max_tokens: int, seed: int = 0, max_documents: int = 50
) -> list[str]:
    """Documents in random order while their tokens fit ``max_tokens`` (at least the shortest one)."""
    if not tokens_by_doc:
        return []
    order = np.random.default_rng(seed).permutation(sorted(tokens_by_doc))
    chosen, total = [], 0
    for doc_id in order:
        tokens = tokens_by_doc[str(doc_id)]
        if total + tokens <= max_tokens and len(chosen) < max_documents:
            chosen.append(str(doc_id))
            total += tokens
    return chosen or [min(tokens_by_doc, key=lambda doc_id: (tokens_by_doc[doc_id], doc_id))]


def check_exact_vectors(
    backend: SearchBackend,
    index: str,
    documents: Sequence[Document],
    reencoder: Reencoder | None,
    min_cosine: float,
) -> Check:
    """Re-encode ``documents`` and compare every chunk the index serves for them; see the module docstring."""
    name = "exact_vectors"
    if not documents:
        reason = "this run wrote no document: what earlier runs wrote was checked by them"
        return Check(name, None, min_cosine, True, {"reason": reason}, skipped=True)
    if reencoder is None:
        return Check(name, None, min_cosine, False, {"reason": "no encoder to re-encode the sampled documents"})
    started = time.perf_counter()
    expected = reencoder.rows([document.text for document in documents], [doc.structure for doc in documents])
    ids = [f"{doc.doc_id}:{span.chunk_id}" for doc, (annotated, *_) in zip(documents, expected, strict=True)
           for span in annotated.spans]  # fmt: skip
    level_ids = [row.row_id(doc.doc_id) for doc, (_, _, rows, _) in zip(documents, expected, strict=True)
                 for row in rows]  # fmt: skip
    served = backend.get_chunks(index, ids + level_ids)
    problems: list[dict[str, Any]] = []
    cosines: list[float] = []
    for document, (annotated, vectors, rows, row_vectors) in zip(documents, expected, strict=True):
        for span, vector in zip(annotated.spans, vectors, strict=True):
            found = served.get(f"{document.doc_id}:{span.chunk_id}")
            problem = _compare(span, vector, found, min_cosine, cosines)
            if problem:
                problems.append({"key": document.key, "chunk_id": span.chunk_id, **problem})
        for row, vector in zip(rows, row_vectors, strict=True):
            found = served.get(row.row_id(document.doc_id))
            problem = _compare(row, vector, found, min_cosine, cosines, LEVEL_FIELDS)
            if problem:
                problems.append({"key": document.key, "level": row.level, "ordinal": row.ordinal, **problem})
    details = {
        "documents": len(documents),
        "chunks": len(ids),
        "level_rows": len(level_ids),
        "tokens": sum(len(annotated.input_ids) for annotated, *_ in expected),
        "seconds": round(time.perf_counter() - started, 2),
        "min_cosine": round(min(cosines), 6) if cosines else None,
        "bound": min_cosine,
        "wrong": len(problems),
        "problems": problems[:MAX_LISTED],
    }
    checked = len(ids) + len(level_ids)
    value = 1 - len(problems) / checked if checked else 1.0
    return Check(name, value, 1.0, not problems, details)


def _compare(
    span,
    vector: np.ndarray,
    found: dict[str, Any] | None,
    min_cosine: float,
    cosines: list[float],
    fields: Sequence[str] = SPAN_FIELDS,
):
    if found is None:
        return {"problem": "missing: the index serves no such chunk"}
    differing = [name for name in fields if found.get(name) != getattr(span, name)]
    if differing:
        served = {name: found.get(name) for name in differing if name != "text"}
        expected = {name: getattr(span, name) for name in differing if name != "text"}
        return {"problem": f"span differs in {', '.join(differing)}", "served": served, "expected": expected}
    served_vector = np.asarray(found.get("vector") or [], dtype=np.float32)
    if served_vector.shape != vector.shape:
        return {"problem": f"vector of {served_vector.shape[0]} dims, the model gives {vector.shape[0]}"}
    norms = float(np.linalg.norm(served_vector) * np.linalg.norm(vector))
    cosine = float(served_vector @ vector) / norms if norms else 0.0
    cosines.append(cosine)
    if cosine < min_cosine:
        return {"problem": "vector differs from the model's", "cosine": round(cosine, 6)}
    return None
