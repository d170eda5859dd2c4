"""Source objects, documents and chunks, and text extraction from the supported file types.

Identity: a document is identified by its bucket and object key (plus a part number for objects that hold several
documents, such as `.jsonl`); its version is the object's ETag. A chunk is identified by its document and chunk id.

Extraction never crashes a run on bad input: anything that cannot become text raises `SkipDocument` with a reason
code, and `load_documents` turns those into quarantine records for the run report.
"""

from __future__ import annotations

import bisect
import hashlib
import io
import json
import logging
import re
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, NamedTuple

import numpy as np

DEFAULT_MAX_BYTES = 50 * 1024 * 1024

CONTENT_TYPES = {
    ".txt": "text/plain",
    ".md": "text/markdown",
    ".html": "text/html",
    ".htm": "text/html",
    ".json": "application/json",
    ".jsonl": "application/x-ndjson",
    ".ndjson": "application/x-ndjson",
    ".pdf": "application/pdf",
}

# Share of control characters (other than tab, newline, carriage return, form feed) above which a file that
# decodes as UTF-8 is still treated as binary.
_MAX_CONTROL_SHARE = 0.05
_TEXT_CONTROLS = frozenset("\t\n\r\f")
_BLOCK_BREAK = "\u2029"
_OUTSIDE_BMP = re.compile("[\U00010000-\U0010ffff]")
_HTML_BLOCK_TAGS = (
    "address article aside blockquote dd div dl dt figcaption footer h1 h2 h3 h4 h5 h6 header hr li main nav ol p"
    " pre section table td th tr ul"
).split()


class SkipReason(StrEnum):
    EMPTY = "empty"
    BINARY = "binary"
    INVALID_UTF8 = "invalid_utf8"
    INVALID_JSON = "invalid_json"
    MISSING_TEXT_FIELD = "missing_text_field"
    CORRUPT_PDF = "corrupt_pdf"
    UNSUPPORTED_TYPE = "unsupported_type"
    TOO_LARGE = "too_large"


class SkipDocument(Exception):
    """An object (or one part of it) that cannot become a document; the run records it and goes on."""

    def __init__(self, reason: SkipReason, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else str(reason))
        self.reason = SkipReason(reason)
        self.detail = detail


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

    @property
    def es_id(self) -> str:
        return f"{self.doc_id}:{self.chunk_id}"


@dataclass(frozen=True)
class QuarantineEntry:
    key: str
    etag: str
    reason: str
    detail: str = ""

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


class ExtractedText(NamedTuple):
    part: str
    text: str
    metadata: dict[str, Any]


def content_type_for(key: str) -> str | None:
    dot = key.rfind(".")
    return CONTENT_TYPES.get(key[dot:].lower()) if dot >= 0 else None


def check_size(size: int, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
    """Refuse an object by its listed size, before downloading it."""
    if size > max_bytes:
        raise SkipDocument(SkipReason.TOO_LARGE, f"{size} bytes > limit of {max_bytes}")


def extract_text(
    key: str, data: bytes, *, json_text_field: str = "text", max_bytes: int = DEFAULT_MAX_BYTES
) -> tuple[list[ExtractedText], list[tuple[str, SkipDocument]]]:
    """Text of an object, as (usable parts, skipped parts).

    Single-document types give one part named "". `.jsonl` gives one part per non-blank line, named by its
    1-based line number; a `.json` list gives one part per item, named by its 0-based index. A bad line or item
    is returned among the skipped parts and does not sink the rest of the file. Raises `SkipDocument` when the
    object as a whole is unusable.
    """
    content_type = content_type_for(key)
    if content_type is None:
        raise SkipDocument(SkipReason.UNSUPPORTED_TYPE, f"no extractor for {key.rsplit('/', 1)[-1]!r}")
    check_size(len(data), max_bytes)
    if content_type == "application/pdf":
        return [ExtractedText("", *_pdf_text(data))], []
    text = _decode_text(data)
    if content_type == "application/json":
        return _split_parts(_json_parts(text, json_text_field))
    if content_type == "application/x-ndjson":
        return _split_parts(_jsonl_parts(text, json_text_field))
    if content_type == "text/html":
        text, metadata = _html_text(text)
    else:
        metadata = {}
    return [ExtractedText("", _require_text(text), metadata)], []


def load_documents(
    source: SourceObject, data: bytes, *, json_text_field: str = "text", max_bytes: int = DEFAULT_MAX_BYTES
) -> tuple[list[Document], list[QuarantineEntry]]:
    """Documents of one object, and quarantine records for whatever of it had to be skipped."""
    try:
        parts, skipped = extract_text(source.key, data, json_text_field=json_text_field, max_bytes=max_bytes)
    except SkipDocument as skip:
        return [], [QuarantineEntry(source.key, source.etag, skip.reason.value, skip.detail)]
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
        )
        for part, text, metadata in parts
    ]
    quarantine = [
        QuarantineEntry(f"{source.key}#{part}", source.etag, skip.reason.value, skip.detail) for part, skip in skipped
    ]
    return documents, quarantine


def utf16_offsets(text: str, offsets: Sequence[int]) -> list[int]:
    """Code-point offsets into ``text`` converted to UTF-16 code units: every character outside the Basic
    Multilingual Plane before an offset (an emoji, say) takes two units instead of one."""
    astral = [match.start() for match in _OUTSIDE_BMP.finditer(text)]
    return [offset + bisect.bisect_left(astral, offset) for offset in offsets]


