"""The encoder interface: token ids in, per-token embeddings out, plus query encoding with the same model."""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch

from latechunk.embedding.batching import (
    SequenceDoesNotFit,
    is_out_of_memory,
    padded_length,
    plan_batches,
    release_cached_memory,
    run_with_oom_split,
)
from latechunk.embedding.pooling import l2_normalize

DEFAULT_TOKEN_BUDGET = 16384
DTYPES = ("auto", "float32", "bfloat16", "float16")

log = logging.getLogger(__name__)


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``None`` means CUDA when available, else CPU."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def resolve_dtype(dtype: str | torch.dtype | None, device: torch.device) -> torch.dtype:
    """``None`` or ``auto`` means float32 on CPU, and on CUDA bfloat16 where the GPU supports it, else float16
    (bfloat16 is emulated, slowly or not at all, on GPUs before Ampere). bfloat16 asked for on such a GPU is
    refused rather than run emulated."""
    if dtype is None or dtype == "auto":
        if device.type != "cuda":
            return torch.float32
        return torch.bfloat16 if _native_bfloat16(device) else torch.float16
    if isinstance(dtype, str):
        if dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {DTYPES}, got {dtype!r}")
        dtype = getattr(torch, dtype)
    if dtype == torch.bfloat16 and device.type == "cuda" and not _native_bfloat16(device):
        raise ValueError(
            f"dtype bfloat16 is not supported by {torch.cuda.get_device_name(device)}: use dtype float16 (or auto, "
            "which picks float16 there) or float32"
        )
    return dtype


def _native_bfloat16(device: torch.device) -> bool:
    """Whether the GPU runs bfloat16 natively; True when no GPU can be asked (the model's load fails then)."""
    if not torch.cuda.is_available():
        return True
    with torch.cuda.device(device):
        return torch.cuda.is_bf16_supported(including_emulation=False)


