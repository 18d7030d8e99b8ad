"""Text-only causal LMs (Llama, Qwen2, Qwen3): the decoder is ``model.model``; every position is TEXT."""

from __future__ import annotations

from hybridkv.models.base import ModelAdapter

LLAMA = ModelAdapter(
    family="llama",
    model_types=("llama",),
    is_multimodal=False,
    model_class="LlamaForCausalLM",
    language_model_path="model",
)

QWEN2 = ModelAdapter(
    family="qwen2",
    model_types=("qwen2",),
    is_multimodal=False,
    model_class="Qwen2ForCausalLM",
    language_model_path="model",
)

QWEN3 = ModelAdapter(
    family="qwen3",
    model_types=("qwen3",),
    is_multimodal=False,
    model_class="Qwen3ForCausalLM",
    language_model_path="model",
)
