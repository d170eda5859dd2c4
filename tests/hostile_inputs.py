"""Hostile inputs that once stalled extraction, shared by the tests and `bench/hostile_documents.py`.

Each builder takes a size and returns bytes whose naive parsing grows faster than their size: quotes that pair up
across HTML tags, a JSON string of escaped quotes that never ends, a small PDF whose page draws one big Flate
stream many times (directly in its contents, or through a form XObject), Markdown whose inline pass crawls (unmatched
brackets), a small zip that declares a huge document (DOCX, PPTX).
"""

from __future__ import annotations

import io
import zipfile
import zlib


def html_quotes_across_tags(tags: int, tag: str = "<a '>'") -> bytes:
    """``<a '>'`` over and over: every tag's quote closes in the next tag, so a scan that pairs quotes reaches the
    end of the markup from every tag."""
    return (tag * tags).encode()


# Other tag shapes a quote-pairing scan could rescan from: quotes after "=", both quote kinds interleaved, quotes
# whose pair ends where no ">" follows, and quoted values that hide each tag's first ">".
HTML_QUOTE_TAGS = {
    "unquoted-attribute-quote": "<a '>'",
    "double-quotes": '<a ">"',
    "quoted-value": "<a x='>'",
    "mixed-quotes": "<a x='\">' y=\"'>\"",
    "quote-then-no-gt": "<a x='b' '",
    "value-then-stray": "<p title=\"a>b\" ' >t",
}


def json_escaped_quotes(size: int) -> bytes:
    """A JSON string that never ends and holds only escaped quotes: ``["\\"\\"\\"...``."""
    return b'["' + b'\\"' * (size // 2)


def json_escaped_quotes_then_backslash(size: int) -> bytes:
    """The same ending in a lone backslash, which a string pattern must not fail on either."""
    return json_escaped_quotes(size) + b"\\"


def json_nested(depth: int) -> bytes:
    return b'{"text": "deep", "m": ' + b"[" * depth + b"]" * depth + b"}"


HOSTILE_TEXT = "Hostile text repeated on and on."


def content_stream(size: int, text: str = HOSTILE_TEXT) -> bytes:
    """PDF page operators of about ``size`` bytes (at least one line) that show ``text`` in Helvetica (/F1)."""
    line = b"BT /F1 12 Tf 72 720 Td (%s) Tj ET\n" % text.encode()
    return line * max(1, size // len(line))


def pdf(objects: list[bytes]) -> bytes:
    """A PDF file of the given objects (numbered from 1; object 1 the catalog), with a correct xref table."""
    out = bytearray(b"%PDF-1.7\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def _stream(data: bytes, extra: bytes = b"") -> bytes:
    packed = zlib.compress(data, 9)
    return b"<< /Length %d /Filter /FlateDecode %s>>\nstream\n" % (len(packed), extra) + packed + b"\nendstream"


_FONT = b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"


def pdf_repeated_stream(stream_bytes: int, repeats: int, pages: int = 1, text: str = HOSTILE_TEXT) -> bytes:
    """Pages whose /Contents array names one Flate stream of ``stream_bytes`` decoded bytes ``repeats`` times: a
    few KB of file, ``pages * repeats * stream_bytes`` bytes of page content to parse."""
    kids = b" ".join(b"%d 0 R" % (5 + page) for page in range(pages))
    contents = b" ".join([b"4 0 R"] * repeats)
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [%s] /Count %d >>" % (kids, pages),
        _FONT,
        _stream(content_stream(stream_bytes, text)),
    ]
    objects += [
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 3 0 R >> >> "
        b"/Contents [%s] >>" % contents
    ] * pages
    return pdf(objects)


def pdf_repeated_form(form_bytes: int, calls: int) -> bytes:
    """One page that draws one form XObject of ``form_bytes`` decoded bytes ``calls`` times (``/Fm1 Do``)."""
    resources = b"<< /Font << /F1 3 0 R >> >>"
    return pdf([
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [6 0 R] /Count 1 >>",
        _FONT,
        _stream(content_stream(form_bytes), b"/Type /XObject /Subtype /Form /BBox [0 0 612 792] /Resources %s "
                % resources),
        _stream(b"/Fm1 Do\n" * calls),
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
        b"/Resources << /Font << /F1 3 0 R >> /XObject << /Fm1 4 0 R >> >> /Contents 5 0 R >>",
    ])  # fmt: skip


def pdf_text_pages(pages: int, text: str = "A page of ordinary text.") -> bytes:
    """An ordinary PDF: ``pages`` pages with one line of text each."""
    return pdf_repeated_stream(0, 1, pages, text)


def markdown_brackets(paragraphs: int, per_paragraph: int) -> bytes:
    """Paragraphs of unmatched "[": markdown-it-py's inline pass takes about 40 us a byte on them."""
    return (("[" * per_paragraph + "a\n\n") * paragraphs).encode()


def zip_bomb(member: str, size: int) -> bytes:
    """A zip (a DOCX or PPTX by its name) whose one member inflates to ``size`` zero bytes: a few KB per 10 MB."""
    buffer = io.BytesIO()
    block = bytes(1 << 20)
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive, archive.open(member, "w") as out:
        for start in range(0, size, len(block)):
            out.write(block[: min(len(block), size - start)])
    return buffer.getvalue()
