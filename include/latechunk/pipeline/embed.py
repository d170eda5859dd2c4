"""Annotate and embed stages: chunk spans on the whole tokenization, then late-chunked vectors per span."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

from latechunk import staging
from latechunk.documents import Document, EmbeddedChunk, QuarantineEntry
from latechunk.pipeline.models import describe_model, load_tokenizer
from latechunk.pipeline.progress import Progress
from latechunk.prefetch import prefetched
from latechunk.spans import AnnotatedDocument, ChunkingConfig, ChunkSpan, annotate_documents
from latechunk.staging_stream import TOKENS_KEY, StagedReader, StagedWriter

log = logging.getLogger(__name__)

# Documents per Parquet read and row group when annotating.
ANNOTATE_ROWS = 512
# Embed pieces: this many forward passes' token budget (1,048,576 tokens by default). Length sorting inside a piece
# must see enough documents to pair long ones with long ones: with 8 budgets per piece the padding of a log-normal
# length mix made encoding 35% slower than one sorted pass (bench/pipeline_throughput.py corpus, tiny encoder, CPU).
# A piece holds texts, token ids and pooled vectors, never the token matrices of more than one forward pass.
PIECES_PER_BUDGET = 64
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

    Sentence chunks are capped at ``max_chunk_tokens`` and never at more tokens than the model's window. The batch
    is read and written ``ANNOTATE_ROWS`` documents at a time.
    """
    config = ChunkingConfig(**chunking)
    config = replace(config, max_chunk_tokens=min(config.max_chunk_tokens, describe_model(model).window))
    tokenizer = load_tokenizer(model)
    quarantine: list[QuarantineEntry] = []
    tokens = 0
    with (
        StagedReader(s3, batch_path, staging.STAGE_DOCUMENTS) as staged,
        StagedWriter(s3, area, staging.STAGE_SPANS, batch_index(batch_path), staging.ANNOTATED_SCHEMA) as writer,
    ):
        with Progress("annotate", total_docs=staged.rows) as progress:
            for rows in staged.iter_batches(ANNOTATE_ROWS):
                documents = [staging.document_from_row(row) for row in rows]
                annotated: list[tuple[Document, list[ChunkSpan]]] = []
                done = annotate_documents([document.text for document in documents], tokenizer, config)
                for document, spans in zip(documents, (doc.spans for doc in done), strict=True):
                    if spans:
                        annotated.append((document, spans))
                        tokens += spans[-1].token_end
                    else:
                        entry = QuarantineEntry(document.ref, document.etag, "no_chunks", "no token to chunk")
                        quarantine.append(entry)
                    progress.advance(docs=1, tokens=spans[-1].token_end if spans else 0, chunks=len(spans))
                writer.write(staging.annotated_table(annotated))
        writer.add_metadata({TOKENS_KEY: str(tokens).encode()})
    return {"spans_path": writer.uri, "quarantine": [entry.to_dict() for entry in quarantine], **progress.summary()}


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
    piece_tokens: int | None = None,
) -> dict[str, Any]:
    """Late-chunk embedding of one staged batch: every document is encoded whole (in overlapping windows when
    longer than ``window``) and each chunk vector is the mean of its span's token embeddings.
    ``late_chunking``: the fields of `latechunk.late_chunking.LateChunkingConfig` (window layout, framing, naive
    mix for documents longer than the window); empty for plain late chunking.

    The batch streams through in pieces of about ``piece_tokens`` tokens (default ``PIECES_PER_BUDGET`` forward
    passes' worth): the next piece is read and tokenized while this one is encoded, documents are length-sorted
    within a piece, each document is pooled as soon as its last window is encoded, and each piece's vectors are
    written as one row group. Memory is bounded by a piece, whatever the batch size.
    """
    from latechunk.encoders import load_encoder
    from latechunk.late_chunking import LateChunkingConfig, embed_documents

    config = LateChunkingConfig(**(late_chunking or {}))
    config.validate()
    encoder = load_encoder(model, device=device)
    piece_tokens = piece_tokens or PIECES_PER_BUDGET * token_budget
    chunk_schema = staging.chunk_schema(encoder.dim)
    with (
        StagedReader(s3, stage_uri(batch_path, staging.STAGE_SPANS), staging.STAGE_SPANS) as staged,
        StagedWriter(s3, area, staging.STAGE_CHUNKS, batch_index(batch_path), chunk_schema) as writer,
    ):
        total_tokens = int(staged.metadata.get(TOKENS_KEY, b"0")) or None
        log.info(
            "embedding %d documents (%s tokens) with %s (%s, %s, window %s)",
            staged.rows, total_tokens or "?", model, encoder.device, encoder.dtype, window or encoder.max_length,
        )
        with Progress("embed", total_docs=staged.rows, total_tokens=total_tokens) as progress:
            for piece in prefetched(tokenized_pieces(staged, encoder.tokenizer, piece_tokens)):
                vectors = embed_documents(
                    encoder, [doc for _, doc in piece], window=window, overlap=window_overlap, config=config,
                    token_budget=token_budget,
                )
                chunks: list[EmbeddedChunk] = []
                for (document, doc), matrix in zip(piece, vectors, strict=True):
                    chunks.extend(embedded_chunks(document, doc.spans, matrix, model))
                    progress.advance(docs=1, tokens=len(doc.input_ids), chunks=len(doc.spans))
                writer.write(staging.chunk_table(chunks, encoder.dim))
    summary = {"chunks_path": writer.uri, "device": str(encoder.device), **progress.summary()}
    log.info("embed summary: %s", summary)
    return summary


def tokenized_pieces(
    staged: StagedReader, tokenizer: Any, piece_tokens: int
) -> Iterator[list[tuple[Document, AnnotatedDocument]]]:
    """The staged documents with their token ids again, in pieces of about ``piece_tokens`` tokens (tokenizing is
    cheap next to encoding, and keeps staged spans small)."""
    piece: list[tuple[Document, list[ChunkSpan]]] = []
    tokens = 0
    for row in staged.iter_rows():
        document, spans = staging.annotated_from_row(row)
        piece.append((document, spans))
        tokens += spans[-1].token_end if spans else 0
        if tokens >= piece_tokens:
            yield _retokenize(tokenizer, piece)
            piece, tokens = [], 0
    if piece:
        yield _retokenize(tokenizer, piece)


def _retokenize(
    tokenizer: Any, piece: list[tuple[Document, list[ChunkSpan]]]
) -> list[tuple[Document, AnnotatedDocument]]:
    """A tokenizer that disagrees with the one that annotated the spans is an error, never silent misalignment."""
    texts = [document.text for document, _ in piece]
    all_ids = tokenizer(texts, add_special_tokens=True, truncation=False)["input_ids"] if texts else []
    retokenized = []
    for (document, spans), input_ids in zip(piece, all_ids, strict=True):
        if spans and spans[-1].token_end != len(input_ids):
            raise ValueError(
                f"{document.ref}: the spans were annotated on {spans[-1].token_end} tokens but the tokenizer now "
                f"gives {len(input_ids)}; annotate and embed must use the same model"
            )
        retokenized.append((document, AnnotatedDocument(input_ids=input_ids, spans=spans)))
    return retokenized


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
