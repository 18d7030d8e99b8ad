"""Image-only processors for the VLM families whose stock processor insists on a video processor.

torchvision is not importable next to the pinned CPU torch, and every transformers video processor needs
it: ``Qwen2_5_VLProcessor(...)`` fails even with ``video_processor=None`` because ``ProcessorMixin``
type-checks each sub-processor named in ``__init__``. These subclasses drop ``video_processor`` from the
signature (which is what ``ProcessorMixin.get_attributes`` reads) and otherwise reuse the stock code, so
prompts expand to exactly the placeholder counts the model expects. The saved ``processor_config.json``
names the stock class, so a directory written here also loads with plain transformers elsewhere.
LLaVA-1.5's ``LlavaProcessor`` has no video processor and is used as is.
"""

from __future__ import annotations

from typing import Any

from transformers import LlavaOnevisionProcessor, Qwen2_5_VLProcessor, Qwen2VLProcessor, Qwen3VLProcessor


class _ImageOnlyMixin:
    """Keep the stock processor's name in saved configs; the subclass only exists for this environment."""

    stock_class_name: str = ""

    def to_dict(self) -> dict[str, Any]:
        out = super().to_dict()  # type: ignore[misc]
        out["processor_class"] = self.stock_class_name
        return out


class ImageOnlyQwen2VLProcessor(_ImageOnlyMixin, Qwen2VLProcessor):
    stock_class_name = "Qwen2VLProcessor"

    def __init__(self, image_processor=None, tokenizer=None, chat_template=None, **kwargs):
        super().__init__(image_processor, tokenizer, None, chat_template=chat_template, **kwargs)


class ImageOnlyQwen2_5_VLProcessor(_ImageOnlyMixin, Qwen2_5_VLProcessor):
    stock_class_name = "Qwen2_5_VLProcessor"

    def __init__(self, image_processor=None, tokenizer=None, chat_template=None, **kwargs):
        super().__init__(image_processor, tokenizer, None, chat_template=chat_template, **kwargs)


class ImageOnlyQwen3VLProcessor(_ImageOnlyMixin, Qwen3VLProcessor):
    stock_class_name = "Qwen3VLProcessor"

    def __init__(self, image_processor=None, tokenizer=None, chat_template=None, **kwargs):
        super().__init__(image_processor, tokenizer, None, chat_template=chat_template, **kwargs)


class ImageOnlyLlavaOnevisionProcessor(_ImageOnlyMixin, LlavaOnevisionProcessor):
    stock_class_name = "LlavaOnevisionProcessor"

    def __init__(
        self,
        image_processor=None,
        tokenizer=None,
        num_image_tokens=None,
        vision_feature_select_strategy=None,
        chat_template=None,
        image_token="<image>",
        video_token="<video>",
        vision_aspect_ratio="anyres_max_9",
        **kwargs,
    ):
        super().__init__(
            image_processor,
            tokenizer,
            None,
            num_image_tokens=num_image_tokens,
            vision_feature_select_strategy=vision_feature_select_strategy,
            chat_template=chat_template,
            image_token=image_token,
            video_token=video_token,
            vision_aspect_ratio=vision_aspect_ratio,
            **kwargs,
        )


__all__ = [
    "ImageOnlyLlavaOnevisionProcessor",
    "ImageOnlyQwen2VLProcessor",
    "ImageOnlyQwen2_5_VLProcessor",
    "ImageOnlyQwen3VLProcessor",
]
