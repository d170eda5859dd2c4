"""Ingest what the bucket's notifications announce, a minute after upload instead of the next day.

The ``latechunk_object_events`` asset has a watcher in the triggerer (`latechunk_operators.events`: Kafka by
default, SQS with ``LATECHUNK_EVENTS_SCHEME=sqs``): every notification becomes an asset event, and this DAG runs on
them. It runs the same tasks as ``latechunk_ingest`` (extract -> [annotate -> embed] per batch -> batches_done ->
index -> validate -> publish), but extract reads only the keys the run's events name, each by its current state
(HEAD): an object overwritten since is read as it is now, an object deleted since leaves the index, duplicates and
reordered events change nothing. Events outside ``bucket``/``prefix``, of another kind or malformed are counted in
the run report and logged with their message.

Up to ``LATECHUNK_EVENT_RUNS`` runs (3) at once: a burst of notifications starts a run while earlier runs still
embed, index or validate (their index and validate tasks take turns in the index-writes pool, and a stale version
never overwrites a newer one: `latechunk.pipeline.overlap`); events that arrive while that many runs are busy wait,
and the next run takes them all (``requeue_late_events`` makes sure there is a next run for them). The daily
``latechunk_ingest`` run stays the reconciliation: it lists the prefix and catches whatever the events missed (a
broker outage, a watcher stopped). Both write the same index, each object complete or absent and keyed by its ETag
(see docs/deployment.md).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import DAG
from latechunk_operators.events import RequeueLateEventsOperator, object_events_asset
from latechunk_operators.params import (
    EVENT_RUNS,
    INDEX_ASSET,
    TASK_RETRIES,
    execution_timeout,
    ingest_params,
    param_ref,
)
from latechunk_operators.publish import LateChunkPublishOperator
from latechunk_operators.tasks import late_chunking_tasks

OBJECT_EVENTS = object_events_asset()

with DAG(
    dag_id="latechunk_events",
    description="Bucket notifications -> the objects they name -> late-chunked embeddings -> Elasticsearch",
    schedule=[OBJECT_EVENTS],
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=EVENT_RUNS,
    # Active once deployed: uploads become searchable without anyone unpausing or triggering anything.
    is_paused_upon_creation=False,
    params=ingest_params(),
    render_template_as_native_obj=True,
    default_args=TASK_RETRIES,
    dagrun_timeout=timedelta(hours=2),
    tags=["latechunk", "ingest", "events"],
    doc_md=__doc__,
) as dag:
    _, validate = late_chunking_tasks(
        index_name=param_ref("index"),
        create_as_alias=True,
        isolate_failed_batches=True,
        from_events=True,
        shard_extract=False,
        delete_missing=param_ref("delete_missing"),
    )
    validate >> LateChunkPublishOperator(
        task_id="publish",
        asset=INDEX_ASSET,
        index_name=param_ref("index"),
        execution_timeout=execution_timeout("publish"),
    )
    # Events that came after this run's window but before it started get the next run (see the operator).
    RequeueLateEventsOperator(task_id="requeue_late_events", asset=OBJECT_EVENTS, retries=0,
                              execution_timeout=execution_timeout("requeue_late_events"))  # fmt: skip
