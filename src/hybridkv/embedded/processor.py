"""The embedded model's processor: Qwen2.5-VL's, images only, at the suite's native resolution.

The suite draws every image in whole 28 px blocks (one visual token each), so the pixel limits are set
wide enough that ``smart_resize`` never rescales them: from 2x2 blocks up to 64x64 blocks (1792 px a
side, 4096 tokens). What the model saw in training is then exactly what it sees at evaluation, and a
task's visual token count is :func:`hybridkv.data.visual_tokens`-predictable.
"""

from __future__ import annotations

from transformers import PreTrainedTokenizerBase
from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

from hybridkv.data.palette import BLOCK_PX
from hybridkv.models.processors import ImageOnlyQwen2_5_VLProcessor

PATCH_PX = 14
MIN_BLOCKS = 4
MAX_BLOCKS = 64 * 64


def embedded_processor(tokenizer: PreTrainedTokenizerBase) -> ImageOnlyQwen2_5_VLProcessor:
    """Image-only Qwen2.5-VL processor sharing ``tokenizer`` and its chat template."""
    image_processor = Qwen2VLImageProcessorPil(
        patch_size=PATCH_PX,
        merge_size=BLOCK_PX // PATCH_PX,
        temporal_patch_size=2,
        min_pixels=MIN_BLOCKS * BLOCK_PX**2,
        max_pixels=MAX_BLOCKS * BLOCK_PX**2,
    )
    return ImageOnlyQwen2_5_VLProcessor(image_processor, tokenizer, chat_template=tokenizer.chat_template)
