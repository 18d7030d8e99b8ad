"""What the embedded model is trained on: a weighted mixture of the suite's tasks, drawn per step.

Items are generated on the fly from the train split with a seed derived from (run seed, step, slot),
so no dataset is stored, a resumed run sees exactly the items an uninterrupted one would, and the
validation and test splits stay unseen by construction (the suite assigns splits by content).

A model this small trained from scratch sits on a plateau (answering every question with the task's
most common answer) until it learns to look at the right tokens. Easy variants of each task (one or
two objects, 3x3 grids, short lists, two or three images) get it off that plateau several times
sooner, so the mixture starts with them (and most of all with the colour of a lone object, the easiest
question answered only by the pixels) and shifts, over the first ``CURRICULUM`` of the run, to the
suite's default difficulty, keeping a little of the easy variants to the end.

``long_mixed`` is the expensive task (8-12 grid images, 2,000-3,000 visual tokens, ~30x a grid item),
so most of its practice comes from cheaper variants of it: fewer 8x8 grids (reading rows and
columns up to 8) and many 4x4 grids (finding image k among up to 12); the full size is drawn rarely.
Variants only change a task's options, so every item is still a train-split item.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import numpy as np

from hybridkv.data import TASKS, TaskItem, generate_items
from hybridkv.errors import ConfigError

# Fraction of the run over which weights move from ``start_weight`` to ``weight``.
CURRICULUM = 0.3


@dataclass(frozen=True)
class Variant:
    """One entry of the mixture: a task with option overrides.

    It is drawn with probability proportional to ``start_weight`` at step 0, moving linearly to
    ``weight`` once the run is ``CURRICULUM`` done (``start_weight`` None: constant ``weight``).
    """

    name: str
    task: str
    weight: float
    options: Mapping[str, Any] = field(default_factory=dict)
    start_weight: float | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "options", MappingProxyType(dict(self.options)))
        if self.weight < 0 or (self.start_weight is not None and self.start_weight < 0):
            raise ConfigError(f"mixture variant {self.name!r} has a negative weight")

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickled through the constructor (data workers receive the mixture; a read-only view cannot be)."""
        return (Variant, (self.name, self.task, self.weight, dict(self.options), self.start_weight))

    def weight_at(self, progress: float) -> float:
        """Weight at ``progress`` (0 = first step, 1 = last) of the run."""
        if self.start_weight is None:
            return self.weight
        t = min(1.0, max(0.0, progress) / CURRICULUM)
        return self.start_weight + (self.weight - self.start_weight) * t

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "task": self.task,
            "weight": self.weight,
            "start_weight": self.start_weight,
            "options": dict(self.options),
        }


# 4x4 grids: a quarter of the default's tokens per image, so up to 12 images stay cheap.
_SMALL_GRIDS: Mapping[str, int] = MappingProxyType({"min_images": 2, "max_images": 12, "rows": 4, "cols": 4})
# Later stages' cheaper long_mixed (4-8 full-size grids) and denser counting scenes (4+ distractors).
_MID_GRIDS: Mapping[str, int] = MappingProxyType({"min_images": 4, "max_images": 8})
_DENSE_COUNTS: Mapping[str, int] = MappingProxyType({"min_distractors": 4})

DEFAULT_MIXTURE: tuple[Variant, ...] = (
    # The first thing to learn is to look at the image at all: the colour of a lone object is the easiest
    # question whose answer is only in the pixels (a from-scratch model learns it in ~200 steps alone).
    Variant("colour_of_one", "attribute", 0.1, {"min_objects": 1, "max_objects": 1, "asks": ("colour",)}, 4.0),
    Variant("grid_3x3", "grid", 0.5, {"rows": 3, "cols": 3}, start_weight=3.0),
    Variant("grid", "grid", 3.0, start_weight=0.5),
    Variant("attribute_1_2", "attribute", 0.25, {"min_objects": 1, "max_objects": 2}, start_weight=2.0),
    Variant("attribute", "attribute", 1.0, start_weight=0.5),
    Variant(
        "counting_small",
        "counting",
        0.25,
        {"max_count": 3, "min_distractors": 0, "max_distractors": 3},
        start_weight=2.0,
    ),
    Variant("counting", "counting", 2.0, start_weight=0.5),
    Variant("text_copy_short", "text_copy", 0.25, {"min_items": 2, "max_items": 4}, start_weight=1.5),
    Variant("text_copy", "text_copy", 1.0, start_weight=0.5),
    Variant("multi_image_2_3", "multi_image", 0.25, {"min_images": 2, "max_images": 3}, start_weight=1.5),
    Variant("multi_image", "multi_image", 2.0, start_weight=0.5),
    Variant("video", "video", 2.0, start_weight=1.0),
    Variant("long_mixed_few", "long_mixed", 1.0, {"min_images": 1, "max_images": 3}, start_weight=0.0),
    Variant("long_mixed_small", "long_mixed", 1.0, _SMALL_GRIDS, start_weight=0.25),
    Variant("long_mixed", "long_mixed", 0.2, start_weight=0.0),
)


# A second stage, started (``--init``) from a model trained on DEFAULT_MIXTURE: most of each batch goes to
# the tasks that mixture left below the bar (video, counting, attribute, and long_mixed at its full size,
# where the wrong image among 8-12 is the usual mistake), with some of every other task so that what was
# learned is kept. Constant weights: the model is already off the plateau.
WEAK_TASKS_MIXTURE: tuple[Variant, ...] = (
    Variant("video", "video", 4.0),
    Variant("counting", "counting", 3.0),
    Variant("attribute", "attribute", 2.0),
    Variant("long_mixed", "long_mixed", 1.0),
    Variant("long_mixed_mid", "long_mixed", 1.0, _MID_GRIDS),
    Variant("grid", "grid", 1.0),
    Variant("multi_image", "multi_image", 1.0),
    Variant("text_copy", "text_copy", 0.75),
)

