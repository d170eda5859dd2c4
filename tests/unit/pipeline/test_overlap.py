"""The run as the index task writes it once the bucket overtook some of its objects (latechunk.pipeline.overlap), from
a hand-made manifest and plan: every object still has one outcome and the counts add up."""

from __future__ import annotations

from latechunk.chunking.config import ChunkingConfig
from latechunk.embedding.config import LateChunkingConfig
from latechunk.pipeline.index_plan import IndexPlan, Unchunked, account
from latechunk.pipeline.manifest import RunManifest
from latechunk.pipeline.overlap import SUPERSEDED, Overtaken, without_overtaken
from latechunk.sources.documents import Document


def manifest(changed: dict[str, str], quarantine: list[dict], *, selected: int, deleted=()) -> RunManifest:
    return RunManifest(
        bucket="b", prefix="", index="i", model="m", model_revision="r", dims=4, chunking=ChunkingConfig(),
        window=64, window_overlap=16, late_chunking=LateChunkingConfig(), max_bad_fraction=0.2, changed=changed,
        quarantine=quarantine, objects_selected=selected, deleted_keys=list(deleted),
    )  # fmt: skip


def plan(chunks: dict[str, tuple[str, int]], unchunked: dict[str, str] | None = None) -> IndexPlan:
    """`chunks`: doc_id -> (key, chunks); `unchunked`: doc_id -> key of documents that gave no chunk."""
    documents = [Document(doc_id, "b", key, "e", "", "text/plain") for doc_id, key in (unchunked or {}).items()]
    return IndexPlan(
        "b",
        Unchunked(documents, {doc.key for doc in documents} - {key for key, _ in chunks.values()}),
        {doc_id: n for doc_id, (_, n) in chunks.items()},
        {**{doc_id: key for doc_id, (key, _) in chunks.items()}, **(unchunked or {})},
    )


def test_overtaken_objects_are_deferred_deleted_or_kept_and_the_run_still_adds_up():
    run = manifest({"kept.txt": "e1", "rewritten.txt": "e1", "gone.txt": "e1", "blank.txt": "e1"}, [],
                   selected=6, deleted=["removed.txt", "back.txt"])  # fmt: skip
    staged = plan({"k": ("kept.txt", 2), "r1": ("rewritten.txt", 1), "r2": ("rewritten.txt", 3), "g": ("gone.txt", 1)},
                  unchunked={"blank": "blank.txt"})  # fmt: skip
    overtaken = Overtaken({"rewritten.txt": "e2", "gone.txt": None}, {"back.txt": "e3"},
                          {"rewritten.txt": "e1", "gone.txt": "e1"})  # fmt: skip

    run, staged = without_overtaken(run, staged, overtaken)
    assert run.changed == {"kept.txt": "e1", "blank.txt": "e1"}
    assert run.deleted_keys == ["removed.txt", "gone.txt"], "a key back in the bucket is not deleted"
    assert staged.staged_keys == {"kept.txt", "blank.txt"} and set(staged.chunks_by_doc) == {"k"}
    assert staged.object_records() == {("b", "kept.txt"): 2, ("b", "blank.txt"): 1}
    outcome = account(run, staged, refused={})
    assert outcome.indexed == {"kept.txt"} and outcome.quarantined == {"blank.txt": "no_chunks"}
    assert outcome.deferred == {"rewritten.txt"} and outcome.deleted == {"removed.txt", "gone.txt"}
    assert outcome.unchanged == 2, "6 selected: 2 changed, 1 deferred, gone.txt a deletion now"
    (entry,) = [entry for entry in run.quarantine if entry["key"] == "rewritten.txt"]
    assert entry["etag"] == "e2", "left pending at the version the bucket holds now"
    assert [(e["key"], e["etag"], e["reason"]) for e in overtaken.quarantine()] == [("rewritten.txt", "e1", SUPERSEDED)]


def test_a_run_nothing_overtook_is_written_as_staged():
    run = manifest({"kept.txt": "e1"}, [], selected=1)
    staged = plan({"k": ("kept.txt", 1)})
    assert without_overtaken(run, staged, Overtaken({}, {}, {})) == (run, staged)
