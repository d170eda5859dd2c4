"""Run-scoped staging of pipeline batches as Parquet in object storage, over a boto3 S3 client.

Layout: `s3://<bucket>/<prefix>/<dag_id>/<run_id>/<stage>/batch-00000.parquet`, plus small JSON files (manifests,
reports) beside the stage folders. Tasks pass these `s3://` URIs through XCom, never the data.

A batch is written with one PUT to a path fixed by (run, stage, batch index), so a retried task overwrites its own
output instead of adding to it, and a reader never sees a half-written batch. A retry that produces fewer batches
than the failed attempt leaves the extra files behind: read the batch URIs a task returned (or a manifest), not a
listing, when that matters.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from latechunk.chunking.spans import AnnotatedDocument, ChunkSpan
from latechunk.sources.documents import Document, EmbeddedChunk
from latechunk.sources.structure import DocumentStructure

STAGE_DOCUMENTS = "documents"
STAGE_SPANS = "spans"
STAGE_CHUNKS = "chunks"

STAGE_KEY = b"latechunk.stage"
# Footer entry of a spans batch: the documents the annotate stage failed on, {doc_id: reason} as JSON.
ANNOTATE_FAILURES_KEY = b"latechunk.annotate_failures"
_UNSAFE_PATH_CHARS = re.compile(r"[^A-Za-z0-9._=-]")

_DOCUMENT_FIELDS = [
    pa.field("doc_id", pa.string(), nullable=False),
    pa.field("bucket", pa.string(), nullable=False),
    pa.field("key", pa.string(), nullable=False),
    pa.field("part", pa.string(), nullable=False),
    pa.field("etag", pa.string(), nullable=False),
    pa.field("content_type", pa.string(), nullable=False),
    pa.field("text", pa.large_string(), nullable=False),
    pa.field("metadata", pa.string(), nullable=False),
    # `DocumentStructure.to_json`, "" for none; absent from batches staged before structures existed.
    pa.field("structure", pa.large_string(), nullable=False),
]
_SPAN_TYPE = pa.struct(
    [
        pa.field("chunk_id", pa.int32(), nullable=False),
        pa.field("token_start", pa.int32(), nullable=False),
        pa.field("token_end", pa.int32(), nullable=False),
        pa.field("char_start", pa.int32(), nullable=False),
        pa.field("char_end", pa.int32(), nullable=False),
        pa.field("text", pa.large_string(), nullable=False),
    ]
)
_CHUNK_FIELDS = [
    pa.field("doc_id", pa.string(), nullable=False),
    pa.field("bucket", pa.string(), nullable=False),
    pa.field("key", pa.string(), nullable=False),
    pa.field("part", pa.string(), nullable=False),
    pa.field("etag", pa.string(), nullable=False),
    pa.field("chunk_id", pa.int32(), nullable=False),
    pa.field("n_chunks", pa.int32(), nullable=False),
    pa.field("text", pa.large_string(), nullable=False),
    pa.field("char_start", pa.int32(), nullable=False),
    pa.field("char_end", pa.int32(), nullable=False),
    pa.field("token_start", pa.int32(), nullable=False),
    pa.field("token_end", pa.int32(), nullable=False),
    pa.field("model_id", pa.string(), nullable=False),
    pa.field("metadata", pa.string(), nullable=False),
    # Absent from batches staged before sections and pages existed.
    pa.field("section", pa.list_(pa.string()), nullable=False),
    pa.field("page_start", pa.int32()),
    pa.field("page_end", pa.int32()),
    # Absent from batches staged before levels existed; null in a run of chunks only (`EmbeddedChunk.level`).
    pa.field("level", pa.string()),
    pa.field("section_id", pa.string()),
]
_SPAN_NAMES = [field.name for field in _SPAN_TYPE]
# The annotated documents keep their token ids: the embed stage encodes them as they are, never tokenizing again.
ANNOTATED_SCHEMA = pa.schema(
    [
        *_DOCUMENT_FIELDS,
        pa.field("spans", pa.list_(_SPAN_TYPE), nullable=False),
        pa.field("input_ids", pa.list_(pa.int32()), nullable=False),
    ]
)
_CHUNK_SCALARS = [field.name for field in _CHUNK_FIELDS]


@dataclass(frozen=True)
class StagingArea:
    """The staging folder of one DAG run."""

    bucket: str
    prefix: str
    dag_id: str
    run_id: str

    @property
    def root(self) -> str:
        # Run ids such as "scheduled__2026-11-24T00:00:00+00:00" carry ':' and '+', awkward in keys and URLs.
        segments = [self.prefix.strip("/"), self.dag_id, self.run_id]
        return "/".join(_UNSAFE_PATH_CHARS.sub("_", segment) for segment in segments if segment)

    def key(self, name: str) -> str:
        return f"{self.root}/{name}"

    def dag_key(self, name: str) -> str:
        """A key beside the DAG's run folders, shared by all its runs (e.g. the objects pending a retry)."""
        return f"{self.root.rpartition('/')[0]}/{_UNSAFE_PATH_CHARS.sub('_', name)}"

    def batch_key(self, stage: str, batch_index: int) -> str:
        return self.key(f"{stage}/batch-{batch_index:05d}.parquet")

    def uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"


