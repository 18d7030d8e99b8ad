"""Eviction never shifts positions; left-padded batches give each row its batch-1 output."""

from __future__ import annotations

import pytest
import torch

from hybridkv.methods import HybridKV
from hybridkv.models.testing import synthetic_image

NEW = 8


@pytest.mark.parametrize("family", ["qwen2_5_vl", "qwen3_vl", "llava", "llama"])
@pytest.mark.parametrize("head_types", ["online", "static", "dynamic"])
def test_manual_decode_loop_equals_generate(tiny, family, head_types):
    loaded = tiny(family)
    images = [synthetic_image(448, 448, seed=3)] if loaded.adapter.is_multimodal else None
    inputs = loaded.build_inputs("Tell me about this. " * 8, images)
    method = HybridKV(budget=0.2, head_types=head_types, chunk_size=8)
    with method(loaded.model), torch.inference_mode():
        cache = method.make_cache(loaded.model, inputs)
        ref = loaded.model.generate(**inputs, past_key_values=cache, max_new_tokens=NEW, do_sample=False)
        cache = method.make_cache(loaded.model, inputs)
        out = loaded.model(**inputs, past_key_values=cache, use_cache=True)
        tokens = [out.logits[:, -1].argmax(-1, keepdim=True)]
        for _ in range(NEW - 1):  # no position_ids: the cache's logical length keeps RoPE positions right
            out = loaded.model(input_ids=tokens[-1], past_key_values=cache, use_cache=True)
            tokens.append(out.logits[:, -1].argmax(-1, keepdim=True))
    assert cache.get_seq_length() == inputs["input_ids"].shape[1] + NEW - 1
    assert cache.layers[0].hot.keys.shape[0] < cache.layers[0].prompt_len * cache.layers[0].kv_heads
    assert torch.equal(ref[:, inputs["input_ids"].shape[1] :], torch.cat(tokens, dim=1))


@pytest.mark.parametrize("family", ["qwen2_5_vl", "llava", "qwen3"])
@pytest.mark.parametrize("budget", [0.1, 1.0])
def test_left_padded_batch_matches_batch_of_one(tiny, family, budget):
    check_left_padded_batch(
        tiny, family, HybridKV(budget=budget, chunk_size=8, window=8, sinks=2, fit_short_prompts=False)
    )


def test_a_batch_shares_the_window_and_chunks_its_shortest_prompt_affords(tiny):
    """With ``fit_short_prompts`` the layout is one per batch (documented): the shortest row sets it."""
    from hybridkv.budget import fit_short_layout, prompt_tokens_budget

    loaded = tiny("qwen3")
    prompts = ["Short one. " * 12, "A somewhat longer prompt about the picture, please. " * 20]
    method = HybridKV(budget=0.1, chunk_size=16, window=16, sinks=2)
    inputs = loaded.build_inputs(prompts, None)
    with method(loaded.model), torch.inference_mode():
        cache = method.make_cache(loaded.model, inputs)
        loaded.model(**inputs, past_key_values=cache)
    shortest = min(cache.stats().prompt_tokens)
    expected = fit_short_layout(prompt_tokens_budget(0.1, shortest, floor=0), sinks=2, window=16, chunk_size=16)
    assert expected != (2, 16, 16)  # the test's prompts are short enough to need fitting
    assert (cache.ctx.config.sinks, cache.ctx.config.kept_window, cache.ctx.config.chunk_size) == expected
    assert cache.ctx.config.window == 16  # heads and tokens are still scored by the whole observation window
    assert (cache.ctx.requested.sinks, cache.ctx.requested.kept_window, cache.ctx.requested.chunk_size) == (2, 16, 16)
    assert cache.stats().fitted == {"sinks": expected[0], "recent_window": expected[1], "chunk_size": expected[2]}


@pytest.mark.parametrize("name", ["h2o", "fastv", "look-m", "madakv", "sparsemm"])
def test_left_padded_batch_matches_batch_of_one_for_the_new_baselines(tiny, made_up_profile, name):
    """Per-row budgets, H2O's padded queries, FastV's shared ranking and MadaKV's carry are all per prompt."""
    from hybridkv.methods import get_method

    loaded = tiny("qwen2_5_vl")
    options = {"fastv_layer": 1} if name == "fastv" else {}
    if name == "sparsemm":
        options["profile"] = made_up_profile(loaded)
    budget = 0.5 if name == "fastv" else 0.1
    method = get_method(name, budget=budget, window=8, sinks=2, fit_short_prompts=False, **options)
    check_left_padded_batch(tiny, "qwen2_5_vl", method)


def check_left_padded_batch(tiny, family, method):
    loaded = tiny(family)
    prompts = ["Short one.", "A somewhat longer prompt about the picture, please.", "Mid length question here?"]
    if loaded.adapter.is_multimodal:
        images = [[synthetic_image(224 + 56 * i, 224, seed=i)] for i in range(3)]
    else:
        images = None
        prompts = [p * (3 + 4 * i) for i, p in enumerate(prompts)]

    def run(batch_prompts, batch_images):
        inputs = loaded.build_inputs(batch_prompts, batch_images)
        with method(loaded.model), torch.inference_mode():
            cache = method.make_cache(loaded.model, inputs)
            seq = loaded.model.generate(**inputs, past_key_values=cache, max_new_tokens=NEW, do_sample=False)
        return seq[:, inputs["input_ids"].shape[1] :], cache

    batched, cache = run(prompts, images)
    assert len(set(cache.stats().prompt_tokens)) == 3  # really different lengths
    for i in range(3):
        single, _ = run([prompts[i]], None if images is None else [images[i]])
        assert torch.equal(batched[i], single[0]), f"row {i}"
