"""What validation keeps of a run's staged chunks: exact totals over all of them, and bounded samples.

The staged chunks are read once, as a stream, batch after batch. The count and mapping checks cover every chunk:
counts are compared with the index a group of documents at a time (`COUNT_GROUP`), and only the mismatches (the
first `MAX_LISTED`), the vector sizes and the model ids seen are kept. The kNN checks and the exact check work from
samples, whose size never depends on the run's:

- ``sample``: the ``sample_size`` chunks whose ids hash lowest (a bottom-k sample: uniform, the same whatever the
  order of the batches, and no more than ``sample_size`` vectors held at any time), with the first chunk of each
  sampled document (the document query's first sentence comes from it);
- ``documents``: the `DOCUMENT_CANDIDATES` documents whose ids hash lowest, with their tokens and batch number, from
  which the exact check draws the documents it re-encodes, plus the shortest document of the run.

The chunks of one document come together in the stream (as annotate and embed stage them); a document whose chunks
were split across groups would be counted in parts, and fail the count check.

In an index of several levels (``levels``), section and document rows are counted per document and level, in any
order, and compared with the index at the end (`level_counts_check`): integers per document, no vectors.
"""

from __future__ import annotations

import hashlib
import heapq
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from latechunk.chunking.levels import DOCUMENT, SECTION
from latechunk.index.backend import SearchBackend
from latechunk.sources.documents import EmbeddedChunk
from latechunk.validation.report import MAX_LISTED, Check

# Documents whose counts are asked of the engine in one go (the terms of one query).
COUNT_GROUP = 1000
# Documents kept as candidates for the exact check's sample (which takes at most 50 of them).
DOCUMENT_CANDIDATES = 500


def priority(text: str, seed: int) -> int:
    """A stable pseudo-random rank: the same id gets the same rank in every process and every run."""
    return int.from_bytes(hashlib.blake2b(f"{seed}:{text}".encode(), digest_size=8).digest(), "big")


