"""Tiny random models of every family, built from configs in code (no download, ~0.1 s each).

All text models share one shape so tests can reason about it: 4 layers, hidden 128, 4 query heads, 2 KV
heads (GQA), head_dim 32, tied embeddings, a byte-level vocabulary (~265). Vision towers have 2 layers of
width 64. Weights come from ``torch.manual_seed(seed)`` in a forked RNG, so two calls with the same seed
give identical models and the caller's RNG state is untouched.

Visual tokens per image:

* ``qwen2_vl`` / ``qwen2_5_vl``: one per 28x28 px after resizing to multiples of 28 (``smart_resize``),
  from 4 up to 4096 tokens (e.g. 448x448 -> 256, 896x896 -> 1024, 1120x1120 -> 1600).
* ``qwen3_vl``: one per 32x32 px, 4 to 4096 tokens (e.g. 512x512 -> 256, 1024x1024 -> 1024).
* ``llava``: CLIP at 336 px, patch 14: always 576 per image (the real LLaVA-1.5 count).
* ``llava_onevision``: SigLIP at 224 px, patch 14 (16x16 = 256 features per view). One image in a prompt is
  tiled "anyres" over 224-px grids up to 6x6: base 256 + crop features + one newline per feature row,
  pooled to at most ~9 crops' worth. E.g. 64x64 / 224x224 -> 528, 448x448 -> 1312, 672x672 -> 2608.
  Each image of a multi-image prompt gets 257 (base view + newline).
"""

from __future__ import annotations

from collections.abc import Callable
from types import MappingProxyType
from typing import Any

import torch
import transformers
from transformers import (
    CLIPVisionConfig,
    LlamaConfig,
    LlavaConfig,
    LlavaOnevisionConfig,
    LlavaProcessor,
    PretrainedConfig,
    PreTrainedTokenizerBase,
    Qwen2_5_VLConfig,
    Qwen2Config,
    Qwen2VLConfig,
    Qwen3Config,
    Qwen3VLConfig,
    SiglipVisionConfig,
)
from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil
from transformers.models.llava_onevision.image_processing_pil_llava_onevision import (
    LlavaOnevisionImageProcessorPil,
)
from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil
from transformers.processing_utils import ProcessorMixin

from hybridkv.errors import ModelLoadError
from hybridkv.models.base import LoadedModel
from hybridkv.models.processors import (
    ImageOnlyLlavaOnevisionProcessor,
    ImageOnlyQwen2_5_VLProcessor,
    ImageOnlyQwen2VLProcessor,
    ImageOnlyQwen3VLProcessor,
)
from hybridkv.models.registry import ADAPTERS
from hybridkv.models.tokenizer import (
    CHATML_TOKENS,
    LLAMA3_TOKENS,
    LLAVA_ONEVISION_TOKENS,
    LLAVA_TOKENS,
    QWEN_VL_TOKENS,
    byte_level_tokenizer,
)

TEXT_LAYERS = 4
HIDDEN = 128
HEADS = 4
KV_HEADS = 2
HEAD_DIM = 32
MAX_VISUAL_TOKENS = 4096
MIN_VISUAL_TOKENS = 4
LLAVA_IMAGE_SIZE = 336
ONEVISION_IMAGE_SIZE = 224
# Wider than the usual 0.02 so attention is peaked rather than uniform, which gives compression
# something to lose and makes greedy outputs depend on the prompt.
INIT_RANGE = 0.1

Parts = tuple[PretrainedConfig, PreTrainedTokenizerBase, ProcessorMixin | None]


def _ids(tok: PreTrainedTokenizerBase, *tokens: str) -> list[int]:
    return [tok.convert_tokens_to_ids(t) for t in tokens]


def _text(tok: PreTrainedTokenizerBase, **overrides: Any) -> dict[str, Any]:
    """Text-model fields shared by every family (GQA 4/2, head_dim 32)."""
    return {
        "vocab_size": len(tok),
        "hidden_size": HIDDEN,
        "intermediate_size": 2 * HIDDEN,
        "num_hidden_layers": TEXT_LAYERS,
        "num_attention_heads": HEADS,
        "num_key_value_heads": KV_HEADS,
        "head_dim": HEAD_DIM,
        "max_position_embeddings": 32768,
        "initializer_range": INIT_RANGE,
        "tie_word_embeddings": True,
        "bos_token_id": tok.bos_token_id,
        "eos_token_id": tok.eos_token_id,
        "pad_token_id": tok.pad_token_id,
        **overrides,
    }


