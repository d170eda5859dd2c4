"""The report app in-process (ASGI, no server, no Airflow stack). Ask the index: an over-long question is refused
before any model loads, a burst of questions beyond the workers and queue is refused with 429 while the admitted ones
are answered, the app keeps answering afterwards, and the model and the Elasticsearch client are made once. Trends:
the page and its JSON from the runs' reports, a run without tasks left out."""

from __future__ import annotations

import asyncio
import threading

import httpx
import numpy as np
import pytest
from latechunk.reporting.run_report import build_run_report

MANIFEST = {"index": "docs", "model": "/models/minilm", "model_revision": "sha256:0123456789abcdef"}
REPORT = {
    **build_run_report(dag_id="latechunk_ingest", run_id="r1", manifest=MANIFEST, validation=None, summaries={},
                       task_times={}).to_dict(),
    "staged": {}, "trends_url": "/latechunk/dags/latechunk_ingest/trends",
}
HIT = {"key": "a.txt", "part": "", "chunk_id": 0, "text": "coral reefs", "char_start": 0, "char_end": 11}


class GatedEncoder:
    """Encodes only once ``gate`` is open, so that a burst of questions is in flight at the same time."""

    def __init__(self, gate: threading.Event):
        self.gate = gate
        self.encoded = 0

    def tokenizer(self, text: str, add_special_tokens: bool = True) -> dict:
        return {"input_ids": [0, *range(len(text.split())), 0]}

    def encode_queries(self, texts: list[str]) -> np.ndarray:
        assert self.gate.wait(30), "the test never opened the gate"
        self.encoded += 1
        return np.ones((len(texts), 4), dtype=np.float32)


class FakeElasticsearch:
    def search(self, **request) -> dict:
        return {"hits": {"hits": [{"_source": HIT, "_score": 0.91234}]}}


@pytest.fixture
def app(monkeypatch):
    from latechunk_operators import report_app
    from latechunk_operators.ask_index import AskLimits, AskService

    gate = threading.Event()
    loads: list[tuple[str, str | None]] = []
    clients: list[FakeElasticsearch] = []
    encoder = GatedEncoder(gate)

    def load(model: str, revision: str | None) -> GatedEncoder:
        loads.append((model, revision))
        return encoder

    def es_client() -> FakeElasticsearch:
        clients.append(FakeElasticsearch())
        return clients[-1]

    service = AskService(AskLimits(max_chars=200, max_tokens=20, workers=2, queue=2), es_client=es_client,
                         encoder_loader=load)
    monkeypatch.setattr(report_app, "ask_service", service)
    monkeypatch.setattr(report_app, "build_report", lambda dag_id, run_id: dict(REPORT))
    report_app.app.dependency_overrides[report_app.can_read_runs.dependency] = lambda: None
    yield report_app.app, gate, loads, clients, encoder
    report_app.app.dependency_overrides.clear()


async def ask_all(app, questions: list[str], gate: threading.Event, refusals_expected: int) -> list[httpx.Response]:
    """Send every question at once; open the gate when the expected refusals have come back."""
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://airflow", timeout=60) as client:
        tasks = [asyncio.create_task(client.get("/runs/latechunk_ingest/r1", params={"q": q})) for q in questions]
        done: set[asyncio.Task] = set()
        while sum(task.result().status_code == 429 for task in done) < refusals_expected:
            finished, _ = await asyncio.wait(set(tasks) - done, timeout=30, return_when=asyncio.FIRST_COMPLETED)
            assert finished, "no response within 30 s"
            done |= finished
        gate.set()
        return list(await asyncio.gather(*tasks))


def test_over_long_questions_are_refused_with_a_message(app):
    app, gate, loads, _, _ = app
    gate.set()
    responses = asyncio.run(ask_all(app, ["x" * 5000, " ".join(["word"] * 40)], gate, 0))
    assert [response.status_code for response in responses] == [413, 413]
    assert "5,000 characters; at most 200" in responses[0].text
    assert "x" * 201 not in responses[0].text, "the page does not echo more than the limit"
    assert "42 tokens for this model; at most 20" in responses[1].text
    assert loads == [("/models/minilm", "sha256:0123456789abcdef")], "the character cap needs no model"


