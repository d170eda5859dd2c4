"""Embed stage: late-chunked vectors per span, from the whole tokenization of each annotated document."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import replace
from typing import Any

from latechunk.chunking.levels import CHUNK, DEFAULT_LEVELS, LEVEL_TEXT_CHARS, SECTION, LevelSpan, level_spans
from latechunk.chunking.sections import chunk_locations
from latechunk.chunking.spans import AnnotatedDocument, ChunkSpan
from latechunk.embedding.config import DEFAULT_TOKEN_BUDGET, LateChunkingConfig
from latechunk.pipeline.progress import Progress
from latechunk.pipeline.shared import batch_index, stage_uri, tokenizer_identity
from latechunk.sources.documents import Document, EmbeddedChunk, level_row_id
from latechunk.staging import tables as staging
from latechunk.staging.prefetch import prefetched
from latechunk.staging.stream import ENCODER_DTYPE_KEY, TOKENIZER_KEY, TOKENS_KEY, StagedReader, StagedWriter

log = logging.getLogger(__name__)

# Embed pieces: this many forward passes' token budget (1,048,576 tokens by default). Length sorting inside a piece
# must see enough documents to pair long ones with long ones: with 8 budgets per piece the padding of a log-normal
# length mix made encoding 35% slower than one sorted pass (bench/pipeline_throughput.py corpus, tiny encoder, CPU).
# A piece holds texts, token ids and pooled vectors, never the token matrices of more than one forward pass.
PIECES_PER_BUDGET = 64


def embed(
    *,
    s3,
    area: staging.StagingArea,
    batch_path: str,
    model: str,
    window: int | None = None,
    window_overlap: int | None = None,
    token_budget: int = DEFAULT_TOKEN_BUDGET,
    device: str | None = None,
    dtype: str = "auto",
    attention: str = "auto",
    late_chunking: dict[str, Any] | None = None,
    piece_tokens: int | None = None,
    revision: str | None = None,
    levels: Sequence[str] = DEFAULT_LEVELS,
) -> dict[str, Any]:
    """Late-chunk embedding of one staged batch: every document is encoded whole (in overlapping windows when
    longer than ``window``) and each chunk vector is the mean of its span's token embeddings.
    ``late_chunking``: the fields of `latechunk.embedding.late_chunking.LateChunkingConfig` (window layout, framing,
    naive mix for documents longer than the window); empty for its defaults. ``window_overlap``: None for
    min(256, window // 4). ``dtype`` and ``attention``: see
    `latechunk.embedding.encoders.load_encoder`. ``revision``: exactly that revision of the model (the one the run
    recorded), never another. ``levels`` (`latechunk.chunking.levels`): beyond chunks, each document's section and
    document vectors are pooled in the same pass and staged as rows of their level; chunks only computes nothing more.

    The batch streams through in pieces of about ``piece_tokens`` tokens (default ``PIECES_PER_BUDGET`` forward
    passes' worth): the next piece is read (with the token ids annotate staged) while this one is encoded,
    documents are length-sorted within a piece, each document is pooled as soon as its last window is encoded,
    and each piece's vectors are written as one row group. Memory is bounded by a piece, whatever the batch size,
    and by one forward pass's outputs plus one running sum per chunk, whatever a document's length. The progress
    line counts tokens after every forward pass, so it moves inside a long document.
    """
    from latechunk.embedding.encoders import load_encoder
    from latechunk.embedding.late_chunking import default_overlap, document_work, embed_documents

    config = LateChunkingConfig(**(late_chunking or {}))
    config.validate()
    encoder = load_encoder(model, device=device, dtype=dtype, attention=attention, revision=revision)
    window = window or encoder.max_length
    window_overlap = default_overlap(window) if window_overlap is None else window_overlap
    special_ids = set(encoder.tokenizer.all_special_ids)
    long_docs = document_tokens = encoder_tokens = 0
    piece_tokens = piece_tokens or PIECES_PER_BUDGET * token_budget
    chunk_schema = staging.chunk_schema(encoder.dim)
    with (
        StagedReader(s3, stage_uri(batch_path, staging.STAGE_SPANS), staging.STAGE_SPANS) as staged,
        StagedWriter(s3, area, staging.STAGE_CHUNKS, batch_index(batch_path), chunk_schema) as writer,
    ):
        check_tokenizer(staged, tokenizer_identity(model, encoder.revision), batch_path)
        total_tokens = int(staged.metadata.get(TOKENS_KEY, b"0")) or None
        log.info(
            "embedding %d documents (%s tokens) with %s (%s, %s, window %s)",
            staged.rows, total_tokens or "?", model, encoder.device, encoder.dtype, window,
        )
        with Progress("embed", total_docs=staged.rows, total_tokens=total_tokens) as progress:
            for piece in prefetched(staged_pieces(staged, piece_tokens)):
                extra = [level_spans(document.structure, doc.spans, len(doc.input_ids), levels)
                         for document, doc in piece] if tuple(levels) != DEFAULT_LEVELS else None  # fmt: skip
                vectors = embed_documents(
                    encoder, [doc for _, doc in piece], window=window, overlap=window_overlap, config=config,
                    token_budget=token_budget, on_tokens=lambda n: progress.advance(tokens=n),
                    extra_spans=[[(row.token_start, row.token_end) for row in rows] for rows, _ in extra]
                    if extra else None,
                )  # fmt: skip
                chunks: list[EmbeddedChunk] = []
                for number, ((document, doc), matrix) in enumerate(zip(piece, vectors, strict=True)):
                    chunks.extend(embedded_rows(document, doc.spans, matrix, model, extra[number] if extra else None))
                    long_docs += len(doc.input_ids) > window
                    document_tokens += len(doc.input_ids)
                    encoder_tokens += document_work(doc, window, window_overlap, config, special_ids)
                    progress.advance(docs=1, chunks=len(doc.spans))
                writer.write(staging.chunk_table(chunks, encoder.dim))
        writer.add_metadata({ENCODER_DTYPE_KEY: str(encoder.dtype).removeprefix("torch.").encode()})
    summary = {"chunks_path": writer.uri, "device": str(encoder.device), "dtype": str(encoder.dtype).split(".")[-1],
               **learnt_limits(encoder), **progress.summary(),
               **long_document_summary(config, staged.rows, long_docs, document_tokens, encoder_tokens)}  # fmt: skip
    log.info("embed summary: %s", summary)
    return summary


def long_document_summary(
    config: LateChunkingConfig, n_docs: int, long_docs: int, document_tokens: int, encoder_tokens: int
) -> dict[str, Any]:
    """Which method computed the vectors of documents longer than the window, how many there were and what they
    cost: ``extra_tokens`` the encoder processed beyond the documents' own tokens (overlaps, frames, naive pass)."""
    return {
        "long_document_method": config.name,
        "long_documents": long_docs,
        "long_document_share": round(long_docs / n_docs, 4) if n_docs else 0.0,
        "extra_tokens": encoder_tokens - document_tokens,
        "encoder_cost": round(encoder_tokens / document_tokens, 4) if document_tokens else 1.0,
    }


def learnt_limits(encoder) -> dict[str, int]:
    """What out-of-memory errors taught the encoder during the task (nothing when none happened)."""
    learnt = {"token_budget_learnt": encoder.budget_limit, "window_learnt": encoder.window_limit}
    return {name: value for name, value in learnt.items() if value is not None}


def staged_pieces(staged: StagedReader, piece_tokens: int) -> Iterator[list[tuple[Document, AnnotatedDocument]]]:
    """The annotated documents, with their token ids, in pieces of about ``piece_tokens`` tokens."""
    piece: list[tuple[Document, AnnotatedDocument]] = []
    tokens = 0
    for row in staged.iter_rows():
        document, doc = staging.annotated_from_row(row)
        piece.append((document, doc))
        tokens += len(doc.input_ids)
        if tokens >= piece_tokens:
            yield piece
            piece, tokens = [], 0
    if piece:
        yield piece


def check_tokenizer(staged: StagedReader, identity: str, batch_path: str) -> None:
    """Token ids of another tokenizer would be encoded without an error, into wrong vectors: refuse them."""
    annotated_with = staged.metadata.get(TOKENIZER_KEY, b"").decode()
    if annotated_with != identity:
        raise ValueError(
            f"{batch_path}: its spans were annotated with the tokenizer of {annotated_with or 'an unknown model'!r} "
            f"but embed loads {identity!r}; annotate and embed must use the same model: clear the batch's annotate "
            "task"
        )


def embedded_chunks(document: Document, spans: list[ChunkSpan], vectors, model: str) -> list[EmbeddedChunk]:
    """The chunks of a document with their vectors, section paths and pages."""
    locations = chunk_locations(document.structure, [(span.char_start, span.char_end) for span in spans])
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
            section=section,
            page_start=page_start,
            page_end=page_end,
        )
        for span, vector, (section, page_start, page_end) in zip(spans, vectors, locations, strict=True)
    ]


