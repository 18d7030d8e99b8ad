"""Video frames as images that know their place in a clip.

Every path that feeds a model passes a clip's frames as images after the item's own images (the supported
processors are image-only). A model that shows each frame beside the one before it
(:func:`hybridkv.models.frame_pairs.pair_frames`) has to tell frames from images and know which frame
comes first; the frame's number is written into the image's ``info``, where it travels with the image
through every list, copy and pickle, and is checked where it is used.
"""

from __future__ import annotations

from collections.abc import Iterable

from PIL import Image

FRAME_INDEX = "hybridkv.frame"
"""``Image.info`` key holding a video frame's 0-based number in its clip."""


def as_clip(frames: Iterable[Image.Image]) -> tuple[Image.Image, ...]:
    """The frames, in order, each marked with its number in the clip (marks are set in place)."""
    clip = tuple(frames)
    for number, frame in enumerate(clip):
        frame.info[FRAME_INDEX] = number
    return clip


def frame_index(image: Image.Image) -> int | None:
    """A clip frame's 0-based number, or None for an image that is not a video frame."""
    value = image.info.get(FRAME_INDEX)
    return value if isinstance(value, int) else None
