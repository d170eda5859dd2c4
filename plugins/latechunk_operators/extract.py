"""Extract: list new or changed objects, read them, extract their text and stage them in batches."""

from __future__ import annotations

from typing import Any

from latechunk_operators.base import LateChunkBaseOperator


class LateChunkExtractOperator(LateChunkBaseOperator):
    """List ``s3://{bucket}/{prefix}``, keep the objects that are new or changed, and stage their text.

    An object is unchanged when the index already holds its key with the same ETag; those are skipped, so a
    re-run writes nothing new. Objects that cannot be read or have no text are quarantined with a reason (see the
    run report) instead of failing the run, unless more than ``max_bad_fraction`` of them are bad. Keys that the
    index holds under the prefix but the bucket no longer does are recorded for deletion by the index task.

    Returns the staged batch paths (what the annotate and embed tasks map over) and pushes the run manifest's path
    as XCom ``manifest`` and a summary (counts, quarantine, timings) as XCom ``summary``.

    :param bucket: the document bucket. (templated)
    :param prefix: key prefix to ingest, e.g. ``incoming/{{ ds }}/``. (templated)
    :param index_name: index or alias the documents go to; used to skip unchanged objects. (templated)
    :param model: embedding model (hub id or local path), checked against an existing index. (templated)
    :param chunking: chunking parameters (``strategy``, ``chunk_size``, ...), likewise checked. (templated)
    :param select_by_last_modified: only take objects whose LastModified lies in the run's data interval.
    :param delete_missing: remove from the index the keys under ``prefix`` that the bucket no longer has.
    :param docs_per_batch: documents per staged batch (one mapped annotate/embed task per batch).
    :param max_object_bytes: larger objects are quarantined, not read.
    :param json_text_field: field holding the text in ``.json``/``.jsonl`` objects.
    :param max_bad_fraction: fail when more than this share of the selected objects is quarantined.
    :param window: the embed task's window, checked against the model and the chunking before anything is
        staged. (templated)
    :param window_overlap: the embed task's window overlap, likewise checked. (templated)
    :param elasticsearch_conn_id: Airflow connection (type ``elasticsearch``) of the search engine.
    """

    template_fields = (
        *LateChunkBaseOperator.template_fields,
        "bucket",
        "prefix",
        "index_name",
        "model",
        "chunking",
        "select_by_last_modified",
        "delete_missing",
        "docs_per_batch",
        "max_object_bytes",
        "json_text_field",
        "max_bad_fraction",
        "window",
        "window_overlap",
    )
    ui_color = "#e8f4fd"

    def __init__(
        self,
        *,
        bucket: str,
        prefix: str,
        index_name: str,
        model: str,
        chunking: dict[str, Any],
        select_by_last_modified: bool = False,
        delete_missing: bool = True,
        docs_per_batch: int = 64,
        max_object_bytes: int = 50 * 1024 * 1024,
        json_text_field: str = "text",
        max_bad_fraction: float = 0.2,
        window: int | None = None,
        window_overlap: int | None = None,
        elasticsearch_conn_id: str = "latechunk_es",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.bucket = bucket
        self.prefix = prefix
        self.index_name = index_name
        self.model = model
        self.chunking = chunking
        self.select_by_last_modified = select_by_last_modified
        self.delete_missing = delete_missing
        self.docs_per_batch = docs_per_batch
        self.max_object_bytes = max_object_bytes
        self.json_text_field = json_text_field
        self.max_bad_fraction = max_bad_fraction
        self.window = window
        self.window_overlap = window_overlap
        self.elasticsearch_conn_id = elasticsearch_conn_id

    def execute(self, context: Any) -> list[str]:
        from latechunk.pipeline import ExtractSettings, extract

        from latechunk_operators.hooks import elasticsearch_client

        interval = None
        if self.select_by_last_modified:
            interval = (context.get("data_interval_start"), context.get("data_interval_end"))
            if None in interval:
                raise ValueError(
                    "select_by_last_modified needs a data interval: use a scheduled run, a backfill, or a manual run "
                    "with a logical date"
                )
        summary = extract(
            s3=self.s3(),
            es=elasticsearch_client(self.elasticsearch_conn_id),
            area=self.staging_area(context),
            settings=ExtractSettings(
                bucket=self.bucket,
                prefix=self.prefix,
                index=self.index_name,
                model=self.model,
                chunking=dict(self.chunking),
                modified_between=interval,
                delete_missing=bool(self.delete_missing),
                docs_per_batch=int(self.docs_per_batch),
                max_object_bytes=int(self.max_object_bytes),
                json_text_field=self.json_text_field,
                max_bad_fraction=float(self.max_bad_fraction),
                window=int(self.window) if self.window else None,
                window_overlap=int(self.window_overlap) if self.window_overlap is not None else None,
            ),
        )
        batches = summary.pop("batches")
        context["ti"].xcom_push(key="manifest", value=summary["manifest"])
        context["ti"].xcom_push(key="summary", value=summary)
        return batches
