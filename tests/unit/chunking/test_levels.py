"""Section and document spans of multi-granularity late chunking (`latechunk.chunking.levels`)."""

from __future__ import annotations

import pytest
from latechunk.chunking.levels import DOCUMENT, SECTION, LevelSpan, level_spans, parse_levels
from latechunk.chunking.spans import ChunkSpan
from latechunk.sources.structure import DocumentStructure, Heading

#          0         1         2         3         4         5
#          0123456789012345678901234567890123456789012345678901234
TEXT = "Intro text.\n\nGuide\n\nFirst part.\n\nSetup\n\nDo this. Then that."
GUIDE, SETUP = TEXT.index("Guide"), TEXT.index("Setup")
STRUCTURE = DocumentStructure(headings=[Heading(1, GUIDE, GUIDE + 5, "Guide"), Heading(2, SETUP, SETUP + 5, "Setup")])


def chunks(char_bounds: list[tuple[int, int]], tokens_per_chunk: int = 3) -> list[ChunkSpan]:
    """Chunks tiling tokens [0, n): chunk i has tokens_per_chunk tokens (the first one more, for [CLS])."""
    spans, token = [], 0
    for chunk_id, (start, end) in enumerate(char_bounds):
        width = tokens_per_chunk + (chunk_id == 0)
        spans.append(ChunkSpan(chunk_id, token, token + width, start, end, TEXT[start:end]))
        token += width
    return spans


SPANS = chunks([(0, 11), (GUIDE, 31), (SETUP, 48), (49, len(TEXT))])


def test_levels_are_parsed_in_canonical_order_with_chunk_always_included():
    assert parse_levels("document, section") == ("chunk", "section", "document")
    assert parse_levels(["section"]) == ("chunk", "section")
    assert parse_levels("") == parse_levels(None) == ("chunk",)
    with pytest.raises(ValueError, match="unknown levels"):
        parse_levels("chunk,paragraph")


def test_a_section_is_the_run_of_chunks_from_its_heading_to_the_next_heading():
    rows, parents = level_spans(STRUCTURE, SPANS, SPANS[-1].token_end, ("chunk", "section"))
    assert rows == [
        LevelSpan(SECTION, 0, 0, 4, 0, 11, ()),  # the text before the first heading
        LevelSpan(SECTION, 1, 4, 7, GUIDE, 31, ("Guide",)),
        LevelSpan(SECTION, 2, 7, 13, SETUP, len(TEXT), ("Guide", "Setup")),  # innermost: two chunks
    ]
    assert parents == [0, 1, 2, 2]


def test_the_document_span_covers_every_token():
    rows, parents = level_spans(STRUCTURE, SPANS, 14, ("chunk", "document"))
    assert rows == [LevelSpan(DOCUMENT, 0, 0, 14, 0, len(TEXT), ())]
    assert parents == [None] * len(SPANS)


def test_a_document_without_headings_has_no_section_rows():
    rows, parents = level_spans(DocumentStructure(), SPANS, 13, ("chunk", "section", "document"))
    assert [row.level for row in rows] == [DOCUMENT]
    assert parents == [None] * len(SPANS)


def test_chunks_only_gives_no_rows():
    assert level_spans(STRUCTURE, SPANS, 13, ("chunk",)) == ([], [None] * len(SPANS))


def test_row_ids_are_deterministic_and_name_their_document():
    row = LevelSpan(SECTION, 2, 7, 13, SETUP, len(TEXT), ("Guide", "Setup"))
    assert row.row_id("corpus/a.md") == "corpus/a.md:section-2"
    assert row.row_id("corpus/a.md").rsplit(":", 1)[0] == "corpus/a.md"
