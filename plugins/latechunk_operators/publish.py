"""Publish: tell downstream DAGs that the index changed, with what changed, through an asset event."""

from __future__ import annotations

from typing import Any

from airflow.sdk import Asset, BaseOperator

# Counts of the index task's summary that mean the index changed.
CHANGE_COUNTS = ("documents_written", "stale_chunks_deleted", "superseded_chunks_deleted",
                 "removed_object_chunks_deleted", "quarantined_object_chunks_deleted")


class LateChunkPublishOperator(BaseOperator):
    """Emit one event of ``asset`` after a validated run that changed the index; skip when nothing changed.

    The event's extra carries the index (alias), the physical index behind it, the run's counts and the validation
    status, so the Assets page and the DAGs scheduled on the asset see what changed. A run that wrote and deleted
    nothing ends this task as skipped, and a skipped task emits no event: downstream DAGs do not run for nothing.

    :param asset: the index asset; also give it as ``outlets``.
    :param index_name: the index or alias the run wrote. (templated)
    :param index_task_id: the task whose XCom summary has the index counts.
    :param validate_task_id: the task whose XCom summary has the validation status.
    :param elasticsearch_conn_id: Airflow connection (type ``elasticsearch``), to name the physical index.
    """

    template_fields = ("index_name",)
    ui_color = "#f3e8fd"

    def __init__(
        self,
        *,
        asset: Asset,
        index_name: str,
        index_task_id: str = "index",
        validate_task_id: str = "validate",
        elasticsearch_conn_id: str = "latechunk_es",
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("outlets", [asset])
        super().__init__(**kwargs)
        self.asset = asset
        self.index_name = index_name
        self.index_task_id = index_task_id
        self.validate_task_id = validate_task_id
        self.elasticsearch_conn_id = elasticsearch_conn_id

    def execute(self, context: Any) -> dict[str, Any]:
        from airflow.sdk.exceptions import AirflowSkipException
        from latechunk.reporting.metrics import Metric, metric_name

        from latechunk_operators.hooks import elasticsearch_client
        from latechunk_operators.metrics import emit

        ti = context["ti"]
        written = ti.xcom_pull(task_ids=self.index_task_id) or {}
        validation = ti.xcom_pull(task_ids=self.validate_task_id) or {}
        changes = {name: int(written.get(name) or 0) for name in CHANGE_COUNTS}
        if not written.get("index_created") and not any(changes.values()):
            raise AirflowSkipException(f"{self.index_name} did not change: no asset event")
        es = elasticsearch_client(self.elasticsearch_conn_id)
        extra = {
            "index": self.index_name,
            "physical_index": sorted(es.indices.get_alias(index=self.index_name)),
            "run_id": context["run_id"],
            "index_created": bool(written.get("index_created")),
            "chunks_indexed": int(written.get("chunks_indexed") or 0),
            **changes,
            "validation": "passed" if validation.get("passed") else "unknown",
            "report": validation.get("report"),
        }
        context["outlet_events"][self.asset].extra = extra
        self.log.info("index %s changed: asset event with %s", self.index_name, extra)
        emit([Metric(metric_name(self.dag_id, "asset_events"), "counter", 1)])
        return extra
