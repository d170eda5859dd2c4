"""Validate stage: check the indexed run, write the report beside the run's batches, fail loudly."""

from __future__ import annotations

import dataclasses
import json
import logging
from typing import Any

import numpy as np

from latechunk.chunking.levels import DEFAULT_LEVELS
from latechunk.index.elasticsearch import ElasticsearchBackend
from latechunk.index.spec import VECTOR_FIELD, chunk_level_filter
from latechunk.pipeline.batch_failures import BatchesFailed, failure_summary, read_batch_failures
from latechunk.pipeline.index import DEFAULT_INDEX_OPTIONS, unchunked_documents
from latechunk.pipeline.index_plan import read_index_quarantine
from latechunk.pipeline.index_writes import chunk_batch_uris
from latechunk.pipeline.manifest import RunManifest, read_manifest
from latechunk.pipeline.models import describe_model, load_tokenizer, manifest_index_spec
from latechunk.pipeline.overlap import IndexedVersions, current_versions_check, indexed_versions
from latechunk.pipeline.run_parts import run_parts
from latechunk.sources.documents import Document, EmbeddedChunk
from latechunk.staging import tables as staging
from latechunk.staging.stream import ENCODER_DTYPE_KEY, StagedReader, iter_chunks
from latechunk.validation.exact import MIN_COSINE, sample_by_tokens
from latechunk.validation.run import Reencoder, validate_index
from latechunk.validation.settings import ValidationSettings
from latechunk.validation.staged import StagedScan

log = logging.getLogger(__name__)

REPORT = "validation-report.json"


