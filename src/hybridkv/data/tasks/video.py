"""`video`: when does an object first appear, or which way does it move.

Both answers need the time axis: one frame's tokens are not enough, and a decoy that shares the
target's shape or colour appears at another time or moves another way, so that a cache keeping the
wrong frames, or a blurred summary of all of them, answers wrongly.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from ...errors import ConfigError
from ..drawing import blank, draw_shape, to_image
from ..frames import as_clip
from ..palette import BLOCK_PX, COLOUR_NAMES, COLOURS, SHAPES
from ..spec import (
    Meta,
    Options,
    Rendered,
    TaskSpec,
    pick,
    require_choice,
    require_choices,
    require_int,
    require_range,
)

_TASK = "video"
QUESTIONS: tuple[str, ...] = ("appear", "motion")
DIRECTIONS: Mapping[str, tuple[int, int]] = MappingProxyType(
    {"left": (-1, 0), "right": (1, 0), "up": (0, -1), "down": (0, 1)}
)
_GAP = 2
_PLACEMENT_TRIES = 200


def object_px(frame_blocks: int) -> int:
    """Objects are about a sixth of the frame, rounded to an even number of pixels."""
    return max(8, (frame_blocks * BLOCK_PX // 6) // 2 * 2)


def motion_step(frame_blocks: int, n_frames: int) -> int:
    """Pixels per frame: at most half a block, small enough for the path to fit in the frame."""
    room = frame_blocks * BLOCK_PX - object_px(frame_blocks) - 2 * _GAP - 1
    return min(BLOCK_PX // 2, room // max(1, n_frames - 1))


def position(obj: Mapping[str, Any], frame: int) -> tuple[int, int]:
    """Centre of the object in a frame (0-based)."""
    return obj["cx"] + obj["vx"] * frame, obj["cy"] + obj["vy"] * frame


def _validate(options: Options) -> None:
    require_range(_TASK, options, "min_frames", "max_frames", 2, 64)
    require_range(_TASK, options, "min_distractors", "max_distractors", 0, 16)
    require_choices(_TASK, options, "questions", QUESTIONS)
    require_choice(_TASK, options, "appear_shape", SHAPES)
    require_choice(_TASK, options, "motion_shape", SHAPES)
    frame_blocks = require_int(_TASK, options, "frame_blocks", 3, 64)
    if motion_step(frame_blocks, options["max_frames"]) < 2:
        raise ConfigError(
            f"task {_TASK!r}: {options['max_frames']} frames of {frame_blocks} blocks leave no room for "
            "visible motion; raise frame_blocks or lower max_frames"
        )


def _box(cx: int, cy: int, size: int) -> tuple[int, int, int, int]:
    half = size // 2
    return cx - half - _GAP, cy - half - _GAP, cx - half + size - 1 + _GAP, cy - half + size - 1 + _GAP


def _collides(obj: Mapping[str, Any], others: Sequence[Mapping[str, Any]], n_frames: int, size: int) -> bool:
    for frame in range(n_frames):
        if frame < obj["start"]:
            continue
        a = _box(*position(obj, frame), size)
        for other in others:
            if frame < other["start"]:
                continue
            b = _box(*position(other, frame), size)
            if a[0] <= b[2] and b[0] <= a[2] and a[1] <= b[3] and b[1] <= a[3]:
                return True
    return False


def _place(
    rng: np.random.Generator,
    placed: list[dict[str, Any]],
    kind: tuple[str, str],
    velocity: tuple[int, int],
    start: int,
    n_frames: int,
    frame_px: int,
    size: int,
) -> bool:
    """Add an object at a random spot where its whole path stays in the frame and clear of the others."""
    half = size // 2
    vx, vy = velocity
    travel_x, travel_y = vx * (n_frames - 1), vy * (n_frames - 1)
    low_x = half + _GAP + max(0, -travel_x)
    high_x = frame_px - size + half - _GAP - 1 - max(0, travel_x)
    low_y = half + _GAP + max(0, -travel_y)
    high_y = frame_px - size + half - _GAP - 1 - max(0, travel_y)
    if low_x > high_x or low_y > high_y:
        return False
    for _ in range(_PLACEMENT_TRIES):
        obj = {
            "shape": kind[0],
            "colour": kind[1],
            "cx": int(rng.integers(low_x, high_x + 1)),
            "cy": int(rng.integers(low_y, high_y + 1)),
            "vx": vx,
            "vy": vy,
            "start": start,
        }
        if not _collides(obj, placed, n_frames, size):
            placed.append(obj)
            return True
    return False


def _other_kind(rng: np.random.Generator, target: tuple[str, str]) -> tuple[str, str]:
    while True:
        kind = (pick(rng, SHAPES), pick(rng, COLOUR_NAMES))
        if kind != target:
            return kind


def _decoy_kind(rng: np.random.Generator, target: tuple[str, str]) -> tuple[str, str]:
    """Shares exactly one attribute with the target, so only the binding tells them apart."""
    shape, colour = target
    if rng.random() < 0.5:
        return shape, pick(rng, tuple(c for c in COLOUR_NAMES if c != colour))
    return pick(rng, tuple(s for s in SHAPES if s != shape)), colour


def _sample(rng: np.random.Generator, options: Options) -> Meta:
    lo, hi = options["min_frames"], options["max_frames"]
    even = [t for t in range(lo, hi + 1) if t % 2 == 0]  # whole temporal patches of 2 frames
    choices = even or list(range(lo, hi + 1))
    n_frames = choices[int(rng.integers(len(choices)))]
    frame_blocks = options["frame_blocks"]
    frame_px = frame_blocks * BLOCK_PX
    size = object_px(frame_blocks)
    question = pick(rng, tuple(options["questions"]))
    objects: list[dict[str, Any]] = []
    if question == "appear":
        target = (options["appear_shape"], pick(rng, COLOUR_NAMES))
        start = int(rng.integers(1, n_frames))
        placed = _place(rng, objects, target, (0, 0), start, n_frames, frame_px, size)
        decoy_start = pick(rng, [t for t in range(n_frames) if t != start])
        _place(rng, objects, _decoy_kind(rng, target), (0, 0), decoy_start, n_frames, frame_px, size)
    else:
        target = (options["motion_shape"], pick(rng, COLOUR_NAMES))
        step = motion_step(frame_blocks, n_frames)
        direction = pick(rng, tuple(DIRECTIONS))
        dx, dy = DIRECTIONS[direction]
        placed = _place(rng, objects, target, (dx * step, dy * step), 0, n_frames, frame_px, size)
        if rng.random() < 0.5:
            decoy_dir = DIRECTIONS[pick(rng, tuple(d for d in DIRECTIONS if d != direction))]
            velocity = (decoy_dir[0] * step, decoy_dir[1] * step)
            _place(rng, objects, _decoy_kind(rng, target), velocity, 0, n_frames, frame_px, size)
    if not placed:  # the target goes first into an empty frame, so only bad geometry gets here
        raise ConfigError(f"task {_TASK!r}: frame_blocks={frame_blocks} is too small for the target's path")
    n_distractors = int(rng.integers(options["min_distractors"], options["max_distractors"] + 1))
    for _ in range(n_distractors):
        _place(rng, objects, _other_kind(rng, target), (0, 0), 0, n_frames, frame_px, size)
    return {
        "frame_blocks": frame_blocks,
        "n_frames": n_frames,
        "object_px": size,
        "question": question,
        "objects": objects,
    }


def render_frames(meta: Mapping[str, Any]) -> tuple[Image.Image, ...]:
    """All frames of the clip; object 0 is the target."""
    frame_px = meta["frame_blocks"] * BLOCK_PX
    frames = []
    for frame in range(meta["n_frames"]):
        image = to_image(blank(frame_px, frame_px))
        draw = ImageDraw.Draw(image)
        for obj in meta["objects"]:
            if frame >= obj["start"]:
                cx, cy = position(obj, frame)
                draw_shape(draw, obj["shape"], cx, cy, meta["object_px"], COLOURS[obj["colour"]])
        frames.append(image)
    return as_clip(frames)


def direction_of(obj: Mapping[str, Any]) -> str:
    """The direction name of an object's velocity."""
    unit = (int(np.sign(obj["vx"])), int(np.sign(obj["vy"])))
    return next(name for name, vec in DIRECTIONS.items() if vec == unit)