def test_a_burst_beyond_the_workers_and_queue_is_refused_and_the_app_keeps_answering(app):
    app, gate, loads, clients, encoder = app
    questions = [f"where do corals live {n}" for n in range(10)]
    responses = asyncio.run(ask_all(app, questions, gate, refusals_expected=6))
    statuses = sorted(response.status_code for response in responses)
    assert statuses == [200] * 4 + [429] * 6, "workers + queue = 4 admitted, the others refused at once"
    refused = next(response for response in responses if response.status_code == 429)
    assert "Too many questions are being answered right now (at most 4 at once)" in refused.text
    answered = next(response for response in responses if response.status_code == 200)
    assert 'data-key="a.txt"' in answered.text and "0.912" in answered.text
    assert encoder.encoded == 4

    after = asyncio.run(ask_all(app, ["and now?"], gate, 0))
    assert after[0].status_code == 200 and 'class=hit' in after[0].text
    assert len(loads) == 1 and len(clients) == 1, "one model load and one Elasticsearch client per process"


def test_trends_page_and_json_from_the_runs_reports(app, monkeypatch):
    from fastapi import HTTPException
    from latechunk_operators import report_app

    app = app[0]
    runs = [("r1", "2026-03-01T00:10:00+00:00", "success"), ("queued", "2026-03-02T00:10:00+00:00", "queued"),
            ("r+2", "2026-03-03T00:10:00+00:00", "failed")]
    asked: list[int] = []

    def recent_runs(dag_id: str, limit: int):
        asked.append(limit)
        return runs

    def build_report(dag_id: str, run_id: str) -> dict:
        if run_id == "queued":
            raise HTTPException(404, "no tasks yet")
        objects = {**REPORT["objects"], "new": 1234 if run_id == "r1" else 5}
        return {**REPORT, "run_id": run_id, "objects": objects}

    monkeypatch.setattr(report_app, "recent_runs", recent_runs)
    monkeypatch.setattr(report_app, "build_report", build_report)

    async def get(path: str) -> httpx.Response:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://airflow") as client:
            return await client.get(path)

    page = asyncio.run(get("/dags/latechunk_ingest/trends?runs=100000"))
    assert page.status_code == 200 and asked == [report_app.MAX_TREND_RUNS]
    assert 'data-series="new" data-run="r1" data-value="1234"' in page.text and "r1: new 1,234</title>" in page.text
    assert 'data-run="queued"' not in page.text
    assert 'href="/latechunk/runs/latechunk_ingest/r%2B2"' in page.text
    assert "minilm @ sha256:0123456789abcdef" in page.text
    points = asyncio.run(get("/dags/latechunk_ingest/trends.json")).json()
    assert [(point["run_id"], point["documents"]["new"], point["state"]) for point in points] == [
        ("r1", 1234, "success"), ("r+2", 5, "failed")]


def test_search_hits_show_their_section_path_and_pages():
    from latechunk_operators.report_page import render_page

    hits = [
        {**HIT, "score": 0.9, "section": ["Handbuch", "Entkalken"], "page_start": 3, "page_end": 4},
        {**HIT, "score": 0.8, "section": ["Slides"], "page_start": 2, "page_end": 2},
        {**HIT, "score": 0.7},  # indexed before sections and pages were recorded
    ]
    page = render_page(REPORT, question="descaling", hits=hits)
    rows = page.split("<tr class=hit>")[1:]
    assert "<td>Handbuch › Entkalken</td><td>3-4</td>" in rows[0]
    assert "<td>Slides</td><td>2</td>" in rows[1]
    assert "<td></td><td></td><td>[0, 11)</td>" in rows[2]
