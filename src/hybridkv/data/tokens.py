"""Visual token counts as Qwen2.5-VL's processor will produce them for our images.

Images are generated at multiples of 28 px, which the processor keeps as they are (within its pixel
limits), so the count is exact: one token per 28x28 block, video frames merged in pairs.
"""

from __future__ import annotations

import math

from .item import TaskItem
from .palette import BLOCK_PX, TEMPORAL_PATCH


def image_tokens(width: int, height: int, block_px: int = BLOCK_PX) -> int:
    """Tokens of one image of whole blocks."""
    return (width // block_px) * (height // block_px)


def visual_tokens(item: TaskItem, block_px: int = BLOCK_PX, temporal_patch: int = TEMPORAL_PATCH) -> int:
    """Visual tokens of all images plus the video of an item."""
    total = sum(image_tokens(*image.size, block_px) for image in item.images)
    if item.video:
        per_frame = image_tokens(*item.video[0].size, block_px)
        total += math.ceil(len(item.video) / temporal_patch) * per_frame
    return total
