"""Extract: list new or changed objects, read them, extract their text and stage them in batches."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from latechunk_operators.base import LateChunkBaseOperator
from latechunk_operators.links import QuarantineLink, RunReportLink

# The per-object limits extract took as separate arguments before `limits` (ExtractSettings fields).
LIMIT_ARGUMENTS = (
    "max_nesting_depth", "max_parts_per_object", "max_extract_seconds", "max_pdf_page_bytes", "max_pdf_bytes",
)


class LateChunkExtractOperator(LateChunkBaseOperator):
    """List ``s3://{bucket}/{prefix}``, keep the objects that are new or changed, and stage their text.

    An object is unchanged when the index already holds its key with the same ETag; those are skipped, so a
    re-run writes nothing new. Objects that cannot be read or have no text are quarantined with a reason (see the
    run report) instead of failing the run, unless more than ``max_bad_fraction`` of them are bad. Keys that the
    index holds under the prefix but the bucket no longer does are recorded for deletion by the index task.

    Returns the staged batch paths (what the annotate and embed tasks map over) and pushes the run manifest's path
    as XCom ``manifest`` and a summary (counts, quarantine, timings) as XCom ``summary``.

    :param bucket: the document bucket. (templated)
    :param prefix: key prefix of the documents, e.g. ``incoming/``: deleted objects are looked for under all of
        it. (templated)
    :param partition_by_date: read only the date folders ``<prefix><YYYY-MM-DD>/`` of the run's data interval
        (the day that just ended, for the daily schedule). (templated)
    :param lookback_days: with ``partition_by_date``, also read this many earlier day folders, for objects that
        arrive late; unchanged ones are skipped by ETag, so this costs listings, not work. Objects of any other
        folder written (LastModified) in the interval or these days are read too. (templated)
    :param index_name: index or alias the documents go to; used to skip unchanged objects. (templated)
    :param model: embedding model (hub id or local path), checked against an existing index. (templated)
    :param chunking: chunking parameters (``strategy``, ``chunk_size``, ...), likewise checked. (templated)
    :param select_by_last_modified: only take objects whose LastModified lies in the run's data interval.
    :param delete_missing: remove from the index the keys under ``prefix`` (all of it, not only the run's
        folders) that the bucket no longer has.
    :param batch_token_budget: estimated tokens per staged batch, i.e. per mapped annotate and embed task (text
        length / 4; see ``latechunk.staging.batch_plan``). (templated)
    :param docs_per_batch: most documents per staged batch, whatever their tokens. (templated)
    :param max_object_bytes: larger objects are quarantined, not read.
    :param json_text_field: field holding the text in ``.json``/``.jsonl`` objects.
    :param max_bad_fraction: fail when more than this share of the selected objects is quarantined.
    :param limits: per-object extraction limits, by param name (the fields of ``ExtractSettings``):
        ``max_nesting_depth`` (a ``.json``/``.jsonl`` object or line nested deeper is quarantined),
        ``max_parts_per_object`` (a ``.json`` list or ``.jsonl`` file with more records is quarantined whole),
        ``max_extract_seconds`` (an object whose extraction takes longer is quarantined; checked between steps:
        JSON records, HTML tags, PDF pages and operators; a PDF's parser process is killed at the deadline),
        ``max_pdf_page_bytes`` and ``max_pdf_bytes`` (a PDF with a page, or pages in all, that draw more decoded
        content is quarantined), ``max_unzipped_bytes`` (a DOCX or PPTX file whose zip members would unzip to more
        bytes is quarantined). Also accepted as separate arguments, as DAG files of earlier versions pass them.
        (templated)
    :param window: the embed task's window, checked against the model and the chunking before anything is
        staged. (templated)
    :param window_overlap: the embed task's window overlap, likewise checked. (templated)
    :param late_chunking: the embed task's late-chunking settings (``LateChunkingConfig`` fields), checked and
        recorded with the index and in the run manifest, which annotate and embed follow. (templated)
    :param levels: the levels indexed, comma-separated (``chunk``, ``section``, ``document``; chunks only by
        default), recorded with the index (when not chunks only) and in the run manifest, which embed and validate
        follow. (templated)
    :param probes: the validate task's probe queries, checked here so that a malformed one fails the run before
        anything is staged. (templated)
    :param extract_shards: the most key ranges the prefix is split into (`latechunk.pipeline.shards`) by the
        operators of `latechunk_operators.extract_shards`, which map one ``extract_shard`` task over each; this
        operator reads the whole prefix in one range. (templated)
    :param objects_per_shard: a key range per this many objects the index holds, up to ``extract_shards``.
        (templated)
    :param elasticsearch_conn_id: Airflow connection (type ``elasticsearch``) of the search engine.
    :param from_events: read only the keys named by the run's triggering asset events (object-storage
        notifications, see `latechunk_operators.events`), each by its current state, instead of listing; events
        outside ``bucket``/``prefix``, of another kind or malformed are counted and logged, never read.

    A run never stages more batches than Airflow's ``[core] max_map_length`` (it refuses to map more): when the
    new documents need more, each batch grows to an equal share of them instead of the run failing.
    """

    template_fields = (
        *LateChunkBaseOperator.template_fields,
        "bucket",
        "prefix",
        "partition_by_date",
        "lookback_days",
        "index_name",
        "model",
        "chunking",
        "select_by_last_modified",
        "delete_missing",
        "batch_token_budget",
        "docs_per_batch",
        "max_object_bytes",
        "json_text_field",
        "max_bad_fraction",
        "limits",
        "window",
        "window_overlap",
        "probes",
        "late_chunking",
        "levels",
        "extract_shards",
        "objects_per_shard",
    )
    ui_color = "#e8f4fd"
    operator_extra_links = (QuarantineLink(), RunReportLink())

    def __init__(
        self,
        *,
        bucket: str,
        prefix: str,
        index_name: str,
        partition_by_date: bool = False,
        lookback_days: int = 0,
        model: str,
        chunking: dict[str, Any],
        select_by_last_modified: bool = False,
        delete_missing: bool | None = None,
        batch_token_budget: int | None = None,
        docs_per_batch: int | None = None,
        max_object_bytes: int | None = None,
        json_text_field: str | None = None,
        max_bad_fraction: float | None = None,
        limits: dict[str, Any] | None = None,
        window: int | None = None,
        window_overlap: int | None = None,
        probes: str | list[Any] | None = None,
        late_chunking: dict[str, Any] | None = None,
        levels: str | None = None,
        elasticsearch_conn_id: str = "latechunk_es",
        from_events: bool = False,
        extract_shards: int | None = None,
        objects_per_shard: int | None = None,
        **kwargs: Any,
    ) -> None:
        separate = {name: kwargs.pop(name) for name in LIMIT_ARGUMENTS if name in kwargs}
        super().__init__(**kwargs)
        self.bucket = bucket
        self.prefix = prefix
        self.partition_by_date = partition_by_date
        self.lookback_days = lookback_days
        self.index_name = index_name
        self.model = model
        self.chunking = chunking
        self.select_by_last_modified = select_by_last_modified
        self.delete_missing = delete_missing
        self.batch_token_budget = batch_token_budget
        self.docs_per_batch = docs_per_batch
        self.max_object_bytes = max_object_bytes
        self.json_text_field = json_text_field
        self.max_bad_fraction = max_bad_fraction
        self.limits = {**separate, **(limits or {})}
        self.window = window
        self.window_overlap = window_overlap
        self.probes = probes
        self.late_chunking = late_chunking
        self.levels = levels
        self.elasticsearch_conn_id = elasticsearch_conn_id
        self.from_events = from_events
        self.extract_shards = extract_shards
        self.objects_per_shard = objects_per_shard

    def execute(self, context: Any) -> list[str]:
        from airflow.sdk.exceptions import AirflowFailException
        from latechunk.index.spec import IndexMismatchError
        from latechunk.pipeline.extract import TooManyBadDocuments

        try:
            return self._extract(context)
        except (ValueError, IndexMismatchError, TooManyBadDocuments) as error:
            # Bad settings or bad data: a retry would fail the same way, so fail now, with the reason.
            raise AirflowFailException(f"{type(error).__name__}: {error}") from error

    def _extract(self, context: Any) -> list[str]:
        from dataclasses import replace

        from latechunk.pipeline.extract import extract

        from latechunk_operators.hooks import elasticsearch_client

        settings, events = self.extract_settings(context)
        summary = extract(
            s3=self.s3(),
            es=elasticsearch_client(self.elasticsearch_conn_id),
            area=self.staging_area(context),
            settings=replace(settings, max_shards=1),  # ranges read one after the other would gain nothing
        )
        return self.publish_summary(context, summary, events)

    def publish_summary(self, context: Any, summary: dict[str, Any], events: dict[str, Any] | None) -> list[str]:
        """Push the manifest's URI and the run's extract summary as XComs; returns the staged batch URIs."""
        if events is not None:
            summary["events"] = events
        batches = summary.pop("batches")
        context["ti"].xcom_push(key="manifest", value=summary["manifest"])
        context["ti"].xcom_push(key="summary", value=self.summarised(summary))
        return batches

    def extract_settings(self, context: Any) -> tuple[Any, dict[str, Any] | None]:
        """The run's `ExtractSettings` from the rendered arguments and the run's data interval (or the keys of its
        triggering events, with the event figures); raises ValueError for a malformed probe."""
        from dataclasses import replace

        from airflow.configuration import conf
        from latechunk.chunking.config import ChunkingConfig
        from latechunk.embedding.config import LateChunkingConfig
        from latechunk.pipeline.extract import ExtractSettings, day_prefixes
        from latechunk.settings import from_rendered
        from latechunk.validation.probes import parse_probes

        parse_probes(self.probes)
        start, end = data_interval(context)
        select_prefixes, written = (), None
        keys, events = self._event_keys(context) if self.from_events else (None, None)
        if self.partition_by_date and keys is None:
            select_prefixes = day_prefixes(self.prefix, start, end, int(self.lookback_days))
            written = (start - timedelta(days=int(self.lookback_days)), end)
        interval = (start, end) if self.select_by_last_modified else None
        if keys is None:
            self.log.info(
                "data interval [%s, %s): reading %s%s%s", start, end,
                ", ".join(select_prefixes) or f"all of {self.prefix!r}",
                f" and objects of other folders written in [{written[0]}, {written[1]})" if written else "",
                " (objects modified in the interval)" if interval else "",
            )  # fmt: skip
        settings = replace(
            from_rendered(ExtractSettings, {
                "bucket": self.bucket, "prefix": self.prefix, "index": self.index_name, "model": self.model,
                "chunking": from_rendered(ChunkingConfig, self.chunking).as_dict(),
                "late_chunking": from_rendered(LateChunkingConfig, self.late_chunking).as_dict(),
                "delete_missing": self.delete_missing, "batch_token_budget": self.batch_token_budget,
                "docs_per_batch": self.docs_per_batch, "max_object_bytes": self.max_object_bytes,
                "json_text_field": self.json_text_field, "max_bad_fraction": self.max_bad_fraction,
                "window": self.window, "window_overlap": self.window_overlap, "levels": self.levels,
                "max_shards": self.extract_shards, "objects_per_shard": self.objects_per_shard,
                **self.limits,
            }),
            select_prefixes=select_prefixes,
            written_between=written,
            modified_between=interval,
            max_batches=conf.getint("core", "max_map_length"),
            keys=keys,
        )  # fmt: skip
        return settings, events

    def _event_keys(self, context: Any) -> tuple[tuple[str, ...], dict[str, Any]]:
        """The keys named by the run's triggering asset events under bucket/prefix, and the event figures."""
        from latechunk.sources.events import event_figures, in_scope, keys_to_check, parse_payloads

        payloads = [event.extra.get("payload") for events in context["triggering_asset_events"].values()
                    for event in events if event.extra.get("from_trigger")]  # fmt: skip
        parsed = parse_payloads(payloads)
        events, outside = in_scope(parsed.events, self.bucket, self.prefix)
        for entry in [*parsed.rejected, *outside]:
            self.log.warning("event not taken (%s: %s): %s", entry.reason, entry.detail, entry.message)
        keys = keys_to_check(events)
        figures = event_figures(events, [*parsed.rejected, *outside], keys)
        self.log.info("%d watcher events: %d object events under s3://%s/%s naming %d keys; not taken: %s",
                      len(payloads), len(events), self.bucket, self.prefix, len(keys), figures["rejected"] or "none")
        return tuple(keys), figures


def data_interval(context: Any) -> tuple[datetime, datetime]:
    """The run's data interval. A manual run triggered without a logical date has none: like the daily
    schedule, it then covers the last whole day before it ran (UTC)."""
    start, end = context.get("data_interval_start"), context.get("data_interval_end")
    if start is not None and end is not None:
        return start, end
    end = context["dag_run"].run_after.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return end - timedelta(days=1), end
