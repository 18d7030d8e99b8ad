"""Greedy generation with a method's cache, timed per token, with the cache's measured bytes."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from transformers import DynamicCache, StoppingCriteria, StoppingCriteriaList
from transformers.cache_utils import Cache

from .cache import HybridCache, storage_bytes
from .methods import Method


class _TokenClock(StoppingCriteria):
    """Stamps the time each new token is produced (never stops generation itself).

    On an accelerator it waits for the queued work first: otherwise a stamp would only say when the
    host finished *enqueuing* the step, and prefill would look instantaneous.
    """

    def __init__(self) -> None:
        self.stamps: list[float] = []

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs: Any) -> torch.BoolTensor:
        if input_ids.is_cuda:
            torch.cuda.synchronize(input_ids.device)
        self.stamps.append(time.perf_counter())
        return torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)


@dataclass
class GenerationResult:
    sequences: torch.Tensor  # [B, prompt + new]
    new_tokens: torch.Tensor  # [B, new]
    prompt_tokens: int
    prefill_s: float  # time to first token (prefill + compression + first sampling)
    decode_ms_per_token: float  # median gap between later tokens
    kv_hot_bytes: int
    kv_cold_bytes: int
    full_kv_bytes: int
    cache_stats: dict[str, Any] = field(default_factory=dict)


def dynamic_cache_bytes(cache: DynamicCache) -> int:
    return storage_bytes(t for layer in cache.layers for t in (layer.keys, layer.values))


def generate(
    model: torch.nn.Module,
    inputs: Mapping[str, torch.Tensor],
    method: Method,
    *,
    max_new_tokens: int = 32,
    **generate_kwargs: Any,
) -> GenerationResult:
    """Greedy-decode ``inputs`` with ``method``'s cache; always returns measured bytes and timings."""
    with method(model):
        cache = method.make_cache(model, inputs)
        return generate_with_cache(model, inputs, cache, max_new_tokens=max_new_tokens, **generate_kwargs)


def generate_with_cache(
    model: torch.nn.Module,
    inputs: Mapping[str, torch.Tensor],
    cache: Cache,
    *,
    max_new_tokens: int = 32,
    **generate_kwargs: Any,
) -> GenerationResult:
    """Greedy-decode ``inputs`` into ``cache``, which may already hold a prefix of them (a session's context).

    Only the uncached suffix of ``inputs`` is run; the caller keeps the method's scope open. Timings start
    here, so with a prefilled cache ``prefill_s`` is the time to the first token of the suffix.
    """
    clock = _TokenClock()
    t0 = time.perf_counter()
    with torch.inference_mode():
        out = model.generate(
            **inputs,
            past_key_values=cache,
            max_new_tokens=max_new_tokens,
            do_sample=False,
            stopping_criteria=StoppingCriteriaList([clock]),
            **generate_kwargs,
        )
    seqs = out if isinstance(out, torch.Tensor) else out.sequences
    prompt_len = inputs["input_ids"].shape[1]
    gaps = [b - a for a, b in zip(clock.stamps, clock.stamps[1:], strict=False)]
    decode_ms = 1000.0 * float(torch.tensor(gaps).median()) if gaps else float("nan")
    if isinstance(cache, HybridCache):
        stats = cache.stats()
        hot, cold, full = stats.hot_bytes, stats.cold_bytes, stats.full_kv_bytes
        stats_dict = stats.to_dict()
    else:
        hot, cold = dynamic_cache_bytes(cache), 0
        full, stats_dict = hot, {}
    return GenerationResult(
        sequences=seqs,
        new_tokens=seqs[:, prompt_len:],
        prompt_tokens=prompt_len,
        prefill_s=(clock.stamps[0] - t0) if clock.stamps else float("nan"),
        decode_ms_per_token=decode_ms,
        kv_hot_bytes=hot,
        kv_cold_bytes=cold,
        full_kv_bytes=full,
        cache_stats=stats_dict,
    )


def generation_record(
    loaded: Any, prompt: str, images: list | None, method: Method, *, max_new_tokens: int, setting: str = "aware"
) -> dict:
    """Generate for one prompt and return the JSON-ready record the CLI and the demo print.

    ``setting="agnostic"`` compresses the prompt's context (and images) before its question is asked (see
    ``hybridkv.session``); ``"aware"`` compresses the whole prompt, question included.
    """
    from .session import answer, setting_inputs  # the session builds on this module

    result = answer(loaded, setting_inputs(loaded, prompt, images, setting), method, max_new_tokens=max_new_tokens)
    record: dict[str, Any] = {
        "setting": setting,
        "text": loaded.decode(result.new_tokens[0]),
        "method": method.name,
        "budget": method.describe().get("budget"),
        "model": loaded.name,
        "prompt_tokens": result.prompt_tokens,
        "new_tokens": int(result.new_tokens.shape[1]),
        "kv_bytes": {"hot": result.kv_hot_bytes, "cold": result.kv_cold_bytes},
        "full_kv_bytes": result.full_kv_bytes,
        "hot_ratio": round(result.kv_hot_bytes / result.full_kv_bytes, 4) if result.full_kv_bytes else None,
        "prefill_s": round(result.prefill_s, 4),
        "decode_ms_per_token": round(result.decode_ms_per_token, 3),
    }
    if result.cache_stats:
        record["static_fraction"] = result.cache_stats["static_fraction"]
        record["chunk_hit_rate"] = result.cache_stats["chunk_hit_rate"]
        record["fitted"] = result.cache_stats["fitted"]
    return record
