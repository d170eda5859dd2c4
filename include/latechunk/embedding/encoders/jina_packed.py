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
  rows, the ALiBi bias a strided view of one (heads, 2 * len - 1) vector (see ``segment_attention``); the
  blocks bound the memory should a kernel copy the view out. The default elsewhere: FlexAttention on CPU
  costs a C++ compile per process (tens of seconds) and measured slower (docs/performance.md).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import cache, partial
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

if TYPE_CHECKING:
    from torch.nn.attention.flex_attention import BlockMask

# attend(query, key, value) -> context; each (batch, heads, seq, head_dim)
Attend = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
BACKENDS = ("flex", "segments")
QUERY_BLOCK = 4096
FLEX_BLOCK = 128  # FlexAttention's default sparse block size, both ways


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


def alibi_diagonals(slopes: torch.Tensor, length: int, dtype: torch.dtype) -> torch.Tensor:
    """``-slope_h * |m - (length - 1)|`` for m in 0..2*length-2: every value of one sequence's ALiBi bias,
    (heads, 2 * length - 1)."""
    offsets = torch.arange(2 * length - 1, device=slopes.device, dtype=torch.float32) - (length - 1)
    return (-slopes[:, None] * offsets.abs()[None]).to(dtype)


def segment_attention(
    query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, *, slopes: torch.Tensor, lengths: list[int]
) -> torch.Tensor:
    """Per sequence, ``scaled_dot_product_attention`` with the ALiBi bias as a strided view, never materialised.

    The bias is Toeplitz: it depends on ``j - i`` only, and a view with positive strides can only step along
    ``i + j``. With the keys (and values) in reverse order, key ``j'`` is position ``length - 1 - j'`` and
    ``|length - 1 - j' - i| = |(i + j') - (length - 1)|``, so rows [first, first + rows) of the bias are
    ``diagonals[h, first + i + j']``: strides (2 * length - 1, 1, 1) from offset ``first``. Reordering keys
    together with their values leaves attention unchanged.
    """
    # query, key, value: (1, heads, total, head_dim) -> (1, heads, total, head_dim)
    heads = query.shape[1]
    context = torch.empty_like(query)
    start = 0
    for length in filter(None, lengths):
        own = slice(start, start + length)
        keys, values = key[:, :, own].flip(2), value[:, :, own].flip(2)  # (1, heads, length, head_dim) each
        diagonals = alibi_diagonals(slopes, length, query.dtype)  # (heads, 2 * length - 1)
        for first in range(0, length, QUERY_BLOCK):
            rows = min(QUERY_BLOCK, length - first)
            bias = diagonals.as_strided((heads, rows, length), (2 * length - 1, 1, 1), first)  # a view
            block = slice(start + first, start + first + rows)
            context[:, :, block] = F.scaled_dot_product_attention(
                query[:, :, block], keys, values, attn_mask=bias[None]
            )
        start += length
    return context


@cache
def compiled_flex_attention() -> Callable[..., torch.Tensor]:
    from torch.nn.attention.flex_attention import flex_attention

    return torch.compile(flex_attention, dynamic=True)


def ordered_blocks(blocks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """A (q_blocks, kv_blocks) bool block map in BlockMask's ordered form: counts (1, 1, q_blocks) and kv block
    indices, those in the map first, (1, 1, q_blocks, kv_blocks)."""
    counts = blocks.sum(-1, dtype=torch.int32)
    indices = torch.argsort(blocks.to(torch.int32), dim=-1, descending=True, stable=True).to(torch.int32)
    return counts[None, None], indices[None, None]


def sequence_block_mask(sequence_ids: torch.Tensor, mask_mod: Callable[..., torch.Tensor]) -> BlockMask:
    """The block-diagonal BlockMask of a pack from its (total,) ascending sequence ids, without evaluating
    ``mask_mod`` on all (total, total) pairs: a query block meets a key block iff their sequence-id ranges
    overlap; the pair is full (no ``mask_mod`` needed) iff both are complete blocks of one and the same sequence."""
    from torch.nn.attention.flex_attention import BlockMask

    size = FLEX_BLOCK
    total = int(sequence_ids.numel())
    starts = torch.arange(0, total, size, device=sequence_ids.device)  # (blocks,)
    ends = torch.clamp(starts + size, max=total)
    first, last = sequence_ids[starts], sequence_ids[ends - 1]  # (blocks,) each
    meets = (first[:, None] <= last[None, :]) & (first[None, :] <= last[:, None])  # (q_blocks, kv_blocks)
    whole = (first == last) & (ends - starts == size)  # (blocks,): a complete block inside one sequence
    full = whole[:, None] & whole[None, :] & (first[:, None] == first[None, :])
    return BlockMask.from_kv_blocks(
        *ordered_blocks(meets & ~full),
        *ordered_blocks(full),
        BLOCK_SIZE=size,
        mask_mod=mask_mod,
        seq_lengths=(total, total),
    )


def flex_attend(slopes: torch.Tensor, lengths: Sequence[int], *, compiled: bool = True) -> Attend:
    from torch.nn.attention.flex_attention import flex_attention

    device = slopes.device
    sequence_ids = torch.repeat_interleave(
        torch.arange(len(lengths), device=device), torch.as_tensor(lengths, device=device)
    )  # (total,): which sequence each position of the pack belongs to

    def same_sequence(batch: torch.Tensor, head: torch.Tensor, q_idx: torch.Tensor, kv_idx: torch.Tensor):
        return sequence_ids[q_idx] == sequence_ids[kv_idx]

    def alibi(score: torch.Tensor, batch: torch.Tensor, head: torch.Tensor, q_idx: torch.Tensor, kv_idx: torch.Tensor):
        # within one sequence q_idx - kv_idx is the distance between its own positions: the offset cancels
        return score - slopes[head] * (q_idx - kv_idx).abs()

    run = compiled_flex_attention() if compiled else flex_attention
    return partial(run, score_mod=alibi, block_mask=sequence_block_mask(sequence_ids, same_sequence))