@dataclass
class StagedScan:
    """Streams staged chunks (`add`), checking their counts against the index; see the module docstring."""

    backend: SearchBackend = field(repr=False)
    index: str
    sample_size: int = 50
    seed: int = 0
    levels: bool = False  # the index holds section/document rows: count them too
    chunks: int = 0
    documents: int = 0
    dims: set[int] = field(default_factory=set)
    model_ids: set[str] = field(default_factory=set)
    mismatches: list[dict[str, Any]] = field(default_factory=list)
    wrong: int = 0
    most_chunks_held: int = 0  # the most chunks (vectors) held at once: at most 3 x sample_size + 1
    # Heaps whose top is the entry of highest priority (negated): (-priority, order, chunk), (-priority, doc, tokens,
    # batch).
    _sample: list[tuple[int, int, EmbeddedChunk]] = field(default_factory=list, repr=False)
    _first_chunks: dict[str, EmbeddedChunk] = field(default_factory=dict, repr=False)
    _candidates: list[tuple[int, str, int, int]] = field(default_factory=list, repr=False)
    _shortest: tuple[int, str, int] | None = field(default=None, repr=False)  # (tokens, doc_id, batch)
    _group: Counter = field(default_factory=Counter, repr=False)
    _declared: dict[str, tuple[str, int]] = field(default_factory=dict, repr=False)
    _current: tuple[str, EmbeddedChunk | None] = field(default=("", None), repr=False)  # document, first chunk
    level_rows: Counter = field(default_factory=Counter)  # section/document rows staged, by level
    _level_staged: Counter = field(default_factory=Counter, repr=False)  # (doc_id, level) -> rows staged
    _level_keys: dict[str, str] = field(default_factory=dict, repr=False)  # doc_id -> key, every document (levels)

    def add(self, chunk: EmbeddedChunk, batch: int = 0) -> None:
        if self.levels:
            self._level_keys.setdefault(chunk.doc_id, chunk.key)
        if not chunk.is_chunk:
            self.dims.add(int(chunk.vector.shape[-1]))
            self.model_ids.add(chunk.model_id)
            self.level_rows[chunk.level] += 1
            self._level_staged[chunk.doc_id, chunk.level] += 1
            return
        if chunk.doc_id != self._current[0]:
            self._current = (chunk.doc_id, None)
            if len(self._group) >= COUNT_GROUP:
                self._flush_counts()
        if chunk.chunk_id == 0:
            self._current = (chunk.doc_id, chunk)
        self.chunks += 1
        self.dims.add(int(chunk.vector.shape[-1]))
        self.model_ids.add(chunk.model_id)
        self._group[chunk.doc_id] += 1
        self._declared[chunk.doc_id] = (chunk.key, chunk.n_chunks)
        self._sample_chunk(chunk)
        if chunk.chunk_id == chunk.n_chunks - 1:
            self._add_document(chunk.doc_id, chunk.token_end, batch)

    def add_all(self, chunks: Iterable[EmbeddedChunk], batch: int = 0) -> StagedScan:
        for chunk in chunks:
            self.add(chunk, batch)
        return self

    def finish(self) -> StagedScan:
        self._flush_counts()
        return self

    @property
    def sample(self) -> list[EmbeddedChunk]:
        """The sampled chunks, in their ids' order."""
        return sorted((chunk for _, _, chunk in self._sample), key=lambda chunk: (chunk.doc_id, chunk.chunk_id))

    @property
    def first_chunks(self) -> list[EmbeddedChunk]:
        """The first chunk of each sampled document (when it was staged)."""
        sampled = {chunk.doc_id for _, _, chunk in self._sample}
        return [chunk for doc_id, chunk in self._first_chunks.items() if doc_id in sampled]

    def candidate_documents(self) -> tuple[dict[str, int], dict[str, int]]:
        """(tokens, batch number) by doc_id of the exact check's candidates, the run's shortest document among them."""
        found = [(doc_id, tokens, batch) for _, doc_id, tokens, batch in self._candidates]
        if self._shortest is not None:
            tokens, doc_id, batch = self._shortest
            found.append((doc_id, tokens, batch))
        return {doc: tokens for doc, tokens, _ in found}, {doc: batch for doc, _, batch in found}

    def counts_check(self) -> Check:
        details = {"documents": self.documents, "chunks": self.chunks, "mismatches": self.mismatches[:MAX_LISTED]}
        return Check("chunk_counts", self.wrong, 0, not self.wrong, details)

    def level_counts_check(self) -> Check:
        """Each document of the run has in the index the section and document rows it was staged with (none too)."""
        wrong = []
        doc_ids = sorted(self._level_keys)
        for start in range(0, len(doc_ids), COUNT_GROUP):
            group = doc_ids[start : start + COUNT_GROUP]
            for level in (SECTION, DOCUMENT):
                indexed = self.backend.count_by_doc(self.index, group, level=level)
                for doc_id in group:
                    staged, found = self._level_staged[doc_id, level], indexed.get(doc_id, 0)
                    if staged != found:
                        wrong.append({"doc_id": doc_id, "key": self._level_keys[doc_id], "level": level,
                                      "staged": staged, "indexed": found})  # fmt: skip
        details = {"documents": len(doc_ids), "rows": dict(self.level_rows), "mismatches": wrong[:MAX_LISTED]}
        return Check("level_counts", len(wrong), 0, not wrong, details)

    def _sample_chunk(self, chunk: EmbeddedChunk) -> None:
        if self.sample_size <= 0:
            return
        entry = (-priority(chunk.es_id, self.seed), self.chunks, chunk)
        if len(self._sample) < self.sample_size:
            heapq.heappush(self._sample, entry)
        elif entry[0] > self._sample[0][0]:
            heapq.heapreplace(self._sample, entry)
        else:
            return
        first = self._current[1]
        if first is not None:
            self._first_chunks[chunk.doc_id] = first
        if len(self._first_chunks) > 2 * self.sample_size:
            sampled = {held.doc_id for _, _, held in self._sample}
            self._first_chunks = {doc: held for doc, held in self._first_chunks.items() if doc in sampled}
        self.most_chunks_held = max(self.most_chunks_held, len(self._sample) + len(self._first_chunks))

    def _add_document(self, doc_id: str, tokens: int, batch: int) -> None:
        entry = (-priority(doc_id, self.seed), doc_id, tokens, batch)
        if len(self._candidates) < DOCUMENT_CANDIDATES:
            heapq.heappush(self._candidates, entry)
        elif entry[0] > self._candidates[0][0]:
            heapq.heapreplace(self._candidates, entry)
        if self._shortest is None or (tokens, doc_id) < self._shortest[:2]:
            self._shortest = (tokens, doc_id, batch)

    def _flush_counts(self) -> None:
        if not self._group:
            return
        indexed = self.backend.count_by_doc(self.index, list(self._group))
        for doc_id, count in self._group.items():
            key, n_chunks = self._declared[doc_id]
            found = indexed.get(doc_id, 0)
            if not count == n_chunks == found:
                self.wrong += 1
                if len(self.mismatches) < MAX_LISTED:
                    self.mismatches.append(
                        {"doc_id": doc_id, "key": key, "staged": count, "n_chunks": n_chunks, "indexed": found}
                    )
        self.documents += len(self._group)
        self._group, self._declared = Counter(), {}
