"""Text in encodings other than UTF-8, found by detection (charset-normalizer) instead of being quarantined.

`latechunk.sources.extractors.decode_text` tries UTF-8 (and UTF-16/32 announced by a byte order mark) first:
what decodes as UTF-8 is taken as UTF-8, since text in another encoding almost never does. Only bytes that are not
UTF-8 come here. charset-normalizer decodes them with each plausible encoding and keeps the one whose text looks
most like language (least "chaos", most coherent); it reads samples of the bytes, not all of them, so its cost is
bounded.
When no encoding fits, the object is quarantined as ``invalid_encoding``. Short Western European text often fits
several code pages equally well (Windows-1250 and Windows-1252 both decode French without "chaos", into different
letters): among the equally good, Windows-1252, the most common of them (and a superset of Latin-1's printable
characters), is taken.
"""

from __future__ import annotations

import re

from latechunk.sources.extractors import SkipDocument, SkipReason

_WESTERN = "cp1252"
# A well-formed UTF-8 sequence of two to four bytes (overlong forms and surrogates excluded).
_UTF8_MULTIBYTE = re.compile(
    rb"[\xc2-\xdf][\x80-\xbf]|\xe0[\xa0-\xbf][\x80-\xbf]|[\xe1-\xec\xee\xef][\x80-\xbf]{2}|\xed[\x80-\x9f][\x80-\xbf]"
    rb"|\xf0[\x90-\xbf][\x80-\xbf]{2}|[\xf1-\xf3][\x80-\xbf]{3}|\xf4[\x80-\x8f][\x80-\xbf]{2}"
)


def decode_detected(data: bytes, utf8_error: UnicodeDecodeError) -> tuple[str, str]:
    """(text, encoding name) of bytes that are not UTF-8; ``utf8_error`` is what UTF-8 decoding raised."""
    from charset_normalizer import from_bytes

    matches = from_bytes(data)
    best = matches.best()
    if best is None or best.encoding.replace("-", "_").lower() in ("utf_8", "utf8"):
        raise SkipDocument(
            SkipReason.INVALID_ENCODING,
            f"not UTF-8 (byte {utf8_error.start}: {utf8_error.reason}) and no other encoding fits",
        )
    tied = [match for match in matches if (match.chaos, match.coherence) == (best.chaos, best.coherence)]
    western = next((match for match in tied if _WESTERN in match.could_be_from_charset), None)
    if western is not None:
        return str(western), _WESTERN
    return str(best), best.encoding


def looks_like_utf8(data: bytes) -> bool:
    """Whether bytes that fail to decode as UTF-8 hold at least as many valid multi-byte UTF-8 sequences as
    invalid bytes: a UTF-8 file with a damaged or truncated character, rather than text in another encoding (where
    a byte pair that happens to be valid UTF-8 is rare)."""
    valid = sum(1 for _ in _UTF8_MULTIBYTE.finditer(data))
    return valid > 0 and valid >= data.decode("utf-8", "replace").count("\ufffd")
