"""The run report: figures assembled from the tasks' outputs, and the page that shows them (escaped)."""

from __future__ import annotations

from latechunk.reporting.run_report import build_run_report
from latechunk_operators.report_page import render_page

MANIFEST = {"index": "docs", "model": "m", "deleted_keys": ["gone.txt"], "quarantine": []}
VALIDATION = {
    "passed": False,
    "checks": [
        {"name": "query_retrieval", "value": 0.25, "threshold": 0.8, "passed": False, "skipped": False,
         "description": "texts find their documents"},
        {"name": "probes", "value": None, "threshold": 1.0, "passed": True, "skipped": True, "description": "p"},
    ],
    "quarantine": [{"key": "<b>bad</b>.txt", "reason": "empty", "detail": "no text"}],
}
SUMMARIES = {
    "extract": [{"objects_listed": 5, "objects_new": 2, "objects_modified": 1, "objects_unchanged": 1,
                 "objects_quarantined": 1, "objects_retried": 4}],
    "embed": [{"tokens": 300, "chunks": 7}, {"tokens": 100, "chunks": 3}],
    "index": [{"chunks_indexed": 10, "superseded_chunks_deleted": 2, "removed_object_chunks_deleted": 4,
               "quarantined_object_chunks_deleted": 1, "objects_indexed": 2, "objects_quarantined": 2,
               "objects_deferred": 1, "objects_pending": 3,
               "index_quarantine": [{"key": "r.txt", "etag": "e", "reason": "refused_by_index", "detail": "x"}]}],
}
TIMES = {"extract": [("success", 2.0)], "embed": [("success", 3.0), ("failed", 1.0)], "index": [("success", 1.0)]}


def report():
    return build_run_report(dag_id="d", run_id="r<1>", manifest=MANIFEST, validation=VALIDATION,
                            summaries=SUMMARIES, task_times=TIMES, links={"manifest": "/m"}).to_dict()


def test_figures_come_from_the_tasks_outputs():
    figures = report()
    assert figures["objects"] == {"listed": 5, "new": 2, "changed": 1, "unchanged": 1, "deleted": 1,
                                  "quarantined": 2, "indexed": 2, "deferred": 1, "pending": 3, "retried": 4}
    assert (figures["chunks_written"], figures["chunks_deleted"], figures["tokens"]) == (10, 7, 400)
    embed = next(stage for stage in figures["stages"] if stage["stage"] == "embed")
    assert (embed["tasks"], embed["state"], embed["seconds"], embed["tokens_per_s"]) == (2, "failed", 4.0, 100.0)
    assert figures["quarantine"] == VALIDATION["quarantine"], "the validation report's list includes every stage's"
    without_validation = build_run_report(dag_id="d", run_id="r", manifest={**MANIFEST, "quarantine": [{"key": "q"}]},
                                          validation=None, summaries=SUMMARIES, task_times=TIMES).to_dict()
    assert without_validation["quarantine"] == [{"key": "q"}, *SUMMARIES["index"][0]["index_quarantine"]]


def test_the_page_shows_every_figure_and_escapes_what_users_wrote():
    page = render_page(report(), question='"><script>', hits=[
        {"key": "a.txt", "part": "", "chunk_id": 0, "text": "x < y", "char_start": 0, "char_end": 5, "score": 0.5}
    ])
    assert 'data-count="listed">5<' in page and 'data-count="tokens">400<' in page
    assert 'data-check=query_retrieval' in page and 'data-value="0.25"' in page and "texts find their documents" in page
    assert "<b>bad</b>" not in page and "&lt;b&gt;bad&lt;/b&gt;.txt" in page
    assert "<script>" not in page and "x &lt; y" in page and 'data-key="a.txt"' in page
    assert 'id=verdict class=failed>FAILED' in page and "r&lt;1&gt;" in page


def test_the_report_says_which_long_document_method_the_run_used_and_what_it_cost():
    embedded = [{"documents": 8, "tokens": 3000, "long_documents": 2, "extra_tokens": 2400},
                {"documents": 2, "tokens": 1000, "long_documents": 0, "extra_tokens": 0}]
    measured = {"window_layout": "centred", "frame_windows": True, "naive_weight": 0.6}
    manifest = {**MANIFEST, "window": 512, "window_overlap": 128, "late_chunking": measured}
    figures = build_run_report(dag_id="d", run_id="r", manifest=manifest, validation=None,
                               summaries={"embed": embedded}, task_times={}).to_dict()
    assert figures["long_documents"] == {"method": "centred+framed, naive 0.6", "window": 512, "window_overlap": 128,
                                         "documents": 2, "share": 0.2, "extra_tokens": 2400, "encoder_cost": 1.6}
    page = render_page(figures)
    assert 'data-method="centred+framed, naive 0.6"' in page and "20.0%" in page
    assert 'data-count="extra_tokens">2,400<' in page and 'data-cost="1.6">1.6<' in page
    plain = build_run_report(dag_id="d", run_id="r", manifest={**MANIFEST, "late_chunking": {}}, validation=None,
                             summaries={}, task_times={}).to_dict()
    assert plain["long_documents"]["method"] == "stitched (plain)"
    assert plain["long_documents"]["share"] is None


def test_an_event_run_reports_its_events_and_the_delay_from_event_to_indexed():
    events = {"events": 7, "keys": 3, "rejected": {"not_json": 1, "outside_prefix": 2},
              "oldest": "2026-12-04T10:00:00+00:00", "newest": "2026-12-04T10:00:40+00:00"}  # fmt: skip
    summaries = {**SUMMARIES, "extract": [{**SUMMARIES["extract"][0], "events": events}],
                 "index": [{**SUMMARIES["index"][0], "finished_at": "2026-12-04T10:01:05+00:00"}]}  # fmt: skip
    figures = build_run_report(dag_id="latechunk_events", run_id="r", manifest=MANIFEST, validation=None,
                               summaries=summaries, task_times=TIMES).to_dict()  # fmt: skip
    assert figures["events"] == {**events, "delay_oldest_s": 65.0, "delay_newest_s": 25.0}
    page = render_page(figures)
    assert 'data-count="events">7<' in page and 'data-rejected="3">not_json: 1, outside_prefix: 2<' in page
    assert 'data-delay="oldest">65' in page
    # Before its index task is done, the run has events but no delay yet; other runs have no events table.
    pending = build_run_report(dag_id="latechunk_events", run_id="r", manifest=MANIFEST, validation=None,
                               summaries={**summaries, "index": []}, task_times=TIMES).to_dict()  # fmt: skip
    assert pending["events"] == events
    assert "id=events" not in render_page(report())
