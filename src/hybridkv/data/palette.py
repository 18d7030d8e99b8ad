"""Closed vocabularies of colours and shapes, and the pixel geometry every task shares.

Colours are far apart in RGB so that a tiny vision encoder can tell them apart from a single 28 px
token, and none of them is the background, the ink of glyphs or the grid lines.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

# Qwen2.5-VL: 14 px patches merged 2x2 -> one visual token per 28x28 block.
BLOCK_PX = 28
TEMPORAL_PATCH = 2

BACKGROUND: tuple[int, int, int] = (255, 255, 255)
INK: tuple[int, int, int] = (0, 0, 0)
GRID_LINE: tuple[int, int, int] = (190, 190, 190)
# Row and column headers of grids: dark grey numbers on light grey, unlike any cell content.
HEADER_FILL: tuple[int, int, int] = (225, 225, 225)
HEADER_INK: tuple[int, int, int] = (90, 90, 90)

COLOURS: Mapping[str, tuple[int, int, int]] = MappingProxyType(
    {
        "red": (230, 25, 25),
        "orange": (255, 140, 0),
        "yellow": (240, 210, 0),
        "green": (20, 160, 40),
        "cyan": (0, 190, 210),
        "blue": (30, 60, 230),
        "purple": (140, 40, 190),
        "pink": (255, 105, 180),
    }
)
COLOUR_NAMES: tuple[str, ...] = tuple(COLOURS)

SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "diamond", "cross", "star")
PLURALS: Mapping[str, str] = MappingProxyType(
    {
        "circle": "circles",
        "square": "squares",
        "triangle": "triangles",
        "diamond": "diamonds",
        "cross": "crosses",
        "star": "stars",
    }
)
