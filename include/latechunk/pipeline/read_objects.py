"""Reading one listed object: fetched at the listed version (``IfMatch``), parsed into documents, or quarantined
with a reason; the races with a writer (deleted or changed between list and get) are told apart from bad input."""

from __future__ import annotations

from typing import TYPE_CHECKING

from latechunk.sources.documents import (
    Document,
    Limits,
    QuarantineEntry,
    SkipDocument,
    SourceObject,
    check_key,
    check_size,
    load_documents,
)

if TYPE_CHECKING:
    from latechunk.pipeline.extract import ExtractSettings

# Objects that vanished or changed between listing and reading: not bad input, just a race with the writer.
RACE_DELETED = "deleted_before_read"
RACE_CHANGED = "changed_before_read"
# Objects fetched concurrently (GETs are round trips; a bucket of small objects is bound by their latency).
READER_THREADS = 8
# Bodies fetched ahead of the parser and not yet parsed, in bytes (their listed sizes) and in objects: what extract
# holds besides the object it parses (which `max_object_bytes` bounds), however large the objects are.
READ_AHEAD_BYTES = 256 * 1024 * 1024
READ_AHEAD_OBJECTS = 32


def is_folder_marker(obj: SourceObject) -> bool:
    """An empty object whose key ends in "/", as consoles create for a folder: reported, but not a bad object (a
    folder made by hand in every day's folder would otherwise count against ``max_bad_fraction``)."""
    return obj.key.endswith("/") and obj.size == 0


def skipped_by_race(skipped: list[QuarantineEntry]) -> bool:
    """Whether an object was not read because a writer deleted or changed it meanwhile: not bad input."""
    return any(entry.reason in (RACE_DELETED, RACE_CHANGED) for entry in skipped)


def fetch_object(s3, obj: SourceObject, settings: ExtractSettings) -> bytes | list[QuarantineEntry]:
    """The object's bytes, or its quarantine record. Only S3 errors other than the races with a writer raise (for
    Airflow to retry). Runs in reader threads: fetching is I/O, parsing stays on the task's thread (its time
    budget is measured there)."""
    try:
        check_key(obj.key)
        check_size(obj.size, settings.max_object_bytes)
    except SkipDocument as skip:
        return [QuarantineEntry(obj.key, obj.etag, skip.reason.value, skip.detail)]
    try:
        return s3.get_object(Bucket=obj.bucket, Key=obj.key, IfMatch=f'"{obj.etag}"')["Body"].read()
    except s3.exceptions.NoSuchKey:
        return [QuarantineEntry(obj.key, obj.etag, RACE_DELETED, "object deleted between list and get")]
    except s3.exceptions.ClientError as error:
        if error.response.get("Error", {}).get("Code") == "PreconditionFailed":
            return [QuarantineEntry(obj.key, obj.etag, RACE_CHANGED, "object changed between list and get")]
        raise


def parse_object(
    obj: SourceObject, body: bytes | list[QuarantineEntry], settings: ExtractSettings
) -> tuple[list[Document], list[QuarantineEntry]]:
    """The documents of one fetched object and its quarantine records: whatever the object holds,
    `load_documents` turns a failure into a record."""
    if isinstance(body, list):
        return [], body
    limits = Limits(
        max_depth=settings.max_nesting_depth,
        max_parts=settings.max_parts_per_object,
        time_budget_s=settings.max_extract_seconds,
        max_pdf_page_bytes=settings.max_pdf_page_bytes,
        max_pdf_bytes=settings.max_pdf_bytes,
        max_unzipped_bytes=settings.max_unzipped_bytes,
    )
    return load_documents(
        obj, body, json_text_field=settings.json_text_field, max_bytes=settings.max_object_bytes, limits=limits
    )
