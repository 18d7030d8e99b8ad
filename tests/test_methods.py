"""Every registered method: exact at budget 1.0, real savings at 0.1, and the selection it is named for."""

from __future__ import annotations

import pytest
import torch

from conftest import made_up_profile_of as head_profile
from hybridkv.budget import prompt_tokens_budget
from hybridkv.cache.prefill import (
    SELECTORS,
    accumulated_attention,
    keep_by_modality,
    keep_by_priority,
    merge_evicted,
    modality_preference,
)
from hybridkv.errors import ConfigError
from hybridkv.methods import METHODS, get_method
from hybridkv.models.testing import synthetic_image
from hybridkv.token_types import TokenType

COMPRESSING = [name for name in METHODS if name != "full"]


def method_for(loaded, name, **options):
    """``get_method`` with what a method cannot run without (sparsemm, hybridkv-profile: a profile of the model)."""
    if METHODS[name].needs_profile and "profile" not in options:
        options["profile"] = head_profile(loaded)
    return get_method(name, **options)


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
    out, _ = greedy(loaded, inputs, method_for(loaded, name, budget=1.0, chunk_size=8, window=8, sinks=2))
    assert torch.equal(out.sequences, ref.sequences)
    assert max((a - b).abs().max().item() for a, b in zip(out.logits, ref.logits, strict=True)) < 1e-5


# fastv keeps its first K = 2 of the tiny model's 4 layers in full, so 10% cannot be met (see its own tests)
@pytest.mark.parametrize("name", [name for name in COMPRESSING if name != "fastv"])
def test_every_method_saves_memory(tiny, name):
    loaded = tiny("qwen2_5_vl")
    inputs = loaded.build_inputs("Describe what you see.", [synthetic_image(672, 672, seed=4)])
    _, cache = greedy(loaded, inputs, method_for(loaded, name, budget=0.1))
    stats = cache.stats()
    assert stats.hot_bytes <= 0.2 * stats.full_kv_bytes


@pytest.mark.parametrize("name", COMPRESSING)
def test_every_method_keeps_within_its_budgets(tiny, name):
    """At a small budget: fewer hot bytes than the full cache, no head above its own budget, and the model's
    total within the equal budget (fastv with K = 1 so that its full layer leaves something to share)."""
    loaded = tiny("qwen2_5_vl")
    inputs = loaded.build_inputs("Describe what you see.", [synthetic_image(672, 672, seed=4)])
    options = {"fastv_layer": 1} if name == "fastv" else {}
    budget = 0.4 if name == "fastv" else 0.1
    _, cache = greedy(loaded, inputs, method_for(loaded, name, budget=budget, **options))
    stats = cache.stats()
    assert stats.hot_bytes < stats.full_kv_bytes
    cfg = cache.config
    length = stats.prompt_tokens[0]
    per_head = prompt_tokens_budget(budget, length, floor=cfg.sinks + cfg.window)
    budgets = torch.tensor([layer.budget[0] for layer in stats.heads])  # [layers, kv_heads]
    hot = torch.tensor([layer.hot_tokens[0] for layer in stats.heads])
    assert (hot <= budgets).all() and (budgets <= length).all()
    assert int(budgets.sum()) <= budgets.numel() * per_head  # no method keeps more than its budget
    if cfg.head_types == "static":  # evicting heads store exactly their budget
        assert torch.equal(hot, budgets)


def test_methods_fix_their_traits_but_explicit_options_win():
    assert get_method("snapkv").config.selector == "attention"
    assert get_method("streaming").config.selector == "recency"
    assert get_method("pyramidkv").config.allocator == "pyramid"
    assert get_method("adakv").config.allocator == "adaptive"
    assert get_method("quest").config.head_types == "dynamic"
    assert get_method("snapkv", allocator="adaptive").config.allocator == "adaptive"
    assert get_method("h2o").config.token_scores == "accumulated"
    assert get_method("fastv").config.fastv_layer == 2 and get_method("fastv").config.selector == "fastv"
    assert get_method("look-m").config.merge == "average" and get_method("look-m").config.selector == "text_prior"
    assert get_method("madakv").config.allocator == "modality"
    assert get_method("fastv", fastv_layer=3).config.fastv_layer == 3
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


