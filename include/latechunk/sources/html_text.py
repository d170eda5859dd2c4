"""Visible text of an HTML page, by a small streaming tokenizer that is linear in the size of the markup.

Neither a tree (walking 40,000 nested elements took minutes) nor the standard library's `html.parser` (quadratic on
an unterminated tag such as `a <b a <b ...`) is safe on hostile markup. Every scan here moves forward only: text
runs to the next "<", a comment to "-->", a tag to the first ">" outside a quoted attribute value. As in browsers,
a tag, comment or script still open at the end of the markup hides the rest of it, and a quote opens a value only
after "=" (`<a '>'` is a tag `<a '>` and the text `'`).

Structure: ``h1``-``h6`` are headings (their level and span go into the `DocumentStructure`), ``<title>`` and
``<meta name="description">`` go into the metadata. Boilerplate rule: the content of ``<nav>`` is dropped
everywhere, and so is that of ``<header>`` and ``<footer>`` outside sectioning content (``article``, ``main``,
``section``): there they are the page's banner and footer, repeated on every page of a site; inside an article or a
section they are that section's own heading or byline (Standard Ebooks put a chapter's ``<h2>`` in a ``<header>``)
and are kept. A heading is marked in the stream by a NUL character and its level (NUL never reaches here:
`latechunk.sources.extractors.decode_text` refuses it, and character references decode it to U+FFFD).

The one scan that can look beyond what it consumes is a tag's: a quoted value may hold ">" and run into later
tags, and a quote that never closes (or closes with no ">" after it) sends the scan to the end of the markup, after
which the tag ends at its first ">" instead. Repeating that from every tag was quadratic (30 KB of `<a x='>'`
took 41 s), so after the first such failure the page's tags all end at their first ">": each character is then
scanned at most a few times, whatever the quotes (`_Page.scanned` counts them).
"""

from __future__ import annotations

import html
import re
from collections import Counter
from typing import Any

from latechunk.sources.extractors import Deadline
from latechunk.sources.structure import PARAGRAPH, DocumentStructure, TextBuilder

_BLOCK_BREAK = "\u2029"
_BLOCK_TAGS = frozenset(
    (
        "address article aside blockquote dd div dl dt figcaption footer h1 h2 h3 h4 h5 h6 header hr li main nav ol p"
        " pre section table td th tr ul br"
    ).split()
)
# Elements whose content is dropped: raw text ones (never parsed for tags) and ones parsed as usual.
_RAW_SKIPPED = frozenset({"script", "style"})
_SKIPPED = frozenset({"noscript", "template", "nav"})
# Dropped outside sectioning content only (see the module docstring).
_CHROME = frozenset({"header", "footer"})
_SECTIONING = frozenset({"article", "main", "section"})
_HEADINGS = {f"h{level}": level for level in range(1, 7)}
_HEADING_MARK = "\x00"
# Elements whose content is text up to their end tag, with character references but no tags.
_RAW_TEXT = frozenset({"title", "textarea"})
_TAG_NAME = re.compile(r"</?([A-Za-z][^\t\n\f\r />]*)")
# A quoted attribute value starts after "=" and optional whitespace.
_VALUE_QUOTE = re.compile("=[\t\n\f\r ]*([\"'])")
# What starts markup; any other "<" is text.
_MARKUP_START = re.compile(r"<[A-Za-z!/?]")
# Pieces of a tag's attributes: a run of separators, a name or bare value, an "=" with the whitespace around it.
_SEPARATORS = re.compile(r"[\t\n\f\r /]*")
_NAME_OR_BARE_VALUE = re.compile(r"[^\t\n\f\r />=]+")
_EQUALS = re.compile(r"[\t\n\f\r ]*=[\t\n\f\r ]*")
_STEPS_PER_CHECK = 4096


