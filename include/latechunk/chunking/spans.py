"""Span annotation: split a document into chunks on its full tokenization, keeping token and character spans.

Special-token convention (the one the late-chunking evaluation code uses):

* Chunk spans are computed over the *content* tokens, i.e. every token that is not a special token.
* A chunk that starts at the first content token is widened to start at token 0, so it also pools any leading
  special tokens ([CLS] / <s>); a chunk that ends at the last content token is widened to ``len(input_ids)``, so it
  also pools any trailing special tokens ([SEP] / </s>). Nothing else is widened: a caller's span in the middle
  of the text keeps exactly its own tokens.

For the "sentences" and "fixed" strategies the chunks therefore tile the whole token sequence
``[0, len(input_ids))`` (fixed chunks with overlap cover it with overlaps). Character spans are never widened
over special tokens, and ``chunk.text == text[chunk.char_start:chunk.char_end]`` always holds. Character offsets
count Python code points (not bytes, not UTF-16 code units).

Tokens are first grouped into *units*: consecutive tokens whose character spans overlap (byte-level BPE can split
one character, e.g. "。", into several tokens) form one unit, and no chunk boundary ever falls inside a unit.
Units that cover only whitespace (byte-level BPE's "\\n\\n", Metaspace's lone "▁") join the unit before them, so
no chunk is ever whitespace only.

Headings (of the document's structure, when it has one) start a chunk and never end one, in "sentences" and
"sections" chunking (`latechunk.chunking.sections`). "sections": a section (heading to next heading) of at most
``max_chunk_tokens`` content tokens is one chunk; a larger one is cut as "sentences" cuts it.

"sentences": boundaries come from the text (`latechunk.chunking.segmentation`): sentence ends, paragraph breaks and
block
line breaks. ``sentences_per_chunk`` segments make a chunk (never across a paragraph break), and a chunk over
``max_chunk_tokens`` content tokens is split at its sentence and line boundaries, then at soft line breaks, then
between words, then between units. A chunk exceeds the cap only when a single unit does. Each sentence chunk's
character span runs from its first non-whitespace character to the last non-whitespace character before the next
chunk, so the chunks cover every non-whitespace character of the text, characters that the tokenizer dropped
included.

Chunk ids: chunks are numbered 0, 1, 2, ... in document order. Token-derived strategies never produce an empty
chunk. For caller-supplied character spans, ``chunk_id`` is the index of the span in the caller's list; a span
that covers no token (empty or whitespace-only) is dropped and the other chunks keep their ids, so ids can have
gaps but are never renumbered.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import accumulate
from typing import Any

import numpy as np

from latechunk.chunking.config import ChunkingConfig
from latechunk.chunking.sections import section_ranges, section_start_words, with_heading_cuts
from latechunk.chunking.segmentation import PARAGRAPH, SEGMENT, whitespace_mask
from latechunk.chunking.token_words import gap_strengths, group_words
from latechunk.sources.structure import DocumentStructure


@dataclass(frozen=True)
class ChunkSpan:
    """One chunk: token span [token_start, token_end) into the full tokenization (special tokens included)
    and character span [char_start, char_end) into the original text, with ``text`` the exact slice."""

    chunk_id: int
    token_start: int
    token_end: int
    char_start: int
    char_end: int
    text: str


@dataclass
class AnnotatedDocument:
    """A document's full token ids (special tokens included, never truncated) and its chunk spans."""

    input_ids: list[int]
    spans: list[ChunkSpan]


@dataclass(frozen=True)
class _Tokenization:
    input_ids: list[int]
    content_start: int  # index of the first content (non-special) token
    offsets: np.ndarray  # (content tokens, 2): character offsets of the content tokens, in order


