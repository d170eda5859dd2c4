"""The run report inside the Airflow UI: a FastAPI app served by the api-server (see ``latechunk_plugin.py``).

``/latechunk/runs/{dag_id}/{run_id}`` shows what one run did (objects and what became of each, chunks, tokens,
time per stage, every validation check with its value, threshold and meaning, the quarantine list) and has a search
box that embeds a question with the run's model and shows the best chunks of the run's index. Access goes through
Airflow's own authentication: the UI's session cookie or a bearer token, and the right to read the DAG's runs.
"""

from __future__ import annotations

import html
import json
import os
from functools import lru_cache
from typing import Any

from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity
from airflow.api_fastapi.core_api.security import requires_access_dag
from fastapi import Depends, FastAPI, HTTPException
from fastapi.responses import HTMLResponse, JSONResponse

from latechunk_operators.report_page import render_page

AWS_CONN_ID = os.environ.get("LATECHUNK_AWS_CONN_ID", "latechunk_s3")
ES_CONN_ID = os.environ.get("LATECHUNK_ES_CONN_ID", "latechunk_es")
PIPELINE_TASKS = ("extract", "annotate", "embed", "index", "validate")
STAGED_FILES = {"manifest.json": "manifest", "validation-report.json": "report"}

app = FastAPI(title="latechunk run report")
can_read_runs = Depends(requires_access_dag("GET", DagAccessEntity.RUN))


def run_data(dag_id: str, run_id: str) -> dict[str, Any]:
    """The run's task summaries (XCom) and task times from the metadata database."""
    from airflow.models.taskinstance import TaskInstance
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    summaries: dict[str, list[dict[str, Any]]] = {}
    times: dict[str, list[tuple[str | None, float]]] = {}
    paths: dict[str, str] = {}
    with create_session() as session:
        instances = session.scalars(
            select(TaskInstance).where(TaskInstance.dag_id == dag_id, TaskInstance.run_id == run_id)
        ).all()
        if not instances:
            raise HTTPException(404, f"no run {run_id!r} of DAG {dag_id!r}")
        for ti in instances:
            seconds = (ti.end_date - ti.start_date).total_seconds() if ti.start_date and ti.end_date else 0.0
            times.setdefault(ti.task_id, []).append((str(ti.state) if ti.state else None, seconds))
        rows = session.scalars(XComModel.get_many(run_id=run_id, dag_ids=dag_id, task_ids=PIPELINE_TASKS)).all()
        for row in sorted(rows, key=lambda row: row.map_index):
            value = XComModel.deserialize_value(row)
            if row.task_id == "extract" and row.key == "manifest":
                paths["manifest"] = value
            elif (row.task_id == "extract" and row.key == "summary") or (
                row.task_id != "extract" and row.key == "return_value" and isinstance(value, dict)
            ):
                summaries.setdefault(row.task_id, []).append(value)
    validate = (summaries.get("validate") or [{}])[0]
    if validate.get("report"):
        paths["report"] = validate["report"]
    elif "manifest" in paths:
        paths["report"] = f"{paths['manifest'].rpartition('/')[0]}/validation-report.json"
    return {"summaries": summaries, "times": times, "paths": paths}


def read_staged(uri: str | None) -> dict[str, Any] | None:
    """A staged JSON file (manifest, validation report); None when it is not there (yet)."""
    if not uri:
        return None
    from botocore.exceptions import ClientError
    from latechunk.staging import read_json

    from latechunk_operators.hooks import s3_client

    try:
        return read_json(s3_client(AWS_CONN_ID), uri)
    except ClientError as error:  # a failed or running run may not have it: the page says so
        if error.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
            return None
        raise


def build_report(dag_id: str, run_id: str) -> dict[str, Any]:
    from latechunk.run_report import build_run_report

    data = run_data(dag_id, run_id)
    manifest = read_staged(data["paths"].get("manifest"))
    validation = read_staged(data["paths"].get("report"))
    links = {STAGED_FILES.get(name, name): f"/latechunk/runs/{dag_id}/{run_id}/files/{name}" for name in STAGED_FILES}
    report = build_run_report(
        dag_id=dag_id, run_id=run_id, manifest=manifest, validation=validation,
        summaries=data["summaries"], task_times=data["times"], links=links,
    )
    return {**report.to_dict(), "staged": data["paths"]}


@lru_cache(maxsize=2)
def query_encoder(model: str):
    from latechunk.encoders import load_encoder

    return load_encoder(model)


def search(index: str, model: str, question: str, k: int = 5) -> list[dict[str, Any]]:
    """The run's index, searched the way users search it: the question embedded by the run's model, kNN."""
    from latechunk_operators.hooks import elasticsearch_client

    vector = query_encoder(model).encode_queries([question])[0]
    response = elasticsearch_client(ES_CONN_ID).search(
        index=index,
        knn={"field": "vector", "query_vector": vector.tolist(), "k": k, "num_candidates": max(50, 10 * k)},
        source=["key", "part", "chunk_id", "text", "char_start", "char_end"],
    )
    return [{**hit["_source"], "score": hit["_score"]} for hit in response["hits"]["hits"]]


@app.get("/runs/{dag_id}/{run_id}", response_class=HTMLResponse, dependencies=[can_read_runs])
def report_page(dag_id: str, run_id: str, q: str = "") -> HTMLResponse:
    report = build_report(dag_id, run_id)
    hits, error = None, None
    if q.strip():
        if report["index"] and report["model"]:
            try:
                hits = search(report["index"], report["model"], q.strip())
            except Exception as failure:  # a search that fails is shown on the page, not as a server error
                error = f"{type(failure).__name__}: {failure}"
        else:
            error = "this run has no manifest yet: nothing to search"
    return HTMLResponse(render_page(report, question=q, hits=hits, error=error))


@app.get("/runs/{dag_id}/{run_id}/report.json", dependencies=[can_read_runs])
def report_json(dag_id: str, run_id: str) -> JSONResponse:
    return JSONResponse(json.loads(json.dumps(build_report(dag_id, run_id), default=str)))


@app.get("/runs/{dag_id}/{run_id}/files/{name}", dependencies=[can_read_runs])
def staged_file(dag_id: str, run_id: str, name: str) -> JSONResponse:
    """The run's staged manifest or validation report, as stored."""
    if name not in STAGED_FILES:
        raise HTTPException(404, f"no staged file {html.escape(name)!r}; one of {sorted(STAGED_FILES)}")
    content = read_staged(run_data(dag_id, run_id)["paths"].get(STAGED_FILES[name]))
    if content is None:
        raise HTTPException(404, f"{name} is not staged for this run (yet)")
    return JSONResponse(json.loads(json.dumps(content, default=str)))
