"""Per-object extraction limits, without the extractors (the DAGs' params take their defaults from here)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Limits:
    """Per-object extraction limits. ``max_depth`` bounds the nesting of JSON arrays and objects: deeper ones
    would exhaust Python's recursion limit in the parser or, later, when the metadata is serialised (500 leaves
    room for the stack of an Airflow task under the default limit of 1000)."""

    max_depth: int = 500
    max_parts: int = 10_000
    time_budget_s: float = 300
    # Decoded PDF content pypdf may parse for one page and for the whole object, repeats counted each time (see
    # latechunk.sources.pdf_text): ordinary pages hold tens of KB; pypdf parses a few MB a second.
    max_pdf_page_bytes: int = 16 * 1024 * 1024
    max_pdf_bytes: int = 256 * 1024 * 1024
    # Declared uncompressed size of all the members of a zip-based file (DOCX, PPTX): what inflating may cost.
    max_unzipped_bytes: int = 256 * 1024 * 1024

