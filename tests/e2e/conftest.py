"""Running the pipeline DAGs for real: dag.test() against the metadata DB, the local servers and a tiny encoder."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]


@dataclass
class Pipeline:
    """One DAG with the run settings of a test; `run` executes a whole DAG run through dag.test()."""

    dag_id: str
    conf: dict[str, Any]

    def run(self, logical_date: datetime, **overrides: Any):
        from airflow.dag_processing.dagbag import DagBag

        dag = DagBag(dag_folder=str(REPO / "dags")).get_dag(self.dag_id)
        return dag.test(logical_date=logical_date, run_conf={**self.conf, **overrides})


@pytest.fixture
def ingest(airflow_home, connections, s3_bucket, staging_bucket, es_index, tiny_jina_model) -> Pipeline:
    return Pipeline(
        "latechunk_ingest",
        {
            "bucket": s3_bucket,
            "prefix": "incoming/",
            "index": es_index,
            "model": tiny_jina_model,
            "staging_bucket": staging_bucket,
            "chunking_strategy": "sentences",
            "sentences_per_chunk": 1,
            "window": 64,
            "window_overlap": 16,
            "docs_per_batch": 3,
            "validation_sample_size": 20,
        },
    )
