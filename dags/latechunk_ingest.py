"""Ingest documents from object storage into Elasticsearch with late-chunked embeddings.

extract -> annotate (mapped per batch) -> embed (mapped per batch, queue ``gpu``) -> index -> validate

Every run lists its prefix, stages the new or changed objects in batches, and upserts their chunks; an unchanged
object is skipped by ETag, so re-runs and backfills never duplicate data. Defaults come from ``LATECHUNK_*``
environment variables, and every setting is a DAG param, so a manual run or a backfill can be configured from the UI.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import DAG, Asset, TriggerRule
from latechunk_operators import (
    LateChunkAnnotateOperator,
    LateChunkEmbedOperator,
    LateChunkExtractOperator,
    LateChunkIndexOperator,
    LateChunkValidateOperator,
)
from latechunk_operators.params import (
    CHUNKING,
    INDEX_ASSET_URI,
    PREFIX,
    STAGING,
    ingest_params,
)

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
    extract = LateChunkExtractOperator(
        task_id="extract",
        bucket="{{ params.bucket }}",
        prefix=PREFIX,
        index_name="{{ params.index }}",
        model="{{ params.model }}",
        chunking=CHUNKING,
        select_by_last_modified="{{ params.select_by_last_modified }}",
        delete_missing="{{ params.delete_missing }}",
        docs_per_batch="{{ params.docs_per_batch }}",
        max_object_bytes="{{ params.max_object_bytes }}",
        json_text_field="{{ params.json_text_field }}",
        max_bad_fraction="{{ params.max_bad_fraction }}",
        **STAGING,
    )
    annotate = LateChunkAnnotateOperator.partial(
        task_id="annotate", model="{{ params.model }}", chunking=CHUNKING, **STAGING
    ).expand(batch_path=extract.output)
    embed = LateChunkEmbedOperator.partial(
        task_id="embed",
        model="{{ params.model }}",
        window="{{ params.window }}",
        window_overlap="{{ params.window_overlap }}",
        token_budget="{{ params.token_budget }}",
        device="{{ params.device }}",
        **STAGING,
    ).expand(batch_path=extract.output)
    index = LateChunkIndexOperator(
        task_id="index",
        manifest_path=extract.output["manifest"],
        index_name="{{ params.index }}",
        trigger_rule=TriggerRule.NONE_FAILED,
        **STAGING,
    )
    validate = LateChunkValidateOperator(
        task_id="validate",
        manifest_path=extract.output["manifest"],
        index_name="{{ params.index }}",
        model="{{ params.model }}",
        sample_size="{{ params.validation_sample_size }}",
        self_retrieval_threshold="{{ params.self_retrieval_threshold }}",
        recall_threshold="{{ params.recall_threshold }}",
        probes="{{ params.probes }}",
        retries=0,  # a failed check is a finding about the data, not a transient fault
        outlets=[Asset(name="latechunk_index", uri=INDEX_ASSET_URI)],
        **STAGING,
    )
    annotate >> embed >> index >> validate
