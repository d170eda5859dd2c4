"""DOCX and PPTX files built with python-docx and python-pptx, with German and Japanese text, for the tests of
office extraction and of chunking by sections."""

from __future__ import annotations

import io

import docx
import pptx


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
