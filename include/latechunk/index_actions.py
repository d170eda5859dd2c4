"""Bulk actions (chunks, tombstones) and the query clauses that find stale chunks, for `latechunk.index`."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import numpy as np
import orjson

from latechunk.documents import EmbeddedChunk
from latechunk.index_mapping import TOMBSTONE_CHUNK_ID, VECTOR_FIELD, Tombstone


def chunk_action(index: str, chunk: EmbeddedChunk, indexed_at: datetime) -> dict[str, Any]:
    """A bulk `index` action whose source is already serialised (orjson writes float32 vectors compactly)."""
    source = {
        "doc_id": chunk.doc_id,
        "bucket": chunk.bucket,
        "key": chunk.key,
        "part": chunk.part,
        "etag": chunk.etag,
        "chunk_id": chunk.chunk_id,
        "n_chunks": chunk.n_chunks,
        "text": chunk.text,
        "char_start": chunk.char_start,
        "char_end": chunk.char_end,
        "char_start_utf16": chunk.char_start_utf16,
        "char_end_utf16": chunk.char_end_utf16,
        "token_start": chunk.token_start,
        "token_end": chunk.token_end,
        VECTOR_FIELD: np.ascontiguousarray(chunk.vector, dtype=np.float32),
        "model_id": chunk.model_id,
        "metadata": chunk.metadata,
        "indexed_at": indexed_at,
    }
    body = orjson.dumps(source, option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NAIVE_UTC, default=str)
    return {"_op_type": "index", "_index": index, "_id": chunk.es_id, "_source": body}


def tombstone_action(index: str, tombstone: Tombstone, model_id: str, indexed_at: datetime) -> dict[str, Any]:
    source = {
        "doc_id": tombstone.doc_id,
        "bucket": tombstone.bucket,
        "key": tombstone.key,
        "part": tombstone.part,
        "etag": tombstone.etag,
        "chunk_id": TOMBSTONE_CHUNK_ID,
        "n_chunks": 0,
        "model_id": model_id,
        "metadata": {"tombstone": tombstone.reason},
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