def test_selection_among_ties_does_not_depend_on_other_rows():
    """Max-pooling makes plateaus of equal scores; which tied token a head keeps must not depend on the
    largest budget in the batch (a left-padded batch must keep what each prompt alone keeps)."""
    length = 30
    priority = torch.zeros(2, 1, length)
    priority[:, :, 10:20] = 0.5  # ten tied tokens
    valid = torch.ones(2, length, dtype=torch.bool)
    alone = keep_by_priority(priority[:1], valid[:1], torch.tensor([[6]]), sinks=1, window=2)
    batch = keep_by_priority(priority, valid, torch.tensor([[6], [12]]), sinks=1, window=2)
    assert torch.equal(alone[0], batch[0])
    with_types = torch.full((2, length), int(TokenType.IMAGE))
    counts = torch.tensor([[3], [9]])
    alone = keep_by_modality(priority[:1], with_types[:1], valid[:1], counts[:1] * 0, counts[:1], sinks=1, window=2)
    batch = keep_by_modality(priority, with_types, valid, counts * 0, counts, sinks=1, window=2)
    assert torch.equal(alone[0], batch[0])


# ---------------------------------------------------------------------------------------------- fastv


def test_fastv_keeps_early_layers_full_and_pays_for_them_later(tiny):
    loaded = tiny("qwen2_5_vl")
    inputs = loaded.build_inputs("Describe what you see.", [synthetic_image(672, 672, seed=4)])
    _, cache = greedy(loaded, inputs, get_method("fastv", budget=0.6, fastv_layer=2))
    stats = cache.stats()
    length = stats.prompt_tokens[0]
    hot = [layer.hot_tokens[0] for layer in stats.heads]
    assert hot[0] == hot[1] == [length, length]  # layers < K: the full KV
    per_head = prompt_tokens_budget(0.6, length, floor=20)  # 0.6 x 4 layers > 2 full layers: feasible
    assert hot[2][0] == hot[2][1] < length and hot[3][0] == hot[3][1] < length
    assert sum(sum(h) for h in hot) == 4 * 2 * per_head  # equal budget over the model
    assert cache.ctx.prefill == {}  # the shared ranking does not outlive the prefill


def test_fastv_uses_one_ranking_for_every_later_layer_and_head(tiny, monkeypatch):
    import hybridkv.cache.layer as layer_module

    kept = []

    def spy(*args, **kwargs):
        keep = keep_by_priority(*args, **kwargs)
        kept.append(keep.clone())
        return keep

    monkeypatch.setattr(layer_module, "keep_by_priority", spy)
    loaded = tiny("qwen2_5_vl")
    inputs = loaded.build_inputs("Describe what you see.", [synthetic_image(672, 672, seed=4)])
    greedy(loaded, inputs, get_method("fastv", budget=0.4, fastv_layer=1))
    later = kept[1:]  # layers 1, 2, 3
    assert len(later) == 3
    for keep in later:
        assert torch.equal(keep[:, 0], keep[:, 1])  # every head the same tokens
    # every layer keeps a prefix of the same order: the smaller set is inside the larger one
    small, large = sorted((k[0, 0] for k in later), key=lambda k: int(k.sum()))[::2]
    assert bool((small <= large).all())
    types = loaded.token_types(inputs)[0]
    text_kept = later[0][0, 0][types == int(TokenType.TEXT)]
    assert bool(text_kept.all())  # text before any visual token


def test_fastv_priority_text_by_recency_then_visual_by_ranking():
    length = 12
    types = torch.full((1, length), int(TokenType.IMAGE))
    types[0, :3] = int(TokenType.TEXT)
    types[0, 9:] = int(TokenType.TEXT)
    ranking = torch.zeros(1, 1, length)
    ranking[0, 0, 5] = 0.9
    ranking[0, 0, 1] = 0.99  # a text token's attention does not matter
    prio = SELECTORS["fastv"](ranking, types, torch.ones(1, length, dtype=torch.bool))[0, 0]
    order = prio.argsort(descending=True).tolist()
    assert order[:6] == [11, 10, 9, 2, 1, 0]  # text, most recent first
    assert order[6] == 5  # then the best-ranked visual token


# ---------------------------------------------------------------------------------------------- look-m


def test_look_m_merges_values_but_keeps_the_count(tiny):
    loaded = tiny("qwen2_5_vl")
    inputs = loaded.build_inputs("Describe what you see.", [synthetic_image(672, 672, seed=4)])
    _, merged = greedy(loaded, inputs, get_method("look-m", budget=0.1))
    _, plain = greedy(loaded, inputs, get_method("look-m", budget=0.1, merge="none"))
    a, b = merged.stats(), plain.stats()
    assert [h.hot_tokens for h in a.heads] == [h.hot_tokens for h in b.heads]  # same kept count
    assert a.hot_bytes == b.hot_bytes
    layer_a, layer_b = merged.layers[0], plain.layers[0]
    assert torch.equal(layer_a.hot.seg, layer_b.hot.seg)
    assert not torch.allclose(layer_a.hot.values, layer_b.hot.values)  # kept values changed by the merge
    assert not torch.allclose(layer_a.hot.keys, layer_b.hot.keys)


