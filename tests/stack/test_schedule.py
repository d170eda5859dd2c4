"""Schedule semantics on the running stack: which folder a scheduled, a manual and a backfill run reads, late
files, deletions anywhere under the prefix, and re-runs that write nothing. Only the REST API and the CLI."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta

import pytest
from stack_support import TOPICS, airflow_cli, assert_ran_on_the_right_workers, run_and_wait

pytestmark = pytest.mark.slow


def folder(day: datetime) -> str:
    return f"incoming/{day:%Y-%m-%d}/"


def extract_summary(stack, run: dict) -> dict:
    return stack.xcom("latechunk_ingest", run["dag_run_id"], "extract", key="summary")


def test_the_scheduled_run_reads_the_day_that_just_ended(stack):
    """Unpausing the daily DAG makes the scheduler create the run of the last complete day, and that run reads
    that day's folder (and the look-back folders before it), never the day that has just begun."""
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    deadline = time.monotonic() + 180
    while not (runs := stack.dag_runs("latechunk_ingest", run_type="scheduled")):
        assert time.monotonic() < deadline, "the scheduler created no scheduled run"
        time.sleep(3)
    latest = max(runs, key=lambda run: run["logical_date"])
    run = stack.wait_for_run("latechunk_ingest", latest["dag_run_id"], timeout=900)
    assert run["state"] == "success"
    assert datetime.fromisoformat(run["data_interval_end"]) == today
    assert datetime.fromisoformat(run["data_interval_start"]) == today - timedelta(days=1)
    summary = extract_summary(stack, run)
    lookback = [folder(today - timedelta(days=offset)) for offset in (3, 2, 1)]
    assert summary["select_prefixes"] == lookback


def test_a_run_with_a_logical_date_reads_the_previous_days_folder(stack, corpus, free_days):
    """Triggered with logical date L, a run covers [L-1d, L): the folder of L-1d, not L's, and nothing older than
    the look-back. Two keys with the same content pass validation, and so does a probe typed in the form's shape."""
    day = next(free_days)
    next(free_days)
    read = {f"{folder(day)}reef.txt": TOPICS["reef.txt"], f"{folder(day)}bread.txt": TOPICS["bread.txt"],
            f"{folder(day)}reef-copy.txt": TOPICS["reef.txt"],
            f"{folder(day - timedelta(days=1))}engine.txt": TOPICS["engine.txt"]}
    not_read = {f"{folder(day + timedelta(days=1))}comet.txt": TOPICS["comet.txt"],
                f"{folder(day - timedelta(days=5))}chess.txt": TOPICS["chess.txt"]}
    etags = {key: corpus.put(key, text) for key, text in {**read, **not_read}.items()}
    probes = (
        f"Who studies bleaching coral reefs? => {folder(day)}reef.txt, {folder(day)}reef-copy.txt\n"
        f"\nHow is sourdough leavened? => {folder(day)}bread.txt\n"
    )
    run = run_and_wait(stack, "latechunk_ingest", corpus.run_conf(probes=probes, lookback_days=2),
                       logical_date=day + timedelta(days=1))

    assert corpus.indexed_etags() == {key: etags[key] for key in read}
    summary = extract_summary(stack, run)
    assert summary["select_prefixes"][-1] == folder(day) and len(summary["select_prefixes"]) == 3
    report = stack.xcom("latechunk_ingest", run["dag_run_id"], "validate")
    assert report["passed"] and report["checks"]["probes"] == 1.0
    events = stack.request("GET", "/assets/events", params={"source_dag_id": "latechunk_ingest",
                                                            "source_run_id": run["dag_run_id"]})["asset_events"]
    assert len(events) == 1, "one index event for a run that changed the index"
    extra = events[0]["extra"]
    assert (extra["index"], extra["documents_written"], extra["validation"]) == (corpus.index, len(read), "passed")
    assert extra["physical_index"][0].startswith(corpus.index + "-")
    assert_ran_on_the_right_workers(stack, "latechunk_ingest", run["dag_run_id"])