def _tokenize(texts: Sequence[str], tokenizer: Any) -> list[_Tokenization]:
    """Whole tokenizations (never truncated) of several texts in one call of the fast tokenizer, which spreads
    them over its threads."""
    batch = tokenizer(list(texts), add_special_tokens=True, truncation=False, verbose=False)
    if batch.encodings is None:
        raise TypeError(f"{type(tokenizer).__name__} is not a fast tokenizer: character offsets are needed")
    tokenizations = []
    for encoding in batch.encodings:
        special = np.asarray(encoding.special_tokens_mask, dtype=bool)
        content = np.flatnonzero(~special)
        if len(content) and content[-1] - content[0] + 1 != len(content):
            raise ValueError("special tokens inside the content are not supported: content tokens must be contiguous")
        offsets = np.asarray(encoding.offsets, dtype=np.int64).reshape(-1, 2)[content]
        tokenizations.append(_Tokenization(encoding.ids, int(content[0]) if len(content) else 0, offsets))
    return tokenizations


def _sentence_ranges(
    strengths: Sequence[int], sizes: Sequence[int], per_chunk: int, cap: int
) -> list[tuple[int, int]]:
    """Word ranges of the sentence chunks: ``per_chunk`` segments per chunk within a paragraph, then the cap."""
    tokens_before = [0, *accumulate(sizes)]

    def tokens(start: int, end: int) -> int:
        return tokens_before[end] - tokens_before[start]

    def capped(start: int, end: int, level: int) -> list[tuple[int, int]]:
        if tokens(start, end) <= cap or end - start == 1:
            return [(start, end)]
        cuts = [k for k in range(start + 1, end) if strengths[k] >= level]
        if not cuts:
            return capped(start, end, level - 1)
        points = [*cuts, end]
        point_tokens = [tokens_before[p] for p in points]
        pieces, begin = [], start
        while begin < end:
            # The farthest cut that keeps the piece within the cap, else the nearest one.
            farthest = bisect.bisect_right(point_tokens, tokens_before[begin] + cap) - 1
            stop = points[farthest] if farthest >= 0 and points[farthest] > begin else points[
                bisect.bisect_right(points, begin)
            ]
            pieces.append((begin, stop))
            begin = stop
        return [piece for s, e in pieces for piece in capped(s, e, level - 1)]

    ranges, start, segments = [], 0, 0
    for k in range(1, len(sizes) + 1):
        strength = strengths[k] if k < len(sizes) else PARAGRAPH
        segments += strength >= SEGMENT
        if strength >= PARAGRAPH or (strength >= SEGMENT and segments == per_chunk):
            ranges += capped(start, k, SEGMENT)
            start, segments = k, 0
    return ranges


def _fixed_ranges(sizes: Sequence[int], chunk_size: int, overlap: int) -> list[tuple[int, int]]:
    """Word ranges of at most ``chunk_size`` tokens (at least one word) sharing about ``overlap`` tokens."""
    tokens_before = [0, *accumulate(sizes)]
    ranges, start = [], 0
    while start < len(sizes):
        end = max(bisect.bisect_right(tokens_before, tokens_before[start] + chunk_size) - 1, start + 1)
        ranges.append((start, end))
        if end == len(sizes):
            break
        start = max(bisect.bisect_left(tokens_before, tokens_before[end] - overlap), start + 1)
    return ranges


def _end_before_whitespace(text: str, end: int) -> int:
    while end > 0 and text[end - 1].isspace():
        end -= 1
    return end


def _validate_char_spans(text: str, char_spans: Sequence[tuple[int, int]]) -> None:
    previous_end = 0
    for index, (start, end) in enumerate(char_spans):
        if not 0 <= start <= end <= len(text):
            raise ValueError(f"char span {index} = ({start}, {end}) is outside the text of length {len(text)}")
        if start < previous_end:
            raise ValueError(f"char spans must be sorted and must not overlap: span {index} starts at {start}")
        previous_end = end


def _caller_chunks(text: str, tokens: _Tokenization, char_spans: Sequence[tuple[int, int]]) -> list[ChunkSpan]:
    """Each content token belongs to the caller span that contains its first character."""
    starts = tokens.offsets[:, 0]
    chunks = []
    for chunk_id, (char_start, char_end) in enumerate(char_spans):
        start, end = np.searchsorted(starts, [char_start, char_end]).tolist()
        if end > start:
            chunks.append(_chunk(chunk_id, tokens, start, end, text, char_start, char_end))
    return chunks


