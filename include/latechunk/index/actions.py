"""Bulk actions (chunks, tombstones) and the query clauses that find stale chunks, for `latechunk.index.elasticsearch`.

User metadata (JSON records' other fields, HTML meta tags) is stored in `metadata`, an object the mapping does not
index (`enabled: false`): the engine keeps it in `_source` without mapping it, so no value, type or mix of types
across documents can conflict with a mapping. What can still break a write is the JSON itself: orjson refuses
integers beyond 64 bits, nesting beyond 255 levels and strings with lone surrogates, and the engine's parser refuses
numbers of more than 1,000 digits and nesting beyond 1,000 levels. `safe_metadata` makes any metadata writable:
such integers become strings, NaN and infinities null, what lies deeper than `MAX_METADATA_DEPTH` is dropped, and
the whole is bounded to `MAX_METADATA_BYTES` (every chunk of a document repeats it).
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

import numpy as np
import orjson

from latechunk.index.backend import Tombstone
from latechunk.index.spec import TOMBSTONE_CHUNK_ID, VECTOR_FIELD
from latechunk.sources.documents import EmbeddedChunk

MAX_METADATA_DEPTH = 32
MAX_METADATA_BYTES = 16 * 1024
TRUNCATED = "_truncated"  # set in metadata that lost entries to the size bound
_INT64 = (-(2**63), 2**64 - 1)  # orjson writes signed and unsigned 64-bit integers


def safe_metadata(metadata: dict[str, Any]) -> dict[str, Any]:
    """`metadata` as a value every write accepts (see the module docstring); top-level entries that do not fit in
    `MAX_METADATA_BYTES` are left out, in order, and `_truncated` says so."""
    cleaned = _clean(metadata, 1)
    if not isinstance(cleaned, dict):
        return {}
    kept: dict[str, Any] = {}
    size = 2
    for name, value in cleaned.items():
        entry = len(orjson.dumps({name: value})) - 1
        if size + entry > MAX_METADATA_BYTES:
            kept[TRUNCATED] = True
            continue
        kept[name] = value
        size += entry
    return kept


def _clean(value: Any, depth: int) -> Any:
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        return value if _INT64[0] <= value <= _INT64[1] else str(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, str):
        return _text(value)
    if depth > MAX_METADATA_DEPTH:
        return None
    if isinstance(value, dict):
        return {_text(str(name)): _clean(item, depth + 1) for name, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(item, depth + 1) for item in value]
    return _text(str(value))


def _text(value: str) -> str:
    """The string with any lone surrogate (which UTF-8 cannot encode) replaced."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return value.encode("utf-8", "replace").decode("utf-8")
    return value


def chunk_action(
    index: str, chunk: EmbeddedChunk, indexed_at: datetime, *, object_records: int, metadata: dict[str, Any]
) -> dict[str, Any]:
    """A bulk `index` action whose source is already serialised (orjson writes float32 vectors compactly).

    `metadata` is the chunk's metadata made safe (`safe_metadata`); `object_records` is the
    number of records of the chunk's whole object (see `latechunk.index.spec`). Raises `orjson.JSONEncodeError`
    for a chunk that cannot be serialised (e.g. a text with a lone surrogate).
    """
    source = {
        "doc_id": chunk.doc_id,
        "bucket": chunk.bucket,
        "key": chunk.key,
        "part": chunk.part,
        "etag": chunk.etag,
        "chunk_id": chunk.chunk_id,
        "n_chunks": chunk.n_chunks,
        "object_records": object_records,
        "text": chunk.text,
        "char_start": chunk.char_start,
        "char_end": chunk.char_end,
        "char_start_utf16": chunk.char_start_utf16,
        "char_end_utf16": chunk.char_end_utf16,
        "token_start": chunk.token_start,
        "token_end": chunk.token_end,
        "section": [_text(title) for title in chunk.section],
        "page_start": chunk.page_start,
        "page_end": chunk.page_end,
        **({"level": chunk.level} if chunk.level is not None else {}),
        **({"section_id": chunk.section_id} if chunk.section_id is not None else {}),
        VECTOR_FIELD: np.ascontiguousarray(chunk.vector, dtype=np.float32),
        "model_id": chunk.model_id,
        "metadata": metadata,
        "indexed_at": indexed_at,
    }
    body = orjson.dumps(source, option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NAIVE_UTC, default=str)
    return {"_op_type": "index", "_index": index, "_id": chunk.es_id, "_source": body}


def tombstone_action(
    index: str, tombstone: Tombstone, model_id: str, indexed_at: datetime, *, object_records: int
) -> dict[str, Any]:
    source = {
        "doc_id": tombstone.doc_id,
        "bucket": tombstone.bucket,
        "key": tombstone.key,
        "part": tombstone.part,
        "etag": tombstone.etag,
        "chunk_id": TOMBSTONE_CHUNK_ID,
        "n_chunks": 0,
        "object_records": object_records,
        "model_id": model_id,
        "metadata": {"tombstone": _text(tombstone.reason)},
        "indexed_at": indexed_at,
    }
    body = orjson.dumps(source, option=orjson.OPT_NAIVE_UTC, default=str)
    return {"_op_type": "index", "_index": index, "_id": f"{tombstone.doc_id}:{TOMBSTONE_CHUNK_ID}", "_source": body}


def other_version_clause(doc_id: str, etag: str, n_chunks: int) -> dict[str, Any]:
    """Chunks of the document that belong to any version but (etag, n_chunks): stale once that one is written."""
    current = {"bool": {"filter": [{"term": {"etag": etag}}, {"term": {"n_chunks": n_chunks}}]}}
    return {"bool": {"filter": [{"term": {"doc_id": doc_id}}], "must_not": [current]}}


def superseded_clause(bucket: str, key: str, etag: str) -> dict[str, Any]:
    """Chunks of an object (any of its parts) from another ETag than the current one."""
    return {
        "bool": {
            "filter": [{"term": {"bucket": bucket}}, {"term": {"key": key}}],
            "must_not": [{"term": {"etag": etag}}],
        }
    }
