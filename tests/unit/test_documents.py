"""Text extraction for every supported format, and a recorded skip reason for every class of bad input."""

from __future__ import annotations

import json

import pytest
from hostile_inputs import pdf
from latechunk.sources.documents import (
    SkipDocument,
    SkipReason,
    SourceObject,
    check_size,
    content_type_for,
    document_id,
    extract_text,
    load_documents,
    utf16_offsets,
)


def minimal_pdf(text: str) -> bytes:
    """A one-page PDF showing `text` in Helvetica, with a correct cross-reference table."""
    stream = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode("latin-1")
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R"
        b" /Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    return pdf(objects)


def only_text(key: str, data: bytes, **options) -> str:
    parts, skipped = extract_text(key, data, **options)
    assert skipped == []
    assert [part.part for part in parts] == [""]
    return parts[0].text


def skip_reason(key: str, data: bytes, **options) -> SkipReason:
    with pytest.raises(SkipDocument) as caught:
        extract_text(key, data, **options)
    return caught.value.reason


def test_plain_text_keeps_the_text_exactly_and_markdown_loses_its_marks():
    text = "Berlin is the capital of Germany.\n\nIt has 3.85 million inhabitants.  Émigrés: 中文, עברית, 🙂"
    assert only_text("docs/berlin.txt", text.encode()) == text
    assert only_text("docs/README.MD", ("# Title\n\n" + text).encode()) == "Title\n\n" + text


@pytest.mark.parametrize(
    ("text", "encoding", "detected"),
    [
        ("café au lait. Noël à Paris, où êtes-vous ?", "latin-1", "cp1252"),
        ("Größe und Maße: „Anführungszeichen“ für Straßen in München.", "cp1252", "cp1252"),
        ("Zażółć gęślą jaźń — polski tekst, który ma być rozpoznany.", "cp1250", "cp1250"),
        ("Привет, мир! Это проверка определения кодировки текста.", "cp1251", "cp1251"),
        ("日本語のテキストです。文字コードの検出を試します。", "shift_jis", "cp932"),
    ],
)
def test_text_in_other_encodings_is_decoded_and_its_encoding_recorded(text, encoding, detected):
    documents, quarantine = load_documents(SourceObject("b", "legacy.txt", "e", 0), text.encode(encoding))
    assert quarantine == []
    assert documents[0].text == text and documents[0].metadata == {"encoding": detected}


def test_utf8_byte_order_mark_is_dropped():
    assert only_text("a.txt", "\ufeffhello".encode()) == "hello"


def test_html_drops_script_style_and_markup_and_keeps_the_title():
    markup = """<html><head><title>Berlin</title><style>p { color: red }</style>
    <script>var secret = "do not index";</script></head>
    <body><h1>Capital</h1><p>Berlin is the <b>capital</b>
    of   Germany.</p><noscript>enable js</noscript></body></html>"""
    parts, _ = extract_text("site/index.htm", markup.encode())
    (part,) = parts
    assert part.text == "Capital\nBerlin is the capital of Germany."
    for dropped in ("secret", "color", "enable js", "<p>"):
        assert dropped not in part.text
    assert part.metadata == {"title": "Berlin"}


def test_json_object_uses_the_configured_field_and_keeps_the_rest_as_metadata():
    payload = {"body": "Late chunking pools token embeddings.", "author": "ann", "tags": ["a", "b"]}
    parts, skipped = extract_text("x/doc.json", json.dumps(payload).encode(), json_text_field="body")
    assert skipped == []
    assert [(part.part, part.text, part.metadata) for part in parts] == [
        ("", payload["body"], {"author": "ann", "tags": ["a", "b"]})
    ]


def test_json_dotted_field_path():
    payload = {"content": {"text": "nested text"}, "id": 7}
    parts, _ = extract_text("doc.json", json.dumps(payload).encode(), json_text_field="content.text")
    assert parts[0].text == "nested text"
    assert parts[0].metadata == {"id": 7}


def test_json_list_gives_one_part_per_item_and_skips_bad_items():
    payload = [{"text": "first"}, {"title": "no text"}, "not an object", {"text": "fourth"}]
    parts, skipped = extract_text("many.json", json.dumps(payload).encode())
    assert [(part.part, part.text) for part in parts] == [("0", "first"), ("3", "fourth")]
    assert [(part, skip.reason) for part, skip in skipped] == [
        ("1", SkipReason.MISSING_TEXT_FIELD),
        ("2", SkipReason.MISSING_TEXT_FIELD),
    ]


def test_jsonl_gives_one_document_per_line_with_line_numbers():
    lines = ['{"text": "alpha", "n": 1}', "", '{"text": "beta"}', "{broken", '{"text": "   "}', '{"text": "gamma"}']
    source = SourceObject("bucket", "feeds/day.jsonl", '"etag1"', 100)
    documents, quarantine = load_documents(source, "\n".join(lines).encode())
    assert [(doc.part, doc.text, doc.ref) for doc in documents] == [
        ("1", "alpha", "feeds/day.jsonl#1"),
        ("3", "beta", "feeds/day.jsonl#3"),
        ("6", "gamma", "feeds/day.jsonl#6"),
    ]
    assert documents[0].metadata == {"n": 1}
    assert len({doc.doc_id for doc in documents}) == 3
    assert documents[0].doc_id == document_id("bucket", "feeds/day.jsonl", "1")
    assert all(doc.key == "feeds/day.jsonl" and doc.etag == '"etag1"' for doc in documents)
    assert [(entry.key, entry.reason) for entry in quarantine] == [
        ("feeds/day.jsonl#4", "invalid_json"),
        ("feeds/day.jsonl#5", "empty"),
    ]


