"""Ingest documents from object storage into Elasticsearch with late-chunked embeddings.

plan_extract -> extract_shard (one per key range) -> extract -> [annotate -> embed (queue ``gpu``)] for each staged
batch -> batches_done -> index -> validate -> publish

The schedule is daily with explicit data intervals: the run that starts just after midnight UTC of day D+1 has the
interval [D, D+1) and reads the folder ``<prefix>D/`` (plus ``lookback_days`` earlier folders, for late files).
A backfill day D reads ``<prefix>D/`` the same way. Every run stages the new or changed objects in batches and
upserts their chunks; an unchanged object is skipped by ETag, so re-runs and backfills never duplicate data, and
objects deleted anywhere under the prefix leave the index. A failed batch does not sink the run: the other batches
are indexed and validated, the run ends failed, and the next run retries the failed batch's objects wherever they
are. Defaults come from ``LATECHUNK_*``
environment variables, and every setting is a DAG param, so a manual run or a backfill can be configured from the UI.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import DAG, CronDataIntervalTimetable
from latechunk_operators.params import INDEX_ASSET, TASK_RETRIES, execution_timeout, ingest_params, param_ref
from latechunk_operators.publish import LateChunkPublishOperator
from latechunk_operators.tasks import late_chunking_tasks

with DAG(
    dag_id="latechunk_ingest",
    description="Object storage -> late-chunked embeddings -> Elasticsearch",
    # Not "@daily": Airflow 3 maps that to a zero-length interval at the start of the day, whose folder is empty.
    schedule=CronDataIntervalTimetable("@daily", timezone="UTC"),
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    params=ingest_params(),
    render_template_as_native_obj=True,
    default_args=TASK_RETRIES,
    dagrun_timeout=timedelta(hours=12),
    tags=["latechunk", "ingest"],
    doc_md=__doc__,
) as dag:
    _, validate = late_chunking_tasks(
        index_name=param_ref("index"),
        create_as_alias=True,
        # A failed batch leaves its objects pending for the next run; the others are indexed and validated. Runs
        # with nothing new still index (deletions) and validate.
        isolate_failed_batches=True,
        select_by_last_modified=param_ref("select_by_last_modified"),
        delete_missing=param_ref("delete_missing"),
    )
    # The index asset's event, with what changed; none (the task skips) when the run changed nothing.
    validate >> LateChunkPublishOperator(
        task_id="publish",
        asset=INDEX_ASSET,
        index_name=param_ref("index"),
        execution_timeout=execution_timeout("publish"),
    )
