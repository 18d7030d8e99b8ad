"""`attribute`: bind a colour to a shape or a shape to a colour in one scene.

Shapes and colours are each unique within the image, so the question names exactly one object and
the answer is the other attribute of that object.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ..palette import COLOUR_NAMES, SHAPES
from ..scene import place_objects, render_scene, validate_scene
from ..spec import Meta, Options, Rendered, TaskSpec, pick, pick_distinct, require_choices, require_range

_TASK = "attribute"
ASKS: tuple[str, ...] = ("colour", "shape")


def _validate(options: Options) -> None:
    limit = min(len(SHAPES), len(COLOUR_NAMES))
    require_range(_TASK, options, "min_objects", "max_objects", 1, limit)
    validate_scene(_TASK, options, options["max_objects"])
    require_choices(_TASK, options, "asks", ASKS)


def _sample(rng: np.random.Generator, options: Options) -> Meta:
    n = int(rng.integers(options["min_objects"], options["max_objects"] + 1))
    kinds = list(zip(pick_distinct(rng, SHAPES, n), pick_distinct(rng, COLOUR_NAMES, n), strict=True))
    return {
        "image_blocks": options["image_blocks"],
        "slot_blocks": options["slot_blocks"],
        "objects": place_objects(rng, kinds, options["image_blocks"], options["slot_blocks"]),
        "ask": pick(rng, tuple(options["asks"])),
        "target": int(rng.integers(n)),
    }


def _question(meta: Mapping[str, Any]) -> tuple[str, str]:
    target = meta["objects"][meta["target"]]
    if meta["ask"] == "colour":
        return f"What colour is the {target['shape']}? Answer with one word.", target["colour"]
    return f"What shape is {target['colour']}? Answer with one word.", target["shape"]


def _render(meta: Mapping[str, Any]) -> Rendered:
    image = render_scene(meta["objects"], meta["image_blocks"], meta["slot_blocks"])
    return Rendered(*_question(meta), (image,), None)


SPEC = TaskSpec(
    name=_TASK,
    defaults={"min_objects": 3, "max_objects": 5, "asks": ASKS, "image_blocks": 6, "slot_blocks": 2},
    sample=_sample,
    render=_render,
    question=_question,
    vocabulary=lambda options: frozenset(
        name for ask in options["asks"] for name in (COLOUR_NAMES if ask == "colour" else SHAPES)
    ),
    validate=_validate,
    key_exclude=frozenset({"image_blocks", "slot_blocks", "dx", "dy"}),
)
