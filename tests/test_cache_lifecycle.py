"""The cache owns its phase: misuse fails loudly, the `with` block leaves no state, re-prefill works,
and several tokens can be appended at once after compression (chat turns on a compressed cache)."""

from __future__ import annotations

import pytest
import torch
from transformers import DynamicCache

from hybridkv.attention import current_attn_implementation
from hybridkv.errors import CacheStateError
from hybridkv.methods import HybridKV
from hybridkv.models.testing import synthetic_image


def test_cache_without_hybridkv_attention_raises(tiny):
    loaded = tiny("qwen2_5_vl")
    inputs = loaded.build_inputs("Describe.", [synthetic_image(224, 224)])
    cache = HybridKV(budget=0.5).make_cache(loaded.model, inputs)
    with pytest.raises(CacheStateError, match="with method"), torch.inference_mode():
        loaded.model.generate(**inputs, past_key_values=cache, max_new_tokens=3, do_sample=False)


def test_with_block_leaves_no_state(tiny):
    loaded = tiny("qwen2_5_vl")
    model = loaded.model
    before = current_attn_implementation(model)
    modules = loaded.adapter.attention_modules(model)
    hooks_before = [len(m._forward_pre_hooks) for m in modules]
    attrs_before = [set(vars(m)) for m in modules]
    method = HybridKV(budget=0.5)
    with method(model):
        assert model.config.get_text_config(decoder=True)._attn_implementation == "hybridkv"
        assert model.config.vision_config._attn_implementation == "sdpa"
    assert current_attn_implementation(model) == before
    assert [len(m._forward_pre_hooks) for m in modules] == hooks_before
    assert [set(vars(m)) for m in modules] == attrs_before


def test_reset_allows_re_prefill(tiny):
    loaded = tiny("llama")
    method = HybridKV(budget=0.3, chunk_size=4, window=4, sinks=2)
    first = loaded.build_inputs("one two three four five six seven eight nine ten " * 3)
    second = loaded.build_inputs("alpha beta gamma delta epsilon zeta eta theta " * 3)
    with method(loaded.model), torch.inference_mode():
        cache = method.make_cache(loaded.model, first)
        loaded.model.generate(**first, past_key_values=cache, max_new_tokens=3, do_sample=False)
        cache.reset()
        cache.ctx.token_types = loaded.token_types(second)
        reused = loaded.model.generate(**second, past_key_values=cache, max_new_tokens=5, do_sample=False)
        fresh_cache = method.make_cache(loaded.model, second)
        fresh = loaded.model.generate(**second, past_key_values=fresh_cache, max_new_tokens=5, do_sample=False)
    assert torch.equal(reused, fresh)


@pytest.mark.parametrize("head_types", ["static", "dynamic"])
def test_multi_token_append_after_compression_is_exact_at_full_budget(tiny, head_types):
    """Prefill + compress, then a 7-token question in one forward, then greedy steps: equals DynamicCache."""
    loaded = tiny("qwen2_5_vl")
    inputs = loaded.build_inputs("Look at this picture.", [synthetic_image(336, 336, seed=2)])
    question = torch.tensor([[60, 61, 62, 63, 64, 65, 66]])
    method = HybridKV(budget=1.0, head_types=head_types, chunk_size=8, window=4, sinks=2)
    text_config = loaded.adapter.text_config(loaded.model.config)

    def run(cache):
        with torch.inference_mode():
            out = loaded.model(**inputs, past_key_values=cache, use_cache=True)
            out = loaded.model(input_ids=question, past_key_values=cache, use_cache=True)
            return out.logits

    ref = run(DynamicCache(config=text_config))
    with method(loaded.model):
        got = run(method.make_cache(loaded.model, inputs))
    torch.testing.assert_close(got, ref, atol=1e-5, rtol=1e-5)
