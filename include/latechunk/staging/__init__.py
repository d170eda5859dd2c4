"""Run-scoped staging of batches between tasks: Parquet tables in object storage, streamed, planned, prefetched."""
