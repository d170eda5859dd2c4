"""Chunk boundaries from a document's headings, and each chunk's section path and pages.

Both "sentences" and "sections" chunking read the headings of the document's structure (`latechunk.sources.structure`):

* A heading always starts a chunk: the cut before its first word is made a paragraph break, which no chunk spans.
* A heading never ends one: the cut after its last word is made the weakest there is (as if inside a word), so the
  heading stays with the first sentence of its section; a chunk over the token cap is split there only when it is
  cut between any two words, and then the heading's piece takes as many words after it as the cap allows. A
  heading directly followed by another heading is a chunk of its own.
* "sections": the words of a section (from its heading to the next heading, or the whole document when it has no
  heading) are one chunk when they fit ``max_chunk_tokens``; a larger section is cut as "sentences" cuts it.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Sequence
from itertools import accumulate

from latechunk.chunking.segmentation import INSIDE_WORD, PARAGRAPH
from latechunk.sources.structure import DocumentStructure

Ranges = list[tuple[int, int]]


def with_heading_cuts(strengths: Sequence[int], word_starts: Sequence[int], structure: DocumentStructure) -> list[int]:
    """``strengths`` (the cut before each word, `latechunk.token_words.gap_strengths`) with a paragraph break
    before every heading's first word and no cut after its last word."""
    adjusted = list(strengths)
    starts = section_start_words(word_starts, structure)
    for heading in structure.headings:
        after = bisect.bisect_left(word_starts, heading.end)
        if heading.end > heading.start and 0 < after < len(adjusted) and after not in starts:
            adjusted[after] = INSIDE_WORD
    for word in starts:
        if 0 < word < len(adjusted):
            adjusted[word] = PARAGRAPH
    return adjusted


def section_start_words(word_starts: Sequence[int], structure: DocumentStructure) -> set[int]:
    """Indices of the words that start a section: the first word at or after each heading's start."""
    return {bisect.bisect_left(word_starts, start) for start in structure.heading_starts()}


def section_ranges(
    strengths: Sequence[int],
    sizes: Sequence[int],
    section_starts: set[int],
    cap: int,
    sentence_ranges: Callable[[Sequence[int], Sequence[int]], Ranges],
) -> Ranges:
    """Word ranges of "sections" chunking: each section whole when it has at most ``cap`` tokens, else
    ``sentence_ranges(strengths, sizes)`` of its words."""
    tokens_before = [0, *accumulate(sizes)]
    bounds = sorted({0, *(start for start in section_starts if 0 < start < len(sizes)), len(sizes)})
    ranges: Ranges = []
    for start, end in zip(bounds, bounds[1:], strict=False):
        if tokens_before[end] - tokens_before[start] <= cap:
            ranges.append((start, end))
        else:
            inner = sentence_ranges(strengths[start:end], sizes[start:end])
            ranges.extend((start + a, start + b) for a, b in inner)
    return ranges


def chunk_locations(
    structure: DocumentStructure, char_spans: Sequence[tuple[int, int]]
) -> list[tuple[list[str], int | None, int | None]]:
    """(section path, first page, last page) of each chunk, given the chunks' character spans in document order:
    the path of the chunk's first character, the pages of its first and last characters (None without pages)."""
    paths = structure.section_paths([start for start, _ in char_spans])
    return [
        (path, structure.page_of(start), structure.page_of(max(start, end - 1)))
        for path, (start, end) in zip(paths, char_spans, strict=True)
    ]
