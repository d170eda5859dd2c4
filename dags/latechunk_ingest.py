"""Ingest documents from object storage into Elasticsearch with late-chunked embeddings.

extract -> annotate (mapped per batch) -> embed (mapped per batch, queue ``gpu``) -> index -> validate

Every run lists its prefix, stages the new or changed objects in batches, and upserts their chunks; an unchanged
object is skipped by ETag, so re-runs and backfills never duplicate data. Defaults come from ``LATECHUNK_*``
environment variables, and every setting is a DAG param, so a manual run or a backfill can be configured from the UI.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import DAG, Asset, TriggerRule
from latechunk_operators.params import INDEX_ASSET_URI, ingest_params
from latechunk_operators.tasks import late_chunking_tasks

with DAG(
    dag_id="latechunk_ingest",
    description="Object storage -> late-chunked embeddings -> Elasticsearch",
    schedule="@daily",
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    params=ingest_params(),
    render_template_as_native_obj=True,
    default_args={"retries": 2, "retry_delay": timedelta(minutes=1), "retry_exponential_backoff": True},
    dagrun_timeout=timedelta(hours=12),
    tags=["latechunk", "ingest"],
    doc_md=__doc__,
) as dag:
    late_chunking_tasks(
        index_name="{{ params.index }}",
        create_as_alias=True,
        # Runs with nothing new still index (deletions) and validate.
        index_trigger_rule=TriggerRule.NONE_FAILED,
        validate_outlets=[Asset(name="latechunk_index", uri=INDEX_ASSET_URI)],
        select_by_last_modified="{{ params.select_by_last_modified }}",
        delete_missing="{{ params.delete_missing }}",
    )
