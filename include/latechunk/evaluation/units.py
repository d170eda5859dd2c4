"""Retrieval units other than chunks, pooled from the same late pass: sections and whole documents (issue #23).

* ``section``: consecutive speaker turns grouped up to ``section_tokens`` tokens. A turn is a line of the text
  (qmsum_dev's transcripts are ``"{speaker}: {content}"`` lines); a section is cut only where a turn starts, so a
  turn longer than the budget is a section of its own. Sections tile the document's tokens exactly once: the
  first one also pools the leading special tokens and the newlines between turns go with the turn before them.
  A text without line breaks (every NFCorpus document) is one section, i.e. the document vector. Documents with
  headings would be sectioned by them; the BEIR sets evaluated here have none.
* ``document``: one vector per document, the mean over all its tokens.

Late unit vectors are the mean of the late token embeddings over the unit's tokens, L2-normalised: each window's
kept outputs are added to the units' running sums right after its forward pass (`SpanPooler`, as
`latechunk.embedding.late_chunking.embed_documents` pools chunks), in the pass that also serves the chunks. No naive
mix: a unit's vector is pure late chunking whatever the variant's ``naive_weight`` (which mixes chunk vectors
only). The naive baseline at the section unit encodes each section alone as ``[CLS] section [SEP]``, its content
cut to the model window.

Unit results are keyed like chunk results, ``(kind, size)``: kind ``late:section`` (or ``late[...]:section`` for a
variant) with the section size, ``late:document`` with size 0, ``naive:section``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from latechunk.chunking.config import ChunkingConfig
from latechunk.chunking.spans import annotate_spans
from latechunk.embedding.encoders.base import Encoder
from latechunk.embedding.late_chunking import iter_kept_outputs, special_affixes
from latechunk.embedding.pooling import SpanPooler, l2_normalize

UNITS = ("chunk", "section", "document")


def unit_kind(kind: str, unit: str) -> str:
    """``late:section`` for the strategy ``late`` at the section unit; chunks keep the strategy's own name."""
    return kind if unit == "chunk" else f"{kind}:{unit}"


def split_kind(kind: str) -> tuple[str, str]:
    """(strategy, unit) of a result's kind: ``late:section`` -> (``late``, ``section``); ``none`` is a document
    vector, every other plain kind a chunk."""
    strategy, _, unit = kind.partition(":")
    return strategy, unit or ("document" if strategy == "none" else "chunk")


def is_unit(kind: str) -> bool:
    """Whether a result's kind is a section or document unit of a strategy (not its chunks, nor ``none``)."""
    return ":" in kind


def unit_keys(kinds: Sequence[str], units: Sequence[str], section_tokens: Sequence[int]) -> list[tuple[str, int]]:
    """The result keys of the section and document units for ``kinds`` (``naive`` and late kinds): naive has no
    document unit of its own (that is ``none``, the document cut to the window)."""
    keys = []
    for kind in kinds:
        if "section" in units:
            keys += [(unit_kind(kind, "section"), size) for size in section_tokens]
        if "document" in units and kind != "naive":
            keys.append((unit_kind(kind, "document"), 0))
    return keys


def unit_label(key: tuple[str, int], long_late: bool, windowing: str | None) -> str:
    """The cache label of a unit result; ``windowing``: the late variant's window name (late kinds only). Every
    setting the vectors depend on is in it: strategy, unit, section size, windows (not the chunking)."""
    kind, size = key
    strategy, unit = split_kind(kind)
    setting = f"turns{size}" if unit == "section" else unit
    window = f"-long-{windowing}" if windowing is not None and long_late else "-long" * long_late
    return f"{strategy.partition('[')[0]}-{setting}{window}"


def turn_char_spans(text: str) -> list[tuple[int, int]]:
    """Character ranges of the turns (lines) tiling ``text``: each starts where a line starts, the first at 0."""
    starts = [0] + [k + 1 for k, char in enumerate(text) if char == "\n" and k + 1 < len(text)]
    return list(zip(starts, [*starts[1:], len(text)], strict=True))


def group_turns(turns: Sequence[tuple[int, int]], max_tokens: int) -> list[tuple[int, int]]:
    """Token spans of sections: consecutive turn spans (tiling the tokens) merged while the section keeps at most
    ``max_tokens`` tokens; a turn over the budget is a section alone, never cut."""
    sections: list[tuple[int, int]] = []
    for start, end in turns:
        if sections and end - sections[-1][0] <= max_tokens:
            sections[-1] = (sections[-1][0], end)
        else:
            sections.append((start, end))
    return sections


