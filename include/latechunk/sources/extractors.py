"""Text out of bytes, one format at a time, within limits that a hostile object cannot get round.

Every extractor of text, JSON and HTML is linear in the size of its input, whatever its nesting or its quotes: JSON
is checked for depth by a flat scan before the (recursive) parser sees it, and HTML goes through the streaming
tokenizer of `latechunk.sources.html_text`, which keeps no tree. On top of that each object has a time budget, checked
between steps (JSON records, HTML tags): a step is never interrupted, but no step is more than linear in the
object's size (one `json.loads`, one depth scan), which `max_object_bytes` bounds. PDFs are read by pypdf, whose
work can grow far beyond the file's size: `latechunk.sources.pdf_text` meters their content and
`latechunk.sources.pdf_process`
reads them in a child process that is killed at the deadline. HTML needs no depth limit: nothing in its extraction
depends on the nesting.

Lone surrogates (a JSON string may spell one, e.g. "\\ud800") cannot be written as UTF-8. `clean_part` replaces
each with U+FFFD in the text and the metadata: one code point for one, so every offset into the text stays valid,
and the stored text (of which chunks are exact slices) is the cleaned one. Bytes that are not valid in their
encoding (UTF-16/32 with a byte order mark, or UTF-8 with a damaged sequence) are not repaired: the object is
quarantined. Text that is not UTF-8 at all (Latin-1, Windows-1252, Shift JIS, ...) is decoded by detection and
its encoding recorded in the metadata (``encoding``).
"""

from __future__ import annotations

import codecs
import json
import re
import time
from collections.abc import Iterator
from enum import StrEnum
from typing import Any, NamedTuple

import numpy as np

from latechunk.sources.limits import Limits
from latechunk.sources.structure import DocumentStructure, Heading


class SkipReason(StrEnum):
    EMPTY = "empty"
    BINARY = "binary"
    INVALID_UTF8 = "invalid_utf8"
    INVALID_ENCODING = "invalid_encoding"
    INVALID_JSON = "invalid_json"
    MISSING_TEXT_FIELD = "missing_text_field"
    CORRUPT_PDF = "corrupt_pdf"
    CORRUPT_FILE = "corrupt_file"
    UNSUPPORTED_TYPE = "unsupported_type"
    TOO_LARGE = "too_large"
    TOO_DEEP = "too_deep"
    TOO_MANY_PARTS = "too_many_parts"
    TOO_SLOW = "too_slow"
    FOLDER_LIKE_KEY = "folder_like_key"
    EXTRACTION_ERROR = "extraction_error"


class SkipDocument(Exception):
    """An object (or one part of it) that cannot become a document; the run records it and goes on."""

    def __init__(self, reason: SkipReason, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else str(reason))
        self.reason = SkipReason(reason)
        self.detail = detail


class ExtractedText(NamedTuple):
    part: str
    text: str
    metadata: dict[str, Any]
    structure: DocumentStructure = DocumentStructure()


Part = ExtractedText | tuple[str, SkipDocument]


class Deadline:
    def __init__(self, seconds: float):
        self.seconds = seconds
        self.expires = time.monotonic() + seconds

    def check(self, step: str) -> None:
        if time.monotonic() > self.expires:
            raise SkipDocument(SkipReason.TOO_SLOW, f"extraction took more than {self.seconds:g} s ({step})")


# Share of control characters (other than tab, newline, carriage return, form feed) above which a file that
# decodes as text is still treated as binary.
_MAX_CONTROL_SHARE = 0.05
# The control characters that count, as UTF-8 bytes (each is one byte there, never part of a longer sequence).
_CONTROL_BYTES = bytes(byte for byte in range(32) if byte not in b"\t\n\r\f")
# UTF-32 first: its little-endian mark starts with UTF-16's.
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
_SURROGATES = re.compile("[\ud800-\udfff]")
# What the depth scan keeps of JSON text: brackets, the quotes that delimit strings, line ends.
_NOT_SYNTAX = bytes(byte for byte in range(256) if byte not in b'[]{}"\n')
_DEPTH_BLOCK = 1 << 20