def _render(meta: Mapping[str, Any]) -> Rendered:
    target = meta["objects"][0]
    name = f"{target['colour']} {target['shape']}"
    if meta["question"] == "appear":
        prompt = (
            f"The video has {meta['n_frames']} frames, numbered from 1. "
            f"In which frame does the {name} first appear? Answer with the frame number."
        )
        answer = str(target["start"] + 1)
    else:
        prompt = f"Which way does the {name} move? Answer left, right, up or down."
        answer = direction_of(target)
    return Rendered(prompt, answer, (), render_frames(meta))


def _vocabulary(options: Options) -> frozenset[str]:
    words: set[str] = set()
    if "appear" in options["questions"]:
        words |= {str(i) for i in range(2, options["max_frames"] + 1)}
    if "motion" in options["questions"]:
        words |= set(DIRECTIONS)
    return frozenset(words)


SPEC = TaskSpec(
    name=_TASK,
    defaults={
        "min_frames": 4,
        "max_frames": 8,
        "frame_blocks": 6,
        "questions": QUESTIONS,
        "appear_shape": "square",
        "motion_shape": "circle",
        "min_distractors": 1,
        "max_distractors": 3,
    },
    sample=_sample,
    render=_render,
    vocabulary=_vocabulary,
    validate=_validate,
)