def test_a_malformed_probe_fails_the_run_at_once_with_a_clear_message(stack, corpus, free_days):
    corpus.put("incoming/a.txt", TOPICS["tea.txt"])
    run = run_and_wait(stack, "latechunk_ingest", corpus.run_conf(probes="green tea without an arrow"),
                       logical_date=next(free_days), expect="failed")
    instances = {ti["task_id"]: ti for ti in stack.task_instances("latechunk_ingest", run["dag_run_id"])}
    plan = instances["plan_extract"]
    assert plan["state"] == "failed" and plan["try_number"] == 1, "not retried"
    assert instances["extract"]["state"] == "upstream_failed"
    log = stack.task_log("latechunk_ingest", run["dag_run_id"], "plan_extract")
    assert "probe line 1 'green tea without an arrow' is malformed" in log
    assert not corpus.es.indices.exists(index=corpus.index), "nothing written"


def backfill(stack, first: datetime, last: datetime, conf: dict, *reprocess: str) -> list[dict]:
    """`airflow backfill create` over [first, last], waited for through the REST API; returns its runs."""
    before = {b["id"] for b in stack.request("GET", "/backfills", params={"dag_id": "latechunk_ingest"})["backfills"]}
    airflow_cli(
        "backfill", "create", "--dag-id", "latechunk_ingest", "--from-date", first.date().isoformat(),
        "--to-date", last.date().isoformat(), "--max-active-runs", "1", "--dag-run-conf", json.dumps(conf),
        *reprocess,
    )
    deadline = time.monotonic() + 1800
    while True:
        backfills = stack.request("GET", "/backfills", params={"dag_id": "latechunk_ingest"})["backfills"]
        new = [b for b in backfills if b["id"] not in before]
        assert len(new) == 1, f"expected one new backfill, found {new}"
        if new[0]["completed_at"]:
            break
        assert time.monotonic() < deadline, "backfill did not complete"
        time.sleep(5)
    runs = [run for run in stack.dag_runs("latechunk_ingest", logical_date_gte=first.isoformat(),
                                          logical_date_lte=last.isoformat())]
    return sorted(runs, key=lambda run: run["logical_date"])


def test_backfill_late_files_and_deletions(stack, corpus, free_days):
    """A 2-day backfill ingests exactly each day's folder (not the next day's); reprocessing the range writes
    nothing; a file that arrives late in an earlier folder and a file deleted from an earlier folder are both
    reflected by the next scheduled-style run."""
    days = [next(free_days) for _ in range(4)]
    layout = {days[0]: ["reef.txt", "bread.txt"], days[1]: ["engine.txt", "comet.txt"], days[2]: ["chess.txt"]}
    etags = {f"{folder(day)}{name}": corpus.put(f"{folder(day)}{name}", TOPICS[name])
             for day, names in layout.items() for name in names}
    conf = corpus.run_conf(lookback_days=0)

    runs = backfill(stack, days[0], days[1], conf)
    assert [run["state"] for run in runs] == ["success"] * 2
    for run, day in zip(runs, days[:2], strict=True):
        assert extract_summary(stack, run)["select_prefixes"] == [folder(day)]
        assert_ran_on_the_right_workers(stack, "latechunk_ingest", run["dag_run_id"])
    in_first_two = {key: etag for key, etag in etags.items() if not key.startswith(folder(days[2]))}
    assert corpus.indexed_etags() == in_first_two
    written = {(c["doc_id"], c["chunk_id"]): c["indexed_at"] for c in corpus.chunks()}

    rerun = backfill(stack, days[0], days[1], conf, "--reprocess-behavior", "completed")
    assert [run["state"] for run in rerun] == ["success"] * 2
    assert [extract_summary(stack, run)["objects_changed"] for run in rerun] == [0, 0]
    for run in rerun:
        states = {ti["task_id"]: ti["state"] for ti in stack.task_instances("latechunk_ingest", run["dag_run_id"])}
        assert states["publish"] == "skipped", "a run that changed nothing emits no index event"
    assert {(c["doc_id"], c["chunk_id"]): c["indexed_at"] for c in corpus.chunks()} == written, "rewritten"

    late = f"{folder(days[0])}tea.txt"
    etags[late] = corpus.put(late, TOPICS["tea.txt"])
    corpus.delete(f"{folder(days[0])}bread.txt")
    del etags[f"{folder(days[0])}bread.txt"]
    run_and_wait(stack, "latechunk_ingest", corpus.run_conf(lookback_days=3), logical_date=days[3])
    assert corpus.indexed_etags() == etags
