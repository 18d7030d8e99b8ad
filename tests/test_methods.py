"""Every registered method: exact at budget 1.0, real savings at 0.1, and the selection it is named for."""

from __future__ import annotations

import pytest
import torch

from hybridkv.cache.prefill import SELECTORS, keep_by_priority
from hybridkv.errors import ConfigError
from hybridkv.methods import METHODS, get_method
from hybridkv.models.testing import synthetic_image
from hybridkv.token_types import TokenType

COMPRESSING = [name for name in METHODS if name != "full"]


def greedy(loaded, inputs, method):
    kw = dict(max_new_tokens=6, min_new_tokens=6, do_sample=False, output_logits=True, return_dict_in_generate=True)
    with method(loaded.model), torch.inference_mode():
        cache = method.make_cache(loaded.model, inputs)
        return loaded.model.generate(**inputs, past_key_values=cache, **kw), cache


@pytest.mark.parametrize("name", COMPRESSING)
def test_every_method_is_exact_at_full_budget(tiny, name):
    loaded = tiny("qwen2_5_vl")
    inputs = loaded.build_inputs("Describe what you see.", [synthetic_image(336, 336, seed=4)])
    ref, _ = greedy(loaded, inputs, get_method("full"))
    out, _ = greedy(loaded, inputs, get_method(name, budget=1.0, chunk_size=8, window=8, sinks=2))
    assert torch.equal(out.sequences, ref.sequences)
    assert max((a - b).abs().max().item() for a, b in zip(out.logits, ref.logits, strict=True)) < 1e-5


@pytest.mark.parametrize("name", COMPRESSING)
def test_every_method_saves_memory(tiny, name):
    loaded = tiny("qwen2_5_vl")
    inputs = loaded.build_inputs("Describe what you see.", [synthetic_image(672, 672, seed=4)])
    _, cache = greedy(loaded, inputs, get_method(name, budget=0.1))
    stats = cache.stats()
    assert stats.hot_bytes <= 0.2 * stats.full_kv_bytes


def test_methods_fix_their_traits_but_explicit_options_win():
    assert get_method("snapkv").config.selector == "attention"
    assert get_method("streaming").config.selector == "recency"
    assert get_method("pyramidkv").config.allocator == "pyramid"
    assert get_method("adakv").config.allocator == "adaptive"
    assert get_method("quest").config.head_types == "dynamic"
    assert get_method("snapkv", allocator="adaptive").config.allocator == "adaptive"
    with pytest.raises(ConfigError, match="unknown method"):
        get_method("h2o-typo")
    with pytest.raises(ConfigError, match="selector"):
        get_method("hybridkv", selector="random")


def test_selectors_rank_as_named():
    length = 40
    importance = torch.zeros(1, 1, length)
    importance[0, 0, 30] = 0.9  # one salient visual token
    importance[0, 0, 5] = 0.1  # a weakly attended text token
    types = torch.full((1, length), int(TokenType.IMAGE))
    types[0, :8] = int(TokenType.TEXT)
    valid = torch.ones(1, length, dtype=torch.bool)
    budgets = torch.tensor([[4]])  # 1 sink + 2 window + 1 chosen

    def chosen(selector):
        prio = SELECTORS[selector](importance, types, valid)
        keep = keep_by_priority(prio, valid, budgets, sinks=1, window=2)[0, 0]
        return set(keep.nonzero().flatten().tolist()) - {0, 38, 39}

    assert chosen("attention") == {30}  # the most attended token, whatever its modality
    assert chosen("text_prior") == {5}  # text first, even if weakly attended
    assert chosen("recency") == {37}  # the most recent token outside the window
