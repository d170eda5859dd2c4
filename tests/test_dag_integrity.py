"""Every DAG file in dags/ imports cleanly and defines the pipeline's DAGs."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
EXPECTED_DAG_IDS = {"latechunk_ingest", "latechunk_reindex", "latechunk_events"}


@pytest.fixture(scope="module")
def dag_bag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(REPO / "dags"))


def test_no_import_errors(dag_bag):
    assert dag_bag.import_errors == {}


def test_pipeline_dags_are_defined(dag_bag):
    assert EXPECTED_DAG_IDS <= set(dag_bag.dag_ids)


def test_daily_runs_cover_the_day_that_ended(dag_bag):
    """The scheduled run after midnight of D+1 has the data interval [D, D+1); a run triggered with logical date
    L covers the day before L; the extract task reads the folders of that interval."""
    from datetime import UTC, datetime

    from airflow.timetables.base import DataInterval, TimeRestriction
    from airflow.timetables.interval import CronDataIntervalTimetable
    from latechunk_operators.params import param_ref

    declared = dag_bag.dags["latechunk_ingest"].timetable
    assert (type(declared).__name__, declared.expression, str(declared.timezone)) == (
        "CronDataIntervalTimetable",
        "0 0 * * *",
        "UTC",
    )
    timetable = CronDataIntervalTimetable(declared.expression, timezone=declared.timezone)
    restriction = TimeRestriction(earliest=datetime(2026, 1, 1, tzinfo=UTC), latest=None, catchup=True)
    first = timetable.next_dagrun_info(last_automated_data_interval=None, restriction=restriction)
    assert (first.data_interval.start, first.data_interval.end) == (
        datetime(2026, 1, 1, tzinfo=UTC),
        datetime(2026, 1, 2, tzinfo=UTC),
    )
    assert first.run_after == datetime(2026, 1, 2, tzinfo=UTC)
    manual = timetable.infer_manual_data_interval(run_after=datetime(2026, 3, 5, tzinfo=UTC))
    assert manual == DataInterval(datetime(2026, 3, 4, tzinfo=UTC), datetime(2026, 3, 5, tzinfo=UTC))
    extract = dag_bag.dags["latechunk_ingest"].get_task("extract")
    assert (extract.prefix, extract.partition_by_date) == (param_ref("prefix"), param_ref("partition_by_date"))


def test_a_manual_run_without_a_logical_date_covers_the_day_before_it_ran():
    from datetime import UTC, datetime
    from types import SimpleNamespace

    from latechunk_operators.extract import data_interval

    run = SimpleNamespace(run_after=datetime(2026, 1, 5, 13, 30, tzinfo=UTC))
    assert data_interval({"dag_run": run}) == (datetime(2026, 1, 4, tzinfo=UTC), datetime(2026, 1, 5, tzinfo=UTC))
    start, end = datetime(2026, 2, 1, tzinfo=UTC), datetime(2026, 2, 2, tzinfo=UTC)
    context = {"dag_run": run, "data_interval_start": start, "data_interval_end": end}
    assert data_interval(context) == (start, end)


def test_embed_runs_on_the_gpu_queue_and_validation_is_not_retried(dag_bag):
    for dag_id in EXPECTED_DAG_IDS:
        dag = dag_bag.dags[dag_id]
        assert dag.get_task("embed").queue == "gpu"
        assert dag.get_task("embed").pool == "gpu"
        assert dag.get_task("annotate").queue != "gpu"
        assert dag.get_task("validate").retries == 0


def test_the_tasks_that_write_or_check_the_served_index_take_the_one_index_writes_pool(dag_bag):
    """Overlapping runs of all three DAGs (a backfill beside a scheduled run included) write and check the served
    index one at a time (latechunk.pipeline.overlap); the reindex builds its own index outside the pool and takes it
    for the catch-up and swap. The other tasks do not wait on it."""
    writers = {
        "latechunk_ingest": {"index", "validate"},
        "latechunk_events": {"index", "validate"},
        "latechunk_reindex": {"swap_alias"},
    }
    for dag_id, tasks in writers.items():
        for task in dag_bag.dags[dag_id].tasks:
            assert (task.pool == "latechunk_index_writes") == (task.task_id in tasks), (dag_id, task.task_id)


def templated_strings(value):
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from templated_strings(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from templated_strings(item)


def test_only_params_without_a_default_are_required_and_a_cleared_field_gets_the_default(dag_bag):
    """The trigger form marks a field required when its type excludes null. A param with a default is optional,
    and every template falls back to the DAG's default when a run sends null for it (a cleared field)."""
    from jinja2.nativetypes import NativeEnvironment

    for dag_id in EXPECTED_DAG_IDS:
        dag = dag_bag.dags[dag_id]
        defaults = {name: dag.params[name] for name in dag.params}
        for name, default in defaults.items():
            kind = dag.params.get_param(name).schema.get("type")
            if kind is not None and default is not None:
                assert isinstance(kind, list) and "null" in kind, f"{dag_id}.{name} is marked required in the form"
        cleared = {name: None for name in dag.params}
        run_id = "manual__2026-01-01T00:00:00+00:00"
        for task in dag.tasks:
            for field in task.template_fields:
                value = task.partial_kwargs.get(field) if hasattr(task, "partial_kwargs") else getattr(task, field)
                for template in templated_strings(value):
                    if "params." not in template:
                        continue
                    assert "dag.params." in template, f"{dag_id}.{task.task_id}.{field}: {template} has no default"
                    compiled = NativeEnvironment().from_string(template)
                    expected = compiled.render(params=defaults, dag=dag, run_id=run_id)
                    assert compiled.render(params=cleared, dag=dag, run_id=run_id) == expected, (task.task_id, field)


