"""Rebuild the index with the current model and chunking, then swap the alias to it atomically.

extract (whole prefix) -> annotate -> embed -> index (into a new, versioned index) -> validate -> swap alias

Searches keep hitting the old index through the alias until the new one has passed validation; a failed rebuild
leaves the alias untouched. Trigger it manually after changing the model or the chunking params.

Ingest and events runs may write the served index while the reindex builds the new one. The swap task (in the
one-slot index-writes pool, like the ingest and events DAGs' index and validate tasks) first catches the new index
up with the bucket: what was deleted since the reindex listed it is removed, what was written or overwritten since
goes on the ``latechunk_ingest`` pending list, which its next run indexes into the new index (see
docs/deployment.md, "Overlapping runs").
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG, Param
from latechunk_operators import LateChunkSwapAliasOperator
from latechunk_operators.params import (
    INDEX_ASSET,
    INDEX_POOL,
    STAGING,
    TASK_RETRIES,
    execution_timeout,
    in_sections,
    ingest_params,
    param_ref,
    param_value,
)
from latechunk_operators.tasks import late_chunking_tasks

RUN_SUFFIX = "{{ run_id | replace(':', '') | replace('+', '') | replace('.', '') | lower }}"
NEW_INDEX = "{{ " + param_value("index") + " }}-" + RUN_SUFFIX

params = ingest_params()
params["partition_by_date"] = Param(False, type="boolean", description="Reindex reads the whole prefix.")
params["delete_old_index"] = Param(False, type="boolean", description="Delete the index the alias pointed at.")
params = in_sections(params)

with DAG(
    dag_id="latechunk_reindex",
    description="Rebuild the late-chunking index and swap its alias after validation",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    params=params,
    render_template_as_native_obj=True,
    default_args=TASK_RETRIES,
    tags=["latechunk", "reindex"],
    doc_md=__doc__,
) as dag:
    # An empty prefix skips index and validate (no batches), so the alias is never swapped to an empty index.
    extract, validate = late_chunking_tasks(index_name=NEW_INDEX, create_as_alias=False, delete_missing=False)
    validate >> LateChunkSwapAliasOperator(
        task_id="swap_alias",
        alias=param_ref("index"),
        new_index=NEW_INDEX,
        delete_old=param_ref("delete_old_index"),
        manifest_path=extract.output["manifest"],
        pending_dag_id="latechunk_ingest",
        outlets=[INDEX_ASSET],
        pool=INDEX_POOL,
        execution_timeout=execution_timeout("swap_alias"),
        **STAGING,
    )
