"""Source objects, documents and chunks, and text extraction from the supported file types.

Identity: a document is identified by its bucket and object key (plus a part number for objects that hold several
documents, such as `.jsonl`); its version is the object's ETag. A chunk is identified by its document and chunk id.

Extraction never crashes a run on bad input: anything that cannot become text raises `SkipDocument` with a reason
code, any other failure of a parser on one object is caught for that object alone, and `load_documents` turns both
into quarantine records for the run report. The formats themselves are read in `latechunk.sources.extractors`,
`latechunk.sources.html_text`, `latechunk.sources.markdown`, `latechunk.sources.office` and (in a child process
killed at the object's deadline) `latechunk.sources.pdf_text`; all but plain text and JSON also give the document's
structure (headings, blocks, pages: `latechunk.sources.structure`).
"""

from __future__ import annotations

import bisect
import hashlib
import logging
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

import numpy as np

from latechunk.sources.extractors import (
    Deadline,
    ExtractedText,
    Limits,
    SkipDocument,
    SkipReason,
    clean_part,
    decode_text,
    json_parts,
    jsonl_parts,
    require_text,
    without_surrogates,
)
from latechunk.sources.html_text import html_document
from latechunk.sources.markdown import markdown_text
from latechunk.sources.office import docx_text, pptx_text
from latechunk.sources.pdf_process import PDF_PROCESS
from latechunk.sources.settings import SourceSettings
from latechunk.sources.structure import DocumentStructure

log = logging.getLogger(__name__)

DEFAULT_MAX_BYTES = SourceSettings.max_object_bytes
DEFAULT_LIMITS = Limits()

DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
PPTX = "application/vnd.openxmlformats-officedocument.presentationml.presentation"
CONTENT_TYPES = {
    ".txt": "text/plain",
    ".md": "text/markdown",
    ".html": "text/html",
    ".htm": "text/html",
    ".json": "application/json",
    ".jsonl": "application/x-ndjson",
    ".ndjson": "application/x-ndjson",
    ".pdf": "application/pdf",
    ".docx": DOCX,
    ".pptx": PPTX,
}

# Formats read from their bytes (in a child process for PDFs), and text formats with markup, by content type.
_BINARY_FORMATS = {
    "application/pdf": lambda data, limits, deadline: PDF_PROCESS.text(data, limits),
    DOCX: docx_text,
    PPTX: pptx_text,
}
_MARKUP_FORMATS = {"text/html": html_document, "text/markdown": markdown_text}
_OUTSIDE_BMP = re.compile("[\U00010000-\U0010ffff]")
_MAX_ERROR_DETAIL = 300


@dataclass(frozen=True)
class SourceObject:
    bucket: str
    key: str
    etag: str
    size: int
    last_modified: datetime | None = None


def document_id(bucket: str, key: str, part: str = "") -> str:
    """Stable id of a document: sha1 of `bucket/key`, or of `bucket/key#part` for one part of an object."""
    ref = f"{bucket}/{key}#{part}" if part else f"{bucket}/{key}"
    return hashlib.sha1(ref.encode("utf-8")).hexdigest()


@dataclass
class Document:
    doc_id: str
    bucket: str
    key: str
    etag: str
    text: str
    content_type: str
    part: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)
    # Headings, blocks and pages of the text (`latechunk.sources.structure`); empty for plain text and JSON.
    structure: DocumentStructure = field(default_factory=DocumentStructure)

    @property
    def ref(self) -> str:
        """Human-readable reference: the key, with `#part` for one document out of a multi-document object."""
        return f"{self.key}#{self.part}" if self.part else self.key


@dataclass
class EmbeddedChunk:
    """One chunk with its vector: the unit the embed stage stages and the index stage writes."""

    doc_id: str
    bucket: str
    key: str
    part: str
    etag: str
    chunk_id: int
    n_chunks: int
    text: str
    char_start: int
    char_end: int
    token_start: int
    token_end: int
    vector: np.ndarray
    model_id: str
    metadata: dict[str, Any] = field(default_factory=dict)
    # The character span in UTF-16 code units (JavaScript/Java string indices); set by the index stage.
    char_start_utf16: int | None = None
    char_end_utf16: int | None = None
    # Titles of the headings above the chunk's first character, outermost first; empty without headings.
    section: list[str] = field(default_factory=list)
    # Pages (PDF) or slides (PPTX) of the chunk's first and last characters; None for documents without pages.
    page_start: int | None = None
    page_end: int | None = None
    # Multi-granularity indices (`latechunk.chunking.levels`): "chunk", "section" or "document" (a section's or
    # document's row holds its ordinal in ``chunk_id``); None for a chunk of an index of chunks only, whose rows
    # carry no level. ``section_id``: the `_id` of a chunk's section row, for parent retrieval.
    level: str | None = None
    section_id: str | None = None

    @property
    def es_id(self) -> str:
        if self.is_chunk:
            return f"{self.doc_id}:{self.chunk_id}"
        return level_row_id(self.doc_id, self.level, self.chunk_id)

    @property
    def is_chunk(self) -> bool:
        return self.level in (None, "chunk")


