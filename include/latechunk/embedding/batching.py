"""Length-aware batching: sort by length, pack to a token budget, split a batch in half when it runs out of
GPU memory.

The cost of a padded batch is ``n_items * padded_length`` tokens; packing items of similar length keeps the
padding small and the budget bounds the activations that one forward pass holds.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import TypeVar

import torch

log = logging.getLogger(__name__)

T = TypeVar("T")


def plan_batches(
    lengths: Sequence[int], token_budget: int, *, max_batch_size: int | None = None, pad_to_multiple_of: int = 1
) -> list[list[int]]:
    """Group item indices into batches whose padded size ``n * padded_length`` fits ``token_budget``.

    Items are taken longest first, so each batch holds neighbours in length. An item longer than the budget
    gets a batch of its own.
    """
    if token_budget < 1:
        raise ValueError(f"token_budget must be >= 1, got {token_budget}")
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    batches: list[list[int]] = []
    current: list[int] = []
    for index in order:
        if current:
            padded = padded_length(lengths[current[0]], pad_to_multiple_of)
            full = max_batch_size is not None and len(current) >= max_batch_size
            if full or (len(current) + 1) * padded > token_budget:
                batches.append(current)
                current = []
        current.append(index)
    if current:
        batches.append(current)
    return batches


def padded_length(length: int, multiple: int) -> int:
    return -(-length // multiple) * multiple


def padding_fraction(lengths: Sequence[int], batches: Sequence[Sequence[int]], pad_to_multiple_of: int = 1) -> float:
    """Share of the computed positions that are padding."""
    real = sum(lengths[i] for batch in batches for i in batch)
    computed = sum(
        len(batch) * padded_length(max(lengths[i] for i in batch), pad_to_multiple_of) for batch in batches if batch
    )
    return 0.0 if computed == 0 else 1.0 - real / computed


# How CUDA libraries report an allocation that failed when torch does not raise torch.OutOfMemoryError itself:
# cuBLAS and cuDNN handles are created lazily, and their allocation failures come back as plain RuntimeErrors.
OUT_OF_MEMORY_MARKERS = (
    "CUDA out of memory",
    "CUBLAS_STATUS_ALLOC_FAILED",
    "CUDNN_STATUS_ALLOC_FAILED",
    "CUDA error: out of memory",
)


# The shortest window a document is retried at when a longer one ran out of memory alone; below it, the device
# cannot run the model at all.
MIN_WINDOW = 16


class SequenceDoesNotFit(RuntimeError):
    """One sequence alone ran out of memory: no smaller batch helps, only a shorter sequence."""

    def __init__(self, length: int) -> None:
        super().__init__(f"a sequence of {length} tokens alone runs out of memory on this device")
        self.length = length


def is_out_of_memory(error: BaseException) -> bool:
    """torch's out-of-memory error, or a CUDA library's allocation failure raised as a RuntimeError."""
    if isinstance(error, torch.OutOfMemoryError):
        return True
    return isinstance(error, RuntimeError) and any(marker in str(error) for marker in OUT_OF_MEMORY_MARKERS)


def run_with_oom_split(
    batch: Sequence[int], run: Callable[[Sequence[int]], list[T]], on_oom: Callable[[Sequence[int]], None] | None = None
) -> list[T]:
    """Run ``run(batch)``; when it runs out of memory (`is_out_of_memory`) split the batch in half and retry each
    half, after calling ``on_oom(batch)`` (which may learn a smaller budget from it).

    ``run`` returns one result per item, in order. A single item that still runs out of memory re-raises.

    The halves run after the ``except`` block has been left: inside it the exception's traceback keeps the failed
    attempt's frames, and with them its tensors (the attention bias alone is ~3 GiB at 8192 tokens), alive.
    """
    try:
        return run(batch)
    except RuntimeError as error:  # torch.OutOfMemoryError is one
        if len(batch) == 1 or not is_out_of_memory(error):
            raise
    release_cached_memory()
    if on_oom is not None:
        on_oom(batch)
    half = len(batch) // 2
    log.warning("out of memory on a batch of %d items; retrying as %d + %d", len(batch), half, len(batch) - half)
    return run_with_oom_split(batch[:half], run, on_oom) + run_with_oom_split(batch[half:], run, on_oom)


def release_cached_memory() -> None:
    """Hand the allocator's cached blocks back, after an out-of-memory error; never initialises CUDA itself."""
    if torch.cuda.is_initialized():
        torch.cuda.empty_cache()
