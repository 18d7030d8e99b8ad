"""`counting`: how many objects of one colour and shape.

Distractors share either the colour or the shape of the target, so the count needs every matching
object's tokens and the binding of colour to shape, not one salient region.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ..palette import COLOUR_NAMES, PLURALS, SHAPES
from ..scene import place_objects, render_scene, validate_scene
from ..spec import Meta, Options, Rendered, TaskSpec, pick, require_choices, require_int, require_range

_TASK = "counting"


def _validate(options: Options) -> None:
    max_count = require_int(_TASK, options, "max_count", 0, 99)
    require_range(_TASK, options, "min_distractors", "max_distractors", 0, 99)
    require_choices(_TASK, options, "target_shapes", SHAPES)
    validate_scene(_TASK, options, max_count + options["max_distractors"])


def _distractor(rng: np.random.Generator, shape: str, colour: str) -> tuple[str, str]:
    """Same shape in another colour, same colour on another shape, or neither, one third each."""
    other_shapes = tuple(s for s in SHAPES if s != shape)
    other_colours = tuple(c for c in COLOUR_NAMES if c != colour)
    mode = int(rng.integers(3))
    if mode == 0:
        return shape, pick(rng, other_colours)
    if mode == 1:
        return pick(rng, other_shapes), colour
    return pick(rng, other_shapes), pick(rng, other_colours)


def _sample(rng: np.random.Generator, options: Options) -> Meta:
    shape = pick(rng, tuple(options["target_shapes"]))
    colour = pick(rng, COLOUR_NAMES)
    count = int(rng.integers(options["max_count"] + 1))
    n_distractors = int(rng.integers(options["min_distractors"], options["max_distractors"] + 1))
    kinds = [(shape, colour)] * count + [_distractor(rng, shape, colour) for _ in range(n_distractors)]
    return {
        "image_blocks": options["image_blocks"],
        "slot_blocks": options["slot_blocks"],
        "shape": shape,
        "colour": colour,
        "objects": place_objects(rng, kinds, options["image_blocks"], options["slot_blocks"]),
    }


def count_matches(meta: Mapping[str, Any]) -> int:
    """The answer, recounted from the objects."""
    return sum(o["shape"] == meta["shape"] and o["colour"] == meta["colour"] for o in meta["objects"])


def _question(meta: Mapping[str, Any]) -> tuple[str, str]:
    prompt = f"How many {meta['colour']} {PLURALS[meta['shape']]} are there? Answer with a number."
    return prompt, str(count_matches(meta))


def _render(meta: Mapping[str, Any]) -> Rendered:
    image = render_scene(meta["objects"], meta["image_blocks"], meta["slot_blocks"])
    return Rendered(*_question(meta), (image,), None)


SPEC = TaskSpec(
    name=_TASK,
    defaults={
        "max_count": 6,
        "min_distractors": 2,
        "max_distractors": 6,
        "target_shapes": ("circle",),
        "image_blocks": 8,
        "slot_blocks": 2,
    },
    sample=_sample,
    render=_render,
    question=_question,
    vocabulary=lambda options: frozenset(str(i) for i in range(options["max_count"] + 1)),
    validate=_validate,
    key_exclude=frozenset({"image_blocks", "slot_blocks", "dx", "dy"}),
)
