"""Out-of-memory guards of the encoder, with a stand-in encoder that runs out of memory above a number of tokens
per forward pass (torch.cuda.OutOfMemoryError, or the RuntimeError a cuBLAS allocation failure arrives as): the
budget learnt after one error is kept, a window that does not fit alone is retried shorter, the vectors stay right.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from latechunk.chunking.spans import AnnotatedDocument, ChunkSpan
from latechunk.embedding.batching import SequenceDoesNotFit
from latechunk.embedding.config import PLAIN
from latechunk.embedding.encoders.base import Encoder, resolve_dtype
from latechunk.embedding.late_chunking import embed_documents

DIM = 8


class SmallDeviceEncoder(Encoder):
    """Each output mixes the token's own vector with the mean of its window, so that windows change results.
    A forward pass over more than ``capacity`` tokens (padding included) or over a sequence longer than
    ``longest`` raises ``error``, as a GPU with little memory would."""

    def __init__(self, *, capacity: int = 10**9, longest: int = 10**9, error=torch.cuda.OutOfMemoryError) -> None:
        super().__init__(
            tokenizer=None, max_length=64, dim=DIM, model_id="small-device", revision="0",
            device=torch.device("cpu"), dtype=torch.float32,
        )  # fmt: skip
        self.capacity, self.longest, self.error = capacity, longest, error
        self.table = torch.from_numpy(np.random.default_rng(0).standard_normal((1000, DIM)).astype(np.float32))
        self.failures = 0

    def forward_tokens(self, input_ids, attention_mask):
        if input_ids.numel() > self.capacity or input_ids.shape[1] > self.longest:
            self.failures += 1
            raise self.error("CUDA out of memory. Tried to allocate 2.00 GiB (simulated)")
        own = self.table[input_ids]  # (batch, seq, dim)
        mask = attention_mask.unsqueeze(-1).float()
        context = (own * mask).sum(dim=1, keepdim=True) / mask.sum(dim=1, keepdim=True)
        return own + context


def cublas_failure(message: str) -> RuntimeError:
    return RuntimeError("CUDA error: CUBLAS_STATUS_ALLOC_FAILED when calling `cublasCreate(handle)`")


def sequences(n: int = 24, length: int = 16) -> list[list[int]]:
    return [[(7 * i + j) % 1000 for j in range(length)] for i in range(n)]


@pytest.mark.parametrize("error", [torch.cuda.OutOfMemoryError, cublas_failure], ids=["oom", "cublas"])
def test_the_budget_learnt_after_out_of_memory_is_kept_for_later_batches(error):
    reference = SmallDeviceEncoder().encode_token_batches(sequences(), token_budget=256)
    encoder = SmallDeviceEncoder(capacity=64, error=error)
    first = encoder.encode_token_batches(sequences(), token_budget=256)
    assert encoder.failures >= 1 and encoder.budget_limit is not None and encoder.budget_limit <= 64
    failures = encoder.failures
    again = encoder.encode_token_batches(sequences(), token_budget=256)
    assert encoder.failures == failures, "batches planned after the error fit the learnt budget"
    for got, retried, want in zip(first, again, reference, strict=True):
        np.testing.assert_allclose(got, want, atol=1e-6)
        np.testing.assert_allclose(retried, want, atol=1e-6)


def test_other_runtime_errors_are_not_taken_for_out_of_memory():
    encoder = SmallDeviceEncoder(capacity=64, error=lambda message: RuntimeError("mat1 and mat2 shapes differ"))
    with pytest.raises(RuntimeError, match="shapes differ"):
        encoder.encode_token_batches(sequences(), token_budget=256)
    assert encoder.budget_limit is None


def long_documents() -> list[AnnotatedDocument]:
    docs = []
    for n_tokens in (150, 20, 97):
        ids = [(13 * t + n_tokens) % 1000 for t in range(n_tokens)]
        starts = range(0, n_tokens, 11)
        spans = [ChunkSpan(i, start, min(start + 11, n_tokens), 0, 0, "") for i, start in enumerate(starts)]
        docs.append(AnnotatedDocument(ids, spans))
    return docs


def test_a_window_that_does_not_fit_alone_is_retried_shorter_and_kept_shorter():
    encoder = SmallDeviceEncoder(longest=40)
    counted: list[int] = []
    vectors = embed_documents(encoder, long_documents(), window=64, overlap=8, token_budget=128, config=PLAIN,
                              on_tokens=counted.append)  # fmt: skip
    assert encoder.window_limit == 32
    assert sum(counted) == sum(len(doc.input_ids) for doc in long_documents()), "progress undone, then redone"
    expected = embed_documents(SmallDeviceEncoder(), long_documents(), window=32, overlap=8, token_budget=128,
                               config=PLAIN)
    for got, want in zip(vectors, expected, strict=True):
        np.testing.assert_allclose(got, want, atol=1e-6)
    failures = encoder.failures
    embed_documents(encoder, long_documents(), window=64, overlap=8, token_budget=128, config=PLAIN)
    assert encoder.failures == failures, "the shorter window is remembered for the rest of the task"


def test_a_device_that_fits_no_useful_window_fails_the_task():
    with pytest.raises(SequenceDoesNotFit):
        embed_documents(SmallDeviceEncoder(longest=6), long_documents(), window=64, overlap=8, config=PLAIN)


def test_dtype_names_and_defaults_on_cpu():
    cpu = torch.device("cpu")
    assert resolve_dtype("auto", cpu) == resolve_dtype(None, cpu) == torch.float32
    assert resolve_dtype("float16", cpu) == torch.float16
    with pytest.raises(ValueError, match="dtype must be one of"):
        resolve_dtype("int8", cpu)


def test_bfloat16_is_refused_on_a_gpu_without_it(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: False)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "Tesla T4")
    monkeypatch.setattr(torch.cuda, "device", lambda device: _NoDevice())
    cuda = torch.device("cuda")
    with pytest.raises(ValueError, match="bfloat16 is not supported by Tesla T4"):
        resolve_dtype("bfloat16", cuda)
    assert resolve_dtype("auto", cuda) == torch.float16
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: not including_emulation)
    assert resolve_dtype("auto", cuda) == resolve_dtype("bfloat16", cuda) == torch.bfloat16


class _NoDevice:
    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        return False
