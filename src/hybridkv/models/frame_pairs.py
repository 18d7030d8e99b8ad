"""Each video frame shown beside the frame before it, in the vision tower's temporal patch.

Qwen-VL vision towers embed patches of ``temporal_patch_size`` (2) consecutive frames; a still image fills
both slots with itself. Fed as images, a clip's frames each repeat themselves too, so no token ever holds
two moments and which way something moves must be worked out by comparing tokens of different frames.
A model whose config sets ``frame_pairs`` instead gets, for every frame after a clip's first, the frame
before in the first slot and the frame itself in the last: one visual token per block and frame as
before (the same prompt, positions and token count), but a moving object's tokens now show the motion.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from PIL import Image

from ..data.frames import frame_index
from ..errors import InputError

CONFIG_FLAG = "frame_pairs"
"""Model config attribute (saved with the weights) that turns pairing on for the model's inputs."""


def pairs_frames(config: object) -> bool:
    """Whether a model with this config is fed frame pairs."""
    return bool(getattr(config, CONFIG_FLAG, False))


def pair_frames(
    pixel_values: torch.Tensor,
    grid_thw: torch.Tensor,
    image_lists: Sequence[Sequence[Image.Image]],
    temporal_patch_size: int,
    patch_size: int,
) -> torch.Tensor:
    """``pixel_values`` with each clip frame's first temporal slot taken from the frame before it.

    ``pixel_values`` rows are patches, images one after another in ``image_lists`` order, each row laid out
    (channel, temporal slot, patch pixels) as Qwen-VL image processors write it; ``grid_thw`` gives each
    image's patch grid. A frame numbered k > 0 (:func:`hybridkv.data.frames.frame_index`) must directly
    follow frame k - 1 of the same prompt, at the same size.
    """
    n_images = sum(map(len, image_lists))
    if n_images != len(grid_thw):
        raise InputError(f"{n_images} images but {len(grid_thw)} patch grids; pass the processor's own output")
    rows = pixel_values.reshape(len(pixel_values), -1, temporal_patch_size, patch_size * patch_size)
    paired = rows.clone()
    sizes = grid_thw.prod(dim=1).tolist()
    before_pairing, after_pairing = rows.split(sizes), paired.split(sizes)  # per image; the latter views paired
    first = 0  # this prompt's first image among all: a clip never runs across prompts
    for images in image_lists:
        for k, image in enumerate(images):
            number = frame_index(image)
            if not number:
                continue
            i, previous = first + k, images[k - 1] if k else None
            same_size = previous is not None and image.size == previous.size and sizes[i] == sizes[i - 1]
            if not same_size or frame_index(previous) != number - 1:
                raise InputError(
                    f"video frame {number + 1} does not follow frame {number} of the same clip at the same size; "
                    "pass a clip's frames in order, after the prompt's own images (hybridkv.data.frames.as_clip)"
                )
            after_pairing[i][:, :, 0] = before_pairing[i - 1][:, :, -1]
        first += len(images)
    return paired.reshape(pixel_values.shape)
