"""The hybridkv attention implementation, registered by name with transformers.

transformers does not pass the cache to attention functions, so ``attach`` adds a forward pre-hook to
each language-model attention module that forwards ``past_key_values`` as the ``hybridkv_cache``
keyword (the module hands its extra keywords to the attention function). Nothing is stored on the
modules: the hooks and the previous attention implementation are removed and restored on exit.

Prefill runs the stock sdpa kernel (so it is exact), then lets the layer compress. Decode attends over
the layer's own per-head storage. Without a HybridCache the function is plain sdpa, so a model loaded
with this implementation behaves exactly like the stock one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

import torch
from transformers import AttentionInterface, AttentionMaskInterface, PreTrainedModel
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import sdpa_mask

from .cache.hybrid_cache import HybridCache
from .cache.layer import Phase

ATTN_IMPLEMENTATION = "hybridkv"
CACHE_KWARG = "hybridkv_cache"


def hybridkv_attention(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float | None = None,
    dropout: float = 0.0,
    **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    cache = kwargs.pop(CACHE_KWARG, None)
    if scaling is None:
        scaling = query.shape[-1] ** -0.5
    if cache is None:
        return sdpa_attention_forward(
            module, query, key, value, attention_mask, scaling=scaling, dropout=dropout, **kwargs
        )
    layer = cache.layers[module.layer_idx]
    if layer.phase is Phase.PREFILLED:
        out, _ = sdpa_attention_forward(
            module, query, key, value, attention_mask, scaling=scaling, dropout=dropout, **kwargs
        )
        with cache.ctx.recorder.timed("compress"):
            layer.compress(query, attention_mask, scaling)
        return out, None
    if layer.phase is Phase.PARKED:  # a question arrives at a parked prompt: it is prefilled, then selects
        with cache.ctx.recorder.timed("question"):  # reads the parked prompt back: the per-question cost
            return layer.select_for_question(query, scaling), None
    with cache.ctx.recorder.timed("decode_attention"):
        return layer.attend(query, scaling), None


def _inject_cache(module: torch.nn.Module, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
    cache = kwargs.get("past_key_values")
    if isinstance(cache, HybridCache):
        kwargs[CACHE_KWARG] = cache
    return args, kwargs


def current_attn_implementation(model: PreTrainedModel) -> dict[str, str | None]:
    """The implementation of the top config and of each sub-config, to restore it later."""
    config = model.config
    out: dict[str, str | None] = {"": getattr(config, "_attn_implementation", None)}
    for name in getattr(config, "sub_configs", {}) or {}:
        sub = getattr(config, name, None)
        if sub is not None:
            out[name] = getattr(sub, "_attn_implementation", None)
    return out


@contextmanager
def routed_attention(
    model: PreTrainedModel, adapter: Any, name: str, function: Callable[..., Any], pre_hook: Callable[..., Any]
) -> Iterator[PreTrainedModel]:
    """Run the language model's attention through ``function`` (registered as ``name``) inside the block,
    with ``pre_hook`` on each attention module to hand it per-call state; restore everything after."""
    AttentionInterface.register(name, function)
    AttentionMaskInterface.register(name, sdpa_mask)
    previous = {k: v for k, v in current_attn_implementation(model).items() if v is not None}
    model.set_attn_implementation(adapter.attn_implementation(name))
    handles = [m.register_forward_pre_hook(pre_hook, with_kwargs=True) for m in adapter.attention_modules(model)]
    try:
        yield model
    finally:
        for h in handles:
            h.remove()
        model.set_attn_implementation(previous)


def attached(model: PreTrainedModel, adapter: Any) -> AbstractContextManager[PreTrainedModel]:
    """Run the language model's attention through hybridkv inside the block; restore everything after."""
    return routed_attention(model, adapter, ATTN_IMPLEMENTATION, hybridkv_attention, _inject_cache)
