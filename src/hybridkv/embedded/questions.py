"""Follow-up questions about the same images, to get more supervision out of each training forward.

A training item's images cost most of its forward pass (hundreds of visual tokens) and its answer is a
single token, so one question per image gives the vision tower very little signal per second of CPU.
Asking several questions about the same images in one conversation (turn 1 exactly as at evaluation,
later turns as follow-ups) multiplies the supervised tokens at almost no extra cost.

A follow-up changes only what is asked (which cell, which image, which object, which list item), never
the images. The suite assigns splits by content, and what is asked is part of the content, so every
follow-up is checked to be a train-split item before it is used: no validation or test question is
ever trained on. A video follow-up asks about another object of the same clip that the same question
fits (one that appears after the first frame, or one that moves); most clips have none.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

import numpy as np

from hybridkv.data import TaskItem, content_key, question_of
from hybridkv.data.seeding import split_of

Meta = dict[str, Any]


def _grid(meta: Mapping[str, Any], rng: np.random.Generator) -> Meta:
    cells = meta["grid"]["cells"]
    return {**meta, "row": int(rng.integers(len(cells))) + 1, "col": int(rng.integers(len(cells[0]))) + 1}


def _long_mixed(meta: Mapping[str, Any], rng: np.random.Generator) -> Meta:
    cells = meta["grids"][0]["cells"]
    return {
        **meta,
        "image": int(rng.integers(len(meta["grids"]))) + 1,
        "row": int(rng.integers(len(cells))) + 1,
        "col": int(rng.integers(len(cells[0]))) + 1,
    }


def _multi_image(meta: Mapping[str, Any], rng: np.random.Generator) -> Meta:
    return {**meta, "image": int(rng.integers(len(meta["images"]))) + 1}


def _attribute(meta: Mapping[str, Any], rng: np.random.Generator) -> Meta:
    return {
        **meta,
        "target": int(rng.integers(len(meta["objects"]))),
        "ask": ("colour", "shape")[int(rng.integers(2))],
    }


def _counting(meta: Mapping[str, Any], rng: np.random.Generator) -> Meta:
    objects = meta["objects"]
    if objects and rng.random() < 0.75:  # mostly kinds that are present, so counts are not mostly zero
        chosen = objects[int(rng.integers(len(objects)))]
        return {**meta, "shape": chosen["shape"], "colour": chosen["colour"]}
    return dict(meta)


def _text_copy(meta: Mapping[str, Any], rng: np.random.Generator) -> Meta:
    return {**meta, "item": int(rng.integers(len(meta["words"]))) + 1}


def _video(meta: Mapping[str, Any], rng: np.random.Generator) -> Meta:
    """Another object of the clip becomes the asked one (object 0), if the clip's question fits it."""
    objects = meta["objects"]
    if meta["question"] == "appear":
        fits = [i for i, o in enumerate(objects) if i and o["start"] > 0]
    else:
        fits = [i for i, o in enumerate(objects) if i and (o["vx"] or o["vy"])]
    if not fits:
        return dict(meta)
    chosen = fits[int(rng.integers(len(fits)))]
    return {**meta, "objects": [objects[chosen], *(o for i, o in enumerate(objects) if i != chosen)]}


REASK: Mapping[str, Callable[[Mapping[str, Any], np.random.Generator], Meta]] = {
    "grid": _grid,
    "long_mixed": _long_mixed,
    "multi_image": _multi_image,
    "attribute": _attribute,
    "counting": _counting,
    "text_copy": _text_copy,
    "video": _video,
}


def follow_ups(item: TaskItem, n: int, rng: np.random.Generator) -> list[TaskItem]:
    """Up to ``n`` questions about ``item``'s images, each a different train-split question, as ``item``
    with that question's prompt, answer and meta (so what the answer is read off is known too)."""
    reask = REASK.get(item.task)
    if reask is None or n <= 0:
        return []
    seen = {content_key(item.task, item.meta)}
    out: list[TaskItem] = []
    for _ in range(4 * n):  # a few rejected draws (other splits, repeats) are expected
        meta = reask(item.meta, rng)
        key = content_key(item.task, meta)
        if key in seen or split_of(item.task, key) != "train":
            continue
        seen.add(key)
        prompt, answer = question_of(item.task, meta)
        out.append(replace(item, prompt=prompt, answer=answer, meta=meta))
        if len(out) == n:
            break
    return out
