"""The run report inside the Airflow UI: a FastAPI app served by the api-server (see ``latechunk_plugin.py``).

``/latechunk/runs/{dag_id}/{run_id}`` shows what one run did (objects and what became of each, chunks, tokens,
time per stage, every validation check with its value, threshold and meaning, the quarantine list) and has a search
box that embeds a question with the run's model and shows the best chunks of the run's index (bounded: see
``ask_index``). ``/latechunk/dags/{dag_id}/trends`` plots the DAG's recent runs, each linked to its report. Access
goes through Airflow's own authentication: the UI's session cookie or a bearer token, and the right to read the DAG's
runs.
"""

from __future__ import annotations

import html
import json
import os
from typing import Any
from urllib.parse import quote

from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity
from airflow.api_fastapi.core_api.security import requires_access_dag
from fastapi import Depends, FastAPI, HTTPException
from fastapi.responses import HTMLResponse, JSONResponse
from starlette.concurrency import run_in_threadpool

from latechunk_operators.ask_index import AskLimits, AskService, QuestionRefused
from latechunk_operators.report_page import render_page

AWS_CONN_ID = os.environ.get("LATECHUNK_AWS_CONN_ID", "latechunk_s3")
ES_CONN_ID = os.environ.get("LATECHUNK_ES_CONN_ID", "latechunk_es")
PIPELINE_TASKS = ("extract", "annotate", "embed", "index", "validate")
STAGED_FILES = {"manifest.json": "manifest", "validation-report.json": "report"}
DEFAULT_TREND_RUNS, MAX_TREND_RUNS = 30, 200

app = FastAPI(title="latechunk run report")
can_read_runs = Depends(requires_access_dag("GET", DagAccessEntity.RUN))


def _es_client() -> Any:
    from latechunk_operators.hooks import elasticsearch_client

    return elasticsearch_client(ES_CONN_ID)


ask_service = AskService(AskLimits.from_environment(), es_client=_es_client)


def report_url(dag_id: str, run_id: str) -> str:
    return f"/latechunk/runs/{quote(dag_id, safe='')}/{quote(run_id, safe='')}"


def trends_url(dag_id: str) -> str:
    return f"/latechunk/dags/{quote(dag_id, safe='')}/trends"


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
    from latechunk.staging.tables import read_json

    from latechunk_operators.hooks import s3_client

    try:
        return read_json(s3_client(AWS_CONN_ID), uri)
    except ClientError as error:  # a failed or running run may not have it, an old run's may be gone: pages say so
        if error.response.get("Error", {}).get("Code") in ("NoSuchKey", "NoSuchBucket", "404"):
            return None
        raise


def build_report(dag_id: str, run_id: str) -> dict[str, Any]:
    from latechunk.reporting.run_report import build_run_report

    data = run_data(dag_id, run_id)
    manifest = read_staged(data["paths"].get("manifest"))
    validation = read_staged(data["paths"].get("report"))
    links = {STAGED_FILES[name]: f"{report_url(dag_id, run_id)}/files/{name}" for name in STAGED_FILES}
    report = build_run_report(
        dag_id=dag_id, run_id=run_id, manifest=manifest, validation=validation,
        summaries=data["summaries"], task_times=data["times"], links=links,
    )
    return {**report.to_dict(), "staged": data["paths"], "trends_url": trends_url(dag_id)}


@app.get("/runs/{dag_id}/{run_id}", response_class=HTMLResponse, dependencies=[can_read_runs])
async def report_page(dag_id: str, run_id: str, q: str = "") -> HTMLResponse:
    """The report; with ``q``, also the best chunks for that question (or why it was not answered: 413 for a
    question over the limits, 429 while the search workers are saturated, each with the page and its message)."""
    report = await run_in_threadpool(build_report, dag_id, run_id)
    hits, error, status = None, None, 200
    if q.strip():
        if report["index"] and report["model"]:
            try:
                hits = await ask_service.ask(
                    index=report["index"], model=report["model"], revision=report.get("model_revision"), question=q
                )
            except QuestionRefused as refused:
                error, status = str(refused), refused.status
            except Exception as failure:  # a search that fails is shown on the page, not as a server error
                error = f"{type(failure).__name__}: {failure}"
        else:
            error = "this run has no manifest yet: nothing to search"
    page = render_page(report, question=q[: ask_service.limits.max_chars], hits=hits, error=error)
    return HTMLResponse(page, status_code=status)


def recent_runs(dag_id: str, limit: int) -> list[tuple[str, str, str]]:
    """(run id, start time, state) of the DAG's last ``limit`` runs, oldest first."""
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        runs = session.execute(
            select(DagRun.run_id, DagRun.start_date, DagRun.run_after, DagRun.state)
            .where(DagRun.dag_id == dag_id).order_by(DagRun.run_after.desc()).limit(limit)
        ).all()
    return [(run_id, (start or after).isoformat(), str(state)) for run_id, start, after, state in reversed(runs)]


def trend_points(dag_id: str, limit: int) -> list:
    """Each recent run's figures, from the same sources as its report (XCom, manifest, validation report)."""
    from latechunk.reporting.trends import run_point

    points = []
    for run_id, when, state in recent_runs(dag_id, limit):
        try:
            report = build_report(dag_id, run_id)
        except HTTPException:  # a run whose tasks are not created yet has nothing to plot
            continue
        points.append(run_point(report, when=when, state=state, report_url=report_url(dag_id, run_id)))
    return points


@app.get("/dags/{dag_id}/trends", response_class=HTMLResponse, dependencies=[can_read_runs])
async def trends_page(dag_id: str, runs: int = DEFAULT_TREND_RUNS) -> HTMLResponse:
    from latechunk_operators.trends_page import render_trends

    limit = min(max(runs, 1), MAX_TREND_RUNS)
    points = await run_in_threadpool(trend_points, dag_id, limit)
    return HTMLResponse(render_trends(dag_id, points, limit=limit))


@app.get("/dags/{dag_id}/trends.json", dependencies=[can_read_runs])
async def trends_json(dag_id: str, runs: int = DEFAULT_TREND_RUNS) -> JSONResponse:
    from dataclasses import asdict

    points = await run_in_threadpool(trend_points, dag_id, min(max(runs, 1), MAX_TREND_RUNS))
    return JSONResponse([asdict(point) for point in points])


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
