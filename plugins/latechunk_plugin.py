"""Airflow plugin: the run report (a FastAPI app served by the api-server, shown as a tab of every DAG run), the
trends page of each pipeline DAG (a tab of the DAG, and entries of the Plugins menu), and the operator extra links
that lead to the report."""

from __future__ import annotations

from typing import Any

from airflow.plugins_manager import AirflowPlugin
from latechunk_operators.links import QuarantineLink, RunReportLink

PIPELINE_DAGS = ("latechunk_ingest", "latechunk_reindex")


class _ReportApp:
    """The report app, imported only where it is served: every task process loads the plugins too, and the app
    pulls in the api-server's security stack (seconds of imports a task does not need)."""

    def __get__(self, instance: Any, owner: Any) -> list[dict[str, Any]]:
        from latechunk_operators.report_app import app

        return [{"app": app, "url_prefix": "/latechunk", "name": "Late chunking run report"}]


class LateChunkPlugin(AirflowPlugin):
    name = "latechunk"
    fastapi_apps = _ReportApp()
    external_views = [
        {
            "name": "Run report",
            "href": "/latechunk/runs/{DAG_ID}/{RUN_ID}",
            "destination": "dag_run",
            "url_route": "latechunk-report",
        },
        {
            "name": "Trends",
            "href": "/latechunk/dags/{DAG_ID}/trends",
            "destination": "dag",
            "url_route": "latechunk-trends",
        },
        *(
            {
                "name": f"Trends of {dag_id}",
                "href": f"/latechunk/dags/{dag_id}/trends",
                "destination": "nav",
                "category": "Late chunking",
                "url_route": f"latechunk-trends-{dag_id}",
            }
            for dag_id in PIPELINE_DAGS
        ),
    ]
    operator_extra_links = [RunReportLink(), QuarantineLink()]
