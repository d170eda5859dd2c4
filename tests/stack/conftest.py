"""Fixtures of the stack suite: the running Airflow stack (scripts/airflow.sh: api-server, scheduler,
dag-processor, triggerer, Celery workers on PostgreSQL and Redis), driven only through its REST API and CLI, as users
and their automation drive it."""

from __future__ import annotations

import os
import random
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from airflow_client import AirflowClient, stack_env
from stack_support import GPU_WORKERS, Corpus, new_corpus
from support import REPO

FREE_DAYS = 40  # more than the stack suite's tests take in all


@pytest.fixture(scope="session")
def stack(servers) -> AirflowClient:
    """The local stack, started (or reused) by the same script users run, with two gpu workers (a worker missing
    from a reused stack is started); the pipeline DAGs unpaused."""
    env = {**os.environ, "LATECHUNK_GPU_WORKERS": os.environ.get("LATECHUNK_GPU_WORKERS", str(len(GPU_WORKERS)))}
    subprocess.run([str(REPO / "scripts" / "airflow.sh"), "start"], check=True, env=env)
    client = AirflowClient.from_stack()
    for dag_id in ("latechunk_ingest", "latechunk_reindex", "latechunk_events"):
        client.set_paused(dag_id, False)
    return client


@pytest.fixture(scope="session")
def minilm() -> str:
    return stack_env()["LATECHUNK_MODEL"]


@pytest.fixture(scope="session")
def free_days(stack) -> Iterator[datetime]:
    """Logical dates no other test of this stack has used (a DAG has one run per logical date), after the
    DAGs' start date and before today: consecutive days from a random start whose next `FREE_DAYS` days no run of a
    reused stack has taken (its earlier sessions' runs would otherwise be found instead of new ones)."""
    while True:
        day = datetime(2026, 1, 2, tzinfo=UTC) + timedelta(days=random.randrange(0, 200))
        window = {"logical_date_gte": (day - timedelta(days=2)).isoformat(),
                  "logical_date_lte": (day + timedelta(days=FREE_DAYS)).isoformat()}  # fmt: skip
        if not any(stack.dag_runs(dag_id, **window) for dag_id in ("latechunk_ingest", "latechunk_reindex")):
            break

    def days() -> Iterator[datetime]:
        nonlocal day
        while True:
            yield day
            day += timedelta(days=1)

    return days()


@pytest.fixture
def corpus(s3_client, es_client, minilm) -> Iterator[Corpus]:
    with new_corpus(s3_client, es_client, minilm) as created:
        yield created