def _require_text(text: str) -> str:
    if not text.strip():
        raise SkipDocument(SkipReason.EMPTY, "no text after extraction")
    return text


def _decode_text(data: bytes) -> str:
    if not data.strip():
        raise SkipDocument(SkipReason.EMPTY, "empty or whitespace-only object")
    if b"\x00" in data:
        raise SkipDocument(SkipReason.BINARY, "contains NUL bytes")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise SkipDocument(SkipReason.INVALID_UTF8, f"byte {error.start}: {error.reason}") from None
    controls = sum(1 for char in text if char < " " and char not in _TEXT_CONTROLS)
    if controls > _MAX_CONTROL_SHARE * len(text):
        raise SkipDocument(SkipReason.BINARY, f"{controls} control characters in {len(text)}")
    return text


def _split_parts(
    parts: Iterator[ExtractedText | tuple[str, SkipDocument]],
) -> tuple[list[ExtractedText], list[tuple[str, SkipDocument]]]:
    usable: list[ExtractedText] = []
    skipped: list[tuple[str, SkipDocument]] = []
    for part in parts:
        (usable if isinstance(part, ExtractedText) else skipped).append(part)
    return usable, skipped


def _record_part(part: str, record: Any, text_field: str) -> ExtractedText | tuple[str, SkipDocument]:
    if not isinstance(record, dict):
        skip = SkipDocument(SkipReason.MISSING_TEXT_FIELD, f"expected an object, got {type(record).__name__}")
        return part, skip
    value: Any = record
    for name in text_field.split("."):
        value = value.get(name) if isinstance(value, dict) else None
    if not isinstance(value, str):
        return part, SkipDocument(SkipReason.MISSING_TEXT_FIELD, f"no string field {text_field!r}")
    if not value.strip():
        return part, SkipDocument(SkipReason.EMPTY, f"field {text_field!r} is blank")
    top_field = text_field.split(".", 1)[0]
    metadata = {name: item for name, item in record.items() if name != top_field}
    return ExtractedText(part, value, metadata)


def _json_parts(text: str, text_field: str) -> Iterator[ExtractedText | tuple[str, SkipDocument]]:
    try:
        payload = json.loads(text)
    except json.JSONDecodeError as error:
        raise SkipDocument(SkipReason.INVALID_JSON, str(error)) from None
    if isinstance(payload, list):
        if not payload:
            raise SkipDocument(SkipReason.EMPTY, "empty JSON list")
        for index, record in enumerate(payload):
            yield _record_part(str(index), record, text_field)
        return
    part = _record_part("", payload, text_field)
    if not isinstance(part, ExtractedText):
        raise part[1]
    yield part


def _jsonl_parts(text: str, text_field: str) -> Iterator[ExtractedText | tuple[str, SkipDocument]]:
    # Records end at "\n" only: U+2028, U+2029 and U+0085 (which str.splitlines() also breaks on) are legal inside
    # JSON strings, and splitting there would lose the record and renumber every later one. A "\r" before the
    # "\n" is JSON whitespace.
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            yield str(number), SkipDocument(SkipReason.INVALID_JSON, str(error))
            continue
        yield _record_part(str(number), record, text_field)


def _html_text(markup: str) -> tuple[str, dict[str, Any]]:
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(markup, "html.parser")
    for element in soup(["script", "style", "noscript", "template"]):
        element.decompose()
    title = soup.title.get_text(strip=True) if soup.title else ""
    # HTML whitespace (source newlines included) collapses to one space; only block elements and <br> end a line.
    for element in soup(_HTML_BLOCK_TAGS):
        element.insert_before(_BLOCK_BREAK)
        element.insert_after(_BLOCK_BREAK)
    for element in soup("br"):
        element.replace_with(_BLOCK_BREAK)
    blocks = (" ".join(block.split()) for block in (soup.body or soup).get_text().split(_BLOCK_BREAK))
    text = "\n".join(block for block in blocks if block)
    return text, ({"title": title} if title else {})


def _pdf_text(data: bytes) -> tuple[str, dict[str, Any]]:
    from pypdf import PdfReader

    if not data.lstrip()[:5] == b"%PDF-":
        raise SkipDocument(SkipReason.CORRUPT_PDF, "no %PDF- header")
    # pypdf signals a damaged file with many exception types (and logs warnings for recoverable damage).
    pdf_logger = logging.getLogger("pypdf")
    previous_level = pdf_logger.level
    pdf_logger.setLevel(logging.ERROR)
    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            raise SkipDocument(SkipReason.CORRUPT_PDF, "encrypted with a password")
        pages = [page.extract_text() or "" for page in reader.pages]
        title = (reader.metadata or {}).get("/Title")
    except SkipDocument:
        raise
    except Exception as error:
        raise SkipDocument(SkipReason.CORRUPT_PDF, f"{type(error).__name__}: {error}") from None
    finally:
        pdf_logger.setLevel(previous_level)
    text = "\n\n".join(page.strip() for page in pages if page.strip())
    metadata: dict[str, Any] = {"pages": len(pages)}
    if isinstance(title, str) and title.strip():
        metadata["title"] = title.strip()
    return _require_text(text), metadata
