"""Tokens grouped into words, and the strength of the cut before each word, computed on arrays.

Annotation looks at every token of every document, so these run as numpy operations over a document's token
offsets instead of a Python loop per token (the loop took about as long as tokenizing itself).

Units: consecutive tokens whose character spans overlap (byte-level BPE can split one character into several
tokens), zero-width tokens included, form one unit. A unit whose characters are all whitespace (byte-level BPE's
"\\n\\n", Metaspace's lone "▁") joins the word before it (leading ones join the first word), so no word is
whitespace only. A word's characters are its own units' characters without surrounding whitespace.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from latechunk.chunking.segmentation import INSIDE_WORD, cut_points


@dataclass(frozen=True)
class Words:
    """Word k covers content tokens [token_start[k], token_end[k]) and the non-whitespace characters
    [char_start[k], char_end[k]); the words tile the content tokens."""

    token_start: list[int]
    token_end: list[int]
    char_start: list[int]
    char_end: list[int]

    def __len__(self) -> int:
        return len(self.token_start)

    def sizes(self) -> list[int]:
        return [end - start for start, end in zip(self.token_start, self.token_end, strict=True)]


def group_words(text: str, offsets: np.ndarray, space: np.ndarray) -> Words:
    """The words of the content tokens whose character offsets are ``offsets`` ((tokens, 2) start/end);
    ``space``: the text's `latechunk.chunking.segmentation.whitespace_mask`."""
    count = len(offsets)
    if count == 0:
        return Words([], [], [], [])
    starts, ends = offsets[:, 0].astype(np.int64), offsets[:, 1].astype(np.int64)
    # A token starts a unit unless it begins before the end of the unit so far (the running maximum of the ends
    # before it: units never go backwards) or is zero-width.
    reach = np.maximum.accumulate(ends)
    new_unit = np.ones(count, dtype=bool)
    new_unit[1:] = (starts[1:] >= reach[:-1]) & (starts[1:] != ends[1:])
    unit_first = np.flatnonzero(new_unit)  # index of each unit's first token
    unit_start = starts[unit_first]
    unit_end = np.maximum.reduceat(ends, unit_first)
    # Trim each unit to its non-whitespace characters; a unit with none is whitespace only (or empty).
    solid = np.flatnonzero(~space)  # the positions of the characters that are not whitespace
    first = np.searchsorted(solid, unit_start)  # the first non-whitespace character at or after the unit's start
    last = np.searchsorted(solid, unit_end) - 1  # the last one before its end
    padded = np.append(solid, len(text))
    trimmed_start = padded[first]
    is_word = trimmed_start < unit_end
    word_units = np.flatnonzero(is_word)
    if len(word_units) == 0:
        return Words([], [], [], [])
    token_start = unit_first[word_units]
    token_end = np.append(token_start[1:], count)  # whitespace units up to the next word join this one
    token_start[0] = 0  # leading whitespace units join the first word
    char_start = trimmed_start[word_units]
    char_end = solid[last[word_units]] + 1
    return Words(token_start.tolist(), token_end.tolist(), char_start.tolist(), char_end.tolist())


def gap_strengths(text: str, words: Words, space: np.ndarray) -> list[int]:
    """Strength of the cut before each word (index 0 unused: ``INSIDE_WORD``): the strongest cut at a position
    after the previous word's first character and up to this word's first character, so that a cut inside a unit
    moves to the unit's end."""
    if len(words) == 0:
        return []
    positions, strengths = cut_points(text, space)
    if len(positions) == 0:
        return [INSIDE_WORD] * len(words)
    # Cuts at positions up to each word's first character; word k takes those in (start[k-1], start[k]].
    upto = np.searchsorted(positions, np.asarray(words.char_start, dtype=np.int64), side="right")
    begin, end = upto[:-1], upto[1:]
    # A sentinel of the weakest strength keeps every reduceat index in range and the last segment bounded.
    padded = np.append(strengths[: upto[-1]], INSIDE_WORD)
    strongest = np.maximum.reduceat(padded, begin) if len(begin) else np.empty(0, dtype=np.int64)
    strongest = np.where(end > begin, strongest, INSIDE_WORD)
    return [INSIDE_WORD, *strongest.tolist()]
