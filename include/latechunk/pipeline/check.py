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
from latechunk.pipeline.load import chunk_batch_uris
from latechunk.validate import validate_index

log = logging.getLogger(__name__)

REPORT = "validation-report.json"


@dataclass(frozen=True)
class ValidationSettings:
    model: str
    sample_size: int = 50
    self_retrieval_threshold: float = 0.95
    recall_threshold: float = 0.9
    probes: list[dict[str, Any]] = field(default_factory=list)


def sample_indexed_chunks(es, index: str, size: int, seed: int = 0) -> list[EmbeddedChunk]:
    """A random sample of the chunks an index holds, read back with their vectors."""
    response = es.search(
        index=index,
        size=size,
        query={"function_score": {"query": {"match_all": {}}, "random_score": {"seed": seed, "field": "_seq_no"}}},
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
    """Run the index checks on this run's chunks; raises `ValidationError` (after writing the report) on failure."""
    manifest = staging.read_json(s3, manifest_path)
    staged = [chunk for uri in chunk_batch_uris(manifest) for chunk in staging.read_chunks(s3, uri)]
    # A run that changed nothing still checks what the index serves: its kNN checks sample the index itself.
    pool = staged or sample_indexed_chunks(es, index_name, settings.sample_size)
    query_encoder = None
    if settings.probes:
        from latechunk.encoders import load_encoder

        encoder = load_encoder(settings.model)
        query_encoder = encoder.encode_queries
    report = validate_index(
        ElasticsearchBackend(es),
        index_name,
        staged,
        sample_size=settings.sample_size,
        self_rank_threshold=settings.self_retrieval_threshold,
        recall_threshold=settings.recall_threshold,
        probes=settings.probes or None,
        query_encoder=query_encoder,
        sample_pool=pool,
    )
    report_uri = f"{manifest_path.rpartition('/')[0]}/{REPORT}"
    bucket, key = staging.parse_s3_uri(report_uri)
    body = json.dumps({**report.to_dict(), "quarantine": manifest["quarantine"]}, indent=2, default=str)
    s3.put_object(Bucket=bucket, Key=key, Body=body.encode(), ContentType="application/json")
    log.info("%s\nreport: %s", report.summary(), report_uri)
    report.raise_for_failure()
    return {
        "passed": report.passed,
        "report": report_uri,
        "checks": {check.name: check.value for check in report.checks},
        "quarantined": len(manifest["quarantine"]),
    }