def decode_text(data: bytes) -> tuple[str, str | None]:
    """(text, None) for UTF-8 (with or without a byte order mark) or UTF-16/UTF-32 announced by their byte order
    mark; (text, encoding) for other text, whose encoding is detected (`latechunk.sources.encoding`). Bytes that
    are mostly UTF-8 with a damaged sequence stay ``invalid_utf8``: decoding them as another encoding would garble
    every character that UTF-8 spelled right."""
    from latechunk.sources.encoding import decode_detected, looks_like_utf8

    encoding = next((name for bom, name in _BOMS if data.startswith(bom)), None)
    detected = None
    if encoding is None:
        if b"\x00" in data:
            raise SkipDocument(SkipReason.BINARY, "contains NUL bytes")
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as error:
            if looks_like_utf8(data):
                raise SkipDocument(SkipReason.INVALID_UTF8, f"byte {error.start}: {error.reason}") from None
            text, detected = decode_detected(data, error)
    else:
        try:
            text = data.decode(encoding)
        except UnicodeDecodeError as error:
            detail = f"{encoding.upper()} byte {error.start}: {error.reason}"
            raise SkipDocument(SkipReason.INVALID_ENCODING, detail) from None
        if "\x00" in text:
            raise SkipDocument(SkipReason.BINARY, "contains NUL characters")
    if not text.strip():
        raise SkipDocument(SkipReason.EMPTY, "empty or whitespace-only object")
    encoded = text.encode("utf-8", "surrogatepass")
    controls = len(encoded) - len(encoded.translate(None, _CONTROL_BYTES))
    if controls > _MAX_CONTROL_SHARE * len(text):
        raise SkipDocument(SkipReason.BINARY, f"{controls} control characters in {len(text)}")
    return text, detected


def require_text(text: str) -> str:
    if not text.strip():
        raise SkipDocument(SkipReason.EMPTY, "no text after extraction")
    return text


def clean_part(part: ExtractedText) -> ExtractedText:
    """The part with every lone surrogate, in its text, its metadata (keys included) and its heading titles,
    replaced by U+FFFD."""
    metadata = part.metadata
    dumped = json.dumps(metadata, ensure_ascii=False)
    if _SURROGATES.search(dumped):
        metadata = json.loads(_SURROGATES.sub("\ufffd", dumped))
    structure = part.structure
    if any(_SURROGATES.search(heading.title) for heading in structure.headings):
        headings = [Heading(h.level, h.start, h.end, _SURROGATES.sub("\ufffd", h.title)) for h in structure.headings]
        structure = DocumentStructure(headings, structure.blocks, structure.page_starts)
    return ExtractedText(part.part, _SURROGATES.sub("\ufffd", part.text), metadata, structure)


def without_surrogates(text: str) -> str:
    return _SURROGATES.sub("\ufffd", text)


