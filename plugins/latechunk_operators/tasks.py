"""The task chain both pipeline DAGs share, wired to their params."""

from __future__ import annotations

from typing import Any

from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import BaseOperator, TriggerRule, WeightRule, task_group

from latechunk_operators.annotate import LateChunkAnnotateOperator
from latechunk_operators.embed import LateChunkEmbedOperator
from latechunk_operators.extract import LateChunkExtractOperator
from latechunk_operators.extract_shards import (
    LateChunkExtractShardOperator,
    LateChunkGatherExtractOperator,
    LateChunkPlanExtractOperator,
)
from latechunk_operators.index import LateChunkIndexOperator
from latechunk_operators.params import (
    CHUNKING,
    GPU_POOL,
    INDEX_POOL,
    INDEX_SETTINGS,
    LATE_CHUNKING,
    LIMITS,
    STAGING,
    VALIDATION,
    execution_timeout,
    param_ref,
)
from latechunk_operators.validate import LateChunkValidateOperator


def late_chunking_tasks(
    *,
    index_name: str,
    create_as_alias: bool,
    isolate_failed_batches: bool = False,
    shard_extract: bool = True,
    **extract_kwargs: Any,
) -> tuple[BaseOperator, BaseOperator]:
    """extract -> [annotate -> embed (queue gpu)] per staged batch -> index -> validate.

    With ``shard_extract`` the extract is three tasks: ``plan_extract`` splits the prefix into key ranges, an
    ``extract_shard`` task per range lists, reconciles and reads it on the default workers, and ``extract``
    gathers them into the run manifest (`latechunk_operators.extract_shards`); without it one ``extract`` task
    does all of it (the event-driven DAG, whose runs read a few keys and should start indexing at once).

    With ``isolate_failed_batches`` a failed batch does not sink the run: ``batches_done`` waits for every batch
    whatever became of it, index writes the batches that succeeded (and runs when there were none, for the
    deletions), and validate fails the run after checking them (`latechunk.pipeline.batch_failures`); a failed
    extract still stops index and validate. Without it (the reindex), any failed batch stops index and validate.
    Call inside a DAG whose params are `ingest_params()`; returns the gathering extract task and the last task.

    With ``create_as_alias`` (the DAGs that write the served index) index and validate take the one-slot pool
    ``INDEX_POOL``, so that overlapping runs write and check it one at a time (`latechunk.pipeline.overlap`); the
    reindex writes a new index of its own, which no other run writes.
    """
    served = {"pool": INDEX_POOL} if create_as_alias else {}
    arguments = {
        "bucket": param_ref("bucket"),
        "prefix": param_ref("prefix"),
        "partition_by_date": param_ref("partition_by_date"),
        "lookback_days": param_ref("lookback_days"),
        "probes": param_ref("probes"),
        "index_name": index_name,
        "model": param_ref("model"),
        "chunking": CHUNKING,
        "docs_per_batch": param_ref("docs_per_batch"),
        "batch_token_budget": param_ref("batch_token_budget"),
        "max_object_bytes": param_ref("max_object_bytes"),
        "json_text_field": param_ref("json_text_field"),
        "max_bad_fraction": param_ref("max_bad_fraction"),
        "limits": LIMITS,
        "window": param_ref("window"),
        "window_overlap": param_ref("window_overlap"),
        "late_chunking": LATE_CHUNKING,
        "levels": param_ref("levels"),
        "extract_shards": param_ref("extract_shards"),
        "objects_per_shard": param_ref("objects_per_shard"),
        **extract_kwargs,
        **STAGING,
    }
    if shard_extract:
        plan = LateChunkPlanExtractOperator(
            task_id="plan_extract", execution_timeout=execution_timeout("plan_extract"), **arguments
        )
        shards = LateChunkExtractShardOperator.partial(
            task_id="extract_shard", execution_timeout=execution_timeout("extract_shard"), **arguments
        ).expand(shard=plan.output)
        extract = LateChunkGatherExtractOperator(
            task_id="extract", shard_results=shards.output, execution_timeout=execution_timeout("extract"),
            **arguments,
        )  # fmt: skip
    else:
        extract = LateChunkExtractOperator(task_id="extract", execution_timeout=execution_timeout("extract"),
                                           **arguments)  # fmt: skip
    batches = _batch_tasks.expand(batch_path=extract.output)
    index = LateChunkIndexOperator(
        task_id="index",
        manifest_path=extract.output["manifest"],
        index_name=index_name,
        create_as_alias=create_as_alias,
        index_settings=INDEX_SETTINGS,
        trigger_rule=TriggerRule.NONE_FAILED if isolate_failed_batches else TriggerRule.ALL_SUCCESS,
        execution_timeout=execution_timeout("index"),
        **served,
        **STAGING,
    )
    validate = LateChunkValidateOperator(
        task_id="validate",
        manifest_path=extract.output["manifest"],
        index_name=index_name,
        validation=VALIDATION,
        retries=0,  # a failed check is a finding about the data, not a transient fault
        execution_timeout=execution_timeout("validate"),
        **served,
        **STAGING,
    )
    if isolate_failed_batches:
        batches >> EmptyOperator(task_id="batches_done", trigger_rule=TriggerRule.ALL_DONE) >> index
    else:
        batches >> index
    index >> validate
    return extract, validate


# One group instance per staged batch: the embed of batch i starts as soon as the annotate of batch i is done,
# not after every batch is annotated. The task ids stay `annotate` and `embed` (no group prefix). Both read the
# model, its revision and the chunking, window and late-chunking settings from the run manifest extract staged.
# Both weigh their priority by their upstream tasks, so an embed outranks every annotate still waiting. By Airflow's
# default (the downstream tasks) the annotates came first: once a run had more batches than the DAG's
# max_active_tasks, every freed slot went to the next annotate, and the gpu worker sat idle until all were done.
@task_group(group_id="batch", prefix_group_id=False)
def _batch_tasks(batch_path: str) -> None:
    annotate = LateChunkAnnotateOperator(
        task_id="annotate",
        batch_path=batch_path,
        max_document_tokens=param_ref("max_document_tokens"),
        weight_rule=WeightRule.UPSTREAM,
        execution_timeout=execution_timeout("annotate"),
        **STAGING,
    )
    embed = LateChunkEmbedOperator(
        task_id="embed",
        batch_path=batch_path,
        token_budget=param_ref("token_budget"),
        device=param_ref("device"),
        dtype=param_ref("dtype"),
        attention=param_ref("attention"),
        pool=GPU_POOL,
        weight_rule=WeightRule.UPSTREAM,
        execution_timeout=execution_timeout("embed"),
        **STAGING,
    )
    annotate >> embed