def sample_indexed_chunks(es, index: str, size: int, seed: int = 0) -> list[EmbeddedChunk]:
    """A random sample of the chunks an index holds (tombstones and other levels aside), read back with their
    vectors."""
    query = {"bool": {"filter": [{"exists": {"field": VECTOR_FIELD}}, chunk_level_filter()]}}
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
    texts) and re-encodes a sample of the run's documents, about ``exact_sample_tokens`` tokens, for the exact
    check; the bound of that check follows the dtype the embed stage recorded for the sampled batches. The
    quarantine in the report holds what extract skipped, the documents that gave no chunk and the objects the
    index task left out (refused by the engine, failed in annotate, of a failed batch: their staged chunks are not
    checked against the index). Raises `BatchesFailed` after passing checks when batches of the run failed, so that
    the run ends failed although what it indexed is served.
    """
    from latechunk.embedding.encoders import load_encoder

    manifest = read_manifest(s3, manifest_path)
    # The objects the index task left out (refused by the engine, failed in annotate, of a failed batch) are not in
    # the index: not checked there. A failed batch has no chunks to read.
    refused = read_index_quarantine(s3, manifest_path)
    refused_keys = {entry["key"] for entry in refused}
    failed = read_batch_failures(s3, manifest_path)
    backend = ElasticsearchBackend(es)
    # Objects a later run rewrote or removed since this run wrote them are skipped; a stale overwrite fails. Asked
    # a part of the run at a time (`latechunk.pipeline.run_parts`), with the documents that gave no chunk.
    left_out = refused_keys | failed.keys
    superseded: dict[str, str | None] = {}
    stale: dict[str, str | None] = {}
    unchunked: list[dict[str, str]] = []
    for part in run_parts(s3, manifest):
        found = indexed_versions(s3, backend, index_name, part, set(part.changed) - left_out)
        superseded.update(found.superseded)
        stale.update(found.stale)
        unchunked += unchunked_documents(s3, part, failed.batches).quarantine()
    versions = IndexedVersions(superseded, stale)
    refused_keys |= set(versions.superseded)
    # The staged chunks are streamed once: counts and mapping over all, bounded samples for the rest.
    scan = StagedScan(backend, index_name, settings.sample_size, levels=manifest.levels != DEFAULT_LEVELS)
    for number, (uri, chunks_uri) in enumerate(zip(manifest.batches, chunk_batch_uris(manifest), strict=True)):
        if uri in failed.batches:
            continue
        for chunk in iter_chunks(s3, chunks_uri):
            if chunk.key not in refused_keys:
                scan.add(chunk, number)
    scan.finish()
    # A run that changed nothing still checks what the index serves: its kNN checks sample the index itself.
    pool = None if scan.chunks else sample_indexed_chunks(es, index_name, settings.sample_size)
    found = backend.describe_index(index_name)
    spec = manifest_index_spec(index_name, manifest, found.index_options if found else DEFAULT_INDEX_OPTIONS)
    encoder = load_encoder(manifest.model, revision=manifest.model_revision)
    tokens, batch_of = scan.candidate_documents()
    exact_sample = sample_by_tokens(tokens, settings.exact_sample_tokens)
    dtypes = {embed_dtype(s3, chunk_batch_uris(manifest)[number]) for number in {batch_of[d] for d in exact_sample}}
    thresholds = dataclasses.replace(
        settings.thresholds(), exact_min_cosine=min((MIN_COSINE[dtype] for dtype in dtypes), default=1.0)
    )
    report = validate_index(
        backend,
        index_name,
        scan,
        query_encoder=encoder.encode_queries,
        thresholds=thresholds,
        sample_size=settings.sample_size,
        probes=settings.probes or None,
        spec=spec,
        sample_pool=pool,
        exact_documents=staged_documents(s3, manifest, exact_sample, batch_of),
        reencoder=run_reencoder(manifest, encoder),
    )
    report.checks.append(current_versions_check(versions))
    quarantine = manifest.quarantine + unchunked + refused
    report_uri = f"{manifest_path.rpartition('/')[0]}/{REPORT}"
    bucket, key = staging.parse_s3_uri(report_uri)
    body = {**report.to_dict(), "quarantine": quarantine, "failed_batches": failed.batches}
    s3.put_object(Bucket=bucket, Key=key, Body=json.dumps(body, indent=2, default=str).encode(),
                  ContentType="application/json")  # fmt: skip
    log.info("%s\nquarantined: %d\nreport: %s", report.summary(), len(quarantine), report_uri)
    for check in report.warnings:
        log.warning("validation warning: %s below its threshold (%s < %s): %s", check.name, check.value,
                    check.threshold, check.description)  # fmt: skip
    report.raise_for_failure()
    if failed.batches:
        # After the checks of what was indexed: the run ends failed, for on-call to see, with its good part served.
        raise BatchesFailed(f"{failure_summary(failed)}; report: {report_uri}")
    return {
        "passed": report.passed,
        "report": report_uri,
        "checks": {check.name: check.value for check in report.checks},
        "warnings": [check.name for check in report.warnings],
        "quarantined": len(quarantine),
    }


def run_reencoder(manifest: RunManifest, encoder) -> Reencoder:
    """The annotate and embed path of the run, with the settings extract checked and recorded in its manifest."""
    chunking = manifest.chunking
    model_window = describe_model(manifest.model, manifest.model_revision).window  # annotate's cap on chunk sizes
    return Reencoder(
        encoder=encoder,
        tokenizer=load_tokenizer(manifest.model, manifest.model_revision),
        chunking=dataclasses.replace(chunking, max_chunk_tokens=min(chunking.max_chunk_tokens, model_window)),
        window=manifest.window,
        overlap=manifest.window_overlap,
        late_chunking=manifest.late_chunking,
        levels=manifest.levels,
    )


def staged_documents(s3, manifest: RunManifest, doc_ids: list[str], batch_of: dict[str, int]) -> list[Document]:
    """The staged documents ``doc_ids``, in that order, streamed from the batches that hold them."""
    wanted = set(doc_ids)
    found: dict[str, Document] = {}
    for number in sorted({batch_of[doc_id] for doc_id in doc_ids}):
        with StagedReader(s3, manifest.batches[number], staging.STAGE_DOCUMENTS) as reader:
            for row in reader.iter_rows():
                if row["doc_id"] in wanted:
                    found[row["doc_id"]] = staging.document_from_row(row)
    return [found[doc_id] for doc_id in doc_ids if doc_id in found]


def embed_dtype(s3, chunks_uri: str) -> str:
    """The dtype the embed stage encoded a batch in; batches staged before it was recorded count as bfloat16 (the
    loosest bound)."""
    with StagedReader(s3, chunks_uri, staging.STAGE_CHUNKS) as reader:
        return reader.metadata.get(ENCODER_DTYPE_KEY, b"bfloat16").decode()