def test_averaged_merging_joins_the_most_similar_kept_token():
    key = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.9, 0.1], [0.1, 0.9], [0.0, 2.0]])[None, None]
    value = torch.arange(10.0).reshape(1, 1, 5, 2)
    keep = torch.tensor([[[True, True, False, False, False]]])
    evict = ~keep
    new_k, new_v = merge_evicted(key, value, keep, evict, max_elements=3)  # blocks of one query row
    assert torch.allclose(new_k[0, 0, 0], (key[0, 0, 0] + key[0, 0, 2]) / 2)  # token 2 joins token 0
    assert torch.allclose(new_v[0, 0, 1], (value[0, 0, 1] + value[0, 0, 3] + value[0, 0, 4]) / 3)  # 3, 4 join 1
    assert torch.equal(new_v[0, 0, 2:], value[0, 0, 2:])  # evicted rows are left as they were (freed later)
    same_k, same_v = merge_evicted(key, value, keep | evict, torch.zeros_like(keep))
    assert same_k is key and same_v is value  # nothing evicted: nothing touched


# ---------------------------------------------------------------------------------------------- madakv


def test_madakv_shifts_each_heads_budget_towards_the_modality_it_prefers():
    length = 40
    types = torch.full((1, length), int(TokenType.IMAGE))
    types[0, :4] = int(TokenType.TEXT)
    types[0, 24:] = int(TokenType.TEXT)
    valid = torch.ones(1, length, dtype=torch.bool)
    probs = torch.zeros(1, 2, length)
    probs[0, 0, 4:24] = 0.9 / 20  # head 0 looks at the image
    probs[0, 0, 24:36] = 0.1 / 12
    probs[0, 1, 4:24] = 0.1 / 20  # head 1 reads the text
    probs[0, 1, 24:36] = 0.9 / 12
    from hybridkv.cache.prefill import protected_positions

    candidates = valid & ~protected_positions(valid, sinks=2, window=4)
    share = modality_preference(probs, types, candidates)[0]
    assert share[0] > 0.85 and share[1] < 0.15
    from hybridkv.budget import modality_allocation

    is_text = types[0] == int(TokenType.TEXT)
    n_text, n_visual = int((candidates[0] & is_text).sum()), int((candidates[0] & ~is_text).sum())
    assert (n_text, n_visual) == (14, 20)
    text, visual, carry = modality_allocation(
        [16, 16],
        0,
        share.tolist(),
        n_text=n_text,
        n_visual=n_visual,
        protected=6,
        prompt_len=length,
        future_capacity=0,
    )
    assert visual[0] > text[0] and text[1] > visual[1] and carry == 0
    keep = keep_by_modality(probs, types, valid, torch.tensor([text]), torch.tensor([visual]), sinks=2, window=4)
    is_visual = types[0] != int(TokenType.TEXT)
    assert int(keep[0, 0][is_visual].sum()) == visual[0] and int(keep[0, 1][is_visual].sum()) == visual[1]
    assert keep.sum(-1).tolist() == [[16, 16]]


def test_madakv_is_equal_budget_over_the_model(tiny):
    loaded = tiny("qwen2_5_vl")
    inputs = loaded.build_inputs("Describe what you see.", [synthetic_image(672, 672, seed=4)])
    _, cache = greedy(loaded, inputs, get_method("madakv", budget=0.1))
    stats = cache.stats()
    per_head = prompt_tokens_budget(0.1, stats.prompt_tokens[0], floor=20)
    assert sum(sum(layer.hot_tokens[0]) for layer in stats.heads) == 4 * 2 * per_head
    assert cache.ctx.prefill == {}


# ---------------------------------------------------------------------------------------------- sparsemm


def test_sparsemm_without_a_profile_names_the_fix(tiny):
    with pytest.raises(ConfigError, match="hybridkv profile") as err:
        get_method("sparsemm")
    assert "--profile" in str(err.value) and "profile=" in str(err.value) and "\n" not in str(err.value)
    old = head_profile(tiny("qwen2_5_vl"))
    old.visual_mass = None  # a profile written before visual_mass was measured
    with pytest.raises(ConfigError, match="hybridkv profile"):
        get_method("sparsemm", profile=old)


