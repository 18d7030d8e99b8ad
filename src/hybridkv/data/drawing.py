"""Pixel primitives: shapes via PIL, glyphs via numpy masks.

PIL's rasteriser without anti-aliasing and integer geometry keep every image byte-identical across
runs, which is what makes items reproducible from their seed and re-renderable from their meta.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageDraw

from .glyphs import GLYPH_COLS, GLYPH_ROWS, glyph_mask
from .palette import BACKGROUND, SHAPES

RGB = tuple[int, int, int]


def blank(width: int, height: int) -> np.ndarray:
    """A white RGB canvas as a writable uint8 array (rows, cols, 3)."""
    canvas = np.empty((height, width, 3), dtype=np.uint8)
    canvas[:] = BACKGROUND
    return canvas


def to_image(canvas: np.ndarray) -> Image.Image:
    """A plain RGB image (no file metadata) so that images compare equal after a PNG round trip."""
    return Image.fromarray(np.ascontiguousarray(canvas), mode="RGB")


def glyph_box_scale(cell_px: int) -> int:
    """Font pixel size: the glyph fills about three quarters of the cell's height."""
    return max(1, (cell_px * 3 // 4) // GLYPH_ROWS)


def paint_glyph(canvas: np.ndarray, symbol: str, x0: int, y0: int, cell_px: int, colour: RGB) -> None:
    """Paint `symbol` centred in the square cell whose top-left corner is (x0, y0)."""
    scale = glyph_box_scale(cell_px)
    mask = glyph_mask(symbol, scale)
    ox = x0 + (cell_px - GLYPH_COLS * scale) // 2
    oy = y0 + (cell_px - GLYPH_ROWS * scale) // 2
    region = canvas[oy : oy + mask.shape[0], ox : ox + mask.shape[1]]
    region[mask] = colour


def _star(cx: float, cy: float, r: float) -> list[tuple[float, float]]:
    points = []
    for i in range(10):
        radius = r if i % 2 == 0 else r * 0.45
        angle = -math.pi / 2 + i * math.pi / 5
        points.append((cx + radius * math.cos(angle), cy + radius * math.sin(angle)))
    return points


def draw_shape(draw: ImageDraw.ImageDraw, shape: str, cx: int, cy: int, size: int, colour: RGB) -> None:
    """Draw a filled shape inside the `size` x `size` box centred on (cx, cy).

    The centre pixel of every shape is filled, so a shape's colour can be read at its centre.
    """
    half = size // 2
    left, top, right, bottom = cx - half, cy - half, cx - half + size - 1, cy - half + size - 1
    if shape == "circle":
        draw.ellipse((left, top, right, bottom), fill=colour)
    elif shape == "square":
        inset = size // 10
        draw.rectangle((left + inset, top + inset, right - inset, bottom - inset), fill=colour)
    elif shape == "triangle":
        draw.polygon([(cx, top), (right, bottom), (left, bottom)], fill=colour)
    elif shape == "diamond":
        draw.polygon([(cx, top), (right, cy), (cx, bottom), (left, cy)], fill=colour)
    elif shape == "cross":
        arm = max(1, size // 6)
        draw.rectangle((cx - arm, top, cx + arm, bottom), fill=colour)
        draw.rectangle((left, cy - arm, right, cy + arm), fill=colour)
    elif shape == "star":
        draw.polygon(_star(cx, cy, (size - 1) / 2), fill=colour)
    else:
        raise ValueError(f"unknown shape {shape!r}; expected one of {', '.join(SHAPES)}")
