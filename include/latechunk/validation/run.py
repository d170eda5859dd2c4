"""Validation of an indexed run: counts, configuration, the exact check, geometry of the vectors, and queries by
the run's model.

The exact check (`latechunk.validation.exact`) re-encodes a sample of the run's documents and compares every chunk
the index serves for them: it fails wrong vectors of any kind and never fails a correct index, whatever its text.
The run fails on it, on the counts, the mapping, self-retrieval, recall and the user's probes. The checks below
depend on the corpus as well as on the index, and are warnings unless ``Thresholds.semantic_severity`` says
"error" (see `latechunk.validation.report`).

Checks that only compare the index with itself (self-retrieval, approximate-vs-exact recall) cannot tell
meaningful vectors from garbage: an index of random vectors passes them. The model-grounded checks can: sampled
chunks' own texts (`query_retrieval`) and documents' titles or first sentences (`document_query`), encoded as
queries by the run's model, must find their source documents, and the vectors must be spread out
(`vector_spread`) with no one vector shared by different texts (`duplicate_vectors`). Duplicate content is no
failure: a hit with the same text as the sampled chunk (the same file under two keys) counts as found, and the
report says how many such duplicates it saw. `CHECKS` says what each check means; the report carries it.

`validate_index` never raises on a failed check: it returns a report, and the caller (the validate stage)
decides to fail, e.g. with `report.raise_for_failure()`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np

from latechunk.chunking.levels import DOCUMENT, SECTION
from latechunk.index.backend import SearchBackend
from latechunk.index.spec import IndexSpec
from latechunk.sources.documents import Document, EmbeddedChunk
from latechunk.validation.exact import Reencoder, check_exact_vectors
from latechunk.validation.geometry import (
    check_duplicate_vectors,
    check_recall,
    check_self_retrieval,
    check_spread,
    load_index_vectors,
)
from latechunk.validation.queries import Probe, check_document_queries, check_probes, check_query_retrieval
from latechunk.validation.report import (
    CHECKS,
    MAX_LISTED,
    SEMANTIC_CHECKS,
    Check,
    Thresholds,
    ValidationError,
    ValidationReport,
)

__all__ = [
    "CHECKS", "Check", "Probe", "Reencoder", "ValidationError", "ValidationReport", "Thresholds", "validate_index",
]  # fmt: skip


def validate_index(
    backend: SearchBackend,
    index: str,
    staged_chunks: Sequence[EmbeddedChunk],
    *,
    query_encoder: Callable[[list[str]], np.ndarray] | None,
    thresholds: Thresholds | None = None,
    sample_size: int = 50,
    probes: Iterable[Probe | dict[str, Any]] | None = None,
    spec: IndexSpec | None = None,
    k: int = 10,
    num_candidates: int = 100,
    max_exact_vectors: int = 200_000,
    seed: int = 0,
    sample_pool: Sequence[EmbeddedChunk] | None = None,
    exact_documents: Sequence[Document] = (),
    reencoder: Reencoder | None = None,
    staged_levels: Sequence[EmbeddedChunk] | None = None,
) -> ValidationReport:
    """Check the index against the chunks staged (and indexed) by this run; see the module docstring.

    ``query_encoder`` embeds texts with the run's model (``Encoder.encode_queries``); without one the
    model-grounded checks fail, since nothing else can tell whether the vectors mean anything. The kNN checks
    sample from ``sample_pool`` when given (e.g. chunks read back from the index when this run staged nothing),
    else from the staged chunks; the count and mapping checks always use the staged chunks.
    ``exact_documents`` (a sample of the run's documents) are re-encoded by ``reencoder`` for the exact check.
    ``staged_levels``: the run's section and document rows, in an index of several levels (`staged_chunks` then
    holds its chunks only): their counts are checked too.
    """
    thresholds = thresholds or Thresholds()
    pool = staged_chunks if sample_pool is None else sample_pool
    rng = np.random.default_rng(seed)
    sample_at = rng.choice(len(pool), size=min(sample_size, len(pool)), replace=False)
    sample = [pool[int(i)] for i in sorted(sample_at)]
    hits = [backend.knn_search(index, chunk.vector, k=k, num_candidates=num_candidates) for chunk in sample]
    vectors = load_index_vectors(backend, index, max_exact_vectors) if sample else None
    checks = [
        _check_counts(backend, index, staged_chunks),
        _check_mapping(backend, index, staged_chunks, spec),
        check_exact_vectors(backend, index, exact_documents, reencoder, thresholds.exact_min_cosine),
        check_self_retrieval(sample, hits, vectors, thresholds.self_retrieval),
        check_recall(sample, hits, vectors, k, thresholds.recall, max_exact_vectors),
        check_query_retrieval(backend, index, sample, query_encoder, vectors, thresholds, num_candidates),
        check_document_queries(backend, index, sample, pool, query_encoder, vectors, thresholds, num_candidates),
        check_spread(sample, vectors, thresholds.max_mean_cosine),
        check_duplicate_vectors(sample, hits, vectors),
    ]
    for check in checks:
        if check.name in SEMANTIC_CHECKS:
            check.severity = thresholds.semantic_severity
    if staged_levels is not None:
        checks.insert(1, _check_level_counts(backend, index, staged_chunks, staged_levels))
    if probes is not None:
        checks.append(check_probes(backend, index, list(probes), query_encoder, k, num_candidates, thresholds.probes))
    return ValidationReport(index, checks)


def _check_counts(backend: SearchBackend, index: str, staged: Sequence[EmbeddedChunk]) -> Check:
    staged_counts = Counter(chunk.doc_id for chunk in staged)
    declared = {chunk.doc_id: (chunk.key, chunk.n_chunks) for chunk in staged}
    indexed = backend.count_by_doc(index, list(staged_counts))
    wrong = []
    for doc_id, count in staged_counts.items():
        key, n_chunks = declared[doc_id]
        found = indexed.get(doc_id, 0)
        if not count == n_chunks == found:
            wrong.append({"doc_id": doc_id, "key": key, "staged": count, "n_chunks": n_chunks, "indexed": found})
    details = {"documents": len(staged_counts), "chunks": len(staged), "mismatches": wrong[:MAX_LISTED]}
    return Check("chunk_counts", len(wrong), 0, not wrong, details)


def _check_level_counts(
    backend: SearchBackend, index: str, chunks: Sequence[EmbeddedChunk], rows: Sequence[EmbeddedChunk]
) -> Check:
    """Each document of the run has in the index the section and document rows it was staged with (none too)."""
    keys = {chunk.doc_id: chunk.key for chunk in chunks}
    staged = Counter((row.doc_id, row.level) for row in rows)
    wrong = []
    for level in (SECTION, DOCUMENT):
        indexed = backend.count_by_doc(index, sorted(keys), level=level)
        for doc_id, key in keys.items():
            if staged[doc_id, level] != indexed.get(doc_id, 0):
                wrong.append({"doc_id": doc_id, "key": key, "level": level, "staged": staged[doc_id, level],
                              "indexed": indexed.get(doc_id, 0)})  # fmt: skip
    rows_by_level = dict(Counter(row.level for row in rows))
    details = {"documents": len(keys), "rows": rows_by_level, "mismatches": wrong[:MAX_LISTED]}
    return Check("level_counts", len(wrong), 0, not wrong, details)


def _check_mapping(
    backend: SearchBackend, index: str, staged: Sequence[EmbeddedChunk], spec: IndexSpec | None
) -> Check:
    problems = list(backend.index_mismatches(spec)) if spec is not None else []
    found = backend.describe_index(index)
    if found is None:
        problems.append("the index was not created by latechunk")
    else:
        staged_dims = {int(chunk.vector.shape[-1]) for chunk in staged} - {found.dims}
        staged_models = {chunk.model_id for chunk in staged} - {found.model_id}
        if staged_dims:
            problems.append(f"staged vectors have {sorted(staged_dims)} dims, the index {found.dims}")
        if staged_models:
            problems.append(f"staged chunks come from {sorted(staged_models)}, the index is for {found.model_id!r}")
    return Check("mapping", len(problems), 0, not problems, {"problems": problems})
