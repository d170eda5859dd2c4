"""The structure of an extracted document: headings, blocks and page starts, as character offsets into its text.

Extraction builds the text and its structure together (`TextBuilder`), so every span is an exact slice of the
text by construction. Chunking reads the structure: a heading always starts a chunk, the section path of a chunk
is the chain of headings above its first character, and its pages are the pages of its first and last character.

Headings nest by level: a heading closes every open heading of the same or a deeper level, so the path of
``# A`` / ``### B`` / ``## C`` at C is ``["A", "C"]``. Page starts (PDF pages, PPTX slides) are the offsets where
pages 1, 2, ... start; text before the first start (none in practice) belongs to page 1.

The structure travels through staging as compact JSON (`to_json`, `from_json`); a document without one (plain
text, JSON records, batches staged before structures existed) has the empty structure.
"""

from __future__ import annotations

import bisect
import json
from dataclasses import dataclass, field

# Block kinds. A heading is also recorded as a block of kind "heading".
HEADING, PARAGRAPH, LIST_ITEM = "heading", "paragraph", "list_item"
TABLE_ROW, CODE, QUOTE = "table_row", "code", "quote"
# Consecutive blocks of these kinds are separated by one line break, all others by a blank line.
_LINE_KINDS = frozenset({LIST_ITEM, TABLE_ROW})


@dataclass(frozen=True)
class Heading:
    level: int  # 1 for a title or h1, up to 6
    start: int
    end: int
    title: str


@dataclass(frozen=True)
class Block:
    kind: str
    start: int
    end: int


@dataclass(frozen=True)
class DocumentStructure:
    headings: list[Heading] = field(default_factory=list)
    blocks: list[Block] = field(default_factory=list)
    page_starts: list[int] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.headings or self.blocks or self.page_starts)

    def heading_starts(self) -> list[int]:
        return [heading.start for heading in self.headings]

    def section_path(self, offset: int) -> list[str]:
        """Titles of the headings whose sections contain the character at ``offset``, outermost first."""
        stack: list[Heading] = []
        for heading in self.headings[: bisect.bisect_right(self.heading_starts(), offset)]:
            while stack and stack[-1].level >= heading.level:
                stack.pop()
            stack.append(heading)
        return [heading.title for heading in stack]

    def section_paths(self, offsets: list[int]) -> list[list[str]]:
        """`section_path` of several ascending offsets, in one walk over the headings."""
        paths, stack, index = [], [], 0
        for offset in offsets:
            while index < len(self.headings) and self.headings[index].start <= offset:
                heading = self.headings[index]
                while stack and stack[-1].level >= heading.level:
                    stack.pop()
                stack.append(heading)
                index += 1
            paths.append([heading.title for heading in stack])
        return paths

    def page_of(self, offset: int) -> int | None:
        """1-based page (or slide) of the character at ``offset``; None when the document has no pages."""
        if not self.page_starts:
            return None
        return max(1, bisect.bisect_right(self.page_starts, offset))

    def to_json(self) -> str:
        """Compact JSON: empty text for the empty structure, so old and unstructured rows cost nothing."""
        if not self:
            return ""
        return json.dumps(
            {
                "h": [[h.level, h.start, h.end, h.title] for h in self.headings],
                "b": [[b.kind, b.start, b.end] for b in self.blocks],
                "p": self.page_starts,
            },
            ensure_ascii=False,
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, text: str | None) -> DocumentStructure:
        if not text:
            return cls()
        data = json.loads(text)
        return cls(
            headings=[Heading(*item) for item in data.get("h", [])],
            blocks=[Block(*item) for item in data.get("b", [])],
            page_starts=list(data.get("p", [])),
        )


class TextBuilder:
    """Text assembled block by block, with the structure of what was added.

    Each block is whitespace-trimmed and inner whitespace runs other than line breaks are kept as they are;
    blank blocks are dropped. Blocks are separated by a blank line ("\\n\\n", a paragraph break for chunking),
    except consecutive list items or table rows, which are separated by one line break; with ``block_separator``,
    every block is separated by that instead (HTML text has always had one block per line)."""

    def __init__(self, block_separator: str | None = None) -> None:
        self._separator = block_separator
        self._pieces: list[str] = []
        self._length = 0
        self._last_kind: str | None = None
        self._pages_pending = 0
        self._headings_pending: list[tuple[int, str]] = []
        self.structure = DocumentStructure()

    @property
    def length(self) -> int:
        return self._length

    def add(self, kind: str, text: str, level: int = 0) -> Block | None:
        """Append a block (a heading when ``level`` > 0); returns its span, or None when it was blank."""
        text = text.strip()
        if not text:
            return None
        if self._last_kind is not None:
            same_line = kind == self._last_kind and kind in _LINE_KINDS
            self._append(self._separator or ("\n" if same_line else "\n\n"))
        start = self._length
        self._flush_pending(start)
        self._append(text)
        block = Block(HEADING if level else kind, start, self._length)
        self.structure.blocks.append(block)
        if level:
            title = " ".join(text.split())
            self.structure.headings.append(Heading(min(level, 6), start, self._length, title))
        self._last_kind = block.kind
        return block

    def start_page(self) -> None:
        """The next block starts a new page (a PDF page, a slide). A page with no block starts where the next
        block does (it holds no character), so page numbers count every page."""
        self._pages_pending += 1

    def add_empty_heading(self, title: str, level: int) -> None:
        """A heading whose title is not in the text (an untitled slide's "Slide 3"): it spans no character and
        opens its section where the next block starts."""
        self._headings_pending.append((min(level, 6), " ".join(title.split())))

    def text(self) -> str:
        return "".join(self._pieces)

    def finish(self) -> tuple[str, DocumentStructure]:
        """The text and its structure; pages and headings still pending (an empty last slide) start at the end."""
        self._flush_pending(self._length)
        return self.text(), self.structure

    def _flush_pending(self, start: int) -> None:
        self.structure.page_starts.extend([start] * self._pages_pending)
        self._pages_pending = 0
        self.structure.headings.extend(Heading(level, start, start, title) for level, title in self._headings_pending)
        self._headings_pending.clear()

    def _append(self, piece: str) -> None:
        self._pieces.append(piece)
        self._length += len(piece)
