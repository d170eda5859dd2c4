"""Every DAG file in dags/ imports cleanly and defines the pipeline's DAGs."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
EXPECTED_DAG_IDS = {"latechunk_ingest", "latechunk_reindex"}


@pytest.fixture(scope="module")
def dag_bag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(REPO / "dags"))


def test_no_import_errors(dag_bag):
    assert dag_bag.import_errors == {}


def test_pipeline_dags_are_defined(dag_bag):
    assert EXPECTED_DAG_IDS <= set(dag_bag.dag_ids)


def test_prefix_is_the_runs_day_folder(dag_bag):
    from datetime import datetime
    from types import SimpleNamespace

    from latechunk_operators.params import PREFIX

    dag = dag_bag.dags["latechunk_ingest"]
    assert dag.get_task("extract").prefix == PREFIX
    template = dag.get_template_env().from_string(PREFIX)
    params = {"prefix": "in/", "partition_by_date": True}
    assert template.render(params=params, ds="2026-01-02") == "in/2026-01-02/"
    manual_run = SimpleNamespace(run_after=datetime(2026, 1, 5, 13, 30))
    assert template.render(params=params, dag_run=manual_run) == "in/2026-01-05/", "no logical date: run_after's day"
    assert template.render(params={**params, "partition_by_date": False}, ds="2026-01-02") == "in/"


def test_embed_runs_on_the_gpu_queue_and_validation_is_not_retried(dag_bag):
    for dag_id in EXPECTED_DAG_IDS:
        dag = dag_bag.dags[dag_id]
        assert dag.get_task("embed").queue == "gpu"
        assert dag.get_task("annotate").queue != "gpu"
        assert dag.get_task("validate").retries == 0
