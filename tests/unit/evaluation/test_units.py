"""Retrieval units from the late pass (issue #23): turn-based sections, section and document vectors, naive
sections, against computations written here from the tokenizer's offsets and the encoder's token embeddings."""

from __future__ import annotations

import numpy as np
import pytest
from latechunk.chunking.config import ChunkingConfig
from latechunk.chunking.spans import AnnotatedDocument, ChunkSpan
from latechunk.embedding.late_chunking import LateChunkingConfig, embed_documents, embed_tokens
from latechunk.evaluation.harness import LateVariant, embed_corpus, encoder_work, fit_text, late_key, token_ids
from latechunk.evaluation.retrieval import rank_memory
from latechunk.evaluation.units import (
    document_units,
    group_turns,
    naive_section_sequences,
    turn_char_spans,
    unit_kind,
)
from tiny_models import WORDS

SECTION_TOKENS = (6, 12, 40)
CONFIGS = {16: ChunkingConfig("fixed", chunk_size=16)}  # the chunking the units are scored beside


def transcript(n_turns: int, seed: int) -> str:
    """Lines ``"{speaker}: {words}"`` of 1 to 9 words from the tiny vocabulary."""
    rng = np.random.default_rng(seed)
    speakers = ("sarah", "johnson", "she")
    return "\n".join(
        f"{speakers[k % 3]}: " + " ".join(rng.choice(WORDS, size=int(rng.integers(1, 10)))) for k in range(n_turns)
    )


TEXTS = [transcript(12, seed=1), transcript(5, seed=2), "berlin is the capital of germany", transcript(40, seed=3)]


@pytest.fixture(scope="module")
def windowed_bert(tiny_bert_dir):
    """The tiny BERT with a 32-token window, so that the last text is many windows long."""
    from latechunk.embedding.encoders import load_encoder

    return load_encoder(tiny_bert_dir, device="cpu", max_length=32)


def turn_start_tokens(tokenizer, text: str) -> set[int]:
    """Indices of the tokens that start a line after the first, from the tokenizer's own offsets."""
    offsets = tokenizer(text, return_offsets_mapping=True)["offset_mapping"]
    line_starts = [k + 1 for k, char in enumerate(text) if char == "\n"]
    starts = set()
    for line_start in line_starts:
        first = next(
            (t for t, (s, e) in enumerate(offsets) if e > s and s >= line_start), None
        )  # the line's first content token
        if first is not None:
            starts.add(first)
    return starts


def test_turn_char_spans_tile_the_text_and_start_at_line_starts():
    text = "a: one\nb: two\n\nc: three\n"
    spans = turn_char_spans(text)
    assert spans[0][0] == 0 and spans[-1][1] == len(text)
    assert all(end == start for (_, end), (start, _) in zip(spans, spans[1:], strict=False))
    assert [text[s:e] for s, e in spans] == ["a: one\n", "b: two\n", "\n", "c: three\n"]


def test_group_turns_merges_up_to_the_budget_and_keeps_long_turns_whole():
    turns = [(0, 3), (3, 5), (5, 20), (20, 22), (22, 24), (24, 30)]
    assert group_turns(turns, 6) == [(0, 5), (5, 20), (20, 24), (24, 30)]
    assert group_turns(turns, 100) == [(0, 30)]
    assert group_turns(turns, 1) == turns


@pytest.mark.parametrize("text", TEXTS, ids=["12 turns", "5 turns", "one line", "40 turns"])
def test_sections_cover_each_document_once_and_cut_only_at_turn_starts(tiny_bert, text):
    units = document_units(tiny_bert, text, SECTION_TOKENS)
    n_tokens = len(tiny_bert.tokenizer(text)["input_ids"])
    starts = turn_start_tokens(tiny_bert.tokenizer, text)
    assert units.n_tokens == n_tokens
    for size in SECTION_TOKENS:
        sections = units.sections[size]
        assert sections[0][0] == 0 and sections[-1][1] == n_tokens
        assert all(end == start for (_, end), (start, _) in zip(sections, sections[1:], strict=False))
        assert {start for start, _ in sections[1:]} <= starts
        for k, (start, end) in enumerate(sections):
            inside = [t for t in starts if start < t < end]
            assert end - start <= size or not inside  # over the budget only as one whole turn
            if k + 1 < len(sections):  # the next turn did not fit
                following = min([t for t in starts if t > sections[k + 1][0]] + [n_tokens])
                assert following - start > size
    assert len(units.sections[40]) < len(units.sections[6]) or not starts
    assert units.spans[-1] == (0, n_tokens)


def unit(vector: np.ndarray) -> np.ndarray:
    return vector / np.linalg.norm(vector)


