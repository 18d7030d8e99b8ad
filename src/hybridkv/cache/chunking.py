"""How a dynamic head's cold tokens are cut into chunks: runs of positions, or square tiles of an image.

Retrieval fetches whole chunks, so a chunk should hold tokens that are needed together. Text is read in
order, so its chunks are runs of consecutive positions (Quest's pages). An image's tokens are laid out
row after row; a run of ``chunk_size`` of them is a thin horizontal strip, and a compact object (a grid
cell, a face, a word on a sign) spans several strips, each fetched for a few of its tokens. A square
tile of side ``isqrt(chunk_size)`` holds a compact region whole: an object of up to the tile's side, at
a tile-aligned place, is one chunk instead of two or more.

Tiles never cross images or frames, and text never shares a chunk with image tokens, so a chunk holds
fewer than ``chunk_size`` tokens at an image's edge or a text run's end (it is padded in the cold tier
and its padding is never attended). Attention does not depend on the order of the keys it reads, so
regrouping changes which tokens travel together, never an attended token's contribution.
"""

from __future__ import annotations

import math

import torch

from .chunk_store import runs_of

CHUNK_SHAPES = ("tiles", "sequence")
_FIELD = 1 << 20  # room for image ids, tile rows and text runs in one integer key


def tile_side(chunk_size: int) -> int:
    """Side of the square tile a chunk of ``chunk_size`` tokens holds (its area may be less)."""
    return max(1, math.isqrt(chunk_size))


def chunk_groups(
    positions: torch.Tensor, layout: torch.Tensor | None, chunk_size: int
) -> tuple[torch.Tensor, list[int]]:
    """Order ``positions`` (ascending prompt positions of one head's cold body) chunk by chunk.

    ``layout`` is ``[L, 3]`` for the prompt: (image, row, column) of each visual token in its image's
    grid of tokens (image ids distinct per image and per video frame), -1 for text. Returns the positions
    in chunk order and each chunk's size (<= ``chunk_size``); chunks come in the order of their first
    position, and a chunk's tokens in position order. Without a layout, runs of ``chunk_size``.
    """
    n = positions.shape[0]
    if layout is None or n == 0:
        return positions, runs_of(n, chunk_size)
    where = layout.to(positions.device)[positions]  # [n, 3]
    visual = where[:, 0] >= 0
    side = tile_side(chunk_size)
    tile = (where[:, 0] * _FIELD + torch.div(where[:, 1], side, rounding_mode="floor")) * _FIELD + torch.div(
        where[:, 2], side, rounding_mode="floor"
    )
    # text: a new run starts after anything that is not text; each run is cut every chunk_size tokens
    index = torch.arange(n, device=positions.device)
    starts = ~visual & torch.cat([torch.ones(1, dtype=torch.bool, device=visual.device), visual[:-1]])
    run = torch.cumsum(starts.long(), 0)
    run_start = torch.zeros(n + 1, dtype=torch.long, device=positions.device)
    run_start.scatter_(0, run[starts], index[starts])
    piece = torch.div(index - run_start[run], chunk_size, rounding_mode="floor")
    text_key = -(run * _FIELD + piece) - 1
    key = torch.where(visual, tile, text_key)
    _, group = torch.unique(key, return_inverse=True)
    first = torch.full((int(group.max()) + 1,), n, dtype=torch.long, device=positions.device)
    first.scatter_reduce_(0, group, index, reduce="amin")
    rank = torch.empty_like(first)
    rank[first.argsort()] = torch.arange(first.shape[0], device=positions.device)
    chunk_of = rank[group]
    order = chunk_of.argsort(stable=True)  # positions were ascending: each chunk stays in position order
    return positions[order], torch.bincount(chunk_of, minlength=first.shape[0]).tolist()
