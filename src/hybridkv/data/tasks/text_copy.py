"""`text_copy`: copy item k of a numbered list given in the prompt.

The answer lives in the text, not in the image: a method that spends its budget on visual tokens
and evicts prompt text fails here. Half of the items carry an unrelated image to tempt it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ..palette import COLOUR_NAMES, SHAPES
from ..scene import place_objects, render_scene, validate_scene
from ..spec import Meta, Options, Rendered, TaskSpec, pick, pick_distinct, require_probability, require_range

_TASK = "text_copy"

WORDS: tuple[str, ...] = (
    "anchor", "apple", "banana", "barrel", "basket", "bottle", "bridge", "button",
    "cactus", "camera", "candle", "carpet", "castle", "cherry", "cotton", "donkey",
    "dragon", "engine", "falcon", "feather", "forest", "garden", "guitar", "hammer",
    "helmet", "island", "jacket", "jungle", "kettle", "kitten", "ladder", "lemon",
    "lizard", "magnet", "marble", "mirror", "muffin", "needle", "onion", "parrot",
    "pencil", "pepper", "pillow", "planet", "pocket", "puzzle", "rabbit", "ribbon",
    "river", "rocket", "saddle", "salmon", "spoon", "tiger", "tomato", "tunnel",
    "turtle", "velvet", "violin", "wagon", "wallet", "walnut", "window", "zipper",
)  # fmt: skip

_MAX_DISTRACTOR_OBJECTS = 4


def _validate(options: Options) -> None:
    require_range(_TASK, options, "min_items", "max_items", 1, len(WORDS))
    require_probability(_TASK, options, "distractor_prob")
    validate_scene(_TASK, options, _MAX_DISTRACTOR_OBJECTS)


def _sample(rng: np.random.Generator, options: Options) -> Meta:
    n = int(rng.integers(options["min_items"], options["max_items"] + 1))
    words = pick_distinct(rng, WORDS, n)
    distractor = None
    if rng.random() < options["distractor_prob"]:
        n_objects = int(rng.integers(1, _MAX_DISTRACTOR_OBJECTS + 1))
        kinds = [(pick(rng, SHAPES), pick(rng, COLOUR_NAMES)) for _ in range(n_objects)]
        distractor = {
            "image_blocks": options["image_blocks"],
            "slot_blocks": options["slot_blocks"],
            "objects": place_objects(rng, kinds, options["image_blocks"], options["slot_blocks"]),
        }
    return {"words": words, "item": int(rng.integers(n)) + 1, "distractor": distractor}


def _question(meta: Mapping[str, Any]) -> tuple[str, str]:
    listing = "\n".join(f"{i}. {word}" for i, word in enumerate(meta["words"], start=1))
    prompt = f"Here is a list:\n{listing}\nWhat is item {meta['item']} of the list? Answer with one word."
    return prompt, meta["words"][meta["item"] - 1]


def _render(meta: Mapping[str, Any]) -> Rendered:
    prompt, answer = _question(meta)
    distractor = meta["distractor"]
    images = ()
    if distractor is not None:
        images = (render_scene(distractor["objects"], distractor["image_blocks"], distractor["slot_blocks"]),)
    return Rendered(prompt, answer, images, None)


SPEC = TaskSpec(
    name=_TASK,
    defaults={"min_items": 4, "max_items": 10, "distractor_prob": 0.5, "image_blocks": 6, "slot_blocks": 2},
    sample=_sample,
    render=_render,
    question=_question,
    vocabulary=lambda options: frozenset(WORDS),
    validate=_validate,
    key_exclude=frozenset({"distractor"}),
)
