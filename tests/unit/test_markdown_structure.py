"""Markdown extraction on real documentation (FastAPI's docs in English, German, Japanese and Russian, see
tests/data/structured/SOURCES.md): text without markup, headings with their levels and exact spans, front matter
to metadata, and the document structure itself (section paths, pages, its JSON form)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from latechunk.sources.extractors import Deadline
from latechunk.sources.markdown import front_matter, markdown_text
from latechunk.sources.structure import CODE, HEADING, DocumentStructure, Heading, TextBuilder

DATA = Path(__file__).parents[1] / "data" / "structured"
MARKDOWN_FILES = sorted(path for path in DATA.glob("*.md") if path.name != "SOURCES.md")
# Markup that must not survive outside code blocks: heading attributes, link targets, images, inline HTML,
# admonition markers, snippet includes, emphasis, heading marks at a line start.
MARKUP = re.compile(r"\{ ?#|\]\(|!\[|<(?:span|div|a|abbr|font)\b|^!!!|^///|\{\*|\*\*|^#{1,6} ", re.MULTILINE)


def extracted(name: str) -> tuple[str, dict, DocumentStructure]:
    return markdown_text((DATA / name).read_text(encoding="utf-8"), Deadline(60))


def outside_code(text: str, structure: DocumentStructure) -> str:
    pieces, position = [], 0
    for block in structure.blocks:
        if block.kind == CODE:
            pieces.append(text[position : block.start])
            position = block.end
    return "".join(pieces) + text[position:]


def assert_exact(text: str, structure: DocumentStructure) -> None:
    """Every block and heading is an exact, trimmed slice of the text; headings' titles are their text."""
    for block in structure.blocks:
        piece = text[block.start : block.end]
        assert piece and piece == piece.strip()
    for heading in structure.headings:
        assert " ".join(text[heading.start : heading.end].split()) == heading.title
        assert any(b.kind == HEADING and (b.start, b.end) == (heading.start, heading.end) for b in structure.blocks)
    starts = [block.start for block in structure.blocks]
    assert starts == sorted(starts)


@pytest.mark.parametrize("path", MARKDOWN_FILES, ids=lambda path: path.name)
def test_real_documentation_is_text_without_markup_with_exact_spans(path):
    text, metadata, structure = extracted(path.name)
    assert_exact(text, structure)
    assert MARKUP.search(outside_code(text, structure)) is None, MARKUP.search(outside_code(text, structure))
    assert structure.headings and metadata["title"] == structure.headings[0].title


def test_german_headings_levels_and_section_paths():
    text, metadata, structure = extracted("fastapi-debugging-de.md")
    assert [(h.level, h.title) for h in structure.headings] == [
        (1, "Debugging"),
        (2, "uvicorn aufrufen"),
        (3, 'Über __name__ == "__main__"'),
        (4, "Weitere Details"),
        (2, "Ihren Code mit Ihrem Debugger ausführen"),
    ]
    details = text.index("Angenommen, Ihre Datei heißt myapp.py.")
    assert structure.section_path(details) == ["Debugging", "uvicorn aufrufen", 'Über __name__ == "__main__"',
                                               "Weitere Details"]  # fmt: skip
    last = text.index("Da Sie den Uvicorn-Server direkt")
    assert structure.section_path(last) == ["Debugging", "Ihren Code mit Ihrem Debugger ausführen"]
    assert metadata == {"title": "Debugging"}


def test_japanese_comment_in_code_is_code_not_a_heading():
    text, _, structure = extracted("fastapi-debugging-ja.md")
    assert [h.title for h in structure.headings] == [
        "デバッグ", "uvicorn を呼び出す", '__name__ == "__main__" について', "より詳しい説明",
        "デバッガーでコードを実行",
    ]  # fmt: skip
    comment = text.index("# その他のコード")
    assert any(b.kind == CODE and b.start <= comment < b.end for b in structure.blocks)


