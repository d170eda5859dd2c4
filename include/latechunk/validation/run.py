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

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np

from latechunk.index.backend import SearchBackend
from latechunk.index.spec import IndexSpec
from latechunk.sources.documents import Document, EmbeddedChunk
from latechunk.validation.exact import Reencoder, check_exact_vectors
from latechunk.validation.geometry import (
    MAX_EXACT_VECTORS,
    MAX_STREAMED_VECTORS,
    check_duplicate_vectors,
    check_recall,
    check_self_retrieval,
    check_spread,
    load_index_vectors,
    stream_exact_scores,
)
from latechunk.validation.queries import Probe, check_document_queries, check_probes, check_query_retrieval
from latechunk.validation.report import (
    CHECKS,
    SEMANTIC_CHECKS,
    Check,
    Thresholds,
    ValidationError,
    ValidationReport,
)
from latechunk.validation.staged import StagedScan

__all__ = [
    "CHECKS", "Check", "Probe", "Reencoder", "StagedScan", "ValidationError", "ValidationReport", "Thresholds",
    "validate_index",
]  # fmt: skip


def validate_index(
    backend: SearchBackend,
    index: str,
    staged_chunks: Iterable[EmbeddedChunk] | StagedScan,
    *,
    query_encoder: Callable[[list[str]], np.ndarray] | None,
    thresholds: Thresholds | None = None,
    sample_size: int = 50,
    probes: Iterable[Probe | dict[str, Any]] | None = None,
    spec: IndexSpec | None = None,
    k: int = 10,
    num_candidates: int = 100,
    max_exact_vectors: int = MAX_EXACT_VECTORS,
    max_streamed_vectors: int = MAX_STREAMED_VECTORS,
    seed: int = 0,
    sample_pool: Sequence[EmbeddedChunk] | None = None,
    exact_documents: Sequence[Document] = (),
    reencoder: Reencoder | None = None,
    staged_levels: Iterable[EmbeddedChunk] | None = None,
) -> ValidationReport:
    """Check the index against the chunks staged (and indexed) by this run; see the module docstring.

    ``staged_chunks`` are streamed once (`latechunk.validation.staged`), or come already streamed as a finished
    `StagedScan`: the count and mapping checks cover all of them, the kNN checks take a bounded sample. The kNN
    checks sample from ``sample_pool`` instead when given (e.g. chunks read back from the index when this run
    staged nothing). ``query_encoder`` embeds texts with the run's model (``Encoder.encode_queries``); without one
    the model-grounded checks fail, since nothing else can tell whether the vectors mean anything.
    ``exact_documents`` (a sample of the run's documents) are re-encoded by ``reencoder`` for the exact check.
    ``staged_levels``: the run's section and document rows, in an index of several levels (`staged_chunks` then
    holds its chunks only): their counts are checked too (a `StagedScan` made with ``levels=True`` has them).
    """
    thresholds = thresholds or Thresholds()
    if not isinstance(staged_chunks, StagedScan):
        scan = StagedScan(backend, index, sample_size, seed, levels=staged_levels is not None)
        staged_chunks = scan.add_all(staged_chunks).add_all(staged_levels or ()).finish()
    scan = staged_chunks
    if sample_pool is None:
        sample, pool = scan.sample, scan.sample + scan.first_chunks
    else:
        rng = np.random.default_rng(seed)
        sample_at = rng.choice(len(sample_pool), size=min(sample_size, len(sample_pool)), replace=False)
        sample, pool = [sample_pool[int(i)] for i in sorted(sample_at)], sample_pool
    hits = [backend.knn_search(index, chunk.vector, k=k, num_candidates=num_candidates) for chunk in sample]
    vectors = load_index_vectors(backend, index, max_exact_vectors) if sample else None
    streamed = None
    if sample and vectors is None and backend.count_vectors(index) <= max_streamed_vectors:
        streamed = stream_exact_scores(backend, index, sample, hits, k)
    checks = [
        scan.counts_check(),
        _check_mapping(backend, index, scan, spec),
        check_exact_vectors(backend, index, exact_documents, reencoder, thresholds.exact_min_cosine),
        check_self_retrieval(sample, hits, vectors, thresholds.self_retrieval),
        check_recall(sample, hits, vectors, k, thresholds.recall, max_streamed_vectors, streamed),
        check_query_retrieval(backend, index, sample, query_encoder, vectors, thresholds, num_candidates),
        check_document_queries(backend, index, sample, pool, query_encoder, vectors, thresholds, num_candidates),
        check_spread(sample, vectors, thresholds.max_mean_cosine),
        check_duplicate_vectors(sample, hits, vectors),
    ]
    for check in checks:
        if check.name in SEMANTIC_CHECKS:
            check.severity = thresholds.semantic_severity
    if scan.levels:
        checks.insert(1, scan.level_counts_check())
    if probes is not None:
        checks.append(check_probes(backend, index, list(probes), query_encoder, k, num_candidates, thresholds.probes))
    return ValidationReport(index, checks)


def _check_mapping(backend: SearchBackend, index: str, scan: StagedScan, spec: IndexSpec | None) -> Check:
    problems = list(backend.index_mismatches(spec)) if spec is not None else []
    found = backend.describe_index(index)
    if found is None:
        problems.append("the index was not created by latechunk")
    else:
        staged_dims = scan.dims - {found.dims}
        staged_models = scan.model_ids - {found.model_id}
        if staged_dims:
            problems.append(f"staged vectors have {sorted(staged_dims)} dims, the index {found.dims}")
        if staged_models:
            problems.append(f"staged chunks come from {sorted(staged_models)}, the index is for {found.model_id!r}")
    return Check("mapping", len(problems), 0, not problems, {"problems": problems})
