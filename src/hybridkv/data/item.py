"""The unit of the task suite: one prompt, its visual inputs and the short answer."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from PIL import Image


@dataclass(frozen=True)
class TaskItem:
    """One benchmark item.

    Images are referenced by order in the prompt ("image 3"); the model adapter inserts its own
    placeholders, so the prompt stays model-agnostic. `meta` holds the full content the images were
    rendered from, so an item can be re-rendered and its answer re-derived for checks and analysis.
    """

    id: str
    task: str
    split: str
    prompt: str
    answer: str
    images: tuple[Image.Image, ...]
    video: tuple[Image.Image, ...] | None
    meta: dict[str, Any]