class Encoder(ABC):
    """A text encoder that returns one embedding per input token.

    ``max_length`` is the window: the most tokens (special tokens included) one forward pass takes.
    Subclasses implement :meth:`forward_tokens`; batching, padding and OOM handling live here.
    """

    def __init__(
        self,
        *,
        tokenizer: Any,
        max_length: int,
        dim: int,
        model_id: str,
        revision: str,
        device: torch.device,
        dtype: torch.dtype,
        query_pooling: str = "mean",
    ) -> None:
        if query_pooling not in ("mean", "cls"):
            raise ValueError(f"query_pooling must be 'mean' or 'cls', got {query_pooling!r}")
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.dim = dim
        self.model_id = model_id
        self.revision = revision
        self.device = device
        self.dtype = dtype
        self.query_pooling = query_pooling
        self.pad_token_id = getattr(tokenizer, "pad_token_id", None) or 0
        # Tensor-core kernels prefer sequence lengths that are multiples of 8; on CPU padding only costs.
        self.pad_to_multiple_of = 8 if device.type == "cuda" else 1
        # Learnt from out-of-memory errors and kept for the encoder's life (one task): the most tokens one forward
        # pass may hold, and the longest sequence known to fit alone.
        self.budget_limit: int | None = None
        self.window_limit: int | None = None

    @abstractmethod
    def forward_tokens(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """input_ids, attention_mask: (batch, seq) on ``self.device`` -> (batch, seq, dim) last hidden states."""

    def encode_token_batches(
        self, sequences: Sequence[Sequence[int]], *, token_budget: int = DEFAULT_TOKEN_BUDGET
    ) -> list[np.ndarray]:
        """Encode token-id sequences (each at most ``max_length`` long) batched by length under a token budget.

        Returns one (len_i, dim) float32 array per sequence, in input order.
        """
        results: list[np.ndarray | None] = [None] * len(sequences)
        for index, output in self.iter_token_batches(sequences, token_budget=token_budget):
            results[index] = output
        return results

    def iter_token_batches(
        self, sequences: Sequence[Sequence[int]], *, token_budget: int = DEFAULT_TOKEN_BUDGET
    ) -> Iterator[tuple[int, np.ndarray]]:
        """``(index, (len_i, dim) float32 output)`` for every sequence, one forward pass at a time in the planned
        order, so that a caller can use and drop outputs while the rest is still to be encoded.

        A batch that runs out of memory is split and retried, and the budget drops to half its tokens for the rest
        of the encoder's life, so later batches are planned to fit. A sequence that runs out of memory alone raises
        `SequenceDoesNotFit` (and ``window_limit`` becomes half its length): only a shorter window helps then.
        """
        lengths = [len(sequence) for sequence in sequences]
        too_long = [n for n in lengths if n > self.max_length]
        if too_long:
            raise ValueError(f"sequence of {max(too_long)} tokens exceeds the encoder window of {self.max_length}")
        for planned in self.plan_batches(lengths, self._budget(token_budget)):
            for batch in self._within_budget(planned, lengths, token_budget):
                outputs = self._run_batch(batch, sequences)
                if outputs is None:
                    longest = max(lengths[i] for i in batch)
                    self.window_limit = min(self.window_limit or longest, longest // 2)
                    raise SequenceDoesNotFit(longest)
                yield from zip(batch, outputs, strict=True)

    def _budget(self, token_budget: int) -> int:
        return min(token_budget, self.budget_limit or token_budget)

    def _within_budget(self, batch: list[int], lengths: Sequence[int], token_budget: int) -> list[list[int]]:
        """The batch, re-planned under the learnt budget when an out-of-memory error lowered it after planning."""
        budget = self._budget(token_budget)
        if len(batch) == 1 or self.batch_tokens([lengths[i] for i in batch]) <= budget:
            return [batch]
        return [[batch[j] for j in part] for part in self.plan_batches([lengths[i] for i in batch], budget)]

    def _run_batch(self, batch: list[int], sequences: Sequence[Sequence[int]]) -> list[np.ndarray] | None:
        """The batch's outputs (split on out-of-memory errors), or None when one sequence alone runs out of it."""
        try:
            return run_with_oom_split(
                batch, lambda items: self.forward_batch([sequences[i] for i in items]),
                on_oom=lambda items: self._learn_budget([len(sequences[i]) for i in items]),
            )  # fmt: skip
        except RuntimeError as error:
            if not is_out_of_memory(error):
                raise
        release_cached_memory()
        return None

    def _learn_budget(self, lengths: Sequence[int]) -> None:
        failed = self.batch_tokens(lengths)
        self.budget_limit = max(1, min(self.budget_limit or failed, failed // 2))
        log.warning("out of memory at %d tokens per forward pass: the budget is now %d", failed, self.budget_limit)

    def batch_tokens(self, lengths: Sequence[int]) -> int:
        """Tokens one forward pass over sequences of these lengths holds, padding included."""
        return len(lengths) * padded_length(max(lengths), self.pad_to_multiple_of)

    def plan_batches(self, lengths: Sequence[int], token_budget: int) -> list[list[int]]:
        """Sequence indices grouped into forward passes; by default padded batches of similar lengths."""
        return plan_batches(lengths, token_budget, pad_to_multiple_of=self.pad_to_multiple_of)

    def forward_batch(self, sequences: Sequence[Sequence[int]]) -> list[np.ndarray]:
        """One forward pass over a planned batch: one (len_i, dim) float32 array per sequence."""
        return self._forward_padded(sequences)

    def _forward_padded(self, sequences: Sequence[Sequence[int]]) -> list[np.ndarray]:
        length = padded_length(max(len(sequence) for sequence in sequences), self.pad_to_multiple_of)
        input_ids = torch.full((len(sequences), length), self.pad_token_id, dtype=torch.long)  # (batch, seq)
        attention_mask = torch.zeros((len(sequences), length), dtype=torch.long)  # (batch, seq)
        for row, sequence in enumerate(sequences):
            input_ids[row, : len(sequence)] = torch.as_tensor(sequence, dtype=torch.long)
            attention_mask[row, : len(sequence)] = 1
        pin = self.device.type == "cuda"
        if pin:
            input_ids, attention_mask = input_ids.pin_memory(), attention_mask.pin_memory()
        with torch.inference_mode():
            hidden = self.forward_tokens(
                input_ids.to(self.device, non_blocking=pin), attention_mask.to(self.device, non_blocking=pin)
            )  # (batch, seq, dim)
            hidden = hidden.float().cpu().numpy()
        return [hidden[row, : len(sequence)] for row, sequence in enumerate(sequences)]

    def encode_queries(self, texts: Sequence[str], *, token_budget: int = DEFAULT_TOKEN_BUDGET) -> np.ndarray:
        """Embed short texts (queries) with the model's own pooling: (n_texts, dim) float32, L2-normalised.

        Texts longer than the window are truncated to ``max_length`` tokens (passed explicitly: some
        tokenizers carry an unusable ``model_max_length``).
        """
        encoded = self.tokenizer(list(texts), add_special_tokens=True, truncation=True, max_length=self.max_length)[
            "input_ids"
        ]
        token_embeddings = self.encode_token_batches(encoded, token_budget=token_budget)
        if self.query_pooling == "cls":
            pooled = np.stack([embeddings[0] for embeddings in token_embeddings])
        else:
            pooled = np.stack([embeddings.mean(axis=0, dtype=np.float32) for embeddings in token_embeddings])
        return l2_normalize(pooled.reshape(len(texts), self.dim))