def _mrope(theta: float, interleaved: bool = False) -> dict[str, Any]:
    # mrope_section splits head_dim / 2 rotary frequencies over (time, height, width).
    params: dict[str, Any] = {"rope_type": "default", "rope_theta": theta, "mrope_section": [4, 6, 6]}
    if interleaved:
        params["mrope_interleaved"] = True
    return params


def _qwen_vision_ids(tok: PreTrainedTokenizerBase) -> dict[str, int]:
    image, video, start, end = _ids(tok, "<|image_pad|>", "<|video_pad|>", "<|vision_start|>", "<|vision_end|>")
    return {
        "image_token_id": image,
        "video_token_id": video,
        "vision_start_token_id": start,
        "vision_end_token_id": end,
    }


def _qwen_image_processor(patch: int, mean: list[float] | None = None) -> Qwen2VLImageProcessorPil:
    factor = 2 * patch  # one token per merged 2x2 patch group
    kwargs: dict[str, Any] = {
        "patch_size": patch,
        "merge_size": 2,
        "temporal_patch_size": 2,
        "min_pixels": MIN_VISUAL_TOKENS * factor**2,
        "max_pixels": MAX_VISUAL_TOKENS * factor**2,
    }
    if mean is not None:
        kwargs.update(image_mean=mean, image_std=mean)
    return Qwen2VLImageProcessorPil(**kwargs)


def _qwen2_vl() -> Parts:
    tok = byte_level_tokenizer(QWEN_VL_TOKENS)
    config = Qwen2VLConfig(
        text_config=_text(tok, rope_parameters=_mrope(1e6)),
        vision_config={
            "depth": 2,
            "embed_dim": 64,
            "hidden_size": HIDDEN,
            "mlp_ratio": 2,
            "num_heads": 2,
            "initializer_range": INIT_RANGE,
        },
        tie_word_embeddings=True,
        **_qwen_vision_ids(tok),
    )
    proc = ImageOnlyQwen2VLProcessor(_qwen_image_processor(14), tok, chat_template=tok.chat_template)
    return config, tok, proc


def _qwen2_5_vl() -> Parts:
    tok = byte_level_tokenizer(QWEN_VL_TOKENS)
    config = Qwen2_5_VLConfig(
        text_config=_text(tok, rope_parameters=_mrope(1e6)),
        vision_config={
            "depth": 2,
            "hidden_size": 64,
            "intermediate_size": 128,
            "num_heads": 2,
            "out_hidden_size": HIDDEN,
            "fullatt_block_indexes": [1],
            "initializer_range": INIT_RANGE,
        },
        tie_word_embeddings=True,
        **_qwen_vision_ids(tok),
    )
    proc = ImageOnlyQwen2_5_VLProcessor(_qwen_image_processor(14), tok, chat_template=tok.chat_template)
    return config, tok, proc


def _qwen3_vl() -> Parts:
    tok = byte_level_tokenizer(QWEN_VL_TOKENS)
    config = Qwen3VLConfig(
        text_config=_text(tok, rope_parameters=_mrope(5e6, interleaved=True)),
        vision_config={
            "depth": 2,
            "hidden_size": 64,
            "intermediate_size": 128,
            "num_heads": 2,
            "out_hidden_size": HIDDEN,
            "patch_size": 16,
            "num_position_embeddings": 256,
            "deepstack_visual_indexes": [0, 1],
            "initializer_range": INIT_RANGE,
        },
        tie_word_embeddings=True,
        **_qwen_vision_ids(tok),
    )
    proc = ImageOnlyQwen3VLProcessor(_qwen_image_processor(16, mean=[0.5] * 3), tok, chat_template=tok.chat_template)
    return config, tok, proc