def test_mkdocs_admonitions_keep_their_body_and_drop_their_marker():
    text, _, structure = extracted("fastapi-first-steps-de-mkdocs.md")
    body = "Der Befehl uvicorn main:app bezieht sich auf:"
    assert body in text
    assert "Hinweis" not in text and '"Tipp"' not in text
    # The dedented body is Markdown again: its bullets are list items, not an indented code block.
    item = text.index("main: die Datei main.py")
    assert any(b.kind == "list_item" and b.start == item for b in structure.blocks)
    # The console block's colour tags are gone, its text is kept.
    assert "INFO:     Uvicorn running on http://127.0.0.1:8000" in text


def test_links_keep_their_text_and_lose_their_target():
    text, _, _ = markdown_text("See [the guide](https://example.org/guide) or <https://example.org>. ![x](a.png)",
                               Deadline(5))  # fmt: skip
    assert text == "See the guide or ."


def test_front_matter_becomes_metadata_and_leaves_the_text():
    source = "---\ntitle: Erste Schritte\ntags: [tutorial, de]\ndate: 2024-01-13\n---\n" + (
        DATA / "fastapi-debugging-de.md"
    ).read_text(encoding="utf-8")
    text, metadata, _ = markdown_text(source, Deadline(60))
    assert metadata == {"title": "Erste Schritte", "tags": ["tutorial", "de"], "date": "2024-01-13"}
    assert text.startswith("Debugging\n\nSie können")


@pytest.mark.parametrize(
    "header",
    [
        "---\na: &x [1, 2]\nb: *x\n---\n",  # an alias: refused (exponential expansion when serialised)
        "---\n- a list\n---\n",  # not a mapping
        "---\ntitle: [unclosed\n---\n",  # not YAML
    ],
)
def test_front_matter_that_is_not_a_plain_mapping_stays_markdown(header):
    metadata, rest = front_matter(header + "# Title\n")
    assert metadata == {} and rest == header + "# Title\n"


def test_section_paths_follow_levels_and_pages_count_empty_pages():
    builder = TextBuilder()
    builder.start_page()
    builder.add("paragraph", "A", level=1)
    builder.add("paragraph", "under A")
    builder.start_page()
    builder.start_page()  # an empty page: page 3 starts where the next block does
    builder.add("paragraph", "B", level=3)
    builder.add("paragraph", "C", level=2)
    builder.add("paragraph", "under C")
    builder.start_page()  # an empty last page
    text, structure = builder.finish()
    assert text == "A\n\nunder A\n\nB\n\nC\n\nunder C"
    assert structure.section_path(text.index("under A")) == ["A"]
    assert structure.section_path(text.index("B")) == ["A", "B"]
    assert structure.section_path(text.index("under C")) == ["A", "C"]
    assert structure.section_paths([0, text.index("B"), text.index("under C")]) == [["A"], ["A", "B"], ["A", "C"]]
    assert structure.page_of(text.index("under A")) == 1
    assert structure.page_of(text.index("B")) == 3
    assert len(structure.page_starts) == 4 and structure.page_starts[-1] == len(text)


def test_empty_heading_opens_a_section_at_the_next_block():
    builder = TextBuilder()
    builder.add_empty_heading("Slide 1", level=1)
    builder.add("paragraph", "body")
    text, structure = builder.finish()
    assert structure.headings == [Heading(1, 0, 0, "Slide 1")]
    assert structure.section_path(text.index("body")) == ["Slide 1"]


def test_list_items_and_rows_share_lines_other_blocks_are_paragraphs():
    builder = TextBuilder()
    for kind, text in [("list_item", "one"), ("list_item", "two"), ("paragraph", "p"), ("table_row", "a\tb"),
                       ("table_row", "c\td"), ("paragraph", "  ")]:  # fmt: skip
        builder.add(kind, text)
    assert builder.finish()[0] == "one\ntwo\n\np\n\na\tb\nc\td"


def test_structure_json_round_trip_and_empty_structure():
    _, _, structure = extracted("fastapi-body-ru.md")
    again = DocumentStructure.from_json(structure.to_json())
    assert again == structure
    assert DocumentStructure().to_json() == "" and DocumentStructure.from_json("") == DocumentStructure()
    assert DocumentStructure.from_json(None).page_of(10) is None
