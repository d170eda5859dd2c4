"""The demo's run follower: one line per task state, with the counts of the task's summary; a task that returns
none (the batches_done join) prints its state alone instead of ending the demo."""

from __future__ import annotations

import pytest
from airflow_client import AirflowError
from demo import RunFollower


class RunAnswers:
    """What the REST API answers for one run: each task's summary, 404 for a task without one."""

    def __init__(self, summaries: dict[str, dict], status: int = 404) -> None:
        self.summaries, self.status = summaries, status

    def xcom(self, dag_id, run_id, task_id, key="return_value", map_index=-1):
        if task_id not in self.summaries:
            raise AirflowError(f"GET .../{task_id}/xcomEntries/{key}: {self.status}", self.status)
        return self.summaries[task_id]


def instance(task_id: str, state: str, map_index: int = -1) -> dict:
    return {"task_id": task_id, "state": state, "map_index": map_index, "start_date": "2026-12-04T19:00:00"}


def test_a_task_without_a_summary_prints_its_state(capsys):
    follower = RunFollower(RunAnswers({"extract": {"objects_listed": 6, "objects_changed": 2}}), "run-1")
    follower({}, [instance("extract", "success"), instance("batches_done", "success")])
    lines = capsys.readouterr().out.splitlines()
    assert any("extract" in line and "objects_listed=6  objects_changed=2" in line for line in lines)
    assert any("batches_done" in line and line.rstrip().endswith("success") for line in lines)


def test_other_api_errors_still_stop_the_demo():
    follower = RunFollower(RunAnswers({}, status=500), "run-1")
    with pytest.raises(AirflowError):
        follower({}, [instance("index", "success")])
