"""The chunk index, independent of the client: its configuration (`IndexSpec`), the Elasticsearch mapping and the
check of an existing index against a spec.

The backend interface is in `latechunk.index.backend`; bulk actions and the delete clauses in
`latechunk.index.actions`.

One Elasticsearch document per chunk, `_id = "<doc_id>:<chunk_id>"`. The model, chunking and window settings that
produced the vectors are stored in the mapping's `_meta`, so an index is never silently filled with vectors of
another model, chunking or window: `mismatches` lists every difference between a spec and an existing index.

Offsets: `char_start`/`char_end` count Python code points (Unicode scalar values) into the extracted text;
`char_start_utf16`/`char_end_utf16` count UTF-16 code units, the unit of JavaScript and Java string indices (they
differ after any character outside the Basic Multilingual Plane, such as most emoji). The `_meta` says so too.

A document that produced no chunk (e.g. only zero-width characters) is recorded by one *tombstone*: a document
with `n_chunks = 0`, `chunk_id = -1`, no text and no vector, so that later runs skip the unchanged object instead of
reading it again; kNN and text searches never return it.

Complete or absent: every record (chunk or tombstone) also carries `object_records`, how many records its whole
object has at its ETag (all its documents' chunks, one tombstone per document without any). An object counts as
indexed only when the index holds exactly that many records of it, all of one ETag, so an object whose writing was
interrupted between two of its documents is read again by the next run. `object_records` came after the first
indices: `ensure_index` adds it to an older index's mapping (an additive change), and records without it are judged
per document, as they were written.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from latechunk.chunking.levels import CHUNK, DEFAULT_LEVELS, LEVELS
from latechunk.embedding.config import PLAIN
from latechunk.index.settings import replica_settings

VECTOR_FIELD = "vector"
META_KEY = "latechunk"
SCHEMA_VERSION = 1
TOMBSTONE_CHUNK_ID = -1
OFFSETS_NOTE = (
    "char_start/char_end count Unicode code points (Python str indices) of the extracted text; "
    "char_start_utf16/char_end_utf16 count UTF-16 code units (JavaScript/Java string indices)"
)
MAX_DIMS = 4096
# Fields added to the mapping after indices were first created: `ensure_index` adds them to an older index.
# `section`: the chunk's section path (a keyword per heading title, outermost first; titles over 1024 characters
# are kept in the source, not indexed); `page_start`/`page_end`: its
# pages (PDF) or slides (PPTX), absent for documents without pages.
ADDED_FIELDS: dict[str, dict[str, Any]] = {
    "object_records": {"type": "integer"},
    "section": {"type": "keyword", "ignore_above": 1024},
    "page_start": {"type": "integer"},
    "page_end": {"type": "integer"},
    # Multi-granularity indices (`latechunk.chunking.levels`): the row's level ("section", "document"; "chunk"
    # for chunks when other levels are indexed, absent in an index of chunks only) and a chunk's section row.
    "level": {"type": "keyword"},
    "section_id": {"type": "keyword"},
}
SIMILARITIES = ("cosine", "dot_product", "l2_norm", "max_inner_product")
INDEX_TYPES = ("hnsw", "int8_hnsw", "int4_hnsw", "bbq_hnsw", "flat", "int8_flat", "int4_flat", "bbq_flat")


class IndexMismatchError(Exception):
    """An existing index was built for another model, vector shape or chunking than the one configured."""

    def __init__(self, index: str, problems: list[str]):
        super().__init__(
            f"index {index!r} does not match the configuration: {'; '.join(problems)}. "
            "An index holds vectors of one model and chunking only: write to a new index (the reindex DAG "
            "builds one and swaps the alias) or fix the configuration."
        )
        self.index = index
        self.problems = problems


@dataclass(frozen=True)
class IndexSpec:
    name: str
    dims: int
    model_id: str
    model_revision: str = ""
    similarity: str = "cosine"
    index_options: dict[str, Any] = field(default_factory=lambda: {"type": "int8_hnsw"})
    chunking: dict[str, Any] = field(default_factory=dict)
    shards: int = 1
    replicas: int | str | None = None  # a number, or an auto-expand range such as "0-1" (index.settings)
    window: int | None = None  # tokens per encoder window, as the embed stage uses it
    window_overlap: int | None = None  # context tokens each window repeats
    late_chunking: dict[str, Any] = field(default_factory=dict)  # LateChunkingConfig.recorded()
    levels: tuple[str, ...] = DEFAULT_LEVELS  # recorded only when it is not the default (chunks only)

    def __post_init__(self) -> None:
        if not 1 <= self.dims <= MAX_DIMS:
            raise ValueError(f"dims must be within 1..{MAX_DIMS}, got {self.dims}")
        if self.similarity not in SIMILARITIES:
            raise ValueError(f"similarity must be one of {SIMILARITIES}, got {self.similarity!r}")
        index_type = self.index_options.get("type")
        if index_type not in INDEX_TYPES:
            raise ValueError(f"index_options.type must be one of {INDEX_TYPES}, got {index_type!r}")
        if index_type.startswith("int4") and self.dims % 2:
            raise ValueError(f"{index_type} needs an even number of dims, got {self.dims}")
        if index_type.startswith("bbq") and self.dims <= 64:
            raise ValueError(f"{index_type} needs more than 64 dims, got {self.dims}")
        if not self.model_id:
            raise ValueError("model_id is required: it is recorded with the index")
        if CHUNK not in self.levels or set(self.levels) - set(LEVELS):
            raise ValueError(f"levels must include {CHUNK!r} and be some of {LEVELS}, got {self.levels!r}")

    def meta(self) -> dict[str, Any]:
        levels = {"levels": list(self.levels)} if tuple(self.levels) != DEFAULT_LEVELS else {}
        return {
            "schema_version": SCHEMA_VERSION,
            "model_id": self.model_id,
            "model_revision": self.model_revision,
            "dims": self.dims,
            "similarity": self.similarity,
            "index_options": _canonical(self.index_options),
            "chunking": _canonical(self.chunking),
            "window": self.window,
            "window_overlap": self.window_overlap,
            "late_chunking": _canonical(self.late_chunking),
            **levels,
            "offsets": OFFSETS_NOTE,
        }


def index_body(spec: IndexSpec) -> dict[str, Any]:
    """Settings and mappings for `indices.create`."""
    settings: dict[str, Any] = {"number_of_shards": spec.shards}
    if spec.replicas is not None:
        settings.update(replica_settings(spec.replicas))
    integer = {"type": "integer"}
    keyword = {"type": "keyword"}
    mappings = {
        "dynamic": "strict",
        "_meta": {META_KEY: spec.meta()},
        "properties": {
            "doc_id": keyword,
            "bucket": keyword,
            "key": keyword,
            "part": keyword,
            "etag": keyword,
            "chunk_id": integer,
            "n_chunks": integer,
            **ADDED_FIELDS,
            "text": {"type": "text"},
            "char_start": integer,
            "char_end": integer,
            "char_start_utf16": integer,
            "char_end_utf16": integer,
            "token_start": integer,
            "token_end": integer,
            VECTOR_FIELD: {
                "type": "dense_vector",
                "dims": spec.dims,
                "index": True,
                "similarity": spec.similarity,
                "index_options": dict(spec.index_options),
            },
            "model_id": keyword,
            "metadata": {"type": "object", "enabled": False},
            "indexed_at": {"type": "date"},
        },
    }
    return {"settings": settings, "mappings": mappings}


def mismatches(spec: IndexSpec, mapping: dict[str, Any]) -> list[str]:
    """Every difference between `spec` and one index's mapping (as `indices.get_mapping` returns it)."""
    meta = mapping.get("_meta", {}).get(META_KEY)
    vector = mapping.get("properties", {}).get(VECTOR_FIELD, {})
    if meta is None or vector.get("type") != "dense_vector":
        return ["it was not created by latechunk (no _meta.latechunk or no dense_vector field 'vector')"]
    problems = []

    def compare(what: str, found: Any, expected: Any) -> None:
        if found != expected:
            problems.append(f"{what} is {found!r} in the index, {expected!r} configured")

    compare("dims", vector.get("dims"), spec.dims)
    compare("similarity", vector.get("similarity"), spec.similarity)
    found_options = vector.get("index_options", {})
    for option, expected in spec.index_options.items():
        compare(f"index_options.{option}", found_options.get(option), expected)
    compare("model_id", meta.get("model_id"), spec.model_id)
    compare("model_revision", meta.get("model_revision"), spec.model_revision)
    compare("chunking", meta.get("chunking"), _canonical(spec.chunking))
    for setting in ("window", "window_overlap"):
        if setting not in meta and getattr(spec, setting) is not None:
            problems.append(f"{setting} is not recorded in the index (it predates window recording), "
                            f"{getattr(spec, setting)!r} configured")
        else:
            compare(setting, meta.get(setting), getattr(spec, setting))
    found_late, expected_late = meta.get("late_chunking", {}), spec.late_chunking
    for setting in sorted(set(found_late) | set(expected_late)):  # what is not recorded is plain late chunking's
        plain = getattr(PLAIN, setting, None)
        compare(f"late_chunking.{setting}", found_late.get(setting, plain), expected_late.get(setting, plain))
    compare("levels", meta.get("levels", list(DEFAULT_LEVELS)), list(spec.levels))  # not recorded: chunks only
    return problems


