"""Operator extra links: from a task straight to its run's report page (see ``report_app``)."""

from __future__ import annotations

from typing import Any

from airflow.sdk import BaseOperatorLink


def run_report_url(dag_id: str, run_id: str, anchor: str = "") -> str:
    from urllib.parse import quote

    from airflow.configuration import conf

    base = conf.get("api", "base_url", fallback="").rstrip("/")
    return f"{base}/latechunk/runs/{quote(dag_id, safe='')}/{quote(run_id, safe='')}{anchor}"


class RunReportLink(BaseOperatorLink):
    """The run report: counts, stage times, validation checks, quarantine, and a search box."""

    name = "Run report"

    def get_link(self, operator: Any, *, ti_key: Any) -> str:
        return run_report_url(ti_key.dag_id, ti_key.run_id)


class QuarantineLink(BaseOperatorLink):
    """The objects the run quarantined, each with its reason."""

    name = "Quarantine list"

    def get_link(self, operator: Any, *, ti_key: Any) -> str:
        return run_report_url(ti_key.dag_id, ti_key.run_id, "#quarantine")
