"""Bad documents through whole DAG runs (dag.test, real Elasticsearch and MinIO, tiny jina encoder, 64-token
window): every bad object is quarantined with its key, ETag and reason and the run goes on; odd but valid text
(no punctuation, 100k tokens, emoji/CJK/RTL) is indexed exactly; too many bad objects fail the run clearly."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import numpy as np
import pytest
from conftest import assert_exact, chunk_counts, put, run_state, task_states
from hostile_inputs import html_quotes_across_tags, json_escaped_quotes, pdf_repeated_stream

pytestmark = pytest.mark.integration

DAY = datetime(2026, 3, 2, tzinfo=UTC)
WORDS = "the reefs ocean coral diving research biologist she her they city people".split()
MAX_OBJECT_BYTES = 2_000_000


def long_document(tokens: int = 100_000) -> str:
    """Sentences of 49 one-token words and a full stop: `tokens` tokens with the tiny vocabulary."""
    rng = np.random.default_rng(5)
    sentences = []
    for _ in range(tokens // 50 + 1):
        words = [WORDS[i] for i in rng.integers(0, len(WORDS), 49)]
        sentences.append(" ".join(words).capitalize() + ".")
    return " ".join(sentences)


UNICODE = (
    "Emoji parade 🎉🚀👩🏽‍🔬 starts now! 北京欢迎你。我爱中文。"
    "مرحبا بالعالم، هذا نص عربي. שלום עולם, זה טקסט בעברית! "
    "Mixed ‏RTL‎ marks, combining cafe\u0301 and a ZWJ family 👨‍👩‍👧 end here."
)
NO_PUNCTUATION = " ".join(["she dives near the coral reef with her team"] * 40)

GOOD = {
    "unicode.txt": UNICODE,
    "no-punctuation.txt": NO_PUNCTUATION,
    "long.txt": long_document(),
    "page.html": "<html><head><title>Reefs</title></head><body><p>Coral reefs bleach. They recover slowly.</p></body>"
    "</html>",
    "notes.jsonl": '{"text": "The first record is fine. It has two sentences."}\n{"text": broken json}\n'
    '{"text": "The third record is fine too."}\n',
}
BAD = {
    "empty.txt": (b"", "empty"),
    "blank.md": (b"  \n\t \r\n   ", "empty"),
    "binary.txt": (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 4, "binary"),
    # UTF-8 with one damaged character (text in another encoding, such as Latin-1, is decoded by detection).
    "damaged.txt": ("Caf\u00e9 cr\u00e8me br\u00fbl\u00e9e. Na\u00efve.".encode().replace(b"\xc3\xa8", b"\xc3("),
                    "invalid_utf8"),
    "broken.pdf": (b"%PDF-1.7\n1 0 obj << /Type /Catalog /Pages 2 0 R >>\nendobj\ntrailer garbage", "corrupt_pdf"),
    "archive.zip": (b"PK\x03\x04" + b"\x00" * 64, "unsupported_type"),
    "huge.txt": (("A sentence that repeats. " * (MAX_OBJECT_BYTES // 25 + 100)).encode(), "too_large"),
    "record.json": (b'{"title": "no text field here"}', "missing_text_field"),
}


def etags(s3_client, bucket: str) -> dict[str, str]:
    listing = s3_client.list_objects_v2(Bucket=bucket)["Contents"]
    return {item["Key"]: item["ETag"].strip('"') for item in listing}


def test_bad_documents_are_quarantined_with_reasons_and_the_rest_is_indexed_exactly(
    pipeline, s3_client, s3_bucket, es_client, es_index, capfd
):
    from latechunk.pipeline.models import load_tokenizer

    assert len(load_tokenizer(pipeline.conf["model"])(GOOD["long.txt"])["input_ids"]) >= 100_000
    put(s3_client, s3_bucket, {**GOOD, **{name: body for name, (body, _) in BAD.items()}})
    tags = etags(s3_client, s3_bucket)
    # recall_threshold: ~2,000 near-identical word-salad chunks under a random 32-dim encoder are a hard case for
    # int8 HNSW; approximate-vs-exact recall@10 is ~0.88 here, which says nothing about bad input handling.
    # One sentence of thousands of tokens stays one chunk only under a cap above its length.
    settings = {"max_object_bytes": MAX_OBJECT_BYTES, "max_bad_fraction": 0.7, "recall_threshold": 0.5,
                "max_chunk_tokens": 100_000}

    run = pipeline.run(DAY, **settings)
    assert run_state(run) == "success", task_states(run)

    # Quarantine list, in the manifest and in the run's validation report: key, ETag and reason of every bad input.
    expected = {(f"incoming/{name}", tags[f"incoming/{name}"], reason) for name, (_, reason) in BAD.items()}
    expected.add(("incoming/notes.jsonl#2", tags["incoming/notes.jsonl"], "invalid_json"))
    for record in (pipeline.manifest(s3_client, run), pipeline.report(s3_client, run)):
        found = {(entry["key"], entry["etag"], entry["reason"]) for entry in record["quarantine"]}
        assert found == expected
    assert all(entry["detail"] for entry in pipeline.manifest(s3_client, run)["quarantine"])

    # Everything usable is indexed, exactly: text slices, ids, ETags (checked against the bucket itself).
    chunks = assert_exact(es_client, es_index, s3_client, s3_bucket, expect_missing={"incoming/huge.txt"})
    counts = chunk_counts(chunks)
    assert set(counts) == {f"incoming/{name}" for name in GOOD}
    assert counts["incoming/no-punctuation.txt"] == 1, "no sentence end: one chunk, pooled across windows"
    assert counts["incoming/long.txt"] == GOOD["long.txt"].count(".")
    unicode_chunks = sorted((c for c in chunks if c["key"] == "incoming/unicode.txt"), key=lambda c: c["chunk_id"])
    assert "".join(c["text"] for c in unicode_chunks).replace(" ", "") == UNICODE.replace(" ", "")
    assert any("北京欢迎你。" == c["text"] for c in unicode_chunks), [c["text"] for c in unicode_chunks]
    assert any("שלום עולם" in c["text"] for c in unicode_chunks)

    # The same content again: nothing is re-indexed, and the verdict on the bad share does not change.
    before = {c["_id"]: c["indexed_at"] for c in chunks}
    rerun = pipeline.run(DAY, **settings)
    assert run_state(rerun) == "success", task_states(rerun)
    after = assert_exact(es_client, es_index, s3_client, s3_bucket, expect_missing={"incoming/huge.txt"})
    assert {c["_id"]: c["indexed_at"] for c in after} == before

    # A stricter limit fails the run at extract with a clear message, after recording the quarantine list.
    capfd.readouterr()
    strict = pipeline.run(DAY, **{**settings, "max_bad_fraction": 0.3})
    output = "".join(capfd.readouterr())
    assert run_state(strict) == "failed"
    assert task_states(strict)["extract"][0].endswith("failed")
    assert "TooManyBadDocuments" in output
    assert f"8 of {len(GOOD) + len(BAD)} objects (62%) could not be ingested, more than max_bad_fraction=30%" in output
    assert {(e["key"], e["reason"]) for e in pipeline.manifest(s3_client, strict)["quarantine"]} == {
        (key, reason)
        for key, _, reason in expected
        if key != "incoming/notes.jsonl#2"  # unchanged: not re-read
    }
    assert {
        c["_id"]: c["indexed_at"]
        for c in assert_exact(es_client, es_index, s3_client, s3_bucket, expect_missing={"incoming/huge.txt"})
    } == before, "a failed run writes nothing"


def nested(depth: int, inner: object = 1) -> object:
    for _ in range(depth):
        inner = {"n": inner}
    return inner


HOSTILE_GOOD = {
    "deep-metadata.json": json.dumps({"text": "Metadata nested three hundred deep.", "meta": nested(300)}),
    "surrogate.json": '{"text": "A lone \\ud800 escape stays searchable.", "note\\udc00": "v\\ud800"}',
    "numbers.jsonl": '{"text": "Beyond sixty-four bits.", "id": 123456789012345678901234567890}\n'
    '{"text": "Not a number.", "score": NaN, "top": Infinity}\n',
    "utf16.txt": "UTF-16 with a byte order mark. Grüße, 北京。".encode("utf-16"),
    "nested.html": "<html><body>" + "<div>" * 20_000 + "Deep inside twenty thousand elements." + "</div>" * 20_000
    + "</body></html>",
    "deep-line.jsonl": '{"text": "The first line is fine."}\n' + "[" * 10_000 + "]" * 10_000 + "\n",
    # Quotes that pair across 5,000 tags: 33 s for 60 KB when every tag rescanned the markup.
    "quotes.html": html_quotes_across_tags(5_000, "<a x='>'") + b"<p>Quotes paired across five thousand tags.</p>",
}
HOSTILE_BAD = {
    "deep.json": ("[" * 10_000 + "]" * 10_000, "too_deep", True),
    "many.json": (json.dumps([{"text": f"record {i}"} for i in range(100_000)]), "too_many_parts", True),
    "huge-int.json": ('{"text": "x", "n": ' + "9" * 5_000 + "}", "invalid_json", True),
    # An unterminated string of escaped quotes (the depth scan was quadratic on it: 32 KB took 3 s).
    "escaped.json": (json_escaped_quotes(64_000), "invalid_json", True),
    # 6 KB whose one page draws a 4 MB stream five times: 20 MB of content > max_pdf_page_bytes (16 MiB).
    "repeated.pdf": (pdf_repeated_stream(4_000_000, 5), "too_large", True),
    "notes.txt/": ("content under a folder-like key", "folder_like_key", True),
    "2026-03-02/": (b"", "folder_like_key", False),  # an empty folder marker: reported, not counted as bad
}


def test_hostile_objects_are_quarantined_with_reasons_or_indexed_exactly(
    pipeline, s3_client, s3_bucket, es_client, es_index
):
    put(s3_client, s3_bucket, {**HOSTILE_GOOD, **{name: body for name, (body, _, _) in HOSTILE_BAD.items()}})

    run = pipeline.run(DAY, max_bad_fraction=0.5)
    assert run_state(run) == "success", task_states(run)

    manifest = pipeline.manifest(s3_client, run)
    found = {entry["key"]: (entry["reason"], entry["detail"]) for entry in manifest["quarantine"]}
    expected = {f"incoming/{name}": reason for name, (_, reason, _) in HOSTILE_BAD.items()}
    expected["incoming/deep-line.jsonl#2"] = "too_deep"
    assert {key: reason for key, (reason, _) in found.items()} == expected
    assert found["incoming/deep.json"][1] == "JSON nested 10000 levels deep > max_nesting_depth=500"
    assert found["incoming/many.json"][1] == "100000 items in the JSON list > max_parts_per_object=10000"
    assert "4300 digits" in found["incoming/huge-int.json"][1]
    assert found["incoming/escaped.json"][1].startswith("Unterminated string")
    assert found["incoming/repeated.pdf"][1] == (
        "page 1 draws more than 16777216 bytes of decoded content > max_pdf_page_bytes (streams and forms counted "
        "each time they are drawn)"
    )
    assert manifest["objects_quarantined"] == sum(counted for _, _, counted in HOSTILE_BAD.values())

    chunks = assert_exact(es_client, es_index, s3_client, s3_bucket, expect_missing=set(expected))
    assert set(chunk_counts(chunks)) == {f"incoming/{name}" for name in HOSTILE_GOOD}
    texts = {chunk["text"] for chunk in chunks}
    assert "Deep inside twenty thousand elements." in texts
    assert any("Quotes paired across five thousand tags." in text for text in texts)
    assert any("\ufffd" in text for text in texts), "the lone surrogate is indexed as U+FFFD"
    assert any("北京。" in text for text in texts)


def test_poison_objects_do_not_stop_updates_and_deletes_of_their_neighbours(
    pipeline, s3_client, s3_bucket, es_client, es_index
):
    put(s3_client, s3_bucket, {
        "keep.txt": "This document stays the same. Its chunks are not touched.",
        "update.txt": "The first version of this document. It will change.",
        "remove.txt": "This document will be deleted. Its chunks must go.",
    })
    first = pipeline.run(DAY)
    assert run_state(first) == "success", task_states(first)
    before = {c["_id"]: c["indexed_at"] for c in assert_exact(es_client, es_index, s3_client, s3_bucket)}

    put(s3_client, s3_bucket, {
        "update.txt": "The second version replaces the first. Nothing of the old one remains. It has three sentences.",
        "deep.json": "[" * 10_000 + "]" * 10_000,
        "nested-a-little.json": json.dumps({"text": "Nested sixty deep.", "meta": nested(60)}),
        "list.json": json.dumps([{"text": f"record {i}"} for i in range(150)]),
        "surrogate.json": '{"text": "Poison \\udfff in the text, but kept."}',
        "folder.txt/": "content under a folder-like key",
    })
    s3_client.delete_object(Bucket=s3_bucket, Key="incoming/remove.txt")
    second = pipeline.run(DAY, max_bad_fraction=0.9, max_nesting_depth=50, max_parts_per_object=100)
    assert run_state(second) == "success", task_states(second)

    manifest = pipeline.manifest(s3_client, second)
    assert {(e["key"], e["reason"], e["detail"]) for e in manifest["quarantine"]} == {
        ("incoming/deep.json", "too_deep", "JSON nested 10000 levels deep > max_nesting_depth=50"),
        ("incoming/nested-a-little.json", "too_deep", "JSON nested 61 levels deep > max_nesting_depth=50"),
        ("incoming/list.json", "too_many_parts", "150 items in the JSON list > max_parts_per_object=100"),
        ("incoming/folder.txt/", "folder_like_key",
         "the key ends in '/' (a folder marker, or content under a folder-like name): not read"),
    }
    assert manifest["deleted_keys"] == ["incoming/remove.txt"]
    poison = {"incoming/deep.json", "incoming/nested-a-little.json", "incoming/list.json", "incoming/folder.txt/"}
    chunks = assert_exact(es_client, es_index, s3_client, s3_bucket, expect_missing=poison)
    assert set(chunk_counts(chunks)) == {"incoming/keep.txt", "incoming/update.txt", "incoming/surrogate.json"}
    assert chunk_counts(chunks)["incoming/update.txt"] == 3, "the new version, one chunk per sentence"
    kept = {c["_id"]: c["indexed_at"] for c in chunks if c["key"] == "incoming/keep.txt"}
    assert kept == {key: value for key, value in before.items() if key in kept}, "the unchanged one is untouched"
