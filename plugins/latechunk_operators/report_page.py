"""The run report's HTML: one self-contained page (no scripts), readable inside the UI's iframe or on its own."""

from __future__ import annotations

from html import escape
from typing import Any

from latechunk.reporting.display import human_number, model_label

STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.2rem; color: #1a202c; }
h1 { font-size: 1.3rem; } h2 { font-size: 1.05rem; margin-top: 1.6rem; }
table { border-collapse: collapse; margin: .4rem 0; } td, th { border: 1px solid #cbd5e0; padding: .25rem .6rem; }
th { background: #edf2f7; text-align: left; } td.n { text-align: right; font-variant-numeric: tabular-nums; }
.ok { color: #276749; font-weight: 600; } .failed { color: #c53030; font-weight: 600; } .skipped { color: #718096; }
.warning { color: #b7791f; font-weight: 600; }
.muted { color: #718096; font-size: .9rem; } input[type=text] { width: 32rem; padding: .3rem; }
"""
OBJECT_LABELS = {
    "listed": "listed (selected)", "new": "new", "changed": "changed", "unchanged": "unchanged",
    "indexed": "indexed", "deferred": "deferred (changed while read)", "deleted": "deleted from the index",
    "quarantined": "quarantined", "pending": "pending (batch failed: the next run retries it)",
    "retried": "retried (pending from earlier runs)",
}


def _cell(content: Any, number: bool = False, **data: Any) -> str:
    """A table cell; numbers are shown for people (``human_number``), their exact values stay in ``data-``."""
    attributes = "".join(f' data-{name}="{escape(str(val))}"' for name, val in data.items())
    text = human_number(content) if number else ("" if content is None else str(content))
    return f'<td{" class=n" if number else ""}{attributes}>{escape(text)}</td>'


def _objects(report: dict[str, Any]) -> str:
    rows = "".join(
        f"<tr><th>{escape(label)}</th>{_cell(report['objects'][name], True, count=name)}</tr>"
        for name, label in OBJECT_LABELS.items()
    )
    rows += f"<tr><th>chunks written</th>{_cell(report['chunks_written'], True, count='chunks_written')}</tr>"
    rows += f"<tr><th>chunks deleted</th>{_cell(report['chunks_deleted'], True, count='chunks_deleted')}</tr>"
    rows += f"<tr><th>tokens encoded</th>{_cell(report['tokens'], True, count='tokens')}</tr>"
    return f"<table id=objects>{rows}</table>"


def _events(report: dict[str, Any]) -> str:
    """An event run's notifications: how many it took, when they happened, and how long until they were indexed."""
    events = report.get("events") or {}
    if not events:
        return ""
    rejected = ", ".join(f"{reason}: {count}" for reason, count in sorted(events["rejected"].items())) or "none"
    rows = [
        ("events taken", _cell(events["events"], True, count="events")),
        ("keys they named", _cell(events["keys"], True, count="event_keys")),
        ("events not taken", _cell(rejected, rejected=sum(events["rejected"].values()))),
        ("oldest event", _cell(events.get("oldest"))),
        ("newest event", _cell(events.get("newest"))),
        ("delay, oldest event to indexed (s)", _cell(events.get("delay_oldest_s"), True, delay="oldest")),
        ("delay, newest event to indexed (s)", _cell(events.get("delay_newest_s"), True, delay="newest")),
    ]
    body = "".join(f"<tr><th>{escape(label)}</th>{cell}</tr>" for label, cell in rows)
    return f"<h2>Object events</h2><table id=events>{body}</table>"


def _long_documents(report: dict[str, Any]) -> str:
    """The method documents longer than the encoder window got, and what it cost this run."""
    long = report.get("long_documents") or {}
    if not long:
        return "<p class=muted id=long-documents>No manifest yet.</p>"
    share = long.get("share")
    cost = long.get("encoder_cost")
    rows = [
        ("method", _cell(long["method"], method=long["method"])),
        ("window, overlap (tokens)", _cell(f"{long.get('window')}, {long.get('window_overlap')}")),
        ("documents longer than the window", _cell(long.get("documents"), True, count="long_documents")),
        ("their share of the documents", _cell(None if share is None else f"{100 * share:.1f}%", share=share)),
        ("extra tokens encoded", _cell(long.get("extra_tokens"), True, count="extra_tokens")),
        ("encoder cost (tokens encoded per document token)", _cell(cost, True, cost=cost)),
    ]
    body = "".join(f"<tr><th>{escape(label)}</th>{cell}</tr>" for label, cell in rows)
    return f"<table id=long-documents>{body}</table>"


def _stages(report: dict[str, Any]) -> str:
    head = "<tr><th>stage</th><th>tasks</th><th>state</th><th>seconds</th><th>tokens</th><th>tokens/s</th></tr>"
    rows = "".join(
        f"<tr data-stage={escape(stage['stage'])}><th>{escape(stage['stage'])}</th>{_cell(stage['tasks'], True)}"
        f"{_cell(stage['state'])}{_cell(stage['seconds'], True)}{_cell(stage['tokens'], True)}"
        f"{_cell(stage['tokens_per_s'], True)}</tr>"
        for stage in report["stages"]
    )
    return f"<table id=stages>{head}{rows}</table>"


def _validation(report: dict[str, Any]) -> str:
    validation = report.get("validation")
    if not validation:
        return "<p class=muted>No validation report yet (the run has not validated).</p>"
    warnings = validation.get("warnings") or []
    verdict = "passed" + (f", {len(warnings)} warning(s)" if warnings else "")
    verdict = verdict if validation.get("passed") else "FAILED"
    head = "<tr><th>check</th><th>result</th><th>value</th><th>threshold</th><th>what it means</th></tr>"
    rows = ""
    for check in validation.get("checks", []):
        status = "skipped" if check.get("skipped") else ("ok" if check.get("passed") else "failed")
        if status == "failed" and check.get("severity") == "warning":
            status = "warning"
        rows += (
            f"<tr data-check={escape(check['name'])}><th>{escape(check['name'])}</th>"
            f"<td class={status}>{status}</td>{_cell(check.get('value'), True, value=check.get('value'))}"
            f"{_cell(check.get('threshold'), True)}{_cell(check.get('description', ''))}</tr>"
        )
    css = "ok" if validation.get("passed") else "failed"
    return f"<p>Validation <span id=verdict class={css}>{verdict}</span></p><table id=validation>{head}{rows}</table>"


def _quarantine(report: dict[str, Any]) -> str:
    entries = report.get("quarantine") or []
    if not entries:
        return "<p class=muted id=quarantine>Nothing quarantined.</p>"
    head = "<tr><th>key</th><th>reason</th><th>detail</th></tr>"
    rows = "".join(
        f"<tr>{_cell(entry.get('key'))}{_cell(entry.get('reason'))}{_cell(entry.get('detail'))}</tr>"
        for entry in entries
    )
    return f"<table id=quarantine>{head}{rows}</table>"


def _search(report: dict[str, Any], question: str, hits: list[dict[str, Any]] | None, error: str | None) -> str:
    form = (
        f'<form method=get id=search><input type=text name=q value="{escape(question)}" '
        'placeholder="Ask the index a question"> <button type=submit>Search</button></form>'
    )
    if error:
        return form + f"<p class=failed>{escape(error)}</p>"
    if hits is None:
        return form
    head = ("<tr><th>#</th><th>score</th><th>key</th><th>chunk</th><th>section</th><th>pages</th><th>characters</th>"
            "<th>text</th></tr>")
    rows = "".join(_hit_row(rank, hit) for rank, hit in enumerate(hits, 1))
    return form + f"<table id=hits>{head}{rows}</table>"


def _hit_row(rank: int, hit: dict[str, Any]) -> str:
    where = hit["key"] + (f"#{hit['part']}" if hit.get("part") else "")
    span = f"[{hit['char_start']}, {hit['char_end']})"
    text = " ".join(str(hit["text"]).split())[:240]
    section = " › ".join(hit.get("section") or [])
    return (
        f"<tr class=hit>{_cell(rank, True)}{_cell(hit['score'], True)}{_cell(where, key=hit['key'])}"
        f"{_cell(hit['chunk_id'], True)}{_cell(section)}{_cell(page_range(hit))}{_cell(span)}{_cell(text)}</tr>"
    )


def page_range(hit: dict[str, Any]) -> str:
    """ "3", "3-4", or "" for a chunk without pages (not a PDF or PPTX, or indexed before pages were recorded)."""
    first, last = hit.get("page_start"), hit.get("page_end")
    if first is None:
        return ""
    return str(first) if last in (None, first) else f"{first}-{last}"


def render_page(report: dict[str, Any], *, question: str = "", hits=None, error: str | None = None) -> str:
    links = report.get("links", {})
    staged = report.get("staged", {})
    link_items = "".join(
        f'<li><a href="{escape(url)}" id=link-{escape(name)}>{escape(name)}</a> '
        f"<span class=muted>{escape(staged.get(name, ''))}</span></li>"
        for name, url in links.items()
    )
    return f"""<!doctype html><html><head><meta charset=utf-8><title>Run report {escape(report['run_id'])}</title>
<style>{STYLE}</style></head><body>
<h1>Late chunking run report</h1>
<p><b>{escape(report['dag_id'])}</b> run <code>{escape(report['run_id'])}</code><br>
index <code id=index>{escape(str(report.get('index')))}</code>,
model <code id=model>{escape(model_label(report.get('model'), report.get('model_revision')))}</code><br>
<a href="{escape(report.get('trends_url', ''))}" id=link-trends>Trends: this DAG's runs over time</a></p>
<h2>Objects, chunks and tokens</h2>{_objects(report)}
{_events(report)}
<h2>Long documents</h2>{_long_documents(report)}
<h2>Stages</h2>{_stages(report)}
<h2>Validation</h2>{_validation(report)}
<h2>Quarantine</h2>{_quarantine(report)}
<h2>Ask the index</h2>{_search(report, question, hits, error)}
<h2>Staged files</h2><ul>{link_items}</ul>
</body></html>"""
