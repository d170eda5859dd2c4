"""The index task's account of a run's objects (every changed object indexed, quarantined, deferred or pending; the
deleted keys deleted) and the object sizes it writes, from a hand-made manifest and plan."""

from __future__ import annotations

from dataclasses import replace

import pytest
from latechunk.chunking.config import ChunkingConfig
from latechunk.embedding.config import LateChunkingConfig
from latechunk.index.bulk import is_transient_item
from latechunk.pipeline.batch_failures import RETRY_RUNS, failed_objects
from latechunk.pipeline.index_plan import NO_CHUNKS, IndexPlan, UnaccountedObjects, Unchunked, account
from latechunk.pipeline.manifest import RunManifest
from latechunk.sources.documents import Document


def manifest(changed: dict[str, str], quarantine: list[dict], *, selected: int, deleted=()) -> RunManifest:
    return RunManifest(
        bucket="b", prefix="", index="i", model="m", model_revision="r", dims=4, chunking=ChunkingConfig(),
        window=64, window_overlap=16, late_chunking=LateChunkingConfig(), max_bad_fraction=0.2, changed=changed,
        quarantine=quarantine, objects_selected=selected, deleted_keys=list(deleted),
    )


def entry(key: str, reason: str) -> dict[str, str]:
    return {"key": key, "etag": "e", "reason": reason, "detail": ""}


def failure(reason: str, detail: str) -> dict[str, str]:
    return {"reason": reason, "detail": detail}


def plan(
    chunks: dict[str, tuple[str, int]],
    unchunked: dict[str, str] = {},  # noqa: B006
    annotate_failed: dict[str, dict[str, str]] = {},  # noqa: B006
) -> IndexPlan:
    """`chunks`: doc_id -> (key, chunks); `unchunked`: doc_id -> key of documents that gave no chunk;
    `annotate_failed`: key -> reason and detail of the objects with a document annotate quarantined."""
    documents = [Document(doc_id, "b", key, "e", "", "text/plain") for doc_id, key in unchunked.items()]
    chunked_keys = {key for key, _ in chunks.values()}
    return IndexPlan(
        "b",
        Unchunked(documents, {doc.key for doc in documents} - chunked_keys),
        {doc_id: n for doc_id, (_, n) in chunks.items()},
        {**{doc_id: key for doc_id, (key, _) in chunks.items()}, **unchunked},
        annotate_failed,
    )


def test_every_object_of_a_run_has_one_outcome():
    run = manifest(
        {"feed.jsonl": "e", "blank.txt": "e", "bad.pdf": "e", "lines.jsonl": "e", "refused.txt": "e", "gone.txt": "e"},
        [entry("bad.pdf", "corrupt_pdf"), entry("lines.jsonl#1", "invalid_json"), entry("lines.jsonl#2", "empty"),
         entry("moving.txt", "changed_before_read"), entry("gone.txt", "deleted_before_read"),
         entry("feed.jsonl#4", "invalid_json")],
        selected=10,
        deleted=["old.txt"],
    )  # fmt: skip
    staged = plan(
        {"f1": ("feed.jsonl", 2), "f2": ("feed.jsonl", 3), "r1": ("refused.txt", 1)},
        {"f3": "feed.jsonl", "b1": "blank.txt"},
    )
    outcome = account(run, staged, {"refused.txt": "document_parsing_exception: bad"})
    assert outcome.indexed == {"feed.jsonl"}, "a part quarantined or without chunks does not unindex its object"
    assert outcome.quarantined == {
        "blank.txt": NO_CHUNKS,
        "bad.pdf": "corrupt_pdf",
        "lines.jsonl": "empty, invalid_json",
        "refused.txt": "refused_by_index: document_parsing_exception: bad",
        "gone.txt": "deleted_before_read",
    }
    assert outcome.deferred == {"moving.txt"} and outcome.deleted == {"old.txt"}
    assert outcome.counts() == {
        "objects_indexed": 1, "objects_quarantined": 5, "objects_deferred": 1, "objects_pending": 0,
        "objects_deleted": 1, "objects_unchanged": 10 - 6 - 1,
    }  # fmt: skip
    assert staged.object_records() == {("b", "feed.jsonl"): 2 + 3 + 1, ("b", "refused.txt"): 1, ("b", "blank.txt"): 1}


