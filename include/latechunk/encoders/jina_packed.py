"""Packed attention for jina-embeddings-v2: several sequences concatenated into one row, no padding, no dense bias.

A pack is one (1, total) row of token ids holding whole sequences back to back (``plan_packs``). Every layer
except attention works per token, so it cannot tell a pack from separate sequences; attention is made
block-diagonal (a token attends only to tokens of its own sequence) and gets ALiBi, ``-slope_h * |i - j|``.

Positions restart per sequence without a position-id tensor: JinaBertEmbeddings adds no position embedding (only
token type 0), so ALiBi is the only place positions enter, and it needs only the distance ``i - j`` between two
tokens of the same sequence, in which the sequence's offset in the pack cancels.

Two attention backends compute the same thing:

* ``flex``: FlexAttention with an ALiBi ``score_mod`` and a block-diagonal ``BlockMask`` built from the sequence
  ids; compiled (dynamic shapes, so packs of any length reuse one kernel). On CUDA it is a fused kernel that never
  holds a (seq, seq) tensor and skips the blocks between sequences. The default on CUDA.
* ``segments``: per sequence, ``scaled_dot_product_attention`` over query blocks of at most ``QUERY_BLOCK``
  rows with the ALiBi bias of that block only, (heads, block, len). The default elsewhere: FlexAttention on CPU
  costs a C++ compile per process (tens of seconds) and measured slower (docs/performance.md).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import cache, partial

import torch
import torch.nn.functional as F

# attend(query, key, value) -> context; each (batch, heads, seq, head_dim)
Attend = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
BACKENDS = ("flex", "segments")
QUERY_BLOCK = 1024


def plan_packs(lengths: Sequence[int], token_budget: int) -> list[list[int]]:
    """Group sequence indices into packs of at most ``token_budget`` tokens, each sequence whole.

    First fit, longest first: a sequence joins the first pack with room for it, else opens a new one. A sequence
    longer than the budget gets a pack of its own.
    """
    if token_budget < 1:
        raise ValueError(f"token_budget must be >= 1, got {token_budget}")
    packs: list[list[int]] = []
    room: list[int] = []
    for index in sorted(range(len(lengths)), key=lambda i: (-lengths[i], i)):
        n = lengths[index]
        for k, free in enumerate(room):
            if n <= free:
                packs[k].append(index)
                room[k] -= n
                break
        else:
            packs.append([index])
            room.append(token_budget - n)
    return packs


def default_backend(device: torch.device) -> str:
    return "flex" if device.type == "cuda" else "segments"


def packed_attend(slopes: torch.Tensor, lengths: Sequence[int], backend: str, *, compiled: bool = True) -> Attend:
    """Attention over a pack of sequences of ``lengths`` (in order): ALiBi with per-head ``slopes`` (heads,),
    each token attending to its own sequence only. ``compiled`` applies to ``flex`` (False: the unfused
    reference implementation, for checks on small packs)."""
    if backend == "flex":
        return flex_attend(slopes, lengths, compiled=compiled)
    if backend == "segments":
        return partial(segment_attention, slopes=slopes, lengths=list(lengths))
    raise ValueError(f"packed attention backend must be one of {BACKENDS}, got {backend!r}")


def alibi_block(slopes: torch.Tensor, rows: range, length: int, dtype: torch.dtype) -> torch.Tensor:
    """ALiBi bias of query positions ``rows`` against key positions 0..length-1: (heads, len(rows), length)."""
    keys = torch.arange(length, device=slopes.device, dtype=torch.float32)
    queries = torch.arange(rows.start, rows.stop, device=slopes.device, dtype=torch.float32)
    distance = (keys[None, :] - queries[:, None]).abs()  # (rows, length)
    return (-slopes[:, None, None] * distance[None]).to(dtype)


def segment_attention(
    query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, *, slopes: torch.Tensor, lengths: list[int]
) -> torch.Tensor:
    # query, key, value: (1, heads, total, head_dim) -> (1, heads, total, head_dim)
    context = torch.empty_like(query)
    start = 0
    for length in lengths:
        own = slice(start, start + length)
        for first in range(0, length, QUERY_BLOCK):
            rows = range(first, min(first + QUERY_BLOCK, length))
            bias = alibi_block(slopes, rows, length, query.dtype)  # (heads, rows, length)
            block = slice(start + rows.start, start + rows.stop)
            context[:, :, block] = F.scaled_dot_product_attention(
                query[:, :, block], key[:, :, own], value[:, :, own], attn_mask=bias[None]
            )
        start += length
    return context


@cache
def compiled_flex_attention() -> Callable[..., torch.Tensor]:
    from torch.nn.attention.flex_attention import flex_attention

    return torch.compile(flex_attention, dynamic=True)


def flex_attend(slopes: torch.Tensor, lengths: Sequence[int], *, compiled: bool = True) -> Attend:
    from torch.nn.attention.flex_attention import create_block_mask, flex_attention

    device = slopes.device
    sequence_ids = torch.repeat_interleave(
        torch.arange(len(lengths), device=device), torch.as_tensor(lengths, device=device)
    )  # (total,): which sequence each position of the pack belongs to
    total = int(sequence_ids.numel())

    def same_sequence(batch: torch.Tensor, head: torch.Tensor, q_idx: torch.Tensor, kv_idx: torch.Tensor):
        return sequence_ids[q_idx] == sequence_ids[kv_idx]

    def alibi(score: torch.Tensor, batch: torch.Tensor, head: torch.Tensor, q_idx: torch.Tensor, kv_idx: torch.Tensor):
        # within one sequence q_idx - kv_idx is the distance between its own positions: the offset cancels
        return score - slopes[head] * (q_idx - kv_idx).abs()

    block_mask = create_block_mask(same_sequence, None, None, total, total, device=device)
    run = compiled_flex_attention() if compiled else flex_attention
    return partial(run, score_mod=alibi, block_mask=block_mask)
