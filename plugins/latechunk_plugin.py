"""Airflow plugin: the run report (a FastAPI app served by the api-server, shown as a tab of every DAG run) and the
operator extra links that lead to it."""

from __future__ import annotations

from typing import Any

from airflow.plugins_manager import AirflowPlugin
from latechunk_operators.links import QuarantineLink, RunReportLink


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
        }
    ]
    operator_extra_links = [RunReportLink(), QuarantineLink()]
