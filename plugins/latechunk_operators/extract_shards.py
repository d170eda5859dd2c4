"""The extract stage spread over the workers: plan the key ranges, extract each range in a mapped task, gather.

plan_extract -> extract_shard (one mapped task per key range, on the ``default`` queue) -> extract

All three take the arguments of `LateChunkExtractOperator` (the DAGs pass the same ones), so each derives the same
run settings from the same params, data interval and triggering events. The gathering task keeps the task id
``extract``: it pushes the run manifest and the summary every later stage, the run report and the UI links read.
"""

from __future__ import annotations

from typing import Any

from latechunk_operators.extract import LateChunkExtractOperator


class LateChunkPlanExtractOperator(LateChunkExtractOperator):
    """Check the run's settings against the index (failing the run before anything is read when they do not
    match) and split the prefix into key ranges; returns one dict per range, for ``extract_shard`` to map over, and
    pushes its summary (how many ranges, the task's peak memory) as the XCom ``summary``."""

    ui_color = "#d6ecfb"
    operator_extra_links = ()

    def _extract(self, context: Any) -> list[dict[str, Any]]:
        from latechunk.index.elasticsearch import ElasticsearchBackend
        from latechunk.pipeline.extract import check_target
        from latechunk.pipeline.shards import plan_shards

        from latechunk_operators.hooks import elasticsearch_client

        settings, _ = self.extract_settings(context)
        es = elasticsearch_client(self.elasticsearch_conn_id)
        target = check_target(es, settings)
        shards = plan_shards(self.s3(), ElasticsearchBackend(es) if target.index_exists else None, settings)
        context["ti"].xcom_push(key="summary", value=self.summarised({"key_ranges": len(shards)}))
        return [shard.to_dict() for shard in shards]


class LateChunkExtractShardOperator(LateChunkExtractOperator):
    """List one key range of the prefix, merge it with the index's keys of the range, read and stage what changed.
    Returns the URI of the range's staged result and pushes the range's figures (with the task's peak memory) as the
    XCom ``summary``.

    :param shard: the key range, one of ``plan_extract``'s dicts. (templated)
    """

    template_fields = (*LateChunkExtractOperator.template_fields, "shard")
    ui_color = "#d6ecfb"
    operator_extra_links = ()

    def __init__(self, *, shard: dict[str, Any], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.shard = shard

    def _extract(self, context: Any) -> str:
        from latechunk.pipeline.extract import extract_shard
        from latechunk.pipeline.shards import Shard

        from latechunk_operators.hooks import elasticsearch_client

        settings, _ = self.extract_settings(context)
        s3, area = self.s3(), self.staging_area(context)
        result = extract_shard(
            s3=s3, es=elasticsearch_client(self.elasticsearch_conn_id), area=area, settings=settings,
            shard=Shard.from_dict(self.shard),
        )  # fmt: skip
        summary = {"key_range": result.shard.describe(), "objects_listed": result.selected,
                   "objects_new": result.new, "objects_modified": result.modified,
                   "objects_quarantined": result.bad_objects, "keys_to_delete": len(result.deleted_keys),
                   **result.progress}  # fmt: skip
        context["ti"].xcom_push(key="summary", value=self.summarised(summary))
        return result.write(s3, area)


class LateChunkGatherExtractOperator(LateChunkExtractOperator):
    """Write the run manifest from every key range's result; fail when more than ``max_bad_fraction`` of the run's
    objects were quarantined. Pushes the manifest's URI and the summary, and returns the staged batch URIs, as
    `LateChunkExtractOperator` does.

    :param shard_results: the URIs ``extract_shard`` returned, one per key range. (templated)
    """

    template_fields = (*LateChunkExtractOperator.template_fields, "shard_results")

    def __init__(self, *, shard_results: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.shard_results = shard_results

    def _extract(self, context: Any) -> list[str]:
        from latechunk.pipeline.extract import check_target
        from latechunk.pipeline.shards import gather_shards, read_shard_result

        from latechunk_operators.hooks import elasticsearch_client

        if not self.shard_results:
            # A run created before the DAG had key ranges (in flight during an upgrade) queues this task with no
            # planning upstream of it: it extracts the whole prefix itself, as the single extract task did.
            self.log.warning("no key range was extracted for this run: extracting the whole prefix in this task")
            return super()._extract(context)
        settings, events = self.extract_settings(context)
        s3 = self.s3()
        target = check_target(elasticsearch_client(self.elasticsearch_conn_id), settings)
        results = [read_shard_result(s3, uri) for uri in self.shard_results]
        summary = gather_shards(s3=s3, area=self.staging_area(context), settings=settings, target=target,
                                results=results)  # fmt: skip
        return self.publish_summary(context, summary, events)