def spec_from_mapping(name: str, mapping: dict[str, Any]) -> IndexSpec | None:
    """The spec an index was created with, or None for an index latechunk did not create."""
    meta = mapping.get("_meta", {}).get(META_KEY)
    vector = mapping.get("properties", {}).get(VECTOR_FIELD, {})
    if meta is None or vector.get("type") != "dense_vector":
        return None
    return IndexSpec(
        name=name,
        dims=vector["dims"],
        model_id=meta["model_id"],
        model_revision=meta.get("model_revision", ""),
        similarity=vector.get("similarity", "cosine"),
        index_options=dict(vector.get("index_options", meta.get("index_options", {}))),
        chunking=meta.get("chunking", {}),
        window=meta.get("window"),
        window_overlap=meta.get("window_overlap"),
        late_chunking=meta.get("late_chunking", {}),
        levels=tuple(meta.get("levels", DEFAULT_LEVELS)),
    )


def chunk_level_filter() -> dict[str, Any]:
    """A filter for chunk rows that also works on indices of chunks only, whose rows carry no `level`."""
    return {"bool": {"must_not": [{"terms": {"level": [level for level in LEVELS if level != CHUNK]}}]}}


def level_filter(level: str = CHUNK) -> dict[str, Any]:
    """A filter for the rows of one level (`latechunk.chunking.levels`)."""
    if level not in LEVELS:
        raise ValueError(f"level must be one of {LEVELS}, got {level!r}")
    return chunk_level_filter() if level == CHUNK else {"term": {"level": level}}


def _canonical(value: dict[str, Any]) -> dict[str, Any]:
    """JSON round trip, so tuples and lists (and key order) compare equal to what the index stores."""
    return json.loads(json.dumps(value, sort_keys=True))
