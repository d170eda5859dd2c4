"""The index spec without a server: the mapping `index_body` builds, `mismatches` between a spec and a mapping,
and `spec_from_mapping` reading a spec back (the round trip through Elasticsearch: tests/integration/test_index.py)."""

from __future__ import annotations

import dataclasses

import pytest
from latechunk.embedding.config import PLAIN, LateChunkingConfig
from latechunk.index.spec import (
    ADDED_FIELDS,
    META_KEY,
    VECTOR_FIELD,
    IndexSpec,
    index_body,
    mismatches,
    spec_from_mapping,
)

CHUNKING = {"strategy": "sentences", "sentences_per_chunk": 2, "max_chunk_tokens": 512}


@pytest.fixture
def spec() -> IndexSpec:
    return IndexSpec(
        name="chunks", dims=384, model_id="test/encoder", model_revision="r1", chunking=CHUNKING, window=512,
        window_overlap=128, late_chunking=LateChunkingConfig().recorded(), replicas=0,
    )  # fmt: skip


def mapping_of(spec: IndexSpec) -> dict:
    return index_body(spec)["mappings"]


def test_the_body_maps_every_chunk_field_strictly_and_records_the_settings(spec):
    body = index_body(spec)
    assert body["settings"] == {"number_of_shards": 1, "number_of_replicas": 0}
    mappings = body["mappings"]
    assert mappings["dynamic"] == "strict"
    vector = mappings["properties"][VECTOR_FIELD]
    assert vector == {"type": "dense_vector", "dims": 384, "index": True, "similarity": "cosine",
                      "index_options": {"type": "int8_hnsw"}}  # fmt: skip
    assert mappings["properties"]["metadata"] == {"type": "object", "enabled": False}
    assert set(ADDED_FIELDS) <= set(mappings["properties"])
    meta = mappings["_meta"][META_KEY]
    assert (meta["model_id"], meta["model_revision"], meta["dims"]) == ("test/encoder", "r1", 384)
    assert (meta["chunking"], meta["window"], meta["window_overlap"]) == (CHUNKING, 512, 128)
    assert meta["late_chunking"] == LateChunkingConfig().recorded()
    assert "UTF-16" in meta["offsets"]


def test_replicas_are_left_to_the_cluster_unless_set(spec):
    assert index_body(dataclasses.replace(spec, replicas=None))["settings"] == {"number_of_shards": 1}


def test_a_mapping_matches_its_own_spec_and_reads_back_to_it(spec):
    assert mismatches(spec, mapping_of(spec)) == []
    assert spec_from_mapping("chunks", mapping_of(spec)) == dataclasses.replace(spec, replicas=None)


def test_tuples_in_the_chunking_compare_equal_to_the_stored_lists(spec):
    with_tuple = dataclasses.replace(spec, chunking={**CHUNKING, "separators": ("\n\n", "\n")})
    stored = index_body(with_tuple)["mappings"]
    stored["_meta"][META_KEY]["chunking"]["separators"] = ["\n\n", "\n"]  # what the engine returns
    assert mismatches(with_tuple, stored) == []


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"dims": 768}, "dims is 384 in the index, 768 configured"),
        ({"similarity": "dot_product"}, "similarity is 'cosine' in the index, 'dot_product' configured"),
        ({"index_options": {"type": "hnsw"}}, "index_options.type is 'int8_hnsw' in the index, 'hnsw' configured"),
        ({"model_id": "other/encoder"}, "model_id is 'test/encoder' in the index, 'other/encoder' configured"),
        ({"model_revision": "r2"}, "model_revision is 'r1' in the index, 'r2' configured"),
        ({"chunking": {**CHUNKING, "sentences_per_chunk": 3}}, "chunking is"),
        ({"window": 256}, "window is 512 in the index, 256 configured"),
        ({"window_overlap": 64}, "window_overlap is 128 in the index, 64 configured"),
        ({"late_chunking": PLAIN.recorded()}, "late_chunking.window_layout is 'centred' in the index, 'stitched'"),
        ({"late_chunking": {**LateChunkingConfig().recorded(), "naive_weight": 0.3}},
         "late_chunking.naive_weight is 0.6 in the index, 0.3 configured"),
    ],
)
def test_every_difference_is_named(spec, change, message):
    problems = mismatches(dataclasses.replace(spec, **change), mapping_of(spec))
    assert any(message in problem for problem in problems), problems


def test_several_differences_are_all_listed(spec):
    problems = mismatches(dataclasses.replace(spec, dims=768, model_id="other/encoder", window=256), mapping_of(spec))
    assert [problem.split(" is ")[0] for problem in problems] == ["dims", "model_id", "window"]


def test_an_index_that_predates_window_recording_is_refused_by_a_windowed_spec(spec):
    mapping = mapping_of(spec)
    del mapping["_meta"][META_KEY]["window"]
    (problem,) = mismatches(spec, mapping)
    assert "window is not recorded in the index" in problem
    assert mismatches(dataclasses.replace(spec, window=None), mapping) == []


def test_unrecorded_late_chunking_settings_read_as_plain_late_chunking(spec):
    plain = dataclasses.replace(spec, late_chunking={})
    mapping = mapping_of(plain)
    assert mismatches(dataclasses.replace(spec, late_chunking=PLAIN.recorded()), mapping) == []
    problems = mismatches(spec, mapping)
    assert {problem.split(" is ")[0] for problem in problems} == {
        f"late_chunking.{name}" for name in LateChunkingConfig().recorded()
    }


@pytest.mark.parametrize(
    "mapping",
    [
        {"properties": {"text": {"type": "text"}}},
        {"_meta": {"other": {}}, "properties": {VECTOR_FIELD: {"type": "dense_vector", "dims": 384}}},
        {"_meta": {META_KEY: {"model_id": "x"}}, "properties": {VECTOR_FIELD: {"type": "keyword"}}},
    ],
)
def test_an_index_latechunk_did_not_create_is_named_so_and_has_no_spec(spec, mapping):
    (problem,) = mismatches(spec, mapping)
    assert "not created by latechunk" in problem
    assert spec_from_mapping("foreign", mapping) is None


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        ({"dims": 0}, "dims must be within"),
        ({"dims": 5000}, "dims must be within"),
        ({"similarity": "manhattan"}, "similarity must be one of"),
        ({"index_options": {"type": "ivf"}}, "index_options.type must be one of"),
        ({"dims": 385, "index_options": {"type": "int4_hnsw"}}, "even number of dims"),
        ({"dims": 64, "index_options": {"type": "bbq_hnsw"}}, "more than 64 dims"),
        ({"model_id": ""}, "model_id is required"),
    ],
)
def test_a_spec_the_engine_would_refuse_is_refused_first(fields, error):
    with pytest.raises(ValueError, match=error):
        IndexSpec(**{"name": "chunks", "dims": 384, "model_id": "test/encoder", **fields})