@dataclass(frozen=True)
class DocumentUnits:
    """The unit spans of one document: its sections per section size (token spans tiling ``[0, n_tokens)``)."""

    n_tokens: int
    sections: dict[int, list[tuple[int, int]]]

    @property
    def spans(self) -> list[tuple[int, int]]:
        """Every unit's span, pooled in one pass: the sections of each size in order, then the whole document."""
        whole = [(0, self.n_tokens)] if self.n_tokens else []
        return [span for spans in self.sections.values() for span in spans] + whole

    def rows(self, kind: str, size: int) -> slice:
        """The rows of `spans` that hold the unit of ``kind`` (``...:section`` or ``...:document``) at ``size``."""
        if split_kind(kind)[1] == "document":
            return slice(len(self.spans) - 1, None)
        start = 0
        for section_size, spans in self.sections.items():
            if section_size == size:
                return slice(start, start + len(spans))
            start += len(spans)
        raise KeyError(f"no sections of {size} tokens")


def document_units(encoder: Encoder, text: str, section_tokens: Sequence[int]) -> DocumentUnits:
    """Sections of ``text`` as embedded (already cut to the window where the evaluation cuts documents)."""
    turns = turn_char_spans(text)
    doc = annotate_spans(text, encoder.tokenizer, ChunkingConfig(strategy="spans"), char_spans=turns)
    turn_spans = [(span.token_start, span.token_end) for span in doc.spans]
    return DocumentUnits(len(doc.input_ids), {size: group_turns(turn_spans, size) for size in section_tokens})


def late_pass(
    encoder: Encoder, documents: Sequence[Sequence[int]], unit_spans: Sequence[Sequence[tuple[int, int]]], **options
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """One late pass (``options``: those of `iter_kept_outputs`): each document's token matrix, as
    `latechunk.embedding.late_chunking.embed_tokens` returns it, and its ``unit_spans`` pooled window by window
    into running sums, as the embed stage pools spans."""
    matrices = [np.empty((len(ids), encoder.dim), np.float32) for ids in documents]
    poolers = [SpanPooler(spans, len(ids), encoder.dim) for ids, spans in zip(documents, unit_spans, strict=True)]
    for position, first, kept in iter_kept_outputs(encoder, documents, **options):
        matrices[position][first : first + len(kept)] = kept
        poolers[position].add(first, kept)
    return matrices, [pooler.vectors() for pooler in poolers]


def naive_section_sequences(
    input_ids: Sequence[int], sections: Sequence[tuple[int, int]], special_ids: set[int], max_length: int
) -> list[list[int]]:
    """Each section alone as ``[CLS] section [SEP]`` (the document's own special tokens), cut to ``max_length``."""
    prefix, suffix = special_affixes(input_ids, special_ids)
    lo, hi = len(prefix), len(input_ids) - len(suffix)
    room = max_length - len(prefix) - len(suffix)
    return [prefix + list(input_ids[max(s, lo) : min(e, hi)])[:room] + suffix for s, e in sections]


def naive_sections(
    encoder: Encoder, input_ids: Sequence[Sequence[int]], units: Sequence[DocumentUnits], size: int
) -> tuple[list[int], np.ndarray]:
    """(sections per document, their naive vectors (n_sections, dim) L2-normalised) at ``size`` tokens."""
    special_ids = set(encoder.tokenizer.all_special_ids)
    sequences = [
        naive_section_sequences(ids, doc.sections[size], special_ids, encoder.max_length)
        for ids, doc in zip(input_ids, units, strict=True)
    ]
    flat = [sequence for seqs in sequences for sequence in seqs]
    means = np.zeros((len(flat), encoder.dim), np.float32)
    for row, matrix in enumerate(encoder.encode_token_batches(flat)):
        means[row] = matrix.mean(axis=0, dtype=np.float32)
    return [len(seqs) for seqs in sequences], l2_normalize(means)


def naive_section_work(
    encoder: Encoder, input_ids: Sequence[Sequence[int]], units: Sequence[DocumentUnits], size: int
) -> np.ndarray:
    """Tokens the encoder processes per document for `naive_sections` at ``size``: (n_docs,) int64."""
    special_ids = set(encoder.tokenizer.all_special_ids)
    return np.asarray(
        [
            sum(len(s) for s in naive_section_sequences(ids, doc.sections[size], special_ids, encoder.max_length))
            for ids, doc in zip(input_ids, units, strict=True)
        ],
        dtype=np.int64,
    )
