"""The task chain both pipeline DAGs share, wired to their params."""

from __future__ import annotations

from typing import Any

from airflow.sdk import BaseOperator, TriggerRule

from latechunk_operators.annotate import LateChunkAnnotateOperator
from latechunk_operators.embed import LateChunkEmbedOperator
from latechunk_operators.extract import LateChunkExtractOperator
from latechunk_operators.index import LateChunkIndexOperator
from latechunk_operators.params import CHUNKING, GPU_POOL, LATE_CHUNKING, STAGING
from latechunk_operators.validate import LateChunkValidateOperator


def late_chunking_tasks(
    *,
    index_name: str,
    create_as_alias: bool,
    index_trigger_rule: str = TriggerRule.ALL_SUCCESS,
    **extract_kwargs: Any,
) -> tuple[BaseOperator, BaseOperator]:
    """extract -> annotate (mapped per batch) -> embed (mapped, queue gpu) -> index -> validate.

    Call inside a DAG whose params are `ingest_params()`; returns the first and the last task.
    """
    extract = LateChunkExtractOperator(
        task_id="extract",
        bucket="{{ params.bucket }}",
        prefix="{{ params.prefix }}",
        partition_by_date="{{ params.partition_by_date }}",
        lookback_days="{{ params.lookback_days }}",
        probes="{{ params.probes }}",
        index_name=index_name,
        model="{{ params.model }}",
        chunking=CHUNKING,
        docs_per_batch="{{ params.docs_per_batch }}",
        max_object_bytes="{{ params.max_object_bytes }}",
        json_text_field="{{ params.json_text_field }}",
        max_bad_fraction="{{ params.max_bad_fraction }}",
        max_nesting_depth="{{ params.max_nesting_depth }}",
        max_parts_per_object="{{ params.max_parts_per_object }}",
        max_extract_seconds="{{ params.max_extract_seconds }}",
        window="{{ params.window }}",
        window_overlap="{{ params.window_overlap }}",
        late_chunking=LATE_CHUNKING,
        **extract_kwargs,
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
        late_chunking=LATE_CHUNKING,
        pool=GPU_POOL,
        **STAGING,
    ).expand(batch_path=extract.output)
    index = LateChunkIndexOperator(
        task_id="index",
        manifest_path=extract.output["manifest"],
        index_name=index_name,
        create_as_alias=create_as_alias,
        trigger_rule=index_trigger_rule,
        **STAGING,
    )
    validate = LateChunkValidateOperator(
        task_id="validate",
        manifest_path=extract.output["manifest"],
        index_name=index_name,
        model="{{ params.model }}",
        sample_size="{{ params.validation_sample_size }}",
        self_retrieval_threshold="{{ params.self_retrieval_threshold }}",
        recall_threshold="{{ params.recall_threshold }}",
        query_retrieval_threshold="{{ params.query_retrieval_threshold }}",
        document_query_threshold="{{ params.document_query_threshold }}",
        max_mean_cosine="{{ params.max_mean_cosine }}",
        query_k="{{ params.query_k }}",
        probes="{{ params.probes }}",
        retries=0,  # a failed check is a finding about the data, not a transient fault
        **STAGING,
    )
    annotate >> embed >> index >> validate
    return extract, validate
