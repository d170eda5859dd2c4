"""Text in encodings other than UTF-8, found by detection (charset-normalizer) instead of being quarantined.

`latechunk.extractors.decode_text` tries UTF-8 (and UTF-16/32 announced by a byte order mark) first: what decodes
as UTF-8 is taken as UTF-8, since text in another encoding almost never does. Only bytes that are not UTF-8 come
here. charset-normalizer decodes them with each plausible encoding and keeps the one whose text looks most like
language (least "chaos", most coherent); it reads samples of the bytes, not all of them, so its cost is bounded.
When no encoding fits, the object is quarantined as ``invalid_encoding``.
"""

from __future__ import annotations

from latechunk.extractors import SkipDocument, SkipReason


def decode_detected(data: bytes, utf8_error: UnicodeDecodeError) -> tuple[str, str]:
    """(text, encoding name) of bytes that are not UTF-8; ``utf8_error`` is what UTF-8 decoding raised."""
    from charset_normalizer import from_bytes

    best = from_bytes(data).best()
    if best is None or best.encoding.replace("-", "_").lower() in ("utf_8", "utf8"):
        raise SkipDocument(
            SkipReason.INVALID_ENCODING,
            f"not UTF-8 (byte {utf8_error.start}: {utf8_error.reason}) and no other encoding fits",
        )
    return str(best), best.encoding
