"""Read-out turns: training questions whose answer spells out a whole list, grid row or scene.

A suite question has a one-word answer, so a training item supervises one choice of one token among
hundreds of prompt and visual tokens, and a model trained from scratch only gets that signal once per
item. Before it can answer such questions it must learn to attend to a chosen token at all (the
"induction" step), and with one supervised word per item that takes thousands of steps. A read-out
("Repeat the list.", "Read row 3.", "Name the objects.") supervises every token of its answer, each
a copy of one listed word or one visual token in reading order: the same attention, many times per
forward. In a text-only probe (docs/embedded-model.md), half of each batch being "Repeat the list."
items of their own made the copy attention appear within about 1,400 steps, where one-word questions
alone had not in two thousand. Asked as a later turn of the item's conversation it had not yet done so
after 1,148 steps of the one run made; as items of their own through the training script
(``as_readout_item``, ``--readout-items``) it did, and ``text_copy`` reached 67% in 3,000 steps.

Read-outs are training-only: turns asked after an item's own question about the same prompt and
images, or (``as_readout_item``) an item's own question replaced by one, as the probe did (train-split
items only); they never reach evaluation. Scenes are read row by row, left to
right, as their slots are laid out. Video items get none.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from hybridkv.data import TaskItem
from hybridkv.data.question import split_question

ReadOut = tuple[str, str]
# A read-out's image (1-based; TEXT for the prompt's list) and grid row (None off grids): where its words
# are, for lookup guidance.
Place = tuple[int, int | None]
TEXT = 0

# Prompt forms, shared by the generators below and the tokenizer's corpus (readout_prompts).
_REPEAT = "Repeat the list."
_READ_ROW = "Read row {row}."
_READ_IMAGE_ROW = "In image {image}, read row {row}."
_NAME = "Name the objects."
_NAME_IN_IMAGE = "In image {image}, name the objects."


def _objects(objects: Sequence[Mapping[str, Any]]) -> str:
    ordered = sorted(objects, key=lambda o: (o["row"], o["col"]))
    return " ".join(f"{o['colour']} {o['shape']}" for o in ordered)


def _text_copy(meta: Mapping[str, Any], rng: np.random.Generator) -> tuple[str, str, Place]:
    return _REPEAT, " ".join(meta["words"]), (TEXT, 1)


def _grid_row(cells: Sequence[Sequence[str]], row: int) -> str:
    return " ".join(cells[row - 1])


def _grid(meta: Mapping[str, Any], rng: np.random.Generator) -> tuple[str, str, Place]:
    cells = meta["grid"]["cells"]
    row = int(rng.integers(len(cells))) + 1
    return _READ_ROW.format(row=row), _grid_row(cells, row), (1, row)


def _long_mixed(meta: Mapping[str, Any], rng: np.random.Generator) -> tuple[str, str, Place]:
    image = int(rng.integers(len(meta["grids"]))) + 1
    cells = meta["grids"][image - 1]["cells"]
    row = int(rng.integers(len(cells))) + 1
    return _READ_IMAGE_ROW.format(image=image, row=row), _grid_row(cells, row), (image, row)


def _scene(meta: Mapping[str, Any], rng: np.random.Generator) -> ReadOut:
    return _NAME, _objects(meta["objects"])


def _multi_image(meta: Mapping[str, Any], rng: np.random.Generator) -> tuple[str, str, Place]:
    image = int(rng.integers(len(meta["images"]))) + 1
    return _NAME_IN_IMAGE.format(image=image), _objects(meta["images"][image - 1]["objects"]), (image, None)


# Each returns (prompt, answer) or, where the words' image is not the only one, (prompt, answer, place).
READOUTS: Mapping[str, Callable[[Mapping[str, Any], np.random.Generator], tuple[Any, ...]]] = {
    "text_copy": _text_copy,
    "grid": _grid,
    "long_mixed": _long_mixed,
    "attribute": _scene,
    "counting": _scene,
    "multi_image": _multi_image,
}


def readouts(item: TaskItem, n: int, rng: np.random.Generator) -> list[ReadOut]:
    """Up to ``n`` distinct read-out (prompt, answer) pairs about ``item``'s prompt and images."""
    return [(prompt, answer) for prompt, answer, _ in _draw(item, n, rng)]


def _draw(item: TaskItem, n: int, rng: np.random.Generator) -> list[tuple[str, str, Place | None]]:
    make = READOUTS.get(item.task)
    if make is None or n <= 0 or item.split != "train":
        return []
    out: list[tuple[str, str, Place | None]] = []
    for _ in range(4 * n):  # repeats (the same row drawn twice) are skipped
        prompt, answer, *place = make(item.meta, rng)
        drawn = (prompt, answer, place[0] if place else None)
        if answer and drawn not in out:
            out.append(drawn)
        if len(out) == n:
            break
    return out


def as_readout_item(item: TaskItem, rng: np.random.Generator) -> TaskItem | None:
    """``item`` asked one read-out in place of its own question (same context and images), or None if its
    task has none. The read-out's (image, row) is kept in the item's meta as ``readout`` (None where it has
    no one place)."""
    drawn = _draw(item, 1, rng)
    if not drawn:
        return None
    (prompt, answer, place) = drawn[0]
    context, _ = split_question(item.prompt)
    joint = "" if not context or context.endswith("\n") else " "
    meta = {**item.meta, "readout": None if place is None else {"image": place[0], "row": place[1]}}
    return replace(item, prompt=context + joint + prompt, answer=answer, meta=meta)


def readout_prompts() -> list[str]:
    """Every read-out prompt form, for the tokenizer's corpus."""
    forms = (_REPEAT, _READ_ROW, _READ_IMAGE_ROW, _NAME, _NAME_IN_IMAGE)
    return [form.format(image=1, row=1) for form in forms]
