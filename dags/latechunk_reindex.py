"""Rebuild the index with the current model and chunking, then swap the alias to it atomically.

extract (whole prefix) -> annotate -> embed -> index (into a new, versioned index) -> validate -> swap alias

Searches keep hitting the old index through the alias until the new one has passed validation; a failed rebuild
leaves the alias untouched. Trigger it manually after changing the model or the chunking params.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import DAG, Asset, Param
from latechunk_operators import (
    LateChunkAnnotateOperator,
    LateChunkEmbedOperator,
    LateChunkExtractOperator,
    LateChunkIndexOperator,
    LateChunkSwapAliasOperator,
    LateChunkValidateOperator,
)
from latechunk_operators.params import CHUNKING, INDEX_ASSET_URI, PREFIX, STAGING, ingest_params

NEW_INDEX = "{{ params.index }}-{{ run_id | replace(':', '') | replace('+', '') | replace('.', '') | lower }}"

params = ingest_params()
params["partition_by_date"] = Param(False, type="boolean", description="Reindex reads the whole prefix.")
params["delete_old_index"] = Param(False, type="boolean", description="Delete the index the alias pointed at.")

with DAG(
    dag_id="latechunk_reindex",
    description="Rebuild the late-chunking index and swap its alias after validation",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    params=params,
    render_template_as_native_obj=True,
    default_args={"retries": 2, "retry_delay": timedelta(minutes=1), "retry_exponential_backoff": True},
    tags=["latechunk", "reindex"],
    doc_md=__doc__,
) as dag:
    extract = LateChunkExtractOperator(
        task_id="extract",
        bucket="{{ params.bucket }}",
        prefix=PREFIX,
        index_name=NEW_INDEX,
        model="{{ params.model }}",
        chunking=CHUNKING,
        delete_missing=False,
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
        index_name=NEW_INDEX,
        create_as_alias=False,
        **STAGING,
    )
    validate = LateChunkValidateOperator(
        task_id="validate",
        manifest_path=extract.output["manifest"],
        index_name=NEW_INDEX,
        model="{{ params.model }}",
        sample_size="{{ params.validation_sample_size }}",
        self_retrieval_threshold="{{ params.self_retrieval_threshold }}",
        recall_threshold="{{ params.recall_threshold }}",
        probes="{{ params.probes }}",
        retries=0,  # a failed check is a finding about the data, not a transient fault
        **STAGING,
    )
    swap = LateChunkSwapAliasOperator(
        task_id="swap_alias",
        alias="{{ params.index }}",
        new_index=NEW_INDEX,
        delete_old="{{ params.delete_old_index }}",
        outlets=[Asset(name="latechunk_index", uri=INDEX_ASSET_URI)],
    )
    annotate >> embed >> index >> validate >> swap
