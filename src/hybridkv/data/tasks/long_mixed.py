"""`long_mixed`: one cell of one grid among many grid images.

Thousands of visual tokens, of which the answer needs a handful in one image: this is the setting
where a KV budget bites, and where keeping tokens of the wrong image fails outright.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ..spec import Meta, Options, Rendered, TaskSpec, require_range
from .grid import KINDS, grid_vocabulary, render_grid, sample_grid, validate_grid


def _validate(options: Options) -> None:
    validate_grid("long_mixed", options)
    require_range("long_mixed", options, "min_images", "max_images", 1, 64)


def _sample(rng: np.random.Generator, options: Options) -> Meta:
    n = int(rng.integers(options["min_images"], options["max_images"] + 1))
    kinds = tuple(options["kinds"])
    grids = [sample_grid(rng, options["rows"], options["cols"], kinds) for _ in range(n)]
    return {
        "cell_blocks": options["cell_blocks"],
        "grids": grids,
        "image": int(rng.integers(n)) + 1,
        "row": int(rng.integers(options["rows"])) + 1,
        "col": int(rng.integers(options["cols"])) + 1,
    }


def _question(meta: Mapping[str, Any]) -> tuple[str, str]:
    grids = meta["grids"]
    rows, cols = len(grids[0]["cells"]), len(grids[0]["cells"][0])
    prompt = (
        f"You are given {len(grids)} images, each showing a grid of {rows} rows and {cols} columns. "
        f"In image {meta['image']}, what is in row {meta['row']}, column {meta['col']}? "
        "Answer with one word or number."
    )
    return prompt, grids[meta["image"] - 1]["cells"][meta["row"] - 1][meta["col"] - 1]


def _render(meta: Mapping[str, Any]) -> Rendered:
    images = tuple(render_grid(grid, meta["cell_blocks"]) for grid in meta["grids"])
    return Rendered(*_question(meta), images, None)


SPEC = TaskSpec(
    name="long_mixed",
    defaults={"min_images": 8, "max_images": 12, "rows": 8, "cols": 8, "cell_blocks": 2, "kinds": KINDS},
    sample=_sample,
    render=_render,
    question=_question,
    vocabulary=lambda options: grid_vocabulary(tuple(options["kinds"])),
    validate=_validate,
    key_exclude=frozenset({"cell_blocks"}),
)
