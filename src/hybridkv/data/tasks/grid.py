"""`grid`: read one cell of a grid of glyphs.

The answer sits in one cell among rows x cols look-alikes, so a cache that keeps the wrong visual
tokens answers with a neighbour: the failure is visible and attributable to a position.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from ..drawing import blank, draw_shape, paint_glyph, to_image
from ..glyphs import DIGITS, LETTERS
from ..palette import BLOCK_PX, COLOUR_NAMES, COLOURS, GRID_LINE, HEADER_FILL, HEADER_INK, INK, SHAPES
from ..spec import Meta, Options, Rendered, TaskSpec, pick, require_choices, require_int

KINDS: tuple[str, ...] = ("digits", "letters", "shapes")
_SYMBOLS: Mapping[str, tuple[str, ...]] = MappingProxyType({"digits": DIGITS, "letters": LETTERS, "shapes": SHAPES})


def grid_vocabulary(kinds: tuple[str, ...]) -> frozenset[str]:
    """Every symbol a cell of these kinds can hold."""
    return frozenset(s for kind in kinds for s in _SYMBOLS[kind])


def sample_grid(rng: np.random.Generator, rows: int, cols: int, kinds: tuple[str, ...]) -> dict[str, Any]:
    """One grid's content: a kind, its cells and, for shapes, their colours."""
    kind = pick(rng, kinds)
    symbols = _SYMBOLS[kind]
    cells = [[symbols[int(i)] for i in row] for row in rng.integers(len(symbols), size=(rows, cols))]
    colours = None
    if kind == "shapes":
        colours = [[COLOUR_NAMES[int(i)] for i in row] for row in rng.integers(len(COLOUR_NAMES), size=(rows, cols))]
    return {"kind": kind, "cells": cells, "colours": colours}


def cell_colour(grid: Mapping[str, Any], row: int, col: int) -> tuple[int, int, int]:
    """Ink of a cell: the shape's colour, or black for digits and letters (0-based indices)."""
    colours = grid["colours"]
    return INK if colours is None else COLOURS[colours[row][col]]


def render_cell(symbol: str, colour: tuple[int, int, int], cell_px: int) -> Image.Image:
    """One cell alone, without grid lines, exactly as it appears inside a grid."""
    canvas = blank(cell_px, cell_px)
    if symbol in SHAPES:
        image = to_image(canvas)
        draw_shape(ImageDraw.Draw(image), symbol, cell_px // 2, cell_px // 2, cell_px * 3 // 4, colour)
        return image
    paint_glyph(canvas, symbol, 0, 0, cell_px, colour)
    return to_image(canvas)


def cell_origin(row: int, col: int, cell_blocks: int) -> tuple[int, int]:
    """Pixel (x, y) of the top-left corner of cell (row, col), 0-based, past the header row and column."""
    cell_px = cell_blocks * BLOCK_PX
    return (col + 1) * cell_px, (row + 1) * cell_px


def _paint_number(canvas: np.ndarray, number: int, x0: int, y0: int, cell_px: int) -> None:
    """A header label: the number's digits side by side, each in an equal share of the cell."""
    digits = str(number)
    width = cell_px // len(digits)
    for i, digit in enumerate(digits):
        paint_glyph(canvas, digit, x0 + i * width, y0 + (cell_px - width) // 2, width, HEADER_INK)


def render_grid(grid: Mapping[str, Any], cell_blocks: int) -> Image.Image:
    """The grid with light lines between cells, like a spreadsheet: row numbers down the left, column
    numbers along the top (shaded header cells), each cell cell_blocks x cell_blocks tokens.

    The headers make "row r, column c" readable from the image itself, as a printed table is.
    """
    cells = grid["cells"]
    rows, cols = len(cells), len(cells[0])
    cell_px = cell_blocks * BLOCK_PX
    canvas = blank((cols + 1) * cell_px, (rows + 1) * cell_px)
    canvas[:cell_px, :] = HEADER_FILL
    canvas[:, :cell_px] = HEADER_FILL
    for c in range(cols + 1):
        canvas[:, c * cell_px] = GRID_LINE
    for r in range(rows + 1):
        canvas[r * cell_px, :] = GRID_LINE
    canvas[:, -1] = GRID_LINE
    canvas[-1, :] = GRID_LINE
    for c in range(cols):
        _paint_number(canvas, c + 1, *cell_origin(-1, c, cell_blocks), cell_px)
    for r in range(rows):
        _paint_number(canvas, r + 1, *cell_origin(r, -1, cell_blocks), cell_px)
    if grid["kind"] != "shapes":
        for r in range(rows):
            for c in range(cols):
                paint_glyph(canvas, cells[r][c], *cell_origin(r, c, cell_blocks), cell_px, INK)
        return to_image(canvas)
    image = to_image(canvas)
    draw = ImageDraw.Draw(image)
    for r in range(rows):
        for c in range(cols):
            x0, y0 = cell_origin(r, c, cell_blocks)
            centre = (x0 + cell_px // 2, y0 + cell_px // 2)
            draw_shape(draw, cells[r][c], *centre, cell_px * 3 // 4, cell_colour(grid, r, c))
    return image


def validate_grid(task: str, options: Options) -> None:
    """Grid geometry and kinds shared by `grid` and `long_mixed`."""
    require_int(task, options, "rows", 1, 32)
    require_int(task, options, "cols", 1, 32)
    require_int(task, options, "cell_blocks", 1, 8)
    require_choices(task, options, "kinds", KINDS)


def _sample(rng: np.random.Generator, options: Options) -> Meta:
    grid = sample_grid(rng, options["rows"], options["cols"], tuple(options["kinds"]))
    return {
        "cell_blocks": options["cell_blocks"],
        "grid": grid,
        "row": int(rng.integers(options["rows"])) + 1,
        "col": int(rng.integers(options["cols"])) + 1,
    }


def _question(meta: Mapping[str, Any]) -> tuple[str, str]:
    grid = meta["grid"]
    rows, cols = len(grid["cells"]), len(grid["cells"][0])
    prompt = (
        f"The image shows a grid of {rows} rows and {cols} columns. "
        f"What is in row {meta['row']}, column {meta['col']}? Answer with one word or number."
    )
    return prompt, grid["cells"][meta["row"] - 1][meta["col"] - 1]


def _render(meta: Mapping[str, Any]) -> Rendered:
    return Rendered(*_question(meta), (render_grid(meta["grid"], meta["cell_blocks"]),), None)


SPEC = TaskSpec(
    name="grid",
    defaults={"rows": 6, "cols": 6, "cell_blocks": 2, "kinds": KINDS},
    sample=_sample,
    render=_render,
    question=_question,
    vocabulary=lambda options: grid_vocabulary(tuple(options["kinds"])),
    validate=lambda options: validate_grid("grid", options),
    key_exclude=frozenset({"cell_blocks"}),
)
