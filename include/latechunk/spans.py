"""Span annotation: split a document into chunks on its full tokenization, keeping token and character spans.

Special-token convention (the one the late-chunking evaluation code uses):

* Chunk spans are computed over the *content* tokens, i.e. every token that is not a special token.
* The first emitted chunk is widened to start at token 0, so it also pools any leading special tokens ([CLS] / <s>).
* The last emitted chunk is widened to end at ``len(input_ids)``, so it also pools any trailing special tokens
  ([SEP] / </s>).

For the "sentences" and "fixed" strategies the chunks therefore tile the whole token sequence
``[0, len(input_ids))`` (fixed chunks with overlap cover it with overlaps). Character spans are never widened:
special tokens have no characters, and ``chunk.text == text[chunk.char_start:chunk.char_end]`` always holds.

Chunk ids: chunks are numbered 0, 1, 2, ... in document order. Token-derived strategies never produce an empty
chunk. For caller-supplied character spans, ``chunk_id`` is the index of the span in the caller's list; a span
that covers no token (empty or whitespace-only) is dropped and the other chunks keep their ids, so ids can have
gaps but are never renumbered.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

STRATEGIES = ("sentences", "fixed", "spans")

# A sentence ends at one of these characters when it is followed by whitespace or the end of the text.
SENTENCE_TERMINATORS = frozenset(".!?…")
# Full-width terminators end a sentence even with no whitespace after them (CJK text has none).
CJK_TERMINATORS = frozenset("。！？")
# A "." after one of these words (or after a single capital, an initial) abbreviates, it does not end a sentence.
ABBREVIATIONS = frozenset({"dr", "mr", "mrs", "ms", "prof", "st", "jr", "sr", "vs", "cf", "fig", "al", "e.g", "i.e"})
# Closing quotes and brackets that stay with the sentence they close: 'He said "no." Then...'.
CLOSERS = frozenset("\"')]}»”’」』）")


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


@dataclass(frozen=True)
class ChunkingConfig:
    """How to cut a document into chunks. Recorded with every chunk (``as_dict``)."""

    strategy: str = "sentences"  # "sentences" | "fixed" | "spans"
    chunk_size: int = 256  # tokens per chunk, "fixed" only
    overlap: int = 0  # tokens shared by consecutive chunks, "fixed" only
    sentences_per_chunk: int = 1  # "sentences" only

    def validate(self) -> None:
        if self.strategy not in STRATEGIES:
            raise ValueError(f"unknown chunking strategy {self.strategy!r}; expected one of {STRATEGIES}")
        if self.chunk_size < 1:
            raise ValueError(f"chunk_size must be >= 1 token, got {self.chunk_size}")
        if not 0 <= self.overlap < self.chunk_size:
            raise ValueError(
                f"overlap must satisfy 0 <= overlap < chunk_size, got overlap={self.overlap}, "
                f"chunk_size={self.chunk_size}"
            )
        if self.sentences_per_chunk < 1:
            raise ValueError(f"sentences_per_chunk must be >= 1, got {self.sentences_per_chunk}")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class AnnotatedDocument:
    """A document's full token ids (special tokens included, never truncated) and its chunk spans."""

    input_ids: list[int]
    spans: list[ChunkSpan]


@dataclass(frozen=True)
class _Tokenization:
    input_ids: list[int]
    content_start: int  # index of the first content (non-special) token
    offsets: list[tuple[int, int]]  # character offsets of the content tokens, in order


def _tokenize(text: str, tokenizer: Any) -> _Tokenization:
    encoding = tokenizer(
        text,
        add_special_tokens=True,
        return_offsets_mapping=True,
        return_special_tokens_mask=True,
        truncation=False,
        verbose=False,
    )
    input_ids = list(encoding["input_ids"])
    special = encoding["special_tokens_mask"]
    content = [i for i, flag in enumerate(special) if not flag]
    if content and content != list(range(content[0], content[-1] + 1)):
        raise ValueError("special tokens inside the content are not supported: content tokens must be contiguous")
    offsets = [tuple(encoding["offset_mapping"][i]) for i in content]
    return _Tokenization(input_ids, content[0] if content else 0, offsets)


def _sentence_ends(text: str, offsets: Sequence[tuple[int, int]]) -> list[int]:
    """Content-token indices (exclusive ends) where a sentence closes."""
    ends = []
    n = len(offsets)
    i = 0
    while i < n:
        token_text = text[offsets[i][0] : offsets[i][1]].rstrip()
        last_char = token_text[-1:] if token_text else ""
        dot = offsets[i][0] + len(token_text) - 1
        if last_char == "." and _is_abbreviation(text, dot):
            i += 1
            continue
        if last_char in SENTENCE_TERMINATORS or last_char in CJK_TERMINATORS:
            end = i + 1
            while end < n and offsets[end][0] == offsets[end - 1][1] and _is_closer(text, offsets[end]):
                end += 1
            followed_by_gap = end == n or offsets[end][0] > offsets[end - 1][1]
            if last_char in CJK_TERMINATORS or followed_by_gap:
                ends.append(end)
                i = end
                continue
        i += 1
    if not ends or ends[-1] != n:
        ends.append(n)
    return ends


