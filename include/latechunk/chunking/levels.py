"""Multi-granularity late chunking: besides its chunks, a document can be indexed with one vector per section and one
for the whole document, pooled from the same token embeddings as its chunks (no extra encoder pass).

Levels: ``chunk`` (always), ``section`` and ``document``. A *section* is the innermost section block: from a heading
to the next heading of any level, made of the chunks whose first character lies in it (`sentences` and `sections`
chunking start a chunk at every heading, so a section's tokens are exactly its heading's through the token before
the next heading; with `fixed` chunks its bounds are rounded to chunk bounds). The text before a document's first
heading is a section with an empty path. A document without headings has no section rows: one section would repeat
its document vector. The *document* span is every token of the document, its special tokens included.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from latechunk.chunking.spans import ChunkSpan
from latechunk.sources.documents import level_row_id
from latechunk.sources.structure import DocumentStructure

CHUNK = "chunk"
SECTION = "section"
DOCUMENT = "document"
LEVELS = (CHUNK, SECTION, DOCUMENT)
DEFAULT_LEVELS = (CHUNK,)
# Characters of a section's or document's text stored with its row: enough to show it, never megabytes.
LEVEL_TEXT_CHARS = 1000


def parse_levels(value: str | Iterable[str] | None) -> tuple[str, ...]:
    """The levels of a setting ("chunk,section", ["document"], ...) in canonical order, ``chunk`` always
    included; empty means the default."""
    names = value.split(",") if isinstance(value, str) else list(value or ())
    wanted = {name.strip().lower() for name in names if name.strip()}
    unknown = sorted(wanted - set(LEVELS))
    if unknown:
        raise ValueError(f"unknown levels {unknown}; expected some of {LEVELS}")
    return tuple(level for level in LEVELS if level in wanted | {CHUNK})


@dataclass(frozen=True)
class LevelSpan:
    """A section or the whole document: the tokens its vector pools and the characters its row points at."""

    level: str
    ordinal: int  # its place among the document's rows of this level
    token_start: int
    token_end: int
    char_start: int
    char_end: int
    section: tuple[str, ...]  # the section path (empty for the document, and for the text before the first heading)

    def row_id(self, doc_id: str) -> str:
        return level_row_id(doc_id, self.level, self.ordinal)


def level_spans(
    structure: DocumentStructure, spans: Sequence[ChunkSpan], n_tokens: int, levels: Sequence[str]
) -> tuple[list[LevelSpan], list[int | None]]:
    """The section and document spans of a document whose chunks are ``spans`` (in order, tiling its
    ``n_tokens`` tokens), for the ``levels`` wanted; and the ordinal of each chunk's section (None without section
    rows)."""
    rows: list[LevelSpan] = []
    parents: list[int | None] = [None] * len(spans)
    if SECTION in levels and structure.headings and spans:
        starts = structure.heading_starts()
        groups: list[tuple[int, int, int]] = []  # (heading index or -1, first chunk, last chunk)
        for position, span in enumerate(spans):
            heading = bisect.bisect_right(starts, span.char_start) - 1
            if groups and groups[-1][0] == heading:
                groups[-1] = (heading, groups[-1][1], position)
            else:
                groups.append((heading, position, position))
        paths = structure.section_paths([starts[heading] for heading, _, _ in groups if heading >= 0])
        paths_by_heading = dict(zip([heading for heading, _, _ in groups if heading >= 0], paths, strict=True))
        for ordinal, (heading, first, last) in enumerate(groups):
            rows.append(LevelSpan(
                SECTION, ordinal, spans[first].token_start, spans[last].token_end, spans[first].char_start,
                spans[last].char_end, tuple(paths_by_heading.get(heading, ())),
            ))  # fmt: skip
            parents[first : last + 1] = [ordinal] * (last - first + 1)
    if DOCUMENT in levels and spans:
        rows.append(LevelSpan(DOCUMENT, 0, 0, n_tokens, spans[0].char_start, spans[-1].char_end, ()))
    return rows, parents
