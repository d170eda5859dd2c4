"""Hostile objects: deep nesting, lone surrogates, too many parts, folder-like keys, quadratic HTML, UTF-16/32,
parser crashes. Each ends as a quarantine record with a readable reason, or as text the rest of the pipeline can
store and slice exactly; none raises out of `load_documents`."""

from __future__ import annotations

import json
import math
import time

import pytest
from latechunk.sources import documents, extractors
from latechunk.sources.documents import Limits, SkipDocument, SkipReason, SourceObject, extract_text, load_documents
from latechunk.sources.extractors import json_depth


def quarantined(key: str, data: bytes, **options) -> tuple[str, str]:
    documents, quarantine = load_documents(SourceObject("b", key, "e", len(data)), data, **options)
    assert documents == []
    (entry,) = quarantine
    assert entry.key == key and entry.detail
    return entry.reason, entry.detail


def test_json_nested_10000_deep_is_quarantined_as_too_deep_not_a_recursion_error():
    assert quarantined("deep.json", b"[" * 10_000 + b"]" * 10_000) == (
        "too_deep",
        "JSON nested 10000 levels deep > max_nesting_depth=500",
    )
    record = b'{"text": "fine", "meta": ' + b'{"a": ' * 600 + b"1" + b"}" * 600 + b"}"
    assert quarantined("meta.json", record)[0] == "too_deep"


def test_json_depth_ignores_brackets_in_strings_and_counts_both_kinds():
    assert json_depth('{"text": "[[[[{{{{", "a": [{"b": [1]}]}') == 4
    assert json_depth('["\\"[[[", []]') == 2
    assert json_depth("42") == 0
    deep = "[" * 3_000_000 + "]" * 3_000_000  # more than one block of the scan
    assert json_depth(deep) == 3_000_000


def test_metadata_nested_300_deep_is_kept():
    nested: object = 1
    for _ in range(300):
        nested = {"n": nested}
    (part,), skipped = extract_text("meta.json", json.dumps({"text": "Deep metadata.", "m": nested}).encode())
    assert skipped == [] and part.metadata == {"m": nested}


def test_depth_limit_is_a_setting_and_applies_per_jsonl_line():
    data = b'{"text": "flat"}\n{"text": "deep", "m": [[[[1]]]]}\n{"text": "last"}\n'
    parts, skipped = extract_text("feed.jsonl", data, limits=Limits(max_depth=3))
    assert [part.text for part in parts] == ["flat", "last"]
    assert [(part, skip.reason) for part, skip in skipped] == [("2", SkipReason.TOO_DEEP)]
    assert len(extract_text("feed.jsonl", data, limits=Limits(max_depth=5))[0]) == 3


def test_lone_surrogates_become_replacement_characters_in_text_and_metadata():
    data = b'{"text": "left \\ud800 right \\udfff.", "\\udc00key": ["\\ud83d", "\\ud83d\\ude00"]}'
    (part,), _ = extract_text("s.json", data)
    assert part.text == "left \ufffd right \ufffd."
    assert len(part.text) == len(json.loads(data)["text"]), "one code point for one: offsets stay exact"
    assert part.metadata == {"\ufffdkey": ["\ufffd", "\U0001f600"]}, "a valid pair is one character, kept"
    part.text.encode("utf-8")
    json.dumps(part.metadata, ensure_ascii=False).encode("utf-8")


def test_too_many_parts_quarantines_the_whole_object():
    items = json.dumps([{"text": f"record {i}"} for i in range(100_000)]).encode()
    assert quarantined("many.json", items) == (
        "too_many_parts",
        "100000 items in the JSON list > max_parts_per_object=10000",
    )
    lines = b'{"text": "x"}\n\n{"text": "y"}\n{"text": "z"}\n'
    reason, detail = quarantined("feed.jsonl", lines, limits=Limits(max_parts=2))
    assert (reason, detail) == ("too_many_parts", "3 records in the file > max_parts_per_object=2")
    assert len(extract_text("feed.jsonl", lines, limits=Limits(max_parts=3))[0]) == 3


