"""HTML extraction with structure: h1-h6 headings with exact spans, <title> and <meta name=description> as
metadata, navigation boilerplate dropped by the documented rule, on Standard Ebooks pages (tests/data/structured)
and the project's sample manual, and on a Japanese page with the usual site chrome."""

from __future__ import annotations

from pathlib import Path

from latechunk.sources.documents import Limits, SourceObject, load_documents
from latechunk.sources.extractors import Deadline
from latechunk.sources.html_text import _attributes, html_document

ROOT = Path(__file__).parents[2]
DATA = ROOT / "tests" / "data" / "structured"

JAPANESE_PAGE = """<!DOCTYPE html><html lang="ja"><head><title>コーヒーマシンの手入れ</title>
<meta charset="utf-8"><meta name="description" content="除石灰と故障対応の手引き &amp; よくある質問">
</head><body>
<header class="site"><a href="/">ホーム</a> <span>サイト名</span></header>
<nav><ul><li><a href="/a">製品</a></li><li><a href="/b">サポート</a></li></ul></nav>
<main><article>
<header><h1>手入れの手引き</h1><p class="byline">サポートチーム</p></header>
<p>このマシンは二か月ごとに除石灰が必要です。</p>
<h2>除石灰</h2><p>タンクに除石灰剤を入れ、ボタンを五秒間押します。</p>
<h3>所要時間</h3><p>約四十分かかります。</p>
<h2>故障対応</h2><p>表示がE4のときはセンサーの交換が必要です。</p>
<footer>最終更新: 2026年</footer>
</article></main>
<footer class="site">© 2026 サイト名 <a href="/privacy">プライバシー</a></footer>
</body></html>"""


def document(name: str, data: bytes):
    documents, quarantine = load_documents(SourceObject("b", name, "e", len(data)), data, limits=Limits())
    return documents, quarantine


def test_japanese_page_headings_metadata_and_chrome():
    text, metadata, structure = html_document(JAPANESE_PAGE, Deadline(10))
    assert metadata == {"title": "コーヒーマシンの手入れ", "description": "除石灰と故障対応の手引き & よくある質問"}
    for dropped in ("ホーム", "サイト名", "製品", "サポート\n", "プライバシー"):
        assert dropped not in text
    # Header and footer inside the article are the article's own: kept.
    assert text.startswith("手入れの手引き\nサポートチーム\n") and text.endswith("最終更新: 2026年")
    assert [(h.level, h.title) for h in structure.headings] == [
        (1, "手入れの手引き"), (2, "除石灰"), (3, "所要時間"), (2, "故障対応"),
    ]  # fmt: skip
    for heading in structure.headings:
        assert text[heading.start : heading.end] == heading.title
    assert structure.section_path(text.index("約四十分")) == ["手入れの手引き", "除石灰", "所要時間"]
    assert structure.section_path(text.index("E4")) == ["手入れの手引き", "故障対応"]


def test_a_header_inside_the_site_banner_does_not_end_the_banner_early():
    markup = ("<body><header>Site <section><header>inner</header></section> still banner</header>"
              "<main><h1>Title</h1><p>Body.</p></main></body>")
    text, _, structure = html_document(markup, Deadline(5))
    assert text == "Title\nBody." and [h.title for h in structure.headings] == ["Title"]


def test_sample_manual_headings_are_sections():
    (doc,), _ = document("espresso-machine.html", (ROOT / "include/sample_corpus/espresso-machine.html").read_bytes())
    assert [(h.level, h.title) for h in doc.structure.headings] == [
        (1, "Barista Pro 9: getting started"), (2, "Descaling"), (2, "Troubleshooting"),
    ]  # fmt: skip
    assert "Descaling\nIt needs descaling" in doc.text  # the heading is its own line, not glued to the sentence
    assert doc.metadata == {"title": "Barista Pro 9 user guide"}


def test_standard_ebooks_heading_in_a_section_header_is_kept():
    (doc,), _ = document("x.html", (DATA / "devils-dictionary-x.html").read_bytes())
    assert [(h.level, h.title) for h in doc.structure.headings] == [(2, "X")]
    assert doc.text.startswith("X\nX in our alphabet being a needless letter")
    assert "<" not in doc.text and "epub:type" not in doc.text
    (q,), _ = document("q.html", (DATA / "devils-dictionary-q.html").read_bytes())
    assert q.structure.section_path(q.text.index("An implement of torture")) == ["Q"]


def test_a_page_that_is_all_navigation_has_no_text():
    documents, (entry,) = document("toc.html", (DATA / "devils-dictionary-toc.html").read_bytes())
    assert documents == [] and entry.reason == "empty"


def test_tag_attributes_are_read_forward_whatever_the_quotes():
    assert _attributes(' name=description content="A &amp; B" data-x') == {
        "name": "description", "content": "A &amp; B", "data-x": "",
    }  # fmt: skip
    assert _attributes(" NAME='x' name=\"y\"") == {"name": "x"}
    assert _attributes(' content="never closed name=description') == {}
    hostile = ' a="' * 50_000
    assert _attributes(hostile) == {"a": " a="}