def _is_abbreviation(text: str, dot: int) -> bool:
    start = dot
    while start > 0 and (text[start - 1].isalpha() or text[start - 1] == "."):
        start -= 1
    word = text[start:dot]
    return (len(word) == 1 and word.isupper()) or word.lower() in ABBREVIATIONS


def _is_closer(text: str, offset: tuple[int, int]) -> bool:
    token_text = text[offset[0] : offset[1]]
    return bool(token_text) and all(ch in CLOSERS for ch in token_text)


def _sentence_token_spans(text: str, offsets: Sequence[tuple[int, int]], per_chunk: int) -> list[tuple[int, int]]:
    ends = _sentence_ends(text, offsets) if offsets else []
    spans, start = [], 0
    for k in range(per_chunk - 1, len(ends) + per_chunk - 1, per_chunk):
        end = ends[min(k, len(ends) - 1)]
        spans.append((start, end))
        start = end
    return spans


def _fixed_token_spans(n_tokens: int, chunk_size: int, overlap: int) -> list[tuple[int, int]]:
    spans, start = [], 0
    while start < n_tokens:
        end = min(start + chunk_size, n_tokens)
        spans.append((start, end))
        if end == n_tokens:
            break
        start = end - overlap
    return spans


def _validate_char_spans(text: str, char_spans: Sequence[tuple[int, int]]) -> None:
    previous_end = 0
    for index, (start, end) in enumerate(char_spans):
        if not 0 <= start <= end <= len(text):
            raise ValueError(f"char span {index} = ({start}, {end}) is outside the text of length {len(text)}")
        if start < previous_end:
            raise ValueError(f"char spans must be sorted and must not overlap: span {index} starts at {start}")
        previous_end = end


def _char_token_spans(
    offsets: Sequence[tuple[int, int]], char_spans: Sequence[tuple[int, int]]
) -> list[tuple[int, int]]:
    """Each content token belongs to the caller span that contains its first character."""
    starts = [start for start, _ in offsets]
    return [(bisect.bisect_left(starts, cs), bisect.bisect_left(starts, ce)) for cs, ce in char_spans]


def _chunks_from_token_spans(
    text: str,
    tokens: _Tokenization,
    token_spans: Sequence[tuple[int, int]],
    char_spans: Sequence[tuple[int, int]] | None,
) -> list[ChunkSpan]:
    chunks = []
    for chunk_id, (start, end) in enumerate(token_spans):
        if end <= start:
            continue
        if char_spans is not None:
            char_start, char_end = char_spans[chunk_id]
        else:
            char_start, char_end = tokens.offsets[start][0], tokens.offsets[end - 1][1]
        chunks.append(
            ChunkSpan(
                chunk_id=chunk_id,
                token_start=start + tokens.content_start,
                token_end=end + tokens.content_start,
                char_start=char_start,
                char_end=char_end,
                text=text[char_start:char_end],
            )
        )
    return _absorb_special_tokens(chunks, len(tokens.input_ids))


def _absorb_special_tokens(chunks: list[ChunkSpan], n_tokens: int) -> list[ChunkSpan]:
    if chunks:
        chunks[0] = replace(chunks[0], token_start=0)
        chunks[-1] = replace(chunks[-1], token_end=n_tokens)
    return chunks


def annotate_spans(
    text: str,
    tokenizer: Any,
    config: ChunkingConfig,
    char_spans: Sequence[tuple[int, int]] | None = None,
) -> AnnotatedDocument:
    """Tokenize the whole document (no truncation) and cut it into chunks per ``config``.

    ``tokenizer`` is a Hugging Face fast tokenizer (it must return offsets and a special-tokens mask).
    ``char_spans`` (sorted, non-overlapping ``(start, end)`` character ranges) is required by, and only used
    with, the "spans" strategy. See the module docstring for the special-token and chunk-id conventions.
    """
    config.validate()
    if (config.strategy == "spans") != (char_spans is not None):
        raise ValueError('char_spans must be given exactly when strategy == "spans"')
    tokens = _tokenize(text, tokenizer)
    if config.strategy == "sentences":
        token_spans = _sentence_token_spans(text, tokens.offsets, config.sentences_per_chunk)
    elif config.strategy == "fixed":
        token_spans = _fixed_token_spans(len(tokens.offsets), config.chunk_size, config.overlap)
    else:
        _validate_char_spans(text, char_spans)
        token_spans = _char_token_spans(tokens.offsets, char_spans)
    return AnnotatedDocument(tokens.input_ids, _chunks_from_token_spans(text, tokens, token_spans, char_spans))