@pytest.mark.parametrize("long_late", [False, True])
def test_section_and_document_vectors_are_means_of_the_late_token_embeddings(windowed_bert, long_late):
    """Against the token embeddings of the core's late pass (windowed where the document is longer than the
    window) and against the pipeline's own pooling (`embed_documents`, running sums window by window)."""
    encoder = windowed_bert
    variant = LateVariant("centred", True, overlap=8, naive_weight=0.6)  # the mix applies to chunks only
    vectors = embed_corpus(
        encoder,
        TEXTS,
        ["late"],
        CONFIGS,
        long_late=long_late,
        late_variants=[variant],
        units=["section", "document"],
        section_tokens=SECTION_TOKENS,
    )
    kind = late_key(variant)
    assert set(vectors) == {(unit_kind(kind, "section"), size) for size in SECTION_TOKENS} | {
        (unit_kind(kind, "document"), 0)
    }
    ids = token_ids(encoder, TEXTS, long_late)
    assert (max(len(doc) for doc in ids) > encoder.max_length) == long_late
    matrices = embed_tokens(encoder, ids, overlap=8, layout="centred", frame_windows=True)
    pure_late = LateChunkingConfig("centred", True, naive_weight=0.0)
    for size in SECTION_TOKENS:
        got = vectors[(unit_kind(kind, "section"), size)]
        rows = 0
        for d, (doc, matrix) in enumerate(zip(ids, matrices, strict=True)):
            sections = document_units(encoder, fit_text(encoder, TEXTS[d], long_late), [size]).sections[size]
            mine = got.vectors[rows : rows + len(sections)]
            assert got.doc_index[rows : rows + len(sections)].tolist() == [d] * len(sections)
            np.testing.assert_allclose(mine, np.stack([unit(matrix[s:e].mean(axis=0)) for s, e in sections]), atol=1e-5)
            spans = [ChunkSpan(k, s, e, 0, 0, "") for k, (s, e) in enumerate(sections)]
            pipeline = embed_documents(encoder, [AnnotatedDocument(doc, spans)], overlap=8, config=pure_late)[0]
            np.testing.assert_allclose(mine, pipeline, atol=1e-5)
            rows += len(sections)
        assert rows == len(got.doc_index)
    documents = vectors[(unit_kind(kind, "document"), 0)]
    assert documents.doc_index.tolist() == list(range(len(TEXTS)))
    np.testing.assert_allclose(documents.vectors, np.stack([unit(m.mean(axis=0)) for m in matrices]), atol=1e-5)


def test_the_document_unit_ranks_documents_by_their_one_vector(windowed_bert):
    vectors = embed_corpus(
        windowed_bert, TEXTS, ["late", "none"], CONFIGS, long_late=True, units=["document"], section_tokens=()
    )
    documents = vectors[(unit_kind("late", "document"), 0)]
    assert len(documents.doc_index) == len(TEXTS)
    queries = windowed_bert.encode_queries(["sarah dives near coral reefs", "berlin capital", "ocean temperatures"])
    doc_ids = [f"d{k}" for k in range(len(TEXTS))]
    cosines = queries @ documents.vectors.T
    for row, ranking in zip(cosines, rank_memory(documents, doc_ids, queries), strict=True):
        assert list(ranking) == [doc_ids[k] for k in np.argsort(-row, kind="stable")]
        np.testing.assert_allclose(list(ranking.values()), np.sort(row)[::-1], rtol=1e-6)
    # ``none`` is the document cut to the window: another vector for the documents longer than it
    none = vectors[("none", 0)].vectors
    long = [len(doc) > windowed_bert.max_length for doc in token_ids(windowed_bert, TEXTS, True)]
    for k, is_long in enumerate(long):
        assert np.allclose(none[k], documents.vectors[k], atol=1e-5) != is_long


def test_naive_sections_encode_each_section_alone_cut_to_the_window(windowed_bert):
    encoder = windowed_bert
    sizes = (12, 40)
    vectors = embed_corpus(encoder, TEXTS, ["naive"], CONFIGS, long_late=True, units=["section"], section_tokens=sizes)
    ids = token_ids(encoder, TEXTS, True)
    units = [document_units(encoder, text, sizes) for text in TEXTS]
    cls, sep = ids[0][0], ids[0][-1]
    for size in sizes:
        got = vectors[(unit_kind("naive", "section"), size)]
        expected, encoded = [], 0
        for doc, doc_units in zip(ids, units, strict=True):
            for start, end in doc_units.sections[size]:
                content = [t for t in doc[start:end] if t not in (cls, sep)][: encoder.max_length - 2]
                sequence = [cls, *content, sep]
                encoded += len(sequence)
                expected.append(unit(encoder.encode_token_batches([sequence])[0].mean(axis=0)))
        np.testing.assert_allclose(got.vectors, np.stack(expected), atol=1e-5)
        work = encoder_work(encoder, ids, {(unit_kind("naive", "section"), size): got}, units=units)
        assert work[(unit_kind("naive", "section"), size)].sum() == encoded
    assert any(end - start > encoder.max_length for u in units for start, end in u.sections[40])  # some were cut


def test_naive_section_sequences_frame_and_cut():
    ids = [101, 5, 6, 7, 8, 9, 102]
    assert naive_section_sequences(ids, [(0, 3), (3, 7)], {101, 102}, 4) == [[101, 5, 6, 102], [101, 7, 8, 102]]
