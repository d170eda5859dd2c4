"""Annotate and embed stages: chunk spans on the whole tokenization, then late-chunked vectors per span."""

from __future__ import annotations

import logging
import re
from dataclasses import replace
from typing import Any

from latechunk import staging
from latechunk.documents import Document, EmbeddedChunk, QuarantineEntry
from latechunk.pipeline.models import describe_model, load_tokenizer
from latechunk.pipeline.progress import Progress
from latechunk.spans import AnnotatedDocument, ChunkingConfig, ChunkSpan, annotate_spans

log = logging.getLogger(__name__)

# Documents per encoder call: small enough for a progress line between calls, large enough to batch well.
DOCS_PER_ENCODE = 16
_BATCH_INDEX = re.compile(r"batch-(\d+)\.parquet$")


def batch_index(batch_uri: str) -> int:
    """The batch number of a staged batch URI; every stage of a batch uses the same number."""
    match = _BATCH_INDEX.search(batch_uri)
    if not match:
        raise ValueError(f"not a staged batch URI: {batch_uri!r}")
    return int(match.group(1))


def stage_uri(batch_uri: str, stage: str) -> str:
    """The same batch at another stage: ``.../<run>/documents/batch-00003.parquet`` -> ``.../<run>/<stage>/...``."""
    batch_index(batch_uri)
    folder, _, name = batch_uri.rpartition("/")
    return f"{folder.rpartition('/')[0]}/{stage}/{name}"


def annotate(*, s3, area: staging.StagingArea, batch_path: str, model: str, chunking: dict[str, Any]) -> dict[str, Any]:
    """Tokenize each staged document whole and stage its chunk spans; documents with no chunk are quarantined.

    Sentence chunks are capped at ``max_chunk_tokens`` and never at more tokens than the model's window.
    """
    config = ChunkingConfig(**chunking)
    config = replace(config, max_chunk_tokens=min(config.max_chunk_tokens, describe_model(model).window))
    tokenizer = load_tokenizer(model)
    documents = staging.read_documents(s3, batch_path)
    annotated: list[tuple[Document, list[ChunkSpan]]] = []
    quarantine: list[QuarantineEntry] = []
    with Progress("annotate", total_docs=len(documents)) as progress:
        for document in documents:
            spans = annotate_spans(document.text, tokenizer, config).spans
            if spans:
                annotated.append((document, spans))
            else:
                quarantine.append(QuarantineEntry(document.ref, document.etag, "no_chunks", "no token to chunk"))
            progress.advance(docs=1, tokens=spans[-1].token_end if spans else 0, chunks=len(spans))
    spans_path = staging.write_annotated(s3, area, batch_index(batch_path), annotated)
    return {"spans_path": spans_path, "quarantine": [entry.to_dict() for entry in quarantine], **progress.summary()}


def embed(
    *,
    s3,
    area: staging.StagingArea,
    batch_path: str,
    model: str,
    window: int | None = None,
    window_overlap: int = 256,
    token_budget: int = 16384,
    device: str | None = None,
    late_chunking: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Late-chunk embedding of one staged batch: every document is encoded whole (in overlapping windows when
    longer than ``window``) and each chunk vector is the mean of its span's token embeddings.
    ``late_chunking``: the fields of `latechunk.late_chunking.LateChunkingConfig` (window layout, framing, naive
    mix for documents longer than the window); empty for plain late chunking."""
    from latechunk.encoders import load_encoder
    from latechunk.late_chunking import LateChunkingConfig, embed_documents

    config = LateChunkingConfig(**(late_chunking or {}))
    config.validate()

    index = batch_index(batch_path)
    annotated = staging.read_annotated(s3, stage_uri(batch_path, staging.STAGE_SPANS))
    encoder = load_encoder(model, device=device)
    log.info(
        "embedding %d documents with %s (%s, %s, window %s)",
        len(annotated), model, encoder.device, encoder.dtype, window or encoder.max_length,
    )
    total_tokens = sum(spans[-1].token_end for _, spans in annotated if spans)
    chunks: list[EmbeddedChunk] = []
    with Progress("embed", total_docs=len(annotated), total_tokens=total_tokens) as progress:
        for start in range(0, len(annotated), DOCS_PER_ENCODE):
            group = annotated[start : start + DOCS_PER_ENCODE]
            docs = [_retokenize(encoder.tokenizer, document, spans) for document, spans in group]
            vectors = embed_documents(
                encoder, docs, window=window, overlap=window_overlap, config=config, token_budget=token_budget
            )
            for (document, spans), doc, matrix in zip(group, docs, vectors, strict=True):
                chunks.extend(embedded_chunks(document, spans, matrix, model))
                progress.advance(docs=1, tokens=len(doc.input_ids), chunks=len(spans))
    chunks_path = staging.write_chunks(s3, area, index, chunks, dims=encoder.dim)
    summary = {"chunks_path": chunks_path, "device": str(encoder.device), **progress.summary()}
    log.info("embed summary: %s", summary)
    return summary


def _retokenize(tokenizer: Any, document: Document, spans: list[ChunkSpan]) -> AnnotatedDocument:
    """The document's token ids again (tokenizing is cheap next to encoding, and keeps staged spans small);
    a tokenizer that disagrees with the one that annotated the spans is an error, never silent misalignment."""
    input_ids = tokenizer(document.text, add_special_tokens=True, truncation=False)["input_ids"]
    if spans and spans[-1].token_end != len(input_ids):
        raise ValueError(
            f"{document.ref}: the spans were annotated on {spans[-1].token_end} tokens but the tokenizer now gives "
            f"{len(input_ids)}; annotate and embed must use the same model"
        )
    return AnnotatedDocument(input_ids=input_ids, spans=spans)


def embedded_chunks(document: Document, spans: list[ChunkSpan], vectors, model: str) -> list[EmbeddedChunk]:
    return [
        EmbeddedChunk(
            doc_id=document.doc_id,
            bucket=document.bucket,
            key=document.key,
            part=document.part,
            etag=document.etag,
            chunk_id=span.chunk_id,
            n_chunks=len(spans),
            text=span.text,
            char_start=span.char_start,
            char_end=span.char_end,
            token_start=span.token_start,
            token_end=span.token_end,
            vector=vector,
            model_id=model,
            metadata=document.metadata,
        )
        for span, vector in zip(spans, vectors, strict=True)
    ]