def test_folder_like_keys_are_quarantined_with_a_reason():
    assert quarantined("incoming/notes.txt/", b"real content")[0] == "folder_like_key"
    assert quarantined("incoming/2026-03-02/", b"")[0] == "folder_like_key"


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-be", "utf-32", "utf-32-be"])
def test_utf16_and_utf32_with_a_byte_order_mark_are_decoded(encoding):
    def encoded(text: str) -> bytes:  # "utf-16"/"utf-32" write a mark themselves, the "-be" codecs do not
        return text.encode(encoding) if "-" not in encoding[4:] else ("\ufeff" + text).encode(encoding)

    text = "Grüße aus Köln 🙂. 北京。"
    assert encoded(text)[:2] in (b"\xff\xfe", b"\xfe\xff", b"\x00\x00")
    (part,), _ = extract_text("greeting.txt", encoded(text))
    assert part.text == text
    (record,), _ = extract_text("r.json", encoded(json.dumps({"text": text}, ensure_ascii=False)))
    assert record.text == text


def test_broken_utf16_and_utf16_without_a_mark_are_quarantined():
    assert quarantined("odd.txt", b"\xff\xfe" + "abc".encode("utf-16-le") + b"\x00\xd8")[0] == "invalid_encoding"
    assert quarantined("nomark.txt", "abc".encode("utf-16-le")) == ("binary", "contains NUL bytes")


def test_nested_html_is_linear_in_depth():
    def seconds(depth: int) -> float:
        markup = ("<html><body>" + "<div>x " * depth + "</div>" * depth + "</body></html>").encode()
        start = time.perf_counter()
        (part,), _ = extract_text("deep.html", markup)
        assert part.text == "\n".join(["x"] * depth)
        return time.perf_counter() - start

    small, large = seconds(5_000), seconds(40_000)
    assert large < 2 + 16 * small, (small, large)  # 8x the depth; a quadratic walk takes ~64x
    assert large < 20


@pytest.mark.parametrize(
    "markup",
    [
        "a <b" * 200_000,  # an unterminated start tag, over and over (quadratic in html.parser)
        '<a "> x ' * 200_000,
        "<p>hi</p><!--" + "x" * 2_000_000,
        "<" * 2_000_000,
        "</" * 1_000_000 + "text",
    ],
    ids=["unterminated-tags", "unpaired-quotes", "unterminated-comment", "bare-lt", "nameless-end-tags"],
)
def test_malformed_html_is_read_in_linear_time(markup):
    start = time.perf_counter()
    try:
        extract_text("bad.html", markup.encode())
    except SkipDocument as skip:
        assert skip.reason == SkipReason.EMPTY
    assert time.perf_counter() - start < 10


def test_html_text_blocks_title_and_dropped_elements():
    markup = (
        "<!DOCTYPE html><html><head><title>T &amp; x</title><style>p { }</style></head><body>"
        '<p title="a>b">One &lt;two&gt;</p><br>three<script>if (a<b) {}</script><noscript><p>js</p></noscript>'
        " four<!-- hidden --> <template><i>t</i></template>five</body><p>outside</p></html>"
    )
    (part,), _ = extract_text("page.html", markup.encode())
    assert part.text == "One <two>\nthree four five"
    assert part.metadata == {"title": "T & x"}


def test_an_object_over_its_time_budget_is_quarantined():
    records = "\n".join(json.dumps({"text": f"record {i}"}) for i in range(2_000)).encode()
    reason, detail = quarantined("slow.jsonl", records, limits=Limits(time_budget_s=0))
    assert reason == "too_slow" and detail.startswith("extraction took more than 0 s")


def test_any_parser_failure_quarantines_the_object_with_its_class_and_message(monkeypatch):
    def explode(data, limits):
        raise RecursionError("maximum recursion depth exceeded")

    monkeypatch.setattr(documents.PDF_PROCESS, "text", explode)
    assert quarantined("paper.pdf", b"%PDF-1.7 whatever") == (
        "extraction_error",
        "RecursionError: maximum recursion depth exceeded",
    )
    monkeypatch.setattr(extractors, "_parse_json", lambda text: (_ for _ in ()).throw(UnicodeError("bad \ud800")))
    reason, detail = quarantined("x.json", b'{"text": "x"}')
    assert (reason, detail) == ("extraction_error", "UnicodeError: bad \ufffd")


def test_json_oddities_keep_their_values_or_quarantine_their_line():
    data = (
        b'{"text": "big", "n": 123456789012345678901234567890}\n'
        b'{"text": "special", "nan": NaN, "inf": -Infinity}\n'
        b'{"text": "digits", "n": ' + b"9" * 5000 + b"}\n"
    )
    parts, skipped = extract_text("odd.jsonl", data)
    assert parts[0].metadata == {"n": 123456789012345678901234567890}
    assert math.isnan(parts[1].metadata["nan"]) and parts[1].metadata["inf"] == -math.inf
    assert [(part, skip.reason) for part, skip in skipped] == [("3", SkipReason.INVALID_JSON)]