def test_every_task_has_its_stage_execution_timeout(dag_bag):
    from datetime import timedelta

    from latechunk_operators.params import TASK_TIMEOUT_MINUTES

    for dag_id in EXPECTED_DAG_IDS:
        # An EmptyOperator (batches_done) never reaches a worker: the scheduler marks it done.
        for task in [task for task in dag_bag.dags[dag_id].tasks if task.task_type != "EmptyOperator"]:
            expected = timedelta(minutes=TASK_TIMEOUT_MINUTES[task.task_id])
            assert task.execution_timeout == expected, (dag_id, task.task_id, task.execution_timeout)


def test_an_execution_timeout_comes_from_its_environment_variable(monkeypatch):
    from datetime import timedelta

    from latechunk_operators.params import execution_timeout

    monkeypatch.setenv("LATECHUNK_EMBED_TIMEOUT_MIN", "90")
    monkeypatch.setenv("LATECHUNK_SWAP_ALIAS_TIMEOUT_MIN", "0.5")
    assert execution_timeout("embed") == timedelta(minutes=90)
    assert execution_timeout("swap_alias") == timedelta(seconds=30)
    assert execution_timeout("index") == timedelta(minutes=180)


def test_a_task_timeout_is_not_an_exception_that_extraction_would_quarantine():
    """load_documents quarantines an object on any Exception; Airflow's execution_timeout must get through it."""
    from airflow.sdk.exceptions import AirflowTaskTimeout

    assert issubclass(AirflowTaskTimeout, BaseException) and not issubclass(AirflowTaskTimeout, Exception)


def test_a_failed_batch_lets_the_ingest_index_the_others_and_a_failed_extract_stops_it(dag_bag):
    """Ingest: `batches_done` waits for every batch whatever its end (all_done), so a failed annotate or embed
    reaches index as a success; index runs unless an upstream failed (none_failed), and its upstreams are extract
    and batches_done only, so a failed extract stops it (and a run with no batch, all skipped, still indexes).
    Validate runs after a successful index, and publish after a passed validate, which fails the run on failed
    batches. Reindex: any failed batch stops index (all_success), so the alias never moves to a partial index."""
    ingest = dag_bag.dags["latechunk_ingest"]
    done, index = ingest.get_task("batches_done"), ingest.get_task("index")
    assert (done.trigger_rule, done.upstream_task_ids) == ("all_done", {"embed"})
    assert ingest.get_task("embed").upstream_task_ids == {"extract", "annotate"}
    assert (index.trigger_rule, index.upstream_task_ids) == ("none_failed", {"extract", "batches_done"})
    validate = ingest.get_task("validate")
    assert (validate.trigger_rule, validate.upstream_task_ids) == ("all_success", {"extract", "index"})
    assert ingest.get_task("publish").upstream_task_ids == {"validate"}
    assert ingest.get_task("publish").trigger_rule == "all_success"

    reindex = dag_bag.dags["latechunk_reindex"]
    index = reindex.get_task("index")
    assert "batches_done" not in reindex.task_ids
    assert (index.trigger_rule, index.upstream_task_ids) == ("all_success", {"extract", "embed"})
    # extract: the swap catches the new index up from the reindex's manifest (latechunk.pipeline.catch_up).
    assert reindex.get_task("swap_alias").upstream_task_ids == {"extract", "validate"}