def test_sparsemm_gives_visual_heads_more(tiny):
    loaded = tiny("qwen2_5_vl")
    inputs = loaded.build_inputs("Describe what you see.", [synthetic_image(672, 672, seed=4)])
    mass = torch.full((4, 2), 0.05)
    mass[2, 1] = 0.9  # one visual head
    _, cache = greedy(loaded, inputs, get_method("sparsemm", budget=0.1, profile=head_profile(loaded, mass)))
    stats = cache.stats()
    budgets = torch.tensor([layer.budget[0] for layer in stats.heads])
    assert int(budgets.argmax()) == 2 * 2 + 1
    assert budgets[2, 1] > 3 * budgets[0, 0]
    per_head = prompt_tokens_budget(0.1, stats.prompt_tokens[0], floor=20)
    assert int(budgets.sum()) == 4 * 2 * per_head
    assert int(budgets.min()) >= 20  # the floor


# ---------------------------------------------------------------------------------------------- h2o


@pytest.mark.parametrize("max_elements", [1, 50, 1 << 24])
def test_accumulated_attention_equals_the_full_map(max_elements):
    g = torch.Generator().manual_seed(0)
    b, hq, hkv, length, d = 2, 4, 2, 9, 8
    query = torch.randn(b, hq, length, d, generator=g)
    key = torch.randn(b, hkv, length, d, generator=g)
    valid = torch.ones(b, length, dtype=torch.bool)
    valid[1, :3] = False  # left padding
    out = accumulated_attention(query, key, valid, scaling=0.3, max_elements=max_elements)
    # reference: the whole L x L causal map, per query head, then summed over each KV group and real queries
    k = key.repeat_interleave(hq // hkv, dim=1)
    scores = (query @ k.transpose(-1, -2)) * 0.3
    mask = torch.ones(length, length).tril().bool()[None, None] & valid[:, None, None, :]
    probs = torch.softmax(scores.masked_fill(~mask, float("-inf")), -1).nan_to_num(0.0)
    probs = probs * valid[:, None, :, None]
    ref = probs.sum(2).reshape(b, hkv, hq // hkv, length).sum(2)
    ref = ref / (valid.sum(-1) * (hq // hkv))[:, None, None]
    assert torch.allclose(out, ref, atol=1e-6)
    assert torch.allclose(out.sum(-1), torch.ones(b, hkv))  # a mean of distributions


def test_h2o_keeps_the_heavy_hitter_the_window_misses():
    length, d = 24, 4
    key = torch.zeros(1, 1, length, d)
    key[0, 0, 6, 0] = 6.0  # token 6 draws every early query
    query = torch.zeros(1, 1, length, d)
    query[0, 0, :16, 0] = 2.0  # ... but the last 8 (the window) look nowhere in particular
    valid = torch.ones(1, length, dtype=torch.bool)
    accumulated = accumulated_attention(query, key, valid, scaling=1.0)
    keep = keep_by_priority(accumulated, valid, torch.tensor([[11]]), sinks=2, window=8)[0, 0]
    assert bool(keep[6])


# ----------------------------------------------------------------------------- layer level (hybridkv-adaptive)


def test_layer_levels_need_a_profile_and_adaptive_never_keeps_more(tiny):
    with pytest.raises(ConfigError, match="hybridkv profile"):
        get_method("hybridkv-adaptive")
    loaded = tiny("qwen2_5_vl")
    inputs = loaded.build_inputs("Describe what you see.", [synthetic_image(672, 672, seed=4)])
    calibrated = head_profile(loaded)
    calibrated.score_mean = torch.full_like(calibrated.score_mean, 0.0)  # calibration spread widely
    profiled = get_method("hybridkv", budget=0.2, layer_level="profile", profile=calibrated)
    adaptive = get_method("hybridkv", budget=0.2, layer_level="adaptive", profile=calibrated)
    _, by_profile = greedy(loaded, inputs, profiled)
    _, by_input = greedy(loaded, inputs, adaptive)
    kept = [sum(map(sum, layer.budget)) for layer in by_profile.stats().heads]
    kept_adaptive = [sum(map(sum, layer.budget)) for layer in by_input.stats().heads]
    assert all(a <= p for a, p in zip(kept_adaptive, kept, strict=True))
    assert by_input.stats().hot_bytes <= by_profile.stats().hot_bytes
