"""LLaVA-1.5 (CLIP + Llama) and LLaVA-OneVision (SigLIP + Qwen2): one ``<image>`` token per visual feature.

LLaVA-1.5 gives a fixed (image_size / patch_size)**2 tokens per image (576 at 336 px). LLaVA-OneVision's
count depends on the image: a single image is tiled "anyres" (base view + a grid of crops, one newline token
per feature row, pooled down past 9 crops); with several images in one prompt each image is only the base
view plus one newline token. The language model sits at ``model.model.language_model``.
"""

from __future__ import annotations

from transformers import LlavaProcessor

from hybridkv.models.base import ModelAdapter
from hybridkv.models.processors import ImageOnlyLlavaOnevisionProcessor

LLAVA = ModelAdapter(
    family="llava",
    model_types=("llava",),
    is_multimodal=True,
    model_class="LlavaForConditionalGeneration",
    language_model_path="model.language_model",
    processor_class=LlavaProcessor,  # has no video processor, so the stock class works without torchvision
)

LLAVA_ONEVISION = ModelAdapter(
    family="llava_onevision",
    model_types=("llava_onevision",),
    is_multimodal=True,
    model_class="LlavaOnevisionForConditionalGeneration",
    language_model_path="model.language_model",
    processor_class=ImageOnlyLlavaOnevisionProcessor,
)
