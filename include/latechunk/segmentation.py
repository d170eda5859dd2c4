"""Where a text may be cut, decided from the text itself, never from gaps between token offsets.

Tokenizers disagree on offsets (WordPiece drops whitespace, SentencePiece/Metaspace and byte-level BPE keep it
inside or around their tokens, byte-level BPE can split one character into several tokens), so sentence and
structure boundaries are found on the characters and only then mapped to tokens (see `latechunk.spans`).

`cut_strengths` maps a character position (the first character after a cut) to the cut's strength:

* ``PARAGRAPH``: a blank line, a paragraph separator (U+2029) or a form feed. Chunks never span one.
* ``SEGMENT``: the end of a sentence (a terminator followed by whitespace; a full-width CJK terminator even without
  whitespace), or a line break that starts a new block: a list item, heading, quote or table row, or any line
  after a line that is not a soft wrap. HTML-extracted text has one block per line, Markdown lists one item per line.
* ``SOFT_LINE``: a line break inside a sentence ("soft wrap": the line ends in a letter, digit or comma and the
  next one starts in lower case), used only to split a chunk that is over the token cap.
* ``WORD``: any other whitespace, likewise only for splitting over-long chunks.

Positions with no entry (inside a word) have strength ``INSIDE_WORD``.
"""

from __future__ import annotations

import re

INSIDE_WORD, WORD, SOFT_LINE, SEGMENT, PARAGRAPH = range(5)

# A sentence ends at one of these characters when it is followed by whitespace or the end of the text.
SENTENCE_TERMINATORS = frozenset(".!?…‼⁇⁈⁉؟۔")
# Full-width terminators end a sentence even with no whitespace after them (CJK text has none).
CJK_TERMINATORS = frozenset("。！？｡")
# A "." after one of these words (or after a single capital, an initial) abbreviates, it does not end a sentence.
ABBREVIATIONS = frozenset({"dr", "mr", "mrs", "ms", "prof", "st", "jr", "sr", "vs", "cf", "fig", "al", "e.g", "i.e"})
# Closing quotes and brackets that stay with the sentence they close: 'He said "no." Then...'.
CLOSERS = frozenset("\"')]}»”’」』）")
_MAY_END_SENTENCE = SENTENCE_TERMINATORS | CJK_TERMINATORS | CLOSERS
LINE_BREAKS = frozenset("\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029")
PAGE_BREAKS = frozenset("\x0c\u2029")

_WHITESPACE = re.compile(r"\s+")
_CJK_END = re.compile("[" + "".join(sorted(CJK_TERMINATORS)) + "][" + re.escape("".join(sorted(CLOSERS))) + r"]*(?=\S)")
# The start of a block line: a bullet, an ordered-list number or letter, a heading, a quote, a table row.
_BLOCK_START = re.compile(r"(?:[-*+•‣◦▪–—>|#]|\d{1,3}[.)]|[A-Za-z][.)])(?:\s|$)")
_LIST_NUMBER = re.compile(r"\d{1,3}\.")
_SOFT_WRAP_END = frozenset(",;:-–(")


def cut_strengths(text: str) -> dict[int, int]:
    """{position: strength} for every place the text may be cut; see the module docstring."""
    cuts: dict[int, int] = {}
    for match in _WHITESPACE.finditer(text):
        start, end = match.span()
        if start == 0 or end == len(text):
            continue
        if end - start == 1 and text[start] == " " and text[start - 1] not in _MAY_END_SENTENCE:
            cuts[end] = WORD  # the common case, decided without a closer look
        else:
            cuts[end] = _whitespace_strength(text, start, end)
    for match in _CJK_END.finditer(text):
        cuts[match.end()] = max(cuts.get(match.end(), INSIDE_WORD), SEGMENT)
    return cuts


def first_sentence(text: str) -> str:
    """The text up to its first sentence or block boundary (whitespace-trimmed)."""
    text = text.strip()
    cuts = [position for position, strength in cut_strengths(text).items() if strength >= SEGMENT]
    return text[: min(cuts)].rstrip() if cuts else text


def _whitespace_strength(text: str, start: int, end: int) -> int:
    run = text[start:end]
    breaks = sum(1 for char in run if char in LINE_BREAKS) - run.count("\r\n")
    if breaks >= 2 or any(char in PAGE_BREAKS for char in run):
        return PARAGRAPH
    if _ends_sentence(text, start):
        return SEGMENT
    if breaks == 1:
        return SOFT_LINE if _is_soft_wrap(text, start, end) else SEGMENT
    return WORD


def _ends_sentence(text: str, end: int) -> bool:
    """Whether the non-whitespace run that ends at ``end`` closes a sentence."""
    last = end - 1
    while last > 0 and text[last] in CLOSERS:
        last -= 1
    char = text[last]
    if char in CJK_TERMINATORS:
        return True
    if char not in SENTENCE_TERMINATORS:
        return False
    return not (char == "." and (_is_abbreviation(text, last) or _is_list_number(text, end)))


def _is_abbreviation(text: str, dot: int) -> bool:
    start = dot
    while start > 0 and (text[start - 1].isalpha() or text[start - 1] == "."):
        start -= 1
    word = text[start:dot]
    return (len(word) == 1 and word.isupper()) or word.lower() in ABBREVIATIONS


def _is_list_number(text: str, end: int) -> bool:
    """Whether the run ending at ``end`` is the "1." of an ordered-list item at the start of a line."""
    start = end
    while start > 0 and not text[start - 1].isspace():
        start -= 1
    line_start = start
    while line_start > 0 and text[line_start - 1].isspace() and text[line_start - 1] not in LINE_BREAKS:
        line_start -= 1
    at_line_start = line_start == 0 or text[line_start - 1] in LINE_BREAKS
    return at_line_start and _LIST_NUMBER.fullmatch(text, start, end) is not None


def _is_soft_wrap(text: str, start: int, end: int) -> bool:
    before, after = text[start - 1], text[end]
    continues = before.isalnum() or before in _SOFT_WRAP_END
    return continues and after.islower() and not _BLOCK_START.match(text, end)
