from __future__ import annotations

import weakref

import numpy as np
import pytest
import torch
from latechunk.embedding.batching import padding_fraction, plan_batches, run_with_oom_split

LENGTHS = [512, 37, 8192, 300, 301, 2048, 5, 8000, 299, 1024, 40, 41]


def test_batches_hold_every_item_once_within_the_budget():
    batches = plan_batches(LENGTHS, token_budget=8192)
    assert sorted(i for batch in batches for i in batch) == list(range(len(LENGTHS)))
    for batch in batches:
        padded = max(LENGTHS[i] for i in batch)
        assert len(batch) * padded <= 8192 or len(batch) == 1
        assert [LENGTHS[i] for i in batch] == sorted((LENGTHS[i] for i in batch), reverse=True)


def test_an_item_over_budget_gets_its_own_batch():
    batches = plan_batches([100, 5000, 90], token_budget=1000)
    assert [1] in batches


def test_length_sorting_pads_less_than_arrival_order():
    rng = np.random.default_rng(0)
    lengths = rng.integers(10, 2000, size=200).tolist()
    packed = plan_batches(lengths, token_budget=8192)
    arrival = [list(range(i, i + 8)) for i in range(0, 200, 8)]
    assert padding_fraction(lengths, packed) < 0.1 < padding_fraction(lengths, arrival)


def test_padding_fraction_and_rounding():
    assert padding_fraction([4, 2], [[0, 1]]) == pytest.approx(2 / 8)
    assert padding_fraction([4, 2], [[0, 1]], pad_to_multiple_of=8) == pytest.approx(10 / 16)
    assert padding_fraction([], []) == 0.0


def test_max_batch_size_caps_the_batch():
    batches = plan_batches([10] * 10, token_budget=10_000, max_batch_size=3)
    assert [len(batch) for batch in batches] == [3, 3, 3, 1]


def test_out_of_memory_batches_are_split_and_retried():
    calls = []

    def run(batch):
        calls.append(list(batch))
        if len(batch) > 2:
            raise torch.OutOfMemoryError("CUDA out of memory (injected)")
        return [item * 10 for item in batch]

    assert run_with_oom_split([1, 2, 3, 4, 5], run) == [10, 20, 30, 40, 50]
    assert calls == [[1, 2, 3, 4, 5], [1, 2], [3, 4, 5], [3], [4, 5]]


def test_a_single_item_out_of_memory_is_raised():
    def run(batch):
        raise torch.OutOfMemoryError("CUDA out of memory (injected)")

    with pytest.raises(torch.OutOfMemoryError):
        run_with_oom_split([1, 2], run)


def test_encoder_survives_injected_out_of_memory(tiny_bert, monkeypatch):
    sequences = [list(range(5, 5 + n)) for n in (30, 12, 29, 31, 7)]
    expected = tiny_bert.encode_token_batches(sequences)
    real_forward = tiny_bert.forward_tokens
    batch_sizes = []

    def flaky_forward(input_ids, attention_mask):
        batch_sizes.append(input_ids.shape[0])
        if input_ids.shape[0] > 1:
            raise torch.OutOfMemoryError("CUDA out of memory (injected)")
        return real_forward(input_ids, attention_mask)

    monkeypatch.setattr(tiny_bert, "forward_tokens", flaky_forward)
    recovered = tiny_bert.encode_token_batches(sequences)
    assert max(batch_sizes) > 1 and batch_sizes.count(1) == len(sequences)
    for got, want in zip(recovered, expected, strict=True):
        np.testing.assert_allclose(got, want, atol=1e-5)


def test_the_failed_batch_is_freed_before_its_halves_run():
    class Activations:
        """Stands in for the tensors of a forward pass."""

    alive_during_retry = []
    failed = []

    def run(items):
        activations = Activations()
        if len(items) > 1:
            failed.append(weakref.ref(activations))
            raise torch.OutOfMemoryError("CUDA out of memory (injected)")
        alive_during_retry.extend(ref() is not None for ref in failed)
        return list(items)

    assert run_with_oom_split([1, 2], run) == [1, 2]
    assert alive_during_retry and not any(alive_during_retry), "the failed attempt's tensors outlive its handler"
