"""Budgets are real: reported bytes are the bytes of tensors actually held, and they shrink."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from hybridkv.cache import HybridCache, storage_bytes
from hybridkv.methods import HybridKV
from hybridkv.models.testing import synthetic_image

FAMILY = "qwen2_5_vl"


def reachable_tensors(obj, seen=None):
    """Every tensor reachable from ``obj``'s attributes: an independent inventory of what a layer holds."""
    seen = set() if seen is None else seen
    if id(obj) in seen:
        return []
    seen.add(id(obj))
    if isinstance(obj, torch.Tensor):
        return [obj]
    if isinstance(obj, (list, tuple)):
        return [t for x in obj for t in reachable_tensors(x, seen)]
    if isinstance(obj, dict):
        return [t for x in obj.values() for t in reachable_tensors(x, seen)]
    if dataclasses.is_dataclass(obj) or hasattr(obj, "__dict__"):
        return [t for x in vars(obj).values() for t in reachable_tensors(x, seen)]
    return []


def run(loaded, inputs, **options):
    method = HybridKV(**options)
    with method(loaded.model):
        cache = method.make_cache(loaded.model, inputs)
        with torch.inference_mode():
            loaded.model.generate(**inputs, past_key_values=cache, max_new_tokens=4, do_sample=False)
    return cache


@pytest.fixture
def big_prompt(tiny):
    loaded = tiny(FAMILY)
    inputs = loaded.build_inputs("What is in the top left corner?", [synthetic_image(896, 896, seed=7)])
    n_visual = int((loaded.token_types(inputs) == 1).sum())
    assert n_visual >= 1000
    return loaded, inputs


def test_hot_bytes_are_real_and_small(big_prompt):
    loaded, inputs = big_prompt
    probe = run(loaded, inputs, budget=0.1)
    scores = [s for layer in probe.stats().heads for row in layer.scores for s in row]
    theta = sorted(scores)[len(scores) // 2]  # a threshold that splits this input's heads into both types
    cache = run(loaded, inputs, budget=0.1, theta=theta)
    stats = cache.stats()
    assert 0 < stats.static_fraction < 1

    cold = {t.untyped_storage().data_ptr() for layer in cache.layers for t in layer.cold_tensors()}
    tensors = reachable_tensors(cache)
    held_cold = storage_bytes(t for t in tensors if t.untyped_storage().data_ptr() in cold)
    held_hot = storage_bytes(t for t in tensors if t.untyped_storage().data_ptr() not in cold)
    assert stats.hot_bytes == held_hot
    assert stats.cold_bytes == held_cold
    assert stats.hot_bytes <= 0.15 * stats.full_kv_bytes

    # different heads hold different lengths, physically
    lengths = set()
    for layer in cache.layers:
        per_head = layer.hot.resident_counts(layer.batch * layer.kv_heads)
        lengths.update(per_head.tolist())
        for row_budget, row_hot in zip(layer.heads.budget, layer.heads.hot_tokens, strict=True):
            for budget, hot in zip(row_budget, row_hot, strict=True):
                assert hot <= budget  # attended per step never exceeds the head's budget
    assert len(lengths) > 1


def test_full_prompt_released_after_prefill(big_prompt):
    loaded, inputs = big_prompt
    cache = run(loaded, inputs, budget=0.1, head_types="static")
    for layer in cache.layers:
        assert layer.keys.shape[-2] == layer.tail_len  # only the tail is dense
        assert layer.hot.keys.shape[0] <= sum(layer.heads.budget[0])


def test_disk_tier_matches_host_tier(big_prompt, tmp_path):
    loaded, inputs = big_prompt
    outs = []
    for tier in ("host", "disk"):
        method = HybridKV(budget=0.1, head_types="dynamic", cold_tier=tier, cold_dir=str(tmp_path))
        with method(loaded.model):
            cache = method.make_cache(loaded.model, inputs)
            with torch.inference_mode():
                outs.append(loaded.model.generate(**inputs, past_key_values=cache, max_new_tokens=6, do_sample=False))
        if tier == "disk":
            assert any(tmp_path.iterdir())
            assert cache.stats().cold_bytes > 0
    assert torch.equal(outs[0], outs[1])


def test_cache_type_is_a_transformers_cache():
    from transformers.cache_utils import Cache

    from hybridkv.config import HybridKVConfig

    assert isinstance(HybridCache(2, HybridKVConfig()), Cache)


def test_pyramid_allocator_gives_deeper_layers_less(big_prompt):
    loaded, inputs = big_prompt
    cache = run(loaded, inputs, budget=0.1, allocator="pyramid", head_types="static")
    per_layer = [layer.hot.keys.shape[0] for layer in cache.layers]
    assert per_layer == sorted(per_layer, reverse=True) and per_layer[0] > per_layer[-1]
    flat = run(loaded, inputs, budget=0.1, allocator="uniform", head_types="static")
    total = sum(layer.hot.keys.shape[0] for layer in flat.layers)
    assert abs(sum(per_layer) - total) <= 0.05 * total  # same total memory, redistributed by depth


def test_adaptive_allocator_gives_heads_different_budgets(big_prompt):
    loaded, inputs = big_prompt
    cache = run(loaded, inputs, budget=0.1, allocator="adaptive", head_types="static")
    budgets = [b for layer in cache.stats().heads for b in layer.budget[0]]
    assert len(set(budgets)) > 1
    for layer in cache.stats().heads:
        assert sum(layer.budget[0]) == len(layer.budget[0]) * max(20, round(0.1 * cache.stats().prompt_tokens[0] + 0.5))
