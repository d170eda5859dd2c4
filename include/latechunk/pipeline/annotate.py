"""Annotate stage: each staged document tokenized whole and cut into chunk spans, staged for the embed stage."""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from typing import Any

from latechunk.chunking.config import DEFAULT_MAX_DOCUMENT_TOKENS, ChunkingConfig
from latechunk.chunking.spans import AnnotatedDocument, annotate_documents
from latechunk.pipeline.models import describe_model, load_tokenizer
from latechunk.pipeline.progress import Progress
from latechunk.pipeline.shared import batch_index, tokenizer_identity
from latechunk.sources.documents import Document, QuarantineEntry
from latechunk.staging import tables as staging
from latechunk.staging.stream import TOKENIZER_KEY, TOKENS_KEY, StagedReader, StagedWriter

log = logging.getLogger(__name__)

# Documents per Parquet read and row group when annotating.
ANNOTATE_ROWS = 512
TOO_MANY_TOKENS = "too_many_tokens"
ANNOTATE_FAILED = "annotate_failed"  # the tokenizer or the chunker raised on the document


def annotate(
    *,
    s3,
    area: staging.StagingArea,
    batch_path: str,
    model: str,
    chunking: dict[str, Any],
    max_document_tokens: int = DEFAULT_MAX_DOCUMENT_TOKENS,
    revision: str | None = None,
) -> dict[str, Any]:
    """Tokenize each staged document whole and stage its chunk spans; documents with no chunk are quarantined, and
    so are documents of more than ``max_document_tokens`` tokens (reason ``too_many_tokens``) and documents the
    tokenizer or the chunker fails on (``annotate_failed``, see `annotate_each`). Both are recorded in the spans
    batch's footer for the index task, which quarantines their whole object.

    Sentence chunks are capped at ``max_chunk_tokens`` and never at more tokens than the model's window. The batch
    is read and written ``ANNOTATE_ROWS`` documents at a time. With ``revision``, the tokenizer of exactly that
    revision of the model (`latechunk.embedding.checkpoints.resolve_checkpoint`).
    """
    info = describe_model(model, revision)
    config = ChunkingConfig(**chunking)
    config = replace(config, max_chunk_tokens=min(config.max_chunk_tokens, info.window))
    tokenizer = load_tokenizer(model, revision)
    quarantine: list[QuarantineEntry] = []
    failures: dict[str, dict[str, str]] = {}  # doc_id -> reason and detail, in the spans footer for index
    tokens = 0
    with (
        StagedReader(s3, batch_path, staging.STAGE_DOCUMENTS) as staged,
        StagedWriter(s3, area, staging.STAGE_SPANS, batch_index(batch_path), staging.ANNOTATED_SCHEMA) as writer,
    ):
        with Progress("annotate", total_docs=staged.rows) as progress:
            for rows in staged.iter_batches(ANNOTATE_ROWS):
                documents = [staging.document_from_row(row) for row in rows]
                annotated: list[tuple[Document, AnnotatedDocument]] = []
                for document, doc in zip(documents, annotate_each(documents, tokenizer, config), strict=True):
                    if isinstance(doc, str):
                        entry = QuarantineEntry(document.ref, document.etag, ANNOTATE_FAILED, doc)
                        failures[document.doc_id] = {"reason": entry.reason, "detail": entry.detail}
                        quarantine.append(entry)
                        progress.advance(docs=1)
                        continue
                    if len(doc.input_ids) > max_document_tokens:
                        entry = QuarantineEntry(
                            document.ref, document.etag, TOO_MANY_TOKENS,
                            f"{len(doc.input_ids):,} tokens, more than max_document_tokens={max_document_tokens:,}: "
                            "split the object or raise the limit",
                        )  # fmt: skip
                        failures[document.doc_id] = {"reason": entry.reason, "detail": entry.detail}
                        quarantine.append(entry)
                        doc = replace(doc, spans=[])
                    elif doc.spans:
                        annotated.append((document, doc))
                        tokens += len(doc.input_ids)
                    else:
                        entry = QuarantineEntry(document.ref, document.etag, "no_chunks", "no token to chunk")
                        quarantine.append(entry)
                    progress.advance(docs=1, tokens=len(doc.input_ids) if doc.spans else 0, chunks=len(doc.spans))
                writer.write(staging.annotated_table(annotated))
        identity = tokenizer_identity(model, info.revision)
        writer.add_metadata({TOKENS_KEY: str(tokens).encode(), TOKENIZER_KEY: identity.encode(),
                             staging.ANNOTATE_FAILURES_KEY: json.dumps(failures).encode()})  # fmt: skip
    return {"spans_path": writer.uri, "quarantine": [entry.to_dict() for entry in quarantine], **progress.summary()}


def annotate_each(documents: list[Document], tokenizer, config: ChunkingConfig) -> list[AnnotatedDocument | str]:
    """The documents annotated; when that fails, each is annotated alone, and one that still fails gets its error
    in its place: one document the tokenizer or the chunker cannot take must not fail its whole batch."""
    try:
        texts = [document.text for document in documents]
        return annotate_documents(texts, tokenizer, config, [document.structure for document in documents])
    except Exception:
        log.exception("annotating %d documents failed: annotating them one by one", len(documents))
    results: list[AnnotatedDocument | str] = []
    for document in documents:
        try:
            results.extend(annotate_documents([document.text], tokenizer, config, [document.structure]))
        except Exception as error:
            results.append(f"{type(error).__name__}: {error}"[:2000])
    return results
