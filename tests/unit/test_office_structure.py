"""DOCX and PPTX extraction: files built with python-docx and python-pptx (German and Japanese text), read back as
text with headings, list items, table rows and slides; damaged files and zip bombs quarantined with their reason."""

from __future__ import annotations

import io
import zipfile

import pytest
from latechunk.sources.documents import Limits, SourceObject, load_documents
from latechunk.sources.structure import DocumentStructure

docx = pytest.importorskip("docx")
pptx = pytest.importorskip("pptx")


def load(key: str, data: bytes, **limits):
    documents, quarantine = load_documents(SourceObject("b", key, "e", len(data)), data, limits=Limits(**limits))
    return documents, quarantine


def build_docx() -> bytes:
    document = docx.Document()
    document.core_properties.title = "Wartungshandbuch"
    document.add_paragraph("Barista Pro 9", style="Title")
    document.add_paragraph("Die Maschine heizt in acht Minuten auf.")
    document.add_heading("Entkalken", level=1)
    document.add_paragraph("Alle zwei Monate entkalken, wenn das Wasser hart ist.")
    document.add_paragraph("Tank füllen", style="List Bullet")
    document.add_paragraph("Tasten fünf Sekunden drücken", style="List Bullet")
    document.add_heading("Fehlercodes", level=2)
    table = document.add_table(rows=2, cols=2)
    for row, cells in zip(table.rows, [("Code", "Bedeutung"), ("E4", "Sensor defekt")], strict=True):
        for cell, text in zip(row.cells, cells, strict=True):
            cell.text = text
    document.add_heading("トラブルシューティング", level=1)
    document.add_paragraph("ポンプがうるさい場合は、タンクを押し込んでください。")
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


def build_pptx() -> bytes:
    presentation = pptx.Presentation()
    presentation.core_properties.title = "Quarterly review"
    slide = presentation.slides.add_slide(presentation.slide_layouts[1])  # title and content
    slide.shapes.title.text = "Results"
    body = slide.placeholders[1].text_frame
    body.text = "Revenue grew by 12 percent."
    item = body.add_paragraph()
    item.text = "Mostly in Europe"
    item.level = 1
    slide = presentation.slides.add_slide(presentation.slide_layouts[5])  # title only
    slide.shapes.title.text = "数字"
    shape = slide.shapes.add_table(2, 2, 0, 0, 4_000_000, 1_000_000)
    for row, cells in zip(shape.table.rows, [("Quartal", "Umsatz"), ("Q3", "1,2 Mio")], strict=True):
        for cell, text in zip(row.cells, cells, strict=True):
            cell.text = text
    slide = presentation.slides.add_slide(presentation.slide_layouts[6])  # blank: no title
    box = slide.shapes.add_textbox(0, 0, 4_000_000, 1_000_000)
    box.text_frame.text = "Questions welcome."
    presentation.slides.add_slide(presentation.slide_layouts[6])  # an empty last slide
    buffer = io.BytesIO()
    presentation.save(buffer)
    return buffer.getvalue()


def assert_exact(text: str, structure: DocumentStructure) -> None:
    for heading in structure.headings:
        assert heading.start == heading.end or text[heading.start : heading.end] == heading.title
    for block in structure.blocks:
        assert text[block.start : block.end] == text[block.start : block.end].strip() != ""


def test_docx_headings_from_styles_lists_and_table_rows():
    (document,), quarantine = load("manual.docx", build_docx())
    assert quarantine == []
    text, structure = document.text, document.structure
    assert_exact(text, structure)
    assert [(h.level, h.title) for h in structure.headings] == [
        (1, "Barista Pro 9"), (1, "Entkalken"), (2, "Fehlercodes"), (1, "トラブルシューティング"),
    ]  # fmt: skip
    assert "Code\tBedeutung\nE4\tSensor defekt" in text
    assert structure.section_path(text.index("E4")) == ["Entkalken", "Fehlercodes"]
    assert structure.section_path(text.index("ポンプ")) == ["トラブルシューティング"]
    kinds = {text[b.start : b.end]: b.kind for b in structure.blocks}
    assert kinds["Tank füllen"] == "list_item" and kinds["E4\tSensor defekt"] == "table_row"
    assert document.metadata["title"] == "Wartungshandbuch"
    assert document.content_type.endswith("wordprocessingml.document")


def test_pptx_one_section_and_one_page_per_slide():
    (document,), quarantine = load("review.pptx", build_pptx())
    assert quarantine == []
    text, structure = document.text, document.structure
    assert_exact(text, structure)
    assert [(h.level, h.title) for h in structure.headings] == [
        (1, "Results"), (1, "数字"), (1, "Slide 3"), (1, "Slide 4"),
    ]  # fmt: skip
    assert structure.section_path(text.index("Mostly in Europe")) == ["Results"]
    assert structure.section_path(text.index("Q3")) == ["数字"]
    assert structure.section_path(text.index("Questions welcome.")) == ["Slide 3"]
    assert [structure.page_of(text.index(s)) for s in ("Revenue", "Umsatz", "Questions")] == [1, 2, 3]
    assert len(structure.page_starts) == 4 and document.metadata == {"slides": 4, "title": "Quarterly review"}
    kinds = {text[b.start : b.end]: b.kind for b in structure.blocks}
    assert kinds["Mostly in Europe"] == "list_item" and kinds["Q3\t1,2 Mio"] == "table_row"


def zip_with_member(name: str, size: int) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(name, b"\0" * size)
    return buffer.getvalue()


@pytest.mark.parametrize("key", ["bomb.docx", "bomb.pptx"])
def test_zip_bomb_is_quarantined_before_parsing(key):
    data = zip_with_member("word/document.xml", 4_000_000)
    assert len(data) < 10_000
    _, (entry,) = load(key, data, max_unzipped_bytes=1_000_000)
    assert entry.reason == "too_large" and "max_unzipped_bytes" in entry.detail


@pytest.mark.parametrize("key", ["broken.docx", "broken.pptx"])
def test_damaged_office_files_are_quarantined(key):
    _, (not_zip,) = load(key, b"PK\x03\x04 definitely not a zip file")
    assert not_zip.reason == "corrupt_file"
    _, (no_parts,) = load(key, zip_with_member("hello.txt", 10))
    assert no_parts.reason == "corrupt_file"


def test_office_file_over_the_member_limit_is_quarantined():
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for number in range(20):
            archive.writestr(f"part{number}.xml", b"<a/>")
    _, (entry,) = load("many.docx", buffer.getvalue(), max_parts=10)
    assert entry.reason == "too_large" and "zip members" in entry.detail
