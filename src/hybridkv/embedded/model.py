"""The embedded model as a :class:`hybridkv.models.LoadedModel`: untrained from a seed, or the shipped weights.

Video items are fed as a sequence of images, one per frame, each with its own
``<|vision_start|><|image_pad|><|vision_end|>``. Qwen2.5-VL's video path would merge frames in pairs,
but its processor needs a video processor, which needs torchvision, and :meth:`LoadedModel.build_inputs`
(what every evaluation goes through) only takes images. Frames as images work with the stock code, keep
the frame order in the prompt, and cost twice the video path's tokens (36 per 168 px frame instead of
36 per pair), which :func:`visual_token_count` accounts for. A model whose config sets ``frame_pairs``
(``--frame-pairs`` in training) still gets one token per block and frame, but each frame after a clip's
first fills the temporal patch's first slot with the frame before (:mod:`hybridkv.models.frame_pairs`),
so that a token shows motion.
"""

from __future__ import annotations

from pathlib import Path

import torch
from PIL import Image
from transformers import Qwen2_5_VLForConditionalGeneration

from hybridkv.data import TaskItem, image_tokens
from hybridkv.defaults import EMBEDDED_DIR
from hybridkv.errors import ModelLoadError
from hybridkv.models import LoadedModel, get_adapter, load_model

from .config import embedded_config
from .processor import embedded_processor
from .tokenizer import embedded_tokenizer

ASSET_DIR = EMBEDDED_DIR
UNTRAINED_NAME = "embedded-untrained"


def build_untrained(seed: int = 0) -> LoadedModel:
    """A freshly initialised embedded model; the same seed gives the same weights, the caller's RNG is untouched."""
    tokenizer = embedded_tokenizer()
    processor = embedded_processor(tokenizer)
    config = embedded_config(tokenizer)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Qwen2_5_VLForConditionalGeneration._from_config(config, attn_implementation="sdpa", dtype=torch.float32)
    model.generation_config.update(
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        do_sample=False,
    )
    model.eval()
    return LoadedModel(
        model=model, tokenizer=tokenizer, processor=processor, adapter=get_adapter(config), name=UNTRAINED_NAME
    )


def load_embedded(path: str | Path = ASSET_DIR) -> LoadedModel:
    """The trained embedded model (the packaged weights unless ``path`` names another checkpoint)."""
    path = Path(path)
    if not (path / "config.json").is_file():
        raise ModelLoadError(
            f"no trained embedded model at {path}; train one with scripts/train_tiny_vlm.py --out {path}"
        )
    return load_model(path)


def item_images(item: TaskItem) -> list[Image.Image]:
    """What the embedded model is shown for an item, in prompt order: its images, then its video frames."""
    return [*item.images, *(item.video or ())]


def visual_token_count(item: TaskItem) -> int:
    """Visual tokens the embedded model sees for an item (video frames count as whole images)."""
    return sum(image_tokens(*image.size) for image in item_images(item))
