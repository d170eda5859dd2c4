"""Validate stage: check the indexed run, write the report beside the run's batches, fail loudly."""

from __future__ import annotations

import dataclasses
import json
import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from latechunk import staging
from latechunk.documents import EmbeddedChunk
from latechunk.index import ElasticsearchBackend
from latechunk.index_mapping import VECTOR_FIELD
from latechunk.pipeline.batch_failures import BatchesFailed, failure_summary, read_batch_failures
from latechunk.pipeline.index_plan import read_index_quarantine
from latechunk.pipeline.load import DEFAULT_INDEX_OPTIONS, chunk_batch_uris, unchunked_documents
from latechunk.pipeline.models import manifest_index_spec
from latechunk.validate import Thresholds, validate_index

log = logging.getLogger(__name__)

REPORT = "validation-report.json"


@dataclass(frozen=True)
class ValidationSettings:
    model: str
    sample_size: int = 50
    self_retrieval_threshold: float = 0.95
    recall_threshold: float = 0.9
    query_retrieval_threshold: float = 0.8
    document_query_threshold: float = 0.6
    max_mean_cosine: float = 0.95
    query_k: int = 3
    probes: list[dict[str, Any]] = field(default_factory=list)

    def thresholds(self) -> Thresholds:
        return Thresholds(
            self_retrieval=self.self_retrieval_threshold,
            recall=self.recall_threshold,
            query_retrieval=self.query_retrieval_threshold,
            document_query=self.document_query_threshold,
            max_mean_cosine=self.max_mean_cosine,
            query_k=self.query_k,
        )


def sample_indexed_chunks(es, index: str, size: int, seed: int = 0) -> list[EmbeddedChunk]:
    """A random sample of the chunks an index holds (tombstones aside), read back with their vectors."""
    query = {"bool": {"filter": [{"exists": {"field": VECTOR_FIELD}}]}}
    response = es.search(
        index=index,
        size=size,
        query={"function_score": {"query": query, "random_score": {"seed": seed, "field": "_seq_no"}}},
    )
    fields = {field.name for field in dataclasses.fields(EmbeddedChunk)} - {"vector"}
    return [
        EmbeddedChunk(
            **{name: value for name, value in hit["_source"].items() if name in fields},
            vector=np.asarray(hit["_source"]["vector"], dtype=np.float32),
        )
        for hit in response["hits"]["hits"]
    ]


def validate(*, s3, es, manifest_path: str, index_name: str, settings: ValidationSettings) -> dict[str, Any]:
    """Run the index checks on this run's chunks; raises `ValidationError` (after writing the report) on failure.

    The run's model encodes the model-grounded checks' queries (on CPU unless a GPU is at hand: a few dozen short
    texts). The quarantine in the report holds what extract skipped, the documents that gave no chunk and the
    objects the index task left out (refused by the engine, failed in annotate, of a failed batch: their staged
    chunks are not checked against the index). Raises `BatchesFailed` after passing checks when batches of the
    run failed, so that the run ends failed although what it indexed is served.
    """
    from latechunk.encoders import load_encoder

    manifest = staging.read_json(s3, manifest_path)
    # The objects the index task left out (refused by the engine, failed in annotate, of a failed batch) are not in
    # the index: not checked there. A failed batch has no chunks to read.
    refused = read_index_quarantine(s3, manifest_path)
    refused_keys = {entry["key"] for entry in refused}
    failed = read_batch_failures(s3, manifest_path)
    good = [uri for uri in manifest["batches"] if uri not in failed.batches]
    staged = [chunk for uri in chunk_batch_uris({"batches": good}) for chunk in staging.read_chunks(s3, uri)
              if chunk.key not in refused_keys]  # fmt: skip
    # A run that changed nothing still checks what the index serves: its kNN checks sample the index itself.
    pool = staged or sample_indexed_chunks(es, index_name, settings.sample_size)
    backend = ElasticsearchBackend(es)
    found = backend.describe_index(index_name)
    spec = manifest_index_spec(index_name, manifest, found.index_options if found else DEFAULT_INDEX_OPTIONS)
    encoder = load_encoder(settings.model)
    report = validate_index(
        backend,
        index_name,
        staged,
        query_encoder=encoder.encode_queries,
        thresholds=settings.thresholds(),
        sample_size=settings.sample_size,
        probes=settings.probes or None,
        spec=spec,
        sample_pool=pool,
    )
    quarantine = manifest["quarantine"] + unchunked_documents(s3, manifest, failed.batches).quarantine() + refused
    report_uri = f"{manifest_path.rpartition('/')[0]}/{REPORT}"
    bucket, key = staging.parse_s3_uri(report_uri)
    body = {**report.to_dict(), "quarantine": quarantine, "failed_batches": failed.batches}
    s3.put_object(Bucket=bucket, Key=key, Body=json.dumps(body, indent=2, default=str).encode(),
                  ContentType="application/json")  # fmt: skip
    log.info("%s\nquarantined: %d\nreport: %s", report.summary(), len(quarantine), report_uri)
    report.raise_for_failure()
    if failed.batches:
        # After the checks of what was indexed: the run ends failed, for on-call to see, with its good part served.
        raise BatchesFailed(f"{failure_summary(failed)}; report: {report_uri}")
    return {
        "passed": report.passed,
        "report": report_uri,
        "checks": {check.name: check.value for check in report.checks},
        "quarantined": len(quarantine),
    }