def test_a_changed_object_with_neither_documents_nor_a_quarantine_entry_fails_the_task():
    run = manifest({"a.txt": "e", "lost.txt": "e"}, [entry("lost.txt.bak", "empty")], selected=2)
    with pytest.raises(UnaccountedObjects, match=r"1 objects .* \(first: \['lost.txt'\]\)"):
        account(run, plan({"a1": ("a.txt", 1)}), {})


def test_documents_of_an_object_the_manifest_does_not_list_fail_the_task():
    run = manifest({"a.txt": "e"}, [], selected=2)
    with pytest.raises(UnaccountedObjects, match="stray.txt"):
        account(run, plan({"a1": ("a.txt", 1), "s1": ("stray.txt", 2)}), {})


def test_objects_of_a_failed_batch_are_pending_until_their_last_retry_then_quarantined():
    """An object is retried by the next runs; in its RETRY_RUNS-th failed run it is given up (quarantined)."""
    run = manifest({"a.txt": "e", "b.txt": "e", "c.txt": "e", "d.txt": "e"}, [], selected=4)
    run = replace(run, retried={"b.txt": 1, "c.txt": RETRY_RUNS - 1})
    reason = "batch failed in embed: RuntimeError: CUDA out of memory"
    failed = failed_objects(run, {"s3://s/r/documents/batch-00001.parquet": reason},
                            {"s3://s/r/documents/batch-00001.parquet": {"b.txt", "c.txt", "d.txt"}})  # fmt: skip
    assert failed.pending == {"b.txt": reason, "d.txt": reason}
    assert failed.given_up == {"c.txt": f"{reason} (failed in {RETRY_RUNS} runs, not retried again)"}
    failures = {"e.txt": failure("annotate_failed", "x")}
    outcome = account(run, plan({"a1": ("a.txt", 2)}, annotate_failed=failures), {}, failed)
    assert outcome.indexed == {"a.txt"} and outcome.pending == {"b.txt": reason, "d.txt": reason}
    assert outcome.quarantined == {"c.txt": f"batch_failed: {failed.given_up['c.txt']}"}
    assert outcome.counts()["objects_pending"] == 2


def test_an_object_with_a_document_annotate_failed_on_is_quarantined_with_the_error():
    run = manifest({"a.txt": "e", "bad.jsonl": "e"}, [], selected=2)
    failures = {"bad.jsonl": failure("annotate_failed", "ValueError: bad byte")}
    outcome = account(run, plan({"a1": ("a.txt", 2)}, annotate_failed=failures), {})
    assert outcome.quarantined == {"bad.jsonl": "annotate_failed: ValueError: bad byte"}


@pytest.mark.parametrize(("status", "transient"), [(400, False), (404, False), (409, False), (429, True),
                                                   (500, True), (503, True), (None, True)])  # fmt: skip
def test_throttled_and_server_errors_are_transient(status, transient):
    assert is_transient_item(status) is transient


def test_an_object_with_a_document_of_too_many_tokens_is_quarantined_whole():
    run = manifest({"feed.jsonl": "e", "book.txt": "e", "ok.txt": "e"}, [], selected=3)
    too_long = failure("too_many_tokens", "2,000,000 tokens, more than max_document_tokens=1,000,000")
    staged = plan({"o1": ("ok.txt", 1)}, annotate_failed={"feed.jsonl": too_long, "book.txt": too_long})
    outcome = account(run, staged, {})
    assert outcome.indexed == {"ok.txt"}, "a short part does not index an object with a document too long"
    assert outcome.quarantined == {key: f"too_many_tokens: {too_long['detail']}" for key in ("feed.jsonl", "book.txt")}
