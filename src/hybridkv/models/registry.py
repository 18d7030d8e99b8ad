"""Family name and ``config.model_type`` -> adapter lookup."""

from __future__ import annotations

from types import MappingProxyType

from transformers import PretrainedConfig, PreTrainedModel

from hybridkv.errors import UnsupportedModelError
from hybridkv.models.base import ModelAdapter
from hybridkv.models.llava import LLAVA, LLAVA_ONEVISION
from hybridkv.models.qwen_vl import QWEN2_5_VL, QWEN2_VL, QWEN3_VL
from hybridkv.models.text_lm import LLAMA, QWEN2, QWEN3

ADAPTERS: MappingProxyType[str, ModelAdapter] = MappingProxyType(
    {a.family: a for a in (QWEN2_VL, QWEN2_5_VL, QWEN3_VL, LLAVA, LLAVA_ONEVISION, LLAMA, QWEN2, QWEN3)}
)
FAMILIES: tuple[str, ...] = tuple(ADAPTERS)
_BY_MODEL_TYPE: MappingProxyType[str, ModelAdapter] = MappingProxyType(
    {t: a for a in ADAPTERS.values() for t in a.model_types}
)


def get_adapter(model_or_config: PreTrainedModel | PretrainedConfig | str) -> ModelAdapter:
    """The adapter for a model, its config, or a family name."""
    if isinstance(model_or_config, str):
        key = model_or_config
        adapter = ADAPTERS.get(key) or _BY_MODEL_TYPE.get(key)
    else:
        config = getattr(model_or_config, "config", model_or_config)
        key = getattr(config, "model_type", None) or type(config).__name__
        adapter = _BY_MODEL_TYPE.get(key)
    if adapter is None:
        raise UnsupportedModelError(
            f"model type {key!r} is not supported; use one of these families: {', '.join(FAMILIES)}"
        )
    return adapter
