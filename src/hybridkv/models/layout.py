"""Where each visual token sits in its image: the layout that lets retrieval chunks be image tiles.

Qwen-VL processors report each image's patch grid (``image_grid_thw``: frames, rows, columns of
patches); the prompt holds one placeholder per merged ``m x m`` group of patches, row after row, frame
after frame, images in prompt order. Layouts are only trusted when every placeholder run matches the
grids exactly; anything else gives None, and chunks fall back to runs of positions.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import torch
from transformers import PretrainedConfig

TEXT = -1


def merged_grid_layout(inputs: Mapping[str, torch.Tensor], config: PretrainedConfig) -> torch.Tensor | None:
    """``[B, L, 3]``: (image, row, column) of each visual token in its grid of merged tokens, -1 for text.

    Image ids are distinct per image and per frame of a video, so no tile spans two of them.
    """
    input_ids = inputs.get("input_ids")
    merge = getattr(getattr(config, "vision_config", None), "spatial_merge_size", None)
    if not isinstance(input_ids, torch.Tensor) or input_ids.dim() != 2 or not merge:
        return None
    layout = torch.full((*input_ids.shape, 3), TEXT, dtype=torch.long)
    ids = input_ids.cpu()
    next_id = 0
    for grid_key, token_attr in (("image_grid_thw", "image_token_id"), ("video_grid_thw", "video_token_id")):
        grids, token_id = inputs.get(grid_key), getattr(config, token_attr, None)
        if grids is None or token_id is None:
            continue
        pending = iter(grids.cpu().tolist())
        for row in range(ids.shape[0]):
            for start, stop in _runs(ids[row] == token_id):
                while start < stop:  # adjacent visual inputs with no separator share one run
                    grid = next(pending, None)
                    if grid is None:
                        return None
                    frames, height, width = grid[0], grid[1] // merge, grid[2] // merge
                    n = frames * height * width
                    if start + n > stop:
                        return None
                    index = torch.arange(n)
                    layout[row, start : start + n, 0] = next_id + index // (height * width)
                    layout[row, start : start + n, 1] = (index % (height * width)) // width
                    layout[row, start : start + n, 2] = index % width
                    next_id += frames
                    start += n
        if next(pending, None) is not None:
            return None
    return layout.to(input_ids.device)


def _runs(mask: torch.Tensor) -> Iterator[tuple[int, int]]:
    """(start, stop) of each run of True in a 1-D mask."""
    edge = torch.zeros(1, dtype=torch.int8)
    edges = torch.diff(torch.cat([edge, mask.to(torch.int8), edge]))
    starts = (edges == 1).nonzero().flatten().tolist()
    stops = (edges == -1).nonzero().flatten().tolist()
    yield from zip(starts, stops, strict=True)
