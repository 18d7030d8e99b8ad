"""Deterministic test images without files."""

from __future__ import annotations

import numpy as np
from PIL import Image


def synthetic_image(width: int, height: int, seed: int = 0) -> Image.Image:
    """An RGB image of coloured blocks plus noise; the same arguments always give the same pixels.

    Blocks give the vision tower spatial structure (so patches differ), noise keeps neighbours distinct.
    """
    if width < 1 or height < 1:
        raise ValueError(f"image size must be positive, got {width}x{height}")
    rng = np.random.default_rng(seed)
    block = max(1, min(width, height) // 8)
    grid = rng.integers(0, 256, size=(-(-height // block), -(-width // block), 3), dtype=np.uint8)
    pixels = np.repeat(np.repeat(grid, block, axis=0), block, axis=1)[:height, :width].astype(np.int16)
    pixels += rng.integers(-24, 25, size=pixels.shape, dtype=np.int16)
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), mode="RGB")
