"""The packed attention path (``jina_packed``) against the plain reference path (padded batches, dense ALiBi bias):
same outputs in float32 on CPU, no padding inside a pack, no attention between the sequences of a pack."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from latechunk.chunking.config import ChunkingConfig
from latechunk.chunking.spans import annotate_spans
from latechunk.embedding.config import PLAIN, LateChunkingConfig
from latechunk.embedding.encoders import load_encoder
from latechunk.embedding.encoders.jina_bert import (
    JinaBertEncoder,
    alibi_slopes,
    load_jina_bert_model,
    resolve_attention,
)
from latechunk.embedding.encoders.jina_packed import FLEX_BLOCK, packed_attend, plan_packs, sequence_block_mask
from latechunk.embedding.late_chunking import embed_documents
from torch.nn.attention.flex_attention import BlockMask

GOLDEN_DIR = Path(__file__).resolve().parents[1] / "data" / "jina_bert_tiny"
MIXED_LENGTHS = [1, 511, 512, 513, 4097, 9000]
# crosses FlexAttention's 128-token blocks inside and between sequences
FLEX_LENGTHS = [1, 127, 128, 129, 300]


@pytest.fixture(scope="module")
def golden_model(tmp_path_factory):
    directory = tmp_path_factory.mktemp("golden_model")
    for name in ("config.json", "model.safetensors"):
        shutil.copy(GOLDEN_DIR / name, directory / name)
    return load_jina_bert_model(directory, torch.device("cpu"), torch.float32)


@pytest.fixture(scope="module")
def random_model(tiny_jina_dir):
    return load_jina_bert_model(tiny_jina_dir, torch.device("cpu"), torch.float32)


@pytest.fixture(params=["golden", "random"])
def model(request):
    return request.getfixturevalue(f"{request.param}_model")


@pytest.fixture
def flex_unfused(monkeypatch):
    """FlexAttention's unfused reference implementation: the same score_mod and block mask as the compiled kernel,
    without a compile (tens of seconds on CPU)."""
    from torch.nn.attention import flex_attention

    monkeypatch.setattr(flex_attention, "_FLEX_ATTENTION_DISABLE_COMPILE_DEBUG", True)


def random_sequences(lengths: list[int], vocab_size: int, seed: int) -> list[list[int]]:
    rng = np.random.default_rng(seed)
    return [rng.integers(5, vocab_size, size=n).tolist() for n in lengths]


def plain_reference(model, sequences: list[list[int]]) -> list[np.ndarray]:
    """Each sequence alone through the plain path: (len, hidden) float32."""
    with torch.inference_mode():
        return [model(torch.tensor([sequence]))[0].numpy() for sequence in sequences]


def packed(model, sequences: list[list[int]], backend: str) -> list[np.ndarray]:
    """All sequences in one pack: (1, total) token ids, no padding."""
    lengths = [len(sequence) for sequence in sequences]
    ids = torch.tensor([[token for sequence in sequences for token in sequence]])  # (1, total)
    with torch.inference_mode():
        attend = packed_attend(alibi_slopes(model.config.num_attention_heads), lengths, backend, compiled=False)
        hidden = model.encode(ids, attend)[0].numpy()  # (total, hidden)
    return np.split(hidden, np.cumsum(lengths)[:-1])


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))


def assert_same_embeddings(packed_outputs: list[np.ndarray], reference: list[np.ndarray]) -> None:
    for got, want in zip(packed_outputs, reference, strict=True):
        assert got.shape == want.shape
        assert cosines(got, want).min() >= 0.9999
        chunks = [slice(start, start + 64) for start in range(0, len(want), 64)]
        chunk_cosines = cosines(np.stack([got[c].mean(0) for c in chunks]), np.stack([want[c].mean(0) for c in chunks]))
        assert chunk_cosines.min() >= 0.9999
        np.testing.assert_allclose(got, want, atol=1e-3, rtol=0)


def test_plan_packs_fills_packs_first_fit_longest_first():
    assert plan_packs([5, 3, 4, 2, 9, 1], 8) == [[4], [0, 1], [2, 3, 5]]


@pytest.mark.parametrize("budget", [1, 600, 4097, 20000])
def test_plan_packs_keeps_sequences_whole_under_the_budget(budget):
    lengths = MIXED_LENGTHS * 3
    packs = plan_packs(lengths, budget)
    assert sorted(i for pack in packs for i in pack) == list(range(len(lengths)))
    for pack in packs:
        assert len(pack) == 1 or sum(lengths[i] for i in pack) <= budget


def test_encoder_packed_path_equals_the_plain_path_on_a_mixed_pack(model):
    sequences = random_sequences(MIXED_LENGTHS, model.config.vocab_size, seed=1)
    reference = plain_reference(model, sequences)
    encoder = JinaBertEncoder(
        model,
        attention="packed",
        tokenizer=None,
        max_length=9000,
        model_id="tiny",
        revision="r",
        device=torch.device("cpu"),
        dtype=torch.float32,
    )
    assert encoder.plan_batches(MIXED_LENGTHS, sum(MIXED_LENGTHS)) == [[5, 4, 3, 2, 1, 0]]
    assert_same_embeddings(encoder.encode_token_batches(sequences, token_budget=sum(MIXED_LENGTHS)), reference)


@pytest.mark.usefixtures("flex_unfused")
def test_flex_backend_equals_the_plain_path(golden_model):
    sequences = random_sequences(FLEX_LENGTHS, golden_model.config.vocab_size, seed=2)
    assert_same_embeddings(packed(golden_model, sequences, "flex"), plain_reference(golden_model, sequences))


@pytest.mark.parametrize("lengths", [FLEX_LENGTHS, [256, 128, 1, 383], [1000], [0, 5, 0, 300]])
def test_block_mask_skips_exactly_the_blocks_between_sequences(lengths):
    ids = np.repeat(np.arange(len(lengths)), lengths)  # (total,)
    mask = sequence_block_mask(torch.from_numpy(ids), lambda *args: None)
    blocks = [ids[start : start + FLEX_BLOCK] for start in range(0, len(ids), FLEX_BLOCK)]
    same = [[np.equal.outer(q, k) for k in blocks] for q in blocks]  # per block pair (q_size, k_size)
    needed = np.array([[pairs.any() for pairs in row] for row in same])
    full = np.array([[pairs.size == FLEX_BLOCK**2 and pairs.all() for pairs in row] for row in same])
    assert np.array_equal(mask.to_dense()[0, 0].numpy().astype(bool), needed)
    full_mask = BlockMask.from_kv_blocks(mask.full_kv_num_blocks, mask.full_kv_indices, BLOCK_SIZE=FLEX_BLOCK)
    assert np.array_equal(full_mask.to_dense()[0, 0].numpy().astype(bool), full)


def test_sequences_in_a_pack_do_not_attend_to_each_other(golden_model, monkeypatch):
    seen = []
    encode = golden_model.encode
    monkeypatch.setattr(golden_model, "encode", lambda ids, attend: seen.append(ids) or encode(ids, attend))
    sequences = random_sequences(FLEX_LENGTHS, golden_model.config.vocab_size, seed=3)
    before = packed(golden_model, sequences, "segments")
    assert seen[0].shape == (1, sum(FLEX_LENGTHS)) and bool((seen[0] != 0).all()), "a pack holds no padding"
    changed = [list(s) for s in sequences]
    changed[3] = random_sequences([FLEX_LENGTHS[3]], golden_model.config.vocab_size, seed=4)[0]
    after = packed(golden_model, changed, "segments")
    assert not np.allclose(before[3], after[3], atol=1e-3)
    for k in (0, 1, 2, 4):
        np.testing.assert_allclose(after[k], before[k], atol=1e-6, rtol=0)


def test_auto_attention_is_the_plain_reference_until_packed_is_measured_on_a_gpu():
    assert resolve_attention("auto", torch.device("cuda")) == "plain"
    assert resolve_attention("auto", torch.device("cpu")) == "plain"
    assert resolve_attention("packed", torch.device("cpu")) == "packed"
    with pytest.raises(ValueError, match="attention must be one of"):
        resolve_attention("flash", torch.device("cpu"))


def test_load_encoder_passes_the_attention_mode(tiny_jina_dir, tiny_bert_dir):
    assert load_encoder(tiny_jina_dir, device="cpu").attention == "plain"
    assert load_encoder(tiny_jina_dir, device="cpu", attention="packed").attention == "packed"
    with pytest.raises(ValueError, match="jina-bert checkpoints only"):
        load_encoder(tiny_bert_dir, device="cpu", attention="packed")


def test_late_chunking_through_the_packed_encoder_equals_plain(tiny_jina_dir):
    plain = load_encoder(tiny_jina_dir, device="cpu", attention="plain")
    packed_encoder = load_encoder(tiny_jina_dir, device="cpu", attention="packed")
    text = "Sarah Johnson is a marine biologist. She works in Hawaii near coral reefs. " * 12
    docs = [annotate_spans(text[:n], plain.tokenizer, ChunkingConfig()) for n in (30, 300, len(text))]
    assert len(docs[-1].input_ids) > 3 * 48, "the long document is windowed"
    for config in (PLAIN, LateChunkingConfig(window_layout="centred", frame_windows=True), LateChunkingConfig()):
        want = embed_documents(plain, docs, window=48, overlap=12, config=config, token_budget=256)
        got = embed_documents(packed_encoder, docs, window=48, overlap=12, config=config, token_budget=256)
        for g, w in zip(got, want, strict=True):
            assert cosines(g, w).min() >= 0.9999


def test_an_empty_sequence_in_a_pack_gets_an_empty_array(tiny_jina_dir):
    encoder = load_encoder(tiny_jina_dir, device="cpu", attention="packed")
    outputs = encoder.encode_token_batches([[2, 40, 3], [], [2, 41, 42, 3]])
    assert [o.shape for o in outputs] == [(3, encoder.dim), (0, encoder.dim), (4, encoder.dim)]
    (alone,) = encoder.encode_token_batches([[2, 41, 42, 3]])
    np.testing.assert_allclose(outputs[2], alone, atol=1e-6)