def _chunk(
    chunk_id: int, tokens: _Tokenization, start: int, end: int, text: str, char_start: int, char_end: int
) -> ChunkSpan:
    """A chunk of content tokens [start, end), widened over the special tokens before the first content token
    and after the last one."""
    token_start = 0 if start == 0 else start + tokens.content_start
    token_end = len(tokens.input_ids) if end == len(tokens.offsets) else end + tokens.content_start
    return ChunkSpan(chunk_id, token_start, token_end, char_start, char_end, text[char_start:char_end])


def annotate_spans(
    text: str,
    tokenizer: Any,
    config: ChunkingConfig,
    char_spans: Sequence[tuple[int, int]] | None = None,
    structure: DocumentStructure | None = None,
) -> AnnotatedDocument:
    """Tokenize the whole document (no truncation) and cut it into chunks per ``config``.

    ``tokenizer`` is a Hugging Face fast tokenizer (it must return offsets and a special-tokens mask).
    ``char_spans`` (sorted, non-overlapping ``(start, end)`` character ranges) is required by, and only used
    with, the "spans" strategy. ``structure``: the document's headings, which "sentences" and "sections" chunks
    follow (`latechunk.chunking.sections`). See the module docstring for the conventions.
    """
    config.validate()
    if (config.strategy == "spans") != (char_spans is not None):
        raise ValueError('char_spans must be given exactly when strategy == "spans"')
    (tokens,) = _tokenize([text], tokenizer)
    if config.strategy == "spans":
        _validate_char_spans(text, char_spans)
        return AnnotatedDocument(tokens.input_ids, _caller_chunks(text, tokens, char_spans))
    return _cut(text, tokens, config, structure or DocumentStructure())


def annotate_documents(
    texts: Sequence[str],
    tokenizer: Any,
    config: ChunkingConfig,
    structures: Sequence[DocumentStructure] | None = None,
) -> list[AnnotatedDocument]:
    """`annotate_spans` of several texts (not "spans" chunking), tokenized in one call; ``structures``: one per
    text, or None when the texts have none."""
    config.validate()
    if config.strategy == "spans":
        raise ValueError('the "spans" strategy takes char_spans for each text: use annotate_spans')
    structures = structures if structures is not None else [DocumentStructure()] * len(texts)
    return [
        _cut(text, tokens, config, structure)
        for text, tokens, structure in zip(texts, _tokenize(texts, tokenizer), structures, strict=True)
    ]


def _cut(
    text: str, tokens: _Tokenization, config: ChunkingConfig, structure: DocumentStructure
) -> AnnotatedDocument:
    space = whitespace_mask(text)
    words = group_words(text, tokens.offsets, space)
    sizes = words.sizes()
    if config.strategy == "fixed":
        ranges = _fixed_ranges(sizes, config.chunk_size, config.overlap)
        bounds = [(words.char_start[a], words.char_end[b - 1]) for a, b in ranges]
    else:
        strengths = gap_strengths(text, words, space)
        if structure.headings:
            strengths = with_heading_cuts(strengths, words.char_start, structure)

        def sentence_ranges(strengths: Sequence[int], sizes: Sequence[int]) -> list[tuple[int, int]]:
            return _sentence_ranges(strengths, sizes, config.sentences_per_chunk, config.max_chunk_tokens)

        if config.strategy == "sections":
            section_starts = section_start_words(words.char_start, structure)
            ranges = section_ranges(strengths, sizes, section_starts, config.max_chunk_tokens, sentence_ranges)
        else:
            ranges = sentence_ranges(strengths, sizes)
        starts = [words.char_start[a] for a, _ in ranges]
        if starts:  # the first chunk also covers whatever the tokenizer dropped before its first token
            starts[0] = len(text) - len(text.lstrip())
        followers = [*starts[1:], len(text)] if starts else []
        bounds = [(start, _end_before_whitespace(text, end)) for start, end in zip(starts, followers, strict=True)]
    chunks = [
        _chunk(chunk_id, tokens, words.token_start[a], words.token_end[b - 1], text, char_start, char_end)
        for chunk_id, ((a, b), (char_start, char_end)) in enumerate(zip(ranges, bounds, strict=True))
    ]
    return AnnotatedDocument(tokens.input_ids, chunks)
