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