def json_depth(text: str, *, per_line: bool = False) -> int:
    """Deepest nesting of arrays and objects in JSON text, found by a flat scan that never recurses (a recursive
    parser is exactly what a hostile file would exhaust). Brackets inside strings do not count; with ``per_line``,
    the deepest of the lines' own depths (JSON Lines: each line parsed alone).

    Linear whatever the quotes: escaped backslashes, then escaped quotes, are removed (left to right, as a parser
    reads them), so that every quote left delimits a string; then only brackets, quotes and line ends are kept, and
    a bracket counts when an even number of quotes precede it on its line (a JSON string holds no raw line end). A
    string that never ends hides the brackets after it on its line, which a parser never reaches either. (A regular
    expression for strings was quadratic on an unterminated string of escaped quotes: 32 KB took 3 s.)"""
    unescaped = text.replace("\\\\", "").replace('\\"', "")
    syntax = np.frombuffer(unescaped.encode("utf-8", "replace").translate(None, _NOT_SYNTAX), np.uint8)
    # Carried from block to block: quotes and level so far, and both at the start of the current line.
    quotes_seen = level = line_quotes = line_level = deepest = 0
    for start in range(0, len(syntax), _DEPTH_BLOCK):
        block = syntax[start : start + _DEPTH_BLOCK]
        line_end = block == ord("\n")
        quotes = quotes_seen + np.cumsum(block == ord('"'), dtype=np.int64)
        quotes_at_line = np.maximum.accumulate(np.where(line_end, quotes, line_quotes))
        outside = (quotes - quotes_at_line) % 2 == 0
        opening = ((block == ord("[")) | (block == ord("{"))) & outside
        closing = ((block == ord("]")) | (block == ord("}"))) & outside
        levels = level + np.cumsum(opening.astype(np.int64) - closing, dtype=np.int64)
        if per_line:
            last_end = np.maximum.accumulate(np.where(line_end, np.arange(len(block)), -1))
            levels_at_line = np.where(last_end >= 0, levels[last_end], line_level)
            deepest = max(deepest, int((levels - levels_at_line).max()))
            line_level = int(levels_at_line[-1])
        else:
            deepest = max(deepest, int(levels.max()))
        quotes_seen, level, line_quotes = int(quotes[-1]), int(levels[-1]), int(quotes_at_line[-1])
    return deepest


def json_parts(text: str, text_field: str, limits: Limits, deadline: Deadline) -> Iterator[Part]:
    """One part per item of a JSON list (named by its 0-based index), or the one part "" of a JSON object."""
    _check_depth(text, limits.max_depth)
    payload = _parse_json(text)
    if isinstance(payload, list):
        if not payload:
            raise SkipDocument(SkipReason.EMPTY, "empty JSON list")
        _check_parts(len(payload), "items in the JSON list", limits.max_parts)
        for index, record in enumerate(payload):
            deadline.check(f"JSON item {index}")
            yield _record_part(str(index), record, text_field)
        return
    part = _record_part("", payload, text_field)
    if not isinstance(part, ExtractedText):
        raise part[1]
    yield part


def jsonl_parts(text: str, text_field: str, limits: Limits, deadline: Deadline) -> Iterator[Part]:
    """One part per non-blank line, named by its 1-based line number; a bad line is skipped on its own."""
    # Records end at "\n" only: U+2028, U+2029 and U+0085 (which str.splitlines() also breaks on) are legal inside
    # JSON strings, and splitting there would lose the record and renumber every later one. A "\r" before the
    # "\n" is JSON whitespace.
    lines = [(number, line) for number, line in enumerate(text.split("\n"), start=1) if line.strip()]
    _check_parts(len(lines), "records in the file", limits.max_parts)
    check_lines = json_depth(text, per_line=True) > limits.max_depth  # usually one scan will do
    for number, line in lines:
        deadline.check(f"line {number}")
        try:
            if check_lines:
                _check_depth(line, limits.max_depth)
            record = _parse_json(line)
        except SkipDocument as skip:
            yield str(number), skip
            continue
        yield _record_part(str(number), record, text_field)


def _check_depth(text: str, max_depth: int) -> None:
    depth = json_depth(text)
    if depth > max_depth:
        raise SkipDocument(SkipReason.TOO_DEEP, f"JSON nested {depth} levels deep > max_nesting_depth={max_depth}")


def _check_parts(count: int, what: str, max_parts: int) -> None:
    if count > max_parts:
        raise SkipDocument(SkipReason.TOO_MANY_PARTS, f"{count} {what} > max_parts_per_object={max_parts}")


def _parse_json(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as error:  # JSONDecodeError, or an integer of more digits than Python converts
        raise SkipDocument(SkipReason.INVALID_JSON, str(error)) from None


def _record_part(part: str, record: Any, text_field: str) -> Part:
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
