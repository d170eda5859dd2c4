"""The trends page's HTML: one DAG's recent runs as charts (inline SVG) and a table, each run linked to its report."""

from __future__ import annotations

from html import escape

from latechunk.reporting.display import human_number, model_label
from latechunk.reporting.svg_chart import line_chart
from latechunk.reporting.trends import DOCUMENT_COUNTS, RunPoint, trend_charts

from latechunk_operators.report_page import STYLE

TRENDS_STYLE = """
.chart { display: block; margin: .3rem 0 1rem; } .chart .tick { font-size: 11px; fill: #4a5568; }
.chart .axis { font-size: 12px; fill: #1a202c; } .chart .legend { font-size: 12px; fill: #1a202c; }
.charts { display: flex; flex-wrap: wrap; gap: 0 1.5rem; } .charts section { flex: 0 0 auto; }
"""


def render_trends(dag_id: str, points: list[RunPoint], *, limit: int) -> str:
    """The page: charts of documents, chunks, tokens/s per stage and each validation check over the runs."""
    if not points:
        body = f"<p class=muted id=no-runs>No runs of {escape(dag_id)} yet.</p>"
    else:
        body = _charts(points) + _runs_table(points)
    models = sorted({model_label(point.model, point.model_revision) for point in points if point.model})
    return f"""<!doctype html><html><head><meta charset=utf-8><title>Trends of {escape(dag_id)}</title>
<style>{STYLE}{TRENDS_STYLE}</style></head><body>
<h1>Late chunking trends: <span id=dag>{escape(dag_id)}</span></h1>
<p class=muted>The last {len(points)} runs (at most {limit}; <code>?runs=N</code> for more), oldest on the left.
Model{"s" if len(models) > 1 else ""}: <span id=models>{escape(", ".join(models) or "—")}</span>.
Click a dot or a run for its report.</p>
{body}
</body></html>"""


def _charts(points: list[RunPoint]) -> str:
    runs = [point.run_id for point in points]
    labels = [point.when[5:16].replace("T", " ") or point.run_id[:12] for point in points]
    links = [point.report_url for point in points]
    sections = []
    for chart in trend_charts(points):
        threshold_label = "must stay below" if chart.ceiling else "must reach"
        svg = line_chart(
            key=chart.key, title=chart.title, x_label="run (start time, UTC)", y_label=chart.y_label, runs=runs,
            run_labels=labels, links=links, series=[(series.name, series.values) for series in chart.series],
            threshold=chart.threshold, threshold_label=threshold_label,
        )
        sections.append(f"<section><h2>{escape(chart.title)}</h2>{svg}</section>")
    return f"<div class=charts>{''.join(sections)}</div>"


def _runs_table(points: list[RunPoint]) -> str:
    head = ("<tr><th>run</th><th>started (UTC)</th><th>state</th>"
            + "".join(f"<th>{name}</th>" for name in DOCUMENT_COUNTS)
            + "<th>chunks written</th><th>embed tokens/s</th><th>validation</th></tr>")
    rows = []
    for point in reversed(points):  # newest first, as the UI lists runs
        verdict = {True: ("ok", "passed"), False: ("failed", "FAILED"), None: ("skipped", "—")}[point.passed]
        cells = "".join(_number(point.documents[name]) for name in DOCUMENT_COUNTS)
        rows.append(
            f'<tr data-run="{escape(point.run_id)}"><td><a href="{escape(point.report_url)}">'
            f"{escape(point.run_id)}</a></td><td>{escape(point.when[:19].replace('T', ' '))}</td>"
            f"<td>{escape(point.state)}</td>{cells}{_number(point.chunks['chunks_written'])}"
            f"{_number(point.tokens_per_s.get('embed'))}<td class={verdict[0]}>{verdict[1]}</td></tr>"
        )
    return f"<h2>Runs</h2><table id=runs>{head}{''.join(rows)}</table>"


def _number(value: float | None) -> str:
    return f'<td class=n data-value="{value}">{escape(human_number(value))}</td>'