def test_jsonl_records_may_hold_unicode_line_separators():
    # json.dumps(ensure_ascii=False) writes U+2028, U+2029 and U+0085 raw: legal in JSON strings, no line end.
    records = [{"text": f"first\u2028second\u2029third\x85end {i}"} for i in range(3)]
    data = "\r\n".join(json.dumps(record, ensure_ascii=False) for record in records).encode()
    documents, quarantine = load_documents(SourceObject("bucket", "feeds/sep.jsonl", '"e"', len(data)), data)
    assert quarantine == []
    assert [(doc.part, doc.text) for doc in documents] == [(str(i + 1), r["text"]) for i, r in enumerate(records)]


def test_utf16_offsets_count_astral_characters_twice():
    text = "a😀b👨‍👩‍👧c"
    offsets = [0, 1, 2, 3, len(text)]
    assert utf16_offsets(text, offsets) == [len(text[:i].encode("utf-16-le")) // 2 for i in offsets]
    assert utf16_offsets(text, offsets) == [0, 1, 3, 4, 13]


def test_pdf_text_is_extracted():
    parts, _ = extract_text("papers/p.pdf", minimal_pdf("Late chunking keeps context."))
    assert parts[0].text == "Late chunking keeps context."
    assert parts[0].metadata["pages"] == 1


def test_document_ids_are_stable_and_depend_on_bucket_and_key():
    first = document_id("b", "k.txt")
    assert first == document_id("b", "k.txt")
    assert len(first) == 40 and int(first, 16) >= 0
    assert len({first, document_id("other", "k.txt"), document_id("b", "k2.txt"), document_id("b", "k.txt", "1")}) == 4


def test_load_documents_builds_documents_with_identity_and_content_type():
    source = SourceObject("corpus", "a/b.md", '"abc"', 5)
    (document,), quarantine = load_documents(source, b"# Hi\n")
    assert quarantine == []
    assert (document.doc_id, document.key, document.etag, document.part) == (
        document_id("corpus", "a/b.md"),
        "a/b.md",
        '"abc"',
        "",
    )
    assert document.content_type == "text/markdown"


@pytest.mark.parametrize(
    ("key", "data", "reason"),
    [
        ("empty.txt", b"", SkipReason.EMPTY),
        ("blank.md", b" \n\t \r\n ", SkipReason.EMPTY),
        ("tags-only.html", b"<html><script>x()</script><p>  </p></html>", SkipReason.EMPTY),
        ("nul.txt", b"text\x00with\x00nul", SkipReason.BINARY),
        ("controls.txt", bytes(range(1, 9)) * 20 + b"abc", SkipReason.BINARY),
        ("truncated.md", "naïve café".encode()[:-1], SkipReason.INVALID_UTF8),
        ("damaged.txt", "Grüße aus Köln".encode().replace(b"\xc3\xb6", b"\xc3("), SkipReason.INVALID_UTF8),
        ("broken.json", b'{"text": "unterminated', SkipReason.INVALID_JSON),
        ("no-field.json", b'{"body": "x"}', SkipReason.MISSING_TEXT_FIELD),
        ("number.json", b"42", SkipReason.MISSING_TEXT_FIELD),
        ("empty-list.json", b"[]", SkipReason.EMPTY),
        ("corrupt.pdf", b"%PDF-1.7\n1 0 obj << /Type /Catalog", SkipReason.CORRUPT_PDF),
        ("not-a.pdf", b"plain text pretending", SkipReason.CORRUPT_PDF),
        ("image.png", b"\x89PNG\r\n\x1a\n", SkipReason.UNSUPPORTED_TYPE),
        ("no-extension", b"hello", SkipReason.UNSUPPORTED_TYPE),
        ("archive.tar.gz", b"hello", SkipReason.UNSUPPORTED_TYPE),
    ],
)
def test_bad_input_is_skipped_with_its_reason(key, data, reason):
    assert skip_reason(key, data) == reason


def test_truncated_pdf_is_corrupt():
    pdf = minimal_pdf("some text")
    assert skip_reason("cut.pdf", pdf[: len(pdf) // 3]) == SkipReason.CORRUPT_PDF


def test_pdf_without_text_is_empty():
    assert skip_reason("scan.pdf", minimal_pdf("")) == SkipReason.EMPTY


def test_over_size_is_skipped_before_and_after_download():
    assert skip_reason("big.txt", b"x" * 101, max_bytes=100) == SkipReason.TOO_LARGE
    assert only_text("ok.txt", b"x" * 100, max_bytes=100) == "x" * 100
    with pytest.raises(SkipDocument) as caught:
        check_size(10_000, max_bytes=1_000)
    assert caught.value.reason == SkipReason.TOO_LARGE
    check_size(1_000, max_bytes=1_000)


def test_load_documents_turns_a_skip_into_a_quarantine_record():
    source = SourceObject("corpus", "bin/blob.txt", '"e1"', 4)
    documents, quarantine = load_documents(source, b"\x00\x01\x02\x03")
    assert documents == []
    assert [entry.to_dict() for entry in quarantine] == [
        {"key": "bin/blob.txt", "etag": '"e1"', "reason": "binary", "detail": "contains NUL bytes"}
    ]


def test_content_types():
    assert content_type_for("a/B.HTML") == "text/html"
    assert content_type_for("x.ndjson") == "application/x-ndjson"
    assert content_type_for("x.docx").endswith("wordprocessingml.document")
    assert content_type_for("x.doc") is None
