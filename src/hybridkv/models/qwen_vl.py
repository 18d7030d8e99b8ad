"""Qwen2-VL, Qwen2.5-VL and Qwen3-VL: a ViT with 2x2 patch merging in front of a Qwen text model.

Each merged 2x2 group of patches is one ``<|image_pad|>`` token in the prompt: one token per 28x28 px for
Qwen2/2.5-VL (patch 14) and per 32x32 px for Qwen3-VL (patch 16), after the processor's ``smart_resize``.
The language model sits at ``model.model.language_model``; the vision tower's config is ``vision_config``.
"""

from __future__ import annotations

from hybridkv.models.base import ModelAdapter
from hybridkv.models.layout import merged_grid_layout
from hybridkv.models.processors import (
    ImageOnlyQwen2_5_VLProcessor,
    ImageOnlyQwen2VLProcessor,
    ImageOnlyQwen3VLProcessor,
)

QWEN2_VL = ModelAdapter(
    family="qwen2_vl",
    model_types=("qwen2_vl",),
    is_multimodal=True,
    model_class="Qwen2VLForConditionalGeneration",
    language_model_path="model.language_model",
    processor_class=ImageOnlyQwen2VLProcessor,
    layout=merged_grid_layout,
)

QWEN2_5_VL = ModelAdapter(
    family="qwen2_5_vl",
    model_types=("qwen2_5_vl",),
    is_multimodal=True,
    model_class="Qwen2_5_VLForConditionalGeneration",
    language_model_path="model.language_model",
    processor_class=ImageOnlyQwen2_5_VLProcessor,
    layout=merged_grid_layout,
)

QWEN3_VL = ModelAdapter(
    family="qwen3_vl",
    model_types=("qwen3_vl",),
    is_multimodal=True,
    model_class="Qwen3VLForConditionalGeneration",
    language_model_path="model.language_model",
    processor_class=ImageOnlyQwen3VLProcessor,
    layout=merged_grid_layout,
)
