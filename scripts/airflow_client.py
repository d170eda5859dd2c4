"""A small client of Airflow 3's REST API (``/api/v2``), as users' automation talks to a running Airflow.

Used by the demo, the end-to-end tests and ``scripts/airflow.sh`` (``python scripts/airflow_client.py ready``).
``AirflowClient.from_stack()`` connects to the local stack that ``scripts/airflow.sh start`` runs.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[1]
STACK = REPO / "var" / "airflow-stack"
FINISHED = {"success", "failed"}


class AirflowError(RuntimeError):
    def __init__(self, message: str, status_code: int | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code  # the HTTP status of a refused request


class AirflowClient:
    def __init__(self, url: str, user: str, password: str, timeout: float = 30.0) -> None:
        self.url = url.rstrip("/")
        self.user, self.password = user, password
        self._http = httpx.Client(base_url=self.url, timeout=timeout)
        self._token: str | None = None

    @classmethod
    def from_stack(cls) -> AirflowClient:
        """The local stack's api-server and admin login (see scripts/airflow.sh)."""
        env = stack_env()
        user, _, _ = env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS"].partition(":")
        passwords = json.loads(Path(env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"]).read_text())
        return cls(env["AIRFLOW__API__BASE_URL"], user, passwords[user])

    def _authenticate(self) -> str:
        response = self._http.post("/auth/token", json={"username": self.user, "password": self.password})
        if response.status_code >= 400:
            raise AirflowError(f"login to {self.url} failed: {response.status_code} {response.text[:200]}")
        return response.json()["access_token"]

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        extra_headers = kwargs.pop("headers", {})
        for attempt in range(2):
            if self._token is None:
                self._token = self._authenticate()
            headers = {**extra_headers, "Authorization": f"Bearer {self._token}"}
            response = self._http.request(method, f"/api/v2{path}", headers=headers, **kwargs)
            if response.status_code == 401 and attempt == 0:
                self._token = None  # expired: log in again once
                continue
            if response.status_code >= 400:
                detail = f"{method} {path}: {response.status_code} {response.text[:500]}"
                raise AirflowError(detail, response.status_code)
            return response.json() if response.content else None
        raise AirflowError(f"{method} {path}: not authorised")

    def health(self) -> dict[str, Any]:
        return self._http.get("/api/v2/monitor/health").json()

    def set_paused(self, dag_id: str, paused: bool) -> None:
        self.request("PATCH", f"/dags/{dag_id}", json={"is_paused": paused})

    def pool(self, name: str) -> dict[str, Any]:
        return self.request("GET", f"/pools/{name}")

    def set_pool_slots(self, name: str, slots: int) -> None:
        """Resize a pool (0 holds every task of the pool that is not running yet)."""
        pool = self.pool(name)
        body = {"name": name, "slots": slots, "description": pool["description"],
                "include_deferred": pool["include_deferred"]}  # fmt: skip
        self.request("PATCH", f"/pools/{name}", json=body)

    def trigger(
        self, dag_id: str, conf: dict[str, Any] | None = None, logical_date: datetime | None = None,
        run_id: str | None = None,
    ) -> str:
        """Trigger a run, as the UI's trigger form does; returns its run id."""
        body: dict[str, Any] = {"conf": conf or {}, "logical_date": logical_date.isoformat() if logical_date else None}
        if run_id:
            body["dag_run_id"] = run_id
        return self.request("POST", f"/dags/{dag_id}/dagRuns", json=body)["dag_run_id"]

    def dag_run(self, dag_id: str, run_id: str) -> dict[str, Any]:
        return self.request("GET", f"/dags/{dag_id}/dagRuns/{run_id}")

    def dag_runs(self, dag_id: str, **filters: Any) -> list[dict[str, Any]]:
        params = {"limit": 100, "order_by": "logical_date", **filters}
        return self.request("GET", f"/dags/{dag_id}/dagRuns", params=params)["dag_runs"]

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        """Every task instance of a run, mapped ones included (one per map index)."""
        found: list[dict[str, Any]] = []
        while True:
            page = self.request(
                "GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances", params={"limit": 100, "offset": len(found)}
            )
            found.extend(page["task_instances"])
            if len(found) >= page["total_entries"] or not page["task_instances"]:
                return found

    def xcom(self, dag_id: str, run_id: str, task_id: str, key: str = "return_value", map_index: int = -1) -> Any:
        entry = self.request(
            "GET",
            f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/{key}",
            params={"map_index": map_index, "deserialize": True},
        )
        return entry["value"]

    def task_log(self, dag_id: str, run_id: str, task_id: str, try_number: int = 1, map_index: int = -1) -> str:
        content = self.request(
            "GET",
            f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/logs/{try_number}",
            params={"map_index": map_index, "full_content": True},
            headers={"Accept": "application/json"},
        )["content"]
        return "\n".join(_log_line(line) for line in content)

    def wait_for_run(
        self, dag_id: str, run_id: str, timeout: float = 900, poll: float = 3,
        on_poll: Callable[[dict[str, Any], list[dict[str, Any]]], None] | None = None,
    ) -> dict[str, Any]:
        """Poll until the run has finished; returns the run. ``on_poll(run, task_instances)`` sees each poll."""
        deadline = time.monotonic() + timeout
        while True:
            run = self.dag_run(dag_id, run_id)
            if on_poll is not None:
                on_poll(run, self.task_instances(dag_id, run_id))
            if run["state"] in FINISHED:
                return run
            if time.monotonic() > deadline:
                raise AirflowError(f"{dag_id} run {run_id} still {run['state']} after {timeout:.0f}s")
            time.sleep(poll)

    def wait_ready(
        self, dag_ids: list[str], timeout: float, parsed_after: float | None = None,
        producers: tuple[str, ...] = (),
    ) -> None:
        """Until the scheduler, dag-processor and triggerer are healthy and the DAGs are parsed without errors.

        ``parsed_after`` (epoch seconds, when the services started): until each DAG was parsed since then too, as
        a restart keeps the metadata database and the DAGs the previous start parsed. ``producers``
        (``dag_id.task_id``): until the asset each of them emits is active. Airflow activates an asset only when no
        active asset has its name or URI: after a restart with another ``LATECHUNK_INDEX`` the index asset's new
        URI waits until the scheduler's clean-up retires the old one (up to a minute), and a run's publish task
        fails on an inactive asset meanwhile."""
        deadline = time.monotonic() + timeout
        waiting_for = "the api-server"
        while time.monotonic() < deadline:
            try:
                health = self.health()
                unhealthy = [name for name in ("metadatabase", "scheduler", "dag_processor", "triggerer")
                             if (health.get(name) or {}).get("status") != "healthy"]
                errors = self.request("GET", "/importErrors")["import_errors"]
                if errors:
                    raise AirflowError("DAG import errors:\n" + "\n".join(e["stack_trace"] for e in errors))
                dags = self.request("GET", "/dags", params={"limit": 100})["dags"]
                parsed = {dag["dag_id"] for dag in dags if parsed_after is None or (
                    dag.get("last_parsed_time")
                    and datetime.fromisoformat(dag["last_parsed_time"]).timestamp() >= parsed_after)}
                missing = [f"DAG {dag_id}" for dag_id in sorted(set(dag_ids) - parsed)]
                if producers:
                    assets = self.request("GET", "/assets", params={"limit": 100})["assets"]
                    active = {f"{task['dag_id']}.{task['task_id']}" for asset in assets
                              for task in asset.get("producing_tasks") or []}  # fmt: skip
                    missing += [f"the asset of {producer}" for producer in producers if producer not in active]
                if not unhealthy and not missing:
                    return
                waiting_for = ", ".join(unhealthy + missing)
            except httpx.TransportError as error:
                waiting_for = f"the api-server ({error})"
            time.sleep(2)
        raise AirflowError(f"Airflow not ready after {timeout:.0f}s: waiting for {waiting_for}")


def _log_line(line: Any) -> str:
    """A structured log line as the UI shows it: the event, then any exception's type and message."""
    if not isinstance(line, dict):
        return str(line)
    errors = [f"{error.get('exc_type')}: {error.get('exc_value')}" for error in line.get("error_detail") or []]
    return "\n".join([line.get("event", ""), *errors])


def stack_env() -> dict[str, str]:
    """The variables of var/airflow-stack/airflow.env (written by scripts/airflow.sh start)."""
    path = STACK / "airflow.env"
    if not path.exists():
        raise AirflowError("the local Airflow stack was never started: run scripts/airflow.sh start")
    values = {}
    for line in path.read_text().splitlines():
        name, _, value = line.removeprefix("export ").partition("=")
        values[name] = value.strip("'")
    return values


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Wait until a running Airflow is ready to run the pipeline.")
    parser.add_argument("command", choices=["ready"])
    parser.add_argument("--timeout", type=float, default=300)
    parser.add_argument("--dags", nargs="+", default=["latechunk_ingest", "latechunk_reindex", "latechunk_events"])
    parser.add_argument("--parsed-after", type=float, help="epoch seconds: wait for each DAG to be parsed since")
    parser.add_argument(
        "--producers", nargs="*", help="dag_id.task_id: wait for the asset each emits to be active",
        default=["latechunk_ingest.publish", "latechunk_events.publish", "latechunk_reindex.swap_alias"],
    )
    args = parser.parse_args(argv)
    try:
        AirflowClient.from_stack().wait_ready(args.dags, args.timeout, args.parsed_after, tuple(args.producers))
    except AirflowError as error:
        print(f"[latechunk] error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