def embedded_rows(
    document: Document,
    spans: list[ChunkSpan],
    vectors,
    model: str,
    levels: tuple[list[LevelSpan], list[int | None]] | None = None,
) -> list[EmbeddedChunk]:
    """The chunks of a document (the first ``len(spans)`` vectors) and, given its ``levels`` (`level_spans`: the
    section and document spans, each chunk's section), its section and document rows (the vectors after them);
    the chunks then name their level and their section row.

    The section and document rows come first: the index writes them before the chunks, so an object whose chunks
    are complete (what marks it indexed, `latechunk.index.queries`) has had its other rows sent too, and a write cut
    short before its last chunk leaves it incomplete, to be read again."""
    n_chunks = len(spans)
    chunks = embedded_chunks(document, spans, vectors[:n_chunks], model)
    if levels is None:
        return chunks
    rows, parents = levels
    section_ids = [None if parent is None else level_row_id(document.doc_id, SECTION, parent) for parent in parents]
    chunks = [replace(chunk, level=CHUNK, section_id=section_id)
              for chunk, section_id in zip(chunks, section_ids, strict=True)]  # fmt: skip
    return [
        level_row(document, row, vector, model, n_chunks) for row, vector in zip(rows, vectors[n_chunks:], strict=True)
    ] + chunks


def level_row(document: Document, row: LevelSpan, vector, model: str, n_chunks: int) -> EmbeddedChunk:
    """The row of a section or of the whole document: its ordinal as ``chunk_id``, the document's chunk count as
    ``n_chunks`` (so that stale versions go with its chunks), the first `LEVEL_TEXT_CHARS` characters of its text."""
    structure = document.structure
    return EmbeddedChunk(
        doc_id=document.doc_id,
        bucket=document.bucket,
        key=document.key,
        part=document.part,
        etag=document.etag,
        chunk_id=row.ordinal,
        n_chunks=n_chunks,
        text=document.text[row.char_start : row.char_end][:LEVEL_TEXT_CHARS],
        char_start=row.char_start,
        char_end=row.char_end,
        token_start=row.token_start,
        token_end=row.token_end,
        vector=vector,
        model_id=model,
        metadata=document.metadata,
        section=list(row.section),
        page_start=structure.page_of(row.char_start),
        page_end=structure.page_of(max(row.char_start, row.char_end - 1)),
        level=row.level,
    )
