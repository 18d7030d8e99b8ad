"""`multi_image`: the colour of the one target shape in image k of several.

Every image holds one target shape, in a colour no other image's target has (up to eight images),
so the answer depends on keeping the tokens of the right image, not of any target in the context.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ..palette import COLOUR_NAMES, SHAPES
from ..scene import place_objects, render_scene, validate_scene
from ..spec import Meta, Options, Rendered, TaskSpec, pick, pick_distinct, require_choice, require_range

_TASK = "multi_image"


def _validate(options: Options) -> None:
    require_range(_TASK, options, "min_images", "max_images", 1, 32)
    require_range(_TASK, options, "min_distractors", "max_distractors", 0, 64)
    require_choice(_TASK, options, "target_shape", SHAPES)
    validate_scene(_TASK, options, options["max_distractors"] + 1)


def _sample(rng: np.random.Generator, options: Options) -> Meta:
    target = options["target_shape"]
    others = tuple(s for s in SHAPES if s != target)
    n = int(rng.integers(options["min_images"], options["max_images"] + 1))
    distinct = pick_distinct(rng, COLOUR_NAMES, min(n, len(COLOUR_NAMES)))
    target_colours = distinct + [pick(rng, COLOUR_NAMES) for _ in range(n - len(distinct))]
    images = []
    for colour in target_colours:
        n_distractors = int(rng.integers(options["min_distractors"], options["max_distractors"] + 1))
        kinds = [(target, colour)]
        kinds += [(pick(rng, others), pick(rng, COLOUR_NAMES)) for _ in range(n_distractors)]
        images.append({"objects": place_objects(rng, kinds, options["image_blocks"], options["slot_blocks"])})
    return {
        "image_blocks": options["image_blocks"],
        "slot_blocks": options["slot_blocks"],
        "shape": target,
        "images": images,
        "image": int(rng.integers(n)) + 1,
    }


def _question(meta: Mapping[str, Any]) -> tuple[str, str]:
    images = meta["images"]
    prompt = (
        f"You are given {len(images)} images. In image {meta['image']}, what colour is the {meta['shape']}? "
        "Answer with one word."
    )
    target = next(o for o in images[meta["image"] - 1]["objects"] if o["shape"] == meta["shape"])
    return prompt, target["colour"]


def _render(meta: Mapping[str, Any]) -> Rendered:
    rendered = tuple(
        render_scene(image["objects"], meta["image_blocks"], meta["slot_blocks"]) for image in meta["images"]
    )
    return Rendered(*_question(meta), rendered, None)


SPEC = TaskSpec(
    name=_TASK,
    defaults={
        "min_images": 3,
        "max_images": 8,
        "min_distractors": 1,
        "max_distractors": 3,
        "target_shape": "square",
        "image_blocks": 6,
        "slot_blocks": 2,
    },
    sample=_sample,
    render=_render,
    question=_question,
    vocabulary=lambda options: frozenset(COLOUR_NAMES),
    validate=_validate,
    key_exclude=frozenset({"image_blocks", "slot_blocks", "dx", "dy"}),
)
