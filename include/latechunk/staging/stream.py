"""Staged batches read and written piece by piece, so that a task's memory is bounded by a piece, not by its batch.

A batch is spooled to a local temporary file (the object store's body is never held in memory) and read one record
batch of Parquet at a time; a batch being written gets one Parquet row group per `StagedWriter.write` into a local
spool, uploaded when the writer closes. The upload is a single PUT, or a multipart upload that the store completes
atomically, at the same key as `latechunk.staging.tables` writes, so readers never see a partial batch and a retried
task
overwrites its own output.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from latechunk.sources.documents import EmbeddedChunk
from latechunk.staging.tables import STAGE_CHUNKS, StagingArea, check_stage, chunks_from_table, parse_s3_uri, with_stage

# Key of the Parquet footer entry in which a spans batch records its documents' token count (for the embed ETA).
TOKENS_KEY = b"latechunk.tokens"
# ... and the model whose tokenizer gave its token ids (`latechunk.pipeline.embed.tokenizer_identity`).
TOKENIZER_KEY = b"latechunk.tokenizer"
# Key of the entry in which a chunks batch records the dtype its vectors were encoded in (for the exact check).
ENCODER_DTYPE_KEY = b"latechunk.encoder_dtype"


class StagedReader:
    """A staged batch spooled from the object store: its row count, footer metadata and rows, piece by piece."""

    def __init__(self, client, uri: str, stage: str) -> None:
        bucket, key = parse_s3_uri(uri)
        self._spool = tempfile.TemporaryFile(prefix="latechunk-staged-")
        try:
            client.download_fileobj(bucket, key, self._spool)
            self._spool.seek(0)
            self._file = pq.ParquetFile(self._spool)
            check_stage(self._file.schema_arrow, uri, stage)
        except BaseException:
            self._spool.close()
            raise

    @property
    def rows(self) -> int:
        return self._file.metadata.num_rows

    @property
    def metadata(self) -> dict[bytes, bytes]:
        return self._file.metadata.metadata or {}

    def iter_batches(self, rows_per_read: int = 256) -> Iterator[list[dict[str, Any]]]:
        """The rows, ``rows_per_read`` at a time."""
        for table in self.iter_tables(rows_per_read):
            yield table.to_pylist()

    def iter_tables(self, rows_per_read: int = 256) -> Iterator[pa.Table]:
        for batch in self._file.iter_batches(batch_size=rows_per_read):
            yield pa.Table.from_batches([batch])

    def iter_rows(self, rows_per_read: int = 256) -> Iterator[dict[str, Any]]:
        for rows in self.iter_batches(rows_per_read):
            yield from rows

    def close(self) -> None:
        self._file.close()
        self._spool.close()

    def __enter__(self) -> StagedReader:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def iter_chunks(client, uri: str, rows_per_read: int = 256) -> Iterator[EmbeddedChunk]:
    """The embedded chunks of a staged batch, ``rows_per_read`` at a time (its vectors are never all in memory)."""
    with StagedReader(client, uri, STAGE_CHUNKS) as reader:
        for table in reader.iter_tables(rows_per_read):
            yield from chunks_from_table(table)


class StagedWriter:
    """Writes a stage's batch one row group at a time; uploads it on a clean exit, discards it on an error."""

    def __init__(self, client, area: StagingArea, stage: str, batch_index: int, schema: pa.Schema) -> None:
        self._client, self._bucket = client, area.bucket
        self._key = area.batch_key(stage, batch_index)
        self.uri = area.uri(self._key)
        self._schema = with_stage(schema, stage)
        self._spool = tempfile.TemporaryFile(prefix="latechunk-staging-")
        self._writer = pq.ParquetWriter(self._spool, self._schema, compression="zstd")
        self.rows = 0

    def write(self, table: pa.Table) -> None:
        """One row group (nothing for an empty table)."""
        if table.num_rows:
            self._writer.write_table(table.cast(self._schema))
            self.rows += table.num_rows

    def add_metadata(self, metadata: dict[bytes, bytes]) -> None:
        """Footer key-values known only at the end (e.g. the batch's token count)."""
        self._writer.add_key_value_metadata(metadata)

    def __enter__(self) -> StagedWriter:
        return self

    def __exit__(self, exc_type, *exc_info: object) -> None:
        try:
            self._writer.close()
            if exc_type is None:
                self._spool.seek(0)
                self._client.upload_fileobj(self._spool, self._bucket, self._key)
        finally:
            self._spool.close()