def parse_s3_uri(uri: str) -> tuple[str, str]:
    if not uri.startswith("s3://") or "/" not in uri[5:]:
        raise ValueError(f"not an s3://bucket/key URI: {uri!r}")
    bucket, key = uri[5:].split("/", 1)
    return bucket, key


def write_documents(client, area: StagingArea, batch_index: int, documents: Iterable[Document]) -> str:
    table = pa.table(_document_columns(list(documents)), schema=pa.schema(_DOCUMENT_FIELDS))
    return _put_table(client, area, STAGE_DOCUMENTS, batch_index, table)


def read_documents(client, uri: str) -> list[Document]:
    return [document_from_row(row) for row in _get_table(client, uri, STAGE_DOCUMENTS).to_pylist()]


def read_object_etags(client, uri: str) -> dict[str, str]:
    """key -> ETag of the objects whose documents a staged batch holds, in the batch's order; without the texts."""
    table = _get_table(client, uri, STAGE_DOCUMENTS, columns=["key", "etag"])
    return dict(zip(table.column("key").to_pylist(), table.column("etag").to_pylist(), strict=True))


def write_annotated(
    client, area: StagingArea, batch_index: int, annotated: Iterable[tuple[Document, AnnotatedDocument]]
) -> str:
    """Stage documents with their token ids and the chunk spans annotated on them: one row per document."""
    return _put_table(client, area, STAGE_SPANS, batch_index, annotated_table(list(annotated)))


def annotated_table(annotated: Sequence[tuple[Document, AnnotatedDocument]]) -> pa.Table:
    columns = _document_columns([document for document, _ in annotated])
    columns["spans"] = [
        [{name: getattr(span, name) for name in _SPAN_NAMES} for span in doc.spans] for _, doc in annotated
    ]
    columns["input_ids"] = [doc.input_ids for _, doc in annotated]
    return pa.table(columns, schema=ANNOTATED_SCHEMA)


def read_annotated(client, uri: str) -> list[tuple[Document, AnnotatedDocument]]:
    """Documents with their token ids and spans (`latechunk.chunking.spans.AnnotatedDocument`)."""
    return [annotated_from_row(row) for row in _get_table(client, uri, STAGE_SPANS).to_pylist()]


def annotated_from_row(row: dict[str, Any]) -> tuple[Document, AnnotatedDocument]:
    spans = [ChunkSpan(**span) for span in row.pop("spans")]
    input_ids = row.pop("input_ids")
    return document_from_row(row), AnnotatedDocument(input_ids, spans)


def span_counts(client, uri: str) -> tuple[dict[str, int], dict[str, str]]:
    """doc_id -> number of chunk spans of an annotated batch, read without its texts and token ids; and doc_id ->
    reason of the documents the annotate stage failed on (recorded in the footer, `ANNOTATE_FAILURES_KEY`)."""
    bucket, key = parse_s3_uri(uri)
    parquet = pq.ParquetFile(pa.BufferReader(client.get_object(Bucket=bucket, Key=key)["Body"].read()))
    table = parquet.read(columns=["doc_id", "spans"])
    check_stage(table.schema, uri, STAGE_SPANS)
    counts = pc.list_value_length(table.column("spans")).to_pylist()
    failures = json.loads((parquet.metadata.metadata or {}).get(ANNOTATE_FAILURES_KEY, b"{}"))
    return dict(zip(table.column("doc_id").to_pylist(), counts, strict=True)), failures


def write_chunks(
    client, area: StagingArea, batch_index: int, chunks: Sequence[EmbeddedChunk], *, dims: int | None = None
) -> str:
    """Stage embedded chunks; vectors become a fixed-size list<float32> column of `dims` (inferred) entries."""
    if dims is None:
        dims = int(chunks[0].vector.shape[-1]) if chunks else 0
    return _put_table(client, area, STAGE_CHUNKS, batch_index, chunk_table(chunks, dims))


def chunk_schema(dims: int) -> pa.Schema:
    return pa.schema([*_CHUNK_FIELDS, pa.field("vector", pa.list_(pa.float32(), dims), nullable=False)])


