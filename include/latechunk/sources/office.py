"""Text and structure of Word (.docx, python-docx) and PowerPoint (.pptx, python-pptx) files.

DOCX: body paragraphs and tables in document order. A paragraph styled "Title" or "Heading N" is a heading (level
1, or N); a list-styled or numbered paragraph is a list item; every table row is a block of its cells' text
separated by tabs (a merged cell counted once). The core properties' title, when set, is the document's title.

PPTX: one section per slide, titled by the slide's title placeholder. An untitled slide still opens a section,
"Slide N", whose heading spans no character (its text is not in the slide). Each slide is a page of the structure,
so chunks carry slide numbers as ``page_start``/``page_end``. Text frames (grouped shapes included) give one block
per paragraph (an indented paragraph is a list item), tables one block per row. Speaker notes are not read.

Both formats are zip files. Before a parser sees one, its members are counted and their declared uncompressed
sizes summed: a file over ``max_parts`` members or ``max_unzipped_bytes`` bytes is quarantined as `too_large`
(Python's zipfile never inflates a member past its declared size, so the declared sum bounds the work). The XML
parsers of both libraries resolve no entities. The deadline is checked between blocks.
"""

from __future__ import annotations

import io
import zipfile
from typing import Any

from latechunk.sources.extractors import Deadline, Limits, SkipDocument, SkipReason, require_text
from latechunk.sources.structure import LIST_ITEM, PARAGRAPH, TABLE_ROW, DocumentStructure, TextBuilder


def check_zip(data: bytes, limits: Limits, what: str) -> None:
    """Refuse a zip file that is not one, or that would inflate beyond the limits."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            members = archive.infolist()
    except (zipfile.BadZipFile, ValueError, OSError) as error:
        raise SkipDocument(SkipReason.CORRUPT_FILE, f"not a {what} (zip) file: {error}") from None
    if len(members) > limits.max_parts:
        detail = f"{len(members)} zip members > max_parts_per_object={limits.max_parts}"
        raise SkipDocument(SkipReason.TOO_LARGE, detail)
    inflated = sum(member.file_size for member in members)
    if inflated > limits.max_unzipped_bytes:
        raise SkipDocument(
            SkipReason.TOO_LARGE, f"{inflated} bytes once unzipped > max_unzipped_bytes={limits.max_unzipped_bytes}"
        )


def docx_text(data: bytes, limits: Limits, deadline: Deadline) -> tuple[str, dict[str, Any], DocumentStructure]:
    import docx
    from docx.table import Table

    check_zip(data, limits, "DOCX")
    try:
        document = docx.Document(io.BytesIO(data))
    except Exception as error:  # python-docx reports a damaged package with many exception types
        raise SkipDocument(SkipReason.CORRUPT_FILE, f"{type(error).__name__}: {error}") from None
    builder = TextBuilder()
    for index, item in enumerate(document.iter_inner_content()):
        deadline.check(f"DOCX block {index}")
        if isinstance(item, Table):
            _add_table_rows(builder, item)
            continue
        level = _heading_level(item.style.name if item.style is not None else "")
        if level:
            builder.add(PARAGRAPH, item.text, level=level)
        else:
            builder.add(LIST_ITEM if _is_list_item(item) else PARAGRAPH, item.text)
    text, structure = builder.finish()
    metadata: dict[str, Any] = {}
    title = (document.core_properties.title or "").strip()
    if title:
        metadata["title"] = title
    return require_text(text), metadata, structure


def pptx_text(data: bytes, limits: Limits, deadline: Deadline) -> tuple[str, dict[str, Any], DocumentStructure]:
    import pptx

    check_zip(data, limits, "PPTX")
    try:
        presentation = pptx.Presentation(io.BytesIO(data))
    except Exception as error:  # python-pptx reports a damaged package with many exception types
        raise SkipDocument(SkipReason.CORRUPT_FILE, f"{type(error).__name__}: {error}") from None
    builder = TextBuilder()
    slides = 0
    for number, slide in enumerate(presentation.slides, start=1):
        deadline.check(f"PPTX slide {number}")
        slides += 1
        builder.start_page()
        title_shape = slide.shapes.title
        title = title_shape.text_frame.text.strip() if title_shape is not None and title_shape.has_text_frame else ""
        if title:
            builder.add(PARAGRAPH, title, level=1)
        else:
            builder.add_empty_heading(f"Slide {number}", level=1)
        for shape in _shapes(slide.shapes):
            if title_shape is not None and shape.shape_id == title_shape.shape_id:
                continue
            if getattr(shape, "has_table", False) and shape.has_table:
                _add_table_rows(builder, shape.table)
            elif getattr(shape, "has_text_frame", False) and shape.has_text_frame:
                for paragraph in shape.text_frame.paragraphs:
                    builder.add(LIST_ITEM if paragraph.level > 0 else PARAGRAPH, _pptx_paragraph_text(paragraph))
    text, structure = builder.finish()
    metadata: dict[str, Any] = {"slides": slides}
    title = (presentation.core_properties.title or "").strip()
    if title:
        metadata["title"] = title
    return require_text(text), metadata, structure


def _heading_level(style: str) -> int:
    if style == "Title":
        return 1
    name, _, number = style.rpartition(" ")
    if name == "Heading" and number.isdigit() and 1 <= int(number) <= 9:
        return min(int(number), 6)
    return 0


def _is_list_item(paragraph: Any) -> bool:
    style = paragraph.style.name if paragraph.style is not None else ""
    if style.startswith("List"):
        return True
    properties = paragraph._p.pPr
    return properties is not None and properties.numPr is not None


def _add_table_rows(builder: TextBuilder, table: Any) -> None:
    for row in table.rows:
        cells, seen = [], set()
        for cell in row.cells:
            element = id(getattr(cell, "_tc", cell))  # python-docx repeats a merged cell for each grid column
            if element in seen:
                continue
            seen.add(element)
            cells.append(" ".join(cell.text.split()))
        builder.add(TABLE_ROW, "\t".join(cell for cell in cells if cell))


def _pptx_paragraph_text(paragraph: Any) -> str:
    # python-pptx writes a line break inside a paragraph as "\v"; a line break is what it is.
    return paragraph.text.replace("\v", "\n")


def _shapes(shapes: Any):
    """The shapes of a slide in their order, the members of groups in place of the group."""
    from pptx.enum.shapes import MSO_SHAPE_TYPE

    for shape in shapes:
        if shape.shape_type == MSO_SHAPE_TYPE.GROUP:
            yield from _shapes(shape.shapes)
        else:
            yield shape
