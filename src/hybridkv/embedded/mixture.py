"""What the embedded model is trained on: a weighted mixture of the suite's tasks, drawn per step.

Items are generated on the fly from the train split with a seed derived from (run seed, step, slot),
so no dataset is stored, a resumed run sees exactly the items an uninterrupted one would, and the
validation and test splits stay unseen by construction (the suite assigns splits by content).

``long_mixed`` is the expensive task (8-12 grid images, 2,000-3,000 visual tokens, ~30x a grid item),
so most of its practice comes from cheaper variants of the same task: fewer 8x8 grids (reading rows
and columns up to 8) and many 4x4 grids (finding image k among up to 12); the full size is drawn
rarely. Variants only change the task's options, so every item is still a train-split item.
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


@dataclass(frozen=True)
class Variant:
    """One entry of the mixture: a task with option overrides, drawn with probability ~ ``weight``."""

    name: str
    task: str
    weight: float
    options: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "options", MappingProxyType(dict(self.options)))


DEFAULT_MIXTURE: tuple[Variant, ...] = (
    Variant("grid", "grid", 3.0),
    Variant("multi_image", "multi_image", 2.0),
    Variant("counting", "counting", 2.0),
    Variant("attribute", "attribute", 1.0),
    Variant("text_copy", "text_copy", 1.0),
    Variant("video", "video", 2.0),
    Variant("long_mixed_few", "long_mixed", 1.0, {"min_images": 1, "max_images": 3}),
    Variant("long_mixed_small", "long_mixed", 1.0, {"min_images": 2, "max_images": 12, "rows": 4, "cols": 4}),
    Variant("long_mixed", "long_mixed", 0.2),
)


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


def draw_items(mixture: Sequence[Variant], seed: int, step: int, batch_size: int) -> list[tuple[str, TaskItem]]:
    """The train items of one step with the name of the variant each came from.

    Variants are drawn by weight from (seed, step); each item is generated from its own slot seed.
    """
    if not mixture:
        raise ConfigError("the training mixture is empty")
    weights = np.array([v.weight for v in mixture], dtype=np.float64)
    if (weights < 0).any() or weights.sum() <= 0:
        raise ConfigError("mixture weights must be non-negative with a positive sum")
    rng = np.random.default_rng([seed, step])
    picks = rng.choice(len(mixture), size=batch_size, p=weights / weights.sum())
    drawn = []
    for slot, index in enumerate(picks):
        variant = mixture[int(index)]
        (item,) = generate_items(variant.task, "train", 1, seed=item_seed(seed, step, slot), **variant.options)
        drawn.append((variant.name, item))
    return drawn