def level_row_id(doc_id: str, level: str, ordinal: int) -> str:
    """The `_id` of a document's section or document row: deterministic, so re-runs overwrite it, and split at its
    last ':' it gives the document id, as a chunk's id does."""
    return f"{doc_id}:{level}-{ordinal}"


@dataclass(frozen=True)
class QuarantineEntry:
    key: str
    etag: str
    reason: str
    detail: str = ""

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


def content_type_for(key: str) -> str | None:
    dot = key.rfind(".")
    return CONTENT_TYPES.get(key[dot:].lower()) if dot >= 0 else None


def check_key(key: str) -> None:
    """Refuse a key ending in "/": a folder marker, or an object that a listing by folders would hide."""
    if key.endswith("/"):
        raise SkipDocument(
            SkipReason.FOLDER_LIKE_KEY,
            "the key ends in '/' (a folder marker, or content under a folder-like name): not read",
        )


def check_size(size: int, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
    """Refuse an object by its listed size, before downloading it."""
    if size > max_bytes:
        raise SkipDocument(SkipReason.TOO_LARGE, f"{size} bytes > limit of {max_bytes}")


def extract_text(
    key: str,
    data: bytes,
    *,
    json_text_field: str = "text",
    max_bytes: int = DEFAULT_MAX_BYTES,
    limits: Limits = DEFAULT_LIMITS,
) -> tuple[list[ExtractedText], list[tuple[str, SkipDocument]]]:
    """Text of an object, as (usable parts, skipped parts).

    Single-document types give one part named "". `.jsonl` gives one part per non-blank line, named by its
    1-based line number; a `.json` list gives one part per item, named by its 0-based index. A bad line or item
    is returned among the skipped parts and does not sink the rest of the file. Raises `SkipDocument` when the
    object as a whole is unusable. Lone surrogates in the text and the metadata come back as U+FFFD.
    """
    check_key(key)
    content_type = content_type_for(key)
    if content_type is None:
        raise SkipDocument(SkipReason.UNSUPPORTED_TYPE, f"no extractor for {key.rsplit('/', 1)[-1]!r}")
    check_size(len(data), max_bytes)
    deadline = Deadline(limits.time_budget_s)
    if content_type in _BINARY_FORMATS:
        parts, skipped = [ExtractedText("", *_BINARY_FORMATS[content_type](data, limits, deadline))], []
    else:
        text, encoding = decode_text(data)
        if content_type in ("application/json", "application/x-ndjson"):
            split = json_parts if content_type == "application/json" else jsonl_parts
            parts, skipped = [], []
            for part in split(text, json_text_field, limits, deadline):
                (parts if isinstance(part, ExtractedText) else skipped).append(part)
        else:
            metadata, structure = {}, DocumentStructure()
            if content_type in _MARKUP_FORMATS:
                text, metadata, structure = _MARKUP_FORMATS[content_type](text, deadline)
            parts, skipped = [ExtractedText("", require_text(text), metadata, structure)], []
        if encoding is not None:
            parts = [part._replace(metadata={**part.metadata, "encoding": encoding}) for part in parts]
    return [clean_part(part) for part in parts], skipped


def load_documents(
    source: SourceObject,
    data: bytes,
    *,
    json_text_field: str = "text",
    max_bytes: int = DEFAULT_MAX_BYTES,
    limits: Limits = DEFAULT_LIMITS,
) -> tuple[list[Document], list[QuarantineEntry]]:
    """Documents of one object, and quarantine records for whatever of it had to be skipped.

    Any exception while extracting quarantines the object (reason `extraction_error`, with the exception's class
    and message): a parser that fails on one hostile object must not fail the run, and a retry would only fail
    the same way."""
    try:
        parts, skipped = extract_text(
            source.key, data, json_text_field=json_text_field, max_bytes=max_bytes, limits=limits
        )
    except SkipDocument as skip:
        return [], [QuarantineEntry(source.key, source.etag, skip.reason.value, without_surrogates(skip.detail))]
    except Exception as error:
        log.warning("extracting %s failed", source.key, exc_info=True)
        detail = without_surrogates(f"{type(error).__name__}: {error}")[:_MAX_ERROR_DETAIL]
        return [], [QuarantineEntry(source.key, source.etag, SkipReason.EXTRACTION_ERROR.value, detail)]
    content_type = content_type_for(source.key) or ""
    documents = [
        Document(
            doc_id=document_id(source.bucket, source.key, part),
            bucket=source.bucket,
            key=source.key,
            etag=source.etag,
            text=text,
            content_type=content_type,
            part=part,
            metadata=metadata,
            structure=structure,
        )
        for part, text, metadata, structure in parts
    ]
    quarantine = [
        QuarantineEntry(f"{source.key}#{part}", source.etag, skip.reason.value, without_surrogates(skip.detail))
        for part, skip in skipped
    ]
    return documents, quarantine


def utf16_offsets(text: str, offsets: Sequence[int]) -> list[int]:
    """Code-point offsets into ``text`` converted to UTF-16 code units: every character outside the Basic
    Multilingual Plane before an offset (an emoji, say) takes two units instead of one."""
    astral = [match.start() for match in _OUTSIDE_BMP.finditer(text)]
    return [offset + bisect.bisect_left(astral, offset) for offset in offsets]
