"""Index: upsert the run's chunks into Elasticsearch and remove what no longer exists."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from airflow.sdk import BaseOperator

from latechunk_operators.base import LateChunkBaseOperator
from latechunk_operators.links import RunReportLink


class LateChunkIndexOperator(LateChunkBaseOperator):
    """Create the index if absent (refusing an incompatible one) and upsert every staged chunk by bulk.

    Each chunk's id is ``{doc_id}:{chunk_id}``, so a retry or re-run overwrites instead of duplicating; a changed
    document's leftover chunks and the documents whose objects were deleted are removed. Every changed object ends
    indexed whole, quarantined (an object the engine refuses a chunk of is removed, with the reason in the summary)
    or deferred; the summary counts each, and the task fails when they do not add up. Throttled or failed writes
    (429, 5xx) fail the task, whose retry writes them. Only the versions the bucket still holds are written, so a run
    that overlaps a later one never writes a stale version over it (`latechunk.pipeline.overlap`); the DAGs run it
    in the one-slot pool ``latechunk_index_writes``.

    :param manifest_path: the run manifest written by the extract task. (templated)
    :param index_name: index or alias to write to. (templated)
    :param index_options: ``dense_vector`` ``index_options`` for a new index. (templated)
    :param create_as_alias: create a missing index as an alias over a versioned index, so the reindex DAG can
        swap it later; False creates the index under ``index_name`` itself.
    :param index_settings: ``shards`` and ``replicas`` of a new index, ``bulk_refresh_interval`` during the writes
        (`latechunk.index.settings.IndexSettings`). (templated)
    :param elasticsearch_conn_id: Airflow connection (type ``elasticsearch``).
    """

    operator_extra_links = (RunReportLink(),)
    template_fields = (
        *LateChunkBaseOperator.template_fields, "manifest_path", "index_name", "index_options", "index_settings",
    )  # fmt: skip
    ui_color = "#f3e8fd"

    def __init__(
        self,
        *,
        manifest_path: str,
        index_name: str,
        index_options: dict[str, Any] | None = None,
        create_as_alias: bool = True,
        index_settings: dict[str, Any] | None = None,
        elasticsearch_conn_id: str = "latechunk_es",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.manifest_path = manifest_path
        self.index_name = index_name
        self.index_options = index_options
        self.create_as_alias = create_as_alias
        self.index_settings = index_settings
        self.elasticsearch_conn_id = elasticsearch_conn_id

    def execute(self, context: Any) -> dict[str, Any]:
        from latechunk.index.settings import IndexSettings
        from latechunk.pipeline.index import index
        from latechunk.settings import from_rendered

        from latechunk_operators.hooks import elasticsearch_client

        summary = index(
            s3=self.s3(),
            es=elasticsearch_client(self.elasticsearch_conn_id),
            manifest_path=self.manifest_path,
            index_name=self.index_name,
            index_options=dict(self.index_options) if self.index_options else None,
            create_as_alias=self.create_as_alias,
            settings=from_rendered(IndexSettings, self.index_settings),
        )
        # When the run's writes were done: the end of an event's journey from upload to searchable (run report).
        summary["finished_at"] = datetime.now(UTC).isoformat()
        return self.summarised(summary)


class LateChunkSwapAliasOperator(BaseOperator):
    """Point ``alias`` at ``new_index`` in one atomic alias update, optionally deleting the indices it left.

    Only indices the pipeline built for the alias (``_meta.latechunk``, named ``<alias>-<version>``) are served,
    detached or deleted: an alias over any other index fails the task before anything changes, without retries.

    Each asset in ``outlets`` gets an event whose extra names the alias, the new index and the one it replaced.

    Given the reindex run's ``manifest_path``, it first catches the new index up with what other runs changed in
    the bucket since the reindex listed it (`latechunk.pipeline.catch_up`): run it in the index-writes pool, so that
    no run writes the served index between the catch-up and the swap.

    :param alias: the alias searches use. (templated)
    :param new_index: the validated index to serve. (templated)
    :param delete_old: delete the indices the alias pointed at before. (templated)
    :param manifest_path: the reindex run's manifest; None swaps without a catch-up. (templated)
    :param pending_dag_id: the DAG whose pending list for the alias gets the objects the new index lacks or holds
        at an older version (`latechunk.pipeline.batch_failures`): its next run indexes them.
    :param staging_bucket: the staging bucket that holds that DAG's pending list. (templated)
    :param staging_prefix: the staging prefix of its run folders. (templated)
    :param aws_conn_id: Airflow connection (type ``aws``) for the buckets, for the catch-up.
    :param elasticsearch_conn_id: Airflow connection (type ``elasticsearch``).
    """

    template_fields = ("alias", "new_index", "delete_old", "manifest_path", "staging_bucket", "staging_prefix")

    def __init__(
        self,
        *,
        alias: str,
        new_index: str,
        delete_old: bool = False,
        manifest_path: str | None = None,
        pending_dag_id: str = "latechunk_ingest",
        staging_bucket: str | None = None,
        staging_prefix: str = "runs",
        aws_conn_id: str = "latechunk_s3",
        elasticsearch_conn_id: str = "latechunk_es",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if manifest_path is not None and staging_bucket is None:
            raise ValueError("a catch-up needs the staging_bucket of the pending list")
        self.alias = alias
        self.new_index = new_index
        self.delete_old = delete_old
        self.manifest_path = manifest_path
        self.pending_dag_id = pending_dag_id
        self.staging_bucket = staging_bucket
        self.staging_prefix = staging_prefix
        self.aws_conn_id = aws_conn_id
        self.elasticsearch_conn_id = elasticsearch_conn_id

    def execute(self, context: Any) -> dict[str, Any]:
        from airflow.sdk.exceptions import AirflowFailException
        from latechunk.pipeline.alias import ForeignIndexError, swap_alias

        from latechunk_operators.hooks import elasticsearch_client, s3_client

        es = elasticsearch_client(self.elasticsearch_conn_id)
        caught_up = None
        if self.manifest_path:
            from latechunk.pipeline.batch_failures import pending_uri
            from latechunk.pipeline.catch_up import catch_up
            from latechunk.staging.tables import StagingArea

            area = StagingArea(self.staging_bucket, self.staging_prefix, self.pending_dag_id, context["run_id"])
            caught_up = catch_up(s3=s3_client(self.aws_conn_id), es=es, manifest_path=self.manifest_path,
                                 new_index=self.new_index, pending_at=pending_uri(area, self.alias))  # fmt: skip
        try:
            swapped = swap_alias(
                es=es,
                alias=self.alias,
                new_index=self.new_index,
                delete_old=bool(self.delete_old),
            )
        except ForeignIndexError as error:  # a retry would find the same indices
            raise AirflowFailException(str(error)) from error
        # The index assets among the outlets get an event that says which index the alias now serves.
        for asset in self.outlets:
            context["outlet_events"][asset].extra = {
                "index": self.alias, "physical_index": [self.new_index], "run_id": context["run_id"],
                "previous_index": swapped["previous"], "validation": "passed",
            }
        return {**swapped, "catch_up": caught_up} if caught_up is not None else swapped