# A third stage, from the second: video and counting were still far below the bar (their losses falling
# slowly), every other task at or near it. Video (per-frame first appearance, motion direction) and
# counting take two thirds of each batch; the rest keeps what the other tasks learned.
VIDEO_COUNTING_MIXTURE: tuple[Variant, ...] = (
    Variant("video", "video", 5.0),
    Variant("counting", "counting", 4.0),
    Variant("counting_dense", "counting", 1.0, _DENSE_COUNTS),
    Variant("long_mixed", "long_mixed", 1.0),
    Variant("long_mixed_mid", "long_mixed", 0.75, _MID_GRIDS),
    Variant("attribute", "attribute", 1.0),
    Variant("grid", "grid", 0.75),
    Variant("multi_image", "multi_image", 0.75),
    Variant("text_copy", "text_copy", 0.5),
)

# A fourth stage, from the third, with the derived words (``--count-words --motion-words``): counting gets
# the largest share, since a counting-only probe went from 67% to 89% of 64 validation counts in 400 steps
# (its control without count words reached 84%: the practice, more than the count words, made the gain);
# video stays high for the motion words.
DERIVED_WORDS_MIXTURE: tuple[Variant, ...] = (
    Variant("counting", "counting", 5.0),
    Variant("counting_dense", "counting", 1.0, _DENSE_COUNTS),
    Variant("video", "video", 4.0),
    Variant("long_mixed", "long_mixed", 1.0),
    Variant("long_mixed_mid", "long_mixed", 0.75, _MID_GRIDS),
    Variant("attribute", "attribute", 0.75),
    Variant("grid", "grid", 0.5),
    Variant("multi_image", "multi_image", 0.5),
    Variant("text_copy", "text_copy", 0.5),
)

# A sixth stage, from a video-only run that took video to 99.5% of 200 test clips and let the other
# tasks slip (multi_image 58%, long_mixed 74%, counting 44% of 50): counting keeps the largest share,
# the tasks that slipped most get more than in the fourth stage's mixture, and video a smaller one.
RECOVERY_MIXTURE: tuple[Variant, ...] = (
    Variant("counting", "counting", 4.0),
    Variant("counting_dense", "counting", 1.0, _DENSE_COUNTS),
    Variant("video", "video", 2.0),
    Variant("long_mixed", "long_mixed", 1.0),
    Variant("long_mixed_mid", "long_mixed", 1.0, _MID_GRIDS),
    Variant("multi_image", "multi_image", 1.5),
    Variant("grid", "grid", 1.0),
    Variant("attribute", "attribute", 1.0),
    Variant("text_copy", "text_copy", 1.0),
)

MIXTURES: Mapping[str, tuple[Variant, ...]] = MappingProxyType(
    {
        "default": DEFAULT_MIXTURE,
        "weak-tasks": WEAK_TASKS_MIXTURE,
        "video-counting": VIDEO_COUNTING_MIXTURE,
        "derived-words": DERIVED_WORDS_MIXTURE,
        "recovery": RECOVERY_MIXTURE,
    }
)


def named_mixture(name: str) -> tuple[Variant, ...]:
    """The mixture called ``name``, or a ConfigError naming the known ones."""
    if name not in MIXTURES:
        raise ConfigError(f"unknown mixture {name!r}; choose from {', '.join(MIXTURES)}")
    return MIXTURES[name]


def select(mixture: Sequence[Variant], tasks: Iterable[str] | None) -> tuple[Variant, ...]:
    """The variants of ``tasks`` (all when None), or a ConfigError naming what is valid."""
    if tasks is None:
        return tuple(mixture)
    wanted = tuple(tasks)
    unknown = sorted(set(wanted) - set(TASKS))
    if unknown:
        raise ConfigError(f"unknown task(s) {', '.join(unknown)}; choose from {', '.join(TASKS)}")
    chosen = tuple(v for v in mixture if v.task in wanted)
    if not chosen:
        raise ConfigError(f"no mixture variant trains {', '.join(wanted)}")
    return chosen


def item_seed(seed: int, step: int, slot: int) -> int:
    """A 62-bit data seed for one slot of one step, unrelated to neighbouring slots and steps."""
    digest = hashlib.blake2b(f"embedded-train\x1f{seed}\x1f{step}\x1f{slot}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 2


def draw_items(
    mixture: Sequence[Variant], seed: int, step: int, total_steps: int, batch_size: int
) -> list[tuple[str, TaskItem]]:
    """The train items of one step with the name of the variant each came from.

    Variants are drawn by their weight at this step from (seed, step); each item is generated from its
    own slot seed.
    """
    progress = step / max(1, total_steps - 1)
    weights = np.array([v.weight_at(progress) for v in mixture], dtype=np.float64)
    if not mixture or weights.sum() <= 0:
        raise ConfigError(f"the training mixture has no weight at step {step}; give some variant a weight")
    rng = np.random.default_rng([seed, step])
    picks = rng.choice(len(mixture), size=batch_size, p=weights / weights.sum())
    drawn = []
    for slot, index in enumerate(picks):
        variant = mixture[int(index)]
        (item,) = generate_items(variant.task, "train", 1, seed=item_seed(seed, step, slot), **variant.options)
        drawn.append((variant.name, item))
    return drawn