def chunk_table(chunks: Sequence[EmbeddedChunk], dims: int) -> pa.Table:
    matrix = np.zeros((0, dims), np.float32)
    if chunks:
        matrix = np.stack([np.asarray(chunk.vector, dtype=np.float32) for chunk in chunks])
    if matrix.shape[1] != dims:
        raise ValueError(f"vectors have {matrix.shape[1]} dimensions, expected {dims}")
    columns: dict[str, Any] = {name: [getattr(chunk, name) for chunk in chunks] for name in _CHUNK_SCALARS}
    columns["metadata"] = [_dump_metadata(chunk.metadata) for chunk in chunks]
    columns["vector"] = pa.FixedSizeListArray.from_arrays(pa.array(matrix.ravel(), pa.float32()), dims)
    return pa.table(columns, schema=chunk_schema(dims))


def read_chunks(client, uri: str) -> list[EmbeddedChunk]:
    """Embedded chunks of a batch; their vectors are rows of one float32 matrix."""
    return chunks_from_table(_get_table(client, uri, STAGE_CHUNKS))


def chunks_from_table(table: pa.Table) -> list[EmbeddedChunk]:
    vector_type = table.schema.field("vector").type
    vectors = table.column("vector").combine_chunks()
    matrix = vectors.flatten().to_numpy(zero_copy_only=False).reshape(len(table), vector_type.list_size)
    rows = table.select([name for name in _CHUNK_SCALARS if name in table.schema.names]).to_pylist()
    return [
        EmbeddedChunk(**{**row, "metadata": json.loads(row["metadata"])}, vector=vector)
        for row, vector in zip(rows, matrix, strict=True)
    ]


def list_batches(client, area: StagingArea, stage: str) -> list[str]:
    """URIs of the batches staged for a stage, in batch order."""
    prefix = area.key(f"{stage}/batch-")
    return [area.uri(key) for key in sorted(_list_keys(client, area.bucket, prefix))]


def write_json(client, area: StagingArea, name: str, payload: Any) -> str:
    """Stage a small JSON document (a manifest, a report) under the run's folder; returns its URI."""
    key = area.key(name)
    body = json.dumps(payload, ensure_ascii=False, indent=2, default=str).encode("utf-8")
    client.put_object(Bucket=area.bucket, Key=key, Body=body, ContentType="application/json")
    return area.uri(key)


def read_json(client, uri: str) -> Any:
    bucket, key = parse_s3_uri(uri)
    return json.loads(client.get_object(Bucket=bucket, Key=key)["Body"].read())


def delete_run(client, area: StagingArea) -> int:
    """Remove everything staged for the run; returns the number of objects deleted."""
    keys = list(_list_keys(client, area.bucket, area.root + "/"))
    for start in range(0, len(keys), 1000):
        objects = [{"Key": key} for key in keys[start : start + 1000]]
        client.delete_objects(Bucket=area.bucket, Delete={"Objects": objects, "Quiet": True})
    return len(keys)


def _document_columns(documents: Sequence[Document]) -> dict[str, list[Any]]:
    columns = {field.name: [getattr(doc, field.name) for doc in documents] for field in _DOCUMENT_FIELDS}
    columns["metadata"] = [_dump_metadata(doc.metadata) for doc in documents]
    columns["structure"] = [doc.structure.to_json() for doc in documents]
    return columns


def _dump_metadata(metadata: dict[str, Any]) -> str:
    return json.dumps(metadata, ensure_ascii=False, default=str)


def document_from_row(row: dict[str, Any]) -> Document:
    structure = DocumentStructure.from_json(row.get("structure"))
    return Document(**{**row, "metadata": json.loads(row["metadata"]), "structure": structure})


def with_stage(schema: pa.Schema, stage: str) -> pa.Schema:
    """The schema marked as a batch of ``stage``; a reader refuses a batch of another stage."""
    return schema.with_metadata({**(schema.metadata or {}), STAGE_KEY: stage.encode()})


def check_stage(schema: pa.Schema, uri: str, stage: str) -> None:
    found = (schema.metadata or {}).get(STAGE_KEY, b"").decode()
    if found != stage:
        raise ValueError(f"{uri} holds a {found or 'foreign'!r} batch, expected {stage!r}")


def _put_table(client, area: StagingArea, stage: str, batch_index: int, table: pa.Table) -> str:
    table = table.replace_schema_metadata(with_stage(table.schema, stage).metadata)
    buffer = io.BytesIO()
    pq.write_table(table, buffer, compression="zstd")
    key = area.batch_key(stage, batch_index)
    client.put_object(Bucket=area.bucket, Key=key, Body=buffer.getvalue())
    return area.uri(key)


def _get_table(client, uri: str, stage: str, columns: list[str] | None = None) -> pa.Table:
    bucket, key = parse_s3_uri(uri)
    body = client.get_object(Bucket=bucket, Key=key)["Body"].read()
    table = pq.read_table(pa.BufferReader(body), columns=columns)
    check_stage(table.schema, uri, stage)
    return table


def _list_keys(client, bucket: str, prefix: str) -> Iterable[str]:
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            yield item["Key"]
