"""Scenes of coloured shapes laid out on a coarse grid of slots.

Each object owns one slot (a square of whole 28 px blocks) and moves at most a few pixels inside
it, so objects never overlap, never straddle more blocks than needed, and stay countable.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from ..errors import ConfigError
from .drawing import blank, draw_shape, to_image
from .palette import BLOCK_PX, COLOURS
from .spec import require_int


def slots_per_side(image_blocks: int, slot_blocks: int) -> int:
    """How many slots fit along one side of the square image."""
    return image_blocks // slot_blocks


def object_px(slot_blocks: int) -> int:
    """Side of an object's bounding box: three quarters of its slot."""
    return BLOCK_PX * slot_blocks * 3 // 4


def _jitter_limit(slot_blocks: int) -> int:
    return max(0, (BLOCK_PX * slot_blocks - object_px(slot_blocks)) // 2 - 1)


def _margin(image_blocks: int, slot_blocks: int) -> int:
    side = slots_per_side(image_blocks, slot_blocks)
    return (image_blocks * BLOCK_PX - side * slot_blocks * BLOCK_PX) // 2


def place_objects(
    rng: np.random.Generator, kinds: Sequence[tuple[str, str]], image_blocks: int, slot_blocks: int
) -> list[dict[str, Any]]:
    """Put each (shape, colour) in its own random slot with a small random offset."""
    side = slots_per_side(image_blocks, slot_blocks)
    if len(kinds) > side * side:
        raise ValueError(f"{len(kinds)} objects do not fit in {side}x{side} slots")
    slots = rng.permutation(side * side)[: len(kinds)]
    limit = _jitter_limit(slot_blocks)
    objects = []
    for (shape, colour), slot in zip(kinds, slots, strict=True):
        dx, dy = (int(v) for v in rng.integers(-limit, limit + 1, size=2))
        objects.append(
            {
                "shape": shape,
                "colour": colour,
                "row": int(slot) // side,
                "col": int(slot) % side,
                "dx": dx,
                "dy": dy,
            }
        )
    return objects


def object_centre(obj: Mapping[str, Any], image_blocks: int, slot_blocks: int) -> tuple[int, int]:
    """Pixel centre (x, y) of an object in its image."""
    slot_px = BLOCK_PX * slot_blocks
    margin = _margin(image_blocks, slot_blocks)
    cx = margin + obj["col"] * slot_px + slot_px // 2 + obj["dx"]
    cy = margin + obj["row"] * slot_px + slot_px // 2 + obj["dy"]
    return cx, cy


def render_scene(objects: Sequence[Mapping[str, Any]], image_blocks: int, slot_blocks: int) -> Image.Image:
    """A square white image of `image_blocks` blocks per side with the objects drawn in."""
    side_px = image_blocks * BLOCK_PX
    image = to_image(blank(side_px, side_px))
    draw = ImageDraw.Draw(image)
    size = object_px(slot_blocks)
    for obj in objects:
        cx, cy = object_centre(obj, image_blocks, slot_blocks)
        draw_shape(draw, obj["shape"], cx, cy, size, COLOURS[obj["colour"]])
    return image


def validate_scene(task: str, options: Mapping[str, Any], max_objects: int) -> None:
    """Image and slot sizes in range, and room for `max_objects` objects."""
    image_blocks = require_int(task, options, "image_blocks", 2, 64)
    slot_blocks = require_int(task, options, "slot_blocks", 1, image_blocks)
    side = slots_per_side(image_blocks, slot_blocks)
    if max_objects > side * side:
        raise ConfigError(
            f"task {task!r}: up to {max_objects} objects need more than the {side}x{side} slots of "
            f"image_blocks={image_blocks}, slot_blocks={slot_blocks}; raise image_blocks or lower the counts"
        )