def _llava() -> Parts:
    tok = byte_level_tokenizer(LLAVA_TOKENS)
    (image_id,) = _ids(tok, "<image>")
    vision = CLIPVisionConfig(
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=2,
        image_size=LLAVA_IMAGE_SIZE,
        patch_size=14,
    )
    config = LlavaConfig(
        vision_config=vision,
        text_config=LlamaConfig(**_text(tok, rope_parameters={"rope_type": "default", "rope_theta": 1e4})),
        image_token_id=image_id,
        vision_feature_layer=-2,
        vision_feature_select_strategy="default",
        tie_word_embeddings=True,
    )
    image_processor = CLIPImageProcessorPil(
        size={"shortest_edge": LLAVA_IMAGE_SIZE},
        crop_size={"height": LLAVA_IMAGE_SIZE, "width": LLAVA_IMAGE_SIZE},
    )
    # num_additional_image_tokens=1 accounts for CLIP's CLS, which "default" selection then drops.
    proc = LlavaProcessor(
        image_processor,
        tok,
        patch_size=14,
        vision_feature_select_strategy="default",
        image_token="<image>",
        num_additional_image_tokens=1,
        chat_template=tok.chat_template,
    )
    return config, tok, proc


def _llava_onevision() -> Parts:
    tok = byte_level_tokenizer(LLAVA_ONEVISION_TOKENS)
    image_id, video_id = _ids(tok, "<image>", "<video>")
    size = ONEVISION_IMAGE_SIZE
    pinpoints = [[size * h, size * w] for h in range(1, 7) for w in range(1, 7)]
    vision = SiglipVisionConfig(
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=2,
        image_size=size,
        patch_size=14,
        vision_use_head=False,
    )
    config = LlavaOnevisionConfig(
        vision_config=vision,
        text_config=Qwen2Config(**_text(tok, rope_parameters={"rope_type": "default", "rope_theta": 1e6})),
        image_token_index=image_id,
        video_token_index=video_id,
        vision_feature_layer=-1,
        vision_feature_select_strategy="full",
        image_grid_pinpoints=pinpoints,
        vision_aspect_ratio="anyres_max_9",
        tie_word_embeddings=True,
    )
    image_processor = LlavaOnevisionImageProcessorPil(
        size={"height": size, "width": size}, image_grid_pinpoints=pinpoints
    )
    proc = ImageOnlyLlavaOnevisionProcessor(
        image_processor,
        tok,
        num_image_tokens=(size // 14) ** 2,
        vision_feature_select_strategy="full",
        vision_aspect_ratio="anyres_max_9",
        chat_template=tok.chat_template,
    )
    return config, tok, proc


def _llama() -> Parts:
    tok = byte_level_tokenizer(LLAMA3_TOKENS)
    return LlamaConfig(**_text(tok, rope_parameters={"rope_type": "default", "rope_theta": 5e5})), tok, None


def _qwen2() -> Parts:
    tok = byte_level_tokenizer(CHATML_TOKENS)
    return Qwen2Config(**_text(tok, rope_parameters={"rope_type": "default", "rope_theta": 1e6})), tok, None


def _qwen3() -> Parts:
    tok = byte_level_tokenizer(CHATML_TOKENS)
    return Qwen3Config(**_text(tok, rope_parameters={"rope_type": "default", "rope_theta": 1e6})), tok, None


TINY_BUILDERS: MappingProxyType[str, Callable[[], Parts]] = MappingProxyType(
    {
        "qwen2_vl": _qwen2_vl,
        "qwen2_5_vl": _qwen2_5_vl,
        "qwen3_vl": _qwen3_vl,
        "llava": _llava,
        "llava_onevision": _llava_onevision,
        "llama": _llama,
        "qwen2": _qwen2,
        "qwen3": _qwen3,
    }
)

TINY_PREFIX = "tiny-random-"


def tiny_random_model(family: str, *, seed: int = 0) -> LoadedModel:
    """A deterministic tiny random model of ``family`` (see the module docstring for its shape)."""
    builder = TINY_BUILDERS.get(family)
    if builder is None:
        raise ModelLoadError(f"no tiny model for family {family!r}; use one of: {', '.join(TINY_BUILDERS)}")
    adapter = ADAPTERS[family]
    config, tok, proc = builder()
    model_cls = getattr(transformers, adapter.model_class)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = model_cls._from_config(config, attn_implementation="sdpa", dtype=torch.float32)
    model.generation_config.update(
        bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id
    )
    model.eval()
    return LoadedModel(model=model, tokenizer=tok, processor=proc, adapter=adapter, name=TINY_PREFIX + family)
