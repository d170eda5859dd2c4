"""Small helpers shared by the test suites."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]

# The tiny random encoders' vectors carry no meaning (a text cannot find its document by them) and sit close
# together, so DAG runs with them turn the model-grounded validation checks off and the tests check the index
# exactly instead; tests/integration/test_validate_model.py covers those checks with a real model.
TINY_ENCODER_VALIDATION = {"query_retrieval_threshold": 0.0, "document_query_threshold": 0.0, "max_mean_cosine": 1.0}


def empty_bucket(s3_client, bucket: str) -> None:
    """Delete every object of a bucket, page by page."""
    paginator = s3_client.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=bucket):
        keys = [{"Key": obj["Key"]} for obj in page.get("Contents", [])]
        if keys:
            s3_client.delete_objects(Bucket=bucket, Delete={"Objects": keys, "Quiet": True})


@dataclass
class Pipeline:
    """One DAG with the run settings of a test; `run` executes a whole DAG run through dag.test()."""

    dag_id: str
    conf: dict[str, Any]

    def run(self, logical_date: datetime, **overrides: Any):
        from airflow.dag_processing.dagbag import DagBag

        dag = DagBag(dag_folder=str(REPO / "dags")).get_dag(self.dag_id)
        return dag.test(logical_date=logical_date, run_conf={**self.conf, **overrides})