def html_text(markup: str, deadline: Deadline) -> tuple[str, dict[str, Any]]:
    """Visible text of a page and its metadata (`html_document` without the structure)."""
    text, metadata, _ = html_document(markup, deadline)
    return text, metadata


def html_document(markup: str, deadline: Deadline) -> tuple[str, dict[str, Any], DocumentStructure]:
    """Visible text of a page: block elements and <br> end a line, other whitespace collapses to one space; the
    text of <body> when there is one; script, style, noscript, template and navigation boilerplate dropped; <title>
    and <meta name="description"> as metadata; h1-h6 as headings of the structure."""
    page = _Page(markup)
    page.read(deadline)
    pieces = page.pieces
    if page.body_start is not None:
        pieces = pieces[page.body_start : page.body_end]
    builder = TextBuilder(block_separator="\n")
    for block in "".join(pieces).split(_BLOCK_BREAK):
        level = 0
        if block.startswith(_HEADING_MARK):
            level, block = int(block[1]), block[2:]
        builder.add(PARAGRAPH, " ".join(block.split()), level=level)
    text, structure = builder.finish()
    metadata = {name: value for name, value in (("title", page.title), ("description", page.description)) if value}
    return text, metadata, structure


class _Page:
    def __init__(self, markup: str) -> None:
        self.markup = markup
        self.pieces: list[str] = []
        self.title = ""
        self.description = ""
        self._sectioning = 0
        self._chrome: list[bool] = []  # for each open header or footer: whether it is dropped
        self.body_start: int | None = None
        self.body_end: int | None = None
        self._skipped: Counter[str] = Counter()
        self._closing: dict[str, re.Pattern[str]] = {}
        self._absent_from: dict[str, int] = {}
        self._quotes_unpaired = False
        # Characters looked at by tag scans (some more than once): what keeps them linear, and what tests count.
        self.scanned = 0

    def read(self, deadline: Deadline) -> None:
        markup, pos, steps = self.markup, 0, 0
        while pos < len(markup):
            steps += 1
            if steps % _STEPS_PER_CHECK == 0:
                deadline.check(f"HTML at character {pos}")
            found = _MARKUP_START.search(markup, pos)
            if found is None:
                self._text(markup[pos:])
                return
            self._text(markup[pos : found.start()])
            pos = self._markup_at(found.start())

    def _markup_at(self, lt: int) -> int:
        """Handle the markup that starts at ``lt``; returns the position after it."""
        markup = self.markup
        if markup.startswith("<!--", lt):
            close = markup.find("-->", lt + 4)
            return len(markup) if close < 0 else close + 3
        name = _TAG_NAME.match(markup, lt)
        if name is None:  # a doctype, a bogus comment, or an end tag without a name
            close = self._find(">", lt + 2)
            return len(markup) if close < 0 else close + 1
        close = self._tag_end(name.end())
        if close < 0:
            return len(markup)
        tag = name.group(1).lower()
        if markup.startswith("</", lt):
            self._end_tag(tag)
            return close + 1
        self._start_tag(tag)
        if tag == "meta" and not self.description:
            self._meta(markup[name.end() : close])
        if tag in _RAW_SKIPPED or tag in _RAW_TEXT:
            return self._raw_content(tag, close + 1)
        return close + 1

    def _tag_end(self, pos: int) -> int:
        """Position of the ">" that ends the tag whose attributes start at ``pos``, or -1 when none does: the first
        ">" outside a quoted value. A quote that is never closed, or closed with no ">" after it, counts as a
        character; the tag then ends at its first ">", and so does every later tag of the page."""
        first = gt = self._find(">", pos)
        if self._quotes_unpaired:
            return first
        while gt >= 0:
            quote = _VALUE_QUOTE.search(self.markup, pos, gt)
            self.scanned += (quote.end() if quote else gt) - pos
            if quote is None:
                return gt
            closing = self._find(quote.group(1), quote.end())
            if closing < 0:
                break
            pos = closing + 1
            if pos > gt:
                gt = self._find(">", pos)
        self._quotes_unpaired = True
        return first

    def _find(self, char: str, pos: int) -> int:
        """``markup.find(char, pos)``, remembering where a search failed so that no failed search repeats:
        hostile markup could otherwise make every tag scan to the end."""
        if pos >= self._absent_from.get(char, len(self.markup) + 1):
            return -1
        found = self.markup.find(char, pos)
        self.scanned += (len(self.markup) if found < 0 else found) - pos
        if found < 0:
            self._absent_from[char] = pos
        return found

    def _raw_content(self, tag: str, pos: int) -> int:
        closing = self._closing.setdefault(tag, re.compile(rf"</{tag}(?=[\t\n\f\r />])", re.IGNORECASE))
        found = closing.search(self.markup, pos)
        stop = found.start() if found else len(self.markup)
        if tag in _RAW_TEXT:
            self._text(self.markup[pos:stop])
            if tag == "title" and not self.title:
                self.title = html.unescape(self.markup[pos:stop]).strip()
        else:
            self._skipped[tag] -= 1
        return stop

    def _meta(self, attributes: str) -> None:
        """The description of a <meta name="description" content="..."> tag (its attributes given)."""
        values = _attributes(attributes)
        if values.get("name", "").strip().lower() == "description":
            self.description = " ".join(html.unescape(values.get("content", "")).split())

    def _start_tag(self, tag: str) -> None:
        if tag in _SECTIONING:
            self._sectioning += 1
        if tag in _CHROME:
            self._chrome.append(not self._sectioning)
        if tag in _RAW_SKIPPED or tag in _SKIPPED or (tag in _CHROME and self._chrome[-1]):
            self._skipped[tag] += 1
        elif self._skipped.total():
            return
        elif tag == "body" and self.body_start is None:
            self.body_start = len(self.pieces)
        elif tag in _HEADINGS:
            self.pieces.append(f"{_BLOCK_BREAK}{_HEADING_MARK}{_HEADINGS[tag]}")
        elif tag in _BLOCK_TAGS:
            self.pieces.append(_BLOCK_BREAK)

    def _end_tag(self, tag: str) -> None:
        if tag in _SECTIONING:
            self._sectioning = max(0, self._sectioning - 1)
        if tag in _SKIPPED or (tag in _CHROME and self._chrome and self._chrome.pop()):
            self._skipped[tag] = max(0, self._skipped[tag] - 1)
        elif self._skipped.total():
            return
        elif tag == "body" and self.body_start is not None and self.body_end is None:
            self.body_end = len(self.pieces)
        elif tag in _BLOCK_TAGS:
            self.pieces.append(_BLOCK_BREAK)

    def _text(self, text: str) -> None:
        if text and not self._skipped.total():
            self.pieces.append(html.unescape(text).replace(_HEADING_MARK, "\ufffd"))


def _attributes(text: str) -> dict[str, str]:
    """Attributes of a tag (the text after its name), first of each name kept, read forward only: linear in the
    text whatever its quotes. A quote that never closes ends the reading."""
    values: dict[str, str] = {}
    pos = 0
    while pos < len(text):
        pos = _SEPARATORS.match(text, pos).end()
        name = _NAME_OR_BARE_VALUE.match(text, pos)
        if name is None:
            break
        pos = name.end()
        equals = _EQUALS.match(text, pos)
        if equals is None:
            values.setdefault(name.group().lower(), "")
            continue
        pos = equals.end()
        if pos < len(text) and text[pos] in "\"'":
            close = text.find(text[pos], pos + 1)
            if close < 0:
                break
            value, pos = text[pos + 1 : close], close + 1
        else:
            bare = _NAME_OR_BARE_VALUE.match(text, pos)
            value, pos = (bare.group(), bare.end()) if bare else ("", pos)
        values.setdefault(name.group().lower(), value)
    return values
