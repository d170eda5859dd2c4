"""Where a text may be cut, decided from the text itself, never from gaps between token offsets.

Tokenizers disagree on offsets (WordPiece drops whitespace, SentencePiece/Metaspace and byte-level BPE keep it
inside or around their tokens, byte-level BPE can split one character into several tokens), so sentence and
structure boundaries are found on the characters and only then mapped to tokens (see `latechunk.chunking.spans`).

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
import sys
from functools import cache

import numpy as np

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
_MAY_END_SENTENCE_CODES = np.array(sorted(map(ord, _MAY_END_SENTENCE)), dtype=np.uint32)
LINE_BREAKS = frozenset("\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029")
PAGE_BREAKS = frozenset("\x0c\u2029")

_CJK_END = re.compile("[" + "".join(sorted(CJK_TERMINATORS)) + "][" + re.escape("".join(sorted(CLOSERS))) + r"]*(?=\S)")
# The start of a block line: a bullet, an ordered-list number or letter, a heading, a quote, a table row.
_BLOCK_START = re.compile(r"(?:[-*+•‣◦▪–—>|#]|\d{1,3}[.)]|[A-Za-z][.)])(?:\s|$)")
_LIST_NUMBER = re.compile(r"\d{1,3}\.")
_SOFT_WRAP_END = frozenset(",;:-–(")


def cut_strengths(text: str) -> dict[int, int]:
    """{position: strength} for every place the text may be cut; see the module docstring."""
    positions, strengths = cut_points(text)
    return dict(zip(positions.tolist(), strengths.tolist(), strict=True))


def cut_points(text: str, space: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """`cut_strengths` as two arrays, positions ascending. Computed on the text's code points: most cuts are a
    single space after a word, decided without a Python step each. ``space``: `whitespace_mask` of the text, when
    the caller has it already."""
    code_points = code_points_of(text)
    space = whitespace_mask(text) if space is None else space
    run_start = np.flatnonzero(space & ~np.concatenate(([False], space[:-1])))
    run_end = np.flatnonzero(space & ~np.concatenate((space[1:], [False]))) + 1  # exclusive
    inside = (run_start > 0) & (run_end < len(text))  # no cut before the first or after the last character
    run_start, run_end = run_start[inside], run_end[inside]
    plain = (
        (run_end - run_start == 1)
        & (code_points[run_start] == ord(" "))
        & ~np.isin(code_points[run_start - 1], _MAY_END_SENTENCE_CODES)
    )
    strengths = np.full(len(run_start), WORD, dtype=np.int64)
    for index in np.flatnonzero(~plain).tolist():
        strengths[index] = _whitespace_strength(text, int(run_start[index]), int(run_end[index]))
    cjk_ends = [match.end() for match in _CJK_END.finditer(text)]
    if not cjk_ends:
        return run_end, strengths
    cuts = dict(zip(run_end.tolist(), strengths.tolist(), strict=True))
    for position in cjk_ends:
        cuts[position] = max(cuts.get(position, INSIDE_WORD), SEGMENT)
    positions = np.array(sorted(cuts), dtype=np.int64)
    return positions, np.array([cuts[position] for position in positions.tolist()], dtype=np.int64)


def whitespace_mask(text: str) -> np.ndarray:
    """One bool per character of the text: whether it is whitespace (``str.isspace``)."""
    return np.isin(code_points_of(text), whitespace_code_points())


def code_points_of(text: str) -> np.ndarray:
    """The text's code points, one per character (lone surrogates included)."""
    return np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)


@cache
def whitespace_code_points() -> np.ndarray:
    """Every code point that ``str.isspace`` (and the regular expression ``\\s``) takes for whitespace."""
    return np.array([c for c in range(sys.maxunicode + 1) if chr(c).isspace()], dtype=np.uint32)


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