def test_a_batchs_embed_outranks_the_annotates_still_waiting(dag_bag):
    """The weights the scheduler gives the task instances (from the serialized DAG, as it reads them): embed
    above annotate, so a freed slot of the DAG's max_active_tasks goes to a batch's embed as soon as its annotate
    is done rather than to the next annotate (by the downstream rule, annotate came first)."""
    from types import SimpleNamespace

    from airflow.serialization.serialized_objects import DagSerialization

    for dag_id in EXPECTED_DAG_IDS:
        dag = DagSerialization.from_dict(DagSerialization.to_dict(dag_bag.dags[dag_id]))
        weight = {task: dag.get_task(task).weight_rule.get_weight(SimpleNamespace(task=dag.get_task(task)))
                  for task in ("annotate", "embed")}  # fmt: skip
        assert weight["embed"] > weight["annotate"], (dag_id, weight)


def test_the_scheduled_and_reindex_extract_is_planned_mapped_per_key_range_on_the_default_queue_and_gathered(dag_bag):
    """plan_extract -> extract_shard (mapped over the planned key ranges) -> extract, which keeps the id the later
    stages, the run report and the UI links read; the event-driven DAG reads its few keys in one extract task."""
    for dag_id in ("latechunk_ingest", "latechunk_reindex"):
        dag = dag_bag.dags[dag_id]
        plan, shard, extract = (dag.get_task(task) for task in ("plan_extract", "extract_shard", "extract"))
        assert shard.upstream_task_ids == {"plan_extract"} and extract.upstream_task_ids == {"extract_shard"}
        assert shard.expand_input.value["shard"].operator is plan
        assert {plan.queue, shard.queue, extract.queue} == {"default"}
        assert shard.partial_kwargs.get("pool", "default_pool") == "default_pool"
    assert "extract_shard" not in dag_bag.dags["latechunk_events"].task_ids


def test_the_event_dag_runs_on_the_watched_asset_one_run_at_a_time(dag_bag):
    """Scheduled on the object-events asset, whose watcher is our batching trigger on the Kafka topic (carrying
    each burst of messages unparsed); up to three runs at once, so that a burst does not wait for the previous run's
    validation; its
    extract reads the events' keys."""
    dag = dag_bag.dags["latechunk_events"]
    (asset,) = dag.timetable.asset_condition.objects
    assert asset.name == "latechunk_object_events"
    (watcher,) = asset.watchers
    classpath, kwargs = watcher.trigger.serialize()
    assert classpath == "latechunk_operators.event_triggers.KafkaMessageBatchTrigger"
    assert kwargs["topics"] == ["latechunk-s3-events"]
    assert kwargs["kafka_config_id"] == "latechunk_kafka"
    assert dag.max_active_runs == 3, "a burst starts a run while earlier ones validate (LATECHUNK_EVENT_RUNS)"
    assert dag.get_task("extract").from_events is True
    sharded = {"plan_extract", "extract_shard"}
    assert set(dag.task_ids) == set(dag_bag.dags["latechunk_ingest"].task_ids) - sharded | {"requeue_late_events"}
    requeue = dag.get_task("requeue_late_events")
    assert requeue.inlets == requeue.outlets == [asset] and not requeue.upstream_task_ids


def test_the_watcher_carries_every_kafka_message_on_even_a_null_or_undecodable_one():
    from latechunk_operators.events import kafka_message_payload

    class Message:
        def __init__(self, value):
            self._value = value

        def value(self):
            return self._value

        def timestamp(self):
            return 1, 1_796_400_000_000

        def topic(self):
            return "latechunk-s3-events"

        def partition(self):
            return 0

        def offset(self):
            return 7

    payloads = [kafka_message_payload(Message(value)) for value in (b'{"Records": []}', None, b"\xff\xfe")]
    assert [payload["message"] for payload in payloads] == ['{"Records": []}', None, "\ufffd\ufffd"]
    assert all(payload["source"] == "kafka:latechunk-s3-events/0@7" for payload in payloads)
